/*
 * registry/validate.c — credential validation (see validate.h).
 *
 * As Wave does: ping the registry's /v2/ anonymously; a Bearer challenge
 * names a token service, which gets GET <realm>?service=<service> with the
 * credentials as HTTP Basic; a Basic challenge means /v2/ itself is asked
 * again with them. HTTP 200 answers true, anything else (a refusal, an
 * unreachable host) false. Every request goes out under the outbound policy
 * (wave.security.outbound.*, docs/security.md) — the registry is named by the
 * caller and the realm by the registry, so both are request-supplied URLs. A
 * destination the policy refuses is a 400 that says why, never a request.
 */
#include "registry/validate.h"
#include "core/app.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "http/client.h"
#include "http/resp.h"
#include "registry/ref.h"
#include "registry/upstream.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define FIELD_MAX 1024         /* bytes of one field */
#define URL_MAX 2048           /* bytes of a URL we build */
#define ANSWER_MAX (64 * 1024) /* body kept of an upstream answer (unused but capped) */
#define TIMEOUT_MS (15 * 1000) /* one upstream request */

typedef struct {
  const char *user, *password, *registry;
} creds_t;

/* The three fields of obj, all required and non-blank; else a 400 message. */
static const char *read_creds(json_object *obj, creds_t *c) {
  static const char *const names[] = {"userName", "password", "registry"};
  const char **dst[] = {&c->user, &c->password, &c->registry};
  for (int i = 0; i < 3; i++) {
    const char *v = NULL;
    int rc = wv_json_get_str(obj, names[i], &v);
    if (rc == WV_EINVAL)
      return i == 0   ? "Field 'userName' must be a string"
             : i == 1 ? "Field 'password' must be a string"
                      : "Field 'registry' must be a string";
    if (rc || !v || !v[strspn(v, " \t\r\n")])
      return i == 0   ? "Missing required field 'userName'"
             : i == 1 ? "Missing required field 'password'"
                      : "Missing required field 'registry'";
    if (strlen(v) > FIELD_MAX)
      return "Field too long";
    *dst[i] = v;
  }
  return NULL;
}

/* "Authorization: Basic <base64 user:password>" in the arena, NULL on OOM. */
static const char *basic_header(wv_arena_t *a, const creds_t *c) {
  char *plain = wv_arena_sprintf(a, "%s:%s", c->user, c->password);
  if (!plain)
    return NULL;
  size_t n = strlen(plain);
  char *b64 = wv_arena_alloc(a, 4 * ((n + 2) / 3) + 1);
  if (!b64)
    return NULL;
  EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)plain, (int)n);
  return wv_arena_sprintf(a, "Authorization: Basic %s", b64);
}

/* One GET under the outbound policy. 0 with resp filled, or the client's error (why set). */
static int get(const wv_app_t *app, const char *url, const char *auth, wv_http_resp_t *resp,
               char *why, size_t whylen) {
  const char *hdrs[] = {auth, NULL};
  wv_http_req_t r = {.method = "GET",
                     .url = url,
                     .headers = auth ? hdrs : NULL,
                     .max_body = ANSWER_MAX,
                     .timeout_ms = TIMEOUT_MS};
  wv_http_resp_free(resp);
  wv_http_resp_init(resp);
  return wv_http_do_outbound(wv_http_client_get(), app->cfg, &r, resp, why, whylen);
}

/* The token-service URL of a Bearer challenge: realm?service=<service>, in the arena. */
static const char *token_url(wv_arena_t *a, const wv_auth_challenge_t *ch) {
  if (!ch->service || !*ch->service)
    return ch->realm;
  char *svc = curl_easy_escape(NULL, ch->service, 0);
  if (!svc)
    return NULL;
  const char *u =
      wv_arena_sprintf(a, "%s%cservice=%s", ch->realm, strchr(ch->realm, '?') ? '&' : '?', svc);
  curl_free(svc);
  return u && strlen(u) < URL_MAX ? u : NULL;
}

/*
 * Checks c against its registry: 0 with *valid set, WV_EDENIED with the
 * policy's reason in why (answered 400), or WV_ENOMEM.
 */
static int check(wv_req_t *req, const creds_t *c, bool *valid, char *why, size_t whylen) {
  const wv_app_t *app = req->app;
  char base[URL_MAX];
  *valid = false;
  if (wv_upstream_base_url(app->upstream, c->registry, base, sizeof base - 8))
    return 0;
  strcat(base, "/v2/");
  const char *auth = basic_header(req->arena, c);
  if (!auth)
    return WV_ENOMEM;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = get(app, base, NULL, &resp, why, whylen);
  wv_auth_challenge_t ch = {0};
  const char *hdr = rc ? NULL : wv_http_resp_header(&resp, "WWW-Authenticate");
  if (!rc && resp.status == 401 && hdr && wv_auth_challenge_parse(hdr, &ch) == 0) {
    if (strcasecmp(ch.scheme, "Bearer") == 0 && ch.realm) {
      const char *url = token_url(req->arena, &ch);
      rc = url ? get(app, url, auth, &resp, why, whylen) : 0;
      *valid = url && !rc && resp.status == 200;
    } else if (strcasecmp(ch.scheme, "Basic") == 0) {
      rc = get(app, base, auth, &resp, why, whylen);
      *valid = !rc && resp.status == 200;
    }
  } else if (!rc && resp.status == 200) {
    /* An open registry takes anyone: Wave asks its (absent) realm and answers false. */
    *valid = false;
  }
  wv_auth_challenge_free(&ch);
  wv_http_resp_free(&resp);
  if (rc == WV_EDENIED)
    return rc;
  if (rc)
    wv_info("validate-creds: %s: %s", c->registry, why);
  return rc == WV_ENOMEM ? rc : 0;
}

static int handle(wv_req_t *req, wv_resp_t *resp, bool legacy) {
  char err[256];
  json_object *root = NULL, *obj;
  int rc = wv_json_parse_body(req->body, req->body_len, WV_VALIDATE_MAX_BODY, 8, 1000, &root, err,
                              sizeof err);
  if (rc)
    return wv_resp_api_error(req, resp, 400, err);
  obj = root;
  if (legacy && wv_json_get_object(root, "request", &obj)) {
    json_object_put(root);
    return wv_resp_api_error(req, resp, 400, "Missing required field 'request'");
  }
  creds_t c;
  const char *msg = read_creds(obj, &c);
  bool valid = false;
  char why[512] = "";
  if (!msg) {
    rc = check(req, &c, &valid, why, sizeof why);
    if (rc == WV_EDENIED)
      msg = wv_arena_sprintf(req->arena, "Registry '%s' cannot be reached: %s", c.registry, why);
  }
  json_object_put(root); /* c's strings point into it: used above only */
  if (msg)
    return wv_resp_api_error(req, resp, 400, msg);
  if (rc)
    return rc;
  return wv_resp_bytes(req, resp, 200, "application/json", valid ? "true" : "false", valid ? 4 : 5);
}

int wv_validate_handler(wv_req_t *req, wv_resp_t *resp) { return handle(req, resp, false); }
int wv_validate_legacy_handler(wv_req_t *req, wv_resp_t *resp) { return handle(req, resp, true); }
