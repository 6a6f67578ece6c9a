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
 */
#include "storage/embedded.h"
#include "core/arena.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_OPS 4096 /* records of one import; an image has a few dozen */
#define MAX_DEPTH 2  /* index → manifest */
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

/* Streams one layout blob into the CAS, verified against digest and size. */
static int import_blob(import_t *im, const char *digest, int64_t size) {
  char path[4096], buf[CHUNK];
  wv_cas_writer_t *w = NULL;
  if (!wv_cas_digest_valid(digest))
    return failf(im, WV_EINVAL, "invalid blob digest '%s'", digest);
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

static int import_manifest(import_t *im, json_object *desc, int depth, const char **digest_out);

static int import_children(import_t *im, json_object *m, int depth) {
  json_object *list;
  if (wv_json_get_array(m, "manifests", &list))
    return failf(im, WV_EPARSE, "image index without manifests");
  for (size_t i = 0; i < json_object_array_length(list); i++) {
    const char *d;
    int rc = import_manifest(im, json_object_array_get_idx(list, i), depth + 1, &d);
    if (rc)
      return rc;
  }
  return 0;
}

static int import_image(import_t *im, json_object *m) {
  json_object *cfg, *layers;
  const char *d;
  int64_t size;
  int rc;
  if (wv_json_get_object(m, "config", &cfg) || wv_json_get_array(m, "layers", &layers))
    return failf(im, WV_EPARSE, "manifest without config and layers");
  if ((rc = descriptor(im, cfg, &d, &size)) || (rc = import_blob(im, d, size)))
    return rc;
  for (size_t i = 0; i < json_object_array_length(layers); i++)
    if ((rc = descriptor(im, json_object_array_get_idx(layers, i), &d, &size)) ||
        (rc = import_blob(im, d, size)))
      return rc;
  return 0;
}

static int import_manifest(import_t *im, json_object *desc, int depth, const char **digest_out) {
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
  if (strlen(mt) >= WV_EMBEDDED_MEDIATYPE_MAX)
    rc = failf(im, WV_EINVAL, "manifest %s: media type too long", digest);
  else
    rc = is_index(mt) ? import_children(im, m, depth) : import_image(im, m);
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
  snprintf(path, sizeof path, "%s/index.json", layout);
  char *text = slurp(a, path, WV_EMBEDDED_INDEX_MAX, &len);
  int rc = text ? 0 : failf(im, WV_ENOTFOUND, "%s: missing or too large", path);
  if (!rc && wv_json_parse(text, len, WV_EMBEDDED_INDEX_MAX, 0, &index, perr, sizeof perr))
    rc = failf(im, WV_EPARSE, "index.json: %s", perr);
  rc = rc ? rc : pick_entry(im, index, ref_name, &entry);
  rc = rc ? rc : import_manifest(im, entry, 0, &mdigest);
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
