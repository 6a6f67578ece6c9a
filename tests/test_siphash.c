/* Unit tests for core/siphash: the SipHash paper vector, the checksum vectors of contract §4.4. */
#include "core/err.h"
#include "core/siphash.h"
#include "tests/runner.h"

static const uint8_t key[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

TEST(paper_vector) {
  /* Appendix A of the SipHash paper: key 00..0f, message 00..0e. */
  uint8_t msg[15];
  for (int i = 0; i < 15; i++)
    msg[i] = (uint8_t)i;
  CHECK_EQ_INT(wv_siphash24(key, msg, 15), 0xa129ca6149be45e5ULL);
  char hex[WV_CHECKSUM_STRLEN];
  wv_siphash_hex(0xa129ca6149be45e5ULL, hex);
  CHECK_EQ_STR(hex, "e545be4961ca29a1"); /* the paper prints the output bytes in this order */
}

TEST(incremental_matches_one_shot) {
  uint8_t msg[64];
  for (int i = 0; i < 64; i++)
    msg[i] = (uint8_t)(i * 7 + 3);
  for (size_t n = 0; n <= 64; n++) {
    uint64_t want = wv_siphash24(key, msg, n);
    for (size_t cut = 0; cut <= n; cut++) {
      wv_siphash_t s;
      wv_siphash_init(&s, key);
      wv_siphash_update(&s, msg, cut);
      wv_siphash_update(&s, msg + cut, 1 > n - cut ? n - cut : 1);
      wv_siphash_update(&s, msg + cut + (cut < n), n - cut - (cut < n));
      CHECK_EQ_INT(wv_siphash_final(&s), want);
    }
  }
  /* Different lengths must differ (the length byte is hashed). */
  CHECK(wv_siphash24(key, msg, 8) != wv_siphash24(key, msg, 9));
}

static const char *sum_pairs(const char *const *kv, size_t n) {
  static char out[WV_CHECKSUM_STRLEN];
  return wv_siphash_pairs(kv, n, out) == 0 ? out : "error";
}

TEST(spec_map_vectors) {
  const char *simple[] = {"foo", "one", "bar", "two"};
  CHECK_EQ_STR(sum_pairs(simple, 2), "28e758ec870964c8");
  const char *amd[] = {"containerFile", "FROM foo",    "condaFile",  NULL,
                       "platform",      "linux/amd64", "repository", "wave/build"};
  CHECK_EQ_STR(sum_pairs(amd, 4), "7efaa2ed59c58a16");
  const char *arm[] = {"containerFile", "FROM foo",    "condaFile",  NULL,
                       "platform",      "linux/arm64", "repository", "wave/build"};
  CHECK_EQ_STR(sum_pairs(arm, 4), "be9ee6ac1eeff4b5");
  const char *conda[] = {"containerFile", "FROM foo",    "condaFile",  "some::conda-recipe",
                         "platform",      "linux/arm64", "repository", "wave/build"};
  CHECK_EQ_STR(sum_pairs(conda, 4), "c6dac2e544419f71");
  /* A null value serialises as the empty string (contract §4.4 step 2). */
  arm[3] = "";
  CHECK_EQ_STR(sum_pairs(arm, 4), "be9ee6ac1eeff4b5");
}

TEST(spec_scan_id_vectors) {
  const char *img[] = {"image", "x"};
  CHECK_EQ_STR(sum_pairs(img, 1), "94be9fbddcc3af8e");
  const char *imgd[] = {"image", "x", "digest", "y"};
  CHECK_EQ_STR(sum_pairs(imgd, 2), "00769af315dcb1fe");
}

TEST(spec_varargs_vector) {
  char out[WV_CHECKSUM_STRLEN];
  const char *a[] = {"a"};
  CHECK_OK(wv_siphash_args(a, 1, out));
  CHECK_EQ_STR(out, "bcf5c2d233d23f0f");
  /* A null argument contributes only its separator. */
  const char *withnull[] = {"a", NULL};
  const char *withempty[] = {"a", ""};
  char o2[WV_CHECKSUM_STRLEN];
  CHECK_OK(wv_siphash_args(withnull, 2, out));
  CHECK_OK(wv_siphash_args(withempty, 2, o2));
  CHECK_EQ_STR(out, o2);
  CHECK(strcmp(out, "bcf5c2d233d23f0f") != 0);
}

TEST(non_ascii_utf16) {
  /* 2-, 3- and 4-byte UTF-8 (the whale is non-BMP: a surrogate pair in UTF-16).
   * Expected value computed independently in Python: s.encode('utf-16-le'). */
  const char *kv[] = {"containerFile",
                      "FROM b\xc3\xbc"
                      "cher/\xc3\xb1"
                      "and\xc3\xba:1 # "
                      "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\xb3",
                      "platform", "linux/amd64"};
  CHECK_EQ_STR(sum_pairs(kv, 2), "4ff864a131861cfa");
  /* The same through the raw hash over hand-made UTF-16LE of "\xf0\x9f\x90\xb3" (U+1F433). */
  const char *whale[] = {"k", "\xf0\x9f\x90\xb3"};
  const uint8_t u16[] = {'k', 0, 0x1c, 0, 0x3d, 0xd8, 0x33, 0xdc, 0x1e, 0};
  char want[WV_CHECKSUM_STRLEN];
  wv_siphash_hex(wv_siphash24(key, u16, sizeof u16), want);
  CHECK_EQ_STR(sum_pairs(whale, 1), want);
}

TEST(invalid_utf8_rejected) {
  static const char *bad[] = {
      "\xc3",             /* truncated */
      "\xc0\xaf",         /* overlong '/' */
      "\xe0\x80\xaf",     /* overlong */
      "\xed\xa0\x80",     /* UTF-16 surrogate U+D800 */
      "\xf4\x90\x80\x80", /* above U+10FFFF */
      "\xff",             /* never valid */
      "a\x80",            /* lone continuation */
  };
  char out[WV_CHECKSUM_STRLEN];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *kv[] = {"k", bad[i]};
    CHECK_EQ_INT(wv_siphash_pairs(kv, 1, out), WV_EPARSE);
    CHECK_EQ_INT(wv_siphash_args(&bad[i], 1, out), WV_EPARSE);
  }
  const char *nullkey[] = {NULL, "v"};
  CHECK_EQ_INT(wv_siphash_pairs(nullkey, 1, out), WV_EINVAL);
  const char *edge[] = {"k", "\xef\xbf\xbf\xf4\x8f\xbf\xbf"}; /* U+FFFF, U+10FFFF are valid */
  CHECK_OK(wv_siphash_pairs(edge, 1, out));
}

WV_TESTS(T(paper_vector), T(incremental_matches_one_shot), T(spec_map_vectors),
         T(spec_scan_id_vectors), T(spec_varargs_vector), T(non_ascii_utf16),
         T(invalid_utf8_rejected))
