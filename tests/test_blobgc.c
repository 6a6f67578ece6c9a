/*
 * Unit tests for storage/blobgc: blobs referenced by live records stay, those
 * of expired or deleted records go, young blobs survive the grace period.
 */
#include "core/digest.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "storage/blobgc.h"
#include "storage/cas.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <sys/stat.h>

typedef struct {
  char dir[256];
  wv_store_t *s;
  wv_cas_t *c;
} env_t;

static void env_close(env_t *e);

/* Opens e's stores in a fresh temp dir and hands e to TEST_CLEANUP (so e must outlive the test:
 * tests declare theirs static). */
static int env_open(env_t *e) {
  char state[300];
  wv_log_set_level(WV_LOG_WARN);
  memset(e, 0, sizeof *e);
  if (!tmpdir_make(e->dir, "blobgc"))
    return -1;
  TEST_CLEANUP(env_close, e);
  snprintf(state, sizeof state, "%s/state", e->dir);
  if (wv_store_open(&e->s, state, 0, 0) || wv_cas_open(&e->c, e->dir, 0))
    return -1;
  return 0;
}

/* Closes the stores and removes the directory; once (then a no-op). */
static void env_close(env_t *e) {
  wv_cas_close(e->c);
  wv_store_close(e->s);
  e->c = NULL;
  e->s = NULL;
  if (e->dir[0])
    tmpdir_remove(e->dir);
  e->dir[0] = '\0';
}

static void gc_stop(wv_blobgc_t **g) {
  wv_blobgc_stop(*g);
  *g = NULL;
}

/* Stores "blob <i>" and writes its digest to d. */
static int put_blob(env_t *e, int i, char d[WV_CAS_DIGEST_LEN + 1]) {
  char body[32];
  int n = snprintf(body, sizeof body, "blob %d", i);
  return wv_cas_put(e->c, body, (size_t)n, NULL, d);
}

static int count_blobs(env_t *e, int n, char (*d)[WV_CAS_DIGEST_LEN + 1]) {
  int k = 0;
  for (int i = 0; i < n; i++)
    k += wv_cas_exists(e->c, d[i], NULL) == 0;
  return k;
}

TEST(unreferenced_and_expired_go_live_stay) {
  static env_t e;
  CHECK_OK(env_open(&e));
  char d[6][WV_CAS_DIGEST_LEN + 1];
  for (int i = 0; i < 6; i++)
    CHECK_OK(put_blob(&e, i, d[i]));
  int64_t now = wv_now_ms();
  char rec[400];
  /* 0: a live token's data: layer; 1: a token that expired; 2: nothing refers to it;
   * 3: a cache entry (in its key); 4: the embedded registry; 5: only a request record. */
  snprintf(rec, sizeof rec, "{\"cc\":{\"layers\":[{\"location\":\"cas:%s\"}]}}", d[0]);
  CHECK_OK(wv_store_put(e.s, WV_DB_TOKENS, "live", rec, strlen(rec), now + 3600000));
  snprintf(rec, sizeof rec, "{\"cc\":{\"layers\":[{\"location\":\"cas:%s\"}]}}", d[1]);
  CHECK_OK(wv_store_put(e.s, WV_DB_TOKENS, "gone", rec, strlen(rec), now + 1500));
  snprintf(rec, sizeof rec, "tok/blobs/%s", d[3]);
  CHECK_OK(wv_store_put(e.s, WV_DB_MANIFESTS, rec, "b", 1, now + 3600000));
  snprintf(rec, sizeof rec, "link/wave/build@%s", d[4]);
  CHECK_OK(wv_store_put(e.s, WV_DB_EMBEDDED, rec, "", 0, 0));
  snprintf(rec, sizeof rec, "{\"gzipDigest\":\"%s\"}", d[5]);
  CHECK_OK(wv_store_put(e.s, WV_DB_REQUESTS, "req", rec, strlen(rec), 0));
  wv_blobgc_stats_t st;
  /* Within the grace period nothing goes. */
  CHECK_OK(wv_blobgc_run(e.s, e.c, wv_now_ms(), 60000, &st));
  CHECK_EQ_INT(st.removed, 0);
  CHECK_EQ_INT(count_blobs(&e, 6, d), 6);
  /* Past it: the unreferenced and the request-record-only blobs go. */
  CHECK_OK(wv_blobgc_run(e.s, e.c, wv_now_ms() + 1000, 0, &st));
  CHECK_EQ_INT(st.removed, 2);
  CHECK_EQ_INT(st.bytes, 12);
  CHECK_EQ_INT(wv_cas_exists(e.c, d[2], NULL), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_cas_exists(e.c, d[5], NULL), WV_ENOTFOUND);
  CHECK_EQ_INT(count_blobs(&e, 6, d), 4);
  /* Once the token expired its layer goes too; the others stay. */
  usleep(1600 * 1000);
  CHECK_OK(wv_blobgc_run(e.s, e.c, wv_now_ms(), 0, &st));
  CHECK_EQ_INT(st.removed, 1);
  CHECK_EQ_INT(wv_cas_exists(e.c, d[1], NULL), WV_ENOTFOUND);
  CHECK_OK(wv_cas_exists(e.c, d[0], NULL));
  CHECK_OK(wv_cas_exists(e.c, d[3], NULL));
  CHECK_OK(wv_cas_exists(e.c, d[4], NULL));
  /* A blob committed again is young again, whatever its age before. */
  CHECK_OK(wv_store_del(e.s, WV_DB_TOKENS, "live"));
  CHECK_OK(put_blob(&e, 0, d[0]));
  CHECK_OK(wv_blobgc_run(e.s, e.c, wv_now_ms(), 60000, &st));
  CHECK_OK(wv_cas_exists(e.c, d[0], NULL));
  CHECK_OK(wv_blobgc_run(e.s, e.c, wv_now_ms() + 1000, 0, &st));
  CHECK_EQ_INT(wv_cas_exists(e.c, d[0], NULL), WV_ENOTFOUND);
  env_close(&e);
}

#define MANY 300

TEST(many_expired_leave_nothing) {
  static env_t e;
  CHECK_OK(env_open(&e));
  static char d[MANY][WV_CAS_DIGEST_LEN + 1], rec[MANY][200], key[MANY][16];
  for (int i = 0; i < MANY; i++)
    CHECK_OK(put_blob(&e, 1000 + i, d[i]));
  int64_t exp = wv_now_ms() + 1500;
  for (int i = 0; i < MANY; i += WV_STORE_APPLY_MAX) { /* group the token writes */
    wv_store_op_t ops[WV_STORE_APPLY_MAX];
    size_t n = 0;
    for (int j = i; j < MANY && n < WV_STORE_APPLY_MAX; j++, n++) {
      snprintf(rec[j], sizeof rec[j], "{\"location\":\"cas:%.71s\"}", d[j]);
      snprintf(key[j], sizeof key[j], "t%d", j);
      ops[n] = (wv_store_op_t){.kind = WV_STORE_PUT,
                               .db = WV_DB_TOKENS,
                               .key = key[j],
                               .val = rec[j],
                               .val_len = strlen(rec[j]),
                               .expires_ms = exp};
    }
    CHECK_OK(wv_store_apply(e.s, ops, n, NULL));
  }
  wv_blobgc_stats_t st;
  CHECK_OK(wv_blobgc_run(e.s, e.c, wv_now_ms() + 10, 0, &st));
  CHECK_EQ_INT(st.refs, MANY);
  CHECK_EQ_INT(st.removed, 0);
  CHECK_EQ_INT(count_blobs(&e, MANY, d), MANY);
  while (wv_now_ms() <= exp)
    usleep(50 * 1000);
  CHECK_OK(wv_blobgc_run(e.s, e.c, wv_now_ms(), 0, &st));
  CHECK_EQ_INT(st.removed, MANY);
  CHECK_EQ_INT(count_blobs(&e, MANY, d), 0);
  env_close(&e);
}

TEST(collector_thread_runs_and_stops) {
  static env_t e;
  CHECK_OK(env_open(&e));
  char d[WV_CAS_DIGEST_LEN + 1];
  CHECK_OK(put_blob(&e, 7, d));
  static wv_blobgc_t *g;
  g = NULL;
  TEST_CLEANUP(gc_stop, &g); /* before env_close: the thread uses the stores */
  CHECK_OK(wv_blobgc_start(e.s, e.c, 1000, 0, &g));
  for (int i = 0; i < 50 && wv_cas_exists(e.c, d, NULL) == 0; i++)
    usleep(100 * 1000);
  CHECK_EQ_INT(wv_cas_exists(e.c, d, NULL), WV_ENOTFOUND);
  gc_stop(&g);
  wv_blobgc_stop(NULL);
  env_close(&e);
}

WV_TESTS(T(unreferenced_and_expired_go_live_stay), T(many_expired_leave_nothing),
         T(collector_thread_runs_and_stops))
