/*
 * registry/validate.h — POST /v1alpha2/validate-creds and the legacy POST
 * /validate-creds (Wave's contract §12; docs/compatibility.md): do a user name and
 * password log in to a registry?
 */
#ifndef WV_REGISTRY_VALIDATE_H
#define WV_REGISTRY_VALIDATE_H

#include "http/router.h"

/* Adds both routes. 0 or the router's error. */
int wv_validate_register(wv_router_t *r);

#endif
