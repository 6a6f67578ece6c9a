/*
 * core/main.c — the composition root: reads the config, opens the store,
 * asks each folder to register its routes, starts the server, waits for
 * SIGTERM/SIGINT and shuts everything down in reverse order. The only file in
 * core/ that includes other folders (architecture §1).
 *
 * Exit status: 0 after a clean shutdown, 1 if the server cannot start,
 * 2 for a bad command line or configuration.
 */
#include "build/mirror/mirror.h"
#include "build/request/request.h"
#include "build/view/view.h"
#include "core/app.h"
#include "core/config.h"
#include "core/err.h"
#include "core/job/job.h"
#include "core/log.h"
#include "core/preflight.h"
#include "core/memtrim.h"
#include "core/ratelimit.h"
#include "core/secret.h"
#include "build/build.h"
#include "build/build_api.h"
#include "build/builder.h"
#include "build/layers.h"
#include "build/sif/sif.h"
#include "build/sif/sifbuild.h"
#include "http/accesslog.h"
#include "http/client.h"
#include "http/routes.h"
#include "http/router.h"
#include "http/server.h"
#include "registry/blobfill.h"
#include "registry/park.h"
#include "registry/proxy.h"
#include "registry/routes.h"
#include "registry/tagcache.h"
#include "registry/upstream.h"
#include "scan/osv.h"
#include "scan/scan.h"
#include "storage/blobcache.h"
#include "storage/blobgc.h"
#include "storage/cas.h"
#include "storage/jobqueue_redis.h"
#include "storage/jobstore.h"
#include "storage/ops.h"
#include "storage/state_move.h"
#include "storage/store.h"
#include "version.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
  const char *config_path;
  const char *host;
  int port;               /* -1 = from config */
  const char *import_osv; /* --import-osv PATH: import vulnerability data and exit */
  const char *backup;     /* backup DEST: copy the stores into DEST and exit */
  const char *state_cmd;  /* state export|import: move the shared state (docs/scale-out.md) */
} cli_t;

static void usage(FILE *out) {
  fprintf(out,
          "Usage: waved [--config FILE] [--host ADDR] [--port N]\n"
          "       waved [--config FILE] --import-osv PATH\n"
          "       waved hash-password [--iterations N] < password\n"
          "       waved sif inspect FILE | waved sif extract FILE OBJECT OUT\n"
          "       waved [--config FILE] backup DEST\n"
          "       waved [--config FILE] state export|import\n"
          "       waved --help | --version\n"
          "\n"
          "Serves the Wave API and the Docker Registry v2 API (spec: docs, config.yml).\n"
          "\n"
          "  --config FILE  configuration file (default: ./config.yml if present,\n"
          "                 else the embedded defaults)\n"
          "  --host ADDR    bind address, overrides server.host\n"
          "  --port N       port, overrides server.port and WAVE_SERVER_PORT (0 = any free port)\n"
          "  --import-osv PATH  import OSV vulnerability records (a directory of .json\n"
          "                 files, a .json file or a .zip) into the state store, then exit\n"
          "  backup DEST    copy the state store (compacted, consistent while waved\n"
          "                 serves) and the blob store into DEST, then exit\n"
          "  state export   copy the shared databases from storage.path's LMDB store\n"
          "                 into the Redis of state.redis.* (waved stopped), then exit\n"
          "  state import   copy them from that Redis into storage.path's LMDB store\n"
          "  --help         this text and every configuration key\n"
          "  --version      print the version and exit\n"
          "\n");
}

/* Returns 0, 1 (--help/--version done: exit 0) or 2 (usage error). */
static int parse_cli(int argc, char **argv, cli_t *cli) {
  cli->config_path = NULL;
  cli->host = NULL;
  cli->port = -1;
  cli->import_osv = NULL;
  cli->backup = NULL;
  cli->state_cmd = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_val = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      wv_config_print_schema(stdout);
      return 1;
    }
    if (strcmp(a, "--version") == 0) {
      printf("waved %s (%s)\n", WAVED_VERSION, WAVED_COMMIT);
      return 1;
    }
    if (strcmp(a, "--config") == 0 && has_val) {
      cli->config_path = argv[++i];
    } else if (strcmp(a, "backup") == 0 && has_val) {
      cli->backup = argv[++i];
    } else if (strcmp(a, "state") == 0 && has_val &&
               (strcmp(argv[i + 1], "export") == 0 || strcmp(argv[i + 1], "import") == 0)) {
      cli->state_cmd = argv[++i];
    } else if (strcmp(a, "--import-osv") == 0 && has_val) {
      cli->import_osv = argv[++i];
    } else if (strcmp(a, "--host") == 0 && has_val) {
      cli->host = argv[++i];
    } else if (strcmp(a, "--port") == 0 && has_val) {
      char *end;
      long p = strtol(argv[++i], &end, 10);
      if (*end || p < 0 || p > 65535) {
        fprintf(stderr, "waved: --port: '%s' is not a port number\n", argv[i]);
        return 2;
      }
      cli->port = (int)p;
    } else {
      fprintf(stderr, "waved: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  return 0;
}

/* Defaults, then the file (explicit, or ./config.yml if present), env, command line. */
static int load_config(const cli_t *cli, wv_config_t *cfg) {
  char err[512];
  const char *path = cli->config_path;
  if (!path && access("config.yml", R_OK) == 0)
    path = "config.yml";
  int rc = wv_config_defaults(cfg);
  if (!rc)
    rc = wv_config_load(cfg, path, err, sizeof err);
  /* Builders run in their own directories: every path they are given must be absolute. */
  if (!rc)
    rc = wv_config_resolve_paths(cfg, path, err, sizeof err);
  if (rc) {
    fprintf(stderr, "waved: %s\n", rc == WV_ENOMEM ? "out of memory" : err);
    return rc;
  }
  if (cli->host) {
    char *h = strdup(cli->host);
    if (!h)
      return WV_ENOMEM;
    free(cfg->server_host);
    cfg->server_host = h;
  }
  if (cli->port >= 0)
    cfg->server_port = cli->port;
  wv_log_level_t level;
  if (wv_log_level_parse(cfg->log_level, &level) == 0)
    wv_log_set_level(level);
  bool json = false;
  if (wv_log_format_parse(cfg->log_format, &json) == 0)
    wv_log_set_json(json);
  return 0;
}

#define MAX_BLOB_SIZE (64ULL << 30) /* a single layer; far above any real one */

/* core/ratelimit.h's shared buckets on the store's Redis (core/ stays a leaf). */
static int shared_rate(void *store, const char *key, int64_t interval_us, int64_t burst_us,
                       bool take, int64_t *ahead_us) {
  return wv_store_rate(store, key, interval_us, burst_us, take, ahead_us);
}

/* Opens everything the handlers share. On failure logs why and returns non-zero;
 * whatever was opened is released by close_services(). */
static int open_services(const wv_config_t *cfg, wv_app_t *app) {
  char dir[PATH_MAX];
  int rc;
  app->cfg = cfg;
  if ((rc = wv_http_global_init())) {
    wv_error("cannot initialise libcurl");
    return rc;
  }
  snprintf(dir, sizeof dir, "%s/state", cfg->storage_path);
  rc = wv_store_open_journal(&app->store, dir, cfg->storage_map_size, cfg->commit_delay_us,
                             cfg->storage_journal);
  if (rc) {
    wv_error("cannot open the state store in %s: %s", dir, wv_strerror(rc));
    return rc;
  }
  if (strcmp(cfg->state_backend, "redis") == 0 &&
      (rc = wv_store_use_redis(app->store, cfg->redis_url, cfg->redis_prefix, cfg->redis_timeout_ms,
                               cfg->redis_max_conns, cfg->redis_tls_ca))) {
    wv_error("cannot use the Redis state backend (state.redis.url): %s", wv_strerror(rc));
    return rc;
  }
  if (strcmp(cfg->state_backend, "redis") == 0 &&
      (rc =
           wv_store_local_cache(app->store, cfg->local_cache_max, cfg->local_cache_token_ttl_ms))) {
    wv_error("cannot start the local cache (state.local-cache): %s", wv_strerror(rc));
    return rc;
  }
  if ((rc = wv_store_start_sweeper(app->store, cfg->sweep_interval_ms))) {
    wv_error("cannot start the expiry sweeper: %s", wv_strerror(rc));
    return rc;
  }
  rc = wv_cas_open(&app->cas, cfg->storage_path, MAX_BLOB_SIZE);
  if (rc) {
    wv_error("cannot open the blob store in %s: %s", cfg->storage_path, wv_strerror(rc));
    return rc;
  }
  if (cfg->blob_gc_enabled && (rc = wv_blobgc_start(app->store, app->cas, cfg->blob_gc_interval_ms,
                                                    cfg->blob_gc_grace_ms, &app->blobgc))) {
    wv_error("cannot start the blob-store collector: %s", wv_strerror(rc));
    return rc;
  }
  if (cfg->blob_cache_enabled) {
    snprintf(dir, sizeof dir, "%s/blobcache", cfg->storage_path);
    rc = wv_bcache_open(&app->bcache, dir, cfg->blob_cache_max_size, cfg->blob_cache_idle_ms);
    if (rc) {
      wv_error("cannot open the blob cache in %s: %s", dir, wv_strerror(rc));
      return rc;
    }
  }
  if ((rc = wv_upstream_new(&app->upstream, &cfg->registries))) {
    wv_error("cannot set up the upstream registry client: %s", wv_strerror(rc));
    return rc;
  }
  /* Before any thread can use it: jobs recovered at start fetch at once. */
  wv_upstream_set_timeouts(app->upstream, cfg->hc_connect_timeout_ms, cfg->hc_read_timeout_ms);
  char why[256] = "";
  if ((rc = wv_upstream_set_outbound(app->upstream, cfg, why, sizeof why))) {
    wv_error("cannot set up the outbound policy for registries: %s",
             why[0] ? why : wv_strerror(rc));
    return rc;
  }
  if ((rc = wv_ratelimit_from_config(cfg, &app->build_limit, &app->pull_limit))) {
    wv_error("cannot set up the rate limits: %s", wv_strerror(rc));
    return rc;
  }
  if ((rc = wv_ratelimit_auth_from_config(cfg, &app->auth_limit))) {
    wv_error("cannot set up wave.auth.failure-rate: %s", wv_strerror(rc));
    return rc;
  }
  if (wv_store_db_shared(app->store, WV_DB_COUNTERS)) { /* cluster-wide buckets in Redis */
    wv_ratelimit_share(app->build_limit, shared_rate, app->store);
    wv_ratelimit_share(app->pull_limit, shared_rate, app->store);
    wv_ratelimit_share(app->auth_limit, shared_rate, app->store);
  }
  /* What the requests share: coalescing tables, the tag cache, the build create lock. */
  if ((rc = wv_proxy_flights_new(&app->flights)) || (rc = wv_bfill_table_new(&app->fills)) ||
      (rc = wv_tagcache_new(&app->tags)) || (rc = wv_build_table_new(&app->builds)) ||
      (rc = wv_layers_memo_new(&app->layer_memo))) {
    wv_error("cannot set up the request tables: %s", wv_strerror(rc));
    return rc;
  }
  if ((rc = wv_secret_check_accounts(cfg)))
    return rc;
  if (cfg->rl_enabled)
    wv_info("rate limits: builds %s anonymous, %s authenticated; pulls %s anonymous, %s "
            "authenticated",
            cfg->rl_build_anon, cfg->rl_build_auth, cfg->rl_pull_anon, cfg->rl_pull_auth);
  return 0;
}

/*
 * What must hold before anything starts: the port is free, storage.path and the build
 * workspace can be created and written. Each failure is one line on stderr, and waved stops
 * before a thread or a listener exists.
 */
static int check_start(const wv_config_t *cfg) {
  char err[PATH_MAX + 256], ws[PATH_MAX];
  snprintf(ws, sizeof ws, "%s", *cfg->build_workspace ? cfg->build_workspace : "");
  if (!*ws)
    snprintf(ws, sizeof ws, "%s/build", cfg->storage_path);
  int rc = wv_preflight_port(cfg->server_host, cfg->server_port, err, sizeof err);
  rc = rc ? rc : wv_preflight_dir("storage.path", cfg->storage_path, err, sizeof err);
  rc = rc ? rc : wv_preflight_dir("wave.build.workspace", ws, err, sizeof err);
  if (rc)
    fprintf(stderr, "waved: %s\n", err);
  return rc;
}

static void close_services(wv_app_t *app) {
  wv_park_free(app->park); /* after the job engine: its waiters point into the lot */
  wv_layers_memo_free(app->layer_memo);
  wv_build_table_free(app->builds);
  wv_tagcache_free(app->tags);
  wv_bfill_table_free(app->fills);
  wv_proxy_flights_free(app->flights);
  wv_preflight_free(app->preflight);
  wv_ratelimit_free(app->auth_limit);
  wv_ratelimit_free(app->pull_limit);
  wv_ratelimit_free(app->build_limit);
  wv_upstream_free(app->upstream);
  wv_blobgc_stop(app->blobgc); /* before the stores it reads */
  wv_cas_close(app->cas);
  wv_bcache_close(app->bcache);
  /* Closing drains pending writes: everything acknowledged is on disk. */
  wv_store_close(app->store);
  wv_http_global_cleanup();
}

/* ---- JOBS ---- the job engine: records in the state store, the build and scan kinds. */

/* Ended job records expire after a week; the front door's build records outlive them. */
#define JOB_RECORD_TTL_MS (7LL * 24 * 3600 * 1000)

/* The engine's persistence: owned by main(), it must outlive the engine. */
typedef struct {
  wv_jobstore_t store;
  wv_job_persist_t persist;
  wv_jobq_t *queue; /* state.backend: redis: the shared job queue (docs/scale-out.md) */
  wv_job_queue_t queue_ops;
} jobs_persist_t;

/* state.backend: redis: job records, logs and the queue in Redis, shared by the instances. */
static int open_job_queue(const wv_config_t *cfg, wv_store_t *store, const char *live,
                          jobs_persist_t *jp) {
  char id[WV_JOB_ID_MAX + 1], host[64] = "localhost";
  if (*cfg->redis_instance_id) {
    snprintf(id, sizeof id, "%s", cfg->redis_instance_id);
  } else {
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(id, sizeof id, "%s:%d", host, cfg->server_port);
  }
  wv_jobq_opts_t qo = {.url = cfg->redis_url,
                       .prefix = cfg->redis_prefix,
                       .timeout_ms = cfg->redis_timeout_ms,
                       .instance_id = id,
                       .lease_ms = cfg->redis_job_lease_ms,
                       .poll_ms = cfg->redis_job_poll_ms,
                       .log_max = cfg->redis_job_log_max,
                       .final_ttl_ms = JOB_RECORD_TTL_MS,
                       .log_dir = live,
                       .store = store,
                       .max_deliveries = cfg->redis_job_max_deliveries,
                       .tls_ca = cfg->redis_tls_ca};
  return wv_jobq_open(&qo, &jp->queue, &jp->persist, &jp->queue_ops);
}

/* <libexec> relative to <bindir> (CMakeLists.txt), where the job runner is installed. */
#ifndef WAVED_LIBEXEC_REL
#define WAVED_LIBEXEC_REL "../libexec"
#endif

static int start_jobs(const wv_config_t *cfg, wv_app_t *app, jobs_persist_t *jp) {
  char logs[PATH_MAX], live[PATH_MAX + 8], ws[PATH_MAX], self[PATH_MAX];
  wv_job_opts_t o;
  int rc;
  snprintf(logs, sizeof logs, "%s/logs", cfg->storage_path);
  snprintf(live, sizeof live, "%s/live", logs);
  snprintf(ws, sizeof ws, "%s", *cfg->build_workspace ? cfg->build_workspace : "");
  if (!*ws)
    snprintf(ws, sizeof ws, "%s/build", cfg->storage_path);
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  if ((rc = wv_jobstore_init(&jp->store, app->store, logs, JOB_RECORD_TTL_MS, &jp->persist)))
    return rc;
  if (strcmp(cfg->state_backend, "redis") == 0 && (rc = open_job_queue(cfg, app->store, live, jp)))
    return rc;
  wv_job_opts_init(&o);
  o.queue = jp->queue ? &jp->queue_ops : NULL;
  o.rerun_reclaimed = cfg->redis_job_rerun;
  o.log_dir = live;
  o.persist = &jp->persist;
  /* The job runner applies memory limits and ties each step to waved (docs/jobs.md):
   * waved-job-exec next to waved or in <libexec>/waved, else waved itself. */
  char runner[PATH_MAX + 32];
  o.exec_path = n > 0 ? wv_job_runner_path(self, WAVED_LIBEXEC_REL, runner, sizeof runner) : NULL;
  wv_info("jobs: step runner %s", o.exec_path ? o.exec_path : "(none)");
  o.kill_grace_ms = cfg->build_kill_grace_ms;
  rc = wv_job_engine_new(&o, &app->jobs);
  rc = rc ? rc : wv_builder_register(app->jobs, app);
  rc = rc ? rc : wv_mirror_register(app->jobs, app);
  rc = rc ? rc : wv_scan_register(app->jobs, app); /* registered even when disabled: recovery */
  rc = rc ? rc : wv_build_register(app->jobs, app);
  rc = rc ? rc : wv_job_engine_start(app->jobs);
  if (!rc && jp->queue)
    rc = wv_jobq_start(jp->queue, app->jobs);
  rc = rc ? rc : wv_mirror_recover(app);
  if (rc)
    wv_error("cannot start the job engine: %s", wv_strerror(rc));
  return rc;
}

static void on_signal(uv_signal_t *sig, int signum) {
  wv_info("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  uv_stop(sig->loop);
}

static void close_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* SIGHUP: reload the TLS certificate and key (docs/http-server.md, "TLS"). */
static void on_hup(uv_signal_t *sig, int signum) {
  (void)signum;
  wv_server_t *srv = sig->data;
  if (wv_server_tls_port(srv) < 0)
    wv_info("received SIGHUP: no TLS listener, nothing to reload");
  else
    wv_server_tls_reload(srv); /* logs the outcome */
}

/* Blocks until SIGTERM or SIGINT; SIGHUP reloads srv's TLS certificate. */
static void wait_for_signal(wv_server_t *srv) {
  uv_loop_t loop;
  uv_signal_t term, intr, hup;
  uv_loop_init(&loop);
  uv_signal_init(&loop, &term);
  uv_signal_init(&loop, &intr);
  uv_signal_init(&loop, &hup);
  hup.data = srv;
  uv_signal_start(&term, on_signal, SIGTERM);
  uv_signal_start(&intr, on_signal, SIGINT);
  uv_signal_start(&hup, on_hup, SIGHUP);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_walk(&loop, close_handle, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

int main(int argc, char **argv) {
  /* The job engine runs builders through this wrapper (cgroup, RLIMIT_AS, exec). */
  if (argc > 1 && strcmp(argv[1], "--job-exec") == 0)
    return wv_job_exec_main(argc, argv);
  if (argc > 1 && strcmp(argv[1], "hash-password") == 0) /* an operator command */
    return wv_secret_main(argc, argv);
  if (argc > 1 && strcmp(argv[1], "sif") == 0) /* waved sif inspect FILE (docs/singularity.md) */
    return wv_sif_main(argc, argv);
  uint64_t t0 = uv_hrtime();
  cli_t cli;
  int rc = parse_cli(argc, argv, &cli);
  if (rc)
    return rc == 1 ? 0 : 2;
  /* A client that hangs up must not kill us: writes then fail with EPIPE. */
  signal(SIGPIPE, SIG_IGN);

  wv_config_t cfg;
  if (load_config(&cli, &cfg)) {
    wv_config_free(&cfg);
    return 2;
  }

  if (cli.backup) { /* an operator command, safe while a waved serves the same data */
    rc = wv_store_backup_main(cfg.storage_path, cfg.storage_map_size, cli.backup);
    wv_config_free(&cfg);
    return rc;
  }
  if (cli.state_cmd) { /* an operator command: no server */
    wv_state_move_t o = {cfg.storage_path,     cfg.storage_map_size,
                         cfg.redis_url,        cfg.redis_prefix,
                         cfg.redis_timeout_ms, strcmp(cli.state_cmd, "export") == 0,
                         cfg.redis_tls_ca};
    rc = wv_state_move_main(&o);
    wv_config_free(&cfg);
    return rc;
  }
  if (cli.import_osv) { /* an operator command: no server */
    rc = wv_osv_import_main(cfg.storage_path, cfg.storage_map_size, cli.import_osv);
    wv_config_free(&cfg);
    return rc;
  }

  if (wv_memtrim_start())
    wv_warn("cannot start the memory trimmer: memory may stay at its peak after a spike");
  wv_app_t app = {0};
  jobs_persist_t jobs_persist = {0};
  wv_router_t *router = NULL;
  wv_server_t *srv = NULL;
  int status = 1;
  if (check_start(&cfg) || wv_accesslog_open(cfg.access_log))
    goto out;
  if (open_services(&cfg, &app) || start_jobs(&cfg, &app, &jobs_persist) ||
      wv_park_start(&app.park, cfg.idle_timeout_ms))
    goto out;
  /* Problems found here degrade waved (one log line each); requests that need the part fail. */
  if (wv_preflight_new(&cfg, wv_job_engine_mem(app.jobs), &app.preflight))
    goto out;
  rc = wv_router_new(&router);
  /* ---- ROUTES ---- each area registers its table (its routes.c) here. */
  if (!rc)
    rc = wv_http_routes_register(router, &cfg);
  rc = rc ? rc : wv_registry_routes_register(router);
  rc = rc ? rc : wv_creq_routes_register(router);
  rc = rc ? rc : wv_build_routes_register(router);
  rc = rc ? rc : wv_sif_routes_register(router);
  rc = rc ? rc : wv_mirror_routes_register(router);
  rc = rc ? rc : wv_scan_routes_register(router);
  rc = rc ? rc : wv_view_routes_register(router);
  if (rc) {
    wv_error("cannot build the routing table: %s", wv_strerror(rc));
    goto out;
  }

  wv_server_opts_t opts;
  wv_server_opts_init(&opts, &cfg);
  opts.app = &app;
  rc = wv_server_new(&opts, router, &srv);
  if (!rc)
    rc = wv_server_start(srv);
  if (rc) {
    wv_error("cannot start the HTTP server on %s:%d: %s", cfg.server_host, cfg.server_port,
             wv_strerror(rc));
    goto out;
  }
  if (wv_server_tls_port(srv) >= 0)
    wv_info("HTTPS on https://%s:%d", cfg.server_host, wv_server_tls_port(srv));
  wv_info("waved %s ready on http://%s:%d (io-threads=%d, workers=%d) in %.1f ms", WAVED_VERSION,
          cfg.server_host, wv_server_port(srv), wv_server_io_threads(srv), wv_server_workers(srv),
          (double)(uv_hrtime() - t0) / 1e6);
  /* systemd Type=notify (packaging/waved.service): the store is open and the
   * listeners serve. Does nothing unless NOTIFY_SOCKET is set. */
  sd_notifyf(0, "READY=1\nSTATUS=serving on port %d", wv_server_port(srv));

  wait_for_signal(srv);
  sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
  wv_park_stop(app.park); /* pulls parked on builds are answered before the server goes */
  wv_server_shutdown(srv);
  status = 0;
out:
  wv_park_stop(app.park);
  /* Container requests parked on a group commit are answered while the loops exist. */
  wv_store_flush(app.store);
  wv_server_free(srv);
  wv_router_free(router);
  /* Running builds are killed; their records stay RUNNING for the next start. */
  wv_jobq_stop(jobs_persist.queue); /* its threads use the engine */
  wv_job_engine_free(app.jobs);
  wv_jobq_free(jobs_persist.queue);
  /* The services outlive the server: its workers may use them until it stopped. */
  close_services(&app);
  wv_memtrim_stop();
  wv_accesslog_close();
  if (status == 0)
    wv_info("stopped");
  wv_config_free(&cfg);
  return status;
}
