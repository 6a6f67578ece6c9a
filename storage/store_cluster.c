/*
 * storage/store_cluster.c — what several instances sharing a Redis need
 * beyond records (docs/scale-out.md): cluster-wide locks, cluster-wide rate
 * limit buckets, and the local cache of immutable entries that keeps the
 * hot path on the IO loops, with its invalidations by pub/sub.
 *
 * DESIGN
 *
 * Locks. SET <prefix>lock:<name> <holder> NX PX <ttl>: one holder at a time,
 * and a holder that dies frees the lock when its TTL runs out. Release
 * deletes the key only if it still names the holder (a Lua compare-and-delete),
 * so a holder whose TTL ran out never frees its successor's lock.
 *
 * Rate buckets. The GCRA of core/ratelimit.c, run by Redis in one Lua script
 * on <prefix>ratelimit:<key>: the key holds the bucket's theoretical arrival
 * time in microseconds of Redis's clock (TIME), so the instances' clocks do
 * not matter, and expires when the bucket would be full again.
 *
 * Local cache. Entries of WV_DB_MANIFESTS (digest-addressed manifests and
 * blobs, token-path manifests and hot token records: none changes during its
 * lifetime) and of WV_DB_TOKENS (a token's record is never rewritten, only
 * deleted or expired) are copied into a bounded LRU when a worker reads them
 * from Redis, so the next snapshot read on an IO loop answers from memory
 * instead of WV_EBUSY. Job records (WV_DB_JOBS) stop changing once the job
 * ended: a reader that passes a final() predicate (wv_store_get_final: the
 * job queue's reads) caches the records it says ended, and only those; a
 * record not final is read from Redis every time. An entry lives until its
 * record's expiry; a token entry at most token_ttl_ms more. A deletion is published on
 * <prefix>invalidate ("<db id>:<key>") after Redis applied it, and every
 * instance's subscriber thread drops the entry; the cache's generation is
 * bumped by every invalidation, and a read that began before one does not
 * fill the cache (it may have read the deleted record). Tokens are cached only
 * while the subscription is up; when it drops (Redis restart, network) every
 * token entry is dropped at once, so a deletion missed meanwhile cannot be
 * served from memory. What this instance deletes in a cached database is
 * dropped from its own cache at once, and what it writes replaces its entry
 * (written through).
 *
 * Thread rules: the lookups run on any thread (the IO loops among them) and
 * take one mutex for a hash lookup and a copy-free callback; fills and
 * invalidations take the same mutex. The subscriber is one thread of its own
 * with its own connection, polled so that close stops it within POLL_MS.
 */
#include "storage/store_int.h"

#include "core/log.h"
#include "core/rand.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NAME_MAX_ 600
#define NBUCKETS (1u << 14)
#define POLL_MS 500
#define RETRY_MS 1000
#define NO_EXPIRY_LIFE_MS (3600 * 1000LL) /* local life of a record that never expires */

/* ---- locks --------------------------------------------------------------------------- */

static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

int wv_store_lock(wv_store_t *s, const char *name, int64_t ttl_ms,
                  char holder[WV_STORE_LOCK_HOLDER]) {
  unsigned char rnd[16];
  if (!name || !*name || ttl_ms <= 0 || wv_rand_bytes(rnd, sizeof rnd))
    return WV_EINVAL;
  for (int i = 0; i < 16; i++)
    snprintf(holder + 2 * i, 3, "%02x", rnd[i]);
  if (!s->redis)
    return 0; /* one instance: nobody to exclude */
  char key[NAME_MAX_], suffix[NAME_MAX_], px[24];
  snprintf(suffix, sizeof suffix, "lock:%s", name);
  size_t klen = wv_rstore_name(s->redis, suffix, key, sizeof key);
  if (!klen)
    return WV_ETOOBIG;
  snprintf(px, sizeof px, "%" PRId64, ttl_ms);
  const char *argv[] = {"SET", key, holder, "NX", "PX", px};
  size_t len[] = {3, klen, 32, 2, 2, strlen(px)};
  redisReply *x = NULL;
  int rc = wv_rstore_command(s->redis, 6, argv, len, false, &x);
  if (rc)
    return rc;
  rc = x->type == REDIS_REPLY_STATUS ? 0 : WV_EBUSY; /* nil: held by another */
  freeReplyObject(x);
  return rc;
}

void wv_store_unlock(wv_store_t *s, const char *name, const char *holder) {
  char key[NAME_MAX_], suffix[NAME_MAX_];
  snprintf(suffix, sizeof suffix, "lock:%s", name);
  size_t klen = s->redis ? wv_rstore_name(s->redis, suffix, key, sizeof key) : 0;
  if (!klen)
    return;
  const char *argv[] = {"EVAL", release_lua, "1", key, holder};
  size_t len[] = {4, sizeof release_lua - 1, 1, klen, strlen(holder)};
  redisReply *x = NULL;
  if (wv_rstore_command(s->redis, 5, argv, len, true, &x) == 0)
    freeReplyObject(x); /* else the TTL frees it */
}

/* ---- rate buckets -------------------------------------------------------------------- */

/* ARGV: interval us, burst us, take (1/0). Returns {refused 1/0, tat - now in us}. */
static const char gcra_lua[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
    "local iv, burst = tonumber(ARGV[1]), tonumber(ARGV[2]) "
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0 "
    "if tat < now then tat = now end "
    "if tat + iv - now - burst > 0 then return {1, string.format('%.0f', tat - now)} end "
    "if ARGV[3] == '1' then "
    "  tat = tat + iv "
    "  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', "
    "             math.floor((tat - now) / 1000) + 1) "
    "end "
    "return {0, string.format('%.0f', tat - now)}";

int wv_store_rate(wv_store_t *s, const char *key, int64_t interval_us, int64_t burst_us, bool take,
                  int64_t *ahead_us) {
  if (!s->redis)
    return WV_EUNSUPPORTED;
  if (!wv_rstore_up(s->redis))
    return WV_EUNAVAIL; /* known down: no caller waits for the timeout */
  char k[NAME_MAX_], suffix[NAME_MAX_], iv[24], bu[24];
  snprintf(suffix, sizeof suffix, "ratelimit:%s", key);
  size_t klen = wv_rstore_name(s->redis, suffix, k, sizeof k);
  if (!klen)
    return WV_ETOOBIG;
  snprintf(iv, sizeof iv, "%" PRId64, interval_us);
  snprintf(bu, sizeof bu, "%" PRId64, burst_us);
  const char *argv[] = {"EVAL", gcra_lua, "1", k, iv, bu, take ? "1" : "0"};
  size_t len[] = {4, sizeof gcra_lua - 1, 1, klen, strlen(iv), strlen(bu), 1};
  redisReply *x = NULL;
  int rc = wv_rstore_command(s->redis, 7, argv, len, !take, &x);
  if (rc)
    return rc;
  if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
      x->element[0]->type != REDIS_REPLY_INTEGER || x->element[1]->type != REDIS_REPLY_STRING) {
    freeReplyObject(x);
    return WV_ESTORE;
  }
  rc = x->element[0]->integer ? WV_EBUSY : 0;
  if (ahead_us)
    *ahead_us = strtoll(x->element[1]->str, NULL, 10);
  freeReplyObject(x);
  return rc;
}

/* ---- the local cache ------------------------------------------------------------------- */

typedef struct lnode {
  struct lnode *hnext, *prev, *next;
  uint64_t h;
  int64_t until_ms; /* served until then */
  int64_t exp_ms;   /* the record's expiry, as the callbacks expect */
  wv_db_t db;
  size_t klen, vlen;
  char data[]; /* key, NUL, value, NUL */
} lnode_t;

struct wv_lcache {
  pthread_mutex_t mu;
  lnode_t *tab[NBUCKETS];
  lnode_t *lru; /* sentinel (its own allocation: lnode_t ends in a flexible array); next = most
                 recently used */
  uint64_t bytes, max_bytes, entry_max;
  int64_t token_ttl_ms;
  uint64_t gen; /* bumped by every invalidation */
  bool live;    /* the invalidation subscription is up */
  uint64_t hits, misses;
  wv_rstore_t *r; /* for the subscriber */
  char channel[NAME_MAX_];
  atomic_bool stop;
  pthread_t thread;
  bool started;
};

/* Looked up in, and invalidated in, the cache. Filled with every record read or written:
 * always_final; with a job record only when the reader's final() says it ended. */
static bool cacheable(wv_db_t db) {
  return db == WV_DB_MANIFESTS || db == WV_DB_TOKENS || db == WV_DB_JOBS;
}
static bool always_final(wv_db_t db) { return db == WV_DB_MANIFESTS || db == WV_DB_TOKENS; }

static uint64_t hash(wv_db_t db, const char *key, size_t klen) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)db;
  for (size_t i = 0; i < klen; i++)
    h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
  return h;
}

static size_t node_size(const lnode_t *n) { return sizeof *n + n->klen + n->vlen + 2; }

/* Mutex held. */
static lnode_t *find(struct wv_lcache *lc, wv_db_t db, const char *key, size_t klen, uint64_t h) {
  for (lnode_t *n = lc->tab[h & (NBUCKETS - 1)]; n; n = n->hnext)
    if (n->h == h && n->db == db && n->klen == klen && memcmp(n->data, key, klen) == 0)
      return n;
  return NULL;
}

/* Mutex held: unlinks and frees n. */
static void drop(struct wv_lcache *lc, lnode_t *n) {
  lnode_t **pp = &lc->tab[n->h & (NBUCKETS - 1)];
  while (*pp != n)
    pp = &(*pp)->hnext;
  *pp = n->hnext;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  lc->bytes -= node_size(n);
  free(n);
}

static void to_front(struct wv_lcache *lc, lnode_t *n) {
  n->next = lc->lru->next;
  n->prev = lc->lru;
  lc->lru->next->prev = n;
  lc->lru->next = n;
}

/* Mutex held: drops every entry of db (every entry when db is WV_DB_COUNT). */
static void drop_all(struct wv_lcache *lc, wv_db_t db) {
  for (lnode_t *n = lc->lru->next, *next; n != lc->lru; n = next) {
    next = n->next;
    if (db == WV_DB_COUNT || n->db == db)
      drop(lc, n);
  }
  lc->gen++;
}

int wv__lc_snap_view(wv_store_t *s, wv_db_t db, const char *key, wv_store_view_cb cb, void *arg) {
  struct wv_lcache *lc = s->lcache;
  if (!lc || !cacheable(db))
    return WV_EBUSY;
  size_t klen = strlen(key);
  uint64_t h = hash(db, key, klen);
  int64_t now = wv_store_now_ms();
  pthread_mutex_lock(&lc->mu);
  lnode_t *n = find(lc, db, key, klen, h);
  if (n && n->until_ms <= now) {
    drop(lc, n);
    n = NULL;
  }
  int rc = WV_EBUSY;
  if (n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    to_front(lc, n);
    lc->hits++;
    rc = cb(arg, n->data + n->klen + 1, n->vlen, n->exp_ms);
  } else {
    lc->misses++;
  }
  pthread_mutex_unlock(&lc->mu);
  return rc;
}

/* Mutex held: makes room for need bytes, least recently used first. */
static void make_room(struct wv_lcache *lc, uint64_t need) {
  while (lc->bytes + need > lc->max_bytes && lc->lru->prev != lc->lru)
    drop(lc, lc->lru->prev);
}

static void fill(struct wv_lcache *lc, uint64_t gen, wv_db_t db, const char *key, const void *val,
                 size_t vlen, int64_t exp_ms) {
  size_t klen = strlen(key);
  int64_t now = wv_store_now_ms();
  int64_t until = exp_ms ? exp_ms : now + NO_EXPIRY_LIFE_MS;
  if (db == WV_DB_TOKENS && until > now + lc->token_ttl_ms)
    until = now + lc->token_ttl_ms;
  if (until <= now || sizeof(lnode_t) + klen + vlen + 2 > lc->entry_max)
    return;
  lnode_t *n = malloc(sizeof *n + klen + vlen + 2);
  if (!n)
    return;
  *n = (lnode_t){.h = hash(db, key, klen),
                 .until_ms = until,
                 .exp_ms = exp_ms,
                 .db = db,
                 .klen = klen,
                 .vlen = vlen};
  memcpy(n->data, key, klen + 1);
  if (vlen)
    memcpy(n->data + klen + 1, val, vlen);
  n->data[klen + 1 + vlen] = '\0';
  pthread_mutex_lock(&lc->mu);
  bool ok = lc->gen == gen && (db != WV_DB_TOKENS || lc->live);
  lnode_t *old = ok ? find(lc, db, key, klen, n->h) : NULL;
  if (old)
    drop(lc, old);
  if (ok) {
    make_room(lc, node_size(n));
    n->hnext = lc->tab[n->h & (NBUCKETS - 1)];
    lc->tab[n->h & (NBUCKETS - 1)] = n;
    to_front(lc, n);
    lc->bytes += node_size(n);
    n = NULL;
  }
  pthread_mutex_unlock(&lc->mu);
  free(n);
}

struct fill_arg {
  struct wv_lcache *lc;
  uint64_t gen;
  wv_db_t db;
  const char *key;
  wv_store_final_fn final;
  wv_store_view_cb cb;
  void *arg;
};

static int fill_cb(void *arg, const void *val, size_t len, int64_t expires_ms) {
  struct fill_arg *f = arg;
  if (always_final(f->db) || (f->final && f->final(val, len)))
    fill(f->lc, f->gen, f->db, f->key, val, len, expires_ms);
  return f->cb(f->arg, val, len, expires_ms);
}

int wv__lc_view(wv_store_t *s, wv_db_t db, const char *key, wv_store_final_fn final,
                wv_store_view_cb cb, void *arg) {
  struct wv_lcache *lc = s->lcache;
  if (!lc || !cacheable(db))
    return wv_rstore_view(s->redis, db, key, cb, arg);
  int rc = wv__lc_snap_view(s, db, key, cb, arg);
  if (rc != WV_EBUSY)
    return rc;
  struct fill_arg f = {lc, 0, db, key, final, cb, arg};
  pthread_mutex_lock(&lc->mu);
  f.gen = lc->gen;
  pthread_mutex_unlock(&lc->mu);
  return wv_rstore_view(s->redis, db, key, fill_cb, &f);
}

static void invalidate(struct wv_lcache *lc, wv_db_t db, const char *key, size_t klen) {
  uint64_t h = hash(db, key, klen);
  pthread_mutex_lock(&lc->mu);
  lnode_t *n = find(lc, db, key, klen, h);
  if (n)
    drop(lc, n);
  lc->gen++;
  pthread_mutex_unlock(&lc->mu);
}

void wv__lc_wrote(wv_store_t *s, const wv_store_op_t *ops, size_t n, int how) {
  bool applied = how == WV_LC_APPLIED;
  struct wv_lcache *lc = s->lcache;
  if (!lc)
    return;
  for (size_t i = 0; i < n; i++) {
    if (!cacheable(ops[i].db))
      continue;
    invalidate(lc, ops[i].db, ops[i].key, strlen(ops[i].key));
    /* Written through: what this instance PUTs is what Redis holds (an async PUT that
     * fails leaves an entry whose content is still right, only not shared). A job record is
     * cached only when a reader saw it final. */
    if (how != WV_LC_FAILED && always_final(ops[i].db) &&
        (ops[i].kind == WV_STORE_PUT || (ops[i].kind == WV_STORE_PUT_NX && applied))) {
      pthread_mutex_lock(&lc->mu);
      uint64_t gen = lc->gen;
      pthread_mutex_unlock(&lc->mu);
      fill(lc, gen, ops[i].db, ops[i].key, ops[i].val, ops[i].val_len, ops[i].expires_ms);
    }
    /* A job record is rewritten only by the job queue, never once final; a rewrite through the
     * store (tests, tools) is told to the others like a deletion. */
    if (!applied || (ops[i].kind != WV_STORE_DEL && ops[i].db != WV_DB_JOBS))
      continue;
    /* Tell the others once Redis has it: "<db id>:<key>". */
    char msg[WV_STORE_KEY_MAX + 8];
    int m = snprintf(msg, sizeof msg, "%d:%s", (int)ops[i].db, ops[i].key);
    const char *argv[] = {"PUBLISH", lc->channel, msg};
    size_t len[] = {7, strlen(lc->channel), (size_t)m};
    redisReply *x = NULL;
    if (wv_rstore_command(s->redis, 3, argv, len, true, &x) == 0)
      freeReplyObject(x);
    else
      wv_warn("state: invalidation of %s not published; other instances keep it at most %" PRId64
              " ms (state.local-cache.token-ttl)",
              wv__sto_db_names[ops[i].db], lc->token_ttl_ms);
  }
}

/* ---- the subscriber ---------------------------------------------------------------- */

static void set_live(struct wv_lcache *lc, bool live) {
  pthread_mutex_lock(&lc->mu);
  drop_all(lc, WV_DB_TOKENS); /* whatever was missed while down or before */
  lc->live = live;
  pthread_mutex_unlock(&lc->mu);
}

static void on_message(struct wv_lcache *lc, const redisReply *x) {
  if (x->type != REDIS_REPLY_ARRAY || x->elements != 3 || x->element[2]->type != REDIS_REPLY_STRING)
    return;
  const char *p = x->element[2]->str, *colon = memchr(p, ':', x->element[2]->len);
  int db = atoi(p);
  if (!colon || db < 0 || db >= WV_DB_COUNT)
    return;
  invalidate(lc, (wv_db_t)db, colon + 1, x->element[2]->len - (size_t)(colon + 1 - p));
}

/* Reads messages until stop or a broken connection. */
static void listen_on(struct wv_lcache *lc, redisContext *c) {
  while (!atomic_load(&lc->stop)) {
    void *x = NULL;
    if (redisGetReplyFromReader(c, &x) != REDIS_OK)
      return;
    if (x) {
      on_message(lc, x);
      freeReplyObject(x);
      continue;
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int k = poll(&p, 1, POLL_MS);
    if (k < 0 && errno != EINTR)
      return;
    if (k > 0 && redisBufferRead(c) != REDIS_OK)
      return;
  }
}

static void pause_ms(struct wv_lcache *lc, int ms) {
  for (int i = 0; i < ms / 100 && !atomic_load(&lc->stop); i++)
    usleep(100000);
}

static void *subscriber_main(void *arg) {
  struct wv_lcache *lc = arg;
  bool was_up = true;
  while (!atomic_load(&lc->stop)) {
    redisContext *c = NULL;
    redisReply *x = NULL;
    if (wv_rstore_connect(lc->r, &c) == 0)
      x = redisCommand(c, "SUBSCRIBE %s", lc->channel);
    bool ok = x && x->type == REDIS_REPLY_ARRAY;
    if (x)
      freeReplyObject(x);
    if (ok) {
      set_live(lc, true);
      if (!was_up)
        wv_info("state: local cache invalidations subscribed again; tokens cached again");
      was_up = true;
      listen_on(lc, c);
    }
    set_live(lc, false);
    if (c)
      redisFree(c);
    if (!atomic_load(&lc->stop) && was_up)
      wv_warn("state: local cache invalidations unsubscribed (redis); tokens read from redis "
              "until they are back");
    was_up = false;
    pause_ms(lc, RETRY_MS);
  }
  return NULL;
}

int wv_store_local_cache(wv_store_t *s, uint64_t max_bytes, int64_t token_ttl_ms) {
  if (!s || !s->redis || s->lcache || !max_bytes)
    return s && s->redis && !s->lcache && !max_bytes ? 0 : WV_EINVAL;
  struct wv_lcache *lc = calloc(1, sizeof *lc);
  if (lc && !(lc->lru = calloc(1, sizeof *lc->lru))) {
    free(lc);
    lc = NULL;
  }
  if (!lc)
    return WV_ENOMEM;
  pthread_mutex_init(&lc->mu, NULL);
  lc->lru->next = lc->lru->prev = lc->lru;
  lc->max_bytes = max_bytes;
  lc->entry_max = max_bytes / 8 < WV_STORE_VALUE_MAX ? max_bytes / 8 : WV_STORE_VALUE_MAX;
  lc->token_ttl_ms = token_ttl_ms;
  lc->r = s->redis;
  atomic_init(&lc->stop, false);
  if (!wv_rstore_name(s->redis, "invalidate", lc->channel, sizeof lc->channel) ||
      pthread_create(&lc->thread, NULL, subscriber_main, lc) != 0) {
    pthread_mutex_destroy(&lc->mu);
    free(lc->lru);
    free(lc);
    return WV_ENOMEM;
  }
  lc->started = true;
  s->lcache = lc;
  return 0;
}

void wv_store_local_cache_stats(wv_store_t *s, uint64_t *hits, uint64_t *misses, uint64_t *bytes) {
  struct wv_lcache *lc = s ? s->lcache : NULL;
  uint64_t h = 0, m = 0, b = 0;
  if (lc) {
    pthread_mutex_lock(&lc->mu);
    h = lc->hits, m = lc->misses, b = lc->bytes;
    pthread_mutex_unlock(&lc->mu);
  }
  if (hits)
    *hits = h;
  if (misses)
    *misses = m;
  if (bytes)
    *bytes = b;
}

bool wv_store_local_cache_live(wv_store_t *s) {
  struct wv_lcache *lc = s ? s->lcache : NULL;
  if (!lc)
    return false;
  pthread_mutex_lock(&lc->mu);
  bool live = lc->live;
  pthread_mutex_unlock(&lc->mu);
  return live;
}

void wv__lc_close(wv_store_t *s) {
  struct wv_lcache *lc = s->lcache;
  if (!lc)
    return;
  atomic_store(&lc->stop, true);
  if (lc->started)
    pthread_join(lc->thread, NULL);
  pthread_mutex_lock(&lc->mu);
  drop_all(lc, WV_DB_COUNT);
  pthread_mutex_unlock(&lc->mu);
  pthread_mutex_destroy(&lc->mu);
  free(lc->lru);
  free(lc);
  s->lcache = NULL;
}

const char *wv_store_db_name(wv_db_t db) {
  return (unsigned)db < WV_DB_COUNT ? wv__sto_db_names[db] : "?";
}
