/*
 * build/sif/deffile.c — the definition-file parser (see deffile.h).
 */
#include "build/sif/deffile.h"
#include "core/err.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define PFX "Invalid Singularity definition file - "

/* Every header key SingularityCE knows; only some of them mean something for docker. */
static const char *const known_keys[] = {
    "bootstrap",  "from",        "registry", "namespace",    "stage",   "includecmd", "mirrorurl",
    "updateurl",  "osversion",   "include",  "library",      "product", "user",       "regcode",
    "productpgp", "registerurl", "modules",  "fingerprints", "setopt",  NULL};
static const char *const used_keys[] = {"bootstrap", "from", "registry", "namespace", NULL};

static bool in_list(const char *const *l, const char *s) {
  for (; *l; l++)
    if (strcmp(*l, s) == 0)
      return true;
  return false;
}

static int fail(wv_arena_t *a, const char **msg, int rc, const char *what, const char *name) {
  *msg = wv_arena_sprintf(a, PFX "%s%s%s", what, name ? name : "", name ? "'" : "");
  return *msg ? rc : WV_ENOMEM;
}

typedef struct {
  const char *p, *end;
} cursor_t;

/* The next line (without its newline); false at the end. */
static bool next_line(cursor_t *c, const char **line, size_t *len) {
  if (c->p >= c->end)
    return false;
  const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
  *line = c->p;
  *len = nl ? (size_t)(nl - c->p) : (size_t)(c->end - c->p);
  c->p = nl ? nl + 1 : c->end;
  return true;
}

static const char *trim(wv_arena_t *a, const char *s, size_t n) {
  while (n && isspace((unsigned char)*s))
    s++, n--;
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  return wv_arena_strndup(a, s, n);
}

/* True when the first word of the line starts with '%': a section line. */
static bool is_section(const char *l, size_t n) {
  size_t i = 0;
  while (i < n && (l[i] == ' ' || l[i] == '\t'))
    i++;
  return i < n && l[i] == '%';
}

/* A line that starts (after blanks) with "bootstrap:" in any case. */
static bool is_bootstrap(const char *l, size_t n) {
  size_t i = 0;
  while (i < n && (l[i] == ' ' || l[i] == '\t'))
    i++;
  return n - i >= 10 && strncasecmp(l + i, "bootstrap:", 10) == 0;
}

/* {{ name }} other than {{wave_context_dir}}: Singularity fails on an undefined argument. */
static int check_placeholders(wv_arena_t *a, const char *text, const char **msg) {
  for (const char *p = strstr(text, "{{"); p; p = strstr(p + 2, "{{")) {
    const char *q = p + 2, *close = strstr(q, "}}");
    if (!close)
      break;
    while (q < close && isspace((unsigned char)*q))
      q++;
    size_t n = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    const char *r = q + n;
    while (r < close && isspace((unsigned char)*r))
      r++;
    if (n == 0 || r != close)
      continue;
    if (n == 16 && strncmp(q, "wave_context_dir", 16) == 0)
      continue;
    return fail(a, msg, WV_EINVAL, "undefined build argument '", wv_arena_strndup(a, q, n));
  }
  return 0;
}

/* One header line "key: value" (comment cut, continuation already joined). */
static int header_line(wv_arena_t *a, const char *line, wv_deffile_t *d, const char **msg) {
  const char *hash = strchr(line, '#');
  size_t n = hash ? (size_t)(hash - line) : strlen(line);
  const char *colon = memchr(line, ':', n);
  const char *t = trim(a, line, n);
  if (!t)
    return WV_ENOMEM;
  if (!*t)
    return 0;
  if (!colon)
    return fail(a, msg, WV_EINVAL, "header line without 'key: value': '", t);
  char *key = (char *)trim(a, line, (size_t)(colon - line));
  const char *val = trim(a, colon + 1, n - (size_t)(colon + 1 - line));
  if (!key || !val)
    return WV_ENOMEM;
  for (char *k = key; *k; k++)
    *k = (char)tolower((unsigned char)*k);
  if (!in_list(known_keys, key) && strncmp(key, "otherurl", 8) != 0)
    return fail(a, msg, WV_EINVAL, "unknown header keyword '", key);
  if (!in_list(used_keys, key))
    return fail(a, msg, WV_EINVAL,
                "header keyword not supported by this server (Bootstrap: docker "
                "takes From, Registry and Namespace) '",
                key);
  if (d->n_headers == WV_DEFFILE_MAX_HEADERS)
    return fail(a, msg, WV_ETOOBIG, "too many header lines", NULL);
  for (size_t i = 0; i < d->n_headers; i++)
    if (strcmp(d->headers[i].key, key) == 0)
      return fail(a, msg, WV_EINVAL, "header keyword given twice '", key);
  d->headers[d->n_headers++] = (wv_deffile_kv_t){key, val};
  return 0;
}

static const char *header(const wv_deffile_t *d, const char *key) {
  for (size_t i = 0; i < d->n_headers; i++)
    if (strcmp(d->headers[i].key, key) == 0)
      return d->headers[i].value;
  return NULL;
}

/* Splits one %files line into src [dst]; double quotes group words. */
static int files_line(wv_arena_t *a, const char *line, wv_deffile_t *d, const char **msg) {
  const char *w[3] = {NULL, NULL, NULL};
  int n = 0;
  for (const char *p = line; *p && n < 3;) {
    p += strspn(p, " \t\r");
    if (!*p)
      break;
    const char *s = p;
    size_t len;
    if (*p == '"') {
      const char *q = strchr(p + 1, '"');
      if (!q)
        return fail(a, msg, WV_EINVAL, "%files line with an unclosed quote: '", line);
      s = p + 1, len = (size_t)(q - s), p = q + 1;
    } else {
      len = strcspn(p, " \t\r");
      p += len;
    }
    if (!(w[n++] = wv_arena_strndup(a, s, len)))
      return WV_ENOMEM;
  }
  if (n == 0 || *w[0] == '#')
    return 0;
  if (n == 3)
    return fail(a, msg, WV_EINVAL, "%files line with more than a source and a destination: '",
                line);
  if (d->n_files == WV_DEFFILE_MAX_FILES)
    return fail(a, msg, WV_ETOOBIG, "too many %files lines", NULL);
  d->files[d->n_files++] = (wv_deffile_file_t){w[0], n == 2 ? w[1] : w[0]};
  return 0;
}

/* One %labels line: KEY VALUE... split at the first blank; a later value of a key wins. */
static int label_line(wv_arena_t *a, const char *line, wv_deffile_t *d, const char **msg) {
  const char *t = trim(a, line, strlen(line));
  if (!t)
    return WV_ENOMEM;
  if (!*t || *t == '#')
    return 0;
  size_t k = strcspn(t, " \t");
  const char *key = wv_arena_strndup(a, t, k), *val = trim(a, t + k, strlen(t + k));
  if (!key || !val)
    return WV_ENOMEM;
  for (size_t i = 0; i < d->n_labels; i++)
    if (strcmp(d->labels[i].key, key) == 0) {
      d->labels[i].value = val;
      return 0;
    }
  if (d->n_labels == WV_DEFFILE_MAX_LABELS)
    return fail(a, msg, WV_ETOOBIG, "too many %labels", NULL);
  d->labels[d->n_labels++] = (wv_deffile_kv_t){key, val};
  return 0;
}

/* Splits a body into lines for fn. */
static int each_line(wv_arena_t *a, const char *body, wv_deffile_t *d, const char **msg,
                     int (*fn)(wv_arena_t *, const char *, wv_deffile_t *, const char **)) {
  cursor_t c = {body, body + strlen(body)};
  const char *l;
  size_t n;
  int rc = 0;
  while (!rc && next_line(&c, &l, &n)) {
    const char *line = wv_arena_strndup(a, l, n);
    rc = line ? fn(a, line, d, msg) : WV_ENOMEM;
  }
  return rc;
}

static wv_deffile_script_t *script_of(wv_deffile_t *d, const char *name) {
  static const char *const names[] = {"post",        "environment", "runscript",
                                      "startscript", "test",        "help"};
  wv_deffile_script_t *s[] = {&d->post,        &d->environment, &d->runscript,
                              &d->startscript, &d->test,        &d->help};
  for (size_t i = 0; i < 6; i++)
    if (strcmp(names[i], name) == 0)
      return s[i];
  return NULL;
}

/* Appends a section body (concatenation of repeated sections; the later args win). */
static int add_section(wv_arena_t *a, wv_deffile_t *d, const char *name, const char *args,
                       const char *body, const char **msg) {
  static const char *const refused[] = {"setup", "pre", "arguments", NULL};
  if (strcmp(name, "files") == 0) {
    if (*args)
      return fail(a, msg, WV_EINVAL, "%files from another stage is not supported: '", args);
    return each_line(a, body, d, msg, files_line);
  }
  if (strcmp(name, "labels") == 0)
    return each_line(a, body, d, msg, label_line);
  wv_deffile_script_t *s = script_of(d, name);
  if (s) {
    s->body = s->body ? wv_arena_sprintf(a, "%s%s", s->body, body) : body;
    s->args = args;
    return s->body ? 0 : WV_ENOMEM;
  }
  if (in_list(refused, name) || strncmp(name, "app", 3) == 0)
    return fail(a, msg, WV_EINVAL, "section not supported by this server '%", name);
  return fail(a, msg, WV_EINVAL, "unknown section '%", name);
}

/* Name (lower case) and args of a section line. */
static int section_head(wv_arena_t *a, const char *l, size_t n, char **name, const char **args) {
  const char *t = trim(a, l, n);
  if (!t)
    return WV_ENOMEM;
  size_t w = strcspn(t + 1, " \t");
  *name = wv_arena_strndup(a, t + 1, w);
  const char *rest = t + 1 + w, *hash = strchr(rest, '#');
  *args = trim(a, rest, hash ? (size_t)(hash - rest) : strlen(rest));
  if (!*name || !*args)
    return WV_ENOMEM;
  for (char *c = *name; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  return 0;
}

static int parse_sections(wv_arena_t *a, cursor_t *c, const char *l, size_t n, wv_deffile_t *d,
                          const char **msg) {
  int rc = 0;
  while (!rc && l) {
    char *name;
    const char *args;
    rc = section_head(a, l, n, &name, &args);
    const char *start = c->p, *stop = c->end;
    l = NULL;
    for (const char *sl; !rc && next_line(c, &sl, &n);) {
      if (is_bootstrap(sl, n))
        return fail(a, msg, WV_EINVAL, "multi-stage definition files are not supported", NULL);
      if (is_section(sl, n)) {
        l = sl, stop = sl;
        break;
      }
    }
    const char *body = rc ? NULL : wv_arena_strndup(a, start, (size_t)(stop - start));
    rc = rc ? rc : (body ? add_section(a, d, name, args, body, msg) : WV_ENOMEM);
  }
  return rc;
}

static int parse_header(wv_arena_t *a, cursor_t *c, wv_deffile_t *d, const char **first,
                        size_t *first_len, const char **msg) {
  const char *l;
  size_t n;
  char *pending = NULL; /* a line continued with a trailing backslash */
  *first = NULL;
  int rc = 0;
  while (!rc && next_line(c, &l, &n)) {
    if (is_section(l, n)) {
      *first = l, *first_len = n;
      break;
    }
    if (n && l[n - 1] == '\r')
      n--;
    bool cont = n && l[n - 1] == '\\';
    char *line = wv_arena_sprintf(a, "%s%.*s", pending ? pending : "", (int)(cont ? n - 1 : n), l);
    if (!line)
      return WV_ENOMEM;
    if (cont) {
      pending = line;
      continue;
    }
    pending = NULL;
    const char *t = trim(a, line, strlen(line));
    rc = !t ? WV_ENOMEM : (*t && *t != '#' ? header_line(a, line, d, msg) : 0);
  }
  return rc;
}

/* The image reference: [registry/][namespace/]from. */
static int image_ref(wv_arena_t *a, wv_deffile_t *d, const char **msg) {
  const char *boot = header(d, "bootstrap"), *from = header(d, "from");
  if (!boot)
    return fail(a, msg, WV_EINVAL, "missing 'Bootstrap:' header", NULL);
  /* A path on the server chosen by a remote, possibly anonymous, caller: never read. */
  if (strcasecmp(boot, "localimage") == 0)
    return fail(a, msg, WV_EINVAL,
                "'Bootstrap: localimage' names an image file on the server's disk, which a "
                "request may not read; build from a registry image with 'Bootstrap: docker'",
                NULL);
  /* oras: From: is a SIF artifact <registry>/<repo>:<tag> (oras:// accepted), nothing else. */
  d->oras = strcasecmp(boot, "oras") == 0;
  if (!d->oras && strcasecmp(boot, "docker") != 0)
    return fail(a, msg, WV_EINVAL,
                "bootstrap agent not supported by this server (only 'docker' and 'oras') '", boot);
  if (!from || !*from)
    return fail(a, msg, WV_EINVAL,
                d->oras ? "'Bootstrap: oras' needs a 'From:' header"
                        : "'Bootstrap: docker' needs a 'From:' header",
                NULL);
  if (d->oras) {
    d->from = strncmp(from, "oras://", 7) == 0 ? from + 7 : from;
    return 0;
  }
  const char *reg = header(d, "registry"), *ns = header(d, "namespace");
  d->from = wv_arena_sprintf(a, "%s%s%s%s%s", reg && *reg ? reg : "", reg && *reg ? "/" : "",
                             ns && *ns ? ns : "", ns && *ns ? "/" : "", from);
  return d->from ? 0 : WV_ENOMEM;
}

int wv_deffile_parse(wv_arena_t *a, const char *text, wv_deffile_t *d, const char **msg) {
  memset(d, 0, sizeof *d);
  if (!text)
    return fail(a, msg, WV_EINVAL, "empty file", NULL);
  size_t len = strlen(text);
  if (len > WV_DEFFILE_MAX)
    return fail(a, msg, WV_ETOOBIG, "larger than 1 MiB", NULL);
  int rc = check_placeholders(a, text, msg);
  if (rc)
    return rc;
  /* A leading chunk of comments before the first Bootstrap: line is dropped (FullRaw). */
  cursor_t c = {text, text + len};
  const char *l, *start = NULL;
  size_t n;
  for (cursor_t s = c; !start && next_line(&s, &l, &n);) {
    const char *t = trim(a, l, n);
    if (!t)
      return WV_ENOMEM;
    if (is_bootstrap(l, n))
      start = l;
    else if (*t && *t != '#')
      break;
  }
  if (!start)
    return fail(a, msg, WV_EINVAL, "the file must start with a 'Bootstrap:' header", NULL);
  d->raw = start;
  c.p = start;
  const char *first;
  size_t first_len = 0;
  rc = parse_header(a, &c, d, &first, &first_len, msg);
  rc = rc ? rc : image_ref(a, d, msg);
  if (!rc && first)
    rc = parse_sections(a, &c, first, first_len, d, msg);
  return rc;
}
