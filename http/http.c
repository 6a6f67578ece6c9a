#include "http/http.h"

#include <string.h>
#include <strings.h>

const char *wv_req_header(const wv_req_t *req, const char *name) {
  for (int i = 0; i < req->nheaders; i++)
    if (strcasecmp(req->headers[i].name, name) == 0)
      return req->headers[i].value;
  return NULL;
}

const char *wv_req_param(const wv_req_t *req, const char *name) {
  for (int i = 0; i < req->nparams; i++)
    if (strcmp(req->params[i].name, name) == 0)
      return req->params[i].value;
  return NULL;
}
