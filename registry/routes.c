/*
 * registry/routes.c — the registry area's route table (see routes.h); the
 * handlers live with what they serve.
 */
#include "registry/routes.h"
#include "registry/inspect.h"
#include "registry/proxy.h"
#include "registry/usage.h"
#include "registry/validate.h"

/* Contract §2 endpoint catalogue: the /v2 rows, inspect, validate-creds and the usage metrics. */
static const wv_route_t registry_routes[] = {
    {WV_M_GET, "/v2/**", wv_proxy_v2_handler, WV_ROUTE_INLINE, 0},
    {WV_M_POST, "/v1alpha1/inspect", wv_inspect_handler, WV_ROUTE_WORKER, WV_INSPECT_MAX_BODY},
    {WV_M_POST, "/v1alpha2/validate-creds", wv_validate_handler, WV_ROUTE_WORKER,
     WV_VALIDATE_MAX_BODY},
    {WV_M_POST, "/validate-creds", wv_validate_legacy_handler, WV_ROUTE_WORKER,
     WV_VALIDATE_MAX_BODY},
    {WV_M_GET, "/v1alpha2/metrics/fusion/pulls", wv_usage_fusion_v2_handler, WV_ROUTE_WORKER, 0},
    {WV_M_GET, "/v1alpha3/metrics/fusion/pulls", wv_usage_fusion_v3_handler, WV_ROUTE_WORKER, 0},
    {WV_M_GET, "/v1alpha2/metrics/{metric}", wv_usage_metric_v2_handler, WV_ROUTE_WORKER, 0},
    {WV_M_GET, "/v1alpha3/metrics/{metric}", wv_usage_metric_v3_handler, WV_ROUTE_WORKER, 0},
};

int wv_registry_routes_register(wv_router_t *r) {
  return wv_router_add(r, registry_routes, sizeof registry_routes / sizeof registry_routes[0]);
}
