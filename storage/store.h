/*
 * storage/store.h — the LMDB state store: typed records with expiry, written
 * through one group-commit thread.
 *
 * A record is a value (JSON text in practice, any bytes allowed) plus an
 * expiry instant in unix milliseconds (0 = never). Keys are NUL-terminated
 * strings of 1..WV_STORE_KEY_MAX bytes; values are at most WV_STORE_VALUE_MAX
 * bytes. Past a cap a call fails with WV_ETOOBIG; an empty key is WV_EINVAL.
 * An expired record reads as WV_ENOTFOUND even before the sweeper removes it.
 *
 * Writes: every write goes to one committer thread, which gathers the writes
 * pending at that moment (waiting up to commit_delay_us for more while writes come faster
 * than commits, at most
 * WV_STORE_BATCH_MAX requests), applies them in one LMDB write transaction,
 * commits it durably (fsync) and then completes each request with its own
 * result. The blocking calls (put, put_nx, del, incr, apply, sweep) return
 * only after their write is on disk, so "answered 200" means "on disk". One
 * failing request never fails the others of its batch.
 *
 * Reads (get, view) run on the calling thread in a read-only transaction and
 * never wait for the committer. They may run on any number of threads.
 *
 * Thread rules: every function may be called from any thread, except that
 * the blocking write calls must not be called from a wv_store_done_cb (it
 * runs on the committer thread; they return WV_EBUSY there) and no store call
 * at all may be made from inside a wv_store_view_cb (the read lock it holds
 * is not recursive). wv_store_close must be called once, after every other
 * caller is done. One wv_store_t per directory per process (an LMDB rule).
 *
 * Shared databases (state.backend: redis, docs/scale-out.md): after
 * wv_store_use_redis the databases several instances must share (tokens,
 * requests, builds, build targets, counters, mirrors, scans, the manifest
 * cache, the embedded registry, the job records: wv_rstore_holds) live in
 * Redis and the others stay in LMDB; every function below keeps
 * its contract, with these differences for the shared ones: a write is
 * durable as Redis's persistence settings make it; wv_store_snap_view answers
 * from the local cache of immutable entries or returns WV_EBUSY (see there); wv_store_scan is not
 * in key order; wv_store_sweep has nothing to do (Redis expires keys itself); and an unreachable
 * Redis is WV_EUNAVAIL.
 */
#ifndef WV_STORE_H
#define WV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The named databases. The expiry index is internal and not listed. */
typedef enum {
  WV_DB_TOKENS = 0,    /* container-request token → request record */
  WV_DB_REQUESTS,      /* request id → persisted request record */
  WV_DB_BUILDS,        /* build id → build record */
  WV_DB_BUILD_TARGETS, /* target image → build id */
  WV_DB_COUNTERS,      /* counter name → decimal integer (wv_store_incr) */
  WV_DB_MIRRORS,       /* mirror id → mirror record */
  WV_DB_SCANS,         /* scan id → scan record */
  WV_DB_MANIFESTS,     /* manifest cache */
  WV_DB_META,          /* store metadata; "schema" holds the schema version */
  WV_DB_JOBS,          /* job id → job record (core/job/job.h, storage/jobstore.h) */
  WV_DB_EMBEDDED,      /* embedded build registry: tags, manifests, blob links */
  WV_DB_VULNS,         /* OSV vulnerability records and package index (scan/osv.h) */
  WV_DB_COUNT
} wv_db_t;

#define WV_STORE_SCHEMA_VERSION 1
#define WV_STORE_KEY_MAX 500                  /* bytes, without the NUL */
#define WV_STORE_VALUE_MAX (8u * 1024 * 1024) /* bytes */
#define WV_STORE_BATCH_MAX 512                /* requests per write transaction */
#define WV_STORE_QUEUE_MAX 16384              /* requests waiting for the committer */
#define WV_STORE_APPLY_MAX 64                 /* ops in one wv_store_apply */

typedef struct wv_store wv_store_t;

typedef enum {
  WV_STORE_PUT = 0, /* write key = val (replaces; sets expiry) */
  WV_STORE_PUT_NX,  /* write only if absent or expired, else WV_EEXISTS */
  WV_STORE_DEL,     /* delete if present (idempotent: absent is not an error) */
  WV_STORE_INCR     /* add delta to a decimal counter (absent/expired = 0) */
} wv_store_op_kind_t;

/*
 * One write. key, val are borrowed: submit/apply copy them before returning.
 * For INCR, expires_ms applies only when the counter is created (a counter
 * keeps the expiry it was created with, which makes fixed rate-limit windows).
 */
typedef struct {
  wv_store_op_kind_t kind;
  wv_db_t db;
  const char *key;
  const void *val;
  size_t val_len;
  int64_t expires_ms; /* unix ms, 0 = never */
  /*
   * INCR: the delta. PUT/PUT_NX of a new expiry, local store: the early index time: when
   * 0 < delta < expires_ms, the expiry index entry is first made at that time and the sweep
   * reaching it moves it to expires_ms (the record is removed at expires_ms as ever, never
   * earlier). Two records written together with the same early time get adjacent index
   * entries: one leaf of the index, one page fewer per commit (a container request's token and
   * request record). 0 = at expires_ms. (One field for both, so that every positional
   * initializer stays valid.)
   */
  int64_t delta;
} wv_store_op_t;

/*
 * Completion of an asynchronous write, called once on the committer thread
 * after the write is durable (rc == 0) or failed. value is the counter's new
 * value for INCR, 0 otherwise. Must not block for long; bounce to your own
 * loop with uv_async_send.
 */
typedef void (*wv_store_done_cb)(void *arg, int rc, int64_t value);

/*
 * Zero-copy read callback: val/len point into the LMDB map and are valid only
 * during the call. Its non-zero return is passed through by wv_store_view.
 */
typedef int (*wv_store_view_cb)(void *arg, const void *val, size_t len, int64_t expires_ms);

typedef struct {
  uint64_t commits;   /* write transactions committed */
  uint64_t requests;  /* requests completed (ok or not) */
  uint64_t failed;    /* requests completed with an error */
  uint64_t grows;     /* times the map was enlarged */
  uint64_t map_size;  /* current map size in bytes */
  uint64_t max_batch; /* largest batch committed */
  /* The journal (storage.journal, storage/store_journal.c): records written, their bytes
   * (padded), commits synced the old way instead (record too large, or the journal write
   * failed), and transactions replayed at open. */
  uint64_t journal_records;
  uint64_t journal_bytes;
  uint64_t journal_fallbacks;
  uint64_t journal_replayed;
} wv_store_stats_t;

/*
 * Opens (creating dir with mode 0700 if needed) the store in dir and starts
 * its committer thread. map_size is the initial LMDB map size (0 = 1 GiB); the
 * map grows by doubling when full, up to the ceiling (default 1 TiB, see
 * wv_store_set_map_max). commit_delay_us is the group-commit window (< 0 or 0
 * = commit as soon as the previous commit is done). Refuses, with
 * WV_ESTORE and an error log line, a store written with a newer schema.
 * Returns 0 and *out (close with wv_store_close), or WV_EIO / WV_ESTORE /
 * WV_ENOMEM / WV_EINVAL.
 */
int wv_store_open(wv_store_t **out, const char *dir, uint64_t map_size, int64_t commit_delay_us);

/*
 * wv_store_open with the journal (storage.journal) chosen: wv_store_open is journal = true. On,
 * a commit flushes the device once on its critical path: the batch's writes go to dir/journal
 * in parallel with an LMDB commit that does not flush its meta page, and a restart after a
 * crash replays them (storage/store_journal.c, docs/storage.md). Off: LMDB's own two flushes;
 * a journal left by an earlier run is still replayed once at open.
 */
int wv_store_open_journal(wv_store_t **out, const char *dir, uint64_t map_size,
                          int64_t commit_delay_us, bool journal);

/*
 * Moves the shared databases to the Redis server of url (state.redis.url:
 * redis://[[user]:password@]host[:port][/db], or rediss:// for TLS with the
 * server's certificate checked against the PEM file tls_ca, NULL or "" = the
 * system's CAs: state.redis.tls-ca), their keys under prefix
 * (state.redis.prefix), with timeout_ms on connecting and on every command and
 * at most max_conns connections. Call it once, right after wv_store_open and before any other
 * thread uses the store. Returns 0, or WV_EINVAL / WV_EUNAVAIL / WV_EAUTH /
 * WV_ESTORE / WV_ENOMEM with an error log line saying why.
 */
int wv_store_use_redis(wv_store_t *s, const char *url, const char *prefix, int64_t timeout_ms,
                       int max_conns, const char *tls_ca);

/* The database's name ("tokens", "jobs" ...: the Redis key part, docs/scale-out.md). */
const char *wv_store_db_name(wv_db_t db);

/* True when db lives in Redis (after wv_store_use_redis), false in LMDB. */
bool wv_store_db_shared(const wv_store_t *s, wv_db_t db);

/*
 * For /health, without a round trip: false when the store has no Redis
 * backend; else true, and *up tells whether Redis answered the last command
 * (or the PING its idle writer thread sends every 5 s).
 */
bool wv_store_shared_health(wv_store_t *s, bool *up);

/*
 * Drains every pending write (their callbacks run), stops the sweeper and
 * the committer, and closes the environment. NULL is a no-op.
 */
void wv_store_close(wv_store_t *s);

/* Sets the ceiling the map may grow to (bytes; below the current size = no growth). */
void wv_store_set_map_max(wv_store_t *s, uint64_t max_bytes);

/*
 * Copies the record out: *val is malloc'd, NUL-terminated (not counted in
 * *len) and freed by the caller. expires_ms may be NULL. Returns 0,
 * WV_ENOTFOUND (absent or expired), WV_EINVAL, WV_ETOOBIG, WV_ENOMEM, WV_ESTORE.
 */
int wv_store_get(wv_store_t *s, wv_db_t db, const char *key, char **val, size_t *len,
                 int64_t *expires_ms);

/*
 * wv_store_get of a record kept as JSON, parsed (core/json: strict, at most
 * max bytes, 0 = whatever is stored; max_depth deep, 0 = the default). *out
 * is the caller's to put, NULL on failure. expires_ms may be NULL. Returns
 * wv_store_get's codes, or WV_ESTORE when the stored bytes do not parse.
 */
struct json_object;
int wv_store_get_json(wv_store_t *s, wv_db_t db, const char *key, size_t max, int max_depth,
                      struct json_object **out, int64_t *expires_ms);

/*
 * Calls cb with the record in place, under a read transaction (the hot
 * path: no copy, no allocation). Returns cb's return value, or WV_ENOTFOUND /
 * WV_EINVAL / WV_ETOOBIG / WV_ESTORE without calling cb.
 */
int wv_store_view(wv_store_t *s, wv_db_t db, const char *key, wv_store_view_cb cb, void *arg);

/*
 * A read snapshot: several wv_store_snap_view calls in one read-only
 * transaction, so a request that looks up a few keys begins one transaction
 * instead of one per key, and every lookup sees the same committed state.
 * Lives on the caller's stack; begin returns 0 or WV_ENOMEM / WV_ESTORE
 * (then nothing is held and end is not needed). Between begin and end the
 * thread holds the store's read lock: no other store call on that thread
 * (like inside a view callback), and end it soon — a map resize waits.
 * snap_view behaves like wv_store_view, except on a database held in Redis:
 * there it answers from the local cache (wv_store_local_cache) when that
 * holds the entry, else returns WV_EBUSY at once, since snapshots are the IO
 * loops' non-blocking reads and Redis cannot answer without a network round
 * trip; the caller then reads with wv_store_view/get on a worker.
 */
typedef struct wv_store_snap {
  wv_store_t *s;
  void *txn; /* MDB_txn */
  int64_t now_ms;
} wv_store_snap_t;

int wv_store_snap_begin(wv_store_t *s, wv_store_snap_t *snap);
int wv_store_snap_view(wv_store_snap_t *snap, wv_db_t db, const char *key, wv_store_view_cb cb,
                       void *arg);
void wv_store_snap_end(wv_store_snap_t *snap);

/*
 * Scan callback: key (klen bytes, not NUL-terminated) and val point into the
 * LMDB map and are valid only during the call. A non-zero return stops the
 * scan and is passed through by wv_store_scan.
 */
typedef int (*wv_store_scan_cb)(void *arg, const char *key, size_t klen, const void *val,
                                size_t len, int64_t expires_ms);

/*
 * Calls cb for every live record of db whose key starts with prefix (NULL or
 * "" = all), in key order, under one read transaction (expired and corrupt
 * records are skipped). The same rule as view: no store call from inside cb.
 * Returns 0, cb's non-zero return, WV_EINVAL or WV_ESTORE.
 */
int wv_store_scan(wv_store_t *s, wv_db_t db, const char *prefix, wv_store_scan_cb cb, void *arg);

/* Blocking durable writes. Each returns 0 once on disk, or the op's error. */
int wv_store_put(wv_store_t *s, wv_db_t db, const char *key, const void *val, size_t len,
                 int64_t expires_ms);
/* WV_EEXISTS when a live record is present (nothing is written then). */
int wv_store_put_nx(wv_store_t *s, wv_db_t db, const char *key, const void *val, size_t len,
                    int64_t expires_ms);
/* Removes the record and its expiry; deleting an absent key succeeds (idempotent). */
int wv_store_del(wv_store_t *s, wv_db_t db, const char *key);
/*
 * Adds delta to the counter at key and stores *out = the new value (out may
 * be NULL). WV_EPARSE if the record is not a decimal integer, WV_ERANGE on
 * overflow.
 */
int wv_store_incr(wv_store_t *s, wv_db_t db, const char *key, int64_t delta, int64_t expires_ms,
                  int64_t *out);

/*
 * Applies n (1..WV_STORE_APPLY_MAX) ops atomically: all of them or none.
 * Returns 0, or the first failing op's error with *failed set to its index
 * (failed may be NULL). INCR results are not reported; use wv_store_incr.
 */
int wv_store_apply(wv_store_t *s, const wv_store_op_t *ops, size_t n, size_t *failed);

/*
 * Queues one write and returns at once. cb (may be NULL) runs later on the
 * committer thread. Returns 0 (cb will be called exactly once), or an error
 * and cb is never called: WV_EINVAL / WV_ETOOBIG (bad op), WV_EBUSY (queue
 * full), WV_ECLOSED (store closing), WV_ENOMEM.
 */
int wv_store_submit(wv_store_t *s, const wv_store_op_t *op, wv_store_done_cb cb, void *arg);

/*
 * wv_store_apply without the wait: queues n (1..WV_STORE_APPLY_MAX) ops to be
 * applied atomically and returns at once; cb runs later on the committer
 * thread with rc 0 once all of them are durable, or the first failing op's
 * error (nothing written then). The same returns and rules as
 * wv_store_submit. This is how a request handler parks until its records are
 * on disk instead of holding a thread (build/request/submit.c).
 */
int wv_store_submit_apply(wv_store_t *s, const wv_store_op_t *ops, size_t n, wv_store_done_cb cb,
                          void *arg);

/*
 * Waits until every write queued before the call has completed (its callback
 * has returned). NULL is a no-op. 0, WV_ECLOSED, WV_EBUSY (from a callback)
 * or WV_ENOMEM.
 */
int wv_store_flush(wv_store_t *s);

/*
 * Removes up to max records whose expiry is <= now_ms, walking the expiry
 * index in time order (never a full scan), in one durable transaction.
 * *removed (may be NULL) gets the count; removed == max means call again.
 */
int wv_store_sweep(wv_store_t *s, int64_t now_ms, size_t max, size_t *removed);

/*
 * Starts a thread that sweeps every interval_ms (in batches of 1024 until
 * nothing expired is left) until wv_store_close. Returns 0, WV_EEXISTS if
 * already started, WV_EINVAL, WV_ENOMEM.
 */
int wv_store_start_sweeper(wv_store_t *s, int64_t interval_ms);

/* ---- several instances sharing a Redis (storage/store_cluster.c, docs/scale-out.md) ---- */

#define WV_STORE_LOCK_HOLDER 33 /* 32 hex + NUL */

/*
 * Takes the cluster-wide lock name for ttl_ms (it frees itself then if its
 * holder dies); holder gets the random name to release it with. Without Redis
 * there is one instance and the lock is always granted. 0, WV_EBUSY (another
 * holds it), WV_EINVAL, WV_ETOOBIG or a Redis error (WV_EUNAVAIL ...).
 */
int wv_store_lock(wv_store_t *s, const char *name, int64_t ttl_ms,
                  char holder[WV_STORE_LOCK_HOLDER]);
/* Releases name if holder still holds it (else nothing). Never fails loudly. */
void wv_store_unlock(wv_store_t *s, const char *name, const char *holder);

/*
 * One cluster-wide GCRA bucket (core/ratelimit.c's algorithm on Redis's
 * clock): a permit of key (take) or a look (no take), one permit every
 * interval_us, bursts of burst_us. *ahead_us (may be NULL) gets how far the
 * bucket's arrival time is ahead of now after the call. 0 granted, WV_EBUSY
 * refused, WV_EUNSUPPORTED without Redis, WV_EUNAVAIL (Redis known down or not
 * answering) or another Redis error.
 */
int wv_store_rate(wv_store_t *s, const char *key, int64_t interval_us, int64_t burst_us, bool take,
                  int64_t *ahead_us);

/*
 * Turns on the local cache of immutable entries (state.local-cache.*): at most
 * max_bytes of manifest-cache entries and token records read from Redis are
 * kept in memory so snapshot reads answer on the IO loops; a token entry lives
 * at most token_ttl_ms, and deletions reach every instance by pub/sub. After
 * wv_store_use_redis, before other threads use the store. 0 (also for
 * max_bytes 0: off), WV_EINVAL (no Redis backend, or already on), WV_ENOMEM.
 */
int wv_store_local_cache(wv_store_t *s, uint64_t max_bytes, int64_t token_ttl_ms);
/*
 * wv_store_get for a database whose records stop changing at some point (job records once they
 * ended, storage/jobqueue_redis.c): with the local cache on, a record read from Redis for which
 * final(val, len) is true is kept in the cache until its expiry (same LRU and cap) and served
 * from it; one that is not final is read from Redis every time. Deletions through the store
 * reach every instance's cache (pub/sub). Without a local cache: wv_store_get.
 */
typedef bool (*wv_store_final_fn)(const void *val, size_t len);
int wv_store_get_final(wv_store_t *s, wv_db_t db, const char *key, wv_store_final_fn final,
                       char **val, size_t *len, int64_t *expires_ms);
/* Its counters (each out may be NULL; all 0 when off). */
void wv_store_local_cache_stats(wv_store_t *s, uint64_t *hits, uint64_t *misses, uint64_t *bytes);
/* True while its invalidation subscription is up (tokens are cached only then). */
bool wv_store_local_cache_live(wv_store_t *s);

/* Copies the counters out; safe from any thread. */
void wv_store_stats(wv_store_t *s, wv_store_stats_t *out);

/* Wall clock in unix milliseconds, the clock expiry is measured against: wv_now_ms
 * (core/timefmt.h). */
int64_t wv_store_now_ms(void);

#endif
