/*
 * build/sif/sifjob.c — the steps of a Singularity build (see sifbuild.h):
 * the command templates of wave.build.singularity.*, and the two function
 * steps: `sif-rootfs` (the run-time mount points, links, empty hosts and
 * resolv.conf, done with *at() calls relative to the root filesystem so no
 * symlink in the image can point a write at the host) and `sif-write`
 * (image.sif, then the ORAS artifact as an OCI layout, docs/singularity.md).
 */
#include "build/build_int.h"
#include "build/sif/deffile.h"
#include "build/sif/sif.h"
#include "build/sif/sifbuild.h"
#include "core/buf.h"
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

static int cmd(wv_arena_t *a, const char *name, const char *tpl, const wv_builder_target_t *t,
               wv_job_step_t *s, char *err, size_t errlen) {
  const char **argv;
  int rc = wv_builder_expand(a, tpl, t, &argv, err, errlen);
  if (!rc)
    *s = (wv_job_step_t){.type = WV_JOB_STEP_CMD, .name = name, .argv = argv, .cwd = t->workdir};
  return rc;
}

/* Bootstrap: oras — the base SIF fetched (sifbase.c), unsquashed, tarred into the context. */
static int base_steps(wv_arena_t *a, const wv_builder_target_t *t, const char *from,
                      const char *who, wv_job_step_t *steps, size_t *k) {
  json_object *o = json_object_new_object();
  int rc = o ? wv_json_add_str(o, "from", from) : WV_ENOMEM;
  rc = rc || !who ? rc : wv_json_add_str(o, "who", who);
  const char *arg = rc ? NULL : wv_arena_strdup(a, wv_json_compact(o));
  json_object_put(o);
  const char *wd = t->workdir, *root = wv_arena_sprintf(a, "%s/base-root", wd),
             *sqfs = wv_arena_sprintf(a, "%s/base.sqfs", wd),
             *tar = wv_arena_sprintf(a, "%s/context/" WV_SIF_BASE_TAR, wd);
  const char **unsq = wv_arena_calloc(a, 6 * sizeof *unsq),
             **tarv = wv_arena_calloc(a, 8 * sizeof *tarv);
  if (!arg || !root || !sqfs || !tar || !unsq || !tarv)
    return WV_ENOMEM;
  memcpy(unsq, (const char *[]){"unsquashfs", "-no-progress", "-d", root, sqfs, NULL},
         6 * sizeof *unsq);
  memcpy(tarv, (const char *[]){"tar", "--numeric-owner", "-C", root, "-cf", tar, ".", NULL},
         8 * sizeof *tarv);
  steps[(*k)++] =
      (wv_job_step_t){.type = WV_JOB_STEP_FN, .name = "base", .fn = WV_SIF_BASE_FN, .arg = arg};
  steps[(*k)++] =
      (wv_job_step_t){.type = WV_JOB_STEP_CMD, .name = "base-unsquash", .argv = unsq, .cwd = wd};
  steps[(*k)++] =
      (wv_job_step_t){.type = WV_JOB_STEP_CMD, .name = "base-tar", .argv = tarv, .cwd = wd};
  return 0;
}

int wv_sif_steps(wv_arena_t *a, const wv_config_t *cfg, const wv_builder_target_t *t,
                 const char *file, const char *who, wv_job_step_t *steps, size_t *n, char *err,
                 size_t errlen) {
  size_t k = 0;
  bool embedded = !t->repo || !*t->repo;
  wv_deffile_t *d = wv_arena_alloc(a, sizeof *d);
  const char *msg = NULL;
  int rc = d ? wv_deffile_parse(a, file, d, &msg) : WV_ENOMEM;
  if (rc) /* checked at request time already */
    return snprintf(err, errlen, "%s", msg ? msg : wv_strerror(rc)), rc;
  if (d->oras && (rc = base_steps(a, t, d->from, who, steps, &k)) != 0)
    return rc;
  rc = cmd(a, "build", cfg->build_sif_build, t, &steps[k++], err, errlen);
  steps[k++] = (wv_job_step_t){.type = WV_JOB_STEP_FN,
                               .name = "rootfs",
                               .fn = WV_SIF_ROOTFS_FN,
                               .arg = d->oras ? "oras" : NULL};
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
        .type = WV_JOB_STEP_FN, .name = "import", .fn = WV_BUILDER_IMPORT_FN, .arg = arg};
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

static char *slurp(const char *path, size_t max, size_t *len);

/* ---- Bootstrap: oras merges (SingularityCE's makeBaseEnv without overwrite) ---- */

/* The directory /.singularity.d/<sub> of the root filesystem, no link followed. */
static int sd_dir(int root, const char *sub) {
  int sd = openat(root, ".singularity.d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sd < 0 || !sub)
    return sd;
  int d = openat(sd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  close(sd);
  return d;
}

/* %environment appended to the base's env/90-environment.sh. */
static int merge_env(int root, const char *wd) {
  char path[4096];
  size_t len = 0;
  snprintf(path, sizeof path, "%s/sif/oras-environment", wd);
  char *env = slurp(path, META_MAX, &len);
  if (!env)
    return errno == ENOENT ? 0 : WV_EIO; /* no %environment */
  int dir = sd_dir(root, "env");
  int fd = dir < 0 ? -1
                   : openat(dir, "90-environment.sh",
                            O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0755);
  int rc = fd >= 0 && write(fd, env, len) == (ssize_t)len ? 0 : WV_EIO;
  if (fd >= 0 && close(fd) != 0)
    rc = WV_EIO;
  if (dir >= 0)
    close(dir);
  free(env);
  return rc;
}

static int key_cmp(const void *x, const void *y) {
  return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* o as Go's json.MarshalIndent(map, "", "\t") writes labels.json (sifprep.c's labels_json). */
static int go_labels(json_object *o, wv_buf_t *b) {
  size_t n = (size_t)json_object_object_length(o), i = 0;
  const char **keys = n ? calloc(n, sizeof *keys) : NULL;
  if (n && !keys)
    return WV_ENOMEM;
  json_object_object_foreach(o, k, v) {
    (void)v;
    if (i < n)
      keys[i++] = k;
  }
  qsort(keys, i, sizeof *keys, key_cmp);
  int rc = wv_buf_puts(b, i ? "{\n" : "{}");
  for (size_t j = 0; j < i && !rc; j++) {
    json_object *jv = NULL, *jk = json_object_new_string(keys[j]);
    json_object_object_get_ex(o, keys[j], &jv);
    json_object *sv = json_object_new_string(jv ? json_object_get_string(jv) : "");
    rc = jk && sv
             ? wv_buf_printf(b, "\t%s: %s%s\n",
                             json_object_to_json_string_ext(jk, JSON_C_TO_STRING_NOSLASHESCAPE),
                             json_object_to_json_string_ext(sv, JSON_C_TO_STRING_NOSLASHESCAPE),
                             j + 1 < i ? "," : "")
             : WV_ENOMEM;
    json_object_put(jk);
    json_object_put(sv);
  }
  if (!rc && i)
    rc = wv_buf_putc(b, '}');
  free(keys);
  return rc;
}

/* labels.json: the base's labels, then the build's for keys the base lacks (sorted, tabs). */
static int merge_labels(int root, const char *wd) {
  char path[4096], err[64];
  size_t nlen = 0, blen = 0;
  snprintf(path, sizeof path, "%s/sif/oras-labels.json", wd);
  char *ntext = slurp(path, META_MAX, &nlen), *btext = NULL;
  int sd = sd_dir(root, NULL);
  int fd = sd < 0 ? -1 : openat(sd, "labels.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
  if (f) {
    btext = malloc(META_MAX + 1);
    blen = btext ? fread(btext, 1, META_MAX, f) : 0;
    fclose(f);
  } else if (fd >= 0) {
    close(fd);
  }
  json_object *nl = NULL, *bl = NULL;
  int rc = ntext && sd >= 0 ? 0 : WV_EIO;
  if (!rc && wv_json_parse(ntext, nlen, META_MAX, 0, &nl, err, sizeof err))
    rc = WV_EPARSE;
  if (!rc && btext &&
      (wv_json_parse(btext, blen, META_MAX, 0, &bl, err, sizeof err) ||
       !json_object_is_type(bl, json_type_object))) {
    json_object_put(bl);
    bl = NULL; /* an unreadable base label file is replaced */
  }
  json_object_object_foreach(rc ? NULL : nl, k, v) {
    if (bl && !json_object_object_get_ex(bl, k, NULL))
      json_object_object_add(bl, k, json_object_get(v));
  }
  wv_buf_t ob;
  wv_buf_init(&ob, META_MAX);
  if (!rc)
    rc = go_labels(bl ? bl : nl, &ob);
  if (!rc && wv_buf_putc(&ob, '\0'))
    rc = WV_ENOMEM;
  const char *out = rc ? NULL : ob.data;
  if (!rc && unlinkat(sd, "labels.json", 0) != 0 && errno != ENOENT)
    rc = WV_EIO;
  int wfd =
      rc ? -1
         : openat(sd, "labels.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (!rc && (wfd < 0 || write(wfd, out, strlen(out)) != (ssize_t)strlen(out)))
    rc = WV_EIO;
  if (wfd >= 0 && close(wfd) != 0)
    rc = WV_EIO;
  wv_buf_free(&ob);
  json_object_put(nl);
  json_object_put(bl);
  free(ntext);
  free(btext);
  if (sd >= 0)
    close(sd);
  return rc;
}

/* After the export: the merges, and the base's copies freed (docs/singularity.md). */
static int oras_merge(wv_job_ctx_t *ctx, int root, const char *wd) {
  char p[4096];
  int rc = merge_env(root, wd);
  rc = rc ? rc : merge_labels(root, wd);
  if (rc)
    wv_job_ctx_fail(ctx, "Container build failed: cannot merge the base SIF's %s",
                    "/.singularity.d (90-environment.sh, labels.json)");
  snprintf(p, sizeof p, "%s/base-root", wd);
  wv__build_rmtree(p);
  snprintf(p, sizeof p, "%s/base.sqfs", wd);
  unlink(p);
  snprintf(p, sizeof p, "%s/context/" WV_SIF_BASE_TAR, wd);
  unlink(p);
  return rc;
}

static int rootfs_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  (void)fn_arg;
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
  if (!rc && arg && strcmp(arg, "oras") == 0)
    rc = oras_merge(ctx, root, wv_job_ctx_workdir(ctx));
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

/* The SIF into the blob store, for GET /v1alpha1/builds/{id}/sif (routes.c). */
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
  int64_t expires = 0;
  json_object *rec = NULL;
  int rc = wv_store_get_json(app->store, WV_DB_BUILDS, id, META_MAX, 0, &rec, &expires);
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
  wv__build_rmtree(rootfs); /* packed into part.sqfs: free the disk now */
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
  rc = rc ? rc : wv_sif_base_register(e, app);
  return rc ? rc : wv_job_register_fn(e, WV_SIF_WRITE_FN, write_fn, (void *)app);
}
