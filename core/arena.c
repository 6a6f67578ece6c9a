#include "core/arena.h"
#include "core/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_MIN 4096
#define BLOCK_MAX ((size_t)1 << 20) /* the chain's blocks stop doubling here */
#define ALIGN 16

typedef struct block {
  struct block *next;
  size_t size, used;
  _Alignas(ALIGN) unsigned char data[];
} block_t;

typedef struct cleanup {
  struct cleanup *next;
  wv_cleanup_cb fn;
  void *arg;
} cleanup_t;

struct wv_arena {
  block_t *head;  /* current block; the first block is the tail of the list */
  block_t *large; /* blocks of one large allocation each, outside the growth chain */
  cleanup_t *cleanups;
  size_t cap, used;
};

static block_t *block_new(size_t n) {
  size_t size = n < BLOCK_MIN ? BLOCK_MIN : n;
  block_t *b = malloc(sizeof *b + size);
  if (!b)
    return NULL;
  b->next = NULL;
  b->size = size;
  b->used = 0;
  return b;
}

wv_arena_t *wv_arena_new(size_t cap) {
  wv_arena_t *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->cap = cap ? cap : (size_t)64 << 20;
  a->head = block_new(BLOCK_MIN - sizeof(block_t));
  if (!a->head) {
    free(a);
    return NULL;
  }
  return a;
}

static void run_cleanups(wv_arena_t *a) {
  cleanup_t *c = a->cleanups;
  a->cleanups = NULL;
  /* Cleanup records live in the arena itself, so they are freed with it. */
  for (; c; c = c->next)
    c->fn(c->arg);
}

void wv_arena_reset(wv_arena_t *a) {
  run_cleanups(a);
  while (a->large) {
    block_t *next = a->large->next;
    free(a->large);
    a->large = next;
  }
  block_t *b = a->head;
  while (b->next) {
    block_t *next = b->next;
    free(b);
    b = next;
  }
  a->head = b;
  b->used = 0;
  a->used = 0;
}

void wv_arena_free(wv_arena_t *a) {
  if (!a)
    return;
  wv_arena_reset(a);
  free(a->head);
  free(a);
}

void *wv_arena_alloc(wv_arena_t *a, size_t n) {
  size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
  if (need < n || need > a->cap - a->used)
    return NULL;
  block_t *b = a->head;
  if (b->size - b->used < need) {
    size_t want = b->size * 2;
    if (want > BLOCK_MAX)
      want = BLOCK_MAX;
    if (need > want / 2) {
      /* A large allocation gets a block of its own beside the chain: the current
       * block keeps serving small ones, and the next block is not sized after it
       * (a 64 KiB buffer used to make the next block 128 KiB and strand the rest). */
      block_t *lb = block_new(need);
      if (!lb)
        return NULL;
      lb->used = need;
      lb->next = a->large;
      a->large = lb;
      a->used += need;
      return lb->data;
    }
    block_t *nb = block_new(want); /* grow geometrically */
    if (!nb)
      return NULL;
    nb->next = b;
    a->head = b = nb;
  }
  void *p = b->data + b->used;
  b->used += need;
  a->used += need;
  return p;
}

void *wv_arena_calloc(wv_arena_t *a, size_t n) {
  void *p = wv_arena_alloc(a, n);
  if (p)
    memset(p, 0, n);
  return p;
}

char *wv_arena_strndup(wv_arena_t *a, const char *s, size_t n) {
  char *p = wv_arena_alloc(a, n + 1);
  if (!p)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *wv_arena_strdup(wv_arena_t *a, const char *s) { return wv_arena_strndup(a, s, strlen(s)); }

char *wv_arena_vsprintf(wv_arena_t *a, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return NULL;
  char *p = wv_arena_alloc(a, (size_t)n + 1);
  if (p)
    vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *wv_arena_sprintf(wv_arena_t *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = wv_arena_vsprintf(a, fmt, ap);
  va_end(ap);
  return p;
}

int wv_arena_on_cleanup(wv_arena_t *a, wv_cleanup_cb fn, void *arg) {
  cleanup_t *c = wv_arena_alloc(a, sizeof *c);
  if (!c)
    return WV_ENOMEM;
  c->fn = fn;
  c->arg = arg;
  c->next = a->cleanups;
  a->cleanups = c;
  return 0;
}

size_t wv_arena_used(const wv_arena_t *a) { return a->used; }
