/*
 * core/log.h — leveled logging to stderr (journald picks it up under systemd).
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from different threads never interleave.
 */
#ifndef WV_LOG_H
#define WV_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  WV_LOG_DEBUG = 0,
  WV_LOG_INFO,
  WV_LOG_WARN,
  WV_LOG_ERROR,
  WV_LOG_OFF
} wv_log_level_t;

void wv_log_set_level(wv_log_level_t level);
wv_log_level_t wv_log_get_level(void);
/* log.format: text lines (the default) or one JSON object per line. */
void wv_log_set_json(bool json);
/* Parses "text|json" into *json; returns 0 or WV_EINVAL. */
int wv_log_format_parse(const char *s, bool *json);

/*
 * The request the calling thread works for (0 = none): every line it logs
 * carries the id ("req=<16 hex>" in text, "request_id" in JSON) and jobs it
 * submits log it first. The server sets it around each handler call.
 */
void wv_log_set_request(uint64_t id);
uint64_t wv_log_request(void);
/* The id as 16 lowercase hex digits and a NUL. */
void wv_log_request_text(uint64_t id, char out[17]);

/* Parses "debug|info|warn|error|off"; returns 0 or WV_EINVAL. */
int wv_log_level_parse(const char *s, wv_log_level_t *out);
void wv_log(wv_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Receives one formatted line (no newline) for a job or scan log. */
typedef void (*wv_log_line_cb)(void *arg, const char *line);

/* Longest line wv_log_vline passes on, NUL included. */
#define WV_LOG_LINE_MAX 1024

/*
 * Formats fmt/ap into a stack buffer of at most max bytes (capped at
 * WV_LOG_LINE_MAX, NUL included; longer output is truncated) and hands it to
 * cb(arg, line). Does nothing when cb is NULL. The line lives only for the
 * call; cb copies what it keeps. Returns nothing: a log line cannot fail.
 */
void wv_log_vline(wv_log_line_cb cb, void *arg, size_t max, const char *fmt, va_list ap);

#define wv_debug(...) wv_log(WV_LOG_DEBUG, __VA_ARGS__)
#define wv_info(...) wv_log(WV_LOG_INFO, __VA_ARGS__)
#define wv_warn(...) wv_log(WV_LOG_WARN, __VA_ARGS__)
#define wv_error(...) wv_log(WV_LOG_ERROR, __VA_ARGS__)

#endif
