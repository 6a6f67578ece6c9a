/* scan/spdx.c — SPDX 2.3 JSON (spec: spdx.github.io/spdx-spec/v2.3) and purl. */
#include "scan/spdx.h"

#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/timefmt.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Percent-encodes what a purl component may not carry literally. */
static int purl_enc(wv_buf_t *b, const char *s) {
  int rc = 0;
  for (; *s && !rc; s++) {
    unsigned char c = (unsigned char)*s;
    if (isalnum(c) || c == '.' || c == '-' || c == '_' || c == '~')
      rc = wv_buf_putc(b, (char)c);
    else
      rc = wv_buf_printf(b, "%%%02X", c);
  }
  return rc;
}

int wv_pkg_purl(const wv_pkg_t *p, const char *os_id, const char *os_version, wv_buf_t *out) {
  static const char *const type[] = {"deb", "apk", "conda", "pypi", "cran"};
  const char *ns = NULL;
  int rc;
  if (p->type == WV_ECO_DEB)
    ns = os_id && *os_id ? os_id : "debian";
  else if (p->type == WV_ECO_APK)
    ns = os_id && *os_id ? os_id : "alpine";
  rc = wv_buf_printf(out, "pkg:%s/", type[p->type]);
  if (!rc && ns)
    rc = wv_buf_printf(out, "%s/", ns);
  if (!rc && p->type == WV_ECO_PYPI) {
    for (const char *s = p->name; *s && !rc; s++) /* pypi purls use the normalised name */
      rc = wv_buf_putc(out, (*s == '_' || *s == '.') ? '-' : (char)tolower((unsigned char)*s));
  } else if (!rc) {
    rc = purl_enc(out, p->name);
  }
  if (!rc)
    rc = wv_buf_putc(out, '@');
  if (!rc)
    rc = purl_enc(out, p->version);
  char sep = '?';
  if (!rc && p->arch && (p->type == WV_ECO_DEB || p->type == WV_ECO_APK)) {
    rc = wv_buf_printf(out, "%carch=", sep);
    if (!rc)
      rc = purl_enc(out, p->arch);
    sep = '&';
  }
  if (!rc && p->arch && p->type == WV_ECO_CONDA) {
    rc = wv_buf_printf(out, "%csubdir=", sep);
    if (!rc)
      rc = purl_enc(out, p->arch);
    sep = '&';
  }
  if (!rc && ns && os_version && *os_version) {
    rc = wv_buf_printf(out, "%cdistro=%s-", sep, ns);
    if (!rc)
      rc = purl_enc(out, os_version);
  }
  return rc;
}

/* "SPDXRef-Package-<16 hex of sha256(type, name, version, path)>". */
static int package_id(const wv_pkg_t *p, char out[48]) {
  wv_sha256_t h;
  uint8_t d[WV_SHA256_LEN];
  char hex[2 * WV_SHA256_LEN + 1];
  int rc = wv_sha256_init(&h);
  const char *parts[] = {wv_ecosystem_name(p->type), p->name, p->version, p->path};
  for (size_t i = 0; i < 4 && !rc; i++)
    rc = wv_sha256_update(&h, parts[i], strlen(parts[i]) + 1);
  if (rc) {
    wv_sha256_abort(&h);
    return rc;
  }
  if ((rc = wv_sha256_final(&h, d)))
    return rc;
  wv_hex_encode(d, 8, hex);
  snprintf(out, 48, "SPDXRef-Package-%.16s", hex);
  return 0;
}

static json_object *str(const char *s) { return json_object_new_string(s ? s : ""); }

static json_object *purl_ref(const char *purl) {
  json_object *refs = json_object_new_array(), *r = json_object_new_object();
  json_object_object_add(r, "referenceCategory", str("PACKAGE-MANAGER"));
  json_object_object_add(r, "referenceType", str("purl"));
  json_object_object_add(r, "referenceLocator", str(purl));
  json_object_array_add(refs, r);
  return refs;
}

static json_object *relation(const char *a, const char *type, const char *b) {
  json_object *r = json_object_new_object();
  json_object_object_add(r, "spdxElementId", str(a));
  json_object_object_add(r, "relationshipType", str(type));
  json_object_object_add(r, "relatedSpdxElement", str(b));
  return r;
}

static json_object *base_package(const char *id, const char *name, const char *version,
                                 const char *purpose) {
  json_object *o = json_object_new_object();
  json_object_object_add(o, "name", str(name));
  json_object_object_add(o, "SPDXID", str(id));
  if (version && *version)
    json_object_object_add(o, "versionInfo", str(version));
  json_object_object_add(o, "downloadLocation", str("NONE"));
  json_object_object_add(o, "filesAnalyzed", json_object_new_boolean(0));
  json_object_object_add(o, "licenseConcluded", str("NOASSERTION"));
  json_object_object_add(o, "licenseDeclared", str("NOASSERTION"));
  json_object_object_add(o, "primaryPackagePurpose", str(purpose));
  return o;
}

static int add_packages(const wv_pkg_t *pkgs, size_t n, const wv_spdx_opts_t *o, json_object *arr,
                        json_object *rels, wv_sha256_t *ns_hash) {
  wv_buf_t b;
  char id[48], prev[48] = "";
  int rc = 0;
  wv_buf_init(&b, 64 * 1024);
  for (size_t i = 0; i < n && !rc; i++) {
    const wv_pkg_t *p = &pkgs[i];
    if ((rc = package_id(p, id)))
      break;
    if (strcmp(id, prev) == 0)
      continue; /* the same package read twice from one file */
    snprintf(prev, sizeof prev, "%s", id);
    json_object *pk = base_package(id, p->name, p->version, "LIBRARY");
    wv_buf_reset(&b);
    if ((rc = wv_pkg_purl(p, o->os_id, o->os_version, &b)))
      break;
    json_object_object_add(pk, "externalRefs", purl_ref(b.data));
    if (p->license)
      json_object_object_add(pk, "licenseComments", str(p->license));
    const char *ld =
        o->layer_digests && (size_t)p->layer < o->nlayers ? o->layer_digests[p->layer] : NULL;
    wv_buf_reset(&b);
    rc = wv_buf_printf(&b, "Found in /%s (layer %d%s%s)", p->path, p->layer, ld ? " " : "",
                       ld ? ld : "");
    json_object_object_add(pk, "sourceInfo", str(b.data));
    json_object_array_add(arr, pk);
    json_object_array_add(rels, relation("SPDXRef-Container", "CONTAINS", id));
    if (!rc)
      rc = wv_sha256_update(ns_hash, id, strlen(id));
  }
  wv_buf_free(&b);
  return rc;
}

int wv_spdx_write(const wv_pkg_t *pkgs, size_t n, const wv_spdx_opts_t *o, wv_buf_t *out) {
  if (!o || !o->name || !*o->name)
    return WV_EINVAL;
  json_object *doc = json_object_new_object(), *arr = json_object_new_array(),
              *rels = json_object_new_array(), *ci = json_object_new_object(),
              *creators = json_object_new_array();
  char when[WV_TIME_ISO_STRLEN], tool[128], ns[512];
  int64_t ns_t = o->created_ns ? o->created_ns : wv_now_ns();
  wv_time_format_iso(ns_t - ns_t % WV_NS_PER_S, when, sizeof when); /* SPDX: whole seconds */
  snprintf(tool, sizeof tool, "Tool: %s", o->tool ? o->tool : "waved");
  json_object_array_add(creators, str(tool));
  json_object_object_add(ci, "creators", creators);
  json_object_object_add(ci, "created", str(when));

  json_object *root = base_package("SPDXRef-Container", o->name, o->digest, "CONTAINER");
  if (o->digest) {
    char purl[600];
    const char *slash = strrchr(o->name, '/');
    snprintf(purl, sizeof purl, "pkg:oci/%.*s@%s", (int)strcspn(slash ? slash + 1 : o->name, ":@"),
             slash ? slash + 1 : o->name, o->digest);
    json_object_object_add(root, "externalRefs", purl_ref(purl));
  }
  json_object_array_add(arr, root);
  json_object_array_add(rels, relation("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Container"));
  if (o->os_id) {
    json_object_array_add(
        arr, base_package("SPDXRef-OperatingSystem", o->os_id, o->os_version, "OPERATING-SYSTEM"));
    json_object_array_add(rels,
                          relation("SPDXRef-Container", "CONTAINS", "SPDXRef-OperatingSystem"));
  }
  wv_sha256_t h;
  uint8_t d[WV_SHA256_LEN];
  char hex[2 * WV_SHA256_LEN + 1];
  int rc = wv_sha256_init(&h);
  if (!rc)
    rc = wv_sha256_update(&h, o->name, strlen(o->name) + 1);
  if (!rc)
    rc = add_packages(pkgs, n, o, arr, rels, &h);
  if (!rc)
    rc = wv_sha256_final(&h, d);
  else
    wv_sha256_abort(&h);
  if (!rc) {
    wv_hex_encode(d, 16, hex);
    snprintf(ns, sizeof ns, "https://waved.invalid/spdx/%s-%s", o->name, hex);
    for (char *p = ns + 27; *p; p++) /* the image name may carry ':' and '@' */
      if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '/' && *p != '_')
        *p = '-';
    json_object_object_add(doc, "spdxVersion", str("SPDX-2.3"));
    json_object_object_add(doc, "dataLicense", str("CC0-1.0"));
    json_object_object_add(doc, "SPDXID", str("SPDXRef-DOCUMENT"));
    json_object_object_add(doc, "name", str(o->name));
    json_object_object_add(doc, "documentNamespace", str(ns));
    json_object_object_add(doc, "creationInfo", ci);
    json_object_object_add(doc, "packages", arr);
    json_object_object_add(doc, "relationships", rels);
    ci = arr = rels = NULL;
    rc = wv_json_to_buf(doc, out);
  }
  json_object_put(ci);
  json_object_put(arr);
  json_object_put(rels);
  json_object_put(doc);
  return rc;
}
