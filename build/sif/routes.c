/*
 * build/sif/routes.c — GET /v1alpha1/builds/{buildId}/sif: the SIF of a
 * Singularity build over plain HTTP(S) (beyond Wave; docs/singularity.md),
 * for clusters whose Singularity cannot pull oras://. The sif-write step
 * stores the file in the blob store and names it in the build record
 * (sifDigest, sifSize), which keeps it for the record's lifetime
 * (wave.build.record.duration). Answers: 200 with Content-Length, or 206
 * for one `Range: bytes=` range (416 when unsatisfiable); the digest in
 * Docker-Content-Digest and Digest (RFC 3230); 404 when the build is
 * unknown, not a Singularity build, or not finished.
 */
#include "build/sif/sifbuild.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "http/resp.h"
#include "http/router.h"
#include "storage/cas.h"
#include "storage/store.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD_MAX (4u << 20)

/* One range of "bytes=a-b", "bytes=a-", "bytes=-n" for a file of size. 0, or -1 (416). */
static int parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len) {
  if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
    return -1;
  const char *p = h + 6, *dash = strchr(p, '-');
  if (!dash || size == 0)
    return -1;
  char *end;
  if (p == dash) { /* suffix: the last n bytes */
    unsigned long long n = strtoull(dash + 1, &end, 10);
    if (end == dash + 1 || *end || n == 0)
      return -1;
    *len = n < size ? n : size;
    *off = size - *len;
    return 0;
  }
  unsigned long long a = strtoull(p, &end, 10), b = size - 1;
  if (end != dash || a >= size)
    return -1;
  if (dash[1]) {
    b = strtoull(dash + 1, &end, 10);
    if (*end || b < a)
      return -1;
    if (b >= size)
      b = size - 1;
  }
  *off = a, *len = b - a + 1;
  return 0;
}

/* The SIF's digest and size from the build record; WV_ENOTFOUND when there is none. */
static int sif_of(wv_req_t *req, const char *id, const char **digest) {
  const wv_app_t *app = req->app;
  json_object *rec = NULL;
  int rc = wv_store_get_json(app->store, WV_DB_BUILDS, id, RECORD_MAX, 0, &rec, NULL);
  const char *d = NULL;
  if (!rc && (wv_json_get_str(rec, "sifDigest", &d) || !wv_cas_digest_valid(d)))
    rc = WV_ENOTFOUND;
  *digest = rc ? NULL : wv_arena_strdup(req->arena, d);
  json_object_put(rec);
  return rc ? rc : (*digest ? 0 : WV_ENOMEM);
}

static int download(wv_req_t *req, wv_resp_t *resp) {
  const wv_app_t *app = req->app;
  const char *id = wv_req_param(req, "buildId"), *digest = NULL;
  int rc = id ? sif_of(req, id, &digest) : WV_ENOTFOUND;
  int fd = -1;
  uint64_t size = 0, off = 0, len;
  rc = rc ? rc : wv_cas_open_blob(app->cas, digest, &fd, &size);
  if (rc == WV_ENOTFOUND)
    return wv_resp_api_error(
        req, resp, 404,
        wv_arena_sprintf(req->arena,
                         "No SIF for build '%s' - unknown build, not a Singularity build, or "
                         "not finished",
                         id ? id : ""));
  if (rc)
    return rc;
  len = size;
  const char *range = wv_req_header(req, "Range");
  if (range && parse_range(range, size, &off, &len) != 0) {
    close(fd);
    wv_resp_header(resp, "Content-Range", wv_arena_sprintf(req->arena, "bytes */%" PRIu64, size));
    return wv_resp_api_error(req, resp, 416, "Requested range not satisfiable");
  }
  uint8_t hash[WV_SHA256_LEN];
  char b64[64];
  rc = wv_digest_parse(digest, hash);
  if (!rc)
    EVP_EncodeBlock((unsigned char *)b64, hash, WV_SHA256_LEN);
  wv_resp_file(resp, range ? 206 : 200, "application/octet-stream", fd, off, len);
  rc = rc ? rc : wv_resp_header(resp, "Docker-Content-Digest", digest);
  rc = rc ? rc : wv_resp_header(resp, "Digest", wv_arena_sprintf(req->arena, "sha-256=%s", b64));
  rc = rc ? rc : wv_resp_header(resp, "Accept-Ranges", "bytes");
  rc = rc ? rc : wv_resp_header(resp, "ETag", wv_arena_sprintf(req->arena, "\"%s\"", digest));
  rc = rc ? rc
          : wv_resp_header(resp, "Content-Disposition",
                           wv_arena_sprintf(req->arena, "attachment; filename=\"%s.sif\"", id));
  if (!rc && range)
    rc = wv_resp_header(resp, "Content-Range",
                        wv_arena_sprintf(req->arena, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off,
                                         off + len - 1, size));
  return rc;
}

static const wv_route_t routes[] = {
    {WV_M_GET, "/v1alpha1/builds/{buildId}/sif", download, WV_ROUTE_WORKER, 0},
};

int wv_sif_routes_register(struct wv_router *r) {
  return wv_router_add(r, routes, sizeof routes / sizeof routes[0]);
}
