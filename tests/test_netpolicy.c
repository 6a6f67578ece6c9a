/* Unit tests for core/netpolicy: address classes, the allow list, host checks. */
#include "core/config.h"
#include "core/err.h"
#include "core/netpolicy.h"
#include "tests/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>

/* A sockaddr for a numeric IPv4 or IPv6 address (aborts the test binary on a typo). */
static struct sockaddr_storage sa_of(const char *text) {
  struct sockaddr_storage ss = {0};
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
  } else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
  } else {
    fprintf(stderr, "bad address literal in test: %s\n", text);
    abort();
  }
  return ss;
}

static wv_netpolicy_class_t cls(const char *text) {
  struct sockaddr_storage ss = sa_of(text);
  return wv_netpolicy_classify((struct sockaddr *)&ss);
}

TEST(classify_ipv4) {
  static const struct {
    const char *addr;
    wv_netpolicy_class_t want;
  } cases[] = {
      {"8.8.8.8", WV_NETPOLICY_PUBLIC},         {"1.1.1.1", WV_NETPOLICY_PUBLIC},
      {"127.0.0.1", WV_NETPOLICY_LOOPBACK},     {"127.255.255.254", WV_NETPOLICY_LOOPBACK},
      {"10.0.0.1", WV_NETPOLICY_PRIVATE},       {"10.255.255.255", WV_NETPOLICY_PRIVATE},
      {"172.16.0.1", WV_NETPOLICY_PRIVATE},     {"172.31.255.255", WV_NETPOLICY_PRIVATE},
      {"172.15.255.255", WV_NETPOLICY_PUBLIC},  {"172.32.0.0", WV_NETPOLICY_PUBLIC},
      {"192.168.1.1", WV_NETPOLICY_PRIVATE},    {"192.169.0.1", WV_NETPOLICY_PUBLIC},
      {"100.64.0.1", WV_NETPOLICY_SHARED},      {"100.127.255.255", WV_NETPOLICY_SHARED},
      {"100.63.255.255", WV_NETPOLICY_PUBLIC},  {"100.128.0.0", WV_NETPOLICY_PUBLIC},
      {"169.254.0.1", WV_NETPOLICY_LINK_LOCAL}, {"169.254.169.254", WV_NETPOLICY_METADATA},
      {"169.254.170.2", WV_NETPOLICY_METADATA}, {"100.100.100.200", WV_NETPOLICY_METADATA},
      {"0.0.0.0", WV_NETPOLICY_UNSPECIFIED},    {"0.1.2.3", WV_NETPOLICY_UNSPECIFIED},
      {"224.0.0.1", WV_NETPOLICY_MULTICAST},    {"239.255.255.250", WV_NETPOLICY_MULTICAST},
      {"240.0.0.1", WV_NETPOLICY_RESERVED},     {"255.255.255.255", WV_NETPOLICY_RESERVED},
      {"192.0.2.7", WV_NETPOLICY_RESERVED},     {"198.18.0.1", WV_NETPOLICY_RESERVED},
      {"198.51.100.1", WV_NETPOLICY_RESERVED},  {"203.0.113.9", WV_NETPOLICY_RESERVED},
      {"192.0.0.8", WV_NETPOLICY_RESERVED},     {"223.255.255.255", WV_NETPOLICY_PUBLIC},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cls(cases[i].addr) != cases[i].want)
      fprintf(stderr, "  %s: got %s\n", cases[i].addr, wv_netpolicy_class_text(cls(cases[i].addr)));
    CHECK_EQ_INT(cls(cases[i].addr), cases[i].want);
  }
}

TEST(classify_ipv6) {
  static const struct {
    const char *addr;
    wv_netpolicy_class_t want;
  } cases[] = {
      {"2606:4700::1111", WV_NETPOLICY_PUBLIC},
      {"::1", WV_NETPOLICY_LOOPBACK},
      {"::", WV_NETPOLICY_UNSPECIFIED},
      {"::ffff:127.0.0.1", WV_NETPOLICY_LOOPBACK}, /* IPv4-mapped: the IPv4 address counts */
      {"::ffff:169.254.169.254", WV_NETPOLICY_METADATA},
      {"::ffff:10.1.2.3", WV_NETPOLICY_PRIVATE},
      {"::ffff:8.8.8.8", WV_NETPOLICY_PUBLIC},
      {"::127.0.0.1", WV_NETPOLICY_RESERVED},     /* IPv4-compatible (deprecated) */
      {"64:ff9b::7f00:1", WV_NETPOLICY_LOOPBACK}, /* NAT64 of 127.0.0.1 */
      {"64:ff9b::808:808", WV_NETPOLICY_PUBLIC},  /* NAT64 of 8.8.8.8 */
      {"64:ff9b:1::1", WV_NETPOLICY_PRIVATE},     /* local-use NAT64 */
      {"2002:7f00:1::1", WV_NETPOLICY_LOOPBACK},  /* 6to4 of 127.0.0.1 */
      {"2002:808:808::1", WV_NETPOLICY_PUBLIC},
      {"2001::1", WV_NETPOLICY_RESERVED},     /* Teredo */
      {"2001:db8::1", WV_NETPOLICY_RESERVED}, /* documentation */
      {"100::1", WV_NETPOLICY_RESERVED},      /* discard */
      {"fc00::1", WV_NETPOLICY_PRIVATE},
      {"fd12:3456::1", WV_NETPOLICY_PRIVATE},
      {"fd00:ec2::254", WV_NETPOLICY_METADATA}, /* AWS IMDS over IPv6 */
      {"fe80::1", WV_NETPOLICY_LINK_LOCAL},
      {"febf::1", WV_NETPOLICY_LINK_LOCAL},
      {"fec0::1", WV_NETPOLICY_PRIVATE}, /* deprecated site-local */
      {"ff02::1", WV_NETPOLICY_MULTICAST},
      {"2a00:1450::1", WV_NETPOLICY_PUBLIC},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cls(cases[i].addr) != cases[i].want)
      fprintf(stderr, "  %s: got %s\n", cases[i].addr, wv_netpolicy_class_text(cls(cases[i].addr)));
    CHECK_EQ_INT(cls(cases[i].addr), cases[i].want);
  }
}

static int check(const wv_netpolicy_t *p, const char *addr, char *why, size_t whylen) {
  struct sockaddr_storage ss = sa_of(addr);
  return wv_netpolicy_check_addr(p, (struct sockaddr *)&ss, why, whylen);
}

TEST(default_policy_allows_only_public) {
  wv_netpolicy_t *p;
  char err[256], why[256];
  CHECK_OK(wv_netpolicy_new("", false, &p, err, sizeof err));
  CHECK_OK(check(p, "8.8.8.8", why, sizeof why));
  CHECK_OK(check(p, "2606:4700::1111", why, sizeof why));
  const char *denied[] = {"127.0.0.1", "10.0.0.1", "100.64.1.1", "169.254.169.254",
                          "0.0.0.0",   "::1",      "::",         "::ffff:127.0.0.1",
                          "fe80::1",   "fd00::1",  "224.0.0.1",  "64:ff9b::a9fe:a9fe"};
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
    if (check(p, denied[i], why, sizeof why) != WV_EDENIED)
      fprintf(stderr, "  %s was allowed\n", denied[i]);
    CHECK_EQ_INT(check(p, denied[i], why, sizeof why), WV_EDENIED);
  }
  CHECK_EQ_INT(check(p, "169.254.169.254", why, sizeof why), WV_EDENIED);
  CHECK_EQ_STR(why, "169.254.169.254 is a cloud metadata address, which wave.security.outbound "
                    "does not allow");
  wv_netpolicy_free(p);
}

TEST(allow_private_opens_lans_only) {
  wv_netpolicy_t *p;
  char err[256], why[256];
  CHECK_OK(wv_netpolicy_new(NULL, true, &p, err, sizeof err));
  CHECK_OK(check(p, "10.1.2.3", why, sizeof why));
  CHECK_OK(check(p, "192.168.0.10", why, sizeof why));
  CHECK_OK(check(p, "172.20.0.1", why, sizeof why));
  CHECK_OK(check(p, "100.64.0.9", why, sizeof why));
  CHECK_OK(check(p, "fd00::5", why, sizeof why));
  CHECK_OK(check(p, "::ffff:10.0.0.1", why, sizeof why));
  CHECK_EQ_INT(check(p, "127.0.0.1", why, sizeof why), WV_EDENIED);
  CHECK_HAS(why, "a loopback address");
  CHECK_EQ_INT(check(p, "169.254.169.254", why, sizeof why), WV_EDENIED);
  CHECK_EQ_INT(check(p, "100.100.100.200", why, sizeof why), WV_EDENIED);
  CHECK_EQ_INT(check(p, "fe80::1", why, sizeof why), WV_EDENIED);
  CHECK_EQ_INT(check(p, "0.0.0.0", why, sizeof why), WV_EDENIED);
  wv_netpolicy_free(p);
}

TEST(allow_list_cidrs) {
  wv_netpolicy_t *p;
  char err[256], why[256];
  CHECK_OK(wv_netpolicy_new(" 127.0.0.1/32 , 10.20.0.0/16,fd00:1::/32, ::1,169.254.169.254", false,
                            &p, err, sizeof err));
  CHECK_OK(check(p, "127.0.0.1", why, sizeof why));
  CHECK_OK(check(p, "::ffff:127.0.0.1", why, sizeof why)); /* mapped matches the IPv4 entry */
  CHECK_EQ_INT(check(p, "127.0.0.2", why, sizeof why), WV_EDENIED);
  CHECK_OK(check(p, "10.20.255.1", why, sizeof why));
  CHECK_EQ_INT(check(p, "10.21.0.1", why, sizeof why), WV_EDENIED);
  CHECK_OK(check(p, "fd00:1:ffff::1", why, sizeof why));
  CHECK_EQ_INT(check(p, "fd00:2::1", why, sizeof why), WV_EDENIED);
  CHECK_OK(check(p, "::1", why, sizeof why));
  CHECK_OK(check(p, "169.254.169.254", why, sizeof why)); /* an explicit entry wins */
  CHECK_EQ_INT(check(p, "169.254.169.253", why, sizeof why), WV_EDENIED);
  wv_netpolicy_free(p);
  /* Odd prefix lengths and /0. */
  CHECK_OK(wv_netpolicy_new("192.168.4.0/23,::/0", false, &p, err, sizeof err));
  CHECK_OK(check(p, "192.168.5.200", why, sizeof why));
  CHECK_EQ_INT(check(p, "192.168.6.1", why, sizeof why), WV_EDENIED);
  CHECK_OK(check(p, "fe80::1", why, sizeof why));
  wv_netpolicy_free(p);
}

TEST(allow_list_host_names) {
  wv_netpolicy_t *p;
  char err[256];
  CHECK_OK(
      wv_netpolicy_new("files.lab.example,*.corp.example., localhost", false, &p, err, sizeof err));
  CHECK(wv_netpolicy_host_allowed(p, "files.lab.example"));
  CHECK(wv_netpolicy_host_allowed(p, "FILES.Lab.Example."));
  CHECK(!wv_netpolicy_host_allowed(p, "x.files.lab.example"));
  CHECK(!wv_netpolicy_host_allowed(p, "lab.example"));
  CHECK(wv_netpolicy_host_allowed(p, "a.corp.example"));
  CHECK(wv_netpolicy_host_allowed(p, "a.b.corp.example"));
  CHECK(!wv_netpolicy_host_allowed(p, "corp.example")); /* *. is subdomains only */
  CHECK(!wv_netpolicy_host_allowed(p, "evilcorp.example"));
  CHECK(wv_netpolicy_host_allowed(p, "localhost"));
  CHECK(!wv_netpolicy_host_allowed(p, "127.0.0.1"));
  wv_netpolicy_free(p);
}

static bool bad_list(const char *list, const char *want) {
  wv_netpolicy_t *p = (wv_netpolicy_t *)1;
  char err[256];
  int rc = wv_netpolicy_new(list, false, &p, err, sizeof err);
  if (rc == 0 || p != NULL || !strstr(err, want)) {
    fprintf(stderr, "  %s: rc=%d err='%s', want '%s'\n", list, rc, rc ? err : "", want);
    wv_netpolicy_free(rc == 0 ? p : NULL);
    return false;
  }
  return true;
}

TEST(bad_allow_lists_are_refused_clearly) {
  CHECK(bad_list("10.0.0.1/8", "'10.0.0.1/8' has bits set past its /8 prefix"));
  CHECK(bad_list("10.0.0.0/33", "'10.0.0.0/33': the prefix length must be 0..32"));
  CHECK(bad_list("::/129", "the prefix length must be 0..128"));
  CHECK(bad_list("10.0.0.0/", "prefix length"));
  CHECK(bad_list("10.0.0.0/x", "prefix length"));
  CHECK(bad_list("http://files.lab", "'http://files.lab' is not an IP address, a CIDR block"));
  CHECK(bad_list("127.1", "'127.1' is not an IP address")); /* numeric, not a name */
  CHECK(bad_list("a..b", "'a..b' is not"));
  CHECK(bad_list("-a.b", "'-a.b' is not"));
  CHECK(bad_list("a_b.c", "'a_b.c' is not"));
  CHECK(bad_list("10.0.0.0/8,,fd00::/8", "an empty entry"));
  CHECK(bad_list("10.0.0.0/8,", "an empty entry"));
  char many[WV_NETPOLICY_MAX_ENTRIES * 4 + 8] = "";
  for (int i = 0; i <= WV_NETPOLICY_MAX_ENTRIES; i++)
    strcat(many, i ? ",h" : "h");
  CHECK(bad_list(many, "more than 256 entries"));
}

/* A hand-made resolver answer: one addrinfo per address, in order. */
typedef struct {
  struct addrinfo ai[4];
  struct sockaddr_storage ss[4];
} answer_t;

static const struct addrinfo *answer(answer_t *a, const char *const *addrs, size_t n) {
  memset(a, 0, sizeof *a);
  for (size_t i = 0; i < n; i++) {
    a->ss[i] = sa_of(addrs[i]);
    a->ai[i].ai_family = a->ss[i].ss_family;
    a->ai[i].ai_socktype = SOCK_STREAM;
    a->ai[i].ai_addr = (struct sockaddr *)&a->ss[i];
    a->ai[i].ai_addrlen =
        a->ss[i].ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    a->ai[i].ai_next = i + 1 < n ? &a->ai[i + 1] : NULL;
  }
  return a->ai;
}

TEST(host_with_one_private_address_is_denied) {
  wv_netpolicy_t *p;
  wv_netpolicy_dest_t d;
  answer_t a;
  char err[256], why[256];
  CHECK_OK(wv_netpolicy_new("", false, &p, err, sizeof err));
  const char *mixed[] = {"93.184.216.34", "2606:2800::1", "10.0.0.7"};
  CHECK_EQ_INT(
      wv_netpolicy_check_list(p, "rebind.example", answer(&a, mixed, 3), &d, why, sizeof why),
      WV_EDENIED);
  /* A name's address stays in the log: the client learns the class only. */
  CHECK_EQ_STR(why, "host 'rebind.example' resolves to a private address, which "
                    "wave.security.outbound does not allow");
  const char *mapped[] = {"93.184.216.34", "::ffff:169.254.169.254"};
  CHECK_EQ_INT(wv_netpolicy_check_list(p, "m.example", answer(&a, mapped, 2), &d, why, sizeof why),
               WV_EDENIED);
  CHECK_HAS(why, "a cloud metadata address");
  const char *pub[] = {"2606:2800::1", "93.184.216.34"};
  CHECK_OK(wv_netpolicy_check_list(p, "ok.example", answer(&a, pub, 2), &d, why, sizeof why));
  CHECK_EQ_INT(d.n, 2);
  CHECK_EQ_STR(d.addrs[0].text, "2606:2800::1"); /* resolver order is kept */
  CHECK_EQ_STR(d.addrs[1].text, "93.184.216.34");
  CHECK_EQ_INT(wv_netpolicy_check_list(p, "none.example", NULL, &d, why, sizeof why), WV_ENOTFOUND);
  wv_netpolicy_free(p);
  /* With allow-private the same mixed answer passes; loopback among them still fails. */
  CHECK_OK(wv_netpolicy_new("", true, &p, err, sizeof err));
  CHECK_OK(wv_netpolicy_check_list(p, "rebind.example", answer(&a, mixed, 3), &d, why, sizeof why));
  CHECK_EQ_INT(d.n, 3);
  const char *lo[] = {"10.0.0.7", "127.0.0.1"};
  CHECK_EQ_INT(wv_netpolicy_check_list(p, "lo.example", answer(&a, lo, 2), &d, why, sizeof why),
               WV_EDENIED);
  wv_netpolicy_free(p);
}

TEST(resolve_literals_and_localhost) {
  wv_netpolicy_t *p;
  wv_netpolicy_dest_t d;
  char err[256], why[256];
  CHECK_OK(wv_netpolicy_new("", false, &p, err, sizeof err));
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "127.0.0.1", &d, why, sizeof why), WV_EDENIED);
  CHECK_EQ_STR(why, "127.0.0.1 is a loopback address, which wave.security.outbound does not allow");
  /* Other spellings of an IPv4 address resolve to the same address. */
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "127.1", &d, why, sizeof why), WV_EDENIED);
  CHECK_HAS(why, "resolves to 127.0.0.1, a loopback address");
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "2130706433", &d, why, sizeof why), WV_EDENIED);
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "0x7f.0.0.1", &d, why, sizeof why), WV_EDENIED);
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "::1", &d, why, sizeof why), WV_EDENIED);
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "0.0.0.0", &d, why, sizeof why), WV_EDENIED);
  CHECK_HAS(why, "an unspecified address");
  /* localhost resolves to loopback addresses only, whatever /etc/hosts lists. */
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "localhost", &d, why, sizeof why), WV_EDENIED);
  CHECK_HAS(why, "host 'localhost' resolves to ");
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "no-such-host.invalid", &d, why, sizeof why), WV_ENOTFOUND);
  CHECK_HAS(why, "cannot resolve host 'no-such-host.invalid'");
  CHECK_EQ_INT(wv_netpolicy_resolve(p, "", &d, why, sizeof why), WV_EINVAL);
  wv_netpolicy_free(p);
  CHECK_OK(wv_netpolicy_new("127.0.0.0/8", false, &p, err, sizeof err));
  CHECK_OK(wv_netpolicy_resolve(p, "127.0.0.1", &d, why, sizeof why));
  CHECK_EQ_INT(d.n, 1);
  CHECK_EQ_STR(d.addrs[0].text, "127.0.0.1");
  CHECK_EQ_INT(d.addrs[0].addr.ss_family, AF_INET);
  wv_netpolicy_free(p);
}

TEST(policy_from_config) {
  wv_config_t cfg;
  wv_netpolicy_t *p;
  char err[256], why[256];
  CHECK_OK(wv_config_defaults(&cfg));
  CHECK(!cfg.outbound_allow_private);
  CHECK_EQ_STR(cfg.outbound_allow, "");
  CHECK_OK(wv_netpolicy_from_config(&cfg, &p, err, sizeof err));
  CHECK_EQ_INT(check(p, "10.0.0.1", why, sizeof why), WV_EDENIED);
  wv_netpolicy_free(p);
  cfg.outbound_allow_private = true;
  CHECK_OK(wv_netpolicy_from_config(&cfg, &p, err, sizeof err));
  CHECK_OK(check(p, "10.0.0.1", why, sizeof why));
  CHECK_EQ_INT(check(p, "127.0.0.1", why, sizeof why), WV_EDENIED);
  CHECK(!wv_netpolicy_host_allowed(p, "localhost"));
  wv_netpolicy_free(p);
  /* Protection off (Wave's switch): everything passes, every host is connected to as usual. */
  CHECK(cfg.ssrf_protection);
  cfg.ssrf_protection = false;
  CHECK_OK(wv_netpolicy_from_config(&cfg, &p, err, sizeof err));
  CHECK_OK(check(p, "169.254.169.254", why, sizeof why));
  CHECK(wv_netpolicy_host_allowed(p, "localhost"));
  wv_netpolicy_free(p);
  wv_config_free(&cfg);
}

WV_TESTS(T(classify_ipv4), T(classify_ipv6), T(default_policy_allows_only_public),
         T(allow_private_opens_lans_only), T(allow_list_cidrs), T(allow_list_host_names),
         T(bad_allow_lists_are_refused_clearly), T(host_with_one_private_address_is_denied),
         T(resolve_literals_and_localhost), T(policy_from_config))
