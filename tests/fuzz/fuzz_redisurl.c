/*
 * tests/fuzz/fuzz_redisurl.c — the state.redis.url parser (core/redisurl.c:
 * wv_redisurl_parse) on arbitrary text, NUL-terminated by the target. Checks
 * what the header promises: every field within its cap and NUL-terminated, a
 * port and db in range, and a refusal always giving a terminated sentence (the
 * sentences are constants, so none can echo a password).
 */
#include "core/redisurl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096)
    return 0;
  char *url = malloc(size + 1);
  if (!url)
    abort();
  memcpy(url, data, size);
  url[size] = '\0';
  wv_redisurl_t u;
  char why[256];
  memset(&u, 0x5a, sizeof u);
  why[0] = '\0';
  if (wv_redisurl_parse(url, &u, why, sizeof why) == 0) {
    if (strnlen(u.host, sizeof u.host) == sizeof u.host || !u.host[0] ||
        strnlen(u.user, sizeof u.user) == sizeof u.user ||
        strnlen(u.pass, sizeof u.pass) == sizeof u.pass || u.port < 1 || u.port > 65535 ||
        u.db < 0 || u.db > WV_REDISURL_DB_MAX)
      abort();
  } else {
    if (!why[0] || strnlen(why, sizeof why) == sizeof why)
      abort();
  }
  free(url);
  return 0;
}
