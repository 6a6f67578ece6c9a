/*
 * build/platform_run.h — whether RUN steps of a build for a platform can run
 * on this host (docs/builds.md "Foreign-architecture RUN"): natively when the
 * platform's architecture is the machine's, otherwise through qemu user
 * emulation registered with the kernel's binfmt_misc (Debian's
 * qemu-user-static + binfmt-support: /proc/sys/fs/binfmt_misc/qemu-<arch>
 * present and enabled). A build for a platform that cannot run steps still
 * works as long as its container file runs nothing (FROM + COPY).
 *
 * Pure reads of /proc; any thread.
 */
#ifndef WV_BUILD_PLATFORM_RUN_H
#define WV_BUILD_PLATFORM_RUN_H

#include <stdbool.h>
#include <stddef.h>

/* The platforms waved builds (single builds and the two halves of a multi-platform build). */
#define WV_BUILD_PLATFORM_LIST "linux/amd64,linux/arm64"

/*
 * True when RUN steps for platform ("linux/arm64", "linux/amd64", an optional
 * "/variant") can run here. why (n bytes, may be NULL) says how ("native
 * x86_64", "emulated by qemu-aarch64 (binfmt_misc)") or why not ("no
 * binfmt_misc entry for qemu-aarch64 - install qemu-user-static and
 * binfmt-support, then run update-binfmts --enable").
 */
bool wv_build_platform_can_run(const char *platform, char *why, size_t n);

/* The same against a given binfmt_misc directory and machine name (uname -m); for tests. */
bool wv_build_platform_can_run_at(const char *binfmt_dir, const char *machine, const char *platform,
                                  char *why, size_t n);

/* Logs one line per platform of WV_BUILD_PLATFORM_LIST (info when it can run steps, warn if not).
 */
void wv_build_platform_log(void);

#endif
