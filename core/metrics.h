/*
 * core/metrics.h — the counters behind /metrics (docs/operations.md, "Metrics").
 *
 * The hot path pays for a counter with one plain load and one plain store:
 * every thread that counts gets its own cache-line-aligned shard of counters
 * (claimed on its first count, kept for the process's life) and only that
 * thread writes it, with relaxed atomic loads and stores, so there is no lock,
 * no locked instruction and no shared cache line. A scrape sums the shards.
 * Threads past WV_METRICS_SHARDS share one overflow shard with relaxed
 * fetch-adds. Counters of cold paths (upstream requests, jobs) live in small
 * tables under a mutex.
 *
 * Everything is process-global (one server per process); wv_metrics_enable
 * turns the hot-path hooks on or off (metrics.enabled), which the benchmark
 * uses to measure what they cost.
 *
 * Thread rules: every function may be called from any thread, at any time.
 */
#ifndef WV_METRICS_H
#define WV_METRICS_H

#include "core/buf.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define WV_METRICS_SHARDS 128    /* threads with a private shard */
#define WV_METRICS_REGISTRIES 64 /* upstream registries counted by name; then "other" */
#define WV_METRICS_KINDS 16      /* job kinds */

/* Route classes of the request counters (wv_metrics_route_class). */
typedef enum {
  WV_METRICS_ROUTE_MANIFEST = 0, /* /v2/.../manifests/... */
  WV_METRICS_ROUTE_BLOB,         /* /v2/.../blobs/... */
  WV_METRICS_ROUTE_V2,           /* the rest of /v2 (ping, tags) */
  WV_METRICS_ROUTE_CONTAINER,    /* POST /v1alpha2/container, /container-token: the front door */
  WV_METRICS_ROUTE_API,     /* the rest of the Wave API (status, records, builds, scans, mirrors) */
  WV_METRICS_ROUTE_VIEW,    /* HTML pages under /view */
  WV_METRICS_ROUTE_METRICS, /* /metrics */
  WV_METRICS_ROUTE_HEALTH,  /* /health, /service-info, /openapi */
  WV_METRICS_ROUTE_OTHER,   /* any other route */
  WV_METRICS_ROUTE_UNROUTED, /* no route matched (404/405) */
  WV_METRICS_ROUTE_COUNT
} wv_metrics_route_t;

/* Hot-path and server counters. */
typedef enum {
  WV_METRICS_HOT_HIT = 0, /* a /v2 request answered on the IO loop */
  WV_METRICS_HOT_MISS,    /* a /v2 request handed to a worker */
  WV_METRICS_CONN_OPENED, /* connections accepted */
  WV_METRICS_CONN_CLOSED, /* connections closed (open = opened - closed) */
  WV_METRICS_PARKED_IN,   /* requests parked on a job */
  WV_METRICS_PARKED_OUT,  /* parked requests resumed or dropped (parked = in - out) */
  WV_METRICS_ACCESS_LOG,  /* access-log lines written */
  WV_METRICS_COUNTERS
} wv_metrics_counter_t;

/* Turns the hot-path hooks on (the default) or off. */
void wv_metrics_enable(bool on);
bool wv_metrics_enabled(void);

/* Monotonic nanoseconds for a request's start; 0 when metrics are off. */
uint64_t wv_metrics_start(void);

/* The class of a request path; routed is false when no route matched. */
wv_metrics_route_t wv_metrics_route_class(const char *path, bool routed);

/* Counts one answered request: its class, status and time since t0 (wv_metrics_start). */
void wv_metrics_request(wv_metrics_route_t cls, int status, uint64_t t0);

/* Adds n to counter c (hot path: the calling thread's shard). */
void wv_metrics_add(wv_metrics_counter_t c, uint64_t n);

/*
 * One upstream request to registry (a host[:port]): its duration and whether
 * it failed (a transport error or a 5xx). Cold path: a mutex.
 */
void wv_metrics_upstream(const char *registry, uint64_t ns, bool error);

/*
 * A job of kind that ended in state ("SUCCEEDED", "FAILED") after running ns
 * (0 when it never started). Cold path: a mutex.
 */
void wv_metrics_job_end(const char *kind, const char *state, int64_t ns);

/* The sum over all shards of counter c. */
uint64_t wv_metrics_sum(wv_metrics_counter_t c);

/*
 * Writes the families kept here (requests, hot path, connections, parked,
 * upstream, finished jobs, process) in the Prometheus text format (0.0.4).
 * 0 or the buffer's error.
 */
int wv_metrics_write(wv_buf_t *b);

/* Helpers for the other families a scrape adds (http/metrics_route.c). */
int wv_metrics_family(wv_buf_t *b, const char *name, const char *type, const char *help);
/* Escapes a label value (\\, \", \n) into b. */
int wv_metrics_label(wv_buf_t *b, const char *v);

/* Forgets every count (tests). */
void wv_metrics_reset(void);

#endif
