/*
 * core/job/job_queue.c — the job engine's side of a queue shared by several instances
 * (job.h "the shared queue"; the queue itself is storage/jobqueue_redis.c, the design is
 * docs/scale-out.md "Job queue").
 *
 * DESIGN. With opts.queue set, wv_job_submit only creates the QUEUED record and queues the
 * job. The instance that takes it from the queue (holding its lease) calls wv_job_adopt, which
 * loads the record and puts the job into this engine's inbox exactly as restart recovery does,
 * so it runs under this instance's limits and its final record, log and waiters are handled by
 * the engine as for any job. A waiter of a job that is not in this engine and has not ended
 * (it runs, or waits, on another instance) is kept in a table of its own, by job id; it runs
 * when the queue says the job ended (a Redis message, or the queue's slow poll) and the
 * persisted record agrees. The record is read again after the waiter is registered, so a job
 * that ended in between is never waited for.
 */
#include "core/err.h"
#include "core/job/job.h"
#include "core/job/job_int.h"
#include "core/log.h"
#include "core/timefmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The final log of a job failed without running here: what its instance left, and why. */
static void keep_failed_log(wv_job_engine_t *e, const job_t *j) {
  const wv_job_persist_t *p = e->opts.persist;
  char *old = NULL, line[WV_JOB_REASON_MAX + WV_JOB_ID_MAX + 32];
  size_t n = 0;
  if (!p->put_log)
    return;
  if (!p->get_log || p->get_log(p->ctx, j->id, e->opts.log_max, &old, &n) != 0)
    n = 0;
  int k = snprintf(line, sizeof line, "[waved: %s FAILED: %s]\n", j->id, j->reason);
  size_t add = k < 0 ? 0 : (size_t)k >= sizeof line ? sizeof line - 1 : (size_t)k;
  char *buf = malloc(n + add + 1);
  if (buf) {
    if (n)
      memcpy(buf, old, n);
    memcpy(buf + n, line, add);
    p->put_log(p->ctx, j->id, buf, n + add);
  }
  free(buf);
  free(old);
}

/* Loads job id's record for adopting it: 0 with *out (NULL when it runs here already, or has
 * ended: then *ended), or an error. A job that ended here is dropped from memory first and its
 * record decides: a message delivered again after the end, or a run here whose end was fenced
 * out by a lost lease, must be finished or run, never taken for a run still going here (the
 * queue would keep its message forever). */
static int load_for_adopt(wv_job_engine_t *e, const char *id, job_t **out, bool *ended) {
  const wv_job_persist_t *p = e->opts.persist;
  *ended = false;
  *out = NULL;
  if (!p || !id || !wv__jobrec_id_valid(id))
    return WV_EINVAL;
  uv_mutex_lock(&e->mu);
  bool closed = e->stopping || !e->started;
  job_t *mem = closed ? NULL : wv__jobeng_find_locked(e, id);
  if (mem && mem->in_finished) {
    wv__jobeng_drop_finished_locked(e, mem);
    mem = NULL;
  }
  bool here = mem != NULL;
  uv_mutex_unlock(&e->mu);
  if (closed)
    return WV_ECLOSED;
  if (here)
    return 0; /* runs here already */
  char *json = NULL;
  size_t len;
  job_t *j;
  int rc = p->get(p->ctx, id, &json, &len);
  if (rc)
    return rc;
  rc = wv__jobrec_from_json(json, len, &j);
  free(json);
  if (rc)
    return rc;
  if (wv__jobeng_ended(j->state)) {
    wv__jobrec_free_job(j);
    *ended = true;
    return 0;
  }
  *out = j;
  return 0;
}

/* Saves a loaded job FAILED with reason without running it; frees j. */
static int fail_unrun(wv_job_engine_t *e, job_t *j, const char *reason, bool *ended) {
  if (j->state == WV_JOB_RUNNING)
    wv__jobeng_kill_leftovers(e, j); /* pid-checked: only a runner of this very job */
  snprintf(j->reason, sizeof j->reason, "%s", reason);
  j->finished_ns = wv_now_ns();
  wv__jobeng_remove_workdir(j);
  keep_failed_log(e, j);
  int rc = wv__jobeng_save(e, j, WV_JOB_FAILED);
  wv__jobrec_free_job(j);
  *ended = rc == 0;
  return rc;
}

int wv_job_abandon(wv_job_engine_t *e, const char *id, const char *reason, bool *ended) {
  job_t *j;
  int rc = load_for_adopt(e, id, &j, ended);
  if (rc || !j)
    return rc;
  j->kind = wv__jobeng_find_kind(e, j->kind_name); /* NULL (unknown here): its workdir stays */
  wv_error("jobs: %s (%s): %s; marked failed", j->id, j->kind_name, reason);
  return fail_unrun(e, j, reason, ended);
}

int wv_job_adopt(wv_job_engine_t *e, const char *id, wv_job_adopt_t how, bool *ended) {
  job_t *j;
  int rc = load_for_adopt(e, id, &j, ended);
  if (rc || !j)
    return rc;
  j->kind = wv__jobeng_find_kind(e, j->kind_name);
  if (!j->kind) {
    wv_warn("jobs: %s: unknown kind '%s' in the shared queue", id, j->kind_name);
    wv__jobrec_free_job(j);
    return WV_EINVAL;
  }
  bool interrupted = j->state == WV_JOB_RUNNING;
  const char *why = how == WV_JOB_ADOPT_RECOVER ? "a restart" : "the loss of its instance";
  bool rerun = j->kind->rerunnable || (how == WV_JOB_ADOPT_RECLAIM && e->opts.rerun_reclaimed);
  if (interrupted && !rerun) {
    wv_warn("jobs: %s (%s) was interrupted by %s; marked failed", j->id, j->kind_name, why);
    return fail_unrun(
        e, j, how == WV_JOB_ADOPT_RECOVER ? WV_JOB_REASON_RESTART : WV_JOB_REASON_LOST, ended);
  }
  if (interrupted)
    wv__jobeng_kill_leftovers(e, j); /* pid-checked: only a runner of this very job */
  j->state = WV_JOB_QUEUED;
  j->started_ns = 0;
  if (interrupted) {
    wv_info("jobs: %s (%s) was interrupted by %s; queued again", j->id, j->kind_name, why);
    if ((rc = wv__jobeng_save(e, j, WV_JOB_QUEUED)) != 0) {
      wv__jobrec_free_job(j);
      return rc;
    }
  }
  uv_mutex_lock(&e->mu);
  job_t *old = e->stopping ? NULL : wv__jobeng_find_locked(e, id);
  rc = e->stopping ? WV_ECLOSED : old ? WV_EEXISTS : 0;
  /* Admitted here since load_for_adopt looked: it ended (the caller finishes its message), or
   * it runs here (its own end does). */
  *ended = old && old->in_finished;
  if (!rc) {
    wv__jobeng_admit_locked(e, j);
    wv__jobeng_inbox_push_locked(e, j);
  }
  uv_mutex_unlock(&e->mu);
  if (rc) {
    wv__jobrec_free_job(j);
    return rc == WV_EEXISTS ? 0 : rc;
  }
  uv_async_send(&e->wake);
  return 0;
}

int wv_job_engine_kind_max(wv_job_engine_t *e, size_t i) {
  return i < e->nkinds ? e->kinds[i].max_running : 0; /* fixed once started */
}

bool wv_job_local(wv_job_engine_t *e, const char *id) {
  uv_mutex_lock(&e->mu);
  job_t *j = wv__jobeng_find_locked(e, id);
  bool live = j && !wv__jobeng_ended(j->state);
  uv_mutex_unlock(&e->mu);
  return live;
}

static rwait_t **rw_find_locked(wv_job_engine_t *e, const char *id) {
  rwait_t **p = &e->rwaits[wv__jobeng_hash_id(id)];
  while (*p && strcmp((*p)->id, id) != 0)
    p = &(*p)->next;
  return p;
}

/* Calls a waiter list kept newest first in the order the waiters registered. */
static void call_reversed(jwaiter_t *w, const wv_job_info_t *info) {
  jwaiter_t *r = NULL;
  while (w) {
    jwaiter_t *next = w->next;
    w->next = r;
    r = w;
    w = next;
  }
  wv__jobeng_call_waiters(r, info);
}

int wv__jobeng_remote_wait(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg) {
  jwaiter_t *w = malloc(sizeof *w);
  rwait_t *fresh = calloc(1, sizeof *fresh);
  int rc = w && fresh ? 0 : WV_ENOMEM;
  uv_mutex_lock(&e->mu);
  if (!rc && e->stopping)
    rc = WV_ECLOSED;
  else if (!rc && e->nwaiters >= e->opts.max_waiters)
    rc = WV_EBUSY;
  if (!rc) {
    rwait_t **p = rw_find_locked(e, id);
    if (!*p) {
      snprintf(fresh->id, sizeof fresh->id, "%s", id);
      *p = fresh;
      fresh = NULL;
    }
    *w = (jwaiter_t){(*p)->waiters, cb, arg, false};
    (*p)->waiters = w;
    w = NULL;
    e->nwaiters++;
  }
  uv_mutex_unlock(&e->mu);
  free(w);
  free(fresh);
  if (!rc)
    wv_job_remote_ended(e, id); /* it may have ended between the read and the registration */
  return rc;
}

void wv_job_remote_ended(wv_job_engine_t *e, const char *id) {
  wv_job_info_t info;
  if (!id || !wv__jobrec_id_valid(id))
    return;
  uv_mutex_lock(&e->mu);
  bool waited = *rw_find_locked(e, id) != NULL;
  uv_mutex_unlock(&e->mu);
  if (!waited || wv__jobeng_get_persisted(e, id, &info) != 0 || !wv__jobeng_ended(info.state))
    return;
  uv_mutex_lock(&e->mu);
  rwait_t **p = rw_find_locked(e, id), *rw = *p;
  if (rw) {
    *p = rw->next;
    for (jwaiter_t *x = rw->waiters; x; x = x->next)
      e->nwaiters--;
  }
  uv_mutex_unlock(&e->mu);
  if (!rw)
    return; /* another thread took them */
  call_reversed(rw->waiters, &info);
  free(rw);
}

size_t wv_job_remote_waited(wv_job_engine_t *e, char (*ids)[WV_JOB_ID_MAX + 1], size_t max) {
  size_t n = 0;
  uv_mutex_lock(&e->mu);
  for (size_t b = 0; b < NBUCKETS && n < max; b++)
    for (rwait_t *rw = e->rwaits[b]; rw && n < max; rw = rw->next)
      snprintf(ids[n++], WV_JOB_ID_MAX + 1, "%s", rw->id);
  uv_mutex_unlock(&e->mu);
  return n;
}

void wv__jobeng_remote_release(wv_job_engine_t *e) {
  for (size_t b = 0; b < NBUCKETS; b++) {
    uv_mutex_lock(&e->mu);
    rwait_t *list = e->rwaits[b];
    e->rwaits[b] = NULL;
    for (rwait_t *rw = list; rw; rw = rw->next)
      for (jwaiter_t *x = rw->waiters; x; x = x->next)
        e->nwaiters--;
    uv_mutex_unlock(&e->mu);
    while (list) {
      rwait_t *rw = list;
      list = rw->next;
      wv_job_info_t info;
      memset(&info, 0, sizeof info);
      snprintf(info.id, sizeof info.id, "%s", rw->id);
      info.stopping = true;
      call_reversed(rw->waiters, &info);
      free(rw);
    }
  }
}
