/*
 * core/ratelimit.h — per-user (or per-client-IP) rate limits on builds and
 * pulls (contract §9.1, architecture §6; docs/rate-limits.md).
 *
 * A rate is "<max>/<period>" (10/1h: ten permits an hour). One limiter
 * (wv_ratelimit_t) serves one kind of permit, build or pull, with two rates:
 * one for authenticated requests, keyed by the account name, and one for
 * anonymous requests, keyed by the client's IP address. Each key has a token
 * bucket of max permits that refills continuously at max per period (GCRA:
 * the whole state of a key is one instant, its "theoretical arrival time"),
 * so a burst of max is allowed at once and the next permit follows
 * period/max later. A refused request learns how long until a permit is
 * available (Retry-After).
 *
 * Memory is fixed at creation: max_keys slots (rounded up to a power of two),
 * 16 bytes each, grouped in sets of 8 chosen by a keyed hash of the key. A
 * key whose bucket is full again is indistinguishable from an absent one, so
 * its slot is reused freely; when a set holds 8 busy keys the one closest to
 * full is forgotten (that key gets its permits back early: under a flood of
 * distinct keys the limit loosens, memory never grows). Every check is O(1).
 *
 * Thread rules: wv_ratelimit_acquire* may be called from any thread at once
 * (the IO loops call it on the manifest hot path). A set is guarded by one of
 * 64 cache-line-aligned mutexes picked by the set's index, so two requests
 * contend only when their keys fall in the same stripe; there is no global
 * lock. The clock is monotonic (wv_mono_ns).
 */
#ifndef WV_RATELIMIT_H
#define WV_RATELIMIT_H

#include "core/arena.h"
#include "core/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_RATELIMIT_MAX_PERMITS 1000000000u /* per period */
#define WV_RATELIMIT_MIN_PERIOD_MS 1000LL
#define WV_RATELIMIT_MAX_PERIOD_MS (366LL * 24 * 3600 * 1000)
#define WV_RATELIMIT_MAX_KEYS (1u << 24)

typedef struct {
  uint32_t max;      /* permits per period; 0 = unlimited ("off") */
  int64_t period_ms; /* 0 when unlimited */
} wv_ratelimit_rate_t;

/*
 * Parses "<max>/<period>" (period: a number and ms, s, m, h or d, e.g. 10/1h,
 * 2000/1m; a bare unit means 1 of it: 25/d) or "off" (unlimited). max is
 * 1..WV_RATELIMIT_MAX_PERMITS, period 1s..366d. 0, or WV_EINVAL with the reason
 * in why (whylen bytes, always NUL-terminated).
 */
int wv_ratelimit_rate_parse(const char *s, wv_ratelimit_rate_t *out, char *why, size_t whylen);

typedef struct wv_ratelimit wv_ratelimit_t;

/*
 * Creates a limiter for permits named what ("build", "pull": used in the
 * refusal message). max_keys (1..WV_RATELIMIT_MAX_KEYS) bounds the keys
 * tracked at once. 0, WV_EINVAL or WV_ENOMEM. Free with wv_ratelimit_free.
 */
int wv_ratelimit_new(const char *what, wv_ratelimit_rate_t anonymous,
                     wv_ratelimit_rate_t authenticated, size_t max_keys, wv_ratelimit_t **out);
void wv_ratelimit_free(wv_ratelimit_t *rl);

/*
 * Takes one permit for user (an account name; NULL or "" = anonymous, then
 * the key is ip; NULL or "" ip counts as one shared "unknown" address).
 * Returns 0 when granted, or WV_EBUSY when the key is over its rate, with
 * *retry_after_s (may be NULL) set to the whole seconds (at least 1) until
 * a permit is available. The _at form takes the monotonic instant (tests).
 */
int wv_ratelimit_acquire(wv_ratelimit_t *rl, const char *user, const char *ip,
                         int64_t *retry_after_s);
int wv_ratelimit_acquire_at(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns,
                            int64_t *retry_after_s);

/*
 * Gives back one permit wv_ratelimit_acquire granted to the key (user, else
 * ip, as acquire keys it): a caller that took a permit and then did not do
 * the work it paid for (the IO loop handing a container request to a worker,
 * which takes its own) returns it, so the key's bucket is as if it had not
 * been taken. Never fills a bucket past full; a key the table forgot since
 * (its slot reused) has nothing to give back. Local buckets only: with
 * wv_ratelimit_share the cluster's bucket keeps the permit, so refund only
 * permits taken where wv_ratelimit_shared is false. The _at form takes the
 * monotonic instant (tests).
 */
void wv_ratelimit_refund(wv_ratelimit_t *rl, const char *user, const char *ip);
void wv_ratelimit_refund_at(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns);

/*
 * Whether wv_ratelimit_acquire would refuse the key now, without taking a
 * permit: 0, or WV_EBUSY with *retry_after_s as acquire sets it. A limiter
 * of failures (wave.auth.failure-rate) peeks before an attempt and acquires
 * after a failure, so successes cost nothing.
 */
int wv_ratelimit_peek(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t *retry_after_s);
int wv_ratelimit_peek_at(wv_ratelimit_t *rl, const char *user, const char *ip, int64_t now_ns,
                         int64_t *retry_after_s);

/*
 * The refusal message of contract §5.3/§6.1 in arena a: "Request exceeded
 * <what> rate limit for user <user>" or "... for IP <ip>". NULL on OOM.
 */
const char *wv_ratelimit_message(wv_arena_t *a, const wv_ratelimit_t *rl, const char *user,
                                 const char *ip);

/*
 * The two limiters of a configuration (rate-limit.*): *build and *pull, each
 * NULL when rate-limit.enabled is false or both of its rates are off, so a
 * caller's whole cost when limits are off is one NULL test. 0, WV_EINVAL
 * (a rate that does not parse; config loading refuses those first) or
 * WV_ENOMEM.
 */
/* Permits refused since the limiter was made (acquire calls past the limit). */
uint64_t wv_ratelimit_refused(const wv_ratelimit_t *rl);
/* The limiter's name ("build", "pull", "auth"). */
const char *wv_ratelimit_name(const wv_ratelimit_t *rl);

int wv_ratelimit_from_config(const wv_config_t *cfg, wv_ratelimit_t **build, wv_ratelimit_t **pull);

/*
 * The limiter of failed authentications (wave.auth.failure-rate, keyed by
 * client IP whatever rate-limit.enabled says): *out is NULL when the rate is
 * off. 0, WV_EINVAL or WV_ENOMEM.
 */
int wv_ratelimit_auth_from_config(const wv_config_t *cfg, wv_ratelimit_t **out);

/*
 * Cluster-wide buckets (state.backend: redis, docs/rate-limits.md): cb runs
 * the same GCRA on a bucket every instance shares (storage/store.h's
 * wv_store_rate; key is stable across instances: "<what>:u:<account>",
 * "<what>:i:<address>", "<what>:6:<IPv6 /64>"). It returns 0 (granted),
 * WV_EBUSY (refused) with *ahead_us how far the shared bucket is ahead of
 * now, or another error (unreachable). Once shared, acquire first takes the
 * local permit (a key refused here is refused without a round trip: the
 * cluster has seen at least this instance's permits), then the shared one,
 * and moves the local bucket up to the shared one, so peek (local only, no
 * round trip) sees what the cluster taught it. A shared bucket that cannot be
 * reached fails open: the local limit alone decides (logged once per
 * outage). acquire then blocks for one round trip: call it off the IO loops
 * (wv_ratelimit_shared tells). Call before the limiter is used; NULL rl is a
 * no-op.
 */
typedef int (*wv_ratelimit_shared_cb)(void *arg, const char *key, int64_t interval_us,
                                      int64_t burst_us, bool take, int64_t *ahead_us);
void wv_ratelimit_share(wv_ratelimit_t *rl, wv_ratelimit_shared_cb cb, void *arg);
/* True when rl's acquire asks the shared bucket (false for NULL). */
bool wv_ratelimit_shared(const wv_ratelimit_t *rl);

/* Slots (a power of two, at least max_keys) and keys forgotten early so far. */
size_t wv_ratelimit_capacity(const wv_ratelimit_t *rl);
uint64_t wv_ratelimit_evictions(const wv_ratelimit_t *rl);

#endif
