/*
 * Unit tests for the build flow (build/build.c, build_prep.c, build_api.c)
 * and its text helpers (core/ansi.c): ids, de-duplication, the failure
 * window, dry runs, refusals, package rendering with config.yml images,
 * contexts, records and container status. No sockets: a real state store,
 * blob store and job engine run a fake builder (a shell script that writes
 * an OCI layout, or `false`).
 */
#include "build/build.h"
#include "build/build_api.h"
#include "build/build_int.h"
#include "build/builder.h"
#include "core/ansi.h"
#include "core/config.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "core/timefmt.h"
#include "http/client.h"
#include "storage/cas.h"
#include "storage/embedded.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes <workdir>/oci: one image whose layer is the build context, tagged $2. */
static const char fake_builder[] =
    "set -e\n"
    "d=\"$1/oci\"; mkdir -p \"$d/blobs/sha256\"; cd \"$d\"\n"
    "echo '{\"imageLayoutVersion\":\"1.0.0\"}' > oci-layout\n"
    "tar --sort=name --mtime=@0 --owner=0 --group=0 -C \"$1/context\" -cf l.tar .\n"
    "diff=$(sha256sum l.tar | cut -d' ' -f1); gzip -n l.tar\n"
    "ld=$(sha256sum l.tar.gz | cut -d' ' -f1); ls=$(stat -c %s l.tar.gz); mv l.tar.gz "
    "blobs/sha256/$ld\n"
    "printf '{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
    "\"diff_ids\":[\"sha256:%s\"]}}' $diff > c.json\n"
    "cd2=$(sha256sum c.json | cut -d' ' -f1); cs=$(stat -c %s c.json); mv c.json "
    "blobs/sha256/$cd2\n"
    "printf '{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
    "\"sha256:%s\",\"size\":%s},\"layers\":[{\"mediaType\":\"application/"
    "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:%s\",\"size\":%s}]}' $cd2 $cs $ld $ls "
    "> m.json\n"
    "md=$(sha256sum m.json | cut -d' ' -f1); ms=$(stat -c %s m.json); mv m.json "
    "blobs/sha256/$md\n"
    "printf '{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
    "vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":%s,\"annotations\":"
    "{\"org.opencontainers.image.ref.name\":\"%s\"}}]}' $md $ms \"$2\" > index.json\n"
    "echo '>> CONDA_LOCK_START'; echo '#5 0.25 https://conda/x.tar.bz2'; echo '<< CONDA_LOCK_END'\n"
    "printf '\\033[1mbuilt\\033[0m\\n'\n";

/* A test's services in a temp dir. env_open hands the env to TEST_CLEANUP, so it must outlive
 * the test (tests declare theirs static); an explicit env_close makes the deferred one a no-op. */
typedef struct {
  char dir[256];
  wv_config_t cfg;
  wv_app_t app;
  wv_arena_t *a;
  bool live; /* opened, not closed yet */
} env_t;

static void env_close(env_t *e);

static void set_str(char **field, const char *v) {
  free(*field);
  *field = strdup(v);
}

/* build = "ok" (the fake builder), "fail" (false) or NULL (no job engine). */
static int env_open(env_t *e, const char *build) {
  memset(e, 0, sizeof *e);
  wv_log_set_level(WV_LOG_ERROR);
  if (!tmpdir_make(e->dir, "build"))
    return -1;
  e->live = true;
  TEST_CLEANUP(env_close, e);
  if (wv_config_defaults(&e->cfg))
    return -1;
  char path[1024], script[512];
  set_str(&e->cfg.storage_path, e->dir);
  set_str(&e->cfg.server_authority, "wave.example.com");
  set_str(&e->cfg.tpl_mamba_image_v2, "lab.example.com:5000/mamba:2");
  set_str(&e->cfg.tpl_conda_base_image, "lab.example.com:5000/ubuntu:24.04");
  snprintf(script, sizeof script, "%s/fake-build.sh", e->dir);
  FILE *f = fopen(script, "w");
  if (!f)
    return -1;
  fputs(fake_builder, f);
  fclose(f);
  snprintf(path, sizeof path, "sh %s {workdir} {tag}", script);
  set_str(&e->cfg.build_buildah_build, build && strcmp(build, "ok") == 0 ? path : "false");
  set_str(&e->cfg.build_buildah_push, "true");
  set_str(&e->cfg.build_buildah_cleanup, "");
  e->app.cfg = &e->cfg;
  e->a = wv_arena_new(0);
  snprintf(path, sizeof path, "%s/state", e->dir);
  if (wv_store_open(&e->app.store, path, 64 << 20, 0) || wv_cas_open(&e->app.cas, e->dir, 0) ||
      wv_build_table_new(&e->app.builds))
    return -1;
  snprintf(path, sizeof path, "%s/build", e->dir);
  mkdir(path, 0700);
  if (!build)
    return 0;
  wv_job_opts_t o;
  wv_job_opts_init(&o);
  snprintf(path, sizeof path, "%s/logs", e->dir);
  o.log_dir = path;
  o.mem = WV_JOB_MEM_NONE;
  int rc = wv_job_engine_new(&o, &e->app.jobs);
  rc = rc ? rc : wv_builder_register(e->app.jobs, &e->app);
  rc = rc ? rc : wv_build_register(e->app.jobs, &e->app);
  return rc ? rc : wv_job_engine_start(e->app.jobs);
}

static void env_close(env_t *e) {
  if (!e->live)
    return;
  e->live = false;
  wv_job_engine_free(e->app.jobs);
  wv_build_table_free(e->app.builds);
  wv_cas_close(e->app.cas);
  wv_store_close(e->app.store);
  wv_config_free(&e->cfg);
  wv_arena_free(e->a);
  tmpdir_remove(e->dir);
}

static int submit(env_t *e, const char *body, json_object **out, const char **msg) {
  *msg = NULL;
  *out = NULL;
  return wv_creq_handle(&e->app, e->a, body, strlen(body), true, "203.0.113.7", out, msg, NULL);
}

static const char *jstr(json_object *o, const char *key) {
  const char *s = NULL;
  return wv_json_get_str(o, key, &s) ? NULL : s;
}

/* "1" / "0" for a boolean member, "-" when absent. */
static const char *jbool(json_object *o, const char *key) {
  bool b;
  return wv_json_get_bool(o, key, &b) ? "-" : b ? "1" : "0";
}

static wv_job_state_t wait_job(env_t *e, const char *id) {
  wv_job_info_t ji = {0};
  for (long i = 0; i < WV_TEST_MS(1000); i++) { /* 10 s, times the sanitizer slowdown */
    if (wv_job_get(e->app.jobs, id, &ji) == 0 &&
        (ji.state == WV_JOB_SUCCEEDED || ji.state == WV_JOB_FAILED))
      return ji.state;
    usleep(10000);
  }
  return ji.state;
}

/* {"containerFile": base64(text)} plus extra members. */
static const char *file_body(env_t *e, const char *text, const char *extra) {
  size_t n = strlen(text);
  char *b64 = wv_arena_alloc(e->a, 4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)text, (int)n);
  return wv_arena_sprintf(e->a, "{\"containerFile\":\"%s\"%s}", b64, extra ? extra : "");
}

/* ---- text helpers ------------------------------------------------------------------ */

TEST(ansi_strip) {
  char s[] = "\x1b[1;32mok\x1b[0m plain \x1b]0;title\x07"
             "end\x1b(B!";
  size_t n = wv_ansi_strip(s, strlen(s));
  CHECK_EQ_STR(s, "ok plain end!");
  CHECK_EQ_INT((int)n, 13);
  char t[] = "cut \x1b[";
  CHECK_EQ_INT((int)wv_ansi_strip(t, strlen(t)), 4);
}

TEST(single_from) {
  size_t at = 0, len = 0;
  const char *f = "FROM reg.io/a/b:1\nRUN x\n";
  CHECK(wv__build_single_from(f, &at, &len));
  CHECK_EQ_INT((int)at, 5);
  CHECK_EQ_INT((int)len, 12);
  f = "# a comment\n  from\treg.io/a/b AS base \r\nCOPY x /x\n";
  CHECK(wv__build_single_from(f, &at, &len));
  CHECK(strncmp(f + at, "reg.io/a/b", len) == 0 && len == 10);
  f = "RUN echo \\\nFROM x\nFROM reg.io/a/b\n"; /* the first FROM continues a RUN */
  CHECK(wv__build_single_from(f, &at, &len));
  CHECK(strncmp(f + at, "reg.io/a/b", len) == 0);
  CHECK(!wv__build_single_from("FROM a AS s\nFROM s\n", &at, &len));           /* multi-stage */
  CHECK(!wv__build_single_from("ARG B=a\nFROM ${B}\n", &at, &len));            /* ARG */
  CHECK(!wv__build_single_from("FROM --platform=linux/arm64 a\n", &at, &len)); /* option */
  CHECK(!wv__build_single_from("FROM scratch\nCOPY x /\n", &at, &len));
  CHECK(!wv__build_single_from("FROM a \\\n  AS b\n", &at, &len));  /* continued */
  CHECK(!wv__build_single_from("# escape=`\nFROM a\n", &at, &len)); /* directive */
  CHECK(!wv__build_single_from("FROM a b\n", &at, &len));
  CHECK(!wv__build_single_from("RUN x\n", &at, &len));
  CHECK(!wv__build_single_from("", &at, &len));
}

TEST(log_lock_sections) {
  const char *log =
      "step 1\n#7 1.5 >> CONDA_LOCK_START\n#7 1.5 @EXPLICIT\n#7 1.6 https://x/a.conda\n"
      "#7 1.6 << CONDA_LOCK_END\nstep 2\n";
  char a[256], b[256];
  snprintf(a, sizeof a, "%s", log);
  snprintf(b, sizeof b, "%s", log);
  size_t n = wv_build_log_without_lock(a, strlen(a));
  CHECK_EQ_STR(a, "step 1\nstep 2\n");
  CHECK_EQ_INT((int)n, 14);
  n = wv_build_log_lock(b, strlen(b));
  CHECK_EQ_STR(b, "@EXPLICIT\nhttps://x/a.conda\n");
  char c[] = "no lock here\n";
  CHECK_EQ_INT(wv_build_log_lock(c, strlen(c)), (size_t)-1);
  CHECK_EQ_INT((int)wv_build_log_without_lock(c, strlen(c)), 13);
}

/* ---- inputs and refusals --------------------------------------------------------------- */

TEST(packages_use_config_images) {
  static env_t e;
  CHECK_OK(env_open(&e, NULL));
  wv_creq_t r;
  const char *msg = NULL, *file, *conda, *tpl;
  const char *body = "{\"packages\":{\"type\":\"CONDA\",\"entries\":[\"samtools=1.17\"]}}";
  CHECK_OK(wv_creq_parse(e.a, body, strlen(body), 0, true, &r, &msg));
  CHECK_OK(wv_build_container_file(e.a, &e.cfg, &r, &file, &conda, &tpl, &msg));
  CHECK_HAS(file, "FROM lab.example.com:5000/mamba:2 AS build\n");
  CHECK_HAS(file, "FROM lab.example.com:5000/ubuntu:24.04 AS prod\n");
  CHECK_EQ_STR(conda, "dependencies:\n- samtools=1.17\n");
  CHECK_EQ_STR(tpl, "conda/micromamba:v2");
  /* The request's own images win. */
  body = "{\"packages\":{\"type\":\"CONDA\",\"entries\":[\"x\"],\"condaOpts\":{\"mambaImage\":"
         "\"mine/mamba:2\",\"baseImage\":\"mine/base:1\"}}}";
  CHECK_OK(wv_creq_parse(e.a, body, strlen(body), 0, true, &r, &msg));
  CHECK_OK(wv_build_container_file(e.a, &e.cfg, &r, &file, &conda, &tpl, &msg));
  CHECK_HAS(file, "FROM mine/mamba:2 AS build\n");
  CHECK_HAS(file, "FROM mine/base:1 AS prod\n");
  env_close(&e);
}

static void put_json(json_object *o) { json_object_put(o); }

/* Freeze (contract §3.3, §6.3): the real image, no token, no expiration; a dry run launches
 * nothing. */
TEST(freeze_dry_run) {
  static env_t e;
  CHECK_OK(env_open(&e, "fail"));
  json_object *out;
  const char *msg;
  CHECK_OK(submit(&e,
                  "{\"containerImage\":\"wave.example.com/x/y:1\",\"freeze\":true,"
                  "\"dryRun\":true,\"buildRepository\":\"reg.example.com/a/b\","
                  "\"containerConfig\":{\"env\":[\"A=1\"],\"entrypoint\":[\"/e\"]}}",
                  &out, &msg));
  TEST_CLEANUP(put_json, out);
  const char *ti = NULL, *ci = NULL;
  json_object *v = NULL;
  CHECK(!json_object_object_get_ex(out, "containerToken", &v));
  CHECK(!json_object_object_get_ex(out, "expiration", &v));
  CHECK_OK(wv_json_get_str(out, "targetImage", &ti));
  CHECK_OK(wv_json_get_str(out, "containerImage", &ci));
  CHECK_PREFIX(ti, "reg.example.com/a/b:");
  CHECK_EQ_INT(strlen(ti), 36);
  CHECK_EQ_STR(ti, ci);
  CHECK(json_object_object_get_ex(out, "freeze", &v) && json_object_get_boolean(v));
}

/* Multi-platform into the embedded registry (no build repository): accepted, one parent id. */
TEST(multi_platform_embedded) {
  static env_t e;
  CHECK_OK(env_open(&e, "fail"));
  json_object *out;
  const char *msg;
  CHECK_OK(submit(&e,
                  file_body(&e, "FROM x\n",
                            ",\"containerPlatform\":\"linux/amd64,linux/arm64\",\"dryRun\":true"),
                  &out, &msg));
  TEST_CLEANUP(put_json, out);
  CHECK_HAS(jstr(out, "containerImage"), "/wave/build:");
  CHECK(strlen(jstr(out, "buildId")) == 18);
  CHECK_EQ_STR(jstr(out, "buildId") + 16, "_0");
}

/* format: sif (build/sif): the target is oras://<repo>:<tag>; a bad definition is a 400. */
TEST(sif_target_and_bad_definition) {
  static env_t e;
  CHECK_OK(env_open(&e, "fail"));
  json_object *out;
  const char *msg;
  CHECK_OK(submit(&e,
                  file_body(&e, "Bootstrap: docker\nFrom: x\n%post\n  true\n",
                            ",\"format\":\"sif\",\"freeze\":true,\"dryRun\":true,"
                            "\"buildRepository\":\"reg.example.com/a/b\""),
                  &out, &msg));
  TEST_CLEANUP(put_json, out);
  CHECK_PREFIX(jstr(out, "containerImage"), "oras://reg.example.com/a/b:");
  CHECK_EQ_STR(jstr(out, "targetImage"), jstr(out, "containerImage"));
  CHECK_EQ_INT(submit(&e,
                      file_body(&e, "Bootstrap: docker\nFrom: x\n%setup\n  true\n",
                                ",\"format\":\"sif\",\"freeze\":true,"
                                "\"buildRepository\":\"reg.example.com/a/b\""),
                      &out, &msg),
               WV_EINVAL);
  CHECK_HAS(msg, "'%setup'");
}

/* Container files and packages a build refuses, and builds switched off. */
TEST(refusals) {
  static env_t e;
  CHECK_OK(env_open(&e, "fail"));
  json_object *out;
  const char *msg;
  CHECK_EQ_INT(
      submit(&e, file_body(&e, "FROM x\nCOPY /root/.docker/config.json /\n", NULL), &out, &msg),
      WV_EINVAL);
  CHECK_HAS(msg, "(error code: 100)");
  CHECK_EQ_INT(submit(&e, file_body(&e, "FROM x\nRUN /kaniko/executor\n", NULL), &out, &msg),
               WV_EINVAL);
  CHECK_HAS(msg, "(error code: 101)");
  CHECK_EQ_INT(
      submit(&e, "{\"packages\":{\"type\":\"CONDA\",\"entries\":[\"pip::x\"]}}", &out, &msg),
      WV_EINVAL);
  e.cfg.build_enabled = false;
  CHECK_EQ_INT(submit(&e, file_body(&e, "FROM x\n", NULL), &out, &msg), WV_EUNSUPPORTED);
  CHECK_PREFIX(msg, "Build service is not enabled");
  env_close(&e);
}

TEST(dry_run_builds_nothing) {
  static env_t e;
  CHECK_OK(env_open(&e, "ok"));
  json_object *out;
  const char *msg;
  CHECK_OK(submit(&e, file_body(&e, "FROM scratch\n", ",\"dryRun\":true"), &out, &msg));
  const char *id = jstr(out, "buildId");
  CHECK(id);
  CHECK_EQ_INT(strlen(id), 18);
  CHECK_EQ_STR(id + 16, "_0");
  CHECK_EQ_STR(jbool(out, "cached"), "0");
  CHECK_EQ_STR(jbool(out, "succeeded"), "-");
  wv_job_info_t ji;
  char bd[64];
  snprintf(bd, sizeof bd, "bd-%.16s_1", id);
  CHECK_EQ_INT(wv_job_get(e.app.jobs, bd, &ji), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_job_get(e.app.jobs, id, &ji), WV_ENOTFOUND);
  json_object_put(out);
  env_close(&e);
}

/* ---- the build flow ------------------------------------------------------------------- */

TEST(build_join_reuse_records) {
  static env_t e;
  CHECK_OK(env_open(&e, "ok"));
  json_object *o1, *o2, *o3;
  const char *msg;
  const char *body = file_body(&e, "FROM scratch\nCOPY . /\n", NULL);
  int64_t t0 = wv_mono_ns();
  CHECK_OK(submit(&e, body, &o1, &msg));
  const char *id = jstr(o1, "buildId");
  CHECK(id);
  CHECK_PREFIX(id, "bd-");
  CHECK_EQ_STR(id + 19, "_1");
  CHECK_EQ_STR(jbool(o1, "cached"), "0");
  CHECK_EQ_STR(jbool(o1, "succeeded"), "-");
  char want[128];
  snprintf(want, sizeof want, "wave.example.com/wave/build:%.16s", id + 3);
  CHECK_EQ_STR(jstr(o1, "containerImage"), want);
  snprintf(want, sizeof want, "wave.example.com/wt/%s/wave/build:%.16s", jstr(o1, "requestId"),
           id + 3);
  CHECK_EQ_STR(jstr(o1, "targetImage"), want);
  /* An identical request while it runs (or just after) gets the same build. */
  CHECK_OK(submit(&e, body, &o2, &msg));
  CHECK_EQ_STR(jstr(o2, "buildId"), id);
  CHECK_EQ_INT(wait_job(&e, id), WV_JOB_SUCCEEDED);
  double waited = (double)(wv_mono_ns() - t0) / 1e9; /* the build ran within this */
  CHECK_OK(submit(&e, body, &o3, &msg));
  CHECK_EQ_STR(jstr(o3, "buildId"), id);
  CHECK_EQ_STR(jbool(o3, "cached"), "1");
  CHECK_EQ_STR(jbool(o3, "succeeded"), "1");
  /* The embedded registry has the tag; the layout copy was dropped. */
  char *m = NULL, dg[WV_EMBEDDED_DIGEST_LEN];
  size_t len;
  CHECK_OK(wv_embedded_get_manifest(e.app.store, WV_EMBEDDED_REPO, want + strlen(want) - 16, &m,
                                    &len, NULL, dg));
  free(m);
  char oci[512];
  snprintf(oci, sizeof oci, "%s/build/%s/oci", e.dir, id);
  CHECK(access(oci, F_OK) != 0);
  /* Container status of the first request: DONE, succeeded, decimal duration. */
  wv_token_rec_t t = {.token = jstr(o1, "requestId"),
                      .kind = WV_TOKEN_BUILD,
                      .build_id = id,
                      .created_ms = wv_store_now_ms()};
  json_object *st = wv_build_container_status(&e.app, e.a, &t, wv_now_ns());
  CHECK_EQ_STR(jstr(st, "status"), "DONE");
  CHECK_EQ_STR(jbool(st, "succeeded"), "1");
  CHECK_EQ_STR(jstr(st, "buildId"), id);
  /* Decimal seconds, no longer than the test waited for the build (not a fixed bound such as
   * "under 1 s", which a loaded machine or a sanitizer build exceeds). */
  const char *dur = strstr(wv_json_compact(st), "\"duration\":");
  CHECK(dur);
  char *end = NULL;
  double secs = strtod(dur + strlen("\"duration\":"), &end);
  CHECK(memchr(dur, '.', (size_t)(end - dur)) != NULL);
  CHECK(secs > 0 && secs <= waited + 0.01);
  json_object_put(st);
  json_object_put(o1);
  json_object_put(o2);
  json_object_put(o3);
  env_close(&e);
}

TEST(failure_window_then_retry) {
  static env_t e;
  CHECK_OK(env_open(&e, "fail"));
  json_object *o1, *o2, *o3;
  const char *msg;
  const char *body = file_body(&e, "FROM scratch\n", NULL);
  CHECK_OK(submit(&e, body, &o1, &msg));
  const char *id = jstr(o1, "buildId");
  CHECK_EQ_INT(wait_job(&e, id), WV_JOB_FAILED);
  CHECK_OK(submit(&e, body, &o2, &msg));
  CHECK_EQ_STR(jstr(o2, "buildId"), id);
  CHECK_EQ_STR(jbool(o2, "cached"), "1");
  CHECK_EQ_STR(jbool(o2, "succeeded"), "0");
  wv_token_rec_t t = {.token = "tok", .kind = WV_TOKEN_BUILD, .build_id = id};
  json_object *st = wv_build_container_status(&e.app, e.a, &t, wv_now_ns());
  CHECK_EQ_STR(jstr(st, "status"), "DONE");
  CHECK_EQ_STR(jbool(st, "succeeded"), "0");
  CHECK_EQ_STR(jstr(st, "reason"), "Container build did not complete successfully");
  json_object_put(st);
  /* Past the failure window the next identical request builds again, with n + 1. */
  e.cfg.build_failure_ttl_ms = 0;
  CHECK_OK(submit(&e, body, &o3, &msg));
  char want[64];
  snprintf(want, sizeof want, "%.19s_2", id);
  CHECK_EQ_STR(jstr(o3, "buildId"), want);
  CHECK_EQ_STR(jbool(o3, "cached"), "0");
  wait_job(&e, want);
  json_object_put(o1);
  json_object_put(o2);
  json_object_put(o3);
  env_close(&e);
}

/* ---- rate limits (core/ratelimit.h) ------------------------------------------------- */

TEST(build_rate_limit_counts_new_builds_only) {
  static env_t e;
  CHECK_OK(env_open(&e, "ok"));
  wv_ratelimit_rate_t one = {1, 3600000}, off = {0, 0};
  CHECK_OK(wv_ratelimit_new("build", one, off, 64, &e.app.build_limit));
  json_object *o;
  const char *msg;
  /* Dry runs build nothing and take no permit. */
  CHECK_OK(submit(&e, file_body(&e, "FROM scratch\n", ",\"dryRun\":true"), &o, &msg));
  json_object_put(o);
  const char *body = file_body(&e, "FROM scratch\nCOPY . /\n", NULL);
  CHECK_OK(submit(&e, body, &o, &msg)); /* the one permit */
  const char *id = wv_arena_strdup(e.a, jstr(o, "buildId"));
  json_object_put(o);
  CHECK_OK(submit(&e, body, &o, &msg)); /* joined: no permit */
  CHECK_EQ_STR(jstr(o, "buildId"), id);
  json_object_put(o);
  CHECK_EQ_INT(wait_job(&e, id), WV_JOB_SUCCEEDED);
  CHECK_OK(submit(&e, body, &o, &msg)); /* cached: no permit */
  CHECK_EQ_STR(jbool(o, "cached"), "1");
  json_object_put(o);
  /* A second new build is over the limit: 429, nothing created. */
  const char *other = file_body(&e, "FROM scratch\nCOPY . /other\n", NULL);
  int64_t retry = 0;
  o = NULL;
  CHECK_EQ_INT(
      wv_creq_handle(&e.app, e.a, other, strlen(other), true, "203.0.113.7", &o, &msg, &retry),
      WV_EBUSY);
  CHECK(o == NULL);
  CHECK_EQ_STR(msg, "Request exceeded build rate limit for IP 203.0.113.7");
  CHECK(retry >= 3599 && retry <= 3600);
  /* An account has its own budget; the refused build was never counted. */
  CHECK_OK(wv_ratelimit_acquire(e.app.build_limit, "alice", NULL, NULL));
  wv_ratelimit_free(e.app.build_limit);
  e.app.build_limit = NULL;
  CHECK_OK(submit(&e, other, &o, &msg));
  CHECK_EQ_STR(jstr(o, "buildId") + 19, "_1");
  CHECK_EQ_INT(wait_job(&e, jstr(o, "buildId")), WV_JOB_SUCCEEDED);
  json_object_put(o);
  env_close(&e);
}

TEST(container_requests_take_pull_permits) {
  static env_t e;
  CHECK_OK(env_open(&e, "ok"));
  wv_ratelimit_rate_t two = {2, 60000}, off = {0, 0};
  CHECK_OK(wv_ratelimit_new("pull", two, off, 64, &e.app.pull_limit));
  json_object *o;
  const char *msg;
  const char *body = file_body(&e, "FROM scratch\n", ",\"dryRun\":true");
  for (int i = 0; i < 2; i++) {
    CHECK_OK(submit(&e, body, &o, &msg));
    json_object_put(o);
  }
  int64_t retry = 0;
  CHECK_EQ_INT(
      wv_creq_handle(&e.app, e.a, body, strlen(body), true, "203.0.113.7", &o, &msg, &retry),
      WV_EBUSY);
  CHECK_EQ_STR(msg, "Request exceeded pull rate limit for IP 203.0.113.7");
  CHECK_EQ_INT(retry, 30);
  /* Another address is not affected; a request refused as invalid takes nothing. */
  CHECK_OK(wv_creq_handle(&e.app, e.a, body, strlen(body), true, "203.0.113.8", &o, &msg, NULL));
  json_object_put(o);
  CHECK_EQ_INT(wv_creq_handle(&e.app, e.a, "{}", 2, true, "203.0.113.9", &o, &msg, NULL),
               WV_EINVAL);
  CHECK_OK(wv_creq_handle(&e.app, e.a, body, strlen(body), true, "203.0.113.9", &o, &msg, NULL));
  json_object_put(o);
  CHECK_OK(wv_creq_handle(&e.app, e.a, body, strlen(body), true, "203.0.113.9", &o, &msg, NULL));
  json_object_put(o);
  wv_ratelimit_free(e.app.pull_limit);
  env_close(&e);
}

TEST(build_context_checked) {
  static env_t e;
  CHECK_OK(env_open(&e, "ok"));
  json_object *out;
  const char *msg;
  const char *bad = file_body(&e, "FROM scratch\n",
                              ",\"buildContext\":{\"location\":\"data:bm90IGd6aXA=\","
                              "\"tarDigest\":\"sha256:00\"}");
  CHECK_EQ_INT(submit(&e, bad, &out, &msg), WV_EINVAL);
  CHECK(msg != NULL);
  bad = file_body(&e, "FROM scratch\n", ",\"buildContext\":{\"location\":\"ftp://x/y.tgz\"}");
  CHECK_EQ_INT(submit(&e, bad, &out, &msg), WV_EINVAL);
  CHECK_HAS(msg, "data: or http(s)");
  /* An http(s) context on a loopback address: refused by the SSRF policy before any fetch. */
  CHECK_OK(wv_http_global_init());
  bad = file_body(&e, "FROM scratch\n",
                  ",\"buildContext\":{\"location\":\"http://127.0.0.1:1/c.tgz\"}");
  CHECK_EQ_INT(submit(&e, bad, &out, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Unable to fetch the build context from 'http://127.0.0.1:1/c.tgz' - 127.0.0.1 "
                    "is a loopback address, which wave.security.outbound does not allow");
  set_str(&e.cfg.outbound_allow, "127.0.0.1/32"); /* allowed: now the fetch itself fails */
  CHECK_EQ_INT(submit(&e, bad, &out, &msg), WV_EINVAL);
  CHECK_HAS(msg, "Unable to fetch the build context from 'http://127.0.0.1:1/c.tgz' - ");
  CHECK_LACKS(msg, "wave.security.outbound");
  env_close(&e);
}

/* ---- freeze (contract §6.3) ------------------------------------------------------------------ */

/* The containerConfig is part of a freeze id (§4.4): another env, another tag. */
TEST(freeze_id_has_config) {
  static env_t e;
  CHECK_OK(env_open(&e, "ok"));
  json_object *out;
  const char *msg, *tags[3];
  const char *envs[3] = {"A=1", "A=2", "A=1"};
  for (int i = 0; i < 3; i++) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"containerImage\":\"wave.example.com/x/y:1\",\"freeze\":true,\"dryRun\":true,"
             "\"buildRepository\":\"reg.example.com/a/b\",\"containerConfig\":{\"env\":[\"%s\"]}}",
             envs[i]);
    CHECK_OK(submit(&e, body, &out, &msg));
    tags[i] = wv_arena_strdup(e.a, jstr(out, "targetImage"));
    json_object_put(out);
  }
  CHECK(strcmp(tags[0], tags[1]) != 0);
  CHECK_EQ_STR(tags[0], tags[2]);
  env_close(&e);
}

/* Layer archives: from the blob store with size and digest checked; a URL that fails is a 400. */
TEST(freeze_layer_archives) {
  static env_t e;
  CHECK_OK(env_open(&e, "ok"));
  char digest[WV_DIGEST_STRLEN], ctx[512], path[700];
  CHECK_OK(wv_cas_put(e.app.cas, "hello", 5, NULL, digest));
  snprintf(ctx, sizeof ctx, "%s/ctx", e.dir);
  CHECK_OK(mkdir(ctx, 0700));
  wv_container_layer_t l = {.location = "data:aGVsbG8=", .gzip_digest = digest, .gzip_size = 5};
  wv_creq_t r = {0};
  r.cc.layers = &l;
  r.cc.n_layers = 1;
  const char *msg = NULL;
  CHECK_OK(wv__build_freeze_layers(&e.app, e.a, &r, ctx, &msg));
  snprintf(path, sizeof path, "%s/layer-%s.tar.gz", ctx, digest + 7);
  struct stat st;
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK_EQ_INT(st.st_size, 5);
  l.gzip_size = 6;
  CHECK_EQ_INT(wv__build_freeze_layers(&e.app, e.a, &r, ctx, &msg), WV_EINVAL);
  CHECK_HAS(msg, "does not match its gzipSize/gzipDigest");
  l.gzip_size = 4;
  CHECK_EQ_INT(wv__build_freeze_layers(&e.app, e.a, &r, ctx, &msg), WV_EINVAL);
  CHECK_HAS(msg, "larger than its gzipSize");
  CHECK_OK(wv_http_global_init());
  l.location = "http://127.0.0.1:1/layer.tgz";
  CHECK_EQ_INT(wv__build_freeze_layers(&e.app, e.a, &r, ctx, &msg), WV_EINVAL);
  CHECK_HAS(msg, "Unable to fetch container layer");
  CHECK_HAS(msg, "127.0.0.1 is a loopback address, which wave.security.outbound");
  set_str(&e.cfg.outbound_allow, "127.0.0.0/8");
  CHECK_EQ_INT(wv__build_freeze_layers(&e.app, e.a, &r, ctx, &msg), WV_EINVAL);
  CHECK_HAS(msg, "Unable to fetch container layer");
  CHECK_LACKS(msg, "wave.security.outbound");
  l.location = "docker://x/y@sha256:00";
  CHECK_EQ_INT(wv__build_freeze_layers(&e.app, e.a, &r, ctx, &msg), WV_EINVAL);
  CHECK_HAS(msg, "Unsupported container layer location");
  env_close(&e);
}

WV_TESTS(T(ansi_strip), T(single_from), T(log_lock_sections), T(packages_use_config_images),
         T(freeze_dry_run), T(multi_platform_embedded), T(sif_target_and_bad_definition),
         T(refusals), T(dry_run_builds_nothing), T(build_join_reuse_records),
         T(failure_window_then_retry), T(build_context_checked), T(freeze_id_has_config),
         T(freeze_layer_archives), T(build_rate_limit_counts_new_builds_only),
         T(container_requests_take_pull_permits))
