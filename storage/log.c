/* storage/log.c — zstd-compressed build logs; see log.h. */
#include "storage/log.h"

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = write(fd, c, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return k < 0 ? wv_err_io(errno) : WV_EIO;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Streams data through a compressor into fd. */
static int compress_to(int fd, const void *data, size_t len, int level) {
  ZSTD_CCtx *cc = ZSTD_createCCtx();
  size_t cap = ZSTD_CStreamOutSize();
  char *obuf = malloc(cap);
  int rc = cc && obuf ? 0 : WV_ENOMEM;
  if (!rc && level && ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level)))
    rc = WV_EINVAL;
  if (!rc)
    ZSTD_CCtx_setPledgedSrcSize(cc, len);
  ZSTD_inBuffer in = {data, len, 0};
  size_t left = 1;
  while (!rc && left) {
    ZSTD_outBuffer out = {obuf, cap, 0};
    left = ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end);
    if (ZSTD_isError(left))
      rc = WV_EINTERNAL;
    else
      rc = write_all(fd, obuf, out.pos);
  }
  free(obuf);
  ZSTD_freeCCtx(cc);
  return rc;
}

static int fsync_parent(const char *path) {
  char *copy = strdup(path);
  if (!copy)
    return WV_ENOMEM;
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(copy);
  if (fd < 0)
    return WV_EIO;
  int rc = fsync(fd) == 0 ? 0 : wv_err_io(errno);
  close(fd);
  return rc;
}

int wv_logstore_put(const char *path, const void *data, size_t len, int level) {
  if (!path || !*path || (!data && len))
    return WV_EINVAL;
  /* Unique per process and call, so two writers of one path never share a temp. */
  static atomic_ulong seq;
  char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp.%ld.%lu", path, (long)getpid(), atomic_fetch_add(&seq, 1)) < 0)
    return WV_ENOMEM;
  int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    wv_error("logstore: cannot create %s: %s", tmp, strerror(e));
    free(tmp);
    return wv_err_io(e);
  }
  rc = compress_to(fd, data, len, level);
  if (!rc && fsync(fd) != 0)
    rc = wv_err_io(errno);
  if (close(fd) != 0 && !rc)
    rc = wv_err_io(errno);
  if (!rc && rename(tmp, path) != 0)
    rc = wv_err_io(errno);
  if (!rc)
    rc = fsync_parent(path);
  if (rc) {
    wv_error("logstore: cannot write %s: %s", path, wv_strerror(rc));
    unlink(tmp);
  }
  free(tmp);
  return rc;
}

/*
 * Feeds one chunk of compressed input through the decompressor into b; keeps
 * calling while the output chunk comes back full, since the decompressor may
 * still hold data after it consumed all the input. wv_buf enforces the cap.
 */
static int feed(ZSTD_DCtx *dc, wv_buf_t *b, char *chunk, size_t cap, const char *p, size_t n,
                size_t *last) {
  ZSTD_inBuffer in = {p, n, 0};
  ZSTD_outBuffer out;
  do {
    out = (ZSTD_outBuffer){chunk, cap, 0};
    size_t before = in.pos;
    size_t r = ZSTD_decompressStream(dc, &out, &in);
    if (ZSTD_isError(r))
      return WV_EPARSE;
    /* A call that moved nothing reports the next frame's header hint: ignore it. */
    if (in.pos != before || out.pos)
      *last = r;
    int rc = wv_buf_append(b, chunk, out.pos);
    if (rc)
      return rc;
  } while (in.pos < in.size || out.pos == out.size);
  return 0;
}

int wv_logstore_get(const char *path, size_t max, char **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? WV_ENOTFOUND : WV_EIO;
  wv_buf_t b;
  wv_buf_init(&b, max);
  ZSTD_DCtx *dc = ZSTD_createDCtx();
  size_t icap = ZSTD_DStreamInSize(), ocap = ZSTD_DStreamOutSize(), last = 1;
  char *ibuf = malloc(icap), *obuf = malloc(ocap);
  int rc = dc && ibuf && obuf ? wv_buf_append(&b, "", 0) : WV_ENOMEM;
  for (ssize_t n = 1; !rc && n > 0;) {
    n = read(fd, ibuf, icap);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      rc = WV_EIO;
    else if (n > 0)
      rc = feed(dc, &b, obuf, ocap, ibuf, (size_t)n, &last);
  }
  if (!rc && last != 0) /* the input ended inside a frame */
    rc = WV_EPARSE;
  close(fd);
  free(ibuf);
  free(obuf);
  ZSTD_freeDCtx(dc);
  if (rc) {
    wv_buf_free(&b);
    return rc;
  }
  *out = wv_buf_detach(&b, len);
  return 0;
}
