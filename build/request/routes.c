/*
 * build/request/routes.c — thin handlers for the container-request routes: parse the
 * path, call build/request/request.h or the store, answer. Every route here may write
 * to the store or call upstream registries, so all run on workers, except the POSTs of a
 * container request: they start on the IO loop, which handles a request for an image already
 * seen and parks it on its group commit, and defer everything else to a worker
 * (wv_creq_handle_flags, docs/container-requests.md step 3).
 */
#include "build/request/request.h"
#include "build/request/records.h"
#include "build/build_api.h"
#include "build/mirror/mirror.h"
#include "core/err.h"
#include "core/json.h"
#include "core/ratelimit.h"
#include "core/timefmt.h"
#include "core/trace.h"
#include "http/resp.h"
#include "http/router.h"
#include "registry/token.h"
#include "scan/scan.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BASIC_REALM "Basic realm=Wave Authentication"

/* Tokens and request ids are lowercase alphanumerics; anything else cannot exist. */
static const char *id_param(const wv_req_t *req, const char *name) {
  const char *id = wv_req_param(req, name);
  return wv_record_id_valid(id) ? id : NULL;
}

static const wv_app_t *app_of(const wv_req_t *req) { return req->app; }

/* A request parked on the group commit of its records (arena memory). */
typedef struct {
  wv_req_t *req;
  wv_resp_t *resp;
} parked_t;

/* Its records are durable (or failed): answers it, on the store's committer thread. */
static void submitted(void *arg, int rc, json_object *out) {
  parked_t *p = arg;
#ifdef WV_CREQ_TRACE
  wv_trace_from_batch(p->req->trace);
#endif
  if (!rc)
    rc = wv_resp_json(p->req, p->resp, 200, out);
  if (rc && wv_resp_error(p->req, p->resp, rc, NULL))
    p->resp->status = 0; /* the server answers 500 */
  wv_req_complete(p->req);
}

static int submit(wv_req_t *req, wv_resp_t *resp, bool v2) {
  json_object *out = NULL;
  const char *msg = NULL;
  int64_t retry = 0;
  parked_t *p = wv_arena_alloc(req->arena, sizeof *p);
  if (!p)
    return WV_ENOMEM;
  *p = (parked_t){req, resp};
  if (!req->on_worker && !app_of(req)->cfg->inline_creq)
    return WV_DEFER;
#ifdef WV_CREQ_TRACE
  if (!req->on_worker && wv_trace_worker_only())
    return WV_DEFER;
#endif
  unsigned flags = req->on_worker ? 0 : WV_CREQ_ON_LOOP; /* a deferred request holds no permit */
  int rc = wv_creq_handle_flags(app_of(req), req->arena, req->body, req->body_len, v2,
                                req->client_ip[0] ? req->client_ip : NULL, &out, &msg, &retry,
                                submitted, p, &flags);
  if (rc == WV_PARKED)
    return rc;
  if (rc == WV_DEFER) /* the worker runs this handler again */
    return rc;
  if (rc == WV_EAUTH) /* contract §1.3: an invalid Platform token is a 401 with no body */
    return wv_resp_api_error(req, resp, 401, NULL);
  if (rc == WV_EBUSY && retry > 0) { /* a rate limit: 429, and when to come back */
    const char *after = wv_arena_sprintf(req->arena, "%lld", (long long)retry);
    int hrc = after ? wv_resp_error(req, resp, rc, msg) : WV_ENOMEM;
    return hrc ? hrc : wv_resp_header(resp, "Retry-After", after);
  }
  if (rc)
    return wv_resp_error(req, resp, rc, msg);
  return wv_resp_json(req, resp, 200, out);
}

static int submit_v2(wv_req_t *req, wv_resp_t *resp) { return submit(req, resp, true); }

static int submit_v1(wv_req_t *req, wv_resp_t *resp) { return submit(req, resp, false); }

/* Reads a record copy into *val (freed by an arena cleanup). */
static int load(wv_req_t *req, wv_db_t db, const char *key, char **val, size_t *len) {
  int rc = wv_store_get(app_of(req)->store, db, key, val, len, NULL);
  if (rc == 0 && wv_arena_on_cleanup(req->arena, free, *val)) {
    free(*val);
    rc = WV_ENOMEM;
  }
  return rc;
}

/* Loads the record of db keyed by the route's {param}; WV_ENOTFOUND when the
 * parameter is not a valid id or nothing is stored under it. */
static int load_param(wv_req_t *req, const char *param, wv_db_t db, const char **key, char **val,
                      size_t *len) {
  *key = id_param(req, param);
  return *key ? load(req, db, *key, val, len) : WV_ENOTFOUND;
}

/* The contract §3.4 404 for an unknown token, naming it as the client sent it. */
static int missing_token(wv_req_t *req, wv_resp_t *resp) {
  return wv_resp_error(req, resp, WV_ENOTFOUND,
                       wv_arena_sprintf(req->arena, "Missing container record for token: %s",
                                        wv_req_param(req, "token")));
}

/* GET /container-token/{token}: contract §3.4 from the persisted record. */
static int describe(wv_req_t *req, wv_resp_t *resp) {
  json_object *rec = NULL, *out = NULL;
  int rc = wv_record_load(app_of(req), wv_req_param(req, "token"), &rec);
  if (rc == WV_ENOTFOUND)
    return missing_token(req, resp);
  if (!rc) {
    out = wv_record_describe(rec);
    rc = out ? 0 : WV_ENOMEM;
  }
  json_object_put(rec);
  return rc ? wv_resp_error(req, resp, rc, NULL) : wv_resp_json(req, resp, 200, out);
}

/* GET /v1alpha2/container/{requestId}: the persisted record as stored (contract §3.5). */
static int record(wv_req_t *req, wv_resp_t *resp) {
  const char *id;
  char *val = NULL;
  size_t len = 0;
  int rc = load_param(req, "requestId", WV_DB_REQUESTS, &id, &val, &len);
  if (rc == WV_ENOTFOUND)
    return wv_resp_api_error(req, resp, 404, NULL);
  if (rc)
    return wv_resp_error(req, resp, rc, NULL);
  wv_resp_static(resp, 200, "application/json", val, len);
  return 0;
}

/* GET /v1alpha2/container/{requestId}/status: reads the token store (contract §3.6). */
static int status(wv_req_t *req, wv_resp_t *resp) {
  const char *id;
  char *val = NULL;
  size_t len = 0;
  int rc = load_param(req, "requestId", WV_DB_TOKENS, &id, &val, &len);
  if (rc == WV_ENOTFOUND)
    return wv_resp_api_error(req, resp, 404, NULL);
  wv_token_rec_t t;
  rc = rc ? rc : wv_token_decode(req->arena, val, len, &t);
  json_object *out = NULL;
  if (!rc && (t.kind == WV_TOKEN_BUILD || t.kind == WV_TOKEN_FREEZE))
    out = wv_build_container_status(app_of(req), req->arena, &t, wv_now_ns());
  else if (!rc && t.kind == WV_TOKEN_MIRROR)
    out = wv_mirror_status(app_of(req), &t, wv_now_ns());
  else if (!rc)
    out = wv_record_status(&t, wv_now_ns());
  if (!rc && !out)
    rc = WV_ENOMEM;
  rc = rc ? rc : wv_scan_status_fill(app_of(req), &t, out); /* SCANNING, counts, verdict */
  if (rc)
    json_object_put(out);
  return rc ? wv_resp_error(req, resp, rc, NULL) : wv_resp_json(req, resp, 200, out);
}

/*
 * 0 when the request carries HTTP Basic credentials of a wave.accounts entry,
 * WV_ENOTFOUND when it carries none, WV_EAUTH when they are wrong (or
 * malformed: only those count as failures for wave.auth.failure-rate).
 */
static int basic_check(wv_req_t *req) {
  bool bad = false;
  if (wv_req_basic_account(req, app_of(req)->cfg, &bad))
    return 0;
  return bad ? WV_EAUTH : WV_ENOTFOUND;
}

/* The 429 of a client IP past wave.auth.failure-rate. */
static int auth_throttled(wv_req_t *req, wv_resp_t *resp, int64_t retry) {
  const char *after = wv_arena_sprintf(req->arena, "%lld", (long long)retry);
  const char *msg =
      wv_arena_sprintf(req->arena,
                       "Too many failed authentications from IP %s - retry in "
                       "%lld seconds",
                       req->client_ip[0] ? req->client_ip : "unknown", (long long)retry);
  int rc = after && msg ? wv_resp_api_error(req, resp, 429, msg) : WV_ENOMEM;
  return rc ? rc : wv_resp_header(resp, "Retry-After", after);
}

/*
 * HTTP Basic authentication under wave.auth.failure-rate: a client IP past
 * its failures is refused (429) before its credentials are even checked, and
 * each wrong credential takes one permit. Returns 0 when authenticated,
 * WV_ANSWERED when resp holds the answer (401 or 429), or a negative code.
 */
static int basic_auth(wv_req_t *req, wv_resp_t *resp) {
  wv_ratelimit_t *rl = app_of(req)->auth_limit;
  const char *ip = req->client_ip[0] ? req->client_ip : NULL;
  int64_t retry = 0;
  if (rl && wv_ratelimit_peek(rl, NULL, ip, &retry) == WV_EBUSY) {
    int rc = auth_throttled(req, resp, retry);
    return rc ? rc : WV_ANSWERED;
  }
  int rc = basic_check(req);
  if (rc == 0)
    return 0;
  if (rc == WV_EAUTH && rl)
    wv_ratelimit_acquire(rl, NULL, ip, NULL);
  rc = wv_resp_api_error(req, resp, 401, NULL);
  rc = rc ? rc : wv_resp_header(resp, "WWW-Authenticate", BASIC_REALM);
  return rc ? rc : WV_ANSWERED;
}

/* DELETE /container-token/{token}: evicts the token so pulls stop (contract §4.2). */
static int evict(wv_req_t *req, wv_resp_t *resp) {
  int rc = basic_auth(req, resp);
  if (rc)
    return rc;
  const char *t;
  char *val = NULL;
  size_t len = 0;
  rc = load_param(req, "token", WV_DB_TOKENS, &t, &val, &len);
  if (rc == WV_ENOTFOUND)
    return missing_token(req, resp);
  rc = rc ? rc : wv_store_del(app_of(req)->store, WV_DB_TOKENS, t);
  if (rc)
    return wv_resp_error(req, resp, rc, NULL);
  wv_resp_static(resp, 200, NULL, "", 0);
  return 0;
}

/* Contract §2 endpoint catalogue, container-request rows. POST bodies use server.max-body-size. */
static const wv_route_t creq_routes[] = {
    {WV_M_POST, "/v1alpha2/container", submit_v2, WV_ROUTE_INLINE, 0},
    {WV_M_POST, "/container-token", submit_v1, WV_ROUTE_INLINE, 0},
    {WV_M_GET, "/container-token/{token}", describe, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_DELETE, "/container-token/{token}", evict, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha2/container/{requestId}", record, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha2/container/{requestId}/status", status, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
};

int wv_creq_routes_register(wv_router_t *r) {
  return wv_router_add(r, creq_routes, sizeof creq_routes / sizeof creq_routes[0]);
}
