/*
 * build/build.h — container requests that build (contract §6.1, §6.2, §4.4–§4.6):
 * from a checked request to a build job, a token and the response.
 *
 *   wv_build_submit()  the container file (decoded containerFile, or made
 *                      from `packages` by the templates), the checksum, the
 *                      target image and the build id; then one of:
 *                        - dry run: id <checksum>_0, nothing built;
 *                        - an identical build is running: joined (same id);
 *                        - it finished: reused (cached: true, same id), a
 *                          failed one until wave.build.failure.duration has
 *                          passed since it ended;
 *                        - the target image already exists: cached;
 *                        - else a new build bd-<checksum>_<n>: work dir
 *                          prepared, records written, job submitted.
 *                      Then the token (kind BUILD, naming the build) and the
 *                      persisted request record are written durably, as for
 *                      plain requests, and the response of contract §3.3 is built.
 *
 * Records (WV_DB_BUILDS, key = build id, expiry wave.build.record.duration):
 * WaveBuildRecord JSON (contract §6.5), finished lazily from the job when read
 * (build_api.c). WV_DB_BUILD_TARGETS: target image → build id, expiry
 * wave.build.status.duration from the start, the de-duplication entry.
 * WV_DB_COUNTERS "build/<checksum>" → n, the durable per-checksum counter.
 *
 * Build rate limit (contract §6.1 step 8): the first build a request creates
 * takes a permit of app->build_limit (user, else client_ip) under the create
 * lock, before anything is written; refused, nothing is created and the
 * call returns WV_EBUSY (429) with the spec's message and *retry_after_s.
 *
 * Returns as wv_creq_submit (build/request/request.h); WV_EUNSUPPORTED (501) when
 * wave.build.enabled is false or there is no job engine. Thread rules: worker threads (blocks on
 * the store, upstream registries and the file system); one mutex per process (wv_build_table_t, on
 * wv_app_t.builds) orders the check-and-create of builds, so identical
 * requests never build twice.
 */
#ifndef WV_BUILD_BUILD_H
#define WV_BUILD_BUILD_H

#include "build/build_api.h"
#include "build/request/request.h"
#include "core/job/job.h"

#include <json-c/json.h>

#define WV_BUILD_CLEANUP_FN "build-cleanup" /* job function: drops the imported OCI layout */
#define WV_BUILD_DIGEST_FN "build-digest"   /* job function: pushed digest → build record */

/*
 * What the builds of one process share: the lock that makes "is there a build
 * for this target? if not, create it" one step. Created by the composition
 * root (core/main.c). new: 0 or WV_ENOMEM; free: NULL is a no-op.
 */
typedef struct wv_build_table wv_build_table_t;
int wv_build_table_new(wv_build_table_t **out);
void wv_build_table_free(wv_build_table_t *b);

int wv_build_submit(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                    const wv_creq_plan_t *plan, const char *client_ip, int64_t now_ns,
                    json_object **resp, const char **msg, int64_t *retry_after_s);

/*
 * Registers the build-cleanup job function and the multi-build job kind
 * (before wv_job_engine_start). app must outlive the engine's workers.
 */
int wv_build_register(wv_job_engine_t *e, const wv_app_t *app);

/*
 * The container file of a request and its conda YAML (NULL when none):
 * the decoded containerFile, or the template rendering of `packages` with
 * the config's template defaults. *tpl is the effective template name (NULL
 * for containerFile). 0, WV_EINVAL (400 with *msg) or WV_ENOMEM. Pure.
 */
int wv_build_container_file(wv_arena_t *a, const wv_config_t *cfg, const wv_creq_t *r,
                            const char **file, const char **conda, const char **tpl,
                            const char **msg);

#endif
