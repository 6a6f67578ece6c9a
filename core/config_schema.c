/*
 * core/config_schema.c — the configuration schema (see config.c, config.h).
 *
 * The one table of every key (type, field, default, bounds, validator, Wave's
 * name, description), the aliases, the validators the table names, key lookup
 * (camelCase → kebab-case, aliases, sections) and the public functions that
 * only read the table (wv_config_schema_at, wv_config_print_schema). Loading
 * and parsing values live in config.c; config_int.h is what both share.
 */
#include "core/config_int.h"
#include "core/cidr.h"
#include "core/err.h"
#include "core/log.h"
#include "core/netpolicy.h"
#include "core/ratelimit.h"
#include "core/redisurl.h"
#include "core/secret.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int check_url(const char *s, char *why, size_t whylen);
static int check_level(const char *s, char *why, size_t whylen);
static int check_builder(const char *s, char *why, size_t whylen);
static int check_storage_driver(const char *s, char *why, size_t whylen);
static int check_severity(const char *s, char *why, size_t whylen);
static int check_outbound_allow(const char *s, char *why, size_t whylen);
static int check_rate(const char *s, char *why, size_t whylen);
static int check_cidrs(const char *s, char *why, size_t whylen);
static int check_log_format(const char *s, char *why, size_t whylen);
static int check_state_backend(const char *s, char *why, size_t whylen);
static int check_redis_url(const char *s, char *why, size_t whylen);
static int check_redis_prefix(const char *s, char *why, size_t whylen);
static int check_instance_id(const char *s, char *why, size_t whylen);

/* Default builder command templates (docs/builds.md lists the placeholders). */
#define BUILDAH                                                                                    \
  "buildah --root {workspace}/buildah/root --runroot {workspace}/buildah/runroot "                 \
  "--storage-driver {storage-driver}"
#define BUILDAH_BUILD                                                                              \
  BUILDAH " build --layers={layers} --pull={pull} --isolation chroot --runtime /usr/sbin/runc "    \
          "--tls-verify={tls-verify} --authfile {authfile} --platform {platform} "                 \
          "-f {containerfile} -t {image} {context}"
#define BUILDAH_PUSH                                                                               \
  BUILDAH " push --tls-verify={tls-verify} --authfile {authfile} --digestfile "                    \
          "{workdir}/digest {image} {dest}"
#define BUILDAH_CLEANUP BUILDAH " rmi {image}"
#define BUILDAH_PRUNE BUILDAH " rmi --prune"
#define BUILDAH_PRUNE_ALL BUILDAH " rmi --all"
/* Singularity builds (docs/singularity.md): rootfs, squashfs, ORAS push, cleanup. */
#define SIF_BUILD                                                                                  \
  BUILDAH " build --isolation chroot --runtime /usr/sbin/runc --tls-verify={tls-verify} "          \
          "--authfile {authfile} --platform {platform} -f {containerfile} "                        \
          "--build-context waved-sif={workdir}/sif -t localhost/waved-sif:{tag} "                  \
          "--output type=local,dest={workdir}/rootfs {context}"
#define SIF_SQUASHFS                                                                               \
  "mksquashfs {workdir}/rootfs {workdir}/part.sqfs -noappend -comp gzip -no-progress"
#define SIF_PUSH                                                                                   \
  "skopeo copy --preserve-digests --dest-tls-verify={tls-verify} --dest-authfile {authfile} "      \
  "--digestfile {workdir}/digest oci:{oci-dir}:{tag} {dest}"
#define SIF_CLEANUP BUILDAH " rmi localhost/waved-sif:{tag}"
#define BUILDKIT_BUILD                                                                             \
  "buildctl --addr unix:///run/buildkit/buildkitd.sock build --frontend dockerfile.v0 "            \
  "--local dockerfile={workdir} --opt filename=Containerfile --local context={context} "           \
  "--opt platform={platform} --output {output}"

#define OFF(f) offsetof(wv_config_t, f)
#define DAY_MS (24LL * 3600 * 1000)

static const entry_t schema[] = {
    {"server.host", T_STR, OFF(server_host), "127.0.0.1", 0, 0, NULL, NULL,
     "Address the HTTP server binds to."},
    {"server.port", T_INT, OFF(server_port), "9090", 1, 65535, NULL, "micronaut.server.port",
     "TCP port of the HTTP server (env WAVE_SERVER_PORT)."},
    {"server.plain", T_BOOL, OFF(server_plain), "true", 0, 0, NULL, NULL,
     "Serve plain HTTP on server.port; false leaves only the TLS listener (needs server.tls.*)."},
    {"server.inline-container-requests", T_BOOL, OFF(inline_creq), "true", 0, 0, NULL, NULL,
     "Handle a container request for an image already seen on the IO loop (no worker hop); "
     "false sends every container request to a worker."},
    {"server.tls.cert", T_PATH, OFF(tls_cert), "", 0, 0, NULL, NULL,
     "PEM certificate (leaf first, then its chain); with server.tls.key it enables HTTPS."},
    {"server.tls.key", T_PATH, OFF(tls_key), "", 0, 0, NULL, NULL,
     "PEM private key of server.tls.cert."},
    {"server.tls.port", T_INT, OFF(tls_port), "9443", 1, 65535, NULL, NULL,
     "TCP port of the HTTPS listener (same IO loops as server.port)."},
    {"server.io-threads", T_INT, OFF(io_threads), "0", 0, 256, NULL, NULL,
     "IO loop threads, each with its own SO_REUSEPORT listener; 0 = half the cores, at least 1."},
    {"server.workers", T_INT, OFF(workers), "0", 0, 1024, NULL, NULL,
     "Worker threads for handlers that may block; 0 = 2 x cores, at least 4."},
    {"server.registry-workers", T_INT, OFF(registry_workers), "0", 0, 4096, NULL, NULL,
     "Threads for registry (/v2) requests, which wait on upstreams and clients; apart from "
     "server.workers so that no pull can hold up the API. 0 = 64."},
    {"server.registry-workers-per-client", T_INT, OFF(registry_workers_per_client), "0", 0, 4096,
     NULL, NULL,
     "Registry requests one client address runs at once; the rest wait their turn while other "
     "clients go first. 0 = a quarter of server.registry-workers."},
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
     "Maximum open connections per IO thread; lowered at start to fit RLIMIT_NOFILE (raised to "
     "its hard limit), keeping a quarter of the descriptors for files, upstreams and jobs."},
    {"server.max-connections-per-ip", T_INT, OFF(max_conns_per_ip), "1024", 0, 1000000, NULL, NULL,
     "Open connections per client address; a connection past it gets 503 and is closed "
     "(nginx limit_conn). 0 = no cap."},
    {"server.keepalive-timeout", T_DUR_MS, OFF(keepalive_timeout_ms), "60s", 100, DAY_MS, NULL,
     NULL, "An idle keep-alive connection is closed after this long between requests."},
    {"server.max-body-memory", T_SIZE, OFF(max_body_memory), "256MiB", 1 << 20, 1LL << 40, NULL,
     NULL,
     "Request bodies held in memory by all connections together (announced lengths are "
     "reserved up front); a body past it gets 503 and Connection: close. Never below "
     "server.max-body-size."},
    {"server.min-body-rate", T_SIZE, OFF(min_body_rate), "1KiB", 0, 1LL << 30, NULL, NULL,
     "Bytes per second a request body must bring over each 10 s window, else 408 and close; "
     "0 = off."},
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
    {"wave.build.max-data-layer-size", T_SIZE, OFF(max_data_layer_size), "14000000", 1, 1LL << 32,
     NULL, "wave.build.max-data-layer-size",
     "Maximum length in characters of a containerConfig layer location (data: layers)."},
    {"wave.build.max-container-file-size", T_SIZE, OFF(max_container_file_size), "10000", 1,
     1LL << 32, NULL, "wave.build.max-container-file-size",
     "Maximum length in characters of the base64 containerFile."},
    {"wave.build.max-conda-file-size", T_SIZE, OFF(max_conda_file_size), "50000", 1, 1LL << 32,
     NULL, "wave.build.max-conda-file-size",
     "Maximum length in characters of the base64 condaFile."},
    {"wave.accounts", T_MAP, OFF(accounts), "{}", 0, 0, NULL, "wave.accounts",
     "Accounts: username -> `waved hash-password` output (or, deprecated, sha256 hex)."},
    {"wave.registries", T_REGS, OFF(registries), "{}", 0, 0, NULL, "wave.registries",
     "Upstream registries: host[:port] -> {username, password, insecure, allow: {anonymous, "
     "accounts}}; ${VAR} and "
     "${VAR:default} in username/password read the environment."},
    {"wave.storage.cache.tag-duration", T_DUR_MS, OFF(tag_cache_ms), "10s", 0, DAY_MS, NULL, NULL,
     "How long an upstream tag -> digest resolution is reused by new pulls of the same image "
     "and tag (new tokens among them); 0 = every resolution asks the upstream."},
    {"wave.storage.cache.duration", T_DUR_MS, OFF(cache_ttl_ms), "1h", 1000, 30 * DAY_MS, NULL,
     "wave.storage.cache.duration", "Lifetime of cached manifests and blob descriptors."},
    {"wave.blob-cache.enabled", T_BOOL, OFF(blob_cache_enabled), "true", 0, 0, NULL,
     "wave.blob-cache.enabled",
     "Keep upstream blobs that waved streams on local disk (storage.path/blobcache), so the "
     "next pull of the same repository is served from disk."},
    {"wave.blob-cache.max-size", T_SIZE, OFF(blob_cache_max_size), "10GiB", 1 << 20, 1LL << 50,
     NULL, NULL, "Blob cache size cap; least recently used blobs are removed past it."},
    {"wave.blob-cache.duration", T_DUR_MS, OFF(blob_cache_idle_ms), "7d", 1000, 3650 * DAY_MS, NULL,
     NULL, "A cached blob not pulled for this long is removed."},
    {"wave.blob-streams.min-rate", T_SIZE, OFF(bs_min_rate), "16KiB", 1, 1LL << 30, NULL, NULL,
     "Bytes per second a streamed upstream blob must move over each rate-window (upstream and "
     "client alike); slower streams are cut. Also a total deadline: size / min-rate + 2 windows."},
    {"wave.blob-streams.rate-window", T_DUR_MS, OFF(bs_rate_window_ms), "30s", 1000, 3600 * 1000LL,
     NULL, NULL, "Window over which wave.blob-streams.min-rate is measured."},
    {"wave.blob-streams.max-duration", T_DUR_MS, OFF(bs_max_duration_ms), "1h", 1000, 7 * DAY_MS,
     NULL, NULL,
     "No streamed upstream blob lasts longer, whatever size the upstream announces (an unsized "
     "or endless body included)."},
    {"wave.httpclient.connect-timeout", T_DUR_MS, OFF(hc_connect_timeout_ms), "20s", 100,
     3600 * 1000LL, NULL, "wave.httpclient.connect-timeout",
     "Connect timeout of upstream registry requests."},
    {"wave.httpclient.read-timeout", T_DUR_MS, OFF(hc_read_timeout_ms), "30s", 100, 3600 * 1000LL,
     NULL, "micronaut.http.services.stream-client.read-timeout",
     "Time allowed for a whole upstream manifest, config, token or small blob request."},
    {"wave.httpclient.read-idle-timeout", T_DUR_MS, OFF(hc_idle_timeout_ms), "120s", 1000, DAY_MS,
     NULL, "micronaut.http.services.stream-client.read-idle-timeout",
     "A streamed upstream blob is abandoned when no byte arrives for this long."},
    {"wave.httpclient.stream-threshold", T_SIZE, OFF(hc_stream_threshold), "64KiB", 0, 1LL << 30,
     NULL, "wave.httpclient.stream-threshold",
     "Upstream blob bodies up to this size are read whole; larger ones are streamed."},
    {"wave.httpclient.retry.attempts", T_INT, OFF(hc_retry_attempts), "5", 1, 20, NULL,
     "wave.httpclient.retry.attempts",
     "Upstream tries in all for 429, 5xx and connection failures."},
    {"wave.httpclient.retry.delay", T_DUR_MS, OFF(hc_retry_delay_ms), "500ms", 0, 60000, NULL,
     "wave.httpclient.retry.delay", "First retry backoff; each next one is 1.75 times longer."},
    {"wave.httpclient.retry.max-delay", T_DUR_MS, OFF(hc_retry_max_delay_ms), "5s", 0, 600000, NULL,
     "wave.httpclient.retry.max-delay", "Cap of one retry backoff."},
    {"storage.path", T_PATH, OFF(storage_path), "./data", 0, 0, NULL, NULL,
     "Directory of the LMDB state store and the blob store; relative = to the config file's "
     "directory."},
    {"storage.reserve", T_SIZE, OFF(storage_reserve), "1GiB", 0, 1LL << 50, NULL, NULL,
     "Free space kept on storage.path's filesystem (at most half of it): below it /health "
     "reports the disk and new builds get 507."},
    {"storage.map-size", T_SIZE, OFF(storage_map_size), "4GiB", 1 << 20, 1LL << 44, NULL, NULL,
     "LMDB map size (address space reserved, not disk used)."},
    {"storage.sweep-interval", T_DUR_MS, OFF(sweep_interval_ms), "60s", 1000, DAY_MS, NULL, NULL,
     "Period of the expiry sweeper."},
    {"storage.commit-delay", T_DUR_US, OFF(commit_delay_us), "200us", 0, 1000000, NULL, NULL,
     "Group-commit window: writes arriving within it share one fsync."},
    {"storage.journal", T_BOOL, OFF(storage_journal), "true", 0, 0, NULL, NULL,
     "Write-ahead journal of the state store: a commit flushes the disk once on its critical "
     "path instead of twice (docs/storage.md); false = LMDB's own two flushes."},
    /* state.* — where the shared state lives (docs/scale-out.md) */
    {"state.backend", T_STR, OFF(state_backend), "lmdb", 0, 0, check_state_backend, NULL,
     "lmdb: all state in storage.path (one instance); redis: tokens, records, counters, the "
     "manifest cache and the embedded registry's index in Redis, shared by every instance using "
     "the same state.redis.*."},
    {"state.redis.url", T_STR, OFF(redis_url), "redis://127.0.0.1:6379/0", 0, 0, check_redis_url,
     NULL,
     "Redis server of state.backend: redis, redis://[[user]:password@]host[:port][/db]; "
     "rediss://... for TLS (see state.redis.tls-ca)."},
    {"state.redis.tls-ca", T_STR, OFF(redis_tls_ca), "", 0, 0, NULL, NULL,
     "With a rediss:// state.redis.url, PEM file of the CA certificates the Redis server's "
     "certificate must chain to; empty = the system's CA store. The host of the URL must match "
     "the certificate (name or IP address)."},
    {"state.redis.prefix", T_STR, OFF(redis_prefix), "waved.", 0, 0, check_redis_prefix, NULL,
     "Prefix of every key waved writes in Redis (several clusters can share one Redis)."},
    {"state.redis.timeout", T_DUR_MS, OFF(redis_timeout_ms), "2s", 100, 60000, NULL, NULL,
     "Timeout of connecting to Redis and of every command; past it the request fails with 503."},
    {"state.redis.max-connections", T_INT, OFF(redis_max_conns), "128", 1, 1024, NULL, NULL,
     "Connections to Redis one instance opens at most (on demand, one per thread using it); a "
     "thread finding none free waits up to state.redis.timeout. Keep it above "
     "server.registry-workers + server.workers."},
    {"state.local-cache.max-size", T_SIZE, OFF(local_cache_max), "64MiB", 0, 4LL << 30, NULL, NULL,
     "With state.backend: redis, memory per instance for manifest-cache entries and tokens read "
     "from Redis, so hot pulls are answered without a round trip; 0 turns it off."},
    {"state.local-cache.token-ttl", T_DUR_MS, OFF(local_cache_token_ttl_ms), "5s", 0, 60000, NULL,
     NULL,
     "How long a token read from Redis is trusted locally; deletions reach every instance at "
     "once by pub/sub, this bounds a deletion missed while pub/sub was down. 0: never cached."},
    {"state.redis.instance-id", T_STR, OFF(redis_instance_id), "", 0, 0, check_instance_id, NULL,
     "This instance's name in the job queue (its consumer and lease owner), unique in the "
     "cluster and stable across restarts; empty = <hostname>:<server.port>."},
    {"state.redis.job-lease", T_DUR_MS, OFF(redis_job_lease_ms), "30s", 3000, 600000, NULL, NULL,
     "Lease of a running job, renewed every third of it: a job whose instance died is taken "
     "over (re-run, or failed when its kind cannot re-run) within about one lease and a reclaim "
     "round (at most 5s)."},
    {"state.redis.job-poll", T_DUR_MS, OFF(redis_job_poll_ms), "3s", 500, 60000, NULL, NULL,
     "Period of the slow poll of jobs running on other instances that a parked pull here waits "
     "for (in case their end message was missed)."},
    {"state.redis.job-log-max", T_SIZE, OFF(redis_job_log_max), "1MiB", 4096, 16 << 20, NULL, NULL,
     "Bytes of a finished job's log kept in Redis (its tail)."},
    {"state.redis.job-rerun", T_BOOL, OFF(redis_job_rerun), "true", 0, 0, NULL, NULL,
     "A job taken over from a dead instance runs again from its first step (builds included: "
     "their work directories are on wave.build.workspace, shared); false = builds fail with a "
     "reason and a new request builds again."},
    {"state.redis.job-max-deliveries", T_INT, OFF(redis_job_max_deliveries), "3", 1, 100, NULL,
     NULL,
     "Instances a job may be handed to: one taken from the queue more often than this (each "
     "instance that took it stopped answering) is failed instead of run again."},
    {"wave.build.workspace", T_PATH, OFF(build_workspace), "", 0, 0, NULL, "wave.build.workspace",
     "Work directory of builds (one sub-directory per build); empty = <storage.path>/build; "
     "relative = to the config file's directory."},
    {"wave.build.repo", T_STR, OFF(build_repo), "", 0, 0, NULL, "wave.build.repo",
     "Repository builds are pushed to (host[:port]/path); empty = the embedded registry."},
    {"wave.build.timeout", T_DUR_MS, OFF(build_timeout_ms), "15m", 1000, 7 * DAY_MS, NULL,
     "wave.build.timeout", "Maximum duration of a build; past it the build fails."},
    {"wave.build.trusted-timeout", T_DUR_MS, OFF(build_trusted_timeout_ms), "25m", 1000, 7 * DAY_MS,
     NULL, "wave.build.trusted-timeout",
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
    {"wave.build.buildah.prune", T_STR, OFF(build_buildah_prune), BUILDAH_PRUNE, 0, 0, NULL, NULL,
     "Command template removing cached layers (dangling images) when the storage passes its cap."},
    {"wave.build.buildah.prune-all", T_STR, OFF(build_buildah_prune_all), BUILDAH_PRUNE_ALL, 0, 0,
     NULL, NULL, "Command template run when the storage is still past its cap after the prune."},
    {"wave.build.storage-driver", T_STR, OFF(build_storage_driver), "auto", 0, 0,
     check_storage_driver, NULL,
     "buildah's storage driver ({storage-driver}): auto (overlay when it works here, else vfs), "
     "overlay or vfs."},
    {"wave.build.layer-cache", T_BOOL, OFF(build_layer_cache), "true", 0, 0, NULL, NULL,
     "buildah --layers ({layers}): steps are cached and reused by later builds."},
    {"wave.build.cache-max-size", T_SIZE, OFF(build_cache_max), "10GiB", 1LL << 20, 1LL << 50, NULL,
     NULL, "Cap of the builders' storage (<workspace>/buildah): past it a build prunes."},
    {"wave.build.singularity.build", T_STR, OFF(build_sif_build), SIF_BUILD, 0, 0, NULL, NULL,
     "Command template of a Singularity build's root filesystem (buildah --output type=local)."},
    {"wave.build.singularity.squashfs", T_STR, OFF(build_sif_squashfs), SIF_SQUASHFS, 0, 0, NULL,
     NULL, "Command template making the squashfs partition of a SIF."},
    {"wave.build.singularity.push", T_STR, OFF(build_sif_push), SIF_PUSH, 0, 0, NULL, NULL,
     "Command template pushing the SIF as an ORAS artifact (skopeo copy of an OCI layout)."},
    {"wave.build.singularity.cleanup", T_STR, OFF(build_sif_cleanup), SIF_CLEANUP, 0, 0, NULL, NULL,
     "Command template run after a Singularity build (failure ignored); empty = none."},
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
    {"wave.build.context.max-file-size", T_SIZE, OFF(build_context_max_file), "1MiB", 1, 1LL << 32,
     NULL, NULL, "Largest file of an unpacked buildContext."},
    {"wave.build.context.max-size", T_SIZE, OFF(build_context_max_total), "10MiB", 1, 1LL << 34,
     NULL, NULL, "Bytes of all files of an unpacked buildContext."},
    /* Hostile-input limits (docs/security.md) */
    {"server.max-json-values", T_INT, OFF(max_json_values), "100000", 16, 100000000, NULL, NULL,
     "Values (object members and array elements) a JSON request body may hold; past it 400."},
    {"wave.build.data-layer.max-inflated-size", T_SIZE, OFF(data_layer_max_inflated), "1GiB",
     1 << 20, 1LL << 36, NULL, NULL, "Largest uncompressed size of one data: layer."},
    {"wave.build.data-layer.max-inflate-ratio", T_INT, OFF(data_layer_max_ratio), "100", 1, 1100,
     NULL, NULL,
     "A data: layer may inflate to this many times its compressed size plus 1MiB; past it 400."},
    {"wave.auth.failure-rate", T_STR, OFF(auth_failure_rate), "5/1m", 0, 0, check_rate, NULL,
     "Failed Basic authentications allowed per client IP (<max>/<period> or off); past it 429 "
     "with Retry-After."},
    {"storage.blob-gc.enabled", T_BOOL, OFF(blob_gc_enabled), "true", 0, 0, NULL, NULL,
     "Remove blob-store content that no live token, record or cache entry references."},
    {"storage.blob-gc.interval", T_DUR_MS, OFF(blob_gc_interval_ms), "10m", 1000, DAY_MS, NULL,
     NULL, "Period of the blob-store collector."},
    {"storage.blob-gc.grace", T_DUR_MS, OFF(blob_gc_grace_ms), "1h", 0, 30 * DAY_MS, NULL, NULL,
     "Blobs written more recently than this are never collected (a request may be storing "
     "them)."},
#define TPL(k, f, d, w)                                                                            \
  { "wave.build.templates." k, T_STR, OFF(f), d, 0, 0, NULL, NULL, w }
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
    {"log.format", T_STR, OFF(log_format), "text", 0, 0, check_log_format, NULL,
     "Log lines as text or json (one object per line: time, level, request_id, msg)."},
    {"log.access-log", T_STR, OFF(access_log), "", 0, 0, NULL, NULL,
     "Access log in the combined format (with the request id): a file path, - for stderr, "
     "or empty for none."},
    /* metrics.* — /metrics and the /view overview (docs/operations.md) */
    {"wave.metrics.enabled", T_BOOL, OFF(wave_metrics_enabled), "false", 0, 0, NULL,
     "wave.metrics.enabled",
     "Count builds, pulls, mirrors and scans by day, org and arch and serve "
     "/v1alpha2/metrics/* and /v1alpha3/metrics/* (HTTP Basic against wave.accounts)."},
    {"metrics.enabled", T_BOOL, OFF(metrics_enabled), "true", 0, 0, NULL, NULL,
     "Count requests on the hot path and serve /metrics (Prometheus text format)."},
    {"metrics.allow-addresses", T_LIST, OFF(metrics_allow_addrs), "127.0.0.0/8,::1/128", 0, 0,
     check_cidrs, NULL,
     "Client address ranges (CIDR, or * for any) that may read /metrics and /view without "
     "credentials."},
    {"metrics.accounts", T_LIST, OFF(metrics_accounts), "", 0, 0, NULL, NULL,
     "wave.accounts names that may read /metrics and /view from any address with HTTP Basic "
     "credentials."},
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
                                         "size",   "map", "registries", "list",     "path"};

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
  wv_ratelimit_rate_t r;
  return wv_ratelimit_rate_parse(s, &r, why, whylen);
}

static int check_builder(const char *s, char *why, size_t whylen) {
  if (strcmp(s, "buildah") == 0 || strcmp(s, "buildkit") == 0)
    return 0;
  snprintf(why, whylen, "unknown builder '%s' (expected buildah or buildkit)", s);
  return WV_EINVAL;
}

static int check_storage_driver(const char *s, char *why, size_t whylen) {
  if (strcmp(s, "auto") == 0 || strcmp(s, "overlay") == 0 || strcmp(s, "vfs") == 0)
    return 0;
  snprintf(why, whylen, "unknown storage driver '%s' (expected auto, overlay or vfs)", s);
  return WV_EINVAL;
}

/* Length of the authority of an http(s) URL, or 0 if the URL is not acceptable. */
size_t wv__cfg_url_authority(const char *url, const char **start) {
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
  if (wv__cfg_url_authority(s, &a))
    return 0;
  snprintf(why, whylen, "invalid URL '%s' (expected http(s)://host[:port][/path])", s);
  return WV_EINVAL;
}

int wv__cfg_check_sha256_hex(const char *s, char *why, size_t whylen) {
  size_t n = 0;
  while (isxdigit((unsigned char)s[n]))
    n++;
  if ((n == 64 && s[n] == '\0') || wv_secret_kind(s) == WV_SECRET_PBKDF2)
    return 0;
  snprintf(why, whylen,
           "expected the output of `waved hash-password` (pbkdf2-sha256$...) or the sha256 hex "
           "of the password (64 hex digits)");
  return WV_EINVAL;
}

/* ---- lookup ---- */

/* camelCase → kebab-case ("ioThreads" → "io-threads"); out has MAX_KEY_LEN*2 bytes. */
void wv__cfg_kebab(const char *in, char *out, size_t outlen) {
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

const char *wv__cfg_resolve_alias(const char *k) {
  for (size_t i = 0; i < NALIASES; i++)
    if (strcmp(aliases[i].alias, k) == 0)
      return aliases[i].key;
  return k;
}

const entry_t *wv__cfg_find_entry(const char *k) {
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
bool wv__cfg_is_section(const char *k) {
  for (size_t i = 0; i < NSCHEMA; i++)
    if (has_prefix_dot(schema[i].key, k))
      return true;
  for (size_t i = 0; i < NALIASES; i++)
    if (has_prefix_dot(aliases[i].alias, k))
      return true;
  return false;
}

/* ---- the table, for config.c ---- */

const entry_t *const wv__cfg_schema = schema;
const size_t wv__cfg_nschema = NSCHEMA;

/* ---- public API: the table ---- */

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

/* metrics.allow-addresses: every entry a CIDR block, an address or "*". */
static int check_cidrs(const char *s, char *why, size_t whylen) {
  wv_cidr_list_t c;
  int rc = wv_cidr_list_parse(s, &c, why, whylen);
  return rc ? WV_EINVAL : 0;
}

static int check_state_backend(const char *s, char *why, size_t whylen) {
  if (strcmp(s, "lmdb") == 0 || strcmp(s, "redis") == 0)
    return 0;
  snprintf(why, whylen, "unknown state backend '%.64s' (expected lmdb or redis)", s);
  return WV_EINVAL;
}

/* The reason never quotes the URL: it may hold a password. */
static int check_redis_url(const char *s, char *why, size_t whylen) {
  wv_redisurl_t u;
  char r[200];
  if (wv_redisurl_parse(s, &u, r, sizeof r) != 0) {
    snprintf(why, whylen, "invalid Redis URL: %s", r);
    return WV_EINVAL;
  }
  return 0;
}

static int check_redis_prefix(const char *s, char *why, size_t whylen) {
  size_t n = strlen(s);
  bool ok = n <= 64;
  for (size_t i = 0; ok && i < n; i++)
    ok = s[i] > ' ' && s[i] != 0x7f;
  if (ok)
    return 0;
  snprintf(why, whylen, "expected at most 64 printable characters without spaces");
  return WV_EINVAL;
}

static int check_log_format(const char *s, char *why, size_t whylen) {
  bool json;
  if (wv_log_format_parse(s, &json) == 0)
    return 0;
  snprintf(why, whylen, "unknown log format '%s' (expected text or json)", s);
  return WV_EINVAL;
}

/* An instance id names a stream consumer and a lease owner: short, printable, no spaces. */
static int check_instance_id(const char *s, char *why, size_t whylen) {
  size_t n = strlen(s);
  if (n > 128) {
    snprintf(why, whylen, "instance id longer than 128 bytes");
    return WV_EINVAL;
  }
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i])) {
      snprintf(why, whylen, "instance id may only hold letters, digits and . _ : -");
      return WV_EINVAL;
    }
  return 0;
}
