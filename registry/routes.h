/*
 * registry/routes.h — the registry area's route table (registry/routes.c):
 * the /v2 proxy (registry/proxy.h), inspect (registry/inspect.h), validate-creds
 * (registry/validate.h) and Wave's usage metrics (registry/usage.h).
 */
#ifndef WV_REGISTRY_ROUTES_H
#define WV_REGISTRY_ROUTES_H

#include "http/router.h"

/*
 * Adds the table to r, after http/routes.c's (its /v2 ping is matched before
 * /v2/ prefix). Before the server starts. 0, WV_EINVAL or WV_ENOMEM.
 */
int wv_registry_routes_register(wv_router_t *r);

#endif
