/*
 * core/job/job_api.c — the job engine's entry points for other threads: set-up,
 * start with restart recovery, submit, waiters, snapshots, logs, cancel,
 * stop. The job thread's side is core/job/job.c; the --job-exec runner is core/job/runner.c.
 */
#include "core/err.h"
#include "core/job/job.h"
#include "core/job/job_int.h"
#include "core/job/jobkill.h"
#include "core/job/jobmem.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---- public API ---- */

void wv_job_opts_init(wv_job_opts_t *o) {
  memset(o, 0, sizeof *o);
  o->kill_grace_ms = 5000;
  o->log_max = 16u << 20;
  o->max_waiters = 100000;
  o->keep_finished = 1024;
}

int wv_job_engine_new(const wv_job_opts_t *opts, wv_job_engine_t **out) {
  if (!opts || !opts->log_dir || !*opts->log_dir)
    return WV_EINVAL;
  wv_job_engine_t *e = calloc(1, sizeof *e);
  if (!e)
    return WV_ENOMEM;
  e->opts = *opts;
  if (e->opts.kill_grace_ms <= 0)
    e->opts.kill_grace_ms = 5000;
  if (!e->opts.log_max)
    e->opts.log_max = 16u << 20;
  if (!e->opts.max_waiters)
    e->opts.max_waiters = 100000;
  if (!e->opts.keep_finished)
    e->opts.keep_finished = 1024;
  e->log_dir = strdup(opts->log_dir);
  e->exec_path = opts->exec_path ? strdup(opts->exec_path) : NULL;
  e->cgroup_hint = opts->cgroup_dir ? strdup(opts->cgroup_dir) : NULL;
  if (!e->log_dir || (opts->exec_path && !e->exec_path) || (opts->cgroup_dir && !e->cgroup_hint) ||
      uv_mutex_init(&e->mu)) {
    free(e->log_dir), free(e->exec_path), free(e->cgroup_hint), free(e);
    return WV_ENOMEM;
  }
  e->opts.log_dir = e->log_dir;
  e->opts.exec_path = e->exec_path;
  e->opts.cgroup_dir = e->cgroup_hint;
  *out = e;
  return 0;
}

int wv_job_register_kind(wv_job_engine_t *e, const wv_job_kind_t *k) {
  if (e->started || !k->name || !*k->name || strlen(k->name) >= 64 || k->max_running < 1 ||
      k->deadline_ms <= 0)
    return WV_EINVAL;
  if (wv__jobeng_find_kind(e, k->name))
    return WV_EEXISTS;
  if (e->nkinds == MAX_KINDS)
    return WV_ETOOBIG;
  jkind_t *d = &e->kinds[e->nkinds++];
  snprintf(d->name, sizeof d->name, "%s", k->name);
  snprintf(d->label, sizeof d->label, "%s", k->label ? k->label : k->name);
  d->max_running = k->max_running;
  d->max_queued = k->max_queued ? k->max_queued : 10000;
  d->rerunnable = k->rerunnable;
  d->remove_workdir = k->remove_workdir;
  d->deadline_ms = k->deadline_ms;
  d->memory_max = k->memory_max;
  return 0;
}

int wv_job_register_fn(wv_job_engine_t *e, const char *name, wv_job_fn fn, void *arg) {
  if (e->started || !name || !*name || strlen(name) >= 64 || !fn)
    return WV_EINVAL;
  if (wv__jobeng_find_fn(e, name))
    return WV_EEXISTS;
  if (e->nfns == MAX_FNS)
    return WV_ETOOBIG;
  jfn_t *f = &e->fns[e->nfns++];
  snprintf(f->name, sizeof f->name, "%s", name);
  f->fn = fn;
  f->arg = arg;
  return 0;
}

wv_job_mem_t wv_job_engine_mem(const wv_job_engine_t *e) { return e->mem; }

/* Inserts a QUEUED job into the table and the inbox (no save). */
void wv__jobeng_admit_locked(wv_job_engine_t *e, job_t *j) {
  uint32_t h = wv__jobeng_hash_id(j->id);
  j->hnext = e->buckets[h];
  e->buckets[h] = j;
}

void wv__jobeng_inbox_push_locked(wv_job_engine_t *e, job_t *j) {
  j->qnext = NULL;
  j->admitted = true;
  if (e->inbox_tail)
    e->inbox_tail->qnext = j;
  else
    e->inbox_head = j;
  e->inbox_tail = j;
  j->kind->waiting++;
}

typedef struct {
  wv_job_engine_t *e;
  job_t *list; /* loaded jobs that had not ended, linked by qnext */
} recover_t;

static int recover_each(void *arg, const char *id, const char *json, size_t len) {
  recover_t *rv = arg;
  job_t *j;
  int rc = wv__jobrec_from_json(json, len, &j);
  if (rc) {
    wv_warn("jobs: skipping unreadable job record %s: %s", id, wv_strerror(rc));
    return rc == WV_ENOMEM ? rc : 0;
  }
  if (wv__jobeng_ended(j->state)) {
    wv__jobrec_free_job(j);
    return 0;
  }
  j->qnext = rv->list;
  rv->list = j;
  return 0;
}

/*
 * What an interrupted job left running: its runner should have died with the old waved
 * (parent-death signal), but a runner that could not act (stopped, say) keeps the build
 * going on the storage the next run would use. The recorded group is killed only when
 * its leader is still that job's runner, started when recorded (pids are reused); the
 * job's cgroup, when there is one, is emptied and removed too.
 */
void wv__jobeng_kill_leftovers(wv_job_engine_t *e, job_t *j) {
  pid_t pgid = (pid_t)j->pgid;
  if (pgid > 1 && wv_jobkill_is_runner(pgid, j->id) &&
      (!j->pgid_start || wv_jobkill_start_time(pgid) == j->pgid_start)) {
    int n = wv_jobkill_tree(pgid, true);
    kill(-pgid, SIGKILL);
    for (int i = 0; i < 200 && wv_jobkill_group_count(pgid) > 0; i++) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    wv_warn("jobs: %s: killed %d leftover process(es) of the interrupted job (group %d)%s", j->id,
            n, (int)pgid, wv_jobkill_group_count(pgid) ? "; some are still exiting" : "");
  }
  if (e->cgroup_parent[0]) {
    char dir[PATH_MAX + WV_JOB_ID_MAX + 16];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/wvjob-%s", e->cgroup_parent, j->id);
    if (stat(dir, &st) == 0)
      wv_jobmem_destroy(dir);
  }
  j->pgid = 0;
  j->pgid_start = 0;
}

/* Jobs interrupted by a restart: re-queued when their kind allows, else FAILED. */
static int recover(wv_job_engine_t *e) {
  const wv_job_persist_t *p = e->opts.persist;
  recover_t rv = {e, NULL};
  if (!p || e->opts.queue) /* shared queue: each instance recovers its own (job_queue.c) */
    return 0;
  int rc = p->load_all(p->ctx, recover_each, &rv);
  while (rv.list) {
    job_t *j = rv.list;
    rv.list = j->qnext;
    j->kind = wv__jobeng_find_kind(e, j->kind_name);
    if (!rc)
      wv__jobeng_kill_leftovers(e, j);
    if (!rc && j->ready) { /* only tidy-up was left: the result stands */
      j->finished_ns = wv_now_ns();
      wv_info("jobs: %s (%s) was interrupted by a restart while tidying up; marked succeeded",
              j->id, j->kind_name);
      wv__jobeng_remove_workdir(j);
      wv__jobeng_save(e, j, WV_JOB_SUCCEEDED);
      wv__jobrec_free_job(j);
      continue;
    }
    if (!rc && j->kind && j->kind->rerunnable) {
      j->state = WV_JOB_QUEUED;
      j->started_ns = 0;
      wv_info("jobs: %s (%s) was interrupted by a restart; queued again", j->id, j->kind_name);
      wv__jobeng_save(e, j, WV_JOB_QUEUED);
      wv__jobeng_admit_locked(e, j);
      wv__jobeng_inbox_push_locked(e, j);
      continue;
    }
    if (!rc) {
      snprintf(j->reason, sizeof j->reason, "%s", WV_JOB_REASON_RESTART);
      j->finished_ns = wv_now_ns();
      wv_warn("jobs: %s (%s) was interrupted by a restart; marked failed", j->id, j->kind_name);
      wv__jobeng_remove_workdir(j);
      wv__jobeng_save(e, j, WV_JOB_FAILED);
    }
    wv__jobrec_free_job(j);
  }
  return rc ? WV_ESTORE : 0;
}

int wv_job_engine_start(wv_job_engine_t *e) {
  if (e->started)
    return WV_EINVAL;
  if (mkdir(e->log_dir, 0700) != 0 && errno != EEXIST) {
    wv_error("jobs: cannot create %s: %s", e->log_dir, strerror(errno));
    return WV_EIO;
  }
  if (e->opts.mem == WV_JOB_MEM_AUTO)
    e->mem = wv_jobmem_detect(e->cgroup_hint, e->exec_path != NULL, e->cgroup_parent,
                              sizeof e->cgroup_parent);
  else
    e->mem = e->opts.mem == WV_JOB_MEM_RLIMIT && !e->exec_path ? WV_JOB_MEM_NONE : e->opts.mem;
  if ((e->mem == WV_JOB_MEM_CGROUP1 || e->mem == WV_JOB_MEM_CGROUP2) && !e->cgroup_parent[0])
    snprintf(e->cgroup_parent, sizeof e->cgroup_parent, "%s", e->cgroup_hint ? e->cgroup_hint : "");
  wv_info("jobs: memory limits through %s%s%s", wv_job_mem_name(e->mem),
          e->cgroup_parent[0] ? " under " : "", e->cgroup_parent);
  int rc = recover(e);
  if (rc)
    return rc;
  if (uv_loop_init(&e->loop))
    return WV_EINTERNAL;
  if (uv_async_init(&e->loop, &e->wake, wv__jobeng_on_wake)) {
    uv_loop_close(&e->loop);
    return WV_EINTERNAL;
  }
  e->wake.data = e;
  e->started = true;
  if (uv_thread_create(&e->thread, wv__jobeng_job_thread, e)) {
    e->started = false;
    uv_close((uv_handle_t *)&e->wake, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    return WV_EINTERNAL;
  }
  uv_async_send(&e->wake); /* schedule what recovery queued */
  return 0;
}

static int build_job(wv_job_engine_t *e, const wv_job_spec_t *spec, job_t **out) {
  jkind_t *k = spec->kind ? wv__jobeng_find_kind(e, spec->kind) : NULL;
  if (!k || (spec->id && !wv__jobrec_id_valid(spec->id)) || spec->deadline_ms < 0)
    return WV_EINVAL;
  for (size_t i = 0; i < spec->nsteps && spec->steps; i++)
    if (spec->steps[i].type == WV_JOB_STEP_FN &&
        (!spec->steps[i].fn || !wv__jobeng_find_fn(e, spec->steps[i].fn)))
      return WV_EINVAL;
  job_t *j = calloc(1, sizeof *j);
  if (!j)
    return WV_ENOMEM;
  int rc = wv__jobrec_copy_steps(j, spec->steps, spec->nsteps);
  if (!rc && spec->workdir && !(j->workdir = strdup(spec->workdir)))
    rc = WV_ENOMEM;
  char gen[13];
  if (!rc && !spec->id)
    rc = wv_rand_hex12(gen);
  if (rc) {
    wv__jobrec_free_job(j);
    return rc;
  }
  snprintf(j->id, sizeof j->id, spec->id ? "%s" : "job-%s", spec->id ? spec->id : gen);
  snprintf(j->kind_name, sizeof j->kind_name, "%s", k->name);
  j->kind = k;
  j->deadline_ms = spec->deadline_ms ? spec->deadline_ms : k->deadline_ms;
  j->memory_max = spec->memory_max ? spec->memory_max : k->memory_max;
  j->state = WV_JOB_QUEUED;
  j->exit_status = -1;
  j->created_ns = wv_now_ns();
  *out = j;
  return 0;
}

static bool persisted(wv_job_engine_t *e, const char *id) {
  const wv_job_persist_t *p = e->opts.persist;
  char *json = NULL;
  size_t len;
  if (!p || p->get(p->ctx, id, &json, &len) != 0)
    return false;
  free(json);
  return true;
}

/*
 * Shared queue: the record is created (only if the id is free on every instance) and the job
 * queued; whichever instance has room runs it (wv_job_adopt). j is freed.
 */
static int submit_queued(wv_job_engine_t *e, job_t *j, char *id_out) {
  const wv_job_persist_t *p = e->opts.persist;
  const wv_job_queue_t *q = e->opts.queue;
  uv_mutex_lock(&e->mu);
  int rc = e->stopping || !e->started ? WV_ECLOSED : 0;
  uv_mutex_unlock(&e->mu);
  size_t len = 0;
  char *json = rc ? NULL : wv__jobrec_to_json(j, WV_JOB_QUEUED, &len);
  if (!rc && !json)
    rc = WV_ENOMEM;
  if (!rc)
    rc = p && p->create ? p->create(p->ctx, j->id, json, len)
         : p            ? p->save(p->ctx, j->id, json, len, false)
                        : 0;
  free(json);
  if (!rc && (rc = q->enqueue(q->ctx, j->kind_name, j->id)) != 0) {
    /* Nothing will run it: say so in its record, so no waiter waits for ever. */
    snprintf(j->reason, sizeof j->reason, "cannot queue the job: %s", wv_strerror(rc));
    j->finished_ns = wv_now_ns();
    wv__jobeng_save(e, j, WV_JOB_FAILED);
  }
  if (!rc && id_out)
    snprintf(id_out, WV_JOB_ID_MAX + 1, "%s", j->id);
  if (!rc)
    wv_info("jobs: %s (%s) queued", j->id, j->kind_name);
  wv__jobrec_free_job(j);
  return rc;
}

int wv_job_submit(wv_job_engine_t *e, const wv_job_spec_t *spec, char *id_out) {
  job_t *j;
  int rc = build_job(e, spec, &j);
  if (rc)
    return rc;
  j->rid = wv_log_request();
  if (e->opts.queue)
    return submit_queued(e, j, id_out);
  if (spec->id && persisted(e, j->id))
    rc = WV_EEXISTS;
  uv_mutex_lock(&e->mu);
  if (!rc && (e->stopping || !e->started))
    rc = WV_ECLOSED;
  else if (!rc && wv__jobeng_find_locked(e, j->id))
    rc = WV_EEXISTS;
  else if (!rc && j->kind->waiting >= j->kind->max_queued)
    rc = WV_EBUSY;
  if (!rc) {
    wv__jobeng_admit_locked(e, j);
    j->kind->waiting++; /* reserved; inbox_push counts it again, undone below */
  }
  uv_mutex_unlock(&e->mu);
  if (rc) {
    wv__jobrec_free_job(j);
    return rc;
  }
  rc = wv__jobeng_save(e, j, WV_JOB_QUEUED);
  uv_mutex_lock(&e->mu);
  j->kind->waiting--;
  if (rc) {
    wv__jobeng_unlink_locked(e, j);
    /* A waiter that found it meanwhile learns it failed. */
    snprintf(j->reason, sizeof j->reason, "cannot save the job record: %s", wv_strerror(rc));
  } else {
    wv__jobeng_inbox_push_locked(e, j);
    if (j->cancel_req) { /* cancelled while its record was being saved */
      j->cnext = e->cancels;
      e->cancels = j;
    }
  }
  jwaiter_t *w = rc ? j->waiters : NULL;
  if (rc)
    for (jwaiter_t *x = w; x; x = x->next)
      e->nwaiters--;
  uv_mutex_unlock(&e->mu);
  if (rc) {
    wv_job_info_t info;
    j->state = WV_JOB_FAILED;
    wv__jobrec_info(j, &info);
    wv__jobeng_call_waiters(w, &info);
    wv__jobrec_free_job(j);
    return rc;
  }
  if (id_out)
    snprintf(id_out, WV_JOB_ID_MAX + 1, "%s", j->id);
  uv_async_send(&e->wake);
  return 0;
}

int wv__jobeng_get_persisted(wv_job_engine_t *e, const char *id, wv_job_info_t *out) {
  const wv_job_persist_t *p = e->opts.persist;
  char *json = NULL;
  size_t len;
  job_t *j;
  if (!p || p->get(p->ctx, id, &json, &len) != 0)
    return WV_ENOTFOUND;
  int rc = wv__jobrec_from_json(json, len, &j);
  free(json);
  if (rc)
    return WV_ENOTFOUND;
  wv__jobrec_info(j, out);
  wv__jobrec_free_job(j);
  return 0;
}

static int add_waiter(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg,
                      bool on_ready) {
  wv_job_info_t info;
  bool found = false, now = false;
  int rc = 0;
  if (!id || !cb)
    return WV_EINVAL;
  uv_mutex_lock(&e->mu);
  job_t *j = e->stopping ? NULL : wv__jobeng_find_locked(e, id);
  if (e->stopping) {
    rc = WV_ECLOSED;
  } else if (j && (wv__jobeng_ended(j->state) || (on_ready && j->ready))) {
    found = now = true;
    wv__jobrec_info(j, &info);
  } else if (j) {
    found = true;
    jwaiter_t *w = e->nwaiters < e->opts.max_waiters ? malloc(sizeof *w) : NULL;
    if (!w) {
      rc = e->nwaiters < e->opts.max_waiters ? WV_ENOMEM : WV_EBUSY;
    } else {
      *w = (jwaiter_t){j->waiters, cb, arg, on_ready};
      j->waiters = w;
      e->nwaiters++;
    }
  }
  uv_mutex_unlock(&e->mu);
  if (rc)
    return rc;
  if (!found) {
    /* Every job that has not ended is in memory; an evicted one has ended.
     * With a shared queue it may run on another instance: wait for its end message. */
    if (wv__jobeng_get_persisted(e, id, &info) != 0)
      return WV_ENOTFOUND;
    if (!wv__jobeng_ended(info.state))
      return e->opts.queue ? wv__jobeng_remote_wait(e, id, cb, arg) : WV_ENOTFOUND;
    now = true;
  }
  if (now)
    cb(arg, &info);
  return 0;
}

int wv_job_on_done(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg) {
  return add_waiter(e, id, cb, arg, false);
}

int wv_job_on_ready(wv_job_engine_t *e, const char *id, wv_job_done_cb cb, void *arg) {
  return add_waiter(e, id, cb, arg, true);
}

int wv_job_get(wv_job_engine_t *e, const char *id, wv_job_info_t *out) {
  if (!id)
    return WV_EINVAL;
  uv_mutex_lock(&e->mu);
  job_t *j = wv__jobeng_find_locked(e, id);
  if (j)
    wv__jobrec_info(j, out);
  uv_mutex_unlock(&e->mu);
  return j ? 0 : wv__jobeng_get_persisted(e, id, out);
}

/* The last max bytes of a file. */
static int read_tail(const char *path, size_t max, char **out, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? WV_ENOTFOUND : WV_EIO;
  struct stat st;
  int rc = fstat(fd, &st) == 0 ? 0 : WV_EIO;
  size_t size = rc ? 0 : (size_t)st.st_size, n = size > max ? max : size;
  char *buf = rc ? NULL : malloc(n + 1);
  if (!rc && !buf)
    rc = WV_ENOMEM;
  ssize_t got = rc ? -1 : pread(fd, buf, n, (off_t)(size - n));
  close(fd);
  if (!rc && got < 0)
    rc = WV_EIO;
  if (rc) {
    free(buf);
    return rc;
  }
  buf[got] = '\0';
  *out = buf;
  *len = (size_t)got;
  return 0;
}

int wv_job_log(wv_job_engine_t *e, const char *id, size_t max, char **out, size_t *len) {
  char path[PATH_MAX];
  if (!wv__jobrec_id_valid(id))
    return WV_ENOTFOUND;
  wv__jobeng_log_path(e, id, path, sizeof path);
  int rc = read_tail(path, max, out, len);
  const wv_job_persist_t *p = e->opts.persist;
  if (rc == WV_ENOTFOUND && p && p->get_log) /* the job ended and its log was stored */
    rc = p->get_log(p->ctx, id, max, out, len);
  return rc;
}

int wv_job_cancel(wv_job_engine_t *e, const char *id, const char *reason) {
  if (!id)
    return WV_EINVAL;
  uv_mutex_lock(&e->mu);
  job_t *j = wv__jobeng_find_locked(e, id);
  int rc = !j ? WV_ENOTFOUND : wv__jobeng_ended(j->state) ? WV_EINVAL : 0;
  if (!rc && !j->cancel_req) {
    j->cancel_req = true;
    snprintf(j->cancel_reason, sizeof j->cancel_reason, "%s",
             reason && *reason ? reason : "cancelled");
    if (j->admitted) { /* else wv_job_submit lists it once the record is saved */
      j->cnext = e->cancels;
      e->cancels = j;
    }
  }
  uv_mutex_unlock(&e->mu);
  if (!rc)
    uv_async_send(&e->wake);
  return rc;
}

void wv_job_engine_stop(wv_job_engine_t *e) {
  if (!e || !e->started || e->joined)
    return;
  uv_mutex_lock(&e->mu);
  e->stopping = true;
  uv_mutex_unlock(&e->mu);
  uv_async_send(&e->wake);
  uv_thread_join(&e->thread);
  e->joined = true;
}

void wv_job_engine_free(wv_job_engine_t *e) {
  if (!e)
    return;
  wv_job_engine_stop(e);
  for (size_t b = 0; b < NBUCKETS; b++)
    while (e->buckets[b]) {
      job_t *j = e->buckets[b];
      e->buckets[b] = j->hnext;
      for (jwaiter_t *w = j->waiters, *n; w; w = n) {
        n = w->next;
        free(w);
      }
      wv__jobrec_free_job(j);
    }
  uv_mutex_destroy(&e->mu);
  free(e->log_dir), free(e->exec_path), free(e->cgroup_hint);
  free(e);
}

int wv_job_engine_kind(wv_job_engine_t *e, size_t i, char *name, int *running, size_t *waiting) {
  uv_mutex_lock(&e->mu);
  int rc = i < e->nkinds ? 0 : WV_ENOTFOUND;
  if (!rc) {
    snprintf(name, 64, "%s", e->kinds[i].name);
    *running = atomic_load(&e->kinds[i].running);
    *waiting = e->kinds[i].waiting;
  }
  uv_mutex_unlock(&e->mu);
  return rc;
}

size_t wv_job_engine_list(wv_job_engine_t *e, wv_job_info_t *out, size_t max) {
  size_t n = 0;
  uv_mutex_lock(&e->mu);
  for (size_t b = 0; b < NBUCKETS && n < max; b++)
    for (job_t *j = e->buckets[b]; j && n < max; j = j->hnext)
      wv__jobrec_info(j, &out[n++]);
  uv_mutex_unlock(&e->mu);
  return n;
}
