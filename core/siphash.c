/*
 * core/siphash.c — SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast
 * short-input PRF", 2012) and Wave's checksum built on it (see siphash.h).
 *
 * The checksum input is a Java String hashed as UTF-16LE; rather than
 * materialise that string we decode the UTF-8 input one code point at a time
 * and feed the code units straight into the incremental hash, so no input
 * size needs a buffer or a cap.
 */
#include "core/siphash.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/utf.h"

#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t load64_le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static void sipround(wv_siphash_t *s) {
  s->v0 += s->v1;
  s->v1 = ROTL(s->v1, 13);
  s->v1 ^= s->v0;
  s->v0 = ROTL(s->v0, 32);
  s->v2 += s->v3;
  s->v3 = ROTL(s->v3, 16);
  s->v3 ^= s->v2;
  s->v0 += s->v3;
  s->v3 = ROTL(s->v3, 21);
  s->v3 ^= s->v0;
  s->v2 += s->v1;
  s->v1 = ROTL(s->v1, 17);
  s->v1 ^= s->v2;
  s->v2 = ROTL(s->v2, 32);
}

/* c = 2 compression rounds per 8-byte block. */
static void compress(wv_siphash_t *s, uint64_t m) {
  s->v3 ^= m;
  sipround(s);
  sipround(s);
  s->v0 ^= m;
}

void wv_siphash_init(wv_siphash_t *s, const uint8_t key[16]) {
  uint64_t k0 = load64_le(key), k1 = load64_le(key + 8);
  s->v0 = k0 ^ 0x736f6d6570736575ULL; /* "somepseudorandomlygeneratedbytes" */
  s->v1 = k1 ^ 0x646f72616e646f6dULL;
  s->v2 = k0 ^ 0x6c7967656e657261ULL;
  s->v3 = k1 ^ 0x7465646279746573ULL;
  s->ntail = 0;
  s->total = 0;
}

void wv_siphash_update(wv_siphash_t *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->total += n;
  while (n > 0 && s->ntail > 0) { /* finish a partial block first */
    s->tail[s->ntail++] = *p++;
    n--;
    if (s->ntail == 8) {
      compress(s, load64_le(s->tail));
      s->ntail = 0;
    }
  }
  for (; n >= 8; p += 8, n -= 8)
    compress(s, load64_le(p));
  memcpy(s->tail, p, n);
  s->ntail += n;
}

uint64_t wv_siphash_final(wv_siphash_t *s) {
  /* Last block: remaining bytes, zero padding, length mod 256 in the top byte. */
  uint64_t b = (uint64_t)(s->total & 0xff) << 56;
  for (size_t i = 0; i < s->ntail; i++)
    b |= (uint64_t)s->tail[i] << (8 * i);
  compress(s, b);
  /* d = 4 finalisation rounds. */
  s->v2 ^= 0xff;
  for (int i = 0; i < 4; i++)
    sipround(s);
  return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

uint64_t wv_siphash24(const uint8_t key[16], const void *p, size_t n) {
  wv_siphash_t s;
  wv_siphash_init(&s, key);
  wv_siphash_update(&s, p, n);
  return wv_siphash_final(&s);
}

void wv_siphash_hex(uint64_t h, char out[WV_CHECKSUM_STRLEN]) {
  uint8_t le[8]; /* the hash's bytes, least significant first */
  for (int i = 0; i < 8; i++, h >>= 8)
    le[i] = (uint8_t)h;
  wv_hex_encode(le, sizeof le, out);
}

/* ---- Wave's checksum ---- */

static const uint8_t wave_key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void put_unit(wv_siphash_t *s, uint32_t u) {
  uint8_t b[2] = {(uint8_t)(u & 0xff), (uint8_t)(u >> 8)};
  wv_siphash_update(s, b, 2);
}

static void put_code_point(wv_siphash_t *s, uint32_t cp) {
  if (cp < 0x10000) {
    put_unit(s, cp);
    return;
  }
  cp -= 0x10000;
  put_unit(s, 0xd800 | (cp >> 10));
  put_unit(s, 0xdc00 | (cp & 0x3ff));
}

static int put_string(wv_siphash_t *s, const char *str) {
  const uint8_t *p = (const uint8_t *)str;
  while (*p) {
    uint32_t cp;
    size_t n = wv_utf8_decode(p, &cp);
    if (n == 0)
      return WV_EPARSE;
    put_code_point(s, cp);
    p += n;
  }
  return 0;
}

int wv_siphash_pairs(const char *const *kv, size_t npairs, char out[WV_CHECKSUM_STRLEN]) {
  wv_siphash_t s;
  wv_siphash_init(&s, wave_key);
  for (size_t i = 0; i < npairs; i++) {
    if (!kv[2 * i])
      return WV_EINVAL;
    int rc = put_string(&s, kv[2 * i]);
    put_unit(&s, 0x1c);
    if (rc == 0 && kv[2 * i + 1])
      rc = put_string(&s, kv[2 * i + 1]);
    if (rc)
      return rc;
    put_unit(&s, 0x1e);
  }
  wv_siphash_hex(wv_siphash_final(&s), out);
  return 0;
}

int wv_siphash_args(const char *const *args, size_t nargs, char out[WV_CHECKSUM_STRLEN]) {
  wv_siphash_t s;
  wv_siphash_init(&s, wave_key);
  for (size_t i = 0; i < nargs; i++) {
    if (args[i]) {
      int rc = put_string(&s, args[i]);
      if (rc)
        return rc;
    }
    put_unit(&s, 0x1c);
  }
  put_unit(&s, 0x1e);
  wv_siphash_hex(wv_siphash_final(&s), out);
  return 0;
}
