/*
 * build/sif/sifprep.c — from a definition file to what buildah builds and
 * what the SIF holds (see sifbuild.h; docs/singularity.md says which
 * SingularityCE behaviour each piece follows).
 *
 * DESIGN. The root filesystem is built by buildah from a generated
 * Containerfile, so %files and %post run with the builder's isolation and
 * the job's time and memory limits: COPY/ADD resolve every path inside the
 * image, never on the host. The /.singularity.d tree is written here, on
 * the host, into a separate build context (`waved-sif`) that the
 * Containerfile copies in before %files and %post (as singularity's
 * makeBaseEnv runs first), so %post sees $SINGULARITY_ENVIRONMENT's
 * directory. Everything the SIF stores besides the partition (the
 * definition, inspect-metadata.json, oci-config.json) is known now.
 */
#include "build/layers.h"
#include "build/sif/deffile.h"
#include "build/sif/sif.h"
#include "build/sif/sifbuild.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "registry/platform.h"
#include "registry/ref.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CTX_VAR "{{wave_context_dir}}"
#define OUT_MAX (4u << 20)
#define MAX_MATCHES 1024
#define SING_VERSION "4.2.1-waved"

/* ---- request-time checks ---- */

/* The %files source relative to the build context, or NULL when it is outside. */
static const char *context_rel(wv_arena_t *a, const char *src) {
  if (strncmp(src, CTX_VAR, strlen(CTX_VAR)) == 0) {
    src += strlen(CTX_VAR);
    while (*src == '/')
      src++;
    if (!*src)
      src = ".";
  } else if (*src == '/') {
    return NULL;
  }
  for (const char *p = src; *p;) { /* no ".." component */
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.')
      return NULL;
    p += n;
    p += *p == '/';
  }
  if (strpbrk(src, "\"\\\n\r"))
    return NULL;
  return wv_arena_strdup(a, src);
}

int wv_sif_check(wv_arena_t *a, const char *file, const char **msg) {
  wv_deffile_t *d = wv_arena_alloc(a, sizeof *d);
  int rc = d ? wv_deffile_parse(a, file, d, msg) : WV_ENOMEM;
  wv_ref_t ref;
  const char *rmsg = NULL;
  if (!rc && d->oras && (wv_ref_parse(a, d->from, &ref, &rmsg) != 0 || ref.scheme)) {
    *msg = wv_arena_sprintf(a,
                            "Invalid Singularity definition file - 'From:' of 'Bootstrap: oras' "
                            "must name a SIF artifact as <registry>/<repository>:<tag> '%s'",
                            d->from);
    rc = WV_EINVAL;
  }
  for (size_t i = 0; !rc && i < d->n_files; i++) {
    if (!context_rel(a, d->files[i].src)) {
      *msg = wv_arena_sprintf(a,
                              "Invalid Singularity definition file - %%files source '%s' is "
                              "outside the build context (use a path relative to the context)",
                              d->files[i].src);
      rc = WV_EINVAL;
    } else if (d->files[i].dst[0] != '/' || strpbrk(d->files[i].dst, "\"\\\n\r")) {
      *msg = wv_arena_sprintf(a,
                              "Invalid Singularity definition file - %%files destination '%s' "
                              "must be an absolute path",
                              d->files[i].dst);
      rc = WV_EINVAL;
    }
  }
  if (!rc && d->post.body && d->post.args && *d->post.args &&
      (strncmp(d->post.args, "-c ", 3) != 0 ||
       strspn(d->post.args + 3, "abcdefghijklmnopqrstuvwxyz0123456789/_.-") !=
           strlen(d->post.args + 3))) {
    *msg = wv_arena_sprintf(a,
                            "Invalid Singularity definition file - %%post arguments '%s' "
                            "(only -c <shell> is supported)",
                            d->post.args);
    rc = WV_EINVAL;
  }
  return rc;
}

/* ---- files ---- */

static int put_file(const char *path, const char *text, size_t len, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return wv_err_io(errno);
  int rc = write(fd, text, len) == (ssize_t)len ? 0 : wv_err_io(errno);
  if (fchmod(fd, mode) != 0 && !rc)
    rc = wv_err_io(errno);
  if (close(fd) != 0 && !rc)
    rc = wv_err_io(errno);
  return rc;
}

static int put(wv_arena_t *a, const char *dir, const char *name, const char *text, mode_t mode) {
  const char *p = wv_arena_sprintf(a, "%s/%s", dir, name);
  return p ? put_file(p, text, strlen(text), mode) : WV_ENOMEM;
}

static int mkdirs(wv_arena_t *a, const char *dir, const char *const *names) {
  for (; *names; names++) {
    const char *p = wv_arena_sprintf(a, "%s/%s", dir, *names);
    if (!p)
      return WV_ENOMEM;
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
      return wv_err_io(errno);
  }
  return 0;
}

/* ---- shell quoting ---- */

/* v inside double quotes: \ " $ and backquote escaped. */
static int dq(wv_buf_t *b, const char *v) {
  int rc = 0;
  for (; *v && !rc; v++)
    rc = strchr("\\\"$`", *v) ? wv_buf_printf(b, "\\%c", *v) : wv_buf_putc(b, *v);
  return rc;
}

/* v inside single quotes: ' becomes '"'"'. */
static int sq(wv_buf_t *b, const char *v) {
  int rc = 0;
  for (; *v && !rc; v++)
    rc = *v == '\'' ? wv_buf_puts(b, "'\"'\"'") : wv_buf_putc(b, *v);
  return rc;
}

static const char *buf_str(wv_arena_t *a, wv_buf_t *b, int rc) {
  const char *s = rc ? NULL : wv_arena_strndup(a, b->data ? b->data : "", b->len);
  wv_buf_free(b);
  return s;
}

/* ---- the image config ---- */

typedef struct {
  json_object *root;   /* the whole config document (owned) */
  json_object *config; /* its "config" object, NULL when none */
} imgcfg_t;

static const char *const *strv(wv_arena_t *a, json_object *cfg, const char *key, size_t *n) {
  const char **v = NULL;
  *n = 0;
  if (cfg && wv_json_get_strv(cfg, key, a, 4096, &v, n) != 0)
    *n = 0, v = NULL;
  return v;
}

/* env/10-docker2singularity.sh: image values are defaults, PATH is forced. */
static const char *docker_env(wv_arena_t *a, json_object *cfg) {
  size_t n;
  const char *const *env = strv(a, cfg, "Env", &n);
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  int rc = wv_buf_puts(&b, "#!/bin/sh\n");
  for (size_t i = 0; !rc && i < n; i++) {
    const char *eq = strchr(env[i], '=');
    size_t kl = eq ? (size_t)(eq - env[i]) : strlen(env[i]);
    if (kl == 0 ||
        strspn(env[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") < kl)
      continue; /* not a shell name */
    if (!eq)
      rc = wv_buf_printf(&b, "export %.*s=\"${%.*s:-}\"\n", (int)kl, env[i], (int)kl, env[i]);
    else if (kl == 4 && strncmp(env[i], "PATH", 4) == 0) {
      rc = wv_buf_puts(&b, "export PATH=\"");
      rc = rc ? rc : dq(&b, eq + 1);
      rc = rc ? rc : wv_buf_puts(&b, "\"\n");
    } else {
      rc = wv_buf_printf(&b, "export %.*s=\"${%.*s:-\"", (int)kl, env[i], (int)kl, env[i]);
      rc = rc ? rc : dq(&b, eq + 1);
      rc = rc ? rc : wv_buf_puts(&b, "\"}\"\n");
    }
  }
  return buf_str(a, &b, rc);
}

/* Each element as "…" (escaped), joined by a space, for a single-quoted assignment. */
static int oci_words(wv_buf_t *b, const char *const *v, size_t n) {
  wv_buf_t w;
  wv_buf_init(&w, OUT_MAX);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    rc = wv_buf_printf(&w, "%s\"", i ? " " : "");
    rc = rc ? rc : dq(&w, v[i]);
    rc = rc ? rc : wv_buf_putc(&w, '"');
  }
  rc = rc ? rc : sq(b, w.data ? w.data : "");
  wv_buf_free(&w);
  return rc;
}

static const char OCI_RUN_TAIL[] =
    "CMDLINE_ARGS=\"\"\n"
    "# prepare command line arguments for evaluation\n"
    "for arg in \"$@\"; do\n"
    "    arg=$(printf '%s' \"$arg\" | sed -e 's/[\\\\\"$`]/\\\\&/g')\n"
    "    CMDLINE_ARGS=\"${CMDLINE_ARGS} \\\"${arg}\\\"\"\n"
    "done\n"
    "\n"
    "# ENTRYPOINT + arguments, else ENTRYPOINT + CMD\n"
    "if [ $# -gt 0 ]; then\n"
    "    SINGULARITY_OCI_RUN=\"${OCI_ENTRYPOINT} ${CMDLINE_ARGS}\"\n"
    "else\n"
    "    SINGULARITY_OCI_RUN=\"${OCI_ENTRYPOINT} ${OCI_CMD}\"\n"
    "fi\n"
    "\n"
    "# Evaluate shell expressions first and set arguments accordingly,\n"
    "# then execute final command as first container process\n"
    "eval \"set ${SINGULARITY_OCI_RUN}\"\n"
    "exec \"$@\"\n";

static const char *oci_runscript(wv_arena_t *a, json_object *cfg) {
  size_t ne, nc;
  const char *const *e = strv(a, cfg, "Entrypoint", &ne);
  const char *const *c = strv(a, cfg, "Cmd", &nc);
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  int rc = wv_buf_puts(&b, "#!/bin/sh\nOCI_ENTRYPOINT='");
  rc = rc ? rc : oci_words(&b, e, ne);
  rc = rc ? rc : wv_buf_puts(&b, "'\nOCI_CMD='");
  rc = rc ? rc : oci_words(&b, c, nc);
  rc = rc ? rc : wv_buf_puts(&b, "'\n");
  rc = rc ? rc : wv_buf_puts(&b, OCI_RUN_TAIL);
  return buf_str(a, &b, rc);
}

/* %runscript / %startscript / %test: shebang + "\n\n" + rest + "\n". */
static const char *script(wv_arena_t *a, const wv_deffile_script_t *s) {
  const char *body = s->body;
  while (*body == ' ' || *body == '\t' || *body == '\n' || *body == '\r')
    body++;
  const char *shebang = "#!/bin/sh", *rest = s->body;
  if (strncmp(body, "#!", 2) == 0) {
    size_t n = strcspn(body, "\n");
    shebang = wv_arena_strndup(a, body, n);
    rest = body[n] ? body + n + 1 : "";
  }
  const char *hash = s->args ? strchr(s->args, '#') : NULL;
  const char *args =
      s->args ? wv_arena_strndup(a, s->args, hash ? (size_t)(hash - s->args) : strlen(s->args))
              : "";
  return shebang && args
             ? wv_arena_sprintf(a, "%s%s%s\n\n%s\n", shebang, *args ? " " : "", args, rest)
             : NULL;
}

/* ---- fixed scripts of /.singularity.d (singularity's makeBaseEnv, docs/singularity.md) ---- */

#define SOURCE_ENV                                                                                 \
  "for script in /.singularity.d/env/*.sh; do\n"                                                   \
  "    if [ -f \"$script\" ]; then\n"                                                              \
  "        . \"$script\"\n"                                                                        \
  "    fi\n"                                                                                       \
  "done\n"

static const char ACT_EXEC[] = "#!/bin/sh\n\n" SOURCE_ENV "\nexec \"$@\"\n";
static const char ACT_RUN[] =
    "#!/bin/sh\n\n" SOURCE_ENV "\n"
    "if test -n \"${SINGULARITY_APPNAME:-}\"; then\n"
    "    if test -x \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript\"; then\n"
    "        exec \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/runscript\" \"$@\"\n"
    "    else\n"
    "        echo \"No Singularity runscript for contained app: ${SINGULARITY_APPNAME:-}\"\n"
    "        exit 1\n"
    "    fi\n"
    "elif test -x \"/.singularity.d/runscript\"; then\n"
    "    exec \"/.singularity.d/runscript\" \"$@\"\n"
    "else\n"
    "    echo \"No Singularity runscript found, executing /bin/sh\"\n"
    "    exec /bin/sh \"$@\"\n"
    "fi\n";
static const char ACT_SHELL[] =
    "#!/bin/sh\n\n" SOURCE_ENV "\n"
    "if test -n \"$SINGULARITY_SHELL\" -a -x \"$SINGULARITY_SHELL\"; then\n"
    "    exec $SINGULARITY_SHELL \"$@\"\n"
    "elif test -x /bin/bash; then\n"
    "    SHELL=/bin/bash\n"
    "    PS1=\"Singularity $SINGULARITY_NAME:\\\\w> \"\n"
    "    export SHELL PS1\n"
    "    exec /bin/bash --norc \"$@\"\n"
    "elif test -x /bin/sh; then\n"
    "    SHELL=/bin/sh\n"
    "    export SHELL\n"
    "    exec /bin/sh \"$@\"\n"
    "else\n"
    "    echo \"ERROR: /bin/sh does not exist in container\" 1>&2\n"
    "fi\n"
    "exit 1\n";
static const char ACT_START[] = "#!/bin/sh\n\n# if we are here start notify PID 1 to continue\n"
                                "kill -CONT 1\n\n" SOURCE_ENV "\n"
                                "if test -x \"/.singularity.d/startscript\"; then\n"
                                "    exec \"/.singularity.d/startscript\"\n"
                                "fi\n";
static const char ACT_TEST[] = "#!/bin/sh\n\n" SOURCE_ENV "\n"
                               "if test -x \"/.singularity.d/test\"; then\n"
                               "    exec \"/.singularity.d/test\" \"$@\"\n"
                               "else\n"
                               "    echo \"No Singularity test script found, executing /bin/sh "
                               "-c true\"\n"
                               "    exec /bin/sh -c true\n"
                               "fi\n";
static const char ENV_01[] = "#!/bin/sh\n# \n# Copyright (c) Contributors to the Apptainer "
                             "project, established as\n#   Apptainer a Series of LF Projects LLC.\n"
                             "# Written for waved, which writes the file singularity writes.\n#\n";
static const char ENV_90[] = "#!/bin/sh\n# Custom environment shell code should follow\n\n";
static const char ENV_95[] =
    "#!/bin/sh\n\n"
    "if test -n \"${SINGULARITY_APPNAME:-}\"; then\n\n"
    "    # The active app should be exported\n"
    "    export SINGULARITY_APPNAME\n\n"
    "    if test -d \"/scif/apps/${SINGULARITY_APPNAME:-}/\"; then\n"
    "        SCIF_APPS=\"/scif/apps\"\n"
    "        SCIF_APPROOT=\"/scif/apps/${SINGULARITY_APPNAME:-}\"\n"
    "        export SCIF_APPROOT SCIF_APPS\n"
    "        PATH=\"/scif/apps/${SINGULARITY_APPNAME:-}:$PATH\"\n\n"
    "        # Automatically add application bin to path\n"
    "        if test -d \"/scif/apps/${SINGULARITY_APPNAME:-}/bin\"; then\n"
    "            PATH=\"/scif/apps/${SINGULARITY_APPNAME:-}/bin:$PATH\"\n"
    "        fi\n\n"
    "        # Automatically add application lib to LD_LIBRARY_PATH\n"
    "        if test -d \"/scif/apps/${SINGULARITY_APPNAME:-}/lib\"; then\n"
    "            LD_LIBRARY_PATH=\"/scif/apps/${SINGULARITY_APPNAME:-}/lib:$LD_LIBRARY_PATH\"\n"
    "            export LD_LIBRARY_PATH\n"
    "        fi\n\n"
    "        # Automatically source environment\n"
    "        if [ -f \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh\" ]; then\n"
    "            . \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/01-base.sh\"\n"
    "        fi\n"
    "        if [ -f \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh\" ]; then\n"
    "            . \"/scif/apps/${SINGULARITY_APPNAME:-}/scif/env/90-environment.sh\"\n"
    "        fi\n\n"
    "        export PATH\n"
    "    else\n"
    "        echo \"Could not locate the container application: ${SINGULARITY_APPNAME}\"\n"
    "        exit 1\n"
    "    fi\n"
    "fi\n";
static const char ENV_99[] = "#!/bin/sh\n\n"
                             "if [ -z \"$LD_LIBRARY_PATH\" ]; then\n"
                             "    LD_LIBRARY_PATH=\"/.singularity.d/libs\"\n"
                             "else\n"
                             "    LD_LIBRARY_PATH=\"$LD_LIBRARY_PATH:/.singularity.d/libs\"\n"
                             "fi\n\n"
                             "PS1=\"Singularity> \"\n"
                             "export LD_LIBRARY_PATH PS1\n";
static const char ENV_99RT[] = "#!/bin/sh\n"
                               "if test -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\"; then\n"
                               "    PATH=\"${SING_USER_DEFINED_PREPEND_PATH}:${PATH}\"\n"
                               "fi\n\n"
                               "if test -n \"${SING_USER_DEFINED_APPEND_PATH:-}\"; then\n"
                               "    PATH=\"${PATH}:${SING_USER_DEFINED_APPEND_PATH}\"\n"
                               "fi\n\n"
                               "if test -n \"${SING_USER_DEFINED_PATH:-}\"; then\n"
                               "    PATH=\"${SING_USER_DEFINED_PATH}\"\n"
                               "fi\n\n"
                               "unset SING_USER_DEFINED_PREPEND_PATH \\\n"
                               "      SING_USER_DEFINED_APPEND_PATH \\\n"
                               "      SING_USER_DEFINED_PATH\n\n"
                               "export PATH\n";

/* ---- labels ---- */

typedef struct {
  wv_deffile_kv_t v[WV_DEFFILE_MAX_LABELS * 2 + 32];
  size_t n;
} labels_t;

/* An existing key is kept, as singularity merges labels without --force. */
static void label_add(labels_t *l, const char *k, const char *v) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].key, k) == 0)
      return;
  if (k && v && l->n < sizeof l->v / sizeof l->v[0])
    l->v[l->n++] = (wv_deffile_kv_t){k, v};
}

static int kv_cmp(const void *x, const void *y) {
  return strcmp(((const wv_deffile_kv_t *)x)->key, ((const wv_deffile_kv_t *)y)->key);
}

/* Go's json.MarshalIndent(map, "", "\t"): sorted keys, tab indent, no final newline. */
static const char *labels_json(wv_arena_t *a, labels_t *l) {
  qsort(l->v, l->n, sizeof l->v[0], kv_cmp);
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  int rc = wv_buf_puts(&b, l->n ? "{\n" : "{}");
  for (size_t i = 0; i < l->n && !rc; i++) {
    json_object *k = json_object_new_string(l->v[i].key),
                *v = json_object_new_string(l->v[i].value);
    rc = k && v ? wv_buf_printf(&b, "\t%s: %s%s\n",
                                json_object_to_json_string_ext(k, JSON_C_TO_STRING_NOSLASHESCAPE),
                                json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE),
                                i + 1 < l->n ? "," : "")
                : WV_ENOMEM;
    json_object_put(k);
    json_object_put(v);
  }
  if (!rc && l->n)
    rc = wv_buf_putc(&b, '}');
  return buf_str(a, &b, rc);
}

/* Singularity's build-date format: Monday_2_January_2006_15:4:5_UTC (no zero padding). */
static const char *build_date(wv_arena_t *a, int64_t now_ns) {
  static const char *const days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                     "Thursday", "Friday", "Saturday"};
  static const char *const months[] = {"January",   "February", "March",    "April",
                                       "May",       "June",     "July",     "August",
                                       "September", "October",  "November", "December"};
  time_t t = (time_t)(now_ns / 1000000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  return wv_arena_sprintf(a, "%s_%d_%s_%d_%d:%d:%d_UTC", days[tm.tm_wday], tm.tm_mday,
                          months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void build_labels(wv_arena_t *a, const wv_deffile_t *d, json_object *cfg, const char *arch,
                         int64_t now_ns, labels_t *l) {
  json_object *img = NULL;
  if (cfg && json_object_object_get_ex(cfg, "Labels", &img) &&
      json_object_is_type(img, json_type_object)) {
    json_object_object_foreach(img, k, v) {
      if (json_object_is_type(v, json_type_string))
        label_add(l, wv_arena_strdup(a, k), wv_arena_strdup(a, json_object_get_string(v)));
    }
  }
  label_add(l, "org.label-schema.schema-version", "1.0");
  label_add(l, "org.label-schema.build-arch", arch);
  label_add(l, "org.label-schema.build-date", build_date(a, now_ns));
  label_add(l, "org.label-schema.usage.singularity.version", SING_VERSION);
  for (size_t i = 0; i < d->n_headers; i++)
    label_add(
        l, wv_arena_sprintf(a, "org.label-schema.usage.singularity.deffile.%s", d->headers[i].key),
        d->headers[i].value);
  if (d->help.body) {
    label_add(l, "org.label-schema.usage", "/.singularity.d/runscript.help");
    label_add(l, "org.label-schema.usage.singularity.runscript.help",
              "/.singularity.d/runscript.help");
  }
  for (size_t i = 0; i < d->n_labels; i++)
    label_add(l, d->labels[i].key, d->labels[i].value);
}

/* ---- the tree and the metadata ---- */

static const char NO_RUNSCRIPT[] =
    "#!/bin/sh\n\necho \"There is no runscript defined for this container\\n\";\n";

typedef struct {
  const char *env10, *env90, *runscript, *startscript, *test, *help, *labels, *deffile;
} meta_t;

/* File contents with trailing newlines trimmed (singularity inspect's values). */
static json_object *trimmed(const char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    n--;
  return json_object_new_string_len(s, (int)n);
}

static const char *inspect_json(wv_arena_t *a, const meta_t *m) {
  json_object *root = json_object_new_object(), *data = json_object_new_object(),
              *attrs = json_object_new_object(), *env = json_object_new_object();
  json_object *labels = json_tokener_parse(m->labels);
  int rc = root && data && attrs && env && labels ? 0 : WV_ENOMEM;
  if (!rc) {
    json_object_object_add(attrs, "deffile", trimmed(m->deffile));
    json_object_object_add(env, "/.singularity.d/env/10-docker2singularity.sh", trimmed(m->env10));
    json_object_object_add(env, "/.singularity.d/env/90-environment.sh", trimmed(m->env90));
    json_object_object_add(attrs, "environment", env);
    env = NULL;
    json_object_object_add(attrs, "labels", labels);
    labels = NULL;
    json_object_object_add(attrs, "runscript", trimmed(m->runscript));
    json_object_object_add(attrs, "startscript", trimmed(m->startscript));
    if (m->test)
      json_object_object_add(attrs, "test", trimmed(m->test));
    if (m->help)
      json_object_object_add(attrs, "helpfile", trimmed(m->help));
    json_object_object_add(data, "attributes", attrs);
    attrs = NULL;
    json_object_object_add(root, "data", data);
    data = NULL;
    json_object_object_add(root, "type", json_object_new_string("container"));
  }
  const char *out = rc ? NULL : wv_arena_strdup(a, wv_json_compact(root));
  json_object_put(env);
  json_object_put(labels);
  json_object_put(attrs);
  json_object_put(data);
  json_object_put(root);
  return out;
}

/* <dir>/sif/singularity.d: the tree singularity build lays out (docs/singularity.md). */
static int write_tree(wv_arena_t *a, const char *sifdir, const meta_t *m) {
  static const char *const dirs[] = {"singularity.d", "singularity.d/actions", "singularity.d/env",
                                     "singularity.d/libs", NULL};
  int rc = mkdirs(a, sifdir, dirs);
  const char *t = wv_arena_sprintf(a, "%s/singularity.d", sifdir);
  if (!t)
    return WV_ENOMEM;
  const struct {
    const char *name, *text;
    mode_t mode;
  } files[] = {{"actions/exec", ACT_EXEC, 0755},
               {"actions/run", ACT_RUN, 0755},
               {"actions/shell", ACT_SHELL, 0755},
               {"actions/start", ACT_START, 0755},
               {"actions/test", ACT_TEST, 0755},
               {"env/01-base.sh", ENV_01, 0755},
               {"env/10-docker2singularity.sh", m->env10, 0755},
               {"env/90-environment.sh", m->env90, 0755},
               {"env/95-apps.sh", ENV_95, 0755},
               {"env/99-base.sh", ENV_99, 0755},
               {"env/99-runtimevars.sh", ENV_99RT, 0755},
               {"runscript", m->runscript, 0755},
               {"startscript", m->startscript, 0755},
               {"test", m->test, 0755},
               {"runscript.help", m->help, 0644},
               {"labels.json", m->labels, 0644},
               {"Singularity", m->deffile, 0644}};
  for (size_t i = 0; !rc && i < sizeof files / sizeof files[0]; i++)
    if (files[i].text)
      rc = put(a, t, files[i].name, files[i].text, files[i].mode);
  return rc;
}

static int make_meta(wv_arena_t *a, const wv_deffile_t *d, json_object *cfg, const char *arch,
                     int64_t now_ns, meta_t *m) {
  labels_t *l = wv_arena_calloc(a, sizeof *l);
  if (!l)
    return WV_ENOMEM;
  build_labels(a, d, cfg, arch, now_ns, l);
  m->env10 = docker_env(a, cfg);
  m->env90 =
      d->environment.body ? wv_arena_sprintf(a, "%s\n%s\n", ENV_90, d->environment.body) : ENV_90;
  m->runscript = d->runscript.body ? script(a, &d->runscript)
                 : d->oras         ? NO_RUNSCRIPT
                                   : oci_runscript(a, cfg);
  m->startscript = d->startscript.body ? script(a, &d->startscript) : "#!/bin/sh\n";
  m->test = d->test.body ? script(a, &d->test) : NULL;
  m->help = d->help.body ? wv_arena_sprintf(a, "%s\n", d->help.body) : NULL;
  m->labels = labels_json(a, l);
  m->deffile = d->raw;
  return m->env10 && m->env90 && m->runscript && m->startscript && m->labels &&
                 (m->test || !d->test.body) && (m->help || !d->help.body)
             ? 0
             : WV_ENOMEM;
}

/* ---- the Containerfile ---- */

/* A JSON string for a COPY/ADD line (exec form): context file names may hold any byte but NUL. */
static int jstr(wv_buf_t *b, const char *s) {
  int rc = wv_buf_putc(b, '"');
  for (; *s && !rc; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      rc = wv_buf_printf(b, "\\%c", c);
    else if (c < 0x20)
      rc = wv_buf_printf(b, "\\u%04x", c);
    else
      rc = wv_buf_putc(b, (char)c);
  }
  return rc ? rc : wv_buf_putc(b, '"');
}

/* "layer-<64 hex>/ *" (without the blank): a freeze layer, whose archive the context holds as
 * layer-<hex>.tar.gz. */
static const char *freeze_layer(wv_arena_t *a, const char *rel, const char *ctx) {
  size_t n = strlen(rel);
  if (n != 6 + 64 + 2 || strncmp(rel, "layer-", 6) || strcmp(rel + 70, "/*") ||
      strspn(rel + 6, "0123456789abcdef") != 64)
    return NULL;
  const char *tgz = wv_arena_sprintf(a, "layer-%.64s.tar.gz", rel + 6);
  const char *p = tgz ? wv_arena_sprintf(a, "%s/%s", ctx, tgz) : NULL;
  struct stat st;
  return p && lstat(p, &st) == 0 && S_ISREG(st.st_mode) ? tgz : NULL;
}

/* One %files line: COPY per glob match (cp -r semantics for a destination ending in /). */
static int files_line(wv_arena_t *a, wv_buf_t *b, const wv_deffile_file_t *f, const char *ctx,
                      const char **msg) {
  const char *rel = context_rel(a, f->src);
  const char *layer = rel ? freeze_layer(a, rel, ctx) : NULL;
  if (layer) {
    int rc = wv_buf_puts(b, "ADD [");
    rc = rc ? rc : jstr(b, layer);
    rc = rc ? rc : wv_buf_puts(b, ", ");
    rc = rc ? rc : jstr(b, f->dst);
    return rc ? rc : wv_buf_puts(b, "]\n");
  }
  const char *pat = rel ? wv_arena_sprintf(a, "%s/%s", ctx, rel) : NULL;
  glob_t g;
  memset(&g, 0, sizeof g);
  if (!pat || glob(pat, GLOB_NOSORT | GLOB_PERIOD, NULL, &g) != 0 || g.gl_pathc == 0 ||
      g.gl_pathc > MAX_MATCHES) {
    bool many = g.gl_pathc > MAX_MATCHES;
    globfree(&g);
    *msg = wv_arena_sprintf(a,
                            many ? "Invalid Singularity definition file - %%files source '%s' "
                                   "matches more than 1024 files"
                                 : "Invalid Singularity definition file - %%files source '%s' "
                                   "matches nothing in the build context",
                            f->src);
    return WV_EINVAL;
  }
  size_t cl = strlen(ctx) + 1;
  bool into = f->dst[strlen(f->dst) - 1] == '/';
  int rc = 0;
  for (size_t i = 0; !rc && i < g.gl_pathc; i++) {
    const char *m = g.gl_pathv[i] + cl, *base = strrchr(g.gl_pathv[i], '/') + 1;
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
      if (strcmp(m, ".") != 0)
        continue; /* GLOB_PERIOD also matches . and .. inside a directory */
    }
    struct stat st;
    bool dir = stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode);
    const char *dst =
        dir && into && strcmp(m, ".") != 0 ? wv_arena_sprintf(a, "%s%s/", f->dst, base) : f->dst;
    rc = wv_buf_puts(b, "COPY [");
    rc = rc ? rc : jstr(b, m);
    rc = rc ? rc : wv_buf_puts(b, ", ");
    rc = rc ? rc : (dst ? jstr(b, dst) : WV_ENOMEM);
    rc = rc ? rc : wv_buf_puts(b, "]\n");
  }
  globfree(&g);
  return rc;
}

static const char *containerfile(wv_arena_t *a, const wv_deffile_t *d, const char *ctx,
                                 const char **msg, int *rcp) {
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  /* oras: the base SIF's tree (the sif-base steps' tar) goes over the defaults, which it keeps
   * where they exist, then what the definition sets (SingularityCE's makeBaseEnv without
   * overwrite; %environment and %labels are merged by sif-rootfs). */
  int rc = d->oras ? wv_buf_printf(&b, "# generated by waved from a Singularity definition file\n"
                                       "FROM scratch\n"
                                       "COPY --from=waved-sif singularity.d /.singularity.d\n"
                                       "ADD [\"" WV_SIF_BASE_TAR "\", \"/\"]\n"
                                       "COPY --from=waved-sif override /.singularity.d\n"
                                       "USER 0:0\nWORKDIR /\n")
                   : wv_buf_printf(&b,
                                   "# generated by waved from a Singularity definition file\n"
                                   "FROM %s\nUSER 0:0\nWORKDIR /\n"
                                   "COPY --from=waved-sif singularity.d /.singularity.d\n",
                                   d->from);
  for (size_t i = 0; !rc && i < d->n_files; i++)
    rc = files_line(a, &b, &d->files[i], ctx, msg);
  if (!rc && d->post.body) {
    const char *sh = d->post.args && *d->post.args ? d->post.args + 3 : "/bin/sh";
    rc = wv_buf_printf(&b,
                       "COPY --from=waved-sif post.sh /.post.script\n"
                       "RUN [\"/bin/sh\", \"-c\", \"SINGULARITY_ENVIRONMENT=/.singularity.d/env/"
                       "91-environment.sh SINGULARITY_LABELS=/.build.labels %s -ex /.post.script; "
                       "s=$?; rm -f /.post.script /.build.labels; exit $s\"]\n",
                       sh);
  }
  *rcp = rc;
  return buf_str(a, &b, rc);
}

/* ---- Bootstrap: oras ---- */

/*
 * sif/override/: what the definition sets, copied over the base's tree (Singularity always;
 * runscript, startscript, test, runscript.help when the definition has the section);
 * sif/oras-environment and sif/oras-labels.json for sif-rootfs to merge (sifjob.c).
 * The build context must not hold a file by the base archive's name.
 */
static int oras_files(wv_arena_t *a, const wv_deffile_t *d, const meta_t *m, const char *sifdir,
                      const char *ctx, const char **msg) {
  static const char *const dirs[] = {"override", NULL};
  struct stat st;
  const char *tar = wv_arena_sprintf(a, "%s/" WV_SIF_BASE_TAR, ctx),
             *ov = wv_arena_sprintf(a, "%s/override", sifdir);
  if (!tar || !ov)
    return WV_ENOMEM;
  if (lstat(tar, &st) == 0) {
    *msg = "Invalid build context - '" WV_SIF_BASE_TAR "' is reserved for the base of "
           "'Bootstrap: oras'";
    return WV_EINVAL;
  }
  int rc = mkdirs(a, sifdir, dirs);
  rc = rc ? rc : put(a, ov, "Singularity", m->deffile, 0644);
  if (!rc && d->runscript.body)
    rc = put(a, ov, "runscript", m->runscript, 0755);
  if (!rc && d->startscript.body)
    rc = put(a, ov, "startscript", m->startscript, 0755);
  if (!rc && d->test.body)
    rc = put(a, ov, "test", m->test, 0755);
  if (!rc && d->help.body)
    rc = put(a, ov, "runscript.help", m->help, 0644);
  if (!rc && d->environment.body) {
    const char *env = wv_arena_sprintf(a, "\n%s\n", d->environment.body);
    rc = env ? put(a, sifdir, "oras-environment", env, 0644) : WV_ENOMEM;
  }
  return rc ? rc : put(a, sifdir, "oras-labels.json", m->labels, 0644);
}

/* ---- entry ---- */

static const char *arch_of(wv_arena_t *a, const char *platform) {
  wv_platform_t p;
  const char *msg;
  if (wv_platform_parse(a, platform, &p, &msg) != 0)
    return NULL;
  return wv_arena_strdup(a, p.arch);
}

static int base_config(const wv_app_t *app, wv_arena_t *a, const wv_sif_input_t *in,
                       const wv_deffile_t *d, imgcfg_t *ic) {
  wv_platform_list_t pl;
  const char *text = NULL, *msg = NULL;
  memset(ic, 0, sizeof *ic);
  int rc = wv_platform_parse_list(a, in->platform, &pl, &msg);
  if (!rc && app->upstream)
    rc = wv_layers_image_config_json(a, app, in->who, d->from, &pl, &text, &msg);
  if (rc) { /* buildah reports a base image it cannot pull; here it only means no config */
    wv_warn("sif: cannot read the config of %s: %s", d->from, msg ? msg : wv_strerror(rc));
    return rc == WV_ENOMEM ? rc : 0;
  }
  char err[128];
  if (text && wv_json_parse(text, strlen(text), 4u << 20, 0, &ic->root, err, sizeof err) == 0)
    json_object_object_get_ex(ic->root, "config", &ic->config);
  return 0;
}

int wv_sif_prepare(const wv_app_t *app, wv_arena_t *a, const wv_sif_input_t *in, const char *dir,
                   const char **msg) {
  wv_deffile_t *d = wv_arena_alloc(a, sizeof *d);
  int rc = d ? wv_deffile_parse(a, in->file, d, msg) : WV_ENOMEM;
  const char *arch = arch_of(a, in->platform), *code = wv_sif_arch_code(arch);
  if (!rc && !code) {
    *msg = wv_arena_sprintf(a, "Singularity builds do not support the platform '%s'", in->platform);
    rc = WV_EINVAL;
  }
  imgcfg_t ic = {0};
  if (!rc && !d->oras) /* an oras base has no OCI config: its /.singularity.d is kept */
    rc = base_config(app, a, in, d, &ic);
  meta_t m;
  rc = rc ? rc : make_meta(a, d, ic.config, arch, in->now_ns, &m);
  const char *sifdir = wv_arena_sprintf(a, "%s/sif", dir),
             *ctx = wv_arena_sprintf(a, "%s/context", dir);
  if (!rc && (!sifdir || !ctx))
    rc = WV_ENOMEM;
  if (!rc && mkdir(sifdir, 0755) != 0)
    rc = wv_err_io(errno);
  rc = rc ? rc : write_tree(a, sifdir, &m);
  if (!rc && d->post.body)
    rc = put(a, sifdir, "post.sh", d->post.body, 0644);
  const char *oci = ic.config ? wv_json_compact(ic.config) : "{}";
  const char *meta = rc ? NULL : inspect_json(a, &m);
  if (!rc && !meta)
    rc = WV_ENOMEM;
  rc = rc ? rc : put(a, sifdir, "Singularity", d->raw, 0644);
  rc = rc ? rc : put(a, sifdir, "inspect-metadata.json", meta, 0644);
  rc = rc ? rc : put(a, sifdir, "oci-config.json", oci, 0644);
  rc = rc ? rc : put(a, sifdir, "arch", code, 0644);
  if (!rc && d->oras)
    rc = oras_files(a, d, &m, sifdir, ctx, msg);
  const char *cf = rc ? NULL : containerfile(a, d, ctx, msg, &rc);
  if (!rc && !cf)
    rc = WV_ENOMEM;
  const char *cfp = rc ? NULL : wv_arena_sprintf(a, "%s/Containerfile", dir);
  if (!rc && (!cfp || unlink(cfp) != 0 || put_file(cfp, cf, strlen(cf), 0600) != 0))
    rc = WV_EIO;
  json_object_put(ic.root);
  return rc;
}
