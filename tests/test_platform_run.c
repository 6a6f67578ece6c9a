/*
 * tests/test_platform_run.c — build/platform_run: native, emulated through a
 * binfmt_misc entry, and the reasons why not, against a fake binfmt_misc
 * directory; and this host's own answer for its native platform.
 */
#include "build/platform_run.h"
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* A file of the fake binfmt_misc directory dir. */
static void put(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void drop(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  unlink(path);
}

/* Removes the fake directory and what the test put in it (a no-op once gone). */
static void binfmt_dir_free(const char *dir) {
  drop(dir, "status");
  drop(dir, "qemu-aarch64");
  rmdir(dir);
}

TEST(native_and_emulated) {
  char why[256];
  static char dir[256]; /* static: removed by the clean-up, after the test returned */
  snprintf(dir, sizeof dir, "/tmp/wv-binfmt-XXXXXX");
  CHECK(mkdtemp(dir) != NULL);
  TEST_CLEANUP(binfmt_dir_free, dir);
  /* Not mounted: only the native platform runs. */
  CHECK(wv_build_platform_can_run_at(dir, "x86_64", "linux/amd64", why, sizeof why));
  CHECK_EQ_STR(why, "native x86_64");
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", "linux/arm64", why, sizeof why));
  CHECK_PREFIX(why, "binfmt_misc is not mounted");
  /* Mounted, no qemu entry. */
  put(dir, "status", "enabled\n");
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", "linux/arm64", why, sizeof why));
  CHECK_PREFIX(why, "no binfmt_misc entry for qemu-aarch64");
  /* The entry Debian's qemu-user-static registers. */
  put(dir, "qemu-aarch64",
      "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
      "flags: PF\n");
  CHECK(wv_build_platform_can_run_at(dir, "x86_64", "linux/arm64", why, sizeof why));
  CHECK_EQ_STR(why, "emulated by qemu-aarch64 (binfmt_misc)");
  CHECK(wv_build_platform_can_run_at(dir, "x86_64", "linux/arm64/v8", why, sizeof why));
  /* An arm64 host runs arm64 natively and needs qemu-x86_64 for amd64. */
  CHECK(wv_build_platform_can_run_at(dir, "aarch64", "linux/arm64", why, sizeof why));
  CHECK(!wv_build_platform_can_run_at(dir, "aarch64", "linux/amd64", why, sizeof why));
  CHECK_HAS(why, "qemu-x86_64");
  /* Disabled entry, disabled binfmt_misc. */
  put(dir, "qemu-aarch64", "disabled\n");
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", "linux/arm64", why, sizeof why));
  CHECK_EQ_STR(why, "the binfmt_misc entry qemu-aarch64 is disabled (update-binfmts --enable)");
  put(dir, "qemu-aarch64", "enabled\n");
  put(dir, "status", "disabled\n");
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", "linux/arm64", why, sizeof why));
  CHECK_PREFIX(why, "binfmt_misc is disabled");
  /* Bad platforms. */
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", "windows/amd64", why, sizeof why));
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", "linux/mips", why, sizeof why));
  CHECK_EQ_STR(why, "unknown architecture 'mips'");
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", "linux/", NULL, 0));
  CHECK(!wv_build_platform_can_run_at(dir, "x86_64", NULL, why, sizeof why));
  binfmt_dir_free(dir);
}

TEST(this_host_native) {
  struct utsname u;
  char why[256];
  CHECK_EQ_INT(uname(&u), 0);
  const char *plat = !strcmp(u.machine, "x86_64")    ? "linux/amd64"
                     : !strcmp(u.machine, "aarch64") ? "linux/arm64"
                                                     : NULL;
  if (plat) {
    CHECK(wv_build_platform_can_run(plat, why, sizeof why));
    CHECK_PREFIX(why, "native ");
  }
}

WV_TESTS(T(native_and_emulated), T(this_host_native))
