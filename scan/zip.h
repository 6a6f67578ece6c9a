/*
 * scan/zip.h — a minimal reader of zip archives (the format OSV publishes its
 * per-ecosystem data in): the central directory, stored and deflated members
 * (zlib raw inflate), CRC-32 checked. No zip64, encryption or multi-disk
 * archives: those fail with a clear message. Members are read one at a time
 * with pread, each capped at max bytes, so memory is one member.
 */
#ifndef WV_SCAN_ZIP_H
#define WV_SCAN_ZIP_H

#include <stddef.h>

/* A member's bytes (valid during the call). Return 0 to go on, or a negative code to stop. */
typedef int (*wv_zip_member_cb)(void *arg, const char *name, const char *data, size_t len);
/* A member that could not be read (too large, unknown method, CRC mismatch, ...). */
typedef void (*wv_zip_skip_cb)(void *arg, const char *name, const char *reason);

/*
 * Calls member_cb for every file member whose name ends with suffix (NULL =
 * all), in central-directory order. Returns 0, member_cb's error, or
 * WV_EIO / WV_EPARSE / WV_ENOMEM for the archive as a whole (detail in err).
 */
int wv_zip_each(const char *path, const char *suffix, size_t max, wv_zip_member_cb member_cb,
                wv_zip_skip_cb skip_cb, void *arg, char *err, size_t errlen);

#endif
