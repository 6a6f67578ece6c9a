/*
 * scan/intmap.h — a small open-addressing map from C strings to ints, for the
 * scanner's bookkeeping (paths to sources, index keys to lists, record ids).
 *
 * Keys are borrowed: they must outlive the map (arena strings in practice).
 * A value of -1 reads as absent, so "remove" is put(k, -1). Grows by
 * doubling at 70% load; one owner thread. Zero-initialise, then use; free
 * with wv_intmap_free.
 */
#ifndef WV_SCAN_INTMAP_H
#define WV_SCAN_INTMAP_H

#include <stddef.h>

typedef struct {
  const char **keys;
  int *vals;
  size_t cap, n;
} wv_intmap_t;

/* The value at k, or -1 when absent. */
int wv_intmap_get(const wv_intmap_t *m, const char *k);
/* Sets k → v. Returns 0 or WV_ENOMEM (the map is unchanged then). */
int wv_intmap_put(wv_intmap_t *m, const char *k, int v);
void wv_intmap_free(wv_intmap_t *m);

#endif
