/*
 * build/mirror/request.h — serving a mirror request (contract §7.1) once it passed
 * the checks of wv_creq_check (§3.2 step 3: v2, containerImage,
 * towerAccessToken of a wave.accounts entry, no conflicts, buildRepository
 * on another registry).
 *
 * wv_mirror_submit, in order, before anything runs:
 *   1. target = <buildRepository>/<source path>:<source tag> (or @digest);
 *   2. the source digest (HEAD; missing ⇒ 400 "Container image '<i>' does
 *      not exist or access is not authorized", contract §3.2 step 9);
 *   3. target credentials: when wave.registries has none for the target
 *      registry and its /v2/ asks for auth ⇒ 400 "Missing credentials for
 *      container repository: <target>";
 *   4. cached when the target's digest (HEAD) equals the source digest ⇒
 *      cached:true, succeeded:true, buildId = the last successful mirror of
 *      that target and digest (when waved made it);
 *   5. otherwise the mirror entry "target:<image>" (WV_DB_MIRRORS, expiry
 *      wave.mirror.status.duration) is created with put-if-absent together
 *      with the PENDING record; the request that creates it submits the job,
 *      identical requests meanwhile share it (its id, cached:false, no
 *      succeeded while it runs). An entry whose mirror ended for another
 *      source digest is replaced.
 *   6. the token and persisted request records are written (one durable
 *      transaction), and the contract §3.3 response is built: no containerToken, no
 *      expiration, targetImage = containerImage = target, mirror:true,
 *      buildId = mirror id.
 *
 * Return codes as wv_creq_submit (request.h). Everything lives in arena a.
 */
#ifndef WV_BUILD_MIRROR_REQ_H
#define WV_BUILD_MIRROR_REQ_H

#include "build/mirror/mirror.h"
#include "build/request/request.h"

int wv_mirror_submit(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                     const wv_creq_plan_t *plan, const char *client_ip, int64_t now_ns,
                     json_object **resp, const char **msg);

/*
 * The mirror target of a source image: "<repo>/<path>:<ref>" (or
 * "<repo>/<path>@<digest>"), repo with trailing '/' removed; a bare registry
 * host is fine. Parsed into *out. Returns 0, WV_EINVAL (*msg: the target is
 * not a valid image name) or WV_ENOMEM.
 */
/*
 * Contract §6.1 step 4 for a registry waved pushes to (mirror, freeze): when
 * wave.registries has no credentials for registry and its /v2/ asks for
 * auth, WV_EINVAL with "Missing credentials for container repository:
 * <target>". 0 otherwise (an unreachable registry fails later, in the job).
 */
int wv_mirror_check_target_auth(const wv_app_t *app, wv_arena_t *a, const char *registry,
                                const char *target, const char **msg);

int wv_mirror_target(wv_arena_t *a, const char *build_repository, const wv_ref_t *src,
                     wv_ref_t *out, const char **msg);

#endif
