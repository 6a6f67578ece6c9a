/* core/json.c — json-c helpers (see json.h). */
#include "core/json.h"
#include "core/err.h"
#include "core/memtrim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Turns a byte offset into "line L, column C" (1-based, columns in bytes). */
static void locate(const char *text, size_t off, size_t *line, size_t *col) {
  *line = 1;
  size_t start = 0;
  for (size_t i = 0; i < off; i++) {
    if (text[i] == '\n') {
      (*line)++;
      start = i + 1;
    }
  }
  *col = off - start + 1;
}

static int parse_error(const char *text, size_t off, const char *why, char *err, size_t errlen) {
  size_t line, col;
  locate(text, off, &line, &col);
  snprintf(err, errlen, "Malformed JSON at line %zu, column %zu: %s", line, col, why);
  return WV_EPARSE;
}

static bool only_space(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
      return false;
  return true;
}

int wv_json_parse(const char *text, size_t len, size_t max_bytes, int max_depth, json_object **out,
                  char *err, size_t errlen) {
  *out = NULL;
  if (len > max_bytes) {
    snprintf(err, errlen, "JSON body larger than %zu bytes", max_bytes);
    return WV_ETOOBIG;
  }
  if (len > INT32_MAX) /* json-c takes an int length */
    return WV_ETOOBIG;
  if (only_space(text, len)) {
    snprintf(err, errlen, "Malformed JSON: empty body");
    return WV_EPARSE;
  }
  const char *nul = memchr(text, '\0', len);
  if (nul) /* json-c would stop silently at a NUL */
    return parse_error(text, (size_t)(nul - text), "NUL byte in input", err, errlen);
  /* json-c counts the innermost scalar as a level; ours counts containers. */
  json_tokener *tok = json_tokener_new_ex((max_depth > 0 ? max_depth : WV_JSON_MAX_DEPTH) + 1);
  if (!tok)
    return WV_ENOMEM;
  /* Trailing characters are checked below, for a clearer message. */
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                  JSON_TOKENER_VALIDATE_UTF8);
  json_object *o = json_tokener_parse_ex(tok, text, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t end = json_tokener_get_parse_end(tok);
  if (jerr == json_tokener_continue) {
    /* A top-level number ("12") only ends at a terminator: feed json-c its NUL. */
    o = json_tokener_parse_ex(tok, "", 1);
    jerr = json_tokener_get_error(tok);
  }
  json_tokener_free(tok);
  int rc = 0;
  if (jerr == json_tokener_continue || jerr == json_tokener_error_parse_eof)
    rc = parse_error(text, len, "unexpected end of input", err, errlen);
  else if (jerr == json_tokener_error_depth)
    rc = parse_error(text, end, "nested too deeply", err, errlen);
  else if (jerr != json_tokener_success)
    rc = parse_error(text, end < len ? end : len, json_tokener_error_desc(jerr), err, errlen);
  else if (!only_space(text + end, len - end))
    rc = parse_error(text, end, "unexpected characters after the JSON value", err, errlen);
  if (rc) {
    json_object_put(o);
    return rc;
  }
  *out = o; /* a literal `null` document is a NULL object, and that is fine */
  return 0;
}

/* At p (just after a backslash inside a string): true for the escape u0000. */
static bool nul_escape(const char *p, const char *end) {
  return end - p >= 5 && memcmp(p, "u0000", 5) == 0;
}

int wv_json_scan(const char *text, size_t len, size_t max_values, char *err, size_t errlen) {
  const char *p = text, *end = text + len;
  size_t values = 1;
  bool in_str = false;
  for (; p < end; p++) {
    char c = *p;
    if (in_str) {
      if (c == '\\') {
        if (p + 1 < end && nul_escape(p + 1, end))
          return parse_error(text, (size_t)(p - text), "\\u0000 is not allowed in a string", err,
                             errlen);
        p++; /* the escaped character cannot end the string */
      } else if (c == '"') {
        in_str = false;
      }
    } else if (c == '"') {
      in_str = true;
    } else if (c == ',' || c == '[' || c == '{') {
      if (max_values && ++values > max_values) {
        snprintf(err, errlen, "JSON body has more than %zu values", max_values);
        return WV_ETOOBIG;
      }
    }
  }
  return 0;
}

int wv_json_parse_body(const char *text, size_t len, size_t max_bytes, int max_depth,
                       size_t max_values, json_object **out, char *err, size_t errlen) {
  *out = NULL;
  if (len > max_bytes) {
    snprintf(err, errlen, "JSON body larger than %zu bytes", max_bytes);
    return WV_ETOOBIG;
  }
  wv_memtrim_note(len); /* a large body: its buffer and objects are freed soon */
  int rc = wv_json_scan(text, len, max_values, err, errlen);
  return rc ? rc : wv_json_parse(text, len, max_bytes, max_depth, out, err, errlen);
}

/* Looks up key: 0 with *v set, WV_ENOTFOUND for absent/null, WV_EINVAL if obj is no object. */
static int member(const json_object *obj, const char *key, json_object **v) {
  if (!obj || !json_object_is_type(obj, json_type_object))
    return WV_EINVAL;
  if (!json_object_object_get_ex(obj, key, v) || *v == NULL)
    return WV_ENOTFOUND;
  return 0;
}

static int typed(const json_object *obj, const char *key, json_type t, json_object **v) {
  int rc = member(obj, key, v);
  if (rc == 0 && !json_object_is_type(*v, t))
    rc = WV_EINVAL;
  return rc;
}

int wv_json_get_str(const json_object *obj, const char *key, const char **out) {
  json_object *v;
  int rc = typed(obj, key, json_type_string, &v);
  if (rc == 0)
    *out = json_object_get_string(v);
  return rc;
}

int wv_json_get_int64(const json_object *obj, const char *key, int64_t *out) {
  json_object *v;
  int rc = member(obj, key, &v);
  if (rc)
    return rc;
  if (json_object_is_type(v, json_type_int)) {
    *out = json_object_get_int64(v);
    return 0;
  }
  if (json_object_is_type(v, json_type_double)) {
    double d = json_object_get_double(v);
    if (d == floor(d) && d >= -9.2e18 && d <= 9.2e18) {
      *out = (int64_t)d;
      return 0;
    }
  }
  return WV_EINVAL;
}

int wv_json_get_bool(const json_object *obj, const char *key, bool *out) {
  json_object *v;
  int rc = typed(obj, key, json_type_boolean, &v);
  if (rc == 0)
    *out = json_object_get_boolean(v);
  return rc;
}

int wv_json_get_double(const json_object *obj, const char *key, double *out) {
  json_object *v;
  int rc = member(obj, key, &v);
  if (rc)
    return rc;
  if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
    return WV_EINVAL;
  *out = json_object_get_double(v);
  return 0;
}

int wv_json_get_object(const json_object *obj, const char *key, json_object **out) {
  return typed(obj, key, json_type_object, out);
}

int wv_json_get_array(const json_object *obj, const char *key, json_object **out) {
  return typed(obj, key, json_type_array, out);
}

int wv_json_get_strv(const json_object *obj, const char *key, wv_arena_t *a, size_t max,
                     const char ***out, size_t *n) {
  json_object *arr;
  int rc = wv_json_get_array(obj, key, &arr);
  if (rc)
    return rc;
  size_t len = json_object_array_length(arr);
  if (len > max)
    return WV_ETOOBIG;
  const char **v = wv_arena_alloc(a, (len + 1) * sizeof *v);
  if (!v)
    return WV_ENOMEM;
  for (size_t i = 0; i < len; i++) {
    json_object *e = json_object_array_get_idx(arr, i);
    if (!e || !json_object_is_type(e, json_type_string))
      return WV_EINVAL;
    v[i] = json_object_get_string(e);
  }
  v[len] = NULL;
  *out = v;
  *n = len;
  return 0;
}

const char *wv_json_compact(json_object *o) {
  return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

int wv_json_to_buf(json_object *o, wv_buf_t *b) {
  const char *s = wv_json_compact(o);
  return s ? wv_buf_puts(b, s) : WV_ENOMEM;
}

/* Adds child under key, taking ownership; child NULL means json-c failed to allocate. */
static int add(json_object *o, const char *key, json_object *child) {
  if (!child)
    return WV_ENOMEM;
  if (json_object_object_add(o, key, child) != 0) {
    json_object_put(child);
    return WV_ENOMEM;
  }
  return 0;
}

int wv_json_add_str(json_object *o, const char *key, const char *val) {
  if (!val || !*val)
    return 0;
  return add(o, key, json_object_new_string(val));
}

int wv_json_add_int(json_object *o, const char *key, int64_t val) {
  return add(o, key, json_object_new_int64(val));
}

int wv_json_add_bool(json_object *o, const char *key, bool val) {
  return add(o, key, json_object_new_boolean(val));
}

static bool is_empty(json_object *v) {
  if (json_object_is_type(v, json_type_object))
    return json_object_object_length(v) == 0;
  if (json_object_is_type(v, json_type_array))
    return json_object_array_length(v) == 0;
  return false;
}

int wv_json_add_obj(json_object *o, const char *key, json_object *child) {
  if (!child)
    return 0;
  if (is_empty(child)) {
    json_object_put(child);
    return 0;
  }
  return add(o, key, child);
}

int wv_json_add_strv(json_object *o, const char *key, const char *const *v, size_t n) {
  if (n == 0)
    return 0;
  json_object *arr = json_object_new_array_ext((int)n);
  if (!arr)
    return WV_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_object *s = v[i] ? json_object_new_string(v[i]) : NULL;
    if ((v[i] && !s) || json_object_array_add(arr, s) != 0) {
      json_object_put(s);
      json_object_put(arr);
      return WV_ENOMEM;
    }
  }
  return add(o, key, arr);
}

int wv_json_add_number_text(json_object *o, const char *key, const char *text) {
  /* json-c writes ds verbatim; the double is only what getters would read back. */
  return add(o, key, json_object_new_double_s(strtod(text, NULL), text));
}

json_object *wv_json_finish(json_object *o, int rc) {
  if (!rc)
    return o;
  json_object_put(o);
  return NULL;
}
