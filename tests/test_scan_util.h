/*
 * tests/test_scan_util.h — what the scan tests build their images from: a tar
 * writer (ustar, pax path records, GNU long names, whiteouts), gzip and zstd
 * compression, a zip writer, and small file helpers. Everything in memory
 * except the files the tests ask for.
 */
#ifndef WV_TEST_SCAN_UTIL_H
#define WV_TEST_SCAN_UTIL_H

#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#define TAR_CAP (1u << 30)

/* n - 1 octal digits and a NUL, as tar writes them. */
static inline void tar_octal(char *f, size_t n, unsigned long long v) {
  f[n - 1] = '\0';
  for (size_t i = n - 1; i-- > 0; v >>= 3)
    f[i] = (char)('0' + (v & 7));
}

static inline void tar_header(wv_buf_t *t, const char *name, char type, size_t size,
                              const char *link) {
  char h[512];
  memset(h, 0, sizeof h);
  memcpy(h, name, strnlen(name, 100)); /* longer names come with a pax or GNU record */
  tar_octal(h + 100, 8, type == '5' ? 0755 : 0644);
  tar_octal(h + 108, 8, 0);
  tar_octal(h + 116, 8, 0);
  tar_octal(h + 124, 12, size);
  tar_octal(h + 136, 12, 0);
  h[156] = type;
  if (link)
    memcpy(h + 157, link, strnlen(link, 100));
  memcpy(h + 257,
         "ustar\0"
         "00",
         8);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  wv_buf_append(t, h, 512);
}

static inline void tar_pad(wv_buf_t *t, size_t n) {
  static const char zero[512];
  if (n % 512)
    wv_buf_append(t, zero, 512 - n % 512);
}

static inline void tar_data(wv_buf_t *t, const char *name, char type, const void *data, size_t n,
                            const char *link) {
  tar_header(t, name, type, n, link);
  wv_buf_append(t, data, n);
  tar_pad(t, n);
}

/* A regular file; names of 100 bytes or more get a pax "path" record first. */
static inline void tar_file(wv_buf_t *t, const char *name, const char *content) {
  size_t n = strlen(content);
  if (strlen(name) >= 100) {
    char rec[8192];
    size_t body = strlen(name) + strlen(" path=\n");
    size_t len = body + 1;
    while (snprintf(NULL, 0, "%zu", len) + body != len)
      len++;
    snprintf(rec, sizeof rec, "%zu path=%s\n", len, name);
    tar_data(t, "PaxHeaders/x", 'x', rec, strlen(rec), NULL);
    tar_data(t, "placeholder", '0', content, n, NULL);
    return;
  }
  tar_data(t, name, '0', content, n, NULL);
}

/* A regular file whose name comes in a GNU 'L' long-name record. */
static inline void tar_file_gnu(wv_buf_t *t, const char *name, const char *content) {
  tar_data(t, "././@LongLink", 'L', name, strlen(name) + 1, NULL);
  tar_data(t, "trunc", '0', content, strlen(content), NULL);
}

static inline void tar_dir(wv_buf_t *t, const char *name) { tar_header(t, name, '5', 0, NULL); }
static inline void tar_symlink(wv_buf_t *t, const char *name, const char *target) {
  tar_header(t, name, '2', 0, target);
}
static inline void tar_end(wv_buf_t *t) {
  static const char zero[1024];
  wv_buf_append(t, zero, sizeof zero);
}

static inline void gzip_buf(const wv_buf_t *in, wv_buf_t *out, int level) {
  z_stream z = {0};
  deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  size_t cap = deflateBound(&z, in->len) + 64;
  wv_buf_reserve(out, cap);
  z.next_in = (Bytef *)in->data;
  z.avail_in = (uInt)in->len;
  z.next_out = (Bytef *)out->data + out->len;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_FINISH);
  out->len += cap - z.avail_out;
  deflateEnd(&z);
}

static inline void zstd_buf(const wv_buf_t *in, wv_buf_t *out, int level) {
  size_t cap = ZSTD_compressBound(in->len);
  wv_buf_reserve(out, cap);
  size_t n = ZSTD_compress(out->data + out->len, cap, in->data, in->len, level);
  out->len += ZSTD_isError(n) ? 0 : n;
}

static inline int write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t w = fwrite(p, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

/* ---- zip writer: members stored (method 0) or deflated (8) ---- */

typedef struct {
  wv_buf_t data, cd;
  unsigned n;
} zipw_t;

static inline void le16(wv_buf_t *b, unsigned v) {
  unsigned char x[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
  wv_buf_append(b, x, 2);
}
static inline void le32(wv_buf_t *b, unsigned long v) {
  le16(b, (unsigned)(v & 0xffff));
  le16(b, (unsigned)(v >> 16));
}

static inline void zip_add(zipw_t *z, const char *name, const char *content, int deflated) {
  size_t n = strlen(content), nl = strlen(name);
  unsigned long crc = crc32(0L, (const Bytef *)content, (uInt)n);
  wv_buf_t c;
  wv_buf_init(&c, TAR_CAP);
  if (deflated) {
    z_stream s = {0};
    deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&s, n) + 16;
    wv_buf_reserve(&c, cap);
    s.next_in = (Bytef *)content, s.avail_in = (uInt)n;
    s.next_out = (Bytef *)c.data, s.avail_out = (uInt)cap;
    deflate(&s, Z_FINISH);
    c.len = cap - s.avail_out;
    deflateEnd(&s);
  } else {
    wv_buf_append(&c, content, n);
  }
  unsigned long off = (unsigned long)z->data.len;
  le32(&z->data, 0x04034b50), le16(&z->data, 20), le16(&z->data, 0);
  le16(&z->data, deflated ? 8 : 0), le16(&z->data, 0), le16(&z->data, 0);
  le32(&z->data, crc), le32(&z->data, c.len), le32(&z->data, n);
  le16(&z->data, (unsigned)nl), le16(&z->data, 0);
  wv_buf_append(&z->data, name, nl);
  wv_buf_append(&z->data, c.data ? c.data : "", c.len);
  le32(&z->cd, 0x02014b50), le16(&z->cd, 20), le16(&z->cd, 20), le16(&z->cd, 0);
  le16(&z->cd, deflated ? 8 : 0), le16(&z->cd, 0), le16(&z->cd, 0);
  le32(&z->cd, crc), le32(&z->cd, c.len), le32(&z->cd, n);
  le16(&z->cd, (unsigned)nl), le16(&z->cd, 0), le16(&z->cd, 0), le16(&z->cd, 0);
  le16(&z->cd, 0), le32(&z->cd, 0), le32(&z->cd, off);
  wv_buf_append(&z->cd, name, nl);
  wv_buf_free(&c);
  z->n++;
}

static inline int zip_write(zipw_t *z, const char *path) {
  unsigned long cd_off = (unsigned long)z->data.len;
  wv_buf_append(&z->data, z->cd.data ? z->cd.data : "", z->cd.len);
  le32(&z->data, 0x06054b50), le16(&z->data, 0), le16(&z->data, 0);
  le16(&z->data, z->n), le16(&z->data, z->n);
  le32(&z->data, z->cd.len), le32(&z->data, cd_off), le16(&z->data, 0);
  int rc = write_file(path, z->data.data, z->data.len);
  wv_buf_free(&z->data);
  wv_buf_free(&z->cd);
  return rc;
}

#endif

/* ---- the known test images ---- */
#ifndef WV_TEST_SCAN_IMAGES
#define WV_TEST_SCAN_IMAGES

#define DPKG_BASE                                                                                  \
  "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: "                 \
  "3.0.11-1~deb12u1\n"                                                                             \
  "Description: Secure Sockets Layer toolkit\n multi-line description\n .\n more\n\n"              \
  "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\nSource: openssl\n"         \
  "Version: 3.0.11-1~deb12u1\n\n"                                                                  \
  "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\n"             \
  "Version: 1:1.2.13.dfsg-1\n\n"                                                                   \
  "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nSource: bash (5.2.15-2)\n"    \
  "Version: 5.2.15-2+b2\n\n"                                                                       \
  "Package: removed-pkg\nStatus: deinstall ok config-files\nVersion: 1.0-1\n\n"

/* Layer 0: Debian 12 with dpkg, a conda env, Python packages and an R library. */
static inline void image_layer0(wv_buf_t *t) {
  char big[100000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)('a' + (i * 7) % 26);
  big[sizeof big - 1] = '\0';
  tar_dir(t, "./");
  tar_dir(t, "./etc/");
  tar_file(t, "./etc/os-release",
           "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
           "VERSION_ID=\"12\"\n");
  tar_file(t, "./var/lib/dpkg/status",
           DPKG_BASE "Package: tzdata\nStatus: install ok installed\nVersion: 2024a-0+deb12u1\n");
  tar_file(t, "./var/lib/dpkg/status.d/base-files",
           "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n");
  tar_file(t, "./var/lib/dpkg/status.d/base-files.md5sums", "d41d8cd98f00b204  etc/issue\n");
  tar_file(t, "./usr/share/big.bin", big);
  tar_dir(t, "./opt/conda/conda-meta/");
  tar_file(t, "./opt/conda/conda-meta/history", "==> 2024-01-01 <==\n");
  tar_file(
      t, "./opt/conda/conda-meta/numpy-1.24.0-py311h_0.json",
      "{\"name\":\"numpy\",\"version\":\"1.24.0\",\"build\":\"py311h_0\",\"subdir\":\"linux-64\","
      "\"license\":\"BSD-3-Clause\",\"files\":[\"lib/x.so\"]}");
  tar_file(t, "./opt/conda/conda-meta/python-3.11.5-h_0.json",
           "{\"name\":\"python\",\"version\":\"3.11.5\",\"build\":\"h_0\"}");
  tar_file(
      t, "./usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA",
      "Metadata-Version: 2.1\r\nName: requests\r\nVersion: 2.25.0\r\nLicense: Apache 2.0\r\n\r\n"
      "Version: 9.9.9 (body text, not a header)\r\n");
  const char *sp = "./usr/local/lib/python3.11/site-packages/";
  char path[512];
  snprintf(path, sizeof path, "%sJinja2-3.1.2.dist-info/METADATA", sp);
  tar_file(t, path, "Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.2\n\nbody\n");
  snprintf(path, sizeof path, "%surllib3-2.0.7.dist-info/METADATA", sp);
  tar_file(t, path, "Metadata-Version: 2.1\nName: urllib3\nVersion: 2.0.7\n");
  snprintf(path, sizeof path, "%sPyYAML-5.3.dist-info/METADATA", sp);
  tar_file(t, path, "Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3\n");
  snprintf(path, sizeof path,
           "%sa_very_long_distribution_name_that_makes_the_path_longer_than_a_ustar_name-1.0.dist-"
           "info/METADATA",
           sp);
  tar_file(t, path,
           "Metadata-Version: 2.1\nName: a_very_long_distribution_name_that_makes_the_"
           "path_longer_than_a_ustar_name\nVersion: 1.0\n");
  tar_file_gnu(t, "usr/lib/R/site-library/jsonlite/DESCRIPTION",
               "Package: jsonlite\nVersion: 1.8.0\nLicense: MIT + file LICENSE\nBuilt: R 4.3.1\n");
  tar_end(t);
}

/* Layer 1: deletes PyYAML (whiteout), resets conda-meta (opaque), upgrades dpkg. */
static inline void image_layer1(wv_buf_t *t) {
  tar_file(t, "usr/local/lib/python3.11/site-packages/.wh.PyYAML-5.3.dist-info", "");
  tar_file(t, "opt/conda/conda-meta/.wh..wh..opq", "");
  tar_file(
      t, "opt/conda/conda-meta/numpy-1.24.0-py311h_0.json",
      "{\"name\":\"numpy\",\"version\":\"1.24.0\",\"build\":\"py311h_0\",\"subdir\":\"linux-64\"}");
  tar_file(t, "var/lib/dpkg/status",
           DPKG_BASE "Package: tzdata\nStatus: install ok installed\nVersion: 2024b-0+deb12u1\n\n"
                     "Package: curl\nStatus: install ok installed\nArchitecture: amd64\n"
                     "Version: 7.88.1-10+deb12u4\n");
  tar_end(t);
}

/* Layer 2: unrelated files and a symlink, plain tar. */
static inline void image_layer2(wv_buf_t *t) {
  tar_file(t, "etc/hostname", "scan-test\n");
  tar_symlink(t, "usr/bin/python", "python3");
  tar_end(t);
}

/* Writes the three layers (gzip, zstd, plain) as dir/layer{0,1,2}. */
static inline int image_write(const char *dir) {
  wv_buf_t t, c;
  char path[512];
  int rc = 0;
  for (int i = 0; i < 3 && !rc; i++) {
    wv_buf_init(&t, TAR_CAP);
    wv_buf_init(&c, TAR_CAP);
    if (i == 0)
      image_layer0(&t), gzip_buf(&t, &c, 6);
    else if (i == 1)
      image_layer1(&t), zstd_buf(&t, &c, 3);
    else
      image_layer2(&t), wv_buf_append(&c, t.data, t.len);
    snprintf(path, sizeof path, "%s/layer%d", dir, i);
    rc = write_file(path, c.data, c.len);
    wv_buf_free(&t);
    wv_buf_free(&c);
  }
  return rc;
}

#endif

/* ---- the OSV data set the tests import ---- */
#ifndef WV_TEST_SCAN_OSV
#define WV_TEST_SCAN_OSV

#define MOD "\"modified\":\"2024-01-01T00:00:00Z\","
#define RANGE(intro, fixed)                                                                        \
  "\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"" intro                       \
  "\"},{\"fixed\":\"" fixed "\"}]}]"
#define PKG(eco, name) "\"package\":{\"ecosystem\":\"" eco "\",\"name\":\"" name "\"}"
#define CVSS3(v) "\"severity\":[{\"type\":\"CVSS_V3\",\"score\":\"CVSS:3.1/" v "\"}],"

/* JSON text reads better unwrapped. */
// clang-format off
static const struct {
  const char *file, *json;
} osv_files[] = {
    {"debian/openssl.json",
     "{\"id\":\"DEBIAN-CVE-2023-5678\"," MOD "\"upstream\":[\"CVE-2023-5678\"],"
     "\"summary\":\"openssl: excessive time in DH key generation\"," CVSS3("AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
     "\"affected\":[{" PKG("Debian:12", "openssl") "," RANGE("0", "3.0.11-1~deb12u2") "},"
     "{" PKG("Debian:11", "openssl") "," RANGE("0", "1.1.1w-0+deb11u1") "}]}"},
    {"debian/zlib.json",
     "{\"id\":\"CVE-2022-37434\"," MOD "\"affected\":[{" PKG("Debian:12", "zlib") ","
     RANGE("0", "1:1.2.13.dfsg-1") "}],\"database_specific\":{\"severity\":\"critical\"}}"},
    {"debian/bash.json",
     "{\"id\":\"DEBIAN-CVE-2022-3715\"," MOD "\"upstream\":[\"CVE-2022-3715\"],\"summary\":\"bash: "
     "a heap-buffer-overflow in valid_parameter_transform\",\"affected\":[{" PKG("Debian:12", "bash")
     "," RANGE("0", "5.2.15-3") ",\"database_specific\":{\"severity\":\"low\"}}]}"},
    {"debian/curl.json",
     "[{\"id\":\"CVE-2024-2398\"," MOD "\"summary\":\"curl: HTTP/2 push headers memory-leak\","
     CVSS3("AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:L") "\"affected\":[{" PKG("Debian:12", "curl") ","
     RANGE("0", "7.88.1-10+deb12u5") "}]},"
     "{\"id\":\"UBUNTU-CVE-2024-2398\"," MOD "\"aliases\":[\"CVE-2024-2398\"],\"affected\":[{"
     PKG("Ubuntu:22.04:LTS", "curl") "," RANGE("0", "9.0") "}]}]"},
    {"pypi/requests.json",
     "{\"id\":\"GHSA-j8r2-6x86-q33q\"," MOD "\"aliases\":[\"CVE-2023-32681\",\"PYSEC-2023-74\"],"
     "\"summary\":\"Unintended leak of Proxy-Authorization header in requests\","
     CVSS3("AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N") "\"affected\":[{" PKG("PyPI", "requests") ","
     RANGE("2.3.0", "2.31.0") "}],\"references\":[{\"type\":\"ADVISORY\",\"url\":\"https://x\"}]}"},
    {"pypi/requests-pysec.json",
     "{\"id\":\"PYSEC-2023-74\"," MOD "\"aliases\":[\"CVE-2023-32681\"],\"affected\":[{"
     PKG("PyPI", "requests") "," RANGE("0", "2.31.0") "}]}"},
    {"pypi/jinja2.json",
     "{\"id\":\"GHSA-h5c8-rqwp-cp95\"," MOD "\"aliases\":[\"CVE-2024-22195\"],\"summary\":\"Jinja "
     "vulnerable to HTML attribute injection\"," CVSS3("AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N")
     "\"affected\":[{" PKG("PyPI", "jinja2") "," RANGE("0", "3.1.3") "}]}"},
    {"pypi/urllib3.json",
     "{\"id\":\"GHSA-v845-jxx5-vc9f\"," MOD "\"aliases\":[\"CVE-2023-43804\"],"
     CVSS3("AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:H/A:N") "\"affected\":[{" PKG("PyPI", "urllib3") ","
     "\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"1.26.17\"}]},"
     "{\"type\":\"ECOSYSTEM\",\"events\":[{\"fixed\":\"2.0.6\"},{\"introduced\":\"2.0.0\"}]}]}]}"},
    {"pypi/pyyaml.json",
     "{\"id\":\"PYSEC-2021-142\"," MOD "\"aliases\":[\"CVE-2020-14343\"],"
     CVSS3("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") "\"affected\":[{" PKG("PyPI", "PyYAML") ","
     RANGE("0", "5.4") "}]}"},
    {"pypi/long.json",
     "{\"id\":\"PYSEC-2099-1\"," MOD CVSS3("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
     "\"affected\":[{" PKG("PyPI", "a-very-long-distribution-name-that-makes-the-path-longer-than-a-ustar-name")
     ",\"versions\":[\"0.9\",\"1.0\"]}]}"},
    {"conda/numpy.json",
     "{\"id\":\"WAVED-TEST-0001\"," MOD "\"aliases\":[\"CVE-2021-34141\"],\"details\":\"Incomplete "
     "string comparison in numpy.core\\nmore text\",\"affected\":[{" PKG("conda", "numpy") ","
     RANGE("0", "1.26.0") "}],\"database_specific\":{\"severity\":\"MODERATE\"}}"},
    {"cran/jsonlite.json",
     "{\"id\":\"CRAN-2099-1\"," MOD "\"summary\":\"jsonlite test advisory\",\"severity\":[{\"type\":"
     "\"CVSS_V2\",\"score\":\"AV:N/AC:L/Au:N/C:P/I:P/A:P\"}],\"affected\":[{" PKG("CRAN", "jsonlite")
     "," RANGE("0", "1.8.5") "}]}"},
    /* malformed: each is rejected with a message, the import goes on */
    {"bad/not-json.json", "{ not json"},
    {"bad/affected.json", "{\"id\":\"BAD-1\",\"affected\":{\"package\":{}}}"},
    {"bad/events.json",
     "{\"id\":\"BAD-2\",\"affected\":[{" PKG("PyPI", "x") ",\"ranges\":[{\"type\":\"ECOSYSTEM\","
     "\"events\":[{\"introduced\":\"0\",\"fixed\":\"1.0\"}]}]}]}"},
    {"bad/version.json",
     "{\"id\":\"BAD-3\",\"affected\":[{" PKG("Debian:12", "x") "," RANGE("0", "not a version") "}]}"},
    {"bad/noid.json", "{\"summary\":\"no id\"}"},
    /* valid, but nothing an image can match */
    {"git-only.json",
     "{\"id\":\"OSV-GIT-1\",\"affected\":[{\"ranges\":[{\"type\":\"GIT\",\"repo\":\"https://x\","
     "\"events\":[{\"introduced\":\"abc\"}]}]}]}"},
    {"readme.txt", "not a record"},
};

static const struct {
  const char *name, *json;
} osv_zip_members[] = {
    {"ALPINE-CVE-2023-6129.json",
     "{\"id\":\"ALPINE-CVE-2023-6129\"," MOD "\"aliases\":[\"CVE-2023-6129\"],"
     CVSS3("AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H") "\"affected\":[{" PKG("Alpine:v3.19", "openssl") ","
     RANGE("0", "3.1.4-r6") "}]}"},
    {"ALPINE-busybox.json",
     "{\"id\":\"ALPINE-CVE-2023-42366\"," MOD "\"affected\":[{" PKG("Alpine:v3.19", "busybox") ","
     RANGE("0", "1.36.1_p1-r0") "}]}"},
    {"ALPINE-musl.json",
     "{\"id\":\"ALPINE-CVE-2025-26519\"," MOD "\"affected\":[{" PKG("Alpine:v3.18", "musl") ","
     RANGE("0", "1.2.5-r0") "}]}"},
    {"notes.txt", "not json"},
};
// clang-format on

/* Writes dir/osv/... (18 files) and dir/alpine.zip. Returns 0 or -1. */
static inline int osv_dataset_write(const char *dir) {
  char path[600];
  for (size_t i = 0; i < sizeof osv_files / sizeof osv_files[0]; i++) {
    snprintf(path, sizeof path, "%s/osv/%s", dir, osv_files[i].file);
    for (char *s = path + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
      *s = '\0';
      mkdir(path, 0700);
      *s = '/';
    }
    if (write_file(path, osv_files[i].json, strlen(osv_files[i].json)))
      return -1;
  }
  zipw_t z;
  memset(&z, 0, sizeof z);
  wv_buf_init(&z.data, TAR_CAP);
  wv_buf_init(&z.cd, TAR_CAP);
  for (size_t i = 0; i < sizeof osv_zip_members / sizeof osv_zip_members[0]; i++)
    zip_add(&z, osv_zip_members[i].name, osv_zip_members[i].json, (int)(i % 2));
  snprintf(path, sizeof path, "%s/alpine.zip", dir);
  return zip_write(&z, path);
}

#endif
