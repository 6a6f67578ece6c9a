/*
 * tests/test_context.c — safe build-context extraction (build/context). The
 * archives are made by tests/fixtures/gen_context_archives.py (committed with
 * its output in tests/fixtures/context/).
 */
#include "build/context.h"
#include "core/arena.h"
#include "core/err.h"
#include "runner.h"
#include "storage_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* A test's arena and temp dir, with the context directory ctx inside it; closed when the test
 * returns (after a failed check too). */
typedef struct {
  wv_arena_t *a;
  char tmp[256], ctx[300];
} ctxfx_t;

/* tests/fixtures/context/<name>. */
static const char *fixture(wv_arena_t *a, const char *name) {
  return wv_test_fixture(a, "context", name);
}

static void ctxfx_close(ctxfx_t *f) {
  tmpdir_remove(f->tmp);
  free(f);
}

/* (Re)makes an empty temp dir holding an empty ctx; false on failure. */
static bool ctxfx_fresh(ctxfx_t *f) {
  tmpdir_remove(f->tmp);
  return mkdir(f->tmp, 0700) == 0 && mkdir(f->ctx, 0755) == 0;
}

/* A fresh temp dir and arena, handed to TEST_CLEANUP; NULL on failure. */
static ctxfx_t *ctxfx_open(void) {
  ctxfx_t *f = calloc(1, sizeof *f);
  if (!f || !tmpdir_make(f->tmp, "ctx")) {
    free(f);
    return NULL;
  }
  TEST_CLEANUP(ctxfx_close, f);
  snprintf(f->ctx, sizeof f->ctx, "%s/ctx", f->tmp);
  if (!(f->a = wv_test_arena()) || mkdir(f->ctx, 0755) != 0)
    return NULL;
  return f;
}

/* Unpacks a fixture from memory into f->ctx; *msg gets the error text. */
static int unpack(ctxfx_t *f, const char *name, const wv_context_limits_t *lim,
                  wv_context_result_t *res, const char **msg) {
  size_t n;
  char *gz = wv_test_read_file(f->a, fixture(f->a, name), 1 << 20, &n);
  if (!gz)
    return -999;
  return wv_context_unpack(f->a, gz, n, f->ctx, lim, res, msg);
}

static int exists_in(const ctxfx_t *f, const char *rel) {
  struct stat st;
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", f->ctx, rel);
  return lstat(p, &st) == 0;
}

TEST(unpack_ok_and_digest) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack(f, "ok.tar.gz", NULL, &res, &msg));
  size_t n;
  char *want = wv_test_read_file(f->a, fixture(f->a, "ok.tar.sha256"), 1 << 20, &n);
  CHECK(want != NULL);
  want[strcspn(want, "\n")] = '\0';
  CHECK_EQ_STR(res.tar_digest, want);
  CHECK_EQ_INT(res.files, 5);
  CHECK_EQ_INT(res.dirs, 1);
  CHECK_EQ_INT(res.symlinks, 2);
  CHECK_EQ_INT(res.hardlinks, 1);
  char path[1024];
  snprintf(path, sizeof path, "%s/src/main.c", f->ctx);
  char *main_c = wv_test_read_file(f->a, path, 1 << 20, &n);
  CHECK(main_c);
  CHECK_EQ_STR(main_c, "int main(void) { return 0; }\n");
  struct stat st;
  snprintf(path, sizeof path, "%s/run.sh", f->ctx);
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK(st.st_mode & 0111);
  CHECK_EQ_INT(st.st_nlink, 2);
  CHECK(exists_in(f, "a/b/c.txt") && exists_in(f, "dot/slash/name.txt"));
  char lt[64] = {0};
  snprintf(path, sizeof path, "%s/a/up", f->ctx);
  ssize_t l = readlink(path, lt, sizeof lt - 1);
  CHECK_EQ_INT(l, 9);
  CHECK_PREFIX(lt, "../run.sh");
  char longname[256];
  snprintf(longname, sizeof longname, "deep/%0120d/file.txt", 0);
  memset(longname + 5, 'x', 120);
  CHECK(exists_in(f, longname));
  /* The same archive read from a file gives the same digest. */
  wv_context_result_t res2;
  tmpdir_remove(f->ctx);
  mkdir(f->ctx, 0755);
  CHECK_OK(wv_context_unpack_file(f->a, fixture(f->a, "ok.tar.gz"), f->ctx, NULL, &res2, &msg));
  CHECK_EQ_STR(res2.tar_digest, res.tar_digest);
}

TEST(gnu_long_name) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack(f, "gnu-longname.tar.gz", NULL, &res, &msg));
  char name[200] = "g/";
  memset(name + 2, 'y', 150);
  strcpy(name + 152, ".txt");
  CHECK(exists_in(f, name));
}

/* Unpacks archive into a fresh f->ctx and fails the test unless it is refused with want_rc and
 * want_msg. */
static void expect_fail(ctxfx_t *f, const char *archive, const wv_context_limits_t *lim,
                        int want_rc, const char *want_msg) {
  wv_context_result_t res;
  const char *msg = NULL;
  int rc = ctxfx_fresh(f) ? unpack(f, archive, lim, &res, &msg) : -998;
  if (rc != want_rc || !msg || strcmp(msg, want_msg) != 0)
    FAIL_AT("%s: rc %d (want %d), msg \"%s\" (want \"%s\")", archive, rc, want_rc,
            msg ? msg : "(null)", want_msg);
}

TEST(unsafe_paths) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  expect_fail(f, "escape.tar.gz", NULL, WV_EINVAL,
              "Build context entry '../escape' has an unsafe path");
  expect_fail(f, "absolute.tar.gz", NULL, WV_EINVAL,
              "Build context entry '/etc/evil' has an unsafe path");
}

TEST(symlink_outside_then_write_through) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_EQ_INT(unpack(f, "symlink-outside.tar.gz", NULL, &res, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Build context entry 'evil' is a link pointing outside the build context");
  char out[300];
  struct stat st;
  snprintf(out, sizeof out, "%s/outside", f->tmp);
  CHECK(lstat(out, &st) != 0); /* nothing was created next to the context */
  expect_fail(f, "symlink-abs.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'evil' is a link pointing outside the build context");
  /* Even a link that stays inside is never written through. */
  expect_fail(f, "symlink-write-through.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'inner/file' would be written through a symbolic link or a "
              "file");
  /* "a -> ." is fine alone; "b -> a/.." looks inside lexically but escapes on disk. */
  expect_fail(f, "symlink-chain.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'b' is a link pointing outside the build context");
}

TEST(links_and_special_files) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  expect_fail(f, "hardlink-outside.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'h' is a link pointing outside the build context");
  expect_fail(f, "device.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'dev/null' has an unsupported type (character device)");
  expect_fail(f, "fifo.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'pipe' has an unsupported type (fifo)");
}

TEST(link_chains_never_leave_the_context) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  const char *out = "is a link pointing outside the build context";
  char want[200];
  /* A hard link to "a/b/s -> ../../x" would be "h -> ../../x" at the root. */
  snprintf(want, sizeof want, "Build context entry 'h' %s", out);
  expect_fail(f, "hardlink-symlink.tar.gz", NULL, WV_EINVAL, want);
  /* The same through a chain of two hard links. */
  snprintf(want, sizeof want, "Build context entry 'h2' %s", out);
  expect_fail(f, "hardlink-chain.tar.gz", NULL, WV_EINVAL, want);
  snprintf(want, sizeof want, "Build context entry 'h' %s", out);
  expect_fail(f, "hardlink-abs.tar.gz", NULL, WV_EINVAL, want);
  snprintf(want, sizeof want, "Build context entry 'a/b/s' %s", out);
  expect_fail(f, "symlink-dotdot.tar.gz", NULL, WV_EINVAL, want);
  snprintf(want, sizeof want, "Build context entry 'up' %s", out);
  expect_fail(f, "symlink-dir-later.tar.gz", NULL, WV_EINVAL, want);
  /* A hard link's target is never reached through a symlinked directory. */
  expect_fail(f, "hardlink-through-symlink.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'h' would be written through a symbolic link or a file");
  /* A hard link to a symlink that stays inside: a symlink with the same text. */
  CHECK(ctxfx_fresh(f));
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack(f, "hardlink-symlink-ok.tar.gz", NULL, &res, &msg));
  CHECK_EQ_INT(res.symlinks, 1);
  CHECK_EQ_INT(res.hardlinks, 2);
  char path[1024], lt[64] = {0};
  snprintf(path, sizeof path, "%s/d/h", f->ctx);
  ssize_t l = readlink(path, lt, sizeof lt - 1);
  CHECK_EQ_INT(l, 4);
  CHECK_PREFIX(lt, "../f");
  struct stat st;
  snprintf(path, sizeof path, "%s/h", f->ctx);
  CHECK_EQ_INT(lstat(path, &st), 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK_EQ_INT(st.st_nlink, 2);
}

TEST(size_limits) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  expect_fail(f, "big-file.tar.gz", NULL, WV_ETOOBIG,
              "Build context file 'big.bin' exceeds the maximum allowed size of 1 MB");
  expect_fail(f, "total.tar.gz", NULL, WV_ETOOBIG,
              "Build context exceeds the maximum allowed size of 10 MB");
  wv_context_limits_t lim;
  wv_context_limits_default(&lim);
  lim.max_entries = 3;
  expect_fail(f, "ok.tar.gz", &lim, WV_ETOOBIG, "Build context exceeds the maximum of 3 entries");
  lim.max_entries = 10000;
  lim.max_file_bytes = 16;
  expect_fail(f, "ok.tar.gz", &lim, WV_ETOOBIG,
              "Build context file 'src/main.c' exceeds the maximum allowed size of 16 bytes");
  /* Exactly at the limit is allowed. */
  CHECK(ctxfx_fresh(f));
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack(f, "exact-file.tar.gz", NULL, &res, &msg));
  CHECK_EQ_INT(res.bytes, 1 << 20);
}

TEST(corrupt_and_truncated) {
  ctxfx_t *f = ctxfx_open();
  CHECK(f);
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_EQ_INT(unpack(f, "corrupt.tar.gz", NULL, &res, &msg), WV_EPARSE);
  CHECK(msg);
  CHECK_PREFIX(msg, "Build context is not a valid gzip archive: ");
  expect_fail(f, "truncated.tar.gz", NULL, WV_EPARSE,
              "Build context archive is truncated (entry 't.bin')");
  CHECK(ctxfx_fresh(f));
  CHECK_EQ_INT(wv_context_unpack(f->a, "not gzip at all", 15, f->ctx, NULL, &res, &msg), WV_EPARSE);
  CHECK_EQ_INT(wv_context_unpack(f->a, "", 0, f->ctx, NULL, &res, &msg), WV_EPARSE);
  size_t n = 0;
  char *gz = wv_test_read_file(f->a, fixture(f->a, "ok.tar.gz"), 1 << 20, &n);
  CHECK_EQ_INT(wv_context_unpack(f->a, gz, n / 2, f->ctx, NULL, &res, &msg), WV_EPARSE);
  CHECK_EQ_STR(msg, "Build context is not a valid gzip archive: unexpected end of data");
  CHECK_EQ_INT(wv_context_unpack_file(f->a, "/nonexistent/x.tgz", f->ctx, NULL, &res, &msg),
               WV_EIO);
}

WV_TESTS(T(unpack_ok_and_digest), T(gnu_long_name), T(unsafe_paths),
         T(symlink_outside_then_write_through), T(links_and_special_files),
         T(link_chains_never_leave_the_context), T(size_limits), T(corrupt_and_truncated))
