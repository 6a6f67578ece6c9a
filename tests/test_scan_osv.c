/*
 * tests/test_scan_osv.c — CVSS scores, severity words, the OSV "affected"
 * evaluation, and the import into the store: counts, messages, zip input,
 * incremental updates and withdrawals.
 */
#include "core/err.h"
#include "core/json.h"
#include "scan/osv.h"
#include "tests/runner.h"
#include "tests/storage_util.h"
#include "tests/test_scan_util.h"

TEST(cvss3_scores) {
  static const struct {
    const char *v;
    double score;
  } c[] = {
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5},
      {"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8},
      {"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0},
      {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9}, /* PR:L weighs 0.68 when S:C */
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N", 5.4},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L", 7.3},
      {"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N", 6.1},
      {"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0},
      {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O", 9.8}, /* temporal ignored */
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    double s = -1;
    CHECK_OK(wv_osv_cvss3_base_score(c[i].v, &s));
    if ((int)(s * 10 + 0.5) != (int)(c[i].score * 10 + 0.5))
      FAIL_AT("%s: %.1f, want %.1f", c[i].v, s, c[i].score);
  }
  double s;
  CHECK_EQ_INT(wv_osv_cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", &s), WV_EPARSE);
  CHECK_EQ_INT(wv_osv_cvss3_base_score("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", &s),
               WV_EPARSE);
  CHECK_EQ_INT(wv_osv_cvss3_base_score("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", &s),
               WV_EPARSE);
  CHECK_EQ_INT(wv_osv_cvss3_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P", &s), WV_EPARSE);
  CHECK_OK(wv_osv_cvss2_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P", &s));
  CHECK_EQ_INT((int)(s * 10 + 0.5), 75);
  CHECK_OK(wv_osv_cvss2_base_score("AV:N/AC:L/Au:N/C:C/I:C/A:C", &s));
  CHECK_EQ_INT((int)(s * 10 + 0.5), 100);
  CHECK_OK(wv_osv_cvss2_base_score("AV:N/AC:M/Au:N/C:N/I:P/A:N", &s));
  CHECK_EQ_INT((int)(s * 10 + 0.5), 43);
}

TEST(severity_levels) {
  CHECK_EQ_INT(wv_osv_severity_of_cvss3(9.0), WV_OSV_SEV_CRITICAL);
  CHECK_EQ_INT(wv_osv_severity_of_cvss3(8.9), WV_OSV_SEV_HIGH);
  CHECK_EQ_INT(wv_osv_severity_of_cvss3(7.0), WV_OSV_SEV_HIGH);
  CHECK_EQ_INT(wv_osv_severity_of_cvss3(6.9), WV_OSV_SEV_MEDIUM);
  CHECK_EQ_INT(wv_osv_severity_of_cvss3(4.0), WV_OSV_SEV_MEDIUM);
  CHECK_EQ_INT(wv_osv_severity_of_cvss3(3.9), WV_OSV_SEV_LOW);
  CHECK_EQ_INT(wv_osv_severity_parse("MODERATE"), WV_OSV_SEV_MEDIUM);
  CHECK_EQ_INT(wv_osv_severity_parse("important"), WV_OSV_SEV_HIGH);
  CHECK_EQ_INT(wv_osv_severity_parse("unimportant"), WV_OSV_SEV_LOW);
  CHECK_EQ_INT(wv_osv_severity_parse("not yet assigned"), WV_OSV_SEV_UNKNOWN);
  CHECK_EQ_STR(wv_osv_severity_name(WV_OSV_SEV_CRITICAL), "CRITICAL");
}

static int affected(const char *json, wv_vscheme_t s, const char *v, bool *hit, const char **fixed,
                    json_object **keep) {
  char err[128];
  json_object *o;
  if (wv_json_parse(json, strlen(json), 1 << 20, 0, &o, err, sizeof err))
    return WV_EPARSE;
  *keep = o;
  return wv_osv_affected(o, s, v, hit, fixed);
}

TEST(affected_ranges) {
  static const char *multi =
      "{\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"fixed\":\"2.0.6\"},{\"introduced\":"
      "\"2.0.0\"},{\"introduced\":\"0\"},{\"fixed\":\"1.26.17\"}]},{\"type\":\"GIT\",\"events\":"
      "[{\"introduced\":\"0\"}]}]}";
  static const struct {
    const char *v;
    bool hit;
    const char *fixed;
  } c[] = {
      {"1.0", true, "1.26.17"}, {"1.26.16", true, "1.26.17"}, {"1.26.17", false, NULL},
      {"1.27", false, NULL},    {"2.0.0a1", false, NULL},     {"2.0.0", true, "2.0.6"},
      {"2.0.5", true, "2.0.6"}, {"2.0.6", false, NULL},       {"3.0", false, NULL},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    bool hit;
    const char *fixed;
    json_object *o = NULL;
    CHECK_OK(affected(multi, WV_VER_PEP440, c[i].v, &hit, &fixed, &o));
    if (hit != c[i].hit || (c[i].fixed && (!fixed || strcmp(fixed, c[i].fixed))))
      FAIL_AT("%s: hit %d fixed %s", c[i].v, hit, fixed ? fixed : "-");
    json_object_put(o);
  }
  /* last_affected is inclusive; SEMVER ranges use SemVer whatever the ecosystem */
  bool hit;
  const char *fixed;
  json_object *o = NULL;
  const char *last = "{\"ranges\":[{\"type\":\"SEMVER\",\"events\":[{\"introduced\":\"1.0.0\"},"
                     "{\"last_affected\":\"1.4.0\"}]}]}";
  CHECK_OK(affected(last, WV_VER_NONE, "1.4.0", &hit, &fixed, &o));
  CHECK(hit && fixed == NULL);
  json_object_put(o);
  CHECK_OK(affected(last, WV_VER_NONE, "1.4.1-rc.1", &hit, &fixed, &o));
  CHECK(!hit);
  json_object_put(o);
  /* an explicit versions list */
  const char *list = "{\"versions\":[\"1:2.0-1\",\"1:2.0-2\"]}";
  CHECK_OK(affected(list, WV_VER_DPKG, "1:2.0-2", &hit, &fixed, &o));
  CHECK(hit);
  json_object_put(o);
  CHECK_OK(affected(list, WV_VER_DPKG, "1:2.0-3", &hit, &fixed, &o));
  CHECK(!hit);
  json_object_put(o);
  /* a version the scheme cannot order is an error, not "not affected" */
  CHECK_EQ_INT(affected(multi, WV_VER_PEP440, "not-a-version", &hit, &fixed, &o), WV_EPARSE);
  CHECK(!hit);
  json_object_put(o);
}

typedef struct {
  char text[4096];
  size_t n, count;
} msgs_t;

static void on_msg(void *arg, const char *m) {
  msgs_t *x = arg;
  x->n += (size_t)snprintf(x->text + x->n, sizeof x->text - x->n, "%s\n", m);
  x->count++;
}

/* Matches one package and returns "id fixed severity;..." */
static void match_one(wv_store_t *st, wv_ecosystem_t t, const char *eco, const char *name,
                      const char *version, char *out, size_t n) {
  wv_arena_t *a = wv_arena_new(0);
  wv_pkg_t p = {.type = t, .name = name, .version = version, .ecosystem = eco, .path = "x"};
  wv_osv_vuln_t *v;
  size_t nv = 0, o = 0;
  out[0] = '\0';
  if (wv_osv_match(st, &p, 1, NULL, NULL, a, &v, &nv) == 0)
    for (size_t i = 0; i < nv; i++)
      o += (size_t)snprintf(out + o, n - o, "%s %s %s;", v[i].id, v[i].fixed_version,
                            wv_osv_severity_name(v[i].level));
  wv_arena_free(a);
}

/* A directory holding the test dataset (osv_dataset_write) and a store, removed with the test. */
typedef struct {
  char dir[256];
  wv_store_t *st;
} osv_env_t;

static void osv_env_free(osv_env_t *e) {
  wv_store_close(e->st);
  tmpdir_remove(e->dir);
  free(e);
}

/* NULL if it cannot be set up; import: the dataset's osv/ folder imported already. */
static osv_env_t *osv_env_start(bool import) {
  char path[600];
  osv_env_t *e = calloc(1, sizeof *e);
  if (!e || !tmpdir_make(e->dir, "scan-osv")) {
    free(e);
    return NULL;
  }
  TEST_CLEANUP(osv_env_free, e);
  snprintf(path, sizeof path, "%s/state", e->dir);
  if (osv_dataset_write(e->dir) != 0 || wv_store_open(&e->st, path, 0, 0) != 0)
    return NULL;
  wv_osv_stats_t s;
  snprintf(path, sizeof path, "%s/osv", e->dir);
  return !import || wv_osv_import(e->st, path, &s, NULL, NULL) == 0 ? e : NULL;
}

TEST(import_counts_and_messages) {
  osv_env_t *e = osv_env_start(false);
  CHECK(e);
  char path[600];
  msgs_t m = {{0}, 0, 0};
  wv_osv_stats_t s;
  snprintf(path, sizeof path, "%s/osv", e->dir);
  CHECK_OK(wv_osv_import(e->st, path, &s, on_msg, &m));
  CHECK_EQ_INT(s.files, 18);
  CHECK_EQ_INT(s.read, 19);
  CHECK_EQ_INT(s.imported, 13);
  CHECK_EQ_INT(s.rejected, 5);
  CHECK_EQ_INT(s.ignored, 1);
  CHECK_EQ_INT(m.count, 5);
  CHECK_HAS(m.text, "not-json.json: Malformed JSON");
  CHECK_HAS(m.text, "BAD-1: \"affected\" is not an array");
  CHECK_HAS(m.text, "BAD-2: affected[0]: an event needs exactly one");
  CHECK_HAS(m.text, "BAD-3: affected[0]: 'not a version' is not a valid dpkg version");
  CHECK_HAS(m.text, "noid.json: missing or invalid \"id\"");
}

/* The same data again changes nothing. */
TEST(import_again_unchanged) {
  osv_env_t *e = osv_env_start(true);
  CHECK(e);
  char path[600];
  wv_osv_stats_t s;
  snprintf(path, sizeof path, "%s/osv", e->dir);
  CHECK_OK(wv_osv_import(e->st, path, &s, NULL, NULL));
  CHECK_EQ_INT(s.imported, 0);
  CHECK_EQ_INT(s.unchanged, 13);
}

/* A zip of records, deflated and stored members; then what the first import matches. */
TEST(import_zip_and_match) {
  osv_env_t *e = osv_env_start(true);
  CHECK(e);
  char path[600], got[1024];
  wv_osv_stats_t s;
  snprintf(path, sizeof path, "%s/alpine.zip", e->dir);
  CHECK_OK(wv_osv_import(e->st, path, &s, NULL, NULL));
  CHECK_EQ_INT(s.files, 3);
  CHECK_EQ_INT(s.imported, 3);
  match_one(e->st, WV_ECO_APK, "Alpine", "busybox", "1.36.1-r15", got, sizeof got);
  CHECK_EQ_STR(got, "ALPINE-CVE-2023-42366 1.36.1_p1-r0 UNKNOWN;");
  match_one(e->st, WV_ECO_PYPI, "PyPI", "urllib3", "2.0.7", got, sizeof got);
  CHECK_EQ_STR(got, "");
  match_one(e->st, WV_ECO_PYPI, "PyPI", "PyYAML", "5.3", got, sizeof got);
  CHECK_EQ_STR(got, "CVE-2020-14343 5.4 CRITICAL;");
  match_one(e->st, WV_ECO_PYPI, "PyPI", "jinja2", "3.0.0", got, sizeof got);
  CHECK_EQ_STR(got, "CVE-2024-22195 3.1.3 MEDIUM;");
}

/* Newer records: urllib3's range widens, PyYAML's moves to another package, jinja2's is withdrawn.
 */
TEST(import_updates) {
  osv_env_t *e = osv_env_start(true);
  CHECK(e);
  char path[600], got[1024];
  wv_osv_stats_t s;
  const char *upd =
      "[{\"id\":\"GHSA-v845-jxx5-vc9f\",\"modified\":\"2024-02-01T00:00:00Z\",\"aliases\":[\"CVE-"
      "2023-43804\"],"
      "\"affected\":[{\"package\":{\"ecosystem\":\"PyPI\",\"name\":\"urllib3\"},\"ranges\":[{"
      "\"type\":"
      "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"2.1.0\"}]}]}]},"
      "{\"id\":\"PYSEC-2021-142\",\"modified\":\"2024-02-01T00:00:00Z\",\"affected\":[{\"package\":"
      "{\"ecosystem\":\"PyPI\",\"name\":\"ruamel.yaml\"},\"versions\":[\"0.17.0\"]}]},"
      "{\"id\":\"GHSA-h5c8-rqwp-cp95\",\"modified\":\"2024-02-01T00:00:00Z\",\"withdrawn\":"
      "\"2024-02-01T00:00:00Z\",\"affected\":[]},"
      "{\"id\":\"CVE-2024-2398\",\"modified\":\"2023-06-01T00:00:00Z\",\"affected\":[]}]";
  snprintf(path, sizeof path, "%s/update.json", e->dir);
  CHECK_EQ_INT(write_file(path, upd, strlen(upd)), 0);
  CHECK_OK(wv_osv_import(e->st, path, &s, NULL, NULL));
  CHECK_EQ_INT(s.imported, 2);
  CHECK_EQ_INT(s.withdrawn, 1);
  CHECK_EQ_INT(s.unchanged, 1); /* an older copy of CVE-2024-2398 does not replace the newer */
  match_one(e->st, WV_ECO_PYPI, "PyPI", "urllib3", "2.0.7", got, sizeof got);
  CHECK_EQ_STR(got, "CVE-2023-43804 2.1.0 UNKNOWN;");
  match_one(e->st, WV_ECO_PYPI, "PyPI", "PyYAML", "5.3", got, sizeof got);
  CHECK_EQ_STR(got, "");
  match_one(e->st, WV_ECO_PYPI, "PyPI", "Ruamel_YAML", "0.17.0", got, sizeof got);
  CHECK_EQ_STR(got, "PYSEC-2021-142  UNKNOWN;");
  match_one(e->st, WV_ECO_PYPI, "PyPI", "jinja2", "3.0.0", got, sizeof got);
  CHECK_EQ_STR(got, "");
}

TEST(import_bad_paths) {
  char dir[256], path[600];
  CHECK(tmpdir_make(dir, "scan-osvbad"));
  snprintf(path, sizeof path, "%s/state", dir);
  wv_store_t *st;
  CHECK_OK(wv_store_open(&st, path, 0, 0));
  wv_osv_stats_t s;
  msgs_t m = {{0}, 0, 0};
  snprintf(path, sizeof path, "%s/missing", dir);
  CHECK_EQ_INT(wv_osv_import(st, path, &s, on_msg, &m), WV_EIO);
  snprintf(path, sizeof path, "%s/bad.zip", dir);
  CHECK_EQ_INT(write_file(path, "PK\3\4 this is not a zip", 22), 0);
  CHECK_EQ_INT(wv_osv_import(st, path, &s, on_msg, &m), WV_EIO);
  CHECK_HAS(m.text, "no end of central directory");
  wv_store_close(st);
  tmpdir_remove(dir);
}

/* Mutated records are imported or rejected, never crash; every record read is accounted for. */
TEST(import_mutations) {
  char dir[256], path[600];
  CHECK(tmpdir_make(dir, "scan-osvmut"));
  snprintf(path, sizeof path, "%s/state", dir);
  wv_store_t *st;
  CHECK_OK(wv_store_open(&st, path, 0, 0));
  wv_osv_import_t *imp;
  CHECK_OK(wv_osv_import_new(&imp, st, NULL, NULL));
  uint32_t r = 777;
  for (int i = 0; i < 600; i++) {
    const char *src = osv_files[(size_t)i % (sizeof osv_files / sizeof osv_files[0])].json;
    char buf[2048];
    size_t n = strlen(src);
    memcpy(buf, src, n);
    for (int k = 0; k < 1 + i % 3; k++) {
      r = r * 1103515245u + 12345u;
      buf[(r >> 8) % n] = "{}[]\",:0 aZ~-."[(r >> 3) % 14];
    }
    CHECK_OK(wv_osv_import_json(imp, "mutant", buf, n));
  }
  CHECK_OK(wv_osv_import_commit(imp));
  wv_osv_stats_t s;
  wv_osv_import_stats(imp, &s);
  CHECK_EQ_INT(s.read, s.imported + s.unchanged + s.withdrawn + s.ignored + s.rejected);
  CHECK(s.rejected > 0 && s.imported > 0);
  wv_osv_import_free(imp);
  wv_store_close(st);
  tmpdir_remove(dir);
}

WV_TESTS(T(cvss3_scores), T(severity_levels), T(affected_ranges), T(import_counts_and_messages),
         T(import_again_unchanged), T(import_zip_and_match), T(import_updates), T(import_bad_paths),
         T(import_mutations))
