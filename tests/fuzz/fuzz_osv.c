/*
 * tests/fuzz/fuzz_osv.c — OSV import (scan/osv_import.c, scan/osv_norm.c):
 * a JSON file (one record or an array of them) parsed as the import does,
 * each record validated and normalised, and the CVSS vectors it carries
 * scored. The store writes that follow are not parsing and are left out.
 */
#include "core/arena.h"
#include "core/json.h"
#include "scan/osv.h"
#include "scan/osv_import_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(wv_arena_t *a, json_object *rec) {
  rec_t r;
  char why[300];
  memset(&r, 0, sizeof r);
  if (wv__osv_normalise(a, rec, &r, why, sizeof why) == 0)
    json_object_put(r.norm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > (1u << 20))
    return 0;
  char *s = malloc(size + 1);
  if (!s)
    abort();
  memcpy(s, data, size);
  s[size] = '\0';
  double score;
  wv_osv_cvss3_base_score(s, &score);
  wv_osv_cvss2_base_score(s, &score);
  wv_osv_severity_parse(s);
  json_object *doc = NULL;
  char err[200];
  wv_arena_t *a = wv_arena_new(0);
  if (!a)
    abort();
  if (wv_json_parse(s, size, WV_OSV_FILE_MAX, 0, &doc, err, sizeof err) == 0) {
    if (json_object_is_type(doc, json_type_array)) {
      for (size_t i = 0; i < json_object_array_length(doc); i++)
        one(a, json_object_array_get_idx(doc, i));
    } else {
      one(a, doc);
    }
    json_object_put(doc);
  }
  wv_arena_free(a);
  free(s);
  return 0;
}
