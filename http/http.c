#include "http/http.h"
#include "core/base64.h"
#include "core/digest.h"
#include "core/secret.h"

#include <string.h>
#include <strings.h>

const char *wv_req_header(const wv_req_t *req, const char *name) {
  for (int i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, name) == 0)
      return req->headers[i].value;
  return NULL;
}

const char *wv_req_param(const wv_req_t *req, const char *name) {
  for (int i = 0; i < req->nparams; i++)
    if (strcmp(req->params[i].name, name) == 0)
      return req->params[i].value;
  return NULL;
}

/* Decodes p[0..n) into a new arena string. */
static char *query_decode(wv_arena_t *a, const char *p, size_t n) {
  char *v = wv_arena_strndup(a, p, n), *w = v;
  if (!v)
    return NULL;
  for (const char *r = v; *r; r++) {
    int hi = *r == '%' ? wv_hex_value(r[1]) : -1, lo = hi >= 0 ? wv_hex_value(r[2]) : -1;
    if (lo >= 0) {
      *w++ = (char)(hi * 16 + lo);
      r += 2;
    } else {
      *w++ = *r == '+' ? ' ' : *r;
    }
  }
  *w = '\0';
  return v;
}

char *wv_req_query(const wv_req_t *req, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = req->query; p && *p;) {
    const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
    if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=')
      return query_decode(req->arena, p + nl + 1, (size_t)(end - p) - nl - 1);
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

/*
 * Splits the request's Basic credentials into *user and *pass (arena). 0
 * without an Authorization header, 1 with valid Basic syntax, -1 otherwise.
 */
static int basic_credentials(wv_req_t *req, char **user, char **pass) {
  const char *h = wv_req_header(req, "Authorization");
  if (!h)
    return 0;
  if (strncasecmp(h, "Basic ", 6) != 0)
    return -1;
  const char *b = h + 6;
  while (*b == ' ')
    b++;
  char *dec = NULL;
  size_t n = 0;
  if (wv_base64_decode(req->arena, b, strlen(b), &dec, &n) || memchr(dec, '\0', n))
    return -1;
  char *colon = strchr(dec, ':');
  if (!colon)
    return -1;
  *colon = '\0';
  *user = dec, *pass = colon + 1;
  return 1;
}

const char *wv_req_basic_account(wv_req_t *req, const wv_config_t *cfg, bool *bad) {
  char *user, *pass;
  int rc = basic_credentials(req, &user, &pass);
  *bad = rc != 0;
  if (rc <= 0 || !wv_secret_account_check(cfg, user, pass))
    return NULL;
  *bad = false;
  return user;
}

const char *wv_req_basic_account_quick(wv_req_t *req, const wv_config_t *cfg, bool *bad,
                                       bool *slow) {
  char *user, *pass;
  int rc = basic_credentials(req, &user, &pass);
  *bad = rc != 0, *slow = false;
  if (rc <= 0)
    return NULL;
  switch (wv_secret_account_quick(cfg, user, pass)) {
  case WV_SECRET_YES:
    *bad = false;
    return user;
  case WV_SECRET_SLOW:
    *bad = false, *slow = true;
    return NULL;
  default:
    return NULL;
  }
}
