/*
 * core/job_int.h — the job engine's private types, shared by core/job.c (the
 * engine) and core/jobrec.c (records as JSON). Not for other modules.
 */
#ifndef WV_JOB_INT_H
#define WV_JOB_INT_H

#include "core/job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  wv_job_step_type_t type;
  bool may_fail;
  char *name; /* never NULL after copy: argv[0] or fn */
  char **argv; /* NULL-terminated, owned */
  char **env;  /* NULL-terminated, owned; NULL = inherit */
  char *cwd;
  char *fn;
  char *arg;
} jstep_t;

typedef struct jwaiter {
  struct jwaiter *next;
  wv_job_done_cb cb;
  void *arg;
} jwaiter_t;

typedef struct jkind jkind_t;
typedef struct jrun jrun_t;

/*
 * One job. Immutable after submit: id, kind, workdir, limits, steps. The
 * rest is written by the job thread under the engine mutex and read by
 * other threads under it.
 */
typedef struct job {
  struct job *hnext; /* hash chain */
  struct job *qnext; /* inbox, kind queue or finished list */
  struct job *cnext; /* cancel list */
  jkind_t *kind;
  char id[WV_JOB_ID_MAX + 1];
  char kind_name[64];
  char *workdir;
  int64_t deadline_ms;
  uint64_t memory_max;
  jstep_t *steps;
  size_t nsteps;

  wv_job_state_t state;
  int64_t created_ns, started_ns, finished_ns;
  int exit_status;
  char reason[WV_JOB_REASON_MAX];
  jwaiter_t *waiters;
  bool cancel_req;
  bool admitted;      /* in the inbox, a queue or running (cancels may be listed) */
  bool in_finished;
  char cancel_reason[WV_JOB_REASON_MAX];

  jrun_t *run;        /* job thread only: the running state */
  size_t step;        /* job thread only: index of the current step */
} job_t;

void wv_jobrec_free_job(job_t *j);
/* Deep copy of a spec's steps into j. 0, WV_EINVAL or WV_ENOMEM. */
int wv_jobrec_copy_steps(job_t *j, const wv_job_step_t *steps, size_t n);
/* The record as JSON text (malloc'd) with the given state. NULL on OOM or too big. */
char *wv_jobrec_to_json(const job_t *j, wv_job_state_t state, size_t *len);
/* A new job from a record. 0, WV_EPARSE or WV_ENOMEM. */
int wv_jobrec_from_json(const char *json, size_t len, job_t **out);
/* The public snapshot. */
void wv_jobrec_info(const job_t *j, wv_job_info_t *out);
/* True for [A-Za-z0-9._-]{1,WV_JOB_ID_MAX}. */
bool wv_jobrec_id_valid(const char *id);

#endif
