/*
 * storage/cas.c — content-addressed blobs: temp file, verify, fsync, rename,
 * fsync the directory. See cas.h for the layout and the guarantees.
 *
 * Crash safety comes from ordering: the data is fsynced before the rename,
 * so a name under blobs/sha256 only ever points at complete content, and the
 * directory is fsynced after the rename (and the shard's parent after a
 * shard is created) before commit returns, so an acknowledged blob cannot
 * vanish.
 *
 * Several instances may share one blob directory (docs/scale-out.md): each
 * writes its temporaries into its own blobs/tmp/<instance>/ (the host name
 * and a hash of the storage path, stable across restarts), so a starting
 * instance removes everything in its own directory (its crash leftovers, no
 * writer can hold them) but only what is older than STALE_OTHERS_S in the
 * others', which may be blobs in flight. No lock file is ever created: the
 * O_EXCL temp name and the rename are the only coordination.
 */
#include "storage/cas.h"

#include "core/err.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREFIX "sha256:"
#define PREFIX_LEN 7
#define HEX_LEN 64
/* Another instance's temp file this old is a crash leftover: no blob write takes a day. */
#define STALE_OTHERS_S (24 * 3600)
#define INSTANCE_MAX 96

struct wv_cas {
  char *root; /* <root>/blobs */
  char *shas; /* <root>/blobs/sha256 */
  char *tmp;  /* <root>/blobs/tmp/<instance> */
  char instance[INSTANCE_MAX];
  uint64_t max_blob;
  atomic_uint_fast64_t seq; /* temp file names */
  atomic_uint_fast64_t
      removals; /* blobs this process removed, counted after each unlink (wv_cas_removals) */
};

struct wv_cas_writer {
  wv_cas_t *cas;
  int fd;
  int err; /* sticky error from write */
  uint64_t size;
  EVP_MD_CTX *md;
  char path[];
};

/* ---- paths ------------------------------------------------------------ */

int wv_cas_digest_valid(const char *d) {
  if (!d || strncmp(d, PREFIX, PREFIX_LEN) != 0)
    return 0;
  for (int i = 0; i < HEX_LEN; i++) {
    char ch = d[PREFIX_LEN + i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
      return 0;
  }
  return d[PREFIX_LEN + HEX_LEN] == '\0';
}

/* <shas>/<2 hex>/<64 hex> (with_file) or <shas>/<2 hex>. The digest is valid. */
static char *blob_path(const wv_cas_t *c, const char *digest, int with_file) {
  const char *hex = digest + PREFIX_LEN;
  char *p = NULL;
  int n = with_file ? asprintf(&p, "%s/%.2s/%s", c->shas, hex, hex)
                    : asprintf(&p, "%s/%.2s", c->shas, hex);
  return n < 0 ? NULL : p;
}

static char *join(const char *a, const char *b) {
  char *p = NULL;
  return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

static int mkdir_ok(const char *path) {
  if (mkdir(path, 0700) == 0 || errno == EEXIST)
    return 0;
  wv_error("cas: cannot create %s: %s", path, strerror(errno));
  return WV_EIO;
}

static int fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return WV_EIO;
  int rc = fsync(fd) == 0 ? 0 : wv_err_io(errno);
  close(fd);
  return rc;
}

/*
 * Removes the regular files of dir (all of them, or only those last modified
 * before older_than when it is not 0) and returns how many went.
 */
static int clean_files(int dfd, const char *dir, time_t older_than) {
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return 0;
  }
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (older_than && st.st_mtime >= older_than)
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0)
      n++;
    else
      wv_warn("cas: cannot remove stale temp %s/%s: %s", dir, e->d_name, strerror(errno));
  }
  closedir(d);
  return n;
}

/*
 * The temporaries left by crashes: every file of this instance's own temp
 * directory, and in the other instances' directories (and loose files of the
 * layout before instances, directly in blobs/tmp) only files older than
 * STALE_OTHERS_S; another instance's directory left empty and old goes too.
 */
static int clean_tmp(const char *top, const char *own) {
  DIR *d = opendir(top);
  if (!d)
    return WV_EIO;
  time_t old = time(NULL) - STALE_OTHERS_S;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
        fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (S_ISREG(st.st_mode) && st.st_mtime < old) {
      n += unlinkat(dirfd(d), e->d_name, 0) == 0;
      continue;
    }
    if (!S_ISDIR(st.st_mode))
      continue;
    bool mine = strcmp(e->d_name, own) == 0;
    int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
      n += clean_files(fd, top, mine ? 0 : old);
    if (!mine && st.st_mtime < old)
      unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR); /* fails harmlessly when not empty */
  }
  closedir(d);
  if (n)
    wv_info("cas: removed %d stale temp files from %s", n, top);
  return 0;
}

/*
 * This instance's name among those sharing a blob directory: the host name
 * (file-name safe) and 8 hex of a hash of the storage root, so two instances
 * on one host or one path on two hosts differ, and a restart keeps its name.
 */
static void instance_name(const char *root, char *out, size_t cap) {
  char host[65] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "host");
  for (char *p = host; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '-' || *p == '.'))
      *p = '_';
  char real[PATH_MAX];
  const char *path = realpath(root, real) ? real : root;
  uint32_t h = 2166136261u; /* FNV-1a: a name, not a secret */
  for (const unsigned char *p = (const unsigned char *)path; *p; p++)
    h = (h ^ *p) * 16777619u;
  snprintf(out, cap, "%s-%08x", host, (unsigned)h);
}

const char *wv_cas_instance(const wv_cas_t *c) { return c->instance; }

/* ---- open / close ------------------------------------------------------ */

void wv_cas_close(wv_cas_t *c) {
  if (!c)
    return;
  free(c->root);
  free(c->shas);
  free(c->tmp);
  free(c);
}

int wv_cas_open(wv_cas_t **out, const char *root, uint64_t max_blob) {
  if (!out || !root || !*root)
    return WV_EINVAL;
  int rc = WV_ENOMEM;
  wv_cas_t *c = calloc(1, sizeof *c);
  if (!c)
    return WV_ENOMEM;
  c->max_blob = max_blob;
  atomic_init(&c->seq, 0);
  char *top = NULL;
  if ((rc = mkdir_ok(root)) != 0)
    goto out;
  rc = WV_ENOMEM;
  instance_name(root, c->instance, sizeof c->instance);
  c->root = join(root, "blobs");
  c->shas = c->root ? join(c->root, "sha256") : NULL;
  top = c->root ? join(c->root, "tmp") : NULL;
  c->tmp = top ? join(top, c->instance) : NULL;
  if (!c->shas || !c->tmp)
    goto out;
  if ((rc = mkdir_ok(c->root)) || (rc = mkdir_ok(c->shas)) || (rc = mkdir_ok(top)) ||
      (rc = mkdir_ok(c->tmp)))
    goto out;
  if ((rc = clean_tmp(top, c->instance)) != 0)
    goto out;
  *out = c;
  c = NULL;
out:
  free(top);
  wv_cas_close(c);
  return rc;
}

/* ---- writing ------------------------------------------------------------ */

static int begin(wv_cas_t *c, bool hashed, wv_cas_writer_t **out) {
  size_t cap = strlen(c->tmp) + 64;
  wv_cas_writer_t *w = calloc(1, sizeof *w + cap);
  if (!w)
    return WV_ENOMEM;
  w->cas = c;
  w->fd = -1;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seq = atomic_fetch_add(&c->seq, 1);
  snprintf(w->path, cap, "%s/%ld-%llu-%lx", c->tmp, (long)getpid(), (unsigned long long)seq,
           (unsigned long)ts.tv_nsec);
  if (hashed) {
    w->md = EVP_MD_CTX_new();
    if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
      EVP_MD_CTX_free(w->md);
      free(w);
      return WV_ENOMEM;
    }
  }
  /* Readable too: a blob being written can be read back while it grows
   * (registry/blobfill.h). */
  w->fd = open(w->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (w->fd < 0) {
    int e = errno;
    wv_error("cas: cannot create %s: %s", w->path, strerror(e));
    EVP_MD_CTX_free(w->md);
    free(w);
    return wv_err_io(e);
  }
  *out = w;
  return 0;
}

int wv_cas_begin(wv_cas_t *c, wv_cas_writer_t **out) { return begin(c, true, out); }

int wv_cas_begin_verified(wv_cas_t *c, wv_cas_writer_t **out) { return begin(c, false, out); }

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return k < 0 ? wv_err_io(errno) : WV_EIO;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

int wv_cas_write(wv_cas_writer_t *w, const void *p, size_t n) {
  if (w->err)
    return w->err;
  if (w->cas->max_blob && (n > w->cas->max_blob || w->size > w->cas->max_blob - n))
    return w->err = WV_ETOOBIG;
  if (w->md && EVP_DigestUpdate(w->md, p, n) != 1)
    return w->err = WV_EINTERNAL;
  int rc = write_all(w->fd, p, n);
  if (rc) {
    wv_error("cas: write %s: %s", w->path, rc == WV_ENOSPC ? strerror(ENOSPC) : strerror(errno));
    return w->err = rc;
  }
  w->size += n;
  return 0;
}

uint64_t wv_cas_written(const wv_cas_writer_t *w) { return w->size; }

int wv_cas_writer_fd(const wv_cas_writer_t *w) { return w->fd; }

void wv_cas_abort(wv_cas_writer_t *w) {
  if (!w)
    return;
  if (w->fd >= 0) {
    close(w->fd);
    unlink(w->path);
  }
  EVP_MD_CTX_free(w->md);
  free(w);
}

static int finish_digest(wv_cas_writer_t *w, char *digest) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(w->md, md, &len) != 1 || len != HEX_LEN / 2)
    return WV_EINTERNAL;
  memcpy(digest, PREFIX, PREFIX_LEN);
  for (unsigned i = 0; i < len; i++)
    snprintf(digest + PREFIX_LEN + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/*
 * Renames the verified temp file into place and makes the name durable. An
 * existing blob of the same digest is replaced by identical content (readers
 * holding it open keep the old inode), so a successful commit always means
 * the blob is there, even if a delete raced with it.
 */
static int publish(wv_cas_writer_t *w, const char *digest) {
  wv_cas_t *c = w->cas;
  int rc = WV_ENOMEM;
  char *dir = blob_path(c, digest, 0), *dst = blob_path(c, digest, 1);
  if (!dir || !dst)
    goto out;
  int created = mkdir(dir, 0700) == 0;
  if (!created && errno != EEXIST) {
    rc = wv_err_io(errno);
    goto out;
  }
  if (created && fsync_dir(c->shas) != 0) {
    rc = WV_EIO;
    goto out;
  }
  if (rename(w->path, dst) != 0) {
    wv_error("cas: rename %s -> %s: %s", w->path, dst, strerror(errno));
    rc = WV_EIO;
    goto out;
  }
  rc = fsync_dir(dir);
out:
  if (rc)
    unlink(w->path);
  free(dir);
  free(dst);
  return rc;
}

int wv_cas_commit(wv_cas_writer_t *w, const char *expected, char *digest_out) {
  char digest[WV_CAS_DIGEST_LEN + 1];
  int rc = w->err;
  if (!rc && expected && !wv_cas_digest_valid(expected))
    rc = WV_EINVAL;
  if (!rc && !w->md && !expected)
    rc = WV_EINVAL;
  if (!rc && !w->md)
    memcpy(digest, expected, sizeof digest);
  else if (!rc)
    rc = finish_digest(w, digest);
  if (!rc && expected && strcmp(expected, digest) != 0)
    rc = WV_EDIGEST;
  if (!rc && fsync(w->fd) != 0) {
    wv_error("cas: fsync %s: %s", w->path, strerror(errno));
    rc = wv_err_io(errno);
  }
  if (rc) {
    wv_cas_abort(w);
    return rc;
  }
  close(w->fd);
  w->fd = -1;
  rc = publish(w, digest);
  if (rc == 0 && digest_out)
    memcpy(digest_out, digest, sizeof digest);
  EVP_MD_CTX_free(w->md);
  free(w);
  return rc;
}

int wv_cas_put(wv_cas_t *c, const void *p, size_t n, const char *expected, char *digest_out) {
  wv_cas_writer_t *w;
  int rc = wv_cas_begin(c, &w);
  if (rc)
    return rc;
  if ((rc = wv_cas_write(w, p, n)) != 0) {
    wv_cas_abort(w);
    return rc;
  }
  return wv_cas_commit(w, expected, digest_out);
}

int wv_cas_link_out(wv_cas_t *c, const char *digest, const char *dst) {
  if (!wv_cas_digest_valid(digest) || !dst)
    return WV_EINVAL;
  char *path = blob_path(c, digest, 1);
  if (!path)
    return WV_ENOMEM;
  int rc = link(path, dst) == 0               ? 0
           : errno == EEXIST                  ? WV_EEXISTS
           : errno == ENOENT                  ? WV_ENOTFOUND
           : errno == EXDEV || errno == EPERM ? WV_EUNSUPPORTED
                                              : WV_EIO;
  free(path);
  return rc;
}

/* ---- reading ------------------------------------------------------------ */

int wv_cas_open_blob(wv_cas_t *c, const char *digest, int *fd, uint64_t *size) {
  if (!wv_cas_digest_valid(digest))
    return WV_EINVAL;
  char *path = blob_path(c, digest, 1);
  if (!path)
    return WV_ENOMEM;
  int f = open(path, O_RDONLY | O_CLOEXEC);
  int err = errno;
  free(path);
  if (f < 0)
    return err == ENOENT ? WV_ENOTFOUND : WV_EIO;
  struct stat st;
  if (fstat(f, &st) != 0) {
    close(f);
    return WV_EIO;
  }
  *fd = f;
  *size = (uint64_t)st.st_size;
  return 0;
}

int wv_cas_exists(wv_cas_t *c, const char *digest, uint64_t *size) {
  if (!wv_cas_digest_valid(digest))
    return WV_EINVAL;
  char *path = blob_path(c, digest, 1);
  if (!path)
    return WV_ENOMEM;
  struct stat st;
  int rc = stat(path, &st) == 0 ? 0 : (errno == ENOENT ? WV_ENOTFOUND : WV_EIO);
  free(path);
  if (rc == 0 && size)
    *size = (uint64_t)st.st_size;
  return rc;
}

int wv_cas_delete(wv_cas_t *c, const char *digest) {
  if (!wv_cas_digest_valid(digest))
    return WV_EINVAL;
  char *path = blob_path(c, digest, 1);
  if (!path)
    return WV_ENOMEM;
  int rc = unlink(path) == 0 ? 0 : (errno == ENOENT ? WV_ENOTFOUND : WV_EIO);
  atomic_fetch_add(&c->removals, 1); /* after the unlink: see wv_cas_removals */
  free(path);
  return rc;
}

uint64_t wv_cas_removals(wv_cas_t *c) { return atomic_load(&c->removals); }

/* ---- sweep ---------------------------------------------------------------- */

static int hexnib(char c) {
  return c >= '0' && c <= '9' ? c - '0' : (c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1);
}

/* 64 lowercase hex characters (and nothing more) into 32 bytes; false otherwise. */
static bool name_sha(const char *name, uint8_t sha[32]) {
  if (strlen(name) != HEX_LEN)
    return false;
  for (int i = 0; i < 32; i++) {
    int hi = hexnib(name[2 * i]), lo = hexnib(name[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    sha[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

/* Sweeps one shard directory (<shas>/<2 hex>). */
static int sweep_shard(wv_cas_t *c, int dfd, int64_t cutoff_ms, wv_cas_keep_cb keep, void *arg,
                       uint64_t *removed, uint64_t *bytes) {
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return WV_EIO;
  }
  struct dirent *de;
  uint8_t sha[32];
  while ((de = readdir(d)) != NULL) {
    struct stat st;
    if (!name_sha(de->d_name, sha) || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
      continue;
    int64_t mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    if (!S_ISREG(st.st_mode) || mtime_ms >= cutoff_ms || keep(arg, sha))
      continue;
    int gone = unlinkat(dirfd(d), de->d_name, 0);
    atomic_fetch_add(&c->removals, 1); /* after the unlink: see wv_cas_removals */
    if (gone == 0) {
      if (removed)
        (*removed)++;
      if (bytes)
        *bytes += (uint64_t)st.st_size;
    }
  }
  closedir(d);
  return 0;
}

int wv_cas_sweep(wv_cas_t *c, int64_t cutoff_ms, wv_cas_keep_cb keep, void *arg, uint64_t *removed,
                 uint64_t *bytes) {
  DIR *top = opendir(c->shas);
  if (!top)
    return WV_EIO;
  struct dirent *de;
  int rc = 0;
  while (!rc && (de = readdir(top)) != NULL) {
    if (strlen(de->d_name) != 2 || hexnib(de->d_name[0]) < 0 || hexnib(de->d_name[1]) < 0)
      continue;
    int dfd = openat(dirfd(top), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0)
      rc = sweep_shard(c, dfd, cutoff_ms, keep, arg, removed, bytes);
  }
  closedir(top);
  return rc;
}
