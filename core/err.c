#include "core/err.h"

#include <errno.h>

int wv_err_io(int errnum) { return errnum == ENOSPC || errnum == EDQUOT ? WV_ENOSPC : WV_EIO; }

const char *wv_strerror(int rc) {
  switch (rc) {
  case WV_OK:
    return "success";
#define WV_ERR_TEXT(name, code, text)                                                              \
  case WV_E##name:                                                                                 \
    return text;
    WV_ERR_MAP(WV_ERR_TEXT)
#undef WV_ERR_TEXT
  }
  return "unknown error";
}

const char *wv_errname(int rc) {
  switch (rc) {
  case WV_OK:
    return "OK";
#define WV_ERR_NAME(name, code, text)                                                              \
  case WV_E##name:                                                                                 \
    return #name;
    WV_ERR_MAP(WV_ERR_NAME)
#undef WV_ERR_NAME
  }
  return "UNKNOWN";
}
