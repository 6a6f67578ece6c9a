/*
 * storage/jobstore.c — job records in LMDB, final job logs as zstd files
 * (see jobstore.h).
 */
#include "storage/jobstore.h"
#include "core/err.h"
#include "storage/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOG_LEVEL 3 /* zstd level: build logs compress ~10x at this level already */

static int save(void *ctx, const char *id, const char *json, size_t len, bool final) {
  wv_jobstore_t *js = ctx;
  int64_t exp = final && js->final_ttl_ms ? wv_store_now_ms() + js->final_ttl_ms : 0;
  return wv_store_put(js->store, WV_DB_JOBS, id, json, len, exp);
}

typedef struct {
  wv_job_record_cb each;
  void *arg;
} scan_t;

static int scan_one(void *arg, const char *key, size_t klen, const void *val, size_t len,
                    int64_t exp) {
  scan_t *sc = arg;
  char id[WV_STORE_KEY_MAX + 1];
  (void)exp;
  memcpy(id, key, klen);
  id[klen] = '\0';
  return sc->each(sc->arg, id, val, len);
}

static int load_all(void *ctx, wv_job_record_cb each, void *arg) {
  wv_jobstore_t *js = ctx;
  scan_t sc = {each, arg};
  return wv_store_scan(js->store, WV_DB_JOBS, NULL, scan_one, &sc);
}

static int get(void *ctx, const char *id, char **json, size_t *len) {
  wv_jobstore_t *js = ctx;
  return wv_store_get(js->store, WV_DB_JOBS, id, json, len, NULL);
}

static void log_file(const wv_jobstore_t *js, const char *id, char *out, size_t n) {
  snprintf(out, n, "%s/%s.log.zst", js->log_dir, id);
}

static int put_log(void *ctx, const char *id, const void *data, size_t len) {
  char path[PATH_MAX + 64];
  log_file(ctx, id, path, sizeof path);
  return wv_logstore_put(path, data, len, LOG_LEVEL);
}

static int get_log(void *ctx, const char *id, size_t max, char **out, size_t *len) {
  char path[PATH_MAX + 64], *text;
  size_t n;
  log_file(ctx, id, path, sizeof path);
  /* Logs are capped when written (job log_max), so reading all is bounded. */
  int rc = wv_logstore_get(path, 64u << 20, &text, &n);
  if (rc)
    return rc;
  if (n > max) {
    memmove(text, text + (n - max), max);
    text[max] = '\0';
    n = max;
  }
  *out = text;
  *len = n;
  return 0;
}

int wv_jobstore_init(wv_jobstore_t *js, wv_store_t *store, const char *log_dir,
                     int64_t final_ttl_ms, wv_job_persist_t *p) {
  if (strlen(log_dir) >= sizeof js->log_dir)
    return WV_EINVAL;
  if (mkdir(log_dir, 0700) != 0 && errno != EEXIST)
    return WV_EIO;
  js->store = store;
  snprintf(js->log_dir, sizeof js->log_dir, "%s", log_dir);
  js->final_ttl_ms = final_ttl_ms;
  *p = (wv_job_persist_t){js, save, load_all, get, put_log, get_log, NULL};
  return 0;
}
