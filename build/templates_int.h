/*
 * build/templates_int.h — what build/templates.c and
 * build/templates_freeze.c share. Not for other files.
 */
#ifndef WV_BUILD_TEMPLATES_INT_H
#define WV_BUILD_TEMPLATES_INT_H

#include "core/arena.h"
#include "core/buf.h"

#define OUT_MAX (4u << 20)

static inline const char *buf_to_arena(wv_arena_t *a, wv_buf_t *b) {
  return wv_arena_strndup(a, b->data ? b->data : "", b->len);
}

#endif
