/* storage/blobgc.c — mark-and-sweep collector of the blob store (see blobgc.h). */
#include "storage/blobgc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "storage/cas.h"
#include "storage/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFIX "sha256:"
#define PREFIX_LEN 7

/* The databases whose records may reference blob-store content. */
static const wv_db_t marked[] = {WV_DB_TOKENS,    WV_DB_BUILDS, WV_DB_MIRRORS,
                                 WV_DB_MANIFESTS, WV_DB_JOBS,   WV_DB_EMBEDDED};

/* ---- the set: open addressing on 32-byte digests (uniform: their first 8 bytes hash) ---- */

typedef struct {
  uint8_t (*slots)[32];
  uint8_t *used;
  size_t cap, n;
  int err;
} set_t;

static size_t slot_of(const set_t *t, const uint8_t sha[32]) {
  uint64_t h;
  memcpy(&h, sha, sizeof h);
  return (size_t)h & (t->cap - 1);
}

static bool set_has(const set_t *t, const uint8_t sha[32]) {
  if (!t->cap)
    return false;
  for (size_t i = slot_of(t, sha);; i = (i + 1) & (t->cap - 1)) {
    if (!t->used[i])
      return false;
    if (memcmp(t->slots[i], sha, 32) == 0)
      return true;
  }
}

static void set_put_raw(set_t *t, const uint8_t sha[32]) {
  size_t i = slot_of(t, sha);
  while (t->used[i] && memcmp(t->slots[i], sha, 32) != 0)
    i = (i + 1) & (t->cap - 1);
  if (!t->used[i]) {
    t->used[i] = 1;
    memcpy(t->slots[i], sha, 32);
    t->n++;
  }
}

static int set_grow(set_t *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  set_t bigger = {calloc(cap, 32), calloc(cap, 1), cap, 0, 0};
  if (!bigger.slots || !bigger.used) {
    free(bigger.slots);
    free(bigger.used);
    return WV_ENOMEM;
  }
  for (size_t i = 0; i < t->cap; i++)
    if (t->used[i])
      set_put_raw(&bigger, t->slots[i]);
  free(t->slots);
  free(t->used);
  *t = bigger;
  return 0;
}

static int set_put(set_t *t, const uint8_t sha[32]) {
  if (t->n >= WV_BLOBGC_MAX_REFS)
    return WV_ETOOBIG;
  if ((t->n + 1) * 2 > t->cap) {
    int rc = set_grow(t);
    if (rc)
      return rc;
  }
  set_put_raw(t, sha);
  return 0;
}

/* ---- mark ---- */

static int hexnib(unsigned char c) {
  return c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
}

/* Adds every "sha256:<64 lowercase hex>" of p[0..n) to the set. */
static int mark_bytes(set_t *t, const char *p, size_t n) {
  const char *end = p + n;
  while ((size_t)(end - p) >= PREFIX_LEN + 64) {
    const char *hit = memmem(p, (size_t)(end - p), PREFIX, PREFIX_LEN);
    if (!hit || (size_t)(end - hit) < PREFIX_LEN + 64)
      break;
    const unsigned char *h = (const unsigned char *)hit + PREFIX_LEN;
    uint8_t sha[32];
    bool ok = true;
    for (int i = 0; i < 32 && ok; i++) {
      int hi = hexnib(h[2 * i]), lo = hexnib(h[2 * i + 1]);
      ok = hi >= 0 && lo >= 0;
      sha[i] = (uint8_t)(hi << 4 | lo);
    }
    if (ok) {
      int rc = set_put(t, sha);
      if (rc)
        return rc;
    }
    p = hit + PREFIX_LEN;
  }
  return 0;
}

static int mark_cb(void *arg, const char *key, size_t klen, const void *val, size_t len,
                   int64_t expires_ms) {
  (void)expires_ms; /* wv_store_scan already skips expired records */
  set_t *t = arg;
  int rc = mark_bytes(t, key, klen);
  return rc ? rc : mark_bytes(t, val, len);
}

static bool keep_cb(void *arg, const uint8_t sha[32]) { return set_has(arg, sha); }

/*
 * With the Redis backend the blob directory is shared, so every database the
 * mark reads must be shared too: one kept per instance (none is today) may
 * hold references the other instances cannot see, and nothing is swept.
 * Returns the first such database, or -1.
 */
static int local_marked(wv_store_t *s) {
  if (!wv_store_db_shared(s, WV_DB_TOKENS))
    return -1; /* LMDB: one instance, everything local and visible */
  for (size_t i = 0; i < sizeof marked / sizeof marked[0]; i++)
    if (!wv_store_db_shared(s, marked[i]))
      return (int)marked[i];
  return -1;
}

static int run_locked(wv_store_t *s, wv_cas_t *c, int64_t now_ms, int64_t grace_ms,
                      wv_blobgc_stats_t *stats);

int wv_blobgc_run(wv_store_t *s, wv_cas_t *c, int64_t now_ms, int64_t grace_ms,
                  wv_blobgc_stats_t *stats) {
  if (stats)
    *stats = (wv_blobgc_stats_t){0};
  int local = local_marked(s);
  if (local >= 0)
    return WV_EUNSUPPORTED;
  char holder[WV_STORE_LOCK_HOLDER];
  int rc = wv_store_lock(s, WV_BLOBGC_LOCK, WV_BLOBGC_LOCK_TTL_MS, holder);
  if (rc)
    return rc; /* WV_EBUSY: another instance collects now */
  rc = run_locked(s, c, now_ms, grace_ms, stats);
  wv_store_unlock(s, WV_BLOBGC_LOCK, holder);
  return rc;
}

static int run_locked(wv_store_t *s, wv_cas_t *c, int64_t now_ms, int64_t grace_ms,
                      wv_blobgc_stats_t *stats) {
  set_t t = {0};
  wv_blobgc_stats_t st = {0};
  /* The cutoff is fixed before the mark reads anything (see the races in blobgc.h). */
  int64_t cutoff = now_ms - (grace_ms > 0 ? grace_ms : 0);
  int rc = 0;
  for (size_t i = 0; !rc && i < sizeof marked / sizeof marked[0]; i++)
    rc = wv_store_scan(s, marked[i], NULL, mark_cb, &t);
  st.refs = t.n;
  if (rc == WV_ETOOBIG)
    wv_warn("blob gc: more than %u referenced digests; nothing removed this time",
            (unsigned)WV_BLOBGC_MAX_REFS);
  if (!rc)
    rc = wv_cas_sweep(c, cutoff, keep_cb, &t, &st.removed, &st.bytes);
  free(t.slots);
  free(t.used);
  if (stats)
    *stats = st;
  return rc;
}

/* ---- the collector thread ---- */

struct wv_blobgc {
  wv_store_t *store;
  wv_cas_t *cas;
  int64_t interval_ms, grace_ms;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
};

static void *gc_main(void *arg) {
  wv_blobgc_t *g = arg;
  pthread_mutex_lock(&g->mu);
  while (!g->stop) {
    struct timespec ts = wv_deadline_ts(CLOCK_MONOTONIC, g->interval_ms);
    while (!g->stop && pthread_cond_timedwait(&g->cv, &g->mu, &ts) != ETIMEDOUT) {
    }
    if (g->stop)
      break;
    pthread_mutex_unlock(&g->mu);
    wv_blobgc_stats_t st;
    int rc = wv_blobgc_run(g->store, g->cas, wv_now_ms(), g->grace_ms, &st);
    if (rc == WV_EBUSY)
      wv_debug("blob gc: another instance is collecting; skipped");
    else if (rc == WV_EUNSUPPORTED)
      wv_warn("blob gc: nothing removed: database '%s' is kept by each instance, so what the "
              "others reference cannot be seen (docs/scale-out.md)",
              wv_store_db_name((wv_db_t)local_marked(g->store)));
    else if (rc)
      wv_warn("blob gc: %s", wv_strerror(rc));
    else if (st.removed)
      wv_info("blob gc: removed %llu blobs (%llu bytes); %llu digests referenced",
              (unsigned long long)st.removed, (unsigned long long)st.bytes,
              (unsigned long long)st.refs);
    pthread_mutex_lock(&g->mu);
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

int wv_blobgc_start(wv_store_t *s, wv_cas_t *c, int64_t interval_ms, int64_t grace_ms,
                    wv_blobgc_t **out) {
  *out = NULL;
  wv_blobgc_t *g = calloc(1, sizeof *g);
  if (!g)
    return WV_ENOMEM;
  *g = (wv_blobgc_t){.store = s, .cas = c, .interval_ms = interval_ms, .grace_ms = grace_ms};
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&g->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&g->mu, NULL);
  if (pthread_create(&g->thread, NULL, gc_main, g) != 0) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
    return WV_EINTERNAL;
  }
  *out = g;
  return 0;
}

void wv_blobgc_stop(wv_blobgc_t *g) {
  if (!g)
    return;
  pthread_mutex_lock(&g->mu);
  g->stop = true;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  pthread_join(g->thread, NULL);
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  free(g);
}
