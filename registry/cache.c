#include "registry/cache.h"
#include "core/err.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>

static const char *key_join(wv_arena_t *a, const char *registry, const char *image,
                            const char *kind, const char *digest) {
  char *k = wv_arena_sprintf(a, "%s/v2/%s/%s/%s", registry, image, kind, digest);
  return k && strlen(k) <= WV_STORE_KEY_MAX ? k : NULL;
}

const char *wv_cache_key_manifest(wv_arena_t *a, const char *registry, const char *image,
                                  const char *digest) {
  return key_join(a, registry, image, "manifests", digest);
}

const char *wv_cache_key_blob(wv_arena_t *a, const char *registry, const char *image,
                              const char *digest) {
  return key_join(a, registry, image, "blobs", digest);
}

/* Built by hand: the hot path asks for it on every pull. */
const char *wv_cache_key_token(wv_arena_t *a, const char *token) {
  size_t n = strlen(token);
  if (n + 2 > WV_STORE_KEY_MAX)
    return NULL;
  char *k = wv_arena_alloc(a, n + 3);
  if (!k)
    return NULL;
  k[0] = 'T';
  k[1] = '/';
  memcpy(k + 2, token, n + 1);
  return k;
}

/* Appends s and a newline; a field with a newline in it cannot be stored. */
static int put_line(wv_buf_t *out, const char *s) {
  if (!s)
    s = "";
  if (strchr(s, '\n'))
    return WV_EINVAL;
  int rc = wv_buf_puts(out, s);
  return rc ? rc : wv_buf_putc(out, '\n');
}

int wv_cache_encode(const wv_cache_entry_t *e, wv_buf_t *out) {
  char kind[2] = {(char)e->kind, '\0'};
  int rc = put_line(out, kind);
  rc = rc ? rc : put_line(out, e->media_type);
  rc = rc ? rc : put_line(out, e->digest);
  rc = rc ? rc : wv_buf_printf(out, "%llu\n", (unsigned long long)e->size);
  rc = rc ? rc : put_line(out, e->location);
  if (!rc && (e->kind == WV_CACHE_MANIFEST || e->kind == WV_CACHE_BLOB) && e->body_len)
    rc = wv_buf_append(out, e->body, e->body_len);
  return rc;
}

/* Cuts the next line out of [*p, end) into the arena. */
static int take_line(wv_arena_t *a, const char **p, const char *end, const char **out) {
  const char *nl = memchr(*p, '\n', (size_t)(end - *p));
  if (!nl)
    return WV_EPARSE;
  char *s = wv_arena_strndup(a, *p, (size_t)(nl - *p));
  if (!s)
    return WV_ENOMEM;
  *out = s;
  *p = nl + 1;
  return 0;
}

int wv_cache_decode(wv_arena_t *a, const void *val, size_t len, wv_cache_entry_t *out) {
  const char *p = val, *end = p + len;
  const char *kind, *size;
  memset(out, 0, sizeof *out);
  int rc = take_line(a, &p, end, &kind);
  rc = rc ? rc : take_line(a, &p, end, &out->media_type);
  rc = rc ? rc : take_line(a, &p, end, &out->digest);
  rc = rc ? rc : take_line(a, &p, end, &size);
  rc = rc ? rc : take_line(a, &p, end, &out->location);
  if (rc)
    return rc;
  if (strlen(kind) != 1 || !strchr("mbrdu", kind[0]))
    return WV_EPARSE;
  out->kind = (wv_cache_kind_t)kind[0];
  char *e;
  out->size = strtoull(size, &e, 10);
  if (*e)
    return WV_EPARSE;
  out->body_len = (size_t)(end - p);
  char *body = wv_arena_alloc(a, out->body_len + 1);
  if (!body)
    return WV_ENOMEM;
  memcpy(body, p, out->body_len);
  body[out->body_len] = '\0';
  out->body = body;
  return 0;
}

int wv_cache_token_encode(const wv_cache_token_t *t, wv_buf_t *out) {
  int rc = wv_buf_printf(out, "%d\n%d\n", t->kind, t->has_cc ? 1 : 0);
  rc = rc ? rc : put_line(out, t->registry);
  rc = rc ? rc : put_line(out, t->image);
  rc = rc ? rc : put_line(out, t->reference);
  rc = rc ? rc : put_line(out, t->user);
  return rc ? rc : put_line(out, t->platform);
}

int wv_cache_token_decode(wv_arena_t *a, const void *val, size_t len, wv_cache_token_t *out) {
  const char *p = val, *end = p + len;
  const char *kind, *cc;
  memset(out, 0, sizeof *out);
  int rc = take_line(a, &p, end, &kind);
  rc = rc ? rc : take_line(a, &p, end, &cc);
  rc = rc ? rc : take_line(a, &p, end, &out->registry);
  rc = rc ? rc : take_line(a, &p, end, &out->image);
  rc = rc ? rc : take_line(a, &p, end, &out->reference);
  if (!rc && p < end && (rc = take_line(a, &p, end, &out->user)) == 0) {
    out->has_user = true;
    out->user = out->user[0] ? out->user : NULL;
    /* Added after the user line: records written before it have none. */
    if (p < end && (rc = take_line(a, &p, end, &out->platform)) == 0)
      out->platform = out->platform[0] ? out->platform : NULL;
  }
  if (rc)
    return rc;
  if (!kind[0] || kind[1] || kind[0] < '0' || kind[0] > '3' || (cc[0] != '0' && cc[0] != '1'))
    return WV_EPARSE;
  out->kind = kind[0] - '0';
  out->has_cc = cc[0] == '1';
  return 0;
}

typedef struct {
  wv_arena_t *a;
  void *out;
  bool token;
} view_t;

static int view_cb(void *arg, const void *val, size_t len, int64_t expires_ms) {
  view_t *v = arg;
  (void)expires_ms;
  int rc = v->token ? wv_cache_token_decode(v->a, val, len, v->out)
                    : wv_cache_decode(v->a, val, len, v->out);
  return rc ? rc : 1;
}

int wv_cache_get(struct wv_store *s, wv_arena_t *a, const char *key, wv_cache_entry_t *out) {
  if (!key)
    return WV_ENOTFOUND;
  view_t v = {a, out, false};
  int rc = wv_store_view(s, WV_DB_MANIFESTS, key, view_cb, &v);
  return rc == 1 ? 0 : rc;
}

int wv_cache_token_get(struct wv_store *s, wv_arena_t *a, const char *token,
                       wv_cache_token_t *out) {
  const char *key = wv_cache_key_token(a, token);
  if (!key)
    return WV_ENOMEM;
  view_t v = {a, out, true};
  int rc = wv_store_view(s, WV_DB_MANIFESTS, key, view_cb, &v);
  return rc == 1 ? 0 : rc;
}

int wv_cache_snap_get(wv_store_snap_t *snap, wv_arena_t *a, const char *key,
                      wv_cache_entry_t *out) {
  if (!key)
    return WV_ENOTFOUND;
  view_t v = {a, out, false};
  int rc = wv_store_snap_view(snap, WV_DB_MANIFESTS, key, view_cb, &v);
  return rc == 1 ? 0 : rc;
}

int wv_cache_snap_token_get(wv_store_snap_t *snap, wv_arena_t *a, const char *token,
                            wv_cache_token_t *out) {
  const char *key = wv_cache_key_token(a, token);
  if (!key)
    return WV_ENOMEM;
  view_t v = {a, out, true};
  int rc = wv_store_snap_view(snap, WV_DB_MANIFESTS, key, view_cb, &v);
  return rc == 1 ? 0 : rc;
}
