/*
 * build/context.h — unpack a request's build context (a tar.gz) into the
 * build's context directory, safely, and compute its tarDigest (contract §4.4,
 * §6.1 step 9).
 *
 * The archive is untrusted. Accepted: regular files, directories, symbolic
 * and hard links that stay inside the context; pax ("path", "linkpath",
 * "size") and GNU long names ('L', 'K'). Refused with an error that names
 * the entry: absolute paths and ".." components, device nodes, fifos and
 * other types, links that point outside the context, and any entry that
 * would be written through a symbolic link planted earlier in the archive
 * (every directory is opened with openat(O_NOFOLLOW) relative to the
 * context root, files are created with O_NOFOLLOW). Limits (caller-set,
 * from config): bytes per file, bytes in all, number of entries; the
 * decompressed stream is capped accordingly, so a gzip bomb stops early.
 * Times, owners and special mode bits are not restored.
 *
 * The digest is the sha256 of the whole decompressed tar stream (what the
 * client computed as the layer's tarDigest).
 *
 * On failure the directory may hold a partial extraction: the caller owns
 * the directory and removes it. Messages (*msg, may be NULL) are arena
 * strings meant for the build record, e.g. "Build context file 'big.bin'
 * exceeds the maximum allowed size of 1 MB". Return codes: 0; WV_ETOOBIG
 * (a limit); WV_EINVAL (an unsafe or unsupported entry); WV_EPARSE (not
 * gzip, corrupt or truncated tar); WV_EIO (the file system); WV_ENOMEM.
 * Blocking I/O: call it from a worker thread. No global state.
 */
#ifndef WV_BUILD_CONTEXT_H
#define WV_BUILD_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/digest.h"

typedef struct {
  uint64_t max_file_bytes;  /* per regular file; Wave's default 1 MiB */
  uint64_t max_total_bytes; /* all regular files together; default 10 MiB */
  uint32_t max_entries;     /* tar entries of any kind; default 10000 */
} wv_context_limits_t;

/* 1 MiB, 10 MiB, 10000 entries. */
void wv_context_limits_default(wv_context_limits_t *l);

typedef struct {
  char tar_digest[WV_DIGEST_STRLEN]; /* "sha256:<hex>" of the uncompressed tar */
  uint64_t files, dirs, symlinks, hardlinks;
  uint64_t bytes; /* regular file content */
} wv_context_result_t;

/*
 * Unpacks len bytes of tar.gz into dir, which must exist (ideally empty).
 */
int wv_context_unpack(wv_arena_t *a, const void *gz, size_t len, const char *dir,
                      const wv_context_limits_t *lim, wv_context_result_t *res, const char **msg);

/* Same, reading the tar.gz from a file in fixed chunks. */
int wv_context_unpack_file(wv_arena_t *a, const char *path, const char *dir,
                           const wv_context_limits_t *lim, wv_context_result_t *res,
                           const char **msg);

#endif
