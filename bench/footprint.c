/*
 * bench/footprint — start-to-ready time and idle RSS of waved.
 *
 *   footprint WAVED_BIN [RUNS]
 *
 * Each run starts waved on a free loopback port with a fresh data directory,
 * polls GET /health every 200 us from the moment of fork() until it answers
 * 200, and records that time. After the last run it leaves waved idle for a
 * second and reads VmRSS/VmHWM from /proc. Prints the median and the worst
 * ready time, and the idle RSS, then stops waved with SIGTERM and checks it
 * exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
      getsockname(fd, (struct sockaddr *)&a, &len))
    return -1;
  close(fd);
  return ntohs(a.sin_port);
}

/* Returns 1 when GET /health answered 200, 0 otherwise. */
static int health_ok(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int ok = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[64] = {0};
    if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1) &&
        read(fd, buf, sizeof buf - 1) > 12)
      ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
  }
  close(fd);
  return ok;
}

static long proc_kb(pid_t pid, const char *field) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, field, strlen(field)) == 0)
      kb = strtol(line + strlen(field) + 1, NULL, 10);
  if (f)
    fclose(f);
  return kb;
}

static pid_t start(const char *bin, int port, const char *dir) {
  pid_t pid = fork();
  if (pid == 0) {
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    setenv("WAVE_SERVER_PORT", portbuf, 1);
    if (chdir(dir) != 0)
      _exit(126);
    int null = open("/dev/null", 1);
    dup2(null, 2);
    execl(bin, bin, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

/* Removes a run's data directory. */
static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: footprint WAVED_BIN [RUNS]\n");
    return 2;
  }
  char bin[4096];
  if (!realpath(argv[1], bin))
    return perror(argv[1]), 2;
  int runs = argc > 2 ? atoi(argv[2]) : 10;
  if (runs < 1 || runs > 1000)
    runs = 10;
  double *t = calloc((size_t)runs, sizeof *t);
  pid_t pid = 0;
  char dir[] = "/tmp/waved-footprint-XXXXXX";
  for (int i = 0; i < runs; i++) {
    strcpy(dir, "/tmp/waved-footprint-XXXXXX");
    if (!mkdtemp(dir))
      return perror("mkdtemp"), 1;
    int port = free_port();
    double t0 = now_ms();
    pid = start(bin, port, dir);
    while (!health_ok(port)) {
      if (now_ms() - t0 > 10000 || waitpid(pid, NULL, WNOHANG) == pid) {
        fprintf(stderr, "waved did not become ready\n");
        return 1;
      }
      usleep(200);
    }
    t[i] = now_ms() - t0;
    if (i < runs - 1) {
      kill(pid, SIGTERM);
      waitpid(pid, NULL, 0);
      rm_tree(dir);
    }
  }
  sleep(1);
  long rss = proc_kb(pid, "VmRSS:"), hwm = proc_kb(pid, "VmHWM:");
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  rm_tree(dir);
  qsort(t, (size_t)runs, sizeof *t, cmp);
  printf("runs: %d\n", runs);
  printf("start-to-ready: median %.1f ms, worst %.1f ms\n", t[runs / 2], t[runs - 1]);
  printf("idle RSS: %.1f MB (peak %.1f MB)\n", (double)rss / 1024.0, (double)hwm / 1024.0);
  printf("exit on SIGTERM: %s\n",
         WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "0 (clean)" : "NOT clean");
  free(t);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
