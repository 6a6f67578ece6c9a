/*
 * http/tls.h — TLS server contexts: loading a certificate and key into an
 * OpenSSL 3 SSL_CTX with waved's protocol policy (docs/http-server.md, "TLS").
 *
 * A context is refcounted by OpenSSL: every SSL made from it holds a
 * reference, so a context replaced on reload lives until its last connection
 * closes. The caller owns what wv_tls_ctx_new returns (SSL_CTX_free).
 * Thread rules: a context is used from every IO loop at once (OpenSSL allows
 * SSL_new and its session cache from several threads).
 */
#ifndef WV_TLS_H
#define WV_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/*
 * A server context for cert (PEM, leaf first then its chain) and key (PEM):
 * TLS 1.2 and 1.3 only, Mozilla's "intermediate" ciphers, ALPN http/1.1,
 * session tickets and a server-side session cache. Returns 0 and *out, or
 * WV_EINVAL / WV_EIO / WV_ENOMEM with one line in why ("cannot read ...",
 * "key does not match the certificate", ...). The files are read now.
 */
int wv_tls_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *why, size_t whylen);

/* One line describing the context's certificate: subject and expiry. */
void wv_tls_ctx_describe(SSL_CTX *ctx, char *out, size_t len);

#endif
