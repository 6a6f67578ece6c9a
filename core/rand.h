/*
 * core/rand.h — cryptographically secure randomness (the kernel's getrandom(2)) for
 * tokens and ids, and a constant-time comparison for checking secrets.
 *
 * Thread-safe. No allocation; the caller owns
 * every output buffer.
 */
#ifndef WV_RAND_H
#define WV_RAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_RAND_HEX "0123456789abcdef"
/* 36 symbols: 12 of them carry ~62 bits, more than Wave's 48-bit hex tokens. */
#define WV_RAND_ALNUM_LOWER "0123456789abcdefghijklmnopqrstuvwxyz"

/* Fills p with n random bytes. Returns 0 or WV_EINTERNAL (the DRBG failed). */
int wv_rand_bytes(void *p, size_t n);

/* A uniform value in [0, bound) without modulo bias; bound must be > 0 (else WV_EINVAL). */
int wv_rand_below(uint64_t bound, uint64_t *out);

/*
 * Writes len symbols drawn uniformly from alphabet (2..256 distinct bytes) and
 * a NUL into out (len + 1 bytes). Rejection sampling keeps every symbol
 * equally likely. Returns 0, WV_EINVAL (bad alphabet) or WV_EINTERNAL.
 */
int wv_rand_id(char *out, size_t len, const char *alphabet);

/* 12 lowercase hex digits, the shape of Wave's tokens and ids (contract §4.1). */
int wv_rand_hex12(char out[13]);

/*
 * True when a and b are equal, in time that depends only on their lengths
 * (CRYPTO_memcmp), so a token check leaks nothing about the stored secret's
 * content. NULL equals nothing.
 */
bool wv_ct_streq(const char *a, const char *b);

#endif
