/* Unit tests for registry/token: the record round-trips and bad ones are refused. */
#include "core/err.h"
#include "registry/token.h"
#include "tests/runner.h"

TEST(round_trip) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_token_rec_t t = {.token = "abc123def456",
                      .kind = WV_TOKEN_CONTAINER,
                      .registry = "127.0.0.1:5001",
                      .image = "library/busybox",
                      .reference = "latest",
                      .container_image = "127.0.0.1:5001/library/busybox:latest",
                      .target_image = "localhost:9090/wt/abc123def456/library/busybox:latest",
                      .platform = "linux/amd64",
                      .cc_json = "{\"env\":[\"A=1\"]}",
                      .created_ms = 1000,
                      .expires_ms = 2000};
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  CHECK_OK(wv_token_encode(&t, &b));
  CHECK_LACKS(b.data, "\"user\""); /* NULL fields are omitted */
  wv_token_rec_t d;
  CHECK_OK(wv_token_decode(a, b.data, b.len, &d));
  CHECK_EQ_STR(d.token, t.token);
  CHECK_EQ_STR(d.image, t.image);
  CHECK_EQ_STR(d.cc_json, t.cc_json);
  CHECK_EQ_STR(d.platform, "linux/amd64");
  CHECK(d.user == NULL && d.build_id == NULL);
  CHECK_EQ_INT(d.kind, WV_TOKEN_CONTAINER);
  CHECK_EQ_INT(d.expires_ms, 2000);
  wv_buf_reset(&b);
  t.kind = WV_TOKEN_MIRROR;
  CHECK_OK(wv_token_encode(&t, &b));
  CHECK_OK(wv_token_decode(a, b.data, b.len, &d));
  CHECK_EQ_INT(d.kind, WV_TOKEN_MIRROR);
  wv_buf_free(&b);
}

TEST(refuses_bad_records) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_token_rec_t d;
  const char *bad[] = {"", "[]", "{\"token\":\"x\"}",
                       "{\"token\":1,\"registry\":\"r\",\"image\":\"i\"}",
                       "{\"token\":\"x\",\"registry\":\"r\",\"image\":\"i\",\"createdMs\":\"no\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_EQ_INT(wv_token_decode(a, bad[i], strlen(bad[i]), &d), WV_EPARSE);
  wv_token_rec_t t = {.token = "x"};
  wv_buf_t b;
  wv_buf_init(&b, 100);
  CHECK_EQ_INT(wv_token_encode(&t, &b), WV_EINVAL);
  wv_buf_free(&b);
}

WV_TESTS(T(round_trip), T(refuses_bad_records))
