/*
 * core/preflight.c — host checks at start-up and on demand (see preflight.h).
 *
 * The builder's programs are read from the configured command templates, not
 * assumed: the first word of each template (buildah, buildctl, ...) and the
 * value of a `--runtime` option (runc) must resolve through PATH the way the
 * job engine's execvp will resolve them; a buildkit `--addr unix://` socket
 * must exist. Each missing program is reported with the Debian package that
 * provides it.
 */
#include "core/preflight.h"
#include "core/timefmt.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROGS 8
#define RECHECK_NS (5LL * 1000000000) /* a missing builder is looked for again after 5 s */

struct wv_preflight {
  const wv_config_t *cfg;
  wv_job_mem_t mem;
  pthread_mutex_t mu; /* guards the two fields below */
  char missing[256];  /* "" when the builder is usable, else "buildah not found" */
  int64_t checked_ns; /* CLOCK_MONOTONIC of the last builder check */
};

/* ---- the builder ------------------------------------------------------------------ */

/* The Debian package (or other remedy) for a missing program. */
static const char *remedy(const char *prog) {
  static const struct {
    const char *prog, *fix;
  } fixes[] = {
      {"buildah", "apt-get install buildah"},
      {"runc", "apt-get install runc"},
      {"mksquashfs", "apt-get install squashfs-tools"},
      {"skopeo", "apt-get install skopeo"},
      {"crun", "apt-get install crun"},
      {"buildctl", "install BuildKit's buildctl (not packaged in Debian 12), or set "
                   "wave.build.builder: buildah"},
  };
  const char *base = strrchr(prog, '/') ? strrchr(prog, '/') + 1 : prog;
  for (size_t i = 0; i < sizeof fixes / sizeof fixes[0]; i++)
    if (strcmp(base, fixes[i].prog) == 0)
      return fixes[i].fix;
  return NULL;
}

/* True when prog is an executable file, directly (a '/' in it) or through PATH. */
static bool on_path(const char *prog) {
  if (strchr(prog, '/'))
    return access(prog, X_OK) == 0;
  const char *path = getenv("PATH");
  if (!path || !*path)
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  char full[PATH_MAX];
  while (*path) {
    size_t n = strcspn(path, ":");
    if (n > 0 && (size_t)snprintf(full, sizeof full, "%.*s/%s", (int)n, path, prog) < sizeof full) {
      struct stat st;
      if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
        return true;
    }
    path += n + (path[n] == ':');
  }
  return false;
}

/* Copies word i of s (space-separated) into out; false past the last word. */
static bool word(const char *s, int i, char *out, size_t outlen) {
  for (int k = 0; s && *s; k++) {
    s += strspn(s, " ");
    size_t n = strcspn(s, " ");
    if (!n)
      break;
    if (k == i) {
      snprintf(out, outlen, "%.*s", (int)n, s);
      return true;
    }
    s += n;
  }
  return false;
}

/* Adds the programs of one command template: its first word and any --runtime value. */
static size_t template_progs(const char *tpl, char progs[][256], size_t n) {
  char w[256];
  if (!tpl || !*tpl || n >= MAX_PROGS || !word(tpl, 0, progs[n], sizeof progs[n]))
    return n;
  n++;
  for (int i = 1; n < MAX_PROGS && word(tpl, i, w, sizeof w); i++) {
    if (strcmp(w, "--runtime") == 0 && word(tpl, i + 1, progs[n], sizeof progs[n]))
      n++;
    else if (strncmp(w, "--runtime=", 10) == 0)
      snprintf(progs[n++], sizeof progs[0], "%s", w + 10);
  }
  return n;
}

/* The unix socket named by `--addr unix://PATH` in a template, or "". */
static void template_socket(const char *tpl, char *out, size_t outlen) {
  char w[PATH_MAX];
  out[0] = '\0';
  for (int i = 0; word(tpl, i, w, sizeof w); i++) {
    const char *v = strcmp(w, "--addr") == 0 && word(tpl, i + 1, w, sizeof w) ? w
                    : strncmp(w, "--addr=", 7) == 0                           ? w + 7
                                                                              : NULL;
    if (v && strncmp(v, "unix://", 7) == 0) {
      snprintf(out, outlen, "%s", v + 7);
      return;
    }
  }
}

/*
 * Checks every program of the configured builder; each problem is logged when log is set.
 * Writes the first one into missing ("" when none).
 */
static void check_builder(const wv_config_t *cfg, bool log, char *missing, size_t n) {
  char progs[MAX_PROGS][256], sock[PATH_MAX];
  size_t np = 0;
  missing[0] = '\0';
  if (!cfg->build_enabled)
    return;
  bool kit = strcmp(cfg->build_builder, "buildkit") == 0;
  if (kit) {
    np = template_progs(cfg->build_buildkit_build, progs, np);
  } else {
    np = template_progs(cfg->build_buildah_build, progs, np);
    np = template_progs(cfg->build_buildah_push, progs, np);
    np = template_progs(cfg->build_buildah_cleanup, progs, np);
  }
  for (size_t i = 0; i < np; i++) {
    bool dup = false;
    for (size_t j = 0; j < i; j++)
      dup = dup || strcmp(progs[i], progs[j]) == 0;
    if (dup || on_path(progs[i]))
      continue;
    if (log)
      wv_warn("preflight: builds are not available: %s not found - %s%s", progs[i],
              remedy(progs[i]) ? remedy(progs[i]) : "install it, or change wave.build.",
              remedy(progs[i]) ? ""
              : kit            ? "buildkit.build"
                               : "buildah.*");
    if (!missing[0])
      snprintf(missing, n, "%s not found", progs[i]);
  }
  template_socket(kit ? cfg->build_buildkit_build : "", sock, sizeof sock);
  struct stat st;
  if (sock[0] && (stat(sock, &st) != 0 || !S_ISSOCK(st.st_mode))) {
    if (log)
      wv_warn("preflight: builds are not available: no buildkitd socket at %s - start buildkitd, "
              "or set wave.build.builder: buildah",
              sock);
    if (!missing[0])
      snprintf(missing, n, "no buildkitd socket at %s", sock);
  }
}

/* Singularity builds (docs/singularity.md) need more programs: a warning each, builds stay on. */
static void check_sif(const wv_config_t *cfg) {
  char progs[MAX_PROGS][256];
  size_t np = 0;
  if (!cfg->build_enabled)
    return;
  np = template_progs(cfg->build_sif_build, progs, np);
  np = template_progs(cfg->build_sif_squashfs, progs, np);
  np = template_progs(cfg->build_sif_push, progs, np);
  for (size_t i = 0; i < np; i++)
    if (!on_path(progs[i]))
      wv_warn("preflight: Singularity (format: sif) builds will fail: %s not found - %s", progs[i],
              remedy(progs[i]) ? remedy(progs[i])
                               : "install it, or change wave.build.singularity.*");
}

int wv_preflight_builder(wv_preflight_t *pf, char *why, size_t whylen) {
  pthread_mutex_lock(&pf->mu);
  int64_t now = wv_mono_ns();
  if (pf->missing[0] && now - pf->checked_ns >= RECHECK_NS) {
    check_builder(pf->cfg, false, pf->missing, sizeof pf->missing);
    pf->checked_ns = now;
    if (!pf->missing[0])
      wv_info("preflight: the builder is available now");
  }
  snprintf(why, whylen, "%s", pf->missing);
  pthread_mutex_unlock(&pf->mu);
  return why[0] ? WV_EUNAVAIL : 0;
}

/* ---- storage and disk -------------------------------------------------------------- */

/* mkdir -p: every missing component of path, 0700. */
static int mkdirs(const char *path) {
  char p[PATH_MAX];
  if ((size_t)snprintf(p, sizeof p, "%s", path) >= sizeof p)
    return ENAMETOOLONG;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s)
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
      return errno;
    *s = c;
    if (!c)
      break;
  }
  struct stat st;
  if (stat(p, &st) != 0)
    return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

int wv_preflight_dir(const char *key, const char *path, char *err, size_t errlen) {
  char probe[PATH_MAX];
  int e = mkdirs(path);
  if (e) {
    snprintf(err, errlen, "%s: %s: cannot create the directory: %s", key, path, strerror(e));
    return WV_EIO;
  }
  if ((size_t)snprintf(probe, sizeof probe, "%s/.waved-probe-%ld", path, (long)getpid()) >=
      sizeof probe) {
    snprintf(err, errlen, "%s: %s: path too long", key, path);
    return WV_EIO;
  }
  int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && write(fd, "ok\n", 3) == 3 && fsync(fd) == 0;
  e = errno;
  if (fd >= 0)
    close(fd);
  unlink(probe);
  /* A full disk is not a reason to stay down: what is stored is still served (the disk check
   * reports it). Anything else (permissions, a read-only mount) is. */
  if (!ok && fd >= 0 && wv_err_io(e) == WV_ENOSPC)
    return 0;
  if (!ok) {
    snprintf(err, errlen, "%s: %s: not writable: %s", key, path, strerror(e));
    return WV_EIO;
  }
  return 0;
}

int wv_preflight_disk_stat(const char *path, uint64_t reserve, wv_preflight_disk_t *out) {
  struct statvfs vfs;
  memset(out, 0, sizeof *out);
  out->reserve = reserve;
  if (statvfs(path, &vfs) != 0) {
    out->low = true;
    return WV_EIO;
  }
  out->free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
  out->total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
  /* A reserve larger than the filesystem would keep it "low" for ever: cap it at half. */
  if (out->reserve > out->total / 2)
    out->reserve = out->total / 2;
  out->low = out->free < out->reserve;
  return 0;
}

int wv_preflight_disk(const wv_preflight_t *pf, wv_preflight_disk_t *out) {
  return wv_preflight_disk_stat(pf->cfg->storage_path, pf->cfg->storage_reserve, out);
}

void wv_preflight_disk_nospace_text(const char *path, uint64_t reserve, char *out, size_t outlen) {
  wv_preflight_disk_t d;
  if (wv_preflight_disk_stat(path, reserve, &d) != 0) {
    snprintf(out, outlen, "Insufficient storage - %s: free space unknown", path);
    return;
  }
  int k = snprintf(out, outlen, "Insufficient storage - %s: %llu bytes free", path,
                   (unsigned long long)d.free);
  if (d.low && k > 0 && (size_t)k < outlen)
    snprintf(out + k, outlen - (size_t)k, ", below the reserve of %llu bytes (storage.reserve)",
             (unsigned long long)d.reserve);
}

void wv_preflight_nospace_text(const wv_preflight_t *pf, char *out, size_t outlen) {
  wv_preflight_disk_nospace_text(pf->cfg->storage_path, pf->cfg->storage_reserve, out, outlen);
}

int wv_preflight_port(const char *host, int port, char *err, size_t errlen) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
  struct addrinfo *res = NULL;
  char service[16];
  if (port == 0)
    return 0;
  snprintf(service, sizeof service, "%d", port);
  int g = getaddrinfo(host, service, &hints, &res);
  if (g != 0) {
    snprintf(err, errlen, "server.host: '%s' is not an IP address: %s", host, gai_strerror(g));
    return WV_EIO;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, e = 0;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1) != 0)
    e = errno;
  if (fd >= 0)
    close(fd);
  freeaddrinfo(res);
  if (e) {
    snprintf(err, errlen, "server.port: cannot listen on %s:%d: %s%s", host, port, strerror(e),
             e == EADDRINUSE ? " (another process holds the port: stop it, or change server.port "
                               "or WAVE_SERVER_PORT)"
                             : "");
    return WV_EIO;
  }
  return 0;
}

/* ---- the memory mechanism ---------------------------------------------------------- */

const char *wv_preflight_mem_name(const wv_preflight_t *pf) {
  switch (pf->mem) {
  case WV_JOB_MEM_CGROUP2:
    return "cgroup2";
  case WV_JOB_MEM_CGROUP1:
    return "cgroup1";
  case WV_JOB_MEM_RLIMIT:
    return "rlimit-as";
  case WV_JOB_MEM_NONE:
    return "none";
  case WV_JOB_MEM_AUTO:
    break;
  }
  return "unknown";
}

static void check_mem(const wv_preflight_t *pf) {
  if (!pf->cfg->build_enabled)
    return;
  if (pf->mem == WV_JOB_MEM_NONE)
    wv_warn("preflight: builds run without a memory limit: no usable cgroup and no exec wrapper "
            "(/proc/self/exe unreadable) - run waved from its installed binary, with a cgroup "
            "it may write (systemd: Delegate=memory; docs/jobs.md)");
  else if (pf->mem == WV_JOB_MEM_RLIMIT)
    wv_warn("preflight: the memory limit of builds falls back to RLIMIT_AS (address space, not "
            "memory) - give waved a cgroup with the memory controller (systemd: Delegate=memory; "
            "docs/jobs.md)");
}

/* ---- creation -------------------------------------------------------------------- */

const char *wv_preflight_storage_path(const wv_preflight_t *pf) { return pf->cfg->storage_path; }

int wv_preflight_new(const wv_config_t *cfg, wv_job_mem_t mem, wv_preflight_t **out) {
  wv_preflight_t *pf = calloc(1, sizeof *pf);
  if (!pf)
    return WV_ENOMEM;
  pf->cfg = cfg;
  pf->mem = mem;
  pthread_mutex_init(&pf->mu, NULL);
  check_builder(cfg, true, pf->missing, sizeof pf->missing);
  check_sif(cfg);
  pf->checked_ns = wv_mono_ns();
  check_mem(pf);
  wv_preflight_disk_t d;
  if (wv_preflight_disk_stat(cfg->storage_path, cfg->storage_reserve, &d) != 0)
    wv_warn("preflight: cannot read the free space of %s: %s", cfg->storage_path, strerror(errno));
  else if (d.low)
    wv_warn("preflight: %s has %llu bytes free, below the reserve of %llu bytes - free space "
            "there, or lower storage.reserve; new builds are refused until then",
            cfg->storage_path, (unsigned long long)d.free, (unsigned long long)d.reserve);
  *out = pf;
  return 0;
}

void wv_preflight_free(wv_preflight_t *pf) {
  if (!pf)
    return;
  pthread_mutex_destroy(&pf->mu);
  free(pf);
}
