/* Unit tests for core/timefmt: Java Instant rendering, ISO parsing with offsets, durations. */
#include "core/err.h"
#include "core/timefmt.h"
#include "tests/runner.h"

static const char *iso(int64_t ns) {
  static char out[WV_TIME_ISO_STRLEN];
  return wv_time_format_iso(ns, out, sizeof out) == 0 ? out : "error";
}

TEST(format_like_java_instant) {
  /* The two examples of contract §1.1, epoch values computed with Python's datetime. */
  CHECK_EQ_STR(iso(1712697541715321000LL), "2024-04-09T21:19:01.715321Z");
  CHECK_EQ_STR(iso(1762656623254497148LL), "2025-11-09T02:50:23.254497148Z");
  /* Fraction in groups of three, as Instant.toString does. */
  CHECK_EQ_STR(iso(951782400000000000LL), "2000-02-29T00:00:00Z");
  CHECK_EQ_STR(iso(951782400500000000LL), "2000-02-29T00:00:00.500Z");
  CHECK_EQ_STR(iso(951782400000010000LL), "2000-02-29T00:00:00.000010Z");
  CHECK_EQ_STR(iso(951782400000000001LL), "2000-02-29T00:00:00.000000001Z");
  CHECK_EQ_STR(iso(0), "1970-01-01T00:00:00Z");
  CHECK_EQ_STR(iso(-500000000LL), "1969-12-31T23:59:59.500Z");
  CHECK_EQ_STR(iso(INT64_MAX), "2262-04-11T23:47:16.854775807Z");
  CHECK_EQ_STR(iso(INT64_MIN), "1677-09-21T00:12:43.145224192Z");
  char small[10];
  CHECK_EQ_INT(wv_time_format_iso(0, small, sizeof small), WV_EINVAL);
}

TEST(parse_iso) {
  int64_t ns = 0;
  CHECK_OK(wv_time_parse_iso("2024-04-09T21:19:01.715321Z", &ns));
  CHECK_EQ_INT(ns, 1712697541715321000LL);
  CHECK_OK(wv_time_parse_iso("2025-11-09T02:50:23.254497148Z", &ns));
  CHECK_EQ_INT(ns, 1762656623254497148LL);
  CHECK_OK(wv_time_parse_iso("2024-04-09T23:19:01.715321+02:00", &ns));
  CHECK_EQ_INT(ns, 1712697541715321000LL);
  CHECK_OK(wv_time_parse_iso("2024-04-09T16:49:01.715321-04:30", &ns));
  CHECK_EQ_INT(ns, 1712697541715321000LL);
  /* Fractions of any length; past nine digits they are dropped. */
  CHECK_OK(wv_time_parse_iso("1970-01-01T00:00:00.1Z", &ns));
  CHECK_EQ_INT(ns, 100000000);
  CHECK_OK(wv_time_parse_iso("1970-01-01T00:00:00.1234567891234Z", &ns));
  CHECK_EQ_INT(ns, 123456789);
  CHECK_OK(wv_time_parse_iso("1969-12-31T23:59:59.5Z", &ns));
  CHECK_EQ_INT(ns, -500000000LL);
  CHECK_OK(wv_time_parse_iso("2000-02-29T00:00:00Z", &ns));
  CHECK_EQ_INT(ns, 951782400000000000LL);
}

TEST(parse_rejects) {
  static const char *bad[] = {
      "2024-04-09T21:19:01",      /* no zone */
      "2024-04-09 21:19:01Z",     /* space */
      "2024-4-09T21:19:01Z",      /* short month */
      "2024-13-09T21:19:01Z",     /* month */
      "2023-02-29T00:00:00Z",     /* not a leap year */
      "1900-02-29T00:00:00Z",     /* century rule */
      "2024-04-09T24:00:00Z",     /* hour */
      "2024-04-09T21:60:00Z",     /* minute */
      "2024-04-09T21:19:01.Z",    /* empty fraction */
      "2024-04-09T21:19:01+0200", /* offset needs a colon */
      "2024-04-09T21:19:01Zjunk", /* trailing */
      "",
  };
  int64_t ns = 42;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (wv_time_parse_iso(bad[i], &ns) != WV_EPARSE)
      fprintf(stderr, "  accepted '%s'\n", bad[i]);
    CHECK_EQ_INT(wv_time_parse_iso(bad[i], &ns), WV_EPARSE);
  }
  CHECK_EQ_INT(ns, 42);
  CHECK_EQ_INT(wv_time_parse_iso("2300-01-01T00:00:00Z", &ns), WV_ERANGE);
  CHECK_OK(wv_time_parse_iso("2000-02-29T00:00:00Z", &ns)); /* 2000 is a leap year */
}

TEST(round_trip) {
  /* Every rendering parses back to the same instant, across eras and fractions. */
  int64_t v = -5000000000000000000LL;
  for (int i = 0; i < 20000; i++) {
    v += 499999999999999LL + i * 7919;
    int64_t back;
    CHECK_OK(wv_time_parse_iso(iso(v), &back));
    if (back != v)
      fprintf(stderr, "  %lld -> %s -> %lld\n", (long long)v, iso(v), (long long)back);
    CHECK_EQ_INT(back, v);
  }
}

TEST(wave_duration) {
  char out[WV_DURATION_STRLEN];
  CHECK_OK(wv_duration_format_wave(123914989000LL, out, sizeof out));
  CHECK_EQ_STR(out, "123.914989000");
  CHECK_OK(wv_duration_format_wave(0, out, sizeof out));
  CHECK_EQ_STR(out, "0.000000000");
  CHECK_OK(wv_duration_format_wave(5, out, sizeof out));
  CHECK_EQ_STR(out, "0.000000005");
  CHECK_OK(wv_duration_format_wave(-1500000000LL, out, sizeof out));
  CHECK_EQ_STR(out, "-1.500000000");
  CHECK_OK(wv_duration_format_wave(INT64_MIN, out, sizeof out));
  CHECK_EQ_STR(out, "-9223372036.854775808");
  char small[5];
  CHECK_EQ_INT(wv_duration_format_wave(123914989000LL, small, sizeof small), WV_EINVAL);
}

TEST(human_duration) {
  static const struct {
    int64_t ns;
    const char *want;
  } cases[] = {
      {850, "850ns"},
      {12345, "12.3us"},
      {4567890, "4.5ms"},
      {1259000000LL, "1.25s"},
      {187 * WV_NS_PER_S, "3m07s"},
      {(2 * 3600 + 5 * 60 + 9) * WV_NS_PER_S + 999, "2h05m09s"},
      {(3 * 86400 + 4 * 3600 + 10 * 60 + 59) * WV_NS_PER_S, "3d04h10m"},
      {-2 * WV_NS_PER_S, "-2.00s"},
  };
  char out[32];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_OK(wv_duration_format_human(cases[i].ns, out, sizeof out));
    CHECK_EQ_STR(out, cases[i].want);
  }
  CHECK_EQ_INT(wv_duration_format_human(1, out, 2), WV_EINVAL);
}

TEST(clocks) {
  int64_t w = wv_now_ns(), m0 = wv_mono_ns();
  CHECK(w > 1700000000LL * WV_NS_PER_S); /* after Nov 2023 */
  CHECK(wv_now_ms() / 1000 - w / WV_NS_PER_S <= 1);
  struct timespec ts = {0, 2000000};
  nanosleep(&ts, NULL);
  int64_t m1 = wv_mono_ns();
  CHECK(m1 - m0 >= 2000000);
  CHECK(wv_mono_ms() >= m1 / WV_NS_PER_MS);
}

WV_TESTS(T(format_like_java_instant), T(parse_iso), T(parse_rejects), T(round_trip),
         T(wave_duration), T(human_duration), T(clocks))
