/*
 * build/builder.c — builder command templates, auth files and the build job
 * kind (see builder.h, docs/builds.md).
 */
#include "build/builder.h"
#include "core/err.h"
#include "core/json.h"
#include "storage/embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTHFILE "config.json"
#define OCI_DIR "oci"
#define MAX_WORD 8192
#define MAX_CREDS 64
#define MAX_AUTHFILE (256u * 1024)

extern char **environ;

int wv_builder_from_config(const wv_config_t *cfg, wv_builder_t *out) {
  memset(out, 0, sizeof *out);
  if (strcmp(cfg->build_builder, "buildah") == 0) {
    out->kind = WV_BUILDER_BUILDAH;
    out->build = cfg->build_buildah_build;
    out->push = cfg->build_buildah_push;
    out->cleanup = cfg->build_buildah_cleanup;
  } else if (strcmp(cfg->build_builder, "buildkit") == 0) {
    out->kind = WV_BUILDER_BUILDKIT;
    out->build = cfg->build_buildkit_build;
  } else {
    return WV_EINVAL;
  }
  return out->build && *out->build ? 0 : WV_EINVAL;
}

static bool embedded(const wv_builder_target_t *t) { return !t->repo || !*t->repo; }

/* The image name the builder tags and pushes: repo:tag, or a local name. */
static const char *image_name(wv_arena_t *a, const wv_builder_target_t *t) {
  return wv_arena_sprintf(a, "%s:%s", embedded(t) ? "localhost/" WV_EMBEDDED_REPO : t->repo,
                          t->tag);
}

/* The value of placeholder name (len bytes), or NULL when unknown. */
static const char *value_of(wv_arena_t *a, const char *name, size_t len,
                            const wv_builder_target_t *t) {
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
  if (IS("workspace"))
    return t->workspace;
  if (IS("workdir"))
    return t->workdir;
  if (IS("containerfile"))
    return wv_arena_sprintf(a, "%s/Containerfile", t->workdir);
  if (IS("context"))
    return wv_arena_sprintf(a, "%s/context", t->workdir);
  if (IS("authfile"))
    return wv_arena_sprintf(a, "%s/" AUTHFILE, t->workdir);
  if (IS("oci-dir"))
    return wv_arena_sprintf(a, "%s/" OCI_DIR, t->workdir);
  if (IS("platform"))
    return t->platform;
  if (IS("repo"))
    return embedded(t) ? "localhost/" WV_EMBEDDED_REPO : t->repo;
  if (IS("tag"))
    return t->tag;
  if (IS("image"))
    return image_name(a, t);
  if (IS("tls-verify"))
    return t->insecure ? "false" : "true";
  if (IS("insecure"))
    return t->insecure ? "true" : "false";
  if (IS("dest"))
    return embedded(t) ? wv_arena_sprintf(a, "oci:%s/" OCI_DIR ":%s", t->workdir, t->tag)
                       : wv_arena_sprintf(a, "docker://%s:%s", t->repo, t->tag);
  if (IS("output"))
    return embedded(t) ? wv_arena_sprintf(a, "type=oci,dest=%s/" OCI_DIR ",tar=false,name=%s",
                                          t->workdir, image_name(a, t))
                       : wv_arena_sprintf(a,
                                          "type=image,name=%s,push=true,oci-mediatypes=true,"
                                          "registry.insecure=%s",
                                          image_name(a, t), t->insecure ? "true" : "false");
#undef IS
  return NULL;
}

/* Expands one word (n bytes of tpl) into w; *drop when it was one empty placeholder. */
static int expand_word(wv_arena_t *a, const char *p, size_t n, const wv_builder_target_t *t,
                       wv_buf_t *w, bool *drop, char *err, size_t errlen) {
  size_t placeholders = 0;
  wv_buf_reset(w);
  for (size_t i = 0; i < n;) {
    if (p[i] != '{') {
      if (wv_buf_append(w, p + i, 1))
        return WV_ETOOBIG;
      i++;
      continue;
    }
    const char *end = memchr(p + i, '}', n - i);
    if (!end) {
      snprintf(err, errlen, "unclosed placeholder in '%.*s'", (int)n, p);
      return WV_EINVAL;
    }
    size_t len = (size_t)(end - (p + i + 1));
    const char *v = value_of(a, p + i + 1, len, t);
    if (!v) {
      snprintf(err, errlen, "unknown placeholder {%.*s}", (int)len, p + i + 1);
      return WV_EINVAL;
    }
    if (wv_buf_puts(w, v))
      return WV_ETOOBIG;
    placeholders++;
    i += len + 2;
  }
  *drop = w->len == 0 && placeholders == 1 && p[0] == '{' && p[n - 1] == '}';
  return 0;
}

int wv_builder_expand(wv_arena_t *a, const char *tpl, const wv_builder_target_t *t,
                      const char ***argv, char *err, size_t errlen) {
  const char **v = wv_arena_calloc(a, (WV_JOB_ARGS_MAX + 1) * sizeof *v);
  wv_buf_t w;
  size_t n = 0;
  int rc = v ? 0 : WV_ENOMEM;
  if (errlen)
    err[0] = '\0';
  wv_buf_init(&w, MAX_WORD);
  for (const char *p = tpl; !rc && *p;) {
    while (*p == ' ' || *p == '\t' || *p == '\n')
      p++;
    size_t len = strcspn(p, " \t\n");
    if (!len)
      break;
    bool drop = false;
    rc = expand_word(a, p, len, t, &w, &drop, err, errlen);
    p += len;
    if (rc || drop)
      continue;
    if (n == WV_JOB_ARGS_MAX)
      rc = WV_ETOOBIG;
    else if (!(v[n++] = wv_arena_strndup(a, w.data ? w.data : "", w.len)))
      rc = WV_ENOMEM;
  }
  wv_buf_free(&w);
  if (!rc && n == 0) {
    snprintf(err, errlen, "empty command template");
    rc = WV_EINVAL;
  }
  if (!rc)
    *argv = v;
  return rc;
}

/* waved's environment plus the auth-file variables (credentials stay in the file). */
static const char **build_env(wv_arena_t *a, const wv_builder_target_t *t) {
  size_t n = 0;
  while (environ && environ[n] && n < WV_JOB_ARGS_MAX - 3)
    n++;
  const char **env = wv_arena_calloc(a, (n + 3) * sizeof *env);
  if (!env)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "REGISTRY_AUTH_FILE=", 19) && strncmp(environ[i], "DOCKER_CONFIG=", 14))
      env[k++] = environ[i];
  env[k++] = wv_arena_sprintf(a, "REGISTRY_AUTH_FILE=%s/" AUTHFILE, t->workdir);
  env[k++] = wv_arena_sprintf(a, "DOCKER_CONFIG=%s", t->workdir);
  return env[k - 1] && env[k - 2] ? env : NULL;
}

static int cmd_step(wv_arena_t *a, const char *name, const char *tpl, const wv_builder_target_t *t,
                    const char **env, wv_job_step_t *s, char *err, size_t errlen) {
  const char **argv;
  int rc = wv_builder_expand(a, tpl, t, &argv, err, errlen);
  if (rc)
    return rc;
  *s = (wv_job_step_t){
      .type = WV_JOB_STEP_CMD, .name = name, .argv = argv, .env = env, .cwd = t->workdir};
  return 0;
}

int wv_builder_steps(wv_arena_t *a, const wv_builder_t *b, const wv_builder_target_t *t,
                     wv_job_step_t *steps, size_t *n, char *err, size_t errlen) {
  size_t k = 0;
  if (!t->workdir || !t->workspace || !t->platform || !t->tag || !*t->tag)
    return WV_EINVAL;
  const char **env = build_env(a, t);
  if (!env)
    return WV_ENOMEM;
  int rc = cmd_step(a, "build", b->build, t, env, &steps[k++], err, errlen);
  if (!rc && b->kind == WV_BUILDER_BUILDAH && b->push && *b->push)
    rc = cmd_step(a, "push", b->push, t, env, &steps[k++], err, errlen);
  if (!rc && embedded(t)) {
    json_object *o = json_object_new_object();
    int jrc = o ? 0 : WV_ENOMEM;
    jrc = jrc ? jrc : wv_json_add_str(o, "layout", wv_arena_sprintf(a, "%s/" OCI_DIR, t->workdir));
    jrc = jrc ? jrc : wv_json_add_str(o, "ref", t->tag);
    jrc = jrc ? jrc : wv_json_add_str(o, "repo", WV_EMBEDDED_REPO);
    jrc = jrc ? jrc : wv_json_add_str(o, "tag", t->tag);
    const char *arg = jrc ? NULL : wv_arena_strdup(a, wv_json_compact(o));
    json_object_put(o);
    if (!arg)
      return WV_ENOMEM;
    steps[k++] = (wv_job_step_t){
        .type = WV_JOB_STEP_FN, .name = "import", .fn = WV_BUILDER_IMPORT_FN, .arg = arg};
  }
  if (!rc && b->cleanup && *b->cleanup) {
    rc = cmd_step(a, "cleanup", b->cleanup, t, env, &steps[k], err, errlen);
    steps[k++].may_fail = true;
  }
  if (!rc)
    *n = k;
  return rc;
}

/* ---- auth file ---- */

int wv_builder_authfile(const wv_builder_cred_t *creds, size_t n, wv_buf_t *out) {
  json_object *root = json_object_new_object(), *auths = json_object_new_object();
  int rc = root && auths ? 0 : WV_ENOMEM;
  if (n > MAX_CREDS)
    rc = WV_ETOOBIG;
  for (size_t i = 0; !rc && i < n; i++) {
    const wv_builder_cred_t *c = &creds[i];
    if (!c->host || !*c->host) {
      rc = WV_EINVAL;
      break;
    }
    if (!c->username || !*c->username)
      continue;
    char plain[1024], enc[1400], key[600];
    int len = snprintf(plain, sizeof plain, "%s:%s", c->username, c->password ? c->password : "");
    if (len < 0 || (size_t)len >= sizeof plain) {
      rc = WV_ETOOBIG;
      break;
    }
    EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)plain, len);
    OPENSSL_cleanse(plain, sizeof plain);
    bool hub = strcmp(c->host, "docker.io") == 0 || strcmp(c->host, "index.docker.io") == 0 ||
               strcmp(c->host, "registry-1.docker.io") == 0;
    snprintf(key, sizeof key, hub ? "https://index.docker.io/v1/" : "https://%s", c->host);
    json_object *entry = json_object_new_object();
    rc = entry ? wv_json_add_str(entry, "auth", enc) : WV_ENOMEM;
    OPENSSL_cleanse(enc, sizeof enc);
    if (!rc)
      rc = json_object_object_add(auths, key, entry) ? WV_ENOMEM : 0;
    else
      json_object_put(entry);
  }
  if (!rc) {
    json_object_object_add(root, "auths", auths);
    auths = NULL;
    rc = wv_json_to_buf(root, out);
  }
  json_object_put(auths);
  json_object_put(root);
  return rc;
}

int wv_builder_write_authfile(const char *workdir, const wv_builder_cred_t *creds, size_t n) {
  char path[4096];
  wv_buf_t b;
  wv_buf_init(&b, MAX_AUTHFILE);
  int rc = wv_builder_authfile(creds, n, &b);
  snprintf(path, sizeof path, "%s/" AUTHFILE, workdir);
  int fd = rc ? -1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (!rc && fd < 0)
    rc = WV_EIO;
  if (!rc && (fchmod(fd, 0600) != 0 || write(fd, b.data, b.len) != (ssize_t)b.len))
    rc = WV_EIO;
  if (fd >= 0 && close(fd) != 0 && !rc)
    rc = WV_EIO;
  if (b.data)
    OPENSSL_cleanse(b.data, b.len);
  wv_buf_free(&b);
  return rc;
}

/* ---- the build job kind ---- */

/* fn_arg: the wv_app_t given to wv_builder_register (its store and blob store). */
static int import_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  const wv_app_t *app = fn_arg;
  json_object *o = NULL;
  const char *layout, *ref, *repo, *tag;
  char err[512], digest[WV_EMBEDDED_DIGEST_LEN];
  if (!arg || wv_json_parse(arg, strlen(arg), 64 * 1024, 0, &o, err, sizeof err) ||
      wv_json_get_str(o, "layout", &layout) || wv_json_get_str(o, "ref", &ref) ||
      wv_json_get_str(o, "repo", &repo) || wv_json_get_str(o, "tag", &tag)) {
    json_object_put(o);
    wv_job_ctx_fail(ctx, "Container build failed: bad import step");
    return WV_EINVAL;
  }
  int rc =
      wv_embedded_import(app->store, app->cas, layout, ref, repo, tag, digest, err, sizeof err);
  if (rc) {
    wv_job_ctx_logf(ctx, "import of %s into %s:%s failed: %s", layout, repo, tag, err);
    wv_job_ctx_fail(ctx, "Container build failed: cannot import the image: %s", err);
  } else {
    wv_job_ctx_logf(ctx, "imported %s:%s@%s", repo, tag, digest);
  }
  json_object_put(o);
  return rc;
}

int wv_builder_register(wv_job_engine_t *e, const wv_app_t *app) {
  const wv_config_t *cfg = app->cfg;
  wv_job_kind_t k = {.name = WV_BUILDER_KIND,
                     .label = "Container build",
                     .max_running = cfg->build_max_concurrent,
                     .deadline_ms = cfg->build_timeout_ms,
                     .memory_max = cfg->build_memory,
                     .remove_workdir = true};
  int rc = wv_job_register_kind(e, &k);
  return rc ? rc : wv_job_register_fn(e, WV_BUILDER_IMPORT_FN, import_fn, (void *)app);
}

int wv_builder_result_digest(const char *workdir, char *digest, size_t n) {
  char path[4096], buf[128];
  snprintf(path, sizeof path, "%s/digest", workdir);
  FILE *f = fopen(path, "re");
  if (!f)
    return WV_ENOTFOUND;
  size_t got = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[got] = '\0';
  buf[strcspn(buf, " \r\n")] = '\0';
  if (strncmp(buf, "sha256:", 7) != 0 || strlen(buf) != 71)
    return WV_ENOTFOUND;
  snprintf(digest, n, "%s", buf);
  return 0;
}
