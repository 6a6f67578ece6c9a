/*
 * Unit tests for the HTML pieces of the /view/ pages (http/html.c): the
 * escaper, the building blocks, the answer's headers (its own CSP replacing
 * the server default, with the stylesheet's real hash) and wv_req_query.
 * The pages themselves are checked end to end in tests/e2e/view.sh.
 */
#include "core/arena.h"
#include "core/buf.h"
#include "core/digest.h"
#include "core/err.h"
#include "http/html.h"
#include "http/resp.h"
#include "tests/runner.h"

#include <openssl/evp.h>

/* s escaped through wv_html_escn(n), as a static string ("ERR" on failure). */
static const char *escn(const char *s, size_t n) {
  static char out[1024];
  wv_buf_t b;
  wv_buf_init(&b, sizeof out - 1);
  int rc = wv_html_escn(&b, s, n);
  snprintf(out, sizeof out, "%s", rc ? "ERR" : b.data ? b.data : "");
  wv_buf_free(&b);
  return out;
}

static const char *esc(const char *s) { return escn(s, SIZE_MAX); }

TEST(escape_the_five) {
  CHECK_EQ_STR(esc("&<>\"'"), "&amp;&lt;&gt;&quot;&#39;");
  CHECK_EQ_STR(esc("<script>alert('x')</script>"),
               "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
  CHECK_EQ_STR(esc("a=\"1\" onload=x"), "a=&quot;1&quot; onload=x");
  CHECK_EQ_STR(esc("plain text, 100% ok"), "plain text, 100% ok");
  CHECK_EQ_STR(esc("&amp;"), "&amp;amp;"); /* never double-guessed */
  CHECK_EQ_STR(esc(""), "");
  wv_buf_t b;
  wv_buf_init(&b, 16);
  CHECK_OK(wv_html_esc(&b, NULL));
  CHECK_EQ_INT(b.len, 0);
  wv_buf_free(&b);
}

TEST(escape_text_bytes) {
  /* Valid UTF-8 passes; tabs and newlines stay; other controls and bad bytes become U+FFFD. */
  CHECK_EQ_STR(esc("caf\xC3\xA9 \xF0\x9F\x90\xB3"), "caf\xC3\xA9 \xF0\x9F\x90\xB3");
  CHECK_EQ_STR(esc("a\tb\r\nc"), "a\tb\r\nc");
  CHECK_EQ_STR(esc("a\x1b[31mb\x7f"), "a\xEF\xBF\xBD[31mb\xEF\xBF\xBD");
  CHECK_EQ_STR(esc("x\xFFy"), "x\xEF\xBF\xBDy");
  CHECK_EQ_STR(esc("\xC0\xAF<"), "\xEF\xBF\xBD\xEF\xBF\xBD&lt;"); /* overlong '/' */
  /* n bytes only; a character cut by n is not let through half. */
  CHECK_EQ_STR(escn("<ab>", 2), "&lt;a");
  CHECK_EQ_STR(escn("\xC3\xA9z", 1), "\xEF\xBF\xBD");
}

TEST(escape_respects_the_cap) {
  wv_buf_t b;
  wv_buf_init(&b, 8);
  CHECK_EQ_INT(wv_html_esc(&b, "<<<"), WV_ETOOBIG); /* 12 bytes escaped */
  wv_buf_free(&b);
  wv_buf_init(&b, 8);
  CHECK_OK(wv_html_esc(&b, "12345678"));
  CHECK_EQ_INT(wv_html_esc(&b, "9"), WV_ETOOBIG);
  wv_buf_free(&b);
}

TEST(blocks_escape_every_argument) {
  wv_buf_t b;
  wv_buf_init(&b, 1 << 16);
  CHECK_OK(wv_html_begin(&b, "<t>"));
  CHECK_OK(wv_html_table_begin(&b));
  CHECK_OK(wv_html_row(&b, "<l>", "<v>"));
  CHECK_OK(wv_html_row(&b, "Empty", ""));
  CHECK_OK(wv_html_row(&b, "Null", NULL));
  CHECK_OK(wv_html_row_link(&b, "L", "../builds/a\"b", "<x>"));
  CHECK_OK(wv_html_row_link(&b, "NoHref", NULL, "plain"));
  CHECK_OK(wv_html_row_status(&b, "S", "<s>", "ok\""));
  CHECK_OK(wv_html_table_end(&b));
  CHECK_OK(wv_html_h2(&b, "<h>"));
  CHECK_OK(wv_html_note(&b, "<n>"));
  CHECK_OK(wv_html_end(&b));
  const char *p = b.data;
  CHECK_HAS(p, "<title>&lt;t&gt; - waved</title>");
  CHECK_HAS(p, "<h1>&lt;t&gt;</h1>");
  CHECK_HAS(p, "<tr><th>&lt;l&gt;</th><td>&lt;v&gt;</td></tr>");
  CHECK_HAS(p, "<tr><th>Empty</th><td>-</td></tr>");
  CHECK_HAS(p, "<tr><th>Null</th><td>-</td></tr>");
  CHECK_HAS(p, "<td><a href=\"../builds/a&quot;b\">&lt;x&gt;</a></td>");
  CHECK_HAS(p, "<tr><th>NoHref</th><td>plain</td></tr>");
  CHECK_HAS(p, "<span class=\"ok&quot;\">&lt;s&gt;</span>");
  CHECK_HAS(p, "<h2>&lt;h&gt;</h2>");
  CHECK_HAS(p, "<p class=\"note\">&lt;n&gt;</p>");
  CHECK_PREFIX(p, "<!DOCTYPE html>");
  CHECK_HAS(p, "</body></html>\n");
  /* No argument came out raw: the only tags are the page's own. */
  CHECK_LACKS(p, "<t>");
  CHECK_LACKS(p, "<l>");
  CHECK_LACKS(p, "<v>");
  CHECK_LACKS(p, "<x>");
  CHECK_LACKS(p, "<script");
  wv_buf_free(&b);
}

TEST(pre_shows_the_tail) {
  wv_buf_t b;
  wv_buf_init(&b, 4096);
  CHECK_OK(wv_html_pre(&b, "<a>", 3, 100));
  CHECK_EQ_STR(b.data, "<pre>&lt;a&gt;</pre>\n");
  wv_buf_reset(&b);
  /* 10 bytes capped at 4: the note, then the last 4 bytes. */
  CHECK_OK(wv_html_pre(&b, "0123456<89", 10, 4));
  CHECK_HAS(b.data, "Showing the last 4 of 10 bytes.");
  CHECK_HAS(b.data, "<pre>6&lt;89</pre>");
  wv_buf_reset(&b);
  /* A cut inside "é" starts at the next whole character. */
  CHECK_OK(wv_html_pre(&b, "a\xC3\xA9zz", 5, 3));
  CHECK_HAS(b.data, "<pre>zz</pre>");
  wv_buf_free(&b);
}

/* A request with an arena, as the server would hand a handler. */
static wv_req_t *new_req(const char *query) {
  static wv_req_t req;
  memset(&req, 0, sizeof req);
  req.arena = wv_arena_new(0);
  req.query = query;
  return &req;
}

static const char *header_of(const wv_resp_t *r, const char *name) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcmp(r->headers[i].name, name) == 0)
      return r->headers[i].value;
  return NULL;
}

/* The number of lines of head that start with prefix. */
static int count_lines(const char *head, const char *prefix) {
  int n = 0;
  for (const char *p = head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    n += strncmp(p, prefix, strlen(prefix)) == 0;
  return n;
}

TEST(send_sets_type_and_own_policy) {
  wv_req_t *req = new_req(NULL);
  wv_resp_t resp = {.fd = -1};
  wv_buf_t b;
  wv_buf_init(&b, 1 << 16);
  CHECK_OK(wv_html_begin(&b, "T"));
  CHECK_OK(wv_html_end(&b));
  CHECK_OK(wv_html_send(req, &resp, 200, &b));
  CHECK_EQ_INT(resp.status, 200);
  CHECK_EQ_STR(resp.content_type, "text/html; charset=utf-8");
  CHECK_EQ_INT(resp.body_len, b.len);
  CHECK(memcmp(resp.body, b.data, b.len) == 0);
  CHECK_EQ_STR(header_of(&resp, "Cache-Control"), "no-store");
  /* The policy names the hash of exactly the <style> the page carries, and allows no script. */
  const char *css = strstr(b.data, "<style>") + 7, *end = strstr(css, "</style>");
  uint8_t h[WV_SHA256_LEN];
  char b64[64], want[128];
  CHECK_OK(wv_sha256(css, (size_t)(end - css), h));
  EVP_EncodeBlock((unsigned char *)b64, h, WV_SHA256_LEN);
  snprintf(want, sizeof want, "style-src 'sha256-%s'", b64);
  const char *csp = header_of(&resp, "Content-Security-Policy");
  CHECK(csp);
  CHECK_HAS(csp, want);
  CHECK_HAS(csp, "default-src 'none'");
  CHECK_LACKS(csp, "script-src");
  CHECK_LACKS(csp, "unsafe-inline");
  /* The head carries that policy once, instead of the server's default. */
  wv_buf_t head;
  wv_buf_init(&head, 1 << 16);
  CHECK_OK(wv_resp_write_head(&resp, false, true, false, NULL, &head));
  CHECK_EQ_INT(count_lines(head.data, "Content-Security-Policy:"), 1);
  CHECK_HAS(head.data, want);
  /* A response without its own policy still gets the default. */
  wv_resp_t plain = {.fd = -1};
  wv_resp_static(&plain, 200, "application/json", "{}", 2);
  wv_buf_reset(&head);
  CHECK_OK(wv_resp_write_head(&plain, false, true, false, NULL, &head));
  CHECK_EQ_INT(count_lines(head.data, "Content-Security-Policy:"), 1);
  CHECK_HAS(head.data, "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'");
  wv_buf_free(&head);
  wv_buf_free(&b);
  wv_arena_free(req->arena);
}

TEST(error_page) {
  wv_req_t *req = new_req(NULL);
  wv_resp_t resp = {.fd = -1};
  CHECK_OK(wv_html_error(req, &resp, 404, "Unknown id '<script>'"));
  CHECK_EQ_INT(resp.status, 404);
  CHECK_EQ_STR(resp.content_type, "text/html; charset=utf-8");
  char *body = strndup(resp.body, resp.body_len);
  CHECK_HAS(body, "<h1>404 Not Found</h1>");
  CHECK_HAS(body, "<p>Unknown id &#39;&lt;script&gt;&#39;</p>");
  CHECK_LACKS(body, "<script>");
  free(body);
  /* A huge message is cut, not refused. */
  char *big = malloc(100000);
  memset(big, '<', 99999);
  big[99999] = '\0';
  wv_resp_t r2 = {.fd = -1};
  CHECK_OK(wv_html_error(req, &r2, 502, big));
  CHECK_EQ_INT(r2.status, 502);
  CHECK(r2.body_len < 40000);
  free(big);
  wv_arena_free(req->arena);
}

TEST(query_values) {
  wv_req_t *req = new_req("image=reg%3A5000%2Flib%2Fx%3A1.0&platform=linux/arm64&e=&plus=a+b");
  CHECK_EQ_STR(wv_req_query(req, "image"), "reg:5000/lib/x:1.0");
  CHECK_EQ_STR(wv_req_query(req, "platform"), "linux/arm64");
  CHECK_EQ_STR(wv_req_query(req, "e"), "");
  CHECK_EQ_STR(wv_req_query(req, "plus"), "a b");
  CHECK(wv_req_query(req, "imag") == NULL);
  CHECK(wv_req_query(req, "missing") == NULL);
  wv_arena_free(req->arena);
  req = new_req("a=%zz%4");
  CHECK_EQ_STR(wv_req_query(req, "a"), "%zz%4"); /* malformed escapes stay as they are */
  wv_arena_free(req->arena);
  req = new_req(NULL);
  CHECK(wv_req_query(req, "a") == NULL);
  wv_arena_free(req->arena);
}

WV_TESTS(T(escape_the_five), T(escape_text_bytes), T(escape_respects_the_cap),
         T(blocks_escape_every_argument), T(pre_shows_the_tail), T(send_sets_type_and_own_policy),
         T(error_page), T(query_values))
