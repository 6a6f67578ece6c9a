/*
 * build/request/request.c — parsing and checking container requests (see request.h).
 *
 * DESIGN. wv_creq_check() is one straight list of checks in the order of
 * contract §3.2, so that a request with two problems always gets the message of
 * the first one, as Wave would answer. A request for a service that is
 * switched off (builds, mirrors, scans) still passes every check it would
 * meet in Wave before its 501, so clients get the same 400s. Plain requests are served by
 * submit.c, builds and freezes by build/build.c, mirrors by build/mirror/.
 */
#include "build/request/request.h"
#include "core/base64.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/secret.h"
#include "core/json.h"
#include "core/rand.h"

#include <string.h>

#define MAX_BODY_DEPTH 16
#define MAX_LIST 1000 /* elements in a request's string arrays */

#define MSG_NO_SCAN WV_CREQ_MSG_SERVICE_OFF("Security scan", "wave.scan.enabled")

/* ---- parsing --------------------------------------------------------------- */

typedef struct {
  wv_arena_t *a;
  json_object *o;
  const char **msg;
} parse_t;

static int type_error(parse_t *p, const char *key, const char *what) {
  *p->msg = wv_arena_sprintf(p->a, "Invalid request attribute `%s` - expected %s", key, what);
  return WV_EINVAL;
}

static int opt_str(parse_t *p, const char *key, const char **out) {
  int rc = wv_json_get_str(p->o, key, out);
  if (rc == WV_ENOTFOUND) {
    *out = NULL;
    return 0;
  }
  return rc ? type_error(p, key, "a string") : 0;
}

static int opt_bool(parse_t *p, const char *key, bool *out) {
  int rc = wv_json_get_bool(p->o, key, out);
  if (rc == WV_ENOTFOUND) {
    *out = false;
    return 0;
  }
  return rc ? type_error(p, key, "a boolean") : 0;
}

static int opt_obj(parse_t *p, const char *key, json_object **out) {
  int rc = wv_json_get_object(p->o, key, out);
  if (rc == WV_ENOTFOUND) {
    *out = NULL;
    return 0;
  }
  return rc ? type_error(p, key, "an object") : 0;
}

static int opt_strv(parse_t *p, const char *key, const char ***out, size_t *n) {
  int rc = wv_json_get_strv(p->o, key, p->a, MAX_LIST, out, n);
  if (rc == WV_ENOTFOUND) {
    *out = NULL;
    *n = 0;
    return 0;
  }
  if (rc == WV_ETOOBIG)
    return type_error(p, key, "at most 1000 elements");
  return rc ? type_error(p, key, "an array of strings") : 0;
}

/* An enum value must be one of the names in set (case-sensitive, contract §1.1). */
static int check_enum(parse_t *p, const char *key, const char *v, const char *const *set) {
  if (!v)
    return 0;
  for (; *set; set++)
    if (strcmp(v, *set) == 0)
      return 0;
  *p->msg = wv_arena_sprintf(p->a, "Invalid request attribute `%s` - unknown value '%s'", key, v);
  return WV_EINVAL;
}

static const char *const scan_modes[] = {"none", "async", "required", NULL};
static const char *const scan_levels[] = {"LOW", "MEDIUM", "HIGH", "CRITICAL", NULL};
static const char *const name_strategies[] = {"none", "tagPrefix", "imageSuffix", NULL};
static const char *const package_types[] = {"CONDA", "CRAN", NULL};
static const char *const compressions[] = {"gzip", "estargz", "zstd", NULL};

/* The nested enums of packages and buildCompression. */
static int parse_nested(parse_t *p, wv_creq_t *r, json_object *compression) {
  const char *v = NULL;
  int rc = 0;
  if (r->packages) {
    parse_t q = {p->a, r->packages, p->msg};
    rc = opt_str(&q, "type", &v);
    rc = rc ? rc : check_enum(p, "packages.type", v, package_types);
  }
  if (!rc && compression) {
    parse_t q = {p->a, compression, p->msg};
    rc = opt_str(&q, "mode", &v);
    rc = rc ? rc : check_enum(p, "buildCompression.mode", v, compressions);
  }
  return rc;
}

static int parse_fields(parse_t *p, wv_creq_t *r) {
  static const struct {
    const char *key;
    size_t off;
  } strs[] = {
#define S(k, f) {k, offsetof(wv_creq_t, f)}
      S("towerAccessToken", tower_access_token),
      S("towerRefreshToken", tower_refresh_token),
      S("towerEndpoint", tower_endpoint),
      S("workflowId", workflow_id),
      S("containerImage", container_image),
      S("containerFile", container_file),
      S("condaFile", conda_file),
      S("containerPlatform", container_platform),
      S("buildRepository", build_repository),
      S("cacheRepository", cache_repository),
      S("timestamp", timestamp),
      S("fingerprint", fingerprint),
      S("format", format),
      S("nameStrategy", name_strategy),
      S("scanMode", scan_mode),
      S("buildTemplate", build_template),
#undef S
  };
  int rc = 0;
  for (size_t i = 0; !rc && i < sizeof strs / sizeof strs[0]; i++)
    rc = opt_str(p, strs[i].key, (const char **)((char *)r + strs[i].off));
  rc = rc ? rc : opt_bool(p, "freeze", &r->freeze);
  rc = rc ? rc : opt_bool(p, "dryRun", &r->dry_run);
  rc = rc ? rc : opt_bool(p, "mirror", &r->mirror);
  if (!rc) {
    int e = wv_json_get_int64(p->o, "towerWorkspaceId", &r->workspace_id);
    r->has_workspace_id = e == 0;
    rc = e && e != WV_ENOTFOUND ? type_error(p, "towerWorkspaceId", "an integer") : 0;
  }
  rc = rc ? rc : opt_strv(p, "containerIncludes", &r->includes, &r->n_includes);
  rc = rc ? rc : opt_strv(p, "scanLevels", &r->scan_levels, &r->n_scan_levels);
  for (size_t i = 0; !rc && i < r->n_scan_levels; i++)
    rc = check_enum(p, "scanLevels", r->scan_levels[i], scan_levels);
  rc = rc ? rc : check_enum(p, "scanMode", r->scan_mode, scan_modes);
  rc = rc ? rc : check_enum(p, "nameStrategy", r->name_strategy, name_strategies);
  rc = rc ? rc : opt_obj(p, "packages", &r->packages);
  rc = rc ? rc : opt_obj(p, "buildContext", &r->build_context);
  json_object *cc = NULL, *compression = NULL;
  rc = rc ? rc : opt_obj(p, "buildCompression", &compression);
  rc = rc ? rc : parse_nested(p, r, compression);
  rc = rc ? rc : opt_obj(p, "containerConfig", &cc);
  if (!rc) {
    r->has_cc = cc != NULL;
    rc = wv_container_config_from_json(p->a, cc, &r->cc, p->msg);
  }
  return rc;
}

static void put_json(void *o) { json_object_put(o); }

int wv_creq_parse(wv_arena_t *a, const char *body, size_t len, size_t max_values, bool v2,
                  wv_creq_t *out, const char **msg) {
  char err[160];
  json_object *root = NULL;
  memset(out, 0, sizeof *out);
  out->v2 = v2;
  int rc = wv_json_parse_body(body, len, len + 1, MAX_BODY_DEPTH,
                              max_values ? max_values : WV_JSON_MAX_VALUES, &root, err, sizeof err);
  if (rc == WV_ENOMEM)
    return rc;
  if (rc) {
    *msg = wv_arena_sprintf(a, "Malformed request body - %s", err);
    return WV_EINVAL;
  }
  if (wv_arena_on_cleanup(a, put_json, root)) {
    json_object_put(root);
    return WV_ENOMEM;
  }
  if (!json_object_is_type(root, json_type_object)) {
    *msg = "Malformed request body - expected a JSON object";
    return WV_EINVAL;
  }
  parse_t p = {a, root, msg};
  return parse_fields(&p, out);
}

/* ---- checks (contract §3.2) ------------------------------------------------------------ */

typedef struct {
  wv_arena_t *a;
  const wv_config_t *cfg;
  const wv_creq_t *r;
  wv_creq_plan_t *plan;
  const char **msg;
} check_t;

static int bad(check_t *c, int rc, const char *fmt, const char *arg) {
  *c->msg = wv_arena_sprintf(c->a, fmt, arg);
  return *c->msg ? rc : WV_ENOMEM;
}

static int fail(check_t *c, int rc, const char *msg) {
  *c->msg = msg;
  return rc;
}

static bool empty(const char *s) { return !s || !*s; }

/* Step 1: legacy Platform hosts are renamed; an empty endpoint gets the default. */
static const char *patch_tower(wv_arena_t *a, const char *e) {
  static const struct {
    const char *from, *to;
  } hosts[] = {{"api.tower.nf", "api.cloud.seqera.io"},
               {"api.stage-tower.net", "api.cloud.stage-seqera.io"}};
  if (empty(e))
    return WV_CREQ_DEFAULT_TOWER;
  for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
    const char *h = strstr(e, hosts[i].from);
    size_t n = strlen(hosts[i].from);
    if (h && h > e && h[-1] == '/' && (h[n] == '\0' || h[n] == '/' || h[n] == ':'))
      return wv_arena_sprintf(a, "%.*s%s%s", (int)(h - e), e, hosts[i].to, h + n);
  }
  return e;
}

/* Step 2: buildRepository / cacheRepository shape ("build" or "build cache"). */
static int check_repo(check_t *c, const char *repo, const char *what) {
  if (empty(repo))
    return 0;
  const char *fmt = NULL;
  const char *last = strrchr(repo, '/');
  wv_ref_t ref;
  if (strstr(repo, "://"))
    fmt = "Container %s repository should not include any protocol prefix - offending value: '%s'";
  else if (!last || !last[1])
    fmt = "Container %s repository is invalid or incomplete - offending value: '%s'";
  else if (strchr(last, ':') || strchr(last, '@'))
    fmt = "Container %s repository should not include any tag suffix - offending value: '%s'";
  else if (wv_ref_parse(c->a, repo, &ref, NULL))
    fmt = "Container %s repository is invalid or incomplete - offending value: '%s'";
  if (!fmt)
    return 0;
  *c->msg = wv_arena_sprintf(c->a, fmt, what, repo);
  return *c->msg ? WV_EINVAL : WV_ENOMEM;
}

static bool too_long(const char *s, uint64_t max) { return s && strlen(s) > max; }

static int check_request(check_t *c) {
  const wv_creq_t *r = c->r;
  const wv_config_t *cfg = c->cfg;
  if (too_long(r->conda_file, cfg->max_conda_file_size))
    return bad(c, WV_EINVAL, "Conda file size exceeds the maximum allowed size of %s bytes",
               wv_arena_sprintf(c->a, "%llu", (unsigned long long)cfg->max_conda_file_size));
  if (too_long(r->container_file, cfg->max_container_file_size))
    return bad(c, WV_EINVAL, "Container file size exceeds the maximum allowed size of %s bytes",
               wv_arena_sprintf(c->a, "%llu", (unsigned long long)cfg->max_container_file_size));
  for (size_t i = 0; i < r->cc.n_layers; i++)
    if (too_long(r->cc.layers[i].location, cfg->max_data_layer_size))
      return fail(c, WV_EINVAL, "Container layer exceeds the maximum allowed size");
  if (!empty(r->container_image)) {
    int rc = wv_ref_check_container_name(c->a, r->container_image, &c->plan->image, c->msg);
    if (rc)
      return rc;
  }
  if (r->mirror)
    return 0;
  int rc = check_repo(c, r->build_repository, "build");
  return rc ? rc : check_repo(c, r->cache_repository, "build cache");
}

/* The registry part of a repository ("host[:port]/path" or a bare host). */
static const char *repo_registry(wv_arena_t *a, const char *repo) {
  const char *slash = strchr(repo, '/');
  return slash ? wv_arena_strndup(a, repo, (size_t)(slash - repo)) : repo;
}

/* Step 3. */
static int check_mirror(check_t *c) {
  const wv_creq_t *r = c->r;
  if (!r->mirror)
    return 0;
  if (!r->v2)
    return fail(c, WV_EINVAL, "Container mirroring requires the use of v2 API");
  if (empty(r->container_image))
    return fail(c, WV_EINVAL,
                "Attribute `containerImage` is required when specifying `mirror` mode");
  if (empty(r->tower_access_token))
    return fail(c, WV_EINVAL,
                "Container mirroring requires an authenticated request - specify the tower token "
                "attribute");
  static const struct {
    int off;
    const char *msg;
  } conflicts[] = {
      {0, "Attribute `mirror` and `freeze` conflict each other"},
      {1, "Attribute `mirror` and `containerFile` conflict each other"},
      {2, "Attribute `mirror` and `containerIncludes` conflict each other"},
      {3, "Attribute `mirror` and `containerConfig` conflict each other"},
  };
  bool set[] = {r->freeze, !empty(r->container_file), r->n_includes > 0,
                r->has_cc && !wv_container_config_is_empty(&r->cc)};
  for (size_t i = 0; i < sizeof conflicts / sizeof conflicts[0]; i++)
    if (set[conflicts[i].off])
      return fail(c, WV_EINVAL, conflicts[i].msg);
  if (empty(r->build_repository))
    return fail(c, WV_EINVAL,
                "Attribute `buildRepository` is required when specifying `mirror` mode");
  const char *target = repo_registry(c->a, r->build_repository);
  if (!target)
    return WV_ENOMEM;
  if (strcmp(target, c->plan->image.registry) == 0)
    return bad(c, WV_EINVAL,
               "Source and target mirror registry are the same - offending value '%s'",
               r->build_repository);
  /* The server's own build repository is not a mirror target (Wave's RepoType.Mirror rule). */
  const char *own = c->cfg->build_repo;
  if (own && *own && strncmp(r->build_repository, own, strlen(own)) == 0)
    return bad(c, WV_EINVAL, "Mirror registry not allowed - offending value '%s'",
               r->build_repository);
  return 0;
}

/* Step 4: a towerAccessToken must hash to one of the configured accounts. */
static int check_identity(check_t *c) {
  const char *tok = c->r->tower_access_token;
  c->plan->tower = patch_tower(c->a, c->r->tower_endpoint);
  if (!c->plan->tower)
    return WV_ENOMEM;
  if (empty(tok))
    return 0;
  c->plan->user = wv_secret_account_for_token(c->cfg, tok);
  return c->plan->user ? 0 : WV_EAUTH;
}

static bool is_sif(const wv_creq_t *r) { return r->format && strcmp(r->format, "sif") == 0; }

/* Step 5. A Singularity freeze with neither buildRepository nor wave.build.repo goes into
 * the embedded registry (docs/singularity.md), so it needs no repository. */
static int check_handling(check_t *c) {
  const wv_creq_t *r = c->r;
  bool custom_repo = !empty(r->build_repository) || /* any repository the request names */
                     (is_sif(r) && empty(c->cfg->build_repo));
  if (!c->plan->user && !c->cfg->anonymous_access)
    return fail(c, WV_EINVAL, "Missing user access token");
  if (r->v2 && !empty(r->container_file) && r->packages)
    return fail(c, WV_EINVAL, "Attribute `containerFile` and `packages` conflicts each other");
  if (r->v2 && !empty(r->conda_file))
    return fail(c, WV_EINVAL, "Attribute `condaFile` is deprecated - use `packages` instead");
  if (!r->v2 && r->packages)
    return fail(c, WV_EINVAL, "Attribute `packages` is not allowed");
  if (!r->v2 && !empty(r->name_strategy))
    return fail(c, WV_EINVAL, "Attribute `nameStrategy` is not allowed");
  if (!empty(r->container_file) && r->freeze && !custom_repo && !(r->v2 && r->packages))
    return fail(c, WV_EINVAL,
                "Attribute `buildRepository` must be specified when using freeze mode [1]");
  if (!empty(r->container_image) && r->freeze && !custom_repo)
    return fail(c, WV_EINVAL,
                "Attribute `buildRepository` must be specified when using freeze mode [2]");
  if (r->v2 && r->packages && r->freeze && !custom_repo)
    return fail(c, WV_EINVAL,
                "Attribute `buildRepository` must be specified when using freeze mode [3]");
  return 0;
}

/* Step 7. */
static int check_platform(check_t *c) {
  const wv_creq_t *r = c->r;
  const char *p = empty(r->container_platform) ? WV_CREQ_DEFAULT_PLATFORM : r->container_platform;
  int rc = wv_platform_parse_list(c->a, p, &c->plan->plat, c->msg);
  if (rc == WV_ETOOBIG)
    rc = bad(c, WV_EINVAL, "Unsupported container platform: %s", p);
  if (rc)
    return rc;
  c->plan->platform = wv_platform_list_format(c->a, &c->plan->plat);
  if (!c->plan->platform)
    return WV_ENOMEM;
  if (c->plan->plat.n == 1)
    return 0;
  if (strcmp(c->plan->platform, "linux/amd64,linux/arm64") != 0)
    return fail(c, WV_EINVAL,
                "Only linux/amd64,linux/arm64 multi-platform combination is currently supported");
  if (empty(r->container_file) && !r->packages)
    return fail(c, WV_EINVAL,
                "Multi-platform builds require either 'containerFile' or 'packages' attribute");
  if (is_sif(r))
    return fail(c, WV_EINVAL, "Multi-platform builds are not supported for Singularity format");
  return 0;
}

/* Step 9 up to the branch. */
static int check_request_data(check_t *c) {
  const wv_creq_t *r = c->r;
  bool has_file = !empty(r->container_file) || (r->v2 && r->packages);
  bool has_image = !empty(r->container_image);
  if (!has_file && !has_image)
    return fail(c, WV_EINVAL, "Specify either 'containerImage' or 'containerFile' attribute");
  if (has_file && has_image)
    return fail(
        c, WV_EINVAL,
        "Attributes 'containerImage' and 'containerFile' cannot be used in the same request");
  if (has_image && c->plan->image.is_digest && !wv_container_config_is_empty(&r->cc) && !r->freeze)
    return fail(c, WV_EINVAL,
                "Container requests made using a SHA256 as tag does not support the "
                "'containerConfig' attribute");
  if (is_sif(r) && !r->freeze)
    return fail(
        c, WV_EINVAL,
        "Singularity build is only allowed enabling freeze mode - see 'wave.freeze' setting");
  /* Asking for a scan while scanning is disabled is a 501 ("none" asks for nothing). */
  if (r->scan_mode && strcmp(r->scan_mode, "none") != 0 && !c->cfg->scan_enabled)
    return fail(c, WV_EUNSUPPORTED, MSG_NO_SCAN);
  if (r->n_includes > WV_CREQ_MAX_INCLUDES)
    return fail(c, WV_EINVAL, "The number of container inclusions cannot be greater than 10");
  return 0;
}

/* A containerFile must survive a base64 decode/encode round trip (contract §3.1): strict base64
 * with zero spare bits. */
static bool base64_canonical(const char *s) {
  size_t n = strlen(s);
  return wv_base64_decoded_len(s, n) >= 0 && wv_base64_canonical(s, n);
}

/* Step 10: what kind of request it is. */
static int choose_kind(check_t *c) {
  const wv_creq_t *r = c->r;
  if (!empty(r->container_file) || r->packages || r->freeze) {
    if (!empty(r->container_file) && !base64_canonical(r->container_file))
      return fail(c, WV_EINVAL,
                  "Invalid 'containerFile' attribute - make sure it encoded as a base64 string");
    c->plan->kind = WV_CREQ_BUILD; /* builds and freezes: served by build/build.c */
    return 0;
  }
  if (r->mirror) {
    c->plan->kind = WV_CREQ_MIRROR; /* served by build/mirror/request.c */
    return c->cfg->mirror_enabled ? 0 : fail(c, WV_EUNSUPPORTED, WV_CREQ_MSG_MIRROR_OFF);
  }
  c->plan->kind = WV_CREQ_PLAIN;
  if (!c->cfg->ephemeral_token)
    return fail(c, WV_EINVAL,
                "Ephemeral container provisioning is not enabled in this Wave deployment - use "
                "'freeze' mode to provision this container");
  return 0;
}

int wv_creq_check(wv_arena_t *a, const wv_config_t *cfg, const wv_creq_t *r, wv_creq_plan_t *plan,
                  const char **msg) {
  memset(plan, 0, sizeof *plan);
  check_t c = {a, cfg, r, plan, msg};
  int rc = check_request(&c);
  rc = rc ? rc : check_mirror(&c);
  rc = rc ? rc : check_identity(&c);
  rc = rc ? rc : check_handling(&c);
  rc = rc ? rc : check_platform(&c);
  rc = rc ? rc : check_request_data(&c);
  rc = rc ? rc : choose_kind(&c);
  return rc;
}
