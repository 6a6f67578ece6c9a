/* http/overview.c — the /view overview page (see overview.h). */
#include "http/overview.h"
#include "core/app.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/metrics.h"
#include "core/timefmt.h"
#include "http/html.h"
#include "http/metrics_route.h"
#include "http/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBS_MAX 2048   /* jobs read from the engine */
#define RECENT_MAX 50   /* ended jobs listed */
#define TAIL_BYTES 4096 /* log bytes shown per running job */
#define RUNNING_MAX 20  /* running jobs shown with their log */

static int newest_first(const void *a, const void *b) {
  const wv_job_info_t *x = a, *y = b;
  return x->created_ns < y->created_ns ? 1 : x->created_ns > y->created_ns ? -1 : 0;
}

/* The page of a job, by its kind: "/view/builds/<id>" ...; NULL for other kinds. */
static const char *job_href(wv_arena_t *a, const wv_job_info_t *j) {
  if (!strcmp(j->kind, "build") || !strcmp(j->kind, "multi-build"))
    return wv_arena_sprintf(a, "/view/builds/%s", j->id);
  if (!strcmp(j->kind, "mirror"))
    return wv_arena_sprintf(a, "/view/mirrors/%s", j->id);
  if (!strcmp(j->kind, "scan"))
    return wv_arena_sprintf(a, "/view/scans/%s", j->id);
  return NULL;
}

static int health(wv_buf_t *b, const wv_app_t *app, const wv_job_info_t *jobs, size_t n) {
  size_t running = 0, queued = 0;
  for (size_t i = 0; i < n; i++) {
    running += jobs[i].state == WV_JOB_RUNNING;
    queued += jobs[i].state == WV_JOB_QUEUED;
  }
  char v[6][32];
  snprintf(v[0], sizeof v[0], "%zu", running);
  snprintf(v[1], sizeof v[1], "%zu", queued);
  snprintf(v[2], sizeof v[2], "%llu",
           (unsigned long long)(wv_metrics_sum(WV_METRICS_CONN_OPENED) -
                                wv_metrics_sum(WV_METRICS_CONN_CLOSED)));
  snprintf(v[3], sizeof v[3], "%llu",
           (unsigned long long)(wv_metrics_sum(WV_METRICS_PARKED_IN) -
                                wv_metrics_sum(WV_METRICS_PARKED_OUT)));
  snprintf(v[4], sizeof v[4], "%llu", (unsigned long long)wv_metrics_sum(WV_METRICS_HOT_HIT));
  snprintf(v[5], sizeof v[5], "%llu", (unsigned long long)wv_metrics_sum(WV_METRICS_HOT_MISS));
  int rc = wv_html_h2(b, "Health");
  rc = rc ? rc : wv_html_table_begin(b);
  rc = rc ? rc : wv_html_row_status(b, "Status", "serving", "ok");
  rc = rc ? rc : wv_html_row(b, "Jobs running", v[0]);
  rc = rc ? rc : wv_html_row(b, "Jobs queued", v[1]);
  rc = rc ? rc : wv_html_row(b, "Open connections", v[2]);
  rc = rc ? rc : wv_html_row(b, "Parked pulls", v[3]);
  rc = rc ? rc : wv_html_row(b, "Hot-path hits", v[4]);
  rc = rc ? rc : wv_html_row(b, "Hot-path misses", v[5]);
  rc = rc ? rc : wv_html_row(b, "Storage", app->cfg->storage_path);
  rc = rc ? rc : wv_html_row_link(b, "Prometheus metrics", "/metrics", "/metrics");
  return rc ? rc : wv_html_table_end(b);
}

static int running(wv_buf_t *b, wv_req_t *req, const wv_job_info_t *jobs, size_t n) {
  const wv_app_t *app = req->app;
  int rc = wv_html_h2(b, "Running");
  size_t shown = 0;
  for (size_t i = 0; i < n && !rc && shown < RUNNING_MAX; i++) {
    const wv_job_info_t *j = &jobs[i];
    if (j->state != WV_JOB_RUNNING && j->state != WV_JOB_QUEUED)
      continue;
    shown++;
    rc = wv_html_table_begin(b);
    rc = rc ? rc : wv_html_row_link(b, j->kind, job_href(req->arena, j), j->id);
    rc = rc ? rc
            : wv_html_row_status(b, "State", wv_job_state_name(j->state),
                                 j->state == WV_JOB_RUNNING ? "running" : "");
    rc = rc ? rc : wv_html_table_end(b);
    char *log = NULL;
    size_t len = 0;
    if (!rc && j->state == WV_JOB_RUNNING &&
        wv_job_log(app->jobs, j->id, TAIL_BYTES, &log, &len) == 0)
      rc = wv_html_pre(b, log, len, TAIL_BYTES);
    free(log);
  }
  return rc ? rc : shown ? 0 : wv_html_note(b, "Nothing is running.");
}

static int recent(wv_buf_t *b, wv_req_t *req, const wv_job_info_t *jobs, size_t n) {
  int rc = wv_html_h2(b, "Recent builds, mirrors and scans");
  rc = rc ? rc : wv_html_table_begin(b);
  size_t shown = 0;
  for (size_t i = 0; i < n && !rc && shown < RECENT_MAX; i++) {
    const wv_job_info_t *j = &jobs[i];
    if (j->state != WV_JOB_SUCCEEDED && j->state != WV_JOB_FAILED)
      continue;
    shown++;
    char when[WV_TIME_ISO_STRLEN] = "";
    wv_time_format_iso(j->finished_ns, when, sizeof when);
    const char *label = wv_arena_sprintf(req->arena, "%s %s", j->kind, when);
    const char *text =
        wv_arena_sprintf(req->arena, "%s — %s%s%s", j->id, wv_job_state_name(j->state),
                         j->reason[0] ? ": " : "", j->reason);
    rc = label && text ? wv_html_row_link(b, label, job_href(req->arena, j), text) : WV_ENOMEM;
  }
  rc = rc ? rc : wv_html_table_end(b);
  return rc ? rc : shown ? 0 : wv_html_note(b, "No job has ended since waved started.");
}

int wv_overview_handler(wv_req_t *req, wv_resp_t *resp) {
  int rc = wv_ops_access(req, resp);
  if (rc)
    return rc;
  const wv_app_t *app = req->app;
  wv_job_info_t *jobs = calloc(JOBS_MAX, sizeof *jobs);
  if (!jobs)
    return WV_ENOMEM;
  size_t n = app->jobs ? wv_job_engine_list(app->jobs, jobs, JOBS_MAX) : 0;
  qsort(jobs, n, sizeof *jobs, newest_first);
  bool busy = false;
  for (size_t i = 0; i < n; i++)
    busy |= jobs[i].state == WV_JOB_RUNNING || jobs[i].state == WV_JOB_QUEUED;
  wv_buf_t b;
  wv_buf_init(&b, WV_HTML_PAGE_MAX);
  rc = wv_html_begin(&b, "waved overview");
  rc = rc ? rc : health(&b, app, jobs, n);
  rc = rc ? rc : running(&b, req, jobs, n);
  rc = rc ? rc : recent(&b, req, jobs, n);
  if (!rc && busy)
    rc = wv_html_note(&b, "This page reloads every 2 seconds while a job runs.");
  rc = rc ? rc : wv_html_end(&b);
  free(jobs);
  if (!rc)
    rc = wv_html_send(req, resp, 200, &b);
  /* A running job's log is followed by reloading: the Refresh header, no script. */
  if (!rc && busy)
    rc = wv_resp_header(resp, "Refresh", "2");
  wv_buf_free(&b);
  return rc;
}
