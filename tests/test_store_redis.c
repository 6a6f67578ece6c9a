/*
 * Unit tests for the Redis state backend (storage/store_redis.c) behind the
 * store interface, against a real redis-server this binary starts on a free
 * loopback port. Without redis-server the binary exits 77 (ctest: skipped)
 * and says why; packaging/deps.sh test installs it.
 */
#include "core/err.h"
#include "core/redisurl.h"
#include "storage/blobgc.h"
#include "storage/cas.h"
#include "storage/jobqueue_redis.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/redis_fixture.h"
#include "tests/storage_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define HOUR_MS (3600 * 1000LL)

static redis_fx_t fx;
static char url[128];

static redisContext *raw(void) { return redis_fx_raw(&fx); }

/* Whether a raw key exists in Redis (what the store wrote, seen from outside). */
static long long raw_int(const char *fmt, const char *key) {
  redisContext *c = raw();
  redisReply *x = c ? redisCommand(c, fmt, key) : NULL;
  long long v = x && x->type == REDIS_REPLY_INTEGER ? x->integer : -99;
  if (x)
    freeReplyObject(x);
  if (c)
    redisFree(c);
  return v;
}

/* ---- helpers ----------------------------------------------------------------- */

static char lmdb_dir[256];

static void close_store(wv_store_t *s) {
  wv_store_close(s);
  tmpdir_remove(lmdb_dir);
}

/* A store whose shared databases are in the fixture's Redis under prefix (8 connections). */
static wv_store_t *open_redis_t(const char *prefix, int64_t timeout_ms) {
  wv_store_t *s = NULL;
  if (!tmpdir_make(lmdb_dir, "rstore") || wv_store_open(&s, lmdb_dir, 0, 0) != 0)
    return NULL;
  if (wv_store_use_redis(s, url, prefix, timeout_ms, 8, NULL) != 0) {
    close_store(s);
    return NULL;
  }
  return s;
}

static wv_store_t *open_redis(const char *prefix) { return open_redis_t(prefix, 1000); }

static int get_str(wv_store_t *s, wv_db_t db, const char *key, char *out, size_t cap,
                   int64_t *exp) {
  char *v = NULL;
  size_t len = 0;
  int rc = wv_store_get(s, db, key, &v, &len, exp);
  if (rc == 0) {
    snprintf(out, cap, "%s", v);
    free(v);
  }
  return rc;
}

static int any_cb(void *arg, const void *val, size_t len, int64_t exp) {
  (void)arg, (void)val, (void)len, (void)exp;
  return 7;
}

/* ---- tests --------------------------------------------------------------------- */

TEST(url_parse) {
  wv_redisurl_t u;
  char why[200];
  CHECK_OK(wv_redisurl_parse("redis://localhost", &u, why, sizeof why));
  CHECK_EQ_STR(u.host, "localhost");
  CHECK_EQ_INT(u.port, 6379);
  CHECK_EQ_INT(u.db, 0);
  CHECK(!u.has_pass && !u.tls);
  CHECK_OK(wv_redisurl_parse("rediss://al%40ice:p%3Aw@[::1]:7000/3", &u, why, sizeof why));
  CHECK(u.tls && u.has_pass);
  CHECK_EQ_STR(u.user, "al@ice");
  CHECK_EQ_STR(u.pass, "p:w");
  CHECK_EQ_STR(u.host, "::1");
  CHECK_EQ_INT(u.port, 7000);
  CHECK_EQ_INT(u.db, 3);
  CHECK_OK(wv_redisurl_parse("redis://secret@10.0.0.1:6380", &u, why, sizeof why));
  CHECK_EQ_STR(u.pass, "secret");
  CHECK_EQ_STR(u.user, "");
  const char *bad[] = {"http://h",        "redis://",        "redis://h:0",  "redis://h:99999",
                       "redis://h/x",     "redis://h/1?a=b", "redis://[::1", "redis://u:%zz@h",
                       "redis://h:12a/1", "redis://:pw@"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    why[0] = '\0';
    CHECK_EQ_INT(wv_redisurl_parse(bad[i], &u, why, sizeof why), WV_EINVAL);
    CHECK(why[0]);
    CHECK_LACKS(why, "pw");
    CHECK_LACKS(why, "%zz");
  }
}

TEST(refuses_bad_settings) {
  wv_store_t *s = NULL;
  CHECK(tmpdir_make(lmdb_dir, "rstore"));
  CHECK_OK(wv_store_open(&s, lmdb_dir, 0, 0));
  TEST_CLEANUP(close_store, s);
  char u[160];
  snprintf(u, sizeof u, "rediss://127.0.0.1:%d", fx.port);
  CHECK(wv_store_use_redis(s, u, "t.", 1000, 4, NULL) != 0); /* TLS to a plain port: no handshake */
  CHECK_EQ_INT(wv_store_use_redis(s, url, "has space", 1000, 4, NULL), WV_EINVAL);
  snprintf(u, sizeof u, "redis://127.0.0.1:%d/99999", fx.port);
  CHECK_EQ_INT(wv_store_use_redis(s, u, "t.", 1000, 4, NULL), WV_EINVAL); /* no such database */
  snprintf(u, sizeof u, "redis://:nope@127.0.0.1:%d", fx.port);
  CHECK(wv_store_use_redis(s, u, "t.", 1000, 4, NULL) != 0); /* no password set: AUTH fails */
  snprintf(u, sizeof u, "redis://127.0.0.1:%d", redis_fx_free_port());
  CHECK_EQ_INT(wv_store_use_redis(s, u, "t.", 300, 4, NULL), WV_EUNAVAIL);
  CHECK(!wv_store_db_shared(s, WV_DB_TOKENS)); /* still all local */
}

TEST(put_get_del_expiry) {
  wv_store_t *s = open_redis("t1.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  CHECK(wv_store_db_shared(s, WV_DB_TOKENS) && wv_store_db_shared(s, WV_DB_MANIFESTS));
  CHECK(wv_store_db_shared(s, WV_DB_EMBEDDED)); /* the embedded registry's index */
  CHECK(!wv_store_db_shared(s, WV_DB_VULNS) && !wv_store_db_shared(s, WV_DB_META));
  char buf[64];
  int64_t exp = -1, later = wv_store_now_ms() + HOUR_MS;
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "tok", buf, sizeof buf, NULL), WV_ENOTFOUND);
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "tok", "{\"a\":1}", 7, later));
  CHECK_OK(get_str(s, WV_DB_TOKENS, "tok", buf, sizeof buf, &exp));
  CHECK_EQ_STR(buf, "{\"a\":1}");
  CHECK_EQ_INT(exp, later);
  /* The key as docs/scale-out.md says: <prefix><db>:<key>, value as is, expiry as TTL. */
  CHECK_EQ_INT(raw_int("PEXPIRETIME %s", "t1.tokens:tok"), later);
  CHECK_EQ_INT(raw_int("STRLEN %s", "t1.tokens:tok"), 7);
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "tok", "", 0, 0)); /* no expiry, empty value */
  CHECK_OK(get_str(s, WV_DB_TOKENS, "tok", buf, sizeof buf, &exp));
  CHECK_EQ_STR(buf, "");
  CHECK_EQ_INT(exp, 0);
  CHECK_OK(wv_store_del(s, WV_DB_TOKENS, "tok"));
  CHECK_OK(wv_store_del(s, WV_DB_TOKENS, "tok")); /* idempotent */
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "tok", buf, sizeof buf, NULL), WV_ENOTFOUND);
  /* An expiry in the past reads as absent at once, as in LMDB. */
  CHECK_OK(wv_store_put(s, WV_DB_REQUESTS, "old", "x", 1, wv_store_now_ms() - 10));
  CHECK_EQ_INT(get_str(s, WV_DB_REQUESTS, "old", buf, sizeof buf, NULL), WV_ENOTFOUND);
  CHECK_OK(wv_store_put(s, WV_DB_REQUESTS, "soon", "x", 1, wv_store_now_ms() + 150));
  CHECK_OK(get_str(s, WV_DB_REQUESTS, "soon", buf, sizeof buf, NULL));
  usleep(300000);
  CHECK_EQ_INT(get_str(s, WV_DB_REQUESTS, "soon", buf, sizeof buf, NULL), WV_ENOTFOUND);
  /* Caps and bad keys fail before anything is sent. */
  CHECK_EQ_INT(wv_store_put(s, WV_DB_TOKENS, "", "x", 1, 0), WV_EINVAL);
  char big[WV_STORE_KEY_MAX + 2];
  memset(big, 'k', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CHECK_EQ_INT(wv_store_put(s, WV_DB_TOKENS, big, "x", 1, 0), WV_ETOOBIG);
  CHECK_EQ_INT(wv_store_put(s, WV_DB_TOKENS, "k", "x", WV_STORE_VALUE_MAX + 1, 0), WV_ETOOBIG);
  /* The view callback's return is passed through. */
  CHECK_OK(wv_store_put(s, WV_DB_MANIFESTS, "m", "body", 4, 0));
  CHECK_EQ_INT(wv_store_view(s, WV_DB_MANIFESTS, "m", any_cb, NULL), 7);
}

TEST(local_databases_stay_in_lmdb) {
  wv_store_t *s = open_redis("t2.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  char buf[64];
  CHECK_OK(wv_store_put(s, WV_DB_META, "j1", "job", 3, 0));
  CHECK_OK(wv_store_put(s, WV_DB_VULNS, "e1", "emb", 3, 0));
  CHECK_OK(get_str(s, WV_DB_META, "j1", buf, sizeof buf, NULL));
  CHECK_EQ_STR(buf, "job");
  CHECK_EQ_INT(raw_int("EXISTS %s", "t2.meta:j1"), 0);
  CHECK_EQ_INT(raw_int("EXISTS %s", "t2.vulns:e1"), 0);
  /* Snapshots: local databases as before; shared ones answer WV_EBUSY (no round trip). */
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "t", "x", 1, 0));
  wv_store_snap_t snap;
  CHECK_OK(wv_store_snap_begin(s, &snap));
  int a = wv_store_snap_view(&snap, WV_DB_META, "j1", any_cb, NULL);
  int b = wv_store_snap_view(&snap, WV_DB_TOKENS, "t", any_cb, NULL);
  wv_store_snap_end(&snap);
  CHECK_EQ_INT(a, 7);
  CHECK_EQ_INT(b, WV_EBUSY);
  /* One write may not mix the two backends (it could not be atomic). */
  wv_store_op_t ops[2] = {{.kind = WV_STORE_PUT, .db = WV_DB_TOKENS, .key = "m1", .val = "1"},
                          {.kind = WV_STORE_PUT, .db = WV_DB_META, .key = "m2", .val = "2"}};
  ops[0].val_len = ops[1].val_len = 1;
  size_t failed = 99;
  CHECK_EQ_INT(wv_store_apply(s, ops, 2, &failed), WV_EINVAL);
  CHECK_EQ_INT(failed, 1);
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "m1", buf, sizeof buf, NULL), WV_ENOTFOUND);
}

TEST(put_nx_and_counters) {
  wv_store_t *s = open_redis("t3.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  char buf[64];
  CHECK_OK(wv_store_put_nx(s, WV_DB_SCANS, "id/1", "a", 1, 0));
  CHECK_EQ_INT(wv_store_put_nx(s, WV_DB_SCANS, "id/1", "b", 1, 0), WV_EEXISTS);
  CHECK_OK(get_str(s, WV_DB_SCANS, "id/1", buf, sizeof buf, NULL));
  CHECK_EQ_STR(buf, "a");
  /* A counter keeps the expiry it was created with (fixed windows). */
  int64_t v = 0, exp = 0, first = wv_store_now_ms() + HOUR_MS;
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "c", 5, first, &v));
  CHECK_EQ_INT(v, 5);
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "c", -2, first + HOUR_MS, &v));
  CHECK_EQ_INT(v, 3);
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "c", buf, sizeof buf, &exp));
  CHECK_EQ_STR(buf, "3");
  CHECK_EQ_INT(exp, first);
  CHECK_OK(wv_store_put(s, WV_DB_COUNTERS, "text", "abc", 3, 0));
  CHECK_EQ_INT(wv_store_incr(s, WV_DB_COUNTERS, "text", 1, 0, &v), WV_EPARSE);
  CHECK_OK(wv_store_put(s, WV_DB_COUNTERS, "max", "9223372036854775807", 19, 0));
  CHECK_EQ_INT(wv_store_incr(s, WV_DB_COUNTERS, "max", 1, 0, &v), WV_ERANGE);
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "max", buf, sizeof buf, NULL));
  CHECK_EQ_STR(buf, "9223372036854775807");
}

TEST(apply_is_all_or_nothing) {
  wv_store_t *s = open_redis("t4.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  char buf[64];
  size_t failed = 99;
  CHECK_OK(wv_store_put(s, WV_DB_BUILDS, "taken", "x", 1, 0));
  wv_store_op_t ops[3] = {
      {.kind = WV_STORE_PUT, .db = WV_DB_BUILDS, .key = "a", .val = "A", .val_len = 1},
      {.kind = WV_STORE_INCR, .db = WV_DB_COUNTERS, .key = "n", .delta = 1},
      {.kind = WV_STORE_PUT_NX, .db = WV_DB_BUILDS, .key = "taken", .val = "B", .val_len = 1}};
  CHECK_EQ_INT(wv_store_apply(s, ops, 3, &failed), WV_EEXISTS);
  CHECK_EQ_INT(failed, 2);
  CHECK_EQ_INT(get_str(s, WV_DB_BUILDS, "a", buf, sizeof buf, NULL), WV_ENOTFOUND);
  CHECK_EQ_INT(get_str(s, WV_DB_COUNTERS, "n", buf, sizeof buf, NULL), WV_ENOTFOUND);
  ops[2].key = "free";
  CHECK_OK(wv_store_apply(s, ops, 3, &failed));
  CHECK_OK(get_str(s, WV_DB_BUILDS, "a", buf, sizeof buf, NULL));
  CHECK_EQ_STR(buf, "A");
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "n", buf, sizeof buf, NULL));
  CHECK_EQ_STR(buf, "1");
  /* Later ops see earlier ones of the same call, as in one LMDB transaction. */
  int64_t exp = 0, when = wv_store_now_ms() + HOUR_MS;
  wv_store_op_t seq[5] = {
      {.kind = WV_STORE_PUT, .db = WV_DB_COUNTERS, .key = "s", .val = "40", .val_len = 2},
      {.kind = WV_STORE_INCR, .db = WV_DB_COUNTERS, .key = "s", .delta = 2},
      {.kind = WV_STORE_DEL, .db = WV_DB_COUNTERS, .key = "fresh"},
      {.kind = WV_STORE_INCR, .db = WV_DB_COUNTERS, .key = "fresh", .delta = 7, .expires_ms = when},
      {.kind = WV_STORE_PUT_NX, .db = WV_DB_COUNTERS, .key = "fresh", .val = "z", .val_len = 1}};
  CHECK_EQ_INT(wv_store_apply(s, seq, 5, &failed), WV_EEXISTS); /* "fresh" exists by then */
  CHECK_EQ_INT(failed, 4);
  CHECK_OK(wv_store_apply(s, seq, 4, &failed));
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "s", buf, sizeof buf, NULL));
  CHECK_EQ_STR(buf, "42");
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "fresh", buf, sizeof buf, &exp));
  CHECK_EQ_STR(buf, "7");
  CHECK_EQ_INT(exp, when);
  /* An INCR of a text record fails the whole call. */
  wv_store_op_t bad[2] = {{.kind = WV_STORE_DEL, .db = WV_DB_BUILDS, .key = "a"},
                          {.kind = WV_STORE_INCR, .db = WV_DB_BUILDS, .key = "taken", .delta = 1}};
  CHECK_EQ_INT(wv_store_apply(s, bad, 2, &failed), WV_EPARSE);
  CHECK_EQ_INT(failed, 1);
  CHECK_OK(get_str(s, WV_DB_BUILDS, "a", buf, sizeof buf, NULL));
}

struct scan_seen {
  int n;
  char keys[8][32];
};

static int scan_cb(void *arg, const char *key, size_t klen, const void *val, size_t len,
                   int64_t exp) {
  struct scan_seen *sc = arg;
  (void)val, (void)exp;
  if (sc->n < 8 && klen < 32) {
    memcpy(sc->keys[sc->n], key, klen);
    sc->keys[sc->n][klen] = '\0';
  }
  sc->n++;
  return len == 4 && memcmp(val, "stop", 4) == 0 ? 5 : 0;
}

static int has_key(const struct scan_seen *sc, const char *k) {
  for (int i = 0; i < sc->n && i < 8; i++)
    if (strcmp(sc->keys[i], k) == 0)
      return 1;
  return 0;
}

TEST(scan_by_prefix) {
  wv_store_t *s = open_redis("t5[*].");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  const char *keys[] = {"a*b/1", "a*b/2", "axb/3", "a?b/4", "z/5"};
  for (size_t i = 0; i < 5; i++)
    CHECK_OK(wv_store_put(s, WV_DB_MIRRORS, keys[i], "v", 1, 0));
  CHECK_OK(wv_store_put(s, WV_DB_MIRRORS, "a*b/gone", "v", 1, wv_store_now_ms() - 1));
  CHECK_OK(wv_store_put(s, WV_DB_SCANS, "a*b/other-db", "v", 1, 0));
  struct scan_seen sc = {0};
  CHECK_OK(wv_store_scan(s, WV_DB_MIRRORS, "a*b/", scan_cb, &sc)); /* '*' is not a glob */
  CHECK_EQ_INT(sc.n, 2);
  CHECK(has_key(&sc, "a*b/1") && has_key(&sc, "a*b/2"));
  memset(&sc, 0, sizeof sc);
  CHECK_OK(wv_store_scan(s, WV_DB_MIRRORS, NULL, scan_cb, &sc));
  CHECK_EQ_INT(sc.n, 5);
  /* Many keys (several SCAN pages and fetch chunks), and a callback that stops the scan. */
  char k[32];
  for (int i = 0; i < 700; i++) {
    snprintf(k, sizeof k, "many/%d", i);
    CHECK_OK(wv_store_put(s, WV_DB_MIRRORS, k, "v", 1, 0));
  }
  memset(&sc, 0, sizeof sc);
  CHECK_OK(wv_store_scan(s, WV_DB_MIRRORS, "many/", scan_cb, &sc));
  CHECK_EQ_INT(sc.n, 700);
  CHECK_OK(wv_store_put(s, WV_DB_MIRRORS, "many/stop", "stop", 4, 0));
  memset(&sc, 0, sizeof sc);
  CHECK_EQ_INT(wv_store_scan(s, WV_DB_MIRRORS, "many/", scan_cb, &sc), 5);
  CHECK(sc.n >= 1 && sc.n <= 701);
}

struct done_count {
  atomic_int calls, ok;
  atomic_llong last;
};

static void done_cb(void *arg, int rc, int64_t value) {
  struct done_count *d = arg;
  if (rc == 0)
    atomic_fetch_add(&d->ok, 1);
  if (value > atomic_load(&d->last))
    atomic_store(&d->last, value);
  atomic_fetch_add(&d->calls, 1);
}

TEST(submit_runs_every_write_once) {
  wv_store_t *s = open_redis("t6.");
  CHECK(s);
  struct done_count d = {0};
  wv_store_op_t op = {.kind = WV_STORE_INCR, .db = WV_DB_COUNTERS, .key = "hits", .delta = 1};
  for (int i = 0; i < 500; i++)
    CHECK_OK(wv_store_submit(s, &op, done_cb, &d));
  char key[16] = "m0";
  op = (wv_store_op_t){
      .kind = WV_STORE_PUT, .db = WV_DB_MANIFESTS, .key = key, .val = "x", .val_len = 1};
  CHECK_OK(wv_store_submit(s, &op, done_cb, &d));
  key[1] = 'Z';      /* the store copied the key */
  wv_store_close(s); /* drains: every callback has run */
  tmpdir_remove(lmdb_dir);
  CHECK_EQ_INT(atomic_load(&d.calls), 501);
  CHECK_EQ_INT(atomic_load(&d.ok), 501);
  CHECK_EQ_INT(atomic_load(&d.last), 500);
  CHECK_EQ_INT(raw_int("EXISTS %s", "t6.manifests:m0"), 1);
}

struct racer {
  wv_store_t *s;
  int n;
  int errors;
};

/* Each round: INCR the shared counter and PUT_NX a key of its own, in one apply. */
static void *race_main(void *arg) {
  struct racer *r = arg;
  for (int i = 0; i < r->n; i++) {
    char k[48];
    snprintf(k, sizeof k, "own/%p/%d", (void *)r, i);
    wv_store_op_t ops[2] = {
        {.kind = WV_STORE_INCR, .db = WV_DB_COUNTERS, .key = "shared", .delta = 1},
        {.kind = WV_STORE_PUT_NX, .db = WV_DB_COUNTERS, .key = k, .val = "1", .val_len = 1}};
    if (wv_store_apply(r->s, ops, 2, NULL))
      r->errors++;
    if (wv_store_incr(r->s, WV_DB_COUNTERS, "plain", 1, 0, NULL))
      r->errors++;
  }
  return NULL;
}

TEST(concurrent_writers_lose_nothing) {
  /* A thread may wait for a connection while others fsync (appendfsync always) on a loaded
   * machine: a long timeout, since this test is about what gets lost, not about speed. */
  wv_store_t *s = open_redis_t("t7.", 20000);
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  enum { THREADS = 12, ROUNDS = 100 }; /* more threads than the pool's 8 connections */
  struct racer r[THREADS];
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    r[i] = (struct racer){s, ROUNDS, 0};
    pthread_create(&t[i], NULL, race_main, &r[i]);
  }
  int errors = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    errors += r[i].errors;
  }
  CHECK_EQ_INT(errors, 0);
  char buf[32];
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "shared", buf, sizeof buf, NULL));
  CHECK_EQ_INT(atoi(buf), THREADS * ROUNDS);
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "plain", buf, sizeof buf, NULL));
  CHECK_EQ_INT(atoi(buf), THREADS * ROUNDS);
}

TEST(restart_and_outage) {
  wv_store_t *s = open_redis("t8.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  char buf[64];
  /* Acknowledged writes survive a restart (appendfsync always), and the pooled
   * connections the restart closed are replaced without a failed request. */
  for (int i = 0; i < 50; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    CHECK_OK(wv_store_put(s, WV_DB_TOKENS, k, k, strlen(k), wv_store_now_ms() + HOUR_MS));
  }
  redis_fx_stop(&fx, SIGKILL);
  /* Down: every call fails with WV_EUNAVAIL, promptly. */
  double t0 = now_sec();
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "k1", buf, sizeof buf, NULL), WV_EUNAVAIL);
  CHECK_EQ_INT(wv_store_put(s, WV_DB_TOKENS, "x", "x", 1, 0), WV_EUNAVAIL);
  CHECK(now_sec() - t0 < 2.5);
  CHECK_OK(redis_fx_start(&fx));
  for (int i = 0; i < 50; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    CHECK_OK(get_str(s, WV_DB_TOKENS, k, buf, sizeof buf, NULL));
    CHECK_EQ_STR(buf, k);
  }
  /* A clean restart while connections sit in the pool. */
  redis_fx_stop(&fx, SIGTERM);
  CHECK_OK(redis_fx_start(&fx));
  CHECK_OK(get_str(s, WV_DB_TOKENS, "k7", buf, sizeof buf, NULL));
  int64_t v = 0;
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "after", 1, 0, &v));
  CHECK_EQ_INT(v, 1);
}

/* ---- several instances: locks, shared rate buckets, the local cache (store_cluster.c) ---- */

TEST(cluster_lock_one_holder) {
  wv_store_t *s = open_redis("t20.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  char a[WV_STORE_LOCK_HOLDER], b[WV_STORE_LOCK_HOLDER];
  CHECK_OK(wv_store_lock(s, "gc", 60000, a));
  CHECK_EQ_INT(wv_store_lock(s, "gc", 60000, b), WV_EBUSY); /* another instance: refused */
  CHECK(raw_int("PTTL %s", "t20.lock:gc") > 50000);
  wv_store_unlock(s, "gc", b); /* not the holder: nothing happens */
  CHECK_EQ_INT(raw_int("EXISTS %s", "t20.lock:gc"), 1);
  wv_store_unlock(s, "gc", a);
  CHECK_EQ_INT(raw_int("EXISTS %s", "t20.lock:gc"), 0);
  /* A holder that dies: the TTL frees the lock. */
  CHECK_OK(wv_store_lock(s, "gc", 150, a));
  usleep(300000);
  CHECK_OK(wv_store_lock(s, "gc", 60000, b));
  wv_store_unlock(s, "gc", b);
}

TEST(cluster_rate_bucket) {
  wv_store_t *s = open_redis("t21.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  /* 3 permits an hour: a burst of 3, then refused, the bucket ~1h20m ahead. */
  int64_t iv = 1200LL * 1000000, burst = 3 * iv, ahead = 0;
  for (int i = 0; i < 3; i++)
    CHECK_OK(wv_store_rate(s, "pull:i:10.0.0.1", iv, burst, true, &ahead));
  CHECK(ahead > burst - iv && ahead <= burst);
  CHECK_EQ_INT(wv_store_rate(s, "pull:i:10.0.0.1", iv, burst, true, &ahead), WV_EBUSY);
  CHECK_EQ_INT(wv_store_rate(s, "pull:i:10.0.0.1", iv, burst, false, NULL), WV_EBUSY);
  CHECK_OK(wv_store_rate(s, "pull:i:10.0.0.2", iv, burst, false, NULL)); /* another key */
  CHECK(raw_int("PTTL %s", "t21.ratelimit:pull:i:10.0.0.1") > 3500 * 1000);
  CHECK_EQ_INT(raw_int("EXISTS %s", "t21.ratelimit:pull:i:10.0.0.2"),
               0); /* a look writes nothing */
}

static int copy_str_cb(void *arg, const void *val, size_t len, int64_t exp) {
  (void)exp;
  snprintf(arg, 64, "%.*s", (int)len, (const char *)val);
  return 1;
}

static int snap_str(wv_store_t *s, wv_db_t db, const char *key, char *out) {
  wv_store_snap_t snap;
  if (wv_store_snap_begin(s, &snap))
    return WV_ESTORE;
  int rc = wv_store_snap_view(&snap, db, key, copy_str_cb, out);
  wv_store_snap_end(&snap);
  return rc;
}

/* Second and third instances of local_cache_and_invalidation, each with its own LMDB. */
static char dir_b[256], dir_c[256];
static void close_b(wv_store_t *s) {
  wv_store_close(s);
  tmpdir_remove(dir_b);
}
static void close_c(wv_store_t *s) {
  wv_store_close(s);
  tmpdir_remove(dir_c);
}

/* Instance B of a two-instance test (its own LMDB in dir_b) on prefix; NULL on failure. */
static wv_store_t *open_b(const char *prefix) {
  wv_store_t *b = NULL;
  if (!tmpdir_make(dir_b, "rstore-b") || wv_store_open(&b, dir_b, 0, 0) != 0)
    return NULL;
  if (wv_store_use_redis(b, url, prefix, 1000, 8, NULL) != 0) {
    close_b(b);
    return NULL;
  }
  return b;
}

/* Turns on the local caches of a and b (1 MiB, tokens 5 s); waits until both subscribed. */
static int caches_on(wv_store_t *a, wv_store_t *b) {
  int rc = wv_store_local_cache(a, 1 << 20, 5000);
  rc = rc ? rc : wv_store_local_cache(b, 1 << 20, 5000);
  for (int i = 0; !rc && i < 100 && !(wv_store_local_cache_live(a) && wv_store_local_cache_live(b));
       i++)
    usleep(20000);
  return rc ? rc : wv_store_local_cache_live(a) && wv_store_local_cache_live(b) ? 0 : WV_ETIMEOUT;
}

TEST(local_cache_and_invalidation) {
  wv_store_t *a = open_redis("t22."), *b = NULL;
  CHECK(a);
  TEST_CLEANUP(close_store, a);
  CHECK((b = open_b("t22.")));
  TEST_CLEANUP(close_b, b);
  CHECK_OK(caches_on(a, b));
  CHECK_EQ_INT(wv_store_local_cache(b, 1 << 20, 5000), WV_EINVAL); /* once */
  int64_t later = wv_store_now_ms() + HOUR_MS;
  char buf[64] = "";
  CHECK_OK(wv_store_put(a, WV_DB_TOKENS, "tok", "rec", 3, later));
  CHECK_OK(wv_store_put(a, WV_DB_MANIFESTS, "reg/v2/x/manifests/sha256:1", "body", 4, later));
  /* Before a worker read: the loop's snapshot read has nothing and says busy. */
  CHECK_EQ_INT(snap_str(b, WV_DB_TOKENS, "tok", buf), WV_EBUSY);
  CHECK_OK(get_str(b, WV_DB_TOKENS, "tok", buf, sizeof buf, NULL));
  CHECK_OK(get_str(b, WV_DB_MANIFESTS, "reg/v2/x/manifests/sha256:1", buf, sizeof buf, NULL));
  /* Now from memory, with no round trip: even with Redis's copy changed behind its back. */
  CHECK_EQ_INT(snap_str(b, WV_DB_TOKENS, "tok", buf), 1);
  CHECK_EQ_STR(buf, "rec");
  CHECK_EQ_INT(snap_str(b, WV_DB_MANIFESTS, "reg/v2/x/manifests/sha256:1", buf), 1);
  CHECK_EQ_STR(buf, "body");
  uint64_t hits = 0;
  wv_store_local_cache_stats(b, &hits, NULL, NULL);
  CHECK(hits >= 2);
  /* Local databases are never served from it. */
  CHECK_OK(wv_store_put(b, WV_DB_VULNS, "v", "x", 1, 0));
  CHECK_EQ_INT(snap_str(b, WV_DB_VULNS, "v", buf), 1);
  /* A deletion on A reaches B's memory by pub/sub. */
  CHECK_OK(wv_store_del(a, WV_DB_TOKENS, "tok"));
  int rc = 1;
  for (int i = 0; i < 100 && (rc = snap_str(b, WV_DB_TOKENS, "tok", buf)) == 1; i++)
    usleep(10000);
  CHECK_EQ_INT(rc, WV_EBUSY);
  CHECK_EQ_INT(get_str(b, WV_DB_TOKENS, "tok", buf, sizeof buf, NULL), WV_ENOTFOUND);
  /* A token is trusted locally for the token TTL at most. */
  wv_store_t *c = NULL;
  CHECK(tmpdir_make(dir_c, "rstore-c"));
  CHECK_OK(wv_store_open(&c, dir_c, 0, 0));
  TEST_CLEANUP(close_c, c);
  CHECK_OK(wv_store_use_redis(c, url, "t22.", 1000, 8, NULL));
  CHECK_OK(wv_store_local_cache(c, 1 << 20, 200));
  for (int i = 0; i < 100 && !wv_store_local_cache_live(c); i++)
    usleep(20000);
  CHECK_OK(wv_store_put(a, WV_DB_TOKENS, "tok2", "rec", 3, later));
  CHECK_OK(get_str(c, WV_DB_TOKENS, "tok2", buf, sizeof buf, NULL));
  CHECK_EQ_INT(snap_str(c, WV_DB_TOKENS, "tok2", buf), 1);
  usleep(300000);
  CHECK_EQ_INT(snap_str(c, WV_DB_TOKENS, "tok2", buf), WV_EBUSY);
}

/* Calls of one Redis command since the server started (INFO commandstats). */
static long long cmd_calls(const char *cmd) {
  redisContext *c = raw();
  redisReply *x = c ? redisCommand(c, "INFO commandstats") : NULL;
  long long n = -1; /* no answer */
  char pat[64];
  snprintf(pat, sizeof pat, "cmdstat_%s:calls=", cmd);
  if (x && x->type == REDIS_REPLY_STRING) {
    const char *p = strstr(x->str, pat);
    n = p ? strtoll(p + strlen(pat), NULL, 10) : 0; /* absent: never called */
  }
  if (x)
    freeReplyObject(x);
  if (c)
    redisFree(c);
  return n;
}

static int job_rec(char *out, size_t cap, const char *id, const char *state) {
  return snprintf(
      out, cap,
      "{\"id\":\"%s\",\"kind\":\"build\",\"state\":\"%s\",\"created\":1,\"deadline_ms\":20000,"
      "\"steps\":[{\"type\":\"cmd\",\"argv\":[\"true\"]}]}",
      id, state);
}

static void free_jobq(wv_jobq_t *q) { wv_jobq_free(q); }

/* The job queue reads records through the store: an ended job's record is read from Redis once
 * and then from the local cache; a running one every time; a deletion reaches every cache. */
TEST(ended_job_records_cached) {
  wv_store_t *a = open_redis("t24."), *b = NULL;
  CHECK(a);
  TEST_CLEANUP(close_store, a);
  CHECK((b = open_b("t24.")));
  TEST_CLEANUP(close_b, b);
  CHECK_OK(caches_on(a, b));
  wv_jobq_opts_t o = {.url = url,
                      .prefix = "t24.",
                      .timeout_ms = 1000,
                      .instance_id = "b",
                      .lease_ms = 3000,
                      .final_ttl_ms = HOUR_MS,
                      .log_dir = dir_b,
                      .store = b};
  wv_jobq_t *q = NULL;
  wv_job_persist_t p;
  wv_job_queue_t qops;
  CHECK_OK(wv_jobq_open(&o, &q, &p, &qops));
  TEST_CLEANUP(free_jobq, q);
  char rec[256], buf[256], *json = NULL;
  size_t len = 0;
  int64_t later = wv_store_now_ms() + HOUR_MS;
  int n = job_rec(rec, sizeof rec, "bd-c_1", "RUNNING");
  CHECK_OK(wv_store_put(a, WV_DB_JOBS, "bd-c_1", rec, (size_t)n, later));
  /* Running: every read is a GET. */
  long long g0 = cmd_calls("get");
  CHECK(g0 >= 0);
  for (int i = 0; i < 2; i++) {
    CHECK_OK(p.get(p.ctx, "bd-c_1", &json, &len));
    CHECK(strstr(json, "RUNNING") != NULL);
    free(json);
  }
  CHECK_EQ_INT(cmd_calls("get") - g0, 2);
  CHECK_EQ_INT(snap_str(b, WV_DB_JOBS, "bd-c_1", buf), WV_EBUSY); /* not cached */
  /* Ended (saved by the instance that ran it, as the queue does: a plain SET): one GET. */
  n = job_rec(rec, sizeof rec, "bd-c_1", "SUCCEEDED");
  redisContext *c = raw();
  CHECK(c);
  redisReply *x = redisCommand(c, "SET %s %b PX 3600000", "t24.jobs:bd-c_1", rec, (size_t)n);
  CHECK(x && x->type == REDIS_REPLY_STATUS);
  freeReplyObject(x);
  redisFree(c);
  g0 = cmd_calls("get");
  for (int i = 0; i < 3; i++) {
    CHECK_OK(p.get(p.ctx, "bd-c_1", &json, &len));
    CHECK(strstr(json, "SUCCEEDED") != NULL);
    CHECK_EQ_INT(len, n);
    free(json);
  }
  CHECK_EQ_INT(cmd_calls("get") - g0, 1);
  CHECK_EQ_INT(snap_str(b, WV_DB_JOBS, "bd-c_1", buf), 1); /* the IO loops' read too */
  /* Not what a reader without final() fills: a FAILED record read by wv_store_get. */
  n = job_rec(rec, sizeof rec, "bd-c_2", "FAILED");
  CHECK_OK(wv_store_put(a, WV_DB_JOBS, "bd-c_2", rec, (size_t)n, later));
  CHECK_OK(get_str(b, WV_DB_JOBS, "bd-c_2", buf, sizeof buf, NULL));
  CHECK_EQ_INT(snap_str(b, WV_DB_JOBS, "bd-c_2", buf), WV_EBUSY);
  /* A deletion on A is gone from B's memory. */
  CHECK_OK(wv_store_del(a, WV_DB_JOBS, "bd-c_1"));
  int rc = 1;
  for (int i = 0; i < 100 && (rc = snap_str(b, WV_DB_JOBS, "bd-c_1", buf)) == 1; i++)
    usleep(10000);
  CHECK_EQ_INT(rc, WV_EBUSY);
  CHECK_EQ_INT(p.get(p.ctx, "bd-c_1", &json, &len), WV_ENOTFOUND);
  /* The cache honours the record's expiry. */
  n = job_rec(rec, sizeof rec, "bd-c_3", "FAILED");
  CHECK_OK(wv_store_put(a, WV_DB_JOBS, "bd-c_3", rec, (size_t)n, wv_store_now_ms() + 700));
  /* (A's write is announced too; a read that crosses the announcement does not fill.) */
  for (int i = 0; i < 20 && (rc = snap_str(b, WV_DB_JOBS, "bd-c_3", buf)) != 1; i++) {
    CHECK_OK(p.get(p.ctx, "bd-c_3", &json, &len));
    free(json);
    usleep(10000);
  }
  CHECK_EQ_INT(rc, 1);
  usleep(800000);
  CHECK_EQ_INT(snap_str(b, WV_DB_JOBS, "bd-c_3", buf), WV_EBUSY);
  CHECK_EQ_INT(p.get(p.ctx, "bd-c_3", &json, &len), WV_ENOTFOUND);
}

/* A job engine with the shared queue (instance "real"), as core/main.c starts one. */
typedef struct {
  char dir[256];
  wv_jobq_t *q;
  wv_job_engine_t *e;
  wv_job_persist_t p;
  wv_job_queue_t qops;
} qinst_t;

static void qinst_close(qinst_t *in) {
  wv_jobq_stop(in->q); /* its threads use the engine */
  wv_job_engine_free(in->e);
  wv_jobq_free(in->q);
  tmpdir_remove(in->dir);
}

static int qinst_open(qinst_t *in, const char *prefix, int max_deliveries) {
  if (!tmpdir_make(in->dir, "jobq"))
    return WV_EIO;
  wv_jobq_opts_t o = {.url = url,
                      .prefix = prefix,
                      .timeout_ms = 1000,
                      .instance_id = "real",
                      .lease_ms = 1000,
                      .poll_ms = 500,
                      .final_ttl_ms = HOUR_MS,
                      .log_dir = in->dir,
                      .max_deliveries = max_deliveries};
  int rc = wv_jobq_open(&o, &in->q, &in->p, &in->qops);
  if (rc)
    return rc;
  wv_job_opts_t jo;
  wv_job_opts_init(&jo);
  jo.log_dir = in->dir;
  jo.persist = &in->p;
  jo.queue = &in->qops;
  jo.rerun_reclaimed = true;
  wv_job_kind_t k = {
      .name = "build", .label = "Container build", .max_running = 2, .deadline_ms = 20000};
  if ((rc = wv_job_engine_new(&jo, &in->e)) || (rc = wv_job_register_kind(in->e, &k)) ||
      (rc = wv_job_engine_start(in->e)))
    return rc;
  return 0;
}

typedef struct {
  atomic_int done;
  wv_job_info_t info;
} qwait_t;

static void qwait_cb(void *arg, const wv_job_info_t *info) {
  qwait_t *w = arg;
  w->info = *info;
  atomic_store(&w->done, 1);
}

static bool qwait(qwait_t *w, int ms) {
  for (int i = 0; i < ms / 10 && !atomic_load(&w->done); i++)
    usleep(10000);
  return atomic_load(&w->done);
}

/* A raw command on the fixture's Redis; its reply's type (-1: no reply). */
static int rcmd(const char *fmt, ...) {
  redisContext *c = raw();
  va_list ap;
  va_start(ap, fmt);
  redisReply *x = c ? redisvCommand(c, fmt, ap) : NULL;
  va_end(ap);
  int t = x ? x->type : -1;
  if (x)
    freeReplyObject(x);
  if (c)
    redisFree(c);
  return t;
}

/* A job whose every instance dies: a fake consumer read it and two more took it over by
 * XAUTOCLAIM, none acknowledged; with job-max-deliveries 3 the real instance's reclaim (the
 * fourth delivery) fails it, acknowledges it and its waiter gets the failure. A job delivered
 * twice before is run again. */
TEST(poison_job_failed_after_cap) {
  char rec[256];
  int n = job_rec(rec, sizeof rec, "bd-p_1", "RUNNING");
  CHECK_EQ_INT(rcmd("SET t25.jobs:bd-p_1 %b", rec, (size_t)n), REDIS_REPLY_STATUS);
  n = job_rec(rec, sizeof rec, "bd-p_2", "RUNNING");
  CHECK_EQ_INT(rcmd("SET t25.jobs:bd-p_2 %b", rec, (size_t)n), REDIS_REPLY_STATUS);
  CHECK_EQ_INT(rcmd("XGROUP CREATE t25.jobq:build waved 0 MKSTREAM"), REDIS_REPLY_STATUS);
  CHECK_EQ_INT(rcmd("XADD t25.jobq:build * id bd-p_1"), REDIS_REPLY_STRING);
  CHECK_EQ_INT(rcmd("XREADGROUP GROUP waved dead1 COUNT 1 STREAMS t25.jobq:build >"),
               REDIS_REPLY_ARRAY);
  CHECK_EQ_INT(rcmd("XAUTOCLAIM t25.jobq:build waved dead2 0 0-0"), REDIS_REPLY_ARRAY);
  CHECK_EQ_INT(rcmd("XAUTOCLAIM t25.jobq:build waved dead3 0 0-0"), REDIS_REPLY_ARRAY);
  CHECK_EQ_INT(rcmd("XADD t25.jobq:build * id bd-p_2"), REDIS_REPLY_STRING);
  CHECK_EQ_INT(rcmd("XREADGROUP GROUP waved dead1 COUNT 1 STREAMS t25.jobq:build >"),
               REDIS_REPLY_ARRAY);
  CHECK_EQ_INT(raw_int("XLEN %s", "t25.jobq:build"), 2);
  /* static: the clean-ups run after this function returned; so do late waiter calls */
  static qinst_t in;
  static qwait_t w1, w2;
  TEST_CLEANUP(qinst_close, &in); /* closes what qinst_open got to */
  CHECK_OK(qinst_open(&in, "t25.", 3));
  CHECK_OK(wv_job_on_done(in.e, "bd-p_1", qwait_cb, &w1)); /* a parked pull, say */
  CHECK_OK(wv_job_on_done(in.e, "bd-p_2", qwait_cb, &w2));
  CHECK_OK(wv_jobq_start(in.q, in.e));
  CHECK(qwait(&w1, 15000));
  CHECK_EQ_INT(w1.info.state, WV_JOB_FAILED);
  CHECK(strstr(w1.info.reason, "abandoned by 3 instances") != NULL);
  CHECK(strstr(w1.info.reason, "job-max-deliveries") != NULL);
  char *json = NULL;
  size_t len;
  CHECK_OK(in.p.get(in.p.ctx, "bd-p_1", &json, &len));
  CHECK(strstr(json, "\"FAILED\"") != NULL);
  free(json);
  CHECK(qwait(&w2, 15000)); /* under the cap: taken over and run again */
  CHECK_EQ_INT(w2.info.state, WV_JOB_SUCCEEDED);
  int64_t pending = -1;
  for (int i = 0; i < 100 && (pending = raw_int("XLEN %s", "t25.jobq:build")) != 0; i++)
    usleep(20000);
  CHECK_EQ_INT(pending, 0); /* both acknowledged and deleted */
}

/* A message whose lease another instance still holds is not counted as a delivery each time
 * this instance's reclaim finds it idle: its owner may be slow to touch it, not gone. With
 * job-max-deliveries 2, four reclaims while the lease is held leave the count at the first read's
 * 1; once the lease is free the job is taken over (count 2), run again and acknowledged. */
TEST(reclaim_of_leased_message_not_counted) {
  char rec[256];
  int n = job_rec(rec, sizeof rec, "bd-l_1", "RUNNING");
  CHECK_EQ_INT(rcmd("SET t26.jobs:bd-l_1 %b", rec, (size_t)n), REDIS_REPLY_STATUS);
  CHECK_EQ_INT(rcmd("SET t26.joblease:bd-l_1 other PX 60000"), REDIS_REPLY_STATUS);
  CHECK_EQ_INT(rcmd("XGROUP CREATE t26.jobq:build waved 0 MKSTREAM"), REDIS_REPLY_STATUS);
  CHECK_EQ_INT(rcmd("XADD t26.jobq:build * id bd-l_1"), REDIS_REPLY_STRING);
  CHECK_EQ_INT(rcmd("XREADGROUP GROUP waved other COUNT 1 STREAMS t26.jobq:build >"),
               REDIS_REPLY_ARRAY);
  static qinst_t in; /* static: the clean-ups run after this function returned */
  static qwait_t w;
  TEST_CLEANUP(qinst_close, &in);
  CHECK_OK(qinst_open(&in, "t26.", 2));
  CHECK_OK(wv_job_on_done(in.e, "bd-l_1", qwait_cb, &w));
  CHECK_OK(wv_jobq_start(in.q, in.e));
  usleep(4500 * 1000); /* lease 1 s, reclaim every 0.5 s: the message is found idle 3-4 times */
  redisContext *c = raw();
  CHECK(c != NULL);
  redisReply *x = redisCommand(c, "XPENDING t26.jobq:build waved - + 10");
  CHECK(x && x->type == REDIS_REPLY_ARRAY && x->elements == 1);
  CHECK(x->element[0]->type == REDIS_REPLY_ARRAY && x->element[0]->elements == 4);
  CHECK_EQ_INT(x->element[0]->element[3]->integer, 1); /* only the first read counted */
  freeReplyObject(x);
  redisFree(c);
  CHECK(!atomic_load(&w.done)); /* left alone while the lease is held */
  CHECK_EQ_INT(rcmd("DEL t26.joblease:bd-l_1"), REDIS_REPLY_INTEGER);
  CHECK(qwait(&w, 15000));
  CHECK_EQ_INT(w.info.state, WV_JOB_SUCCEEDED); /* taken over and run, not abandoned */
  int64_t pending = -1;
  for (int i = 0; i < 100 && (pending = raw_int("XLEN %s", "t26.jobq:build")) != 0; i++)
    usleep(20000);
  CHECK_EQ_INT(pending, 0);
}

/* Every database the collector marks is in Redis, the job records included (the job queue
 * writes them there): a blob only a job of another instance names is kept, an orphan goes. */
TEST(blob_gc_marks_cluster_wide) {
  wv_store_t *s = open_redis("t23.");
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  wv_cas_t *c = NULL;
  char orphan[WV_CAS_DIGEST_LEN + 1], kept[WV_CAS_DIGEST_LEN + 1], rec[256];
  CHECK_OK(wv_cas_open(&c, lmdb_dir, 0));
  CHECK_OK(wv_cas_put(c, "orphan", 6, NULL, orphan));
  CHECK_OK(wv_cas_put(c, "named by a job", 14, NULL, kept));
  CHECK(wv_store_db_shared(s, WV_DB_JOBS));
  int n = snprintf(rec, sizeof rec, "{\"id\":\"bd-x_1\",\"output\":\"%s\"}", kept);
  CHECK_OK(wv_store_put(s, WV_DB_JOBS, "bd-x_1", rec, (size_t)n, 0));
  wv_blobgc_stats_t st;
  CHECK_OK(wv_blobgc_run(s, c, wv_store_now_ms() + 48 * HOUR_MS, 0, &st));
  CHECK_EQ_INT(wv_cas_exists(c, orphan, NULL), WV_ENOTFOUND);
  CHECK_OK(wv_cas_exists(c, kept, NULL));
  CHECK_EQ_INT(raw_int("EXISTS %s", "t23.lock:" WV_BLOBGC_LOCK), 0); /* not left held */
  wv_cas_close(c);
}

WV_TEST_GLOBALS;

int main(int argc, char **argv) {
  static const wv_test_t tests[] = {T(url_parse),
                                    T(refuses_bad_settings),
                                    T(put_get_del_expiry),
                                    T(local_databases_stay_in_lmdb),
                                    T(cluster_lock_one_holder),
                                    T(cluster_rate_bucket),
                                    T(local_cache_and_invalidation),
                                    T(ended_job_records_cached),
                                    T(poison_job_failed_after_cap),
                                    T(reclaim_of_leased_message_not_counted),
                                    T(blob_gc_marks_cluster_wide),
                                    T(put_nx_and_counters),
                                    T(apply_is_all_or_nothing),
                                    T(scan_by_prefix),
                                    T(submit_runs_every_write_once),
                                    T(concurrent_writers_lose_nothing),
                                    T(restart_and_outage)};
  if (redis_fx_missing())
    return 77;
  if (redis_fx_init(&fx, "redis") != 0) {
    redis_fx_free(&fx);
    return 1;
  }
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", fx.port);
  int rc = wv_test_run(argc, argv, tests, sizeof tests / sizeof tests[0]);
  redis_fx_free(&fx);
  return rc;
}
