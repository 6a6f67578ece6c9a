/*
 * build/sif/deffile.h — Singularity definition files (docs/singularity.md),
 * parsed as SingularityCE 4.x parses them (pkg/build/types/parser): the
 * header (`key: value` lines before the first %section), then sections
 * whose bodies are kept verbatim; a repeated section is concatenated (Wave
 * appends a second %post and %environment), the later arguments win.
 *
 * What waved builds: `Bootstrap: docker` with `From:` (and `Registry:`,
 * `Namespace:`), `Bootstrap: oras` with `From:`, sections %files %post %environment %runscript
 * %startscript %labels %help %test (stored, not run). Anything else is
 * refused with a message naming the header key or section, so a request
 * gets its 400 before a build starts (`localimage` with its own reason,
 * docs/singularity.md). Limits: WV_DEFFILE_MAX bytes of text,
 * WV_DEFFILE_MAX_FILES %files lines, WV_DEFFILE_MAX_LABELS labels.
 *
 * Thread rules: none; everything comes from the caller's arena.
 */
#ifndef WV_SIF_DEFFILE_H
#define WV_SIF_DEFFILE_H

#include "core/arena.h"

#include <stdbool.h>
#include <stddef.h>

#define WV_DEFFILE_MAX (1u << 20)
#define WV_DEFFILE_MAX_FILES 256
#define WV_DEFFILE_MAX_LABELS 256
#define WV_DEFFILE_MAX_HEADERS 32

typedef struct {
  const char *src, *dst; /* dst = src when the line names one path */
} wv_deffile_file_t;

typedef struct {
  const char *key, *value; /* lower-case key */
} wv_deffile_kv_t;

/* A script section: body verbatim (NULL when absent) and the args of its line. */
typedef struct {
  const char *body;
  const char *args;
} wv_deffile_script_t;

typedef struct {
  const char
      *raw; /* the file from its Bootstrap: line on (Def.FILE, /.singularity.d/Singularity) */
  const char *from; /* the image: [registry/][namespace/]From */
  bool oras;        /* Bootstrap: oras — from is a SIF artifact <registry>/<repo>:<tag> */
  wv_deffile_kv_t headers[WV_DEFFILE_MAX_HEADERS]; /* in file order */
  size_t n_headers;
  wv_deffile_file_t files[WV_DEFFILE_MAX_FILES];
  size_t n_files;
  wv_deffile_kv_t labels[WV_DEFFILE_MAX_LABELS];
  size_t n_labels;
  wv_deffile_script_t post, environment, runscript, startscript, test, help;
} wv_deffile_t;

/*
 * Parses text. Returns 0, WV_EINVAL with *msg (arena or static, starting
 * "Invalid Singularity definition file - ") naming what is refused,
 * WV_ETOOBIG (past a limit, with *msg), WV_ENOMEM.
 * {{wave_context_dir}} is left as it is; any other {{ name }} is refused.
 */
int wv_deffile_parse(wv_arena_t *a, const char *text, wv_deffile_t *out, const char **msg);

#endif
