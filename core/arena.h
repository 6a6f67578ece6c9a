/*
 * core/arena.h — a per-request memory pool with cleanup hooks (nginx's pool).
 *
 * Everything allocated from an arena is released at once by wv_arena_free(),
 * after the cleanup hooks run in reverse order of registration. An arena has
 * a hard cap on the bytes it hands out; past the cap allocation returns NULL,
 * which callers treat as WV_ETOOBIG/WV_ENOMEM. Not thread-safe: one owner.
 */
#ifndef WV_ARENA_H
#define WV_ARENA_H

#include <stdarg.h>
#include <stddef.h>

typedef struct wv_arena wv_arena_t;
typedef void (*wv_cleanup_cb)(void *arg);

/* Creates an arena that hands out at most `cap` bytes (0 = 64 MiB). NULL on OOM. */
wv_arena_t *wv_arena_new(size_t cap);
/* Runs cleanups (last registered first) and frees every block. NULL is a no-op. */
void wv_arena_free(wv_arena_t *a);
/* Keeps the first block, drops the rest, runs cleanups: reuse for the next request.
 * An allocation above half the next block size gets a block of its own, freed here. */
void wv_arena_reset(wv_arena_t *a);

/* 16-byte aligned; NULL when the cap is reached or memory is exhausted. */
void *wv_arena_alloc(wv_arena_t *a, size_t n);
void *wv_arena_calloc(wv_arena_t *a, size_t n);
char *wv_arena_strdup(wv_arena_t *a, const char *s);
char *wv_arena_strndup(wv_arena_t *a, const char *s, size_t n);
char *wv_arena_sprintf(wv_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *wv_arena_vsprintf(wv_arena_t *a, const char *fmt, va_list ap);

/* Registers fn(arg) to run at free/reset. Returns 0 or WV_ENOMEM (fn is then NOT run). */
int wv_arena_on_cleanup(wv_arena_t *a, wv_cleanup_cb fn, void *arg);

/* Bytes handed out so far. */
size_t wv_arena_used(const wv_arena_t *a);

#endif
