/*
 * scan/osv_norm.c — validating one OSV record and normalising it into what
 * the import stores (see scan/osv.h for the layout): canonical ecosystem
 * names, index names, checked ranges, severity, display id, title and url.
 * Pure: no store, no I/O.
 */
#include "scan/osv_import_int.h"

#include "core/err.h"
#include "core/json.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ID_MAX 200
#define TITLE_MAX 200

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
static void severity_of(json_object *rec, wv_osv_severity_t *lvl, double *score) {
  json_object *affs = NULL;
  size_t na = wv_json_get_array(rec, "affected", &affs) ? 0 : json_object_array_length(affs);
  *lvl = WV_OSV_SEV_UNKNOWN;
  *score = 0;
  for (size_t i = 0; i <= na; i++) {
    json_object *o = i == 0 ? rec : json_object_array_get_idx(affs, i - 1);
    const char *v = sev_entry(o, "CVSS_V3");
    if (v && wv_osv_cvss3_base_score(v, score) == 0) {
      *lvl = wv_osv_severity_of_cvss3(*score);
      return;
    }
  }
  for (size_t i = 0; i <= na; i++) {
    json_object *o = i == 0 ? rec : json_object_array_get_idx(affs, i - 1);
    const char *w = sev_entry(o, NULL);
    wv_osv_severity_t s = wv_osv_severity_parse(w ? w : db_specific_severity(o));
    if (s != WV_OSV_SEV_UNKNOWN) {
      *lvl = s;
      return;
    }
  }
  for (size_t i = 0; i <= na; i++) {
    json_object *o = i == 0 ? rec : json_object_array_get_idx(affs, i - 1);
    const char *v = sev_entry(o, "CVSS_V2");
    if (v && wv_osv_cvss2_base_score(v, score) == 0) {
      *lvl = *score >= 7.0 ? WV_OSV_SEV_HIGH : *score >= 4.0 ? WV_OSV_SEV_MEDIUM : WV_OSV_SEV_LOW;
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
int wv__osv_normalise(wv_arena_t *ar, json_object *rec, rec_t *r, char *why, size_t wl) {
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
    if ((rc = check_affected(ar, json_object_array_get_idx(affs, i), i, out, r, why, wl))) {
      json_object_put(out);
      return rc;
    }
  if (json_object_array_length(out) == 0) {
    json_object_put(out);
    return 0;
  }
  wv_osv_severity_t lvl;
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
  json_object_object_add(n, "severity", json_object_new_string(wv_osv_severity_name(lvl)));
  json_object_object_add(n, "score", json_object_new_double(score));
  json_object_object_add(n, "url", json_object_new_string(url));
  json_object_object_add(n, "affected", out);
  r->norm = n;
  return 0;
}
