/*
 * registry/keyed.h — the rendezvous both kinds of coalescing use: a list of
 * entries by key, each with a reference count, that the first caller for a
 * key creates (registry/resolve.c flights, registry/blobfill.c fills).
 *
 * An entry type embeds wv_keyed_t as its first member. The caller holds its
 * own lock around every call; nothing here locks or frees.
 */
#ifndef WV_KEYED_H
#define WV_KEYED_H

#include <stdbool.h>
#include <stddef.h>

typedef struct wv_keyed {
  struct wv_keyed *next;
  char *key; /* owned; the caller frees it with the entry */
  int refs;
} wv_keyed_t;

/*
 * Finds key in *head, or adds a new zeroed entry of size bytes (size >=
 * sizeof(wv_keyed_t)) at the front (*created = true). Takes a reference
 * either way. NULL on OOM.
 */
wv_keyed_t *wv_keyed_join(wv_keyed_t **head, const char *key, size_t size, bool *created);
/* Takes e out of *head; a no-op when it is not there. */
void wv_keyed_unlink(wv_keyed_t **head, wv_keyed_t *e);

#endif
