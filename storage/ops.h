/*
 * storage/ops.h — what operators need from the stores: their sizes (for
 * /metrics) and a consistent copy of the state store (`waved backup`,
 * docs/operations.md "Backup and restore").
 *
 * Thread rules: any thread; each call blocks on the filesystem.
 */
#ifndef WV_STORAGE_OPS_H
#define WV_STORAGE_OPS_H

#include "storage/store.h"

#include <stdint.h>

/* The LMDB file's size on disk and the bytes its pages in use hold. */
void wv_store_sizes(wv_store_t *s, uint64_t *file_bytes, uint64_t *used_bytes);

/*
 * Bytes and files under root/blobs/sha256 (the blob store), walked at most once
 * per max_age_ms; later calls within that time return the last walk.
 */
void wv_cas_usage(const char *root, int64_t max_age_ms, uint64_t *bytes, uint64_t *files);

/*
 * `waved backup DEST`: copies the state store under data (storage.path) into
 * DEST/state, compacted, in one read transaction — consistent while a running
 * waved writes — then links (or, across filesystems, copies) every blob of
 * data/blobs into DEST/blobs. DEST must not hold a state store yet. Progress
 * and errors are printed on stderr. Returns the exit status: 0, or 1.
 */
int wv_store_backup_main(const char *data, uint64_t map_size, const char *dest);

#endif
