/*
 * build/view/scan.c — the scan page (/view/scans/{scanId}: the record of
 * contract §8.2 with counts by severity and the vulnerability table) and the
 * inspect page (/view/inspect?image=&platform=: what POST /v1alpha1/inspect
 * answers, through the same registry/ code). See build/view/view.c.
 */
#include "build/view/view_int.h"
#include "core/err.h"
#include "core/json.h"
#include "http/resp.h"
#include "registry/inspect.h"
#include "scan/scan.h"

#include <inttypes.h>
#include <string.h>

#define PAGE_MAX WV_HTML_PAGE_MAX

/* Severity words, most severe first; each is also a CSS class of the page. */
static const char *const severities[] = {"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"};
#define NSEV (sizeof severities / sizeof severities[0])

/* The class for a severity word, "" when it is not one of ours. */
static const char *sev_class(const char *s) {
  for (size_t i = 0; s && i < NSEV; i++)
    if (strcmp(s, severities[i]) == 0)
      return severities[i];
  return "";
}

static int cell(wv_buf_t *b, const char *text) {
  int rc = wv_buf_puts(b, "<td>");
  rc = rc ? rc : wv_html_esc(b, text);
  return rc ? rc : wv_buf_puts(b, "</td>");
}

/* A link only for http(s) addresses: a javascript: URL must never become an href. */
static bool web_url(const char *u) {
  return u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0);
}

/* <td><a href=url>text</a></td>, or the plain text when url is not a web address. */
static int link_cell(wv_buf_t *b, const char *url, const char *text) {
  if (!web_url(url))
    return cell(b, text);
  int rc = wv_buf_puts(b, "<td><a rel=\"noreferrer\" href=\"");
  rc = rc ? rc : wv_html_esc(b, url);
  rc = rc ? rc : wv_buf_puts(b, "\">");
  rc = rc ? rc : wv_html_esc(b, text);
  return rc ? rc : wv_buf_puts(b, "</a></td>");
}

/* ---- scans ---------------------------------------------------------------------------- */

/* Counts by severity: the stored totals, else counted from the record's list. */
static json_object *counts_of(const wv_app_t *app, const char *id, json_object *vulns) {
  json_object *c = wv_scan_load_counts(app, id);
  if (c || !vulns)
    return c;
  c = json_object_new_object();
  for (size_t i = 0; c && i < json_object_array_length(vulns); i++) {
    const char *s = wv__view_str(json_object_array_get_idx(vulns, i), "severity");
    int64_t n = 0;
    if (!s)
      continue;
    wv_json_get_int64(c, s, &n);
    json_object_object_add(c, s, json_object_new_int64(n + 1));
  }
  return c;
}

static int counts_table(wv_buf_t *b, json_object *counts, int64_t *total) {
  int rc = wv_html_h2(b, "Vulnerabilities by severity");
  rc = rc ? rc : wv_html_table_begin(b);
  *total = 0;
  for (size_t i = 0; !rc && i < NSEV; i++) {
    int64_t n = 0;
    wv_json_get_int64(counts, severities[i], &n);
    *total += n;
    rc = wv_buf_printf(b, "<tr><th class=\"%s\">%s</th><td>%" PRId64 "</td></tr>\n", severities[i],
                       severities[i], n);
  }
  rc = rc ? rc : wv_buf_printf(b, "<tr><th>Total</th><td>%" PRId64 "</td></tr>\n", *total);
  return rc ? rc : wv_html_table_end(b);
}

static int vuln_row(wv_buf_t *b, json_object *v) {
  const char *sev = wv__view_str(v, "severity");
  int rc = wv_buf_puts(b, "<tr>");
  rc = rc ? rc : link_cell(b, wv__view_str(v, "primaryUrl"), wv__view_str(v, "id"));
  rc = rc ? rc : wv_buf_printf(b, "<td class=\"%s\">", sev_class(sev));
  rc = rc ? rc : wv_html_esc(b, sev);
  rc = rc ? rc : wv_buf_puts(b, "</td>");
  rc = rc ? rc : cell(b, wv__view_str(v, "pkgName"));
  rc = rc ? rc : cell(b, wv__view_str(v, "installedVersion"));
  rc = rc ? rc : cell(b, wv__view_str(v, "fixedVersion"));
  rc = rc ? rc : cell(b, wv__view_str(v, "title"));
  return rc ? rc : wv_buf_puts(b, "</tr>\n");
}

static int vuln_table(wv_buf_t *b, json_object *vulns, int64_t total) {
  size_t n = vulns ? json_object_array_length(vulns) : 0;
  int rc = wv_html_h2(b, "Vulnerabilities");
  if (!rc && n == 0)
    return wv_html_note(b, "No vulnerabilities were found.");
  if (!rc && (int64_t)n < total)
    rc = wv_buf_printf(b,
                       "<p class=\"note\">The %zu most severe of %" PRId64
                       " findings are listed (wave.scan.vulnerability.limit).</p>\n",
                       n, total);
  rc = rc ? rc
          : wv_buf_puts(b, "<table><thead><tr><th>ID</th><th>Severity</th><th>Package</th>"
                           "<th>Installed version</th><th>Fixed version</th><th>Title</th>"
                           "</tr></thead><tbody>\n");
  for (size_t i = 0; !rc && i < n; i++)
    rc = vuln_row(b, json_object_array_get_idx(vulns, i));
  return rc ? rc : wv_buf_puts(b, "</tbody></table>\n");
}

static int scan_table(wv_req_t *req, wv_buf_t *b, const char *id, json_object *rec) {
  const char *st = wv__view_str(rec, "status"), *build = wv__view_str(rec, "buildId");
  const char *mirror = wv__view_str(rec, "mirrorId"), *creq = wv__view_str(rec, "requestId");
  const char *dur = wv__view_str(rec, "duration");
  bool ok = st && strcmp(st, "SUCCEEDED") == 0, failed = st && strcmp(st, "FAILED") == 0;
  int rc = wv_html_table_begin(b);
  rc = rc ? rc : wv_html_row(b, "Scan ID", id);
  rc = rc ? rc
          : wv_html_row_status(b, "Status",
                               ok       ? "SUCCEEDED"
                               : failed ? "FAILED"
                                        : "IN PROGRESS",
                               ok       ? "ok"
                               : failed ? "failed"
                                        : "running");
  rc = rc ? rc : wv_html_row(b, "Container image", wv__view_str(rec, "containerImage"));
  rc = rc ? rc : wv_html_row(b, "Platform", wv__view_str(rec, "platform"));
  rc = rc ? rc : wv_html_row(b, "Started", wv__view_str(rec, "startTime"));
  rc = rc ? rc : wv_html_row(b, "Duration", dur ? wv_arena_sprintf(req->arena, "%s s", dur) : NULL);
  rc = rc ? rc : wv_html_row(b, "Exit code", wv__view_str(rec, "exitCode"));
  rc = rc ? rc : wv_html_row_link(b, "Build", wv__view_link(req, "builds", build), build);
  rc = rc ? rc : wv_html_row_link(b, "Mirror", wv__view_link(req, "mirrors", mirror), mirror);
  rc = rc ? rc
          : wv_html_row_link(b, "Container request", wv__view_link(req, "containers", creq), creq);
  return rc ? rc : wv_html_table_end(b);
}

/* Links to the SBOM and the scanner log (the JSON API's attachments). */
static int scan_links(wv_buf_t *b, const char *id) {
  int rc = wv_buf_puts(b, "<p class=\"note\"><a href=\"../../v1alpha1/scans/");
  rc = rc ? rc : wv_html_esc(b, id);
  rc = rc ? rc : wv_buf_puts(b, "/spdx\">SPDX SBOM</a> &middot; <a href=\"../../v1alpha1/scans/");
  rc = rc ? rc : wv_html_esc(b, id);
  return rc ? rc : wv_buf_puts(b, "/logs\">Scan log</a></p>\n");
}

static int scan_page(wv_req_t *req, wv_buf_t *b, const char *id, json_object *rec) {
  const char *st = wv__view_str(rec, "status"), *logs = wv__view_str(rec, "logs");
  json_object *vulns = NULL, *counts = NULL;
  int64_t total = 0;
  if (json_object_object_get_ex(rec, "vulnerabilities", &vulns) &&
      !json_object_is_type(vulns, json_type_array))
    vulns = NULL;
  int rc = wv_html_begin(b, wv_arena_sprintf(req->arena, "Security scan %s", id));
  rc = rc ? rc : scan_table(req, b, id, rec);
  if (!rc && st && strcmp(st, "SUCCEEDED") == 0) {
    counts = counts_of(req->app, id, vulns);
    rc = counts_table(b, counts, &total);
    rc = rc ? rc : vuln_table(b, vulns, total);
    rc = rc ? rc : scan_links(b, id);
    json_object_put(counts);
  } else if (!rc && st && strcmp(st, "FAILED") == 0) {
    rc = wv_html_h2(b, "Scan log");
    rc = rc ? rc : wv_html_pre(b, logs ? logs : "", logs ? strlen(logs) : 0, VIEW_LOG_MAX);
  } else if (!rc) {
    rc = wv_html_note(b, "The scan is still running: reload the page to see its result.");
  }
  return rc ? rc : wv_html_end(b);
}

int wv__view_scan(wv_req_t *req, wv_resp_t *resp) {
  const char *id = wv_req_param(req, "scanId");
  if (!wv_scan_id_valid(id))
    return wv_html_error(req, resp, 400, "Malformed scan id");
  json_object *rec = NULL;
  int rc = wv_scan_load_record(req->app, id, &rec);
  if (rc == WV_ENOTFOUND)
    return wv_html_error(req, resp, 404,
                         wv_arena_sprintf(req->arena, "No scan report exists with id: %s", id));
  if (rc)
    return wv_html_error(req, resp, wv_resp_api_status(rc), wv_strerror(rc));
  wv_buf_t b;
  wv_buf_init(&b, PAGE_MAX);
  rc = scan_page(req, &b, id, rec);
  json_object_put(rec);
  return wv__view_finish(req, resp, 200, &b, rc);
}

/* ---- inspect -------------------------------------------------------------------------- */

/* A member of o as pretty JSON, "" when absent. */
static const char *pretty(json_object *o, const char *key) {
  json_object *v = NULL;
  if (!json_object_object_get_ex(o, key, &v) || !v)
    return "";
  return json_object_to_json_string_ext(v,
                                        JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int titled_json(wv_buf_t *b, const char *title, json_object *o, const char *key) {
  const char *s = pretty(o, key);
  int rc = wv_html_h2(b, title);
  return rc ? rc : wv_html_pre(b, s, strlen(s), VIEW_LOG_MAX);
}

/* Layers of a ManifestSpec: media type, digest, size. */
static int layers_table(wv_buf_t *b, json_object *manifest) {
  json_object *arr = NULL;
  if (!json_object_object_get_ex(manifest, "layers", &arr) ||
      !json_object_is_type(arr, json_type_array))
    return 0;
  int rc = wv_html_h2(b, "Layers");
  rc = rc ? rc
          : wv_buf_puts(b, "<table><thead><tr><th>Digest</th><th>Size</th><th>Media type</th>"
                           "</tr></thead><tbody>\n");
  for (size_t i = 0; !rc && i < json_object_array_length(arr); i++) {
    json_object *l = json_object_array_get_idx(arr, i);
    rc = wv_buf_puts(b, "<tr>");
    rc = rc ? rc : cell(b, wv__view_str(l, "digest"));
    rc = rc ? rc : cell(b, wv__view_str(l, "size"));
    rc = rc ? rc : cell(b, wv__view_str(l, "mediaType"));
    rc = rc ? rc : wv_buf_puts(b, "</tr>\n");
  }
  return rc ? rc : wv_buf_puts(b, "</tbody></table>\n");
}

static int container_page(wv_buf_t *b, json_object *c) {
  json_object *cfg = NULL, *man = NULL;
  json_object_object_get_ex(c, "config", &cfg);
  json_object_object_get_ex(c, "manifest", &man);
  int rc = wv_html_table_begin(b);
  rc = rc ? rc : wv_html_row(b, "Registry", wv__view_str(c, "registry"));
  rc = rc ? rc : wv_html_row(b, "Host", wv__view_str(c, "hostName"));
  rc = rc ? rc : wv_html_row(b, "Image name", wv__view_str(c, "imageName"));
  rc = rc ? rc : wv_html_row(b, "Reference", wv__view_str(c, "reference"));
  rc = rc ? rc : wv_html_row(b, "Digest", wv__view_str(c, "digest"));
  rc = rc ? rc : wv_html_row(b, "Media type", wv__view_str(man, "mediaType"));
  rc = rc ? rc : wv_html_row(b, "Architecture", wv__view_str(cfg, "architecture"));
  rc = rc ? rc : wv_html_row(b, "Created", wv__view_str(cfg, "created"));
  rc = rc ? rc : wv_html_table_end(b);
  rc = rc ? rc : layers_table(b, man);
  rc = rc ? rc : titled_json(b, "Config", c, "config");
  return rc ? rc : titled_json(b, "Manifest", c, "manifest");
}

/* An index: one row per platform, each linking to its own inspect page. */
static int index_page(wv_buf_t *b, json_object *idx, const char *image) {
  json_object *arr = NULL;
  int rc = wv_html_table_begin(b);
  rc = rc ? rc : wv_html_row(b, "Image", image);
  rc = rc ? rc : wv_html_row(b, "Digest", wv__view_str(idx, "digest"));
  rc = rc ? rc : wv_html_row(b, "Media type", wv__view_str(idx, "mediaType"));
  rc = rc ? rc : wv_html_table_end(b);
  rc = rc ? rc : wv_html_h2(b, "Platforms");
  rc = rc ? rc
          : wv_buf_puts(b, "<table><thead><tr><th>Platform</th><th>Digest</th><th>Size</th>"
                           "</tr></thead><tbody>\n");
  json_object_object_get_ex(idx, "manifests", &arr);
  for (size_t i = 0; !rc && arr && i < json_object_array_length(arr); i++) {
    json_object *m = json_object_array_get_idx(arr, i), *p = NULL;
    json_object_object_get_ex(m, "platform", &p);
    const char *os = wv__view_str(p, "os"), *arch = wv__view_str(p, "architecture");
    const char *var = wv__view_str(p, "variant");
    wv_buf_t plat;
    wv_buf_init(&plat, 256);
    rc = os && arch ? wv_buf_printf(&plat, "%s/%s%s%s", os, arch, var ? "/" : "", var ? var : "")
                    : 0;
    rc = rc ? rc : wv_buf_puts(b, "<tr><td>");
    if (!rc && plat.len) {
      rc = wv_buf_puts(b, "<a href=\"inspect?image=");
      rc = rc ? rc : wv__view_urlenc(b, image); /* encoded: nothing left to escape */
      rc = rc ? rc : wv_buf_puts(b, "&amp;platform=");
      rc = rc ? rc : wv__view_urlenc(b, plat.data);
      rc = rc ? rc : wv_buf_puts(b, "\">");
      rc = rc ? rc : wv_html_esc(b, plat.data);
      rc = rc ? rc : wv_buf_puts(b, "</a>");
    }
    wv_buf_free(&plat);
    rc = rc ? rc : wv_buf_puts(b, "</td>");
    rc = rc ? rc : cell(b, wv__view_str(m, "digest"));
    rc = rc ? rc : cell(b, wv__view_str(m, "size"));
    rc = rc ? rc : wv_buf_puts(b, "</tr>\n");
  }
  return rc ? rc : wv_buf_puts(b, "</tbody></table>\n");
}

int wv__view_inspect(wv_req_t *req, wv_resp_t *resp) {
  const char *image = wv_req_query(req, "image"), *platform = wv_req_query(req, "platform");
  const char *msg = NULL;
  json_object *out = NULL, *c = NULL, *idx = NULL;
  int status = 0;
  if (!image || !image[0])
    return wv_html_error(req, resp, 400, "Missing 'image' query parameter");
  if (platform && !platform[0])
    platform = NULL;
  if (wv_inspect(req, image, platform, NULL, &out, &status, &msg))
    return wv_html_error(req, resp, status ? status : 500, msg);
  wv_buf_t b;
  wv_buf_init(&b, PAGE_MAX);
  int rc = wv_html_begin(&b, wv_arena_sprintf(req->arena, "Container image %s", image));
  if (!rc && platform)
    rc = wv_html_note(&b, wv_arena_sprintf(req->arena, "Platform %s", platform));
  if (!rc && json_object_object_get_ex(out, "container", &c))
    rc = container_page(&b, c);
  else if (!rc && json_object_object_get_ex(out, "index", &idx))
    rc = index_page(&b, idx, image);
  rc = rc ? rc : wv_html_end(&b);
  json_object_put(out);
  return wv__view_finish(req, resp, 200, &b, rc);
}
