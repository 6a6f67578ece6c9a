/*
 * tests/test_checksum.c — containerId (contract §4.4) and Java hashCode vectors.
 * The constants come from tests/fixtures/gen_checksum_vectors.py, an
 * independent Python model of Java/Guava, not from this C code.
 */
#include "build/checksum.h"
#include "core/arena.h"
#include "core/err.h"
#include "runner.h"

#include <json-c/json.h>

#define A64(c)                                                                                     \
  "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
      c c c c c c c c c c c c c c c c c c c c c

static wv_container_layer_t L1 = {"data:H4sIAAAA", A64("a"), 1234, A64("b")};
static wv_container_layer_t L2 = {
    "https://fusionfs.seqera.io/releases/pkg/2/2/4/fusion-amd64.tar.gz", A64("c"), 2147483647,
    A64("d")};

TEST(java_string_hash) {
  int32_t h;
  CHECK_OK(wv_checksum_java_string_hash("", &h));
  CHECK_EQ_INT(h, 0);
  CHECK_OK(wv_checksum_java_string_hash(NULL, &h));
  CHECK_EQ_INT(h, 0);
  CHECK_OK(wv_checksum_java_string_hash("a", &h));
  CHECK_EQ_INT(h, 97);
  CHECK_OK(wv_checksum_java_string_hash("hello", &h));
  CHECK_EQ_INT(h, 99162322);
  CHECK_OK(wv_checksum_java_string_hash("caf\xc3\xa9", &h));
  CHECK_EQ_INT(h, 3045921);
  CHECK_OK(wv_checksum_java_string_hash("\xf0\x9f\x98\x80", &h)); /* U+1F600, a surrogate pair */
  CHECK_EQ_INT(h, 1772899);
  CHECK_OK(wv_checksum_java_string_hash("polygenelubricants", &h));
  CHECK_EQ_INT(h, -2147483647 - 1);
  CHECK_EQ_INT(wv_checksum_java_string_hash("\xc3", &h), WV_EPARSE);
  CHECK_EQ_INT(wv_checksum_java_string_hash("\xed\xa0\x80", &h), WV_EPARSE);
}

TEST(config_hash_null_vs_empty) {
  wv_container_config_t cc = {0};
  int32_t h;
  CHECK_OK(wv_checksum_config_hash(&cc, false, &h)); /* layers omitted = [] */
  CHECK_EQ_INT(h, 28629152);
  CHECK_OK(wv_checksum_config_hash(&cc, true, &h)); /* "layers": null */
  CHECK_EQ_INT(h, 28629151);
  const char *none[1] = {NULL};
  wv_container_layer_t nolayer[1];
  cc.entrypoint = none, cc.cmd = none, cc.env = none, cc.layers = nolayer;
  CHECK_OK(wv_checksum_config_hash(&cc, true, &h)); /* every list [] (layers_null ignored) */
  CHECK_EQ_INT(h, 29583425);
  CHECK_OK(wv_checksum_config_hash(NULL, false, &h));
  CHECK_EQ_INT(h, 0);
}

TEST(config_hash_values) {
  const char *ep[] = {"/bin/sh", "-c"};
  wv_container_config_t cc = {.entrypoint = ep, .n_entrypoint = 2};
  int32_t h;
  CHECK_OK(wv_checksum_config_hash(&cc, false, &h));
  CHECK_EQ_INT(h, 1623522539);

  const char *ep2[] = {"/bin/sh"}, *cmd[] = {"echo", "hi"}, *env[] = {"A=1", "B=2"};
  wv_container_layer_t layers[] = {L1, L2};
  wv_container_config_t full = {ep2, 1, cmd, 2, env, 2, "/work", layers, 2};
  CHECK_OK(wv_checksum_config_hash(&full, false, &h));
  CHECK_EQ_INT(h, 1915304246);

  const char *ep3[] = {"caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac"};
  const char *env3[] = {"EMOJI=\xf0\x9f\x98\x80"};
  wv_container_config_t uni = {.entrypoint = ep3,
                               .n_entrypoint = 2,
                               .env = env3,
                               .n_env = 1,
                               .working_dir = "/d\xc3\xa9j\xc3\xa0"};
  CHECK_OK(wv_checksum_config_hash(&uni, false, &h));
  CHECK_EQ_INT(h, 501001782);

  wv_container_layer_t nosize = L1;
  nosize.gzip_size = 0; /* an absent Integer hashes like 0 */
  wv_container_config_t one = {.layers = &nosize, .n_layers = 1};
  CHECK_OK(wv_checksum_config_hash(&one, false, &h));
  CHECK_EQ_INT(h, -720033037);
}

TEST(layers_null_from_json) {
  json_object *a = json_tokener_parse("{\"layers\":null}");
  json_object *b = json_tokener_parse("{\"env\":[\"A=1\"]}");
  json_object *c = json_tokener_parse("{\"layers\":[]}");
  CHECK(wv_checksum_layers_null(a));
  CHECK(!wv_checksum_layers_null(b));
  CHECK(!wv_checksum_layers_null(c));
  CHECK(!wv_checksum_layers_null(NULL));
  json_object_put(a), json_object_put(b), json_object_put(c);
}

static const char *id_of(wv_checksum_input_t in) {
  static char out[WV_CHECKSUM_STRLEN];
  int rc = wv_checksum_container_id(&in, out);
  return rc ? "error" : out;
}

TEST(container_id_spec_vectors) {
  wv_checksum_input_t in = {
      .container_file = "FROM foo", .platform = "linux/amd64", .repository = "wave/build"};
  CHECK_EQ_STR(id_of(in), "7efaa2ed59c58a16");
  in.platform = "linux/arm64";
  CHECK_EQ_STR(id_of(in), "be9ee6ac1eeff4b5");
  in.conda_file = "some::conda-recipe";
  CHECK_EQ_STR(id_of(in), "c6dac2e544419f71");
}

TEST(container_id_conda_and_context) {
  wv_checksum_input_t in = {.container_file = "FROM x\n",
                            .conda_file =
                                "channels:\n- conda-forge\n- bioconda\ndependencies:\n- "
                                "bioconda::samtools=1.17\n- pip\n- pip:\n  - pandas==2.2.2\n",
                            .platform = "linux/amd64",
                            .repository = "docker.io/foo/test"};
  CHECK_EQ_STR(id_of(in), "eb9ce7bccc8ea264");

  wv_checksum_input_t ctx = {.container_file = "FROM x\n",
                             .platform = "linux/arm64",
                             .repository = "docker.io/foo/test",
                             .has_build_context = true,
                             .build_context_tar_digest = A64("e")};
  CHECK_EQ_STR(id_of(ctx), "cc8c756c5f29f48b");
  ctx.build_context_tar_digest = NULL; /* a context object without tarDigest still counts */
  CHECK_EQ_STR(id_of(ctx), "6d27d7b07d34b5d5");

  wv_checksum_input_t uni = {.container_file = "FROM x\nRUN echo caf\xc3\xa9 \xf0\x9f\x98\x80\n",
                             .platform = "linux/amd64",
                             .repository = "docker.io/foo/test"};
  CHECK_EQ_STR(id_of(uni), "de8f704f6bbaea96");
}

TEST(container_id_freeze_config) {
  const char *ep[] = {"/bin/sh"}, *cmd[] = {"echo", "hi"}, *env[] = {"A=1", "B=2"};
  wv_container_layer_t layers[] = {L1, L2};
  wv_container_config_t full = {ep, 1, cmd, 2, env, 2, "/work", layers, 2};
  wv_checksum_input_t in = {.container_file = "FROM x\n",
                            .platform = "linux/amd64",
                            .repository = "docker.io/foo/test",
                            .container_config = &full,
                            .freeze = true};
  CHECK_EQ_STR(id_of(in), "1f5d0a53eef8b1d1");
  /* Not freeze: the config is applied at pull time and does not change the id. */
  wv_checksum_input_t plain = in;
  plain.freeze = false;
  wv_checksum_input_t none = in;
  none.container_config = NULL;
  CHECK_EQ_STR(id_of(plain), id_of(none));
  /* An empty config counts as none, even in freeze mode. */
  wv_container_config_t empty = {0};
  wv_checksum_input_t e = in;
  e.container_config = &empty;
  char a[WV_CHECKSUM_STRLEN];
  CHECK_OK(wv_checksum_container_id(&e, a));
  CHECK_EQ_STR(a, id_of(none));
  wv_checksum_input_t bad = {.container_file = "FROM x", .platform = NULL, .repository = "r"};
  CHECK_EQ_INT(wv_checksum_container_id(&bad, a), WV_EINVAL);
}

WV_TESTS(T(java_string_hash), T(config_hash_null_vs_empty), T(config_hash_values),
         T(layers_null_from_json), T(container_id_spec_vectors), T(container_id_conda_and_context),
         T(container_id_freeze_config))
