/* Unit tests for registry/upstream: challenge parsing and endpoints. The auth
 * flows themselves run against real docker-registry instances in the
 * end-to-end proxy tests. */
#include "core/err.h"
#include "registry/upstream.h"
#include "tests/runner.h"

TEST(challenge_bearer) {
  wv_auth_challenge_t c;
  CHECK_OK(wv_auth_challenge_parse(
      "Bearer realm=\"http://127.0.0.1:5010/token\",service=\"local-registry\","
      "scope=\"repository:library/busybox:pull\"",
      &c));
  CHECK_EQ_STR(c.scheme, "Bearer");
  CHECK_EQ_STR(c.realm, "http://127.0.0.1:5010/token");
  CHECK_EQ_STR(c.service, "local-registry");
  CHECK_EQ_STR(c.scope, "repository:library/busybox:pull");
  wv_auth_challenge_free(&c);
}

TEST(challenge_basic_and_escapes) {
  wv_auth_challenge_t c;
  CHECK_OK(wv_auth_challenge_parse("Basic realm=\"basic \\\"realm\\\"\"", &c));
  CHECK_EQ_STR(c.scheme, "Basic");
  CHECK_EQ_STR(c.realm, "basic \"realm\"");
  CHECK(c.service == NULL);
  wv_auth_challenge_free(&c);
  CHECK_OK(wv_auth_challenge_parse("Bearer realm=https://auth.example/token, service=reg", &c));
  CHECK_EQ_STR(c.realm, "https://auth.example/token");
  CHECK_EQ_STR(c.service, "reg");
  wv_auth_challenge_free(&c);
}

TEST(challenge_rejects) {
  wv_auth_challenge_t c;
  CHECK_EQ_INT(wv_auth_challenge_parse("Digest realm=\"x\"", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("Bearer realm=\"ftp://x/token\"", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("Bearer service=\"x\"", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("Bearer realm=\"http://x/unterminated", &c), WV_EPARSE);
  CHECK_EQ_INT(wv_auth_challenge_parse("", &c), WV_EPARSE);
}

TEST(endpoints) {
  wv_config_registry_t confs[] = {{.host = "reg.lab:5000", .insecure = true},
                                  {.host = "quay.io", .username = "u", .password = "p"}};
  wv_registries_t regs = {confs, 2};
  wv_upstream_t *u;
  CHECK_OK(wv_upstream_new(&u, &regs));
  char url[256];
  CHECK_OK(wv_upstream_base_url(u, "docker.io", url, sizeof url));
  CHECK_EQ_STR(url, "https://registry-1.docker.io");
  CHECK_OK(wv_upstream_base_url(u, "quay.io", url, sizeof url));
  CHECK_EQ_STR(url, "https://quay.io");
  CHECK_OK(wv_upstream_base_url(u, "reg.lab:5000", url, sizeof url));
  CHECK_EQ_STR(url, "http://reg.lab:5000");
  CHECK_OK(wv_upstream_base_url(u, "127.0.0.1:5001", url, sizeof url));
  CHECK_EQ_STR(url, "http://127.0.0.1:5001");
  CHECK_OK(wv_upstream_base_url(u, "localhost:5000", url, sizeof url));
  CHECK_EQ_STR(url, "http://localhost:5000");
  CHECK_OK(wv_upstream_base_url(u, "127.example.com", url, sizeof url));
  CHECK_EQ_STR(url, "https://127.example.com");
  CHECK_EQ_INT(wv_upstream_base_url(u, "quay.io", url, 8), WV_ETOOBIG);
  wv_upstream_free(u);
}

WV_TESTS(T(challenge_bearer), T(challenge_basic_and_escapes), T(challenge_rejects), T(endpoints))
