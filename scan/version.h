/*
 * scan/version.h — version ordering of each package ecosystem, as the
 * vulnerability matcher needs it (OSV "ECOSYSTEM" and "SEMVER" ranges).
 *
 * Every scheme follows its own tool's rules, not a common approximation:
 *   DPKG    Debian/Ubuntu: [epoch:]upstream[-revision]; '~' sorts before
 *           everything, even the end of the string (1.0~rc1 < 1.0).
 *   APK     Alpine: digits{.digits}[letter]{_suffix[N]}[~hash][-rN];
 *           _alpha/_beta/_pre/_rc sort before the release, _cvs/_svn/_git/
 *           _hg/_p after it.
 *   PEP440  PyPI: [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local], with the
 *           normalisations of PEP 440 (alpha, c, pre, preview, r, rev, '-N').
 *   SEMVER  2.0.0, precedence rules of its item 11 (build metadata ignored); a
 *           leading 'v' and missing minor/patch are tolerated.
 *   CRAN    R package_version: non-negative integers separated by '.' or '-'.
 *   CONDA   conda's VersionOrder (epoch, components split on '.' and '_',
 *           "dev" lowest, "post" highest, numbers above strings).
 *
 * All functions are pure and thread-safe; nothing is allocated.
 */
#ifndef WV_SCAN_VERSION_H
#define WV_SCAN_VERSION_H

#include <stdbool.h>

typedef enum {
  WV_VER_NONE = 0, /* unknown ecosystem: versions cannot be ordered */
  WV_VER_DPKG,
  WV_VER_APK,
  WV_VER_PEP440,
  WV_VER_SEMVER,
  WV_VER_CRAN,
  WV_VER_CONDA,
} wv_vscheme_t;

/*
 * Compares a and b under scheme s: *cmp gets <0, 0 or >0. Returns 0, or
 * WV_EPARSE when either string is not a valid version of the scheme (then
 * *cmp is untouched), WV_EINVAL for WV_VER_NONE or a NULL argument.
 */
int wv_version_compare(wv_vscheme_t s, const char *a, const char *b, int *cmp);

/* True when v is a valid version of scheme s. */
bool wv_version_valid(wv_vscheme_t s, const char *v);

/*
 * The scheme of an OSV ecosystem name ("Debian", "Debian:12", "Alpine:v3.18",
 * "PyPI", "CRAN", "conda", "npm", ...); WV_VER_NONE when unknown. The part
 * after ':' is ignored. Matching of the name is case-insensitive.
 */
wv_vscheme_t wv_version_scheme_of(const char *ecosystem);

/* "dpkg", "apk", "pep440", "semver", "cran", "conda" or "none". */
const char *wv_version_scheme_name(wv_vscheme_t s);

#endif
