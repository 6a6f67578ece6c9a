#include "http/routes_basic.h"
#include "http/resp.h"
#include "version.h"

static const char service_info[] =
    "{\"serviceInfo\":{\"version\":\"" WAVED_VERSION "\",\"commitId\":\"" WAVED_COMMIT "\"}}";
static const char health[] = "{\"status\":\"UP\"}";

static int service_info_handler(wv_req_t *req, wv_resp_t *resp) {
  (void)req;
  wv_resp_static(resp, 200, "application/json", service_info, sizeof service_info - 1);
  return 0;
}

static int health_handler(wv_req_t *req, wv_resp_t *resp) {
  (void)req;
  wv_resp_static(resp, 200, "application/json", health, sizeof health - 1);
  return 0;
}

/* Spec §3.1: 200 "OK", no authentication challenge; the server adds the API version header. */
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

int wv_routes_basic_register(wv_router_t *r) {
  return wv_router_add(r, basic_routes, sizeof basic_routes / sizeof basic_routes[0]);
}
