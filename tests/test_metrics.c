/* tests/test_metrics.c — core/metrics.c (sharded counters, text format) and core/cidr.c. */
#include "core/cidr.h"
#include "core/err.h"
#include "core/metrics.h"
#include "runner.h"

#include <pthread.h>

TEST(cidr_parse_and_match) {
  wv_cidr_list_t c;
  char why[256];
  CHECK_OK(wv_cidr_list_parse("127.0.0.0/8, ::1/128 10.1.2.0/23", &c, why, sizeof why));
  CHECK_EQ_INT(c.n, 3);
  CHECK(wv_cidr_list_match(&c, "127.0.0.1"));
  CHECK(wv_cidr_list_match(&c, "127.255.1.2"));
  CHECK(wv_cidr_list_match(&c, "::1"));
  CHECK(wv_cidr_list_match(&c, "::ffff:127.0.0.9")); /* IPv4-mapped counts as IPv4 */
  CHECK(wv_cidr_list_match(&c, "10.1.3.255"));
  CHECK(!wv_cidr_list_match(&c, "10.1.4.0"));
  CHECK(!wv_cidr_list_match(&c, "128.0.0.1"));
  CHECK(!wv_cidr_list_match(&c, "::2"));
  CHECK(!wv_cidr_list_match(&c, ""));
  CHECK(!wv_cidr_list_match(&c, "not-an-ip"));
  CHECK_OK(wv_cidr_list_parse("", &c, why, sizeof why));
  CHECK(!wv_cidr_list_match(&c, "127.0.0.1"));
  CHECK_OK(wv_cidr_list_parse("*", &c, why, sizeof why));
  CHECK(wv_cidr_list_match(&c, "203.0.113.7"));
}

TEST(cidr_bad_entries_are_named) {
  wv_cidr_list_t c;
  char why[256];
  CHECK(wv_cidr_list_parse("127.0.0.0/33", &c, why, sizeof why) == WV_EINVAL);
  CHECK_HAS(why, "'127.0.0.0/33'");
  CHECK(wv_cidr_list_parse("10.0.0.0/8, lab.example", &c, why, sizeof why) == WV_EINVAL);
  CHECK_HAS(why, "'lab.example'");
  CHECK(wv_cidr_list_parse("::/", &c, why, sizeof why) == WV_EINVAL);
  /* The prefix length is decimal digits only (one parser with core/netpolicy.c). */
  CHECK(wv_cidr_list_parse("10.0.0.0/+8", &c, why, sizeof why) == WV_EINVAL);
  wv_cidr_t one;
  CHECK_EQ_INT(wv_cidr_parse("10.0.0.0/008", 12, &one), 0);
  CHECK_EQ_INT(one.prefix, 8);
  CHECK_EQ_INT(wv_cidr_parse("::/129", 6, &one), WV_ERANGE);
  CHECK_EQ_INT(wv_cidr_parse("lab.example", 11, &one), WV_EINVAL);
  char many[64 * 16] = "";
  for (int i = 0; i < WV_CIDR_LIST_MAX + 1; i++)
    snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.0.%d,", i);
  CHECK_EQ_INT(wv_cidr_list_parse(many, &c, why, sizeof why), WV_ETOOBIG);
}

TEST(route_classes) {
  CHECK_EQ_INT(wv_metrics_route_class("/v2/wt/abc/library/busybox/manifests/latest", true),
               WV_METRICS_ROUTE_MANIFEST);
  CHECK_EQ_INT(wv_metrics_route_class("/v2/library/busybox/blobs/sha256:00", true),
               WV_METRICS_ROUTE_BLOB);
  CHECK_EQ_INT(wv_metrics_route_class("/v2/", true), WV_METRICS_ROUTE_V2);
  CHECK_EQ_INT(wv_metrics_route_class("/v1alpha2/container", true), WV_METRICS_ROUTE_CONTAINER);
  CHECK_EQ_INT(wv_metrics_route_class("/container-token", true), WV_METRICS_ROUTE_CONTAINER);
  CHECK_EQ_INT(wv_metrics_route_class("/v1alpha1/builds/x", true), WV_METRICS_ROUTE_API);
  CHECK_EQ_INT(wv_metrics_route_class("/view/builds/x", true), WV_METRICS_ROUTE_VIEW);
  CHECK_EQ_INT(wv_metrics_route_class("/metrics", true), WV_METRICS_ROUTE_METRICS);
  CHECK_EQ_INT(wv_metrics_route_class("/service-info", true), WV_METRICS_ROUTE_HEALTH);
  CHECK_EQ_INT(wv_metrics_route_class("/foo", true), WV_METRICS_ROUTE_OTHER);
  CHECK_EQ_INT(wv_metrics_route_class("/v2/x/manifests/y", false), WV_METRICS_ROUTE_UNROUTED);
}

#define THREADS 8
#define PER_THREAD 100000

static void *count_many(void *arg) {
  (void)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    wv_metrics_add(WV_METRICS_HOT_HIT, 1);
    wv_metrics_request(WV_METRICS_ROUTE_MANIFEST, 200, wv_metrics_start());
  }
  return NULL;
}

static const char *find_line(const char *text, const char *prefix) {
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, prefix, strlen(prefix)) == 0)
      return p + strlen(prefix);
  return NULL;
}

TEST(threads_sum_exactly) {
  wv_metrics_reset();
  wv_metrics_enable(true);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    CHECK_EQ_INT(pthread_create(&t[i], NULL, count_many, NULL), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  CHECK_EQ_INT(wv_metrics_sum(WV_METRICS_HOT_HIT), THREADS * PER_THREAD);
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  CHECK_OK(wv_metrics_write(&b));
  const char *v =
      find_line(b.data, "waved_http_requests_total{class=\"manifest\",status=\"200\"} ");
  CHECK(v);
  CHECK_EQ_INT(strtoull(v, NULL, 10), THREADS * PER_THREAD);
  v = find_line(b.data, "waved_http_request_duration_seconds_count{class=\"manifest\"} ");
  CHECK(v);
  CHECK_EQ_INT(strtoull(v, NULL, 10), THREADS * PER_THREAD);
  v = find_line(b.data,
                "waved_http_request_duration_seconds_bucket{class=\"manifest\",le=\"+Inf\"} ");
  CHECK(v);
  CHECK_EQ_INT(strtoull(v, NULL, 10), THREADS * PER_THREAD);
  CHECK(find_line(b.data, "waved_hotpath_requests_total{result=\"hit\"} 800000") != NULL);
  CHECK(find_line(b.data, "process_resident_memory_bytes ") != NULL);
  wv_buf_free(&b);
}

TEST(off_counts_nothing) {
  wv_metrics_reset();
  wv_metrics_enable(false);
  uint64_t t0 = wv_metrics_start();
  CHECK_EQ_INT(t0, 0);
  wv_metrics_request(WV_METRICS_ROUTE_BLOB, 200, t0);
  wv_metrics_add(WV_METRICS_HOT_MISS, 1);
  wv_metrics_enable(true);
  CHECK_EQ_INT(wv_metrics_sum(WV_METRICS_HOT_MISS), 0);
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  CHECK_OK(wv_metrics_write(&b));
  CHECK(find_line(b.data, "waved_http_requests_total{class=\"blob\"") == NULL);
  wv_buf_free(&b);
}

TEST(statuses_buckets_and_labels) {
  wv_metrics_reset();
  wv_metrics_request(WV_METRICS_ROUTE_API, 429, wv_metrics_start());
  wv_metrics_request(WV_METRICS_ROUTE_API, 299, wv_metrics_start()); /* not listed: "other" */
  wv_metrics_upstream("reg.example:5000", 30000000, false);          /* 30 ms */
  wv_metrics_upstream("reg.example:5000", 2000000000ULL, true);
  wv_metrics_upstream("we\"ird", 1, false);
  wv_metrics_job_end("build", "SUCCEEDED", 45LL * 1000000000);
  wv_metrics_job_end("build", "FAILED", 0);
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  CHECK_OK(wv_metrics_write(&b));
  CHECK(find_line(b.data, "waved_http_requests_total{class=\"api\",status=\"429\"} 1") != NULL);
  CHECK(find_line(b.data, "waved_http_requests_total{class=\"api\",status=\"other\"} 1") != NULL);
  CHECK(find_line(b.data, "waved_upstream_requests_total{registry=\"reg.example:5000\"} 2") !=
        NULL);
  CHECK(find_line(b.data, "waved_upstream_errors_total{registry=\"reg.example:5000\"} 1") != NULL);
  CHECK(find_line(b.data, "waved_upstream_request_duration_seconds_bucket{registry=\"reg.example:"
                          "5000\",le=\"0.025\"} 0") != NULL);
  CHECK(find_line(b.data, "waved_upstream_request_duration_seconds_bucket{registry=\"reg.example:"
                          "5000\",le=\"0.05\"} 1") != NULL);
  CHECK(find_line(b.data, "waved_upstream_requests_total{registry=\"we\\\"ird\"} 1") != NULL);
  CHECK(find_line(b.data, "waved_jobs_finished_total{kind=\"build\",state=\"succeeded\"} 1") !=
        NULL);
  CHECK(find_line(b.data, "waved_jobs_finished_total{kind=\"build\",state=\"failed\"} 1") != NULL);
  CHECK(find_line(b.data, "waved_job_duration_seconds_bucket{kind=\"build\",le=\"30\"} 0") != NULL);
  CHECK(find_line(b.data, "waved_job_duration_seconds_bucket{kind=\"build\",le=\"60\"} 1") != NULL);
  CHECK(find_line(b.data, "waved_job_duration_seconds_count{kind=\"build\"} 1") != NULL);
  wv_buf_free(&b);
}

TEST(registries_are_capped) {
  wv_metrics_reset();
  char name[32];
  for (int i = 0; i < WV_METRICS_REGISTRIES + 10; i++) {
    snprintf(name, sizeof name, "r%d.example", i);
    wv_metrics_upstream(name, 1000, false);
  }
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  CHECK_OK(wv_metrics_write(&b));
  CHECK(find_line(b.data, "waved_upstream_requests_total{registry=\"other\"} 10") != NULL);
  wv_buf_free(&b);
}

WV_TESTS(T(cidr_parse_and_match), T(cidr_bad_entries_are_named), T(route_classes),
         T(threads_sum_exactly), T(off_counts_nothing), T(statuses_buckets_and_labels),
         T(registries_are_capped))
