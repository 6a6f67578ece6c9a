#include "http/client.h"
#include "core/err.h"
#include "core/log.h"
#include "core/netpolicy.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define DEFAULT_MAX_BODY ((size_t)8 << 20)
#define MAX_HEADERS 200
#define MAX_HEADER_BYTES ((size_t)64 << 10)
/* Receive buffer for streamed bodies: fewer, larger pieces for the consumer
 * (curl's default is 16 KiB). */
#define STREAM_BUFFER_SIZE (512L << 10)

struct wv_http_client {
  CURL *easy;
};

/* The share handle lets every thread's easy handle reuse DNS answers and TLS
 * sessions; curl asks for a lock per data kind through these callbacks.
 * Process-wide on purpose, as libcurl's own global state (curl_global_init)
 * is: set up once by wv_http_global_init, each thread's handle found by key. */
static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
static pthread_key_t client_key;
static int initialized;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *u) {
  pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u) {
  pthread_mutex_unlock(&share_locks[data]);
}

static void client_destroy(void *p) {
  wv_http_client_t *c = p;
  if (c) {
    curl_easy_cleanup(c->easy);
    free(c);
  }
}

int wv_http_global_init(void) {
  if (initialized)
    return 0;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return WV_EINTERNAL;
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&share_locks[i], NULL);
  share = curl_share_init();
  if (!share || pthread_key_create(&client_key, client_destroy) != 0)
    return WV_EINTERNAL;
  curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  initialized = 1;
  return 0;
}

void wv_http_global_cleanup(void) {
  if (!initialized)
    return;
  /* The calling thread's own client is released here; worker threads release
   * theirs through the key destructor when they exit. */
  client_destroy(pthread_getspecific(client_key));
  pthread_setspecific(client_key, NULL);
  curl_share_cleanup(share);
  share = NULL;
  pthread_key_delete(client_key);
  curl_global_cleanup();
  initialized = 0;
}

wv_http_client_t *wv_http_client_get(void) {
  wv_http_client_t *c = pthread_getspecific(client_key);
  if (c)
    return c;
  c = calloc(1, sizeof *c);
  if (!c || !(c->easy = curl_easy_init())) {
    free(c);
    return NULL;
  }
  pthread_setspecific(client_key, c);
  return c;
}

void wv_http_resp_init(wv_http_resp_t *resp) {
  memset(resp, 0, sizeof *resp);
  wv_buf_init(&resp->body, DEFAULT_MAX_BODY);
}

static void clear_headers(wv_http_resp_t *resp) {
  for (size_t i = 0; i < resp->nheaders; i++) {
    free(resp->headers[i].name);
    free(resp->headers[i].value);
  }
  resp->nheaders = 0;
}

void wv_http_resp_free(wv_http_resp_t *resp) {
  clear_headers(resp);
  free(resp->headers);
  resp->headers = NULL;
  resp->headers_cap = 0;
  wv_buf_free(&resp->body);
}

const char *wv_http_resp_header(const wv_http_resp_t *resp, const char *name) {
  for (size_t i = 0; i < resp->nheaders; i++)
    if (strcasecmp(resp->headers[i].name, name) == 0)
      return resp->headers[i].value;
  return NULL;
}

/*
 * Where a policy-checked request may connect: the checked addresses of its
 * host, tried in order (one per attempt, pinned with CURLOPT_CONNECT_TO); the
 * open-socket callback refuses any address but the one of this attempt.
 */
typedef struct {
  const wv_netpolicy_t *policy;
  wv_netpolicy_dest_t dest;
  size_t cur;     /* index into dest.addrs of this attempt */
  bool by_name;   /* the allow list names the host: connect as usual */
  bool denied;    /* the callback refused an address */
  char host[300]; /* as curl's URL parser spells it ("[::1]" for IPv6) */
  long port;
  char why[300];
} guard_t;

typedef struct {
  const wv_http_req_t *req;
  wv_http_resp_t *resp;
  guard_t *guard; /* NULL without a policy */
  size_t header_bytes;
  int too_big;
  int aborted;
} xfer_t;

static int add_header(wv_http_resp_t *resp, const char *name, size_t nlen, const char *value,
                      size_t vlen) {
  if (resp->nheaders == resp->headers_cap) {
    size_t cap = resp->headers_cap ? resp->headers_cap * 2 : 16;
    wv_http_header_t *h = realloc(resp->headers, cap * sizeof *h);
    if (!h)
      return WV_ENOMEM;
    resp->headers = h;
    resp->headers_cap = cap;
  }
  wv_http_header_t *h = &resp->headers[resp->nheaders];
  h->name = strndup(name, nlen);
  h->value = strndup(value, vlen);
  if (!h->name || !h->value) {
    free(h->name);
    free(h->value);
    return WV_ENOMEM;
  }
  resp->nheaders++;
  return 0;
}

/* curl hands over one header line at a time, status lines included. A new
 * status line (after a 100 Continue, say) starts a fresh header set, so the
 * caller sees only the final response's headers. */
static size_t on_header(char *line, size_t size, size_t n, void *arg) {
  xfer_t *x = arg;
  size_t len = size * n;
  x->header_bytes += len;
  if (x->header_bytes > MAX_HEADER_BYTES || x->resp->nheaders >= MAX_HEADERS) {
    x->too_big = 1;
    return 0;
  }
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    clear_headers(x->resp);
    const char *sp = memchr(line, ' ', len);
    x->resp->status = sp ? strtol(sp + 1, NULL, 10) : 0;
    return len;
  }
  const char *colon = memchr(line, ':', len);
  if (!colon) { /* the blank line ending the head */
    bool informational = x->resp->status >= 100 && x->resp->status < 200;
    if (!informational && x->req->head_cb && x->req->head_cb(x->req->body_arg, x->resp)) {
      x->aborted = 1;
      return 0;
    }
    return len;
  }
  const char *v = colon + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  if (add_header(x->resp, line, (size_t)(colon - line), v, (size_t)(end - v)))
    return 0;
  return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
  xfer_t *x = arg;
  size_t len = size * n;
  if (x->req->body_cb) {
    if (x->req->body_cb(x->req->body_arg, data, len)) {
      x->aborted = 1;
      return 0;
    }
    return len;
  }
  int rc = wv_buf_append(&x->resp->body, data, len);
  if (rc) {
    x->too_big = rc == WV_ETOOBIG;
    return 0;
  }
  return len;
}

static struct curl_slist *make_headers(const wv_http_req_t *req) {
  struct curl_slist *list = NULL;
  /* curl adds "Expect: 100-continue" to large bodies; registries do not need
   * the extra round trip. */
  list = curl_slist_append(list, "Expect:");
  for (const char *const *h = req->headers; h && *h && list; h++) {
    struct curl_slist *next = curl_slist_append(list, *h);
    if (!next) {
      curl_slist_free_all(list);
      return NULL;
    }
    list = next;
  }
  return list;
}

/* ---- SSRF guard ---------------------------------------------------------------------- */

/* The URL's host (as curl's parser spells it) and port (scheme default when absent). */
static int url_host_port(const char *url, guard_t *g) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL;
  int rc = WV_EINVAL;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
      (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) && *host &&
      strlen(host) < sizeof g->host) {
    snprintf(g->host, sizeof g->host, "%s", host);
    g->port = strtol(port, NULL, 10);
    rc = 0;
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return rc;
}

/* Resolves and checks the request's host before anything is sent; 0 or WV_E* with err set. */
static int guard_prepare(guard_t *g, const char *url, char *err, size_t errlen) {
  if (url_host_port(url, g)) {
    snprintf(err, errlen, "%.300s: not a valid http(s) URL", url);
    return WV_EUPSTREAM;
  }
  char bare[sizeof g->host];
  size_t n = strlen(g->host);
  if (g->host[0] == '[' && n > 2) /* an IPv6 literal: resolve it without the brackets */
    snprintf(bare, sizeof bare, "%.*s", (int)(n - 2), g->host + 1);
  else
    snprintf(bare, sizeof bare, "%s", g->host);
  if (wv_netpolicy_host_allowed(g->policy, bare)) {
    g->by_name = true;
    return 0;
  }
  int rc = wv_netpolicy_resolve(g->policy, bare, &g->dest, g->why, sizeof g->why);
  if (rc) {
    snprintf(err, errlen, "%s", g->why);
    return rc == WV_ENOMEM ? rc : rc == WV_EDENIED ? WV_EDENIED : WV_EUPSTREAM;
  }
  return 0;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b) {
  if (a->sa_family != b->ss_family)
    return false;
  if (a->sa_family == AF_INET)
    return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                  &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
  return a->sa_family == AF_INET6 &&
         memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/*
 * curl's socket factory for a pinned request: the last word on where bytes
 * go. Whatever curl resolved or was told, only the address checked for this
 * attempt gets a socket (checked once more against the policy).
 */
static curl_socket_t guard_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a) {
  guard_t *g = arg;
  const wv_netpolicy_addr_t *want = &g->dest.addrs[g->cur];
  if (purpose != CURLSOCKTYPE_IPCXN || !same_addr(&a->addr, &want->addr)) {
    g->denied = true;
    snprintf(g->why, sizeof g->why,
             "the connection was about to go to an address other than the checked %s", want->text);
    return CURL_SOCKET_BAD;
  }
  if (wv_netpolicy_check_addr(g->policy, &a->addr, g->why, sizeof g->why)) {
    g->denied = true;
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Pins this attempt to dest.addrs[g->cur]; *list is the caller's to free. */
static int guard_options(CURL *e, guard_t *g, struct curl_slist **list) {
  /* Never ride on (or leave behind) a pooled connection, and never a proxy
   * from the environment: the checked address must be the peer. */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  if (g->by_name)
    return 0;
  const wv_netpolicy_addr_t *d = &g->dest.addrs[g->cur];
  char line[512];
  bool v6 = d->addr.ss_family == AF_INET6;
  snprintf(line, sizeof line, "%s:%ld:%s%s%s:%ld", g->host, g->port, v6 ? "[" : "", d->text,
           v6 ? "]" : "", g->port);
  *list = curl_slist_append(NULL, line);
  if (!*list)
    return WV_ENOMEM;
  curl_easy_setopt(e, CURLOPT_CONNECT_TO, *list);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, guard_open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, g);
  return 0;
}

/* ---- transfer ------------------------------------------------------------------------ */

/* CURLOPT_XFERINFOFUNCTION: the caller's stop_cb, also while no byte has come yet. */
static int on_progress(void *arg, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln) {
  xfer_t *x = arg;
  (void)dlt, (void)dln, (void)ult, (void)uln;
  if (x->req->stop_cb && x->req->stop_cb(x->req->body_arg)) {
    x->aborted = 1;
    return 1;
  }
  return 0;
}

static void set_options(CURL *e, const wv_http_req_t *req, xfer_t *x, struct curl_slist *hdrs) {
  const char *method = req->method ? req->method : "GET";
  curl_easy_setopt(e, CURLOPT_URL, req->url);
  curl_easy_setopt(e, CURLOPT_SHARE, share);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                   (long)(req->timeout_ms < 0 ? 0
                          : req->timeout_ms   ? req->timeout_ms
                                              : 30000));
  if (req->idle_timeout_ms > 0) {
    /* Fewer than min_rate (default 1) bytes/s over the window: the peer stalled. */
    long secs = (long)((req->idle_timeout_ms + 999) / 1000);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, req->min_rate ? (long)req->min_rate : 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, secs);
  }
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)(req->connect_timeout_ms ? req->connect_timeout_ms : 10000));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  if (req->body_cb)
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, STREAM_BUFFER_SIZE);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "waved");
  if (req->stop_cb) {
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  }
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  }
}

/* One curl_easy_perform with the request's options (and the guard's pin, if any). */
static CURLcode perform(wv_http_client_t *c, const wv_http_req_t *req, xfer_t *x,
                        struct curl_slist *hdrs, char *cerr) {
  struct curl_slist *pin = NULL;
  /* Reset clears per-request options but keeps the connection cache, so the
   * next request to the same registry reuses the connection. */
  curl_easy_reset(c->easy);
  set_options(c->easy, req, x, hdrs);
  CURLcode cc = CURLE_OUT_OF_MEMORY;
  curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, cerr);
  if (!x->guard || guard_options(c->easy, x->guard, &pin) == 0)
    cc = curl_easy_perform(c->easy);
  curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &x->resp->status);
  curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(c->easy, CURLOPT_CONNECT_TO, NULL);
  curl_slist_free_all(pin);
  return cc;
}

int wv_http_do(wv_http_client_t *c, const wv_http_req_t *req, wv_http_resp_t *resp, char *err,
               size_t errlen) {
  char cerr[CURL_ERROR_SIZE] = "";
  guard_t *g = NULL;
  xfer_t x = {.req = req, .resp = resp};
  resp->body.max = req->max_body ? req->max_body : DEFAULT_MAX_BODY;
  if (req->policy) {
    if (!(g = calloc(1, sizeof *g))) {
      snprintf(err, errlen, "out of memory");
      return WV_ENOMEM;
    }
    g->policy = req->policy;
    int rc = guard_prepare(g, req->url, err, errlen);
    if (rc) {
      free(g);
      return rc;
    }
    x.guard = g;
  }
  struct curl_slist *hdrs = make_headers(req);
  if (!hdrs) {
    free(g);
    snprintf(err, errlen, "out of memory");
    return WV_ENOMEM;
  }
  CURLcode cc = perform(c, req, &x, hdrs, cerr);
  /* A pinned request tries the host's next checked address only when this
   * one could not be connected to, so nothing was sent yet. */
  while (g && !g->by_name && !g->denied && cc == CURLE_COULDNT_CONNECT && g->cur + 1 < g->dest.n) {
    g->cur++;
    cerr[0] = '\0';
    cc = perform(c, req, &x, hdrs, cerr);
  }
  curl_slist_free_all(hdrs);
  if (g && g->denied) {
    snprintf(err, errlen, "%s", g->why);
    free(g);
    return WV_EDENIED;
  }
  free(g);
  if (cc == CURLE_OK)
    return 0;
  if (x.too_big) {
    snprintf(err, errlen, "response from %s exceeds the size limit", req->url);
    return WV_ETOOBIG;
  }
  if (x.aborted) {
    snprintf(err, errlen, "transfer from %s aborted by the receiver", req->url);
    return WV_ECLOSED;
  }
  snprintf(err, errlen, "%s: %s", req->url, cerr[0] ? cerr : curl_easy_strerror(cc));
  return cc == CURLE_OPERATION_TIMEDOUT ? WV_ETIMEOUT : WV_EUPSTREAM;
}

/* The policy of cfg; failure means an unvalidated list (tests) or OOM. */
static int config_policy(const wv_config_t *cfg, wv_netpolicy_t **policy, char *err,
                         size_t errlen) {
  char why[256] = "";
  int rc = wv_netpolicy_from_config(cfg, policy, why, sizeof why);
  if (rc) { /* the loader validated the list: only memory can fail here */
    snprintf(err, errlen, "wave.security.outbound.allow: %s", why[0] ? why : wv_strerror(rc));
    return rc == WV_ENOMEM ? rc : WV_EINTERNAL;
  }
  return 0;
}

int wv_http_outbound_check(const wv_config_t *cfg, const char *url, char *err, size_t errlen) {
  wv_netpolicy_t *policy = NULL;
  guard_t *g = calloc(1, sizeof *g);
  int rc = g ? config_policy(cfg, &policy, err, errlen) : WV_ENOMEM;
  if (!g)
    snprintf(err, errlen, "out of memory");
  if (!rc) {
    g->policy = policy;
    rc = guard_prepare(g, url, err, errlen);
  }
  wv_netpolicy_free(policy);
  free(g);
  return rc;
}

int wv_http_do_outbound(wv_http_client_t *c, const wv_config_t *cfg, const wv_http_req_t *req,
                        wv_http_resp_t *resp, char *err, size_t errlen) {
  wv_netpolicy_t *policy = NULL;
  wv_http_req_t r = *req;
  r.policy = NULL;
  if (!cfg->ssrf_protection) /* switched off: a request like any other */
    return wv_http_do(c, &r, resp, err, errlen);
  int rc = config_policy(cfg, &policy, err, errlen);
  if (rc)
    return rc;
  r.policy = policy;
  rc = wv_http_do(c, &r, resp, err, errlen);
  wv_netpolicy_free(policy);
  return rc;
}
