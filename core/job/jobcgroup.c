/*
 * core/job/jobcgroup.c — the part of the per-job cgroup handling (core/job/jobmem.h) that the
 * job runner needs: joining a group and signalling what is in it. libc only, like
 * core/job/jobkill.c: the runner executable (core/job/runner.c, docs/jobs.md) links these two
 * files and nothing else of waved.
 */
#include "core/job/jobmem.h"
#include "core/err.h" /* the enum only: nothing to link */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int wv_jobmem_write(const char *dir, const char *name, const char *val) {
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= sizeof path)
    return -ENAMETOOLONG;
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t w = write(fd, val, strlen(val));
  int err = w < 0 ? -errno : 0;
  close(fd);
  return err;
}

int wv_jobmem_join(const char *dir, long pid) {
  char val[32];
  snprintf(val, sizeof val, "%ld", pid);
  return wv_jobmem_write(dir, "cgroup.procs", val) ? WV_EIO : 0;
}

int wv_jobmem_signal(const char *dir, int sig) {
  char path[4096], line[32];
  int count = 0;
  snprintf(path, sizeof path, "%s/cgroup.procs", dir);
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f)) {
    long pid = strtol(line, NULL, 10);
    if (pid > 1 && pid != (long)getpid() && kill((pid_t)pid, sig) == 0)
      count++;
  }
  fclose(f);
  return count;
}
