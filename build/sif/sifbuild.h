/*
 * build/sif/sifbuild.h — Singularity builds (`format: sif`, docs/singularity.md).
 *
 * A definition file becomes a build in four parts:
 *   1. at request time, wv_sif_check parses it (deffile.h) and checks its
 *      %files sources (inside the build context), so a bad file is a 400;
 *   2. wv_sif_prepare writes, into the work directory, the Containerfile
 *      buildah builds (FROM, the /.singularity.d tree, %files as COPY/ADD,
 *      %post as one RUN as root in /), the `waved-sif` build context (the
 *      tree, the %post script) and the SIF's metadata objects;
 *   3. wv_sif_steps gives the job's steps: buildah exports the root
 *      filesystem, `sif-rootfs` adds the run-time mount points and links,
 *      mksquashfs packs it, `sif-write` writes image.sif and the ORAS
 *      artifact as an OCI layout, then skopeo pushes it (or the embedded
 *      registry imports it as wave/freeze, served by name: registry/build_pull.c);
 *   4. wv_sif_register registers the two function steps.
 *
 * Thread rules: check/prepare run on a request worker; the steps run on the
 * job engine's workers.
 */
#ifndef WV_SIF_BUILD_H
#define WV_SIF_BUILD_H

#include "build/builder.h"
#include "core/app.h"
#include "core/arena.h"
#include "core/job/job.h"

#include <stdbool.h>
#include <stdint.h>

#define WV_SIF_ROOTFS_FN "sif-rootfs"
#define WV_SIF_WRITE_FN "sif-write"
#define WV_SIF_CONFIG_MT "application/vnd.sylabs.sif.config.v1+json"
#define WV_SIF_LAYER_MT "application/vnd.sylabs.sif.layer.v1.sif"
#define WV_SIF_TITLE "image.sif"
#define WV_SIF_BASE_FN "sif-base"
/* Bootstrap: oras — the base SIF's root filesystem, a tar in the build context (sifbase.c). */
#define WV_SIF_BASE_TAR ".waved-oras-base.tar"
#define WV_SIF_BASE_MAX (64ull << 30) /* bytes of a base SIF */

/* Parses the definition and checks its %files sources. 0, WV_EINVAL/WV_ETOOBIG (*msg), WV_ENOMEM.
 */
int wv_sif_check(wv_arena_t *a, const char *file, const char **msg);

/* The build's inputs for wv_sif_prepare. */
typedef struct {
  const char *file;     /* the definition text ({{wave_context_dir}} kept) */
  const char *platform; /* "linux/amd64" */
  const char *who;      /* account for registry reads, NULL = anonymous */
  int64_t now_ns;       /* build date */
} wv_sif_input_t;

/*
 * Writes <dir>/Containerfile (replacing the definition written there),
 * <dir>/sif/ (singularity.d/, post.sh, Singularity, inspect-metadata.json,
 * oci-config.json, arch) from the definition and the base image's config
 * (read through app->upstream). <dir>/context holds the build context.
 * 0, WV_EINVAL (400, *msg), WV_EIO, WV_ENOMEM.
 */
int wv_sif_prepare(const wv_app_t *app, wv_arena_t *a, const wv_sif_input_t *in, const char *dir,
                   const char **msg);

/*
 * The steps of the Singularity build of definition `file` into steps (at
 * most 9): for `Bootstrap: oras` first sif-base (the base SIF read for the
 * account `who`, NULL = anonymous), base-unsquash and base-tar; then build,
 * sif-rootfs, squashfs, sif-write, then push (t->repo set) or import into the
 * embedded registry's WV_EMBEDDED_FREEZE_REPO, then cleanup (may fail).
 * 0, WV_EINVAL (err), WV_ENOMEM.
 */
int wv_sif_steps(wv_arena_t *a, const wv_config_t *cfg, const wv_builder_target_t *t,
                 const char *file, const char *who, wv_job_step_t *steps, size_t *n, char *err,
                 size_t errlen);

int wv_sif_register(wv_job_engine_t *e, const wv_app_t *app);
int wv_sif_base_register(wv_job_engine_t *e, const wv_app_t *app); /* sifbase.c */

/* GET /v1alpha1/builds/{buildId}/sif (build/sif/routes.c). */
struct wv_router;
int wv_sif_routes_register(struct wv_router *r);

#endif
