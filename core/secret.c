/* core/secret.c — salted, slow account secrets (see secret.h). */
#include "core/secret.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SALT_LEN 16
#define HASH_LEN 32

typedef struct {
  int iter;
  uint8_t salt[SALT_LEN], hash[HASH_LEN];
} parsed_t;

/* Decodes exactly 2n hex digits at s (ending at end or '$') into out; 0 or -1. */
static int unhex(const char *s, size_t len, uint8_t *out, size_t n) {
  if (len != 2 * n)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int hi = wv_hex_value(s[2 * i]), lo = wv_hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static int parse_pbkdf2(const char *s, parsed_t *p) {
  size_t pl = strlen(WV_SECRET_PREFIX);
  if (strncmp(s, WV_SECRET_PREFIX, pl) != 0)
    return -1;
  s += pl;
  char *end;
  long it = strtol(s, &end, 10);
  if (end == s || *end != '$' || it < WV_SECRET_MIN_ITER || it > WV_SECRET_MAX_ITER)
    return -1;
  p->iter = (int)it;
  const char *salt = end + 1, *dollar = strchr(salt, '$');
  if (!dollar || unhex(salt, (size_t)(dollar - salt), p->salt, SALT_LEN))
    return -1;
  return unhex(dollar + 1, strlen(dollar + 1), p->hash, HASH_LEN);
}

wv_secret_kind_t wv_secret_kind(const char *stored) {
  parsed_t p;
  uint8_t h[HASH_LEN];
  if (!stored)
    return WV_SECRET_BAD;
  if (parse_pbkdf2(stored, &p) == 0)
    return WV_SECRET_PBKDF2;
  return unhex(stored, strlen(stored), h, HASH_LEN) == 0 ? WV_SECRET_LEGACY_SHA256 : WV_SECRET_BAD;
}

static int derive(const char *secret, const uint8_t *salt, int iter, uint8_t out[HASH_LEN]) {
  return PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), salt, SALT_LEN, iter, EVP_sha256(),
                           HASH_LEN, out) == 1
             ? 0
             : WV_EINTERNAL;
}

int wv_secret_hash(const char *secret, int iterations, char *out, size_t outlen) {
  parsed_t p = {.iter = iterations};
  if (iterations < WV_SECRET_MIN_ITER || iterations > WV_SECRET_MAX_ITER ||
      outlen < WV_SECRET_MAX_LEN)
    return WV_EINVAL;
  int rc = wv_rand_bytes(p.salt, SALT_LEN);
  rc = rc ? rc : derive(secret, p.salt, iterations, p.hash);
  if (rc)
    return rc;
  char salt[2 * SALT_LEN + 1], hash[2 * HASH_LEN + 1];
  wv_hex_encode(p.salt, SALT_LEN, salt);
  wv_hex_encode(p.hash, HASH_LEN, hash);
  snprintf(out, outlen, "%s%d$%s$%s", WV_SECRET_PREFIX, iterations, salt, hash);
  return 0;
}

/* ---- the cache of verified pairs ---- */

/* Process-wide on purpose: a pair verified once stays verified (the key is a hash of both the
 * stored hash and the secret, so it proves nothing by itself), and its callers (the API and /v2
 * authentication, the metrics route) share no state of their own. Fixed size, leaf lock. */
static struct {
  pthread_mutex_t mu;
  uint8_t keys[WV_SECRET_CACHE][WV_SHA256_LEN];
  unsigned next;
} cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int pair_key(const char *stored, const char *secret, uint8_t key[WV_SHA256_LEN]) {
  wv_sha256_t s;
  int rc = wv_sha256_init(&s);
  rc = rc ? rc : wv_sha256_update(&s, stored, strlen(stored) + 1); /* with its NUL */
  rc = rc ? rc : wv_sha256_update(&s, secret, strlen(secret));
  rc = rc ? rc : wv_sha256_final(&s, key);
  if (rc)
    wv_sha256_abort(&s);
  return rc;
}

static bool cache_has(const uint8_t key[WV_SHA256_LEN]) {
  bool hit = false;
  pthread_mutex_lock(&cache.mu);
  for (unsigned i = 0; i < WV_SECRET_CACHE; i++)
    hit |= CRYPTO_memcmp(cache.keys[i], key, WV_SHA256_LEN) == 0;
  pthread_mutex_unlock(&cache.mu);
  return hit;
}

static void cache_add(const uint8_t key[WV_SHA256_LEN]) {
  pthread_mutex_lock(&cache.mu);
  memcpy(cache.keys[cache.next++ % WV_SECRET_CACHE], key, WV_SHA256_LEN);
  pthread_mutex_unlock(&cache.mu);
}

/* ---- slow hashes at once: at most half the CPUs (at least one) ---- */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int running, max;
} slow = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void slow_enter(void) {
  pthread_mutex_lock(&slow.mu);
  if (!slow.max) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    slow.max = n >= 4 ? (int)(n / 2) : 1;
  }
  while (slow.running >= slow.max)
    pthread_cond_wait(&slow.cv, &slow.mu);
  slow.running++;
  pthread_mutex_unlock(&slow.mu);
}

static void slow_leave(void) {
  pthread_mutex_lock(&slow.mu);
  slow.running--;
  pthread_cond_signal(&slow.cv);
  pthread_mutex_unlock(&slow.mu);
}

bool wv_secret_verify(const char *stored, const char *secret) {
  uint8_t key[WV_SHA256_LEN], got[HASH_LEN];
  parsed_t p;
  if (!stored || !secret)
    return false;
  if (parse_pbkdf2(stored, &p) != 0) { /* the legacy form: one SHA-256, nothing to cache */
    uint8_t want[HASH_LEN];
    if (unhex(stored, strlen(stored), want, HASH_LEN) || wv_sha256(secret, strlen(secret), got))
      return false;
    return CRYPTO_memcmp(got, want, HASH_LEN) == 0;
  }
  if (pair_key(stored, secret, key))
    return false;
  if (cache_has(key))
    return true;
  slow_enter();
  int rc = derive(secret, p.salt, p.iter, got);
  slow_leave();
  if (rc || CRYPTO_memcmp(got, p.hash, HASH_LEN) != 0)
    return false;
  cache_add(key);
  return true;
}

int wv_secret_check_accounts(const wv_config_t *cfg) {
  int rc = 0;
  for (size_t i = 0; i < cfg->accounts.len; i++) {
    const char *user = cfg->accounts.keys[i];
    switch (wv_secret_kind(cfg->accounts.values[i])) {
    case WV_SECRET_PBKDF2:
      break;
    case WV_SECRET_LEGACY_SHA256:
      wv_warn("wave.accounts.%s: an unsalted SHA-256 value is accepted for now but is weak; "
              "replace it with the output of `waved hash-password`",
              user);
      break;
    default:
      wv_error("wave.accounts.%s: expected a value printed by `waved hash-password` "
               "(pbkdf2-sha256$...) or 64 hex digits of a SHA-256",
               user);
      rc = WV_EINVAL;
    }
  }
  return rc;
}

/* ---- waved hash-password ---- */

int wv_secret_main(int argc, char **argv) {
  long iter = WV_SECRET_DEFAULT_ITER;
  for (int i = 2; i < argc; i++) {
    char *end = NULL;
    if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      iter = strtol(argv[++i], &end, 10);
      if (*end || iter < WV_SECRET_MIN_ITER || iter > WV_SECRET_MAX_ITER) {
        fprintf(stderr, "waved hash-password: --iterations must be %d..%d\n", WV_SECRET_MIN_ITER,
                WV_SECRET_MAX_ITER);
        return 2;
      }
    } else {
      fprintf(stderr, "usage: waved hash-password [--iterations N] < password\n"
                      "Reads the password (or token) from the first line of stdin and prints\n"
                      "the value to put under wave.accounts in config.yml.\n");
      return 2;
    }
  }
  char line[1024];
  if (!fgets(line, sizeof line, stdin)) {
    fprintf(stderr, "waved hash-password: no password on stdin\n");
    return 2;
  }
  line[strcspn(line, "\r\n")] = '\0';
  if (!line[0]) {
    fprintf(stderr, "waved hash-password: the password is empty\n");
    return 2;
  }
  char out[WV_SECRET_MAX_LEN];
  int rc = wv_secret_hash(line, (int)iter, out, sizeof out);
  OPENSSL_cleanse(line, sizeof line);
  if (rc) {
    fprintf(stderr, "waved hash-password: %s\n", wv_strerror(rc));
    return 1;
  }
  printf("%s\n", out);
  return 0;
}

/* The stored value a Basic login of user is checked against; *found when user is an account. */
static const char *account_value(const wv_config_t *cfg, const char *user, bool *found) {
  const char *stored = NULL;
  for (size_t i = 0; i < cfg->accounts.len; i++)
    if (strcmp(cfg->accounts.keys[i], user) == 0)
      stored = cfg->accounts.values[i];
  /* An unknown user costs a verification too (against the first account, and
   * refused whatever the outcome), so timing says nothing about names. */
  *found = stored != NULL;
  if (!*found && cfg->accounts.len)
    stored = cfg->accounts.values[0];
  return stored;
}

const char *wv_secret_account_for_token(const wv_config_t *cfg, const char *token) {
  if (!token)
    return NULL;
  const char *user = NULL;
  /* Every entry is compared, so the time taken does not say which one matched
   * (a verified token is remembered by the cache above: later requests are cheap). */
  for (size_t i = 0; i < cfg->accounts.len; i++)
    if (wv_secret_verify(cfg->accounts.values[i], token) && !user)
      user = cfg->accounts.keys[i];
  return user;
}

bool wv_secret_token_slow(const wv_config_t *cfg) {
  parsed_t p;
  for (size_t i = 0; i < cfg->accounts.len; i++)
    if (parse_pbkdf2(cfg->accounts.values[i], &p) == 0)
      return true;
  return false;
}

bool wv_secret_account_check(const wv_config_t *cfg, const char *user, const char *password) {
  bool found;
  if (!user || !password)
    return false;
  const char *stored = account_value(cfg, user, &found);
  return wv_secret_verify(stored, password) && found;
}

wv_secret_quick_t wv_secret_account_quick(const wv_config_t *cfg, const char *user,
                                          const char *password) {
  bool found;
  parsed_t p;
  uint8_t key[WV_SHA256_LEN];
  if (!user || !password)
    return WV_SECRET_NO;
  const char *stored = account_value(cfg, user, &found);
  if (!stored || parse_pbkdf2(stored, &p) != 0) /* none, or the fast legacy form */
    return wv_secret_verify(stored, password) && found ? WV_SECRET_YES : WV_SECRET_NO;
  if (pair_key(stored, password, key) || !cache_has(key))
    return WV_SECRET_SLOW;
  return found ? WV_SECRET_YES : WV_SECRET_NO;
}
