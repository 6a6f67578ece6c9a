/*
 * core/buf.h — a growable byte buffer with a hard maximum (curl's dynbuf).
 *
 * The maximum is set at init and can never be exceeded: an append that would
 * pass it fails with WV_ETOOBIG and leaves the buffer as it was. data is
 * always NUL-terminated (the NUL is not counted in len) once anything was
 * appended. The buffer owns data; wv_buf_free() releases it.
 */
#ifndef WV_BUF_H
#define WV_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
  char *data;
  size_t len;
  size_t cap;
  size_t max;
} wv_buf_t;

void wv_buf_init(wv_buf_t *b, size_t max);
void wv_buf_free(wv_buf_t *b);
/* Forgets the content but keeps the allocation. */
void wv_buf_reset(wv_buf_t *b);
int wv_buf_append(wv_buf_t *b, const void *p, size_t n);
int wv_buf_puts(wv_buf_t *b, const char *s);
int wv_buf_putc(wv_buf_t *b, char c);
int wv_buf_printf(wv_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int wv_buf_vprintf(wv_buf_t *b, const char *fmt, va_list ap);
/* Makes room for n more bytes (within max); returns 0, WV_ETOOBIG or WV_ENOMEM. */
int wv_buf_reserve(wv_buf_t *b, size_t n);
/* Drops the first n bytes (n > len drops everything). */
void wv_buf_consume(wv_buf_t *b, size_t n);
/* Hands the data to the caller (free() it; never NULL on success) and resets b. */
char *wv_buf_detach(wv_buf_t *b, size_t *len);

#endif
