/*
 * core/cidr.h — a short list of address ranges that a client address is matched
 * against (metrics.allow-addresses). Fixed size, no allocation: a list is parsed
 * once from the configuration and read by any thread afterwards.
 */
#ifndef WV_CIDR_H
#define WV_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_CIDR_LIST_MAX 64 /* entries of one list */

typedef struct {
  int family; /* AF_INET or AF_INET6 */
  unsigned prefix;
  uint8_t net[16];
} wv_cidr_t;

typedef struct {
  bool any; /* "*" was listed */
  size_t n;
  wv_cidr_t items[WV_CIDR_LIST_MAX];
} wv_cidr_list_t;

/*
 * Parses "a.b.c.d/n, x::/n, 10.0.0.1, *" (commas and blanks separate entries;
 * "" is an empty list). Returns 0, or WV_EINVAL / WV_ETOOBIG with the bad entry
 * named in why.
 */
int wv_cidr_list_parse(const char *s, wv_cidr_list_t *out, char *why, size_t whylen);
/*
 * Parses one "addr" or "addr/bits" (numeric IPv4 or IPv6, bits in decimal digits) of len bytes
 * at s into c: 0; WV_EINVAL when it is not such an address; WV_ERANGE (c->family set) when bits is
 * not 0..32 (IPv4) or 0..128 (IPv6). core/netpolicy.c parses its address ranges with it too.
 */
int wv_cidr_parse(const char *s, size_t len, wv_cidr_t *c);
/* True when a (network bytes of c's family) is inside c (core/netpolicy.c uses it too). */
bool wv_cidr_contains(const wv_cidr_t *c, const uint8_t *a);
/* True when ip (numeric text; IPv4-mapped IPv6 counts as IPv4) is in the list. */
bool wv_cidr_list_match(const wv_cidr_list_t *c, const char *ip);

#endif
