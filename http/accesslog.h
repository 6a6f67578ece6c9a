/*
 * http/accesslog.h — the access log (log.access-log): one line per answered
 * request in the combined format, then the request id and the time to the
 * response head in microseconds:
 *
 *   127.0.0.1 - - [06/Dec/2026:08:30:00 +0000] "GET /v2/ HTTP/1.1" 200 2 "-" "curl/7.88.1"
 * 0123456789abcdef 85
 *
 * Each thread fills its own buffer and writes it with one write(2) when it
 * holds 12 KiB or its oldest line is a second old, and the server's sweep
 * timer (at most 1 s apart) and loop exit write what is left, so the hot path
 * pays a format, not a system call. Lines of different threads never interleave (O_APPEND, whole
 * lines).
 *
 * Thread rules: open/close from main before the server starts / after it
 * stopped; write and flush from any thread.
 */
#ifndef WV_ACCESSLOG_H
#define WV_ACCESSLOG_H

#include "http/http.h"

#include <stdbool.h>
#include <stdint.h>

/* Opens path for appending ("-" = stderr, "" = off). 0 or WV_EIO (logged). */
int wv_accesslog_open(const char *path);
void wv_accesslog_close(void);
/* True when a log is open. */
bool wv_accesslog_on(void);

/* Logs one answered request: its status, body bytes, request id and time since t0 (mono ns). */
void wv_accesslog_write(const wv_req_t *req, int status, uint64_t bytes, uint64_t rid,
                        uint64_t t0_ns);
/* Writes what the calling thread holds when its oldest line is older than max_age_ms. */
void wv_accesslog_flush(int64_t max_age_ms);

#endif
