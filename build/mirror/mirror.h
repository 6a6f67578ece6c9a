/*
 * build/mirror/mirror.h — the mirror flow's entry points that need no registry
 * types: job registration (core/main.c), the container status of a mirror
 * request and the mirror record endpoints (build/request/routes.c,
 * build/mirror/routes.c). The request side is build/mirror/request.h.
 *
 * A mirror (contract §7.1, docs/mirror.md) is a job of kind "mirror" whose id is
 * the mirror id (mr-<12 hex>); its record (MirrorResult, §7.2) lives in
 * WV_DB_MIRRORS under the same id. While the job runs the record says
 * PENDING and readers take the live state from the job engine; when the job
 * ends a waiter completes the record (status, duration, exitCode, reason).
 *
 * Ownership: JSON results are new references owned by the caller; *log is
 * malloc'd. Thread rules: all functions may block on the store or the job
 * engine (workers only), except as noted.
 */
#ifndef WV_BUILD_MIRROR_H
#define WV_BUILD_MIRROR_H

#include "core/app.h"
#include "core/arena.h"
#include "registry/token.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_MIRROR_KIND "mirror"         /* job kind */
#define WV_MIRROR_COPY_FN "mirror-copy" /* job function: the copy (registry/copy.h) */
#define WV_MIRROR_ID_PREFIX "mr-"
#define WV_MIRROR_LOG_MAX ((size_t)1 << 20) /* bytes of a log served or embedded */

/*
 * Registers the job kind (limits from app->cfg: wave.mirror.max-concurrent,
 * max-duration) and the copy function. app must outlive the engine. Before
 * wv_job_engine_start. 0 or the engine's error.
 */
int wv_mirror_register(struct wv_job_engine *e, const wv_app_t *app);

/*
 * After wv_job_engine_start: registers the completion waiter of every mirror
 * whose record still says PENDING (jobs re-queued by the restart), so their
 * records get completed. 0 or WV_ESTORE / WV_ENOMEM.
 */
int wv_mirror_recover(const wv_app_t *app);

/*
 * Registers the waiter that completes mirror id's record when its job ends.
 * Any thread; the waiter only queues asynchronous store writes. 0 or the
 * engine's error (WV_ENOTFOUND: no such job).
 */
int wv_mirror_watch(const wv_app_t *app, const char *id);

/*
 * contract §3.6 for the token record of a mirror request (t->build_id = mirror id, or
 * NULL when the target already held the image and no mirror ran): BUILDING
 * while the job runs, then DONE with succeeded, and on failure reason
 * "Container mirror did not complete successfully" and detailsUri. NULL on OOM.
 */
json_object *wv_mirror_status(const wv_app_t *app, const wv_token_rec_t *t, int64_t now_ns);

/*
 * MirrorResult (contract §7.2) of mirror id, with the live state of its job and its
 * log. 0, WV_ENOTFOUND, WV_ESTORE, WV_ENOMEM.
 */
int wv_mirror_result(const wv_app_t *app, const char *id, json_object **out);

/* The mirror's log (the tail, at most max bytes). 0, WV_ENOTFOUND, WV_EIO, WV_ENOMEM. */
int wv_mirror_log(const wv_app_t *app, const char *id, size_t max, char **log, size_t *len);

/* True for "mr-" + 12 lowercase hex (and the dry-run form with "_0"). */
bool wv_mirror_id_valid(const char *id);

/*
 * Adds the mirror record endpoints (build/mirror/routes.c): GET
 * /v1alpha1/mirrors/{mirrorId} and .../logs. 0, WV_EINVAL or WV_ENOMEM.
 */
struct wv_router;
int wv_mirror_routes_register(struct wv_router *r);

#endif
