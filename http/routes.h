/*
 * http/routes.h — the http area's route table (http/routes.c): the routes
 * every waved serves regardless of folder, /service-info, /health and the
 * /v2 ping (contract §2.1, §5.1), and the operator pages, GET /view
 * (http/overview.h) and GET /metrics (http/metrics_route.h).
 */
#ifndef WV_HTTP_ROUTES_H
#define WV_HTTP_ROUTES_H

#include "core/config.h"
#include "http/router.h"

/*
 * Adds the table to r, first (its /v2 ping is matched before the proxy's
 * /v2/ prefix); /metrics only when cfg->metrics_enabled. cfg NULL (tests without a
 * configuration): the basic routes alone. Sets up the operator pages' access
 * rule (wv_ops_setup). 0, WV_EINVAL or WV_ENOMEM.
 */
int wv_http_routes_register(wv_router_t *r, const wv_config_t *cfg);

#endif
