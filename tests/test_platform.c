/* Unit tests for registry/platform (contract §4.7). */
#include "core/arena.h"
#include "core/err.h"
#include "registry/platform.h"
#include "tests/runner.h"

/* Parses s and compares the normalised form. */
static int norm_is(wv_arena_t *a, const char *s, const char *want) {
  wv_platform_t p;
  const char *msg = NULL;
  char buf[WV_PLATFORM_STR];
  int rc = wv_platform_parse(a, s, &p, &msg);
  if (rc == 0)
    wv_platform_format(&p, buf, sizeof buf);
  if (rc || strcmp(buf, want) != 0) {
    fprintf(stderr, "  %s: rc=%d msg=%s got=%s\n", s, rc, msg ? msg : "", rc ? "" : buf);
    return 0;
  }
  return 1;
}

TEST(platform_normalise) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK(norm_is(a, "linux/amd64", "linux/amd64"));
  CHECK(norm_is(a, "amd64", "linux/amd64"));
  CHECK(norm_is(a, "x86_64", "linux/amd64"));
  CHECK(norm_is(a, "linux/x86-64", "linux/amd64"));
  CHECK(norm_is(a, "arm64", "linux/arm64"));
  CHECK(norm_is(a, "aarch64", "linux/arm64"));
  CHECK(norm_is(a, "linux/arm64/v8", "linux/arm64"));
  CHECK(norm_is(a, "linux/arm64/8", "linux/arm64"));
  CHECK(norm_is(a, "linux/aarch64/v8", "linux/arm64"));
  CHECK(norm_is(a, "linux/arm", "linux/arm/v7"));
  CHECK(norm_is(a, "arm", "linux/arm/v7"));
  CHECK(norm_is(a, "linux/arm/7", "linux/arm/v7"));
  CHECK(norm_is(a, "linux/arm/5", "linux/arm/v5"));
  CHECK(norm_is(a, "linux/arm/6", "linux/arm/v6"));
  CHECK(norm_is(a, "linux/arm/v6", "linux/arm/v6"));
  CHECK(norm_is(a, "linux/arm/8", "linux/arm/v8"));
  CHECK(norm_is(a, "linux/amd64/v3", "linux/amd64/v3"));
  CHECK(norm_is(a, " linux/amd64 ", "linux/amd64"));
  CHECK(norm_is(a, "linux//amd64", "linux/amd64")); /* Wave tokenises: empty parts vanish */
}

static int rejects(wv_arena_t *a, const char *s, int want_rc, const char *want_msg) {
  wv_platform_t p;
  const char *msg = NULL;
  int rc = wv_platform_parse(a, s, &p, &msg);
  if (rc != want_rc || !msg || strcmp(msg, want_msg) != 0) {
    fprintf(stderr, "  %s: rc=%d msg=%s\n", s ? s : "(null)", rc, msg ? msg : "(none)");
    return 0;
  }
  return 1;
}

TEST(platform_errors) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK(rejects(a, "", WV_EINVAL, "Missing container platform attribute"));
  CHECK(rejects(a, NULL, WV_EINVAL, "Missing container platform attribute"));
  CHECK(rejects(a, "/", WV_EINVAL, "Missing container platform attribute"));
  CHECK(rejects(a, "linux/ppc64le", WV_EINVAL, "Unsupported container platform: ppc64le"));
  CHECK(rejects(a, "s390x", WV_EINVAL, "Unsupported container platform: s390x"));
  CHECK(rejects(a, "linux/AMD64", WV_EINVAL, "Unsupported container platform: AMD64"));
  CHECK(rejects(a, "linux/amd64/v8/x", WV_EINVAL,
                "Invalid container platform: linux/amd64/v8/x -- offending value: "
                "linux/amd64/v8/x"));
  CHECK(rejects(a, "li nux/amd64", WV_EINVAL, "Unsupported container platform: li nux/amd64"));
}

TEST(platform_list) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_platform_list_t l;
  const char *msg = NULL;
  CHECK_OK(wv_platform_parse_list(a, "linux/amd64,linux/arm64", &l, &msg));
  CHECK_EQ_INT(l.n, 2);
  CHECK_EQ_STR(wv_platform_list_format(a, &l), "linux/amd64,linux/arm64");
  CHECK_OK(wv_platform_parse_list(a, "x86_64, linux/aarch64/v8 ,", &l, &msg));
  CHECK_EQ_STR(wv_platform_list_format(a, &l), "linux/amd64,linux/arm64");
  CHECK_OK(wv_platform_parse_list(a, "linux/arm/v7", &l, &msg));
  CHECK_EQ_STR(wv_platform_list_format(a, &l), "linux/arm/v7");
  CHECK_EQ_INT(wv_platform_parse_list(a, "linux/amd64,linux/mips", &l, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Unsupported container platform: mips");
  CHECK_EQ_INT(wv_platform_parse_list(a, " , ", &l, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Missing container platform attribute");
  CHECK_EQ_INT(
      wv_platform_parse_list(a, "amd64,amd64,amd64,amd64,amd64,amd64,amd64,amd64,arm64", &l, &msg),
      WV_ETOOBIG);
}

TEST(platform_match_entries) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_platform_t amd, arm64, armv7, arm64v8;
  CHECK_OK(wv_platform_parse(a, "linux/amd64", &amd, NULL));
  CHECK_OK(wv_platform_parse(a, "linux/arm64", &arm64, NULL));
  CHECK_OK(wv_platform_parse(a, "linux/arm/v7", &armv7, NULL));
  CHECK_OK(wv_platform_parse(a, "linux/arm64/v8", &arm64v8, NULL));
  CHECK(wv_platform_equal(&arm64, &arm64v8));
  CHECK(wv_platform_match_entry(&amd, "linux", "amd64", NULL));
  CHECK(wv_platform_match_entry(&amd, "linux", "x86_64", ""));
  CHECK(!wv_platform_match_entry(&amd, "linux", "arm64", NULL));
  CHECK(!wv_platform_match_entry(&amd, "windows", "amd64", NULL));
  CHECK(!wv_platform_match_entry(&amd, NULL, "amd64", NULL));
  CHECK(!wv_platform_match_entry(&amd, "unknown", "unknown", NULL)); /* attestations */
  CHECK(!wv_platform_match_entry(&amd, "linux", "amd64", "v3"));
  CHECK(wv_platform_match_entry(&arm64, "linux", "arm64", "v8"));
  CHECK(wv_platform_match_entry(&arm64, "linux", "arm64", NULL));
  CHECK(wv_platform_match_entry(&arm64, "linux", "aarch64", "8"));
  CHECK(!wv_platform_match_entry(&arm64, "linux", "arm64", "v9"));
  CHECK(!wv_platform_match_entry(&arm64, "linux", "arm", "v7"));
  CHECK(wv_platform_match_entry(&armv7, "linux", "arm", "v7"));
  CHECK(wv_platform_match_entry(&armv7, "linux", "arm", NULL));
  CHECK(!wv_platform_match_entry(&armv7, "linux", "arm", "v6"));
  wv_platform_list_t l;
  CHECK_OK(wv_platform_parse_list(a, "linux/amd64,linux/arm64", &l, NULL));
  CHECK(wv_platform_list_match_entry(&l, "linux", "arm64", "v8"));
  CHECK(wv_platform_list_match_entry(&l, "linux", "amd64", NULL));
  CHECK(!wv_platform_list_match_entry(&l, "linux", "arm", "v7"));
  CHECK_EQ_STR(wv_platform_arch_canonical("x86-64"), "amd64");
  CHECK_EQ_STR(wv_platform_arch_canonical("riscv64"), "riscv64");
}

WV_TESTS(T(platform_normalise), T(platform_errors), T(platform_list), T(platform_match_entries))
