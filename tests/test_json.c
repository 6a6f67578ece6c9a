/* Unit tests for core/json: parsing limits and messages, null-tolerant getters, omitting builders.
 */
#include "core/err.h"
#include "core/json.h"
#include "tests/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses text with a 1 MiB cap; err (256 bytes) gets the message. */
static int parse(const char *text, json_object **o, char *err) {
  err[0] = '\0';
  return wv_json_parse(text, strlen(text), 1 << 20, 0, o, err, 256);
}

TEST(parse_ok_ignores_unknown_and_accepts_nulls) {
  char err[256] = "";
  json_object *o;
  /* The shape nf-wave sends: many explicit nulls and fields we may not know. */
  CHECK_OK(parse("{\"containerImage\":\"ubuntu\",\"containerFile\":null,\"freeze\":false,"
                 "\"towerEndpoint\":null,\"someFutureField\":{\"x\":[1,2]},\"n\":7,"
                 "\"names\":[\"a\",\"b\"],\"ratio\":1.5,\"whole\":3.0}\n",
                 &o, err));
  const char *s = NULL;
  CHECK_OK(wv_json_get_str(o, "containerImage", &s));
  CHECK_EQ_STR(s, "ubuntu");
  CHECK_EQ_INT(wv_json_get_str(o, "containerFile", &s), WV_ENOTFOUND); /* null */
  CHECK_EQ_INT(wv_json_get_str(o, "absent", &s), WV_ENOTFOUND);
  CHECK_EQ_STR(s, "ubuntu"); /* untouched on failure */
  CHECK_EQ_INT(wv_json_get_str(o, "freeze", &s), WV_EINVAL);
  bool b = true;
  CHECK_OK(wv_json_get_bool(o, "freeze", &b));
  CHECK(!b);
  CHECK_EQ_INT(wv_json_get_bool(o, "n", &b), WV_EINVAL);
  int64_t n = 0;
  CHECK_OK(wv_json_get_int64(o, "n", &n));
  CHECK_EQ_INT(n, 7);
  CHECK_OK(wv_json_get_int64(o, "whole", &n));
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_INT(wv_json_get_int64(o, "ratio", &n), WV_EINVAL);
  CHECK_EQ_INT(wv_json_get_int64(o, "containerImage", &n), WV_EINVAL);
  double d = 0;
  CHECK_OK(wv_json_get_double(o, "ratio", &d));
  CHECK(d == 1.5);
  json_object *sub;
  CHECK_OK(wv_json_get_object(o, "someFutureField", &sub));
  CHECK_OK(wv_json_get_array(sub, "x", &sub));
  CHECK_EQ_INT(wv_json_get_array(o, "n", &sub), WV_EINVAL);
  CHECK_EQ_INT(wv_json_get_str(sub, "k", &s), WV_EINVAL); /* not an object */

  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char **v;
  size_t len;
  CHECK_OK(wv_json_get_strv(o, "names", a, 10, &v, &len));
  CHECK_EQ_INT(len, 2);
  CHECK_EQ_STR(v[1], "b");
  CHECK(v[2] == NULL);
  CHECK_EQ_INT(wv_json_get_strv(o, "names", a, 1, &v, &len), WV_ETOOBIG);
  CHECK_EQ_INT(wv_json_get_strv(o, "containerFile", a, 10, &v, &len), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_json_get_strv(sub, "x", a, 10, &v, &len), WV_EINVAL);
  json_object_put(o);

  CHECK_OK(parse("{\"l\":[\"a\",1]}", &o, err));
  CHECK_EQ_INT(wv_json_get_strv(o, "l", a, 10, &v, &len), WV_EINVAL);
  json_object_put(o);
}

TEST(parse_errors_have_line_and_column) {
  char err[256] = "";
  json_object *o = (json_object *)1;
  CHECK_EQ_INT(parse("{\n  \"a\": 1,\n  \"b\": tru\n}", &o, err), WV_EPARSE);
  CHECK(o == NULL);
  CHECK_PREFIX(err, "Malformed JSON at line 3, column ");
  CHECK_EQ_INT(parse("{\"a\": 1", &o, err), WV_EPARSE);
  CHECK_EQ_STR(err, "Malformed JSON at line 1, column 8: unexpected end of input");
  CHECK_EQ_INT(parse("{\"a\": 1} x", &o, err), WV_EPARSE);
  CHECK_EQ_STR(err, "Malformed JSON at line 1, column 10: unexpected characters after the JSON "
                    "value");
  CHECK_EQ_INT(parse("[1,,2]", &o, err), WV_EPARSE);
  CHECK_EQ_STR(err, "Malformed JSON at line 1, column 4: unexpected character");
  CHECK_EQ_INT(parse("{\"a\":1,}", &o, err), WV_EPARSE); /* no trailing commas */
  CHECK_EQ_INT(parse("nul", &o, err), WV_EPARSE);
  /* A bare top-level number needs no terminator. */
  CHECK_OK(parse("12", &o, err));
  CHECK_EQ_INT(json_object_get_int(o), 12);
  json_object_put(o);
  CHECK_OK(parse("null", &o, err));
  CHECK(o == NULL);
  CHECK_EQ_INT(parse("   \n ", &o, err), WV_EPARSE);
  CHECK_EQ_STR(err, "Malformed JSON: empty body");
  CHECK_EQ_INT(parse("{\"a\": \"\xff\"}", &o, err), WV_EPARSE); /* invalid UTF-8 */
  CHECK_EQ_INT(wv_json_parse("{\"a\":\0}", 7, 100, 0, &o, err, sizeof err), WV_EPARSE);
  CHECK_HAS(err, "NUL byte");
}

TEST(parse_caps) {
  char err[256] = "";
  json_object *o;
  CHECK_EQ_INT(wv_json_parse("[1,2,3]", 7, 6, 0, &o, err, sizeof err), WV_ETOOBIG);
  CHECK_EQ_STR(err, "JSON body larger than 6 bytes");
  CHECK_OK(wv_json_parse("[[[1]]]", 7, 100, 3, &o, err, sizeof err));
  json_object_put(o);
  CHECK_EQ_INT(wv_json_parse("[[[[1]]]]", 9, 100, 3, &o, err, sizeof err), WV_EPARSE);
  CHECK_HAS(err, "nested too deeply");
  /* The default depth cap protects against a stack-exhausting body. */
  static char deep[20001];
  memset(deep, '[', 10000);
  memset(deep + 10000, ']', 10000);
  CHECK_EQ_INT(parse(deep, &o, err), WV_EPARSE);
  CHECK_HAS(err, "nested too deeply");
}

TEST(builder_omits_null_and_empty_keeps_false_and_zero) {
  json_object *o = json_object_new_object();
  CHECK_OK(wv_json_add_str(o, "containerToken", "248eefc1fc14"));
  CHECK_OK(wv_json_add_str(o, "buildId", NULL));
  CHECK_OK(wv_json_add_str(o, "empty", ""));
  CHECK_OK(wv_json_add_bool(o, "cached", false));
  CHECK_OK(wv_json_add_int(o, "exitCode", 0));
  CHECK_OK(wv_json_add_obj(o, "nothing", NULL));
  CHECK_OK(wv_json_add_obj(o, "emptyObj", json_object_new_object()));
  CHECK_OK(wv_json_add_obj(o, "emptyArr", json_object_new_array()));
  CHECK_OK(wv_json_add_strv(o, "none", NULL, 0));
  const char *plats[] = {"linux/amd64", "linux/arm64"};
  CHECK_OK(wv_json_add_strv(o, "platforms", plats, 2));
  json_object *child = json_object_new_object();
  CHECK_OK(wv_json_add_str(child, "url", "http://h/x"));
  CHECK_OK(wv_json_add_obj(o, "child", child));
  CHECK_OK(wv_json_add_number_text(o, "duration", "123.914989000"));
  CHECK_EQ_STR(wv_json_compact(o),
               "{\"containerToken\":\"248eefc1fc14\",\"cached\":false,\"exitCode\":0,"
               "\"platforms\":[\"linux/amd64\",\"linux/arm64\"],\"child\":{\"url\":\"http://h/x\"},"
               "\"duration\":123.914989000}");
  wv_buf_t b;
  wv_buf_init(&b, 20);
  CHECK_EQ_INT(wv_json_to_buf(o, &b), WV_ETOOBIG);
  wv_buf_free(&b);
  wv_buf_init(&b, 1 << 10);
  CHECK_OK(wv_json_to_buf(o, &b));
  CHECK_EQ_INT(b.len, strlen(wv_json_compact(o)));
  wv_buf_free(&b);
  json_object_put(o);
}

/* wv_json_finish: the built object when all went well, NULL (and released) after an error. */
TEST(finish_keeps_or_releases) {
  json_object *o = json_object_new_object();
  CHECK(wv_json_finish(o, 0) == o);
  json_object_put(o);
  CHECK(wv_json_finish(json_object_new_object(), WV_ENOMEM) == NULL); /* ASan: no leak */
  CHECK(wv_json_finish(NULL, WV_ENOMEM) == NULL);
}

TEST(round_trip_escapes) {
  char err[256] = "";
  json_object *o = json_object_new_object();
  CHECK_OK(wv_json_add_str(o, "s", "a/b \"q\" \n\t \xc3\xbc"));
  const char *text = wv_json_compact(o);
  CHECK_EQ_STR(text, "{\"s\":\"a/b \\\"q\\\" \\n\\t \xc3\xbc\"}");
  json_object *back;
  CHECK_OK(parse(text, &back, err));
  const char *s;
  CHECK_OK(wv_json_get_str(back, "s", &s));
  CHECK_EQ_STR(s, "a/b \"q\" \n\t \xc3\xbc");
  json_object_put(back);
  json_object_put(o);
}

/* A body of n keys {"k0":0,"k1":0,...} (malloc'd). */
static char *many_keys(size_t n, size_t *len) {
  char *b = malloc(n * 16 + 3), *p = b;
  *p++ = '{';
  for (size_t i = 0; i < n; i++)
    p += sprintf(p, "%s\"k%zu\":0", i ? "," : "", i);
  *p++ = '}';
  *p = '\0';
  *len = (size_t)(p - b);
  return b;
}

TEST(body_value_cap) {
  char err[256] = "";
  json_object *o = NULL;
  size_t len;
  char *b = many_keys(800000, &len); /* ~10 MiB, the shape that once took 1 GB of RSS */
  CHECK(len > 9000000);
  CHECK_EQ_INT(wv_json_parse_body(b, len, 16 << 20, 0, WV_JSON_MAX_VALUES, &o, err, sizeof err),
               WV_ETOOBIG);
  CHECK(o == NULL);
  CHECK_EQ_STR(err, "JSON body has more than 100000 values");
  free(b);
  /* At the cap exactly: parsed (the object plus its members). */
  b = many_keys(99, &len);
  CHECK_OK(wv_json_parse_body(b, len, 1 << 20, 0, 100, &o, err, sizeof err));
  CHECK_EQ_INT(json_object_object_length(o), 99);
  json_object_put(o);
  CHECK_EQ_INT(wv_json_parse_body(b, len, 1 << 20, 0, 99, &o, err, sizeof err), WV_ETOOBIG);
  free(b);
  /* Commas and brackets inside strings are not values. */
  const char *str = "{\"a\":\"[,,,{,,,\\\",,,\"}";
  CHECK_OK(wv_json_parse_body(str, strlen(str), 100, 0, 2, &o, err, sizeof err));
  json_object_put(o);
  CHECK_EQ_INT(wv_json_scan("[[],[],[]]", 10, 4, err, sizeof err), WV_ETOOBIG);
  CHECK_OK(wv_json_scan("[[],[],[]]", 10, 0, err, sizeof err)); /* 0 = no cap */
}

TEST(body_refuses_nul_escape) {
  char err[256] = "";
  json_object *o = NULL;
  const char *bad[] = {"{\"containerImage\":\"ubuntu\\u0000:evil\"}", "{\"k\\u0000ey\":1}",
                       "[\"\\u0000\"]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ_INT(wv_json_parse_body(bad[i], strlen(bad[i]), 100, 0, 0, &o, err, sizeof err),
                 WV_EPARSE);
    CHECK_HAS(err, "\\u0000 is not allowed in a string");
    CHECK(o == NULL);
  }
  /* A \u0000 right after another escape is still refused... */
  const char *after = "[\"\\\\u0000\", \"\\u0041\\u00001\"]";
  CHECK_EQ_INT(wv_json_parse_body(after, strlen(after), 100, 0, 0, &o, err, sizeof err), WV_EPARSE);
  /* ...while an escaped backslash followed by u0000 is six ordinary characters. */
  const char *ok = "[\"\\\\u0000\", \"\\u0041\"]";
  CHECK_OK(wv_json_parse_body(ok, strlen(ok), 100, 0, 0, &o, err, sizeof err));
  CHECK_EQ_STR(json_object_get_string(json_object_array_get_idx(o, 0)), "\\u0000");
  CHECK_EQ_STR(json_object_get_string(json_object_array_get_idx(o, 1)), "A");
  json_object_put(o);
}

WV_TESTS(T(parse_ok_ignores_unknown_and_accepts_nulls), T(parse_errors_have_line_and_column),
         T(parse_caps), T(body_value_cap), T(body_refuses_nul_escape),
         T(builder_omits_null_and_empty_keeps_false_and_zero), T(finish_keeps_or_releases),
         T(round_trip_escapes))
