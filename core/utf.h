/*
 * core/utf.h — strict UTF-8 decoding shared by the Java-compatible hashes.
 *
 * Wave hashes strings as Java sees them (UTF-16 code units), so both the
 * content checksum (core/siphash.c) and String.hashCode (build/checksum.c)
 * must reject exactly the same byte sequences. They decode through this one
 * function. Pure; no state, no allocation.
 */
#ifndef WV_UTF_H
#define WV_UTF_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes one strict UTF-8 sequence at p (NUL-terminated) into *cp. Returns
 * its length in bytes (1..4), or 0 when it is not valid UTF-8: a bad lead or
 * continuation byte, an overlong form, a surrogate code point, a value above
 * U+10FFFF, or a sequence cut short by the NUL. *cp is set only on success.
 */
size_t wv_utf8_decode(const uint8_t *p, uint32_t *cp);

#endif
