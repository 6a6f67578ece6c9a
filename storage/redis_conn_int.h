/*
 * storage/redis_conn_int.h — opens one hiredis connection for a state.redis.url:
 * plain TCP for redis://, TLS for rediss:// (docs/scale-out.md "TLS to Redis").
 */
#ifndef WV_REDIS_CONN_INT_H
#define WV_REDIS_CONN_INT_H

#include "core/redisurl.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

/*
 * Connects to u within tv. ca_file: PEM file of the CAs a rediss:// server's
 * certificate must chain to (NULL or empty = the system store). Returns NULL
 * only when out of memory; on failure a context with err set and a sentence in
 * errstr (redisFree it). The caller sets the command timeout (redisSetTimeout).
 */
redisContext *wv__redis_connect(const wv_redisurl_t *u, struct timeval tv, const char *ca_file);

/*
 * A connection ready for commands, the one way every part of waved opens one (the state store's
 * pool, the local cache's subscriber, the job queue's pool, reader and subscriber): connects
 * within connect_tv (wv__redis_connect), sets the command timeout cmd_tv, TCP keepalive (plain
 * TCP; a TLS connection has it on the pump's socket), then AUTH and SELECT as the URL says, sent
 * in one write. 0 with *out; else nothing is left open and why (may be NULL) gets a sentence:
 * WV_ENOMEM; WV_EUNAVAIL (no connection, it failed or timed out during AUTH/SELECT, or the
 * server is loading or busy); WV_EAUTH (credentials refused); WV_EINVAL (SELECT of a database
 * the server does not have); WV_ESTORE (another error reply).
 */
int wv__redis_open(const wv_redisurl_t *u, struct timeval connect_tv, struct timeval cmd_tv,
                   const char *ca_file, redisContext **out, char *why, size_t whylen);

#endif
