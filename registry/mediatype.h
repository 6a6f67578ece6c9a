/*
 * registry/mediatype.h — OCI and Docker media types, and what kind of
 * document each one names.
 *
 * The constants are the exact strings registries send in Content-Type and in
 * "mediaType" fields. wv_mediatype_classify() tolerates what real registries
 * put in Content-Type: parameters ("; charset=utf-8"), surrounding blanks and
 * upper case; it never allocates and never fails.
 */
#ifndef WV_MEDIATYPE_H
#define WV_MEDIATYPE_H

#include <stdbool.h>

#define WV_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define WV_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define WV_MT_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define WV_MT_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define WV_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define WV_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define WV_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define WV_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define WV_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define WV_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"

/*
 * The Accept header waved sends upstream when it fetches a manifest on its
 * own behalf: every manifest kind it can serve, newest formats first, so a
 * registry never falls back to schema 1 when it has something better.
 */
#define WV_MT_ACCEPT_MANIFESTS                                                                     \
  WV_MT_OCI_INDEX ", " WV_MT_OCI_MANIFEST ", " WV_MT_DOCKER_LIST ", " WV_MT_DOCKER_MANIFEST        \
                  ", " WV_MT_DOCKER_SCHEMA1_SIGNED ", " WV_MT_DOCKER_SCHEMA1

typedef enum {
  WV_MT_KIND_OTHER = 0, /* blobs, configs, unknown strings, NULL */
  WV_MT_KIND_MANIFEST,  /* one image: Docker v2 or OCI manifest */
  WV_MT_KIND_INDEX,     /* Docker manifest list or OCI index */
  WV_MT_KIND_SCHEMA1,   /* legacy Docker schema 1, signed or not */
} wv_mt_kind_t;

/* Classifies a media type or Content-Type value (NULL gives WV_MT_KIND_OTHER). */
wv_mt_kind_t wv_mediatype_classify(const char *mt);

/*
 * Returns the canonical constant equal to mt once parameters, blanks and case
 * are ignored, or NULL when mt names none of the types above. The result is a
 * static string: use it to store and compare media types.
 */
const char *wv_mediatype_canonical(const char *mt);

/* True when mt is an OCI (rather than Docker) manifest or index. */
bool wv_mediatype_is_oci(const char *mt);

/*
 * For an index type, the manifest type its augmentable entries must have
 * (OCI index → OCI manifest, Docker list → Docker v2 manifest); NULL otherwise.
 */
const char *wv_mediatype_index_child(const char *index_mt);

/* For a manifest type, the config media type of an augmented config; NULL otherwise. */
const char *wv_mediatype_config_for(const char *manifest_mt);

#endif
