#include "registry/mediatype.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static const struct {
  const char *name;
  wv_mt_kind_t kind;
} known[] = {
    {WV_MT_DOCKER_MANIFEST, WV_MT_KIND_MANIFEST}, {WV_MT_OCI_MANIFEST, WV_MT_KIND_MANIFEST},
    {WV_MT_DOCKER_LIST, WV_MT_KIND_INDEX},        {WV_MT_OCI_INDEX, WV_MT_KIND_INDEX},
    {WV_MT_DOCKER_SCHEMA1, WV_MT_KIND_SCHEMA1},   {WV_MT_DOCKER_SCHEMA1_SIGNED, WV_MT_KIND_SCHEMA1},
    {WV_MT_DOCKER_CONFIG, WV_MT_KIND_OTHER},      {WV_MT_OCI_CONFIG, WV_MT_KIND_OTHER},
    {WV_MT_DOCKER_LAYER_GZIP, WV_MT_KIND_OTHER},  {WV_MT_OCI_LAYER_GZIP, WV_MT_KIND_OTHER},
};

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Finds the known entry whose name equals mt up to case, blanks and parameters. */
static int lookup(const char *mt) {
  if (!mt)
    return -1;
  while (is_blank(*mt))
    mt++;
  size_t n = 0;
  while (mt[n] && mt[n] != ';')
    n++;
  while (n > 0 && is_blank(mt[n - 1]))
    n--;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    const char *k = known[i].name;
    if (strlen(k) == n && strncasecmp(k, mt, n) == 0)
      return (int)i;
  }
  return -1;
}

wv_mt_kind_t wv_mediatype_classify(const char *mt) {
  int i = lookup(mt);
  return i < 0 ? WV_MT_KIND_OTHER : known[i].kind;
}

const char *wv_mediatype_canonical(const char *mt) {
  int i = lookup(mt);
  return i < 0 ? NULL : known[i].name;
}

/* Literals are not guaranteed to share one address, so compare the text. */
static bool same(const char *canonical, const char *name) {
  return canonical && strcmp(canonical, name) == 0;
}

bool wv_mediatype_is_oci(const char *mt) {
  const char *c = wv_mediatype_canonical(mt);
  return same(c, WV_MT_OCI_MANIFEST) || same(c, WV_MT_OCI_INDEX);
}

const char *wv_mediatype_index_child(const char *index_mt) {
  const char *c = wv_mediatype_canonical(index_mt);
  if (same(c, WV_MT_OCI_INDEX))
    return WV_MT_OCI_MANIFEST;
  if (same(c, WV_MT_DOCKER_LIST))
    return WV_MT_DOCKER_MANIFEST;
  return NULL;
}

const char *wv_mediatype_config_for(const char *manifest_mt) {
  const char *c = wv_mediatype_canonical(manifest_mt);
  if (same(c, WV_MT_OCI_MANIFEST))
    return WV_MT_OCI_CONFIG;
  if (same(c, WV_MT_DOCKER_MANIFEST))
    return WV_MT_DOCKER_CONFIG;
  return NULL;
}
