/*
 * tests/redis_fixture.h — a real redis-server for the unit tests that need one
 * (tests/test_store_redis.c, tests/test_redis_tls.c): a free loopback port, its
 * own data directory, the persistence a cluster runs with (AOF, fsync always),
 * started and stopped by the test binary. tests/e2e/lib.sh's start_redis is the
 * same for the shell tests and bench/cluster.sh.
 */
#ifndef WV_TEST_REDIS_FIXTURE_H
#define WV_TEST_REDIS_FIXTURE_H

#include "tests/storage_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct redis_fx {
  char dir[256]; /* its data (the AOF), made by redis_fx_init */
  int port;      /* plain or TLS port on 127.0.0.1 */
  pid_t pid;     /* 0 when not running */
  /* Extra arguments of redis-server (NULL-terminated, may be NULL); with tls the port is its
   * --tls-port and the plain one is off. */
  const char *const *extra;
  bool tls;
  /* Whether the server answers; NULL = a PING over plain TCP. */
  bool (*up)(const struct redis_fx *fx);
} redis_fx_t;

/* A loopback port nobody listens on now, or -1. */
static inline int redis_fx_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0)
    return -1;
  int bad = bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (void *)&a, &len);
  close(fd);
  return bad ? -1 : ntohs(a.sin_port);
}

/* True (after a SKIP line for ctest's log) when redis-server is not installed: exit 77. */
static inline bool redis_fx_missing(void) {
  if (system("command -v redis-server >/dev/null 2>&1") == 0)
    return false;
  printf("SKIP: redis-server is not installed (packaging/deps.sh test installs it)\n");
  return true;
}

/* A plain connection to fx (1 s timeout), or NULL. */
static inline redisContext *redis_fx_raw(const redis_fx_t *fx) {
  redisContext *c = redisConnectWithTimeout("127.0.0.1", fx->port, (struct timeval){1, 0});
  if (c && c->err) {
    redisFree(c);
    return NULL;
  }
  return c;
}

/* A plain PING on fx->port. */
static inline bool redis_fx_pings(const redis_fx_t *fx) {
  redisContext *c = redis_fx_raw(fx);
  redisReply *x = c ? redisCommand(c, "PING") : NULL;
  bool up = x && x->type == REDIS_REPLY_STATUS;
  if (x)
    freeReplyObject(x);
  if (c)
    redisFree(c);
  return up;
}

/* Starts redis-server and waits up to 5 s until it answers: 0 or -1 (then stopped). */
static inline int redis_fx_start(redis_fx_t *fx) {
  const char *argv[64];
  char port[16];
  int n = 0;
  snprintf(port, sizeof port, "%d", fx->port);
  argv[n++] = "redis-server";
  argv[n++] = "--port";
  argv[n++] = fx->tls ? "0" : port;
  if (fx->tls) {
    argv[n++] = "--tls-port";
    argv[n++] = port;
  }
  const char *common[] = {"--bind",        "127.0.0.1", "--dir",        fx->dir,
                          "--save",        "",          "--appendonly", "yes",
                          "--appendfsync", "always",    "--daemonize",  "no"};
  for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
    argv[n++] = common[i];
  for (size_t i = 0; fx->extra && fx->extra[i] && n < 63; i++)
    argv[n++] = fx->extra[i];
  argv[n] = NULL;
  fx->pid = fork();
  if (fx->pid < 0) {
    fx->pid = 0;
    return -1;
  }
  if (fx->pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    execvp("redis-server", (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {
    if (fx->up ? fx->up(fx) : redis_fx_pings(fx))
      return 0;
    usleep(25000);
  }
  kill(fx->pid, SIGKILL);
  waitpid(fx->pid, NULL, 0);
  fx->pid = 0;
  return -1;
}

/* Stops it with sig (SIGTERM: a clean shutdown; SIGKILL: a crash) and reaps it. */
static inline void redis_fx_stop(redis_fx_t *fx, int sig) {
  if (fx->pid > 0) {
    kill(fx->pid, sig);
    waitpid(fx->pid, NULL, 0);
    fx->pid = 0;
  }
}

/* A free port and a data directory, then redis_fx_start: 0, or -1 with a line on stderr. */
static inline int redis_fx_init(redis_fx_t *fx, const char *tag) {
  fx->port = redis_fx_free_port();
  if (fx->port < 0 || !tmpdir_make(fx->dir, tag) || redis_fx_start(fx) != 0) {
    fprintf(stderr, "cannot start redis-server on 127.0.0.1:%d\n", fx->port);
    return -1;
  }
  return 0;
}

/* Stops it and removes its data. */
static inline void redis_fx_free(redis_fx_t *fx) {
  redis_fx_stop(fx, SIGTERM);
  if (fx->dir[0])
    tmpdir_remove(fx->dir);
}

#endif
