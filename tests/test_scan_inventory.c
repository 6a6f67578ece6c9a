/*
 * tests/test_scan_inventory.c — the tar walker, layer decompression, package
 * database parsers and the overlay inventory, on layers built in the test.
 */
#include "core/err.h"
#include "scan/inventory.h"
#include "scan/layer.h"
#include "scan/pkgdb.h"
#include "scan/tar.h"
#include "tests/runner.h"
#include "tests/storage_util.h"
#include "tests/test_scan_util.h"

/* ---- tar ---- */

typedef struct {
  char log[4096];
  size_t nlog;
  char content[256];
} walk_t;

static int log_entry(void *arg, const wv_tar_entry_t *e) {
  walk_t *w = arg;
  static const char *const tn[] = {"F", "D", "S", "H", "O", "W", "Q"};
  w->nlog += (size_t)snprintf(w->log + w->nlog, sizeof w->log - w->nlog, "%s:%s%s%s;", tn[e->type],
                              e->path, *e->linkname ? ">" : "", e->linkname);
  return e->type == WV_TAR_FILE && strstr(e->path, "want") != NULL;
}

static int keep_file(void *arg, const wv_tar_entry_t *e, const char *data, size_t len) {
  walk_t *w = arg;
  snprintf(w->content, sizeof w->content, "%s=%.*s", e->path, (int)len, data);
  return 0;
}

static void sample_tar(wv_buf_t *t) {
  char longname[300];
  snprintf(longname, sizeof longname, "dir/%0200d/want.txt", 0);
  tar_dir(t, "./dir/");
  tar_file(t, "./dir/skip.txt", "nothing");
  tar_file(t, longname, "pax content");
  tar_file_gnu(t, "gnu/long/name/file", "gnu");
  tar_symlink(t, "dir/link", "../target");
  tar_header(t, "dir/hard", '1', 0, "dir/skip.txt");
  tar_file(t, "dir/.wh.gone", "");
  tar_file(t, "dir/sub/.wh..wh..opq", "");
  tar_file(t, "/abs/../x/./y//z", "n");
  tar_end(t);
  static const char junk[100] = {1};
  wv_buf_append(t, junk, sizeof junk); /* after the end: ignored */
}

static const char *sample_log(void) {
  static char want[2048];
  snprintf(want, sizeof want,
           "D:dir;F:dir/skip.txt;F:dir/%0200d/want.txt;F:gnu/long/name/file;S:dir/link>../target;"
           "H:dir/hard>dir/skip.txt;W:dir/gone;Q:dir/sub;F:x/y/z;",
           0);
  return want;
}

TEST(tar_entries_any_chunking) {
  wv_buf_t t;
  wv_buf_init(&t, TAR_CAP);
  sample_tar(&t);
  size_t chunks[] = {1, 7, 511, 512, 513, 4096, t.len};
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
    walk_t w = {{0}, 0, {0}};
    wv_tar_t *tar;
    wv_tar_opts_t o = {log_entry, keep_file, &w, 1024};
    CHECK_OK(wv_tar_new(&tar, &o));
    int rc = 0;
    for (size_t off = 0; off < t.len && !rc; off += chunks[c])
      rc = wv_tar_write(tar, t.data + off, t.len - off < chunks[c] ? t.len - off : chunks[c]);
    CHECK_OK(rc);
    CHECK_OK(wv_tar_finish(tar));
    CHECK_EQ_INT(wv_tar_entries(tar), 9);
    wv_tar_free(tar);
    CHECK_EQ_STR(w.log, sample_log());
    CHECK_HAS(w.content, "/want.txt=pax content");
  }
  wv_buf_free(&t);
}

TEST(tar_rejects_bad_input) {
  wv_buf_t t;
  wv_buf_init(&t, TAR_CAP);
  sample_tar(&t);
  walk_t w = {{0}, 0, {0}};
  wv_tar_opts_t o = {log_entry, keep_file, &w, 1024};
  wv_tar_t *tar;
  /* a flipped byte in the second header fails its checksum */
  t.data[512 + 10] ^= 1;
  CHECK_OK(wv_tar_new(&tar, &o));
  CHECK_EQ_INT(wv_tar_write(tar, t.data, t.len), WV_EPARSE);
  CHECK_HAS(wv_tar_error(tar), "checksum");
  wv_tar_free(tar);
  t.data[512 + 10] ^= 1;
  /* a stream cut inside an entry's data */
  CHECK_OK(wv_tar_new(&tar, &o));
  CHECK_OK(wv_tar_write(tar, t.data, 512 + 512 + 3));
  CHECK_EQ_INT(wv_tar_finish(tar), WV_EPARSE);
  wv_tar_free(tar);
  /* a wanted file above the cap */
  wv_tar_opts_t small = {log_entry, keep_file, &w, 4};
  CHECK_OK(wv_tar_new(&tar, &small));
  CHECK_EQ_INT(wv_tar_write(tar, t.data, t.len), WV_ETOOBIG);
  wv_tar_free(tar);
  wv_buf_free(&t);
}

TEST(tar_path_normalize) {
  static const char *const c[][2] = {
      {"./a/b", "a/b"},
      {"/a//b/", "a/b"},
      {"a/./b/../c", "a/c"},
      {"../../etc/passwd", "etc/passwd"},
      {".", ""},
      {"./", ""},
      {"a/..", ""},
  };
  char out[64];
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    CHECK_OK(wv_tar_path_normalize(c[i][0], strlen(c[i][0]), out, sizeof out));
    CHECK_EQ_STR(out, c[i][1]);
  }
  CHECK_EQ_INT(wv_tar_path_normalize("abcdefgh", 8, out, 4), WV_ETOOBIG);
}

/* ---- layer ---- */

static int collect(void *arg, const void *p, size_t n) { return wv_buf_append(arg, p, n); }

static int decode(const wv_buf_t *in, size_t chunk, wv_buf_t *out, wv_layer_comp_t *comp) {
  wv_layer_t *l;
  int rc = wv_layer_new(&l, collect, out);
  for (size_t off = 0; off < in->len && !rc; off += chunk)
    rc = wv_layer_write(l, in->data + off, in->len - off < chunk ? in->len - off : chunk);
  if (!rc)
    rc = wv_layer_finish(l);
  if (comp)
    *comp = wv_layer_compression(l);
  wv_layer_free(l);
  return rc;
}

TEST(layer_formats) {
  wv_buf_t t, gz, zs, out;
  wv_buf_init(&t, TAR_CAP);
  wv_buf_init(&gz, TAR_CAP);
  wv_buf_init(&zs, TAR_CAP);
  image_layer0(&t);
  /* two gzip members back to back decode as one stream, as gzip -d does */
  wv_buf_t half1 = {t.data, t.len / 2, 0, 0}, half2 = {t.data + t.len / 2, t.len - t.len / 2, 0, 0};
  gzip_buf(&half1, &gz, 6);
  gzip_buf(&half2, &gz, 1);
  zstd_buf(&t, &zs, 3);
  const wv_buf_t *ins[] = {&gz, &zs, &t};
  wv_layer_comp_t want[] = {WV_LAYER_GZIP, WV_LAYER_ZSTD, WV_LAYER_PLAIN};
  for (int i = 0; i < 3; i++) {
    for (size_t chunk = 1; chunk <= 1u << 20; chunk *= 97) {
      wv_layer_comp_t comp;
      wv_buf_init(&out, TAR_CAP);
      CHECK_OK(decode(ins[i], chunk, &out, &comp));
      CHECK_EQ_INT(comp, want[i]);
      CHECK_EQ_INT(out.len, t.len);
      CHECK(memcmp(out.data, t.data, t.len) == 0);
      wv_buf_free(&out);
    }
  }
  /* truncated and corrupt streams */
  wv_buf_t cut = {gz.data, gz.len - 10, 0, 0};
  wv_buf_init(&out, TAR_CAP);
  CHECK_EQ_INT(decode(&cut, 4096, &out, NULL), WV_EPARSE);
  wv_buf_free(&out);
  cut = (wv_buf_t){zs.data, zs.len - 10, 0, 0};
  wv_buf_init(&out, TAR_CAP);
  CHECK_EQ_INT(decode(&cut, 4096, &out, NULL), WV_EPARSE);
  wv_buf_free(&out);
  gz.data[20] ^= 0x55;
  gz.data[21] ^= 0x55;
  wv_buf_init(&out, TAR_CAP);
  CHECK_EQ_INT(decode(&gz, 4096, &out, NULL), WV_EPARSE);
  wv_buf_free(&out);
  wv_buf_free(&t);
  wv_buf_free(&gz);
  wv_buf_free(&zs);
}

/* ---- package databases ---- */

TEST(pkgdb_classify) {
  static const struct {
    const char *path;
    wv_pkgdb_kind_t k;
  } c[] = {
      {"var/lib/dpkg/status", WV_PKGDB_DPKG_STATUS},
      {"var/lib/dpkg/status-old", WV_PKGDB_NONE},
      {"var/lib/dpkg/status.d/libc6", WV_PKGDB_DPKG_STATUS_D},
      {"var/lib/dpkg/status.d/libc6.md5sums", WV_PKGDB_NONE},
      {"lib/apk/db/installed", WV_PKGDB_APK},
      {"opt/conda/envs/x/conda-meta/zlib-1.2-h_0.json", WV_PKGDB_CONDA_META},
      {"opt/conda/conda-meta/history", WV_PKGDB_NONE},
      {"usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA", WV_PKGDB_PY_METADATA},
      {"usr/lib/python3/dist-packages/six-1.16.0.dist-info/RECORD", WV_PKGDB_NONE},
      {"usr/lib/python3/dist-packages/foo.egg-info/PKG-INFO", WV_PKGDB_PY_METADATA},
      {"usr/lib/python3/dist-packages/foo-1.0.egg-info", WV_PKGDB_PY_METADATA},
      {"usr/lib/R/library/base/DESCRIPTION", WV_PKGDB_R_DESCRIPTION},
      {"usr/local/lib/R/site-library/x/DESCRIPTION", WV_PKGDB_R_DESCRIPTION},
      {"usr/share/doc/x/DESCRIPTION", WV_PKGDB_NONE},
      {"etc/os-release", WV_PKGDB_OS_RELEASE},
      {"METADATA", WV_PKGDB_NONE},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    if (wv_pkgdb_classify(c[i].path) != c[i].k)
      FAIL_AT("classify(%s) = %d, want %d", c[i].path, wv_pkgdb_classify(c[i].path), c[i].k);
  }
}

typedef struct {
  char out[2048];
  size_t n;
} plist_t;

static int list_pkg(void *arg, const wv_pkg_t *p) {
  plist_t *l = arg;
  l->n +=
      (size_t)snprintf(l->out + l->n, sizeof l->out - l->n, "%s %s %s src=%s/%s arch=%s lic=%s;",
                       wv_ecosystem_name(p->type), p->name, p->version,
                       p->src_name ? p->src_name : "-", p->src_version ? p->src_version : "-",
                       p->arch ? p->arch : "-", p->license ? p->license : "-");
  return 0;
}

TEST(pkgdb_parsers) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  plist_t l = {{0}, 0};
  size_t skipped = 0;
  const char *dpkg = DPKG_BASE "Package: noversion\nStatus: install ok installed\n";
  CHECK_OK(wv_pkgdb_parse(WV_PKGDB_DPKG_STATUS, "var/lib/dpkg/status", dpkg, strlen(dpkg), a,
                          list_pkg, &l, &skipped));
  CHECK_EQ_STR(l.out, "deb openssl 3.0.11-1~deb12u1 src=-/- arch=amd64 lic=-;"
                      "deb libssl3 3.0.11-1~deb12u1 src=openssl/- arch=amd64 lic=-;"
                      "deb zlib1g 1:1.2.13.dfsg-1 src=zlib/- arch=amd64 lic=-;"
                      "deb bash 5.2.15-2+b2 src=-/5.2.15-2 arch=amd64 lic=-;");
  CHECK_EQ_INT(skipped, 1);
  l = (plist_t){{0}, 0};
  const char *apk = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\n"
                    "P:libcrypto3\nV:3.1.4-r5\nA:x86_64\nL:Apache-2.0\no:openssl\nM:0:0:755\n\n";
  CHECK_OK(wv_pkgdb_parse(WV_PKGDB_APK, "lib/apk/db/installed", apk, strlen(apk), a, list_pkg, &l,
                          NULL));
  CHECK_EQ_STR(l.out, "apk musl 1.2.4-r2 src=-/- arch=x86_64 lic=MIT;"
                      "apk libcrypto3 3.1.4-r5 src=openssl/- arch=x86_64 lic=Apache-2.0;");
  l = (plist_t){{0}, 0};
  skipped = 0;
  const char *bad_conda = "{\"name\": \"x\", \"version\": ";
  CHECK_OK(wv_pkgdb_parse(WV_PKGDB_CONDA_META, "c/conda-meta/x.json", bad_conda, strlen(bad_conda),
                          a, list_pkg, &l, &skipped));
  CHECK_EQ_INT(skipped, 1);
  CHECK_EQ_INT(l.n, 0);
  const char *id, *ver;
  const char *osr = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n";
  CHECK_OK(wv_pkgdb_os_release(osr, strlen(osr), a, &id, &ver));
  CHECK_EQ_STR(id, "alpine");
  CHECK_EQ_STR(ver, "3.19.1");
  CHECK_EQ_STR(wv_pkg_pypi_normalize(a, "Foo.Bar__baz"), "foo-bar-baz");
}

/* ---- inventory ---- */

static void inv_list(const wv_inventory_t *inv, char *out, size_t n) {
  size_t o = 0;
  out[0] = '\0';
  for (size_t i = 0; i < wv_inventory_count(inv); i++) {
    const wv_pkg_t *p = &wv_inventory_pkgs(inv)[i];
    o += (size_t)snprintf(out + o, n - o, "%s/%s %s %s L%d;", p->ecosystem,
                          wv_ecosystem_name(p->type), p->name, p->version, p->layer);
  }
}

static const char *const known_inventory =
    "Debian/deb base-files 12.4+deb12u5 L0;"
    "Debian/deb bash 5.2.15-2+b2 L1;"
    "Debian/deb curl 7.88.1-10+deb12u4 L1;"
    "Debian/deb libssl3 3.0.11-1~deb12u1 L1;"
    "Debian/deb openssl 3.0.11-1~deb12u1 L1;"
    "Debian/deb tzdata 2024b-0+deb12u1 L1;"
    "Debian/deb zlib1g 1:1.2.13.dfsg-1 L1;"
    "conda/conda numpy 1.24.0 L1;"
    "PyPI/pypi Jinja2 3.1.2 L0;"
    "PyPI/pypi a_very_long_distribution_name_that_makes_the_path_longer_than_a_ustar_name 1.0 L0;"
    "PyPI/pypi requests 2.25.0 L0;"
    "PyPI/pypi urllib3 2.0.7 L0;"
    "CRAN/cran jsonlite 1.8.0 L0;";

TEST(inventory_known_image) {
  static char dir[256]; /* static: removed by the clean-up, after the test returned */
  char path[300], got[4096];
  CHECK(tmpdir_make(dir, "scan-inv"));
  TEST_CLEANUP(tmpdir_remove, dir);
  CHECK_OK(image_write(dir));
  wv_inventory_t *inv;
  CHECK_OK(wv_inventory_new(&inv, NULL));
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/layer%d", dir, i);
    CHECK_OK(wv_inventory_add_layer_file(inv, path, NULL));
  }
  CHECK_OK(wv_inventory_finish(inv));
  inv_list(inv, got, sizeof got);
  CHECK_EQ_STR(got, known_inventory);
  CHECK_EQ_STR(wv_inventory_os_id(inv), "debian");
  CHECK_EQ_STR(wv_inventory_os_version(inv), "12");
  /* the package's file and the layers it went through */
  const wv_pkg_t *p = &wv_inventory_pkgs(inv)[10];
  CHECK_EQ_STR(p->path, "usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA");
  CHECK_EQ_STR(p->license, "Apache 2.0");
  wv_inventory_free(inv);
  tmpdir_remove(dir);
}

/* The same image pushed in small chunks, as a registry download would. */
TEST(inventory_push_chunks) {
  static char dir[256]; /* static: removed by the clean-up, after the test returned */
  char path[300], got[4096];
  CHECK(tmpdir_make(dir, "scan-push"));
  TEST_CLEANUP(tmpdir_remove, dir);
  CHECK_OK(image_write(dir));
  wv_inventory_t *inv;
  CHECK_OK(wv_inventory_new(&inv, NULL));
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/layer%d", dir, i);
    FILE *f = fopen(path, "rb");
    CHECK(f);
    char buf[333];
    size_t n;
    CHECK_OK(wv_inventory_layer_begin(inv, "sha256:abc"));
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
      CHECK_OK(wv_inventory_layer_write(inv, buf, n));
    fclose(f);
    CHECK_OK(wv_inventory_layer_end(inv));
  }
  CHECK_OK(wv_inventory_finish(inv));
  inv_list(inv, got, sizeof got);
  CHECK_EQ_STR(got, known_inventory);
  CHECK_EQ_STR(wv_inventory_layer_digest(inv, 2), "sha256:abc");
  wv_inventory_free(inv);
  tmpdir_remove(dir);
}

static int inv_of(wv_buf_t *layers, int n, size_t max_file, char *got, size_t gn, size_t *warn) {
  wv_inventory_t *inv;
  wv_inventory_opts_t o = {.max_file = max_file};
  int rc = wv_inventory_new(&inv, &o);
  for (int i = 0; i < n && !rc; i++) {
    rc = wv_inventory_layer_begin(inv, NULL);
    if (!rc)
      rc = wv_inventory_layer_write(inv, layers[i].data, layers[i].len);
    if (!rc)
      rc = wv_inventory_layer_end(inv);
  }
  if (!rc)
    rc = wv_inventory_finish(inv);
  if (!rc)
    inv_list(inv, got, gn);
  if (warn)
    *warn = wv_inventory_warnings(inv);
  wv_inventory_free(inv);
  return rc;
}

TEST(inventory_deletions) {
  wv_buf_t l[2];
  char got[2048];
  for (int i = 0; i < 2; i++)
    wv_buf_init(&l[i], TAR_CAP);
  tar_file(&l[0], "usr/lib/R/site-library/jsonlite/DESCRIPTION",
           "Package: jsonlite\nVersion: 1.8.0\n");
  tar_file(&l[0], "usr/lib/R/library/base/DESCRIPTION", "Package: base\nVersion: 4.3.1\n");
  tar_file(&l[0], "lib/apk/db/installed", "P:musl\nV:1.2.4-r2\n\n");
  tar_end(&l[0]);
  /* a symlink replaces the site-library directory; the apk database is whited out */
  tar_symlink(&l[1], "usr/lib/R/site-library", "/opt/R");
  tar_file(&l[1], "lib/apk/db/.wh.installed", "");
  tar_end(&l[1]);
  CHECK_OK(inv_of(l, 2, 0, got, sizeof got, NULL));
  CHECK_EQ_STR(got, "CRAN/cran base 4.3.1 L0;");
  /* a whiteout of the whole tree hides everything */
  wv_buf_reset(&l[1]);
  tar_file(&l[1], ".wh.usr", "");
  tar_file(&l[1], "lib/.wh..wh..opq", "");
  tar_end(&l[1]);
  CHECK_OK(inv_of(l, 2, 0, got, sizeof got, NULL));
  CHECK_EQ_STR(got, "");
  /* a whiteout in the same layer as a new file does not hide it */
  wv_buf_reset(&l[1]);
  tar_file(&l[1], "lib/apk/db/installed", "P:musl\nV:1.2.4-r3\n\n");
  tar_file(&l[1], "lib/apk/.wh..wh..opq", "");
  tar_end(&l[1]);
  CHECK_OK(inv_of(l, 2, 0, got, sizeof got, NULL));
  CHECK_EQ_STR(got,
               "Alpine/apk musl 1.2.4-r3 L1;CRAN/cran base 4.3.1 L0;CRAN/cran jsonlite 1.8.0 L0;");
  /* an oversized database file is skipped with a warning, not an error */
  size_t warn = 0;
  CHECK_OK(inv_of(l, 1, 16, got, sizeof got, &warn));
  CHECK_EQ_STR(got, "");
  CHECK_EQ_INT(warn, 3);
  for (int i = 0; i < 2; i++)
    wv_buf_free(&l[i]);
}

TEST(inventory_corrupt_layer) {
  wv_buf_t l;
  wv_buf_init(&l, TAR_CAP);
  tar_file(&l, "lib/apk/db/installed", "P:musl\nV:1.2.4-r2\n\n");
  l.len -= 100; /* cut inside the data */
  wv_inventory_t *inv;
  CHECK_OK(wv_inventory_new(&inv, NULL));
  CHECK_OK(wv_inventory_layer_begin(inv, "sha256:cut"));
  CHECK_OK(wv_inventory_layer_write(inv, l.data, l.len));
  CHECK_EQ_INT(wv_inventory_layer_end(inv), WV_EPARSE);
  CHECK_HAS(wv_inventory_error(inv), "sha256:cut");
  CHECK_EQ_INT(wv_inventory_finish(inv), WV_EINVAL);
  wv_inventory_free(inv);
  wv_buf_free(&l);
}

/* Corrupted layers (flipped bytes anywhere, gzip or plain) fail cleanly or parse: never crash. */
TEST(inventory_mutations) {
  wv_buf_t t, gz;
  wv_buf_init(&t, TAR_CAP);
  wv_buf_init(&gz, TAR_CAP);
  image_layer0(&t);
  gzip_buf(&t, &gz, 6);
  uint32_t r = 12345;
  int ok = 0, failed = 0;
  for (int i = 0; i < 400; i++) {
    wv_buf_t *src = i % 2 ? &t : &gz;
    wv_buf_t m;
    wv_buf_init(&m, TAR_CAP);
    wv_buf_append(&m, src->data, src->len);
    for (int k = 0; k < 1 + i % 8; k++) {
      r = r * 1103515245u + 12345u;
      m.data[(r >> 8) % m.len] ^= (char)(1u << (r % 8));
    }
    wv_inventory_t *inv;
    CHECK_OK(wv_inventory_new(&inv, NULL));
    int rc = wv_inventory_layer_begin(inv, NULL);
    if (!rc)
      rc = wv_inventory_layer_write(inv, m.data, m.len);
    if (!rc)
      rc = wv_inventory_layer_end(inv);
    if (!rc)
      rc = wv_inventory_finish(inv);
    rc ? failed++ : ok++;
    CHECK(rc == 0 || *wv_inventory_error(inv));
    wv_inventory_free(inv);
    wv_buf_free(&m);
  }
  CHECK(ok > 0 && failed > 0);
  wv_buf_free(&t);
  wv_buf_free(&gz);
}

WV_TESTS(T(tar_entries_any_chunking), T(tar_rejects_bad_input), T(tar_path_normalize),
         T(layer_formats), T(pkgdb_classify), T(pkgdb_parsers), T(inventory_known_image),
         T(inventory_push_chunks), T(inventory_deletions), T(inventory_corrupt_layer),
         T(inventory_mutations))
