/*
 * tests/test_scan_job.c — scan jobs without sockets: the test image of
 * tests/test_scan_util.h (gzip, zstd and plain layers, a whiteout) is
 * imported into the embedded registry, the OSV data set into the store, and
 * real scan jobs run on a real job engine. Then ids (contract §4.6 vectors, the
 * per-image counter, the cache and its release on failure), records (§8.2),
 * the container status verdict (§3.6) and the failure record's log rules.
 */
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/timefmt.h"
#include "scan/osv.h"
#include "scan/scan.h"
#include "scan/scan_int.h"
#include "storage/cas.h"
#include "storage/embedded.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/storage_util.h"
#include "tests/test_scan_util.h"

#include <unistd.h>

#define IMAGE "localhost:9090/wave/build:latest"

typedef struct {
  char dir[256];
  wv_config_t cfg;
  wv_app_t app;
  bool live; /* opened, not closed yet */
} fx_t;

/* dir/oci: an OCI layout of dir/layer{0,1,2} tagged latest (diff_ids are not checked here). */
static int layout_write(const char *dir) {
  char path[600], layers[1024] = "", digest[3][WV_DIGEST_STRLEN], man[2048], cfgj[1024];
  size_t lo = 0;
  snprintf(path, sizeof path, "%s/oci/blobs/sha256", dir);
  char mk[600];
  snprintf(mk, sizeof mk, "%s/oci", dir);
  mkdir(mk, 0700);
  snprintf(mk, sizeof mk, "%s/oci/blobs", dir);
  mkdir(mk, 0700);
  mkdir(path, 0700);
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/layer%d", dir, i);
    FILE *f = fopen(path, "rb");
    static char buf[1 << 20];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
      fclose(f);
    if (!n || wv_digest_of(buf, n, digest[i]))
      return -1;
    snprintf(path, sizeof path, "%s/oci/blobs/sha256/%s", dir, digest[i] + 7);
    if (write_file(path, buf, n))
      return -1;
    lo += (size_t)snprintf(layers + lo, sizeof layers - lo,
                           "%s{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
                           "\"digest\":\"%s\",\"size\":%zu}",
                           i ? "," : "", digest[i], n);
  }
  snprintf(cfgj, sizeof cfgj,
           "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
           "\"diff_ids\":[\"%s\",\"%s\",\"%s\"]}}",
           digest[0], digest[1], digest[2]);
  char cd[WV_DIGEST_STRLEN], md[WV_DIGEST_STRLEN];
  wv_digest_of(cfgj, strlen(cfgj), cd);
  snprintf(path, sizeof path, "%s/oci/blobs/sha256/%s", dir, cd + 7);
  if (write_file(path, cfgj, strlen(cfgj)))
    return -1;
  snprintf(man, sizeof man,
           "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
           "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
           "\"%s\",\"size\":%zu},\"layers\":[%s]}",
           cd, strlen(cfgj), layers);
  wv_digest_of(man, strlen(man), md);
  snprintf(path, sizeof path, "%s/oci/blobs/sha256/%s", dir, md + 7);
  if (write_file(path, man, strlen(man)))
    return -1;
  char idx[512];
  snprintf(idx, sizeof idx,
           "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image."
           "manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{\"org."
           "opencontainers.image.ref.name\":\"latest\"}}]}",
           md, strlen(man));
  snprintf(path, sizeof path, "%s/oci/index.json", dir);
  if (write_file(path, idx, strlen(idx)))
    return -1;
  snprintf(path, sizeof path, "%s/oci/oci-layout", dir);
  return write_file(path, "{\"imageLayoutVersion\":\"1.0.0\"}", 30);
}

static void fx_close(fx_t *f);

/* Opens f's services in a fresh temp dir and hands f to TEST_CLEANUP, so f must outlive the
 * test (tests declare theirs static); an explicit fx_close makes the deferred one a no-op. */
static int fx_open(fx_t *f, bool with_image) {
  char path[600], err[256];
  memset(f, 0, sizeof *f);
  if (!tmpdir_make(f->dir, "scanjob"))
    return -1;
  f->live = true;
  TEST_CLEANUP(fx_close, f);
  if (wv_config_defaults(&f->cfg))
    return -1;
  f->cfg.scan_enabled = true;
  f->cfg.scan_vuln_limit = 3;
  f->app.cfg = &f->cfg;
  snprintf(path, sizeof path, "%s/state", f->dir);
  int rc = wv_store_open(&f->app.store, path, 0, 0);
  rc = rc ? rc : wv_cas_open(&f->app.cas, f->dir, 0);
  if (!rc && with_image) {
    rc = osv_dataset_write(f->dir) || image_write(f->dir) || layout_write(f->dir) ? -1 : 0;
    snprintf(path, sizeof path, "%s/osv", f->dir);
    rc = rc ? rc : wv_osv_import(f->app.store, path, NULL, NULL, NULL);
    snprintf(path, sizeof path, "%s/oci", f->dir);
    rc = rc ? rc
            : wv_embedded_import(f->app.store, f->app.cas, path, "latest", "wave/build", "latest",
                                 NULL, err, sizeof err);
    if (rc)
      fprintf(stderr, "  fixture: %s\n", err);
  }
  wv_job_opts_t o;
  wv_job_opts_init(&o);
  snprintf(path, sizeof path, "%s/logs", f->dir);
  o.log_dir = path;
  o.mem = WV_JOB_MEM_NONE;
  rc = rc ? rc : wv_job_engine_new(&o, &f->app.jobs);
  rc = rc ? rc : wv_scan_register(f->app.jobs, &f->app);
  return rc ? rc : wv_job_engine_start(f->app.jobs);
}

static void fx_close(fx_t *f) {
  if (!f->live)
    return;
  f->live = false;
  wv_job_engine_free(f->app.jobs);
  wv_cas_close(f->app.cas);
  wv_store_close(f->app.store);
  wv_config_free(&f->cfg);
  tmpdir_remove(f->dir);
}

/* Waits (up to 10 s) for the job of scan id to end; returns its state. */
static int wait_job(fx_t *f, const char *id) {
  wv_job_info_t info = {0};
  for (int i = 0; i < 1000; i++) {
    if (wv_job_get(f->app.jobs, id, &info) == 0 && info.state >= WV_JOB_SUCCEEDED)
      return (int)info.state;
    usleep(10000);
  }
  return -1;
}

static const char *str(json_object *o, const char *key) {
  const char *s = NULL;
  return wv_json_get_str(o, key, &s) ? "(absent)" : s;
}

static const char *compact(json_object *o) {
  return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

TEST(id_hash_spec_vectors) {
  char out[20];
  CHECK_OK(wv_scan_id_hash("x", NULL, out));
  CHECK_EQ_STR(out, "sc-94be9fbddcc3af8e");
  CHECK_OK(wv_scan_id_hash("x", "y", out));
  CHECK_EQ_STR(out, "sc-00769af315dcb1fe");
}

TEST(id_valid) {
  CHECK(wv_scan_id_valid("sc-94be9fbddcc3af8e_1"));
  CHECK(wv_scan_id_valid("sc-94be9fbddcc3af8e_123"));
  CHECK(!wv_scan_id_valid("sc-94be9fbddcc3af8e_"));
  CHECK(!wv_scan_id_valid("sc-94be9fbddcc3af8E_1"));
  CHECK(!wv_scan_id_valid("sc-94be9fbddcc3af8_1"));
  CHECK(!wv_scan_id_valid("sc-94be9fbddcc3af8e_1x"));
  CHECK(!wv_scan_id_valid("id/94be9fbddcc3af8e"));
  CHECK(!wv_scan_id_valid(NULL));
}

/* Wave's ContainerStatusServiceImpl cases. */
TEST(levels_verdict) {
  char reason[512];
  bool ok = true;
  json_object *c = json_tokener_parse("{\"HIGH\":1,\"CRITICAL\":2,\"MEDIUM\":3}");
  CHECK_OK(wv_scan_levels_verdict("LOW,MEDIUM", c, &ok, reason, sizeof reason));
  CHECK(!ok);
  CHECK_EQ_STR(reason, "Container security scan operation found one or more vulnerabilities with "
                       "severity: HIGH,CRITICAL");
  json_object_put(c);
  c = json_tokener_parse("{\"MEDIUM\":5}");
  CHECK_OK(wv_scan_levels_verdict("LOW,MEDIUM", c, &ok, reason, sizeof reason));
  CHECK(ok);
  CHECK_EQ_STR(reason, "Container security scan operation found one or more vulnerabilities that "
                       "are compatible with requested security levels: LOW,MEDIUM");
  CHECK_OK(wv_scan_levels_verdict(NULL, c, &ok, reason, sizeof reason));
  CHECK(!ok); /* no levels given: none allowed */
  json_object_put(c);
  c = json_tokener_parse("{\"UNKNOWN\":1}");
  CHECK_OK(wv_scan_levels_verdict("LOW,MEDIUM,HIGH,CRITICAL", c, &ok, reason, sizeof reason));
  CHECK(!ok); /* unrated findings are never an allowed level */
  json_object_put(c);
  CHECK_OK(wv_scan_levels_verdict("LOW", NULL, &ok, reason, sizeof reason));
  CHECK(ok);
  CHECK_EQ_STR(reason, "");
}

static void put_json(json_object *o) { json_object_put(o); }

/* f opened with the test image, which is then scanned for a build (the scan of *id, ended).
 * 0, or the first failure's code (WV_EINTERNAL: the job did not succeed). */
static int scanned(fx_t *f, char id[WV_SCAN_ID_MAX + 1]) {
  int rc = fx_open(f, true);
  rc = rc ? rc
          : wv_scan_submit_for_image(&f->app, IMAGE, NULL, true, "linux/amd64", WV_SCAN_FOR_BUILD,
                                     "bd-0123456789abcdef_1", "async", id);
  return rc ? rc : wait_job(f, id) == WV_JOB_SUCCEEDED ? 0 : WV_EINTERNAL;
}

/* A scan of an image in the embedded registry: its id, its record (the findings, capped by
 * wave.scan.vulnerability.limit). */
TEST(embedded_image_scan) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1], want[40];
  CHECK_OK(fx_open(&f, true));
  CHECK_OK(wv_scan_submit_for_image(&f.app, IMAGE, NULL, true, "linux/amd64", WV_SCAN_FOR_BUILD,
                                    "bd-0123456789abcdef_1", "async", id));
  CHECK_OK(wv_scan_id_hash(IMAGE, NULL, want));
  strcat(want, "_1");
  CHECK_EQ_STR(id, want);
  CHECK_EQ_INT(wait_job(&f, id), WV_JOB_SUCCEEDED);

  json_object *rec = NULL, *v = NULL;
  CHECK_OK(wv_scan_load_record(&f.app, id, &rec));
  TEST_CLEANUP(put_json, rec);
  CHECK_EQ_STR(str(rec, "status"), "SUCCEEDED");
  CHECK_EQ_STR(str(rec, "buildId"), "bd-0123456789abcdef_1");
  CHECK_EQ_STR(str(rec, "containerImage"), IMAGE);
  CHECK(json_object_object_get_ex(rec, "vulnerabilities", &v));
  CHECK_EQ_INT(json_object_array_length(v), 3); /* wave.scan.vulnerability.limit */
  CHECK_EQ_STR(str(json_object_array_get_idx(v, 0), "severity"), "CRITICAL");
  CHECK_EQ_STR(str(json_object_array_get_idx(v, 1), "id"), "CRAN-2099-1");
}

/* The counts of the container status cover every finding, not only the kept ones. */
TEST(embedded_image_scan_counts) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1];
  CHECK_OK(scanned(&f, id));
  wv_token_rec_t t = {.token = "tok",
                      .scan_id = id,
                      .scan_mode = "required",
                      .scan_levels = "LOW,MEDIUM",
                      .created_ms = wv_now_ms()};
  json_object *st = json_object_new_object();
  TEST_CLEANUP(put_json, st);
  wv_json_add_str(st, "status", "DONE");
  CHECK_OK(wv_scan_status_fill(&f.app, &t, st));
  json_object *counts = NULL;
  CHECK(json_object_object_get_ex(st, "vulnerabilities", &counts));
  CHECK_EQ_STR(compact(counts), "{\"CRITICAL\":1,\"HIGH\":4,\"MEDIUM\":3,\"LOW\":1}");
  CHECK_EQ_STR(str(st, "reason"), "Container security scan operation found one or more "
                                  "vulnerabilities with severity: HIGH,CRITICAL");
}

/* The SBOM is kept; the job's source description is gone; the log says what happened. */
TEST(embedded_image_scan_store_and_log) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1];
  CHECK_OK(scanned(&f, id));
  char key[SCAN_KEY_MAX], *val = NULL;
  size_t len = 0;
  wv__scan_key(key, "spdx/", id);
  CHECK_OK(wv_store_get(f.app.store, WV_DB_SCANS, key, &val, &len, NULL));
  free(val);
  wv__scan_key(key, "req/", id);
  CHECK_EQ_INT(wv_store_get(f.app.store, WV_DB_SCANS, key, &val, &len, NULL), WV_ENOTFOUND);
  CHECK_OK(wv_job_log(f.app.jobs, id, 1 << 20, &val, &len));
  TEST_CLEANUP(free, val);
  CHECK_HAS(val, "inventory: ");
  CHECK_HAS(val, "9 vulnerabilities");
}

/* Within wave.scan.id.duration an image keeps its scan; an id that outlived its record gives
 * way to a new scan. */
TEST(embedded_image_scan_id_reuse) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1], id2[WV_SCAN_ID_MAX + 1];
  CHECK_OK(scanned(&f, id));
  /* Same image within wave.scan.id.duration: the same scan, no new job. */
  bool is_new = true;
  CHECK_OK(wv_scan_reserve_image(&f.app, IMAGE, NULL, true, "linux/amd64", id2, &is_new));
  CHECK(!is_new);
  CHECK_EQ_STR(id2, id);
  /* A late start of an ended scan changes nothing. */
  json_object *rec = NULL;
  CHECK_OK(wv_scan_start(&f.app, id, WV_SCAN_FOR_REQUEST, "late"));
  CHECK_OK(wv_scan_load_record(&f.app, id, &rec));
  TEST_CLEANUP(put_json, rec);
  CHECK_EQ_STR(str(rec, "status"), "SUCCEEDED");
  CHECK_EQ_STR(str(rec, "requestId"), "(absent)");
  /* An id that outlived its record (id 7d, record 5d) gives way to a new scan. */
  CHECK_OK(wv_store_del(f.app.store, WV_DB_SCANS, id));
  CHECK_OK(wv_scan_reserve_image(&f.app, IMAGE, NULL, true, "linux/amd64", id2, &is_new));
  CHECK(is_new);
  CHECK_EQ_INT(strcmp(strrchr(id2, '_'), "_2"), 0);
}

TEST(severity_setting_filters) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1];
  CHECK_OK(fx_open(&f, true));
  free(f.cfg.scan_severity);
  f.cfg.scan_severity = strdup("HIGH,CRITICAL");
  CHECK_OK(wv_scan_submit_for_image(&f.app, IMAGE, NULL, true, NULL, WV_SCAN_FOR_REQUEST, "r1",
                                    "required", id));
  CHECK_EQ_INT(wait_job(&f, id), WV_JOB_SUCCEEDED);
  char key[SCAN_KEY_MAX], *val = NULL;
  size_t len = 0;
  wv__scan_key(key, "sum/", id);
  CHECK_OK(wv_store_get(f.app.store, WV_DB_SCANS, key, &val, &len, NULL));
  CHECK_EQ_STR(val, "{\"CRITICAL\":1,\"HIGH\":4}");
  free(val);
  fx_close(&f);
}

TEST(failed_scan_releases_the_id) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1], id2[WV_SCAN_ID_MAX + 1];
  const char *img = "localhost:9090/wave/build:missing";
  CHECK_OK(fx_open(&f, true));
  CHECK_OK(wv_scan_submit_for_image(&f.app, img, NULL, true, NULL, WV_SCAN_FOR_REQUEST, "r1",
                                    "required", id));
  CHECK_EQ_INT(wait_job(&f, id), WV_JOB_FAILED);
  wv_job_info_t info;
  CHECK_OK(wv_job_get(f.app.jobs, id, &info));
  CHECK_HAS(info.reason, "Container security scan failed: image 'wave/build:missing' not found");
  json_object *rec = NULL;
  CHECK_OK(wv_scan_load_record(&f.app, id, &rec));
  CHECK_EQ_STR(str(rec, "status"), "FAILED");
  CHECK_HAS(str(rec, "logs"), "not found in the embedded registry");
  json_object *d = NULL;
  CHECK(json_object_object_get_ex(rec, "duration", &d));
  json_object_put(rec);

  /* The status of a required scan that failed. */
  wv_token_rec_t t = {.token = "tok", .scan_id = id, .scan_mode = "required", .created_ms = 1};
  json_object *st = json_object_new_object();
  wv_json_add_str(st, "status", "DONE");
  wv_json_add_bool(st, "succeeded", true);
  CHECK_OK(wv_scan_status_fill(&f.app, &t, st));
  CHECK_EQ_STR(compact(json_object_object_get(st, "succeeded")), "false");
  CHECK_EQ_STR(str(st, "reason"), "Container security scan did not complete successfully");
  json_object_put(st);

  bool is_new = false;
  CHECK_OK(wv_scan_reserve_image(&f.app, img, NULL, true, NULL, id2, &is_new));
  CHECK(is_new);
  CHECK_EQ_INT(strcmp(strrchr(id2, '_'), "_2"), 0);
  CHECK_EQ_INT(strncmp(id, id2, 19), 0);
  fx_close(&f);
}

TEST(pending_scan_status_and_abandon) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1], id2[WV_SCAN_ID_MAX + 1];
  bool is_new = false;
  CHECK_OK(fx_open(&f, false));
  CHECK_OK(wv_scan_reserve_image(&f.app, "docker.io/library/x:1",
                                 "sha256:"
                                 "1111111111111111111111111111111111111111111111111111111111111111",
                                 false, NULL, id, &is_new));
  CHECK(is_new);
  wv_token_rec_t t = {.token = "tok", .scan_id = id, .scan_mode = "required", .created_ms = 1};
  json_object *st = json_object_new_object();
  wv_json_add_str(st, "status", "DONE");
  wv_json_add_bool(st, "succeeded", true);
  wv_json_add_number_text(st, "duration", "1.000000000");
  CHECK_OK(wv_scan_status_fill(&f.app, &t, st));
  CHECK_EQ_STR(str(st, "status"), "SCANNING");
  CHECK(!json_object_object_get_ex(st, "succeeded", NULL));
  CHECK(!json_object_object_get_ex(st, "duration", NULL));
  json_object_put(st);

  /* A build still running (or failed) is reported as such. */
  st = json_object_new_object();
  wv_json_add_str(st, "status", "BUILDING");
  CHECK_OK(wv_scan_status_fill(&f.app, &t, st));
  CHECK_EQ_STR(str(st, "status"), "BUILDING");
  json_object_put(st);
  st = json_object_new_object();
  wv_json_add_str(st, "status", "DONE");
  wv_json_add_bool(st, "succeeded", false);
  CHECK_OK(wv_scan_status_fill(&f.app, &t, st));
  CHECK_EQ_STR(str(st, "status"), "DONE");
  CHECK_EQ_STR(str(st, "scanId"), id);
  json_object_put(st);

  /* async never changes the status. */
  t.scan_mode = "async";
  st = json_object_new_object();
  wv_json_add_str(st, "status", "DONE");
  CHECK_OK(wv_scan_status_fill(&f.app, &t, st));
  CHECK_EQ_STR(str(st, "status"), "DONE");
  CHECK_EQ_STR(str(st, "scanId"), id);
  json_object_put(st);

  /* A build that failed: its reserved scan never runs, and the id is free again. */
  CHECK_OK(wv_scan_abandon(&f.app, id, "Container build did not complete successfully"));
  json_object *rec = NULL;
  CHECK_OK(wv_scan_load_record(&f.app, id, &rec));
  CHECK_EQ_STR(str(rec, "status"), "FAILED");
  CHECK_EQ_STR(str(rec, "logs"), "Container build did not complete successfully");
  json_object_put(rec);
  CHECK_OK(wv_scan_reserve_image(&f.app, "docker.io/library/x:1",
                                 "sha256:"
                                 "1111111111111111111111111111111111111111111111111111111111111111",
                                 false, NULL, id2, &is_new));
  CHECK(is_new);
  CHECK_EQ_INT(strcmp(strrchr(id2, '_'), "_2"), 0);
  fx_close(&f);
}

TEST(failure_logs_follow_wave_rules) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1];
  bool is_new = false;
  CHECK_OK(fx_open(&f, false));
  CHECK_OK(wv_scan_reserve_image(&f.app, "docker.io/library/y:1", NULL, false, NULL, id, &is_new));
  char *logs = malloc(20001);
  for (int i = 0; i < 20000; i++)
    logs[i] = i % 10 == 0 ? '\'' : 'a';
  logs[20000] = '\0';
  CHECK_OK(wv__scan_store_failure(&f.app, id, logs, wv_now_ns()));
  free(logs);
  json_object *rec = NULL;
  CHECK_OK(wv_scan_load_record(&f.app, id, &rec));
  const char *l = str(rec, "logs");
  CHECK_EQ_INT(strlen(l), WV_SCAN_LOGS_MAX + strlen(" [truncated]"));
  CHECK(!strchr(l, '\''));
  CHECK_EQ_STR(l + WV_SCAN_LOGS_MAX, " [truncated]");
  CHECK_EQ_INT(json_object_get_int(json_object_object_get(rec, "exitCode")), 1);
  json_object_put(rec);
  fx_close(&f);
}

TEST(disabled) {
  static fx_t f;
  char id[WV_SCAN_ID_MAX + 1];
  bool is_new = true;
  CHECK_OK(fx_open(&f, false));
  f.cfg.scan_enabled = false;
  CHECK_EQ_INT(
      wv_scan_reserve_image(&f.app, "docker.io/library/x:1", NULL, false, NULL, id, &is_new),
      WV_EUNSUPPORTED);
  CHECK_OK(wv_scan_submit_for_image(&f.app, "docker.io/library/x:1", NULL, false, NULL,
                                    WV_SCAN_FOR_BUILD, "b", "async", id));
  CHECK_EQ_STR(id, "");
  f.cfg.scan_enabled = true;
  CHECK_OK(wv_scan_submit_for_image(&f.app, "docker.io/library/x:1", NULL, false, NULL,
                                    WV_SCAN_FOR_BUILD, "b", "none", id));
  CHECK_EQ_STR(id, "");
  CHECK_EQ_INT(wv_scan_submit_for_image(&f.app, "not a name", NULL, false, NULL, WV_SCAN_FOR_BUILD,
                                        "b", "async", id),
               WV_EINVAL);
  fx_close(&f);
}

WV_TESTS(T(id_hash_spec_vectors), T(id_valid), T(levels_verdict), T(embedded_image_scan),
         T(embedded_image_scan_counts), T(embedded_image_scan_store_and_log),
         T(embedded_image_scan_id_reuse), T(severity_setting_filters),
         T(failed_scan_releases_the_id), T(pending_scan_status_and_abandon),
         T(failure_logs_follow_wave_rules), T(disabled))
