/*
 * tests/fuzz/fuzz_config.c — config.yml loading (core/config.c with the
 * schema of core/config_schema.c): the input is written to a temp file and
 * loaded over the defaults, as `waved --config` does.
 */
#include "core/config.h"
#include "core/log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char path[64];

static void cleanup(void) { unlink(path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  wv_log_set_level(WV_LOG_ERROR);
  unsetenv("WAVE_SERVER_URL");
  unsetenv("WAVE_SERVER_PORT");
  snprintf(path, sizeof path, "%s/fuzz_config.%ld.yml",
           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
  atexit(cleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20))
    return 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
    abort();
  close(fd);
  wv_config_t cfg;
  char err[512];
  if (wv_config_defaults(&cfg))
    abort();
  if (wv_config_load(&cfg, path, err, sizeof err) == 0)
    wv_config_authority(&cfg);
  wv_config_free(&cfg);
  return 0;
}
