/*
 * build/builder.h — builder backends as command templates (architecture §5.3,
 * contract §6.1): turns one build (work dir, platform, target repository and
 * tag, credentials) into the job-engine steps that run it.
 *
 * Templates come from config.yml (wave.build.buildah.*, wave.build.buildkit.*).
 * A template is split on spaces into words; {placeholders} are expanded
 * inside a word and the result is never split again or seen by a shell, so
 * a value cannot inject arguments. A word that is exactly one placeholder
 * whose value is empty is dropped. An unknown placeholder is an error.
 * Placeholders (docs/builds.md): {workspace} {workdir} {containerfile}
 * {context} {authfile} {platform} {repo} {tag} {image} {dest} {output}
 * {oci-dir} {tls-verify} {insecure} {storage-driver} {layers}.
 *
 * Storage and layer cache (docs/builds.md "Storage driver and layer cache"):
 * {storage-driver} is wave.build.storage-driver, where auto is resolved once
 * by wv_builder_resolve_driver (an overlay mount tried in the workspace); {layers}
 * is wave.build.layer-cache. A buildah build ends with a "build-prune" step
 * that keeps <workspace>/buildah under wave.build.cache-max-size.
 *
 * Credentials reach the builder only through the auth file
 * (<workdir>/config.json, Docker config.json format, mode 0600) named by
 * --authfile / REGISTRY_AUTH_FILE / DOCKER_CONFIG, never through argv.
 *
 * Thread rules: all functions are pure or touch only the paths given; the
 * registered job function runs on a job-engine worker.
 */
#ifndef WV_BUILDER_H
#define WV_BUILDER_H

#include "core/app.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/job/job.h"

#include <stdbool.h>
#include <stddef.h>

struct wv_store;
struct wv_cas;

#define WV_BUILDER_KIND "build" /* the job kind of builds */
#define WV_BUILDER_IMPORT_FN                                                                       \
  "oci-import"                            /* the job function importing into the embedded registry \
                                           */
#define WV_BUILDER_PRUNE_FN "build-prune" /* the job function capping the builders' storage */
/* The job function recording the uncompressed digests of an imported image's layers
 * (storage/embedded.h wv_embedded_map_layers), so later builds can skip pushing them. */
#define WV_BUILDER_MAP_FN "embedded-map"
/* The job function seeding an embedded build's layout with its base's mapped layers just before
 * the push (build/base_fetch.h). */
#define WV_BUILDER_SEED_FN "seed-layout"
#define WV_BUILDER_MAX_STEPS 7

typedef enum { WV_BUILDER_BUILDAH = 0, WV_BUILDER_BUILDKIT } wv_builder_kind_t;

/* The backend: which one and its templates (borrowed from the config). */
typedef struct {
  wv_builder_kind_t kind;
  const char *build;     /* required */
  const char *push;      /* buildah only; NULL/"" = no push step */
  const char *cleanup;   /* NULL/"" = no cleanup step */
  const char *prune;     /* buildah only: drops cached layers past the cap; NULL/"" = none */
  const char *prune_all; /* buildah only: drops every unused image if still past it */
} wv_builder_t;

/* One build. Strings are borrowed. */
typedef struct {
  const char *workspace;      /* wave.build.workspace (resolved) */
  const char *workdir;        /* <workspace>/<build id>: Containerfile, context/, config.json */
  const char *platform;       /* "linux/amd64" */
  const char *repo;           /* target repository host[:port]/path; NULL/"" = embedded registry */
  const char *tag;            /* target tag */
  bool insecure;              /* plain HTTP / no TLS verification towards the registries */
  const char *storage_driver; /* {storage-driver}; NULL or "" = vfs */
  bool layers;                /* {layers}: buildah --layers (wave.build.layer-cache) */
  const char *pull;           /* {pull}: buildah --pull policy; NULL = "always" */
  const char *seed_arg;       /* embedded buildah builds: the seed-layout step's argument, run
                                 between build and push (build/base_fetch.h); NULL = none */
} wv_builder_target_t;

/* One registry credential for the auth file. */
typedef struct {
  const char *host; /* registry host[:port] as in image names; "docker.io" for Docker Hub */
  const char *username;
  const char *password;
} wv_builder_cred_t;

/* The backend configured in cfg. 0 or WV_EINVAL (unknown builder / empty template). */
int wv_builder_from_config(const wv_config_t *cfg, wv_builder_t *out);

/*
 * Expands template tpl for t into a NULL-terminated argv allocated from a.
 * Returns 0, WV_EINVAL (unknown or unclosed placeholder, empty result; err
 * says which), WV_ETOOBIG (more than WV_JOB_ARGS_MAX words) or WV_ENOMEM.
 */
int wv_builder_expand(wv_arena_t *a, const char *tpl, const wv_builder_target_t *t,
                      const char ***argv, char *err, size_t errlen);

/*
 * Resolves wave.build.storage-driver once at start (auto: wv_builder_probe_overlay in
 * <workspace>/buildah, overlay when it works, else vfs) into out and logs the choice. Before
 * the first build is submitted (wv_build_register calls it and keeps the result on
 * app->builds, which gives it to each build's target); one thread.
 */
void wv_builder_resolve_driver(const wv_config_t *cfg, char *out, size_t outlen);

/*
 * Whether an overlay mount works in dir (created if missing; a scratch
 * sub-directory is made and removed there): 0, or an errno-style reason in why.
 * What "auto" runs at start.
 */
int wv_builder_probe_overlay(const char *dir, char *why, size_t whylen);

/*
 * The steps of a build into steps[WV_BUILDER_MAX_STEPS] (everything from a):
 * build, seed-layout (embedded buildah builds with t->seed_arg), push (buildah), import into the
 * embedded registry (when t->repo is empty) and map-layers (may fail: storage/embedded.h
 * wv_embedded_map_layers), cleanup (may fail), prune (buildah with a prune template; may fail: past
 * wave.build.cache-max-size, when no other build runs, runs prune and then prune-all while still
 * past it). Every command step gets the environment of waved plus REGISTRY_AUTH_FILE and
 * DOCKER_CONFIG. Same errors as expand.
 */
int wv_builder_steps(wv_arena_t *a, const wv_builder_t *b, const wv_builder_target_t *t,
                     wv_job_step_t *steps, size_t *n, char *err, size_t errlen);

/*
 * The Docker config.json for creds: {"auths":{"<key>":{"auth":"<base64
 * user:pass>"}}} where key is https://index.docker.io/v1/ for Docker Hub and
 * https://<host> otherwise (contract §6.1 step 4). Entries without a username
 * are skipped. Appends to out: 0, WV_EINVAL, WV_ETOOBIG, WV_ENOMEM.
 */
int wv_builder_authfile(const wv_builder_cred_t *creds, size_t n, wv_buf_t *out);

/* Writes that JSON to <workdir>/config.json with mode 0600. 0, WV_EIO, WV_ENOMEM. */
int wv_builder_write_authfile(const char *workdir, const wv_builder_cred_t *creds, size_t n);

/*
 * Registers the "build" job kind (limits from app->cfg: max-concurrent,
 * timeout, memory; label "Container build"), the "oci-import" function,
 * which imports <workdir>/oci into the embedded registry of app->store and
 * app->cas, and the "build-prune" function. Before wv_job_engine_start; app must outlive the
 * engine. Returns what registration returns.
 */
int wv_builder_register(wv_job_engine_t *e, const wv_app_t *app);

/* The pushed manifest digest that buildah wrote to <workdir>/digest
 * (--digestfile) into digest (n >= 72 bytes). 0 or WV_ENOTFOUND. */
int wv_builder_result_digest(const char *workdir, char *digest, size_t n);

#endif
