/* Unit tests for storage/log: zstd-compressed build logs. */
#include "core/err.h"
#include "storage/log.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <fcntl.h>
#include <sys/stat.h>

TEST(round_trip) {
  static char dir[256]; /* static: removed by the clean-up, after the test returned */
  char path[300];
  CHECK(tmpdir_make(dir, "log"));
  TEST_CLEANUP(tmpdir_remove, dir);
  snprintf(path, sizeof path, "%s/build.log.zst", dir);
  size_t n = 3 * 1024 * 1024; /* several zstd blocks and output chunks */
  char *text = malloc(n);
  CHECK(text);
  for (size_t i = 0; i < n; i++)
    text[i] = "STEP 1/3: FROM busybox\n"[i % 23] ^ (char)((i / 4096) & 1);
  CHECK_OK(wv_logstore_put(path, text, n, 0));
  struct stat st;
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK((size_t)st.st_size < n / 10); /* really compressed */
  char *out = NULL;
  size_t len = 0;
  CHECK_OK(wv_logstore_get(path, n, &out, &len));
  CHECK_EQ_INT(len, n);
  int same = memcmp(out, text, n) == 0 && out[n] == '\0';
  free(out);
  CHECK(same);
  /* One byte under the size is refused, not truncated. */
  CHECK_EQ_INT(wv_logstore_get(path, n - 1, &out, &len), WV_ETOOBIG);
  /* Overwrite atomically with an empty log. */
  CHECK_OK(wv_logstore_put(path, "", 0, 3));
  CHECK_OK(wv_logstore_get(path, 10, &out, &len));
  CHECK_EQ_INT(len, 0);
  CHECK_EQ_STR(out, "");
  free(out);
  free(text);
  tmpdir_remove(dir);
}

TEST(bad_input) {
  static char dir[256]; /* static: removed by the clean-up, after the test returned */
  char path[300];
  CHECK(tmpdir_make(dir, "log"));
  TEST_CLEANUP(tmpdir_remove, dir);
  snprintf(path, sizeof path, "%s/missing.zst", dir);
  char *out;
  size_t len;
  CHECK_EQ_INT(wv_logstore_get(path, 100, &out, &len), WV_ENOTFOUND);
  /* Not zstd at all. */
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  CHECK(fd >= 0);
  CHECK(write(fd, "plain text", 10) == 10);
  close(fd);
  CHECK_EQ_INT(wv_logstore_get(path, 100, &out, &len), WV_EPARSE);
  /* A truncated frame. */
  CHECK_OK(wv_logstore_put(path, "hello hello hello hello", 23, 0));
  CHECK_EQ_INT(truncate(path, 12), 0);
  CHECK_EQ_INT(wv_logstore_get(path, 100, &out, &len), WV_EPARSE);
  CHECK_EQ_INT(wv_logstore_put(NULL, "x", 1, 0), WV_EINVAL);
  snprintf(path, sizeof path, "%s/no/such/dir/x.zst", dir);
  CHECK_EQ_INT(wv_logstore_put(path, "x", 1, 0), WV_EIO);
  tmpdir_remove(dir);
}

WV_TESTS(T(round_trip), T(bad_input))
