/*
 * registry/cache.h — what the /v2 proxy keeps in WV_DB_MANIFESTS: the cache
 * keys (defined here and only here) and the compact record formats the hot
 * path reads on the IO loop without parsing JSON.
 *
 * Keys (contract §5.3 step 3, §5.5):
 *   <request path>                               a token-form manifest by tag
 *                                                (/v2/wt/<t>/<image>/manifests/<tag>)
 *   <registry>/v2/<image>/manifests/<digest>     any manifest by digest (upstream
 *                                                originals, rewritten ones)
 *   <registry>/v2/<image>/blobs/<digest>         rewritten configs, request layers,
 *                                                upstream blobs in the blob cache
 *   T/<token>                                    the token's hot record (below)
 * A registry host always contains '.' or ':' or is "localhost", and request
 * paths start with "/v2/", so "T/" never collides with the others.
 *
 * Entry format: five header lines, then the body (manifests, inline blobs):
 *   <kind>\n<media type>\n<digest>\n<size>\n<location>\n<body…>
 * kind is one byte: 'm' manifest bytes, 'b' blob in the CAS — or, when the
 * entry has a body, the blob's bytes inline (small image configs,
 * WV_CACHE_INLINE_MAX: one store write instead of a CAS file), 'r' redirect to
 * location (http/https), 'd' blob proxied from location (docker://), 'u'
 * upstream blob in the blob cache (storage/blobcache.h) under digest: the
 * entry says this repository's upstream served it (and so may be asked to
 * again) until it expires; the bytes may outlive it or be evicted first.
 * Unused fields are empty. The hot token record is
 *   <kind>\n<has containerConfig 0|1>\n<registry>\n<image>\n<reference>\n<user>\n
 * (user: the account of the request, empty when anonymous; records written
 * before it existed end after the reference) and expires with the token.
 *
 * Decoding copies into the caller's arena (the bytes of a view are valid only
 * inside the view callback), so it is safe on any thread. No global state.
 */
#ifndef WV_CACHE_H
#define WV_CACHE_H

#include "core/arena.h"
#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Blobs at most this long (image configs) are kept inline in their 'b' entry. */
#define WV_CACHE_INLINE_MAX (64u << 10)

typedef enum {
  WV_CACHE_MANIFEST = 'm',
  WV_CACHE_BLOB = 'b',     /* bytes in the CAS under digest, or inline (body) */
  WV_CACHE_REDIRECT = 'r', /* 307 to location */
  WV_CACHE_DOCKER = 'd',   /* proxied from a docker://<reg>/v2/<img>/blobs/<d> location */
  WV_CACHE_UPSTREAM = 'u', /* upstream blob in the blob cache under digest */
} wv_cache_kind_t;

typedef struct {
  wv_cache_kind_t kind;
  const char *media_type; /* "" when none */
  const char *digest;     /* "" when none */
  uint64_t size;          /* blobs; manifests: body length */
  const char *location;   /* redirect and docker entries */
  const char *body;       /* manifests, inline blobs: body_len bytes (NUL-terminated copy) */
  size_t body_len;
} wv_cache_entry_t;

typedef struct {
  int kind; /* wv_token_kind_t */
  bool has_cc;
  const char *registry;
  const char *image;
  const char *reference;
  const char *user;     /* account of the token's request, NULL when anonymous */
  bool has_user;        /* the record says who (false: an older record without the line) */
  const char *platform; /* the request's platform ("linux/amd64"); NULL in older records */
} wv_cache_token_t;

/* Key builders: arena strings, NULL on OOM or when the key would exceed WV_STORE_KEY_MAX. */
const char *wv_cache_key_manifest(wv_arena_t *a, const char *registry, const char *image,
                                  const char *digest);
const char *wv_cache_key_blob(wv_arena_t *a, const char *registry, const char *image,
                              const char *digest);
const char *wv_cache_key_token(wv_arena_t *a, const char *token);

/* Appends the record to out. 0, WV_EINVAL (a field holds a newline), WV_ETOOBIG, WV_ENOMEM. */
int wv_cache_encode(const wv_cache_entry_t *e, wv_buf_t *out);
/* Parses a record copied into a. 0, WV_EPARSE or WV_ENOMEM. */
int wv_cache_decode(wv_arena_t *a, const void *val, size_t len, wv_cache_entry_t *out);

int wv_cache_token_encode(const wv_cache_token_t *t, wv_buf_t *out);
int wv_cache_token_decode(wv_arena_t *a, const void *val, size_t len, wv_cache_token_t *out);

struct wv_store;
/*
 * Reads and decodes the entry at key under one read transaction (safe on the
 * IO loop: no write, no wait). 0, WV_ENOTFOUND, WV_EPARSE, WV_ENOMEM or a
 * store error.
 */
int wv_cache_get(struct wv_store *s, wv_arena_t *a, const char *key, wv_cache_entry_t *out);
int wv_cache_token_get(struct wv_store *s, wv_arena_t *a, const char *token, wv_cache_token_t *out);

/* The same inside a read snapshot (storage/store.h): the hot path's lookups
 * share one transaction. */
struct wv_store_snap;
int wv_cache_snap_get(struct wv_store_snap *snap, wv_arena_t *a, const char *key,
                      wv_cache_entry_t *out);
int wv_cache_snap_token_get(struct wv_store_snap *snap, wv_arena_t *a, const char *token,
                            wv_cache_token_t *out);

#endif
