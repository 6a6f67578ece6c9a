/*
 * build/mirror/request.c — a mirror request, from the checked request to the
 * answer (contract §7.1; the steps are listed in build/mirror/request.h).
 *
 * Nothing runs before every check passed: the source digest, the target
 * credentials and the cache are looked at first, and only then is the entry
 * written. The entry and the PENDING record are one atomic put-if-absent, so
 * of two identical requests exactly one submits the job and the other reads
 * a complete entry. If the submit fails both are deleted again.
 */
#include "build/build_int.h"
#include "build/mirror/request.h"
#include "build/request/records.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/timefmt.h"
#include "registry/copy.h"
#include "registry/upstream.h"
#include "registry/usage.h"
#include "scan/scan.h"
#include "storage/store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHECK_TIMEOUT_MS 20000 /* each HEAD / probe made while the client waits */

/* What the request ends up pointing at. */
typedef struct {
  const char *id; /* mirror id; NULL when cached without a record of ours */
  bool cached;    /* the target holds the image, or the shared mirror ended */
  int succeeded;  /* 1, 0, or -1 while the mirror runs */
  bool started;   /* this request started the mirror job */
} track_t;

int wv_mirror_target(wv_arena_t *a, const char *build_repository, const wv_ref_t *src,
                     wv_ref_t *out, const char **msg) {
  size_t n = strlen(build_repository);
  while (n && build_repository[n - 1] == '/')
    n--;
  const char *s = wv_arena_sprintf(a, "%.*s/%s%c%s", (int)n, build_repository, src->path,
                                   src->is_digest ? '@' : ':', src->reference);
  return s ? wv_ref_parse(a, s, out, msg) : WV_ENOMEM;
}

static bool has_credentials(const wv_config_t *cfg, const char *registry) {
  for (size_t i = 0; i < cfg->registries.len; i++) {
    const wv_config_registry_t *r = &cfg->registries.items[i];
    if (strcasecmp(r->host, registry) == 0 && r->username && *r->username)
      return true;
  }
  return false;
}

/* Steps 2 and 3 of the header. */
static int check_source_and_target(const wv_app_t *app, wv_arena_t *a, const wv_ref_t *src,
                                   const char *target, const wv_ref_t *tref, const char *who,
                                   char *digest, const char **msg) {
  char why[512];
  /* The target's credentials push only for those the registry's policy allows. */
  if (wv_upstream_perm(app->upstream, tref->registry, who) < WV_PERM_PUSH) {
    wv_upstream_denied(tref->registry, who, true, why, sizeof why);
    *msg = wv_arena_sprintf(a, "Container repository '%s' - %s", target, why);
    return WV_EDENIED;
  }
  int rc = wv_copy_head_digest(app->upstream, src->registry, src->path, src->reference, who,
                               CHECK_TIMEOUT_MS, digest, NULL);
  if (rc == WV_ENOMEM)
    return rc;
  if (rc == WV_EDENIED) {
    wv_upstream_denied(src->registry, who, false, why, sizeof why);
    *msg = wv_arena_sprintf(a, "Container image '%s' - %s", wv_ref_full_name(a, src), why);
    return WV_EDENIED;
  }
  if (rc && rc != WV_ENOTFOUND && rc != WV_EAUTH && rc != WV_EUPSTREAM) {
    *msg = wv_arena_sprintf(a, "Unable to reach registry '%s' - %s", src->registry,
                            rc == WV_ETIMEOUT ? "it did not answer in time" : "connection failed");
    return WV_EUPSTREAM;
  }
  if (rc) {
    *msg = wv_arena_sprintf(a, "Container image '%s' does not exist or access is not authorized",
                            wv_ref_full_name(a, src));
    return WV_EINVAL;
  }
  return wv_mirror_check_target_auth(app, a, tref->registry, target, msg);
}

int wv_mirror_check_target_auth(const wv_app_t *app, wv_arena_t *a, const char *registry,
                                const char *target, const char **msg) {
  if (!has_credentials(app->cfg, registry) && app->upstream &&
      wv_copy_registry_wants_auth(app->upstream, registry, CHECK_TIMEOUT_MS)) {
    *msg = wv_arena_sprintf(a, "Missing credentials for container repository: %s", target);
    return WV_EINVAL;
  }
  return 0;
}

/* ---- the shared entry ------------------------------------------------------------ */

static const char *entry_key(wv_arena_t *a, const char *target) {
  return wv_arena_sprintf(a, "target:%s", target);
}

/* The PENDING MirrorResult (contract §7.2) as stored. */
static const char *record_text(wv_arena_t *a, const char *id, const char *digest,
                               const char *source, const char *target, int64_t now_ns,
                               const char *offset, const char *user) {
  json_object *o = json_object_new_object();
  char t[WV_TIME_ISO_STRLEN];
  int rc = o ? wv_time_format_iso(now_ns, t, sizeof t) : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "mirrorId", id);
  rc = rc ? rc : wv_json_add_str(o, "digest", digest);
  rc = rc ? rc : wv_json_add_str(o, "sourceImage", source);
  rc = rc ? rc : wv_json_add_str(o, "targetImage", target);
  rc = rc ? rc : wv_json_add_str(o, "creationTime", t);
  rc = rc ? rc : wv_json_add_str(o, "offsetId", offset);
  rc = rc ? rc : wv_json_add_str(o, "userName", user);
  rc = rc ? rc : wv_json_add_str(o, "status", "PENDING");
  const char *s = rc ? NULL : wv_json_compact(o);
  s = s ? wv_arena_strdup(a, s) : NULL;
  json_object_put(o);
  return s;
}

/* Reads the entry of target: its mirror id and digest (arena strings). */
static int entry_read(const wv_app_t *app, wv_arena_t *a, const char *key, const char **id,
                      const char **digest) {
  json_object *o = NULL;
  int rc = wv_store_get_json(app->store, WV_DB_MIRRORS, key, 0, 4, &o, NULL);
  const char *i = NULL, *d = NULL;
  if (!rc && (wv_json_get_str(o, "mirrorId", &i) || wv_json_get_str(o, "digest", &d) || !i || !d))
    rc = WV_ESTORE;
  if (!rc) {
    *id = wv_arena_strdup(a, i);
    *digest = wv_arena_strdup(a, d);
    rc = *id && *digest ? 0 : WV_ENOMEM;
  }
  json_object_put(o);
  return rc;
}

/* The copy, then (scanMode async/required) the scan of the target once it is there. */
static int submit_job(const wv_app_t *app, const char *id, const char *scan_id) {
  wv_job_step_t steps[2] = {
      {.type = WV_JOB_STEP_FN, .name = "copy", .fn = WV_MIRROR_COPY_FN, .arg = id},
      {.type = WV_JOB_STEP_FN,
       .name = "scan",
       .fn = WV_MIRROR_SCAN_FN,
       .arg = scan_id,
       .may_fail = true}};
  wv_job_spec_t spec = {
      .id = id, .kind = WV_MIRROR_KIND, .steps = steps, .nsteps = scan_id ? 2 : 1};
  int rc = wv_job_submit(app->jobs, &spec, NULL);
  if (!rc) /* Wave's mirrors counter (registry/usage.h) */
    wv_usage_count(app, WV_USAGE_MIRRORS, NULL, NULL);
  return rc ? rc : wv_mirror_watch(app, id);
}

typedef struct {
  const wv_creq_plan_t *plan;
  const wv_creq_t *r;
  const char *source, *target, *digest;
  const char *scan_id, *scan_mode; /* the target's scan, NULL when none is due */
  int64_t now_ns;
} mreq_t;

/* Step 5: creates the entry and starts the mirror, or joins the one running. */
static int start_or_join(const wv_app_t *app, wv_arena_t *a, const mreq_t *q, track_t *tr) {
  char hex[13];
  int rc = wv_rand_hex12(hex);
  if (rc)
    return rc;
  const char *id = wv_arena_sprintf(a, WV_MIRROR_ID_PREFIX "%s", hex);
  const char *key = entry_key(a, q->target);
  const char *entry = wv_arena_sprintf(
      a, "{\"mirrorId\":\"" WV_MIRROR_ID_PREFIX "%s\",\"digest\":\"%s\"}", hex, q->digest);
  const char *rec = record_text(a, id, q->digest, q->source, q->target, q->now_ns,
                                wv_record_zone_id(a, q->r->timestamp), q->plan->user);
  if (!id || !key || !entry || !rec)
    return WV_ENOMEM;
  int64_t now_ms = q->now_ns / WV_NS_PER_MS;
  wv_store_op_t ops[2] = {
      {.kind = WV_STORE_PUT_NX,
       .db = WV_DB_MIRRORS,
       .key = key,
       .val = entry,
       .val_len = strlen(entry),
       .expires_ms = now_ms + app->cfg->mirror_status_ttl_ms},
      {.kind = WV_STORE_PUT_NX,
       .db = WV_DB_MIRRORS,
       .key = id,
       .val = rec,
       .val_len = strlen(rec),
       .expires_ms = now_ms + app->cfg->record_ttl_ms},
  };
  size_t failed = 0;
  rc = wv_store_apply(app->store, ops, 2, &failed);
  if (rc == WV_EEXISTS && failed == 0) {
    const char *old_id = NULL, *old_digest = NULL;
    wv_job_info_t info;
    if ((rc = entry_read(app, a, key, &old_id, &old_digest)))
      return rc == WV_ENOTFOUND ? WV_EBUSY : rc; /* expired in between: let the client retry */
    bool ended = wv_job_get(app->jobs, old_id, &info) == 0 && info.state >= WV_JOB_SUCCEEDED;
    if (!ended || strcmp(old_digest, q->digest) == 0) {
      *tr = (track_t){old_id, ended, ended ? info.state == WV_JOB_SUCCEEDED : -1, false};
      return 0;
    }
    /* The shared mirror copied another digest of the source: mirror again. */
    ops[0].kind = WV_STORE_PUT;
    rc = wv_store_apply(app->store, ops, 2, NULL);
  }
  if (rc)
    return rc;
  if ((rc = submit_job(app, id, q->scan_id))) {
    wv_error("mirror %s: cannot start the job: %s", id, wv_strerror(rc));
    wv_store_op_t undo[2] = {{.kind = WV_STORE_DEL, .db = WV_DB_MIRRORS, .key = key},
                             {.kind = WV_STORE_DEL, .db = WV_DB_MIRRORS, .key = id}};
    wv_store_apply(app->store, undo, 2, NULL);
    return rc;
  }
  wv_info("mirror %s: %s -> %s (%s)", id, q->source, q->target, q->plan->user);
  *tr = (track_t){id, false, -1, true};
  return 0;
}

/* scanMode async/required: the target's scan (id from its name and digest), reserved first. */
static int reserve_scan(const wv_app_t *app, wv_arena_t *a, mreq_t *q, bool *is_new) {
  const char *mode = q->r->scan_mode;
  if (!mode || strcmp(mode, "none") == 0 || !app->cfg->scan_enabled || q->r->dry_run)
    return 0;
  char *id = wv_arena_alloc(a, WV_SCAN_ID_MAX + 1);
  int rc =
      id ? wv_scan_reserve_image(app, q->target, q->digest, false, q->plan->platform, id, is_new)
         : WV_ENOMEM;
  q->scan_id = rc ? NULL : id;
  q->scan_mode = rc ? NULL : mode;
  return rc;
}

/* Step 4, then 5: what the request points at. */
static int track_mirror(const wv_app_t *app, wv_arena_t *a, const mreq_t *q, const wv_ref_t *tref,
                        track_t *tr) {
  char have[WV_DIGEST_STRLEN] = "";
  bool cached = wv_copy_head_digest(app->upstream, tref->registry, tref->path, tref->reference,
                                    q->plan->user, CHECK_TIMEOUT_MS, have, NULL) == 0 &&
                strcmp(have, q->digest) == 0;
  if (q->r->dry_run) {
    char hex[13];
    int rc = wv_rand_hex12(hex);
    *tr = (track_t){rc ? NULL : wv_arena_sprintf(a, WV_MIRROR_ID_PREFIX "%s_0", hex), cached, 1,
                    false};
    return rc ? rc : tr->id ? 0 : WV_ENOMEM;
  }
  if (!cached)
    return start_or_join(app, a, q, tr);
  char *id = NULL;
  size_t len = 0;
  const char *key = wv_arena_sprintf(a, "ok:%s@%s", q->target, q->digest);
  if (key && wv_store_get(app->store, WV_DB_MIRRORS, key, &id, &len, NULL) == 0) {
    tr->id = wv_arena_strdup(a, id);
    free(id);
  }
  tr->cached = true;
  tr->succeeded = 1;
  return 0;
}

/* ---- token, records, response ------------------------------------------------------ */

static int encode(const wv_app_t *app, wv_arena_t *a, const mreq_t *q, const wv_ref_t *tref,
                  const track_t *tr, const char *client_ip, wv_creq_result_t *res, wv_buf_t *tok,
                  const char **rec) {
  wv_token_rec_t t = wv_creq_token_rec(res, tref, q->plan, client_ip);
  t.kind = WV_TOKEN_MIRROR;
  t.container_image = q->target;
  t.target_image = q->target;
  t.build_id = tr->id;
  t.scan_id = q->scan_id;
  t.scan_mode = q->scan_mode;
  t.scan_levels = q->scan_id ? wv_creq_scan_levels(a, q->r) : NULL;
  wv_buf_reset(tok);
  int rc = wv_token_encode(&t, tok);
  if (rc)
    return rc;
  json_object *o = wv_record_new(q->r, q->plan, res, client_ip, NULL);
  rc = o ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "buildId", tr->id);
  if (!rc && tr->id)
    rc = wv_json_add_bool(o, "buildNew", !tr->cached);
  const char *s = rc ? NULL : wv_json_compact(o);
  *rec = s ? wv_arena_strdup(a, s) : NULL;
  json_object_put(o);
  (void)app;
  return *rec ? 0 : rc ? rc : WV_ENOMEM;
}

/* A mirror's own part of a minting (wv_creq_mint_t's arg). */
typedef struct {
  const mreq_t *q;
  const wv_ref_t *tref;
  const track_t *tr;
} mint_t;

static int encode_cb(const wv_creq_mint_t *m, wv_buf_t *tok, const char **rec) {
  const mint_t *x = m->arg;
  return encode(m->app, m->a, x->q, x->tref, x->tr, m->client_ip, m->res, tok, rec);
}

/* Step 6: the token and the persisted request record, durably (wv_creq_mint). */
static int mint(const wv_app_t *app, wv_arena_t *a, const mreq_t *q, const wv_ref_t *tref,
                const track_t *tr, const char *client_ip, wv_creq_result_t *res) {
  mint_t x = {q, tref, tr};
  wv_creq_mint_t m = {app, a, q->r, q->plan, client_ip, res, &x};
  return wv_creq_mint(&m, encode_cb);
}

static json_object *response(const wv_creq_result_t *res, const char *target, const track_t *tr) {
  json_object *o = json_object_new_object();
  int rc = o ? 0 : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_str(o, "requestId", res->token);
  rc = rc ? rc : wv_json_add_str(o, "targetImage", target);
  rc = rc ? rc : wv_json_add_str(o, "containerImage", target);
  rc = rc ? rc : wv_json_add_str(o, "buildId", tr->id);
  if (!rc && (tr->id || tr->cached))
    rc = wv_json_add_bool(o, "cached", tr->cached);
  rc = rc ? rc : wv_json_add_bool(o, "freeze", false);
  rc = rc ? rc : wv_json_add_bool(o, "mirror", true);
  rc = rc ? rc : wv_json_add_str(o, "scanId", res->scan_id);
  if (!rc && tr->succeeded >= 0 && !res->scan_id) /* contract §3.3: omitted when scanId is set */
    rc = wv_json_add_bool(o, "succeeded", tr->succeeded == 1);
  return wv_json_finish(o, rc);
}

int wv_mirror_submit(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                     const wv_creq_plan_t *plan, const char *client_ip, int64_t now_ns,
                     json_object **resp, const char **msg) {
  *resp = NULL;
  if (!app->upstream || !app->jobs) { /* unit tests of the front door run without them */
    *msg = "Mirror requests cannot be served: no upstream registry access";
    return WV_EUNSUPPORTED;
  }
  wv_ref_t tref;
  char digest[WV_DIGEST_STRLEN];
  int rc = wv_mirror_target(a, r->build_repository, &plan->image, &tref, msg);
  const char *target = rc ? NULL : wv_ref_full_name(a, &tref);
  if (!rc && !target)
    rc = WV_ENOMEM;
  rc = rc ? rc
          : check_source_and_target(app, a, &plan->image, target, &tref, plan->user, digest, msg);
  mreq_t q = {.plan = plan,
              .r = r,
              .source = wv_ref_full_name(a, &plan->image),
              .target = target,
              .digest = digest,
              .now_ns = now_ns};
  track_t tr = {0};
  bool scan_new = false;
  rc = rc ? rc : reserve_scan(app, a, &q, &scan_new);
  rc = rc ? rc : q.source ? track_mirror(app, a, &q, &tref, &tr) : WV_ENOMEM;
  wv_creq_result_t res = {.target_image = target,
                          .container_image = q.source,
                          .scan_id = q.scan_id,
                          .scan_new = scan_new,
                          .created_ns = now_ns,
                          .expires_ns = now_ns + app->cfg->token_ttl_ms * WV_NS_PER_MS};
  rc = rc ? rc : mint(app, a, &q, &tref, &tr, client_ip, &res);
  if (rc) {
    if (q.scan_id && scan_new && !tr.started)
      wv_scan_abandon(app, q.scan_id, "The mirror request could not be stored");
    return rc;
  }
  wv__build_scan_outcome(app, q.scan_id, WV_SCAN_FOR_MIRROR, scan_new, tr.started ? tr.id : NULL,
                         tr.succeeded == 1, tr.succeeded == 0);
  *resp = response(&res, target, &tr);
  return *resp ? 0 : WV_ENOMEM;
}
