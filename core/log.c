#include "core/log.h"
#include "core/digest.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Process-wide on purpose: every layer logs, from threads that hold no wv_app_t (the job engine,
 * the committer, libraries' callbacks), and the settings are set once from the configuration. */
static _Atomic int log_level = WV_LOG_INFO;
static atomic_bool log_json;               /* log.format: json */
static _Thread_local uint64_t cur_request; /* wv_log_set_request */
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

void wv_log_set_json(bool json) { atomic_store(&log_json, json); }

int wv_log_format_parse(const char *s, bool *json) {
  if (strcmp(s, "text") != 0 && strcmp(s, "json") != 0)
    return WV_EINVAL;
  *json = strcmp(s, "json") == 0;
  return 0;
}

void wv_log_set_request(uint64_t id) { cur_request = id; }
uint64_t wv_log_request(void) { return cur_request; }

void wv_log_request_text(uint64_t id, char out[17]) {
  uint8_t be[8]; /* the id's bytes, most significant first */
  for (int i = 7; i >= 0; i--, id >>= 8)
    be[i] = (uint8_t)id;
  wv_hex_encode(be, sizeof be, out);
}

/* Appends s to line[*n..cap) as the inside of a JSON string; cut (never overflowed) at cap. */
static void json_escape(char *line, size_t *n, size_t cap, const char *s) {
  static const char hex[] = "0123456789abcdef";
  for (const unsigned char *p = (const unsigned char *)s; *p && *n + 7 < cap; p++) {
    if (*p == '"' || *p == '\\') {
      line[(*n)++] = '\\';
      line[(*n)++] = (char)*p;
    } else if (*p < 0x20) {
      *n += (size_t)snprintf(line + *n, cap - *n, "\\u00%c%c", hex[*p >> 4], hex[*p & 15]);
    } else {
      line[(*n)++] = (char)*p;
    }
  }
}

void wv_log(wv_log_level_t level, const char *fmt, ...) {
  if ((int)level < atomic_load(&log_level))
    return;
  char msg[2048], line[4096 + 128], ts_text[40], rid[17];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t t = strftime(ts_text, sizeof ts_text, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts_text + t, sizeof ts_text - t, ".%03ldZ", ts.tv_nsec / 1000000);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap); /* a message longer than the line is cut */
  va_end(ap);
  uint64_t req = cur_request;
  if (req)
    wv_log_request_text(req, rid);
  size_t n;
  if (atomic_load_explicit(&log_json, memory_order_relaxed)) {
    n = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",", ts_text,
                         level_names[level]);
    if (req)
      n += (size_t)snprintf(line + n, sizeof line - n, "\"request_id\":\"%s\",", rid);
    n += (size_t)snprintf(line + n, sizeof line - n, "\"msg\":\"");
    json_escape(line, &n, sizeof line - 4, msg);
    line[n++] = '"';
    line[n++] = '}';
  } else {
    int m = snprintf(line, sizeof line, "%s %-5s %s%s%s%s", ts_text, level_names[level],
                     req ? "req=" : "", req ? rid : "", req ? " " : "", msg);
    n = m < 0 ? 0 : (size_t)m;
    if (n > sizeof line - 2)
      n = sizeof line - 2;
  }
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, n);
  (void)w;
}
