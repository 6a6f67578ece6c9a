/*
 * tests/fuzz/fuzz_ref.c — image references (registry/ref.c: wv_ref_parse,
 * wv_ref_check_container_name and the names built from a parsed reference)
 * and /v2 routes (wv_route_parse). The input is one string, tried as both.
 */
#include "core/arena.h"
#include "registry/ref.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192)
    return 0;
  wv_arena_t *a = wv_arena_new(1 << 20);
  char *s = malloc(size + 1);
  if (!a || !s)
    abort();
  memcpy(s, data, size);
  s[size] = '\0';
  const char *msg = NULL;
  wv_ref_t ref;
  if (wv_ref_parse(a, s, &ref, &msg) == 0) {
    wv_ref_full_name(a, &ref);
    wv_ref_repository(a, &ref);
    wv_ref_path_and_ref(a, &ref);
    wv_ref_is_loopback(ref.registry);
    wv_ref_api_host(ref.registry);
  }
  wv_ref_check_container_name(a, s, NULL, &msg);
  wv_ref_is_tag(s);
  wv_ref_is_digest(s);
  wv_ref_is_registry(s);
  wv_v2_route_t route;
  if (wv_route_parse(a, s, &route, &msg) == 0)
    wv_route_kind_name(route.kind);
  free(s);
  wv_arena_free(a);
  return 0;
}
