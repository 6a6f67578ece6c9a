/*
 * registry/copy.h — the mirror copy engine (contract §7.1): copies an image,
 * every platform of it, from one registry to another with waved's own
 * registry client, keeping every digest.
 *
 * What a copy does, in order (docs/mirror.md):
 *   1. GET the source manifest (full Accept list), hash it: that is the
 *      digest the target must end up with.
 *   2. Depth first over the tree: an index's child manifests, a manifest's
 *      config and layers. A child manifest already in the target repository
 *      (HEAD by digest) is skipped with its whole subtree — a registry only
 *      accepts a manifest once its blobs are there.
 *   3. A blob: HEAD in the target (exists → skip); within one registry a
 *      cross-repository mount (POST ...?mount=<digest>&from=<repo>), which
 *      either mounts (201) or opens an upload session (202); otherwise POST to
 *      open one. The source GET runs on a helper thread and feeds a bounded
 *      ring; this thread cuts it into chunks of chunk_size bytes, each sent
 *      with PATCH + Content-Range, hashing on the way; PUT ?digest= closes
 *      the session after the size and the digest were checked. A blob is
 *      never held whole in memory: at most chunk_size + WV_COPY_RING bytes.
 *   4. Manifests are PUT with their exact bytes and media type after their
 *      blobs, child manifests by digest, the root (an index last) by the
 *      target reference.
 * Errors say which step failed, for which object and which registry.
 *
 * Thread rules: wv_copy_image blocks (worker threads only) and starts one
 * helper thread per blob being streamed, joined before it returns; it shares
 * nothing but the wv_upstream_t (thread-safe). The other functions are pure.
 */
#ifndef WV_REGISTRY_COPY_H
#define WV_REGISTRY_COPY_H

#include "core/app.h"
#include "core/arena.h"
#include "core/digest.h"
#include "registry/upstream.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_COPY_CHUNK_DEFAULT ((size_t)8 << 20) /* PATCH body size */
#define WV_COPY_CHUNK_MIN ((size_t)64 << 10)
#define WV_COPY_RING ((size_t)1 << 20)         /* source → upload buffer */
#define WV_COPY_MAX_MANIFEST ((size_t)4 << 20) /* bytes of one manifest or index */
#define WV_COPY_MAX_CHILDREN 4096              /* descriptors in one manifest or index */
#define WV_COPY_MAX_DEPTH 4                    /* index → index → manifest nesting */

/* Called with one line for the job log (no newline). */
typedef void (*wv_copy_log_cb)(void *arg, const char *line);
/* True once the copy must stop (deadline, shutdown). */
typedef bool (*wv_copy_cancel_cb)(void *arg);

/* One copy. Strings are borrowed for the duration of wv_copy_image. */
typedef struct {
  const char *src_registry; /* "127.0.0.1:5001", "docker.io" */
  const char *src_repo;     /* "library/busybox" */
  const char *src_ref;      /* tag or sha256 digest */
  const char *dst_registry;
  const char *dst_repo;
  const char *dst_ref;         /* tag or digest the root is written under */
  size_t chunk_size;           /* 0 = WV_COPY_CHUNK_DEFAULT; at least WV_COPY_CHUNK_MIN */
  int attempts;                /* tries per object for transport errors and 5xx; 0 = 1 */
  int64_t connect_timeout_ms;  /* 0 = 10 s */
  int64_t request_timeout_ms;  /* one manifest / HEAD / POST / PATCH / PUT; 0 = 60 s */
  int64_t idle_timeout_ms;     /* a streamed source blob with no byte for this long; 0 = 120 s */
  wv_copy_log_cb log;          /* may be NULL */
  wv_copy_cancel_cb cancelled; /* may be NULL */
  void *cb_arg;
  const char *who; /* whom the copy acts for (registry/upstream.h): the request's account */
} wv_copy_opts_t;

typedef struct {
  char digest[WV_DIGEST_STRLEN]; /* the root manifest's digest (source = target) */
  size_t manifests;              /* manifests written */
  size_t manifests_existing;     /* child manifests already in the target */
  size_t blobs_copied, blobs_existing, blobs_mounted;
  uint64_t bytes; /* blob bytes streamed */
} wv_copy_stats_t;

/*
 * Copies o->src_* to o->dst_* through app->upstream (credentials per registry
 * from wave.registries; the target side asks for a pull,push scope). Blobs
 * are read with wv_fetch_follow() (registry/fetch.h): its redirects, retries
 * and outbound policy, with app->cfg's wave.httpclient settings. Returns 0
 * and fills *st (may be NULL), or WV_EUPSTREAM (a registry refused or
 * answered unexpectedly), WV_ETIMEOUT, WV_EDIGEST (bytes do not hash to
 * their digest, or sizes differ), WV_EPARSE (a malformed manifest),
 * WV_ETOOBIG, WV_EUNSUPPORTED (schema 1), WV_ECLOSED (cancelled),
 * WV_ENOMEM; err gets a one-line reason naming the step and the registry.
 */
int wv_copy_image(const wv_app_t *app, const wv_copy_opts_t *o, wv_copy_stats_t *st, char *err,
                  size_t errlen);

/*
 * HEADs <registry>/<repo>:<ref> (full Accept list) and copies its
 * Docker-Content-Digest into digest. Returns 0, WV_ENOTFOUND (404), WV_EAUTH
 * (401/403), WV_EUPSTREAM (other status or no digest header), or the
 * transport error; *status (may be NULL) gets the HTTP status.
 */
int wv_copy_head_digest(wv_upstream_t *u, const char *registry, const char *repo, const char *ref,
                        const char *who, int64_t timeout_ms, char digest[WV_DIGEST_STRLEN],
                        long *status);

/*
 * True when <registry>/v2/ answers 401 to an anonymous request: the registry
 * wants credentials. A registry that cannot be reached, or answers anything
 * else, does not (the copy will then report what really happens).
 */
bool wv_copy_registry_wants_auth(wv_upstream_t *u, const char *registry, int64_t timeout_ms);

/* ---- pure helpers (exposed for the unit tests) ------------------------------ */

/* One descriptor of a manifest or index. Strings live in the arena. */
typedef struct {
  const char *media_type; /* may be NULL when the document omits it */
  const char *digest;     /* sha256:<hex> */
  int64_t size;           /* -1 when absent */
  bool is_manifest;       /* an index entry (else a blob: config or layer) */
} wv_copy_desc_t;

/*
 * GET of repo:ref's manifest: *d gets its media type (Content-Type), digest
 * (of the bytes) and size, in arena a. Errors as wv_copy_head_digest.
 */
int wv_copy_get_manifest(wv_upstream_t *u, wv_arena_t *a, const char *registry, const char *repo,
                         const char *ref, const char *who, int64_t timeout_ms, wv_copy_desc_t *d);

/*
 * PUT of a manifest or index (len bytes of media_type) to repo:ref with push
 * credentials. 0, WV_EAUTH (401/403), WV_EUPSTREAM (another status), or the
 * transport's error; err says what.
 */
int wv_copy_put_manifest(wv_upstream_t *u, const char *registry, const char *repo, const char *ref,
                         const char *who, const char *media_type, const char *body, size_t len,
                         int64_t timeout_ms, char *err, size_t errlen);

/*
 * Parses a manifest or index (len bytes) and lists what it references: an
 * index's manifests, or a manifest's config then layers. content_type is the
 * registry's Content-Type (may be NULL: the document's mediaType is used,
 * then its shape). *mt gets the canonical media type. Returns 0, WV_EPARSE
 * (not JSON, a missing or malformed digest, an unknown document), WV_ETOOBIG
 * (over WV_COPY_MAX_CHILDREN), WV_EUNSUPPORTED (schema 1) or WV_ENOMEM;
 * err says what.
 */
int wv_copy_children(wv_arena_t *a, const char *body, size_t len, const char *content_type,
                     const char **mt, wv_copy_desc_t **out, size_t *n, char *err, size_t errlen);

/*
 * Resolves an upload Location against base ("http(s)://host[:port]") and
 * appends "digest=<digest>" to its query when digest is not NULL. When the
 * location is on base (a path, or an absolute URL with the same origin),
 * *target is a path with query for wv_upstream_do and *same_origin is true;
 * otherwise *target is the absolute URL (sent without registry credentials).
 * Returns 0, WV_EINVAL (empty, or a scheme other than http/https) or
 * WV_ENOMEM.
 */
int wv_copy_location(wv_arena_t *a, const char *base, const char *location, const char *digest,
                     const char **target, bool *same_origin);

/* "Content-Range: <off>-<off+n-1>" (n >= 1). 0 or WV_ETOOBIG. */
int wv_copy_content_range(uint64_t off, size_t n, char *out, size_t outlen);

#endif
