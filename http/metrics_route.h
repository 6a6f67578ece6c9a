/*
 * http/metrics_route.h — GET /metrics (Prometheus text format) and the access
 * rule it shares with the /view overview (metrics.allow-addresses,
 * metrics.accounts; docs/operations.md "Metrics").
 */
#ifndef WV_METRICS_ROUTE_H
#define WV_METRICS_ROUTE_H

#include "core/config.h"
#include "http/router.h"

/*
 * Reads the access rule from cfg and turns the hot-path counters on or off
 * (metrics.enabled). 0 or WV_EINVAL (a bad metrics.allow-addresses, logged).
 * Before the server starts (http/routes.c calls it).
 */
int wv_ops_setup(const wv_config_t *cfg);

/* GET /metrics (routed by http/routes.c when metrics.enabled). */
int wv_ops_metrics_handler(wv_req_t *req, wv_resp_t *resp);

/*
 * The operator pages' access check: 0 when the client address is in
 * metrics.allow-addresses or the request carries HTTP Basic credentials of an
 * account listed in metrics.accounts; else WV_ANSWERED with resp holding the
 * answer (401 with a Basic challenge when accounts may log in, else 403), or
 * a negative WV_E* code.
 */
int wv_ops_access(wv_req_t *req, wv_resp_t *resp);

/*
 * The wave.accounts name of the request's HTTP Basic credentials (arena), or
 * NULL when it has none or they do not match an account.
 */
const char *wv_ops_basic_user(wv_req_t *req, const wv_config_t *cfg);

#endif
