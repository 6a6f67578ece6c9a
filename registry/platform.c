/* registry/platform.c — platform normalisation and index matching (contract §4.7). */
#include "registry/platform.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

#define MSG_MISSING "Missing container platform attribute"
#define MSG_UNSUPPORTED "Unsupported container platform: %s"
#define MSG_INVALID "Invalid container platform: %s -- offending value: %s"

static const struct {
  const char *alias;
  const char *canonical;
} arches[] = {
    {"amd64", "amd64"}, {"x86_64", "amd64"},  {"x86-64", "amd64"},
    {"arm64", "arm64"}, {"aarch64", "arm64"}, {"arm", "arm"},
};

/* The canonical arch for an allowed alias, or NULL. */
static const char *arch_lookup(const char *arch, size_t n) {
  for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
    if (strlen(arches[i].alias) == n && memcmp(arches[i].alias, arch, n) == 0)
      return arches[i].canonical;
  return NULL;
}

const char *wv_platform_arch_canonical(const char *arch) {
  const char *c = arch ? arch_lookup(arch, strlen(arch)) : NULL;
  return c ? c : arch;
}

static bool word_ok(const char *s, size_t n) {
  if (n == 0 || n >= WV_PLATFORM_WORD)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

/* Applies the variant rules of contract §4.7 for a canonical arch; writes into out. */
static void normalise_variant(const char *arch, const char *v, char out[WV_PLATFORM_WORD]) {
  if (strcmp(arch, "arm64") == 0 && (strcmp(v, "v8") == 0 || strcmp(v, "8") == 0))
    v = "";
  else if (strcmp(arch, "arm") == 0 && (!*v || strcmp(v, "7") == 0))
    v = "v7";
  else if (strcmp(arch, "arm") == 0 && (!strcmp(v, "5") || !strcmp(v, "6") || !strcmp(v, "8"))) {
    snprintf(out, WV_PLATFORM_WORD, "v%s", v);
    return;
  }
  snprintf(out, WV_PLATFORM_WORD, "%s", v);
}

static int fail(wv_arena_t *a, const char **msg, const char *fmt, const char *v) {
  if (msg) {
    *msg = wv_arena_sprintf(a, fmt, v, v);
    if (!*msg)
      return WV_ENOMEM;
  }
  return WV_EINVAL;
}

/* Splits s[0..n) on '/' skipping empty segments; returns the count (up to 4). */
static size_t split_segments(const char *s, size_t n, const char *seg[4], size_t len[4]) {
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && s[j] != '/')
      j++;
    if (j > i) {
      if (k == 4)
        return 5;
      seg[k] = s + i;
      len[k++] = j - i;
    }
    i = j + 1;
  }
  return k;
}

/* Parses s[0..n); `whole` is the text quoted in messages. */
static int parse_one(wv_arena_t *a, const char *s, size_t n, wv_platform_t *out, const char **msg) {
  const char *seg[4];
  size_t len[4];
  char *text = wv_arena_strndup(a, s, n);
  if (!text)
    return WV_ENOMEM;
  size_t k = split_segments(s, n, seg, len);
  if (k == 0)
    return fail(a, msg, MSG_MISSING, NULL);
  if (k > 3)
    return fail(a, msg, MSG_INVALID, text);
  size_t ai = k == 1 ? 0 : 1;
  const char *arch = arch_lookup(seg[ai], len[ai]);
  if (!arch) {
    char *bad = wv_arena_strndup(a, seg[ai], len[ai]);
    return bad ? fail(a, msg, MSG_UNSUPPORTED, bad) : WV_ENOMEM;
  }
  if ((k > 1 && !word_ok(seg[0], len[0])) || (k == 3 && !word_ok(seg[2], len[2])))
    return fail(a, msg, MSG_UNSUPPORTED, text);
  wv_platform_t p = {0};
  snprintf(p.os, sizeof p.os, "%.*s", k == 1 ? 5 : (int)len[0], k == 1 ? "linux" : seg[0]);
  snprintf(p.arch, sizeof p.arch, "%s", arch);
  char variant[WV_PLATFORM_WORD] = "";
  if (k == 3)
    snprintf(variant, sizeof variant, "%.*s", (int)len[2], seg[2]);
  normalise_variant(p.arch, variant, p.variant);
  *out = p;
  return 0;
}

static size_t trim(const char **s, size_t n) {
  while (n > 0 && (**s == ' ' || **s == '\t')) {
    (*s)++;
    n--;
  }
  while (n > 0 && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
    n--;
  return n;
}

int wv_platform_parse(wv_arena_t *a, const char *s, wv_platform_t *out, const char **msg) {
  if (!s || !*s)
    return fail(a, msg, MSG_MISSING, NULL);
  size_t n = trim(&s, strlen(s));
  return parse_one(a, s, n, out, msg);
}

int wv_platform_parse_list(wv_arena_t *a, const char *s, wv_platform_list_t *out,
                           const char **msg) {
  if (!s || !*s)
    return fail(a, msg, MSG_MISSING, NULL);
  wv_platform_list_t l = {0};
  for (const char *p = s;;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    const char *item = p;
    n = trim(&item, n);
    if (n > 0) { /* Wave tokenises on ',' too: empty items vanish */
      if (l.n == WV_PLATFORM_MAX) {
        int rc = fail(a, msg, MSG_UNSUPPORTED, s);
        return rc == WV_EINVAL ? WV_ETOOBIG : rc;
      }
      int rc = parse_one(a, item, n, &l.items[l.n], msg);
      if (rc)
        return rc;
      l.n++;
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  if (l.n == 0)
    return fail(a, msg, MSG_MISSING, NULL);
  *out = l;
  return 0;
}

size_t wv_platform_format(const wv_platform_t *p, char *buf, size_t size) {
  int n = snprintf(buf, size, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
  return n < 0 ? 0 : (size_t)n;
}

const char *wv_platform_list_format(wv_arena_t *a, const wv_platform_list_t *l) {
  char *s = wv_arena_alloc(a, l->n * (WV_PLATFORM_STR + 1) + 1);
  if (!s)
    return NULL;
  size_t off = 0;
  s[0] = '\0';
  for (size_t i = 0; i < l->n; i++) {
    if (i)
      s[off++] = ',';
    off += wv_platform_format(&l->items[i], s + off, WV_PLATFORM_STR);
  }
  return s;
}

bool wv_platform_equal(const wv_platform_t *x, const wv_platform_t *y) {
  return !strcmp(x->os, y->os) && !strcmp(x->arch, y->arch) && !strcmp(x->variant, y->variant);
}

bool wv_platform_match_entry(const wv_platform_t *want, const char *os, const char *arch,
                             const char *variant) {
  if (!os || !arch || strcmp(want->os, os) != 0)
    return false;
  const char *canon = wv_platform_arch_canonical(arch);
  if (strcmp(want->arch, canon) != 0)
    return false;
  char v[WV_PLATFORM_WORD];
  if (variant && strlen(variant) >= sizeof v)
    return false;
  normalise_variant(canon, variant ? variant : "", v);
  return strcmp(want->variant, v) == 0;
}

bool wv_platform_list_match_entry(const wv_platform_list_t *want, const char *os, const char *arch,
                                  const char *variant) {
  for (size_t i = 0; i < want->n; i++)
    if (wv_platform_match_entry(&want->items[i], os, arch, variant))
      return true;
  return false;
}
