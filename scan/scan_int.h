/*
 * scan/scan_int.h — what scan/scan.c (ids, records), scan/scan_job.c (the
 * job) and scan/routes.c (the routes) share: the WV_DB_SCANS key layout of
 * scan/scan.h and the record writes. Not for other folders.
 */
#ifndef WV_SCAN_SCAN_INT_H
#define WV_SCAN_SCAN_INT_H

#include "core/app.h"
#include "core/arena.h"
#include "core/job/job.h"
#include "scan/scan.h"

#include <json-c/json.h>
#include <stddef.h>

#define SCAN_KEY_MAX 96
#define SCAN_SPDX_MAX (256u << 20) /* bytes of an SBOM we build or serve */

/* "<prefix><id>" into out (SCAN_KEY_MAX bytes); prefix "" is the record itself. */
void wv__scan_key(char *out, const char *prefix, const char *id);

/* The stored value of key as a malloc'd string freed by an arena cleanup. 0, WV_ENOTFOUND, ... */
int wv__scan_load(const wv_app_t *app, wv_arena_t *a, const char *key, char **val, size_t *len);

/* Drops "id/<hex>" when it still names id, so the next request scans again. */
int wv__scan_release_id(const wv_app_t *app, const char *id);

/*
 * Ends scan id as SUCCEEDED: rec (the record, its fields already set) and
 * counts / spdx_zst (may be NULL) stored with wave.scan.status.duration,
 * the job's source description removed. 0 or the store's error.
 */
int wv__scan_store_success(const wv_app_t *app, const char *id, json_object *rec,
                           json_object *counts, const void *spdx_zst, size_t spdx_len);

/*
 * Ends scan id as FAILED with logs (Wave's rules: single quotes removed,
 * at most WV_SCAN_LOGS_MAX characters + " [truncated]"), kept for
 * wave.scan.failure.duration, and releases the id. end_ns is the end
 * instant. 0, or the store's error.
 */
int wv__scan_store_failure(const wv_app_t *app, const char *id, const char *logs, int64_t end_ns);

/* The job's function step ("scan"), defined in scan_job.c. */
int wv__scan_job_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *step_arg);

#endif
