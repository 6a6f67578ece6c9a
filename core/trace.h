/*
 * core/trace.h — per-stage timestamps of container requests, for finding where a request's time
 * goes (docs/benchmarks.md, "Issue 15, 2026-12-07"). Compiled in only with the CMake option
 * WAVED_CREQ_TRACE (a measurement build, never shipped); otherwise every macro is empty.
 *
 * A request's stages are stamped into its wv_req_t (req->trace) on the thread that reaches
 * them; the committer's (batch taken, first fdatasync begun and ended, commit done) are kept
 * per batch on the committer thread and copied into each request it completes. fdatasync(2)
 * itself is wrapped in the traced build (core/trace.c) to see LMDB's two. When the response
 * has been handed to the socket the stamps become one sample; at exit the samples' per-stage
 * p50/p90/p99/p99.9/max go to the file named by WAVED_TRACE_OUT (else stderr).
 */
#ifndef WV_TRACE_H
#define WV_TRACE_H

#include <stdint.h>

enum {
  WV_TRACE_PARSED,    /* IO loop: parsed, dispatched */
  WV_TRACE_WORKER,    /* the handler starts (on a worker, or inline) */
  WV_TRACE_QUEUED,    /* the records are queued on the group commit: the handler's work is done */
  WV_TRACE_TAKEN,     /* the committer took the batch */
  WV_TRACE_SYNC1,     /* its first fdatasync begins: LMDB's page writes are done */
  WV_TRACE_SYNC1_END, /* the first fdatasync returned */
  WV_TRACE_COMMITTED, /* mdb_txn_commit returned: the second fdatasync (meta page) is done */
  WV_TRACE_LOOP,      /* back on the IO loop */
  WV_TRACE_WRITTEN,   /* the response was handed to the socket */
  WV_TRACE_N
};

#ifdef WV_CREQ_TRACE
/* The stamps of the request this thread is running (NULL when none). */
extern _Thread_local int64_t *wv_trace_cur;
/* The committer's stamps of the batch it is committing. */
extern _Thread_local int64_t wv_trace_batch[WV_TRACE_N];
int64_t wv_trace_now(void);
/* Copies the batch stages into t (the committer thread, completing a request). */
void wv_trace_from_batch(int64_t *t);
/* True when the running binary's name ends in "-worker": its container requests skip the IO
 * loop's attempt (the worker path of before, for an A/B of one traced build). */
int wv_trace_worker_only(void);
/* The committer finished a batch of n requests (its page writes are counted by core/trace.c). */
void wv_trace_commit_done(uint64_t n);
/* One finished request: its stamps become a sample (any thread). */
void wv_trace_record(const int64_t *t);
#define WV_TRACE_AT(t, stage) ((t)[stage] = wv_trace_now())
#define WV_TRACE_CUR(stage)                                                                        \
  do {                                                                                             \
    if (wv_trace_cur)                                                                              \
      wv_trace_cur[stage] = wv_trace_now();                                                        \
  } while (0)
#define WV_TRACE_BATCH(stage) (wv_trace_batch[stage] = wv_trace_now())
#else
#define WV_TRACE_AT(t, stage) ((void)0)
#define WV_TRACE_CUR(stage) ((void)0)
#define WV_TRACE_BATCH(stage) ((void)0)
#endif

#endif
