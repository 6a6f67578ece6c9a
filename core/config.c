/*
 * core/config.c — schema-driven configuration (see config.h).
 *
 * DESIGN. One static table (schema[], in config_schema.c) names every key, its type, where it
 * lives in wv_config_t, its default text and its description. Defaults are
 * produced by parsing the default text with the same parser as the file, so
 * the table is the single source of truth for defaults, parsing, validation
 * and `--help`. The YAML file is loaded with libyaml's document API (nodes
 * keep their line numbers) and walked: a key is looked up after turning
 * camelCase into kebab-case and resolving aliases; a key that is neither a
 * schema key nor a prefix of one is refused, which catches typos. Dotted keys
 * (`wave.server.url: ...` at top level) work because the walk concatenates
 * paths. Error text is "<file>:<line>: <key as written>: <why>".
 */
#include "core/config_int.h"
#include "core/err.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_CONFIG_FILE (1u << 20) /* a config file is small; refuse anything absurd */
#define MAX_ACCOUNTS 10000

/* The types (ctype_t) as they read in an error message. */
static const char *const type_nouns[] = {"a string",   "an integer", "a boolean", "a duration",
                                         "a duration", "a size",     "a mapping", "a mapping",
                                         "a list",     "a path"};

/* ---- value parsers: s → field, or a reason in why ---- */

static int parse_ll(const char *s, long long *out) {
  if (!*s || isspace((unsigned char)*s))
    return WV_EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end)
    return WV_EINVAL;
  *out = v;
  return 0;
}

static int out_of_range(const entry_t *e, long long v, const char *s, char *why, size_t whylen) {
  if (e->min == 0 && e->max == 0)
    return 0;
  if (v >= e->min && v <= e->max)
    return 0;
  static const char *const unit[] = {"", "", "", "ms", "us", " bytes", ""};
  snprintf(why, whylen, "'%s' out of range (%lld%s..%lld%s)", s, e->min, unit[e->type], e->max,
           unit[e->type]);
  return WV_ERANGE;
}

static int parse_int(const entry_t *e, const char *s, void *field, char *why, size_t whylen) {
  long long v;
  if (parse_ll(s, &v)) {
    snprintf(why, whylen, "invalid integer '%s'", s);
    return WV_EINVAL;
  }
  int rc = out_of_range(e, v, s, why, whylen);
  if (rc == 0)
    *(int *)field = (int)v;
  return rc;
}

static int parse_bool(const char *s, void *field, char *why, size_t whylen) {
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  for (size_t i = 0; i < 3; i++) {
    if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
      *(bool *)field = strcasecmp(s, yes[i]) == 0;
      return 0;
    }
  }
  snprintf(why, whylen, "invalid boolean '%s' (expected true or false)", s);
  return WV_EINVAL;
}

/* Splits "123unit" into number and unit; the number must be non-negative. */
static int split_number(const char *s, unsigned long long *n, const char **unit) {
  if (!isdigit((unsigned char)*s))
    return WV_EINVAL;
  unsigned long long v = 0;
  for (; isdigit((unsigned char)*s); s++) {
    if (v > (ULLONG_MAX - 9) / 10)
      return WV_ERANGE;
    v = v * 10 + (unsigned long long)(*s - '0');
  }
  *n = v;
  *unit = s;
  return 0;
}

/* Parses a duration into nanoseconds. */
static int duration_ns(const char *s, long long *ns) {
  static const struct {
    const char *u;
    long long ns;
  } units[] = {{"ns", 1},
               {"us", 1000},
               {"ms", 1000000},
               {"s", 1000000000LL},
               {"m", 60000000000LL},
               {"h", 3600000000000LL},
               {"d", 86400000000000LL}};
  unsigned long long n;
  const char *unit;
  if (split_number(s, &n, &unit))
    return WV_EINVAL;
  if (!*unit)
    return n == 0 ? (*ns = 0, 0) : WV_EINVAL;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(unit, units[i].u) == 0) {
      if (n > (unsigned long long)(INT64_MAX / units[i].ns))
        return WV_ERANGE;
      *ns = (long long)n * units[i].ns;
      return 0;
    }
  }
  return WV_EINVAL;
}

static int parse_duration(const entry_t *e, const char *s, void *field, char *why, size_t whylen) {
  long long ns, res = e->type == T_DUR_US ? 1000 : 1000000;
  int rc = duration_ns(s, &ns);
  if (rc) {
    snprintf(why, whylen, "invalid duration '%s' (expected e.g. 910s, 15m, 36h)", s);
    return WV_EINVAL;
  }
  if (ns % res) {
    snprintf(why, whylen, "duration '%s' is finer than the 1%s resolution of this key", s,
             e->type == T_DUR_US ? "us" : "ms");
    return WV_EINVAL;
  }
  rc = out_of_range(e, ns / res, s, why, whylen);
  if (rc == 0)
    *(int64_t *)field = ns / res;
  return rc;
}

static int parse_size(const entry_t *e, const char *s, void *field, char *why, size_t whylen) {
  static const struct {
    const char *u;
    unsigned long long mult;
  } units[] = {{"", 1},
               {"B", 1},
               {"KB", 1000},
               {"kB", 1000},
               {"MB", 1000000},
               {"GB", 1000000000ULL},
               {"TB", 1000000000000ULL},
               {"KiB", 1ULL << 10},
               {"MiB", 1ULL << 20},
               {"GiB", 1ULL << 30},
               {"TiB", 1ULL << 40}};
  unsigned long long n;
  const char *unit;
  if (split_number(s, &n, &unit) == 0) {
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      if (strcmp(unit, units[i].u) != 0)
        continue;
      if (n > (unsigned long long)LLONG_MAX / units[i].mult)
        break;
      long long v = (long long)(n * units[i].mult);
      int rc = out_of_range(e, v, s, why, whylen);
      if (rc == 0)
        *(uint64_t *)field = (uint64_t)v;
      return rc;
    }
  }
  snprintf(why, whylen, "invalid size '%s' (expected e.g. 16KiB, 10MB, 4GiB)", s);
  return WV_EINVAL;
}

static int parse_str(const entry_t *e, const char *s, void *field, char *why, size_t whylen) {
  if (e->check) {
    int rc = e->check(s, why, whylen);
    if (rc)
      return rc;
  }
  char *copy = strdup(s);
  if (!copy)
    return WV_ENOMEM;
  free(*(char **)field);
  *(char **)field = copy;
  return 0;
}

/* Sets a scalar-typed entry from text; every source (default, file, env) goes through here. */
static int set_scalar(wv_config_t *cfg, const entry_t *e, const char *s, char *why, size_t whylen) {
  void *field = (char *)cfg + e->off;
  switch (e->type) {
  case T_STR:
  case T_LIST:
  case T_PATH:
    return parse_str(e, s, field, why, whylen);
  case T_INT:
    return parse_int(e, s, field, why, whylen);
  case T_BOOL:
    return parse_bool(s, field, why, whylen);
  case T_DUR_MS:
  case T_DUR_US:
    return parse_duration(e, s, field, why, whylen);
  case T_SIZE:
    return parse_size(e, s, field, why, whylen);
  case T_MAP:
  case T_REGS:
    break;
  }
  snprintf(why, whylen, "expected a mapping");
  return WV_EINVAL;
}

/* ---- string maps ---- */

static void strmap_free(wv_strmap_t *m) {
  for (size_t i = 0; i < m->len; i++) {
    free(m->keys[i]);
    free(m->values[i]);
  }
  free(m->keys);
  free(m->values);
  memset(m, 0, sizeof *m);
}

/* ---- YAML walk ---- */

typedef struct {
  const char *file;
  yaml_document_t *doc;
  wv_config_t *cfg;
  char *err;
  size_t errlen;
} loader_t;

static int fail(loader_t *L, const yaml_node_t *n, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(loader_t *L, const yaml_node_t *n, int rc, const char *fmt, ...) {
  int k = snprintf(L->err, L->errlen, "%s:%zu: ", L->file, n->start_mark.line + 1);
  if (k < 0 || (size_t)k >= L->errlen)
    return rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(L->err + k, L->errlen - (size_t)k, fmt, ap);
  va_end(ap);
  return rc;
}

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* A plain `key:`, `~` or `null` — YAML's null, as opposed to a quoted "". */
static bool is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *s = scalar(n);
  return !*s || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0;
}

static const char *node_kind(const yaml_node_t *n) {
  return n->type == YAML_MAPPING_NODE    ? "a mapping"
         : n->type == YAML_SEQUENCE_NODE ? "a list"
                                         : "a scalar";
}

/* Replaces the map entry e with the YAML mapping n (scalar → scalar). */
static int load_map(loader_t *L, const entry_t *e, const char *path, yaml_node_t *n) {
  wv_strmap_t *m = (wv_strmap_t *)((char *)L->cfg + e->off), fresh = {0};
  int rc = 0;
  size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  if (cnt > MAX_ACCOUNTS)
    return fail(L, n, WV_ETOOBIG, "%s: more than %d entries", path, MAX_ACCOUNTS);
  fresh.keys = calloc(cnt + 1, sizeof(char *));
  fresh.values = calloc(cnt + 1, sizeof(char *));
  if (!fresh.keys || !fresh.values) {
    rc = WV_ENOMEM;
    goto out;
  }
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(L->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(L->doc, p->value);
    char why[160];
    if (k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
      rc = fail(L, k, WV_EINVAL, "%s: entries must be name: value scalars", path);
      goto out;
    }
    if (wv__cfg_check_sha256_hex(scalar(v), why, sizeof why)) {
      rc = fail(L, v, WV_EINVAL, "%s.%s: %s", path, scalar(k), why);
      goto out;
    }
    fresh.keys[fresh.len] = strdup(scalar(k));
    fresh.values[fresh.len] = strdup(scalar(v));
    fresh.len++;
    if (!fresh.keys[fresh.len - 1] || !fresh.values[fresh.len - 1]) {
      rc = WV_ENOMEM;
      goto out;
    }
    for (char *c = fresh.values[fresh.len - 1]; *c; c++) /* compare in one case later */
      *c = (char)tolower((unsigned char)*c);
  }
  strmap_free(m);
  *m = fresh;
  memset(&fresh, 0, sizeof fresh);
out:
  strmap_free(&fresh);
  return rc;
}

/* ---- registries ---- */

#define MAX_REGISTRIES 1000

void wv_config_registry_free(wv_config_registry_t *r) {
  free(r->host);
  free(r->username);
  free(r->password);
  for (size_t i = 0; i < r->nallow; i++)
    free(r->allow_names[i]);
  free(r->allow_names);
  free(r->allow_perms);
  memset(r, 0, sizeof *r);
}

int wv_config_registry_copy(wv_config_registry_t *dst, const wv_config_registry_t *src) {
  *dst = (wv_config_registry_t){.insecure = src->insecure,
                                .allow_anonymous = src->allow_anonymous,
                                .allow_accounts = src->allow_accounts};
  dst->host = src->host ? strdup(src->host) : NULL;
  dst->username = src->username ? strdup(src->username) : NULL;
  dst->password = src->password ? strdup(src->password) : NULL;
  bool ok = (!src->host || dst->host) && (!src->username || dst->username) &&
            (!src->password || dst->password);
  if (ok && src->nallow) {
    dst->allow_names = calloc(src->nallow, sizeof *dst->allow_names);
    dst->allow_perms = calloc(src->nallow, sizeof *dst->allow_perms);
    ok = dst->allow_names && dst->allow_perms;
    for (size_t i = 0; ok && i < src->nallow; i++, dst->nallow++) {
      dst->allow_perms[i] = src->allow_perms[i];
      ok = (dst->allow_names[i] = strdup(src->allow_names[i])) != NULL;
    }
  }
  if (!ok) {
    wv_config_registry_free(dst);
    return WV_ENOMEM;
  }
  return 0;
}

const char *wv_perm_name(wv_perm_t p) {
  return p == WV_PERM_PUSH ? "push" : p == WV_PERM_PULL ? "pull" : "none";
}

wv_perm_t wv_registry_perm(const wv_config_registry_t *r, const char *account) {
  if (!r || !r->username)
    return WV_PERM_PUSH; /* no credentials: nothing of the operator's is lent */
  if (!account)
    return r->allow_anonymous;
  for (size_t i = 0; i < r->nallow; i++)
    if (strcmp(r->allow_names[i], account) == 0)
      return r->allow_perms[i];
  return r->allow_accounts;
}

static void regs_free(wv_registries_t *r) {
  for (size_t i = 0; i < r->len; i++)
    wv_config_registry_free(&r->items[i]);
  free(r->items);
  memset(r, 0, sizeof *r);
}

/* Expands a whole-value "${NAME}" or "${NAME:default}" from the environment,
 * so secrets can stay out of the file (Micronaut's placeholder syntax).
 * Anything else is taken literally. Returns a new string or NULL on OOM. */
static char *expand_env(const char *s) {
  size_t n = strlen(s);
  if (n < 4 || strncmp(s, "${", 2) != 0 || s[n - 1] != '}')
    return strdup(s);
  char name[256];
  const char *colon = memchr(s + 2, ':', n - 3);
  size_t nlen = (size_t)((colon ? colon : s + n - 1) - (s + 2));
  if (nlen == 0 || nlen >= sizeof name)
    return strdup(s);
  memcpy(name, s + 2, nlen);
  name[nlen] = '\0';
  const char *v = getenv(name);
  if (v)
    return strdup(v);
  return colon ? strndup(colon + 1, (size_t)(s + n - 1 - (colon + 1))) : strdup("");
}

static int parse_perm(loader_t *L, yaml_node_t *n, const char *where, wv_perm_t *out) {
  const char *v = n->type == YAML_SCALAR_NODE ? scalar(n) : NULL;
  if (v && strcmp(v, "none") == 0)
    *out = WV_PERM_NONE;
  else if (v && strcmp(v, "pull") == 0)
    *out = WV_PERM_PULL;
  else if (v && strcmp(v, "push") == 0)
    *out = WV_PERM_PUSH;
  else
    return fail(L, n, WV_EINVAL, "%s: expected none, pull or push", where);
  return 0;
}

#define MAX_ALLOW_ACCOUNTS 1000

/* allow.accounts: {name: perm, "*": perm}. */
static int load_allow_accounts(loader_t *L, const char *where, yaml_node_t *v,
                               wv_config_registry_t *r) {
  if (v->type != YAML_MAPPING_NODE)
    return fail(L, v, WV_EINVAL, "%s: expected a mapping of account -> none, pull or push", where);
  size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
  if (cnt > MAX_ALLOW_ACCOUNTS)
    return fail(L, v, WV_ETOOBIG, "%s: more than %d accounts", where, MAX_ALLOW_ACCOUNTS);
  r->allow_names = calloc(cnt + 1, sizeof *r->allow_names);
  r->allow_perms = calloc(cnt + 1, sizeof *r->allow_perms);
  if (!r->allow_names || !r->allow_perms)
    return WV_ENOMEM;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
    yaml_node_t *ak = yaml_document_get_node(L->doc, p->key);
    yaml_node_t *av = yaml_document_get_node(L->doc, p->value);
    if (ak->type != YAML_SCALAR_NODE || !*scalar(ak))
      return fail(L, ak, WV_EINVAL, "%s: account names must be non-empty scalars", where);
    char sub[768];
    snprintf(sub, sizeof sub, "%.400s.%.200s", where, scalar(ak));
    wv_perm_t perm = WV_PERM_NONE;
    int rc = parse_perm(L, av, sub, &perm);
    if (rc)
      return rc;
    if (strcmp(scalar(ak), "*") == 0) {
      r->allow_accounts = perm;
      continue;
    }
    if (!(r->allow_names[r->nallow] = strdup(scalar(ak))))
      return WV_ENOMEM;
    r->allow_perms[r->nallow++] = perm;
  }
  return 0;
}

/* allow: {anonymous: perm, accounts: {...}}. */
static int load_allow(loader_t *L, const char *path, yaml_node_t *v, wv_config_registry_t *r) {
  char where[512];
  snprintf(where, sizeof where, "%.200s.%.200s.allow", path, r->host);
  if (v->type != YAML_MAPPING_NODE)
    return fail(L, v, WV_EINVAL, "%s: expected a mapping of anonymous, accounts", where);
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
    yaml_node_t *fk = yaml_document_get_node(L->doc, p->key);
    yaml_node_t *fv = yaml_document_get_node(L->doc, p->value);
    const char *f = fk->type == YAML_SCALAR_NODE ? scalar(fk) : "";
    char sub[768];
    snprintf(sub, sizeof sub, "%.400s.%.200s", where, f);
    int rc;
    if (strcmp(f, "anonymous") == 0)
      rc = parse_perm(L, fv, sub, &r->allow_anonymous);
    else if (strcmp(f, "accounts") == 0)
      rc = r->allow_names ? fail(L, fk, WV_EINVAL, "%s: given twice", sub)
                          : load_allow_accounts(L, sub, fv, r);
    else
      rc = fail(L, fk, WV_EINVAL, "%s: unknown key (expected anonymous, accounts)", sub);
    if (rc)
      return rc;
  }
  return 0;
}

static int load_registry(loader_t *L, const char *path, yaml_node_t *k, yaml_node_t *v,
                         wv_config_registry_t *r) {
  char why[160];
  if (k->type != YAML_SCALAR_NODE || !*scalar(k))
    return fail(L, k, WV_EINVAL, "%s: registry names must be non-empty scalars", path);
  if (v->type != YAML_MAPPING_NODE)
    return fail(L, v, WV_EINVAL, "%s.%s: expected a mapping of username, password, insecure, allow",
                path, scalar(k));
  if (!(r->host = strdup(scalar(k))))
    return WV_ENOMEM;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
    yaml_node_t *fk = yaml_document_get_node(L->doc, p->key);
    yaml_node_t *fv = yaml_document_get_node(L->doc, p->value);
    const char *f = fk->type == YAML_SCALAR_NODE ? scalar(fk) : "";
    if (strcmp(f, "allow") == 0) {
      int rc = load_allow(L, path, fv, r);
      if (rc)
        return rc;
      continue;
    }
    if (fv->type != YAML_SCALAR_NODE)
      return fail(L, fv, WV_EINVAL, "%s.%s.%s: expected a scalar", path, r->host, f);
    const char *val = is_null(fv) ? "" : scalar(fv);
    char **slot = strcmp(f, "username") == 0   ? &r->username
                  : strcmp(f, "password") == 0 ? &r->password
                                               : NULL;
    if (slot) {
      free(*slot);
      if (!(*slot = expand_env(val)))
        return WV_ENOMEM;
    } else if (strcmp(f, "insecure") == 0) {
      if (parse_bool(val, &r->insecure, why, sizeof why))
        return fail(L, fv, WV_EINVAL, "%s.%s.insecure: %s", path, r->host, why);
    } else {
      return fail(L, fk, WV_EINVAL,
                  "%s.%s.%s: unknown key (expected username, password, insecure, allow)", path,
                  r->host, f);
    }
  }
  /* An empty user (an unset ${VAR:}) means anonymous, as in Wave. */
  if (r->username && !*r->username) {
    free(r->username), free(r->password);
    r->username = r->password = NULL;
  }
  if (r->username && !r->password)
    return fail(L, v, WV_EINVAL, "%s.%s: username without password", path, r->host);
  return 0;
}

/* Replaces the registries entry e with the YAML mapping n. */
static int load_regs(loader_t *L, const entry_t *e, const char *path, yaml_node_t *n) {
  wv_registries_t *r = (wv_registries_t *)((char *)L->cfg + e->off), fresh = {0};
  size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  if (cnt > MAX_REGISTRIES)
    return fail(L, n, WV_ETOOBIG, "%s: more than %d registries", path, MAX_REGISTRIES);
  fresh.items = calloc(cnt + 1, sizeof *fresh.items);
  if (!fresh.items)
    return WV_ENOMEM;
  int rc = 0;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    rc = load_registry(L, path, yaml_document_get_node(L->doc, p->key),
                       yaml_document_get_node(L->doc, p->value), &fresh.items[fresh.len++]);
    if (rc)
      break;
  }
  if (rc) {
    regs_free(&fresh);
    return rc;
  }
  regs_free(r);
  *r = fresh;
  return 0;
}

/* A T_LIST written as a YAML list: its scalars joined with commas, then set as one string. */
static int load_list(loader_t *L, const entry_t *e, const char *path, yaml_node_t *n) {
  char why[256];
  size_t len = 0;
  for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
    yaml_node_t *item = yaml_document_get_node(L->doc, *i);
    if (item->type != YAML_SCALAR_NODE)
      return fail(L, item, WV_EINVAL, "%s: list items must be scalars, got %s", path,
                  node_kind(item));
    if (strchr(scalar(item), ','))
      return fail(L, item, WV_EINVAL, "%s: a list item may not contain a comma", path);
    int rc = e->check ? e->check(scalar(item), why, sizeof why) : 0; /* point at the item */
    if (rc)
      return fail(L, item, rc, "%s: %s", path, why);
    len += strlen(scalar(item)) + 1;
    if (len > MAX_CONFIG_FILE)
      return fail(L, n, WV_ETOOBIG, "%s: list too long", path);
  }
  char *joined = calloc(1, len + 1);
  if (!joined)
    return WV_ENOMEM;
  size_t at = 0;
  for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
    const char *v = scalar(yaml_document_get_node(L->doc, *i));
    size_t vl = strlen(v);
    if (at)
      joined[at++] = ',';
    memcpy(joined + at, v, vl);
    at += vl;
  }
  int rc = set_scalar(L->cfg, e, joined, why, sizeof why);
  free(joined);
  return rc ? fail(L, n, rc, "%s: %s", path, why) : 0;
}

static int load_value(loader_t *L, const entry_t *e, const char *path, yaml_node_t *v) {
  char why[256];
  if (e->type == T_REGS) {
    if (is_null(v))
      return (regs_free((wv_registries_t *)((char *)L->cfg + e->off)), 0);
    if (v->type != YAML_MAPPING_NODE)
      return fail(L, v, WV_EINVAL, "%s: expected a mapping, got %s", path, node_kind(v));
    return load_regs(L, e, path, v);
  }
  if (e->type == T_MAP) {
    if (is_null(v))
      return (strmap_free((wv_strmap_t *)((char *)L->cfg + e->off)), 0);
    if (v->type != YAML_MAPPING_NODE)
      return fail(L, v, WV_EINVAL, "%s: expected a mapping, got %s", path, node_kind(v));
    return load_map(L, e, path, v);
  }
  if (e->type == T_LIST && v->type == YAML_SEQUENCE_NODE)
    return load_list(L, e, path, v);
  if (v->type != YAML_SCALAR_NODE)
    return fail(L, v, WV_EINVAL, "%s: expected %s, got %s", path, type_nouns[e->type],
                node_kind(v));
  if (is_null(v) && !WV_CFG_IS_STRING(e->type))
    return fail(L, v, WV_EINVAL, "%s: missing value (expected %s)", path, type_nouns[e->type]);
  const char *s = is_null(v) ? "" : scalar(v);
  int rc = set_scalar(L->cfg, e, s, why, sizeof why);
  return rc ? fail(L, v, rc, "%s: %s", path, why) : 0;
}

static int walk(loader_t *L, yaml_node_t *map, const char *prefix, int depth);

static int walk_pair(loader_t *L, yaml_node_t *k, yaml_node_t *v, const char *prefix, int depth) {
  char path[MAX_KEY_LEN], norm[MAX_KEY_LEN * 2];
  if (k->type != YAML_SCALAR_NODE)
    return fail(L, k, WV_EINVAL, "%s%skeys must be scalars", prefix, *prefix ? ": " : "");
  int n = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", scalar(k));
  if (n < 0 || (size_t)n >= sizeof path)
    return fail(L, k, WV_EINVAL, "%.60s...: key too long", path);
  wv__cfg_kebab(path, norm, sizeof norm);
  const char *canon = wv__cfg_resolve_alias(norm);
  const entry_t *e = wv__cfg_find_entry(canon);
  if (e)
    return load_value(L, e, path, v);
  if (!wv__cfg_is_section(canon))
    return fail(L, k, WV_EINVAL, "%s: unknown key", path);
  if (is_null(v))
    return 0; /* an empty section */
  if (v->type != YAML_MAPPING_NODE)
    return fail(L, v, WV_EINVAL, "%s: expected a mapping of keys, got %s", path, node_kind(v));
  return walk(L, v, path, depth + 1);
}

static int walk(loader_t *L, yaml_node_t *map, const char *prefix, int depth) {
  if (depth > 16) /* the schema is shallow; anything deeper is a mistake */
    return fail(L, map, WV_EINVAL, "%s: nested too deeply", prefix);
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    int rc = walk_pair(L, yaml_document_get_node(L->doc, p->key),
                       yaml_document_get_node(L->doc, p->value), prefix, depth);
    if (rc)
      return rc;
  }
  return 0;
}

static int syntax_error(const char *file, const yaml_parser_t *p, char *err, size_t errlen) {
  yaml_mark_t m = p->problem ? p->problem_mark : p->context_mark;
  snprintf(err, errlen, "%s:%zu: YAML syntax error: %s%s%s", file, m.line + 1,
           p->problem ? p->problem : "unknown problem", p->context ? " " : "",
           p->context ? p->context : "");
  return WV_EPARSE;
}

static int load_file(wv_config_t *cfg, const char *path, FILE *f, char *err, size_t errlen) {
  yaml_parser_t parser;
  yaml_document_t doc;
  int rc = 0;
  if (!yaml_parser_initialize(&parser))
    return WV_ENOMEM;
  yaml_parser_set_input_file(&parser, f);
  if (!yaml_parser_load(&parser, &doc)) {
    rc = syntax_error(path, &parser, err, errlen);
    yaml_parser_delete(&parser);
    return rc;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  loader_t L = {path, &doc, cfg, err, errlen};
  if (root && !is_null(root)) {
    if (root->type != YAML_MAPPING_NODE)
      rc = fail(&L, root, WV_EINVAL, "the top level must be a mapping of keys");
    else
      rc = walk(&L, root, "", 0);
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}

/* Derives the authority from the URL; the URL was validated when set. */
static int finish(wv_config_t *cfg, char *err, size_t errlen) {
  const char *a;
  size_t n = wv__cfg_url_authority(cfg->server_url, &a);
  if (!n) {
    snprintf(err, errlen, "wave.server.url: invalid URL '%s'", cfg->server_url);
    return WV_EINVAL;
  }
  char *auth = strndup(a, n);
  if (!auth)
    return WV_ENOMEM;
  free(cfg->server_authority);
  cfg->server_authority = auth;
  /* "http://h:1/" and "http://h:1" must compose the same URLs. */
  for (size_t len = strlen(cfg->server_url); len > 0 && cfg->server_url[len - 1] == '/';)
    cfg->server_url[--len] = '\0';
  return 0;
}

/* ---- public API ---- */

int wv_config_defaults(wv_config_t *cfg) {
  char why[256];
  memset(cfg, 0, sizeof *cfg);
  for (size_t i = 0; i < wv__cfg_nschema; i++) {
    if (wv__cfg_schema[i].type == T_MAP || wv__cfg_schema[i].type == T_REGS)
      continue; /* every map default is empty */
    int rc = set_scalar(cfg, &wv__cfg_schema[i], wv__cfg_schema[i].def, why, sizeof why);
    if (rc) {
      /* Only OOM can fail here: test_config checks every default parses. */
      wv_config_free(cfg);
      return rc == WV_ENOMEM ? rc : WV_EINTERNAL;
    }
  }
  char err[64];
  int rc = finish(cfg, err, sizeof err);
  if (rc)
    wv_config_free(cfg);
  return rc;
}

int wv_config_load(wv_config_t *cfg, const char *path, char *err, size_t errlen) {
  if (errlen)
    err[0] = '\0';
  if (path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
      snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
      return WV_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > (off_t)MAX_CONFIG_FILE) {
      snprintf(err, errlen, "%s: larger than %u bytes", path, MAX_CONFIG_FILE);
      fclose(f);
      return WV_ETOOBIG;
    }
    int rc = load_file(cfg, path, f, err, errlen);
    fclose(f);
    if (rc)
      return rc;
  }
  return wv_config_apply_env(cfg, err, errlen);
}

int wv_config_apply_env(wv_config_t *cfg, char *err, size_t errlen) {
  static const struct {
    const char *var, *key;
  } env[] = {{"WAVE_SERVER_URL", "wave.server.url"}, {"WAVE_SERVER_PORT", "server.port"}};
  char why[256];
  for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
    const char *v = getenv(env[i].var);
    if (!v || !*v)
      continue; /* an empty variable (compose files) means "not set" */
    int rc = set_scalar(cfg, wv__cfg_find_entry(env[i].key), v, why, sizeof why);
    if (rc) {
      snprintf(err, errlen, "%s: %s", env[i].var, why);
      return rc;
    }
  }
  return finish(cfg, err, errlen);
}

/* ---- paths ---- */

/*
 * Appends the components of rel to out (which holds an absolute directory), dropping "."
 * components and repeated slashes. ".." is kept: only the kernel knows what it means
 * when a component is a symbolic link. WV_ETOOBIG past outlen.
 */
static int path_append(char *out, size_t outlen, const char *rel) {
  size_t at = strlen(out);
  while (*rel) {
    size_t n = strcspn(rel, "/");
    bool dot = n == 1 && rel[0] == '.';
    if (n && !dot) {
      bool slash = at == 0 || out[at - 1] != '/';
      if (at + slash + n >= outlen)
        return WV_ETOOBIG;
      if (slash)
        out[at++] = '/';
      memcpy(out + at, rel, n);
      at += n;
      out[at] = '\0';
    }
    rel += n + (rel[n] == '/');
  }
  return 0;
}

/* The absolute directory relative paths are taken from: config_file's, or the cwd. */
static int base_dir(const char *config_file, char *out, size_t outlen) {
  const char *slash = config_file ? strrchr(config_file, '/') : NULL;
  char dir[PATH_MAX];
  if (config_file && config_file[0] == '/') {
    snprintf(out, outlen, "%.*s", slash == config_file ? 1 : (int)(slash - config_file),
             config_file);
    return 0;
  }
  if (!getcwd(out, outlen))
    return WV_EIO;
  if (!slash)
    return 0;
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - config_file), config_file);
  return path_append(out, outlen, dir);
}

int wv_config_resolve_paths(wv_config_t *cfg, const char *config_file, char *err, size_t errlen) {
  char base[PATH_MAX], abs[PATH_MAX];
  if (base_dir(config_file, base, sizeof base)) {
    snprintf(err, errlen, "cannot find the working directory: %s", strerror(errno));
    return WV_EIO;
  }
  for (size_t i = 0; i < wv__cfg_nschema; i++) {
    const entry_t *e = &wv__cfg_schema[i];
    char **field = (char **)((char *)cfg + e->off);
    if (e->type != T_PATH || !*field || !**field)
      continue;
    snprintf(abs, sizeof abs, "%s", (*field)[0] == '/' ? "/" : base);
    if (path_append(abs, sizeof abs, *field)) {
      snprintf(err, errlen, "%s: '%.80s...' is longer than %d bytes once made absolute", e->key,
               *field, PATH_MAX - 1);
      return WV_EINVAL;
    }
    char *copy = strdup(abs);
    if (!copy)
      return WV_ENOMEM;
    free(*field);
    *field = copy;
  }
  return 0;
}

void wv_config_free(wv_config_t *cfg) {
  for (size_t i = 0; i < wv__cfg_nschema; i++) {
    void *field = (char *)cfg + wv__cfg_schema[i].off;
    if (WV_CFG_IS_STRING(wv__cfg_schema[i].type)) {
      free(*(char **)field);
      *(char **)field = NULL;
    } else if (wv__cfg_schema[i].type == T_MAP) {
      strmap_free(field);
    } else if (wv__cfg_schema[i].type == T_REGS) {
      regs_free(field);
    }
  }
  free(cfg->server_authority);
  cfg->server_authority = NULL;
}

const char *wv_config_authority(const wv_config_t *cfg) { return cfg->server_authority; }

static bool str_eq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

static bool map_eq(const wv_strmap_t *a, const wv_strmap_t *b) {
  if (a->len != b->len)
    return false;
  for (size_t i = 0; i < a->len; i++)
    if (!str_eq(a->keys[i], b->keys[i]) || !str_eq(a->values[i], b->values[i]))
      return false;
  return true;
}

static bool regs_eq(const wv_registries_t *a, const wv_registries_t *b) {
  if (a->len != b->len)
    return false;
  for (size_t i = 0; i < a->len; i++) {
    const wv_config_registry_t *x = &a->items[i], *y = &b->items[i];
    if (!str_eq(x->host, y->host) || !str_eq(x->username, y->username) ||
        !str_eq(x->password, y->password) || x->insecure != y->insecure ||
        x->allow_anonymous != y->allow_anonymous || x->allow_accounts != y->allow_accounts ||
        x->nallow != y->nallow)
      return false;
    for (size_t j = 0; j < x->nallow; j++)
      if (!str_eq(x->allow_names[j], y->allow_names[j]) || x->allow_perms[j] != y->allow_perms[j])
        return false;
  }
  return true;
}

const char *wv_config_first_difference(const wv_config_t *a, const wv_config_t *b) {
  static const size_t width[] = {
      0, sizeof(int), sizeof(bool), sizeof(int64_t), sizeof(int64_t), sizeof(uint64_t), 0, 0, 0, 0};
  for (size_t i = 0; i < wv__cfg_nschema; i++) {
    const entry_t *e = &wv__cfg_schema[i];
    const void *fa = (const char *)a + e->off, *fb = (const char *)b + e->off;
    bool eq = WV_CFG_IS_STRING(e->type) ? str_eq(*(char *const *)fa, *(char *const *)fb)
              : e->type == T_MAP        ? map_eq(fa, fb)
              : e->type == T_REGS       ? regs_eq(fa, fb)
                                        : memcmp(fa, fb, width[e->type]) == 0;
    if (!eq)
      return e->key;
  }
  return NULL;
}
