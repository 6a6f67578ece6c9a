/*
 * build/view/view_int.h — what the files of the /view/ pages share
 * (build/view/routes.c: the route table; build/view/view.c: builds, mirrors,
 * containers; build/view/scan.c: scans and inspect). Not for other files.
 *
 * The pages are rendered from the same loaders the JSON endpoints use, on
 * workers (they read the store, the job engine's logs and, for inspect, the
 * upstream registry). Links between pages are relative to the page
 * ("../scans/<id>"), so they work behind any wave.server.url prefix.
 */
#ifndef WV_BUILD_VIEW_INT_H
#define WV_BUILD_VIEW_INT_H

#include "core/buf.h"
#include "http/html.h"

#include <json-c/json.h>
#include <stddef.h>

#define VIEW_TEXT_MAX ((size_t)256 << 10) /* bytes of a Containerfile or conda file shown */
#define VIEW_LOG_MAX ((size_t)1 << 20)    /* bytes of a log shown (the tail) */

/* The string member key of o (numbers and booleans as their JSON text); NULL when absent. */
const char *wv__view_str(json_object *o, const char *key);

/*
 * "../<kind>/<id>" in the arena (kind builds, mirrors, scans or containers);
 * NULL when id is not a valid id of that kind (the row then shows it as text).
 */
const char *wv__view_link(wv_req_t *req, const char *kind, const char *id);

/* Appends s percent-encoded for a query value (unreserved characters kept). */
int wv__view_urlenc(wv_buf_t *b, const char *s);

/*
 * Sends the page in b (rc 0) or a 500 page (rc is the error of building
 * it), and frees b. Returns what the handler returns.
 */
int wv__view_finish(wv_req_t *req, wv_resp_t *resp, int status, wv_buf_t *b, int rc);

/* GET /view/builds/{buildId}, /view/mirrors/{mirrorId}, /view/containers/{token} (view.c). */
int wv__view_build(wv_req_t *req, wv_resp_t *resp);
int wv__view_mirror(wv_req_t *req, wv_resp_t *resp);
int wv__view_container(wv_req_t *req, wv_resp_t *resp);

/* GET /view/scans/{scanId} and GET /view/inspect (build/view/scan.c). */
int wv__view_scan(wv_req_t *req, wv_resp_t *resp);
int wv__view_inspect(wv_req_t *req, wv_resp_t *resp);

#endif
