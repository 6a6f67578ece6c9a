/* Unit tests for storage/blobcache: LRU by size, idle expiry, restart order, caps, threads. */
#include "core/digest.h"
#include "core/err.h"
#include "storage/blobcache.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#define ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define KIB 1024u
#define DAY_MS (24 * 3600 * 1000LL)

/* A test's cache directory and open cache, closed and removed when the test returns (so the
 * struct must outlive the test: tests declare theirs static). */
typedef struct {
  char root[256];
  wv_bcache_t *b;
} bcfx_t;

static void bc_close(bcfx_t *f) {
  wv_bcache_close(f->b);
  f->b = NULL;
}

/* Closes the cache and removes its directory; once (then a no-op). */
static void bcfx_free(bcfx_t *f) {
  bc_close(f);
  if (f->root[0])
    tmpdir_remove(f->root);
  f->root[0] = '\0';
}

/* A fresh directory for f; NULL when it cannot be made. */
static const char *bc_dir(bcfx_t *f) {
  memset(f, 0, sizeof *f);
  if (!tmpdir_make(f->root, "bcache"))
    return NULL;
  TEST_CLEANUP(bcfx_free, f);
  return f->root;
}

/* A blob of n bytes filled from seed, and its digest. */
static char *make_blob(size_t n, int seed, char digest[WV_DIGEST_STRLEN]) {
  char *p = malloc(n);
  for (size_t i = 0; i < n; i++)
    p[i] = (char)(seed * 31 + (int)(i % 251));
  wv_digest_of(p, n, digest);
  return p;
}

/* Opens f's cache (f->b, closed first when open); NULL on failure. */
static wv_bcache_t *open_at(bcfx_t *f, uint64_t max, int64_t idle_ms) {
  bc_close(f);
  return wv_bcache_open(&f->b, f->root, max, idle_ms) == 0 ? f->b : NULL;
}

/* Adds blob number seed of n bytes; its digest goes to d. */
static int add_blob(wv_bcache_t *b, size_t n, int seed, char d[WV_DIGEST_STRLEN]) {
  char *p = make_blob(n, seed, d);
  int rc = wv_bcache_put(b, p, n, d);
  free(p);
  return rc;
}

static int cached(wv_bcache_t *b, const char *d) {
  int fd;
  uint64_t size;
  int rc = wv_bcache_open_blob(b, d, &fd, &size);
  if (rc == 0)
    close(fd);
  return rc == 0;
}

static void set_mtime(const char *root, const char *d, int64_t age_ms) {
  char path[512];
  snprintf(path, sizeof path, "%.256s/blobs/sha256/%.2s/%.64s", root, d + 7, d + 7);
  struct timespec now, ts[2];
  clock_gettime(CLOCK_REALTIME, &now);
  ts[0] = ts[1] = (struct timespec){now.tv_sec - age_ms / 1000, 0};
  utimensat(AT_FDCWD, path, ts, 0);
}

TEST(put_open_and_stats) {
  static bcfx_t f;
  CHECK(bc_dir(&f));
  wv_bcache_t *b = open_at(&f, 1 << 20, DAY_MS);
  CHECK(b);
  CHECK_OK(wv_bcache_put(b, "abc", 3, ABC));
  int fd;
  uint64_t size = 0;
  char buf[8];
  CHECK_OK(wv_bcache_open_blob(b, ABC, &fd, &size));
  CHECK_EQ_INT(size, 3);
  CHECK_EQ_INT(read(fd, buf, sizeof buf), 3);
  CHECK(memcmp(buf, "abc", 3) == 0);
  close(fd);
  CHECK_OK(wv_bcache_exists(b, ABC, &size));
  CHECK_EQ_INT(wv_bcache_open_blob(b,
                                   "sha256:"
                                   "00",
                                   &fd, &size),
               WV_EINVAL);
  CHECK_EQ_INT(wv_bcache_put(b, "abc", 3, "sha256:nothex"), WV_EINVAL);
  char other[WV_DIGEST_STRLEN];
  wv_digest_of("x", 1, other);
  CHECK_EQ_INT(wv_bcache_open_blob(b, other, &fd, &size), WV_ENOTFOUND);
  wv_bcache_stats_t st;
  wv_bcache_stats(b, &st);
  CHECK_EQ_INT(st.blobs, 1);
  CHECK_EQ_INT(st.bytes, 3);
  CHECK_EQ_INT(st.hits, 1);
  CHECK_EQ_INT(st.misses, 1);
  CHECK_EQ_INT(st.added, 1);
  bc_close(&f);
  bcfx_free(&f);
}

/* Past max_bytes the least recently used blob goes, and a hit counts as a use. */
TEST(lru_by_size) {
  static bcfx_t f;
  CHECK(bc_dir(&f));
  wv_bcache_t *b = open_at(&f, 1 << 20, DAY_MS); /* 1 MiB: five 200 KiB blobs fit, six do not */
  CHECK(b);
  char d[7][WV_DIGEST_STRLEN];
  for (int i = 0; i < 5; i++)
    CHECK_OK(add_blob(b, 200 * KIB, i, d[i]));
  CHECK(cached(b, d[0])); /* 0 is now the most recently used; 1 is the oldest */
  CHECK_OK(add_blob(b, 200 * KIB, 5, d[5]));
  CHECK(!cached(b, d[1]));
  for (int i = 0; i < 6; i++)
    if (i != 1)
      CHECK(cached(b, d[i]));
  wv_bcache_stats_t st;
  wv_bcache_stats(b, &st);
  CHECK_EQ_INT(st.blobs, 5);
  CHECK_EQ_INT(st.bytes, 5 * 200 * KIB);
  CHECK_EQ_INT(st.evicted, 1);
  CHECK_EQ_INT(st.evicted_bytes, 200 * KIB);
  /* The evicted file is gone from disk, not just from the index. */
  bc_close(&f);
  b = open_at(&f, 1 << 20, DAY_MS);
  CHECK(b);
  CHECK(!cached(b, d[1]));
  wv_bcache_stats(b, &st);
  CHECK_EQ_INT(st.blobs, 5);
  bc_close(&f);
  bcfx_free(&f);
}

TEST(too_big_is_not_kept) {
  static bcfx_t f;
  CHECK(bc_dir(&f));
  wv_bcache_t *b = open_at(&f, 1 << 20, DAY_MS);
  CHECK(b);
  wv_bcache_writer_t *w = NULL;
  CHECK_EQ_INT(wv_bcache_begin(b, 300 * KIB, &w), WV_ETOOBIG); /* over a quarter */
  /* An unsized body stops being cached once it passes the quarter. */
  CHECK_OK(wv_bcache_begin(b, -1, &w));
  char *p = calloc(1, 200 * KIB);
  CHECK_OK(wv_bcache_write(w, p, 200 * KIB));
  CHECK_EQ_INT(wv_bcache_write(w, p, 200 * KIB), WV_ETOOBIG);
  wv_bcache_abort(w);
  free(p);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s/blobs/tmp", f.root);
  DIR *dir = opendir(tmp);
  CHECK(dir);
  int files = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) { /* blobs/tmp/<instance>/<file> */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/%s", tmp, e->d_name);
    DIR *s = e->d_name[0] != '.' ? opendir(sub) : NULL;
    files += e->d_name[0] != '.' && !s;
    for (struct dirent *de; s && (de = readdir(s)) != NULL;)
      files += de->d_name[0] != '.';
    if (s)
      closedir(s);
  }
  closedir(dir);
  CHECK_EQ_INT(files, 0);
  wv_bcache_stats_t st;
  wv_bcache_stats(b, &st);
  CHECK_EQ_INT(st.skipped, 2);
  CHECK_EQ_INT(st.blobs, 0);
  bc_close(&f);
  bcfx_free(&f);
}

/* A restart keeps the use order (file mtimes) and drops blobs idle too long. */
TEST(reopen_order_and_idle) {
  static bcfx_t f;
  CHECK(bc_dir(&f));
  wv_bcache_t *b = open_at(&f, 1 << 20, DAY_MS);
  CHECK(b);
  char d[4][WV_DIGEST_STRLEN];
  for (int i = 0; i < 4; i++)
    CHECK_OK(add_blob(b, 100 * KIB, i, d[i]));
  bc_close(&f);
  set_mtime(f.root, d[0], 3600 * 1000LL);      /* used an hour ago */
  set_mtime(f.root, d[1], 10 * 3600 * 1000LL); /* ten hours ago: the oldest within a day */
  set_mtime(f.root, d[2], 2 * DAY_MS);         /* idle longer than a day */
  set_mtime(f.root, d[3], 0);
  /* 250 KiB holds two of the three survivors: the oldest (d[1]) goes. */
  b = open_at(&f, 250 * KIB, DAY_MS);
  CHECK(b);
  CHECK(!cached(b, d[2]));
  CHECK(!cached(b, d[1]));
  CHECK(cached(b, d[0]));
  CHECK(cached(b, d[3]));
  bc_close(&f);
  bcfx_free(&f);
}

TEST(bad_open_arguments) {
  static bcfx_t f;
  CHECK(bc_dir(&f));
  wv_bcache_t *b = NULL;
  CHECK_EQ_INT(wv_bcache_open(&b, f.root, 0, DAY_MS), WV_EINVAL);
  CHECK_EQ_INT(wv_bcache_open(&b, f.root, 1 << 20, 0), WV_EINVAL);
  CHECK_EQ_INT(wv_bcache_open(&b, "", 1 << 20, DAY_MS), WV_EINVAL);
  wv_bcache_close(NULL);
  wv_bcache_abort(NULL);
  bcfx_free(&f);
}

typedef struct {
  wv_bcache_t *b;
  int id;
  int failures;
} worker_t;

static void *hammer(void *arg) {
  worker_t *w = arg;
  char d[WV_DIGEST_STRLEN];
  for (int i = 0; i < 60; i++) {
    int seed = (w->id * 7 + i) % 20; /* threads share some blobs */
    if (add_blob(w->b, 16 * KIB, seed, d) != 0)
      w->failures++;
    int fd;
    uint64_t size;
    int rc = wv_bcache_open_blob(w->b, d, &fd, &size);
    if (rc == 0) {
      if (size != 16 * KIB)
        w->failures++;
      close(fd);
    } else if (rc != WV_ENOTFOUND) { /* evicted by another thread is fine */
      w->failures++;
    }
  }
  return NULL;
}

/* Concurrent puts, reads and evictions keep the accounting exact (run under TSan too). */
TEST(threads) {
  static bcfx_t f;
  CHECK(bc_dir(&f));
  wv_bcache_t *b = open_at(&f, 256 * KIB, DAY_MS); /* holds 16 of the 20 blobs */
  CHECK(b);
  pthread_t t[4];
  worker_t w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker_t){b, i, 0};
    pthread_create(&t[i], NULL, hammer, &w[i]);
  }
  for (int i = 0; i < 4; i++) /* all joined before any check can return */
    pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++)
    CHECK_EQ_INT(w[i].failures, 0);
  wv_bcache_stats_t st;
  wv_bcache_stats(b, &st);
  CHECK(st.bytes <= 256 * KIB);
  CHECK_EQ_INT(st.bytes, st.blobs * 16 * KIB);
  bc_close(&f);
  /* What the index said is what is on disk. */
  b = open_at(&f, 256 * KIB, DAY_MS);
  CHECK(b);
  wv_bcache_stats_t st2;
  wv_bcache_stats(b, &st2);
  CHECK(st2.blobs <= st.blobs); /* a re-add racing an eviction can lose the file, never add one */
  CHECK(st2.bytes <= 256 * KIB);
  bc_close(&f);
  bcfx_free(&f);
}

WV_TESTS(T(put_open_and_stats), T(lru_by_size), T(too_big_is_not_kept), T(reopen_order_and_idle),
         T(bad_open_arguments), T(threads))
