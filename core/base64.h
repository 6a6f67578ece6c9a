/*
 * core/base64.h — strict standard base64 decoding, the one decoder of waved:
 * data: layers, containerFile and condaFile text, HTTP Basic credentials.
 *
 * Strict means the standard alphabet, padding required, no blanks. Decoding
 * needs no state, so a long text can be decoded in chunks (any multiple of 4
 * characters) with wv_base64_decode_into. Thread-safe.
 */
#ifndef WV_BASE64_H
#define WV_BASE64_H

#include "core/arena.h"

#include <stdbool.h>
#include <stddef.h>

/* Decoded length of s[0..n), or -1 if it is not strict base64. */
long long wv_base64_decoded_len(const char *s, size_t n);

/*
 * Decodes s[0..n) — a multiple of 4 characters already accepted by
 * wv_base64_decoded_len — into out (room for n / 4 * 3 bytes); returns the
 * bytes written.
 */
size_t wv_base64_decode_into(const char *s, size_t n, unsigned char *out);

/* Decodes into a NUL-terminated arena buffer (*out, *outlen). 0, WV_EINVAL or WV_ENOMEM. */
int wv_base64_decode(wv_arena_t *a, const char *s, size_t n, char **out, size_t *outlen);

/*
 * True when s[0..n), strict base64, has zero spare bits in its last group, so
 * encoding the decoded bytes again gives s back (Wave's round-trip check).
 */
bool wv_base64_canonical(const char *s, size_t n);

#endif
