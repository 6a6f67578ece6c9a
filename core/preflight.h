/*
 * core/preflight.h — what waved needs from its host, checked at start-up and
 * asked again by requests and /health: the builder's programs, a writable
 * storage directory, free disk above storage.reserve, and the memory-limit
 * mechanism of builds (docs/storage.md, "Start-up checks and health").
 *
 * A missing piece degrades waved instead of stopping it: the requests that
 * need it get a clear error when they are made (503 for builds without a
 * builder, 507 below the disk reserve) and /health names it. Only a storage
 * directory that cannot be created or written stops the start.
 *
 * wv_preflight_t is created once by core/main.c before the server starts and
 * freed after it stopped; every function may be called from any thread.
 */
#ifndef WV_PREFLIGHT_H
#define WV_PREFLIGHT_H

#include "core/config.h"
#include "core/job/job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wv_preflight wv_preflight_t;

/* Free space of storage.path's filesystem, in bytes available to waved. */
typedef struct {
  uint64_t free;    /* f_bavail * f_frsize */
  uint64_t total;   /* f_blocks * f_frsize */
  uint64_t reserve; /* storage.reserve, capped at the filesystem's size */
  bool low;         /* free < reserve */
} wv_preflight_disk_t;

/*
 * Creates the directory path of config key (storage.path, wave.build.workspace)
 * and its parents when missing, and proves it writable with a probe file.
 * Returns 0, or WV_EIO with "<key>: <path>: <why>" in err: a problem that
 * stops the start.
 */
int wv_preflight_dir(const char *key, const char *path, char *err, size_t errlen);

/*
 * Binds host:port once and lets it go, so a port in use (or an address this
 * host does not have) stops the start with one line before anything else
 * runs. Port 0 always passes. 0, or WV_EIO with "server.port: <why>" in err.
 */
int wv_preflight_port(const char *host, int port, char *err, size_t errlen);

/*
 * Checks the builder, the disk and the memory mechanism (mem: what the job
 * engine detected, or WV_JOB_MEM_AUTO when there is no engine) and logs one
 * warning per problem, saying what is missing and how to fix it. cfg must
 * outlive the result. Returns 0 or WV_ENOMEM.
 */
int wv_preflight_new(const wv_config_t *cfg, wv_job_mem_t mem, wv_preflight_t **out);
void wv_preflight_free(wv_preflight_t *pf);

/*
 * 0 when builds can run (or wave.build.enabled is false); otherwise
 * WV_EUNAVAIL with what is missing in why ("buildah not found"). A missing
 * builder is looked for again at most every few seconds, so installing it
 * needs no restart.
 */
int wv_preflight_builder(wv_preflight_t *pf, char *why, size_t whylen);

/* Free space now. 0, or WV_EIO when statvfs fails (out zeroed, low true). */
int wv_preflight_disk(const wv_preflight_t *pf, wv_preflight_disk_t *out);

/*
 * The text of a 507: "Insufficient storage - <path>: <N> bytes free" and,
 * when below the reserve, ", below the reserve of <M> bytes (storage.reserve)".
 */
void wv_preflight_nospace_text(const wv_preflight_t *pf, char *out, size_t outlen);

/* Same, for a path and reserve without a wv_preflight_t (tests, tools). */
void wv_preflight_disk_nospace_text(const char *path, uint64_t reserve, char *out, size_t outlen);

/* Free space of the filesystem holding path against reserve. 0 or WV_EIO. */
int wv_preflight_disk_stat(const char *path, uint64_t reserve, wv_preflight_disk_t *out);

/* storage.path as configured (absolute after start-up). */
const char *wv_preflight_storage_path(const wv_preflight_t *pf);

/* The memory mechanism given at creation, as a word for /health ("cgroup2", "rlimit-as"). */
const char *wv_preflight_mem_name(const wv_preflight_t *pf);

#endif
