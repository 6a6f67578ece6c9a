/*
 * core/digest.h — SHA-256 (OpenSSL EVP) and the "sha256:<64 hex>" digest
 * strings of the registry protocol.
 *
 * A wv_sha256_t is caller-owned (stack or struct member) and holds an EVP
 * context: after wv_sha256_init succeeds call wv_sha256_final or
 * wv_sha256_abort exactly once to release it. Not thread-safe per context;
 * separate contexts may be used from separate threads.
 */
#ifndef WV_DIGEST_H
#define WV_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_SHA256_LEN 32
/* "sha256:" + 64 hex + NUL */
#define WV_DIGEST_STRLEN (7 + 64 + 1)

typedef struct {
  void *ctx; /* EVP_MD_CTX * */
} wv_sha256_t;

/* Returns 0 or WV_ENOMEM / WV_EINTERNAL. */
int wv_sha256_init(wv_sha256_t *h);
int wv_sha256_update(wv_sha256_t *h, const void *p, size_t n);
/* Writes the 32-byte hash and releases the context (also on failure). */
int wv_sha256_final(wv_sha256_t *h, uint8_t out[WV_SHA256_LEN]);
/* Releases the context without producing a hash (error paths). NULL ctx is a no-op. */
void wv_sha256_abort(wv_sha256_t *h);

/* One-shot hash of p[0..n). */
int wv_sha256(const void *p, size_t n, uint8_t out[WV_SHA256_LEN]);

/* Renders "sha256:<64 lowercase hex>" into out (WV_DIGEST_STRLEN bytes). */
void wv_digest_format(const uint8_t hash[WV_SHA256_LEN], char out[WV_DIGEST_STRLEN]);
/* One-shot hash of p[0..n) rendered as a digest string. */
int wv_digest_of(const void *p, size_t n, char out[WV_DIGEST_STRLEN]);

/*
 * Parses "sha256:" + exactly 64 lowercase hex digits (the only form waved
 * accepts; uppercase, other algorithms and other lengths are refused).
 * hash may be NULL to only validate. Returns 0 or WV_EINVAL.
 */
int wv_digest_parse(const char *s, uint8_t hash[WV_SHA256_LEN]);
/* Same for a string that is not NUL-terminated (e.g. a slice of a URL path). */
int wv_digest_parse_n(const char *s, size_t n, uint8_t hash[WV_SHA256_LEN]);
/* True when s is a valid digest string. */
bool wv_digest_valid(const char *s);

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void wv_hex_encode(const uint8_t *p, size_t n, char *out);

/* The value of one hex digit of either case, or -1. */
int wv_hex_value(char c);

#endif
