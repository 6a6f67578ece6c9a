/*
 * core/json.h — JSON helpers over json-c with the conventions of Wave's API
 * (contract §1.1): unknown fields are ignored, explicit nulls are accepted
 * wherever a field is optional, and responses omit null and empty fields
 * (but keep false and 0).
 *
 * Ownership: wv_json_parse hands the caller one reference (json_object_put
 * releases it). Strings returned by getters and wv_json_compact point into
 * the json object and live as long as it does. The builders take ownership
 * of any child object passed to them, also on failure.
 */
#ifndef WV_JSON_H
#define WV_JSON_H

#include "core/arena.h"
#include "core/buf.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WV_JSON_MAX_DEPTH 32

/*
 * Parses len bytes of text as one JSON value, refusing more than max_bytes
 * (WV_ETOOBIG) and nesting deeper than max_depth (0 = WV_JSON_MAX_DEPTH).
 * Strict JSON (no comments, single quotes or trailing garbage), valid UTF-8.
 * On failure returns WV_EPARSE (or WV_ETOOBIG / WV_ENOMEM) and writes e.g.
 * "Malformed JSON at line 3, column 14: unexpected character" into err.
 */
int wv_json_parse(const char *text, size_t len, size_t max_bytes, int max_depth, json_object **out,
                  char *err, size_t errlen);

/* Default cap on the values of a request body (server.max-json-values). */
#define WV_JSON_MAX_VALUES 100000

/*
 * A cheap pass over untrusted JSON text before any object is built: refuses
 * more than max_values values (WV_ETOOBIG; every object member and array
 * element counts, so 800,000 keys cost one linear scan and no allocation)
 * and a \u0000 escape inside a string (WV_EPARSE: json-c would keep the NUL
 * and every C reader of the string would see it truncated). The count is an
 * upper bound (commas and opened containers outside strings, plus one); the
 * text is not otherwise validated. 0 = no value cap. Message in err.
 */
int wv_json_scan(const char *text, size_t len, size_t max_values, char *err, size_t errlen);

/*
 * wv_json_parse for a request body: wv_json_scan with max_values first, so a
 * hostile body is refused before json-c allocates anything for it.
 */
int wv_json_parse_body(const char *text, size_t len, size_t max_bytes, int max_depth,
                       size_t max_values, json_object **out, char *err, size_t errlen);

/*
 * Typed getters on an object member. Each returns 0, WV_ENOTFOUND when the
 * member is absent or null, or WV_EINVAL when it has another type (or obj is
 * not an object). *out is untouched unless 0 is returned.
 */
int wv_json_get_str(const json_object *obj, const char *key, const char **out);
/* Integers only; a double with an integral value (1.0) is accepted too. */
int wv_json_get_int64(const json_object *obj, const char *key, int64_t *out);
int wv_json_get_bool(const json_object *obj, const char *key, bool *out);
/* Any number (int or double). */
int wv_json_get_double(const json_object *obj, const char *key, double *out);
int wv_json_get_object(const json_object *obj, const char *key, json_object **out);
int wv_json_get_array(const json_object *obj, const char *key, json_object **out);

/*
 * An array of strings as a NULL-terminated vector allocated from a (the
 * strings themselves stay in obj). *n gets the count. Null elements and
 * non-string elements are WV_EINVAL; more than max elements is WV_ETOOBIG.
 */
int wv_json_get_strv(const json_object *obj, const char *key, wv_arena_t *a, size_t max,
                     const char ***out, size_t *n);

/* Compact text ({"a":1}, "/" not escaped), owned by o. NULL on OOM. */
const char *wv_json_compact(json_object *o);
/* Appends the compact text of o to b: 0, WV_ETOOBIG or WV_ENOMEM. */
int wv_json_to_buf(json_object *o, wv_buf_t *b);

/*
 * Builders for response objects. Each returns 0 or WV_ENOMEM.
 * add_str omits NULL and "" values; add_obj omits NULL children and empty
 * objects/arrays (and releases them); add_strv omits an empty list. Numbers
 * and booleans are always added: false and 0 are real values.
 */
int wv_json_add_str(json_object *o, const char *key, const char *val);
int wv_json_add_int(json_object *o, const char *key, int64_t val);
int wv_json_add_bool(json_object *o, const char *key, bool val);
int wv_json_add_obj(json_object *o, const char *key, json_object *child);
int wv_json_add_strv(json_object *o, const char *key, const char *const *v, size_t n);
/*
 * A number written exactly as text (which must be a valid JSON number), e.g.
 * a duration "123.914989000" whose nine fractional digits json-c's double
 * formatting would lose.
 */
int wv_json_add_number_text(json_object *o, const char *key, const char *text);
/* Ends building o: o when rc is 0, else NULL after releasing o (NULL too). */
json_object *wv_json_finish(json_object *o, int rc);

#endif
