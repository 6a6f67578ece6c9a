/*
 * storage/blobcache.h — a size-capped, least-recently-used cache of upstream
 * blobs on local disk (architecture §3.5: "streamed through with back-pressure, and
 * teed into the blob store when the blob cache is on").
 *
 * It is its own content-addressed store (storage/cas.h) under
 * <root>/blobs/sha256/..., kept apart from the main blob store so that
 * evicting a cached upstream layer can never remove a request's data: layer
 * or a rewritten config that happens to have the same digest.
 *
 * The index (digest → size, last use) lives in memory and is rebuilt at open
 * from the files (size, mtime); a hit moves the blob to the front and, at
 * most once an hour per blob, sets the file's mtime, so the order survives a
 * restart. Limits: max_bytes of blob content and WV_BCACHE_MAX_BLOBS blobs;
 * a blob unused for idle_ms is removed. Limits are enforced when a blob is
 * added and at open; the least recently used blobs go first. A blob removed
 * while a client is reading it stays readable through the open descriptor.
 *
 * Who may read which cached blob is not decided here: the /v2 proxy keeps a
 * per-repository cache entry (registry/cache.h, kind 'u') that expires, and
 * re-asks the upstream registry before serving the bytes again.
 *
 * Thread rules: every function may be called from any thread; one mutex
 * guards the index (a leaf lock, never held across file IO: evicted files
 * are unlinked after it is released). A writer belongs to one thread at a
 * time.
 */
#ifndef WV_BLOBCACHE_H
#define WV_BLOBCACHE_H

#include <stddef.h>
#include <stdint.h>

#define WV_BCACHE_MAX_BLOBS 1000000

typedef struct wv_bcache wv_bcache_t;
typedef struct wv_bcache_writer wv_bcache_writer_t;

typedef struct {
  uint64_t blobs, bytes;           /* what the cache holds now */
  uint64_t hits, misses, added;    /* since open */
  uint64_t evicted, evicted_bytes; /* since open, by size, count or idle time */
  uint64_t skipped;                /* blobs not cached: too big, disk low, write error */
} wv_bcache_stats_t;

/*
 * Opens (creating) the cache under root, indexes the blobs already there and
 * trims them to the limits. max_bytes > 0; idle_ms > 0. Returns 0 and *out
 * (free with wv_bcache_close), WV_EINVAL, WV_EIO or WV_ENOMEM.
 */
int wv_bcache_open(wv_bcache_t **out, const char *root, uint64_t max_bytes, int64_t idle_ms);
/* Frees b (writers must be finished first). NULL is a no-op. */
void wv_bcache_close(wv_bcache_t *b);

/*
 * Opens a cached blob for reading and marks it used: 0 with *fd (the
 * caller's to close) and *size, WV_ENOTFOUND, WV_EINVAL (bad digest), WV_EIO.
 */
int wv_bcache_open_blob(wv_bcache_t *b, const char *digest, int *fd, uint64_t *size);

/* 0 when the blob is cached (its size to *size, may be NULL), else WV_ENOTFOUND / WV_EINVAL. */
int wv_bcache_exists(wv_bcache_t *b, const char *digest, uint64_t *size);

/*
 * Starts caching a blob whose content the caller verifies itself (it hashes
 * the stream anyway; the cache does not hash it a second time). length is
 * the expected size or -1 when unknown; the writer reserves it (a quarter
 * of the cap when unknown) until it is committed or aborted, and writes past
 * it fail. Returns 0 and *out, or WV_ETOOBIG when the blob would take more
 * than a quarter of the cache, the writers in progress would hold more than
 * half of it, or the filesystem is low on space (then nothing is cached; not
 * an error for the caller's request), WV_EIO, WV_ENOMEM.
 */
int wv_bcache_begin(wv_bcache_t *b, int64_t length, wv_bcache_writer_t **out);
/* Appends n bytes; after an error the writer can only be aborted. */
int wv_bcache_write(wv_bcache_writer_t *w, const void *p, size_t n);
/*
 * Publishes the blob under digest, which the caller has checked the content
 * against, then trims the cache to its limits. Frees w in every case.
 * Returns 0, WV_EINVAL (bad digest), WV_EIO.
 */
int wv_bcache_commit(wv_bcache_writer_t *w, const char *digest);
/* The temp file's descriptor (readable, owned by w): bytes written so far can be read back. */
int wv_bcache_writer_fd(const wv_bcache_writer_t *w);
/* Drops what was written and frees w. NULL is a no-op. */
void wv_bcache_abort(wv_bcache_writer_t *w);

/* One-shot begin + write + commit of verified bytes. */
int wv_bcache_put(wv_bcache_t *b, const void *p, size_t n, const char *digest);

void wv_bcache_stats(wv_bcache_t *b, wv_bcache_stats_t *out);

#endif
