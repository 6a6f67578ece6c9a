/*
 * tests/test_scan_bench.c — scan throughput on a generated layer.
 *
 * Builds a layer of WV_SCAN_BENCH_MB megabytes of tar (default 8, so ctest
 * stays quick; the recorded benchmark uses a 200 MB+ layer) holding many
 * ordinary files plus a 3000-package dpkg status and 500 Python packages,
 * compresses it with gzip (level 6, like docker) and zstd (level 3), then
 * times, on the same file:
 *   - the full inventory (decompress + tar walk + parse),
 *   - waved's decompression alone into a null sink,
 *   - `zcat FILE > /dev/null` / `zstd -dc FILE > /dev/null`.
 * It checks the inventory found every package; the timings (best of
 * WV_SCAN_BENCH_REPS runs, default 1) are printed.
 */
#include "core/err.h"
#include "scan/inventory.h"
#include "scan/layer.h"
#include "tests/runner.h"
#include "tests/storage_util.h"
#include "tests/test_scan_util.h"

#include <fcntl.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Text-like content (words from a small vocabulary) with some random bytes: ~3:1 with gzip. */
static void fill(char *p, size_t n) {
  static const char *const words[] = {
      "lib",    "usr",  "share", "python", "the",     "data",  "0x1f",  "config", "return", "int",
      "static", "void", "const", "char",   "include", "error", "value", "struct", "\n"};
  size_t o = 0;
  while (o < n) {
    uint64_t r = next();
    if (r % 10 < 3) { /* a run of random bytes */
      for (int i = 0; i < 16 && o < n; i++)
        p[o++] = (char)(next() & 0xff);
      continue;
    }
    const char *w = words[r % (sizeof words / sizeof words[0])];
    for (; *w && o < n; w++)
      p[o++] = *w;
    if (o < n)
      p[o++] = ' ';
  }
}

static int gen_layer(const char *tarpath, size_t mb) {
  wv_buf_t t;
  wv_buf_init(&t, (size_t)mb * 1024 * 1024 + (64u << 20));
  wv_buf_t st;
  wv_buf_init(&st, 64u << 20);
  for (int i = 0; i < 3000; i++)
    wv_buf_printf(&st,
                  "Package: pkg%04d\nStatus: install ok installed\nArchitecture: amd64\n"
                  "Version: 1.%d.%d-1~deb12u1\nSource: src%03d\nDescription: generated\n"
                  " package for the scan benchmark\n\n",
                  i, i % 17, i % 5, i % 400);
  tar_file(&t, "var/lib/dpkg/status", st.data);
  wv_buf_free(&st);
  char name[256], meta[256];
  for (int i = 0; i < 500; i++) {
    snprintf(name, sizeof name, "usr/lib/python3/site-packages/pkg_%03d-2.%d.dist-info/METADATA", i,
             i % 9);
    snprintf(meta, sizeof meta, "Metadata-Version: 2.1\nName: pkg_%03d\nVersion: 2.%d\n\n", i,
             i % 9);
    tar_file(&t, name, meta);
  }
  size_t target = mb * 1024 * 1024;
  char *blob = malloc(4u << 20);
  for (int i = 0; t.len < target; i++) {
    size_t sz = 4096 + (size_t)(next() % (2u << 20)); /* 4 KB .. 2 MB */
    fill(blob, sz);
    snprintf(name, sizeof name, "usr/share/bench/dir%03d/file%06d.bin", i % 512, i);
    tar_data(&t, name, '0', blob, sz, NULL);
  }
  free(blob);
  tar_end(&t);
  int rc = write_file(tarpath, t.data, t.len);
  wv_buf_free(&t);
  return rc;
}

static int null_sink(void *arg, const void *p, size_t n) {
  (void)arg, (void)p, (void)n;
  return 0;
}

static double file_mb(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
}

/* Best of `reps` runs of each: the machine is shared, the minimum is the least disturbed. */
static void measure(const char *path, const char *tool, double tar_mb, int reps) {
  char cmd[700];
  double t_inv = 1e9, t_dec = 1e9, t_tool = 1e9;
  snprintf(cmd, sizeof cmd, "%s '%s' > /dev/null", tool, path);
  for (int r = 0; r < reps; r++) {
    wv_inventory_t *inv;
    double t0 = now_sec();
    if (wv_inventory_new(&inv, NULL) || wv_inventory_add_layer_file(inv, path, NULL) ||
        wv_inventory_finish(inv)) {
      FAIL_AT("inventory of %s failed: %s", path, wv_inventory_error(inv));
      return;
    }
    double t = now_sec() - t0;
    t_inv = t < t_inv ? t : t_inv;
    size_t n = wv_inventory_count(inv);
    wv_inventory_free(inv);
    if (n != 3500)
      FAIL_AT("%zu packages, want 3500", n);
    int fd = open(path, O_RDONLY);
    t0 = now_sec();
    wv_layer_read_fd(fd, null_sink, NULL, NULL);
    t = now_sec() - t0;
    t_dec = t < t_dec ? t : t_dec;
    close(fd);
    t0 = now_sec();
    if (system(cmd) != 0)
      FAIL_AT("%s failed", cmd);
    t = now_sec() - t0;
    t_tool = t < t_tool ? t : t_tool;
  }
  double in_mb = file_mb(path);
  printf("  %-5s %7.1f MB -> %7.1f MB tar: inventory %.3f s (%.0f MB/s in, %.0f MB/s tar), "
         "decompress only %.3f s, %s %.3f s; inventory/%s = %.2f\n",
         strstr(path, ".zst") ? "zstd" : "gzip", in_mb, tar_mb, t_inv, in_mb / t_inv,
         tar_mb / t_inv, t_dec, tool, t_tool, tool, t_inv / t_tool);
}

TEST(layer_throughput) {
  const char *env = getenv("WV_SCAN_BENCH_MB");
  size_t mb = env ? (size_t)atoi(env) : 8;
  char dir[256], tarp[300], gz[300], zs[300], cmd[1400];
  CHECK(tmpdir_make(dir, "scan-bench"));
  snprintf(tarp, sizeof tarp, "%s/layer.tar", dir);
  snprintf(gz, sizeof gz, "%s/layer.tar.gz", dir);
  snprintf(zs, sizeof zs, "%s/layer.tar.zst", dir);
  CHECK_EQ_INT(gen_layer(tarp, mb), 0);
  snprintf(cmd, sizeof cmd, "gzip -6 -n -c '%s' > '%s' && zstd -q -3 -c '%s' > '%s'", tarp, gz,
           tarp, zs);
  CHECK_EQ_INT(system(cmd), 0);
  double tar_mb = file_mb(tarp);
  const char *reps = getenv("WV_SCAN_BENCH_REPS");
  int n = reps ? atoi(reps) : 1;
  measure(gz, "zcat", tar_mb, n);
  measure(zs, "zstd -dc", tar_mb, n);
  tmpdir_remove(dir);
}

WV_TESTS(T(layer_throughput))
