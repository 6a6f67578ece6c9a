/*
 * scan/routes.c — the scan endpoints of contract §8.2: thin handlers that read
 * the store (or the job's log) and answer. All run on workers (they copy
 * records and may decompress an SBOM).
 *
 *   GET /v1alpha1/scans/{scanId}        the record as stored (application/json)
 *   GET /v1alpha1/scans/{scanId}/spdx   text/plain attachment spdx-<scanId>.json
 *   GET /v1alpha1/scans/{scanId}/logs   application/octet-stream attachment <scanId>.log
 *
 * An id that is not shaped like a scan id is a 404 before any lookup, so no
 * request can read the other keys of WV_DB_SCANS.
 */
#include "core/err.h"
#include "core/job/job.h"
#include "http/resp.h"
#include "http/router.h"
#include "scan/scan_int.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define LOG_MAX (16u << 20) /* the job engine keeps at most this much output */

static const wv_app_t *app_of(const wv_req_t *req) { return req->app; }

static const char *scan_id(const wv_req_t *req) {
  const char *id = wv_req_param(req, "scanId");
  return wv_scan_id_valid(id) ? id : NULL;
}

static int not_found(wv_req_t *req, wv_resp_t *resp) {
  return wv_resp_api_error(req, resp, 404, NULL);
}

/* Content-Disposition: attachment; filename=<name> (quoted when asked). */
static int attachment(wv_req_t *req, wv_resp_t *resp, const char *fmt, const char *id) {
  const char *v = wv_arena_sprintf(req->arena, fmt, id);
  return v ? wv_resp_header(resp, "Content-Disposition", v) : WV_ENOMEM;
}

static int record(wv_req_t *req, wv_resp_t *resp) {
  const char *id = scan_id(req);
  char *val = NULL;
  size_t len = 0;
  int rc = id ? wv__scan_load(app_of(req), req->arena, id, &val, &len) : WV_ENOTFOUND;
  if (rc == WV_ENOTFOUND)
    return not_found(req, resp);
  if (rc)
    return wv_resp_error(req, resp, rc, NULL);
  wv_resp_static(resp, 200, "application/json", val, len);
  return 0;
}

/* The stored zstd SBOM, decompressed into the arena. */
static int spdx_text(wv_req_t *req, const char *id, char **out, size_t *len) {
  char key[SCAN_KEY_MAX], *z = NULL;
  size_t zl = 0;
  wv__scan_key(key, "spdx/", id);
  int rc = wv__scan_load(app_of(req), req->arena, key, &z, &zl);
  if (rc)
    return rc;
  unsigned long long n = ZSTD_getFrameContentSize(z, zl);
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > SCAN_SPDX_MAX)
    return WV_ESTORE;
  *out = wv_arena_alloc(req->arena, (size_t)n + 1);
  if (!*out)
    return WV_ENOMEM;
  size_t got = ZSTD_decompress(*out, (size_t)n, z, zl);
  if (ZSTD_isError(got) || got != n)
    return WV_ESTORE;
  *len = got;
  return 0;
}

static int spdx(wv_req_t *req, wv_resp_t *resp) {
  const char *id = scan_id(req);
  char *text = NULL;
  size_t len = 0;
  int rc = id ? spdx_text(req, id, &text, &len) : WV_ENOTFOUND;
  if (rc == WV_ENOTFOUND)
    return not_found(req, resp);
  if (rc)
    return wv_resp_error(req, resp, rc, NULL);
  wv_resp_static(resp, 200, "text/plain", text, len);
  return attachment(req, resp, "attachment; filename=\"spdx-%s.json\"", id);
}

static int logs(wv_req_t *req, wv_resp_t *resp) {
  const char *id = scan_id(req);
  char *text = NULL;
  size_t len = 0;
  int rc = id ? wv_job_log(app_of(req)->jobs, id, LOG_MAX, &text, &len) : WV_ENOTFOUND;
  if (!rc && wv_arena_on_cleanup(req->arena, free, text)) {
    free(text);
    rc = WV_ENOMEM;
  }
  if (rc == WV_ENOTFOUND)
    return not_found(req, resp);
  if (rc)
    return wv_resp_error(req, resp, rc, NULL);
  wv_resp_static(resp, 200, "application/octet-stream", text, len);
  return attachment(req, resp, "attachment; filename=%s.log", id);
}

/* Contract §2 endpoint catalogue, scan rows. */
static const wv_route_t scan_routes[] = {
    {WV_M_GET, "/v1alpha1/scans/{scanId}", record, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha1/scans/{scanId}/spdx", spdx, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
    {WV_M_GET, "/v1alpha1/scans/{scanId}/logs", logs, WV_ROUTE_WORKER, WV_ROUTE_NO_BODY},
};

int wv_scan_routes_register(struct wv_router *r) {
  return wv_router_add(r, scan_routes, sizeof scan_routes / sizeof scan_routes[0]);
}
