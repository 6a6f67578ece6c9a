/*
 * core/job/jobrec.c — job records as JSON (the durable form of a job, see
 * job_int.h). A record carries everything needed to run the job again:
 *
 *   {"id":"bd-…_1","kind":"build","state":"RUNNING","created":…,"started":…,
 *    "finished":0,"exit":-1,"reason":"","workdir":"/ws/bd-…_1",
 *    "deadline_ms":900000,"memory_max":3774873600,
 *    "steps":[{"type":"cmd","name":"build","argv":[…],"env":[…],"cwd":…},
 *             {"type":"fn","name":"import","fn":"oci-import","arg":"…"}]}
 */
#include "core/err.h"
#include "core/job/job_int.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {"QUEUED", "RUNNING", "SUCCEEDED", "FAILED"};

const char *wv_job_state_name(wv_job_state_t s) {
  return (unsigned)s < 4 ? state_names[s] : "UNKNOWN";
}

bool wv__jobrec_id_valid(const char *id) {
  size_t n = id ? strlen(id) : 0;
  if (n == 0 || n > WV_JOB_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return id[0] != '.';
}

static void strv_free(char **v) {
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}

void wv__jobrec_free_job(job_t *j) {
  if (!j)
    return;
  for (size_t i = 0; i < j->nsteps; i++) {
    jstep_t *s = &j->steps[i];
    free(s->name), free(s->cwd), free(s->fn), free(s->arg);
    strv_free(s->argv);
    strv_free(s->env);
  }
  free(j->steps);
  free(j->workdir);
  free(j);
}

/* Copies a NULL-terminated vector; *out stays NULL for NULL. */
static int strv_copy(const char *const *v, char ***out) {
  size_t n = 0;
  *out = NULL;
  if (!v)
    return 0;
  while (v[n])
    if (++n > WV_JOB_ARGS_MAX)
      return WV_EINVAL;
  char **c = calloc(n + 1, sizeof *c);
  if (!c)
    return WV_ENOMEM;
  for (size_t i = 0; i < n; i++)
    if (!(c[i] = strdup(v[i]))) {
      strv_free(c);
      return WV_ENOMEM;
    }
  *out = c;
  return 0;
}

static int dup_opt(const char *s, char **out) {
  *out = s ? strdup(s) : NULL;
  return s && !*out ? WV_ENOMEM : 0;
}

static int copy_step(jstep_t *d, const wv_job_step_t *s) {
  int rc;
  d->type = s->type;
  d->may_fail = s->may_fail;
  d->ready = s->ready;
  if (s->type == WV_JOB_STEP_CMD) {
    if (!s->argv || !s->argv[0] || !*s->argv[0])
      return WV_EINVAL;
    if ((rc = strv_copy(s->argv, &d->argv)) || (rc = strv_copy(s->env, &d->env)) ||
        (rc = dup_opt(s->cwd, &d->cwd)))
      return rc;
  } else if (s->type == WV_JOB_STEP_FN) {
    if (!s->fn || !*s->fn)
      return WV_EINVAL;
    if ((rc = dup_opt(s->fn, &d->fn)) || (rc = dup_opt(s->arg, &d->arg)))
      return rc;
  } else {
    return WV_EINVAL;
  }
  const char *name = s->name ? s->name : s->type == WV_JOB_STEP_CMD ? s->argv[0] : s->fn;
  return dup_opt(name, &d->name);
}

int wv__jobrec_copy_steps(job_t *j, const wv_job_step_t *steps, size_t n) {
  if (!steps || n == 0 || n > WV_JOB_STEPS_MAX)
    return WV_EINVAL;
  if (!(j->steps = calloc(n, sizeof *j->steps)))
    return WV_ENOMEM;
  j->nsteps = n;
  bool after_ready = false;
  for (size_t i = 0; i < n; i++) {
    int rc = copy_step(&j->steps[i], &steps[i]);
    if (rc)
      return rc; /* the caller frees j, partial steps included */
    if (after_ready && (steps[i].ready || !steps[i].may_fail))
      return WV_EINVAL; /* one ready step; only tidy-up (may_fail) steps after it */
    after_ready = after_ready || steps[i].ready;
  }
  return 0;
}

static json_object *strv_json(char **v) {
  json_object *a = json_object_new_array();
  for (size_t i = 0; a && v && v[i]; i++)
    json_object_array_add(a, json_object_new_string(v[i]));
  return a;
}

static json_object *step_json(const jstep_t *s) {
  json_object *o = json_object_new_object();
  if (!o)
    return NULL;
  int rc = wv_json_add_str(o, "type", s->type == WV_JOB_STEP_CMD ? "cmd" : "fn");
  rc = rc ? rc : wv_json_add_str(o, "name", s->name);
  if (s->may_fail)
    rc = rc ? rc : wv_json_add_bool(o, "may_fail", true);
  if (s->ready)
    rc = rc ? rc : wv_json_add_bool(o, "ready", true);
  if (s->type == WV_JOB_STEP_CMD) {
    rc = rc ? rc : wv_json_add_obj(o, "argv", strv_json(s->argv));
    if (s->env)
      rc = rc ? rc : json_object_object_add(o, "env", strv_json(s->env));
    rc = rc ? rc : wv_json_add_str(o, "cwd", s->cwd);
  } else {
    rc = rc ? rc : wv_json_add_str(o, "fn", s->fn);
    rc = rc ? rc : wv_json_add_str(o, "arg", s->arg);
  }
  return wv_json_finish(o, rc);
}

char *wv__jobrec_to_json(const job_t *j, wv_job_state_t state, size_t *len) {
  json_object *o = json_object_new_object(), *steps = json_object_new_array();
  char *out = NULL;
  int rc = o && steps ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "id", j->id);
  rc = rc ? rc : wv_json_add_str(o, "kind", j->kind_name);
  rc = rc ? rc : wv_json_add_str(o, "state", wv_job_state_name(state));
  rc = rc ? rc : wv_json_add_int(o, "created", j->created_ns);
  rc = rc ? rc : wv_json_add_int(o, "started", j->started_ns);
  rc = rc ? rc : wv_json_add_int(o, "finished", j->finished_ns);
  rc = rc ? rc : wv_json_add_int(o, "exit", j->exit_status);
  rc = rc ? rc : wv_json_add_str(o, "reason", j->reason);
  rc = rc ? rc : wv_json_add_str(o, "workdir", j->workdir);
  rc = rc ? rc : wv_json_add_int(o, "deadline_ms", j->deadline_ms);
  rc = rc ? rc : wv_json_add_int(o, "memory_max", (int64_t)j->memory_max);
  if (j->ready && !wv__jobeng_ended(state))
    rc = rc ? rc : wv_json_add_bool(o, "ready", true);
  if (j->pgid > 0 && !wv__jobeng_ended(state)) {
    rc = rc ? rc : wv_json_add_int(o, "pgid", j->pgid);
    rc = rc ? rc : wv_json_add_int(o, "pgid_start", (int64_t)j->pgid_start);
  }
  for (size_t i = 0; !rc && i < j->nsteps; i++) {
    json_object *s = step_json(&j->steps[i]);
    rc = s ? json_object_array_add(steps, s) : WV_ENOMEM;
  }
  if (!rc) {
    json_object_object_add(o, "steps", steps);
    steps = NULL;
    const char *text = wv_json_compact(o);
    size_t n = text ? strlen(text) : 0;
    if (text && n <= WV_JOB_RECORD_MAX && (out = malloc(n + 1))) {
      memcpy(out, text, n + 1);
      *len = n;
    }
  }
  json_object_put(steps);
  json_object_put(o);
  return out;
}

static int get_strv(json_object *o, const char *key, char ***out) {
  json_object *a;
  *out = NULL;
  int rc = wv_json_get_array(o, key, &a);
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc)
    return WV_EPARSE;
  size_t n = json_object_array_length(a);
  if (n > WV_JOB_ARGS_MAX || !(*out = calloc(n + 1, sizeof **out)))
    return n > WV_JOB_ARGS_MAX ? WV_EPARSE : WV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_object *s = json_object_array_get_idx(a, i);
    if (!json_object_is_type(s, json_type_string))
      return WV_EPARSE;
    if (!((*out)[i] = strdup(json_object_get_string(s))))
      return WV_ENOMEM;
  }
  return 0;
}

static int get_str_dup(json_object *o, const char *key, char **out) {
  const char *s;
  *out = NULL;
  int rc = wv_json_get_str(o, key, &s);
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc)
    return WV_EPARSE;
  return (*out = strdup(s)) ? 0 : WV_ENOMEM;
}

static int parse_step(json_object *o, jstep_t *s) {
  const char *type;
  bool may_fail = false, ready = false;
  int rc;
  if (wv_json_get_str(o, "type", &type))
    return WV_EPARSE;
  wv_json_get_bool(o, "may_fail", &may_fail);
  wv_json_get_bool(o, "ready", &ready);
  s->may_fail = may_fail;
  s->ready = ready;
  if ((rc = get_str_dup(o, "name", &s->name)))
    return rc;
  if (strcmp(type, "cmd") == 0) {
    s->type = WV_JOB_STEP_CMD;
    if ((rc = get_strv(o, "argv", &s->argv)) || (rc = get_strv(o, "env", &s->env)) ||
        (rc = get_str_dup(o, "cwd", &s->cwd)))
      return rc;
    if (!s->argv || !s->argv[0])
      return WV_EPARSE;
  } else if (strcmp(type, "fn") == 0) {
    s->type = WV_JOB_STEP_FN;
    if ((rc = get_str_dup(o, "fn", &s->fn)) || (rc = get_str_dup(o, "arg", &s->arg)))
      return rc;
    if (!s->fn)
      return WV_EPARSE;
  } else {
    return WV_EPARSE;
  }
  if (!s->name)
    s->name = strdup(s->type == WV_JOB_STEP_CMD ? s->argv[0] : s->fn);
  return s->name ? 0 : WV_ENOMEM;
}

static int parse_state(const char *s, wv_job_state_t *out) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, state_names[i]) == 0) {
      *out = (wv_job_state_t)i;
      return 0;
    }
  return WV_EPARSE;
}

static int parse_fields(json_object *o, job_t *j) {
  const char *id, *kind, *state, *reason = "";
  int64_t v = 0;
  if (wv_json_get_str(o, "id", &id) || !wv__jobrec_id_valid(id) ||
      wv_json_get_str(o, "kind", &kind) || strlen(kind) >= sizeof j->kind_name ||
      wv_json_get_str(o, "state", &state) || parse_state(state, &j->state))
    return WV_EPARSE;
  snprintf(j->id, sizeof j->id, "%s", id);
  snprintf(j->kind_name, sizeof j->kind_name, "%s", kind);
  wv_json_get_str(o, "reason", &reason);
  snprintf(j->reason, sizeof j->reason, "%s", reason);
  wv_json_get_int64(o, "created", &j->created_ns);
  wv_json_get_int64(o, "started", &j->started_ns);
  wv_json_get_int64(o, "finished", &j->finished_ns);
  wv_json_get_int64(o, "deadline_ms", &j->deadline_ms);
  if (wv_json_get_int64(o, "exit", &v) == 0)
    j->exit_status = (int)v;
  if (wv_json_get_int64(o, "memory_max", &v) == 0 && v >= 0)
    j->memory_max = (uint64_t)v;
  if (wv_json_get_int64(o, "pgid", &v) == 0 && v > 1 && v <= INT32_MAX)
    j->pgid = v;
  if (wv_json_get_int64(o, "pgid_start", &v) == 0 && v > 0)
    j->pgid_start = (uint64_t)v;
  bool ready = false;
  wv_json_get_bool(o, "ready", &ready);
  j->ready = ready && !wv__jobeng_ended(j->state);
  return get_str_dup(o, "workdir", &j->workdir);
}

bool wv_job_record_final(const void *json, size_t len) {
  job_t *j = NULL;
  if (wv__jobrec_from_json(json, len, &j) != 0)
    return false;
  bool ended = wv__jobeng_ended(j->state);
  wv__jobrec_free_job(j);
  return ended;
}

int wv__jobrec_from_json(const char *json, size_t len, job_t **out) {
  json_object *o = NULL, *steps;
  char err[128];
  job_t *j = calloc(1, sizeof *j);
  int rc = j ? 0 : WV_ENOMEM;
  if (j)
    j->exit_status = -1;
  if (!rc && wv_json_parse(json, len, WV_JOB_RECORD_MAX, 0, &o, err, sizeof err))
    rc = WV_EPARSE;
  rc = rc ? rc : parse_fields(o, j);
  if (!rc && wv_json_get_array(o, "steps", &steps))
    rc = WV_EPARSE;
  if (!rc) {
    size_t n = json_object_array_length(steps);
    if (n == 0 || n > WV_JOB_STEPS_MAX)
      rc = WV_EPARSE;
    else if (!(j->steps = calloc(n, sizeof *j->steps)))
      rc = WV_ENOMEM;
    else
      j->nsteps = n;
    for (size_t i = 0; !rc && i < n; i++)
      rc = parse_step(json_object_array_get_idx(steps, i), &j->steps[i]);
  }
  json_object_put(o);
  if (rc) {
    wv__jobrec_free_job(j);
    return rc;
  }
  *out = j;
  return 0;
}

void wv__jobrec_info(const job_t *j, wv_job_info_t *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->id, sizeof out->id, "%s", j->id);
  snprintf(out->kind, sizeof out->kind, "%s", j->kind_name);
  out->state = j->state;
  out->created_ns = j->created_ns;
  out->started_ns = j->started_ns;
  out->finished_ns = j->finished_ns;
  out->exit_status = j->exit_status;
  snprintf(out->reason, sizeof out->reason, "%s", j->reason);
  out->ready = j->ready || j->state == WV_JOB_SUCCEEDED;
}
