/*
 * core/config.c — schema-driven configuration (see config.h).
 *
 * DESIGN. One static table (schema[]) names every key, its type, where it
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
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/netpolicy.h"
#include "core/ratelimit.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_CONFIG_FILE (1u << 20) /* a config file is small; refuse anything absurd */
#define MAX_KEY_LEN 256
#define MAX_ACCOUNTS 10000

/* T_LIST is a string field holding a comma-separated list; in YAML it is written either as a
 * list of scalars (joined with commas) or as one comma-separated scalar. */
typedef enum { T_STR, T_INT, T_BOOL, T_DUR_MS, T_DUR_US, T_SIZE, T_MAP, T_REGS, T_LIST } ctype_t;

/* A value check beyond the type; writes a reason into why on failure. */
typedef int (*check_fn)(const char *s, char *why, size_t whylen);

typedef struct {
  const char *key; /* canonical, kebab-case */
  ctype_t type;
  size_t off;
  const char *def;
  long long min, max; /* int/size/duration bounds in the field's unit; 0,0 = none */
  check_fn check;
  const char *wave_name;
  const char *desc;
} entry_t;

static int check_url(const char *s, char *why, size_t whylen);
static int check_level(const char *s, char *why, size_t whylen);
static int check_builder(const char *s, char *why, size_t whylen);
static int check_severity(const char *s, char *why, size_t whylen);
static int check_outbound_allow(const char *s, char *why, size_t whylen);
static int check_rate(const char *s, char *why, size_t whylen);

/* Default builder command templates (docs/builds.md lists the placeholders). */
#define BUILDAH "buildah --root {workspace}/buildah/root --runroot {workspace}/buildah/runroot " \
                "--storage-driver vfs"
#define BUILDAH_BUILD                                                                     \
  BUILDAH " build --isolation chroot --runtime /usr/sbin/runc --tls-verify={tls-verify} " \
          "--authfile {authfile} --platform {platform} -f {containerfile} -t {image} {context}"
#define BUILDAH_PUSH                                                        \
  BUILDAH " push --tls-verify={tls-verify} --authfile {authfile} --digestfile " \
          "{workdir}/digest {image} {dest}"
#define BUILDAH_CLEANUP BUILDAH " rmi {image}"
#define BUILDKIT_BUILD                                                                        \
  "buildctl --addr unix:///run/buildkit/buildkitd.sock build --frontend dockerfile.v0 "     \
  "--local dockerfile={workdir} --opt filename=Containerfile --local context={context} "    \
  "--opt platform={platform} --output {output}"

#define OFF(f) offsetof(wv_config_t, f)
#define DAY_MS (24LL * 3600 * 1000)

static const entry_t schema[] = {
    {"server.host", T_STR, OFF(server_host), "127.0.0.1", 0, 0, NULL, NULL,
     "Address the HTTP server binds to."},
    {"server.port", T_INT, OFF(server_port), "9090", 1, 65535, NULL, "micronaut.server.port",
     "TCP port of the HTTP server (env WAVE_SERVER_PORT)."},
    {"server.io-threads", T_INT, OFF(io_threads), "0", 0, 256, NULL, NULL,
     "IO loop threads, each with its own SO_REUSEPORT listener; 0 = half the cores, at least 1."},
    {"server.workers", T_INT, OFF(workers), "0", 0, 1024, NULL, NULL,
     "Worker threads for handlers that may block; 0 = 2 x cores, at least 4."},
    {"server.idle-timeout", T_DUR_MS, OFF(idle_timeout_ms), "910s", 1000, 7 * DAY_MS, NULL,
     "micronaut.server.idle-timeout",
     "Idle connection timeout, also the deadline of a pull parked on a running build; must "
     "exceed the build timeout."},
    {"server.header-timeout", T_DUR_MS, OFF(header_timeout_ms), "30s", 100, DAY_MS, NULL, NULL,
     "Time allowed to receive a request's headers."},
    {"server.shutdown-timeout", T_DUR_MS, OFF(shutdown_timeout_ms), "30s", 0, DAY_MS, NULL, NULL,
     "Grace period for in-flight requests on SIGTERM."},
    {"server.max-header-size", T_SIZE, OFF(max_header_bytes), "16KiB", 1024, 1 << 20, NULL, NULL,
     "Maximum bytes of request headers."},
    {"server.max-headers", T_INT, OFF(max_headers), "100", 1, 10000, NULL, NULL,
     "Maximum number of request headers."},
    {"server.max-url-length", T_SIZE, OFF(max_url_length), "8KiB", 256, 1 << 20, NULL, NULL,
     "Maximum bytes of a request target."},
    {"server.max-body-size", T_SIZE, OFF(max_body_size), "10MiB", 1024, 1LL << 32, NULL, NULL,
     "Maximum request body; routes may set lower limits."},
    {"server.worker-queue", T_INT, OFF(worker_queue), "4096", 1, 1000000, NULL, NULL,
     "Requests that may wait for a worker thread; past it new ones get 503. Bursts of "
     "pulls of a running build pass through this queue before they park."},
    {"server.max-connections", T_INT, OFF(max_connections), "10000", 1, 1000000, NULL, NULL,
     "Maximum open connections per IO thread."},
    {"wave.server.url", T_STR, OFF(server_url), "http://localhost:9090", 0, 0, check_url,
     "wave.server.url", "Public base URL (env WAVE_SERVER_URL); its host[:port] names wt/ images."},
    {"wave.capabilities.anonymous-access", T_BOOL, OFF(anonymous_access), "true", 0, 0, NULL,
     "wave.capabilities.anonymous-access",
     "Allow requests without a Platform access token (alias wave.allowAnonymous)."},
    {"wave.tokens.cache.duration", T_DUR_MS, OFF(token_ttl_ms), "36h", 1000, 365 * DAY_MS, NULL,
     "wave.tokens.cache.duration", "Lifetime of a container token."},
    {"wave.tokens.length", T_INT, OFF(token_length), "12", 12, 64, NULL, NULL,
     "Length of a container token (lowercase alphanumerics from the CSPRNG)."},
    {"wave.records.duration", T_DUR_MS, OFF(record_ttl_ms), "30d", 1000, 3650 * DAY_MS, NULL, NULL,
     "Lifetime of a persisted container-request record (should exceed the token lifetime)."},
    {"wave.capabilities.ephemeral-token", T_BOOL, OFF(ephemeral_token), "true", 0, 0, NULL,
     "wave.capabilities.ephemeral-token",
     "Allow plain (non-freeze) container requests served through wt/ tokens."},
    {"wave.capabilities.web-views", T_BOOL, OFF(web_views), "true", 0, 0, NULL,
     "wave.capabilities.web-views",
     "Serve the HTML pages under /view/ (build, mirror, scan, container, inspect); off: 404."},
    {"wave.build.max-data-layer-size", T_SIZE, OFF(max_data_layer_size), "14000000", 1,
     1LL << 32, NULL, "wave.build.max-data-layer-size",
     "Maximum length in characters of a containerConfig layer location (data: layers)."},
    {"wave.build.max-container-file-size", T_SIZE, OFF(max_container_file_size), "10000", 1,
     1LL << 32, NULL, "wave.build.max-container-file-size",
     "Maximum length in characters of the base64 containerFile."},
    {"wave.build.max-conda-file-size", T_SIZE, OFF(max_conda_file_size), "50000", 1, 1LL << 32,
     NULL, "wave.build.max-conda-file-size",
     "Maximum length in characters of the base64 condaFile."},
    {"wave.accounts", T_MAP, OFF(accounts), "{}", 0, 0, NULL, "wave.accounts",
     "Basic-auth accounts: username -> sha256 hex of the password."},
    {"wave.registries", T_REGS, OFF(registries), "{}", 0, 0, NULL, "wave.registries",
     "Upstream registries: host[:port] -> {username, password, insecure}; ${VAR} and "
     "${VAR:default} in username/password read the environment."},
    {"wave.storage.cache.duration", T_DUR_MS, OFF(cache_ttl_ms), "1h", 1000, 30 * DAY_MS, NULL,
     "wave.storage.cache.duration", "Lifetime of cached manifests and blob descriptors."},
    {"wave.blob-cache.enabled", T_BOOL, OFF(blob_cache_enabled), "true", 0, 0, NULL,
     "wave.blob-cache.enabled",
     "Keep upstream blobs that waved streams on local disk (storage.path/blobcache), so the "
     "next pull of the same repository is served from disk."},
    {"wave.blob-cache.max-size", T_SIZE, OFF(blob_cache_max_size), "10GiB", 1 << 20, 1LL << 50,
     NULL, NULL, "Blob cache size cap; least recently used blobs are removed past it."},
    {"wave.blob-cache.duration", T_DUR_MS, OFF(blob_cache_idle_ms), "7d", 1000, 3650 * DAY_MS,
     NULL, NULL, "A cached blob not pulled for this long is removed."},
    {"wave.httpclient.connect-timeout", T_DUR_MS, OFF(hc_connect_timeout_ms), "20s", 100,
     3600 * 1000LL, NULL, "wave.httpclient.connect-timeout",
     "Connect timeout of upstream registry requests."},
    {"wave.httpclient.read-timeout", T_DUR_MS, OFF(hc_read_timeout_ms), "30s", 100,
     3600 * 1000LL, NULL, "micronaut.http.services.stream-client.read-timeout",
     "Time allowed for a whole upstream manifest, config, token or small blob request."},
    {"wave.httpclient.read-idle-timeout", T_DUR_MS, OFF(hc_idle_timeout_ms), "120s", 1000,
     DAY_MS, NULL, "micronaut.http.services.stream-client.read-idle-timeout",
     "A streamed upstream blob is abandoned when no byte arrives for this long."},
    {"wave.httpclient.stream-threshold", T_SIZE, OFF(hc_stream_threshold), "64KiB", 0, 1LL << 30,
     NULL, "wave.httpclient.stream-threshold",
     "Upstream blob bodies up to this size are read whole; larger ones are streamed."},
    {"wave.httpclient.retry.attempts", T_INT, OFF(hc_retry_attempts), "5", 1, 20, NULL,
     "wave.httpclient.retry.attempts",
     "Upstream tries in all for 429, 5xx and connection failures."},
    {"wave.httpclient.retry.delay", T_DUR_MS, OFF(hc_retry_delay_ms), "500ms", 0, 60000, NULL,
     "wave.httpclient.retry.delay", "First retry backoff; each next one is 1.75 times longer."},
    {"wave.httpclient.retry.max-delay", T_DUR_MS, OFF(hc_retry_max_delay_ms), "5s", 0, 600000,
     NULL, "wave.httpclient.retry.max-delay", "Cap of one retry backoff."},
    {"storage.path", T_STR, OFF(storage_path), "./data", 0, 0, NULL, NULL,
     "Directory of the LMDB state store and the blob store."},
    {"storage.map-size", T_SIZE, OFF(storage_map_size), "4GiB", 1 << 20, 1LL << 44, NULL, NULL,
     "LMDB map size (address space reserved, not disk used)."},
    {"storage.sweep-interval", T_DUR_MS, OFF(sweep_interval_ms), "60s", 1000, DAY_MS, NULL, NULL,
     "Period of the expiry sweeper."},
    {"storage.commit-delay", T_DUR_US, OFF(commit_delay_us), "200us", 0, 1000000, NULL, NULL,
     "Group-commit window: writes arriving within it share one fsync."},
    {"wave.build.workspace", T_STR, OFF(build_workspace), "", 0, 0, NULL, "wave.build.workspace",
     "Work directory of builds (one sub-directory per build); empty = <storage.path>/build."},
    {"wave.build.repo", T_STR, OFF(build_repo), "", 0, 0, NULL, "wave.build.repo",
     "Repository builds are pushed to (host[:port]/path); empty = the embedded registry."},
    {"wave.build.timeout", T_DUR_MS, OFF(build_timeout_ms), "15m", 1000, 7 * DAY_MS, NULL,
     "wave.build.timeout", "Maximum duration of a build; past it the build fails."},
    {"wave.build.trusted-timeout", T_DUR_MS, OFF(build_trusted_timeout_ms), "25m", 1000,
     7 * DAY_MS, NULL, "wave.build.trusted-timeout",
     "Maximum duration of an authenticated freeze build (used when longer than the timeout)."},
    {"wave.build.memory", T_SIZE, OFF(build_memory), "3600MiB", 16LL << 20, 1LL << 40, NULL, NULL,
     "Memory limit of a build's processes (cgroup, else RLIMIT_AS; docs/jobs.md)."},
    {"wave.build.max-concurrent", T_INT, OFF(build_max_concurrent), "4", 1, 256, NULL, NULL,
     "Builds running at once; more wait in a queue."},
    {"wave.build.kill-grace", T_DUR_MS, OFF(build_kill_grace_ms), "10s", 0, 600000, NULL, NULL,
     "Delay between SIGTERM and SIGKILL when a build passes its deadline."},
    {"wave.build.builder", T_STR, OFF(build_builder), "buildah", 0, 0, check_builder, NULL,
     "Builder backend: buildah or buildkit."},
    {"wave.build.buildah.build", T_STR, OFF(build_buildah_build), BUILDAH_BUILD, 0, 0, NULL, NULL,
     "Command template of the buildah build step."},
    {"wave.build.buildah.push", T_STR, OFF(build_buildah_push), BUILDAH_PUSH, 0, 0, NULL, NULL,
     "Command template of the buildah push step."},
    {"wave.build.buildah.cleanup", T_STR, OFF(build_buildah_cleanup), BUILDAH_CLEANUP, 0, 0, NULL,
     NULL, "Command template run after the push (failure ignored); empty = none."},
    {"wave.build.buildkit.build", T_STR, OFF(build_buildkit_build), BUILDKIT_BUILD, 0, 0, NULL,
     NULL, "Command template of the buildkit build (it pushes itself)."},
    {"wave.mirror.enabled", T_BOOL, OFF(mirror_enabled), "true", 0, 0, NULL, "wave.mirror.enabled",
     "Serve mirror requests (else 501)."},
    {"wave.mirror.max-duration", T_DUR_MS, OFF(mirror_max_duration_ms), "20m", 1000, 7 * DAY_MS,
     NULL, "wave.mirror.max-duration", "Maximum duration of a mirror; past it the mirror fails."},
    {"wave.mirror.status.duration", T_DUR_MS, OFF(mirror_status_ttl_ms), "1h", 1000, 30 * DAY_MS,
     NULL, "wave.mirror.status.duration",
     "How long a running or successful mirror is shared by identical requests."},
    {"wave.mirror.failure.duration", T_DUR_MS, OFF(mirror_failure_ttl_ms), "50s", 1000, DAY_MS,
     NULL, "wave.mirror.failure.duration",
     "How long a failed mirror is reported to identical requests before one is tried again."},
    {"wave.mirror.retry-attempts", T_INT, OFF(mirror_retry_attempts), "2", 0, 10, NULL,
     "wave.mirror.retry-attempts",
     "Extra tries of one manifest or blob after a transport error, 429 or 5xx."},
    {"wave.mirror.chunk-size", T_SIZE, OFF(mirror_chunk_size), "8MiB", 64 << 10, 1LL << 30, NULL,
     NULL, "Bytes per PATCH request of a blob upload (memory per running mirror: this + 1MiB)."},
    {"wave.mirror.max-concurrent", T_INT, OFF(mirror_max_concurrent), "2", 1, 256, NULL, NULL,
     "Mirrors running at once; more wait in a queue."},
    {"wave.scan.enabled", T_BOOL, OFF(scan_enabled), "false", 0, 0, NULL, "wave.scan.enabled",
     "Security scans of images (scanMode, scans after builds); needs imported OSV data."},
    {"wave.scan.timeout", T_DUR_MS, OFF(scan_timeout_ms), "15m", 1000, 7 * DAY_MS, NULL,
     "wave.scan.timeout", "Maximum duration of a scan; past it the scan fails."},
    {"wave.scan.severity", T_STR, OFF(scan_severity), "", 0, 0, check_severity,
     "wave.scan.severity", "Severities reported (e.g. MEDIUM,HIGH,CRITICAL); empty = all."},
    {"wave.scan.vulnerability.limit", T_INT, OFF(scan_vuln_limit), "100", 1, 100000, NULL,
     "wave.scan.vulnerability.limit", "Vulnerabilities kept in a scan record, most severe first."},
    {"wave.scan.status.duration", T_DUR_MS, OFF(scan_status_ttl_ms), "5d", 1000, 3650 * DAY_MS,
     NULL, "wave.scan.status.duration", "Lifetime of a scan record and its SBOM."},
    {"wave.scan.failure.duration", T_DUR_MS, OFF(scan_failure_ttl_ms), "30m", 1000, 3650 * DAY_MS,
     NULL, "wave.scan.failure.duration", "Lifetime of a failed scan record."},
    {"wave.scan.id.duration", T_DUR_MS, OFF(scan_id_ttl_ms), "7d", 1000, 3650 * DAY_MS, NULL,
     "wave.scan.id.duration", "How long an image (and digest) keeps its scan id."},
    {"wave.scan.max-concurrent", T_INT, OFF(scan_max_concurrent), "2", 1, 256, NULL, NULL,
     "Scans running at once; more wait in a queue."},
    /* wave.security.* — the SSRF policy (core/netpolicy.h, docs/security.md) */
    {"wave.security.ssrf-protection.enabled", T_BOOL, OFF(ssrf_protection), "true", 0, 0, NULL,
     "wave.security.ssrf-protection.enabled",
     "Check URLs taken from requests against wave.security.outbound.*; false = fetch any "
     "address."},
    {"wave.security.outbound.allow-private", T_BOOL, OFF(outbound_allow_private), "false", 0, 0,
     NULL, NULL,
     "Let request-supplied URLs (build contexts, freeze layers) reach private addresses "
     "(10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); never loopback or metadata."},
    {"wave.security.outbound.allow", T_LIST, OFF(outbound_allow), "", 0, 0, check_outbound_allow,
     NULL,
     "Addresses, CIDR blocks and host names (*.domain for subdomains) that request-supplied "
     "URLs may reach whatever their class, e.g. [127.0.0.1/32, files.lab.example]."},
    {"wave.build.enabled", T_BOOL, OFF(build_enabled), "true", 0, 0, NULL, "wave.build.enabled",
     "Serve build requests (containerFile, packages); false = 501."},
    {"wave.build.status.duration", T_DUR_MS, OFF(build_status_ttl_ms), "90m", 1000, 365 * DAY_MS,
     NULL, "wave.build.status.duration",
     "How long a build is joined/reused by identical requests (its target-image entry)."},
    {"wave.build.failure.duration", T_DUR_MS, OFF(build_failure_ttl_ms), "50s", 0, 365 * DAY_MS,
     NULL, "wave.build.failure.duration",
     "How long a failed build is answered to identical requests before one may retry it."},
    {"wave.build.record.duration", T_DUR_MS, OFF(build_record_ttl_ms), "5d", 1000, 3650 * DAY_MS,
     NULL, "wave.build.record.duration", "Lifetime of a build record (/v1alpha1/builds/{id})."},
    {"wave.build.context.max-file-size", T_SIZE, OFF(build_context_max_file), "1MiB", 1,
     1LL << 32, NULL, NULL, "Largest file of an unpacked buildContext."},
    {"wave.build.context.max-size", T_SIZE, OFF(build_context_max_total), "10MiB", 1, 1LL << 34,
     NULL, NULL, "Bytes of all files of an unpacked buildContext."},
#define TPL(k, f, d, w) {"wave.build.templates." k, T_STR, OFF(f), d, 0, 0, NULL, NULL, w}
    TPL("mamba-image-v1", tpl_mamba_image_v1, "mambaorg/micromamba:1.5.10-noble",
        "Default condaOpts.mambaImage of conda/micromamba:v1."),
    TPL("mamba-image-v2", tpl_mamba_image_v2, "mambaorg/micromamba:2-amazon2023",
        "Default condaOpts.mambaImage of conda/micromamba:v2."),
    TPL("conda-base-packages", tpl_conda_base_packages, "conda-forge::procps-ng",
        "Default condaOpts.basePackages."),
    TPL("conda-base-image", tpl_conda_base_image, "ubuntu:24.04",
        "Default condaOpts.baseImage (final stage of conda/micromamba:v2)."),
    TPL("pixi-image", tpl_pixi_image, "public.cr.seqera.io/wave/pixi:0.61.0-noble",
        "Default pixiOpts.pixiImage."),
    TPL("pixi-base-packages", tpl_pixi_base_packages, "conda-forge::procps-ng",
        "Default pixiOpts.basePackages."),
    TPL("pixi-base-image", tpl_pixi_base_image, "ubuntu:24.04", "Default pixiOpts.baseImage."),
    TPL("cran-image", tpl_cran_image, "rocker/r-ver:4.4.1", "Default cranOpts.rImage."),
    TPL("cran-base-packages", tpl_cran_base_packages, "littler r-cran-docopt",
        "Default cranOpts.basePackages."),
#undef TPL
    {"rate-limit.enabled", T_BOOL, OFF(rl_enabled), "false", 0, 0, NULL, NULL,
     "Enforce the build and pull rate limits below (429 with Retry-After past them)."},
    {"rate-limit.build.anonymous", T_STR, OFF(rl_build_anon), "10/1h", 0, 0, check_rate,
     "rate-limit.build.anonymous",
     "New builds per client IP of anonymous requests: <max>/<period>, or off."},
    {"rate-limit.build.authenticated", T_STR, OFF(rl_build_auth), "250/1h", 0, 0, check_rate,
     "rate-limit.build.authenticated", "New builds per account: <max>/<period>, or off."},
    {"rate-limit.pull.anonymous", T_STR, OFF(rl_pull_anon), "250/1h", 0, 0, check_rate,
     "rate-limit.pull.anonymous",
     "Pulls (container requests, manifests by digest) per client IP of anonymous requests and "
     "tokens: <max>/<period>, or off."},
    {"rate-limit.pull.authenticated", T_STR, OFF(rl_pull_auth), "2000/1m", 0, 0, check_rate,
     "rate-limit.pull.authenticated",
     "Pulls per account (of the request, or of the token pulled): <max>/<period>, or off."},
    {"rate-limit.max-keys", T_INT, OFF(rl_max_keys), "100000", 8, 1 << 24, NULL, NULL,
     "Users and addresses each limiter tracks at once (16 bytes each); past it the key "
     "closest to a full bucket is forgotten."},
    {"log.level", T_STR, OFF(log_level), "info", 0, 0, check_level, NULL,
     "Log level: debug, info, warn, error or off."},
};
#define NSCHEMA (sizeof schema / sizeof schema[0])

/* Other spellings of a key, already in kebab-case. */
static const struct {
  const char *alias, *key;
} aliases[] = {
    {"micronaut.server.port", "server.port"},
    {"micronaut.server.idle-timeout", "server.idle-timeout"},
    {"wave.allow-anonymous", "wave.capabilities.anonymous-access"},
    {"micronaut.http.services.stream-client.read-timeout", "wave.httpclient.read-timeout"},
    {"micronaut.http.services.stream-client.read-idle-timeout",
     "wave.httpclient.read-idle-timeout"},
};
#define NALIASES (sizeof aliases / sizeof aliases[0])

static const char *const type_names[] = {"string", "int", "bool",       "duration", "duration",
                                         "size",   "map", "registries", "list"};
/* The same types as they read in an error message. */
static const char *const type_nouns[] = {"a string",   "an integer", "a boolean",
                                         "a duration", "a duration", "a size",
                                         "a mapping",  "a mapping",  "a list"};

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

/* ---- validators ---- */

static int check_level(const char *s, char *why, size_t whylen) {
  wv_log_level_t lvl;
  if (wv_log_level_parse(s, &lvl) == 0)
    return 0;
  snprintf(why, whylen, "invalid log level '%s' (expected debug, info, warn, error or off)", s);
  return WV_EINVAL;
}

/* A comma-separated list of LOW, MEDIUM, HIGH, CRITICAL, UNKNOWN (or empty). */
static int check_severity(const char *s, char *why, size_t whylen) {
  static const char *const words[] = {"LOW", "MEDIUM", "HIGH", "CRITICAL", "UNKNOWN"};
  while (*s) {
    size_t n = strcspn(s, ",");
    bool known = false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
      known = known || (strlen(words[i]) == n && strncmp(s, words[i], n) == 0);
    if (!known) {
      snprintf(why, whylen,
               "unknown severity '%.*s' (expected LOW, MEDIUM, HIGH, CRITICAL, UNKNOWN)", (int)n,
               s);
      return WV_EINVAL;
    }
    s += n + (s[n] == ',');
  }
  return 0;
}

/* wave.security.outbound.allow: parsed exactly as the policy will be. */
static int check_outbound_allow(const char *s, char *why, size_t whylen) {
  wv_netpolicy_t *p = NULL;
  int rc = wv_netpolicy_new(s, false, &p, why, whylen);
  wv_netpolicy_free(p);
  return rc == WV_ENOMEM ? rc : rc ? WV_EINVAL : 0;
}

static int check_rate(const char *s, char *why, size_t whylen) {
  wv_rate_t r;
  return wv_rate_parse(s, &r, why, whylen);
}

static int check_builder(const char *s, char *why, size_t whylen) {
  if (strcmp(s, "buildah") == 0 || strcmp(s, "buildkit") == 0)
    return 0;
  snprintf(why, whylen, "unknown builder '%s' (expected buildah or buildkit)", s);
  return WV_EINVAL;
}

/* Length of the authority of an http(s) URL, or 0 if the URL is not acceptable. */
static size_t url_authority(const char *url, const char **start) {
  const char *p;
  if (strncmp(url, "http://", 7) == 0)
    p = url + 7;
  else if (strncmp(url, "https://", 8) == 0)
    p = url + 8;
  else
    return 0;
  size_t n = strcspn(p, "/?#");
  const char *host_end = p + n;
  if (n == 0)
    return 0;
  if (*p == '[') { /* IPv6 literal */
    const char *rb = memchr(p, ']', n);
    if (!rb || rb == p + 1)
      return 0;
    host_end = rb + 1;
  } else {
    const char *colon = memchr(p, ':', n);
    host_end = colon ? colon : p + n;
    for (const char *c = p; c < host_end; c++)
      if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_')
        return 0;
    if (host_end == p)
      return 0;
  }
  if (host_end < p + n) { /* ":port" */
    if (*host_end != ':' || host_end + 1 == p + n || p + n - host_end > 6)
      return 0;
    int port = 0;
    for (const char *c = host_end + 1; c < p + n; c++) {
      if (!isdigit((unsigned char)*c))
        return 0;
      port = port * 10 + (*c - '0');
    }
    if (port < 1 || port > 65535)
      return 0;
  }
  for (const char *c = p + n; *c; c++)
    if ((unsigned char)*c <= ' ' || *c == 0x7f)
      return 0;
  *start = p;
  return n;
}

static int check_url(const char *s, char *why, size_t whylen) {
  const char *a;
  if (url_authority(s, &a))
    return 0;
  snprintf(why, whylen, "invalid URL '%s' (expected http(s)://host[:port][/path])", s);
  return WV_EINVAL;
}

static int check_sha256_hex(const char *s, char *why, size_t whylen) {
  size_t n = 0;
  while (isxdigit((unsigned char)s[n]))
    n++;
  if (n == 64 && s[n] == '\0')
    return 0;
  snprintf(why, whylen, "expected the sha256 hex of the password (64 hex digits)");
  return WV_EINVAL;
}

/* ---- lookup ---- */

/* camelCase → kebab-case ("ioThreads" → "io-threads"); out has MAX_KEY_LEN*2 bytes. */
static void kebab(const char *in, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; in[i] && o + 2 < outlen; i++) {
    unsigned char c = (unsigned char)in[i];
    if (isupper(c)) {
      if (i > 0 && in[i - 1] != '.' && in[i - 1] != '-')
        out[o++] = '-';
      out[o++] = (char)tolower(c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o] = '\0';
}

static const char *resolve_alias(const char *k) {
  for (size_t i = 0; i < NALIASES; i++)
    if (strcmp(aliases[i].alias, k) == 0)
      return aliases[i].key;
  return k;
}

static const entry_t *find_entry(const char *k) {
  for (size_t i = 0; i < NSCHEMA; i++)
    if (strcmp(schema[i].key, k) == 0)
      return &schema[i];
  return NULL;
}

static bool has_prefix_dot(const char *s, const char *prefix) {
  size_t n = strlen(prefix);
  return strncmp(s, prefix, n) == 0 && s[n] == '.';
}

/* True when k is a section: a proper prefix of some key or alias. */
static bool is_section(const char *k) {
  for (size_t i = 0; i < NSCHEMA; i++)
    if (has_prefix_dot(schema[i].key, k))
      return true;
  for (size_t i = 0; i < NALIASES; i++)
    if (has_prefix_dot(aliases[i].alias, k))
      return true;
  return false;
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
    if (check_sha256_hex(scalar(v), why, sizeof why)) {
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

static void regs_free(wv_registries_t *r) {
  for (size_t i = 0; i < r->len; i++) {
    free(r->items[i].host);
    free(r->items[i].username);
    free(r->items[i].password);
  }
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

static int load_registry(loader_t *L, const char *path, yaml_node_t *k, yaml_node_t *v,
                         wv_config_registry_t *r) {
  char why[160];
  if (k->type != YAML_SCALAR_NODE || !*scalar(k))
    return fail(L, k, WV_EINVAL, "%s: registry names must be non-empty scalars", path);
  if (v->type != YAML_MAPPING_NODE)
    return fail(L, v, WV_EINVAL, "%s.%s: expected a mapping of username, password, insecure",
                path, scalar(k));
  if (!(r->host = strdup(scalar(k))))
    return WV_ENOMEM;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
    yaml_node_t *fk = yaml_document_get_node(L->doc, p->key);
    yaml_node_t *fv = yaml_document_get_node(L->doc, p->value);
    const char *f = fk->type == YAML_SCALAR_NODE ? scalar(fk) : "";
    if (fv->type != YAML_SCALAR_NODE)
      return fail(L, fv, WV_EINVAL, "%s.%s.%s: expected a scalar", path, r->host, f);
    const char *val = is_null(fv) ? "" : scalar(fv);
    char **slot = strcmp(f, "username") == 0 ? &r->username
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
      return fail(L, fk, WV_EINVAL, "%s.%s.%s: unknown key (expected username, password, insecure)",
                  path, r->host, f);
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
  if (is_null(v) && e->type != T_STR && e->type != T_LIST)
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
  kebab(path, norm, sizeof norm);
  const char *canon = resolve_alias(norm);
  const entry_t *e = find_entry(canon);
  if (e)
    return load_value(L, e, path, v);
  if (!is_section(canon))
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
  size_t n = url_authority(cfg->server_url, &a);
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
  for (size_t i = 0; i < NSCHEMA; i++) {
    if (schema[i].type == T_MAP || schema[i].type == T_REGS)
      continue; /* every map default is empty */
    int rc = set_scalar(cfg, &schema[i], schema[i].def, why, sizeof why);
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
    int rc = set_scalar(cfg, find_entry(env[i].key), v, why, sizeof why);
    if (rc) {
      snprintf(err, errlen, "%s: %s", env[i].var, why);
      return rc;
    }
  }
  return finish(cfg, err, errlen);
}

void wv_config_free(wv_config_t *cfg) {
  for (size_t i = 0; i < NSCHEMA; i++) {
    void *field = (char *)cfg + schema[i].off;
    if (schema[i].type == T_STR || schema[i].type == T_LIST) {
      free(*(char **)field);
      *(char **)field = NULL;
    } else if (schema[i].type == T_MAP) {
      strmap_free(field);
    } else if (schema[i].type == T_REGS) {
      regs_free(field);
    }
  }
  free(cfg->server_authority);
  cfg->server_authority = NULL;
}

const char *wv_config_authority(const wv_config_t *cfg) { return cfg->server_authority; }

int wv_config_schema_at(size_t i, wv_config_keyinfo_t *out) {
  if (i >= NSCHEMA)
    return WV_ENOTFOUND;
  out->key = schema[i].key;
  out->type = type_names[schema[i].type];
  out->def = schema[i].def;
  out->desc = schema[i].desc;
  out->wave_name = schema[i].wave_name;
  return 0;
}

void wv_config_print_schema(FILE *out) {
  fprintf(out, "Configuration keys (config.yml; camelCase spellings also accepted):\n");
  for (size_t i = 0; i < NSCHEMA; i++) {
    const entry_t *e = &schema[i];
    fprintf(out, "  %-36s %-8s default %s\n      %s\n", e->key, type_names[e->type], e->def,
            e->desc);
    if (e->wave_name && strcmp(e->wave_name, e->key) != 0)
      fprintf(out, "      Wave's name: %s\n", e->wave_name);
  }
  fprintf(out, "Aliases:");
  for (size_t i = 0; i < NALIASES; i++)
    fprintf(out, " %s=%s", aliases[i].alias, aliases[i].key);
  fprintf(out, "\nEnvironment: WAVE_SERVER_URL, WAVE_SERVER_PORT override the file.\n");
}

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
        !str_eq(x->password, y->password) || x->insecure != y->insecure)
      return false;
  }
  return true;
}

const char *wv_config_first_difference(const wv_config_t *a, const wv_config_t *b) {
  static const size_t width[] = {
      0, sizeof(int), sizeof(bool), sizeof(int64_t), sizeof(int64_t), sizeof(uint64_t), 0, 0, 0};
  for (size_t i = 0; i < NSCHEMA; i++) {
    const entry_t *e = &schema[i];
    const void *fa = (const char *)a + e->off, *fb = (const char *)b + e->off;
    bool eq = e->type == T_STR || e->type == T_LIST ? str_eq(*(char *const *)fa, *(char *const *)fb)
              : e->type == T_MAP  ? map_eq(fa, fb)
              : e->type == T_REGS ? regs_eq(fa, fb)
                                 : memcmp(fa, fb, width[e->type]) == 0;
    if (!eq)
      return e->key;
  }
  return NULL;
}
