/*
 * registry/validate.h — POST /v1alpha2/validate-creds and the legacy POST
 * /validate-creds (docs/compatibility.md "Credential validation and usage
 * metrics"): do a user name and password log in to a registry?
 */
#ifndef WV_REGISTRY_VALIDATE_H
#define WV_REGISTRY_VALIDATE_H

#include "http/http.h"

#define WV_VALIDATE_MAX_BODY (64 * 1024) /* a request body: three short strings */

/* POST /v1alpha2/validate-creds and POST /validate-creds (registry/routes.c routes them). */
int wv_validate_handler(wv_req_t *req, wv_resp_t *resp);
int wv_validate_legacy_handler(wv_req_t *req, wv_resp_t *resp);

#endif
