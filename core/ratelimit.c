/*
 * core/ratelimit.c — token-bucket rate limits in a fixed set-associative
 * table (see ratelimit.h).
 *
 * DESIGN. The bucket of a key is kept as GCRA's theoretical arrival time
 * (tat): the instant at which the bucket would be full again. With
 * interval = period/max and burst = max * interval, a request at now is
 * granted when max(tat, now) + interval - now <= burst, and tat then
 * advances by one interval; otherwise it waits until that inequality would
 * hold, which is the Retry-After. A slot whose tat <= now describes a full
 * bucket, exactly like a key never seen, so such slots count as free.
 *
 * Keys are hashed with SipHash under a random key drawn at creation (so a
 * client cannot aim at one set), prefixed by their kind ("u" account, "i"
 * address) so an account named like an address never shares its bucket.
 * Only the 64-bit hash is stored: two keys share a bucket only on a full
 * 64-bit collision. The hash picks a set of WAYS slots; the stripe mutex of
 * the set guards its slots.
 */
#include "core/ratelimit.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/siphash.h"
#include "core/timefmt.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 8
#define STRIPES 64
#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

typedef struct {
  uint64_t h;  /* 0 = never used */
  int64_t tat; /* monotonic ns at which the bucket is full again */
} slot_t;

typedef struct {
  _Alignas(64) pthread_mutex_t mu;
} stripe_t;

typedef struct {
  int64_t interval_ns; /* one permit's worth of time; 0 = unlimited */
  int64_t burst_ns;    /* max * interval */
} bucket_t;

struct wv_ratelimit {
  char what[16];
  bucket_t anon, auth;
  uint8_t key[16];
  size_t nsets; /* power of two */
  slot_t *slots;
  stripe_t stripes[STRIPES];
  _Atomic uint64_t evictions;
  _Atomic uint64_t refused;      /* permits refused (acquire past the limit) */
  wv_ratelimit_shared_cb shared; /* cluster-wide buckets, or NULL */
  void *shared_arg;
  atomic_bool shared_down; /* the last shared call failed (logged once) */
};

/* ---- parsing ---- */

static int bad(char *why, size_t whylen, const char *s, const char *reason) {
  snprintf(why, whylen, "invalid rate '%s' (%s)", s, reason);
  return WV_EINVAL;
}

/* "<n><unit>" or "<unit>" (n = 1) into ms; WV_EINVAL when not a known period. */
static int parse_period(const char *p, int64_t *ms) {
  static const struct {
    const char *u;
    int64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
  uint64_t n = 1;
  if (isdigit((unsigned char)*p)) {
    for (n = 0; isdigit((unsigned char)*p); p++) {
      if (n > WV_RATELIMIT_MAX_PERIOD_MS)
        return WV_ERANGE;
      n = n * 10 + (uint64_t)(*p - '0');
    }
  }
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(p, units[i].u) == 0) {
      if (n > (uint64_t)(WV_RATELIMIT_MAX_PERIOD_MS / units[i].ms))
        return WV_ERANGE;
      *ms = (int64_t)n * units[i].ms;
      return 0;
    }
  }
  return WV_EINVAL;
}

int wv_ratelimit_rate_parse(const char *s, wv_ratelimit_rate_t *out, char *why, size_t whylen) {
  if (why && whylen)
    why[0] = '\0';
  memset(out, 0, sizeof *out);
  if (!s)
    return bad(why, whylen, "", "expected <max>/<period>, e.g. 10/1h, or off");
  if (strcmp(s, "off") == 0)
    return 0;
  const char *p = s;
  uint64_t max = 0;
  for (; isdigit((unsigned char)*p); p++) /* saturates past the cap: refused below */
    max = max > WV_RATELIMIT_MAX_PERMITS ? max : max * 10 + (uint64_t)(*p - '0');
  if (p == s || *p != '/')
    return bad(why, whylen, s, "expected <max>/<period>, e.g. 10/1h, or off");
  if (max == 0 || max > WV_RATELIMIT_MAX_PERMITS)
    return bad(why, whylen, s, "max must be 1..1000000000 permits");
  int64_t ms = 0;
  int rc = parse_period(p + 1, &ms);
  if (rc == WV_EINVAL)
    return bad(why, whylen, s, "period must be a duration such as 30s, 1m, 1h or 1d");
  if (rc || ms < WV_RATELIMIT_MIN_PERIOD_MS || ms > WV_RATELIMIT_MAX_PERIOD_MS)
    return bad(why, whylen, s, "period must be 1s..366d");
  out->max = (uint32_t)max;
  out->period_ms = ms;
  return 0;
}

/* ---- the table ---- */

static bucket_t bucket_of(wv_ratelimit_rate_t r) {
  bucket_t b = {0, 0};
  if (r.max == 0)
    return b;
  /* Rounding the interval down lets at most max permits through per burst
   * (burst is max whole intervals) and refills at most 1ns per permit early. */
  b.interval_ns = r.period_ms * NS_PER_MS / (int64_t)r.max;
  if (b.interval_ns < 1)
    b.interval_ns = 1;
  b.burst_ns = b.interval_ns * (int64_t)r.max;
  return b;
}

static bool rate_ok(wv_ratelimit_rate_t r) {
  return r.max == 0 ||
         (r.max <= WV_RATELIMIT_MAX_PERMITS && r.period_ms >= WV_RATELIMIT_MIN_PERIOD_MS &&
          r.period_ms <= WV_RATELIMIT_MAX_PERIOD_MS);
}

int wv_ratelimit_new(const char *what, wv_ratelimit_rate_t anonymous,
                     wv_ratelimit_rate_t authenticated, size_t max_keys, wv_ratelimit_t **out) {
  *out = NULL;
  if (!what || strlen(what) >= sizeof((wv_ratelimit_t *)0)->what || max_keys == 0 ||
      max_keys > WV_RATELIMIT_MAX_KEYS || !rate_ok(anonymous) || !rate_ok(authenticated))
    return WV_EINVAL;
  wv_ratelimit_t *rl = aligned_alloc(64, (sizeof *rl + 63) / 64 * 64);
  if (!rl)
    return WV_ENOMEM;
  memset(rl, 0, sizeof *rl);
  snprintf(rl->what, sizeof rl->what, "%s", what);
  rl->anon = bucket_of(anonymous);
  rl->auth = bucket_of(authenticated);
  rl->nsets = 1;
  while (rl->nsets * WAYS < max_keys)
    rl->nsets <<= 1;
  rl->slots = calloc(rl->nsets * WAYS, sizeof *rl->slots);
  int rc = rl->slots ? wv_rand_bytes(rl->key, sizeof rl->key) : WV_ENOMEM;
  if (rc) {
    free(rl->slots);
    free(rl);
    return rc;
  }
  for (size_t i = 0; i < STRIPES; i++)
    pthread_mutex_init(&rl->stripes[i].mu, NULL);
  atomic_init(&rl->evictions, 0);
  *out = rl;
  return 0;
}

void wv_ratelimit_free(wv_ratelimit_t *rl) {
  if (!rl)
    return;
  for (size_t i = 0; i < STRIPES; i++)
    pthread_mutex_destroy(&rl->stripes[i].mu);
  free(rl->slots);
  free(rl);
}

static uint64_t hash_key(const wv_ratelimit_t *rl, char kind, const char *k) {
  wv_siphash_t s;
  wv_siphash_init(&s, rl->key);
  wv_siphash_update(&s, &kind, 1);
  wv_siphash_update(&s, k, strlen(k));
  uint64_t h = wv_siphash_final(&s);
  return h ? h : 1; /* 0 marks an unused slot */
}

/*
 * The slot of h in set (WAYS slots): its own, else a free one (unused or
 * full bucket), else the busy one whose bucket fills first, forgotten.
 */
static slot_t *find_slot(wv_ratelimit_t *rl, slot_t *set, uint64_t h, int64_t now) {
  slot_t *free_slot = NULL, *oldest = &set[0];
  for (size_t i = 0; i < WAYS; i++) {
    if (set[i].h == h)
      return &set[i];
    if (!free_slot && (set[i].h == 0 || set[i].tat <= now))
      free_slot = &set[i];
    if (set[i].tat < oldest->tat)
      oldest = &set[i];
  }
  if (!free_slot) {
    free_slot = oldest;
    atomic_fetch_add_explicit(&rl->evictions, 1, memory_order_relaxed);
  }
  free_slot->h = h;
  free_slot->tat = now;
  return free_slot;
}

/*
 * The key of an anonymous client: its IPv4 address, or the /64 of an IPv6
 * one — a single host is usually given a whole /64, and keying on the full
 * address would let it rotate through 2^64 budgets (and crowd others out).
 */
static uint64_t ip_key(const wv_ratelimit_t *rl, const char *ip) {
  struct in6_addr a6;
  if (!ip || !*ip)
    return hash_key(rl, 'i', "unknown");
  if (!strchr(ip, ':') || inet_pton(AF_INET6, ip, &a6) != 1)
    return hash_key(rl, 'i', ip);
  char net[8 * 2 + 1];
  for (int i = 0; i < 8; i++)
    snprintf(net + 2 * i, 3, "%02x", a6.s6_addr[i]);
  return hash_key(rl, '6', net);
}

/*
 * GCRA for one key: the wait until the key's next permit, or <= 0 when one is
 * free. take=true takes it (creating the key's slot); false only looks.
 */
static int gcra(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns, bool take,
                int64_t *retry_after_s) {
  bool authed = user && *user;
  const bucket_t *b = authed ? &rl->auth : &rl->anon;
  if (b->interval_ns == 0)
    return 0;
  uint64_t h = authed ? hash_key(rl, 'u', user) : ip_key(rl, ip);
  size_t set = (size_t)(h >> 32) & (rl->nsets - 1);
  pthread_mutex_t *mu = &rl->stripes[set & (STRIPES - 1)].mu;
  int64_t wait = 0;
  pthread_mutex_lock(mu);
  if (take) {
    slot_t *s = find_slot(rl, &rl->slots[set * WAYS], h, now_ns);
    int64_t tat = s->tat > now_ns ? s->tat : now_ns;
    wait = tat + b->interval_ns - now_ns - b->burst_ns;
    if (wait <= 0)
      s->tat = tat + b->interval_ns;
  } else {
    for (slot_t *s = &rl->slots[set * WAYS], *e = s + WAYS; s < e; s++)
      if (s->h == h && s->tat > now_ns)
        wait = s->tat + b->interval_ns - now_ns - b->burst_ns;
  }
  pthread_mutex_unlock(mu);
  if (wait <= 0)
    return 0;
  if (take)
    atomic_fetch_add_explicit(&rl->refused, 1, memory_order_relaxed);
  if (retry_after_s)
    *retry_after_s = (wait + NS_PER_S - 1) / NS_PER_S;
  return WV_EBUSY;
}

/* ---- cluster-wide buckets ---- */

void wv_ratelimit_share(wv_ratelimit_t *rl, wv_ratelimit_shared_cb cb, void *arg) {
  if (!rl)
    return;
  rl->shared = cb;
  rl->shared_arg = arg;
  atomic_init(&rl->shared_down, false);
}

bool wv_ratelimit_shared(const wv_ratelimit_t *rl) { return rl && rl->shared; }

/* The key every instance names the bucket by (no per-instance hash key). */
static void shared_key(const wv_ratelimit_t *rl, const char *user, const char *ip, char *out,
                       size_t cap) {
  struct in6_addr a6;
  if (user && *user) {
    if (strlen(user) <= 200) {
      snprintf(out, cap, "%s:u:%s", rl->what, user);
      return;
    }
    static const uint8_t zero[16]; /* a stable name for a long account, not a secret */
    wv_siphash_t s;
    wv_siphash_init(&s, zero);
    wv_siphash_update(&s, user, strlen(user));
    snprintf(out, cap, "%s:uh:%016llx", rl->what, (unsigned long long)wv_siphash_final(&s));
  } else if (!ip || !*ip) {
    snprintf(out, cap, "%s:i:unknown", rl->what);
  } else if (!strchr(ip, ':') || inet_pton(AF_INET6, ip, &a6) != 1) {
    snprintf(out, cap, "%s:i:%.64s", rl->what, ip);
  } else {
    int n = snprintf(out, cap, "%s:6:", rl->what);
    for (int i = 0; i < 8 && n + 2 < (int)cap; i++, n += 2)
      snprintf(out + n, cap - (size_t)n, "%02x", a6.s6_addr[i]);
  }
}

/*
 * After the shared call: the local slot of the key gives its permit back
 * (undo, when the cluster refused it) and moves up to the shared bucket's
 * arrival time (now + ahead).
 */
static void sync_local(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns,
                       bool undo, int64_t ahead_ns) {
  bool authed = user && *user;
  const bucket_t *b = authed ? &rl->auth : &rl->anon;
  uint64_t h = authed ? hash_key(rl, 'u', user) : ip_key(rl, ip);
  size_t set = (size_t)(h >> 32) & (rl->nsets - 1);
  pthread_mutex_t *mu = &rl->stripes[set & (STRIPES - 1)].mu;
  pthread_mutex_lock(mu);
  slot_t *s = find_slot(rl, &rl->slots[set * WAYS], h, now_ns);
  if (undo)
    s->tat -= b->interval_ns;
  if (s->tat < now_ns + ahead_ns)
    s->tat = now_ns + ahead_ns;
  pthread_mutex_unlock(mu);
}

static int acquire_shared(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns,
                          int64_t *retry_after_s) {
  const bucket_t *b = user && *user ? &rl->auth : &rl->anon;
  char key[300];
  shared_key(rl, user, ip, key, sizeof key);
  int64_t ahead_us = 0;
  int rc = rl->shared(rl->shared_arg, key, (b->interval_ns + 999) / 1000,
                      (b->burst_ns + 999) / 1000, true, &ahead_us);
  if (rc != 0 && rc != WV_EBUSY) {
    if (!atomic_exchange(&rl->shared_down, true))
      wv_warn("rate limits (%s): the shared buckets do not answer (%s); each instance applies "
              "its own limit until they do",
              rl->what, wv_strerror(rc));
    return 0; /* fail open: the local permit stands */
  }
  if (atomic_exchange(&rl->shared_down, false))
    wv_info("rate limits (%s): shared buckets answer again", rl->what);
  int64_t ahead_ns = ahead_us * 1000;
  sync_local(rl, user, ip, now_ns, rc == WV_EBUSY, ahead_ns);
  if (rc == 0)
    return 0;
  atomic_fetch_add_explicit(&rl->refused, 1, memory_order_relaxed);
  int64_t wait = ahead_ns + b->interval_ns - b->burst_ns;
  if (retry_after_s)
    *retry_after_s = wait > 0 ? (wait + NS_PER_S - 1) / NS_PER_S : 1;
  return WV_EBUSY;
}

int wv_ratelimit_acquire_at(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns,
                            int64_t *retry_after_s) {
  int rc = gcra(rl, user, ip, now_ns, true, retry_after_s);
  const bucket_t *b = user && *user ? &rl->auth : &rl->anon;
  if (rc || !rl->shared || b->interval_ns == 0)
    return rc; /* refused locally: the cluster has seen at least as much */
  return acquire_shared(rl, user, ip, now_ns, retry_after_s);
}

void wv_ratelimit_refund_at(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns) {
  if (!rl)
    return;
  bool authed = user && *user;
  const bucket_t *b = authed ? &rl->auth : &rl->anon;
  if (b->interval_ns == 0)
    return;
  uint64_t h = authed ? hash_key(rl, 'u', user) : ip_key(rl, ip);
  size_t set = (size_t)(h >> 32) & (rl->nsets - 1);
  pthread_mutex_t *mu = &rl->stripes[set & (STRIPES - 1)].mu;
  pthread_mutex_lock(mu);
  for (slot_t *s = &rl->slots[set * WAYS], *e = s + WAYS; s < e; s++)
    if (s->h == h && s->tat > now_ns) /* a tat at or before now is a full bucket already */
      s->tat = s->tat - b->interval_ns > now_ns ? s->tat - b->interval_ns : now_ns;
  pthread_mutex_unlock(mu);
}

void wv_ratelimit_refund(wv_ratelimit_t *rl, const char *user, const char *ip) {
  wv_ratelimit_refund_at(rl, user, ip, wv_mono_ns());
}

int wv_ratelimit_peek_at(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns,
                         int64_t *retry_after_s) {
  return gcra(rl, user, ip, now_ns, false, retry_after_s);
}

int wv_ratelimit_peek(wv_ratelimit_t *rl, const char *user, const char *ip,
                      int64_t *retry_after_s) {
  return wv_ratelimit_peek_at(rl, user, ip, wv_mono_ns(), retry_after_s);
}

int wv_ratelimit_acquire(wv_ratelimit_t *rl, const char *user, const char *ip,
                         int64_t *retry_after_s) {
  return wv_ratelimit_acquire_at(rl, user, ip, wv_mono_ns(), retry_after_s);
}

const char *wv_ratelimit_message(wv_arena_t *a, const wv_ratelimit_t *rl, const char *user,
                                 const char *ip) {
  if (user && *user)
    return wv_arena_sprintf(a, "Request exceeded %s rate limit for user %s", rl->what, user);
  return wv_arena_sprintf(a, "Request exceeded %s rate limit for IP %s", rl->what,
                          ip && *ip ? ip : "unknown");
}

size_t wv_ratelimit_capacity(const wv_ratelimit_t *rl) { return rl->nsets * WAYS; }

uint64_t wv_ratelimit_evictions(const wv_ratelimit_t *rl) {
  return atomic_load_explicit(&((wv_ratelimit_t *)rl)->evictions, memory_order_relaxed);
}

const char *wv_ratelimit_name(const wv_ratelimit_t *rl) { return rl->what; }

uint64_t wv_ratelimit_refused(const wv_ratelimit_t *rl) {
  return atomic_load_explicit(&((wv_ratelimit_t *)rl)->refused, memory_order_relaxed);
}

/* One limiter from two configured rates; NULL (and 0) when both are off. */
static int from_rates(const char *what, const char *anon, const char *auth, int max_keys,
                      wv_ratelimit_t **out) {
  wv_ratelimit_rate_t a, u;
  char why[128];
  *out = NULL;
  if (wv_ratelimit_rate_parse(anon, &a, why, sizeof why) ||
      wv_ratelimit_rate_parse(auth, &u, why, sizeof why))
    return WV_EINVAL;
  if (a.max == 0 && u.max == 0)
    return 0;
  return wv_ratelimit_new(what, a, u, (size_t)max_keys, out);
}

int wv_ratelimit_from_config(const wv_config_t *cfg, wv_ratelimit_t **build,
                             wv_ratelimit_t **pull) {
  *build = *pull = NULL;
  if (!cfg->rl_enabled)
    return 0;
  int rc = from_rates("build", cfg->rl_build_anon, cfg->rl_build_auth, cfg->rl_max_keys, build);
  rc = rc ? rc : from_rates("pull", cfg->rl_pull_anon, cfg->rl_pull_auth, cfg->rl_max_keys, pull);
  if (rc) {
    wv_ratelimit_free(*build);
    *build = NULL;
  }
  return rc;
}

int wv_ratelimit_auth_from_config(const wv_config_t *cfg, wv_ratelimit_t **out) {
  wv_ratelimit_rate_t fail, off = {0, 0};
  *out = NULL;
  if (wv_ratelimit_rate_parse(cfg->auth_failure_rate, &fail, NULL, 0))
    return WV_EINVAL;
  if (fail.max == 0)
    return 0;
  size_t keys = cfg->rl_max_keys > 0 ? (size_t)cfg->rl_max_keys : 100000;
  return wv_ratelimit_new("authentication", fail, off, keys, out);
}
