/*
 * End-to-end: the real waved binary ($WAVED_BIN) on a free loopback port with
 * a temporary config and data dir, driven with plain sockets.
 */
#include "tests/http_client.h"
#include "tests/runner.h"
#include "version.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

typedef struct {
  pid_t pid;
  int port;
  char dir[64];
  char log[128];
} waved_t;

static waved_t shared;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Starts waved with the given header timeout (a config duration, e.g. "300ms"); 0 once it logged
 * "ready". */
static int waved_start(waved_t *w, const char *header_timeout) {
  const char *bin = getenv("WAVED_BIN");
  if (!bin) {
    fprintf(stderr, "WAVED_BIN is not set (run through ctest)\n");
    return -1;
  }
  snprintf(w->dir, sizeof w->dir, "/tmp/wv-e2e-XXXXXX");
  if (!mkdtemp(w->dir))
    return -1;
  char cfg[128];
  snprintf(cfg, sizeof cfg, "%s/config.yml", w->dir);
  snprintf(w->log, sizeof w->log, "%s/waved.log", w->dir);
  FILE *f = fopen(cfg, "w");
  if (!f)
    return -1;
  fprintf(f,
          "server:\n  host: 127.0.0.1\n  io-threads: 2\n  workers: 2\n"
          "  header-timeout: %s\n  idle-timeout: 5s\n  shutdown-timeout: 3s\n"
          "  max-header-size: 4KiB\n  max-url-length: 1KiB\n"
          "storage:\n  path: %s/data\nlog:\n  level: info\n",
          header_timeout, w->dir);
  fclose(f);
  w->pid = fork();
  if (w->pid < 0)
    return -1;
  if (w->pid == 0) {
    int fd = open(w->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    if (chdir(w->dir) != 0)
      _exit(127);
    execl(bin, bin, "--config", cfg, "--port", "0", (char *)NULL);
    _exit(127);
  }
  double t0 = now_ms();
  while (now_ms() - t0 < 10000) {
    char buf[4096] = {0};
    FILE *lf = fopen(w->log, "r");
    if (lf) {
      size_t n = fread(buf, 1, sizeof buf - 1, lf);
      buf[n] = '\0';
      fclose(lf);
      const char *p = strstr(buf, "ready on http://127.0.0.1:");
      if (p) {
        w->port = atoi(p + strlen("ready on http://127.0.0.1:"));
        return w->port > 0 ? 0 : -1;
      }
    }
    int st;
    if (waitpid(w->pid, &st, WNOHANG) == w->pid) {
      fprintf(stderr, "waved exited early:\n%s\n", buf);
      w->pid = 0;
      return -1;
    }
    sleep_ms(5);
  }
  return -1;
}

/* SIGTERM; returns the exit status, or -1 if it did not exit within ms. */
static int waved_stop(waved_t *w, int ms) {
  if (w->pid <= 0)
    return -1;
  kill(w->pid, SIGTERM);
  double t0 = now_ms();
  int st;
  while (now_ms() - t0 < ms) {
    if (waitpid(w->pid, &st, WNOHANG) == w->pid) {
      w->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    sleep_ms(5);
  }
  kill(w->pid, SIGKILL);
  waitpid(w->pid, &st, 0);
  w->pid = 0;
  return -1;
}

static void cleanup_dir(const waved_t *w) {
  char cmd[160];
  if (w->dir[0]) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", w->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", w->dir);
  }
}

/* Stops w if it runs and removes its directory (a test's TEST_CLEANUP). */
static void waved_free(waved_t *w) {
  if (w->pid > 0)
    waved_stop(w, 5000);
  cleanup_dir(w);
}

static void stop_shared(void) {
  if (shared.pid > 0)
    waved_stop(&shared, 5000);
  cleanup_dir(&shared);
}

static int port(void) {
  if (shared.pid > 0)
    return shared.port;
  signal(SIGPIPE, SIG_IGN);
  if (waved_start(&shared, "300ms")) /* short: header_timeout waits it out */
    return -1;
  atexit(stop_shared);
  return shared.port;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: localhost\r\n\r\n"

TEST(service_info) {
  int p = port();
  CHECK(p > 0);
  tc_resp_t r;
  CHECK_EQ_INT(tc_request(p, GET("/service-info"), &r, false), 200);
  CHECK_EQ_STR(tc_header(&r, "Content-Type"), "application/json");
  json_object *o = json_tokener_parse(r.body), *si, *v, *c;
  CHECK(o);
  CHECK(json_object_object_get_ex(o, "serviceInfo", &si));
  CHECK(json_object_object_get_ex(si, "version", &v) &&
        json_object_object_get_ex(si, "commitId", &c));
  CHECK_EQ_STR(json_object_get_string(v), WAVED_VERSION);
  CHECK(strlen(json_object_get_string(c)) > 0);
  json_object_put(o);
  CHECK_EQ_STR(tc_header(&r, "X-Content-Type-Options"), "nosniff");
  CHECK_EQ_STR(tc_header(&r, "X-Frame-Options"), "DENY");
  CHECK(tc_header(&r, "Referrer-Policy"));
  tc_resp_free(&r);
}

TEST(health) {
  tc_resp_t r;
  CHECK_EQ_INT(tc_request(port(), GET("/health"), &r, false), 200);
  /* UP or DEGRADED (a host without buildah), with one entry per component; 200 either way. */
  CHECK(strncmp(r.body, "{\"status\":\"UP\",\"components\":{", 29) == 0 ||
        strncmp(r.body, "{\"status\":\"DEGRADED\",\"components\":{", 35) == 0);
  CHECK_HAS(r.body, "\"store\":{\"status\":\"UP\"}");
  CHECK_HAS(r.body, "\"builder\":{");
  CHECK_HAS(r.body, "\"disk\":{");
  tc_resp_free(&r);
}

TEST(v2_ping) {
  const char *reqs[] = {GET("/v2"), GET("/v2/"), "HEAD /v2 HTTP/1.1\r\nHost: x\r\n\r\n",
                        "HEAD /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"};
  for (int i = 0; i < 4; i++) {
    bool head = i >= 2;
    tc_conn_t *c = tc_connect(port());
    CHECK(c);
    tc_resp_t r;
    CHECK_OK(tc_sends(c, reqs[i]));
    CHECK_OK(tc_read(c, &r, head));
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(tc_header(&r, "docker-distribution-api-version"), "registry/2.0");
    CHECK(!tc_header(&r, "WWW-Authenticate"));
    CHECK_EQ_STR(tc_header(&r, "Content-Length"), "2");
    if (!head)
      CHECK_EQ_STR(r.body, "OK");
    tc_resp_free(&r);
    if (head) {
      /* No body follows a HEAD answer: the next response comes straight after. */
      CHECK_OK(tc_sends(c, GET("/health")));
      CHECK_OK(tc_read(c, &r, false));
      CHECK_EQ_INT(r.status, 200);
      CHECK_HAS(r.body, "\"components\":{");
      tc_resp_free(&r);
    }
    tc_close(c);
  }
}

TEST(not_found_and_method) {
  tc_resp_t r;
  CHECK_EQ_INT(tc_request(port(), GET("/v1alpha9/nothing"), &r, false), 404);
  json_object *o = json_tokener_parse(r.body), *m;
  CHECK(o && json_object_object_get_ex(o, "message", &m));
  json_object_put(o);
  tc_resp_free(&r);
  CHECK_EQ_INT(tc_request(port(), GET("/v2/library/ubuntu/other/latest"), &r, false), 404);
  CHECK_EQ_STR(r.body, "{\"errors\":[{\"code\":\"NOT_FOUND\",\"message\":\"Invalid request path "
                       "'/v2/library/ubuntu/other/latest'\"}]}");
  CHECK_EQ_STR(tc_header(&r, "docker-distribution-api-version"), "registry/2.0");
  tc_resp_free(&r);
  CHECK_EQ_INT(
      tc_request(port(), "POST /service-info HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", &r, false),
      405);
  CHECK_EQ_STR(tc_header(&r, "Allow"), "GET, HEAD");
  CHECK_HAS(r.body, "\"message\"");
  tc_resp_free(&r);
}

TEST(pipelined_pair) {
  tc_conn_t *c = tc_connect(port());
  CHECK(c);
  CHECK_OK(tc_sends(c, GET("/health") GET("/service-info")));
  tc_resp_t r;
  CHECK_OK(tc_read(c, &r, false));
  CHECK_HAS(r.body, "\"components\":{");
  tc_resp_free(&r);
  CHECK_OK(tc_read(c, &r, false));
  CHECK_HAS(r.body, "serviceInfo");
  tc_resp_free(&r);
  tc_close(c);
}

TEST(limits) {
  tc_resp_t r;
  static char big[16384];
  snprintf(big, sizeof big, "GET /health HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 8000, 0);
  CHECK_EQ_INT(tc_request(port(), big, &r, false), 431);
  tc_resp_free(&r);
  CHECK_EQ_INT(tc_request(port(), GET("/health"), &r, false), 200);
  tc_resp_free(&r);
  snprintf(big, sizeof big, "GET /v2/%0*d HTTP/1.1\r\n\r\n", 2000, 0);
  CHECK_EQ_INT(tc_request(port(), big, &r, false), 414);
  tc_resp_free(&r);
  CHECK_EQ_INT(tc_request(port(), "GET / HTTP/9.9 junk\r\n\r\n", &r, false), 400);
  tc_resp_free(&r);
  CHECK_EQ_INT(tc_request(port(), "\x01\x02\x03 nonsense\r\n\r\n", &r, false), 400);
  tc_resp_free(&r);
  CHECK_EQ_INT(tc_request(port(), GET("/health"), &r, false), 200);
  tc_resp_free(&r);
}

TEST(partial_body_disconnect) {
  for (int i = 0; i < 5; i++) {
    tc_conn_t *c = tc_connect(port());
    CHECK(c);
    CHECK_OK(tc_sends(c, "POST /service-info HTTP/1.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: 1000\r\n\r\n0123456789"));
    tc_close(c);
  }
  tc_resp_t r;
  CHECK_EQ_INT(tc_request(port(), GET("/health"), &r, false), 200);
  tc_resp_free(&r);
}

TEST(header_timeout) {
  tc_conn_t *c = tc_connect(port());
  CHECK(c);
  double t0 = now_ms();
  CHECK(tc_wait_closed(c, 3000));
  double dt = now_ms() - t0;
  CHECK(dt >= 250 && dt < 2000);
  tc_close(c);
}

typedef struct {
  int port; /* in */
  int ok;   /* out: requests answered 200 */
} client_t;

static void *client_main(void *arg) {
  client_t *cl = arg;
  tc_conn_t *c = tc_connect(cl->port);
  if (!c)
    return NULL;
  tc_resp_t r;
  for (int i = 0; i < 20; i++) {
    if (tc_sends(c, i % 2 ? GET("/v2/") : GET("/service-info")) || tc_read(c, &r, false))
      break;
    cl->ok += r.status == 200;
    tc_resp_free(&r);
  }
  tc_close(c);
  return NULL;
}

/* Its own waved: with the shared one's 300 ms header timeout, a client thread the scheduler leaves
 * waiting that long between two requests (200 threads on a loaded machine) is closed as idle. */
TEST(many_connections) {
  enum { N = 200 };
  signal(SIGPIPE, SIG_IGN);
  static waved_t w; /* static: its clean-up runs after the test returned */
  memset(&w, 0, sizeof w);
  TEST_CLEANUP(waved_free, &w);
  CHECK_OK(waved_start(&w, "10s"));
  int p = w.port;
  static pthread_t t[N];
  static client_t cl[N];
  memset(cl, 0, sizeof cl);
  for (int i = 0; i < N; i++) {
    cl[i].port = p;
    CHECK_EQ_INT(pthread_create(&t[i], NULL, client_main, &cl[i]), 0);
  }
  int ok = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(t[i], NULL);
    ok += cl[i].ok;
  }
  CHECK_EQ_INT(ok, N * 20);
}

TEST(sigterm_with_keepalive_connection) {
  signal(SIGPIPE, SIG_IGN);
  static waved_t w; /* static: its clean-up runs after the test returned */
  memset(&w, 0, sizeof w);
  TEST_CLEANUP(waved_free, &w);
  CHECK_OK(waved_start(&w, "300ms"));
  tc_conn_t *c = tc_connect(w.port);
  CHECK(c);
  TEST_CLEANUP(tc_close, c);
  tc_resp_t r;
  CHECK_OK(tc_sends(c, GET("/health")));
  CHECK_OK(tc_read(c, &r, false));
  tc_resp_free(&r);
  double t0 = now_ms();
  int st = waved_stop(&w, 5000);
  double dt = now_ms() - t0;
  CHECK(tc_wait_closed(c, 1000));
  CHECK_EQ_INT(st, 0);
  CHECK(dt < 1000);
}

WV_TESTS(T(service_info), T(health), T(v2_ping), T(not_found_and_method), T(pipelined_pair),
         T(limits), T(partial_body_disconnect), T(header_timeout), T(many_connections),
         T(sigterm_with_keepalive_connection))
