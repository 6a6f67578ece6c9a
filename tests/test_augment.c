/*
 * Unit tests for registry/augment: the augmentation rewrite of contract §5.4 on
 * real-looking Docker and OCI documents. Every output digest is recomputed
 * here from the returned bytes.
 */
#include <json-c/json.h>
#include <openssl/evp.h>

#include "core/arena.h"
#include "core/err.h"
#include "registry/augment.h"
#include "registry/mediatype.h"
#include "tests/runner.h"

#define H64(c)                                                                                     \
  c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
      c c c c c c c c c c c c c c c c
#define D(c) "sha256:" H64(c)

/* ---- fixtures ------------------------------------------------------------ */

/* busybox:1.36 amd64 image config, as Docker Hub serves it: Entrypoint null, Env set. */
static const char busybox_config[] =
    "{\"architecture\":\"amd64\",\"config\":{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\","
    "\"AttachStdin\":false,\"AttachStdout\":false,\"AttachStderr\":false,\"Tty\":false,"
    "\"OpenStdin\":false,\"StdinOnce\":false,\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/"
    "sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[\"sh\"],\"Image\":\"sha256:"
    "a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824\",\"Volumes\":null,"
    "\"WorkingDir\":\"\",\"Entrypoint\":null,\"OnBuild\":null,\"Labels\":null},"
    "\"created\":\"2023-07-18T23:19:33.655005962Z\",\"docker_version\":\"20.10.23\","
    "\"history\":[{\"created\":\"2023-07-18T23:19:33.538571854Z\",\"created_by\":\"/bin/sh -c "
    "#(nop) ADD file:7e9002edaafd4e4579b65c8f0aaabde1aeb7fd3f8d95579f7fd3443cef785fd1 in / \"},"
    "{\"created\":\"2023-07-18T23:19:33.655005962Z\",\"created_by\":\"/bin/sh -c #(nop)  CMD "
    "[\\\"sh\\\"]\",\"empty_layer\":true}],\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
    "\"diff_ids\":[\"sha256:3d24ee258efc3bfe4066a1a9fb83febf6dc0b1548dfe896161533668281c9f4f\"]}}";

/* The manifest that points at it (config digest filled in at run time). */
static const char docker_manifest_fmt[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
    "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":%zu,"
    "\"digest\":\"%s\"},\"layers\":[{\"mediaType\":\"application/"
    "vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":2592863,\"digest\":\"sha256:"
    "809d8e20e203d5a3e8d9a0c3e2a3d1e6c7b2b8b1b0c4a5e6f7a8b9c0d1e2f3a4\"}]}";

/* An OCI arm64 config with an entrypoint and no Env (nginx-like, trimmed). */
static const char oci_config[] =
    "{\"created\":\"2024-02-14T18:12:55Z\",\"architecture\":\"arm64\",\"variant\":\"v8\","
    "\"os\":\"linux\",\"config\":{\"ExposedPorts\":{\"80/tcp\":{}},\"Entrypoint\":[\"/"
    "docker-entrypoint.sh\"],\"Cmd\":[\"nginx\",\"-g\",\"daemon off;\"],\"Labels\":{\"maintainer\":"
    "\"NGINX Docker Maintainers <docker-maint@nginx.com>\"},\"StopSignal\":\"SIGQUIT\"},"
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D("1") "\",\"" D(
        "2") "\"]},\"history\":["
             "{\"created\":\"2024-02-14T18:12:55Z\",\"created_by\":\"ENTRYPOINT [\\\"/"
             "docker-entrypoint.sh\\\"]\",\"comment\":\"buildkit.dockerfile.v0\",\"empty_layer\":"
             "true}]}";

static const char oci_manifest_fmt[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
    "\"size\":%zu},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
    "\"digest\":\"" D("3") "\",\"size\":29152100},{\"mediaType\":\"application/"
                           "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D(
                               "4") "\",\"size\":41000123}],"
                                    "\"annotations\":{\"org.opencontainers.image.base.name\":"
                                    "\"docker.io/library/debian:"
                                    "bookworm-slim\",\"org.opencontainers.image.created\":\"2024-"
                                    "02-14T18:12:55Z\"}}";

/* An OCI index as buildx pushes it: two platforms and an attestation manifest. */
#define AMD64_DIGEST D("a")
#define ARM64_DIGEST D("b")
#define ATTEST_DIGEST D("c")
static const char oci_index[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":["
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" AMD64_DIGEST
    "\",\"size\":1611,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" ARM64_DIGEST
    "\",\"size\":1611,\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\","
    "\"variant\":\"v8\"}},"
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" ATTEST_DIGEST
    "\",\"size\":839,\"annotations\":{\"vnd.docker.reference.digest\":\"" AMD64_DIGEST "\","
    "\"vnd.docker.reference.type\":\"attestation-manifest\"},\"platform\":{\"architecture\":"
    "\"unknown\",\"os\":\"unknown\"}}],"
    "\"annotations\":{\"org.opencontainers.image.created\":\"2024-02-14T18:12:55Z\"}}";

/* A Docker manifest list (pretty-printed, as Docker Hub serves it). */
static const char docker_list[] =
    "{\n   \"manifests\": [\n"
    "      {\"digest\": \"" D(
        "d") "\", \"mediaType\": "
             "\"application/vnd.docker.distribution.manifest.v2+json\", \"platform\": "
             "{\"architecture\": "
             "\"amd64\", \"os\": \"linux\"}, \"size\": 528},\n"
             "      {\"digest\": \"" D(
                 "e") "\", \"mediaType\": "
                      "\"application/vnd.docker.distribution.manifest.v2+json\", \"platform\": "
                      "{\"architecture\": "
                      "\"arm\", \"os\": \"linux\", \"variant\": \"v6\"}, \"size\": 528},\n"
                      "      {\"digest\": \"" D(
                          "f") "\", \"mediaType\": "
                               "\"application/vnd.oci.image.manifest.v1+json\", \"platform\": "
                               "{\"architecture\": "
                               "\"arm64\", \"os\": \"linux\"}, \"size\": 528}\n"
                               "   ],\n   \"mediaType\": "
                               "\"application/vnd.docker.distribution.manifest.list.v2+json\",\n"
                               "   \"schemaVersion\": 2\n}\n";

static wv_container_layer_t layer_data = {"data:H4sIAAAAAAAAA+3OMQ6CQBCF4T3KHEHn7exsdhYJvQ0Jse8/",
                                          D("5"), 145, D("6")};
static wv_container_layer_t layer_fusion_amd64 = {
    "https://fusionfs.seqera.io/releases/pkg/2/4/5/fusion-amd64.tar.gz", D("7"), 3000000000LL,
    D("8")};
static wv_container_layer_t layer_fusion_arm64 = {
    "https://fusionfs.seqera.io/releases/pkg/2/4/5/fusion-arm64.tar.gz", D("9"), 12582912, D("0")};

/* ---- helpers ------------------------------------------------------------- */

static void sha256(const char *data, size_t len, char out[WV_DIGEST_STRLEN]) {
  unsigned char md[32];
  unsigned int n;
  EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
  strcpy(out, "sha256:");
  for (int i = 0; i < 32; i++)
    sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

/* The output is consistent: digest of exactly the bytes, length without the NUL. */
static int consistent(const wv_augment_out_t *o) {
  char d[WV_DIGEST_STRLEN];
  sha256(o->data, o->len, d);
  if (strcmp(d, o->digest) != 0 || strlen(o->data) != o->len) {
    fprintf(stderr, "  inconsistent output: %s vs %s\n", d, o->digest);
    return 0;
  }
  return strstr(o->data, "\\/") == NULL; /* '/' must not be escaped */
}

/* Parses text with json-c and returns the value at a dotted path like "config.Env". */
static json_object *at(json_object *root, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  json_object *cur = root;
  for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur;
       k = strtok_r(NULL, ".", &save)) {
    if (json_object_is_type(cur, json_type_array))
      cur = json_object_array_get_idx(cur, (size_t)atoi(k));
    else if (!json_object_object_get_ex(cur, k, &cur))
      cur = NULL;
  }
  return cur;
}

static const char *compact(json_object *v) {
  return v ? json_object_to_json_string_ext(v,
                                            JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
           : "(missing)";
}

static char *fmt_manifest(wv_arena_t *a, const char *fmt, const char *cfg, int oci) {
  char d[WV_DIGEST_STRLEN];
  sha256(cfg, strlen(cfg), d);
  return oci ? wv_arena_sprintf(a, fmt, d, strlen(cfg)) : wv_arena_sprintf(a, fmt, strlen(cfg), d);
}

/* Replaces the first occurrence of from with to (arena). */
static char *replace(wv_arena_t *a, const char *s, const char *from, const char *to) {
  const char *p = strstr(s, from);
  if (!p)
    return NULL;
  return wv_arena_sprintf(a, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

/* ---- containerConfig ----------------------------------------------------- */

TEST(container_config_parse) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *msg = NULL;
  wv_container_config_t cc;
  static const char req[] =
      "{\"entrypoint\":[\"/opt/fusion/entrypoint.sh\"],\"cmd\":null,\"env\":[\"FOO=1\",\"BAR=x "
      "y\"],"
      "\"workingDir\":null,\"unknown\":{\"a\":[1,2]},\"layers\":[{\"location\":\"data:AAAA\","
      "\"gzipDigest\":\"" D("5") "\",\"gzipSize\":3000000000,\"tarDigest\":\"" D(
          "6") "\","
               "\"skipHashing\":true}]}";
  CHECK_OK(wv_container_config_parse(a, req, strlen(req), &cc, &msg));
  CHECK_EQ_INT(cc.n_entrypoint, 1);
  CHECK_EQ_STR(cc.entrypoint[0], "/opt/fusion/entrypoint.sh");
  CHECK_EQ_INT(cc.n_cmd, 0);
  CHECK_EQ_INT(cc.n_env, 2);
  CHECK_EQ_STR(cc.env[1], "BAR=x y");
  CHECK(cc.working_dir == NULL);
  CHECK_EQ_INT(cc.n_layers, 1);
  CHECK_EQ_INT(cc.layers[0].gzip_size, 3000000000LL);
  CHECK_EQ_STR(cc.layers[0].tar_digest, D("6"));
  CHECK_OK(wv_container_config_validate(a, &cc, &msg));
  CHECK(!wv_container_config_is_empty(&cc));

  /* A containerConfig must be an object when it is given as text. */
  CHECK_EQ_INT(wv_container_config_parse(a, "null", 4, &cc, &msg), WV_EPARSE);
  CHECK_OK(wv_container_config_from_json(a, NULL, &cc, &msg));
  CHECK(wv_container_config_is_empty(&cc));
  static const char nulls[] =
      "{\"entrypoint\":null,\"cmd\":null,\"env\":null,\"workingDir\":null,\"layers\":null}";
  CHECK_OK(wv_container_config_parse(a, nulls, strlen(nulls), &cc, &msg));
  CHECK(wv_container_config_is_empty(&cc));

  static const char bad1[] = "{\"entrypoint\":\"/bin/sh\"}";
  CHECK_EQ_INT(wv_container_config_parse(a, bad1, strlen(bad1), &cc, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Invalid container config: 'entrypoint' must be an array of strings");
  static const char bad2[] = "{\"layers\":[{\"gzipSize\":\"12\"}]}";
  CHECK_EQ_INT(wv_container_config_parse(a, bad2, strlen(bad2), &cc, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Invalid container layer: 'gzipSize' must be an integer");
  static const char bad3[] = "{\"env\":[\"A=1\",null]}";
  CHECK_EQ_INT(wv_container_config_parse(a, bad3, strlen(bad3), &cc, &msg), WV_EINVAL);
}

/* Parses one layer JSON and returns the validation message (NULL when valid). */
static const char *layer_msg(wv_arena_t *a, const char *layer) {
  char *req = wv_arena_sprintf(a, "{\"layers\":[%s]}", layer);
  wv_container_config_t cc;
  const char *msg = NULL;
  if (wv_container_config_parse(a, req, strlen(req), &cc, &msg))
    return "(parse failed)";
  return wv_container_config_validate(a, &cc, &msg) == WV_EINVAL ? msg : NULL;
}

TEST(container_layer_validation) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK(layer_msg(a, "{\"location\":\"data:AA\",\"gzipDigest\":\"" D("1") "\",\"gzipSize\":1,"
                                                                          "\"tarDigest\":\"" D(
                                                                              "2") "\"}") == NULL);
  CHECK_EQ_STR(
      layer_msg(a, "{\"gzipDigest\":\"" D("1") "\",\"gzipSize\":1,\"tarDigest\":\"" D("2") "\"}"),
      "Missing layer location");
  CHECK_EQ_STR(layer_msg(a, "{\"location\":\"data:AA\",\"gzipDigest\":null,\"gzipSize\":1,"
                            "\"tarDigest\":\"" D("2") "\"}"),
               "Missing layer gzip digest");
  CHECK_EQ_STR(layer_msg(a, "{\"location\":\"data:AA\",\"gzipDigest\":\"" D(
                                "1") "\","
                                     "\"tarDigest\":\"" D("2") "\"}"),
               "Missing layer gzip size");
  CHECK_EQ_STR(layer_msg(a, "{\"location\":\"data:AA\",\"gzipDigest\":\"" D(
                                "1") "\","
                                     "\"gzipSize\":0,\"tarDigest\":\"" D("2") "\"}"),
               "Missing layer gzip size");
  CHECK_EQ_STR(layer_msg(a,
                         "{\"location\":\"data:AA\",\"gzipDigest\":\"" D("1") "\","
                                                                              "\"gzipSize\":10}"),
               "Missing layer tar digest");
  CHECK_EQ_STR(layer_msg(a, "{\"location\":\"data:AA\",\"gzipDigest\":\"md5:abc\","
                            "\"gzipSize\":10,\"tarDigest\":\"" D("2") "\"}"),
               "Missing layer gzip digest should start with the 'sha256:' prefix -- offending "
               "value: md5:abc");
  CHECK_EQ_STR(layer_msg(a, "{\"location\":\"data:AA\",\"gzipDigest\":\"" D(
                                "1") "\","
                                     "\"gzipSize\":10,\"tarDigest\":\"" H64("2") "\"}"),
               "Missing layer tar digest should start with the 'sha256:' prefix -- offending "
               "value: " H64("2"));
  CHECK_EQ_STR(layer_msg(a, "{\"location\":\"data:AA\",\"gzipDigest\":\"sha256:xyz\","
                            "\"gzipSize\":10,\"tarDigest\":\"" D("2") "\"}"),
               "Invalid layer gzip digest -- offending value: sha256:xyz");

  /* The rewrites refuse an invalid config too. */
  wv_container_layer_t bad = layer_data;
  bad.tar_digest = NULL;
  wv_container_config_t cc = {.layers = &bad, .n_layers = 1};
  wv_augment_out_t out;
  const char *msg = NULL;
  CHECK_EQ_INT(wv_augment_config(a, busybox_config, strlen(busybox_config), &cc, &out, &msg),
               WV_EINVAL);
  CHECK_EQ_STR(msg, "Missing layer tar digest");
}

TEST(fusion_filter) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_container_layer_t layers[] = {layer_data, layer_fusion_amd64, layer_fusion_arm64};
  wv_container_config_t cc = {.layers = layers, .n_layers = 3}, out;
  CHECK_OK(wv_container_config_filter_arch(a, &cc, "arm64", &out));
  CHECK_EQ_INT(out.n_layers, 2);
  CHECK_EQ_STR(out.layers[0].location, layer_data.location);
  CHECK_EQ_STR(out.layers[1].location, layer_fusion_arm64.location);
  CHECK_OK(wv_container_config_filter_arch(a, &cc, "x86_64", &out));
  CHECK_EQ_INT(out.n_layers, 2);
  CHECK_EQ_STR(out.layers[1].location, layer_fusion_amd64.location);
  CHECK_OK(wv_container_config_filter_arch(a, &cc, NULL, &out));
  CHECK_EQ_INT(out.n_layers, 3);
  CHECK_EQ_INT(cc.n_layers, 3); /* the input is not touched */
}

/* ---- config rewrite ------------------------------------------------------ */

TEST(config_rewrite_docker) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *env[] = {"FOO=1", "NXF_HOME=/work/.nextflow"};
  const char *cmd[] = {"/bin/bash"};
  wv_container_layer_t layers[] = {layer_data};
  wv_container_config_t cc = {.cmd = cmd,
                              .n_cmd = 1,
                              .env = env,
                              .n_env = 2,
                              .working_dir = "/work",
                              .layers = layers,
                              .n_layers = 1};
  wv_augment_out_t out;
  const char *msg = NULL;
  CHECK_OK(wv_augment_config(a, busybox_config, strlen(busybox_config), &cc, &out, &msg));
  CHECK(consistent(&out));
  /* Exactly the original bytes with the edited values in their original places. */
  char *want = replace(a, busybox_config, "/sbin:/bin\"]",
                       "/sbin:/bin\",\"FOO=1\",\"NXF_HOME=/work/.nextflow\"]");
  want = replace(a, want, "\"Cmd\":[\"sh\"]", "\"Cmd\":[\"/bin/bash\"]");
  want = replace(a, want, "\"WorkingDir\":\"\"", "\"WorkingDir\":\"/work\"");
  want = replace(a, want, "9f4f\"]", "9f4f\",\"" D("6") "\"]");
  CHECK(want);
  CHECK_EQ_STR(out.data, want);
  /* Entrypoint was null: no WAVE_ENTRY_CHAIN. */
  CHECK_LACKS(out.data, "WAVE_ENTRY_CHAIN");
}

/* Rewrites cfg with cc and returns the compact JSON at path of the result. */
static const char *rewritten(wv_arena_t *a, const char *cfg, const wv_container_config_t *cc,
                             const char *path) {
  wv_augment_out_t out;
  const char *msg = NULL;
  if (wv_augment_config(a, cfg, strlen(cfg), cc, &out, &msg) != 0 || !consistent(&out))
    return "(rewrite failed)";
  json_object *root = json_tokener_parse(out.data);
  const char *s = wv_arena_strdup(a, compact(at(root, path)));
  json_object_put(root);
  return s;
}

TEST(config_entry_chain) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *ep[] = {"/opt/fusion/entrypoint.sh"};
  const char *env[] = {"FOO=1"};
  wv_container_config_t none = {0};
  wv_container_config_t with_ep = {.entrypoint = ep, .n_entrypoint = 1};
  wv_container_config_t with_env = {.env = env, .n_env = 1};

  /* One-element entrypoint, no Env in the image: Env is created with the chain. */
  CHECK_EQ_STR(rewritten(a, oci_config, &with_ep, "config.Env"),
               "[\"WAVE_ENTRY_CHAIN=/docker-entrypoint.sh\"]");
  CHECK_EQ_STR(rewritten(a, oci_config, &with_ep, "config.Entrypoint"),
               "[\"/opt/fusion/entrypoint.sh\"]");
  /* Even with nothing requested, augmentation adds the chain; Cmd is kept. */
  CHECK_EQ_STR(rewritten(a, oci_config, &none, "config.Env"),
               "[\"WAVE_ENTRY_CHAIN=/docker-entrypoint.sh\"]");
  CHECK_EQ_STR(rewritten(a, oci_config, &none, "config.Cmd"), "[\"nginx\",\"-g\",\"daemon off;\"]");
  /* Request env first, then the chain. */
  CHECK_EQ_STR(rewritten(a, oci_config, &with_env, "config.Env"),
               "[\"FOO=1\",\"WAVE_ENTRY_CHAIN=/docker-entrypoint.sh\"]");

  /* Several elements: the chain is their compact JSON array. */
  static const char multi[] =
      "{\"config\":{\"Entrypoint\":[\"/bin/sh\",\"-c\",\"exec \\\"$@\\\"\"],\"Env\":[\"A=1\"]},"
      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
  CHECK_EQ_STR(rewritten(a, multi, &none, "config.Env.1"),
               "\"WAVE_ENTRY_CHAIN=[\\\"/bin/sh\\\",\\\"-c\\\",\\\"exec \\\\\\\"$@\\\\\\\"\\\"]\"");
  /* A string entrypoint is used as is. */
  static const char str[] = "{\"config\":{\"Entrypoint\":\"tini\"},\"rootfs\":{\"diff_ids\":[]}}";
  CHECK_EQ_STR(rewritten(a, str, &none, "config.Env"), "[\"WAVE_ENTRY_CHAIN=tini\"]");
  /* Empty entrypoints count as none: Env stays absent. */
  static const char empty[] = "{\"config\":{\"Entrypoint\":[]},\"rootfs\":{\"diff_ids\":[]}}";
  CHECK_EQ_STR(rewritten(a, empty, &none, "config.Env"), "(missing)");
  static const char empty1[] = "{\"config\":{\"Entrypoint\":[\"\"]},\"rootfs\":{\"diff_ids\":[]}}";
  CHECK_EQ_STR(rewritten(a, empty1, &none, "config.Env"), "(missing)");
  /* A null Env becomes an array in place, keeping its position. */
  static const char nullenv[] = "{\"config\":{\"Env\":null,\"Entrypoint\":[\"/"
                                "e\"],\"Cmd\":null},\"rootfs\":{\"diff_ids\":[]}}";
  wv_augment_out_t out;
  CHECK_OK(wv_augment_config(a, nullenv, strlen(nullenv), &with_env, &out, NULL));
  CHECK_EQ_STR(out.data, "{\"config\":{\"Env\":[\"FOO=1\",\"WAVE_ENTRY_CHAIN=/e\"],"
                         "\"Entrypoint\":[\"/e\"],\"Cmd\":null},\"rootfs\":{\"diff_ids\":[]}}");
  /* No config object at all: created only when something goes into it. */
  static const char nocfg[] = "{\"rootfs\":{\"diff_ids\":[]}}";
  CHECK_OK(wv_augment_config(a, nocfg, strlen(nocfg), &none, &out, NULL));
  CHECK_EQ_STR(out.data, nocfg);
  CHECK_OK(wv_augment_config(a, nocfg, strlen(nocfg), &with_env, &out, NULL));
  CHECK_EQ_STR(out.data, "{\"rootfs\":{\"diff_ids\":[]},\"config\":{\"Env\":[\"FOO=1\"]}}");
}

TEST(config_rewrite_errors) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_container_layer_t layers[] = {layer_data};
  wv_container_config_t cc = {.layers = layers, .n_layers = 1};
  wv_augment_out_t out;
  const char *msg = NULL;
  static const char norootfs[] = "{\"config\":{}}";
  CHECK_EQ_INT(wv_augment_config(a, norootfs, strlen(norootfs), &cc, &out, &msg), WV_EPARSE);
  CHECK_EQ_STR(msg, "Invalid image config: missing 'rootfs.diff_ids'");
  static const char trailing[] = "{\"rootfs\":{\"diff_ids\":[]}} x";
  CHECK_EQ_INT(wv_augment_config(a, trailing, strlen(trailing), &cc, &out, &msg), WV_EPARSE);
  CHECK_EQ_INT(wv_augment_config(a, "[1]", 3, &cc, &out, &msg), WV_EPARSE);
  CHECK_EQ_INT(wv_augment_config(a, "{\"a\":", 5, &cc, &out, &msg), WV_EPARSE);
  static const char badutf8[] = "{\"rootfs\":{\"diff_ids\":[]},\"x\":\"\xC3\x28\"}";
  CHECK_EQ_INT(wv_augment_config(a, badutf8, strlen(badutf8), &cc, &out, &msg), WV_EPARSE);
  static const char nul[] = "{\"rootfs\":{\"diff_ids\":[]}}\0{}";
  CHECK_EQ_INT(wv_augment_config(a, nul, sizeof nul - 1, &cc, &out, &msg), WV_EPARSE);
  static const char badenv[] = "{\"config\":{\"Env\":\"A=1\"},\"rootfs\":{\"diff_ids\":[]}}";
  wv_container_config_t envcc = {.env = (const char *[]){"B=2"}, .n_env = 1};
  CHECK_EQ_INT(wv_augment_config(a, badenv, strlen(badenv), &envcc, &out, &msg), WV_EPARSE);

  /* Depth cap: 40 nested arrays inside a valid config. */
  char *deep = wv_arena_sprintf(a, "{\"rootfs\":{\"diff_ids\":[]},\"x\":%.*s%.*s}", 40,
                                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 40,
                                "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
  CHECK_EQ_INT(wv_augment_config(a, deep, strlen(deep), &cc, &out, &msg), WV_EPARSE);
  /* Size cap: past WV_AUGMENT_MAX_CONFIG is refused before parsing. */
  CHECK_EQ_INT(wv_augment_config(a, busybox_config, WV_AUGMENT_MAX_CONFIG + 1, &cc, &out, &msg),
               WV_ETOOBIG);
}

/* ---- manifest rewrite ---------------------------------------------------- */

TEST(manifest_rewrite_docker) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  char *manifest = fmt_manifest(a, docker_manifest_fmt, busybox_config, 0);
  wv_container_layer_t layers[] = {layer_data, layer_fusion_amd64};
  wv_container_config_t cc = {.layers = layers, .n_layers = 2};
  wv_augment_out_t out;
  const char *msg = NULL;
  CHECK_OK(wv_augment_manifest(a, manifest, strlen(manifest), D("e"), 4242, &cc, &out, &msg));
  CHECK(consistent(&out));
  char *want = wv_arena_sprintf(a, docker_manifest_fmt, (size_t)4242, D("e"));
  want = replace(
      a, want, "f3a4\"}]",
      "f3a4\"},"
      "{\"mediaType\":\"application/"
      "vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":145,\"digest\":\"" D(
          "5") "\"},"
               "{\"mediaType\":\"application/"
               "vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":3000000000,\"digest\":\"" D(
                   "7") "\"}]");
  CHECK(want);
  CHECK_EQ_STR(out.data, want);

  wv_manifest_info_t info;
  CHECK_OK(wv_manifest_info(a, manifest, strlen(manifest), &info, &msg));
  CHECK_EQ_STR(info.media_type, WV_MT_DOCKER_MANIFEST);
  CHECK_EQ_STR(info.config_media_type, WV_MT_DOCKER_CONFIG);
  CHECK_EQ_INT(info.config_size, strlen(busybox_config));
  char d[WV_DIGEST_STRLEN];
  sha256(busybox_config, strlen(busybox_config), d);
  CHECK_EQ_STR(info.config_digest, d);

  static const char broken[] = "{\"schemaVersion\":2,\"layers\":[]}";
  CHECK_EQ_INT(wv_augment_manifest(a, broken, strlen(broken), D("e"), 1, &cc, &out, &msg),
               WV_EPARSE);
  CHECK_EQ_INT(wv_manifest_info(a, broken, strlen(broken), &info, &msg), WV_EPARSE);
  CHECK_EQ_INT(
      wv_augment_manifest(a, manifest, WV_AUGMENT_MAX_MANIFEST + 1, D("e"), 1, &cc, &out, &msg),
      WV_ETOOBIG);
}

TEST(image_rewrite_oci) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  char *manifest = fmt_manifest(a, oci_manifest_fmt, oci_config, 1);
  const char *ep[] = {"/opt/fusion/entrypoint.sh"};
  wv_container_layer_t layers[] = {layer_data, layer_fusion_amd64, layer_fusion_arm64};
  wv_container_config_t cc = {.entrypoint = ep, .n_entrypoint = 1, .layers = layers, .n_layers = 3};
  wv_augment_out_t nm, nc;
  wv_container_config_t used;
  const char *msg = NULL;
  CHECK_OK(wv_augment_image(a, manifest, strlen(manifest), oci_config, strlen(oci_config), &cc, &nm,
                            &nc, &used, &msg));
  CHECK(consistent(&nm));
  CHECK(consistent(&nc));
  /* The arm64 image keeps the data layer and the arm64 Fusion layer only. */
  CHECK_EQ_INT(used.n_layers, 2);
  json_object *m = json_tokener_parse(nm.data), *c = json_tokener_parse(nc.data);
  CHECK(m && c);
  CHECK_EQ_STR(compact(at(m, "config")),
               wv_arena_sprintf(a,
                                "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                                "\"digest\":\"%s\",\"size\":%zu}",
                                nc.digest, nc.len));
  CHECK_EQ_INT(json_object_array_length(at(m, "layers")), 4);
  CHECK_EQ_STR(compact(at(m, "layers.2")),
               "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":145,"
               "\"digest\":\"" D("5") "\"}");
  CHECK_EQ_STR(compact(at(m, "layers.3.digest")), "\"" D("9") "\"");
  CHECK_EQ_STR(compact(at(m, "mediaType")), "\"" WV_MT_OCI_MANIFEST "\"");
  CHECK_HAS(nm.data, "\"annotations\":{\"org.opencontainers.image.base.name\"");
  CHECK_EQ_STR(compact(at(c, "rootfs.diff_ids")),
               "[\"" D("1") "\",\"" D("2") "\",\"" D("6") "\",\"" D("0") "\"]");
  CHECK_EQ_STR(compact(at(c, "config.Env")), "[\"WAVE_ENTRY_CHAIN=/docker-entrypoint.sh\"]");
  CHECK_EQ_INT(json_object_array_length(at(c, "history")), 1); /* history untouched */
  json_object_put(m);
  json_object_put(c);

  /* Config bytes that do not hash to config.digest are refused. */
  char *tampered = replace(a, oci_config, "SIGQUIT", "SIGTERM");
  CHECK_EQ_INT(wv_augment_image(a, manifest, strlen(manifest), tampered, strlen(tampered), &cc, &nm,
                                &nc, NULL, &msg),
               WV_EDIGEST);
}

/* ---- indexes ------------------------------------------------------------- */

TEST(index_select_and_rewrite_oci) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_platform_list_t want;
  const char *msg = NULL;
  CHECK_OK(wv_platform_parse_list(a, "linux/arm64", &want, &msg));
  wv_index_entry_t *e = NULL;
  size_t n = 0;
  CHECK_OK(wv_augment_index_select(a, oci_index, strlen(oci_index), WV_MT_OCI_INDEX, &want,
                                   "library/nginx", "latest", &e, &n, &msg));
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_STR(e[0].digest, ARM64_DIGEST);
  CHECK_EQ_INT(e[0].size, 1611);
  CHECK_EQ_STR(e[0].media_type, WV_MT_OCI_MANIFEST);
  CHECK_EQ_STR(e[0].platform.arch, "arm64");

  /* Content-Type unknown: the body's mediaType decides. */
  CHECK_OK(wv_augment_index_select(a, oci_index, strlen(oci_index), NULL, &want, "library/nginx",
                                   "latest", &e, &n, &msg));
  CHECK_EQ_INT(n, 1);

  wv_index_repl_t r = {ARM64_DIGEST, D("4"), 2345};
  wv_augment_out_t out;
  CHECK_OK(wv_augment_index_rewrite(a, oci_index, strlen(oci_index), &r, 1, &out, &msg));
  CHECK(consistent(&out));
  /* Only the arm64 entry changed: amd64 and the attestation still point upstream. */
  char *expect = replace(a, oci_index, "\"digest\":\"" ARM64_DIGEST "\",\"size\":1611",
                         "\"digest\":\"" D("4") "\",\"size\":2345");
  CHECK(expect);
  CHECK_EQ_STR(out.data, expect);
  json_object *before = json_tokener_parse(oci_index), *after = json_tokener_parse(out.data);
  CHECK_EQ_STR(wv_arena_strdup(a, compact(at(before, "manifests.0"))),
               compact(at(after, "manifests.0")));
  CHECK_EQ_STR(wv_arena_strdup(a, compact(at(before, "manifests.2"))),
               compact(at(after, "manifests.2")));
  CHECK_EQ_STR(compact(at(after, "manifests.1.digest")), "\"" D("4") "\"");
  json_object_put(before);
  json_object_put(after);

  /* Multi-platform requests select both real platforms, never the attestation. */
  CHECK_OK(wv_platform_parse_list(a, "linux/amd64,linux/arm64", &want, &msg));
  CHECK_OK(wv_augment_index_select(a, oci_index, strlen(oci_index), WV_MT_OCI_INDEX, &want,
                                   "library/nginx", "latest", &e, &n, &msg));
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_STR(e[0].digest, AMD64_DIGEST);
  CHECK_EQ_STR(e[1].digest, ARM64_DIGEST);

  /* A replacement for a digest the index does not hold is an error. */
  wv_index_repl_t stray = {D("9"), D("4"), 1};
  CHECK_EQ_INT(wv_augment_index_rewrite(a, oci_index, strlen(oci_index), &stray, 1, &out, &msg),
               WV_EINVAL);
  CHECK_EQ_STR(msg, "Missing manifest entry for digest: " D("9"));
  /* A→B then B→C must not chain onto the same entry. */
  wv_index_repl_t two[] = {{AMD64_DIGEST, ARM64_DIGEST, 10}, {ARM64_DIGEST, D("4"), 20}};
  CHECK_OK(wv_augment_index_rewrite(a, oci_index, strlen(oci_index), two, 2, &out, &msg));
  json_object *j = json_tokener_parse(out.data);
  CHECK_EQ_STR(compact(at(j, "manifests.0.digest")), "\"" ARM64_DIGEST "\"");
  CHECK_EQ_STR(compact(at(j, "manifests.1.digest")), "\"" D("4") "\"");
  json_object_put(j);
}

TEST(index_select_docker_list) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_platform_list_t want;
  const char *msg = NULL;
  wv_index_entry_t *e = NULL;
  size_t n = 0;
  CHECK_OK(wv_platform_parse_list(a, "x86_64", &want, &msg));
  CHECK_OK(wv_augment_index_select(a, docker_list, strlen(docker_list),
                                   "application/vnd.docker.distribution.manifest.list.v2+json",
                                   &want, "library/busybox", "latest", &e, &n, &msg));
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_STR(e[0].digest, D("d"));
  CHECK_OK(wv_platform_parse_list(a, "linux/arm/v6", &want, &msg));
  CHECK_OK(wv_augment_index_select(a, docker_list, strlen(docker_list), NULL, &want,
                                   "library/busybox", "latest", &e, &n, &msg));
  CHECK_EQ_STR(e[0].digest, D("e"));
  /* The arm64 entry is an OCI manifest inside a Docker list: not augmentable. */
  CHECK_OK(wv_platform_parse_list(a, "linux/arm64", &want, &msg));
  CHECK_EQ_INT(wv_augment_index_select(a, docker_list, strlen(docker_list), NULL, &want,
                                       "library/busybox", "latest", &e, &n, &msg),
               WV_EINVAL);
  CHECK_EQ_STR(msg, "Cannot find matching platform 'linux/arm64' in the image index for "
                    "'library/busybox:latest'");
  CHECK_OK(wv_platform_parse_list(a, "linux/arm/v7", &want, &msg));
  CHECK_EQ_INT(wv_augment_index_select(a, docker_list, strlen(docker_list), NULL, &want,
                                       "library/busybox", "latest", &e, &n, &msg),
               WV_EINVAL);
  CHECK_EQ_STR(msg, "Cannot find matching platform 'linux/arm/v7' in the image index for "
                    "'library/busybox:latest'");

  /* Rewriting a pretty-printed list yields compact JSON with the same entries. */
  wv_index_repl_t r = {D("d"), D("1"), 999};
  wv_augment_out_t out;
  CHECK_OK(wv_augment_index_rewrite(a, docker_list, strlen(docker_list), &r, 1, &out, &msg));
  CHECK(consistent(&out));
  CHECK(strchr(out.data, '\n') == NULL);
  CHECK_HAS(out.data,
            "{\"digest\":\"" D("1") "\",\"mediaType\":\"" WV_MT_DOCKER_MANIFEST
                                    "\",\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},"
                                    "\"size\":999}");
  CHECK_HAS(out.data, "\"digest\":\"" D("e") "\"");

  /* Not an index at all. */
  char *manifest = fmt_manifest(a, docker_manifest_fmt, busybox_config, 0);
  CHECK_EQ_INT(wv_augment_index_select(a, manifest, strlen(manifest), NULL, &want,
                                       "library/busybox", "latest", &e, &n, &msg),
               WV_EPARSE);
}

TEST(mediatype_classify) {
  CHECK_EQ_INT(wv_mediatype_classify(WV_MT_DOCKER_MANIFEST), WV_MT_KIND_MANIFEST);
  CHECK_EQ_INT(wv_mediatype_classify(WV_MT_OCI_MANIFEST), WV_MT_KIND_MANIFEST);
  CHECK_EQ_INT(wv_mediatype_classify(WV_MT_OCI_INDEX), WV_MT_KIND_INDEX);
  CHECK_EQ_INT(wv_mediatype_classify(" Application/vnd.docker.distribution.manifest.list.v2+json ;"
                                     " charset=utf-8"),
               WV_MT_KIND_INDEX);
  CHECK_EQ_INT(wv_mediatype_classify(WV_MT_DOCKER_SCHEMA1_SIGNED), WV_MT_KIND_SCHEMA1);
  CHECK_EQ_INT(wv_mediatype_classify(WV_MT_DOCKER_SCHEMA1), WV_MT_KIND_SCHEMA1);
  CHECK_EQ_INT(wv_mediatype_classify(WV_MT_DOCKER_CONFIG), WV_MT_KIND_OTHER);
  CHECK_EQ_INT(wv_mediatype_classify("application/json"), WV_MT_KIND_OTHER);
  CHECK_EQ_INT(wv_mediatype_classify(NULL), WV_MT_KIND_OTHER);
  CHECK_EQ_STR(wv_mediatype_index_child(WV_MT_OCI_INDEX), WV_MT_OCI_MANIFEST);
  CHECK_EQ_STR(wv_mediatype_index_child(WV_MT_DOCKER_LIST), WV_MT_DOCKER_MANIFEST);
  CHECK(wv_mediatype_index_child(WV_MT_OCI_MANIFEST) == NULL);
  CHECK_EQ_STR(wv_mediatype_config_for(WV_MT_OCI_MANIFEST), WV_MT_OCI_CONFIG);
  CHECK_EQ_STR(wv_mediatype_config_for(WV_MT_DOCKER_MANIFEST), WV_MT_DOCKER_CONFIG);
  CHECK(wv_mediatype_is_oci(WV_MT_OCI_INDEX) && !wv_mediatype_is_oci(WV_MT_DOCKER_LIST));
  CHECK_HAS(WV_MT_ACCEPT_MANIFESTS, WV_MT_OCI_INDEX ", " WV_MT_OCI_MANIFEST);
  CHECK_HAS(WV_MT_ACCEPT_MANIFESTS, WV_MT_DOCKER_SCHEMA1_SIGNED);
}

WV_TESTS(T(container_config_parse), T(container_layer_validation), T(fusion_filter),
         T(config_rewrite_docker), T(config_entry_chain), T(config_rewrite_errors),
         T(manifest_rewrite_docker), T(image_rewrite_oci), T(index_select_and_rewrite_oci),
         T(index_select_docker_list), T(mediatype_classify))
