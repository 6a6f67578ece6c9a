/*
 * build/mirror/job.c — a mirror as a job: the job kind and its copy
 * function, the waiter that completes the record, and the read side (the
 * MirrorResult of contract §7.2 and the container status of §3.6).
 *
 * The state of a mirror has one source of truth at a time: the job engine
 * while the job is known to it (it keeps ended jobs for a week), the
 * completed record after that. Readers therefore merge the stored record
 * with wv_job_get; the completion waiter only makes the record stand on its
 * own and sets the shared entry's expiry (wave.mirror.status.duration after
 * a success, wave.mirror.failure.duration after a failure).
 */
#include "build/mirror/mirror.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "registry/copy.h"
#include "registry/ref.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>

#define REASON_FAILED "Container mirror did not complete successfully"
#define MAX_RECORD (64u * 1024)
#define RECOVER_MAX 10000 /* pending records looked at on start */

/* ---- the record --------------------------------------------------------------- */

/* Loads and parses record id (caller's reference in *rec). */
static int record_load(const wv_app_t *app, const char *id, json_object **rec) {
  return wv_store_get_json(app->store, WV_DB_MIRRORS, id, MAX_RECORD, 8, rec, NULL);
}

static const char *str_of(json_object *o, const char *key) {
  const char *s = NULL;
  return wv_json_get_str(o, key, &s) == 0 ? s : NULL;
}

/* The state of a mirror, merged from its job and its record. */
typedef struct {
  bool done, succeeded, has_exit;
  int exit_code;
  int64_t created_ns, duration_ns;
  char reason[WV_JOB_REASON_MAX];
} mstate_t;

static bool timed_out(const char *reason) { return strstr(reason, " timed out after ") != NULL; }

static void state_of(const wv_app_t *app, const char *id, json_object *rec, int64_t now_ns,
                     mstate_t *s) {
  memset(s, 0, sizeof *s);
  const char *ct = str_of(rec, "creationTime");
  if (!ct || wv_time_parse_iso(ct, &s->created_ns))
    s->created_ns = now_ns;
  wv_job_info_t info;
  if (app->jobs && wv_job_get(app->jobs, id, &info) == 0) {
    s->done = info.state == WV_JOB_SUCCEEDED || info.state == WV_JOB_FAILED;
    s->succeeded = info.state == WV_JOB_SUCCEEDED;
    snprintf(s->reason, sizeof s->reason, "%s", info.reason);
    int64_t end = s->done && info.finished_ns ? info.finished_ns : now_ns;
    s->duration_ns = end > s->created_ns ? end - s->created_ns : 0;
    s->has_exit = s->done && (s->succeeded || !timed_out(info.reason));
    s->exit_code = s->succeeded ? 0 : 1;
    return;
  }
  /* The job is gone: the completed record says it all. */
  const char *st = str_of(rec, "status"), *why = str_of(rec, "reason");
  int64_t code = 0;
  double secs = 0;
  s->done = true;
  s->has_exit = wv_json_get_int64(rec, "exitCode", &code) == 0;
  s->exit_code = (int)code;
  s->succeeded = st && strcmp(st, "COMPLETED") == 0 && s->has_exit && code == 0;
  if (wv_json_get_double(rec, "duration", &secs) == 0)
    s->duration_ns = (int64_t)(secs * 1e9);
  snprintf(s->reason, sizeof s->reason, "%s",
           why            ? why
           : s->succeeded ? ""
                          : "the mirror job record is no longer available");
}

static int add_duration(json_object *o, const char *key, int64_t ns) {
  char d[WV_DURATION_STRLEN];
  int rc = wv_duration_format_wave(ns, d, sizeof d);
  return rc ? rc : wv_json_add_number_text(o, key, d);
}

/* Writes the state into a MirrorResult object (status, duration, exitCode, reason). */
static int apply_state(json_object *rec, const mstate_t *s) {
  int rc = wv_json_add_str(rec, "status", s->done ? "COMPLETED" : "PENDING");
  if (!rc && s->done)
    rc = add_duration(rec, "duration", s->duration_ns);
  if (!rc && s->has_exit)
    rc = wv_json_add_int(rec, "exitCode", s->exit_code);
  if (!rc && s->done && !s->succeeded && s->reason[0])
    rc = wv_json_add_str(rec, "reason", s->reason);
  return rc;
}

/* ---- completion ---------------------------------------------------------------- */

static void put_async(const wv_app_t *app, const char *key, const char *val, int64_t expires_ms) {
  wv_store_op_t op = {.kind = WV_STORE_PUT,
                      .db = WV_DB_MIRRORS,
                      .key = key,
                      .val = val,
                      .val_len = strlen(val),
                      .expires_ms = expires_ms};
  int rc = wv_store_submit(app->store, &op, NULL, NULL);
  if (rc)
    wv_warn("mirror: cannot update %s: %s", key, wv_strerror(rc));
}

/* Sets the expiry of the shared entry of target when it still names mirror id. */
static void complete_entry(const wv_app_t *app, const char *id, const char *target,
                           const char *digest, bool ok, int64_t now_ms) {
  char key[WV_STORE_KEY_MAX + 1], *val = NULL;
  size_t len = 0;
  snprintf(key, sizeof key, "target:%s", target);
  if (wv_store_get(app->store, WV_DB_MIRRORS, key, &val, &len, NULL) == 0 && strstr(val, id)) {
    int64_t ttl = ok ? app->cfg->mirror_status_ttl_ms : app->cfg->mirror_failure_ttl_ms;
    put_async(app, key, val, now_ms + ttl);
  }
  free(val);
  if (ok && digest) {
    snprintf(key, sizeof key, "ok:%s@%s", target, digest);
    put_async(app, key, id, now_ms + app->cfg->record_ttl_ms);
  }
}

/* Runs on the job thread: must not block, so every write is queued. */
static void on_done(void *arg, const wv_job_info_t *info) {
  const wv_app_t *app = arg;
  json_object *rec = NULL;
  if (info->stopping || record_load(app, info->id, &rec))
    return;
  mstate_t s;
  int64_t now_ns = wv_now_ns();
  state_of(app, info->id, rec, now_ns, &s);
  const char *target = str_of(rec, "targetImage"), *digest = str_of(rec, "digest");
  if (s.done && !apply_state(rec, &s)) {
    const char *text = wv_json_compact(rec);
    if (text)
      put_async(app, info->id, text, now_ns / WV_NS_PER_MS + app->cfg->record_ttl_ms);
    if (target)
      complete_entry(app, info->id, target, digest, s.succeeded, now_ns / WV_NS_PER_MS);
    wv_info("mirror %s: %s%s%s", info->id,
            s.succeeded ? "succeeded" : "failed: ", s.succeeded ? "" : s.reason, "");
  }
  json_object_put(rec);
}

int wv_mirror_watch(const wv_app_t *app, const char *id) {
  return wv_job_on_done(app->jobs, id, on_done, (void *)app);
}

typedef struct {
  char (*ids)[WV_JOB_ID_MAX + 1];
  size_t n;
} pending_t;

static int collect_pending(void *arg, const char *key, size_t klen, const void *val, size_t len,
                           int64_t expires_ms) {
  pending_t *p = arg;
  if (p->n >= RECOVER_MAX || klen > WV_JOB_ID_MAX)
    return 0;
  if (memmem(val, len, "\"status\":\"PENDING\"", 18)) {
    memcpy(p->ids[p->n], key, klen);
    p->ids[p->n++][klen] = '\0';
  }
  return 0;
}

int wv_mirror_recover(const wv_app_t *app) {
  pending_t p = {.ids = calloc(RECOVER_MAX, sizeof *p.ids)};
  if (!p.ids)
    return WV_ENOMEM;
  int rc = wv_store_scan(app->store, WV_DB_MIRRORS, WV_MIRROR_ID_PREFIX, collect_pending, &p);
  for (size_t i = 0; !rc && i < p.n; i++) {
    int w = wv_mirror_watch(app, p.ids[i]);
    if (w)
      wv_warn("mirror %s: cannot watch its job: %s", p.ids[i], wv_strerror(w));
  }
  if (p.n)
    wv_info("mirror: watching %zu mirrors left pending by the last run", p.n);
  free(p.ids);
  return rc;
}

/* ---- the job --------------------------------------------------------------------- */

static void log_line(void *arg, const char *line) { wv_job_ctx_logf(arg, "%s", line); }

static bool is_cancelled(void *arg) { return wv_job_ctx_cancelled(arg); }

static int parse_images(wv_arena_t *a, json_object *rec, wv_ref_t *src, wv_ref_t *dst) {
  const char *s = str_of(rec, "sourceImage"), *t = str_of(rec, "targetImage");
  if (!s || !t || wv_ref_parse(a, s, src, NULL) || wv_ref_parse(a, t, dst, NULL))
    return WV_ESTORE;
  return 0;
}

/* The job function: copies the record's source to its target. */
static int copy_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *id) {
  const wv_app_t *app = fn_arg;
  const wv_config_t *cfg = app->cfg;
  json_object *rec = NULL;
  wv_arena_t *a = wv_arena_new(4096);
  wv_ref_t src, dst;
  char err[WV_JOB_REASON_MAX - 64] = "";
  int rc = a ? record_load(app, id, &rec) : WV_ENOMEM;
  rc = rc ? rc : parse_images(a, rec, &src, &dst);
  if (rc) {
    wv_job_ctx_fail(ctx, "Container mirror failed: cannot read mirror record %s: %s", id,
                    wv_strerror(rc));
    goto out;
  }
  wv_copy_opts_t o = {
      .src_registry = src.registry,
      .src_repo = src.path,
      .src_ref = src.reference,
      .dst_registry = dst.registry,
      .dst_repo = dst.path,
      .dst_ref = dst.reference,
      .chunk_size = (size_t)cfg->mirror_chunk_size,
      .attempts = 1 + cfg->mirror_retry_attempts,
      .connect_timeout_ms = cfg->hc_connect_timeout_ms,
      .request_timeout_ms = cfg->hc_read_timeout_ms * 2,
      .idle_timeout_ms = cfg->hc_idle_timeout_ms,
      .log = log_line,
      .cancelled = is_cancelled,
      .cb_arg = ctx,
      /* The request's account, checked when it was made (build/mirror/request.c). */
      .who = str_of(rec, "userName")};
  wv_copy_stats_t st;
  rc = wv_copy_image(app, &o, &st, err, sizeof err);
  if (rc && !wv_job_ctx_cancelled(ctx))
    wv_job_ctx_fail(ctx, "Container mirror failed: %s", err);
  const char *want = str_of(rec, "digest");
  if (!rc && want && strcmp(want, st.digest) != 0)
    wv_job_ctx_logf(ctx, "note: the source changed since the request: copied %s, asked for %s",
                    st.digest, want);
out:
  json_object_put(rec);
  wv_arena_free(a);
  return rc;
}

int wv_mirror_register(struct wv_job_engine *e, const wv_app_t *app) {
  const wv_config_t *cfg = app->cfg;
  wv_job_kind_t kind = {.name = WV_MIRROR_KIND,
                        .label = "Container mirror",
                        .max_running = cfg->mirror_max_concurrent,
                        .rerunnable = true, /* a copy can start over: what is there is skipped */
                        .deadline_ms = cfg->mirror_max_duration_ms};
  int rc = wv_job_register_kind(e, &kind);
  return rc ? rc : wv_job_register_fn(e, WV_MIRROR_COPY_FN, copy_fn, (void *)app);
}

/* ---- the read side --------------------------------------------------------------- */

int wv_mirror_log(const wv_app_t *app, const char *id, size_t max, char **log, size_t *len) {
  return wv_job_log(app->jobs, id, max, log, len);
}

int wv_mirror_result(const wv_app_t *app, const char *id, json_object **out) {
  json_object *rec = NULL;
  *out = NULL;
  int rc = record_load(app, id, &rec);
  if (rc)
    return rc;
  mstate_t s;
  state_of(app, id, rec, wv_now_ns(), &s);
  rc = apply_state(rec, &s);
  char *log = NULL;
  size_t len = 0;
  if (!rc && wv_mirror_log(app, id, WV_MIRROR_LOG_MAX, &log, &len) == 0)
    rc = wv_json_add_str(rec, "logs", log);
  free(log);
  if (rc) {
    json_object_put(rec);
    return rc;
  }
  *out = rec;
  return 0;
}

static int add_instant(json_object *o, const char *key, int64_t ns) {
  char t[WV_TIME_ISO_STRLEN];
  int rc = wv_time_format_iso(ns, t, sizeof t);
  return rc ? rc : wv_json_add_str(o, key, t);
}

/* Status of a mirror that ran (or runs): from its record and job. */
static int status_of_mirror(const wv_app_t *app, const wv_token_rec_t *t, int64_t now_ns,
                            json_object *o) {
  json_object *rec = NULL;
  mstate_t s;
  int rc = record_load(app, t->build_id, &rec);
  if (rc == WV_ENOTFOUND) { /* the record expired: report what the token knows */
    memset(&s, 0, sizeof s);
    s.done = s.succeeded = true;
    s.created_ns = t->created_ms * WV_NS_PER_MS;
  } else if (rc) {
    return rc;
  } else {
    state_of(app, t->build_id, rec, now_ns, &s);
    json_object_put(rec);
  }
  rc = wv_json_add_str(o, "status", s.done ? "DONE" : "BUILDING");
  rc = rc ? rc : wv_json_add_str(o, "mirrorId", t->build_id);
  if (!rc && s.done)
    rc = wv_json_add_bool(o, "succeeded", s.succeeded);
  if (!rc && s.done && !s.succeeded) {
    rc = wv_json_add_str(o, "reason", REASON_FAILED);
    const char *uri = NULL;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s/view/mirrors/%s", app->cfg->server_url, t->build_id);
    uri = buf;
    rc = rc ? rc : wv_json_add_str(o, "detailsUri", uri);
  }
  rc = rc ? rc : add_instant(o, "creationTime", s.created_ns);
  int64_t dur = s.done ? s.duration_ns : now_ns - s.created_ns;
  return rc ? rc : add_duration(o, "duration", dur > 0 ? dur : 0);
}

json_object *wv_mirror_status(const wv_app_t *app, const wv_token_rec_t *t, int64_t now_ns) {
  json_object *o = json_object_new_object();
  int rc = o ? wv_json_add_str(o, "id", t->token) : WV_ENOMEM;
  if (!rc && t->build_id) {
    rc = status_of_mirror(app, t, now_ns, o);
  } else if (!rc) { /* cached: the target already held the image */
    int64_t created = t->created_ms * WV_NS_PER_MS;
    rc = wv_json_add_str(o, "status", "DONE");
    rc = rc ? rc : wv_json_add_bool(o, "succeeded", true);
    rc = rc ? rc : add_instant(o, "creationTime", created);
    rc = rc ? rc : add_duration(o, "duration", now_ns > created ? now_ns - created : 0);
  }
  return wv_json_finish(o, rc);
}

bool wv_mirror_id_valid(const char *id) {
  size_t n = id ? strlen(id) : 0, p = sizeof WV_MIRROR_ID_PREFIX - 1;
  if ((n != p + 12 && n != p + 14) || strncmp(id, WV_MIRROR_ID_PREFIX, p) != 0)
    return false;
  for (size_t i = p; i < p + 12; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return false;
  return n == p + 12 || strcmp(id + p + 12, "_0") == 0;
}
