/*
 * build/templates.h — the container file a `packages` request builds
 * (contract §6.2) and the conda YAML that goes with it. The freeze rewrite of
 * contract §6.3 is build/freeze.h.
 *
 * The template texts are Wave's (src/main/resources/templates), rendered
 * with Wave's TemplateRenderer rules: a line holding only "{{name}}" is
 * dropped when the value is null and otherwise gets the line's indentation
 * in front of every line of the value; other "{{name}}" are replaced inline
 * (null → ""), "${{" is left alone, lines starting with "##" are dropped and
 * {{wave_context_dir}} survives for the builder to substitute. Byte-identical
 * output is what makes build ids match hosted Wave (contract §4.4).
 *
 * Image and package defaults are not hard-coded: the caller passes a
 * wv_template_defaults_t (wv_template_defaults_wave() fills Wave's values)
 * so config.yml can point an offline lab at its own registry.
 *
 * Everything returned lives in the caller's arena; messages (*msg, may be
 * NULL) are the client-facing 400 texts. Pure, no I/O, any thread.
 */
#ifndef WV_BUILD_TEMPLATES_H
#define WV_BUILD_TEMPLATES_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

struct json_object;

#define WV_TEMPLATE_MAX_ITEMS 1000 /* entries, channels, commands */

typedef enum {
  WV_TEMPLATE_PKG_UNSET = 0,
  WV_TEMPLATE_PKG_CONDA,
  WV_TEMPLATE_PKG_CRAN
} wv_template_pkg_type_t;

typedef enum {
  WV_TEMPLATE_DEFAULT = 0, /* buildTemplate absent: from the package type */
  WV_TEMPLATE_MICROMAMBA_V1,
  WV_TEMPLATE_MICROMAMBA_V2,
  WV_TEMPLATE_PIXI_V1,
  WV_TEMPLATE_CRAN_V1,
} wv_template_t;

/* condaOpts / pixiOpts / cranOpts. */
typedef struct {
  const char *image;         /* mambaImage, pixiImage or rImage; NULL → default */
  const char *base_image;    /* baseImage (conda, pixi); NULL → default */
  const char *base_packages; /* basePackages as sent */
  bool base_packages_set;    /* present in JSON: a null then means "none" */
  const char **commands;     /* appended at the end of the file */
  size_t n_commands;
} wv_template_pkg_opts_t;

typedef struct {
  wv_template_pkg_type_t type;
  const char *environment; /* base64 as sent, NULL when absent */
  const char **entries;    /* NULL when absent */
  size_t n_entries;
  const char **channels; /* NULL when absent; non-NULL with 0 items for [] */
  size_t n_channels;
  const wv_template_pkg_opts_t *conda_opts; /* NULL when absent */
  const wv_template_pkg_opts_t *pixi_opts;
  const wv_template_pkg_opts_t *cran_opts;
} wv_template_packages_t;

/* Defaults for absent options (contract §3.1). Strings are borrowed, not copied. */
typedef struct {
  const char *mamba_image_v1;      /* mambaorg/micromamba:1.5.10-noble */
  const char *mamba_image_v2;      /* mambaorg/micromamba:2-amazon2023 */
  const char *conda_base_packages; /* conda-forge::procps-ng */
  const char *conda_base_image;    /* ubuntu:24.04 */
  const char *pixi_image;          /* public.cr.seqera.io/wave/pixi:0.61.0-noble */
  const char *pixi_base_packages;  /* conda-forge::procps-ng */
  const char *pixi_base_image;     /* ubuntu:24.04 */
  const char *cran_image;          /* rocker/r-ver:4.4.1 */
  const char *cran_base_packages;  /* littler r-cran-docopt */
} wv_template_defaults_t;

/* Fills d with Wave's defaults (the values in the comments above). */
void wv_template_defaults_wave(wv_template_defaults_t *d);

/* "conda/micromamba:v1" … "cran/installr:v1"; NULL → WV_TEMPLATE_DEFAULT; else WV_EINVAL. */
int wv_template_parse(wv_arena_t *a, const char *s, wv_template_t *out, const char **msg);
/* The template Wave uses: the given one, else from the type (CONDA → v2, CRAN → cran). */
wv_template_t wv_template_effective(wv_template_t t, wv_template_pkg_type_t type);
/* "conda/micromamba:v2" etc.; "-" for WV_TEMPLATE_DEFAULT. */
const char *wv_template_name(wv_template_t t);

/*
 * Reads a PackagesSpec from json-c (NULL or JSON null → WV_ENOTFOUND).
 * Explicit nulls are absent values, except basePackages (see above);
 * unknown fields are ignored. Type errors and an unknown `type` give
 * WV_EINVAL with a message. Strings are copied into the arena.
 */
int wv_template_packages_from_json(wv_arena_t *a, const struct json_object *obj,
                                   wv_template_packages_t *out, const char **msg);

/*
 * Request-time rules: `type` required; `entries` and `environment` are
 * exclusive; a conda lock-file URL entry must be the only entry; CONDA needs
 * one of them; `environment` must be canonical base64; "pip::x" entries are
 * refused. 0 or WV_EINVAL with the message.
 */
int wv_template_packages_validate(wv_arena_t *a, const wv_template_packages_t *p, wv_template_t tpl,
                                  const char **msg);

/* The lock-file URL when the only entry is http(s)://…, else NULL. */
const char *wv_template_packages_lock_file(const wv_template_packages_t *p);

/*
 * The conda YAML of a request (context/conda.yml and the checksum's
 * condaFile): from `entries` (pip entries in a pip section, `channels`
 * first) or from the decoded `environment` re-dumped with `channels`
 * appended. *yaml = NULL for CRAN or a lock-file request. 0 or WV_EINVAL.
 */
int wv_template_packages_conda_yaml(wv_arena_t *a, const wv_template_packages_t *p,
                                    const char **yaml, const char **msg);

/*
 * The container file (Dockerfile, or Singularity definition when
 * singularity) for the request and template. Unsupported combinations give
 * WV_EINVAL with Wave's messages ("Unexpected or missing package type '…'
 * or build template '…'", "Conda lock file is not supported by
 * 'conda/pixi:v1' template").
 */
int wv_template_packages_container_file(wv_arena_t *a, const wv_template_packages_t *p,
                                        wv_template_t tpl, bool singularity,
                                        const wv_template_defaults_t *defaults, const char **out,
                                        const char **msg);

#endif
