/*
 * registry/ref.c — image references (contract §4.3) and the /v2 route grammar
 * (contract §5.2). Pure string work: no I/O, all results in the caller's arena.
 */
#include "registry/ref.h"

#include <stdio.h>
#include <string.h>

#include "core/digest.h"
#include "core/err.h"

#define MSG_IMAGE "Invalid container image name \xE2\x80\x94 offending value: '%s'"
#define MSG_REPO "Invalid container repository name \xE2\x80\x94 offending value: '%s'"
#define MSG_PATH "Invalid request path '%s'"

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
static bool is_word(char c) { return is_alnum(c) || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Sets *msg (when wanted) to a formatted arena string; returns rc, or WV_ENOMEM. */
static int fail(wv_arena_t *a, const char **msg, int rc, const char *fmt, const char *v) {
  if (!msg)
    return rc;
  *msg = wv_arena_sprintf(a, fmt, v);
  return *msg ? rc : WV_ENOMEM;
}

/* distribution: path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.]|__|[-]+ */
static bool is_path_component(const char *s, size_t n) {
  if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
    return false;
  for (size_t i = 0; i < n;) {
    if (is_lower_alnum(s[i])) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && !is_lower_alnum(s[j]))
      j++;
    const char *sep = s + i;
    size_t len = j - i;
    bool dashes = true;
    for (size_t k = 0; k < len; k++)
      dashes = dashes && sep[k] == '-';
    bool ok = dashes || (len == 1 && (sep[0] == '.' || sep[0] == '_')) ||
              (len == 2 && sep[0] == '_' && sep[1] == '_');
    if (!ok)
      return false;
    i = j;
  }
  return true;
}

/* distribution: domain-component := [A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9] */
static bool is_domain_component(const char *s, size_t n) {
  if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_alnum(s[i]) && s[i] != '-')
      return false;
  return true;
}

static bool is_port(const char *s, size_t n) {
  if (n == 0 || n > 5)
    return false;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_digit(s[i]))
      return false;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 65535;
}

static bool registry_ok(const char *s, size_t n) {
  const char *colon = memchr(s, ':', n);
  size_t host = colon ? (size_t)(colon - s) : n;
  if (colon && !is_port(colon + 1, n - host - 1))
    return false;
  size_t start = 0;
  for (size_t i = 0; i <= host; i++) {
    if (i == host || s[i] == '.') {
      if (!is_domain_component(s + start, i - start))
        return false;
      start = i + 1;
    }
  }
  return host > 0;
}

bool wv_ref_is_registry(const char *s) { return s && registry_ok(s, strlen(s)); }

static bool tag_ok(const char *s, size_t n) {
  if (n == 0 || n > 128 || !is_word(s[0]))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!is_word(s[i]) && s[i] != '.' && s[i] != '-')
      return false;
  return true;
}

bool wv_ref_is_tag(const char *s) { return s && tag_ok(s, strlen(s)); }

bool wv_ref_is_digest(const char *s) { return s && wv_digest_valid(s); }

/* Length of a leading "<scheme>://" (RFC 3986 scheme), or 0 when there is none. */
static size_t scheme_len(const char *s) {
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
    return 0;
  size_t i = 1;
  while (is_alnum(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
    i++;
  return strncmp(s + i, "://", 3) == 0 ? i : 0;
}

static bool has_blank_or_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || *s == 0x7f)
      return true;
  return false;
}

/* True when every '/'-separated component of s[0..n) is a distribution path component. */
static bool path_ok(const char *s, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '/') {
      if (!is_path_component(s + start, i - start))
        return false;
      start = i + 1;
    }
  }
  return true;
}

/*
 * Splits the part after any scheme into registry, path and reference.
 * Works on an arena copy so the pieces can be cut in place.
 */
static int split_ref(wv_arena_t *a, char *p, wv_ref_t *r) {
  char *last = strrchr(p, '/');
  last = last ? last + 1 : p;
  char *at = strchr(last, '@');
  char *colon = strchr(last, ':');
  r->reference = "latest";
  r->is_digest = false;
  if (at) {
    *at = '\0';
    r->reference = at + 1;
    r->is_digest = true;
    if (colon && colon < at) /* "name:tag@digest": the digest wins */
      *colon = '\0';
  } else if (colon) {
    *colon = '\0';
    r->reference = colon + 1;
  }
  if (r->is_digest ? !wv_ref_is_digest(r->reference) : !wv_ref_is_tag(r->reference))
    return WV_EINVAL;

  char *slash = strchr(p, '/');
  r->registry = WV_REF_DEFAULT_REGISTRY;
  r->path = p;
  if (slash) {
    size_t n = (size_t)(slash - p);
    if (memchr(p, '.', n) || memchr(p, ':', n) || (n == 9 && memcmp(p, "localhost", 9) == 0)) {
      if (!registry_ok(p, n))
        return WV_EINVAL;
      *slash = '\0';
      r->registry = strcmp(p, "index.docker.io") == 0 ? WV_REF_DEFAULT_REGISTRY : p;
      r->path = slash + 1;
    }
  }
  if (!path_ok(r->path, strlen(r->path)))
    return WV_EINVAL;
  if (strcmp(r->registry, WV_REF_DEFAULT_REGISTRY) == 0 && !strchr(r->path, '/')) {
    r->path = wv_arena_sprintf(a, "library/%s", r->path);
    if (!r->path)
      return WV_ENOMEM;
  }
  if (strlen(r->registry) + 1 + strlen(r->path) > WV_REF_MAX_NAME)
    return WV_EINVAL;
  return 0;
}

int wv_ref_parse(wv_arena_t *a, const char *s, wv_ref_t *out, const char **msg) {
  if (!s)
    s = "";
  const char *shown = strlen(s) > WV_REF_MAX_INPUT ? "(too long)" : s;
  if (!*s || strlen(s) > WV_REF_MAX_INPUT || has_blank_or_control(s))
    return fail(a, msg, WV_EINVAL, MSG_IMAGE, shown);
  wv_ref_t r = {0};
  size_t sl = scheme_len(s);
  if (sl) {
    if (sl != 4 || strncmp(s, "oras", 4) != 0)
      return fail(a, msg, WV_EINVAL, MSG_REPO, s);
    r.scheme = "oras";
  }
  char *p = wv_arena_strdup(a, s + (sl ? sl + 3 : 0));
  if (!p)
    return WV_ENOMEM;
  int rc = split_ref(a, p, &r);
  if (rc == WV_EINVAL)
    return fail(a, msg, rc, MSG_IMAGE, s);
  if (rc)
    return rc;
  *out = r;
  return 0;
}

int wv_ref_check_container_name(wv_arena_t *a, const char *s, wv_ref_t *out, const char **msg) {
  if (s && strlen(s) <= WV_REF_MAX_INPUT && scheme_len(s))
    return fail(a, msg, WV_EINVAL, MSG_REPO, s);
  wv_ref_t r;
  int rc = wv_ref_parse(a, s, &r, msg);
  if (rc == 0 && out)
    *out = r;
  return rc;
}

const char *wv_ref_full_name(wv_arena_t *a, const wv_ref_t *r) {
  return wv_arena_sprintf(a, "%s%s/%s%c%s", r->scheme ? "oras://" : "", r->registry, r->path,
                          r->is_digest ? '@' : ':', r->reference);
}

const char *wv_ref_repository(wv_arena_t *a, const wv_ref_t *r) {
  return wv_arena_sprintf(a, "%s/%s", r->registry, r->path);
}

const char *wv_ref_path_and_ref(wv_arena_t *a, const wv_ref_t *r) {
  return wv_arena_sprintf(a, "%s%c%s", r->path, r->is_digest ? '@' : ':', r->reference);
}

const char *wv_ref_api_host(const char *registry) {
  return strcmp(registry, WV_REF_DEFAULT_REGISTRY) == 0 ? WV_REF_DOCKER_HUB_API : registry;
}

/* localhost, a 127.0.0.0/8 dotted quad and [::1], each with or without a
 * port. "127.example.com" is a DNS name, not loopback. */
bool wv_ref_is_loopback(const char *registry) {
  if (strncmp(registry, "[::1]", 5) == 0)
    return registry[5] == '\0' || registry[5] == ':';
  size_t n = strcspn(registry, ":");
  if (n == 9 && strncmp(registry, "localhost", 9) == 0)
    return true;
  unsigned o[4];
  int used = 0;
  if (n > 15 || sscanf(registry, "%3u.%3u.%3u.%3u%n", &o[0], &o[1], &o[2], &o[3], &used) != 4)
    return false;
  return (size_t)used == n && o[0] == 127 && o[1] < 256 && o[2] < 256 && o[3] < 256;
}

/* ---- /v2 routes ------------------------------------------------------ */

/*
 * comp1/comp := [a-z0-9][a-z0-9_.-]* ; compX := [a-zA-Z0-9][a-zA-Z0-9_.-]*
 * One character is enough, as in distribution's grammar (Wave's regex wants
 * two, which makes images like "r/x" unpullable; see docs/compatibility.md).
 */
static bool route_component(const char *s, size_t n, bool mixed_case) {
  if (n < 1)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool alnum = mixed_case ? is_alnum(c) : is_lower_alnum(c);
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
      return false;
  }
  return true;
}

/*
 * Checks <name> against the spec grammar: the first `strict` components are
 * lower case, the rest may mix case. The plain form has two strict
 * components (comp1, comp). In the token form Wave's regex, when the first
 * image component has upper case, backtracks to match "wt" itself as comp1
 * and the token as comp, so only the token is strict there.
 */
static bool route_name_ok(const char *s, size_t n, size_t strict) {
  size_t start = 0, k = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '/') {
      if (!route_component(s + start, i - start, k >= strict))
        return false;
      k++;
      start = i + 1;
    }
  }
  return true;
}

static bool route_kind(const char *s, size_t n, wv_v2_kind_t *k) {
  static const struct {
    const char *word;
    wv_v2_kind_t kind;
  } kinds[] = {{"manifests", WV_V2_MANIFESTS}, {"blobs", WV_V2_BLOBS}, {"tags", WV_V2_TAGS}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (strlen(kinds[i].word) == n && memcmp(kinds[i].word, s, n) == 0) {
      *k = kinds[i].kind;
      return true;
    }
  }
  return false;
}

const char *wv_route_kind_name(wv_v2_kind_t k) {
  return k == WV_V2_MANIFESTS ? "manifests" : k == WV_V2_BLOBS ? "blobs" : "tags";
}

static bool route_reference_ok(wv_v2_kind_t k, const char *ref, bool *is_digest) {
  *is_digest = wv_ref_is_digest(ref);
  if (k == WV_V2_BLOBS)
    return *is_digest;
  return *is_digest || wv_ref_is_tag(ref);
}

/* Fills r from the arena copy p of the path; WV_EINVAL when it does not match. */
static int split_route(wv_arena_t *a, char *p, wv_v2_route_t *r) {
  bool token_form = strncmp(p, "/v2/wt/", 7) == 0;
  if (strncmp(p, "/v2/", 4) != 0)
    return WV_EINVAL;
  char *name = p + (token_form ? 7 : 4);
  char *ref_slash = strrchr(name, '/');
  if (!ref_slash || ref_slash == name)
    return WV_EINVAL;
  *ref_slash = '\0';
  char *kind_slash = strrchr(name, '/');
  if (!kind_slash || !route_kind(kind_slash + 1, strlen(kind_slash + 1), &r->kind))
    return WV_EINVAL;
  *kind_slash = '\0';
  r->reference = ref_slash + 1;
  if (!route_reference_ok(r->kind, r->reference, &r->is_digest))
    return WV_EINVAL;
  if (!route_name_ok(name, strlen(name), token_form ? 1 : 2))
    return WV_EINVAL;
  r->token = NULL;
  r->registry = NULL;
  r->name = name;
  r->image = name;
  char *first = strchr(name, '/');
  if (token_form) {
    if (!first) /* a token with no image after it */
      return WV_EINVAL;
    r->token = wv_arena_strndup(a, name, (size_t)(first - name));
    if (!r->token)
      return WV_ENOMEM;
    r->name = r->image = first + 1;
  } else if (first && memchr(name, '.', (size_t)(first - name))) {
    r->registry = wv_arena_strndup(a, name, (size_t)(first - name));
    if (!r->registry)
      return WV_ENOMEM;
    r->image = first + 1;
  } else {
    r->registry = WV_REF_DEFAULT_REGISTRY;
  }
  return 0;
}

int wv_route_parse(wv_arena_t *a, const char *path, wv_v2_route_t *out, const char **msg) {
  if (!path)
    path = "";
  if (strlen(path) > WV_REF_MAX_INPUT)
    return fail(a, msg, WV_ENOTFOUND, MSG_PATH, "(too long)");
  char *p = wv_arena_strdup(a, path);
  if (!p)
    return WV_ENOMEM;
  wv_v2_route_t r = {0};
  int rc = split_route(a, p, &r);
  if (rc == WV_EINVAL)
    return fail(a, msg, WV_ENOTFOUND, MSG_PATH, path);
  if (rc)
    return rc;
  *out = r;
  return 0;
}
