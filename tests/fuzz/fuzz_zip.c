/*
 * tests/fuzz/fuzz_zip.c — the zip reader (scan/zip.c) used by OSV import:
 * end of central directory, central and local headers, stored and deflated
 * members, CRC checks. wv_zip_each reads a path, so each input is written
 * to one temp file first (in /dev/shm when there is one: a memory file system).
 */
#include "scan/zip.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char path[64];

static void cleanup(void) { unlink(path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  snprintf(path, sizeof path, "%s/fuzz_zip.%ld.zip",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
  atexit(cleanup);
  return 0;
}

static int on_member(void *arg, const char *name, const char *data, size_t len) {
  size_t *n = arg;
  *n += strlen(name);
  for (size_t i = 0; i < len; i++)
    *n += (unsigned char)data[i];
  return 0;
}

static void on_skip(void *arg, const char *name, const char *reason) {
  size_t *n = arg;
  *n += strlen(name) + strlen(reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (4u << 20))
    return 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
    abort();
  close(fd);
  size_t sum = 0;
  char err[256];
  wv_zip_each(path, NULL, 1 << 20, on_member, on_skip, &sum, err, sizeof err);
  wv_zip_each(path, ".json", 1 << 20, on_member, on_skip, &sum, err, sizeof err);
  return 0;
}
