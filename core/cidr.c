/* core/cidr.c — address-range lists (see cidr.h). */
#include "core/cidr.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wv_cidr_parse(const char *s, size_t len, wv_cidr_t *c) {
  char text[64];
  if (len == 0 || len >= sizeof text)
    return WV_EINVAL;
  memcpy(text, s, len);
  text[len] = '\0';
  char *slash = strchr(text, '/');
  if (slash)
    *slash = '\0';
  memset(c, 0, sizeof *c);
  if (inet_pton(AF_INET, text, c->net) == 1)
    c->family = AF_INET;
  else if (inet_pton(AF_INET6, text, c->net) == 1)
    c->family = AF_INET6;
  else
    return WV_EINVAL;
  unsigned max = c->family == AF_INET ? 32 : 128;
  c->prefix = max;
  if (slash) {
    const char *bits = slash + 1;
    size_t digits = strspn(bits, "0123456789");
    unsigned long p = strtoul(bits, NULL, 10); /* ULONG_MAX when out of range */
    if (digits == 0 || bits[digits] || p > max)
      return WV_ERANGE;
    c->prefix = (unsigned)p;
  }
  return 0;
}

int wv_cidr_list_parse(const char *s, wv_cidr_list_t *out, char *why, size_t whylen) {
  memset(out, 0, sizeof *out);
  const char *p = s ? s : "";
  for (;;) {
    p += strspn(p, " ,\t");
    if (!*p)
      return 0;
    size_t len = strcspn(p, " ,\t");
    if (len == 1 && *p == '*') {
      out->any = true;
    } else if (out->n == WV_CIDR_LIST_MAX) {
      snprintf(why, whylen, "more than %d address ranges", WV_CIDR_LIST_MAX);
      return WV_ETOOBIG;
    } else if (wv_cidr_parse(p, len, &out->items[out->n])) {
      snprintf(why, whylen, "'%.*s' is not an address or a CIDR block (a.b.c.d/n, x::/n, *)",
               (int)(len > 64 ? 64 : len), p);
      return WV_EINVAL;
    } else {
      out->n++;
    }
    p += len;
  }
}

bool wv_cidr_contains(const wv_cidr_t *c, const uint8_t *a) {
  unsigned full = c->prefix / 8, rest = c->prefix % 8;
  if (memcmp(c->net, a, full) != 0)
    return false;
  return rest == 0 || ((a[full] ^ c->net[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool wv_cidr_list_match(const wv_cidr_list_t *c, const char *ip) {
  if (c->any)
    return true;
  uint8_t a[16];
  int family;
  if (!ip || !*ip)
    return false;
  if (inet_pton(AF_INET, ip, a) == 1) {
    family = AF_INET;
  } else if (inet_pton(AF_INET6, ip, a) == 1) {
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    family = AF_INET6;
    if (memcmp(a, mapped, 12) == 0) {
      memmove(a, a + 12, 4);
      family = AF_INET;
    }
  } else {
    return false;
  }
  for (size_t i = 0; i < c->n; i++)
    if (c->items[i].family == family && wv_cidr_contains(&c->items[i], a))
      return true;
  return false;
}
