/*
 * core/redisurl.h — parses the state.redis.url setting:
 *
 *   redis://[[user]:password@]host[:port][/db]     (rediss:// is TLS)
 *
 * host is a name, an IPv4 address or an [IPv6] address; port defaults to
 * 6379, db to 0. user and password may be percent-encoded. A leaf module: no
 * I/O, no allocation (every field has a fixed cap, past it the URL is refused).
 */
#ifndef WV_REDISURL_H
#define WV_REDISURL_H

#include <stdbool.h>
#include <stddef.h>

#define WV_REDISURL_HOST_MAX 255
#define WV_REDISURL_USER_MAX 128
#define WV_REDISURL_PASS_MAX 512
#define WV_REDISURL_DB_MAX 65535

typedef struct {
  bool tls; /* rediss:// */
  char host[WV_REDISURL_HOST_MAX + 1];
  int port;
  char user[WV_REDISURL_USER_MAX + 1]; /* empty = the default user */
  char pass[WV_REDISURL_PASS_MAX + 1]; /* empty = no AUTH */
  bool has_pass;
  int db;
} wv_redisurl_t;

/*
 * Fills *out from url. Returns 0, or WV_EINVAL with a sentence in why (which
 * never contains the password).
 */
int wv_redisurl_parse(const char *url, wv_redisurl_t *out, char *why, size_t whylen);

#endif
