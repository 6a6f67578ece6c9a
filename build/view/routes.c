/*
 * build/view/routes.c — the /view/ route table: each page runs when
 * wave.capabilities.web-views is on, else answers the 404 page. The pages live
 * in build/view/view.c (builds, mirrors, containers) and build/view/scan.c
 * (scans, inspect).
 */
#include "build/view/view.h"
#include "build/view/view_int.h"
#include "core/app.h"
#include "http/html.h"

#define MSG_OFF "The web views of this server are disabled."

/* POST /view/scans: Wave's form is not part of the contract (docs/views.md). */
static int view_scan_post(wv_req_t *req, wv_resp_t *resp) {
  return wv_html_error(req, resp, 404,
                       "Scans are started with a container request (scanMode); this server "
                       "has no scan form.");
}

/* Runs page when wave.capabilities.web-views is on, else the 404 page. */
static int guarded(wv_req_t *req, wv_resp_t *resp, wv_handler_cb page) {
  const wv_app_t *app = req->app;
  return app->cfg->web_views ? page(req, resp) : wv_html_error(req, resp, 404, MSG_OFF);
}

static int r_build(wv_req_t *q, wv_resp_t *r) { return guarded(q, r, wv__view_build); }
static int r_mirror(wv_req_t *q, wv_resp_t *r) { return guarded(q, r, wv__view_mirror); }
static int r_container(wv_req_t *q, wv_resp_t *r) { return guarded(q, r, wv__view_container); }
static int r_scan(wv_req_t *q, wv_resp_t *r) { return guarded(q, r, wv__view_scan); }
static int r_scan_post(wv_req_t *q, wv_resp_t *r) { return guarded(q, r, view_scan_post); }
static int r_inspect(wv_req_t *q, wv_resp_t *r) { return guarded(q, r, wv__view_inspect); }

/* Contract §2 endpoint catalogue, the /view row. */
static const wv_route_t view_routes[] = {
    {WV_M_GET, "/view/builds/{buildId}", r_build, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/view/mirrors/{mirrorId}", r_mirror, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/view/containers/{token}", r_container, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/view/scans/{scanId}", r_scan, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_POST, "/view/scans", r_scan_post, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/view/inspect", r_inspect, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
};

int wv_view_routes_register(wv_router_t *r) {
  return wv_router_add(r, view_routes, sizeof view_routes / sizeof view_routes[0]);
}
