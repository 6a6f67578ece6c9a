/*
 * Unit tests for the /v2 proxy parts that need no upstream: cache keys and
 * record formats, layer locations, redirect resolution, the error mapping,
 * the retry policy, coalescing, and the IO-loop hot path run against a real
 * state store (no sockets: the route handler is called directly).
 */
#include "core/app.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "http/client.h"
#include "http/router.h"
#include "registry/blobfill.h"
#include "registry/proxy.h"
#include "registry/proxy_int.h"
#include "registry/routes.h"
#include "registry/tagcache.h"
#include "registry/upstream.h"
#include "storage/cas.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <pthread.h>
#include <stdatomic.h>

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

TEST(cache_keys) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK_EQ_STR(wv_cache_key_manifest(a, "quay.io", "org/img", D1),
               "quay.io/v2/org/img/manifests/" D1);
  CHECK_EQ_STR(wv_cache_key_blob(a, "127.0.0.1:5000", "library/busybox", D2),
               "127.0.0.1:5000/v2/library/busybox/blobs/" D2);
  CHECK_EQ_STR(wv_cache_key_token(a, "abc123"), "T/abc123");
  char longimg[600];
  memset(longimg, 'a', sizeof longimg - 1);
  longimg[sizeof longimg - 1] = '\0';
  CHECK(wv_cache_key_manifest(a, "docker.io", longimg, D1) == NULL);
}

/* An arena and a buffer for encoding and decoding cache entries, freed when the test returns. */
typedef struct {
  wv_arena_t *a;
  wv_buf_t b;
} codec_t;

static void codec_free(codec_t *c) {
  wv_buf_free(&c->b);
  wv_arena_free(c->a);
  free(c);
}

static codec_t *codec_start(void) {
  codec_t *c = calloc(1, sizeof *c);
  if (!c || !(c->a = wv_arena_new(0))) {
    free(c);
    return NULL;
  }
  wv_buf_init(&c->b, 1 << 20);
  TEST_CLEANUP(codec_free, c);
  return c;
}

TEST(cache_entry_manifest_roundtrip) {
  codec_t *c = codec_start();
  CHECK(c);
  const char body[] = "{\"a\":\n1}\0tail";
  wv_cache_entry_t e = {.kind = WV_CACHE_MANIFEST,
                        .media_type = "application/vnd.oci.image.manifest.v1+json",
                        .digest = D1,
                        .size = sizeof body - 1,
                        .location = "",
                        .body = body,
                        .body_len = sizeof body - 1};
  CHECK_OK(wv_cache_encode(&e, &c->b));
  wv_cache_entry_t d;
  CHECK_OK(wv_cache_decode(c->a, c->b.data, c->b.len, &d));
  CHECK_EQ_INT(d.kind, WV_CACHE_MANIFEST);
  CHECK_EQ_STR(d.media_type, e.media_type);
  CHECK_EQ_STR(d.digest, D1);
  CHECK_EQ_INT(d.body_len, sizeof body - 1);
  CHECK(memcmp(d.body, body, sizeof body - 1) == 0);
}

/* Redirect entries and blobs in the CAS carry no body. */
TEST(cache_entry_redirect_and_cas_blob_no_body) {
  codec_t *c = codec_start();
  CHECK(c);
  wv_cache_entry_t d;
  wv_cache_entry_t e = {.kind = WV_CACHE_REDIRECT, .location = "https://cdn.example/x?sig=1"};
  CHECK_OK(wv_cache_encode(&e, &c->b));
  CHECK_OK(wv_cache_decode(c->a, c->b.data, c->b.len, &d));
  CHECK_EQ_INT(d.kind, WV_CACHE_REDIRECT);
  CHECK_EQ_STR(d.location, "https://cdn.example/x?sig=1");
  CHECK_EQ_INT(d.body_len, 0);
  wv_buf_reset(&c->b);
  e = (wv_cache_entry_t){.kind = WV_CACHE_BLOB, .media_type = "m", .digest = D2, .size = 42};
  CHECK_OK(wv_cache_encode(&e, &c->b));
  CHECK_OK(wv_cache_decode(c->a, c->b.data, c->b.len, &d));
  CHECK_EQ_INT(d.size, 42);
  CHECK_EQ_INT(d.body_len, 0); /* in the CAS */
}

/* A small config kept inline in its blob entry. */
static const char inline_cfg[] = "{\"config\":\n{\"Env\":[\"A=1\"]}}";
static const wv_cache_entry_t inline_entry = {.kind = WV_CACHE_BLOB,
                                              .media_type =
                                                  "application/vnd.oci.image.config.v1+json",
                                              .digest = D2,
                                              .size = sizeof inline_cfg - 1,
                                              .body = inline_cfg,
                                              .body_len = sizeof inline_cfg - 1};

/* An inline config's bytes come back, newlines and all. */
TEST(cache_entry_inline_blob) {
  codec_t *c = codec_start();
  CHECK(c);
  wv_cache_entry_t d;
  CHECK_OK(wv_cache_encode(&inline_entry, &c->b));
  CHECK_OK(wv_cache_decode(c->a, c->b.data, c->b.len, &d));
  CHECK_EQ_INT(d.kind, WV_CACHE_BLOB);
  CHECK_EQ_INT(d.size, sizeof inline_cfg - 1);
  CHECK_EQ_INT(d.body_len, sizeof inline_cfg - 1);
  CHECK(memcmp(d.body, inline_cfg, sizeof inline_cfg - 1) == 0);
}

/* Redirect entries never carry a body, even when given one. */
TEST(cache_entry_redirect_drops_body) {
  codec_t *c = codec_start();
  CHECK(c);
  wv_cache_entry_t d, e = inline_entry;
  e.kind = WV_CACHE_REDIRECT;
  e.location = "https://cdn.example/y";
  CHECK_OK(wv_cache_encode(&e, &c->b));
  CHECK_OK(wv_cache_decode(c->a, c->b.data, c->b.len, &d));
  CHECK_EQ_INT(d.body_len, 0);
}

/* A newline inside a field cannot be stored; garbage does not decode. */
TEST(cache_entry_refused) {
  codec_t *c = codec_start();
  CHECK(c);
  wv_cache_entry_t d, e = inline_entry;
  e.kind = WV_CACHE_REDIRECT;
  e.location = "http://x\ny";
  CHECK_EQ_INT(wv_cache_encode(&e, &c->b), WV_EINVAL);
  CHECK_EQ_INT(wv_cache_decode(c->a, "x\n\n\n0\n\n", 8, &d), WV_EPARSE);
  CHECK_EQ_INT(wv_cache_decode(c->a, "m\nonly", 6, &d), WV_EPARSE);
  CHECK_EQ_INT(wv_cache_decode(c->a, "b\n\n\nzz\n\n", 8, &d), WV_EPARSE);
}

TEST(cache_token_record) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_buf_t b;
  wv_buf_init(&b, 4096);
  wv_cache_token_t t = {.kind = WV_TOKEN_CONTAINER,
                        .has_cc = true,
                        .registry = "127.0.0.1:5000",
                        .image = "library/busybox",
                        .reference = "latest"};
  CHECK_OK(wv_cache_token_encode(&t, &b));
  CHECK_EQ_STR(b.data, "0\n1\n127.0.0.1:5000\nlibrary/busybox\nlatest\n\n\n");
  wv_cache_token_t d;
  CHECK_OK(wv_cache_token_decode(a, b.data, b.len, &d));
  CHECK(d.has_cc);
  CHECK_EQ_INT(d.kind, WV_TOKEN_CONTAINER);
  CHECK(d.has_user && d.user == NULL); /* anonymous */
  /* The account of the request rides along (rate limits on the hot path). */
  t.user = "alice";
  wv_buf_reset(&b);
  CHECK_OK(wv_cache_token_encode(&t, &b));
  CHECK_OK(wv_cache_token_decode(a, b.data, b.len, &d));
  CHECK(d.has_user);
  CHECK_EQ_STR(d.user, "alice");
  CHECK_EQ_STR(d.registry, "127.0.0.1:5000");
  CHECK_EQ_STR(d.image, "library/busybox");
  CHECK(d.platform == NULL);
  /* The platform rides along too (Wave's usage counters by arch, registry/usage.h). */
  t.platform = "linux/arm64";
  wv_buf_reset(&b);
  CHECK_OK(wv_cache_token_encode(&t, &b));
  CHECK_OK(wv_cache_token_decode(a, b.data, b.len, &d));
  CHECK_EQ_STR(d.platform, "linux/arm64");
  /* A record written before the platform line: no platform, the user still read. */
  CHECK_OK(wv_cache_token_decode(a, "0\n0\nr\ni\nx\nbob\n", 14, &d));
  CHECK(d.has_user && d.platform == NULL);
  CHECK_EQ_STR(d.user, "bob");
  CHECK_EQ_INT(wv_cache_token_decode(a, "7\n1\nr\ni\nx\n", 10, &d), WV_EPARSE);
  /* A record written before the user line existed still decodes: who is unknown. */
  CHECK_OK(wv_cache_token_decode(a, "0\n0\nr\ni\nx\n", 10, &d));
  CHECK(!d.has_user && d.user == NULL);
  CHECK_EQ_STR(d.reference, "x");
  wv_buf_free(&b);
}

TEST(layer_locations) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_cache_entry_t e;
  CHECK_OK(wv__proxy_layer_entry(a, "cas:" D1, D1, 10, &e));
  CHECK_EQ_INT(e.kind, WV_CACHE_BLOB);
  CHECK_EQ_STR(e.digest, D1);
  CHECK_EQ_STR(e.media_type, "application/vnd.docker.image.rootfs.diff.tar.gzip");
  CHECK_OK(wv__proxy_layer_entry(a, "https://h/x.tar.gz", D1, 10, &e));
  CHECK_EQ_INT(e.kind, WV_CACHE_REDIRECT);
  CHECK_OK(wv__proxy_layer_entry(a, "docker://quay.io/v2/o/i/blobs/" D1, D1, 10, &e));
  CHECK_EQ_INT(e.kind, WV_CACHE_DOCKER);
  CHECK_EQ_INT(wv__proxy_layer_entry(a, "data:AAAA", D1, 10, &e), WV_EINVAL);
  CHECK_EQ_INT(wv__proxy_layer_entry(a, "cas:nothex", D1, 10, &e), WV_EINVAL);
  CHECK_EQ_INT(wv__proxy_layer_entry(a, NULL, D1, 10, &e), WV_EINVAL);
}

TEST(absolute_location) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *base = "http://127.0.0.1:5000", *path = "/v2/lib/bb/blobs/" D1;
  CHECK_EQ_STR(wv_fetch_absolute_location(a, base, path, "/blobs/x?a=1"),
               "http://127.0.0.1:5000/blobs/x?a=1");
  CHECK_EQ_STR(wv_fetch_absolute_location(a, base, path, "https://cdn.io/x"), "https://cdn.io/x");
  CHECK_EQ_STR(wv_fetch_absolute_location(a, base, path, "//cdn.io/y"), "http://cdn.io/y");
  CHECK_EQ_STR(wv_fetch_absolute_location(a, base, path, "data"),
               "http://127.0.0.1:5000/v2/lib/bb/blobs/data");
  CHECK(wv_fetch_absolute_location(a, base, path, "ftp://x/y") == NULL);
}

TEST(error_mapping) {
  wv_fetch_err_t e;
  CHECK_EQ_INT(wv_fetch_err_status(&e, 404, false, "docker.io", "library/foo", "latest"),
               WV_EUPSTREAM);
  CHECK_EQ_INT(e.status, 404);
  CHECK_EQ_INT(e.code, WV_REGERR_MANIFEST_UNKNOWN);
  CHECK_EQ_STR(e.msg, "repository 'docker.io/library/foo:latest' not found");
  wv_fetch_err_status(&e, 404, true, "r.io", "a/b", D1);
  CHECK_EQ_INT(e.code, WV_REGERR_MANIFEST_BLOB_UNKNOWN);
  CHECK_EQ_STR(e.msg, "repository 'r.io/a/b@" D1 "' not found");
  wv_fetch_err_status(&e, 401, false, "r.io", "a/b", "v1");
  CHECK_EQ_INT(e.code, WV_REGERR_UNAUTHORIZED);
  CHECK_EQ_INT(e.status, 401);
  CHECK_EQ_STR(e.msg, "repository 'r.io/a/b:v1' unauthorized (401)");
  wv_fetch_err_status(&e, 403, false, "r.io", "a/b", "v1");
  CHECK_EQ_INT(e.code, WV_REGERR_UNAUTHORIZED);
  CHECK_EQ_INT(e.status, 403);
  wv_fetch_err_status(&e, 503, false, "r.io", "a/b", "v1");
  CHECK_EQ_INT(e.code, WV_REGERR_UNKNOWN);
  CHECK_EQ_INT(e.status, 503);
  wv_fetch_err_status(&e, 302, false, "r.io", "a/b", "v1");
  CHECK_EQ_INT(e.code, WV_REGERR_UNKNOWN);
  CHECK_EQ_INT(e.status, 502);
  wv_fetch_err_transport(&e, WV_ETIMEOUT, 0, "r.io", "slow");
  CHECK_EQ_INT(e.code, WV_REGERR_UNKNOWN);
  CHECK_EQ_INT(e.status, 504);
  CHECK_HAS(e.msg, "'r.io'");
  wv_fetch_err_transport(&e, WV_EUPSTREAM, 0, "r.io", "refused");
  CHECK_EQ_INT(e.status, 502);
  CHECK_EQ_STR(e.msg, "Unable to reach registry 'r.io' - connection failed");
  wv_fetch_err_transport(&e, WV_EDENIED, 0, "r.io", "no");
  CHECK_EQ_INT(e.status, 403);
  CHECK_EQ_INT(e.code, WV_REGERR_DENIED);
  CHECK_HAS(e.msg, "'r.io'");
  wv_fetch_err_transport(&e, WV_EAUTH, 403, "r.io", "no");
  CHECK_EQ_INT(e.status, 403);
  CHECK_EQ_INT(e.code, WV_REGERR_UNAUTHORIZED);
}

TEST(retry_policy) {
  wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  CHECK(wv_fetch_retryable_status(429) && wv_fetch_retryable_status(503));
  CHECK(!wv_fetch_retryable_status(404) && !wv_fetch_retryable_status(401));
  CHECK(!wv_fetch_retryable_status(501));
  CHECK_EQ_INT(wv_fetch_backoff_ms(&cfg, 1), 500);
  CHECK_EQ_INT(wv_fetch_backoff_ms(&cfg, 2), 875);
  CHECK_EQ_INT(wv_fetch_backoff_ms(&cfg, 3), 1531);
  CHECK_EQ_INT(wv_fetch_backoff_ms(&cfg, 10), 5000); /* retry.max-delay */
  wv_config_free(&cfg);
}

/* ---- coalescing ---- */

/* What the threads of one round share: the table, the key, and what they saw. */
typedef struct {
  wv_proxy_flights_t *tab;
  const char *key;
  atomic_int leaders, ok, failed;
} flight_round_t;

static void *flight_thread(void *arg) {
  flight_round_t *r = arg;
  bool leader;
  wv_flight_t *f = wv__flight_join(r->tab, r->key, &leader);
  if (leader) {
    atomic_fetch_add(&r->leaders, 1);
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    wv_fetch_err_t e;
    wv_fetch_err_set(&e, 502, WV_REGERR_UNKNOWN, "leader failed");
    wv__flight_leave(f, true, strcmp(r->key, "fail") == 0 ? &e : NULL);
    return NULL;
  }
  wv_fetch_err_t e = {0};
  int rc = wv__flight_wait(f, 5000, &e);
  wv__flight_leave(f, false, NULL);
  if (rc == 0)
    atomic_fetch_add(&r->ok, 1);
  else if (rc == WV_EUPSTREAM && strcmp(e.msg, "leader failed") == 0)
    atomic_fetch_add(&r->failed, 1);
  return NULL;
}

TEST(coalescing) {
  wv_proxy_flights_t *tab = NULL;
  CHECK_OK(wv_proxy_flights_new(&tab));
  TEST_CLEANUP(wv_proxy_flights_free, tab);
  const char *keys[] = {"ok", "fail"};
  for (int k = 0; k < 2; k++) {
    flight_round_t r = {.tab = tab, .key = keys[k]};
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
      pthread_create(&t[i], NULL, flight_thread, &r);
    for (int i = 0; i < 8; i++)
      pthread_join(t[i], NULL);
    /* Threads that joined after the leader left lead their own flight. */
    CHECK(atomic_load(&r.leaders) >= 1);
    CHECK_EQ_INT(atomic_load(&r.leaders) + atomic_load(k ? &r.failed : &r.ok), 8);
  }
  /* A follower's wait is bounded. */
  bool leader;
  wv_flight_t *f = wv__flight_join(tab, "slow", &leader),
              *g = wv__flight_join(tab, "slow", &leader);
  CHECK(!leader);
  CHECK(f == g);
  wv_fetch_err_t e;
  CHECK_EQ_INT(wv__flight_wait(g, 50, &e), WV_ETIMEOUT);
  wv__flight_leave(g, false, NULL);
  wv__flight_leave(f, true, NULL);
}

/* ---- the hot path against a real store ---- */

typedef struct {
  char dir[256];
  wv_config_t cfg;
  wv_app_t app;
  wv_router_t *router;
  const char *client_ip; /* the client address run_v2 gives its requests ("" none) */
  const char *user;      /* the account put_token records (NULL anonymous) */
} env_t;

static int env_open(env_t *env) {
  memset(env, 0, sizeof *env);
  env->client_ip = "";
  if (wv_http_global_init() || !tmpdir_make(env->dir, "proxy") || wv_config_defaults(&env->cfg))
    return -1;
  env->cfg.hc_retry_attempts = 1;
  env->cfg.hc_connect_timeout_ms = 1000;
  env->app.cfg = &env->cfg;
  char p[300];
  snprintf(p, sizeof p, "%s/state", env->dir);
  if (wv_store_open(&env->app.store, p, 0, 0) || wv_cas_open(&env->app.cas, env->dir, 0) ||
      wv_upstream_new(&env->app.upstream, &env->cfg.registries) ||
      wv_proxy_flights_new(&env->app.flights) || wv_bfill_table_new(&env->app.fills) ||
      wv_tagcache_new(&env->app.tags) || wv_router_new(&env->router) ||
      wv_registry_routes_register(env->router))
    return -1;
  wv_upstream_set_timeouts(env->app.upstream, env->cfg.hc_connect_timeout_ms,
                           env->cfg.hc_read_timeout_ms);
  return 0;
}

static void env_close(env_t *env) {
  wv_router_free(env->router);
  wv_ratelimit_free(env->app.pull_limit);
  wv_tagcache_free(env->app.tags);
  wv_bfill_table_free(env->app.fills);
  wv_proxy_flights_free(env->app.flights);
  wv_upstream_free(env->app.upstream);
  wv_cas_close(env->app.cas);
  wv_store_close(env->app.store);
  wv_config_free(&env->cfg);
  tmpdir_remove(env->dir);
  wv_http_global_cleanup();
}

static void env_free(env_t *env) {
  env_close(env);
  free(env);
}

/* An open environment closed when the test returns, failed or not; NULL if it cannot open. */
static env_t *env_start(void) {
  env_t *env = malloc(sizeof *env);
  if (!env || env_open(env)) {
    free(env);
    return NULL;
  }
  TEST_CLEANUP(env_free, env);
  return env;
}

/* Runs one GET/HEAD through the route as the server would (inline, then worker on WV_DEFER). */
static int run_v2(env_t *env, unsigned method, const char *path, wv_arena_t *a, wv_resp_t *resp,
                  bool worker, int *inline_rc) {
  static wv_req_t req;
  memset(&req, 0, sizeof req);
  snprintf(req.client_ip, sizeof req.client_ip, "%s", env->client_ip);
  memset(resp, 0, sizeof *resp);
  resp->fd = -1;
  req.arena = a;
  req.method = method;
  req.method_name = method == WV_M_HEAD ? "HEAD" : "GET";
  req.path = req.url = path;
  req.registry = true;
  req.app = &env->app;
  req.body = "";
  wv_match_t m;
  if (wv_router_match(env->router, WV_M_GET, path, strlen(path), &m))
    return -100;
  req.route = m.route;
  int rc = m.route->handler(&req, resp);
  *inline_rc = rc == WV_ANSWERED ? 0 : rc;
  if (rc == WV_DEFER && worker) {
    req.on_worker = true;
    rc = req.defer(&req, resp);
  }
  return rc == WV_ANSWERED ? 0 : rc; /* the server takes it as 0 */
}

static int put_token(env_t *env, const char *token, const char *registry, const char *image) {
  wv_token_rec_t t = {.token = token,
                      .user = env->user,
                      .registry = registry,
                      .image = image,
                      .reference = "latest",
                      .platform = "linux/amd64",
                      .expires_ms = wv_store_now_ms() + 3600000};
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  int rc = wv_token_encode(&t, &b);
  if (!rc)
    rc = wv_store_put(env->app.store, WV_DB_TOKENS, token, b.data, b.len, t.expires_ms);
  wv_buf_free(&b);
  return rc;
}

#define HOT_PATH "/v2/wt/tok1/library/bb/manifests/latest"

/* An unknown token is answered on the loop. */
TEST(hot_unknown_token) {
  env_t *env = env_start();
  wv_arena_t *a = wv_test_arena();
  CHECK(env && a);
  wv_resp_t resp;
  int irc;
  CHECK_OK(run_v2(env, WV_M_GET, "/v2/wt/nosuchtoken1/library/bb/manifests/latest", a, &resp, false,
                  &irc));
  CHECK_EQ_INT(resp.status, 404);
  CHECK_HAS(resp.body, "Unknown Wave container for token 'nosuchtoken1'");
  CHECK_HAS(resp.body, "\"NOT_FOUND\"");
}

/* A known token with no hot record yet goes to a worker, which fails upstream clearly. */
TEST(hot_miss_deferred) {
  env_t *env = env_start();
  wv_arena_t *a = wv_test_arena();
  CHECK(env && a);
  wv_resp_t resp;
  int irc;
  CHECK_OK(put_token(env, "tok1", "127.0.0.1:1", "library/bb"));
  CHECK_EQ_INT(run_v2(env, WV_M_GET, HOT_PATH, a, &resp, false, &irc), WV_DEFER);
  CHECK_OK(run_v2(env, WV_M_GET, HOT_PATH, a, &resp, true, &irc));
  CHECK_EQ_INT(irc, WV_DEFER);
  CHECK_EQ_INT(resp.status, 502);
  CHECK_HAS(resp.body, "Unable to reach registry '127.0.0.1:1'");
}

/* Puts entry e under key in the manifest cache. */
static int put_entry(env_t *env, const char *key, const wv_cache_entry_t *e) {
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  int rc = wv_cache_encode(e, &b);
  rc = rc ? rc : wv_store_put(env->app.store, WV_DB_MANIFESTS, key, b.data, b.len, 0);
  wv_buf_free(&b);
  return rc;
}

/* tok1 for 127.0.0.1:1 library/bb, its hot record written by one worker pass. */
static int hot_token(env_t *env, wv_arena_t *a) {
  wv_resp_t resp;
  int irc;
  int rc = put_token(env, "tok1", "127.0.0.1:1", "library/bb");
  rc = rc ? rc : run_v2(env, WV_M_GET, HOT_PATH, a, &resp, true, &irc);
  for (int i = 0; !rc && i < 100; i++) { /* the hot record is written asynchronously */
    wv_cache_token_t t;
    if (wv_cache_token_get(env->app.store, a, "tok1", &t) == 0)
      return 0;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return rc ? rc : WV_ETIMEOUT;
}

/* A manifest cached under the request path is served on the loop, no worker. */
TEST(hot_manifest_inline) {
  env_t *env = env_start();
  wv_arena_t *a = wv_test_arena();
  CHECK(env && a);
  CHECK_OK(hot_token(env, a));
  wv_cache_entry_t e = {.kind = WV_CACHE_MANIFEST,
                        .media_type = "application/vnd.oci.image.manifest.v1+json",
                        .digest = D1,
                        .location = "",
                        .body = "{\"x\":1}",
                        .body_len = 7};
  CHECK_OK(put_entry(env, HOT_PATH, &e));
  wv_resp_t resp;
  int irc;
  CHECK_OK(run_v2(env, WV_M_HEAD, HOT_PATH, a, &resp, false, &irc));
  CHECK_EQ_INT(irc, 0);
  CHECK_EQ_INT(resp.status, 200);
  CHECK_EQ_INT(resp.body_len, 7);
  CHECK_EQ_STR(resp.content_type, "application/vnd.oci.image.manifest.v1+json");
  CHECK_EQ_STR(resp.headers[0].name, "Docker-Content-Digest");
  CHECK_EQ_STR(resp.headers[0].value, D1);
}

/* Another image path under the same token: the worker refuses it. */
TEST(hot_other_image_refused) {
  env_t *env = env_start();
  wv_arena_t *a = wv_test_arena();
  CHECK(env && a);
  CHECK_OK(hot_token(env, a));
  wv_resp_t resp;
  int irc;
  CHECK_OK(
      run_v2(env, WV_M_GET, "/v2/wt/tok1/library/other/manifests/latest", a, &resp, true, &irc));
  CHECK_EQ_INT(irc, WV_DEFER);
  CHECK_EQ_INT(resp.status, 404);
  CHECK_HAS(resp.body, "Unexpected container image request");
}

/* A blob in the CAS is a file response on the loop. */
TEST(hot_blob_file) {
  env_t *env = env_start();
  wv_arena_t *a = wv_test_arena();
  CHECK(env && a);
  CHECK_OK(hot_token(env, a));
  char cd[WV_CAS_DIGEST_LEN + 1];
  CHECK_OK(wv_cas_put(env->app.cas, "config-bytes", 12, NULL, cd));
  wv_cache_entry_t e = {
      .kind = WV_CACHE_BLOB, .media_type = "application/x", .digest = cd, .location = ""};
  CHECK_OK(put_entry(env, wv_cache_key_blob(a, "127.0.0.1:1", "library/bb", cd), &e));
  char bpath[200];
  snprintf(bpath, sizeof bpath, "/v2/wt/tok1/library/bb/blobs/%s", cd);
  wv_resp_t resp;
  int irc;
  CHECK_OK(run_v2(env, WV_M_GET, bpath, a, &resp, false, &irc));
  CHECK_EQ_INT(resp.status, 200);
  CHECK(resp.fd >= 0);
  close(resp.fd);
  CHECK_EQ_INT(resp.file_len, 12);
}

/* Tags other than list, and HEAD on tags, are a 400 on the loop. */
TEST(hot_tags_refused) {
  env_t *env = env_start();
  wv_arena_t *a = wv_test_arena();
  CHECK(env && a);
  CHECK_OK(hot_token(env, a));
  wv_resp_t resp;
  int irc;
  CHECK_OK(run_v2(env, WV_M_GET, "/v2/wt/tok1/library/bb/tags/x", a, &resp, false, &irc));
  CHECK_EQ_INT(resp.status, 400);
  CHECK_OK(run_v2(env, WV_M_HEAD, "/v2/wt/tok1/library/bb/tags/list", a, &resp, false, &irc));
  CHECK_EQ_INT(resp.status, 400);
}

/*
 * The plain form refuses hosts that name an address unless configured: IP
 * literals in every spelling inet_aton takes, trailing dots, localhost names.
 * (A host needs a '.' to be a host at all: /v2/2130706433/x is docker.io.)
 */
TEST(plain_form_refuses_addresses) {
  env_t *env = env_start();
  wv_arena_t *a = wv_test_arena();
  CHECK(env && a);
  static const char *const refused[] = {
      "/v2/10.0.0.1/x/manifests/latest",         "/v2/0x7f.0.0.1/x/manifests/latest",
      "/v2/0x7f.1/x/manifests/latest",           "/v2/0177.0.0.1/x/manifests/latest",
      "/v2/0xa9.254.169.254/x/manifests/latest", "/v2/127.1/x/manifests/latest",
      "/v2/localhost./x/manifests/latest",       "/v2/registry.example./x/manifests/latest",
      "/v2/db.localhost/x/manifests/latest",
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    wv_resp_t resp;
    int irc;
    int vrc = run_v2(env, WV_M_GET, refused[i], a, &resp, false, &irc);
    if (vrc || resp.status != 404)
      fprintf(stderr, "  %s: rc %d, answered %d\n", refused[i], vrc, resp.status);
    CHECK_OK(vrc);
    CHECK_EQ_INT(resp.status, 404);
  }
}

/* Puts a cached manifest {"x":1} (digest D1) under key. */
static int put_manifest(env_t *env, const char *key) {
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  wv_cache_entry_t e = {.kind = WV_CACHE_MANIFEST,
                        .media_type = "application/vnd.oci.image.manifest.v1+json",
                        .digest = D1,
                        .location = "",
                        .body = "{\"x\":1}",
                        .body_len = 7};
  int rc = wv_cache_encode(&e, &b);
  rc = rc ? rc : wv_store_put(env->app.store, WV_DB_MANIFESTS, key, b.data, b.len, 0);
  wv_buf_free(&b);
  return rc;
}

static const char *resp_header(const wv_resp_t *r, const char *name) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcmp(r->headers[i].name, name) == 0)
      return r->headers[i].value;
  return NULL;
}

/* Waits (up to 1 s) for the asynchronous hot record of token, with its user line. */
static bool wait_hot(env_t *env, wv_arena_t *a, const char *token) {
  for (int i = 0; i < 100; i++) {
    wv_cache_token_t t;
    if (wv_cache_token_get(env->app.store, a, token, &t) == 0 && t.has_user)
      return true;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return false;
}

/*
 * An environment (closed with the test) whose pulls are limited to 2 an hour per address and
 * 3 per account, with an arena; NULL if it cannot open.
 */
static env_t *limited_env_start(wv_arena_t **a) {
  env_t *env = env_start();
  wv_ratelimit_rate_t anon = {2, 3600000}, auth = {3, 3600000};
  if (!env || wv_ratelimit_new("pull", anon, auth, 64, &env->app.pull_limit))
    return NULL;
  *a = wv_test_arena();
  return *a ? env : NULL;
}

/* Plain form, a cached manifest by digest: counted on the loop, per client address. */
TEST(pull_limit_plain_form) {
  wv_arena_t *a = NULL;
  env_t *env = limited_env_start(&a);
  CHECK(env);
  wv_resp_t resp;
  int irc;
  CHECK_OK(put_manifest(env, wv_cache_key_manifest(a, "quay.io", "library/bb", D1)));
  const char *dpath = "/v2/quay.io/library/bb/manifests/" D1;
  env->client_ip = "198.51.100.1";
  for (int i = 0; i < 2; i++) {
    CHECK_OK(run_v2(env, i ? WV_M_HEAD : WV_M_GET, dpath, a, &resp, false, &irc));
    CHECK_EQ_INT(irc, 0);
    CHECK_EQ_INT(resp.status, 200);
  }
  CHECK_OK(run_v2(env, WV_M_GET, dpath, a, &resp, false, &irc));
  CHECK_EQ_INT(irc, 0); /* refused on the loop */
  CHECK_EQ_INT(resp.status, 429);
  CHECK_HAS(resp.body, "{\"code\":\"TOOMANYREQUESTS\",\"message\":\"Request exceeded pull "
                       "rate limit for IP 198.51.100.1\"");
  CHECK_EQ_STR(resp_header(&resp, "Retry-After"), "1800");
  /* Tags and blobs take no permit: not refused (deferred to a worker here). */
  CHECK_EQ_INT(
      run_v2(env, WV_M_GET, "/v2/quay.io/library/bb/manifests/latest", a, &resp, false, &irc),
      WV_DEFER);
  CHECK_EQ_INT(resp.status, 0);
  CHECK_EQ_INT(run_v2(env, WV_M_GET, "/v2/quay.io/library/bb/blobs/" D1, a, &resp, false, &irc),
               WV_DEFER);
  CHECK_EQ_INT(resp.status, 0);
  env->client_ip = "198.51.100.2"; /* another address */
  CHECK_OK(run_v2(env, WV_M_GET, dpath, a, &resp, false, &irc));
  CHECK_EQ_INT(resp.status, 200);
}

/* Token form: the token's account. The first pull runs on a worker (no hot record). */
TEST(pull_limit_token_form) {
  wv_arena_t *a = NULL;
  env_t *env = limited_env_start(&a);
  CHECK(env);
  wv_resp_t resp;
  int irc;
  CHECK_OK(put_manifest(env, wv_cache_key_manifest(a, "quay.io", "library/bb", D1)));
  env->user = "alice";
  CHECK_OK(put_token(env, "tokalice", "quay.io", "library/bb"));
  env->user = NULL;
  const char *tpath = "/v2/wt/tokalice/library/bb/manifests/" D1;
  CHECK_OK(run_v2(env, WV_M_GET, tpath, a, &resp, true, &irc));
  CHECK_EQ_INT(irc, WV_DEFER);
  CHECK_EQ_INT(resp.status, 200); /* the digest entry is cached */
  CHECK(wait_hot(env, a, "tokalice"));
  for (int i = 0; i < 2; i++) {
    env->client_ip = i ? "198.51.100.3" : "198.51.100.4";
    CHECK_OK(run_v2(env, WV_M_GET, tpath, a, &resp, false, &irc));
    CHECK_EQ_INT(irc, 0);
    CHECK_EQ_INT(resp.status, 200);
  }
  CHECK_OK(run_v2(env, WV_M_GET, tpath, a, &resp, false, &irc));
  CHECK_EQ_INT(resp.status, 429);
  CHECK_HAS(resp.body, "Request exceeded pull rate limit for user alice");
  CHECK_EQ_STR(resp_header(&resp, "Retry-After"), "1200");
}

/* A hot record from before the account line: the loop leaves the request to the worker,
 * which counts it and rewrites the record. */
TEST(pull_limit_old_hot_record) {
  wv_arena_t *a = NULL;
  env_t *env = limited_env_start(&a);
  CHECK(env);
  wv_resp_t resp;
  int irc;
  CHECK_OK(put_manifest(env, wv_cache_key_manifest(a, "quay.io", "library/bb", D1)));
  CHECK_OK(put_token(env, "tokold", "quay.io", "library/bb"));
  CHECK_OK(wv_store_put(env->app.store, WV_DB_MANIFESTS, wv_cache_key_token(a, "tokold"),
                        "0\n0\nquay.io\nlibrary/bb\nlatest\n", 30, 0));
  env->client_ip = "198.51.100.5";
  const char *opath = "/v2/wt/tokold/library/bb/manifests/" D1;
  CHECK_EQ_INT(run_v2(env, WV_M_GET, opath, a, &resp, false, &irc), WV_DEFER);
  CHECK_OK(run_v2(env, WV_M_GET, opath, a, &resp, true, &irc));
  CHECK_EQ_INT(resp.status, 200);
  CHECK(wait_hot(env, a, "tokold"));
  CHECK_OK(run_v2(env, WV_M_GET, opath, a, &resp, false, &irc));
  CHECK_EQ_INT(irc, 0); /* on the loop again */
  CHECK_EQ_INT(resp.status, 200);
  CHECK_OK(run_v2(env, WV_M_GET, opath, a, &resp, false, &irc));
  CHECK_EQ_INT(resp.status, 429); /* the worker's permit counted: the address's two are used */
}

WV_TESTS(T(cache_keys), T(cache_entry_manifest_roundtrip),
         T(cache_entry_redirect_and_cas_blob_no_body), T(cache_entry_inline_blob),
         T(cache_entry_redirect_drops_body), T(cache_entry_refused), T(cache_token_record),
         T(layer_locations), T(absolute_location), T(error_mapping), T(retry_policy), T(coalescing),
         T(hot_unknown_token), T(hot_miss_deferred), T(hot_manifest_inline),
         T(hot_other_image_refused), T(hot_blob_file), T(hot_tags_refused),
         T(plain_form_refuses_addresses), T(pull_limit_plain_form), T(pull_limit_token_form),
         T(pull_limit_old_hot_record))
