/*
 * scan/registry_source.h — reads an image for a scan: resolves the manifest
 * for one platform (through an index when there is one) and streams every
 * layer blob into an inventory (scan/inventory.h), never holding a layer
 * whole.
 *
 * Two places an image can live:
 *   - an upstream registry (registry/upstream.h for auth, registry/fetch.h
 *     for timeouts and retries): each layer is one GET whose body callback
 *     feeds wv_inventory_layer_write; blob redirects are followed (at most 3,
 *     credentials dropped off the registry's host);
 *   - the embedded build registry (storage/embedded.h): manifests from the
 *     state store, layers read from the blob store in fixed chunks.
 *
 * Every manifest fetched by digest and every layer is verified while it
 * streams: its bytes must hash to its digest and its length must equal the
 * descriptor's size (a longer body is cut at once). A layer that fails the
 * check fails the scan: its packages were already counted, and nothing read
 * from an unverified blob may be reported.
 *
 * Memory: one manifest (<= WV_AUGMENT_MAX_MANIFEST) plus the HTTP client's
 * and the inventory's fixed buffers.
 *
 * Thread rules: blocking; run on a worker (the scan job's function step).
 */
#ifndef WV_SCAN_REGISTRY_SOURCE_H
#define WV_SCAN_REGISTRY_SOURCE_H

#include "core/app.h"
#include "core/arena.h"
#include "scan/inventory.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  const char *registry;  /* upstream host[:port]; NULL or "" = the embedded registry */
  const char *repo;      /* repository path, e.g. "library/ubuntu" or "wave/build" */
  const char *reference; /* tag or "sha256:..." digest */
  const char *platform;  /* "linux/amd64"; NULL = linux/amd64 */
} wv_scan_source_t;

/* Progress and cancellation hooks; every member may be NULL. */
typedef struct {
  void (*log)(void *arg, const char *line); /* one line of the scan log */
  bool (*cancelled)(void *arg);             /* polled between chunks: true stops the read */
  void *arg;
} wv_scan_io_t;

typedef struct {
  const char *manifest_digest; /* the image manifest that was read (arena) */
  size_t layers;               /* layers read */
  uint64_t bytes;              /* compressed bytes read */
} wv_scan_source_result_t;

/*
 * Feeds the layers of src, base first, into inv (which must be fresh; the
 * caller finishes it). On failure *msg (arena) says what failed, naming the
 * registry, image and digest. Returns 0, WV_ENOTFOUND (no such image, tag or
 * platform), WV_EUPSTREAM (registry unreachable, refused or errored),
 * WV_EDIGEST (bytes do not match a digest or size), WV_EPARSE (malformed
 * manifest or layer), WV_ETOOBIG, WV_ECLOSED (io->cancelled said stop),
 * WV_ENOMEM, WV_EIO.
 */
int wv_scan_source_read(const wv_app_t *app, wv_arena_t *a, const wv_scan_source_t *src,
                        wv_inventory_t *inv, const wv_scan_io_t *io, wv_scan_source_result_t *out,
                        const char **msg);

#endif
