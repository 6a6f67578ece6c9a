/*
 * storage/store.c — LMDB state store with group commit and an expiry index.
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
 * requests; after the first arrives it waits up to commit_delay_us for more),
 * opens one write transaction and applies the requests in order. A request
 * that fails (EEXISTS, a bad counter, a corrupt record, a map full at its
 * ceiling) fails alone and the others commit: single-op requests whose
 * failure is detected before they write go straight into the transaction;
 * multi-op requests, and every request after an unexpected error (the batch
 * is then aborted and redone), run in a nested child transaction that is
 * rolled back alone (see run_batch). The transaction is committed with LMDB's default durability
 * (fsync of data and meta page), and only then is any request completed. While one batch is being
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
#include "storage/store.h"

#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define HDR_LEN 16
#define IDX_PREFIX 9           /* expiry (8) + db id (1) */
#define DBI_EXPIRY WV_DB_COUNT /* slot of the internal index in s->dbi */
#define RC_MAP_FULL 1          /* internal, positive: never returned to callers */
#define DEFAULT_MAP (1ull << 30)
#define DEFAULT_MAP_MAX (1ull << 40)
#define MAX_READERS 1024
#define MAX_DBS 16
#define SWEEP_BATCH 1024

static const char *const db_names[] = {
    "tokens",    "requests", "builds", "build_targets", "counters", "mirrors", "scans",
    "manifests", "meta",     "jobs",   "embedded",      "vulns",    "expiry",
};
/* One name per wv_db_t, plus the internal expiry index last: a database added
 * to the enum without a name here must not compile (it would otherwise open
 * under the next name). */
_Static_assert(sizeof db_names / sizeof db_names[0] == WV_DB_COUNT + 1,
               "db_names must name every wv_db_t and the expiry index");

/* One op of a request; key and val point into the request's own allocation. */
struct iop {
  wv_store_op_kind_t kind;
  wv_db_t db;
  const char *key;
  size_t klen;
  const void *val;
  size_t vlen;
  int64_t expires_ms;
  int64_t delta;
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

struct wv_store {
  MDB_env *env;
  MDB_dbi dbi[WV_DB_COUNT + 1];
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
};

/* ---- small helpers ---------------------------------------------------- */

int64_t wv_store_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static void hdr_write(unsigned char *p, int64_t expires_ms) {
  memset(p, 0, HDR_LEN);
  p[0] = 'w';
  p[1] = 'v';
  p[2] = 1;
  put_be64(p + 8, (uint64_t)expires_ms);
}

/* Returns 0 and the expiry, or WV_ESTORE for a value that is not a record. */
static int hdr_read(const MDB_val *v, int64_t *expires_ms) {
  const unsigned char *p = v->mv_data;
  if (v->mv_size < HDR_LEN || p[0] != 'w' || p[1] != 'v' || p[2] != 1)
    return WV_ESTORE;
  *expires_ms = (int64_t)get_be64(p + 8);
  return 0;
}

static bool is_expired(int64_t expires_ms, int64_t now_ms) {
  return expires_ms != 0 && expires_ms <= now_ms;
}

/* Maps an LMDB or errno code to ours; MDB_MAP_FULL stays distinguishable. */
static int map_mdb(int rc, const char *what) {
  switch (rc) {
  case 0:
    return 0;
  case MDB_NOTFOUND:
    return WV_ENOTFOUND;
  case MDB_MAP_FULL:
    return RC_MAP_FULL;
  case ENOMEM:
    return WV_ENOMEM;
  case EIO:
  case ENOSPC:
    wv_error("store: %s: %s", what, mdb_strerror(rc));
    return WV_EIO;
  default:
    wv_error("store: %s: %s", what, mdb_strerror(rc));
    return WV_ESTORE;
  }
}

static int check_key(wv_db_t db, const char *key, size_t *klen) {
  if ((unsigned)db >= WV_DB_COUNT || !key)
    return WV_EINVAL;
  *klen = strnlen(key, WV_STORE_KEY_MAX + 1);
  if (*klen == 0)
    return WV_EINVAL;
  return *klen > WV_STORE_KEY_MAX ? WV_ETOOBIG : 0;
}

static int check_op(const wv_store_op_t *op, size_t *klen) {
  int rc = check_key(op->db, op->key, klen);
  if (rc)
    return rc;
  if ((unsigned)op->kind > WV_STORE_INCR || op->expires_ms < 0)
    return WV_EINVAL;
  if (op->kind == WV_STORE_PUT || op->kind == WV_STORE_PUT_NX) {
    if (op->val_len > WV_STORE_VALUE_MAX)
      return WV_ETOOBIG;
    if (!op->val && op->val_len)
      return WV_EINVAL;
  }
  return 0;
}

/* ---- applying ops inside a write transaction (committer thread) -------- */

static int index_key(unsigned char *buf, int64_t exp, wv_db_t db, const char *key, size_t klen,
                     MDB_val *out) {
  put_be64(buf, (uint64_t)exp);
  buf[8] = (unsigned char)db;
  memcpy(buf + IDX_PREFIX, key, klen);
  out->mv_data = buf;
  out->mv_size = IDX_PREFIX + klen;
  return 0;
}

static int index_del(wv_store_t *s, MDB_txn *txn, int64_t exp, wv_db_t db, const char *key,
                     size_t klen) {
  unsigned char buf[IDX_PREFIX + WV_STORE_KEY_MAX];
  MDB_val k;
  index_key(buf, exp, db, key, klen, &k);
  int rc = mdb_del(txn, s->dbi[DBI_EXPIRY], &k, NULL);
  return rc == MDB_NOTFOUND ? 0 : map_mdb(rc, "expiry index delete");
}

static int index_put(wv_store_t *s, MDB_txn *txn, int64_t exp, wv_db_t db, const char *key,
                     size_t klen) {
  unsigned char buf[IDX_PREFIX + WV_STORE_KEY_MAX];
  MDB_val k, v = {0, ""};
  index_key(buf, exp, db, key, klen, &k);
  return map_mdb(mdb_put(txn, s->dbi[DBI_EXPIRY], &k, &v, 0), "expiry index put");
}

/* The record currently stored under a key, as the ops see it. */
struct cur {
  bool corrupt; /* a value without a record header: only DEL may touch it */
  bool found;   /* a record is stored (maybe expired) */
  bool live;    /* found and not expired */
  int64_t exp;
  MDB_val v;
};

static int load_cur(wv_store_t *s, MDB_txn *txn, const struct iop *op, int64_t now, struct cur *c) {
  MDB_val k = {op->klen, (void *)op->key};
  memset(c, 0, sizeof *c);
  int rc = mdb_get(txn, s->dbi[op->db], &k, &c->v);
  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc)
    return map_mdb(rc, "get");
  if (hdr_read(&c->v, &c->exp)) {
    wv_error("store: %s: corrupt record header", db_names[op->db]);
    c->corrupt = true;
    return 0;
  }
  c->found = true;
  c->live = !is_expired(c->exp, now);
  return 0;
}

static int write_rec(wv_store_t *s, MDB_txn *txn, const struct iop *op, const struct cur *c,
                     const void *val, size_t vlen, int64_t exp) {
  int rc = 0;
  if (c->found && c->exp != 0 && c->exp != exp)
    rc = index_del(s, txn, c->exp, op->db, op->key, op->klen);
  if (!rc && exp != 0 && !(c->found && c->exp == exp))
    rc = index_put(s, txn, exp, op->db, op->key, op->klen);
  if (rc)
    return rc;
  MDB_val k = {op->klen, (void *)op->key}, v = {HDR_LEN + vlen, NULL};
  rc = mdb_put(txn, s->dbi[op->db], &k, &v, MDB_RESERVE);
  if (rc)
    return map_mdb(rc, "put");
  hdr_write(v.mv_data, exp);
  if (vlen)
    memcpy((unsigned char *)v.mv_data + HDR_LEN, val, vlen);
  return 0;
}

static int del_rec(wv_store_t *s, MDB_txn *txn, const struct iop *op, const struct cur *c) {
  if (!c->found && !c->corrupt)
    return 0;
  MDB_val k = {op->klen, (void *)op->key};
  int rc = map_mdb(mdb_del(txn, s->dbi[op->db], &k, NULL), "delete");
  if (!rc && c->exp != 0)
    rc = index_del(s, txn, c->exp, op->db, op->key, op->klen);
  return rc;
}

/* Parses a stored counter: optional '-', 1..19 digits, nothing else. */
static int parse_counter(const MDB_val *v, int64_t *out) {
  const char *p = (const char *)v->mv_data + HDR_LEN;
  size_t n = v->mv_size - HDR_LEN, i = 0;
  bool neg = n > 0 && p[0] == '-';
  i = neg ? 1 : 0;
  if (n == i || n - i > 19)
    return WV_EPARSE;
  int64_t x = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9')
      return WV_EPARSE;
    if (x > (INT64_MAX - (p[i] - '0')) / 10)
      return WV_ERANGE;
    x = x * 10 + (p[i] - '0');
  }
  *out = neg ? -x : x;
  return 0;
}

static int apply_incr(wv_store_t *s, MDB_txn *txn, const struct iop *op, const struct cur *c,
                      int64_t *value) {
  int64_t x = 0;
  if (c->live) {
    int rc = parse_counter(&c->v, &x);
    if (rc)
      return rc;
  }
  if ((op->delta > 0 && x > INT64_MAX - op->delta) || (op->delta < 0 && x < INT64_MIN - op->delta))
    return WV_ERANGE;
  x += op->delta;
  char text[24];
  int n = snprintf(text, sizeof text, "%" PRId64, x);
  *value = x;
  return write_rec(s, txn, op, c, text, (size_t)n, c->live ? c->exp : op->expires_ms);
}

static int apply_op(wv_store_t *s, MDB_txn *txn, const struct iop *op, int64_t now,
                    int64_t *value) {
  struct cur c;
  int rc = load_cur(s, txn, op, now, &c);
  if (rc)
    return rc;
  if (c.corrupt && op->kind != WV_STORE_DEL)
    return WV_ESTORE; /* nothing written yet */
  switch (op->kind) {
  case WV_STORE_PUT_NX:
    if (c.live)
      return WV_EEXISTS;
    /* fallthrough */
  case WV_STORE_PUT:
    return write_rec(s, txn, op, &c, op->val, op->vlen, op->expires_ms);
  case WV_STORE_DEL:
    return del_rec(s, txn, op, &c);
  case WV_STORE_INCR:
    return apply_incr(s, txn, op, &c, value);
  }
  return WV_EINVAL;
}

/*
 * Removes the first index entry if it is due, and its record if the record
 * still carries that expiry. *done = true when nothing due is left.
 */
static int sweep_one(wv_store_t *s, MDB_txn *txn, MDB_cursor *cur, int64_t now, size_t *removed,
                     bool *done) {
  MDB_val ik, iv;
  int rc = mdb_cursor_get(cur, &ik, &iv, MDB_FIRST);
  *done = rc == MDB_NOTFOUND;
  if (rc)
    return *done ? 0 : map_mdb(rc, "sweep cursor");
  const unsigned char *p = ik.mv_data;
  bool valid =
      ik.mv_size > IDX_PREFIX && ik.mv_size <= IDX_PREFIX + WV_STORE_KEY_MAX && p[8] < WV_DB_COUNT;
  int64_t exp = valid ? (int64_t)get_be64(p) : 0;
  if (exp > now) {
    *done = true;
    return 0;
  }
  /* Copy what we need: ik points into the page the delete below rewrites. */
  unsigned char key[WV_STORE_KEY_MAX];
  struct iop op = {.db = valid ? (wv_db_t)p[8] : WV_DB_META,
                   .key = (const char *)key,
                   .klen = valid ? ik.mv_size - IDX_PREFIX : 0};
  memcpy(key, p + IDX_PREFIX, op.klen);
  if ((rc = mdb_cursor_del(cur, 0)) != 0)
    return map_mdb(rc, "sweep index delete");
  if (!valid)
    return 0; /* an entry we cannot read: dropped */
  struct cur c;
  if ((rc = load_cur(s, txn, &op, now, &c)) != 0)
    return rc;
  if (c.found && c.exp == exp) {
    MDB_val k = {op.klen, key};
    if ((rc = mdb_del(txn, s->dbi[op.db], &k, NULL)) != 0)
      return map_mdb(rc, "sweep delete");
    (*removed)++;
  }
  return 0;
}

static int apply_sweep(wv_store_t *s, MDB_txn *txn, struct req *r) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, s->dbi[DBI_EXPIRY], &cur);
  if (rc)
    return map_mdb(rc, "sweep cursor");
  /* The work is bounded by index entries visited, not only by records removed. */
  bool done = false;
  for (size_t seen = 0; seen < r->max && !done && !rc; seen++)
    rc = sweep_one(s, txn, cur, r->now_ms, &r->removed, &done);
  mdb_cursor_close(cur);
  return rc;
}

/* Errors an op reports before it writes anything: the transaction is untouched. */
static bool clean_failure(int rc) { return rc == WV_EEXISTS || rc == WV_EPARSE || rc == WV_ERANGE; }

static int apply_ops(wv_store_t *s, MDB_txn *txn, struct req *r, int64_t now) {
  int rc = 0;
  r->value = 0;
  r->removed = 0;
  r->failed = 0;
  if (r->sweep)
    return apply_sweep(s, txn, r);
  for (size_t i = 0; i < r->n && !rc; i++) {
    rc = apply_op(s, txn, &r->ops[i], now, &r->value);
    if (rc)
      r->failed = i;
  }
  return rc;
}

/*
 * Applies one request. nested: in a child transaction of parent, rolled back
 * alone on error. Otherwise straight into parent, which is only safe when a
 * failure is a clean_failure(); run_batch redoes the batch nested otherwise.
 */
static int apply_req(wv_store_t *s, MDB_txn *parent, struct req *r, int64_t now, bool nested) {
  if (!nested)
    return apply_ops(s, parent, r, now);
  MDB_txn *child;
  int rc = mdb_txn_begin(s->env, parent, 0, &child);
  if (rc)
    return map_mdb(rc, "begin child txn");
  rc = apply_ops(s, child, r, now);
  if (rc) {
    mdb_txn_abort(child);
    r->removed = 0;
    return rc;
  }
  return map_mdb(mdb_txn_commit(child), "commit child txn");
}

/* Doubles the map (bounded by map_max). Returns 0, or -1 when it cannot grow. */
static int grow_map(wv_store_t *s) {
  pthread_mutex_lock(&s->mu);
  uint64_t max = s->map_max;
  pthread_mutex_unlock(&s->mu);
  if (s->map_size >= max)
    return -1;
  uint64_t want = s->map_size * 2 > max ? max : s->map_size * 2;
  pthread_rwlock_wrlock(&s->map_lock);
  int rc = mdb_env_set_mapsize(s->env, (size_t)want);
  pthread_rwlock_unlock(&s->map_lock);
  if (rc) {
    wv_error("store: cannot grow map to %" PRIu64 " bytes: %s", want, mdb_strerror(rc));
    return -1;
  }
  wv_info("store: map grown from %" PRIu64 " to %" PRIu64 " bytes", s->map_size, want);
  s->map_size = want;
  pthread_mutex_lock(&s->mu);
  s->stats.grows++;
  s->stats.map_size = want;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static void fail_all(struct req *batch, int rc) {
  for (struct req *r = batch; r; r = r->next)
    r->rc = rc;
}

/*
 * Applies a batch in one write transaction and commits it.
 *
 * Fast mode applies single-op requests straight into the batch transaction:
 * their ordinary failures (EEXISTS, EPARSE, ERANGE) are detected before
 * anything is written. Nested child transactions (which cost LMDB a dirty
 * list each) are used for multi-op requests, and for every request once
 * something unexpected happened: then the batch is aborted and redone in safe
 * mode, where each request is isolated. On MDB_MAP_FULL the map grows and the
 * batch is redone; once it cannot grow, requests that do not fit fail alone.
 * Nothing is completed before the commit, so a redo is invisible.
 */
static void run_batch(wv_store_t *s, struct req *batch) {
  bool can_grow = true, safe = false;
  for (int attempt = 0; attempt < 64; attempt++) {
    MDB_txn *txn;
    int rc = map_mdb(mdb_txn_begin(s->env, NULL, 0, &txn), "begin write txn");
    if (rc) {
      fail_all(batch, rc == RC_MAP_FULL ? WV_ESTORE : rc);
      return;
    }
    int64_t now = wv_store_now_ms();
    bool full = false, unsafe = false;
    for (struct req *r = batch; r && !full && !unsafe; r = r->next) {
      bool nested = safe || !can_grow || r->n > 1;
      r->rc = apply_req(s, txn, r, now, nested);
      if (r->rc == RC_MAP_FULL && can_grow)
        full = true;
      else if (r->rc == RC_MAP_FULL)
        r->rc = WV_ESTORE; /* nested: rolled back alone */
      else if (r->rc && !nested && !clean_failure(r->rc))
        unsafe = true;
    }
    if (!full && !unsafe) {
      rc = map_mdb(mdb_txn_commit(txn), "commit");
      if (rc == 0)
        return;
      if (rc != RC_MAP_FULL || !can_grow) {
        fail_all(batch, rc == RC_MAP_FULL ? WV_ESTORE : rc);
        return;
      }
      full = true;
    } else {
      mdb_txn_abort(txn);
    }
    safe = safe || unsafe;
    if (full && grow_map(s) != 0) {
      wv_error("store: map full at %" PRIu64 " bytes and may not grow; failing writes that "
               "do not fit",
               s->map_size);
      can_grow = false;
    }
  }
  fail_all(batch, WV_ESTORE);
}

/* ---- the committer thread --------------------------------------------- */

static void complete(struct req *r) {
  if (r->w) {
    struct waiter *w = r->w;
    pthread_mutex_lock(&w->mu);
    w->rc = r->rc;
    w->value = r->value;
    w->failed = r->failed;
    w->removed = r->removed;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
  } else if (r->cb) {
    r->cb(r->arg, r->rc, r->value);
  }
  free(r);
}

static void deadline_after(struct timespec *ts, int64_t us) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  int64_t ns = ts->tv_nsec + (us % 1000000) * 1000;
  ts->tv_sec += us / 1000000 + ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
}

/* Waits for work, then for the group window; returns the batch (NULL = exit). Holds mu. */
static struct req *take_batch(wv_store_t *s) {
  while (!s->head && !s->closing)
    pthread_cond_wait(&s->work_cv, &s->mu);
  if (!s->head)
    return NULL;
  if (s->delay_us > 0 && s->qlen < WV_STORE_BATCH_MAX && !s->closing) {
    struct timespec ts;
    deadline_after(&ts, s->delay_us);
    while (s->qlen < WV_STORE_BATCH_MAX && !s->closing)
      if (pthread_cond_timedwait(&s->work_cv, &s->mu, &ts) == ETIMEDOUT)
        break;
  }
  struct req *batch = s->head, *last = s->head;
  size_t n = 1;
  while (last->next && n < WV_STORE_BATCH_MAX) {
    last = last->next;
    n++;
  }
  s->head = last->next;
  if (!s->head)
    s->tail = NULL;
  last->next = NULL;
  s->qlen -= n;
  pthread_cond_broadcast(&s->space_cv);
  return batch;
}

static void *committer_main(void *arg) {
  wv_store_t *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    struct req *batch = take_batch(s);
    if (!batch)
      break;
    pthread_mutex_unlock(&s->mu);
    run_batch(s, batch);
    uint64_t n = 0, failed = 0;
    for (struct req *r = batch, *next; r; r = next) {
      next = r->next;
      n++;
      failed += r->rc != 0;
      complete(r);
    }
    pthread_mutex_lock(&s->mu);
    s->stats.commits++;
    s->stats.requests += n;
    s->stats.failed += failed;
    if (n > s->stats.max_batch)
      s->stats.max_batch = n;
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Queues r. blocking: wait for room; else WV_EBUSY when full. Frees r on error. */
static int enqueue(wv_store_t *s, struct req *r, bool blocking) {
  int rc = 0;
  pthread_mutex_lock(&s->mu);
  while (!s->closing && s->qlen >= WV_STORE_QUEUE_MAX && blocking)
    pthread_cond_wait(&s->space_cv, &s->mu);
  if (s->closing)
    rc = WV_ECLOSED;
  else if (s->qlen >= WV_STORE_QUEUE_MAX)
    rc = WV_EBUSY;
  if (rc == 0) {
    if (s->tail)
      s->tail->next = r;
    else
      s->head = r;
    s->tail = r;
    s->qlen++;
    /* Wake the committer when it may be idle or when the batch is full. */
    if (s->qlen == 1 || s->qlen >= WV_STORE_BATCH_MAX)
      pthread_cond_signal(&s->work_cv);
  }
  pthread_mutex_unlock(&s->mu);
  if (rc)
    free(r);
  return rc;
}

/* Copies ops (validated) into one allocation. Returns 0 or WV_EINVAL/ETOOBIG/ENOMEM. */
static int make_req(const wv_store_op_t *ops, size_t n, struct req **out) {
  size_t klens[WV_STORE_APPLY_MAX], bytes = sizeof(struct req) + n * sizeof(struct iop);
  if (n == 0 || n > WV_STORE_APPLY_MAX)
    return WV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    int rc = check_op(&ops[i], &klens[i]);
    if (rc)
      return rc;
    bytes += klens[i] + 1 + (ops[i].kind <= WV_STORE_PUT_NX ? ops[i].val_len : 0);
  }
  struct req *r = calloc(1, bytes);
  if (!r)
    return WV_ENOMEM;
  r->n = n;
  r->ops = (struct iop *)(r + 1);
  char *p = (char *)(r->ops + n);
  for (size_t i = 0; i < n; i++) {
    struct iop *o = &r->ops[i];
    *o =
        (struct iop){ops[i].kind, ops[i].db, p, klens[i], NULL, 0, ops[i].expires_ms, ops[i].delta};
    memcpy(p, ops[i].key, klens[i] + 1);
    p += klens[i] + 1;
    if (ops[i].kind <= WV_STORE_PUT_NX && ops[i].val_len) {
      memcpy(p, ops[i].val, ops[i].val_len);
      o->val = p;
      o->vlen = ops[i].val_len;
      p += ops[i].val_len;
    }
  }
  *out = r;
  return 0;
}

/* Queues r and waits until the committer completed it. Frees r. */
static int run_sync(wv_store_t *s, struct req *r, struct waiter *w) {
  if (pthread_equal(pthread_self(), s->committer)) {
    free(r);
    return WV_EBUSY; /* called from a done callback: would wait for itself */
  }
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  r->w = w;
  int rc = enqueue(s, r, true);
  if (rc == 0) {
    pthread_mutex_lock(&w->mu);
    while (!w->done)
      pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    rc = w->rc;
  }
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  return rc;
}

/* ---- public writes ----------------------------------------------------- */

int wv_store_apply(wv_store_t *s, const wv_store_op_t *ops, size_t n, size_t *failed) {
  struct req *r;
  struct waiter w;
  int rc = make_req(ops, n, &r);
  if (rc)
    return rc;
  rc = run_sync(s, r, &w);
  if (rc && failed)
    *failed = w.failed;
  return rc;
}

static int one_sync(wv_store_t *s, const wv_store_op_t *op, int64_t *value) {
  struct req *r;
  struct waiter w;
  int rc = make_req(op, 1, &r);
  if (rc)
    return rc;
  rc = run_sync(s, r, &w);
  if (rc == 0 && value)
    *value = w.value;
  return rc;
}

int wv_store_put(wv_store_t *s, wv_db_t db, const char *key, const void *val, size_t len,
                 int64_t expires_ms) {
  wv_store_op_t op = {WV_STORE_PUT, db, key, val, len, expires_ms, 0};
  return one_sync(s, &op, NULL);
}

int wv_store_put_nx(wv_store_t *s, wv_db_t db, const char *key, const void *val, size_t len,
                    int64_t expires_ms) {
  wv_store_op_t op = {WV_STORE_PUT_NX, db, key, val, len, expires_ms, 0};
  return one_sync(s, &op, NULL);
}

int wv_store_del(wv_store_t *s, wv_db_t db, const char *key) {
  wv_store_op_t op = {WV_STORE_DEL, db, key, NULL, 0, 0, 0};
  return one_sync(s, &op, NULL);
}

int wv_store_incr(wv_store_t *s, wv_db_t db, const char *key, int64_t delta, int64_t expires_ms,
                  int64_t *out) {
  wv_store_op_t op = {WV_STORE_INCR, db, key, NULL, 0, expires_ms, delta};
  return one_sync(s, &op, out);
}

int wv_store_submit(wv_store_t *s, const wv_store_op_t *op, wv_store_done_cb cb, void *arg) {
  struct req *r;
  int rc = make_req(op, 1, &r);
  if (rc)
    return rc;
  r->cb = cb;
  r->arg = arg;
  return enqueue(s, r, false);
}

int wv_store_sweep(wv_store_t *s, int64_t now_ms, size_t max, size_t *removed) {
  if (max == 0)
    return WV_EINVAL;
  struct req *r = calloc(1, sizeof *r);
  if (!r)
    return WV_ENOMEM;
  r->sweep = true;
  r->now_ms = now_ms;
  r->max = max;
  struct waiter w;
  int rc = run_sync(s, r, &w);
  if (removed)
    *removed = rc == 0 ? w.removed : 0;
  return rc;
}

/* ---- reads --------------------------------------------------------------- */

int wv_store_snap_begin(wv_store_t *s, wv_store_snap_t *snap) {
  MDB_txn *txn;
  pthread_rwlock_rdlock(&s->map_lock);
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc) {
    pthread_rwlock_unlock(&s->map_lock);
    map_mdb(rc, "begin read txn"); /* logs */
    return rc == ENOMEM ? WV_ENOMEM : WV_ESTORE;
  }
  snap->s = s;
  snap->txn = txn;
  snap->now_ms = wv_store_now_ms();
  return 0;
}

int wv_store_snap_view(wv_store_snap_t *snap, wv_db_t db, const char *key, wv_store_view_cb cb,
                       void *arg) {
  size_t klen;
  int rc = check_key(db, key, &klen);
  if (rc)
    return rc;
  MDB_val k = {klen, (void *)key}, v;
  int64_t exp = 0;
  rc = map_mdb(mdb_get(snap->txn, snap->s->dbi[db], &k, &v), "get");
  if (rc == 0 && (rc = hdr_read(&v, &exp)) != 0)
    wv_error("store: %s: corrupt record header", db_names[db]);
  if (rc == 0 && is_expired(exp, snap->now_ms))
    rc = WV_ENOTFOUND;
  if (rc == 0)
    rc = cb(arg, (const unsigned char *)v.mv_data + HDR_LEN, v.mv_size - HDR_LEN, exp);
  return rc;
}

void wv_store_snap_end(wv_store_snap_t *snap) {
  mdb_txn_abort(snap->txn);
  pthread_rwlock_unlock(&snap->s->map_lock);
  snap->txn = NULL;
}

int wv_store_view(wv_store_t *s, wv_db_t db, const char *key, wv_store_view_cb cb, void *arg) {
  size_t klen;
  int rc = check_key(db, key, &klen);
  if (rc)
    return rc;
  wv_store_snap_t snap;
  if ((rc = wv_store_snap_begin(s, &snap)) != 0)
    return rc;
  rc = wv_store_snap_view(&snap, db, key, cb, arg);
  wv_store_snap_end(&snap);
  return rc;
}

struct copy_out {
  char *val;
  size_t len;
  int64_t exp;
};

static int copy_cb(void *arg, const void *val, size_t len, int64_t expires_ms) {
  struct copy_out *c = arg;
  c->val = malloc(len + 1);
  if (!c->val)
    return WV_ENOMEM;
  if (len)
    memcpy(c->val, val, len);
  c->val[len] = '\0';
  c->len = len;
  c->exp = expires_ms;
  return 0;
}

int wv_store_scan(wv_store_t *s, wv_db_t db, const char *prefix, wv_store_scan_cb cb, void *arg) {
  size_t plen = prefix ? strlen(prefix) : 0;
  if ((unsigned)db >= WV_DB_COUNT || plen > WV_STORE_KEY_MAX)
    return WV_EINVAL;
  MDB_txn *txn;
  MDB_cursor *cur;
  pthread_rwlock_rdlock(&s->map_lock);
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc) {
    pthread_rwlock_unlock(&s->map_lock);
    map_mdb(rc, "begin read txn");
    return rc == ENOMEM ? WV_ENOMEM : WV_ESTORE;
  }
  if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0) {
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->map_lock);
    return map_mdb(rc, "cursor open");
  }
  int64_t now = wv_store_now_ms();
  MDB_val k = {plen, (void *)prefix}, v;
  int op = plen ? MDB_SET_RANGE : MDB_FIRST;
  rc = 0;
  while (!rc) {
    int mrc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op);
    op = MDB_NEXT;
    if (mrc == MDB_NOTFOUND)
      break;
    if (mrc) {
      rc = map_mdb(mrc, "cursor get");
      break;
    }
    if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
      break;
    int64_t exp = 0;
    if (hdr_read(&v, &exp) != 0 || is_expired(exp, now))
      continue;
    rc = cb(arg, k.mv_data, k.mv_size, (const unsigned char *)v.mv_data + HDR_LEN,
            v.mv_size - HDR_LEN, exp);
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  pthread_rwlock_unlock(&s->map_lock);
  return rc;
}

int wv_store_get(wv_store_t *s, wv_db_t db, const char *key, char **val, size_t *len,
                 int64_t *expires_ms) {
  struct copy_out c = {0};
  int rc = wv_store_view(s, db, key, copy_cb, &c);
  if (rc)
    return rc;
  *val = c.val;
  if (len)
    *len = c.len;
  if (expires_ms)
    *expires_ms = c.exp;
  return 0;
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
    return map_mdb(rc, "begin init txn") == WV_EIO ? WV_EIO : WV_ESTORE;
  for (int i = 0; i <= WV_DB_COUNT && !rc; i++)
    rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
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
    if (parse_counter(&v, &ver) != 0 || ver > WV_STORE_SCHEMA_VERSION || ver < 1) {
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
    return map_mdb(rc, "init databases") == WV_EIO ? WV_EIO : WV_ESTORE;
  }
  return map_mdb(mdb_txn_commit(txn), "commit init") == 0 ? 0 : WV_ESTORE;
}

static int open_env(wv_store_t *s, const char *dir, uint64_t map_size) {
  int rc = mdb_env_create(&s->env);
  if (rc)
    return WV_ENOMEM;
  mdb_env_set_maxdbs(s->env, MAX_DBS);
  mdb_env_set_maxreaders(s->env, MAX_READERS);
  mdb_env_set_mapsize(s->env, (size_t)map_size);
  rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
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
  if ((rc = open_env(s, dir, map_size ? map_size : DEFAULT_MAP)) != 0)
    goto out;
  if ((rc = init_dbs(s, dir)) != 0)
    goto out;
  init_sync(s);
  s->stats.map_size = s->map_size;
  if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
    destroy_sync(s);
    rc = WV_ENOMEM;
    goto out;
  }
  *out = s;
  s = NULL;
out:
  if (s) {
    if (s->env)
      mdb_env_close(s->env);
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
    deadline_after(&ts, s->sweep_interval_ms * 1000);
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

  pthread_mutex_lock(&s->mu);
  s->closing = true;
  pthread_cond_broadcast(&s->work_cv);
  pthread_cond_broadcast(&s->space_cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->committer, NULL); /* it drains the queue before exiting */

  mdb_env_close(s->env);
  destroy_sync(s);
  free(s);
}
