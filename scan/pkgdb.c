/*
 * scan/pkgdb.c — classification of package database paths and their parsers.
 *
 * dpkg status, Python METADATA/PKG-INFO, R DESCRIPTION and the apk database
 * are all "key: value" paragraphs separated by blank lines (continuation
 * lines start with a blank), so one paragraph reader serves them all.
 */
#include "scan/pkgdb.h"

#include "core/err.h"
#include "core/json.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define CONDA_META_MAX (64u << 20)

static bool has_suffix(const char *s, size_t n, const char *suf) {
  size_t l = strlen(suf);
  return n >= l && memcmp(s + n - l, suf, l) == 0;
}

/* The i-th path component from the end (0 = basename) as [*s, *s + *n); false if absent. */
static bool comp_from_end(const char *path, int i, const char **s, size_t *n) {
  const char *e = path + strlen(path);
  for (;;) {
    const char *b = e;
    while (b > path && b[-1] != '/')
      b--;
    if (i-- == 0) {
      *s = b, *n = (size_t)(e - b);
      return *n > 0;
    }
    if (b == path)
      return false;
    e = b - 1;
  }
}

static bool comp_is(const char *path, int i, const char *want) {
  const char *s;
  size_t n;
  return comp_from_end(path, i, &s, &n) && n == strlen(want) && memcmp(s, want, n) == 0;
}

wv_pkgdb_kind_t wv_pkgdb_classify(const char *path) {
  const char *s;
  size_t n;
  if (strcmp(path, "var/lib/dpkg/status") == 0)
    return WV_PKGDB_DPKG_STATUS;
  if (strncmp(path, "var/lib/dpkg/status.d/", 22) == 0 && !strchr(path + 22, '/') && path[22] &&
      !has_suffix(path, strlen(path), ".md5sums"))
    return WV_PKGDB_DPKG_STATUS_D;
  if (strcmp(path, "lib/apk/db/installed") == 0)
    return WV_PKGDB_APK;
  if (strcmp(path, "etc/os-release") == 0 || strcmp(path, "usr/lib/os-release") == 0)
    return WV_PKGDB_OS_RELEASE;
  if (!comp_from_end(path, 0, &s, &n))
    return WV_PKGDB_NONE;
  if (has_suffix(s, n, ".json") && comp_is(path, 1, "conda-meta"))
    return WV_PKGDB_CONDA_META;
  if (n == 8 && memcmp(s, "METADATA", 8) == 0 && comp_from_end(path, 1, &s, &n) &&
      has_suffix(s, n, ".dist-info"))
    return WV_PKGDB_PY_METADATA;
  if (comp_is(path, 0, "PKG-INFO") && comp_from_end(path, 1, &s, &n) &&
      has_suffix(s, n, ".egg-info"))
    return WV_PKGDB_PY_METADATA;
  comp_from_end(path, 0, &s, &n);
  if (has_suffix(s, n, ".egg-info"))
    return WV_PKGDB_PY_METADATA; /* an egg-info file is a PKG-INFO */
  if (comp_is(path, 0, "DESCRIPTION") &&
      (comp_is(path, 2, "library") || comp_is(path, 2, "site-library")))
    return WV_PKGDB_R_DESCRIPTION;
  return WV_PKGDB_NONE;
}

/* ---- paragraph reader ---- */

typedef struct {
  const char *key;
  const char *v;
  size_t n;
} field_t;

static const char *line_end(const char *p, const char *end) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  return nl ? nl : end;
}

static bool blank_line(const char *p, const char *e) {
  for (; p < e; p++)
    if (*p != ' ' && *p != '\t' && *p != '\r')
      return false;
  return true;
}

/*
 * Reads the paragraph at *pp: for each wanted key the first line of its
 * value (trimmed). Returns false when no paragraph is left. Python METADATA
 * has a single header paragraph (its body is free text): pass one_para.
 */
static bool para_next(const char **pp, const char *end, field_t *f, size_t nf, bool icase) {
  const char *p = *pp;
  for (size_t i = 0; i < nf; i++)
    f[i].v = NULL, f[i].n = 0;
  while (p < end) { /* skip blank lines */
    const char *e = line_end(p, end);
    if (!blank_line(p, e))
      break;
    p = e < end ? e + 1 : end;
  }
  if (p >= end) {
    *pp = end;
    return false;
  }
  while (p < end) {
    const char *e = line_end(p, end);
    if (blank_line(p, e))
      break;
    const char *colon = memchr(p, ':', (size_t)(e - p));
    if (*p != ' ' && *p != '\t' && colon) {
      size_t kl = (size_t)(colon - p);
      for (size_t i = 0; i < nf; i++) {
        if (f[i].v || strlen(f[i].key) != kl ||
            (icase ? strncasecmp(p, f[i].key, kl) : strncmp(p, f[i].key, kl)))
          continue;
        const char *v = colon + 1, *ve = e;
        while (v < ve && (*v == ' ' || *v == '\t'))
          v++;
        while (ve > v && isspace((unsigned char)ve[-1]))
          ve--;
        f[i].v = v, f[i].n = (size_t)(ve - v);
      }
    }
    p = e < end ? e + 1 : end;
  }
  *pp = p;
  return true;
}

static const char *dup_field(wv_arena_t *a, const field_t *f, bool *oom) {
  if (!f->v || !f->n)
    return NULL;
  char *s = wv_arena_strndup(a, f->v, f->n);
  if (!s)
    *oom = true;
  return s;
}

static int emit(wv_pkg_t *p, bool oom, size_t *skipped, wv_pkg_cb cb, void *arg) {
  if (oom)
    return WV_ENOMEM;
  if (!p->name || !p->version) {
    if (skipped)
      (*skipped)++;
    return 0;
  }
  return cb(arg, p);
}

/* ---- dpkg ---- */

/* "Source: name" or "Source: name (version)". */
static void dpkg_source(wv_arena_t *a, const field_t *f, wv_pkg_t *p, bool *oom) {
  if (!f->v)
    return;
  const char *s = f->v, *e = f->v + f->n, *sp = s;
  while (sp < e && *sp != ' ')
    sp++;
  p->src_name = wv_arena_strndup(a, s, (size_t)(sp - s));
  const char *lp = memchr(sp, '(', (size_t)(e - sp)),
             *rp = lp ? memchr(lp, ')', (size_t)(e - lp)) : NULL;
  if (lp && rp && rp > lp + 1)
    p->src_version = wv_arena_strndup(a, lp + 1, (size_t)(rp - lp - 1));
  if (!p->src_name || (lp && rp && !p->src_version))
    *oom = true;
}

static bool dpkg_installed(const field_t *status) {
  if (!status->v) /* status.d files carry no Status: present means installed */
    return true;
  const char *e = status->v + status->n, *w = e;
  while (w > status->v && w[-1] != ' ')
    w--;
  return (size_t)(e - w) == 9 && memcmp(w, "installed", 9) == 0;
}

static int parse_dpkg(const char *path, const char *d, size_t len, wv_arena_t *a, wv_pkg_cb cb,
                      void *arg, size_t *skipped) {
  field_t f[] = {{"Package", NULL, 0}, {"Version", NULL, 0},      {"Status", NULL, 0},
                 {"Source", NULL, 0},  {"Architecture", NULL, 0}, {"License", NULL, 0}};
  const char *p = d, *end = d + len;
  while (para_next(&p, end, f, 6, true)) {
    if (!dpkg_installed(&f[2]))
      continue;
    bool oom = false;
    wv_pkg_t pk = {.type = WV_ECO_DEB, .path = path};
    pk.name = dup_field(a, &f[0], &oom);
    pk.version = dup_field(a, &f[1], &oom);
    pk.arch = dup_field(a, &f[4], &oom);
    pk.license = dup_field(a, &f[5], &oom);
    dpkg_source(a, &f[3], &pk, &oom);
    if (pk.src_name && pk.name && strcmp(pk.src_name, pk.name) == 0)
      pk.src_name = NULL;
    if (pk.src_version && pk.version && strcmp(pk.src_version, pk.version) == 0)
      pk.src_version = NULL;
    int rc = emit(&pk, oom, skipped, cb, arg);
    if (rc)
      return rc;
  }
  return 0;
}

/* ---- apk ---- */

static int parse_apk(const char *path, const char *d, size_t len, wv_arena_t *a, wv_pkg_cb cb,
                     void *arg, size_t *skipped) {
  field_t f[] = {{"P", NULL, 0}, {"V", NULL, 0}, {"A", NULL, 0}, {"o", NULL, 0}, {"L", NULL, 0}};
  const char *p = d, *end = d + len;
  while (para_next(&p, end, f, 5, false)) {
    bool oom = false;
    wv_pkg_t pk = {.type = WV_ECO_APK, .path = path};
    pk.name = dup_field(a, &f[0], &oom);
    pk.version = dup_field(a, &f[1], &oom);
    pk.arch = dup_field(a, &f[2], &oom);
    pk.src_name = dup_field(a, &f[3], &oom);
    pk.license = dup_field(a, &f[4], &oom);
    if (pk.src_name && pk.name && strcmp(pk.src_name, pk.name) == 0)
      pk.src_name = NULL;
    int rc = emit(&pk, oom, skipped, cb, arg);
    if (rc)
      return rc;
  }
  return 0;
}

/* ---- Python and R: one header paragraph ---- */

static int parse_one_para(wv_ecosystem_t type, const char *namekey, const char *path, const char *d,
                          size_t len, wv_arena_t *a, wv_pkg_cb cb, void *arg, size_t *skipped) {
  field_t f[] = {{namekey, NULL, 0},
                 {"Version", NULL, 0},
                 {"License", NULL, 0},
                 {"License-Expression", NULL, 0}};
  const char *p = d;
  if (!para_next(&p, d + len, f, 4, true)) {
    if (skipped)
      (*skipped)++;
    return 0;
  }
  bool oom = false;
  wv_pkg_t pk = {.type = type, .path = path};
  pk.name = dup_field(a, &f[0], &oom);
  pk.version = dup_field(a, &f[1], &oom);
  pk.license = f[3].v ? dup_field(a, &f[3], &oom) : dup_field(a, &f[2], &oom);
  if (pk.license && (strcmp(pk.license, "UNKNOWN") == 0))
    pk.license = NULL;
  return emit(&pk, oom, skipped, cb, arg);
}

/* ---- conda ---- */

static const char *jstr(wv_arena_t *a, json_object *o, const char *key, bool *oom) {
  const char *v;
  if (wv_json_get_str(o, key, &v) || !*v)
    return NULL;
  char *s = wv_arena_strdup(a, v);
  if (!s)
    *oom = true;
  return s;
}

static int parse_conda(const char *path, const char *d, size_t len, wv_arena_t *a, wv_pkg_cb cb,
                       void *arg, size_t *skipped) {
  json_object *o = NULL;
  char err[128];
  if (wv_json_parse(d, len, CONDA_META_MAX, 0, &o, err, sizeof err) ||
      !json_object_is_type(o, json_type_object)) {
    json_object_put(o);
    if (skipped)
      (*skipped)++;
    return 0;
  }
  bool oom = false;
  wv_pkg_t pk = {.type = WV_ECO_CONDA, .path = path};
  pk.name = jstr(a, o, "name", &oom);
  pk.version = jstr(a, o, "version", &oom);
  pk.arch = jstr(a, o, "subdir", &oom);
  pk.license = jstr(a, o, "license", &oom);
  int rc = emit(&pk, oom, skipped, cb, arg);
  json_object_put(o);
  return rc;
}

int wv_pkgdb_parse(wv_pkgdb_kind_t k, const char *path, const char *data, size_t len, wv_arena_t *a,
                   wv_pkg_cb cb, void *arg, size_t *skipped) {
  switch (k) {
  case WV_PKGDB_DPKG_STATUS:
  case WV_PKGDB_DPKG_STATUS_D:
    return parse_dpkg(path, data, len, a, cb, arg, skipped);
  case WV_PKGDB_APK:
    return parse_apk(path, data, len, a, cb, arg, skipped);
  case WV_PKGDB_CONDA_META:
    return parse_conda(path, data, len, a, cb, arg, skipped);
  case WV_PKGDB_PY_METADATA:
    return parse_one_para(WV_ECO_PYPI, "Name", path, data, len, a, cb, arg, skipped);
  case WV_PKGDB_R_DESCRIPTION:
    return parse_one_para(WV_ECO_CRAN, "Package", path, data, len, a, cb, arg, skipped);
  default:
    return 0;
  }
}

/* Value of KEY=value or KEY="value" (shell quoting without escapes). */
static const char *osr_value(wv_arena_t *a, const char *d, size_t len, const char *key, bool *oom) {
  const char *p = d, *end = d + len;
  size_t kl = strlen(key);
  while (p < end) {
    const char *e = line_end(p, end);
    if ((size_t)(e - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
      const char *v = p + kl + 1, *ve = e;
      while (ve > v && isspace((unsigned char)ve[-1]))
        ve--;
      if (ve - v >= 2 && (*v == '"' || *v == '\'') && ve[-1] == *v)
        v++, ve--;
      char *s = wv_arena_strndup(a, v, (size_t)(ve - v));
      if (!s)
        *oom = true;
      return s;
    }
    p = e < end ? e + 1 : end;
  }
  return NULL;
}

int wv_pkgdb_os_release(const char *data, size_t len, wv_arena_t *a, const char **id,
                        const char **version_id) {
  bool oom = false;
  *id = osr_value(a, data, len, "ID", &oom);
  *version_id = osr_value(a, data, len, "VERSION_ID", &oom);
  return oom ? WV_ENOMEM : 0;
}

const char *wv_ecosystem_name(wv_ecosystem_t t) {
  static const char *const n[] = {"deb", "apk", "conda", "pypi", "cran"};
  return (unsigned)t < WV_ECO_COUNT ? n[t] : "unknown";
}

char *wv_pkg_pypi_normalize(wv_arena_t *a, const char *name) {
  size_t n = strlen(name), o = 0;
  char *s = wv_arena_alloc(a, n + 1);
  if (!s)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (c == '-' || c == '_' || c == '.') {
      if (o == 0 || s[o - 1] != '-')
        s[o++] = '-';
    } else {
      s[o++] = (char)tolower((unsigned char)c);
    }
  }
  s[o] = '\0';
  return s;
}
