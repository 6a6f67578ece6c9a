/*
 * core/netpolicy.c — see netpolicy.h.
 *
 * DESIGN. Classification works on the raw address bytes: an IPv6 address that
 * embeds an IPv4 one (::ffff:a.b.c.d, the NAT64 prefix 64:ff9b::/96, 6to4
 * 2002::/16) is classified by that IPv4 address, because connecting to it
 * reaches that host (directly, or through a translator). The allow list is
 * matched after the same unwrapping of ::ffff:a.b.c.d, so "127.0.0.1/32" also
 * allows ::ffff:127.0.0.1. Everything that is not a public unicast address is
 * denied unless listed; allow-private opens only the address blocks that are
 * "somebody's LAN" (RFC 1918, carrier-grade NAT, unique-local), never
 * loopback, link-local or metadata, which name this very machine or its cloud.
 */
#include "core/netpolicy.h"
#include "core/cidr.h"
#include "core/err.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HOST 253

typedef wv_cidr_t cidr_t; /* core/cidr.h */

struct wv_netpolicy {
  bool off; /* ssrf-protection disabled: everything is allowed */
  bool allow_private;
  cidr_t *cidrs;
  size_t ncidrs;
  char **hosts; /* lowercase; "*.x" matches any subdomain of x */
  size_t nhosts;
};

/* ---- classification ------------------------------------------------------------------- */

static bool in4(uint32_t a, uint32_t net, unsigned bits) {
  uint32_t mask = bits ? ~(uint32_t)0 << (32 - bits) : 0;
  return (a & mask) == net;
}

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static wv_netpolicy_class_t classify4(uint32_t a) {
  static const struct {
    uint32_t net;
    unsigned bits;
    wv_netpolicy_class_t c;
  } table[] = {
      /* Exact metadata endpoints first: they sit inside wider blocks. */
      {V4(169, 254, 169, 254), 32, WV_NETPOLICY_METADATA}, /* AWS, GCP, Azure, OCI, ... */
      {V4(169, 254, 170, 2), 32, WV_NETPOLICY_METADATA},   /* AWS ECS task metadata */
      {V4(100, 100, 100, 200), 32, WV_NETPOLICY_METADATA}, /* Alibaba Cloud */
      {V4(0, 0, 0, 0), 8, WV_NETPOLICY_UNSPECIFIED},
      {V4(10, 0, 0, 0), 8, WV_NETPOLICY_PRIVATE},
      {V4(100, 64, 0, 0), 10, WV_NETPOLICY_SHARED},
      {V4(127, 0, 0, 0), 8, WV_NETPOLICY_LOOPBACK},
      {V4(169, 254, 0, 0), 16, WV_NETPOLICY_LINK_LOCAL},
      {V4(172, 16, 0, 0), 12, WV_NETPOLICY_PRIVATE},
      {V4(192, 0, 0, 0), 24, WV_NETPOLICY_RESERVED},   /* IETF protocol assignments */
      {V4(192, 0, 2, 0), 24, WV_NETPOLICY_RESERVED},   /* TEST-NET-1 */
      {V4(192, 88, 99, 0), 24, WV_NETPOLICY_RESERVED}, /* old 6to4 relay anycast */
      {V4(192, 168, 0, 0), 16, WV_NETPOLICY_PRIVATE},
      {V4(198, 18, 0, 0), 15, WV_NETPOLICY_RESERVED},   /* benchmarking */
      {V4(198, 51, 100, 0), 24, WV_NETPOLICY_RESERVED}, /* TEST-NET-2 */
      {V4(203, 0, 113, 0), 24, WV_NETPOLICY_RESERVED},  /* TEST-NET-3 */
      {V4(224, 0, 0, 0), 4, WV_NETPOLICY_MULTICAST},
      {V4(240, 0, 0, 0), 4, WV_NETPOLICY_RESERVED}, /* future use and 255.255.255.255 */
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (in4(a, table[i].net, table[i].bits))
      return table[i].c;
  return WV_NETPOLICY_PUBLIC;
}

static uint32_t load4(const uint8_t *p) { return V4(p[0], p[1], p[2], p[3]); }

static bool zeros(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* True when b is ::ffff:a.b.c.d. */
static bool mapped(const uint8_t *b) { return zeros(b, 10) && b[10] == 0xff && b[11] == 0xff; }

static wv_netpolicy_class_t classify6(const uint8_t *b) {
  static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
  static const uint8_t ec2[16] = {0xfd, 0, 0x0e, 0xc2, [15] = 0x54, [14] = 0x02};
  if (zeros(b, 15))
    return b[15] == 0   ? WV_NETPOLICY_UNSPECIFIED
           : b[15] == 1 ? WV_NETPOLICY_LOOPBACK
                        : WV_NETPOLICY_RESERVED;
  if (mapped(b) || memcmp(b, nat64, 12) == 0)
    return classify4(load4(b + 12));
  if (b[0] == 0 && b[1] == 0) /* the rest of ::/16: IPv4-compatible, SIIT, unassigned */
    return WV_NETPOLICY_RESERVED;
  if (memcmp(b, nat64, 4) == 0 && b[4] == 0 && b[5] == 1) /* 64:ff9b:1::/48 local-use NAT64 */
    return WV_NETPOLICY_PRIVATE;
  if (b[0] == 0x01 && b[1] == 0 && zeros(b + 2, 6)) /* 100::/64 discard */
    return WV_NETPOLICY_RESERVED;
  if (b[0] == 0x20 && b[1] == 0x02) /* 2002::/16 6to4 embeds the IPv4 address */
    return classify4(load4(b + 2));
  if (b[0] == 0x20 && b[1] == 0x01 && (b[2] == 0 && b[3] == 0)) /* 2001::/32 Teredo */
    return WV_NETPOLICY_RESERVED;
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) /* 2001:db8::/32 docs */
    return WV_NETPOLICY_RESERVED;
  if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xf0) == 0) /* 3fff::/20 documentation */
    return WV_NETPOLICY_RESERVED;
  if (memcmp(b, ec2, 16) == 0)
    return WV_NETPOLICY_METADATA;
  if ((b[0] & 0xfe) == 0xfc)
    return WV_NETPOLICY_PRIVATE;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
    return WV_NETPOLICY_LINK_LOCAL;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) /* fec0::/10, deprecated site-local */
    return WV_NETPOLICY_PRIVATE;
  if (b[0] == 0xff)
    return WV_NETPOLICY_MULTICAST;
  return WV_NETPOLICY_PUBLIC;
}

wv_netpolicy_class_t wv_netpolicy_classify(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
    return classify4(ntohl(s->sin_addr.s_addr));
  }
  if (sa->sa_family == AF_INET6)
    return classify6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
  return WV_NETPOLICY_RESERVED;
}

const char *wv_netpolicy_class_text(wv_netpolicy_class_t c) {
  static const char *const text[] = {
      "a public address",       "a loopback address",
      "a private address",      "a shared (carrier-grade NAT) address",
      "a link-local address",   "a cloud metadata address",
      "an unspecified address", "a multicast address",
      "a reserved address"};
  return (unsigned)c < sizeof text / sizeof text[0] ? text[c] : "an unknown address";
}

/* ---- the allow list ------------------------------------------------------------------- */

void wv_netpolicy_free(wv_netpolicy_t *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nhosts; i++)
    free(p->hosts[i]);
  free(p->hosts);
  free(p->cidrs);
  free(p);
}

/* A host name: dot-separated labels of letters, digits and '-', optionally "*." first. */
static bool host_name_ok(const char *s) {
  if (strncmp(s, "*.", 2) == 0)
    s += 2;
  size_t n = strlen(s), label = 0;
  if (n == 0 || n > MAX_HOST)
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-')
        return false;
      label = 0;
    } else if (isalnum(c) || (c == '-' && label > 0)) {
      if (++label > 63)
        return false;
    } else {
      return false;
    }
  }
  if (label == 0 || s[n - 1] == '-')
    return false;
  /* A last label of digits only is an IPv4 number in some spelling ("127.1"),
   * which resolvers turn into an address: not a name. */
  return strspn(s + n - label, "0123456789") != label;
}

/* Parses "addr" or "addr/bits" into c: 0; WV_EINVAL when s is no address (maybe a host name);
 * WV_ERANGE with the reason in why. */
static int parse_cidr(const char *s, cidr_t *c, char *why, size_t whylen) {
  int rc = wv_cidr_parse(s, strlen(s), c);
  unsigned max = c->family == AF_INET ? 32 : 128;
  if (rc == WV_ERANGE)
    snprintf(why, whylen, "'%s': the prefix length must be 0..%u", s, max);
  if (rc)
    return rc;
  for (unsigned bit = c->prefix; bit < max; bit++) {
    if (c->net[bit / 8] & (0x80 >> (bit % 8))) {
      snprintf(why, whylen, "'%s' has bits set past its /%u prefix", s, c->prefix);
      return WV_ERANGE;
    }
  }
  return 0;
}

static int add_host(wv_netpolicy_t *p, const char *s) {
  char *h = strdup(s);
  if (!h)
    return WV_ENOMEM;
  for (char *c = h; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  size_t n = strlen(h);
  if (n > 1 && h[n - 1] == '.')
    h[n - 1] = '\0';
  p->hosts[p->nhosts++] = h;
  return 0;
}

/* Adds one trimmed entry of the list. */
static int add_entry(wv_netpolicy_t *p, const char *s, char *err, size_t errlen) {
  char why[160] = "";
  size_t n = strlen(s);
  char name[MAX_HOST + 2];
  int rc = parse_cidr(s, &p->cidrs[p->ncidrs], why, sizeof why);
  if (rc == 0) {
    p->ncidrs++;
    return 0;
  }
  if (rc == WV_ERANGE) {
    snprintf(err, errlen, "%s", why);
    return WV_EINVAL;
  }
  /* A host name may end with the root's dot. */
  if (n < sizeof name) {
    memcpy(name, s, n + 1);
    if (n > 1 && name[n - 1] == '.')
      name[n - 1] = '\0';
    if (!strchr(s, '/') && host_name_ok(name))
      return add_host(p, name);
  }
  snprintf(err, errlen, "'%.200s' is not an IP address, a CIDR block or a host name", s);
  return WV_EINVAL;
}

/* Counts the entries of a comma-separated list (an upper bound: empties count). */
static size_t count_entries(const char *s) {
  size_t n = 1;
  for (; *s; s++)
    n += *s == ',';
  return n;
}

static int parse_list(wv_netpolicy_t *p, const char *allow, char *err, size_t errlen) {
  size_t cap = count_entries(allow);
  if (cap > WV_NETPOLICY_MAX_ENTRIES) {
    snprintf(err, errlen, "more than %d entries", WV_NETPOLICY_MAX_ENTRIES);
    return WV_ETOOBIG;
  }
  p->cidrs = calloc(cap, sizeof *p->cidrs);
  p->hosts = calloc(cap, sizeof *p->hosts);
  if (!p->cidrs || !p->hosts)
    return WV_ENOMEM;
  if (allow[strspn(allow, " \t\r\n")] == '\0')
    return 0; /* an empty list */
  for (const char *s = allow;;) {
    size_t len = strcspn(s, ",");
    const char *b = s, *e = s + len;
    while (b < e && isspace((unsigned char)*b))
      b++;
    while (e > b && isspace((unsigned char)e[-1]))
      e--;
    char entry[512];
    if (e == b || (size_t)(e - b) >= sizeof entry) {
      snprintf(err, errlen, e == b ? "an empty entry" : "an entry longer than %zu characters",
               sizeof entry - 1);
      return WV_EINVAL;
    }
    memcpy(entry, b, (size_t)(e - b));
    entry[e - b] = '\0';
    int rc = add_entry(p, entry, err, errlen);
    if (rc)
      return rc;
    if (s[len] != ',')
      return 0;
    s += len + 1;
  }
}

int wv_netpolicy_new(const char *allow, bool allow_private, wv_netpolicy_t **out, char *err,
                     size_t errlen) {
  *out = NULL;
  if (errlen)
    err[0] = '\0';
  wv_netpolicy_t *p = calloc(1, sizeof *p);
  if (!p)
    return WV_ENOMEM;
  p->allow_private = allow_private;
  int rc = parse_list(p, allow ? allow : "", err, errlen);
  if (rc) {
    wv_netpolicy_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int wv_netpolicy_from_config(const wv_config_t *cfg, wv_netpolicy_t **out, char *err,
                             size_t errlen) {
  int rc = wv_netpolicy_new(cfg->outbound_allow, cfg->outbound_allow_private, out, err, errlen);
  if (!rc)
    (*out)->off = !cfg->ssrf_protection;
  return rc;
}

/* ---- checks --------------------------------------------------------------------------- */

bool wv_netpolicy_host_allowed(const wv_netpolicy_t *p, const char *host) {
  if (p->off)
    return true;
  size_t n = strlen(host);
  if (n > 1 && host[n - 1] == '.')
    n--;
  for (size_t i = 0; i < p->nhosts; i++) {
    const char *h = p->hosts[i];
    if (strncmp(h, "*.", 2) == 0) {
      size_t sl = strlen(h + 1); /* ".suffix" */
      if (n > sl && strncasecmp(host + n - sl, h + 1, sl) == 0)
        return true;
    } else if (strlen(h) == n && strncasecmp(host, h, n) == 0) {
      return true;
    }
  }
  return false;
}

static bool cidr_match(const cidr_t *c, int family, const uint8_t *a) {
  return c->family == family && wv_cidr_contains(c, a);
}

/* The family and bytes an address is matched as: ::ffff:a.b.c.d as IPv4. */
static int match_form(const struct sockaddr *sa, const uint8_t **bytes) {
  if (sa->sa_family == AF_INET) {
    *bytes = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr.s_addr;
    return AF_INET;
  }
  const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  *bytes = mapped(b) ? b + 12 : b;
  return mapped(b) ? AF_INET : AF_INET6;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t len) {
  const void *src = sa->sa_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (!inet_ntop(sa->sa_family, src, buf, (socklen_t)len))
    snprintf(buf, len, "?");
}

/* Checks sa; on denial why reads "[host 'h' resolves to ]<addr>, <class>, which ...". */
static int check(const wv_netpolicy_t *p, const char *host, const struct sockaddr *sa, char *why,
                 size_t whylen) {
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) {
    snprintf(why, whylen, "not an IP address");
    return WV_EDENIED;
  }
  wv_netpolicy_class_t c = wv_netpolicy_classify(sa);
  if (p->off || c == WV_NETPOLICY_PUBLIC ||
      (p->allow_private && (c == WV_NETPOLICY_PRIVATE || c == WV_NETPOLICY_SHARED)))
    return 0;
  const uint8_t *bytes;
  int family = match_form(sa, &bytes);
  for (size_t i = 0; i < p->ncidrs; i++)
    if (cidr_match(&p->cidrs[i], family, bytes))
      return 0;
  char text[INET6_ADDRSTRLEN];
  addr_text(sa, text, sizeof text);
  struct in_addr a4;
  struct in6_addr a6;
  bool literal = host && (inet_aton(host, &a4) || inet_pton(AF_INET6, host, &a6) == 1);
  if (host && strcasecmp(host, text) != 0 && literal) {
    snprintf(why, whylen,
             "host '%.120s' resolves to %s, %s, which wave.security.outbound does "
             "not allow",
             host, text, wv_netpolicy_class_text(c));
  } else if (host && strcasecmp(host, text) != 0) {
    /* The caller sees the class, not the address: no map of internal DNS. */
    wv_info("outbound: host '%.120s' resolves to %s, %s: refused", host, text,
            wv_netpolicy_class_text(c));
    snprintf(why, whylen,
             "host '%.120s' resolves to %s, which wave.security.outbound does not allow", host,
             wv_netpolicy_class_text(c));
  } else
    snprintf(why, whylen, "%s is %s, which wave.security.outbound does not allow", text,
             wv_netpolicy_class_text(c));
  return WV_EDENIED;
}

int wv_netpolicy_check_addr(const wv_netpolicy_t *p, const struct sockaddr *sa, char *why,
                            size_t whylen) {
  return check(p, NULL, sa, why, whylen);
}

int wv_netpolicy_check_list(const wv_netpolicy_t *p, const char *host, const struct addrinfo *ai,
                            wv_netpolicy_dest_t *dest, char *why, size_t whylen) {
  size_t n = 0;
  memset(dest, 0, sizeof *dest);
  for (; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    if (++n > WV_NETPOLICY_MAX_ADDRS) {
      snprintf(why, whylen, "'%.200s' resolves to more than %d addresses", host,
               WV_NETPOLICY_MAX_ADDRS);
      return WV_EDENIED;
    }
    if (check(p, host, ai->ai_addr, why, whylen))
      return WV_EDENIED;
    wv_netpolicy_addr_t *d = &dest->addrs[dest->n];
    if (dest->n < WV_NETPOLICY_MAX_DEST && ai->ai_addrlen <= sizeof d->addr) {
      memcpy(&d->addr, ai->ai_addr, ai->ai_addrlen);
      d->len = ai->ai_addrlen;
      addr_text(ai->ai_addr, d->text, sizeof d->text);
      dest->n++;
    }
  }
  if (dest->n == 0) {
    snprintf(why, whylen, "host '%.200s' has no IPv4 or IPv6 address", host);
    return WV_ENOTFOUND;
  }
  return 0;
}

int wv_netpolicy_resolve(const wv_netpolicy_t *p, const char *host, wv_netpolicy_dest_t *dest,
                         char *why, size_t whylen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (!*host || strlen(host) > MAX_HOST + 1) {
    snprintf(why, whylen, "invalid host name '%.200s'", host);
    return WV_EINVAL;
  }
  int g = getaddrinfo(host, NULL, &hints, &ai);
  if (g != 0) {
    snprintf(why, whylen, "cannot resolve host '%.200s': %s", host, gai_strerror(g));
    return g == EAI_MEMORY ? WV_ENOMEM : WV_ENOTFOUND;
  }
  int rc = wv_netpolicy_check_list(p, host, ai, dest, why, whylen);
  freeaddrinfo(ai);
  return rc;
}
