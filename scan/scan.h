/*
 * scan/scan.h — security scans as jobs (contract §3.6, §8.2, §4.6, §8.1): ids,
 * records, the "scan" job kind, and what the front door and the build and
 * mirror flows call.
 *
 * A scan has an id "sc-<16 hex>_<n>": the hex is wv_siphash_pairs of
 * ("image", <image>) and, when known, ("digest", <digest>); n counts the
 * scans of that image (WV_DB_COUNTERS "scan/<hex>"). The image keeps its id
 * for wave.scan.id.duration (7d), so requests within it share one scan; a
 * failed scan releases the id and the next request scans again with n+1.
 *
 * Life of a scan:
 *   wv_scan_reserve   the id (cached or new); a new one gets a PENDING record
 *                     and remembers where to read the image
 *   wv_scan_start     queues the job, which records its origin (requestId /
 *                     buildId / mirrorId); a no-op for a scan started or ended
 *   (job "scan")      function step on a worker: stream the layers
 *                     (registry_source.h), inventory, match OSV, write the
 *                     record SUCCEEDED (or FAILED), the SPDX SBOM and the
 *                     per-severity counts; the job log is the scan log
 *   wv_scan_abandon   for a reserved scan that will never run (its build
 *                     failed): FAILED record, id released
 *
 * Store layout (WV_DB_SCANS; only this file and the scan/ files that include
 * scan/scan_int.h know it):
 *   "sc-<hex>_<n>"      the contract §8.2 record, served as stored
 *   "id/<hex>"          the image's current scan id    (wave.scan.id.duration)
 *   "req/sc-..."        where to read the image, for the job (and its re-run)
 *   "sum/sc-..."        {"HIGH":2,...} over every finding, before the limit
 *   "spdx/sc-..."       the SPDX 2.3 document, zstd-compressed
 * Records and their companions expire after wave.scan.status.duration (5d),
 * failed ones after wave.scan.failure.duration (30m).
 *
 * Thread rules: every function may block (store writes, upstream HEAD); call
 * from workers. wv_scan_register before the job engine starts.
 */
#ifndef WV_SCAN_SCAN_H
#define WV_SCAN_SCAN_H

#include "core/app.h"
#include "registry/token.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_SCAN_ID_MAX 48 /* "sc-" + 16 hex + "_" + a counter, without the NUL */
#define WV_SCAN_KIND "scan"
#define WV_SCAN_LOGS_MAX 10000 /* characters of scanner output kept in a failed record */

struct wv_job_engine;
struct wv_router;

typedef enum {
  WV_SCAN_FOR_REQUEST = 0, /* plain container request: record field requestId */
  WV_SCAN_FOR_BUILD,       /* buildId */
  WV_SCAN_FOR_MIRROR,      /* mirrorId */
} wv_scan_origin_t;

/* What to scan. Strings are borrowed. */
typedef struct {
  const char *image; /* full name for the id and the record, e.g. docker.io/library/ubuntu:latest */
  const char *digest;   /* manifest digest when known (it enters the id); NULL otherwise */
  const char *registry; /* where to read it: upstream host[:port]; NULL = the embedded registry */
  const char *repo;     /* repository path, e.g. library/ubuntu or wave/build */
  const char
      *reference;       /* tag or digest to read; the digest when known keeps scan and id in step */
  const char *platform; /* "linux/amd64" (NULL = that) */
} wv_scan_target_t;

/* Registers the "scan" job kind and its function step. fn_arg app must outlive the engine. */
int wv_scan_register(struct wv_job_engine *e, const wv_app_t *app);

/* "sc-" + wv_siphash_pairs(image[, digest]) (without the "_n"), into out (20 bytes). */
int wv_scan_id_hash(const char *image, const char *digest, char out[20]);

/*
 * The scan id of t: the cached one, or a new one with a PENDING record
 * (*is_new true). Scanning must be enabled (WV_EUNSUPPORTED otherwise).
 * Returns 0, WV_EINVAL (no image/repo/reference), WV_ESTORE, WV_ENOMEM.
 */
int wv_scan_reserve(const wv_app_t *app, const wv_scan_target_t *t, char id[WV_SCAN_ID_MAX + 1],
                    bool *is_new);

/*
 * Queues the job of scan id; its origin (origin_id may be NULL) goes into
 * the record when the job starts. Idempotent: a scan whose job exists, or
 * that ended, is left alone (0). A job that cannot be queued fails the scan
 * (FAILED record, id released) and the error is returned: WV_EBUSY (queue
 * full), WV_ENOTFOUND (no such scan), ...
 */
int wv_scan_start(const wv_app_t *app, const char *id, wv_scan_origin_t origin,
                  const char *origin_id);

/* reserve + (start when new). */
int wv_scan_submit(const wv_app_t *app, const wv_scan_target_t *t, wv_scan_origin_t origin,
                   const char *origin_id, char id[WV_SCAN_ID_MAX + 1]);

/*
 * The manifest digest of image (a full name) in its upstream registry, from
 * a HEAD (Docker-Content-Digest), or the reference itself when it is a
 * digest; into out (72 bytes). 0, WV_EINVAL (bad name), WV_ENOTFOUND,
 * WV_EUPSTREAM.
 */
int wv_scan_image_digest(const wv_app_t *app, const char *image, char out[72]);

/*
 * wv_scan_reserve for an image given by name: image is a full name
 * (registry/path:tag or @digest); embedded reads it from the embedded
 * registry (the name's registry part is then ignored, e.g.
 * "<authority>/wave/build:<tag>"). digest may be NULL: the id is then from
 * the name alone, as Wave does for builds. WV_EINVAL for a bad name.
 */
int wv_scan_reserve_image(const wv_app_t *app, const char *image, const char *digest, bool embedded,
                          const char *platform, char id[WV_SCAN_ID_MAX + 1], bool *is_new);

/*
 * The hook for builds and mirrors (contract §8.1), called once the image was
 * pushed: reserve_image + start. mode "none" or NULL, or scanning disabled:
 * *id = "" and 0 (no scan). A build that wants its scan id in the response
 * before it builds calls wv_scan_reserve_image at request time, then
 * wv_scan_start(id) after a successful push, or wv_scan_abandon(id) when
 * the build failed.
 */
int wv_scan_submit_for_image(const wv_app_t *app, const char *image, const char *digest,
                             bool embedded, const char *platform, wv_scan_origin_t origin,
                             const char *origin_id, const char *mode, char id[WV_SCAN_ID_MAX + 1]);

/* Fails a reserved scan that will not run (reason goes to its logs) and releases its id. */
int wv_scan_abandon(const wv_app_t *app, const char *id, const char *reason);

/* GET /v1alpha1/scans/{id}, /spdx, /logs (scan/routes.c). */
int wv_scan_routes_register(struct wv_router *r);

/*
 * The contract §8.2 record of scan id, parsed (caller's reference). 0, WV_ENOTFOUND,
 * WV_ESTORE, WV_ENOMEM.
 */
int wv_scan_load_record(const wv_app_t *app, const char *id, json_object **out);

/*
 * The per-severity counts of a succeeded scan over every finding (the
 * record's list stops at wave.scan.vulnerability.limit), e.g. {"HIGH":2};
 * the caller's reference, or NULL when the scan has none stored.
 */
json_object *wv_scan_load_counts(const wv_app_t *app, const char *id);

/* True when s has the shape of a scan id (sc-<16 hex>_<digits>). */
bool wv_scan_id_valid(const char *s);

/*
 * contract §3.6 for a request with a scan: adds scanId to status (the §3.6 object
 * for the request without its scan) and, for scanMode "required" when that
 * status is DONE and not failed (a running or failed build/mirror is left as
 * it is), turns it into SCANNING (no succeeded, no duration) until the scan
 * ends, then DONE with vulnerabilities, succeeded, reason and detailsUri by
 * the allowed levels; duration = the request's + the scan's (as Wave). A
 * no-op when t has no scan id. Returns 0, WV_ENOMEM, WV_ESTORE.
 */
int wv_scan_status_fill(const wv_app_t *app, const wv_token_rec_t *t, json_object *status);

/* Pure part of the above, for tests: levels "LOW,MEDIUM" (NULL = none); counts {"HIGH":1}. */
int wv_scan_levels_verdict(const char *levels, json_object *counts, bool *succeeded, char *reason,
                           size_t reason_len);

#endif
