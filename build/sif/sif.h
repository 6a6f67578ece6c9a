/*
 * build/sif/sif.h — the SIF container file (Singularity Image Format, as the
 * sylabs/sif library v2 writes it for `singularity build`; docs/singularity.md).
 *
 * Layout: a 128-byte global header at 0, a descriptor table of 48 slots of
 * 585 bytes at 4096, the data objects from 32176 on, every integer
 * little-endian and packed. Partitions start on 4096-byte boundaries; other
 * objects follow each other directly. There are no checksums.
 *
 * wv_sif_write writes a whole file from a list of objects; wv_sif_parse reads
 * the header and descriptor table from bytes (no I/O: the fuzz target drives
 * it) and checks every rule a strict reader checks (docs/singularity.md);
 * wv_sif_verify_file adds what needs the file itself (its size, the squashfs
 * magic of the primary partition). Thread rules: none (pure or fd-local).
 */
#ifndef WV_SIF_H
#define WV_SIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define WV_SIF_HEADER_LEN 128
#define WV_SIF_DESCR_OFF 4096
#define WV_SIF_DESCR_LEN 585
#define WV_SIF_DTOTAL 48
#define WV_SIF_DATA_OFF (WV_SIF_DESCR_OFF + WV_SIF_DTOTAL * WV_SIF_DESCR_LEN) /* 32176 */
#define WV_SIF_PART_ALIGN 4096
#define WV_SIF_LAUNCH "#!/usr/bin/env run-singularity\n"
#define WV_SIF_MAGIC "SIF_MAGIC"
#define WV_SIF_VERSION "01"
#define WV_SIF_GROUP_DEFAULT 0xF0000001u
#define WV_SIF_MAX_DTOTAL 4096 /* a reader refuses a larger table */

/* Data object types (int32). */
enum {
  WV_SIF_DEFFILE = 0x4001,
  WV_SIF_ENVVAR = 0x4002,
  WV_SIF_LABELS = 0x4003,
  WV_SIF_PARTITION = 0x4004,
  WV_SIF_SIGNATURE = 0x4005,
  WV_SIF_GENERICJSON = 0x4006,
  WV_SIF_GENERIC = 0x4007,
  WV_SIF_CRYPTOMSG = 0x4008,
  WV_SIF_SBOM = 0x4009,
  WV_SIF_OCIROOTINDEX = 0x400A,
  WV_SIF_OCIBLOB = 0x400B
};
enum { WV_SIF_FS_SQUASH = 1 };
enum { WV_SIF_PART_SYSTEM = 1, WV_SIF_PART_PRIMSYS = 2 };

/* One descriptor as read (text fields NUL-terminated). */
typedef struct {
  int32_t datatype;
  bool used;
  uint32_t id, groupid, link;
  int64_t offset, size, size_with_padding, ctime, mtime, uid, gid;
  char name[129];
  int32_t fstype, parttype; /* partitions only (from the extra field) */
  char arch[3];             /* partitions only: "02" */
} wv_sif_descr_t;

/* The header and the used descriptors. */
typedef struct {
  char launch[33];
  char version[3];
  char arch[3];
  uint8_t id[16];
  int64_t ctime, mtime, dfree, dtotal, descroff, descrsize, dataoff, datasize;
  size_t n; /* used descriptors in d */
  wv_sif_descr_t d[WV_SIF_DTOTAL];
  int primary; /* index in d of the primary system partition, -1 when none */
} wv_sif_info_t;

/* One object to write. Exactly one of data/path gives its bytes. */
typedef struct {
  int32_t type;
  const char *name; /* <= 128 bytes, may be NULL */
  const void *data;
  size_t len;
  const char *path; /* a file copied in (partitions) */
  const char *arch; /* partitions: the 2-digit SIF code ("02") */
} wv_sif_object_t;

/* The SIF arch code of a Go/OCI architecture ("amd64" → "02"), NULL when unknown. */
const char *wv_sif_arch_code(const char *goarch);

/*
 * Writes a SIF with objs[0..n) in order to fd (at offset 0; the file is
 * truncated to its end). Partitions are written as squashfs primary system
 * partitions (at most one). now = ctime/mtime; uuid = the 16-byte id.
 * Returns 0, WV_EINVAL (bad object list; err says why), WV_EIO, WV_ENOSPC.
 */
int wv_sif_write(int fd, const wv_sif_object_t *objs, size_t n, int64_t now, const uint8_t uuid[16],
                 char *err, size_t errlen);

/*
 * Parses the first len bytes of a SIF whose whole size is file_size
 * (len >= min(file_size, dataoff) is needed to see the table) and checks it
 * (docs/singularity.md, "What a reader checks"). 0 or WV_EPARSE (err says
 * which rule failed).
 */
int wv_sif_parse(const uint8_t *buf, size_t len, uint64_t file_size, wv_sif_info_t *out, char *err,
                 size_t errlen);

/* wv_sif_parse on a file plus the squashfs magic of its primary partition. */
int wv_sif_verify_file(const char *path, wv_sif_info_t *out, char *err, size_t errlen);

/* The name of a data type ("Def.FILE"), "unknown" else. */
const char *wv_sif_type_name(int32_t t);

/* Prints the header and descriptors of info to f (what `waved sif inspect` shows). */
void wv_sif_print(FILE *f, const wv_sif_info_t *info);

/*
 * `waved sif inspect FILE` and `waved sif extract FILE NAME|partition OUT`:
 * argv[1] is "sif". Returns the process exit code (0 = a valid SIF).
 */
int wv_sif_main(int argc, char **argv);

#endif
