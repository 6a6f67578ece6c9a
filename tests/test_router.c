/* Unit tests for http/router: patterns, params, wildcard, 404 vs 405. */
#include "core/err.h"
#include "http/router.h"
#include "tests/runner.h"

static int h(wv_req_t *req, wv_resp_t *resp) {
  (void)req;
  (void)resp;
  return 0;
}

static const wv_route_t routes[] = {
    {WV_M_GET, "/service-info", h, WV_ROUTE_INLINE, 0},
    {WV_M_POST, "/v1alpha2/container", h, 0, 1024},
    {WV_M_GET, "/v1alpha2/container/{requestId}", h, 0, 0},
    {WV_M_GET, "/v1alpha2/container/{requestId}/status", h, 0, 0},
    {WV_M_GET | WV_M_DELETE, "/container-token/{token}", h, 0, 0},
    {WV_M_GET, "/v2", h, WV_ROUTE_INLINE, 0},
    {WV_M_GET, "/v2/", h, WV_ROUTE_INLINE, 0},
    {WV_M_GET, "/v2/**", h, 0, 0},
};

static wv_router_t *mk(void) {
  wv_router_t *r = NULL;
  if (wv_router_new(&r) || wv_router_add(r, routes, sizeof routes / sizeof routes[0]))
    return NULL;
  return r;
}

static int m(wv_router_t *r, unsigned meth, const char *path, wv_match_t *mt) {
  return wv_router_match(r, meth, path, strlen(path), mt);
}

TEST(literal_and_head) {
  wv_router_t *r = mk();
  CHECK(r);
  wv_match_t mt;
  CHECK_OK(m(r, WV_M_GET, "/service-info", &mt));
  CHECK(mt.route == &routes[0]);
  CHECK_OK(m(r, WV_M_HEAD, "/service-info", &mt)); /* GET answers HEAD */
  CHECK(mt.route == &routes[0]);
  CHECK_EQ_INT(m(r, WV_M_GET, "/service-info/", &mt), WV_ENOTFOUND);
  CHECK_EQ_INT(mt.allow, 0);
  CHECK_EQ_INT(m(r, WV_M_GET, "/service-inf", &mt), WV_ENOTFOUND);
  wv_router_free(r);
}

TEST(params) {
  wv_router_t *r = mk();
  wv_match_t mt;
  CHECK_OK(m(r, WV_M_GET, "/v1alpha2/container/abc123/status", &mt));
  CHECK(mt.route == &routes[3]);
  CHECK_EQ_INT(mt.nparams, 1);
  CHECK_EQ_INT(mt.param_name_lens[0], 9);
  CHECK(memcmp(mt.param_names[0], "requestId", 9) == 0);
  CHECK_EQ_INT(mt.param_val_lens[0], 6);
  CHECK(memcmp(mt.param_vals[0], "abc123", 6) == 0);
  CHECK_OK(m(r, WV_M_GET, "/v1alpha2/container/abc123", &mt));
  CHECK(mt.route == &routes[2]);
  /* An empty segment is not a parameter. */
  CHECK_EQ_INT(m(r, WV_M_GET, "/v1alpha2/container//status", &mt), WV_ENOTFOUND);
  CHECK_EQ_INT(m(r, WV_M_GET, "/v1alpha2/container/", &mt), WV_ENOTFOUND);
  wv_router_free(r);
}

TEST(not_found_vs_method) {
  wv_router_t *r = mk();
  wv_match_t mt;
  CHECK_EQ_INT(m(r, WV_M_GET, "/v1alpha2/container", &mt), WV_ENOTFOUND);
  CHECK_EQ_INT(mt.allow, WV_M_POST);
  CHECK_EQ_INT(m(r, WV_M_POST, "/container-token/x", &mt), WV_ENOTFOUND);
  CHECK_EQ_INT(mt.allow, WV_M_GET | WV_M_HEAD | WV_M_DELETE);
  char allow[64];
  wv_router_allow_str(mt.allow, allow, sizeof allow);
  CHECK_EQ_STR(allow, "GET, HEAD, DELETE");
  CHECK_OK(m(r, WV_M_DELETE, "/container-token/x", &mt));
  CHECK_EQ_INT(m(r, WV_M_GET, "/nothing", &mt), WV_ENOTFOUND);
  CHECK_EQ_INT(mt.allow, 0);
  wv_router_free(r);
}

TEST(wildcard) {
  wv_router_t *r = mk();
  wv_match_t mt;
  CHECK_OK(m(r, WV_M_GET, "/v2", &mt));
  CHECK(mt.route == &routes[5]);
  CHECK(mt.wild == NULL);
  CHECK_OK(m(r, WV_M_GET, "/v2/", &mt));
  CHECK(mt.route == &routes[6]);
  const char *p = "/v2/wt/abc/library/ubuntu/manifests/latest";
  CHECK_OK(m(r, WV_M_HEAD, p, &mt));
  CHECK(mt.route == &routes[7]);
  CHECK_EQ_INT(mt.wild_len, strlen(p) - 4);
  CHECK(memcmp(mt.wild, p + 4, mt.wild_len) == 0);
  CHECK_EQ_INT(m(r, WV_M_POST, p, &mt), WV_ENOTFOUND);
  CHECK_EQ_INT(mt.allow, WV_M_GET | WV_M_HEAD);
  CHECK_EQ_INT(m(r, WV_M_GET, "/v2x", &mt), WV_ENOTFOUND);
  wv_router_free(r);
}

TEST(bad_patterns) {
  static const wv_route_t bad1[] = {{WV_M_GET, "/a/**/b", h, 0, 0}};
  static const wv_route_t bad2[] = {{WV_M_GET, "a", h, 0, 0}};
  static const wv_route_t bad3[] = {{WV_M_GET, "/a/{}", h, 0, 0}};
  static const wv_route_t bad4[] = {{WV_M_GET, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", h, 0, 0}};
  wv_router_t *r;
  CHECK_OK(wv_router_new(&r));
  CHECK_EQ_INT(wv_router_add(r, bad1, 1), WV_EINVAL);
  CHECK_EQ_INT(wv_router_add(r, bad2, 1), WV_EINVAL);
  CHECK_EQ_INT(wv_router_add(r, bad3, 1), WV_EINVAL);
  CHECK_EQ_INT(wv_router_add(r, bad4, 1), WV_EINVAL);
  wv_router_free(r);
}

TEST(method_names) {
  CHECK_EQ_INT(wv_router_method("GET"), WV_M_GET);
  CHECK_EQ_INT(wv_router_method("PROPFIND"), WV_M_OTHER);
}

WV_TESTS(T(literal_and_head), T(params), T(not_found_vs_method), T(wildcard), T(bad_patterns),
         T(method_names))
