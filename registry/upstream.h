/*
 * registry/upstream.h — talking to upstream registries: endpoints, the auth
 * challenge flow (anonymous, Basic, Bearer token), a token cache, and one
 * retry after a 401 with a fresh token (spec §3.6).
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

/* Copies regs (wave.registries). Returns 0 or WV_ENOMEM. Free with wv_upstream_free(). */
int wv_upstream_new(wv_upstream_t **out, const wv_registries_t *regs);
void wv_upstream_free(wv_upstream_t *u);
/*
 * Timeouts of the requests the client makes on its own (the /v2/ lookup and
 * token requests); defaults 10 s connect, 20 s whole. Call before use.
 */
void wv_upstream_set_timeouts(wv_upstream_t *u, int64_t connect_ms, int64_t total_ms);

/* Writes "http(s)://<api host>" for registry into out. Returns 0 or WV_ETOOBIG. */
int wv_upstream_base_url(const wv_upstream_t *u, const char *registry, char *out, size_t outlen);

/*
 * Sends req to registry on behalf of repository repo (used for the token
 * scope; may be NULL for /v2/ itself). req->url is a path ("/v2/…"); the
 * endpoint is prepended here, and an Authorization header is added when the
 * registry asks for one. `push` asks for a pull,push scope. On 401 with a
 * cached Bearer token the token is dropped, a new one fetched, and the request
 * sent once more. Returns as wv_http_do(); resp holds the final response. A
 * token service that refuses gives WV_EAUTH with its status in resp->status.
 */
int wv_upstream_do(wv_upstream_t *u, const char *registry, const char *repo, bool push,
                   const wv_http_req_t *req, wv_http_resp_t *resp, char *err, size_t errlen);

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
