/*
 * core/config.h — waved's configuration: embedded defaults, config.yml (read
 * with libyaml), then environment overrides (WAVE_SERVER_URL, WAVE_SERVER_PORT).
 *
 * Keys use Wave's names where Wave has one (contract §9); kebab-case and camelCase
 * spellings are interchangeable, as in Wave. Every key, its type and default
 * live in one schema table in config_schema.c; config.yml at the top of the source
 * tree documents each of them. A bad file or value is refused with
 * "<file>:<line>: <key>: <why>". The loaded config is read-only after start-up
 * and may be read from any thread.
 */
#ifndef WV_CONFIG_H
#define WV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A string→string map (e.g. wave.accounts: user → stored secret, core/secret.h). */
typedef struct {
  char **keys;
  char **values;
  size_t len;
} wv_strmap_t;

/* What a caller may do with a registry's configured credentials (docs/security.md). */
typedef enum { WV_PERM_NONE = 0, WV_PERM_PULL = 1, WV_PERM_PUSH = 2 } wv_perm_t;

/* One upstream registry of wave.registries: credentials, transport and who may use them. */
typedef struct {
  char *host;     /* host[:port] as written in image names */
  char *username; /* NULL when anonymous */
  char *password; /* NULL when anonymous */
  bool insecure;  /* reach it over plain HTTP */
  /* allow: anonymous: none|pull|push; accounts: {name: none|pull|push, "*": default} */
  wv_perm_t allow_anonymous; /* allow.anonymous, none */
  wv_perm_t allow_accounts;  /* allow.accounts."*", none: accounts not listed */
  char **allow_names;        /* allow.accounts keys other than "*" */
  wv_perm_t *allow_perms;    /* their values */
  size_t nallow;
} wv_config_registry_t;

typedef struct {
  wv_config_registry_t *items;
  size_t len;
} wv_registries_t;

typedef struct {
  /* server.* (and Wave's micronaut.server.* aliases) */
  char *server_host;    /* server.host, "127.0.0.1" */
  int server_port;      /* server.port (alias micronaut.server.port), 9090; env WAVE_SERVER_PORT */
  bool server_plain;    /* server.plain, true: serve plain HTTP on server.port */
  bool inline_creq;     /* server.inline-container-requests, true */
  char *tls_cert;       /* server.tls.cert, "": PEM certificate + chain; set = HTTPS */
  char *tls_key;        /* server.tls.key, "": PEM private key of tls_cert */
  int tls_port;         /* server.tls.port, 9443 */
  int io_threads;       /* server.io-threads, 0 = half the cores, at least 1 */
  int workers;          /* server.workers, 0 = 2 x cores (min 4) */
  int registry_workers; /* server.registry-workers, 0 = 64 */
  int registry_workers_per_client; /* server.registry-workers-per-client, 0 = a quarter */
  int64_t idle_timeout_ms;     /* server.idle-timeout (alias micronaut.server.idle-timeout), 910s */
  int64_t header_timeout_ms;   /* server.header-timeout, 30s */
  int64_t shutdown_timeout_ms; /* server.shutdown-timeout, 30s */
  uint64_t max_header_bytes;   /* server.max-header-size, 16KiB */
  int max_headers;             /* server.max-headers, 100 */
  uint64_t max_url_length;     /* server.max-url-length, 8KiB */
  uint64_t max_body_size;      /* server.max-body-size, 10MiB (per-route limits may be lower) */
  int max_connections;         /* server.max-connections, 10000 (per io thread) */
  int max_conns_per_ip;        /* server.max-connections-per-ip, 256 (0 = no cap) */
  int64_t keepalive_timeout_ms; /* server.keepalive-timeout, 60s */
  uint64_t max_body_memory;     /* server.max-body-memory, 256MiB (bodies in flight) */
  uint64_t min_body_rate;       /* server.min-body-rate, 1KiB (bytes/s over 10 s; 0 = off) */
  int worker_queue;             /* server.worker-queue, 4096 (requests waiting for a worker) */

  /* wave.* */
  char *server_url;             /* wave.server.url, "http://localhost:9090"; env WAVE_SERVER_URL */
  bool anonymous_access;        /* wave.capabilities.anonymous-access, true */
  int64_t token_ttl_ms;         /* wave.tokens.cache.duration, 36h */
  int token_length;             /* wave.tokens.length, 12 (12..64 lowercase alphanumerics) */
  int64_t record_ttl_ms;        /* wave.records.duration, 30d: persisted request records */
  bool ephemeral_token;         /* wave.capabilities.ephemeral-token, true */
  bool web_views;               /* wave.capabilities.web-views, true: the /view/ pages */
  uint64_t max_data_layer_size; /* wave.build.max-data-layer-size, 14000000 (chars) */
  uint64_t max_container_file_size; /* wave.build.max-container-file-size, 10000 (chars) */
  uint64_t max_conda_file_size;     /* wave.build.max-conda-file-size, 50000 (chars) */
  wv_strmap_t accounts;             /* wave.accounts, {} */
  wv_registries_t registries;       /* wave.registries, {} */

  /* wave.* — the /v2 proxy and its upstream client (registry/) */
  int64_t cache_ttl_ms;          /* wave.storage.cache.duration, 1h (manifest/blob cache) */
  int64_t tag_cache_ms;          /* wave.storage.cache.tag-duration, 10s (tag -> digest) */
  bool blob_cache_enabled;       /* wave.blob-cache.enabled, true */
  uint64_t blob_cache_max_size;  /* wave.blob-cache.max-size, 10GiB */
  int64_t blob_cache_idle_ms;    /* wave.blob-cache.duration, 7d (unused that long: removed) */
  int64_t hc_connect_timeout_ms; /* wave.httpclient.connect-timeout, 20s */
  int64_t hc_read_timeout_ms; /* wave.httpclient.read-timeout, 30s (whole manifest/config fetch) */
  int64_t hc_idle_timeout_ms; /* wave.httpclient.read-idle-timeout, 120s (streamed blobs) */
  uint64_t hc_stream_threshold;  /* wave.httpclient.stream-threshold, 64KiB */
  int hc_retry_attempts;         /* wave.httpclient.retry.attempts, 5 (tries in all) */
  int64_t hc_retry_delay_ms;     /* wave.httpclient.retry.delay, 500ms (first backoff) */
  int64_t hc_retry_max_delay_ms; /* wave.httpclient.retry.max-delay, 5s (cap of one backoff) */
  uint64_t bs_min_rate;          /* wave.blob-streams.min-rate, 16KiB (bytes/s, both directions) */
  int64_t bs_rate_window_ms;     /* wave.blob-streams.rate-window, 30s */
  int64_t bs_max_duration_ms;    /* wave.blob-streams.max-duration, 1h */

  /* storage.* */
  char *storage_path;        /* storage.path, "./data" */
  uint64_t storage_map_size; /* storage.map-size, 4GiB (LMDB map; address space only) */
  int64_t sweep_interval_ms; /* storage.sweep-interval, 60s */
  int64_t commit_delay_us;   /* storage.commit-delay, 200us (group-commit window) */
  bool storage_journal;      /* storage.journal, true (write-ahead journal, one flush a commit) */
  uint64_t storage_reserve;  /* storage.reserve, 1GiB: free space below which the disk is low */

  /* state.* — where the shared state lives (docs/scale-out.md) */
  char *state_backend;              /* state.backend, "lmdb" or "redis" */
  char *redis_url;                  /* state.redis.url, "redis://127.0.0.1:6379/0" */
  char *redis_tls_ca;               /* state.redis.tls-ca, "" = the system CA store */
  char *redis_prefix;               /* state.redis.prefix, "waved." */
  int64_t redis_timeout_ms;         /* state.redis.timeout, 2s (connect and every command) */
  int redis_max_conns;              /* state.redis.max-connections, 128 */
  uint64_t local_cache_max;         /* state.local-cache.max-size, 64 MiB (0 = off) */
  int64_t local_cache_token_ttl_ms; /* state.local-cache.token-ttl, 5s */

  /* state.redis.* of the shared job queue (docs/scale-out.md "Job queue") */
  char *redis_instance_id;    /* state.redis.instance-id, "" = <hostname>:<server.port> */
  int64_t redis_job_lease_ms; /* state.redis.job-lease, 30s */
  int64_t redis_job_poll_ms;  /* state.redis.job-poll, 3s */
  uint64_t redis_job_log_max; /* state.redis.job-log-max, 1MiB */
  bool redis_job_rerun;       /* state.redis.job-rerun, true */
  /* state.redis.job-max-deliveries, 3: a job handed out more often is failed, not run */
  int redis_job_max_deliveries;

  /* wave.build.* — builds and the job engine (docs/jobs.md, docs/builds.md) */
  char *build_workspace;            /* wave.build.workspace, "" = <storage.path>/build */
  char *build_repo;                 /* wave.build.repo, "" = the embedded registry */
  int64_t build_timeout_ms;         /* wave.build.timeout, 15m */
  int64_t build_trusted_timeout_ms; /* wave.build.trusted-timeout, 25m */
  uint64_t build_memory;            /* wave.build.memory, 3600MiB */
  int build_max_concurrent;         /* wave.build.max-concurrent, 4 */
  int64_t build_kill_grace_ms;      /* wave.build.kill-grace, 10s */
  char *build_builder;              /* wave.build.builder, "buildah" | "buildkit" */
  char *build_buildah_build;        /* wave.build.buildah.build, command template */
  char *build_buildah_push;         /* wave.build.buildah.push, command template */
  char *build_buildah_cleanup;      /* wave.build.buildah.cleanup, command template ("" = none) */
  char *build_buildah_prune;        /* wave.build.buildah.prune, command template ("" = none) */
  char *build_buildah_prune_all;    /* wave.build.buildah.prune-all, command template ("" = none) */
  char *build_storage_driver;       /* wave.build.storage-driver, auto | overlay | vfs */
  bool build_layer_cache;           /* wave.build.layer-cache, true: buildah --layers */
  uint64_t build_cache_max;         /* wave.build.cache-max-size, 10GiB: <workspace>/buildah */
  char *build_buildkit_build;       /* wave.build.buildkit.build, command template */
  char *build_sif_build;            /* wave.build.singularity.build, command template */
  char *build_sif_squashfs;         /* wave.build.singularity.squashfs, command template */
  char *build_sif_push;             /* wave.build.singularity.push, command template */
  char *build_sif_cleanup;          /* wave.build.singularity.cleanup ("" = none) */
  bool build_enabled;               /* wave.build.enabled, true */
  int64_t build_status_ttl_ms;      /* wave.build.status.duration, 90m: dedupe entry of a build */
  int64_t build_failure_ttl_ms;     /* wave.build.failure.duration, 50s: of a failed build */
  int64_t build_record_ttl_ms;      /* wave.build.record.duration, 5d: build records */
  uint64_t build_context_max_file;  /* wave.build.context.max-file-size, 1MiB */
  uint64_t build_context_max_total; /* wave.build.context.max-size, 10MiB */
  /* Hostile-input limits (docs/security.md) */
  int max_json_values;              /* server.max-json-values, 100000 (request bodies) */
  uint64_t data_layer_max_inflated; /* wave.build.data-layer.max-inflated-size, 1GiB */
  int data_layer_max_ratio;         /* wave.build.data-layer.max-inflate-ratio, 100 */
  char *auth_failure_rate;          /* wave.auth.failure-rate, "5/1m" per client IP, or off */
  bool blob_gc_enabled;             /* storage.blob-gc.enabled, true */
  int64_t blob_gc_interval_ms;      /* storage.blob-gc.interval, 10m */
  int64_t blob_gc_grace_ms;         /* storage.blob-gc.grace, 1h: younger blobs are kept */
  /* wave.build.templates.* — images and packages of package builds (contract §6.2) */
  char *tpl_mamba_image_v1, *tpl_mamba_image_v2, *tpl_conda_base_packages, *tpl_conda_base_image;
  char *tpl_pixi_image, *tpl_pixi_base_packages, *tpl_pixi_base_image;
  char *tpl_cran_image, *tpl_cran_base_packages;

  /* wave.mirror.* — mirrors (registry/copy.h, docs/mirror.md) */
  bool mirror_enabled;            /* wave.mirror.enabled, true */
  int64_t mirror_max_duration_ms; /* wave.mirror.max-duration, 20m */
  int64_t mirror_status_ttl_ms;   /* wave.mirror.status.duration, 1h */
  int64_t mirror_failure_ttl_ms;  /* wave.mirror.failure.duration, 50s */
  int mirror_retry_attempts;      /* wave.mirror.retry-attempts, 2 */
  uint64_t mirror_chunk_size;     /* wave.mirror.chunk-size, 8MiB */
  int mirror_max_concurrent;      /* wave.mirror.max-concurrent, 2 */
  /* wave.scan.* — security scans (docs/scan.md) */
  bool scan_enabled;           /* wave.scan.enabled, false */
  int64_t scan_timeout_ms;     /* wave.scan.timeout, 15m */
  char *scan_severity;         /* wave.scan.severity, "" = every level */
  int scan_vuln_limit;         /* wave.scan.vulnerability.limit, 100 */
  int64_t scan_status_ttl_ms;  /* wave.scan.status.duration, 5d: scan records */
  int64_t scan_failure_ttl_ms; /* wave.scan.failure.duration, 30m: failed scan records */
  int64_t scan_id_ttl_ms;      /* wave.scan.id.duration, 7d: image -> scan id cache */
  int scan_max_concurrent;     /* wave.scan.max-concurrent, 2 */
  /* wave.security.* — SSRF policy of request-supplied URLs (core/netpolicy.h) */
  bool ssrf_protection;        /* wave.security.ssrf-protection.enabled, true (false = no checks) */
  bool outbound_allow_private; /* wave.security.outbound.allow-private, false */
  char *outbound_allow;        /* wave.security.outbound.allow, "" = none (comma-separated) */

  /* rate-limit.* — per-user / per-IP limits on builds and pulls (core/ratelimit.h) */
  bool rl_enabled;     /* rate-limit.enabled, false */
  char *rl_build_anon; /* rate-limit.build.anonymous, "10/1h" (per client IP) */
  char *rl_build_auth; /* rate-limit.build.authenticated, "250/1h" (per account) */
  char *rl_pull_anon;  /* rate-limit.pull.anonymous, "250/1h" */
  char *rl_pull_auth;  /* rate-limit.pull.authenticated, "2000/1m" */
  int rl_max_keys;     /* rate-limit.max-keys, 100000 (keys tracked per limiter) */

  /* log.* */
  char *log_level;  /* log.level, "info" */
  char *log_format; /* log.format, "text" (or "json") */
  char *access_log; /* log.access-log, "" = off; a file path, or "-" for stderr */

  /* metrics.* — /metrics and the /view overview (docs/operations.md) */
  bool metrics_enabled;      /* metrics.enabled, true */
  bool wave_metrics_enabled; /* wave.metrics.enabled, false: usage counters (registry/usage.h) */
  char *metrics_allow_addrs; /* metrics.allow-addresses, "127.0.0.0/8, ::1/128" (CIDR list) */
  char *metrics_accounts;    /* metrics.accounts, "" (wave.accounts names, Basic auth) */

  /* Derived, not keys: set by wv_config_load / wv_config_apply_env. */
  char *server_authority; /* "host[:port]" of server_url */
} wv_config_t;

/* One schema row as shown by `waved --help` (all strings static). */
typedef struct {
  const char *key;       /* canonical kebab-case path, e.g. "server.io-threads" */
  const char *type;      /* "string", "int", "bool", "duration", "size", "map", "list" */
  const char *def;       /* default, as it would be written in config.yml */
  const char *desc;      /* one sentence */
  const char *wave_name; /* Wave's name for the same setting, or NULL if waved's own */
} wv_config_keyinfo_t;

/* Fills cfg with the embedded defaults. Never fails except on OOM (WV_ENOMEM). */
int wv_config_defaults(wv_config_t *cfg);

/*
 * Loads path over the defaults already in cfg, then applies the environment.
 * path may be NULL (defaults + environment only). On failure returns WV_EPARSE
 * / WV_EINVAL / WV_EIO / WV_ENOMEM and writes "<file>:<line>: <key>: <reason>"
 * into err (errlen bytes, always NUL-terminated).
 */
int wv_config_load(wv_config_t *cfg, const char *path, char *err, size_t errlen);

/* Applies WAVE_SERVER_URL / WAVE_SERVER_PORT. Same error convention. */
int wv_config_apply_env(wv_config_t *cfg, char *err, size_t errlen);

/*
 * Makes every path-valued key (storage.path, wave.build.workspace, ...) absolute:
 * a relative value is taken relative to the directory of config_file, or to the
 * working directory when config_file is NULL (embedded defaults). Empty values
 * stay empty. Returns 0, WV_ENOMEM, or WV_EINVAL/WV_EIO with "<key>: <reason>"
 * in err. Called once at start-up, after wv_config_load.
 */
int wv_config_resolve_paths(wv_config_t *cfg, const char *config_file, char *err, size_t errlen);

/* Frees every string the config owns. */
void wv_config_free(wv_config_t *cfg);

/* "host[:port]" of wave.server.url, the authority used in wt/ image names. */
const char *wv_config_authority(const wv_config_t *cfg);

/* Row i of the schema into *out; WV_ENOTFOUND past the last row. */
int wv_config_schema_at(size_t i, wv_config_keyinfo_t *out);

/* Prints every key with its type, default, description and Wave name (for --help). */
void wv_config_print_schema(FILE *out);

/*
 * Returns the canonical key of the first schema value that differs between a
 * and b, or NULL when they are equal (used to log what a reload changed and
 * to test that config.yml states the real defaults).
 */
/*
 * What account (a key of wave.accounts; NULL = an anonymous request) may do
 * with r's configured credentials: allow.accounts.<account>, else
 * allow.accounts."*", else none; allow.anonymous for NULL. A registry without
 * a username has no credentials to guard: WV_PERM_PUSH.
 */
wv_perm_t wv_registry_perm(const wv_config_registry_t *r, const char *account);
/* "none", "pull" or "push". */
const char *wv_perm_name(wv_perm_t p);
/* Deep copy of src into dst (zeroed first). 0 or WV_ENOMEM (dst freed). */
int wv_config_registry_copy(wv_config_registry_t *dst, const wv_config_registry_t *src);
void wv_config_registry_free(wv_config_registry_t *r);

const char *wv_config_first_difference(const wv_config_t *a, const wv_config_t *b);

#endif
