/*
 * scan/osv.h — vulnerability data in OSV format: import into the state store,
 * severity, and matching of an inventory against it.
 *
 * Data never comes from the network: the operator imports OSV JSON records
 * (one record or an array per file; a directory tree of *.json files, one
 * .json file, or a .zip of them as published per ecosystem) with
 * `waved --import-osv PATH`. The import is incremental: a record whose
 * "modified" is not newer than the stored one is left alone, a newer one
 * replaces it (its index entries follow), a "withdrawn" one is removed. A
 * malformed record is rejected with a message naming its file and reason,
 * never a crash, and the import goes on.
 *
 * Store layout (named database WV_DB_VULNS):
 *   "r/<id>"               the normalised record (JSON): id, modified, display
 *                          id, title, severity, score, url, affected[] (package,
 *                          ranges, versions)
 *   "p/<Ecosystem>/<name>" JSON array of the ids of records affecting that
 *                          package; Ecosystem without its ":release" suffix,
 *                          PyPI names PEP 503-normalised, conda names lowercased
 *
 * Matching uses the ecosystem's own version order (scan/version.h) on
 * ECOSYSTEM ranges, SemVer on SEMVER ranges, exact strings on "versions"
 * lists; GIT ranges are ignored (no commit can be known from an image).
 * Distro advisories ("Debian:12", "Alpine:v3.19") apply only to the matching
 * release when the image's os-release is known.
 *
 * Thread rules: an importer is used by one thread; wv_osv_match may run on
 * any number of threads at once (store reads only).
 */
#ifndef WV_SCAN_OSV_H
#define WV_SCAN_OSV_H

#include "core/arena.h"
#include "scan/pkgdb.h"
#include "scan/version.h"
#include "storage/store.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#define WV_OSV_FILE_MAX (16u << 20) /* largest OSV JSON file (or zip member) read */

/* Ordered so that a larger value is more severe. */
typedef enum {
  WV_OSV_SEV_UNKNOWN = 0,
  WV_OSV_SEV_LOW,
  WV_OSV_SEV_MEDIUM,
  WV_OSV_SEV_HIGH,
  WV_OSV_SEV_CRITICAL,
} wv_osv_severity_t;

/* "UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL". */
const char *wv_osv_severity_name(wv_osv_severity_t s);
/*
 * A severity word of some database (case-insensitive): critical; high,
 * important; medium, moderate; low, negligible, unimportant, minor.
 * Anything else is WV_OSV_SEV_UNKNOWN.
 */
wv_osv_severity_t wv_osv_severity_parse(const char *word);
/* CVSS v3 qualitative rating of a base score (0.0 counts as LOW). */
wv_osv_severity_t wv_osv_severity_of_cvss3(double score);

/*
 * Base score of a CVSS v3.0/v3.1 vector ("CVSS:3.1/AV:N/AC:L/..."), per the
 * specification's formulas and rounding. Returns 0, or WV_EPARSE when a base
 * metric is missing, repeated or has an unknown value.
 */
int wv_osv_cvss3_base_score(const char *vector, double *score);
/* Base score of a CVSS v2 vector ("AV:N/AC:L/Au:N/C:P/I:P/A:P"). */
int wv_osv_cvss2_base_score(const char *vector, double *score);

/* ---- import ---- */

typedef struct {
  size_t files;     /* files (or zip members) read */
  size_t read;      /* records read */
  size_t imported;  /* records new or updated */
  size_t unchanged; /* records already present with the same or a newer "modified" */
  size_t withdrawn; /* records removed because withdrawn */
  size_t ignored;   /* valid records with nothing waved can match (e.g. only GIT ranges) */
  size_t rejected;  /* malformed records and unreadable files */
} wv_osv_stats_t;

/* One line of human detail about a rejected record or file. */
typedef void (*wv_osv_msg_cb)(void *arg, const char *msg);

typedef struct wv_osv_import wv_osv_import_t;

/* msg may be NULL. Returns 0 and *out (free with wv_osv_import_free), or WV_ENOMEM. */
int wv_osv_import_new(wv_osv_import_t **out, wv_store_t *st, wv_osv_msg_cb msg, void *arg);
/*
 * Discards index changes not committed yet (record writes already queued
 * still land) and frees. NULL is a no-op.
 */
void wv_osv_import_free(wv_osv_import_t *imp);

/*
 * One JSON document (a record or an array of records); origin names it in
 * messages. Malformed input is counted and reported, not returned: the
 * result is 0, or WV_ESTORE / WV_ENOMEM (which stop the import).
 */
int wv_osv_import_json(wv_osv_import_t *imp, const char *origin, const char *data, size_t len);
/* A .zip, a .json file or a directory tree of .json files. WV_EIO if path cannot be read. */
int wv_osv_import_path(wv_osv_import_t *imp, const char *path);
/* Writes the package index and waits until every write is durable. 0 or WV_ESTORE. */
int wv_osv_import_commit(wv_osv_import_t *imp);
void wv_osv_import_stats(const wv_osv_import_t *imp, wv_osv_stats_t *out);

/* new + path + commit + free in one call (stats may be NULL). */
int wv_osv_import(wv_store_t *st, const char *path, wv_osv_stats_t *stats, wv_osv_msg_cb msg,
                  void *arg);

/*
 * The `waved --import-osv PATH` command: opens (creating) the state store
 * under storage_path/state, imports PATH, prints each rejection to stderr
 * and a summary line to stdout. Safe while a server runs on the same store
 * (LMDB serialises writers across processes). Returns the exit status: 0,
 * or 1 when the path could not be read or the store failed.
 */
int wv_osv_import_main(const char *storage_path, uint64_t map_size, const char *path);

/* ---- matching ---- */

/* One finding, in the shape of contract §8.2 plus what the report needs internally. */
typedef struct {
  const char *id;     /* CVE id when the record has one, else the OSV id */
  const char *osv_id; /* the OSV record id */
  wv_osv_severity_t level;
  double score; /* CVSS base score, 0 if none */
  const char *title;
  const char *pkg_name; /* installed (binary) package name */
  const char *installed_version;
  const char *fixed_version; /* "" when no fix is known */
  const char *primary_url;
  const char *ecosystem;
  const char *path; /* package database file the package came from */
  int layer;
} wv_osv_vuln_t;

/*
 * Is `version` of a package in an OSV "affected" entry? Pure: used by the
 * matcher and by tests. scheme orders ECOSYSTEM ranges. *hit gets the
 * answer; *fixed (may be NULL) the first fixed version above `version` in
 * the hitting range, or NULL. Returns 0, or WV_EPARSE when a needed version
 * does not parse (then *hit is false).
 */
int wv_osv_affected(const json_object *affected, wv_vscheme_t scheme, const char *version,
                    bool *hit, const char **fixed);

/*
 * Matches n packages (an inventory) against the store. os_id / os_version
 * are the image's distribution (may be NULL). Findings are allocated from a,
 * deduplicated (same id, package and installed version) and sorted most
 * severe first (then score, id, package). Returns 0 with *out / *nout (nout
 * may be 0), or WV_ESTORE / WV_ENOMEM.
 */
int wv_osv_match(wv_store_t *st, const wv_pkg_t *pkgs, size_t n, const char *os_id,
                 const char *os_version, wv_arena_t *a, wv_osv_vuln_t **out, size_t *nout);

/* Sorts findings most severe first (level, then score, id, package name). */
void wv_osv_vulns_sort(wv_osv_vuln_t *v, size_t n);

/*
 * Contract §8.2 vulnerability objects as a new JSON array (caller puts it), at
 * most limit entries (0 = all) in the given order; missing strings are "".
 * NULL on OOM.
 */
json_object *wv_osv_vulns_to_json(const wv_osv_vuln_t *v, size_t n, size_t limit);
/* Contract §3.6 counts {"HIGH":2,"MEDIUM":5} (only non-zero levels). NULL on OOM. */
json_object *wv_osv_vulns_counts(const wv_osv_vuln_t *v, size_t n);

#endif
