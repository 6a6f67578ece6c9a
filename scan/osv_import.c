/*
 * scan/osv_import.c — importing OSV records into the state store.
 *
 * DESIGN. Records are validated and normalised one by one and their "r/<id>"
 * writes are queued asynchronously to the store's group committer (at most
 * MAX_INFLIGHT outstanding), so an import of 100k records costs a few
 * hundred transactions, not 100k fsyncs. The package index ("p/<eco>/<name>"
 * → ids) is read-modify-write, so it is kept in memory for the whole run —
 * each list loaded from the store the first time it is touched — and written
 * once at commit. Records seen earlier in the same run are remembered (id →
 * modified, index keys) so a duplicate never reads a stale store value.
 */
#include "scan/osv.h"

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "scan/strmap.h"
#include "scan/zip.h"

#include <ctype.h>
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
#define ID_MAX 200
#define TITLE_MAX 200

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
  wv_strmap_t lists_map, seen_map;
  idlist_t *lists;
  size_t nlists, caplists;
  seen_t *seen;
  size_t nseen, capseen;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t inflight;
  int write_err;
};

/* A validated record on its way in. */
typedef struct {
  const char *id, *modified;
  bool withdrawn;
  json_object *norm; /* NULL when nothing can be matched */
  const char *keys[64];
  size_t nkeys;
} rec_t;

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
  int i = wv_strmap_get(&imp->lists_map, key);
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
    rc = wv_strmap_put(&imp->lists_map, l->key, (int)imp->nlists);
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

/* ---------------------------------------------------------------- normalisation */

static const char *const known_ecos[] = {
    "Debian",    "Ubuntu",  "Alpine", "Wolfi",    "Chainguard",   "PyPI",
    "CRAN",      "conda",   "npm",    "Go",       "crates.io",    "Hex",
    "Pub",       "NuGet",   "Maven",  "RubyGems", "Packagist",    "Rocky Linux",
    "AlmaLinux", "Red Hat", "SUSE",   "openSUSE", "Bioconductor",
};

/* Canonical spelling of the ecosystem's base name (before ':'), into buf with the suffix. */
static void canonical_eco(const char *eco, char *base, size_t bn, char *full, size_t fn) {
  size_t bl = strcspn(eco, ":");
  const char *canon = NULL;
  for (size_t i = 0; i < sizeof known_ecos / sizeof known_ecos[0] && !canon; i++)
    if (strlen(known_ecos[i]) == bl && strncasecmp(eco, known_ecos[i], bl) == 0)
      canon = known_ecos[i];
  snprintf(base, bn, "%.*s", (int)bl, canon ? canon : eco);
  snprintf(full, fn, "%s%s", base, eco + bl);
}

/* The name as the index and the matcher spell it. */
static void index_name(const char *eco_base, const char *name, char *out, size_t n) {
  size_t o = 0;
  bool pypi = strcmp(eco_base, "PyPI") == 0, conda = strcmp(eco_base, "conda") == 0;
  for (const char *s = name; *s && o + 1 < n; s++) {
    char c = *s;
    if (pypi && (c == '-' || c == '_' || c == '.')) {
      if (o == 0 || out[o - 1] != '-')
        out[o++] = '-';
      continue;
    }
    out[o++] = (pypi || conda) ? (char)tolower((unsigned char)c) : c;
  }
  out[o] = '\0';
}

static int bad(char *why, size_t wl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t wl, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, wl, fmt, ap);
  va_end(ap);
  return WV_EPARSE;
}

/* Validates one range; *keep = false for ranges waved never evaluates (GIT). */
static int check_range(json_object *r, wv_vscheme_t eco_scheme, size_t ai, bool *keep, char *why,
                       size_t wl) {
  static const char *const names[] = {"introduced", "fixed", "last_affected", "limit"};
  const char *type;
  json_object *evs;
  *keep = false;
  if (!json_object_is_type(r, json_type_object) || wv_json_get_str(r, "type", &type) ||
      wv_json_get_array(r, "events", &evs))
    return bad(why, wl, "affected[%zu]: a range lacks its type or events", ai);
  wv_vscheme_t s = strcmp(type, "SEMVER") == 0      ? WV_VER_SEMVER
                   : strcmp(type, "ECOSYSTEM") == 0 ? eco_scheme
                                                    : WV_VER_NONE;
  if (json_object_array_length(evs) > 256)
    return bad(why, wl, "affected[%zu]: too many events", ai);
  for (size_t i = 0; i < json_object_array_length(evs); i++) {
    json_object *e = json_object_array_get_idx(evs, i);
    int found = 0;
    const char *v = NULL;
    for (int j = 0; j < 4; j++) {
      const char *x;
      int rc = wv_json_get_str(e, names[j], &x);
      if (rc == WV_EINVAL)
        return bad(why, wl, "affected[%zu]: event '%s' is not a string", ai, names[j]);
      if (rc == 0)
        found++, v = x;
    }
    if (found != 1)
      return bad(why, wl,
                 "affected[%zu]: an event needs exactly one of introduced, fixed, "
                 "last_affected, limit",
                 ai);
    if (s != WV_VER_NONE && strcmp(v, "0") != 0 && strcmp(v, "*") != 0 && !wv_version_valid(s, v))
      return bad(why, wl, "affected[%zu]: '%s' is not a valid %s version", ai, v,
                 wv_version_scheme_name(s));
  }
  *keep = strcmp(type, "GIT") != 0 && json_object_array_length(evs) > 0;
  return 0;
}

/* Validates affected[ai] and appends its matchable part to out (and its index key). */
static int check_affected(wv_arena_t *ar, json_object *a, size_t ai, json_object *out, rec_t *r,
                          char *why, size_t wl) {
  json_object *pkg, *ranges = NULL, *versions = NULL;
  const char *eco, *name;
  if (!json_object_is_type(a, json_type_object))
    return bad(why, wl, "affected[%zu] is not an object", ai);
  int rc = wv_json_get_object(a, "package", &pkg);
  if (rc == WV_ENOTFOUND)
    return 0; /* a GIT-only entry: nothing to match in an image */
  if (rc || wv_json_get_str(pkg, "ecosystem", &eco) || wv_json_get_str(pkg, "name", &name) ||
      !*eco || !*name)
    return bad(why, wl, "affected[%zu].package needs an ecosystem and a name", ai);
  if ((rc = wv_json_get_array(a, "ranges", &ranges)) == WV_EINVAL ||
      (wv_json_get_array(a, "versions", &versions)) == WV_EINVAL)
    return bad(why, wl, "affected[%zu]: ranges and versions must be arrays", ai);
  char base[64], full[128], iname[256], key[WV_STORE_KEY_MAX + 2];
  canonical_eco(eco, base, sizeof base, full, sizeof full);
  index_name(base, name, iname, sizeof iname);
  wv_vscheme_t scheme = wv_version_scheme_of(base);
  json_object *kept = json_object_new_array();
  for (size_t i = 0; ranges && i < json_object_array_length(ranges); i++) {
    json_object *rg = json_object_array_get_idx(ranges, i);
    bool keep;
    if ((rc = check_range(rg, scheme, ai, &keep, why, wl))) {
      json_object_put(kept);
      return rc;
    }
    if (keep)
      json_object_array_add(kept, json_object_get(rg));
  }
  size_t nv = versions ? json_object_array_length(versions) : 0;
  for (size_t i = 0; i < nv; i++)
    if (!json_object_is_type(json_object_array_get_idx(versions, i), json_type_string)) {
      json_object_put(kept);
      return bad(why, wl, "affected[%zu]: versions must be strings", ai);
    }
  if (json_object_array_length(kept) == 0 && nv == 0) {
    json_object_put(kept);
    return 0;
  }
  if (snprintf(key, sizeof key, "p/%s/%s", base, iname) > WV_STORE_KEY_MAX) {
    json_object_put(kept);
    return bad(why, wl, "affected[%zu]: package name too long", ai);
  }
  json_object *e = json_object_new_object(), *p = json_object_new_object();
  json_object_object_add(p, "ecosystem", json_object_new_string(full));
  json_object_object_add(p, "name", json_object_new_string(iname));
  json_object_object_add(e, "package", p);
  json_object_object_add(e, "ranges", kept);
  if (nv)
    json_object_object_add(e, "versions", json_object_get(versions));
  json_object_array_add(out, e);
  for (size_t i = 0; i < r->nkeys; i++)
    if (strcmp(r->keys[i], key) == 0)
      return 0;
  if (r->nkeys == sizeof r->keys / sizeof r->keys[0])
    return bad(why, wl, "more than %zu affected packages", r->nkeys);
  if (!(r->keys[r->nkeys] = wv_arena_strdup(ar, key)))
    return WV_ENOMEM;
  r->nkeys++;
  return 0;
}

/* First vector of the given type in a severity[] array, or NULL. */
static const char *sev_entry(json_object *o, const char *type) {
  json_object *arr;
  if (wv_json_get_array(o, "severity", &arr))
    return NULL;
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    json_object *e = json_object_array_get_idx(arr, i);
    const char *t, *score;
    if (!wv_json_get_str(e, "type", &t) && !wv_json_get_str(e, "score", &score) &&
        (type ? strcmp(t, type) == 0 : strncmp(t, "CVSS_", 5) != 0))
      return score;
  }
  return NULL;
}

static const char *db_specific_severity(json_object *o) {
  json_object *d;
  const char *s;
  if ((!wv_json_get_object(o, "database_specific", &d) && !wv_json_get_str(d, "severity", &s)) ||
      (!wv_json_get_object(o, "ecosystem_specific", &d) && !wv_json_get_str(d, "severity", &s)))
    return s;
  return NULL;
}

/*
 * Severity, in this order: a CVSS v3 vector (record, then affected[]); the
 * database's own word (a non-CVSS severity entry, database_specific or
 * ecosystem_specific); a CVSS v2 vector; else UNKNOWN.
 */
static void severity_of(json_object *rec, wv_severity_t *lvl, double *score) {
  json_object *affs = NULL;
  size_t na = wv_json_get_array(rec, "affected", &affs) ? 0 : json_object_array_length(affs);
  *lvl = WV_SEV_UNKNOWN;
  *score = 0;
  for (size_t i = 0; i <= na; i++) {
    json_object *o = i == 0 ? rec : json_object_array_get_idx(affs, i - 1);
    const char *v = sev_entry(o, "CVSS_V3");
    if (v && wv_cvss3_base_score(v, score) == 0) {
      *lvl = wv_severity_of_cvss3(*score);
      return;
    }
  }
  for (size_t i = 0; i <= na; i++) {
    json_object *o = i == 0 ? rec : json_object_array_get_idx(affs, i - 1);
    const char *w = sev_entry(o, NULL);
    wv_severity_t s = wv_severity_parse(w ? w : db_specific_severity(o));
    if (s != WV_SEV_UNKNOWN) {
      *lvl = s;
      return;
    }
  }
  for (size_t i = 0; i <= na; i++) {
    json_object *o = i == 0 ? rec : json_object_array_get_idx(affs, i - 1);
    const char *v = sev_entry(o, "CVSS_V2");
    if (v && wv_cvss2_base_score(v, score) == 0) {
      *lvl = *score >= 7.0 ? WV_SEV_HIGH : *score >= 4.0 ? WV_SEV_MEDIUM : WV_SEV_LOW;
      return;
    }
  }
}

/* The CVE id among id, aliases and upstream (Trivy reports CVE ids), else the id. */
static const char *display_id(json_object *rec, const char *id) {
  static const char *const lists[] = {"aliases", "upstream"};
  if (strncmp(id, "CVE-", 4) == 0)
    return id;
  for (int l = 0; l < 2; l++) {
    json_object *arr;
    if (wv_json_get_array(rec, lists[l], &arr))
      continue;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
      const char *s = json_object_get_string(json_object_array_get_idx(arr, i));
      if (s && strncmp(s, "CVE-", 4) == 0)
        return s;
    }
  }
  return id;
}

static void title_of(json_object *rec, char *out, size_t n) {
  const char *s = "";
  if (wv_json_get_str(rec, "summary", &s) || !*s)
    if (wv_json_get_str(rec, "details", &s))
      s = "";
  size_t l = strcspn(s, "\r\n");
  if (l > TITLE_MAX)
    l = TITLE_MAX;
  snprintf(out, n, "%.*s", (int)l, s);
}

/* Trivy's primary URL for CVEs, else the advisory reference, else the OSV page. */
static void url_of(json_object *rec, const char *id, const char *display, char *out, size_t n) {
  if (strncmp(display, "CVE-", 4) == 0) {
    size_t o = (size_t)snprintf(out, n, "https://avd.aquasec.com/nvd/");
    for (const char *s = display; *s && o + 1 < n; s++)
      out[o++] = (char)tolower((unsigned char)*s);
    out[o] = '\0';
    return;
  }
  json_object *refs;
  const char *first = NULL;
  if (wv_json_get_array(rec, "references", &refs) == 0) {
    for (size_t i = 0; i < json_object_array_length(refs); i++) {
      json_object *r = json_object_array_get_idx(refs, i);
      const char *t = "", *u;
      if (wv_json_get_str(r, "url", &u))
        continue;
      wv_json_get_str(r, "type", &t);
      if (strcmp(t, "ADVISORY") == 0) {
        snprintf(out, n, "%s", u);
        return;
      }
      if (!first)
        first = u;
    }
  }
  if (first)
    snprintf(out, n, "%s", first);
  else
    snprintf(out, n, "https://osv.dev/vulnerability/%s", id);
}

static bool id_ok(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > ID_MAX)
    return false;
  for (const char *p = id; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == '/' || *p == '"' || *p == '\\')
      return false;
  return true;
}

/* Validates rec and builds r->norm (NULL when nothing can be matched). */
static int normalise(wv_osv_import_t *imp, json_object *rec, rec_t *r, char *why, size_t wl) {
  json_object *affs = NULL;
  memset(r, 0, sizeof *r);
  if (!json_object_is_type(rec, json_type_object))
    return bad(why, wl, "not a JSON object");
  if (wv_json_get_str(rec, "id", &r->id) || !id_ok(r->id))
    return bad(why, wl, "missing or invalid \"id\"");
  if (wv_json_get_str(rec, "modified", &r->modified) == WV_EINVAL)
    return bad(why, wl, "\"modified\" is not a string");
  const char *w;
  r->withdrawn = wv_json_get_str(rec, "withdrawn", &w) == 0;
  int rc = wv_json_get_array(rec, "affected", &affs);
  if (rc == WV_EINVAL)
    return bad(why, wl, "\"affected\" is not an array");
  json_object *out = json_object_new_array();
  for (size_t i = 0; affs && i < json_object_array_length(affs); i++)
    if ((rc = check_affected(imp->a, json_object_array_get_idx(affs, i), i, out, r, why, wl))) {
      json_object_put(out);
      return rc;
    }
  if (json_object_array_length(out) == 0) {
    json_object_put(out);
    return 0;
  }
  wv_severity_t lvl;
  double score;
  char title[TITLE_MAX + 1], url[512];
  severity_of(rec, &lvl, &score);
  const char *display = display_id(rec, r->id);
  title_of(rec, title, sizeof title);
  url_of(rec, r->id, display, url, sizeof url);
  json_object *n = json_object_new_object();
  json_object_object_add(n, "id", json_object_new_string(r->id));
  json_object_object_add(n, "modified", json_object_new_string(r->modified ? r->modified : ""));
  json_object_object_add(n, "display", json_object_new_string(display));
  json_object_object_add(n, "title", json_object_new_string(title));
  json_object_object_add(n, "severity", json_object_new_string(wv_severity_name(lvl)));
  json_object_object_add(n, "score", json_object_new_double(score));
  json_object_object_add(n, "url", json_object_new_string(url));
  json_object_object_add(n, "affected", out);
  r->norm = n;
  return 0;
}

/* ---------------------------------------------------------------- records */

/* What is stored for id: modified and index keys (from this run, or from the store). */
static int previous(wv_osv_import_t *imp, const char *id, bool *exists, const char **modified,
                    const char **keys) {
  int i = wv_strmap_get(&imp->seen_map, id);
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
  if (normalise(imp, o, &old, why, sizeof why) == 0) {
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
      wv_strmap_put(&imp->seen_map, k, (int)imp->nseen))
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
  if (normalise(imp, rec, &r, why, sizeof why)) {
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
  wv_strmap_free(&imp->lists_map);
  wv_strmap_free(&imp->seen_map);
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
