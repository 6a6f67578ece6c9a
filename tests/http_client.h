/*
 * tests/http_client.h — a tiny blocking HTTP/1.1 client over plain sockets
 * for the server tests (loopback only). Header-only: included by tests.
 */
#ifndef WV_TEST_HTTP_CLIENT_H
#define WV_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct {
  int fd;
  char buf[1 << 21];
  size_t len;
} tc_conn_t;

typedef struct {
  int status;
  char head[16384];
  char *body; /* malloc'd, NUL-terminated */
  size_t body_len;
  char value[1024]; /* last tc_header() result */
} tc_resp_t;

static inline int tc_connect_fd(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static inline tc_conn_t *tc_connect(int port) {
  int fd = tc_connect_fd(port);
  if (fd < 0)
    return NULL;
  tc_conn_t *c = calloc(1, sizeof *c);
  c->fd = fd;
  return c;
}

static inline void tc_close(tc_conn_t *c) {
  if (!c)
    return;
  close(c->fd);
  free(c);
}

static inline int tc_send(tc_conn_t *c, const char *data, size_t len) {
  while (len) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n <= 0)
      return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

static inline int tc_sends(tc_conn_t *c, const char *s) { return tc_send(c, s, strlen(s)); }

static inline int tc_fill(tc_conn_t *c) {
  if (c->len >= sizeof c->buf)
    return -1;
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
  if (n <= 0)
    return -1;
  c->len += (size_t)n;
  return 0;
}

static inline void tc_resp_free(tc_resp_t *r) {
  free(r->body);
  r->body = NULL;
}

/* Case-insensitive header value (copied into r->value) or NULL. */
static inline const char *tc_header(tc_resp_t *r, const char *name) {
  size_t nl = strlen(name);
  const char *p = strstr(r->head, "\r\n");
  while (p && p[2] != '\r') {
    p += 2;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      const char *e = strstr(v, "\r\n");
      size_t vl = (size_t)(e - v) < sizeof r->value - 1 ? (size_t)(e - v) : sizeof r->value - 1;
      memcpy(r->value, v, vl);
      r->value[vl] = '\0';
      return r->value;
    }
    p = strstr(p, "\r\n");
  }
  return NULL;
}

/* Reads one response (no body if head). 0, or -1 on EOF/timeout/garbage. */
static inline int tc_read(tc_conn_t *c, tc_resp_t *r, bool head) {
  memset(r, 0, sizeof *r - sizeof r->value);
  char *end;
  while (!(c->len && (end = memmem(c->buf, c->len, "\r\n\r\n", 4))))
    if (tc_fill(c))
      return -1;
  size_t hl = (size_t)(end - c->buf) + 4;
  if (hl >= sizeof r->head)
    return -1;
  memcpy(r->head, c->buf, hl);
  r->head[hl] = '\0';
  if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
    return -1;
  const char *cl = tc_header(r, "Content-Length");
  size_t blen = (head || !cl || r->status == 100) ? 0 : strtoul(cl, NULL, 10);
  while (c->len < hl + blen)
    if (tc_fill(c))
      return -1;
  r->body = malloc(blen + 1);
  memcpy(r->body, c->buf + hl, blen);
  r->body[blen] = '\0';
  r->body_len = blen;
  memmove(c->buf, c->buf + hl + blen, c->len - hl - blen);
  c->len -= hl + blen;
  return 0;
}

/* True if the peer closes (EOF or reset) within ms, with no more bytes. */
static inline bool tc_wait_closed(tc_conn_t *c, int ms) {
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  if (poll(&p, 1, ms) <= 0)
    return false;
  char b[256];
  ssize_t n = recv(c->fd, b, sizeof b, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* One request on a fresh connection; returns the status or -1. */
static inline int tc_request(int port, const char *raw, tc_resp_t *r, bool head) {
  tc_conn_t *c = tc_connect(port);
  if (!c)
    return -1;
  int rc = tc_sends(c, raw) == 0 && tc_read(c, r, head) == 0 ? r->status : -1;
  tc_close(c);
  return rc;
}

#endif
