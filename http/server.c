/*
 * http/server.c — IO loops, connections, parsing, dispatch, workers.
 *
 * DESIGN
 *
 * Threads. Each IO thread owns one uv loop, one SO_REUSEPORT listener and
 * every connection it accepted; nothing else touches them. Workers (core/pool)
 * and parkers only ever hold an exchange (request + response + arena), never
 * a connection. An exchange goes back to its loop through the loop's
 * done-queue (done_mu + list + uv_async_send) — the only crossing.
 *
 * Connection lifetime. A connection owns a slot in its loop's slot table; the
 * slot's generation is bumped when the connection closes. A detached exchange
 * remembers (slot, gen); when it comes back, the loop looks the slot up and
 * answers only if the generation still matches, otherwise it frees the
 * exchange. So a connection can be freed at any time (client gone, timeout,
 * forced shutdown) without waiting for its handler, and nothing is used
 * after free. Connection memory itself is freed in the uv close callback.
 *
 * File bodies. A file (a CAS blob) goes out with sendfile(2) from the loop
 * thread on the non-blocking socket, after the head written by uv_write has
 * left: no user-space copy and no thread hop (blob files are expected in the
 * page cache). When the socket is full, writability is watched with a
 * uv_poll_t on a dup() of the socket — the uv_tcp_t owns the descriptor's own
 * epoll entry, and an epoll entry belongs to a (descriptor, file) pair, so
 * the duplicate gets one of its own. The duplicate is closed only in the
 * poll's close callback, after libuv removed it from epoll. Each wake-up
 * sends at most FILE_BURST bytes so one blob cannot starve the loop's other
 * connections. A connection that closes ends its file send at once: nothing
 * is in flight outside the loop.
 *
 * One request at a time. llhttp is paused at each on_message_complete; the
 * request is dispatched; the rest of the input (a pipelined request) is kept
 * in conn->in and reading stops until the response is queued. Responses
 * therefore leave in request order, and a worker's slowness never lets a
 * client pile up input. Reading also stops while the socket's write queue is
 * above HIGH_WATER, until it drains below LOW_WATER (back-pressure).
 *
 * Timeouts. One sweep timer per loop walks the connection list a few times
 * per timeout period and closes connections past their deadline: the header
 * deadline runs from the first byte of a request head, the idle deadline
 * between keep-alive requests, and while a body or response trickles.
 *
 * Shutdown. The main thread sets stop_req and wakes each loop: the loop
 * closes its listener and idle connections and answers in-flight requests
 * with Connection: close; a loop whose last connection is closed closes its
 * handles and ends. Past shutdown_timeout_ms main asks for a forced close.
 *
 * Deferral. An inline handler that returns WV_DEFER is detached like a
 * worker route and queued to the pool; the worker runs req->defer.
 *
 * Streams. A worker that calls wv_req_stream_begin() keeps its exchange and
 * shares a stream_t with the loop. The worker copies what it writes into a
 * chunk of its own (st->fill, up to STREAM_CHUNK bytes) and appends the chunk
 * under st->mu when it is full, or at once when the loop has nothing queued
 * (so a slow upstream is not delayed); then it pushes the exchange through
 * the done-queue as a notification (in_done keeps it linked once) and the
 * loop takes the chunks and writes them. Written chunks go back to the
 * stream as spares, so a long stream allocates a few chunks, not one per
 * write. The chunk that completes a body of announced length is held back
 * until the handler returns: it goes out only if the handler succeeds, so a
 * body that fails its final check (a digest) reaches the client short and
 * cut, never whole. The worker blocks while st->queued (appended, not yet
 * written to the socket) is above STREAM_HIGH; write callbacks lower it and
 * signal a waiting writer. Ownership of the exchange
 * moves to the loop only with the final push (ex->final, set under done_mu
 * when the handler returned), so the loop never frees an exchange a worker
 * still writes to; the loop's processing list uses its own link (pnext)
 * because a worker may re-link the exchange while the loop walks the list. A
 * connection that closes marks its stream failed and wakes the writer. Chunk
 * writes hold a reference on the stream (st->refs) since they may complete
 * after the exchange was recycled. Lock order: done_mu and st->mu are leaves,
 * never held together.
 */
#include "http/server.h"
#include "core/err.h"
#include "core/log.h"
#include "core/pool.h"
#include "http/resp.h"

#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define READ_BUF_SIZE (64 * 1024)
#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)
#define SMALL_BODY (16 * 1024)       /* copied behind the head: one buffer, one write */
#define FILE_BURST (4 * 1024 * 1024) /* sendfile bytes per wake-up */
#define DISCARD_LIMIT (64 * 1024)    /* body we read and drop before a 404/405 */
#define BIG_BUF_KEEP (64 * 1024)     /* larger body buffers are not kept for reuse */
#define LISTEN_BACKLOG 1024
#define STREAM_HIGH (1024 * 1024) /* queued stream bytes before the writer blocks */
#define STREAM_CHUNK (256 * 1024) /* payload bytes of one stream chunk */
#define STREAM_SPARES 4           /* written chunks kept for reuse per stream */
#define CHUNK_ROOM 18             /* room before a payload for "<hex>\r\n" */
#define ARENA_MIN_CAP ((size_t)64 << 20)

typedef struct loop loop_t;
typedef struct conn conn_t;
typedef struct exchange exchange_t;
typedef struct stream stream_t;
typedef struct schunk schunk_t;

/*
 * One piece of a streamed body. The payload starts at data + CHUNK_ROOM; with
 * chunked framing the "<hex>\r\n" prefix is put right before it and "\r\n"
 * after it when the chunk is appended. What is written is data[off, off+wlen).
 */
struct schunk {
  uv_write_t req;
  schunk_t *next;
  conn_t *conn;
  stream_t *st;
  size_t len;       /* payload bytes */
  size_t off, wlen; /* the framed bytes, set when appended */
  char data[];      /* CHUNK_ROOM + STREAM_CHUNK + 2 */
};

struct stream {
  pthread_mutex_t mu; /* leaf lock: guards the fields up to head_sent, but refs */
  pthread_cond_t cv;
  atomic_int refs;       /* the exchange + each chunk being written */
  schunk_t *head, *tail; /* appended by the worker, taken by the loop */
  schunk_t *spare;       /* written chunks kept for reuse */
  int nspare;
  size_t queued; /* appended and not yet written to the socket */
  bool waiting;  /* the worker waits for queued to drop */
  bool chunked;
  bool failed; /* client gone or write failed */
  bool ended;  /* the handler returned */
  int end_rc;
  bool head_sent; /* loop only */
  /* The worker's own, never touched by the loop: */
  schunk_t *fill;    /* the chunk being filled */
  bool has_length;   /* a Content-Length was announced: length */
  uint64_t length;   /* announced body length */
  uint64_t accepted; /* bytes taken by wv_req_stream_write */
};

struct exchange {
  wv_req_t req; /* first: wv_req_complete() converts req back to its exchange */
  wv_resp_t resp;
  wv_pool_job_t job;
  exchange_t *next;  /* done-queue link, under loop->done_mu */
  exchange_t *pnext; /* loop-private: done_cb's processing list */
  stream_t *stream;  /* set by wv_req_stream_begin */
  bool in_done;      /* linked in the done-queue (under done_mu) */
  bool final;        /* a stream's last push: the loop owns it (under done_mu) */
  bool pfinal;       /* loop-private copy of final taken when it was unlinked */
  loop_t *loop;
  uint32_t slot, gen; /* the connection it answers, while detached */
  wv_buf_t url, head, hoffs, body;
  uint64_t discarded;
  uint64_t body_limit;
  int err_status; /* parse-time refusal: 400, 413, 414, 431 */
  int nhdr;
  int hstate; /* 0 between headers, 1 in a name, 2 in a value */
  bool discard_body;
  bool expect_continue;
  wv_match_t match;
};

typedef struct fsend fsend_t;

struct conn {
  uv_tcp_t tcp;
  llhttp_t parser;
  loop_t *loop;
  exchange_t *ex; /* the request being parsed; NULL while detached */
  conn_t *prev, *next;
  char *in; /* unparsed input kept while a request is handled */
  size_t in_len;
  uint64_t deadline; /* loop ms; 0 = none */
  uint32_t slot;
  int writes; /* uv_write requests in flight */
  fsend_t *fs;
  exchange_t *sx; /* the exchange streaming to this connection, head sent */
  bool busy;      /* a handler owns the current request */
  bool closing;   /* uv_close called */
  bool linger;    /* close once writes drain (no keep-alive, EOF, error) */
  bool reading;
  bool throttled; /* write queue above HIGH_WATER */
  bool in_message;
  char ip[46]; /* the client's address (wv_req_t.client_ip), "" when unknown */
};

/*
 * Sends a file body with sendfile(2) (see DESIGN). Owned by its connection
 * until it ends; then, if the poll handle was started, by the poll's close
 * callback, which frees it.
 */
struct fsend {
  uv_poll_t poll; /* on sock, initialised at the first EAGAIN */
  conn_t *conn;
  exchange_t *ex;
  int fd;   /* the file */
  int sock; /* dup of the socket for the poll, or -1 */
  uint64_t off, remain;
  bool started; /* the head has left; sendfile may run */
};

typedef struct {
  uv_write_t req;
  conn_t *conn;
  exchange_t *hold; /* freed after the write (large bodies point into it) */
  uv_buf_t bufs[2];
  unsigned nbufs;
  char data[];
} wr_t;

typedef struct {
  conn_t *conn;
  uint32_t gen;
} slot_t;

struct loop {
  wv_server_t *srv;
  int idx;
  uv_loop_t uv;
  uv_tcp_t listener;
  uv_async_t done_async, ctl_async;
  uv_timer_t sweep;
  pthread_t thread;
  pthread_mutex_t done_mu; /* leaf lock: guards done_*, closed */
  exchange_t *done_head, *done_tail;
  bool closed;         /* asyncs closed: pushers free their exchange themselves */
  atomic_int stop_req; /* 0 run, 1 drain, 2 force */
  conn_t *conns;
  int nconns;
  slot_t *slots;
  uint32_t *free_slots;
  int nfree;
  char *read_buf;
  wv_buf_t scratch;
  char date[64];
  time_t date_sec;
  bool draining, listener_closed, stopping, uv_inited;
};

struct wv_server {
  wv_server_opts_t o;
  char *host;
  const wv_router_t *router;
  loop_t *loops;
  int nloops;
  wv_pool_t *pool;
  int nworkers;
  int port;
  bool started, stopped;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int running;
};

static llhttp_settings_t parser_settings;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void conn_close(conn_t *c);
static void conn_resume(conn_t *c);
static void conn_after_response(conn_t *c);
static void loop_check_done(loop_t *l);
static void fs_start(fsend_t *fs);
static void stream_end(exchange_t *ex, int rc);

/* ---------- options ---------- */

void wv_server_opts_init(wv_server_opts_t *o, const wv_config_t *cfg) {
  memset(o, 0, sizeof *o);
  o->host = cfg ? cfg->server_host : "127.0.0.1";
  o->port = cfg ? cfg->server_port : 9090;
  o->io_threads = cfg ? cfg->io_threads : 0;
  o->workers = cfg ? cfg->workers : 0;
  o->idle_timeout_ms = cfg ? cfg->idle_timeout_ms : 910000;
  o->header_timeout_ms = cfg ? cfg->header_timeout_ms : 30000;
  o->shutdown_timeout_ms = cfg ? cfg->shutdown_timeout_ms : 30000;
  o->max_header_bytes = cfg ? (size_t)cfg->max_header_bytes : 16384;
  o->max_headers = cfg ? cfg->max_headers : 100;
  o->max_url_length = cfg ? (size_t)cfg->max_url_length : 8192;
  o->max_body_size = cfg ? (size_t)cfg->max_body_size : (size_t)10 << 20;
  o->max_connections = cfg ? cfg->max_connections : 10000;
  o->max_queued_jobs = cfg ? (size_t)cfg->worker_queue : 0;
}

/* ---------- streams ---------- */

static void chunks_free(schunk_t *c) {
  while (c) {
    schunk_t *next = c->next;
    free(c);
    c = next;
  }
}

static void stream_unref(stream_t *st) {
  if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
    return;
  chunks_free(st->head);
  chunks_free(st->spare);
  free(st->fill);
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  free(st);
}

/* The client is gone: wake and stop the writer. Any thread. */
static void stream_fail(stream_t *st) {
  pthread_mutex_lock(&st->mu);
  st->failed = true;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
}

/* ---------- exchanges ---------- */

/*
 * A handler may copy parts of the body into the arena (a JSON string holding
 * a data: layer, say), so a raised server.max-body-size raises the arena cap
 * with it; the default body limit keeps the default cap.
 */
static size_t arena_cap(const wv_server_opts_t *o) {
  size_t cap = o->max_body_size * 3;
  return cap / 3 == o->max_body_size && cap > ARENA_MIN_CAP ? cap : ARENA_MIN_CAP;
}

static exchange_t *ex_new(loop_t *l) {
  const wv_server_opts_t *o = &l->srv->o;
  exchange_t *ex = calloc(1, sizeof *ex);
  if (!ex)
    return NULL;
  ex->req.arena = wv_arena_new(arena_cap(o));
  if (!ex->req.arena) {
    free(ex);
    return NULL;
  }
  ex->loop = l;
  wv_buf_init(&ex->url, o->max_url_length);
  wv_buf_init(&ex->head, o->max_header_bytes);
  wv_buf_init(&ex->hoffs, (size_t)o->max_headers * 2 * sizeof(uint32_t));
  wv_buf_init(&ex->body, 0);
  ex->resp.fd = -1;
  return ex;
}

/* Forgets the previous request but keeps the arena's first block and buffers. */
static void ex_reset(exchange_t *ex) {
  if (ex->resp.fd >= 0)
    close(ex->resp.fd);
  stream_unref(ex->stream);
  ex->stream = NULL;
  ex->in_done = ex->final = false;
  wv_arena_reset(ex->req.arena);
  wv_arena_t *arena = ex->req.arena;
  memset(&ex->req, 0, sizeof ex->req);
  memset(&ex->resp, 0, sizeof ex->resp);
  ex->req.arena = arena;
  ex->resp.fd = -1;
  wv_buf_reset(&ex->url);
  wv_buf_reset(&ex->head);
  wv_buf_reset(&ex->hoffs);
  if (ex->body.cap > BIG_BUF_KEEP)
    wv_buf_free(&ex->body);
  wv_buf_reset(&ex->body);
  ex->discarded = 0;
  ex->err_status = 0;
  ex->nhdr = 0;
  ex->hstate = 0;
  ex->discard_body = false;
  ex->expect_continue = false;
  ex->next = NULL;
}

/* Any thread that owns ex. */
static void ex_free(exchange_t *ex) {
  if (!ex)
    return;
  if (ex->resp.fd >= 0)
    close(ex->resp.fd);
  stream_unref(ex->stream);
  wv_arena_free(ex->req.arena);
  wv_buf_free(&ex->url);
  wv_buf_free(&ex->head);
  wv_buf_free(&ex->hoffs);
  wv_buf_free(&ex->body);
  free(ex);
}

/* Gives ex back to c as its parse exchange, or frees it if c has one. */
static void ex_recycle(conn_t *c, exchange_t *ex) {
  if (c->ex || c->closing) {
    ex_free(ex);
    return;
  }
  ex_reset(ex);
  c->ex = ex;
}

/* Makes sure a handler's outcome is a response. */
static void ex_settle(exchange_t *ex, int rc) {
  if (ex->resp.status)
    return;
  if (rc == 0) {
    wv_error("%s %s: handler returned no response", ex->req.method_name, ex->req.path);
    rc = WV_EINTERNAL;
  }
  if (wv_resp_error(&ex->req, &ex->resp, rc, NULL))
    wv_resp_static(&ex->resp, 500, NULL, "", 0);
}

/* ---------- done-queue (any thread → loop) ---------- */

static void done_push(exchange_t *ex) {
  loop_t *l = ex->loop;
  pthread_mutex_lock(&l->done_mu);
  if (l->closed) {
    pthread_mutex_unlock(&l->done_mu);
    ex_free(ex);
    return;
  }
  ex->next = NULL;
  if (l->done_tail)
    l->done_tail->next = ex;
  else
    l->done_head = ex;
  l->done_tail = ex;
  /* Sent under the lock so the loop cannot close the handle in between. */
  uv_async_send(&l->done_async);
  pthread_mutex_unlock(&l->done_mu);
}

void wv_req_complete(wv_req_t *req) {
  exchange_t *ex = (exchange_t *)req;
  ex_settle(ex, WV_EINTERNAL);
  done_push(ex);
}

static void job_run(wv_pool_job_t *job);

int wv_req_resume(wv_req_t *req, wv_req_handler_cb handler) {
  exchange_t *ex = (exchange_t *)req;
  req->defer = handler;
  ex->job.run = job_run;
  return wv_pool_submit(ex->loop->srv->pool, &ex->job);
}

/*
 * Notifies the loop that a stream has work (head, chunks, or its end when
 * final). A non-final push never hands the exchange over.
 */
static void stream_push(exchange_t *ex, bool final) {
  loop_t *l = ex->loop;
  pthread_mutex_lock(&l->done_mu);
  if (l->closed) {
    pthread_mutex_unlock(&l->done_mu);
    stream_fail(ex->stream);
    if (final)
      ex_free(ex);
    return;
  }
  if (final)
    ex->final = true;
  if (!ex->in_done) {
    ex->in_done = true;
    ex->next = NULL;
    if (l->done_tail)
      l->done_tail->next = ex;
    else
      l->done_head = ex;
    l->done_tail = ex;
    uv_async_send(&l->done_async);
  }
  pthread_mutex_unlock(&l->done_mu);
}

static void job_run(wv_pool_job_t *job) {
  exchange_t *ex = (exchange_t *)((char *)job - offsetof(exchange_t, job));
  wv_req_handler_cb h = ex->req.defer ? ex->req.defer : ex->req.route->handler;
  ex->req.on_worker = true;
  int rc = h(&ex->req, &ex->resp);
  /* Parked: the exchange may already be completed and recycled; hands off.
   * (A streaming handler never parks.) */
  if (rc == WV_PARKED)
    return;
  if (ex->stream) {
    stream_end(ex, rc);
    return;
  }
  ex_settle(ex, rc);
  done_push(ex);
}

int wv_req_stream_begin(wv_req_t *req) {
  exchange_t *ex = (exchange_t *)req;
  if (ex->stream || !ex->resp.status || !req->on_worker)
    return WV_EINVAL;
  stream_t *st = calloc(1, sizeof *st);
  if (!st)
    return WV_ENOMEM;
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  atomic_init(&st->refs, 1);
  st->chunked = !ex->resp.has_length;
  st->has_length = ex->resp.has_length;
  st->length = ex->resp.length;
  ex->stream = st;
  stream_push(ex, false);
  return 0;
}

/* Writes "<hex>\r\n" so that it ends right before end; returns its length. */
static size_t chunk_prefix(size_t n, char *end) {
  static const char hex[] = "0123456789abcdef";
  char *p = end;
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = hex[n & 15];
    n >>= 4;
  } while (n);
  return (size_t)(end - p);
}

/* A chunk to fill: a spare, else a new one (NULL when out of memory). Worker. */
static schunk_t *chunk_get(stream_t *st) {
  pthread_mutex_lock(&st->mu);
  schunk_t *c = st->spare;
  if (c) {
    st->spare = c->next;
    st->nspare--;
  }
  pthread_mutex_unlock(&st->mu);
  if (!c && !(c = malloc(sizeof *c + CHUNK_ROOM + STREAM_CHUNK + 2)))
    return NULL;
  c->next = NULL;
  c->st = st;
  c->len = 0;
  return c;
}

/* Adds the framing; the chunk is then ready to be written. */
static void chunk_frame(const stream_t *st, schunk_t *c) {
  c->off = CHUNK_ROOM;
  c->wlen = c->len;
  if (st->chunked) {
    size_t k = chunk_prefix(c->len, c->data + CHUNK_ROOM);
    c->off -= k;
    c->data[CHUNK_ROOM + c->len] = '\r';
    c->data[CHUNK_ROOM + c->len + 1] = '\n';
    c->wlen += k + 2;
  }
}

/* Appends c; st->mu is held. Returns true when the loop must be told. */
static bool chunk_append_locked(stream_t *st, schunk_t *c) {
  bool notify = st->head == NULL;
  if (st->tail)
    st->tail->next = c;
  else
    st->head = c;
  st->tail = c;
  st->queued += c->wlen;
  return notify;
}

static struct timespec deadline_in(int64_t ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += (time_t)(ms / 1000);
  dl.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  return dl;
}

/*
 * Hands st->fill to the loop. With only_if_idle, only when nothing is queued
 * (else the worker keeps filling it); otherwise blocks while STREAM_HIGH
 * bytes are queued. Returns 0, WV_ECLOSED or WV_ETIMEOUT (the client read
 * nothing for server.idle-timeout).
 */
static int stream_publish(exchange_t *ex, stream_t *st, bool only_if_idle) {
  int rc = 0;
  bool notify = false;
  pthread_mutex_lock(&st->mu);
  if (only_if_idle && st->queued > 0 && !st->failed) {
    pthread_mutex_unlock(&st->mu);
    return 0;
  }
  if (!st->failed && st->queued >= STREAM_HIGH) {
    struct timespec dl = deadline_in(ex->loop->srv->o.idle_timeout_ms);
    st->waiting = true;
    while (!st->failed && st->queued >= STREAM_HIGH && rc == 0)
      if (pthread_cond_timedwait(&st->cv, &st->mu, &dl) == ETIMEDOUT)
        rc = WV_ETIMEOUT;
    st->waiting = false;
  }
  if (st->failed)
    rc = WV_ECLOSED;
  if (rc == 0) {
    chunk_frame(st, st->fill);
    notify = chunk_append_locked(st, st->fill);
    st->fill = NULL;
  }
  pthread_mutex_unlock(&st->mu);
  if (notify)
    stream_push(ex, false);
  return rc;
}

/* The fill holds the body's last byte: it waits for the handler's verdict. */
static bool holds_last(const stream_t *st) { return st->has_length && st->accepted >= st->length; }

int wv_req_stream_write(wv_req_t *req, const void *p, size_t n) {
  exchange_t *ex = (exchange_t *)req;
  stream_t *st = ex->stream;
  if (!st)
    return WV_EINVAL;
  if (n == 0 || req->method == WV_M_HEAD)
    return 0;
  const char *src = p;
  while (n > 0) {
    if (!st->fill && !(st->fill = chunk_get(st)))
      return WV_ENOMEM;
    schunk_t *f = st->fill;
    size_t k = STREAM_CHUNK - f->len < n ? STREAM_CHUNK - f->len : n;
    memcpy(f->data + CHUNK_ROOM + f->len, src, k);
    f->len += k;
    src += k;
    n -= k;
    st->accepted += k;
    if (f->len == STREAM_CHUNK && !holds_last(st)) {
      int rc = stream_publish(ex, st, false);
      if (rc)
        return rc;
    }
  }
  /* A partial chunk goes out at once when the socket has nothing to send. */
  if (st->fill && !holds_last(st))
    return stream_publish(ex, st, true);
  pthread_mutex_lock(&st->mu);
  int rc = st->failed ? WV_ECLOSED : 0;
  pthread_mutex_unlock(&st->mu);
  return rc;
}

/* The handler returned rc: the held chunk goes out on success, then the end. */
static void stream_end(exchange_t *ex, int rc) {
  stream_t *st = ex->stream;
  schunk_t *f = st->fill;
  st->fill = NULL;
  if (f && (rc != 0 || f->len == 0)) {
    free(f);
    f = NULL;
  }
  pthread_mutex_lock(&st->mu);
  if (f) {
    chunk_frame(st, f);
    chunk_append_locked(st, f);
  }
  st->ended = true;
  st->end_rc = rc;
  pthread_mutex_unlock(&st->mu);
  stream_push(ex, true);
}

static void job_cancel(wv_pool_job_t *job) {
  ex_free((exchange_t *)((char *)job - offsetof(exchange_t, job)));
}

/* ---------- writing ---------- */

static const char *loop_date(loop_t *l) {
  time_t now = time(NULL);
  if (now != l->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(l->date, sizeof l->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    l->date_sec = now;
  }
  return l->date;
}

static void write_cb(uv_write_t *req, int status) {
  wr_t *w = (wr_t *)req;
  conn_t *c = w->conn;
  ex_free(w->hold);
  free(w);
  c->writes--;
  if (c->closing)
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  c->deadline = uv_now(&c->loop->uv) + (uint64_t)c->loop->srv->o.idle_timeout_ms;
  size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
  if (c->throttled && queued < LOW_WATER) {
    c->throttled = false;
    conn_resume(c);
  }
  if (c->fs && !c->fs->started && queued == 0) {
    fs_start(c->fs); /* the head is out: the file follows */
    return;
  }
  conn_after_response(c);
}

/* Queues w; on failure closes c. */
static int conn_write(conn_t *c, wr_t *w) {
  w->conn = c;
  c->writes++;
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->nbufs, write_cb);
  if (rc < 0) {
    c->writes--;
    ex_free(w->hold);
    free(w);
    conn_close(c);
    return rc;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HIGH_WATER)
    c->throttled = true;
  return 0;
}

static void fs_poll_closed(uv_handle_t *h) {
  fsend_t *fs = h->data;
  close(fs->sock);
  free(fs);
}

/* Releases the file send's own resources; the connection is not touched. */
static void fs_release(fsend_t *fs) {
  close(fs->fd);
  ex_free(fs->ex);
  if (fs->sock >= 0)
    uv_close((uv_handle_t *)&fs->poll, fs_poll_closed);
  else
    free(fs);
}

/* The body is out (ok) or cannot be (the connection is closed). */
static void fs_finish(fsend_t *fs, bool ok) {
  conn_t *c = fs->conn;
  exchange_t *ex = fs->ex;
  fs->ex = NULL;
  c->fs = NULL;
  fs_release(fs);
  ex_recycle(c, ex);
  if (!ok) {
    conn_close(c);
    return;
  }
  conn_resume(c);
  conn_after_response(c);
}

static void fs_poll_cb(uv_poll_t *h, int status, int events);

/* Waits for the socket to take more: a poll on a duplicate (see DESIGN). */
static int fs_wait(fsend_t *fs) {
  if (fs->sock < 0) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&fs->conn->tcp, &fd))
      return -1;
    int sock = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (sock < 0)
      return -1;
    if (uv_poll_init(&fs->conn->loop->uv, &fs->poll, sock)) {
      close(sock);
      return -1;
    }
    fs->sock = sock;
    fs->poll.data = fs;
  }
  /* Level-triggered and kept armed: restarting would cost an epoll DEL+ADD. */
  if (uv_is_active((uv_handle_t *)&fs->poll))
    return 0;
  return uv_poll_start(&fs->poll, UV_WRITABLE, fs_poll_cb) ? -1 : 0;
}

/* Sends what the socket takes, up to FILE_BURST; then waits or finishes. */
static void fs_pump(fsend_t *fs) {
  conn_t *c = fs->conn;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd)) {
    fs_finish(fs, false);
    return;
  }
  uint64_t burst = 0;
  while (fs->remain > 0 && burst < FILE_BURST) {
    size_t want = fs->remain < FILE_BURST ? (size_t)fs->remain : FILE_BURST;
    off_t off = (off_t)fs->off;
    ssize_t n = sendfile(fd, fs->fd, &off, want);
    if (n > 0) {
      fs->off += (uint64_t)n;
      fs->remain -= (uint64_t)n;
      burst += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n == 0)
      wv_warn("file body ended %llu bytes early", (unsigned long long)fs->remain);
    fs_finish(fs, false); /* the client left (EPIPE, ECONNRESET) or the file shrank */
    return;
  }
  if (burst)
    c->deadline = uv_now(&c->loop->uv) + (uint64_t)c->loop->srv->o.idle_timeout_ms;
  if (fs->remain == 0) {
    fs_finish(fs, true);
    return;
  }
  /* Full socket or a spent burst: continue when it is writable (at once for
   * the latter, after the loop's other connections had their turn). */
  if (fs_wait(fs))
    fs_finish(fs, false);
}

static void fs_poll_cb(uv_poll_t *h, int status, int events) {
  fsend_t *fs = h->data;
  (void)events;
  if (status < 0) {
    fs_finish(fs, false);
    return;
  }
  fs_pump(fs);
}

static void fs_start(fsend_t *fs) {
  fs->started = true;
  fs_pump(fs);
}

/* A file send for ex's file body; takes resp->fd. NULL when out of memory. */
static fsend_t *fs_new(conn_t *c, exchange_t *ex) {
  fsend_t *fs = malloc(sizeof *fs);
  if (!fs)
    return NULL;
  fs->conn = c;
  fs->ex = ex;
  fs->fd = ex->resp.fd;
  fs->sock = -1;
  fs->started = false;
  fs->off = ex->resp.file_off;
  fs->remain = ex->resp.file_len;
  ex->resp.fd = -1;
  return fs;
}

/* Drops a file send that never started, with its exchange. */
static void fs_drop(fsend_t *fs) {
  if (!fs)
    return;
  close(fs->fd);
  ex_free(fs->ex);
  free(fs);
}

/*
 * Queues what uv_try_write left of bufs (sent bytes went out) with uv_write;
 * hold is freed after that write. Returns 0, or < 0 with c closed.
 */
static int conn_write_rest(conn_t *c, const uv_buf_t *bufs, unsigned nbufs, size_t sent,
                           exchange_t *hold) {
  size_t head_rest = sent < bufs[0].len ? bufs[0].len - sent : 0;
  wr_t *w = malloc(sizeof *w + head_rest);
  if (!w) {
    ex_free(hold);
    conn_close(c);
    return WV_ENOMEM;
  }
  w->nbufs = 0;
  w->hold = hold;
  if (head_rest) {
    memcpy(w->data, bufs[0].base + (bufs[0].len - head_rest), head_rest);
    w->bufs[w->nbufs++] = uv_buf_init(w->data, (unsigned)head_rest);
  }
  if (nbufs > 1) {
    size_t skip = sent > bufs[0].len ? sent - bufs[0].len : 0;
    w->bufs[w->nbufs++] = uv_buf_init(bufs[1].base + skip, (unsigned)(bufs[1].len - skip));
  }
  return conn_write(c, w);
}

/*
 * Serialises ex's response and sends it on c. Takes ex: it is recycled as
 * c's parse exchange, or kept alive by the write / file send that needs it.
 *
 * The head (with a small body copied behind it) and a large body go out with
 * uv_try_write first. When the socket takes it all — the usual case for a
 * hot manifest — there is no write request, no malloc, and no write-queue
 * round trip through the next loop iteration (which would also re-arm the
 * socket's epoll entry); only what is left is queued with uv_write.
 */
static void conn_respond(conn_t *c, exchange_t *ex) {
  loop_t *l = c->loop;
  wv_resp_t *resp = &ex->resp;
  wv_req_t *req = &ex->req;
  if (c->ex == ex) /* inline: the parse exchange answers; it comes back below */
    c->ex = NULL;
  bool head_only = req->method == WV_M_HEAD || resp->status == 204 || resp->status == 304;
  bool keep = req->keep_alive && !resp->close && !l->draining && !ex->err_status;
  bool copy_body = !head_only && resp->fd < 0 && resp->body_len <= SMALL_BODY;
  bool large_body = !head_only && resp->fd < 0 && !copy_body;
  wv_buf_reset(&l->scratch);
  if (wv_resp_write_head(resp, req->registry, keep, false, loop_date(l), &l->scratch) ||
      (copy_body && resp->body_len && wv_buf_append(&l->scratch, resp->body, resp->body_len))) {
    ex_free(ex);
    conn_close(c);
    return;
  }
  if (!keep)
    c->linger = true;
  fsend_t *fs = NULL;
  if (!head_only && resp->fd >= 0 && resp->file_len > 0 && !(fs = fs_new(c, ex))) {
    ex_free(ex);
    conn_close(c);
    return;
  }
  uv_buf_t bufs[2] = {uv_buf_init(l->scratch.data, (unsigned)l->scratch.len)};
  unsigned nbufs = 1;
  size_t total = l->scratch.len;
  if (large_body) {
    bufs[nbufs++] = uv_buf_init((char *)resp->body, (unsigned)resp->body_len);
    total += resp->body_len;
  }
  int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
  if (n < 0 && n != UV_EAGAIN) { /* the client is gone */
    fs_drop(fs);
    if (!fs)
      ex_free(ex);
    conn_close(c);
    return;
  }
  size_t sent = n > 0 ? (size_t)n : 0;
  if (sent == total) {
    c->deadline = uv_now(&l->uv) + (uint64_t)l->srv->o.idle_timeout_ms;
    if (fs) {
      c->fs = fs;
      fs_start(fs);
      return;
    }
    ex_recycle(c, ex);
    conn_after_response(c);
    return;
  }
  if (!large_body && !fs)
    ex_recycle(c, ex);
  if (conn_write_rest(c, bufs, nbufs, sent, large_body ? ex : NULL) < 0) {
    fs_drop(fs);
    return;
  }
  if (fs) {
    /* The file follows the head: at once when uv_write sent the rest,
     * else from the head's write callback. */
    c->fs = fs;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0)
      fs_start(fs);
  }
}

/* A small response built on the loop: errors found while parsing, 404, 405. */
static void conn_respond_error(conn_t *c, exchange_t *ex, int status, wv_regerr_t reg,
                               const char *msg) {
  if (ex->req.registry)
    wv_resp_registry_error(&ex->req, &ex->resp, reg, status, msg, NULL);
  else
    wv_resp_api_error(&ex->req, &ex->resp, status, msg);
  if (!ex->resp.status)
    wv_resp_static(&ex->resp, status, NULL, "", 0);
  conn_respond(c, ex);
}

/* ---------- streams, loop side ---------- */

static void stream_write_cb(uv_write_t *req, int status) {
  schunk_t *w = (schunk_t *)req;
  conn_t *c = w->conn;
  stream_t *st = w->st;
  pthread_mutex_lock(&st->mu);
  st->queued -= w->wlen;
  if (st->waiting && st->queued < STREAM_HIGH)
    pthread_cond_signal(&st->cv);
  if (st->nspare < STREAM_SPARES) {
    w->next = st->spare;
    st->spare = w;
    st->nspare++;
    w = NULL;
  }
  pthread_mutex_unlock(&st->mu);
  free(w);
  stream_unref(st);
  c->writes--;
  if (c->closing)
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  c->deadline = uv_now(&c->loop->uv) + (uint64_t)c->loop->srv->o.idle_timeout_ms;
  conn_after_response(c);
}

/* Writes a stream's head: status, headers, Content-Length or chunked. */
static int stream_send_head(conn_t *c, exchange_t *ex) {
  loop_t *l = c->loop;
  wv_resp_t *resp = &ex->resp;
  bool keep = ex->req.keep_alive && !resp->close && !l->draining;
  if (!keep)
    c->linger = true;
  wv_buf_reset(&l->scratch);
  if (wv_resp_write_head(resp, ex->req.registry, keep, ex->stream->chunked, loop_date(l),
                         &l->scratch))
    return WV_ENOMEM;
  wr_t *w = malloc(sizeof *w + l->scratch.len);
  if (!w)
    return WV_ENOMEM;
  memcpy(w->data, l->scratch.data, l->scratch.len);
  w->bufs[0] = uv_buf_init(w->data, (unsigned)l->scratch.len);
  w->nbufs = 1;
  w->hold = NULL;
  return conn_write(c, w);
}

static int stream_send_chunk(conn_t *c, schunk_t *w) {
  w->conn = c;
  atomic_fetch_add(&w->st->refs, 1);
  c->writes++;
  uv_buf_t b = uv_buf_init(w->data + w->off, (unsigned)w->wlen);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, stream_write_cb) < 0) {
    c->writes--;
    stream_unref(w->st);
    return WV_EIO;
  }
  return 0;
}

/*
 * Services a stream notification: head first, then the chunks appended so
 * far; on the final push also the end (last chunk, or a cut connection after
 * an error) and the exchange goes back to the connection.
 */
static void stream_service(loop_t *l, exchange_t *ex, bool final) {
  stream_t *st = ex->stream;
  conn_t *c = l->slots[ex->slot].gen == ex->gen ? l->slots[ex->slot].conn : NULL;
  if (!c || !c->busy || c->closing) {
    stream_fail(st);
    if (final)
      ex_free(ex);
    return;
  }
  int rc = 0, end_rc = 0;
  bool ended = false;
  if (!st->head_sent) {
    st->head_sent = true;
    c->sx = ex;
    c->deadline = uv_now(&l->uv) + (uint64_t)l->srv->o.idle_timeout_ms;
    pthread_mutex_lock(&st->mu);
    bool aborted = st->ended && st->end_rc != 0 && st->head == NULL;
    pthread_mutex_unlock(&st->mu);
    /* Failed before a byte of body: an honest error beats a truncated 200. */
    if (aborted && final) {
      c->sx = NULL;
      c->busy = false;
      stream_unref(st);
      ex->stream = NULL;
      ex->resp = (wv_resp_t){.fd = -1};
      ex_settle(ex, WV_EUPSTREAM);
      ex->resp.close = true;
      conn_respond(c, ex);
      conn_resume(c);
      return;
    }
    rc = stream_send_head(c, ex);
    if (rc) /* the connection is closed; the closing path failed the stream */
      goto done;
  }
  pthread_mutex_lock(&st->mu);
  schunk_t *list = st->head;
  st->head = st->tail = NULL;
  ended = st->ended;
  end_rc = st->end_rc;
  pthread_mutex_unlock(&st->mu);
  while (list && !c->closing) {
    schunk_t *next = list->next;
    if (stream_send_chunk(c, list)) {
      conn_close(c);
      break;
    }
    list = next;
  }
  if (list) {
    /* Not written: give the bytes back to the accounting, then drop them. */
    size_t n = 0;
    for (schunk_t *x = list; x; x = x->next)
      n += x->wlen;
    pthread_mutex_lock(&st->mu);
    st->queued -= n;
    pthread_mutex_unlock(&st->mu);
    chunks_free(list);
  }
done:
  if (!final)
    return;
  if (c->closing || !ended) {
    ex_free(ex);
    return;
  }
  c->sx = NULL;
  c->busy = false;
  if (end_rc == 0 && st->chunked && ex->req.method != WV_M_HEAD) {
    static char last[] = "0\r\n\r\n";
    wr_t *w = malloc(sizeof *w);
    if (w) {
      w->bufs[0] = uv_buf_init(last, sizeof last - 1);
      w->nbufs = 1;
      w->hold = NULL;
      if (conn_write(c, w) < 0) {
        ex_free(ex);
        return;
      }
    } else {
      end_rc = WV_ENOMEM;
    }
  }
  if (end_rc != 0)
    c->linger = true; /* the client must see a cut, not a complete body */
  ex_recycle(c, ex);
  conn_resume(c);
  conn_after_response(c);
}

/* Closes a connection whose response is out and that must not be reused. */
static void conn_after_response(conn_t *c) {
  if (c->closing || !c->linger || c->writes || c->fs || c->busy)
    return;
  /* Half-close so the client reads the whole response before FIN. */
  conn_close(c);
}

/* ---------- llhttp callbacks (loop thread) ---------- */

static conn_t *pconn(llhttp_t *p) { return p->data; }

static int refuse(exchange_t *ex, int status) {
  ex->err_status = status;
  return -1;
}

static int on_message_begin(llhttp_t *p) {
  conn_t *c = pconn(p);
  c->in_message = true;
  c->deadline = uv_now(&c->loop->uv) + (uint64_t)c->loop->srv->o.header_timeout_ms;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  return wv_buf_append(&ex->url, at, len) ? refuse(ex, 414) : 0;
}

static int push_off(exchange_t *ex) {
  uint32_t off = (uint32_t)ex->head.len;
  return wv_buf_append(&ex->hoffs, &off, sizeof off);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  if (ex->hstate != 1) {
    if (++ex->nhdr > pconn(p)->loop->srv->o.max_headers || push_off(ex))
      return refuse(ex, 431);
    ex->hstate = 1;
  }
  return wv_buf_append(&ex->head, at, len) ? refuse(ex, 431) : 0;
}

/* Ends the name and records where the value starts. */
static int start_value(exchange_t *ex) {
  if (wv_buf_putc(&ex->head, '\0') || push_off(ex))
    return refuse(ex, 431);
  ex->hstate = 2;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  if (ex->hstate == 1 && start_value(ex))
    return -1;
  return wv_buf_append(&ex->head, at, len) ? refuse(ex, 431) : 0;
}

static int on_header_value_complete(llhttp_t *p) {
  exchange_t *ex = pconn(p)->ex;
  if (ex->hstate == 1 && start_value(ex)) /* empty value */
    return -1;
  ex->hstate = 0;
  return wv_buf_putc(&ex->head, '\0') ? refuse(ex, 431) : 0;
}

/* Builds req's method, path, query and header array from what was parsed. */
static int build_head(conn_t *c, exchange_t *ex) {
  wv_req_t *req = &ex->req;
  req->method_name = llhttp_method_name((llhttp_method_t)c->parser.method);
  req->method = wv_router_method(req->method_name);
  if (!ex->url.data || ex->url.data[0] != '/')
    return refuse(ex, 400);
  req->url = ex->url.data;
  char *q = strchr(ex->url.data, '?');
  size_t plen = q ? (size_t)(q - ex->url.data) : ex->url.len;
  char *path = wv_arena_strndup(req->arena, ex->url.data, plen);
  wv_kv_t *h = wv_arena_alloc(req->arena, (size_t)(ex->nhdr ? ex->nhdr : 1) * sizeof *h);
  if (!path || !h)
    return refuse(ex, 500);
  req->path = path;
  req->query = q ? q + 1 : NULL;
  const uint32_t *offs = (const uint32_t *)ex->hoffs.data;
  for (int i = 0; i < ex->nhdr; i++) {
    h[i].name = ex->head.data + offs[2 * i];
    h[i].value = ex->head.data + offs[2 * i + 1];
  }
  req->headers = h;
  req->nheaders = ex->nhdr;
  req->registry = strcmp(path, "/v2") == 0 || strncmp(path, "/v2/", 4) == 0;
  req->keep_alive = llhttp_should_keep_alive(&c->parser);
  req->app = c->loop->srv->o.app;
  memcpy(req->client_ip, c->ip, sizeof req->client_ip);
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  conn_t *c = pconn(p);
  exchange_t *ex = c->ex;
  const wv_server_opts_t *o = &c->loop->srv->o;
  if (build_head(c, ex))
    return -1;
  wv_router_match(c->loop->srv->router, ex->req.method, ex->req.path, strlen(ex->req.path),
                  &ex->match);
  const wv_route_t *r = ex->match.route;
  ex->discard_body = !r;
  ex->body_limit = r ? (r->body_limit ? r->body_limit : o->max_body_size) : DISCARD_LIMIT;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > ex->body_limit)
    return refuse(ex, 413);
  if (!ex->discard_body)
    ex->body.max = ex->body_limit;
  const char *expect = wv_req_header(&ex->req, "Expect");
  ex->expect_continue = expect && strcasecmp(expect, "100-continue") == 0;
  if (ex->expect_continue && ((p->flags & F_CHUNKED) || p->content_length > 0)) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    wr_t *w = malloc(sizeof *w);
    if (w) {
      w->bufs[0] = uv_buf_init((char *)cont, sizeof cont - 1);
      w->nbufs = 1;
      w->hold = NULL;
      conn_write(c, w);
    }
  }
  /* A body may trickle in: the idle timeout, not the header timeout, applies. */
  c->deadline = uv_now(&c->loop->uv) + (uint64_t)o->idle_timeout_ms;
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  exchange_t *ex = pconn(p)->ex;
  if (ex->discard_body) {
    ex->discarded += len;
    return ex->discarded > ex->body_limit ? refuse(ex, 413) : 0;
  }
  return wv_buf_append(&ex->body, at, len) ? refuse(ex, 413) : 0;
}

static int on_message_complete(llhttp_t *p) {
  pconn(p)->in_message = false;
  return HPE_PAUSED; /* one request at a time: see DESIGN */
}

static void settings_init(void) {
  llhttp_settings_init(&parser_settings);
  parser_settings.on_message_begin = on_message_begin;
  parser_settings.on_url = on_url;
  parser_settings.on_header_field = on_header_field;
  parser_settings.on_header_value = on_header_value;
  parser_settings.on_header_value_complete = on_header_value_complete;
  parser_settings.on_headers_complete = on_headers_complete;
  parser_settings.on_body = on_body;
  parser_settings.on_message_complete = on_message_complete;
}

/* ---------- dispatch ---------- */

/* Copies the match into the request's arena so a worker can keep it. */
static int bind_route(exchange_t *ex) {
  wv_req_t *req = &ex->req;
  const wv_match_t *m = &ex->match;
  req->route = m->route;
  req->body = ex->body.data ? ex->body.data : "";
  req->body_len = ex->body.len;
  for (int i = 0; i < m->nparams; i++) {
    req->params[i].name = wv_arena_strndup(req->arena, m->param_names[i], m->param_name_lens[i]);
    req->params[i].value = wv_arena_strndup(req->arena, m->param_vals[i], m->param_val_lens[i]);
    if (!req->params[i].name || !req->params[i].value)
      return WV_ENOMEM;
  }
  req->nparams = m->nparams;
  if (m->wild && !(req->wild = wv_arena_strndup(req->arena, m->wild, m->wild_len)))
    return WV_ENOMEM;
  return 0;
}

/* Hands the current exchange to a worker or parker; the connection waits. */
static void conn_detach(conn_t *c, exchange_t *ex) {
  loop_t *l = c->loop;
  c->ex = NULL;
  c->busy = true;
  c->deadline = 0;
  ex->slot = c->slot;
  ex->gen = l->slots[c->slot].gen;
}

static void dispatch_unrouted(conn_t *c, exchange_t *ex) {
  wv_req_t *req = &ex->req;
  if (ex->match.allow) {
    char allow[64];
    wv_router_allow_str(ex->match.allow, allow, sizeof allow);
    char *msg =
        wv_arena_sprintf(req->arena, "Method [%s] not allowed for URI [%s]. Allowed methods: [%s]",
                         req->method_name, req->path, allow);
    char *hdr = wv_arena_strdup(req->arena, allow);
    if (hdr)
      wv_resp_header(&ex->resp, "Allow", hdr);
    conn_respond_error(c, ex, 405, WV_REGERR_UNSUPPORTED, msg);
    return;
  }
  char *msg = req->registry ? wv_arena_sprintf(req->arena, "Invalid request path '%s'", req->path)
                            : wv_arena_sprintf(req->arena, "Page Not Found");
  conn_respond_error(c, ex, 404, WV_REGERR_NOT_FOUND, msg);
}

static void dispatch(conn_t *c) {
  exchange_t *ex = c->ex;
  if (!ex->match.route) {
    dispatch_unrouted(c, ex);
    return;
  }
  if (bind_route(ex)) {
    conn_respond_error(c, ex, 500, WV_REGERR_SERVER_ERROR, "out of memory");
    return;
  }
  const wv_route_t *r = ex->match.route;
  if (r->flags & WV_ROUTE_INLINE) {
    int rc = r->handler(&ex->req, &ex->resp);
    if (rc == WV_PARKED) {
      conn_detach(c, ex);
      return;
    }
    if (rc != WV_DEFER) {
      ex_settle(ex, rc);
      conn_respond(c, ex);
      return;
    }
    if (ex->resp.fd >= 0)
      close(ex->resp.fd);
    ex->resp = (wv_resp_t){.fd = -1};
  }
  conn_detach(c, ex);
  ex->job.run = job_run;
  int rc = wv_pool_submit(c->loop->srv->pool, &ex->job);
  if (rc) {
    /* Queue full or stopping: answer 503 here, the connection goes on. */
    c->busy = false;
    wv_resp_error(&ex->req, &ex->resp, rc, "Server busy - retry later");
    ex->resp.status = 503;
    conn_respond(c, ex);
  }
}

/* ---------- reading and parsing ---------- */

static void stop_reading(conn_t *c) {
  if (c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  loop_t *l = ((conn_t *)h->data)->loop;
  buf->base = l->read_buf;
  buf->len = READ_BUF_SIZE;
}

/* A refused or malformed request: answer and close. */
static void parse_failed(conn_t *c, llhttp_errno_t err) {
  exchange_t *ex = c->ex;
  int status = ex->err_status ? ex->err_status : 400;
  c->ex = NULL;
  c->linger = true;
  stop_reading(c);
  if (status == 400)
    wv_debug("bad request: %s (%s)", llhttp_errno_name(err), llhttp_get_error_reason(&c->parser));
  ex->err_status = status; /* forces Connection: close */
  const char *msg = status == 431   ? "Request header fields too large"
                    : status == 414 ? "URI too long"
                    : status == 413 ? "Request body too large"
                                    : "Bad request";
  wv_regerr_t reg = status == 413 ? WV_REGERR_SIZE_INVALID : WV_REGERR_BAD_REQUEST;
  ex->resp = (wv_resp_t){.fd = -1};
  conn_respond_error(c, ex, status, reg, msg);
}

/* Parses data until a request needs to wait; keeps what is left in c->in. */
static void conn_feed(conn_t *c, const char *data, size_t len) {
  while (len > 0 && !c->busy && !c->closing && !c->linger && !c->throttled && !c->fs) {
    if (!c->ex && !(c->ex = ex_new(c->loop))) {
      conn_close(c);
      return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK)
      return;
    if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
      parse_failed(c, err);
      return;
    }
    size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
    data += used;
    len -= used;
    if (err == HPE_PAUSED_UPGRADE) {
      /* No protocol upgrades: answer the request, then close. */
      c->ex->req.keep_alive = false;
      len = 0;
    } else {
      llhttp_resume(&c->parser);
      if (c->parser.upgrade) {
        c->ex->req.keep_alive = false;
        len = 0;
      }
    }
    dispatch(c);
  }
  if (c->linger) {
    stop_reading(c);
    return;
  }
  if (len > 0 && !c->closing && !c->linger) {
    char *in = malloc(len);
    if (!in) {
      conn_close(c);
      return;
    }
    memcpy(in, data, len);
    c->in = in;
    c->in_len = len;
    stop_reading(c);
  }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  if (nread > 0) {
    conn_feed(c, buf->base, (size_t)nread);
    return;
  }
  if (nread == 0)
    return;
  /* EOF or error. A half-sent request is dropped; a response in flight finishes. */
  stop_reading(c);
  if (nread == UV_EOF && !c->in_message && (c->writes || c->fs)) {
    c->linger = true;
    return;
  }
  conn_close(c);
}

static void start_reading(conn_t *c) {
  if (!c->reading && !c->closing && uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
    c->reading = true;
}

/* Continues after a response was queued or the write queue drained. */
static void conn_resume(conn_t *c) {
  if (c->closing || c->busy || c->throttled || c->fs)
    return;
  if (c->linger) {
    conn_after_response(c);
    return;
  }
  char *in = c->in;
  size_t n = c->in_len;
  c->in = NULL;
  c->in_len = 0;
  if (in) {
    conn_feed(c, in, n);
    free(in);
  }
  if (c->closing || c->busy || c->throttled || c->fs || c->linger || c->in)
    return;
  if (!c->in_message)
    c->deadline = uv_now(&c->loop->uv) + (uint64_t)c->loop->srv->o.idle_timeout_ms;
  start_reading(c);
}

/* ---------- connections ---------- */

static void close_cb(uv_handle_t *h) {
  conn_t *c = h->data;
  loop_t *l = c->loop;
  l->nconns--;
  free(c->in);
  ex_free(c->ex);
  c->ex = NULL;
  free(c);
  loop_check_done(l);
}

static void conn_close(conn_t *c) {
  if (c->closing)
    return;
  loop_t *l = c->loop;
  c->closing = true;
  c->reading = false;
  if (c->sx) { /* a worker may be blocked writing to us */
    stream_fail(c->sx->stream);
    c->sx = NULL;
  }
  if (c->fs) { /* nothing of it is in flight: end it now */
    fs_release(c->fs);
    c->fs = NULL;
  }
  /* Unlink now: sweeps and late exchanges must not find it any more. */
  if (c->prev)
    c->prev->next = c->next;
  else
    l->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  l->slots[c->slot].conn = NULL;
  l->slots[c->slot].gen++;
  l->free_slots[l->nfree++] = c->slot;
  uv_close((uv_handle_t *)&c->tcp, close_cb);
}

/*
 * The peer's address as text, once per connection: rate limits key
 * anonymous clients on it (an IPv4-mapped IPv6 address reads as IPv4).
 */
static void peer_ip(conn_t *c) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  c->ip[0] = '\0';
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len))
    return;
  if (ss.ss_family == AF_INET)
    uv_ip4_name((struct sockaddr_in *)&ss, c->ip, sizeof c->ip);
  else if (ss.ss_family == AF_INET6)
    uv_ip6_name((struct sockaddr_in6 *)&ss, c->ip, sizeof c->ip);
  if (strncmp(c->ip, "::ffff:", 7) == 0 && strchr(c->ip + 7, '.'))
    memmove(c->ip, c->ip + 7, strlen(c->ip + 7) + 1);
}

static void on_connection(uv_stream_t *server, int status) {
  loop_t *l = server->data;
  if (status < 0)
    return;
  conn_t *c = calloc(1, sizeof *c);
  if (!c || uv_tcp_init(&l->uv, &c->tcp)) {
    free(c);
    return;
  }
  c->tcp.data = c;
  c->loop = l;
  l->nconns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) || l->nfree == 0 || l->draining) {
    /* Over max-connections: accept and close at once, so the backlog drains. */
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    return;
  }
  c->slot = l->free_slots[--l->nfree];
  l->slots[c->slot].conn = c;
  c->next = l->conns;
  if (l->conns)
    l->conns->prev = c;
  l->conns = c;
  uv_tcp_nodelay(&c->tcp, 1);
  peer_ip(c);
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
  c->deadline = uv_now(&l->uv) + (uint64_t)l->srv->o.header_timeout_ms;
  start_reading(c);
}

/* ---------- loop control ---------- */

/*
 * Takes the whole done-queue. A worker may re-link a streaming exchange as
 * soon as in_done is false: the returned list is linked through pnext, a
 * link only the loop uses, and finality is noted (pfinal) while locked.
 */
static exchange_t *done_take(loop_t *l) {
  pthread_mutex_lock(&l->done_mu);
  exchange_t *ex = l->done_head;
  l->done_head = l->done_tail = NULL;
  for (exchange_t *x = ex; x; x = x->next) {
    x->pnext = x->next;
    x->pfinal = x->final;
    x->in_done = false;
  }
  pthread_mutex_unlock(&l->done_mu);
  return ex;
}

static void done_cb(uv_async_t *a) {
  loop_t *l = a->data;
  exchange_t *ex = done_take(l);
  while (ex) {
    exchange_t *next = ex->pnext;
    ex->pnext = NULL;
    if (ex->stream) {
      stream_service(l, ex, ex->pfinal);
      ex = next;
      continue;
    }
    conn_t *c = l->slots[ex->slot].gen == ex->gen ? l->slots[ex->slot].conn : NULL;
    if (!c || !c->busy) {
      ex_free(ex); /* the client went away meanwhile */
    } else {
      c->busy = false;
      conn_respond(c, ex);
      conn_resume(c);
    }
    ex = next;
  }
}

static bool conn_idle(const conn_t *c) {
  return !c->busy && !c->in_message && !c->writes && !c->fs && !c->in;
}

static void sweep_cb(uv_timer_t *t) {
  loop_t *l = t->data;
  uint64_t now = uv_now(&l->uv);
  for (conn_t *c = l->conns, *next; c; c = next) {
    next = c->next;
    if (c->deadline && now >= c->deadline)
      conn_close(c);
  }
}

static void handle_close_noop(uv_handle_t *h) { (void)h; }

static void loop_check_done(loop_t *l) {
  if (!l->draining || l->nconns > 0 || l->stopping)
    return;
  l->stopping = true;
  pthread_mutex_lock(&l->done_mu);
  l->closed = true;
  pthread_mutex_unlock(&l->done_mu);
  uv_close((uv_handle_t *)&l->done_async, handle_close_noop);
  uv_close((uv_handle_t *)&l->ctl_async, handle_close_noop);
  uv_close((uv_handle_t *)&l->sweep, handle_close_noop);
  if (!l->listener_closed) {
    l->listener_closed = true;
    uv_close((uv_handle_t *)&l->listener, handle_close_noop);
  }
}

static void ctl_cb(uv_async_t *a) {
  loop_t *l = a->data;
  int req = atomic_load(&l->stop_req);
  if (req == 0 || l->stopping)
    return;
  l->draining = true;
  if (!l->listener_closed) {
    l->listener_closed = true;
    uv_close((uv_handle_t *)&l->listener, handle_close_noop);
  }
  for (conn_t *c = l->conns, *next; c; c = next) {
    next = c->next;
    if (req == 2 || conn_idle(c))
      conn_close(c);
    else if (!c->busy && !c->in_message)
      c->linger = true; /* close once its response is out */
  }
  loop_check_done(l);
}

static void *loop_main(void *arg) {
  loop_t *l = arg;
  uv_run(&l->uv, UV_RUN_DEFAULT);
  /* Exchanges that came back after the last connection closed. A stream
   * whose handler still runs is the worker's: it frees it at its end. */
  exchange_t *ex = done_take(l);
  while (ex) {
    exchange_t *next = ex->pnext;
    if (ex->stream && !ex->pfinal)
      stream_fail(ex->stream);
    else
      ex_free(ex);
    ex = next;
  }
  wv_server_t *s = l->srv;
  pthread_mutex_lock(&s->mu);
  s->running--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---------- setup ---------- */

static int make_listener(const char *host, int port, int *fd_out, int *port_out) {
  struct sockaddr_storage ss;
  int family = strchr(host, ':') ? AF_INET6 : AF_INET;
  int rc = family == AF_INET6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
                              : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc) {
    wv_error("server.host '%s' is not a numeric address", host);
    return WV_EINVAL;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return WV_EIO;
  int one = 1;
  socklen_t sl = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) ||
      bind(fd, (struct sockaddr *)&ss, sl)) {
    wv_error("cannot bind %s:%d: %s", host, port, strerror(errno));
    close(fd);
    return WV_EIO;
  }
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
    *port_out = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                         : ((struct sockaddr_in *)&ss)->sin_port);
  *fd_out = fd;
  return 0;
}

static int loop_init(wv_server_t *s, loop_t *l, int idx, int port) {
  l->srv = s;
  l->idx = idx;
  int n = s->o.max_connections;
  l->slots = calloc((size_t)n, sizeof *l->slots);
  l->free_slots = malloc((size_t)n * sizeof *l->free_slots);
  l->read_buf = malloc(READ_BUF_SIZE);
  if (!l->slots || !l->free_slots || !l->read_buf)
    return WV_ENOMEM;
  for (int i = 0; i < n; i++)
    l->free_slots[i] = (uint32_t)(n - 1 - i);
  l->nfree = n;
  wv_buf_init(&l->scratch, 1 << 20);
  pthread_mutex_init(&l->done_mu, NULL);
  if (uv_loop_init(&l->uv))
    return WV_ENOMEM;
  l->uv_inited = true;
  uv_async_init(&l->uv, &l->done_async, done_cb);
  uv_async_init(&l->uv, &l->ctl_async, ctl_cb);
  uv_timer_init(&l->uv, &l->sweep);
  l->done_async.data = l->ctl_async.data = l->sweep.data = l;
  int64_t tick =
      s->o.header_timeout_ms < s->o.idle_timeout_ms ? s->o.header_timeout_ms : s->o.idle_timeout_ms;
  tick /= 4;
  tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
  uv_timer_start(&l->sweep, sweep_cb, (uint64_t)tick, (uint64_t)tick);
  uv_tcp_init(&l->uv, &l->listener);
  l->listener.data = l;
  int fd, bound = port;
  int rc = make_listener(s->host, port, &fd, &bound);
  if (rc)
    return rc;
  if (idx == 0)
    s->port = bound;
  if (uv_tcp_open(&l->listener, fd) ||
      uv_listen((uv_stream_t *)&l->listener, LISTEN_BACKLOG, on_connection)) {
    wv_error("cannot listen on %s:%d", s->host, port);
    return WV_EIO;
  }
  return 0;
}

int wv_server_new(const wv_server_opts_t *opts, const wv_router_t *router, wv_server_t **out) {
  if (!opts->host || opts->port < 0 || opts->port > 65535 || opts->max_connections < 1 ||
      opts->max_headers < 1)
    return WV_EINVAL;
  wv_server_t *s = calloc(1, sizeof *s);
  if (!s)
    return WV_ENOMEM;
  s->o = *opts;
  s->host = strdup(opts->host);
  if (!s->host) {
    free(s);
    return WV_ENOMEM;
  }
  s->o.host = s->host;
  int cores = (int)uv_available_parallelism();
  /* Half the cores by default: the other half runs the workers, the store
   * committer and the builders. On 2 cores two loops plus two busy client or
   * builder threads are more runnable threads than cores, and a request then
   * waits up to two 4 ms scheduler ticks (docs/benchmarks.md, p99). */
  s->nloops = s->o.io_threads > 0 ? s->o.io_threads : (cores / 2 > 1 ? cores / 2 : 1);
  s->nworkers = s->o.workers > 0 ? s->o.workers : (2 * cores < 4 ? 4 : 2 * cores);
  s->o.io_threads = s->nloops;
  s->o.workers = s->nworkers;
  if (!s->o.max_queued_jobs)
    s->o.max_queued_jobs = (size_t)64 * (size_t)s->nworkers;
  s->router = router;
  s->port = -1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_once(&settings_once, settings_init);
  *out = s;
  return 0;
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

int wv_server_start(wv_server_t *s) {
  if (s->started)
    return WV_EINVAL;
  s->loops = calloc((size_t)s->nloops, sizeof *s->loops);
  if (!s->loops)
    return WV_ENOMEM;
  int rc = 0, i;
  for (i = 0; i < s->nloops && !rc; i++) {
    rc = loop_init(s, &s->loops[i], i, i == 0 ? s->o.port : s->port);
  }
  /* Server threads take no signals: main's uv_signal handles them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  if (!rc)
    rc = wv_pool_new(s->nworkers, s->o.max_queued_jobs, &s->pool);
  if (rc) {
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int j = 0; j < i; j++) {
      if (!s->loops[j].uv_inited)
        continue;
      uv_walk(&s->loops[j].uv, walk_close, NULL);
      uv_run(&s->loops[j].uv, UV_RUN_DEFAULT);
      uv_loop_close(&s->loops[j].uv);
    }
    s->port = -1;
    return rc;
  }
  for (i = 0; i < s->nloops; i++) {
    pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]);
    s->running++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  s->started = true;
  return 0;
}

int wv_server_port(const wv_server_t *s) { return s->port; }
int wv_server_io_threads(const wv_server_t *s) { return s->nloops; }
int wv_server_workers(const wv_server_t *s) { return s->nworkers; }

static void signal_loops(wv_server_t *s, int req) {
  for (int i = 0; i < s->nloops; i++) {
    loop_t *l = &s->loops[i];
    atomic_store(&l->stop_req, req);
    pthread_mutex_lock(&l->done_mu);
    if (!l->closed)
      uv_async_send(&l->ctl_async);
    pthread_mutex_unlock(&l->done_mu);
  }
}

void wv_server_shutdown(wv_server_t *s) {
  if (!s->started || s->stopped)
    return;
  s->stopped = true;
  signal_loops(s, 1);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += s->o.shutdown_timeout_ms / 1000;
  dl.tv_nsec += (s->o.shutdown_timeout_ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&s->mu);
  while (s->running > 0)
    if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT)
      break;
  int left = s->running;
  pthread_mutex_unlock(&s->mu);
  if (left > 0) {
    wv_warn("shutdown: %d io thread(s) still busy after %lld ms, closing their connections", left,
            (long long)s->o.shutdown_timeout_ms);
    signal_loops(s, 2);
  }
  for (int i = 0; i < s->nloops; i++) {
    pthread_join(s->loops[i].thread, NULL);
    uv_loop_close(&s->loops[i].uv);
  }
  /* Loops are gone: running jobs finish and free their exchange in done_push. */
  wv_pool_stop(s->pool, job_cancel);
}

void wv_server_free(wv_server_t *s) {
  if (!s)
    return;
  wv_server_shutdown(s);
  wv_pool_free(s->pool);
  for (int i = 0; s->loops && i < s->nloops; i++) {
    loop_t *l = &s->loops[i];
    free(l->slots);
    free(l->free_slots);
    free(l->read_buf);
    wv_buf_free(&l->scratch);
    pthread_mutex_destroy(&l->done_mu);
  }
  free(s->loops);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->host);
  free(s);
}
