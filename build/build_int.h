/*
 * build/build_int.h — what the parts of a build share: build.c (decision,
 * records, token, response), build_prep.c (work directory: Containerfile,
 * context, conda.yml, auth file), freeze.c, multi.c and build_scan.c; mirrors
 * (build/mirror/request.c) and Singularity steps (build/sif/sifjob.c) use its
 * scan and clean-up pieces. Not for use outside build/.
 */
#ifndef WV_BUILD_INT_H
#define WV_BUILD_INT_H

#include "build/build.h"
#include "build/builder.h"
#include "registry/ref.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * A request's build permit (rate-limit.build.*): taken once, by the first
 * build the request creates (the children and parent of a multi-platform
 * build share it); joined, reused, cached and dry-run builds take none.
 */
typedef struct {
  bool taken;
  int64_t retry_after_s; /* refused: seconds until a permit is available */
} wv_build_permit_t;

/* Everything a build is made of, worked out from the request (arena strings). */
typedef struct {
  const char *file;          /* container file text */
  const char *conda;         /* conda YAML or NULL */
  const char *tpl;           /* effective buildTemplate, NULL for containerFile requests */
  const char *repo;          /* build repository (hashed by the checksum) */
  const char *cid;           /* the 16-hex checksum */
  const char *target;        /* the target image, "<repo>:<tag>" */
  wv_ref_t tref;             /* target parsed */
  bool embedded;             /* into waved's embedded registry (wave.build.repo empty) */
  bool insecure;             /* plain HTTP towards a registry the build uses */
  const char *tar_digest;    /* buildContext.tarDigest, NULL when none */
  const char *platform;      /* normalised platform of this build */
  int64_t deadline_ms;       /* job deadline, 0 = the build kind's default */
  const char *scan_id;       /* the reserved scan of the target, NULL when none */
  const char *scan_mode;     /* "async"/"required" with scan_id */
  const char *multi_arg;     /* the parent of a multi-platform build: its job's argument */
  bool freeze;               /* a freeze build: layer archives, real target in the response */
  wv_build_permit_t *permit; /* the request's build permit */
  const char *who;           /* the request's account, NULL = anonymous (registry/upstream.h) */
  bool own_repo;             /* the target is waved's: embedded or under wave.build.repo */
  bool sif;                  /* format: sif — a Singularity build (build/sif/sifbuild.h) */
  bool base_pinned;          /* the work dir's FROM names the base by digest (build_prep.c) */
  /* A pinned base of an embedded build: its registry, image and gzip layers, fetched and mapped
   * while the build runs (build/base_fetch.h); NULL / 0 otherwise. */
  const char *base_registry, *base_image;
  const struct wv_base_fetch_layer_s *base_layers;
  size_t base_nlayers;
} wv_binput_t;

/* Whom the build's registry calls act for: waved itself for its own repository, else who. */
const char *wv__build_push_who(const wv_binput_t *in);

/* The table of base-layer fetches (build/base_fetch.h), on app->builds. */
struct wv_base_fetch_table *wv__build_fetches(const wv_app_t *app);

/*
 * Prepares a fresh work directory under the workspace (a temporary name;
 * the caller renames it once the build id is known): Containerfile,
 * context/ (the buildContext unpacked safely, its tarDigest checked),
 * context/conda.yml, config.json (credentials of the registries the build
 * pulls from and pushes to, from wave.registries). *dir is an arena path.
 * pin (a copy of in): base_pinned when the Containerfile's one FROM names the base by the
 * digest waved resolved for this build (docs/builds.md "The base image check"), and for an
 * embedded build the base's registry, image and layers (base_*).
 * 0, WV_EINVAL / WV_ETOOBIG (400, *msg), WV_EIO, WV_ENOMEM.
 */
int wv__build_prepare(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, const wv_binput_t *in,
                      const char **dir, wv_binput_t *pin, const char **msg);

/*
 * The SSRF policy at request time (core/netpolicy.h): the http(s) buildContext
 * location and, for freeze builds, the http(s) layer locations must be
 * allowed by wave.security.outbound, whether or not this request will fetch
 * them (an identical build may exist already), so one request gets one
 * answer. Resolves their hosts; the fetch checks again and connects to the
 * checked address. 0, WV_EINVAL (400, *msg), WV_ENOMEM.
 */
int wv__build_check_urls(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, const char **msg);

/*
 * Freeze (contract §6.3, build/freeze.c). wv__build_freeze_file rewrites in->file
 * (NULL for an image request) into the container file to build, with the
 * entry chain from the file or the base image config. wv__build_freeze_layers
 * writes each containerConfig layer as ctxdir/layer-<hex>.tar.gz (data:
 * layers from the CAS, http(s) fetched), checking gzipSize and gzipDigest.
 * 0, WV_EINVAL (400, *msg), WV_EIO, WV_ENOMEM.
 */
int wv__build_freeze_file(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                          const wv_creq_plan_t *plan, wv_binput_t *in, const char **msg);
int wv__build_freeze_layers(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                            const char *ctxdir, const char **msg);

/*
 * Multi-platform builds (contract §6.4, build/multi.c): the job kind and step
 * function that wait for the child builds and PUT the OCI index to the
 * parent tag (or record it in the embedded registry when `embedded`), and
 * the step argument naming the children (ids[i] NULL for a child whose
 * image existed already). The argument is an arena string, NULL
 * on OOM.
 */
#define WV_BUILD_MULTI_KIND "multi-build"
#define WV_BUILD_MULTI_FN "multi-build"
int wv__build_multi_register(wv_job_engine_t *e, const wv_app_t *app);
const char *wv__build_multi_arg(wv_arena_t *a, const char *target, bool embedded,
                                const wv_binput_t *kids, const char *const *ids, size_t n);

/*
 * The scan of the built image (build/build_scan.c). reserve sets in->scan_id
 * (and *is_new) when a scan is due; step gives the job's last step when it
 * is; after says what the build's outcome means for it (new_job: the id of
 * a build this request started; usable: the image is there; failed: a cached
 * failure); abandon releases a scan of a build that could not start.
 */
#define WV_BUILD_SCAN_FN "build-scan"
#define WV_MIRROR_SCAN_FN "mirror-scan"
int wv__build_scan_reserve(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                           const wv_creq_plan_t *plan, wv_binput_t *in, bool *is_new);
bool wv__build_scan_step(const wv_binput_t *in, wv_job_step_t *step);
void wv__build_scan_after(const wv_app_t *app, const wv_binput_t *in, bool is_new,
                          const char *new_job, bool usable, bool failed);
void wv__build_scan_abandon(const wv_app_t *app, const wv_binput_t *in, bool is_new);
/* The same for any job kind (mirrors): origin says what started the scan. */
void wv__build_scan_outcome(const wv_app_t *app, const char *scan_id, int origin, bool is_new,
                            const char *new_job, bool usable, bool failed);
int wv__build_scan_register(wv_job_engine_t *e, const wv_app_t *app);

/* Removes a directory tree (no symlink is followed). Best effort. */
void wv__build_rmtree(const char *dir);

/* The registries a container file pulls FROM (arena vector of registry hosts). */
/* The image word of the one FROM of a single-stage file (build_prep.c). */
bool wv__build_single_from(const char *file, size_t *at, size_t *len);
int wv__build_from_registries(wv_arena_t *a, const char *file, const char ***hosts, size_t *n);

#endif
