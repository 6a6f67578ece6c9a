/* scan/zip.c — see zip.h. Layout: APPNOTE.TXT section 4.3 (EOCD, central and local headers). */
#include "scan/zip.h"

#include "core/err.h"
#include "core/fileio.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define EOCD_SIG 0x06054b50u
#define CDH_SIG 0x02014b50u
#define LFH_SIG 0x04034b50u
#define EOCD_MIN 22
#define CD_MAX (256u << 20)

static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int pread_all(int fd, void *buf, size_t n, off_t off) {
  return wv_fileio_pread(fd, buf, n, off) ? WV_EIO : 0;
}

/* Finds the end-of-central-directory record: cd offset/size and entry count. */
static int find_eocd(int fd, off_t size, uint32_t *cd_off, uint32_t *cd_size, char *err,
                     size_t errlen) {
  size_t tail = size < 65535 + EOCD_MIN ? (size_t)size : 65535 + EOCD_MIN;
  unsigned char *b = malloc(tail ? tail : 1);
  if (!b)
    return WV_ENOMEM;
  int rc = pread_all(fd, b, tail, size - (off_t)tail);
  if (!rc) {
    rc = WV_EPARSE;
    for (size_t i = tail >= EOCD_MIN ? tail - EOCD_MIN + 1 : 0; i-- > 0;) {
      if (u32(b + i) != EOCD_SIG)
        continue;
      const unsigned char *e = b + i;
      if (u16(e + 4) != 0 || u16(e + 6) != 0 || u16(e + 8) != u16(e + 10)) {
        snprintf(err, errlen, "multi-disk zip archives are not supported");
      } else if (u32(e + 16) == 0xffffffffu || u16(e + 10) == 0xffff) {
        snprintf(err, errlen, "zip64 archives are not supported");
      } else {
        *cd_size = u32(e + 12);
        *cd_off = u32(e + 16);
        rc = (uint64_t)*cd_off + *cd_size <= (uint64_t)size ? 0 : WV_EPARSE;
        if (rc)
          snprintf(err, errlen, "central directory lies outside the file");
      }
      break;
    }
    if (rc && !*err)
      snprintf(err, errlen, "not a zip archive (no end of central directory)");
  }
  free(b);
  return rc;
}

/* Reads and inflates one member into *out (malloc'd). Returns 0 or sets *why. */
static int read_member(int fd, const unsigned char *c, size_t max, char **out, size_t *outlen,
                       const char **why) {
  uint16_t method = u16(c + 10), flags = u16(c + 8);
  uint32_t crc = u32(c + 16), csize = u32(c + 20), usize = u32(c + 24), lho = u32(c + 42);
  unsigned char lh[30];
  *out = NULL;
  if (flags & 1)
    return *why = "encrypted member", WV_EPARSE;
  if (usize > max || csize > max)
    return *why = "member larger than the cap", WV_ETOOBIG;
  if (method != 0 && method != 8)
    return *why = "unsupported compression method", WV_EPARSE;
  if (pread_all(fd, lh, sizeof lh, lho) || u32(lh) != LFH_SIG)
    return *why = "bad local header", WV_EPARSE;
  off_t data = (off_t)lho + 30 + u16(lh + 26) + u16(lh + 28);
  char *cbuf = malloc(csize ? csize : 1), *ubuf = malloc((size_t)usize + 1);
  int rc = (cbuf && ubuf) ? pread_all(fd, cbuf, csize, data) : WV_ENOMEM;
  if (rc) {
    *why = rc == WV_ENOMEM ? "out of memory" : "truncated member";
  } else if (method == 0) {
    if (csize != usize)
      rc = WV_EPARSE, *why = "stored member with two sizes";
    else
      memcpy(ubuf, cbuf, usize);
  } else {
    z_stream z = {0};
    if (inflateInit2(&z, -15) != Z_OK) {
      rc = WV_ENOMEM, *why = "out of memory";
    } else {
      z.next_in = (Bytef *)cbuf, z.avail_in = csize;
      z.next_out = (Bytef *)ubuf, z.avail_out = usize;
      int zr = inflate(&z, Z_FINISH);
      if (zr != Z_STREAM_END || z.total_out != usize)
        rc = WV_EPARSE, *why = "corrupt deflate data";
      inflateEnd(&z);
    }
  }
  if (!rc && crc32(0L, (const Bytef *)ubuf, usize) != crc)
    rc = WV_EPARSE, *why = "CRC mismatch";
  free(cbuf);
  if (rc) {
    free(ubuf);
    return rc;
  }
  ubuf[usize] = '\0';
  *out = ubuf;
  *outlen = usize;
  return 0;
}

static int walk_cd(int fd, const unsigned char *cd, size_t n, const char *suffix, size_t max,
                   wv_zip_member_cb member_cb, wv_zip_skip_cb skip_cb, void *arg, char *err,
                   size_t errlen) {
  size_t sl = suffix ? strlen(suffix) : 0;
  for (size_t p = 0; p + 46 <= n;) {
    const unsigned char *c = cd + p;
    if (u32(c) != CDH_SIG) {
      snprintf(err, errlen, "corrupt central directory at entry offset %zu", p);
      return WV_EPARSE;
    }
    size_t nl = u16(c + 28), el = u16(c + 30), cl = u16(c + 32);
    if (p + 46 + nl + el + cl > n) {
      snprintf(err, errlen, "truncated central directory");
      return WV_EPARSE;
    }
    char name[1024];
    size_t k = nl < sizeof name - 1 ? nl : sizeof name - 1;
    memcpy(name, c + 46, k);
    name[k] = '\0';
    p += 46 + nl + el + cl;
    if (!nl || name[k - 1] == '/' || (sl && (k < sl || strcmp(name + k - sl, suffix) != 0)))
      continue;
    char *data;
    size_t len;
    const char *why = NULL;
    int rc = read_member(fd, c, max, &data, &len, &why);
    if (rc == WV_ENOMEM)
      return rc;
    if (rc) {
      if (skip_cb)
        skip_cb(arg, name, why);
      continue;
    }
    rc = member_cb(arg, name, data, len);
    free(data);
    if (rc)
      return rc;
  }
  return 0;
}

int wv_zip_each(const char *path, const char *suffix, size_t max, wv_zip_member_cb member_cb,
                wv_zip_skip_cb skip_cb, void *arg, char *err, size_t errlen) {
  err[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open %s", path);
    return WV_EIO;
  }
  struct stat st;
  uint32_t cd_off = 0, cd_size = 0;
  unsigned char *cd = NULL;
  int rc = fstat(fd, &st) ? WV_EIO : find_eocd(fd, st.st_size, &cd_off, &cd_size, err, errlen);
  if (!rc && cd_size > CD_MAX) {
    snprintf(err, errlen, "central directory larger than %u bytes", CD_MAX);
    rc = WV_ETOOBIG;
  }
  if (!rc)
    rc = (cd = malloc(cd_size ? cd_size : 1)) ? pread_all(fd, cd, cd_size, cd_off) : WV_ENOMEM;
  if (!rc)
    rc = walk_cd(fd, cd, cd_size, suffix, max, member_cb, skip_cb, arg, err, errlen);
  if (rc == WV_EIO && !*err)
    snprintf(err, errlen, "read error on %s", path);
  free(cd);
  close(fd);
  return rc;
}
