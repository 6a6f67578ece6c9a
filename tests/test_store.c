/* Unit tests for storage/store: records, expiry, counters, caps, group commit, sweep. */
#include "core/err.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#define HOUR_MS (3600 * 1000LL)

/*
 * A test's store in a fresh temp dir. open_fresh hands it to TEST_CLEANUP, so the struct must
 * outlive the test (tests declare theirs static), and so must what a test hands the store's
 * callbacks; a test that closes and reopens the store keeps f->s up to date.
 */
typedef struct {
  char dir[256];
  wv_store_t *s;
} fresh_t;

/* Closes the store (when open) and removes the directory; once (then a no-op). */
static void fresh_free(fresh_t *f) {
  if (f->s)
    wv_store_close(f->s);
  f->s = NULL;
  if (f->dir[0])
    tmpdir_remove(f->dir);
  f->dir[0] = '\0';
}

/* A temp dir for f (handed to TEST_CLEANUP), no store yet; NULL when it cannot be made. */
static const char *fresh_dir(fresh_t *f) {
  memset(f, 0, sizeof *f);
  if (!tmpdir_make(f->dir, "store"))
    return NULL;
  TEST_CLEANUP(fresh_free, f);
  return f->dir;
}

/* f's store, opened in a fresh temp dir; NULL on failure. */
static wv_store_t *open_fresh(fresh_t *f, int64_t delay_us) {
  if (!fresh_dir(f) || wv_store_open(&f->s, f->dir, 0, delay_us) != 0)
    return NULL;
  return f->s;
}

static int get_str(wv_store_t *s, wv_db_t db, const char *key, char *out, size_t cap) {
  char *v = NULL;
  size_t len = 0;
  int rc = wv_store_get(s, db, key, &v, &len, NULL);
  if (rc == 0) {
    snprintf(out, cap, "%s", v);
    free(v);
  }
  return rc;
}

struct view_seen {
  const void *ptr;
  size_t len;
  int64_t exp;
  char first;
};

static int view_cb(void *arg, const void *val, size_t len, int64_t expires_ms) {
  struct view_seen *v = arg;
  v->ptr = val;
  v->len = len;
  v->exp = expires_ms;
  v->first = len ? *(const char *)val : 0;
  return 42; /* passed through */
}

TEST(put_get_del) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  char buf[64];
  CHECK_EQ_INT(get_str(s, WV_DB_BUILDS, "b1", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_OK(wv_store_put(s, WV_DB_BUILDS, "b1", "{\"id\":1}", 8, 0));
  CHECK_OK(get_str(s, WV_DB_BUILDS, "b1", buf, sizeof buf));
  CHECK_EQ_STR(buf, "{\"id\":1}");
  /* Same key in another database is another record. */
  CHECK_EQ_INT(get_str(s, WV_DB_SCANS, "b1", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_OK(wv_store_put(s, WV_DB_BUILDS, "b1", "{\"id\":2}", 8, 0));
  CHECK_OK(get_str(s, WV_DB_BUILDS, "b1", buf, sizeof buf));
  CHECK_EQ_STR(buf, "{\"id\":2}");
  /* Zero-copy view: the callback's return value comes back. */
  struct view_seen v = {0};
  CHECK_EQ_INT(wv_store_view(s, WV_DB_BUILDS, "b1", view_cb, &v), 42);
  CHECK_EQ_INT(v.len, 8);
  CHECK_EQ_INT(v.first, '{');
  CHECK_EQ_INT(v.exp, 0);
  /* Empty values are allowed. */
  CHECK_OK(wv_store_put(s, WV_DB_META, "empty", NULL, 0, 0));
  CHECK_OK(get_str(s, WV_DB_META, "empty", buf, sizeof buf));
  CHECK_EQ_STR(buf, "");
  CHECK_OK(wv_store_del(s, WV_DB_BUILDS, "b1"));
  CHECK_EQ_INT(get_str(s, WV_DB_BUILDS, "b1", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_OK(wv_store_del(s, WV_DB_BUILDS, "b1")); /* idempotent */
  fresh_free(&f);
}

TEST(expiry) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  int64_t now = wv_store_now_ms();
  char buf[64];
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "old", "x", 1, now - 1));
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "old", buf, sizeof buf), WV_ENOTFOUND);
  struct view_seen v = {0};
  CHECK_EQ_INT(wv_store_view(s, WV_DB_TOKENS, "old", view_cb, &v), WV_ENOTFOUND);
  CHECK(v.ptr == NULL); /* callback not called */
  /* An expired record counts as absent for put-if-absent. */
  CHECK_OK(wv_store_put_nx(s, WV_DB_TOKENS, "old", "y", 1, now + HOUR_MS));
  char *val = NULL;
  size_t len = 0;
  int64_t exp = 0;
  CHECK_OK(wv_store_get(s, WV_DB_TOKENS, "old", &val, &len, &exp));
  CHECK_EQ_INT(len, 1);
  CHECK_EQ_INT(val[0], 'y');
  CHECK_EQ_INT(exp, now + HOUR_MS);
  free(val);
  /* A short TTL really expires by the wall clock. */
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "short", "z", 1, wv_store_now_ms() + 30));
  CHECK_OK(get_str(s, WV_DB_TOKENS, "short", buf, sizeof buf));
  usleep(60 * 1000);
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "short", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_store_put(s, WV_DB_TOKENS, "neg", "z", 1, -5), WV_EINVAL);
  fresh_free(&f);
}

static void *put_new(void *arg) {
  wv_store_put(arg, WV_DB_MANIFESTS, "T/t1", "new", 3, 0);
  return NULL;
}

TEST(snapshot_reads) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  int64_t now = wv_store_now_ms();
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "t1", "tok", 3, now + HOUR_MS));
  CHECK_OK(wv_store_put(s, WV_DB_MANIFESTS, "T/t1", "hot", 3, 0));
  CHECK_OK(wv_store_put(s, WV_DB_MANIFESTS, "gone", "old", 3, now - 1));
  wv_store_snap_t snap;
  CHECK_OK(wv_store_snap_begin(s, &snap));
  struct view_seen v = {0};
  CHECK_EQ_INT(wv_store_snap_view(&snap, WV_DB_TOKENS, "t1", view_cb, &v), 42);
  CHECK_EQ_INT(v.len, 3);
  CHECK_EQ_INT(v.first, 't');
  CHECK_EQ_INT(v.exp, now + HOUR_MS);
  CHECK_EQ_INT(wv_store_snap_view(&snap, WV_DB_MANIFESTS, "T/t1", view_cb, &v), 42);
  CHECK_EQ_INT(v.len, 3);
  CHECK_EQ_INT(v.first, 'h');
  memset(&v, 0, sizeof v);
  CHECK_EQ_INT(wv_store_snap_view(&snap, WV_DB_MANIFESTS, "gone", view_cb, &v), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_store_snap_view(&snap, WV_DB_MANIFESTS, "none", view_cb, &v), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_store_snap_view(&snap, WV_DB_MANIFESTS, "", view_cb, &v), WV_EINVAL);
  CHECK(v.ptr == NULL);
  wv_store_snap_end(&snap);
  /* A snapshot sees the state at its start; the next one sees the write
   * (made by another thread: no store call while this one holds a snapshot). */
  CHECK_OK(wv_store_snap_begin(s, &snap));
  pthread_t th;
  CHECK_OK(pthread_create(&th, NULL, put_new, s));
  pthread_join(th, NULL);
  CHECK_EQ_INT(wv_store_snap_view(&snap, WV_DB_MANIFESTS, "T/t1", view_cb, &v), 42);
  CHECK_EQ_INT(v.first, 'h');
  wv_store_snap_end(&snap);
  CHECK_EQ_INT(wv_store_view(s, WV_DB_MANIFESTS, "T/t1", view_cb, &v), 42);
  CHECK_EQ_INT(v.first, 'n');
  fresh_free(&f);
}

TEST(counters) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  int64_t v = 0;
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "builds", 1, 0, &v));
  CHECK_EQ_INT(v, 1);
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "builds", 5, 0, &v));
  CHECK_EQ_INT(v, 6);
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "builds", -10, 0, &v));
  CHECK_EQ_INT(v, -4);
  char buf[32];
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "builds", buf, sizeof buf));
  CHECK_EQ_STR(buf, "-4"); /* stored as a JSON number */
  CHECK_OK(wv_store_put(s, WV_DB_COUNTERS, "text", "abc", 3, 0));
  CHECK_EQ_INT(wv_store_incr(s, WV_DB_COUNTERS, "text", 1, 0, &v), WV_EPARSE);
  CHECK_OK(get_str(s, WV_DB_COUNTERS, "text", buf, sizeof buf));
  CHECK_EQ_STR(buf, "abc"); /* a failed op leaves the record alone */
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "big", INT64_MAX, 0, &v));
  CHECK_EQ_INT(wv_store_incr(s, WV_DB_COUNTERS, "big", 1, 0, &v), WV_ERANGE);
  /* A windowed counter keeps the expiry it was created with. */
  int64_t win = wv_store_now_ms() + HOUR_MS;
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "pulls:ip", 1, win, &v));
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "pulls:ip", 1, win + 999, &v));
  CHECK_EQ_INT(v, 2);
  int64_t exp = 0;
  char *val;
  CHECK_OK(wv_store_get(s, WV_DB_COUNTERS, "pulls:ip", &val, NULL, &exp));
  free(val);
  CHECK_EQ_INT(exp, win);
  /* An expired window starts again from zero. */
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "old", 7, wv_store_now_ms() - 1, &v));
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "old", 1, win, &v));
  CHECK_EQ_INT(v, 1);
  fresh_free(&f);
}

TEST(put_if_absent_and_apply) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  char buf[32];
  CHECK_OK(wv_store_put_nx(s, WV_DB_BUILD_TARGETS, "img:tag", "b1", 2, 0));
  CHECK_EQ_INT(wv_store_put_nx(s, WV_DB_BUILD_TARGETS, "img:tag", "b2", 2, 0), WV_EEXISTS);
  CHECK_OK(get_str(s, WV_DB_BUILD_TARGETS, "img:tag", buf, sizeof buf));
  CHECK_EQ_STR(buf, "b1");
  /* apply is all-or-nothing: the second op fails, so the first is not written. */
  wv_store_op_t ops[2] = {
      {.kind = WV_STORE_PUT, .db = WV_DB_BUILDS, .key = "b2", .val = "{}", .val_len = 2},
      {.kind = WV_STORE_PUT_NX,
       .db = WV_DB_BUILD_TARGETS,
       .key = "img:tag",
       .val = "b2",
       .val_len = 2},
  };
  size_t failed = 99;
  CHECK_EQ_INT(wv_store_apply(s, ops, 2, &failed), WV_EEXISTS);
  CHECK_EQ_INT(failed, 1);
  CHECK_EQ_INT(get_str(s, WV_DB_BUILDS, "b2", buf, sizeof buf), WV_ENOTFOUND);
  ops[1].key = "img:other";
  CHECK_OK(wv_store_apply(s, ops, 2, &failed));
  CHECK_OK(get_str(s, WV_DB_BUILDS, "b2", buf, sizeof buf));
  CHECK_OK(get_str(s, WV_DB_BUILD_TARGETS, "img:other", buf, sizeof buf));
  CHECK_EQ_INT(wv_store_apply(s, ops, 0, NULL), WV_EINVAL);
  fresh_free(&f);
}

TEST(caps) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  char key[WV_STORE_KEY_MAX + 2];
  memset(key, 'k', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  CHECK_EQ_INT(wv_store_put(s, WV_DB_META, key, "v", 1, 0), WV_ETOOBIG);
  char *v;
  CHECK_EQ_INT(wv_store_get(s, WV_DB_META, key, &v, NULL, NULL), WV_ETOOBIG);
  key[WV_STORE_KEY_MAX] = '\0'; /* exactly the cap: fine, even with an expiry */
  CHECK_OK(wv_store_put(s, WV_DB_META, key, "v", 1, wv_store_now_ms() + HOUR_MS));
  CHECK_OK(wv_store_get(s, WV_DB_META, key, &v, NULL, NULL));
  free(v);
  CHECK_EQ_INT(wv_store_put(s, WV_DB_META, "", "v", 1, 0), WV_EINVAL);
  CHECK_EQ_INT(wv_store_put(s, WV_DB_META, NULL, "v", 1, 0), WV_EINVAL);
  CHECK_EQ_INT(wv_store_put(s, WV_DB_COUNT, "k", "v", 1, 0), WV_EINVAL);
  CHECK_EQ_INT(wv_store_put(s, (wv_db_t)-1, "k", "v", 1, 0), WV_EINVAL);
  char *big = calloc(1, WV_STORE_VALUE_MAX + 1);
  CHECK(big);
  memset(big, 'a', WV_STORE_VALUE_MAX);
  int rc_over = wv_store_put(s, WV_DB_MANIFESTS, "big", big, WV_STORE_VALUE_MAX + 1, 0);
  int rc_at = wv_store_put(s, WV_DB_MANIFESTS, "big", big, WV_STORE_VALUE_MAX, 0);
  free(big);
  CHECK_EQ_INT(rc_over, WV_ETOOBIG);
  CHECK_OK(rc_at);
  size_t len = 0;
  CHECK_OK(wv_store_get(s, WV_DB_MANIFESTS, "big", &v, &len, NULL));
  CHECK_EQ_INT(len, WV_STORE_VALUE_MAX);
  CHECK_EQ_INT(v[0], 'a');
  CHECK_EQ_INT(v[len - 1], 'a');
  free(v);
  fresh_free(&f);
}

TEST(reopen_persists) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 200);
  CHECK(s);
  int64_t exp = wv_store_now_ms() + HOUR_MS;
  CHECK_OK(wv_store_put(s, WV_DB_REQUESTS, "r1", "{\"a\":1}", 7, exp));
  int64_t v;
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "n", 3, 0, &v));
  wv_store_close(s);
  f.s = NULL;
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  s = f.s;
  char *val;
  int64_t got_exp = 0;
  CHECK_OK(wv_store_get(s, WV_DB_REQUESTS, "r1", &val, NULL, &got_exp));
  CHECK_EQ_STR(val, "{\"a\":1}");
  free(val);
  CHECK_EQ_INT(got_exp, exp);
  CHECK_OK(wv_store_incr(s, WV_DB_COUNTERS, "n", 1, 0, &v));
  CHECK_EQ_INT(v, 4);
  /* The expiry index survived too: sweeping the future removes the record. */
  size_t removed = 0;
  CHECK_OK(wv_store_sweep(s, exp, 100, &removed));
  CHECK_EQ_INT(removed, 1);
  fresh_free(&f);
}

TEST(schema_version) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  char buf[16];
  CHECK_OK(get_str(s, WV_DB_META, "schema", buf, sizeof buf));
  CHECK_EQ_INT(atoi(buf), WV_STORE_SCHEMA_VERSION);
  /* Pretend a newer waved wrote this store: it must be refused, clearly. */
  CHECK_OK(wv_store_put(s, WV_DB_META, "schema", "99", 2, 0));
  wv_store_close(s);
  f.s = NULL;
  CHECK_EQ_INT(wv_store_open(&f.s, f.dir, 0, 0), WV_ESTORE);
  CHECK(f.s == NULL);
  fresh_free(&f);
}

static int key_of(char *buf, size_t cap, int i) { return snprintf(buf, cap, "rec-%06d", i); }

TEST(sweep_uses_index) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  int64_t base = wv_store_now_ms() + HOUR_MS;
  enum { N = 3000 };
  /* Write through the async path so 6000 records take a few commits; the
   * blocking put after them is a barrier, since the queue is FIFO. */
  char key[32];
  for (int i = 0; i < N; i++) {
    key_of(key, sizeof key, i);
    wv_store_op_t op = {.kind = WV_STORE_PUT,
                        .db = WV_DB_TOKENS,
                        .key = key,
                        .val = "t",
                        .val_len = 1,
                        .expires_ms = base + i};
    CHECK_OK(wv_store_submit(s, &op, NULL, NULL));
    op.db = WV_DB_REQUESTS;
    op.expires_ms = 0;
    CHECK_OK(wv_store_submit(s, &op, NULL, NULL));
  }
  /* Moving an expiry moves its index entry; removing the expiry drops it. */
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "moved", "m", 1, base + 10));
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "moved", "m", 1, base + 100000));
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "forever", "f", 1, base + 10));
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "forever", "f", 1, 0));
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "deleted", "d", 1, base + 10));
  CHECK_OK(wv_store_del(s, WV_DB_TOKENS, "deleted"));
  size_t removed = 0;
  CHECK_OK(wv_store_sweep(s, base + 1499, 1000, &removed));
  CHECK_EQ_INT(removed, 1000);
  CHECK_OK(wv_store_sweep(s, base + 1499, 1000, &removed));
  CHECK_EQ_INT(removed, 500);
  CHECK_OK(wv_store_sweep(s, base + 1499, 1000, &removed));
  CHECK_EQ_INT(removed, 0);
  char buf[16];
  key_of(key, sizeof key, 1499);
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, key, buf, sizeof buf), WV_ENOTFOUND);
  CHECK_OK(get_str(s, WV_DB_REQUESTS, key, buf, sizeof buf)); /* no expiry: untouched */
  key_of(key, sizeof key, 1500);
  CHECK_OK(get_str(s, WV_DB_TOKENS, key, buf, sizeof buf));
  CHECK_OK(get_str(s, WV_DB_TOKENS, "moved", buf, sizeof buf));
  CHECK_OK(get_str(s, WV_DB_TOKENS, "forever", buf, sizeof buf));
  CHECK_OK(wv_store_sweep(s, base + N, 10000, &removed));
  CHECK_EQ_INT(removed, N - 1500);
  CHECK_OK(wv_store_sweep(s, base + 100000, 10000, &removed));
  CHECK_EQ_INT(removed, 1); /* "moved" */
  CHECK_OK(wv_store_sweep(s, INT64_MAX, 10000, &removed));
  CHECK_EQ_INT(removed, 0); /* "forever" and "deleted" left no index entries */
  CHECK_OK(get_str(s, WV_DB_TOKENS, "forever", buf, sizeof buf));
  CHECK_EQ_INT(wv_store_sweep(s, 0, 0, &removed), WV_EINVAL);
  fresh_free(&f);
}

/* An index entry made early (wv_store_op_t.delta of a PUT) is moved on by the sweep, never removes
 * early, and a record written with it sits next to another of the same index time. */
TEST(sweep_moves_an_early_index_entry) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  int64_t base = wv_store_now_ms() + HOUR_MS;
  wv_store_op_t ops[2] = {{.kind = WV_STORE_PUT_NX,
                           .db = WV_DB_TOKENS,
                           .key = "tok",
                           .val = "t",
                           .val_len = 1,
                           .expires_ms = base + 10},
                          {.kind = WV_STORE_PUT_NX,
                           .db = WV_DB_REQUESTS,
                           .key = "tok",
                           .val = "r",
                           .val_len = 1,
                           .expires_ms = base + 1000,
                           .delta = base + 10}};
  CHECK_OK(wv_store_apply(s, ops, 2, NULL));
  /* An early index time later than the expiry: indexed at the expiry. */
  wv_store_op_t late = {.kind = WV_STORE_PUT,
                        .db = WV_DB_TOKENS,
                        .key = "late",
                        .val = "l",
                        .val_len = 1,
                        .expires_ms = base + 20,
                        .delta = base + 5000};
  CHECK_OK(wv_store_apply(s, &late, 1, NULL));
  size_t removed = 0;
  char buf[16];
  CHECK_OK(wv_store_sweep(s, base + 10, 100, &removed));
  CHECK_EQ_INT(removed, 1); /* the token; the record's entry moved to base + 1000 */
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "tok", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_OK(get_str(s, WV_DB_REQUESTS, "tok", buf, sizeof buf));
  CHECK_OK(wv_store_sweep(s, base + 999, 100, &removed));
  CHECK_EQ_INT(removed, 1); /* "late", at its own expiry */
  CHECK_OK(get_str(s, WV_DB_REQUESTS, "tok", buf, sizeof buf));
  CHECK_OK(wv_store_sweep(s, base + 1000, 100, &removed));
  CHECK_EQ_INT(removed, 1);
  CHECK_EQ_INT(get_str(s, WV_DB_REQUESTS, "tok", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_OK(wv_store_sweep(s, INT64_MAX, 100, &removed));
  CHECK_EQ_INT(removed, 0); /* no entry left behind */
  fresh_free(&f);
}

TEST(sweeper_thread) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  CHECK_OK(wv_store_start_sweeper(s, 10));
  CHECK_EQ_INT(wv_store_start_sweeper(s, 10), WV_EEXISTS);
  int64_t now = wv_store_now_ms();
  char key[32];
  for (int i = 0; i < 50; i++) {
    key_of(key, sizeof key, i);
    CHECK_OK(wv_store_put(s, WV_DB_MANIFESTS, key, "m", 1, now + 5));
  }
  CHECK_OK(wv_store_put(s, WV_DB_MANIFESTS, "live", "m", 1, now + HOUR_MS));
  size_t removed = 1;
  for (int tries = 0; tries < 200; tries++) {
    usleep(10 * 1000);
    /* Sweeping "now" finds nothing left once the thread has done its job. */
    CHECK_OK(wv_store_sweep(s, wv_store_now_ms(), 1000, &removed));
    if (removed == 0)
      break;
  }
  CHECK_EQ_INT(removed, 0);
  char buf[8];
  CHECK_OK(get_str(s, WV_DB_MANIFESTS, "live", buf, sizeof buf));
  fresh_free(&f); /* stops the sweeper */
}

/* ---- concurrency and group commit ---------------------------------------- */

struct writer_arg {
  wv_store_t *s;
  int id, n, ok;
  atomic_int *nx_wins;
};

static void value_of(char *buf, size_t cap, int t, int i) {
  snprintf(buf, cap, "{\"t\":%d,\"i\":%d,\"pad\":\"%0*d\"}", t, i, (i % 50) + 1, i);
}

static void *writer_main(void *p) {
  struct writer_arg *a = p;
  char key[32], val[128];
  for (int i = 0; i < a->n; i++) {
    snprintf(key, sizeof key, "w%d-%d", a->id, i);
    value_of(val, sizeof val, a->id, i);
    if (wv_store_put(a->s, WV_DB_BUILDS, key, val, strlen(val), 0) == 0)
      a->ok++;
    /* A contended put-if-absent in the same batches: exactly one winner per round. */
    if (a->nx_wins && i % 10 == 0) {
      snprintf(key, sizeof key, "race-%d", i);
      int rc = wv_store_put_nx(a->s, WV_DB_BUILD_TARGETS, key, "x", 1, 0);
      if (rc == 0)
        atomic_fetch_add(a->nx_wins, 1);
      else if (rc != WV_EEXISTS)
        a->ok = -1000000;
    }
    int64_t v;
    if (wv_store_incr(a->s, WV_DB_COUNTERS, "shared", 1, 0, &v) != 0)
      a->ok = -1000000;
  }
  return NULL;
}

static double run_writers(wv_store_t *s, int threads, int per, int *ok, atomic_int *nx) {
  pthread_t th[16];
  struct writer_arg args[16];
  double t0 = now_sec();
  for (int t = 0; t < threads; t++) {
    args[t] = (struct writer_arg){s, t, per, 0, nx};
    pthread_create(&th[t], NULL, writer_main, &args[t]);
  }
  *ok = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    *ok += args[t].ok;
  }
  return now_sec() - t0;
}

TEST(concurrent_writers_all_acknowledged) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 200);
  CHECK(s);
  enum { THREADS = 8, PER = 150 };
  atomic_int nx = 0;
  int ok = 0;
  double secs = run_writers(s, THREADS, PER, &ok, &nx);
  CHECK_EQ_INT(ok, THREADS * PER);
  CHECK_EQ_INT(atomic_load(&nx), PER / 10);
  char *v;
  size_t len;
  char key[32], want[128];
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < PER; i++) {
      snprintf(key, sizeof key, "w%d-%d", t, i);
      value_of(want, sizeof want, t, i);
      CHECK_OK(wv_store_get(s, WV_DB_BUILDS, key, &v, &len, NULL));
      int same = len == strlen(want) && memcmp(v, want, len) == 0;
      free(v);
      CHECK(same);
    }
  CHECK_OK(wv_store_get(s, WV_DB_COUNTERS, "shared", &v, NULL, NULL));
  CHECK_EQ_INT(atoi(v), THREADS * PER);
  free(v);
  wv_store_stats_t st;
  wv_store_stats(s, &st);
  int total = THREADS * PER * 2 + THREADS * (PER / 10);
  printf("  %d threads: %d writes in %.2f s (%.0f writes/s), %llu commits, max batch %llu\n",
         THREADS, total, secs, total / secs, (unsigned long long)st.commits,
         (unsigned long long)st.max_batch);
  CHECK(st.commits < (uint64_t)total); /* batching happened */
  fresh_free(&f);
}

/*
 * The group-commit window is waited only after a batch of 3 or more: one writer alone (a low
 * write rate) is committed at once. With a 2 s window, three puts in a row would take 6 s if
 * each waited for it.
 */
TEST(window_skipped_for_a_lone_writer) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 2 * 1000 * 1000);
  CHECK(s);
  double t0 = now_sec();
  for (int i = 0; i < 3; i++) {
    char key[32];
    snprintf(key, sizeof key, "lone-%d", i);
    CHECK_OK(wv_store_put(s, WV_DB_MIRRORS, key, "{}", 2, 0));
  }
  double secs = now_sec() - t0;
  printf("  3 puts in a row with a 2 s window: %.3f s\n", secs);
  CHECK(secs < 2.0);
  fresh_free(&f);
}

/* One writer = one transaction per put; many writers share commits. Printed, not asserted. */
TEST(group_commit_throughput) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  char key[32];
  enum { N = 200 };
  double t0 = now_sec();
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "solo-%d", i);
    CHECK_OK(wv_store_put(s, WV_DB_MIRRORS, key, "{}", 2, 0));
  }
  double solo = now_sec() - t0;
  wv_store_stats_t st;
  wv_store_stats(s, &st);
  uint64_t c0 = st.commits;
  int ok = 0;
  double group = run_writers(s, 8, N / 8, &ok, NULL); /* N puts + N incrs */
  wv_store_stats(s, &st);
  printf("  1 thread: %.0f puts/s (1 commit each); 8 threads: %.0f writes/s in %llu commits\n",
         N / solo, 2 * N / group, (unsigned long long)(st.commits - c0));
  CHECK_EQ_INT(ok, N);
  fresh_free(&f);
}

struct async_count {
  atomic_int ok, failed, calls;
};

static void count_cb(void *arg, int rc, int64_t value) {
  struct async_count *c = arg;
  (void)value;
  atomic_fetch_add(rc == 0 ? &c->ok : &c->failed, 1);
  atomic_fetch_add(&c->calls, 1);
}

TEST(async_submit_one_failure_does_not_fail_batch) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 2000); /* a wide window: everything lands in few batches */
  CHECK(s);
  CHECK_OK(wv_store_put(s, WV_DB_COUNTERS, "notanumber", "x", 1, 0));
  static struct async_count c; /* static: see fresh_t */
  memset(&c, 0, sizeof c);
  char key[32];
  enum { N = 1000 };
  for (int i = 0; i < N; i++) {
    wv_store_op_t op = {
        .kind = WV_STORE_PUT, .db = WV_DB_SCANS, .key = key, .val = "{}", .val_len = 2};
    snprintf(key, sizeof key, "scan-%d", i);
    if (i % 100 == 50) { /* a bad op in the middle of a batch */
      op.kind = WV_STORE_INCR;
      op.db = WV_DB_COUNTERS;
      op.key = "notanumber";
      op.delta = 1;
    }
    CHECK_OK(wv_store_submit(s, &op, count_cb, &c));
  }
  wv_store_op_t bad = {.kind = WV_STORE_PUT, .db = WV_DB_SCANS, .key = ""};
  CHECK_EQ_INT(wv_store_submit(s, &bad, count_cb, &c), WV_EINVAL); /* cb never called */
  for (int i = 0; i < 500 && atomic_load(&c.calls) < N; i++)
    usleep(10 * 1000);
  CHECK_EQ_INT(atomic_load(&c.calls), N);
  CHECK_EQ_INT(atomic_load(&c.failed), N / 100);
  CHECK_EQ_INT(atomic_load(&c.ok), N - N / 100);
  char *v;
  CHECK_OK(wv_store_get(s, WV_DB_SCANS, "scan-49", &v, NULL, NULL));
  free(v);
  CHECK_OK(wv_store_get(s, WV_DB_SCANS, "scan-51", &v, NULL, NULL));
  free(v);
  wv_store_stats_t st;
  wv_store_stats(s, &st);
  CHECK(st.commits < N / 4); /* grouped (timing-tolerant bound) */
  fresh_free(&f);
}

/*
 * Two-op applies queued without waiting, in few batches: the ones on distinct
 * keys go straight into the batch (flat), a collision fails alone and writes
 * neither op, and one naming a key twice takes the nested path. flush returns
 * only after every callback queued before it ran.
 */
TEST(async_apply_all_or_nothing_in_batch) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 2000);
  CHECK(s);
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "taken", "x", 1, 0));
  static struct async_count c; /* static: see fresh_t */
  memset(&c, 0, sizeof c);
  enum { N = 300 };
  for (int i = 0; i < N; i++) {
    char k1[32], k2[32];
    snprintf(k1, sizeof k1, "t-%d", i);
    snprintf(k2, sizeof k2, "t-%d", i);
    wv_store_op_t ops[2] = {
        {.kind = WV_STORE_PUT_NX, .db = WV_DB_TOKENS, .key = k1, .val = "tok", .val_len = 3},
        {.kind = WV_STORE_PUT_NX, .db = WV_DB_REQUESTS, .key = k2, .val = "rec", .val_len = 3},
    };
    if (i % 50 == 7) { /* collides: neither op may land */
      ops[1].db = WV_DB_TOKENS;
      ops[1].key = "taken";
    } else if (i % 50 == 9) { /* the same key twice: applied in order, nested */
      ops[1].db = WV_DB_TOKENS;
      ops[1].kind = WV_STORE_PUT;
      ops[1].val = "second";
      ops[1].val_len = 6;
    }
    CHECK_OK(wv_store_submit_apply(s, ops, 2, count_cb, &c));
  }
  CHECK_OK(wv_store_flush(s));
  CHECK_EQ_INT(atomic_load(&c.calls), N);
  CHECK_EQ_INT(atomic_load(&c.failed), N / 50);
  char buf[32];
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "t-7", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "t-257", buf, sizeof buf), WV_ENOTFOUND);
  CHECK_OK(get_str(s, WV_DB_TOKENS, "taken", buf, sizeof buf));
  CHECK_EQ_STR(buf, "x");
  CHECK_OK(get_str(s, WV_DB_TOKENS, "t-8", buf, sizeof buf));
  CHECK_EQ_STR(buf, "tok");
  CHECK_OK(get_str(s, WV_DB_REQUESTS, "t-8", buf, sizeof buf));
  CHECK_EQ_STR(buf, "rec");
  CHECK_OK(get_str(s, WV_DB_TOKENS, "t-59", buf, sizeof buf));
  CHECK_EQ_STR(buf, "second");
  wv_store_stats_t st;
  wv_store_stats(s, &st);
  CHECK(st.commits < N / 4); /* grouped (timing-tolerant bound) */
  fresh_free(&f);
}

TEST(close_drains_pending) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 5000);
  CHECK(s);
  static struct async_count c; /* static: see fresh_t */
  memset(&c, 0, sizeof c);
  char key[32];
  for (int i = 0; i < 300; i++) {
    snprintf(key, sizeof key, "k%d", i);
    wv_store_op_t op = {
        .kind = WV_STORE_PUT, .db = WV_DB_MIRRORS, .key = key, .val = "1", .val_len = 1};
    CHECK_OK(wv_store_submit(s, &op, count_cb, &c));
  }
  wv_store_close(s);
  f.s = NULL;
  CHECK_EQ_INT(atomic_load(&c.ok), 300);
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  s = f.s;
  char *v;
  CHECK_OK(wv_store_get(s, WV_DB_MIRRORS, "k299", &v, NULL, NULL));
  free(v);
  fresh_free(&f);
}

static atomic_int cb_rc;

/* A completion callback (arg: the store) that tries a blocking write. */
static void blocking_in_cb(void *arg, int rc, int64_t value) {
  (void)rc;
  (void)value;
  atomic_store(&cb_rc, wv_store_put(arg, WV_DB_META, "x", "y", 1, 0));
}

TEST(blocking_call_from_callback_refused) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  atomic_store(&cb_rc, 1);
  wv_store_op_t op = {.kind = WV_STORE_DEL, .db = WV_DB_META, .key = "x"};
  CHECK_OK(wv_store_submit(s, &op, blocking_in_cb, s));
  for (int i = 0; i < 300 && atomic_load(&cb_rc) == 1; i++)
    usleep(5000);
  CHECK_EQ_INT(atomic_load(&cb_rc), WV_EBUSY); /* not a deadlock */
  fresh_free(&f);
}

TEST(map_grows_then_refuses_cleanly) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_OK(wv_store_open(&f.s, f.dir, 256 * 1024, 0));
  wv_store_t *s = f.s;
  char val[8192], key[32];
  memset(val, 'v', sizeof val);
  for (int i = 0; i < 200; i++) { /* 1.6 MB into a 256 KiB map */
    snprintf(key, sizeof key, "m%d", i);
    CHECK_OK(wv_store_put(s, WV_DB_MANIFESTS, key, val, sizeof val, 0));
  }
  wv_store_stats_t st;
  wv_store_stats(s, &st);
  CHECK(st.grows >= 2);
  /* At the ceiling a write fails with a clear error, and nothing crashes. */
  wv_store_set_map_max(s, st.map_size);
  int rc = 0, i = 200;
  for (; i < 2000 && rc == 0; i++) {
    snprintf(key, sizeof key, "m%d", i);
    rc = wv_store_put(s, WV_DB_MANIFESTS, key, val, sizeof val, 0);
  }
  CHECK_EQ_INT(rc, WV_ESTORE);
  char *v;
  size_t len;
  CHECK_OK(wv_store_get(s, WV_DB_MANIFESTS, "m0", &v, &len, NULL));
  free(v);
  CHECK_EQ_INT(len, sizeof val);
  /* Raising the ceiling lets the same write through. */
  wv_store_set_map_max(s, st.map_size * 4);
  CHECK_OK(wv_store_put(s, WV_DB_MANIFESTS, key, val, sizeof val, 0));
  fresh_free(&f);
}

/* Writes a raw value with no record header, behind the store's back. */
static int plant_corrupt(const char *dir, const char *dbname, const char *key) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  int rc = mdb_env_create(&env);
  mdb_env_set_maxdbs(env, 16);
  rc = rc ? rc : mdb_env_open(env, dir, 0, 0600);
  rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
  rc = rc ? rc : mdb_dbi_open(txn, dbname, 0, &dbi);
  MDB_val k = {strlen(key), (void *)key}, v = {3, "bad"};
  rc = rc ? rc : mdb_put(txn, dbi, &k, &v, 0);
  rc = rc ? rc : mdb_txn_commit(txn);
  mdb_env_close(env);
  return rc;
}

TEST(corrupt_record_fails_alone) {
  static fresh_t f;
  wv_store_t *s = open_fresh(&f, 0);
  CHECK(s);
  wv_store_close(s);
  f.s = NULL;
  CHECK_OK(plant_corrupt(f.dir, "builds", "broken"));
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 3000)); /* wide window: one batch */
  s = f.s;
  char *v;
  CHECK_EQ_INT(wv_store_get(s, WV_DB_BUILDS, "broken", &v, NULL, NULL), WV_ESTORE);
  static struct async_count c; /* static: see fresh_t */
  memset(&c, 0, sizeof c);
  char key[32];
  for (int i = 0; i < 20; i++) {
    snprintf(key, sizeof key, "ok-%d", i);
    wv_store_op_t op = {
        .kind = WV_STORE_PUT, .db = WV_DB_BUILDS, .key = key, .val = "1", .val_len = 1};
    if (i == 10)
      op.key = "broken"; /* fails mid-batch, after others were applied */
    CHECK_OK(wv_store_submit(s, &op, count_cb, &c));
  }
  wv_store_close(s); /* drains */
  f.s = NULL;
  CHECK_EQ_INT(atomic_load(&c.failed), 1);
  CHECK_EQ_INT(atomic_load(&c.ok), 19);
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  s = f.s;
  CHECK_OK(wv_store_get(s, WV_DB_BUILDS, "ok-19", &v, NULL, NULL));
  free(v);
  CHECK_OK(wv_store_get(s, WV_DB_BUILDS, "ok-0", &v, NULL, NULL));
  free(v);
  /* Deleting the bad record works, and then it can be written again. */
  CHECK_OK(wv_store_del(s, WV_DB_BUILDS, "broken"));
  CHECK_OK(wv_store_put(s, WV_DB_BUILDS, "broken", "fixed", 5, 0));
  fresh_free(&f);
}

WV_TESTS(T(put_get_del), T(expiry), T(snapshot_reads), T(counters), T(put_if_absent_and_apply),
         T(caps), T(reopen_persists), T(schema_version), T(sweep_uses_index),
         T(sweep_moves_an_early_index_entry), T(sweeper_thread),
         T(concurrent_writers_all_acknowledged), T(window_skipped_for_a_lone_writer),
         T(group_commit_throughput), T(async_submit_one_failure_does_not_fail_batch),
         T(async_apply_all_or_nothing_in_batch), T(close_drains_pending),
         T(blocking_call_from_callback_refused), T(map_grows_then_refuses_cleanly),
         T(corrupt_record_fails_alone))
