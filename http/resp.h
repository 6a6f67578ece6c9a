/*
 * http/resp.h — filling responses, and the two error shapes of contract §1.2.
 *
 * Bodies and header values set here are copied into req->arena (or are
 * static), so they live until the response is written. Every wv_resp_* call
 * runs on the thread that currently owns the request. The mapping from
 * wv_err_t to HTTP status and registry error code lives here and nowhere
 * else: wv_resp_api_status() for the API, wv_resp_registry_code() for /v2.
 */
#ifndef WV_RESP_H
#define WV_RESP_H

#include "core/buf.h"
#include "http/http.h"

#include <json-c/json.h>

/* Docker Distribution error codes (distribution's errcode, plus Wave's own). */
#define WV_REGERR_MAP(X)                                                                           \
  X(UNKNOWN, "UNKNOWN", 500, "unknown error")                                                      \
  X(UNSUPPORTED, "UNSUPPORTED", 405, "The operation is unsupported.")                              \
  X(UNAUTHORIZED, "UNAUTHORIZED", 401, "authentication required")                                  \
  X(DENIED, "DENIED", 403, "requested access to the resource is denied")                           \
  X(UNAVAILABLE, "UNAVAILABLE", 503, "service unavailable")                                        \
  X(TOOMANYREQUESTS, "TOOMANYREQUESTS", 429, "too many requests")                                  \
  X(NOT_FOUND, "NOT_FOUND", 404, "not found")                                                      \
  X(BAD_REQUEST, "BAD_REQUEST", 400, "bad request")                                                \
  X(TIMEOUT, "TIMEOUT", 408, "timeout")                                                            \
  X(NOT_IMPLEMENTED, "NOT_IMPLEMENTED", 501, "not implemented")                                    \
  X(SERVER_ERROR, "SERVER_ERROR", 500, "server error")                                             \
  X(NAME_INVALID, "NAME_INVALID", 400, "invalid repository name")                                  \
  X(NAME_UNKNOWN, "NAME_UNKNOWN", 404, "repository name not known to registry")                    \
  X(MANIFEST_UNKNOWN, "MANIFEST_UNKNOWN", 404, "manifest unknown")                                 \
  X(MANIFEST_INVALID, "MANIFEST_INVALID", 400, "manifest invalid")                                 \
  X(MANIFEST_BLOB_UNKNOWN, "MANIFEST_BLOB_UNKNOWN", 404, "blob unknown to registry")               \
  X(BLOB_UNKNOWN, "BLOB_UNKNOWN", 404, "blob unknown to registry")                                 \
  X(DIGEST_INVALID, "DIGEST_INVALID", 400, "provided digest did not match uploaded content")       \
  X(SIZE_INVALID, "SIZE_INVALID", 400, "provided length did not match content length")

typedef enum {
#define WV_REGERR_ENUM(id, code, status, message) WV_REGERR_##id,
  WV_REGERR_MAP(WV_REGERR_ENUM)
#undef WV_REGERR_ENUM
      WV_REGERR_COUNT
} wv_regerr_t;

/* The code string ("MANIFEST_UNKNOWN") and default HTTP status of e. */
const char *wv_regerr_code(wv_regerr_t e);
int wv_regerr_status(wv_regerr_t e);

/* HTTP status for rc in the API URL space (0 → 200). */
int wv_resp_api_status(int rc);
/* Registry code for rc; *status gets its HTTP status. */
wv_regerr_t wv_resp_registry_code(int rc, int *status);

/* Sets status, content type and a copy of body. 0 or WV_ENOMEM. */
int wv_resp_bytes(wv_req_t *req, wv_resp_t *resp, int status, const char *ctype, const void *body,
                  size_t len);
/* Like wv_resp_bytes but body is static (not copied). */
void wv_resp_static(wv_resp_t *resp, int status, const char *ctype, const char *body, size_t len);
/* Serialises obj as compact JSON (application/json) and drops the caller's reference. */
int wv_resp_json(wv_req_t *req, wv_resp_t *resp, int status, json_object *obj);
/*
 * Body is len bytes of fd from off; the server closes fd once sent (or on
 * failure). HEAD gets only the Content-Length.
 */
void wv_resp_file(wv_resp_t *resp, int status, const char *ctype, int fd, uint64_t off,
                  uint64_t len);
/* Adds a header; name and value must be static or arena strings. WV_ETOOBIG past the cap. */
int wv_resp_header(wv_resp_t *resp, const char *name, const char *value);

/* API error: {"message": msg} (msg NULL = empty body). */
int wv_resp_api_error(wv_req_t *req, wv_resp_t *resp, int status, const char *msg);
/*
 * Registry error: {"errors":[{"code","message","detail"?}]}; status 0 = the
 * code's default; msg NULL = the code's default message; detail may be NULL
 * (its reference is taken).
 */
int wv_resp_registry_error(wv_req_t *req, wv_resp_t *resp, wv_regerr_t code, int status,
                           const char *msg, json_object *detail);
/*
 * The error for rc in the request's URL space. Internal errors (500) get
 * " - Error ID: <12 hex>" appended and are logged with that id.
 */
int wv_resp_error(wv_req_t *req, wv_resp_t *resp, int rc, const char *msg);

/* Reason phrase for status ("Not Found"); "Unknown" if not listed. */
const char *wv_resp_reason(int status);

/*
 * Appends the status line and headers (through the blank line) to out:
 * security headers, Date (date_hdr, a full "Date: ...\r\n" line), Content-Type,
 * Content-Length (or Transfer-Encoding: chunked when chunked), the registry
 * version header when registry is set, Connection: close when !keep_alive,
 * then resp->headers.
 */
int wv_resp_write_head(const wv_resp_t *resp, bool registry, bool keep_alive, bool chunked,
                       const char *date_hdr, wv_buf_t *out);

#endif
