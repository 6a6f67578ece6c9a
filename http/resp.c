#include "http/resp.h"
#include "core/app.h"
#include "core/err.h"
#include "core/log.h"
#include "core/preflight.h"

#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
  const char *code;
  int status;
  const char *message;
} regerrs[] = {
#define WV_REGERR_ROW(id, code, status, message) {code, status, message},
    WV_REGERR_MAP(WV_REGERR_ROW)
#undef WV_REGERR_ROW
};

const char *wv_regerr_code(wv_regerr_t e) {
  return (unsigned)e < WV_REGERR_COUNT ? regerrs[e].code : "UNKNOWN";
}

int wv_regerr_status(wv_regerr_t e) {
  return (unsigned)e < WV_REGERR_COUNT ? regerrs[e].status : 500;
}

/* The one table from internal errors to HTTP: contract §1.3. */
static const struct {
  int rc;
  int status;
  wv_regerr_t reg;
} errmap[] = {
    {WV_EINVAL, 400, WV_REGERR_BAD_REQUEST},   {WV_EPARSE, 400, WV_REGERR_BAD_REQUEST},
    {WV_ERANGE, 400, WV_REGERR_BAD_REQUEST},   {WV_ENOTFOUND, 404, WV_REGERR_NOT_FOUND},
    {WV_EEXPIRED, 404, WV_REGERR_NOT_FOUND},   {WV_ETOOBIG, 413, WV_REGERR_SIZE_INVALID},
    {WV_ETIMEOUT, 408, WV_REGERR_TIMEOUT},     {WV_EBUSY, 429, WV_REGERR_TOOMANYREQUESTS},
    {WV_EAUTH, 401, WV_REGERR_UNAUTHORIZED},   {WV_EDENIED, 403, WV_REGERR_DENIED},
    {WV_EUPSTREAM, 502, WV_REGERR_UNKNOWN},    {WV_EUNSUPPORTED, 501, WV_REGERR_NOT_IMPLEMENTED},
    {WV_EUNAVAIL, 503, WV_REGERR_UNAVAILABLE}, {WV_ENOSPC, 507, WV_REGERR_UNAVAILABLE},
};

int wv_resp_api_status(int rc) {
  if (rc == 0)
    return 200;
  for (size_t i = 0; i < sizeof errmap / sizeof errmap[0]; i++)
    if (errmap[i].rc == rc)
      return errmap[i].status;
  return 500;
}

wv_regerr_t wv_resp_registry_code(int rc, int *status) {
  for (size_t i = 0; i < sizeof errmap / sizeof errmap[0]; i++) {
    if (errmap[i].rc == rc) {
      *status = errmap[i].status;
      return errmap[i].reg;
    }
  }
  *status = 500;
  return WV_REGERR_SERVER_ERROR;
}

int wv_resp_bytes(wv_req_t *req, wv_resp_t *resp, int status, const char *ctype, const void *body,
                  size_t len) {
  char *copy = wv_arena_alloc(req->arena, len + 1);
  if (!copy)
    return WV_ENOMEM;
  if (len)
    memcpy(copy, body, len);
  copy[len] = '\0';
  wv_resp_static(resp, status, ctype, copy, len);
  return 0;
}

void wv_resp_static(wv_resp_t *resp, int status, const char *ctype, const char *body, size_t len) {
  resp->status = status;
  resp->content_type = ctype;
  resp->body = body;
  resp->body_len = len;
}

int wv_resp_json(wv_req_t *req, wv_resp_t *resp, int status, json_object *obj) {
  size_t len = 0;
  const char *s = json_object_to_json_string_length(
      obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  int rc = s ? wv_resp_bytes(req, resp, status, "application/json", s, len) : WV_ENOMEM;
  json_object_put(obj);
  return rc;
}

void wv_resp_file(wv_resp_t *resp, int status, const char *ctype, int fd, uint64_t off,
                  uint64_t len) {
  resp->status = status;
  resp->content_type = ctype;
  resp->body = NULL;
  resp->body_len = 0;
  resp->fd = fd;
  resp->file_off = off;
  resp->file_len = len;
}

int wv_resp_header(wv_resp_t *resp, const char *name, const char *value) {
  if (resp->nheaders >= WV_RESP_MAX_HEADERS)
    return WV_ETOOBIG;
  resp->headers[resp->nheaders].name = name;
  resp->headers[resp->nheaders].value = value;
  resp->nheaders++;
  return 0;
}

int wv_resp_api_error(wv_req_t *req, wv_resp_t *resp, int status, const char *msg) {
  if (!msg) {
    wv_resp_static(resp, status, NULL, "", 0);
    return 0;
  }
  json_object *o = json_object_new_object();
  if (!o)
    return WV_ENOMEM;
  json_object_object_add(o, "message", json_object_new_string(msg));
  return wv_resp_json(req, resp, status, o);
}

int wv_resp_registry_error(wv_req_t *req, wv_resp_t *resp, wv_regerr_t code, int status,
                           const char *msg, json_object *detail) {
  json_object *o = json_object_new_object(), *arr = json_object_new_array(),
              *e = json_object_new_object();
  if (!o || !arr || !e) {
    json_object_put(o);
    json_object_put(arr);
    json_object_put(e);
    json_object_put(detail);
    return WV_ENOMEM;
  }
  json_object_object_add(e, "code", json_object_new_string(wv_regerr_code(code)));
  json_object_object_add(e, "message", json_object_new_string(msg ? msg : regerrs[code].message));
  if (detail)
    json_object_object_add(e, "detail", detail);
  json_object_array_add(arr, e);
  json_object_object_add(o, "errors", arr);
  return wv_resp_json(req, resp, status ? status : wv_regerr_status(code), o);
}

/* "Insufficient storage - <path>: <N> bytes free ...": what a full disk answers (507). */
static const char *nospace_text(wv_req_t *req) {
  const wv_app_t *app = req->app;
  char text[PATH_MAX + 160];
  if (app && app->preflight)
    wv_preflight_nospace_text(app->preflight, text, sizeof text);
  else if (app && app->cfg)
    wv_preflight_disk_nospace_text(app->cfg->storage_path, app->cfg->storage_reserve, text,
                                   sizeof text);
  else
    snprintf(text, sizeof text, "Insufficient storage");
  const char *copy = wv_arena_strdup(req->arena, text);
  return copy ? copy : "Insufficient storage";
}

int wv_resp_error(wv_req_t *req, wv_resp_t *resp, int rc, const char *msg) {
  int status;
  wv_regerr_t reg = wv_resp_registry_code(rc, &status);
  if (!req->registry)
    status = wv_resp_api_status(rc);
  if (!msg)
    msg = wv_strerror(rc);
  if (rc == WV_ENOSPC)
    msg = nospace_text(req);
  if (status == 500) {
    /* Contract §1.3: internal errors carry an id that also appears in the log. */
    unsigned char id[6];
    if (RAND_bytes(id, sizeof id) != 1)
      memset(id, 0, sizeof id);
    char *full = wv_arena_sprintf(req->arena, "%s - Error ID: %02x%02x%02x%02x%02x%02x", msg, id[0],
                                  id[1], id[2], id[3], id[4], id[5]);
    if (full)
      msg = full;
    wv_error("%s %s: %s", req->method_name, req->path, msg);
  }
  if (req->registry)
    return wv_resp_registry_error(req, resp, reg, status, msg, NULL);
  return wv_resp_api_error(req, resp, status, msg);
}

static const struct {
  int status;
  const char *reason;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {416, "Range Not Satisfiable"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {507, "Insufficient Storage"},
};

const char *wv_resp_reason(int status) {
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
    if (reasons[i].status == status)
      return reasons[i].reason;
  return "Unknown";
}

/* Contract §2.2: sent on every response; one static block keeps the hot path cheap. */
static const char security_headers[] =
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: strict-origin-when-cross-origin\r\n"
    "Permissions-Policy: camera=(), microphone=(), geolocation=()\r\n"
    "Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n";
/* The default policy; a response that sets its own (an HTML page) replaces it. */
static const char default_csp[] =
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n";

static bool own_csp(const wv_resp_t *resp) {
  for (int i = 0; i < resp->nheaders; i++)
    if (strcasecmp(resp->headers[i].name, "Content-Security-Policy") == 0)
      return true;
  return false;
}

/* Appends the decimal digits of v (the head is built on every response: no printf). */
static int put_u64(wv_buf_t *out, uint64_t v) {
  char d[24];
  size_t i = sizeof d;
  do {
    d[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return wv_buf_append(out, d + i, sizeof d - i);
}

/* Appends "name: value\r\n". */
static int put_header(wv_buf_t *out, const char *name, size_t nlen, const char *value) {
  size_t vlen = strlen(value);
  int rc = wv_buf_reserve(out, nlen + vlen + 4);
  if (rc)
    return rc;
  char *p = out->data + out->len;
  memcpy(p, name, nlen);
  p[nlen] = ':';
  p[nlen + 1] = ' ';
  memcpy(p + nlen + 2, value, vlen);
  p[nlen + 2 + vlen] = '\r';
  p[nlen + 3 + vlen] = '\n';
  out->len += nlen + vlen + 4;
  out->data[out->len] = '\0';
  return 0;
}

#define PUT_LIT(out, lit) wv_buf_append(out, lit, sizeof lit - 1)

int wv_resp_write_head(const wv_resp_t *resp, bool registry, bool keep_alive, bool chunked,
                       const char *date_hdr, wv_buf_t *out) {
  uint64_t clen = resp->has_length ? resp->length : resp->fd >= 0 ? resp->file_len : resp->body_len;
  int status = resp->status ? resp->status : 500;
  int rc = PUT_LIT(out, "HTTP/1.1 ");
  if (!rc)
    rc = put_u64(out, (uint64_t)status);
  if (!rc)
    rc = wv_buf_putc(out, ' ');
  if (!rc)
    rc = wv_buf_puts(out, wv_resp_reason(status));
  if (!rc)
    rc = PUT_LIT(out, "\r\n");
  if (!rc)
    rc = wv_buf_append(out, security_headers, sizeof security_headers - 1);
  if (!rc && !own_csp(resp))
    rc = wv_buf_append(out, default_csp, sizeof default_csp - 1);
  if (!rc && date_hdr)
    rc = wv_buf_puts(out, date_hdr);
  if (!rc && resp->content_type)
    rc = put_header(out, "Content-Type", 12, resp->content_type);
  if (!rc && chunked) {
    rc = PUT_LIT(out, "Transfer-Encoding: chunked\r\n");
  } else {
    if (!rc)
      rc = PUT_LIT(out, "Content-Length: ");
    if (!rc)
      rc = put_u64(out, clen);
    if (!rc)
      rc = PUT_LIT(out, "\r\n");
  }
  if (!rc && registry)
    rc = PUT_LIT(out, "Docker-Distribution-Api-Version: registry/2.0\r\n");
  if (!rc && !keep_alive)
    rc = PUT_LIT(out, "Connection: close\r\n");
  for (int i = 0; !rc && i < resp->nheaders; i++)
    rc = put_header(out, resp->headers[i].name, strlen(resp->headers[i].name),
                    resp->headers[i].value);
  if (!rc)
    rc = PUT_LIT(out, "\r\n");
  return rc;
}
