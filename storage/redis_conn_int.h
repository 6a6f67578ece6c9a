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

/* state.redis.tls-ca for the connect sites that have no config at hand (copied; NULL = ""). */
void wv__redis_tls_ca_set(const char *path);
const char *wv__redis_tls_ca(void);

#endif
