/*
 * storage/ops.c — store sizes and `waved backup` (see ops.h).
 *
 * The backup opens the state store a second time, read-only, from its own
 * process: LMDB lets any number of processes read one environment while one
 * writes, and mdb_env_copy2 with MDB_CP_COMPACT copies what one read
 * transaction sees, leaving free pages out. The blobs are immutable files
 * named by their digest, so a link (or a copy) of each is consistent on its
 * own; blobs written after the state copy are copied too, which is harmless.
 */
#include "storage/ops.h"
#include "core/err.h"
#include "core/timefmt.h"
#include "storage/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void wv_store_sizes(wv_store_t *s, uint64_t *file_bytes, uint64_t *used_bytes) {
  MDB_envinfo info;
  MDB_stat st;
  const char *path = NULL;
  struct stat fst;
  char file[PATH_MAX];
  *file_bytes = *used_bytes = 0;
  if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0)
    *used_bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
  if (mdb_env_get_path(s->env, &path) == 0 && path) {
    snprintf(file, sizeof file, "%s/data.mdb", path);
    if (stat(file, &fst) == 0)
      *file_bytes = (uint64_t)fst.st_blocks * 512; /* the map is sparse: what the disk holds */
  }
}

/* ---- blob-store usage ---- */

/* Process-wide on purpose: a walk of the one blob store of this process (storage.path), kept for
 * the caller's max_age_ms so scrapes and the overview page do not walk it each time. */
static pthread_mutex_t usage_mu = PTHREAD_MUTEX_INITIALIZER; /* leaf: the cache below */
static int64_t usage_at_ms = -1;
static uint64_t usage_bytes, usage_files;

/* Calls each(path, name) for every regular file two levels under dir (xx/<hex>). */
static int walk_blobs(const char *dir,
                      int (*each)(void *, const char *, const char *, const struct stat *),
                      void *arg) {
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT ? 0 : WV_EIO;
  int rc = 0;
  char sub[PATH_MAX + 8], file[PATH_MAX + 80];
  for (struct dirent *e; !rc && (e = readdir(d));) {
    if (e->d_name[0] == '.' || strlen(e->d_name) != 2)
      continue;
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    DIR *sd = opendir(sub);
    for (struct dirent *f; sd && !rc && (f = readdir(sd));) {
      struct stat st;
      if (f->d_name[0] == '.' || strlen(f->d_name) != 64)
        continue; /* temp files and anything else that is not a blob */
      snprintf(file, sizeof file, "%s/%s", sub, f->d_name);
      if (lstat(file, &st) == 0 && S_ISREG(st.st_mode))
        rc = each(arg, e->d_name, f->d_name, &st);
    }
    if (sd)
      closedir(sd);
  }
  closedir(d);
  return rc;
}

static int add_usage(void *arg, const char *sub, const char *name, const struct stat *st) {
  (void)sub, (void)name;
  uint64_t *t = arg;
  t[0] += (uint64_t)st->st_size;
  t[1]++;
  return 0;
}

void wv_cas_usage(const char *root, int64_t max_age_ms, uint64_t *bytes, uint64_t *files) {
  pthread_mutex_lock(&usage_mu);
  int64_t now = wv_mono_ms();
  if (usage_at_ms < 0 || now - usage_at_ms >= max_age_ms) {
    char dir[PATH_MAX];
    uint64_t t[2] = {0, 0};
    snprintf(dir, sizeof dir, "%s/blobs/sha256", root);
    walk_blobs(dir, add_usage, t);
    usage_bytes = t[0];
    usage_files = t[1];
    usage_at_ms = now;
  }
  *bytes = usage_bytes;
  *files = usage_files;
  pthread_mutex_unlock(&usage_mu);
}

/* ---- backup ---- */

typedef struct {
  char src[PATH_MAX], dst[PATH_MAX];
  uint64_t files, bytes;
} copy_t;

static int copy_file(const char *from, const char *to, const struct stat *st) {
  int in = open(from, O_RDONLY | O_CLOEXEC), rc = WV_EIO;
  if (in < 0)
    return errno == ENOENT ? 0 : WV_EIO; /* collected meanwhile: not referenced any more */
  char tmp[PATH_MAX + 96];
  snprintf(tmp, sizeof tmp, "%s.part", to);
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out >= 0) {
    off_t left = st->st_size;
    ssize_t n = 1;
    while (left > 0 && (n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0)) > 0)
      left -= n;
    if (left == 0 && fsync(out) == 0 && rename(tmp, to) == 0)
      rc = 0;
    close(out);
    if (rc)
      unlink(tmp);
  }
  close(in);
  return rc;
}

static int copy_blob(void *arg, const char *sub, const char *name, const struct stat *st) {
  copy_t *c = arg;
  char from[PATH_MAX + 80], to[PATH_MAX + 80];
  snprintf(to, sizeof to, "%s/%s", c->dst, sub);
  if (mkdir(to, 0700) && errno != EEXIST)
    return WV_EIO;
  snprintf(from, sizeof from, "%s/%s/%s", c->src, sub, name);
  snprintf(to, sizeof to, "%s/%s/%s", c->dst, sub, name);
  if (access(to, F_OK) == 0)
    return 0; /* already there: blobs never change */
  int rc = link(from, to) == 0 ? 0 : errno == ENOENT ? 0 : copy_file(from, to, st);
  if (rc)
    fprintf(stderr, "waved backup: cannot copy %s: %s\n", from, strerror(errno));
  c->files++;
  c->bytes += (uint64_t)st->st_size;
  return rc;
}

static int mkdirs(const char *path) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      if (mkdir(p, 0700) && errno != EEXIST)
        return -1;
      *s = '/';
    }
  return mkdir(p, 0700) && errno != EEXIST ? -1 : 0;
}

static int copy_state(const char *data, uint64_t map_size, const char *dest) {
  char src[PATH_MAX], dst[PATH_MAX], probe[PATH_MAX + 16];
  snprintf(src, sizeof src, "%s/state", data);
  snprintf(dst, sizeof dst, "%s/state", dest);
  snprintf(probe, sizeof probe, "%s/data.mdb", src);
  if (access(probe, R_OK)) {
    fprintf(stderr, "waved backup: no state store in %s: %s\n", src, strerror(errno));
    return 1;
  }
  snprintf(probe, sizeof probe, "%s/data.mdb", dst);
  if (access(probe, F_OK) == 0) {
    fprintf(stderr, "waved backup: %s already holds a state store: choose an empty DEST\n", dst);
    return 1;
  }
  if (mkdirs(dst)) {
    fprintf(stderr, "waved backup: cannot create %s: %s\n", dst, strerror(errno));
    return 1;
  }
  MDB_env *env = NULL;
  int rc = mdb_env_create(&env);
  if (!rc) {
    mdb_env_set_maxdbs(env, WV_DB_COUNT + 8);
    mdb_env_set_mapsize(env, (size_t)(map_size ? map_size : 1ULL << 30));
    rc = mdb_env_open(env, src, MDB_RDONLY | MDB_NOTLS, 0600);
  }
  if (!rc)
    rc = mdb_env_copy2(env, dst, MDB_CP_COMPACT);
  if (rc)
    fprintf(stderr, "waved backup: cannot copy the state store %s to %s: %s\n", src, dst,
            mdb_strerror(rc));
  mdb_env_close(env);
  return rc ? 1 : 0;
}

int wv_store_backup_main(const char *data, uint64_t map_size, const char *dest) {
  int64_t t0 = wv_mono_ms();
  if (copy_state(data, map_size, dest))
    return 1;
  copy_t c = {.files = 0};
  snprintf(c.src, sizeof c.src, "%s/blobs/sha256", data);
  snprintf(c.dst, sizeof c.dst, "%s/blobs/sha256", dest);
  if (mkdirs(c.dst)) {
    fprintf(stderr, "waved backup: cannot create %s: %s\n", c.dst, strerror(errno));
    return 1;
  }
  if (walk_blobs(c.src, copy_blob, &c))
    return 1;
  fprintf(stderr, "waved backup: state store and %llu blobs (%llu bytes) copied to %s in %lld ms\n",
          (unsigned long long)c.files, (unsigned long long)c.bytes, dest,
          (long long)(wv_mono_ms() - t0));
  return 0;
}
