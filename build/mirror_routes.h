/*
 * build/mirror_routes.h — the mirror record endpoints (contract §7.2):
 * GET /v1alpha1/mirrors/{mirrorId} and GET /v1alpha1/mirrors/{mirrorId}/logs.
 * One static table, registered by core/main.c.
 */
#ifndef WV_BUILD_MIRROR_ROUTES_H
#define WV_BUILD_MIRROR_ROUTES_H

#include "http/router.h"

/* Adds the mirror routes. 0, WV_EINVAL or WV_ENOMEM (as wv_router_add). */
int wv_mirror_routes_register(wv_router_t *r);

#endif
