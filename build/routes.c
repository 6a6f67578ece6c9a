/*
 * build/routes.c — the build route table (contract §6.5): GET
 * /v1alpha1/builds/{buildId}, /status, /logs and /condalock, each a thin
 * handler over build/build_api.h (parse the id, load, answer).
 */
#include "build/build_api.h"
#include "core/err.h"
#include "http/resp.h"
#include "http/router.h"

/* The route's build id, NULL when it cannot be one (then nothing is looked up: 404). */
static const char *id_param(const wv_req_t *req) {
  const char *id = wv_req_param(req, "buildId");
  return wv_build_id_valid(id) ? id : NULL;
}

/* GET /v1alpha1/builds/{buildId}: WaveBuildRecord (contract §6.5). */
static int record(wv_req_t *req, wv_resp_t *resp) {
  const char *id = id_param(req);
  json_object *rec = NULL;
  wv_build_state_t state;
  int rc = id ? wv_build_record_load(req->app, req->arena, id, &rec, &state) : WV_ENOTFOUND;
  if (rc == WV_ENOTFOUND)
    return wv_resp_api_error(req, resp, 404, NULL);
  return rc ? rc : wv_resp_json(req, resp, 200, rec);
}

/* GET /v1alpha1/builds/{buildId}/status: BuildStatusResponse (contract §6.5). */
static int status(wv_req_t *req, wv_resp_t *resp) {
  const char *id = id_param(req);
  json_object *o = NULL;
  int rc = id ? wv_build_status_load(req->app, req->arena, id, &o) : WV_ENOTFOUND;
  if (rc == WV_ENOTFOUND)
    return wv_resp_api_error(req, resp, 404, NULL);
  return rc ? rc : wv_resp_json(req, resp, 200, o);
}

/* The log of the route's build, in the arena; WV_ENOTFOUND when there is none. */
static int load_log(wv_req_t *req, char **out, size_t *len) {
  const char *id = id_param(req);
  return id ? wv_build_log(req->app, req->arena, id, out, len) : WV_ENOTFOUND;
}

static int logs(wv_req_t *req, wv_resp_t *resp) {
  char *log;
  size_t len;
  int rc = load_log(req, &log, &len);
  if (rc == WV_ENOTFOUND)
    return wv_resp_api_error(req, resp, 404, NULL);
  if (rc)
    return rc;
  len = wv_build_log_without_lock(log, len);
  wv_resp_static(resp, 200, "text/plain", log, len);
  return 0;
}

static int condalock(wv_req_t *req, wv_resp_t *resp) {
  char *log;
  size_t len;
  int rc = load_log(req, &log, &len);
  if (rc && rc != WV_ENOTFOUND)
    return rc;
  len = rc ? (size_t)-1 : wv_build_log_lock(log, len);
  if (len == (size_t)-1)
    return wv_resp_api_error(req, resp, 404, NULL);
  wv_resp_static(resp, 200, "text/plain", log, len);
  return 0;
}

/* Contract §6.5. */
static const wv_route_t build_routes[] = {
    {WV_M_GET, "/v1alpha1/builds/{buildId}", record, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha1/builds/{buildId}/status", status, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha1/builds/{buildId}/logs", logs, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha1/builds/{buildId}/condalock", condalock, WV_ROUTE_WORKER,
     WV_ROUTE_NO_BODY},
};

int wv_build_routes_register(wv_router_t *r) {
  return wv_router_add(r, build_routes, sizeof build_routes / sizeof build_routes[0]);
}
