/*
 * build/front.h — the entry points the container-request handlers
 * (build/routes.c) need, without the registry types behind them.
 *
 * http/router.h and registry/ref.h both define a wv_route_t, so no file may
 * include both; routes.c includes this header instead of request.h. The
 * functions are documented where they are defined: request.h, records.h and
 * layers.h, which include this file.
 */
#ifndef WV_BUILD_FRONT_H
#define WV_BUILD_FRONT_H

#include "core/app.h"
#include "core/arena.h"
#include "registry/token.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * request.h: parse + check + submit, what the POST handlers run. Past a rate
 * limit (the pull permit every container request takes, the build permit of
 * a new build) it returns WV_EBUSY (429) with the spec's message and
 * *retry_after_s (may be NULL) = seconds until a permit is available.
 */
int wv_creq_handle(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                   const char *client_ip, json_object **resp, const char **msg,
                   int64_t *retry_after_s);

/* request.h: HTTP Basic check against wave.accounts (sha256 hex of password, constant time). */
bool wv_creq_basic_auth(const wv_config_t *cfg, const char *user, const char *password);

/*
 * routes.c: the wave.accounts name of the request's HTTP Basic credentials
 * (arena), NULL without an Authorization header (*bad false) or when the
 * header is not valid Basic credentials of an account (*bad true).
 */
struct wv_req;
const char *wv_req_basic_account(struct wv_req *req, bool *bad);

/* records.h: true for a token / request id (1..64 lowercase letters and digits). */
bool wv_record_id_valid(const char *id);
/*
 * records.h: the persisted record (contract §3.5) of request id, parsed (*rec the
 * caller's reference). 0, WV_ENOTFOUND (also for an id that cannot exist),
 * WV_ESTORE, WV_ENOMEM.
 */
int wv_record_load(const wv_app_t *app, const char *id, json_object **rec);
/* records.h: contract §3.4 from a persisted record. */
json_object *wv_record_describe(json_object *rec);

/* records.h: contract §3.6 for the token record of a plain request. */
json_object *wv_record_status(const wv_token_rec_t *t, int64_t now_ns);

/* layers.h: strict base64 into a NUL-terminated arena buffer. 0, WV_EINVAL or WV_ENOMEM. */
int wv_base64_decode(wv_arena_t *a, const char *s, size_t n, char **out, size_t *outlen);

#endif
