/*
 * bench/fsync-lat.c — this disk's fdatasync latency alone, the floor under every durable
 * write of waved's store (docs/benchmarks.md, "Issue 15, 2026-12-07").
 *
 *   fsync-lat DIR [COUNT [PAGES [RATE [MODE]]]]
 *
 * Creates DIR/fsync-lat.tmp (64 MiB, written out and synced first) and, COUNT times (default 2000,
 * at most 1,000,000), does what one LMDB commit of a lone container request does to its data file:
 * PAGES (default 10, 1..256) 4 KiB pwrites at scattered offsets of a 64 MiB file, an fdatasync, one
 * 4 KiB pwrite (the meta page) and a second fdatasync. RATE (default 1000, 1..100000) commits per
 * second are paced on CLOCK_MONOTONIC (0 = back to back). MODE "grow" writes one of the PAGES past
 * the end of the file instead (the file grows a page per commit, as LMDB's data file does while the
 * store grows: ext4 then commits its journal in every fdatasync). MODE "journal" is a commit with
 * the store's journal (storage.journal, storage/store_journal.c): a thread writes one 4 KiB record
 * into DIR/fsync-lat.jn (8 MiB, written out first) and fdatasyncs it while the main thread
 * fdatasyncs the data pages; the meta page is then written without a flush, and the commit ends
 * when both flushes are done ("fdatasync 2" is then the journal's pwrite + fdatasync). Prints
 * p50/p90/p99/p99.9/max of the pwrites, of each fdatasync and of the whole commit, in µs. The
 * files are removed at the end.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (64u << 20)
#define PAGE 4096u

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void report(const char *what, int64_t *v, size_t n) {
  qsort(v, n, sizeof *v, cmp64);
  size_t p999 = n * 999 / 1000;
  printf("%-12s p50 %7.1f  p90 %7.1f  p99 %7.1f  p99.9 %7.1f  max %7.1f us\n", what, v[n / 2] / 1e3,
         v[n * 9 / 10] / 1e3, v[n * 99 / 100] / 1e3, v[p999 < n ? p999 : n - 1] / 1e3,
         v[n - 1] / 1e3);
}

/* The journal thread of MODE journal: one record per go, timed. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int fd, go, done;
  off_t off;
  int64_t ns;
} jn = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, 0, 0, 0};

static void *jn_main(void *arg) {
  static unsigned char rec[PAGE];
  memset(rec, 0x5a, sizeof rec);
  (void)arg;
  pthread_mutex_lock(&jn.mu);
  for (;;) {
    while (!jn.go)
      pthread_cond_wait(&jn.cv, &jn.mu);
    if (jn.go < 0)
      break;
    jn.go = 0;
    off_t off = jn.off;
    pthread_mutex_unlock(&jn.mu);
    int64_t t0 = now_ns();
    if (pwrite(jn.fd, rec, PAGE, off) != PAGE || fdatasync(jn.fd) != 0)
      perror("journal"), exit(1);
    int64_t t1 = now_ns();
    pthread_mutex_lock(&jn.mu);
    jn.ns = t1 - t0;
    jn.done = 1;
    pthread_cond_broadcast(&jn.cv);
  }
  pthread_mutex_unlock(&jn.mu);
  return NULL;
}

static long arg(int argc, char **argv, int i, long def, long lo, long hi) {
  if (argc <= i)
    return def;
  char *end;
  long x = strtol(argv[i], &end, 10);
  if (*end || x < lo || x > hi) {
    fprintf(stderr, "fsync-lat: argument %d must be %ld..%ld\n", i, lo, hi);
    exit(2);
  }
  return x;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 6) {
    fprintf(stderr, "usage: fsync-lat DIR [COUNT [PAGES [RATE [filled|grow|journal]]]]\n");
    return 2;
  }
  size_t count = (size_t)arg(argc, argv, 2, 2000, 10, 1000000);
  long pages = arg(argc, argv, 3, 10, 1, 256);
  long rate = arg(argc, argv, 4, 1000, 0, 100000);
  int grow = argc > 5 && strcmp(argv[5], "grow") == 0;
  int journal = argc > 5 && strcmp(argv[5], "journal") == 0;
  if (argc > 5 && !grow && !journal && strcmp(argv[5], "filled") != 0) {
    fprintf(stderr, "fsync-lat: MODE is filled, grow or journal\n");
    return 2;
  }
  char jpath[4096];
  pthread_t jt;
  if (journal) {
    static unsigned char zero[PAGE];
    snprintf(jpath, sizeof jpath, "%s/fsync-lat.jn", argv[1]);
    jn.fd = open(jpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (jn.fd < 0)
      return perror(jpath), 1;
    for (off_t off = 0; off < (off_t)(8u << 20); off += PAGE)
      if (pwrite(jn.fd, zero, PAGE, off) != PAGE)
        return perror("pwrite"), 1;
    if (fsync(jn.fd) != 0 || pthread_create(&jt, NULL, jn_main, NULL) != 0)
      return perror("journal"), 1;
  }
  off_t end = FILE_BYTES;
  char path[4096];
  if (snprintf(path, sizeof path, "%s/fsync-lat.tmp", argv[1]) >= (int)sizeof path)
    return 2;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) {
    fprintf(stderr, "fsync-lat: %s: %s\n", path, strerror(errno));
    return 1;
  }
  int64_t *w = malloc(count * sizeof *w), *s1 = malloc(count * sizeof *s1),
          *s2 = malloc(count * sizeof *s2), *all = malloc(count * sizeof *all);
  static unsigned char buf[PAGE];
  if (!w || !s1 || !s2 || !all)
    return 1;
  /* Written out first, as LMDB's pages are once used: a write into a hole or an unwritten
   * extent would add a journal commit to every fdatasync that LMDB's steady state does not pay. */
  for (off_t off = 0; off < (off_t)FILE_BYTES; off += PAGE)
    if (pwrite(fd, buf, PAGE, off) != PAGE)
      return perror("pwrite"), 1;
  if (fsync(fd) != 0)
    return perror("fsync"), 1;
  memset(buf, 0xa5, sizeof buf);
  uint64_t seed = (uint64_t)now_ns() | 1;
  int64_t period = rate ? 1000000000 / rate : 0, next = now_ns();
  for (size_t i = 0; i < count; i++) {
    if (period) {
      next += period;
      struct timespec ts = {next / 1000000000, next % 1000000000};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    }
    int64_t t0 = now_ns();
    for (long p = 0; p < pages; p++) {
      seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift64 */
      off_t off = (off_t)(2 + seed % (FILE_BYTES / PAGE - 2)) * PAGE;
      if (grow && p == 0)
        off = end, end += PAGE;
      if (pwrite(fd, buf, PAGE, off) != PAGE)
        return perror("pwrite"), 1;
    }
    int64_t t1 = now_ns();
    if (journal) {
      pthread_mutex_lock(&jn.mu);
      jn.off = (off_t)(1 + i % 2047) * PAGE;
      jn.go = 1;
      jn.done = 0;
      pthread_cond_signal(&jn.cv);
      pthread_mutex_unlock(&jn.mu);
    }
    if (fdatasync(fd) != 0)
      return perror("fdatasync"), 1;
    int64_t t2 = now_ns();
    if (pwrite(fd, buf, PAGE, (off_t)(i & 1) * PAGE) != PAGE) /* the two meta pages */
      return perror("pwrite"), 1;
    if (journal) {
      pthread_mutex_lock(&jn.mu);
      while (!jn.done)
        pthread_cond_wait(&jn.cv, &jn.mu);
      s2[i] = jn.ns;
      pthread_mutex_unlock(&jn.mu);
    } else if (fdatasync(fd) != 0) {
      return perror("fdatasync"), 1;
    }
    int64_t t3 = now_ns();
    w[i] = t1 - t0, s1[i] = t2 - t1, all[i] = t3 - t0;
    if (!journal)
      s2[i] = t3 - t2;
  }
  printf("# %zu commits of %ld pages + meta, %ld/s, %s, %s\n", count, pages, rate,
         grow      ? "one page past the end (grow)"
         : journal ? "meta unsynced, journal page flushed in parallel (journal)"
                   : "inside the written file (filled)",
         argv[1]);
  report("pwrites", w, count);
  report("fdatasync 1", s1, count);
  report(journal ? "journal" : "fdatasync 2", s2, count);
  report("commit", all, count);
  close(fd);
  unlink(path);
  if (journal) {
    pthread_mutex_lock(&jn.mu);
    jn.go = -1;
    pthread_cond_signal(&jn.cv);
    pthread_mutex_unlock(&jn.mu);
    pthread_join(jt, NULL);
    close(jn.fd);
    unlink(jpath);
  }
  return 0;
}
