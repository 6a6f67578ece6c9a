/*
 * core/timefmt.c — clocks and ISO-8601 / duration formatting (see timefmt.h).
 *
 * The calendar conversions are Howard Hinnant's days_from_civil and
 * civil_from_days (proleptic Gregorian, exact for every int64 day count we
 * can meet), so formatting and parsing need neither timegm() nor the TZ
 * environment.
 */
#include "core/timefmt.h"
#include "core/err.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * WV_NS_PER_S + ts.tv_nsec;
}

int64_t wv_now_ns(void) { return clock_ns(CLOCK_REALTIME); }
int64_t wv_now_ms(void) { return wv_now_ns() / WV_NS_PER_MS; }
int64_t wv_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
int64_t wv_mono_ms(void) { return wv_mono_ns() / WV_NS_PER_MS; }

struct timespec wv_deadline_ts(clockid_t clock, int64_t ms) {
  int64_t ns = clock_ns(clock) + (ms > 0 ? ms : 0) * WV_NS_PER_MS;
  return (struct timespec){.tv_sec = (time_t)(ns / WV_NS_PER_S),
                           .tv_nsec = (long)(ns % WV_NS_PER_S)};
}

/* Floor division: instants before 1970 must land on the previous second/day. */
static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = floordiv(y, 400);
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = floordiv(z, 146097);
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Java prints the shortest of 0, 3, 6 or 9 digits that is exact. */
static int fraction(char *out, size_t outlen, int64_t nanos) {
  if (nanos == 0)
    return snprintf(out, outlen, "Z");
  if (nanos % 1000000 == 0)
    return snprintf(out, outlen, ".%03lldZ", (long long)(nanos / 1000000));
  if (nanos % 1000 == 0)
    return snprintf(out, outlen, ".%06lldZ", (long long)(nanos / 1000));
  return snprintf(out, outlen, ".%09lldZ", (long long)nanos);
}

int wv_time_format_iso(int64_t ns, char *out, size_t outlen) {
  if (outlen < WV_TIME_ISO_STRLEN)
    return WV_EINVAL;
  /* Split without computing secs * 1e9, which overflows near INT64_MIN. */
  int64_t secs = ns / WV_NS_PER_S, nanos = ns % WV_NS_PER_S;
  if (nanos < 0) {
    nanos += WV_NS_PER_S;
    secs--;
  }
  int64_t days = floordiv(secs, 86400), sod = secs - days * 86400;
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  int n = snprintf(out, outlen, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, m, d,
                   (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
  fraction(out + n, outlen - (size_t)n, nanos);
  return 0;
}

/* Reads exactly n digits at *p into *v and advances. */
static bool digits(const char **p, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (**p < '0' || **p > '9')
      return false;
    *v = *v * 10 + (**p - '0');
  }
  return true;
}

static bool expect(const char **p, char c) { return **p == c ? ((*p)++, true) : false; }

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_days(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return days[m - 1] + (m == 2 && is_leap(y));
}

/* Parses ".ddd…" (any length) into nanoseconds; no fraction is 0. */
static bool parse_fraction(const char **p, int64_t *nanos) {
  *nanos = 0;
  if (**p != '.' && **p != ',')
    return true;
  (*p)++;
  int n = 0;
  for (; **p >= '0' && **p <= '9'; (*p)++, n++)
    if (n < 9)
      *nanos = *nanos * 10 + (**p - '0');
  for (int i = n; i < 9; i++)
    *nanos *= 10;
  return n > 0;
}

/* Parses "Z" or "±HH:MM" into seconds east of UTC. */
static bool parse_offset(const char **p, int *offset) {
  *offset = 0;
  if (expect(p, 'Z') || expect(p, 'z'))
    return true;
  int sign = **p == '+' ? 1 : **p == '-' ? -1 : 0, hh, mm;
  if (!sign)
    return false;
  (*p)++;
  if (!digits(p, 2, &hh) || !expect(p, ':') || !digits(p, 2, &mm) || hh > 18 || mm > 59)
    return false;
  *offset = sign * (hh * 3600 + mm * 60);
  return true;
}

int wv_time_parse_iso(const char *s, int64_t *ns) {
  const char *p = s;
  int y, mo, d, h, mi, se, off;
  int64_t nanos;
  if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
      !digits(&p, 2, &d) || !(expect(&p, 'T') || expect(&p, 't')) || !digits(&p, 2, &h) ||
      !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') || !digits(&p, 2, &se) ||
      !parse_fraction(&p, &nanos) || !parse_offset(&p, &off) || *p)
    return WV_EPARSE;
  if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || se > 59)
    return WV_EPARSE;
  int64_t secs =
      days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
  /* int64 ns covers 1677-09-21 .. 2262-04-11. */
  if (secs < INT64_MIN / WV_NS_PER_S + 1 || secs > INT64_MAX / WV_NS_PER_S - 1)
    return WV_ERANGE;
  *ns = secs * WV_NS_PER_S + nanos;
  return 0;
}

int wv_duration_format_wave(int64_t ns, char *out, size_t outlen) {
  /* Work on the magnitude as unsigned so INT64_MIN has no overflow. */
  uint64_t mag = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
  int n =
      snprintf(out, outlen, "%s%llu.%09llu", ns < 0 ? "-" : "",
               (unsigned long long)(mag / WV_NS_PER_S), (unsigned long long)(mag % WV_NS_PER_S));
  return n < 0 || (size_t)n >= outlen ? WV_EINVAL : 0;
}

int wv_duration_format_human(int64_t ns, char *out, size_t outlen) {
  uint64_t v = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
  const char *sign = ns < 0 ? "-" : "";
  unsigned long long s = v / WV_NS_PER_S;
  int n;
  if (v < 1000)
    n = snprintf(out, outlen, "%s%lluns", sign, (unsigned long long)v);
  else if (v < 1000000)
    n = snprintf(out, outlen, "%s%llu.%lluus", sign, (unsigned long long)(v / 1000),
                 (unsigned long long)(v % 1000 / 100));
  else if (v < (uint64_t)WV_NS_PER_S)
    n = snprintf(out, outlen, "%s%llu.%llums", sign, (unsigned long long)(v / 1000000),
                 (unsigned long long)(v % 1000000 / 100000));
  else if (s < 60)
    n = snprintf(out, outlen, "%s%llu.%02llus", sign, s,
                 (unsigned long long)(v % WV_NS_PER_S / 10000000));
  else if (s < 3600)
    n = snprintf(out, outlen, "%s%llum%02llus", sign, s / 60, s % 60);
  else if (s < 86400)
    n = snprintf(out, outlen, "%s%lluh%02llum%02llus", sign, s / 3600, s / 60 % 60, s % 60);
  else
    n = snprintf(out, outlen, "%s%llud%02lluh%02llum", sign, s / 86400, s / 3600 % 24, s / 60 % 60);
  return n < 0 || (size_t)n >= outlen ? WV_EINVAL : 0;
}
