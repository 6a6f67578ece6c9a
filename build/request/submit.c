/*
 * build/request/submit.c — serving a plain container request (contract §3.7, §3.3):
 * verify the layers, expand the inclusions, check the image upstream, mint
 * the token and make both records durable before answering.
 *
 * The token record (what pulls read) and the persisted request record (what
 * the record endpoints read) are written in one atomic apply, so a crash
 * leaves both or neither; the answer is sent once they are on disk, so a 200
 * is never lost. Both writes are PUT_NX: a token that collides with a live
 * one (2^-62 per pair, but cheap to rule out) is redrawn.
 *
 * The HTTP handler does not wait for that write on its worker
 * (wv_creq_handle_async): the apply is queued with wv_store_submit_apply and
 * the request parks; the store's committer thread completes it once the
 * group commit that carries it is durable. Four workers used to cap the
 * group commit at four requests per fsync; now every request in flight
 * shares one (docs/benchmarks.md, "Container requests").
 */
#include "build/build.h"
#include "build/layers.h"
#include "build/mirror/request.h"
#include "build/request/records.h"
#include "build/request/request.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "core/rand.h"
#include "core/secret.h"
#include "core/timefmt.h"
#include "core/trace.h"
#include "http/http.h"
#include "registry/proxy.h"
#include "registry/token.h"
#include "scan/scan.h"
#include "storage/store.h"

#include <string.h>

#define MINT_ATTEMPTS 4

/* The refusal of an image whose registry names an address (registry/proxy.h). */
static const char *address_refused(wv_arena_t *a, const char *registry) {
  return wv_arena_sprintf(a,
                          "Registry '%s' names an address, not a registry, and wave.registries "
                          "does not list it",
                          registry);
}

/* Appends the layers of every containerIncludes image to r->cc (contract §6.6). */
static int expand_includes(const wv_app_t *app, wv_arena_t *a, wv_creq_t *r,
                           const wv_creq_plan_t *plan, const char **msg) {
  if (!r->n_includes)
    return 0;
  if (!app->upstream) {
    *msg = "Attribute `containerIncludes` cannot be resolved: no upstream registry access";
    return WV_EINVAL;
  }
  for (size_t i = 0; i < r->n_includes; i++) {
    wv_ref_t ref;
    const char *m = NULL;
    if (wv_ref_parse(a, r->includes[i], &ref, &m) == 0 &&
        !wv_proxy_registry_allowed(app, ref.registry)) {
      *msg = address_refused(a, ref.registry);
      return WV_EINVAL;
    }
    int rc = wv_layers_include_resolve(a, app, plan->user, r->includes[i], &plan->plat,
                                       &r->cc.layers, &r->cc.n_layers, msg);
    if (rc)
      return rc;
  }
  return 0;
}

static const char *json_text(wv_arena_t *a, json_object *o) {
  const char *s = o ? wv_json_compact(o) : NULL;
  return s ? wv_arena_strdup(a, s) : NULL;
}

/* scanLevels as "LOW,MEDIUM" (arena), NULL when none are allowed. */
const char *wv_creq_scan_levels(wv_arena_t *a, const wv_creq_t *r) {
  const char *s = NULL;
  for (size_t i = 0; i < r->n_scan_levels; i++)
    s = s ? wv_arena_sprintf(a, "%s,%s", s, r->scan_levels[i]) : r->scan_levels[i];
  return s;
}

static bool wants_scan(const wv_app_t *app, const wv_creq_t *r) {
  return r->scan_mode && strcmp(r->scan_mode, "none") != 0 && !r->dry_run && app->jobs;
}

/*
 * scanMode async/required (contract §8.1, §4.6): the scan of the image (its
 * name and upstream digest give the id; a cached id is shared), reserved
 * before the token so both records can name it. Dry runs scan nothing.
 */
static int reserve_scan(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                        const wv_creq_plan_t *plan, wv_creq_result_t *res) {
  if (!wants_scan(app, r))
    return 0;
  char digest[72], *id = wv_arena_alloc(a, WV_SCAN_ID_MAX + 1);
  if (!id)
    return WV_ENOMEM;
  bool known = wv_scan_image_digest(app, res->container_image, digest) == 0;
  int rc = wv_scan_reserve_image(app, res->container_image, known ? digest : NULL, false,
                                 plan->platform, id, &res->scan_new);
  res->scan_id = rc ? NULL : id;
  return rc;
}

/* Encodes the two records for token res->token; *tok and *rec are arena strings. */
static int encode_records(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                          const wv_creq_plan_t *plan, const char *client_ip, wv_creq_result_t *res,
                          wv_buf_t *tok, const char **rec) {
  res->target_image = wv_arena_sprintf(a, "%s/wt/%s/%s", wv_config_authority(app->cfg), res->token,
                                       wv_ref_path_and_ref(a, &plan->image));
  if (!res->target_image)
    return WV_ENOMEM;
  wv_token_rec_t t = wv_creq_token_rec(res, &plan->image, plan, client_ip);
  t.kind = WV_TOKEN_CONTAINER;
  t.container_image = res->container_image;
  t.target_image = res->target_image;
  t.cc_json = res->cc_token_json;
  t.scan_id = res->scan_id;
  t.scan_mode = res->scan_id ? r->scan_mode : NULL;
  t.scan_levels = res->scan_id ? wv_creq_scan_levels(a, r) : NULL;
  wv_buf_reset(tok);
  int rc = wv_token_encode(&t, tok);
  if (rc)
    return rc;
  bool oom = false;
  json_object *cc = wv_record_cc_to_json(&r->cc, WV_RECORD_CC_FOR_RECORD, &oom);
  json_object *o = oom ? NULL : wv_record_new(r, plan, res, client_ip, cc);
  *rec = json_text(a, o);
  json_object_put(o);
  return *rec ? 0 : WV_ENOMEM;
}

wv_token_rec_t wv_creq_token_rec(const wv_creq_result_t *res, const wv_ref_t *ref,
                                 const wv_creq_plan_t *plan, const char *client_ip) {
  return (wv_token_rec_t){.token = res->token,
                          .registry = ref->registry,
                          .image = ref->path,
                          .reference = ref->reference,
                          .platform = plan->platform,
                          .user = plan->user,
                          .client_ip = client_ip,
                          .created_ms = res->created_ns / WV_NS_PER_MS,
                          .expires_ms = res->expires_ns / WV_NS_PER_MS};
}

/*
 * The two writes of a minted token: its token record and its persisted request record. The
 * record's expiry index entry is made at the token's expiry, next to the token's (one leaf of
 * the index, a page less per commit); the sweep moves it on to the record's own expiry
 * (wv_store_op_t.delta of a PUT: the early index time).
 */
static void record_ops(const wv_app_t *app, const wv_creq_result_t *res, const wv_buf_t *tok,
                       const char *rec, wv_store_op_t ops[2]) {
  ops[0] = (wv_store_op_t){.kind = WV_STORE_PUT_NX,
                           .db = WV_DB_TOKENS,
                           .key = res->token,
                           .val = tok->data,
                           .val_len = tok->len,
                           .expires_ms = res->expires_ns / WV_NS_PER_MS};
  ops[1] = (wv_store_op_t){.kind = WV_STORE_PUT_NX,
                           .db = WV_DB_REQUESTS,
                           .key = res->token,
                           .val = rec,
                           .val_len = strlen(rec),
                           .expires_ms = (res->created_ns / WV_NS_PER_MS) + app->cfg->record_ttl_ms,
                           .delta = res->expires_ns / WV_NS_PER_MS};
}

int wv_creq_mint(const wv_creq_mint_t *m, wv_creq_encode_cb encode) {
  const wv_app_t *app = m->app;
  wv_creq_result_t *res = m->res;
  size_t len = (size_t)app->cfg->token_length;
  char *token = wv_arena_alloc(m->a, len + 1);
  wv_buf_t tok;
  wv_buf_init(&tok, WV_TOKEN_MAX_RECORD);
  int rc = token ? 0 : WV_ENOMEM;
  for (int attempt = 0; !rc && attempt < MINT_ATTEMPTS; attempt++) {
    const char *rec = NULL;
    rc = wv_rand_id(token, len, WV_RAND_ALNUM_LOWER);
    res->token = token;
    wv_buf_reset(&tok);
    rc = rc ? rc : encode(m, &tok, &rec);
    if (rc)
      break;
    wv_store_op_t ops[2];
    record_ops(app, res, &tok, rec, ops);
    rc = wv_store_apply(app->store, ops, 2, NULL);
    if (rc != WV_EEXISTS)
      break;
    wv_warn("container token collision, drawing another one");
    rc = attempt + 1 < MINT_ATTEMPTS ? 0 : WV_EINTERNAL;
  }
  wv_buf_free(&tok);
  return rc;
}

static int encode_plain(const wv_creq_mint_t *m, wv_buf_t *tok, const char **rec) {
  return encode_records(m->app, m->a, m->r, m->plan, m->client_ip, m->res, tok, rec);
}

/* Mints the token and writes both records durably. */
static int mint_and_store(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                          const wv_creq_plan_t *plan, const char *client_ip,
                          wv_creq_result_t *res) {
  wv_creq_mint_t m = {app, a, r, plan, client_ip, res, NULL};
  return wv_creq_mint(&m, encode_plain);
}

/*
 * Everything before the token: checks, includes, the image, the containerConfig texts.
 * on_loop: WV_DEFER where a step would wait (a layer to store, an upstream round trip).
 */
static int prepare(const wv_app_t *app, wv_arena_t *a, wv_creq_t *r, const wv_creq_plan_t *plan,
                   int64_t now_ns, bool on_loop, wv_creq_result_t *res, const char **msg) {
  memset(res, 0, sizeof *res);
  int rc = 0;
  if (r->cc.n_layers)
    rc = wv_container_config_validate(a, &r->cc, msg);
  if (!rc && on_loop)
    rc = wv_layers_check_known(a, app->cas, app->layer_memo, app->cfg, &r->cc, msg);
  else if (!rc)
    rc = wv_layers_check(a, app->cas, app->layer_memo, app->cfg, &r->cc, msg);
  rc = rc ? rc : expand_includes(app, a, r, plan, msg);
  if (!rc && app->upstream && on_loop)
    rc = wv_layers_image_known(app, app->tags, plan->user, &plan->image, app->cfg->tag_cache_ms)
             ? 0
             : WV_DEFER;
  else if (!rc && app->upstream)
    rc = wv_layers_image_check_exists(a, app, app->tags, plan->user, &plan->image,
                                      app->cfg->tag_cache_ms, msg);
  if (rc)
    return rc;
  /* An image this request augments: its upstream manifest and config are fetched now (once
   * for concurrent requests and pulls, nothing when cached), so the token's first pull asks
   * the upstream nothing (docs/proxy.md, "Cold pulls"). Best effort: the pull meets a failure
   * again and answers it. On the loop, only when that was done already. */
  bool augments = app->upstream && !r->dry_run && !wv_container_config_is_empty(&r->cc);
  if (augments && on_loop &&
      !wv_proxy_prefetch_done(app, plan->image.registry, plan->image.path, plan->user,
                              plan->image.reference, plan->platform))
    return WV_DEFER;
  if (augments && !on_loop)
    wv_proxy_prefetch(app, a, plan->image.registry, plan->image.path, plan->user,
                      plan->image.reference, plan->platform);
  bool oom = false;
  json_object *cc = wv_record_cc_to_json(&r->cc, WV_RECORD_CC_FOR_TOKEN, &oom);
  res->cc_token_json = json_text(a, cc);
  json_object_put(cc);
  res->container_image = wv_ref_full_name(a, &plan->image);
  res->created_ns = now_ns;
  res->expires_ns = now_ns + app->cfg->token_ttl_ms * WV_NS_PER_MS;
  return oom || !res->container_image ? WV_ENOMEM : 0;
}

int wv_creq_submit(const wv_app_t *app, wv_arena_t *a, wv_creq_t *r, const wv_creq_plan_t *plan,
                   const char *client_ip, int64_t now_ns, wv_creq_result_t *res, json_object **resp,
                   const char **msg) {
  *resp = NULL;
  int rc = prepare(app, a, r, plan, now_ns, false, res, msg);
  rc = rc ? rc : reserve_scan(app, a, r, plan, res);
  rc = rc ? rc : mint_and_store(app, a, r, plan, client_ip, res);
  if (rc && res->scan_new) /* nobody will start it: free the id for the next request */
    wv_scan_abandon(app, res->scan_id, "The container request could not be stored");
  if (rc)
    return rc;
  /*
   * Start is idempotent: a shared scan that is running or done is left alone,
   * and one whose reserver died before starting it starts here. A scan that
   * cannot start is recorded FAILED: the status then says so.
   */
  if (res->scan_id && wv_scan_start(app, res->scan_id, WV_SCAN_FOR_REQUEST, res->token))
    wv_warn("container request %s: scan %s could not start", res->token, res->scan_id);
  *resp = wv_creq_response(r, res);
  return *resp ? 0 : WV_ENOMEM;
}

/* A plain request parked on the group commit of its two records. Arena memory. */
typedef struct {
  wv_creq_mint_t m; /* m.res is &res */
  wv_creq_result_t res;
  int attempt;
  uint64_t rid; /* the request id its log lines carry */
  wv_creq_done_cb done;
  void *arg;
} parked_t;

static void parked_done(void *arg, int rc, int64_t value);

/*
 * Draws a token, encodes both records and queues them (copied by the store).
 * 0: parked_done runs later, maybe before this returns — the caller must not
 * touch p after a 0.
 */
static int parked_queue(parked_t *p) {
  size_t len = (size_t)p->m.app->cfg->token_length;
  char *token = wv_arena_alloc(p->m.a, len + 1);
  wv_buf_t tok;
  wv_buf_init(&tok, WV_TOKEN_MAX_RECORD);
  const char *rec = NULL;
  int rc = token ? wv_rand_id(token, len, WV_RAND_ALNUM_LOWER) : WV_ENOMEM;
  p->res.token = token;
  rc = rc ? rc : encode_plain(&p->m, &tok, &rec);
  if (!rc) {
    wv_store_op_t ops[2];
    record_ops(p->m.app, &p->res, &tok, rec, ops);
    WV_TRACE_CUR(WV_TRACE_QUEUED);
    rc = wv_store_submit_apply(p->m.app->store, ops, 2, parked_done, p);
  }
  wv_buf_free(&tok);
  return rc;
}

static void log_request(const wv_creq_plan_t *plan, const wv_creq_result_t *res) {
  wv_info("container request %s: %s -> %s (%s)", res->token, res->container_image,
          res->target_image, plan->user ? plan->user : "anonymous");
}

/* The committer thread: the records are durable (rc 0), collided or failed. */
static void parked_done(void *arg, int rc, int64_t value) {
  (void)value;
  parked_t *p = arg;
  wv_log_set_request(p->rid);
  if (rc == WV_EEXISTS && ++p->attempt < MINT_ATTEMPTS) {
    wv_warn("container token collision, drawing another one");
    rc = parked_queue(p);
    if (!rc) {
      wv_log_set_request(0);
      return;
    }
  } else if (rc == WV_EEXISTS) {
    rc = WV_EINTERNAL;
  }
  json_object *resp = rc ? NULL : wv_creq_response(p->m.r, &p->res);
  if (!rc && !resp)
    rc = WV_ENOMEM;
  if (!rc)
    log_request(p->m.plan, &p->res);
  wv_log_set_request(0);
  p->done(p->arg, rc, resp);
}

/*
 * A plain request: prepared on the caller's thread, then parked on its
 * records' group commit (WV_PARKED). A scan reservation, or a store queue
 * that is full, takes the blocking path instead (answer in *resp, 0); on the
 * loop (handle() deferred scans already) they are WV_DEFER.
 */
static int submit_parked(const wv_app_t *app, wv_arena_t *a, wv_creq_t *r,
                         const wv_creq_plan_t *plan, const char *client_ip, json_object **resp,
                         const char **msg, wv_creq_done_cb done, void *arg, bool on_loop) {
  wv_creq_result_t *res;
  if (wants_scan(app, r)) {
    if (!(res = wv_arena_alloc(a, sizeof *res)))
      return WV_ENOMEM;
    int rc = wv_creq_submit(app, a, r, plan, client_ip, wv_now_ns(), res, resp, msg);
    if (!rc)
      log_request(plan, res);
    return rc;
  }
  parked_t *p = wv_arena_calloc(a, sizeof *p);
  if (!p)
    return WV_ENOMEM;
  int rc = prepare(app, a, r, plan, wv_now_ns(), on_loop, &p->res, msg);
  if (rc)
    return rc;
  p->m = (wv_creq_mint_t){app, a, r, plan, client_ip, &p->res, NULL};
  p->rid = wv_log_request();
  p->done = done;
  p->arg = arg;
  rc = parked_queue(p);
  if (rc == 0)
    return WV_PARKED; /* p and a may be gone already */
  if (rc != WV_EBUSY || on_loop)
    return rc == WV_EBUSY ? WV_DEFER : rc;
  /* The store's queue is full: wait for room on this thread, as before. */
  rc = mint_and_store(app, a, r, plan, client_ip, &p->res);
  *resp = rc ? NULL : wv_creq_response(r, &p->res);
  if (!rc && !*resp)
    rc = WV_ENOMEM;
  if (!rc)
    log_request(plan, &p->res);
  return rc;
}

json_object *wv_creq_response(const wv_creq_t *r, const wv_creq_result_t *res) {
  json_object *o = json_object_new_object();
  char exp[WV_TIME_ISO_STRLEN];
  int rc = o ? wv_time_format_iso(res->expires_ns, exp, sizeof exp) : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "requestId", res->token);
  rc = rc ? rc : wv_json_add_str(o, "containerToken", res->token);
  rc = rc ? rc : wv_json_add_str(o, "targetImage", res->target_image);
  rc = rc ? rc : wv_json_add_str(o, "expiration", exp);
  rc = rc ? rc : wv_json_add_str(o, "containerImage", res->container_image);
  if (r->v2) {
    /* v2 adds freeze, mirror and succeeded (contract §3.3); a plain image is usable at once. */
    rc = rc ? rc : wv_json_add_bool(o, "freeze", r->freeze);
    rc = rc ? rc : wv_json_add_bool(o, "mirror", r->mirror);
    /* A scan makes clients poll the status (contract §3.3: no succeeded when scanId is set). */
    rc = rc ? rc : wv_json_add_str(o, "scanId", res->scan_id);
    if (!res->scan_id)
      rc = rc ? rc : wv_json_add_bool(o, "succeeded", true);
  }
  return wv_json_finish(o, rc);
}

/* Contract §3.2 step 8: every container request takes a pull permit (user, else client IP). */
static int take_pull(const wv_app_t *app, wv_arena_t *a, const wv_creq_plan_t *plan,
                     const char *client_ip, int64_t *retry_after_s, const char **msg) {
  if (!app->pull_limit)
    return 0;
  int rc = wv_ratelimit_acquire(app->pull_limit, plan->user, client_ip, retry_after_s);
  if (rc == WV_EBUSY)
    *msg = wv_ratelimit_message(a, app->pull_limit, plan->user, client_ip);
  return rc;
}

/*
 * wave.auth.failure-rate for towerAccessTokens: a client IP past its failed
 * authentications gets 429 before its token is checked (a check may cost a
 * slow hash per account).
 */
static int auth_gate(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, const char *client_ip,
                     int64_t *retry_after_s, const char **msg) {
  if (!app->auth_limit || !r->tower_access_token || !*r->tower_access_token)
    return 0;
  if (wv_ratelimit_peek(app->auth_limit, NULL, client_ip, retry_after_s) != WV_EBUSY)
    return 0;
  *msg = wv_arena_sprintf(a, "Too many failed authentications from IP %s - retry in %lld seconds",
                          client_ip ? client_ip : "unknown", (long long)*retry_after_s);
  return *msg ? WV_EBUSY : WV_ENOMEM;
}

/* Whether a request may be tried on an IO loop at all (wv_creq_handle_flags). */
static bool loop_capable(const wv_app_t *app, size_t len) {
  return len <= WV_CREQ_INLINE_MAX_BODY && app->store && !wv_ratelimit_shared(app->pull_limit) &&
         !wv_ratelimit_shared(app->auth_limit) && !wv_store_db_shared(app->store, WV_DB_TOKENS) &&
         !wv_store_db_shared(app->store, WV_DB_REQUESTS);
}

/*
 * Parse, check, submit. With done (the HTTP handler) a plain request parks on
 * its group commit (submit_parked); without (the unit tests), it waits.
 * flags: WV_CREQ_* (request.h), NULL = none.
 */
static int handle(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                  const char *client_ip, json_object **resp, const char **msg,
                  int64_t *retry_after_s, wv_creq_done_cb done, void *arg, unsigned *flags) {
  bool on_loop = flags && (*flags & WV_CREQ_ON_LOOP) && done;
  if (on_loop && !loop_capable(app, len))
    return WV_DEFER;
  /* In the arena: a parked request outlives this frame. */
  wv_creq_t *r = wv_arena_alloc(a, sizeof *r);
  wv_creq_plan_t *plan = wv_arena_alloc(a, sizeof *plan);
  wv_creq_result_t res;
  *resp = NULL;
  *msg = NULL;
  if (!r || !plan)
    return WV_ENOMEM;
  int rc = wv_creq_parse(a, body, len, (size_t)app->cfg->max_json_values, v2, r, msg);
  /* A towerAccessToken checked against salted account values costs slow hashes: a worker's. */
  if (!rc && on_loop && r->tower_access_token && *r->tower_access_token &&
      wv_secret_token_slow(app->cfg))
    return WV_DEFER;
  rc = rc ? rc : auth_gate(app, a, r, client_ip, retry_after_s, msg);
  rc = rc ? rc : wv_creq_check(a, app->cfg, r, plan, msg);
  if (rc == WV_EAUTH && app->auth_limit)
    wv_ratelimit_acquire(app->auth_limit, NULL, client_ip, NULL);
  /* A containerImage (of any kind of request) whose registry names an address. */
  if (!rc && r->container_image && *r->container_image && plan->image.registry &&
      !wv_proxy_registry_allowed(app, plan->image.registry)) {
    *msg = address_refused(a, plan->image.registry);
    rc = WV_EINVAL;
  }
  /* On the loop: what needs a worker (a mirror, a build, a scan, includes to resolve) goes
   * there before the permit is taken. */
  if (!rc && on_loop && (plan->kind != WV_CREQ_PLAIN || wants_scan(app, r) || r->n_includes))
    return WV_DEFER;
  rc = rc ? rc : take_pull(app, a, plan, client_ip, retry_after_s, msg);
  if (!rc && plan->kind == WV_CREQ_MIRROR)
    return wv_mirror_submit(app, a, r, plan, client_ip, wv_now_ns(), resp, msg);
  if (!rc && plan->kind == WV_CREQ_BUILD)
    return wv_build_submit(app, a, r, plan, client_ip, wv_now_ns(), resp, msg, retry_after_s);
  if (!rc && done) {
    rc = submit_parked(app, a, r, plan, client_ip, resp, msg, done, arg, on_loop);
    /* Deferred after its permit (an upstream round trip, a layer to store, a full store
     * queue): the permit goes back and the worker's run takes its own. So the request pays
     * once, and nothing when no worker runs it (a full worker queue answers 503). The loop
     * never holds a cluster-wide permit (loop_capable), so the refund is exact. */
    if (rc == WV_DEFER && on_loop)
      wv_ratelimit_refund(app->pull_limit, plan->user, client_ip);
    return rc;
  }
  rc = rc ? rc : wv_creq_submit(app, a, r, plan, client_ip, wv_now_ns(), &res, resp, msg);
  if (!rc)
    log_request(plan, &res);
  return rc;
}

int wv_creq_handle(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                   const char *client_ip, json_object **resp, const char **msg,
                   int64_t *retry_after_s) {
  return handle(app, a, body, len, v2, client_ip, resp, msg, retry_after_s, NULL, NULL, NULL);
}

int wv_creq_handle_async(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                         const char *client_ip, json_object **resp, const char **msg,
                         int64_t *retry_after_s, wv_creq_done_cb done, void *arg) {
  return handle(app, a, body, len, v2, client_ip, resp, msg, retry_after_s, done, arg, NULL);
}

int wv_creq_handle_flags(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                         const char *client_ip, json_object **resp, const char **msg,
                         int64_t *retry_after_s, wv_creq_done_cb done, void *arg, unsigned *flags) {
  return handle(app, a, body, len, v2, client_ip, resp, msg, retry_after_s, done, arg, flags);
}
