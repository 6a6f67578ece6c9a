/*
 * build/sif/sif_cli.c — `waved sif inspect FILE` (print the header and the
 * descriptors, verify the file) and `waved sif extract FILE OBJECT OUT`
 * (copy one object out: "partition" or a JSON object's name), for operators
 * and the tests (docs/singularity.md).
 */
#include "build/sif/sif.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void) {
  fprintf(stderr, "usage: waved sif inspect FILE\n"
                  "       waved sif extract FILE partition|deffile|<object name> OUT\n");
  return 2;
}

static const wv_sif_descr_t *find(const wv_sif_info_t *h, const char *what) {
  for (size_t i = 0; i < h->n; i++) {
    const wv_sif_descr_t *d = &h->d[i];
    if ((strcmp(what, "partition") == 0 && (int)i == h->primary) ||
        (strcmp(what, "deffile") == 0 && d->datatype == WV_SIF_DEFFILE) ||
        (d->datatype != WV_SIF_PARTITION && strcmp(d->name, what) == 0))
      return d;
  }
  return NULL;
}

static int extract(const char *file, const wv_sif_descr_t *d, const char *out) {
  int in = open(file, O_RDONLY | O_CLOEXEC);
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  char *buf = malloc(1u << 20);
  int rc = in >= 0 && fd >= 0 && buf ? 0 : 1;
  for (int64_t done = 0; !rc && done < d->size;) {
    size_t want = (size_t)(d->size - done) < (1u << 20) ? (size_t)(d->size - done) : (1u << 20);
    ssize_t r = pread(in, buf, want, d->offset + done);
    rc = r > 0 && write(fd, buf, (size_t)r) == r ? 0 : 1;
    done += r > 0 ? r : 0;
  }
  if (rc)
    fprintf(stderr, "waved sif extract: %s: %s\n", out, strerror(errno));
  free(buf);
  if (in >= 0)
    close(in);
  if (fd >= 0 && close(fd) != 0)
    rc = 1;
  return rc;
}

int wv_sif_main(int argc, char **argv) {
  if (argc < 4)
    return usage();
  wv_sif_info_t h;
  char err[256] = "";
  int rc = wv_sif_verify_file(argv[3], &h, err, sizeof err);
  if (strcmp(argv[2], "inspect") == 0 && argc == 4) {
    if (h.n)
      wv_sif_print(stdout, &h);
    if (rc) {
      fprintf(stderr, "waved sif inspect: %s: invalid SIF: %s\n", argv[3], err);
      return 1;
    }
    printf("verified: ok\n");
    return 0;
  }
  if (strcmp(argv[2], "extract") != 0 || argc != 6)
    return usage();
  if (rc) {
    fprintf(stderr, "waved sif extract: %s: invalid SIF: %s\n", argv[3], err);
    return 1;
  }
  const wv_sif_descr_t *d = find(&h, argv[4]);
  if (!d) {
    fprintf(stderr, "waved sif extract: %s: no object '%s'\n", argv[3], argv[4]);
    return 1;
  }
  return extract(argv[3], d, argv[5]);
}
