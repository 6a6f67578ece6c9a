/* Unit tests for storage/cas: blobs by digest, verification, caps, temp cleanup. */
#include "core/err.h"
#include "storage/cas.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#define ABC "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* A test's blob store in a fresh temp dir, closed and removed when the test returns (so the
 * struct must outlive the test: tests declare theirs static). */
typedef struct {
  char root[256];
  wv_cas_t *c;
} casfx_t;

/* Closes the store and removes its directory; once (then a no-op). */
static void casfx_free(casfx_t *f) {
  wv_cas_close(f->c);
  f->c = NULL;
  if (f->root[0])
    tmpdir_remove(f->root);
  f->root[0] = '\0';
}

static wv_cas_t *open_fresh(casfx_t *f, uint64_t max_blob) {
  memset(f, 0, sizeof *f);
  if (!tmpdir_make(f->root, "cas"))
    return NULL;
  TEST_CLEANUP(casfx_free, f);
  return wv_cas_open(&f->c, f->root, max_blob) == 0 ? f->c : NULL;
}

static int count_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Files being written: in blobs/tmp/<instance>/ (and loose ones directly in blobs/tmp). */
static int tmp_count(const char *root) {
  char p[300];
  snprintf(p, sizeof p, "%s/blobs/tmp", root);
  DIR *d = opendir(p);
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char sub[600];
    if (e->d_name[0] == '.')
      continue;
    snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
    int k = count_dir(sub);
    n += k < 0 ? 1 : k; /* a file, or a directory's files */
  }
  closedir(d);
  return n;
}

/* Creates an empty file at root/rel, its mtime age_s seconds ago. */
static bool touch_file(const char *root, const char *rel, long age_s) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  int fd = open(path, O_WRONLY | O_CREAT, 0600);
  if (fd < 0)
    return false;
  struct timespec t[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
  bool ok = futimens(fd, t) == 0;
  close(fd);
  return ok;
}

static int mkdir_p_rel(const char *root, const char *rel) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  return mkdir(path, 0700);
}

static bool exists_rel(const char *root, const char *rel) {
  char path[600];
  struct stat st;
  snprintf(path, sizeof path, "%s/%s", root, rel);
  return stat(path, &st) == 0;
}

/* Reads a whole blob (small ones) into buf; returns its length or -1. */
static long read_blob(wv_cas_t *c, const char *digest, char *buf, size_t cap) {
  int fd;
  uint64_t size;
  if (wv_cas_open_blob(c, digest, &fd, &size) != 0)
    return -1;
  ssize_t n = read(fd, buf, cap);
  close(fd);
  return n == (ssize_t)size ? (long)n : -1;
}

TEST(put_and_read_back) {
  static casfx_t f;
  wv_cas_t *c = open_fresh(&f, 0);
  CHECK(c);
  char d[WV_CAS_DIGEST_LEN + 1], buf[16];
  CHECK_OK(wv_cas_put(c, "abc", 3, NULL, d));
  CHECK_EQ_STR(d, ABC);
  CHECK_EQ_INT(read_blob(c, ABC, buf, sizeof buf), 3);
  CHECK(memcmp(buf, "abc", 3) == 0);
  uint64_t size = 0;
  CHECK_OK(wv_cas_exists(c, ABC, &size));
  CHECK_EQ_INT(size, 3);
  /* The layout is the one architecture §3.2 fixes. */
  char path[400];
  struct stat st;
  snprintf(path, sizeof path, "%s/blobs/sha256/ba/%s", f.root, ABC + 7);
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK_EQ_INT(st.st_size, 3);
  /* Same content again (with the expected digest) is fine. */
  CHECK_OK(wv_cas_put(c, "abc", 3, ABC, NULL));
  CHECK_OK(wv_cas_put(c, "", 0, EMPTY, d));
  CHECK_EQ_INT(read_blob(c, EMPTY, buf, sizeof buf), 0);
  CHECK_OK(wv_cas_delete(c, ABC));
  CHECK_EQ_INT(wv_cas_exists(c, ABC, NULL), WV_ENOTFOUND);
  CHECK_EQ_INT(wv_cas_delete(c, ABC), WV_ENOTFOUND);
  CHECK_EQ_INT(tmp_count(f.root), 0);
  casfx_free(&f);
}

TEST(streaming_writer) {
  static casfx_t f;
  wv_cas_t *c = open_fresh(&f, 0);
  CHECK(c);
  enum { N = 1 << 20 };
  char *data = malloc(N);
  CHECK(data);
  for (int i = 0; i < N; i++)
    data[i] = (char)(i * 7 + (i >> 9));
  char one[WV_CAS_DIGEST_LEN + 1], many[WV_CAS_DIGEST_LEN + 1];
  CHECK_OK(wv_cas_put(c, data, N, NULL, one));
  CHECK_OK(wv_cas_delete(c, one));
  wv_cas_writer_t *w;
  CHECK_OK(wv_cas_begin(c, &w));
  for (size_t off = 0; off < N; off += 65521)
    CHECK_OK(wv_cas_write(w, data + off, off + 65521 > N ? N - off : 65521));
  CHECK_EQ_INT(wv_cas_written(w), N);
  CHECK_EQ_INT(tmp_count(f.root), 1); /* in flight: only in tmp */
  CHECK_EQ_INT(wv_cas_exists(c, one, NULL), WV_ENOTFOUND);
  CHECK_OK(wv_cas_commit(w, one, many));
  CHECK_EQ_STR(many, one);
  CHECK_EQ_INT(tmp_count(f.root), 0);
  uint64_t size;
  CHECK_OK(wv_cas_exists(c, one, &size));
  CHECK_EQ_INT(size, N);
  /* Abort leaves nothing behind. */
  CHECK_OK(wv_cas_begin(c, &w));
  CHECK_OK(wv_cas_write(w, data, 1000));
  wv_cas_abort(w);
  CHECK_EQ_INT(tmp_count(f.root), 0);
  free(data);
  casfx_free(&f);
}

TEST(digest_mismatch_invisible) {
  static casfx_t f;
  wv_cas_t *c = open_fresh(&f, 0);
  CHECK(c);
  char d[WV_CAS_DIGEST_LEN + 1] = "";
  CHECK_EQ_INT(wv_cas_put(c, "abd", 3, ABC, d), WV_EDIGEST);
  CHECK_EQ_STR(d, ""); /* untouched on error */
  CHECK_EQ_INT(wv_cas_exists(c, ABC, NULL), WV_ENOTFOUND);
  char path[300];
  snprintf(path, sizeof path, "%s/blobs/sha256", f.root);
  CHECK_EQ_INT(count_dir(path), 0);
  CHECK_EQ_INT(tmp_count(f.root), 0);
  /* A streamed blob that does not match is just as invisible. */
  wv_cas_writer_t *w;
  CHECK_OK(wv_cas_begin(c, &w));
  CHECK_OK(wv_cas_write(w, "ab", 2));
  CHECK_EQ_INT(wv_cas_commit(w, ABC, NULL), WV_EDIGEST);
  CHECK_EQ_INT(count_dir(path), 0);
  CHECK_EQ_INT(tmp_count(f.root), 0);
  casfx_free(&f);
}

TEST(bad_digest_strings) {
  static casfx_t f;
  wv_cas_t *c = open_fresh(&f, 0);
  CHECK(c);
  const char *bad[] = {
      NULL,
      "",
      "sha256:",
      "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",   /* 63 */
      "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015add", /* 65 */
      "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",  /* upper */
      "sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "sha256:../../../../etc/passwd00000000000000000000000000000000000000000",
      "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a/",
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(!wv_cas_digest_valid(bad[i]));
    if (!bad[i])
      continue;
    int fd;
    uint64_t size;
    CHECK_EQ_INT(wv_cas_exists(c, bad[i], NULL), WV_EINVAL);
    CHECK_EQ_INT(wv_cas_open_blob(c, bad[i], &fd, &size), WV_EINVAL);
    CHECK_EQ_INT(wv_cas_delete(c, bad[i]), WV_EINVAL);
    CHECK_EQ_INT(wv_cas_put(c, "abc", 3, bad[i], NULL), WV_EINVAL);
  }
  CHECK(wv_cas_digest_valid(ABC));
  CHECK_EQ_INT(tmp_count(f.root), 0);
  casfx_free(&f);
}

TEST(size_cap) {
  static casfx_t f;
  wv_cas_t *c = open_fresh(&f, 10);
  CHECK(c);
  CHECK_OK(wv_cas_put(c, "0123456789", 10, NULL, NULL));
  CHECK_EQ_INT(wv_cas_put(c, "0123456789a", 11, NULL, NULL), WV_ETOOBIG);
  wv_cas_writer_t *w;
  CHECK_OK(wv_cas_begin(c, &w));
  CHECK_OK(wv_cas_write(w, "012345", 6));
  CHECK_EQ_INT(wv_cas_write(w, "6789a", 5), WV_ETOOBIG);
  CHECK_EQ_INT(wv_cas_write(w, "", 0), WV_ETOOBIG); /* sticky */
  CHECK_EQ_INT(wv_cas_commit(w, NULL, NULL), WV_ETOOBIG);
  CHECK_EQ_INT(tmp_count(f.root), 0);
  casfx_free(&f);
}

TEST(stale_temp_cleaned_at_open) {
  static casfx_t f;
  wv_cas_t *c = open_fresh(&f, 0);
  CHECK(c);
  CHECK(strlen(wv_cas_instance(c)) > 9);
  wv_cas_writer_t *w;
  CHECK_OK(wv_cas_begin(c, &w));
  CHECK_OK(wv_cas_write(w, "partial", 7));
  /* A crash: the writer is never finished. Beside it, a loose leftover of the layout
   * before instances, fresh and day-old, and another instance's temporaries sharing the
   * directory: one in flight, one a day old. */
  CHECK(touch_file(f.root, "blobs/tmp/loose-new", 0));
  CHECK(touch_file(f.root, "blobs/tmp/loose-old", 25 * 3600));
  CHECK_OK(mkdir_p_rel(f.root, "blobs/tmp/otherhost-0000abcd"));
  CHECK(touch_file(f.root, "blobs/tmp/otherhost-0000abcd/inflight", 60));
  CHECK(touch_file(f.root, "blobs/tmp/otherhost-0000abcd/crashed", 25 * 3600));
  CHECK_EQ_INT(tmp_count(f.root), 5);
  wv_cas_t *c2 = NULL;
  CHECK_OK(wv_cas_open(&c2, f.root, 0)); /* the same instance restarting */
  CHECK_EQ_STR(wv_cas_instance(c2), wv_cas_instance(c));
  CHECK_EQ_INT(tmp_count(f.root), 2);
  CHECK(exists_rel(f.root, "blobs/tmp/loose-new"));
  CHECK(exists_rel(f.root, "blobs/tmp/otherhost-0000abcd/inflight"));
  CHECK(!exists_rel(f.root, "blobs/tmp/otherhost-0000abcd/crashed"));
  wv_cas_abort(w); /* its file is already gone: still fine */
  wv_cas_close(c2);
  casfx_free(&f);
}

WV_TESTS(T(put_and_read_back), T(streaming_writer), T(digest_mismatch_invisible),
         T(bad_digest_strings), T(size_cap), T(stale_temp_cleaned_at_open))
