/*
 * storage/cas.h — the content-addressed blob store on disk.
 *
 * Layout (defined here and only here):
 *
 *   <root>/blobs/sha256/<first two hex>/<64 hex>   committed blobs
 *   <root>/blobs/tmp/<instance>/<unique>           blobs being written
 *
 * A blob is streamed into a temp file while its SHA-256 is computed; commit
 * checks the digest, fsyncs the file, renames it into place and fsyncs the
 * directory. A partial or mismatching blob therefore never becomes visible,
 * and a committed one survives a crash. Temp files left by a crash are
 * removed by wv_cas_open: all of this instance's (one waved process per
 * storage root), and those of other instances sharing the blob directory
 * (docs/scale-out.md) only once they are a day old.
 *
 * Digest strings are exactly "sha256:" + 64 lowercase hex characters; any
 * other string is WV_EINVAL, so a digest can never name a path outside the
 * root.
 *
 * Thread rules: a wv_cas_t may be used from any number of threads at once; a
 * wv_cas_writer_t belongs to one thread at a time.
 */
#ifndef WV_CAS_H
#define WV_CAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_CAS_DIGEST_LEN 71 /* "sha256:" + 64 hex, without the NUL */

typedef struct wv_cas wv_cas_t;
typedef struct wv_cas_writer wv_cas_writer_t;

/*
 * Opens the blob store under root (creating root/blobs/{sha256,tmp} with mode
 * 0700 as needed) and removes every leftover temp file. max_blob caps the
 * size of one blob (0 = no cap). Returns 0 and *out (free with
 * wv_cas_close), or WV_EINVAL / WV_EIO / WV_ENOMEM.
 */
int wv_cas_open(wv_cas_t **out, const char *root, uint64_t max_blob);
/* This instance's name in blobs/tmp/ ("<host>-<8 hex>"); valid until close. */
const char *wv_cas_instance(const wv_cas_t *c);
/* Frees c. Writers still open must be finished first. NULL is a no-op. */
void wv_cas_close(wv_cas_t *c);

/* Returns 1 if digest is "sha256:" + 64 lowercase hex, else 0. */
int wv_cas_digest_valid(const char *digest);

/* Starts a blob. Returns 0 and *out, or WV_EIO / WV_ENOMEM. */
int wv_cas_begin(wv_cas_t *c, wv_cas_writer_t **out);
/*
 * Starts a blob whose content the caller verifies itself (it already hashes
 * the stream): writes are not hashed, and commit requires expected and
 * trusts it. Only for bytes whose digest the caller has checked before
 * commit. Same returns as wv_cas_begin.
 */
int wv_cas_begin_verified(wv_cas_t *c, wv_cas_writer_t **out);
/*
 * Appends n bytes. Returns 0, WV_ETOOBIG past the cap, WV_EIO. After an
 * error the writer can only be aborted (commit returns the same error).
 */
int wv_cas_write(wv_cas_writer_t *w, const void *p, size_t n);
/*
 * Finishes the blob and frees w in every case. If expected is not NULL the
 * content must hash to it (else WV_EDIGEST and nothing is visible); expected
 * must be a valid digest (else WV_EINVAL; a verified writer requires it).
 * On success the blob is durable and
 * its digest is written to digest_out (WV_CAS_DIGEST_LEN + 1 bytes; may be
 * NULL). Committing content that is already stored succeeds.
 */
int wv_cas_commit(wv_cas_writer_t *w, const char *expected, char *digest_out);
/* Discards the temp file and frees w. NULL is a no-op. */
void wv_cas_abort(wv_cas_writer_t *w);
/* Bytes written so far. */
uint64_t wv_cas_written(const wv_cas_writer_t *w);
/* The temp file's descriptor (readable; owned by w, valid until commit/abort). */
int wv_cas_writer_fd(const wv_cas_writer_t *w);

/* One-shot begin + write + commit. Same errors as those. */
int wv_cas_put(wv_cas_t *c, const void *p, size_t n, const char *expected, char *digest_out);

/*
 * Opens a committed blob for reading (sendfile): *fd is the caller's to
 * close, *size its length. Returns 0, WV_EINVAL (bad digest), WV_ENOTFOUND,
 * WV_EIO.
 */
int wv_cas_open_blob(wv_cas_t *c, const char *digest, int *fd, uint64_t *size);

/* Returns 0 (size to *size, may be NULL), WV_ENOTFOUND, WV_EINVAL or WV_EIO. */
int wv_cas_exists(wv_cas_t *c, const char *digest, uint64_t *size);

/*
 * Hard-links the blob to dst, a new name for the same immutable file (for a reader that
 * looks blobs up by another name: storage/embedded.h wv_embedded_seed_layout). Nobody may
 * write through dst. Returns 0, WV_EEXISTS (dst exists), WV_ENOTFOUND, WV_EUNSUPPORTED
 * (another filesystem), WV_EINVAL, WV_EIO, WV_ENOMEM.
 */
int wv_cas_link_out(wv_cas_t *c, const char *digest, const char *dst);

/* Removes a blob. Returns 0, WV_ENOTFOUND, WV_EINVAL or WV_EIO. */
int wv_cas_delete(wv_cas_t *c, const char *digest);

/*
 * How many blobs this process's wv_cas_delete and wv_cas_sweep have removed so far, counted
 * after each unlink. A blob seen present (wv_cas_exists) after reading the count N is still
 * present while the count is N (an unlink after the stat raises the count; one before the
 * stat made the stat fail), unless something else removes files (another instance sharing
 * the directory, a person): build/layers.c skips its per-request stat that way on a single
 * instance.
 */
uint64_t wv_cas_removals(wv_cas_t *c);

/* Whether the blob of digest (32 bytes of SHA-256) must stay. */
typedef bool (*wv_cas_keep_cb)(void *arg, const uint8_t sha[32]);

/*
 * The sweep of a mark-and-sweep collector (storage/blobgc.h): walks every
 * committed blob and removes each one last written before cutoff_ms (unix
 * ms, by mtime: a commit always writes a fresh file, so a blob committed
 * again is young again) that keep does not want. Blobs being written (temp
 * files) are never touched; a reader holding a blob open keeps its bytes.
 * Adds to *removed and *bytes (may be NULL). 0 or WV_EIO (the walk stopped).
 */
int wv_cas_sweep(wv_cas_t *c, int64_t cutoff_ms, wv_cas_keep_cb keep, void *arg, uint64_t *removed,
                 uint64_t *bytes);

#endif
