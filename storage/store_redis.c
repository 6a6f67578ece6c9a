/*
 * storage/store_redis.c — the shared databases of the state store in Redis
 * (storage/store_redis.h; what lives where and why: docs/scale-out.md).
 *
 * DESIGN
 *
 * Records. "<prefix><db name>:<key>" holds the value's bytes; the record's
 * expiry is the key's expiry, written with SET ... PXAT and read back with
 * PEXPIRETIME (both Redis 7.0, checked at open). A read is MULTI, GET,
 * PEXPIRETIME, EXEC in one round trip, so value and expiry come from the same
 * instant.
 *
 * Writes, one op. PUT is SET [PXAT], PUT_NX is SET NX [PXAT] (a nil reply is
 * WV_EEXISTS), DEL is DEL, INCR is MULTI, SET key 0 NX [PXAT], INCRBY, EXEC:
 * the SET creates an absent counter with its expiry, INCRBY keeps the key's
 * expiry, so a counter keeps the expiry it was created with (fixed windows),
 * as in LMDB.
 *
 * Writes, several ops (wv_store_apply). LMDB applies them in one transaction
 * that is rolled back if any op fails. Redis's MULTI/EXEC is atomic (nothing
 * runs between its commands) but never rolls back, so the ops that can fail —
 * PUT_NX on a live key, INCR of a record that is not a counter or would
 * overflow — are decided before EXEC: the first op on each such key WATCHes
 * it and reads it (EXISTS or GET), the ops are simulated in order in C (a later
 * op sees what an earlier one of the same call wrote), and only if all succeed
 * is the MULTI sent, with each op as a plain SET/DEL (an INCR becomes
 * SET value KEEPTTL). If another client changed a watched key in between, EXEC
 * returns nil and the whole thing is redone after a short random backoff
 * (at most APPLY_TRIES times, then WV_EBUSY). What still differs from LMDB: an op that fails inside
 * EXEC for a reason the simulation cannot see (a key of another type written by something else than
 * waved) fails alone while the others stay applied, and the error names it; and durability is
 * Redis's (appendfsync), not an fsync per commit.
 *
 * Asynchronous writes (wv_store_submit) go to one thread, which runs them in
 * order on a pooled connection and calls each callback with its result.
 *
 * Scans walk SCAN MATCH "<prefix><db>:<glob-escaped key prefix>*" a page at a
 * time and read each page's records with the same MULTI as a read. Unlike
 * LMDB's scan they are not in key order, are not one snapshot (a record
 * written during the scan may or may not be seen), and may see a key twice if
 * Redis resizes its table meanwhile; the callers (blob collector marks, usage
 * orgs, mirror recovery) do not depend on either.
 */
#include "storage/store_redis.h"

#include "storage/redis_conn_int.h"
#include "storage/store_int.h"

#include "core/err.h"
#include "core/log.h"
#include "core/redisurl.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CMD_ARGS 8
#define KEY_BUF (WV_RSTORE_PREFIX_MAX + 16 + WV_STORE_KEY_MAX + 1)
#define SCAN_COUNT "256"
#define FETCH_CHUNK 16 /* records read per round trip in a scan */
#define APPLY_TRIES 64 /* with backoff(): about 0.4 s at most */
#define CONNS_MAX 1024
#define PROBE_MS 5000 /* idle PING period of the submit thread */

/* The databases kept in Redis: what instances must share (docs/scale-out.md). */
bool wv_rstore_holds(wv_db_t db) {
  switch (db) {
  case WV_DB_TOKENS:
  case WV_DB_REQUESTS:
  case WV_DB_BUILDS:
  case WV_DB_BUILD_TARGETS:
  case WV_DB_COUNTERS:
  case WV_DB_MIRRORS:
  case WV_DB_SCANS:
  case WV_DB_MANIFESTS:
  case WV_DB_EMBEDDED: /* images built by one instance are served by all */
  case WV_DB_JOBS:     /* written by the job queue (storage/jobqueue_redis.c), same keys */
    return true;
  default:
    return false;
  }
}

struct conn {
  redisContext *c;
  struct conn *next;
  bool reused; /* came from the idle list (may have died while idle) */
};

/* A queued submit; key and value follow the struct. */
struct sreq {
  struct sreq *next;
  wv_store_done_cb cb;
  void *arg;
  size_t n;
  wv_store_op_t ops[]; /* n ops; their keys and values follow, copied */
};

struct wv_rstore {
  wv_redisurl_t url;
  char tls_ca[PATH_MAX]; /* state.redis.tls-ca: CAs of a rediss:// server, "" = the system's */
  char prefix[WV_RSTORE_PREFIX_MAX + 1];
  struct timeval tv;
  int64_t timeout_ms;
  int max_conns;

  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t pool_cv;
  pthread_cond_t work_cv;
  struct conn *idle;
  int nconns;
  bool down; /* the last attempt failed: logged once until it works again */
  struct sreq *head, *tail;
  size_t qlen;
  bool closing;
  bool started; /* the submit thread runs (set once by open) */
  pthread_t thread;
};

/* ---- commands ------------------------------------------------------------ */

typedef struct {
  int argc;
  const char *argv[CMD_ARGS];
  size_t len[CMD_ARGS];
} cmd_t;

static void arg_n(cmd_t *c, const void *s, size_t n) {
  c->argv[c->argc] = s;
  c->len[c->argc++] = n;
}

static void arg_s(cmd_t *c, const char *s) { arg_n(c, s, strlen(s)); }

static cmd_t cmd1(const char *a) {
  cmd_t c = {0};
  arg_s(&c, a);
  return c;
}

static cmd_t cmd2(const char *a, const char *key, size_t klen) {
  cmd_t c = cmd1(a);
  arg_n(&c, key, klen);
  return c;
}

static size_t make_key(const wv_rstore_t *r, wv_db_t db, const char *key, char *buf) {
  int n = snprintf(buf, KEY_BUF, "%s%s:%s", r->prefix, wv__sto_db_names[db], key);
  return n < 0 ? 0 : (size_t)n;
}

/* ---- state changes, logged once ------------------------------------------ */

static void note_down(wv_rstore_t *r, const char *what) {
  pthread_mutex_lock(&r->mu);
  bool was = r->down;
  r->down = true;
  pthread_mutex_unlock(&r->mu);
  if (!was)
    wv_error("redis %s:%d: %s (state.redis.url; shared state unavailable until it answers)",
             r->url.host, r->url.port, what);
}

static void note_up(wv_rstore_t *r) {
  pthread_mutex_lock(&r->mu);
  bool was = r->down;
  r->down = false;
  pthread_mutex_unlock(&r->mu);
  if (was)
    wv_info("redis %s:%d: answering again", r->url.host, r->url.port);
}

/* Maps an error reply to our code. */
static int reply_err(wv_rstore_t *r, const redisReply *x) {
  if (!x || x->type != REDIS_REPLY_ERROR) {
    wv_error("redis: unexpected reply type %d", x ? x->type : -1);
    return WV_ESTORE;
  }
  const char *s = x->str;
  if (strncmp(s, "OOM", 3) == 0) {
    wv_error("redis: %s (raise maxmemory; waved's keys must not be evicted)", s);
    return WV_ENOSPC;
  }
  if (strncmp(s, "LOADING", 7) == 0 || strncmp(s, "READONLY", 8) == 0 ||
      strncmp(s, "MASTERDOWN", 10) == 0 || strncmp(s, "BUSY", 4) == 0 ||
      strncmp(s, "TRYAGAIN", 8) == 0) {
    note_down(r, s);
    return WV_EUNAVAIL;
  }
  if (strncmp(s, "NOAUTH", 6) == 0 || strncmp(s, "WRONGPASS", 9) == 0) {
    note_down(r, s);
    return WV_EAUTH;
  }
  wv_error("redis: %s", s);
  return strncmp(s, "MISCONF", 7) == 0 ? WV_EIO : WV_ESTORE;
}

/*
 * Sends n commands in one write and reads their n replies into rep. Returns 0
 * (free the replies with free_replies), or WV_EUNAVAIL with nothing to free
 * when the connection failed (c->err is then set and the caller drops it).
 */
static int pipeline(wv_rstore_t *r, redisContext *c, const cmd_t *cmds, size_t n,
                    redisReply **rep) {
  for (size_t i = 0; i < n; i++)
    if (redisAppendCommandArgv(c, cmds[i].argc, (const char **)cmds[i].argv, cmds[i].len) !=
        REDIS_OK)
      goto fail;
  for (size_t i = 0; i < n; i++) {
    void *x = NULL;
    if (redisGetReply(c, &x) != REDIS_OK || !x) {
      for (size_t j = 0; j < i; j++)
        freeReplyObject(rep[j]);
      goto fail;
    }
    rep[i] = x;
  }
  return 0;
fail:
  memset(rep, 0, n * sizeof *rep);
  note_down(r, c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
                   ? "timed out (state.redis.timeout)"
               : c->errstr[0] ? c->errstr
                              : "connection failed");
  if (!c->err)
    c->err = REDIS_ERR_IO; /* so the caller drops it */
  return WV_EUNAVAIL;
}

static void free_replies(redisReply **rep, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (rep[i])
      freeReplyObject(rep[i]);
}

/* ---- connections --------------------------------------------------------- */

static int conn_open(wv_rstore_t *r, redisContext **out) {
  char why[256];
  int rc = wv__redis_open(&r->url, r->tv, r->tv, r->tls_ca, out, why, sizeof why);
  if (rc == WV_EUNAVAIL || rc == WV_EAUTH)
    note_down(r, why);
  else if (rc && rc != WV_ENOMEM)
    wv_error("redis: %s", why);
  return rc;
}

/* False when the server closed the connection while it sat idle (a restart). */
static bool conn_alive(redisContext *c) {
  char b;
  ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Takes a live connection: 0, WV_EBUSY (none free within the timeout) or a connect error. */
static int conn_get(wv_rstore_t *r, struct conn **out) {
  struct timespec ts;
  struct conn *k = NULL;
  wv__sto_deadline_after(&ts, r->timeout_ms * 1000);
  pthread_mutex_lock(&r->mu);
  while (!k) {
    if (r->idle) {
      k = r->idle;
      r->idle = k->next;
    } else if (r->nconns < r->max_conns) {
      k = calloc(1, sizeof *k);
      if (!k) {
        pthread_mutex_unlock(&r->mu);
        return WV_ENOMEM;
      }
      r->nconns++;
    } else if (pthread_cond_timedwait(&r->pool_cv, &r->mu, &ts) == ETIMEDOUT) {
      pthread_mutex_unlock(&r->mu);
      wv_warn("redis: all %d connections busy for %" PRId64 " ms (state.redis.max-connections)",
              r->max_conns, r->timeout_ms);
      return WV_EBUSY;
    }
  }
  pthread_mutex_unlock(&r->mu);
  if (k->c && conn_alive(k->c)) {
    k->reused = true;
    *out = k;
    return 0;
  }
  if (k->c)
    redisFree(k->c);
  k->c = NULL;
  k->reused = false;
  int rc = conn_open(r, &k->c);
  if (rc) {
    free(k);
    pthread_mutex_lock(&r->mu);
    r->nconns--;
    pthread_cond_signal(&r->pool_cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
  }
  *out = k;
  return 0;
}

static void conn_put(wv_rstore_t *r, struct conn *k) {
  if (k->c->err) {
    redisFree(k->c);
    free(k);
    pthread_mutex_lock(&r->mu);
    r->nconns--;
    pthread_cond_signal(&r->pool_cv);
    pthread_mutex_unlock(&r->mu);
    return;
  }
  pthread_mutex_lock(&r->mu);
  k->next = r->idle;
  r->idle = k;
  pthread_cond_signal(&r->pool_cv);
  pthread_mutex_unlock(&r->mu);
}

typedef int (*work_fn)(wv_rstore_t *r, redisContext *c, void *arg);

/*
 * Runs fn on a pooled connection. When the connection fails and it had been
 * idle in the pool (the server may have closed it in a way the check before
 * use could not see), an idempotent fn is run once more on a new one.
 */
static int with_conn(wv_rstore_t *r, bool idempotent, work_fn fn, void *arg) {
  for (int attempt = 0;; attempt++) {
    struct conn *k;
    int rc = conn_get(r, &k);
    if (rc)
      return rc;
    rc = fn(r, k->c, arg);
    bool broken = k->c->err != 0, reused = k->reused;
    conn_put(r, k);
    if (!broken) {
      if (rc != WV_EUNAVAIL && rc != WV_EAUTH)
        note_up(r);
      return rc;
    }
    if (!idempotent || !reused || attempt > 0)
      return WV_EUNAVAIL;
  }
}

/* ---- reads --------------------------------------------------------------- */

/* The commands reading one record: MULTI, GET, PEXPIRETIME, EXEC. */
static void read_cmds(cmd_t *cmds, const char *key, size_t klen) {
  cmds[0] = cmd1("MULTI");
  cmds[1] = cmd2("GET", key, klen);
  cmds[2] = cmd2("PEXPIRETIME", key, klen);
  cmds[3] = cmd1("EXEC");
}

/*
 * Interprets the four replies of read_cmds: 0 with *val (NULL when absent),
 * *len, *exp; or an error.
 */
static int read_result(wv_rstore_t *r, redisReply **rep, const char **val, size_t *len,
                       int64_t *exp) {
  for (int i = 0; i < 3; i++)
    if (rep[i]->type == REDIS_REPLY_ERROR)
      return reply_err(r, rep[i]);
  redisReply *x = rep[3];
  if (x->type == REDIS_REPLY_ERROR)
    return reply_err(r, x);
  if (x->type != REDIS_REPLY_ARRAY || x->elements != 2)
    return reply_err(r, NULL);
  redisReply *v = x->element[0], *e = x->element[1];
  *val = NULL;
  if (v->type == REDIS_REPLY_NIL)
    return 0;
  if (v->type != REDIS_REPLY_STRING || e->type != REDIS_REPLY_INTEGER)
    return v->type == REDIS_REPLY_ERROR ? reply_err(r, v) : reply_err(r, NULL);
  if (v->len > WV_STORE_VALUE_MAX)
    return WV_ETOOBIG;
  *val = v->str;
  *len = v->len;
  *exp = e->integer > 0 ? (int64_t)e->integer : 0;
  return 0;
}

struct view_arg {
  wv_db_t db;
  const char *key;
  wv_store_view_cb cb;
  void *arg;
};

static int do_view(wv_rstore_t *r, redisContext *c, void *arg) {
  struct view_arg *va = arg;
  char key[KEY_BUF];
  size_t klen = make_key(r, va->db, va->key, key);
  cmd_t cmds[4];
  redisReply *rep[4];
  read_cmds(cmds, key, klen);
  int rc = pipeline(r, c, cmds, 4, rep);
  if (rc)
    return rc;
  const char *val;
  size_t len = 0;
  int64_t exp = 0;
  rc = read_result(r, rep, &val, &len, &exp);
  if (!rc)
    rc = val ? va->cb(va->arg, val, len, exp) : WV_ENOTFOUND;
  free_replies(rep, 4);
  return rc;
}

int wv_rstore_view(wv_rstore_t *r, wv_db_t db, const char *key, wv_store_view_cb cb, void *arg) {
  struct view_arg va = {db, key, cb, arg};
  return with_conn(r, true, do_view, &va);
}

/* ---- scans --------------------------------------------------------------- */

struct scan_arg {
  char pattern[2 * KEY_BUF + 2];
  char cursor[32];
  size_t skip; /* bytes of "<prefix><db>:" to strip from each key */
  const char *head;
  wv_store_scan_cb cb;
  void *arg;
};

/* Appends s to out with the glob characters of MATCH escaped. */
static void glob_escape(char *out, size_t *o, const char *s) {
  for (; *s; s++) {
    if (strchr("*?[]\\", *s))
      out[(*o)++] = '\\';
    out[(*o)++] = *s;
  }
}

/* Reads the records of keys[0..n) and calls cb for each one still present. */
static int scan_chunk(wv_rstore_t *r, redisContext *c, struct scan_arg *sa, redisReply **keys,
                      size_t n) {
  cmd_t cmds[4 * FETCH_CHUNK] = {0};
  redisReply *rep[4 * FETCH_CHUNK];
  for (size_t i = 0; i < n; i++)
    read_cmds(cmds + 4 * i, keys[i]->str, keys[i]->len);
  int rc = pipeline(r, c, cmds, 4 * n, rep);
  if (rc)
    return rc;
  for (size_t i = 0; i < n && !rc; i++) {
    const char *val;
    size_t len = 0;
    int64_t exp = 0;
    if ((rc = read_result(r, rep + 4 * i, &val, &len, &exp)) != 0 || !val)
      continue;
    rc = sa->cb(sa->arg, keys[i]->str + sa->skip, keys[i]->len - sa->skip, val, len, exp);
  }
  free_replies(rep, 4 * n);
  return rc;
}

static int do_scan_page(wv_rstore_t *r, redisContext *c, void *arg) {
  struct scan_arg *sa = arg;
  cmd_t cmd = cmd1("SCAN");
  arg_s(&cmd, sa->cursor);
  arg_s(&cmd, "MATCH");
  arg_s(&cmd, sa->pattern);
  arg_s(&cmd, "COUNT");
  arg_s(&cmd, SCAN_COUNT);
  redisReply *x;
  int rc = pipeline(r, c, &cmd, 1, &x);
  if (rc)
    return rc;
  if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
      x->element[0]->type != REDIS_REPLY_STRING || x->element[0]->len >= sizeof sa->cursor ||
      x->element[1]->type != REDIS_REPLY_ARRAY) {
    rc = x->type == REDIS_REPLY_ERROR ? reply_err(r, x) : reply_err(r, NULL);
    freeReplyObject(x);
    return rc;
  }
  memcpy(sa->cursor, x->element[0]->str, x->element[0]->len + 1);
  redisReply *page = x->element[1], *keys[FETCH_CHUNK];
  size_t n = 0;
  for (size_t i = 0; i < page->elements && !rc; i++) {
    redisReply *k = page->element[i];
    if (k->type != REDIS_REPLY_STRING || k->len <= sa->skip ||
        memcmp(k->str, sa->head, sa->skip) != 0)
      continue;
    keys[n++] = k;
    if (n == FETCH_CHUNK) {
      rc = scan_chunk(r, c, sa, keys, n);
      n = 0;
    }
  }
  if (!rc && n)
    rc = scan_chunk(r, c, sa, keys, n);
  freeReplyObject(x);
  return rc;
}

int wv_rstore_scan(wv_rstore_t *r, wv_db_t db, const char *prefix, wv_store_scan_cb cb, void *arg) {
  struct scan_arg *sa = calloc(1, sizeof *sa);
  char head[KEY_BUF];
  if (!sa)
    return WV_ENOMEM;
  sa->skip = make_key(r, db, "", head);
  sa->head = head;
  size_t o = 0;
  glob_escape(sa->pattern, &o, head);
  glob_escape(sa->pattern, &o, prefix ? prefix : "");
  sa->pattern[o++] = '*';
  sa->pattern[o] = '\0';
  strcpy(sa->cursor, "0");
  sa->cb = cb;
  sa->arg = arg;
  int rc;
  do
    rc = with_conn(r, false, do_scan_page, sa);
  while (!rc && strcmp(sa->cursor, "0") != 0);
  free(sa);
  return rc;
}

/* ---- writes, one op ------------------------------------------------------ */

struct one_arg {
  const wv_store_op_t *op;
  int64_t value;
};

/* SET key val [NX] [PXAT exp] into cmd (exp_buf must outlive it). */
static void set_cmd(cmd_t *cmd, const char *key, size_t klen, const void *val, size_t vlen, bool nx,
                    int64_t exp, char *exp_buf) {
  *cmd = cmd2("SET", key, klen);
  arg_n(cmd, vlen ? val : "", vlen);
  if (nx)
    arg_s(cmd, "NX");
  if (exp) {
    snprintf(exp_buf, 24, "%" PRId64, exp);
    arg_s(cmd, "PXAT");
    arg_s(cmd, exp_buf);
  }
}

/* An INCRBY error: not a counter, or past int64. */
static int incr_err(wv_rstore_t *r, const redisReply *x) {
  if (x->type == REDIS_REPLY_ERROR && strstr(x->str, "overflow"))
    return WV_ERANGE;
  if (x->type == REDIS_REPLY_ERROR && strstr(x->str, "not an integer"))
    return WV_EPARSE;
  return reply_err(r, x);
}

static int one_incr(wv_rstore_t *r, redisContext *c, struct one_arg *oa, const char *key,
                    size_t klen) {
  const wv_store_op_t *op = oa->op;
  char exp[24], delta[24];
  cmd_t cmds[4];
  redisReply *rep[4];
  snprintf(delta, sizeof delta, "%" PRId64, op->delta);
  cmds[0] = cmd1("MULTI");
  set_cmd(&cmds[1], key, klen, "0", 1, true, op->expires_ms, exp);
  cmds[2] = cmd2("INCRBY", key, klen);
  arg_s(&cmds[2], delta);
  cmds[3] = cmd1("EXEC");
  int rc = pipeline(r, c, cmds, 4, rep);
  if (rc)
    return rc;
  redisReply *x = rep[3];
  for (int i = 0; i < 3 && !rc; i++)
    if (rep[i]->type == REDIS_REPLY_ERROR)
      rc = reply_err(r, rep[i]);
  if (!rc && (x->type != REDIS_REPLY_ARRAY || x->elements != 2))
    rc = reply_err(r, x->type == REDIS_REPLY_ERROR ? x : NULL);
  else if (!rc && x->element[1]->type != REDIS_REPLY_INTEGER)
    rc = incr_err(r, x->element[1]);
  else if (!rc)
    oa->value = x->element[1]->integer;
  free_replies(rep, 4);
  return rc;
}

static int do_one(wv_rstore_t *r, redisContext *c, void *arg) {
  struct one_arg *oa = arg;
  const wv_store_op_t *op = oa->op;
  char key[KEY_BUF], exp[24];
  size_t klen = make_key(r, op->db, op->key, key);
  if (op->kind == WV_STORE_INCR)
    return one_incr(r, c, oa, key, klen);
  cmd_t cmd;
  if (op->kind == WV_STORE_DEL)
    cmd = cmd2("DEL", key, klen);
  else
    set_cmd(&cmd, key, klen, op->val, op->val_len, op->kind == WV_STORE_PUT_NX, op->expires_ms,
            exp);
  redisReply *x;
  int rc = pipeline(r, c, &cmd, 1, &x);
  if (rc)
    return rc;
  if (x->type == REDIS_REPLY_NIL && op->kind == WV_STORE_PUT_NX)
    rc = WV_EEXISTS;
  else if (x->type == REDIS_REPLY_ERROR)
    rc = reply_err(r, x);
  else if (x->type != (op->kind == WV_STORE_DEL ? REDIS_REPLY_INTEGER : REDIS_REPLY_STATUS))
    rc = reply_err(r, NULL);
  freeReplyObject(x);
  return rc;
}

/* ---- writes, several ops (see the DESIGN) --------------------------------- */

struct multi_arg {
  const wv_store_op_t *ops;
  size_t n;
  size_t failed;
  char (*keys)[KEY_BUF];
  size_t klen[WV_STORE_APPLY_MAX];
  int prev[WV_STORE_APPLY_MAX]; /* index of the previous op on the same key, or -1 */
  /* what each op leaves behind, for the ops after it on the same key */
  bool exists[WV_STORE_APPLY_MAX];
  int64_t counter[WV_STORE_APPLY_MAX];
  int counter_rc[WV_STORE_APPLY_MAX]; /* 0, or why the value is not a counter */
  char incr_text[WV_STORE_APPLY_MAX][24];
};

static bool needs_read(const struct multi_arg *m, size_t i) {
  wv_store_op_kind_t k = m->ops[i].kind;
  return m->prev[i] < 0 && (k == WV_STORE_PUT_NX || k == WV_STORE_INCR);
}

/* Records what op i leaves behind when it succeeds. */
static void leaves(struct multi_arg *m, size_t i) {
  const wv_store_op_t *op = &m->ops[i];
  m->exists[i] = op->kind != WV_STORE_DEL;
  if (op->kind == WV_STORE_PUT || op->kind == WV_STORE_PUT_NX)
    m->counter_rc[i] =
        wv__sto_parse_digits(op->val_len ? op->val : "", op->val_len, &m->counter[i]);
}

/* Decides op i from the state before it (exists, counter): 0 or its error. */
static int simulate(struct multi_arg *m, size_t i, bool exists, int64_t counter, int counter_rc) {
  const wv_store_op_t *op = &m->ops[i];
  if (op->kind == WV_STORE_PUT_NX && exists)
    return WV_EEXISTS;
  if (op->kind == WV_STORE_INCR) {
    int64_t x = exists ? counter : 0, d = op->delta;
    if (exists && counter_rc)
      return counter_rc;
    if ((d > 0 && x > INT64_MAX - d) || (d < 0 && x < INT64_MIN - d))
      return WV_ERANGE;
    m->counter[i] = x + d;
    m->counter_rc[i] = 0;
    snprintf(m->incr_text[i], sizeof m->incr_text[i], "%" PRId64, x + d);
  }
  m->exists[i] = exists; /* INCR: whether it created the counter (KEEPTTL or not) */
  return 0;
}

/* WATCHes and reads the keys the ops depend on, then simulates every op. */
static int check_ops(wv_rstore_t *r, redisContext *c, struct multi_arg *m) {
  cmd_t cmds[2 * WV_STORE_APPLY_MAX];
  redisReply *rep[2 * WV_STORE_APPLY_MAX];
  size_t nc = 0;
  for (size_t i = 0; i < m->n; i++)
    if (needs_read(m, i)) {
      cmds[nc++] = cmd2("WATCH", m->keys[i], m->klen[i]);
      cmds[nc++] = cmd2(m->ops[i].kind == WV_STORE_INCR ? "GET" : "EXISTS", m->keys[i], m->klen[i]);
    }
  int rc = nc ? pipeline(r, c, cmds, nc, rep) : 0;
  if (rc)
    return rc;
  size_t at = 0;
  for (size_t i = 0; i < m->n && !rc; i++) {
    bool exists = false;
    int64_t counter = 0;
    int crc = 0;
    if (needs_read(m, i)) {
      redisReply *x = rep[at + 1];
      at += 2;
      if (rep[at - 2]->type == REDIS_REPLY_ERROR || x->type == REDIS_REPLY_ERROR) {
        rc = reply_err(r, rep[at - 2]->type == REDIS_REPLY_ERROR ? rep[at - 2] : x);
        break;
      }
      exists = x->type == REDIS_REPLY_STRING || (x->type == REDIS_REPLY_INTEGER && x->integer);
      if (x->type == REDIS_REPLY_STRING)
        crc = wv__sto_parse_digits(x->str, x->len, &counter);
    } else if (m->prev[i] >= 0) {
      size_t p = (size_t)m->prev[i];
      exists = m->exists[p];
      counter = m->counter[p];
      crc = m->counter_rc[p];
      if (m->ops[p].kind == WV_STORE_INCR)
        exists = true, crc = 0;
    }
    if ((rc = simulate(m, i, exists, counter, crc)) != 0) {
      m->failed = i;
      break;
    }
    if (m->ops[i].kind != WV_STORE_INCR)
      leaves(m, i);
  }
  free_replies(rep, nc);
  return rc;
}

/* The command of op i inside the MULTI (its condition already checked). */
static cmd_t exec_cmd(struct multi_arg *m, size_t i, char *exp_buf) {
  const wv_store_op_t *op = &m->ops[i];
  cmd_t cmd;
  switch (op->kind) {
  case WV_STORE_DEL:
    return cmd2("DEL", m->keys[i], m->klen[i]);
  case WV_STORE_INCR:
    if (m->exists[i]) {
      cmd = cmd2("SET", m->keys[i], m->klen[i]);
      arg_s(&cmd, m->incr_text[i]);
      arg_s(&cmd, "KEEPTTL");
      return cmd;
    }
    set_cmd(&cmd, m->keys[i], m->klen[i], m->incr_text[i], strlen(m->incr_text[i]), false,
            op->expires_ms, exp_buf);
    return cmd;
  default:
    set_cmd(&cmd, m->keys[i], m->klen[i], op->val, op->val_len, false, op->expires_ms, exp_buf);
    return cmd;
  }
}

/* Sends MULTI, the ops, EXEC. 0, 1 (a watched key changed: redo) or an error. */
static int exec_ops(wv_rstore_t *r, redisContext *c, struct multi_arg *m) {
  cmd_t cmds[WV_STORE_APPLY_MAX + 2];
  redisReply *rep[WV_STORE_APPLY_MAX + 2];
  char exp[WV_STORE_APPLY_MAX][24];
  cmds[0] = cmd1("MULTI");
  for (size_t i = 0; i < m->n; i++)
    cmds[i + 1] = exec_cmd(m, i, exp[i]);
  cmds[m->n + 1] = cmd1("EXEC");
  int rc = pipeline(r, c, cmds, m->n + 2, rep);
  if (rc)
    return rc;
  redisReply *x = rep[m->n + 1];
  for (size_t i = 0; i <= m->n && !rc; i++)
    if (rep[i]->type == REDIS_REPLY_ERROR) { /* refused while queueing: EXECABORT */
      rc = reply_err(r, rep[i]);
      m->failed = i ? i - 1 : 0;
    }
  if (!rc && x->type == REDIS_REPLY_NIL)
    rc = 1;
  else if (!rc && (x->type != REDIS_REPLY_ARRAY || x->elements != m->n))
    rc = reply_err(r, x->type == REDIS_REPLY_ERROR ? x : NULL);
  for (size_t i = 0; !rc && i < m->n; i++)
    if (x->element[i]->type == REDIS_REPLY_ERROR) {
      wv_error("redis: op %zu of %zu failed after the others were applied", i + 1, m->n);
      rc = reply_err(r, x->element[i]);
      m->failed = i;
    }
  free_replies(rep, m->n + 2);
  return rc;
}

/*
 * Waits before redoing a call whose watched keys changed: exponential from
 * 50 us to 6.4 ms with jitter, so writers contending for one key (a hot
 * counter) take turns instead of colliding again.
 */
static void backoff(int attempt, unsigned *seed) {
  unsigned base = 50u << (attempt < 7 ? attempt : 7);
  usleep(base / 2 + (unsigned)rand_r(seed) % base);
}

static int do_multi(wv_rstore_t *r, redisContext *c, void *arg) {
  struct multi_arg *m = arg;
  unsigned seed = (unsigned)(uintptr_t)m ^ (unsigned)wv_store_now_ms();
  for (int attempt = 0; attempt < APPLY_TRIES; attempt++) {
    int rc = check_ops(r, c, m);
    if (rc) {
      if (!c->err) {
        redisReply *x = redisCommand(c, "UNWATCH");
        if (x)
          freeReplyObject(x);
      }
      return rc;
    }
    if ((rc = exec_ops(r, c, m)) != 1)
      return rc;
    backoff(attempt, &seed);
  }
  wv_warn("redis: %zu ops not applied: their keys kept changing under %d attempts", m->n,
          APPLY_TRIES);
  return WV_EBUSY;
}

static int apply_multi(wv_rstore_t *r, const wv_store_op_t *ops, size_t n, size_t *failed) {
  struct multi_arg *m = calloc(1, sizeof *m);
  char(*keys)[KEY_BUF] = calloc(n, KEY_BUF);
  int rc = WV_ENOMEM;
  if (m && keys) {
    m->ops = ops;
    m->n = n;
    m->keys = keys;
    bool plain = true;
    for (size_t i = 0; i < n; i++) {
      m->klen[i] = make_key(r, ops[i].db, ops[i].key, keys[i]);
      m->prev[i] = -1;
      for (size_t j = i; j-- > 0;)
        if (m->klen[j] == m->klen[i] && memcmp(keys[j], keys[i], m->klen[i]) == 0) {
          m->prev[i] = (int)j;
          break;
        }
      plain = plain && (ops[i].kind == WV_STORE_PUT || ops[i].kind == WV_STORE_DEL);
    }
    /* Only SETs and DELs: nothing can fail, so a lost reply may be resent. */
    rc = with_conn(r, plain, do_multi, m);
    if (rc && failed)
      *failed = m->failed;
  }
  free(keys);
  free(m);
  return rc;
}

int wv_rstore_apply(wv_rstore_t *r, const wv_store_op_t *ops, size_t n, size_t *failed,
                    int64_t *value) {
  if (n > 1)
    return apply_multi(r, ops, n, failed);
  struct one_arg oa = {ops, 0};
  bool idempotent = ops->kind == WV_STORE_PUT || ops->kind == WV_STORE_DEL;
  int rc = with_conn(r, idempotent, do_one, &oa);
  if (rc && failed)
    *failed = 0;
  if (!rc && value)
    *value = oa.value;
  return rc;
}

/* ---- the submit thread --------------------------------------------------- */

static int do_ping(wv_rstore_t *r, redisContext *c, void *arg) {
  (void)arg;
  cmd_t cmd = cmd1("PING");
  redisReply *x;
  int rc = pipeline(r, c, &cmd, 1, &x);
  if (rc)
    return rc;
  rc = x->type == REDIS_REPLY_STATUS ? 0 : reply_err(r, x);
  freeReplyObject(x);
  return rc;
}

/*
 * A run of queued single PUTs and DELs (the manifest cache's and the usage
 * counters' writes) is sent as one pipeline: Redis applies them in one pass
 * of its event loop, so with appendfsync always they share one fsync instead
 * of waiting for one each, and the order is kept.
 */
#define SUBMIT_BATCH 64

static bool batchable(const struct sreq *q) {
  return q->n == 1 && (q->ops[0].kind == WV_STORE_PUT || q->ops[0].kind == WV_STORE_DEL);
}

struct batch {
  struct sreq *q[SUBMIT_BATCH];
  int rc[SUBMIT_BATCH];
  size_t n;
};

static int do_batch(wv_rstore_t *r, redisContext *c, void *arg) {
  struct batch *b = arg;
  char(*keys)[KEY_BUF] = malloc(b->n * KEY_BUF);
  char exps[SUBMIT_BATCH][24];
  cmd_t cmds[SUBMIT_BATCH];
  redisReply *rep[SUBMIT_BATCH];
  if (!keys)
    return WV_ENOMEM;
  for (size_t i = 0; i < b->n; i++) {
    const wv_store_op_t *op = &b->q[i]->ops[0];
    size_t klen = make_key(r, op->db, op->key, keys[i]);
    if (op->kind == WV_STORE_DEL)
      cmds[i] = cmd2("DEL", keys[i], klen);
    else
      set_cmd(&cmds[i], keys[i], klen, op->val, op->val_len, false, op->expires_ms, exps[i]);
  }
  int rc = pipeline(r, c, cmds, b->n, rep);
  for (size_t i = 0; !rc && i < b->n; i++) {
    bool del = b->q[i]->ops[0].kind == WV_STORE_DEL;
    b->rc[i] = rep[i]->type == REDIS_REPLY_ERROR ? reply_err(r, rep[i])
               : rep[i]->type != (del ? REDIS_REPLY_INTEGER : REDIS_REPLY_STATUS)
                   ? reply_err(r, NULL)
                   : 0;
  }
  if (!rc)
    free_replies(rep, b->n);
  free(keys);
  return rc;
}

/* Runs b (PUT and DEL are idempotent: retried once on a fresh connection) and completes it. */
static void run_batch(wv_rstore_t *r, struct batch *b, bool give_up) {
  int rc = give_up ? WV_EUNAVAIL : with_conn(r, true, do_batch, b);
  for (size_t i = 0; i < b->n; i++) {
    if (b->q[i]->cb)
      b->q[i]->cb(b->q[i]->arg, rc ? rc : b->rc[i], 0);
    free(b->q[i]);
  }
}

/*
 * The submit thread: runs queued writes in order and, when idle for
 * PROBE_MS, PINGs Redis so that r->down (what /health shows) stays current
 * without traffic.
 */
static void *submit_main(void *arg) {
  wv_rstore_t *r = arg;
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->head && !r->closing) {
      struct timespec ts;
      wv__sto_deadline_after(&ts, PROBE_MS * 1000);
      if (pthread_cond_timedwait(&r->work_cv, &r->mu, &ts) == ETIMEDOUT && !r->head &&
          !r->closing) {
        pthread_mutex_unlock(&r->mu);
        with_conn(r, true, do_ping, NULL);
        pthread_mutex_lock(&r->mu);
      }
    }
    struct sreq *q = r->head;
    if (!q)
      break;
    r->head = q->next;
    if (!r->head)
      r->tail = NULL;
    r->qlen--;
    bool give_up = r->closing && r->down; /* shutting down with Redis gone: do not wait */
    if (batchable(q)) {
      struct batch b = {.q = {q}, .n = 1};
      while (b.n < SUBMIT_BATCH && r->head && batchable(r->head)) {
        b.q[b.n++] = r->head;
        r->head = r->head->next;
        r->qlen--;
      }
      if (!r->head)
        r->tail = NULL;
      pthread_mutex_unlock(&r->mu);
      run_batch(r, &b, give_up);
      pthread_mutex_lock(&r->mu);
      continue;
    }
    pthread_mutex_unlock(&r->mu);
    int64_t value = 0;
    int rc = !q->n ? 0 : give_up ? WV_EUNAVAIL : wv_rstore_apply(r, q->ops, q->n, NULL, &value);
    if (q->cb)
      q->cb(q->arg, rc, value);
    free(q);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

int wv_rstore_submit(wv_rstore_t *r, const wv_store_op_t *ops, size_t n, wv_store_done_cb cb,
                     void *arg) {
  size_t extra = 0;
  for (size_t i = 0; i < n; i++)
    extra += strlen(ops[i].key) + 1 + (ops[i].kind <= WV_STORE_PUT_NX ? ops[i].val_len : 0);
  struct sreq *q = malloc(sizeof *q + n * sizeof q->ops[0] + extra);
  if (!q)
    return WV_ENOMEM;
  *q = (struct sreq){.cb = cb, .arg = arg, .n = n};
  char *p = (char *)(q->ops + n);
  for (size_t i = 0; i < n; i++) {
    size_t klen = strlen(ops[i].key), vlen = ops[i].kind <= WV_STORE_PUT_NX ? ops[i].val_len : 0;
    q->ops[i] = ops[i];
    memcpy(p, ops[i].key, klen + 1);
    q->ops[i].key = p;
    p += klen + 1;
    if (vlen)
      memcpy(p, ops[i].val, vlen);
    q->ops[i].val = vlen ? p : NULL;
    q->ops[i].val_len = vlen;
    p += vlen;
  }
  int rc = 0;
  pthread_mutex_lock(&r->mu);
  if (r->closing)
    rc = WV_ECLOSED;
  else if (r->qlen >= WV_STORE_QUEUE_MAX)
    rc = WV_EBUSY;
  else {
    if (r->tail)
      r->tail->next = q;
    else
      r->head = q;
    r->tail = q;
    r->qlen++;
    pthread_cond_signal(&r->work_cv);
  }
  pthread_mutex_unlock(&r->mu);
  if (rc)
    free(q);
  return rc;
}

struct flush_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
};

static void flush_done(void *arg, int rc, int64_t value) {
  (void)rc, (void)value;
  struct flush_wait *w = arg;
  pthread_mutex_lock(&w->mu);
  w->done = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

int wv_rstore_flush(wv_rstore_t *r) {
  if (!r)
    return 0;
  struct flush_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  int rc = wv_rstore_submit(r, NULL, 0, flush_done, &w); /* no ops: a place in the queue */
  if (rc)
    return rc == WV_ECLOSED ? 0 : rc; /* drained already: nothing is queued */
  pthread_mutex_lock(&w.mu);
  while (!w.done)
    pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);
  return 0;
}

bool wv_rstore_up(wv_rstore_t *r) {
  pthread_mutex_lock(&r->mu);
  bool up = !r->down;
  pthread_mutex_unlock(&r->mu);
  return up;
}

/* ---- open / close -------------------------------------------------------- */

/* Checks the server is Redis 7.0 or newer (PEXPIRETIME, SET PXAT/KEEPTTL). */
static int check_version(wv_rstore_t *r, redisContext *c, void *arg) {
  (void)arg;
  cmd_t cmd = cmd1("INFO");
  arg_s(&cmd, "server");
  redisReply *x;
  int rc = pipeline(r, c, &cmd, 1, &x);
  if (rc)
    return rc;
  const char *v = x->type == REDIS_REPLY_STRING ? strstr(x->str, "redis_version:") : NULL;
  int major = v ? atoi(v + 14) : 0;
  if (x->type == REDIS_REPLY_ERROR)
    rc = reply_err(r, x);
  else if (major < 7) {
    wv_error("redis %s:%d: version %.*s; waved needs Redis 7.0 or newer", r->url.host, r->url.port,
             v ? (int)strcspn(v + 14, "\r\n") : 1, v ? v + 14 : "?");
    rc = WV_ESTORE;
  }
  freeReplyObject(x);
  return rc;
}

static int check_prefix(const char *prefix) {
  size_t n = strlen(prefix);
  if (n > WV_RSTORE_PREFIX_MAX)
    return WV_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (prefix[i] <= ' ' || prefix[i] == 0x7f)
      return WV_EINVAL;
  return 0;
}

static int init(wv_rstore_t *r, const char *url, const char *prefix, int64_t timeout_ms,
                int max_conns) {
  char why[256];
  if (wv_redisurl_parse(url, &r->url, why, sizeof why)) {
    wv_error("state.redis.url: %s", why);
    return WV_EINVAL;
  }
  if (!prefix || check_prefix(prefix)) {
    wv_error("state.redis.prefix: at most %d printable characters without spaces",
             WV_RSTORE_PREFIX_MAX);
    return WV_EINVAL;
  }
  if (timeout_ms <= 0 || max_conns <= 0 || max_conns > CONNS_MAX)
    return WV_EINVAL;
  snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
  r->timeout_ms = timeout_ms;
  r->tv = (struct timeval){timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  r->max_conns = max_conns;
  return 0;
}

int wv_rstore_open(wv_rstore_t **out, const char *url, const char *prefix, int64_t timeout_ms,
                   int max_conns, const char *tls_ca) {
  if (tls_ca && strlen(tls_ca) >= PATH_MAX) {
    wv_error("state.redis.tls-ca: the path is too long");
    return WV_EINVAL;
  }
  wv_rstore_t *r = calloc(1, sizeof *r);
  if (!r)
    return WV_ENOMEM;
  snprintf(r->tls_ca, sizeof r->tls_ca, "%s", tls_ca ? tls_ca : "");
  int rc = init(r, url, prefix, timeout_ms, max_conns);
  if (rc) {
    free(r);
    return rc;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->pool_cv, &ca);
  pthread_cond_init(&r->work_cv, &ca);
  pthread_condattr_destroy(&ca);
  rc = with_conn(r, false, check_version, NULL);
  if (rc == 0 && pthread_create(&r->thread, NULL, submit_main, r) != 0)
    rc = WV_ENOMEM;
  r->started = rc == 0;
  if (rc) {
    if (rc == WV_EAUTH)
      wv_error("redis %s:%d refused the credentials of state.redis.url", r->url.host, r->url.port);
    else if (rc == WV_EINVAL)
      wv_error("redis %s:%d has no database %d (state.redis.url)", r->url.host, r->url.port,
               r->url.db);
    wv_rstore_close(r);
    return rc;
  }
  wv_info("state: shared databases in redis %s:%d db %d, prefix '%s'", r->url.host, r->url.port,
          r->url.db, r->prefix);
  *out = r;
  return 0;
}

void wv_rstore_drain(wv_rstore_t *r) {
  if (!r)
    return;
  pthread_mutex_lock(&r->mu);
  bool running = r->started && !r->closing;
  r->closing = true;
  pthread_cond_broadcast(&r->work_cv);
  pthread_mutex_unlock(&r->mu);
  if (running)
    pthread_join(r->thread, NULL); /* it runs what is queued before exiting */
}

void wv_rstore_close(wv_rstore_t *r) {
  if (!r)
    return;
  wv_rstore_drain(r);
  while (r->idle) {
    struct conn *k = r->idle;
    r->idle = k->next;
    redisFree(k->c);
    free(k);
  }
  pthread_cond_destroy(&r->work_cv);
  pthread_cond_destroy(&r->pool_cv);
  pthread_mutex_destroy(&r->mu);
  explicit_bzero(r->url.pass, sizeof r->url.pass);
  free(r);
}

/* ---- one command, for the cluster helpers (storage/store_cluster.c) ------ */

struct raw_arg {
  cmd_t cmd;
  redisReply *rep;
};

static int do_raw(wv_rstore_t *r, redisContext *c, void *arg) {
  struct raw_arg *a = arg;
  int rc = pipeline(r, c, &a->cmd, 1, &a->rep);
  if (rc == 0 && a->rep->type == REDIS_REPLY_ERROR) {
    rc = reply_err(r, a->rep);
    freeReplyObject(a->rep);
    a->rep = NULL;
  }
  return rc;
}

int wv_rstore_command(wv_rstore_t *r, int argc, const char *const *argv, const size_t *len,
                      bool idempotent, struct redisReply **out) {
  struct raw_arg a = {0};
  if (argc < 1 || argc > CMD_ARGS)
    return WV_EINVAL;
  for (int i = 0; i < argc; i++)
    arg_n(&a.cmd, argv[i], len[i]);
  int rc = with_conn(r, idempotent, do_raw, &a);
  if (rc == 0)
    *out = a.rep;
  else if (a.rep)
    freeReplyObject(a.rep);
  return rc;
}

size_t wv_rstore_name(const wv_rstore_t *r, const char *name, char *buf, size_t cap) {
  int n = snprintf(buf, cap, "%s%s", r->prefix, name);
  return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int wv_rstore_connect(wv_rstore_t *r, struct redisContext **out) { return conn_open(r, out); }
