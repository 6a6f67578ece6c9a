/*
 * build/templates_freeze.c — the freeze rewrite of contract §6.3 (see
 * freeze.h): the container file for a freeze request, the layer archive
 * names, and where a container file's entry chain comes from. Follows
 * Wave's FreezeServiceImpl and ContainerInspectService closely (the
 * container file is hashed into build ids).
 */
#include "build/freeze.h"
#include "build/templates_int.h"
#include "core/buf.h"
#include "core/err.h"

#include <string.h>

static const char *digest_hex(const wv_container_layer_t *l) {
  if (!l->gzip_digest)
    return NULL;
  return !strncmp(l->gzip_digest, "sha256:", 7) ? l->gzip_digest + 7 : l->gzip_digest;
}

const char *wv_freeze_layer_name(wv_arena_t *a, const wv_container_layer_t *l) {
  const char *h = digest_hex(l);
  return h ? wv_arena_sprintf(a, "layer-%s.tar.gz", h) : NULL;
}

const char *wv_freeze_layer_dir(wv_arena_t *a, const wv_container_layer_t *l) {
  const char *h = digest_hex(l);
  return h ? wv_arena_sprintf(a, "layer-%s", h) : NULL;
}

/* Escape.cli for one argument: quote or backslash-escape shell wildcards. */
static int cli_arg(wv_buf_t *b, const char *s) {
  static const char wild[] = "*?{}[]'\" ()\\!&|<>`:";
  bool special = strpbrk(s, wild) != NULL;
  if (!special)
    return wv_buf_puts(b, s);
  if (!strchr(s, '\''))
    return wv_buf_printf(b, "'%s'", s);
  int rc = 0;
  for (const char *p = s; *p && !rc; p++)
    rc = strchr(wild, *p) ? wv_buf_printf(b, "\\%c", *p) : wv_buf_putc(b, *p);
  return rc;
}

static int join(wv_buf_t *b, const char *const *v, size_t n, const char *sep, const char *q) {
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++)
    rc = wv_buf_printf(b, "%s%s%s%s", i ? sep : "", q, v[i], q);
  return rc;
}

static int docker_config(wv_arena_t *a, wv_buf_t *b, const wv_container_config_t *cc) {
  int rc = 0;
  for (size_t i = 0; i < cc->n_layers && !rc; i++) {
    const char *name = wv_freeze_layer_name(a, &cc->layers[i]);
    rc = name ? wv_buf_printf(b, "ADD %s /\n", name) : WV_EINVAL;
  }
  if (!rc && cc->working_dir && *cc->working_dir)
    rc = wv_buf_printf(b, "WORKDIR %s\n", cc->working_dir);
  if (!rc && cc->n_env) {
    rc = wv_buf_puts(b, "ENV ");
    rc = rc ? rc : join(b, cc->env, cc->n_env, " ", "");
    rc = rc ? rc : wv_buf_putc(b, '\n');
  }
  /* Groovy prints the quoted list as ["a", "b"]. */
  if (!rc && cc->n_entrypoint) {
    rc = wv_buf_puts(b, "ENTRYPOINT [");
    rc = rc ? rc : join(b, cc->entrypoint, cc->n_entrypoint, ", ", "\"");
    rc = rc ? rc : wv_buf_puts(b, "]\n");
  }
  if (!rc && cc->n_cmd) {
    rc = wv_buf_puts(b, "CMD [");
    rc = rc ? rc : join(b, cc->cmd, cc->n_cmd, ", ", "\"");
    rc = rc ? rc : wv_buf_puts(b, "]\n");
  }
  return rc;
}

/* Singularity: layers, env and entrypoint only (workingDir and cmd have no equivalent). */
static int singularity_config(wv_arena_t *a, wv_buf_t *b, const wv_container_config_t *cc) {
  int rc = cc->n_layers ? wv_buf_puts(b, "%files\n") : 0;
  for (size_t i = 0; i < cc->n_layers && !rc; i++) {
    const char *dir = wv_freeze_layer_dir(a, &cc->layers[i]);
    rc = dir ? wv_buf_printf(b, "  {{wave_context_dir}}/%s/* /\n", dir) : WV_EINVAL;
  }
  if (!rc && cc->n_env) {
    rc = wv_buf_puts(b, "%environment\n  export ");
    rc = rc ? rc : join(b, cc->env, cc->n_env, " ", "");
    rc = rc ? rc : wv_buf_putc(b, '\n');
  }
  if (!rc && cc->n_entrypoint) {
    rc = wv_buf_puts(b, "%runscript\n  ");
    for (size_t i = 0; i < cc->n_entrypoint && !rc; i++) {
      rc = i ? wv_buf_putc(b, ' ') : 0;
      rc = rc ? rc : cli_arg(b, cc->entrypoint[i]);
    }
    rc = rc ? rc : wv_buf_putc(b, '\n');
  }
  return rc;
}

static int freeze_build(wv_arena_t *a, const wv_freeze_input_t *in, bool has_config, wv_buf_t *b) {
  int rc;
  if (in->container_image && !in->container_file) {
    rc = wv_buf_puts(b, "# wave generated container file\n");
    rc = rc                ? rc
         : in->singularity ? wv_buf_printf(b, "BootStrap: docker\nFrom: %s\n", in->container_image)
                           : wv_buf_printf(b, "FROM %s\n", in->container_image);
  } else {
    rc = wv_buf_printf(b, "%s\n# wave generated container file\n", in->container_file);
  }
  if (!rc && in->entry_chain && in->n_entry_chain) {
    rc = wv_buf_puts(b, in->singularity ? "%environment\n  export WAVE_ENTRY_CHAIN=\""
                                        : "ENV WAVE_ENTRY_CHAIN=\"");
    rc = rc ? rc : join(b, in->entry_chain, in->n_entry_chain, " ", "");
    rc = rc ? rc : wv_buf_puts(b, "\"\n");
  }
  if (!rc && has_config)
    rc = in->singularity ? singularity_config(a, b, in->config) : docker_config(a, b, in->config);
  return rc;
}

int wv_freeze_container_file(wv_arena_t *a, const wv_freeze_input_t *in, const char **out) {
  bool has_config = in->config && !wv_container_config_is_empty(in->config);
  *out = NULL;
  if (!in->container_image && !in->container_file)
    return WV_EINVAL;
  if (in->container_file && !has_config)
    return 0; /* nothing to add: the file is built as it is */
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  int rc = freeze_build(a, in, has_config, &b);
  if (!rc && !(*out = buf_to_arena(a, &b)))
    rc = WV_ENOMEM;
  wv_buf_free(&b);
  return rc;
}

/* RegHelper.parseFromStatement on a trimmed line: the image of a FROM / From: line. */
static const char *from_image(wv_arena_t *a, const char *line) {
  if (strncmp(line, "FROM ", 5) && strncasecmp(line, "from:", 5))
    return NULL;
  const char *tok[3] = {NULL, NULL, NULL};
  size_t len[3] = {0, 0, 0};
  int n = 0;
  for (const char *p = line; *p && n < 3;) {
    p += strspn(p, " ");
    size_t l = strcspn(p, " ");
    if (l)
      tok[n] = p, len[n++] = l;
    p += l;
  }
  int i = n >= 2 && !strncmp(tok[1], "--platform=", 11) ? 2 : 1;
  return i < n ? wv_arena_strndup(a, tok[i], len[i]) : NULL;
}

/* RegHelper.parseEntrypoint: exec form ["a", "b"] or shell form split on blanks. */
static int parse_entrypoint(wv_arena_t *a, const char *line, const char ***out, size_t *n) {
  *out = NULL, *n = 0;
  if (strncmp(line, "ENTRYPOINT ", 11))
    return 0;
  const char *v = line + 10;
  while (*v == ' ' || *v == '\t')
    v++;
  size_t vl = strlen(v);
  while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
    vl--;
  bool exec = vl >= 2 && v[0] == '[' && v[vl - 1] == ']';
  const char *sep = exec ? "," : " ";
  if (exec)
    v++, vl -= 2;
  const char **items = wv_arena_calloc(a, (vl / 2 + 2) * sizeof *items);
  if (!items)
    return WV_ENOMEM;
  for (size_t i = 0; i < vl;) {
    size_t l = strcspn(v + i, sep);
    if (l > vl - i)
      l = vl - i;
    const char *s = v + i;
    size_t sl = l;
    if (exec) { /* trim, then drop one pair of surrounding double quotes */
      while (sl && (*s == ' ' || *s == '\t'))
        s++, sl--;
      while (sl && (s[sl - 1] == ' ' || s[sl - 1] == '\t'))
        sl--;
      if (sl >= 2 && s[0] == '"' && s[sl - 1] == '"')
        s++, sl -= 2;
    }
    if (l && !(items[(*n)++] = wv_arena_strndup(a, s, sl)))
      return WV_ENOMEM;
    i += l + 1;
  }
  *out = items;
  return 0;
}

int wv_freeze_entrypoint_source(wv_arena_t *a, const char *file, const char ***entry, size_t *n,
                                const char **image) {
  *entry = NULL, *n = 0, *image = NULL;
  if (!file)
    return 0;
  /* Scan from the bottom: the first ENTRYPOINT met wins, the first FROM ends the scan. */
  for (const char *end = file + strlen(file); end > file;) {
    const char *start = end;
    while (start > file && start[-1] != '\n')
      start--;
    size_t len = (size_t)(end - start);
    end = start > file ? start - 1 : file;
    while (len && strchr(" \t\r\n", start[len - 1]))
      len--;
    while (len && strchr(" \t\r", *start))
      start++, len--;
    char *line = wv_arena_strndup(a, start, len);
    if (!line)
      return WV_ENOMEM;
    const char *img = from_image(a, line);
    if (img) {
      if (!*entry)
        *image = img;
      return 0;
    }
    const char **e;
    size_t en;
    int rc = parse_entrypoint(a, line, &e, &en);
    if (rc)
      return rc;
    if (en && !*entry)
      *entry = e, *n = en;
  }
  return 0;
}
