/*
 * Unit tests for build/sif/sif.c: every header and descriptor field of a
 * written SIF checked at its byte offset against the layout of
 * docs/singularity.md (the spec's worked example: a 55-byte definition, two
 * JSON objects of 125 and 60 bytes, a 4096-byte squashfs), then the reader's
 * rules, each broken once.
 */
#include "build/sif/sif.h"
#include "core/err.h"
#include "tests/runner.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static void sif_dir_free(char *dir) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
  free(dir);
}

/* A fresh temp dir for the test, removed when it returns; NULL on failure. */
static const char *sif_dir(void) {
  char *dir = strdup("/tmp/test_sif.XXXXXX");
  if (!dir || !mkdtemp(dir)) {
    free(dir);
    return NULL;
  }
  TEST_CLEANUP(sif_dir_free, dir);
  return dir;
}

/* Writes the worked example into dir; returns its bytes (freed when the test returns) and size. */
static uint8_t *example(const char *dir, size_t *len, int64_t now) {
  char sq[256], out[256];
  snprintf(sq, sizeof sq, "%s/part.sqfs", dir);
  snprintf(out, sizeof out, "%s/image.sif", dir);
  uint8_t part[4096];
  memset(part, 0xAB, sizeof part);
  memcpy(part, "hsqs", 4);
  FILE *f = fopen(sq, "wb");
  if (!f || fwrite(part, 1, sizeof part, f) != sizeof part || fclose(f))
    return NULL;
  char def[56], meta[126], oci[61];
  memset(def, 'd', 55), def[55] = 0;
  memset(meta, 'm', 125), meta[125] = 0;
  memset(oci, 'o', 60), oci[60] = 0;
  wv_sif_object_t objs[] = {
      {.type = WV_SIF_DEFFILE, .data = def, .len = 55},
      {.type = WV_SIF_GENERICJSON, .name = "inspect-metadata.json", .data = meta, .len = 125},
      {.type = WV_SIF_GENERICJSON, .name = "oci-config.json", .data = oci, .len = 60},
      {.type = WV_SIF_PARTITION, .path = sq, .arch = "02"},
  };
  uint8_t uuid[16];
  for (int i = 0; i < 16; i++)
    uuid[i] = (uint8_t)(i + 1);
  int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
  char err[256];
  int rc = fd >= 0 ? wv_sif_write(fd, objs, 4, now, uuid, err, sizeof err) : -1;
  if (fd >= 0)
    close(fd);
  if (rc) {
    fprintf(stderr, "write: %d %s\n", rc, err);
    return NULL;
  }
  struct stat st;
  stat(out, &st);
  uint8_t *b = malloc((size_t)st.st_size);
  if (!b)
    return NULL;
  TEST_CLEANUP(free, b);
  f = fopen(out, "rb");
  if (!f || fread(b, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
    return NULL;
  fclose(f);
  *len = (size_t)st.st_size;
  return b;
}

TEST(header_fields) {
  size_t n;
  const char *dir = sif_dir();
  CHECK(dir);
  uint8_t *b = example(dir, &n, 1700000000);
  CHECK(b);
  CHECK_EQ_INT(n, 36864);
  CHECK(memcmp(b, "#!/usr/bin/env run-singularity\n\0", 32) == 0);
  CHECK(memcmp(b + 32, "SIF_MAGIC\0", 10) == 0);
  CHECK(memcmp(b + 42, "01\0", 3) == 0);
  CHECK(memcmp(b + 45, "02\0", 3) == 0);
  CHECK_EQ_INT(b[48], 1);
  CHECK_EQ_INT(b[63], 16);
  CHECK_EQ_INT(le(b + 64, 8), 1700000000);
  CHECK_EQ_INT(le(b + 72, 8), 1700000000);
  CHECK_EQ_INT(le(b + 80, 8), 44);     /* dfree */
  CHECK_EQ_INT(le(b + 88, 8), 48);     /* dtotal */
  CHECK_EQ_INT(le(b + 96, 8), 4096);   /* descroff */
  CHECK_EQ_INT(le(b + 104, 8), 28080); /* descrsize */
  CHECK_EQ_INT(le(b + 112, 8), 32176); /* dataoff */
  CHECK_EQ_INT(le(b + 120, 8), 4688);  /* datasize */
  for (size_t i = 128; i < 4096; i++)
    CHECK_EQ_INT(b[i], 0);
}

TEST(descriptor_fields) {
  size_t n;
  const char *dir = sif_dir();
  CHECK(dir);
  uint8_t *b = example(dir, &n, 1700000000);
  CHECK(b);
  static const struct {
    uint32_t type;
    int64_t off, size, swp;
    const char *name;
  } want[] = {{0x4001, 32176, 55, 55, ""},
              {0x4006, 32231, 125, 125, "inspect-metadata.json"},
              {0x4006, 32356, 60, 60, "oci-config.json"},
              {0x4004, 32768, 4096, 4448, ""}};
  for (int i = 0; i < 4; i++) {
    const uint8_t *d = b + 4096 + i * 585;
    CHECK_EQ_INT(le(d, 4), want[i].type);
    CHECK_EQ_INT(d[4], 1);
    CHECK_EQ_INT(le(d + 5, 4), i + 1);
    CHECK_EQ_INT(le(d + 9, 4), 0xF0000001u);
    CHECK_EQ_INT(le(d + 13, 4), 0);
    CHECK_EQ_INT(le(d + 17, 8), want[i].off);
    CHECK_EQ_INT(le(d + 25, 8), want[i].size);
    CHECK_EQ_INT(le(d + 33, 8), want[i].swp);
    CHECK_EQ_INT(le(d + 41, 8), 1700000000);
    CHECK_EQ_INT(le(d + 49, 8), 1700000000);
    CHECK_EQ_INT(le(d + 57, 8), 0);
    CHECK_EQ_INT(le(d + 65, 8), 0);
    CHECK_EQ_STR((const char *)d + 73, want[i].name);
  }
  /* The partition descriptor of the spec's hex dump, and its extra at 0x17A4. */
  static const uint8_t head[] = {0x04, 0x40, 0,    0, 0x01, 0x04, 0,    0,    0,    0x01,
                                 0,    0,    0xF0, 0, 0,    0,    0,    0x00, 0x80, 0,
                                 0,    0,    0,    0, 0,    0x00, 0x10, 0,    0};
  CHECK(memcmp(b + 0x16DB, head, sizeof head) == 0);
  static const uint8_t extra[] = {1, 0, 0, 0, 2, 0, 0, 0, '0', '2', 0};
  CHECK(memcmp(b + 0x17A4, extra, sizeof extra) == 0);
  for (int i = 4; i < 48; i++)
    for (int k = 0; k < 585; k++)
      CHECK_EQ_INT(b[4096 + i * 585 + k], 0);
  CHECK(memcmp(b + 32768, "hsqs", 4) == 0);
  for (size_t i = 32416; i < 32768; i++)
    CHECK_EQ_INT(b[i], 0);
}

TEST(reader_accepts_and_reports) {
  size_t n;
  const char *dir = sif_dir();
  CHECK(dir);
  uint8_t *b = example(dir, &n, 42);
  CHECK(b);
  wv_sif_info_t h;
  char err[256] = "";
  int rc = wv_sif_parse(b, n, n, &h, err, sizeof err);
  if (rc)
    FAIL_AT("%s", err);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(h.n, 4);
  CHECK_EQ_INT(h.primary, 3);
  CHECK_EQ_STR(h.arch, "02");
  CHECK_EQ_STR(h.d[1].name, "inspect-metadata.json");
  CHECK_EQ_INT(h.d[3].parttype, 2);
  CHECK_EQ_INT(h.d[3].fstype, 1);
  char path[256];
  snprintf(path, sizeof path, "%s/image.sif", dir);
  CHECK_EQ_INT(wv_sif_verify_file(path, &h, err, sizeof err), 0);
}

/* Breaks one byte range and expects the reader to refuse, naming the rule. */
static int broken(uint8_t *b, size_t n, size_t off, const void *p, size_t len, size_t size,
                  const char *want) {
  uint8_t save[16];
  memcpy(save, b + off, len);
  memcpy(b + off, p, len);
  wv_sif_info_t h;
  char err[256] = "";
  int rc = wv_sif_parse(b, n, size, &h, err, sizeof err);
  memcpy(b + off, save, len);
  if (rc != WV_EPARSE || !strstr(err, want)) {
    fprintf(stderr, "  want '%s', got %d '%s'\n", want, rc, err);
    return 1;
  }
  return 0;
}

TEST(reader_rules) {
  size_t n;
  const char *dir = sif_dir();
  CHECK(dir);
  uint8_t *b = example(dir, &n, 42);
  CHECK(b);
  uint8_t z8[8] = {0}, one[8] = {1}, big[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  CHECK(!broken(b, n, 32, "XIF", 3, n, "SIF_MAGIC"));
  CHECK(!broken(b, n, 42, "02", 2, n, "version"));
  CHECK(!broken(b, n, 80, one, 8, n, "dfree"));
  CHECK(!broken(b, n, 88, z8, 8, n, "dtotal"));
  CHECK(!broken(b, n, 88, big, 8, n, "dtotal"));
  CHECK(!broken(b, n, 104, one, 8, n, "descriptor table"));
  CHECK(!broken(b, n, 112, one, 8, n, "overlaps"));
  CHECK(!broken(b, n, 120, one, 8, n, "outside"));
  uint8_t ds[8] = {0x51, 0x12, 0, 0}; /* 4689: one byte past the partition */
  CHECK(!broken(b, n, 120, ds, 8, n, "datasize does not end"));
  CHECK(!broken(b, n, 0, b, 0, n + 1, "file is"));
  CHECK(!broken(b, n, 45, "04", 2, n, "arch"));
  /* descriptor 2 (the first JSON object): id duplicated, offset before dataoff, overlap */
  uint8_t id1[4] = {1, 0, 0, 0}, off[8] = {0x10, 0x7d, 0, 0};
  CHECK(!broken(b, n, 4096 + 585 + 5, id1, 4, n, "used twice"));
  CHECK(!broken(b, n, 4096 + 585 + 17, off, 8, n, "outside"));
  uint8_t off2[8] = {0xb0, 0x7d, 0, 0}; /* 32176: on top of the definition */
  CHECK(!broken(b, n, 4096 + 585 + 17, off2, 8, n, "overlaps"));
  /* the partition: not aligned, not squashfs, not primary, an OCI root index */
  uint8_t unal[8] = {0x01, 0x80, 0, 0};
  CHECK(!broken(b, n, 4096 + 3 * 585 + 17, unal, 8, n, ""));
  CHECK(!broken(b, n, 4096 + 3 * 585 + 201, "\x02", 1, n, "squashfs"));
  CHECK(!broken(b, n, 4096 + 3 * 585 + 205, "\x01", 1, n, "primary"));
  CHECK(!broken(b, n, 4096 + 585, "\x0a", 1, n, "OCI-SIF"));
  CHECK(!broken(b, n, 4096 + 585, "\x01", 1, n, "Def.FILE"));
  CHECK(!broken(b, n, 4096 + 585, "\x77", 1, n, "unknown data type"));
  /* too short to be a SIF, and a table beyond the bytes given */
  wv_sif_info_t h;
  char err[128];
  CHECK_EQ_INT(wv_sif_parse(b, 100, 100, &h, err, sizeof err), WV_EPARSE);
  CHECK_EQ_INT(wv_sif_parse(b, 4096, n, &h, err, sizeof err), WV_EPARSE);
}

TEST(writer_refuses) {
  const char *dir = sif_dir();
  CHECK(dir);
  char out[256];
  snprintf(out, sizeof out, "%s/bad.sif", dir);
  int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  uint8_t uuid[16] = {0};
  char err[256];
  wv_sif_object_t bad_arch = {.type = WV_SIF_PARTITION, .path = out, .arch = "99"};
  CHECK_EQ_INT(wv_sif_write(fd, &bad_arch, 1, 0, uuid, err, sizeof err), WV_EINVAL);
  wv_sif_object_t not_sqfs = {.type = WV_SIF_PARTITION, .path = "/etc/hostname", .arch = "02"};
  CHECK_EQ_INT(wv_sif_write(fd, &not_sqfs, 1, 0, uuid, err, sizeof err), WV_EINVAL);
  CHECK_HAS(err, "squashfs");
  CHECK_EQ_INT(wv_sif_write(fd, NULL, 0, 0, uuid, err, sizeof err), WV_EINVAL);
  close(fd);
  CHECK_EQ_STR(wv_sif_arch_code("amd64"), "02");
  CHECK_EQ_STR(wv_sif_arch_code("arm64"), "04");
  CHECK(wv_sif_arch_code("sparc") == NULL);
}

WV_TESTS(T(header_fields), T(descriptor_fields), T(reader_accepts_and_reports), T(reader_rules),
         T(writer_refuses))
