/*
 * scan/inventory.c — overlay semantics over streamed layers.
 *
 * DESIGN. A "source" is one package database file seen in some layer: its
 * path, layer, whether it is still visible, and the range of packages parsed
 * from it. A path → live source map gives "a later entry at the same path
 * replaces it" in O(1) per tar entry; a set of the directories that contain
 * live sources tells whether a whiteout, an opaque marker or a non-directory
 * entry can hide anything, so the linear walk over sources only happens when
 * it can matter. Packages of hidden sources are dropped in finish.
 */
#include "scan/inventory.h"

#include "core/err.h"
#include "scan/layer.h"
#include "scan/intmap.h"
#include "scan/tar.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  const char *path;
  int layer;
  bool alive;
  wv_pkgdb_kind_t kind;
  const char *os_id, *os_version; /* os-release only */
} source_t;

struct wv_inventory {
  wv_inventory_opts_t o;
  wv_arena_t *a;
  source_t *src;
  size_t nsrc, capsrc;
  wv_pkg_t *pkgs;
  int *pkg_src;
  size_t npkgs, cappkgs;
  wv_intmap_t by_path, dirs;
  const char **digests;
  size_t nlayers;
  int cur; /* layer being read, -1 = none */
  wv_layer_t *layer;
  wv_tar_t *tar;
  bool failed, finished;
  size_t warnings;
  uint64_t tar_bytes, tar_entries;
  wv_pkg_t *out;
  size_t nout;
  const char *os_id, *os_version;
  char err[512];
};

/* ---- lifecycle ---- */

int wv_inventory_new(wv_inventory_t **out, const wv_inventory_opts_t *opts) {
  wv_inventory_t *inv = calloc(1, sizeof *inv);
  if (!inv)
    return WV_ENOMEM;
  if (opts)
    inv->o = *opts;
  if (!inv->o.max_file)
    inv->o.max_file = 64u << 20;
  if (!inv->o.max_pkgs)
    inv->o.max_pkgs = 500000;
  if (!inv->o.arena_max)
    inv->o.arena_max = 512u << 20;
  if (!inv->o.max_layers)
    inv->o.max_layers = 512;
  inv->a = wv_arena_new(inv->o.arena_max);
  inv->digests = calloc(inv->o.max_layers, sizeof *inv->digests);
  if (!inv->a || !inv->digests) {
    wv_inventory_free(inv);
    return WV_ENOMEM;
  }
  inv->cur = -1;
  *out = inv;
  return 0;
}

void wv_inventory_free(wv_inventory_t *inv) {
  if (!inv)
    return;
  wv_tar_free(inv->tar);
  wv_layer_free(inv->layer);
  wv_intmap_free(&inv->by_path);
  wv_intmap_free(&inv->dirs);
  free(inv->src);
  free(inv->pkgs);
  free(inv->pkg_src);
  free(inv->out);
  free(inv->digests);
  wv_arena_free(inv->a);
  free(inv);
}

static int fail(wv_inventory_t *inv, int rc, const char *detail) {
  const char *d = inv->cur >= 0 ? inv->digests[inv->cur] : NULL;
  snprintf(inv->err, sizeof inv->err, "layer %d%s%s: %s", inv->cur, d ? " " : "", d ? d : "",
           detail);
  inv->failed = true;
  return rc;
}

/* ---- overlay bookkeeping ---- */

static void kill_source(wv_inventory_t *inv, int i) {
  source_t *s = &inv->src[i];
  s->alive = false;
  if (wv_intmap_get(&inv->by_path, s->path) == i)
    wv_intmap_put(&inv->by_path, s->path, -1); /* the map never grows here: the key exists */
}

/* Hides the live sources of earlier layers at or under dir ("" = everything). */
static void kill_under(wv_inventory_t *inv, const char *dir, bool self) {
  if (*dir && wv_intmap_get(&inv->dirs, dir) < 0 &&
      !(self && wv_intmap_get(&inv->by_path, dir) >= 0))
    return;
  size_t dl = strlen(dir);
  for (size_t i = 0; i < inv->nsrc; i++) {
    source_t *s = &inv->src[i];
    if (!s->alive || s->layer >= inv->cur)
      continue;
    bool under = dl == 0 || (strncmp(s->path, dir, dl) == 0 && s->path[dl] == '/');
    if (under || (self && strcmp(s->path, dir) == 0))
      kill_source(inv, (int)i);
  }
}

/* Records every ancestor directory of path in the dirs set. */
static int note_dirs(wv_inventory_t *inv, const char *path) {
  char *d = wv_arena_strdup(inv->a, path);
  if (!d)
    return WV_ENOMEM;
  for (char *s = strrchr(d, '/'); s; s = strrchr(d, '/')) {
    *s = '\0';
    if (wv_intmap_get(&inv->dirs, d) >= 0)
      break; /* its ancestors are in already */
    char *k = wv_arena_strdup(inv->a, d);
    if (!k || wv_intmap_put(&inv->dirs, k, 1))
      return WV_ENOMEM;
  }
  return 0;
}

static int on_entry(void *arg, const wv_tar_entry_t *e) {
  wv_inventory_t *inv = arg;
  inv->tar_entries++;
  switch (e->type) {
  case WV_TAR_WHITEOUT:
    kill_under(inv, e->path, true);
    return 0;
  case WV_TAR_OPAQUE:
    kill_under(inv, e->path, false);
    return 0;
  default:
    break;
  }
  int i = wv_intmap_get(&inv->by_path, e->path);
  if (i >= 0)
    kill_source(inv, i); /* replaced, also within the same layer: the last entry wins */
  if (e->type != WV_TAR_DIR)
    kill_under(inv, e->path, false);
  if (e->type != WV_TAR_FILE || wv_pkgdb_classify(e->path) == WV_PKGDB_NONE)
    return 0;
  if (e->size > inv->o.max_file) {
    inv->warnings++;
    snprintf(inv->err, sizeof inv->err, "layer %d: %s skipped: %llu bytes is over the %zu cap",
             inv->cur, e->path, (unsigned long long)e->size, inv->o.max_file);
    return 0;
  }
  return 1;
}

static int add_pkg(void *arg, const wv_pkg_t *p) {
  wv_inventory_t *inv = arg;
  if (inv->npkgs == inv->cappkgs) {
    if (inv->npkgs >= inv->o.max_pkgs)
      return fail(inv, WV_ETOOBIG, "too many packages");
    size_t nc = inv->cappkgs ? inv->cappkgs * 2 : 256;
    wv_pkg_t *np = realloc(inv->pkgs, nc * sizeof *np);
    if (np)
      inv->pkgs = np;
    int *ns = np ? realloc(inv->pkg_src, nc * sizeof *ns) : NULL;
    if (!ns)
      return fail(inv, WV_ENOMEM, "out of memory");
    inv->pkg_src = ns;
    inv->cappkgs = nc;
  }
  inv->pkgs[inv->npkgs] = *p;
  inv->pkgs[inv->npkgs].layer = inv->cur;
  inv->pkg_src[inv->npkgs++] = (int)inv->nsrc; /* the source being added */
  return 0;
}

static int on_file(void *arg, const wv_tar_entry_t *e, const char *data, size_t len) {
  wv_inventory_t *inv = arg;
  if (inv->nsrc == inv->capsrc) {
    size_t nc = inv->capsrc ? inv->capsrc * 2 : 64;
    source_t *ns = realloc(inv->src, nc * sizeof *ns);
    if (!ns)
      return fail(inv, WV_ENOMEM, "out of memory");
    inv->src = ns, inv->capsrc = nc;
  }
  source_t *s = &inv->src[inv->nsrc];
  memset(s, 0, sizeof *s);
  s->path = wv_arena_strdup(inv->a, e->path);
  s->layer = inv->cur;
  s->alive = true;
  s->kind = wv_pkgdb_classify(e->path);
  if (!s->path)
    return fail(inv, WV_ENOMEM, "out of memory");
  int rc;
  size_t skipped = 0;
  if (s->kind == WV_PKGDB_OS_RELEASE)
    rc = wv_pkgdb_os_release(data, len, inv->a, &s->os_id, &s->os_version);
  else
    rc = wv_pkgdb_parse(s->kind, s->path, data, len, inv->a, add_pkg, inv, &skipped);
  if (skipped) {
    inv->warnings += skipped;
    snprintf(inv->err, sizeof inv->err, "layer %d: %s: %zu record(s) without name or version",
             inv->cur, e->path, skipped);
  }
  if (!rc)
    rc = wv_intmap_put(&inv->by_path, s->path, (int)inv->nsrc);
  if (!rc)
    rc = note_dirs(inv, s->path);
  if (rc)
    return inv->failed ? rc : fail(inv, rc, "out of memory");
  inv->nsrc++;
  return 0;
}

static int tar_sink(void *arg, const void *p, size_t n) {
  wv_inventory_t *inv = arg;
  inv->tar_bytes += n;
  return wv_tar_write(inv->tar, p, n);
}

/* ---- feeding ---- */

int wv_inventory_layer_begin(wv_inventory_t *inv, const char *digest) {
  if (inv->failed || inv->finished || inv->cur >= 0)
    return WV_EINVAL;
  if (inv->nlayers >= inv->o.max_layers)
    return fail(inv, WV_ETOOBIG, "too many layers");
  inv->cur = (int)inv->nlayers++;
  if (digest && !(inv->digests[inv->cur] = wv_arena_strdup(inv->a, digest)))
    return fail(inv, WV_ENOMEM, "out of memory");
  wv_tar_opts_t to = {on_entry, on_file, inv, inv->o.max_file};
  int rc = wv_tar_new(&inv->tar, &to);
  if (!rc)
    rc = wv_layer_new(&inv->layer, tar_sink, inv);
  return rc ? fail(inv, rc, "out of memory") : 0;
}

static int layer_fail(wv_inventory_t *inv, int rc) {
  if (inv->failed)
    return rc;
  const char *d = wv_tar_error(inv->tar);
  if (!*d)
    d = wv_layer_error(inv->layer);
  return fail(inv, rc, *d ? d : wv_strerror(rc));
}

int wv_inventory_layer_write(wv_inventory_t *inv, const void *p, size_t n) {
  if (inv->failed || inv->cur < 0)
    return WV_EINVAL;
  int rc = wv_layer_write(inv->layer, p, n);
  return rc ? layer_fail(inv, rc) : 0;
}

int wv_inventory_layer_end(wv_inventory_t *inv) {
  if (inv->failed || inv->cur < 0)
    return WV_EINVAL;
  int rc = wv_layer_finish(inv->layer);
  if (!rc)
    rc = wv_tar_finish(inv->tar);
  if (rc)
    return layer_fail(inv, rc);
  wv_tar_free(inv->tar);
  wv_layer_free(inv->layer);
  inv->tar = NULL;
  inv->layer = NULL;
  inv->cur = -1;
  return 0;
}

int wv_inventory_add_layer_fd(wv_inventory_t *inv, int fd, const char *digest) {
  enum { INBUF = 128 * 1024 };
  int rc = wv_inventory_layer_begin(inv, digest);
  if (rc)
    return rc;
  char *buf = malloc(INBUF);
  if (!buf)
    return fail(inv, WV_ENOMEM, "out of memory");
  for (;;) {
    ssize_t r = read(fd, buf, INBUF);
    if (r < 0) {
      rc = fail(inv, WV_EIO, "read error");
      break;
    }
    if (r == 0) {
      rc = wv_inventory_layer_end(inv);
      break;
    }
    if ((rc = wv_inventory_layer_write(inv, buf, (size_t)r)))
      break;
  }
  free(buf);
  return rc;
}

int wv_inventory_add_layer_file(wv_inventory_t *inv, const char *path, const char *digest) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(inv->err, sizeof inv->err, "cannot open %s", path);
    inv->failed = true;
    return WV_EIO;
  }
  int rc = wv_inventory_add_layer_fd(inv, fd, digest);
  close(fd);
  return rc;
}

/* ---- results ---- */

static int pkg_order(const void *x, const void *y) {
  const wv_pkg_t *a = x, *b = y;
  if (a->type != b->type)
    return a->type < b->type ? -1 : 1;
  int c = strcmp(a->name, b->name);
  if (!c)
    c = strcmp(a->version, b->version);
  if (!c)
    c = strcmp(a->path, b->path);
  return c;
}

static const char *ecosystem_of(const wv_inventory_t *inv, wv_ecosystem_t t) {
  const char *id = inv->os_id ? inv->os_id : "";
  switch (t) {
  case WV_ECO_DEB:
    return strcmp(id, "ubuntu") == 0 ? "Ubuntu" : "Debian";
  case WV_ECO_APK:
    return strcmp(id, "wolfi") == 0        ? "Wolfi"
           : strcmp(id, "chainguard") == 0 ? "Chainguard"
                                           : "Alpine";
  case WV_ECO_CONDA:
    return "conda";
  case WV_ECO_PYPI:
    return "PyPI";
  case WV_ECO_CRAN:
    return "CRAN";
  default:
    return "";
  }
}

int wv_inventory_finish(wv_inventory_t *inv) {
  if (inv->failed || inv->finished || inv->cur >= 0)
    return WV_EINVAL;
  for (size_t i = 0; i < inv->nsrc; i++) /* the visible os-release of the highest layer */
    if (inv->src[i].alive && inv->src[i].kind == WV_PKGDB_OS_RELEASE)
      inv->os_id = inv->src[i].os_id, inv->os_version = inv->src[i].os_version;
  inv->out = malloc((inv->npkgs ? inv->npkgs : 1) * sizeof *inv->out);
  if (!inv->out)
    return fail(inv, WV_ENOMEM, "out of memory");
  for (size_t i = 0; i < inv->npkgs; i++) {
    if (!inv->src[inv->pkg_src[i]].alive)
      continue;
    wv_pkg_t *p = &inv->out[inv->nout++];
    *p = inv->pkgs[i];
    p->ecosystem = ecosystem_of(inv, p->type);
  }
  qsort(inv->out, inv->nout, sizeof *inv->out, pkg_order);
  inv->finished = true;
  return 0;
}

size_t wv_inventory_count(const wv_inventory_t *inv) { return inv->nout; }
const wv_pkg_t *wv_inventory_pkgs(const wv_inventory_t *inv) { return inv->out; }
const char *wv_inventory_os_id(const wv_inventory_t *inv) { return inv->os_id; }
const char *wv_inventory_os_version(const wv_inventory_t *inv) { return inv->os_version; }
size_t wv_inventory_layers(const wv_inventory_t *inv) { return inv->nlayers; }
const char *wv_inventory_layer_digest(const wv_inventory_t *inv, size_t i) {
  return i < inv->nlayers ? inv->digests[i] : NULL;
}
size_t wv_inventory_warnings(const wv_inventory_t *inv) { return inv->warnings; }
const char *wv_inventory_error(const wv_inventory_t *inv) { return inv->err; }
uint64_t wv_inventory_tar_bytes(const wv_inventory_t *inv) { return inv->tar_bytes; }
uint64_t wv_inventory_tar_entries(const wv_inventory_t *inv) { return inv->tar_entries; }
