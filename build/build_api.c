/*
 * build/build_api.c — build records, build status, logs, condalock and the
 * container status of builds (see build_api.h); their routes are in
 * build/routes.c.
 */
#include "build/build_api.h"
#include "build/builder.h"
#include "core/ansi.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "storage/embedded.h"
#include "storage/store.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 128
#define LOG_MAX (16u << 20) /* bytes of log an endpoint serves (the job keeps no more) */
#define RECORD_MAX (4u << 20)
#define MSG_FAILED "Container build did not complete successfully"

/* ---- the record ------------------------------------------------------------------- */

typedef struct {
  json_object *rec; /* the stored record (our reference), NULL when unknown */
  int64_t expires_ms;
  wv_job_info_t job;
  bool have_job;
} build_t;

static void build_free(build_t *b) { json_object_put(b->rec); }

/* The digest of the finished build: its embedded tag, or buildah's digest file. */
static const char *result_digest(const wv_app_t *app, wv_arena_t *a, const char *id,
                                 const char *target) {
  static const char *const repos[] = {WV_EMBEDDED_REPO, WV_EMBEDDED_FREEZE_REPO};
  char *d = wv_arena_alloc(a, WV_EMBEDDED_DIGEST_LEN);
  const char *auth = wv_config_authority(app->cfg);
  size_t alen = auth ? strlen(auth) : 0;
  if (!d)
    return NULL;
  if (strncmp(target, "oras://", 7) == 0) /* a Singularity target */
    target += 7;
  for (size_t i = 0; auth && i < sizeof repos / sizeof repos[0]; i++) {
    size_t rlen = strlen(repos[i]);
    if (strncmp(target, auth, alen) != 0 || target[alen] != '/' ||
        strncmp(target + alen + 1, repos[i], rlen) != 0 || target[alen + 1 + rlen] != ':')
      continue;
    char *body = NULL;
    size_t len;
    const char *tag = target + alen + 2 + rlen;
    int rc = wv_embedded_get_manifest(app->store, repos[i], tag, &body, &len, NULL, d);
    free(body);
    return rc ? NULL : d;
  }
  const char *wd = wv_build_workdir(a, app->cfg, id);
  return wd && wv_builder_result_digest(wd, d, WV_EMBEDDED_DIGEST_LEN) == 0 ? d : NULL;
}

int wv_build_record_digest(const wv_app_t *app, const char *id, const char *digest) {
  int64_t expires = 0;
  json_object *rec = NULL;
  int rc = wv_store_get_json(app->store, WV_DB_BUILDS, id, RECORD_MAX, 0, &rec, &expires);
  rc = rc ? rc : wv_json_add_str(rec, "digest", digest);
  const char *s = rc ? NULL : wv_json_compact(rec);
  if (s)
    rc = wv_store_put(app->store, WV_DB_BUILDS, id, s, strlen(s), expires);
  json_object_put(rec);
  return rc;
}

static int64_t ended_ns(const wv_job_info_t *j) {
  return j->finished_ns > j->created_ns ? j->finished_ns - j->created_ns : 0;
}

/* Adds the end of the build from its job and writes the record back. */
static void finish(const wv_app_t *app, wv_arena_t *a, const char *id, build_t *b) {
  const wv_job_info_t *j = &b->job;
  bool ok = j->state == WV_JOB_SUCCEEDED;
  const char *target = NULL;
  char dur[WV_DURATION_STRLEN];
  wv_json_get_str(b->rec, "targetImage", &target);
  int rc = wv_duration_format_wave(ended_ns(j), dur, sizeof dur);
  rc = rc ? rc : wv_json_add_number_text(b->rec, "duration", dur);
  rc = rc ? rc : wv_json_add_int(b->rec, "exitStatus", ok ? 0 : j->exit_status);
  rc = rc ? rc : wv_json_add_bool(b->rec, "succeeded", ok);
  if (!rc && ok && target)
    rc = wv_json_add_str(b->rec, "digest", result_digest(app, a, id, target));
  const char *s = rc ? NULL : wv_json_compact(b->rec);
  if (s && (rc = wv_store_put(app->store, WV_DB_BUILDS, id, s, strlen(s), b->expires_ms)) != 0)
    wv_warn("build %s: record not finished: %s", id, wv_strerror(rc));
}

/* Loads record and job. 0 or WV_ENOTFOUND (neither exists), or a store error. */
static int build_load(const wv_app_t *app, wv_arena_t *a, const char *id, build_t *b) {
  memset(b, 0, sizeof *b);
  b->have_job = app->jobs && wv_job_get(app->jobs, id, &b->job) == 0;
  int rc = wv_store_get_json(app->store, WV_DB_BUILDS, id, RECORD_MAX, 0, &b->rec, &b->expires_ms);
  if (rc)
    return rc == WV_ENOTFOUND && b->have_job ? 0 : rc;
  bool ended = b->have_job && (b->job.state == WV_JOB_SUCCEEDED || b->job.state == WV_JOB_FAILED);
  if (ended && !json_object_object_get_ex(b->rec, "duration", NULL))
    finish(app, a, id, b);
  return 0;
}

static bool build_done(const build_t *b, bool *ok) {
  json_object *v = NULL;
  if (b->rec && json_object_object_get_ex(b->rec, "succeeded", &v)) {
    *ok = json_object_get_boolean(v);
    return true;
  }
  if (b->have_job && (b->job.state == WV_JOB_SUCCEEDED || b->job.state == WV_JOB_FAILED)) {
    *ok = b->job.state == WV_JOB_SUCCEEDED;
    return true;
  }
  return false;
}

/* ---- container status (contract §3.6) -------------------------------------------------------- */

static int add_instant(json_object *o, const char *key, int64_t ns) {
  char t[WV_TIME_ISO_STRLEN];
  int rc = wv_time_format_iso(ns, t, sizeof t);
  return rc ? rc : wv_json_add_str(o, key, t);
}

static int add_duration(json_object *o, int64_t ns) {
  char d[WV_DURATION_STRLEN];
  int rc = wv_duration_format_wave(ns, d, sizeof d);
  return rc ? rc : wv_json_add_number_text(o, "duration", d);
}

json_object *wv_build_container_status(const wv_app_t *app, wv_arena_t *a, const wv_token_rec_t *t,
                                       int64_t now_ns) {
  json_object *o = json_object_new_object();
  build_t b;
  bool ok = true;
  int rc = o ? 0 : WV_ENOMEM;
  int lrc = t->build_id ? build_load(app, a, t->build_id, &b) : WV_ENOTFOUND;
  if (lrc)
    memset(&b, 0, sizeof b);
  bool done = lrc || build_done(&b, &ok); /* no build behind it: a cached image, usable */
  int64_t created = b.have_job ? b.job.created_ns : t->created_ms * WV_NS_PER_MS;
  rc = rc ? rc : wv_json_add_str(o, "id", t->token);
  rc = rc ? rc : wv_json_add_str(o, "status", done ? "DONE" : "BUILDING");
  rc = rc ? rc : wv_json_add_str(o, "buildId", lrc ? NULL : t->build_id);
  if (!rc && done)
    rc = wv_json_add_bool(o, "succeeded", ok);
  if (!rc && done && !ok) {
    rc = wv_json_add_str(o, "reason", MSG_FAILED);
    rc = rc ? rc
            : wv_json_add_str(
                  o, "detailsUri",
                  wv_arena_sprintf(a, "%s/view/builds/%s", app->cfg->server_url, t->build_id));
  }
  rc = rc ? rc : add_instant(o, "creationTime", created);
  if (!rc && done)
    rc = add_duration(o, b.have_job ? ended_ns(&b.job) : now_ns - created);
  build_free(&b);
  return wv_json_finish(o, rc);
}

/* ---- what the routes serve (build/routes.c) ----------------------------------------------- */

/* Build ids are bd-<16 hex>_<n> (older forms without bd-): [A-Za-z0-9._-]. */
bool wv_build_id_valid(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
      return false;
  return true;
}

int wv_build_record_load(const wv_app_t *app, wv_arena_t *a, const char *id, json_object **rec,
                         wv_build_state_t *state) {
  build_t b;
  bool ok = false;
  *rec = NULL;
  int rc = build_load(app, a, id, &b);
  if (!rc && !b.rec)
    rc = WV_ENOTFOUND; /* a job without a record: nothing to show */
  if (rc)
    return rc;
  *state = !build_done(&b, &ok) ? WV_BUILD_RUNNING : ok ? WV_BUILD_SUCCEEDED : WV_BUILD_FAILED;
  *rec = b.rec;
  return 0;
}

int wv_build_status_load(const wv_app_t *app, wv_arena_t *a, const char *id, json_object **out) {
  build_t b;
  const char *start = NULL;
  *out = NULL;
  int rc = build_load(app, a, id, &b);
  if (!rc && !b.rec)
    rc = WV_ENOTFOUND; /* a job without a record: nothing to show */
  if (rc)
    return rc;
  bool ok = false, done = build_done(&b, &ok);
  json_object *o = json_object_new_object(), *dur = NULL;
  wv_json_get_str(b.rec, "startTime", &start);
  rc = o ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "id", id);
  rc = rc ? rc : wv_json_add_str(o, "status", done ? "COMPLETED" : "PENDING");
  rc = rc ? rc : wv_json_add_str(o, "startTime", start);
  if (!rc && done && json_object_object_get_ex(b.rec, "duration", &dur))
    rc = json_object_object_add(o, "duration", json_object_get(dur)) ? WV_ENOMEM : 0;
  else if (!rc && done && b.have_job)
    rc = add_duration(o, ended_ns(&b.job));
  if (!rc && done)
    rc = wv_json_add_bool(o, "succeeded", ok);
  build_free(&b);
  if (rc) {
    json_object_put(o);
    return rc;
  }
  *out = o;
  return 0;
}

int wv_build_log(const wv_app_t *app, wv_arena_t *a, const char *id, char **out, size_t *len) {
  char *log = NULL;
  int rc = app->jobs ? wv_job_log(app->jobs, id, LOG_MAX, &log, len) : WV_ENOTFOUND;
  if (rc)
    return rc;
  *len = wv_ansi_strip(log, *len);
  /* A build failed by a restart never wrote why: say it at the end. */
  wv_job_info_t ji;
  bool say = wv_job_get(app->jobs, id, &ji) == 0 && ji.state == WV_JOB_FAILED && ji.reason[0] &&
             !strstr(log, ji.reason);
  *out = say ? wv_arena_sprintf(a, "%s[waved: %s FAILED: %s]\n", log, id, ji.reason)
             : wv_arena_strndup(a, log, *len);
  free(log);
  if (*out && say)
    *len = strlen(*out);
  return *out ? 0 : WV_ENOMEM;
}

/* ---- the conda lock in a log ---------------------------------------------------------- */

/* The line holding marker: its start and the start of the next line. */
static bool find_line(char *s, size_t len, const char *marker, char **bol, char **next) {
  char *m = strstr(s, marker);
  if (!m || (size_t)(m - s) >= len)
    return false;
  *bol = m;
  while (*bol > s && (*bol)[-1] != '\n')
    (*bol)--;
  char *nl = strchr(m, '\n');
  *next = nl ? nl + 1 : s + len;
  return true;
}

size_t wv_build_log_without_lock(char *s, size_t len) {
  char *a, *a_next, *b, *b_next;
  if (!find_line(s, len, WV_BUILD_LOCK_START, &a, &a_next) ||
      !find_line(a_next, len - (size_t)(a_next - s), WV_BUILD_LOCK_END, &b, &b_next))
    return len;
  size_t tail = len - (size_t)(b_next - s);
  memmove(a, b_next, tail);
  len = (size_t)(a - s) + tail;
  s[len] = '\0';
  return len;
}

/* Skips a buildkit progress prefix "#<n> <seconds> " at p. */
static const char *skip_prefix(const char *p) {
  const char *q = p;
  if (*q++ != '#' || !isdigit((unsigned char)*q))
    return p;
  while (isdigit((unsigned char)*q))
    q++;
  if (*q++ != ' ' || !isdigit((unsigned char)*q))
    return p;
  while (isdigit((unsigned char)*q) || *q == '.')
    q++;
  return *q == ' ' ? q + 1 : p;
}

size_t wv_build_log_lock(char *s, size_t len) {
  char *a, *a_next, *b, *b_next;
  if (!find_line(s, len, WV_BUILD_LOCK_START, &a, &a_next) ||
      !find_line(a_next, len - (size_t)(a_next - s), WV_BUILD_LOCK_END, &b, &b_next))
    return (size_t)-1;
  size_t w = 0;
  for (const char *p = a_next; p < b;) {
    const char *nl = memchr(p, '\n', (size_t)(b - p));
    const char *end = nl ? nl + 1 : b, *q = skip_prefix(p);
    memmove(s + w, q, (size_t)(end - q));
    w += (size_t)(end - q);
    p = end;
  }
  s[w] = '\0';
  return w;
}
