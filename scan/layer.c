/*
 * scan/layer.c — format detection and streaming gzip/zstd decoding.
 */
#include "scan/layer.h"

#include "core/err.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

struct wv_layer {
  wv_layer_sink_cb sink;
  void *arg;
  wv_layer_comp_t comp;
  unsigned char magic[4];
  size_t nmagic;
  bool failed, z_init, member_done, trailing;
  z_stream z;
  ZSTD_DStream *zs;
  size_t zs_last; /* last ZSTD_decompressStream result: 0 = frame complete */
  unsigned char *out;
  uint64_t in_bytes, out_bytes;
  char err[160];
};

static int fail(wv_layer_t *l, int rc, const char *msg) {
  snprintf(l->err, sizeof l->err, "%s", msg);
  l->failed = true;
  return rc;
}

int wv_layer_new(wv_layer_t **out, wv_layer_sink_cb sink, void *arg) {
  if (!out || !sink)
    return WV_EINVAL;
  wv_layer_t *l = calloc(1, sizeof *l);
  if (!l)
    return WV_ENOMEM;
  l->out = malloc(WV_LAYER_CHUNK);
  if (!l->out) {
    free(l);
    return WV_ENOMEM;
  }
  l->sink = sink;
  l->arg = arg;
  *out = l;
  return 0;
}

void wv_layer_free(wv_layer_t *l) {
  if (!l)
    return;
  if (l->z_init)
    inflateEnd(&l->z);
  ZSTD_freeDStream(l->zs);
  free(l->out);
  free(l);
}

static int emit(wv_layer_t *l, const void *p, size_t n) {
  if (n == 0)
    return 0;
  l->out_bytes += n;
  int rc = l->sink(l->arg, p, n);
  if (rc)
    l->failed = true;
  return rc;
}

static int start(wv_layer_t *l) {
  const unsigned char *m = l->magic;
  if (l->nmagic >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
    l->comp = WV_LAYER_GZIP;
    if (inflateInit2(&l->z, 15 + 16) != Z_OK)
      return fail(l, WV_ENOMEM, "cannot initialise zlib");
    l->z_init = true;
  } else if (l->nmagic >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) {
    l->comp = WV_LAYER_ZSTD;
    l->zs = ZSTD_createDStream();
    if (!l->zs || ZSTD_isError(ZSTD_initDStream(l->zs)))
      return fail(l, WV_ENOMEM, "cannot initialise zstd");
  } else {
    l->comp = WV_LAYER_PLAIN;
  }
  return 0;
}

static int gzip_feed(wv_layer_t *l, const unsigned char *p, size_t n) {
  l->z.next_in = (Bytef *)p;
  l->z.avail_in = (uInt)n;
  while (l->z.avail_in > 0) {
    if (l->trailing)
      return 0; /* bytes after the last member that are not a gzip header: ignored, like gzip */
    if (l->member_done) {
      if (l->z.next_in[0] != 0x1f) {
        l->trailing = true;
        return 0;
      }
      inflateReset(&l->z);
      l->member_done = false;
    }
    l->z.next_out = l->out;
    l->z.avail_out = WV_LAYER_CHUNK;
    uInt before = l->z.avail_in;
    int zr = inflate(&l->z, Z_NO_FLUSH);
    bool stuck = zr == Z_BUF_ERROR && l->z.avail_in == before && l->z.avail_out == WV_LAYER_CHUNK;
    if ((zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) || stuck)
      return fail(l, WV_EPARSE, l->z.msg ? l->z.msg : "corrupt gzip stream");
    int rc = emit(l, l->out, WV_LAYER_CHUNK - l->z.avail_out);
    if (rc)
      return rc;
    if (zr == Z_STREAM_END)
      l->member_done = true;
  }
  return 0;
}

static int zstd_feed(wv_layer_t *l, const unsigned char *p, size_t n) {
  ZSTD_inBuffer in = {p, n, 0};
  bool full = false;
  /* Call again while input remains or the last call filled the output (more may be buffered);
   * never call with neither, which would start waiting for another frame. */
  while (in.pos < in.size || full) {
    ZSTD_outBuffer out = {l->out, WV_LAYER_CHUNK, 0};
    size_t r = ZSTD_decompressStream(l->zs, &out, &in);
    if (ZSTD_isError(r))
      return fail(l, WV_EPARSE, ZSTD_getErrorName(r));
    l->zs_last = r;
    int rc = emit(l, l->out, out.pos);
    if (rc)
      return rc;
    full = out.pos == out.size;
  }
  return 0;
}

static int feed(wv_layer_t *l, const unsigned char *p, size_t n) {
  switch (l->comp) {
  case WV_LAYER_GZIP:
    return gzip_feed(l, p, n);
  case WV_LAYER_ZSTD:
    return zstd_feed(l, p, n);
  default:
    return emit(l, p, n);
  }
}

int wv_layer_write(wv_layer_t *l, const void *p, size_t n) {
  const unsigned char *s = p;
  if (l->failed)
    return WV_EINVAL;
  l->in_bytes += n;
  if (l->comp == WV_LAYER_UNKNOWN) {
    while (n > 0 && l->nmagic < 4)
      l->magic[l->nmagic++] = *s++, n--;
    if (l->nmagic < 4)
      return 0;
    int rc = start(l);
    if (!rc)
      rc = feed(l, l->magic, 4);
    if (rc)
      return rc;
  }
  return n ? feed(l, s, n) : 0;
}

int wv_layer_finish(wv_layer_t *l) {
  if (l->failed)
    return WV_EINVAL;
  if (l->comp == WV_LAYER_UNKNOWN) { /* fewer than 4 bytes in all */
    int rc = start(l);
    if (!rc)
      rc = feed(l, l->magic, l->nmagic);
    if (rc)
      return rc;
  }
  if (l->comp == WV_LAYER_GZIP && !l->member_done && !l->trailing)
    return fail(l, WV_EPARSE, "gzip stream is truncated");
  if (l->comp == WV_LAYER_ZSTD && l->zs_last != 0)
    return fail(l, WV_EPARSE, "zstd stream is truncated");
  return 0;
}

wv_layer_comp_t wv_layer_compression(const wv_layer_t *l) { return l->comp; }
uint64_t wv_layer_bytes_in(const wv_layer_t *l) { return l->in_bytes; }
uint64_t wv_layer_bytes_out(const wv_layer_t *l) { return l->out_bytes; }
const char *wv_layer_error(const wv_layer_t *l) { return l->err; }

const char *wv_layer_comp_name(wv_layer_comp_t c) {
  switch (c) {
  case WV_LAYER_PLAIN:
    return "plain";
  case WV_LAYER_GZIP:
    return "gzip";
  case WV_LAYER_ZSTD:
    return "zstd";
  default:
    return "unknown";
  }
}

typedef struct {
  int fd;
} fd_src;

static long fd_read(void *arg, void *buf, size_t n) {
  fd_src *s = arg;
  for (;;) {
    ssize_t r = read(s->fd, buf, n);
    if (r >= 0)
      return (long)r;
    if (errno != EINTR)
      return WV_EIO;
  }
}

int wv_layer_read(wv_layer_read_cb read_cb, void *read_arg, wv_layer_sink_cb sink, void *arg,
                  wv_layer_comp_t *comp) {
  enum { INBUF = 128 * 1024 };
  wv_layer_t *l = NULL;
  unsigned char *buf = malloc(INBUF);
  int rc = buf ? wv_layer_new(&l, sink, arg) : WV_ENOMEM;
  while (!rc) {
    long r = read_cb(read_arg, buf, INBUF);
    if (r < 0)
      rc = (int)r;
    else if (r == 0)
      break;
    else
      rc = wv_layer_write(l, buf, (size_t)r);
  }
  if (!rc)
    rc = wv_layer_finish(l);
  if (comp)
    *comp = l ? l->comp : WV_LAYER_UNKNOWN;
  wv_layer_free(l);
  free(buf);
  return rc;
}

int wv_layer_read_fd(int fd, wv_layer_sink_cb sink, void *arg, wv_layer_comp_t *comp) {
  fd_src s = {fd};
  return wv_layer_read(fd_read, &s, sink, arg, comp);
}
