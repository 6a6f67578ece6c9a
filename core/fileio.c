/*
 * core/fileio.c — whole-buffer pread/pwrite (core/fileio.h).
 */
#include "core/fileio.h"

#include <errno.h>
#include <unistd.h>

int wv_fileio_pwrite(int fd, const void *p, size_t n, off_t off) {
  const unsigned char *c = p;
  while (n) {
    ssize_t w = pwrite(fd, c, n, off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return w < 0 ? errno : EIO;
    c += w;
    n -= (size_t)w;
    off += w;
  }
  return 0;
}

int wv_fileio_pread(int fd, void *p, size_t n, off_t off) {
  unsigned char *c = p;
  while (n) {
    ssize_t r = pread(fd, c, n, off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return r < 0 ? errno : EIO;
    c += r;
    n -= (size_t)r;
    off += r;
  }
  return 0;
}
