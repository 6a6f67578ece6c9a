/*
 * core/job/jobkill.c — process-tree and process-group killing over /proc (see
 * core/job/jobkill.h). The tree walk reads every /proc/<pid>/stat once per round,
 * so it costs O(processes) and is only used when a job ends abnormally.
 */
#include "core/job/jobkill.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PROCS 65536 /* processes looked at per /proc scan */
#define MAX_ROUNDS 50   /* SIGSTOP rounds before giving up on a forking tree */

typedef struct {
  pid_t pid, ppid, pgrp;
  char state;
  uint64_t start;
} pinfo_t;

/* Parses /proc/<pid>/stat. false when gone or unreadable. */
static bool read_stat(pid_t pid, pinfo_t *out) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (!p || p[1] != ' ')
    return false;
  p += 2;
  out->pid = pid;
  out->state = *p;
  /* fields from 3 (state) on: state ppid pgrp session tty tpgid flags minflt cminflt majflt
   * cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime */
  char *save = NULL, *tok = strtok_r(p, " ", &save);
  for (int field = 3; tok && field <= 22; field++, tok = strtok_r(NULL, " ", &save)) {
    if (field == 4)
      out->ppid = (pid_t)strtol(tok, NULL, 10);
    else if (field == 5)
      out->pgrp = (pid_t)strtol(tok, NULL, 10);
    else if (field == 22) {
      out->start = strtoull(tok, NULL, 10);
      return true;
    }
  }
  return false;
}

static size_t scan_all(pinfo_t *v, size_t cap) {
  DIR *d = opendir("/proc");
  size_t n = 0;
  if (!d)
    return 0;
  struct dirent *de;
  while (n < cap && (de = readdir(d))) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end || pid <= 0)
      continue;
    if (read_stat((pid_t)pid, &v[n]))
      n++;
  }
  closedir(d);
  return n;
}

static bool listed(const pid_t *set, size_t n, pid_t pid) {
  for (size_t i = 0; i < n; i++)
    if (set[i] == pid)
      return true;
  return false;
}

int wv_jobkill_tree(pid_t root, bool kill_root) {
  pinfo_t *all = malloc(MAX_PROCS * sizeof *all);
  pid_t *set = malloc(MAX_PROCS * sizeof *set);
  size_t nset = 0;
  int count = 0;
  if (!all || !set) {
    free(all), free(set);
    return 0;
  }
  pid_t self = getpid();
  for (int round = 0; round < MAX_ROUNDS; round++) {
    size_t n = scan_all(all, MAX_PROCS), before = nset;
    /* Closure over parent links: a descendant's parent is root or already in the set. */
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t i = 0; i < n && nset < MAX_PROCS; i++) {
        pinfo_t *p = &all[i];
        if (p->pid == root || p->pid == self || p->state == 'Z' || listed(set, nset, p->pid))
          continue;
        if (p->ppid == root || listed(set, nset, p->ppid)) {
          set[nset++] = p->pid;
          kill(p->pid, SIGSTOP);
          grew = true;
        }
      }
    }
    if (nset == before)
      break;
  }
  for (size_t i = 0; i < nset; i++)
    count += kill(set[i], SIGKILL) == 0;
  if (kill_root && root != self)
    count += kill(root, SIGKILL) == 0;
  free(all);
  free(set);
  return count;
}

uint64_t wv_jobkill_start_time(pid_t pid) {
  pinfo_t p;
  return read_stat(pid, &p) && p.state != 'Z' ? p.start : 0;
}

bool wv_jobkill_is_runner(pid_t pid, const char *job_id) {
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  bool exec = false;
  /* argv: <exe> --job-exec [options] -- CMD...; only the options count. */
  for (char *a = buf, *prev = NULL; a < buf + n; prev = a, a += strlen(a) + 1) {
    if (strcmp(a, "--") == 0)
      break;
    if (strcmp(a, "--job-exec") == 0)
      exec = true;
    if (exec && prev && strcmp(prev, "--job") == 0 && strcmp(a, job_id) == 0)
      return wv_jobkill_start_time(pid) != 0;
  }
  return false;
}

int wv_jobkill_group_count(pid_t pgid) {
  pinfo_t *all = malloc(MAX_PROCS * sizeof *all);
  int count = 0;
  if (!all)
    return 0;
  size_t n = scan_all(all, MAX_PROCS);
  for (size_t i = 0; i < n; i++)
    count += all[i].pgrp == pgid && all[i].state != 'Z';
  free(all);
  return count;
}
