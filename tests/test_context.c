/*
 * tests/test_context.c — safe build-context extraction (build/context). The
 * archives are made by tests/fixtures/gen_context_archives.py (committed with
 * its output in tests/fixtures/context/).
 */
#include "build/context.h"
#include "core/arena.h"
#include "core/err.h"
#include "runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

static wv_arena_t *A;
static char tmp[256], ctx[300];

static const char *fixture(const char *name) {
  static char dir[1024];
  snprintf(dir, sizeof dir, "%s", __FILE__);
  return wv_arena_sprintf(A, "%s/fixtures/context/%s", dirname(dir), name);
}

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = wv_arena_alloc(A, 1 << 20);
  *n = fread(buf, 1, (1 << 20) - 1, f);
  fclose(f);
  buf[*n] = '\0';
  return buf;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(p);
}

static void teardown(void);
static void teardown_cb(void *arg) {
  (void)arg;
  teardown();
}

/* A fresh temp dir and arena; torn down by the test or, after a failed check, by the runner. */
static void setup(void) {
  A = wv_arena_new(0);
  snprintf(tmp, sizeof tmp, "/tmp/wv-ctx-XXXXXX");
  if (!mkdtemp(tmp))
    abort();
  snprintf(ctx, sizeof ctx, "%s/ctx", tmp);
  mkdir(ctx, 0755);
  TEST_CLEANUP(teardown_cb, NULL);
}

/* Removes the temp dir and frees the arena; a no-op when already done. */
static void teardown(void) {
  if (!A)
    return;
  nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  wv_arena_free(A);
  A = NULL;
}

/* Unpacks a fixture from memory; *msg gets the error text. */
static int unpack(const char *name, const wv_context_limits_t *lim, wv_context_result_t *res,
                  const char **msg) {
  size_t n;
  char *gz = slurp(fixture(name), &n);
  if (!gz)
    return -999;
  return wv_context_unpack(A, gz, n, ctx, lim, res, msg);
}

static int exists_in(const char *rel) {
  struct stat st;
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", ctx, rel);
  return lstat(p, &st) == 0;
}

TEST(unpack_ok_and_digest) {
  setup();
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack("ok.tar.gz", NULL, &res, &msg));
  size_t n;
  char *want = slurp(fixture("ok.tar.sha256"), &n);
  CHECK(want != NULL);
  want[strcspn(want, "\n")] = '\0';
  CHECK_EQ_STR(res.tar_digest, want);
  CHECK_EQ_INT(res.files, 5);
  CHECK_EQ_INT(res.dirs, 1);
  CHECK_EQ_INT(res.symlinks, 2);
  CHECK_EQ_INT(res.hardlinks, 1);
  char path[1024];
  snprintf(path, sizeof path, "%s/src/main.c", ctx);
  char *main_c = slurp(path, &n);
  CHECK(main_c);
  CHECK_EQ_STR(main_c, "int main(void) { return 0; }\n");
  struct stat st;
  snprintf(path, sizeof path, "%s/run.sh", ctx);
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK(st.st_mode & 0111);
  CHECK_EQ_INT(st.st_nlink, 2);
  CHECK(exists_in("a/b/c.txt") && exists_in("dot/slash/name.txt"));
  char lt[64] = {0};
  snprintf(path, sizeof path, "%s/a/up", ctx);
  ssize_t l = readlink(path, lt, sizeof lt - 1);
  CHECK_EQ_INT(l, 9);
  CHECK_PREFIX(lt, "../run.sh");
  char longname[256];
  snprintf(longname, sizeof longname, "deep/%0120d/file.txt", 0);
  memset(longname + 5, 'x', 120);
  CHECK(exists_in(longname));
  /* The same archive read from a file gives the same digest. */
  wv_context_result_t res2;
  nftw(ctx, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  mkdir(ctx, 0755);
  CHECK_OK(wv_context_unpack_file(A, fixture("ok.tar.gz"), ctx, NULL, &res2, &msg));
  CHECK_EQ_STR(res2.tar_digest, res.tar_digest);
  teardown();
}

TEST(gnu_long_name) {
  setup();
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack("gnu-longname.tar.gz", NULL, &res, &msg));
  char name[200] = "g/";
  memset(name + 2, 'y', 150);
  strcpy(name + 152, ".txt");
  CHECK(exists_in(name));
  teardown();
}

static void expect_fail(const char *archive, const wv_context_limits_t *lim, int want_rc,
                        const char *want_msg) {
  setup();
  wv_context_result_t res;
  const char *msg = NULL;
  int rc = unpack(archive, lim, &res, &msg);
  if (rc != want_rc || !msg || strcmp(msg, want_msg) != 0)
    FAIL_AT("%s: rc %d (want %d), msg \"%s\" (want \"%s\")", archive, rc, want_rc,
            msg ? msg : "(null)", want_msg);
  teardown();
}

TEST(unsafe_paths) {
  expect_fail("escape.tar.gz", NULL, WV_EINVAL,
              "Build context entry '../escape' has an unsafe path");
  expect_fail("absolute.tar.gz", NULL, WV_EINVAL,
              "Build context entry '/etc/evil' has an unsafe path");
}

TEST(symlink_outside_then_write_through) {
  setup();
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_EQ_INT(unpack("symlink-outside.tar.gz", NULL, &res, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Build context entry 'evil' is a link pointing outside the build context");
  char out[300];
  struct stat st;
  snprintf(out, sizeof out, "%s/outside", tmp);
  CHECK(lstat(out, &st) != 0); /* nothing was created next to the context */
  teardown();
  expect_fail("symlink-abs.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'evil' is a link pointing outside the build context");
  /* Even a link that stays inside is never written through. */
  expect_fail("symlink-write-through.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'inner/file' would be written through a symbolic link or a "
              "file");
  /* "a -> ." is fine alone; "b -> a/.." looks inside lexically but escapes on disk. */
  expect_fail("symlink-chain.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'b' is a link pointing outside the build context");
}

TEST(links_and_special_files) {
  expect_fail("hardlink-outside.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'h' is a link pointing outside the build context");
  expect_fail("device.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'dev/null' has an unsupported type (character device)");
  expect_fail("fifo.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'pipe' has an unsupported type (fifo)");
}

TEST(link_chains_never_leave_the_context) {
  const char *out = "is a link pointing outside the build context";
  char want[200];
  /* A hard link to "a/b/s -> ../../x" would be "h -> ../../x" at the root. */
  snprintf(want, sizeof want, "Build context entry 'h' %s", out);
  expect_fail("hardlink-symlink.tar.gz", NULL, WV_EINVAL, want);
  /* The same through a chain of two hard links. */
  snprintf(want, sizeof want, "Build context entry 'h2' %s", out);
  expect_fail("hardlink-chain.tar.gz", NULL, WV_EINVAL, want);
  snprintf(want, sizeof want, "Build context entry 'h' %s", out);
  expect_fail("hardlink-abs.tar.gz", NULL, WV_EINVAL, want);
  snprintf(want, sizeof want, "Build context entry 'a/b/s' %s", out);
  expect_fail("symlink-dotdot.tar.gz", NULL, WV_EINVAL, want);
  snprintf(want, sizeof want, "Build context entry 'up' %s", out);
  expect_fail("symlink-dir-later.tar.gz", NULL, WV_EINVAL, want);
  /* A hard link's target is never reached through a symlinked directory. */
  expect_fail("hardlink-through-symlink.tar.gz", NULL, WV_EINVAL,
              "Build context entry 'h' would be written through a symbolic link or a file");
  /* A hard link to a symlink that stays inside: a symlink with the same text. */
  setup();
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack("hardlink-symlink-ok.tar.gz", NULL, &res, &msg));
  CHECK_EQ_INT(res.symlinks, 1);
  CHECK_EQ_INT(res.hardlinks, 2);
  char path[1024], lt[64] = {0};
  snprintf(path, sizeof path, "%s/d/h", ctx);
  ssize_t l = readlink(path, lt, sizeof lt - 1);
  CHECK_EQ_INT(l, 4);
  CHECK_PREFIX(lt, "../f");
  struct stat st;
  snprintf(path, sizeof path, "%s/h", ctx);
  CHECK_EQ_INT(lstat(path, &st), 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK_EQ_INT(st.st_nlink, 2);
  teardown();
}

TEST(size_limits) {
  expect_fail("big-file.tar.gz", NULL, WV_ETOOBIG,
              "Build context file 'big.bin' exceeds the maximum allowed size of 1 MB");
  expect_fail("total.tar.gz", NULL, WV_ETOOBIG,
              "Build context exceeds the maximum allowed size of 10 MB");
  wv_context_limits_t lim;
  wv_context_limits_default(&lim);
  lim.max_entries = 3;
  expect_fail("ok.tar.gz", &lim, WV_ETOOBIG, "Build context exceeds the maximum of 3 entries");
  lim.max_entries = 10000;
  lim.max_file_bytes = 16;
  expect_fail("ok.tar.gz", &lim, WV_ETOOBIG,
              "Build context file 'src/main.c' exceeds the maximum allowed size of 16 bytes");
  /* Exactly at the limit is allowed. */
  setup();
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_OK(unpack("exact-file.tar.gz", NULL, &res, &msg));
  CHECK_EQ_INT(res.bytes, 1 << 20);
  teardown();
}

TEST(corrupt_and_truncated) {
  setup();
  wv_context_result_t res;
  const char *msg = NULL;
  CHECK_EQ_INT(unpack("corrupt.tar.gz", NULL, &res, &msg), WV_EPARSE);
  CHECK(msg);
  CHECK_PREFIX(msg, "Build context is not a valid gzip archive: ");
  teardown();
  expect_fail("truncated.tar.gz", NULL, WV_EPARSE,
              "Build context archive is truncated (entry 't.bin')");
  setup();
  CHECK_EQ_INT(wv_context_unpack(A, "not gzip at all", 15, ctx, NULL, &res, &msg), WV_EPARSE);
  CHECK_EQ_INT(wv_context_unpack(A, "", 0, ctx, NULL, &res, &msg), WV_EPARSE);
  size_t n = 0;
  char *gz = slurp(fixture("ok.tar.gz"), &n);
  CHECK_EQ_INT(wv_context_unpack(A, gz, n / 2, ctx, NULL, &res, &msg), WV_EPARSE);
  CHECK_EQ_STR(msg, "Build context is not a valid gzip archive: unexpected end of data");
  CHECK_EQ_INT(wv_context_unpack_file(A, "/nonexistent/x.tgz", ctx, NULL, &res, &msg), WV_EIO);
  teardown();
}

WV_TESTS(T(unpack_ok_and_digest), T(gnu_long_name), T(unsafe_paths),
         T(symlink_outside_then_write_through), T(links_and_special_files),
         T(link_chains_never_leave_the_context), T(size_limits), T(corrupt_and_truncated))
