/*
 * build/view/view.c — the HTML pages under /view/ (contract §2, the detailsUri links):
 * the build, mirror and container pages, and what the scan and inspect pages
 * (build/view/scan.c) share. The route table is build/view/routes.c.
 *
 *   GET /view/builds/{buildId}       build record, Containerfile, log (running or ended);
 *                                    a bare bd-<hex> lists that container's builds
 *   GET /view/mirrors/{mirrorId}     mirror record and its log
 *   GET /view/containers/{token}     the persisted container request (never credentials)
 *   GET /view/scans/{scanId}         scan record and vulnerability table
 *   GET /view/inspect?image=&platform=  the inspect answer as a page
 *   POST /view/scans                 not provided (404 page; see docs/views.md)
 *
 * Every page reads through the loader its JSON endpoint uses, so the page and
 * the API can never disagree. wave.capabilities.web-views=false makes every
 * route answer the 404 page. All routes run on workers.
 */
#include "build/build_api.h"
#include "build/request/records.h"
#include "build/mirror/mirror.h"
#include "build/naming.h"
#include "build/view/view_int.h"
#include "core/err.h"
#include "core/json.h"
#include "http/resp.h"
#include "http/router.h"
#include "scan/scan.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_MAX WV_HTML_PAGE_MAX /* one page, escaping included */
#define LIST_MAX 100              /* builds listed for a bare container id, newest first */

/* ---- shared ------------------------------------------------------------------------ */

const char *wv__view_str(json_object *o, const char *key) {
  json_object *v = NULL;
  if (!o || !json_object_object_get_ex(o, key, &v) || !v)
    return NULL;
  if (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))
    return NULL;
  return json_object_get_string(v);
}

const char *wv__view_link(wv_req_t *req, const char *kind, const char *id) {
  bool ok = strcmp(kind, "builds") == 0       ? wv_build_id_valid(id)
            : strcmp(kind, "mirrors") == 0    ? wv_mirror_id_valid(id)
            : strcmp(kind, "scans") == 0      ? wv_scan_id_valid(id)
            : strcmp(kind, "containers") == 0 ? wv_record_id_valid(id)
                                              : false;
  return ok ? wv_arena_sprintf(req->arena, "../%s/%s", kind, id) : NULL;
}

int wv__view_urlenc(wv_buf_t *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  int rc = 0;
  for (const unsigned char *p = (const unsigned char *)s; !rc && p && *p; p++) {
    if (isalnum(*p) || strchr("-._~", *p))
      rc = wv_buf_putc(b, (char)*p);
    else
      rc = wv_buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
  }
  return rc;
}

int wv__view_finish(wv_req_t *req, wv_resp_t *resp, int status, wv_buf_t *b, int rc) {
  rc = rc ? rc : wv_html_send(req, resp, status, b);
  wv_buf_free(b);
  if (rc == WV_ETOOBIG)
    return wv_html_error(req, resp, 500, "The page is too large to show.");
  return rc ? wv_html_error(req, resp, 500, wv_strerror(rc)) : 0;
}

/* The 404 page for an id that names nothing. */
static int unknown(wv_req_t *req, wv_resp_t *resp, const char *what, const char *id) {
  return wv_html_error(req, resp, 404, wv_arena_sprintf(req->arena, "Unknown %s '%s'", what, id));
}

static int bad_id(wv_req_t *req, wv_resp_t *resp, const char *what) {
  return wv_html_error(req, resp, 400, wv_arena_sprintf(req->arena, "Malformed %s", what));
}

/* A value, or the record's member, with "s" appended (durations). */
static const char *seconds(wv_req_t *req, json_object *rec, const char *key) {
  const char *d = wv__view_str(rec, key);
  return d ? wv_arena_sprintf(req->arena, "%s s", d) : NULL;
}

/* <h2>title</h2> and a <pre> of text (its tail past cap). */
static int titled_pre(wv_buf_t *b, const char *title, const char *text, size_t len, size_t cap) {
  int rc = wv_html_h2(b, title);
  return rc ? rc : wv_html_pre(b, text, len, cap);
}

static int titled_note(wv_buf_t *b, const char *title, const char *note) {
  int rc = wv_html_h2(b, title);
  return rc ? rc : wv_html_note(b, note);
}

/* ---- builds -------------------------------------------------------------------------- */

static const char *const build_state_word[] = {"BUILDING", "SUCCEEDED", "FAILED"};
static const char *const build_state_cls[] = {"running", "ok", "failed"};

/* "../inspect?image=<target>&platform=<platform>" for a built image. */
static const char *inspect_link(wv_req_t *req, const char *image, const char *platform) {
  wv_buf_t u;
  wv_buf_init(&u, 4096);
  int rc = wv_buf_puts(&u, "../inspect?image=");
  rc = rc ? rc : wv__view_urlenc(&u, image);
  if (!rc && platform && !strchr(platform, ','))
    rc = wv_buf_puts(&u, "&platform=");
  if (!rc && platform && !strchr(platform, ','))
    rc = wv__view_urlenc(&u, platform);
  const char *s = rc ? NULL : wv_arena_strdup(req->arena, u.data);
  wv_buf_free(&u);
  return s;
}

static int build_table(wv_req_t *req, wv_buf_t *b, const char *id, json_object *rec,
                       wv_build_state_t st) {
  const char *target = wv__view_str(rec, "targetImage"), *plat = wv__view_str(rec, "platform");
  const char *scan = wv__view_str(rec, "scanId");
  int rc = wv_html_table_begin(b);
  rc = rc ? rc : wv_html_row(b, "Build ID", id);
  rc = rc ? rc : wv_html_row_status(b, "Status", build_state_word[st], build_state_cls[st]);
  rc = rc ? rc : wv_html_row(b, "Target image", target);
  rc = rc ? rc : wv_html_row(b, "Platform", plat);
  rc = rc ? rc : wv_html_row(b, "Format", wv__view_str(rec, "format"));
  rc = rc ? rc : wv_html_row(b, "Template", wv__view_str(rec, "buildTemplate"));
  rc = rc ? rc : wv_html_row(b, "Started", wv__view_str(rec, "startTime"));
  rc = rc ? rc : wv_html_row(b, "Time zone offset", wv__view_str(rec, "offsetId"));
  rc = rc ? rc : wv_html_row(b, "Duration", seconds(req, rec, "duration"));
  rc = rc ? rc : wv_html_row(b, "Exit status", wv__view_str(rec, "exitStatus"));
  rc = rc ? rc : wv_html_row(b, "Digest", wv__view_str(rec, "digest"));
  rc = rc ? rc : wv_html_row(b, "User", wv__view_str(rec, "userName"));
  rc = rc ? rc : wv_html_row_link(b, "Security scan", wv__view_link(req, "scans", scan), scan);
  if (!rc && st == WV_BUILD_SUCCEEDED && target)
    rc = wv_html_row_link(b, "Inspect", inspect_link(req, target, plat), "View the image");
  return rc ? rc : wv_html_table_end(b);
}

/* Child builds of a multi-platform build: [{"id":..,"value":platform}]. */
static int build_children(wv_req_t *req, wv_buf_t *b, json_object *rec) {
  json_object *arr = NULL;
  if (!json_object_object_get_ex(rec, "buildChildIds", &arr) ||
      !json_object_is_type(arr, json_type_array) || json_object_array_length(arr) == 0)
    return 0;
  int rc = wv_html_h2(b, "Platform builds");
  rc = rc ? rc : wv_html_table_begin(b);
  for (size_t i = 0; !rc && i < json_object_array_length(arr); i++) {
    json_object *c = json_object_array_get_idx(arr, i);
    const char *cid = wv__view_str(c, "id");
    rc = wv_html_row_link(b, wv__view_str(c, "value") ? wv__view_str(c, "value") : "build",
                          wv__view_link(req, "builds", cid), cid);
  }
  return rc ? rc : wv_html_table_end(b);
}

/*
 * The conda lock of a log, cut from a copy of only its section (a log may be
 * 16 MiB and the arena holds it already); NULL when the log has none.
 */
static const char *conda_lock(wv_req_t *req, const char *log, size_t *len) {
  const char *a = strstr(log, WV_BUILD_LOCK_START), *z = a ? strstr(a, WV_BUILD_LOCK_END) : NULL;
  if (!z)
    return NULL;
  while (a > log && a[-1] != '\n')
    a--;
  z += strcspn(z, "\n");
  char *lock = wv_arena_strndup(req->arena, a, (size_t)(z - a));
  *len = lock ? wv_build_log_lock(lock, (size_t)(z - a)) : (size_t)-1;
  return *len == (size_t)-1 ? NULL : lock;
}

/* The log (conda lock cut out and shown on its own), or a note when there is none yet. */
static int build_log(wv_req_t *req, wv_buf_t *b, const char *id, wv_build_state_t st) {
  char *log = NULL;
  size_t len = 0, lock_len = 0;
  int rc = wv_build_log(req->app, req->arena, id, &log, &len);
  if (rc == WV_ENOTFOUND)
    return titled_note(b, "Build log", "No log is stored for this build.");
  if (rc)
    return rc;
  const char *lock = conda_lock(req, log, &lock_len);
  len = wv_build_log_without_lock(log, len);
  rc = wv_html_h2(b, "Build log");
  if (!rc && st == WV_BUILD_RUNNING)
    rc = wv_html_note(b, "The build is still running: reload the page to see more.");
  rc = rc ? rc : wv_html_pre(b, log, len, VIEW_LOG_MAX);
  if (!rc) {
    const char *raw = wv_arena_sprintf(req->arena, "../../v1alpha1/builds/%s/logs", id);
    rc = raw ? wv_buf_puts(b, "<p class=\"note\"><a href=\"") : WV_ENOMEM;
    rc = rc ? rc : wv_html_esc(b, raw);
    rc = rc ? rc : wv_buf_puts(b, "\">The whole log as text</a></p>\n");
  }
  if (!rc && lock)
    rc = titled_pre(b, "Conda lock", lock, lock_len, VIEW_TEXT_MAX);
  return rc;
}

/* "bd-<hex>-<n>" (a job name) → "bd-<hex>_<n>", Wave's redirect; NULL when id is not one. */
static const char *dash_suffix_fix(wv_req_t *req, const char *id) {
  const char *dash = strrchr(id, '-');
  if (strchr(id, '_') || !dash || dash - id < 4 || !dash[1])
    return NULL;
  for (const char *p = dash + 1; *p; p++)
    if (!isdigit((unsigned char)*p))
      return NULL;
  return wv_arena_sprintf(req->arena, "%.*s_%s", (int)(dash - id), id, dash + 1);
}

/* The container id of a bare "bd-<16 hex>" or "<16 hex>" (no build number), else NULL. */
static const char *bare_cid(const char *id) {
  const char *h = strncmp(id, "bd-", 3) == 0 ? id + 3 : id;
  if (strlen(h) != 16)
    return NULL;
  for (const char *p = h; *p; p++)
    if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
      return NULL;
  return h;
}

/* One row of the build list: id (linked), status, start, digest. */
static int list_row(wv_buf_t *b, const char *id, json_object *rec, wv_build_state_t st) {
  int rc = wv_buf_puts(b, "<tr><td><a href=\"");
  rc = rc ? rc : wv_html_esc(b, id);
  rc = rc ? rc : wv_buf_puts(b, "\">");
  rc = rc ? rc : wv_html_esc(b, id);
  rc = rc ? rc
          : wv_buf_printf(b, "</a></td><td class=\"%s\">%s</td><td>", build_state_cls[st],
                          build_state_word[st]);
  rc = rc ? rc : wv_html_esc(b, wv__view_str(rec, "startTime"));
  rc = rc ? rc : wv_buf_puts(b, "</td><td>");
  rc = rc ? rc : wv_html_esc(b, wv__view_str(rec, "digest"));
  return rc ? rc : wv_buf_puts(b, "</td></tr>\n");
}

/*
 * A bare container id (Wave's view does the same): the one build it had is
 * redirected to, several are listed (the newest LIST_MAX), none is a 404.
 */
static int build_list(wv_req_t *req, wv_resp_t *resp, const char *id, const char *cid) {
  int64_t n = 0;
  int rc = wv_build_count(req->app, req->arena, cid, &n), found = 0;
  const char *only = NULL;
  wv_buf_t b;
  wv_buf_init(&b, PAGE_MAX);
  rc = rc ? rc : wv_html_begin(&b, wv_arena_sprintf(req->arena, "Container builds %s", cid));
  rc = rc ? rc
          : wv_buf_puts(&b, "<table><thead><tr><th>Build</th><th>Status</th><th>Started</th>"
                            "<th>Digest</th></tr></thead><tbody>\n");
  for (int64_t k = n; !rc && k >= 0 && k > n - LIST_MAX; k--) {
    const char *bid = wv_naming_build_id(req->arena, cid, (unsigned long)k);
    json_object *rec = NULL;
    wv_build_state_t st;
    int lrc = bid ? wv_build_record_load(req->app, req->arena, bid, &rec, &st) : WV_ENOMEM;
    if (lrc == WV_ENOTFOUND) /* expired, or no multi-platform parent (_0) */
      continue;
    rc = lrc ? lrc : list_row(&b, bid, rec, st);
    json_object_put(rec);
    only = bid;
    found++;
  }
  rc = rc ? rc : wv_buf_puts(&b, "</tbody></table>\n");
  rc = rc ? rc : wv_html_end(&b);
  if (!rc && found <= 1) {
    wv_buf_free(&b);
    if (found == 0)
      return unknown(req, resp, "container build id", id);
    rc = wv_html_error(req, resp, 302, wv_arena_sprintf(req->arena, "See build %s", only));
    return rc ? rc : wv_resp_header(resp, "Location", only);
  }
  return wv__view_finish(req, resp, 200, &b, rc);
}

int wv__view_build(wv_req_t *req, wv_resp_t *resp) {
  const char *id = wv_req_param(req, "buildId"), *fixed = NULL;
  if (!wv_build_id_valid(id))
    return bad_id(req, resp, "build id");
  json_object *rec = NULL;
  wv_build_state_t st;
  int rc = wv_build_record_load(req->app, req->arena, id, &rec, &st);
  if (rc == WV_ENOTFOUND && (fixed = dash_suffix_fix(req, id)) != NULL) {
    rc = wv_html_error(req, resp, 302, wv_arena_sprintf(req->arena, "See build %s", fixed));
    return rc ? rc : wv_resp_header(resp, "Location", fixed);
  }
  if (rc == WV_ENOTFOUND && bare_cid(id))
    return build_list(req, resp, id, bare_cid(id));
  if (rc == WV_ENOTFOUND)
    return unknown(req, resp, "container build id", id);
  if (rc)
    return wv_html_error(req, resp, wv_resp_api_status(rc), wv_strerror(rc));
  wv_buf_t b;
  wv_buf_init(&b, PAGE_MAX);
  const char *file = wv__view_str(rec, "dockerFile"), *conda = wv__view_str(rec, "condaFile");
  rc = wv_html_begin(&b, wv_arena_sprintf(req->arena, "Container build %s", id));
  rc = rc ? rc : build_table(req, &b, id, rec, st);
  rc = rc ? rc : build_children(req, &b, rec);
  if (!rc && file)
    rc = titled_pre(&b, "Containerfile", file, strlen(file), VIEW_TEXT_MAX);
  if (!rc && conda)
    rc = titled_pre(&b, "Conda file", conda, strlen(conda), VIEW_TEXT_MAX);
  rc = rc ? rc : build_log(req, &b, id, st);
  rc = rc ? rc : wv_html_end(&b);
  json_object_put(rec);
  return wv__view_finish(req, resp, 200, &b, rc);
}

/* ---- mirrors ----------------------------------------------------------------------- */

int wv__view_mirror(wv_req_t *req, wv_resp_t *resp) {
  const char *id = wv_req_param(req, "mirrorId");
  if (!wv_mirror_id_valid(id))
    return bad_id(req, resp, "mirror id");
  json_object *rec = NULL;
  int rc = wv_mirror_result(req->app, id, &rec);
  if (rc == WV_ENOTFOUND)
    return unknown(req, resp, "container mirror id", id);
  if (rc)
    return wv_html_error(req, resp, wv_resp_api_status(rc), wv_strerror(rc));
  const char *status = wv__view_str(rec, "status"), *exit = wv__view_str(rec, "exitCode");
  const char *reason = wv__view_str(rec, "reason"), *scan = wv__view_str(rec, "scanId");
  const char *logs = wv__view_str(rec, "logs");
  bool done = status && strcmp(status, "COMPLETED") == 0;
  bool failed = done && (reason || (exit && strcmp(exit, "0") != 0));
  wv_buf_t b;
  wv_buf_init(&b, PAGE_MAX);
  rc = wv_html_begin(&b, wv_arena_sprintf(req->arena, "Container mirror %s", id));
  rc = rc ? rc : wv_html_table_begin(&b);
  rc = rc ? rc : wv_html_row(&b, "Mirror ID", id);
  rc = rc ? rc
          : wv_html_row_status(&b, "Status",
                               !done    ? "IN PROGRESS"
                               : failed ? "FAILED"
                                        : "SUCCEEDED",
                               !done    ? "running"
                               : failed ? "failed"
                                        : "ok");
  rc = rc ? rc : wv_html_row(&b, "Source image", wv__view_str(rec, "sourceImage"));
  rc = rc ? rc : wv_html_row(&b, "Target image", wv__view_str(rec, "targetImage"));
  rc = rc ? rc : wv_html_row(&b, "Platform", wv__view_str(rec, "platform"));
  rc = rc ? rc : wv_html_row(&b, "Digest", wv__view_str(rec, "digest"));
  rc = rc ? rc : wv_html_row(&b, "Started", wv__view_str(rec, "creationTime"));
  rc = rc ? rc : wv_html_row(&b, "Duration", seconds(req, rec, "duration"));
  rc = rc ? rc : wv_html_row(&b, "Exit code", exit);
  rc = rc ? rc : wv_html_row(&b, "Reason", reason);
  rc = rc ? rc : wv_html_row(&b, "User", wv__view_str(rec, "userName"));
  rc = rc ? rc : wv_html_row_link(&b, "Security scan", wv__view_link(req, "scans", scan), scan);
  rc = rc ? rc : wv_html_table_end(&b);
  rc = rc ? rc : wv_html_h2(&b, "Mirror log");
  if (!rc && logs)
    rc = wv_html_pre(&b, logs, strlen(logs), VIEW_LOG_MAX);
  else if (!rc)
    rc = wv_html_note(&b, "No log is stored for this mirror.");
  rc = rc ? rc : wv_html_end(&b);
  json_object_put(rec);
  return wv__view_finish(req, resp, 200, &b, rc);
}

/* ---- container requests -------------------------------------------------------------- */

/* The containerConfig of a record as pretty JSON (data: payloads are already omitted). */
static int container_config(wv_buf_t *b, json_object *rec) {
  json_object *cc = NULL;
  if (!json_object_object_get_ex(rec, "containerConfig", &cc) || !cc)
    return 0;
  const char *s =
      json_object_to_json_string_ext(cc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  return titled_pre(b, "Container config", s, strlen(s), VIEW_TEXT_MAX);
}

/*
 * The fields shown are listed one by one: the record never holds a Platform
 * token, and a page built from a list cannot start showing one if it ever did.
 */
static int container_table(wv_req_t *req, wv_buf_t *b, const char *id, json_object *rec) {
  json_object *user = NULL;
  json_object_object_get_ex(rec, "user", &user);
  const char *build = wv__view_str(rec, "buildId"), *scan = wv__view_str(rec, "scanId");
  const char *mirror = wv__view_str(rec, "mirror"), *new_ = wv__view_str(rec, "buildNew");
  bool is_mirror = mirror && strcmp(mirror, "true") == 0;
  int rc = wv_html_table_begin(b);
  rc = rc ? rc : wv_html_row(b, "Request ID", id);
  rc = rc ? rc : wv_html_row(b, "Container image", wv__view_str(rec, "containerImage"));
  rc = rc ? rc : wv_html_row(b, "Platform", wv__view_str(rec, "platform"));
  rc = rc ? rc : wv_html_row(b, "Source image", wv__view_str(rec, "sourceImage"));
  rc = rc ? rc : wv_html_row(b, "Source digest", wv__view_str(rec, "sourceDigest"));
  rc = rc ? rc : wv_html_row(b, "Wave image", wv__view_str(rec, "waveImage"));
  rc = rc ? rc : wv_html_row(b, "Wave digest", wv__view_str(rec, "waveDigest"));
  rc = rc ? rc : wv_html_row(b, "Requested", wv__view_str(rec, "timestamp"));
  rc = rc ? rc : wv_html_row(b, "Time zone offset", wv__view_str(rec, "zoneId"));
  rc = rc ? rc : wv_html_row(b, "Expiration", wv__view_str(rec, "expiration"));
  rc = rc ? rc : wv_html_row(b, "Fingerprint", wv__view_str(rec, "fingerprint"));
  rc = rc ? rc : wv_html_row(b, "Freeze", wv__view_str(rec, "freeze"));
  rc = rc ? rc : wv_html_row(b, "Build repository", wv__view_str(rec, "buildRepository"));
  rc = rc ? rc : wv_html_row(b, "Cache repository", wv__view_str(rec, "cacheRepository"));
  rc = rc ? rc
          : wv_html_row_link(b, is_mirror ? "Mirror" : "Build",
                             wv__view_link(req, is_mirror ? "mirrors" : "builds", build), build);
  if (!rc && build && new_)
    rc = wv_html_row(b, "Cached", strcmp(new_, "true") == 0 ? "false" : "true");
  rc = rc ? rc : wv_html_row_link(b, "Security scan", wv__view_link(req, "scans", scan), scan);
  rc = rc ? rc : wv_html_row(b, "Fusion version", wv__view_str(rec, "fusionVersion"));
  rc = rc ? rc : wv_html_row(b, "User ID", wv__view_str(user, "id"));
  rc = rc ? rc : wv_html_row(b, "Workspace ID", wv__view_str(rec, "workspaceId"));
  rc = rc ? rc : wv_html_row(b, "Platform endpoint", wv__view_str(rec, "towerEndpoint"));
  return rc ? rc : wv_html_table_end(b);
}

int wv__view_container(wv_req_t *req, wv_resp_t *resp) {
  const char *id = wv_req_param(req, "token");
  if (!wv_record_id_valid(id))
    return bad_id(req, resp, "container token");
  json_object *rec = NULL;
  int rc = wv_record_load(req->app, id, &rec);
  if (rc == WV_ENOTFOUND)
    return unknown(req, resp, "container token", id);
  if (rc)
    return wv_html_error(req, resp, wv_resp_api_status(rc), wv_strerror(rc));
  const char *file = wv__view_str(rec, "containerFile"), *conda = wv__view_str(rec, "condaFile");
  wv_buf_t b;
  wv_buf_init(&b, PAGE_MAX);
  rc = wv_html_begin(&b, wv_arena_sprintf(req->arena, "Container request %s", id));
  rc = rc ? rc : container_table(req, &b, id, rec);
  rc = rc ? rc : container_config(&b, rec);
  if (!rc && file)
    rc = titled_pre(&b, "Containerfile", file, strlen(file), VIEW_TEXT_MAX);
  if (!rc && conda)
    rc = titled_pre(&b, "Conda file", conda, strlen(conda), VIEW_TEXT_MAX);
  rc = rc ? rc : wv_html_end(&b);
  json_object_put(rec);
  return wv__view_finish(req, resp, 200, &b, rc);
}
