/*
 * tests/storage_util.h — temp directories for the storage tests.
 * Each test makes its own directory under $TMPDIR (or /tmp) and removes it.
 */
#ifndef WV_TEST_STORAGE_UTIL_H
#define WV_TEST_STORAGE_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int rm_entry_(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)st;
  (void)flag;
  (void)f;
  remove(path);
  return 0;
}

/* Removes a directory tree; quiet about what is already gone. */
static inline void tmpdir_remove(const char *dir) {
  nftw(dir, rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates a fresh directory; buf must hold 256 bytes. Returns buf or NULL. */
static inline char *tmpdir_make(char *buf, const char *tag) {
  const char *base = getenv("TMPDIR");
  snprintf(buf, 256, "%s/waved-%s-XXXXXX", base && *base ? base : "/tmp", tag);
  return mkdtemp(buf);
}

static inline double now_sec(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
