/*
 * core/base64.c — strict standard base64 decoding (core/base64.h).
 */
#include "core/base64.h"
#include "core/err.h"

#include <stdint.h>

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

long long wv_base64_decoded_len(const char *s, size_t n) {
  if (n % 4)
    return -1;
  size_t pad = 0;
  if (n && s[n - 1] == '=')
    pad = (n >= 2 && s[n - 2] == '=') ? 2 : 1;
  for (size_t i = 0; i < n - pad; i++)
    if (b64val((unsigned char)s[i]) < 0)
      return -1;
  return (long long)(n / 4 * 3 - pad);
}

size_t wv_base64_decode_into(const char *s, size_t n, unsigned char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i += 4) {
    int v[4];
    int k = 0;
    for (; k < 4 && s[i + k] != '='; k++)
      v[k] = b64val((unsigned char)s[i + k]);
    uint32_t w = 0;
    for (int j = 0; j < k; j++)
      w |= (uint32_t)v[j] << (18 - 6 * j);
    out[o++] = (unsigned char)(w >> 16);
    if (k > 2)
      out[o++] = (unsigned char)(w >> 8);
    if (k > 3)
      out[o++] = (unsigned char)w;
  }
  return o;
}

bool wv_base64_canonical(const char *s, size_t n) {
  if (n < 4 || s[n - 1] != '=')
    return true;
  bool two = s[n - 2] == '=';
  int last = b64val((unsigned char)s[n - (two ? 3 : 2)]);
  return last >= 0 && (last & (two ? 0x0f : 0x03)) == 0;
}

int wv_base64_decode(wv_arena_t *a, const char *s, size_t n, char **out, size_t *outlen) {
  long long len = wv_base64_decoded_len(s, n);
  if (len < 0)
    return WV_EINVAL;
  unsigned char *p = wv_arena_alloc(a, (size_t)len + 1);
  if (!p)
    return WV_ENOMEM;
  *outlen = wv_base64_decode_into(s, n, p);
  p[*outlen] = '\0';
  *out = (char *)p;
  return 0;
}
