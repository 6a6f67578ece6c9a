/*
 * storage/jobqueue_redis.c — the job queue shared by the instances of a cluster (see
 * jobqueue_redis.h; the design and its guarantees are docs/scale-out.md "Job queue").
 *
 * DESIGN
 *
 * Submit (any instance): the QUEUED record is created with SET NX (an id taken on another
 * instance is WV_EEXISTS), then XADD jobq:<kind> * id <id>. Nothing runs yet.
 *
 * Reader thread (each instance): for every kind with free capacity (its max_running minus what
 * runs or waits in the local engine) XREADGROUP GROUP waved <instance> COUNT 1 BLOCK 500
 * STREAMS jobq:<kind> ... >. For each message it takes the job's lease (joblease:<id>, SET if
 * absent or already ours, PX lease, in one Lua call) and hands the id to wv_job_adopt, which
 * loads the record and runs the job in the local engine. No lease, no run: that is the "never two
 * instances run one job" rule, and every write of a record is fenced by it too (save refuses to
 * write over a job whose lease another instance holds). When the job ends (job thread,
 * queue->ended, after the final record is saved): XACK + XDEL of its message, the lease
 * released, PUBLISH jobs:done <id>.
 *
 * Leases: every lease/3 the reader renews the leases of the jobs it runs (PEXPIRE if still ours),
 * resets the idle time of their messages (XCLAIM to itself, JUSTID) and copies the tail of each
 * live log to joblive:<id>. A lease found taken (or not renewed for a whole lease because Redis
 * was unreachable) cancels the local run: another instance may have it.
 *
 * Reclaim: every min(lease/2, 5 s) XAUTOCLAIM with min-idle = lease takes messages whose owner
 * has not touched them for a lease; a message whose lease is still held is left alone, one whose
 * lease is free is adopted with WV_JOB_ADOPT_RECLAIM (re-run when the kind is re-runnable, else
 * FAILED with WV_JOB_REASON_LOST). At start the reader first adopts what its own consumer still
 * has pending (WV_JOB_ADOPT_RECOVER: the restart recovery of one instance).
 *
 * Poison jobs: a job whose run kills its instance would be taken over for ever. A reclaim whose
 * lease is taken, and a re-read of one's own pending messages, count a delivery (XAUTOCLAIM runs
 * with JUSTID, which counts nothing, and the count is XCLAIMed once the lease is ours: a message
 * whose lease another instance still holds is left alone without counting, so an owner that is
 * slow to touch it does not push it towards the cap); before a reclaimed or recovered
 * message is run, XPENDING gives that count, and past max_deliveries the job is failed instead
 * (wv_job_abandon: "abandoned by N instances ...") and acknowledged like any ended job, so
 * its waiters everywhere get the failure.
 *
 * Waiters of jobs running elsewhere (core/job/job_queue.c) are woken by the subscriber thread
 * (SUBSCRIBE jobs:done on its own connection) and, in case a message was missed (a reconnect),
 * by the reader's slow poll of their records every poll_ms.
 *
 * Connections: the reader and the subscriber each have their own; the callbacks share a small
 * pool (one connection per slot, a mutex each), reconnected on error and retried once. Records
 * are read through the instance's state store when it has one (opts.store: same keys), whose
 * local cache keeps the records of ended jobs (they never change again): a tag pull of a
 * finished build token on an instance that did not run it costs no round trip.
 */
#include "storage/jobqueue_redis.h"

#include "storage/redis_conn_int.h"
#include "storage/store.h"

#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/redisurl.h"
#include "core/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POOL 8
#define KEY_MAX 256 /* prefix (64) + name (16) + ":" + id (128) */
#define GROUP "waved"
#define MAX_KINDS 16
#define LIVE_TAIL (64u * 1024) /* bytes of a running job's log copied to joblive:<id> */
#define POLL_IDS 1024          /* parked remote jobs polled per round */
#define BLOCK_MS 500

static const char LUA_TAKE[] =
    "local l=redis.call('GET',KEYS[1]) if l and l~=ARGV[1] then return 0 end "
    "redis.call('SET',KEYS[1],ARGV[1],'PX',ARGV[2]) return 1";
static const char LUA_RENEW[] = "if redis.call('GET',KEYS[1])==ARGV[1] then "
                                "return redis.call('PEXPIRE',KEYS[1],ARGV[2]) end return 0";
static const char LUA_RELEASE[] = "if redis.call('GET',KEYS[1])==ARGV[1] then "
                                  "return redis.call('DEL',KEYS[1]) end return 0";
/* Writes a record unless another instance holds the job's lease. */
static const char LUA_SAVE[] =
    "local l=redis.call('GET',KEYS[2]) if l and l~=ARGV[2] then return 0 end "
    "if ARGV[3]=='0' then redis.call('SET',KEYS[1],ARGV[1]) "
    "else redis.call('SET',KEYS[1],ARGV[1],'PX',ARGV[3]) end return 1";

/* A job this instance runs (adopted from the queue). */
typedef struct mine {
  struct mine *next;
  char id[WV_JOB_ID_MAX + 1];
  char kind[64];
  char msgid[64];
  int64_t renewed_ms; /* last successful renewal (monotonic) */
  bool lost;          /* its lease was taken: do not acknowledge its end */
} mine_t;

typedef struct {
  pthread_mutex_t mu;
  redisContext *c;
} slot_t;

struct wv_jobq {
  wv_redisurl_t url;
  char tls_ca[PATH_MAX]; /* "" = the system's CAs */
  char prefix[65];
  char me[WV_JOB_ID_MAX + 1];
  char nonce[13]; /* this process's claim on the instance id (jobinstance:<me>) */
  char log_dir[PATH_MAX];
  int64_t timeout_ms, lease_ms, poll_ms, final_ttl_ms;
  uint64_t log_max;
  int max_deliveries; /* a message delivered more often is failed, not run */
  wv_store_t *store;  /* reads of records, through its local cache; NULL = GET here */
  slot_t pool[POOL];
  atomic_uint next_slot;

  wv_job_engine_t *engine;
  pthread_t reader, subscriber;
  bool started;
  atomic_bool stop;

  pthread_mutex_t mu; /* guards mine */
  mine_t *mine;
  char cursor[MAX_KINDS][64]; /* reader: XAUTOCLAIM cursors */
};

/* ---- connections ---------------------------------------------------------------------- */

static struct timeval tv_of(int64_t ms) {
  return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

/* A connection whose commands time out after timeout_ms (the reader's also wait BLOCK_MS). */
static redisContext *rconnect(const wv_jobq_t *q, int64_t timeout_ms) {
  redisContext *c = NULL;
  wv__redis_open(&q->url, tv_of(q->timeout_ms), tv_of(timeout_ms), q->tls_ca, &c, NULL, 0);
  return c;
}

/* One command on a pooled connection, retried once on a new one after a connection error. */
static redisReply *qcmd(wv_jobq_t *q, int argc, const char **argv, const size_t *len) {
  unsigned start = atomic_fetch_add(&q->next_slot, 1) % POOL;
  slot_t *s = NULL;
  for (unsigned i = 0; i < POOL && !s; i++)
    if (pthread_mutex_trylock(&q->pool[(start + i) % POOL].mu) == 0)
      s = &q->pool[(start + i) % POOL];
  if (!s) {
    s = &q->pool[start];
    pthread_mutex_lock(&s->mu);
  }
  redisReply *r = NULL;
  for (int attempt = 0; attempt < 2 && !r; attempt++) {
    if (!s->c)
      s->c = rconnect(q, q->timeout_ms);
    if (!s->c)
      break;
    r = redisCommandArgv(s->c, argc, argv, len);
    if (!r) {
      redisFree(s->c);
      s->c = NULL;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return r;
}

/* The same on a given connection (the reader's), dropped on error. */
static redisReply *ccmd(wv_jobq_t *q, redisContext **c, int argc, const char **argv,
                        const size_t *len) {
  if (!*c)
    *c = rconnect(q, q->timeout_ms + BLOCK_MS);
  redisReply *r = *c ? redisCommandArgv(*c, argc, argv, len) : NULL;
  if (!r && *c) {
    redisFree(*c);
    *c = NULL;
  }
  return r;
}

#define ARGS(...)                                                                                  \
  const char *argv_[] = {__VA_ARGS__};                                                             \
  size_t len_[sizeof argv_ / sizeof argv_[0]];                                                     \
  for (size_t i_ = 0; i_ < sizeof argv_ / sizeof argv_[0]; i_++)                                   \
    len_[i_] = strlen(argv_[i_]);                                                                  \
  int argc_ = (int)(sizeof argv_ / sizeof argv_[0])

static int reply_rc(const redisReply *r) {
  if (!r)
    return WV_EUNAVAIL;
  if (r->type != REDIS_REPLY_ERROR)
    return 0;
  if (strncmp(r->str, "OOM", 3) == 0)
    return WV_ENOSPC;
  if (strncmp(r->str, "LOADING", 7) == 0 || strncmp(r->str, "BUSY", 4) == 0)
    return WV_EUNAVAIL;
  wv_error("jobs: redis: %s", r->str);
  return WV_ESTORE;
}

static void key(const wv_jobq_t *q, char *out, const char *what, const char *id) {
  snprintf(out, KEY_MAX, "%.64s%.16s:%.128s", q->prefix, what, id);
}

/* ---- persistence (wv_job_persist_t) ------------------------------------------------------ */

static int p_save(void *ctx, const char *id, const char *json, size_t len, bool final) {
  wv_jobq_t *q = ctx;
  char rk[KEY_MAX], lk[KEY_MAX], ttl[32];
  key(q, rk, "jobs", id);
  key(q, lk, "joblease", id);
  snprintf(ttl, sizeof ttl, "%" PRId64, final ? q->final_ttl_ms : 0);
  const char *argv[] = {"EVAL", LUA_SAVE, "2", rk, lk, json, q->me, ttl};
  size_t lens[] = {4,   sizeof LUA_SAVE - 1, 1,          strlen(rk), strlen(lk),
                   len, strlen(q->me),       strlen(ttl)};
  redisReply *r = qcmd(q, 8, argv, lens);
  int rc = reply_rc(r);
  if (!rc && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
    wv_warn("jobs: %s: not saved: another instance holds its lease", id);
    rc = WV_EEXISTS;
  }
  if (r)
    freeReplyObject(r);
  return rc;
}

static int p_create(void *ctx, const char *id, const char *json, size_t len) {
  wv_jobq_t *q = ctx;
  char rk[KEY_MAX];
  key(q, rk, "jobs", id);
  const char *argv[] = {"SET", rk, json, "NX"};
  size_t lens[] = {3, strlen(rk), len, 2};
  redisReply *r = qcmd(q, 4, argv, lens);
  int rc = reply_rc(r);
  if (!rc && r->type == REDIS_REPLY_NIL)
    rc = WV_EEXISTS;
  if (r)
    freeReplyObject(r);
  return rc;
}

/* Recovery is the reader's (own pending messages): nothing to load at engine start. */
static int p_load_all(void *ctx, wv_job_record_cb each, void *arg) {
  (void)ctx, (void)each, (void)arg;
  return 0;
}

static int get_key(wv_jobq_t *q, const char *k, size_t max, char **out, size_t *len) {
  const char *argv[] = {"GET", k};
  size_t lens[] = {3, strlen(k)};
  redisReply *r = qcmd(q, 2, argv, lens);
  int rc = reply_rc(r);
  if (!rc && r->type == REDIS_REPLY_NIL)
    rc = WV_ENOTFOUND;
  else if (!rc && r->type != REDIS_REPLY_STRING)
    rc = WV_ESTORE;
  if (!rc) {
    size_t n = r->len > max ? max : r->len;
    char *buf = malloc(n + 1);
    if (!buf) {
      rc = WV_ENOMEM;
    } else {
      memcpy(buf, r->str + (r->len - n), n); /* the tail */
      buf[n] = '\0';
      *out = buf;
      *len = n;
    }
  }
  if (r)
    freeReplyObject(r);
  return rc;
}

static int p_get(void *ctx, const char *id, char **json, size_t *len) {
  wv_jobq_t *q = ctx;
  char rk[KEY_MAX];
  if (q->store) { /* same key; an ended job's record comes from the local cache after once */
    int rc = wv_store_get_final(q->store, WV_DB_JOBS, id, wv_job_record_final, json, len, NULL);
    return rc == WV_EINVAL || rc == WV_ETOOBIG ? WV_ENOTFOUND : rc;
  }
  key(q, rk, "jobs", id);
  return get_key(q, rk, WV_JOB_RECORD_MAX, json, len);
}

static int p_put_log(void *ctx, const char *id, const void *data, size_t len) {
  wv_jobq_t *q = ctx;
  char k[KEY_MAX], ttl[32];
  key(q, k, "joblogs", id);
  snprintf(ttl, sizeof ttl, "%" PRId64, q->final_ttl_ms);
  size_t n = len > q->log_max ? (size_t)q->log_max : len; /* the tail: where builds say why */
  const char *argv[] = {"SET", k, (const char *)data + (len - n), "PX", ttl};
  size_t lens[] = {3, strlen(k), n, 2, strlen(ttl)};
  redisReply *r = qcmd(q, 5, argv, lens);
  int rc = reply_rc(r);
  if (r)
    freeReplyObject(r);
  return rc;
}

static int p_get_log(void *ctx, const char *id, size_t max, char **out, size_t *len) {
  char k[KEY_MAX];
  key(ctx, k, "joblogs", id);
  int rc = get_key(ctx, k, max, out, len);
  if (rc == WV_ENOTFOUND) { /* still running, elsewhere: the tail its instance copies */
    key(ctx, k, "joblive", id);
    rc = get_key(ctx, k, max, out, len);
  }
  return rc;
}

/* ---- queue (wv_job_queue_t) ------------------------------------------------------------- */

static int q_enqueue(void *ctx, const char *kind, const char *id) {
  wv_jobq_t *q = ctx;
  char sk[KEY_MAX];
  key(q, sk, "jobq", kind);
  ARGS("XADD", sk, "*", "id", id);
  redisReply *r = qcmd(q, argc_, argv_, len_);
  int rc = reply_rc(r);
  if (r)
    freeReplyObject(r);
  return rc;
}

static void simple(wv_jobq_t *q, redisContext **c, int argc, const char **argv, const size_t *len) {
  redisReply *r = c ? ccmd(q, c, argc, argv, len) : qcmd(q, argc, argv, len);
  reply_rc(r);
  if (r)
    freeReplyObject(r);
}

/* Acknowledges a job's message, releases its lease and announces its end. */
static void finish_msg(wv_jobq_t *q, redisContext **c, const char *kind, const char *msgid,
                       const char *id, bool announce) {
  char sk[KEY_MAX], lk[KEY_MAX], live[KEY_MAX], ch[KEY_MAX];
  key(q, sk, "jobq", kind);
  key(q, lk, "joblease", id);
  key(q, live, "joblive", id);
  snprintf(ch, sizeof ch, "%sjobs:done", q->prefix);
  if (msgid && *msgid) {
    ARGS("XACK", sk, GROUP, msgid);
    simple(q, c, argc_, argv_, len_);
    const char *xd[] = {"XDEL", sk, msgid};
    size_t xl[] = {4, strlen(sk), strlen(msgid)};
    simple(q, c, 3, xd, xl);
  }
  if (!announce)
    return;
  const char *rel[] = {"EVAL", LUA_RELEASE, "1", lk, q->me};
  size_t rl[] = {4, sizeof LUA_RELEASE - 1, 1, strlen(lk), strlen(q->me)};
  simple(q, c, 5, rel, rl); /* only if ours: a job failed by reclaim was leased here too */
  const char *del[] = {"DEL", live};
  size_t dl[] = {3, strlen(live)};
  simple(q, c, 2, del, dl);
  const char *pub[] = {"PUBLISH", ch, id};
  size_t pl[] = {7, strlen(ch), strlen(id)};
  simple(q, c, 3, pub, pl);
}

static void q_ended(void *ctx, const char *kind, const char *id, wv_job_state_t state) {
  wv_jobq_t *q = ctx;
  (void)state;
  char msgid[64] = "";
  bool lost = false;
  pthread_mutex_lock(&q->mu);
  for (mine_t **p = &q->mine; *p; p = &(*p)->next)
    if (strcmp((*p)->id, id) == 0) {
      mine_t *m = *p;
      *p = m->next;
      snprintf(msgid, sizeof msgid, "%s", m->msgid);
      lost = m->lost;
      free(m);
      break;
    }
  pthread_mutex_unlock(&q->mu);
  if (lost) /* another instance has it now: its end is that instance's to announce */
    return;
  finish_msg(q, NULL, kind, msgid, id, true);
  if (q->engine)
    wv_job_remote_ended(q->engine, id); /* waiters here that registered before it came here */
}

/* ---- the reader thread -------------------------------------------------------------------- */

static void sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* 1: the lease is ours now; 0: another instance holds it; <0: Redis did not answer. */
static int take_lease(wv_jobq_t *q, redisContext **c, const char *id) {
  char lk[KEY_MAX], px[32];
  key(q, lk, "joblease", id);
  snprintf(px, sizeof px, "%" PRId64, q->lease_ms);
  ARGS("EVAL", LUA_TAKE, "1", lk, q->me, px);
  redisReply *r = ccmd(q, c, argc_, argv_, len_);
  int v = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
  if (r)
    freeReplyObject(r);
  return v;
}

static void release(wv_jobq_t *q, redisContext **c, const char *id) {
  char lk[KEY_MAX];
  key(q, lk, "joblease", id);
  const char *rel[] = {"EVAL", LUA_RELEASE, "1", lk, q->me};
  size_t rl[] = {4, sizeof LUA_RELEASE - 1, 1, strlen(lk), strlen(q->me)};
  simple(q, c, 5, rel, rl);
}

/* How many times the group delivered message msgid of stream sk (XPENDING), 0 = unknown. */
static long long deliveries(wv_jobq_t *q, redisContext **c, const char *sk, const char *msgid) {
  ARGS("XPENDING", sk, GROUP, msgid, msgid, "1");
  redisReply *r = ccmd(q, c, argc_, argv_, len_);
  long long n = 0;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
      r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 4 &&
      r->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
    n = r->element[0]->element[3]->integer;
  if (r)
    freeReplyObject(r);
  return n;
}

/* Counts a reclaimed message's delivery (XCLAIM without JUSTID raises the group's count) and
 * returns the count, as deliveries() does; 0 when it could not be counted (Redis away, an
 * error reply, the message gone): the job must not run uncounted then. */
static long long count_delivery(wv_jobq_t *q, redisContext **c, const char *kind,
                                const char *msgid) {
  char sk[KEY_MAX];
  key(q, sk, "jobq", kind);
  ARGS("XCLAIM", sk, GROUP, q->me, "0", msgid);
  redisReply *r = ccmd(q, c, argc_, argv_, len_);
  bool claimed = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
  if (r)
    freeReplyObject(r);
  return claimed && *c ? deliveries(q, c, sk, msgid) : 0;
}

/*
 * A message of a job: lease, then the engine; acknowledged when the job has ended. delivered:
 * how many times the group handed it out, this time included (0 = unknown: a new message; -1 =
 * a reclaim, counted here once the lease is ours); past max_deliveries every instance that took
 * it stopped answering, so it is failed, not run.
 */
static void handle(wv_jobq_t *q, redisContext **c, const char *kind, const char *msgid,
                   const char *id, wv_job_adopt_t how, long long delivered) {
  if (!id) { /* a deleted entry still pending */
    finish_msg(q, c, kind, msgid, "", false);
    return;
  }
  if (wv_job_local(q->engine, id))
    return;
  if (take_lease(q, c, id) != 1)
    return; /* runs elsewhere (or Redis is away): stays pending, reclaim looks again */
  if (delivered < 0 && (delivered = count_delivery(q, c, kind, msgid)) < 1) {
    release(q, c, id); /* not counted: stays pending, reclaim looks again */
    return;
  }
  mine_t *m = calloc(1, sizeof *m);
  if (!m) {
    release(q, c, id);
    return;
  }
  snprintf(m->id, sizeof m->id, "%s", id);
  snprintf(m->kind, sizeof m->kind, "%s", kind);
  snprintf(m->msgid, sizeof m->msgid, "%s", msgid);
  m->renewed_ms = wv_mono_ms();
  pthread_mutex_lock(&q->mu); /* listed before the engine may end it */
  m->next = q->mine;
  q->mine = m;
  pthread_mutex_unlock(&q->mu);
  bool ended = false;
  int rc;
  if (delivered > q->max_deliveries) {
    char why[WV_JOB_REASON_MAX];
    snprintf(why, sizeof why,
             "abandoned by %lld instances: each took the job and stopped answering before it "
             "ended (state.redis.job-max-deliveries: %d); it is not run again",
             delivered - 1, q->max_deliveries);
    rc = wv_job_abandon(q->engine, id, why, &ended);
  } else {
    rc = wv_job_adopt(q->engine, id, how, &ended);
  }
  if (rc == 0 && !ended)
    return; /* runs here: q_ended finishes the message */
  pthread_mutex_lock(&q->mu);
  for (mine_t **p = &q->mine; *p; p = &(*p)->next)
    if (*p == m) {
      *p = m->next;
      break;
    }
  pthread_mutex_unlock(&q->mu);
  free(m);
  if (rc == 0 || rc == WV_ENOTFOUND || rc == WV_EINVAL || rc == WV_EPARSE) {
    if (rc)
      wv_warn("jobs: %s: dropped from the queue: %s", id, wv_strerror(rc));
    finish_msg(q, c, kind, msgid, id, true); /* ended (or cannot ever run): acknowledged */
  } else {
    release(q, c, id);
    wv_warn("jobs: %s: cannot take it from the queue now: %s", id, wv_strerror(rc));
  }
}

/* The job id of an entry [msgid, [field, value, ...]], NULL when deleted. */
static const char *entry_id(const redisReply *e, const char **msgid) {
  *msgid = NULL;
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
      e->element[0]->type != REDIS_REPLY_STRING)
    return NULL;
  *msgid = e->element[0]->str;
  const redisReply *f = e->element[1];
  if (f->type != REDIS_REPLY_ARRAY)
    return NULL;
  for (size_t i = 0; i + 1 < f->elements; i += 2)
    if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, "id") == 0 &&
        f->element[i + 1]->type == REDIS_REPLY_STRING)
      return f->element[i + 1]->str;
  return NULL;
}

/* The kind of a stream key jobq:<kind>. */
static const char *kind_of(const wv_jobq_t *q, const char *stream) {
  size_t n = strlen(q->prefix) + 5;
  return strlen(stream) > n ? stream + n : stream;
}

/* Handles an XREADGROUP reply: [[stream, [entries]], ...]. */
static void handle_read(wv_jobq_t *q, redisContext **c, redisReply *r, wv_job_adopt_t how) {
  if (!r || r->type != REDIS_REPLY_ARRAY)
    return;
  for (size_t s = 0; s < r->elements; s++) {
    redisReply *st = r->element[s];
    if (st->type != REDIS_REPLY_ARRAY || st->elements < 2 ||
        st->element[0]->type != REDIS_REPLY_STRING || st->element[1]->type != REDIS_REPLY_ARRAY)
      continue;
    const char *kind = kind_of(q, st->element[0]->str);
    for (size_t i = 0; i < st->element[1]->elements && !atomic_load(&q->stop); i++) {
      const char *msgid, *id = entry_id(st->element[1]->element[i], &msgid);
      if (msgid) /* own pending ones after a restart: delivered before, maybe often */
        handle(q, c, kind, msgid, id, how,
               how == WV_JOB_ADOPT_NEW ? 0 : deliveries(q, c, st->element[0]->str, msgid));
    }
  }
}

/* The engine's kinds, and how many more jobs of each it may take now (free[i]). */
static size_t kinds(wv_jobq_t *q, char names[MAX_KINDS][64], int *free) {
  size_t n = 0;
  for (size_t i = 0; i < MAX_KINDS; i++) {
    int running;
    size_t waiting;
    if (wv_job_engine_kind(q->engine, i, names[n], &running, &waiting) != 0)
      break;
    int64_t room = (int64_t)wv_job_engine_kind_max(q->engine, i) - running - (int64_t)waiting;
    free[n++] = room > 0 ? (int)room : 0;
  }
  return n;
}

static void ensure_groups(wv_jobq_t *q, redisContext **c) {
  char names[MAX_KINDS][64], sk[KEY_MAX];
  int running[MAX_KINDS];
  size_t n = kinds(q, names, running);
  for (size_t i = 0; i < n; i++) {
    key(q, sk, "jobq", names[i]);
    ARGS("XGROUP", "CREATE", sk, GROUP, "0", "MKSTREAM");
    redisReply *r = ccmd(q, c, argc_, argv_, len_);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
      wv_error("jobs: redis: cannot create the consumer group of %s: %s", sk, r->str);
    if (r)
      freeReplyObject(r);
  }
}

/* This instance's own pending messages, from before a restart. */
static void recover_own(wv_jobq_t *q, redisContext **c) {
  char names[MAX_KINDS][64], sk[KEY_MAX];
  int running[MAX_KINDS];
  size_t n = kinds(q, names, running);
  for (size_t i = 0; i < n && *c; i++) {
    key(q, sk, "jobq", names[i]);
    ARGS("XREADGROUP", "GROUP", GROUP, q->me, "COUNT", "1000", "STREAMS", sk, "0");
    redisReply *r = ccmd(q, c, argc_, argv_, len_);
    handle_read(q, c, r, WV_JOB_ADOPT_RECOVER);
    if (r)
      freeReplyObject(r);
  }
}

/* Copies the tail of a running job's live log to joblive:<id>. */
static void push_live(wv_jobq_t *q, redisContext **c, const char *id) {
  char path[PATH_MAX + WV_JOB_ID_MAX + 8], k[KEY_MAX], px[32];
  snprintf(path, sizeof path, "%s/%s.log", q->log_dir, id);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0)
    return;
  char *buf = NULL;
  ssize_t got = -1;
  if (fstat(fd, &st) == 0) {
    size_t size = (size_t)st.st_size, n = size > LIVE_TAIL ? LIVE_TAIL : size;
    buf = malloc(n + 1);
    got = buf ? pread(fd, buf, n, (off_t)(size - n)) : -1;
  }
  close(fd);
  if (got >= 0) {
    key(q, k, "joblive", id);
    snprintf(px, sizeof px, "%" PRId64, 3 * q->lease_ms);
    const char *argv[] = {"SET", k, buf, "PX", px};
    size_t lens[] = {3, strlen(k), (size_t)got, 2, strlen(px)};
    simple(q, c, 5, argv, lens);
  }
  free(buf);
}

/* Keeps jobinstance:<me> ours: two processes with one instance id would share leases. */
static void renew_instance(wv_jobq_t *q, redisContext **c) {
  char k[KEY_MAX], px[32];
  key(q, k, "jobinstance", q->me);
  snprintf(px, sizeof px, "%" PRId64, q->lease_ms);
  ARGS("EVAL", LUA_TAKE, "1", k, q->nonce, px);
  redisReply *r = ccmd(q, c, argc_, argv_, len_);
  if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0)
    wv_error("jobs: another waved uses state.redis.instance-id '%s': give each instance its own",
             q->me);
  if (r)
    freeReplyObject(r);
}

static void renew(wv_jobq_t *q, redisContext **c) {
  size_t n = 0, cap = 0;
  pthread_mutex_lock(&q->mu);
  for (mine_t *m = q->mine; m; m = m->next)
    cap++;
  mine_t *snap = cap ? malloc(cap * sizeof *snap) : NULL;
  for (mine_t *m = q->mine; snap && m && n < cap; m = m->next)
    snap[n++] = *m;
  pthread_mutex_unlock(&q->mu);
  if (cap && !snap)
    return; /* out of memory: the next round tries again, well within the lease */
  int64_t now = wv_mono_ms();
  for (size_t i = 0; i < n; i++) {
    char lk[KEY_MAX], sk[KEY_MAX], px[32];
    key(q, lk, "joblease", snap[i].id);
    key(q, sk, "jobq", snap[i].kind);
    snprintf(px, sizeof px, "%" PRId64, q->lease_ms);
    ARGS("EVAL", LUA_RENEW, "1", lk, q->me, px);
    redisReply *r = ccmd(q, c, argc_, argv_, len_);
    int v = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    if (r)
      freeReplyObject(r);
    bool lost = v == 0 || (v < 0 && now - snap[i].renewed_ms > q->lease_ms);
    pthread_mutex_lock(&q->mu);
    for (mine_t *m = q->mine; m; m = m->next)
      if (strcmp(m->id, snap[i].id) == 0) {
        if (v == 1)
          m->renewed_ms = now;
        m->lost = m->lost || lost;
      }
    pthread_mutex_unlock(&q->mu);
    if (lost) {
      wv_error("jobs: %s: lost its lease (state.redis.job-lease); stopping it here", snap[i].id);
      wv_job_cancel(q->engine, snap[i].id,
                    "the job's lease was lost: Redis did not answer for longer than "
                    "state.redis.job-lease");
      continue;
    }
    if (v != 1)
      continue;
    if (snap[i].msgid[0]) { /* its message stays "fresh": reclaim leaves it alone */
      const char *xc[] = {"XCLAIM", sk, GROUP, q->me, "0", snap[i].msgid, "JUSTID"};
      size_t xl[7];
      for (size_t k = 0; k < 7; k++)
        xl[k] = strlen(xc[k]);
      simple(q, c, 7, xc, xl);
    }
    push_live(q, c, snap[i].id);
  }
  free(snap);
}

/* A message XAUTOCLAIM (JUSTID) moved to this consumer: its entry names the job (XRANGE), and
 * handle() counts the delivery once the lease is ours. An entry trimmed away is finished. */
static void reclaim_one(wv_jobq_t *q, redisContext **c, const char *kind, const char *sk,
                        const char *msgid) {
  ARGS("XRANGE", sk, msgid, msgid);
  redisReply *r = ccmd(q, c, argc_, argv_, len_);
  if (r && r->type == REDIS_REPLY_ARRAY) {
    const char *mid = NULL, *id = r->elements == 1 ? entry_id(r->element[0], &mid) : NULL;
    if (r->elements == 0)
      finish_msg(q, c, kind, msgid, "", false); /* deleted: nothing to run */
    else if (mid && strcmp(mid, msgid) == 0)
      handle(q, c, kind, msgid, id, WV_JOB_ADOPT_RECLAIM, -1);
  }
  if (r)
    freeReplyObject(r);
}

static void reclaim(wv_jobq_t *q, redisContext **c) {
  char names[MAX_KINDS][64], sk[KEY_MAX], idle[32];
  int running[MAX_KINDS];
  size_t n = kinds(q, names, running);
  snprintf(idle, sizeof idle, "%" PRId64, q->lease_ms);
  for (size_t i = 0; i < n && *c; i++) {
    key(q, sk, "jobq", names[i]);
    if (!q->cursor[i][0])
      snprintf(q->cursor[i], sizeof q->cursor[i], "0-0");
    ARGS("XAUTOCLAIM", sk, GROUP, q->me, idle, q->cursor[i], "COUNT", "16", "JUSTID");
    redisReply *r = ccmd(q, c, argc_, argv_, len_);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY) {
      snprintf(q->cursor[i], sizeof q->cursor[i], "%s", r->element[0]->str);
      for (size_t k = 0; k < r->element[1]->elements && *c; k++)
        if (r->element[1]->element[k]->type == REDIS_REPLY_STRING)
          reclaim_one(q, c, names[i], sk, r->element[1]->element[k]->str);
      if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY) /* deleted entries */
        for (size_t k = 0; k < r->element[2]->elements; k++)
          if (r->element[2]->element[k]->type == REDIS_REPLY_STRING)
            finish_msg(q, c, names[i], r->element[2]->element[k]->str, "", false);
    }
    if (r)
      freeReplyObject(r);
  }
}

/* Waiters here of jobs that run elsewhere: a missed message never leaves them parked long. */
static void poll_remote(wv_jobq_t *q) {
  char(*ids)[WV_JOB_ID_MAX + 1] = malloc(POLL_IDS * sizeof *ids);
  if (!ids)
    return;
  size_t n = wv_job_remote_waited(q->engine, ids, POLL_IDS);
  for (size_t i = 0; i < n && !atomic_load(&q->stop); i++)
    wv_job_remote_ended(q->engine, ids[i]);
  free(ids);
}

/* Reads new messages for the kinds with room here; blocks up to BLOCK_MS. */
static void read_new(wv_jobq_t *q, redisContext **c) {
  char names[MAX_KINDS][64];
  char sks[MAX_KINDS][KEY_MAX];
  int running[MAX_KINDS];
  size_t n = kinds(q, names, running), m = 0;
  const char *argv[7 + 2 * MAX_KINDS];
  size_t lens[7 + 2 * MAX_KINDS];
  const char *head[] = {"XREADGROUP", "GROUP", GROUP, q->me, "COUNT", "1", "BLOCK"};
  char block[16];
  snprintf(block, sizeof block, "%d", BLOCK_MS);
  int argc = 0;
  for (size_t i = 0; i < 7; i++)
    argv[argc++] = head[i];
  argv[argc++] = block;
  argv[argc++] = "STREAMS";
  for (size_t i = 0; i < n; i++)
    if (running[i] > 0)
      key(q, sks[m++], "jobq", names[i]);
  if (!m) {
    sleep_ms(200);
    return;
  }
  for (size_t i = 0; i < m; i++)
    argv[argc++] = sks[i];
  for (size_t i = 0; i < m; i++)
    argv[argc++] = ">";
  for (int i = 0; i < argc; i++)
    lens[i] = strlen(argv[i]);
  redisReply *r = ccmd(q, c, argc, argv, lens);
  if (!r) {
    sleep_ms(500);
    return;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    if (strncmp(r->str, "NOGROUP", 7) == 0)
      ensure_groups(q, c); /* Redis lost its data (no persistence) or a flush */
    else
      wv_warn("jobs: redis: %s", r->str);
    sleep_ms(500);
  } else {
    handle_read(q, c, r, WV_JOB_ADOPT_NEW);
  }
  freeReplyObject(r);
}

static void *reader_main(void *arg) {
  wv_jobq_t *q = arg;
  redisContext *c = NULL;
  bool recovered = false, down = false;
  int64_t renew_every = q->lease_ms / 3, reclaim_every = q->lease_ms / 2;
  if (reclaim_every > 5000)
    reclaim_every = 5000;
  int64_t next_renew = 0, next_reclaim = 0, next_poll = 0;
  while (!atomic_load(&q->stop)) {
    if (!c) {
      c = rconnect(q, q->timeout_ms + BLOCK_MS);
      if (!c) {
        if (!down)
          wv_error("jobs: redis %s:%d does not answer; the job queue waits for it", q->url.host,
                   q->url.port);
        down = true;
        renew(q, &c); /* counts the time without renewal: past a lease, local runs stop */
        sleep_ms(500);
        continue;
      }
      if (down)
        wv_info("jobs: redis %s:%d answers again; the job queue goes on", q->url.host, q->url.port);
      down = false;
      ensure_groups(q, &c);
    }
    if (!recovered && c) {
      recover_own(q, &c);
      recovered = c != NULL;
    }
    int64_t now = wv_mono_ms();
    if (c && now >= next_renew) {
      renew_instance(q, &c);
      renew(q, &c);
      next_renew = now + renew_every;
    }
    if (c && now >= next_reclaim) {
      reclaim(q, &c);
      next_reclaim = now + reclaim_every;
    }
    if (now >= next_poll) {
      poll_remote(q);
      next_poll = now + q->poll_ms;
    }
    if (c)
      read_new(q, &c);
  }
  if (c)
    redisFree(c);
  return NULL;
}

/* ---- the subscriber thread ---------------------------------------------------------------- */

static void *subscriber_main(void *arg) {
  wv_jobq_t *q = arg;
  char ch[KEY_MAX];
  snprintf(ch, sizeof ch, "%sjobs:done", q->prefix);
  while (!atomic_load(&q->stop)) {
    redisContext *c = rconnect(q, q->timeout_ms);
    redisReply *r = c ? redisCommand(c, "SUBSCRIBE %s", ch) : NULL;
    bool ok = r && r->type == REDIS_REPLY_ARRAY;
    if (r)
      freeReplyObject(r);
    if (!ok) {
      if (c)
        redisFree(c);
      sleep_ms(500);
      continue;
    }
    /* Messages missed while unsubscribed: the reader's slow poll finds their jobs ended. */
    while (!atomic_load(&q->stop)) {
      struct pollfd pfd = {c->fd, POLLIN, 0};
      int pr = poll(&pfd, 1, 500);
      if (pr == 0)
        continue;
      if (pr < 0 && errno == EINTR)
        continue;
      if (pr < 0 || redisBufferRead(c) != REDIS_OK)
        break;
      void *x = NULL;
      bool bad = false;
      while (redisGetReplyFromReader(c, &x) == REDIS_OK && x) {
        redisReply *m = x;
        if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
            m->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(m->element[0]->str, "message") == 0 && m->element[2]->type == REDIS_REPLY_STRING)
          wv_job_remote_ended(q->engine, m->element[2]->str);
        freeReplyObject(m);
        x = NULL;
      }
      if (c->err)
        bad = true;
      if (bad)
        break;
    }
    redisFree(c);
  }
  return NULL;
}

/* ---- life cycle --------------------------------------------------------------------------- */

int wv_jobq_open(const wv_jobq_opts_t *o, wv_jobq_t **out, wv_job_persist_t *persist,
                 wv_job_queue_t *queue) {
  char why[256];
  if (!o->instance_id || !*o->instance_id || strlen(o->instance_id) > WV_JOB_ID_MAX ||
      strlen(o->prefix) > 64 || !o->log_dir || strlen(o->log_dir) >= PATH_MAX ||
      o->lease_ms < 1000 || (o->tls_ca && strlen(o->tls_ca) >= PATH_MAX))
    return WV_EINVAL;
  wv_jobq_t *q = calloc(1, sizeof *q);
  if (!q)
    return WV_ENOMEM;
  if (wv_redisurl_parse(o->url, &q->url, why, sizeof why) != 0) {
    wv_error("jobs: state.redis.url: %s", why);
    free(q);
    return WV_EINVAL;
  }
  snprintf(q->prefix, sizeof q->prefix, "%s", o->prefix);
  snprintf(q->tls_ca, sizeof q->tls_ca, "%s", o->tls_ca ? o->tls_ca : "");
  snprintf(q->me, sizeof q->me, "%s", o->instance_id);
  snprintf(q->log_dir, sizeof q->log_dir, "%s", o->log_dir);
  q->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
  q->lease_ms = o->lease_ms;
  q->poll_ms = o->poll_ms > 0 ? o->poll_ms : 3000;
  q->final_ttl_ms = o->final_ttl_ms;
  q->log_max = o->log_max ? o->log_max : (1u << 20);
  q->store = o->store;
  q->max_deliveries = o->max_deliveries > 0 ? o->max_deliveries : 3;
  atomic_init(&q->stop, false);
  atomic_init(&q->next_slot, 0);
  pthread_mutex_init(&q->mu, NULL);
  for (size_t i = 0; i < POOL; i++)
    pthread_mutex_init(&q->pool[i].mu, NULL);
  redisContext *c = wv_rand_hex12(q->nonce) == 0 ? rconnect(q, q->timeout_ms) : NULL;
  if (!c) {
    wv_error("jobs: cannot reach redis %s:%d for the job queue", q->url.host, q->url.port);
    wv_jobq_free(q);
    return WV_EUNAVAIL;
  }
  redisFree(c);
  *persist = (wv_job_persist_t){q, p_save, p_load_all, p_get, p_put_log, p_get_log, p_create};
  *queue = (wv_job_queue_t){q, q_enqueue, q_ended};
  wv_info("jobs: shared queue in redis as '%s' (lease %" PRId64 " ms)", q->me, q->lease_ms);
  *out = q;
  return 0;
}

/*
 * Claims the instance id for this process (jobinstance:<me>, renewed with the leases). A claim
 * left by a crashed process of the same id lapses within a lease: wait for it, then refuse.
 */
static int claim_instance(wv_jobq_t *q) {
  char k[KEY_MAX], px[32];
  key(q, k, "jobinstance", q->me);
  snprintf(px, sizeof px, "%" PRId64, q->lease_ms);
  bool said = false;
  int64_t until = wv_mono_ms() + q->lease_ms + 1000;
  for (;;) {
    ARGS("SET", k, q->nonce, "NX", "PX", px);
    redisReply *r = qcmd(q, argc_, argv_, len_);
    int rc = reply_rc(r);
    bool taken = !rc && r->type == REDIS_REPLY_STATUS;
    if (r)
      freeReplyObject(r);
    if (rc || taken)
      return rc;
    if (wv_mono_ms() > until) {
      wv_error("jobs: state.redis.instance-id '%s' is in use by another running waved: give each "
               "instance its own",
               q->me);
      return WV_EEXISTS;
    }
    if (!said)
      wv_warn("jobs: state.redis.instance-id '%s' was held by a process that stopped; waiting "
              "up to state.redis.job-lease for its claim to lapse",
              q->me);
    said = true;
    sleep_ms(250);
  }
}

int wv_jobq_start(wv_jobq_t *q, wv_job_engine_t *e) {
  int rc = claim_instance(q);
  if (rc)
    return rc;
  q->engine = e;
  if (pthread_create(&q->reader, NULL, reader_main, q) != 0)
    return WV_EINTERNAL;
  if (pthread_create(&q->subscriber, NULL, subscriber_main, q) != 0) {
    atomic_store(&q->stop, true);
    pthread_join(q->reader, NULL);
    return WV_EINTERNAL;
  }
  q->started = true;
  return 0;
}

void wv_jobq_stop(wv_jobq_t *q) {
  if (!q || !q->started)
    return;
  atomic_store(&q->stop, true);
  pthread_join(q->reader, NULL);
  pthread_join(q->subscriber, NULL);
  q->started = false;
  char k[KEY_MAX]; /* a restart of this instance need not wait for the claim to lapse */
  key(q, k, "jobinstance", q->me);
  const char *rel[] = {"EVAL", LUA_RELEASE, "1", k, q->nonce};
  size_t rl[] = {4, sizeof LUA_RELEASE - 1, 1, strlen(k), strlen(q->nonce)};
  simple(q, NULL, 5, rel, rl);
}

void wv_jobq_free(wv_jobq_t *q) {
  if (!q)
    return;
  wv_jobq_stop(q);
  for (size_t i = 0; i < POOL; i++) {
    if (q->pool[i].c)
      redisFree(q->pool[i].c);
    pthread_mutex_destroy(&q->pool[i].mu);
  }
  while (q->mine) {
    mine_t *m = q->mine;
    q->mine = m->next;
    free(m);
  }
  pthread_mutex_destroy(&q->mu);
  free(q);
}
