/*
 * core/metrics.c — sharded counters and the Prometheus text writer (see metrics.h).
 *
 * A shard is written by one thread only, so a count is a relaxed load and a
 * relaxed store of the same word: on x86-64 two plain movs, no lock prefix.
 * The scrape reads the words with relaxed loads; a count that lands during a
 * scrape shows up in the next one, which Prometheus counters allow.
 */
#include "core/metrics.h"
#include "core/timefmt.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Request latency buckets, nanoseconds (Prometheus' "le" in seconds). */
static const uint64_t lat_le_ns[] = {100000,        250000,        500000,        1000000,
                                     2500000,       5000000,       10000000,      25000000,
                                     50000000,      100000000,     250000000,     500000000,
                                     1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL};
#define NLAT (sizeof lat_le_ns / sizeof lat_le_ns[0])

/* The statuses counted by code; anything else is counted as "other". */
static const int codes[] = {200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400,
                            401, 403, 404, 405, 406, 408, 409, 410, 411, 413, 414, 415,
                            416, 422, 429, 431, 500, 501, 502, 503, 504, 505};
#define NCODES (sizeof codes / sizeof codes[0])
#define NSTATUS (NCODES + 1) /* + other */

typedef _Atomic uint64_t ctr_t;

typedef struct {
  _Alignas(64) ctr_t c[WV_METRICS_COUNTERS];
  ctr_t req[WV_METRICS_ROUTE_COUNT][NSTATUS];
  ctr_t lat[WV_METRICS_ROUTE_COUNT][NLAT + 1];
  ctr_t lat_sum_ns[WV_METRICS_ROUTE_COUNT];
} shard_t;

/* Process-wide on purpose: the counters are bumped from every layer, including threads that hold no
 * wv_app_t (the job engine, the committer), and one scrape reports the whole process. */
static shard_t shards[WV_METRICS_SHARDS];
static shard_t overflow; /* shared by threads past the shards: fetch-add */
static atomic_int nshards;
static _Thread_local shard_t *mine;
static atomic_bool enabled = true;
static uint8_t status_idx[600]; /* status code -> index into req[][]; NCODES = other */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_once(void) {
  memset(status_idx, NCODES, sizeof status_idx);
  for (size_t i = 0; i < NCODES; i++)
    status_idx[codes[i]] = (uint8_t)i;
}

void wv_metrics_enable(bool on) { atomic_store(&enabled, on); }
bool wv_metrics_enabled(void) { return atomic_load_explicit(&enabled, memory_order_relaxed); }

static shard_t *my_shard(void) {
  if (mine)
    return mine;
  pthread_once(&once, init_once);
  int i = atomic_fetch_add(&nshards, 1);
  mine = i < WV_METRICS_SHARDS ? &shards[i] : &overflow;
  return mine;
}

static inline void bump(shard_t *s, ctr_t *p, uint64_t n) {
  if (s == &overflow)
    atomic_fetch_add_explicit(p, n, memory_order_relaxed);
  else
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

uint64_t wv_metrics_start(void) { return wv_metrics_enabled() ? (uint64_t)wv_mono_ns() : 0; }

static bool prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

wv_metrics_route_t wv_metrics_route_class(const char *path, bool routed) {
  if (!routed)
    return WV_METRICS_ROUTE_UNROUTED;
  if (prefix(path, "/v2/")) {
    if (strstr(path, "/manifests/"))
      return WV_METRICS_ROUTE_MANIFEST;
    return strstr(path, "/blobs/") ? WV_METRICS_ROUTE_BLOB : WV_METRICS_ROUTE_V2;
  }
  if (strcmp(path, "/v2") == 0)
    return WV_METRICS_ROUTE_V2;
  if (prefix(path, "/container-token") ||
      (prefix(path, "/v1alpha") && strlen(path) == 19 && strcmp(path + 10, "container") == 0))
    return WV_METRICS_ROUTE_CONTAINER;
  if (prefix(path, "/v1alpha") || prefix(path, "/validate-creds"))
    return WV_METRICS_ROUTE_API;
  if (strcmp(path, "/view") == 0 || prefix(path, "/view/"))
    return WV_METRICS_ROUTE_VIEW;
  if (strcmp(path, "/metrics") == 0)
    return WV_METRICS_ROUTE_METRICS;
  if (prefix(path, "/health") || prefix(path, "/service-info") || prefix(path, "/openapi"))
    return WV_METRICS_ROUTE_HEALTH;
  return WV_METRICS_ROUTE_OTHER;
}

void wv_metrics_request(wv_metrics_route_t cls, int status, uint64_t t0) {
  if (!t0 || (unsigned)cls >= WV_METRICS_ROUTE_COUNT)
    return;
  uint64_t ns = (uint64_t)wv_mono_ns() - t0;
  shard_t *s = my_shard();
  unsigned si = status > 0 && status < 600 ? status_idx[status] : NCODES;
  size_t b = 0;
  while (b < NLAT && ns > lat_le_ns[b])
    b++;
  bump(s, &s->req[cls][si], 1);
  bump(s, &s->lat[cls][b], 1);
  bump(s, &s->lat_sum_ns[cls], ns);
}

void wv_metrics_add(wv_metrics_counter_t c, uint64_t n) {
  if (!wv_metrics_enabled() || (unsigned)c >= WV_METRICS_COUNTERS)
    return;
  shard_t *s = my_shard();
  bump(s, &s->c[c], n);
}

static uint64_t load(const ctr_t *p) { return atomic_load_explicit(p, memory_order_relaxed); }

static int used_shards(void) {
  int n = atomic_load(&nshards);
  return n < WV_METRICS_SHARDS ? n : WV_METRICS_SHARDS;
}

/* Sums the word at the same offset of every shard and the overflow shard. */
static uint64_t sum_at(size_t off) {
  uint64_t t = load((const ctr_t *)((const char *)&overflow + off));
  for (int i = 0, n = used_shards(); i < n; i++)
    t += load((const ctr_t *)((const char *)&shards[i] + off));
  return t;
}

uint64_t wv_metrics_sum(wv_metrics_counter_t c) { return sum_at(offsetof(shard_t, c) + c * 8); }

/* ---- cold tables: upstream registries and job kinds ---- */

/* Upstream latency buckets, seconds. */
static const double up_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NUP (sizeof up_le / sizeof up_le[0])
/* Job duration buckets, seconds (builds run up to 15-25 min). */
static const double job_le[] = {1, 5, 10, 30, 60, 120, 300, 600, 900, 1500, 3600};
#define NJOB (sizeof job_le / sizeof job_le[0])

typedef struct {
  char name[128];
  uint64_t requests, errors;
  uint64_t hist[NUP + 1];
  double sum_s;
} upstream_t;

typedef struct {
  char name[64];
  uint64_t succeeded, failed;
  uint64_t hist[NJOB + 1];
  double sum_s;
} kind_t;

/* Process-wide, as the shards above. */
static pthread_mutex_t cold_mu = PTHREAD_MUTEX_INITIALIZER; /* leaf lock: the tables below */
static upstream_t ups[WV_METRICS_REGISTRIES + 1];           /* the last one is "other" */
static int nups;
static kind_t kinds[WV_METRICS_KINDS];
static int nkinds;

static size_t bucket(const double *le, size_t n, double v) {
  size_t b = 0;
  while (b < n && v > le[b])
    b++;
  return b;
}

void wv_metrics_upstream(const char *registry, uint64_t ns, bool error) {
  double s = (double)ns / 1e9;
  pthread_mutex_lock(&cold_mu);
  upstream_t *u = NULL;
  for (int i = 0; i < nups && !u; i++)
    if (strcmp(ups[i].name, registry) == 0)
      u = &ups[i];
  if (!u && nups < WV_METRICS_REGISTRIES && strlen(registry) < sizeof ups[0].name) {
    u = &ups[nups++];
    snprintf(u->name, sizeof u->name, "%s", registry);
  }
  if (!u) {
    u = &ups[WV_METRICS_REGISTRIES];
    snprintf(u->name, sizeof u->name, "other");
  }
  u->requests++;
  u->errors += error;
  u->hist[bucket(up_le, NUP, s)]++;
  u->sum_s += s;
  pthread_mutex_unlock(&cold_mu);
}

void wv_metrics_job_end(const char *kind, const char *state, int64_t ns) {
  double s = ns > 0 ? (double)ns / 1e9 : 0;
  pthread_mutex_lock(&cold_mu);
  kind_t *k = NULL;
  for (int i = 0; i < nkinds && !k; i++)
    if (strcmp(kinds[i].name, kind) == 0)
      k = &kinds[i];
  if (!k && nkinds < WV_METRICS_KINDS) {
    k = &kinds[nkinds++];
    snprintf(k->name, sizeof k->name, "%s", kind);
  }
  if (k) {
    if (strcmp(state, "SUCCEEDED") == 0)
      k->succeeded++;
    else
      k->failed++;
    if (ns > 0) {
      k->hist[bucket(job_le, NJOB, s)]++;
      k->sum_s += s;
    }
  }
  pthread_mutex_unlock(&cold_mu);
}

void wv_metrics_reset(void) {
  pthread_once(&once, init_once);
  for (int i = 0; i < WV_METRICS_SHARDS; i++)
    memset(&shards[i], 0, sizeof shards[i]);
  memset(&overflow, 0, sizeof overflow);
  pthread_mutex_lock(&cold_mu);
  memset(ups, 0, sizeof ups);
  memset(kinds, 0, sizeof kinds);
  nups = nkinds = 0;
  pthread_mutex_unlock(&cold_mu);
}

/* ---- the text format ---- */

int wv_metrics_family(wv_buf_t *b, const char *name, const char *type, const char *help) {
  return wv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int wv_metrics_label(wv_buf_t *b, const char *v) {
  int rc = 0;
  for (const char *p = v; *p && !rc; p++) {
    if (*p == '\\' || *p == '"')
      rc = wv_buf_putc(b, '\\') || wv_buf_putc(b, *p);
    else if (*p == '\n')
      rc = wv_buf_puts(b, "\\n");
    else
      rc = wv_buf_putc(b, *p);
  }
  return rc;
}

static const char *const class_names[WV_METRICS_ROUTE_COUNT] = {
    "manifest", "blob", "v2", "container", "api", "view", "metrics", "health", "other", "unrouted"};

static int write_requests(wv_buf_t *b) {
  int rc = wv_metrics_family(b, "waved_http_requests_total", "counter",
                             "HTTP requests answered, by route class and status.");
  for (int c = 0; c < WV_METRICS_ROUTE_COUNT && !rc; c++)
    for (size_t i = 0; i < NSTATUS && !rc; i++) {
      uint64_t v = sum_at(offsetof(shard_t, req) + (c * NSTATUS + i) * 8);
      if (!v)
        continue;
      if (i < NCODES)
        rc = wv_buf_printf(b, "waved_http_requests_total{class=\"%s\",status=\"%d\"} %llu\n",
                           class_names[c], codes[i], (unsigned long long)v);
      else
        rc = wv_buf_printf(b, "waved_http_requests_total{class=\"%s\",status=\"other\"} %llu\n",
                           class_names[c], (unsigned long long)v);
    }
  rc = rc ? rc
          : wv_metrics_family(b, "waved_http_request_duration_seconds", "histogram",
                              "Time from the request's first byte to its response, by route "
                              "class.");
  for (int c = 0; c < WV_METRICS_ROUTE_COUNT && !rc; c++) {
    uint64_t cum = 0;
    for (size_t i = 0; i <= NLAT && !rc; i++) {
      cum += sum_at(offsetof(shard_t, lat) + (c * (NLAT + 1) + i) * 8);
      if (i < NLAT)
        rc = wv_buf_printf(b,
                           "waved_http_request_duration_seconds_bucket{class=\"%s\",le=\"%g\"} "
                           "%llu\n",
                           class_names[c], (double)lat_le_ns[i] / 1e9, (unsigned long long)cum);
    }
    double sum = (double)sum_at(offsetof(shard_t, lat_sum_ns) + c * 8) / 1e9;
    rc = rc ? rc
            : wv_buf_printf(b,
                            "waved_http_request_duration_seconds_bucket{class=\"%s\",le=\"+Inf\"} "
                            "%llu\n"
                            "waved_http_request_duration_seconds_sum{class=\"%s\"} %.9f\n"
                            "waved_http_request_duration_seconds_count{class=\"%s\"} %llu\n",
                            class_names[c], (unsigned long long)cum, class_names[c], sum,
                            class_names[c], (unsigned long long)cum);
  }
  return rc;
}

static int write_server(wv_buf_t *b) {
  uint64_t hit = wv_metrics_sum(WV_METRICS_HOT_HIT), miss = wv_metrics_sum(WV_METRICS_HOT_MISS);
  uint64_t opened = wv_metrics_sum(WV_METRICS_CONN_OPENED),
           closed = wv_metrics_sum(WV_METRICS_CONN_CLOSED);
  uint64_t pin = wv_metrics_sum(WV_METRICS_PARKED_IN), pout = wv_metrics_sum(WV_METRICS_PARKED_OUT);
  int rc = wv_metrics_family(b, "waved_hotpath_requests_total", "counter",
                             "/v2 requests answered on the IO loop (hit) or handed to a worker "
                             "(miss).");
  rc = rc ? rc
          : wv_buf_printf(b,
                          "waved_hotpath_requests_total{result=\"hit\"} %llu\n"
                          "waved_hotpath_requests_total{result=\"miss\"} %llu\n",
                          (unsigned long long)hit, (unsigned long long)miss);
  rc = rc ? rc
          : wv_metrics_family(b, "waved_connections_accepted_total", "counter",
                              "Client connections accepted.");
  rc = rc ? rc
          : wv_buf_printf(b, "waved_connections_accepted_total %llu\n", (unsigned long long)opened);
  rc = rc ? rc
          : wv_metrics_family(b, "waved_open_connections", "gauge", "Client connections open now.");
  rc = rc ? rc : wv_buf_printf(b, "waved_open_connections %lld\n", (long long)(opened - closed));
  rc = rc ? rc
          : wv_metrics_family(b, "waved_parked_requests", "gauge",
                              "Pulls parked on a running build or mirror now.");
  rc = rc ? rc : wv_buf_printf(b, "waved_parked_requests %lld\n", (long long)(pin - pout));
  rc = rc ? rc
          : wv_metrics_family(b, "waved_parked_requests_total", "counter",
                              "Pulls that were parked on a job.");
  rc = rc ? rc : wv_buf_printf(b, "waved_parked_requests_total %llu\n", (unsigned long long)pin);
  return rc;
}

static int write_hist(wv_buf_t *b, const char *name, const char *lname, const char *lval,
                      const double *le, size_t n, const uint64_t *hist, double sum) {
  uint64_t cum = 0;
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    cum += hist[i];
    rc = wv_buf_printf(b, "%s_bucket{%s=\"", name, lname) || wv_metrics_label(b, lval) ||
         wv_buf_printf(b, "\",le=\"%g\"} %llu\n", le[i], (unsigned long long)cum);
  }
  cum += hist[n];
  rc = rc ? rc
          : (wv_buf_printf(b, "%s_bucket{%s=\"", name, lname) || wv_metrics_label(b, lval) ||
             wv_buf_printf(b, "\",le=\"+Inf\"} %llu\n%s_sum{%s=\"", (unsigned long long)cum, name,
                           lname) ||
             wv_metrics_label(b, lval) ||
             wv_buf_printf(b, "\"} %.6f\n%s_count{%s=\"", sum, name, lname) ||
             wv_metrics_label(b, lval) || wv_buf_printf(b, "\"} %llu\n", (unsigned long long)cum));
  return rc;
}

static int write_upstream(wv_buf_t *b) {
  int rc = wv_metrics_family(b, "waved_upstream_requests_total", "counter",
                             "Requests sent to upstream registries, by registry.");
  for (int i = 0; i <= WV_METRICS_REGISTRIES && !rc; i++)
    if (ups[i].requests)
      rc = wv_buf_puts(b, "waved_upstream_requests_total{registry=\"") ||
           wv_metrics_label(b, ups[i].name) ||
           wv_buf_printf(b, "\"} %llu\n", (unsigned long long)ups[i].requests);
  rc = rc ? rc
          : wv_metrics_family(b, "waved_upstream_errors_total", "counter",
                              "Upstream requests that failed (transport error or 5xx), by "
                              "registry.");
  for (int i = 0; i <= WV_METRICS_REGISTRIES && !rc; i++)
    if (ups[i].requests)
      rc = wv_buf_puts(b, "waved_upstream_errors_total{registry=\"") ||
           wv_metrics_label(b, ups[i].name) ||
           wv_buf_printf(b, "\"} %llu\n", (unsigned long long)ups[i].errors);
  rc = rc ? rc
          : wv_metrics_family(b, "waved_upstream_request_duration_seconds", "histogram",
                              "Duration of upstream requests, by registry.");
  for (int i = 0; i <= WV_METRICS_REGISTRIES && !rc; i++)
    if (ups[i].requests)
      rc = write_hist(b, "waved_upstream_request_duration_seconds", "registry", ups[i].name, up_le,
                      NUP, ups[i].hist, ups[i].sum_s);
  return rc;
}

static int write_jobs(wv_buf_t *b) {
  int rc = wv_metrics_family(b, "waved_jobs_finished_total", "counter",
                             "Jobs (builds, mirrors, scans) that ended, by kind and state.");
  for (int i = 0; i < nkinds && !rc; i++)
    rc = wv_buf_printf(b,
                       "waved_jobs_finished_total{kind=\"%s\",state=\"succeeded\"} %llu\n"
                       "waved_jobs_finished_total{kind=\"%s\",state=\"failed\"} %llu\n",
                       kinds[i].name, (unsigned long long)kinds[i].succeeded, kinds[i].name,
                       (unsigned long long)kinds[i].failed);
  rc = rc ? rc
          : wv_metrics_family(b, "waved_job_duration_seconds", "histogram",
                              "Run time of jobs that ended, by kind.");
  for (int i = 0; i < nkinds && !rc; i++)
    rc = write_hist(b, "waved_job_duration_seconds", "kind", kinds[i].name, job_le, NJOB,
                    kinds[i].hist, kinds[i].sum_s);
  return rc;
}

/* process_* from /proc/self/stat, the descriptor table and RLIMIT_NOFILE. */
static int write_process(wv_buf_t *b) {
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
  unsigned long utime = 0, stime = 0, vsize = 0;
  long threads = 0, rss = 0;
  unsigned long long start = 0;
  if (p)
    sscanf(p + 2,
           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld %*d %llu "
           "%lu %ld",
           &utime, &stime, &threads, &start, &vsize, &rss);
  double tck = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
  double boot = 0;
  f = fopen("/proc/stat", "r");
  while (f && fgets(buf, sizeof buf, f))
    if (sscanf(buf, "btime %lf", &boot) == 1)
      break;
  if (f)
    fclose(f);
  int fds = 0;
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *e; d && (e = readdir(d));)
    fds += e->d_name[0] != '.';
  if (d)
    closedir(d);
  struct rlimit rl = {0};
  getrlimit(RLIMIT_NOFILE, &rl);
  return wv_metrics_family(b, "process_cpu_seconds_total", "counter",
                           "Total user and system CPU time spent in seconds.") ||
         wv_buf_printf(b, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / tck) ||
         wv_metrics_family(b, "process_resident_memory_bytes", "gauge",
                           "Resident memory size in bytes.") ||
         wv_buf_printf(b, "process_resident_memory_bytes %.0f\n", (double)rss * page) ||
         wv_metrics_family(b, "process_virtual_memory_bytes", "gauge",
                           "Virtual memory size in bytes.") ||
         wv_buf_printf(b, "process_virtual_memory_bytes %lu\n", vsize) ||
         wv_metrics_family(b, "process_open_fds", "gauge", "Number of open file descriptors.") ||
         wv_buf_printf(b, "process_open_fds %d\n", fds - (d ? 1 : 0)) ||
         wv_metrics_family(b, "process_max_fds", "gauge",
                           "Maximum number of open file descriptors.") ||
         wv_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur) ||
         wv_metrics_family(b, "process_threads", "gauge", "Threads of the process.") ||
         wv_buf_printf(b, "process_threads %ld\n", threads) ||
         wv_metrics_family(b, "process_start_time_seconds", "gauge",
                           "Start time of the process since unix epoch in seconds.") ||
         wv_buf_printf(b, "process_start_time_seconds %.2f\n", boot + (double)start / tck);
}

int wv_metrics_write(wv_buf_t *b) {
  pthread_once(&once, init_once);
  int rc = write_requests(b);
  rc = rc ? rc : write_server(b);
  pthread_mutex_lock(&cold_mu);
  rc = rc ? rc : write_upstream(b);
  rc = rc ? rc : write_jobs(b);
  pthread_mutex_unlock(&cold_mu);
  return rc ? rc : write_process(b);
}
