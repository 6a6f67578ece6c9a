/*
 * http/overview.h — GET /view: the operator's overview page (docs/operations.md,
 * "Overview page"): health and key counters, running jobs with the tail of
 * their logs (the page refreshes itself while anything runs: no script), and
 * the recent builds, mirrors and scans with links to their pages. Restricted
 * like /metrics (wv_ops_access).
 */
#ifndef WV_OVERVIEW_H
#define WV_OVERVIEW_H

#include "http/http.h"

/* GET /view (routed by http/routes.c). */
int wv_overview_handler(wv_req_t *req, wv_resp_t *resp);

#endif
