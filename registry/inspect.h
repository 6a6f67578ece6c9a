/*
 * registry/inspect.h — POST /v1alpha1/inspect (contract §5.8): the handler
 * registry/routes.c routes to (worker) and what it answers, which the
 * /view/inspect page also shows (registry/inspect.c).
 */
#ifndef WV_INSPECT_H
#define WV_INSPECT_H

#include "http/http.h"

#include <json-c/json.h>

/* The largest POST /v1alpha1/inspect body (a ContainerInspectRequest is a few hundred bytes). */
#define WV_INSPECT_MAX_BODY (64u << 10)

/* POST /v1alpha1/inspect (registry/inspect.c). */
int wv_inspect_handler(wv_req_t *req, wv_resp_t *resp);

/*
 * What POST /v1alpha1/inspect answers, on behalf of who (an account, NULL =
 * anonymous: registry/upstream.h), for any caller (the handler above and
 * the /view/inspect page): image (a name as a client writes it) resolved
 * upstream, platform (NULL = none) picked from an index. 0 with *out =
 * {"container": ContainerSpec} or {"index": IndexSpec} (the caller's
 * reference); otherwise WV_EINVAL with *status (400 bad input, the
 * upstream's status such as 404, or 502) and *msg (arena or static text,
 * may be NULL). Worker only (upstream calls).
 */
int wv_inspect(wv_req_t *req, const char *image, const char *platform, const char *who,
               json_object **out, int *status, const char **msg);

#endif
