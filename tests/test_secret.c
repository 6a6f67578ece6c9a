/* Unit tests for core/secret: salted slow account secrets, the legacy form, hash-password. */
#include "core/digest.h"
#include "core/err.h"
#include "core/secret.h"
#include "core/timefmt.h"
#include "tests/runner.h"

#include <stdio.h>
#include <string.h>

TEST(hash_then_verify) {
  char a[WV_SECRET_MAX_LEN], b[WV_SECRET_MAX_LEN];
  CHECK_OK(wv_secret_hash("s3cret", 1000, a, sizeof a));
  CHECK_OK(wv_secret_hash("s3cret", 1000, b, sizeof b));
  CHECK_PREFIX(a, "pbkdf2-sha256$1000$");
  CHECK_EQ_INT(strlen(a), 19 + 32 + 1 + 64);
  CHECK(strcmp(a, b) != 0); /* salted: the same secret never gives the same value */
  CHECK_EQ_INT(wv_secret_kind(a), WV_SECRET_PBKDF2);
  CHECK(wv_secret_verify(a, "s3cret"));
  CHECK(wv_secret_verify(b, "s3cret"));
  CHECK(!wv_secret_verify(a, "s3cret "));
  CHECK(!wv_secret_verify(a, ""));
  CHECK(!wv_secret_verify(a, NULL));
  CHECK(!wv_secret_verify(NULL, "s3cret"));
  /* A tampered hash or salt matches nothing, even after a success was cached. */
  a[strlen(a) - 1] = a[strlen(a) - 1] == '0' ? '1' : '0';
  CHECK(!wv_secret_verify(a, "s3cret"));
  CHECK_EQ_INT(wv_secret_hash("x", 999, a, sizeof a), WV_EINVAL);
  CHECK_EQ_INT(wv_secret_hash("x", 1000, a, 16), WV_EINVAL);
}

TEST(known_vector) {
  /* PBKDF2-HMAC-SHA256("password", salt 16 x 0x00, 1000 iterations), from Python's
   * hashlib.pbkdf2_hmac: checks the stored form is plain PBKDF2 others can reproduce. */
  const char *v = "pbkdf2-sha256$1000$00000000000000000000000000000000$"
                  "7460518eb1741d7be7b2914828b97011abdb01f2e6e94ff954490a5c74be5554";
  CHECK_EQ_INT(wv_secret_kind(v), WV_SECRET_PBKDF2);
  CHECK(wv_secret_verify(v, "password"));
  CHECK(!wv_secret_verify(v, "Password"));
}

TEST(legacy_sha256_still_accepted) {
  uint8_t h[WV_SHA256_LEN];
  char hex[2 * WV_SHA256_LEN + 1];
  CHECK_OK(wv_sha256("tok", 3, h));
  wv_hex_encode(h, sizeof h, hex);
  CHECK_EQ_INT(wv_secret_kind(hex), WV_SECRET_LEGACY_SHA256);
  CHECK(wv_secret_verify(hex, "tok"));
  CHECK(!wv_secret_verify(hex, "tok2"));
  for (char *p = hex; *p; p++) /* upper case hex as some configs have it */
    if (*p >= 'a' && *p <= 'f')
      *p = (char)(*p - 'a' + 'A');
  CHECK(wv_secret_verify(hex, "tok"));
}

TEST(malformed_values_match_nothing) {
  const char *bad[] = {"",
                       "abc",
                       "pbkdf2-sha256$10$00000000000000000000000000000000$"
                       "0000000000000000000000000000000000000000000000000000000000000000",
                       "pbkdf2-sha256$1000$0000$00",
                       "pbkdf2-sha256$1000$00000000000000000000000000000000$zz",
                       "pbkdf2-sha256$99999999999$00000000000000000000000000000000$"
                       "0000000000000000000000000000000000000000000000000000000000000000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ_INT(wv_secret_kind(bad[i]), WV_SECRET_BAD);
    CHECK(!wv_secret_verify(bad[i], ""));
  }
}

TEST(slow_once_then_cached) {
  char a[WV_SECRET_MAX_LEN];
  CHECK_OK(wv_secret_hash("pw", 200000, a, sizeof a));
  int64_t t0 = wv_mono_ns();
  CHECK(!wv_secret_verify(a, "wrong")); /* failures pay the full price every time */
  int64_t slow = wv_mono_ns() - t0;
  CHECK(wv_secret_verify(a, "pw"));
  t0 = wv_mono_ns();
  CHECK(wv_secret_verify(a, "pw"));
  int64_t cached = wv_mono_ns() - t0;
  fprintf(stderr, "  200000 iterations: %.1f ms; cached: %.3f ms\n", slow / 1e6, cached / 1e6);
  CHECK(slow > 10 * cached);
}

/* The IO loop's check: never a slow hash; SLOW until the pair was verified once. */
TEST(quick_check_never_hashes) {
  char a[WV_SECRET_MAX_LEN], legacy[WV_SHA256_LEN * 2 + 1];
  uint8_t h[WV_SHA256_LEN];
  CHECK_OK(wv_secret_hash("quick-pw", 1000, a, sizeof a));
  CHECK_OK(wv_sha256("old-pw", 6, h));
  wv_hex_encode(h, WV_SHA256_LEN, legacy);
  char *keys[] = {"alice", "old"}, *values[] = {a, legacy};
  wv_config_t cfg = {0};
  cfg.accounts.keys = keys, cfg.accounts.values = values, cfg.accounts.len = 2;
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "alice", "quick-pw"), WV_SECRET_SLOW);
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "alice", "wrong"), WV_SECRET_SLOW);
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "nobody", "quick-pw"), WV_SECRET_SLOW);
  CHECK(!wv_secret_account_check(&cfg, "alice", "wrong"));
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "alice", "wrong"), WV_SECRET_SLOW); /* not cached */
  CHECK(wv_secret_account_check(&cfg, "alice", "quick-pw"));
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "alice", "quick-pw"), WV_SECRET_YES);
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "nobody", "quick-pw"), WV_SECRET_NO);
  /* The legacy form is one SHA-256: answered at once either way. */
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "old", "old-pw"), WV_SECRET_YES);
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "old", "wrong"), WV_SECRET_NO);
  cfg.accounts.len = 0;
  CHECK_EQ_INT(wv_secret_account_quick(&cfg, "alice", "quick-pw"), WV_SECRET_NO);
}

WV_TESTS(T(hash_then_verify), T(known_vector), T(legacy_sha256_still_accepted),
         T(malformed_values_match_nothing), T(slow_once_then_cached), T(quick_check_never_hashes))
