#include "core/buf.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wv_buf_init(wv_buf_t *b, size_t max) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->max = max;
}

void wv_buf_free(wv_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void wv_buf_reset(wv_buf_t *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

int wv_buf_reserve(wv_buf_t *b, size_t n) {
  if (n > b->max || b->len > b->max - n)
    return WV_ETOOBIG;
  size_t need = b->len + n + 1; /* room for the terminating NUL */
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  if (cap > b->max + 1)
    cap = b->max + 1;
  char *p = realloc(b->data, cap);
  if (!p)
    return WV_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int wv_buf_append(wv_buf_t *b, const void *p, size_t n) {
  int rc = wv_buf_reserve(b, n);
  if (rc)
    return rc;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int wv_buf_puts(wv_buf_t *b, const char *s) { return wv_buf_append(b, s, strlen(s)); }
int wv_buf_putc(wv_buf_t *b, char c) { return wv_buf_append(b, &c, 1); }

int wv_buf_vprintf(wv_buf_t *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return WV_EINVAL;
  int rc = wv_buf_reserve(b, (size_t)n);
  if (rc)
    return rc;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int wv_buf_printf(wv_buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = wv_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void wv_buf_consume(wv_buf_t *b, size_t n) {
  if (n >= b->len) {
    wv_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

char *wv_buf_detach(wv_buf_t *b, size_t *len) {
  if (!b->data && wv_buf_reserve(b, 0))
    return NULL;
  char *p = b->data;
  if (len)
    *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}
