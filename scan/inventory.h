/*
 * scan/inventory.h — the installed packages of an image, from its layers.
 *
 * Layers are applied in order (base first) exactly as an overlay file system
 * would: a file in a later layer replaces the same path, a whiteout
 * ".wh.<name>" deletes <name> (and everything under it) from the layers
 * below, an opaque marker hides a directory's lower content, and a
 * non-directory replaces a directory with all it held. Only the package
 * database files (scan/pkgdb.h) are ever buffered, each parsed as soon as it
 * is complete and then dropped; the result keeps the packages of the files
 * that survive the last layer, each with the layer and path it came from.
 *
 * Layers are fed either as a whole (a file descriptor) or pushed in chunks
 * as they arrive from a registry download (layer_begin/write/end), compressed
 * or not (scan/layer.h). Memory is bounded by max_file (one database file),
 * the codec buffers and the package list (capped by max_pkgs / arena_max).
 *
 * One thread per inventory. Strings returned live until wv_inventory_free.
 */
#ifndef WV_SCAN_INVENTORY_H
#define WV_SCAN_INVENTORY_H

#include "scan/pkgdb.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
  size_t max_file;   /* largest database file read (0 = 64 MiB); larger ones are skipped with a
                        warning */
  size_t max_pkgs;   /* packages held at once (0 = 500 000) */
  size_t arena_max;  /* bytes for package strings (0 = 512 MiB) */
  size_t max_layers; /* 0 = 512 */
} wv_inventory_opts_t;

typedef struct wv_inventory wv_inventory_t;

/* opts may be NULL (defaults). Returns 0 and *out, or WV_ENOMEM. */
int wv_inventory_new(wv_inventory_t **out, const wv_inventory_opts_t *opts);
void wv_inventory_free(wv_inventory_t *inv);

/*
 * Push interface for one layer: begin, write the blob's bytes (gzip, zstd
 * or plain tar) in any chunking, end. digest (may be NULL) names the layer in
 * results. Each returns 0 or an error (WV_EPARSE for a corrupt layer,
 * WV_ETOOBIG past a cap, WV_ENOMEM); detail in wv_inventory_error. After an
 * error the inventory is failed and every later call returns WV_EINVAL.
 */
int wv_inventory_layer_begin(wv_inventory_t *inv, const char *digest);
int wv_inventory_layer_write(wv_inventory_t *inv, const void *p, size_t n);
int wv_inventory_layer_end(wv_inventory_t *inv);

/* One whole layer from fd (read to its end) or from a file. */
int wv_inventory_add_layer_fd(wv_inventory_t *inv, int fd, const char *digest);
int wv_inventory_add_layer_file(wv_inventory_t *inv, const char *path, const char *digest);

/*
 * After the last layer: settles the package list (sorted by type, name,
 * version, path) and each package's OSV ecosystem. Returns 0 or WV_EINVAL.
 */
int wv_inventory_finish(wv_inventory_t *inv);

/* Valid after wv_inventory_finish. */
size_t wv_inventory_count(const wv_inventory_t *inv);
const wv_pkg_t *wv_inventory_pkgs(const wv_inventory_t *inv);

/* Distribution from os-release: id ("debian") and version ("12"); NULL if unknown. */
const char *wv_inventory_os_id(const wv_inventory_t *inv);
const char *wv_inventory_os_version(const wv_inventory_t *inv);

size_t wv_inventory_layers(const wv_inventory_t *inv);
/* Digest given for layer i, or NULL. */
const char *wv_inventory_layer_digest(const wv_inventory_t *inv, size_t i);

/* Non-fatal problems so far (oversized database files, records without a name/version). */
size_t wv_inventory_warnings(const wv_inventory_t *inv);
/* Text of the last error or warning ("" if none); owned by inv. */
const char *wv_inventory_error(const wv_inventory_t *inv);

/* Uncompressed tar bytes and tar entries seen so far, over all layers. */
uint64_t wv_inventory_tar_bytes(const wv_inventory_t *inv);
uint64_t wv_inventory_tar_entries(const wv_inventory_t *inv);

#endif
