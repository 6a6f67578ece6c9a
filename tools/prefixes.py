#!/usr/bin/env python3
"""tools/prefixes.py — one public prefix per module (docs/architecture.md §1), as libuv names
everything of its timer module uv_timer_*: every function, type, struct/enum tag, enum constant,
macro and extern that a public header (not a private *_int.h) DECLARES starts with wv_<prefix>_
(or WV_<PREFIX>_, or is wv_<prefix> / wv_<prefix>_t itself). The module's prefix is the header's
basename unless PREFIX below names another one; the few vocabularies a header may declare beside
its own prefix are in EXCEPT, each with the reason it stays.

  prefixes.py list SRC    every public header with the names it declares, by prefix
  prefixes.py check SRC   the declared names that fit neither the prefix nor an exception; exit 1
"""
import pathlib
import re
import sys

FOLDERS = ("core", "storage", "http", "registry", "scan", "build")

# Header → its module's prefix, where that is not the basename.
PREFIX = {
    "build/build_api.h": "build",
    "build/condayaml.h": "yaml",
    "build/mirror/request.h": "mirror",
    "build/platform_run.h": "build_platform",
    "build/request/records.h": "record",
    "build/request/request.h": "creq",
    "build/sif/sifbuild.h": "sif",
    "build/templates.h": "template",
    "core/job/job.h": "job",
    "core/timefmt.h": "time",
    "core/utf.h": "utf8",
    "http/client.h": "http",
    "http/http.h": "req",
    "http/metrics_route.h": "ops",
    "http/routes.h": "http",
    "registry/blobfill.h": "bfill",
    "registry/container_config.h": "container",
    "registry/mediatype.h": "mediatype",
    "registry/routes.h": "registry",
    "scan/registry_source.h": "scan",
    "scan/version.h": "version",
    "storage/blobcache.h": "bcache",
    "storage/log.h": "logstore",
    "storage/ops.h": "store",
    "storage/jobqueue_redis.h": "jobq",
    "storage/store_redis.h": "rstore",
}

# Header → {other prefix: why it stays}. A new name outside its module's prefix fails the check
# unless it is added here with a reason.
EXCEPT = {
    "core/arena.h": {"cleanup_cb": "the arena's cleanup callback type, spelled as libuv's uv_close_cb"},
    "core/config.h": {
        "perm": "the pull/push permission vocabulary every area checks against the config",
        "registry_perm": "the permission lookup of that vocabulary",
        "registries": "the configured registries' table type",
        "strmap": "the string map type config values come in",
    },
    "core/digest.h": {
        "sha256": "the SHA-256 primitive digests are built on (a tiny, well-known vocabulary)",
        "hex": "the two hex helpers digests are written and read with",
    },
    "core/err.h": {
        "ok": "WV_OK, the success code",
        "errname": "wv_errname/wv_strerror, as libuv's uv_err_name/uv_strerror",
        "strerror": "as above",
    },
    "core/log.h": {
        "debug": "the four level shorthands (wv_debug/wv_info/wv_warn/wv_error), as syslog's",
        "info": "as above",
        "warn": "as above",
        "error": "as above",
    },
    "core/rand.h": {"ct_streq": "the constant-time compare secrets and tokens are checked with"},
    "core/siphash.h": {
        "siphash24": "the one-shot SipHash-2-4 of the paper's name",
        "str_hash": "the string hash of hash tables, SipHash under a process key",
        "checksum_strlen": "WV_CHECKSUM_STRLEN, the size of Wave's checksum text that SipHash gives",
    },
    "core/timefmt.h": {
        "now": "wv_now_ms/wv_now_ns, the wall clock everyone reads (as uv_now)",
        "mono": "wv_mono_ms/wv_mono_ns, the monotonic clock (as uv_hrtime)",
        "ns": "WV_NS_PER_MS/WV_NS_PER_S, the unit constants of those clocks",
        "deadline_ts": "the one 'N ms from now' timespec of condition waits",
        "duration": "Wave's duration texts",
    },
    "http/http.h": {
        "resp": "wv_resp_t, the response every handler fills (its functions are in resp.h)",
        "kv": "the header/parameter pair of requests and responses",
        "m": "WV_M_GET…, the request methods",
        "answered": "WV_ANSWERED/WV_DEFER/WV_PARKED, a handler's result channel",
        "defer": "as above",
        "parked": "as above",
        "route_max_params": "WV_ROUTE_MAX_PARAMS, the request's route parameter capacity",
    },
    "http/resp.h": {"regerr": "the registry error code table (one table, as distribution's errcode)"},
    "http/router.h": {
        "route": "wv_route_t and the router modes WV_ROUTE_*, one entry of the routing table",
        "handler_cb": "the handler type of a route",
        "match_t": "the router's match result",
    },
    "registry/augment.h": {
        "index_entry": "the index views augment rewrites",
        "index_repl": "as above",
        "manifest_info": "the manifest view augment reads",
    },
    "registry/ref.h": {
        "v2": "the /v2 path kinds a reference parser returns (wv_v2_route_t, WV_V2_*)",
        "route_parse": "the /v2 path parser",
        "route_kind_name": "the name of a /v2 path kind",
    },
    "registry/mediatype.h": {"mt": "WV_MT_*, the media type strings and kinds of the OCI/Docker specs"},
    "registry/upstream.h": {"auth_challenge": "the WWW-Authenticate challenge the upstream client parses"},
    "scan/pkgdb.h": {
        "eco": "WV_ECO_*, the package ecosystems",
        "ecosystem": "the ecosystem type and its names",
        "pkg": "wv_pkg_t, the installed package every scan step passes on",
    },
    "scan/spdx.h": {"pkg_purl": "the package URL of an installed package (wv_pkg_t)"},
    "scan/version.h": {"ver": "WV_VER_*, the version schemes", "vscheme_t": "the scheme type"},
    "storage/ops.h": {"cas_usage": "the blob store's size report of the operator commands"},
    "storage/store.h": {"db": "WV_DB_*, the store's named databases"},
}

# Names still outside their module's prefix that issue 16's tidy pass has not renamed yet (each
# rename is one sed family, listed in its commit). Remove an entry when its family is renamed;
# nothing may be added here.
LEFT = {}

STRIP = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
FUNC = re.compile(r"^(?:static inline |extern )?[A-Za-z_][\w \*]*?\b([wW][vV]_\w+)\s*\(", re.M)
EXTERN = re.compile(r"^extern [\w \*]*?\b(wv_\w+)\s*[\[;]", re.M)
DEFINE = re.compile(r"^\s*#\s*define\s+(WV_\w+|wv_\w+)", re.M)
TYPEDEF = re.compile(r"^typedef\s[^;{(]*?\b(wv_\w+)\s*;", re.M)
TYPEDEF_FN = re.compile(r"^typedef\s[^;]*?\(\s*\*\s*(wv_\w+)\s*\)", re.M)
CLOSE = re.compile(r"^\}\s*(wv_\w+)\s*;", re.M)
TAG = re.compile(r"\b(?:struct|union|enum)\s+(wv_\w+)\s*\{")
ENUM = re.compile(r"\benum\s*\w*\s*\{(.*?)\}", re.S)
ENUM_CONST = re.compile(r"(?:^|,)\s*(WV_\w+)")


def headers(src):
    for folder in FOLDERS:
        for h in sorted((src / folder).rglob("*.h")):
            if not h.name.endswith("_int.h"):
                yield h


def declared(path):
    text = STRIP.sub("", path.read_text())
    names = set()
    for r in (FUNC, EXTERN, DEFINE, TYPEDEF, TYPEDEF_FN, CLOSE, TAG):
        names.update(m.group(1) for m in r.finditer(text))
    for body in ENUM.finditer(text):
        names.update(m.group(1) for m in ENUM_CONST.finditer(body.group(1)))
    return sorted(n for n in names if not n.endswith("_H"))


def fits(name, prefix):
    n = name.lower()
    return n == "wv_" + prefix or n.startswith("wv_" + prefix + "_")


def module_prefix(rel):
    return PREFIX.get(rel, pathlib.Path(rel).stem)


def check(src):
    bad = []
    for h in headers(src):
        rel = str(h.relative_to(src))
        prefix, allowed = module_prefix(rel), {**EXCEPT.get(rel, {}), **LEFT.get(rel, {})}
        for name in declared(h):
            if not fits(name, prefix) and not any(fits(name, p) for p in allowed):
                bad.append(f"{rel}: {name} does not start with wv_{prefix}_ (the module's prefix)")
    for line in bad:
        print(line)
    return 1 if bad else 0


def listing(src):
    for h in headers(src):
        rel = str(h.relative_to(src))
        groups = {}
        for name in declared(h):
            groups.setdefault(re.match(r"[wW][vV]_([A-Za-z0-9]+)", name).group(1).lower(), []).append(name)
        print(f"{rel} (wv_{module_prefix(rel)}_):")
        for p, names in sorted(groups.items()):
            print(f"  {p}: {' '.join(names)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("check", "list"):
        sys.exit(__doc__)
    root = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else pathlib.Path(__file__).parent.parent)
    sys.exit(check(root.resolve()) if sys.argv[1] == "check" else listing(root.resolve()))
