/*
 * storage/store_redis.h — the shared databases of the state store kept in
 * Redis (state.backend: redis, docs/scale-out.md). Private to storage/: the
 * public API stays storage/store.h, whose functions hand the databases that
 * wv_rstore_holds() names to these (storage/store_read.c, store_commit.c).
 *
 * Keys are "<prefix><db name>:<key>", values are the record's bytes as they
 * are (no header), expiry is the key's Redis expiry (PXAT, read back with
 * PEXPIRETIME). Redis drops expired keys itself, so there is nothing to sweep.
 *
 * Connections: a pool of at most max_conns, opened on demand, each used by
 * one thread at a time, with a timeout on connect and on every command. A
 * pooled connection the server has closed (a restart) is noticed before it is
 * used and replaced; a command that fails on a connection that was live is
 * retried once on a new one only when it is idempotent (reads, PUT, DEL).
 *
 * Errors: Redis unreachable, timing out or loading its data set after a
 * restart is WV_EUNAVAIL; out of memory (maxmemory) is WV_ENOSPC; a reply of
 * the wrong shape or another server error is WV_ESTORE; no free connection
 * within the timeout is WV_EBUSY. Each is logged once per change of state.
 *
 * Thread rules: every function may be called from any thread once open has
 * returned; close must be called once, after every other caller is done. The
 * completion callbacks of wv_rstore_submit run on the store's one submit
 * thread.
 */
#ifndef WV_STORE_REDIS_H
#define WV_STORE_REDIS_H

#include "storage/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_RSTORE_PREFIX_MAX 64 /* bytes of state.redis.prefix */

typedef struct wv_rstore wv_rstore_t;

/* True for the databases that live in Redis when the backend is redis. */
bool wv_rstore_holds(wv_db_t db);

/*
 * Connects (once, to check the URL, the credentials, the database and that
 * the server is Redis 7.0 or newer) and starts the submit thread. Returns 0
 * and *out, or WV_EINVAL (bad URL, prefix or tls_ca path), WV_EUNAVAIL,
 * WV_EAUTH, WV_ESTORE, WV_ENOMEM, each with an error log line. tls_ca: the CA
 * file of a rediss:// server (NULL or "" = the system's), kept for every
 * connection this store opens.
 */
int wv_rstore_open(wv_rstore_t **out, const char *url, const char *prefix, int64_t timeout_ms,
                   int max_conns, const char *tls_ca);

/*
 * Runs every queued submit (their callbacks run; when Redis is known to be
 * down they fail at once with WV_EUNAVAIL rather than each wait for the
 * timeout) and stops the submit thread; later submits are WV_ECLOSED, other
 * calls still work. NULL or a second call is a no-op.
 */
void wv_rstore_drain(wv_rstore_t *r);

/*
 * Waits until every submit queued before the call has completed (its callback
 * has returned); must not be called from a submit callback. NULL, or a store
 * already drained, is a no-op. 0 or WV_EBUSY/WV_ENOMEM.
 */
int wv_rstore_flush(wv_rstore_t *r);

/* Drains (if not done yet) and closes. NULL is a no-op. */
void wv_rstore_close(wv_rstore_t *r);

/* wv_store_view for a database held in Redis (key checked by the caller). */
int wv_rstore_view(wv_rstore_t *r, wv_db_t db, const char *key, wv_store_view_cb cb, void *arg);

/* wv_store_scan for a database held in Redis (see docs/scale-out.md for the order). */
int wv_rstore_scan(wv_rstore_t *r, wv_db_t db, const char *prefix, wv_store_scan_cb cb, void *arg);

/*
 * wv_store_apply (ops checked by the caller, all of databases held in Redis).
 * value (may be NULL) gets an INCR's new value when n == 1.
 */
int wv_rstore_apply(wv_rstore_t *r, const wv_store_op_t *ops, size_t n, size_t *failed,
                    int64_t *value);

/* False when the last command or idle PING (every 5 s) found Redis not answering. */
bool wv_rstore_up(wv_rstore_t *r);

/*
 * wv_store_submit_apply for n checked ops of databases held in Redis, applied
 * all or nothing as wv_rstore_apply: 0 (cb runs once), WV_EBUSY, WV_ECLOSED,
 * WV_ENOMEM.
 */
int wv_rstore_submit(wv_rstore_t *r, const wv_store_op_t *ops, size_t n, wv_store_done_cb cb,
                     void *arg);

/*
 * For the cluster helpers (storage/store_cluster.c: locks, rate limits, the
 * local cache's invalidations), additive to the store: runs one command of
 * argc (1..8) arguments on a pooled connection. 0 and *out (free with
 * freeReplyObject; never an error reply: those are mapped like the store's,
 * WV_EUNAVAIL, WV_ENOSPC, WV_EAUTH or WV_ESTORE), or an error with nothing to
 * free. idempotent: may be retried once on a fresh connection.
 */
struct redisReply;
struct redisContext;
int wv_rstore_command(wv_rstore_t *r, int argc, const char *const *argv, const size_t *len,
                      bool idempotent, struct redisReply **out);
/* "<prefix><name>" into buf (cap bytes): its length, or 0 when it does not fit. */
size_t wv_rstore_name(const wv_rstore_t *r, const char *name, char *buf, size_t cap);
/* A new connection of its own (authenticated, database selected), for a
 * subscriber: 0 and *out (redisFree it), or WV_EUNAVAIL / WV_EAUTH / WV_ENOMEM. */
int wv_rstore_connect(wv_rstore_t *r, struct redisContext **out);

#endif
