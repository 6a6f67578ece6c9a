/* Unit tests for registry/upstream: challenge parsing and endpoints. The auth
 * flows themselves run against real docker-registry instances in the
 * end-to-end proxy tests. */
#include "core/err.h"
#include "core/timefmt.h"
#include "http/client.h"
#include "registry/upstream.h"
#include "tests/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TEST(challenge_bearer) {
  wv_auth_challenge_t c;
  CHECK_OK(wv_auth_challenge_parse(
      "Bearer realm=\"http://127.0.0.1:5010/token\",service=\"local-registry\","
      "scope=\"repository:library/busybox:pull\"",
      &c));
  CHECK_EQ_STR(c.scheme, "Bearer");
  CHECK_EQ_STR(c.realm, "http://127.0.0.1:5010/token");
  CHECK_EQ_STR(c.service, "local-registry");
  CHECK_EQ_STR(c.scope, "repository:library/busybox:pull");
  wv_auth_challenge_free(&c);
}

TEST(challenge_basic_and_escapes) {
  wv_auth_challenge_t c;
  CHECK_OK(wv_auth_challenge_parse("Basic realm=\"basic \\\"realm\\\"\"", &c));
  CHECK_EQ_STR(c.scheme, "Basic");
  CHECK_EQ_STR(c.realm, "basic \"realm\"");
  CHECK(c.service == NULL);
  wv_auth_challenge_free(&c);
  CHECK_OK(wv_auth_challenge_parse("Bearer realm=https://auth.example/token, service=reg", &c));
  CHECK_EQ_STR(c.realm, "https://auth.example/token");
  CHECK_EQ_STR(c.service, "reg");
  wv_auth_challenge_free(&c);
}

TEST(challenge_rejects) {
  wv_auth_challenge_t c;
  CHECK_EQ_INT(wv_auth_challenge_parse("Digest realm=\"x\"", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("Bearer realm=\"ftp://x/token\"", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("Bearer service=\"x\"", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("Bearer realm=\"http://x/unterminated", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("", &c), WV_EPARSE);
}

TEST(endpoints) {
  wv_config_registry_t confs[] = {{.host = "reg.lab:5000", .insecure = true},
                                  {.host = "quay.io", .username = "u", .password = "p"}};
  wv_registries_t regs = {confs, 2};
  wv_upstream_t *u;
  CHECK_OK(wv_upstream_new(&u, &regs));
  char url[256];
  CHECK_OK(wv_upstream_base_url(u, "docker.io", url, sizeof url));
  CHECK_EQ_STR(url, "https://registry-1.docker.io");
  CHECK_OK(wv_upstream_base_url(u, "quay.io", url, sizeof url));
  CHECK_EQ_STR(url, "https://quay.io");
  CHECK_OK(wv_upstream_base_url(u, "reg.lab:5000", url, sizeof url));
  CHECK_EQ_STR(url, "http://reg.lab:5000");
  CHECK_OK(wv_upstream_base_url(u, "127.0.0.1:5001", url, sizeof url));
  CHECK_EQ_STR(url, "http://127.0.0.1:5001");
  CHECK_OK(wv_upstream_base_url(u, "localhost:5000", url, sizeof url));
  CHECK_EQ_STR(url, "http://localhost:5000");
  CHECK_OK(wv_upstream_base_url(u, "127.example.com", url, sizeof url));
  CHECK_EQ_STR(url, "https://127.example.com");
  CHECK_EQ_INT(wv_upstream_base_url(u, "quay.io", url, 8), WV_ETOOBIG);
  wv_upstream_free(u);
}

/* Which realms get a registry's Basic credentials: its own host, https unless insecure. */
TEST(realm_trust) {
  CHECK(wv_upstream_realm_trusted("quay.io", false, "https://quay.io/v2/auth"));
  CHECK(wv_upstream_realm_trusted("quay.io", false, "https://QUAY.io:8443/token"));
  CHECK(!wv_upstream_realm_trusted("quay.io", false, "http://quay.io/v2/auth"));
  CHECK(!wv_upstream_realm_trusted("quay.io", false, "https://evil.example/token"));
  CHECK(!wv_upstream_realm_trusted("quay.io", false, "https://quay.io.evil.example/token"));
  CHECK(!wv_upstream_realm_trusted("quay.io", false, "https://evil.example/quay.io"));
  CHECK(!wv_upstream_realm_trusted("quay.io", false, "https://quay.io@evil.example/token"));
  CHECK(wv_upstream_realm_trusted("docker.io", false, "https://auth.docker.io/token"));
  CHECK(!wv_upstream_realm_trusted("ghcr.io", false, "https://auth.docker.io/token"));
  /* Insecure (configured): plain http to its own host is fine, another host still not. */
  CHECK(wv_upstream_realm_trusted("127.0.0.1:5000", true, "http://127.0.0.1:5001/token"));
  CHECK(!wv_upstream_realm_trusted("127.0.0.1:5000", false, "http://127.0.0.1:5001/token"));
  CHECK(!wv_upstream_realm_trusted("127.0.0.1:5000", true, "http://127.0.0.2:5001/token"));
  CHECK(!wv_upstream_realm_trusted("127.0.0.1:5000", true, "http://localhost:5001/token"));
  CHECK(wv_upstream_realm_trusted("[::1]:5000", true, "http://[::1]:5001/token"));
  CHECK(!wv_upstream_realm_trusted("quay.io", true, "not a url"));
}

/* The credential policy as the upstream client applies it. */
TEST(perm_and_refusal) {
  char *names[] = {"alice"};
  wv_perm_t perms[] = {WV_PERM_PUSH};
  wv_config_registry_t confs[] = {{.host = "reg.lab:5000",
                                   .username = "op",
                                   .password = "pw",
                                   .allow_anonymous = WV_PERM_PULL,
                                   .allow_names = names,
                                   .allow_perms = perms,
                                   .nallow = 1},
                                  {.host = "open.lab"}};
  wv_registries_t regs = {confs, 2};
  wv_upstream_t *u;
  CHECK_OK(wv_upstream_new(&u, &regs));
  CHECK_EQ_INT(wv_upstream_perm(u, "reg.lab:5000", NULL), WV_PERM_PULL);
  CHECK_EQ_INT(wv_upstream_perm(u, "REG.lab:5000", "alice"), WV_PERM_PUSH);
  CHECK_EQ_INT(wv_upstream_perm(u, "reg.lab:5000", "bob"), WV_PERM_NONE);
  CHECK_EQ_INT(wv_upstream_perm(u, "reg.lab:5000", WV_WHO_WAVED), WV_PERM_PUSH);
  CHECK_EQ_INT(wv_upstream_perm(u, "open.lab", NULL), WV_PERM_PUSH);
  CHECK_EQ_INT(wv_upstream_perm(u, "elsewhere.io", NULL), WV_PERM_PUSH);
  /* A push the policy refuses never leaves the process. */
  char err[512];
  wv_http_req_t req = {.method = "PUT", .url = "/v2/x/manifests/latest"};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  CHECK_EQ_INT(wv_upstream_do(u, "reg.lab:5000", "x", true, NULL, &req, &resp, err, sizeof err),
               WV_EDENIED);
  CHECK_EQ_STR(err, "anonymous requests are not allowed to push to registry reg.lab:5000 with its "
                    "configured credentials (wave.registries.\"reg.lab:5000\".allow)");
  CHECK_EQ_INT(wv_upstream_do(u, "reg.lab:5000", "x", true, "bob", &req, &resp, err, sizeof err),
               WV_EDENIED);
  CHECK_HAS(err, "account 'bob' is not allowed to push to registry reg.lab:5000");
  wv_http_resp_free(&resp);
  wv_upstream_free(u);
}

/*
 * A registry that stalls (loopback): it accepts and never answers. With bearer set it answers
 * GET /v2/ with a Bearer challenge whose realm is its own /token, and stalls that instead.
 */
typedef struct {
  int fd, port, held[8], nheld;
  bool bearer;
  pthread_t tid;
} stall_t;

static void *stall_serve(void *arg) {
  stall_t *r = arg;
  for (;;) {
    int c = accept(r->fd, NULL, NULL);
    if (c < 0)
      return NULL;
    char buf[4096], ans[512];
    ssize_t n = read(c, buf, sizeof buf - 1);
    if (r->bearer && n > 0 && strncmp(buf, "GET /v2/ ", 9) == 0) {
      int len = snprintf(ans, sizeof ans,
                         "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer "
                         "realm=\"http://127.0.0.1:%d/token\",service=\"stall\"\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n",
                         r->port);
      if (write(c, ans, (size_t)len) < 0)
        (void)0;
      close(c);
    } else if (r->nheld < 8) {
      r->held[r->nheld++] = c; /* no answer, ever */
    } else {
      close(c);
    }
  }
}

static void stall_stop(void *arg) {
  stall_t *r = arg;
  shutdown(r->fd, SHUT_RDWR);
  pthread_join(r->tid, NULL);
  close(r->fd);
  for (int i = 0; i < r->nheld; i++)
    close(r->held[i]);
}

static int stall_start(stall_t *r, bool bearer) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  r->bearer = bearer;
  r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&sa, sizeof sa) || listen(r->fd, 16) ||
      getsockname(r->fd, (struct sockaddr *)&sa, &sl))
    return WV_EINTERNAL;
  r->port = ntohs(sa.sin_port);
  return pthread_create(&r->tid, NULL, stall_serve, r) ? WV_EINTERNAL : 0;
}

/* The caller's stop: raised stop_after_ms after t0 (as waved's shutdown would be). */
typedef struct {
  int64_t t0_ns, stop_after_ms;
} stop_at_t;

static bool stop_raised(void *arg) {
  const stop_at_t *s = arg;
  return wv_mono_ns() - s->t0_ns >= s->stop_after_ms * 1000000;
}

/* A GET under a stop raised after 300 ms: how long wv_upstream_do took, in ms (timeout 15 s). */
static int64_t stalled_get(bool bearer, int *rc) {
  static stall_t st[2];
  stall_t *r = &st[bearer];
  *rc = stall_start(r, bearer);
  if (*rc)
    return -1;
  wv_upstream_t *u = NULL;
  wv_registries_t none = {0};
  *rc = wv_upstream_new(&u, &none);
  if (*rc) {
    stall_stop(r);
    return -1;
  }
  wv_upstream_set_timeouts(u, 15000, 15000);
  char registry[64], err[512] = "";
  snprintf(registry, sizeof registry, "127.0.0.1:%d", r->port);
  stop_at_t stop = {wv_mono_ns(), 300};
  wv_http_req_t req = {.url = "/v2/lib/x/manifests/latest",
                       .timeout_ms = 15000,
                       .stop_cb = stop_raised,
                       .body_arg = &stop};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  *rc = wv_upstream_do(u, registry, "lib/x", false, NULL, &req, &resp, err, sizeof err);
  int64_t ms = (wv_mono_ns() - stop.t0_ns) / 1000000;
  wv_http_resp_free(&resp);
  wv_upstream_free(u);
  stall_stop(r);
  return ms;
}

/* The /v2/ auth probe and the token GET end with their caller's stop, not the upstream timeout. */
TEST(stop_ends_auth_probe_and_token_get) {
  CHECK_OK(wv_http_global_init());
  int rc = 0;
  int64_t ms = stalled_get(false, &rc); /* /v2/ itself stalls */
  CHECK_EQ_INT(rc, WV_ECLOSED);
  CHECK(ms >= 300 && ms < 5000);
  ms = stalled_get(true, &rc); /* /v2/ answers 401 Bearer; the token service stalls */
  CHECK_EQ_INT(rc, WV_ECLOSED);
  CHECK(ms >= 300 && ms < 5000);
  wv_http_global_cleanup();
}

WV_TESTS(T(challenge_bearer), T(challenge_basic_and_escapes), T(challenge_rejects), T(endpoints),
         T(realm_trust), T(perm_and_refusal), T(stop_ends_auth_probe_and_token_get))
