/* Tests for http/client against a tiny scripted HTTP server on 127.0.0.1. */
#include "core/err.h"
#include "http/client.h"
#include "tests/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_fd;
static int port;

/* Answers by path: /ok, /big, /redirect, /slow (never answers), /echo-auth. */
static int served; /* requests read by the server (atomic) */

static void serve_one(int fd) {
  __atomic_add_fetch(&served, 1, __ATOMIC_SEQ_CST);
  char req[8192];
  ssize_t n = 0, r;
  while (n < (ssize_t)sizeof req - 1 && (r = read(fd, req + n, sizeof req - 1 - (size_t)n)) > 0) {
    n += r;
    req[n] = '\0';
    if (strstr(req, "\r\n\r\n"))
      break;
  }
  req[n > 0 ? n : 0] = '\0';
  char path[256] = "";
  sscanf(req, "%*s %255s", path);
  char out[300000];
  int len;
  if (strcmp(path, "/ok") == 0) {
    len = snprintf(out, sizeof out,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Test: yes\r\n"
                   "Content-Length: 5\r\n\r\nhello");
  } else if (strcmp(path, "/big") == 0) {
    len = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n");
    memset(out + len, 'x', 200000);
    len += 200000;
  } else if (strcmp(path, "/redirect") == 0) {
    len = snprintf(out, sizeof out,
                   "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:1/elsewhere\r\n"
                   "Content-Length: 0\r\n\r\n");
  } else if (strcmp(path, "/slow") == 0) {
    usleep(500000);
    close(fd);
    return;
  } else if (strcmp(path, "/echo-auth") == 0) {
    const char *a = strstr(req, "Authorization: ");
    char val[200] = "none";
    if (a)
      sscanf(a + 15, "%199[^\r]", val);
    len = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(val),
                   val);
  } else {
    len = snprintf(out, sizeof out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  }
  for (ssize_t off = 0; off < len && (r = write(fd, out + off, (size_t)(len - off))) > 0;)
    off += r;
  close(fd);
}

static void *server_main(void *arg) {
  for (;;) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
      return NULL;
    serve_one(fd);
  }
}

static void start_server(void) {
  if (port)
    return;
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  bind(listen_fd, (struct sockaddr *)&a, sizeof a);
  listen(listen_fd, 16);
  getsockname(listen_fd, (struct sockaddr *)&a, &len);
  port = ntohs(a.sin_port);
  pthread_t t;
  pthread_create(&t, NULL, server_main, NULL);
  pthread_detach(t);
  wv_http_global_init();
}

static int get(const char *path, const char *method, size_t max, int64_t timeout,
               wv_http_resp_t *resp, const char *const *headers) {
  char url[128], err[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  wv_http_req_t req = {
      .method = method, .url = url, .max_body = max, .timeout_ms = timeout, .headers = headers};
  wv_http_resp_init(resp);
  return wv_http_do(wv_http_client_get(), &req, resp, err, sizeof err);
}

TEST(get_ok) {
  start_server();
  wv_http_resp_t r;
  CHECK_OK(get("/ok", NULL, 0, 0, &r, NULL));
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_STR(r.body.data, "hello");
  CHECK_EQ_STR(wv_http_resp_header(&r, "x-test"), "yes");
  CHECK(wv_http_resp_header(&r, "missing") == NULL);
  wv_http_resp_free(&r);
}

TEST(body_cap) {
  start_server();
  wv_http_resp_t r;
  CHECK_EQ_INT(get("/big", NULL, 1000, 0, &r, NULL), WV_ETOOBIG);
  wv_http_resp_free(&r);
  CHECK_OK(get("/big", NULL, 300000, 0, &r, NULL));
  CHECK_EQ_INT(r.body.len, 200000);
  wv_http_resp_free(&r);
}

TEST(redirect_not_followed) {
  start_server();
  wv_http_resp_t r;
  CHECK_OK(get("/redirect", NULL, 0, 0, &r, NULL));
  CHECK_EQ_INT(r.status, 307);
  CHECK_EQ_STR(wv_http_resp_header(&r, "Location"), "http://127.0.0.1:1/elsewhere");
  wv_http_resp_free(&r);
}

TEST(head_and_headers) {
  start_server();
  wv_http_resp_t r;
  const char *const hdrs[] = {"Authorization: Basic dTpw", NULL};
  CHECK_OK(get("/echo-auth", NULL, 0, 0, &r, hdrs));
  CHECK_EQ_STR(r.body.data, "Basic dTpw");
  wv_http_resp_free(&r);
  CHECK_OK(get("/ok", "HEAD", 0, 0, &r, NULL));
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body.len, 0);
  wv_http_resp_free(&r);
}

TEST(timeout_and_refused) {
  start_server();
  wv_http_resp_t r;
  CHECK_EQ_INT(get("/slow", NULL, 0, 200, &r, NULL), WV_ETIMEOUT);
  wv_http_resp_free(&r);
  char err[256];
  wv_http_req_t req = {.url = "http://127.0.0.1:1/", .timeout_ms = 2000};
  wv_http_resp_init(&r);
  CHECK_EQ_INT(wv_http_do(wv_http_client_get(), &req, &r, err, sizeof err), WV_EUPSTREAM);
  CHECK_HAS(err, "127.0.0.1:1");
  wv_http_resp_free(&r);
  /* Schemes other than http(s) are refused outright. */
  req.url = "file:///etc/passwd";
  wv_http_resp_init(&r);
  CHECK_EQ_INT(wv_http_do(wv_http_client_get(), &req, &r, err, sizeof err), WV_EUPSTREAM);
  wv_http_resp_free(&r);
}

/* GET url under the SSRF policy allow/allow_private; the server's request count is in *seen. */
static int get_checked(const char *url, const char *allow, bool allow_private, wv_http_resp_t *r,
                       char *err, size_t errlen, int *seen) {
  wv_netpolicy_t *p;
  int rc = wv_netpolicy_new(allow, allow_private, &p, err, errlen);
  if (rc)
    return rc;
  int before = __atomic_load_n(&served, __ATOMIC_SEQ_CST);
  wv_http_req_t req = {.url = url, .policy = p, .timeout_ms = 5000};
  wv_http_resp_init(r);
  rc = wv_http_do(wv_http_client_get(), &req, r, err, errlen);
  *seen = __atomic_load_n(&served, __ATOMIC_SEQ_CST) - before;
  wv_netpolicy_free(p);
  return rc;
}

/* Loopback is denied before anything is sent, also when a pooled connection to it exists, and
 * allow-private does not open it. */
TEST(ssrf_loopback_denied) {
  start_server();
  char url[160], err[512];
  int seen;
  wv_http_resp_t r;
  /* A connection to the server is pooled first: a denied request must not ride on it. */
  CHECK_OK(get("/ok", NULL, 0, 0, &r, NULL));
  wv_http_resp_free(&r);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
  CHECK_EQ_INT(get_checked(url, "", false, &r, err, sizeof err, &seen), WV_EDENIED);
  CHECK_EQ_STR(err, "127.0.0.1 is a loopback address, which wave.security.outbound does not allow");
  CHECK_EQ_INT(seen, 0); /* nothing was sent */
  wv_http_resp_free(&r);
  /* allow-private does not open loopback. */
  CHECK_EQ_INT(get_checked(url, "", true, &r, err, sizeof err, &seen), WV_EDENIED);
  wv_http_resp_free(&r);
}

/* Listed: fetched, from the checked address. */
TEST(ssrf_listed_address_fetched) {
  start_server();
  char url[160], err[512];
  int seen;
  wv_http_resp_t r;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
  CHECK_OK(get_checked(url, "127.0.0.1/32", false, &r, err, sizeof err, &seen));
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_STR(r.body.data, "hello");
  CHECK_EQ_INT(seen, 1);
  wv_http_resp_free(&r);
}

/* Other spellings of loopback are loopback. */
TEST(ssrf_loopback_spellings_denied) {
  start_server();
  char url[160], err[512];
  int seen;
  wv_http_resp_t r;
  const char *aliases[] = {"http://[::ffff:127.0.0.1]:%d/ok",
                           "http://127.1:%d/ok",
                           "http://2130706433:%d/ok",
                           "http://0x7f.0.0.1:%d/ok",
                           "http://localhost:%d/ok",
                           "http://LocalHost:%d/ok",
                           "http://0.0.0.0:%d/ok",
                           "http://[::]:%d/ok"};
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
    snprintf(url, sizeof url, aliases[i], port);
    int rc = get_checked(url, "", false, &r, err, sizeof err, &seen);
    if (rc != WV_EDENIED || seen)
      fprintf(stderr, "  %s: rc=%d seen=%d %s\n", url, rc, seen, err);
    CHECK_EQ_INT(rc, WV_EDENIED);
    CHECK_EQ_INT(seen, 0);
    wv_http_resp_free(&r);
  }
}

/* A host name on the allow list is connected to as usual; a name that resolves to allowed
 * addresses only is pinned to them. */
TEST(ssrf_allowed_names_connect) {
  start_server();
  char url[160], err[512];
  int seen;
  wv_http_resp_t r;
  snprintf(url, sizeof url, "http://localhost:%d/ok", port);
  CHECK_OK(get_checked(url, "files.example,localhost", false, &r, err, sizeof err, &seen));
  CHECK_EQ_INT(r.status, 200);
  wv_http_resp_free(&r);
  CHECK_OK(get_checked(url, "127.0.0.0/8,::1", false, &r, err, sizeof err, &seen));
  CHECK_EQ_INT(r.status, 200);
  wv_http_resp_free(&r);
}

/* Redirects are answered, never followed, under a policy too. */
TEST(ssrf_redirect_not_followed) {
  start_server();
  char url[160], err[512];
  int seen;
  wv_http_resp_t r;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/redirect", port);
  CHECK_OK(get_checked(url, "127.0.0.1", false, &r, err, sizeof err, &seen));
  CHECK_EQ_INT(r.status, 307);
  CHECK_EQ_INT(seen, 1);
  wv_http_resp_free(&r);
}

/* Not an http(s) URL, or a host that does not resolve: an upstream error naming it. */
TEST(ssrf_bad_url_and_unknown_host) {
  start_server();
  char err[512];
  int seen;
  wv_http_resp_t r;
  CHECK_EQ_INT(get_checked("file:///etc/passwd", "", false, &r, err, sizeof err, &seen),
               WV_EUPSTREAM);
  CHECK_HAS(err, "not a valid http(s) URL");
  wv_http_resp_free(&r);
  CHECK_EQ_INT(get_checked("http://no-such-host.invalid/x", "", false, &r, err, sizeof err, &seen),
               WV_EUPSTREAM);
  CHECK_HAS(err, "cannot resolve host 'no-such-host.invalid'");
  wv_http_resp_free(&r);
}

static size_t streamed;
static int count_cb(void *arg, const char *d, size_t n) {
  streamed += n;
  return streamed > (size_t)(long)arg;
}

TEST(streaming) {
  start_server();
  char url[128], err[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/big", port);
  wv_http_resp_t r;
  wv_http_req_t req = {
      .url = url, .max_body = 10, .body_cb = count_cb, .body_arg = (void *)1000000L};
  wv_http_resp_init(&r);
  streamed = 0;
  CHECK_OK(wv_http_do(wv_http_client_get(), &req, &r, err, sizeof err));
  CHECK_EQ_INT(streamed, 200000); /* the cap applies to buffering, not streams */
  wv_http_resp_free(&r);
  req.body_arg = (void *)1000L; /* receiver gives up */
  wv_http_resp_init(&r);
  streamed = 0;
  CHECK_EQ_INT(wv_http_do(wv_http_client_get(), &req, &r, err, sizeof err), WV_ECLOSED);
  wv_http_resp_free(&r);
  wv_http_global_cleanup();
}

WV_TESTS(T(get_ok), T(body_cap), T(redirect_not_followed), T(head_and_headers),
         T(timeout_and_refused), T(ssrf_loopback_denied), T(ssrf_listed_address_fetched),
         T(ssrf_loopback_spellings_denied), T(ssrf_allowed_names_connect),
         T(ssrf_redirect_not_followed), T(ssrf_bad_url_and_unknown_host), T(streaming))
