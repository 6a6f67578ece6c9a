/*
 * core/config_int.h — configuration's private types, shared by core/config.c
 * (loading the YAML file, parsing values, the environment, the public API)
 * and core/config_schema.c (the key table, aliases, validators and key
 * lookup). Not for other modules: they use core/config.h.
 */
#ifndef WV_CONFIG_INT_H
#define WV_CONFIG_INT_H

#include "core/config.h"

#include <stdbool.h>
#include <stddef.h>

#define MAX_KEY_LEN 256

/* T_LIST is a string field holding a comma-separated list; in YAML it is written either as a
 * list of scalars (joined with commas) or as one comma-separated scalar. T_PATH is a string
 * field naming a file or directory: wv_config_resolve_paths() makes it absolute. */
typedef enum {
  T_STR,
  T_INT,
  T_BOOL,
  T_DUR_MS,
  T_DUR_US,
  T_SIZE,
  T_MAP,
  T_REGS,
  T_LIST,
  T_PATH
} ctype_t;

/* A string-valued type: T_STR, T_LIST or T_PATH (a char * field). */
#define WV_CFG_IS_STRING(t) ((t) == T_STR || (t) == T_LIST || (t) == T_PATH)

/* A value check beyond the type; writes a reason into why on failure. */
typedef int (*check_fn)(const char *s, char *why, size_t whylen);

typedef struct {
  const char *key; /* canonical, kebab-case */
  ctype_t type;
  size_t off;
  const char *def;
  long long min, max; /* int/size/duration bounds in the field's unit; 0,0 = none */
  check_fn check;
  const char *wave_name;
  const char *desc;
} entry_t;

/* The schema table (config_schema.c), wv__cfg_nschema rows. */
extern const entry_t *const wv__cfg_schema;
extern const size_t wv__cfg_nschema;

/* Length of the authority of an http(s) URL, or 0 if the URL is not acceptable. */
size_t wv__cfg_url_authority(const char *url, const char **start);
/* 0 when s is 64 hex digits; otherwise a reason in why and WV_EINVAL. */
int wv__cfg_check_sha256_hex(const char *s, char *why, size_t whylen);

/* camelCase → kebab-case ("ioThreads" → "io-threads"); out has MAX_KEY_LEN*2 bytes. */
void wv__cfg_kebab(const char *in, char *out, size_t outlen);
/* The canonical key of an alias, or k itself. */
const char *wv__cfg_resolve_alias(const char *k);
/* The schema row of a canonical key, or NULL. */
const entry_t *wv__cfg_find_entry(const char *k);
/* True when k is a section: a proper prefix of some key or alias. */
bool wv__cfg_is_section(const char *k);

#endif
