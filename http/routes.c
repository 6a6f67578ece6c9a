/*
 * http/routes.c — the http area's route table: /service-info, /health and the
 * /v2 ping, and the operator pages (/view, /metrics) whose handlers live in
 * http/overview.c and http/metrics_route.c.
 *
 * /health (docs/http-server.md, "Health"): {"status":"UP","components":{...}} with one entry
 * per part a request may need: store (the state store's directory), builder (the builder's
 * programs) and disk (free space of storage.path against storage.reserve). A missing builder or
 * a disk below its reserve makes the status DEGRADED, still 200: pulls and everything that needs
 * neither keep working, and a load balancer must not take waved out for them. A store that
 * cannot be used makes it DOWN, 503. Without an app (unit-test servers) it is {"status":"UP"}.
 */
#include "http/routes.h"
#include "core/app.h"
#include "core/err.h"
#include "core/preflight.h"
#include "http/metrics_route.h"
#include "http/overview.h"
#include "http/resp.h"
#include "storage/store.h"
#include "version.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

static const char service_info[] =
    "{\"serviceInfo\":{\"version\":\"" WAVED_VERSION "\",\"commitId\":\"" WAVED_COMMIT "\"}}";
static const char health[] = "{\"status\":\"UP\"}";

static int service_info_handler(wv_req_t *req, wv_resp_t *resp) {
  (void)req;
  wv_resp_static(resp, 200, "application/json", service_info, sizeof service_info - 1);
  return 0;
}

static json_object *component(const char *status, const char *detail) {
  json_object *c = json_object_new_object();
  if (!c)
    return NULL;
  json_object_object_add(c, "status", json_object_new_string(status));
  if (detail)
    json_object_object_add(c, "detail", json_object_new_string(detail));
  return c;
}

/* The state store lives in <storage.path>/state: it must stay readable and writable. */
static json_object *store_component(const wv_config_t *cfg, bool *down) {
  char dir[PATH_MAX + 8];
  snprintf(dir, sizeof dir, "%s/state", cfg->storage_path);
  *down = access(dir, R_OK | W_OK | X_OK) != 0;
  return component(*down ? "DOWN" : "UP",
                   *down ? "the state store directory is not writable" : NULL);
}

/* state.backend: redis — whether Redis answered lately (no round trip on the loop). */
static void redis_component(const wv_app_t *app, json_object *comps, bool *down) {
  bool up = false;
  if (!app->store || !wv_store_shared_health(app->store, &up))
    return;
  *down = *down || !up;
  json_object_object_add(
      comps, "redis",
      component(up ? "UP" : "DOWN", up ? NULL : "Redis (state.redis.url) is not answering"));
}

static json_object *builder_component(const wv_app_t *app, bool *degraded) {
  char why[256];
  if (!app->cfg->build_enabled)
    return component("DISABLED", "wave.build.enabled is false");
  if (wv_preflight_builder(app->preflight, why, sizeof why) == 0)
    return component("UP", app->cfg->build_builder);
  *degraded = true;
  return component("DOWN", why);
}

static json_object *disk_component(const wv_app_t *app, bool *degraded) {
  wv_preflight_disk_t d;
  char detail[128];
  int rc = wv_preflight_disk(app->preflight, &d);
  if (rc == 0 && d.low)
    snprintf(detail, sizeof detail, "%llu bytes free, below the reserve of %llu bytes",
             (unsigned long long)d.free, (unsigned long long)d.reserve);
  json_object *c = component(rc      ? "UNKNOWN"
                             : d.low ? "DOWN"
                                     : "UP",
                             rc      ? "cannot read the free space"
                             : d.low ? detail
                                     : NULL);
  if (!c)
    return NULL;
  json_object_object_add(c, "path", json_object_new_string(app->cfg->storage_path));
  json_object_object_add(c, "free", json_object_new_int64((int64_t)d.free));
  json_object_object_add(c, "total", json_object_new_int64((int64_t)d.total));
  json_object_object_add(c, "reserve", json_object_new_int64((int64_t)d.reserve));
  *degraded = *degraded || rc || d.low;
  return c;
}

static int health_handler(wv_req_t *req, wv_resp_t *resp) {
  const wv_app_t *app = req->app;
  if (!app || !app->preflight) {
    wv_resp_static(resp, 200, "application/json", health, sizeof health - 1);
    return 0;
  }
  bool down = false, degraded = false;
  json_object *o = json_object_new_object(), *comps = json_object_new_object();
  if (!o || !comps) {
    json_object_put(o);
    json_object_put(comps);
    return WV_ENOMEM;
  }
  json_object_object_add(comps, "store", store_component(app->cfg, &down));
  redis_component(app, comps, &down);
  json_object_object_add(comps, "builder", builder_component(app, &degraded));
  json_object_object_add(comps, "disk", disk_component(app, &degraded));
  const char *status = down ? "DOWN" : degraded ? "DEGRADED" : "UP";
  json_object_object_add(o, "status", json_object_new_string(status));
  json_object_object_add(o, "components", comps);
  return wv_resp_json(req, resp, down ? 503 : 200, o);
}

/* Contract §5.1: 200 "OK", no authentication challenge; the server adds the API version header. */
static int ping_handler(wv_req_t *req, wv_resp_t *resp) {
  (void)req;
  wv_resp_static(resp, 200, "text/plain", "OK", 2);
  return 0;
}

static const wv_route_t basic_routes[] = {
    {WV_M_GET, "/service-info", service_info_handler, WV_ROUTE_INLINE, 0},
    {WV_M_GET, "/health", health_handler, WV_ROUTE_INLINE, 0},
    {WV_M_GET, "/v2", ping_handler, WV_ROUTE_INLINE, 0},
    {WV_M_GET, "/v2/", ping_handler, WV_ROUTE_INLINE, 0},
};

/* The operator pages (docs/operations.md): restricted by wv_ops_access. */
static const wv_route_t ops_routes[] = {
    {WV_M_GET, "/view", wv_overview_handler, WV_ROUTE_WORKER, 0},
};
static const wv_route_t metrics_routes[] = {
    {WV_M_GET, "/metrics", wv_ops_metrics_handler, WV_ROUTE_WORKER, 0},
};

int wv_http_routes_register(wv_router_t *r, const wv_config_t *cfg) {
  int rc = wv_router_add(r, basic_routes, sizeof basic_routes / sizeof basic_routes[0]);
  if (rc || !cfg)
    return rc;
  rc = wv_ops_setup(cfg);
  if (!rc && cfg->metrics_enabled)
    rc = wv_router_add(r, metrics_routes, sizeof metrics_routes / sizeof metrics_routes[0]);
  return rc ? rc : wv_router_add(r, ops_routes, sizeof ops_routes / sizeof ops_routes[0]);
}
