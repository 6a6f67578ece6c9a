/*
 * scan/scan.c — scan ids, records and the container-status verdict; see
 * scan/scan.h for the life of a scan and the store layout.
 *
 * Reservation is one atomic wv_store_apply: PUT_NX of "id/<hex>" together
 * with the PENDING record and the job's source description. Two requests
 * racing for the same image both draw a counter value, but only one
 * reservation lands; the other sees WV_EEXISTS, re-reads the id and shares
 * that scan (its counter value is simply never used, as in Wave).
 */
#include "scan/scan_int.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/json.h"
#include "core/log.h"
#include "core/siphash.h"
#include "core/timefmt.h"
#include "http/client.h"
#include "registry/fetch.h"
#include "registry/mediatype.h"
#include "registry/ref.h"
#include "registry/upstream.h"
#include "registry/usage.h"
#include "storage/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESERVE_ATTEMPTS 4
#define RECORD_MAX (WV_STORE_VALUE_MAX)

static const char *const origin_keys[] = {"requestId", "buildId", "mirrorId"};
/* Severity order of the verdict's lists, least severe first (spec example "HIGH,CRITICAL"). */
static const char *const levels_order[] = {"LOW", "MEDIUM", "HIGH", "CRITICAL", "UNKNOWN"};

void wv__scan_key(char *out, const char *prefix, const char *id) {
  snprintf(out, SCAN_KEY_MAX, "%s%s", prefix, id);
}

bool wv_scan_id_valid(const char *s) {
  if (!s || strncmp(s, "sc-", 3) != 0)
    return false;
  for (int i = 3; i < 19; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  if (s[19] != '_' || !s[20] || strlen(s) > WV_SCAN_ID_MAX)
    return false;
  for (const char *p = s + 20; *p; p++)
    if (*p < '0' || *p > '9')
      return false;
  return true;
}

int wv_scan_id_hash(const char *image, const char *digest, char out[20]) {
  const char *kv[4] = {"image", image, "digest", digest};
  char hex[WV_CHECKSUM_STRLEN];
  int rc = wv_siphash_pairs(kv, digest && *digest ? 2 : 1, hex);
  if (!rc)
    snprintf(out, 20, "sc-%s", hex);
  return rc;
}

int wv__scan_load(const wv_app_t *app, wv_arena_t *a, const char *key, char **val, size_t *len) {
  int rc = wv_store_get(app->store, WV_DB_SCANS, key, val, len, NULL);
  if (rc == 0 && wv_arena_on_cleanup(a, free, *val)) {
    free(*val);
    rc = WV_ENOMEM;
  }
  return rc;
}

int wv_scan_load_record(const wv_app_t *app, const char *id, json_object **out) {
  return wv_store_get_json(app->store, WV_DB_SCANS, id, RECORD_MAX, 0, out, NULL);
}

static int put_json(wv_store_op_t *op, const char *key, json_object *o, int64_t expires_ms) {
  const char *s = wv_json_compact(o);
  if (!s)
    return WV_ENOMEM;
  *op = (wv_store_op_t){.kind = WV_STORE_PUT,
                        .db = WV_DB_SCANS,
                        .key = key,
                        .val = s,
                        .val_len = strlen(s),
                        .expires_ms = expires_ms};
  return 0;
}

static wv_store_op_t del_op(const char *key) {
  return (wv_store_op_t){.kind = WV_STORE_DEL, .db = WV_DB_SCANS, .key = key};
}

/* The "id/<hex>" key of a scan id (its hex part). */
static void id_key(char out[SCAN_KEY_MAX], const char *id) {
  snprintf(out, SCAN_KEY_MAX, "id/%.16s", id + 3);
}

/* The DEL of "id/<hex>" when it still names id; *n += 1 when added. */
static void release_op(const wv_app_t *app, const char *id, char key[SCAN_KEY_MAX],
                       wv_store_op_t *ops, size_t *n) {
  char *cur = NULL;
  size_t len = 0;
  id_key(key, id);
  if (wv_store_get(app->store, WV_DB_SCANS, key, &cur, &len, NULL) == 0 && strcmp(cur, id) == 0)
    ops[(*n)++] = del_op(key);
  free(cur);
}

int wv__scan_release_id(const wv_app_t *app, const char *id) {
  char key[SCAN_KEY_MAX];
  wv_store_op_t op;
  size_t n = 0;
  release_op(app, id, key, &op, &n);
  return n ? wv_store_apply(app->store, &op, 1, NULL) : 0;
}

int wv__scan_store_success(const wv_app_t *app, const char *id, json_object *rec,
                           json_object *counts, const void *spdx_zst, size_t spdx_len) {
  char ksum[SCAN_KEY_MAX], kspdx[SCAN_KEY_MAX], kreq[SCAN_KEY_MAX];
  int64_t exp = wv_store_now_ms() + app->cfg->scan_status_ttl_ms;
  wv_store_op_t ops[4];
  size_t n = 0;
  wv__scan_key(ksum, "sum/", id);
  wv__scan_key(kspdx, "spdx/", id);
  wv__scan_key(kreq, "req/", id);
  int rc = put_json(&ops[n++], id, rec, exp);
  if (!rc && counts)
    rc = put_json(&ops[n++], ksum, counts, exp);
  if (!rc && spdx_zst)
    ops[n++] = (wv_store_op_t){.kind = WV_STORE_PUT,
                               .db = WV_DB_SCANS,
                               .key = kspdx,
                               .val = spdx_zst,
                               .val_len = spdx_len,
                               .expires_ms = exp};
  ops[n++] = del_op(kreq);
  return rc ? rc : wv_store_apply(app->store, ops, n, NULL);
}

/* Wave's treatment of scanner output in a record: no single quotes, capped. */
static json_object *logs_json(const char *logs) {
  static const char more[] = " [truncated]";
  size_t n = strlen(logs), o = 0;
  char *s = malloc((n < WV_SCAN_LOGS_MAX ? n : WV_SCAN_LOGS_MAX) + sizeof more);
  if (!s)
    return NULL;
  for (size_t i = 0; i < n && o < WV_SCAN_LOGS_MAX; i++)
    if (logs[i] != '\'')
      s[o++] = logs[i];
  s[o] = '\0';
  if (o == WV_SCAN_LOGS_MAX && strlen(logs) > WV_SCAN_LOGS_MAX)
    strcat(s, more);
  json_object *j = json_object_new_string(s);
  free(s);
  return j;
}

/* Sets duration (end - startTime) in rec. */
static int set_duration(json_object *rec, int64_t end_ns) {
  const char *start = NULL;
  int64_t start_ns = end_ns;
  char dur[WV_DURATION_STRLEN];
  if (!wv_json_get_str(rec, "startTime", &start))
    wv_time_parse_iso(start, &start_ns);
  int rc = wv_duration_format_wave(end_ns > start_ns ? end_ns - start_ns : 0, dur, sizeof dur);
  return rc ? rc : wv_json_add_number_text(rec, "duration", dur);
}

int wv__scan_store_failure(const wv_app_t *app, const char *id, const char *logs, int64_t end_ns) {
  json_object *rec = NULL;
  int rc = wv_scan_load_record(app, id, &rec);
  if (rc)
    return rc;
  json_object *lj = logs_json(logs ? logs : "");
  rc = lj ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_obj(rec, "logs", lj);
  rc = rc ? rc : wv_json_add_str(rec, "status", "FAILED");
  rc = rc ? rc : wv_json_add_int(rec, "exitCode", 1);
  rc = rc ? rc : set_duration(rec, end_ns);
  char kid[SCAN_KEY_MAX], ksum[SCAN_KEY_MAX], kreq[SCAN_KEY_MAX];
  wv_store_op_t ops[4];
  size_t n = 0;
  rc = rc ? rc : put_json(&ops[n++], id, rec, wv_store_now_ms() + app->cfg->scan_failure_ttl_ms);
  wv__scan_key(ksum, "sum/", id);
  wv__scan_key(kreq, "req/", id);
  ops[n++] = del_op(ksum);
  ops[n++] = del_op(kreq);
  release_op(app, id, kid, ops, &n);
  rc = rc ? rc : wv_store_apply(app->store, ops, n, NULL);
  json_object_put(rec);
  return rc;
}

/* ---- reservation ------------------------------------------------------------------ */

static json_object *pending_record(const char *id, const wv_scan_target_t *t, int64_t now_ns) {
  json_object *o = json_object_new_object();
  char start[WV_TIME_ISO_STRLEN];
  int rc = o ? wv_time_format_iso(now_ns, start, sizeof start) : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "id", id);
  rc = rc ? rc : wv_json_add_str(o, "containerImage", t->image);
  rc = rc ? rc : wv_json_add_str(o, "platform", t->platform ? t->platform : "linux/amd64");
  rc = rc ? rc : wv_json_add_str(o, "startTime", start);
  rc = rc ? rc : wv_json_add_str(o, "status", "PENDING");
  return wv_json_finish(o, rc);
}

static json_object *source_json(const wv_scan_target_t *t) {
  json_object *o = json_object_new_object();
  int rc = o ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "image", t->image);
  rc = rc ? rc : wv_json_add_str(o, "digest", t->digest);
  rc = rc ? rc : wv_json_add_str(o, "registry", t->registry);
  rc = rc ? rc : wv_json_add_str(o, "repo", t->repo);
  rc = rc ? rc : wv_json_add_str(o, "reference", t->reference);
  rc = rc ? rc : wv_json_add_str(o, "platform", t->platform);
  return wv_json_finish(o, rc);
}

/* The id "id/<hex>" names now, into id. 0 or WV_ENOTFOUND. */
static int cached_id(const wv_app_t *app, const char *key, char id[WV_SCAN_ID_MAX + 1]) {
  char *val = NULL;
  size_t len = 0;
  int rc = wv_store_get(app->store, WV_DB_SCANS, key, &val, &len, NULL);
  bool valid = !rc && wv_scan_id_valid(val);
  if (valid)
    snprintf(id, WV_SCAN_ID_MAX + 1, "%s", val);
  free(val);
  if (rc)
    return rc;
  /* A corrupt entry, or one that outlived its record (7d id, 5d record): scan again. */
  char *rec = NULL;
  rc = valid ? wv_store_get(app->store, WV_DB_SCANS, id, &rec, &len, NULL) : WV_ENOTFOUND;
  free(rec);
  if (rc == WV_ENOTFOUND) {
    wv_store_del(app->store, WV_DB_SCANS, key);
    id[0] = '\0';
  }
  return rc;
}

/* Draws the next id of hx and writes its reservation; WV_EEXISTS when another won. */
static int reserve_new(const wv_app_t *app, const wv_scan_target_t *t, const char *hx,
                       const char *kid, char id[WV_SCAN_ID_MAX + 1]) {
  char counter[SCAN_KEY_MAX], kreq[SCAN_KEY_MAX];
  int64_t n = 0, now_ms = wv_store_now_ms();
  snprintf(counter, sizeof counter, "scan/%s", hx + 3);
  int rc = wv_store_incr(app->store, WV_DB_COUNTERS, counter, 1, 0, &n);
  if (rc)
    return rc;
  snprintf(id, WV_SCAN_ID_MAX + 1, "%s_%lld", hx, (long long)n);
  wv__scan_key(kreq, "req/", id);
  json_object *rec = pending_record(id, t, wv_now_ns()), *src = source_json(t);
  const char *idv = id;
  wv_store_op_t ops[3] = {{.kind = WV_STORE_PUT_NX,
                           .db = WV_DB_SCANS,
                           .key = kid,
                           .val = idv,
                           .val_len = strlen(idv),
                           .expires_ms = now_ms + app->cfg->scan_id_ttl_ms}};
  int64_t exp = now_ms + app->cfg->scan_status_ttl_ms;
  rc = rec && src ? 0 : WV_ENOMEM;
  rc = rc ? rc : put_json(&ops[1], id, rec, exp);
  rc = rc ? rc : put_json(&ops[2], kreq, src, exp);
  rc = rc ? rc : wv_store_apply(app->store, ops, 3, NULL);
  json_object_put(rec);
  json_object_put(src);
  return rc;
}

int wv_scan_reserve(const wv_app_t *app, const wv_scan_target_t *t, char id[WV_SCAN_ID_MAX + 1],
                    bool *is_new) {
  char hx[20], kid[SCAN_KEY_MAX];
  *is_new = false;
  id[0] = '\0';
  if (!app->cfg->scan_enabled)
    return WV_EUNSUPPORTED;
  if (!t->image || !t->repo || !t->reference)
    return WV_EINVAL;
  int rc = wv_scan_id_hash(t->image, t->digest, hx);
  if (rc)
    return rc;
  id_key(kid, hx);
  for (int i = 0; i < RESERVE_ATTEMPTS; i++) {
    rc = cached_id(app, kid, id);
    if (rc != WV_ENOTFOUND)
      return rc;
    rc = reserve_new(app, t, hx, kid, id);
    if (rc != WV_EEXISTS) {
      *is_new = rc == 0;
      return rc;
    }
  }
  return WV_EBUSY;
}

/* ---- start, abandon ------------------------------------------------------------------ */

/*
 * Start writes nothing but the job: the origin travels in the step's argument
 * ("<id> <originKey> <originId>") and the job itself adds it to the record,
 * so the record has one writer after its reservation and a late or repeated
 * start can never overwrite a finished record.
 */
int wv_scan_start(const wv_app_t *app, const char *id, wv_scan_origin_t origin,
                  const char *origin_id) {
  wv_job_info_t info;
  if (!wv_scan_id_valid(id))
    return WV_EINVAL;
  if (wv_job_get(app->jobs, id, &info) == 0)
    return 0; /* started before */
  json_object *rec = NULL;
  const char *status = NULL;
  int rc = wv_scan_load_record(app, id, &rec);
  bool pending = !rc && !wv_json_get_str(rec, "status", &status) && !strcmp(status, "PENDING");
  json_object_put(rec);
  if (rc || !pending)
    return rc; /* unknown, or ended already */
  char arg[WV_SCAN_ID_MAX + 160];
  if (origin_id && (unsigned)origin < 3 && strlen(origin_id) < 128 && !strchr(origin_id, ' '))
    snprintf(arg, sizeof arg, "%s %s %s", id, origin_keys[origin], origin_id);
  else
    snprintf(arg, sizeof arg, "%s", id);
  wv_job_step_t step = {.type = WV_JOB_STEP_FN, .name = "scan", .fn = WV_SCAN_KIND, .arg = arg};
  wv_job_spec_t spec = {.id = id, .kind = WV_SCAN_KIND, .steps = &step, .nsteps = 1};
  rc = wv_job_submit(app->jobs, &spec, NULL);
  if (!rc) /* Wave's scans counter (registry/usage.h) */
    wv_usage_count(app, WV_USAGE_SCANS, NULL, NULL);
  if (rc == WV_EEXISTS)
    return 0;
  if (rc) {
    char why[160];
    snprintf(why, sizeof why, "Cannot queue the scan: %s", wv_strerror(rc));
    wv__scan_store_failure(app, id, why, wv_now_ns());
    wv_warn("scan %s: %s", id, why);
  }
  return rc;
}

int wv_scan_submit(const wv_app_t *app, const wv_scan_target_t *t, wv_scan_origin_t origin,
                   const char *origin_id, char id[WV_SCAN_ID_MAX + 1]) {
  bool is_new = false;
  int rc = wv_scan_reserve(app, t, id, &is_new);
  return rc || !is_new ? rc : wv_scan_start(app, id, origin, origin_id);
}

int wv_scan_abandon(const wv_app_t *app, const char *id, const char *reason) {
  json_object *rec = NULL;
  const char *status = NULL;
  if (!wv_scan_id_valid(id))
    return WV_EINVAL;
  int rc = wv_scan_load_record(app, id, &rec);
  bool pending = !rc && !wv_json_get_str(rec, "status", &status) && !strcmp(status, "PENDING");
  json_object_put(rec);
  if (rc == WV_ENOTFOUND || (!rc && !pending))
    return wv__scan_release_id(app, id);
  return rc ? rc : wv__scan_store_failure(app, id, reason, wv_now_ns());
}

int wv_scan_reserve_image(const wv_app_t *app, const char *image, const char *digest, bool embedded,
                          const char *platform, char id[WV_SCAN_ID_MAX + 1], bool *is_new) {
  wv_arena_t *a = wv_arena_new(0);
  wv_ref_t ref;
  const char *msg = NULL;
  *is_new = false;
  id[0] = '\0';
  int rc = a ? wv_ref_parse(a, image, &ref, &msg) : WV_ENOMEM;
  if (!rc) {
    wv_scan_target_t t = {.image = image,
                          .digest = digest,
                          .registry = embedded ? NULL : ref.registry,
                          .repo = ref.path,
                          .reference = digest ? digest : ref.reference,
                          .platform = platform};
    rc = wv_scan_reserve(app, &t, id, is_new);
  } else if (rc != WV_ENOMEM) {
    rc = WV_EINVAL;
  }
  wv_arena_free(a);
  return rc;
}

int wv_scan_submit_for_image(const wv_app_t *app, const char *image, const char *digest,
                             bool embedded, const char *platform, wv_scan_origin_t origin,
                             const char *origin_id, const char *mode, char id[WV_SCAN_ID_MAX + 1]) {
  bool is_new = false;
  id[0] = '\0';
  if (!app->cfg->scan_enabled || !mode || strcmp(mode, "none") == 0)
    return 0;
  int rc = wv_scan_reserve_image(app, image, digest, embedded, platform, id, &is_new);
  return rc || !is_new ? rc : wv_scan_start(app, id, origin, origin_id);
}

int wv_scan_image_digest(const wv_app_t *app, const char *image, char out[72]) {
  wv_arena_t *a = wv_arena_new(0);
  wv_ref_t ref;
  const char *msg = NULL;
  int rc = a ? wv_ref_parse(a, image, &ref, &msg) : WV_ENOMEM;
  if (rc) {
    wv_arena_free(a);
    return rc == WV_ENOMEM ? rc : WV_EINVAL;
  }
  if (wv_digest_valid(ref.reference)) {
    snprintf(out, 72, "%s", ref.reference);
    wv_arena_free(a);
    return 0;
  }
  const char *hdrs[] = {"Accept: " WV_MT_ACCEPT_MANIFESTS, NULL};
  wv_http_req_t req = {.method = "HEAD",
                       .url = wv_arena_sprintf(a, "/v2/%s/manifests/%s", ref.path, ref.reference),
                       .headers = hdrs};
  wv_http_resp_t resp;
  wv_fetch_err_t e;
  wv_http_resp_init(&resp);
  rc = req.url ? wv_fetch(app, ref.registry, ref.path, WV_WHO_WAVED, &req, &resp, NULL, &e)
               : WV_ENOMEM;
  const char *d = rc ? NULL : wv_http_resp_header(&resp, "Docker-Content-Digest");
  if (!rc)
    rc = resp.status == 404 ? WV_ENOTFOUND : (resp.status != 200 || !d) ? WV_EUPSTREAM : 0;
  if (!rc && !wv_digest_valid(d))
    rc = WV_EUPSTREAM;
  if (!rc)
    snprintf(out, 72, "%s", d);
  wv_http_resp_free(&resp);
  wv_arena_free(a);
  return rc && rc != WV_ENOMEM && rc != WV_ENOTFOUND ? WV_EUPSTREAM : rc;
}

/* ---- container status (contract §3.6) ------------------------------------------------------- */

static bool in_list(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; p && *p;) {
    size_t m = strcspn(p, ",");
    if (m == n && strncmp(p, word, n) == 0)
      return true;
    p += m + (p[m] == ',');
  }
  return false;
}

int wv_scan_levels_verdict(const char *levels, json_object *counts, bool *succeeded, char *reason,
                           size_t reason_len) {
  char bad[64] = "";
  size_t o = 0;
  bool any = counts && json_object_object_length(counts) > 0;
  for (size_t i = 0; any && i < sizeof levels_order / sizeof levels_order[0]; i++) {
    json_object *c = NULL;
    if (!json_object_object_get_ex(counts, levels_order[i], &c) || json_object_get_int64(c) <= 0 ||
        in_list(levels, levels_order[i]))
      continue;
    o += (size_t)snprintf(bad + o, sizeof bad - o, "%s%s", o ? "," : "", levels_order[i]);
  }
  *succeeded = o == 0;
  reason[0] = '\0';
  if (o)
    snprintf(reason, reason_len,
             "Container security scan operation found one or more vulnerabilities with severity: "
             "%s",
             bad);
  else if (any)
    snprintf(reason, reason_len,
             "Container security scan operation found one or more vulnerabilities that are "
             "compatible with requested security levels: %s",
             levels ? levels : "");
  return 0;
}

json_object *wv_scan_load_counts(const wv_app_t *app, const char *id) {
  char key[SCAN_KEY_MAX];
  json_object *o = NULL;
  wv__scan_key(key, "sum/", id);
  wv_store_get_json(app->store, WV_DB_SCANS, key, 0, 0, &o, NULL);
  return o;
}

/* DONE after the scan: counts, verdict, duration = the request's + the scan's. */
static int scan_done(const wv_app_t *app, const wv_token_rec_t *t, json_object *st,
                     json_object *rec, bool ok) {
  char reason[512], uri[600], dur[WV_DURATION_STRLEN];
  bool succeeded = false;
  json_object *counts = ok ? wv_scan_load_counts(app, t->scan_id) : NULL, *d = NULL;
  if (ok)
    wv_scan_levels_verdict(t->scan_levels, counts, &succeeded, reason, sizeof reason);
  else
    snprintf(reason, sizeof reason, "Container security scan did not complete successfully");
  double scan_s = json_object_object_get_ex(rec, "duration", &d) ? json_object_get_double(d) : 0;
  int64_t req_ns = wv_now_ns() - t->created_ms * WV_NS_PER_MS;
  int rc =
      wv_duration_format_wave((req_ns > 0 ? req_ns : 0) + (int64_t)(scan_s * 1e9), dur, sizeof dur);
  const char *base = app->cfg->server_url;
  size_t bl = strlen(base);
  while (bl && base[bl - 1] == '/')
    bl--;
  snprintf(uri, sizeof uri, "%.*s/view/scans/%s", (int)bl, base, t->scan_id);
  rc = rc ? rc : wv_json_add_str(st, "status", "DONE");
  if (!rc && counts && json_object_object_length(counts) > 0) {
    rc = wv_json_add_obj(st, "vulnerabilities", counts);
    counts = NULL;
  }
  rc = rc ? rc : wv_json_add_bool(st, "succeeded", succeeded);
  rc = rc ? rc : wv_json_add_str(st, "reason", reason);
  rc = rc ? rc : wv_json_add_str(st, "detailsUri", reason[0] ? uri : NULL);
  rc = rc ? rc : wv_json_add_number_text(st, "duration", dur);
  json_object_put(counts);
  return rc;
}

int wv_scan_status_fill(const wv_app_t *app, const wv_token_rec_t *t, json_object *st) {
  if (!t->scan_id)
    return 0;
  int rc = wv_json_add_str(st, "scanId", t->scan_id);
  if (rc || !t->scan_mode || strcmp(t->scan_mode, "required") != 0)
    return rc; /* async never changes the status (contract §8.1) */
  /* A build or mirror still running, or failed, speaks for itself (Wave's order). */
  const char *base = NULL;
  bool ok = true;
  if (wv_json_get_str(st, "status", &base) || strcmp(base, "DONE") != 0 ||
      (!wv_json_get_bool(st, "succeeded", &ok) && !ok))
    return 0;
  json_object *rec = NULL;
  const char *status = NULL;
  rc = wv_scan_load_record(app, t->scan_id, &rec);
  if (rc == WV_ENOTFOUND) /* expired (a failure, 30m) or lost: not a success */
    return scan_done(app, t, st, NULL, false);
  if (!rc && wv_json_get_str(rec, "status", &status))
    rc = WV_ESTORE;
  if (!rc && strcmp(status, "PENDING") == 0) {
    json_object_object_del(st, "succeeded");
    json_object_object_del(st, "duration");
    rc = wv_json_add_str(st, "status", "SCANNING");
  } else if (!rc) {
    rc = scan_done(app, t, st, rec, strcmp(status, "SUCCEEDED") == 0);
  }
  json_object_put(rec);
  return rc;
}
