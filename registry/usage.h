/*
 * registry/usage.h — Wave's usage counters and their API (docs/compatibility.md
 * "Credential validation and usage metrics"): builds, pulls, fusion pulls, mirrors
 * and scans, by day, by organisation (the e-mail domain of the account, when
 * its name is an e-mail address) and by architecture, kept in the state
 * store's counters. Counted only when wave.metrics.enabled.
 */
#ifndef WV_REGISTRY_USAGE_H
#define WV_REGISTRY_USAGE_H

#include "core/app.h"
#include "http/http.h"

typedef enum {
  WV_USAGE_BUILDS = 0,
  WV_USAGE_PULLS,
  WV_USAGE_FUSION,
  WV_USAGE_MIRRORS,
  WV_USAGE_SCANS,
  WV_USAGE_COUNT
} wv_usage_t;

/*
 * Counts one event for user (a wave.accounts name, NULL = anonymous: only the
 * org-less counters) on arch (any spelling of contract §4.7's list, or NULL). The
 * increments are queued to the store's committer: the caller never waits.
 */
void wv_usage_count(const wv_app_t *app, wv_usage_t what, const char *user, const char *arch);

/*
 * GET /v1alpha2/metrics/{metric} and /v1alpha3/metrics/{metric}, and the
 * fusion pulls of each (registry/routes.c routes them).
 */
int wv_usage_metric_v2_handler(wv_req_t *req, wv_resp_t *resp);
int wv_usage_metric_v3_handler(wv_req_t *req, wv_resp_t *resp);
int wv_usage_fusion_v2_handler(wv_req_t *req, wv_resp_t *resp);
int wv_usage_fusion_v3_handler(wv_req_t *req, wv_resp_t *resp);

#endif
