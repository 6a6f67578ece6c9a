/*
 * core/err.h — the one error enum of waved.
 *
 * Fallible functions return 0 (WV_OK) or a negative WV_E* code. Human detail
 * (which key, which file, which limit) travels separately in a caller-owned
 * string; the code only says what kind of failure it was. Mapping a code to an
 * HTTP status or a registry error code happens in exactly one function per
 * URL space (http/resp.c).
 */
#ifndef WV_ERR_H
#define WV_ERR_H

#define WV_ERR_MAP(X)                                                                              \
  X(NOMEM, -1, "out of memory")                                                                    \
  X(INVAL, -2, "invalid argument")                                                                 \
  X(TOOBIG, -3, "size limit exceeded")                                                             \
  X(NOTFOUND, -4, "not found")                                                                     \
  X(IO, -5, "input/output error")                                                                  \
  X(PARSE, -6, "malformed input")                                                                  \
  X(EXISTS, -7, "already exists")                                                                  \
  X(DIGEST, -8, "digest mismatch")                                                                 \
  X(STORE, -9, "state store error")                                                                \
  X(TIMEOUT, -10, "timed out")                                                                     \
  X(BUSY, -11, "resource busy")                                                                    \
  X(CLOSED, -12, "closed")                                                                         \
  X(UPSTREAM, -13, "upstream error")                                                               \
  X(AUTH, -14, "authentication failed")                                                            \
  X(RANGE, -15, "value out of range")                                                              \
  X(INTERNAL, -16, "internal error")                                                               \
  X(EXPIRED, -17, "expired")                                                                       \
  X(DENIED, -18, "permission denied")                                                              \
  X(UNSUPPORTED, -19, "service not enabled")                                                       \
  X(UNAVAIL, -20, "service unavailable")                                                           \
  X(NOSPC, -21, "insufficient storage")

typedef enum {
  WV_OK = 0,
#define WV_ERR_ENUM(name, code, text) WV_E##name = (code),
  WV_ERR_MAP(WV_ERR_ENUM)
#undef WV_ERR_ENUM
} wv_err_t;

/*
 * The code of a failed file-system call from its errno: WV_ENOSPC when the disk
 * or the quota is full (ENOSPC, EDQUOT), so requests answer 507 rather than 500;
 * WV_EIO otherwise.
 */
int wv_err_io(int errnum);

/* Returns a static, never-NULL description of rc (unknown codes included). */
const char *wv_strerror(int rc);

/* Returns the symbolic name ("NOTFOUND") of rc, or "UNKNOWN". */
const char *wv_errname(int rc);

#endif
