/*
 * tests/test_scan_util.h — what the scan tests build their images from: a tar
 * writer (ustar, pax path records, GNU long names, whiteouts), gzip and zstd
 * compression, a zip writer, and small file helpers. Everything in memory
 * except the files the tests ask for.
 */
#ifndef WV_TEST_SCAN_UTIL_H
#define WV_TEST_SCAN_UTIL_H

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define TAR_CAP (1u << 30)

static inline void tar_octal(char *f, size_t n, unsigned long long v) {
  snprintf(f, n, "%0*llo", (int)(n - 1), v);
}

static inline void tar_header(wv_buf_t *t, const char *name, char type, size_t size,
                              const char *link) {
  char h[512];
  memset(h, 0, sizeof h);
  snprintf(h, 100, "%s", name);
  tar_octal(h + 100, 8, type == '5' ? 0755 : 0644);
  tar_octal(h + 108, 8, 0);
  tar_octal(h + 116, 8, 0);
  tar_octal(h + 124, 12, size);
  tar_octal(h + 136, 12, 0);
  h[156] = type;
  if (link)
    snprintf(h + 157, 100, "%s", link);
  memcpy(h + 257, "ustar\0" "00", 8);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  wv_buf_append(t, h, 512);
}

static inline void tar_pad(wv_buf_t *t, size_t n) {
  static const char zero[512];
  if (n % 512)
    wv_buf_append(t, zero, 512 - n % 512);
}

static inline void tar_data(wv_buf_t *t, const char *name, char type, const void *data, size_t n,
                            const char *link) {
  tar_header(t, name, type, n, link);
  wv_buf_append(t, data, n);
  tar_pad(t, n);
}

/* A regular file; names of 100 bytes or more get a pax "path" record first. */
static inline void tar_file(wv_buf_t *t, const char *name, const char *content) {
  size_t n = strlen(content);
  if (strlen(name) >= 100) {
    char rec[8192];
    size_t body = strlen(name) + strlen(" path=\n");
    size_t len = body + 1;
    while (snprintf(NULL, 0, "%zu", len) + body != len)
      len++;
    snprintf(rec, sizeof rec, "%zu path=%s\n", len, name);
    tar_data(t, "PaxHeaders/x", 'x', rec, strlen(rec), NULL);
    tar_data(t, "placeholder", '0', content, n, NULL);
    return;
  }
  tar_data(t, name, '0', content, n, NULL);
}

/* A regular file whose name comes in a GNU 'L' long-name record. */
static inline void tar_file_gnu(wv_buf_t *t, const char *name, const char *content) {
  tar_data(t, "././@LongLink", 'L', name, strlen(name) + 1, NULL);
  tar_data(t, "trunc", '0', content, strlen(content), NULL);
}

static inline void tar_dir(wv_buf_t *t, const char *name) { tar_header(t, name, '5', 0, NULL); }
static inline void tar_symlink(wv_buf_t *t, const char *name, const char *target) {
  tar_header(t, name, '2', 0, target);
}
static inline void tar_end(wv_buf_t *t) {
  static const char zero[1024];
  wv_buf_append(t, zero, sizeof zero);
}

static inline void gzip_buf(const wv_buf_t *in, wv_buf_t *out, int level) {
  z_stream z = {0};
  deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  size_t cap = deflateBound(&z, in->len) + 64;
  wv_buf_reserve(out, cap);
  z.next_in = (Bytef *)in->data;
  z.avail_in = (uInt)in->len;
  z.next_out = (Bytef *)out->data + out->len;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_FINISH);
  out->len += cap - z.avail_out;
  deflateEnd(&z);
}

static inline void zstd_buf(const wv_buf_t *in, wv_buf_t *out, int level) {
  size_t cap = ZSTD_compressBound(in->len);
  wv_buf_reserve(out, cap);
  size_t n = ZSTD_compress(out->data + out->len, cap, in->data, in->len, level);
  out->len += ZSTD_isError(n) ? 0 : n;
}

static inline int write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t w = fwrite(p, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

/* ---- zip writer: members stored (method 0) or deflated (8) ---- */

typedef struct {
  wv_buf_t data, cd;
  unsigned n;
} zipw_t;

static inline void le16(wv_buf_t *b, unsigned v) {
  unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
  wv_buf_append(b, x, 2);
}
static inline void le32(wv_buf_t *b, unsigned long v) {
  le16(b, (unsigned)(v & 0xffff));
  le16(b, (unsigned)(v >> 16));
}

static inline void zip_add(zipw_t *z, const char *name, const char *content, int deflated) {
  size_t n = strlen(content), nl = strlen(name);
  unsigned long crc = crc32(0L, (const Bytef *)content, (uInt)n);
  wv_buf_t c;
  wv_buf_init(&c, TAR_CAP);
  if (deflated) {
    z_stream s = {0};
    deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&s, n) + 16;
    wv_buf_reserve(&c, cap);
    s.next_in = (Bytef *)content, s.avail_in = (uInt)n;
    s.next_out = (Bytef *)c.data, s.avail_out = (uInt)cap;
    deflate(&s, Z_FINISH);
    c.len = cap - s.avail_out;
    deflateEnd(&s);
  } else {
    wv_buf_append(&c, content, n);
  }
  unsigned long off = (unsigned long)z->data.len;
  le32(&z->data, 0x04034b50), le16(&z->data, 20), le16(&z->data, 0);
  le16(&z->data, deflated ? 8 : 0), le16(&z->data, 0), le16(&z->data, 0);
  le32(&z->data, crc), le32(&z->data, c.len), le32(&z->data, n);
  le16(&z->data, (unsigned)nl), le16(&z->data, 0);
  wv_buf_append(&z->data, name, nl);
  wv_buf_append(&z->data, c.data ? c.data : "", c.len);
  le32(&z->cd, 0x02014b50), le16(&z->cd, 20), le16(&z->cd, 20), le16(&z->cd, 0);
  le16(&z->cd, deflated ? 8 : 0), le16(&z->cd, 0), le16(&z->cd, 0);
  le32(&z->cd, crc), le32(&z->cd, c.len), le32(&z->cd, n);
  le16(&z->cd, (unsigned)nl), le16(&z->cd, 0), le16(&z->cd, 0), le16(&z->cd, 0);
  le16(&z->cd, 0), le32(&z->cd, 0), le32(&z->cd, off);
  wv_buf_append(&z->cd, name, nl);
  wv_buf_free(&c);
  z->n++;
}

static inline int zip_write(zipw_t *z, const char *path) {
  unsigned long cd_off = (unsigned long)z->data.len;
  wv_buf_append(&z->data, z->cd.data ? z->cd.data : "", z->cd.len);
  le32(&z->data, 0x06054b50), le16(&z->data, 0), le16(&z->data, 0);
  le16(&z->data, z->n), le16(&z->data, z->n);
  le32(&z->data, z->cd.len), le32(&z->data, cd_off), le16(&z->data, 0);
  int rc = write_file(path, z->data.data, z->data.len);
  wv_buf_free(&z->data);
  wv_buf_free(&z->cd);
  return rc;
}

#endif
