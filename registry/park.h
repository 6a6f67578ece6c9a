/*
 * registry/park.h — pulls that wait for a job (architecture §2.3 "Parking"): a
 * manifest request for an image whose build is still running is parked on
 * the build's waiter list in the job engine. A parked request holds no
 * thread: it is a small entry here plus the job engine's 24-byte waiter.
 *
 * When the job ends, the job engine's thread moves the entry to a ready
 * list; the park thread hands each ready request back to the server's
 * worker pool (wv_req_resume) with the resume handler given at parking, and
 * retries a little later when that pool's queue is full, so a build that
 * releases thousands of pulls at once never drops one and never blocks the
 * job thread. Every parked request also has a deadline (server.idle-timeout,
 * architecture §2.3): past it the request is answered 408 TIMEOUT. At stop, every
 * request still parked is answered 503 before the server goes away.
 *
 * One parking lot per process, created by the composition root (core/main.c)
 * and hung on wv_app_t.park. Thread rules: wv_park_on_job from any worker;
 * the lot's mutex is a leaf.
 */
#ifndef WV_PARK_H
#define WV_PARK_H

#include "http/http.h"

#include <stddef.h>
#include <stdint.h>

struct wv_job_engine;
typedef struct wv_park wv_park_t;

/*
 * Creates a lot and starts its park thread into *out. deadline_ms: how long a
 * request may stay parked. 0 or WV_ENOMEM (*out NULL).
 */
int wv_park_start(wv_park_t **out, int64_t deadline_ms);

/*
 * Answers every parked request 503 ("server shutting down") and stops the
 * park thread. Call before wv_server_shutdown. Idempotent; NULL is a no-op.
 */
void wv_park_stop(wv_park_t *lot);

/*
 * Stops the lot (as wv_park_stop) and frees it. Call after the job engine is
 * freed: its waiters may still hold entries that point at the lot. NULL is a no-op.
 */
void wv_park_free(wv_park_t *lot);

/*
 * Parks req until job id ends, then runs resume(req, resp) on a worker
 * (resp: the handler's, answered through when the lot gives up).
 * Returns WV_PARKED (the caller must not touch req again), or an error with
 * req still the caller's: WV_ENOTFOUND (no such job), WV_EBUSY (too many
 * waiters), WV_ECLOSED (lot NULL or stopping), WV_ENOMEM.
 */
int wv_park_on_job(wv_park_t *lot, wv_req_t *req, wv_resp_t *resp, struct wv_job_engine *jobs,
                   const char *id, wv_req_handler_cb resume);

/* Requests parked right now (waiting for their job or their resume). */
size_t wv_park_count(wv_park_t *lot);

#endif
