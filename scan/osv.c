/*
 * scan/osv.c — severity (CVSS v3/v2 base scores, database words), the OSV
 * "affected" evaluation, and matching an inventory against the store.
 * The import lives in osv_import.c.
 */
#include "scan/osv.h"

#include "core/err.h"
#include "core/json.h"
#include "scan/intmap.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_EVENTS 256

/* ---------------------------------------------------------------- severity */

const char *wv_osv_severity_name(wv_osv_severity_t s) {
  static const char *const n[] = {"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"};
  return (unsigned)s <= WV_OSV_SEV_CRITICAL ? n[s] : "UNKNOWN";
}

wv_osv_severity_t wv_osv_severity_parse(const char *w) {
  static const struct {
    const char *word;
    wv_osv_severity_t s;
  } map[] = {
      {"critical", WV_OSV_SEV_CRITICAL}, {"high", WV_OSV_SEV_HIGH},
      {"important", WV_OSV_SEV_HIGH},    {"medium", WV_OSV_SEV_MEDIUM},
      {"moderate", WV_OSV_SEV_MEDIUM},   {"low", WV_OSV_SEV_LOW},
      {"negligible", WV_OSV_SEV_LOW},    {"unimportant", WV_OSV_SEV_LOW},
      {"minor", WV_OSV_SEV_LOW},
  };
  if (!w)
    return WV_OSV_SEV_UNKNOWN;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcasecmp(w, map[i].word) == 0)
      return map[i].s;
  return WV_OSV_SEV_UNKNOWN;
}

wv_osv_severity_t wv_osv_severity_of_cvss3(double s) {
  return s >= 9.0   ? WV_OSV_SEV_CRITICAL
         : s >= 7.0 ? WV_OSV_SEV_HIGH
         : s >= 4.0 ? WV_OSV_SEV_MEDIUM
                    : WV_OSV_SEV_LOW;
}

/* One metric "K:V" of a vector: the weight of V among vals, or -1. */
typedef struct {
  const char *key;
  const char *vals; /* one letter per value */
  double w[4];
  double got;
  int seen;
} metric_t;

/* Splits "CVSS:3.1/AV:N/..." into metrics; unknown keys (temporal, environmental) are ignored. */
static int parse_vector(const char *v, metric_t *m, size_t nm, char *scope) {
  const char *p = v;
  if (strncmp(p, "CVSS:", 5) == 0) {
    p = strchr(p, '/');
    if (!p)
      return WV_EPARSE;
    p++;
  }
  while (*p) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p || (size_t)(colon - p) + 2 != n)
      return WV_EPARSE;
    size_t kl = (size_t)(colon - p);
    char val = colon[1];
    for (size_t i = 0; i < nm; i++) {
      if (strlen(m[i].key) != kl || strncmp(m[i].key, p, kl) != 0)
        continue;
      const char *w = strchr(m[i].vals, val);
      if (!w || m[i].seen++)
        return WV_EPARSE;
      m[i].got = m[i].w[w - m[i].vals];
      if (scope && strcmp(m[i].key, "S") == 0)
        *scope = val;
    }
    p += n;
    if (*p == '/')
      p++;
  }
  for (size_t i = 0; i < nm; i++)
    if (m[i].seen != 1)
      return WV_EPARSE;
  return 0;
}

/* CVSS v3.1 Roundup: the smallest one-decimal number >= x, robust to float error. */
static double roundup(double x) {
  long long i = llround(x * 100000.0);
  return i % 10000 == 0 ? (double)i / 100000.0 : (double)(i / 10000 + 1) / 10.0;
}

int wv_osv_cvss3_base_score(const char *vector, double *score) {
  metric_t m[] = {
      {"AV", "NALP", {0.85, 0.62, 0.55, 0.2}, 0, 0},
      {"AC", "LH", {0.77, 0.44}, 0, 0},
      {"PR", "NLH", {0.85, 0.62, 0.27}, 0, 0},
      {"UI", "NR", {0.85, 0.62}, 0, 0},
      {"S", "UC", {0, 1}, 0, 0},
      {"C", "HLN", {0.56, 0.22, 0}, 0, 0},
      {"I", "HLN", {0.56, 0.22, 0}, 0, 0},
      {"A", "HLN", {0.56, 0.22, 0}, 0, 0},
  };
  char scope = 'U';
  if (!vector || strncmp(vector, "CVSS:3.", 7) != 0 ||
      parse_vector(vector, m, sizeof m / sizeof m[0], &scope))
    return WV_EPARSE;
  bool changed = scope == 'C';
  double pr = m[2].got;
  if (changed && m[2].got == 0.62)
    pr = 0.68; /* PR:L under a changed scope */
  else if (changed && m[2].got == 0.27)
    pr = 0.5; /* PR:H under a changed scope */
  double iss = 1 - (1 - m[5].got) * (1 - m[6].got) * (1 - m[7].got);
  double impact = changed ? 7.52 * (iss - 0.029) - 3.25 * pow(iss - 0.02, 15) : 6.42 * iss;
  double expl = 8.22 * m[0].got * m[1].got * pr * m[3].got;
  if (impact <= 0)
    *score = 0;
  else if (changed)
    *score = roundup(fmin(1.08 * (impact + expl), 10));
  else
    *score = roundup(fmin(impact + expl, 10));
  return 0;
}

int wv_osv_cvss2_base_score(const char *vector, double *score) {
  metric_t m[] = {
      {"AV", "LAN", {0.395, 0.646, 1.0}, 0, 0}, {"AC", "HML", {0.35, 0.61, 0.71}, 0, 0},
      {"Au", "MSN", {0.45, 0.56, 0.704}, 0, 0}, {"C", "NPC", {0, 0.275, 0.660}, 0, 0},
      {"I", "NPC", {0, 0.275, 0.660}, 0, 0},    {"A", "NPC", {0, 0.275, 0.660}, 0, 0},
  };
  if (!vector || parse_vector(vector, m, sizeof m / sizeof m[0], NULL))
    return WV_EPARSE;
  double impact = 10.41 * (1 - (1 - m[3].got) * (1 - m[4].got) * (1 - m[5].got));
  double expl = 20 * m[0].got * m[1].got * m[2].got;
  double f = impact == 0 ? 0 : 1.176;
  *score = round(((0.6 * impact) + (0.4 * expl) - 1.5) * f * 10) / 10;
  if (*score < 0)
    *score = 0;
  return 0;
}

/* ---------------------------------------------------------------- affected */

enum { EV_INTRODUCED, EV_FIXED, EV_LAST_AFFECTED, EV_LIMIT };

typedef struct {
  int kind;
  const char *v;
  bool bottom, top; /* introduced "0" / limit "*" */
} event_t;

static int ev_cmp(wv_vscheme_t s, const event_t *a, const event_t *b, int *c) {
  if (a->bottom || b->bottom || a->top || b->top) {
    int ra = a->bottom ? -1 : a->top ? 1 : 0, rb = b->bottom ? -1 : b->top ? 1 : 0;
    *c = ra < rb ? -1 : ra > rb;
    return 0;
  }
  return wv_version_compare(s, a->v, b->v, c);
}

/* Reads a range's events; returns the count or a negative code. */
static int read_events(const json_object *evs, event_t *ev) {
  static const char *const names[] = {"introduced", "fixed", "last_affected", "limit"};
  size_t n = json_object_array_length(evs);
  if (n > MAX_EVENTS)
    return WV_ETOOBIG;
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx(evs, i);
    int k = -1;
    const char *v = NULL;
    for (int j = 0; j < 4 && k < 0; j++)
      if (wv_json_get_str(e, names[j], &v) == 0)
        k = j;
    if (k < 0)
      return WV_EPARSE;
    ev[i] = (event_t){k, v, k == EV_INTRODUCED && strcmp(v, "0") == 0,
                      k == EV_LIMIT && strcmp(v, "*") == 0};
  }
  return (int)n;
}

/* Insertion sort by version (ranges have a handful of events). */
static int sort_events(wv_vscheme_t s, event_t *ev, int n) {
  for (int i = 1; i < n; i++) {
    event_t x = ev[i];
    int j = i - 1, c = 0, rc;
    while (j >= 0 && !(rc = ev_cmp(s, &ev[j], &x, &c)) && c > 0) {
      ev[j + 1] = ev[j];
      j--;
    }
    if (rc)
      return rc;
    ev[j + 1] = x;
  }
  return 0;
}

static int range_hit(wv_vscheme_t s, event_t *ev, int n, const char *version, bool *hit,
                     const char **fixed) {
  int rc = sort_events(s, ev, n);
  if (rc)
    return rc;
  event_t me = {EV_INTRODUCED, version, false, false};
  bool in = false;
  for (int i = 0; i < n; i++) {
    int c;
    if ((rc = ev_cmp(s, &me, &ev[i], &c)))
      return rc;
    if (ev[i].kind == EV_INTRODUCED && c >= 0)
      in = true;
    else if ((ev[i].kind == EV_FIXED || ev[i].kind == EV_LIMIT) && c >= 0)
      in = false;
    else if (ev[i].kind == EV_LAST_AFFECTED && c > 0)
      in = false;
  }
  *hit = in;
  for (int i = 0; in && fixed && i < n; i++) {
    int c;
    if (ev[i].kind == EV_FIXED && !ev_cmp(s, &me, &ev[i], &c) && c < 0) {
      *fixed = ev[i].v;
      break;
    }
  }
  return 0;
}

int wv_osv_affected(const json_object *aff, wv_vscheme_t scheme, const char *version, bool *hit,
                    const char **fixed) {
  json_object *ranges, *versions;
  event_t ev[MAX_EVENTS];
  int rc = 0;
  *hit = false;
  if (fixed)
    *fixed = NULL;
  if (wv_json_get_array(aff, "ranges", &ranges) == 0) {
    for (size_t i = 0; i < json_object_array_length(ranges) && !*hit; i++) {
      json_object *r = json_object_array_get_idx(ranges, i), *evs;
      const char *type;
      if (wv_json_get_str(r, "type", &type) || wv_json_get_array(r, "events", &evs))
        continue;
      wv_vscheme_t s = strcmp(type, "SEMVER") == 0      ? WV_VER_SEMVER
                       : strcmp(type, "ECOSYSTEM") == 0 ? scheme
                                                        : WV_VER_NONE;
      if (s == WV_VER_NONE)
        continue;
      int n = read_events(evs, ev);
      if (n < 0) {
        rc = n;
        continue;
      }
      int r2 = range_hit(s, ev, n, version, hit, fixed);
      if (r2)
        rc = r2, *hit = false;
    }
  }
  if (!*hit && wv_json_get_array(aff, "versions", &versions) == 0) {
    for (size_t i = 0; i < json_object_array_length(versions) && !*hit; i++) {
      const char *v = json_object_get_string(json_object_array_get_idx(versions, i));
      *hit = v && strcmp(v, version) == 0;
    }
  }
  return *hit ? 0 : rc;
}

/* ---------------------------------------------------------------- matching */

/* Does an OSV ecosystem ("Debian:12") apply to a package of eco on release os_version? */
static bool eco_applies(const char *osv_eco, const char *eco, const char *os_version) {
  size_t bl = strcspn(osv_eco, ":");
  if (bl != strlen(eco) || strncasecmp(osv_eco, eco, bl) != 0)
    return false;
  if (!osv_eco[bl] || !os_version || !*os_version)
    return true;
  const char *rel = osv_eco + bl + 1;
  if (*rel == 'v' || *rel == 'V')
    rel++;
  size_t rl = strcspn(rel, ":"); /* "Ubuntu:22.04:LTS" */
  return strncmp(rel, os_version, rl) == 0 && (os_version[rl] == '\0' || os_version[rl] == '.');
}

/* The name the advisories of pkg's ecosystem use, into buf. */
static const char *lookup_name(const wv_pkg_t *p, char *buf, size_t n) {
  const char *name =
      (p->type == WV_ECO_DEB || p->type == WV_ECO_APK) && p->src_name ? p->src_name : p->name;
  size_t o = 0;
  for (const char *s = name; *s && o + 1 < n; s++) {
    char c = *s;
    if (p->type == WV_ECO_PYPI && (c == '-' || c == '_' || c == '.')) {
      if (o == 0 || buf[o - 1] != '-')
        buf[o++] = '-';
      continue;
    }
    buf[o++] =
        (p->type == WV_ECO_PYPI || p->type == WV_ECO_CONDA) ? (char)tolower((unsigned char)c) : c;
  }
  buf[o] = '\0';
  return buf;
}

typedef struct {
  wv_store_t *st;
  wv_arena_t *a;
  wv_intmap_t cache; /* store key → index in objs (record or index list) */
  json_object **objs;
  size_t nobjs, capobjs;
  wv_osv_vuln_t *v;
  size_t n, cap;
} match_t;

/* A parsed store value, cached for the whole match (NULL when absent or unparsable). */
static int cached_get(match_t *m, const char *key, json_object **out) {
  int i = wv_intmap_get(&m->cache, key);
  if (i >= 0) {
    *out = m->objs[i];
    return 0;
  }
  char *val = NULL;
  size_t len = 0;
  int rc = wv_store_get(m->st, WV_DB_VULNS, key, &val, &len, NULL);
  json_object *o = NULL;
  if (rc == 0) {
    char err[64];
    if (wv_json_parse(val, len, WV_STORE_VALUE_MAX, 0, &o, err, sizeof err))
      o = NULL;
  } else if (rc != WV_ENOTFOUND) {
    return rc;
  }
  free(val);
  if (m->nobjs == m->capobjs) {
    size_t nc = m->capobjs ? m->capobjs * 2 : 64;
    json_object **no = realloc(m->objs, nc * sizeof *no);
    if (!no) {
      json_object_put(o);
      return WV_ENOMEM;
    }
    m->objs = no, m->capobjs = nc;
  }
  char *k = wv_arena_strdup(m->a, key);
  if (!k || wv_intmap_put(&m->cache, k, (int)m->nobjs)) {
    json_object_put(o);
    return WV_ENOMEM;
  }
  m->objs[m->nobjs++] = o;
  *out = o;
  return 0;
}

static const char *rec_str(json_object *rec, const char *key) {
  const char *s;
  return wv_json_get_str(rec, key, &s) == 0 ? s : "";
}

static int add_finding(match_t *m, json_object *rec, const wv_pkg_t *p, const char *fixed) {
  if (m->n == m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 64;
    wv_osv_vuln_t *nv = realloc(m->v, nc * sizeof *nv);
    if (!nv)
      return WV_ENOMEM;
    m->v = nv, m->cap = nc;
  }
  double score = 0;
  wv_json_get_double(rec, "score", &score);
  wv_osv_vuln_t *v = &m->v[m->n];
  *v = (wv_osv_vuln_t){
      .id = wv_arena_strdup(m->a, rec_str(rec, "display")),
      .osv_id = wv_arena_strdup(m->a, rec_str(rec, "id")),
      .level = wv_osv_severity_parse(rec_str(rec, "severity")),
      .score = score,
      .title = wv_arena_strdup(m->a, rec_str(rec, "title")),
      .pkg_name = p->name,
      .installed_version = p->version,
      .fixed_version = wv_arena_strdup(m->a, fixed ? fixed : ""),
      .primary_url = wv_arena_strdup(m->a, rec_str(rec, "url")),
      .ecosystem = p->ecosystem,
      .path = p->path,
      .layer = p->layer,
  };
  if (!v->id || !v->osv_id || !v->title || !v->fixed_version || !v->primary_url)
    return WV_ENOMEM;
  m->n++;
  return 0;
}

/* Appends fixed to the comma list in buf (distinct values only). */
static void add_fixed(char *buf, size_t n, const char *fixed) {
  if (!fixed || strstr(buf, fixed))
    return;
  size_t l = strlen(buf);
  snprintf(buf + l, n - l, "%s%s", l ? ", " : "", fixed);
}

static int match_record(match_t *m, json_object *rec, const wv_pkg_t *p, const char *lname,
                        const char *cmpver, wv_vscheme_t scheme, const char *os_version) {
  json_object *affs;
  char fixed[512] = "";
  bool any = false;
  if (!rec || wv_json_get_array(rec, "affected", &affs))
    return 0;
  for (size_t i = 0; i < json_object_array_length(affs); i++) {
    json_object *aff = json_object_array_get_idx(affs, i), *pkg;
    const char *eco, *name;
    if (wv_json_get_object(aff, "package", &pkg) || wv_json_get_str(pkg, "ecosystem", &eco) ||
        wv_json_get_str(pkg, "name", &name))
      continue;
    if (strcmp(name, lname) != 0 || !eco_applies(eco, p->ecosystem, os_version))
      continue;
    bool hit;
    const char *fx;
    if (wv_osv_affected(aff, scheme, cmpver, &hit, &fx) == 0 && hit) {
      any = true;
      add_fixed(fixed, sizeof fixed, fx);
    }
  }
  return any ? add_finding(m, rec, p, fixed) : 0;
}

static int match_pkg(match_t *m, const wv_pkg_t *p, const char *os_version) {
  wv_vscheme_t scheme = wv_version_scheme_of(p->ecosystem);
  if (scheme == WV_VER_NONE || !p->ecosystem)
    return 0;
  char lname[256], key[WV_STORE_KEY_MAX + 1];
  lookup_name(p, lname, sizeof lname);
  const char *cmpver = p->type == WV_ECO_DEB && p->src_version ? p->src_version : p->version;
  if (snprintf(key, sizeof key, "p/%s/%s", p->ecosystem, lname) >= (int)sizeof key)
    return 0;
  json_object *ids;
  int rc = cached_get(m, key, &ids);
  if (rc || !ids || !json_object_is_type(ids, json_type_array))
    return rc;
  for (size_t i = 0; i < json_object_array_length(ids) && !rc; i++) {
    const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
    json_object *rec;
    if (!id || snprintf(key, sizeof key, "r/%s", id) >= (int)sizeof key)
      continue;
    rc = cached_get(m, key, &rec);
    if (!rc)
      rc = match_record(m, rec, p, lname, cmpver, scheme, os_version);
  }
  return rc;
}

static int by_identity(const void *x, const void *y) {
  const wv_osv_vuln_t *a = x, *b = y;
  int c = strcmp(a->id, b->id);
  if (!c)
    c = strcmp(a->pkg_name, b->pkg_name);
  if (!c)
    c = strcmp(a->installed_version, b->installed_version);
  if (!c) /* most severe first among duplicates, so it is the one kept */
    c = (int)b->level - (int)a->level;
  return c;
}

static int by_severity(const void *x, const void *y) {
  const wv_osv_vuln_t *a = x, *b = y;
  if (a->level != b->level)
    return a->level > b->level ? -1 : 1;
  if (a->score != b->score)
    return a->score > b->score ? -1 : 1;
  int c = strcmp(a->id, b->id);
  if (!c)
    c = strcmp(a->pkg_name, b->pkg_name);
  if (!c)
    c = strcmp(a->installed_version, b->installed_version);
  return c;
}

void wv_osv_vulns_sort(wv_osv_vuln_t *v, size_t n) {
  if (n > 1)
    qsort(v, n, sizeof *v, by_severity);
}

int wv_osv_match(wv_store_t *st, const wv_pkg_t *pkgs, size_t n, const char *os_id,
                 const char *os_version, wv_arena_t *a, wv_osv_vuln_t **out, size_t *nout) {
  (void)os_id; /* the ecosystem of each package already carries the distribution */
  match_t m = {.st = st, .a = a};
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++)
    rc = match_pkg(&m, &pkgs[i], os_version);
  size_t k = 0;
  if (!rc && m.n) {
    qsort(m.v, m.n, sizeof *m.v, by_identity);
    for (size_t i = 0; i < m.n; i++)
      if (k == 0 || strcmp(m.v[k - 1].id, m.v[i].id) != 0 ||
          strcmp(m.v[k - 1].pkg_name, m.v[i].pkg_name) != 0 ||
          strcmp(m.v[k - 1].installed_version, m.v[i].installed_version) != 0)
        m.v[k++] = m.v[i];
    wv_osv_vulns_sort(m.v, k);
  }
  *out = NULL;
  if (!rc && k) {
    *out = wv_arena_alloc(a, k * sizeof **out);
    if (*out)
      memcpy(*out, m.v, k * sizeof **out);
    else
      rc = WV_ENOMEM;
  }
  *nout = rc ? 0 : k;
  for (size_t i = 0; i < m.nobjs; i++)
    json_object_put(m.objs[i]);
  free(m.objs);
  free(m.v);
  wv_intmap_free(&m.cache);
  return rc;
}

/* ---------------------------------------------------------------- JSON */

static int put_str(json_object *o, const char *k, const char *v) {
  json_object *s = json_object_new_string(v ? v : "");
  if (!s)
    return WV_ENOMEM;
  json_object_object_add(o, k, s);
  return 0;
}

json_object *wv_osv_vulns_to_json(const wv_osv_vuln_t *v, size_t n, size_t limit) {
  json_object *arr = json_object_new_array();
  if (!arr)
    return NULL;
  if (limit && n > limit)
    n = limit;
  for (size_t i = 0; i < n; i++) {
    json_object *o = json_object_new_object();
    if (!o || json_object_array_add(arr, o)) {
      json_object_put(o);
      json_object_put(arr);
      return NULL;
    }
    if (put_str(o, "id", v[i].id) || put_str(o, "severity", wv_osv_severity_name(v[i].level)) ||
        put_str(o, "title", v[i].title) || put_str(o, "pkgName", v[i].pkg_name) ||
        put_str(o, "installedVersion", v[i].installed_version) ||
        put_str(o, "fixedVersion", v[i].fixed_version) ||
        put_str(o, "primaryUrl", v[i].primary_url)) {
      json_object_put(arr);
      return NULL;
    }
  }
  return arr;
}

json_object *wv_osv_vulns_counts(const wv_osv_vuln_t *v, size_t n) {
  size_t count[WV_OSV_SEV_CRITICAL + 1] = {0};
  for (size_t i = 0; i < n; i++)
    count[v[i].level <= WV_OSV_SEV_CRITICAL ? v[i].level : WV_OSV_SEV_UNKNOWN]++;
  json_object *o = json_object_new_object();
  for (int s = WV_OSV_SEV_CRITICAL; o && s >= WV_OSV_SEV_UNKNOWN; s--) {
    if (count[s] &&
        wv_json_add_int(o, wv_osv_severity_name((wv_osv_severity_t)s), (int64_t)count[s])) {
      json_object_put(o);
      return NULL;
    }
  }
  return o;
}
