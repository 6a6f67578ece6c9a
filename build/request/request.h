/*
 * build/request/request.h — the container-request front door (contract §3.1–§3.3, §3.7):
 * POST /v1alpha2/container and POST /container-token.
 *
 * A request goes through three steps, each usable on its own (the unit tests
 * call them directly, without sockets):
 *
 *   wv_creq_parse()    JSON → wv_creq_t. Explicit nulls are absent values,
 *                      unknown fields are ignored, a wrong type or an unknown
 *                      enum value is a 400 with a message naming the field
 *                      (Wave answers 500 there; docs/compatibility.md).
 *   wv_creq_check()    the spec's checks in the spec's order (contract §3.2) with its
 *                      messages; decides the kind of request and the identity.
 *   wv_creq_submit()   for a plain request: verifies the containerConfig and
 *                      every data: layer (stored in the blob store), expands
 *                      containerIncludes, checks the image exists upstream,
 *                      mints the token and writes the token record and the
 *                      persisted request record durably in one transaction,
 *                      then builds the response (contract §3.3).
 *
 * Return codes (the handler maps them with wv_resp_error): 0; WV_EINVAL (400,
 * *msg says why); WV_EAUTH (401 with an empty body: invalid access token);
 * WV_ENOTFOUND (404, *msg); WV_EUNSUPPORTED (501, *msg: a service switched
 * off — builds, mirrors, scans); WV_ESTORE / WV_EIO /
 * WV_ENOMEM / WV_EINTERNAL (500).
 *
 * Ownership: everything lives in the caller's arena, including the parsed
 * JSON tree (released by an arena cleanup). *msg is an arena or static string.
 * Thread rules: no shared state; call from a worker (submit blocks on the
 * store and on upstream registries).
 */
#ifndef WV_BUILD_REQUEST_H
#define WV_BUILD_REQUEST_H

#include "core/app.h"
#include "core/arena.h"
#include "core/buf.h"
#include "registry/container_config.h"
#include "registry/platform.h"
#include "registry/ref.h"
#include "registry/token.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

/* Wave's 501 message for a service switched off in the configuration (contract §1.3). */
#define WV_CREQ_MSG_SERVICE_OFF(service, key)                                                      \
  service " service is not enabled - Check Wave configuration setting '" key                       \
          "' - HTTP status=501 - response=-"

#define WV_CREQ_MSG_MIRROR_OFF WV_CREQ_MSG_SERVICE_OFF("Mirror", "wave.mirror.enabled")

#define WV_CREQ_MAX_INCLUDES 10 /* contract §6.6 */
#define WV_CREQ_DEFAULT_TOWER "https://api.cloud.seqera.io"
#define WV_CREQ_DEFAULT_PLATFORM "linux/amd64"

typedef enum {
  WV_CREQ_PLAIN = 0, /* existing image: pass-through or augmentation (contract §3.7) */
  WV_CREQ_BUILD,     /* containerFile, packages or freeze: build/build.h */
  WV_CREQ_MIRROR,    /* mirror: build/mirror/request.h (501 when wave.mirror.enabled is false) */
} wv_creq_kind_t;

/* SubmitContainerTokenRequest (contract §3.1). NULL / false / 0 = absent or null. */
typedef struct {
  bool v2; /* /v1alpha2/container (else /container-token) */
  const char *tower_access_token;
  const char *tower_refresh_token;
  const char *tower_endpoint;
  bool has_workspace_id;
  int64_t workspace_id;
  const char *workflow_id;
  const char *container_image;
  const char *container_file;
  const char *conda_file;
  const char *container_platform;
  const char *build_repository;
  const char *cache_repository;
  const char *timestamp;
  const char *fingerprint;
  const char *format;
  const char *name_strategy;
  const char *scan_mode;
  const char *build_template;
  bool freeze, dry_run, mirror;
  const char **includes; /* containerIncludes */
  size_t n_includes;
  const char **scan_levels;
  size_t n_scan_levels;
  json_object *packages;      /* borrowed from the parsed tree; NULL when absent */
  json_object *build_context; /* likewise */
  wv_container_config_t cc;   /* containerConfig (empty when absent) */
  bool has_cc;                /* containerConfig was a non-null object */
} wv_creq_t;

/* What wv_creq_check() decided. */
typedef struct {
  wv_creq_kind_t kind;
  const char *user;        /* account name, NULL when anonymous */
  const char *tower;       /* towerEndpoint after patching and defaulting */
  wv_ref_t image;          /* PLAIN: the normalised containerImage */
  const char *platform;    /* normalised platform, e.g. "linux/amd64" */
  wv_platform_list_t plat; /* the same, parsed */
} wv_creq_plan_t;

/* The minted request, for the response and the tests. */
typedef struct {
  const char *token;           /* = requestId = containerToken */
  const char *target_image;    /* <authority>/wt/<token>/<path>:<tag> */
  const char *container_image; /* normalised source image */
  int64_t created_ns, expires_ns;
  const char *cc_token_json; /* containerConfig as stored in the token record (cas: layers) */
  const char *scan_id;       /* scanMode async/required: the image's scan (scan/scan.h) */
  bool scan_new;             /* the scan was reserved by this request (not shared) */
} wv_creq_result_t;

/*
 * Parses a request body (len bytes) of at most max_values JSON values (0 =
 * WV_JSON_MAX_VALUES; server.max-json-values). v2 selects the version.
 * Returns 0, WV_EINVAL with a message (malformed JSON, too many values, a
 * \u0000 in a string, not an object, wrong field type, unknown enum value)
 * or WV_ENOMEM.
 */
int wv_creq_parse(wv_arena_t *a, const char *body, size_t len, size_t max_values, bool v2,
                  wv_creq_t *out, const char **msg);

/*
 * Runs the checks of contract §3.2 steps 1–10 in order, up to the choice of the
 * request kind. Identity: a towerAccessToken must verify against a value of
 * cfg->accounts (wv_secret_account_for_token), else WV_EAUTH. A mirror returns
 * WV_EUNSUPPORTED when wave.mirror.enabled is false, after every check it
 * would have passed through (a build switched off gets its 501 from
 * wv_build_submit); a scanMode asking for a scan returns WV_EUNSUPPORTED when
 * wave.scan.enabled is false.
 */
int wv_creq_check(wv_arena_t *a, const wv_config_t *cfg, const wv_creq_t *r, wv_creq_plan_t *plan,
                  const char **msg);

/*
 * Serves a plain request that passed wv_creq_check: see the top of this file.
 * app->upstream may be NULL (unit tests): the upstream existence check is
 * then skipped and containerIncludes are refused. now_ns is the creation
 * instant. On success *resp is the response object (caller's reference).
 */
int wv_creq_submit(const wv_app_t *app, wv_arena_t *a, wv_creq_t *r, const wv_creq_plan_t *plan,
                   const char *client_ip, int64_t now_ns, wv_creq_result_t *res, json_object **resp,
                   const char **msg);

/*
 * Parse + check + submit: what the POST handlers run. Past a rate limit (the
 * pull permit every container request takes, the build permit of a new
 * build) it returns WV_EBUSY (429) with Wave's message and *retry_after_s (may
 * be NULL) = seconds until a permit is available.
 */
int wv_creq_handle(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                   const char *client_ip, json_object **resp, const char **msg,
                   int64_t *retry_after_s);

/*
 * wv_creq_handle for the HTTP handler: a plain request without a scan does
 * not wait for the durable write of its records. It returns WV_PARKED once
 * they are queued (wv_store_submit_apply); later, on the store's committer
 * thread, done(arg, rc, resp) runs exactly once: rc 0 and the response
 * (caller's reference) when both records are on disk, else the error (resp
 * NULL). After WV_PARKED the caller must not touch arena a until done has
 * run. Every other outcome returns as wv_creq_handle, done not called.
 */
typedef void (*wv_creq_done_cb)(void *arg, int rc, json_object *resp);
int wv_creq_handle_async(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                         const char *client_ip, json_object **resp, const char **msg,
                         int64_t *retry_after_s, wv_creq_done_cb done, void *arg);

/*
 * wv_creq_handle_async's flags (wv_creq_handle_flags).
 * WV_CREQ_ON_LOOP: the caller is an IO loop, nothing may block. A plain request without a scan
 * or includes, of an image whose tag, upstream manifest and config are cached and whose data:
 * layers were verified before (an image already seen: what a pipeline sends thousands of
 * times), is handled and parked as by wv_creq_handle_async; anything that would wait for an
 * upstream, a file write, a slow account hash (a towerAccessToken while some account value is
 * salted) or the store's queue returns WV_DEFER before doing it (nothing written; run again on
 * a worker). Bodies over WV_CREQ_INLINE_MAX_BODY, cluster-wide rate
 * limits or shared (Redis) records are deferred at once. A request deferred carries no pull
 * permit: one the loop took is given back (wv_ratelimit_refund) and the worker's run takes
 * it, so a deferred request that no worker runs (503, the worker queue full) costs none.
 */
#define WV_CREQ_ON_LOOP 1u
/* The IO loop parses, hashes the data: layers of and encodes the records of at most this much
 * (~50 µs of its time for the bench's augmented request of ~1 KiB; a hot pull is ~15 µs). */
#define WV_CREQ_INLINE_MAX_BODY 16384
int wv_creq_handle_flags(const wv_app_t *app, wv_arena_t *a, const char *body, size_t len, bool v2,
                         const char *client_ip, json_object **resp, const char **msg,
                         int64_t *retry_after_s, wv_creq_done_cb done, void *arg, unsigned *flags);

/* Adds the container-request routes (build/request/routes.c). 0, WV_EINVAL or WV_ENOMEM. */
struct wv_router;
int wv_creq_routes_register(struct wv_router *r);

/* The response of contract §3.3 for a plain request (v1 or v2 shape). */
json_object *wv_creq_response(const wv_creq_t *r, const wv_creq_result_t *res);

/*
 * One minting: the request as every kind's encode callback reads it (plain
 * requests, builds, mirrors), and the kind's own state in arg. Borrowed, not
 * copied.
 */
typedef struct {
  const wv_app_t *app;
  wv_arena_t *a;
  const wv_creq_t *r;
  const wv_creq_plan_t *plan;
  const char *client_ip;
  wv_creq_result_t *res; /* res->token: the token just drawn */
  void *arg;             /* the kind's own; NULL when it has none */
} wv_creq_mint_t;

/*
 * Mints a request id/token (contract §4.1) and writes the token record and the
 * persisted request record in one durable transaction, drawing again on a
 * collision: m->res->token is set before each encode(m, tok, rec) call, which
 * fills tok (reset for it) and *rec (an arena string) for that token. The
 * token expires at res->expires_ns, the record wave.record TTL after
 * res->created_ns. Returns 0, encode's error, WV_EINTERNAL (collisions
 * only), or the store's error. Used by plain requests, builds and mirrors.
 */
typedef int (*wv_creq_encode_cb)(const wv_creq_mint_t *m, wv_buf_t *tok, const char **rec);
int wv_creq_mint(const wv_creq_mint_t *m, wv_creq_encode_cb encode);

/*
 * A token record with the fields every request kind fills the same way: the
 * token (res->token), the image named by ref, the plan's platform and user,
 * client_ip, and res's creation and expiry times in ms. The caller sets the
 * kind and the rest. Strings are borrowed, not copied; nothing to free.
 */
wv_token_rec_t wv_creq_token_rec(const wv_creq_result_t *res, const wv_ref_t *ref,
                                 const wv_creq_plan_t *plan, const char *client_ip);

/* The request's scanLevels as "LOW,MEDIUM" (arena string), NULL when none are allowed. */
const char *wv_creq_scan_levels(wv_arena_t *a, const wv_creq_t *r);

#endif
