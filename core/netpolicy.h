/*
 * core/netpolicy.h — the SSRF policy for outbound URLs taken from requests
 * (architecture §6): build contexts and freeze-build layer locations that waved
 * fetches itself. Container registries named in image references are not
 * subject to it (labs run registries on private networks; docs/security.md).
 *
 * An address is classified (loopback, private, link-local, cloud metadata,
 * ...); only public addresses are allowed unless config.yml allows more:
 *   wave.security.outbound.allow-private  RFC 1918, 100.64/10, fc00::/7
 *   wave.security.outbound.allow          CIDRs, addresses and host names
 *                                         ("*.lab.example" = any subdomain)
 * A host name in the allow list is trusted whatever it resolves to; any other
 * host is resolved once and every address it resolves to must be allowed
 * (one private address among public ones denies the host), so DNS cannot pick
 * a different answer for the connection than the one that was checked: the
 * caller connects to the returned address (http/client.c pins it).
 *
 * Leaf module: libc only. A policy is immutable once made and may be shared
 * by threads; wv_netpolicy_free() releases it.
 */
#ifndef WV_NETPOLICY_H
#define WV_NETPOLICY_H

#include "core/config.h"

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define WV_NETPOLICY_MAX_ENTRIES 256 /* entries of wave.security.outbound.allow */
#define WV_NETPOLICY_MAX_ADDRS 64    /* addresses of one host that are checked */

typedef enum {
  WV_NETPOLICY_PUBLIC = 0,
  WV_NETPOLICY_LOOPBACK,    /* 127/8, ::1 */
  WV_NETPOLICY_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10, 64:ff9b:1::/48 */
  WV_NETPOLICY_SHARED,      /* 100.64/10 (carrier-grade NAT) */
  WV_NETPOLICY_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
  WV_NETPOLICY_METADATA,    /* 169.254.169.254, 169.254.170.2, 100.100.100.200, fd00:ec2::254 */
  WV_NETPOLICY_UNSPECIFIED, /* 0/8, :: — Linux connects 0.0.0.0 to the local host */
  WV_NETPOLICY_MULTICAST,   /* 224/4, ff00::/8 */
  WV_NETPOLICY_RESERVED,    /* 240/4, broadcast, documentation, benchmarking, Teredo, ::/8 rest */
} wv_netpolicy_class_t;

typedef struct wv_netpolicy wv_netpolicy_t;

#define WV_NETPOLICY_MAX_DEST 8 /* checked addresses kept to connect to, resolver order */

/* One checked address. */
typedef struct {
  struct sockaddr_storage addr; /* port 0; the caller supplies the URL's port */
  socklen_t len;
  char text[64]; /* numeric form, e.g. "127.0.0.1" or "::1" */
} wv_netpolicy_addr_t;

/* The addresses a checked host may be connected to (all of them passed). */
typedef struct {
  wv_netpolicy_addr_t addrs[WV_NETPOLICY_MAX_DEST];
  size_t n;
} wv_netpolicy_dest_t;

/*
 * Parses an allow list (entries separated by commas, blanks around them
 * ignored; "" = none) into *out. Returns 0, WV_EINVAL with a reason naming the
 * bad entry in err, WV_ETOOBIG past WV_NETPOLICY_MAX_ENTRIES, or WV_ENOMEM.
 */
int wv_netpolicy_new(const char *allow, bool allow_private, wv_netpolicy_t **out, char *err,
                     size_t errlen);
/* The policy of cfg's wave.security.* keys; as wv_netpolicy_new(). With
 * wave.security.ssrf-protection.enabled false it allows everything (every
 * host counts as named by the allow list). */
int wv_netpolicy_from_config(const wv_config_t *cfg, wv_netpolicy_t **out, char *err,
                             size_t errlen);
void wv_netpolicy_free(wv_netpolicy_t *p);

/* The class of an IPv4/IPv6 socket address; IPv4-mapped, NAT64 and 6to4 IPv6
 * addresses are classified by the IPv4 address they embed. */
wv_netpolicy_class_t wv_netpolicy_classify(const struct sockaddr *sa);
/* "a loopback address", "a public address", ... (static). */
const char *wv_netpolicy_class_text(wv_netpolicy_class_t c);

/* True when host (a URL's host, brackets removed) is named by the allow list. */
bool wv_netpolicy_host_allowed(const wv_netpolicy_t *p, const char *host);
/* 0 when the policy allows connecting to sa, else WV_EDENIED with the reason in why. */
int wv_netpolicy_check_addr(const wv_netpolicy_t *p, const struct sockaddr *sa, char *why,
                            size_t whylen);

/*
 * Checks every address of the list ai (what host resolved to) and keeps the
 * first WV_NETPOLICY_MAX_DEST of them, in order, as those to connect to. Returns 0, WV_EDENIED
 * naming the first refused address in why, or WV_ENOTFOUND when ai holds no IPv4/IPv6 address.
 */
int wv_netpolicy_check_list(const wv_netpolicy_t *p, const char *host, const struct addrinfo *ai,
                            wv_netpolicy_dest_t *dest, char *why, size_t whylen);

/*
 * Resolves host once (getaddrinfo; blocks, so call it from a worker thread)
 * and applies wv_netpolicy_check_list. Returns as that, or WV_ENOTFOUND when
 * the name does not resolve.
 */
int wv_netpolicy_resolve(const wv_netpolicy_t *p, const char *host, wv_netpolicy_dest_t *dest,
                         char *why, size_t whylen);

#endif
