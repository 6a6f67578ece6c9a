/* Unit tests for core/digest: NIST SHA-256 vectors, incremental = one-shot, parsing. */
#include "core/digest.h"
#include "core/err.h"
#include "tests/runner.h"

TEST(nist_vectors) {
  char d[WV_DIGEST_STRLEN];
  CHECK_OK(wv_digest_of("", 0, d));
  CHECK_EQ_STR(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK_OK(wv_digest_of("abc", 3, d));
  CHECK_EQ_STR(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK_OK(wv_digest_of(m, strlen(m), d));
  CHECK_EQ_STR(d, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(million_a_incremental) {
  /* NIST: one million 'a' → cdc76e5c...; fed in uneven chunks to exercise update(). */
  char chunk[997];
  memset(chunk, 'a', sizeof chunk);
  wv_sha256_t h;
  CHECK_OK(wv_sha256_init(&h));
  size_t left = 1000000;
  while (left) {
    size_t n = left < sizeof chunk ? left : sizeof chunk;
    CHECK_OK(wv_sha256_update(&h, chunk, n));
    left -= n;
  }
  uint8_t out[WV_SHA256_LEN];
  CHECK_OK(wv_sha256_final(&h, out));
  CHECK(h.ctx == NULL);
  char d[WV_DIGEST_STRLEN];
  wv_digest_format(out, d);
  CHECK_EQ_STR(d, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(abort_releases) {
  wv_sha256_t h;
  CHECK_OK(wv_sha256_init(&h));
  CHECK_OK(wv_sha256_update(&h, "x", 1));
  wv_sha256_abort(&h);
  CHECK(h.ctx == NULL);
  wv_sha256_abort(&h); /* idempotent */
  uint8_t out[WV_SHA256_LEN];
  CHECK_EQ_INT(wv_sha256_final(&h, out), WV_EINVAL);
}

TEST(parse) {
  const char *ok = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  uint8_t h[WV_SHA256_LEN];
  CHECK_OK(wv_digest_parse(ok, h));
  CHECK_EQ_INT(h[0], 0xba);
  CHECK_EQ_INT(h[31], 0xad);
  char back[WV_DIGEST_STRLEN];
  wv_digest_format(h, back);
  CHECK_EQ_STR(back, ok);
  CHECK(wv_digest_valid(ok));
  CHECK(
      !wv_digest_valid("sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  CHECK(!wv_digest_valid("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
  CHECK(
      !wv_digest_valid("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015add"));
  CHECK(
      !wv_digest_valid("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  CHECK(!wv_digest_valid("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  CHECK(
      !wv_digest_valid("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag"));
  CHECK(!wv_digest_valid(""));
  CHECK(!wv_digest_valid(NULL));
  /* A slice of a longer string, as in a URL path. */
  char path[128];
  snprintf(path, sizeof path, "%s/rest", ok);
  CHECK_OK(wv_digest_parse_n(path, 71, NULL));
  CHECK_EQ_INT(wv_digest_parse_n(path, 72, NULL), WV_EINVAL);
}

WV_TESTS(T(nist_vectors), T(million_a_incremental), T(abort_releases), T(parse))
