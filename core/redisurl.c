/*
 * core/redisurl.c — state.redis.url parsing (core/redisurl.h).
 */
#include "core/redisurl.h"

#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Copies s[0..n) percent-decoded into out (cap bytes with the NUL). 0 or WV_EINVAL. */
static int decode(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n)
        return WV_EINVAL;
      int hi = hexval(s[i + 1]);
      int lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return WV_EINVAL;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (o + 1 >= cap)
      return WV_EINVAL;
    out[o++] = c;
  }
  out[o] = '\0';
  return 0;
}

static int fail(char *why, size_t whylen, const char *msg) {
  snprintf(why, whylen, "%s", msg);
  return WV_EINVAL;
}

/* host[:port] or [v6][:port] in s[0..n). */
static int parse_hostport(const char *s, size_t n, wv_redisurl_t *out, char *why, size_t whylen) {
  const char *colon = NULL, *host = s;
  size_t hlen;
  if (n && s[0] == '[') {
    const char *close = memchr(s, ']', n);
    if (!close)
      return fail(why, whylen, "unterminated [IPv6] address");
    host = s + 1;
    hlen = (size_t)(close - host);
    if (close + 1 < s + n) {
      if (close[1] != ':')
        return fail(why, whylen, "unexpected text after the [IPv6] address");
      colon = close + 1;
    }
  } else {
    colon = memchr(s, ':', n);
    hlen = colon ? (size_t)(colon - s) : n;
  }
  if (hlen == 0)
    return fail(why, whylen, "no host");
  if (hlen > WV_REDISURL_HOST_MAX)
    return fail(why, whylen, "host name too long");
  for (size_t i = 0; i < hlen; i++)
    if (host[i] <= ' ' || host[i] == '/' || host[i] == '@' || host[i] == '%' || host[i] == 0x7f)
      return fail(why, whylen, "invalid character in the host");
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  out->port = 6379;
  if (colon) {
    size_t plen = (size_t)(s + n - colon - 1);
    int port = 0;
    if (plen == 0 || plen > 5)
      return fail(why, whylen, "invalid port");
    for (size_t i = 0; i < plen; i++) {
      if (colon[1 + i] < '0' || colon[1 + i] > '9')
        return fail(why, whylen, "invalid port");
      port = port * 10 + (colon[1 + i] - '0');
    }
    if (port < 1 || port > 65535)
      return fail(why, whylen, "port out of range (1..65535)");
    out->port = port;
  }
  return 0;
}

static int parse_userinfo(const char *s, size_t n, wv_redisurl_t *out, char *why, size_t whylen) {
  const char *colon = memchr(s, ':', n);
  size_t ulen = colon ? (size_t)(colon - s) : n;
  if (decode(s, ulen, out->user, sizeof out->user))
    return fail(why, whylen, "invalid or too long user name");
  if (!colon) {
    /* redis://secret@host: the one-field form is the password (requirepass). */
    _Static_assert(sizeof out->pass >= sizeof out->user, "pass holds a user-sized field");
    memcpy(out->pass, out->user, sizeof out->user);
    out->user[0] = '\0';
    out->has_pass = true;
    return 0;
  }
  if (decode(colon + 1, (size_t)(s + n - colon - 1), out->pass, sizeof out->pass))
    return fail(why, whylen, "invalid or too long password");
  out->has_pass = true;
  return 0;
}

int wv_redisurl_parse(const char *url, wv_redisurl_t *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  if (!url)
    return fail(why, whylen, "no URL");
  const char *p;
  if (strncmp(url, "redis://", 8) == 0) {
    p = url + 8;
  } else if (strncmp(url, "rediss://", 9) == 0) {
    p = url + 9;
    out->tls = true;
  } else {
    return fail(why, whylen, "expected redis://[[user]:password@]host[:port][/db] or rediss://");
  }
  const char *end = p + strcspn(p, "/?#");
  if (*end == '?' || *end == '#')
    return fail(why, whylen, "query strings and fragments are not supported");
  const char *at = NULL;
  for (const char *q = p; q < end; q++)
    if (*q == '@')
      at = q; /* the last '@': a password may contain one percent-encoded or not */
  int rc = 0;
  if (at && (rc = parse_userinfo(p, (size_t)(at - p), out, why, whylen)) != 0)
    return rc;
  const char *hp = at ? at + 1 : p;
  if ((rc = parse_hostport(hp, (size_t)(end - hp), out, why, whylen)) != 0)
    return rc;
  if (*end == '/' && end[1]) {
    const char *d = end + 1;
    long db = 0;
    for (; *d; d++) {
      if (*d < '0' || *d > '9' || db > WV_REDISURL_DB_MAX)
        return fail(why, whylen, "the path must be a database number");
      db = db * 10 + (*d - '0');
    }
    if (db > WV_REDISURL_DB_MAX)
      return fail(why, whylen, "database number out of range");
    out->db = (int)db;
  }
  return 0;
}
