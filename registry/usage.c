/*
 * registry/usage.c — usage counters (see usage.h).
 *
 * Keys of WV_DB_COUNTERS: "usage/<metric>/<day>/<org>/<arch>" where each of
 * day (yyyy-mm-dd, UTC), org and arch is the value or "*" for all. An event
 * increments every combination of its known dimensions (up to 8 keys), so a
 * query reads one key for its count and scans one prefix for its orgs map.
 */
#include "registry/usage.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "http/metrics_route.h"
#include "http/resp.h"
#include "storage/store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ORG_MAX 128
#define ORGS_MAX 10000 /* orgs listed in one answer */

static const char *const names[WV_USAGE_COUNT] = {"builds", "pulls", "fusion", "mirrors", "scans"};

/* contract §4.7's arch spellings (or a platform "os/arch[/variant]") to the counted name; NULL when
 * not one of them. */
static const char *norm_arch(const char *a) {
  char buf[32];
  const char *slash = a ? strchr(a, '/') : NULL;
  if (slash) {
    size_t n = strcspn(slash + 1, "/");
    if (n >= sizeof buf)
      return NULL;
    memcpy(buf, slash + 1, n);
    buf[n] = '\0';
    a = buf;
  }
  if (!a || !*a)
    return NULL;
  if (!strcmp(a, "amd64") || !strcmp(a, "x86_64") || !strcmp(a, "x86-64"))
    return "amd64";
  if (!strcmp(a, "arm64") || !strcmp(a, "aarch64"))
    return "arm64";
  return strcmp(a, "arm") == 0 ? "arm" : NULL;
}

/* The org of an account named like an e-mail address: the part after '@'. */
static bool org_of(const char *user, char *out, size_t outlen) {
  const char *at = user ? strrchr(user, '@') : NULL;
  if (!at || !at[1] || strlen(at + 1) >= outlen || strpbrk(at + 1, "/*"))
    return false;
  for (size_t i = 0; at[1 + i]; i++)
    out[i] = (char)tolower((unsigned char)at[1 + i]);
  out[strlen(at + 1)] = '\0';
  return true;
}

static void today(char out[11]) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 11, "%Y-%m-%d", &tm);
}

void wv_usage_count(const wv_app_t *app, wv_usage_t what, const char *user, const char *arch) {
  if (!app || !app->cfg->wave_metrics_enabled || !app->store || (unsigned)what >= WV_USAGE_COUNT)
    return;
  char day[11], org[ORG_MAX], key[64 + ORG_MAX];
  today(day);
  bool has_org = org_of(user, org, sizeof org);
  const char *ar = norm_arch(arch);
  for (int m = 0; m < 8; m++) {
    if (((m & 2) && !has_org) || ((m & 4) && !ar))
      continue;
    snprintf(key, sizeof key, "usage/%s/%s/%s/%s", names[what], m & 1 ? day : "*",
             m & 2 ? org : "*", m & 4 ? ar : "*");
    wv_store_op_t op = {.kind = WV_STORE_INCR, .db = WV_DB_COUNTERS, .key = key, .delta = 1};
    if (wv_store_submit(app->store, &op, NULL, NULL))
      wv_debug("usage counter %s not counted: store queue busy", key);
  }
}

/* ---- the API ---- */

static int64_t counter_val(const void *val, size_t len) {
  char text[32];
  if (len >= sizeof text)
    return 0;
  memcpy(text, val, len);
  text[len] = '\0';
  return strtoll(text, NULL, 10);
}

static int get_cb(void *arg, const void *val, size_t len, int64_t expires_ms) {
  (void)expires_ms;
  *(int64_t *)arg = counter_val(val, len);
  return 0;
}

typedef struct {
  json_object *orgs;
  const char *arch; /* "*" or the arch */
  const char *org;  /* NULL = every org */
  size_t n;
} orgs_t;

/* Keys "usage/<m>/<day>/<org>/<arch>" under the prefix up to <day>/: orgs with that arch. */
static int orgs_cb(void *arg, const char *key, size_t klen, const void *val, size_t len,
                   int64_t expires_ms) {
  (void)expires_ms;
  orgs_t *o = arg;
  const char *end = key + klen, *arch = end;
  while (arch > key && arch[-1] != '/')
    arch--;
  const char *org_end = arch - 1, *org = org_end;
  while (org > key && org[-1] != '/')
    org--;
  size_t ol = (size_t)(org_end - org);
  if (ol == 0 || (ol == 1 && *org == '*') || (size_t)(end - arch) != strlen(o->arch) ||
      memcmp(arch, o->arch, strlen(o->arch)) != 0 || ol >= ORG_MAX || o->n >= ORGS_MAX)
    return 0;
  char name[ORG_MAX];
  memcpy(name, org, ol);
  name[ol] = '\0';
  if (o->org && strcmp(o->org, name) != 0)
    return 0;
  o->n++;
  return json_object_object_add(o->orgs, name, json_object_new_int64(counter_val(val, len)))
             ? WV_ENOMEM
             : 0;
}

static bool valid_date(const char *d) {
  struct tm tm = {0};
  if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
    return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && !isdigit((unsigned char)d[i]))
      return false;
  const char *end = strptime(d, "%Y-%m-%d", &tm);
  return end && !*end && tm.tm_mon < 12 && tm.tm_mday >= 1 && tm.tm_mday <= 31;
}

static int answer(wv_req_t *req, wv_resp_t *resp, wv_usage_t what, bool v3) {
  const wv_app_t *app = req->app;
  if (!app->cfg->wave_metrics_enabled)
    return wv_resp_api_error(req, resp, 404, "Metrics are not enabled on this server");
  if (!wv_ops_basic_user(req, app->cfg)) {
    int rc = wv_resp_api_error(req, resp, 401, "Unauthorized");
    return rc ? rc : wv_resp_header(resp, "WWW-Authenticate", "Basic realm=\"waved\"");
  }
  const char *date = wv_req_query(req, "date"), *org = wv_req_query(req, "org");
  const char *arch_q = v3 ? wv_req_query(req, "arch") : NULL;
  if (date && !valid_date(date))
    return wv_resp_api_error(req, resp, 400, "date format should be yyyy-MM-dd");
  const char *arch = arch_q ? norm_arch(arch_q) : "*";
  if (!arch)
    return wv_resp_api_error(req, resp, 400,
                             "arch should be one of [amd64, x86_64, x86-64, arm64, aarch64, arm]");
  char orgl[ORG_MAX];
  if (org && (strlen(org) >= sizeof orgl || strpbrk(org, "/*") || !*org))
    return wv_resp_api_error(req, resp, 400, "Invalid org");
  if (org) {
    for (size_t i = 0; org[i]; i++)
      orgl[i] = (char)tolower((unsigned char)org[i]);
    orgl[strlen(org)] = '\0';
  }
  char key[96 + ORG_MAX], prefix[64];
  snprintf(key, sizeof key, "usage/%s/%s/%s/%s", names[what], date ? date : "*", org ? orgl : "*",
           arch);
  int64_t count = 0;
  int rc = wv_store_view(app->store, WV_DB_COUNTERS, key, get_cb, &count);
  if (rc && rc != WV_ENOTFOUND)
    return rc;
  snprintf(prefix, sizeof prefix, "usage/%s/%s/", names[what], date ? date : "*");
  orgs_t o = {.orgs = json_object_new_object(), .arch = arch, .org = org ? orgl : NULL};
  json_object *out = json_object_new_object();
  rc = o.orgs && out ? wv_store_scan(app->store, WV_DB_COUNTERS, prefix, orgs_cb, &o) : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(out, "metric", names[what]);
  rc = rc ? rc : wv_json_add_int(out, "count", count);
  if (!rc && v3 && arch_q)
    rc = wv_json_add_str(out, "arch", arch);
  if (!rc && json_object_object_add(out, "orgs", o.orgs)) /* {} too: Wave's shape */
    rc = WV_ENOMEM;
  else if (!rc)
    o.orgs = NULL;
  if (rc) {
    json_object_put(o.orgs);
    json_object_put(out);
    return rc;
  }
  return wv_resp_json(req, resp, 200, out);
}

static int which(wv_req_t *req, wv_usage_t *out) {
  const char *m = wv_req_param(req, "metric");
  for (int i = 0; m && i < WV_USAGE_COUNT; i++)
    if (i != WV_USAGE_FUSION && strcmp(m, names[i]) == 0) {
      *out = (wv_usage_t)i;
      return 0;
    }
  return WV_ENOTFOUND;
}

int wv_usage_metric_v2_handler(wv_req_t *req, wv_resp_t *resp) {
  wv_usage_t w;
  return which(req, &w) ? wv_resp_api_error(req, resp, 404, "Page Not Found")
                        : answer(req, resp, w, false);
}
int wv_usage_metric_v3_handler(wv_req_t *req, wv_resp_t *resp) {
  wv_usage_t w;
  return which(req, &w) ? wv_resp_api_error(req, resp, 404, "Page Not Found")
                        : answer(req, resp, w, true);
}
int wv_usage_fusion_v2_handler(wv_req_t *req, wv_resp_t *resp) {
  return answer(req, resp, WV_USAGE_FUSION, false);
}
int wv_usage_fusion_v3_handler(wv_req_t *req, wv_resp_t *resp) {
  return answer(req, resp, WV_USAGE_FUSION, true);
}
