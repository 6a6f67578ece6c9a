/*
 * tests/test_scan_image.c — end to end without a registry: OSV data the test
 * writes is imported into a fresh store, test images (layers built here) are
 * inventoried, and the findings must be exactly the expected ones; then the
 * contract §8.2 JSON, the §3.6 counts and the SPDX document of the same scan.
 */
#include "core/err.h"
#include "core/json.h"
#include "scan/inventory.h"
#include "scan/osv.h"
#include "scan/spdx.h"
#include "tests/runner.h"
#include "tests/storage_util.h"
#include "tests/test_scan_util.h"

typedef struct {
  char dir[256];
  wv_store_t *st;
  wv_inventory_t *inv;
  wv_arena_t *a;
  wv_osv_vuln_t *v;
  size_t n;
} scan_t;

static void findings(const scan_t *s, char *out, size_t n) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; i < s->n; i++) {
    const wv_osv_vuln_t *v = &s->v[i];
    o += (size_t)snprintf(out + o, n - o, "%s %.1f %s %s %s fix=%s L%d\n",
                          wv_osv_severity_name(v->level), v->score, v->id, v->pkg_name,
                          v->installed_version, v->fixed_version, v->layer);
  }
}

/* Imports the data set, inventories dir/layer0..nlayers-1 and matches. */
static int scan_image(scan_t *s, int nlayers) {
  char path[600];
  wv_osv_stats_t st;
  snprintf(path, sizeof path, "%s/state", s->dir);
  int rc = wv_store_open(&s->st, path, 0, 0);
  snprintf(path, sizeof path, "%s/osv", s->dir);
  if (!rc)
    rc = wv_osv_import(s->st, path, &st, NULL, NULL);
  snprintf(path, sizeof path, "%s/alpine.zip", s->dir);
  if (!rc)
    rc = wv_osv_import(s->st, path, &st, NULL, NULL);
  if (!rc)
    rc = wv_inventory_new(&s->inv, NULL);
  for (int i = 0; i < nlayers && !rc; i++) {
    char digest[80];
    snprintf(path, sizeof path, "%s/layer%d", s->dir, i);
    snprintf(digest, sizeof digest, "sha256:%064d", i);
    rc = wv_inventory_add_layer_file(s->inv, path, digest);
  }
  if (!rc)
    rc = wv_inventory_finish(s->inv);
  s->a = wv_arena_new(0);
  if (!rc)
    rc = wv_osv_match(s->st, wv_inventory_pkgs(s->inv), wv_inventory_count(s->inv),
                      wv_inventory_os_id(s->inv), wv_inventory_os_version(s->inv), s->a, &s->v,
                      &s->n);
  return rc;
}

/* Frees what scan_image made and removes the directory; once (then a no-op). A test hands its
 * scan_t (static: it must outlive the test) to TEST_CLEANUP with this as soon as the directory
 * exists. */
static void scan_done(scan_t *s) {
  wv_arena_free(s->a);
  wv_inventory_free(s->inv);
  wv_store_close(s->st);
  s->a = NULL;
  s->inv = NULL;
  s->st = NULL;
  if (s->dir[0])
    tmpdir_remove(s->dir);
  s->dir[0] = '\0';
}

TEST(debian_image_findings) {
  static scan_t s;
  memset(&s, 0, sizeof s);
  char got[4096];
  CHECK(tmpdir_make(s.dir, "scan-e2e"));
  TEST_CLEANUP(scan_done, &s);
  CHECK_EQ_INT(osv_dataset_write(s.dir), 0);
  CHECK_EQ_INT(image_write(s.dir), 0);
  CHECK_OK(scan_image(&s, 3));
  findings(&s, got, sizeof got);
  CHECK_EQ_STR(
      got,
      "CRITICAL 9.8 PYSEC-2099-1 "
      "a_very_long_distribution_name_that_makes_the_path_longer_than_a_ustar_name 1.0 fix= L0\n"
      "HIGH 7.5 CRAN-2099-1 jsonlite 1.8.0 fix=1.8.5 L0\n"
      "HIGH 7.5 CVE-2023-5678 libssl3 3.0.11-1~deb12u1 fix=3.0.11-1~deb12u2 L1\n"
      "HIGH 7.5 CVE-2023-5678 openssl 3.0.11-1~deb12u1 fix=3.0.11-1~deb12u2 L1\n"
      "HIGH 7.3 CVE-2024-2398 curl 7.88.1-10+deb12u4 fix=7.88.1-10+deb12u5 L1\n"
      "MEDIUM 6.1 CVE-2023-32681 requests 2.25.0 fix=2.31.0 L0\n"
      "MEDIUM 5.4 CVE-2024-22195 Jinja2 3.1.2 fix=3.1.3 L0\n"
      "MEDIUM 0.0 CVE-2021-34141 numpy 1.24.0 fix=1.26.0 L1\n"
      "LOW 0.0 CVE-2022-3715 bash 5.2.15-2+b2 fix=5.2.15-3 L1\n");

  /* contract §8.2 objects, most severe first, capped at the limit */
  json_object *arr = wv_osv_vulns_to_json(s.v, s.n, 3);
  CHECK(arr);
  CHECK_EQ_INT(json_object_array_length(arr), 3);
  CHECK_EQ_STR(
      json_object_to_json_string_ext(json_object_array_get_idx(arr, 2),
                                     JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
      "{\"id\":\"CVE-2023-5678\",\"severity\":\"HIGH\",\"title\":\"openssl: excessive time in "
      "DH key generation\",\"pkgName\":\"libssl3\",\"installedVersion\":\"3.0.11-1~deb12u1\","
      "\"fixedVersion\":\"3.0.11-1~deb12u2\",\"primaryUrl\":"
      "\"https://avd.aquasec.com/nvd/cve-2023-5678\"}");
  CHECK_EQ_STR(
      json_object_to_json_string_ext(json_object_array_get_idx(arr, 0),
                                     JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
      "{\"id\":\"PYSEC-2099-1\",\"severity\":\"CRITICAL\",\"title\":\"\",\"pkgName\":"
      "\"a_very_long_distribution_name_that_makes_the_path_longer_than_a_ustar_name\","
      "\"installedVersion\":\"1.0\",\"fixedVersion\":\"\",\"primaryUrl\":"
      "\"https://osv.dev/vulnerability/PYSEC-2099-1\"}");
  json_object_put(arr);
  CHECK_EQ_STR(s.v[7].title, "Incomplete string comparison in numpy.core");
  json_object *counts = wv_osv_vulns_counts(s.v, s.n);
  CHECK_EQ_STR(json_object_to_json_string_ext(counts, JSON_C_TO_STRING_PLAIN),
               "{\"CRITICAL\":1,\"HIGH\":4,\"MEDIUM\":3,\"LOW\":1}");
  json_object_put(counts);
  scan_done(&s);
}

TEST(debian_image_spdx) {
  static scan_t s;
  memset(&s, 0, sizeof s);
  CHECK(tmpdir_make(s.dir, "scan-spdx"));
  TEST_CLEANUP(scan_done, &s);
  CHECK_EQ_INT(osv_dataset_write(s.dir), 0);
  CHECK_EQ_INT(image_write(s.dir), 0);
  CHECK_OK(scan_image(&s, 3));
  const char *layers[3];
  for (size_t i = 0; i < 3; i++)
    layers[i] = wv_inventory_layer_digest(s.inv, i);
  wv_spdx_opts_t o = {.name = "localhost/test/debian:12",
                      .digest =
                          "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                      .os_id = wv_inventory_os_id(s.inv),
                      .os_version = wv_inventory_os_version(s.inv),
                      .created_ns = 1700000000123456789LL,
                      .layer_digests = layers,
                      .nlayers = 3};
  wv_buf_t b, b2;
  wv_buf_init(&b, 1 << 24);
  wv_buf_init(&b2, 1 << 24);
  CHECK_OK(wv_spdx_write(wv_inventory_pkgs(s.inv), wv_inventory_count(s.inv), &o, &b));
  CHECK_OK(wv_spdx_write(wv_inventory_pkgs(s.inv), wv_inventory_count(s.inv), &o, &b2));
  CHECK_EQ_INT(b.len, b2.len);
  CHECK(memcmp(b.data, b2.data, b.len) == 0); /* deterministic */
  json_object *doc;
  char err[128];
  CHECK_OK(wv_json_parse(b.data, b.len, 1 << 24, 0, &doc, err, sizeof err));
  const char *v;
  json_object *pk, *rels, *ci;
  CHECK_OK(wv_json_get_str(doc, "spdxVersion", &v));
  CHECK_EQ_STR(v, "SPDX-2.3");
  CHECK_OK(wv_json_get_str(doc, "dataLicense", &v));
  CHECK_EQ_STR(v, "CC0-1.0");
  CHECK_OK(wv_json_get_str(doc, "documentNamespace", &v));
  CHECK_PREFIX(v, "https://waved.invalid/spdx/localhost/test/debian-12-");
  CHECK_OK(wv_json_get_object(doc, "creationInfo", &ci));
  CHECK_OK(wv_json_get_str(ci, "created", &v));
  CHECK_EQ_STR(v, "2023-11-14T22:13:20Z");
  CHECK_OK(wv_json_get_array(doc, "packages", &pk));
  CHECK_OK(wv_json_get_array(doc, "relationships", &rels));
  CHECK_EQ_INT(json_object_array_length(pk), 13 + 2); /* + container, OS */
  CHECK_EQ_INT(json_object_array_length(rels), 1 + 1 + 13);
  /* each package: an id, a version, a purl; ids are unique */
  int found = 0;
  for (size_t i = 0; i < json_object_array_length(pk); i++) {
    json_object *p = json_object_array_get_idx(pk, i), *refs;
    const char *id, *name;
    CHECK_OK(wv_json_get_str(p, "SPDXID", &id));
    CHECK_OK(wv_json_get_str(p, "name", &name));
    for (size_t j = 0; j < i; j++) {
      const char *other;
      CHECK_OK(wv_json_get_str(json_object_array_get_idx(pk, j), "SPDXID", &other));
      CHECK(strcmp(id, other) != 0);
    }
    if (strcmp(name, "zlib1g") == 0 || strcmp(name, "Jinja2") == 0) {
      CHECK_OK(wv_json_get_array(p, "externalRefs", &refs));
      CHECK_OK(wv_json_get_str(json_object_array_get_idx(refs, 0), "referenceLocator", &v));
      CHECK_EQ_STR(v, name[0] == 'z'
                          ? "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12"
                          : "pkg:pypi/jinja2@3.1.2");
      found++;
    }
  }
  CHECK_EQ_INT(found, 2);
  json_object_put(doc);
  wv_buf_free(&b);
  wv_buf_free(&b2);
  scan_done(&s);
}

TEST(alpine_image_findings) {
  static scan_t s;
  memset(&s, 0, sizeof s);
  char got[2048], path[600];
  CHECK(tmpdir_make(s.dir, "scan-alpine"));
  TEST_CLEANUP(scan_done, &s);
  CHECK_EQ_INT(osv_dataset_write(s.dir), 0);
  const char *db = "P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\n"
                   "P:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n\n"
                   "P:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n\n";
  wv_buf_t t, c;
  for (int layer = 0; layer < 2; layer++) {
    wv_buf_init(&t, TAR_CAP);
    wv_buf_init(&c, TAR_CAP);
    if (layer == 0) {
      char full[512];
      snprintf(full, sizeof full, "%sP:libssl3\nV:3.1.4-r5\nA:x86_64\no:openssl\n\n", db);
      tar_file(&t, "etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n");
      tar_file(&t, "lib/apk/db/installed", full);
      tar_end(&t);
      gzip_buf(&t, &c, 6);
    } else { /* apk del libssl3 */
      tar_file(&t, "lib/apk/db/installed", db);
      tar_end(&t);
      zstd_buf(&t, &c, 19);
    }
    snprintf(path, sizeof path, "%s/layer%d", s.dir, layer);
    CHECK_EQ_INT(write_file(path, c.data, c.len), 0);
    wv_buf_free(&t);
    wv_buf_free(&c);
  }
  CHECK_OK(scan_image(&s, 2));
  findings(&s, got, sizeof got);
  CHECK_EQ_STR(got, "HIGH 7.5 CVE-2023-6129 libcrypto3 3.1.4-r5 fix=3.1.4-r6 L1\n"
                    "UNKNOWN 0.0 ALPINE-CVE-2023-42366 busybox 1.36.1-r15 fix=1.36.1_p1-r0 L1\n");
  scan_done(&s);
}

WV_TESTS(T(debian_image_findings), T(debian_image_spdx), T(alpine_image_findings))
