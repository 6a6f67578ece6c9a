/*
 * storage/state_move.c — `waved state export|import` (storage/state_move.h,
 * docs/scale-out.md "Moving between one instance and a cluster"): the shared
 * databases copied between the LMDB store of storage.path and the Redis of
 * state.redis.*, each record with its bytes and its expiry.
 *
 * Two stores are opened: the LMDB store of storage.path (only LMDB), and a
 * second one in a scratch directory whose shared databases are in Redis (its
 * own LMDB part is never written). Records are read with wv_store_scan from
 * one and queued with wv_store_submit on the other (a full queue is drained
 * with wv_store_flush and the record queued again), then everything is
 * flushed, so the copy costs one group commit per batch, not an fsync per
 * record. Expired records are not copied; a record the destination already
 * has is overwritten.
 */
#include "storage/state_move.h"

#include "core/err.h"
#include "core/timefmt.h"
#include "storage/store.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  wv_store_t *dst;
  wv_db_t db;
  uint64_t copied;
  atomic_uint_fast64_t failed;
  char key[WV_STORE_KEY_MAX + 1];
} move_t;

static void done_cb(void *arg, int rc, int64_t value) {
  (void)value;
  if (rc)
    atomic_fetch_add(&((move_t *)arg)->failed, 1);
}

static int copy_cb(void *arg, const char *key, size_t klen, const void *val, size_t len,
                   int64_t expires_ms) {
  move_t *m = arg;
  if (klen > WV_STORE_KEY_MAX)
    return WV_ETOOBIG;
  memcpy(m->key, key, klen);
  m->key[klen] = '\0';
  wv_store_op_t op = {WV_STORE_PUT, m->db, m->key, val, len, expires_ms, 0};
  int rc;
  while ((rc = wv_store_submit(m->dst, &op, done_cb, m)) == WV_EBUSY)
    if ((rc = wv_store_flush(m->dst)) != 0)
      return rc;
  if (rc == 0)
    m->copied++;
  return rc;
}

static void remove_dir(const char *dir) {
  char p[PATH_MAX + 48];
  static const char *const files[] = {"data.mdb", "lock.mdb", "journal"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unlink(p);
  }
  rmdir(dir);
}

int wv_state_move_main(const wv_state_move_t *o) {
  char lmdb[PATH_MAX + 8], scratch[PATH_MAX + 24];
  const char *verb = o->to_redis ? "export" : "import";
  snprintf(lmdb, sizeof lmdb, "%s/state", o->data);
  snprintf(scratch, sizeof scratch, "%s/state-move-XXXXXX", o->data);
  mkdir(o->data, 0700);
  if (!mkdtemp(scratch)) {
    fprintf(stderr, "waved state %s: cannot create a scratch directory in %s\n", verb, o->data);
    return 1;
  }
  wv_store_t *local = NULL, *shared = NULL;
  int rc = wv_store_open(&local, lmdb, o->map_size, 0);
  rc = rc ? rc : wv_store_open_journal(&shared, scratch, 1 << 20, 0, false);
  rc = rc ? rc : wv_store_use_redis(shared, o->url, o->prefix, o->timeout_ms, 4, o->tls_ca);
  if (rc) {
    fprintf(stderr, "waved state %s: cannot open the stores: %s\n", verb, wv_strerror(rc));
    goto out;
  }
  int64_t t0 = wv_mono_ms();
  uint64_t total = 0, failed = 0;
  for (int db = 0; db < WV_DB_COUNT && !rc; db++) {
    /* Job records are not moved: a queued or running one would need its queue entry and
     * lease, and finished ones are history the other side does not need. */
    if (!wv_store_db_shared(shared, (wv_db_t)db) || db == WV_DB_JOBS)
      continue;
    move_t m = {.dst = o->to_redis ? shared : local, .db = (wv_db_t)db};
    atomic_init(&m.failed, 0);
    rc = wv_store_scan(o->to_redis ? local : shared, (wv_db_t)db, NULL, copy_cb, &m);
    int frc = wv_store_flush(m.dst);
    rc = rc ? rc : frc;
    failed += atomic_load(&m.failed);
    total += m.copied;
    fprintf(stderr, "waved state %s: %s: %llu records\n", verb, wv_store_db_name((wv_db_t)db),
            (unsigned long long)m.copied);
  }
  if (!rc && failed)
    rc = WV_ESTORE;
  if (rc)
    fprintf(stderr, "waved state %s: failed: %s (%llu records not written)\n", verb,
            wv_strerror(rc), (unsigned long long)failed);
  else
    fprintf(stderr, "waved state %s: %llu records copied %s in %lld ms\n", verb,
            (unsigned long long)total, o->to_redis ? "from LMDB to Redis" : "from Redis to LMDB",
            (long long)(wv_mono_ms() - t0));
out:
  wv_store_close(shared);
  wv_store_close(local);
  remove_dir(scratch);
  return rc ? 1 : 0;
}
