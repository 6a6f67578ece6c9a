#include "registry/upstream.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/netpolicy.h"
#include "core/timefmt.h"
#include "registry/ref.h"
#include "core/timefmt.h"

#include <curl/curl.h>

#include <ctype.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOOKUP_TTL_MS (3600 * 1000LL)
#define MAX_CACHED_TOKENS 1024
#define MAX_TOKEN_LEN 16384
#define MAX_URL 4096

typedef enum { AUTH_NONE, AUTH_BASIC, AUTH_BEARER } auth_kind_t;

typedef struct lookup {
  struct lookup *next;
  char *registry;
  auth_kind_t kind;
  char *realm, *service;
  int64_t expires_ms;
} lookup_t;

typedef struct {
  char *key; /* registry \x1c scope \x1c username */
  char *token;
  int64_t expires_ms;
} token_t;

struct wv_upstream {
  wv_config_registry_t *confs;
  size_t nconfs;
  pthread_mutex_t mu; /* guards lookups and tokens; never held across I/O */
  lookup_t *lookups;
  token_t tokens[MAX_CACHED_TOKENS];
  size_t ntokens;
  int64_t connect_ms, total_ms; /* lookup and token requests */
  wv_netpolicy_t *policy;       /* for realms; NULL = unchecked (tests) */
};

const char WV_WHO_WAVED[] = "(waved)";

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int wv_upstream_new(wv_upstream_t **out, const wv_registries_t *regs) {
  const wv_config_registry_t *confs = regs->items;
  size_t n = regs->len;
  wv_upstream_t *u = calloc(1, sizeof *u);
  if (!u)
    return WV_ENOMEM;
  pthread_mutex_init(&u->mu, NULL);
  u->connect_ms = 10000;
  u->total_ms = 20000;
  u->confs = calloc(n ? n : 1, sizeof *u->confs);
  if (!u->confs)
    goto oom;
  for (size_t i = 0; i < n; i++, u->nconfs++)
    if (wv_config_registry_copy(&u->confs[i], &confs[i]) || !u->confs[i].host)
      goto oom;
  *out = u;
  return 0;
oom:
  wv_upstream_free(u);
  return WV_ENOMEM;
}

static void lookup_free(lookup_t *l) {
  free(l->registry);
  free(l->realm);
  free(l->service);
  free(l);
}

void wv_upstream_free(wv_upstream_t *u) {
  if (!u)
    return;
  for (size_t i = 0; i < u->nconfs; i++)
    wv_config_registry_free(&u->confs[i]);
  free(u->confs);
  wv_netpolicy_free(u->policy);
  for (lookup_t *l = u->lookups, *next; l; l = next) {
    next = l->next;
    lookup_free(l);
  }
  for (size_t i = 0; i < u->ntokens; i++) {
    free(u->tokens[i].key);
    free(u->tokens[i].token);
  }
  pthread_mutex_destroy(&u->mu);
  free(u);
}

void wv_upstream_set_timeouts(wv_upstream_t *u, int64_t connect_ms, int64_t total_ms) {
  u->connect_ms = connect_ms;
  u->total_ms = total_ms;
}

static const wv_config_registry_t *find_conf(const wv_upstream_t *u, const char *registry) {
  for (size_t i = 0; i < u->nconfs; i++)
    if (strcasecmp(u->confs[i].host, registry) == 0)
      return &u->confs[i];
  return NULL;
}

const wv_netpolicy_t *wv_upstream_policy(const wv_upstream_t *u) { return u->policy; }

const wv_config_registry_t *wv_upstream_conf(const wv_upstream_t *u, const char *registry) {
  return find_conf(u, registry);
}

int wv_upstream_set_outbound(wv_upstream_t *u, const wv_config_t *cfg, char *err, size_t errlen) {
  wv_netpolicy_t *p = NULL;
  int rc = wv_netpolicy_from_config(cfg, &p, err, errlen);
  if (rc)
    return rc == WV_ENOMEM ? rc : WV_EINTERNAL;
  wv_netpolicy_free(u->policy);
  u->policy = p;
  return 0;
}

wv_perm_t wv_upstream_perm(const wv_upstream_t *u, const char *registry, const char *who) {
  if (who == WV_WHO_WAVED)
    return WV_PERM_PUSH;
  return wv_registry_perm(find_conf(u, registry), who);
}

void wv_upstream_denied(const char *registry, const char *who, bool push, char *err,
                        size_t errlen) {
  char caller[160];
  if (who)
    snprintf(caller, sizeof caller, "account '%.100s' is", who);
  else
    snprintf(caller, sizeof caller, "anonymous requests are");
  snprintf(err, errlen,
           "%s not allowed to %s registry %.200s with its configured credentials "
           "(wave.registries.\"%.200s\".allow)",
           caller, push ? "push to" : "pull from", registry, registry);
}

/* The host of url (lowercase, no port, brackets kept off) and whether it is https. */
static bool url_host(const char *url, char *host, size_t hostlen, bool *https) {
  CURLU *h = curl_url();
  char *hp = NULL, *sp = NULL;
  bool ok = h && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(h, CURLUPART_HOST, &hp, 0) == CURLUE_OK &&
            curl_url_get(h, CURLUPART_SCHEME, &sp, 0) == CURLUE_OK && strlen(hp) < hostlen;
  if (ok) {
    size_t n = 0;
    for (const char *c = hp; *c; c++)
      if (*c != '[' && *c != ']')
        host[n++] = (char)tolower((unsigned char)*c);
    host[n] = '\0';
    *https = strcasecmp(sp, "https") == 0;
  }
  curl_free(hp);
  curl_free(sp);
  curl_url_cleanup(h);
  return ok;
}

/* The registry's API host without port or brackets, lowercase. */
static void registry_host(const char *registry, char *host, size_t hostlen) {
  const char *api = wv_ref_api_host(registry);
  const char *end;
  if (api[0] == '[') {
    api++;
    end = strchr(api, ']');
  } else {
    end = strchr(api, ':');
  }
  size_t n = end ? (size_t)(end - api) : strlen(api);
  if (n >= hostlen)
    n = hostlen - 1;
  for (size_t i = 0; i < n; i++)
    host[i] = (char)tolower((unsigned char)api[i]);
  host[n] = '\0';
}

bool wv_upstream_realm_trusted(const char *registry, bool insecure, const char *realm) {
  char rh[256], gh[256];
  bool https = false;
  if (!url_host(realm, rh, sizeof rh, &https))
    return false;
  if (!https && !insecure)
    return false;
  registry_host(registry, gh, sizeof gh);
  if (strcmp(rh, gh) == 0)
    return true;
  /* Docker Hub's token service lives next to its registry. */
  return strcmp(registry, WV_REF_DEFAULT_REGISTRY) == 0 && strcmp(rh, "auth.docker.io") == 0;
}

int wv_upstream_base_url(const wv_upstream_t *u, const char *registry, char *out, size_t outlen) {
  const wv_config_registry_t *c = find_conf(u, registry);
  bool plain = (c && c->insecure) || wv_ref_is_loopback(registry);
  int n = snprintf(out, outlen, "%s://%s", plain ? "http" : "https", wv_ref_api_host(registry));
  return n < 0 || (size_t)n >= outlen ? WV_ETOOBIG : 0;
}

/* ---- WWW-Authenticate ------------------------------------------------- */

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == ',')
    p++;
  return p;
}

/* Reads a token or a quoted string (with backslash escapes) into a new string. */
static char *read_value(const char **pp) {
  const char *p = *pp;
  size_t cap = strlen(p) + 1, n = 0;
  char *v = malloc(cap);
  if (!v)
    return NULL;
  if (*p == '"') {
    for (p++; *p && *p != '"'; p++) {
      if (*p == '\\' && p[1])
        p++;
      v[n++] = *p;
    }
    if (*p != '"') {
      free(v);
      return NULL;
    }
    p++;
  } else {
    while (*p && *p != ',' && *p != ' ')
      v[n++] = *p++;
  }
  v[n] = '\0';
  *pp = p;
  return v;
}

void wv_auth_challenge_free(wv_auth_challenge_t *c) {
  free(c->realm);
  free(c->service);
  free(c->scope);
  memset(c, 0, sizeof *c);
}

int wv_auth_challenge_parse(const char *header, wv_auth_challenge_t *out) {
  memset(out, 0, sizeof *out);
  const char *p = skip_ws(header);
  size_t n = 0;
  while (p[n] && p[n] != ' ')
    n++;
  if (n == 0 || n >= sizeof out->scheme)
    return WV_EPARSE;
  memcpy(out->scheme, p, n);
  out->scheme[n] = '\0';
  if (strcasecmp(out->scheme, "Bearer") != 0 && strcasecmp(out->scheme, "Basic") != 0)
    return WV_EPARSE;
  p = skip_ws(p + n);
  while (*p) {
    const char *eq = strchr(p, '=');
    if (!eq)
      break;
    size_t klen = (size_t)(eq - p);
    const char *vp = eq + 1;
    char *v = read_value(&vp);
    if (!v) {
      wv_auth_challenge_free(out);
      return WV_EPARSE;
    }
    char **slot = klen == 5 && strncasecmp(p, "realm", 5) == 0     ? &out->realm
                  : klen == 7 && strncasecmp(p, "service", 7) == 0 ? &out->service
                  : klen == 5 && strncasecmp(p, "scope", 5) == 0   ? &out->scope
                                                                   : NULL;
    if (slot) {
      free(*slot);
      *slot = v;
    } else {
      free(v);
    }
    p = skip_ws(vp);
  }
  if (strcasecmp(out->scheme, "Bearer") == 0 &&
      (!out->realm || (strncmp(out->realm, "http://", 7) && strncmp(out->realm, "https://", 8)))) {
    wv_auth_challenge_free(out);
    return WV_EPARSE;
  }
  return 0;
}

/* ---- registry lookup (which auth scheme), cached per registry ---------- */

/* Copies what the caller needs out of the cache while holding the lock. */
static int lookup_get(wv_upstream_t *u, const char *registry, auth_kind_t *kind, char **realm,
                      char **service) {
  int found = 0;
  pthread_mutex_lock(&u->mu);
  for (lookup_t *l = u->lookups; l; l = l->next) {
    if (strcmp(l->registry, registry) == 0 && l->expires_ms > wv_mono_ms()) {
      *kind = l->kind;
      *realm = dup_or_null(l->realm);
      *service = dup_or_null(l->service);
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&u->mu);
  return found;
}

static void lookup_put(wv_upstream_t *u, const char *registry, auth_kind_t kind, const char *realm,
                       const char *service) {
  lookup_t *l = calloc(1, sizeof *l);
  if (!l)
    return;
  l->registry = strdup(registry);
  l->realm = dup_or_null(realm);
  l->service = dup_or_null(service);
  l->kind = kind;
  l->expires_ms = wv_mono_ms() + LOOKUP_TTL_MS;
  if (!l->registry) {
    lookup_free(l);
    return;
  }
  pthread_mutex_lock(&u->mu);
  /* Replace any older entry for the same registry. */
  for (lookup_t **pp = &u->lookups; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->registry, registry) == 0) {
      lookup_t *old = *pp;
      *pp = old->next;
      lookup_free(old);
      break;
    }
  }
  l->next = u->lookups;
  u->lookups = l;
  pthread_mutex_unlock(&u->mu);
}

static void lookup_drop(wv_upstream_t *u, const char *registry) {
  pthread_mutex_lock(&u->mu);
  for (lookup_t *l = u->lookups; l; l = l->next)
    if (strcmp(l->registry, registry) == 0)
      l->expires_ms = 0;
  pthread_mutex_unlock(&u->mu);
}

/*
 * The /v2/ probe. caller is the request it is made for: its stop check (stop_cb, body_arg)
 * also ends the probe, so a caller that gives up (waved stopping, a cancelled request) does
 * not wait out the upstream timeout on a registry that never answers.
 */
static int lookup_fetch(wv_upstream_t *u, const char *registry, const wv_http_req_t *caller,
                        auth_kind_t *kind, char **realm, char **service, wv_http_resp_t *resp,
                        char *err, size_t errlen) {
  char url[MAX_URL];
  if (wv_upstream_base_url(u, registry, url, sizeof url - 8))
    return WV_ETOOBIG;
  strcat(url, "/v2/");
  wv_http_req_t req = {.url = url,
                       .max_body = 64 << 10,
                       .timeout_ms = u->total_ms,
                       .connect_timeout_ms = u->connect_ms,
                       .stop_cb = caller->stop_cb,
                       .body_arg = caller->body_arg};
  int rc = wv_http_do(wv_http_client_get(), &req, resp, err, errlen);
  if (rc)
    return rc;
  *realm = *service = NULL;
  if (resp->status == 200) {
    *kind = AUTH_NONE;
  } else if (resp->status == 401) {
    const char *h = wv_http_resp_header(resp, "WWW-Authenticate");
    wv_auth_challenge_t ch;
    if (!h || wv_auth_challenge_parse(h, &ch)) {
      /* A 401 with no usable challenge: Basic against the endpoint itself. */
      *kind = AUTH_BASIC;
    } else {
      *kind = strcasecmp(ch.scheme, "Bearer") == 0 ? AUTH_BEARER : AUTH_BASIC;
      *realm = ch.realm;
      *service = ch.service;
      ch.realm = ch.service = NULL;
      wv_auth_challenge_free(&ch);
    }
  } else {
    snprintf(err, errlen, "registry %s answered %ld to /v2/", registry, resp->status);
    return WV_EUPSTREAM;
  }
  lookup_put(u, registry, *kind, *realm, *service);
  return 0;
}

/* ---- tokens -------------------------------------------------------------- */

static char *basic_credentials(const wv_config_registry_t *c) {
  if (!c || !c->username)
    return NULL;
  char plain[1024];
  int n = snprintf(plain, sizeof plain, "%s:%s", c->username, c->password ? c->password : "");
  if (n < 0 || (size_t)n >= sizeof plain)
    return NULL;
  char *out = malloc(4 * (((size_t)n + 2) / 3) + 1);
  if (out)
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)plain, n);
  return out;
}

static char *token_key(const char *registry, const char *scope, const wv_config_registry_t *c) {
  size_t n = strlen(registry) + strlen(scope) + (c && c->username ? strlen(c->username) : 0) + 3;
  char *k = malloc(n);
  if (k)
    snprintf(k, n, "%s\x1c%s\x1c%s", registry, scope, c && c->username ? c->username : "");
  return k;
}

static char *token_get(wv_upstream_t *u, const char *key) {
  char *t = NULL;
  pthread_mutex_lock(&u->mu);
  for (size_t i = 0; i < u->ntokens; i++)
    if (strcmp(u->tokens[i].key, key) == 0 && u->tokens[i].expires_ms > wv_mono_ms()) {
      t = strdup(u->tokens[i].token);
      break;
    }
  pthread_mutex_unlock(&u->mu);
  return t;
}

static void token_slot_free(token_t *t) {
  free(t->key);
  free(t->token);
  t->key = t->token = NULL;
}

/* Stores key → token, replacing the same key, else an expired slot, else the
 * entry closest to expiry. Takes ownership of key and token. */
static void token_put(wv_upstream_t *u, char *key, char *token, int64_t ttl_ms) {
  pthread_mutex_lock(&u->mu);
  int64_t now = wv_mono_ms();
  size_t slot = u->ntokens;
  for (size_t i = 0; i < u->ntokens; i++) {
    if (strcmp(u->tokens[i].key, key) == 0 || u->tokens[i].expires_ms <= now) {
      slot = i;
      break;
    }
  }
  if (slot == MAX_CACHED_TOKENS) {
    slot = 0;
    for (size_t i = 1; i < u->ntokens; i++)
      if (u->tokens[i].expires_ms < u->tokens[slot].expires_ms)
        slot = i;
  }
  if (slot < u->ntokens)
    token_slot_free(&u->tokens[slot]);
  else
    u->ntokens++;
  u->tokens[slot] = (token_t){key, token, now + ttl_ms};
  pthread_mutex_unlock(&u->mu);
}

static void token_drop(wv_upstream_t *u, const char *key) {
  pthread_mutex_lock(&u->mu);
  for (size_t i = 0; i < u->ntokens; i++)
    if (strcmp(u->tokens[i].key, key) == 0)
      u->tokens[i].expires_ms = 0;
  pthread_mutex_unlock(&u->mu);
}

static void append_escaped(char *out, size_t outlen, const char *s) {
  size_t n = strlen(out);
  for (; *s && n + 4 < outlen; s++) {
    unsigned char ch = (unsigned char)*s;
    if (isalnum(ch) || strchr("-_.~", ch))
      out[n++] = (char)ch;
    else
      n += (size_t)snprintf(out + n, outlen - n, "%%%02X", ch);
  }
  out[n] = '\0';
}

/* Parses {"token"|"access_token": "...", "expires_in": N}. */
static char *parse_token(const wv_buf_t *body, int64_t *ttl_ms) {
  json_object *o = json_tokener_parse(body->data ? body->data : "");
  if (!o)
    return NULL;
  json_object *t = NULL, *e = NULL;
  if (!json_object_object_get_ex(o, "token", &t) || !json_object_is_type(t, json_type_string))
    json_object_object_get_ex(o, "access_token", &t);
  char *token = NULL;
  if (t && json_object_is_type(t, json_type_string) && json_object_get_string_len(t) > 0 &&
      json_object_get_string_len(t) < MAX_TOKEN_LEN)
    token = strdup(json_object_get_string(t));
  int64_t secs = 60; /* the token spec's default lifetime */
  if (json_object_object_get_ex(o, "expires_in", &e) && json_object_get_int64(e) > 0)
    secs = json_object_get_int64(e);
  /* Renew a little early so a token never expires in flight. */
  *ttl_ms = (secs > 30 ? secs - 10 : secs) * 1000;
  json_object_put(o);
  return token;
}

/* The token GET; like the probe, it honours the caller's stop check. */
static int token_fetch(wv_upstream_t *u, const char *registry, const wv_http_req_t *caller,
                       const char *realm, const char *service, const char *scope,
                       const wv_config_registry_t *c, char **token, int64_t *ttl_ms,
                       wv_http_resp_t *resp, char *err, size_t errlen) {
  char url[MAX_URL];
  snprintf(url, sizeof url, "%s%c", realm, strchr(realm, '?') ? '&' : '?');
  if (service) {
    strncat(url, "service=", sizeof url - strlen(url) - 1);
    append_escaped(url, sizeof url, service);
    strncat(url, "&", sizeof url - strlen(url) - 1);
  }
  strncat(url, "scope=", sizeof url - strlen(url) - 1);
  append_escaped(url, sizeof url, scope);
  char auth[1100] = "";
  const wv_config_registry_t *conf = find_conf(u, registry);
  /* The realm is the registry's choice: the credentials go only to its own
   * host, over https unless the operator marked it insecure. */
  if (c && c->username && !wv_upstream_realm_trusted(registry, conf && conf->insecure, realm)) {
    wv_warn("registry %s: token realm %s is not on the registry's own host over %s: "
            "asking it without credentials",
            registry, realm, conf && conf->insecure ? "http(s)" : "https");
    c = NULL;
  }
  char *basic = basic_credentials(c);
  if (basic)
    snprintf(auth, sizeof auth, "Authorization: Basic %s", basic);
  free(basic);
  const char *hdrs[] = {auth[0] ? auth : NULL, NULL};
  wv_http_req_t req = {.url = url,
                       .headers = hdrs,
                       .max_body = 1 << 20,
                       .timeout_ms = u->total_ms,
                       .connect_timeout_ms = u->connect_ms,
                       .stop_cb = caller->stop_cb,
                       .body_arg = caller->body_arg};
  /* A realm on another host than a configured registry's is any URL an
   * upstream names: it goes through the outbound policy (resolved once,
   * pinned). */
  char rh[256], gh[256];
  bool https;
  registry_host(registry, gh, sizeof gh);
  if (u->policy && !(conf && url_host(realm, rh, sizeof rh, &https) && strcmp(rh, gh) == 0))
    req.policy = u->policy;
  char detail[512] = "";
  int rc = wv_http_do(wv_http_client_get(), &req, resp, detail, sizeof detail);
  if (rc == WV_EDENIED) {
    wv_warn("registry %s: token realm %s refused: %s", registry, realm, detail);
    snprintf(err, errlen, "its token service is refused by the outbound policy: %s", detail);
    return rc;
  }
  if (rc) {
    wv_warn("registry %s: token realm %s: %s", registry, realm, detail);
    snprintf(err, errlen, "its token service could not be reached");
    return rc;
  }
  if (resp->status != 200) {
    wv_info("registry %s: token realm %s answered %ld", registry, realm, resp->status);
    snprintf(err, errlen, "its token service answered %ld", resp->status);
    return WV_EAUTH;
  }
  *token = parse_token(&resp->body, ttl_ms);
  if (!*token) {
    wv_info("registry %s: token realm %s answered without a token", registry, realm);
    snprintf(err, errlen, "its token service answered without a token");
    return WV_EAUTH;
  }
  return 0;
}

/* ---- the request ----------------------------------------------------------- */

typedef struct {
  auth_kind_t kind;
  char *realm, *service;
  char *token_key;
} auth_state_t;

static void auth_state_free(auth_state_t *a) {
  free(a->realm);
  free(a->service);
  free(a->token_key);
  memset(a, 0, sizeof *a);
}

/* Works out the Authorization header value for req (may be empty), under req's stop check. */
static int authorize(wv_upstream_t *u, const char *registry, const char *repo, bool push,
                     const wv_http_req_t *req, const wv_config_registry_t *c, auth_state_t *a,
                     char *auth, size_t authlen, long *status, char *err, size_t errlen) {
  auth[0] = '\0';
  if (!lookup_get(u, registry, &a->kind, &a->realm, &a->service)) {
    wv_http_resp_t r;
    wv_http_resp_init(&r);
    int rc = lookup_fetch(u, registry, req, &a->kind, &a->realm, &a->service, &r, err, errlen);
    *status = r.status;
    wv_http_resp_free(&r);
    if (rc)
      return rc;
  }
  if (a->kind == AUTH_BASIC) {
    char *basic = basic_credentials(c);
    if (basic)
      snprintf(auth, authlen, "Authorization: Basic %s", basic);
    free(basic);
    return 0;
  }
  if (a->kind != AUTH_BEARER)
    return 0;
  char scope[1024];
  if (repo)
    snprintf(scope, sizeof scope, "repository:%s:%s", repo, push ? "pull,push" : "pull");
  else
    scope[0] = '\0';
  a->token_key = token_key(registry, scope, c);
  if (!a->token_key)
    return WV_ENOMEM;
  char *token = token_get(u, a->token_key);
  if (!token) {
    int64_t ttl = 0;
    wv_http_resp_t r;
    wv_http_resp_init(&r);
    int rc = token_fetch(u, registry, req, a->realm, a->service, scope, c, &token, &ttl, &r, err,
                         errlen);
    *status = r.status;
    wv_http_resp_free(&r);
    if (rc)
      return rc;
    char *key = strdup(a->token_key), *copy = strdup(token);
    if (key && copy)
      token_put(u, key, copy, ttl);
    else
      free(key), free(copy);
  }
  int n = snprintf(auth, authlen, "Authorization: Bearer %s", token);
  free(token);
  return n < 0 || (size_t)n >= authlen ? WV_ETOOBIG : 0;
}

static int send_once(wv_upstream_t *u, const char *registry, const wv_http_req_t *req,
                     const char *auth, wv_http_resp_t *resp, char *err, size_t errlen) {
  char url[MAX_URL];
  if (wv_upstream_base_url(u, registry, url, sizeof url))
    return WV_ETOOBIG;
  if (strlen(url) + strlen(req->url) >= sizeof url)
    return WV_ETOOBIG;
  strcat(url, req->url);
  size_t n = 0;
  while (req->headers && req->headers[n])
    n++;
  const char **hdrs = calloc(n + 2, sizeof *hdrs);
  if (!hdrs)
    return WV_ENOMEM;
  if (n)
    memcpy(hdrs, req->headers, n * sizeof *hdrs);
  if (auth[0])
    hdrs[n++] = auth;
  wv_http_req_t r = *req;
  r.url = url;
  r.headers = hdrs;
  uint64_t t0 = (uint64_t)wv_mono_ns();
  int rc = wv_http_do(wv_http_client_get(), &r, resp, err, errlen);
  wv_metrics_upstream(registry, (uint64_t)wv_mono_ns() - t0, rc != 0 || resp->status >= 500);
  free(hdrs);
  return rc;
}

int wv_upstream_do(wv_upstream_t *u, const char *registry, const char *repo, bool push,
                   const char *who, const wv_http_req_t *req, wv_http_resp_t *resp, char *err,
                   size_t errlen) {
  const wv_config_registry_t *c = find_conf(u, registry);
  /* The operator's credentials act only for those the policy allows. */
  bool withheld = false;
  if (c && c->username &&
      wv_upstream_perm(u, registry, who) < (push ? WV_PERM_PUSH : WV_PERM_PULL)) {
    withheld = true;
    c = NULL;
    if (push) {
      wv_upstream_denied(registry, who, true, err, errlen);
      return WV_EDENIED;
    }
  }
  char auth[MAX_TOKEN_LEN + 64];
  int rc = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    auth_state_t a = {0};
    rc = authorize(u, registry, repo, push, req, c, &a, auth, sizeof auth, &resp->status, err,
                   errlen);
    if (rc == 0) {
      wv_http_resp_free(resp);
      wv_http_resp_init(resp);
      rc = send_once(u, registry, req, auth, resp, err, errlen);
    }
    /* A 401 means the token expired early or the registry changed its auth
     * since we last looked: forget both and try exactly once more. */
    bool retry = rc == 0 && resp->status == 401 && attempt == 0;
    if (retry) {
      if (a.token_key)
        token_drop(u, a.token_key);
      lookup_drop(u, registry);
    }
    auth_state_free(&a);
    if (!retry)
      break;
  }
  /* Anonymous access was all this caller had, and it was not enough. */
  if (withheld && (rc == WV_EAUTH || (rc == 0 && (resp->status == 401 || resp->status == 403)))) {
    wv_upstream_denied(registry, who, false, err, errlen);
    return WV_EDENIED;
  }
  return rc;
}
