/*
 * http/server_int.h — the HTTP server's private types and the functions its
 * parts share. Not for other files: the public API is http/server.h.
 *
 * The parts (the design essay is at the top of http/server.c):
 *   server.c          IO loops, listeners, accepting and closing connections,
 *                     the loop side of the done-queue, timeouts, shutdown
 *   server_parse.c    reading, llhttp callbacks and their caps, dispatch
 *   server_write.c    responses: head + body writes, sendfile(2) file bodies
 *   server_stream.c   streamed bodies, worker side and loop side
 *   server_exchange.c exchanges, the done-queue push, worker jobs, parked
 *                     completions (wv_req_complete, wv_req_resume)
 *
 * Thread rules: everything here runs on the loop that owns the connection,
 * except what says "any thread" or "worker".
 */
#ifndef WV_SERVER_INT_H
#define WV_SERVER_INT_H

#include "core/pool.h"
#include "http/resp.h"
#include "http/server.h"

#include <llhttp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
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
  int64_t stall_ms; /* wv_req_stream_stall_timeout; 0 = server.idle-timeout */
  int err_status;   /* parse-time refusal: 400, 413, 414, 431 */
  int nhdr;
  int hstate; /* 0 between headers, 1 in a name, 2 in a value */
  bool discard_body;
  bool expect_continue;
  bool in_trailers;       /* past the head: trailer fields are counted (431 cap), never kept,
                             since growing head would move the strings req->headers points to */
  uint64_t trailer_bytes; /* bytes of trailer fields so far */
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

/* ---- server_exchange.c ---- */

/* A fresh exchange for a request on l; NULL when out of memory. */
exchange_t *wv_srv_ex_new(loop_t *l);
/* Frees ex with its arena, file and stream reference. Any thread that owns ex. NULL is a no-op. */
void wv_srv_ex_free(exchange_t *ex);
/* Gives ex back to c as its parse exchange, or frees it if c has one. */
void wv_srv_ex_recycle(conn_t *c, exchange_t *ex);
/* Makes sure a handler's outcome (rc) is a response. */
void wv_srv_ex_settle(exchange_t *ex, int rc);
/* A write on c ended: false when c is closing or now closed (status < 0),
 * else the idle deadline is renewed and true. */
bool wv_srv_write_done(conn_t *c, int status);
/* Links ex at the tail of l's done-queue and wakes the loop; done_mu held, l not closed. */
void wv_srv_done_link(loop_t *l, exchange_t *ex);
/* The pool job of a detached exchange: runs its handler on a worker. */
void wv_srv_job_run(wv_pool_job_t *job);
/* Drops a job the pool never ran, with its exchange. */
void wv_srv_job_cancel(wv_pool_job_t *job);

/* ---- server_stream.c ---- */

/* Drops a reference; the last one frees st and its chunks. Any thread. NULL is a no-op. */
void wv_srv_stream_unref(stream_t *st);
/* The client is gone: wake and stop the writer. Any thread. */
void wv_srv_stream_fail(stream_t *st);
/* The streaming handler returned rc: its last chunk and the end go to the loop. Worker. */
void wv_srv_stream_end(exchange_t *ex, int rc);
/* The loop's side of a stream notification taken from the done-queue. */
void wv_srv_stream_service(loop_t *l, exchange_t *ex, bool final);

/* ---- server_write.c ---- */

/* The "Date: ...\r\n" header line, redone once a second. */
const char *wv_srv_loop_date(loop_t *l);
/* Queues w; on failure frees it and closes c. 0 or < 0. */
int wv_srv_conn_write(conn_t *c, wr_t *w);
/* Releases a file send's own resources; the connection is not touched. */
void wv_srv_fs_release(fsend_t *fs);
/* Serialises ex's response and sends it on c; takes ex. */
void wv_srv_conn_respond(conn_t *c, exchange_t *ex);
/* A small response built on the loop: errors found while parsing, 404, 405. */
void wv_srv_conn_respond_error(conn_t *c, exchange_t *ex, int status, wv_regerr_t reg,
                               const char *msg);
/* Closes a connection whose response is out and that must not be reused. */
void wv_srv_conn_after_response(conn_t *c);

/* ---- server_parse.c ---- */

/* Sets up the llhttp callbacks once per process; before the first connection. */
void wv_srv_parse_init(void);
/* Starts c's parser (after wv_srv_parse_init). */
void wv_srv_conn_parser_init(conn_t *c);
/* Reads from c unless it is reading already or closing. */
void wv_srv_start_reading(conn_t *c);
/* Continues after a response was queued or the write queue drained. */
void wv_srv_conn_resume(conn_t *c);

/* ---- server.c ---- */

/* Closes c (unlinked at once, freed in the close callback). No-op when closing. */
void wv_srv_conn_close(conn_t *c);

#endif
