/*
 * Unit tests for TLS to Redis (storage/redis_conn.c: rediss://, the OpenSSL
 * client and its pump thread) against a real TLS-only redis-server this binary
 * starts on a free loopback port, with self-signed certificates made here by
 * the openssl command. Without redis-server or openssl the binary exits 77.
 */
#include "core/err.h"
#include "core/redisurl.h"
#include "storage/redis_conn_int.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/redis_fixture.h"
#include "tests/storage_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define HOUR_MS (3600 * 1000LL)

static redis_fx_t fx; /* TLS only: fx.tls, its certificate options in main */
static char cert[320], key[320], other[320];
static char url[128];

/* A TLS connection checked against ca (errstr copied into why on failure), or NULL. */
static redisContext *tls(const char *ca, const char *u, char *why, size_t whylen) {
  wv_redisurl_t ru;
  char w[200];
  if (wv_redisurl_parse(u, &ru, w, sizeof w))
    return NULL;
  redisContext *c = wv__redis_connect(&ru, (struct timeval){1, 0}, ca);
  if (c && c->err) {
    snprintf(why, whylen, "%s", c->errstr);
    redisFree(c);
    return NULL;
  }
  if (c)
    redisSetTimeout(c, (struct timeval){1, 0});
  return c;
}

static bool pings(const char *ca) {
  char why[256];
  redisContext *c = tls(ca, url, why, sizeof why);
  redisReply *x = c ? redisCommand(c, "PING") : NULL;
  bool up = x && x->type == REDIS_REPLY_STATUS && strcmp(x->str, "PONG") == 0;
  if (x)
    freeReplyObject(x);
  if (c)
    redisFree(c);
  return up;
}

/* The fixture is up when a TLS PING checked against cert answers. */
static bool tls_up(const redis_fx_t *f) {
  (void)f;
  return pings(cert);
}

static char lmdb_dir[256];

static void close_store(wv_store_t *s) {
  wv_store_close(s);
  tmpdir_remove(lmdb_dir);
}

/* A store on u whose rediss:// connections trust the CAs of ca (state.redis.tls-ca). */
static wv_store_t *open_tls(const char *u, const char *ca, const char *prefix, int *rc) {
  wv_store_t *s = NULL;
  *rc = WV_EINVAL;
  if (!tmpdir_make(lmdb_dir, "rtls") || wv_store_open(&s, lmdb_dir, 0, 0) != 0)
    return NULL;
  if ((*rc = wv_store_use_redis(s, u, prefix, 1000, 4, ca)) != 0) {
    close_store(s);
    return NULL;
  }
  return s;
}

static int get_str(wv_store_t *s, wv_db_t db, const char *k, char *out, size_t cap, int64_t *exp) {
  char *v = NULL;
  size_t len = 0;
  int rc = wv_store_get(s, db, k, &v, &len, exp);
  if (rc == 0) {
    snprintf(out, cap, "%s", v);
    free(v);
  }
  return rc;
}

TEST(store_over_tls) {
  int rc;
  wv_store_t *s = open_tls(url, cert, "tls1.", &rc);
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  char buf[64];
  int64_t exp = -1, later = wv_store_now_ms() + HOUR_MS;
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "a", "alpha", 5, later));
  CHECK_OK(get_str(s, WV_DB_TOKENS, "a", buf, sizeof buf, &exp));
  CHECK_EQ_STR(buf, "alpha");
  CHECK(exp >= later - 1 && exp <= later + 1);
  CHECK_OK(wv_store_put(s, WV_DB_TOKENS, "short", "s", 1, wv_store_now_ms() + 150));
  usleep(400 * 1000);
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "short", buf, sizeof buf, NULL), WV_ENOTFOUND);
  CHECK_OK(wv_store_del(s, WV_DB_TOKENS, "a"));
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "a", buf, sizeof buf, NULL), WV_ENOTFOUND);
  /* apply: all or nothing, as over plain TCP */
  size_t failed = 99;
  CHECK_OK(wv_store_put(s, WV_DB_BUILDS, "taken", "x", 1, 0));
  wv_store_op_t ops[2] = {
      {.kind = WV_STORE_PUT, .db = WV_DB_BUILDS, .key = "b", .val = "B", .val_len = 1},
      {.kind = WV_STORE_PUT_NX, .db = WV_DB_BUILDS, .key = "taken", .val = "y", .val_len = 1}};
  CHECK_EQ_INT(wv_store_apply(s, ops, 2, &failed), WV_EEXISTS);
  CHECK_EQ_INT(get_str(s, WV_DB_BUILDS, "b", buf, sizeof buf, NULL), WV_ENOTFOUND);
  ops[1].key = "free";
  CHECK_OK(wv_store_apply(s, ops, 2, &failed));
  CHECK_OK(get_str(s, WV_DB_BUILDS, "b", buf, sizeof buf, NULL));
  CHECK_EQ_STR(buf, "B");
  /* a value bigger than the pump's buffers, both ways */
  size_t big = 300 * 1000;
  char *v = malloc(big), *back = NULL;
  CHECK(v);
  for (size_t i = 0; i < big; i++)
    v[i] = (char)('a' + i % 26);
  CHECK_OK(wv_store_put(s, WV_DB_BUILDS, "big", v, big, 0));
  size_t len = 0;
  CHECK_OK(wv_store_get(s, WV_DB_BUILDS, "big", &back, &len, NULL));
  CHECK_EQ_INT(len, big);
  CHECK(memcmp(v, back, big) == 0);
  free(v);
  free(back);
}

TEST(refuses_bad_certificates) {
  char why[256] = "";
  /* a CA that did not sign the server's certificate */
  CHECK(!tls(other, url, why, sizeof why));
  CHECK_HAS(why, "certificate");
  /* the right CA, but the certificate names 127.0.0.1, not the URL's host */
  char byname[128];
  snprintf(byname, sizeof byname, "rediss://localhost:%d/0", fx.port);
  why[0] = '\0';
  CHECK(!tls(cert, byname, why, sizeof why));
  CHECK_HAS(why, "certificate");
  /* an unreadable CA file */
  char missing[340];
  snprintf(missing, sizeof missing, "%s/none.pem", fx.dir);
  why[0] = '\0';
  CHECK(!tls(missing, url, why, sizeof why));
  CHECK_HAS(why, "state.redis.tls-ca");
  /* through the store: open fails, nothing is shared */
  int rc = 0;
  CHECK(!open_tls(url, other, "tls2.", &rc));
  CHECK_EQ_INT(rc, WV_EUNAVAIL);
  /* the CA is the store's own setting: another store trusting cert opens at the same time */
  wv_store_t *s = open_tls(url, cert, "tls2.", &rc);
  CHECK(s);
  close_store(s);
}

TEST(plain_url_to_tls_port_fails) {
  char u[128];
  snprintf(u, sizeof u, "redis://127.0.0.1:%d/0", fx.port);
  int rc = 0;
  double t0 = now_sec();
  CHECK(!open_tls(u, cert, "tls3.", &rc));
  CHECK(rc != 0);
  CHECK(now_sec() - t0 < 3);
}

TEST(restart_is_ridden_out) {
  int rc;
  wv_store_t *s = open_tls(url, cert, "tls4.", &rc);
  CHECK(s);
  TEST_CLEANUP(close_store, s);
  char buf[64];
  for (int i = 0; i < 20; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    CHECK_OK(wv_store_put(s, WV_DB_TOKENS, k, k, strlen(k), wv_store_now_ms() + HOUR_MS));
  }
  redis_fx_stop(&fx, SIGKILL);
  CHECK_EQ_INT(get_str(s, WV_DB_TOKENS, "k1", buf, sizeof buf, NULL), WV_EUNAVAIL);
  CHECK_OK(redis_fx_start(&fx));
  for (int i = 0; i < 20; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    CHECK_OK(get_str(s, WV_DB_TOKENS, k, buf, sizeof buf, NULL));
    CHECK_EQ_STR(buf, k);
  }
  redis_fx_stop(&fx, SIGTERM); /* a clean restart while TLS connections sit in the pool */
  CHECK_OK(redis_fx_start(&fx));
  CHECK_OK(get_str(s, WV_DB_TOKENS, "k7", buf, sizeof buf, NULL));
}

static int open_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

/* redisFree ends the pump: its thread exits and closes the TLS socket and its end. */
TEST(pump_ends_with_the_context) {
  int before = open_fds();
  for (int i = 0; i < 20; i++)
    CHECK(pings(cert));
  int after = -2;
  for (int i = 0; i < 100 && after != before; i++) {
    usleep(10000);
    after = open_fds();
  }
  CHECK_EQ_INT(after, before);
}

/* A self-signed certificate for ip in dir/<name>.pem (key in dir/<name>.key). */
static int make_cert(const char *name, const char *ip) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout '%s/%s.key' -out "
           "'%s/%s.pem' -subj /CN=%s -addext subjectAltName=IP:%s >/dev/null 2>&1",
           fx.dir, name, fx.dir, name, ip, ip);
  return system(cmd) == 0 ? 0 : -1;
}

WV_TEST_GLOBALS;

int main(int argc, char **argv) {
  static const wv_test_t tests[] = {T(store_over_tls), T(refuses_bad_certificates),
                                    T(plain_url_to_tls_port_fails), T(pump_ends_with_the_context),
                                    T(restart_is_ridden_out)};
  if (system("command -v redis-server >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1")) {
    printf("SKIP: redis-server or openssl is not installed (packaging/deps.sh test)\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN); /* as waved does */
  fx.port = redis_fx_free_port();
  if (fx.port < 0 || !tmpdir_make(fx.dir, "rtls") || make_cert("server", "127.0.0.1") ||
      make_cert("other", "127.0.0.1")) {
    fprintf(stderr, "cannot make the test certificates\n");
    return 1;
  }
  snprintf(cert, sizeof cert, "%s/server.pem", fx.dir);
  snprintf(key, sizeof key, "%s/server.key", fx.dir);
  snprintf(other, sizeof other, "%s/other.pem", fx.dir);
  snprintf(url, sizeof url, "rediss://127.0.0.1:%d/0", fx.port);
  const char *const tls_args[] = {"--tls-cert-file",
                                  cert,
                                  "--tls-key-file",
                                  key,
                                  "--tls-ca-cert-file",
                                  cert,
                                  "--tls-auth-clients",
                                  "no",
                                  NULL};
  fx.tls = true;
  fx.extra = tls_args;
  fx.up = tls_up;
  if (redis_fx_start(&fx) != 0) {
    fprintf(stderr, "cannot start a TLS redis-server on 127.0.0.1:%d\n", fx.port);
    redis_fx_free(&fx);
    return 1;
  }
  int rc = wv_test_run(argc, argv, tests, sizeof tests / sizeof tests[0]);
  redis_fx_free(&fx);
  return rc;
}
