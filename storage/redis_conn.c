/*
 * storage/redis_conn.c — hiredis connections, plain or TLS (storage/redis_conn_int.h).
 *
 * Why a pump thread: Debian 12 ships hiredis 0.14, which has no TLS
 * (hiredis_ssl came with 1.0). So for rediss:// waved makes the TLS
 * connection itself with OpenSSL (TCP connect and handshake bounded by the
 * timeout, certificate verified against state.redis.tls-ca or the system
 * store, host name or IP address checked), then gives hiredis one end of a
 * socketpair (redisConnectFd) and starts a small detached thread that copies
 * bytes both ways between the other end and the TLS connection. hiredis is
 * unchanged: blocking commands, timeouts (SO_RCVTIMEO on its end), and
 * redisFree, which closes its end: the pump sees EOF, sends close_notify,
 * frees the TLS connection and exits. When the TLS side fails (server gone,
 * bad record) the pump closes its end, so hiredis sees the connection closed
 * and the callers reconnect as for a plain connection.
 *
 * The cost: one thread (small stack) and two more file descriptors per Redis
 * connection, and one extra copy of every byte. Connections are pooled and
 * long-lived (state.redis.max-connections caps them), so this stays small.
 */
#include "storage/redis_conn_int.h"

#include "core/err.h"
#include "core/timefmt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PUMP_BUF 16384          /* bytes buffered per direction */
#define PUMP_STACK (256 * 1024) /* the pump's stack (OpenSSL needs some) */

/* A context that only carries an error (hiredis has no constructor for one). */
static redisContext *failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static redisContext *failed(const char *fmt, ...) {
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  redisContext *c = redisConnectFd(fd);
  if (!c) {
    close(fd);
    return NULL;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errstr, sizeof c->errstr, fmt, ap);
  va_end(ap);
  c->err = REDIS_ERR_IO;
  return c;
}

static int left_ms(int64_t deadline) {
  int64_t l = deadline - wv_mono_ms();
  return l < 0 ? 0 : (int)l;
}

/* A non-blocking TCP socket connected to host:port before deadline, or -1 with why. */
static int tcp_connect(const char *host, int port, int64_t deadline, char *why, size_t whylen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  char ps[8];
  snprintf(ps, sizeof ps, "%d", port);
  int e = getaddrinfo(host, ps, &hints, &ai);
  if (e) {
    snprintf(why, whylen, "%s", gai_strerror(e));
    return -1;
  }
  int fd = -1;
  snprintf(why, whylen, "no address");
  for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      snprintf(why, whylen, "%s", strerror(errno));
      continue;
    }
    int err = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, left_ms(deadline));
        socklen_t l = sizeof err;
        if (n == 0)
          err = ETIMEDOUT;
        else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
          err = errno;
      }
    }
    if (err) {
      snprintf(why, whylen, "%s", strerror(err));
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(ai);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  }
  return fd;
}

static void ssl_why(SSL *ssl, int ret, char *why, size_t whylen) {
  long vr = SSL_get_verify_result(ssl);
  unsigned long e = ERR_peek_last_error();
  if (vr != X509_V_OK)
    snprintf(why, whylen, "TLS: the server's certificate was refused: %s",
             X509_verify_cert_error_string(vr));
  else if (e)
    snprintf(why, whylen, "TLS handshake failed: %s", ERR_reason_error_string(e));
  else if (SSL_get_error(ssl, ret) == SSL_ERROR_SYSCALL)
    snprintf(why, whylen, "TLS handshake failed: %s",
             errno ? strerror(errno) : "the server closed the connection (not a TLS port?)");
  else
    snprintf(why, whylen, "TLS handshake failed");
  ERR_clear_error();
}

/* A TLS client on fd, handshaken before deadline, or NULL with why. */
static SSL *tls_connect(int fd, const char *host, const char *ca_file, int64_t deadline, char *why,
                        size_t whylen) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = NULL;
  if (!ctx) {
    snprintf(why, whylen, "TLS: out of memory");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  int ok = ca_file && ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    snprintf(why, whylen, "TLS: cannot load the CA certificates of state.redis.tls-ca (%s)",
             ca_file && ca_file[0] ? ca_file : "the system store");
    goto fail;
  }
  if (!(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, fd) != 1) {
    snprintf(why, whylen, "TLS: out of memory");
    goto fail;
  }
  unsigned char ip[16];
  if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
  } else {
    ok = SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1;
  }
  if (!ok) {
    snprintf(why, whylen, "TLS: cannot set the expected host name");
    goto fail;
  }
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(ssl);
    if (r == 1)
      break;
    int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      ssl_why(ssl, r, why, whylen);
      goto fail;
    }
    struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
    int n = poll(&p, 1, left_ms(deadline));
    if (n == 0) {
      snprintf(why, whylen, "TLS handshake timed out");
      goto fail;
    }
    if (n < 0 && errno != EINTR) {
      snprintf(why, whylen, "TLS handshake: %s", strerror(errno));
      goto fail;
    }
  }
  SSL_CTX_free(ctx); /* the SSL keeps its own reference */
  return ssl;
fail:
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return NULL;
}

typedef struct {
  SSL *ssl;
  int net; /* the TCP socket under ssl */
  int end; /* our end of the socketpair */
  unsigned char up[PUMP_BUF], down[PUMP_BUF];
} pump_t;

/* Copies bytes between p->end and p->ssl until either side closes or fails. */
static void *pump_main(void *arg) {
  pump_t *p = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL); /* no SIGPIPE here; signals go to other threads */
  size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
  bool hiredis_gone = false;
  for (;;) {
    bool progress = false;
    short net_ev = 0, end_ev = 0;
    if (down_len == 0) { /* TLS -> hiredis */
      ERR_clear_error();
      int n = SSL_read(p->ssl, p->down, sizeof p->down);
      if (n > 0) {
        down_len = (size_t)n, down_off = 0, progress = true;
      } else {
        int e = SSL_get_error(p->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
          net_ev |= POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
          net_ev |= POLLOUT;
        else
          break; /* closed or failed */
      }
    }
    if (down_len > 0) {
      ssize_t w = send(p->end, p->down + down_off, down_len - down_off, MSG_NOSIGNAL);
      if (w > 0) {
        down_off += (size_t)w, progress = true;
        if (down_off == down_len)
          down_len = down_off = 0;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        end_ev |= POLLOUT;
      } else {
        hiredis_gone = true;
        break;
      }
    }
    if (up_len == 0) { /* hiredis -> TLS */
      ssize_t r = recv(p->end, p->up, sizeof p->up, 0);
      if (r > 0) {
        up_len = (size_t)r, up_off = 0, progress = true;
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        end_ev |= POLLIN;
      } else {
        hiredis_gone = true; /* redisFree closed its end */
        break;
      }
    }
    if (up_len > 0) {
      ERR_clear_error();
      int n = SSL_write(p->ssl, p->up + up_off, (int)(up_len - up_off));
      if (n > 0) {
        up_off += (size_t)n, progress = true;
        if (up_off == up_len)
          up_len = up_off = 0;
      } else {
        int e = SSL_get_error(p->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
          net_ev |= POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
          net_ev |= POLLOUT;
        else
          break;
      }
    }
    if (progress || (down_len == 0 && SSL_pending(p->ssl) > 0))
      continue;
    struct pollfd fds[2] = {{.fd = p->net, .events = net_ev}, {.fd = p->end, .events = end_ev}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR)
      break;
    /* hiredis closed its end while we wait on Redis (a stalled server it timed out on): poll
     * reports the hang-up whatever was asked, so without this the loop would spin. */
    if (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL)) {
      hiredis_gone = true;
      break;
    }
  }
  if (hiredis_gone) {
    ERR_clear_error();
    SSL_shutdown(p->ssl); /* close_notify, best effort: the socket is non-blocking */
  }
  ERR_clear_error();
  SSL_free(p->ssl);
  close(p->net);
  close(p->end); /* hiredis, if still there, sees the connection closed */
  free(p);
  OPENSSL_thread_stop();
  return NULL;
}

redisContext *wv__redis_connect(const wv_redisurl_t *u, struct timeval tv, const char *ca_file) {
  if (!u->tls)
    return redisConnectWithTimeout(u->host, u->port, tv);
  int64_t deadline = wv_mono_ms() + (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
  char why[200];
  int net = tcp_connect(u->host, u->port, deadline, why, sizeof why);
  if (net < 0)
    return failed("%s", why);
  SSL *ssl = tls_connect(net, u->host, ca_file, deadline, why, sizeof why);
  if (!ssl) {
    close(net);
    return failed("%s", why);
  }
  int sp[2] = {-1, -1};
  pump_t *p = NULL;
  pthread_attr_t attr;
  bool attr_ok = false;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0 || !(p = calloc(1, sizeof *p)) ||
      fcntl(sp[1], F_SETFL, O_NONBLOCK) != 0 || pthread_attr_init(&attr) != 0)
    goto fail;
  attr_ok = true;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, PUMP_STACK);
  redisContext *c = redisConnectFd(sp[0]);
  if (!c)
    goto fail;
  *p = (pump_t){.ssl = ssl, .net = net, .end = sp[1]};
  pthread_t t;
  if (pthread_create(&t, &attr, pump_main, p) != 0) {
    redisFree(c); /* closes sp[0] */
    sp[0] = -1;
    goto fail;
  }
  pthread_attr_destroy(&attr);
  return c;
fail:
  if (attr_ok)
    pthread_attr_destroy(&attr);
  free(p);
  SSL_free(ssl);
  close(net);
  if (sp[0] >= 0)
    close(sp[0]);
  if (sp[1] >= 0)
    close(sp[1]);
  return failed("TLS: cannot start the connection's pump: %s", strerror(errno));
}

/* What an error reply to AUTH or SELECT means. */
static int handshake_err(const char *s, bool select) {
  if (strncmp(s, "NOAUTH", 6) == 0 || strncmp(s, "WRONGPASS", 9) == 0)
    return WV_EAUTH;
  if (strncmp(s, "LOADING", 7) == 0 || strncmp(s, "BUSY", 4) == 0 ||
      strncmp(s, "MASTERDOWN", 10) == 0 || strncmp(s, "TRYAGAIN", 8) == 0)
    return WV_EUNAVAIL;
  return select ? WV_EINVAL : WV_ESTORE;
}

int wv__redis_open(const wv_redisurl_t *u, struct timeval connect_tv, struct timeval cmd_tv,
                   const char *ca_file, redisContext **out, char *why, size_t whylen) {
  char scratch[8];
  if (!why)
    why = scratch, whylen = sizeof scratch;
  *why = '\0';
  redisContext *c = wv__redis_connect(u, connect_tv, ca_file);
  if (!c) {
    snprintf(why, whylen, "out of memory");
    return WV_ENOMEM;
  }
  if (c->err) {
    snprintf(why, whylen, "%s", c->errstr);
    redisFree(c);
    return WV_EUNAVAIL;
  }
  redisSetTimeout(c, cmd_tv);
  if (!u->tls)
    redisEnableKeepAlive(c);
  char db[16];
  snprintf(db, sizeof db, "%d", u->db);
  int n = 0, rc = 0;
  if (u->has_pass && (u->user[0] ? redisAppendCommand(c, "AUTH %s %s", u->user, u->pass)
                                 : redisAppendCommand(c, "AUTH %s", u->pass)) == REDIS_OK)
    n++;
  if (u->db && redisAppendCommand(c, "SELECT %s", db) == REDIS_OK)
    n++;
  if (n != (u->has_pass ? 1 : 0) + (u->db ? 1 : 0))
    rc = WV_ENOMEM;
  for (int i = 0; i < n && !rc; i++) {
    void *x = NULL;
    if (redisGetReply(c, &x) != REDIS_OK || !x) {
      snprintf(why, whylen, "%s",
               c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)
                   ? "timed out (state.redis.timeout)"
               : c->errstr[0] ? c->errstr
                              : "connection failed");
      rc = WV_EUNAVAIL;
      break;
    }
    redisReply *r = x;
    if (r->type == REDIS_REPLY_ERROR) {
      snprintf(why, whylen, "%s", r->str);
      rc = handshake_err(r->str, u->db && i == n - 1);
    }
    freeReplyObject(r);
  }
  if (rc) {
    redisFree(c);
    return rc;
  }
  *out = c;
  return 0;
}
