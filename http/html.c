/*
 * http/html.c — escaping and the building blocks of the /view/... pages (see
 * html.h).
 *
 * The stylesheet is inline (no external resources). The server's default
 * Content-Security-Policy forbids every source, inline styles included, so
 * a page sends its own policy naming the stylesheet's SHA-256: the browser
 * applies exactly this <style> and still runs no script at all.
 */
#include "http/html.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/utf.h"
#include "http/resp.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

/* The one stylesheet; its hash goes into the page's CSP, so keep it byte-exact in <style>. */
static const char css[] =
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2230;background:#f6f7f9}"
    "header{background:#16202e;color:#fff;padding:14px 24px}"
    "header h1{margin:0;font-size:20px;word-break:break-all}"
    "main{padding:8px 24px 32px;max-width:1100px}"
    "h2{font-size:16px;margin:24px 0 8px}"
    "table{border-collapse:collapse;background:#fff;width:100%}"
    "th,td{border:1px solid #d9dde4;padding:5px 9px;text-align:left;vertical-align:top;"
    "word-break:break-all}"
    "table.kv th{width:190px;background:#eef0f4;font-weight:600;word-break:normal}"
    "thead th{background:#eef0f4}"
    "pre{background:#0f1620;color:#e6e6e6;padding:12px;overflow:auto;max-height:640px;"
    "white-space:pre-wrap;word-break:break-all;font-size:13px}"
    ".ok{color:#107a32;font-weight:600}.failed{color:#b3261e;font-weight:600}"
    ".running{color:#9a6700;font-weight:600}.note{color:#555}"
    ".CRITICAL{color:#8b0000;font-weight:600}.HIGH{color:#b3261e;font-weight:600}"
    ".MEDIUM{color:#9a6700}.LOW{color:#33691e}"
    "footer{color:#777;font-size:12px;padding:0 24px 24px}";

#define ERROR_MSG_MAX 4096 /* bytes of a message an error page shows */

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* The entity for c, or NULL when c is written as it is. */
static const char *entity(char c) {
  switch (c) {
  case '&':
    return "&amp;";
  case '<':
    return "&lt;";
  case '>':
    return "&gt;";
  case '"':
    return "&quot;";
  case '\'':
    return "&#39;";
  default:
    return NULL;
  }
}

int wv_html_escn(wv_buf_t *b, const char *s, size_t n) {
  if (!s)
    return 0;
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0, run = 0; /* p[i-run..i) is plain text not yet appended */
  int rc = 0;
  while (!rc && i < n && p[i]) {
    uint8_t c = p[i];
    const char *e = c < 0x80 ? entity((char)c) : NULL;
    uint32_t cp;
    size_t len = 1;
    bool bad = c < 0x80 ? ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
                        : (len = wv_utf8_decode(p + i, &cp)) == 0 || i + len > n;
    if (!e && !bad) {
      i += len;
      run += len;
      continue;
    }
    rc = wv_buf_append(b, p + i - run, run);
    rc = rc ? rc : wv_buf_puts(b, e ? e : replacement);
    i += bad ? 1 : len;
    run = 0;
  }
  return rc ? rc : wv_buf_append(b, p + i - run, run);
}

int wv_html_esc(wv_buf_t *b, const char *s) { return wv_html_escn(b, s, SIZE_MAX); }

int wv_html_raw(wv_buf_t *b, const char *markup) { return wv_buf_puts(b, markup); }

/* raw + escaped + raw: the shape of almost every element here. */
static int wrap(wv_buf_t *b, const char *open, const char *text, const char *close) {
  int rc = wv_buf_puts(b, open);
  rc = rc ? rc : wv_html_esc(b, text);
  return rc ? rc : wv_buf_puts(b, close);
}

int wv_html_begin(wv_buf_t *b, const char *title) {
  int rc = wv_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
                          "<meta name=\"robots\" content=\"noindex\"><style>");
  rc = rc ? rc : wv_buf_append(b, css, sizeof css - 1);
  rc = rc ? rc : wrap(b, "</style><title>", title, " - waved</title></head>\n<body><header><h1>");
  rc = rc ? rc : wrap(b, "", title, "</h1></header>\n<main>\n");
  return rc;
}

int wv_html_end(wv_buf_t *b) {
  return wv_buf_puts(b, "</main>\n<footer>waved &mdash; Wave-compatible container service"
                        "</footer>\n</body></html>\n");
}

int wv_html_h2(wv_buf_t *b, const char *text) { return wrap(b, "<h2>", text, "</h2>\n"); }

int wv_html_table_begin(wv_buf_t *b) { return wv_buf_puts(b, "<table class=\"kv\">\n"); }

int wv_html_table_end(wv_buf_t *b) { return wv_buf_puts(b, "</table>\n"); }

int wv_html_row(wv_buf_t *b, const char *label, const char *value) {
  int rc = wrap(b, "<tr><th>", label, "</th>");
  return rc ? rc : wrap(b, "<td>", value && value[0] ? value : "-", "</td></tr>\n");
}

int wv_html_row_link(wv_buf_t *b, const char *label, const char *href, const char *value) {
  if (!href || !href[0] || !value || !value[0])
    return wv_html_row(b, label, value);
  int rc = wrap(b, "<tr><th>", label, "</th>");
  rc = rc ? rc : wrap(b, "<td><a href=\"", href, "\">");
  return rc ? rc : wrap(b, "", value, "</a></td></tr>\n");
}

int wv_html_row_status(wv_buf_t *b, const char *label, const char *status, const char *cls) {
  int rc = wrap(b, "<tr><th>", label, "</th>");
  rc = rc ? rc : wrap(b, "<td><span class=\"", cls, "\">");
  return rc ? rc : wrap(b, "", status, "</span></td></tr>\n");
}

int wv_html_note(wv_buf_t *b, const char *text) {
  return wrap(b, "<p class=\"note\">", text, "</p>\n");
}

int wv_html_pre(wv_buf_t *b, const char *text, size_t len, size_t cap) {
  int rc = 0;
  if (len > cap) {
    rc = wv_buf_printf(b, "<p class=\"note\">Showing the last %zu of %zu bytes.</p>\n", cap, len);
    text += len - cap;
    len = cap;
    while (len && ((uint8_t)*text & 0xC0) == 0x80) { /* start on a whole character */
      text++;
      len--;
    }
  }
  rc = rc ? rc : wv_buf_puts(b, "<pre>");
  rc = rc ? rc : wv_html_escn(b, text, len);
  return rc ? rc : wv_buf_puts(b, "</pre>\n");
}

/* "default-src 'none'; style-src 'sha256-<base64>'; ..." for the stylesheet, into the arena. */
static const char *page_csp(wv_arena_t *a) {
  uint8_t h[WV_SHA256_LEN];
  char b64[4 * ((WV_SHA256_LEN + 2) / 3) + 1];
  if (wv_sha256(css, sizeof css - 1, h))
    return NULL;
  EVP_EncodeBlock((unsigned char *)b64, h, WV_SHA256_LEN);
  return wv_arena_sprintf(a,
                          "default-src 'none'; style-src 'sha256-%s'; base-uri 'none'; "
                          "form-action 'self'; frame-ancestors 'none'",
                          b64);
}

int wv_html_send(wv_req_t *req, wv_resp_t *resp, int status, const wv_buf_t *b) {
  const char *csp = page_csp(req->arena);
  int rc = csp ? wv_resp_bytes(req, resp, status, WV_HTML_CTYPE, b->data ? b->data : "", b->len)
               : WV_ENOMEM;
  rc = rc ? rc : wv_resp_header(resp, "Content-Security-Policy", csp);
  return rc ? rc : wv_resp_header(resp, "Cache-Control", "no-store");
}

int wv_html_error(wv_req_t *req, wv_resp_t *resp, int status, const char *message) {
  wv_buf_t b;
  wv_buf_init(&b, 64 * 1024);
  const char *title = wv_arena_sprintf(req->arena, "%d %s", status, wv_resp_reason(status));
  int rc = title ? wv_html_begin(&b, title) : WV_ENOMEM;
  rc = rc ? rc : wv_buf_puts(&b, "<p>");
  rc = rc ? rc
          : wv_html_escn(&b, message && message[0] ? message : wv_resp_reason(status),
                         ERROR_MSG_MAX);
  rc = rc ? rc : wv_buf_puts(&b, "</p>\n");
  rc = rc ? rc : wv_html_end(&b);
  rc = rc ? rc : wv_html_send(req, resp, status, &b);
  wv_buf_free(&b);
  return rc;
}
