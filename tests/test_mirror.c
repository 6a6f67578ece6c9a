/*
 * Unit tests for the mirror: the copy engine's pure parts (registry/copy.h:
 * what a manifest or index references, upload Locations, Content-Range), the
 * target name and mirror ids of the request flow (build/mirror/request.h), and
 * the error a copy reports when a registry cannot be reached.
 */
#include "build/mirror/request.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/err.h"
#include "http/client.h"
#include "registry/mediatype.h"
#include "registry/copy.h"
#include "tests/runner.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static int children(wv_arena_t *a, const char *body, const char *ct, const char **mt,
                    wv_copy_desc_t **kids, size_t *n, char *err) {
  return wv_copy_children(a, body, strlen(body), ct, mt, kids, n, err, 256);
}

TEST(children_of_an_index) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *mt = NULL;
  wv_copy_desc_t *k = NULL;
  size_t n = 0;
  char err[256];
  const char *idx =
      "{\"schemaVersion\":2,\"mediaType\":\"" WV_MT_OCI_INDEX "\",\"manifests\":["
      "{\"mediaType\":\"" WV_MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":10,"
      "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
      "{\"mediaType\":\"" WV_MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":11}]}";
  CHECK_OK(children(a, idx, NULL, &mt, &k, &n, err));
  CHECK_EQ_STR(mt, WV_MT_OCI_INDEX);
  CHECK_EQ_INT(n, 2);
  CHECK(k[0].is_manifest && k[1].is_manifest);
  CHECK_EQ_STR(k[0].digest, D1);
  CHECK_EQ_INT(k[1].size, 11);
  /* The registry's Content-Type wins; parameters are ignored. */
  const char *list = "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"" D3 "\"}]}";
  CHECK_OK(children(a, list, WV_MT_DOCKER_LIST "; charset=utf-8", &mt, &k, &n, err));
  CHECK_EQ_STR(mt, WV_MT_DOCKER_LIST);
  CHECK_EQ_INT(n, 1);
  CHECK(k[0].media_type == NULL);
  CHECK_EQ_INT(k[0].size, -1);
}

TEST(children_of_a_manifest) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *mt = NULL;
  wv_copy_desc_t *k = NULL;
  size_t n = 0;
  char err[256];
  const char *man =
      "{\"schemaVersion\":2,\"mediaType\":\"" WV_MT_DOCKER_MANIFEST "\","
      "\"config\":{\"mediaType\":\"" WV_MT_DOCKER_CONFIG "\",\"digest\":\"" D1 "\",\"size\":5},"
      "\"layers\":[{\"mediaType\":\"" WV_MT_DOCKER_LAYER_GZIP "\",\"digest\":\"" D2
      "\",\"size\":7},"
      "{\"mediaType\":\"application/"
      "vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"digest\":\"" D3
      "\",\"size\":9,\"urls\":[\"https://example.com/l\"]}]}";
  CHECK_OK(children(a, man, "application/json", &mt, &k, &n, err));
  CHECK_EQ_STR(mt, WV_MT_DOCKER_MANIFEST);
  /* config, then layers; the foreign layer is not a registry blob and is skipped */
  CHECK_EQ_INT(n, 2);
  CHECK(!k[0].is_manifest && !k[1].is_manifest);
  CHECK_EQ_STR(k[0].digest, D1);
  CHECK_EQ_STR(k[1].digest, D2);
  /* No mediaType anywhere: the shape decides (OCI manifest). */
  const char *bare = "{\"config\":{\"digest\":\"" D1 "\"},\"layers\":[]}";
  CHECK_OK(children(a, bare, NULL, &mt, &k, &n, err));
  CHECK_EQ_STR(mt, WV_MT_OCI_MANIFEST);
  CHECK_EQ_INT(n, 1);
  /* An artifact type we do not know is copied like a manifest, its type kept. */
  const char *art = "{\"mediaType\":\"application/x-artifact\",\"config\":{\"digest\":\"" D1
                    "\"},\"layers\":[{\"digest\":\"" D2 "\"}]}";
  CHECK_OK(children(a, art, "application/x-artifact", &mt, &k, &n, err));
  CHECK_EQ_STR(mt, "application/x-artifact");
  CHECK_EQ_INT(n, 2);
}

TEST(children_refused) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *mt = NULL;
  wv_copy_desc_t *k = NULL;
  size_t n = 0;
  char err[256];
  CHECK_EQ_INT(children(a, "not json", NULL, &mt, &k, &n, err), WV_EPARSE);
  CHECK_EQ_INT(children(a, "[1]", NULL, &mt, &k, &n, err), WV_EPARSE);
  CHECK_EQ_INT(children(a, "{\"schemaVersion\":1,\"fsLayers\":[]}", NULL, &mt, &k, &n, err),
               WV_EUNSUPPORTED);
  CHECK_HAS(err, "schema 1");
  CHECK_EQ_INT(children(a, "{\"manifests\":[{\"size\":1}]}", NULL, &mt, &k, &n, err), WV_EPARSE);
  CHECK_HAS(err, "no digest");
  CHECK_EQ_INT(children(a, "{\"manifests\":[{\"digest\":\"sha512:abc\"}]}", NULL, &mt, &k, &n, err),
               WV_EPARSE);
  CHECK_HAS(err, "sha512:abc");
  CHECK_EQ_INT(children(a, "{\"mediaType\":\"" WV_MT_OCI_MANIFEST "\",\"layers\":[]}", NULL, &mt,
                        &k, &n, err),
               WV_EPARSE);
  CHECK_HAS(err, "config");
  /* Past the descriptor cap. */
  wv_buf_t b;
  wv_buf_init(&b, 1 << 20);
  wv_buf_puts(&b, "{\"manifests\":[");
  for (int i = 0; i <= WV_COPY_MAX_CHILDREN; i++)
    wv_buf_printf(&b, "%s{\"digest\":\"" D1 "\"}", i ? "," : "");
  wv_buf_puts(&b, "]}");
  CHECK_EQ_INT(wv_copy_children(a, b.data, b.len, NULL, &mt, &k, &n, err, sizeof err), WV_ETOOBIG);
  wv_buf_free(&b);
}

TEST(upload_locations) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *t = NULL;
  bool same = false;
  const char *base = "http://127.0.0.1:5000";
  /* distribution answers absolute URLs on itself */
  CHECK_OK(wv_copy_location(a, base, "http://127.0.0.1:5000/v2/r/blobs/uploads/u1?_state=x", NULL,
                            &t, &same));
  CHECK(same);
  CHECK_EQ_STR(t, "/v2/r/blobs/uploads/u1?_state=x");
  CHECK_OK(wv_copy_location(a, base, "http://127.0.0.1:5000/v2/r/blobs/uploads/u1?_state=x", D1, &t,
                            &same));
  CHECK_EQ_STR(t, "/v2/r/blobs/uploads/u1?_state=x&digest=sha256%3A"
                  "1111111111111111111111111111111111111111111111111111111111111111");
  /* a path, with or without its slash, and no query yet */
  CHECK_OK(wv_copy_location(a, base, "/v2/r/blobs/uploads/u2", D1, &t, &same));
  CHECK(same);
  CHECK_PREFIX(t, "/v2/r/blobs/uploads/u2?digest=sha256%3A");
  CHECK_OK(wv_copy_location(a, base, "v2/r/blobs/uploads/u3", NULL, &t, &same));
  CHECK_EQ_STR(t, "/v2/r/blobs/uploads/u3");
  /* another origin (an object store): kept absolute, sent without credentials */
  CHECK_OK(wv_copy_location(a, base, "https://uploads.example.com/u4?sig=1", D1, &t, &same));
  CHECK(!same);
  CHECK_PREFIX(t, "https://uploads.example.com/u4?sig=1&digest=sha256%3A");
  /* same host, other port or scheme: another origin */
  CHECK_OK(wv_copy_location(a, base, "http://127.0.0.1:5001/v2/x", NULL, &t, &same));
  CHECK(!same);
  CHECK_OK(wv_copy_location(a, base, "https://127.0.0.1:5000/v2/x", NULL, &t, &same));
  CHECK(!same);
  CHECK_EQ_INT(wv_copy_location(a, base, "", NULL, &t, &same), WV_EINVAL);
  CHECK_EQ_INT(wv_copy_location(a, base, NULL, NULL, &t, &same), WV_EINVAL);
  CHECK_EQ_INT(wv_copy_location(a, base, "ftp://x/y", NULL, &t, &same), WV_EINVAL);
}

TEST(content_range) {
  char h[64];
  CHECK_OK(wv_copy_content_range(0, 1, h, sizeof h));
  CHECK_EQ_STR(h, "Content-Range: 0-0");
  CHECK_OK(wv_copy_content_range(8388608, 8388608, h, sizeof h));
  CHECK_EQ_STR(h, "Content-Range: 8388608-16777215");
  CHECK_OK(wv_copy_content_range(1ULL << 40, 10, h, sizeof h));
  CHECK_EQ_STR(h, "Content-Range: 1099511627776-1099511627785");
  CHECK_EQ_INT(wv_copy_content_range(0, 0, h, sizeof h), WV_ETOOBIG);
  CHECK_EQ_INT(wv_copy_content_range(0, 5, h, 8), WV_ETOOBIG);
}

static const char *target_of(wv_arena_t *a, const char *repo, const char *image) {
  wv_ref_t src, dst;
  const char *msg = NULL;
  if (wv_ref_parse(a, image, &src, NULL) || wv_mirror_target(a, repo, &src, &dst, &msg))
    return msg ? msg : "(error)";
  return wv_ref_full_name(a, &dst);
}

TEST(target_names) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  /* <buildRepository>/<source path>:<source tag>, the source registry dropped (contract §4.3) */
  CHECK_EQ_STR(target_of(a, "registry.lab:5000/mirror", "ubuntu:22.04"),
               "registry.lab:5000/mirror/library/ubuntu:22.04");
  CHECK_EQ_STR(target_of(a, "registry.lab:5000/mirror/", "quay.io/biocontainers/samtools"),
               "registry.lab:5000/mirror/biocontainers/samtools:latest");
  CHECK_EQ_STR(target_of(a, "127.0.0.1:5002", "127.0.0.1:5001/library/multi:latest"),
               "127.0.0.1:5002/library/multi:latest");
  CHECK_EQ_STR(target_of(a, "reg.io/m", "quay.io/a/b@" D1), "reg.io/m/a/b@" D1);
  wv_ref_t src, dst;
  const char *msg = NULL;
  CHECK_OK(wv_ref_parse(a, "quay.io/a/b", &src, NULL));
  CHECK_EQ_INT(wv_mirror_target(a, "Reg.io/UPPER", &src, &dst, &msg), WV_EINVAL);
  CHECK(msg);
  CHECK_HAS(msg, "Reg.io/UPPER/a/b:latest");
}

TEST(mirror_ids) {
  CHECK(wv_mirror_id_valid("mr-0123456789ab"));
  CHECK(wv_mirror_id_valid("mr-0123456789ab_0"));
  CHECK(!wv_mirror_id_valid("mr-0123456789ab_1"));
  CHECK(!wv_mirror_id_valid("mr-0123456789AB"));
  CHECK(!wv_mirror_id_valid("bd-0123456789ab"));
  CHECK(!wv_mirror_id_valid("mr-0123456789a"));
  CHECK(!wv_mirror_id_valid("mr-0123456789abc"));
  CHECK(!wv_mirror_id_valid(""));
  CHECK(!wv_mirror_id_valid(NULL));
}

static void no_log(void *arg, const char *line) {
  (void)arg;
  (void)line;
}

/* A registry nobody listens on: the error names the step and the registry. */
TEST(unreachable_source_named_in_the_error) {
  CHECK_OK(wv_http_global_init());
  wv_registries_t none = {0};
  wv_upstream_t *u = NULL;
  wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  CHECK_OK(wv_upstream_new(&u, &none));
  wv_upstream_set_timeouts(u, 2000, 2000);
  wv_app_t app = {.cfg = &cfg, .upstream = u};
  wv_copy_opts_t o = {.src_registry = "127.0.0.1:1",
                      .src_repo = "library/x",
                      .src_ref = "latest",
                      .dst_registry = "127.0.0.1:2",
                      .dst_repo = "m/library/x",
                      .dst_ref = "latest",
                      .attempts = 1,
                      .connect_timeout_ms = 2000,
                      .request_timeout_ms = 2000,
                      .log = no_log};
  char err[512];
  int rc = wv_copy_image(&app, &o, NULL, err, sizeof err);
  wv_upstream_free(u);
  wv_config_free(&cfg);
  CHECK(rc == WV_EUPSTREAM || rc == WV_ETIMEOUT);
  CHECK_HAS(err, "fetch manifest latest of library/x");
  CHECK_HAS(err, "source registry 127.0.0.1:1");
}

WV_TESTS(T(children_of_an_index), T(children_of_a_manifest), T(children_refused),
         T(upload_locations), T(content_range), T(target_names), T(mirror_ids),
         T(unreachable_source_named_in_the_error))
