/*
 * core/job/jobmem.c — per-job memory limits through cgroups (see jobmem.h).
 *
 * DESIGN. A per-job group is a directory "wvjob-<id>" under a parent group.
 * cgroup v2 is preferred (memory.max, memory.events oom_kill); the parent
 * must have the memory controller in its subtree_control, which the kernel
 * refuses while the parent holds processes, so waved moves itself into a
 * leaf "waved" first (the usual pattern for a service with Delegate=yes).
 * cgroup v1 has no such rule: the group goes straight under waved's own
 * memory group (memory.limit_in_bytes, memory.oom_control oom_kill). The
 * child enters its group before it execs (the --job-exec wrapper), so not one
 * page escapes the limit. Everything here is best effort: a failure falls
 * back to the next mechanism, never stops waved. Joining a group and signalling its
 * processes are in core/job/jobcgroup.c: the job runner (core/job/runner.c) links them
 * without the rest of waved.
 */
#include "core/job/jobmem.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define V2_MOUNT "/sys/fs/cgroup"
#define V2_HYBRID_MOUNT "/sys/fs/cgroup/unified"
#define V1_MEMORY_MOUNT "/sys/fs/cgroup/memory"

/* Reads a small file into buf (NUL-terminated); returns bytes or -errno. */
static ssize_t read_file(const char *dir, const char *name, char *buf, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  ssize_t r = read(fd, buf, n - 1);
  int err = errno;
  close(fd);
  if (r < 0)
    return -err;
  buf[r] = '\0';
  return r;
}

static bool has_word(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
    bool start = p == list || p[-1] == ' ' || p[-1] == ',' || p[-1] == '\n';
    bool end = p[n] == '\0' || p[n] == ' ' || p[n] == ',' || p[n] == '\n';
    if (start && end)
      return true;
  }
  return false;
}

static bool is_fs(const char *path, long magic) {
  struct statfs st;
  return statfs(path, &st) == 0 && (long)st.f_type == magic;
}

/* This process's path in the hierarchy whose controllers field matches
 * (v2: the empty field of the "0::" line). */
static bool own_path(bool v2, char *out, size_t n) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  char line[1024];
  bool found = false;
  if (!f)
    return false;
  while (!found && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
      continue;
    *c2 = '\0';
    const char *ctrls = c1 + 1;
    if (v2 ? (strcmp(line, "0") == 0 && !*ctrls) : has_word(ctrls, "memory")) {
      snprintf(out, n, "%s", c2 + 1);
      found = true;
    }
  }
  fclose(f);
  return found;
}

/* Can we make and remove a child group here? */
static bool probe_dir(const char *parent) {
  char d[4096];
  snprintf(d, sizeof d, "%s/wvjob-probe-%ld", parent, (long)getpid());
  if (mkdir(d, 0755) != 0)
    return false;
  return rmdir(d) == 0;
}

static bool v2_enable_memory(const char *dir) {
  char buf[1024];
  if (read_file(dir, "cgroup.controllers", buf, sizeof buf) < 0 || !has_word(buf, "memory"))
    return false;
  if (read_file(dir, "cgroup.subtree_control", buf, sizeof buf) >= 0 && has_word(buf, "memory"))
    return probe_dir(dir);
  int rc = wv_jobmem_write(dir, "cgroup.subtree_control", "+memory");
  if (rc == -EBUSY) { /* we live in dir ourselves: move into a leaf first */
    char leaf[4096], pid[32];
    snprintf(leaf, sizeof leaf, "%s/waved", dir);
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if ((mkdir(leaf, 0755) != 0 && errno != EEXIST) || wv_jobmem_write(leaf, "cgroup.procs", pid))
      return false;
    rc = wv_jobmem_write(dir, "cgroup.subtree_control", "+memory");
  }
  return rc == 0 && probe_dir(dir);
}

static wv_job_mem_t try_v2(char *parent, size_t n) {
  char own[2048];
  const char *mnt = is_fs(V2_MOUNT, CGROUP2_SUPER_MAGIC)          ? V2_MOUNT
                    : is_fs(V2_HYBRID_MOUNT, CGROUP2_SUPER_MAGIC) ? V2_HYBRID_MOUNT
                                                                  : NULL;
  if (!mnt || !own_path(true, own, sizeof own))
    return WV_JOB_MEM_NONE;
  snprintf(parent, n, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own);
  return v2_enable_memory(parent) ? WV_JOB_MEM_CGROUP2 : WV_JOB_MEM_NONE;
}

static wv_job_mem_t try_v1(char *parent, size_t n) {
  char own[2048];
  if (!is_fs(V1_MEMORY_MOUNT, CGROUP_SUPER_MAGIC) || !own_path(false, own, sizeof own))
    return WV_JOB_MEM_NONE;
  snprintf(parent, n, "%s%s", V1_MEMORY_MOUNT, strcmp(own, "/") == 0 ? "" : own);
  return probe_dir(parent) ? WV_JOB_MEM_CGROUP1 : WV_JOB_MEM_NONE;
}

wv_job_mem_t wv_jobmem_detect(const char *hint, bool have_wrapper, char *parent, size_t n) {
  wv_job_mem_t m = WV_JOB_MEM_NONE;
  if (hint && *hint) {
    snprintf(parent, n, "%s", hint);
    if (is_fs(hint, CGROUP2_SUPER_MAGIC) && v2_enable_memory(hint))
      m = WV_JOB_MEM_CGROUP2;
    else if (is_fs(hint, CGROUP_SUPER_MAGIC) && probe_dir(hint))
      m = WV_JOB_MEM_CGROUP1;
  } else {
    m = try_v2(parent, n);
    if (m == WV_JOB_MEM_NONE)
      m = try_v1(parent, n);
  }
  if (m == WV_JOB_MEM_NONE) {
    parent[0] = '\0';
    if (have_wrapper)
      m = WV_JOB_MEM_RLIMIT;
  }
  return m;
}

int wv_jobmem_create(wv_job_mem_t m, const char *parent, const char *id, uint64_t bytes, char *dir,
                     size_t n) {
  char val[32];
  snprintf(dir, n, "%s/wvjob-%s", parent, id);
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    wv_warn("jobs: cannot create cgroup %s: %s", dir, strerror(errno));
    return WV_EIO;
  }
  snprintf(val, sizeof val, "%llu", (unsigned long long)bytes);
  int rc;
  if (m == WV_JOB_MEM_CGROUP2) {
    rc = wv_jobmem_write(dir, "memory.max", val);
    wv_jobmem_write(dir, "memory.swap.max", "0"); /* absent without swap accounting */
  } else {
    rc = wv_jobmem_write(dir, "memory.limit_in_bytes", val);
    wv_jobmem_write(dir, "memory.memsw.limit_in_bytes", val);
  }
  if (rc) {
    wv_warn("jobs: cannot set the memory limit of %s: %s", dir, strerror(-rc));
    rmdir(dir);
    return WV_EIO;
  }
  return 0;
}

long wv_jobmem_oom_kills(wv_job_mem_t m, const char *dir) {
  char buf[2048];
  const char *name = m == WV_JOB_MEM_CGROUP2 ? "memory.events" : "memory.oom_control";
  if (read_file(dir, name, buf, sizeof buf) < 0)
    return 0;
  for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, "oom_kill ", 9) == 0)
      return strtol(p + 9, NULL, 10);
  return 0;
}

void wv_jobmem_destroy(const char *dir) {
  for (int i = 0; i < 200; i++) {
    wv_jobmem_signal(dir, SIGKILL);
    if (rmdir(dir) == 0 || errno == ENOENT)
      return;
    if (errno != EBUSY)
      break;
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  wv_warn("jobs: cannot remove cgroup %s: %s", dir, strerror(errno));
}

void wv_jobmem_format(uint64_t bytes, char *out, size_t n) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && bytes >= 1024 && bytes % 1024 == 0) {
    bytes /= 1024;
    u++;
  }
  snprintf(out, n, "%llu%s", (unsigned long long)bytes, units[u]);
}
