/*
 * storage/store.c — LMDB state store with group commit and an expiry index:
 * opening, closing and the sweeper thread. The essay below covers the whole
 * store; the writes (the queue, the committer thread, applying ops) are in
 * storage/store_commit.c, the reads in storage/store_read.c, what they share
 * in storage/store_int.h.
 *
 * DESIGN
 *
 * Records. Every value in a named database starts with a 16-byte header:
 *
 *   0  'w' 'v'      magic
 *   2  1            record format version
 *   3  0            flags (reserved)
 *   4  0 0 0 0      reserved
 *   8  expiry       unix ms, 8 bytes big-endian, 0 = never
 *   16 value bytes
 *
 * Expiry index. An internal database "expiry" holds one empty-valued entry per
 * record that has an expiry, keyed by expiry (8 bytes big-endian) ‖ db id (1
 * byte) ‖ record key. LMDB sorts keys bytewise, so the index is in time order
 * and the sweeper walks it from the first entry until it reaches an instant
 * after now: the work is proportional to what expired, never to the store.
 * Every write that changes a record's expiry moves its index entry in the same
 * transaction, so the index and the records can only disagree about entries
 * whose record was rewritten; the sweeper checks the record's own header and
 * drops an index entry that no longer matches.
 *
 * Group commit. Writers never open LMDB write transactions. They queue a
 * request (one or more ops, copied) and either wait on their own condition
 * variable (blocking calls) or get a callback (wv_store_submit). The one
 * committer thread takes everything queued (up to WV_STORE_BATCH_MAX
 * requests; after the first arrives it waits up to commit_delay_us for more when the
 * previous batch carried several, see take_batch),
 * opens one write transaction and applies the requests in order. A request
 * that fails (EEXISTS, a bad counter, a corrupt record, a map full at its
 * ceiling) fails alone and the others commit: single-op requests whose
 * failure is detected before they write go straight into the transaction;
 * multi-op requests, and every request after an unexpected error (the batch
 * is then aborted and redone), run in a nested child transaction that is
 * rolled back alone (see run_batch). The transaction is committed durably — LMDB's fsync of the
 * data pages, then of the meta page; with the journal (storage.journal, storage/store_journal.c)
 * the meta page's flush is replaced by the batch's redo record flushed in parallel — and only
 * then is any request completed. While one batch is being
 * fsynced the next one accumulates, so batches grow with load without any added latency when
 * commit_delay_us is 0.
 *
 * Map growth. When a write hits MDB_MAP_FULL the whole batch is aborted (no
 * request has been completed yet, so this is invisible), the map is doubled
 * (up to map_max) and the batch is retried. mdb_env_set_mapsize needs that
 * no transaction is active in the process, so readers hold map_lock for
 * reading around their read transaction and the committer takes it for
 * writing only while resizing. At the ceiling, each request that still does
 * not fit fails alone with WV_ESTORE.
 *
 * Lock order: map_lock is never taken while holding mu, and mu is never held
 * across an LMDB call.
 */
#include "storage/store_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/timefmt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_MAP (1ull << 30)
#define DEFAULT_MAP_MAX (1ull << 40)
#define MAX_READERS 1024
#define MAX_DBS 16
#define SWEEP_BATCH 1024

const char *const wv__sto_db_names[] = {
    "tokens",    "requests", "builds", "build_targets", "counters", "mirrors", "scans",
    "manifests", "meta",     "jobs",   "embedded",      "vulns",    "expiry",
};
/* One name per wv_db_t, plus the internal expiry index last: a database added
 * to the enum without a name here must not compile (it would otherwise open
 * under the next name). */
_Static_assert(sizeof wv__sto_db_names / sizeof wv__sto_db_names[0] == WV_DB_COUNT + 1,
               "wv__sto_db_names must name every wv_db_t and the expiry index");

/* ---- small helpers ---------------------------------------------------- */

int64_t wv_store_now_ms(void) { return wv_now_ms(); }

/* Maps an LMDB or errno code to ours; MDB_MAP_FULL stays distinguishable. */
int wv__sto_map_mdb(int rc, const char *what) {
  switch (rc) {
  case 0:
    return 0;
  case MDB_NOTFOUND:
    return WV_ENOTFOUND;
  case MDB_MAP_FULL:
    return RC_MAP_FULL;
  case ENOMEM:
    return WV_ENOMEM;
  case ENOSPC:
  case EDQUOT:
    wv_error("store: %s: %s", what, mdb_strerror(rc));
    return WV_ENOSPC;
  case EIO:
    wv_error("store: %s: %s", what, mdb_strerror(rc));
    return WV_EIO;
  default:
    wv_error("store: %s: %s", what, mdb_strerror(rc));
    return WV_ESTORE;
  }
}

int wv__sto_check_key(wv_db_t db, const char *key, size_t *klen) {
  if ((unsigned)db >= WV_DB_COUNT || !key)
    return WV_EINVAL;
  *klen = strnlen(key, WV_STORE_KEY_MAX + 1);
  if (*klen == 0)
    return WV_EINVAL;
  return *klen > WV_STORE_KEY_MAX ? WV_ETOOBIG : 0;
}

/* ---- open / close -------------------------------------------------------- */

static int make_dir(const char *dir) {
  struct stat st;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    wv_error("store: cannot create %s: %s", dir, strerror(errno));
    return WV_EIO;
  }
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    wv_error("store: %s is not a directory", dir);
    return WV_EIO;
  }
  return 0;
}

/* Opens every database and checks or writes the schema version, in one write txn. */
static int init_dbs(wv_store_t *s, const char *dir) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  if (rc)
    return wv__sto_map_mdb(rc, "begin init txn") == WV_EIO ? WV_EIO : WV_ESTORE;
  for (int i = 0; i <= WV_DB_COUNT && !rc; i++)
    rc = mdb_dbi_open(txn, wv__sto_db_names[i], MDB_CREATE, &s->dbi[i]);
  if (!rc)
    rc = mdb_dbi_open(txn, NULL, 0, &s->dbi[DBI_MAIN]); /* the journal's lineage key */
  MDB_val k = {6, "schema"}, v;
  if (!rc)
    rc = mdb_get(txn, s->dbi[WV_DB_META], &k, &v);
  if (rc == MDB_NOTFOUND) {
    char text[16];
    unsigned char buf[HDR_LEN + sizeof text];
    int n = snprintf(text, sizeof text, "%d", WV_STORE_SCHEMA_VERSION);
    hdr_write(buf, 0);
    memcpy(buf + HDR_LEN, text, (size_t)n);
    v = (MDB_val){HDR_LEN + (size_t)n, buf};
    rc = mdb_put(txn, s->dbi[WV_DB_META], &k, &v, 0);
  } else if (rc == 0) {
    int64_t ver = 0;
    if (wv__sto_parse_counter(&v, &ver) != 0 || ver > WV_STORE_SCHEMA_VERSION || ver < 1) {
      wv_error("store: %s has schema version %.*s; this waved supports up to %d: refusing to "
               "open it (upgrade waved or point storage.path elsewhere)",
               dir, (int)(v.mv_size > HDR_LEN ? v.mv_size - HDR_LEN : 0),
               (const char *)v.mv_data + HDR_LEN, WV_STORE_SCHEMA_VERSION);
      mdb_txn_abort(txn);
      return WV_ESTORE;
    }
  }
  if (rc) {
    mdb_txn_abort(txn);
    return wv__sto_map_mdb(rc, "init databases") == WV_EIO ? WV_EIO : WV_ESTORE;
  }
  return wv__sto_map_mdb(mdb_txn_commit(txn), "commit init") == 0 ? 0 : WV_ESTORE;
}

/* The databases that exist already, in a read transaction (their handles stay valid after it);
 * s->dbi_open says which. The journal replay runs on them before init_dbs creates any. */
static int open_existing_dbs(wv_store_t *s) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc)
    return wv__sto_map_mdb(rc, "begin open txn") == WV_EIO ? WV_EIO : WV_ESTORE;
  s->dbi_open = 0;
  for (int i = 0; i <= DBI_MAIN && (rc == 0 || rc == MDB_NOTFOUND); i++) {
    rc = mdb_dbi_open(txn, i == DBI_MAIN ? NULL : wv__sto_db_names[i], 0, &s->dbi[i]);
    if (rc == 0)
      s->dbi_open |= 1u << i;
  }
  if (rc && rc != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return wv__sto_map_mdb(rc, "open databases") == WV_EIO ? WV_EIO : WV_ESTORE;
  }
  return wv__sto_map_mdb(mdb_txn_commit(txn), "commit open txn") == 0 ? 0 : WV_ESTORE;
}

static int open_env(wv_store_t *s, const char *dir, uint64_t map_size, bool journal) {
  int rc = mdb_env_create(&s->env);
  if (rc)
    return WV_ENOMEM;
  mdb_env_set_maxdbs(s->env, MAX_DBS);
  mdb_env_set_maxreaders(s->env, MAX_READERS);
  mdb_env_set_mapsize(s->env, (size_t)map_size);
  /* With the journal, a commit flushes its data pages but only writes its meta page: the
   * journal covers the transactions a power loss could undo (storage/store_journal.c). */
  rc = mdb_env_open(s->env, dir, MDB_NOTLS | (journal ? MDB_NOMETASYNC : 0), 0600);
  if (rc) {
    wv_error("store: cannot open LMDB environment in %s: %s", dir, mdb_strerror(rc));
    mdb_env_close(s->env);
    s->env = NULL;
    return rc == MDB_VERSION_MISMATCH || rc == MDB_INVALID ? WV_ESTORE : WV_EIO;
  }
  int dead = 0;
  mdb_reader_check(s->env, &dead);
  if (dead)
    wv_info("store: cleared %d stale reader slots", dead);
  MDB_envinfo info;
  mdb_env_info(s->env, &info);
  s->map_size = info.me_mapsize;
  return 0;
}

static int init_sync(wv_store_t *s) {
  pthread_condattr_t ca;
  pthread_rwlockattr_t ra;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_rwlockattr_init(&ra);
  /* Resizes are rare but must not starve behind a stream of readers. */
  pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&s->map_lock, &ra);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->work_cv, &ca);
  pthread_cond_init(&s->space_cv, &ca);
  pthread_cond_init(&s->sweep_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_rwlockattr_destroy(&ra);
  return 0;
}

static void destroy_sync(wv_store_t *s) {
  pthread_cond_destroy(&s->sweep_cv);
  pthread_cond_destroy(&s->space_cv);
  pthread_cond_destroy(&s->work_cv);
  pthread_mutex_destroy(&s->mu);
  pthread_rwlock_destroy(&s->map_lock);
}

int wv_store_open(wv_store_t **out, const char *dir, uint64_t map_size, int64_t commit_delay_us) {
  return wv_store_open_journal(out, dir, map_size, commit_delay_us, true);
}

int wv_store_open_journal(wv_store_t **out, const char *dir, uint64_t map_size,
                          int64_t commit_delay_us, bool journal) {
  if (!out || !dir || !*dir)
    return WV_EINVAL;
  int rc = make_dir(dir);
  if (rc)
    return rc;
  wv_store_t *s = calloc(1, sizeof *s);
  if (!s)
    return WV_ENOMEM;
  s->delay_us = commit_delay_us > 0 ? commit_delay_us : 0;
  s->map_max = DEFAULT_MAP_MAX;
  init_sync(s); /* the replay counts in s->stats under s->mu */
  if ((rc = wv__jn_open(s, dir, journal)) != 0)
    goto out;
  if ((rc = open_env(s, dir, map_size ? map_size : DEFAULT_MAP, journal && s->jn)) != 0)
    goto out;
  /* Before anything else writes (creating a database is a transaction): the last run's
   * journaled transactions, into the databases that exist; then a new epoch. */
  if ((rc = open_existing_dbs(s)) != 0 || (rc = wv__jn_replay(s)) != 0)
    goto out;
  if ((rc = init_dbs(s, dir)) != 0)
    goto out;
  if (s->jn && (rc = wv__jn_new_epoch(s)) != 0)
    goto out;
  s->stats.map_size = s->map_size;
  if (pthread_create(&s->committer, NULL, wv__sto_committer_main, s) != 0) {
    rc = WV_ENOMEM;
    goto out;
  }
  *out = s;
  s = NULL;
out:
  if (s) {
    wv__jn_close(s, false); /* not started: its header stays as it is */
    if (s->env)
      mdb_env_close(s->env);
    destroy_sync(s);
    free(s);
  }
  return rc;
}

void wv_store_set_map_max(wv_store_t *s, uint64_t max_bytes) {
  pthread_mutex_lock(&s->mu);
  s->map_max = max_bytes;
  pthread_mutex_unlock(&s->mu);
}

void wv_store_stats(wv_store_t *s, wv_store_stats_t *out) {
  pthread_mutex_lock(&s->mu);
  *out = s->stats;
  pthread_mutex_unlock(&s->mu);
}

/* ---- sweeper ------------------------------------------------------------- */

static bool sweeper_stopping(wv_store_t *s) {
  pthread_mutex_lock(&s->mu);
  bool stop = s->sweeper_stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

static void *sweeper_main(void *arg) {
  wv_store_t *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->sweeper_stop) {
    struct timespec ts;
    wv__sto_deadline_after(&ts, s->sweep_interval_ms * 1000);
    while (!s->sweeper_stop)
      if (pthread_cond_timedwait(&s->sweep_cv, &s->mu, &ts) == ETIMEDOUT)
        break;
    if (s->sweeper_stop)
      break;
    pthread_mutex_unlock(&s->mu);
    size_t removed = 0, total = 0;
    int rc;
    do {
      rc = wv_store_sweep(s, wv_store_now_ms(), SWEEP_BATCH, &removed);
      total += removed;
    } while (rc == 0 && removed == SWEEP_BATCH && !sweeper_stopping(s));
    if (rc)
      wv_warn("store: sweep failed: %s", wv_strerror(rc));
    else if (total)
      wv_debug("store: swept %zu expired records", total);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

int wv_store_start_sweeper(wv_store_t *s, int64_t interval_ms) {
  if (interval_ms <= 0)
    return WV_EINVAL;
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  if (s->sweeper_on) {
    rc = WV_EEXISTS;
  } else {
    s->sweep_interval_ms = interval_ms;
    s->sweeper_stop = false;
    if (pthread_create(&s->sweeper, NULL, sweeper_main, s) != 0)
      rc = WV_ENOMEM;
    else
      s->sweeper_on = true;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int wv_store_use_redis(wv_store_t *s, const char *url, const char *prefix, int64_t timeout_ms,
                       int max_conns, const char *tls_ca) {
  if (!s || s->redis)
    return WV_EINVAL;
  return wv_rstore_open(&s->redis, url, prefix, timeout_ms, max_conns, tls_ca);
}

bool wv_store_db_shared(const wv_store_t *s, wv_db_t db) { return wv__sto_remote(s, db); }

bool wv_store_shared_health(wv_store_t *s, bool *up) {
  if (!s || !s->redis)
    return false;
  *up = wv_rstore_up(s->redis);
  return true;
}

void wv_store_close(wv_store_t *s) {
  if (!s)
    return;
  pthread_mutex_lock(&s->mu);
  bool sweeper = s->sweeper_on;
  s->sweeper_stop = true;
  pthread_cond_signal(&s->sweep_cv);
  pthread_mutex_unlock(&s->mu);
  if (sweeper)
    pthread_join(s->sweeper, NULL);
  /* Redis's queued writes first (their callbacks may still write locally), then the
   * committer's (theirs may still read or write Redis; a new submit there is ECLOSED). */
  wv_rstore_drain(s->redis);

  pthread_mutex_lock(&s->mu);
  s->closing = true;
  pthread_cond_broadcast(&s->work_cv);
  pthread_cond_broadcast(&s->space_cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->committer, NULL); /* it drains the queue before exiting */
  wv__lc_close(s);                  /* its subscriber uses the Redis settings */
  wv_rstore_close(s->redis);
  s->redis = NULL;

  wv__jn_close(s, true); /* syncs the environment and retires the journal's epoch */
  mdb_env_close(s->env);
  destroy_sync(s);
  free(s);
}
