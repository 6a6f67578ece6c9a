/*
 * build/view/view.h — the HTML pages under /view/ (contract §2; docs/views.md): one
 * static route table (build/view/routes.c) registered by core/main.c. The
 * pages live in build/view/view.c and build/view/scan.c.
 */
#ifndef WV_BUILD_VIEW_H
#define WV_BUILD_VIEW_H

#include "http/router.h"

/* Adds the /view/ routes. 0, WV_EINVAL or WV_ENOMEM (as wv_router_add). */
int wv_view_routes_register(wv_router_t *r);

#endif
