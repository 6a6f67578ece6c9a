/*
 * build/builder.c — builder command templates, auth files and the build job
 * kind (see builder.h, docs/builds.md).
 */
#include "build/builder.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "storage/embedded.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AUTHFILE "config.json"
#define OCI_DIR "oci"
#define MAX_WORD 8192
#define MAX_CREDS 64
#define MAX_AUTHFILE (256u * 1024)
#define STORE_DIR "buildah"               /* <workspace>/buildah: the default templates' store */
#define PRUNE_TIMEOUT_MS (10 * 60 * 1000) /* one prune command at most */
#define PRUNE_LOG_MAX 2048                /* bytes of a prune command's output logged */
#define PRUNE_MAX_ENTRIES 20000000L       /* files walked when measuring the store */

extern char **environ;

int wv_builder_from_config(const wv_config_t *cfg, wv_builder_t *out) {
  memset(out, 0, sizeof *out);
  if (strcmp(cfg->build_builder, "buildah") == 0) {
    out->kind = WV_BUILDER_BUILDAH;
    out->build = cfg->build_buildah_build;
    out->push = cfg->build_buildah_push;
    out->cleanup = cfg->build_buildah_cleanup;
    out->prune = cfg->build_buildah_prune;
    out->prune_all = cfg->build_buildah_prune_all;
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
  if (IS("storage-driver"))
    return t->storage_driver && *t->storage_driver ? t->storage_driver : "vfs";
  if (IS("layers"))
    return t->layers ? "true" : "false";
  if (IS("pull"))
    return t->pull && *t->pull ? t->pull : "always";
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

/* The "build-prune" step: {"dir": <workspace>/buildah, "prune": argv, "all": argv}. */
static int prune_step(wv_arena_t *a, const wv_builder_t *b, const wv_builder_target_t *t,
                      wv_job_step_t *s, char *err, size_t errlen) {
  const char **prune, **all = NULL;
  size_t np = 0, na = 0;
  int rc = wv_builder_expand(a, b->prune, t, &prune, err, errlen);
  if (!rc && b->prune_all && *b->prune_all)
    rc = wv_builder_expand(a, b->prune_all, t, &all, err, errlen);
  if (rc)
    return rc;
  while (prune[np])
    np++;
  while (all && all[na])
    na++;
  json_object *o = json_object_new_object();
  rc =
      o ? wv_json_add_str(o, "dir", wv_arena_sprintf(a, "%s/" STORE_DIR, t->workspace)) : WV_ENOMEM;
  rc = rc ? rc : wv_json_add_strv(o, "prune", prune, np);
  rc = rc ? rc : wv_json_add_strv(o, "all", all, na);
  const char *arg = rc ? NULL : wv_arena_strdup(a, wv_json_compact(o));
  json_object_put(o);
  if (!arg)
    return WV_ENOMEM;
  *s = (wv_job_step_t){.type = WV_JOB_STEP_FN,
                       .name = "prune",
                       .fn = WV_BUILDER_PRUNE_FN,
                       .arg = arg,
                       .may_fail = true};
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
  /* Not may_fail (that would move it past the ready point): it never fails. */
  if (!rc && embedded(t) && t->seed_arg && b->kind == WV_BUILDER_BUILDAH && b->push && *b->push)
    steps[k++] = (wv_job_step_t){.type = WV_JOB_STEP_FN,
                                 .name = "seed-layout",
                                 .fn = WV_BUILDER_SEED_FN,
                                 .arg = t->seed_arg};
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
    /* After the ready point (a tidy-up step): maps the new layers for later builds. */
    steps[k++] = (wv_job_step_t){.type = WV_JOB_STEP_FN,
                                 .name = "map-layers",
                                 .fn = WV_BUILDER_MAP_FN,
                                 .arg = arg,
                                 .may_fail = true};
  }
  /* With the layer cache, rmi would also drop the image's now-dangling parents: the cached
   * steps. The final image stays (it caches the last step) until the prune. */
  if (!rc && b->cleanup && *b->cleanup && !(t->layers && b->kind == WV_BUILDER_BUILDAH)) {
    rc = cmd_step(a, "cleanup", b->cleanup, t, env, &steps[k], err, errlen);
    steps[k++].may_fail = true;
  }
  if (!rc && b->kind == WV_BUILDER_BUILDAH && b->prune && *b->prune)
    rc = prune_step(a, b, t, &steps[k++], err, errlen);
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

/* fn_arg: the wv_app_t. Maps the imported image's gzip layers (arg as the import's). */
static int map_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  const wv_app_t *app = fn_arg;
  json_object *o = NULL;
  const char *repo, *tag;
  char err[256];
  int mapped = 0;
  if (!arg || wv_json_parse(arg, strlen(arg), 64 * 1024, 0, &o, err, sizeof err) ||
      wv_json_get_str(o, "repo", &repo) || wv_json_get_str(o, "tag", &tag)) {
    json_object_put(o);
    return WV_EINVAL;
  }
  int rc = wv_embedded_map_layers(app->store, app->cas, repo, tag, &mapped);
  if (rc)
    wv_job_ctx_logf(ctx, "map-layers %s:%s: %s", repo, tag, wv_strerror(rc));
  else if (mapped)
    wv_job_ctx_logf(ctx, "map-layers %s:%s: %d new layers mapped", repo, tag, mapped);
  json_object_put(o);
  return rc;
}

/* ---- the builders' storage: driver and cap ---- */

/* Removes the probe's scratch tree (a few empty directories and files). */
static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *f) {
  (void)st, (void)type, (void)f;
  remove(path);
  return 0;
}

int wv_builder_probe_overlay(const char *dir, char *why, size_t whylen) {
  char root[4096], opts[4160 * 3 + 64], sub[4][4160];
  static const char *names[] = {"lower", "upper", "work", "merged"};
  int rc = 0;
  why[0] = '\0';
  FILE *f = fopen("/proc/filesystems", "re");
  bool listed = false;
  char line[256];
  while (f && fgets(line, sizeof line, f))
    listed = listed || strstr(line, "\toverlay\n") != NULL;
  if (f)
    fclose(f);
  if (!listed)
    return snprintf(why, whylen, "the kernel has no overlay filesystem (/proc/filesystems)"),
           WV_EUNSUPPORTED;
  if (strlen(dir) > 3000)
    return snprintf(why, whylen, "the workspace path is too long"), WV_EINVAL;
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno)), WV_EIO;
  snprintf(root, sizeof root, "%s/.overlay-probe-%ld", dir, (long)getpid());
  nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT); /* a crashed earlier probe */
  if (mkdir(root, 0700) != 0)
    return snprintf(why, whylen, "cannot create %s: %s", root, strerror(errno)), WV_EIO;
  for (int i = 0; i < 4 && !rc; i++) {
    snprintf(sub[i], sizeof sub[i], "%s/%s", root, names[i]);
    if (mkdir(sub[i], 0700) != 0) {
      snprintf(why, whylen, "cannot create %s: %s", sub[i], strerror(errno));
      rc = WV_EIO;
    }
  }
  snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", sub[0], sub[1], sub[2]);
  if (!rc && mount("overlay", sub[3], "overlay", 0, opts) != 0) {
    snprintf(why, whylen, "an overlay mount in %s fails: %s", dir, strerror(errno));
    rc = WV_EUNSUPPORTED;
  } else if (!rc) {
    umount2(sub[3], MNT_DETACH);
  }
  nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  return rc;
}

/*
 * Detaches the mounts left under dir by builds killed with an earlier waved (a SIGKILLed
 * buildah leaves its overlay mounted). At start no build runs, so every one is stale.
 */
static void unmount_stale(const char *dir) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  char line[8192], mp[4096];
  size_t n = strlen(dir), count = 0;
  while (f && fgets(line, sizeof line, f)) {
    /* "<id> <parent> <maj:min> <root> <mount point> ..." (octal escapes in the point) */
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 || strncmp(mp, dir, n) != 0 ||
        mp[n] != '/' || strchr(mp, '\\'))
      continue;
    if (umount2(mp, MNT_DETACH) == 0)
      count++;
  }
  if (f)
    fclose(f);
  if (count)
    wv_info("build storage %s: detached %zu mounts left by interrupted builds", dir, count);
}

void wv_builder_resolve_driver(const wv_config_t *cfg, char *out, size_t outlen) {
  char ws[4096], dir[4200], why[4200];
  const char *want = cfg->build_storage_driver ? cfg->build_storage_driver : "auto";
  snprintf(ws, sizeof ws, "%s", *cfg->build_workspace ? cfg->build_workspace : "");
  if (!*ws)
    snprintf(ws, sizeof ws, "%s/build", cfg->storage_path);
  snprintf(dir, sizeof dir, "%s/" STORE_DIR, ws);
  unmount_stale(dir);
  char foreign[4300];
  snprintf(foreign, sizeof foreign, "%s/foreign/" STORE_DIR, ws);
  unmount_stale(foreign); /* foreign-platform builds' store (build/build.c) */
  int rc = wv_builder_probe_overlay(dir, why, sizeof why);
  if (strcmp(want, "auto") != 0) {
    snprintf(out, outlen, "%s", want);
    if (strcmp(want, "overlay") == 0 && rc)
      wv_warn("build storage driver: overlay (configured), but %s: builds will fail", why);
    else
      wv_info("build storage driver: %s (configured)", want);
    return;
  }
  snprintf(out, outlen, "%s", rc ? "vfs" : "overlay");
  if (rc)
    wv_info("build storage driver: vfs (auto: %s; vfs copies every layer per build)", why);
  else
    wv_info("build storage driver: overlay (auto: an overlay mount in %s works)", dir);
}

/* Disk use of a directory tree (nftw has no user argument: one walk per thread at a time). */
static _Thread_local uint64_t walk_bytes;
static _Thread_local long walk_entries;

static int add_entry(const char *path, const struct stat *st, int type, struct FTW *f) {
  (void)path, (void)f;
  if (type == FTW_F || type == FTW_D || type == FTW_SL)
    walk_bytes += (uint64_t)st->st_blocks * 512u;
  return ++walk_entries > PRUNE_MAX_ENTRIES; /* stops the walk past the cap */
}

/* Bytes under dir, not crossing mounts (a running overlay build's merged dir). */
static uint64_t tree_bytes(const char *dir) {
  walk_bytes = 0;
  walk_entries = 0;
  nftw(dir, add_entry, 32, FTW_PHYS | FTW_MOUNT);
  return walk_bytes;
}

/* Runs argv, logging its first PRUNE_LOG_MAX bytes of output; 0 when it exited 0. */
static int run_logged(wv_job_ctx_t *ctx, const char *const *argv) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return WV_EIO;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    wv_job_ctx_logf(ctx, "prune: cannot run %s: %s", argv[0], strerror(rc));
    return WV_EIO;
  }
  char out[PRUNE_LOG_MAX + 1], sink[4096];
  size_t got = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  bool killed = false;
  for (;;) {
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int pr = poll(&pf, 1, 1000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (!killed && (ms > PRUNE_TIMEOUT_MS || wv_job_ctx_cancelled(ctx))) {
      kill(pid, SIGKILL);
      killed = true;
    }
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr <= 0)
      continue;
    ssize_t r = got < PRUNE_LOG_MAX ? read(p[0], out + got, PRUNE_LOG_MAX - got)
                                    : read(p[0], sink, sizeof sink);
    if (r <= 0)
      break;
    if (got < PRUNE_LOG_MAX)
      got += (size_t)r;
  }
  close(p[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  out[got] = '\0';
  while (got && (out[got - 1] == '\n' || out[got - 1] == '\r'))
    out[--got] = '\0';
  wv_job_ctx_logf(ctx, "prune: %s %s: %s%s", argv[0],
                  killed                                  ? "killed"
                  : WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "done"
                                                          : "failed",
                  out, got == PRUNE_LOG_MAX ? " [...]" : "");
  return !killed && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : WV_EIO;
}

/* Builds running now, this one included. */
static int running_builds(wv_job_engine_t *e) {
  char name[64];
  int running = 0;
  size_t waiting;
  if (!e) /* no engine to ask (a test driver): assume company */
    return 2;
  for (size_t i = 0; wv_job_engine_kind(e, i, name, &running, &waiting) == 0; i++)
    if (strcmp(name, WV_BUILDER_KIND) == 0)
      return running;
  return 0;
}

/* fn_arg: the wv_app_t. Keeps <workspace>/buildah under wave.build.cache-max-size. */
static int prune_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  const wv_app_t *app = fn_arg;
  json_object *o = NULL;
  const char *dir, **prune = NULL, **all = NULL;
  size_t np = 0, na = 0;
  char err[256];
  wv_arena_t *a = wv_arena_new(0);
  if (!a || !arg || wv_json_parse(arg, strlen(arg), 256 * 1024, 0, &o, err, sizeof err) ||
      wv_json_get_str(o, "dir", &dir) ||
      wv_json_get_strv(o, "prune", a, WV_JOB_ARGS_MAX, &prune, &np) || np == 0) {
    json_object_put(o);
    wv_arena_free(a);
    wv_job_ctx_fail(ctx, "Container build failed: bad prune step");
    return WV_EINVAL;
  }
  if (wv_json_get_strv(o, "all", a, WV_JOB_ARGS_MAX, &all, &na) != 0)
    na = 0;
  uint64_t cap = app->cfg->build_cache_max, size = tree_bytes(dir);
  int rc = 0;
  if (size <= cap) {
    wv_job_ctx_logf(ctx, "build storage %s: %.1f MiB of %.1f MiB", dir, size / 1048576.0,
                    cap / 1048576.0);
  } else if (running_builds(app->jobs) > 1) {
    /* Another build may be about to use a cached layer: the next build ending alone prunes. */
    wv_job_ctx_logf(ctx,
                    "build storage %s: %.1f MiB, over the cap of %.1f MiB; prune deferred "
                    "while other builds run",
                    dir, size / 1048576.0, cap / 1048576.0);
  } else {
    rc = run_logged(ctx, prune);
    uint64_t after = tree_bytes(dir);
    if (after > cap && na > 0) {
      rc = run_logged(ctx, all);
      after = tree_bytes(dir);
    }
    wv_job_ctx_logf(ctx, "build storage %s: pruned from %.1f MiB to %.1f MiB (cap %.1f MiB)", dir,
                    size / 1048576.0, after / 1048576.0, cap / 1048576.0);
    wv_info("build storage %s: pruned from %.1f MiB to %.1f MiB (cap %.1f MiB)", dir,
            size / 1048576.0, after / 1048576.0, cap / 1048576.0);
  }
  json_object_put(o);
  wv_arena_free(a);
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
  rc = rc ? rc : wv_job_register_fn(e, WV_BUILDER_PRUNE_FN, prune_fn, (void *)app);
  rc = rc ? rc : wv_job_register_fn(e, WV_BUILDER_MAP_FN, map_fn, (void *)app);
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
