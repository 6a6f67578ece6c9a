/*
 * storage/log.h — build logs kept as zstd-compressed files.
 *
 * The prefix is wv_logstore_ (not wv_log_) so it cannot be confused with the
 * process logger in core/log.h. Files are written atomically: a reader sees
 * either the old file, the new one, or none, never a part. No state; every
 * function may be called from any thread.
 */
#ifndef WV_STORAGE_LOG_H
#define WV_STORAGE_LOG_H

#include <stddef.h>

/*
 * Compresses len bytes of data into path (temp file in the same directory,
 * fsync, rename, fsync of the directory). level is the zstd level (0 = zstd's
 * default). Returns 0, WV_EINVAL, WV_EIO, WV_ENOMEM, WV_EINTERNAL.
 */
int wv_logstore_put(const char *path, const void *data, size_t len, int level);

/*
 * Reads path back decompressed: *out is malloc'd, NUL-terminated (not counted
 * in *len) and freed by the caller. Decompression stops with WV_ETOOBIG
 * once the text would exceed max bytes, so a hostile file cannot exhaust
 * memory. Returns 0, WV_ENOTFOUND, WV_ETOOBIG, WV_EPARSE (not zstd, or
 * truncated), WV_EIO, WV_ENOMEM.
 */
int wv_logstore_get(const char *path, size_t max, char **out, size_t *len);

#endif
