/*
 * Unit tests for storage/store_journal.c: the store's write-ahead journal. A power loss is
 * played by a forked child that commits and _exits without closing, and by writing back the
 * two meta pages of data.mdb as they were before its last commit: LMDB then says the last
 * transaction never happened (its pages are unreachable; the tree before it is intact, as the
 * pages it freed are not reused before two more commits), which is what a power loss does to
 * a commit whose meta page no flush covered.
 */
#include "core/err.h"
#include "storage/store.h"
#include "storage/store_int.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOUR_MS (3600 * 1000LL)
#define META_BYTES 8192 /* LMDB's two meta pages (4 KiB pages) */

typedef struct {
  char dir[256];
  wv_store_t *s;
} fresh_t;

static void fresh_free(fresh_t *f) {
  if (f->s)
    wv_store_close(f->s);
  f->s = NULL;
  if (f->dir[0]) {
    char p[300];
    static const char *const extra[] = {"meta.save", "journal", "copy/data.mdb", "copy/lock.mdb"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
      snprintf(p, sizeof p, "%s/%s", f->dir, extra[i]);
      unlink(p);
    }
    snprintf(p, sizeof p, "%s/copy", f->dir);
    rmdir(p);
    tmpdir_remove(f->dir);
  }
  f->dir[0] = '\0';
}

static const char *fresh_dir(fresh_t *f) {
  memset(f, 0, sizeof *f);
  if (!tmpdir_make(f->dir, "journal"))
    return NULL;
  TEST_CLEANUP(fresh_free, f);
  return f->dir;
}

static int copy_bytes(const char *from, const char *to, size_t n, bool trunc) {
  int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0600);
  int rc = in < 0 || out < 0 ? -1 : 0;
  char buf[65536];
  while (!rc && n) {
    ssize_t r = read(in, buf, n < sizeof buf ? n : sizeof buf);
    if (r <= 0)
      break;
    rc = write(out, buf, (size_t)r) == r ? 0 : -1;
    n -= (size_t)r;
  }
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  return rc;
}

enum crash_mode {
  CRASH_PLAIN,      /* B journaled, then the power loss */
  CRASH_COPY,       /* also a compacting copy of the store (a backup) taken after A */
  CRASH_FAIL_B,     /* B's commit fails after its record was handed over */
  CRASH_NO_JOURNAL, /* storage.journal: false */
};

/*
 * In a child: opens the store in dir, commits A (synced), saves the meta pages to
 * dir/meta.save, commits B (two records, one with an expiry, and A's deletion), and _exits.
 * Returns the child's exit status (0 = it did all that).
 */
/* Syncs s fully and saves its meta pages as they are now: the state a later lose_power()
 * puts back. 0 or -1. */
static int save_meta(wv_store_t *s, const char *dir) {
  char data[300], save[300];
  snprintf(data, sizeof data, "%s/data.mdb", dir);
  snprintf(save, sizeof save, "%s/meta.save", dir);
  return mdb_env_sync(s->env, 1) || copy_bytes(data, save, META_BYTES, true) ? -1 : 0;
}

static int crash_child(const char *dir, enum crash_mode mode) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    wv_store_t *s;
    char copy[300];
    snprintf(copy, sizeof copy, "%s/copy", dir);
    if (wv_store_open_journal(&s, dir, 0, 0, mode != CRASH_NO_JOURNAL))
      _exit(2);
    if (wv_store_put(s, WV_DB_TOKENS, "a", "A", 1, 0) ||
        wv_store_put(s, WV_DB_TOKENS, "gone", "G", 1, 0))
      _exit(3);
    if (save_meta(s, dir))
      _exit(4);
    if (mode == CRASH_COPY && (mkdir(copy, 0700) || mdb_env_copy2(s->env, copy, MDB_CP_COMPACT)))
      _exit(5);
    wv_store_op_t b[] = {
        {WV_STORE_PUT, WV_DB_TOKENS, "b1", "B1", 2, wv_store_now_ms() + HOUR_MS, 0},
        {WV_STORE_PUT, WV_DB_REQUESTS, "b2", "B2", 2, 0, 0},
        {WV_STORE_DEL, WV_DB_TOKENS, "gone", NULL, 0, 0, 0},
    };
    if (mode == CRASH_FAIL_B)
      atomic_store(&wv__jn_fail_commit, 1);
    int rc = wv_store_apply(s, b, 3, NULL);
    if (mode == CRASH_FAIL_B ? rc == 0 : rc != 0)
      _exit(6);
    _exit(0); /* no close: the journal's epoch stays, nothing more is synced */
  }
  int st = 0;
  if (waitpid(pid, &st, 0) != pid)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The power loss: the meta pages as they were before B. */
static int lose_power(const char *dir) {
  char data[300], save[300];
  snprintf(data, sizeof data, "%s/data.mdb", dir);
  snprintf(save, sizeof save, "%s/meta.save", dir);
  return copy_bytes(save, data, META_BYTES, false);
}

static bool has(wv_store_t *s, wv_db_t db, const char *key) {
  char *v = NULL;
  int rc = wv_store_get(s, db, key, &v, NULL, NULL);
  free(v);
  return rc == 0;
}

static uint64_t replayed(wv_store_t *s) {
  wv_store_stats_t st;
  wv_store_stats(s, &st);
  return st.journal_replayed;
}

/* Offset of the journal record with the highest seq (the last one written), or -1. */
static long last_record(const char *dir) {
  char p[300];
  snprintf(p, sizeof p, "%s/journal", dir);
  int fd = open(p, O_RDONLY);
  if (fd < 0)
    return -1;
  long best = -1;
  uint64_t best_seq = 0;
  unsigned char h[32];
  for (long off = 4096; pread(fd, h, sizeof h, off) == (ssize_t)sizeof h; off += 4096) {
    if (memcmp(h, "WVJR", 4) != 0)
      continue;
    uint64_t seq = get_be64(h + 24);
    if (seq > best_seq) {
      best_seq = seq;
      best = off;
    }
  }
  close(fd);
  return best;
}

/* (a) The transaction the power loss undid is replayed from the journal at open. */
TEST(replay_after_power_loss) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_EQ_INT(crash_child(f.dir, CRASH_PLAIN), 0);
  CHECK_OK(lose_power(f.dir));
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_TOKENS, "a"));
  CHECK(has(f.s, WV_DB_TOKENS, "b1"));
  CHECK(has(f.s, WV_DB_REQUESTS, "b2"));
  CHECK(!has(f.s, WV_DB_TOKENS, "gone"));
  CHECK_EQ_INT(replayed(f.s), 1);
  /* The replayed expiry-index entry is there: sweeping the future removes b1. */
  size_t removed = 0;
  CHECK_OK(wv_store_sweep(f.s, wv_store_now_ms() + 2 * HOUR_MS, 100, &removed));
  CHECK_EQ_INT(removed, 1);
  /* And the store goes on: writes, a clean close, a reopen that replays nothing. */
  CHECK_OK(wv_store_put(f.s, WV_DB_TOKENS, "c", "C", 1, 0));
  wv_store_close(f.s);
  f.s = NULL;
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_TOKENS, "c"));
  CHECK(has(f.s, WV_DB_REQUESTS, "b2"));
  CHECK_EQ_INT(replayed(f.s), 0);
  fresh_free(&f);
}

/* (b) A damaged record is not applied; the store opens as LMDB left it. */
TEST(damaged_record_not_replayed) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_EQ_INT(crash_child(f.dir, CRASH_PLAIN), 0);
  CHECK_OK(lose_power(f.dir));
  long off = last_record(f.dir);
  CHECK(off > 0);
  char p[300];
  snprintf(p, sizeof p, "%s/journal", f.dir);
  int fd = open(p, O_RDWR);
  CHECK(fd >= 0);
  unsigned char c;
  CHECK_EQ_INT(pread(fd, &c, 1, off + JN_REC_HDR + 12), 1);
  c ^= 0x55;
  CHECK_EQ_INT(pwrite(fd, &c, 1, off + JN_REC_HDR + 12), 1);
  close(fd);
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_TOKENS, "a"));
  CHECK(has(f.s, WV_DB_TOKENS, "gone"));
  CHECK(!has(f.s, WV_DB_TOKENS, "b1"));
  CHECK(!has(f.s, WV_DB_REQUESTS, "b2"));
  CHECK_EQ_INT(replayed(f.s), 0);
  fresh_free(&f);
}

/* (c) A data.mdb of another lineage (a backup taken before B, restored) replays nothing. */
TEST(other_lineage_not_replayed) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_EQ_INT(crash_child(f.dir, CRASH_COPY), 0);
  char from[300], to[300];
  snprintf(from, sizeof from, "%s/copy/data.mdb", f.dir);
  snprintf(to, sizeof to, "%s/data.mdb", f.dir);
  CHECK_OK(rename(from, to));
  snprintf(to, sizeof to, "%s/lock.mdb", f.dir);
  unlink(to);
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_TOKENS, "a"));
  CHECK(has(f.s, WV_DB_TOKENS, "gone"));
  CHECK(!has(f.s, WV_DB_TOKENS, "b1"));
  CHECK_EQ_INT(replayed(f.s), 0);
  fresh_free(&f);
}

/* (d) The record of a commit that failed (its clients were told so) is never replayed. */
TEST(failed_commit_not_replayed) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_EQ_INT(crash_child(f.dir, CRASH_FAIL_B), 0);
  CHECK(last_record(f.dir) > 0); /* A's record at least */
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_TOKENS, "a"));
  CHECK(!has(f.s, WV_DB_TOKENS, "b1"));
  CHECK(has(f.s, WV_DB_TOKENS, "gone"));
  CHECK_EQ_INT(replayed(f.s), 0);
  fresh_free(&f);
}

/* (e) storage.journal: false: no journal file, LMDB's own durable commits, nothing to replay. */
TEST(journal_off) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_EQ_INT(crash_child(f.dir, CRASH_NO_JOURNAL), 0);
  char p[300];
  struct stat st;
  snprintf(p, sizeof p, "%s/journal", f.dir);
  CHECK(stat(p, &st) != 0);
  CHECK_OK(lose_power(f.dir));
  CHECK_OK(wv_store_open_journal(&f.s, f.dir, 0, 0, false));
  CHECK(has(f.s, WV_DB_TOKENS, "a"));
  CHECK(!has(f.s, WV_DB_TOKENS, "b1")); /* what the played power loss undid stays undone */
  CHECK_OK(wv_store_put(f.s, WV_DB_TOKENS, "c", "C", 1, 0));
  wv_store_stats_t ss;
  wv_store_stats(f.s, &ss);
  CHECK_EQ_INT(ss.journal_records, 0);
  CHECK_EQ_INT(ss.journal_replayed, 0);
  CHECK(stat(p, &st) != 0);
  fresh_free(&f);
}

/* storage.journal: false after a crash with it on: what the journal holds is still replayed, and
 * the journal is retired (its epoch zeroed, no record written after). */
TEST(journal_off_replays_what_was_left) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_EQ_INT(crash_child(f.dir, CRASH_PLAIN), 0);
  CHECK_OK(lose_power(f.dir));
  long last = last_record(f.dir);
  CHECK_OK(wv_store_open_journal(&f.s, f.dir, 0, 0, false));
  CHECK(has(f.s, WV_DB_TOKENS, "b1"));
  CHECK_EQ_INT(replayed(f.s), 1);
  CHECK_OK(wv_store_put(f.s, WV_DB_TOKENS, "c", "C", 1, 0));
  wv_store_stats_t ss;
  wv_store_stats(f.s, &ss);
  CHECK_EQ_INT(ss.journal_records, 0);
  wv_store_close(f.s);
  f.s = NULL;
  CHECK_EQ_INT(last_record(f.dir), last);
  char p[300];
  snprintf(p, sizeof p, "%s/journal", f.dir);
  int fd = open(p, O_RDONLY);
  CHECK(fd >= 0);
  unsigned char h[16];
  CHECK_EQ_INT(pread(fd, h, sizeof h, 0), 16);
  close(fd);
  CHECK_EQ_INT(get_be64(h + 8), 0);
  CHECK_OK(wv_store_open_journal(&f.s, f.dir, 0, 0, false));
  CHECK(has(f.s, WV_DB_TOKENS, "c"));
  CHECK_EQ_INT(replayed(f.s), 0);
  fresh_free(&f);
}

/* (f) A clean close retires the epoch: the reopen replays nothing, even with records left. */
TEST(clean_close_replays_nothing) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK_OK(wv_store_put(f.s, WV_DB_TOKENS, "a", "A", 1, 0));
  CHECK_OK(wv_store_put(f.s, WV_DB_TOKENS, "b", "B", 1, 0));
  wv_store_stats_t ss;
  wv_store_stats(f.s, &ss);
  CHECK_EQ_INT(ss.journal_records, 2);
  CHECK(ss.journal_bytes >= 2 * 4096);
  wv_store_close(f.s);
  f.s = NULL;
  char p[300];
  snprintf(p, sizeof p, "%s/journal", f.dir);
  int fd = open(p, O_RDONLY);
  CHECK(fd >= 0);
  unsigned char h[16];
  CHECK_EQ_INT(pread(fd, h, sizeof h, 0), 16);
  close(fd);
  CHECK(memcmp(h, "WVJH", 4) == 0);
  CHECK_EQ_INT(get_be64(h + 8), 0); /* epoch 0: nothing to replay */
  CHECK(last_record(f.dir) > 0);
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_TOKENS, "b"));
  CHECK_EQ_INT(replayed(f.s), 0);
  fresh_free(&f);
}

/* An aborted child transaction leaves nothing in the redo record: the replayed batch holds the
 * batch's other writes only. */
static atomic_int cb_ok, cb_failed, hold, held;
static void count_cb(void *arg, int rc, int64_t value) {
  (void)arg, (void)value;
  atomic_fetch_add(rc == 0 ? &cb_ok : &cb_failed, 1);
}
/* Runs on the committer: holds it until the test queued the next batch. */
static void hold_cb(void *arg, int rc, int64_t value) {
  (void)arg, (void)rc, (void)value;
  atomic_store(&held, 1);
  while (atomic_load(&hold))
    usleep(1000);
}

TEST(redo_skips_rolled_back_requests) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    wv_store_t *s;
    if (wv_store_open(&s, f.dir, 0, 0) || wv_store_put(s, WV_DB_COUNTERS, "n", "x", 1, 0))
      _exit(2);
    /* The committer is held in hold_cb (its write committed) while the next batch queues. */
    atomic_store(&hold, 1);
    wv_store_op_t first = {WV_STORE_PUT, WV_DB_BUILDS, "first", "0", 1, 0, 0};
    if (wv_store_submit(s, &first, hold_cb, NULL))
      _exit(3);
    for (int i = 0; i < 30000 && !atomic_load(&held); i++)
      usleep(1000);
    if (save_meta(s, f.dir))
      _exit(4);
    /* One batch: a multi-op request that fails in its child transaction after its first op
     * wrote (INCR of a non-counter), between two that commit. */
    wv_store_op_t ok1 = {WV_STORE_PUT, WV_DB_BUILDS, "ok1", "1", 1, 0, 0};
    wv_store_op_t bad[] = {{WV_STORE_PUT, WV_DB_BUILDS, "rolled", "r", 1, 0, 0},
                           {WV_STORE_INCR, WV_DB_COUNTERS, "n", NULL, 0, 0, 1}};
    wv_store_op_t ok2 = {WV_STORE_PUT, WV_DB_BUILDS, "ok2", "2", 1, 0, 0};
    int rc = wv_store_submit(s, &ok1, count_cb, NULL);
    rc |= wv_store_submit_apply(s, bad, 2, count_cb, NULL);
    rc |= wv_store_submit(s, &ok2, count_cb, NULL);
    atomic_store(&hold, 0);
    /* Twice: the stats of a batch are counted after its requests completed. */
    if (rc || wv_store_flush(s) || wv_store_flush(s))
      _exit(5);
    wv_store_stats_t st;
    wv_store_stats(s, &st);
    if (atomic_load(&cb_ok) != 2 || atomic_load(&cb_failed) != 1 || st.max_batch < 3) {
      fprintf(stderr, "ok %d failed %d max_batch %llu held %d commits %llu requests %llu\n",
              atomic_load(&cb_ok), atomic_load(&cb_failed), (unsigned long long)st.max_batch,
              atomic_load(&held), (unsigned long long)st.commits, (unsigned long long)st.requests);
      _exit(6);
    }
    _exit(0);
  }
  int st = 0;
  CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 0);
  CHECK_OK(lose_power(f.dir));
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK_EQ_INT(replayed(f.s), 1);
  CHECK(has(f.s, WV_DB_BUILDS, "first"));
  CHECK(has(f.s, WV_DB_BUILDS, "ok1"));
  CHECK(has(f.s, WV_DB_BUILDS, "ok2"));
  CHECK(!has(f.s, WV_DB_BUILDS, "rolled"));
  fresh_free(&f);
}

/* A first write too big for a record (no expiry) commits with the lineage key and a full
 * sync: the next commit, journaled, is still replayed after a power loss. */
TEST(big_value_keeps_lineage) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    wv_store_t *s;
    if (wv_store_open(&s, f.dir, 0, 0) || wv_store_put(s, WV_DB_TOKENS, "a", "A", 1, 0))
      _exit(2);
    size_t n = 3u << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    if (wv_store_put(s, WV_DB_BUILDS, "big", big, n, 0))
      _exit(3);
    if (save_meta(s, f.dir))
      _exit(4);
    if (wv_store_put(s, WV_DB_TOKENS, "b", "B", 1, 0))
      _exit(5);
    _exit(0);
  }
  int st = 0;
  CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 0);
  CHECK_OK(lose_power(f.dir));
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_BUILDS, "big"));
  CHECK(has(f.s, WV_DB_TOKENS, "b")); /* answered 200 */
  CHECK_EQ_INT(replayed(f.s), 1);
  fresh_free(&f);
}

/* A second process (waved --import-osv, which may run while the server runs) opening the store
 * goes without the journal (its lock is the server's): the server's epoch stays, and the
 * server's next commit after the other's is fully synced, so its later answered commit is
 * replayed after a power loss. */
TEST(second_process_keeps_server_journal) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  int p1[2], p2[2];
  CHECK_OK(pipe(p1));
  CHECK_OK(pipe(p2));
  pid_t a = fork();
  CHECK(a >= 0);
  if (a == 0) {
    wv_store_t *s;
    char c;
    if (wv_store_open(&s, f.dir, 0, 0) || wv_store_put(s, WV_DB_TOKENS, "a", "A", 1, 0))
      _exit(2);
    if (write(p1[1], "r", 1) != 1 || read(p2[0], &c, 1) != 1)
      _exit(3);
    if (wv_store_put(s, WV_DB_TOKENS, "a2", "A", 1, 0))
      _exit(3);
    if (save_meta(s, f.dir))
      _exit(4);
    if (wv_store_put(s, WV_DB_TOKENS, "b", "B", 1, 0))
      _exit(5);
    _exit(0);
  }
  char c;
  CHECK_EQ_INT(read(p1[0], &c, 1), 1);
  pid_t b = fork();
  CHECK(b >= 0);
  if (b == 0) {
    wv_store_t *s;
    if (wv_store_open(&s, f.dir, 0, 0) || wv_store_put(s, WV_DB_VULNS, "x", "X", 1, 0))
      _exit(2);
    wv_store_close(s);
    _exit(0);
  }
  int st = 0;
  CHECK_EQ_INT(waitpid(b, &st, 0), b);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK_EQ_INT(write(p2[1], "g", 1), 1);
  CHECK_EQ_INT(waitpid(a, &st, 0), a);
  CHECK(WIFEXITED(st));
  CHECK_EQ_INT(WEXITSTATUS(st), 0);
  CHECK_OK(lose_power(f.dir));
  CHECK_OK(wv_store_open(&f.s, f.dir, 0, 0));
  CHECK(has(f.s, WV_DB_VULNS, "x"));
  CHECK(has(f.s, WV_DB_TOKENS, "b")); /* answered */
  fresh_free(&f);
}

/* A record names the expiry index and the lineage key's database by fixed slots (254, 255), and
 * the others by their wv_db_t: a waved with more databases reads an older one's records. */
TEST(record_slots_are_fixed) {
  static fresh_t f;
  CHECK(fresh_dir(&f));
  CHECK_EQ_INT(crash_child(f.dir, CRASH_PLAIN), 0);
  long off = last_record(f.dir);
  CHECK(off > 0);
  char p[300];
  snprintf(p, sizeof p, "%s/journal", f.dir);
  int fd = open(p, O_RDONLY);
  CHECK(fd >= 0);
  static unsigned char b[8192];
  CHECK_EQ_INT(pread(fd, b, sizeof b, off), (ssize_t)sizeof b);
  close(fd);
  uint32_t len = (uint32_t)b[32] << 24 | (uint32_t)b[33] << 16 | (uint32_t)b[34] << 8 | b[35];
  CHECK(len > 0 && 48 + len <= sizeof b);
  int mains = 0, bad = 0;
  for (size_t i = 48; i + 8 <= 48 + len;) {
    const unsigned char *e = b + i;
    size_t kl = (size_t)e[2] << 8 | e[3];
    size_t vl = (size_t)e[4] << 24 | (size_t)e[5] << 16 | (size_t)e[6] << 8 | e[7];
    mains += e[0] == 255;
    bad += e[0] >= WV_DB_COUNT && e[0] != 254 && e[0] != 255;
    i += 8 + kl + vl;
  }
  CHECK_EQ_INT(mains, 1); /* the lineage key */
  CHECK_EQ_INT(bad, 0);
  fresh_free(&f);
}

WV_TESTS(T(record_slots_are_fixed), T(big_value_keeps_lineage),
         T(second_process_keeps_server_journal), T(replay_after_power_loss),
         T(damaged_record_not_replayed), T(other_lineage_not_replayed),
         T(failed_commit_not_replayed), T(journal_off), T(journal_off_replays_what_was_left),
         T(clean_close_replays_nothing), T(redo_skips_rolled_back_requests))
