/*
 * build/build.c — from a checked build request to a build (see build.h).
 *
 * DESIGN. A build is identified by its target image (the checksum is in the
 * tag), so de-duplication is one lookup: WV_DB_BUILD_TARGETS[target] → the
 * build id, whose job (core/job/job.h) says how it stands. The lookup runs first
 * without a lock (most identical requests end here: joined or reused, no
 * work dir made). Only a request that needs a new build prepares a work
 * directory (unpacking its context, outside any lock), then takes the
 * create lock (one per process: app->builds), looks again, and if still needed: reads the
 * per-checksum counter, writes counter + target entry + build record in one
 * durable transaction, moves the work directory to <workspace>/<id> and
 * submits the job, all before unlocking, so whoever finds the target entry
 * also finds the job to wait on. A job that has failed stays the answer
 * for wave.build.failure.duration after it ended (clients retry later);
 * a build failed by a restart of waved can be retried at once.
 */
#include "build/build_int.h"
#include "build/checksum.h"
#include "build/layers.h"
#include "build/naming.h"
#include "build/platform_run.h"
#include "build/mirror/request.h"
#include "build/request/records.h"
#include "build/sif/sifbuild.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/preflight.h"
#include "core/ratelimit.h"
#include "core/rand.h"
#include "core/timefmt.h"
#include "registry/token.h"
#include "registry/upstream.h"
#include "registry/usage.h"
#include "build/build_api.h"
#include "storage/embedded.h"
#include "build/base_fetch.h"
#include "storage/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct wv_build_table {
  pthread_mutex_t create_mu; /* decide and create, as one step */
  /* {storage-driver}: resolved once by wv_build_register (wv_builder_resolve_driver), before any
   * build is submitted; read-only after. "" (vfs) until then. */
  char storage_driver[16];
  wv_base_fetch_table_t *fetches; /* base layers fetched while builds run (build/base_fetch.h) */
};

int wv_build_table_new(wv_build_table_t **out) {
  wv_build_table_t *b = calloc(1, sizeof *b);
  if (!b || wv_base_fetch_table_new(&b->fetches)) {
    free(b);
    return WV_ENOMEM;
  }
  pthread_mutex_init(&b->create_mu, NULL);
  *out = b;
  return 0;
}

void wv_build_table_free(wv_build_table_t *b) {
  if (!b)
    return;
  wv_base_fetch_table_free(b->fetches); /* stops and joins the fetch threads */
  pthread_mutex_destroy(&b->create_mu);
  free(b);
}

wv_base_fetch_table_t *wv__build_fetches(const wv_app_t *app) {
  return app->builds ? app->builds->fetches : NULL;
}

typedef enum { D_NEW = 0, D_JOIN, D_DONE_OK, D_DONE_FAIL, D_EXISTS } decision_t;

typedef struct {
  decision_t d;
  const char *id; /* build id (JOIN, DONE_*, and NEW once created) */
} outcome_t;

static bool empty(const char *s) { return !s || !*s; }

const char *wv_build_workdir(wv_arena_t *a, const wv_config_t *cfg, const char *id) {
  if (!id)
    return NULL;
  if (!empty(cfg->build_workspace))
    return wv_arena_sprintf(a, "%s/%s", cfg->build_workspace, id);
  return wv_arena_sprintf(a, "%s/build/%s", cfg->storage_path, id);
}

/* ---- inputs ------------------------------------------------------------------------ */

static int fail(const char **msg, int rc, const char *m) {
  *msg = m;
  return rc;
}

/* Builds this server cannot run (the build service switched off, a format its builder cannot
 * make), and the container file's own rules (contract §6.1). */
static int check_supported(const wv_config_t *cfg, const wv_job_engine_t *jobs, const wv_creq_t *r,
                           const char **msg) {
  if (!cfg->build_enabled || !jobs) /* no job engine (unit tests): no build service */
    return fail(msg, WV_EUNSUPPORTED, WV_CREQ_MSG_SERVICE_OFF("Build", "wave.build.enabled"));
  (void)r;
  return 0;
}

static int check_file(const char *file, const char **msg) {
  if (empty(file))
    return fail(msg, WV_EINVAL, "Missing dockerfile content");
  if (strstr(file, "/.docker/config.json"))
    return fail(msg, WV_EINVAL,
                "Use of '/.docker/config.json' is not allowed in the container file (error "
                "code: 100)");
  if (strstr(file, "/kaniko"))
    return fail(msg, WV_EINVAL,
                "Use of '/kaniko' is not allowed in the container file (error code: 101)");
  return 0;
}

static bool registry_insecure(const wv_config_t *cfg, const char *host) {
  if (wv_ref_is_loopback(host))
    return true;
  for (size_t i = 0; i < cfg->registries.len; i++)
    if (strcmp(cfg->registries.items[i].host, host) == 0)
      return cfg->registries.items[i].insecure;
  return false;
}

/* Repository, checksum and target image (contract §4.4, §4.5); a child of a multi-platform build
 * (§6.4) gets the default naming strategy. */
static int make_names(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, bool child,
                      wv_binput_t *in, const char **msg) {
  const wv_config_t *cfg = app->cfg;
  wv_naming_strategy_t st;
  in->embedded = empty(r->build_repository) && empty(cfg->build_repo);
  /* A frozen SIF has a repository of its own, pulled by name (docs/singularity.md). */
  const char *def = in->embedded
                        ? wv_arena_sprintf(a, "%s/%s", wv_config_authority(cfg),
                                           in->sif ? WV_EMBEDDED_FREEZE_REPO : WV_EMBEDDED_REPO)
                        : cfg->build_repo;
  int rc = def ? wv_naming_strategy_parse(a, child ? NULL : r->name_strategy, &st, msg) : WV_ENOMEM;
  rc = rc ? rc
          : wv_naming_build_repo(a, r->build_repository, r->freeze, def, NULL, NULL, 0, st,
                                 &in->repo, msg);
  if (rc)
    return rc;
  /* The embedded registry has one repository: image names stay in the tag. */
  if (in->embedded && st == WV_NAMING_IMAGE_SUFFIX)
    st = WV_NAMING_TAG_PREFIX;
  if (r->build_context)
    wv_json_get_str(r->build_context, "tarDigest", &in->tar_digest);
  wv_checksum_input_t ci = {.container_file = in->file,
                            .conda_file = in->conda,
                            .platform = in->platform,
                            .repository = in->repo,
                            .has_build_context = r->build_context != NULL,
                            .build_context_tar_digest = in->tar_digest,
                            .container_config = &r->cc,
                            .freeze = r->freeze};
  char cid[WV_CHECKSUM_STRLEN];
  if ((rc = wv_checksum_container_id(&ci, cid)) != 0)
    return rc == WV_EPARSE ? fail(msg, WV_EINVAL, "The container file is not valid UTF-8") : rc;
  in->cid = wv_arena_strdup(a, cid);
  rc = in->cid ? wv_naming_target_image(a, in->sif, in->repo, in->cid, in->conda, st, &in->target)
               : WV_ENOMEM;
  /* A Singularity target is oras://<repo>:<tag> (contract §6.1); the registry reference follows. */
  rc = rc ? rc : wv_ref_parse(a, in->target + (in->sif ? 7 : 0), &in->tref, msg);
  if (rc)
    return rc;
  in->insecure = registry_insecure(cfg, in->tref.registry);
  const char **hosts;
  size_t n;
  rc = wv__build_from_registries(a, in->file, &hosts, &n);
  for (size_t i = 0; !rc && i < n; i++)
    in->insecure = in->insecure || registry_insecure(cfg, hosts[i]);
  return rc;
}

/* True when repo is wave.build.repo or a repository under it. */
static bool under_build_repo(const wv_config_t *cfg, const char *repo) {
  if (empty(cfg->build_repo))
    return false;
  size_t n = strlen(cfg->build_repo);
  while (n && cfg->build_repo[n - 1] == '/')
    n--;
  return strncmp(repo, cfg->build_repo, n) == 0 && (repo[n] == '\0' || repo[n] == '/');
}

const char *wv__build_push_who(const wv_binput_t *in) {
  return in->own_repo ? WV_WHO_WAVED : in->who;
}

/*
 * A push into a registry whose credentials are configured: waved's own build
 * repository always, a buildRepository or cacheRepository only when the
 * registry's allow policy lets the caller push (docs/security.md). 403 else.
 */
static int check_push(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, wv_binput_t *in,
                      const char **msg) {
  in->own_repo = in->embedded || under_build_repo(app->cfg, in->repo);
  const char *repos[] = {in->own_repo ? NULL : in->repo, r->cache_repository};
  for (size_t i = 0; i < 2 && app->upstream; i++) {
    wv_ref_t ref;
    const char *m = NULL;
    if (empty(repos[i]) || under_build_repo(app->cfg, repos[i]) ||
        wv_ref_parse(a, wv_arena_sprintf(a, "%s:x", repos[i]), &ref, &m) != 0)
      continue;
    if (wv_upstream_perm(app->upstream, ref.registry, in->who) >= WV_PERM_PUSH)
      continue;
    char why[512];
    wv_upstream_denied(ref.registry, in->who, true, why, sizeof why);
    *msg = wv_arena_sprintf(a, "Container repository '%s' - %s", repos[i], why);
    return WV_EDENIED;
  }
  return 0;
}

/* Whether the target image exists already (embedded: its tag; else a HEAD upstream). */
static bool target_exists(const wv_app_t *app, wv_arena_t *a, const wv_binput_t *in) {
  if (in->embedded) {
    char *body = NULL;
    size_t len;
    int rc = wv_embedded_get_manifest(app->store, in->tref.path, in->tref.reference, &body, &len,
                                      NULL, NULL);
    free(body);
    return rc == 0;
  }
  const char *msg;
  return app->upstream && wv_layers_image_check_exists(a, app, NULL, wv__build_push_who(in),
                                                       &in->tref, 0, &msg) == 0;
}

/* ---- the decision ---------------------------------------------------------------------- */

/*
 * Shared state (state.backend: redis): another instance may have written the target entry and
 * the build record a moment before it creates the job record (create() below). While the build
 * record exists, wait a little for the job rather than start a second build (up to 2 s).
 */
static bool job_appears(const wv_app_t *app, const char *id, wv_job_info_t *ji) {
  if (!wv_store_db_shared(app->store, WV_DB_BUILDS))
    return false;
  for (int i = 0; i < 40; i++) {
    char *rec = NULL;
    size_t len;
    if (wv_store_get(app->store, WV_DB_BUILDS, id, &rec, &len, NULL) != 0)
      return false;
    free(rec);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (wv_job_get(app->jobs, id, ji) == 0)
      return true;
  }
  return false;
}

/* What the target entry says (no lock needed: it only reads). */
static int decide(const wv_app_t *app, wv_arena_t *a, const wv_binput_t *in, bool exists,
                  int64_t now_ns, outcome_t *o) {
  char *id = NULL;
  size_t len;
  o->d = exists ? D_EXISTS : D_NEW;
  o->id = NULL;
  int rc = wv_store_get(app->store, WV_DB_BUILD_TARGETS, in->target, &id, &len, NULL);
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  o->id = wv_arena_strdup(a, id);
  free(id);
  if (!o->id)
    return WV_ENOMEM;
  wv_job_info_t ji;
  if (wv_job_get(app->jobs, o->id, &ji) != 0 && !job_appears(app, o->id, &ji)) {
    o->id = NULL; /* the job is gone: the entry means nothing any more */
    return 0;
  }
  if (ji.state == WV_JOB_QUEUED || ji.state == WV_JOB_RUNNING) {
    o->d = D_JOIN;
  } else if (ji.state == WV_JOB_SUCCEEDED) {
    o->d = exists ? D_DONE_OK : D_NEW; /* an image deleted since is built again */
  } else {
    bool restart = strcmp(ji.reason, WV_JOB_REASON_RESTART) == 0 ||
                   strcmp(ji.reason, WV_JOB_REASON_LOST) == 0; /* its instance died */
    int64_t until = ji.finished_ns + app->cfg->build_failure_ttl_ms * WV_NS_PER_MS;
    o->d = !restart && now_ns < until ? D_DONE_FAIL : (exists ? D_EXISTS : D_NEW);
  }
  if (o->d == D_NEW || o->d == D_EXISTS)
    o->id = NULL;
  return 0;
}

/* ---- records ------------------------------------------------------------------------- */

static json_object *build_record(wv_arena_t *a, const wv_creq_t *r, const wv_creq_plan_t *plan,
                                 const wv_binput_t *in, const char *id, const char *client_ip,
                                 int64_t now_ns) {
  json_object *o = json_object_new_object();
  char t[WV_TIME_ISO_STRLEN];
  int rc = o ? wv_time_format_iso(now_ns, t, sizeof t) : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "buildId", id);
  rc = rc ? rc : wv_json_add_str(o, "dockerFile", in->file);
  rc = rc ? rc : wv_json_add_str(o, "condaFile", in->conda);
  rc = rc ? rc : wv_json_add_str(o, "targetImage", in->target);
  rc = rc ? rc : wv_json_add_str(o, "userName", plan->user);
  rc = rc ? rc : wv_json_add_str(o, "requestIp", client_ip);
  rc = rc ? rc : wv_json_add_str(o, "startTime", t);
  rc = rc ? rc : wv_json_add_str(o, "offsetId", wv_record_zone_id(a, r->timestamp));
  rc = rc ? rc : wv_json_add_str(o, "platform", in->platform);
  rc = rc ? rc : wv_json_add_str(o, "format", in->sif ? "SINGULARITY" : "DOCKER");
  rc = rc ? rc : wv_json_add_str(o, "buildTemplate", in->tpl);
  if (rc) {
    json_object_put(o);
    return NULL;
  }
  return o;
}

/*
 * Whether platform is this host's own (linux/amd64 on x86_64, linux/arm64 on aarch64). Only
 * such builds use the layer cache: buildah 1.28's cache keys leave the platform out, so a
 * linux/arm64 COPY step could reuse the linux/amd64 layer of the same step (docs/builds.md).
 */
static bool native_platform(const char *platform) {
  struct utsname u;
  if (!platform || uname(&u) != 0)
    return false;
  const char *arch = strcmp(u.machine, "x86_64") == 0    ? "amd64"
                     : strcmp(u.machine, "aarch64") == 0 ? "arm64"
                                                         : u.machine;
  size_t n = strlen(arch);
  return strncmp(platform, "linux/", 6) == 0 && strncmp(platform + 6, arch, n) == 0 &&
         (platform[6 + n] == '\0' || platform[6 + n] == '/');
}

/*
 * The steps that decide the result (build, push, import, record-digest) first, in their order,
 * then the scan step (it starts the scan: it must run once the image is there), then the
 * tidy-up ones (may_fail: cleanup, prune, cleanup-layout). The step before the tidy-up is the
 * job's ready point, where parked pulls are released (registry/park.h): measuring and pruning
 * the builders' storage is not on a pull's path. scan may be NULL; steps has room for it.
 * Returns the new count.
 */
static size_t mark_ready(wv_job_step_t *steps, size_t n, const wv_job_step_t *scan) {
  wv_job_step_t tidy[WV_JOB_STEPS_MAX];
  size_t k = 0, t = 0;
  for (size_t i = 0; i < n; i++) {
    if (steps[i].may_fail)
      tidy[t++] = steps[i];
    else
      steps[k++] = steps[i];
  }
  if (scan)
    steps[k++] = *scan;
  memcpy(steps + k, tidy, t * sizeof *tidy);
  if (k > 0 && t > 0)
    steps[k - 1].ready = true;
  return k + t;
}

/* The job: the builder's steps, then (embedded) dropping the imported OCI layout. */
static int submit_job(const wv_app_t *app, wv_arena_t *a, const wv_binput_t *in, const char *id,
                      const char *workdir) {
  wv_builder_t b;
  wv_job_step_t steps[WV_JOB_STEPS_MAX];
  size_t n = 0;
  char err[256] = "";
  const wv_config_t *cfg = app->cfg;
  const char *ws = empty(cfg->build_workspace) ? wv_arena_sprintf(a, "%s/build", cfg->storage_path)
                                               : cfg->build_workspace;
  bool native = native_platform(in->platform);
  /* A foreign-platform build gets a store of its own (<workspace>/foreign/buildah): buildah 1.28's
   * cache keys leave the platform out, so a native build could match its images. */
  wv_builder_target_t t = {
      .workspace = native ? ws : wv_arena_sprintf(a, "%s/foreign", ws),
      .workdir = workdir,
      .platform = in->platform,
      .repo = in->embedded ? NULL : wv_ref_repository(a, &in->tref),
      .tag = in->tref.reference,
      .insecure = in->insecure,
      .storage_driver = app->builds->storage_driver,
      .layers = cfg->build_layer_cache && native,
      .pull = in->base_pinned ? "missing" : "always",
      .seed_arg =
          in->base_nlayers ? wv_base_fetch_seed_arg(a, in->base_layers, in->base_nlayers) : NULL};
  int rc = in->sif ? wv_sif_steps(a, cfg, &t, in->file, in->who, steps, &n, err, sizeof err)
                   : wv_builder_from_config(cfg, &b);
  rc = rc || in->sif ? rc : wv_builder_steps(a, &b, &t, steps, &n, err, sizeof err);
  if (rc) {
    wv_error("build %s: cannot make its steps: %s %s", id, wv_strerror(rc), err);
    return rc;
  }
  if (in->embedded && n < WV_JOB_STEPS_MAX)
    steps[n++] = (wv_job_step_t){.type = WV_JOB_STEP_FN,
                                 .name = "cleanup-layout",
                                 .fn = WV_BUILD_CLEANUP_FN,
                                 .may_fail = true};
  /* The builder's digest file lives in the work dir, which the engine removes
   * when the job ends: copy the digest into the record first. */
  if (!in->embedded && n < WV_JOB_STEPS_MAX)
    steps[n++] =
        (wv_job_step_t){.type = WV_JOB_STEP_FN, .name = "record-digest", .fn = WV_BUILD_DIGEST_FN};
  wv_job_step_t scan;
  if (n < WV_JOB_STEPS_MAX && wv__build_scan_step(in, &scan))
    n = mark_ready(steps, n, &scan);
  else
    n = mark_ready(steps, n, NULL);
  wv_job_spec_t spec = {.id = id,
                        .kind = WV_BUILDER_KIND,
                        .workdir = workdir,
                        .deadline_ms = in->deadline_ms,
                        .steps = steps,
                        .nsteps = n};
  rc = wv_job_submit(app->jobs, &spec, NULL);
  if (!rc) /* Wave's builds counter (registry/usage.h) */
    wv_usage_count(app, WV_USAGE_BUILDS, NULL, in->platform);
  return rc;
}

/* The parent of a multi-platform build: a job that waits for the children, then PUTs the index. */
static int submit_multi(const wv_app_t *app, const wv_binput_t *in, const char *id) {
  wv_job_step_t step = {
      .type = WV_JOB_STEP_FN, .name = "index", .fn = WV_BUILD_MULTI_FN, .arg = in->multi_arg};
  wv_job_spec_t spec = {.id = id, .kind = WV_BUILD_MULTI_KIND, .steps = &step, .nsteps = 1};
  return wv_job_submit(app->jobs, &spec, NULL);
}

/* WV_DB_COUNTERS key of the builds of container id cid (build.h). */
static const char *counter_key(wv_arena_t *a, const char *cid) {
  return wv_arena_sprintf(a, "build/%s", cid);
}

int wv_build_count(const wv_app_t *app, wv_arena_t *a, const char *cid, int64_t *n) {
  const char *key = counter_key(a, cid);
  char *val = NULL;
  size_t len;
  int rc = key ? wv_store_get(app->store, WV_DB_COUNTERS, key, &val, &len, NULL) : WV_ENOMEM;
  *n = rc ? 0 : strtoll(val, NULL, 10);
  free(val);
  return rc == WV_ENOTFOUND ? 0 : rc;
}

/* Under app->builds->create_mu: counter, target entry and record, work dir, job. */
static int create(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                  const wv_creq_plan_t *plan, const wv_binput_t *in, const char *tmpdir,
                  const char *client_ip, int64_t now_ns, outcome_t *o) {
  const wv_config_t *cfg = app->cfg;
  const char *ckey = counter_key(a, in->cid);
  char *val = NULL;
  size_t len;
  int64_t n = 0;
  int rc = ckey ? wv_store_get(app->store, WV_DB_COUNTERS, ckey, &val, &len, NULL) : WV_ENOMEM;
  if (rc == 0)
    n = strtoll(val, NULL, 10);
  free(val);
  if (rc && rc != WV_ENOTFOUND)
    return rc;
  /* The parent of a multi-platform build is bd-<id>_0 (contract §6.4); a retry after a failure
   * takes the next number, job ids being unique. */
  const char *id = wv_naming_build_id(a, in->cid, (unsigned long)(in->multi_arg ? n : n + 1));
  const char *workdir = wv_build_workdir(a, cfg, id);
  json_object *rec = id ? build_record(a, r, plan, in, id, client_ip, now_ns) : NULL;
  const char *rtext = rec ? wv_arena_strdup(a, wv_json_compact(rec)) : NULL;
  json_object_put(rec);
  if (!rtext || !workdir)
    return WV_ENOMEM;
  int64_t now_ms = now_ns / WV_NS_PER_MS;
  wv_store_op_t ops[3] = {
      {.kind = WV_STORE_INCR, .db = WV_DB_COUNTERS, .key = ckey, .delta = 1},
      {.kind = WV_STORE_PUT,
       .db = WV_DB_BUILD_TARGETS,
       .key = in->target,
       .val = id,
       .val_len = strlen(id),
       .expires_ms = now_ms + cfg->build_status_ttl_ms},
      {.kind = WV_STORE_PUT,
       .db = WV_DB_BUILDS,
       .key = id,
       .val = rtext,
       .val_len = strlen(rtext),
       .expires_ms = now_ms + cfg->build_record_ttl_ms},
  };
  /* Shared state: an instance that read the same counter at the same time made the same id; the
   * record written only if absent lets one of them create the build and the other join it. */
  bool shared = wv_store_db_shared(app->store, WV_DB_BUILDS);
  if (shared)
    ops[2].kind = WV_STORE_PUT_NX;
  if ((rc = wv_store_apply(app->store, ops, 3, NULL)) != 0) {
    if (rc != WV_EEXISTS || !shared)
      return rc;
    o->d = D_JOIN;
    o->id = id;
    wv_info("build %s: %s joined (created by another instance)", id, in->target);
    return 0;
  }
  if (in->multi_arg) {
    rc = submit_multi(app, in, id);
  } else {
    wv__build_rmtree(workdir); /* a leftover of a store that was reset */
    if (rename(tmpdir, workdir) != 0) {
      wv_error("build %s: cannot move %s to %s: %s", id, tmpdir, workdir, strerror(errno));
      rc = WV_EIO;
    }
    rc = rc ? rc : submit_job(app, a, in, id, workdir);
  }
  if (rc) { /* nothing will run: identical requests must not join it */
    wv_store_del(app->store, WV_DB_BUILD_TARGETS, in->target);
    return rc;
  }
  o->d = D_NEW;
  o->id = id;
  wv_info("build %s: %s (%s)", id, in->target, plan->user ? plan->user : "anonymous");
  return 0;
}

/* The request's build permit, once; WV_EBUSY with the spec's message when over the limit. */
static int take_permit(const wv_app_t *app, wv_arena_t *a, const wv_creq_plan_t *plan,
                       const wv_binput_t *in, const char *client_ip, const char **msg) {
  if (!app->build_limit || !in->permit || in->permit->taken)
    return 0;
  int rc =
      wv_ratelimit_acquire(app->build_limit, plan->user, client_ip, &in->permit->retry_after_s);
  in->permit->taken = rc == 0;
  if (rc == WV_EBUSY) {
    *msg = wv_ratelimit_message(a, app->build_limit, plan->user, client_ip);
    wv_info("build of %s refused: %s", in->target, *msg ? *msg : "rate limit");
  }
  return rc;
}

/* Prepares outside the lock, then decides again and creates under it. */
/*
 * What a new build needs from the host, checked when the request is made rather than found
 * missing by a failed build later: the builder's programs (503) and free disk above
 * storage.reserve (507, whose text http/resp.c writes). Cached and joined builds need neither.
 */
static int host_can_build(const wv_app_t *app, wv_arena_t *a, const char **msg) {
  char why[256];
  wv_preflight_disk_t disk;
  if (!app->preflight)
    return 0;
  if (wv_preflight_builder(app->preflight, why, sizeof why)) {
    *msg = wv_arena_sprintf(a, "Container builds are not available on this server - %s", why);
    return WV_EUNAVAIL;
  }
  if (wv_preflight_disk(app->preflight, &disk) == 0 && disk.low)
    return WV_ENOSPC;
  return 0;
}

/*
 * Shared state: create_mu is one process's; instances share a lock per target instead, a record
 * "#create:<target>" written only if absent (expiring after 30 s if its holder dies). Without it
 * an instance could decide to build, then read the counter after another instance created the
 * same build, and make a second one. Waits up to 5 s for it, then goes on without (the build
 * record's PUT_NX still keeps one build per id). Returns the lock's key, or NULL.
 */
static const char *cluster_lock(const wv_app_t *app, wv_arena_t *a, const char *target) {
  if (!wv_store_db_shared(app->store, WV_DB_BUILD_TARGETS))
    return NULL;
  const char *key = wv_arena_sprintf(a, "#create:%s", target);
  if (!key || strlen(key) > WV_STORE_KEY_MAX)
    return NULL;
  for (int i = 0; i < 100; i++) {
    wv_store_op_t op = {.kind = WV_STORE_PUT_NX,
                        .db = WV_DB_BUILD_TARGETS,
                        .key = key,
                        .val = "1",
                        .val_len = 1,
                        .expires_ms = wv_store_now_ms() + 30000};
    int rc = wv_store_apply(app->store, &op, 1, NULL);
    if (rc == 0)
      return key;
    if (rc != WV_EEXISTS)
      return NULL;
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  wv_warn("build of %s: the cluster's create lock stayed taken for 5 s; going on without it",
          target);
  return NULL;
}

/*
 * The base's layers into the blob store and mapped while buildah builds, so its push can skip
 * them (build/base_fetch.h). Best effort: the build does not depend on it. The build's interest
 * ends with its seed step or, at the latest, its job: a build that fails before its seed step
 * does not keep the fetch going until the deadline.
 */
static void base_fetch(const wv_app_t *app, const wv_binput_t *in, const char *build) {
  int k = wv_base_fetch_start(app->builds->fetches, app, app->jobs, build, in->base_registry,
                              in->base_image, in->who, in->base_layers, in->base_nlayers);
  if (k < 0)
    wv_info("build base %s/%s: not prefetched: %s", in->base_registry, in->base_image,
            wv_strerror(k));
}

static int new_build(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                     const wv_creq_plan_t *plan, const wv_binput_t *in, bool exists,
                     const char *client_ip, int64_t now_ns, outcome_t *o, const char **msg) {
  const char *tmp = NULL;
  int rc = host_can_build(app, a, msg);
  if (rc)
    return rc;
  wv_binput_t pin = *in; /* with base_pinned (and the base) as the work dir says */
  rc = in->multi_arg ? 0 : wv__build_prepare(app, a, r, in, &tmp, &pin, msg);
  if (rc)
    return rc;
  in = &pin;
  const char *lock = cluster_lock(app, a, in->target);
  pthread_mutex_lock(&app->builds->create_mu);
  rc = decide(app, a, in, exists, now_ns, o);
  if (!rc && o->d == D_NEW)
    rc = take_permit(app, a, plan, in, client_ip, msg);
  if (!rc && o->d == D_NEW)
    rc = create(app, a, r, plan, in, tmp, client_ip, now_ns, o);
  pthread_mutex_unlock(&app->builds->create_mu);
  if (lock)
    wv_store_del(app->store, WV_DB_BUILD_TARGETS, lock);
  wv__build_rmtree(tmp); /* gone already when it became the work dir */
  if (!rc && o->d == D_NEW && in->base_nlayers)
    base_fetch(app, in, o->id);
  return rc;
}

/* ---- token, request record, response ---------------------------------------------- */

typedef struct {
  wv_creq_result_t res;
  const wv_binput_t *in;
  const char *build_id; /* in the response */
  const char *job_id;   /* in the token: what pulls wait for (NULL for dry runs) */
  bool build_new;
} minted_t;

/* The token record and the request record for the token just drawn (m->res.token). */
static int encode_cb(const wv_creq_mint_t *x, wv_buf_t *tok, const char **rtext) {
  minted_t *m = x->arg;
  wv_arena_t *a = x->a;
  const char *token = m->res.token, *path = wv_ref_path_and_ref(a, &m->in->tref);
  /* Freeze: clients pull the real image; its token is refused by /v2 (contract §6.3). */
  m->res.target_image =
      m->in->freeze ? m->in->target
      : path ? wv_arena_sprintf(a, "%s/wt/%s/%s", wv_config_authority(x->app->cfg), token, path)
             : NULL;
  wv_token_rec_t t = wv_creq_token_rec(&m->res, &m->in->tref, x->plan, x->client_ip);
  /* A SIF is also served through /v2/wt/<token>/ (parked while it builds): docs/singularity.md. */
  t.kind = m->in->freeze && !m->in->sif ? WV_TOKEN_FREEZE : WV_TOKEN_BUILD;
  t.container_image = m->res.container_image;
  t.target_image = m->res.target_image;
  t.build_id = m->job_id;
  t.cc_json = m->in->sif ? NULL : m->res.cc_token_json; /* baked into the SIF */
  t.scan_id = m->in->scan_id;
  t.scan_mode = m->in->scan_mode;
  t.scan_levels = m->in->scan_id ? wv_creq_scan_levels(a, x->r) : NULL;
  int rc = m->res.target_image ? wv_token_encode(&t, tok) : WV_ENOMEM;
  bool oom = false;
  json_object *cc = rc ? NULL : wv_record_cc_to_json(&x->r->cc, WV_RECORD_CC_FOR_RECORD, &oom);
  json_object *rec = rc || oom ? NULL : wv_record_new(x->r, x->plan, &m->res, x->client_ip, cc);
  int jrc = rec ? 0 : WV_ENOMEM;
  jrc = jrc ? jrc : wv_json_add_str(rec, "buildId", m->build_id);
  jrc = jrc ? jrc : wv_json_add_bool(rec, "buildNew", m->build_new);
  jrc = jrc ? jrc : wv_json_add_str(rec, "containerFile", m->in->file);
  jrc = jrc ? jrc : wv_json_add_str(rec, "condaFile", m->in->conda);
  *rtext = jrc ? NULL : wv_arena_strdup(a, wv_json_compact(rec));
  json_object_put(rec);
  return rc ? rc : (*rtext ? 0 : WV_ENOMEM);
}

static int mint(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, const wv_creq_plan_t *plan,
                const char *client_ip, minted_t *m) {
  wv_creq_mint_t x = {app, a, r, plan, client_ip, &m->res, m};
  return wv_creq_mint(&x, encode_cb);
}

static json_object *response(const wv_creq_t *r, const minted_t *m, const outcome_t *o,
                             bool dry_exists) {
  json_object *j = json_object_new_object();
  char exp[WV_TIME_ISO_STRLEN];
  int rc = j ? wv_time_format_iso(m->res.expires_ns, exp, sizeof exp) : WV_ENOMEM;
  bool stable = r->v2 && r->freeze; /* contract §3.3: no token, no expiration */
  rc = rc ? rc : wv_json_add_str(j, "requestId", m->res.token);
  if (!stable)
    rc = rc ? rc : wv_json_add_str(j, "containerToken", m->res.token);
  rc = rc ? rc : wv_json_add_str(j, "targetImage", m->res.target_image);
  if (!stable)
    rc = rc ? rc : wv_json_add_str(j, "expiration", exp);
  rc = rc ? rc : wv_json_add_str(j, "containerImage", m->res.container_image);
  if (!r->v2) { /* v1: buildId only for a build started now */
    if (!rc && m->build_new)
      rc = wv_json_add_str(j, "buildId", m->build_id);
  } else {
    bool cached = r->dry_run ? dry_exists : (o->d == D_DONE_OK || o->d == D_DONE_FAIL);
    if (!rc && m->build_id) {
      rc = wv_json_add_str(j, "buildId", m->build_id);
      rc = rc ? rc : wv_json_add_bool(j, "cached", cached);
    }
    rc = rc ? rc : wv_json_add_bool(j, "freeze", r->freeze);
    rc = rc ? rc : wv_json_add_bool(j, "mirror", false);
    rc = rc ? rc : wv_json_add_str(j, "scanId", m->res.scan_id);
    bool say = !m->res.scan_id; /* contract §3.3: succeeded is always omitted when scanId is set */
    if (!rc && say && (o->d == D_DONE_OK || o->d == D_EXISTS || (r->dry_run && dry_exists)))
      rc = wv_json_add_bool(j, "succeeded", true);
    else if (!rc && say && o->d == D_DONE_FAIL)
      rc = wv_json_add_bool(j, "succeeded", false);
  }
  if (rc) {
    json_object_put(j);
    return NULL;
  }
  return j;
}

/* ---- entry point ---------------------------------------------------------------------- */

/*
 * contract §6.4: the two children are ordinary builds (deduplicated and cached like any other) with
 * their own platform, checksum and default-named tag; parent->multi_arg then names them.
 */
static int submit_children(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                           const wv_creq_plan_t *plan, wv_binput_t *parent, const char *client_ip,
                           int64_t now_ns, const char **msg) {
  static const char *const platforms[] = {"linux/amd64", "linux/arm64"};
  wv_binput_t kids[2];
  const char *ids[2] = {NULL, NULL};
  int rc = 0;
  for (size_t i = 0; !rc && i < 2; i++) {
    kids[i] = *parent;
    kids[i].platform = platforms[i];
    kids[i].multi_arg = NULL;
    kids[i].scan_id = kids[i].scan_mode = NULL; /* no per-child scans (contract §6.4) */
    rc = make_names(app, a, r, true, &kids[i], msg);
    rc = rc ? rc : check_push(app, a, r, &kids[i], msg);
    bool exists = !rc && target_exists(app, a, &kids[i]);
    outcome_t o = {D_NEW, NULL};
    rc = rc ? rc : decide(app, a, &kids[i], exists, now_ns, &o);
    if (!rc && o.d == D_NEW)
      rc = new_build(app, a, r, plan, &kids[i], exists, client_ip, now_ns, &o, msg);
    ids[i] = o.id; /* NULL: the child image is there already */
  }
  parent->multi_arg =
      rc ? NULL : wv__build_multi_arg(a, parent->target, parent->embedded, kids, ids, 2);
  return rc ? rc : (parent->multi_arg ? 0 : WV_ENOMEM);
}

/* contract §6.1 step 5: authenticated freeze builds get the trusted timeout when it is longer. */
static int64_t deadline_ms(const wv_config_t *cfg, const wv_creq_t *r, const wv_creq_plan_t *plan) {
  bool trusted = plan->user && r->freeze && cfg->build_trusted_timeout_ms > cfg->build_timeout_ms;
  return trusted ? cfg->build_trusted_timeout_ms : 0; /* 0: the kind's default */
}

int wv_build_submit(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                    const wv_creq_plan_t *plan, const char *client_ip, int64_t now_ns,
                    json_object **resp, const char **msg, int64_t *retry_after_s) {
  wv_build_permit_t permit = {false, 0};
  wv_binput_t in = {.permit = &permit, .who = plan->user};
  minted_t m = {.in = &in};
  outcome_t o = {D_NEW, NULL};
  *resp = NULL;
  int rc = check_supported(app->cfg, app->jobs, r, msg);
  rc = rc ? rc : wv__build_check_urls(app, a, r, msg);
  rc = rc ? rc : wv_build_container_file(a, app->cfg, r, &in.file, &in.conda, &in.tpl, msg);
  in.freeze = r->freeze;
  in.sif = r->format && strcmp(r->format, "sif") == 0;
  in.platform = plan->platform;
  in.deadline_ms = deadline_ms(app->cfg, r, plan);
  if (!rc && r->freeze)
    rc = wv__build_freeze_file(app, a, r, plan, &in, msg);
  rc = rc ? rc : check_file(in.file, msg);
  if (!rc && in.sif) /* a bad definition file is a 400 before anything runs */
    rc = wv_sif_check(a, in.file, msg);
  if (!rc && r->cc.n_layers)
    rc = wv_container_config_validate(a, &r->cc, msg);
  rc = rc ? rc : wv_layers_check(a, app->cas, app->layer_memo, app->cfg, &r->cc, msg);
  rc = rc ? rc : make_names(app, a, r, false, &in, msg);
  rc = rc ? rc : check_push(app, a, r, &in, msg);
  if (!rc && !in.embedded) /* contract §6.1 step 4, before anything runs */
    rc = wv_mirror_check_target_auth(app, a, in.tref.registry, in.repo, msg);
  if (rc)
    return rc;
  bool exists = target_exists(app, a, &in);
  if (r->dry_run) {
    m.build_id = wv_naming_dry_run_id(a, in.cid);
    o.d = D_NEW;
  } else {
    bool scan_new = false;
    rc = in.sif ? 0 : wv__build_scan_reserve(app, a, r, plan, &in, &scan_new); /* SIF: no scan */
    rc = rc ? rc : decide(app, a, &in, exists, now_ns, &o);
    if (!rc && o.d == D_NEW && plan->plat.n > 1)
      rc = submit_children(app, a, r, plan, &in, client_ip, now_ns, msg);
    if (!rc && o.d == D_NEW)
      rc = new_build(app, a, r, plan, &in, exists, client_ip, now_ns, &o, msg);
    if (rc) {
      wv__build_scan_abandon(app, &in, scan_new);
      if (rc == WV_EBUSY && retry_after_s)
        *retry_after_s = permit.retry_after_s;
      return rc;
    }
    m.build_id = m.job_id = o.id;
    m.build_new = o.d == D_NEW;
    m.res.scan_id = in.scan_id;
    m.res.scan_new = scan_new;
    wv__build_scan_after(app, &in, scan_new, m.build_new ? o.id : NULL,
                         o.d == D_EXISTS || o.d == D_DONE_OK, o.d == D_DONE_FAIL);
  }
  bool oom = false;
  json_object *cc = wv_record_cc_to_json(&r->cc, WV_RECORD_CC_FOR_TOKEN, &oom);
  m.res.cc_token_json = cc ? wv_arena_strdup(a, wv_json_compact(cc)) : NULL;
  json_object_put(cc);
  m.res.container_image = in.target;
  m.res.created_ns = now_ns;
  m.res.expires_ns = now_ns + app->cfg->token_ttl_ms * WV_NS_PER_MS;
  if (oom || (cc && !m.res.cc_token_json))
    return WV_ENOMEM;
  if ((rc = mint(app, a, r, plan, client_ip, &m)) != 0)
    return rc;
  *resp = response(r, &m, &o, exists);
  return *resp ? 0 : WV_ENOMEM;
}

/* ---- the cleanup step ---------------------------------------------------------------- */

/* After the import the OCI layout is a second copy of the image: drop it. */
static int cleanup_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  (void)fn_arg, (void)arg;
  const char *wd = wv_job_ctx_workdir(ctx);
  char path[4096];
  if (!wd)
    return 0;
  snprintf(path, sizeof path, "%s/oci", wd);
  wv__build_rmtree(path);
  snprintf(path, sizeof path, "%s/oci.seeded", wd); /* its seed record (storage/embedded.h) */
  unlink(path);
  return 0;
}

static int digest_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  (void)arg;
  char digest[WV_EMBEDDED_DIGEST_LEN];
  const char *wd = wv_job_ctx_workdir(ctx);
  int rc = wd ? wv_builder_result_digest(wd, digest, sizeof digest) : WV_ENOTFOUND;
  if (rc) {
    wv_job_ctx_fail(ctx, "Container build failed: the builder reported no image digest");
    return rc;
  }
  return wv_build_record_digest(fn_arg, wv_job_ctx_id(ctx), digest);
}

int wv_build_register(wv_job_engine_t *e, const wv_app_t *app) {
  if (app->cfg->build_enabled) { /* one line per platform: can its RUN steps run here? */
    wv_build_platform_log();
    wv_builder_resolve_driver(app->cfg, app->builds->storage_driver,
                              sizeof app->builds->storage_driver); /* auto probes overlay once */
  }
  int rc = wv_job_register_fn(e, WV_BUILD_CLEANUP_FN, cleanup_fn, NULL);
  rc = rc ? rc : wv_job_register_fn(e, WV_BUILD_DIGEST_FN, digest_fn, (void *)app);
  rc = rc ? rc : wv__build_scan_register(e, app);
  rc = rc ? rc : wv_base_fetch_register(e, app);
  rc = rc ? rc : wv_sif_register(e, app);
  return rc ? rc : wv__build_multi_register(e, app);
}
