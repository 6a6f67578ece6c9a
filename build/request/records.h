/*
 * build/request/records.h — the JSON shapes of a container request once it exists:
 * the persisted record (WaveContainerRecord, contract §3.5), its legacy
 * description (DescribeWaveContainerResponse, §3.4), the live status
 * (ContainerStatusResponse, §3.6) and the containerConfig as stored.
 *
 * The persisted record is one flat JSON object in WV_DB_REQUESTS under the
 * request id, served as it is by GET /v1alpha2/container/{id}. It is flat on
 * purpose: the /v2 proxy adds sourceDigest/waveDigest later by a
 * read-modify-write of top-level keys. Null and empty values are omitted
 * (contract §1.1); data: payloads read "data:DATA+OMITTED".
 *
 * Ownership: builders return a new json_object (the caller's reference) or
 * NULL on OOM. Thread-safe (no shared state).
 */
#ifndef WV_BUILD_RECORDS_H
#define WV_BUILD_RECORDS_H

#include "build/request/request.h"
#include "registry/token.h"

#include <json-c/json.h>

#define WV_RECORD_DATA_OMITTED "data:DATA+OMITTED"

typedef enum {
  WV_RECORD_CC_FOR_TOKEN = 0, /* data: locations become cas:<gzipDigest> */
  WV_RECORD_CC_FOR_RECORD,    /* data: locations become data:DATA+OMITTED */
} wv_record_cc_mode_t;

/* containerConfig as a JSON object; NULL when cc is empty (or on OOM: check *oom). */
json_object *wv_record_cc_to_json(const wv_container_config_t *cc, wv_record_cc_mode_t mode,
                                  bool *oom);

/* The persisted record (contract §3.5). cc_record is consumed (may be NULL). */
json_object *wv_record_new(const wv_creq_t *r, const wv_creq_plan_t *plan,
                           const wv_creq_result_t *res, const char *client_ip,
                           json_object *cc_record);

/* True for a token / request id (1..64 lowercase letters and digits). */
bool wv_record_id_valid(const char *id);

/*
 * The persisted record (contract §3.5) of request id, parsed (*rec the
 * caller's reference). 0, WV_ENOTFOUND (also for an id that cannot exist),
 * WV_ESTORE, WV_ENOMEM.
 */
int wv_record_load(const wv_app_t *app, const char *id, json_object **rec);

/* Contract §3.4 from a persisted record. */
json_object *wv_record_describe(json_object *rec);

/*
 * Contract §3.6 for the token record of a plain request: DONE, succeeded,
 * creationTime, and duration as Wave's decimal seconds.
 */
json_object *wv_record_status(const wv_token_rec_t *t, int64_t now_ns);

/*
 * The zone offset of a client timestamp ("…+02:00" → "+02:00", "…Z" → "Z"),
 * as an arena string; NULL when s is NULL or not an ISO-8601 date-time.
 */
const char *wv_record_zone_id(wv_arena_t *a, const char *s);

/* "2.4.20" from a Fusion layer URL ".../releases/pkg/2/4/20/fusion-amd64.tar.gz"; NULL if none. */
const char *wv_record_fusion_version(wv_arena_t *a, const wv_container_config_t *cc);

#endif
