/*
 * http/routes.h — the routes every waved serves regardless of folder:
 * /service-info, /health and the /v2 ping (contract §2.1, §5.1).
 */
#ifndef WV_HTTP_ROUTES_H
#define WV_HTTP_ROUTES_H

#include "http/router.h"

/* Adds the basic routes to r. 0 or the wv_router_add() error. */
int wv_http_routes_register(wv_router_t *r);

#endif
