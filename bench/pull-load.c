/*
 * bench/pull-load — an HTTP/1.1 load generator that replays registry pulls.
 *
 *   pull-load [-c CONNS] [-t THREADS] [-d SECONDS] [-w SECONDS] [-T SECONDS]
 *             [-R RATE] [-C RATE] [-m MIXFILE] [-e MIXLINE]... [-n NAME] [-p PID] [-1] [-q] URL
 *
 * DESIGN
 *
 * Closed loop, like wrk: each connection sends one request, waits for the
 * whole response, then sends the next (keep-alive, no pipelining). The
 * connections are split evenly over THREADS threads; each thread runs its own
 * libuv loop, owns its connections, counters and histogram, and shares
 * nothing with the others while running (only the atomic line cursor in -1
 * mode). The main thread only samples the server's memory from /proc and
 * merges the results after joining.
 *
 * Open loop (-R RATE, requests per second in all), as wrk2 does: every
 * connection has a fixed schedule, one request every CONNS / RATE seconds,
 * the connections' schedules staggered evenly (thread i's k-th slot is at
 * start + k * THREADS / RATE and goes to its connection k mod its
 * connections). A connection still waiting for its previous answer when its
 * next slot comes sends that request as soon as the answer arrives (still no
 * pipelining), and the latency of every request is measured from its slot,
 * the intended send time, not from when it could be sent: a server that
 * stalls is charged for all the requests that should have gone out
 * meanwhile (coordinated omission). Slots are timed with a timerfd per
 * thread (microseconds; libuv's timers have millisecond steps, which would
 * add up to a millisecond to every latency). Requests scheduled inside the
 * window but not answered when it ends (in flight or still waiting for
 * their connection) are counted as "late" and recorded with the time they
 * had waited so far, a lower bound.
 *
 * Connections open all at once, or with -C RATE in waves: every 10 ms tick
 * each thread starts the connections that RATE allows by then (many
 * thousands of connections arriving in one go would overflow the server's
 * accept backlog, which is not what is measured).
 *
 * Time: the first -w seconds are warm-up (connections are opened and
 * requests run, nothing is counted); the next -d seconds are measured. A
 * request counts if it was sent and completed inside the measured window.
 * Body bytes count when they arrive inside the window, so MB/s is right even
 * when a single 256 MB response spans the window's edges.
 *
 * The request mix is a list of lines "WEIGHT METHOD STATUS PATH [Name:value]... [@BODYFILE]"
 * (from -m FILE, '#' comments allowed, and/or -e LINE); @BODYFILE sends that file's bytes
 * (with their Content-Length) as the request body, e.g. container requests (POST). Every request
 * text is rendered once at start; sending is a uv_write of that static buffer. Each request picks a
 * line at random in proportion to WEIGHT (a per-connection xorshift generator). With -1 ("once")
 * weights are ignored and every line is sent exactly once, in order, spread over all connections;
 * the run ends when the last line is answered (or -d passes). -1 has no warm-up.
 *
 * Responses are parsed with llhttp (the parser waved itself uses): status,
 * Content-Length, chunked and read-until-close bodies, HEAD responses without
 * a body, Connection: close (the connection is re-opened, not an error).
 *
 * Errors, by kind: connect (connect failed), io (reset or closed with a
 * request in flight, write failed), status (the status differs from the
 * line's STATUS; 0 accepts any), timeout (no complete response within -T;
 * the connection is closed and re-opened), parse (malformed response).
 * Errors count from the start, warm-up included: any error is a finding.
 * Only successful requests enter the latency histogram. Unexpected statuses
 * are also counted by code (status_<code> in RESULT), and ok_bytes is the
 * body bytes of the responses that had the expected status (bytes: all).
 *
 * Output: a human-readable block, then one machine-readable line starting
 * with "RESULT " (key=value pairs, no spaces inside values) for scripts.
 */
#include "hist.h"

#include <errno.h>
#include <getopt.h>
#include <llhttp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define READ_BUF (256 * 1024)
#define MAX_LINE 8192
#define MAX_CONNS 100000
#define TICK_MS 10
#define RETRY_MS 20
#define TICK_WALK 10  /* ticks between walks over every connection (timeouts, retries) */
#define RATE_MAX 10e6 /* -R cap, requests per second */

enum { ERR_CONNECT, ERR_IO, ERR_STATUS, ERR_TIMEOUT, ERR_PARSE, ERR__N };
static const char *const err_names[ERR__N] = {"connect", "io", "status", "timeout", "parse"};

typedef struct {
  uint64_t weight;
  int head;   /* HEAD: the response has no body whatever its headers say */
  int expect; /* expected status, 0 = any */
  char *text; /* the rendered request */
  size_t len;
} mix_line_t;

typedef struct {
  mix_line_t *v;
  size_t n, cap;
  uint64_t *cum; /* cumulative weights, for the weighted pick */
  uint64_t total;
} mix_t;

typedef struct {
  int conns, threads, once, quiet;
  double duration, warmup, timeout;
  double rate;      /* -R: requests per second in all (open loop); 0 = closed loop */
  double conn_rate; /* -C: connections opened per second in all, in waves; 0 = all at once */
  const char *name, *url;
  long pid;
  char host[256];
  struct sockaddr_storage addr;
} opts_t;

enum { C_IDLE, C_CONNECTING, C_OPEN, C_CLOSING, C_RETRY, C_DONE };

struct worker;

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  llhttp_t parser;
  struct worker *w;
  const mix_line_t *line; /* in flight, or NULL */
  uint64_t t0;            /* uv_hrtime() when the request was sent (open loop: its slot) */
  uint64_t t_sent;        /* uv_hrtime() when it was actually written */
  uint64_t pending;       /* open loop: slots that came while busy, oldest at pend_at */
  uint64_t pend_at;
  uint64_t retry_at; /* uv_now() of the next connect attempt in C_RETRY */
  uint64_t rng;
  int state, counted, complete, status, keep_alive, failed_connect;
  uint64_t resp_bytes; /* body bytes of the response in flight, inside the window */
} conn_t; /* small: on_tick walks them all (10,000 parked pulls), so no buffer in here */

typedef struct worker {
  uv_loop_t loop;
  uv_timer_t warm, end, tick;
  pthread_t thread;
  conn_t *conns;
  char *rbuf; /* READ_BUF: every read of this loop lands here and is parsed at once */
  int nconns, measuring, stopping;
  int ndone;                  /* connections in C_DONE (counted, so on_tick need not walk them) */
  unsigned ticks;             /* on_tick calls */
  uint64_t t_measure, t_stop; /* uv_hrtime() of the window's edges */
  pl_hist_t hist;
  uint64_t ok, errs[ERR__N], body_bytes, ok_bytes, connects;
  uint64_t bad_status[600]; /* unexpected statuses, by code (0: out of range) */
  uint64_t all;             /* responses completed at any time, warm-up included */
  /* open loop */
  int tfd;             /* timerfd (CLOCK_MONOTONIC, the clock of uv_hrtime) */
  uv_poll_t tpoll;     /* its readiness in the loop */
  uint64_t slot_start; /* uv_hrtime() of slot 0 */
  double slot_gap;     /* ns between this thread's slots */
  uint64_t slot_next;  /* index of the next slot to hand out */
  uint64_t late;       /* scheduled in the window, unanswered at its end */
  int opened;          /* -C: connections started so far */
  uint64_t t_start;    /* uv_hrtime() at the worker's start */
} worker_t;

static opts_t g_opts;
static mix_t g_mix;
static atomic_size_t g_cursor; /* next line in -1 mode */
static atomic_int g_running;   /* workers still running */
static llhttp_settings_t g_settings;

/* ---- the request mix ------------------------------------------------------ */

static int mix_push(mix_t *m, mix_line_t *l) {
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    mix_line_t *v = realloc(m->v, cap * sizeof *v);
    if (!v)
      return -1;
    m->v = v;
    m->cap = cap;
  }
  m->v[m->n++] = *l;
  return 0;
}

/* Appends n bytes of s to the request text being built in b (capacity
 * MAX_LINE). Returns -1 when they would not fit. */
static int put(char *b, size_t *len, const char *s, size_t n) {
  if (*len + n >= MAX_LINE)
    return -1;
  memcpy(b + *len, s, n);
  *len += n;
  return 0;
}
#define PUTS(b, len, s) put(b, len, s, strlen(s))

/* Parses one mix line into l (text allocated). Returns 0, 1 for a blank or
 * comment line, -1 with a message on stderr for a malformed one. */
static int mix_parse_line(const char *src, const char *host, mix_line_t *l) {
  char copy[MAX_LINE], text[MAX_LINE], *save = NULL;
  size_t len = 0;
  if (strlen(src) >= sizeof copy)
    return fprintf(stderr, "pull-load: mix line too long\n"), -1;
  strcpy(copy, src);
  char *w = strtok_r(copy, " \t\r\n", &save);
  if (!w || w[0] == '#')
    return 1;
  char *method = strtok_r(NULL, " \t\r\n", &save);
  char *status = strtok_r(NULL, " \t\r\n", &save);
  char *path = strtok_r(NULL, " \t\r\n", &save);
  char *end = NULL;
  memset(l, 0, sizeof *l);
  l->weight = strtoull(w, &end, 10);
  if (*end || !method || !status || !path || path[0] != '/')
    return fprintf(stderr, "pull-load: bad mix line: %s\n", src), -1;
  l->expect = atoi(status);
  l->head = strcmp(method, "HEAD") == 0;
  int rc = PUTS(text, &len, method) | PUTS(text, &len, " ") | PUTS(text, &len, path) |
           PUTS(text, &len, " HTTP/1.1\r\nHost: ") | PUTS(text, &len, host) |
           PUTS(text, &len, "\r\nUser-Agent: pull-load\r\n");
  char body[MAX_LINE / 2];
  size_t body_len = 0;
  for (char *h; (h = strtok_r(NULL, " \t\r\n", &save));) {
    if (h[0] == '@') { /* the body, from a file */
      FILE *bf = fopen(h + 1, "rb");
      if (!bf)
        return fprintf(stderr, "pull-load: %s: %s\n", h + 1, strerror(errno)), -1;
      body_len = fread(body, 1, sizeof body, bf);
      int big = fgetc(bf) != EOF;
      fclose(bf);
      if (big)
        return fprintf(stderr, "pull-load: %s: body over %zu bytes\n", h + 1, sizeof body), -1;
      char cl[64];
      snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", body_len);
      rc |= PUTS(text, &len, cl);
      continue;
    }
    char *colon = strchr(h, ':');
    if (!colon || colon == h)
      return fprintf(stderr, "pull-load: bad header '%s' (want Name:value)\n", h), -1;
    rc |= put(text, &len, h, (size_t)(colon - h)) | PUTS(text, &len, ": ") |
          PUTS(text, &len, colon + 1) | PUTS(text, &len, "\r\n");
  }
  rc |= PUTS(text, &len, "\r\n") | put(text, &len, body, body_len);
  if (rc)
    return fprintf(stderr, "pull-load: request too long: %s\n", src), -1;
  if (!(l->text = malloc(len)))
    return -1;
  memcpy(l->text, text, len);
  l->len = len;
  return 0;
}

static int mix_add(mix_t *m, const char *src, const char *host) {
  mix_line_t l;
  int rc = mix_parse_line(src, host, &l);
  if (rc == 0 && mix_push(m, &l) < 0)
    return free(l.text), -1;
  return rc < 0 ? -1 : 0;
}

static int mix_load(mix_t *m, const char *file, const char *host) {
  FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
  char line[MAX_LINE];
  int rc = 0;
  if (!f)
    return fprintf(stderr, "pull-load: %s: %s\n", file, strerror(errno)), -1;
  while (rc == 0 && fgets(line, sizeof line, f))
    rc = mix_add(m, line, host);
  if (f != stdin)
    fclose(f);
  return rc;
}

static int mix_finish(mix_t *m) {
  if (m->n == 0)
    return fprintf(stderr, "pull-load: empty request mix\n"), -1;
  if (!(m->cum = malloc(m->n * sizeof *m->cum)))
    return -1;
  for (size_t i = 0; i < m->n; i++)
    m->cum[i] = (m->total += m->v[i].weight);
  if (m->total == 0 && !g_opts.once)
    return fprintf(stderr, "pull-load: all weights are 0\n"), -1;
  return 0;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* The next line for c, or NULL when -1 mode has run out of lines. */
static const mix_line_t *mix_pick(conn_t *c) {
  if (g_opts.once) {
    size_t i = atomic_fetch_add(&g_cursor, 1);
    return i < g_mix.n ? &g_mix.v[i] : NULL;
  }
  uint64_t r = xorshift(&c->rng) % g_mix.total;
  size_t lo = 0, hi = g_mix.n - 1;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (g_mix.cum[mid] > r)
      hi = mid;
    else
      lo = mid + 1;
  }
  return &g_mix.v[lo];
}

/* ---- connections ---------------------------------------------------------- */

static void conn_connect(conn_t *c);
static void conn_send(conn_t *c, uint64_t intended);
static void conn_next(conn_t *c);
static void worker_stop(worker_t *w);

static void count_err(worker_t *w, int kind) { w->errs[kind]++; }

static void set_done(conn_t *c) {
  if (c->state != C_DONE)
    c->w->ndone++;
  c->state = C_DONE;
}

static void on_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  worker_t *w = c->w;
  if (w->stopping || c->state == C_DONE) {
    set_done(c);
    return;
  }
  if (c->failed_connect) {
    c->state = C_RETRY;
    c->retry_at = uv_now(&w->loop) + RETRY_MS;
  } else {
    conn_connect(c);
  }
}

/* Closes c; kind >= 0 counts an error. In -1 mode a request lost to an error
 * is not retried (the line was taken), which the error count shows. */
static void conn_drop(conn_t *c, int kind) {
  if (kind >= 0)
    count_err(c->w, kind);
  c->line = NULL;
  if (c->state != C_CLOSING && c->state != C_DONE) {
    c->state = C_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
  }
}

static void conn_finish(conn_t *c) {
  set_done(c);
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *c = p->data;
  c->status = p->status_code;
  return c->line && c->line->head ? 1 : 0; /* 1: this response has no body */
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (c->w->measuring) {
    c->w->body_bytes += len;
    c->resp_bytes += len;
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  conn_t *c = p->data;
  c->complete = 1;
  c->keep_alive = llhttp_should_keep_alive(p);
  return HPE_PAUSED; /* no pipelining: nothing may follow until we send */
}

/* Books the response that just completed and sends the next request. */
static void conn_answered(conn_t *c) {
  worker_t *w = c->w;
  const mix_line_t *l = c->line;
  c->line = NULL;
  c->complete = 0;
  w->all++;
  llhttp_resume(&c->parser);
  if (l->expect && c->status != l->expect) {
    count_err(w, ERR_STATUS);
    w->bad_status[c->status > 0 && c->status < 600 ? c->status : 0]++;
  } else if (c->counted && w->measuring) {
    w->ok++;
    w->ok_bytes += c->resp_bytes;
    pl_hist_record(&w->hist, (uv_hrtime() - c->t0) / 1000);
  }
  if (w->stopping)
    return;
  if (!c->keep_alive)
    conn_drop(c, -1);
  else
    conn_next(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn_t *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->w->rbuf, READ_BUF);
}

/* Whether the end of the stream completes the response in flight (a body
 * delimited by the close of the connection). */
static int eof_completes(conn_t *c) {
  llhttp_errno_t e = llhttp_finish(&c->parser);
  return (e == HPE_OK || e == HPE_PAUSED) && c->complete;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (n == 0 || c->state != C_OPEN)
    return;
  if (n < 0) {
    /* A body delimited by the close of the connection ends here. */
    if (n == UV_EOF && c->line && eof_completes(c)) {
      c->keep_alive = 0;
      conn_answered(c);
      return;
    }
    conn_drop(c, c->line ? ERR_IO : -1); /* an idle keep-alive close is normal */
    return;
  }
  if (!c->line) {
    conn_drop(c, ERR_PARSE); /* bytes nobody asked for */
    return;
  }
  llhttp_errno_t e = llhttp_execute(&c->parser, buf->base, (size_t)n);
  if (e == HPE_PAUSED && c->complete)
    conn_answered(c);
  else if (e != HPE_OK)
    conn_drop(c, ERR_PARSE);
}

static void on_written(uv_write_t *req, int status) {
  conn_t *c = req->data;
  if (status < 0 && c->state == C_OPEN)
    conn_drop(c, ERR_IO);
}

static void conn_send(conn_t *c, uint64_t intended) {
  const mix_line_t *l = mix_pick(c);
  if (!l) {
    conn_finish(c);
    return;
  }
  c->line = l;
  c->complete = 0;
  c->resp_bytes = 0;
  c->counted = c->w->measuring;
  c->t0 = intended;
  c->t_sent = uv_hrtime();
  uv_buf_t b = uv_buf_init(l->text, (unsigned)l->len);
  int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc < 0)
    conn_drop(c, ERR_IO);
}

static void on_connect(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  if (c->state != C_CONNECTING)
    return; /* stopped while connecting; the close callback finishes it */
  if (status < 0) {
    c->failed_connect = 1;
    conn_drop(c, ERR_CONNECT);
    return;
  }
  c->failed_connect = 0;
  c->state = C_OPEN;
  c->w->connects++;
  llhttp_init(&c->parser, HTTP_RESPONSE, &g_settings);
  c->parser.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
    conn_drop(c, ERR_IO);
  else
    conn_next(c);
}

/* c is open and idle: closed loop, send at once; open loop, send its oldest due slot if any. */
static void conn_next(conn_t *c) {
  if (g_opts.rate <= 0) {
    conn_send(c, uv_hrtime());
    return;
  }
  if (!c->pending)
    return;
  uint64_t at = c->pend_at;
  c->pending--;
  c->pend_at += (uint64_t)(c->w->slot_gap * c->w->nconns);
  conn_send(c, at);
}

/* ---- open loop: the slots ------------------------------------------------- */

static uint64_t slot_time(const worker_t *w, uint64_t k) {
  return w->slot_start + (uint64_t)((double)k * w->slot_gap);
}

static void timer_arm(worker_t *w, uint64_t at) {
  struct itimerspec its = {.it_value = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)}};
  timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Hands every slot that is due to its connection, then sleeps until the next one. */
static void on_slot(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  worker_t *w = p->data;
  uint64_t expirations, now = uv_hrtime();
  if (read(w->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
    return;
  if (w->stopping)
    return;
  for (uint64_t at; (at = slot_time(w, w->slot_next)) <= now; w->slot_next++) {
    conn_t *c = &w->conns[w->slot_next % (uint64_t)w->nconns];
    if (c->state == C_DONE)
      continue; /* closing or reconnecting: the slot waits for it like a busy one */
    if (!c->pending)
      c->pend_at = at;
    c->pending++;
    if (c->state == C_OPEN && !c->line)
      conn_next(c);
  }
  timer_arm(w, slot_time(w, w->slot_next));
}

/* Open loop, at the end of the window: what was scheduled but not answered. */
static void count_late(worker_t *w, uint64_t now) {
  uint64_t gap = (uint64_t)(w->slot_gap * w->nconns);
  for (int i = 0; i < w->nconns; i++) {
    conn_t *c = &w->conns[i];
    if (c->line && c->counted) {
      w->late++;
      pl_hist_record(&w->hist, (now - c->t0) / 1000);
    }
    for (uint64_t k = 0; k < c->pending; k++) {
      uint64_t at = c->pend_at + k * gap;
      if (at < w->t_measure)
        continue;
      w->late++;
      pl_hist_record(&w->hist, (now - at) / 1000);
    }
  }
}

static void conn_connect(conn_t *c) {
  worker_t *w = c->w;
  c->failed_connect = 0;
  if (uv_tcp_init(&w->loop, &c->tcp) < 0) {
    c->state = C_RETRY;
    c->retry_at = uv_now(&w->loop) + RETRY_MS;
    count_err(w, ERR_CONNECT);
    return;
  }
  c->tcp.data = c;
  c->creq.data = c;
  c->wreq.data = c;
  c->state = C_CONNECTING;
  if (uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&g_opts.addr, on_connect) < 0) {
    c->failed_connect = 1;
    conn_drop(c, ERR_CONNECT);
  }
}

/* ---- one worker thread ---------------------------------------------------- */

static void on_warm(uv_timer_t *t) {
  worker_t *w = t->data;
  w->measuring = 1;
  w->t_measure = uv_hrtime();
}

static void on_end(uv_timer_t *t) { worker_stop(t->data); }

/* -C: starts the connections due by now (a wave every tick); all of them without -C. */
static void open_wave(worker_t *w) {
  int due = w->nconns;
  if (g_opts.conn_rate > 0) {
    double secs = (double)(uv_hrtime() - w->t_start) / 1e9;
    double n = 1 + secs * g_opts.conn_rate / g_opts.threads;
    due = n < w->nconns ? (int)n : w->nconns;
  }
  for (; w->opened < due; w->opened++)
    conn_connect(&w->conns[w->opened]);
}

/* Every TICK_MS: open the next wave (-C) and in -1 mode stop when every connection has run
 * out of lines; every TICK_WALK ticks also time out slow requests and retry failed connects.
 * The walk over all connections is what 10,000 parked pulls would pay 100 times a second. */
static void on_tick(uv_timer_t *t) {
  worker_t *w = t->data;
  uint64_t now = uv_hrtime(), limit = (uint64_t)(g_opts.timeout * 1e9);
  if (w->opened < w->nconns)
    open_wave(w);
  int walk = ++w->ticks % TICK_WALK == 0;
  for (int i = 0; walk && i < w->nconns; i++) {
    conn_t *c = &w->conns[i];
    if (c->state == C_OPEN && c->line && now - c->t_sent > limit)
      conn_drop(c, ERR_TIMEOUT);
    else if (c->state == C_RETRY && uv_now(&w->loop) >= c->retry_at)
      conn_connect(c);
  }
  if (w->ndone == w->nconns && w->opened == w->nconns)
    worker_stop(w);
}

static void worker_stop(worker_t *w) {
  if (w->stopping)
    return;
  w->stopping = 1;
  if (w->measuring) {
    w->t_stop = uv_hrtime();
    if (g_opts.rate > 0)
      count_late(w, w->t_stop);
  }
  w->measuring = 0;
  if (g_opts.rate > 0)
    uv_close((uv_handle_t *)&w->tpoll, NULL);
  for (int i = 0; i < w->nconns; i++) {
    conn_t *c = &w->conns[i];
    if (c->state != C_DONE && c->state != C_CLOSING && c->state != C_RETRY &&
        c->state != C_IDLE) /* C_IDLE: -C never started it */
      uv_close((uv_handle_t *)&c->tcp, on_closed);
    if (c->state != C_CLOSING)
      set_done(c);
  }
  uv_close((uv_handle_t *)&w->warm, NULL);
  uv_close((uv_handle_t *)&w->end, NULL);
  uv_close((uv_handle_t *)&w->tick, NULL);
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  uint64_t warm_ms = (uint64_t)(g_opts.warmup * 1000);
  uint64_t end_ms = warm_ms + (uint64_t)(g_opts.duration * 1000);
  uv_timer_init(&w->loop, &w->warm);
  uv_timer_init(&w->loop, &w->end);
  uv_timer_init(&w->loop, &w->tick);
  w->warm.data = w->end.data = w->tick.data = w;
  if (warm_ms)
    uv_timer_start(&w->warm, on_warm, warm_ms, 0);
  else
    on_warm(&w->warm);
  uv_timer_start(&w->end, on_end, end_ms, 0);
  uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
  if (g_opts.rate > 0) {
    w->slot_gap = 1e9 * g_opts.threads / g_opts.rate;
    w->slot_start = uv_hrtime();
    uv_poll_init(&w->loop, &w->tpoll, w->tfd);
    w->tpoll.data = w;
    uv_poll_start(&w->tpoll, UV_READABLE, on_slot);
    timer_arm(w, w->slot_start);
  }
  w->t_start = uv_hrtime();
  open_wave(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  atomic_fetch_sub(&g_running, 1);
  return NULL;
}

/* ---- setup and report ----------------------------------------------------- */

static int parse_url(const char *url, opts_t *o) {
  char hostport[256], *colon;
  const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
  if (!p)
    return fprintf(stderr, "pull-load: URL must start with http://\n"), -1;
  size_t n = strcspn(p, "/");
  if (n == 0 || n >= sizeof hostport)
    return fprintf(stderr, "pull-load: bad URL %s\n", url), -1;
  memcpy(hostport, p, n);
  hostport[n] = 0;
  snprintf(o->host, sizeof o->host, "%s", hostport);
  colon = strrchr(hostport, ':');
  int port = colon ? atoi(colon + 1) : 80;
  if (colon)
    *colon = 0;
  if (uv_ip4_addr(hostport, port, (struct sockaddr_in *)&o->addr) < 0)
    return fprintf(stderr, "pull-load: need a numeric IPv4 address: %s\n", url), -1;
  return 0;
}

/* Reads the "Field:   N kB" lines named in fields[0..n) from /proc/PID/status in one pass
 * into out[] (-1 for each one unavailable). */
static void proc_kbs(long pid, const char *const *fields, long *out, size_t n) {
  char path[64], line[256];
  for (size_t i = 0; i < n; i++)
    out[i] = -1;
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  while (fgets(line, sizeof line, f))
    for (size_t i = 0; i < n; i++) {
      size_t fl = strlen(fields[i]);
      if (strncmp(line, fields[i], fl) == 0 && line[fl] == ':')
        out[i] = atol(line + fl + 1);
    }
  fclose(f);
}

static long proc_kb(long pid, const char *field) {
  long v;
  proc_kbs(pid, &field, &v, 1);
  return v;
}

/* The process's user+system CPU time in microseconds (/proc/PID/stat); -1 when unavailable. */
static double proc_cpu_us(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long long ut = 0, st = 0;
  /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
  if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static void usage(void) {
  fprintf(stderr,
          "usage: pull-load [-c CONNS] [-t THREADS] [-d SECONDS] [-w SECONDS] [-T SECONDS]\n"
          "                 [-R RATE] [-C RATE] [-m MIXFILE] [-e MIXLINE]... [-n NAME] [-p PID] "
          "[-1] [-q] URL\n"
          "  mix line: WEIGHT METHOD STATUS PATH [Name:value]...   (STATUS 0 = any)\n"
          "  -1 sends every mix line once (no warm-up); -p samples that process's RSS and CPU\n"
          "  -R RATE: open loop at RATE requests/s in all, latency from the intended send time\n"
          "  -C RATE: open the connections RATE per second (waves every 10 ms), not all at once\n");
}

static int parse_args(int argc, char **argv, char ***lines, int *nlines, const char **file) {
  opts_t *o = &g_opts;
  int ch;
  *o = (opts_t){.conns = 50,
                .threads = 2,
                .duration = 5,
                .warmup = 1,
                .timeout = 10,
                .name = "run",
                .pid = -1};
  while ((ch = getopt(argc, argv, "c:t:d:w:T:R:C:m:e:n:p:1qh")) != -1) {
    switch (ch) {
    case 'c':
      o->conns = atoi(optarg);
      break;
    case 't':
      o->threads = atoi(optarg);
      break;
    case 'd':
      o->duration = atof(optarg);
      break;
    case 'w':
      o->warmup = atof(optarg);
      break;
    case 'T':
      o->timeout = atof(optarg);
      break;
    case 'R':
      o->rate = atof(optarg);
      break;
    case 'C':
      o->conn_rate = atof(optarg);
      break;
    case 'm':
      *file = optarg;
      break;
    case 'e':
      (*lines)[(*nlines)++] = optarg;
      break;
    case 'n':
      o->name = optarg;
      break;
    case 'p':
      o->pid = atol(optarg);
      break;
    case '1':
      o->once = 1;
      break;
    case 'q':
      o->quiet = 1;
      break;
    default:
      return usage(), -1;
    }
  }
  if (optind != argc - 1 || o->conns < 1 || o->conns > MAX_CONNS || o->threads < 1 ||
      o->duration <= 0 || o->warmup < 0 || o->timeout <= 0 || o->rate < 0 || o->rate > RATE_MAX ||
      (o->rate > 0 && o->once) || o->conn_rate < 0 || o->conn_rate > RATE_MAX)
    return usage(), -1;
  if (o->threads > o->conns)
    o->threads = o->conns;
  if (o->once)
    o->warmup = 0;
  o->url = argv[optind];
  return parse_url(o->url, o);
}

static void fmt_us(char *b, size_t n, uint64_t us) {
  if (us < 1000)
    snprintf(b, n, "%llu us", (unsigned long long)us);
  else if (us < 1000000)
    snprintf(b, n, "%.2f ms", us / 1e3);
  else
    snprintf(b, n, "%.2f s", us / 1e6);
}

typedef struct {
  pl_hist_t hist;
  uint64_t ok, all, errs[ERR__N], err_total, body, ok_body, connects, late;
  uint64_t bad_status[600];
  double secs, cpu_us; /* cpu_us: this process's own user+system time */
  double srv_cpu_us;   /* the -p process's user+system time during the run (-1: unknown) */
  long rss_peak, rss_hwm;
  /* The peaks of VmRSS's parts: anonymous memory (heap, stacks: what a leak or a cache
   * grows) and file pages (LMDB's map and other mapped files: the page cache, counted
   * against the process while they are mapped) */
  long anon_peak, file_peak;
} total_t;

static void report(const total_t *t) {
  const opts_t *o = &g_opts;
  uint64_t p50 = pl_hist_quantile(&t->hist, 0.5), p99 = pl_hist_quantile(&t->hist, 0.99);
  uint64_t p999 = pl_hist_quantile(&t->hist, 0.999);
  double rps = t->ok / t->secs, mbps = t->body / t->secs / 1e6;
  double mean = t->hist.total ? (double)t->hist.sum_us / t->hist.total : 0;
  if (!o->quiet) {
    char a[32], b[32], c[32], d[32];
    fmt_us(a, sizeof a, p50);
    fmt_us(b, sizeof b, p99);
    fmt_us(c, sizeof c, p999);
    fmt_us(d, sizeof d, t->hist.max_us);
    printf("%s: %s, %d connections, %d threads, %.2f s measured%s\n", o->name, o->url, o->conns,
           o->threads, t->secs, o->once ? " (each line once)" : "");
    printf("  requests %llu ok, %.1f/s; body %.1f MB, %.1f MB/s; %llu connects; "
           "%.1f us CPU/request (load generator)\n",
           (unsigned long long)t->ok, rps, t->body / 1e6, mbps, (unsigned long long)t->connects,
           t->cpu_us / (double)(t->all ? t->all : 1));
    if (o->rate > 0)
      printf("  open loop at %.0f requests/s (%.1f%% achieved); latency from the intended send "
             "time; %llu late (unanswered at the end, recorded as their wait so far)\n",
             o->rate, 100.0 * rps / o->rate, (unsigned long long)t->late);
    printf("  latency  p50 %s  p99 %s  p99.9 %s  max %s  mean %.0f us\n", a, b, c, d, mean);
    /* The tail's shape: a bimodal tail (a step between two quantiles) points
     * at scheduling or a timer, a smooth one at queueing. */
    static const double qs[] = {0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9999};
    printf("  quantiles");
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
      fmt_us(a, sizeof a, pl_hist_quantile(&t->hist, qs[k]));
      printf("  %g%% %s", qs[k] * 100, a);
    }
    printf("\n");
    printf("  errors   %llu (connect %llu, io %llu, status %llu, timeout %llu, parse %llu)\n",
           (unsigned long long)t->err_total, (unsigned long long)t->errs[0],
           (unsigned long long)t->errs[1], (unsigned long long)t->errs[2],
           (unsigned long long)t->errs[3], (unsigned long long)t->errs[4]);
    if (t->errs[ERR_STATUS]) {
      printf("  unexpected statuses:");
      for (int k = 0; k < 600; k++)
        if (t->bad_status[k])
          printf(" %d x%llu", k, (unsigned long long)t->bad_status[k]);
      printf("\n");
    }
    if (o->pid > 0)
      printf("  server   pid %ld: peak VmRSS %.1f MB during the run (RssAnon %.1f MB, RssFile "
             "%.1f MB), VmHWM %.1f MB, %.1f us CPU/request\n",
             o->pid, t->rss_peak / 1024.0, t->anon_peak / 1024.0, t->file_peak / 1024.0,
             t->rss_hwm / 1024.0,
             t->srv_cpu_us >= 0 ? t->srv_cpu_us / (double)(t->all ? t->all : 1) : -1);
  }
  printf("RESULT name=%s conns=%d threads=%d rate=%.0f late=%llu secs=%.3f requests=%llu "
         "rps=%.1f mbps=%.2f "
         "bytes=%llu ok_bytes=%llu p50_us=%llu p99_us=%llu p999_us=%llu max_us=%llu mean_us=%.0f "
         "errors=%llu",
         o->name, o->conns, o->threads, o->rate, (unsigned long long)t->late, t->secs,
         (unsigned long long)t->ok, rps, mbps, (unsigned long long)t->body,
         (unsigned long long)t->ok_body, (unsigned long long)p50, (unsigned long long)p99,
         (unsigned long long)p999, (unsigned long long)t->hist.max_us, mean,
         (unsigned long long)t->err_total);
  for (int k = 0; k < ERR__N; k++)
    printf(" err_%s=%llu", err_names[k], (unsigned long long)t->errs[k]);
  for (int k = 0; k < 600; k++)
    if (t->bad_status[k])
      printf(" status_%d=%llu", k, (unsigned long long)t->bad_status[k]);
  printf(" rss_peak_kb=%ld rss_hwm_kb=%ld rss_anon_peak_kb=%ld rss_file_peak_kb=%ld "
         "cpu_us_per_req=%.2f srv_cpu_us_per_req=%.2f\n",
         t->rss_peak, t->rss_hwm, t->anon_peak, t->file_peak,
         t->cpu_us / (double)(t->all ? t->all : 1),
         t->srv_cpu_us >= 0 ? t->srv_cpu_us / (double)(t->all ? t->all : 1) : -1);
  fflush(stdout);
}

/* Runs the workers to completion while sampling the server's RSS; fills t. */
static int run(worker_t *ws, total_t *t) {
  const opts_t *o = &g_opts;
  double cpu0 = o->pid > 0 ? proc_cpu_us(o->pid) : -1;
  atomic_store(&g_running, o->threads);
  for (int i = 0; i < o->threads; i++)
    if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]))
      return fprintf(stderr, "pull-load: pthread_create failed\n"), -1;
  t->rss_peak = t->anon_peak = t->file_peak = -1;
  while (atomic_load(&g_running) > 0) {
    static const char *const fields[] = {"VmRSS", "RssAnon", "RssFile"};
    long v[3] = {-1, -1, -1};
    if (o->pid > 0)
      proc_kbs(o->pid, fields, v, 3);
    if (v[0] > t->rss_peak)
      t->rss_peak = v[0];
    if (v[1] > t->anon_peak)
      t->anon_peak = v[1];
    if (v[2] > t->file_peak)
      t->file_peak = v[2];
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
  }
  t->rss_hwm = o->pid > 0 ? proc_kb(o->pid, "VmHWM") : -1;
  double cpu1 = o->pid > 0 ? proc_cpu_us(o->pid) : -1;
  t->srv_cpu_us = cpu0 >= 0 && cpu1 >= cpu0 ? cpu1 - cpu0 : -1;
  pl_hist_init(&t->hist);
  for (int i = 0; i < o->threads; i++) {
    worker_t *w = &ws[i];
    pthread_join(w->thread, NULL);
    pl_hist_merge(&t->hist, &w->hist);
    t->ok += w->ok, t->all += w->all, t->body += w->body_bytes, t->connects += w->connects;
    t->ok_body += w->ok_bytes;
    t->late += w->late;
    for (int k = 0; k < 600; k++)
      t->bad_status[k] += w->bad_status[k];
    for (int k = 0; k < ERR__N; k++)
      t->errs[k] += w->errs[k], t->err_total += w->errs[k];
    /* The window: the threads' mean for timed runs; for -1, until the last
     * line was answered. */
    double secs = (w->t_stop > w->t_measure ? w->t_stop - w->t_measure : 0) / 1e9;
    if (o->once)
      t->secs = secs > t->secs ? secs : t->secs;
    else
      t->secs += secs / o->threads;
    uv_loop_close(&w->loop);
  }
  if (t->secs <= 0)
    t->secs = 1e-9;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  t->cpu_us = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 +
              ru.ru_stime.tv_usec;
  return 0;
}

int main(int argc, char **argv) {
  char **lines = calloc((size_t)argc, sizeof *lines);
  const char *file = NULL;
  int nlines = 0, rc = 1;
  worker_t *ws = NULL;
  total_t *t = calloc(1, sizeof *t);
  if (!lines || !t || parse_args(argc, argv, &lines, &nlines, &file) < 0)
    goto out;
  if (file && mix_load(&g_mix, file, g_opts.host) < 0)
    goto out;
  for (int i = 0; i < nlines; i++)
    if (mix_add(&g_mix, lines[i], g_opts.host) < 0)
      goto out;
  if (mix_finish(&g_mix) < 0)
    goto out;
  signal(SIGPIPE, SIG_IGN);
  g_settings.on_headers_complete = on_headers_complete;
  g_settings.on_body = on_body;
  g_settings.on_message_complete = on_message_complete;
  if (!(ws = calloc((size_t)g_opts.threads, sizeof *ws)))
    goto out;
  for (int i = 0; i < g_opts.threads; i++)
    ws[i].tfd = -1;
  for (int i = 0, at = 0; i < g_opts.threads; i++) {
    worker_t *w = &ws[i];
    w->nconns = g_opts.conns / g_opts.threads + (i < g_opts.conns % g_opts.threads);
    if (!(w->conns = calloc((size_t)w->nconns, sizeof *w->conns)) ||
        !(w->rbuf = malloc(READ_BUF)) || uv_loop_init(&w->loop))
      goto out;
    if (g_opts.rate > 0 &&
        (w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
      fprintf(stderr, "pull-load: timerfd_create: %s\n", strerror(errno));
      goto out;
    }
    pl_hist_init(&w->hist);
    for (int j = 0; j < w->nconns; j++, at++) {
      w->conns[j].w = w;
      w->conns[j].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(at + 1);
    }
  }
  if (run(ws, t) < 0)
    goto out;
  report(t);
  rc = 0;
out:
  if (ws)
    for (int i = 0; i < g_opts.threads; i++) {
      free(ws[i].conns);
      free(ws[i].rbuf);
      if (ws[i].tfd >= 0)
        close(ws[i].tfd);
    }
  free(ws);
  free(t);
  free(lines);
  for (size_t i = 0; i < g_mix.n; i++)
    free(g_mix.v[i].text);
  free(g_mix.v);
  free(g_mix.cum);
  return rc;
}
