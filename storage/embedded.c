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
 * LAYER MAPS (embedded.h "Seeded layouts"). buildah keeps layers uncompressed
 * and its oci: push skips a layer only when the layout has a file named by the
 * layer's uncompressed digest X. After an import, wv_embedded_map_layers
 * inflates each new gzip layer G of the image and records "diff/X" → "G size
 * media-type" and "gz/G" → X (only after hashing the inflated bytes itself).
 * wv_embedded_seed_layout puts, in a build's own new layout, a hard link to
 * the CAS file of G under the name X; buildah then skips that layer and writes
 * the descriptor {uncompressed media type, X, size of G}, and writes the seed
 * record <layout>.seeded (X G size type per link). The import maps such a
 * descriptor back to G when the layout's seed record (else "diff/X") names G
 * with that size, taking the layout file as G's bytes: without reading it when
 * it is the CAS file itself (same inode), else hashed as G; the descriptor gets
 * the gzip type of the manifest's kind (OCI or Docker). The manifest is
 * rewritten (new digest). No name is shared between builds: each layout is
 * private, the CAS file is never written through the link.
 *
 * The first map of X wins: a writer (map-layers after an unseeded push, whose
 * G_b is buildah's gzip of X, or the base fetch with upstream's G) records
 * "diff/X" only when no map of X names a blob the CAS still holds (PUT_NX, a
 * dead map is dropped first), so maps never flip between two gzips of X. The
 * loser still records "gz/G" → X, so map-layers never inflates G again: it
 * skips G while X has a live map, and maps X -> G from that record (without
 * inflating) once X's map is dead.
 */
#include "storage/embedded.h"
#include "core/arena.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_OPS 4096 /* records of one import; an image has a few dozen */
/* The seed record of a layout: <layout>.seeded, one "X G size media-type" line per link that
 * wv_embedded_seed_layout made, read by the import of that layout only. */
#define SEEDED_SUFFIX ".seeded"
#define SEEDED_MAX (64u << 10) /* bytes of a seed record */
#define MAX_DEPTH 2            /* index → manifest */
#define CHUNK 65536

typedef struct {
  wv_store_t *s;
  wv_cas_t *c;
  const char *layout;
  const char *repo;
  wv_arena_t *a;
  wv_store_op_t ops[MAX_OPS];
  size_t nops;
  char *err;
  size_t errlen;
  const char *seeded; /* the layout's seed record (SEEDED_SUFFIX), NULL: none */
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

/* Streams one layout blob (from path, NULL: its own name) into the CAS, verified against
 * digest and size. */
static int import_blob_from(import_t *im, const char *digest, int64_t size, const char *from) {
  char path[4096], buf[CHUNK];
  wv_cas_writer_t *w = NULL;
  if (!wv_cas_digest_valid(digest))
    return failf(im, WV_EINVAL, "invalid blob digest '%s'", digest);
  if (from)
    snprintf(path, sizeof path, "%s", from);
  else
    blob_path(im, digest, path, sizeof path);
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
  if (rc)
    return failf(im, rc, "blob %s: %s", digest, wv_strerror(rc));
  return link_digest(im, digest);
}

static int import_blob(import_t *im, const char *digest, int64_t size) {
  return import_blob_from(im, digest, size, NULL);
}

static bool gzip_layer(const char *mt) {
  return mt && (strcmp(mt, "application/vnd.oci.image.layer.v1.tar+gzip") == 0 ||
                strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar.gzip") == 0);
}

static bool plain_layer(const char *mt) {
  return mt && (strcmp(mt, "application/vnd.oci.image.layer.v1.tar") == 0 ||
                strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar") == 0);
}

/* The "diff/X" record: the gzip blob G (*g), its size and media type, its expiry (*exp, may be
 * NULL). 0 or WV_ENOTFOUND. */
static int layer_map(wv_store_t *s, const char *x, char g[WV_DIGEST_STRLEN], long long *size,
                     char mt[WV_EMBEDDED_MEDIATYPE_MAX], int64_t *exp) {
  char key[WV_STORE_KEY_MAX + 1], line[512], *v = NULL;
  size_t n = 0;
  if (!wv_cas_digest_valid(x))
    return WV_EINVAL;
  snprintf(key, sizeof key, "diff/%s", x);
  int rc = wv_store_get(s, WV_DB_EMBEDDED, key, &v, &n, exp);
  if (rc)
    return rc;
  snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), v);
  free(v);
  if (sscanf(line, "%71s %lld %255s", g, size, mt) != 3 || !wv_cas_digest_valid(g) ||
      !gzip_layer(mt) || *size < 0)
    return WV_ESTORE;
  return 0;
}

/* True when the file at path is the CAS file of digest (the same inode). */
static bool is_cas_file(wv_cas_t *c, const char *digest, const char *path) {
  int fd;
  uint64_t size;
  struct stat a, b;
  if (wv_cas_open_blob(c, digest, &fd, &size) != 0)
    return false;
  bool same =
      fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
  close(fd);
  return same;
}

/* The line of the layout's seed record for x: its G, size and media type. 0 or WV_ENOTFOUND. */
static int seeded_map(const import_t *im, const char *x, char g[WV_DIGEST_STRLEN], long long *size,
                      char mt[WV_EMBEDDED_MEDIATYPE_MAX]) {
  size_t xl = strlen(x);
  for (const char *p = im->seeded; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    char line[512];
    if (n > xl && n < sizeof line && strncmp(p, x, xl) == 0 && p[xl] == ' ') {
      memcpy(line, p, n);
      line[n] = '\0';
      if (sscanf(line + xl + 1, "%71s %lld %255s", g, size, mt) == 3 && wv_cas_digest_valid(g) &&
          gzip_layer(mt) && *size >= 0)
        return 0;
    }
    p = nl ? nl + 1 : p + n;
  }
  return WV_ENOTFOUND;
}

/* The gzip media type that goes with a plain layer type: OCI's in an OCI manifest, Docker's in
 * a Docker v2 one, whatever the map recorded (the upstream's). */
static const char *gzip_type_for(const char *plain_mt) {
  return strncmp(plain_mt, "application/vnd.docker.", 23) == 0
             ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
             : "application/vnd.oci.image.layer.v1.tar+gzip";
}

/*
 * A layer descriptor {uncompressed media type, X, size} that a seeded layout made buildah
 * skip (LAYER MAPS above): *mapped when the layout's seed record (else "diff/X") names a gzip
 * blob G of that size and the layout's file for X holds G (the CAS file itself, or bytes that
 * hash to G); the descriptor then names G, with the gzip type of the manifest's kind.
 * Anything else is left to the plain import (*mapped false).
 */
static int import_mapped(import_t *im, json_object *d, const char *x, const char *plain_mt,
                         int64_t size, bool *mapped) {
  char g[WV_DIGEST_STRLEN], mt[WV_EMBEDDED_MEDIATYPE_MAX], path[4096];
  long long gsize;
  *mapped = false;
  if ((seeded_map(im, x, g, &gsize, mt) != 0 || gsize != size) &&
      (layer_map(im->s, x, g, &gsize, mt, NULL) != 0 || gsize != size))
    return 0;
  blob_path(im, x, path, sizeof path);
  int rc;
  if (is_cas_file(im->c, g, path)) {
    rc = link_digest(im, g);
  } else {
    char keep[512];
    snprintf(keep, sizeof keep, "%s", im->err);
    rc = import_blob_from(im, g, size, path);
    if (rc == WV_EDIGEST) { /* buildah wrote X itself: the plain import checks it */
      snprintf(im->err, im->errlen, "%s", keep);
      return 0;
    }
  }
  if (rc)
    return rc;
  *mapped = true;
  rc = wv_json_add_str(d, "mediaType", gzip_type_for(plain_mt));
  return rc ? rc : wv_json_add_str(d, "digest", g);
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

/* *changed: a child manifest was rewritten (its descriptor here names the new one). */
static int import_children(import_t *im, json_object *m, int depth, bool *changed) {
  json_object *list;
  if (wv_json_get_array(m, "manifests", &list))
    return failf(im, WV_EPARSE, "image index without manifests");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    const char *d;
    int rc = import_manifest(im, json_object_array_get_idx(list, i), depth + 1, &d, changed);
    if (rc)
      return rc;
  }
  return 0;
}

/* *changed: a layer descriptor was mapped back to its gzip blob (LAYER MAPS above). */
static int import_image(import_t *im, json_object *m, bool *changed) {
  json_object *cfg, *layers;
  const char *d, *mt;
  int64_t size;
  int rc;
  if (wv_json_get_object(m, "config", &cfg) || wv_json_get_array(m, "layers", &layers))
    return failf(im, WV_EPARSE, "manifest without config and layers");
  if ((rc = descriptor(im, cfg, &d, &size)) || (rc = import_blob(im, d, size)))
    return rc;
  for (size_t i = 0; i < json_object_array_length(layers); i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    bool mapped = false;
    if ((rc = descriptor(im, l, &d, &size)))
      return rc;
    if (wv_json_get_str(l, "mediaType", &mt))
      mt = NULL;
    if (plain_layer(mt) && (rc = import_mapped(im, l, d, mt, size, &mapped)))
      return rc;
    *changed = *changed || mapped;
    if (!mapped && (rc = import_blob(im, d, size)))
      return rc;
  }
  return 0;
}

static int import_manifest(import_t *im, json_object *desc, int depth, const char **digest_out,
                           bool *changed) {
  const char *digest, *mt = NULL;
  int64_t size;
  char *body, perr[128];
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
  if (!rc && rewrite) { /* it names other blobs now: new bytes, new digest */
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
  size_t slen = 0;
  if (snprintf(path, sizeof path, "%s" SEEDED_SUFFIX, layout) < (int)sizeof path)
    im->seeded = slurp(a, path, SEEDED_MAX, &slen); /* none: the global maps alone */
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

/* ---- layer maps (LAYER MAPS above) ---- */

/*
 * The SHA-256 of the gunzipped content of CAS blob digest (concatenated members allowed), at
 * most WV_EMBEDDED_DIFF_MAX bytes of it (WV_ETOOBIG past that); WV_ECLOSED once *stop is set
 * (stop may be NULL).
 */
static int diff_id(wv_cas_t *c, const char *digest, const atomic_bool *stop,
                   char out[WV_DIGEST_STRLEN]) {
  int fd;
  uint64_t size, total = 0;
  int rc = wv_cas_open_blob(c, digest, &fd, &size);
  if (rc)
    return rc;
  unsigned char *in = malloc(CHUNK), *plain = malloc(4 * CHUNK);
  z_stream z = {0};
  wv_sha256_t h;
  uint8_t hash[WV_SHA256_LEN];
  if (!in || !plain || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    free(in), free(plain), close(fd);
    return WV_ENOMEM;
  }
  rc = wv_sha256_init(&h);
  bool end = false;
  ssize_t n = 0;
  while (!rc && (n = read(fd, in, CHUNK)) > 0) {
    if (stop && atomic_load(stop)) {
      rc = WV_ECLOSED;
      break;
    }
    z.next_in = in;
    z.avail_in = (uInt)n;
    while (!rc && z.avail_in > 0) {
      if (end) { /* another gzip member */
        inflateReset(&z);
        end = false;
      }
      z.next_out = plain;
      z.avail_out = 4 * CHUNK;
      int zr = inflate(&z, Z_NO_FLUSH);
      total += 4 * CHUNK - z.avail_out;
      if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
        rc = WV_EPARSE;
      else if (total > WV_EMBEDDED_DIFF_MAX)
        rc = WV_ETOOBIG;
      else
        rc = wv_sha256_update(&h, plain, 4 * CHUNK - z.avail_out);
      end = zr == Z_STREAM_END;
      if (!rc && zr == Z_BUF_ERROR && z.avail_out == 4 * CHUNK)
        break; /* needs more input */
    }
  }
  while (!rc && !end && n == 0) { /* what inflate still holds */
    z.next_out = plain;
    z.avail_out = 4 * CHUNK;
    int zr = inflate(&z, Z_FINISH);
    total += 4 * CHUNK - z.avail_out;
    if (zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && z.avail_out == 0))
      rc = WV_EPARSE;
    else if (total > WV_EMBEDDED_DIFF_MAX)
      rc = WV_ETOOBIG;
    else
      rc = wv_sha256_update(&h, plain, 4 * CHUNK - z.avail_out);
    end = zr == Z_STREAM_END;
  }
  close(fd);
  inflateEnd(&z);
  free(in), free(plain);
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

/* Drops the map X <-> G (its blob is gone). */
static void del_map(wv_store_t *s, const char *x, const char *g) {
  char dkey[WV_STORE_KEY_MAX + 1], gkey[WV_STORE_KEY_MAX + 1];
  snprintf(dkey, sizeof dkey, "diff/%s", x);
  snprintf(gkey, sizeof gkey, "gz/%s", g);
  wv_store_op_t ops[2] = {{.kind = WV_STORE_DEL, .db = WV_DB_EMBEDDED, .key = dkey},
                          {.kind = WV_STORE_DEL, .db = WV_DB_EMBEDDED, .key = gkey}};
  wv_store_apply(s, ops, 2, NULL);
}

/*
 * Writes (or renews) the map X <-> G: both records, expiring WV_EMBEDDED_MAP_TTL_MS from now.
 * The first map wins: when "diff/X" names another blob that the CAS holds (of its size), nothing
 * is written and WV_EEXISTS is returned; a map whose blob is gone (or unreadable) is dropped
 * and replaced. "diff/X" is written PUT_NX with "gz/G" in one atomic apply, so of two writers
 * racing for X one alone gets it.
 */
static int put_map(wv_store_t *s, wv_cas_t *c, const char *x, const char *g, long long size,
                   const char *mt) {
  char dkey[WV_STORE_KEY_MAX + 1], gkey[WV_STORE_KEY_MAX + 1], dval[512];
  char og[WV_DIGEST_STRLEN], omt[WV_EMBEDDED_MEDIATYPE_MAX];
  long long osize;
  uint64_t have;
  wv_store_op_kind_t kind = WV_STORE_PUT_NX;
  int rc = layer_map(s, x, og, &osize, omt, NULL);
  snprintf(dkey, sizeof dkey, "diff/%s", x);
  snprintf(gkey, sizeof gkey, "gz/%s", g);
  int64_t exp = wv_store_now_ms() + WV_EMBEDDED_MAP_TTL_MS;
  if (rc == 0 && strcmp(og, g) == 0) {
    kind = WV_STORE_PUT; /* the same map: renewed */
  } else if (rc == 0) {
    if (wv_cas_exists(c, og, &have) == 0 && (long long)have == osize) {
      /* Another live map of X stays; G's own record still says what G inflates to, so
       * map-layers does not inflate G again (nor, once that map dies, to map X -> G). */
      wv_store_op_t gz = {.kind = WV_STORE_PUT,
                          .db = WV_DB_EMBEDDED,
                          .key = gkey,
                          .val = x,
                          .val_len = strlen(x),
                          .expires_ms = exp};
      wv_store_apply(s, &gz, 1, NULL);
      return WV_EEXISTS;
    }
    del_map(s, x, og);
  } else if (rc == WV_ESTORE) { /* unreadable: replaced */
    wv_store_op_t del = {.kind = WV_STORE_DEL, .db = WV_DB_EMBEDDED, .key = dkey};
    wv_store_apply(s, &del, 1, NULL);
  }
  int dn = snprintf(dval, sizeof dval, "%s %lld %s", g, size, mt);
  if (dn < 0 || (size_t)dn >= sizeof dval)
    return WV_EINVAL;
  wv_store_op_t ops[2] = {
      {.kind = kind,
       .db = WV_DB_EMBEDDED,
       .key = dkey,
       .val = dval,
       .val_len = (size_t)dn,
       .expires_ms = exp},
      {.kind = WV_STORE_PUT,
       .db = WV_DB_EMBEDDED,
       .key = gkey,
       .val = x,
       .val_len = strlen(x),
       .expires_ms = exp},
  };
  return wv_store_apply(s, ops, 2, NULL);
}

/* Maps the gzip layers of one image manifest body; *mapped counts new maps. */
static int map_image(wv_store_t *s, wv_cas_t *c, const char *body, size_t len, int *mapped) {
  json_object *m = NULL, *layers;
  char perr[128];
  if (wv_json_parse(body, len, WV_EMBEDDED_MANIFEST_MAX, 0, &m, perr, sizeof perr))
    return WV_EPARSE;
  int rc = wv_json_get_array(m, "layers", &layers) ? WV_EPARSE : 0;
  for (size_t i = 0; !rc && i < json_object_array_length(layers); i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    const char *g, *mt;
    int64_t size;
    char key[WV_STORE_KEY_MAX + 1], x[WV_DIGEST_STRLEN], *v = NULL;
    size_t n;
    if (wv_json_get_str(l, "digest", &g) || wv_json_get_str(l, "mediaType", &mt) ||
        wv_json_get_int64(l, "size", &size) || !gzip_layer(mt) || !wv_cas_digest_valid(g))
      continue;
    snprintf(key, sizeof key, "gz/%s", g);
    if (wv_store_get(s, WV_DB_EMBEDDED, key, &v, &n, NULL) == 0) {
      /* G was inflated and hashed before: X is known. Done while X has a live map (G's or
       * another gzip's); else X -> G is mapped without inflating G again. */
      bool known = n < sizeof x && (memcpy(x, v, n), x[n] = 0, wv_cas_digest_valid(x));
      free(v);
      if (known && wv_embedded_mapped(s, c, x, NULL))
        continue;
      if (!known && diff_id(c, g, NULL, x) != 0)
        continue;
    } else if (diff_id(c, g, NULL, x) != 0) {
      continue; /* not a gzip stream after all: never mapped */
    }
    rc = put_map(s, c, x, g, (long long)size, mt);
    if (rc == WV_EEXISTS) /* X is mapped to another gzip of it (the first map wins) */
      rc = 0;
    else if (!rc)
      (*mapped)++;
  }
  json_object_put(m);
  return rc;
}

int wv_embedded_map_layers(wv_store_t *s, wv_cas_t *c, const char *repo, const char *tag,
                           int *mapped) {
  char *body = NULL, mt[WV_EMBEDDED_MEDIATYPE_MAX];
  size_t len = 0;
  *mapped = 0;
  int rc = wv_embedded_get_manifest(s, repo, tag, &body, &len, mt, NULL);
  if (rc)
    return rc;
  if (!is_index(mt)) {
    rc = map_image(s, c, body, len, mapped);
  } else { /* each child of the index */
    json_object *idx = NULL, *list;
    char perr[128];
    rc = wv_json_parse(body, len, WV_EMBEDDED_MANIFEST_MAX, 0, &idx, perr, sizeof perr) ||
                 wv_json_get_array(idx, "manifests", &list)
             ? WV_EPARSE
             : 0;
    for (size_t i = 0; !rc && i < json_object_array_length(list); i++) {
      const char *d;
      char *cb = NULL, cmt[WV_EMBEDDED_MEDIATYPE_MAX];
      size_t clen;
      if (wv_json_get_str(json_object_array_get_idx(list, i), "digest", &d) ||
          wv_embedded_get_manifest(s, repo, d, &cb, &clen, cmt, NULL) != 0)
        continue;
      if (!is_index(cmt))
        rc = map_image(s, c, cb, clen, mapped);
      free(cb);
    }
    json_object_put(idx);
  }
  free(body);
  return rc;
}

int wv_embedded_map_blob(wv_store_t *s, wv_cas_t *c, const char *g, const char *media_type,
                         const char *want, const atomic_bool *stop,
                         char x_out[WV_EMBEDDED_DIGEST_LEN]) {
  char x[WV_DIGEST_STRLEN];
  uint64_t size = 0;
  if (x_out)
    x_out[0] = '\0';
  if (!wv_cas_digest_valid(g) || !wv_cas_digest_valid(want) || !gzip_layer(media_type) ||
      strlen(media_type) >= WV_EMBEDDED_MEDIATYPE_MAX)
    return WV_EINVAL;
  int rc = wv_cas_exists(c, g, &size);
  rc = rc ? rc : diff_id(c, g, stop, x);
  if (rc)
    return rc;
  if (x_out)
    snprintf(x_out, WV_EMBEDDED_DIGEST_LEN, "%s", x);
  if (strcmp(x, want) != 0)
    return WV_EDIGEST; /* the config's claim is not what G holds: nothing recorded */
  return put_map(s, c, x, g, (long long)size, media_type);
}

bool wv_embedded_mapped(wv_store_t *s, wv_cas_t *c, const char *x, const char *g) {
  char mg[WV_DIGEST_STRLEN], mt[WV_EMBEDDED_MEDIATYPE_MAX];
  long long size;
  uint64_t have;
  return layer_map(s, x, mg, &size, mt, NULL) == 0 && (!g || strcmp(mg, g) == 0) &&
         wv_cas_exists(c, mg, &have) == 0 && (long long)have == size;
}

int wv_embedded_seed_layout(wv_store_t *s, wv_cas_t *c, const char *layout,
                            const char *const *diff_ids, size_t n, int *seeded) {
  char dir[4096], path[4200], g[WV_DIGEST_STRLEN], mt[WV_EMBEDDED_MEDIATYPE_MAX];
  long long size;
  int64_t exp = 0, now = wv_store_now_ms();
  *seeded = 0;
  if (!layout || strlen(layout) > 3900 || n > SEEDED_MAX / 512)
    return WV_EINVAL;
  char *rec = malloc(SEEDED_MAX); /* the seed record: what this layout's import maps back */
  size_t reclen = 0;
  if (!rec)
    return WV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (layer_map(s, diff_ids[i], g, &size, mt, &exp) != 0)
      continue;
    if (*seeded == 0) { /* the layout's blobs/sha256, private to this build */
      const char *sub[] = {"", "/blobs", "/blobs/sha256"};
      for (int k = 0; k < 3; k++) {
        snprintf(dir, sizeof dir, "%s%s", layout, sub[k]);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
          free(rec);
          return WV_EIO;
        }
      }
    }
    snprintf(path, sizeof path, "%s/%s", dir, diff_ids[i] + 7);
    int rc = wv_cas_link_out(c, g, path);
    if (rc == 0) {
      (*seeded)++;
      int w =
          snprintf(rec + reclen, SEEDED_MAX - reclen, "%s %s %lld %s\n", diff_ids[i], g, size, mt);
      if (w > 0 && (size_t)w < SEEDED_MAX - reclen)
        reclen += (size_t)w;
      if (exp > 0 && exp - now < WV_EMBEDDED_MAP_TTL_MS / 2) /* in use: renewed */
        put_map(s, c, diff_ids[i], g, size, mt);
    } else if (rc == WV_ENOTFOUND) {
      del_map(s, diff_ids[i], g); /* its blob is gone: of no use to anyone */
    } else if (rc == WV_EUNSUPPORTED) {
      free(rec);
      return rc; /* another filesystem: nothing can be seeded */
    }
  }
  int rc = 0;
  if (reclen > 0) { /* the import reads it, whatever the global maps say by then */
    snprintf(path, sizeof path, "%s" SEEDED_SUFFIX, layout);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, rec, reclen) != (ssize_t)reclen)
      rc = WV_EIO;
    if (fd >= 0 && close(fd) != 0)
      rc = WV_EIO;
  }
  free(rec);
  return rc;
}
