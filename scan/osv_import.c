/*
 * scan/osv_import.c — importing OSV records into the state store.
 *
 * DESIGN. Records are validated and normalised one by one (scan/osv_norm.c)
 * and their "r/<id>" writes are queued asynchronously to the store's group
 * committer (at most MAX_INFLIGHT outstanding), so an import of 100k records
 * costs a few hundred transactions, not 100k fsyncs. The package index ("p/<eco>/<name>"
 * → ids) is read-modify-write, so it is kept in memory for the whole run —
 * each list loaded from the store the first time it is touched — and written
 * once at commit. Records seen earlier in the same run are remembered (id →
 * modified, index keys) so a duplicate never reads a stale store value.
 */
#include "scan/osv_import_int.h"

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "scan/intmap.h"
#include "scan/zip.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 4096
#define MAX_DEPTH 16

typedef struct {
  const char **ids;
  size_t n, cap;
  bool dirty;
  const char *key;
} idlist_t;

typedef struct {
  const char *modified;
  const char *keys; /* index keys joined by '\n' ("" = none) */
} seen_t;

struct wv_osv_import {
  wv_store_t *st;
  wv_osv_msg_cb msg;
  void *msg_arg;
  wv_osv_stats_t stats;
  wv_arena_t *a;
  wv_intmap_t lists_map, seen_map;
  idlist_t *lists;
  size_t nlists, caplists;
  seen_t *seen;
  size_t nseen, capseen;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t inflight;
  int write_err;
};

static void say(wv_osv_import_t *imp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(wv_osv_import_t *imp, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  wv_log_vline(imp->msg, imp->msg_arg, 600, fmt, ap);
  va_end(ap);
}

/* ---------------------------------------------------------------- writes */

static void on_done(void *arg, int rc, int64_t value) {
  (void)value;
  wv_osv_import_t *imp = arg;
  pthread_mutex_lock(&imp->mu);
  imp->inflight--;
  if (rc && !imp->write_err)
    imp->write_err = rc;
  pthread_cond_broadcast(&imp->cv);
  pthread_mutex_unlock(&imp->mu);
}

static int submit(wv_osv_import_t *imp, wv_store_op_kind_t kind, const char *key, const char *val,
                  size_t len) {
  wv_store_op_t op = {.kind = kind, .db = WV_DB_VULNS, .key = key, .val = val, .val_len = len};
  pthread_mutex_lock(&imp->mu);
  while (imp->inflight >= MAX_INFLIGHT)
    pthread_cond_wait(&imp->cv, &imp->mu);
  imp->inflight++;
  pthread_mutex_unlock(&imp->mu);
  int rc;
  while ((rc = wv_store_submit(imp->st, &op, on_done, imp)) == WV_EBUSY) {
    struct timespec ts = {0, 1000000}; /* the committer's queue is full: let it drain */
    nanosleep(&ts, NULL);
  }
  if (rc) {
    pthread_mutex_lock(&imp->mu);
    imp->inflight--;
    pthread_mutex_unlock(&imp->mu);
  }
  return rc;
}

static int wait_all(wv_osv_import_t *imp) {
  pthread_mutex_lock(&imp->mu);
  while (imp->inflight)
    pthread_cond_wait(&imp->cv, &imp->mu);
  int rc = imp->write_err;
  pthread_mutex_unlock(&imp->mu);
  return rc ? WV_ESTORE : 0;
}

/* ---------------------------------------------------------------- index lists */

static int list_load(wv_osv_import_t *imp, idlist_t *l) {
  char *val = NULL;
  size_t len;
  int rc = wv_store_get(imp->st, WV_DB_VULNS, l->key, &val, &len, NULL);
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  json_object *arr = NULL;
  char err[64];
  if (wv_json_parse(val, len, WV_STORE_VALUE_MAX, 0, &arr, err, sizeof err) == 0 &&
      json_object_is_type(arr, json_type_array)) {
    size_t n = json_object_array_length(arr);
    l->ids = malloc((n ? n : 1) * sizeof *l->ids);
    l->cap = n ? n : 1;
    for (size_t i = 0; l->ids && i < n; i++) {
      const char *s = json_object_get_string(json_object_array_get_idx(arr, i));
      if (s && (l->ids[l->n] = wv_arena_strdup(imp->a, s)))
        l->n++;
    }
    rc = l->ids ? 0 : WV_ENOMEM;
  }
  json_object_put(arr);
  free(val);
  return rc;
}

static int list_get(wv_osv_import_t *imp, const char *key, idlist_t **out) {
  int i = wv_intmap_get(&imp->lists_map, key);
  if (i >= 0) {
    *out = &imp->lists[i];
    return 0;
  }
  if (imp->nlists == imp->caplists) {
    size_t nc = imp->caplists ? imp->caplists * 2 : 256;
    idlist_t *nl = realloc(imp->lists, nc * sizeof *nl);
    if (!nl)
      return WV_ENOMEM;
    imp->lists = nl, imp->caplists = nc;
  }
  idlist_t *l = &imp->lists[imp->nlists];
  memset(l, 0, sizeof *l);
  if (!(l->key = wv_arena_strdup(imp->a, key)))
    return WV_ENOMEM;
  int rc = list_load(imp, l);
  if (!rc)
    rc = wv_intmap_put(&imp->lists_map, l->key, (int)imp->nlists);
  if (rc) {
    free(l->ids);
    return rc;
  }
  imp->nlists++;
  *out = l;
  return 0;
}

static int list_add(wv_osv_import_t *imp, const char *key, const char *id) {
  idlist_t *l;
  int rc = list_get(imp, key, &l);
  if (rc)
    return rc;
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->ids[i], id) == 0)
      return 0;
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 4;
    const char **ni = realloc(l->ids, nc * sizeof *ni);
    if (!ni)
      return WV_ENOMEM;
    l->ids = ni, l->cap = nc;
  }
  l->ids[l->n++] = id;
  l->dirty = true;
  return 0;
}

static int list_remove(wv_osv_import_t *imp, const char *key, const char *id) {
  idlist_t *l;
  int rc = list_get(imp, key, &l);
  if (rc)
    return rc;
  for (size_t i = 0; i < l->n; i++) {
    if (strcmp(l->ids[i], id) == 0) {
      l->ids[i] = l->ids[--l->n];
      l->dirty = true;
      break;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- records */

/* What is stored for id: modified and index keys (from this run, or from the store). */
static int previous(wv_osv_import_t *imp, const char *id, bool *exists, const char **modified,
                    const char **keys) {
  int i = wv_intmap_get(&imp->seen_map, id);
  *exists = false;
  if (i >= 0) {
    *exists = imp->seen[i].modified != NULL;
    *modified = imp->seen[i].modified, *keys = imp->seen[i].keys;
    return 0;
  }
  char key[WV_STORE_KEY_MAX + 1], *val = NULL;
  size_t len;
  snprintf(key, sizeof key, "r/%s", id);
  int rc = wv_store_get(imp->st, WV_DB_VULNS, key, &val, &len, NULL);
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc)
    return rc;
  json_object *o = NULL;
  char err[64];
  rec_t old;
  char why[128];
  rc = wv_json_parse(val, len, WV_STORE_VALUE_MAX, 0, &o, err, sizeof err);
  free(val);
  if (rc) /* an unreadable stored record is simply replaced */
    return 0;
  if (wv__osv_normalise(imp->a, o, &old, why, sizeof why) == 0) {
    wv_buf_t b;
    wv_buf_init(&b, 64 * 1024);
    for (size_t k = 0; k < old.nkeys; k++)
      wv_buf_printf(&b, "%s%s", k ? "\n" : "", old.keys[k]);
    *keys = wv_arena_strdup(imp->a, b.data ? b.data : "");
    wv_buf_free(&b);
    *modified = wv_arena_strdup(imp->a, old.modified ? old.modified : "");
    *exists = *keys && *modified;
    json_object_put(old.norm);
  }
  json_object_put(o);
  return *exists || !*keys ? 0 : WV_ENOMEM;
}

static int remember(wv_osv_import_t *imp, const char *id, const rec_t *r, bool present) {
  if (imp->nseen == imp->capseen) {
    size_t nc = imp->capseen ? imp->capseen * 2 : 1024;
    seen_t *ns = realloc(imp->seen, nc * sizeof *ns);
    if (!ns)
      return WV_ENOMEM;
    imp->seen = ns, imp->capseen = nc;
  }
  wv_buf_t b;
  wv_buf_init(&b, 64 * 1024);
  for (size_t k = 0; present && k < r->nkeys; k++)
    wv_buf_printf(&b, "%s%s", k ? "\n" : "", r->keys[k]);
  seen_t *s = &imp->seen[imp->nseen];
  s->keys = wv_arena_strdup(imp->a, b.data ? b.data : "");
  s->modified = present ? wv_arena_strdup(imp->a, r->modified ? r->modified : "") : NULL;
  wv_buf_free(&b);
  const char *k = wv_arena_strdup(imp->a, id);
  if (!s->keys || !k || (present && !s->modified) ||
      wv_intmap_put(&imp->seen_map, k, (int)imp->nseen))
    return WV_ENOMEM;
  imp->nseen++;
  return 0;
}

/* Removes id from each index key in the '\n'-joined list. */
static int unindex(wv_osv_import_t *imp, const char *id, const char *keys) {
  char key[WV_STORE_KEY_MAX + 1];
  while (keys && *keys) {
    size_t l = strcspn(keys, "\n");
    snprintf(key, sizeof key, "%.*s", (int)l, keys);
    int rc = list_remove(imp, key, id);
    if (rc)
      return rc;
    keys += l + (keys[l] == '\n');
  }
  return 0;
}

static int import_record(wv_osv_import_t *imp, json_object *rec, const char *origin) {
  rec_t r;
  char why[300], key[WV_STORE_KEY_MAX + 1];
  imp->stats.read++;
  if (wv__osv_normalise(imp->a, rec, &r, why, sizeof why)) {
    imp->stats.rejected++;
    say(imp, "%s: %s%s%s", origin, r.id ? r.id : "", r.id ? ": " : "", why);
    return 0;
  }
  bool exists;
  const char *pmod = NULL, *pkeys = NULL;
  int rc = previous(imp, r.id, &exists, &pmod, &pkeys);
  const char *id = wv_arena_strdup(imp->a, r.id);
  if (!rc && !id)
    rc = WV_ENOMEM;
  if (rc)
    goto out;
  snprintf(key, sizeof key, "r/%s", r.id);
  bool stale = exists && pmod && r.modified && strcmp(pmod, r.modified) >= 0;
  if (stale && !r.withdrawn) { /* what is stored is as new or newer */
    imp->stats.unchanged++;
    goto out;
  }
  if (r.withdrawn || !r.norm) {
    if (r.withdrawn)
      imp->stats.withdrawn++;
    else
      imp->stats.ignored++;
    if (exists && !(rc = unindex(imp, id, pkeys)) &&
        !(rc = submit(imp, WV_STORE_DEL, key, NULL, 0)))
      rc = remember(imp, id, &r, false);
    goto out;
  }
  if (exists && (rc = unindex(imp, id, pkeys)))
    goto out;
  for (size_t i = 0; i < r.nkeys && !rc; i++)
    rc = list_add(imp, r.keys[i], id);
  if (!rc) {
    const char *txt = json_object_to_json_string_ext(r.norm, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = txt ? submit(imp, WV_STORE_PUT, key, txt, strlen(txt)) : WV_ENOMEM;
  }
  if (!rc)
    rc = remember(imp, id, &r, true);
  if (!rc)
    imp->stats.imported++;
out:
  json_object_put(r.norm);
  return rc;
}

/* ---------------------------------------------------------------- inputs */

int wv_osv_import_json(wv_osv_import_t *imp, const char *origin, const char *data, size_t len) {
  json_object *doc = NULL;
  char err[200];
  imp->stats.files++;
  if (wv_json_parse(data, len, WV_OSV_FILE_MAX, 0, &doc, err, sizeof err)) {
    imp->stats.read++;
    imp->stats.rejected++;
    say(imp, "%s: %s", origin, err);
    return 0;
  }
  int rc = 0;
  if (json_object_is_type(doc, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(doc) && !rc; i++)
      rc = import_record(imp, json_object_array_get_idx(doc, i), origin);
  } else {
    rc = import_record(imp, doc, origin);
  }
  json_object_put(doc);
  return rc;
}

static int import_file(wv_osv_import_t *imp, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0)
      close(fd);
    imp->stats.rejected++;
    say(imp, "%s: cannot be read", path);
    return 0;
  }
  if ((uint64_t)st.st_size > WV_OSV_FILE_MAX) {
    close(fd);
    imp->stats.files++;
    imp->stats.rejected++;
    say(imp, "%s: larger than %u bytes", path, WV_OSV_FILE_MAX);
    return 0;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (buf && got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  if (!buf)
    return WV_ENOMEM;
  int rc = wv_osv_import_json(imp, path, buf, got);
  free(buf);
  return rc;
}

static int import_dir(wv_osv_import_t *imp, const char *path, int depth) {
  if (depth > MAX_DEPTH) {
    say(imp, "%s: deeper than %d directories, skipped", path, MAX_DEPTH);
    return 0;
  }
  DIR *d = opendir(path);
  if (!d) {
    say(imp, "%s: cannot be opened", path);
    return depth == 0 ? WV_EIO : 0;
  }
  int rc = 0;
  struct dirent *e;
  while (!rc && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char child[4096];
    if (snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= (int)sizeof child)
      continue;
    struct stat st;
    if (lstat(child, &st) != 0)
      continue;
    size_t nl = strlen(e->d_name);
    if (S_ISDIR(st.st_mode))
      rc = import_dir(imp, child, depth + 1);
    else if (S_ISREG(st.st_mode) && nl > 5 && strcmp(e->d_name + nl - 5, ".json") == 0)
      rc = import_file(imp, child);
  }
  closedir(d);
  return rc;
}

typedef struct {
  wv_osv_import_t *imp;
  const char *zip;
} zip_ctx;

static int zip_member(void *arg, const char *name, const char *data, size_t len) {
  zip_ctx *z = arg;
  char origin[1200];
  snprintf(origin, sizeof origin, "%s:%s", z->zip, name);
  return wv_osv_import_json(z->imp, origin, data, len);
}

static void zip_skip(void *arg, const char *name, const char *reason) {
  zip_ctx *z = arg;
  z->imp->stats.files++;
  z->imp->stats.rejected++;
  say(z->imp, "%s:%s: %s", z->zip, name, reason);
}

int wv_osv_import_path(wv_osv_import_t *imp, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    say(imp, "%s: no such file or directory", path);
    return WV_EIO;
  }
  if (S_ISDIR(st.st_mode))
    return import_dir(imp, path, 0);
  size_t n = strlen(path);
  if (n > 4 && strcasecmp(path + n - 4, ".zip") == 0) {
    zip_ctx z = {imp, path};
    char err[256];
    int rc = wv_zip_each(path, ".json", WV_OSV_FILE_MAX, zip_member, zip_skip, &z, err, sizeof err);
    if (rc && *err)
      say(imp, "%s: %s", path, err);
    return rc == WV_EPARSE || rc == WV_ETOOBIG ? WV_EIO : rc;
  }
  return import_file(imp, path);
}

/* ---------------------------------------------------------------- lifecycle */

int wv_osv_import_commit(wv_osv_import_t *imp) {
  wv_buf_t b;
  int rc = 0;
  wv_buf_init(&b, WV_STORE_VALUE_MAX);
  for (size_t i = 0; i < imp->nlists && !rc; i++) {
    idlist_t *l = &imp->lists[i];
    if (!l->dirty)
      continue;
    if (l->n == 0) {
      rc = submit(imp, WV_STORE_DEL, l->key, NULL, 0);
    } else {
      wv_buf_reset(&b);
      rc = wv_buf_putc(&b, '[');
      for (size_t k = 0; k < l->n && !rc; k++)
        rc = wv_buf_printf(&b, "%s\"%s\"", k ? "," : "", l->ids[k]);
      if (!rc)
        rc = wv_buf_putc(&b, ']');
      if (!rc)
        rc = submit(imp, WV_STORE_PUT, l->key, b.data, b.len);
    }
    l->dirty = rc != 0;
  }
  wv_buf_free(&b);
  int wrc = wait_all(imp);
  return rc ? rc : wrc;
}

int wv_osv_import_new(wv_osv_import_t **out, wv_store_t *st, wv_osv_msg_cb msg, void *arg) {
  if (!out || !st)
    return WV_EINVAL;
  wv_osv_import_t *imp = calloc(1, sizeof *imp);
  if (!imp)
    return WV_ENOMEM;
  imp->a = wv_arena_new(1u << 30);
  if (!imp->a) {
    free(imp);
    return WV_ENOMEM;
  }
  imp->st = st;
  imp->msg = msg;
  imp->msg_arg = arg;
  pthread_mutex_init(&imp->mu, NULL);
  pthread_cond_init(&imp->cv, NULL);
  *out = imp;
  return 0;
}

void wv_osv_import_free(wv_osv_import_t *imp) {
  if (!imp)
    return;
  wait_all(imp); /* callbacks still point at imp */
  for (size_t i = 0; i < imp->nlists; i++)
    free(imp->lists[i].ids);
  free(imp->lists);
  free(imp->seen);
  wv_intmap_free(&imp->lists_map);
  wv_intmap_free(&imp->seen_map);
  wv_arena_free(imp->a);
  pthread_mutex_destroy(&imp->mu);
  pthread_cond_destroy(&imp->cv);
  free(imp);
}

void wv_osv_import_stats(const wv_osv_import_t *imp, wv_osv_stats_t *out) { *out = imp->stats; }

int wv_osv_import(wv_store_t *st, const char *path, wv_osv_stats_t *stats, wv_osv_msg_cb msg,
                  void *arg) {
  wv_osv_import_t *imp;
  int rc = wv_osv_import_new(&imp, st, msg, arg);
  if (rc)
    return rc;
  rc = wv_osv_import_path(imp, path);
  int crc = wv_osv_import_commit(imp); /* what was read before a failure still lands */
  if (stats)
    wv_osv_import_stats(imp, stats);
  wv_osv_import_free(imp);
  return rc ? rc : crc;
}

static void print_msg(void *arg, const char *msg) {
  (void)arg;
  fprintf(stderr, "waved: import-osv: %s\n", msg);
}

int wv_osv_import_main(const char *storage_path, uint64_t map_size, const char *path) {
  char dir[4096];
  wv_store_t *st = NULL;
  wv_osv_stats_t s = {0};
  if (mkdir(storage_path, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "waved: cannot create %s: %s\n", storage_path, strerror(errno));
    return 1;
  }
  snprintf(dir, sizeof dir, "%s/state", storage_path);
  int rc = wv_store_open(&st, dir, map_size, 0);
  if (rc) {
    fprintf(stderr, "waved: cannot open the state store in %s: %s\n", dir, wv_strerror(rc));
    return 1;
  }
  rc = wv_osv_import(st, path, &s, print_msg, NULL);
  wv_store_close(st);
  printf("import-osv %s: %zu files, %zu records read, %zu imported, %zu unchanged, %zu withdrawn, "
         "%zu ignored, %zu rejected%s%s\n",
         path, s.files, s.read, s.imported, s.unchanged, s.withdrawn, s.ignored, s.rejected,
         rc ? ": " : "", rc ? wv_strerror(rc) : "");
  return rc ? 1 : 0;
}
