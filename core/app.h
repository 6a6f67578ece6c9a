/*
 * core/app.h — the state the composition root (core/main.c) shares with every
 * handler through wv_req_t.app: the configuration and the long-lived services.
 *
 * core/ includes no other folder, so the services appear here as incomplete
 * struct types; a handler includes the folder's header to use one. Everything
 * is created before the server starts and destroyed after it stopped, so a
 * handler may use any field without locking (each service is thread-safe).
 */
#ifndef WV_APP_H
#define WV_APP_H

#include "core/config.h"

struct wv_store;
struct wv_cas;
struct wv_bcache;
struct wv_upstream;
struct wv_job_engine;
struct wv_ratelimit;
struct wv_preflight;
struct wv_blobgc;
struct wv_park;
struct wv_proxy_flights;
struct wv_bfill_table;
struct wv_tagcache;
struct wv_build_table;
struct wv_layers_memo;

typedef struct {
  const wv_config_t *cfg;
  struct wv_store *store;       /* storage/store.h: the LMDB state store */
  struct wv_cas *cas;           /* storage/cas.h: the content-addressed blob store */
  struct wv_bcache *bcache;     /* storage/blobcache.h: upstream blob cache; NULL when off */
  struct wv_upstream *upstream; /* registry/upstream.h: upstream registry client */
  struct wv_job_engine *jobs;   /* core/job/job.h: builds and other child processes; park on it */
  /* core/ratelimit.h: NULL when that limit is off (rate-limit.enabled false, or both rates off) */
  struct wv_ratelimit *build_limit; /* a permit per new build */
  struct wv_ratelimit *pull_limit;  /* a permit per container request and manifest by digest */
  /* core/preflight.h: builder, disk and memory checks; NULL in tests without one */
  struct wv_preflight *preflight;
  struct wv_ratelimit *auth_limit; /* a permit per failed authentication, per client IP */
  struct wv_blobgc *blobgc;        /* storage/blobgc.h: NULL when storage.blob-gc is off */
  /* What the requests of one process share; created by main.c, never a file-scope static. */
  struct wv_park *park;              /* registry/park.h: pulls waiting for a build (a thread) */
  struct wv_proxy_flights *flights;  /* registry/proxy.h: upstream rounds in flight */
  struct wv_bfill_table *fills;      /* registry/blobfill.h: blobs streaming into the cache */
  struct wv_tagcache *tags;          /* registry/tagcache.h: tag -> digest, for a short while */
  struct wv_build_table *builds;     /* build/build.h: the lock around creating a build */
  struct wv_layers_memo *layer_memo; /* build/layers.h: data: layers verified lately */
} wv_app_t;

#endif
