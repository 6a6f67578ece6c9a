/*
 * build/condayaml.h — conda environment YAML: a small tree loaded with
 * libyaml and written back the way Wave's SnakeYAML dumper writes it.
 *
 * Wave hashes the conda file it generates (contract §4.4), so the text must
 * match SnakeYAML's block style byte for byte in the cases conda files use:
 * 2-space nesting, sequences inside mappings not indented ("deps:\n- a"),
 * "- key: v" for a mapping inside a sequence, "[]" and "{}" for empty
 * collections, and plain scalars unless SnakeYAML would quote them (a
 * string that would read back as a number, boolean or null, or one with
 * indicator characters, gets single quotes; control characters force double
 * quotes). Plain scalars are typed with YAML 1.1 rules, as SnakeYAML does,
 * and typed values are written back canonically ("yes" → true, "0x10" → 16,
 * "1e3" → 1000.0). Known differences from SnakeYAML, accepted because conda
 * files do not use them: no line folding of long scalars with spaces at 80
 * columns, multi-line strings are written double-quoted rather than as
 * literal blocks, timestamps are written as they were read. Anchors, aliases
 * and complex (non-scalar) keys are refused.
 *
 * Everything is allocated in the caller's arena. Pure, any thread.
 */
#ifndef WV_BUILD_CONDAYAML_H
#define WV_BUILD_CONDAYAML_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

#define WV_YAML_MAX_DEPTH 64
#define WV_YAML_MAX_NODES 100000

typedef enum { WV_YAML_SCALAR, WV_YAML_SEQ, WV_YAML_MAP } wv_yaml_kind_t;

/* What a scalar reads as: quoted or tagged scalars are always strings. */
typedef enum { WV_YAML_STR, WV_YAML_NULL, WV_YAML_BOOL, WV_YAML_INT, WV_YAML_FLOAT } wv_yaml_type_t;

typedef struct wv_yaml_node wv_yaml_node_t;
struct wv_yaml_node {
  wv_yaml_kind_t kind;
  wv_yaml_type_t type; /* scalars only */
  const char *text;    /* scalars: the value (NUL-terminated, may hold no NUL) */
  /* sequences: items[0..n); mappings: keys items[2i], values items[2i+1], n pairs */
  wv_yaml_node_t **items;
  size_t n, cap;
};

/*
 * Loads one YAML document whose root must be a mapping. Duplicate keys keep
 * the first position and the last value (SnakeYAML's LinkedHashMap). Returns
 * 0, WV_EPARSE with *msg (e.g. "Invalid conda YAML at line 3: ..."), or
 * WV_ETOOBIG past WV_YAML_MAX_DEPTH / WV_YAML_MAX_NODES, or WV_ENOMEM.
 */
int wv_yaml_load(wv_arena_t *a, const char *text, size_t len, wv_yaml_node_t **root,
                 const char **msg);

/* Writes a tree in SnakeYAML's block style (see above) into *out (arena). */
int wv_yaml_dump(wv_arena_t *a, const wv_yaml_node_t *root, const char **out);

/* The value of key in a mapping, or NULL. */
wv_yaml_node_t *wv_yaml_get(const wv_yaml_node_t *map, const char *key);

/* Constructors and appenders for generated documents. NULL / WV_ENOMEM on failure. */
wv_yaml_node_t *wv_yaml_new(wv_arena_t *a, wv_yaml_kind_t kind);
wv_yaml_node_t *wv_yaml_str(wv_arena_t *a, const char *s);
int wv_yaml_append(wv_arena_t *a, wv_yaml_node_t *coll, wv_yaml_node_t *item);
/* Sets key in a mapping: replaces the value in place or appends the pair. */
int wv_yaml_put(wv_arena_t *a, wv_yaml_node_t *map, const char *key, wv_yaml_node_t *value);

/*
 * A scalar's value as Java would print it after SnakeYAML typed it ("true",
 * "16", "1000.0", "null"); strings come back as they are.
 */
const char *wv_yaml_scalar_java(wv_arena_t *a, const wv_yaml_node_t *scalar);

/* The YAML 1.1 type SnakeYAML gives an untagged plain scalar. */
wv_yaml_type_t wv_yaml_resolve(const char *plain);

#endif
