/*
 * http/server.h — the HTTP/1.1 server: IO loops, connections, workers.
 *
 * wv_server_start() binds one SO_REUSEPORT listening socket per IO thread
 * and protocol — plain HTTP and/or HTTPS (each thread runs its own uv loop; a
 * connection stays on the loop that accepted it) and starts the worker pools. Requests are parsed
 * with llhttp, matched against the router, and run inline on the loop (WV_ROUTE_INLINE), on a
 * worker (the peer pool for /v2: http/server_peer.c), or parked (see http/http.h,
 * wv_req_complete()).
 *
 * Thread rules: new/start/shutdown/free are called from one thread (main);
 * the router and opts must not change after start. Handlers run on loop
 * threads or workers as their route says.
 */
#ifndef WV_SERVER_H
#define WV_SERVER_H

#include "core/config.h"
#include "http/router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *host;                /* address to bind, numeric IPv4 or IPv6 */
  int port;                        /* 0 = ephemeral (see wv_server_port()) */
  int io_threads;                  /* 0 = half the cores, at least 1 */
  int workers;                     /* 0 = 2 x cores, at least 4 */
  int registry_workers;            /* /v2 handlers (they wait on peers); 0 = 64 */
  int registry_workers_per_client; /* of those, per client address; 0 = a quarter, at least 1 */
  int64_t idle_timeout_ms;         /* a body or response making no progress */
  int64_t header_timeout_ms;       /* time allowed to receive a request head */
  int64_t shutdown_timeout_ms;     /* graceful drain before connections are cut */
  size_t max_header_bytes;         /* all header names + values (431) */
  int max_headers;                 /* header count (431) */
  size_t max_url_length;           /* request target (414) */
  size_t max_body_size;            /* default per-route body limit (413) */
  int max_connections;             /* per IO thread; clamped below RLIMIT_NOFILE at start */
  int max_conns_per_ip;         /* open connections per client address (503 past it); 0 = no cap */
  int64_t keepalive_timeout_ms; /* idle keep-alive connection between requests */
  size_t max_body_memory;       /* request bodies held, all connections (503 past it) */
  size_t min_body_rate;         /* body bytes/s over each window, else 408; 0 = off */
  int64_t body_rate_window_ms;  /* the window of min_body_rate (10 s) */
  size_t max_queued_jobs;       /* worker queue cap (503 past it); 0 = 64 per worker */
  bool plain;                   /* serve plain HTTP on port */
  const char *tls_cert;         /* PEM certificate + chain; with tls_key: HTTPS on tls_port */
  const char *tls_key;          /* PEM private key; NULL/"" (both) = no TLS */
  int tls_port;                 /* 0 = ephemeral (see wv_server_tls_port()) */
  void *app;                    /* handed to handlers as req->app */
} wv_server_opts_t;

typedef struct wv_server wv_server_t;

/*
 * Fills o from cfg (server.* keys; the defaults are the schema's, core/config_schema.c:
 * a test without a configuration file passes wv_config_defaults'). o's strings point into
 * cfg, which must outlive the server.
 */
void wv_server_opts_init(wv_server_opts_t *o, const wv_config_t *cfg);

/*
 * Creates a server (nothing bound yet). opts is copied (host too); router is
 * borrowed and must outlive the server. 0, WV_EINVAL or WV_ENOMEM.
 */
int wv_server_new(const wv_server_opts_t *opts, const wv_router_t *router, wv_server_t **out);
/*
 * Loads the TLS certificate and key (when set), binds every listener, then
 * starts IO threads and workers. On failure (WV_EIO: bind/listen refused;
 * WV_EINVAL/WV_EIO: certificate or key unusable; message logged) nothing is
 * left running.
 */
int wv_server_start(wv_server_t *s);
/* The bound port (useful with port 0), or -1 before start or without plain HTTP. */
int wv_server_port(const wv_server_t *s);
/* The bound TLS port, or -1 before start or without TLS. */
int wv_server_tls_port(const wv_server_t *s);
/*
 * Loads the TLS certificate and key again (SIGHUP). New connections use the
 * new pair; open ones keep theirs. On failure the current pair stays and the
 * reason is logged. 0, WV_EINVAL (TLS is off) or the load error. Main thread.
 */
int wv_server_tls_reload(wv_server_t *s);
/* IO thread and worker counts after defaults were applied. */
int wv_server_io_threads(const wv_server_t *s);
int wv_server_workers(const wv_server_t *s);
/* Bytes request bodies hold of server.max-body-memory now. Any thread. */
uint64_t wv_server_body_memory(wv_server_t *s);
/* server.max-connections per IO thread after the descriptor clamp (valid after start). */
int wv_server_max_connections(const wv_server_t *s);
/*
 * Graceful stop, blocking: closes listeners, closes idle keep-alive
 * connections, lets in-flight requests finish (responses then carry
 * Connection: close) for up to shutdown_timeout_ms, then cuts what is left,
 * joins the IO threads and stops the workers. Jobs still queued are dropped.
 * Parked requests whose client is gone are dropped when completed; a parker
 * must complete (or abandon) its requests before wv_server_free().
 */
void wv_server_shutdown(wv_server_t *s);
/* Shuts down if needed and frees. NULL is a no-op. */
void wv_server_free(wv_server_t *s);

#endif
