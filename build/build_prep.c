/*
 * build/build_prep.c — the container file of a build request and its work
 * directory (contract §6.1 steps 1, 2, 4, 9; §6.2).
 */
#include "build/build_int.h"
#include "build/base_fetch.h"
#include "registry/proxy.h"
#include "registry/upstream.h"
#include "build/context.h"
#include "build/layers.h"
#include "build/sif/sifbuild.h"
#include "build/templates.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/timefmt.h"
#include "http/client.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FROM 64 /* FROM lines looked at for credentials */

static void tpl_defaults(const wv_config_t *cfg, wv_template_defaults_t *d) {
  *d = (wv_template_defaults_t){.mamba_image_v1 = cfg->tpl_mamba_image_v1,
                                .mamba_image_v2 = cfg->tpl_mamba_image_v2,
                                .conda_base_packages = cfg->tpl_conda_base_packages,
                                .conda_base_image = cfg->tpl_conda_base_image,
                                .pixi_image = cfg->tpl_pixi_image,
                                .pixi_base_packages = cfg->tpl_pixi_base_packages,
                                .pixi_base_image = cfg->tpl_pixi_base_image,
                                .cran_image = cfg->tpl_cran_image,
                                .cran_base_packages = cfg->tpl_cran_base_packages};
}

static int from_packages(wv_arena_t *a, const wv_config_t *cfg, const wv_creq_t *r,
                         const char **file, const char **conda, const char **tpl_name,
                         const char **msg) {
  wv_template_packages_t p;
  wv_template_t tpl;
  wv_template_defaults_t d;
  tpl_defaults(cfg, &d);
  int rc = wv_template_packages_from_json(a, r->packages, &p, msg);
  rc = rc ? rc : wv_template_parse(a, r->build_template, &tpl, msg);
  if (rc)
    return rc;
  tpl = wv_template_effective(tpl, p.type);
  rc = wv_template_packages_validate(a, &p, tpl, msg);
  rc = rc ? rc : wv_template_packages_conda_yaml(a, &p, conda, msg);
  bool sif = r->format && strcmp(r->format, "sif") == 0;
  rc = rc ? rc : wv_template_packages_container_file(a, &p, tpl, sif, &d, file, msg);
  *tpl_name = wv_template_name(tpl);
  return rc;
}

int wv_build_container_file(wv_arena_t *a, const wv_config_t *cfg, const wv_creq_t *r,
                            const char **file, const char **conda, const char **tpl,
                            const char **msg) {
  *file = *conda = *tpl = NULL;
  if (r->packages)
    return from_packages(a, cfg, r, file, conda, tpl, msg);
  char *text = NULL;
  size_t n = 0;
  if (r->container_file &&
      wv_base64_decode(a, r->container_file, strlen(r->container_file), &text, &n) != 0) {
    *msg = "Invalid 'containerFile' attribute - make sure it encoded as a base64 string";
    return WV_EINVAL;
  }
  *file = text;
  /* v1's deprecated condaFile: the conda.yml of the build (and of its checksum). */
  if (r->conda_file && *r->conda_file) {
    if (wv_base64_decode(a, r->conda_file, strlen(r->conda_file), &text, &n) != 0) {
      *msg = "Invalid 'condaFile' attribute - make sure it encoded as a base64 string";
      return WV_EINVAL;
    }
    *conda = text;
  }
  return 0;
}

/* ---- FROM lines -------------------------------------------------------------------- */

int wv__build_from_registries(wv_arena_t *a, const char *file, const char ***hosts, size_t *n) {
  *hosts = wv_arena_calloc(a, MAX_FROM * sizeof **hosts);
  *n = 0;
  if (!*hosts)
    return WV_ENOMEM;
  for (const char *l = file; l && *l && *n < MAX_FROM;) {
    const char *end = strchr(l, '\n');
    size_t len = end ? (size_t)(end - l) : strlen(l);
    char *line = wv_arena_strndup(a, l, len), *save = NULL;
    l = end ? end + 1 : l + len;
    if (!line)
      return WV_ENOMEM;
    char *w = strtok_r(line, " \t\r", &save);
    if (!w || (strcasecmp(w, "FROM") != 0 && strcasecmp(w, "FROM:") != 0)) /* From: = SIF */
      continue;
    while ((w = strtok_r(NULL, " \t\r", &save)) && strncmp(w, "--", 2) == 0)
      ; /* --platform=... */
    wv_ref_t ref;
    if (w && strcmp(w, "scratch") != 0 && wv_ref_parse(a, w, &ref, NULL) == 0)
      (*hosts)[(*n)++] = ref.registry;
  }
  return 0;
}

/*
 * The image word of the one FROM of a single-stage file (docs/builds.md "The base image
 * check"): *at and *len. false for anything else: no or several FROM (multi-stage: a later
 * FROM may name a stage), a FROM with an option (--platform=...), an image with a variable
 * (ARG), scratch, a FROM continued on the next line, a file with a parser directive
 * (escape=` changes what a continuation is).
 */
bool wv__build_single_from(const char *file, size_t *at, size_t *len) {
  size_t froms = 0;
  bool cont = false; /* this line continues the one before */
  for (const char *l = file; l && *l;) {
    const char *end = strchr(l, '\n');
    size_t n = end ? (size_t)(end - l) : strlen(l);
    const char *p = l, *e = l + n;
    while (e > p && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
      e--;
    while (p < e && (*p == ' ' || *p == '\t'))
      p++;
    bool comment = p < e && *p == '#', was = cont;
    if (comment && l == file && strchr(p, '='))
      return false; /* a parser directive */
    cont = !comment && e > p && e[-1] == '\\' ? true : comment ? cont : false;
    if (!was && !comment && (size_t)(e - p) > 5 && strncasecmp(p, "FROM", 4) == 0 &&
        (p[4] == ' ' || p[4] == '\t')) {
      if (++froms > 1 || cont)
        return false;
      const char *w = p + 4;
      while (w < e && (*w == ' ' || *w == '\t'))
        w++;
      size_t wl = strcspn(w, " \t\r\n");
      if ((size_t)(e - w) < wl)
        wl = (size_t)(e - w);
      const char *rest = w + wl;
      while (rest < e && (*rest == ' ' || *rest == '\t'))
        rest++;
      if (!wl || w[0] == '-' || memchr(w, '$', wl) || (wl == 7 && !strncmp(w, "scratch", 7)))
        return false;
      if (rest < e) { /* only "AS <name>" may follow */
        if ((size_t)(e - rest) < 4 || strncasecmp(rest, "AS", 2) != 0 ||
            (rest[2] != ' ' && rest[2] != '\t'))
          return false;
      }
      *at = (size_t)(w - file);
      *len = wl;
    }
    l = end ? end + 1 : l + n;
  }
  return froms == 1;
}

/*
 * The Containerfile buildah gets: a single-stage file's FROM pinned to the digest waved
 * resolved for this build (pin->base_pinned: buildah may then take a copy its store has,
 * --pull=missing), else the file as it is (--pull=always). For an embedded build, pin also
 * gets the base's registry, image and gzip layers (build/base_fetch.h).
 */
static const char *pin_base(const wv_app_t *app, wv_arena_t *a, const wv_binput_t *in,
                            wv_binput_t *pin) {
  size_t at, len;
  wv_ref_t ref;
  wv_proxy_base_t base;
  char err[512];
  pin->base_pinned = false;
  if (in->sif || !wv__build_single_from(in->file, &at, &len))
    return in->file;
  const char *word = wv_arena_strndup(a, in->file + at, len);
  if (!word || wv_ref_parse(a, word, &ref, NULL) != 0 || ref.scheme)
    return in->file;
  int rc = wv_proxy_resolve_base(app, a, ref.registry, ref.path, in->who, ref.reference,
                                 in->platform, &base, err, sizeof err);
  if (rc) { /* buildah asks the registry itself, and reports what it says */
    wv_info("build base %s: not pinned (%s); buildah checks it (--pull=always)", word, err);
    return in->file;
  }
  const char *f = wv_arena_sprintf(a, "%.*s%s/%s@%s%s", (int)at, in->file, ref.registry, ref.path,
                                   base.digest, in->file + at + len);
  if (!f)
    return in->file;
  pin->base_pinned = true;
  wv_base_fetch_layer_t *layers = NULL;
  size_t n = 0;
  if (in->embedded &&
      wv_base_fetch_layers(a, base.manifest, base.manifest_len, base.config, base.config_len,
                           &layers, &n) == 0 &&
      n > 0) {
    pin->base_registry = ref.registry;
    pin->base_image = ref.path;
    pin->base_layers = layers;
    pin->base_nlayers = n;
  }
  return f;
}

/* ---- files --------------------------------------------------------------------------- */

static int write_file(const char *dir, const char *name, const char *text, mode_t mode) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return wv_err_io(errno);
  size_t n = strlen(text);
  int rc = write(fd, text, n) == (ssize_t)n ? 0 : wv_err_io(errno);
  if (close(fd) != 0 && !rc)
    rc = wv_err_io(errno);
  return rc;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

void wv__build_rmtree(const char *dir) {
  if (dir && *dir)
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- SSRF policy --------------------------------------------------------------------- */

static bool is_http(const char *s) {
  return s && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0);
}

/* Only a refusal answers the request here; any other failure is the fetch's to report. */
static int check_url(const wv_app_t *app, wv_arena_t *a, const char *url, const char *what,
                     const char **msg) {
  char err[512] = "";
  int rc = wv_http_outbound_check(app->cfg, url, err, sizeof err);
  if (rc == WV_ENOMEM)
    return rc;
  if (rc != WV_EDENIED)
    return 0;
  *msg = wv_arena_sprintf(a, "%s '%s' - %s", what, url, err);
  return *msg ? WV_EINVAL : WV_ENOMEM;
}

int wv__build_check_urls(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, const char **msg) {
  const char *loc = NULL;
  if (r->build_context)
    wv_json_get_str(r->build_context, "location", &loc);
  int rc = is_http(loc) ? check_url(app, a, loc, "Unable to fetch the build context from", msg) : 0;
  for (size_t i = 0; !rc && r->freeze && i < r->cc.n_layers; i++)
    if (is_http(r->cc.layers[i].location))
      rc = check_url(app, a, r->cc.layers[i].location, "Unable to fetch container layer", msg);
  return rc;
}

/* The buildContext's tar.gz bytes: data:<base64>, or fetched from http(s). */
static int context_bytes(wv_arena_t *a, const wv_config_t *cfg, const char *loc, const char **gz,
                         size_t *len, const char **msg) {
  if (strncmp(loc, WV_LAYERS_DATA_PREFIX, 5) == 0) {
    char *out;
    if (wv_base64_decode(a, loc + 5, strlen(loc + 5), &out, len)) {
      *msg = "Invalid `buildContext` - its data: location is not valid base64";
      return WV_EINVAL;
    }
    *gz = out;
    return 0;
  }
  if (strncmp(loc, "http://", 7) && strncmp(loc, "https://", 8)) {
    *msg = "Invalid `buildContext` - the location must be a data: or http(s) URL";
    return WV_EINVAL;
  }
  wv_http_client_t *c = wv_http_client_get();
  wv_http_req_t hr = {.url = loc, .max_body = cfg->build_context_max_total + (1u << 20)};
  wv_http_resp_t resp;
  char err[256] = "";
  wv_http_resp_init(&resp);
  int rc = c ? wv_http_do_outbound(c, cfg, &hr, &resp, err, sizeof err) : WV_ENOMEM;
  if (!rc && resp.status != 200)
    snprintf(err, sizeof err, "HTTP status %ld", resp.status);
  if (!rc && resp.status == 200) {
    *gz = wv_arena_strndup(a, resp.body.data ? resp.body.data : "", resp.body.len);
    *len = resp.body.len;
    rc = *gz ? 0 : WV_ENOMEM;
  } else if (rc != WV_ENOMEM) {
    *msg = wv_arena_sprintf(a, "Unable to fetch the build context from '%s' - %s", loc,
                            rc == WV_ETOOBIG ? "too large" : err);
    rc = WV_EINVAL;
  }
  wv_http_resp_free(&resp);
  return rc;
}

/* Unpacks the buildContext into dir/context and checks its tarDigest. */
static int unpack_context(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r,
                          const char *ctxdir, const char **msg) {
  const char *loc = NULL, *want = NULL, *gz = NULL;
  size_t len = 0;
  if (!r->build_context)
    return 0;
  wv_json_get_str(r->build_context, "location", &loc);
  wv_json_get_str(r->build_context, "tarDigest", &want);
  if (!loc || !*loc) {
    *msg = "Invalid `buildContext` - missing `location`";
    return WV_EINVAL;
  }
  int rc = context_bytes(a, app->cfg, loc, &gz, &len, msg);
  if (rc)
    return rc;
  wv_context_limits_t lim;
  wv_context_result_t res;
  wv_context_limits_default(&lim);
  lim.max_file_bytes = app->cfg->build_context_max_file;
  lim.max_total_bytes = app->cfg->build_context_max_total;
  rc = wv_context_unpack(a, gz, len, ctxdir, &lim, &res, msg);
  if (rc == WV_EPARSE || rc == WV_ETOOBIG)
    rc = WV_EINVAL; /* the client's archive: a 400 whose message names the problem */
  if (!rc && want && strcmp(want, res.tar_digest) != 0) {
    *msg = wv_arena_sprintf(a,
                            "Invalid `buildContext` - `tarDigest` is %s but the uncompressed "
                            "context hashes to %s",
                            want, res.tar_digest);
    rc = WV_EINVAL;
  }
  return rc;
}

/*
 * The auth file: the wave.registries credentials of the registries the build
 * touches that its caller may use (docs/security.md): the target's when the
 * target is waved's own repository or the caller may push there (checked at
 * request time, build.c), a FROM registry's when the caller may pull from it.
 */
static int write_creds(const wv_app_t *app, wv_arena_t *a, const wv_binput_t *in, const char *dir) {
  const char **hosts;
  size_t n;
  int rc = wv__build_from_registries(a, in->file, &hosts, &n);
  if (rc)
    return rc;
  const wv_registries_t *regs = &app->cfg->registries;
  wv_builder_cred_t *creds = wv_arena_calloc(a, (regs->len + 1) * sizeof *creds);
  size_t k = 0;
  if (!creds)
    return WV_ENOMEM;
  const char *push_who = wv__build_push_who(in);
  for (size_t i = 0; i < regs->len; i++) {
    const wv_config_registry_t *g = &regs->items[i];
    bool used = !in->embedded && strcmp(g->host, in->tref.registry) == 0 &&
                (push_who == WV_WHO_WAVED || wv_registry_perm(g, push_who) >= WV_PERM_PUSH);
    for (size_t j = 0; j < n && !used; j++)
      used = strcmp(g->host, hosts[j]) == 0 && wv_registry_perm(g, in->who) >= WV_PERM_PULL;
    if (used && g->username)
      creds[k++] = (wv_builder_cred_t){g->host, g->username, g->password ? g->password : ""};
  }
  return wv_builder_write_authfile(dir, creds, k);
}

int wv__build_prepare(const wv_app_t *app, wv_arena_t *a, const wv_creq_t *r, const wv_binput_t *in,
                      const char **dir, wv_binput_t *pin, const char **msg) {
  char rnd[13];
  int rc = wv_rand_id(rnd, 12, WV_RAND_ALNUM_LOWER);
  const char *d = rc ? NULL : wv_build_workdir(a, app->cfg, wv_arena_sprintf(a, "tmp-%s", rnd));
  const char *ctxdir = d ? wv_arena_sprintf(a, "%s/context", d) : NULL;
  if (!ctxdir)
    return rc ? rc : WV_ENOMEM;
  if (mkdir(d, 0700) != 0 || mkdir(ctxdir, 0700) != 0) {
    int e = errno;
    wv_error("cannot create the build directory %s: %s", d, strerror(e));
    rmdir(d);
    return wv_err_io(e);
  }
  *dir = d;
  rc = write_file(d, "Containerfile", pin_base(app, a, in, pin), 0600);
  rc = rc ? rc : unpack_context(app, a, r, ctxdir, msg);
  if (!rc && in->conda)
    rc = write_file(ctxdir, "conda.yml", in->conda, 0644);
  if (!rc && in->freeze)
    rc = wv__build_freeze_layers(app, a, r, ctxdir, msg);
  rc = rc ? rc : write_creds(app, a, in, d);
  if (!rc && in->sif) {
    wv_sif_input_t si = {
        .file = in->file, .platform = in->platform, .who = in->who, .now_ns = wv_now_ns()};
    rc = wv_sif_prepare(app, a, &si, d, msg);
  }
  if (rc)
    wv__build_rmtree(d);
  return rc;
}
