/*
 * build/platform_run.c — can RUN steps of a platform run here (see
 * platform_run.h).
 */
#include "build/platform_run.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#define BINFMT_DIR "/proc/sys/fs/binfmt_misc"

/* OCI architecture → (uname -m, qemu name). */
static const struct {
  const char *oci, *machine, *qemu;
} arches[] = {
    {"amd64", "x86_64", "x86_64"},     {"arm64", "aarch64", "aarch64"},
    {"arm", "armv7l", "arm"},          {"386", "i686", "i386"},
    {"ppc64le", "ppc64le", "ppc64le"}, {"s390x", "s390x", "s390x"},
    {"riscv64", "riscv64", "riscv64"},
};

static void say(char *why, size_t n, const char *fmt, const char *a, const char *b) {
  if (why && n)
    snprintf(why, n, fmt, a, b);
}

/* The first line of dir/name into line (without the newline); false when unreadable. */
static bool first_line(const char *dir, const char *name, char *line, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  bool ok = fgets(line, (int)n, f) != NULL;
  fclose(f);
  if (ok)
    line[strcspn(line, "\n")] = '\0';
  return ok;
}

bool wv_build_platform_can_run_at(const char *binfmt_dir, const char *machine, const char *platform,
                                  char *why, size_t n) {
  char arch[32] = "";
  if (!platform || strncmp(platform, "linux/", 6) != 0) {
    say(why, n, "unsupported platform '%s'%s", platform ? platform : "", "");
    return false;
  }
  size_t l = strcspn(platform + 6, "/");
  if (l == 0 || l >= sizeof arch) {
    say(why, n, "unsupported platform '%s'%s", platform, "");
    return false;
  }
  memcpy(arch, platform + 6, l);
  for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++) {
    if (strcmp(arches[i].oci, arch) != 0)
      continue;
    if (machine && strcmp(machine, arches[i].machine) == 0) {
      say(why, n, "native %s%s", machine, "");
      return true;
    }
    char entry[64], line[64];
    snprintf(entry, sizeof entry, "qemu-%s", arches[i].qemu);
    if (!first_line(binfmt_dir, "status", line, sizeof line)) {
      say(why, n,
          "binfmt_misc is not mounted (%s) - install qemu-user-static and binfmt-support, then "
          "run update-binfmts --enable%s",
          binfmt_dir, "");
      return false;
    }
    if (strcmp(line, "enabled") != 0) {
      say(why, n, "binfmt_misc is disabled (%s/status)%s", binfmt_dir, "");
      return false;
    }
    if (!first_line(binfmt_dir, entry, line, sizeof line)) {
      say(why, n,
          "no binfmt_misc entry for %s - install qemu-user-static and binfmt-support, then run "
          "update-binfmts --enable%s",
          entry, "");
      return false;
    }
    if (strcmp(line, "enabled") != 0) {
      say(why, n, "the binfmt_misc entry %s is %s (update-binfmts --enable)", entry, line);
      return false;
    }
    say(why, n, "emulated by %s (binfmt_misc)%s", entry, "");
    return true;
  }
  say(why, n, "unknown architecture '%s'%s", arch, "");
  return false;
}

bool wv_build_platform_can_run(const char *platform, char *why, size_t n) {
  struct utsname u;
  return wv_build_platform_can_run_at(BINFMT_DIR, uname(&u) == 0 ? u.machine : NULL, platform, why,
                                      n);
}

void wv_build_platform_log(void) {
  const char *p = WV_BUILD_PLATFORM_LIST;
  while (*p) {
    char plat[64], why[256];
    size_t l = strcspn(p, ",");
    snprintf(plat, sizeof plat, "%.*s", (int)(l < sizeof plat ? l : sizeof plat - 1), p);
    if (wv_build_platform_can_run(plat, why, sizeof why))
      wv_info("build platform %s: RUN steps can run (%s)", plat, why);
    else
      wv_warn("build platform %s: RUN steps cannot run (%s); builds for it must not RUN", plat,
              why);
    p += l + (p[l] == ',');
  }
}
