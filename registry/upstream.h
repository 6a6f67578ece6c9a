/*
 * registry/upstream.h — talking to upstream registries: endpoints, the auth
 * challenge flow (anonymous, Basic, Bearer token), a token cache, and one
 * retry after a 401 with a fresh token (contract §5.6).
 *
 * One wv_upstream_t is shared by every worker thread: its caches are guarded
 * by a mutex that is never held across network I/O. Requests themselves run
 * on the calling thread's own HTTP client (http/client.h).
 *
 * Endpoint rules: docker.io is served by registry-1.docker.io; plain HTTP is
 * used for registries marked insecure in config.yml and for localhost and
 * 127.0.0.0/8 / [::1]; everything else is HTTPS.
 */
#ifndef WV_UPSTREAM_H
#define WV_UPSTREAM_H

#include "core/config.h"
#include "http/client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wv_upstream wv_upstream_t;

/*
 * Who a request acts for, passed to every upstream call: an account of
 * wave.accounts, NULL for an anonymous request, or WV_WHO_WAVED for waved's
 * own work (pushes into wave.build.repo, pulls of images it built). The
 * configured credentials of a registry are used only when its allow policy
 * gives the caller the right (wv_registry_perm, docs/security.md).
 */
extern const char WV_WHO_WAVED[];

/* Copies regs (wave.registries). Returns 0 or WV_ENOMEM. Free with wv_upstream_free(). */
int wv_upstream_new(wv_upstream_t **out, const wv_registries_t *regs);
void wv_upstream_free(wv_upstream_t *u);
/*
 * Timeouts of the requests the client makes on its own (the /v2/ lookup and
 * token requests); defaults 10 s connect, 20 s whole. Call before use.
 */
void wv_upstream_set_timeouts(wv_upstream_t *u, int64_t connect_ms, int64_t total_ms);

/*
 * Checks URLs that upstreams choose (WWW-Authenticate realms) against cfg's
 * wave.security.outbound policy; without a call they are not checked (unit
 * tests). 0, WV_EINTERNAL (a bad allow list, err says why) or WV_ENOMEM.
 */
int wv_upstream_set_outbound(wv_upstream_t *u, const wv_config_t *cfg, char *err, size_t errlen);

/* The outbound policy set by wv_upstream_set_outbound (NULL: none), for URLs registries choose. */
const wv_netpolicy_t *wv_upstream_policy(const wv_upstream_t *u);

/* The configured entry of registry (wave.registries), NULL when it has none. */
const wv_config_registry_t *wv_upstream_conf(const wv_upstream_t *u, const char *registry);

/*
 * What who may do with registry's configured credentials: WV_PERM_PUSH for
 * WV_WHO_WAVED and registries without credentials, else wv_registry_perm().
 */
wv_perm_t wv_upstream_perm(const wv_upstream_t *u, const char *registry, const char *who);

/*
 * Writes the refusal for who on registry into err: "anonymous requests are
 * not allowed to push to registry <host> with its configured credentials
 * (wave.registries.<host>.allow)" (or "account 'x' is not allowed to pull ...").
 */
void wv_upstream_denied(const char *registry, const char *who, bool push, char *err, size_t errlen);

/*
 * True when a token realm may receive the Basic credentials of registry:
 * its host is the registry's own API host (any port; auth.docker.io for
 * Docker Hub), and it is https unless insecure (the registry is configured
 * insecure).
 */
bool wv_upstream_realm_trusted(const char *registry, bool insecure, const char *realm);

/* Writes "http(s)://<api host>" for registry into out. Returns 0 or WV_ETOOBIG. */
int wv_upstream_base_url(const wv_upstream_t *u, const char *registry, char *out, size_t outlen);

/*
 * Sends req to registry on behalf of who (see WV_WHO_WAVED) and repository
 * repo (used for the token scope; may be NULL for /v2/ itself). The
 * registry's credentials are sent only when who may use them for a pull (or
 * a push when `push`); otherwise the request goes anonymously, and a push, or
 * a pull the registry then refuses (401/403, or its token service refuses),
 * returns WV_EDENIED with wv_upstream_denied()'s text in err. req->url is a path ("/v2/…"); the
 * endpoint is prepended here, and an Authorization header is added when the
 * registry asks for one. `push` asks for a pull,push scope. On 401 with a
 * cached Bearer token the token is dropped, a new one fetched, and the request
 * sent once more. Returns as wv_http_do(); resp holds the final response. A
 * token service that refuses gives WV_EAUTH with its status in resp->status.
 * req->stop_cb (with req->body_arg) is asked during every exchange made for
 * req: the /v2/ auth probe and the token GET as well as req itself, so a stop
 * raised while a registry stalls ends the call (WV_ECLOSED) within about a
 * second, whatever step it is at.
 */
int wv_upstream_do(wv_upstream_t *u, const char *registry, const char *repo, bool push,
                   const char *who, const wv_http_req_t *req, wv_http_resp_t *resp, char *err,
                   size_t errlen);

/* Parsed WWW-Authenticate challenge. Strings are owned by the struct. */
typedef struct {
  char scheme[16]; /* "Bearer" or "Basic" */
  char *realm;
  char *service;
  char *scope;
} wv_auth_challenge_t;

/* Parses one challenge. Returns 0, WV_EPARSE, or WV_ENOMEM. */
int wv_auth_challenge_parse(const char *header, wv_auth_challenge_t *out);
void wv_auth_challenge_free(wv_auth_challenge_t *c);

#endif
