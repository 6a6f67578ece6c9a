/*
 * tests/fuzz/fuzz_tar.c — the streaming tar reader of the scanner
 * (scan/tar.c): ustar, pax and GNU headers, path normalisation, fed in
 * chunks whose sizes come from the input so split headers are exercised.
 */
#include "scan/tar.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_entry(void *arg, const wv_tar_entry_t *e) {
  size_t *n = arg;
  *n += strlen(e->path) + strlen(e->linkname);
  return e->type == WV_TAR_FILE && e->size < 4096 ? 1 : 0;
}

static int on_file(void *arg, const wv_tar_entry_t *e, const char *data, size_t len) {
  size_t *n = arg;
  for (size_t i = 0; i < len; i++) /* touch every byte: ASan checks the bounds */
    *n += (unsigned char)data[i];
  (void)e;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > (4u << 20))
    return 0;
  size_t chunk = (size_t)data[0] * 37 + 1, sum = 0;
  data++, size--;
  wv_tar_opts_t o = {.entry_cb = on_entry, .file_cb = on_file, .arg = &sum, .max_file = 4096};
  wv_tar_t *t;
  if (wv_tar_new(&t, &o))
    abort();
  int rc = 0;
  for (size_t off = 0; off < size && !rc; off += chunk)
    rc = wv_tar_write(t, data + off, size - off < chunk ? size - off : chunk);
  if (!rc)
    wv_tar_finish(t);
  wv_tar_error(t);
  wv_tar_entries(t);
  wv_tar_free(t);
  char norm[256];
  wv_tar_path_normalize((const char *)data, size < 300 ? size : 300, norm, sizeof norm);
  return 0;
}
