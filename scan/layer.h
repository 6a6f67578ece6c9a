/*
 * scan/layer.h — streaming decompression of an image layer.
 *
 * A layer blob is gzip (Docker/OCI "tar+gzip"), zstd ("tar+zstd") or a plain
 * tar; the format is detected from the first bytes, not trusted from a media
 * type. The decoder is push-fed: the caller writes compressed bytes as they
 * arrive (from a file descriptor, or from a registry download's write
 * callback) and the decoder pushes decompressed chunks of at most
 * WV_LAYER_CHUNK bytes into a sink. Memory is fixed (one output chunk plus
 * the codec's window), whatever the layer size; a layer is never held whole.
 * Concatenated gzip members and zstd frames are decoded in sequence.
 *
 * One thread per wv_layer_t.
 */
#ifndef WV_SCAN_LAYER_H
#define WV_SCAN_LAYER_H

#include <stddef.h>
#include <stdint.h>

#define WV_LAYER_CHUNK (256 * 1024)

typedef enum {
  WV_LAYER_UNKNOWN = 0, /* not detected yet (fewer than 4 bytes seen) */
  WV_LAYER_PLAIN,
  WV_LAYER_GZIP,
  WV_LAYER_ZSTD,
} wv_layer_comp_t;

/* Receives decompressed bytes; returns 0 or a negative WV_E* code that stops decoding. */
typedef int (*wv_layer_sink_cb)(void *arg, const void *p, size_t n);

/* Pull source for wv_layer_read: returns bytes read (> 0), 0 at end, or a negative code. */
typedef long (*wv_layer_read_cb)(void *arg, void *buf, size_t n);

typedef struct wv_layer wv_layer_t;

/* Returns 0 and *out (free with wv_layer_free), or WV_ENOMEM / WV_EINVAL. */
int wv_layer_new(wv_layer_t **out, wv_layer_sink_cb sink, void *arg);
void wv_layer_free(wv_layer_t *l);

/*
 * Feeds n compressed bytes. Returns 0, the sink's error, WV_EPARSE (corrupt
 * stream; detail in wv_layer_error) or WV_ENOMEM. A failed decoder stays failed.
 */
int wv_layer_write(wv_layer_t *l, const void *p, size_t n);

/* End of input: flushes, and returns WV_EPARSE if the stream was truncated. */
int wv_layer_finish(wv_layer_t *l);

wv_layer_comp_t wv_layer_compression(const wv_layer_t *l);
/* "gzip", "zstd", "plain" or "unknown". */
const char *wv_layer_comp_name(wv_layer_comp_t c);
uint64_t wv_layer_bytes_in(const wv_layer_t *l);
uint64_t wv_layer_bytes_out(const wv_layer_t *l);
const char *wv_layer_error(const wv_layer_t *l);

/*
 * Convenience loops over a whole stream: decode everything read from fd (or
 * pulled from read_cb) into sink, then finish. Return as wv_layer_write /
 * wv_layer_finish, or WV_EIO on a read error. comp (may be NULL) gets the
 * detected format.
 */
int wv_layer_read_fd(int fd, wv_layer_sink_cb sink, void *arg, wv_layer_comp_t *comp);
int wv_layer_read(wv_layer_read_cb read_cb, void *read_arg, wv_layer_sink_cb sink, void *arg,
                  wv_layer_comp_t *comp);

#endif
