/*
 * The crash test: nothing acknowledged is lost, nothing partial is visible.
 *
 * A child process opens a store and a blob store in one directory and runs
 * several writer threads that write records and stream blobs without end.
 * After each acknowledged write (put returned 0, blob committed) a thread
 * writes one line to a pipe: "R <run> <thread> <seq>" or "B <run> <thread>
 * <seq> <digest>". The parent counts the lines and SIGKILLs the child in the
 * middle of the stream, then reopens the directory and checks that:
 *   - every acknowledged record is present with the value derived from its key,
 *   - every unacknowledged record that happens to be present is intact too,
 *   - every acknowledged blob is readable, has the right content and digest,
 *   - every file under blobs/sha256 hashes to its own name (nothing partial),
 *   - blobs/tmp (this instance's directory in it) is empty after open.
 * The same directory is reused for every run, each killed at another point,
 * so later runs also recover from a store that already crashed.
 */
#include "core/err.h"
#include "storage/cas.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define THREADS 4
#define MAX_SEQ 100000
#define MAX_BLOB 40000

/* ---- deterministic content ----------------------------------------------- */

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

static void record_key(char *buf, size_t cap, int run, int t, int seq) {
  snprintf(buf, cap, "run%d/t%d/%06d", run, t, seq);
}

/* The value is a function of the key: JSON with a filler of key-derived length. */
static size_t record_value(char *buf, size_t cap, const char *key) {
  uint64_t h = 1469598103934665603ULL;
  for (const char *p = key; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  int fill = (int)(mix(h) % 3000) + 1;
  int n = snprintf(buf, cap, "{\"key\":\"%s\",\"fill\":\"", key);
  for (int i = 0; i < fill && (size_t)n + 4 < cap; i++)
    buf[n++] = (char)('a' + (mix(h + (uint64_t)i) % 26));
  n += snprintf(buf + n, cap - (size_t)n, "\"}");
  return (size_t)n;
}

static size_t blob_content(unsigned char *buf, int run, int t, int seq) {
  uint64_t seed = ((uint64_t)run << 40) | ((uint64_t)t << 32) | (uint64_t)seq;
  size_t len = (size_t)(mix(seed) % MAX_BLOB) + 1;
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)mix(seed * 31 + i);
  return len;
}

/* ---- the child --------------------------------------------------------------- */

struct child_ctx {
  wv_store_t *store;
  wv_cas_t *cas;
  int run, t, fd;
};

static void ack(int fd, const char *line) {
  size_t n = strlen(line);
  if (write(fd, line, n) != (ssize_t)n) /* < PIPE_BUF: atomic between threads */
    _exit(3);
}

/* Streams one blob in three chunks; returns 0 and its digest once committed. */
static int write_blob(wv_cas_t *cas, const unsigned char *data, size_t len, char *digest) {
  wv_cas_writer_t *w;
  int rc = wv_cas_begin(cas, &w);
  if (rc)
    return rc;
  size_t third = len / 3;
  if ((rc = wv_cas_write(w, data, third)) || (rc = wv_cas_write(w, data + third, third)) ||
      (rc = wv_cas_write(w, data + 2 * third, len - 2 * third))) {
    wv_cas_abort(w);
    return rc;
  }
  return wv_cas_commit(w, NULL, digest);
}

static void *child_writer(void *p) {
  struct child_ctx *c = p;
  static __thread unsigned char blob[MAX_BLOB];
  char key[64], val[4096], line[160], digest[WV_CAS_DIGEST_LEN + 1];
  for (int seq = 0; seq < MAX_SEQ; seq++) {
    record_key(key, sizeof key, c->run, c->t, seq);
    size_t n = record_value(val, sizeof val, key);
    if (wv_store_put(c->store, WV_DB_BUILDS, key, val, n, 0) != 0)
      _exit(4);
    snprintf(line, sizeof line, "R %d %d %d\n", c->run, c->t, seq);
    ack(c->fd, line);
    if (seq % 3 == 0) {
      size_t len = blob_content(blob, c->run, c->t, seq);
      if (write_blob(c->cas, blob, len, digest) != 0)
        _exit(5);
      snprintf(line, sizeof line, "B %d %d %d %s\n", c->run, c->t, seq, digest);
      ack(c->fd, line);
    }
  }
  return NULL;
}

static void child_main(const char *dir, int run, int fd) {
  wv_store_t *s;
  wv_cas_t *cas;
  if (wv_store_open(&s, dir, 1 << 20, 200) != 0 || wv_cas_open(&cas, dir, 0) != 0)
    _exit(2);
  pthread_t th[THREADS];
  struct child_ctx ctx[THREADS];
  for (int t = 0; t < THREADS; t++) {
    ctx[t] = (struct child_ctx){s, cas, run, t, fd};
    pthread_create(&th[t], NULL, child_writer, &ctx[t]);
  }
  for (int t = 0; t < THREADS; t++)
    pthread_join(th[t], NULL);
  _exit(6); /* the parent should have killed us long before */
}

/* ---- the parent ------------------------------------------------------------ */

struct acks {
  int max_rec[8][THREADS]; /* per run and thread: highest acknowledged record seq, -1 none */
  int nblobs;
  struct {
    int run, t, seq;
    char digest[WV_CAS_DIGEST_LEN + 1];
  } blobs[20000];
};

/* Parses one ack line into acks; returns 0 or -1 for garbage. */
static int take_line(struct acks *acks, const char *line, int *recs) {
  int run, t, seq;
  char digest[80];
  if (sscanf(line, "R %d %d %d", &run, &t, &seq) == 3 && run < 8 && t < THREADS) {
    if (seq != acks->max_rec[run][t] + 1)
      return -1; /* a thread acknowledges in order */
    acks->max_rec[run][t] = seq;
    (*recs)++;
    return 0;
  }
  if (sscanf(line, "B %d %d %d %79s", &run, &t, &seq, digest) == 4 && acks->nblobs < 20000 &&
      wv_cas_digest_valid(digest)) {
    acks->blobs[acks->nblobs].run = run;
    acks->blobs[acks->nblobs].t = t;
    acks->blobs[acks->nblobs].seq = seq;
    memcpy(acks->blobs[acks->nblobs].digest, digest, sizeof acks->blobs[0].digest);
    acks->nblobs++;
    return 0;
  }
  return -1;
}

/*
 * Reads acks from fd; kills pid after kill_after records; then reads what
 * the child had written before it died. Returns the number of record acks,
 * or -1 on a malformed line.
 */
static int collect_acks(struct acks *acks, int fd, pid_t pid, int kill_after) {
  char buf[8192], line[256];
  size_t ll = 0;
  int recs = 0, killed = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        if (ll < sizeof line - 1)
          line[ll++] = buf[i];
        continue;
      }
      line[ll] = '\0';
      ll = 0;
      if (take_line(acks, line, &recs) != 0)
        return -1;
    }
    if (!killed && recs >= kill_after) {
      kill(pid, SIGKILL);
      killed = 1;
    }
  }
  if (!killed)
    kill(pid, SIGKILL);
  return ll == 0 ? recs : -1; /* a torn line would mean a torn ack */
}

static int record_ok(wv_store_t *s, int run, int t, int seq, int must_exist) {
  char key[64], want[4096], *got = NULL;
  size_t len = 0;
  record_key(key, sizeof key, run, t, seq);
  size_t wlen = record_value(want, sizeof want, key);
  int rc = wv_store_get(s, WV_DB_BUILDS, key, &got, &len, NULL);
  if (rc == WV_ENOTFOUND && !must_exist)
    return 1;
  int ok = rc == 0 && len == wlen && memcmp(got, want, len) == 0;
  if (!ok)
    fprintf(stderr, "  record %s: rc=%d len=%zu want %zu\n", key, rc, len, wlen);
  free(got);
  return ok;
}

/* SHA-256 of a file as "sha256:<hex>". */
static int hash_file(const char *path, char *out) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  unsigned char buf[65536], h[32];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    EVP_DigestUpdate(md, buf, n);
  unsigned int hl = 0;
  EVP_DigestFinal_ex(md, h, &hl);
  EVP_MD_CTX_free(md);
  fclose(f);
  strcpy(out, "sha256:");
  for (int i = 0; i < 32; i++)
    sprintf(out + 7 + 2 * i, "%02x", h[i]);
  return 0;
}

/* Every visible blob hashes to its name and sits in the right shard. Returns count or -1. */
static int check_blob_tree(const char *dir) {
  char shas[300], sub[600], file[900], d[80];
  snprintf(shas, sizeof shas, "%s/blobs/sha256", dir);
  DIR *top = opendir(shas);
  if (!top)
    return -1;
  int count = 0, bad = 0;
  struct dirent *e, *f;
  while ((e = readdir(top)) != NULL && !bad) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(sub, sizeof sub, "%s/%s", shas, e->d_name);
    DIR *sd = opendir(sub);
    if (!sd)
      return -1;
    while ((f = readdir(sd)) != NULL && !bad) {
      if (f->d_name[0] == '.')
        continue;
      snprintf(file, sizeof file, "%s/%s", sub, f->d_name);
      bad = hash_file(file, d) != 0 || strcmp(d + 7, f->d_name) != 0 ||
            strncmp(f->d_name, e->d_name, 2) != 0;
      if (bad)
        fprintf(stderr, "  partial or misplaced blob: %s\n", file);
      count++;
    }
    closedir(sd);
  }
  closedir(top);
  return bad ? -1 : count;
}

static int blob_ok(const struct acks *acks, wv_cas_t *cas, int i) {
  static unsigned char want[MAX_BLOB], got[MAX_BLOB];
  size_t wlen = blob_content(want, acks->blobs[i].run, acks->blobs[i].t, acks->blobs[i].seq);
  int fd;
  uint64_t size;
  if (wv_cas_open_blob(cas, acks->blobs[i].digest, &fd, &size) != 0)
    return 0;
  ssize_t n = size == wlen ? read(fd, got, sizeof got) : -1;
  close(fd);
  return n == (ssize_t)wlen && memcmp(got, want, wlen) == 0;
}

static int count_tmp(const char *dir) {
  char p[300];
  snprintf(p, sizeof p, "%s/blobs/tmp", dir);
  DIR *d = opendir(p);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) { /* files, and the files of the instance directories */
    if (e->d_name[0] == '.')
      continue;
    char sub[600];
    snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
    DIR *s = opendir(sub);
    if (!s) {
      n++;
      continue;
    }
    struct dirent *f;
    while ((f = readdir(s)) != NULL)
      n += f->d_name[0] != '.';
    closedir(s);
  }
  closedir(d);
  return n;
}

/* The test's directory and the acknowledgements read from its children, with the stores it
 * reopens after each kill; closed when the test returns (after a failed check too). */
typedef struct {
  char dir[256];
  struct acks acks;
  wv_store_t *s;
  wv_cas_t *cas;
} crashfx_t;

/* Closes the reopened stores (a no-op when closed). */
static void crashfx_close_stores(crashfx_t *f) {
  wv_cas_close(f->cas);
  wv_store_close(f->s);
  f->cas = NULL;
  f->s = NULL;
}

static void crashfx_free(crashfx_t *f) {
  crashfx_close_stores(f);
  tmpdir_remove(f->dir);
  free(f);
}

/* A fresh directory and no acknowledgements yet; handed to TEST_CLEANUP. NULL on failure. */
static crashfx_t *crashfx_open(void) {
  crashfx_t *f = calloc(1, sizeof *f);
  if (!f || !tmpdir_make(f->dir, "crash")) {
    free(f);
    return NULL;
  }
  TEST_CLEANUP(crashfx_free, f);
  for (int r = 0; r < 8; r++)
    for (int t = 0; t < THREADS; t++)
      f->acks.max_rec[r][t] = -1;
  return f;
}

TEST(kill_during_writes_loses_nothing_acknowledged) {
  static const int kill_points[] = {150, 400, 900, 60, 1300};
  enum { RUNS = sizeof kill_points / sizeof kill_points[0] };
  crashfx_t *f = crashfx_open();
  CHECK(f);
  for (int run = 0; run < RUNS; run++) {
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      child_main(f->dir, run, fds[1]);
    }
    close(fds[1]);
    int recs = collect_acks(&f->acks, fds[0], pid, kill_points[run]);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(recs >= 0);
    /* It must have died by our hand, mid-stream, not by its own error. */
    CHECK(WIFSIGNALED(status));
    CHECK_EQ_INT(WTERMSIG(status), SIGKILL);
    CHECK(recs >= kill_points[run]);
    int leftover = count_tmp(f->dir);

    CHECK_OK(wv_store_open(&f->s, f->dir, 1 << 20, 0));
    CHECK_OK(wv_cas_open(&f->cas, f->dir, 0));
    int tmp_after = count_tmp(f->dir), bad = 0, checked = 0;
    for (int r = 0; r <= run && !bad; r++)
      for (int t = 0; t < THREADS && !bad; t++) {
        int max = f->acks.max_rec[r][t];
        for (int seq = 0; seq <= max && !bad; seq++, checked++)
          bad = !record_ok(f->s, r, t, seq, 1);
        /* Past the last ack a record may or may not exist, but never torn. */
        for (int seq = max + 1; seq <= max + 20 && !bad; seq++)
          bad = !record_ok(f->s, r, t, seq, 0);
      }
    for (int i = 0; i < f->acks.nblobs && !bad; i++)
      bad = !blob_ok(&f->acks, f->cas, i);
    int visible = bad ? -1 : check_blob_tree(f->dir);
    printf("  run %d: killed after %d record acks (%d checked, %d blobs acked, %d visible, "
           "%d temp files left by the crash)\n",
           run, recs, checked, f->acks.nblobs, visible, leftover);
    crashfx_close_stores(f);
    CHECK_EQ_INT(tmp_after, 0);
    CHECK(!bad);
    CHECK(visible >= 0);
  }
}

WV_TESTS(T(kill_during_writes_loses_nothing_acknowledged))
