/*
 * core/utf.c — strict UTF-8 decoding (see utf.h).
 */
#include "core/utf.h"

size_t wv_utf8_decode(const uint8_t *p, uint32_t *cp) {
  static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
  size_t len;
  uint32_t c = p[0];
  if (c < 0x80)
    return *cp = c, 1;
  if ((c & 0xe0) == 0xc0)
    len = 2, c &= 0x1f;
  else if ((c & 0xf0) == 0xe0)
    len = 3, c &= 0x0f;
  else if ((c & 0xf8) == 0xf0)
    len = 4, c &= 0x07;
  else
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL of a truncated sequence */
      return 0;
    c = c << 6 | (p[i] & 0x3f);
  }
  if (c < min_cp[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return 0;
  *cp = c;
  return len;
}
