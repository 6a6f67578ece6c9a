/*
 * registry/proxy.c — requests under /v2/: parsing, tokens, the hot path, tags.
 *
 * DESIGN
 *
 * Every /v2 pull starts on the IO loop (an inline route). The loop parses the
 * path, then answers from the state store when everything it needs is
 * already there, using zero-copy views in one read-only LMDB transaction
 * (a snapshot, so the three lookups cost one transaction):
 *   1. the token record exists (a view that copies nothing: a deleted or
 *      expired token is a 404 at once);
 *   2. the token's hot record T/<token> (registry, image, kind, flags — a
 *      few short lines, no JSON), written by the first worker that loaded
 *      the full record;
 *   3. the cached manifest or blob entry (registry/cache.h).
 * A manifest hit is copied into the response; a blob hit is a CAS file
 * response or a 307. Anything else — unknown hot record, cache miss, an
 * upstream blob, tags, an error that needs the full record to word it — is
 * deferred to a worker (WV_DEFER) with the parsed context, where the full
 * token record is read and the request is resolved against the upstream.
 *
 * Basic credentials on the plain form are checked on the loop only when that
 * is cheap (a pair verified before, a legacy value): a PBKDF2 verification
 * (hundreds of ms) would stall every connection of the loop, so such a
 * request is deferred before anything else and checked on its worker.
 *
 * Pull rate limit (contract §5.3 step 1, §9.1): a manifest request by digest
 * takes one pull permit of the token's account (the hot record names it) or
 * of the client's address (plain form, anonymous tokens), before anything
 * else is looked up. It is taken where the key is first known — on the loop
 * for the plain form and for tokens with a hot record, else on the worker —
 * and only once (pull_counted). A permit the loop took for a request it then
 * hands to a worker is given back there and taken again by the worker: a
 * request no worker runs (503, worker queue full) costs none. With limits off app->pull_limit is
 * NULL and this costs one test per request. A cluster-wide limiter (state.backend: redis) asks
 * Redis, so its permit is always taken on the worker.
 *
 * The handlers are made of steps (the token checks, the pull permit, the auth
 * gate): each returns 0 to let the request go on, or WV_ANSWERED (http/http.h)
 * once it filled resp, WV_DEFER, or an error; the caller tests the return
 * value alone. The route table is registry/routes.c.
 */
#include "registry/proxy.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "registry/container_config.h"
#include "registry/mediatype.h"
#include "registry/proxy_int.h"
#include "registry/upstream.h"
#include "registry/usage.h"
#include "storage/embedded.h"
#include "storage/store.h"

#include <arpa/inet.h>
#include <string.h>

#define TAGS_MAX_BODY (4u << 20)

static int reg_error(wv_req_t *req, wv_resp_t *resp, wv_regerr_t code, int status,
                     const char *msg) {
  return wv_resp_registry_error(req, resp, code, status, msg, NULL);
}

/* What a step returns once it filled resp: rc (an error while answering) or WV_ANSWERED. */
static int answered(int rc) { return rc ? rc : WV_ANSWERED; }

static int unknown_token(wv_req_t *req, wv_resp_t *resp, const char *token) {
  return answered(
      reg_error(req, resp, WV_REGERR_NOT_FOUND, 404,
                wv_arena_sprintf(req->arena, "Unknown Wave container for token '%s'", token)));
}

static int exists_cb(void *arg, const void *val, size_t len, int64_t expires_ms) {
  (void)arg, (void)val, (void)len, (void)expires_ms;
  return 1;
}

bool wv__proxy_has_config(wv_pctx_t *ctx, wv_arena_t *a) {
  if (!ctx->have_rec)
    return ctx->have_hot && ctx->hot.has_cc;
  if (!ctx->rec.cc_json)
    return false;
  wv_container_config_t cc;
  if (wv_container_config_parse(a, ctx->rec.cc_json, strlen(ctx->rec.cc_json), &cc, NULL))
    return true; /* a broken config must surface as an error, not as pass-through */
  return !wv_container_config_is_empty(&cc);
}

int wv__proxy_respond_manifest(wv_req_t *req, wv_resp_t *resp, const wv_cache_entry_t *e) {
  wv_resp_static(resp, 200, e->media_type[0] ? e->media_type : NULL, e->body, e->body_len);
  wv_resp_header(resp, "Docker-Content-Digest", e->digest);
  wv_resp_header(resp, "Etag", e->digest);
  return 0;
}

/* ---- the pull rate limit (loop or worker) -------------------------------------- */

static bool pull_counts(const wv_pctx_t *ctx) {
  return ctx->app->pull_limit && !ctx->pull_counted && ctx->rt.kind == WV_V2_MANIFESTS &&
         ctx->rt.is_digest;
}

/* Takes the permit of user (NULL: the client's address): 0, or over the limit answers 429
 * (WV_ANSWERED). */
static int take_pull(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx, const char *user) {
  int64_t retry = 0;
  ctx->pull_counted = true;
  ctx->pull_user = user;
  if (wv_ratelimit_acquire(ctx->app->pull_limit, user, req->client_ip, &retry) == 0)
    return 0;
  const char *msg = wv_ratelimit_message(req->arena, ctx->app->pull_limit, user, req->client_ip);
  const char *after = wv_arena_sprintf(req->arena, "%lld", (long long)retry);
  if (!msg || !after)
    return WV_ENOMEM;
  int rc = reg_error(req, resp, WV_REGERR_TOOMANYREQUESTS, 429, msg);
  return answered(rc ? rc : wv_resp_header(resp, "Retry-After", after));
}

static const char *client_ip(const wv_req_t *req) {
  return req->client_ip[0] ? req->client_ip : NULL;
}

/*
 * wave.auth.failure-rate on the plain form, as on the API (build/routes.c):
 * a request that carries credentials from a client IP past its failed Basic
 * authentications gets 429 TOOMANYREQUESTS with Retry-After before they are
 * checked (a check may cost a slow hash); wrong ones take a permit (auth_refused, on the loop
 * or, when the check needs the slow hash, on the worker: plain_auth_worker). Anonymous pulls are
 * not gated. 0 when the request may go on, else WV_ANSWERED.
 */
static int auth_gate(wv_req_t *req, wv_resp_t *resp, const wv_app_t *app) {
  wv_ratelimit_t *rl = app->auth_limit;
  int64_t retry = 0;
  if (!rl || !wv_req_header(req, "Authorization") ||
      wv_ratelimit_peek(rl, NULL, client_ip(req), &retry) != WV_EBUSY)
    return 0;
  const char *after = wv_arena_sprintf(req->arena, "%lld", (long long)retry);
  const char *msg = wv_arena_sprintf(
      req->arena, "Too many failed authentications from IP %s - retry in %lld seconds",
      client_ip(req) ? client_ip(req) : "unknown", (long long)retry);
  if (!after || !msg)
    return WV_ENOMEM;
  int rc = reg_error(req, resp, WV_REGERR_TOOMANYREQUESTS, 429, msg);
  return answered(rc ? rc : wv_resp_header(resp, "Retry-After", after));
}

/* Wrong Basic credentials on the plain form: a permit of the IP's failure budget, 401. */
static int auth_refused(wv_req_t *req, wv_resp_t *resp, const wv_pctx_t *ctx) {
  if (ctx->app->auth_limit)
    wv_ratelimit_acquire(ctx->app->auth_limit, NULL, client_ip(req), NULL);
  int rc = reg_error(req, resp, WV_REGERR_UNAUTHORIZED, 401, "Invalid credentials");
  return answered(rc ? rc : wv_resp_header(resp, "WWW-Authenticate", "Basic realm=\"waved\""));
}

/* Plain form, once ctx->who is known: what its credentials may do, its pull permit (0, or
 * WV_ANSWERED with a 429). */
static int plain_account(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  ctx->restricted = !ctx->frozen && wv__proxy_restricted(ctx->app, ctx->registry, ctx->who);
  if (pull_counts(ctx))
    return take_pull(req, resp, ctx, ctx->who);
  return 0;
}

/*
 * Plain form, on the worker: Basic credentials the loop could not check
 * without the slow hash (wv_req_basic_account_quick). The IP's failure budget
 * was looked at on the loop (auth_gate); a wrong secret takes a permit here.
 */
static int plain_auth_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  bool bad = false;
  ctx->who = wv_req_basic_account(req, ctx->app->cfg, &bad);
  if (bad)
    return auth_refused(req, resp, ctx);
  return plain_account(req, resp, ctx);
}

/* ---- the hot path (IO loop) ------------------------------------------------- */

/*
 * True for a host that names an address rather than a registry: anything
 * inet_aton() accepts (dotted, hex, octal and shortened IPv4: 0x7f.1,
 * 2130706433), a bracketed IPv6 literal, a name with a trailing dot (which
 * skips the search list and the literal checks), and localhost names.
 */
static bool names_address(const char *registry) {
  char host[256];
  size_t n = registry[0] == '[' ? strcspn(registry, "]") + 1 : strcspn(registry, ":");
  if (n >= sizeof host)
    return true;
  memcpy(host, registry, n);
  host[n] = '\0';
  struct in_addr a4;
  size_t len = strlen(host);
  return host[0] == '[' || inet_aton(host, &a4) || (len && host[len - 1] == '.') ||
         strcmp(host, "localhost") == 0 ||
         (len > 10 && strcmp(host + len - 10, ".localhost") == 0) || wv_ref_is_loopback(registry);
}

/*
 * The plain form takes the registry from the URL, so it must not become a way
 * to reach this host's neighbours: a host that names an address is only
 * proxied when wave.registries lists it. (A DNS name that resolves to a
 * private address is not caught here: docs/security.md.)
 */
bool wv_proxy_registry_allowed(const wv_app_t *app, const char *registry) {
  if (!names_address(registry))
    return true;
  const wv_registries_t *regs = &app->cfg->registries;
  for (size_t i = 0; i < regs->len; i++)
    if (strcmp(regs->items[i].host, registry) == 0)
      return true;
  return false;
}

static int v2_worker(wv_req_t *req, wv_resp_t *resp);

/*
 * Wave's pulls counter (docs/compatibility.md, "Credential validation and usage metrics"): a GET
 * answered with a single-image manifest (an index is not a pull), for the token's account, on the
 * token's platform.
 */
void wv__proxy_count_pull(wv_req_t *req, const wv_resp_t *resp, const wv_pctx_t *ctx) {
  const char *ct = resp->content_type;
  if (req->method != WV_M_GET || resp->status != 200 || !ct || strstr(ct, "index") ||
      strstr(ct, "list") || ctx->rt.kind != WV_V2_MANIFESTS)
    return;
  const char *user = ctx->token_form ? (ctx->have_hot ? ctx->hot.user : ctx->rec.user) : ctx->who;
  const char *plat = !ctx->token_form ? NULL
                     : ctx->have_hot  ? ctx->hot.platform
                                      : ctx->rec.platform;
  wv_usage_count(ctx->app, WV_USAGE_PULLS, user, plat);
}

/* The cache key of a manifest request, NULL when it is not cached by key. */
static const char *manifest_key(wv_req_t *req, const wv_pctx_t *ctx) {
  if (!ctx->rt.is_digest)
    return ctx->token_form ? req->path : NULL;
  return wv_cache_key_manifest(req->arena, ctx->registry, ctx->image, ctx->rt.reference);
}

/* Token form: 0 with the hot record, WV_DEFER, or WV_ANSWERED (404: no such token). */
static int hot_token(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx, wv_store_snap_t *snap) {
  int rc = wv_store_snap_view(snap, WV_DB_TOKENS, ctx->rt.token, exists_cb, NULL);
  if (rc == WV_ENOTFOUND || rc == WV_EINVAL || rc == WV_ETOOBIG)
    return unknown_token(req, resp, ctx->rt.token);
  if (rc != 1)
    return WV_DEFER;
  if (wv_cache_snap_token_get(snap, req->arena, ctx->rt.token, &ctx->hot))
    return WV_DEFER;
  ctx->have_hot = true;
  if (ctx->hot.kind == WV_TOKEN_FREEZE || ctx->hot.kind == WV_TOKEN_MIRROR ||
      strcmp(ctx->hot.image, ctx->rt.image) != 0)
    return WV_DEFER; /* the worker words these errors from the full record */
  ctx->registry = ctx->hot.registry;
  ctx->image = ctx->rt.image;
  return 0;
}

/*
 * The token checks (token form) and the cache entry, from one snapshot:
 * 0 with *e filled, WV_DEFER, or WV_ANSWERED (an error answered).
 */
static int hot_lookup(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx, wv_store_snap_t *snap,
                      wv_cache_entry_t *e) {
  if (ctx->token_form) {
    int rc = hot_token(req, resp, ctx, snap);
    if (rc)
      return rc;
    if (pull_counts(ctx) && (!ctx->hot.has_user || wv_ratelimit_shared(ctx->app->pull_limit)))
      return WV_DEFER; /* an older hot record, or a cluster-wide bucket: the worker's */
    if (pull_counts(ctx) && (rc = take_pull(req, resp, ctx, ctx->hot.user)))
      return rc;
  }
  if (ctx->rt.kind == WV_V2_TAGS)
    return WV_DEFER;
  const char *key =
      ctx->rt.kind == WV_V2_MANIFESTS
          ? manifest_key(req, ctx)
          : wv_cache_key_blob(req->arena, ctx->registry, ctx->image, ctx->rt.reference);
  if (!key || wv_cache_snap_get(snap, req->arena, key, e))
    return WV_DEFER;
  return 0;
}

static int v2_loop(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx);

int wv_proxy_v2_handler(wv_req_t *req, wv_resp_t *resp) {
  wv_pctx_t *ctx = wv_arena_calloc(req->arena, sizeof *ctx);
  if (!ctx)
    return WV_ENOMEM;
  ctx->app = req->app;
  int rc = v2_loop(req, resp, ctx);
  if (rc == WV_DEFER && ctx->pull_counted) {
    /* The worker takes it again (v2_worker): a request no worker runs costs no permit. */
    wv_ratelimit_refund(ctx->app->pull_limit, ctx->pull_user, req->client_ip);
    ctx->pull_counted = false;
  }
  return rc;
}

/* The IO loop's part of a /v2 request: 0 or WV_ANSWERED (answered here), WV_DEFER (v2_worker
 * goes on), or an error. */
static int v2_loop(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  const char *msg = NULL;
  int rc = wv_route_parse(req->arena, req->path, &ctx->rt, &msg);
  if (rc)
    return rc == WV_ENOTFOUND ? reg_error(req, resp, WV_REGERR_NOT_FOUND, 404, msg) : rc;
  /* HEAD works on manifests and (a waved extension, see docs) blobs. */
  if (ctx->rt.kind == WV_V2_TAGS && req->method == WV_M_HEAD)
    return reg_error(req, resp, WV_REGERR_UNKNOWN, 400,
                     wv_arena_sprintf(req->arena, "Invalid request HEAD '%s'", req->path));
  if (ctx->rt.kind == WV_V2_TAGS && strcmp(ctx->rt.reference, "list") != 0)
    return reg_error(req, resp, WV_REGERR_UNKNOWN, 400,
                     wv_arena_sprintf(req->arena, "Invalid request path '%s'", req->path));
  req->user = ctx;
  req->defer = v2_worker;
  ctx->token_form = ctx->rt.token != NULL;
  if (!ctx->token_form) {
    /* /v2/wave/freeze/...: waved's own frozen SIFs (build_pull.c), not Docker Hub's. */
    const char *own = wv_config_authority(ctx->app->cfg);
    ctx->frozen = own && strcmp(ctx->rt.name, WV_EMBEDDED_FREEZE_REPO) == 0;
    ctx->registry = ctx->frozen ? own : ctx->rt.registry;
    ctx->image = ctx->rt.image;
    if (!ctx->frozen && !wv_proxy_registry_allowed(ctx->app, ctx->registry))
      return reg_error(req, resp, WV_REGERR_NOT_FOUND, 404,
                       wv_arena_sprintf(req->arena,
                                        "Registry '%s' cannot be pulled through this server",
                                        ctx->registry));
    /* The plain form acts for its Basic account, else anonymously. */
    if ((rc = auth_gate(req, resp, ctx->app)))
      return rc;
    bool bad = false, slow = false;
    ctx->who = wv_req_basic_account_quick(req, ctx->app->cfg, &bad, &slow);
    if (slow || (pull_counts(ctx) && wv_ratelimit_shared(ctx->app->pull_limit))) {
      /* the slow hash never runs on the loop, nor a round trip to a cluster-wide bucket */
      ctx->auth_on_worker = true;
      return WV_DEFER;
    }
    if (bad)
      return auth_refused(req, resp, ctx);
    if ((rc = plain_account(req, resp, ctx)))
      return rc;
    if (ctx->rt.kind == WV_V2_TAGS || ctx->restricted)
      return WV_DEFER; /* restricted: nothing cached for others before the upstream said yes */
  }
  wv_store_snap_t snap;
  if (wv_store_snap_begin(ctx->app->store, &snap))
    return WV_DEFER;
  wv_cache_entry_t e;
  rc = hot_lookup(req, resp, ctx, &snap, &e);
  wv_store_snap_end(&snap);
  if (!rc)
    rc = ctx->rt.kind != WV_V2_MANIFESTS ? wv__proxy_respond_blob_entry(req, resp, &e)
         : e.kind == WV_CACHE_MANIFEST   ? wv__proxy_respond_manifest(req, resp, &e)
                                         : WV_DEFER;
  wv_metrics_add(rc == WV_DEFER ? WV_METRICS_HOT_MISS : WV_METRICS_HOT_HIT, 1);
  if (!rc && ctx->app->cfg->wave_metrics_enabled)
    wv__proxy_count_pull(req, resp, ctx);
  return rc;
}

/* ---- tokens (worker) ------------------------------------------------------------ */

/* Writes the hot record so the next pull of this token stays on the loop. */
static void put_hot_record(wv_req_t *req, wv_pctx_t *ctx) {
  wv_cache_token_t t = {
      .kind = (int)ctx->rec.kind,
      .has_cc = wv__proxy_has_config(ctx, req->arena),
      .registry = ctx->rec.registry,
      .image = ctx->rec.image,
      .reference = ctx->rec.reference ? ctx->rec.reference : "",
      .user = ctx->rec.user,
      .has_user = true,
      .platform = ctx->rec.platform,
  };
  wv_buf_t b;
  wv_buf_init(&b, 64 << 10);
  const char *key = wv_cache_key_token(req->arena, ctx->rec.token);
  if (key && wv_cache_token_encode(&t, &b) == 0) {
    wv_store_op_t op = {WV_STORE_PUT, WV_DB_MANIFESTS, key, b.data, b.len, ctx->rec.expires_ms, 0};
    int rc = wv_store_submit(ctx->app->store, &op, NULL, NULL);
    if (rc)
      wv_debug("hot record for token %s not written: %s", ctx->rec.token, wv_strerror(rc));
  }
  wv_buf_free(&b);
  ctx->hot = t;
  ctx->have_hot = true;
}

/* Loads the token record and checks it may be pulled at this path: 0, WV_ANSWERED or an error. */
static int load_token(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  char *val = NULL;
  size_t len = 0;
  int rc = wv_store_get(ctx->app->store, WV_DB_TOKENS, ctx->rt.token, &val, &len, NULL);
  if (rc == WV_ENOTFOUND || rc == WV_EINVAL || rc == WV_ETOOBIG)
    return unknown_token(req, resp, ctx->rt.token);
  if (rc)
    return rc;
  rc = wv_token_decode(req->arena, val, len, &ctx->rec);
  free(val);
  if (rc) {
    wv_error("token %s: unreadable record: %s", ctx->rt.token, wv_strerror(rc));
    return rc == WV_ENOMEM ? rc : WV_ESTORE;
  }
  ctx->have_rec = true;
  const wv_token_rec_t *t = &ctx->rec;
  if (t->kind == WV_TOKEN_FREEZE || t->kind == WV_TOKEN_MIRROR) {
    const char *img = t->target_image ? t->target_image : t->container_image;
    return answered(reg_error(
        req, resp, WV_REGERR_NOT_FOUND, 404,
        wv_arena_sprintf(req->arena,
                         "Container '%s' is a %s image and must be pulled directly from '%s'",
                         t->token, wv_token_kind_name(t->kind), img ? img : "?")));
  }
  if (strcmp(t->image, ctx->rt.image) != 0)
    return answered(reg_error(req, resp, WV_REGERR_NOT_FOUND, 404,
                              wv_arena_sprintf(req->arena,
                                               "Unexpected container image request '%s' for token "
                                               "'%s' - expected '%s'",
                                               ctx->rt.image, t->token, t->image)));
  ctx->registry = t->registry;
  ctx->image = t->image;
  /* A token acts for the request that made it; an image waved built was
   * pushed by waved itself (the request's right to push was checked then). */
  ctx->who = t->kind == WV_TOKEN_BUILD ? WV_WHO_WAVED : t->user;
  if (!ctx->have_hot || !ctx->hot.has_user)
    put_hot_record(req, ctx);
  return 0;
}

/* ---- tags (worker) ----------------------------------------------------------------- */

static const char *copy_header(wv_req_t *req, const wv_http_resp_t *r, const char *name) {
  const char *v = wv_http_resp_header(r, name);
  return v ? wv_arena_strdup(req->arena, v) : NULL;
}

/* tags/list, proxied verbatim (status, body, Content-Type, Link). */
static int tags_worker(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  const char *path = wv_arena_sprintf(req->arena, "/v2/%s/tags/list%s%s", ctx->image,
                                      req->query ? "?" : "", req->query ? req->query : "");
  if (!path)
    return WV_ENOMEM;
  wv_http_req_t hr = {.url = path, .max_body = TAGS_MAX_BODY};
  wv_http_resp_t r;
  wv_fetch_err_t e;
  wv_http_resp_init(&r);
  int rc = wv_fetch(ctx->app, ctx->registry, ctx->image, ctx->who, &hr, &r, NULL, &e);
  if (rc) {
    wv_http_resp_free(&r);
    return wv_fetch_err_respond(req, resp, &e);
  }
  const char *ct = copy_header(req, &r, "Content-Type");
  const char *link = copy_header(req, &r, "Link");
  rc = wv_resp_bytes(req, resp, (int)r.status, ct ? ct : "application/json",
                     r.body.data ? r.body.data : "", r.body.len);
  if (!rc && link)
    wv_resp_header(resp, "Link", link);
  wv_http_resp_free(&r);
  return rc;
}

/* ---- worker entry ------------------------------------------------------------------- */

/*
 * Plain form, a caller the registry's credentials do not act for: the
 * upstream must say yes to the caller itself (a HEAD without the
 * credentials) before anything cached is served. 0 to go on, WV_ANSWERED or an error.
 */
static int plain_access(wv_req_t *req, wv_resp_t *resp, wv_pctx_t *ctx) {
  if (ctx->token_form || !ctx->restricted || ctx->rt.kind == WV_V2_TAGS)
    return 0;
  const char *path =
      wv_arena_sprintf(req->arena, "/v2/%s/%s/%s", ctx->image,
                       ctx->rt.kind == WV_V2_MANIFESTS ? "manifests" : "blobs", ctx->rt.reference);
  if (!path)
    return WV_ENOMEM;
  const char *hdrs[] = {"Accept: " WV_MT_ACCEPT_MANIFESTS, NULL};
  wv_http_req_t hr = {.method = "HEAD", .url = path, .headers = hdrs};
  wv_http_resp_t r;
  wv_fetch_err_t e;
  wv_http_resp_init(&r);
  int rc = wv_fetch(ctx->app, ctx->registry, ctx->image, ctx->who, &hr, &r, NULL, &e);
  long status = r.status;
  wv_http_resp_free(&r);
  if (rc)
    return answered(wv_fetch_err_respond(req, resp, &e));
  if (status == 401 || status == 403 || status == 404)
    return answered(
        wv_fetch_err_respond(req, resp,
                             (wv_fetch_err_status(&e, status, ctx->rt.kind == WV_V2_BLOBS,
                                                  ctx->registry, ctx->image, ctx->rt.reference),
                              &e)));
  return 0;
}

static int v2_worker(wv_req_t *req, wv_resp_t *resp) {
  wv_pctx_t *ctx = req->user;
  if (!ctx)
    return WV_EINTERNAL;
  int rc;
  if (ctx->auth_on_worker && (rc = plain_auth_worker(req, resp, ctx)))
    return rc;
  /* the plain form's permit, when the loop took and gave it back (its place on the loop) */
  if (!ctx->token_form && pull_counts(ctx) && (rc = take_pull(req, resp, ctx, ctx->who)))
    return rc;
  if (ctx->frozen)
    return wv__proxy_frozen_worker(req, resp, ctx);
  if ((rc = plain_access(req, resp, ctx)))
    return rc;
  if (ctx->token_form) {
    if ((rc = load_token(req, resp, ctx)))
      return rc;
    if (pull_counts(ctx) && (rc = take_pull(req, resp, ctx, ctx->rec.user)))
      return rc;
    /* Images waved builds: wait for the build, serve the embedded registry (build_pull.c). */
    if (ctx->rec.kind == WV_TOKEN_BUILD &&
        (rc = wv__proxy_build_worker(req, resp, ctx)) != WV_DEFER)
      return rc;
  }
  switch (ctx->rt.kind) {
  case WV_V2_MANIFESTS:
    rc = wv__proxy_manifest_worker(req, resp, ctx);
    if (!rc && ctx->app->cfg->wave_metrics_enabled)
      wv__proxy_count_pull(req, resp, ctx);
    return rc;
  case WV_V2_BLOBS:
    return wv__proxy_blob_worker(req, resp, ctx);
  default:
    return tags_worker(req, resp, ctx);
  }
}
