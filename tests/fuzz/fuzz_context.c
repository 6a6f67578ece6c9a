/*
 * tests/fuzz/fuzz_context.c — the build-context unpacker (build/context.c)
 * into a temp dir that is emptied after every input, with one arena reset
 * after every input (as a worker reuses one per request). An input that starts
 * with the gzip magic is unpacked as is; any other input is taken as a tar
 * and wrapped in a gzip member of stored blocks first, so the fuzzer works on
 * tar headers (links, paths, types, sizes) rather than on deflate streams.
 * Small limits keep it fast: every limit is still reached by gzip inputs, and
 * the decompressed stream stops at 256 KiB (docs/security.md, "Fuzzing").
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
static wv_arena_t *arena; /* one for the whole run, reset after every input */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag;
  if (ftw->level > 0)
    remove(path);
  return 0;
}

static void empty_dir(const char *d) { nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Leaves dir empty for the next input: one rmdir and one mkdir when the input
 * created nothing (most inputs), a walk of what it left otherwise. */
static void fresh_dir(void) {
  if (rmdir(dir) != 0) {
    empty_dir(dir);
    if (rmdir(dir) != 0)
      abort();
  }
  if (mkdir(dir, 0700) != 0)
    abort();
}

static void cleanup(void) {
  empty_dir(root);
  rmdir(root);
  wv_arena_free(arena);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  snprintf(root, sizeof root, "%s/fuzz_context.XXXXXX",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (!mkdtemp(root))
    abort();
  snprintf(dir, sizeof dir, "%s/ctx", root);
  if (mkdir(dir, 0700) != 0 || !(arena = wv_arena_new(0)))
    abort();
  atexit(cleanup);
  return 0;
}

/* Wraps a tar in a gzip member of stored deflate blocks: no deflate state to
 * allocate and clear per input (that was most of this target's time), and the
 * unpacker still inflates and checks the CRC and size of a real gzip stream. */
static uint8_t *gzip(const uint8_t *in, size_t n, size_t *out_len) {
  static const uint8_t head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  size_t blocks = n / 65535 + 1;
  uint8_t *out = malloc(sizeof head + blocks * 5 + n + 8);
  if (!out)
    abort();
  uint8_t *o = out;
  memcpy(o, head, sizeof head);
  o += sizeof head;
  size_t left = n;
  const uint8_t *p = in;
  do {
    size_t len = left < 65535 ? left : 65535;
    *o++ = len == left ? 1 : 0; /* BFINAL on the last block, BTYPE 00 (stored) */
    o[0] = (uint8_t)len, o[1] = (uint8_t)(len >> 8);
    o[2] = (uint8_t)~len, o[3] = (uint8_t)(~len >> 8);
    o += 4;
    if (len)
      memcpy(o, p, len);
    o += len, p += len, left -= len;
  } while (left);
  uLong crc = crc32(0, in, (uInt)n);
  for (int i = 0; i < 4; i++)
    *o++ = (uint8_t)(crc >> (8 * i));
  for (int i = 0; i < 4; i++)
    *o++ = (uint8_t)(n >> (8 * i));
  *out_len = (size_t)(o - out);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (2u << 20))
    return 0;
  bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  size_t len = size;
  uint8_t *packed = gz ? NULL : gzip(data, size, &len);
  wv_context_limits_t lim = {
      .max_file_bytes = 64 * 1024, .max_total_bytes = 128 * 1024, .max_entries = 64};
  wv_context_result_t res;
  const char *msg = NULL;
  wv_context_unpack(arena, gz ? data : packed, len, dir, &lim, &res, &msg);
  wv_arena_reset(arena);
  free(packed);
  fresh_dir();
  return 0;
}
