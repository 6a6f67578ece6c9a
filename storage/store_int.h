/*
 * storage/store_int.h — the state store's private types and what its parts
 * share: storage/store.c (open, close, sweeper), storage/store_commit.c
 * (writes, the committer thread) and storage/store_read.c (reads). Not for
 * other files: the public API is storage/store.h.
 */
#ifndef WV_STORE_INT_H
#define WV_STORE_INT_H

#include "storage/store.h"
#include "storage/store_redis.h"

#include "core/err.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define HDR_LEN 16
#define IDX_PREFIX 9               /* expiry (8) + db id (1) */
#define DBI_EXPIRY WV_DB_COUNT     /* slot of the internal index in s->dbi */
#define DBI_MAIN (WV_DB_COUNT + 1) /* slot of LMDB's unnamed database (the lineage key J) */
#define RC_MAP_FULL 1              /* internal, positive: never returned to callers */

/* One op of a request; key and val point into the request's own allocation. */
struct iop {
  wv_store_op_kind_t kind;
  wv_db_t db;
  const char *key;
  size_t klen;
  const void *val;
  size_t vlen;
  int64_t expires_ms;
  int64_t delta; /* INCR: the delta; PUT/PUT_NX: the early index time (wv_store_op_t) */
};

/* A blocking caller waits here; the committer fills the results. */
struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  int rc;
  int64_t value;
  size_t failed;
  size_t removed;
};

struct req {
  struct req *next;
  bool sweep;
  int64_t now_ms; /* sweep */
  size_t max;     /* sweep */
  size_t n;
  struct iop *ops;
  /* results */
  int rc;
  int64_t value;
  size_t failed;
  size_t removed;
  /* completion: exactly one of cb / w */
  wv_store_done_cb cb;
  void *arg;
  struct waiter *w;
};

/*
 * The redo record of the batch being applied (storage/store_journal.c): every write the
 * committer makes, as entries {dbi slot (1), kind (1), key length (2), value length (4), key,
 * value}, after JN_REC_HDR bytes left free for the journal record's header. Committer only.
 */
struct redo {
  unsigned char *buf;
  size_t len; /* header room included */
  size_t cap;
  bool over; /* grew past JN_REC_MAX: this batch is not journaled */
};

struct wv_journal;

struct wv_store {
  MDB_env *env;
  MDB_dbi dbi[WV_DB_COUNT + 2];
  uint32_t dbi_open; /* at open, before init_dbs: bit i = dbi[i] exists (the journal replay) */
  pthread_rwlock_t map_lock; /* read: any read txn; write: resize */
  uint64_t map_size;         /* committer only (after open) */

  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t work_cv;
  pthread_cond_t space_cv;
  pthread_cond_t sweep_cv;
  struct req *head, *tail;
  size_t qlen;
  bool closing;
  bool sweeper_on, sweeper_stop;
  int64_t sweep_interval_ms;
  uint64_t map_max;
  wv_store_stats_t stats;

  pthread_t committer;
  pthread_t sweeper;
  int64_t delay_us;
  size_t last_batch; /* requests the committer's previous batch carried (committer only) */

  /* The shared databases' backend when state.backend is redis, else NULL; set
   * by wv_store_use_redis before any other thread uses the store. */
  wv_rstore_t *redis;
  /* Its local cache of immutable entries (storage/store_cluster.c), or NULL. */
  struct wv_lcache *lcache;

  /* The write-ahead journal (storage.journal), or NULL when off. */
  struct wv_journal *jn;
  struct redo redo;
};

/* True when db's records live in Redis rather than in this LMDB environment. */
static inline bool wv__sto_remote(const wv_store_t *s, wv_db_t db) {
  return s->redis && wv_rstore_holds(db);
}

/* The local cache of storage/store_cluster.c (no-ops when s->lcache is NULL). A
 * snapshot read of a database held in Redis: the cached entry, else WV_EBUSY. */
int wv__lc_snap_view(wv_store_t *s, wv_db_t db, const char *key, wv_store_view_cb cb, void *arg);
/* wv_rstore_view through the cache (filling it; for a database cached only when final, only
 * when final is given and says so). */
int wv__lc_view(wv_store_t *s, wv_db_t db, const char *key, wv_store_final_fn final,
                wv_store_view_cb cb, void *arg);
/* After a write of ops to Redis (how: it succeeded, failed, or was queued): drops their
 * entries, caches what was written (written through), publishes deletions. */
enum { WV_LC_FAILED, WV_LC_APPLIED, WV_LC_QUEUED };
void wv__lc_wrote(wv_store_t *s, const wv_store_op_t *ops, size_t n, int how);
void wv__lc_close(wv_store_t *s);

/* ---- the record header (format in the DESIGN of storage/store.c) ---- */

static inline void put_be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)(v & 0xff);
}

static inline uint64_t get_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static inline void hdr_write(unsigned char *p, int64_t expires_ms) {
  memset(p, 0, HDR_LEN);
  p[0] = 'w';
  p[1] = 'v';
  p[2] = 1;
  put_be64(p + 8, (uint64_t)expires_ms);
}

/* Returns 0 and the expiry, or WV_ESTORE for a value that is not a record. */
static inline int hdr_read(const MDB_val *v, int64_t *expires_ms) {
  const unsigned char *p = v->mv_data;
  if (v->mv_size < HDR_LEN || p[0] != 'w' || p[1] != 'v' || p[2] != 1)
    return WV_ESTORE;
  *expires_ms = (int64_t)get_be64(p + 8);
  return 0;
}

static inline bool is_expired(int64_t expires_ms, int64_t now_ms) {
  return expires_ms != 0 && expires_ms <= now_ms;
}

/* ---- store.c ---- */

/* One name per wv_db_t, then the internal expiry index (DBI_EXPIRY). */
extern const char *const wv__sto_db_names[];
/* Maps an LMDB or errno code to ours (logs I/O and store errors); MDB_MAP_FULL gives RC_MAP_FULL.
 */
int wv__sto_map_mdb(int rc, const char *what);
/* Checks db and key; sets *klen. 0, WV_EINVAL or WV_ETOOBIG. */
int wv__sto_check_key(wv_db_t db, const char *key, size_t *klen);

/* ---- store_journal.c: the write-ahead journal (DESIGN there) ---- */

#define JN_REC_HDR 48 /* bytes of a journal record's header, before its redo entries */
enum { RD_PUT = 1, RD_DEL = 2 };

/* Appends one write to the batch's redo record (nothing when the journal is off). */
void wv__rd_add(wv_store_t *s, int slot, int kind, const MDB_val *k, const MDB_val *v);
/* The redo record's length (a child transaction's mark) and truncation back to a mark. */
static inline size_t wv__rd_mark(const wv_store_t *s) { return s->redo.len; }
void wv__rd_truncate(wv_store_t *s, size_t mark);
/* Empties it (a new batch, or a batch redone). */
void wv__rd_reset(wv_store_t *s);
/* True when the batch wrote something (its commit makes a transaction), or may have: one too
 * big for a record (over) commits through the journal all the same, with the lineage key and a
 * full sync. */
static inline bool wv__rd_any(const wv_store_t *s) {
  return s->redo.len > JN_REC_HDR || s->redo.over;
}

/* Opens (creating it once, zero-filled) dir/journal; 0, WV_EIO or WV_ENOMEM. */
int wv__jn_open(wv_store_t *s, const char *dir, bool create);
/* Replays what the journal holds beyond the environment's last transaction (same lineage only),
 * then syncs the environment. 0 or an error (the store does not open). */
int wv__jn_replay(wv_store_t *s);
/* Starts a new epoch: journal header, then the lineage key in a synced transaction. */
int wv__jn_new_epoch(wv_store_t *s);
/* After the committer stopped. clean: syncs the environment and zeroes the header's epoch. */
void wv__jn_close(wv_store_t *s, bool clean);

/*
 * The committer's commit of a batch transaction (it wrote something): puts the lineage key,
 * hands the redo record to the journal thread, commits, waits for the journal, and falls back to
 * mdb_env_sync when the record is not journaled. Returns what mdb_txn_commit returned (LMDB
 * code), or the sync's error as an errno code; the record of a failed commit is invalidated.
 */
int wv__jn_commit(wv_store_t *s, MDB_txn *txn);
/* Tests only (tests/test_store_journal.c): while non-zero, wv__jn_commit aborts the transaction
 * where it would commit it and reports EIO, after the record was handed over. */
extern atomic_int wv__jn_fail_commit;

/* ---- store_commit.c ---- */

/* Parses a stored counter record's value. 0, WV_EPARSE or WV_ERANGE. */
int wv__sto_parse_counter(const MDB_val *v, int64_t *out);
/* Counter text: optional '-', 1..19 digits, nothing else; WV_EPARSE or WV_ERANGE. */
int wv__sto_parse_digits(const char *p, size_t n, int64_t *out);
/* *ts = now + us on CLOCK_MONOTONIC (the store's condition variables use it). */
void wv__sto_deadline_after(struct timespec *ts, int64_t us);
/* The committer thread (arg: the store); returns when closing and drained. */
void *wv__sto_committer_main(void *arg);

#endif
