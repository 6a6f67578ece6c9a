/*
 * build/build_api.h — what the world sees of a build (contract §3.6, §6.5):
 * GET /v1alpha1/builds/{id}, /status, /logs, /condalock, and the container
 * status of a request that built.
 *
 * A build record (WV_DB_BUILDS) is written when the build starts; its end
 * (duration, exitStatus, succeeded, digest) is taken from the build's job
 * the first time the record is read after the job ended, and written back,
 * so nothing depends on a callback having run (a restart included).
 * Logs are the job's output (core/job/job.h), ANSI-stripped; /logs leaves out
 * the conda lock section, /condalock serves only it. The route table and its
 * handlers are build/routes.c.
 *
 * Thread rules: worker threads (store reads and writes).
 */
#ifndef WV_BUILD_API_H
#define WV_BUILD_API_H

#include "core/app.h"
#include "core/arena.h"
#include "registry/token.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wv_router;

#define WV_BUILD_LOCK_START ">> CONDA_LOCK_START"
#define WV_BUILD_LOCK_END "<< CONDA_LOCK_END"

/* Adds the build routes (GET /v1alpha1/builds/...; build/routes.c). 0, WV_EINVAL or WV_ENOMEM. */
int wv_build_routes_register(struct wv_router *r);

/*
 * Writes the pushed image's digest into build id's record. Called by the
 * build job's last step, while the builder's digest file still exists (the
 * job engine removes the work dir when the job ends). 0 or a store error.
 */
int wv_build_record_digest(const wv_app_t *app, const char *id, const char *digest);

/* contract §3.6 for a token of kind BUILD (a new reference), NULL on OOM. */
json_object *wv_build_container_status(const wv_app_t *app, wv_arena_t *a, const wv_token_rec_t *t,
                                       int64_t now_ns);

/* True when id has the shape of a build id ([A-Za-z0-9._-], 1..128 characters). */
bool wv_build_id_valid(const char *id);

typedef enum { WV_BUILD_RUNNING = 0, WV_BUILD_SUCCEEDED, WV_BUILD_FAILED } wv_build_state_t;

/*
 * The record of build id as GET /v1alpha1/builds/{id} serves it (its end
 * taken from the job once the job ended) and the build's state. *rec is the
 * caller's reference. 0, WV_ENOTFOUND (no record), WV_ESTORE, WV_ENOMEM.
 */
int wv_build_record_load(const wv_app_t *app, wv_arena_t *a, const char *id, json_object **rec,
                         wv_build_state_t *state);

/*
 * BuildStatusResponse of build id as GET /v1alpha1/builds/{id}/status serves
 * it (contract §6.5): *out is the caller's. 0, WV_ENOTFOUND (no record),
 * WV_ESTORE, WV_ENOMEM.
 */
int wv_build_status_load(const wv_app_t *app, wv_arena_t *a, const char *id, json_object **out);

/*
 * How many builds container id cid (the 16-hex checksum) has had: its
 * builds are bd-<cid>_1 .. bd-<cid>_<n> (and bd-<cid>_0 for a
 * multi-platform parent). 0 (with *n = 0 when none) or a store error.
 */
int wv_build_count(const wv_app_t *app, wv_arena_t *a, const char *cid, int64_t *n);

/*
 * The build's log as /logs reads it before the conda lock is cut out: the
 * job's output (the last 16 MiB), ANSI-stripped, with the reason of a
 * restart failure appended; NUL-terminated in the arena. While the build
 * runs it is the output so far. 0, WV_ENOTFOUND, WV_EIO, WV_ENOMEM.
 */
int wv_build_log(const wv_app_t *app, wv_arena_t *a, const char *id, char **out, size_t *len);

/* The work directory of a build: <wave.build.workspace or storage.path/build>/<id> (arena). */
const char *wv_build_workdir(wv_arena_t *a, const wv_config_t *cfg, const char *id);

/*
 * Log text helpers (in place on a NUL-terminated buffer of len bytes; return
 * the new length): without the conda lock section, markers included; and
 * only the lock (the lines between the markers, buildkit "#12 3.45 "
 * prefixes removed), or (size_t)-1 when the log has no lock.
 */
size_t wv_build_log_without_lock(char *s, size_t len);
size_t wv_build_log_lock(char *s, size_t len);

#endif
