/*
 * core/siphash.h — SipHash-2-4 and Wave's content checksum (contract §4.4).
 *
 * The checksum names builds ("bd-<id>_<n>"), tags and scans, so it must be
 * bit-identical to Wave's (Guava sipHash24 over the UTF-16LE form of a
 * joined string). All functions are pure; a wv_siphash_t is caller-owned
 * and needs no cleanup.
 */
#ifndef WV_SIPHASH_H
#define WV_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* 16 hex digits + NUL */
#define WV_CHECKSUM_STRLEN 17

typedef struct {
  uint64_t v0, v1, v2, v3;
  uint8_t tail[8];
  size_t ntail;
  uint64_t total; /* bytes hashed so far; its low byte goes into the last block */
} wv_siphash_t;

/* Incremental SipHash-2-4 with a 16-byte key (k0 = bytes 0..7 LE, k1 = 8..15 LE). */
void wv_siphash_init(wv_siphash_t *s, const uint8_t key[16]);
void wv_siphash_update(wv_siphash_t *s, const void *p, size_t n);
uint64_t wv_siphash_final(wv_siphash_t *s);
/* One-shot SipHash-2-4. */
uint64_t wv_siphash24(const uint8_t key[16], const void *p, size_t n);

/* Renders h as its 8 bytes in little-endian order, 2 lowercase hex digits each. */
void wv_siphash_hex(uint64_t h, char out[WV_CHECKSUM_STRLEN]);

/*
 * Wave's map checksum: kv holds npairs (key, value) pairs as kv[2i], kv[2i+1],
 * in order; a NULL value hashes as the empty string. Strings are UTF-8 and are
 * hashed as UTF-16LE code units (non-BMP characters as surrogate pairs), key
 * 00..0f. Returns 0, or WV_EPARSE on invalid UTF-8 (overlong, surrogate code
 * point, above U+10FFFF, truncated) or WV_EINVAL on a NULL key.
 */
int wv_siphash_pairs(const char *const *kv, size_t npairs, char out[WV_CHECKSUM_STRLEN]);

/* Wave's "varargs" checksum: each arg (NULL = nothing) then U+001C, then a final U+001E. */
int wv_siphash_args(const char *const *args, size_t nargs, char out[WV_CHECKSUM_STRLEN]);

/*
 * FNV-1a of a NUL-terminated string: the bucket hash of waved's in-memory
 * tables (keys are not attacker-chosen in bulk there; each table is bounded).
 */
static inline uint64_t wv_str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

#endif
