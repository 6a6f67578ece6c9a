/*
 * scan/spdx.h — the SBOM of an inventory as an SPDX 2.3 JSON document, and
 * package URLs (purl) for its packages.
 *
 * The document describes one container package (SPDXRef-Container), the
 * operating system when os-release was found (SPDXRef-OperatingSystem), and
 * every inventoried package, each CONTAINED by the container, with its purl,
 * declared license (as a comment: free-form license text is not an SPDX
 * expression), and the layer and path it was found in. Output is
 * deterministic for a given inventory, name and creation time: ids are
 * hashes of the package's identity and the namespace a hash of the content.
 */
#ifndef WV_SCAN_SPDX_H
#define WV_SCAN_SPDX_H

#include "core/buf.h"
#include "scan/pkgdb.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name;                 /* the image reference; required */
  const char *digest;               /* image manifest digest, or NULL */
  const char *os_id;                /* from os-release, or NULL */
  const char *os_version;           /* from os-release, or NULL */
  const char *tool;                 /* creator "Tool: <tool>", NULL = "waved" */
  int64_t created_ns;               /* creation instant (ns since epoch); 0 = now */
  const char *const *layer_digests; /* per layer, for comments; may be NULL */
  size_t nlayers;
} wv_spdx_opts_t;

/*
 * Appends the document for pkgs[0..n) to out (compact JSON). Returns 0,
 * WV_EINVAL (no name), WV_ETOOBIG (out's cap) or WV_ENOMEM.
 */
int wv_spdx_write(const wv_pkg_t *pkgs, size_t n, const wv_spdx_opts_t *o, wv_buf_t *out);

/*
 * The purl of p ("pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
 * "pkg:pypi/requests@2.31.0", ...), appended to out. 0, WV_ETOOBIG or WV_ENOMEM.
 */
int wv_pkg_purl(const wv_pkg_t *p, const char *os_id, const char *os_version, wv_buf_t *out);

#endif
