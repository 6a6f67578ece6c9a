/*
 * build/sif/sifjob.c — the steps of a Singularity build (see sifbuild.h):
 * the command templates of wave.build.singularity.*, and the two function
 * steps: `sif-rootfs` (the run-time mount points, links, empty hosts and
 * resolv.conf, done with *at() calls relative to the root filesystem so no
 * symlink in the image can point a write at the host) and `sif-write`
 * (image.sif, then the ORAS artifact as an OCI layout, docs/singularity.md).
 */
#include "build/build_int.h"
#include "build/sif/sif.h"
#include "build/sif/sifbuild.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/rand.h"
#include "storage/cas.h"
#include "storage/embedded.h"
#include "storage/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define META_MAX (4u << 20)
#define CONFIG_BLOB "{}"

static int cmd(wv_arena_t *a, const char *name, const char *tpl, const wv_build_target_t *t,
               wv_job_step_t *s, char *err, size_t errlen) {
  const char **argv;
  int rc = wv_builder_expand(a, tpl, t, &argv, err, errlen);
  if (!rc)
    *s = (wv_job_step_t){.type = WV_JOB_STEP_CMD, .name = name, .argv = argv, .cwd = t->workdir};
  return rc;
}

int wv_sif_steps(wv_arena_t *a, const wv_config_t *cfg, const wv_build_target_t *t,
                 wv_job_step_t *steps, size_t *n, char *err, size_t errlen) {
  size_t k = 0;
  bool embedded = !t->repo || !*t->repo;
  int rc = cmd(a, "build", cfg->build_sif_build, t, &steps[k++], err, errlen);
  steps[k++] = (wv_job_step_t){.type = WV_JOB_STEP_FN, .name = "rootfs", .fn = WV_SIF_ROOTFS_FN};
  rc = rc ? rc : cmd(a, "squashfs", cfg->build_sif_squashfs, t, &steps[k++], err, errlen);
  steps[k++] =
      (wv_job_step_t){.type = WV_JOB_STEP_FN, .name = "sif", .fn = WV_SIF_WRITE_FN, .arg = t->tag};
  if (!rc && embedded) {
    json_object *o = json_object_new_object();
    int jrc = o ? 0 : WV_ENOMEM;
    jrc = jrc ? jrc : wv_json_add_str(o, "layout", wv_arena_sprintf(a, "%s/oci", t->workdir));
    jrc = jrc ? jrc : wv_json_add_str(o, "ref", t->tag);
    jrc = jrc ? jrc : wv_json_add_str(o, "repo", WV_EMBEDDED_FREEZE_REPO);
    jrc = jrc ? jrc : wv_json_add_str(o, "tag", t->tag);
    const char *arg = jrc ? NULL : wv_arena_strdup(a, wv_json_compact(o));
    json_object_put(o);
    if (!arg)
      return WV_ENOMEM;
    steps[k++] = (wv_job_step_t){
        .type = WV_JOB_STEP_FN, .name = "import", .fn = WV_BUILD_IMPORT_FN, .arg = arg};
  } else if (!rc) {
    rc = cmd(a, "push", cfg->build_sif_push, t, &steps[k++], err, errlen);
  }
  if (!rc && cfg->build_sif_cleanup && *cfg->build_sif_cleanup) {
    rc = cmd(a, "cleanup", cfg->build_sif_cleanup, t, &steps[k], err, errlen);
    steps[k++].may_fail = true;
  }
  if (!rc)
    *n = k;
  return rc;
}

/* ---- sif-rootfs ---- */

static int fail(wv_job_ctx_t *ctx, int rc, const char *what, const char *name) {
  wv_job_ctx_fail(ctx, "Container build failed: %s %s: %s", what, name, strerror(errno));
  return rc;
}

/* A directory entry of dirfd created if missing; a symlink there is left alone. */
static int ensure_dir(int dirfd, const char *name) {
  return mkdirat(dirfd, name, 0755) == 0 || errno == EEXIST ? 0 : WV_EIO;
}

/* name in dirfd becomes an empty regular file (a symlink or file there is replaced). */
static int empty_file(int dirfd, const char *name) {
  if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
    return WV_EIO;
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    return WV_EIO;
  int rc = fchmod(fd, 0644) == 0 ? 0 : WV_EIO;
  close(fd);
  return rc;
}

static int rootfs_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  (void)fn_arg, (void)arg;
  static const char *const dirs[] = {"dev", "proc", "sys", "tmp", "var", "home", "root", "etc"};
  static const char *const links[][2] = {{"singularity", ".singularity.d/runscript"},
                                         {".run", ".singularity.d/actions/run"},
                                         {".exec", ".singularity.d/actions/exec"},
                                         {".test", ".singularity.d/actions/test"},
                                         {".shell", ".singularity.d/actions/shell"},
                                         {"environment", ".singularity.d/env/90-environment.sh"}};
  char path[4096];
  snprintf(path, sizeof path, "%s/rootfs", wv_job_ctx_workdir(ctx));
  int root = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0)
    return fail(ctx, WV_EIO, "no root filesystem at", path);
  int rc = 0;
  for (size_t i = 0; !rc && i < sizeof dirs / sizeof dirs[0]; i++)
    if (ensure_dir(root, dirs[i]))
      rc = fail(ctx, WV_EIO, "cannot create", dirs[i]);
  int var = rc ? -1 : openat(root, "var", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (var >= 0 && ensure_dir(var, "tmp"))
    rc = fail(ctx, WV_EIO, "cannot create", "/var/tmp");
  int etc = rc ? -1 : openat(root, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (!rc && etc < 0)
    rc = fail(ctx, WV_EIO, "cannot open", "/etc");
  /* The host's files are bound over these at run time: leave no build-time DNS in them. */
  if (!rc && (empty_file(etc, "hosts") || empty_file(etc, "resolv.conf")))
    rc = fail(ctx, WV_EIO, "cannot empty", "/etc/hosts or /etc/resolv.conf");
  for (size_t i = 0; !rc && i < sizeof links / sizeof links[0]; i++)
    if (symlinkat(links[i][1], root, links[i][0]) != 0 && errno != EEXIST)
      rc = fail(ctx, WV_EIO, "cannot link", links[i][0]);
  if (var >= 0)
    close(var);
  if (etc >= 0)
    close(etc);
  close(root);
  if (!rc)
    wv_job_ctx_logf(ctx, "root filesystem ready for Singularity (%s)", path);
  return rc;
}

/* ---- sif-write ---- */

static char *slurp(const char *path, size_t max, size_t *len) {
  FILE *f = fopen(path, "rbe");
  char *buf = f ? malloc(max + 1) : NULL;
  size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
  if (f)
    fclose(f);
  if (!buf || n > max) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

static int sha256_file(const char *path, char out[WV_DIGEST_STRLEN], uint64_t *size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  wv_sha256_t h;
  if (fd < 0)
    return WV_EIO;
  char *buf = malloc(1u << 20);
  int rc = buf && wv_sha256_init(&h) == 0 ? 0 : WV_ENOMEM;
  *size = 0;
  for (ssize_t n; !rc && (n = read(fd, buf, 1u << 20)) != 0;) {
    rc = n < 0 ? WV_EIO : wv_sha256_update(&h, buf, (size_t)n);
    *size += n > 0 ? (uint64_t)n : 0;
  }
  uint8_t hash[WV_SHA256_LEN];
  if (!rc && wv_sha256_final(&h, hash) == 0)
    wv_digest_format(hash, out);
  else if (buf && !rc)
    rc = WV_EIO;
  free(buf);
  close(fd);
  return rc;
}

static int put_blob(const char *layout, const char *text, size_t len,
                    char digest[WV_DIGEST_STRLEN]) {
  char path[4096];
  if (wv_digest_of(text, len, digest) != 0)
    return WV_ENOMEM;
  int n = snprintf(path, sizeof path, "%s/blobs/sha256/%s", layout, digest + 7);
  if (n < 0 || (size_t)n >= sizeof path)
    return WV_ETOOBIG;
  FILE *f = fopen(path, "wbe");
  int rc = f && fwrite(text, 1, len, f) == len ? 0 : WV_EIO;
  if (f && fclose(f) != 0)
    rc = WV_EIO;
  return rc;
}

/*
 * The ORAS artifact singularity push writes (docs/singularity.md): an OCI
 * manifest, the config blob "{}" and one layer, the SIF, titled image.sif;
 * in an OCI layout whose index names the tag.
 */
static int write_layout(const char *wd, const char *sif, const char *tag, char *mdigest, char *err,
                        size_t errlen) {
  char layout[4096], p[4200], sdig[WV_DIGEST_STRLEN], cdig[WV_DIGEST_STRLEN];
  uint64_t size;
  snprintf(layout, sizeof layout, "%s/oci", wd);
  snprintf(p, sizeof p, "%s/blobs", layout);
  if ((mkdir(layout, 0755) && errno != EEXIST) || (mkdir(p, 0755) && errno != EEXIST) ||
      (snprintf(p, sizeof p, "%s/blobs/sha256", layout), mkdir(p, 0755) && errno != EEXIST))
    return snprintf(err, errlen, "cannot create %.400s", p), WV_EIO;
  int rc = sha256_file(sif, sdig, &size);
  snprintf(p, sizeof p, "%s/blobs/sha256/%s", layout, sdig + 7);
  if (!rc && link(sif, p) != 0 && errno != EEXIST)
    rc = WV_EIO;
  rc = rc ? rc : put_blob(layout, CONFIG_BLOB, 2, cdig);
  char *man = NULL, *idx = NULL;
  if (!rc && asprintf(&man,
                      "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+"
                      "json\",\"config\":{\"mediaType\":\"" WV_SIF_CONFIG_MT "\",\"size\":2,"
                      "\"digest\":\"%s\"},\"layers\":[{\"mediaType\":\"" WV_SIF_LAYER_MT "\","
                      "\"size\":%llu,\"digest\":\"%s\",\"annotations\":{\"org.opencontainers."
                      "image.title\":\"" WV_SIF_TITLE "\"}}]}",
                      cdig, (unsigned long long)size, sdig) < 0)
    rc = WV_ENOMEM;
  rc = rc ? rc : put_blob(layout, man, strlen(man), mdigest);
  if (!rc && asprintf(&idx,
                      "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci."
                      "image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":{"
                      "\"org.opencontainers.image.ref.name\":\"%s\"}}]}",
                      mdigest, strlen(man), tag) < 0)
    rc = WV_ENOMEM;
  snprintf(p, sizeof p, "%s/index.json", layout);
  FILE *f = rc ? NULL : fopen(p, "we");
  if (!rc && (!f || fputs(idx, f) < 0))
    rc = WV_EIO;
  if (f && fclose(f) != 0)
    rc = WV_EIO;
  snprintf(p, sizeof p, "%s/oci-layout", layout);
  f = rc ? NULL : fopen(p, "we");
  if (!rc && (!f || fputs("{\"imageLayoutVersion\":\"1.0.0\"}", f) < 0))
    rc = WV_EIO;
  if (f && fclose(f) != 0)
    rc = WV_EIO;
  if (rc)
    snprintf(err, errlen, "cannot write the ORAS layout in %.400s: %s", layout, wv_strerror(rc));
  else
    snprintf(err, errlen, "%llu bytes, %s", (unsigned long long)size, sdig);
  free(man);
  free(idx);
  return rc;
}

static int write_sif(const char *wd, const char *sif, char *err, size_t errlen) {
  static const char *const names[] = {"Singularity", "inspect-metadata.json", "oci-config.json",
                                      "arch"};
  char *text[4] = {NULL, NULL, NULL, NULL}, path[4096], part[4096];
  size_t len[4];
  int rc = 0;
  for (int i = 0; !rc && i < 4; i++) {
    snprintf(path, sizeof path, "%s/sif/%s", wd, names[i]);
    if (!(text[i] = slurp(path, META_MAX, &len[i])))
      rc = (snprintf(err, errlen, "cannot read %.400s", path), WV_EIO);
  }
  snprintf(part, sizeof part, "%s/part.sqfs", wd);
  wv_sif_object_t objs[] = {
      {.type = WV_SIF_DEFFILE, .data = text[0], .len = len[0]},
      {.type = WV_SIF_GENERICJSON, .name = names[1], .data = text[1], .len = len[1]},
      {.type = WV_SIF_GENERICJSON, .name = names[2], .data = text[2], .len = len[2]},
      {.type = WV_SIF_PARTITION, .path = part, .arch = text[3]},
  };
  uint8_t uuid[16];
  if (!rc && wv_rand_bytes(uuid, sizeof uuid) != 0)
    rc = WV_EINTERNAL;
  uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* RFC 4122 version 4 */
  uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
  int fd = rc ? -1 : open(sif, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (!rc && fd < 0)
    rc = (snprintf(err, errlen, "cannot create %.400s: %s", sif, strerror(errno)), WV_EIO);
  rc = rc ? rc : wv_sif_write(fd, objs, 4, (int64_t)time(NULL), uuid, err, errlen);
  if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0) && !rc)
    rc = WV_EIO;
  for (int i = 0; i < 4; i++)
    free(text[i]);
  return rc;
}

/* The SIF into the blob store, for GET /v1alpha1/builds/{id}/sif (sifroute.c). */
static int store_sif(const wv_app_t *app, const char *sif, char digest[WV_DIGEST_STRLEN],
                     uint64_t *size) {
  wv_cas_writer_t *w = NULL;
  int fd = open(sif, O_RDONLY | O_CLOEXEC);
  char *buf = malloc(1u << 20);
  int rc = fd >= 0 && buf ? wv_cas_begin(app->cas, &w) : WV_EIO;
  *size = 0;
  for (ssize_t n; !rc && (n = read(fd, buf, 1u << 20)) != 0;) {
    rc = n < 0 ? WV_EIO : wv_cas_write(w, buf, (size_t)n);
    *size += n > 0 ? (uint64_t)n : 0;
  }
  if (!rc) {
    rc = wv_cas_commit(w, NULL, digest); /* frees w in every case */
    w = NULL;
  }
  wv_cas_abort(w);
  free(buf);
  if (fd >= 0)
    close(fd);
  return rc;
}

/* sifDigest and sifSize into the build record (kept as long as the record). */
static int record_sif(const wv_app_t *app, const char *id, const char *digest, uint64_t size) {
  char *val = NULL, err[64];
  size_t len = 0;
  int64_t expires = 0;
  json_object *rec = NULL;
  int rc = wv_store_get(app->store, WV_DB_BUILDS, id, &val, &len, &expires);
  if (rc == 0 && wv_json_parse(val, len, META_MAX, 0, &rec, err, sizeof err))
    rc = WV_ESTORE;
  free(val);
  rc = rc ? rc : wv_json_add_str(rec, "sifDigest", digest);
  rc = rc ? rc : wv_json_add_int(rec, "sifSize", (int64_t)size);
  const char *s = rc ? NULL : wv_json_compact(rec);
  if (s)
    rc = wv_store_put(app->store, WV_DB_BUILDS, id, s, strlen(s), expires);
  json_object_put(rec);
  return rc;
}

static int write_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *tag) {
  const wv_app_t *app = fn_arg;
  const char *wd = wv_job_ctx_workdir(ctx);
  char sif[4096], rootfs[4096], err[512] = "", mdigest[WV_DIGEST_STRLEN];
  snprintf(sif, sizeof sif, "%s/image.sif", wd);
  snprintf(rootfs, sizeof rootfs, "%s/rootfs", wd);
  wv_build_rmtree(rootfs); /* packed into part.sqfs: free the disk now */
  int rc = write_sif(wd, sif, err, sizeof err);
  wv_sif_info_t info;
  rc = rc ? rc : wv_sif_verify_file(sif, &info, err, sizeof err);
  rc = rc ? rc : write_layout(wd, sif, tag ? tag : "latest", mdigest, err, sizeof err);
  if (rc) {
    wv_job_ctx_fail(ctx, "Container build failed: cannot write the SIF: %s", err);
    return rc;
  }
  wv_job_ctx_logf(ctx, "wrote image.sif (%s), arch %s, %zu objects; ORAS manifest %s", err,
                  info.arch, info.n, mdigest);
  char sdig[WV_DIGEST_STRLEN];
  uint64_t size = 0;
  rc = app && app->cas ? store_sif(app, sif, sdig, &size) : 0;
  rc = rc || !app || !app->store ? rc : record_sif(app, wv_job_ctx_id(ctx), sdig, size);
  if (rc)
    wv_job_ctx_fail(ctx, "Container build failed: cannot keep the SIF for download: %s",
                    wv_strerror(rc));
  return rc;
}

int wv_sif_register(wv_job_engine_t *e, const wv_app_t *app) {
  int rc = wv_job_register_fn(e, WV_SIF_ROOTFS_FN, rootfs_fn, NULL);
  return rc ? rc : wv_job_register_fn(e, WV_SIF_WRITE_FN, write_fn, (void *)app);
}
