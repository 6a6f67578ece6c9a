/*
 * tests/fuzz/fuzz_context.c — the build-context unpacker (build/context.c)
 * into a temp dir that is emptied after every input. An input that starts
 * with the gzip magic is unpacked as is; any other input is taken as a tar
 * and gzipped first, so the fuzzer works on tar headers (links, paths,
 * types, sizes) rather than on deflate streams. Small limits keep it fast.
 */
#define _XOPEN_SOURCE 700
#include "build/context.h"
#include "core/arena.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char root[64], dir[128];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag;
  if (ftw->level > 0)
    remove(path);
  return 0;
}

static void empty_dir(const char *d) { nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void cleanup(void) {
  empty_dir(root);
  rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  snprintf(root, sizeof root, "%s/fuzz_context.XXXXXX",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (!mkdtemp(root))
    abort();
  snprintf(dir, sizeof dir, "%s/ctx", root);
  atexit(cleanup);
  return 0;
}

static uint8_t *gzip(const uint8_t *in, size_t n, size_t *out_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    abort();
  size_t cap = deflateBound(&z, (uLong)n) + 64;
  uint8_t *out = malloc(cap);
  if (!out)
    abort();
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END)
    abort();
  *out_len = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (2u << 20))
    return 0;
  bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  size_t len = size;
  uint8_t *packed = gz ? NULL : gzip(data, size, &len);
  empty_dir(root);
  if (mkdir(dir, 0700) != 0)
    abort();
  wv_context_limits_t lim = {
      .max_file_bytes = 64 * 1024, .max_total_bytes = 1024 * 1024, .max_entries = 1000};
  wv_context_result_t res;
  const char *msg = NULL;
  wv_arena_t *a = wv_arena_new(0);
  if (!a)
    abort();
  wv_context_unpack(a, gz ? data : packed, len, dir, &lim, &res, &msg);
  wv_arena_free(a);
  free(packed);
  return 0;
}
