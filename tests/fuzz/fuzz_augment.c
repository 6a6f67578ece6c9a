/*
 * tests/fuzz/fuzz_augment.c — manifest, config and index rewriting
 * (registry/augment.c). The input holds up to three documents separated by
 * the line "|||": a containerConfig (request JSON), a manifest or index, and
 * an image config. Each rewrite runs on what it can parse; the digest check
 * of wv_augment_image is left to the direct config and manifest rewrites,
 * which a fuzzer can reach (it cannot forge a sha256).
 */
#include "core/arena.h"
#include "registry/augment.h"
#include "registry/platform.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *part(const char **p, const char *end, size_t *len) {
  const char *start = *p;
  const char *sep = start;
  while (sep + 5 <= end && memcmp(sep, "\n|||\n", 5) != 0)
    sep++;
  if (sep + 5 > end) {
    *len = (size_t)(end - start);
    *p = end;
  } else {
    *len = (size_t)(sep - start);
    *p = sep + 5;
  }
  return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20))
    return 0;
  const char *p = (const char *)data, *end = p + size;
  size_t cclen, mlen, clen;
  const char *cctext = part(&p, end, &cclen);
  const char *manifest = part(&p, end, &mlen);
  const char *config = part(&p, end, &clen);
  wv_arena_t *a = wv_arena_new(0);
  if (!a)
    abort();
  const char *msg = NULL;
  wv_container_config_t cc;
  memset(&cc, 0, sizeof cc);
  if (wv_container_config_parse(a, cctext, cclen, &cc, &msg) != 0)
    memset(&cc, 0, sizeof cc);
  wv_container_config_t arch;
  if (wv_container_config_filter_arch(a, &cc, "arm64", &arch) != 0)
    arch = cc;
  wv_manifest_info_t info;
  wv_manifest_info(a, manifest, mlen, &info, &msg);
  wv_augment_out_t out, out2;
  if (wv_augment_config(a, config, clen, &arch, &out, &msg) == 0)
    wv_augment_manifest(a, manifest, mlen, out.digest, (int64_t)out.len, &arch, &out2, &msg);
  wv_augment_image(a, manifest, mlen, config, clen, &cc, &out, &out2, NULL, &msg);
  wv_platform_list_t want;
  if (wv_platform_parse_list(a, "linux/amd64,linux/arm64/v8", &want, &msg) == 0) {
    wv_index_entry_t *entries = NULL;
    size_t n = 0;
    if (wv_augment_index_select(a, manifest, mlen, NULL, &want, "library/ubuntu", "latest",
                                &entries, &n, &msg) == 0 &&
        n > 0) {
      wv_index_repl_t repl = {
          entries[0].digest,
          "sha256:0000000000000000000000000000000000000000000000000000000000000001", 42};
      wv_augment_index_rewrite(a, manifest, mlen, &repl, 1, &out, &msg);
    }
  }
  wv_arena_free(a);
  return 0;
}
