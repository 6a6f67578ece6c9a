/*
 * storage/embedded.h — the embedded build registry (architecture §3.4): images built
 * into an OCI layout are imported into the blob store, and their tags and
 * manifests are recorded in the state store, so waved serves them itself
 * when wave.build.repo is empty.
 *
 * Records (WV_DB_EMBEDDED; the key layout is defined here and only here):
 *
 *   tag/<repo>:<tag>          → "<manifest digest>"
 *   manifest/<digest>         → "<media type>\n<manifest bytes>"
 *   link/<repo>@<digest>      → ""   (the blob or manifest belongs to repo)
 *   diff/<X>                  → "<gzip digest G> <size> <media type>"  (layer maps, below)
 *   gz/<G>                    → "<X>"
 *
 * A repository sees only what was imported into it (the links), as in
 * distribution's repository links. Blob content lives in the CAS
 * (storage/cas.h). The tag is written last, in its own transaction after
 * every blob, link and manifest is durable, so a tag never names something
 * incomplete.
 *
 * Thread rules: every function may be called from any thread; import blocks
 * (file reads, fsyncs, durable store writes) and belongs on a worker.
 */
#ifndef WV_EMBEDDED_H
#define WV_EMBEDDED_H

#include "storage/cas.h"
#include "storage/store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_EMBEDDED_REPO "wave/build" /* the default repository (architecture §3.4) */
/* Frozen Singularity images (format: sif + freeze, no build repository):
 * pulled by name, without a token, as /v2/wave/freeze/... (docs/singularity.md). */
#define WV_EMBEDDED_FREEZE_REPO "wave/freeze"
#define WV_EMBEDDED_MANIFEST_MAX (4u << 20) /* bytes of one manifest or index */
#define WV_EMBEDDED_INDEX_MAX (1u << 20)    /* bytes of a layout's index.json */
#define WV_EMBEDDED_MEDIATYPE_MAX 256       /* bytes of a media type, with the NUL */
#define WV_EMBEDDED_DIGEST_LEN 72           /* "sha256:" + 64 hex + NUL */
/* A layer map (diff/X, gz/G) lives this long after it was written; seeding a layout with it
 * renews it once less than half is left. An expired map is not read, so the blob collector
 * (storage/blobgc.h) no longer counts it as a reference to G. */
#define WV_EMBEDDED_MAP_TTL_MS (30LL * 24 * 3600 * 1000)
#define WV_EMBEDDED_DIFF_MAX (64ULL << 30) /* inflated bytes of a layer that is mapped */

/*
 * Imports the image of the OCI layout directory `layout` whose index.json
 * entry is annotated org.opencontainers.image.ref.name = ref_name (NULL: the
 * only entry) as repo:tag. Every blob is copied into the CAS and verified
 * against its descriptor's digest and size; an image index brings its child
 * manifests. The manifest digest goes to digest (may be NULL). On failure
 * nothing is tagged and err says what was wrong ("blob sha256:…: digest
 * mismatch"). Returns 0, WV_EINVAL (bad arguments), WV_ENOTFOUND (no such
 * entry or blob), WV_EPARSE (bad JSON), WV_EDIGEST, WV_ETOOBIG, WV_EIO,
 * WV_ESTORE, WV_ENOMEM.
 */
int wv_embedded_import(wv_store_t *s, wv_cas_t *c, const char *layout, const char *ref_name,
                       const char *repo, const char *tag, char *digest, char *err, size_t errlen);

/*
 * The manifest of repo by tag or by digest ("sha256:…"): *body malloc'd
 * (freed by the caller), media_type (WV_EMBEDDED_MEDIATYPE_MAX bytes) and
 * digest (WV_EMBEDDED_DIGEST_LEN bytes) filled; each out may be NULL except
 * body/len. Returns 0, WV_ENOTFOUND, WV_EINVAL, WV_ESTORE, WV_ENOMEM.
 */
int wv_embedded_get_manifest(wv_store_t *s, const char *repo, const char *ref, char **body,
                             size_t *len, char *media_type, char *digest);

/*
 * Records an image index (the parent of a multi-platform build, contract §6.4)
 * as repo:tag: body is the index JSON (media type `media_type`, an OCI
 * index or Docker manifest list, at most WV_EMBEDDED_MANIFEST_MAX bytes)
 * whose every manifests[] digest must already be a manifest of repo (the
 * child images, imported first). The index record and its link are written
 * durably, then the tag alone, as for an import. Its digest goes to digest
 * (may be NULL). Returns 0, WV_EINVAL (bad arguments or not an index),
 * WV_EPARSE, WV_ENOTFOUND (a child is not in repo; err names it), WV_ESTORE,
 * WV_ENOMEM.
 */
int wv_embedded_put_index(wv_store_t *s, const char *repo, const char *tag, const char *media_type,
                          const char *body, size_t len, char *digest, char *err, size_t errlen);

/*
 * Whether repo holds blob digest (linked and present in the CAS); its size
 * to *size (may be NULL). Returns 0, WV_ENOTFOUND, WV_EINVAL, WV_EIO.
 */
int wv_embedded_has_blob(wv_store_t *s, wv_cas_t *c, const char *repo, const char *digest,
                         uint64_t *size);

/*
 * Seeded layouts (storage/embedded.c "LAYER MAPS"). After an import: records, for every gzip
 * layer G of repo:tag (each child of an index) not mapped yet, its uncompressed digest X
 * ("diff/X" → "G size media-type", "gz/G" → X), computed by inflating the CAS blob. Costs
 * one pass over each new layer; run it after the image is served. *mapped: layers mapped
 * now. 0, WV_ENOTFOUND (no such tag), WV_EPARSE, WV_ESTORE, WV_ENOMEM.
 */
int wv_embedded_map_layers(wv_store_t *s, wv_cas_t *c, const char *repo, const char *tag,
                           int *mapped);

/*
 * The map of one gzip layer G already in the CAS, claimed by an image config to have the
 * uncompressed digest want (a base image's rootfs.diff_ids[i], build/base_fetch.h): inflates
 * and hashes G itself and records "diff/want" and "gz/G" only when the result is want. The
 * digest it found goes to x_out (may be NULL). Stops with WV_ECLOSED once *stop is set (may be
 * NULL). The first map of X wins (embedded.c "LAYER MAPS"): WV_EEXISTS when X is mapped to
 * another blob the CAS holds (nothing recorded; that map serves). 0; WV_EDIGEST (the claim is
 * false: nothing recorded), WV_EINVAL (not a gzip layer type, bad digests), WV_ENOTFOUND (G is not
 * in the CAS), WV_EPARSE (not gzip), WV_ETOOBIG (inflates past WV_EMBEDDED_DIFF_MAX), WV_EIO,
 * WV_ESTORE, WV_ENOMEM.
 */
int wv_embedded_map_blob(wv_store_t *s, wv_cas_t *c, const char *g, const char *media_type,
                         const char *want, const atomic_bool *stop,
                         char x_out[WV_EMBEDDED_DIGEST_LEN]);

/* True when "diff/x" maps x to g (NULL: to any blob) and the CAS holds that blob (of the map's
 * size). */
bool wv_embedded_mapped(wv_store_t *s, wv_cas_t *c, const char *x, const char *g);

/*
 * Before a build pushes into layout (a new directory of its own): for each of the base
 * image's uncompressed layer digests that has a map, a hard link to the CAS file of its gzip
 * blob at <layout>/blobs/sha256/<X hex>, the name buildah's oci: push looks for, so it skips
 * the layer; wv_embedded_import maps the descriptor back. *seeded: links made. A map used
 * here is renewed when less than half its lifetime is left; a map whose blob is gone is
 * deleted. 0, WV_EUNSUPPORTED (the layout is on another filesystem than the CAS), WV_EIO,
 * WV_EINVAL (more than 128 layers), WV_ENOMEM.
 */
int wv_embedded_seed_layout(wv_store_t *s, wv_cas_t *c, const char *layout,
                            const char *const *diff_ids, size_t n, int *seeded);

#endif
