/*
 * scan/pkgdb.h — the package databases found in image file systems, and
 * their parsers.
 *
 *   dpkg   /var/lib/dpkg/status (installed paragraphs only) and the
 *          per-package files of /var/lib/dpkg/status.d/ (distroless)
 *   apk    /lib/apk/db/installed
 *   conda  <env>/conda-meta/<name>-<version>-<build>.json, anywhere
 *   PyPI   <x>.dist-info/METADATA, <x>.egg-info/PKG-INFO, or an .egg-info file
 *   CRAN   <library>/<pkg>/DESCRIPTION where <library> is a directory named
 *          "library" or "site-library" (R's own, site, renv and conda libraries)
 *
 * plus /etc/os-release (or /usr/lib/os-release) for the distribution, which
 * names the OSV ecosystem of dpkg packages (Debian or Ubuntu) and the
 * release of distro-specific advisories ("Debian:12", "Alpine:v3.19").
 *
 * Parsers are pure functions over bytes: strings of the packages they report
 * are allocated from the caller's arena and live as long as it does.
 * Malformed content is skipped record by record, never fatal.
 */
#ifndef WV_SCAN_PKGDB_H
#define WV_SCAN_PKGDB_H

#include "core/arena.h"

#include <stddef.h>

typedef enum {
  WV_ECO_DEB = 0,
  WV_ECO_APK,
  WV_ECO_CONDA,
  WV_ECO_PYPI,
  WV_ECO_CRAN,
  WV_ECO_COUNT
} wv_ecosystem_t;

typedef struct {
  wv_ecosystem_t type;
  const char *name;
  const char *version;
  const char *src_name;    /* dpkg Source / apk origin, NULL when the same as name */
  const char *src_version; /* dpkg source version when it differs, else NULL */
  const char *arch;        /* NULL if unknown */
  const char *license;     /* as declared, NULL if unknown */
  const char *path;        /* file it was read from (normalised, no leading '/') */
  const char *ecosystem; /* OSV ecosystem: "Debian", "Ubuntu", "Alpine", "conda", "PyPI", "CRAN" */
  int layer;             /* index of the layer the file came from (0 = base) */
} wv_pkg_t;

typedef enum {
  WV_PKGDB_NONE = 0,
  WV_PKGDB_DPKG_STATUS,
  WV_PKGDB_DPKG_STATUS_D,
  WV_PKGDB_APK,
  WV_PKGDB_CONDA_META,
  WV_PKGDB_PY_METADATA,
  WV_PKGDB_R_DESCRIPTION,
  WV_PKGDB_OS_RELEASE,
} wv_pkgdb_kind_t;

/* Which database (if any) a normalised path is. Pure; never allocates. */
wv_pkgdb_kind_t wv_pkgdb_classify(const char *path);

/* Receives one package (strings from the parser's arena); 0 or a negative code to stop. */
typedef int (*wv_pkg_cb)(void *arg, const wv_pkg_t *p);

/*
 * Parses data[0..len) as a database of kind k read from path; calls cb for
 * each installed package, with type, name, version, path and whatever else
 * the format carries (ecosystem and layer are left for the caller). Returns
 * 0, cb's error, or WV_ENOMEM (arena exhausted). Records that lack a name or
 * version are skipped; *skipped (may be NULL) counts them.
 */
int wv_pkgdb_parse(wv_pkgdb_kind_t k, const char *path, const char *data, size_t len, wv_arena_t *a,
                   wv_pkg_cb cb, void *arg, size_t *skipped);

/*
 * os-release: *id ("debian", "ubuntu", "alpine", ...) and *version_id
 * ("12", "3.19.1"), each NULL when absent. Returns 0 or WV_ENOMEM.
 */
int wv_pkgdb_os_release(const char *data, size_t len, wv_arena_t *a, const char **id,
                        const char **version_id);

/* "deb", "apk", "conda", "pypi", "cran". */
const char *wv_ecosystem_name(wv_ecosystem_t t);

/* PEP 503 normalised name (lowercase, runs of "-_." as one "-") into the arena; NULL on OOM. */
char *wv_pkg_pypi_normalize(wv_arena_t *a, const char *name);

#endif
