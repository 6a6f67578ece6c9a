/* core/rand.c — CSPRNG ids and constant-time compare (see rand.h). */
#include "core/rand.h"
#include "core/err.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/random.h>

/* A kernel without getrandom(2), or a seccomp profile refusing it: OpenSSL's DRBG (RAND_bytes
 * takes an int length). */
static int openssl_bytes(uint8_t *b, size_t n) {
  while (n > 0) {
    int chunk = n > INT_MAX ? INT_MAX : (int)n;
    if (RAND_bytes(b, chunk) != 1)
      return WV_EINTERNAL;
    b += chunk;
    n -= (size_t)chunk;
  }
  return 0;
}

/*
 * getrandom(2) with no flags reads the kernel's CSPRNG (ChaCha20, seeded from the hardware's
 * entropy and reseeded by the kernel), the source OpenSSL's DRBG seeds itself from: as strong
 * for tokens, and it blocks only before that generator is first seeded at boot. It costs one
 * system call, where RAND_bytes also made a getpid(2) per call (its fork check) and locked its
 * DRBG (docs/benchmarks.md, "Issue 15, 2026-12-07"). Requests of up to 256 bytes are never
 * short or interrupted; the loop covers longer ones.
 */
int wv_rand_bytes(void *p, size_t n) {
  uint8_t *b = p;
  while (n > 0) {
    ssize_t got = getrandom(b, n, 0);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0 && (errno == ENOSYS || errno == EPERM)) /* no getrandom, or seccomp refuses it */
      return openssl_bytes(b, n);
    if (got <= 0)
      return WV_EINTERNAL;
    b += got;
    n -= (size_t)got;
  }
  return 0;
}

int wv_rand_below(uint64_t bound, uint64_t *out) {
  if (bound == 0)
    return WV_EINVAL;
  /* Values at or above the largest multiple of bound would favour small results. */
  uint64_t limit = UINT64_MAX - (UINT64_MAX % bound + 1) % bound;
  for (;;) {
    uint64_t v;
    int rc = wv_rand_bytes(&v, sizeof v);
    if (rc)
      return rc;
    if (v <= limit) {
      *out = v % bound;
      return 0;
    }
  }
}

int wv_rand_id(char *out, size_t len, const char *alphabet) {
  size_t n = alphabet ? strlen(alphabet) : 0;
  if (n < 2 || n > 256)
    return WV_EINVAL;
  /* Accept a byte only below the largest multiple of n that fits in 256. */
  unsigned limit = 256 - 256 % (unsigned)n;
  uint8_t pool[64];
  size_t have = 0, used = 0, o = 0;
  while (o < len) {
    if (used == have) {
      int rc = wv_rand_bytes(pool, sizeof pool);
      if (rc)
        return rc;
      have = sizeof pool;
      used = 0;
    }
    uint8_t b = pool[used++];
    if (b < limit)
      out[o++] = alphabet[b % n];
  }
  out[len] = '\0';
  OPENSSL_cleanse(pool, sizeof pool); /* leftovers would reveal neighbouring ids */
  return 0;
}

int wv_rand_hex12(char out[13]) { return wv_rand_id(out, 12, WV_RAND_HEX); }

bool wv_ct_streq(const char *a, const char *b) {
  if (!a || !b)
    return false;
  size_t la = strlen(a), lb = strlen(b);
  if (la != lb) {
    (void)CRYPTO_memcmp(a, a, la); /* same work as a match of this length */
    return false;
  }
  return CRYPTO_memcmp(a, b, la) == 0;
}
