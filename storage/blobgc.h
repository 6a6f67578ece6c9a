/*
 * storage/blobgc.h — the blob store's collector: content that no live token,
 * record or cache entry references is removed in the background
 * (docs/storage.md, docs/security.md).
 *
 * Mark and sweep. Mark: every key and value of the state-store databases
 * that can reference blob-store content — tokens (data: layers as
 * cas:<digest>), builds, mirrors, the manifest/blob cache, jobs and the
 * embedded registry — is searched for "sha256:<64 hex>", and each digest
 * found goes into a set. Expired records are not read, so a token past its
 * lifetime stops protecting its layers. Persisted request records (history
 * that outlives tokens, never served as content), scans and vulnerability
 * data are not read. Sweep: storage/cas.c removes each committed blob not in
 * the set and last written before the run started minus the grace period.
 *
 * Races. A writer commits a blob before it writes the record that references
 * it, and a commit always writes a fresh file (mtime = now, also when the same
 * content was stored before). So a blob whose record is not yet in the mark's
 * view was written after (run start - grace) unless its writer spent longer
 * than the grace period between the two steps: storage.blob-gc.grace (1h by
 * default) bounds that. A reader that holds a blob open keeps its bytes.
 *
 * Several instances (state.backend: redis, a shared blob directory,
 * docs/scale-out.md): a run first takes the cluster-wide lock "blobgc"
 * (WV_BLOBGC_LOCK_TTL_MS, released at the end), so one instance collects at a
 * time, and it marks from Redis what every instance references. It refuses to
 * sweep (WV_EUNSUPPORTED) if a database it must mark is kept per instance
 * (none is today: the job records are in Redis too, written by the job queue):
 * blobs only another instance's local records reference cannot be proven
 * unreferenced.
 *
 * Memory: the set holds 32 bytes per referenced digest, at most
 * WV_BLOBGC_MAX_REFS; past it the run keeps everything (logged) rather than
 * guess. Thread rules: wv_blobgc_run may run on any thread; the collector
 * thread of wv_blobgc_start runs it every interval.
 */
#ifndef WV_BLOBGC_H
#define WV_BLOBGC_H

#include <stdint.h>

struct wv_store;
struct wv_cas;

#define WV_BLOBGC_MAX_REFS (8u << 20)
#define WV_BLOBGC_LOCK "blobgc"
#define WV_BLOBGC_LOCK_TTL_MS (3600 * 1000LL) /* a run longer than this may overlap another */

typedef struct {
  uint64_t refs;    /* distinct digests referenced */
  uint64_t removed; /* blobs removed */
  uint64_t bytes;   /* their bytes */
} wv_blobgc_stats_t;

/*
 * One collection: mark from s, sweep c, keeping blobs written less than
 * grace_ms before now_ms. Returns 0, WV_ETOOBIG (too many references: nothing
 * removed), WV_ENOMEM, WV_ESTORE or WV_EIO; with Redis also WV_EBUSY (another
 * instance holds the lock), WV_EUNSUPPORTED (a marked database is local: see
 * above) or WV_EUNAVAIL. stats may be NULL.
 */
int wv_blobgc_run(struct wv_store *s, struct wv_cas *c, int64_t now_ms, int64_t grace_ms,
                  wv_blobgc_stats_t *stats);

typedef struct wv_blobgc wv_blobgc_t;

/* Starts the collector thread (a run every interval_ms). 0, WV_ENOMEM or WV_EINTERNAL. */
int wv_blobgc_start(struct wv_store *s, struct wv_cas *c, int64_t interval_ms, int64_t grace_ms,
                    wv_blobgc_t **out);
/* Stops and joins the thread (a run in progress finishes first). NULL is a no-op. */
void wv_blobgc_stop(wv_blobgc_t *g);

#endif
