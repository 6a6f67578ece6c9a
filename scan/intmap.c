/* scan/intmap.c — see intmap.h. FNV-1a hashing, linear probing. */
#include "scan/intmap.h"
#include "core/siphash.h"

#include "core/err.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t slot_of(const wv_intmap_t *m, const char *k, bool *found) {
  size_t i = wv_str_hash(k) & (m->cap - 1);
  while (m->keys[i]) {
    if (strcmp(m->keys[i], k) == 0) {
      *found = true;
      return i;
    }
    i = (i + 1) & (m->cap - 1);
  }
  *found = false;
  return i;
}

int wv_intmap_get(const wv_intmap_t *m, const char *k) {
  if (!m->cap)
    return -1;
  bool found;
  size_t i = slot_of(m, k, &found);
  return found ? m->vals[i] : -1;
}

static int grow(wv_intmap_t *m) {
  size_t nc = m->cap ? m->cap * 2 : 64;
  wv_intmap_t nm = {calloc(nc, sizeof *nm.keys), calloc(nc, sizeof *nm.vals), nc, 0};
  if (!nm.keys || !nm.vals) {
    free(nm.keys);
    free(nm.vals);
    return WV_ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i])
      continue;
    bool found;
    size_t j = slot_of(&nm, m->keys[i], &found);
    nm.keys[j] = m->keys[i];
    nm.vals[j] = m->vals[i];
    nm.n++;
  }
  free(m->keys);
  free(m->vals);
  *m = nm;
  return 0;
}

int wv_intmap_put(wv_intmap_t *m, const char *k, int v) {
  bool found = false;
  size_t i = 0;
  if (m->cap)
    i = slot_of(m, k, &found);
  if (found) {
    m->vals[i] = v;
    return 0;
  }
  if ((m->n + 1) * 10 >= m->cap * 7) {
    if (grow(m))
      return WV_ENOMEM;
  }
  i = slot_of(m, k, &found);
  m->keys[i] = k;
  m->vals[i] = v;
  m->n++;
  return 0;
}

void wv_intmap_free(wv_intmap_t *m) {
  free(m->keys);
  free(m->vals);
  m->keys = NULL;
  m->vals = NULL;
  m->cap = m->n = 0;
}
