/*
 * http/metrics_route.c — GET /metrics: the counters of core/metrics.c plus
 * what is read at scrape time from the services (job queues, stores, blob
 * cache, rate limits). Runs on a worker: it walks the blob store (at most
 * once a minute) and reads /proc. Also the operator pages' access rule
 * (wv_ops_access, wv_ops_setup); the route is in http/routes.c.
 */
#include "http/metrics_route.h"
#include "core/base64.h"
#include "core/app.h"
#include "core/cidr.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "core/secret.h"
#include "http/resp.h"
#include "storage/blobcache.h"
#include "storage/ops.h"
#include "storage/store.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define METRICS_MAX ((size_t)4 << 20) /* bytes of one scrape's text */
#define BLOB_WALK_MS (60 * 1000)      /* the blob store is walked at most this often */

/* metrics.allow-addresses, parsed once from the configuration by
 * wv_ops_setup and read-only after: a constant table. */
static wv_cidr_list_t allow;

const char *wv_ops_basic_user(wv_req_t *req, const wv_config_t *cfg) {
  bool bad; /* the one Basic parser (http/http.h); a wrong one is simply no user here */
  return wv_req_basic_account(req, cfg, &bad);
}

/* True when user is listed in metrics.accounts. */
static bool listed(const wv_config_t *cfg, const char *user) {
  size_t ulen = strlen(user);
  for (const char *p = cfg->metrics_accounts ? cfg->metrics_accounts : ""; *p;) {
    p += strspn(p, " ,");
    size_t l = strcspn(p, " ,");
    if (l == ulen && l && memcmp(p, user, l) == 0)
      return true;
    p += l;
  }
  return false;
}

/* The account of valid Basic credentials listed in metrics.accounts, else NULL. */
static const char *basic_account(wv_req_t *req, const wv_config_t *cfg) {
  const char *h = wv_req_header(req, "Authorization");
  if (!h || strncasecmp(h, "Basic ", 6) != 0)
    return NULL;
  const char *b = h + 6 + strspn(h + 6, " ");
  char *dec = NULL;
  size_t n = 0;
  if (wv_base64_decode(req->arena, b, strcspn(b, " \t"), &dec, &n) || memchr(dec, '\0', n))
    return NULL;
  char *colon = strchr(dec, ':');
  if (!colon)
    return NULL;
  *colon = '\0';
  /* Listed first, then verified: an unlisted account costs no slow hash. */
  return listed(cfg, dec) && wv_secret_account_check(cfg, dec, colon + 1) ? dec : NULL;
}

int wv_ops_access(wv_req_t *req, wv_resp_t *resp) {
  const wv_app_t *app = req->app;
  if (wv_cidr_list_match(&allow, req->client_ip))
    return 0;
  if (basic_account(req, app->cfg))
    return 0;
  bool login = app->cfg->metrics_accounts && *app->cfg->metrics_accounts;
  int rc = wv_resp_api_error(req, resp, login ? 401 : 403,
                             login ? "Authentication required: an account listed in "
                                     "metrics.accounts"
                                   : "This page is restricted to metrics.allow-addresses");
  if (!rc && login)
    rc = wv_resp_header(resp, "WWW-Authenticate", "Basic realm=\"waved\"");
  return rc ? rc : WV_ANSWERED;
}

static int write_jobs(wv_buf_t *b, struct wv_job_engine *jobs) {
  int rc = wv_metrics_family(b, "waved_jobs", "gauge",
                             "Jobs (builds, mirrors, scans) queued or running now, by kind.");
  char name[64];
  int running;
  size_t waiting;
  size_t total = 0;
  for (size_t i = 0; jobs && !rc && wv_job_engine_kind(jobs, i, name, &running, &waiting) == 0;
       i++) {
    rc = wv_buf_printf(b,
                       "waved_jobs{kind=\"%s\",state=\"queued\"} %zu\n"
                       "waved_jobs{kind=\"%s\",state=\"running\"} %d\n",
                       name, waiting, name, running);
    total += waiting;
  }
  rc = rc ? rc
          : wv_metrics_family(b, "waved_job_queue_depth", "gauge",
                              "Jobs waiting for a free slot of their kind, all kinds.");
  return rc ? rc : wv_buf_printf(b, "waved_job_queue_depth %zu\n", total);
}

static int write_limits(wv_buf_t *b, const wv_app_t *app) {
  wv_ratelimit_t *ls[] = {app->build_limit, app->pull_limit, app->auth_limit};
  const char *names[] = {"build", "pull", "auth"};
  int rc = wv_metrics_family(b, "waved_ratelimit_refusals_total", "counter",
                             "Requests refused by a rate limit (429), by limit.");
  for (size_t i = 0; i < 3 && !rc; i++)
    rc = wv_buf_printf(b, "waved_ratelimit_refusals_total{limit=\"%s\"} %llu\n", names[i],
                       (unsigned long long)(ls[i] ? wv_ratelimit_refused(ls[i]) : 0));
  return rc;
}

static int write_storage(wv_buf_t *b, const wv_app_t *app) {
  uint64_t file = 0, used = 0, bytes = 0, files = 0;
  if (app->store)
    wv_store_sizes(app->store, &file, &used);
  wv_cas_usage(app->cfg->storage_path, BLOB_WALK_MS, &bytes, &files);
  wv_bcache_stats_t bc = {0};
  if (app->bcache)
    wv_bcache_stats(app->bcache, &bc);
  return wv_metrics_family(b, "waved_lmdb_file_bytes", "gauge",
                           "Disk space the state store's LMDB file takes.") ||
         wv_buf_printf(b, "waved_lmdb_file_bytes %llu\n", (unsigned long long)file) ||
         wv_metrics_family(b, "waved_lmdb_used_bytes", "gauge",
                           "Bytes of the LMDB pages in use (up to the last page).") ||
         wv_buf_printf(b, "waved_lmdb_used_bytes %llu\n", (unsigned long long)used) ||
         wv_metrics_family(b, "waved_blobstore_bytes", "gauge",
                           "Bytes of the blob store (walked at most once a minute).") ||
         wv_buf_printf(b, "waved_blobstore_bytes %llu\n", (unsigned long long)bytes) ||
         wv_metrics_family(b, "waved_blobstore_blobs", "gauge", "Blobs in the blob store.") ||
         wv_buf_printf(b, "waved_blobstore_blobs %llu\n", (unsigned long long)files) ||
         wv_metrics_family(b, "waved_blobcache_bytes", "gauge",
                           "Bytes the upstream blob cache holds.") ||
         wv_buf_printf(b, "waved_blobcache_bytes %llu\n", (unsigned long long)bc.bytes) ||
         wv_metrics_family(b, "waved_blobcache_blobs", "gauge",
                           "Blobs the upstream blob cache holds.") ||
         wv_buf_printf(b, "waved_blobcache_blobs %llu\n", (unsigned long long)bc.blobs) ||
         wv_metrics_family(b, "waved_blobcache_requests_total", "counter",
                           "Blob-cache lookups, by result.") ||
         wv_buf_printf(b,
                       "waved_blobcache_requests_total{result=\"hit\"} %llu\n"
                       "waved_blobcache_requests_total{result=\"miss\"} %llu\n",
                       (unsigned long long)bc.hits, (unsigned long long)bc.misses) ||
         wv_metrics_family(b, "waved_blobcache_evictions_total", "counter",
                           "Blobs evicted from the blob cache (size, count or idle time).") ||
         wv_buf_printf(b, "waved_blobcache_evictions_total %llu\n", (unsigned long long)bc.evicted);
}

int wv_ops_metrics_handler(wv_req_t *req, wv_resp_t *resp) {
  int rc = wv_ops_access(req, resp);
  if (rc)
    return rc;
  const wv_app_t *app = req->app;
  wv_buf_t b;
  wv_buf_init(&b, METRICS_MAX);
  rc = wv_metrics_write(&b);
  rc = rc ? rc : write_jobs(&b, app->jobs);
  rc = rc ? rc : write_limits(&b, app);
  rc = rc ? rc : write_storage(&b, app);
  if (!rc)
    rc = wv_resp_bytes(req, resp, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
  wv_buf_free(&b);
  return rc;
}

int wv_ops_setup(const wv_config_t *cfg) {
  char why[256];
  if (wv_cidr_list_parse(cfg->metrics_allow_addrs, &allow, why, sizeof why)) {
    wv_error("metrics.allow-addresses: %s", why);
    return WV_EINVAL;
  }
  wv_metrics_enable(cfg->metrics_enabled);
  return 0;
}
