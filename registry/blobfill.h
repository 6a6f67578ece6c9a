/*
 * registry/blobfill.h — concurrent first pulls of one upstream blob share one
 * upstream stream (architecture §5.2: "Concurrent fetches of the same upstream object
 * are coalesced").
 *
 * The first GET of a blob that is not cached leads: it streams from the
 * upstream to its client and into the blob cache's temp file, and publishes
 * that file (wv_bfill_start) and its progress. GETs of the same blob of the
 * same repository that arrive meanwhile follow: they send the bytes the
 * leader has written so far from the file and wait for more, so the upstream
 * sends the blob once however many clients pull it at the same time.
 *
 * A follower is held to the leader's outcome: when the leader's stream fails
 * or the bytes do not hash to the digest (wv_bfill_finish(f, false)), every
 * follower's connection is cut too, and since a follower announces the same
 * Content-Length the server holds back its completing chunk until the
 * follower's handler returns success (http/http.h), a client never receives
 * a whole wrong blob. A leader that does not stream into the cache (a
 * redirect, a small body, an error, a cache that refuses the blob) finishes
 * without starting; its followers then fetch on their own.
 *
 * The table of fills is one per process, created by the composition root
 * (core/main.c) and hung on wv_app_t.fills. Thread rules: worker threads only
 * (followers block). One leaf mutex for the table; each fill has its own
 * mutex and condition variable.
 */
#ifndef WV_BLOBFILL_H
#define WV_BLOBFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wv_bfill wv_bfill_t;
typedef struct wv_bfill_table wv_bfill_table_t;

/* The table of fills: 0 or WV_ENOMEM; free after the server stopped (NULL is a no-op). */
int wv_bfill_table_new(wv_bfill_table_t **out);
void wv_bfill_table_free(wv_bfill_table_t *t);

typedef enum {
  WV_BFILL_WAITING = 0, /* the leader has not started streaming (yet) */
  WV_BFILL_STREAMING,   /* bytes are arriving in the file */
  WV_BFILL_DONE,        /* complete and verified */
  WV_BFILL_FAILED,      /* the leader's stream failed or did not verify */
  WV_BFILL_NONE,        /* the leader finished without streaming into a file */
} wv_bfill_state_t;

/* Joins the fill of key, or starts it (*leader = true). NULL on OOM. */
wv_bfill_t *wv_bfill_join(wv_bfill_table_t *t, const char *key, bool *leader);

/*
 * Leader: the body is being written to the file open as fd (dup'ed here;
 * readable), length is the announced size or -1, media_type its type.
 * Returns 0 or WV_ENOMEM / WV_EIO (then followers fetch on their own).
 */
int wv_bfill_start(wv_bfill_t *f, int fd, int64_t length, const char *media_type);
/* Leader: written bytes are in the file. */
void wv_bfill_progress(wv_bfill_t *f, uint64_t written);
/* Leader: the end. ok = complete, verified and published. */
void wv_bfill_finish(wv_bfill_t *f, bool ok);

/*
 * Follower: waits until the leader started streaming or ended, at most
 * timeout_ms. Returns the state; for STREAMING and DONE fills *fd (the
 * fill's own descriptor, valid until wv_bfill_leave), *length and
 * media_type (up to mt_cap bytes).
 */
wv_bfill_state_t wv_bfill_wait_start(wv_bfill_t *f, int64_t timeout_ms, int *fd, int64_t *length,
                                     char *media_type, size_t mt_cap);
/*
 * Follower: waits until more than off bytes are written or the fill ended,
 * at most idle_ms. Returns the state and *written (bytes in the file);
 * WV_BFILL_STREAMING with *written == off means the wait timed out.
 */
wv_bfill_state_t wv_bfill_wait(wv_bfill_t *f, uint64_t off, int64_t idle_ms, uint64_t *written);

/* Leaves the fill (leader: after wv_bfill_finish). The last one frees it. */
void wv_bfill_leave(wv_bfill_t *f);
/* Whether anyone but the caller holds f (a follower waits on it). */
bool wv_bfill_followed(wv_bfill_t *f);

#endif
