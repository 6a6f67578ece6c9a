/*
 * build/sif/sif.c — SIF writer and strict reader (see sif.h; the layout and
 * the reader's rules are in docs/singularity.md).
 */
#include "build/sif/sif.h"
#include "core/err.h"
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (1u << 20)

static const char *const arches[][2] = {
    {"386", "01"},     {"amd64", "02"},   {"arm", "03"},     {"arm64", "04"},  {"ppc64", "05"},
    {"ppc64le", "06"}, {"mips", "07"},    {"mipsle", "08"},  {"mips64", "09"}, {"mips64le", "10"},
    {"s390x", "11"},   {"riscv64", "12"}, {"loong64", "13"},
};

const char *wv_sif_arch_code(const char *goarch) {
  for (size_t i = 0; goarch && i < sizeof arches / sizeof arches[0]; i++)
    if (strcmp(arches[i][0], goarch) == 0)
      return arches[i][1];
  return NULL;
}

static bool arch_known(const char *code) {
  for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
    if (strcmp(arches[i][1], code) == 0)
      return true;
  return false;
}

const char *wv_sif_type_name(int32_t t) {
  static const char *const names[] = {
      "Def.FILE",  "Env.Vars",      "JSON.Labels", "FS",
      "Signature", "JSON.Generic",  "Generic/Raw", "Cryptographic Message",
      "SBOM",      "OCI.RootIndex", "OCI.Blob"};
  return t >= 0x4001 && t <= 0x400B ? names[t - 0x4001] : "unknown";
}

/* ---- little-endian fields ---- */

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(u >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static int64_t get64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 7; i >= 0; i--)
    u = u << 8 | p[i];
  return (int64_t)u;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

/* ---- writer ---- */

/* The caller's error code for a failed whole write. */
static int pwrite_all(int fd, const void *p, size_t n, off_t off) {
  int rc = wv_fileio_pwrite(fd, p, n, off);
  return rc ? wv_err_io(rc) : 0;
}

/* Copies the file at path to fd at off; *len gets its size. The first 4 bytes must be hsqs. */
static int copy_in(int fd, const char *path, off_t off, int64_t *len, char *err, size_t errlen) {
  int in = open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return fail(err, errlen, wv_err_io(errno), "cannot open %s: %s", path, strerror(errno));
  uint8_t *buf = malloc(COPY_CHUNK);
  int rc = buf ? 0 : WV_ENOMEM;
  int64_t total = 0;
  for (ssize_t r; !rc && (r = read(in, buf, COPY_CHUNK)) != 0;) {
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      rc = fail(err, errlen, wv_err_io(errno), "cannot read %s: %s", path, strerror(errno));
      break;
    }
    if (total == 0 && (r < 4 || memcmp(buf, "hsqs", 4) != 0))
      rc = fail(err, errlen, WV_EINVAL, "%s is not a squashfs image", path);
    rc = rc ? rc : pwrite_all(fd, buf, (size_t)r, off + total);
    total += r;
  }
  if (!rc && total == 0)
    rc = fail(err, errlen, WV_EINVAL, "%s is empty", path);
  free(buf);
  close(in);
  *len = total;
  return rc;
}

static void encode_descr(uint8_t *p, const wv_sif_object_t *o, uint32_t id, int64_t off,
                         int64_t len, int64_t pad, int64_t now) {
  memset(p, 0, WV_SIF_DESCR_LEN);
  put32(p + 0, (uint32_t)o->type);
  p[4] = 1;
  put32(p + 5, id);
  put32(p + 9, WV_SIF_GROUP_DEFAULT);
  put32(p + 13, 0);
  put64(p + 17, off);
  put64(p + 25, len);
  put64(p + 33, len + pad);
  put64(p + 41, now);
  put64(p + 49, now);
  if (o->name)
    memcpy(p + 73, o->name, strlen(o->name));
  if (o->type == WV_SIF_PARTITION) {
    put32(p + 201, WV_SIF_FS_SQUASH);
    put32(p + 205, WV_SIF_PART_PRIMSYS);
    memcpy(p + 209, o->arch, 2);
  }
}

static int check_objects(const wv_sif_object_t *objs, size_t n, const char **arch, char *err,
                         size_t errlen) {
  size_t parts = 0;
  *arch = NULL;
  if (n == 0 || n > WV_SIF_DTOTAL)
    return fail(err, errlen, WV_EINVAL, "a SIF holds 1 to %d objects", WV_SIF_DTOTAL);
  for (size_t i = 0; i < n; i++) {
    const wv_sif_object_t *o = &objs[i];
    if (o->name && strlen(o->name) > 128)
      return fail(err, errlen, WV_EINVAL, "object name longer than 128 bytes");
    if ((o->path != NULL) == (o->data != NULL) && !(o->data == NULL && o->len == 0 && !o->path))
      return fail(err, errlen, WV_EINVAL, "object %zu: give data or a path", i);
    if (o->type == WV_SIF_PARTITION) {
      if (!o->path || !o->arch || strlen(o->arch) != 2 || !arch_known(o->arch))
        return fail(err, errlen, WV_EINVAL, "the partition needs a file and a known arch");
      *arch = o->arch;
      parts++;
    }
  }
  return parts > 1 ? fail(err, errlen, WV_EINVAL, "more than one primary partition") : 0;
}

int wv_sif_write(int fd, const wv_sif_object_t *objs, size_t n, int64_t now, const uint8_t uuid[16],
                 char *err, size_t errlen) {
  const char *arch;
  int rc = check_objects(objs, n, &arch, err, errlen);
  uint8_t *table = rc ? NULL : calloc(1, WV_SIF_DATA_OFF);
  if (!rc && !table)
    rc = WV_ENOMEM;
  int64_t pos = WV_SIF_DATA_OFF;
  for (size_t i = 0; !rc && i < n; i++) {
    const wv_sif_object_t *o = &objs[i];
    int64_t off = pos, len = (int64_t)o->len;
    if (o->type == WV_SIF_PARTITION)
      off = (pos + WV_SIF_PART_ALIGN - 1) / WV_SIF_PART_ALIGN * WV_SIF_PART_ALIGN;
    if (o->path)
      rc = copy_in(fd, o->path, off, &len, err, errlen);
    else if (len)
      rc = pwrite_all(fd, o->data, o->len, off);
    if (!rc)
      encode_descr(table + WV_SIF_DESCR_OFF + i * WV_SIF_DESCR_LEN, o, (uint32_t)(i + 1), off, len,
                   off - pos, now);
    pos = off + len;
  }
  if (!rc) {
    uint8_t *h = table;
    memcpy(h, WV_SIF_LAUNCH, strlen(WV_SIF_LAUNCH));
    memcpy(h + 32, WV_SIF_MAGIC, strlen(WV_SIF_MAGIC));
    memcpy(h + 42, WV_SIF_VERSION, 2);
    memcpy(h + 45, arch ? arch : "00", 2);
    memcpy(h + 48, uuid, 16);
    put64(h + 64, now);
    put64(h + 72, now);
    put64(h + 80, WV_SIF_DTOTAL - (int64_t)n);
    put64(h + 88, WV_SIF_DTOTAL);
    put64(h + 96, WV_SIF_DESCR_OFF);
    put64(h + 104, (int64_t)WV_SIF_DTOTAL * WV_SIF_DESCR_LEN);
    put64(h + 112, WV_SIF_DATA_OFF);
    put64(h + 120, pos - WV_SIF_DATA_OFF);
    rc = pwrite_all(fd, table, WV_SIF_DATA_OFF, 0);
  }
  if (!rc && ftruncate(fd, pos) != 0)
    rc = wv_err_io(errno);
  free(table);
  return rc;
}

/* ---- reader ---- */

/* A NUL-padded text field of n bytes into out (n+1): the text must end in the field. */
static bool text_field(const uint8_t *p, size_t n, char *out) {
  const uint8_t *nul = memchr(p, 0, n);
  if (!nul)
    return false;
  memcpy(out, p, (size_t)(nul - p) + 1);
  return true;
}

static int parse_header(const uint8_t *b, size_t len, wv_sif_info_t *h, char *err, size_t errlen) {
  if (len < WV_SIF_HEADER_LEN)
    return fail(err, errlen, WV_EPARSE, "shorter than the %d-byte header", WV_SIF_HEADER_LEN);
  if (!text_field(b, 32, h->launch))
    return fail(err, errlen, WV_EPARSE, "launch script is not NUL-terminated within 32 bytes");
  if (memcmp(b + 32, WV_SIF_MAGIC "\0", 10) != 0)
    return fail(err, errlen, WV_EPARSE, "no SIF_MAGIC at offset 32");
  if (memcmp(b + 42, WV_SIF_VERSION "\0", 3) != 0)
    return fail(err, errlen, WV_EPARSE, "version is not 01");
  memcpy(h->version, WV_SIF_VERSION, 3);
  if (!text_field(b + 45, 3, h->arch))
    return fail(err, errlen, WV_EPARSE, "arch is not NUL-terminated");
  memcpy(h->id, b + 48, 16);
  h->ctime = get64(b + 64), h->mtime = get64(b + 72), h->dfree = get64(b + 80);
  h->dtotal = get64(b + 88), h->descroff = get64(b + 96), h->descrsize = get64(b + 104);
  h->dataoff = get64(b + 112), h->datasize = get64(b + 120);
  if (h->dtotal <= 0 || h->dtotal > WV_SIF_MAX_DTOTAL)
    return fail(err, errlen, WV_EPARSE, "dtotal %lld out of range", (long long)h->dtotal);
  if (h->dfree < 0 || h->dfree > h->dtotal)
    return fail(err, errlen, WV_EPARSE, "dfree %lld out of range", (long long)h->dfree);
  if (h->descroff < WV_SIF_HEADER_LEN || h->descrsize < h->dtotal * WV_SIF_DESCR_LEN ||
      h->descroff > INT64_MAX / 2 || h->descrsize > INT64_MAX / 4)
    return fail(err, errlen, WV_EPARSE, "descriptor table offset/size invalid");
  if (h->dataoff < h->descroff + h->descrsize || h->datasize < 0 || h->dataoff > INT64_MAX / 2 ||
      h->datasize > INT64_MAX / 2)
    return fail(err, errlen, WV_EPARSE, "data section overlaps the descriptor table");
  return 0;
}

static int parse_descr(const uint8_t *p, wv_sif_descr_t *d, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  d->datatype = (int32_t)get32(p);
  d->used = p[4] != 0;
  d->id = get32(p + 5), d->groupid = get32(p + 9), d->link = get32(p + 13);
  d->offset = get64(p + 17), d->size = get64(p + 25), d->size_with_padding = get64(p + 33);
  d->ctime = get64(p + 41), d->mtime = get64(p + 49), d->uid = get64(p + 57);
  d->gid = get64(p + 65);
  memcpy(d->name, p + 73, 128); /* NUL-padded; a full 128-byte name is allowed */
  d->name[128] = '\0';
  if (d->datatype == WV_SIF_PARTITION) {
    d->fstype = (int32_t)get32(p + 201), d->parttype = (int32_t)get32(p + 205);
    if (!text_field(p + 209, 3, d->arch))
      return fail(err, errlen, WV_EPARSE, "descriptor %u: partition arch not NUL-terminated",
                  d->id);
  }
  return 0;
}

/* The checks that need every descriptor: ids, bounds, overlaps, counts. */
static int check_objects_read(const wv_sif_info_t *h, uint64_t file_size, char *err,
                              size_t errlen) {
  size_t deffiles = 0, prim = 0;
  int64_t end = h->dataoff + h->datasize, last = h->dataoff;
  for (size_t i = 0; i < h->n; i++) {
    const wv_sif_descr_t *d = &h->d[i];
    if (d->datatype < WV_SIF_DEFFILE || d->datatype > WV_SIF_OCIBLOB)
      return fail(err, errlen, WV_EPARSE, "descriptor %u: unknown data type 0x%x", d->id,
                  (unsigned)d->datatype);
    if (d->id == 0)
      return fail(err, errlen, WV_EPARSE, "descriptor %zu: id 0", i);
    for (size_t j = 0; j < i; j++)
      if (h->d[j].id == d->id)
        return fail(err, errlen, WV_EPARSE, "descriptor id %u used twice", d->id);
    if (d->offset < h->dataoff || d->size < 0 || d->offset > end || d->size > end - d->offset)
      return fail(err, errlen, WV_EPARSE, "descriptor %u: object outside the data section", d->id);
    if (d->offset < last)
      return fail(err, errlen, WV_EPARSE, "descriptor %u: object overlaps the one before", d->id);
    if (d->size_with_padding < d->size || d->size_with_padding - d->size > d->offset - last)
      return fail(err, errlen, WV_EPARSE, "descriptor %u: size_with_padding inconsistent", d->id);
    last = d->offset + d->size;
    deffiles += d->datatype == WV_SIF_DEFFILE;
    if (d->datatype == WV_SIF_OCIROOTINDEX)
      return fail(err, errlen, WV_EPARSE, "an OCI-SIF (OCI.RootIndex object), not a SIF image");
    if (d->datatype == WV_SIF_PARTITION && d->parttype == WV_SIF_PART_PRIMSYS) {
      prim++;
      if (d->offset % WV_SIF_PART_ALIGN)
        return fail(err, errlen, WV_EPARSE, "primary partition not 4096-aligned");
      if (d->fstype != WV_SIF_FS_SQUASH)
        return fail(err, errlen, WV_EPARSE, "primary partition is not squashfs (fstype %d)",
                    d->fstype);
      if (strcmp(d->arch, h->arch) != 0 || !arch_known(d->arch))
        return fail(err, errlen, WV_EPARSE, "partition arch '%s' vs header arch '%s'", d->arch,
                    h->arch);
    }
  }
  if (last != end)
    return fail(err, errlen, WV_EPARSE, "datasize does not end at the last object");
  if ((uint64_t)end != file_size)
    return fail(err, errlen, WV_EPARSE, "file is %llu bytes, the data section ends at %lld",
                (unsigned long long)file_size, (long long)end);
  if (deffiles > 1)
    return fail(err, errlen, WV_EPARSE, "more than one Def.FILE object");
  if (prim != 1)
    return fail(err, errlen, WV_EPARSE, "%zu primary system partitions (want 1)", prim);
  return 0;
}

int wv_sif_parse(const uint8_t *buf, size_t len, uint64_t file_size, wv_sif_info_t *h, char *err,
                 size_t errlen) {
  memset(h, 0, sizeof *h);
  h->primary = -1;
  if (file_size < 2048 || len > file_size)
    return fail(err, errlen, WV_EPARSE, "a SIF is at least 2048 bytes");
  int rc = parse_header(buf, len, h, err, errlen);
  if (rc)
    return rc;
  if ((uint64_t)(h->descroff + h->dtotal * WV_SIF_DESCR_LEN) > len)
    return fail(err, errlen, WV_EPARSE, "descriptor table beyond the bytes read");
  size_t used = 0;
  for (int64_t i = 0; i < h->dtotal; i++) {
    const uint8_t *p = buf + h->descroff + i * WV_SIF_DESCR_LEN;
    if (!p[4])
      continue;
    if (used == WV_SIF_DTOTAL)
      return fail(err, errlen, WV_EPARSE, "more than %d objects", WV_SIF_DTOTAL);
    if ((rc = parse_descr(p, &h->d[used], err, errlen)) != 0)
      return rc;
    if (h->d[used].datatype == WV_SIF_PARTITION && h->d[used].parttype == WV_SIF_PART_PRIMSYS)
      h->primary = (int)used;
    used++;
  }
  h->n = used;
  if (h->dfree != h->dtotal - (int64_t)used)
    return fail(err, errlen, WV_EPARSE, "dfree %lld but %zu of %lld slots used",
                (long long)h->dfree, used, (long long)h->dtotal);
  if (used == 0)
    return fail(err, errlen, WV_EPARSE, "no objects");
  return check_objects_read(h, file_size, err, errlen);
}

int wv_sif_verify_file(const char *path, wv_sif_info_t *out, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(err, errlen, wv_err_io(errno), "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  size_t want = 0;
  uint8_t *buf = NULL;
  int rc = fstat(fd, &st) == 0 ? 0 : wv_err_io(errno);
  if (!rc) {
    /* The table of any SIF written by the sif library fits in 1 MiB + 4096. */
    want = (size_t)st.st_size < (1u << 21) ? (size_t)st.st_size : (1u << 21);
    buf = malloc(want ? want : 1);
    rc = buf ? 0 : WV_ENOMEM;
  }
  if (!rc && pread(fd, buf, want, 0) != (ssize_t)want)
    rc = fail(err, errlen, WV_EIO, "cannot read %s", path);
  rc = rc ? rc : wv_sif_parse(buf, want, (uint64_t)st.st_size, out, err, errlen);
  if (!rc) {
    uint8_t magic[4];
    const wv_sif_descr_t *p = &out->d[out->primary];
    if (p->size < 4 || pread(fd, magic, 4, p->offset) != 4 || memcmp(magic, "hsqs", 4) != 0)
      rc = fail(err, errlen, WV_EPARSE, "the primary partition has no squashfs magic");
  }
  free(buf);
  close(fd);
  return rc;
}

void wv_sif_print(FILE *f, const wv_sif_info_t *h) {
  char uuid[37];
  const uint8_t *u = h->id;
  snprintf(uuid, sizeof uuid,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
           u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
  fprintf(f, "launch: %s", h->launch);
  if (!strchr(h->launch, '\n'))
    fputc('\n', f);
  fprintf(f, "magic: SIF_MAGIC\nversion: %s\narch: %s\nid: %s\nctime: %lld\nmtime: %lld\n",
          h->version[0] ? h->version : "01", h->arch, uuid, (long long)h->ctime,
          (long long)h->mtime);
  fprintf(f,
          "dfree: %lld\ndtotal: %lld\ndescroff: %lld\ndescrsize: %lld\ndataoff: %lld\n"
          "datasize: %lld\n",
          (long long)h->dfree, (long long)h->dtotal, (long long)h->descroff,
          (long long)h->descrsize, (long long)h->dataoff, (long long)h->datasize);
  fprintf(f, "%-3s %-14s %-10s %-10s %-12s %-12s %-12s %s\n", "id", "type", "group", "link",
          "offset", "size", "padded", "name/extra");
  for (size_t i = 0; i < h->n; i++) {
    const wv_sif_descr_t *d = &h->d[i];
    fprintf(f, "%-3u %-14s 0x%08x 0x%08x %-12lld %-12lld %-12lld ", d->id,
            wv_sif_type_name(d->datatype), d->groupid, d->link, (long long)d->offset,
            (long long)d->size, (long long)d->size_with_padding);
    if (d->datatype == WV_SIF_PARTITION)
      fprintf(f, "fstype=%d parttype=%d arch=%s\n", d->fstype, d->parttype, d->arch);
    else
      fprintf(f, "%s\n", d->name);
  }
}
