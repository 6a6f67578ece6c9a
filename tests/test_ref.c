/* Unit tests for registry/ref: image references (contract §4.3) and /v2 routes (contract §5.2). */
#include "core/arena.h"
#include "core/err.h"
#include "registry/ref.h"
#include "tests/runner.h"

#define DIGEST "sha256:6d9e6b8bc4c6c1b5d6f2ce2b6e6a4f6c1a4a8b1a0b3b1e6a2d6f9c5e7b1a2c3d"

/* Parses s and checks the normalised full name and the path. */
static int parse_is(wv_arena_t *a, const char *s, const char *full, const char *path) {
  wv_ref_t r;
  const char *msg = NULL;
  int rc = wv_ref_parse(a, s, &r, &msg);
  if (rc) {
    fprintf(stderr, "  %s: rc=%d msg=%s\n", s, rc, msg ? msg : "(none)");
    return 0;
  }
  const char *got = wv_ref_full_name(a, &r);
  if (strcmp(got, full) != 0 || strcmp(r.path, path) != 0) {
    fprintf(stderr, "  %s: got %s path %s\n", s, got, r.path);
    return 0;
  }
  return 1;
}

TEST(ref_spec_vectors) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK(parse_is(a, "ubuntu", "docker.io/library/ubuntu:latest", "library/ubuntu"));
  CHECK(parse_is(a, "ubuntu:22.04", "docker.io/library/ubuntu:22.04", "library/ubuntu"));
  CHECK(parse_is(a, "library/ubuntu", "docker.io/library/ubuntu:latest", "library/ubuntu"));
  CHECK(parse_is(a, "docker.io/ubuntu", "docker.io/library/ubuntu:latest", "library/ubuntu"));
  CHECK(parse_is(a, "index.docker.io/ubuntu", "docker.io/library/ubuntu:latest", "library/ubuntu"));
  CHECK(parse_is(a, "quay.io/org/img@" DIGEST, "quay.io/org/img@" DIGEST, "org/img"));
  CHECK(parse_is(a, "localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "a/b"));
  CHECK(parse_is(a, "localhost/foo/bar", "localhost/foo/bar:latest", "foo/bar"));
  CHECK(parse_is(a, "127.0.0.1:5001/library/busybox", "127.0.0.1:5001/library/busybox:latest",
                 "library/busybox"));
  /* A single-component name is never a registry, whatever it contains. */
  CHECK(parse_is(a, "localhost", "docker.io/library/localhost:latest", "library/localhost"));
  /* Only Docker Hub gets library/. */
  CHECK(parse_is(a, "quay.io/busybox", "quay.io/busybox:latest", "busybox"));
  CHECK(parse_is(a, "wave.seqera.io/wt/22d3c6c1cb06/wave/build:49b26ca0c3a07b1b",
                 "wave.seqera.io/wt/22d3c6c1cb06/wave/build:49b26ca0c3a07b1b",
                 "wt/22d3c6c1cb06/wave/build"));
  /* name:tag@digest: the digest wins, as in Docker. */
  CHECK(parse_is(a, "ubuntu:22.04@" DIGEST, "docker.io/library/ubuntu@" DIGEST, "library/ubuntu"));
  CHECK(parse_is(a, "oras://ghcr.io/org/img:1.0", "oras://ghcr.io/org/img:1.0", "org/img"));
  CHECK(parse_is(a, "my-registry.example.com:443/a__b/c.d/e-f--g:V1_0.x-y",
                 "my-registry.example.com:443/a__b/c.d/e-f--g:V1_0.x-y", "a__b/c.d/e-f--g"));
}

TEST(ref_fields_and_hosts) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_ref_t r;
  CHECK_OK(wv_ref_parse(a, "ubuntu", &r, NULL));
  CHECK_EQ_STR(r.registry, "docker.io");
  CHECK_EQ_STR(r.reference, "latest");
  CHECK(!r.is_digest && !r.scheme);
  CHECK_EQ_STR(wv_ref_repository(a, &r), "docker.io/library/ubuntu");
  CHECK_EQ_STR(wv_ref_path_and_ref(a, &r), "library/ubuntu:latest");
  CHECK_EQ_STR(wv_ref_api_host(r.registry), "registry-1.docker.io");
  CHECK_EQ_STR(wv_ref_api_host(r.registry), "registry-1.docker.io");
  CHECK_OK(wv_ref_parse(a, "quay.io/org/img@" DIGEST, &r, NULL));
  CHECK(r.is_digest);
  CHECK_EQ_STR(r.reference, DIGEST);
  CHECK_EQ_STR(wv_ref_path_and_ref(a, &r), "org/img@" DIGEST);
  CHECK_EQ_STR(wv_ref_api_host("quay.io"), "quay.io");
  CHECK(wv_ref_is_loopback("localhost:5000"));
  CHECK(wv_ref_is_loopback("[::1]:5000"));
  CHECK(!wv_ref_is_loopback("127.example.com"));
  CHECK(!wv_ref_is_loopback("127.0.0.1.nip.io"));
  CHECK(wv_ref_is_loopback("127.0.0.1:5001"));
  CHECK(!wv_ref_is_loopback("localhost.example.com"));
}

/* Checks that s is rejected with exactly the message expected. */
static int rejects(wv_arena_t *a, const char *s, const char *want) {
  wv_ref_t r;
  const char *msg = NULL;
  int rc = wv_ref_parse(a, s, &r, &msg);
  if (rc != WV_EINVAL || !msg || strcmp(msg, want) != 0) {
    fprintf(stderr, "  %s: rc=%d msg=%s\n", s, rc, msg ? msg : "(none)");
    return 0;
  }
  return 1;
}

#define IMG(v) "Invalid container image name \xE2\x80\x94 offending value: '" v "'"
#define REPO(v) "Invalid container repository name \xE2\x80\x94 offending value: '" v "'"

TEST(ref_invalid) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK(rejects(a, "ubuntu latest", IMG("ubuntu latest")));
  CHECK(rejects(a, " ubuntu", IMG(" ubuntu")));
  CHECK(rejects(a, "", IMG("")));
  CHECK(rejects(a, "http://quay.io/foo:latest", REPO("http://quay.io/foo:latest")));
  CHECK(rejects(a, "docker://ubuntu", REPO("docker://ubuntu")));
  CHECK(rejects(a, "http:docker.io/foo:latest", IMG("http:docker.io/foo:latest")));
  CHECK(rejects(a, "docker:quay.io/foo:latest", IMG("docker:quay.io/foo:latest")));
  CHECK(rejects(a, "Ubuntu", IMG("Ubuntu")));
  CHECK(rejects(a, "quay.io/Org/img", IMG("quay.io/Org/img")));
  CHECK(rejects(a, "quay.io:abc/org/img", IMG("quay.io:abc/org/img")));
  CHECK(rejects(a, "quay.io:70000/org/img", IMG("quay.io:70000/org/img")));
  CHECK(rejects(a, "ubuntu:", IMG("ubuntu:")));
  CHECK(rejects(a, "ubuntu@", IMG("ubuntu@")));
  CHECK(rejects(a, "ubuntu@sha256:abc", IMG("ubuntu@sha256:abc")));
  CHECK(rejects(a, "ubuntu:-bad", IMG("ubuntu:-bad")));
  CHECK(rejects(a, "a//b", IMG("a//b")));
  CHECK(rejects(a, "a/b/", IMG("a/b/")));
  CHECK(rejects(a, "quay.io/", IMG("quay.io/")));
  CHECK(rejects(a, "foo-/bar", IMG("foo-/bar")));
  CHECK(rejects(a, "foo/bar..baz", IMG("foo/bar..baz")));
  CHECK(rejects(a, "-foo.io/bar", IMG("-foo.io/bar")));
  /* A 129-character tag. */
  char tag[160] = "ubuntu:";
  memset(tag + 7, 'x', 129);
  tag[7 + 129] = '\0';
  wv_ref_t r;
  CHECK_EQ_INT(wv_ref_parse(a, tag, &r, NULL), WV_EINVAL);
  tag[7 + 128] = '\0';
  CHECK_OK(wv_ref_parse(a, tag, &r, NULL));
}

TEST(ref_check_container_name) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *msg = NULL;
  wv_ref_t r;
  CHECK_OK(wv_ref_check_container_name(a, "quay.io:80/foo:latest", &r, &msg));
  CHECK_EQ_STR(r.registry, "quay.io:80");
  /* oras:// parses, but a containerImage must carry no scheme at all. */
  CHECK_EQ_INT(wv_ref_check_container_name(a, "oras://ghcr.io/a/b:1", NULL, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, REPO("oras://ghcr.io/a/b:1"));
  CHECK_EQ_INT(wv_ref_check_container_name(a, "docker:quay.io/foo:latest", NULL, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, IMG("docker:quay.io/foo:latest"));
}

TEST(ref_grammar_helpers) {
  CHECK(wv_ref_is_tag("latest"));
  CHECK(wv_ref_is_tag("_x.Y-1"));
  CHECK(!wv_ref_is_tag(".x"));
  CHECK(!wv_ref_is_tag(""));
  CHECK(wv_ref_is_digest(DIGEST));
  CHECK(
      !wv_ref_is_digest("sha256:6D9E6B8BC4C6C1B5D6F2CE2B6E6A4F6C1A4A8B1A0B3B1E6A2D6F9C5E7B1A2C3D"));
  CHECK(!wv_ref_is_digest("sha512:abc"));
  CHECK(wv_ref_is_registry("localhost:5000"));
  CHECK(wv_ref_is_registry("Registry.Example.COM"));
  CHECK(!wv_ref_is_registry("a_b.com"));
  CHECK(!wv_ref_is_registry("host:"));
}

/* Parses a route and returns it, or fails the calling test. */
#define ROUTE_OK(path)                                                                             \
  do {                                                                                             \
    const char *m_ = NULL;                                                                         \
    int rc_ = wv_route_parse(a, path, &rt, &m_);                                                   \
    if (rc_) {                                                                                     \
      FAIL_AT("route %s: rc=%d %s", path, rc_, m_ ? m_ : "");                                      \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

TEST(route_token_form) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_v2_route_t rt;
  ROUTE_OK("/v2/wt/abc123/library/ubuntu/manifests/latest");
  CHECK_EQ_STR(rt.token, "abc123");
  CHECK_EQ_STR(rt.name, "library/ubuntu");
  CHECK_EQ_STR(rt.image, "library/ubuntu");
  CHECK(rt.registry == NULL);
  CHECK_EQ_INT(rt.kind, WV_V2_MANIFESTS);
  CHECK_EQ_STR(rt.reference, "latest");
  CHECK(!rt.is_digest);

  ROUTE_OK("/v2/wt/22d3c6c1cb06/wave/build/blobs/" DIGEST);
  CHECK_EQ_STR(rt.token, "22d3c6c1cb06");
  CHECK_EQ_STR(rt.image, "wave/build");
  CHECK_EQ_INT(rt.kind, WV_V2_BLOBS);
  CHECK(rt.is_digest);
  CHECK_EQ_STR(rt.reference, DIGEST);

  ROUTE_OK("/v2/wt/abc123/library/ubuntu/manifests/" DIGEST);
  CHECK(rt.is_digest);
  ROUTE_OK("/v2/wt/abc123/library/ubuntu/tags/list");
  CHECK_EQ_INT(rt.kind, WV_V2_TAGS);
  CHECK_EQ_STR(rt.reference, "list");
  /* Deep paths; mixed case after the token, as Wave's regex lets through. */
  ROUTE_OK("/v2/wt/abc123/org/Team/Img_1/manifests/v1.0");
  CHECK_EQ_STR(rt.image, "org/Team/Img_1");
  ROUTE_OK("/v2/wt/abc123/Org/img/manifests/v1.0");
  CHECK_EQ_STR(rt.image, "Org/img");
  /* A name component may be called like a kind. */
  ROUTE_OK("/v2/wt/abc123/acme/manifests/manifests/latest");
  CHECK_EQ_STR(rt.image, "acme/manifests");
}

TEST(route_plain_form) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_v2_route_t rt;
  ROUTE_OK("/v2/quay.io/biocontainers/samtools/manifests/1.17");
  CHECK(rt.token == NULL);
  CHECK_EQ_STR(rt.registry, "quay.io");
  CHECK_EQ_STR(rt.image, "biocontainers/samtools");
  CHECK_EQ_STR(rt.name, "quay.io/biocontainers/samtools");
  ROUTE_OK("/v2/library/ubuntu/manifests/latest");
  CHECK_EQ_STR(rt.registry, "docker.io");
  CHECK_EQ_STR(rt.image, "library/ubuntu");
  ROUTE_OK("/v2/ubuntu/blobs/" DIGEST);
  CHECK_EQ_STR(rt.image, "ubuntu");
  /* One-character components are valid (distribution's grammar). */
  ROUTE_OK("/v2/r/x/manifests/latest");
  CHECK_EQ_STR(rt.image, "r/x");
  ROUTE_OK("/v2/wt/t/a/b/manifests/1");
  CHECK_EQ_STR(rt.token, "t");
  CHECK_EQ_STR(rt.image, "a/b");
}

static int route_rejects(wv_arena_t *a, const char *path) {
  wv_v2_route_t rt;
  const char *msg = NULL;
  int rc = wv_route_parse(a, path, &rt, &msg);
  char want[512];
  snprintf(want, sizeof want, "Invalid request path '%s'", path);
  if (rc != WV_ENOTFOUND || !msg || strcmp(msg, want) != 0) {
    fprintf(stderr, "  %s: rc=%d msg=%s\n", path, rc, msg ? msg : "(none)");
    return 0;
  }
  return 1;
}

TEST(route_invalid) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK(route_rejects(a, "/v2/"));
  CHECK(route_rejects(a, "/v2/library/ubuntu"));
  CHECK(route_rejects(a, "/v2/library/ubuntu/manifests/"));
  CHECK(route_rejects(a, "/v2/library/ubuntu/foo/latest"));
  CHECK(route_rejects(a, "/v3/library/ubuntu/manifests/latest"));
  CHECK(route_rejects(a, "/v2/Library/ubuntu/manifests/latest")); /* comp1 is lower case */
  CHECK(route_rejects(a, "/v2/library/Ubuntu/manifests/latest")); /* so is comp */
  CHECK(route_rejects(a, "/v2/-a/ubuntu/manifests/latest"));      /* starts alphanumeric */
  CHECK(route_rejects(a, "/v2/wt/t/r/x/manifests/"));             /* no reference */
  CHECK(route_rejects(a, "/v2/wt/abc123/manifests/latest"));      /* token, no image */
  CHECK(route_rejects(a, "/v2/wt/Abc123/library/ubuntu/manifests/latest"));
  CHECK(route_rejects(a, "/v2/wt/abc123/library/ubuntu/blobs/latest")); /* blobs by digest */
  CHECK(route_rejects(a, "/v2/wt/abc123/library/ubuntu/manifests/sha256:abc"));
  CHECK(route_rejects(a, "/v2/wt/abc123/library/ubuntu/manifests/a/b"));
  CHECK(route_rejects(a, "/v2/wt/abc123/library//ubuntu/manifests/latest"));
  CHECK(route_rejects(a, "/v2/wt/abc123/../ubuntu/manifests/latest"));
  CHECK(route_rejects(a, "/v2/library/ubuntu/manifests/latest?x=1"));
  CHECK(route_rejects(a, ""));
  CHECK_EQ_STR(wv_route_kind_name(WV_V2_BLOBS), "blobs");
}

WV_TESTS(T(ref_spec_vectors), T(ref_fields_and_hosts), T(ref_invalid), T(ref_check_container_name),
         T(ref_grammar_helpers), T(route_token_form), T(route_plain_form), T(route_invalid))
