/*
 * tests/test_scan_version.c — version orders of every ecosystem the matcher
 * uses, with the cases that break naive comparisons: epochs, '~', revisions,
 * pre-releases, post/dev releases, local versions, leading zeros.
 */
#include "core/err.h"
#include "scan/version.h"
#include "tests/runner.h"

typedef struct {
  const char *a, *b;
  int want; /* -1: a < b, 0: equal, 1: a > b */
} vcase_t;

/* Checks each case both ways round (antisymmetry) and reports every failure. */
static int run_cases(wv_vscheme_t s, const vcase_t *c, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    int x = 99, y = 99;
    int r1 = wv_version_compare(s, c[i].a, c[i].b, &x);
    int r2 = wv_version_compare(s, c[i].b, c[i].a, &y);
    if (r1 || r2 || x != c[i].want || y != -c[i].want) {
      fprintf(stderr, "  %s: %s vs %s: got %d/%d (rc %d/%d), want %d\n", wv_version_scheme_name(s),
              c[i].a, c[i].b, x, y, r1, r2, c[i].want);
      bad++;
    }
  }
  return bad;
}

#define RUN(s, cases) CHECK_EQ_INT(run_cases(s, cases, sizeof cases / sizeof cases[0]), 0)

TEST(dpkg_order) {
  static const vcase_t c[] = {
      {"1.0", "1.0", 0},
      {"1.0-1", "1.0-2", -1},
      {"1.0", "1.0-0", 0},    /* an absent revision is "0" */
      {"1:1.0", "2.0", 1},    /* epoch beats everything */
      {"0:1.0", "1.0", 0},    /* epoch 0 is no epoch */
      {"1.0~rc1", "1.0", -1}, /* tilde sorts before the end */
      {"1.0~rc1", "1.0~rc2", -1},
      {"1.0~~", "1.0~", -1},
      {"1.0~", "1.0", -1},
      {"1.0", "1.0a", -1},  /* letters after the end */
      {"1.0a", "1.0+", -1}, /* letters before non-letters */
      {"1.0.1", "1.0a", 1},
      {"2.30-1", "2.4-1", 1},               /* numeric, not lexical */
      {"1.01", "1.1", 0},                   /* leading zeros do not count */
      {"3.0.11-1~deb12u2", "3.0.11-1", -1}, /* security update of a backport */
      {"3.0.11-1~deb12u2", "3.0.11-1~deb12u1", 1},
      {"1.2.3-1+b1", "1.2.3-1", 1}, /* binNMU */
      {"7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1},
      {"1:2.38-4", "2.40-1", 1},
  };
  RUN(WV_VER_DPKG, c);
  int x;
  CHECK_EQ_INT(wv_version_compare(WV_VER_DPKG, "a:1.0", "1.0", &x), WV_EPARSE);
  CHECK_EQ_INT(wv_version_compare(WV_VER_DPKG, "1.0-", "1.0", &x), WV_EPARSE);
  CHECK_EQ_INT(wv_version_compare(WV_VER_DPKG, "", "1.0", &x), WV_EPARSE);
  CHECK(!wv_version_valid(WV_VER_DPKG, "1.0 beta"));
}

TEST(apk_order) {
  static const vcase_t c[] = {
      {"1.0", "1.0", 0},
      {"1.0-r0", "1.0-r1", -1},
      {"1.0-r10", "1.0-r9", 1},
      {"1.0", "1.0-r0", -1},
      {"1.0_rc1", "1.0", -1}, /* pre-release suffixes sort before */
      {"1.0_alpha1", "1.0_beta1", -1},
      {"1.0_beta2", "1.0_pre1", -1},
      {"1.0_pre1", "1.0_rc1", -1},
      {"1.0_p1", "1.0", 1}, /* post-release suffixes after */
      {"1.0_git20230101", "1.0", 1},
      {"1.0a", "1.0", 1},
      {"1.0a", "1.0b", -1},
      {"1.0a", "1.0.1", -1},
      {"1.2.10", "1.2.9", 1},
      {"3.1.4-r5", "3.1.4_p1-r0", -1},
      {"1.01", "1.1", -1}, /* a leading zero makes a fraction */
      {"1.001", "1.01", -1},
      {"2.36.1-r0", "2.36.1_rc2-r0", 1},
  };
  RUN(WV_VER_APK, c);
  CHECK(!wv_version_valid(WV_VER_APK, "1.0-1"));
  CHECK(!wv_version_valid(WV_VER_APK, "1.0_bogus"));
  CHECK(!wv_version_valid(WV_VER_APK, "v1.0"));
  CHECK(wv_version_valid(WV_VER_APK, "1.2.3_rc1_p2-r3"));
}

TEST(pep440_order) {
  static const vcase_t c[] = {
      {"1.0", "1.0.0", 0},       /* trailing zeros */
      {"1.0.dev1", "1.0a1", -1}, /* dev release of the final before any pre-release */
      {"1.0a1.dev1", "1.0a1", -1},
      {"1.0a1", "1.0a2", -1},
      {"1.0a2", "1.0b1", -1},
      {"1.0b1", "1.0rc1", -1},
      {"1.0rc1", "1.0", -1},
      {"1.0", "1.0.post1.dev1", -1},
      {"1.0.post1.dev1", "1.0.post1", -1},
      {"1.0.post1", "1.0.1", -1},
      {"1.0", "1.0+local", -1}, /* a local version is above its public one */
      {"1.0+abc", "1.0+1", -1}, /* numeric local segments above strings */
      {"1.0+1.2", "1.0+1.10", -1},
      {"1.0+ubuntu1", "1.0+ubuntu1.1", -1},
      {"1!0.5", "2.0", 1},       /* epoch */
      {"1.0alpha1", "1.0a1", 0}, /* spellings */
      {"1.0c1", "1.0rc1", 0},
      {"1.0-1", "1.0.post1", 0},
      {"1.0.RC1", "1.0rc1", 0},
      {"v2.0", "2.0", 0},
      {"1.0-dev", "1.0.dev0", 0},
      {"2.31.0", "2.4.0", 1},
      {"1.0a", "1.0a0", 0},
  };
  RUN(WV_VER_PEP440, c);
  CHECK(!wv_version_valid(WV_VER_PEP440, "1.0-foo"));
  CHECK(!wv_version_valid(WV_VER_PEP440, "abc"));
  CHECK(!wv_version_valid(WV_VER_PEP440, "1.0+"));
}

TEST(semver_order) {
  static const vcase_t c[] = {
      {"1.0.0-alpha", "1.0.0-alpha.1", -1},
      {"1.0.0-alpha.1", "1.0.0-alpha.beta", -1}, /* numeric identifiers below alphanumeric */
      {"1.0.0-alpha.beta", "1.0.0-beta", -1},
      {"1.0.0-beta.2", "1.0.0-beta.11", -1},
      {"1.0.0-rc.1", "1.0.0", -1},
      {"1.0.0+build.1", "1.0.0", 0}, /* build metadata ignored */
      {"v1.2.3", "1.2.3", 0},
      {"1.2", "1.2.0", 0},
      {"2.0.0", "10.0.0", -1},
      {"0", "0.0.1", -1},
  };
  RUN(WV_VER_SEMVER, c);
  CHECK(!wv_version_valid(WV_VER_SEMVER, "1.0.0-"));
  CHECK(!wv_version_valid(WV_VER_SEMVER, "1.x"));
}

TEST(cran_order) {
  static const vcase_t c[] = {
      {"1.0-1", "1.0.1", 0}, /* '-' and '.' are the same separator */
      {"1.0", "1.0-0", -1},  /* R: more components is newer */
      {"0.9.10", "0.9.9", 1},
      {"1.2-14", "1.2-3", 1},
  };
  RUN(WV_VER_CRAN, c);
  CHECK(!wv_version_valid(WV_VER_CRAN, "1.0a"));
  CHECK(!wv_version_valid(WV_VER_CRAN, "1..0"));
}

TEST(conda_order) {
  /* conda's VersionOrder documentation, in order. */
  static const char *const chain[] = {
      "0.4",      "0.4.1.rc",   "0.4.1",    "0.5a1",     "0.5b3",   "0.5C1",
      "0.5",      "0.9.6",      "0.960923", "1.0",       "1.1dev1", "1.1_",
      "1.1a1",    "1.1.0dev1",  "1.1.a1",   "1.1.0rc1",  "1.1.0",   "1.1.0post1",
      "1.1post1", "1996.07.12", "1!0.4.1",  "1!3.1.1.6", "2!0.4.1",
  };
  int bad = 0;
  for (size_t i = 0; i + 1 < sizeof chain / sizeof chain[0]; i++) {
    vcase_t c = {chain[i], chain[i + 1], -1};
    bad += run_cases(WV_VER_CONDA, &c, 1);
  }
  CHECK_EQ_INT(bad, 0);
  static const vcase_t eq[] = {
      {"0.4.1.rc", "0.4.1.RC", 0},    {"1.1.0dev1", "1.1.dev1", 0}, {"1.1.0", "1.1", 0},
      {"1.1.0post1", "1.1.post1", 0}, {"1.2.3+4", "1.2.3+5", -1},
  };
  RUN(WV_VER_CONDA, eq);
}

TEST(scheme_of_ecosystem) {
  CHECK_EQ_INT(wv_version_scheme_of("Debian:12"), WV_VER_DPKG);
  CHECK_EQ_INT(wv_version_scheme_of("Ubuntu:22.04:LTS"), WV_VER_DPKG);
  CHECK_EQ_INT(wv_version_scheme_of("Alpine:v3.19"), WV_VER_APK);
  CHECK_EQ_INT(wv_version_scheme_of("pypi"), WV_VER_PEP440);
  CHECK_EQ_INT(wv_version_scheme_of("CRAN"), WV_VER_CRAN);
  CHECK_EQ_INT(wv_version_scheme_of("conda"), WV_VER_CONDA);
  CHECK_EQ_INT(wv_version_scheme_of("npm"), WV_VER_SEMVER);
  CHECK_EQ_INT(wv_version_scheme_of("Maven"), WV_VER_NONE);
  int x;
  CHECK_EQ_INT(wv_version_compare(WV_VER_NONE, "1", "1", &x), WV_EINVAL);
}

WV_TESTS(T(dpkg_order), T(apk_order), T(pep440_order), T(semver_order), T(cran_order),
         T(conda_order), T(scheme_of_ecosystem))
