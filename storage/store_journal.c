/*
 * storage/store_journal.c — the state store's write-ahead journal (storage.journal, on by
 * default; docs/storage.md, "The journal").
 *
 * DESIGN
 *
 * Why. A durable LMDB commit flushes the device twice, one after the other: fdatasync of the
 * data pages, then the meta page through LMDB's O_DSYNC descriptor. With the journal the
 * environment runs with MDB_NOMETASYNC (the data pages are still flushed, the meta page is only
 * written), and the writes of the batch are flushed in parallel, in a separate file, by the
 * journal thread: one flush on the critical path instead of two in a row. LMDB keeps its
 * integrity under MDB_NOMETASYNC; a power loss may only undo the last transactions whose meta
 * page no later flush covered (the next commit's fdatasync covers it). Those are in the journal.
 *
 * Redo records. Every write the committer makes in a batch transaction (record puts after
 * MDB_RESERVE filled them, deletes, expiry-index entries, the sweep's deletes) is appended to
 * s->redo as {dbi slot, put|del, key, value}; an aborted child transaction truncates it back, a
 * redone batch starts empty. A batch that wrote nothing commits no transaction and writes no
 * record.
 *
 * Lineage key J. Every transaction of the committer (and of the replay, and the open-time epoch
 * transaction) also puts J = {epoch (8 bytes BE), txnid (8 bytes BE, mdb_txn_id)} under the key
 * JKEY of LMDB's unnamed database, where the named databases are listed: no store key reaches
 * it (every store key goes to a named database) and no database of the store has that name. It
 * is part of the redo record like any other write.
 *
 * The file, dir/journal, JN_SIZE bytes, created once fully written with zeros and synced (file
 * and directory), so that a record's fdatasync flushes data only. Offset 0 holds the header
 * {magic "WVJH", version, epoch, crc32}; records follow from JN_RING at 4 KiB-aligned offsets,
 * in a ring:
 *
 *   0  "WVJR"   magic          16 txnid   the transaction (mdb_txn_id) it redoes
 *   4  1        version        24 seq     per epoch, increasing
 *   8  epoch                   32 length  of the redo entries (4 bytes)
 *                              36 crc32   zlib's, over these 48 bytes (crc 0) and the entries
 *   48 entries: slot (1) kind (1) key length (2, BE) value length (4, BE) key value
 *      slot: the wv_db_t (an append-only enum), 254 the expiry index, 255 the lineage key's
 *      database: fixed numbers, so a waved with more databases reads an older one's records
 *
 * padded with zeros to 4 KiB. A record over JN_REC_MAX (a quarter of the ring) is not written:
 * that batch commits and then calls mdb_env_sync(env, 1), durable the old way. The ring keeps
 * the last two records at least (two records and the wasted tail are below the ring's size):
 * the one of a transaction N is needed until N + 1's commit flushed N's meta page.
 *
 * Commit order (wv__jn_commit). J is put, the record handed to the journal thread (crc, pwrite,
 * fdatasync), the transaction committed (NOMETASYNC), the journal waited for; only then are the
 * requests completed. A failed journal write falls back to mdb_env_sync(env, 1) (logged once per
 * run of failures); a failed commit makes its record invalid (header zeroed, fdatasync) before
 * the requests fail, so that no replay applies a batch whose clients were told it failed.
 *
 * Replay at open (wv__jn_replay), before anything else writes: L = the environment's last
 * txnid. Only when the header is valid, J.epoch is the header's epoch and J.txnid is L (the same
 * lineage: a restored backup — a compacting copy restarts at txnid 1 —, a copied data.mdb or a
 * journal from elsewhere replays nothing) are the records of that epoch with txnid > L collected
 * (the highest seq of a txnid wins) and applied L + 1, L + 2 ... while consecutive, each in its
 * own transaction, whose txnid must be the record's; a gap or a bad crc ends it. Then
 * mdb_env_sync(env, 1). Afterwards every open starts a new random epoch (header, fdatasync, then
 * a synced transaction writing J), and a clean close syncs the environment and zeroes the
 * header's epoch, so that nothing replays after a clean stop.
 */
#include "storage/store_int.h"

#include "core/err.h"
#include "core/fileio.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define JN_SIZE (8u << 20)                   /* bytes of the journal file */
#define JN_PAGE 4096u                        /* header page, record alignment */
#define JN_RING JN_PAGE                      /* first record offset */
#define JN_REC_MAX ((JN_SIZE - JN_RING) / 4) /* a record's bytes, padded */
#define JN_HDR_MAGIC 0x57564a48u             /* "WVJH" */
#define JN_REC_MAGIC 0x57564a52u             /* "WVJR" */
#define JN_VERSION 2u /* 2: fixed slots for the expiry index and the lineage database */
#define SLOT_EXPIRY 254
#define SLOT_MAIN 255
#define JKEY "wv.journal.lineage"
#define JKEY_LEN (sizeof JKEY - 1)
#define RD_ENTRY_HDR 8

atomic_int wv__jn_fail_commit;

struct wv_journal {
  int fd;
  uint64_t epoch; /* of the records written now (0 until the new epoch) */
  uint64_t seq;
  uint64_t pos;        /* next record's offset */
  uint64_t last_txnid; /* of this process's last commit with the lineage key (0: none yet) */
  bool failing;        /* the last journal write failed (logged once per run) */

  pthread_t thread;
  bool thread_on;
  pthread_mutex_t mu; /* guards the job below */
  pthread_cond_t cv;
  bool stop, busy, done;
  unsigned char *job;
  size_t job_len; /* padded */
  uint64_t job_off;
  int job_rc; /* 0 or an errno code */
};

static inline void put_be32(unsigned char *p, uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)(v & 0xff);
}

static inline uint32_t get_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t round_page(size_t n) { return (n + JN_PAGE - 1) / JN_PAGE * JN_PAGE; }

/* ---- the redo record ----------------------------------------------------- */

void wv__rd_reset(wv_store_t *s) {
  s->redo.len = s->jn ? JN_REC_HDR : 0;
  s->redo.over = false;
}

void wv__rd_truncate(wv_store_t *s, size_t mark) {
  if (s->jn && mark < s->redo.len)
    s->redo.len = mark;
}

void wv__rd_add(wv_store_t *s, int slot, int kind, const MDB_val *k, const MDB_val *v) {
  struct redo *r = &s->redo;
  if (!s->jn || r->over)
    return;
  size_t vlen = kind == RD_PUT ? v->mv_size : 0;
  size_t need = r->len + RD_ENTRY_HDR + k->mv_size + vlen;
  if (round_page(need) > JN_REC_MAX) {
    r->over = true; /* committed, then synced the old way */
    return;
  }
  if (round_page(need) > r->cap) {
    size_t cap = r->cap ? r->cap : 16 * JN_PAGE;
    while (cap < round_page(need))
      cap *= 2;
    unsigned char *b = realloc(r->buf, cap);
    if (!b) {
      r->over = true;
      return;
    }
    r->buf = b;
    r->cap = cap;
  }
  unsigned char *p = r->buf + r->len;
  p[0] = (unsigned char)(slot == DBI_EXPIRY ? SLOT_EXPIRY : slot == DBI_MAIN ? SLOT_MAIN : slot);
  p[1] = (unsigned char)kind;
  p[2] = (unsigned char)(k->mv_size >> 8);
  p[3] = (unsigned char)(k->mv_size & 0xff);
  put_be32(p + 4, (uint32_t)vlen);
  memcpy(p + RD_ENTRY_HDR, k->mv_data, k->mv_size);
  if (vlen)
    memcpy(p + RD_ENTRY_HDR + k->mv_size, v->mv_data, vlen);
  r->len = need;
}

/* ---- the file ------------------------------------------------------------- */

static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  int rc = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

/* Creates path, JN_SIZE bytes of zeros, through a temp file renamed once synced. */
static int create_file(const char *dir, const char *path) {
  char tmp[PATH_MAX + 16];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return errno;
  unsigned char *zero = calloc(1, 1u << 20);
  int rc = zero ? 0 : ENOMEM;
  for (uint64_t off = 0; !rc && off < JN_SIZE; off += 1u << 20)
    rc = wv_fileio_pwrite(fd, zero, 1u << 20, (off_t)off);
  free(zero);
  if (!rc && fsync(fd) != 0)
    rc = errno;
  close(fd);
  if (!rc && rename(tmp, path) != 0)
    rc = errno;
  if (!rc)
    rc = sync_dir(dir);
  if (rc)
    unlink(tmp);
  return rc;
}

static int write_header(struct wv_journal *j, uint64_t epoch) {
  unsigned char page[JN_PAGE];
  memset(page, 0, sizeof page);
  put_be32(page, JN_HDR_MAGIC);
  put_be32(page + 4, JN_VERSION);
  put_be64(page + 8, epoch);
  put_be32(page + 16, (uint32_t)crc32(0, page, 16));
  int rc = wv_fileio_pwrite(j->fd, page, sizeof page, 0);
  if (!rc && fdatasync(j->fd) != 0)
    rc = errno;
  return rc;
}

/* The header's epoch; 0 when the header is not valid (or was zeroed by a clean close). */
static uint64_t read_header(struct wv_journal *j) {
  unsigned char page[20];
  if (wv_fileio_pread(j->fd, page, sizeof page, 0) != 0 || get_be32(page) != JN_HDR_MAGIC ||
      get_be32(page + 4) != JN_VERSION || get_be32(page + 16) != (uint32_t)crc32(0, page, 16))
    return 0;
  return get_be64(page + 8);
}

/* ---- the journal thread ------------------------------------------------- */

static void *jn_main(void *arg) {
  struct wv_journal *j = arg;
  pthread_mutex_lock(&j->mu);
  for (;;) {
    while (!j->busy && !j->stop)
      pthread_cond_wait(&j->cv, &j->mu);
    if (!j->busy)
      break;
    unsigned char *b = j->job;
    size_t n = j->job_len;
    uint64_t off = j->job_off;
    pthread_mutex_unlock(&j->mu);
    size_t len = JN_REC_HDR + get_be32(b + 32);
    memset(b + len, 0, n - len);
    put_be32(b + 36, (uint32_t)crc32(0, b, (uInt)len));
    int rc = wv_fileio_pwrite(j->fd, b, n, (off_t)off);
    if (!rc && fdatasync(j->fd) != 0)
      rc = errno;
    pthread_mutex_lock(&j->mu);
    j->job_rc = rc;
    j->busy = false;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
  }
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

static int jn_wait(struct wv_journal *j) {
  pthread_mutex_lock(&j->mu);
  while (!j->done)
    pthread_cond_wait(&j->cv, &j->mu);
  int rc = j->job_rc;
  pthread_mutex_unlock(&j->mu);
  return rc;
}

int wv__jn_open(wv_store_t *s, const char *dir, bool create) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/journal", dir);
  struct stat st;
  int rc = 0;
  bool exists = stat(path, &st) == 0;
  if (!exists || (uint64_t)st.st_size != JN_SIZE) {
    if (!create)
      return 0; /* off, and no journal of an earlier run to replay */
    if (exists)
      wv_warn("store: the journal %s has the wrong size (%lld bytes): replaced, nothing replayed",
              path, (long long)st.st_size);
    if ((rc = create_file(dir, path)) != 0) {
      /* A full disk or a file we may not write: the store still opens, without the journal
       * (every commit fully synced, as with storage.journal: false). */
      wv_error("store: cannot create the journal %s (%s): commits are fully synced instead", path,
               strerror(rc));
      return 0;
    }
  }
  struct wv_journal *j = calloc(1, sizeof *j);
  if (!j)
    return WV_ENOMEM;
  j->fd = open(path, O_RDWR | O_CLOEXEC);
  if (j->fd < 0) {
    wv_error("store: cannot open the journal %s (%s): commits are fully synced instead", path,
             strerror(errno));
    free(j);
    return 0;
  }
  /* One process writes the journal: another one opening the store while it runs (waved
   * --import-osv, waved state) would start its own epoch over the server's and retire it. That
   * one goes without: its commits are fully synced and carry no lineage key, and the server,
   * finding a transaction of someone else's before its own (wv__jn_commit), syncs its next
   * commit fully, which restores the lineage. */
  if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
    wv_info("store: the journal %s is in use by another process: this one's commits are fully "
            "synced",
            path);
    close(j->fd);
    free(j);
    return 0;
  }
  j->pos = JN_RING;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  s->jn = j;
  if (create) {
    if (pthread_create(&j->thread, NULL, jn_main, j) != 0) {
      wv__jn_close(s, false);
      return WV_ENOMEM;
    }
    j->thread_on = true;
  }
  wv__rd_reset(s);
  return 0;
}

/* ---- commit ------------------------------------------------------------------ */

static int put_lineage(wv_store_t *s, MDB_txn *txn, uint64_t epoch, bool capture) {
  unsigned char jv[16];
  put_be64(jv, epoch);
  put_be64(jv + 8, (uint64_t)mdb_txn_id(txn));
  MDB_val k = {JKEY_LEN, (void *)JKEY}, v = {sizeof jv, jv};
  int rc = mdb_put(txn, s->dbi[DBI_MAIN], &k, &v, 0);
  if (!rc && capture)
    wv__rd_add(s, DBI_MAIN, RD_PUT, &k, &v);
  return rc;
}

static void count(wv_store_t *s, uint64_t records, uint64_t bytes, uint64_t fallbacks) {
  pthread_mutex_lock(&s->mu);
  s->stats.journal_records += records;
  s->stats.journal_bytes += bytes;
  s->stats.journal_fallbacks += fallbacks;
  pthread_mutex_unlock(&s->mu);
}

int wv__jn_commit(wv_store_t *s, MDB_txn *txn) {
  struct wv_journal *j = s->jn;
  uint64_t txnid = (uint64_t)mdb_txn_id(txn);
  int rc = put_lineage(s, txn, j->epoch, true);
  if (rc) {
    mdb_txn_abort(txn);
    return rc;
  }
  struct redo *r = &s->redo;
  bool journaled = !r->over;
  size_t padded = round_page(r->len);
  uint64_t off = 0;
  if (journaled) {
    unsigned char *h = r->buf;
    memset(h, 0, JN_REC_HDR);
    put_be32(h, JN_REC_MAGIC);
    put_be32(h + 4, JN_VERSION);
    put_be64(h + 8, j->epoch);
    put_be64(h + 16, txnid);
    put_be64(h + 24, ++j->seq);
    put_be32(h + 32, (uint32_t)(r->len - JN_REC_HDR));
    if (j->pos + padded > JN_SIZE)
      j->pos = JN_RING;
    off = j->pos;
    j->pos += padded;
    pthread_mutex_lock(&j->mu);
    j->job = r->buf;
    j->job_len = padded;
    j->job_off = off;
    j->done = false;
    j->busy = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
  }
  if (atomic_load_explicit(&wv__jn_fail_commit, memory_order_relaxed)) {
    mdb_txn_abort(txn);
    rc = EIO;
  } else {
    rc = mdb_txn_commit(txn);
  }
  int jrc = journaled ? jn_wait(j) : 0;
  if (rc) {
    if (journaled) {
      /* Its clients are told it failed: no replay may apply it (even when its write reported
       * an error: part of it may be on the disk). */
      unsigned char zero[JN_REC_HDR] = {0};
      int irc = wv_fileio_pwrite(j->fd, zero, sizeof zero, (off_t)off);
      if (!irc && fdatasync(j->fd) != 0)
        irc = errno;
      if (irc)
        wv_error("store: cannot invalidate the journal record of a failed commit: %s",
                 strerror(irc));
    }
    return rc;
  }
  /* A transaction before this one that is not this process's last (another process's, or one
   * of ours without the lineage key): the environment's lineage key named another txn until
   * now, so a replay would refuse this record. Synced fully, this commit restores it. */
  bool foreign = j->last_txnid != 0 && txnid != j->last_txnid + 1;
  j->last_txnid = txnid;
  if (journaled && jrc == 0 && !foreign) {
    if (j->failing)
      wv_info("store: the journal writes again");
    j->failing = false;
    count(s, 1, padded, 0);
    return 0;
  }
  if (foreign && jrc == 0) {
    if (journaled)
      count(s, 1, padded, 0);
    return mdb_env_sync(s->env, 1);
  }
  if (jrc && !j->failing)
    wv_error("store: journal write failed (%s): committing with a full sync until it works",
             strerror(jrc));
  j->failing = jrc != 0;
  count(s, 0, 0, 1);
  return mdb_env_sync(s->env, 1);
}

/* ---- replay, epoch, close ------------------------------------------------ */

struct cand {
  uint64_t txnid, seq;
  uint32_t off, len;
  bool ok; /* crc matches */
};

/* Applies one record's entries in its own transaction, whose txnid must be txnid. */
static int apply_record(wv_store_t *s, const unsigned char *p, size_t len, uint64_t txnid) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  if (rc)
    return rc;
  if ((uint64_t)mdb_txn_id(txn) != txnid) {
    mdb_txn_abort(txn);
    return MDB_BAD_TXN;
  }
  size_t i = 0;
  bool lineage = false;
  while (!rc && i < len) {
    if (len - i < RD_ENTRY_HDR) {
      rc = MDB_CORRUPTED;
      break;
    }
    int slot = p[i] == SLOT_EXPIRY  ? DBI_EXPIRY
               : p[i] == SLOT_MAIN  ? DBI_MAIN
               : p[i] < WV_DB_COUNT ? p[i]
                                    : -1,
        kind = p[i + 1];
    size_t klen = (size_t)p[i + 2] << 8 | p[i + 3], vlen = get_be32(p + i + 4);
    i += RD_ENTRY_HDR;
    if (slot < 0 || !(s->dbi_open >> slot & 1) || (kind != RD_PUT && kind != RD_DEL) || klen == 0 ||
        klen > len - i || vlen > len - i - klen) {
      rc = MDB_CORRUPTED;
      break;
    }
    MDB_val k = {klen, (void *)(p + i)}, v = {vlen, (void *)(p + i + klen)};
    i += klen + vlen;
    if (slot == DBI_MAIN) {
      /* Only the lineage key lives there; it must name this transaction. */
      if (klen != JKEY_LEN || memcmp(k.mv_data, JKEY, klen) || vlen != 16 ||
          get_be64(p + i - 8) != txnid) {
        rc = MDB_CORRUPTED;
        break;
      }
      lineage = true;
    }
    if (kind == RD_PUT)
      rc = mdb_put(txn, s->dbi[slot], &k, &v, 0);
    else if ((rc = mdb_del(txn, s->dbi[slot], &k, NULL)) == MDB_NOTFOUND)
      rc = 0;
  }
  if (!rc && !lineage)
    rc = MDB_CORRUPTED;
  if (rc) {
    mdb_txn_abort(txn);
    return rc;
  }
  return mdb_txn_commit(txn);
}

/* J as the environment holds it; false when absent or malformed. */
static bool read_lineage(wv_store_t *s, uint64_t *epoch, uint64_t *txnid) {
  MDB_txn *txn;
  if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))
    return false;
  MDB_val k = {JKEY_LEN, (void *)JKEY}, v;
  bool ok = mdb_get(txn, s->dbi[DBI_MAIN], &k, &v) == 0 && v.mv_size == 16;
  if (ok) {
    *epoch = get_be64(v.mv_data);
    *txnid = get_be64((const unsigned char *)v.mv_data + 8);
  }
  mdb_txn_abort(txn);
  return ok;
}

static int replay(wv_store_t *s) {
  struct wv_journal *j = s->jn;
  uint64_t hepoch = read_header(j), jepoch = 0, jtxnid = 0;
  MDB_envinfo info;
  mdb_env_info(s->env, &info);
  uint64_t last = (uint64_t)info.me_last_txnid;
  if (hepoch == 0)
    return 0; /* clean close, new file, or a header we cannot read */
  if (!read_lineage(s, &jepoch, &jtxnid) || jepoch != hepoch || jtxnid != last) {
    wv_info("store: the journal belongs to another copy of the store (its epoch %016" PRIx64
            ", the store's %016" PRIx64 " at txn %" PRIu64 ", last txn %" PRIu64
            "): nothing replayed",
            hepoch, jepoch, jtxnid, last);
    return 0;
  }
  unsigned char *ring = malloc(JN_SIZE);
  struct cand *c = malloc(sizeof *c * (JN_SIZE / JN_PAGE));
  int rc = ring && c ? wv_fileio_pread(j->fd, ring, JN_SIZE, 0) : ENOMEM;
  size_t nc = 0;
  for (uint32_t off = JN_RING; !rc && off + JN_REC_HDR <= JN_SIZE; off += JN_PAGE) {
    unsigned char *h = ring + off;
    if (get_be32(h) != JN_REC_MAGIC || get_be32(h + 4) != JN_VERSION || get_be64(h + 8) != hepoch ||
        get_be64(h + 16) <= last)
      continue;
    uint32_t len = get_be32(h + 32), crc = get_be32(h + 36);
    struct cand x = {get_be64(h + 16), get_be64(h + 24), off, len, false};
    if (len <= JN_REC_MAX - JN_REC_HDR && off + JN_REC_HDR + (uint64_t)len <= JN_SIZE) {
      memset(h + 36, 0, 4);
      x.ok = (uint32_t)crc32(0, h, JN_REC_HDR + len) == crc;
      put_be32(h + 36, crc);
    }
    c[nc++] = x;
  }
  uint64_t done = 0;
  for (uint64_t t = last + 1; !rc; t++) {
    struct cand *best = NULL;
    for (size_t i = 0; i < nc; i++)
      if (c[i].txnid == t && (!best || c[i].seq > best->seq))
        best = &c[i];
    if (!best)
      break;
    if (!best->ok) {
      wv_warn("store: journal record of txn %" PRIu64 " is damaged: replay stops there", t);
      break;
    }
    int arc = apply_record(s, ring + best->off + JN_REC_HDR, best->len, t);
    if (arc) {
      wv_error("store: journal replay of txn %" PRIu64 " failed: %s", t, mdb_strerror(arc));
      break;
    }
    done++;
  }
  free(ring);
  free(c);
  if (rc) {
    wv_error("store: cannot read the journal: %s", strerror(rc));
    return rc == ENOMEM ? WV_ENOMEM : WV_EIO;
  }
  if (done)
    wv_warn("store: replayed %" PRIu64 " journaled transaction(s), txn %" PRIu64 "..%" PRIu64
            ", that the last run committed but did not sync",
            done, last + 1, last + done);
  pthread_mutex_lock(&s->mu);
  s->stats.journal_replayed += done;
  pthread_mutex_unlock(&s->mu);
  rc = mdb_env_sync(s->env, 1);
  if (rc) {
    wv_error("store: sync after the journal replay: %s", mdb_strerror(rc));
    return WV_EIO;
  }
  return 0;
}

int wv__jn_replay(wv_store_t *s) {
  if (!s->jn)
    return 0;
  int rc = replay(s);
  if (s->jn->thread_on)
    return rc;
  /* storage.journal: false: the last run's journal was replayed (or had nothing to replay);
   * retired, so that it is not read again. */
  if (rc == 0)
    write_header(s->jn, 0);
  wv__jn_close(s, false);
  return rc;
}

int wv__jn_new_epoch(wv_store_t *s) {
  struct wv_journal *j = s->jn;
  uint64_t e = 0;
  while (e == 0)
    if (getrandom(&e, sizeof e, 0) != sizeof e)
      return WV_EIO;
  int rc = write_header(j, e);
  if (rc) {
    wv_error("store: cannot write the journal header: %s", strerror(rc));
    return WV_EIO;
  }
  MDB_txn *txn;
  rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  uint64_t txnid = rc ? 0 : (uint64_t)mdb_txn_id(txn);
  if (!rc && (rc = put_lineage(s, txn, e, false)) != 0)
    mdb_txn_abort(txn);
  else if (!rc)
    rc = mdb_txn_commit(txn);
  if (!rc)
    rc = mdb_env_sync(s->env, 1);
  if (rc) {
    wv_error("store: cannot start the journal's epoch: %s", mdb_strerror(rc));
    return rc == MDB_MAP_FULL ? WV_ESTORE : WV_EIO;
  }
  j->epoch = e;
  j->last_txnid = txnid;
  j->seq = 0;
  j->pos = JN_RING;
  return 0;
}

void wv__jn_close(wv_store_t *s, bool clean) {
  struct wv_journal *j = s->jn;
  if (!j)
    return;
  if (j->thread_on) {
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    if (clean && j->epoch && mdb_env_sync(s->env, 1) == 0)
      write_header(j, 0); /* everything is in data.mdb: nothing to replay */
  }
  close(j->fd);
  pthread_cond_destroy(&j->cv);
  pthread_mutex_destroy(&j->mu);
  free(j);
  s->jn = NULL;
  free(s->redo.buf);
  s->redo = (struct redo){0};
}
