#include "registry/keyed.h"

#include <stdlib.h>
#include <string.h>

wv_keyed_t *wv_keyed_join(wv_keyed_t **head, const char *key, size_t size, bool *created) {
  wv_keyed_t *e = *head;
  while (e && strcmp(e->key, key) != 0)
    e = e->next;
  *created = e == NULL;
  if (!e) {
    if (!(e = calloc(1, size)))
      return NULL;
    if (!(e->key = strdup(key))) {
      free(e);
      return NULL;
    }
    e->next = *head;
    *head = e;
  }
  e->refs++;
  return e;
}

void wv_keyed_unlink(wv_keyed_t **head, wv_keyed_t *e) {
  for (wv_keyed_t **pp = head; *pp; pp = &(*pp)->next)
    if (*pp == e) {
      *pp = e->next;
      return;
    }
}
