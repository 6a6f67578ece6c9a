/*
 * storage/embedded.c — OCI layout import and lookups for the embedded build
 * registry (see embedded.h).
 *
 * DESIGN. The import walks index.json → (index →) manifest → config and
 * layers. Each blob is streamed from the layout into a CAS writer in 64 KiB
 * chunks and committed only if its SHA-256 and size match the descriptor,
 * so a tampered or truncated layout is refused blob by blob. The records
 * are gathered in an arena as store ops and applied in batches (links and
 * manifests first, the tag alone at the end).
 *
 * SHARED BLOBS (embedded.h "Shared blob directory"). When the layout's blobs/
 * is a symlink to a directory shared by every build, a blob the CAS holds
 * already is not read again, and a new one is moved into the CAS (renamed,
 * then hashed) instead of copied. For each gzip layer the import also
 * inflates it once, and leaves its uncompressed digest X behind in the
 * shared directory: maps/<X hex> ("<compressed digest> <size> <media type>")
 * and sha256/<X hex>, a hard link to the CAS file of the compressed blob.
 * buildah's next push to an oci: layout looks a layer up by X only (it
 * stores layers uncompressed), finds that file and skips it, writing the
 * layer as {uncompressed media type, X, compressed size}; the import maps
 * such a descriptor back to the compressed blob and rewrites the manifest
 * (and an index naming it). Nothing is trusted that waved did not check
 * itself: the map is written only after inflating the blob and hashing
 * the result.
 */
#include "storage/embedded.h"
#include "core/arena.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_OPS 4096 /* records of one import; an image has a few dozen */
#define MAX_DEPTH 2  /* index → manifest */
#define CHUNK 65536
#define SPATH (PATH_MAX + 128) /* a file in the shared blob directory */

typedef struct {
  wv_store_t *s;
  wv_cas_t *c;
  const char *layout;
  const char *repo;
  char shared[PATH_MAX]; /* the shared blob directory ("": the layout is the build's own) */
  wv_arena_t *a;
  wv_store_op_t ops[MAX_OPS];
  size_t nops;
  char *err;
  size_t errlen;
} import_t;

static int failf(import_t *im, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(import_t *im, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(im->err, im->errlen, fmt, ap);
  va_end(ap);
  return rc;
}

static bool is_index(const char *mt) {
  return mt && (strcmp(mt, "application/vnd.oci.image.index.v1+json") == 0 ||
                strcmp(mt, "application/vnd.docker.distribution.manifest.list.v2+json") == 0);
}

static int add_op(import_t *im, const char *key, const char *val, size_t len) {
  if (im->nops == MAX_OPS)
    return failf(im, WV_ETOOBIG, "image has more than %d records", MAX_OPS);
  if (!key)
    return WV_ENOMEM;
  im->ops[im->nops++] = (wv_store_op_t){.kind = WV_STORE_PUT,
                                        .db = WV_DB_EMBEDDED,
                                        .key = key,
                                        .val = val ? val : "",
                                        .val_len = val ? len : 0};
  return 0;
}

static int link_digest(import_t *im, const char *digest) {
  return add_op(im, wv_arena_sprintf(im->a, "link/%s@%s", im->repo, digest), NULL, 0);
}

static void blob_path(const import_t *im, const char *digest, char *out, size_t n) {
  snprintf(out, n, "%s/blobs/sha256/%s", im->layout, digest + 7);
}

/* Copies one layout blob into the CAS, verified against digest and size. */
static int copy_blob(import_t *im, const char *digest, int64_t size, const char *path) {
  char buf[CHUNK];
  wv_cas_writer_t *w = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failf(im, errno == ENOENT ? WV_ENOTFOUND : WV_EIO, "blob %s: missing from the layout",
                 digest);
  int rc = wv_cas_begin(im->c, &w);
  ssize_t n = 0;
  while (!rc && (n = read(fd, buf, sizeof buf)) > 0)
    rc = wv_cas_write(w, buf, (size_t)n);
  close(fd);
  if (!rc && n < 0)
    rc = WV_EIO;
  uint64_t written = w ? wv_cas_written(w) : 0;
  if (!rc && size >= 0 && written != (uint64_t)size) {
    wv_cas_abort(w);
    return failf(im, WV_EDIGEST, "blob %s: size %llu, descriptor says %lld", digest,
                 (unsigned long long)written, (long long)size);
  }
  if (rc) {
    wv_cas_abort(w);
    return failf(im, rc, "blob %s: %s", digest, wv_strerror(rc));
  }
  rc = wv_cas_commit(w, digest, NULL);
  return rc ? failf(im, rc, "blob %s: %s", digest, wv_strerror(rc)) : 0;
}

/*
 * One layout blob into the CAS, verified against digest and size. From a shared blob directory
 * a blob the CAS has is not read (the layout's copy, buildah's alone, is dropped) and a new one
 * is moved in; keep: the layout file stays (it is the lookup name of a layer).
 */
static int import_blob(import_t *im, const char *digest, int64_t size, const char *path,
                       bool keep) {
  char own[PATH_MAX];
  uint64_t have;
  struct stat st;
  if (!wv_cas_digest_valid(digest))
    return failf(im, WV_EINVAL, "invalid blob digest '%s'", digest);
  if (!path) {
    blob_path(im, digest, own, sizeof own);
    path = own;
  }
  int rc = WV_EUNSUPPORTED;
  if (im->shared[0] && wv_cas_exists(im->c, digest, &have) == 0 && size >= 0 &&
      have == (uint64_t)size) {
    wv_cas_touch(im->c, digest); /* young again for the collector, as a commit would be */
    if (!keep && lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1)
      unlink(path);
    rc = 0;
  } else if (im->shared[0]) {
    rc = wv_cas_adopt(im->c, path, keep, digest, size >= 0 ? (uint64_t)size : 0);
    if (rc == WV_EDIGEST)
      return failf(im, rc, "blob %s: digest or size mismatch", digest);
    if (rc && rc != WV_EUNSUPPORTED)
      return failf(im, rc, "blob %s: %s", digest,
                   rc == WV_ENOTFOUND ? "missing from the layout" : wv_strerror(rc));
  }
  if (rc == WV_EUNSUPPORTED)
    rc = copy_blob(im, digest, size, path);
  return rc ? rc : link_digest(im, digest);
}

static bool gzip_layer(const char *mt) {
  return mt && (strcmp(mt, "application/vnd.oci.image.layer.v1.tar+gzip") == 0 ||
                strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar.gzip") == 0);
}

static bool plain_layer(const char *mt) {
  return mt && (strcmp(mt, "application/vnd.oci.image.layer.v1.tar") == 0 ||
                strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar") == 0);
}

/* The SHA-256 of the gunzipped content of CAS blob digest (concatenated members allowed). */
static int diff_id(import_t *im, const char *digest, char out[WV_DIGEST_STRLEN]) {
  int fd;
  uint64_t size;
  int rc = wv_cas_open_blob(im->c, digest, &fd, &size);
  if (rc)
    return rc;
  static _Thread_local unsigned char in[CHUNK], plain[4 * CHUNK];
  z_stream z = {0};
  wv_sha256_t h;
  uint8_t hash[WV_SHA256_LEN];
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    close(fd);
    return WV_ENOMEM;
  }
  rc = wv_sha256_init(&h);
  bool end = false;
  ssize_t n = 0;
  while (!rc && (n = read(fd, in, sizeof in)) > 0) {
    z.next_in = in;
    z.avail_in = (uInt)n;
    while (!rc && z.avail_in > 0) {
      if (end) { /* another gzip member */
        inflateReset(&z);
        end = false;
      }
      z.next_out = plain;
      z.avail_out = sizeof plain;
      int zr = inflate(&z, Z_NO_FLUSH);
      if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
        rc = WV_EPARSE;
      else
        rc = wv_sha256_update(&h, plain, sizeof plain - z.avail_out);
      end = zr == Z_STREAM_END;
      if (!rc && zr == Z_BUF_ERROR && z.avail_out == sizeof plain)
        break; /* needs more input */
    }
  }
  while (!rc && !end && n == 0) { /* flush what inflate still holds */
    z.next_out = plain;
    z.avail_out = sizeof plain;
    int zr = inflate(&z, Z_FINISH);
    if (zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && z.avail_out == 0))
      rc = WV_EPARSE;
    else
      rc = wv_sha256_update(&h, plain, sizeof plain - z.avail_out);
    end = zr == Z_STREAM_END;
  }
  close(fd);
  inflateEnd(&z);
  if (!rc && n < 0)
    rc = WV_EIO;
  if (rc) {
    wv_sha256_abort(&h);
    return rc;
  }
  rc = wv_sha256_final(&h, hash);
  if (!rc)
    wv_digest_format(hash, out);
  return rc;
}

/*
 * Leaves gzip layer digest (now in the CAS) findable by its uncompressed digest in the shared
 * directory: maps/<X hex> first (created whole or not at all), then sha256/<X hex>, a link to
 * the CAS file. Best effort: a layer that cannot be mapped is only compressed again next time.
 */
static void map_layer(import_t *im, const char *digest, int64_t size, const char *mt) {
  char x[WV_DIGEST_STRLEN], map[SPATH], tmp[SPATH + 32], xlink[SPATH], line[512];
  if (diff_id(im, digest, x) != 0)
    return;
  snprintf(map, sizeof map, "%s/maps/%s", im->shared, x + 7);
  snprintf(xlink, sizeof xlink, "%s/sha256/%s", im->shared, x + 7);
  int len = snprintf(line, sizeof line, "%s %lld %s\n", digest, (long long)size, mt);
  if (len <= 0 || (size_t)len >= sizeof line)
    return;
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", map, (long)getpid());
  char dir[SPATH];
  snprintf(dir, sizeof dir, "%s/maps", im->shared);
  mkdir(dir, 0700);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return;
  bool ok = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
  close(fd);
  if (ok && link(tmp, map) != 0) { /* exists: keep it only if it names this blob */
    char cur[512];
    int rfd = open(map, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t got = rfd >= 0 ? read(rfd, cur, sizeof cur - 1) : -1;
    if (rfd >= 0)
      close(rfd);
    ok = got == len && memcmp(cur, line, (size_t)len) == 0;
  }
  unlink(tmp);
  if (ok)
    wv_cas_link_out(im->c, digest, xlink);
}

/*
 * A layer whose descriptor is {uncompressed media type, X} from a shared blob directory that
 * maps X: the compressed blob it names goes into the CAS (from the X file if the CAS lost it)
 * and the descriptor is rewritten to it. *mapped false: X is not mapped (a genuinely
 * uncompressed layer).
 */
static int import_mapped(import_t *im, json_object *d, const char *x, int64_t size, bool *mapped) {
  char map[SPATH], line[512], c[WV_DIGEST_STRLEN], mt[WV_EMBEDDED_MEDIATYPE_MAX];
  long long csize;
  *mapped = false;
  snprintf(map, sizeof map, "%s/maps/%s", im->shared, x + 7);
  int fd = open(map, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return 0;
  ssize_t got = read(fd, line, sizeof line - 1);
  close(fd);
  line[got > 0 ? got : 0] = '\0';
  if (sscanf(line, "%71s %lld %255s", c, &csize, mt) != 3 || !wv_cas_digest_valid(c) ||
      !gzip_layer(mt))
    return failf(im, WV_EPARSE, "layer %s: bad map file", x);
  if (csize != size)
    return failf(im, WV_EDIGEST, "layer %s: size %lld, its blob %s has %lld", x, (long long)size, c,
                 csize);
  char xfile[SPATH];
  snprintf(xfile, sizeof xfile, "%s/sha256/%s", im->shared, x + 7);
  int rc = import_blob(im, c, csize, xfile, true);
  if (rc)
    return rc;
  *mapped = true;
  rc = wv_json_add_str(d, "mediaType", mt);
  return rc ? rc : wv_json_add_str(d, "digest", c);
}

/* Digest and size of a descriptor object. */
static int descriptor(import_t *im, json_object *d, const char **digest, int64_t *size) {
  if (!d || wv_json_get_str(d, "digest", digest) || wv_json_get_int64(d, "size", size) || *size < 0)
    return failf(im, WV_EPARSE, "descriptor without a digest and size");
  if (!wv_cas_digest_valid(*digest))
    return failf(im, WV_EINVAL, "unsupported digest '%s'", *digest);
  return 0;
}

/* Reads a manifest blob whole (it is small), verified like any blob. */
static int read_manifest(import_t *im, const char *digest, int64_t size, char **out) {
  char path[4096], got[WV_DIGEST_STRLEN];
  if (size > (int64_t)WV_EMBEDDED_MANIFEST_MAX)
    return failf(im, WV_ETOOBIG, "manifest %s: larger than %u bytes", digest,
                 WV_EMBEDDED_MANIFEST_MAX);
  blob_path(im, digest, path, sizeof path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return failf(im, WV_ENOTFOUND, "manifest %s: missing from the layout", digest);
  char *buf = wv_arena_alloc(im->a, (size_t)size + 1);
  ssize_t n = buf ? read(fd, buf, (size_t)size + 1) : -1;
  close(fd);
  if (!buf)
    return WV_ENOMEM;
  if (n != size)
    return failf(im, WV_EDIGEST, "manifest %s: size does not match its descriptor", digest);
  buf[n] = '\0';
  int rc = wv_digest_of(buf, (size_t)n, got);
  if (rc)
    return rc;
  if (strcmp(got, digest) != 0)
    return failf(im, WV_EDIGEST, "manifest %s: digest mismatch (content is %s)", digest, got);
  *out = buf;
  return 0;
}

static int import_manifest(import_t *im, json_object *desc, int depth, const char **digest_out,
                           bool *changed);

/* *changed: a child manifest was rewritten (its descriptor here is updated). */
static int import_children(import_t *im, json_object *m, int depth, bool *changed) {
  json_object *list;
  if (wv_json_get_array(m, "manifests", &list))
    return failf(im, WV_EPARSE, "image index without manifests");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    const char *d;
    bool child = false;
    int rc = import_manifest(im, json_object_array_get_idx(list, i), depth + 1, &d, &child);
    if (rc)
      return rc;
    *changed = *changed || child;
  }
  return 0;
}

/* *changed: a layer descriptor was mapped back to its compressed blob (SHARED BLOBS above). */
static int import_image(import_t *im, json_object *m, bool *changed) {
  json_object *cfg, *layers;
  const char *d, *mt;
  int64_t size;
  int rc;
  if (wv_json_get_object(m, "config", &cfg) || wv_json_get_array(m, "layers", &layers))
    return failf(im, WV_EPARSE, "manifest without config and layers");
  if ((rc = descriptor(im, cfg, &d, &size)) || (rc = import_blob(im, d, size, NULL, false)))
    return rc;
  for (size_t i = 0; i < json_object_array_length(layers); i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    bool mapped = false;
    if ((rc = descriptor(im, l, &d, &size)))
      return rc;
    if (wv_json_get_str(l, "mediaType", &mt))
      mt = NULL;
    if (im->shared[0] && plain_layer(mt) && (rc = import_mapped(im, l, d, size, &mapped)))
      return rc;
    *changed = *changed || mapped;
    if (mapped)
      continue;
    if ((rc = import_blob(im, d, size, NULL, false)))
      return rc;
    if (im->shared[0] && gzip_layer(mt))
      map_layer(im, d, size, mt);
  }
  return 0;
}

static int import_manifest(import_t *im, json_object *desc, int depth, const char **digest_out,
                           bool *changed) {
  const char *digest, *mt = NULL;
  int64_t size;
  char *body = NULL, perr[128];
  json_object *m = NULL;
  int rc = descriptor(im, desc, &digest, &size);
  if (!rc && depth > MAX_DEPTH)
    rc = failf(im, WV_EPARSE, "image indexes nested too deeply");
  rc = rc ? rc : read_manifest(im, digest, size, &body);
  if (!rc && wv_json_parse(body, (size_t)size, WV_EMBEDDED_MANIFEST_MAX, 0, &m, perr, sizeof perr))
    rc = failf(im, WV_EPARSE, "manifest %s: %s", digest, perr);
  if (rc)
    return rc;
  if (wv_json_get_str(desc, "mediaType", &mt) && wv_json_get_str(m, "mediaType", &mt))
    mt = "application/vnd.oci.image.manifest.v1+json"; /* OCI allows omitting it */
  bool rewrite = false;
  if (strlen(mt) >= WV_EMBEDDED_MEDIATYPE_MAX)
    rc = failf(im, WV_EINVAL, "manifest %s: media type too long", digest);
  else
    rc = is_index(mt) ? import_children(im, m, depth, &rewrite) : import_image(im, m, &rewrite);
  if (!rc && im->shared[0]) { /* stored in the state store: buildah's file is not needed */
    char path[PATH_MAX];
    struct stat st;
    blob_path(im, digest, path, sizeof path);
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1)
      unlink(path);
  }
  if (!rc && rewrite) { /* the manifest names other blobs now: new bytes, new digest */
    char *nd = wv_arena_alloc(im->a, WV_DIGEST_STRLEN);
    body = wv_arena_strdup(im->a, wv_json_compact(m));
    rc = body && nd ? wv_digest_of(body, strlen(body), nd) : WV_ENOMEM;
    size = body ? (int64_t)strlen(body) : 0;
    digest = nd;
    rc = rc ? rc : wv_json_add_str(desc, "digest", digest);
    rc = rc ? rc : wv_json_add_int(desc, "size", size);
    *changed = true;
  }
  char *val = rc ? NULL : wv_arena_sprintf(im->a, "%s\n%s", mt, body);
  if (!rc)
    rc = val ? add_op(im, wv_arena_sprintf(im->a, "manifest/%s", digest), val, strlen(val))
             : WV_ENOMEM;
  rc = rc ? rc : link_digest(im, digest);
  if (!rc)
    *digest_out = wv_arena_strdup(im->a, digest);
  json_object_put(m);
  return rc;
}

static char *slurp(wv_arena_t *a, const char *path, size_t max, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  char *buf = wv_arena_alloc(a, max + 1);
  ssize_t n = buf ? read(fd, buf, max + 1) : -1;
  close(fd);
  if (n < 0 || (size_t)n > max)
    return NULL;
  buf[n] = '\0';
  *len = (size_t)n;
  return buf;
}

/* The index.json entry named ref_name (or the only one). */
static int pick_entry(import_t *im, json_object *index, const char *ref_name, json_object **out) {
  json_object *list;
  if (wv_json_get_array(index, "manifests", &list))
    return failf(im, WV_EPARSE, "index.json has no manifests");
  size_t n = json_object_array_length(list);
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(list, i), *ann;
    const char *name;
    if (!ref_name && n == 1) {
      *out = e;
      return 0;
    }
    if (ref_name && wv_json_get_object(e, "annotations", &ann) == 0 &&
        wv_json_get_str(ann, "org.opencontainers.image.ref.name", &name) == 0 &&
        strcmp(name, ref_name) == 0) {
      *out = e;
      return 0;
    }
  }
  return failf(im, WV_ENOTFOUND, "index.json has no entry named '%s'", ref_name ? ref_name : "");
}

static int apply_ops(import_t *im) {
  for (size_t off = 0; off < im->nops; off += WV_STORE_APPLY_MAX) {
    size_t n = im->nops - off < WV_STORE_APPLY_MAX ? im->nops - off : WV_STORE_APPLY_MAX;
    int rc = wv_store_apply(im->s, im->ops + off, n, NULL);
    if (rc)
      return failf(im, rc, "cannot record the image: %s", wv_strerror(rc));
  }
  return 0;
}

static bool name_ok(const char *s, size_t max) {
  return s && *s && strlen(s) <= max && !strpbrk(s, "@: \n");
}

int wv_embedded_import(wv_store_t *s, wv_cas_t *c, const char *layout, const char *ref_name,
                       const char *repo, const char *tag, char *digest, char *err, size_t errlen) {
  char path[4096], perr[128];
  size_t len = 0;
  json_object *index = NULL, *entry = NULL;
  const char *mdigest = NULL;
  if (errlen)
    err[0] = '\0';
  if (!layout || !name_ok(repo, 255) || !name_ok(tag, 128))
    return WV_EINVAL;
  import_t *im = calloc(1, sizeof *im);
  wv_arena_t *a = wv_arena_new(16u << 20);
  if (!im || !a) {
    free(im);
    wv_arena_free(a);
    return WV_ENOMEM;
  }
  *im = (import_t){
      .s = s, .c = c, .layout = layout, .repo = repo, .a = a, .err = err, .errlen = errlen};
  struct stat st;
  snprintf(path, sizeof path, "%s/blobs", layout);
  if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && !realpath(path, im->shared))
    im->shared[0] = '\0'; /* SHARED BLOBS: the build's blobs/ names the shared directory */
  snprintf(path, sizeof path, "%s/index.json", layout);
  char *text = slurp(a, path, WV_EMBEDDED_INDEX_MAX, &len);
  int rc = text ? 0 : failf(im, WV_ENOTFOUND, "%s: missing or too large", path);
  if (!rc && wv_json_parse(text, len, WV_EMBEDDED_INDEX_MAX, 0, &index, perr, sizeof perr))
    rc = failf(im, WV_EPARSE, "index.json: %s", perr);
  rc = rc ? rc : pick_entry(im, index, ref_name, &entry);
  bool rewritten = false;
  rc = rc ? rc : import_manifest(im, entry, 0, &mdigest, &rewritten);
  rc = rc ? rc : apply_ops(im);
  if (!rc) { /* the tag last, alone: it names only complete content */
    im->nops = 0;
    rc = add_op(im, wv_arena_sprintf(a, "tag/%s:%s", repo, tag), mdigest, strlen(mdigest));
    rc = rc ? rc : apply_ops(im);
  }
  if (!rc && digest)
    snprintf(digest, WV_EMBEDDED_DIGEST_LEN, "%s", mdigest);
  json_object_put(index);
  wv_arena_free(a);
  free(im);
  return rc;
}

typedef struct {
  char **body;
  size_t *len;
  char *media_type;
} manifest_out_t;

static int copy_manifest(void *arg, const void *val, size_t len, int64_t exp) {
  manifest_out_t *o = arg;
  const char *nl = memchr(val, '\n', len);
  (void)exp;
  if (!nl || (size_t)(nl - (const char *)val) >= WV_EMBEDDED_MEDIATYPE_MAX)
    return WV_ESTORE;
  size_t mtlen = (size_t)(nl - (const char *)val), n = len - mtlen - 1;
  char *b = malloc(n + 1);
  if (!b)
    return WV_ENOMEM;
  memcpy(b, nl + 1, n);
  b[n] = '\0';
  if (o->media_type) {
    memcpy(o->media_type, val, mtlen);
    o->media_type[mtlen] = '\0';
  }
  *o->body = b;
  *o->len = n;
  return 0;
}

static int linked(wv_store_t *s, const char *repo, const char *digest) {
  char key[WV_STORE_KEY_MAX + 1], *v;
  size_t n;
  if (snprintf(key, sizeof key, "link/%s@%s", repo, digest) >= (int)sizeof key)
    return WV_EINVAL;
  int rc = wv_store_get(s, WV_DB_EMBEDDED, key, &v, &n, NULL);
  if (!rc)
    free(v);
  return rc;
}

int wv_embedded_get_manifest(wv_store_t *s, const char *repo, const char *ref, char **body,
                             size_t *len, char *media_type, char *digest) {
  char key[WV_STORE_KEY_MAX + 1], dg[WV_EMBEDDED_DIGEST_LEN], *v = NULL;
  size_t n;
  int rc;
  if (!name_ok(repo, 255) || !ref || !*ref)
    return WV_EINVAL;
  if (strncmp(ref, "sha256:", 7) == 0) {
    if (!wv_cas_digest_valid(ref))
      return WV_EINVAL;
    if ((rc = linked(s, repo, ref)))
      return rc;
    snprintf(dg, sizeof dg, "%s", ref);
  } else {
    if (!name_ok(ref, 128) || snprintf(key, sizeof key, "tag/%s:%s", repo, ref) >= (int)sizeof key)
      return WV_EINVAL;
    if ((rc = wv_store_get(s, WV_DB_EMBEDDED, key, &v, &n, NULL)))
      return rc;
    int bad = n >= sizeof dg || !wv_cas_digest_valid(v);
    snprintf(dg, sizeof dg, "%s", bad ? "" : v);
    free(v);
    if (bad)
      return WV_ESTORE;
  }
  snprintf(key, sizeof key, "manifest/%s", dg);
  manifest_out_t o = {body, len, media_type};
  rc = wv_store_view(s, WV_DB_EMBEDDED, key, copy_manifest, &o);
  if (!rc && digest)
    snprintf(digest, WV_EMBEDDED_DIGEST_LEN, "%s", dg);
  return rc;
}

int wv_embedded_put_index(wv_store_t *s, const char *repo, const char *tag, const char *media_type,
                          const char *body, size_t len, char *digest, char *err, size_t errlen) {
  char perr[128], dg[WV_DIGEST_STRLEN];
  json_object *idx = NULL, *list = NULL;
  if (errlen)
    err[0] = '\0';
  if (!name_ok(repo, 255) || !name_ok(tag, 128) || !body || !is_index(media_type) ||
      len > WV_EMBEDDED_MANIFEST_MAX)
    return WV_EINVAL;
  wv_arena_t *a = wv_arena_new(4096);
  if (!a)
    return WV_ENOMEM;
  int rc = wv_json_parse(body, len, WV_EMBEDDED_MANIFEST_MAX, 0, &idx, perr, sizeof perr);
  if (rc || wv_json_get_array(idx, "manifests", &list)) {
    snprintf(err, errlen, "index: %s", rc ? perr : "no manifests list");
    rc = WV_EPARSE;
  }
  for (size_t i = 0; !rc && i < json_object_array_length(list); i++) {
    const char *d = NULL;
    json_object *e = json_object_array_get_idx(list, i);
    if (wv_json_get_str(e, "digest", &d) || !wv_cas_digest_valid(d)) {
      snprintf(err, errlen, "index entry %zu has no valid digest", i);
      rc = WV_EPARSE;
    } else if ((rc = linked(s, repo, d)) != 0) {
      snprintf(err, errlen, "manifest %s is not in %s", d, repo);
    }
  }
  rc = rc ? rc : wv_digest_of(body, len, dg);
  char *val = rc ? NULL : wv_arena_alloc(a, strlen(media_type) + 1 + len + 1);
  if (!rc && !val)
    rc = WV_ENOMEM;
  if (!rc) {
    size_t mt = strlen(media_type);
    memcpy(val, media_type, mt);
    val[mt] = '\n';
    memcpy(val + mt + 1, body, len);
    wv_store_op_t ops[2] = {
        {.kind = WV_STORE_PUT,
         .db = WV_DB_EMBEDDED,
         .key = wv_arena_sprintf(a, "manifest/%s", dg),
         .val = val,
         .val_len = mt + 1 + len},
        {.kind = WV_STORE_PUT,
         .db = WV_DB_EMBEDDED,
         .key = wv_arena_sprintf(a, "link/%s@%s", repo, dg),
         .val = "",
         .val_len = 0},
    };
    wv_store_op_t tagop = {.kind = WV_STORE_PUT,
                           .db = WV_DB_EMBEDDED,
                           .key = wv_arena_sprintf(a, "tag/%s:%s", repo, tag),
                           .val = dg,
                           .val_len = strlen(dg)};
    rc = ops[0].key && ops[1].key && tagop.key ? wv_store_apply(s, ops, 2, NULL) : WV_ENOMEM;
    rc = rc ? rc : wv_store_apply(s, &tagop, 1, NULL); /* the tag last, alone */
    if (rc && rc != WV_ENOMEM)
      snprintf(err, errlen, "cannot record the index: %s", wv_strerror(rc));
  }
  if (!rc && digest)
    snprintf(digest, WV_EMBEDDED_DIGEST_LEN, "%s", dg);
  json_object_put(idx);
  wv_arena_free(a);
  return rc;
}

int wv_embedded_has_blob(wv_store_t *s, wv_cas_t *c, const char *repo, const char *digest,
                         uint64_t *size) {
  if (!name_ok(repo, 255) || !wv_cas_digest_valid(digest))
    return WV_EINVAL;
  int rc = linked(s, repo, digest);
  return rc ? rc : wv_cas_exists(c, digest, size);
}
