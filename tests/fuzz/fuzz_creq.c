/*
 * tests/fuzz/fuzz_creq.c — the body of POST /v1alpha2/container and
 * /container-token (build/request/request.c): wv_creq_parse, then the checks of
 * wv_creq_check against the default configuration, and the
 * containerConfig validation. The first byte picks v1 or v2.
 */
#include "build/request/request.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/log.h"
#include "registry/container_config.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static wv_config_t cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  wv_log_set_level(WV_LOG_ERROR);
  if (wv_config_defaults(&cfg))
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (1u << 20))
    return 0;
  bool v2 = data[0] & 1;
  wv_arena_t *a = wv_arena_new(0);
  if (!a)
    abort();
  wv_creq_t r;
  wv_creq_plan_t plan;
  const char *msg = NULL;
  if (wv_creq_parse(a, (const char *)data + 1, size - 1, (size_t)cfg.max_json_values, v2, &r,
                    &msg) == 0) {
    wv_creq_check(a, &cfg, &r, &plan, &msg);
    if (r.has_cc) {
      wv_container_config_validate(a, &r.cc, &msg);
      wv_container_config_is_empty(&r.cc);
    }
    wv_creq_scan_levels(a, &r);
  }
  wv_arena_free(a);
  return 0;
}
