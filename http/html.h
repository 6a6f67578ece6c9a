/*
 * http/html.h — small HTML pages (the /view/... pages of contract §2): one escape
 * function, a handful of building blocks over a capped wv_buf_t, and the
 * answer (text/html; charset=utf-8 with a Content-Security-Policy that
 * allows exactly the page's own inline stylesheet and nothing else — no
 * scripts, no external resources).
 *
 * Every value that did not come from this file goes through wv_html_esc:
 * the building blocks escape their value arguments themselves; labels and
 * titles passed as `label` are static text of the caller and are escaped
 * too, so no argument is ever written raw. Only wv_html_raw writes raw, and
 * only static markup should be passed to it.
 *
 * Errors: every function returns 0, WV_ETOOBIG (the page passed its cap) or
 * WV_ENOMEM, and leaves the buffer usable (the page is then abandoned).
 * Pure (no shared state); any thread.
 */
#ifndef WV_HTML_H
#define WV_HTML_H

#include "core/buf.h"
#include "http/http.h"

#include <stddef.h>

#define WV_HTML_PAGE_MAX ((size_t)16 << 20) /* bytes of one page, escaping included */
#define WV_HTML_CTYPE "text/html; charset=utf-8"

/*
 * Appends s HTML-escaped: & < > " ' become entities, so the text is safe in
 * element content and in quoted attribute values. Bytes that are not valid
 * UTF-8, NUL-free C0 controls other than tab, newline and carriage return,
 * and DEL become U+FFFD. NULL appends nothing. s must be NUL-terminated;
 * at most n bytes of it are used (SIZE_MAX = all).
 */
int wv_html_escn(wv_buf_t *b, const char *s, size_t n);
int wv_html_esc(wv_buf_t *b, const char *s);

/* Appends static markup as it is (never data). */
int wv_html_raw(wv_buf_t *b, const char *markup);

/*
 * The page head: doctype, charset, the stylesheet, <title>title</title>, and
 * the body's opening <header> with an <h1> of title. wv_html_end closes it.
 */
int wv_html_begin(wv_buf_t *b, const char *title);
int wv_html_end(wv_buf_t *b);

/* <h2>text</h2>. */
int wv_html_h2(wv_buf_t *b, const char *text);

/* A definition table: wv_html_table_begin, rows, wv_html_table_end. */
int wv_html_table_begin(wv_buf_t *b);
int wv_html_table_end(wv_buf_t *b);
/* <tr><th>label</th><td>value</td></tr>; value NULL or "" shows "-". */
int wv_html_row(wv_buf_t *b, const char *label, const char *value);
/* Same with the value inside <a href="href">; href NULL = plain row. */
int wv_html_row_link(wv_buf_t *b, const char *label, const char *href, const char *value);
/* A row whose value is a status word styled by its class (ok, failed, running). */
int wv_html_row_status(wv_buf_t *b, const char *label, const char *status, const char *cls);

/*
 * <pre> with text escaped; when text is longer than cap bytes only its last
 * cap bytes are shown, after a note saying how much was left out.
 */
int wv_html_pre(wv_buf_t *b, const char *text, size_t len, size_t cap);

/* <p class="note">text</p>. */
int wv_html_note(wv_buf_t *b, const char *text);

/*
 * Answers the page in b: status, WV_HTML_CTYPE, the page's
 * Content-Security-Policy and Cache-Control: no-store. The body is copied
 * into the request arena; b stays the caller's. 0 or WV_ENOMEM.
 */
int wv_html_send(wv_req_t *req, wv_resp_t *resp, int status, const wv_buf_t *b);

/*
 * A whole error page: title from the status ("404 Not Found") and message
 * (escaped). 0 or WV_ENOMEM (the server then answers 500).
 */
int wv_html_error(wv_req_t *req, wv_resp_t *resp, int status, const char *message);

#endif
