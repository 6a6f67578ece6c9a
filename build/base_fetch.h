/*
 * build/base_fetch.h — the layers of a pinned base image fetched into the blob store while an
 * embedded build runs (docs/builds.md "The embedded registry", "Seeded layouts").
 *
 * When waved pinned a build's FROM (build_prep.c, "The base image check") it holds the base's
 * manifest (its gzip layers G) and config (their uncompressed digests X, rootfs.diff_ids),
 * resolved with the caller's credentials. Without a map X -> G buildah's oci: push gzips the
 * base again and the import hashes and copies it. So, once the build is submitted, a fetch
 * thread GETs each layer G the blob store lacks from the base's registry
 * (registry/fetch.h wv_fetch_follow: acting for the caller, Wave's redirect policy, at most
 * the descriptor's size, committed only when the bytes hash to G), then maps it
 * (storage/embedded.h wv_embedded_map_blob: inflates G itself and records X -> G only when
 * the config's X is what G holds). The build's seed-layout step, just before the push, waits
 * for layers still in flight only while that is projected to be cheaper than buildah gzipping
 * them (wv_base_fetch_wait), then seeds the layout with every layer mapped by then.
 *
 * Bounds: one deadline per fetch (wave.build.timeout from its start, over all its layers, not
 * per layer), a budget per base (WV_BASE_FETCH_BASE_MAX bytes of layers), a free-disk check
 * before it starts (WV_BASE_FETCH_DISK_MARGIN), and each layer in flight counts the builds that
 * want it: once none does (each was released: its seed step is done, or it ended, whichever
 * came first; wv_base_fetch_release), it stops. A build counts once in each layer it started or
 * joined and is released once; a build that joined nothing holds nothing. The table's stop flag
 * is also checked while a GET waits for the registry's answer.
 *
 * Builds of one base share the fetch of each layer (the table is keyed by G). At most
 * WV_BASE_FETCH_THREADS fetch threads run at once; past that a build is not prefetched and
 * pushes as before. A failure is logged and never fails the build.
 *
 * Thread rules: every function may be called from any thread; one mutex (a leaf: never held
 * across I/O) and one condition variable; free stops the fetches and joins their threads, and
 * must run before the services they use (store, blob store, upstream client) are closed, and
 * after the job engine given to wv_base_fetch_start is freed (its end callbacks release into
 * the table).
 */
#ifndef WV_BASE_FETCH_H
#define WV_BASE_FETCH_H

#include "core/app.h"
#include "core/arena.h"
#include "core/job/job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_BASE_FETCH_THREADS 4         /* fetch threads at once */
#define WV_BASE_FETCH_LAYERS 128        /* layers of one base looked at */
#define WV_BASE_FETCH_MAX (16ULL << 30) /* bytes of one layer fetched */
/* The budget of one base: a base whose gzip layers sum above this is not prefetched. */
#define WV_BASE_FETCH_BASE_MAX (4ULL << 30)
/* Free bytes that must remain under storage.path once the layers to fetch are written; else the
 * build is not prefetched (its push gzips, as without a prefetch). */
#define WV_BASE_FETCH_DISK_MARGIN (1ULL << 30)
#define WV_BASE_FETCH_WAIT_MAX_MS 60000 /* the seed step's wait, at most */
/* What the seed step weighs, measured on the benchmark machine (docs/benchmarks.md "Fourth
 * pass"): buildah 1.28's push gzipped the 54 MB of the bench's base in 0.66-0.78 s (about
 * 75 MB/s), and inflating and hashing its 52 MB gzip layer took 0.45 s (about 115 MB/s). */
#define WV_BASE_FETCH_GZIP_BYTES_PER_MS 75000
#define WV_BASE_FETCH_INFLATE_BYTES_PER_MS 115000
/* The fetch threads run at this nice value (Linux: per thread), below the builders they serve:
 * a prefetch that falls behind only means the push gzips, as without it. */
#define WV_BASE_FETCH_NICE 10

/* One gzip layer of a base image and the uncompressed digest its config claims for it. */
typedef struct wv_base_fetch_layer_s {
  const char *digest; /* G */
  int64_t size;
  const char *media_type;
  const char *diff_id; /* X, rootfs.diff_ids[i] */
} wv_base_fetch_layer_t;

typedef struct wv_base_fetch_table wv_base_fetch_table_t;

/* The table of fetches: 0 or WV_ENOMEM. free: stops and joins (NULL is a no-op). */
int wv_base_fetch_table_new(wv_base_fetch_table_t **out);
void wv_base_fetch_table_free(wv_base_fetch_table_t *t);

/*
 * The gzip layers of an image manifest paired with its config's rootfs.diff_ids (arena).
 * Layers of other types (zstd, plain tar, foreign) are left out; a manifest whose layer count
 * is not the config's gives none. 0 (*n may be 0), WV_EPARSE, WV_ETOOBIG (more than
 * WV_BASE_FETCH_LAYERS layers), WV_ENOMEM.
 */
int wv_base_fetch_layers(wv_arena_t *a, const char *manifest, size_t mlen, const char *config,
                         size_t clen, wv_base_fetch_layer_t **out, size_t *n);

/*
 * Whether a base may be prefetched: total (bytes of all its gzip layers), need (bytes of those
 * the blob store lacks) and the free bytes of the blob store's file system. 0; WV_ETOOBIG
 * (total above WV_BASE_FETCH_BASE_MAX), WV_ENOSPC (free - need under WV_BASE_FETCH_DISK_MARGIN).
 */
int wv_base_fetch_admit(uint64_t total, uint64_t need, uint64_t free_bytes);

/*
 * Starts fetching and mapping the layers of <registry>/<image> that are neither mapped nor in
 * flight already, acting for who (registry/upstream.h), on a thread of its own, for build (its
 * job id, at most WV_JOB_ID_MAX bytes). build counts as interested in those layers and in the
 * unmapped ones another build's fetch has in flight (it joins them), until
 * wv_base_fetch_release(t, build): its seed step calls that, and with jobs (the engine running
 * build) so does the end of its job, however it ends (wv_job_on_done; at once when it ended
 * already, or when it cannot be waited for). Returns the number of layers it took on (0:
 * nothing to do, or no thread free; it may still have joined some), or a negative WV_E* (then
 * it holds nothing).
 */
int wv_base_fetch_start(wv_base_fetch_table_t *t, const wv_app_t *app, wv_job_engine_t *jobs,
                        const char *build, const char *registry, const char *image, const char *who,
                        const wv_base_fetch_layer_t *layers, size_t n);

/*
 * build no longer needs its base's layers (its seed step is done, or it ended): each layer it
 * started or joined loses its one count; a layer none wants any more is stopped (not fetched,
 * or its GET aborted). Once per build: a second call, or one for a build that joined nothing,
 * changes nothing. True when build held interest.
 */
bool wv_base_fetch_release(wv_base_fetch_table_t *t, const char *build);

/* Builds holding interest now (started or joined, not released). */
size_t wv_base_fetch_builds(wv_base_fetch_table_t *t);

/* Layers in flight now (all builds). */
size_t wv_base_fetch_inflight(wv_base_fetch_table_t *t);

/*
 * Waits while one of the layers is in flight and its projected end (bytes left at the rate
 * seen so far, then the inflate) comes sooner than buildah would gzip it, at most
 * WV_BASE_FETCH_WAIT_MAX_MS, and no longer than the gzip of what it waits for. Returns the
 * ms waited.
 */
int64_t wv_base_fetch_wait(wv_base_fetch_table_t *t, const wv_base_fetch_layer_t *layers, size_t n);

/*
 * The seed-layout step argument for layers (arena JSON) and the step function: waits
 * (wv_base_fetch_wait) and seeds <workdir>/oci with every mapped layer
 * (wv_embedded_seed_layout), logging "build layout …: N of M base layers seeded". Never fails
 * the build. register: WV_BUILDER_SEED_FN (build/builder.h), fn_arg app; the table is
 * wv__build_fetches(app).
 */
const char *wv_base_fetch_seed_arg(wv_arena_t *a, const wv_base_fetch_layer_t *layers, size_t n);
int wv_base_fetch_register(wv_job_engine_t *e, const wv_app_t *app);

#endif
