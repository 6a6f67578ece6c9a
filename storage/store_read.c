/*
 * storage/store_read.c — the store's reads: snapshots (one LMDB read
 * transaction under map_lock for reading, see the DESIGN in storage/store.c),
 * views, prefix scans and copies. Expired records read as absent.
 */
#include "storage/store_int.h"

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- reads --------------------------------------------------------------- */

int wv_store_snap_begin(wv_store_t *s, wv_store_snap_t *snap) {
  MDB_txn *txn;
  pthread_rwlock_rdlock(&s->map_lock);
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc) {
    pthread_rwlock_unlock(&s->map_lock);
    wv__sto_map_mdb(rc, "begin read txn"); /* logs */
    return rc == ENOMEM ? WV_ENOMEM : WV_ESTORE;
  }
  snap->s = s;
  snap->txn = txn;
  snap->now_ms = wv_store_now_ms();
  return 0;
}

int wv_store_snap_view(wv_store_snap_t *snap, wv_db_t db, const char *key, wv_store_view_cb cb,
                       void *arg) {
  size_t klen;
  int rc = wv__sto_check_key(db, key, &klen);
  if (rc)
    return rc;
  if (wv__sto_remote(snap->s, db)) /* no network round trip on the caller's loop: store.h */
    return wv__lc_snap_view(snap->s, db, key, cb, arg);
  MDB_val k = {klen, (void *)key}, v;
  int64_t exp = 0;
  rc = wv__sto_map_mdb(mdb_get(snap->txn, snap->s->dbi[db], &k, &v), "get");
  if (rc == 0 && (rc = hdr_read(&v, &exp)) != 0)
    wv_error("store: %s: corrupt record header", wv__sto_db_names[db]);
  if (rc == 0 && is_expired(exp, snap->now_ms))
    rc = WV_ENOTFOUND;
  if (rc == 0)
    rc = cb(arg, (const unsigned char *)v.mv_data + HDR_LEN, v.mv_size - HDR_LEN, exp);
  return rc;
}

void wv_store_snap_end(wv_store_snap_t *snap) {
  mdb_txn_abort(snap->txn);
  pthread_rwlock_unlock(&snap->s->map_lock);
  snap->txn = NULL;
}

/* wv_store_view, with the final() predicate a remote database's local cache fills on (NULL: the
 * database's own rule). */
static int view(wv_store_t *s, wv_db_t db, const char *key, wv_store_final_fn final,
                wv_store_view_cb cb, void *arg) {
  size_t klen;
  int rc = wv__sto_check_key(db, key, &klen);
  if (rc)
    return rc;
  if (wv__sto_remote(s, db))
    return wv__lc_view(s, db, key, final, cb, arg);
  wv_store_snap_t snap;
  if ((rc = wv_store_snap_begin(s, &snap)) != 0)
    return rc;
  rc = wv_store_snap_view(&snap, db, key, cb, arg);
  wv_store_snap_end(&snap);
  return rc;
}

int wv_store_view(wv_store_t *s, wv_db_t db, const char *key, wv_store_view_cb cb, void *arg) {
  return view(s, db, key, NULL, cb, arg);
}

struct copy_out {
  char *val;
  size_t len;
  int64_t exp;
};

static int copy_cb(void *arg, const void *val, size_t len, int64_t expires_ms) {
  struct copy_out *c = arg;
  c->val = malloc(len + 1);
  if (!c->val)
    return WV_ENOMEM;
  if (len)
    memcpy(c->val, val, len);
  c->val[len] = '\0';
  c->len = len;
  c->exp = expires_ms;
  return 0;
}

int wv_store_scan(wv_store_t *s, wv_db_t db, const char *prefix, wv_store_scan_cb cb, void *arg) {
  size_t plen = prefix ? strlen(prefix) : 0;
  if ((unsigned)db >= WV_DB_COUNT || plen > WV_STORE_KEY_MAX)
    return WV_EINVAL;
  if (wv__sto_remote(s, db))
    return wv_rstore_scan(s->redis, db, prefix, cb, arg);
  MDB_txn *txn;
  MDB_cursor *cur;
  pthread_rwlock_rdlock(&s->map_lock);
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc) {
    pthread_rwlock_unlock(&s->map_lock);
    wv__sto_map_mdb(rc, "begin read txn");
    return rc == ENOMEM ? WV_ENOMEM : WV_ESTORE;
  }
  if ((rc = mdb_cursor_open(txn, s->dbi[db], &cur)) != 0) {
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->map_lock);
    return wv__sto_map_mdb(rc, "cursor open");
  }
  int64_t now = wv_store_now_ms();
  MDB_val k = {plen, (void *)prefix}, v;
  int op = plen ? MDB_SET_RANGE : MDB_FIRST;
  rc = 0;
  while (!rc) {
    int mrc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op);
    op = MDB_NEXT;
    if (mrc == MDB_NOTFOUND)
      break;
    if (mrc) {
      rc = wv__sto_map_mdb(mrc, "cursor get");
      break;
    }
    if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
      break;
    int64_t exp = 0;
    if (hdr_read(&v, &exp) != 0 || is_expired(exp, now))
      continue;
    rc = cb(arg, k.mv_data, k.mv_size, (const unsigned char *)v.mv_data + HDR_LEN,
            v.mv_size - HDR_LEN, exp);
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  pthread_rwlock_unlock(&s->map_lock);
  return rc;
}

int wv_store_get_final(wv_store_t *s, wv_db_t db, const char *key, wv_store_final_fn final,
                       char **val, size_t *len, int64_t *expires_ms) {
  struct copy_out c = {0};
  int rc = view(s, db, key, final, copy_cb, &c);
  if (rc)
    return rc;
  *val = c.val;
  if (len)
    *len = c.len;
  if (expires_ms)
    *expires_ms = c.exp;
  return 0;
}

int wv_store_get(wv_store_t *s, wv_db_t db, const char *key, char **val, size_t *len,
                 int64_t *expires_ms) {
  return wv_store_get_final(s, db, key, NULL, val, len, expires_ms);
}

int wv_store_get_json(wv_store_t *s, wv_db_t db, const char *key, size_t max, int max_depth,
                      json_object **out, int64_t *expires_ms) {
  char *val = NULL, err[64];
  size_t len = 0;
  *out = NULL;
  int rc = wv_store_get(s, db, key, &val, &len, expires_ms);
  if (!rc && wv_json_parse(val, len, max ? max : len + 1, max_depth, out, err, sizeof err))
    rc = WV_ESTORE;
  free(val);
  return rc;
}
