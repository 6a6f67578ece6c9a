/*
 * build/routes.h — the container-request routes (contract §2, first rows of the
 * endpoint catalogue): one static table, registered by core/main.c.
 */
#ifndef WV_BUILD_ROUTES_H
#define WV_BUILD_ROUTES_H

#include "http/router.h"

/* Adds the container-request routes. 0, WV_EINVAL or WV_ENOMEM (as wv_router_add). */
int wv_build_routes_register(wv_router_t *r);

#endif
