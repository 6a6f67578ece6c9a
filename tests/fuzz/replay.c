/*
 * tests/fuzz/replay.c — runs a fuzz target's harness without libFuzzer: every
 * file named on the command line, or found in a directory named there, is
 * passed once to LLVMFuzzerTestOneInput. ctest "fuzz_seeds_<name>" replays the
 * committed seed corpus tests/fuzz/corpus/<name> this way in every build, so
 * the harnesses keep compiling and the regression inputs keep passing
 * (docs/security.md "Fuzzing"); a crash or sanitizer report fails the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      uint8_t *b = cap > ((size_t)64 << 20) ? NULL : realloc(buf, cap * 2);
      if (!b)
        free(buf);
      buf = b, cap *= 2;
    }
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "%s: too large or out of memory\n", path);
    return 1;
  }
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  int fail = 0, runs = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      fail = 1;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      fail |= replay_file(argv[i]), runs++;
      continue;
    }
    struct dirent **names;
    int n = scandir(argv[i], &names, NULL, alphasort);
    if (n < 0) {
      perror(argv[i]);
      fail = 1;
      continue;
    }
    for (int k = 0; k < n; k++) {
      char path[4096];
      if (names[k]->d_name[0] != '.' &&
          snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name) < (int)sizeof path &&
          stat(path, &st) == 0 && S_ISREG(st.st_mode))
        fail |= replay_file(path), runs++;
      free(names[k]);
    }
    free(names);
  }
  printf("%d inputs replayed\n", runs);
  return fail || runs == 0;
}
