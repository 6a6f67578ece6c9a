/*
 * build/templates.c — packages → container file + conda YAML (see
 * templates.h). The freeze rewrite is in build/templates_freeze.c.
 *
 * The code follows Wave's helpers (TemplateUtils, CondaHelper, PixiHelper,
 * CranHelper, DockerHelper) closely because their output is hashed into
 * build ids; where Wave would throw a NullPointerException or a 500 we
 * answer with a 400 instead, and say so in a comment.
 */
#include "build/templates.h"
#include "core/base64.h"
#include "build/templates_int.h"
#include "build/condayaml.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

#include <json-c/json.h>
#include <string.h>

#include "build/templates_text.inc"

static int say(wv_arena_t *a, const char **msg, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int say(wv_arena_t *a, const char **msg, int rc, const char *fmt, ...) {
  if (msg) {
    va_list ap;
    va_start(ap, fmt);
    *msg = wv_arena_vsprintf(a, fmt, ap);
    va_end(ap);
  }
  return rc;
}

void wv_template_defaults_wave(wv_template_defaults_t *d) {
  d->mamba_image_v1 = "mambaorg/micromamba:1.5.10-noble";
  d->mamba_image_v2 = "mambaorg/micromamba:2-amazon2023";
  d->conda_base_packages = "conda-forge::procps-ng";
  d->conda_base_image = "ubuntu:24.04";
  d->pixi_image = "public.cr.seqera.io/wave/pixi:0.61.0-noble";
  d->pixi_base_packages = "conda-forge::procps-ng";
  d->pixi_base_image = "ubuntu:24.04";
  d->cran_image = "rocker/r-ver:4.4.1";
  d->cran_base_packages = "littler r-cran-docopt";
}

static const char *const template_names[] = {"-", "conda/micromamba:v1", "conda/micromamba:v2",
                                             "conda/pixi:v1", "cran/installr:v1"};

const char *wv_template_name(wv_template_t t) { return (unsigned)t < 5 ? template_names[t] : "-"; }

int wv_template_parse(wv_arena_t *a, const char *s, wv_template_t *out, const char **msg) {
  if (!s)
    return *out = WV_TEMPLATE_DEFAULT, 0;
  for (int i = 1; i < 5; i++)
    if (!strcmp(s, template_names[i]))
      return *out = (wv_template_t)i, 0;
  return say(a, msg, WV_EINVAL, "Unexpected or missing package type '-' or build template '%s'", s);
}

wv_template_t wv_template_effective(wv_template_t t, wv_template_pkg_type_t type) {
  if (t != WV_TEMPLATE_DEFAULT)
    return t;
  return type == WV_TEMPLATE_PKG_CONDA  ? WV_TEMPLATE_MICROMAMBA_V2
         : type == WV_TEMPLATE_PKG_CRAN ? WV_TEMPLATE_CRAN_V1
                                        : WV_TEMPLATE_DEFAULT;
}

/* ---- TemplateRenderer ------------------------------------------------------------ */

typedef struct {
  const char *name;
  const char *value; /* NULL: drop a line holding only this placeholder, "" inline */
} binding_t;

static bool var_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

static bool space_char(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The binding for name[0..n), or NULL; *ignored for {{wave_context_dir}}. */
static const binding_t *lookup(const binding_t *b, size_t nb, const char *name, size_t n,
                               bool *ignored) {
  *ignored = n == 16 && !strncmp(name, "wave_context_dir", 16);
  for (size_t i = 0; i < nb; i++)
    if (strlen(b[i].name) == n && !strncmp(b[i].name, name, n))
      return &b[i];
  return NULL;
}

/* VAR1: the whole line is blanks, one {{name}}, blanks (the newline included). */
static bool whole_line_var(const char *line, size_t len, size_t *pre, size_t *name_at,
                           size_t *name_len) {
  size_t i = 0;
  while (i < len && space_char(line[i]))
    i++;
  if (i + 4 > len || strncmp(line + i, "{{", 2))
    return false;
  size_t s = i + 2, e = s;
  while (e < len && var_char(line[e]))
    e++;
  if (e == s || e + 2 > len || strncmp(line + e, "}}", 2))
    return false;
  for (size_t k = e + 2; k < len; k++)
    if (!space_char(line[k]))
      return false;
  *pre = i, *name_at = s, *name_len = e - s;
  return true;
}

/* One template line (with its '\n') into out. WV_EINTERNAL for an unbound name. */
static int render_line(wv_buf_t *out, const char *line, size_t len, const binding_t *b, size_t nb) {
  size_t pre, at, n;
  bool ign;
  int rc = 0;
  if (whole_line_var(line, len, &pre, &at, &n)) {
    const binding_t *v = lookup(b, nb, line + at, n, &ign);
    if (ign)
      return wv_buf_append(out, line, len);
    if (!v)
      return WV_EINTERNAL;
    if (!v->value)
      return 0; /* the line disappears */
    for (const char *p = v->value; *p && !rc;) {
      size_t l = strcspn(p, "\n");
      l += p[l] == '\n';
      rc = wv_buf_append(out, line, pre);
      if (!rc)
        rc = wv_buf_append(out, p, l);
      p += l;
    }
    return rc ? rc : wv_buf_append(out, line + at + n + 2, len - at - n - 2);
  }
  size_t i = 0;
  while (i < len && !rc) {
    const char *o = memmem(line + i, len - i, "{{", 2);
    size_t s = o ? (size_t)(o - line) : len, e = s + 2;
    while (o && e < len && var_char(line[e]))
      e++;
    bool is_var = o && e > s + 2 && e + 2 <= len && !strncmp(line + e, "}}", 2) &&
                  !(s > 0 && line[s - 1] == '$');
    if (!is_var) { /* copy up to and including a "{{" that is not a placeholder */
      size_t upto = o ? s + 2 : len;
      rc = wv_buf_append(out, line + i, upto - i);
      i = upto;
      continue;
    }
    rc = wv_buf_append(out, line + i, s - i);
    const binding_t *v = lookup(b, nb, line + s + 2, e - s - 2, &ign);
    if (!rc && ign)
      rc = wv_buf_append(out, line + s, e + 2 - s);
    else if (!rc && !v)
      rc = WV_EINTERNAL;
    else if (!rc && v->value)
      rc = wv_buf_puts(out, v->value);
    i = e + 2;
  }
  return rc;
}

static int render(const char *tpl, const binding_t *b, size_t nb, wv_buf_t *out) {
  int rc = 0;
  for (const char *p = tpl; *p && !rc;) {
    size_t l = strcspn(p, "\n");
    l += p[l] == '\n';
    if (strncmp(p, "##", 2) != 0)
      rc = render_line(out, p, l, b, nb);
    p += l;
  }
  return rc;
}

/* addCommands: one per line; Singularity under a "%post" header, indented by 4. */
static int add_commands(wv_buf_t *out, const wv_template_pkg_opts_t *o, bool sif) {
  if (!o || !o->commands || o->n_commands == 0)
    return 0;
  int rc = sif ? wv_buf_puts(out, "%post\n") : 0;
  for (size_t i = 0; i < o->n_commands && !rc; i++)
    rc = wv_buf_printf(out, "%s%s\n", sif ? "    " : "", o->commands[i]);
  return rc;
}

/* ---- PackagesSpec from JSON -------------------------------------------------------- */

/* An optional string member; explicit null = absent. */
static int get_str(wv_arena_t *a, const json_object *o, const char *key, const char **out,
                   const char **msg) {
  const char *s;
  int rc = wv_json_get_str(o, key, &s);
  *out = NULL;
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc)
    return say(a, msg, WV_EINVAL, "Invalid 'packages' attribute: '%s' must be a string", key);
  return (*out = wv_arena_strdup(a, s)) ? 0 : WV_ENOMEM;
}

static int get_list(wv_arena_t *a, const json_object *o, const char *key, const char ***out,
                    size_t *n, const char **msg) {
  *out = NULL, *n = 0;
  int rc = wv_json_get_strv(o, key, a, WV_TEMPLATE_MAX_ITEMS, out, n);
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc == WV_ETOOBIG)
    return say(a, msg, WV_EINVAL, "Invalid 'packages' attribute: too many '%s' items", key);
  if (rc == WV_EINVAL)
    return say(a, msg, WV_EINVAL, "Invalid 'packages' attribute: '%s' must be a list of strings",
               key);
  /* The strings live in the json object: copy them so it may be freed. */
  for (size_t i = 0; !rc && i < *n; i++)
    if (!((*out)[i] = wv_arena_strdup(a, (*out)[i])))
      rc = WV_ENOMEM;
  return rc;
}

static int get_opts(wv_arena_t *a, const json_object *o, const char *key, const char *image_key,
                    const wv_template_pkg_opts_t **out, const char **msg) {
  json_object *obj;
  int rc = wv_json_get_object(o, key, &obj);
  *out = NULL;
  if (rc == WV_ENOTFOUND)
    return 0;
  if (rc)
    return say(a, msg, WV_EINVAL, "Invalid 'packages' attribute: '%s' must be an object", key);
  wv_template_pkg_opts_t *r = wv_arena_calloc(a, sizeof *r);
  if (!r)
    return WV_ENOMEM;
  json_object *bp = NULL;
  r->base_packages_set = json_object_object_get_ex(obj, "basePackages", &bp);
  if ((rc = get_str(a, obj, image_key, &r->image, msg)) != 0 ||
      (rc = get_str(a, obj, "baseImage", &r->base_image, msg)) != 0 ||
      (rc = get_str(a, obj, "basePackages", &r->base_packages, msg)) != 0 ||
      (rc = get_list(a, obj, "commands", &r->commands, &r->n_commands, msg)) != 0)
    return rc;
  *out = r;
  return 0;
}

int wv_template_packages_from_json(wv_arena_t *a, const json_object *obj,
                                   wv_template_packages_t *out, const char **msg) {
  memset(out, 0, sizeof *out);
  if (!obj)
    return WV_ENOTFOUND;
  if (!json_object_is_type(obj, json_type_object))
    return say(a, msg, WV_EINVAL, "Invalid 'packages' attribute: not a JSON object");
  const char *type;
  int rc = get_str(a, obj, "type", &type, msg);
  if (rc)
    return rc;
  if (type && !strcmp(type, "CONDA"))
    out->type = WV_TEMPLATE_PKG_CONDA;
  else if (type && !strcmp(type, "CRAN"))
    out->type = WV_TEMPLATE_PKG_CRAN;
  else if (type) /* Jackson would fail the whole request with a 500 */
    return say(a, msg, WV_EINVAL, "Unexpected or missing package type '%s'", type);
  if ((rc = get_str(a, obj, "environment", &out->environment, msg)) != 0 ||
      (rc = get_list(a, obj, "entries", &out->entries, &out->n_entries, msg)) != 0 ||
      (rc = get_list(a, obj, "channels", &out->channels, &out->n_channels, msg)) != 0 ||
      (rc = get_opts(a, obj, "condaOpts", "mambaImage", &out->conda_opts, msg)) != 0 ||
      (rc = get_opts(a, obj, "pixiOpts", "pixiImage", &out->pixi_opts, msg)) != 0 ||
      (rc = get_opts(a, obj, "cranOpts", "rImage", &out->cran_opts, msg)) != 0)
    return rc;
  return 0;
}

/* ---- validation ------------------------------------------------------------------ */

static bool is_url(const char *s) {
  return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

const char *wv_template_packages_lock_file(const wv_template_packages_t *p) {
  for (size_t i = 0; p->entries && i < p->n_entries; i++)
    if (is_url(p->entries[i]))
      return p->n_entries == 1 ? p->entries[i] : NULL;
  return NULL;
}

static int decode_environment(wv_arena_t *a, const wv_template_packages_t *p, const char **text,
                              const char **msg) {
  /* Strict base64 with zero spare bits (Wave's round-trip check), no NUL in the text. */
  size_t n = 0, len = strlen(p->environment);
  char *t = NULL;
  int rc = wv_base64_canonical(p->environment, len)
               ? wv_base64_decode(a, p->environment, len, &t, &n)
               : WV_EINVAL;
  if (rc == WV_ENOMEM)
    return rc;
  if (rc || memchr(t, '\0', n))
    return say(a, msg, WV_EINVAL,
               "Invalid 'packages.envFile' attribute - make sure it encoded as a base64 string");
  *text = t;
  return 0;
}

int wv_template_packages_validate(wv_arena_t *a, const wv_template_packages_t *p, wv_template_t tpl,
                                  const char **msg) {
  if (p->type == WV_TEMPLATE_PKG_UNSET)
    return say(a, msg, WV_EINVAL, "Unexpected or missing package type '-' or build template '%s'",
               wv_template_name(tpl));
  bool has_entries = p->entries && p->n_entries > 0;
  if (has_entries && p->environment)
    return say(a, msg, WV_EINVAL,
               "Attributes 'entries' and 'environment' of 'packages' cannot be used together");
  size_t urls = 0;
  for (size_t i = 0; has_entries && i < p->n_entries; i++)
    urls += is_url(p->entries[i]);
  if (urls && p->n_entries > 1)
    return say(a, msg, WV_EINVAL,
               "No more than one Conda lock remote file can be specified at the same time");
  if (p->type == WV_TEMPLATE_PKG_CONDA && !has_entries && !p->environment)
    return say(a, msg, WV_EINVAL,
               "Attribute 'entries' or 'environment' is required for 'CONDA' packages");
  const char *text;
  if (p->environment)
    return decode_environment(a, p, &text, msg);
  return p->type == WV_TEMPLATE_PKG_CONDA ? wv_template_packages_conda_yaml(a, p, &text, msg) : 0;
}

/* ---- conda YAML ------------------------------------------------------------------- */

/* DockerHelper.trim0: trim, then strip matching single, then double quotes. */
static const char *trim0(wv_arena_t *a, const char *s, size_t n) {
  while (n && space_char(*s))
    s++, n--;
  while (n && space_char(s[n - 1]))
    n--;
  while (n >= 2 && s[0] == '\'' && s[n - 1] == '\'')
    s++, n -= 2;
  while (n >= 2 && s[0] == '"' && s[n - 1] == '"')
    s++, n -= 2;
  return wv_arena_strndup(a, s, n);
}

/* entries.join(' ').split(' '), blanks dropped, each trim0'd. */
static int split_entries(wv_arena_t *a, const wv_template_packages_t *p, const char ***out,
                         size_t *n) {
  size_t cap = 0;
  for (size_t i = 0; i < p->n_entries; i++)
    cap += strlen(p->entries[i]) / 2 + 1;
  const char **v = wv_arena_calloc(a, (cap + 1) * sizeof *v);
  if (!v)
    return WV_ENOMEM;
  size_t k = 0;
  for (size_t i = 0; i < p->n_entries; i++) {
    for (const char *s = p->entries[i]; *s;) {
      size_t l = strcspn(s, " ");
      /* Java filters empty pieces before trim0, so a lone "''" survives as "". */
      if (l && !(v[k++] = trim0(a, s, l)))
        return WV_ENOMEM;
      s += l + (s[l] == ' ');
    }
  }
  *out = v, *n = k;
  return 0;
}

/* "pip::x" → Wave's hint, with every run of ':' collapsed as replaceAll(":+", ":"). */
static int pip_prefix_error(wv_arena_t *a, const char *e, const char **msg) {
  char *fixed = wv_arena_strdup(a, e), *w = fixed;
  if (!fixed)
    return WV_ENOMEM;
  for (const char *r = e; *r; r++)
    if (!(*r == ':' && r > e && r[-1] == ':'))
      *w++ = *r;
  *w = '\0';
  return say(a, msg, WV_EINVAL, "Invalid pip prefix - Likely you want to use '%s' instead of '%s'",
             fixed, e);
}

static int add_strs(wv_arena_t *a, wv_yaml_node_t *seq, const char *const *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    wv_yaml_node_t *s = wv_yaml_str(a, v[i]);
    if (!s || wv_yaml_append(a, seq, s))
      return WV_ENOMEM;
  }
  return 0;
}

/* DockerHelper.condaPackagesToCondaYaml over the package specs list[0..n), n > 0. */
static int yaml_from_list(wv_arena_t *a, const wv_template_packages_t *p, const char **list,
                          size_t n, const char **yaml, const char **msg) {
  int rc = 0;
  wv_yaml_node_t *root = wv_yaml_new(a, WV_YAML_MAP), *deps = wv_yaml_new(a, WV_YAML_SEQ);
  wv_yaml_node_t *pip = wv_yaml_new(a, WV_YAML_SEQ);
  if (!root || !deps || !pip)
    return WV_ENOMEM;
  for (size_t i = 0; i < n && !rc; i++) {
    if (!strncmp(list[i], "pip::", 5))
      return pip_prefix_error(a, list[i], msg);
    bool is_pip = !strncmp(list[i], "pip:", 4);
    const char *item = is_pip ? list[i] + 4 : list[i];
    rc = add_strs(a, is_pip ? pip : deps, &item, 1);
  }
  if (!rc && pip->n) {
    wv_yaml_node_t *m = wv_yaml_new(a, WV_YAML_MAP);
    rc = !m || add_strs(a, deps, (const char *[]){"pip"}, 1) || wv_yaml_put(a, m, "pip", pip) ||
                 wv_yaml_append(a, deps, m)
             ? WV_ENOMEM
             : 0;
  }
  if (!rc && p->channels && p->n_channels) {
    wv_yaml_node_t *ch = wv_yaml_new(a, WV_YAML_SEQ);
    rc = !ch || add_strs(a, ch, p->channels, p->n_channels) || wv_yaml_put(a, root, "channels", ch)
             ? WV_ENOMEM
             : 0;
  }
  if (!rc)
    rc = wv_yaml_put(a, root, "dependencies", deps);
  return rc ? rc : wv_yaml_dump(a, root, yaml);
}

static int yaml_from_entries(wv_arena_t *a, const wv_template_packages_t *p, const char **yaml,
                             const char **msg) {
  const char **list;
  size_t n;
  int rc = split_entries(a, p, &list, &n);
  if (rc || n == 0)
    return rc; /* blank entries: no YAML */
  return yaml_from_list(a, p, list, n, yaml, msg);
}

/*
 * Conda environments that are not YAML. nf-wave sends the bytes of any local
 * conda file ending in .yml, .yaml or .txt as `environment`; a .txt file is
 * either an explicit lock file (`conda list --explicit`, conda-lock: comment
 * lines, "@EXPLICIT", one package URL per line) or a plain list of package
 * specs (`conda create --file`: one spec per line, '#' comments). Both become
 * the conda YAML that Wave's own generator (DockerHelper.condaPackagesToCondaYaml)
 * writes for the same specs sent as `entries`: `channels` from the request,
 * then `dependencies` — the package URLs of a lock file, or the specs (a
 * "pip:x" spec in the pip section, as for entries). So the container file
 * is Wave's conda-file template unchanged and a spec list hashes like the
 * equivalent entries request. Lines are capped by WV_TEMPLATE_MAX_ITEMS.
 */
typedef enum { ENV_NOT_TEXT, ENV_EXPLICIT, ENV_SPECS } env_text_kind_t;

/* The next line of *p without its newline and surrounding blanks; false at the end. */
static bool next_line(const char **p, const char **s, size_t *n, size_t *lineno) {
  if (!**p)
    return false;
  size_t l = strcspn(*p, "\n");
  const char *b = *p, *e = *p + l;
  *p += l + ((*p)[l] == '\n');
  (*lineno)++;
  while (b < e && space_char(*b))
    b++;
  while (e > b && space_char(e[-1]))
    e--;
  *s = b, *n = (size_t)(e - b);
  return true;
}

/* A line conda's spec-file reader would take as one MatchSpec (and YAML would not). */
static bool spec_line(const char *s, size_t n) {
  if (n == 0 || s[0] == '-' || s[0] == '[' || s[0] == '{' || s[0] == '@' || s[n - 1] == ':')
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f || (c == ':' && i + 1 < n && space_char(s[i + 1])))
      return false;
  }
  return true;
}

/* Which kind of text environment `text` is; the first offending line for a lock file. */
static env_text_kind_t env_text_kind(const char *text, size_t *bad_line) {
  const char *p = text, *s;
  size_t n, lineno = 0, specs = 0;
  bool explicit_seen = false;
  *bad_line = 0;
  while (next_line(&p, &s, &n, &lineno)) {
    if (n == 0 || s[0] == '#')
      continue;
    if (!explicit_seen && !specs && n == 9 && !strncmp(s, "@EXPLICIT", 9)) {
      explicit_seen = true;
      continue;
    }
    if (explicit_seen) {
      if ((!is_url(s) || memchr(s, ' ', n) || memchr(s, '\t', n)) && !*bad_line)
        *bad_line = lineno;
      continue;
    }
    if (!spec_line(s, n))
      return ENV_NOT_TEXT;
    specs++;
  }
  return explicit_seen ? ENV_EXPLICIT : specs ? ENV_SPECS : ENV_NOT_TEXT;
}

static int yaml_from_text(wv_arena_t *a, const wv_template_packages_t *p, const char *text,
                          env_text_kind_t kind, const char **yaml, const char **msg) {
  const char **list = wv_arena_calloc(a, (WV_TEMPLATE_MAX_ITEMS + 1) * sizeof *list);
  if (!list)
    return WV_ENOMEM;
  const char *q = text, *s;
  size_t n, lineno = 0, k = 0;
  while (next_line(&q, &s, &n, &lineno)) {
    if (n == 0 || s[0] == '#' || (n == 9 && !strncmp(s, "@EXPLICIT", 9)))
      continue;
    if (k == WV_TEMPLATE_MAX_ITEMS)
      return say(a, msg, WV_EINVAL, "Invalid conda %s: more than %d packages",
                 kind == ENV_EXPLICIT ? "lock file" : "package list", WV_TEMPLATE_MAX_ITEMS);
    if (!(list[k++] = wv_arena_strndup(a, s, n)))
      return WV_ENOMEM;
  }
  if (k == 0)
    return say(a, msg, WV_EINVAL, "Invalid conda lock file: no package URL after @EXPLICIT");
  return yaml_from_list(a, p, list, k, yaml, msg);
}

/* DockerHelper.condaEnvironmentToCondaYaml: re-dump, request channels appended. */
static int yaml_from_environment(wv_arena_t *a, const wv_template_packages_t *p, const char **yaml,
                                 const char **msg) {
  const char *text;
  wv_yaml_node_t *root;
  int rc = decode_environment(a, p, &text, msg);
  if (!rc)
    rc = wv_yaml_load(a, text, strlen(text), &root, msg);
  if (rc == WV_EPARSE) { /* not a YAML mapping: a lock file or a spec list? */
    size_t bad;
    env_text_kind_t kind = env_text_kind(text, &bad);
    if (kind == ENV_EXPLICIT && bad)
      return say(a, msg, WV_EINVAL,
                 "Invalid conda lock file at line %zu: expected one http(s) package URL", bad);
    if (kind != ENV_NOT_TEXT)
      return yaml_from_text(a, p, text, kind, yaml, msg);
  }
  if (rc)
    return rc == WV_EPARSE || rc == WV_ETOOBIG ? WV_EINVAL : rc;
  if (p->channels) {
    wv_yaml_node_t *ch = wv_yaml_get(root, "channels");
    if (!ch || (ch->kind == WV_YAML_SCALAR && ch->type == WV_YAML_NULL)) {
      if (!(ch = wv_yaml_new(a, WV_YAML_SEQ)) || wv_yaml_put(a, root, "channels", ch))
        return WV_ENOMEM;
    }
    if (ch->kind != WV_YAML_SEQ) /* Wave: ClassCastException, a 500 */
      return say(a, msg, WV_EINVAL, "Invalid conda YAML: 'channels' must be a list");
    for (size_t i = 0; i < p->n_channels; i++) {
      bool dup = false;
      for (size_t k = 0; k < ch->n && !dup; k++)
        dup = ch->items[k]->kind == WV_YAML_SCALAR && !strcmp(ch->items[k]->text, p->channels[i]);
      if (!dup && add_strs(a, ch, &p->channels[i], 1))
        return WV_ENOMEM;
    }
  }
  return wv_yaml_dump(a, root, yaml);
}

int wv_template_packages_conda_yaml(wv_arena_t *a, const wv_template_packages_t *p,
                                    const char **yaml, const char **msg) {
  *yaml = NULL;
  if (p->type != WV_TEMPLATE_PKG_CONDA)
    return 0;
  if (p->environment)
    return yaml_from_environment(a, p, yaml, msg);
  if (p->entries && p->n_entries && !wv_template_packages_lock_file(p))
    return yaml_from_entries(a, p, yaml, msg);
  return 0;
}

/* ---- container files ------------------------------------------------------------- */

static const char *pick(const char *v, const char *dflt) { return v ? v : dflt; }

/* basePackages as Jackson leaves it: the default unless the field was present. */
static const char *base_packages(const wv_template_pkg_opts_t *o, const char *dflt) {
  return o && o->base_packages_set ? o->base_packages : dflt;
}

/* mambaInstallBasePackage0 / pixiAddBasePackage0. */
static const char *install_line(wv_arena_t *a, const char *cmd, const char *pkgs, bool sif) {
  if (!pkgs || !*pkgs)
    return NULL;
  return sif ? wv_arena_sprintf(a, "%s %s", cmd, pkgs)
             : wv_arena_sprintf(a, "&& %s %s \\", cmd, pkgs);
}

/* "-c a -c b" */
static const char *channel_opts(wv_arena_t *a, const wv_template_packages_t *p) {
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  int rc = 0;
  for (size_t i = 0; p->channels && i < p->n_channels && !rc; i++)
    rc = wv_buf_printf(&b, "%s-c %s", i ? " " : "", p->channels[i]);
  const char *r = rc ? NULL : buf_to_arena(a, &b);
  wv_buf_free(&b);
  return r;
}

/* CondaHelper.isMicromambaV1: the image name matches .*micromamba:1[.-].* */
static bool micromamba_v1(const char *image) {
  for (const char *p = image; (p = strstr(p, "micromamba:1")) != NULL; p++)
    if (p[12] == '.' || p[12] == '-')
      return true;
  return false;
}

static int finish(wv_arena_t *a, const char *tpl, const binding_t *b, size_t nb,
                  const wv_template_pkg_opts_t *o, bool sif, const char **out) {
  wv_buf_t buf;
  wv_buf_init(&buf, OUT_MAX);
  int rc = render(tpl, b, nb, &buf);
  if (!rc)
    rc = add_commands(&buf, o, sif);
  if (!rc && !(*out = buf_to_arena(a, &buf)))
    rc = WV_ENOMEM;
  wv_buf_free(&buf);
  return rc;
}

static int conda_v1(wv_arena_t *a, const wv_template_packages_t *p, bool sif,
                    const wv_template_defaults_t *d, const char **out) {
  const wv_template_pkg_opts_t *o = p->conda_opts;
  const char *lock = wv_template_packages_lock_file(p);
  binding_t b[] = {
      {"base_image", pick(o ? o->image : NULL, d->mamba_image_v1)},
      {"base_packages", install_line(a, "micromamba install -y -n base",
                                     base_packages(o, d->conda_base_packages), sif)},
      {"channel_opts", channel_opts(a, p)},
      {"target", lock ? wv_arena_sprintf(a, "-f %s", lock) : NULL},
  };
  const char *tpl =
      lock ? (sif ? MM1_SIF_PKGS : MM1_DOCKER_PKGS) : (sif ? MM1_SIF_FILE : MM1_DOCKER_FILE);
  return finish(a, tpl, b, 4, o, sif, out);
}

static int conda_v2(wv_arena_t *a, const wv_template_packages_t *p, bool sif,
                    const wv_template_defaults_t *d, const char **out) {
  const wv_template_pkg_opts_t *o = p->conda_opts;
  const char *lock = wv_template_packages_lock_file(p);
  const char *mamba = pick(o ? o->image : NULL, d->mamba_image_v2);
  if (micromamba_v1(mamba)) /* the v2 template needs micromamba 2.x */
    mamba = d->mamba_image_v2;
  binding_t b[] = {
      {"base_image", pick(o ? o->base_image : NULL, d->conda_base_image)},
      {"mamba_image", mamba},
      {"base_packages", install_line(a, "micromamba install -y -n base",
                                     base_packages(o, d->conda_base_packages), sif)},
      {"channel_opts", channel_opts(a, p)},
      {"target", lock ? wv_arena_sprintf(a, "-f %s", lock) : NULL},
  };
  const char *tpl =
      lock ? (sif ? MM2_SIF_PKGS : MM2_DOCKER_PKGS) : (sif ? MM2_SIF_FILE : MM2_DOCKER_FILE);
  return finish(a, tpl, b, 5, o, sif, out);
}

static int pixi_v1(wv_arena_t *a, const wv_template_packages_t *p, bool sif,
                   const wv_template_defaults_t *d, const char **out, const char **msg) {
  if (p->type != WV_TEMPLATE_PKG_CONDA)
    return say(a, msg, WV_EINVAL,
               "Package type 'CRAN' not supported by 'conda/pixi:v1' build template");
  if (wv_template_packages_lock_file(p))
    return say(a, msg, WV_EINVAL, "Conda lock file is not supported by 'conda/pixi:v1' template");
  const wv_template_pkg_opts_t *o = p->pixi_opts;
  binding_t b[] = {
      {"base_image", pick(o ? o->base_image : NULL, d->pixi_base_image)},
      {"pixi_image", pick(o ? o->image : NULL, d->pixi_image)},
      {"base_packages", install_line(a, "pixi add", base_packages(o, d->pixi_base_packages), sif)},
  };
  return finish(a, sif ? PIXI_SIF_FILE : PIXI_DOCKER_FILE, b, 3, o, sif, out);
}

/* CranHelper.buildRepositoryOptions. */
static const char *cran_repo_opts(wv_arena_t *a, const wv_template_packages_t *p, bool sif) {
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  int rc = wv_buf_puts(&b, "R -e \"");
  if (!p->channels || p->n_channels == 0)
    rc = rc ? rc : wv_buf_puts(&b, "options(repos = c(CRAN = 'https://cloud.r-project.org/'))");
  for (size_t i = 0; p->channels && i < p->n_channels && !rc; i++) {
    const char *r = p->channels[i];
    rc = wv_buf_puts(&b, i ? "; " : "");
    if (rc)
      break;
    if (!strcasecmp(r, "bioconductor"))
      rc = wv_buf_puts(&b, "options(BioC_mirror = 'https://bioconductor.org')");
    else if (!strcasecmp(r, "cran"))
      rc = wv_buf_puts(&b, "options(repos = c(CRAN = 'https://cloud.r-project.org/'))");
    else
      rc = wv_buf_printf(&b, "options(repos = c(CRAN = '%s'))", r);
  }
  if (!rc)
    rc = wv_buf_puts(&b, sif ? "\"" : "\" ");
  const char *s = rc ? NULL : buf_to_arena(a, &b);
  wv_buf_free(&b);
  return s;
}

/* CranHelper.formatPackageTarget: 'pkg' or BiocManager::install('x'), a URL as is. */
static const char *cran_target_wave(wv_arena_t *a, const wv_template_packages_t *p) {
  const char **list;
  size_t n;
  if (is_url(p->entries[0])) { /* the joined string starts with a URL */
    wv_buf_t b;
    wv_buf_init(&b, OUT_MAX);
    int rc = 0;
    for (size_t i = 0; i < p->n_entries && !rc; i++)
      rc = wv_buf_printf(&b, "%s%s", i ? " " : "", p->entries[i]);
    const char *s = rc ? NULL : buf_to_arena(a, &b);
    wv_buf_free(&b);
    return s;
  }
  if (split_entries(a, p, &list, &n))
    return NULL;
  wv_buf_t b;
  wv_buf_init(&b, OUT_MAX);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    const char *sep = i ? " " : "";
    rc = !strncmp(list[i], "bioc::", 6)
             ? wv_buf_printf(&b, "%sBiocManager::install('%s')", sep, list[i] + 6)
             : wv_buf_printf(&b, "%s'%s'", sep, list[i]);
  }
  const char *s = rc ? NULL : buf_to_arena(a, &b);
  wv_buf_free(&b);
  return s;
}

/*
 * The repository the options line above leaves in effect when it is a URL
 * channel (the last `cran` or URL channel wins, as in R), else NULL. Wave's
 * `R -e "options(repos = …)"` sets the option in an R process that exits at
 * once, so install2.r never sees it and installs from the image's own
 * repository; for a URL we also hand it to install2.r (`-r`), so a request can
 * name its (offline, in-house) CRAN mirror. `cran`/`bioconductor` channels and
 * no channels (the Wave CLI's shape) keep Wave's text and build ids
 * (docs/compatibility.md).
 */
static const char *cran_repo_url(const wv_template_packages_t *p) {
  const char *last = NULL;
  for (size_t i = 0; p->channels && i < p->n_channels; i++)
    if (strcasecmp(p->channels[i], "bioconductor"))
      last = p->channels[i]; /* `cran` too: it replaces an earlier URL */
  /* Only a URL, and one that stays a single word inside '…'. */
  if (!last || !strstr(last, "://") || strpbrk(last, "' \t\r\n"))
    return NULL;
  return last;
}

/* CranHelper.formatPackageTarget: 'pkg' or BiocManager::install('x'), a URL as is;
 * preceded by `-r '<url>' ` when cran_repo_url names one. */
static const char *cran_target(wv_arena_t *a, const wv_template_packages_t *p) {
  const char *t = cran_target_wave(a, p), *repo = cran_repo_url(p);
  return t && repo ? wv_arena_sprintf(a, "-r '%s' %s", repo, t) : t;
}

static int cran_v1(wv_arena_t *a, const wv_template_packages_t *p, bool sif,
                   const wv_template_defaults_t *d, const char **out) {
  const wv_template_pkg_opts_t *o = p->cran_opts;
  const char *bp = base_packages(o, d->cran_base_packages);
  const char *install =
      bp && *bp ? wv_arena_sprintf(a, "apt-get update && apt-get install -y %s", bp) : NULL;
  const char *image = pick(o ? o->image : NULL, d->cran_image);
  if (!p->entries || p->n_entries == 0) { /* the build-context flow */
    binding_t b[] = {{"base_image", image}, {"base_packages", install ? install : ""}};
    return finish(a, sif ? CRAN_SIF_FILE : CRAN_DOCKER_FILE, b, 2, o, sif, out);
  }
  const char *bps = sif ? "" : "\\";
  if (install)
    bps = wv_arena_sprintf(a, sif ? "%s\n    %s" : "%s\n    && %s \\", bps, install);
  binding_t b[] = {
      {"base_image", image},
      {"repo_opts", cran_repo_opts(a, p, sif)},
      {"target", cran_target(a, p)},
      {"base_packages", bps},
  };
  return finish(a, sif ? CRAN_SIF_PKGS : CRAN_DOCKER_PKGS, b, 4, o, sif, out);
}

int wv_template_packages_container_file(wv_arena_t *a, const wv_template_packages_t *p,
                                        wv_template_t tpl, bool sif,
                                        const wv_template_defaults_t *d, const char **out,
                                        const char **msg) {
  int rc = wv_template_packages_validate(a, p, tpl, msg);
  if (rc)
    return rc;
  if (p->type == WV_TEMPLATE_PKG_CONDA &&
      (tpl == WV_TEMPLATE_DEFAULT || tpl == WV_TEMPLATE_MICROMAMBA_V2))
    return conda_v2(a, p, sif, d, out);
  if (p->type == WV_TEMPLATE_PKG_CONDA && tpl == WV_TEMPLATE_MICROMAMBA_V1)
    return conda_v1(a, p, sif, d, out);
  if (tpl == WV_TEMPLATE_PIXI_V1)
    return pixi_v1(a, p, sif, d, out, msg);
  if (p->type == WV_TEMPLATE_PKG_CRAN && (tpl == WV_TEMPLATE_DEFAULT || tpl == WV_TEMPLATE_CRAN_V1))
    return cran_v1(a, p, sif, d, out);
  /* Wave renders CRAN with the conda v1 template here; we refuse the mix instead. */
  return say(a, msg, WV_EINVAL, "Unexpected or missing package type '%s' or build template '%s'",
             p->type == WV_TEMPLATE_PKG_CONDA ? "CONDA" : "CRAN", wv_template_name(tpl));
}
