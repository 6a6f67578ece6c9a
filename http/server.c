/*
 * http/server.c — IO loops, listeners, accepting and closing connections,
 * timeouts, start and shutdown. The essay below covers the whole server; its
 * other parts are listed in http/server_int.h.
 *
 * DESIGN
 *
 * Threads. Each IO thread owns one uv loop, its SO_REUSEPORT listeners (plain
 * HTTP, HTTPS: server_tls.c) and every connection it accepted; nothing else
 * touches them. Workers (http/pool)
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
#include "http/server_int.h"
#include "core/siphash.h"
#include "core/err.h"
#include "core/log.h"
#include "http/tls.h"
#include "core/timefmt.h"

#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------- options ---------- */

void wv_server_opts_init(wv_server_opts_t *o, const wv_config_t *cfg) {
  memset(o, 0, sizeof *o);
  o->host = cfg->server_host;
  o->port = cfg->server_port;
  o->io_threads = cfg->io_threads;
  o->workers = cfg->workers;
  o->registry_workers = cfg->registry_workers;
  o->registry_workers_per_client = cfg->registry_workers_per_client;
  o->idle_timeout_ms = cfg->idle_timeout_ms;
  o->header_timeout_ms = cfg->header_timeout_ms;
  o->shutdown_timeout_ms = cfg->shutdown_timeout_ms;
  o->max_header_bytes = (size_t)cfg->max_header_bytes;
  o->max_headers = cfg->max_headers;
  o->max_url_length = (size_t)cfg->max_url_length;
  o->max_body_size = (size_t)cfg->max_body_size;
  o->max_connections = cfg->max_connections;
  o->max_conns_per_ip = cfg->max_conns_per_ip;
  o->keepalive_timeout_ms = cfg->keepalive_timeout_ms;
  o->max_body_memory = (size_t)cfg->max_body_memory;
  o->min_body_rate = (size_t)cfg->min_body_rate;
  o->body_rate_window_ms = 10000; /* not configurable: the window min-body-rate is measured over */
  o->max_queued_jobs = (size_t)cfg->worker_queue;
  o->plain = cfg->server_plain;
  o->tls_cert = cfg->tls_cert;
  o->tls_key = cfg->tls_key;
  o->tls_port = cfg->tls_port;
}

/* ---------- connections per client address ---------- */

static size_t ip_hash(const char *ip) { return (size_t)wv_str_hash(ip); }

/* The slot of ip in the table, or the empty slot where it would go. ip_mu held. */
static size_t ip_find(wv_server_t *s, const char *ip) {
  size_t i = ip_hash(ip) & (s->ipcap - 1);
  while (s->ips[i].n && strcmp(s->ips[i].ip, ip) != 0)
    i = (i + 1) & (s->ipcap - 1);
  return i;
}

/* Counts a new connection from c->ip; false when the address is at its cap. */
static bool ip_take(wv_server_t *s, conn_t *c) {
  if (!s->o.max_conns_per_ip || !c->ip[0])
    return true;
  pthread_mutex_lock(&s->ip_mu);
  size_t i = ip_find(s, c->ip);
  bool ok = s->ips[i].n < s->o.max_conns_per_ip;
  if (ok && !s->ips[i].n++)
    memcpy(s->ips[i].ip, c->ip, sizeof c->ip);
  pthread_mutex_unlock(&s->ip_mu);
  c->ip_counted = ok;
  return ok;
}

/* Uncounts c; an address whose count drops to 0 leaves the table (backward
 * shift, so no probe chain is cut). */
static void ip_drop(wv_server_t *s, conn_t *c) {
  pthread_mutex_lock(&s->ip_mu);
  size_t mask = s->ipcap - 1, i = ip_find(s, c->ip);
  if (s->ips[i].n && --s->ips[i].n == 0) {
    for (size_t j = (i + 1) & mask; s->ips[j].n; j = (j + 1) & mask) {
      size_t home = ip_hash(s->ips[j].ip) & mask;
      /* j may move to i unless its home lies cyclically in (i, j]. */
      if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
        s->ips[i] = s->ips[j];
        s->ips[j].n = 0;
        i = j;
      }
    }
  }
  pthread_mutex_unlock(&s->ip_mu);
}

/* ---------- connections ---------- */

static void loop_check_done(loop_t *l);

static bool conn_idle(const conn_t *c) {
  return !c->busy && !c->in_message && !c->writes && !c->fs && !c->in;
}

void wv__srv_conn_refresh(conn_t *c) {
  const wv_server_opts_t *o = &c->loop->srv->o;
  c->deadline = uv_now(&c->loop->uv) +
                (uint64_t)(conn_idle(c) ? o->keepalive_timeout_ms : o->idle_timeout_ms);
}

static void close_cb(uv_handle_t *h) {
  conn_t *c = h->data;
  loop_t *l = c->loop;
  l->nconns--;
  wv_metrics_add(WV_METRICS_CONN_CLOSED, 1);
  if (c->ip_counted)
    ip_drop(l->srv, c);
  if (c->tls)
    wv__srv_tls_conn_free(c);
  free(c->in);
  wv__srv_ex_free(c->ex);
  c->ex = NULL;
  free(c);
  loop_check_done(l);
}

void wv__srv_conn_close(conn_t *c) {
  if (c->closing)
    return;
  loop_t *l = c->loop;
  c->closing = true;
  c->reading = false;
  if (c->sx) { /* a worker may be blocked writing to us */
    wv__srv_stream_fail(c->sx->stream);
    c->sx = NULL;
  }
  if (c->fs) { /* nothing of it is in flight: end it now */
    wv__srv_fs_release(c->fs);
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
  /* Atomic: a registry worker reads it to skip a waiting request whose client left
   * (server_peer.c); the loop's own reads stay plain. */
  __atomic_add_fetch(&l->slots[c->slot].gen, 1, __ATOMIC_RELAXED);
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

/* Accepts a connection on a listener; NULL when refused (closed). */
static conn_t *conn_accept(uv_stream_t *server, int status) {
  loop_t *l = server->data;
  if (status < 0)
    return NULL;
  conn_t *c = calloc(1, sizeof *c);
  if (!c || uv_tcp_init(&l->uv, &c->tcp)) {
    free(c);
    return NULL;
  }
  c->tcp.data = c;
  c->loop = l;
  l->nconns++;
  wv_metrics_add(WV_METRICS_CONN_OPENED, 1);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) || l->nfree == 0 || l->draining) {
    /* Over max-connections: accept and close at once, so the backlog drains. */
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, close_cb);
    return NULL;
  }
  c->slot = l->free_slots[--l->nfree];
  l->slots[c->slot].conn = c;
  c->next = l->conns;
  if (l->conns)
    l->conns->prev = c;
  l->conns = c;
  uv_tcp_nodelay(&c->tcp, 1);
  peer_ip(c);
  /* Like nginx's limit_conn: the connection over the cap is kept until its
   * request head arrives, which is answered 503 with Connection: close. */
  c->over_ip_cap = !ip_take(l->srv, c);
  wv__srv_conn_parser_init(c);
  /* Also the TLS handshake's deadline. */
  c->deadline = uv_now(&l->uv) + (uint64_t)l->srv->o.header_timeout_ms;
  return c;
}

static void on_connection(uv_stream_t *server, int status) {
  conn_t *c = conn_accept(server, status);
  if (c)
    wv__srv_start_reading(c);
}

static void on_tls_connection(uv_stream_t *server, int status) {
  conn_t *c = conn_accept(server, status);
  if (!c)
    return;
  if (wv__srv_tls_conn_init(c)) {
    wv__srv_conn_close(c);
    return;
  }
  wv__srv_start_reading(c);
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
      wv__srv_stream_service(l, ex, ex->pfinal);
      ex = next;
      continue;
    }
    conn_t *c = l->slots[ex->slot].gen == ex->gen ? l->slots[ex->slot].conn : NULL;
    WV_TRACE_AT(ex->req.trace, WV_TRACE_LOOP);
    if (!c || !c->busy) {
      wv__srv_ex_free(ex); /* the client went away meanwhile */
    } else {
      c->busy = false;
      wv__srv_conn_respond(c, ex);
      wv__srv_conn_resume(c);
    }
    ex = next;
  }
}

/*
 * A body being received must bring server.min-body-rate bytes per second
 * over each window, or its request is answered 408 and the connection
 * closed: a body that trickles no longer holds its memory (and a share of
 * server.max-body-memory) until the idle timeout.
 */
static bool body_too_slow(conn_t *c, uint64_t now) {
  const wv_server_opts_t *o = &c->loop->srv->o;
  if (!o->min_body_rate || !c->in_message || !c->ex || !c->ex->in_trailers || c->linger ||
      now - c->rate_start < (uint64_t)o->body_rate_window_ms)
    return false;
  if (c->rate_bytes * 1000 < (uint64_t)o->min_body_rate * (now - c->rate_start))
    return true;
  c->rate_start = now;
  c->rate_bytes = 0;
  return false;
}

static void sweep_cb(uv_timer_t *t) {
  loop_t *l = t->data;
  uint64_t now = uv_now(&l->uv);
  wv_accesslog_flush(0); /* this loop's lines wait at most one tick (<= 1 s) */
  for (conn_t *c = l->conns, *next; c; c = next) {
    next = c->next;
    if (c->deadline && now >= c->deadline)
      wv__srv_conn_close(c);
    else if (body_too_slow(c, now))
      wv__srv_conn_refuse(c, 408);
  }
}

static void handle_close_noop(uv_handle_t *h) { (void)h; }

static void close_listeners(loop_t *l) {
  if (l->listener_closed)
    return;
  l->listener_closed = true;
  if (l->has_plain)
    uv_close((uv_handle_t *)&l->listener, handle_close_noop);
  if (l->has_tls)
    uv_close((uv_handle_t *)&l->tls_listener, handle_close_noop);
}

static void loop_check_done(loop_t *l) {
  if (!l->draining || l->nconns > 0 || l->stopping)
    return;
  l->stopping = true;
  pthread_mutex_lock(&l->done_mu);
  l->closed = true;
  pthread_mutex_unlock(&l->done_mu);
  /* No pusher links any more; one between its link and its uv_async_send finishes first. */
  while (atomic_load(&l->senders) > 0)
    sched_yield();
  uv_close((uv_handle_t *)&l->done_async, handle_close_noop);
  uv_close((uv_handle_t *)&l->ctl_async, handle_close_noop);
  uv_close((uv_handle_t *)&l->sweep, handle_close_noop);
  close_listeners(l);
}

static void ctl_cb(uv_async_t *a) {
  loop_t *l = a->data;
  int req = atomic_load(&l->stop_req);
  if (req == 0 || l->stopping)
    return;
  l->draining = true;
  close_listeners(l);
  for (conn_t *c = l->conns, *next; c; c = next) {
    next = c->next;
    if (req == 2 || conn_idle(c))
      wv__srv_conn_close(c);
    else if (!c->busy && !c->in_message)
      c->linger = true; /* close once its response is out */
  }
  loop_check_done(l);
}

static void *loop_main(void *arg) {
  loop_t *l = arg;
  uv_run(&l->uv, UV_RUN_DEFAULT);
  wv_accesslog_flush(0);
  /* Exchanges that came back after the last connection closed. A stream
   * whose handler still runs is the worker's: it frees it at its end. */
  exchange_t *ex = done_take(l);
  while (ex) {
    exchange_t *next = ex->pnext;
    if (ex->stream && !ex->pfinal)
      wv__srv_stream_fail(ex->stream);
    else
      wv__srv_ex_free(ex);
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

/* Binds and listens on one of l's listeners; *port is set from loop 0's. */
static int loop_listen(loop_t *l, uv_tcp_t *h, int *port, uv_connection_cb cb) {
  wv_server_t *s = l->srv;
  uv_tcp_init(&l->uv, h);
  h->data = l;
  int fd, bound = *port;
  int rc = make_listener(s->host, *port, &fd, &bound);
  if (rc)
    return rc;
  if (uv_tcp_open(h, fd)) {
    close(fd);
    wv_error("cannot listen on %s:%d", s->host, *port);
    return WV_EIO;
  }
  if (uv_listen((uv_stream_t *)h, LISTEN_BACKLOG, cb)) {
    wv_error("cannot listen on %s:%d", s->host, *port);
    return WV_EIO;
  }
  *port = bound;
  return 0;
}

static int loop_init_tls(loop_t *l) {
  l->tls_plain = malloc(TLS_PLAIN_SIZE);
  l->tls_file = malloc(TLS_FILE_CHUNK);
  wv_buf_init(&l->tls_out, TLS_OUT_MAX);
  return l->tls_plain && l->tls_file ? 0 : WV_ENOMEM;
}

static int loop_init(wv_server_t *s, loop_t *l, int idx) {
  l->srv = s;
  l->idx = idx;
  /* Request ids: the loop in the top byte, then the start time, then a count. */
  l->rid_seq = ((uint64_t)(idx & 0xff) << 56) | (((uint64_t)wv_now_ms() & 0xffffff) << 32);
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
  tick = s->o.keepalive_timeout_ms < tick ? s->o.keepalive_timeout_ms : tick;
  tick = s->o.body_rate_window_ms < tick ? s->o.body_rate_window_ms : tick;
  tick /= 4;
  tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
  uv_timer_start(&l->sweep, sweep_cb, (uint64_t)tick, (uint64_t)tick);
  int rc = 0;
  if (s->o.plain) {
    int port = idx == 0 ? s->o.port : s->port;
    l->has_plain = true;
    rc = loop_listen(l, &l->listener, &port, on_connection);
    if (!rc && idx == 0)
      s->port = port;
  }
  if (!rc && s->tls_ctx) {
    int port = idx == 0 ? s->o.tls_port : s->tls_port;
    l->has_tls = true;
    rc = loop_init_tls(l);
    rc = rc ? rc : loop_listen(l, &l->tls_listener, &port, on_tls_connection);
    if (!rc && idx == 0)
      s->tls_port = port;
  }
  return rc;
}

int wv_server_new(const wv_server_opts_t *opts, const wv_router_t *router, wv_server_t **out) {
  if (!opts->host || opts->port < 0 || opts->port > 65535 || opts->tls_port < 0 ||
      opts->tls_port > 65535 || opts->max_connections < 1 || opts->max_headers < 1 ||
      opts->max_conns_per_ip < 0 || opts->keepalive_timeout_ms < 1 || opts->body_rate_window_ms < 1)
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
  /* One body of the largest allowed size always fits when alone. */
  if (s->o.max_body_memory < s->o.max_body_size)
    s->o.max_body_memory = s->o.max_body_size;
  int cores = (int)uv_available_parallelism();
  /* Half the cores by default: the other half runs the workers, the store
   * committer and the builders. On 2 cores two loops plus two busy client or
   * builder threads are more runnable threads than cores, and a request then
   * waits up to two 4 ms scheduler ticks (docs/benchmarks.md, p99). */
  s->nloops = s->o.io_threads > 0 ? s->o.io_threads : (cores / 2 > 1 ? cores / 2 : 1);
  s->nworkers = s->o.workers > 0 ? s->o.workers : (2 * cores < 4 ? 4 : 2 * cores);
  s->o.io_threads = s->nloops;
  s->o.workers = s->nworkers;
  s->npeer = s->o.registry_workers > 0 ? s->o.registry_workers : 64;
  s->o.registry_workers = s->npeer;
  if (s->o.registry_workers_per_client <= 0)
    s->o.registry_workers_per_client = s->npeer / 4 > 1 ? s->npeer / 4 : 1;
  if (s->o.registry_workers_per_client > s->npeer) /* one address never holds them all */
    s->o.registry_workers_per_client = s->npeer > 1 ? s->npeer - 1 : 1;
  if (!s->o.max_queued_jobs)
    s->o.max_queued_jobs = (size_t)64 * (size_t)s->nworkers;
  s->router = router;
  s->port = -1;
  s->tls_port = -1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->tls_mu, NULL);
  pthread_mutex_init(&s->ip_mu, NULL);
  pthread_mutex_init(&s->peer_mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  wv__srv_parse_init();
  *out = s;
  return 0;
}

static void walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

static bool tls_wanted(const wv_server_opts_t *o) {
  return (o->tls_cert && *o->tls_cert) || (o->tls_key && *o->tls_key);
}

/* Loads the TLS context when TLS is configured; refuses a server with no listener. */
static int tls_setup(wv_server_t *s) {
  if (!tls_wanted(&s->o)) {
    if (s->o.plain)
      return 0;
    wv_error("server.plain is false but server.tls.cert and server.tls.key are not set: "
             "nothing to listen on");
    return WV_EINVAL;
  }
  char why[512], desc[384];
  int rc = wv_tls_ctx_new(s->o.tls_cert, s->o.tls_key, &s->tls_ctx, why, sizeof why);
  if (rc) {
    wv_error("%s", why);
    return rc;
  }
  wv_tls_ctx_describe(s->tls_ctx, desc, sizeof desc);
  wv_info("TLS certificate %s: %s", s->o.tls_cert, desc);
  return 0;
}

int wv_server_tls_reload(wv_server_t *s) {
  if (!s->tls_ctx)
    return WV_EINVAL;
  char why[512], desc[384];
  SSL_CTX *ctx;
  int rc = wv_tls_ctx_new(s->o.tls_cert, s->o.tls_key, &ctx, why, sizeof why);
  if (rc) {
    wv_error("TLS reload failed, keeping the current certificate: %s", why);
    return rc;
  }
  pthread_mutex_lock(&s->tls_mu);
  SSL_CTX *old = s->tls_ctx;
  s->tls_ctx = ctx;
  pthread_mutex_unlock(&s->tls_mu);
  SSL_CTX_free(old); /* open connections hold their own references */
  wv_tls_ctx_describe(ctx, desc, sizeof desc);
  wv_info("TLS certificate reloaded from %s: %s", s->o.tls_cert, desc);
  return 0;
}

/*
 * Raises RLIMIT_NOFILE to its hard limit and clamps max-connections so that
 * the connections of all loops leave a quarter of the descriptors (at least
 * 256) to blob files, file sends (a dup each), upstream sockets, the store
 * and job pipes. Then sizes the per-address table.
 */
static int fd_budget(wv_server_t *s) {
  struct rlimit rl;
  uint64_t lim = 1024, hard = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rlim_t cur = rl.rlim_cur;
      rl.rlim_cur = rl.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &rl))
        rl.rlim_cur = cur;
    }
    lim = rl.rlim_cur == RLIM_INFINITY ? (uint64_t)1 << 20 : (uint64_t)rl.rlim_cur;
    hard = rl.rlim_max == RLIM_INFINITY ? (uint64_t)1 << 20 : (uint64_t)rl.rlim_max;
  }
  uint64_t keep = lim / 4 < 256 ? 256 : lim / 4;
  uint64_t per = lim > keep ? (lim - keep) / (uint64_t)s->nloops : 1;
  int configured = s->o.max_connections;
  if ((uint64_t)s->o.max_connections > per)
    s->o.max_connections = per ? (int)per : 1;
  wv_info("file descriptors: limit %llu (hard %llu), %llu kept for files, upstreams and jobs; "
          "server.max-connections %d per io thread x %d (configured %d)",
          (unsigned long long)lim, (unsigned long long)hard, (unsigned long long)keep,
          s->o.max_connections, s->nloops, configured);
  size_t total = (size_t)s->o.max_connections * (size_t)s->nloops;
  for (s->ipcap = 16; s->ipcap < 2 * total; s->ipcap *= 2)
    ;
  s->ips = calloc(s->ipcap, sizeof *s->ips);
  return s->ips ? 0 : WV_ENOMEM;
}

int wv_server_start(wv_server_t *s) {
  if (s->started)
    return WV_EINVAL;
  int rc = s->tls_ctx ? 0 : tls_setup(s);
  if (!rc && !s->ips)
    rc = fd_budget(s);
  if (rc)
    return rc;
  s->loops = calloc((size_t)s->nloops, sizeof *s->loops);
  if (!s->loops)
    return WV_ENOMEM;
  int i;
  for (i = 0; i < s->nloops && !rc; i++)
    rc = loop_init(s, &s->loops[i], i);
  /* Server threads take no signals: main's uv_signal handles them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  if (!rc)
    rc = wv_pool_new(s->nworkers, s->o.max_queued_jobs, &s->pool);
  if (!rc)
    rc = wv_pool_new(s->npeer, s->o.max_queued_jobs, &s->peer_pool);
  if (rc) {
    wv_pool_free(s->pool);
    s->pool = NULL;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (int j = 0; j < i; j++) {
      if (!s->loops[j].uv_inited)
        continue;
      uv_walk(&s->loops[j].uv, walk_close, NULL);
      uv_run(&s->loops[j].uv, UV_RUN_DEFAULT);
      uv_loop_close(&s->loops[j].uv);
    }
    s->port = -1;
    s->tls_port = -1;
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
int wv_server_tls_port(const wv_server_t *s) { return s->tls_port; }
int wv_server_io_threads(const wv_server_t *s) { return s->nloops; }
int wv_server_workers(const wv_server_t *s) { return s->nworkers; }
uint64_t wv_server_body_memory(wv_server_t *s) { return atomic_load(&s->body_mem); }
int wv_server_max_connections(const wv_server_t *s) { return s->o.max_connections; }

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
  struct timespec dl = wv_deadline_ts(CLOCK_REALTIME, s->o.shutdown_timeout_ms);
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
  wv_pool_stop(s->pool, wv__srv_job_cancel);
  wv_pool_stop(s->peer_pool, wv__srv_job_cancel);
}

void wv_server_free(wv_server_t *s) {
  if (!s)
    return;
  wv_server_shutdown(s);
  wv_pool_free(s->pool);
  wv_pool_free(s->peer_pool);
  wv__srv_peer_free(s);
  for (int i = 0; s->loops && i < s->nloops; i++) {
    loop_t *l = &s->loops[i];
    free(l->slots);
    free(l->free_slots);
    free(l->read_buf);
    free(l->tls_plain);
    free(l->tls_file);
    wv_buf_free(&l->tls_out);
    for (int j = 0; j < l->ntls_spare; j++)
      free(l->tls_spare[j].data);
    wv_buf_free(&l->scratch);
    pthread_mutex_destroy(&l->done_mu);
  }
  free(s->loops);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->tls_mu);
  pthread_mutex_destroy(&s->ip_mu);
  pthread_mutex_destroy(&s->peer_mu);
  free(s->ips);
  pthread_cond_destroy(&s->cv);
  SSL_CTX_free(s->tls_ctx);
  free(s->host);
  free(s);
}
