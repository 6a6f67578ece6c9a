/*
 * build/mirror/routes.c — thin handlers for the mirror endpoints (contract §7.2):
 * check the id, read the record (build/mirror/job.c), answer. Both read the
 * store and the job engine, so they run on workers.
 */
#include "build/mirror/mirror.h"
#include "build/request/request.h"
#include "core/err.h"
#include "http/resp.h"
#include "http/router.h"

#include <stdlib.h>

/* The mirror id of the path, or NULL (answered 404 with an empty body, as Wave). */
static const char *mirror_id(wv_req_t *req) {
  const char *id = wv_req_param(req, "mirrorId");
  return wv_mirror_id_valid(id) ? id : NULL;
}

static int disabled(wv_req_t *req, wv_resp_t *resp) {
  return wv_resp_error(req, resp, WV_EUNSUPPORTED, WV_CREQ_MSG_MIRROR_OFF);
}

/* GET /v1alpha1/mirrors/{mirrorId}: MirrorResult. */
static int get_mirror(wv_req_t *req, wv_resp_t *resp) {
  const wv_app_t *app = req->app;
  if (!app->cfg->mirror_enabled)
    return disabled(req, resp);
  const char *id = mirror_id(req);
  json_object *out = NULL;
  int rc = id ? wv_mirror_result(app, id, &out) : WV_ENOTFOUND;
  if (rc == WV_ENOTFOUND)
    return wv_resp_api_error(req, resp, 404, NULL);
  return rc ? wv_resp_error(req, resp, rc, NULL) : wv_resp_json(req, resp, 200, out);
}

/* GET /v1alpha1/mirrors/{mirrorId}/logs: the copy's log as an attachment. */
static int get_logs(wv_req_t *req, wv_resp_t *resp) {
  const wv_app_t *app = req->app;
  if (!app->cfg->mirror_enabled)
    return disabled(req, resp);
  const char *id = mirror_id(req);
  char *log = NULL;
  size_t len = 0;
  int rc = id ? wv_mirror_log(app, id, WV_MIRROR_LOG_MAX, &log, &len) : WV_ENOTFOUND;
  if (!rc && len == 0)
    rc = WV_ENOTFOUND;
  if (rc) {
    free(log);
    return rc == WV_ENOTFOUND ? wv_resp_api_error(req, resp, 404, NULL)
                              : wv_resp_error(req, resp, rc, NULL);
  }
  rc = wv_resp_bytes(req, resp, 200, "application/octet-stream", log, len);
  free(log);
  char *cd = rc ? NULL : wv_arena_sprintf(req->arena, "attachment; filename=%s.log", id);
  return rc ? rc : cd ? wv_resp_header(resp, "Content-Disposition", cd) : WV_ENOMEM;
}

/* Contract §2 endpoint catalogue, mirror rows. */
static const wv_route_t mirror_routes[] = {
    {WV_M_GET, "/v1alpha1/mirrors/{mirrorId}", get_mirror, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha1/mirrors/{mirrorId}/logs", get_logs, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
};

int wv_mirror_routes_register(wv_router_t *r) {
  return wv_router_add(r, mirror_routes, sizeof mirror_routes / sizeof mirror_routes[0]);
}
