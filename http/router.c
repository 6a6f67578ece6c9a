/*
 * Patterns are split into segments once, at wv_router_add(); matching walks
 * the path and the segments side by side without allocating. With a few
 * dozen routes a linear scan is faster than anything cleverer.
 */
#include "http/router.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

typedef enum { SEG_LIT, SEG_PARAM, SEG_WILD } seg_kind_t;

typedef struct {
  seg_kind_t kind;
  const char *s; /* literal text or param name, into the pattern */
  size_t len;
} seg_t;

typedef struct {
  const wv_route_t *route;
  int nsegs;
  seg_t *segs;
} compiled_t;

struct wv_router {
  compiled_t *routes;
  size_t n, cap;
};

int wv_router_new(wv_router_t **out) {
  *out = calloc(1, sizeof **out);
  return *out ? 0 : WV_ENOMEM;
}

void wv_router_free(wv_router_t *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->n; i++)
    free(r->routes[i].segs);
  free(r->routes);
  free(r);
}

/* Splits a pattern such as "/a/{b}/" "**" into segments after the leading slash. */
static int compile(const wv_route_t *route, compiled_t *c) {
  const char *p = route->pattern;
  if (!p || p[0] != '/' || !route->handler || !route->methods)
    return WV_EINVAL;
  int n = 1;
  for (const char *q = p + 1; *q; q++)
    n += *q == '/';
  c->segs = calloc((size_t)n, sizeof *c->segs);
  if (!c->segs)
    return WV_ENOMEM;
  c->route = route;
  c->nsegs = 0;
  int params = 0;
  const char *s = p + 1;
  for (;;) {
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    seg_t *g = &c->segs[c->nsegs++];
    if (len == 2 && memcmp(s, "**", 2) == 0) {
      if (e)
        goto bad; /* ** only at the end */
      g->kind = SEG_WILD;
    } else if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
      if (len == 2 || ++params > WV_ROUTE_MAX_PARAMS)
        goto bad;
      g->kind = SEG_PARAM;
      g->s = s + 1;
      g->len = len - 2;
    } else {
      g->kind = SEG_LIT;
      g->s = s;
      g->len = len;
    }
    if (!e)
      break;
    s = e + 1;
  }
  return 0;
bad:
  free(c->segs);
  c->segs = NULL;
  return WV_EINVAL;
}

int wv_router_add(wv_router_t *r, const wv_route_t *routes, size_t n) {
  if (r->n + n > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 32;
    while (cap < r->n + n)
      cap *= 2;
    compiled_t *p = realloc(r->routes, cap * sizeof *p);
    if (!p)
      return WV_ENOMEM;
    r->routes = p;
    r->cap = cap;
  }
  for (size_t i = 0; i < n; i++) {
    int rc = compile(&routes[i], &r->routes[r->n]);
    if (rc)
      return rc;
    r->n++;
  }
  return 0;
}

/* Matches one compiled pattern against path; fills params into m on success. */
static bool match_one(const compiled_t *c, const char *path, size_t len, wv_match_t *m) {
  if (len == 0 || path[0] != '/')
    return false;
  const char *p = path + 1, *end = path + len;
  m->nparams = 0;
  m->wild = NULL;
  m->wild_len = 0;
  for (int i = 0; i < c->nsegs; i++) {
    const seg_t *g = &c->segs[i];
    if (g->kind == SEG_WILD) {
      m->wild = p;
      m->wild_len = (size_t)(end - p);
      return true;
    }
    const char *e = memchr(p, '/', (size_t)(end - p));
    if (!e)
      e = end;
    size_t sl = (size_t)(e - p);
    if (g->kind == SEG_LIT) {
      if (sl != g->len || memcmp(p, g->s, sl) != 0)
        return false;
    } else {
      if (sl == 0)
        return false;
      m->param_names[m->nparams] = g->s;
      m->param_name_lens[m->nparams] = g->len;
      m->param_vals[m->nparams] = p;
      m->param_val_lens[m->nparams] = sl;
      m->nparams++;
    }
    if (i + 1 == c->nsegs)
      return e == end;
    if (e == end) /* path ran out before the pattern: "/v2" does not match "/v2/" "**" */
      return false;
    p = e + 1;
  }
  return false;
}

int wv_router_match(const wv_router_t *r, unsigned method, const char *path, size_t len,
                    wv_match_t *m) {
  unsigned want = method == WV_M_HEAD ? (WV_M_HEAD | WV_M_GET) : method;
  m->route = NULL;
  m->allow = 0;
  wv_match_t tmp;
  for (size_t i = 0; i < r->n; i++) {
    const compiled_t *c = &r->routes[i];
    if (!(c->route->methods & want)) {
      /* Still learn whether the path exists, for 405 and its Allow header. */
      if (match_one(c, path, len, &tmp))
        m->allow |= c->route->methods;
      continue;
    }
    if (match_one(c, path, len, m)) {
      m->route = c->route;
      return 0;
    }
  }
  if (m->allow & WV_M_GET)
    m->allow |= WV_M_HEAD;
  m->nparams = 0;
  return WV_ENOTFOUND;
}

static const struct {
  unsigned bit;
  const char *name;
} methods[] = {
    {WV_M_GET, "GET"},       {WV_M_HEAD, "HEAD"},   {WV_M_POST, "POST"},       {WV_M_PUT, "PUT"},
    {WV_M_DELETE, "DELETE"}, {WV_M_PATCH, "PATCH"}, {WV_M_OPTIONS, "OPTIONS"},
};

unsigned wv_router_method(const char *name) {
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
    if (strcmp(methods[i].name, name) == 0)
      return methods[i].bit;
  return WV_M_OTHER;
}

void wv_router_allow_str(unsigned allow, char *out, size_t outlen) {
  size_t used = 0;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    if (!(allow & methods[i].bit))
      continue;
    size_t need = strlen(methods[i].name) + (used ? 2 : 0);
    if (used + need + 1 > outlen)
      break;
    if (used) {
      memcpy(out + used, ", ", 2);
      used += 2;
    }
    memcpy(out + used, methods[i].name, strlen(methods[i].name));
    used += strlen(methods[i].name);
    out[used] = '\0';
  }
}
