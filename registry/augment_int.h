/*
 * registry/augment_int.h — how registry/augment.c and registry/container_config.c
 * read JSON: one whole document, strict and capped (core/json), and messages
 * in Wave's words in the caller's arena. Not for other modules; the names
 * carry the internal marker wv__.
 */
#ifndef WV_REGISTRY_AUGMENT_INT_H
#define WV_REGISTRY_AUGMENT_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

/* Sets *msg (when msg is not NULL) and returns rc, or WV_ENOMEM when the message cannot be made. */
int wv__augment_say(wv_arena_t *a, const char **msg, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Parses a whole JSON document that must be an object (at most max bytes,
 * WV_AUGMENT_MAX_DEPTH deep). `what` names it in messages ("image config").
 * *root is the caller's to put.
 */
int wv__augment_parse_object(wv_arena_t *a, const char *text, size_t len, size_t max,
                             const char *what, json_object **root, const char **msg);

/* The member key of obj when it has type t; NULL when absent, null or another type. */
json_object *wv__augment_member(json_object *obj, const char *key, json_type t);

/* True when key is absent or explicitly null. */
bool wv__augment_absent(json_object *obj, const char *key);

#endif
