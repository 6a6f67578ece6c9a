/*
 * core/fileio.h — positioned reads and writes of a whole buffer: pread/pwrite retried on EINTR
 * and on short counts, so a caller sees all of it or an error.
 */
#ifndef WV_FILEIO_H
#define WV_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes n bytes of p at off. 0, or an errno value (EIO for a write that made no progress). */
int wv_fileio_pwrite(int fd, const void *p, size_t n, off_t off);
/* Reads n bytes into p from off. 0, or an errno value (EIO when the file ends first). */
int wv_fileio_pread(int fd, void *p, size_t n, off_t off);

#endif
