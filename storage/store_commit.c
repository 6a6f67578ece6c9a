/*
 * storage/store_commit.c — the store's writes (group commit, see the DESIGN
 * in storage/store.c): public writes queue a request, the one committer
 * thread takes batches and applies them in one LMDB write transaction,
 * growing the map when it is full.
 */
#include "storage/store_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int check_op(const wv_store_op_t *op, size_t *klen) {
  int rc = wv__sto_check_key(op->db, op->key, klen);
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
  if (rc == 0)
    wv__rd_add(s, DBI_EXPIRY, RD_DEL, &k, NULL);
  return rc == MDB_NOTFOUND ? 0 : wv__sto_map_mdb(rc, "expiry index delete");
}

static int index_put(wv_store_t *s, MDB_txn *txn, int64_t exp, wv_db_t db, const char *key,
                     size_t klen) {
  unsigned char buf[IDX_PREFIX + WV_STORE_KEY_MAX];
  MDB_val k, v = {0, ""};
  index_key(buf, exp, db, key, klen, &k);
  int rc = mdb_put(txn, s->dbi[DBI_EXPIRY], &k, &v, 0);
  if (rc == 0)
    wv__rd_add(s, DBI_EXPIRY, RD_PUT, &k, &v);
  return wv__sto_map_mdb(rc, "expiry index put");
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
    return wv__sto_map_mdb(rc, "get");
  if (hdr_read(&c->v, &c->exp)) {
    wv_error("store: %s: corrupt record header", wv__sto_db_names[op->db]);
    c->corrupt = true;
    return 0;
  }
  c->found = true;
  c->live = !is_expired(c->exp, now);
  return 0;
}

/* idx: where a new expiry's index entry goes (the op's early index time if earlier, else exp). */
static int write_rec(wv_store_t *s, MDB_txn *txn, const struct iop *op, const struct cur *c,
                     const void *val, size_t vlen, int64_t exp, int64_t idx) {
  int rc = 0;
  if (idx <= 0 || idx > exp)
    idx = exp;
  if (c->found && c->exp != 0 && c->exp != exp)
    rc = index_del(s, txn, c->exp, op->db, op->key, op->klen);
  if (!rc && exp != 0 && !(c->found && c->exp == exp))
    rc = index_put(s, txn, idx, op->db, op->key, op->klen);
  if (rc)
    return rc;
  MDB_val k = {op->klen, (void *)op->key}, v = {HDR_LEN + vlen, NULL};
  rc = mdb_put(txn, s->dbi[op->db], &k, &v, MDB_RESERVE);
  if (rc)
    return wv__sto_map_mdb(rc, "put");
  hdr_write(v.mv_data, exp);
  if (vlen)
    memcpy((unsigned char *)v.mv_data + HDR_LEN, val, vlen);
  wv__rd_add(s, op->db, RD_PUT, &k, &v); /* the bytes as filled in */
  return 0;
}

static int del_rec(wv_store_t *s, MDB_txn *txn, const struct iop *op, const struct cur *c) {
  if (!c->found && !c->corrupt)
    return 0;
  MDB_val k = {op->klen, (void *)op->key};
  int rc = wv__sto_map_mdb(mdb_del(txn, s->dbi[op->db], &k, NULL), "delete");
  if (rc == 0)
    wv__rd_add(s, op->db, RD_DEL, &k, NULL);
  if (!rc && c->exp != 0)
    rc = index_del(s, txn, c->exp, op->db, op->key, op->klen);
  return rc;
}

/* Parses counter text: optional '-', 1..19 digits, nothing else (both backends). */
int wv__sto_parse_digits(const char *p, size_t n, int64_t *out) {
  bool neg = n > 0 && p[0] == '-';
  size_t i = neg ? 1 : 0;
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

/* Parses a stored counter (the value after its header). */
int wv__sto_parse_counter(const MDB_val *v, int64_t *out) {
  return wv__sto_parse_digits((const char *)v->mv_data + HDR_LEN, v->mv_size - HDR_LEN, out);
}

static int apply_incr(wv_store_t *s, MDB_txn *txn, const struct iop *op, const struct cur *c,
                      int64_t *value) {
  int64_t x = 0;
  if (c->live) {
    int rc = wv__sto_parse_counter(&c->v, &x);
    if (rc)
      return rc;
  }
  if ((op->delta > 0 && x > INT64_MAX - op->delta) || (op->delta < 0 && x < INT64_MIN - op->delta))
    return WV_ERANGE;
  x += op->delta;
  char text[24];
  int n = snprintf(text, sizeof text, "%" PRId64, x);
  *value = x;
  return write_rec(s, txn, op, c, text, (size_t)n, c->live ? c->exp : op->expires_ms, 0);
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
    return write_rec(s, txn, op, &c, op->val, op->vlen, op->expires_ms,
                     op->delta /* early index */);
  case WV_STORE_DEL:
    return del_rec(s, txn, op, &c);
  case WV_STORE_INCR:
    return apply_incr(s, txn, op, &c, value);
  }
  return WV_EINVAL;
}

/*
 * Removes the first index entry if it is due, and its record if the record
 * still carries that expiry; an entry made early (wv_store_op_t.delta of a PUT)
 * of a record that expires later is moved to its expiry. *done = true when
 * nothing due is left.
 */
static int sweep_one(wv_store_t *s, MDB_txn *txn, MDB_cursor *cur, int64_t now, size_t *removed,
                     bool *done) {
  MDB_val ik, iv;
  int rc = mdb_cursor_get(cur, &ik, &iv, MDB_FIRST);
  *done = rc == MDB_NOTFOUND;
  if (rc)
    return *done ? 0 : wv__sto_map_mdb(rc, "sweep cursor");
  const unsigned char *p = ik.mv_data;
  bool valid =
      ik.mv_size > IDX_PREFIX && ik.mv_size <= IDX_PREFIX + WV_STORE_KEY_MAX && p[8] < WV_DB_COUNT;
  int64_t exp = valid ? (int64_t)get_be64(p) : 0;
  if (exp > now) {
    *done = true;
    return 0;
  }
  /* Copy what we need: ik points into the page the delete below rewrites. */
  unsigned char key[WV_STORE_KEY_MAX], whole[IDX_PREFIX + WV_STORE_KEY_MAX];
  struct iop op = {.db = valid ? (wv_db_t)p[8] : WV_DB_META,
                   .key = (const char *)key,
                   .klen = valid ? ik.mv_size - IDX_PREFIX : 0};
  memcpy(key, p + IDX_PREFIX, op.klen);
  MDB_val wk = {ik.mv_size < sizeof whole ? ik.mv_size : sizeof whole, whole};
  memcpy(whole, ik.mv_data, wk.mv_size);
  if ((rc = mdb_cursor_del(cur, 0)) != 0)
    return wv__sto_map_mdb(rc, "sweep index delete");
  if (wk.mv_size == ik.mv_size)
    wv__rd_add(s, DBI_EXPIRY, RD_DEL, &wk, NULL);
  else
    s->redo.over = true; /* a key longer than the store makes: committed the old way */
  if (!valid)
    return 0; /* an entry we cannot read: dropped */
  struct cur c;
  if ((rc = load_cur(s, txn, &op, now, &c)) != 0)
    return rc;
  if (c.found && c.exp == exp) {
    MDB_val k = {op.klen, key};
    if ((rc = mdb_del(txn, s->dbi[op.db], &k, NULL)) != 0)
      return wv__sto_map_mdb(rc, "sweep delete");
    wv__rd_add(s, op.db, RD_DEL, &k, NULL);
    (*removed)++;
  } else if (c.found && c.exp > exp) {
    rc = index_put(s, txn, c.exp, op.db, op.key, op.klen); /* the key a normal write makes */
  }
  return rc;
}

static int apply_sweep(wv_store_t *s, MDB_txn *txn, struct req *r) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, s->dbi[DBI_EXPIRY], &cur);
  if (rc)
    return wv__sto_map_mdb(rc, "sweep cursor");
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
 * Whether a multi-op request can go straight into the batch transaction: its
 * only ordinary failure, a PUT_NX on a live record, can then be found before
 * anything is written (precheck). True for PUT, PUT_NX and DEL ops on
 * distinct keys — what a container request writes (its token and its
 * record), thousands of times a second. A child transaction costs LMDB a
 * fresh dirty list of a few MB (malloc → mmap, then munmap and a TLB
 * shootdown on every core), which made it the committer's main cost.
 */
static bool flat_ok(const struct req *r) {
  if (r->sweep)
    return false;
  for (size_t i = 0; i < r->n; i++) {
    const struct iop *a = &r->ops[i];
    if (a->kind == WV_STORE_INCR)
      return false;
    for (size_t j = 0; j < i; j++) {
      const struct iop *b = &r->ops[j];
      if (a->db == b->db && a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0)
        return false;
    }
  }
  return true;
}

/* A flat_ok request's ordinary failure, found before any of its ops writes. */
static int precheck(wv_store_t *s, MDB_txn *txn, struct req *r, int64_t now) {
  r->value = 0;
  r->failed = 0;
  for (size_t i = 0; i < r->n; i++) {
    struct cur c;
    int rc = load_cur(s, txn, &r->ops[i], now, &c);
    if (!rc && c.corrupt && r->ops[i].kind != WV_STORE_DEL)
      rc = WV_ESTORE; /* not a clean failure: the batch is redone nested */
    if (!rc && c.live && r->ops[i].kind == WV_STORE_PUT_NX)
      rc = WV_EEXISTS;
    if (rc) {
      r->failed = i;
      return rc;
    }
  }
  return 0;
}

/*
 * Applies one request. nested: in a child transaction of parent, rolled back
 * alone on error. Otherwise straight into parent, which is only safe when a
 * failure is a clean_failure() found before anything was written (one op, or
 * flat_ok and precheck); run_batch redoes the batch nested otherwise.
 */
static int apply_req(wv_store_t *s, MDB_txn *parent, struct req *r, int64_t now, bool nested) {
  if (!nested) {
    int rc = r->n > 1 ? precheck(s, parent, r, now) : 0;
    return rc ? rc : apply_ops(s, parent, r, now);
  }
  MDB_txn *child;
  int rc = mdb_txn_begin(s->env, parent, 0, &child);
  if (rc)
    return wv__sto_map_mdb(rc, "begin child txn");
  size_t mark = wv__rd_mark(s);
  rc = apply_ops(s, child, r, now);
  if (rc) {
    mdb_txn_abort(child);
    wv__rd_truncate(s, mark); /* its writes are undone: not in the redo record either */
    r->removed = 0;
    return rc;
  }
  rc = wv__sto_map_mdb(mdb_txn_commit(child), "commit child txn");
  if (rc)
    wv__rd_truncate(s, mark);
  return rc;
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
 * Commits a batch transaction: through the journal when it is on and the batch wrote something
 * (a batch that wrote nothing makes no transaction), else LMDB's own durable commit. Should a
 * transaction be made without a redo record all the same, it is synced the old way.
 */
static int commit(wv_store_t *s, MDB_txn *txn) {
  if (!s->jn)
    return mdb_txn_commit(txn);
  if (wv__rd_any(s))
    return wv__jn_commit(s, txn);
  uint64_t id = (uint64_t)mdb_txn_id(txn);
  int rc = mdb_txn_commit(txn);
  MDB_envinfo info;
  if (rc == 0 && mdb_env_info(s->env, &info) == 0 && (uint64_t)info.me_last_txnid == id) {
    wv_warn("store: a commit wrote without a redo record: synced the old way");
    rc = mdb_env_sync(s->env, 1);
  }
  return rc;
}

/*
 * Applies a batch in one write transaction and commits it.
 *
 * Fast mode applies single-op requests, and multi-op ones that pass flat_ok,
 * straight into the batch transaction: their ordinary failures (EEXISTS,
 * EPARSE, ERANGE) are detected before anything is written. Nested child
 * transactions (which cost LMDB a dirty list each) are used for the other
 * multi-op requests, and for every request once
 * something unexpected happened: then the batch is aborted and redone in safe
 * mode, where each request is isolated. On MDB_MAP_FULL the map grows and the
 * batch is redone; once it cannot grow, requests that do not fit fail alone.
 * Nothing is completed before the commit, so a redo is invisible.
 */
static void run_batch(wv_store_t *s, struct req *batch) {
  bool can_grow = true, safe = false;
  for (int attempt = 0; attempt < 64; attempt++) {
    MDB_txn *txn;
    int rc = wv__sto_map_mdb(mdb_txn_begin(s->env, NULL, 0, &txn), "begin write txn");
    if (rc) {
      fail_all(batch, rc == RC_MAP_FULL ? WV_ESTORE : rc);
      return;
    }
    int64_t now = wv_store_now_ms();
    bool full = false, unsafe = false;
    wv__rd_reset(s);
    for (struct req *r = batch; r && !full && !unsafe; r = r->next) {
      bool nested = safe || !can_grow || (r->n > 1 && !flat_ok(r));
      r->rc = apply_req(s, txn, r, now, nested);
      if (r->rc == RC_MAP_FULL && can_grow)
        full = true;
      else if (r->rc == RC_MAP_FULL)
        r->rc = WV_ESTORE; /* nested: rolled back alone */
      else if (r->rc && !nested && !clean_failure(r->rc))
        unsafe = true;
    }
    if (!full && !unsafe) {
      rc = wv__sto_map_mdb(commit(s, txn), "commit");
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

void wv__sto_deadline_after(struct timespec *ts, int64_t us) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  int64_t ns = ts->tv_nsec + (us % 1000000) * 1000;
  ts->tv_sec += us / 1000000 + ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
}

/*
 * A window is waited only when the previous batch carried at least this many requests: writes
 * then arrive faster than commits, and waiting lets one commit (two fdatasyncs) carry more of
 * them. When the previous batch carried one or two, the writers are few (a low request rate),
 * a window would rarely catch another write and costs every request its length and the
 * committer a timer wake-up (on a loaded core, a late one: milliseconds); the writes that
 * arrive during a commit still share the next one.
 */
#define WINDOW_MIN_BATCH 3

/* Waits for work, then for the group window; returns the batch (NULL = exit). Holds mu. */
static struct req *take_batch(wv_store_t *s) {
  while (!s->head && !s->closing)
    pthread_cond_wait(&s->work_cv, &s->mu);
  if (!s->head)
    return NULL;
  if (s->delay_us > 0 && s->qlen < WV_STORE_BATCH_MAX && !s->closing &&
      (s->last_batch >= WINDOW_MIN_BATCH || s->qlen >= WINDOW_MIN_BATCH)) {
    struct timespec ts;
    wv__sto_deadline_after(&ts, s->delay_us);
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
  s->last_batch = n;
  pthread_cond_broadcast(&s->space_cv);
  return batch;
}

void *wv__sto_committer_main(void *arg) {
  wv_store_t *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    struct req *batch = take_batch(s);
    if (!batch)
      break;
    pthread_mutex_unlock(&s->mu);
#ifdef WV_CREQ_TRACE
    memset(wv_trace_batch, 0, sizeof wv_trace_batch);
    WV_TRACE_BATCH(WV_TRACE_TAKEN);
#endif
    run_batch(s, batch);
    WV_TRACE_BATCH(WV_TRACE_COMMITTED);
    uint64_t n = 0, failed = 0;
    for (struct req *r = batch, *next; r; r = next) {
      next = r->next;
      n++;
      failed += r->rc != 0;
      complete(r);
    }
#ifdef WV_CREQ_TRACE
    wv_trace_commit_done(n);
#endif
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
  bool wake = false;
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
    wake = s->qlen == 1 || s->qlen >= WV_STORE_BATCH_MAX;
  }
  pthread_mutex_unlock(&s->mu);
  /* After the unlock: woken under the lock, the committer may run at once and block on it.
   * The store (and work_cv) outlives every enqueue: wv_store_close joins the committer
   * after the callers are gone. */
  if (wake)
    pthread_cond_signal(&s->work_cv);
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

/*
 * Checks ops and decides where they go: 0 with *remote, or WV_EINVAL (also
 * for one call mixing databases of the two backends, which could not be
 * atomic), WV_ETOOBIG.
 */
static int route(const wv_store_t *s, const wv_store_op_t *ops, size_t n, size_t *failed,
                 bool *remote) {
  if (n == 0 || n > WV_STORE_APPLY_MAX)
    return WV_EINVAL;
  size_t klen;
  for (size_t i = 0; i < n; i++) {
    int rc = check_op(&ops[i], &klen);
    if (!rc && i > 0 && wv__sto_remote(s, ops[i].db) != wv__sto_remote(s, ops[0].db)) {
      wv_error("store: one write mixes %s (redis) and %s (local)",
               wv__sto_db_names[wv__sto_remote(s, ops[i].db) ? ops[i].db : ops[0].db],
               wv__sto_db_names[wv__sto_remote(s, ops[i].db) ? ops[0].db : ops[i].db]);
      rc = WV_EINVAL;
    }
    if (rc) {
      if (failed)
        *failed = i;
      return rc;
    }
  }
  *remote = wv__sto_remote(s, ops[0].db);
  return 0;
}

int wv_store_apply(wv_store_t *s, const wv_store_op_t *ops, size_t n, size_t *failed) {
  bool remote = false;
  int rc = s->redis ? route(s, ops, n, failed, &remote) : 0;
  if (rc || remote) {
    rc = rc ? rc : wv_rstore_apply(s->redis, ops, n, failed, NULL);
    if (remote)
      wv__lc_wrote(s, ops, n, rc == 0 ? WV_LC_APPLIED : WV_LC_FAILED);
    return rc;
  }
  struct req *r;
  struct waiter w;
  rc = make_req(ops, n, &r);
  if (rc)
    return rc;
  rc = run_sync(s, r, &w);
  if (rc && failed)
    *failed = w.failed;
  return rc;
}

static int one_sync(wv_store_t *s, const wv_store_op_t *op, int64_t *value) {
  bool remote = false;
  int rc = s->redis ? route(s, op, 1, NULL, &remote) : 0;
  if (rc || remote) {
    rc = rc ? rc : wv_rstore_apply(s->redis, op, 1, NULL, value);
    if (remote)
      wv__lc_wrote(s, op, 1, rc == 0 ? WV_LC_APPLIED : WV_LC_FAILED);
    return rc;
  }
  struct req *r;
  struct waiter w;
  rc = make_req(op, 1, &r);
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
  return wv_store_submit_apply(s, op, 1, cb, arg);
}

int wv_store_submit_apply(wv_store_t *s, const wv_store_op_t *ops, size_t n, wv_store_done_cb cb,
                          void *arg) {
  bool remote = false;
  int rc = s->redis ? route(s, ops, n, NULL, &remote) : 0;
  if (remote && !rc)
    wv__lc_wrote(s, ops, n, WV_LC_QUEUED); /* written through; no deletion goes this way today */
  if (rc || remote)
    return rc ? rc : wv_rstore_submit(s->redis, ops, n, cb, arg);
  struct req *r;
  rc = make_req(ops, n, &r);
  if (rc)
    return rc;
  r->cb = cb;
  r->arg = arg;
  return enqueue(s, r, false);
}

int wv_store_flush(wv_store_t *s) {
  if (!s)
    return 0;
  int rrc = wv_rstore_flush(s->redis); /* its callbacks may queue local writes: first */
  if (rrc)
    return rrc;
  struct req *r = calloc(1, sizeof *r); /* no ops: a place in the queue */
  struct waiter w;
  return r ? run_sync(s, r, &w) : WV_ENOMEM;
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
