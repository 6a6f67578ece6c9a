#include "core/log.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = WV_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void wv_log_set_level(wv_log_level_t level) { atomic_store(&log_level, (int)level); }
wv_log_level_t wv_log_get_level(void) { return (wv_log_level_t)atomic_load(&log_level); }

int wv_log_level_parse(const char *s, wv_log_level_t *out) {
  for (int i = 0; i <= WV_LOG_OFF; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (wv_log_level_t)i;
      return 0;
    }
  }
  return WV_EINVAL;
}

void wv_log_vline(wv_log_line_cb cb, void *arg, size_t max, const char *fmt, va_list ap) {
  if (!cb)
    return;
  char line[WV_LOG_LINE_MAX];
  vsnprintf(line, max < sizeof line ? max : sizeof line, fmt, ap);
  cb(arg, line);
}

void wv_log(wv_log_level_t level, const char *fmt, ...) {
  if ((int)level < atomic_load(&log_level))
    return;
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
  n += snprintf(line + n, sizeof line - (size_t)n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
                level_names[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  /* A message longer than the line is cut, never overflowed. */
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2)
    len = sizeof line - 2;
  line[len++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, len);
  (void)w;
}
