/*
 * core/timefmt.h — clocks and the time formats of Wave's API (contract §1.1).
 *
 * Instants are int64 nanoseconds since the Unix epoch (UTC), good until
 * year 2262; they render as Java's Instant.toString does: ISO-8601 UTC with
 * "Z" and a fraction of 0, 3, 6 or 9 digits (the shortest group of three
 * that is exact), e.g. "2024-04-09T21:19:01.715321Z". Durations in API
 * bodies are decimal seconds with exactly nine fractional digits
 * ("123.914989000"). All functions are pure or read a clock; thread-safe.
 */
#ifndef WV_TIMEFMT_H
#define WV_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" + NUL, rounded up. */
#define WV_TIME_ISO_STRLEN 32
/* "-9223372036.854775808" + NUL, rounded up. */
#define WV_DURATION_STRLEN 32

#define WV_NS_PER_MS 1000000LL
#define WV_NS_PER_S 1000000000LL

/* Wall clock (CLOCK_REALTIME): for timestamps shown to people and stored in records. */
int64_t wv_now_ns(void);
int64_t wv_now_ms(void);
/* Monotonic clock (CLOCK_MONOTONIC): for deadlines and measuring elapsed time. */
int64_t wv_mono_ns(void);
int64_t wv_mono_ms(void);
/*
 * The instant ms (>= 0) from now on clock (CLOCK_MONOTONIC or CLOCK_REALTIME,
 * the clock the condition variable waits on), for pthread_cond_timedwait.
 */
struct timespec wv_deadline_ts(clockid_t clock, int64_t ms);

/*
 * Renders ns since the epoch as ISO-8601 UTC into out (outlen >=
 * WV_TIME_ISO_STRLEN). Returns 0 or WV_EINVAL (buffer too small). Every
 * int64 instant falls in years 1677..2262, so no year needs a sign.
 */
int wv_time_format_iso(int64_t ns, char *out, size_t outlen);

/*
 * Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" (fraction of any
 * length; digits past the ninth are dropped) into ns since the epoch.
 * Returns 0, WV_EPARSE (malformed, or a field out of its calendar range) or
 * WV_ERANGE (outside the int64 nanosecond range).
 */
int wv_time_parse_iso(const char *s, int64_t *ns);

/* Renders a duration as Wave does: seconds with nine fractional digits, e.g. "123.914989000". */
int wv_duration_format_wave(int64_t ns, char *out, size_t outlen);

/*
 * Renders a duration for logs: "850ns", "12.3us", "4.5ms", "1.25s", "3m07s",
 * "2h05m09s", "3d04h10m". Truncates, never rounds up. Returns 0 or WV_EINVAL.
 */
int wv_duration_format_human(int64_t ns, char *out, size_t outlen);

#endif
