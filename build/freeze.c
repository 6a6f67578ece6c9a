/*
 * build/freeze.c — the parts of a build that only freeze requests have
 * (contract §6.3): the rewrite of the request into a container file (with
 * WAVE_ENTRY_CHAIN from the file or from the base image config), and the
 * layer archives of the containerConfig written into the build context as
 * context/layer-<hex>.tar.gz for the file's `ADD layer-<hex>.tar.gz /`.
 */
#include "build/build_int.h"
#include "build/layers.h"
#include "build/freeze.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/log.h"
#include "http/client.h"
#include "storage/cas.h"

#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LAYER_CHUNK (64u << 10)
#define LAYER_TIMEOUT_MS (10 * 60 * 1000)

int wv__build_freeze_file(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                          const wv_creq_plan_t *plan, wv_binput_t *in, const char **msg) {
  bool has_cc = !wv_container_config_is_empty(&r->cc);
  if (in->file && !has_cc)
    return 0; /* a container file without a config is built as it is */
  const char *src = in->file ? in->file : wv_arena_sprintf(a, "FROM %s\n", r->container_image);
  const char **entry = NULL, *from = NULL;
  size_t n = 0;
  int rc = src ? wv_freeze_entrypoint_source(a, src, &entry, &n, &from) : WV_ENOMEM;
  if (!rc && !entry && from && app->upstream) {
    const char *why = NULL;
    /* The build reports a base image it cannot pull; here it only means no chain. */
    if (wv_layers_image_entrypoint(a, app, plan->user, from, &plan->plat, &entry, &n, &why) != 0) {
      wv_warn("freeze: cannot inspect the entrypoint of %s: %s", from, why ? why : "-");
      entry = NULL, n = 0;
    }
  }
  wv_freeze_input_t fi = {.container_image = in->file ? NULL : r->container_image,
                          .container_file = in->file,
                          .singularity = in->sif,
                          .config = &r->cc,
                          .entry_chain = entry,
                          .n_entry_chain = n};
  const char *out = NULL;
  rc = rc ? rc : wv_freeze_container_file(a, &fi, &out);
  if (rc == WV_EINVAL)
    *msg = "Specify either 'containerImage' or 'containerFile' attribute";
  if (!rc && out)
    in->file = out;
  return rc;
}

/* ---- layer archives ------------------------------------------------------------- */

typedef struct {
  int fd;
  wv_sha256_t h;
  uint64_t got, max;
} sink_t;

static int sink_write(sink_t *s, const void *p, size_t n) {
  if (s->got + n > s->max)
    return WV_ETOOBIG;
  s->got += n;
  if (wv_sha256_update(&s->h, p, n))
    return WV_EIO;
  for (const char *c = p; n;) {
    ssize_t w = write(s->fd, c, n);
    if (w <= 0)
      return WV_EIO;
    c += w, n -= (size_t)w;
  }
  return 0;
}

static int body_cb(void *arg, const char *data, size_t len) { return sink_write(arg, data, len); }

/* The gzip bytes of a data: layer: committed to the CAS by wv_layers_check. */
static int from_cas(const wv_app_t *app, const wv_container_layer_t *l, sink_t *s) {
  int fd = -1;
  uint64_t size = 0;
  int rc = wv_cas_open_blob(app->cas, l->gzip_digest, &fd, &size);
  char *buf = rc ? NULL : malloc(LAYER_CHUNK);
  if (!rc && !buf)
    rc = WV_ENOMEM;
  for (ssize_t n; !rc && (n = read(fd, buf, LAYER_CHUNK)) != 0;)
    rc = n < 0 ? WV_EIO : sink_write(s, buf, (size_t)n);
  free(buf);
  if (fd >= 0)
    close(fd);
  return rc;
}

static int from_url(const wv_config_t *cfg, wv_arena_t *a, const char *url, sink_t *s,
                    const char **msg) {
  wv_http_req_t req = {.url = url,
                       .timeout_ms = LAYER_TIMEOUT_MS,
                       .idle_timeout_ms = 120000,
                       .body_cb = body_cb,
                       .body_arg = s};
  wv_http_resp_t resp;
  char err[256] = "";
  wv_http_resp_init(&resp);
  wv_http_client_t *c = wv_http_client_get();
  int rc = c ? wv_http_do_outbound(c, cfg, &req, &resp, err, sizeof err) : WV_ENOMEM;
  if (!rc && resp.status != 200) {
    *msg = wv_arena_sprintf(a, "Unable to fetch container layer '%s' - HTTP status %ld", url,
                            resp.status);
    rc = WV_EINVAL;
  } else if (rc && rc != WV_ENOMEM) {
    *msg = wv_arena_sprintf(a, "Unable to fetch container layer '%s' - %s", url,
                            rc == WV_ECLOSED ? "larger than its gzipSize" : err);
    rc = WV_EINVAL;
  }
  wv_http_resp_free(&resp);
  return rc;
}

static bool starts(const char *s, const char *p) { return s && strncmp(s, p, strlen(p)) == 0; }

/* Writes one layer archive and checks its size and digest. */
static int write_layer(const wv_app_t *app, wv_arena_t *a, const wv_container_layer_t *l,
                       const char *ctxdir, const char **msg) {
  const char *name = wv_freeze_layer_name(a, l);
  const char *path = name ? wv_arena_sprintf(a, "%s/%s", ctxdir, name) : NULL;
  if (!path)
    return WV_ENOMEM;
  sink_t s = {.max = l->gzip_size > 0 ? (uint64_t)l->gzip_size : 0};
  s.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (s.fd < 0)
    return WV_EIO;
  int rc = wv_sha256_init(&s.h) ? WV_ENOMEM : 0;
  if (rc) {
    close(s.fd);
    return rc;
  }
  if (starts(l->location, WV_LAYERS_DATA_PREFIX) || starts(l->location, "cas:"))
    rc = from_cas(app, l, &s);
  else if (starts(l->location, "http://") || starts(l->location, "https://"))
    rc = from_url(app->cfg, a, l->location, &s, msg);
  else {
    *msg = wv_arena_sprintf(a, "Unsupported container layer location for freeze builds: '%s'",
                            l->location ? l->location : "");
    rc = WV_EINVAL;
  }
  uint8_t hash[WV_SHA256_LEN];
  char got[WV_DIGEST_STRLEN];
  if (rc)
    wv_sha256_abort(&s.h);
  else if (wv_sha256_final(&s.h, hash) != 0)
    rc = WV_EIO;
  if (rc == WV_ETOOBIG) {
    *msg = wv_arena_sprintf(a, "Container layer '%s' is larger than its gzipSize", l->location);
    rc = WV_EINVAL;
  } else if (!rc) {
    wv_digest_format(hash, got);
    if (s.got != s.max || strcmp(got, l->gzip_digest) != 0) {
      *msg = wv_arena_sprintf(a,
                              "Container layer '%s' does not match its gzipSize/gzipDigest - "
                              "got %llu bytes, %s",
                              l->location, (unsigned long long)s.got, got);
      rc = WV_EINVAL;
    }
  }
  if (close(s.fd) != 0 && !rc)
    rc = WV_EIO;
  return rc;
}

int wv__build_freeze_layers(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                            const char *ctxdir, const char **msg) {
  int rc = 0;
  for (size_t i = 0; !rc && i < r->cc.n_layers; i++)
    rc = write_layer(app, a, &r->cc.layers[i], ctxdir, msg);
  return rc;
}
