/* core/ansi.c — terminal escape sequences out of builder output (see ansi.h). */
#include "core/ansi.h"

#define ESC 0x1b
#define BEL 0x07

/* Length of the escape sequence at s[i] (s[i] == ESC), within len. */
static size_t seq_len(const char *s, size_t i, size_t len) {
  size_t j = i + 1;
  if (j >= len)
    return 1;
  if (s[j] == '[') { /* CSI: parameters and intermediates, then one final byte @..~ */
    for (j++; j < len; j++)
      if ((unsigned char)s[j] >= 0x40 && (unsigned char)s[j] <= 0x7e)
        return j - i + 1;
    return len - i;
  }
  if (s[j] == ']') { /* OSC: up to BEL or ESC '\' */
    for (j++; j < len; j++) {
      if (s[j] == BEL)
        return j - i + 1;
      if (s[j] == ESC && j + 1 < len && s[j + 1] == '\\')
        return j - i + 2;
    }
    return len - i;
  }
  /* nF / Fp / Fe escapes: intermediates 0x20-0x2f (ESC ( B selects a charset), then a final. */
  while (j < len && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] <= 0x2f)
    j++;
  return j < len ? j - i + 1 : len - i;
}

size_t wv_ansi_strip(char *s, size_t len) {
  size_t w = 0;
  for (size_t i = 0; i < len;) {
    if (s[i] == ESC) {
      i += seq_len(s, i, len);
      continue;
    }
    s[w++] = s[i++];
  }
  if (w < len)
    s[w] = '\0';
  return w;
}
