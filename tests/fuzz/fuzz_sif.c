/*
 * tests/fuzz/fuzz_sif.c — the SIF reader (build/sif/sif.c: wv_sif_parse) on
 * arbitrary bytes: the input is the start of a file whose size is the
 * input's size, or (first byte odd) a larger one.
 */
#include "build/sif/sif.h"

#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20))
    return 0;
  wv_sif_info_t h;
  char err[256];
  uint64_t file_size = size && (data[0] & 1) ? (uint64_t)size + 65536 : size;
  if (wv_sif_parse(data, size, file_size, &h, err, sizeof err) == 0) {
    FILE *f = fopen("/dev/null", "w");
    if (f) {
      wv_sif_print(f, &h);
      fclose(f);
    }
  }
  return 0;
}
