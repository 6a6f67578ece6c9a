/*
 * Unit tests for storage/embedded (OCI layout import, manifest and blob
 * lookups) and storage/jobstore (job records and logs in the real store).
 */
#include "build/base_fetch.h"
#include "core/config.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/log.h"
#include "runner.h"
#include "storage/embedded.h"
#include "storage/jobstore.h"
#include "storage/log.h"
#include "core/timefmt.h"
#include "http/client.h"
#include "registry/upstream.h"
#include "storage_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
  char dir[256], layout[300];
  wv_store_t *s;
  wv_cas_t *c;
} fx_t;

static void fx_close(fx_t *f);

/* Opens f's stores and layout dir in a fresh temp dir and hands f to TEST_CLEANUP (so f must
 * outlive the test: tests declare theirs static). */
static int fx_open(fx_t *f) {
  char p[400];
  memset(f, 0, sizeof *f);
  if (!tmpdir_make(f->dir, "emb"))
    return WV_EIO;
  TEST_CLEANUP(fx_close, f);
  snprintf(f->layout, sizeof f->layout, "%s/layout", f->dir);
  snprintf(p, sizeof p, "%s/layout/blobs/sha256", f->dir);
  mkdir(f->layout, 0700);
  snprintf(p, sizeof p, "%s/layout/blobs", f->dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/layout/blobs/sha256", f->dir);
  mkdir(p, 0700);
  snprintf(p, sizeof p, "%s/state", f->dir);
  int rc = wv_store_open(&f->s, p, 0, 0);
  return rc ? rc : wv_cas_open(&f->c, f->dir, 0);
}

/* Closes the stores and removes the directory; once (then a no-op). */
static void fx_close(fx_t *f) {
  wv_cas_close(f->c);
  wv_store_close(f->s);
  f->c = NULL;
  f->s = NULL;
  if (f->dir[0])
    tmpdir_remove(f->dir);
  f->dir[0] = '\0';
}

static int write_file(const char *path, const void *p, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (!fp)
    return WV_EIO;
  size_t w = fwrite(p, 1, n, fp);
  fclose(fp);
  return w == n ? 0 : WV_EIO;
}

/* Writes p as a layout blob; its digest to digest. */
static int put_blob(fx_t *f, const char *p, size_t n, char digest[WV_DIGEST_STRLEN]) {
  char path[512];
  int rc = wv_digest_of(p, n, digest);
  if (rc)
    return rc;
  snprintf(path, sizeof path, "%s/blobs/sha256/%s", f->layout, digest + 7);
  return write_file(path, p, n);
}

/* A one-layer image; returns the manifest digest and size. */
static int make_image(fx_t *f, const char *arch, char mdigest[WV_DIGEST_STRLEN], size_t *msize,
                      char ldigest[WV_DIGEST_STRLEN]) {
  char layer[256], cfg[512], man[1024], cdigest[WV_DIGEST_STRLEN];
  int n = snprintf(layer, sizeof layer, "layer bytes for %s", arch);
  int rc = put_blob(f, layer, (size_t)n, ldigest);
  int cn = snprintf(cfg, sizeof cfg,
                    "{\"architecture\":\"%s\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                    "\"diff_ids\":[\"%s\"]}}",
                    arch, ldigest);
  rc = rc ? rc : put_blob(f, cfg, (size_t)cn, cdigest);
  int mn = snprintf(man, sizeof man,
                    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+"
                    "json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                    "\"digest\":\"%s\",\"size\":%d},\"layers\":[{\"mediaType\":\"application/"
                    "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":%d}]}",
                    cdigest, cn, ldigest, n);
  rc = rc ? rc : put_blob(f, man, (size_t)mn, mdigest);
  *msize = (size_t)mn;
  return rc;
}

static int write_index(fx_t *f, const char *mt, const char *digest, size_t size, const char *name) {
  char text[1024], path[512];
  int n = snprintf(text, sizeof text,
                   "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
                   "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"%s\"}}]}",
                   mt, digest, size, name);
  snprintf(path, sizeof path, "%s/index.json", f->layout);
  return write_file(path, text, (size_t)n);
}

TEST(import_and_lookup) {
  static fx_t f;
  char m[WV_DIGEST_STRLEN], l[WV_DIGEST_STRLEN], got[WV_EMBEDDED_DIGEST_LEN], err[256];
  char mt[WV_EMBEDDED_MEDIATYPE_MAX], *body;
  size_t msize, len;
  uint64_t size;
  CHECK_OK(fx_open(&f));
  CHECK_OK(make_image(&f, "amd64", m, &msize, l));
  CHECK_OK(write_index(&f, "application/vnd.oci.image.manifest.v1+json", m, msize, "abc123"));
  CHECK_OK(wv_embedded_import(f.s, f.c, f.layout, "abc123", WV_EMBEDDED_REPO, "abc123", got, err,
                              sizeof err));
  CHECK_EQ_STR(got, m);
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "abc123", &body, &len, mt, got));
  CHECK_EQ_STR(mt, "application/vnd.oci.image.manifest.v1+json");
  CHECK_EQ_STR(got, m);
  CHECK_EQ_INT(len, msize);
  CHECK_HAS(body, l);
  free(body);
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, m, &body, &len, NULL, NULL));
  free(body);
  CHECK_OK(wv_embedded_has_blob(f.s, f.c, WV_EMBEDDED_REPO, l, &size));
  CHECK_EQ_INT(size, strlen("layer bytes for amd64"));
  /* Another repository sees nothing; unknown tags and digests are not found. */
  CHECK_EQ_INT(wv_embedded_has_blob(f.s, f.c, "other/repo", l, NULL), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_embedded_get_manifest(f.s, "other/repo", m, &body, &len, NULL, NULL),
               WV_ENOTFOUND);
  CHECK_EQ_INT(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "nope", &body, &len, NULL, NULL),
               WV_ENOTFOUND);
  CHECK_EQ_INT(
      wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "sha256:xyz", &body, &len, NULL, NULL),
      WV_EINVAL);
  /* A name that is not in index.json. */
  CHECK_EQ_INT(
      wv_embedded_import(f.s, f.c, f.layout, "other", WV_EMBEDDED_REPO, "t", NULL, err, sizeof err),
      WV_ENOTFOUND);
  fx_close(&f);
}

TEST(import_index) {
  static fx_t f;
  char m1[WV_DIGEST_STRLEN], m2[WV_DIGEST_STRLEN], l1[WV_DIGEST_STRLEN], l2[WV_DIGEST_STRLEN];
  char idx[1024], id[WV_DIGEST_STRLEN], got[WV_EMBEDDED_DIGEST_LEN], err[256], mt[256], *body;
  size_t s1, s2, len;
  CHECK_OK(fx_open(&f));
  CHECK_OK(make_image(&f, "amd64", m1, &s1, l1));
  CHECK_OK(make_image(&f, "arm64", m2, &s2, l2));
  int n = snprintf(idx, sizeof idx,
                   "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                   "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                   "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\","
                   "\"os\":\"linux\"}},{\"mediaType\":\"application/"
                   "vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu}]}",
                   m1, s1, m2, s2);
  CHECK_OK(put_blob(&f, idx, (size_t)n, id));
  CHECK_OK(write_index(&f, "application/vnd.oci.image.index.v1+json", id, (size_t)n, "multi"));
  CHECK_OK(
      wv_embedded_import(f.s, f.c, f.layout, "multi", "wave/build", "multi", got, err, sizeof err));
  CHECK_EQ_STR(got, id);
  CHECK_OK(wv_embedded_get_manifest(f.s, "wave/build", "multi", &body, &len, mt, NULL));
  CHECK_EQ_STR(mt, "application/vnd.oci.image.index.v1+json");
  free(body);
  CHECK_OK(wv_embedded_get_manifest(f.s, "wave/build", m2, &body, &len, mt, NULL));
  free(body);
  CHECK_OK(wv_embedded_has_blob(f.s, f.c, "wave/build", l2, NULL));
  fx_close(&f);
}

/* The parent of a multi-platform build: an index over two imported child images. */
TEST(put_index) {
  static fx_t f;
  char m1[WV_DIGEST_STRLEN], m2[WV_DIGEST_STRLEN], l1[WV_DIGEST_STRLEN], l2[WV_DIGEST_STRLEN];
  char idx[1024], want[WV_DIGEST_STRLEN], got[WV_EMBEDDED_DIGEST_LEN], err[256], mt[256], *body;
  size_t s1, s2, len;
  const char *oci = "application/vnd.oci.image.manifest.v1+json",
             *imt = "application/vnd.oci.image.index.v1+json";
  CHECK_OK(fx_open(&f));
  CHECK_OK(make_image(&f, "amd64", m1, &s1, l1));
  CHECK_OK(write_index(&f, oci, m1, s1, "kid1"));
  CHECK_OK(wv_embedded_import(f.s, f.c, f.layout, "kid1", WV_EMBEDDED_REPO, "kid1", NULL, err,
                              sizeof err));
  CHECK_OK(make_image(&f, "arm64", m2, &s2, l2));
  int n = snprintf(idx, sizeof idx,
                   "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[{\"mediaType\":\"%s\","
                   "\"digest\":\"%s\",\"size\":%zu,\"platform\":{\"architecture\":\"amd64\",\"os\":"
                   "\"linux\"}},{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{"
                   "\"architecture\":\"arm64\",\"os\":\"linux\"}}]}",
                   imt, oci, m1, s1, oci, m2, s2);
  /* The arm64 child is not imported yet: refused, nothing tagged. */
  CHECK_EQ_INT(wv_embedded_put_index(f.s, WV_EMBEDDED_REPO, "parent", imt, idx, (size_t)n, got, err,
                                     sizeof err),
               WV_ENOTFOUND);
  CHECK_HAS(err, m2);
  CHECK_EQ_INT(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "parent", &body, &len, NULL, NULL),
               WV_ENOTFOUND);
  CHECK_OK(write_index(&f, oci, m2, s2, "kid2"));
  CHECK_OK(wv_embedded_import(f.s, f.c, f.layout, "kid2", WV_EMBEDDED_REPO, "kid2", NULL, err,
                              sizeof err));
  CHECK_OK(wv_embedded_put_index(f.s, WV_EMBEDDED_REPO, "parent", imt, idx, (size_t)n, got, err,
                                 sizeof err));
  CHECK_OK(wv_digest_of(idx, (size_t)n, want));
  CHECK_EQ_STR(got, want);
  /* By tag and by digest: the same bytes and media type; the children by digest. */
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "parent", &body, &len, mt, got));
  CHECK_EQ_STR(mt, imt);
  CHECK_EQ_STR(got, want);
  CHECK_EQ_INT(len, (size_t)n);
  CHECK(memcmp(body, idx, len) == 0);
  free(body);
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, want, &body, &len, NULL, NULL));
  free(body);
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, m2, &body, &len, mt, NULL));
  CHECK_EQ_STR(mt, oci);
  free(body);
  /* Not an index, not JSON, another repository's children. */
  CHECK_EQ_INT(wv_embedded_put_index(f.s, WV_EMBEDDED_REPO, "p2", oci, idx, (size_t)n, NULL, err,
                                     sizeof err),
               WV_EINVAL);
  CHECK_EQ_INT(
      wv_embedded_put_index(f.s, WV_EMBEDDED_REPO, "p2", imt, "{x", 2, NULL, err, sizeof err),
      WV_EPARSE);
  CHECK_EQ_INT(
      wv_embedded_put_index(f.s, "other/repo", "p2", imt, idx, (size_t)n, NULL, err, sizeof err),
      WV_ENOTFOUND);
  fx_close(&f);
}

TEST(digest_mismatch_refused) {
  static fx_t f;
  char m[WV_DIGEST_STRLEN], l[WV_DIGEST_STRLEN], err[256], path[512], *body;
  size_t msize, len;
  CHECK_OK(fx_open(&f));
  CHECK_OK(make_image(&f, "amd64", m, &msize, l));
  CHECK_OK(write_index(&f, "application/vnd.oci.image.manifest.v1+json", m, msize, "t1"));
  /* Same length, other content: only the digest can tell. */
  snprintf(path, sizeof path, "%s/blobs/sha256/%s", f.layout, l + 7);
  CHECK_OK(write_file(path, "layer bytes for AMD64", strlen("layer bytes for AMD64")));
  CHECK_EQ_INT(
      wv_embedded_import(f.s, f.c, f.layout, "t1", "wave/build", "t1", NULL, err, sizeof err),
      WV_EDIGEST);
  CHECK_HAS(err, l);
  CHECK_EQ_INT(wv_embedded_get_manifest(f.s, "wave/build", "t1", &body, &len, NULL, NULL),
               WV_ENOTFOUND);
  CHECK_EQ_INT(wv_cas_exists(f.c, l, NULL), WV_ENOTFOUND);
  /* A truncated blob fails on its size. */
  CHECK_OK(write_file(path, "layer", 5));
  CHECK_EQ_INT(
      wv_embedded_import(f.s, f.c, f.layout, "t1", "wave/build", "t1", NULL, err, sizeof err),
      WV_EDIGEST);
  /* A tampered manifest is refused too. */
  CHECK_OK(write_file(path, "layer bytes for amd64", strlen("layer bytes for amd64")));
  snprintf(path, sizeof path, "%s/blobs/sha256/%s", f.layout, m + 7);
  FILE *fp = fopen(path, "r+b");
  CHECK(fp);
  fputc(' ', fp);
  fclose(fp);
  CHECK_EQ_INT(
      wv_embedded_import(f.s, f.c, f.layout, "t1", "wave/build", "t1", NULL, err, sizeof err),
      WV_EDIGEST);
  fx_close(&f);
}

static int count_each(void *arg, const char *id, const char *json, size_t len) {
  (*(int *)arg)++;
  return strstr(json, id) ? 0 : WV_EPARSE;
}

TEST(jobstore_records_and_logs) {
  static fx_t f;
  wv_jobstore_t js;
  wv_job_persist_t p;
  char logs[400], *out;
  size_t len;
  int n = 0;
  CHECK_OK(fx_open(&f));
  snprintf(logs, sizeof logs, "%s/logs", f.dir);
  CHECK_OK(wv_jobstore_init(&js, f.s, logs, 60000, &p));
  CHECK_OK(p.save(p.ctx, "bd-1", "{\"id\":\"bd-1\"}", 13, false));
  CHECK_OK(p.save(p.ctx, "bd-2", "{\"id\":\"bd-2\"}", 13, true));
  CHECK_OK(p.load_all(p.ctx, count_each, &n));
  CHECK_EQ_INT(n, 2);
  CHECK_OK(p.get(p.ctx, "bd-2", &out, &len));
  CHECK_EQ_STR(out, "{\"id\":\"bd-2\"}");
  free(out);
  int64_t exp;
  CHECK_OK(wv_store_get(f.s, WV_DB_JOBS, "bd-2", &out, &len, &exp));
  free(out);
  CHECK(exp > 0);
  CHECK_OK(wv_store_get(f.s, WV_DB_JOBS, "bd-1", &out, &len, &exp));
  free(out);
  CHECK_EQ_INT(exp, 0);
  CHECK_OK(p.put_log(p.ctx, "bd-2", "line one\nline two\n", 18));
  CHECK_OK(p.get_log(p.ctx, "bd-2", 9, &out, &len));
  CHECK_EQ_STR(out, "line two\n");
  free(out);
  fx_close(&f);
}

/* gzip of p into out (cap bytes); its length, 0 on failure. */
static size_t gz(const char *p, size_t n, unsigned char *out, size_t cap) {
  z_stream z = {0};
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return 0;
  z.next_in = (unsigned char *)p;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  int rc = deflate(&z, Z_FINISH);
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  return rc == Z_STREAM_END ? len : 0;
}

/* A one-layer image in layout (its blobs/sha256 must exist): index entry tag, the layer
 * described as {mt, ldigest, lsize}; its manifest digest to mdigest. */
static int layer_image(fx_t *f, const char *layout, const char *tag, const char *mt,
                       const char *ldigest, size_t lsize, char mdigest[WV_DIGEST_STRLEN]) {
  char cfg[256], man[1024], idx[512], cd[WV_DIGEST_STRLEN], path[600];
  snprintf(f->layout, sizeof f->layout, "%s", layout);
  int cn = snprintf(cfg, sizeof cfg, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"tag\":\"%s\"}",
                    tag);
  int rc = put_blob(f, cfg, (size_t)cn, cd);
  int mn = snprintf(man, sizeof man,
                    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+"
                    "json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                    "\"digest\":\"%s\",\"size\":%d},\"layers\":[{\"mediaType\":\"%s\",\"digest\":"
                    "\"%s\",\"size\":%zu}]}",
                    cd, cn, mt, ldigest, lsize);
  rc = rc ? rc : put_blob(f, man, (size_t)mn, mdigest);
  int in =
      snprintf(idx, sizeof idx,
               "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
               "vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%d,\"annotations\":"
               "{\"org.opencontainers.image.ref.name\":\"%s\"}}]}",
               mdigest, mn, tag);
  snprintf(path, sizeof path, "%s/index.json", layout);
  return rc ? rc : write_file(path, idx, (size_t)in);
}

static int mkdirs(const char *layout) {
  char p[600];
  snprintf(p, sizeof p, "%s/blobs", layout);
  if ((mkdir(layout, 0700) && errno != EEXIST) || (mkdir(p, 0700) && errno != EEXIST))
    return WV_EIO;
  snprintf(p, sizeof p, "%s/blobs/sha256", layout);
  return mkdir(p, 0700) && errno != EEXIST ? WV_EIO : 0;
}

/* Seeded layouts (storage/embedded.c "LAYER MAPS"): an imported gzip layer is mapped by its
 * uncompressed digest X; a build's own layout gets a link to it under X; a push that skipped it
 * ({tar, X, gzip size}) is imported as the gzip blob, the manifest rewritten; a file that is not
 * the CAS's is hashed; a layer buildah wrote itself under X is imported as it is. */
TEST(seeded_layout_maps_layers) {
  static fx_t f;
  char l[4][320], p[700], x[WV_DIGEST_STRLEN], c[WV_DIGEST_STRLEN], m[WV_DIGEST_STRLEN];
  char got[WV_EMBEDDED_DIGEST_LEN], err[256], plain[4096];
  unsigned char zipped[8192];
  int n = 0;
  CHECK_OK(fx_open(&f));
  for (int i = 0; i < 4; i++)
    snprintf(l[i], sizeof l[i], "%s/l%d", f.dir, i + 1);
  for (size_t i = 0; i < sizeof plain; i++)
    plain[i] = (char)('a' + i % 23);
  size_t zn = gz(plain, sizeof plain, zipped, sizeof zipped);
  CHECK(zn > 0 && zn != sizeof plain);
  CHECK_OK(wv_digest_of(plain, sizeof plain, x));
  CHECK_OK(wv_digest_of(zipped, zn, c));
  const char *ids[] = {x};
  /* 1: buildah compressed the layer: imported as it is, then mapped (once). */
  CHECK_OK(mkdirs(l[0]));
  snprintf(p, sizeof p, "%s/blobs/sha256/%s", l[0], c + 7);
  CHECK_OK(write_file(p, zipped, zn));
  CHECK_OK(layer_image(&f, l[0], "t1", "application/vnd.oci.image.layer.v1.tar+gzip", c, zn, m));
  CHECK_OK(wv_embedded_seed_layout(f.s, f.c, l[1], ids, 1, &n));
  CHECK_EQ_INT(n, 0); /* nothing mapped yet */
  CHECK_OK(wv_embedded_import(f.s, f.c, l[0], "t1", WV_EMBEDDED_REPO, "t1", got, err, sizeof err));
  CHECK_EQ_STR(got, m);
  CHECK_OK(wv_embedded_map_layers(f.s, f.c, WV_EMBEDDED_REPO, "t1", &n));
  CHECK_EQ_INT(n, 1);
  CHECK_OK(wv_embedded_map_layers(f.s, f.c, WV_EMBEDDED_REPO, "t1", &n));
  CHECK_EQ_INT(n, 0);
  /* 2: a seeded layout: the CAS file under X; the push skipped it. */
  CHECK_OK(wv_embedded_seed_layout(f.s, f.c, l[1], ids, 1, &n));
  CHECK_EQ_INT(n, 1);
  struct stat st;
  snprintf(p, sizeof p, "%s/blobs/sha256/%s", l[1], x + 7);
  CHECK(stat(p, &st) == 0 && st.st_nlink == 2 && (size_t)st.st_size == zn);
  CHECK_OK(layer_image(&f, l[1], "t2", "application/vnd.oci.image.layer.v1.tar", x, zn, m));
  CHECK_OK(wv_embedded_import(f.s, f.c, l[1], "t2", WV_EMBEDDED_REPO, "t2", got, err, sizeof err));
  CHECK(strcmp(got, m) != 0);
  char *body = NULL, dg[WV_DIGEST_STRLEN];
  size_t len;
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "t2", &body, &len, NULL, NULL));
  CHECK(strstr(body, c) && !strstr(body, x) && strstr(body, "tar+gzip"));
  CHECK_OK(wv_digest_of(body, len, dg));
  CHECK_EQ_STR(dg, got);
  free(body);
  CHECK_OK(wv_embedded_has_blob(f.s, f.c, WV_EMBEDDED_REPO, c, NULL));
  /* 3: the file under X is a copy (not the CAS file): hashed as the gzip blob. */
  CHECK_OK(mkdirs(l[2]));
  snprintf(p, sizeof p, "%s/blobs/sha256/%s", l[2], x + 7);
  CHECK_OK(write_file(p, zipped, zn));
  CHECK_OK(layer_image(&f, l[2], "t3", "application/vnd.oci.image.layer.v1.tar", x, zn, m));
  CHECK_OK(wv_embedded_import(f.s, f.c, l[2], "t3", WV_EMBEDDED_REPO, "t3", got, err, sizeof err));
  CHECK(strcmp(got, m) != 0);
  /* ... and a copy with other bytes of that size is the plain layer X: refused, X mismatch. */
  zipped[zn / 2] ^= 1;
  CHECK_OK(write_file(p, zipped, zn));
  CHECK_OK(layer_image(&f, l[2], "t3b", "application/vnd.oci.image.layer.v1.tar", x, zn, m));
  CHECK_EQ_INT(
      wv_embedded_import(f.s, f.c, l[2], "t3b", WV_EMBEDDED_REPO, "t3b", got, err, sizeof err),
      WV_EDIGEST);
  /* 4: buildah wrote the layer uncompressed under X (its own size): imported as it is. */
  CHECK_OK(mkdirs(l[3]));
  snprintf(p, sizeof p, "%s/blobs/sha256/%s", l[3], x + 7);
  CHECK_OK(write_file(p, plain, sizeof plain));
  CHECK_OK(
      layer_image(&f, l[3], "t4", "application/vnd.oci.image.layer.v1.tar", x, sizeof plain, m));
  CHECK_OK(wv_embedded_import(f.s, f.c, l[3], "t4", WV_EMBEDDED_REPO, "t4", got, err, sizeof err));
  CHECK_EQ_STR(got, m);
  CHECK_OK(wv_cas_exists(f.c, x, NULL));
  fx_close(&f);
}

/* n bytes into the CAS as digest. */
static int cas_put(fx_t *f, const void *p, size_t n, char digest[WV_DIGEST_STRLEN]) {
  wv_cas_writer_t *w = NULL;
  int rc = wv_digest_of(p, n, digest);
  rc = rc ? rc : wv_cas_begin(f->c, &w);
  rc = rc ? rc : wv_cas_write(w, p, n);
  if (rc) {
    wv_cas_abort(w);
    return rc;
  }
  return wv_cas_commit(w, digest, NULL);
}

/* Two gzips of one layer X: upstream's G (mapped first, by the base fetch) and buildah's G_b
 * (mapped by map-layers after an unseeded push). The first map wins, from either writer; a
 * build seeded from X -> G imports G even when the global map names G_b by then (its seed
 * record); the mapped descriptor gets the gzip type of its manifest's kind; a map whose blob
 * is gone is replaced. */
TEST(first_map_wins_and_seed_record) {
  static fx_t f;
  char x[WV_DIGEST_STRLEN], g[WV_DIGEST_STRLEN], gb[WV_DIGEST_STRLEN], m[WV_DIGEST_STRLEN];
  char got[WV_EMBEDDED_DIGEST_LEN], err[256], plain[4096], lay[3][320], p[700], key[200];
  unsigned char zg[8192], zb[8192];
  const char *dmt = "application/vnd.docker.image.rootfs.diff.tar.gzip";
  const char *omt = "application/vnd.oci.image.layer.v1.tar+gzip";
  int n = 0;
  CHECK_OK(fx_open(&f));
  for (int i = 0; i < 3; i++)
    snprintf(lay[i], sizeof lay[i], "%s/fm%d", f.dir, i);
  for (size_t i = 0; i < sizeof plain; i++)
    plain[i] = (char)('a' + (i * 7) % 19);
  size_t zn = gz(plain, sizeof plain, zg, sizeof zg);
  z_stream z = {0}; /* G_b: another gzip of X (level 1, another header) */
  CHECK(deflateInit2(&z, 1, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_HUFFMAN_ONLY) == Z_OK);
  z.next_in = (unsigned char *)plain;
  z.avail_in = sizeof plain;
  z.next_out = zb;
  z.avail_out = sizeof zb;
  CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
  size_t zbn = sizeof zb - z.avail_out;
  deflateEnd(&z);
  CHECK(zn > 0 && zbn > 0 && zn != zbn);
  CHECK_OK(wv_digest_of(plain, sizeof plain, x));
  CHECK_OK(cas_put(&f, zg, zn, g));
  CHECK_OK(cas_put(&f, zb, zbn, gb));
  /* the base fetch maps X -> G (upstream's Docker type); buildah's G_b cannot replace it */
  CHECK_OK(wv_embedded_map_blob(f.s, f.c, g, dmt, x, NULL, NULL));
  CHECK_EQ_INT(wv_embedded_map_blob(f.s, f.c, gb, omt, x, NULL, NULL), WV_EEXISTS);
  CHECK(wv_embedded_mapped(f.s, f.c, x, g) && !wv_embedded_mapped(f.s, f.c, x, gb));
  CHECK(wv_embedded_mapped(f.s, f.c, x, NULL));
  /* ... nor can map-layers of an image that holds G_b */
  CHECK_OK(mkdirs(lay[0]));
  snprintf(p, sizeof p, "%s/blobs/sha256/%s", lay[0], gb + 7);
  CHECK_OK(write_file(p, zb, zbn));
  CHECK_OK(layer_image(&f, lay[0], "b", omt, gb, zbn, m));
  CHECK_OK(wv_embedded_import(f.s, f.c, lay[0], "b", WV_EMBEDDED_REPO, "b", got, err, sizeof err));
  CHECK_OK(wv_embedded_map_layers(f.s, f.c, WV_EMBEDDED_REPO, "b", &n));
  CHECK_EQ_INT(n, 0);
  CHECK(wv_embedded_mapped(f.s, f.c, x, g));
  /* ... but G_b's own record says what G_b inflates to: it is not inflated again */
  char *gv = NULL;
  size_t gvn = 0;
  snprintf(key, sizeof key, "gz/%s", gb);
  CHECK_OK(wv_store_get(f.s, WV_DB_EMBEDDED, key, &gv, &gvn, NULL));
  CHECK(gvn == strlen(x) && memcmp(gv, x, gvn) == 0);
  free(gv);
  /* build A seeds from X -> G; then the global map names G_b (as an older writer did) */
  const char *ids[] = {x};
  CHECK_OK(wv_embedded_seed_layout(f.s, f.c, lay[1], ids, 1, &n));
  CHECK_EQ_INT(n, 1);
  char val[300];
  snprintf(key, sizeof key, "diff/%s", x);
  int vn = snprintf(val, sizeof val, "%s %zu %s", gb, zbn, omt);
  wv_store_op_t op = {
      .kind = WV_STORE_PUT, .db = WV_DB_EMBEDDED, .key = key, .val = val, .val_len = (size_t)vn};
  CHECK_OK(wv_store_apply(f.s, &op, 1, NULL));
  CHECK(wv_embedded_mapped(f.s, f.c, x, gb));
  /* A's import still maps X to G (its seed record), with the OCI gzip type in its OCI manifest */
  CHECK_OK(layer_image(&f, lay[1], "a", "application/vnd.oci.image.layer.v1.tar", x, zn, m));
  CHECK_OK(wv_embedded_import(f.s, f.c, lay[1], "a", WV_EMBEDDED_REPO, "a", got, err, sizeof err));
  char *body = NULL;
  size_t len;
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "a", &body, &len, NULL, NULL));
  CHECK(strstr(body, g) && !strstr(body, gb) && !strstr(body, x));
  CHECK(strstr(body, omt) && !strstr(body, dmt));
  free(body);
  /* a Docker v2 layer descriptor gets the Docker gzip type (the map says OCI's now) */
  snprintf(val, sizeof val, "%s %zu %s", g, zn, omt);
  op.val_len = strlen(val);
  CHECK_OK(wv_store_apply(f.s, &op, 1, NULL));
  CHECK_OK(wv_embedded_seed_layout(f.s, f.c, lay[2], ids, 1, &n));
  CHECK_EQ_INT(n, 1);
  CHECK_OK(layer_image(&f, lay[2], "d", "application/vnd.docker.image.rootfs.diff.tar", x, zn, m));
  CHECK_OK(wv_embedded_import(f.s, f.c, lay[2], "d", WV_EMBEDDED_REPO, "d", got, err, sizeof err));
  CHECK_OK(wv_embedded_get_manifest(f.s, WV_EMBEDDED_REPO, "d", &body, &len, NULL, NULL));
  CHECK(strstr(body, g) && strstr(body, dmt) && !strstr(body, omt));
  free(body);
  /* once G is gone its map is dead: map-layers of an image holding G_b maps X -> G_b from
   * G_b's record, and so would the base fetch */
  CHECK_OK(wv_cas_delete(f.c, g));
  CHECK(!wv_embedded_mapped(f.s, f.c, x, NULL));
  CHECK_OK(wv_embedded_map_layers(f.s, f.c, WV_EMBEDDED_REPO, "b", &n));
  CHECK_EQ_INT(n, 1);
  CHECK(wv_embedded_mapped(f.s, f.c, x, gb));
  CHECK_OK(wv_embedded_map_blob(f.s, f.c, gb, omt, x, NULL, NULL));
  CHECK(wv_embedded_mapped(f.s, f.c, x, gb));
  fx_close(&f);
}

/* ---- a pinned base's layers fetched and mapped (build/base_fetch.h) ---- */

/* A registry on 127.0.0.1 serving /v2/ and three blobs of one repository; the third is served
 * with a byte changed (its digest names other bytes). */
typedef struct {
  int fd, port;
  pthread_t tid;
  struct {
    char path[400];
    const unsigned char *body;
    size_t len;
  } blobs[3];
  atomic_int gets;  /* blob GETs answered */
  atomic_bool held; /* while set, a blob GET gets no answer yet */
} reg_t;

static void *reg_serve(void *arg) {
  reg_t *r = arg;
  for (;;) {
    int c = accept(r->fd, NULL, NULL);
    if (c < 0)
      return NULL;
    char req[4096];
    size_t got = 0;
    for (ssize_t n; got < sizeof req - 1 && (n = read(c, req + got, sizeof req - 1 - got)) > 0;) {
      got += (size_t)n;
      req[got] = '\0';
      if (strstr(req, "\r\n\r\n"))
        break;
    }
    req[got] = '\0';
    const unsigned char *body = (const unsigned char *)"{}";
    size_t len = 2;
    int status = strncmp(req, "GET /v2/ ", 9) == 0 ? 200 : 404;
    for (int i = 0; status == 404 && i < 3; i++)
      if (strncmp(req + 4, r->blobs[i].path, strlen(r->blobs[i].path)) == 0) {
        while (atomic_load(&r->held))
          usleep(10000);
        body = r->blobs[i].body, len = r->blobs[i].len, status = 200;
        atomic_fetch_add(&r->gets, 1);
      }
    if (status == 404)
      body = (const unsigned char *)"", len = 0;
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nContent-Type: "
                      "application/octet-stream\r\nConnection: close\r\n\r\n",
                      status, len);
    if (write(c, head, (size_t)hn) == hn && len)
      (void)!write(c, body, len);
    close(c);
  }
}

static void reg_stop(reg_t *r) {
  atomic_store(&r->held, false);
  shutdown(r->fd, SHUT_RDWR);
  close(r->fd);
  pthread_join(r->tid, NULL);
}

static int reg_start(reg_t *r) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&sa, sizeof sa) || listen(r->fd, 16) ||
      getsockname(r->fd, (struct sockaddr *)&sa, &sl))
    return WV_EIO;
  r->port = ntohs(sa.sin_port);
  return pthread_create(&r->tid, NULL, reg_serve, r) ? WV_EIO : 0;
}

/* A layer of n pseudo-random-ish bytes (seed s), gzipped: plain digest x, gzip bytes and digest. */
static size_t make_layer(int s, char *plain, size_t n, unsigned char *zipped, size_t cap,
                         char x[WV_DIGEST_STRLEN], char g[WV_DIGEST_STRLEN]) {
  for (size_t i = 0; i < n; i++)
    plain[i] = (char)('a' + (i * (size_t)(s + 7) + i / 13) % 26);
  size_t zn = gz(plain, n, zipped, cap);
  if (!zn || wv_digest_of(plain, n, x) || wv_digest_of(zipped, zn, g))
    return 0;
  return zn;
}

/* The fetch maps a layer only from bytes it verified itself: layer 1 (true config) is fetched,
 * committed as G and mapped X -> G (with an expiry); layer 2's config claims a diff_id its bytes
 * do not inflate to: its blob is kept (it hashed to G) but nothing maps the claim; layer 3's
 * bytes are not G: nothing is committed or mapped. A second start fetches nothing (mapped, or
 * failing again for 3). A map whose blob is gone is dropped when a layout would use it. */
TEST(base_fetch_maps_verified_layers) {
  static fx_t f;
  static reg_t reg;
  static char plain[3][20000];
  static unsigned char zipped[3][24000];
  char x[3][WV_DIGEST_STRLEN], g[3][WV_DIGEST_STRLEN], lie[WV_DIGEST_STRLEN];
  size_t zn[3];
  CHECK_OK(fx_open(&f));
  CHECK_OK(wv_http_global_init());
  for (int i = 0; i < 3; i++) {
    zn[i] = make_layer(i, plain[i], sizeof plain[i], zipped[i], sizeof zipped[i], x[i], g[i]);
    CHECK(zn[i] > 0);
    snprintf(reg.blobs[i].path, sizeof reg.blobs[i].path, "/v2/lib/base/blobs/%s ", g[i]);
    reg.blobs[i].body = zipped[i];
    reg.blobs[i].len = zn[i];
  }
  CHECK_OK(wv_digest_of("not the layer", 13, lie));
  zipped[2][zn[2] / 2] ^= 0x55; /* served bytes are not g[2] */
  CHECK_OK(reg_start(&reg));
  TEST_CLEANUP(reg_stop, &reg);
  wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  wv_registries_t none = {0};
  wv_upstream_t *u = NULL;
  CHECK_OK(wv_upstream_new(&u, &none));
  wv_upstream_set_timeouts(u, 5000, 5000);
  wv_app_t app = {.cfg = &cfg, .store = f.s, .cas = f.c, .upstream = u};
  wv_base_fetch_table_t *t = NULL;
  CHECK_OK(wv_base_fetch_table_new(&t));
  char registry[64];
  snprintf(registry, sizeof registry, "127.0.0.1:%d", reg.port);
  const char *mt = "application/vnd.oci.image.layer.v1.tar+gzip";
  wv_base_fetch_layer_t layers[3] = {{g[0], (int64_t)zn[0], mt, x[0]},
                                     {g[1], (int64_t)zn[1], mt, lie},
                                     {g[2], (int64_t)zn[2], mt, x[2]}};
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "b1", registry, "lib/base", NULL, layers, 3), 3);
  for (int i = 0; i < 500 && wv_base_fetch_inflight(t) > 0; i++)
    usleep(10000);
  CHECK_EQ_INT(wv_base_fetch_inflight(t), 0);
  CHECK_EQ_INT(atomic_load(&reg.gets), 3);
  /* 1: fetched, verified, mapped, with a lifetime */
  CHECK(wv_embedded_mapped(f.s, f.c, x[0], g[0]));
  char key[200], *v = NULL;
  size_t n;
  int64_t exp = 0, now = wv_now_ms();
  snprintf(key, sizeof key, "diff/%s", x[0]);
  CHECK_OK(wv_store_get(f.s, WV_DB_EMBEDDED, key, &v, &n, &exp));
  free(v);
  CHECK(exp > now + WV_EMBEDDED_MAP_TTL_MS - 60000 && exp <= now + WV_EMBEDDED_MAP_TTL_MS);
  /* 2: the blob is G (kept), but the config's claim is not recorded, nor the true X */
  CHECK_OK(wv_cas_exists(f.c, g[1], NULL));
  CHECK(!wv_embedded_mapped(f.s, f.c, lie, g[1]));
  snprintf(key, sizeof key, "diff/%s", lie);
  CHECK_EQ_INT(wv_store_get(f.s, WV_DB_EMBEDDED, key, &v, &n, NULL), WV_ENOTFOUND);
  snprintf(key, sizeof key, "gz/%s", g[1]);
  CHECK_EQ_INT(wv_store_get(f.s, WV_DB_EMBEDDED, key, &v, &n, NULL), WV_ENOTFOUND);
  /* 3: bytes that are not G: not in the CAS, not mapped */
  CHECK_EQ_INT(wv_cas_exists(f.c, g[2], NULL), WV_ENOTFOUND);
  CHECK(!wv_embedded_mapped(f.s, f.c, x[2], g[2]));
  /* again: layer 1 is mapped (no GET), 2 is in the CAS (mapped again, refused again: no GET),
   * 3 is fetched again and refused again */
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "b2", registry, "lib/base", NULL, layers, 3), 2);
  for (int i = 0; i < 500 && wv_base_fetch_inflight(t) > 0; i++)
    usleep(10000);
  CHECK_EQ_INT(atomic_load(&reg.gets), 4);
  wv_base_fetch_table_free(t);
  /* the direct check refuses a lie too, and names what the blob holds */
  char found[WV_EMBEDDED_DIGEST_LEN];
  CHECK_EQ_INT(wv_embedded_map_blob(f.s, f.c, g[1], mt, lie, NULL, found), WV_EDIGEST);
  CHECK_EQ_STR(found, x[1]);
  CHECK_OK(wv_embedded_map_blob(f.s, f.c, g[1], mt, x[1], NULL, found));
  CHECK(wv_embedded_mapped(f.s, f.c, x[1], g[1]));
  /* a seeded layout links both; once g[0] is gone, its map is dropped */
  char lay[400];
  int seeded = 0;
  const char *ids[] = {x[0], x[1]};
  snprintf(lay, sizeof lay, "%s/seeded", f.dir);
  CHECK_OK(wv_embedded_seed_layout(f.s, f.c, lay, ids, 2, &seeded));
  CHECK_EQ_INT(seeded, 2);
  CHECK_OK(wv_cas_delete(f.c, g[0]));
  snprintf(lay, sizeof lay, "%s/seeded2", f.dir);
  CHECK_OK(wv_embedded_seed_layout(f.s, f.c, lay, ids, 2, &seeded));
  CHECK_EQ_INT(seeded, 1);
  snprintf(key, sizeof key, "diff/%s", x[0]);
  CHECK_EQ_INT(wv_store_get(f.s, WV_DB_EMBEDDED, key, &v, &n, NULL), WV_ENOTFOUND);
  wv_upstream_free(u);
  wv_config_free(&cfg);
  fx_close(&f);
}

/* A registry that answers /v2/ and never answers anything else (the connection held open). */
typedef struct {
  int fd, held[8], nheld;
  pthread_t tid;
} stall_t;

static void *stall_serve(void *arg) {
  stall_t *r = arg;
  for (;;) {
    int c = accept(r->fd, NULL, NULL);
    if (c < 0)
      return NULL;
    char buf[4096];
    ssize_t n = read(c, buf, sizeof buf - 1);
    if (n > 0 && strncmp(buf, "GET /v2/ ", 9) == 0) {
      const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      if (write(c, ok, strlen(ok)) < 0)
        (void)0;
      close(c);
    } else if (r->nheld < 8) {
      r->held[r->nheld++] = c; /* no answer, ever */
    } else {
      close(c);
    }
  }
}

static void stall_stop(void *arg) {
  stall_t *r = arg;
  shutdown(r->fd, SHUT_RDWR);
  pthread_join(r->tid, NULL);
  close(r->fd);
  for (int i = 0; i < r->nheld; i++)
    close(r->held[i]);
}

/* The prefetch's bounds (build/base_fetch.h): a base over the budget or a disk that would fall
 * under the margin is refused; a layer no build wants any more stops, even while the registry
 * has not answered (a listener that never accepts), long before any timeout. */
TEST(base_fetch_bounds) {
  static fx_t f;
  CHECK_EQ_INT(wv_base_fetch_admit(WV_BASE_FETCH_BASE_MAX + 1, 0, UINT64_MAX), WV_ETOOBIG);
  CHECK_OK(wv_base_fetch_admit(WV_BASE_FETCH_BASE_MAX, WV_BASE_FETCH_BASE_MAX, UINT64_MAX));
  CHECK_EQ_INT(wv_base_fetch_admit(100, 100, 100 + WV_BASE_FETCH_DISK_MARGIN - 1), WV_ENOSPC);
  CHECK_EQ_INT(wv_base_fetch_admit(100, 100, 50), WV_ENOSPC);
  CHECK_OK(wv_base_fetch_admit(100, 100, 100 + WV_BASE_FETCH_DISK_MARGIN));
  CHECK_OK(fx_open(&f));
  static stall_t st;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  st.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(st.fd >= 0 && bind(st.fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        listen(st.fd, 16) == 0 && getsockname(st.fd, (struct sockaddr *)&sa, &sl) == 0);
  CHECK(pthread_create(&st.tid, NULL, stall_serve, &st) == 0);
  TEST_CLEANUP(stall_stop, &st);
  wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  wv_registries_t none = {0};
  wv_upstream_t *u = NULL;
  CHECK_OK(wv_upstream_new(&u, &none));
  wv_upstream_set_timeouts(u, 30000, 30000);
  wv_app_t app = {.cfg = &cfg, .store = f.s, .cas = f.c, .upstream = u};
  wv_base_fetch_table_t *t = NULL;
  CHECK_OK(wv_base_fetch_table_new(&t));
  char registry[64], g[WV_DIGEST_STRLEN], x[WV_DIGEST_STRLEN];
  snprintf(registry, sizeof registry, "127.0.0.1:%d", ntohs(sa.sin_port));
  CHECK_OK(wv_digest_of("g", 1, g));
  CHECK_OK(wv_digest_of("x", 1, x));
  const char *mt = "application/vnd.oci.image.layer.v1.tar+gzip";
  wv_base_fetch_layer_t big[2] = {{g, (int64_t)(WV_BASE_FETCH_BASE_MAX / 2 + 1), mt, x},
                                  {x, (int64_t)(WV_BASE_FETCH_BASE_MAX / 2 + 1), mt, g}};
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "b1", registry, "lib/base", NULL, big, 2),
               WV_ETOOBIG);
  big[0].size = big[1].size = INT64_MAX; /* a sum that would wrap */
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "b1", registry, "lib/base", NULL, big, 2),
               WV_ETOOBIG);
  wv_base_fetch_layer_t one[1] = {{g, 1000, mt, x}};
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "b1", registry, "lib/base", NULL, one, 1), 1);
  /* a second build of the base joins it: one release leaves it running */
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "b2", registry, "lib/base", NULL, one, 1), 0);
  usleep(300000);
  CHECK(wv_base_fetch_release(t, "b1"));
  usleep(1500000);
  CHECK_EQ_INT(wv_base_fetch_inflight(t), 1);
  int64_t t0 = wv_now_ms();
  CHECK(wv_base_fetch_release(t, "b2"));
  for (int i = 0; i < 1000 && wv_base_fetch_inflight(t) > 0; i++)
    usleep(10000);
  CHECK_EQ_INT(wv_base_fetch_inflight(t), 0);
  CHECK(wv_now_ms() - t0 < 5000);
  /* shutdown: a GET waiting for the answer ends with the table */
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "b3", registry, "lib/base", NULL, one, 1), 1);
  usleep(300000);
  t0 = wv_now_ms();
  wv_base_fetch_table_free(t);
  CHECK(wv_now_ms() - t0 < 5000);
  wv_upstream_free(u);
  wv_config_free(&cfg);
  fx_close(&f);
}

/* Polls until the table has n layers in flight (up to 10 s); the count then. */
static size_t inflight_reaches(wv_base_fetch_table_t *t, size_t n) {
  for (int i = 0; i < 1000 && wv_base_fetch_inflight(t) != n; i++)
    usleep(10000);
  return wv_base_fetch_inflight(t);
}

/* Interest is per build (build/base_fetch.h): B joins A's fetch of a base layer, C (a build of
 * another base holding the same layer) is refused and holds nothing. C's release and A's (its
 * seed step, then its end: twice) leave B's count, so the layer is still fetched — while the
 * registry holds its answer — and mapped once it comes. */
TEST(base_fetch_interest_per_build) {
  static fx_t f;
  static reg_t reg;
  static char plain[20000];
  static unsigned char zipped[24000];
  char x[WV_DIGEST_STRLEN], g[WV_DIGEST_STRLEN], h[WV_DIGEST_STRLEN];
  CHECK_OK(fx_open(&f));
  CHECK_OK(wv_http_global_init());
  size_t zn = make_layer(5, plain, sizeof plain, zipped, sizeof zipped, x, g);
  CHECK(zn > 0);
  snprintf(reg.blobs[0].path, sizeof reg.blobs[0].path, "/v2/lib/base/blobs/%s ", g);
  reg.blobs[0].body = zipped;
  reg.blobs[0].len = zn;
  atomic_store(&reg.held, true);
  CHECK_OK(reg_start(&reg));
  TEST_CLEANUP(reg_stop, &reg);
  wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  wv_registries_t none = {0};
  wv_upstream_t *u = NULL;
  CHECK_OK(wv_upstream_new(&u, &none));
  wv_upstream_set_timeouts(u, 30000, 30000);
  wv_app_t app = {.cfg = &cfg, .store = f.s, .cas = f.c, .upstream = u};
  wv_base_fetch_table_t *t = NULL;
  CHECK_OK(wv_base_fetch_table_new(&t));
  char registry[64];
  snprintf(registry, sizeof registry, "127.0.0.1:%d", reg.port);
  CHECK_OK(wv_digest_of("h", 1, h));
  const char *mt = "application/vnd.oci.image.layer.v1.tar+gzip";
  wv_base_fetch_layer_t base[1] = {{g, (int64_t)zn, mt, x}};
  wv_base_fetch_layer_t other[2] = {{g, (int64_t)zn, mt, x},
                                    {h, (int64_t)WV_BASE_FETCH_BASE_MAX, mt, h}};
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "A", registry, "lib/base", NULL, base, 1), 1);
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "B", registry, "lib/base", NULL, base, 1), 0);
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, NULL, "C", registry, "lib/other", NULL, other, 2),
               WV_ETOOBIG);
  CHECK_EQ_INT(wv_base_fetch_builds(t), 2);
  usleep(300000); /* A's GET waits for the registry */
  CHECK(!wv_base_fetch_release(t, "C"));
  CHECK(wv_base_fetch_release(t, "A"));
  CHECK(!wv_base_fetch_release(t, "A"));
  CHECK_EQ_INT(wv_base_fetch_builds(t), 1);
  usleep(2500000); /* past a few of the GET's stop checks */
  CHECK_EQ_INT(wv_base_fetch_inflight(t), 1);
  atomic_store(&reg.held, false);
  CHECK_EQ_INT(inflight_reaches(t, 0), 0);
  CHECK(wv_embedded_mapped(f.s, f.c, x, g)); /* B's prefetch completed */
  CHECK_EQ_INT(atomic_load(&reg.gets), 1);
  CHECK(wv_base_fetch_release(t, "B"));
  CHECK_EQ_INT(wv_base_fetch_builds(t), 0);
  wv_base_fetch_table_free(t);
  wv_upstream_free(u);
  wv_config_free(&cfg);
}

/* A build job that runs until the test lets it go, then fails (before any seed step). */
static atomic_bool build_gate;

static int gated_failure(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  (void)fn_arg, (void)arg;
  while (!atomic_load(&build_gate))
    usleep(5000);
  wv_job_ctx_fail(ctx, "the build failed");
  return WV_EINTERNAL;
}

/* The gate opens first: a test that failed midway must not leave the job waiting on it. */
static void engine_free(void *e) {
  atomic_store(&build_gate, true);
  wv_job_engine_free(e);
}

/* Polls until the table holds n builds (up to 10 s); the count then. */
static size_t builds_reach(wv_base_fetch_table_t *t, size_t n) {
  for (int i = 0; i < 1000 && wv_base_fetch_builds(t) != n; i++)
    usleep(10000);
  return wv_base_fetch_builds(t);
}

/* A build whose job fails before its seed step releases its interest when the job ends, so
 * the fetch stops at once (not at the deadline); a job that ended already releases it as the
 * fetch starts. */
TEST(base_fetch_released_when_build_fails) {
  static fx_t f;
  static stall_t st;
  CHECK_OK(fx_open(&f));
  CHECK_OK(wv_http_global_init());
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  st.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(st.fd >= 0 && bind(st.fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        listen(st.fd, 16) == 0 && getsockname(st.fd, (struct sockaddr *)&sa, &sl) == 0);
  CHECK(pthread_create(&st.tid, NULL, stall_serve, &st) == 0);
  TEST_CLEANUP(stall_stop, &st);
  /* Freed in the reverse order: the engine (its end callbacks release into the table), the
   * table (its threads use the upstream client), the upstream client. */
  static wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  TEST_CLEANUP(wv_config_free, &cfg);
  wv_registries_t none = {0};
  wv_upstream_t *u = NULL;
  CHECK_OK(wv_upstream_new(&u, &none));
  TEST_CLEANUP(wv_upstream_free, u);
  wv_upstream_set_timeouts(u, 30000, 30000);
  wv_app_t app = {.cfg = &cfg, .store = f.s, .cas = f.c, .upstream = u};
  wv_base_fetch_table_t *t = NULL;
  CHECK_OK(wv_base_fetch_table_new(&t));
  TEST_CLEANUP(wv_base_fetch_table_free, t);
  char logs[300];
  snprintf(logs, sizeof logs, "%s/joblogs", f.dir);
  wv_job_opts_t o;
  wv_job_opts_init(&o);
  o.log_dir = logs;
  o.mem = WV_JOB_MEM_NONE;
  wv_job_engine_t *e = NULL;
  CHECK_OK(wv_job_engine_new(&o, &e));
  TEST_CLEANUP(engine_free, e);
  wv_job_kind_t kind = {
      .name = "build", .label = "Container build", .max_running = 2, .deadline_ms = 600000};
  CHECK_OK(wv_job_register_kind(e, &kind));
  CHECK_OK(wv_job_register_fn(e, "gated-failure", gated_failure, NULL));
  CHECK_OK(wv_job_engine_start(e));
  wv_job_step_t step = {.type = WV_JOB_STEP_FN, .name = "build", .fn = "gated-failure"};
  wv_job_spec_t spec = {.id = "bd-1", .kind = "build", .steps = &step, .nsteps = 1};
  CHECK_OK(wv_job_submit(e, &spec, NULL));
  char registry[64], g[WV_DIGEST_STRLEN], x[WV_DIGEST_STRLEN];
  snprintf(registry, sizeof registry, "127.0.0.1:%d", ntohs(sa.sin_port));
  CHECK_OK(wv_digest_of("g", 1, g));
  CHECK_OK(wv_digest_of("x", 1, x));
  wv_base_fetch_layer_t one[1] = {{g, 1000, "application/vnd.oci.image.layer.v1.tar+gzip", x}};
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, e, "bd-1", registry, "lib/base", NULL, one, 1), 1);
  usleep(300000);
  CHECK_EQ_INT(wv_base_fetch_builds(t), 1);
  CHECK_EQ_INT(wv_base_fetch_inflight(t), 1); /* its GET waits for the registry */
  int64_t t0 = wv_now_ms();
  atomic_store(&build_gate, true); /* the build fails */
  CHECK_EQ_INT(builds_reach(t, 0), 0);
  CHECK_EQ_INT(inflight_reaches(t, 0), 0);
  CHECK(wv_now_ms() - t0 < 5000); /* the deadline is wave.build.timeout away */
  /* bd-1 has ended: a fetch started for it now is released as it starts */
  CHECK_EQ_INT(wv_base_fetch_start(t, &app, e, "bd-1", registry, "lib/base", NULL, one, 1), 1);
  CHECK_EQ_INT(wv_base_fetch_builds(t), 0);
  CHECK_EQ_INT(inflight_reaches(t, 0), 0);
}

WV_TEST_GLOBALS;
static const wv_test_t tests[] = {T(import_and_lookup),
                                  T(import_index),
                                  T(put_index),
                                  T(digest_mismatch_refused),
                                  T(jobstore_records_and_logs),
                                  T(seeded_layout_maps_layers),
                                  T(first_map_wins_and_seed_record),
                                  T(base_fetch_maps_verified_layers),
                                  T(base_fetch_bounds),
                                  T(base_fetch_interest_per_build),
                                  T(base_fetch_released_when_build_fails)};

int main(int argc, char **argv) {
  wv_log_set_level(WV_LOG_ERROR);
  return wv_test_run(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
