/*
 * Unit tests for core/ratelimit: parsing "<max>/<period>", the token-bucket
 * math and Retry-After, independence of keys, bounded memory and eviction,
 * concurrent callers, and the rate-limit.* configuration keys.
 */
#include "core/config.h"
#include "core/err.h"
#include "core/ratelimit.h"
#include "tests/runner.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define S 1000000000LL /* ns per second */
#define T0 (1000 * S)  /* an arbitrary monotonic start */

static wv_ratelimit_rate_t rate(const char *s) {
  wv_ratelimit_rate_t r = {0, 0};
  char why[128];
  if (wv_ratelimit_rate_parse(s, &r, why, sizeof why))
    fprintf(stderr, "  parse %s: %s\n", s, why);
  return r;
}

TEST(parse_good) {
  wv_ratelimit_rate_t r;
  char why[128];
  CHECK_OK(wv_ratelimit_rate_parse("10/1h", &r, why, sizeof why));
  CHECK_EQ_INT(r.max, 10);
  CHECK_EQ_INT(r.period_ms, 3600000);
  CHECK_OK(wv_ratelimit_rate_parse("2000/1m", &r, why, sizeof why));
  CHECK_EQ_INT(r.max, 2000);
  CHECK_EQ_INT(r.period_ms, 60000);
  CHECK_OK(wv_ratelimit_rate_parse("25/d", &r, why, sizeof why)); /* a bare unit is one of it */
  CHECK_EQ_INT(r.period_ms, 86400000);
  CHECK_OK(wv_ratelimit_rate_parse("1/1500ms", &r, why, sizeof why));
  CHECK_EQ_INT(r.period_ms, 1500);
  CHECK_OK(wv_ratelimit_rate_parse("1000000000/366d", &r, why, sizeof why));
  CHECK_EQ_INT(r.max, 1000000000);
  CHECK_OK(wv_ratelimit_rate_parse("off", &r, why, sizeof why));
  CHECK_EQ_INT(r.max, 0);
}

TEST(parse_bad) {
  static const struct {
    const char *s, *why;
  } bad[] = {
      {"", "invalid rate '' (expected <max>/<period>, e.g. 10/1h, or off)"},
      {"10", "invalid rate '10' (expected <max>/<period>, e.g. 10/1h, or off)"},
      {"/1h", "invalid rate '/1h' (expected <max>/<period>, e.g. 10/1h, or off)"},
      {"-1/1h", "invalid rate '-1/1h' (expected <max>/<period>, e.g. 10/1h, or off)"},
      {"10 / 1h", "invalid rate '10 / 1h' (expected <max>/<period>, e.g. 10/1h, or off)"},
      {"0/1h", "invalid rate '0/1h' (max must be 1..1000000000 permits)"},
      {"1000000001/1h", "invalid rate '1000000001/1h' (max must be 1..1000000000 permits)"},
      {"99999999999999999999999/1h",
       "invalid rate '99999999999999999999999/1h' (max must be 1..1000000000 permits)"},
      {"10/", "invalid rate '10/' (period must be a duration such as 30s, 1m, 1h or 1d)"},
      {"10/1x", "invalid rate '10/1x' (period must be a duration such as 30s, 1m, 1h or 1d)"},
      {"10/1h ", "invalid rate '10/1h ' (period must be a duration such as 30s, 1m, 1h or 1d)"},
      {"10/0h", "invalid rate '10/0h' (period must be 1s..366d)"},
      {"10/999ms", "invalid rate '10/999ms' (period must be 1s..366d)"},
      {"10/367d", "invalid rate '10/367d' (period must be 1s..366d)"},
      {"10/99999999999999999999d", "invalid rate '10/99999999999999999999d' (period must be "
                                   "1s..366d)"},
      {"OFF", "invalid rate 'OFF' (expected <max>/<period>, e.g. 10/1h, or off)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wv_ratelimit_rate_t r;
    char why[160];
    CHECK_EQ_INT(wv_ratelimit_rate_parse(bad[i].s, &r, why, sizeof why), WV_EINVAL);
    CHECK_EQ_STR(why, bad[i].why);
  }
}

TEST(burst_then_one_per_interval) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("build", rate("10/1h"), rate("off"), 64, &rl));
  int64_t retry = 0;
  for (int i = 0; i < 10; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0, &retry));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 360); /* one permit every 3600/10 s */
  /* A refusal takes nothing: a second later the wait is one second shorter. */
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0 + S, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 359);
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0 + 360 * S - 1, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 1); /* a partial second is rounded up */
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0 + 360 * S, &retry));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0 + 360 * S, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 360);
  /* After a whole idle period the bucket is full again, never fuller. */
  int64_t later = T0 + 10 * 3600 * S;
  for (int i = 0; i < 10; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", later, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", later, NULL), WV_EBUSY);
  wv_ratelimit_free(rl);
}

TEST(peek_takes_nothing) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("authentication", rate("3/1m"), rate("off"), 64, &rl));
  int64_t retry = 0;
  /* Peeking never consumes: a thousand peeks leave the whole burst. */
  for (int i = 0; i < 1000; i++)
    CHECK_OK(wv_ratelimit_peek_at(rl, NULL, "10.0.0.9", T0, &retry));
  for (int i = 0; i < 3; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.9", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_peek_at(rl, NULL, "10.0.0.9", T0, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 20);
  CHECK_OK(wv_ratelimit_peek_at(rl, NULL, "10.0.0.10", T0, &retry)); /* others unaffected */
  CHECK_EQ_INT(wv_ratelimit_peek_at(rl, NULL, "10.0.0.9", T0 + 19 * S, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 1);
  CHECK_OK(wv_ratelimit_peek_at(rl, NULL, "10.0.0.9", T0 + 20 * S, &retry));
  wv_ratelimit_free(rl);
}

/* A permit given back (wv_ratelimit_refund) is as if never taken: the same key gets it again,
 * and a refund never fills a bucket past full, nor touches other keys or classes. */
TEST(refund_gives_a_permit_back) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("pull", rate("3/1h"), rate("2/1h"), 64, &rl));
  int64_t retry = 0;
  for (int i = 0; i < 3; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0, &retry), WV_EBUSY);
  wv_ratelimit_refund_at(rl, NULL, "10.0.0.1", T0);
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 1200); /* the refund moved nothing else */
  /* Refunds past full: the burst stays max. */
  for (int i = 0; i < 10; i++)
    wv_ratelimit_refund_at(rl, NULL, "10.0.0.2", T0);
  wv_ratelimit_refund_at(rl, NULL, "10.0.0.2", T0);
  for (int i = 0; i < 3; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.2", T0, NULL));
  for (int i = 0; i < 5; i++)
    wv_ratelimit_refund_at(rl, NULL, "10.0.0.2", T0);
  for (int i = 0; i < 3; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.2", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.2", T0, NULL), WV_EBUSY);
  /* An account's bucket is its own: refunding the address does not touch alice's. */
  CHECK_OK(wv_ratelimit_acquire_at(rl, "alice", "10.0.0.1", T0, NULL));
  CHECK_OK(wv_ratelimit_acquire_at(rl, "alice", "10.0.0.1", T0, NULL));
  wv_ratelimit_refund_at(rl, NULL, "10.0.0.1", T0);
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, "alice", "10.0.0.1", T0, NULL), WV_EBUSY);
  wv_ratelimit_refund_at(rl, "alice", NULL, T0);
  CHECK_OK(wv_ratelimit_acquire_at(rl, "alice", NULL, T0, NULL));
  wv_ratelimit_refund(NULL, "alice", NULL); /* no limiter: nothing to do */
  wv_ratelimit_free(rl);
}

TEST(retry_after_rounds_up) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("pull", rate("3/10s"), rate("3/10s"), 64, &rl));
  int64_t retry = 0;
  for (int i = 0; i < 3; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, "alice", NULL, T0, &retry));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, "alice", NULL, T0, &retry), WV_EBUSY);
  CHECK_EQ_INT(retry, 4); /* 3.33 s */
  /* Then one every 3.33 s: two more before T0 + 10 s at a steady pace. */
  int granted = 0;
  for (int64_t t = T0; t < T0 + 10 * S; t += S / 10)
    granted += wv_ratelimit_acquire_at(rl, "alice", NULL, t, NULL) == 0;
  CHECK_EQ_INT(granted, 2);
  wv_ratelimit_free(rl);
}

TEST(keys_are_independent) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("pull", rate("1/1h"), rate("2/1m"), 64, &rl));
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "127.0.0.1", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "127.0.0.1", T0, NULL), WV_EBUSY);
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "127.0.0.2", T0, NULL)); /* another address */
  /* An account has its own bucket and rate, whatever address it comes from. */
  CHECK_OK(wv_ratelimit_acquire_at(rl, "alice", "127.0.0.1", T0, NULL));
  CHECK_OK(wv_ratelimit_acquire_at(rl, "alice", "127.0.0.2", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, "alice", "127.0.0.3", T0, NULL), WV_EBUSY);
  CHECK_OK(wv_ratelimit_acquire_at(rl, "bob", "127.0.0.1", T0, NULL));
  /* An account named like an address does not share the address's bucket. */
  CHECK_OK(wv_ratelimit_acquire_at(rl, "127.0.0.1", NULL, T0, NULL));
  /* "" is anonymous; an unknown address is one shared key. */
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, "", "127.0.0.1", T0, NULL), WV_EBUSY);
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, NULL, T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "", T0, NULL), WV_EBUSY);
  wv_ratelimit_free(rl);
}

/* Anonymous IPv6 clients are keyed by their /64: rotating addresses gains nothing. */
TEST(ipv6_clients_share_their_64) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("pull", rate("1/1h"), rate("1/1h"), 64, &rl));
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "2001:db8:1:2::1", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "2001:db8:1:2:ffff::7", T0, NULL), WV_EBUSY);
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "2001:0db8:0001:0002:0:0:0:9", T0, NULL),
               WV_EBUSY);
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "2001:db8:1:3::1", T0, NULL)); /* another /64 */
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "::1", T0, NULL));
  wv_ratelimit_free(rl);
}

TEST(off_class_is_unlimited) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("build", rate("off"), rate("1/1h"), 64, &rl));
  for (int i = 0; i < 1000; i++)
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.1", T0, NULL));
  CHECK_OK(wv_ratelimit_acquire_at(rl, "u", NULL, T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, "u", NULL, T0, NULL), WV_EBUSY);
  /* The real clock works too (the monotonic one). */
  int64_t retry = 0;
  CHECK_OK(wv_ratelimit_acquire(rl, "v", NULL, &retry));
  CHECK_EQ_INT(wv_ratelimit_acquire(rl, "v", NULL, &retry), WV_EBUSY);
  CHECK(retry >= 1 && retry <= 3600);
  wv_ratelimit_free(rl);
}

TEST(messages) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("build", rate("1/1h"), rate("1/1h"), 64, &rl));
  CHECK_EQ_STR(wv_ratelimit_message(a, rl, "alice", "10.0.0.1"),
               "Request exceeded build rate limit for user alice");
  CHECK_EQ_STR(wv_ratelimit_message(a, rl, NULL, "203.0.113.7"),
               "Request exceeded build rate limit for IP 203.0.113.7");
  CHECK_EQ_STR(wv_ratelimit_message(a, rl, "", NULL),
               "Request exceeded build rate limit for IP unknown");
  wv_ratelimit_free(rl);
}

TEST(bounded_and_evicts) {
  wv_ratelimit_t *rl;
  CHECK_EQ_INT(wv_ratelimit_new("pull", rate("1/1h"), rate("1/1h"), 0, &rl), WV_EINVAL);
  CHECK_EQ_INT(wv_ratelimit_new("pull", rate("1/1h"), rate("1/1h"), WV_RATELIMIT_MAX_KEYS + 1, &rl),
               WV_EINVAL);
  CHECK_OK(wv_ratelimit_new("pull", rate("1/1h"), rate("1/1h"), 8, &rl));
  CHECK_EQ_INT(wv_ratelimit_capacity(rl), 8); /* one set of 8 */
  char ip[32];
  for (int i = 0; i < 8; i++) {
    snprintf(ip, sizeof ip, "10.0.0.%d", i);
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, ip, T0 + i, NULL));
  }
  CHECK_EQ_INT(wv_ratelimit_evictions(rl), 0);
  /* All 8 tracked keys are busy: a ninth forgets the one whose bucket fills first. */
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.1.0", T0 + 8, NULL));
  CHECK_EQ_INT(wv_ratelimit_evictions(rl), 1);
  CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.0", T0 + 9, NULL)); /* forgotten: allowed */
  CHECK_EQ_INT(wv_ratelimit_evictions(rl), 2);
  CHECK_EQ_INT(wv_ratelimit_acquire_at(rl, NULL, "10.0.0.7", T0 + 9, NULL), WV_EBUSY);
  /* Once their buckets are full again slots are reused without forgetting anyone. */
  int64_t later = T0 + 3601 * S;
  for (int i = 0; i < 100; i++) {
    snprintf(ip, sizeof ip, "10.1.%d.%d", i / 8, i % 8);
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, ip, later + (int64_t)i * 3600 * S, NULL));
  }
  CHECK_EQ_INT(wv_ratelimit_evictions(rl), 2);
  /* Many keys in a large table: capacity holds them all with no eviction. */
  wv_ratelimit_free(rl);
  CHECK_OK(wv_ratelimit_new("pull", rate("1/1h"), rate("1/1h"), 1000, &rl));
  CHECK_EQ_INT(wv_ratelimit_capacity(rl), 1024);
  uint64_t before = wv_ratelimit_evictions(rl);
  for (int i = 0; i < 5000; i++) {
    snprintf(ip, sizeof ip, "k%d", i);
    CHECK_OK(wv_ratelimit_acquire_at(rl, NULL, ip, T0, NULL));
  }
  /* 5000 busy keys in 1024 slots: at least 3976 were forgotten, memory stayed put. */
  CHECK(wv_ratelimit_evictions(rl) - before >= 5000 - 1024);
  wv_ratelimit_free(rl);
}

typedef struct {
  wv_ratelimit_t *rl;
  const char *user;
  int granted;
} worker_t;

static void *hammer(void *arg) {
  worker_t *w = arg;
  char ip[32];
  for (int i = 0; i < 20000; i++) {
    snprintf(ip, sizeof ip, "10.9.%d.%d", (i / 256) % 4, i % 256); /* 1024 distinct addresses */
    w->granted += wv_ratelimit_acquire_at(w->rl, w->user, ip, T0, NULL) == 0;
  }
  return NULL;
}

TEST(concurrent_callers_share_exact_budget) {
  wv_ratelimit_t *rl;
  CHECK_OK(wv_ratelimit_new("pull", rate("5/1h"), rate("1000/1h"), 65536, &rl));
  worker_t w[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (worker_t){rl, i < 2 ? "shared-user" : NULL, 0};
    CHECK_EQ_INT(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  /* Two threads share one account's 1000; two share 1024 addresses x 5. */
  CHECK_EQ_INT(w[0].granted + w[1].granted, 1000);
  CHECK_EQ_INT(w[2].granted + w[3].granted, 1024 * 5);
  CHECK_EQ_INT(wv_ratelimit_evictions(rl), 0);
  wv_ratelimit_free(rl);
}

/* ---- configuration ---- */

/* Loads text as a config file over the defaults; err (512 bytes) gets the message. */
static int load_text(wv_config_t *cfg, const char *text, char *path, size_t pathlen, char *err) {
  snprintf(path, pathlen, "/tmp/wv-rl-config-XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0)
    return WV_EIO;
  ssize_t w = write(fd, text, strlen(text));
  close(fd);
  int rc = w == (ssize_t)strlen(text) ? wv_config_defaults(cfg) : WV_EIO;
  rc = rc ? rc : wv_config_load(cfg, path, err, 512);
  unlink(path);
  return rc;
}

TEST(config_defaults_are_off) {
  wv_config_t cfg;
  wv_ratelimit_t *b = (void *)1, *p = (void *)1;
  CHECK_OK(wv_config_defaults(&cfg));
  CHECK(!cfg.rl_enabled);
  CHECK_EQ_STR(cfg.rl_build_anon, "10/1h");
  CHECK_EQ_STR(cfg.rl_build_auth, "250/1h");
  CHECK_EQ_STR(cfg.rl_pull_anon, "250/1h");
  CHECK_EQ_STR(cfg.rl_pull_auth, "2000/1m");
  CHECK_OK(wv_ratelimit_from_config(&cfg, &b, &p));
  CHECK(b == NULL && p == NULL); /* disabled: the callers test one NULL */
  wv_config_free(&cfg);
}

TEST(config_enabled) {
  char err[512];
  wv_config_t cfg;
  wv_ratelimit_t *b, *p;
  char path[64];
  CHECK_OK(load_text(&cfg,
                     "rate-limit:\n  enabled: true\n  maxKeys: 100\n  build:\n"
                     "    anonymous: 2/1m\n    authenticated: off\n  pull:\n"
                     "    anonymous: 'off'\n    authenticated: \"off\"\n",
                     path, sizeof path, err));
  CHECK_OK(wv_ratelimit_from_config(&cfg, &b, &p));
  CHECK(b != NULL && p == NULL); /* both pull rates off: no pull limiter at all */
  CHECK_EQ_INT(wv_ratelimit_capacity(b), 128);
  CHECK_OK(wv_ratelimit_acquire_at(b, NULL, "1.2.3.4", T0, NULL));
  CHECK_OK(wv_ratelimit_acquire_at(b, NULL, "1.2.3.4", T0, NULL));
  CHECK_EQ_INT(wv_ratelimit_acquire_at(b, NULL, "1.2.3.4", T0, NULL), WV_EBUSY);
  CHECK_OK(wv_ratelimit_acquire_at(b, "alice", NULL, T0, NULL));
  wv_ratelimit_free(b);
  wv_config_free(&cfg);
}

TEST(config_bad_rate_is_a_clear_error) {
  char err[512];
  wv_config_t cfg;
  char path[64], want[256];
  int rc = load_text(&cfg, "rate-limit:\n  pull:\n    authenticated: 100/1 minute\n", path,
                     sizeof path, err);
  wv_config_free(&cfg);
  CHECK_EQ_INT(rc, WV_EINVAL);
  snprintf(want, sizeof want,
           "%s:3: rate-limit.pull.authenticated: invalid rate '100/1 minute' (period must be a "
           "duration such as 30s, 1m, 1h or 1d)",
           path);
  CHECK_EQ_STR(err, want);
  rc = load_text(&cfg, "rate-limit.build.anonymous: 10\n", path, sizeof path, err);
  wv_config_free(&cfg);
  CHECK(rc != 0);
  CHECK_HAS(err, "rate-limit.build.anonymous: invalid rate '10'");
  rc = load_text(&cfg, "rate-limit:\n  enabled: maybe\n", path, sizeof path, err);
  wv_config_free(&cfg);
  CHECK(rc != 0);
  CHECK_HAS(err, "rate-limit.enabled: invalid boolean 'maybe'");
}

/* ---- cluster-wide buckets (wv_ratelimit_share) -------------------------------------- */

/* Shared buckets in memory, standing in for Redis (GCRA on its own clock). */
typedef struct {
  char keys[4][64];
  int64_t tat_us[4];
  char key[64]; /* the last key asked */
  int64_t now_us;
  int calls;
  int fail; /* non-zero: answer with this error (unreachable) */
} fake_cluster_t;

static int fake_shared(void *arg, const char *key, int64_t iv, int64_t burst, bool take,
                       int64_t *ahead) {
  fake_cluster_t *f = arg;
  f->calls++;
  if (f->fail)
    return f->fail;
  snprintf(f->key, sizeof f->key, "%s", key);
  int k = 0;
  while (k < 3 && f->keys[k][0] && strcmp(f->keys[k], key) != 0)
    k++;
  snprintf(f->keys[k], sizeof f->keys[k], "%s", key);
  int64_t tat = f->tat_us[k] > f->now_us ? f->tat_us[k] : f->now_us;
  if (tat + iv - f->now_us - burst > 0) {
    *ahead = tat - f->now_us;
    return WV_EBUSY;
  }
  if (take)
    tat += iv;
  f->tat_us[k] = tat;
  *ahead = tat - f->now_us;
  return 0;
}

TEST(shared_bucket_holds_across_instances) {
  wv_ratelimit_t *a, *b;
  CHECK_OK(wv_ratelimit_new("pull", rate("5/1h"), rate("off"), 64, &a));
  CHECK_OK(wv_ratelimit_new("pull", rate("5/1h"), rate("off"), 64, &b));
  fake_cluster_t f = {.now_us = 1};
  CHECK(!wv_ratelimit_shared(a));
  wv_ratelimit_share(a, fake_shared, &f);
  wv_ratelimit_share(b, fake_shared, &f);
  CHECK(wv_ratelimit_shared(a) && wv_ratelimit_shared(b) && !wv_ratelimit_shared(NULL));
  /* Ten pulls of one client spread over two instances: five granted, not ten. */
  int granted = 0;
  int64_t retry = 0;
  for (int i = 0; i < 10; i++)
    granted += wv_ratelimit_acquire_at(i % 2 ? b : a, NULL, "10.1.2.3", T0, &retry) == 0;
  CHECK_EQ_INT(granted, 5);
  CHECK_EQ_STR(f.key, "pull:i:10.1.2.3");
  CHECK(retry >= 700 && retry <= 721); /* one interval (12 min) away */
  /* Refused locally without a round trip once the local bucket learned the cluster's. */
  int calls = f.calls;
  CHECK_EQ_INT(wv_ratelimit_acquire_at(a, NULL, "10.1.2.3", T0, &retry), WV_EBUSY);
  CHECK_EQ_INT(wv_ratelimit_peek_at(b, NULL, "10.1.2.3", T0, &retry), WV_EBUSY);
  CHECK_EQ_INT(f.calls, calls);
  /* Another client is not affected; an account's key names it. */
  CHECK_OK(wv_ratelimit_acquire_at(b, NULL, "10.1.2.4", T0, NULL));
  wv_ratelimit_free(a);
  wv_ratelimit_free(b);
}

TEST(shared_bucket_unreachable_fails_open_to_local) {
  wv_ratelimit_t *a;
  CHECK_OK(wv_ratelimit_new("build", rate("off"), rate("3/1h"), 64, &a));
  fake_cluster_t f = {.now_us = 1, .fail = WV_EUNAVAIL};
  wv_ratelimit_share(a, fake_shared, &f);
  int granted = 0;
  for (int i = 0; i < 6; i++)
    granted += wv_ratelimit_acquire_at(a, "alice", NULL, T0, NULL) == 0;
  CHECK_EQ_INT(granted, 3); /* the local limit still holds */
  CHECK_EQ_INT(f.calls, 3); /* refused ones never asked */
  f.fail = 0;
  CHECK_EQ_INT(wv_ratelimit_acquire_at(a, "bob", NULL, T0, NULL), 0);
  CHECK_EQ_STR(f.key, "build:u:bob");
  wv_ratelimit_free(a);
}

WV_TESTS(T(parse_good), T(parse_bad), T(burst_then_one_per_interval), T(peek_takes_nothing),
         T(refund_gives_a_permit_back), T(retry_after_rounds_up), T(keys_are_independent),
         T(ipv6_clients_share_their_64), T(off_class_is_unlimited), T(messages),
         T(bounded_and_evicts), T(concurrent_callers_share_exact_budget),
         T(config_defaults_are_off), T(config_enabled), T(config_bad_rate_is_a_clear_error),
         T(shared_bucket_holds_across_instances), T(shared_bucket_unreachable_fails_open_to_local))
