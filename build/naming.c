/*
 * build/naming.c — makeTargetImage and build ids (see naming.h).
 *
 * The quirks below are Wave's and are kept on purpose because they decide
 * image names users already pull: an entry without a version keeps its
 * original text in tagPrefix mode ("foo<" stays "foo<" until normalised),
 * an all-separator entry ("==") survives as a name, an empty entry left
 * after stripping a channel ("bioconda::") makes the whole YAML unnamable,
 * and a normalised tag that ends up empty prints as "null" (Groovy's
 * "${null}").
 */
#include "build/naming.h"
#include "build/condayaml.h"
#include "core/buf.h"
#include "core/err.h"

#include <string.h>

int wv_naming_strategy_parse(wv_arena_t *a, const char *s, wv_naming_strategy_t *out,
                             const char **msg) {
  if (!s)
    return *out = WV_NAMING_DEFAULT, 0;
  if (!strcmp(s, "none"))
    return *out = WV_NAMING_NONE, 0;
  if (!strcmp(s, "tagPrefix"))
    return *out = WV_NAMING_TAG_PREFIX, 0;
  if (!strcmp(s, "imageSuffix"))
    return *out = WV_NAMING_IMAGE_SUFFIX, 0;
  if (msg)
    *msg = wv_arena_sprintf(a, "Unsupported image naming strategy: '%s'", s);
  return WV_EINVAL;
}

/* ---- tool names ------------------------------------------------------------------ */

typedef struct {
  wv_arena_t *a;
  const char **v;
  size_t n, cap;
} strset_t;

/* Appends x, duplicates included (an ArrayList). */
static int list_push(strset_t *s, const char *x) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 8;
    const char **v = wv_arena_alloc(s->a, cap * sizeof *v);
    if (!v)
      return WV_ENOMEM;
    if (s->n)
      memcpy(v, s->v, s->n * sizeof *v);
    s->v = v, s->cap = cap;
  }
  s->v[s->n++] = x;
  return 0;
}

/* Appends x unless present (LinkedHashSet.add); NULL is a value too. */
static int set_add(strset_t *s, const char *x) {
  for (size_t i = 0; i < s->n; i++)
    if (s->v[i] == x || (s->v[i] && x && !strcmp(s->v[i], x)))
      return 0;
  return list_push(s, x);
}

/* Groovy truth of a YAML value. */
static bool truthy(wv_arena_t *a, const wv_yaml_node_t *n) {
  if (!n)
    return false;
  if (n->kind != WV_YAML_SCALAR)
    return n->n > 0;
  const char *j = wv_yaml_scalar_java(a, n);
  switch (n->type) {
  case WV_YAML_NULL:
    return false;
  case WV_YAML_STR:
    return n->text[0] != '\0';
  default: /* false, 0 and 0.0 are false */
    return j && strcmp(j, "false") && strcmp(j, "0") && strcmp(j, "0.0") && strcmp(j, "-0.0");
  }
}

/* normaliseDeps0: strings as they are, {pip: [..]} as "pip:<x>"; -1 for anything else. */
static int flatten_deps(wv_arena_t *a, const wv_yaml_node_t *deps, strset_t *out) {
  for (size_t i = 0; i < deps->n; i++) {
    const wv_yaml_node_t *it = deps->items[i];
    if (it->kind == WV_YAML_SCALAR && it->type == WV_YAML_STR) {
      if (list_push(out, it->text))
        return WV_ENOMEM;
      continue;
    }
    if (it->kind != WV_YAML_MAP)
      return -1;
    for (size_t j = 0; j < it->n; j++) {
      const wv_yaml_node_t *k = it->items[2 * j], *v = it->items[2 * j + 1];
      if (strcmp(k->text, "pip") != 0 || v->kind != WV_YAML_SEQ)
        return -1;
      for (size_t e = 0; e < v->n; e++) {
        if (v->items[e]->kind != WV_YAML_SCALAR)
          return -1;
        const char *x = wv_yaml_scalar_java(a, v->items[e]);
        const char *p = x ? wv_arena_sprintf(a, "pip:%s", x) : NULL;
        if (!p || list_push(out, p))
          return WV_ENOMEM;
      }
    }
  }
  return 0;
}

/* Groovy's tokenize(seps): the non-empty pieces; only the first two matter. */
static void split_version(wv_arena_t *a, const char *s, const char **name, const char **version) {
  const char *tok[2] = {NULL, NULL};
  int nt = 0;
  for (const char *p = s; *p && nt < 2;) {
    size_t skip = strspn(p, "=><");
    p += skip;
    size_t len = strcspn(p, "=><");
    if (len)
      tok[nt++] = wv_arena_strndup(a, p, len);
    p += len;
  }
  *name = tok[0], *version = tok[1];
}

/* One dependency entry in the loop of guessCondaRecipeName; -1 gives up on names. */
static int add_tool(wv_arena_t *a, const char *it, bool split, strset_t *names, strset_t *versions,
                    strset_t *per_name) {
  if (!strncmp(it, "pip:", 4) && it[4] && it[4] != ':')
    it += 4;
  if (!strncmp(it, "https://", 8) || !strncmp(it, "http://", 7))
    return 0;
  const char *p = strstr(it, "::");
  if (p)
    it = p + 2;
  if (!*it)
    return -1; /* splitVersion(null) then a NullPointerException in Wave */
  const char *name, *version;
  split_version(a, it, &name, &version);
  if (split) {
    it = name;
    if (set_add(versions, version))
      return WV_ENOMEM;
  } else if (version) {
    it = wv_arena_sprintf(a, "%s-%s", name, version);
    if (!it)
      return WV_ENOMEM;
  }
  if (!it || !*it)
    return 0;
  size_t before = names->n;
  int rc = set_add(names, it);
  if (!rc && names->n > before) /* a new name: remember its own version */
    rc = list_push(per_name, split ? version : NULL);
  return rc;
}

int wv_naming_tools(wv_arena_t *a, const char *conda_yaml, bool split, wv_naming_tools_t *out) {
  memset(out, 0, sizeof *out);
  wv_yaml_node_t *root;
  if (!conda_yaml || !*conda_yaml || wv_yaml_load(a, conda_yaml, strlen(conda_yaml), &root, NULL))
    return 0;
  strset_t names = {.a = a}, versions = {.a = a}, deps = {.a = a}, per_name = {.a = a};
  const wv_yaml_node_t *name = wv_yaml_get(root, "name");
  if (truthy(a, name)) {
    if (name->kind != WV_YAML_SCALAR)
      return 0;
    const char *s = wv_yaml_scalar_java(a, name);
    if (!s || list_push(&names, s) || list_push(&versions, NULL) || list_push(&per_name, NULL))
      return WV_ENOMEM;
  } else {
    const wv_yaml_node_t *d = wv_yaml_get(root, "dependencies");
    if (!d || d->kind != WV_YAML_SEQ)
      return 0;
    int rc = flatten_deps(a, d, &deps);
    for (size_t i = 0; i < deps.n && rc == 0; i++)
      rc = add_tool(a, deps.v[i], split, &names, &versions, &per_name);
    if (rc)
      return rc < 0 ? 0 : rc;
  }
  if (names.n == 0)
    return 0;
  out->names = names.v, out->n = names.n;
  out->distinct_versions = versions.v, out->n_distinct_versions = versions.n;
  out->versions = per_name.v;
  return 0;
}

/* NameVersionPair.friendlyNames / qualifiedNames: join with '_', prune past 5. */
static const char *join_tools(wv_arena_t *a, const char *const *v, size_t n) {
  wv_buf_t b;
  wv_buf_init(&b, 1u << 20);
  size_t take = n <= WV_NAMING_MAX_TOOLS ? n : WV_NAMING_MAX_TOOLS - 1;
  int rc = 0;
  for (size_t i = 0; i < take && !rc; i++)
    rc = wv_buf_printf(&b, "%s%s", i ? "_" : "", v[i]);
  if (!rc && take < n)
    rc = wv_buf_puts(&b, "_pruned");
  const char *r = rc ? NULL : wv_arena_strndup(a, b.data ? b.data : "", b.len);
  wv_buf_free(&b);
  return r;
}

/* Keeps the bytes allowed[c] says yes to. */
static char *filter(wv_arena_t *a, const char *s, bool (*allowed)(unsigned char)) {
  char *r = wv_arena_strdup(a, s), *w = r;
  if (!r)
    return NULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (allowed(*p))
      *w++ = (char)*p;
  *w = '\0';
  return r;
}

static bool is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static bool tag_char(unsigned char c) { return is_alnum(c) || c == '_' || c == '.' || c == '-'; }
static bool name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' ||
         c == '/';
}

/* normalise0 after the character filter: shorten at '_' boundaries, cut, trim. */
static const char *normalise0(wv_arena_t *a, char *s, size_t max) {
  size_t len = strlen(s);
  if (len > max) {
    /* Re-join the '_' tokens (empty ones dropped) until the result passes max. */
    size_t w = 0;
    for (char *p = s; *p && w <= max;) {
      size_t n = strcspn(p, "_");
      if (n) {
        if (w)
          s[w++] = '_';
        memmove(s + w, p, n);
        w += n;
      }
      p += n;
      p += *p == '_';
    }
    s[w] = '\0';
    len = w;
  }
  if (len > max)
    s[len = max] = '\0';
  size_t start = 0;
  while (start < len && !is_alnum((unsigned char)s[start]))
    start++;
  while (len > start && !is_alnum((unsigned char)s[len - 1]))
    len--;
  return len > start ? wv_arena_strndup(a, s + start, len - start) : NULL;
}

const char *wv_naming_normalise_tag(wv_arena_t *a, const char *s) {
  char *f = s ? filter(a, s, tag_char) : NULL;
  return f ? normalise0(a, f, WV_NAMING_MAX_TAG) : NULL;
}

/*
 * Java's toLowerCase, as far as it can matter after the filter: ASCII, plus
 * the two non-ASCII letters whose lower case contains an ASCII letter
 * (U+0130 → "i\u0307", U+212A KELVIN SIGN → "k"); every other non-ASCII
 * character is dropped by the filter whatever its case.
 */
static char *java_lower(wv_arena_t *a, const char *s) {
  char *r = wv_arena_strdup(a, s), *w = r;
  if (!r)
    return NULL;
  for (const char *p = s; *p;) {
    if (!strncmp(p, "\xc4\xb0", 2)) {
      *w++ = 'i', p += 2;
    } else if (!strncmp(p, "\xe2\x84\xaa", 3)) {
      *w++ = 'k', p += 3;
    } else {
      char c = *p++;
      *w++ = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
  }
  *w = '\0';
  return r;
}

const char *wv_naming_normalise_name(wv_arena_t *a, const char *s) {
  if (!s || !*s)
    return NULL;
  char *l = java_lower(a, s);
  char *f = l ? filter(a, l, name_char) : NULL;
  return f ? normalise0(a, f, WV_NAMING_MAX_NAME) : NULL;
}

/* StringUtils.pathConcat: base without trailing '/', then '/' + path. */
static const char *path_concat(wv_arena_t *a, const char *base, const char *path) {
  size_t n = strlen(base);
  while (n > 0 && base[n - 1] == '/' && !(n >= 3 && !strncmp(base + n - 3, "://", 3)))
    n--;
  return wv_arena_sprintf(a, "%.*s%s%s", (int)n, base, path[0] == '/' ? "" : "/", path);
}

int wv_naming_target_image(wv_arena_t *a, bool singularity, const char *repo, const char *id,
                           const char *conda_yaml, wv_naming_strategy_t strategy,
                           const char **out) {
  if (!repo || !*repo || !id || !*id)
    return WV_EINVAL;
  const char *tag = id;
  wv_naming_tools_t t;
  int rc;
  if (strategy == WV_NAMING_DEFAULT || strategy == WV_NAMING_TAG_PREFIX) {
    if ((rc = wv_naming_tools(a, conda_yaml, false, &t)) != 0)
      return rc;
    if (t.n) {
      const char *j = join_tools(a, t.names, t.n);
      const char *norm = j ? wv_naming_normalise_tag(a, j) : NULL;
      tag = wv_arena_sprintf(a, "%s--%s", norm ? norm : "null", id);
    }
  } else if (strategy == WV_NAMING_IMAGE_SUFFIX) {
    if ((rc = wv_naming_tools(a, conda_yaml, true, &t)) != 0)
      return rc;
    if (t.n) {
      const char *j = join_tools(a, t.names, t.n);
      const char *norm = j ? wv_naming_normalise_name(a, j) : NULL;
      /* Wave fails on an empty suffix (pathConcat(repo, null)); we keep the repo. */
      if (norm && !(repo = path_concat(a, repo, norm)))
        return WV_ENOMEM;
      if (t.n_distinct_versions == 1 && t.distinct_versions[0]) {
        const char *v = wv_naming_normalise_tag(a, t.distinct_versions[0]);
        tag = wv_arena_sprintf(a, "%s--%s", v ? v : "null", id);
      }
    }
  }
  if (!tag)
    return WV_ENOMEM;
  *out = wv_arena_sprintf(a, "%s%s:%s", singularity ? "oras://" : "", repo, tag);
  return *out ? 0 : WV_ENOMEM;
}

wv_naming_strategy_t wv_naming_effective_strategy(wv_naming_strategy_t s, const char *repo,
                                                  const char *public_repo) {
  if (s == WV_NAMING_DEFAULT && repo && public_repo && *public_repo &&
      !strncmp(repo, public_repo, strlen(public_repo)))
    return WV_NAMING_IMAGE_SUFFIX;
  return s;
}

int wv_naming_build_repo(wv_arena_t *a, const char *build_repository, bool freeze,
                         const char *default_repo, const char *public_repo,
                         const char *const *reserved, size_t n_reserved,
                         wv_naming_strategy_t strategy, const char **out, const char **msg) {
  bool has_public = public_repo && *public_repo;
  const char *repo = build_repository && *build_repository ? build_repository
                     : freeze && has_public                ? public_repo
                                                           : default_repo;
  if (!repo || !*repo) {
    if (msg)
      *msg = "Missing build repository attribute";
    return WV_EINVAL;
  }
  *out = repo;
  if (!has_public || strncmp(repo, public_repo, strlen(public_repo)) != 0)
    return 0;
  /* Path segments after the host (tokenize('/') drops empty ones). */
  size_t nseg = 0;
  for (const char *p = repo; *p;) {
    size_t n = strcspn(p, "/");
    if (n) {
      for (size_t r = 0; nseg > 0 && r < n_reserved; r++) {
        if (strlen(reserved[r]) == n && !strncmp(p, reserved[r], n)) {
          if (msg)
            *msg = wv_arena_sprintf(a, "Use of repository '%s' is not allowed", repo);
          return WV_EINVAL;
        }
      }
      nseg++;
    }
    p += n;
    p += *p == '/';
  }
  if (nseg <= 1) {
    bool suffix = strategy == WV_NAMING_DEFAULT || strategy == WV_NAMING_IMAGE_SUFFIX;
    *out = wv_arena_sprintf(a, "%s%s", repo, suffix ? "/library" : "/library/build");
  }
  return *out ? 0 : WV_ENOMEM;
}

const char *wv_naming_build_id(wv_arena_t *a, const char *container_id, unsigned long n) {
  return wv_arena_sprintf(a, "bd-%s_%lu", container_id, n);
}

const char *wv_naming_dry_run_id(wv_arena_t *a, const char *container_id) {
  return wv_arena_sprintf(a, "%s_0", container_id);
}

const char *wv_naming_multi_parent_id(wv_arena_t *a, const char *container_id) {
  return wv_arena_sprintf(a, "bd-%s_0", container_id);
}

const char *wv_naming_job_name(wv_arena_t *a, const char *id) {
  char *r = wv_arena_strdup(a, id);
  for (char *p = r; p && *p; p++)
    if (*p == '_')
      *p = '-';
  return r;
}
