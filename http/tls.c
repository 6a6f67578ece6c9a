/*
 * http/tls.c — TLS server contexts (see tls.h). The policy follows Mozilla's
 * "intermediate" server profile: TLS 1.2 with ECDHE + AEAD suites only, TLS
 * 1.3 with OpenSSL's default suites, no renegotiation, no compression; the
 * client's cipher order wins (every suite offered is strong).
 */
#include "http/tls.h"
#include "core/err.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TLS12_CIPHERS                                                                              \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                     \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                     \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                     \
  "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:P-256:P-384"
#define SESSION_CACHE_SIZE 20480 /* per context; about 10 MiB at most */

/* ALPN: http/1.1 when offered; a client offering only other protocols
 * proceeds without ALPN rather than being refused. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg) {
  (void)ssl;
  (void)arg;
  static const unsigned char h11[] = "\x08http/1.1";
  unsigned char *sel;
  if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

/* The first queued OpenSSL error as text, and the queue emptied. */
static const char *ssl_reason(void) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : "unknown OpenSSL error";
}

/* The file must be a readable regular file: says why not in one line. */
static int check_file(const char *what, const char *path, char *why, size_t whylen) {
  if (!path || !*path) {
    snprintf(why, whylen,
             "server.tls.%s: missing (both server.tls.cert and server.tls.key are "
             "needed)",
             what);
    return WV_EINVAL;
  }
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(why, whylen, "server.tls.%s: cannot read '%s': %s", what, path, strerror(errno));
    return WV_EIO;
  }
  fclose(f);
  return 0;
}

static int ctx_policy(SSL_CTX *ctx) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
  SSL_CTX_set_dh_auto(ctx, 1); /* DHE suites with RFC 7919 groups */
  static const unsigned char sid[] = "waved";
  if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) ||
      !SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) || !SSL_CTX_set1_groups_list(ctx, GROUPS) ||
      !SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1))
    return -1;
  return 0;
}

/* The private key in a PEM file (no passphrase); NULL with the error queued. */
static EVP_PKEY *read_key(const char *path) {
  BIO *b = BIO_new_file(path, "r");
  if (!b)
    return NULL;
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  return k;
}

int wv_tls_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *why, size_t whylen) {
  *out = NULL;
  int rc = check_file("cert", cert, why, whylen);
  rc = rc ? rc : check_file("key", key, why, whylen);
  if (rc)
    return rc;
  ERR_clear_error();
  EVP_PKEY *pkey = NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    snprintf(why, whylen, "cannot create a TLS context: %s", ssl_reason());
    return WV_ENOMEM;
  }
  if (ctx_policy(ctx)) {
    snprintf(why, whylen, "cannot set the TLS policy: %s", ssl_reason());
    rc = WV_EINVAL;
  } else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    snprintf(why, whylen, "server.tls.cert: '%s' is not a usable PEM certificate: %s", cert,
             ssl_reason());
    rc = WV_EINVAL;
  } else if (!(pkey = read_key(key))) {
    snprintf(why, whylen, "server.tls.key: '%s' is not a usable PEM private key: %s", key,
             ssl_reason());
    rc = WV_EINVAL;
  } else if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    snprintf(why, whylen, "server.tls.key: '%s' does not match the certificate '%s'", key, cert);
    ERR_clear_error();
    rc = WV_EINVAL;
  }
  EVP_PKEY_free(pkey);
  if (rc) {
    SSL_CTX_free(ctx);
    return rc;
  }
  *out = ctx;
  return 0;
}

void wv_tls_ctx_describe(SSL_CTX *ctx, char *out, size_t len) {
  X509 *x = SSL_CTX_get0_certificate(ctx);
  if (!x || len == 0) {
    if (len)
      snprintf(out, len, "no certificate");
    return;
  }
  char subj[256];
  X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof subj);
  const ASN1_TIME *na = X509_get0_notAfter(x);
  struct tm tm;
  char until[32] = "?";
  if (na && ASN1_TIME_to_tm(na, &tm))
    strftime(until, sizeof until, "%Y-%m-%d %H:%M:%SZ", &tm);
  bool expired = na && X509_cmp_current_time(na) < 0;
  snprintf(out, len, "%s, valid until %s%s", subj, until, expired ? " (EXPIRED)" : "");
}
