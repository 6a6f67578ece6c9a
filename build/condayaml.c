/*
 * build/condayaml.c — load conda YAML with libyaml, dump it like SnakeYAML.
 *
 * DESIGN. Loading turns libyaml's event stream into a tree with an explicit
 * stack (no recursion on input depth). Dumping recurses on the tree, whose
 * depth the loader capped. The scalar style choice follows SnakeYAML's
 * Emitter.analyzeScalar/chooseScalarStyle: plain when the text has no
 * indicator that matters in block context, no leading/trailing blank, no
 * line break or special character, and would not read back as another type;
 * else single quotes when allowed; else double quotes.
 */
#include "build/condayaml.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- YAML 1.1 implicit types (SnakeYAML's Resolver patterns) ---------------- */

static const char *const type_patterns[] = {
    /* BOOL */
    "^(yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
    /* INT */
    "^([-+]?0b_*[0-1]+[0-1_]*|[-+]?0_*[0-7]+[0-7_]*|[-+]?(0|[1-9][0-9_]*)|"
    "[-+]?0x_*[0-9a-fA-F]+[0-9a-fA-F_]*|[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+)$",
    /* FLOAT */
    "^([-+]?(\\.[0-9]+|[0-9_]+(\\.[0-9_]*)?)([eE][-+]?[0-9]+)?|"
    "[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN))$",
    /* NULL */
    "^(~|null|Null|NULL| )$",
    /* TIMESTAMP, MERGE, VALUE: strings in our tree, but they must be quoted when dumped */
    "^([0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
    "([Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](\\.[0-9]*)?"
    "([ \t]*(Z|[-+][0-9][0-9]?(:[0-9][0-9])?))?)$",
    "^(<<|=)$",
};
#define NPATTERNS (sizeof type_patterns / sizeof type_patterns[0])
/* Constant: compiled once (pthread_once) from the patterns above, read-only after. */
static regex_t type_re[NPATTERNS];
static int type_re_ok;
static pthread_once_t type_once = PTHREAD_ONCE_INIT;

static void compile_types(void) {
  for (size_t i = 0; i < NPATTERNS; i++)
    if (regcomp(&type_re[i], type_patterns[i], REG_EXTENDED | REG_NOSUB) != 0)
      return;
  type_re_ok = 1;
}

/* Index of the first matching pattern, or -1. Empty text reads as null. */
static int match_type(const char *s) {
  pthread_once(&type_once, compile_types);
  if (!*s)
    return 3;
  if (!type_re_ok)
    return -1;
  for (size_t i = 0; i < NPATTERNS; i++)
    if (regexec(&type_re[i], s, 0, NULL, 0) == 0)
      return (int)i;
  return -1;
}

wv_yaml_type_t wv_yaml_resolve(const char *plain) {
  static const wv_yaml_type_t map[] = {WV_YAML_BOOL, WV_YAML_INT, WV_YAML_FLOAT, WV_YAML_NULL};
  int t = match_type(plain);
  return t >= 0 && t < 4 ? map[t] : WV_YAML_STR;
}

/* ---- Java renderings of typed scalars --------------------------------------- */

static char *strip_underscores(wv_arena_t *a, const char *s) {
  char *r = wv_arena_strdup(a, s), *w = r;
  if (!r)
    return NULL;
  for (const char *p = s; *p; p++)
    if (*p != '_')
      *w++ = *p;
  *w = '\0';
  return r;
}

/* SnakeYAML's ConstructYamlInt, printed as Java prints an Integer/Long. */
static const char *java_int(wv_arena_t *a, const char *text) {
  char *s = strip_underscores(a, text);
  if (!s)
    return NULL;
  int neg = *s == '-';
  const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
  long long v = 0;
  errno = 0;
  if (strchr(d, ':')) { /* sexagesimal: base 60 digits */
    for (const char *p = d; *p;) {
      v = v * 60 + strtoll(p, (char **)&p, 10);
      if (*p == ':')
        p++;
    }
  } else if (!strncmp(d, "0b", 2)) {
    v = strtoll(d + 2, NULL, 2);
  } else if (!strncmp(d, "0x", 2)) {
    v = strtoll(d + 2, NULL, 16);
  } else if (d[0] == '0' && d[1]) {
    v = strtoll(d, NULL, 8);
  } else {
    v = strtoll(d, NULL, 10);
    if (errno == ERANGE) /* a BigInteger prints its decimal digits */
      return neg ? wv_arena_sprintf(a, "-%s", d) : wv_arena_strdup(a, d);
  }
  if (errno == ERANGE)
    return wv_arena_strdup(a, text);
  return wv_arena_sprintf(a, "%lld", neg ? -v : v);
}

/* Java's Double.toString: shortest round-trip digits, decimal or "d.dddE±n". */
static const char *java_double(wv_arena_t *a, double v) {
  if (isnan(v))
    return "NaN";
  if (isinf(v))
    return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0)
    return signbit(v) ? "-0.0" : "0.0";
  char e[40], digits[24];
  int prec, exp10;
  for (prec = 0; prec < 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec, v);
    if (strtod(e, NULL) == v)
      break;
  }
  const char *p = e + (v < 0);
  size_t nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9')
      digits[nd++] = *p;
  digits[nd] = '\0';
  exp10 = atoi(p + 1);
  while (nd > 1 && digits[nd - 1] == '0')
    digits[--nd] = '\0';
  const char *sign = v < 0 ? "-" : "";
  double av = fabs(v);
  if (av >= 1e-3 && av < 1e7) {
    char buf[64];
    size_t w = 0;
    if (exp10 < 0) {
      w += (size_t)snprintf(buf, sizeof buf, "0.");
      for (int i = -1; i > exp10; i--)
        buf[w++] = '0';
      memcpy(buf + w, digits, nd), w += nd;
    } else {
      for (int i = 0; i <= exp10; i++)
        buf[w++] = (size_t)i < nd ? digits[i] : '0';
      buf[w++] = '.';
      if ((size_t)exp10 + 1 < nd)
        memcpy(buf + w, digits + exp10 + 1, nd - (size_t)exp10 - 1), w += nd - (size_t)exp10 - 1;
      else
        buf[w++] = '0';
    }
    buf[w] = '\0';
    return wv_arena_sprintf(a, "%s%s", sign, buf);
  }
  return wv_arena_sprintf(a, "%s%c.%sE%d", sign, digits[0], nd > 1 ? digits + 1 : "0", exp10);
}

static const char *java_float(wv_arena_t *a, const char *text) {
  char *s = strip_underscores(a, text);
  if (!s)
    return NULL;
  const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
  double v;
  if (!strcasecmp(d, ".inf"))
    v = INFINITY;
  else if (!strcasecmp(d, ".nan"))
    v = NAN;
  else if (strchr(d, ':')) {
    v = 0;
    for (const char *p = d; *p;) {
      char *end;
      double part = strtod(p, &end);
      v = v * 60 + part;
      p = *end == ':' ? end + 1 : end + strlen(end);
    }
  } else
    v = strtod(d, NULL);
  return java_double(a, *s == '-' ? -v : v);
}

const char *wv_yaml_scalar_java(wv_arena_t *a, const wv_yaml_node_t *n) {
  switch (n->type) {
  case WV_YAML_NULL:
    return "null";
  case WV_YAML_BOOL:
    return strchr("yYtToO", n->text[0]) && strcasecmp(n->text, "off") ? "true" : "false";
  case WV_YAML_INT:
    return java_int(a, n->text);
  case WV_YAML_FLOAT:
    return java_float(a, n->text);
  default:
    return n->text;
  }
}

/* ---- tree building ----------------------------------------------------------- */

wv_yaml_node_t *wv_yaml_new(wv_arena_t *a, wv_yaml_kind_t kind) {
  wv_yaml_node_t *n = wv_arena_calloc(a, sizeof *n);
  if (n)
    n->kind = kind;
  return n;
}

wv_yaml_node_t *wv_yaml_str(wv_arena_t *a, const char *s) {
  wv_yaml_node_t *n = wv_yaml_new(a, WV_YAML_SCALAR);
  if (n && !(n->text = wv_arena_strdup(a, s)))
    return NULL;
  return n;
}

/* Makes room for `need` item slots (a mapping uses two per pair). */
static int reserve(wv_arena_t *a, wv_yaml_node_t *c, size_t need) {
  if (need <= c->cap)
    return 0;
  size_t cap = c->cap ? 2 * c->cap : 8;
  while (cap < need)
    cap *= 2;
  wv_yaml_node_t **v = wv_arena_alloc(a, cap * sizeof *v);
  if (!v)
    return WV_ENOMEM;
  size_t used = c->kind == WV_YAML_MAP ? 2 * c->n : c->n;
  if (used)
    memcpy(v, c->items, used * sizeof *v);
  c->items = v, c->cap = cap;
  return 0;
}

int wv_yaml_append(wv_arena_t *a, wv_yaml_node_t *seq, wv_yaml_node_t *item) {
  if (seq->kind != WV_YAML_SEQ)
    return WV_EINVAL;
  int rc = reserve(a, seq, seq->n + 1);
  if (!rc)
    seq->items[seq->n++] = item;
  return rc;
}

static wv_yaml_node_t **map_slot(const wv_yaml_node_t *map, const char *key) {
  if (!map || map->kind != WV_YAML_MAP)
    return NULL;
  for (size_t i = 0; i < map->n; i++) {
    const wv_yaml_node_t *k = map->items[2 * i];
    if (k->kind == WV_YAML_SCALAR && strcmp(k->text, key) == 0)
      return &map->items[2 * i + 1];
  }
  return NULL;
}

wv_yaml_node_t *wv_yaml_get(const wv_yaml_node_t *map, const char *key) {
  wv_yaml_node_t **slot = map_slot(map, key);
  return slot ? *slot : NULL;
}

static int map_put_node(wv_arena_t *a, wv_yaml_node_t *map, wv_yaml_node_t *key,
                        wv_yaml_node_t *value) {
  wv_yaml_node_t **slot = map_slot(map, key->text);
  if (slot) { /* LinkedHashMap.put: the key keeps its place, the value is replaced */
    *slot = value;
    return 0;
  }
  int rc = reserve(a, map, 2 * map->n + 2);
  if (rc)
    return rc;
  map->items[2 * map->n] = key;
  map->items[2 * map->n + 1] = value;
  map->n++;
  return 0;
}

int wv_yaml_put(wv_arena_t *a, wv_yaml_node_t *map, const char *key, wv_yaml_node_t *value) {
  if (map->kind != WV_YAML_MAP)
    return WV_EINVAL;
  wv_yaml_node_t *k = wv_yaml_str(a, key);
  return k ? map_put_node(a, map, k, value) : WV_ENOMEM;
}

/* ---- loading ------------------------------------------------------------------ */

typedef struct {
  wv_yaml_node_t *node;
  wv_yaml_node_t *key; /* mappings: the key waiting for its value */
} frame_t;

typedef struct {
  wv_arena_t *a;
  frame_t stack[WV_YAML_MAX_DEPTH];
  int depth;
  size_t nodes;
  wv_yaml_node_t *root;
  const char **msg;
} loader_t;

static int fail(loader_t *l, int rc, size_t line, const char *why) {
  if (l->msg)
    *l->msg = wv_arena_sprintf(l->a, "Invalid conda YAML at line %zu: %s", line, why);
  return rc;
}

static int attach(loader_t *l, wv_yaml_node_t *n, size_t line) {
  if (++l->nodes > WV_YAML_MAX_NODES)
    return fail(l, WV_ETOOBIG, line, "too many nodes");
  if (l->depth == 0) {
    l->root = n;
    return 0;
  }
  frame_t *top = &l->stack[l->depth - 1];
  if (top->node->kind == WV_YAML_SEQ)
    return wv_yaml_append(l->a, top->node, n);
  if (!top->key) {
    if (n->kind != WV_YAML_SCALAR)
      return fail(l, WV_EPARSE, line, "complex mapping keys are not supported");
    top->key = n;
    return 0;
  }
  int rc = map_put_node(l->a, top->node, top->key, n);
  top->key = NULL;
  return rc;
}

static wv_yaml_type_t scalar_type(const yaml_event_t *ev, const char *text) {
  const char *tag = (const char *)ev->data.scalar.tag;
  if (tag)
    return strcmp(tag, YAML_STR_TAG) == 0 ? WV_YAML_STR : wv_yaml_resolve(text);
  return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? wv_yaml_resolve(text) : WV_YAML_STR;
}

/* Handles one event; *done is set at the end of the stream. */
static int on_event(loader_t *l, const yaml_event_t *ev, int *ndocs, int *done) {
  size_t line = ev->start_mark.line + 1;
  wv_yaml_node_t *n;
  switch (ev->type) {
  case YAML_STREAM_END_EVENT:
    *done = 1;
    return 0;
  case YAML_DOCUMENT_START_EVENT:
    return ++*ndocs > 1 ? fail(l, WV_EPARSE, line, "expected a single document") : 0;
  case YAML_ALIAS_EVENT:
    return fail(l, WV_EPARSE, line, "anchors and aliases are not supported");
  case YAML_SCALAR_EVENT:
    if (ev->data.scalar.anchor)
      return fail(l, WV_EPARSE, line, "anchors and aliases are not supported");
    if (!(n = wv_yaml_new(l->a, WV_YAML_SCALAR)) ||
        !(n->text =
              wv_arena_strndup(l->a, (const char *)ev->data.scalar.value, ev->data.scalar.length)))
      return WV_ENOMEM;
    n->type = scalar_type(ev, n->text);
    return attach(l, n, line);
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT:
    if ((ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
                                               : ev->data.mapping_start.anchor))
      return fail(l, WV_EPARSE, line, "anchors and aliases are not supported");
    if (l->depth >= WV_YAML_MAX_DEPTH)
      return fail(l, WV_ETOOBIG, line, "nesting too deep");
    n = wv_yaml_new(l->a, ev->type == YAML_SEQUENCE_START_EVENT ? WV_YAML_SEQ : WV_YAML_MAP);
    if (!n)
      return WV_ENOMEM;
    int rc = attach(l, n, line);
    if (rc)
      return rc;
    l->stack[l->depth++] = (frame_t){n, NULL};
    return 0;
  case YAML_SEQUENCE_END_EVENT:
  case YAML_MAPPING_END_EVENT:
    l->depth--;
    return 0;
  default:
    return 0;
  }
}

int wv_yaml_load(wv_arena_t *a, const char *text, size_t len, wv_yaml_node_t **root,
                 const char **msg) {
  loader_t l = {.a = a, .msg = msg};
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return WV_ENOMEM;
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  int rc = 0, ndocs = 0, done = 0;
  while (!rc && !done) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      rc = fail(&l, WV_EPARSE, p.problem_mark.line + 1, p.problem ? p.problem : "syntax error");
      break;
    }
    rc = on_event(&l, &ev, &ndocs, &done);
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  if (!rc && (!l.root || l.root->kind != WV_YAML_MAP))
    rc = fail(&l, WV_EPARSE, 1, "the document is not a mapping");
  if (!rc)
    *root = l.root;
  return rc;
}

/* ---- dumping ------------------------------------------------------------------ */

#define DUMP_MAX (16u << 20)

typedef struct {
  bool block_plain, single_ok;
} analysis_t;

static bool is_blank_or_end(const char *p) {
  return *p == '\0' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n';
}

/* SnakeYAML's analyzeScalar, reduced to the block-context verdicts we need. */
static analysis_t analyze(const char *s) {
  analysis_t r = {true, true};
  size_t n = strlen(s);
  if (n == 0)
    return (analysis_t){false, true};
  bool block_ind = !strncmp(s, "---", 3) || !strncmp(s, "...", 3);
  bool lead_space = false, trail_space = false, breaks = false, special = false;
  bool prev_space = false, prev_break = false, break_space = false, space_break = false;
  bool preceded_ws = true;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    bool followed_ws = is_blank_or_end(s + i + 1);
    if (i == 0 && strchr("#,[]{}&*!|>'\"%@`", c))
      block_ind = true;
    if (i == 0 && (c == '?' || c == ':' || c == '-') && followed_ws)
      block_ind = true;
    if (i > 0 && c == ':' && followed_ws)
      block_ind = true;
    if (i > 0 && c == '#' && preceded_ws)
      block_ind = true;
    bool is_break = c == '\n';
    if (is_break)
      breaks = true;
    /* Bytes >= 0x80 are UTF-8 text SnakeYAML prints as is (allowUnicode). */
    if (c != '\n' && c < 0x20)
      special = true;
    if (c == 0x7f)
      special = true;
    if (c == ' ') {
      lead_space |= i == 0, trail_space |= i == n - 1, break_space |= prev_break;
      prev_space = true, prev_break = false;
    } else if (is_break) {
      space_break |= prev_space;
      prev_break = true, prev_space = false;
    } else {
      prev_space = prev_break = false;
    }
    preceded_ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';
  }
  if (lead_space || trail_space || breaks || block_ind || special || break_space || space_break)
    r.block_plain = false;
  if (break_space || space_break || special || breaks)
    r.single_ok = false; /* multi-line strings go double-quoted (see the header) */
  if (r.block_plain && match_type(s) >= 0)
    r.block_plain = false; /* would read back as another type */
  return r;
}

static int put_double_quoted(wv_buf_t *b, const char *s) {
  int rc = wv_buf_putc(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
    switch (*p) {
    case '"':
      rc = wv_buf_puts(b, "\\\"");
      break;
    case '\\':
      rc = wv_buf_puts(b, "\\\\");
      break;
    case '\n':
      rc = wv_buf_puts(b, "\\n");
      break;
    case '\t':
      rc = wv_buf_puts(b, "\\t");
      break;
    case '\r':
      rc = wv_buf_puts(b, "\\r");
      break;
    case 0x1b:
      rc = wv_buf_puts(b, "\\e");
      break;
    default:
      rc = *p < 0x20 || *p == 0x7f ? wv_buf_printf(b, "\\x%02X", *p) : wv_buf_putc(b, (char)*p);
    }
  }
  return rc ? rc : wv_buf_putc(b, '"');
}

static int put_scalar(wv_arena_t *a, wv_buf_t *b, const wv_yaml_node_t *n) {
  if (n->type == WV_YAML_FLOAT) {
    const char *d = n->text[0] == '-' || n->text[0] == '+' ? n->text + 1 : n->text;
    if (!strcasecmp(d, ".nan"))
      return wv_buf_puts(b, ".NaN");
    if (!strcasecmp(d, ".inf"))
      return wv_buf_puts(b, n->text[0] == '-' ? "-.inf" : ".inf");
  }
  if (n->type != WV_YAML_STR) {
    const char *t = wv_yaml_scalar_java(a, n);
    return t ? wv_buf_puts(b, t) : WV_ENOMEM;
  }
  analysis_t an = analyze(n->text);
  if (an.block_plain)
    return wv_buf_puts(b, n->text);
  if (!an.single_ok)
    return put_double_quoted(b, n->text);
  int rc = wv_buf_putc(b, '\'');
  for (const char *p = n->text; *p && !rc; p++)
    rc = *p == '\'' ? wv_buf_puts(b, "''") : wv_buf_putc(b, *p);
  return rc ? rc : wv_buf_putc(b, '\'');
}

static int indent(wv_buf_t *b, int n) {
  int rc = 0;
  for (int i = 0; i < n && !rc; i++)
    rc = wv_buf_putc(b, ' ');
  return rc;
}

static int dump_node(wv_arena_t *a, wv_buf_t *b, const wv_yaml_node_t *n, int ind, bool inline_);

/* A value after "key:" or "- ": scalars and empty collections stay on the line. */
static int dump_value(wv_arena_t *a, wv_buf_t *b, const wv_yaml_node_t *v, int ind, bool in_seq) {
  int rc;
  if (v->kind == WV_YAML_SCALAR || v->n == 0) {
    if (!in_seq && (rc = wv_buf_putc(b, ' ')) != 0)
      return rc;
    if (v->kind == WV_YAML_SCALAR)
      rc = put_scalar(a, b, v);
    else
      rc = wv_buf_puts(b, v->kind == WV_YAML_SEQ ? "[]" : "{}");
    return rc ? rc : wv_buf_putc(b, '\n');
  }
  if (in_seq) /* "- - a" and "- k: v": the nested block starts on the dash line */
    return dump_node(a, b, v, ind + 2, true);
  if ((rc = wv_buf_putc(b, '\n')) != 0)
    return rc;
  /* A sequence under a mapping key is not indented; a mapping is. */
  return dump_node(a, b, v, v->kind == WV_YAML_SEQ ? ind : ind + 2, false);
}

static int dump_node(wv_arena_t *a, wv_buf_t *b, const wv_yaml_node_t *n, int ind, bool inline_) {
  int rc = 0;
  for (size_t i = 0; i < n->n && !rc; i++) {
    if (i > 0 || !inline_)
      rc = indent(b, ind);
    if (!rc && n->kind == WV_YAML_SEQ) {
      rc = wv_buf_puts(b, "- ");
      if (!rc)
        rc = dump_value(a, b, n->items[i], ind, true);
    } else if (!rc) {
      rc = put_scalar(a, b, n->items[2 * i]);
      if (!rc)
        rc = wv_buf_putc(b, ':');
      if (!rc)
        rc = dump_value(a, b, n->items[2 * i + 1], ind, false);
    }
  }
  return rc;
}

int wv_yaml_dump(wv_arena_t *a, const wv_yaml_node_t *root, const char **out) {
  wv_buf_t b;
  wv_buf_init(&b, DUMP_MAX);
  int rc;
  if (root->kind == WV_YAML_SCALAR || root->n == 0)
    rc = dump_value(a, &b, root, 0, true);
  else
    rc = dump_node(a, &b, root, 0, false);
  if (!rc && !(*out = wv_arena_strndup(a, b.data ? b.data : "", b.len)))
    rc = WV_ENOMEM;
  wv_buf_free(&b);
  return rc;
}
