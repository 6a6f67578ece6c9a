/*
 * scan/scan_job.c — the "scan" job kind: one function step on a libuv worker
 * that reads the image (registry_source.h), inventories it, matches OSV,
 * and ends the scan record (scan.c). The job log is the scan log; its lines
 * are also kept (capped) for the record's `logs` on failure.
 *
 * Cancellation: the step polls wv_job_ctx_cancelled between chunks. A cancel
 * at the deadline fails the scan; a cancel because waved is stopping leaves
 * the record PENDING, so the job (re-runnable) starts over at the next start
 * and finds its source description still in the store.
 */
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "scan/inventory.h"
#include "scan/osv.h"
#include "scan/registry_source.h"
#include "scan/scan_int.h"
#include "scan/spdx.h"
#include "storage/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define LOG_KEEP (WV_SCAN_LOGS_MAX + 1024) /* log bytes kept for the failure record */

typedef struct {
  wv_job_ctx_t *ctx;
  const wv_app_t *app;
  const char *id;
  wv_arena_t *a;
  wv_buf_t log;
  const char *image, *digest, *platform;
  const char *origin_key, *origin_id; /* from the step argument; may be NULL */
  wv_scan_source_t src;
} job_t;

static void job_log(void *arg, const char *line) {
  job_t *j = arg;
  wv_job_ctx_logf(j->ctx, "%s", line);
  if (j->log.len + strlen(line) + 1 < LOG_KEEP) {
    wv_buf_puts(&j->log, line);
    wv_buf_putc(&j->log, '\n');
  }
}

static bool job_cancelled(void *arg) { return wv_job_ctx_cancelled(((job_t *)arg)->ctx); }

static void logf_(job_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(job_t *j, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  job_log(j, line);
}

static const char *opt(wv_arena_t *a, json_object *o, const char *key) {
  const char *s = NULL;
  return wv_json_get_str(o, key, &s) ? NULL : wv_arena_strdup(a, s);
}

/* Where to read the image: "req/<id>". WV_ENOTFOUND when the scan has ended already. */
static int load_source(job_t *j) {
  char key[SCAN_KEY_MAX], *val = NULL, err[128];
  size_t len = 0;
  json_object *o = NULL;
  wv__scan_key(key, "req/", j->id);
  int rc = wv__scan_load(j->app, j->a, key, &val, &len);
  if (!rc && wv_json_parse(val, len, len + 1, 0, &o, err, sizeof err))
    rc = WV_ESTORE;
  if (!rc) {
    j->image = opt(j->a, o, "image");
    j->digest = opt(j->a, o, "digest");
    j->platform = opt(j->a, o, "platform");
    j->src = (wv_scan_source_t){.registry = opt(j->a, o, "registry"),
                                .repo = opt(j->a, o, "repo"),
                                .reference = opt(j->a, o, "reference"),
                                .platform = j->platform};
  }
  json_object_put(o);
  return rc;
}

/* "<id> <originKey> <originId>" (wv_scan_start) into j; false when the id is malformed. */
static bool parse_arg(job_t *j, const char *arg) {
  char id[WV_SCAN_ID_MAX + 1], key[32], origin[160];
  int n = sscanf(arg ? arg : "", "%48s %31s %159s", id, key, origin);
  if (n < 1 || !wv_scan_id_valid(id))
    return false;
  j->id = wv_arena_strdup(j->a, id);
  j->origin_key = n == 3 ? wv_arena_strdup(j->a, key) : NULL;
  j->origin_id = n == 3 ? wv_arena_strdup(j->a, origin) : NULL;
  return j->id != NULL;
}

/* The origin goes into the record when the scan starts (the job is its only writer now). */
static int set_origin(job_t *j) {
  json_object *rec = NULL;
  const char *cur = NULL;
  if (!j->origin_key)
    return 0;
  int rc = wv_scan_load_record(j->app, j->id, &rec);
  if (!rc && wv_json_get_str(rec, j->origin_key, &cur) == WV_ENOTFOUND) {
    rc = wv_json_add_str(rec, j->origin_key, j->origin_id);
    const char *s = rc ? NULL : wv_json_compact(rec);
    rc = rc  ? rc
         : s ? wv_store_put(j->app->store, WV_DB_SCANS, j->id, s, strlen(s),
                            wv_store_now_ms() + j->app->cfg->scan_status_ttl_ms)
             : WV_ENOMEM;
  }
  json_object_put(rec);
  return rc;
}

/* Keeps the findings whose severity wave.scan.severity lists ("" = all); returns the count. */
static size_t filter_severity(wv_osv_vuln_t *v, size_t n, const char *list) {
  if (!list || !*list)
    return n;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = wv_osv_severity_name(v[i].level), *p = list;
    size_t nl = strlen(name);
    bool keep = false;
    while (*p && !keep) {
      size_t m = strcspn(p, ",");
      keep = m == nl && strncmp(p, name, nl) == 0;
      p += m + (p[m] == ',');
    }
    if (keep)
      v[o++] = v[i];
  }
  return o;
}

/* The SBOM, zstd-compressed into *out (malloc'd); *out NULL when it does not fit a record. */
static int make_spdx(job_t *j, wv_inventory_t *inv, const char *digest, void **out, size_t *len) {
  size_t nl = wv_inventory_layers(inv);
  const char **layers = wv_arena_alloc(j->a, (nl + 1) * sizeof *layers);
  if (!layers)
    return WV_ENOMEM;
  for (size_t i = 0; i < nl; i++)
    layers[i] = wv_inventory_layer_digest(inv, i);
  wv_spdx_opts_t o = {.name = j->image,
                      .digest = digest,
                      .os_id = wv_inventory_os_id(inv),
                      .os_version = wv_inventory_os_version(inv),
                      .layer_digests = layers,
                      .nlayers = nl};
  wv_buf_t b;
  wv_buf_init(&b, SCAN_SPDX_MAX);
  int rc = wv_spdx_write(wv_inventory_pkgs(inv), wv_inventory_count(inv), &o, &b);
  size_t cap = rc ? 0 : ZSTD_compressBound(b.len);
  *out = rc ? NULL : malloc(cap);
  if (!rc && !*out)
    rc = WV_ENOMEM;
  if (!rc) {
    *len = ZSTD_compress(*out, cap, b.data, b.len, 3);
    if (ZSTD_isError(*len))
      rc = WV_EINTERNAL;
    else if (*len > WV_STORE_VALUE_MAX - 4096) {
      logf_(j, "SBOM of %zu bytes does not fit a record: not kept", b.len);
      free(*out);
      *out = NULL;
    }
  }
  if (rc == WV_ETOOBIG) { /* an SBOM past the cap: the scan still counts */
    logf_(j, "SBOM larger than %u bytes: not kept", SCAN_SPDX_MAX);
    rc = 0;
  }
  wv_buf_free(&b);
  return rc;
}

/* Ends the scan SUCCEEDED with findings v[0..n). */
static int finish(job_t *j, wv_osv_vuln_t *v, size_t n, const void *spdx, size_t spdx_len) {
  json_object *rec = NULL, *counts = wv_osv_vulns_counts(v, n);
  json_object *arr = wv_osv_vulns_to_json(v, n, (size_t)j->app->cfg->scan_vuln_limit);
  int rc = counts && arr ? wv_scan_load_record(j->app, j->id, &rec) : WV_ENOMEM;
  char dur[WV_DURATION_STRLEN];
  const char *start = NULL;
  int64_t start_ns = 0, now = wv_now_ns();
  if (!rc && (wv_json_get_str(rec, "startTime", &start) || wv_time_parse_iso(start, &start_ns)))
    start_ns = now;
  rc = rc ? rc : wv_duration_format_wave(now > start_ns ? now - start_ns : 0, dur, sizeof dur);
  rc = rc ? rc : wv_json_add_str(rec, "status", "SUCCEEDED");
  rc = rc ? rc : wv_json_add_number_text(rec, "duration", dur);
  rc = rc ? rc : wv_json_add_obj(rec, "vulnerabilities", arr);
  arr = NULL;
  rc = rc ? rc : wv_json_add_int(rec, "exitCode", 0);
  rc = rc ? rc : wv__scan_store_success(j->app, j->id, rec, counts, spdx, spdx_len);
  json_object_put(arr);
  json_object_put(counts);
  json_object_put(rec);
  return rc;
}

static int run(job_t *j, const char **msg) {
  wv_scan_io_t io = {.log = job_log, .cancelled = job_cancelled, .arg = j};
  wv_scan_source_result_t res;
  wv_inventory_t *inv = NULL;
  wv_osv_vuln_t *v = NULL;
  size_t n = 0;
  void *spdx = NULL;
  size_t spdx_len = 0;
  logf_(j, "scan %s of %s (%s) from %s", j->id, j->image, j->platform ? j->platform : "linux/amd64",
        j->src.registry ? j->src.registry : "the embedded registry");
  int rc = wv_inventory_new(&inv, NULL);
  rc = rc ? rc : wv_scan_source_read(j->app, j->a, &j->src, inv, &io, &res, msg);
  if (!rc && (rc = wv_inventory_finish(inv)))
    *msg = wv_inventory_error(inv);
  if (!rc)
    logf_(j, "inventory: %zu packages in %zu layers (%llu bytes), os %s %s, %zu warnings",
          wv_inventory_count(inv), res.layers, (unsigned long long)res.bytes,
          wv_inventory_os_id(inv) ? wv_inventory_os_id(inv) : "unknown",
          wv_inventory_os_version(inv) ? wv_inventory_os_version(inv) : "",
          wv_inventory_warnings(inv));
  if (!rc &&
      (rc = wv_osv_match(j->app->store, wv_inventory_pkgs(inv), wv_inventory_count(inv),
                         wv_inventory_os_id(inv), wv_inventory_os_version(inv), j->a, &v, &n)))
    *msg = "cannot read the vulnerability database";
  if (!rc) {
    n = filter_severity(v, n, j->app->cfg->scan_severity);
    for (size_t i = 0; i < n; i++)
      logf_(j, "%s %s %s %s fixed in '%s'", wv_osv_severity_name(v[i].level), v[i].id,
            v[i].pkg_name, v[i].installed_version, v[i].fixed_version);
    logf_(j, "%zu vulnerabilities", n);
    rc = make_spdx(j, inv, res.manifest_digest, &spdx, &spdx_len);
  }
  rc = rc ? rc : finish(j, v, n, spdx, spdx_len);
  free(spdx);
  wv_inventory_free(inv);
  return rc;
}

/* True when the cancel came from the deadline rather than a stopping engine. */
static bool past_deadline(job_t *j) {
  wv_job_info_t info;
  if (wv_job_get(j->app->jobs, j->id, &info) || !info.started_ns)
    return true;
  return wv_now_ns() - info.started_ns >= j->app->cfg->scan_timeout_ms * WV_NS_PER_MS;
}

int wv__scan_job_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *step_arg) {
  job_t j = {.ctx = ctx, .app = fn_arg};
  const char *msg = NULL;
  j.a = wv_arena_new(0);
  wv_buf_init(&j.log, LOG_KEEP);
  if (!j.a || !parse_arg(&j, step_arg)) {
    wv_arena_free(j.a);
    return j.a ? WV_EINVAL : WV_ENOMEM;
  }
  int rc = load_source(&j);
  if (rc == WV_ENOTFOUND) { /* re-run of a scan that already ended */
    wv_job_ctx_logf(ctx, "scan %s has ended already", j.id);
    rc = 0;
    goto out;
  }
  rc = rc ? rc : set_origin(&j);
  rc = rc ? rc : run(&j, &msg);
  if (rc == WV_ECLOSED && !past_deadline(&j))
    goto out; /* waved is stopping: the record stays PENDING and the job runs again */
  if (rc) {
    if (rc == WV_ECLOSED)
      msg = "timed out";
    if (!msg || !*msg)
      msg = wv_strerror(rc);
    logf_(&j, "scan failed: %s", msg);
    if (wv__scan_store_failure(j.app, j.id, j.log.data ? j.log.data : msg, wv_now_ns()))
      wv_error("scan %s: cannot store its failure", j.id);
    wv_job_ctx_fail(ctx, "Container security scan failed: %s", msg);
  }
out:
  wv_buf_free(&j.log);
  wv_arena_free(j.a);
  return rc;
}

int wv_scan_register(wv_job_engine_t *e, const wv_app_t *app) {
  const wv_config_t *cfg = app->cfg;
  wv_job_kind_t k = {.name = WV_SCAN_KIND,
                     .label = "Container security scan",
                     .max_running = cfg->scan_max_concurrent,
                     .rerunnable = true,
                     .deadline_ms = cfg->scan_timeout_ms};
  int rc = wv_job_register_kind(e, &k);
  return rc ? rc : wv_job_register_fn(e, WV_SCAN_KIND, wv__scan_job_fn, (void *)app);
}
