/*
 * build/sif/sifbase.c — the `sif-base` step of a `Bootstrap: oras` build
 * (docs/singularity.md): the base SIF named by `From:` is fetched from its
 * registry through the upstream client (the request's credentials as for
 * any upstream read, retries, a redirect followed only under the outbound
 * policy of docs/security.md), checked as `singularity pull oras://` checks
 * it (one layer of the SIF media type, its size and sha256), verified as a
 * SIF whose arch is the build's, and its primary partition written to
 * <workdir>/base.sqfs, which the next steps unsquash and tar into the build
 * context (sifjob.c). Runs on a job worker (blocking).
 */
#include "build/sif/sif.h"
#include "build/sif/sifbuild.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "http/client.h"
#include "registry/fetch.h"
#include "registry/mediatype.h"
#include "registry/ref.h"
#include "registry/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MANIFEST_MAX (4u << 20)
#define SIF_LAYER_LEGACY "appliciation/vnd.sylabs.sif.layer.tar"

typedef struct {
  const wv_app_t *app;
  wv_job_ctx_t *ctx;
  wv_arena_t *a;
  wv_ref_t ref;
  const char *who;
  char base[512]; /* http(s)://host of the registry */
  /* the layer being streamed */
  int fd;
  uint64_t size, got;
  wv_sha256_t sha;
  int rc;
  bool failed; /* the job's failure reason is set */
} base_t;

/* fmt takes two %s (x, y; NULL prints nothing). */
static int failf(base_t *b, int rc, const char *fmt, const char *x, const char *y) {
  wv_job_ctx_fail(b->ctx, fmt, x ? x : "", y ? y : "");
  b->failed = true;
  return rc;
}

/* The manifest of From: and its one SIF layer (digest, size). */
static int get_layer(base_t *b, const char **digest, uint64_t *size) {
  const char *hdrs[] = {"Accept: " WV_MT_OCI_MANIFEST ", " WV_MT_DOCKER_MANIFEST, NULL};
  const char *url = wv_arena_sprintf(b->a, "/v2/%s/manifests/%s", b->ref.path, b->ref.reference);
  wv_http_req_t req = {.url = url, .headers = hdrs, .max_body = MANIFEST_MAX};
  wv_http_resp_t resp;
  wv_fetch_err_t e;
  wv_http_resp_init(&resp);
  int rc = url ? wv_fetch(b->app, b->ref.registry, b->ref.path, b->who, &req, &resp, NULL, &e)
               : WV_ENOMEM;
  if (rc)
    rc = failf(b, WV_EUPSTREAM, "Container build failed: the base SIF: %s%s", e.msg, NULL);
  else if (resp.status != 200)
    rc = failf(b, WV_EUPSTREAM, "Container build failed: the base SIF '%s': registry answered %s",
               url, wv_arena_sprintf(b->a, "%ld", resp.status));
  json_object *m = NULL, *layers = NULL, *l = NULL;
  char err[128];
  if (!rc && wv_json_parse(resp.body.data ? resp.body.data : "", resp.body.len, MANIFEST_MAX, 0, &m,
                           err, sizeof err))
    rc = failf(b, WV_EPARSE, "Container build failed: the base SIF's manifest: %s%s", err, NULL);
  wv_http_resp_free(&resp);
  size_t n = 0;
  if (!rc && json_object_object_get_ex(m, "layers", &layers) &&
      json_object_is_type(layers, json_type_array))
    n = json_object_array_length(layers);
  if (!rc && n != 1)
    rc = failf(b, WV_EINVAL,
               "Container build failed: ORAS SIF image should have a single layer, "
               "found %s%s",
               wv_arena_sprintf(b->a, "%zu", n), NULL);
  const char *mt = NULL, *dg = NULL;
  int64_t sz = -1;
  if (!rc) {
    l = json_object_array_get_idx(layers, 0);
    wv_json_get_str(l, "mediaType", &mt);
    wv_json_get_str(l, "digest", &dg);
    wv_json_get_int64(l, "size", &sz);
  }
  if (!rc && (!mt || (strcmp(mt, WV_SIF_LAYER_MT) != 0 && strcmp(mt, SIF_LAYER_LEGACY) != 0)))
    rc = failf(b, WV_EINVAL, "Container build failed: invalid layer mediatype: %s%s",
               mt ? mt : "(none)", NULL);
  if (!rc && (!dg || !wv_digest_valid(dg) || sz < 0 || (uint64_t)sz > WV_SIF_BASE_MAX))
    rc = failf(b, WV_EINVAL,
               "Container build failed: the base SIF's layer has no valid digest or a size "
               "over the limit of %s bytes%s",
               wv_arena_sprintf(b->a, "%llu", (unsigned long long)WV_SIF_BASE_MAX), NULL);
  *digest = rc ? NULL : wv_arena_strdup(b->a, dg);
  *size = (uint64_t)sz;
  json_object_put(m);
  return rc ? rc : (*digest ? 0 : WV_ENOMEM);
}

/* Hashes and writes one chunk of the layer; non-zero stops the stream (b->rc says why). */
static int feed(void *arg, const char *p, size_t n) {
  base_t *b = arg;
  if (wv_job_ctx_cancelled(b->ctx))
    return b->rc = WV_ECLOSED;
  if (n > b->size - b->got)
    return b->rc = WV_EDIGEST;
  b->got += n;
  if (wv_sha256_update(&b->sha, p, n))
    return b->rc = WV_ENOMEM;
  for (size_t off = 0; off < n;) {
    ssize_t w = write(b->fd, p + off, n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return b->rc = wv_err_io(errno);
    off += (size_t)w;
  }
  return 0;
}

/* Streams the layer into path (wv_fetch_follow), then checks its size and sha256. */
static int get_blob(base_t *b, const char *digest, const char *path) {
  const wv_config_t *cfg = b->app->cfg;
  wv_fetch_follow_t f = {.registry = b->ref.registry,
                         .repo = b->ref.path,
                         .who = b->who,
                         .digest = digest,
                         .base = b->base,
                         .timeout_ms = -1,
                         .idle_timeout_ms = cfg->hc_idle_timeout_ms,
                         .feed = feed,
                         .feed_arg = b};
  wv_fetch_err_t e;
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  b->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  int rc = b->fd < 0 ? wv_err_io(errno) : wv_sha256_init(&b->sha);
  if (!rc)
    rc = wv_fetch_follow(b->app, b->a, &f, &resp, &e);
  if (b->rc)
    rc = b->rc;
  else if (rc && f.end == WV_FETCH_END_REGISTRY)
    wv_job_ctx_logf(b->ctx, "the base SIF: %s", e.msg);
  else if (rc && f.end == WV_FETCH_END_REDIRECTED)
    wv_job_ctx_logf(b->ctx, "the base SIF: redirected to a location that %s",
                    rc == WV_EDENIED ? "the outbound policy does not allow" : "could not be read");
  if (!rc && resp.status != 200)
    rc = failf(b, WV_EUPSTREAM,
               "Container build failed: the base SIF's layer %s: registry "
               "answered %s",
               digest, wv_arena_sprintf(b->a, "%ld", resp.status));
  wv_http_resp_free(&resp);
  if (b->fd >= 0 && close(b->fd) != 0 && !rc)
    rc = WV_EIO;
  b->fd = -1;
  uint8_t h[WV_SHA256_LEN];
  char got[WV_DIGEST_STRLEN] = "";
  if (!rc && wv_sha256_final(&b->sha, h) == 0)
    wv_digest_format(h, got);
  if (!rc && (b->got != b->size || strcmp(got, digest) != 0))
    rc = failf(b, WV_EDIGEST, "Container build failed: the base SIF's layer %s: %s", digest,
               wv_arena_sprintf(b->a, "%llu bytes hashing to %s, the manifest says %llu",
                                (unsigned long long)b->got, got, (unsigned long long)b->size));
  if (rc && !b->failed)
    failf(b, rc, "Container build failed: cannot fetch the base SIF's layer %s: %s", digest,
          b->rc == WV_EDIGEST ? "longer than its size" : wv_strerror(rc));
  return rc;
}

/* The primary partition of the verified SIF at sif into out; the SIF's arch must be want. */
static int extract(base_t *b, const char *sif, const char *want, const char *out) {
  wv_sif_info_t info;
  char err[256] = "";
  if (wv_sif_verify_file(sif, &info, err, sizeof err))
    return failf(b, WV_EINVAL, "Container build failed: the base is not a valid SIF: %s%s", err,
                 NULL);
  if (strcmp(info.arch, want) != 0)
    return failf(b, WV_EINVAL,
                 "Container build failed: the base SIF's architecture (SIF code %s) is not the "
                 "build's (%s)",
                 info.arch, want);
  const wv_sif_descr_t *d = &info.d[info.primary];
  int in = open(sif, O_RDONLY | O_CLOEXEC);
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  char *buf = malloc(1u << 20);
  int rc = in >= 0 && fd >= 0 && buf ? 0 : WV_EIO;
  for (int64_t done = 0; !rc && done < d->size;) {
    size_t want_n = (size_t)(d->size - done) < (1u << 20) ? (size_t)(d->size - done) : (1u << 20);
    ssize_t r = pread(in, buf, want_n, d->offset + done);
    rc = r > 0 && write(fd, buf, (size_t)r) == r ? 0 : WV_EIO;
    done += r > 0 ? r : 0;
  }
  free(buf);
  if (in >= 0)
    close(in);
  if (fd >= 0 && close(fd) != 0)
    rc = WV_EIO;
  return rc ? failf(b, rc,
                    "Container build failed: cannot extract the base SIF's partition to "
                    "%s%s",
                    out, NULL)
            : 0;
}

static int base_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  base_t b = {.app = fn_arg, .ctx = ctx, .fd = -1, .a = wv_arena_new(0)};
  const char *wd = wv_job_ctx_workdir(ctx), *msg = NULL, *from = NULL, *digest = NULL;
  json_object *o = NULL;
  char err[128], arch[8] = "";
  int rc = b.a && wd && b.app && b.app->upstream ? 0 : WV_EINVAL;
  if (!rc && (wv_json_parse(arg, strlen(arg), 64u << 10, 0, &o, err, sizeof err) ||
              wv_json_get_str(o, "from", &from)))
    rc = WV_EINVAL;
  if (!rc)
    wv_json_get_str(o, "who", &b.who);
  if (!rc && (wv_ref_parse(b.a, from, &b.ref, &msg) ||
              wv_upstream_base_url(b.app->upstream, b.ref.registry, b.base, sizeof b.base)))
    rc = failf(&b, WV_EINVAL, "Container build failed: bad base reference '%s'%s", from, NULL);
  FILE *f = rc ? NULL : fopen(wv_arena_sprintf(b.a, "%s/sif/arch", wd), "re");
  if (!rc && (!f || !fgets(arch, sizeof arch, f)))
    rc = failf(&b, WV_EIO, "Container build failed: no build architecture in %s%s", wd, NULL);
  if (f)
    fclose(f);
  const char *sif = wv_arena_sprintf(b.a, "%s/base.sif", wd),
             *sqfs = wv_arena_sprintf(b.a, "%s/base.sqfs", wd);
  if (!rc)
    wv_job_ctx_logf(ctx, "fetching the base SIF %s", from);
  rc = rc ? rc : get_layer(&b, &digest, &b.size);
  rc = rc ? rc : get_blob(&b, digest, sif);
  rc = rc ? rc : extract(&b, sif, arch, sqfs);
  if (!rc)
    wv_job_ctx_logf(ctx, "base SIF %s: %llu bytes, %s, partition extracted", from,
                    (unsigned long long)b.size, digest);
  if (sif)
    unlink(sif);
  if (rc && !b.failed)
    wv_job_ctx_fail(ctx, "Container build failed: cannot read the base SIF %s: %s",
                    from ? from : "?", wv_strerror(rc));
  json_object_put(o);
  wv_arena_free(b.a);
  return rc;
}

int wv_sif_base_register(wv_job_engine_t *e, const wv_app_t *app) {
  return wv_job_register_fn(e, WV_SIF_BASE_FN, base_fn, (void *)app);
}
