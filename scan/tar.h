/*
 * scan/tar.h — a push-fed, streaming tar walker for image layers.
 *
 * The caller pushes the decompressed layer in chunks of any size
 * (wv_tar_write) and the walker reports each entry through entry_cb. Entry
 * data is never held unless entry_cb asks for it, and then only up to
 * opts.max_file bytes; everything else is skipped by counting. Memory is
 * therefore bounded by max_file + WV_TAR_META_MAX whatever the layer size.
 *
 * Formats: POSIX ustar (name + prefix), pax extended headers ('x': path,
 * linkpath, size; 'g' is read and skipped), GNU long names ('L', 'K'), GNU
 * base-256 numbers. Header checksums are verified.
 *
 * Paths are normalised: no leading "/" or "./", no "." or ".." components
 * (".." is resolved lexically and never climbs above the root), no trailing
 * "/". The overlay whiteouts of the OCI image spec are reported as their own
 * entry types: ".wh.<name>" as WV_TAR_WHITEOUT with path = the deleted path,
 * ".wh..wh..opq" as WV_TAR_OPAQUE with path = the directory whose earlier
 * content is hidden. Applying them is the caller's business (inventory.c).
 *
 * A wv_tar_t is used by one thread. Strings in a wv_tar_entry_t are valid
 * only during the callback.
 */
#ifndef WV_SCAN_TAR_H
#define WV_SCAN_TAR_H

#include <stddef.h>
#include <stdint.h>

#define WV_TAR_PATH_MAX 4096          /* longest normalised path accepted */
#define WV_TAR_META_MAX (1024 * 1024) /* largest pax header / GNU long name */

typedef enum {
  WV_TAR_FILE = 0,
  WV_TAR_DIR,
  WV_TAR_SYMLINK,
  WV_TAR_HARDLINK,
  WV_TAR_OTHER, /* device, fifo, sparse, ... */
  WV_TAR_WHITEOUT,
  WV_TAR_OPAQUE,
} wv_tar_type_t;

typedef struct {
  wv_tar_type_t type;
  const char *path;     /* normalised; "" only for the root directory itself */
  const char *linkname; /* link target, "" if none */
  uint64_t size;        /* bytes of data (regular files; 0 otherwise) */
  uint32_t mode;
} wv_tar_entry_t;

/*
 * Called for every entry. Returns 1 to receive the file's whole content
 * through file_cb (regular files only, and only when size <= max_file: a
 * larger request fails the walk with WV_ETOOBIG), 0 to skip it, or a negative
 * WV_E* code that stops the walk and is returned by wv_tar_write.
 */
typedef int (*wv_tar_entry_cb)(void *arg, const wv_tar_entry_t *e);
/* The content asked for, len == e->size, valid during the call. 0 or a negative code. */
typedef int (*wv_tar_file_cb)(void *arg, const wv_tar_entry_t *e, const char *data, size_t len);

typedef struct {
  wv_tar_entry_cb entry_cb;
  wv_tar_file_cb file_cb;
  void *arg;
  size_t max_file; /* 0 = 16 MiB */
} wv_tar_opts_t;

typedef struct wv_tar wv_tar_t;

/* Returns 0 and *out (free with wv_tar_free), or WV_ENOMEM / WV_EINVAL. */
int wv_tar_new(wv_tar_t **out, const wv_tar_opts_t *opts);
void wv_tar_free(wv_tar_t *t);

/*
 * Feeds n bytes. Returns 0, a callback's error, or WV_EPARSE (bad header,
 * with detail in wv_tar_error) / WV_ETOOBIG. After an error the walker stays
 * failed. Bytes after the end-of-archive blocks are ignored.
 */
int wv_tar_write(wv_tar_t *t, const void *p, size_t n);

/* The input is complete: 0, or WV_EPARSE if it stopped inside an entry. */
int wv_tar_finish(wv_tar_t *t);

/* Detail of the last failure ("" if none); owned by t. */
const char *wv_tar_error(const wv_tar_t *t);

/* Entries reported so far (pax/GNU meta headers not counted). */
uint64_t wv_tar_entries(const wv_tar_t *t);

/*
 * Normalises a tar member name into out (see above). Returns 0, or
 * WV_ETOOBIG when the result would not fit in outlen bytes.
 */
int wv_tar_path_normalize(const char *in, size_t n, char *out, size_t outlen);

#endif
