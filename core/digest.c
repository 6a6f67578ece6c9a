/* core/digest.c — SHA-256 through OpenSSL EVP and digest strings (see digest.h). */
#include "core/digest.h"
#include "core/err.h"

#include <openssl/evp.h>
#include <string.h>

int wv_sha256_init(wv_sha256_t *h) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  h->ctx = NULL;
  if (!ctx)
    return WV_ENOMEM;
  if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(ctx);
    return WV_EINTERNAL;
  }
  h->ctx = ctx;
  return 0;
}

int wv_sha256_update(wv_sha256_t *h, const void *p, size_t n) {
  if (!h->ctx)
    return WV_EINVAL;
  if (n == 0)
    return 0;
  return EVP_DigestUpdate(h->ctx, p, n) == 1 ? 0 : WV_EINTERNAL;
}

int wv_sha256_final(wv_sha256_t *h, uint8_t out[WV_SHA256_LEN]) {
  if (!h->ctx)
    return WV_EINVAL;
  unsigned int len = 0;
  int ok = EVP_DigestFinal_ex(h->ctx, out, &len) == 1 && len == WV_SHA256_LEN;
  wv_sha256_abort(h);
  return ok ? 0 : WV_EINTERNAL;
}

void wv_sha256_abort(wv_sha256_t *h) {
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
}

int wv_sha256(const void *p, size_t n, uint8_t out[WV_SHA256_LEN]) {
  unsigned int len = 0;
  /* EVP_Digest allocates and frees its own context. */
  if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != WV_SHA256_LEN)
    return WV_EINTERNAL;
  return 0;
}

void wv_hex_encode(const uint8_t *p, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[p[i] >> 4];
    out[2 * i + 1] = hex[p[i] & 15];
  }
  out[2 * n] = '\0';
}

void wv_digest_format(const uint8_t hash[WV_SHA256_LEN], char out[WV_DIGEST_STRLEN]) {
  memcpy(out, "sha256:", 7);
  wv_hex_encode(hash, WV_SHA256_LEN, out + 7);
}

int wv_digest_of(const void *p, size_t n, char out[WV_DIGEST_STRLEN]) {
  uint8_t h[WV_SHA256_LEN];
  int rc = wv_sha256(p, n, h);
  if (rc == 0)
    wv_digest_format(h, out);
  return rc;
}

int wv_hex_value(char c) {
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= '0' && c <= '9' ? c - '0' : -1;
}

/* Lowercase only: a digest has one spelling, so it can be used as a key as is. */
static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int wv_digest_parse_n(const char *s, size_t n, uint8_t hash[WV_SHA256_LEN]) {
  if (!s || n != 7 + 64 || memcmp(s, "sha256:", 7) != 0)
    return WV_EINVAL;
  for (size_t i = 0; i < WV_SHA256_LEN; i++) {
    int hi = hexval(s[7 + 2 * i]), lo = hexval(s[8 + 2 * i]);
    if (hi < 0 || lo < 0)
      return WV_EINVAL;
    if (hash)
      hash[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

int wv_digest_parse(const char *s, uint8_t hash[WV_SHA256_LEN]) {
  return s ? wv_digest_parse_n(s, strlen(s), hash) : WV_EINVAL;
}

bool wv_digest_valid(const char *s) { return wv_digest_parse(s, NULL) == 0; }
