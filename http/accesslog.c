/* http/accesslog.c — the access log (see accesslog.h). */
#include "http/accesslog.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)
#define FLUSH_AT (12 * 1024)
#define LINE_MAX_BYTES 4096 /* a longer line (a huge URL) is cut */
#define FIELD_MAX 1024      /* bytes kept of the URL, referer and user agent */

/* Process-wide on purpose, as core/log.c is: opened once at start, written from every IO
 * loop (each through its own per-thread buffer below). */
static int log_fd = -1;
static bool own_fd;

typedef struct {
  char buf[BUF_SIZE];
  size_t len;
  int64_t first_ms; /* when the oldest buffered line was added */
  time_t date_sec;  /* the second date[] shows */
  char date[40];
} tbuf_t;

static _Thread_local tbuf_t *tb;

int wv_accesslog_open(const char *path) {
  if (!path || !*path)
    return 0;
  if (strcmp(path, "-") == 0) {
    log_fd = STDERR_FILENO;
    return 0;
  }
  log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log_fd < 0) {
    wv_error("log.access-log: cannot open %s: %s", path, strerror(errno));
    return WV_EIO;
  }
  own_fd = true;
  return 0;
}

void wv_accesslog_close(void) {
  if (own_fd && log_fd >= 0)
    close(log_fd);
  log_fd = -1;
  own_fd = false;
}

bool wv_accesslog_on(void) { return log_fd >= 0; }

static void flush_now(tbuf_t *t) {
  for (size_t off = 0; off < t->len;) {
    ssize_t n = write(log_fd, t->buf + off, t->len - off);
    if (n <= 0 && errno != EINTR)
      break; /* a full disk loses lines, never the request */
    off += n > 0 ? (size_t)n : 0;
  }
  t->len = 0;
}

void wv_accesslog_flush(int64_t max_age_ms) {
  if (tb && tb->len && log_fd >= 0 && wv_mono_ms() - tb->first_ms >= max_age_ms)
    flush_now(tb);
}

/* A quoted field: the value with '"', '\\' and control bytes escaped, cut at FIELD_MAX. */
static size_t quoted(char *out, size_t cap, const char *v) {
  size_t n = 0;
  if (!v || !*v)
    v = "-";
  out[n++] = '"';
  for (const unsigned char *p = (const unsigned char *)v; *p && n + 6 < cap && n < FIELD_MAX; p++) {
    if (*p == '"' || *p == '\\' || *p < 0x20 || *p == 0x7f)
      n += (size_t)snprintf(out + n, cap - n, "\\x%02x", *p);
    else
      out[n++] = (char)*p;
  }
  out[n++] = '"';
  return n;
}

void wv_accesslog_write(const wv_req_t *req, int status, uint64_t bytes, uint64_t rid,
                        uint64_t t0_ns) {
  if (log_fd < 0)
    return;
  if (!tb && !(tb = calloc(1, sizeof *tb)))
    return; /* kept for the thread's life: threads are few and long-lived */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != tb->date_sec) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tb->date, sizeof tb->date, "[%d/%b/%Y:%H:%M:%S +0000]", &tm);
    tb->date_sec = ts.tv_sec;
  }
  char line[LINE_MAX_BYTES], rtext[17], target[FIELD_MAX + 64];
  wv_log_request_text(rid, rtext);
  snprintf(target, sizeof target, "%s %.*s HTTP/1.1", req->method_name ? req->method_name : "-",
           FIELD_MAX, req->url ? req->url : "-");
  uint64_t us = t0_ns ? ((uint64_t)wv_mono_ns() - t0_ns) / 1000 : 0;
  size_t n = (size_t)snprintf(line, sizeof line, "%s - - %s ",
                              req->client_ip[0] ? req->client_ip : "-", tb->date);
  n += quoted(line + n, sizeof line - n - 200, target);
  n += (size_t)snprintf(line + n, sizeof line - n, " %d %llu ", status, (unsigned long long)bytes);
  n += quoted(line + n, sizeof line - n - 200, req->url ? wv_req_header(req, "Referer") : NULL);
  line[n++] = ' ';
  n += quoted(line + n, sizeof line - n - 100, req->url ? wv_req_header(req, "User-Agent") : NULL);
  n += (size_t)snprintf(line + n, sizeof line - n, " %s %llu\n", rtext, (unsigned long long)us);
  if (tb->len + n > BUF_SIZE)
    flush_now(tb);
  if (!tb->len)
    tb->first_ms = wv_mono_ms();
  memcpy(tb->buf + tb->len, line, n);
  tb->len += n;
  wv_metrics_add(WV_METRICS_ACCESS_LOG, 1);
  if (tb->len >= FLUSH_AT || wv_mono_ms() - tb->first_ms >= 1000)
    flush_now(tb);
}
