/*
 * tests/fuzz/fuzz_deffile.c — the Singularity definition-file parser
 * (build/sif/deffile.c: wv_deffile_parse) on arbitrary text.
 */
#include "build/sif/deffile.h"
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536)
    return 0;
  wv_arena_t *a = wv_arena_new(64u << 20);
  char *s = malloc(size + 1);
  if (!a || !s)
    abort();
  memcpy(s, data, size);
  s[size] = '\0';
  wv_deffile_t *d = malloc(sizeof *d);
  const char *msg = NULL;
  if (d && wv_deffile_parse(a, s, d, &msg) == 0 && (!d->from || !d->raw))
    abort(); /* success always names the image and the stored text */
  free(d);
  free(s);
  wv_arena_free(a);
  return 0;
}
