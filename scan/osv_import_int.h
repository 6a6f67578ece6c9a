/*
 * scan/osv_import_int.h — what scan/osv_import.c (the import) and
 * scan/osv_norm.c (one record's validation) share. Not for other files.
 */
#ifndef WV_SCAN_OSV_IMPORT_INT_H
#define WV_SCAN_OSV_IMPORT_INT_H

#include "scan/osv.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* A validated record on its way in. */
typedef struct {
  const char *id, *modified;
  bool withdrawn;
  json_object *norm; /* NULL when nothing can be matched */
  const char *keys[64];
  size_t nkeys;
} rec_t;

/*
 * Validates rec and builds r->norm (a new JSON object the caller owns, NULL
 * when nothing can be matched); index keys are copied into ar. 0, or
 * WV_EPARSE with the reason in why (wl bytes), or WV_ENOMEM.
 */
int wv__osv_normalise(wv_arena_t *ar, json_object *rec, rec_t *r, char *why, size_t wl);

#endif
