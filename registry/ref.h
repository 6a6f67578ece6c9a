/*
 * registry/ref.h — container image references and /v2 request paths.
 *
 * Image references follow contract §4.3 (the rules Wave applies everywhere a
 * client names an image):
 *   - an optional "oras://" scheme; any other "<scheme>://" is rejected;
 *   - the reference is what follows the first '@' of the last path component
 *     (a digest), else what follows its first ':' (a tag); default "latest".
 *     "name:tag@digest" keeps the digest and drops the tag, as Docker does;
 *   - the first component is a registry iff it contains '.' or ':' (the port
 *     must be numeric) or is exactly "localhost" (Docker's rule; Wave itself
 *     would read "localhost/x" as a Docker Hub path), and only when at least
 *     one more component follows;
 *   - otherwise the registry is "docker.io" ("index.docker.io" is folded into
 *     it) and "library/" is prepended to single-component Docker Hub names;
 *   - names containing blanks or control characters are invalid.
 * On top of Wave, the parts are validated with the distribution reference
 * grammar: registry host components [A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?,
 * path components [a-z0-9]+((.|_|__|-+)[a-z0-9]+)* (so upper case is
 * rejected), no empty components, at most 255 bytes of "<registry>/<path>",
 * tags [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, digests sha256:<64 lowercase hex>.
 *
 * Every string these functions return is allocated from the caller's arena
 * and lives as long as it. Error messages (*msg, which may be NULL when the
 * caller does not want one) are arena strings too; they are the exact
 * client-facing texts of the spec.
 */
#ifndef WV_REF_H
#define WV_REF_H

#include <stdbool.h>

#include "core/arena.h"

#define WV_REF_DEFAULT_REGISTRY "docker.io"
#define WV_REF_DOCKER_HUB_API "registry-1.docker.io"
#define WV_REF_MAX_NAME 255   /* "<registry>/<path>" in bytes */
#define WV_REF_MAX_INPUT 4096 /* longer inputs are rejected before parsing */

typedef struct {
  const char *scheme;    /* "oras" or NULL */
  const char *registry;  /* "docker.io", "quay.io", "localhost:5000" */
  const char *path;      /* repository path without registry: "library/ubuntu" */
  const char *reference; /* "latest", or "sha256:<hex>" when is_digest */
  bool is_digest;
} wv_ref_t;

/*
 * Parses and normalises an image reference. Returns 0, WV_EINVAL (with
 * "Invalid container image name — offending value: '<s>'", or "Invalid
 * container repository name — offending value: '<s>'" for a scheme other
 * than oras://) or WV_ENOMEM. *out is untouched on error.
 */
int wv_ref_parse(wv_arena_t *a, const char *s, wv_ref_t *out, const char **msg);

/*
 * The request-time check of `containerImage` (contract §3.2): any URL scheme,
 * oras:// included, gives the "repository name" message, anything
 * wv_ref_parse() rejects gives the "image name" message. Returns 0,
 * WV_EINVAL or WV_ENOMEM; *out (may be NULL) receives the parsed reference.
 */
int wv_ref_check_container_name(wv_arena_t *a, const char *s, wv_ref_t *out, const char **msg);

/* "docker.io/library/ubuntu:latest", "quay.io/org/img@sha256:…", with "oras://" when set. */
const char *wv_ref_full_name(wv_arena_t *a, const wv_ref_t *r);
/* "docker.io/library/ubuntu". */
const char *wv_ref_repository(wv_arena_t *a, const wv_ref_t *r);
/* "library/ubuntu:latest" or "library/ubuntu@sha256:…" (path, no registry). */
const char *wv_ref_path_and_ref(wv_arena_t *a, const wv_ref_t *r);

/*
 * The host[:port] that serves the registry API: "registry-1.docker.io" for
 * docker.io, the registry itself otherwise. Never NULL for a non-NULL input.
 */
const char *wv_ref_api_host(const char *registry);

/*
 * True for localhost, 127.0.0.0/8 and [::1] (with or without a port): such
 * registries are reached over plain HTTP (contract §5.6; Docker also treats
 * 127.0.0.0/8 as insecure). Other plain-HTTP registries are listed in
 * config.yml (registry/upstream.h).
 */
bool wv_ref_is_loopback(const char *registry);

/* Grammar checks, exposed for the other modules that take names. */
bool wv_ref_is_tag(const char *s);
bool wv_ref_is_digest(const char *s); /* sha256:<64 lowercase hex> */
bool wv_ref_is_registry(const char *s);

/* ---- /v2 route grammar (contract §5.2) ---------------------------------- */

typedef enum { WV_V2_MANIFESTS, WV_V2_BLOBS, WV_V2_TAGS } wv_v2_kind_t;

typedef struct {
  const char *token;    /* token form: the token; plain form: NULL */
  const char *name;     /* everything between "/v2[/wt/<token>]/" and the kind */
  const char *registry; /* plain form: first component if it has a '.', else "docker.io";
                           token form: NULL (the token record names the registry) */
  const char *image;    /* token form: == name; plain form: name without the registry */
  wv_v2_kind_t kind;
  const char *reference; /* tag, digest or (tags) "list" */
  bool is_digest;
} wv_v2_route_t;

/*
 * Parses a /v2 request path (no query string):
 *   /v2[/wt]/<name>/(manifests|blobs|tags)/<reference>
 *   <name> := comp1 [ "/" comp ] ( "/" compX )*
 *   comp1, comp := [a-z0-9][a-z0-9_.-]*     compX := [a-zA-Z0-9][a-zA-Z0-9_.-]*
 * as the spec writes it except that one-character components are valid
 * (distribution's grammar allows them; Wave's regex wrongly does not).
 * A path starting with "/v2/wt/" is the token form: the first component of
 * <name> is the token and at least one image component must follow it; as
 * in Wave (whose regex backtracks to read "wt" as comp1 and the token as
 * comp), every image component after the token may then mix case.
 * waved is stricter than Wave about the reference, which it forwards to
 * upstream URLs: manifests take a tag or a digest, blobs a digest, tags a
 * tag-shaped word (the handler answers 400 for anything but "list").
 * Returns 0, WV_ENOTFOUND with "Invalid request path '<path>'", or WV_ENOMEM.
 */
int wv_route_parse(wv_arena_t *a, const char *path, wv_v2_route_t *out, const char **msg);

const char *wv_route_kind_name(wv_v2_kind_t k);

#endif
