/*
 * scan/version.c — the version orders of dpkg, apk, PEP 440, SemVer, CRAN
 * and conda. Each scheme parses into a small fixed-size structure (hard caps:
 * VMAX bytes, MAXPARTS components) and compares structures; nothing
 * is allocated. A string past a cap is "not a version" (WV_EPARSE), which the
 * matcher treats as "cannot decide", never as "not affected" silently.
 */
#include "scan/version.h"

#include "core/err.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#define VMAX 256 /* longest version string accepted */
#define MAXPARTS 32

static int sign(long long x) { return (x > 0) - (x < 0); }

/* Compares two digit strings numerically, whatever their length. */
static int numcmp(const char *a, size_t an, const char *b, size_t bn) {
  while (an > 0 && *a == '0')
    a++, an--;
  while (bn > 0 && *b == '0')
    b++, bn--;
  if (an != bn)
    return an < bn ? -1 : 1;
  if (an == 0) /* both empty (an absent number may be NULL) */
    return 0;
  int c = memcmp(a, b, an);
  return sign(c);
}

static size_t digits(const char *p) {
  size_t n = 0;
  while (isdigit((unsigned char)p[n]))
    n++;
  return n;
}

/* ---------------------------------------------------------------- dpkg */

/* dpkg's character weight: '~' below the end of string, letters below the rest. */
static int dpkg_order(int c) {
  if (isdigit(c))
    return 0;
  if (isalpha(c))
    return c;
  if (c == '~')
    return -1;
  if (c)
    return c + 256;
  return 0;
}

/* dpkg's verrevcmp over [a, ae) and [b, be). */
static int dpkg_verrev(const char *a, const char *ae, const char *b, const char *be) {
  while (a < ae || b < be) {
    while ((a < ae && !isdigit((unsigned char)*a)) || (b < be && !isdigit((unsigned char)*b))) {
      int ac = a < ae ? dpkg_order((unsigned char)*a) : 0;
      int bc = b < be ? dpkg_order((unsigned char)*b) : 0;
      if (ac != bc)
        return ac < bc ? -1 : 1;
      a++, b++;
    }
    const char *da = a, *db = b;
    while (a < ae && isdigit((unsigned char)*a))
      a++;
    while (b < be && isdigit((unsigned char)*b))
      b++;
    int c = numcmp(da, (size_t)(a - da), db, (size_t)(b - db));
    if (c)
      return c;
  }
  return 0;
}

typedef struct {
  const char *epoch, *up, *upe, *rev, *reve;
  size_t epoch_len;
} dpkg_v;

static int dpkg_allowed(int c, bool upstream) {
  return isalnum(c) || c == '.' || c == '+' || c == '~' || (upstream && (c == '-' || c == ':'));
}

static int dpkg_parse(const char *s, dpkg_v *v) {
  size_t n = strlen(s);
  if (n == 0 || n > VMAX)
    return WV_EPARSE;
  const char *end = s + n, *colon = strchr(s, ':');
  v->epoch = s;
  v->epoch_len = 0;
  v->up = s;
  if (colon) {
    v->epoch_len = (size_t)(colon - s);
    if (v->epoch_len == 0 || digits(s) != v->epoch_len)
      return WV_EPARSE;
    v->up = colon + 1;
  }
  const char *dash = memrchr(v->up, '-', (size_t)(end - v->up));
  v->upe = dash ? dash : end;
  v->rev = dash ? dash + 1 : end;
  v->reve = end;
  if (v->upe == v->up || (dash && v->rev == end))
    return WV_EPARSE;
  for (const char *p = v->up; p < v->upe; p++)
    if (!dpkg_allowed((unsigned char)*p, true))
      return WV_EPARSE;
  for (const char *p = v->rev; p < v->reve; p++)
    if (!dpkg_allowed((unsigned char)*p, false))
      return WV_EPARSE;
  return 0;
}

static int dpkg_cmp(const char *a, const char *b, int *out) {
  dpkg_v va, vb;
  if (dpkg_parse(a, &va) || dpkg_parse(b, &vb))
    return WV_EPARSE;
  int c = numcmp(va.epoch, va.epoch_len, vb.epoch, vb.epoch_len);
  if (!c)
    c = dpkg_verrev(va.up, va.upe, vb.up, vb.upe);
  if (!c) /* an absent revision compares like "0", as in dpkg */
    c = dpkg_verrev(va.rev, va.reve, vb.rev, vb.reve);
  *out = c;
  return 0;
}

/* ---------------------------------------------------------------- apk */

/* Token kinds in apk's order: a later kind at the first difference means "older". */
enum { AT_DIGIT = 1, AT_LETTER, AT_SUFFIX, AT_SUFFIX_NO, AT_HASH, AT_REV, AT_END };

typedef struct {
  int type;
  const char *s; /* digits or hash text */
  size_t n;
  int val; /* letter, or suffix rank (negative = pre-release) */
} apk_tok;

static const char *const apk_pre[] = {"alpha", "beta", "pre", "rc"};
static const char *const apk_post[] = {"cvs", "svn", "git", "hg", "p"};

/* Matches a suffix name at p; returns its length and rank, or 0. */
static size_t apk_suffix(const char *p, int *rank) {
  size_t best = 0;
  for (size_t i = 0; i < 4; i++) {
    size_t l = strlen(apk_pre[i]);
    if (strncmp(p, apk_pre[i], l) == 0 && l > best)
      best = l, *rank = (int)i - 4;
  }
  for (size_t i = 0; i < 5; i++) {
    size_t l = strlen(apk_post[i]);
    if (strncmp(p, apk_post[i], l) == 0 && l > best)
      best = l, *rank = (int)i + 1;
  }
  return best;
}

/* Grammar: digits{.digits}[letter]{_suffix[digits]}[~hash][-rdigits]. */
static int apk_parse(const char *s, apk_tok *t, size_t *nt) {
  size_t n = 0, len = strlen(s);
  if (len == 0 || len > VMAX)
    return WV_EPARSE;
  const char *p = s;
  int prev = 0;
  for (;;) {
    if (n + 3 >= MAXPARTS)
      return WV_EPARSE;
    apk_tok *k = &t[n];
    memset(k, 0, sizeof *k);
    if (prev == 0 || (prev == AT_DIGIT && *p == '.')) {
      p += prev ? 1 : 0;
      k->type = AT_DIGIT, k->s = p, k->n = digits(p);
      if (!k->n)
        return WV_EPARSE;
      p += k->n;
    } else if (prev == AT_DIGIT && islower((unsigned char)*p)) {
      k->type = AT_LETTER, k->val = *p++;
    } else if (*p == '_' && prev < AT_HASH) {
      size_t l = apk_suffix(p + 1, &k->val);
      if (!l)
        return WV_EPARSE;
      k->type = AT_SUFFIX;
      p += 1 + l;
      if (isdigit((unsigned char)*p)) {
        t[n++] = *k;
        k = &t[n];
        memset(k, 0, sizeof *k);
        k->type = AT_SUFFIX_NO, k->s = p, k->n = digits(p);
        p += k->n;
      }
    } else if (*p == '~' && prev < AT_HASH) {
      k->type = AT_HASH, k->s = ++p;
      while (isxdigit((unsigned char)*p))
        p++;
      k->n = (size_t)(p - k->s);
      if (!k->n)
        return WV_EPARSE;
    } else if (*p == '-' && p[1] == 'r' && prev < AT_REV) {
      p += 2;
      k->type = AT_REV, k->s = p, k->n = digits(p);
      if (!k->n)
        return WV_EPARSE;
      p += k->n;
    } else if (*p == '\0') {
      k->type = AT_END;
      *nt = n + 1;
      return 0;
    } else {
      return WV_EPARSE;
    }
    prev = t[n].type;
    n++;
  }
}

static int apk_tokcmp(const apk_tok *a, const apk_tok *b, bool first) {
  switch (a->type) {
  case AT_DIGIT:
    /* Like apk: a later component with a leading zero is a decimal fraction. */
    if (!first && (a->s[0] == '0' || b->s[0] == '0')) {
      size_t m = a->n < b->n ? a->n : b->n;
      int c = memcmp(a->s, b->s, m);
      return c ? sign(c) : sign((long long)a->n - (long long)b->n);
    }
    return numcmp(a->s, a->n, b->s, b->n);
  case AT_SUFFIX_NO:
  case AT_REV:
    return numcmp(a->s, a->n, b->s, b->n);
  case AT_HASH: {
    size_t m = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->s, b->s, m);
    return c ? sign(c) : sign((long long)a->n - (long long)b->n);
  }
  default:
    return sign((long long)a->val - b->val);
  }
}

static int apk_cmp(const char *a, const char *b, int *out) {
  apk_tok ta[MAXPARTS], tb[MAXPARTS];
  size_t na, nb;
  if (apk_parse(a, ta, &na) || apk_parse(b, tb, &nb))
    return WV_EPARSE;
  size_t i = 0;
  for (; ta[i].type == tb[i].type && ta[i].type != AT_END; i++) {
    int c = apk_tokcmp(&ta[i], &tb[i], i == 0);
    if (c) {
      *out = c;
      return 0;
    }
  }
  const apk_tok *x = &ta[i], *y = &tb[i];
  if (x->type == y->type)
    *out = 0;
  else if (x->type == AT_SUFFIX && x->val < 0)
    *out = -1; /* 1.0_rc1 < 1.0 */
  else if (y->type == AT_SUFFIX && y->val < 0)
    *out = 1;
  else /* the one that goes on with a "lower" token is newer: 1.0.1 > 1.0a > 1.0 */
    *out = x->type > y->type ? -1 : 1;
  return 0;
}

/* ---------------------------------------------------------------- PEP 440 */

enum { PRE_DEVONLY = -2, PRE_A = 0, PRE_B = 1, PRE_RC = 2, PRE_NONE = 3 };

typedef struct {
  const char *epoch;
  size_t epoch_n;
  const char *rel[MAXPARTS];
  size_t rel_n[MAXPARTS];
  size_t nrel;
  int pre;
  const char *pre_num, *post_num, *dev_num;
  size_t pre_num_n, post_num_n, dev_num_n;
  bool has_post, has_dev;
  const char *local;
  size_t local_n;
} pep_v;

static bool pep_sep(int c) { return c == '-' || c == '_' || c == '.'; }

/* Matches one of the labels at *p case-insensitively (longest first is the caller's order). */
static int pep_label(const char **p, const char *const *labels, size_t n) {
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(labels[i]);
    if (strncasecmp(*p, labels[i], l) == 0) {
      *p += l;
      return (int)i;
    }
  }
  return -1;
}

/* [sep]label[sep][digits]; on no match leaves *p alone and returns -1. */
static int pep_segment(const char **p, const char *const *labels, size_t n, const char **num,
                       size_t *num_n) {
  const char *q = *p;
  if (pep_sep((unsigned char)*q))
    q++;
  int which = pep_label(&q, labels, n);
  if (which < 0)
    return -1;
  const char *r = q;
  if (pep_sep((unsigned char)*r) && isdigit((unsigned char)r[1]))
    r++;
  *num = r;
  *num_n = digits(r);
  *p = *num_n ? r + *num_n : q;
  return which;
}

static int pep_parse(const char *s, pep_v *v) {
  static const char *const pre_l[] = {"alpha", "a", "beta", "b", "preview", "pre", "c", "rc"};
  static const int pre_k[] = {PRE_A, PRE_A, PRE_B, PRE_B, PRE_RC, PRE_RC, PRE_RC, PRE_RC};
  static const char *const post_l[] = {"post", "rev", "r"};
  static const char *const dev_l[] = {"dev"};
  memset(v, 0, sizeof *v);
  size_t len = strlen(s);
  if (len > VMAX)
    return WV_EPARSE;
  const char *p = s;
  while (isspace((unsigned char)*p))
    p++;
  if (*p == 'v' || *p == 'V')
    p++;
  size_t d = digits(p);
  if (d && p[d] == '!') {
    v->epoch = p, v->epoch_n = d;
    p += d + 1;
  }
  for (;;) {
    d = digits(p);
    if (!d || v->nrel == MAXPARTS)
      return WV_EPARSE;
    v->rel[v->nrel] = p, v->rel_n[v->nrel++] = d;
    p += d;
    if (!(*p == '.' && isdigit((unsigned char)p[1])))
      break;
    p++;
  }
  v->pre = PRE_NONE;
  int k = pep_segment(&p, pre_l, 8, &v->pre_num, &v->pre_num_n);
  if (k >= 0)
    v->pre = pre_k[k];
  if (*p == '-' && isdigit((unsigned char)p[1])) {
    v->has_post = true, v->post_num = p + 1, v->post_num_n = digits(p + 1);
    p += 1 + v->post_num_n;
  } else if (pep_segment(&p, post_l, 3, &v->post_num, &v->post_num_n) >= 0) {
    v->has_post = true;
  }
  if (pep_segment(&p, dev_l, 1, &v->dev_num, &v->dev_num_n) >= 0)
    v->has_dev = true;
  if (*p == '+') {
    v->local = ++p;
    while (isalnum((unsigned char)*p) ||
           (pep_sep((unsigned char)*p) && isalnum((unsigned char)p[1])))
      p++;
    v->local_n = (size_t)(p - v->local);
    if (!v->local_n)
      return WV_EPARSE;
  }
  while (isspace((unsigned char)*p))
    p++;
  if (*p)
    return WV_EPARSE;
  if (v->pre == PRE_NONE && !v->has_post && v->has_dev)
    v->pre = PRE_DEVONLY; /* 1.0.dev1 sorts before 1.0a1 */
  while (v->nrel > 1 && numcmp(v->rel[v->nrel - 1], v->rel_n[v->nrel - 1], "0", 1) == 0)
    v->nrel--; /* 1.0 == 1.0.0 */
  return 0;
}

/* Local segments: numbers above strings, strings case-insensitively, longer wins a tie. */
static int pep_local_cmp(const char *a, size_t an, const char *b, size_t bn) {
  const char *ae = a + an, *be = b + bn;
  while (a < ae && b < be) {
    const char *x = a, *y = b;
    while (a < ae && isalnum((unsigned char)*a))
      a++;
    while (b < be && isalnum((unsigned char)*b))
      b++;
    size_t xn = (size_t)(a - x), yn = (size_t)(b - y);
    bool xd = digits(x) >= xn, yd = digits(y) >= yn;
    int c;
    if (xd && yd)
      c = numcmp(x, xn, y, yn);
    else if (xd != yd)
      c = xd ? 1 : -1;
    else {
      size_t m = xn < yn ? xn : yn;
      c = strncasecmp(x, y, m);
      c = c ? sign(c) : sign((long long)xn - (long long)yn);
    }
    if (c)
      return c;
    if (a < ae)
      a++;
    if (b < be)
      b++;
  }
  return (a < ae) - (b < be);
}

/* An optional number: absent sorts as `absent` (-1 = below 0, 1 = above all). */
static int optnum_cmp(bool ha, const char *a, size_t an, bool hb, const char *b, size_t bn,
                      int absent) {
  if (!ha || !hb)
    return ha == hb ? 0 : (!ha ? absent : -absent);
  return numcmp(a, an, b, bn);
}

static int pep_cmp(const char *a, const char *b, int *out) {
  pep_v x, y;
  if (pep_parse(a, &x) || pep_parse(b, &y))
    return WV_EPARSE;
  int c = numcmp(x.epoch, x.epoch_n, y.epoch, y.epoch_n);
  for (size_t i = 0; !c && i < x.nrel && i < y.nrel; i++)
    c = numcmp(x.rel[i], x.rel_n[i], y.rel[i], y.rel_n[i]);
  if (!c)
    c = sign((long long)x.nrel - (long long)y.nrel);
  if (!c)
    c = sign(x.pre - y.pre);
  if (!c && x.pre >= PRE_A && x.pre <= PRE_RC)
    c = numcmp(x.pre_num, x.pre_num_n, y.pre_num, y.pre_num_n);
  if (!c)
    c = optnum_cmp(x.has_post, x.post_num, x.post_num_n, y.has_post, y.post_num, y.post_num_n, -1);
  if (!c)
    c = optnum_cmp(x.has_dev, x.dev_num, x.dev_num_n, y.has_dev, y.dev_num, y.dev_num_n, 1);
  if (!c)
    c = (x.local_n || y.local_n) ? (!x.local_n ? -1 : !y.local_n ? 1 : 0) : 0;
  if (!c && x.local_n)
    c = pep_local_cmp(x.local, x.local_n, y.local, y.local_n);
  *out = c;
  return 0;
}

/* ---------------------------------------------------------------- SemVer */

typedef struct {
  const char *core[3];
  size_t core_n[3];
  const char *pre;
  size_t pre_n;
} sem_v;

static bool sem_ident(int c) { return isalnum(c) || c == '-'; }

static int sem_parse(const char *s, sem_v *v) {
  memset(v, 0, sizeof *v);
  if (strlen(s) > VMAX)
    return WV_EPARSE;
  const char *p = s;
  if (*p == 'v' || *p == 'V')
    p++;
  for (int i = 0; i < 3; i++) {
    size_t d = digits(p);
    if (!d)
      return WV_EPARSE;
    v->core[i] = p, v->core_n[i] = d;
    p += d;
    if (*p != '.')
      break;
    p++;
  }
  if (*p == '-') {
    v->pre = ++p;
    while (sem_ident((unsigned char)*p) || (*p == '.' && sem_ident((unsigned char)p[1])))
      p++;
    v->pre_n = (size_t)(p - v->pre);
    if (!v->pre_n)
      return WV_EPARSE;
  }
  if (*p == '+') {
    p++;
    while (sem_ident((unsigned char)*p) || *p == '.')
      p++;
  }
  return *p ? WV_EPARSE : 0;
}

static int sem_pre_cmp(const char *a, size_t an, const char *b, size_t bn) {
  const char *ae = a + an, *be = b + bn;
  while (a < ae && b < be) {
    const char *x = a, *y = b;
    while (a < ae && *a != '.')
      a++;
    while (b < be && *b != '.')
      b++;
    size_t xn = (size_t)(a - x), yn = (size_t)(b - y);
    bool xd = digits(x) >= xn, yd = digits(y) >= yn;
    int c;
    if (xd && yd)
      c = numcmp(x, xn, y, yn);
    else if (xd != yd)
      c = xd ? -1 : 1; /* numeric identifiers sort below alphanumeric ones */
    else {
      size_t m = xn < yn ? xn : yn;
      c = memcmp(x, y, m);
      c = c ? sign(c) : sign((long long)xn - (long long)yn);
    }
    if (c)
      return c;
    if (a < ae)
      a++;
    if (b < be)
      b++;
  }
  return (a < ae) - (b < be);
}

static int sem_cmp(const char *a, const char *b, int *out) {
  sem_v x, y;
  if (sem_parse(a, &x) || sem_parse(b, &y))
    return WV_EPARSE;
  int c = 0;
  for (int i = 0; i < 3 && !c; i++)
    c = numcmp(x.core[i] ? x.core[i] : "0", x.core[i] ? x.core_n[i] : 1,
               y.core[i] ? y.core[i] : "0", y.core[i] ? y.core_n[i] : 1);
  if (!c && (x.pre_n || y.pre_n))
    c = !x.pre_n ? 1 : !y.pre_n ? -1 : sem_pre_cmp(x.pre, x.pre_n, y.pre, y.pre_n);
  *out = c;
  return 0;
}

/* ---------------------------------------------------------------- CRAN */

static int cran_cmp(const char *a, const char *b, int *out) {
  if (!isdigit((unsigned char)*a) || !isdigit((unsigned char)*b) || strlen(a) > VMAX ||
      strlen(b) > VMAX)
    return WV_EPARSE;
  int c = 0;
  for (;;) {
    size_t an = digits(a), bn = digits(b);
    if ((*a && !an) || (*b && !bn))
      return WV_EPARSE;
    if (!an || !bn) { /* R: the longer version is the newer (1.0 < 1.0.0) */
      c = c ? c : sign((long long)an - (long long)bn);
      break;
    }
    if (!c)
      c = numcmp(a, an, b, bn);
    a += an, b += bn;
    bool sa = *a == '.' || *a == '-', sb = *b == '.' || *b == '-';
    if ((*a && !sa) || (*b && !sb))
      return WV_EPARSE;
    a += sa, b += sb;
    if ((sa && !*a) || (sb && !*b))
      return WV_EPARSE;
  }
  *out = c;
  return 0;
}

/* ---------------------------------------------------------------- conda */

/* One element of a conda component: a string, a number, or "post" (above all). */
typedef struct {
  int kind; /* 0 string, 1 number, 2 post */
  const char *s;
  size_t n;
} conda_el;

typedef struct {
  conda_el el[MAXPARTS * 2];
  int comp[MAXPARTS * 2]; /* component index of each element */
  size_t nel, ncomp;
} conda_part;

/* Splits [s, e) on '.' and '_' into components of digit / non-digit runs. */
static int conda_split(const char *s, const char *e, conda_part *v) {
  v->nel = v->ncomp = 0;
  if (s == e)
    return 0;
  bool trailing_us = e - s > 1 && e[-1] == '_';
  if (trailing_us)
    e--;
  const char *p = s;
  for (;;) {
    const char *c0 = p;
    while (p < e && *p != '.' && *p != '_') {
      if (v->nel + 2 >= MAXPARTS * 2)
        return WV_EPARSE;
      conda_el *x = &v->el[v->nel];
      x->s = p;
      if (isdigit((unsigned char)*p)) {
        while (p < e && isdigit((unsigned char)*p))
          p++;
        x->kind = 1;
      } else {
        if (p == c0) { /* a component starting with a letter gets a 0 in front */
          v->el[v->nel] = (conda_el){1, "0", 1};
          v->comp[v->nel++] = (int)v->ncomp;
          x = &v->el[v->nel];
          x->s = p;
        }
        while (p < e && !isdigit((unsigned char)*p) && *p != '.' && *p != '_') {
          if (!isalnum((unsigned char)*p) && *p != '*')
            return WV_EPARSE;
          p++;
        }
        x->kind = (p - x->s == 4 && strncasecmp(x->s, "post", 4) == 0) ? 2 : 0;
      }
      x->n = (size_t)(p - x->s);
      v->comp[v->nel++] = (int)v->ncomp;
    }
    if (p == c0)
      return WV_EPARSE; /* empty component: "1..2" */
    v->ncomp++;
    if (p == e)
      break;
    p++;
  }
  if (trailing_us) /* openssl-like "1.0.1_": between 1.0.1dev and 1.0.1a */
    v->el[v->nel] = (conda_el){0, "_", 1}, v->comp[v->nel++] = (int)v->ncomp - 1;
  return 0;
}

/* "dev" sorts below every other string (conda upper-cases it); else case-insensitive. */
static int conda_strcmp(const conda_el *a, const conda_el *b) {
  bool ad = a->n == 3 && strncasecmp(a->s, "dev", 3) == 0;
  bool bd = b->n == 3 && strncasecmp(b->s, "dev", 3) == 0;
  if (ad || bd)
    return ad == bd ? 0 : (ad ? -1 : 1);
  for (size_t i = 0; i < a->n && i < b->n; i++) {
    int x = tolower((unsigned char)a->s[i]), y = tolower((unsigned char)b->s[i]);
    if (x != y)
      return x < y ? -1 : 1;
  }
  return sign((long long)a->n - (long long)b->n);
}

static int conda_elcmp(const conda_el *a, const conda_el *b) {
  if (a->kind != b->kind)
    return a->kind < b->kind ? -1 : 1;
  if (a->kind == 1)
    return numcmp(a->s, a->n, b->s, b->n);
  return a->kind == 0 ? conda_strcmp(a, b) : 0;
}

static int conda_part_cmp(const conda_part *a, const conda_part *b) {
  static const conda_el zero = {1, "0", 1};
  size_t ia = 0, ib = 0;
  size_t nc = a->ncomp > b->ncomp ? a->ncomp : b->ncomp;
  for (size_t c = 0; c < nc; c++) {
    while ((ia < a->nel && a->comp[ia] == (int)c) || (ib < b->nel && b->comp[ib] == (int)c)) {
      const conda_el *x = (ia < a->nel && a->comp[ia] == (int)c) ? &a->el[ia++] : &zero;
      const conda_el *y = (ib < b->nel && b->comp[ib] == (int)c) ? &b->el[ib++] : &zero;
      int r = conda_elcmp(x, y);
      if (r)
        return r;
    }
  }
  return 0;
}

static int conda_parse(const char *s, const char **epoch, size_t *epoch_n, conda_part *main_,
                       conda_part *local) {
  size_t len = strlen(s);
  if (len == 0 || len > VMAX)
    return WV_EPARSE;
  const char *e = s + len, *bang = strchr(s, '!'), *plus = strchr(s, '+');
  *epoch = "0", *epoch_n = 1;
  if (bang) {
    if (digits(s) != (size_t)(bang - s) || bang == s)
      return WV_EPARSE;
    *epoch = s, *epoch_n = (size_t)(bang - s);
    s = bang + 1;
  }
  const char *me = plus ? plus : e;
  if (me == s || conda_split(s, me, main_))
    return WV_EPARSE;
  if (plus && (plus + 1 == e || conda_split(plus + 1, e, local)))
    return WV_EPARSE;
  if (!plus)
    local->nel = local->ncomp = 0;
  return 0;
}

static int conda_cmp(const char *a, const char *b, int *out) {
  conda_part ma, la, mb, lb;
  const char *ea, *eb;
  size_t ean, ebn;
  if (conda_parse(a, &ea, &ean, &ma, &la) || conda_parse(b, &eb, &ebn, &mb, &lb))
    return WV_EPARSE;
  int c = numcmp(ea, ean, eb, ebn);
  if (!c)
    c = conda_part_cmp(&ma, &mb);
  if (!c)
    c = conda_part_cmp(&la, &lb);
  *out = c;
  return 0;
}

/* ---------------------------------------------------------------- public */

int wv_version_compare(wv_vscheme_t s, const char *a, const char *b, int *cmp) {
  if (!a || !b || !cmp)
    return WV_EINVAL;
  int c = 0, rc;
  switch (s) {
  case WV_VER_DPKG:
    rc = dpkg_cmp(a, b, &c);
    break;
  case WV_VER_APK:
    rc = apk_cmp(a, b, &c);
    break;
  case WV_VER_PEP440:
    rc = pep_cmp(a, b, &c);
    break;
  case WV_VER_SEMVER:
    rc = sem_cmp(a, b, &c);
    break;
  case WV_VER_CRAN:
    rc = cran_cmp(a, b, &c);
    break;
  case WV_VER_CONDA:
    rc = conda_cmp(a, b, &c);
    break;
  default:
    return WV_EINVAL;
  }
  if (!rc)
    *cmp = c < 0 ? -1 : c > 0;
  return rc;
}

bool wv_version_valid(wv_vscheme_t s, const char *v) {
  int c;
  return v && wv_version_compare(s, v, v, &c) == 0;
}

wv_vscheme_t wv_version_scheme_of(const char *eco) {
  static const struct {
    const char *name;
    wv_vscheme_t s;
  } map[] = {
      {"Debian", WV_VER_DPKG}, {"Ubuntu", WV_VER_DPKG},      {"Alpine", WV_VER_APK},
      {"Wolfi", WV_VER_APK},   {"Chainguard", WV_VER_APK},   {"PyPI", WV_VER_PEP440},
      {"CRAN", WV_VER_CRAN},   {"conda", WV_VER_CONDA},      {"npm", WV_VER_SEMVER},
      {"Go", WV_VER_SEMVER},   {"crates.io", WV_VER_SEMVER}, {"Hex", WV_VER_SEMVER},
      {"Pub", WV_VER_SEMVER},  {"NuGet", WV_VER_SEMVER},
  };
  if (!eco)
    return WV_VER_NONE;
  size_t n = strcspn(eco, ":");
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strlen(map[i].name) == n && strncasecmp(eco, map[i].name, n) == 0)
      return map[i].s;
  return WV_VER_NONE;
}

const char *wv_version_scheme_name(wv_vscheme_t s) {
  static const char *const names[] = {"none", "dpkg", "apk", "pep440", "semver", "cran", "conda"};
  return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "none";
}
