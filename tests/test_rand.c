/* Unit tests for core/rand: shape of ids, uniformity (no modulo bias), constant-time compare. */
#include "core/err.h"
#include "core/rand.h"
#include "tests/runner.h"

TEST(id_length_and_alphabet) {
  char id[64];
  for (int i = 0; i < 1000; i++) {
    CHECK_OK(wv_rand_id(id, 12, WV_RAND_ALNUM_LOWER));
    CHECK_EQ_INT(strlen(id), 12);
    CHECK_EQ_INT(strspn(id, WV_RAND_ALNUM_LOWER), 12);
    CHECK_OK(wv_rand_hex12(id));
    CHECK_EQ_INT(strlen(id), 12);
    CHECK_EQ_INT(strspn(id, WV_RAND_HEX), 12);
  }
  CHECK_OK(wv_rand_id(id, 0, WV_RAND_HEX));
  CHECK_EQ_STR(id, "");
  CHECK_EQ_INT(wv_rand_id(id, 4, "a"), WV_EINVAL);
  CHECK_EQ_INT(wv_rand_id(id, 4, ""), WV_EINVAL);
  CHECK_EQ_INT(wv_rand_id(id, 4, NULL), WV_EINVAL);
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

TEST(ids_unique) {
  enum { N = 20000 };
  static char ids[N][13];
  for (int i = 0; i < N; i++)
    CHECK_OK(wv_rand_id(ids[i], 12, WV_RAND_ALNUM_LOWER));
  qsort(ids, N, sizeof ids[0], cmp_id);
  for (int i = 1; i < N; i++)
    CHECK(strcmp(ids[i - 1], ids[i]) != 0);
}

TEST(symbols_uniform) {
  /* 36 symbols, 72000 draws: each count is ~2000 with sd ~44; allow ±300. */
  char buf[72001];
  int count[256] = {0};
  CHECK_OK(wv_rand_id(buf, sizeof buf - 1, WV_RAND_ALNUM_LOWER));
  for (size_t i = 0; i < sizeof buf - 1; i++)
    count[(unsigned char)buf[i]]++;
  for (const char *c = WV_RAND_ALNUM_LOWER; *c; c++) {
    int n = count[(unsigned char)*c];
    if (n < 1700 || n > 2300)
      fprintf(stderr, "  symbol %c drawn %d times\n", *c, n);
    CHECK(n >= 1700 && n <= 2300);
  }
}

TEST(no_modulo_bias) {
  /* With 200 symbols, "byte % 200" would draw the first 56 twice as often as
   * the rest. Rejection sampling must keep the two groups equal. */
  char alphabet[201];
  for (int i = 0; i < 200; i++)
    alphabet[i] = (char)(i + 40);
  alphabet[200] = '\0';
  static char buf[400001];
  CHECK_OK(wv_rand_id(buf, sizeof buf - 1, alphabet));
  long low = 0, high = 0;
  for (size_t i = 0; i < sizeof buf - 1; i++)
    if ((unsigned char)buf[i] - 40 < 56)
      low++;
    else
      high++;
  double ratio = ((double)low / 56) / ((double)high / 144);
  if (ratio < 0.95 || ratio > 1.05)
    fprintf(stderr, "  low/high per-symbol ratio %.3f\n", ratio);
  CHECK(ratio > 0.95 && ratio < 1.05);
}

TEST(below) {
  uint64_t v;
  CHECK_EQ_INT(wv_rand_below(0, &v), WV_EINVAL);
  int seen[3] = {0};
  for (int i = 0; i < 3000; i++) {
    CHECK_OK(wv_rand_below(3, &v));
    CHECK(v < 3);
    seen[v]++;
  }
  CHECK(seen[0] > 800 && seen[1] > 800 && seen[2] > 800);
  CHECK_OK(wv_rand_below(1, &v));
  CHECK_EQ_INT(v, 0);
}

TEST(bytes_not_constant) {
  uint8_t a[32], b[32];
  CHECK_OK(wv_rand_bytes(a, sizeof a));
  CHECK_OK(wv_rand_bytes(b, sizeof b));
  CHECK(memcmp(a, b, sizeof a) != 0);
}

/* More than getrandom(2)'s 256-byte unit, to a buffer's last byte: no part is left as it was. */
TEST(bytes_long_fill_everything) {
  static uint8_t buf[1 << 20];
  size_t zero_runs = 0;
  memset(buf, 0, sizeof buf);
  CHECK_OK(wv_rand_bytes(buf, sizeof buf));
  for (size_t i = 0; i + 64 <= sizeof buf; i += 64) {
    size_t z = 0;
    for (size_t j = 0; j < 64; j++)
      z += buf[i + j] == 0;
    zero_runs += z == 64; /* 2^-512 per block for a working generator */
  }
  CHECK_EQ_INT(zero_runs, 0);
  size_t zeros = 0;
  for (size_t i = 0; i < sizeof buf; i++)
    zeros += buf[i] == 0;
  CHECK(zeros > 3600 && zeros < 4600); /* 4,096 expected, sd ~64 */
}

TEST(ct_streq) {
  CHECK(wv_ct_streq("248eefc1fc14", "248eefc1fc14"));
  CHECK(!wv_ct_streq("248eefc1fc14", "248eefc1fc15"));
  CHECK(!wv_ct_streq("248eefc1fc14", "248eefc1fc1"));
  CHECK(!wv_ct_streq("", "x"));
  CHECK(wv_ct_streq("", ""));
  CHECK(!wv_ct_streq(NULL, "x"));
  CHECK(!wv_ct_streq(NULL, NULL));
}

WV_TESTS(T(id_length_and_alphabet), T(ids_unique), T(symbols_uniform), T(no_modulo_bias), T(below),
         T(bytes_not_constant), T(bytes_long_fill_everything), T(ct_streq))
