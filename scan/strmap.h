/*
 * scan/strmap.h — a small open-addressing map from C strings to ints, for the
 * scanner's bookkeeping (paths to sources, index keys to lists, record ids).
 *
 * Keys are borrowed: they must outlive the map (arena strings in practice).
 * A value of -1 reads as absent, so "remove" is put(k, -1). Grows by
 * doubling at 70% load; one owner thread. Zero-initialise, then use; free
 * with wv_strmap_free.
 */
#ifndef WV_SCAN_STRMAP_H
#define WV_SCAN_STRMAP_H

#include <stddef.h>

typedef struct {
  const char **keys;
  int *vals;
  size_t cap, n;
} wv_strmap_t;

/* The value at k, or -1 when absent. */
int wv_strmap_get(const wv_strmap_t *m, const char *k);
/* Sets k → v. Returns 0 or WV_ENOMEM (the map is unchanged then). */
int wv_strmap_put(wv_strmap_t *m, const char *k, int v);
void wv_strmap_free(wv_strmap_t *m);

#endif
