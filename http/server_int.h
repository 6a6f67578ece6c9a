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
 *   server_tls.c      TLS connections: handshake, decrypting input,
 *                     encrypting output (contexts: http/tls.c)
 *
 * Thread rules: everything here runs on the loop that owns the connection,
 * except what says "any thread" or "worker".
 */
#ifndef WV_SERVER_INT_H
#define WV_SERVER_INT_H

#include "core/metrics.h"
#include "core/timefmt.h"
#include "http/accesslog.h"
#include "http/pool.h"
#include "http/resp.h"
#include "http/server.h"

#include <llhttp.h>
#include <openssl/ssl.h>
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
#define TLS_PLAIN_SIZE (16 * 1024)         /* one TLS record of decrypted input */
#define TLS_FILE_CHUNK (256 * 1024)        /* file bytes read and encrypted at once */
#define TLS_FILE_HIGH (1024 * 1024)        /* queued ciphertext before a file send waits */
#define TLS_OUT_MAX ((size_t)256 << 20)    /* ciphertext of one write */
#define TLS_SPARES 16                      /* written file-sized ciphertext buffers kept per loop */
#define TLS_SPARE_MAX (2 * TLS_FILE_CHUNK) /* larger ones are freed, not kept */

typedef struct loop loop_t;
typedef struct conn conn_t;
typedef struct exchange exchange_t;
typedef struct stream stream_t;
typedef struct schunk schunk_t;
typedef struct peer_ip peer_ip_t;

#define PEER_BUCKETS 256 /* hash buckets of the peer pool's per-address shares */

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
  exchange_t *wnext; /* waiting for a share of its address (server_peer.c), under peer_mu */
  bool has_share;    /* holds a share of the peer pool for its address (server_peer.c) */
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
  int64_t stall_ms;    /* wv_req_stream_stall_timeout; 0 = server.idle-timeout */
  int err_status;      /* parse-time refusal: 400, 408, 413, 414, 431, 503 */
  const char *err_msg; /* its message when not the status's usual one (static) */
  uint64_t body_held;  /* bytes reserved from the server's body budget */
  int nhdr;
  int hstate; /* 0 between headers, 1 in a name, 2 in a value */
  bool discard_body;
  bool expect_continue;
  bool in_trailers;       /* past the head: trailer fields are counted (431 cap), never kept,
                             since growing head would move the strings req->headers points to */
  uint64_t trailer_bytes; /* bytes of trailer fields so far */
  wv_match_t match;
  uint64_t t0;  /* mono ns at the request's first byte; 0 = neither metrics nor access log */
  uint64_t rid; /* request id (core/log.h): log lines, access log, job logs */
};

typedef struct fsend fsend_t;

/* A TLS connection's state (server_tls.c). Freed with its connection. */
typedef struct {
  SSL *ssl;     /* owns rbio and the write BIO */
  BIO *rbio;    /* memory BIO: ciphertext read from the socket, not yet decrypted */
  bool started; /* the first byte was checked: a TLS handshake, not plain HTTP */
  bool feeding; /* decrypting input: no nested pass (see wv__srv_tls_input) */
} tlsc_t;

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
  tlsc_t *tls;    /* NULL on the plain listener */
  exchange_t *sx; /* the exchange streaming to this connection, head sent */
  bool busy;      /* a handler owns the current request */
  bool closing;   /* uv_close called */
  bool linger;    /* close once writes drain (no keep-alive, EOF, error) */
  bool reading;
  bool throttled; /* write queue above HIGH_WATER */
  bool in_message;
  uint64_t rate_start, rate_bytes; /* body receive rate: window start (loop ms), bytes since */
  bool ip_counted;  /* counted in the server's per-address table (close_cb uncounts) */
  bool over_ip_cap; /* past server.max-connections-per-ip: its request gets 503 */
  char ip[46];      /* the client's address (wv_req_t.client_ip), "" when unknown */
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
  uv_tcp_t listener;     /* plain HTTP (server.port), when plain */
  uv_tcp_t tls_listener; /* HTTPS (server.tls.port), when TLS is on */
  uv_async_t done_async, ctl_async;
  uv_timer_t sweep;
  pthread_t thread;
  pthread_mutex_t done_mu; /* leaf lock: guards done_*, closed */
  exchange_t *done_head, *done_tail;
  bool closed;         /* asyncs closed: pushers free their exchange themselves */
  atomic_int senders;  /* pushers between their link (done_mu held) and their wake-up */
  atomic_int stop_req; /* 0 run, 1 drain, 2 force */
  conn_t *conns;
  int nconns;
  slot_t *slots;
  uint32_t *free_slots;
  int nfree;
  char *read_buf;
  wv_buf_t scratch;
  char *tls_plain;  /* decrypted input, TLS_PLAIN_SIZE (TLS only) */
  char *tls_file;   /* file bytes to encrypt, TLS_FILE_CHUNK (TLS only) */
  wv_buf_t tls_out; /* ciphertext made by SSL_write / the handshake, not yet queued */
  /* Written ciphertext buffers for reuse: a fresh large malloc is a fresh
   * mmap, and its page faults cost more than the encryption. */
  struct {
    char *data;
    size_t cap;
  } tls_spare[TLS_SPARES];
  int ntls_spare;
  char date[64];
  time_t date_sec;
  uint64_t rid_seq; /* the last request id given out: loop index and start time above */
  bool draining, listener_closed, stopping, uv_inited;
  bool has_plain, has_tls; /* listeners initialised */
};

struct wv_server {
  wv_server_opts_t o;
  char *host;
  const wv_router_t *router;
  loop_t *loops;
  int nloops;
  wv_pool_t *pool;
  int nworkers;
  wv_pool_t *peer_pool; /* /v2 handlers (server_peer.c) */
  int npeer;
  pthread_mutex_t peer_mu; /* leaf lock: guards peer_tab */
  peer_ip_t *peer_tab[PEER_BUCKETS];
  size_t nwaiting;        /* jobs in all wait lists (capped at max_queued_jobs), under peer_mu */
  int port;               /* plain port bound, -1 when none */
  int tls_port;           /* TLS port bound, -1 when none */
  pthread_mutex_t tls_mu; /* leaf lock: guards tls_ctx (swapped on reload) */
  SSL_CTX *tls_ctx;       /* NULL = no TLS listener */
  bool started, stopped;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int running;
  /* Open connections per client address, all loops (server.max-connections-per-ip):
   * open addressing, a power-of-two size above twice the connection total. */
  atomic_uint_least64_t body_mem; /* bytes reserved by request bodies (server.max-body-memory) */
  pthread_mutex_t ip_mu;          /* leaf lock: guards ips */
  struct ipcount {
    char ip[46];
    int n;
  } * ips;
  size_t ipcap;
};

/* ---- server_exchange.c ---- */

/* A fresh exchange for a request on l; NULL when out of memory. */
exchange_t *wv__srv_ex_new(loop_t *l);
/* Reserves room for a body of total bytes from the server's budget; 0, or
 * -1 when the budget would be exceeded (nothing reserved). Loop. */
int wv__srv_body_reserve(exchange_t *ex, uint64_t total);
/* Frees ex with its arena, file and stream reference. Any thread that owns ex. NULL is a no-op. */
void wv__srv_ex_free(exchange_t *ex);
/* Gives ex back to c as its parse exchange, or frees it if c has one. */
void wv__srv_ex_recycle(conn_t *c, exchange_t *ex);
/* Makes sure a handler's outcome (rc) is a response. */
void wv__srv_ex_settle(exchange_t *ex, int rc);
/*
 * Links ex at the tail of l's done-queue; done_mu held, l not closed. True when the queue was
 * empty: the caller must then call wv__srv_done_wake(l) once it has released done_mu (a
 * non-empty queue has a wake-up on its way already).
 */
bool wv__srv_done_link(loop_t *l, exchange_t *ex);
/* Wakes l's loop for its done-queue; after a wv__srv_done_link that returned true, unlocked. */
void wv__srv_done_wake(loop_t *l);
/* The pool job of a detached exchange: runs its handler on a worker. */
void wv__srv_job_run(wv_pool_job_t *job);
/* Drops a job the pool never ran, with its exchange. */
void wv__srv_job_cancel(wv_pool_job_t *job);

/* Puts ex (answered) on its loop's done-queue; frees it when the loop is gone. Any thread. */
void wv__srv_done_push(exchange_t *ex);

/* ---- server_peer.c ---- */

/* Queues detached ex on its pool: /v2 on the peer pool (fair shares per address), the rest on
 * the workers. 0, WV_EBUSY (queue full) or WV_ECLOSED. */
int wv__srv_submit(exchange_t *ex);
/* Frees the peer table and the jobs still waiting in it (after the peer pool stopped). */
void wv__srv_peer_free(wv_server_t *s);

/* ---- server_stream.c ---- */

/* Drops a reference; the last one frees st and its chunks. Any thread. NULL is a no-op. */
void wv__srv_stream_unref(stream_t *st);
/* The client is gone: wake and stop the writer. Any thread. */
void wv__srv_stream_fail(stream_t *st);
/* The streaming handler returned rc: its last chunk and the end go to the loop. Worker. */
void wv__srv_stream_end(exchange_t *ex, int rc);
/* The loop's side of a stream notification taken from the done-queue. */
void wv__srv_stream_service(loop_t *l, exchange_t *ex, bool final);

/* ---- server_write.c ---- */
/* A write on c ended: false when c is closing or now closed (status < 0),
 * else the idle deadline is renewed and true. */
bool wv__srv_write_done(conn_t *c, int status);

/* The "Date: ...\r\n" header line, redone once a second. */
const char *wv__srv_loop_date(loop_t *l);
/* Queues w; on failure frees it and closes c. 0 or < 0. */
int wv__srv_conn_write(conn_t *c, wr_t *w);
/*
 * The bookkeeping after w was handed to the socket (c->writes counted it):
 * rc < 0 undoes the count, frees w (and what it holds) and closes c; else c
 * is throttled past HIGH_WATER. Returns rc.
 */
int wv__srv_write_queued(conn_t *c, wr_t *w, int rc);
/* Releases a file send's own resources; the connection is not touched. */
void wv__srv_fs_release(fsend_t *fs);
/* Serialises ex's response and sends it on c; takes ex. */
void wv__srv_conn_respond(conn_t *c, exchange_t *ex);
/* A small response built on the loop: errors found while parsing, 404, 405. */
void wv__srv_conn_respond_error(conn_t *c, exchange_t *ex, int status, wv_regerr_t reg,
                                const char *msg);
/* Closes a connection whose response is out and that must not be reused. */
void wv__srv_conn_after_response(conn_t *c);

/* The write callback of wr_t writes (accounting, back-pressure, file start). */
void wv__srv_write_cb(uv_write_t *req, int status);

/* ---- server_tls.c ---- */

/* Sets up TLS state for a connection accepted on the TLS listener. 0 or WV_ENOMEM. */
int wv__srv_tls_conn_init(conn_t *c);
/* Frees c's TLS state (close callback). */
void wv__srv_tls_conn_free(conn_t *c);
/* libuv's read callback on a TLS connection: ciphertext in, requests out. */
void wv__srv_tls_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
/* Decrypts and parses what is buffered, as far as the connection allows. */
void wv__srv_tls_input(conn_t *c);
/*
 * Encrypts bufs and queues the ciphertext; cb(orig, status) runs when it is
 * written (as for uv_write). 0, or < 0 with nothing queued and cb not called.
 */
int wv__srv_tls_write(conn_t *c, uv_write_t *orig, const uv_buf_t *bufs, unsigned nbufs,
                      uv_write_cb cb);
/*
 * uv_try_write for TLS: encrypts bufs, writes what the socket takes and
 * queues the rest as a wr_t write. Returns the plaintext length (all of it
 * is taken) or < 0 (nothing sent; c is not closed).
 */
int wv__srv_tls_try_write(conn_t *c, const uv_buf_t *bufs, unsigned nbufs);
/* Encrypts p[0..n) and queues it as a wr_t write. 0, or < 0 with c closed. */
int wv__srv_tls_send(conn_t *c, const void *p, size_t n);

/* ---- server_parse.c ---- */

/* Sets up the llhttp callbacks once per process; before the first connection. */
void wv__srv_parse_init(void);
/* Starts c's parser (after wv__srv_parse_init). */
void wv__srv_conn_parser_init(conn_t *c);
/* Reads from c unless it is reading already or closing. */
void wv__srv_start_reading(conn_t *c);
/* Refuses c's request being received: answers status (ex->err_msg or the
 * usual message) with Connection: close. */
void wv__srv_conn_refuse(conn_t *c, int status);
/* Continues after a response was queued or the write queue drained. */
void wv__srv_conn_resume(conn_t *c);
/* Parses data until a request needs to wait; keeps what is left in c->in. */
void wv__srv_conn_feed(conn_t *c, const char *data, size_t len);
/* The socket read ended (nread < 0: EOF or an error). */
void wv__srv_conn_read_end(conn_t *c, ssize_t nread);

/* ---- server.c ---- */

/* Renews c's deadline: server.keepalive-timeout when c is idle between
 * requests, else server.idle-timeout (a body or a response in progress). */
void wv__srv_conn_refresh(conn_t *c);
/* Closes c (unlinked at once, freed in the close callback). No-op when closing. */
void wv__srv_conn_close(conn_t *c);

/* Counts ex's answer in /metrics (route class, status, time since its first byte) and
 * writes its access-log line. */
static inline void wv__srv_count(const exchange_t *ex) {
  if (!ex->t0)
    return;
  if (wv_metrics_enabled())
    wv_metrics_request(ex->req.path ? wv_metrics_route_class(ex->req.path, ex->match.route != NULL)
                                    : WV_METRICS_ROUTE_UNROUTED,
                       ex->resp.status, ex->t0);
  if (wv_accesslog_on()) {
    const wv_resp_t *r = &ex->resp;
    uint64_t bytes = ex->req.method == WV_M_HEAD ? 0 : r->fd >= 0 ? r->file_len : r->body_len;
    wv_accesslog_write(&ex->req, r->status, bytes, ex->rid, ex->t0);
  }
}

#endif
