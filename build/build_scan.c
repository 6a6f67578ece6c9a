/*
 * build/build_scan.c — the scan of a built (or frozen) image (contract §6.1 step
 * 5, §8.1; docs/scan.md "For builds and mirrors"). The scan id is reserved
 * at request time, from the target image name, so the response, the token
 * and the records can name it before the build runs. Then:
 *
 *   - a new build carries a last job step, "build-scan", that starts the
 *     scan once the push succeeded (a step is durable: it also runs for a
 *     build re-run after a restart);
 *   - a new build that fails abandons the scan (a wv_job_on_done waiter; it
 *     only touches the store, so it may run on the engine's threads);
 *   - an image that is there already (cached) starts the scan at once;
 *   - a cached failure abandons a scan this request reserved.
 *
 * Mirrors (build/mirror/request.c) use the same pieces with their own step
 * ("mirror-scan"). Multi-platform builds are not scanned here (see
 * docs/compatibility.md).
 */
#include "build/build_int.h"
#include "core/err.h"
#include "core/log.h"
#include "scan/scan.h"

#include <stdlib.h>
#include <string.h>

static const char *scan_mode(const wv_config_t *cfg, const wv_creq_t *r) {
  if (r->scan_mode)
    return strcmp(r->scan_mode, "none") == 0 ? NULL : r->scan_mode;
  return cfg->scan_enabled ? "async" : NULL; /* builds scan by default when scanning is on */
}

int wv__build_scan_reserve(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                           const wv_creq_plan_t *plan, wv_binput_t *in, bool *is_new) {
  *is_new = false;
  const char *mode = scan_mode(app->cfg, r);
  if (!mode || !app->cfg->scan_enabled || r->dry_run || plan->plat.n > 1)
    return 0;
  char *id = wv_arena_alloc(a, WV_SCAN_ID_MAX + 1);
  int rc = id ? wv_scan_reserve_image(app, in->target, NULL, in->embedded, in->platform, id, is_new)
              : WV_ENOMEM;
  if (rc)
    return rc;
  in->scan_id = id;
  in->scan_mode = mode;
  return 0;
}

typedef struct {
  const wv_app_t *app;
  char id[WV_SCAN_ID_MAX + 1];
} waiter_t;

static void build_done_cb(void *arg, const wv_job_info_t *info) {
  waiter_t *w = arg;
  if (info->state == WV_JOB_FAILED && !info->stopping)
    wv_scan_abandon(w->app, w->id, "The container build failed");
  free(w);
}

void wv__build_scan_outcome(const wv_app_t *app, const char *scan_id, int origin, bool is_new,
                            const char *new_job, bool usable, bool failed) {
  if (!scan_id)
    return;
  if (new_job) {
    waiter_t *w = calloc(1, sizeof *w);
    if (w) {
      w->app = app;
      snprintf(w->id, sizeof w->id, "%s", scan_id);
    }
    if (!w || wv_job_on_done(app->jobs, new_job, build_done_cb, w) != 0) {
      free(w);
      wv_warn("job %s: scan %s will not be abandoned if it fails", new_job, scan_id);
    }
  } else if (usable) {
    if (wv_scan_start(app, scan_id, (wv_scan_origin_t)origin, NULL) != 0)
      wv_warn("scan %s could not start", scan_id);
  } else if (failed && is_new) {
    wv_scan_abandon(app, scan_id, "The container build failed");
  }
}

void wv__build_scan_after(const wv_app_t *app, const wv_binput_t *in, bool is_new,
                          const char *new_job, bool usable, bool failed) {
  wv__build_scan_outcome(app, in->scan_id, WV_SCAN_FOR_BUILD, is_new, new_job, usable, failed);
}

void wv__build_scan_abandon(const wv_app_t *app, const wv_binput_t *in, bool is_new) {
  if (in->scan_id && is_new)
    wv_scan_abandon(app, in->scan_id, "The container build could not be started");
}

static int start_scan(wv_job_ctx_t *ctx, const wv_app_t *app, wv_scan_origin_t origin,
                      const char *id) {
  int rc = id ? wv_scan_start(app, id, origin, wv_job_ctx_id(ctx)) : 0;
  if (rc)
    wv_job_ctx_logf(ctx, "scan %s could not start: %s", id, wv_strerror(rc));
  else if (id)
    wv_job_ctx_logf(ctx, "scan %s started", id);
  return 0; /* the image is pushed: the build succeeded whatever the scan does */
}

static int build_scan_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *id) {
  return start_scan(ctx, fn_arg, WV_SCAN_FOR_BUILD, id);
}

static int mirror_scan_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *id) {
  return start_scan(ctx, fn_arg, WV_SCAN_FOR_MIRROR, id);
}

bool wv__build_scan_step(const wv_binput_t *in, wv_job_step_t *step) {
  if (!in->scan_id)
    return false;
  *step = (wv_job_step_t){.type = WV_JOB_STEP_FN,
                          .name = "scan",
                          .fn = WV_BUILD_SCAN_FN,
                          .arg = in->scan_id,
                          .may_fail = true};
  return true;
}

int wv__build_scan_register(wv_job_engine_t *e, const wv_app_t *app) {
  int rc = wv_job_register_fn(e, WV_BUILD_SCAN_FN, build_scan_fn, (void *)app);
  return rc ? rc : wv_job_register_fn(e, WV_MIRROR_SCAN_FN, mirror_scan_fn, (void *)app);
}
