/*
 * core/log.h — leveled logging to stderr (journald picks it up under systemd).
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from different threads never interleave.
 */
#ifndef WV_LOG_H
#define WV_LOG_H

typedef enum { WV_LOG_DEBUG = 0, WV_LOG_INFO, WV_LOG_WARN, WV_LOG_ERROR, WV_LOG_OFF } wv_log_level_t;

void wv_log_set_level(wv_log_level_t level);
wv_log_level_t wv_log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns 0 or WV_EINVAL. */
int wv_log_level_parse(const char *s, wv_log_level_t *out);
void wv_log(wv_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define wv_debug(...) wv_log(WV_LOG_DEBUG, __VA_ARGS__)
#define wv_info(...) wv_log(WV_LOG_INFO, __VA_ARGS__)
#define wv_warn(...) wv_log(WV_LOG_WARN, __VA_ARGS__)
#define wv_error(...) wv_log(WV_LOG_ERROR, __VA_ARGS__)

#endif
