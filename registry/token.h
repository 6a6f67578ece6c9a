/*
 * registry/token.h — the token record: what a tokenized pull
 * (/v2/wt/<token>/<image>/...) needs to know about the container request
 * that created the token. Written by the front door (build/), read by the
 * /v2 proxy (registry/); stored as JSON in WV_DB_TOKENS under the token, with
 * the store's expiry set to expires_ms so an expired token is simply absent.
 *
 * containerConfig is kept as the request's JSON with one change: every
 * `data:` layer has been decoded, verified against its gzipDigest/gzipSize
 * and written to the blob store, and its location replaced by
 * "cas:<gzipDigest>" (WV_TOKEN_CAS_PREFIX) so the token record stays small.
 *
 * Ownership: decoded strings live in the caller's arena. Thread-safe.
 */
#ifndef WV_TOKEN_H
#define WV_TOKEN_H

#include "core/arena.h"
#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_TOKEN_CAS_PREFIX "cas:"
#define WV_TOKEN_MAX_RECORD (4u << 20) /* a record with a large containerConfig */

typedef enum {
  WV_TOKEN_CONTAINER = 0, /* existing image, pass-through or augmented */
  WV_TOKEN_BUILD,         /* image built by waved: pulls wait on build_id */
  WV_TOKEN_FREEZE,        /* stable name in the user's registry: not pullable via wt/ */
  WV_TOKEN_MIRROR,        /* likewise */
} wv_token_kind_t;

typedef struct {
  const char *token; /* = requestId */
  wv_token_kind_t kind;
  const char *registry;  /* upstream registry host[:port], e.g. "docker.io" */
  const char *image;     /* repository path without registry, e.g. "library/ubuntu" */
  const char *reference; /* tag or sha256 digest of the requested image */
  const char
      *container_image;     /* normalised full source name, e.g. docker.io/library/ubuntu:latest */
  const char *target_image; /* the name handed to the client */
  const char *platform;     /* normalised, e.g. "linux/amd64" */
  const char *user;         /* account name, NULL when anonymous */
  const char *client_ip;    /* NULL when unknown */
  const char *build_id;     /* WV_TOKEN_BUILD: the build a pull waits for */
  const char *scan_id;      /* the scan of the image (scan/scan.h), NULL when none */
  const char *scan_mode;    /* "async" or "required" when scan_id is set */
  const char *scan_levels;  /* allowed severities, "LOW,MEDIUM"; NULL = none allowed */
  const char *cc_json;      /* containerConfig JSON, NULL when none (pass-through) */
  int64_t created_ms;       /* unix ms */
  int64_t expires_ms;       /* unix ms */
} wv_token_rec_t;

/* Appends the record as compact JSON to out. 0, WV_EINVAL (missing token, registry or image) or
 * WV_ETOOBIG/WV_ENOMEM. */
int wv_token_encode(const wv_token_rec_t *t, wv_buf_t *out);

/* Parses a record; strings go to arena a. 0, WV_EPARSE or WV_ENOMEM. */
int wv_token_decode(wv_arena_t *a, const char *json, size_t len, wv_token_rec_t *out);

const char *wv_token_kind_name(wv_token_kind_t k);

#endif
