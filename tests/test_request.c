/*
 * Unit tests for build/request: parsing, the contract §3.2 checks and their order,
 * data-layer verification, tokens, records and responses — against a real
 * store and blob store in a temp dir, without sockets (upstream is NULL).
 */
#include "build/build.h"
#include "build/layers.h"
#include "build/request/records.h"
#include "build/request/request.h"
#include "core/config.h"
#include "core/digest.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/ratelimit.h"
#include "core/secret.h"
#include "core/timefmt.h"
#include "http/http.h"
#include "storage/cas.h"
#include "storage/store.h"
#include "tests/runner.h"
#include "tests/storage_util.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <zlib.h>

/* sha256("secret-token"), configured as account "alice". */
#define ALICE_TOKEN "secret-token"

typedef struct {
  char dir[256];
  wv_config_t cfg;
  wv_app_t app;
  wv_arena_t *a;
} env_t;

static int env_open(env_t *e) {
  memset(e, 0, sizeof *e);
  wv_log_set_level(WV_LOG_WARN);
  if (!tmpdir_make(e->dir, "request") || wv_config_defaults(&e->cfg))
    return -1;
  uint8_t h[WV_SHA256_LEN];
  char hex[65];
  wv_sha256(ALICE_TOKEN, strlen(ALICE_TOKEN), h);
  wv_hex_encode(h, sizeof h, hex);
  e->cfg.accounts.keys = calloc(1, sizeof(char *));
  e->cfg.accounts.values = calloc(1, sizeof(char *));
  e->cfg.accounts.keys[0] = strdup("alice");
  e->cfg.accounts.values[0] = strdup(hex);
  e->cfg.accounts.len = 1;
  free(e->cfg.server_url);
  e->cfg.server_url = strdup("https://wave.example.com");
  free(e->cfg.server_authority);
  e->cfg.server_authority = strdup("wave.example.com");
  e->app.cfg = &e->cfg;
  e->a = wv_arena_new(0);
  if (wv_store_open(&e->app.store, e->dir, 64 << 20, 0) || wv_build_table_new(&e->app.builds) ||
      wv_layers_memo_new(&e->app.layer_memo))
    return -1;
  return wv_cas_open(&e->app.cas, e->dir, 0);
}

static void env_close(env_t *e) {
  wv_layers_memo_free(e->app.layer_memo);
  wv_build_table_free(e->app.builds);
  wv_cas_close(e->app.cas);
  wv_store_close(e->app.store);
  wv_arena_free(e->a);
  wv_config_free(&e->cfg);
  tmpdir_remove(e->dir);
}

static void env_free(env_t *e) {
  env_close(e);
  free(e);
}

/* An open environment closed when the test returns, failed or not; NULL if it cannot open. */
static env_t *env_start(void) {
  env_t *e = calloc(1, sizeof *e);
  if (!e || env_open(e)) {
    free(e);
    return NULL;
  }
  TEST_CLEANUP(env_free, e);
  return e;
}

/* Runs parse + check + submit on body; returns rc, *msg and *out (response). */
static int run(env_t *e, const char *body, bool v2, json_object **out, const char **msg) {
  *msg = NULL;
  return wv_creq_handle(&e->app, e->a, body, strlen(body), v2, "203.0.113.7", out, msg, NULL);
}

static const char *jstr(json_object *o, const char *key) {
  const char *s = NULL;
  return wv_json_get_str(o, key, &s) ? NULL : s;
}

/* ---- contract §10.3 literal examples ------------------------------------------------------- */

/* Example 1, as Nextflow sends it (explicit nulls), with its truncated layers. */
static const char nextflow_example[] =
    "{\"towerAccessToken\": \"eyJ0aWQiOiAxMjN9.abc...\", \"towerRefreshToken\": \"4ed3c1a1b2...\","
    " \"towerWorkspaceId\": 123456789, \"towerEndpoint\": \"https://api.cloud.seqera.io\","
    " \"containerImage\": \"quay.io/biocontainers/samtools:1.17--h00cdaf9_0\", \"containerFile\": "
    "null,"
    " \"containerConfig\": {\"entrypoint\": [\"/usr/bin/fusion\"], \"cmd\": null,"
    " \"env\": [\"FUSION_WORK=/fusion/s3/my-bucket/work\"], \"workingDir\": null, \"layers\": ["
    " {\"location\": \"data:H4sIAAAAAAAA/+3OMQ6CQBCF4a1JvMOewBnYxVt4AS+wwkSzEsQIF...\", "
    "\"gzipDigest\": "
    "\"sha256:6e1d4b1f0e0c6b5a0f3f2a9d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6978879695\", \"gzipSize\": "
    "312,"
    " \"tarDigest\": \"sha256:1f0e2d3c4b5a69788796950a1b2c3d4e5f60718293a4b5c6d7e8f90112233445\","
    " \"skipHashing\": null},"
    " {\"location\": \"https://fusionfs.seqera.io/releases/pkg/2/4/20/fusion-amd64.tar.gz\","
    " \"gzipDigest\": \"sha256:ab12\xe2\x80\xa6\", \"gzipSize\": 13219265, \"tarDigest\": "
    "\"sha256:cd34\xe2\x80\xa6\", \"skipHashing\": null}]},"
    " \"containerPlatform\": \"linux/amd64\", \"buildRepository\": null, \"cacheRepository\": null,"
    " \"timestamp\": \"2024-05-01T12:00:00.123456+02:00\", \"fingerprint\": "
    "\"8f4a1c0d2b9e7f6a5c3d1e0f9a8b7c6d\", \"freeze\": false, \"format\": null, \"dryRun\": false,"
    " \"workflowId\": \"3Jx9nQ2kLp4Z7y\", \"containerIncludes\": null, \"packages\": null,"
    " \"nameStrategy\": null, \"mirror\": false, \"scanMode\": null, \"scanLevels\": null,"
    " \"buildCompression\": null, \"buildTemplate\": null}";

/* Example 2: a Wave CLI conda build (nulls omitted). */
static const char cli_conda_example[] =
    "{\"containerPlatform\": \"linux/amd64\", \"dryRun\": false, \"freeze\": false, \"mirror\": "
    "false,"
    " \"packages\": {\"type\": \"CONDA\", \"entries\": [\"bioconda::samtools=1.17\"],"
    " \"channels\": [\"conda-forge\", \"bioconda\"], \"condaOpts\": {\"mambaImage\": "
    "\"mambaorg/micromamba:1.5.10-noble\", \"basePackages\": \"conda-forge::procps-ng\", "
    "\"baseImage\": \"ubuntu:24.04\"}, \"pixiOpts\": {\"pixiImage\": "
    "\"public.cr.seqera.io/wave/pixi:0.61.0-noble\", \"basePackages\": \"conda-forge::procps-ng\","
    " \"baseImage\": \"ubuntu:24.04\"}}, \"timestamp\": \"2024-05-01T12:00:00.123456+02:00\","
    " \"towerEndpoint\": \"https://api.cloud.seqera.io\"}";

/* Example 4: freeze with a user repository. */
static const char freeze_example[] =
    "{\"containerImage\": \"ubuntu:24.04\", \"containerConfig\": {\"env\": [\"FOO=bar\"], "
    "\"layers\": []},"
    " \"containerPlatform\": \"linux/arm64\", \"buildRepository\": \"docker.io/acme/frozen\","
    " \"freeze\": true, \"mirror\": false, \"towerAccessToken\": \"" ALICE_TOKEN "\","
    " \"towerEndpoint\": \"https://api.cloud.seqera.io\"}";

TEST(example1_nextflow_nulls_parse_and_check) {
  env_t *e = env_start();
  CHECK(e);
  wv_creq_t r;
  wv_creq_plan_t plan;
  const char *msg = NULL;
  CHECK_OK(wv_creq_parse(e->a, nextflow_example, strlen(nextflow_example), 0, true, &r, &msg));
  CHECK_EQ_STR(r.container_image, "quay.io/biocontainers/samtools:1.17--h00cdaf9_0");
  CHECK(r.container_file == NULL && r.packages == NULL && r.includes == NULL && !r.freeze);
  CHECK(r.has_workspace_id);
  CHECK_EQ_INT(r.workspace_id, 123456789);
  CHECK_EQ_INT(r.cc.n_layers, 2);
  CHECK_EQ_INT(r.cc.n_cmd, 0);
  /* The example's token is not a configured account: 401 (empty body). */
  CHECK_EQ_INT(wv_creq_check(e->a, &e->cfg, &r, &plan, &msg), WV_EAUTH);
  r.tower_access_token = NULL;
  CHECK_OK(wv_creq_check(e->a, &e->cfg, &r, &plan, &msg));
  CHECK_EQ_INT(plan.kind, WV_CREQ_PLAIN);
  CHECK_EQ_STR(plan.platform, "linux/amd64");
  CHECK_EQ_STR(plan.image.registry, "quay.io");
  /* Its layers are placeholders ("sha256:ab12…"): refused before anything is stored. */
  wv_creq_result_t res;
  json_object *out = NULL;
  int rc = wv_creq_submit(&e->app, e->a, &r, &plan, NULL, wv_now_ns(), &res, &out, &msg);
  CHECK_EQ_INT(rc, WV_EINVAL);
  CHECK(msg);
  CHECK_HAS(msg, "sha256:ab12");
}

TEST(example2_cli_conda_build_is_501_after_checks) {
  env_t *e = env_start();
  CHECK(e);
  json_object *out = NULL;
  const char *msg = NULL;
  CHECK_EQ_INT(run(e, cli_conda_example, true, &out, &msg), WV_EUNSUPPORTED);
  CHECK(strncmp(msg,
                "Build service is not enabled - Check Wave configuration setting "
                "'wave.build.enabled'",
                80) == 0);
  /* The same body on v1 meets the v1 packages check first. */
  CHECK_EQ_INT(run(e, cli_conda_example, false, &out, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Attribute `packages` is not allowed");
}

TEST(example4_freeze_is_501_after_checks) {
  env_t *e = env_start();
  CHECK(e);
  json_object *out = NULL;
  const char *msg = NULL;
  CHECK_EQ_INT(run(e, freeze_example, true, &out, &msg), WV_EUNSUPPORTED);
  CHECK_HAS(msg, "Build service is not enabled");
}

/* ---- contract §3.2 messages, in order ---------------------------------------------------- */

typedef struct {
  const char *body;
  bool v2;
  int rc;
  const char *msg;
} case_t;

static const case_t cases[] = {
    /* parse */
    {"{\"containerImage\": ", true, WV_EINVAL, "Malformed request body - "},
    {"[1]", true, WV_EINVAL, "Malformed request body - expected a JSON object"},
    {"{\"containerImage\": 5}", true, WV_EINVAL,
     "Invalid request attribute `containerImage` - expected a string"},
    {"{\"freeze\": \"yes\"}", true, WV_EINVAL,
     "Invalid request attribute `freeze` - expected a boolean"},
    {"{\"containerIncludes\": \"busybox\"}", true, WV_EINVAL,
     "Invalid request attribute `containerIncludes` - expected an array of strings"},
    {"{\"scanMode\": \"ASYNC\"}", true, WV_EINVAL,
     "Invalid request attribute `scanMode` - unknown value 'ASYNC'"},
    {"{\"scanLevels\": [\"HIGH\", \"severe\"]}", true, WV_EINVAL,
     "Invalid request attribute `scanLevels` - unknown value 'severe'"},
    {"{\"towerWorkspaceId\": \"12\"}", true, WV_EINVAL,
     "Invalid request attribute `towerWorkspaceId` - expected an integer"},
    /* step 2 */
    {"{\"containerImage\": \"docker://ubuntu\"}", true, WV_EINVAL,
     "Invalid container repository name \xe2\x80\x94 offending value: 'docker://ubuntu'"},
    {"{\"containerImage\": \"ubuntu latest\"}", true, WV_EINVAL,
     "Invalid container image name \xe2\x80\x94 offending value: 'ubuntu latest'"},
    /* an invalid image and a bad build repository: the image comes first */
    {"{\"containerImage\": \"Ubuntu\", \"buildRepository\": \"https://x.io/a\"}", true, WV_EINVAL,
     "Invalid container image name \xe2\x80\x94 offending value: 'Ubuntu'"},
    {"{\"containerImage\": \"ubuntu\", \"buildRepository\": \"https://x.io/a\"}", true, WV_EINVAL,
     "Container build repository should not include any protocol prefix - offending value: "
     "'https://x.io/a'"},
    {"{\"containerImage\": \"ubuntu\", \"buildRepository\": \"x.io\"}", true, WV_EINVAL,
     "Container build repository is invalid or incomplete - offending value: 'x.io'"},
    {"{\"containerImage\": \"ubuntu\", \"cacheRepository\": \"x.io/a:tag\"}", true, WV_EINVAL,
     "Container build cache repository should not include any tag suffix - offending value: "
     "'x.io/a:tag'"},
    /* step 3 */
    {"{\"containerImage\": \"ubuntu\", \"mirror\": true}", false, WV_EINVAL,
     "Container mirroring requires the use of v2 API"},
    {"{\"mirror\": true}", true, WV_EINVAL,
     "Attribute `containerImage` is required when specifying `mirror` mode"},
    {"{\"containerImage\": \"ubuntu\", \"mirror\": true, \"freeze\": true}", true, WV_EINVAL,
     "Container mirroring requires an authenticated request - specify the tower token attribute"},
    {"{\"containerImage\": \"ubuntu\", \"mirror\": true, \"freeze\": true, \"towerAccessToken\": "
     "\"" ALICE_TOKEN "\"}",
     true, WV_EINVAL, "Attribute `mirror` and `freeze` conflict each other"},
    {"{\"containerImage\": \"ubuntu\", \"mirror\": true, \"containerIncludes\": [\"a\"], "
     "\"towerAccessToken\": \"" ALICE_TOKEN "\"}",
     true, WV_EINVAL, "Attribute `mirror` and `containerIncludes` conflict each other"},
    {"{\"containerImage\": \"ubuntu\", \"mirror\": true, \"towerAccessToken\": \"" ALICE_TOKEN
     "\"}",
     true, WV_EINVAL, "Attribute `buildRepository` is required when specifying `mirror` mode"},
    {"{\"containerImage\": \"quay.io/a/b\", \"mirror\": true, \"buildRepository\": \"quay.io/c\", "
     "\"towerAccessToken\": \"" ALICE_TOKEN "\"}",
     true, WV_EINVAL,
     "Source and target mirror registry are the same - offending value 'quay.io/c'"},
    {"{\"containerImage\": \"quay.io/a/b\", \"mirror\": true, \"buildRepository\": \"x.io/c\", "
     "\"towerAccessToken\": \"" ALICE_TOKEN "\"}",
     true, WV_EUNSUPPORTED, "Mirror requests cannot be served: no upstream registry access"},
    /* step 4: a bad token beats every later check */
    {"{\"towerAccessToken\": \"nope\", \"condaFile\": \"eA==\"}", true, WV_EAUTH, NULL},
    /* step 5 */
    {"{\"containerFile\": \"eA==\", \"packages\": {\"type\": \"CONDA\"}}", true, WV_EINVAL,
     "Attribute `containerFile` and `packages` conflicts each other"},
    {"{\"condaFile\": \"eA==\"}", true, WV_EINVAL,
     "Attribute `condaFile` is deprecated - use `packages` instead"},
    {"{\"containerImage\": \"ubuntu\", \"nameStrategy\": \"none\"}", false, WV_EINVAL,
     "Attribute `nameStrategy` is not allowed"},
    {"{\"containerFile\": \"eA==\", \"freeze\": true}", true, WV_EINVAL,
     "Attribute `buildRepository` must be specified when using freeze mode [1]"},
    {"{\"containerImage\": \"ubuntu\", \"freeze\": true}", true, WV_EINVAL,
     "Attribute `buildRepository` must be specified when using freeze mode [2]"},
    {"{\"packages\": {\"type\": \"CONDA\"}, \"freeze\": true}", true, WV_EINVAL,
     "Attribute `buildRepository` must be specified when using freeze mode [3]"},
    /* step 7 */
    {"{\"containerImage\": \"ubuntu\", \"containerPlatform\": \"linux/s390x\"}", true, WV_EINVAL,
     "Unsupported container platform: s390x"},
    {"{\"containerImage\": \"ubuntu\", \"containerPlatform\": \"linux/arm64,linux/amd64\"}", true,
     WV_EINVAL, "Only linux/amd64,linux/arm64 multi-platform combination is currently supported"},
    {"{\"containerImage\": \"ubuntu\", \"containerPlatform\": \"linux/amd64,linux/arm64\"}", true,
     WV_EINVAL, "Multi-platform builds require either 'containerFile' or 'packages' attribute"},
    {"{\"containerFile\": \"eA==\", \"containerPlatform\": \"linux/amd64,linux/arm64\", "
     "\"format\": "
     "\"sif\"}",
     true, WV_EINVAL, "Multi-platform builds are not supported for Singularity format"},
    /* step 9 */
    {"{}", true, WV_EINVAL, "Specify either 'containerImage' or 'containerFile' attribute"},
    {"{\"containerImage\": null, \"containerFile\": null}", true, WV_EINVAL,
     "Specify either 'containerImage' or 'containerFile' attribute"},
    {"{\"containerImage\": \"ubuntu\", \"containerFile\": \"eA==\"}", true, WV_EINVAL,
     "Attributes 'containerImage' and 'containerFile' cannot be used in the same request"},
    {"{\"containerImage\": \"ubuntu\", \"packages\": {\"type\": \"CONDA\"}}", true, WV_EINVAL,
     "Attributes 'containerImage' and 'containerFile' cannot be used in the same request"},
    {"{\"containerImage\": \"ubuntu@sha256:"
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", \"containerConfig\": "
     "{\"env\": [\"A=1\"]}}",
     true, WV_EINVAL,
     "Container requests made using a SHA256 as tag does not support the 'containerConfig' "
     "attribute"},
    {"{\"containerFile\": \"eA==\", \"format\": \"sif\"}", true, WV_EINVAL,
     "Singularity build is only allowed enabling freeze mode - see 'wave.freeze' setting"},
    {"{\"containerImage\": \"ubuntu\", \"scanMode\": \"required\"}", true, WV_EUNSUPPORTED,
     "Security scan service is not enabled - Check Wave configuration setting 'wave.scan.enabled' "
     "- "
     "HTTP status=501 - response=-"},
    {"{\"containerImage\": \"ubuntu\", \"containerIncludes\": "
     "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\"]}",
     true, WV_EINVAL, "The number of container inclusions cannot be greater than 10"},
    /* step 10 */
    {"{\"containerFile\": \"eA\"}", true, WV_EINVAL,
     "Invalid 'containerFile' attribute - make sure it encoded as a base64 string"},
    {"{\"containerFile\": \"RlJPTSB1YnVudHU=\"}", true, WV_EUNSUPPORTED,
     "Build service is not enabled - Check Wave configuration setting 'wave.build.enabled' - HTTP "
     "status=501 - response=-"},
    /* ours: layers are verified, includes need upstream access */
    {"{\"containerImage\": \"ubuntu\", \"containerConfig\": {\"layers\": [{\"location\": "
     "\"cas:sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", "
     "\"gzipDigest\": \"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\", "
     "\"gzipSize\": 1, \"tarDigest\": "
     "\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]}}",
     true, WV_EINVAL,
     "Invalid container layer [0] - unsupported `location`: use a data:, http(s):// or docker:// "
     "location"},
    {"{\"containerImage\": \"ubuntu\", \"containerIncludes\": [\"busybox\"]}", true, WV_EINVAL,
     "Attribute `containerIncludes` cannot be resolved: no upstream registry access"},
};

TEST(messages_in_spec_order) {
  env_t *e = env_start();
  CHECK(e);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_object *out = NULL;
    const char *msg = NULL;
    int rc = run(e, cases[i].body, cases[i].v2, &out, &msg);
    json_object_put(out);
    bool msg_ok =
        !cases[i].msg ? msg == NULL : msg && strncmp(msg, cases[i].msg, strlen(cases[i].msg)) == 0;
    if (rc != cases[i].rc || !msg_ok)
      fprintf(stderr, "  case %zu: %s\n    rc %d (want %d), msg: %s\n", i, cases[i].body, rc,
              cases[i].rc, msg ? msg : "(null)");
    CHECK_EQ_INT(rc, cases[i].rc);
    CHECK(msg_ok);
  }
}

/* A Singularity freeze with no repository goes into the embedded registry when
 * wave.build.repo is empty; with one configured it is Wave's 400, and so is a Docker freeze. */
TEST(sif_freeze_without_repository) {
  env_t e;
  CHECK_OK(env_open(&e));
  const char *sif = "{\"containerFile\": \"eA==\", \"format\": \"sif\", \"freeze\": true}";
  json_object *out = NULL;
  const char *msg = NULL;
  /* past step 5: the build service is off in this environment (step 10's 501) */
  CHECK_EQ_INT(run(&e, sif, true, &out, &msg), WV_EUNSUPPORTED);
  CHECK(msg);
  CHECK_PREFIX(msg, "Build service is not enabled");
  CHECK_EQ_INT(run(&e, "{\"containerFile\": \"eA==\", \"freeze\": true}", true, &out, &msg),
               WV_EINVAL);
  CHECK_EQ_STR(msg, "Attribute `buildRepository` must be specified when using freeze mode [1]");
  free(e.cfg.build_repo);
  e.cfg.build_repo = strdup("registry.example.com/wave/build");
  CHECK_EQ_INT(run(&e, sif, true, &out, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Attribute `buildRepository` must be specified when using freeze mode [1]");
  env_close(&e);
}

TEST(anonymous_refused_when_disabled) {
  env_t *e = env_start();
  CHECK(e);
  e->cfg.anonymous_access = false;
  json_object *out = NULL;
  const char *msg = NULL;
  /* Missing token beats the (later) missing-image message. */
  CHECK_EQ_INT(run(e, "{}", true, &out, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Missing user access token");
  CHECK_OK(run(e, "{\"containerImage\":\"alpine\",\"towerAccessToken\":\"" ALICE_TOKEN "\"}", true,
               &out, &msg));
  json_object_put(out);
  e->cfg.ephemeral_token = false;
  CHECK_EQ_INT(run(e, "{\"containerImage\":\"alpine\",\"towerAccessToken\":\"" ALICE_TOKEN "\"}",
                   true, &out, &msg),
               WV_EINVAL);
  CHECK_PREFIX(msg, "Ephemeral container provisioning is not enabled");
}

/* Mirror switched off, and the server's own build repository as a target. */
TEST(mirror_disabled_and_own_repository) {
  env_t *e = env_start();
  CHECK(e);
  const char *body =
      "{\"containerImage\": \"quay.io/a/b\", \"mirror\": true, "
      "\"buildRepository\": \"x.io/wave/build/m\", \"towerAccessToken\": \"" ALICE_TOKEN "\"}";
  json_object *out = NULL;
  const char *msg = NULL;
  free(e->cfg.build_repo);
  e->cfg.build_repo = strdup("x.io/wave/build");
  CHECK_EQ_INT(run(e, body, true, &out, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Mirror registry not allowed - offending value 'x.io/wave/build/m'");
  free(e->cfg.build_repo);
  e->cfg.build_repo = strdup("");
  e->cfg.mirror_enabled = false;
  CHECK_EQ_INT(run(e, body, true, &out, &msg), WV_EUNSUPPORTED);
  CHECK_EQ_STR(msg, "Mirror service is not enabled - Check Wave configuration setting "
                    "'wave.mirror.enabled' - HTTP status=501 - response=-");
  CHECK(out == NULL);
}

/* ---- plain requests: responses, records, tokens --------------------------------------- */

/* The v2 request of the tests below: alice's token, a timestamp with an offset, one fusion layer.
 */
#define V2_BODY                                                                                    \
  "{\"containerImage\":\"ubuntu\",\"towerAccessToken\":\"" ALICE_TOKEN                             \
  "\",\"towerEndpoint\":\"https://api.tower.nf\",\"fingerprint\":\"fp\","                          \
  "\"timestamp\":\"2024-05-01T12:00:00.123456+02:00\",\"towerWorkspaceId\":7,"                     \
  "\"containerConfig\":{\"env\":[\"A=1\"],\"layers\":[{\"location\":"                              \
  "\"https://fusionfs.seqera.io/releases/pkg/2/4/20/fusion-amd64.tar.gz\","                        \
  "\"gzipDigest\":\"sha256:"                                                                       \
  "aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11aa11"                               \
  "\",\"gzipSize\":10,\"tarDigest\":\"sha256:"                                                     \
  "bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22bb22\"}]}}"

static void put_json(void *o) { json_object_put(o); }

/* Submits body as a v2 request: its response (freed when the test returns) or NULL. */
static json_object *submit_v2(env_t *e, const char *body) {
  json_object *out = NULL;
  const char *msg = NULL;
  if (run(e, body, true, &out, &msg) != 0)
    return NULL;
  TEST_CLEANUP(put_json, out);
  return out;
}

/* The token record of a response's requestId, as the proxy reads it (e's arena). */
static int token_record(env_t *e, const char *tok, wv_token_rec_t *t, int64_t *exp_ms) {
  char *val = NULL;
  size_t len = 0;
  int rc = wv_store_get(e->app.store, WV_DB_TOKENS, tok, &val, &len, exp_ms);
  rc = rc ? rc : wv_token_decode(e->a, val, len, t);
  free(val);
  return rc;
}

TEST(v2_response) {
  env_t *e = env_start();
  CHECK(e);
  int64_t before = wv_now_ns();
  json_object *out = submit_v2(e, V2_BODY);
  CHECK(out);
  const char *tok = jstr(out, "requestId");
  CHECK(tok);
  CHECK_EQ_INT(strlen(tok), 12);
  CHECK_EQ_STR(jstr(out, "containerToken"), tok);
  char want[128];
  snprintf(want, sizeof want, "wave.example.com/wt/%s/library/ubuntu:latest", tok);
  CHECK_EQ_STR(jstr(out, "targetImage"), want);
  CHECK_EQ_STR(jstr(out, "containerImage"), "docker.io/library/ubuntu:latest");
  bool b = false;
  CHECK(wv_json_get_bool(out, "freeze", &b) == 0 && !b);
  CHECK(wv_json_get_bool(out, "mirror", &b) == 0 && !b);
  CHECK(wv_json_get_bool(out, "succeeded", &b) == 0 && b);
  CHECK(!json_object_object_get_ex(out, "buildId", NULL));
  CHECK(!json_object_object_get_ex(out, "cached", NULL));
  CHECK(!json_object_object_get_ex(out, "scanId", NULL));
  int64_t exp = 0;
  CHECK_OK(wv_time_parse_iso(jstr(out, "expiration"), &exp));
  int64_t ttl = 36LL * 3600 * WV_NS_PER_S;
  CHECK(exp >= before + ttl && exp <= wv_now_ns() + ttl);
}

/* The token record: what the proxy reads. */
TEST(v2_token_record) {
  env_t *e = env_start();
  CHECK(e);
  json_object *out = submit_v2(e, V2_BODY);
  CHECK(out);
  wv_token_rec_t t;
  int64_t exp_ms = 0, exp = 0;
  CHECK_OK(token_record(e, jstr(out, "requestId"), &t, &exp_ms));
  CHECK_EQ_STR(t.registry, "docker.io");
  CHECK_EQ_STR(t.image, "library/ubuntu");
  CHECK_EQ_STR(t.reference, "latest");
  CHECK_EQ_STR(t.user, "alice");
  CHECK_EQ_STR(t.platform, "linux/amd64");
  CHECK_HAS(t.cc_json, "\"env\":[\"A=1\"]");
  CHECK_EQ_INT(exp_ms, t.expires_ms);
  CHECK_OK(wv_time_parse_iso(jstr(out, "expiration"), &exp));
  CHECK_EQ_INT(t.expires_ms, exp / WV_NS_PER_MS);
}

/* The persisted record (contract §3.5) and its description (§3.4). */
TEST(v2_persisted_record) {
  env_t *e = env_start();
  CHECK(e);
  json_object *out = submit_v2(e, V2_BODY);
  CHECK(out);
  const char *tok = jstr(out, "requestId");
  wv_token_rec_t t;
  CHECK_OK(token_record(e, tok, &t, NULL));
  char *val = NULL;
  size_t len = 0;
  int64_t exp_ms = 0;
  CHECK_OK(wv_store_get(e->app.store, WV_DB_REQUESTS, tok, &val, &len, &exp_ms));
  CHECK(exp_ms >= t.created_ms + 29LL * 24 * 3600 * 1000);
  json_object *rec = NULL;
  char err[64];
  int rc = wv_json_parse(val, len, len + 1, 0, &rec, err, sizeof err);
  free(val);
  CHECK_OK(rc);
  TEST_CLEANUP(put_json, rec);
  CHECK_EQ_STR(jstr(rec, "id"), tok);
  CHECK_EQ_STR(jstr(rec, "containerImage"), "ubuntu");
  CHECK_EQ_STR(jstr(rec, "sourceImage"), "docker.io/library/ubuntu:latest");
  CHECK_EQ_STR(jstr(rec, "waveImage"), jstr(out, "targetImage"));
  CHECK_EQ_STR(jstr(rec, "towerEndpoint"), "https://api.cloud.seqera.io");
  CHECK_EQ_STR(jstr(rec, "zoneId"), "+02:00");
  CHECK_EQ_STR(jstr(rec, "ipAddress"), "203.0.113.7");
  CHECK_EQ_STR(jstr(rec, "fusionVersion"), "2.4.20");
  CHECK(!json_object_object_get_ex(rec, "buildId", NULL));
  json_object *user = NULL;
  CHECK(wv_json_get_object(rec, "user", &user) == 0);
  CHECK_EQ_STR(jstr(user, "id"), "alice");
  json_object *d = wv_record_describe(rec);
  CHECK(d);
  TEST_CLEANUP(put_json, d);
  json_object *req = NULL, *src = NULL;
  CHECK(wv_json_get_object(d, "request", &req) == 0 && wv_json_get_object(d, "source", &src) == 0);
  CHECK_EQ_STR(jstr(d, "token"), tok);
  CHECK_EQ_STR(jstr(req, "platform"), "linux/amd64");
  CHECK_EQ_STR(jstr(src, "image"), "docker.io/library/ubuntu:latest");
}

/* The status (contract §3.6), 1.5 s after the request. */
TEST(v2_status) {
  env_t *e = env_start();
  CHECK(e);
  json_object *out = submit_v2(e, V2_BODY);
  CHECK(out);
  wv_token_rec_t t;
  CHECK_OK(token_record(e, jstr(out, "requestId"), &t, NULL));
  json_object *st = wv_record_status(&t, t.created_ms * WV_NS_PER_MS + 1500 * WV_NS_PER_MS);
  CHECK(st);
  TEST_CLEANUP(put_json, st);
  CHECK_EQ_STR(jstr(st, "status"), "DONE");
  CHECK_HAS(wv_json_compact(st), "\"duration\":1.500000000");
  bool b = false;
  CHECK(wv_json_get_bool(st, "succeeded", &b) == 0 && b);
}

TEST(v1_response_omits_v2_fields) {
  env_t *e = env_start();
  CHECK(e);
  json_object *out = NULL;
  const char *msg = NULL;
  /* CLI style: nulls omitted. */
  CHECK_OK(run(e,
               "{\"containerImage\":\"quay.io/org/img@sha256:"
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}",
               false, &out, &msg));
  const char *tok = jstr(out, "requestId");
  CHECK(tok);
  CHECK_EQ_STR(jstr(out, "containerToken"), tok);
  CHECK(jstr(out, "expiration"));
  char want[200];
  snprintf(want, sizeof want,
           "wave.example.com/wt/%s/org/img@sha256:"
           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
           tok);
  CHECK_EQ_STR(jstr(out, "targetImage"), want);
  static const char *const absent[] = {"freeze",  "mirror", "succeeded",
                                       "buildId", "cached", "scanId"};
  for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
    CHECK(!json_object_object_get_ex(out, absent[i], NULL));
  /* No containerConfig: a pure pass-through token. */
  char *val = NULL;
  size_t len = 0;
  CHECK_OK(wv_store_get(e->app.store, WV_DB_TOKENS, tok, &val, &len, NULL));
  wv_token_rec_t t;
  CHECK_OK(wv_token_decode(e->a, val, len, &t));
  free(val);
  CHECK(t.cc_json == NULL && t.user == NULL);
  json_object_put(out);
}

TEST(tokens_are_random_alnum_and_unique) {
  env_t *e = env_start();
  CHECK(e);
  enum { N = 200 };
  static char seen[N][65];
  for (int i = 0; i < N; i++) {
    json_object *out = NULL;
    const char *msg = NULL;
    if (i == N / 2)
      e->cfg.token_length = 20;
    CHECK_OK(run(e, "{\"containerImage\":\"alpine:3.19\"}", true, &out, &msg));
    const char *tok = jstr(out, "requestId");
    CHECK(tok);
    CHECK_EQ_INT(strlen(tok), (i < N / 2 ? 12u : 20u));
    CHECK(strspn(tok, "0123456789abcdefghijklmnopqrstuvwxyz") == strlen(tok));
    for (int j = 0; j < i; j++)
      CHECK(strcmp(seen[j], tok) != 0);
    snprintf(seen[i], sizeof seen[i], "%s", tok);
    json_object_put(out);
  }
}

/* ---- data: layers ----------------------------------------------------------------------- */

typedef struct {
  char *b64;
  char gz_digest[WV_DIGEST_STRLEN], tar_digest[WV_DIGEST_STRLEN];
  size_t gz_len;
} layer_t;

/* A gzip of n pseudo-random-ish bytes, base64 encoded. */
static int make_layer(layer_t *l, size_t n) {
  unsigned char *tar = malloc(n), *gz = malloc(n + 1024);
  for (size_t i = 0; i < n; i++)
    tar[i] = (unsigned char)((i * 7) ^ (i >> 5));
  z_stream z = {0};
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return -1;
  z.next_in = tar;
  z.avail_in = (uInt)n;
  z.next_out = gz;
  z.avail_out = (uInt)(n + 1024);
  if (deflate(&z, Z_FINISH) != Z_STREAM_END)
    return -1;
  l->gz_len = z.total_out;
  deflateEnd(&z);
  wv_digest_of(tar, n, l->tar_digest);
  wv_digest_of(gz, l->gz_len, l->gz_digest);
  l->b64 = malloc(4 * ((l->gz_len + 2) / 3) + 1);
  EVP_EncodeBlock((unsigned char *)l->b64, gz, (int)l->gz_len);
  free(tar);
  free(gz);
  return 0;
}

static char *layer_body(const layer_t *l, const char *location, const char *gz_digest,
                        long long size, const char *tar_digest) {
  size_t cap = strlen(l->b64) + 1024;
  char *b = malloc(cap);
  snprintf(b, cap,
           "{\"containerImage\":\"busybox\",\"containerConfig\":{\"layers\":["
           "{\"location\":\"https://example.com/x.tar.gz\",\"gzipDigest\":\"%s\",\"gzipSize\":1,"
           "\"tarDigest\":\"%s\"},"
           "{\"location\":\"%s\",\"gzipDigest\":\"%s\",\"gzipSize\":%lld,\"tarDigest\":\"%s\"}]}}",
           l->gz_digest, l->tar_digest, location, gz_digest, size, tar_digest);
  return b;
}

/* A layer of n bytes and its data: location, freed when the test returns; NULL if it cannot be
 * made. */
typedef struct {
  layer_t l;
  char *loc;
} data_layer_t;

static void data_layer_free(data_layer_t *d) {
  free(d->l.b64);
  free(d->loc);
  free(d);
}

static data_layer_t *data_layer_start(size_t n) {
  data_layer_t *d = calloc(1, sizeof *d);
  if (!d || make_layer(&d->l, n)) {
    free(d);
    return NULL;
  }
  TEST_CLEANUP(data_layer_free, d);
  d->loc = malloc(strlen(d->l.b64) + 8);
  if (d->loc)
    sprintf(d->loc, "data:%s", d->l.b64);
  return d->loc ? d : NULL;
}

/* Runs a request with the layer (location, digests, size as given): rc, *out (freed with the test).
 */
static int run_layer(env_t *e, const layer_t *l, const char *loc, const char *gz, long long size,
                     const char *tar, json_object **out, const char **msg) {
  char *body = layer_body(l, loc, gz, size, tar);
  *out = NULL;
  *msg = NULL;
  int rc = body ? run(e, body, true, out, msg) : WV_ENOMEM;
  free(body);
  if (*out)
    TEST_CLEANUP(put_json, *out);
  return rc;
}

/* run_layer with the data layer's own location, digest and size: only its tarDigest varies. */
static int run_data_layer(env_t *e, const data_layer_t *d, const char *tar, json_object **out,
                          const char **msg) {
  const layer_t *l = &d->l;
  return run_layer(e, l, d->loc, l->gz_digest, (long long)l->gz_len, tar, out, msg);
}

#define OTHER_DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000000"

TEST(data_layer_refusals) {
  env_t *e = env_start();
  data_layer_t *d = data_layer_start(300000); /* several decode and inflate chunks */
  CHECK(e && d);
  const layer_t *l = &d->l;
  struct {
    const char *loc, *gz;
    long long size;
    const char *tar, *msg;
  } bad[] = {
      {d->loc, OTHER_DIGEST, (long long)l->gz_len, l->tar_digest,
       "Invalid container layer [1] - `gzipDigest` is sha256:0000"},
      {d->loc, l->gz_digest, (long long)l->gz_len + 1, l->tar_digest,
       "Invalid container layer [1] - `gzipSize` is"},
      {d->loc, l->gz_digest, (long long)l->gz_len, OTHER_DIGEST,
       "Invalid container layer [1] - `tarDigest` is sha256:0000"},
      {"data:not*base64", l->gz_digest, (long long)l->gz_len, l->tar_digest,
       "Invalid container layer [1] - `location` is not valid base64 data"},
      /* base64 of "hello" with its right size and digest: not gzip */
      {"data:aGVsbG8=", "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
       5, l->tar_digest, "Invalid container layer [1] - `location` is not gzip data"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_object *out;
    const char *msg;
    CHECK_EQ_INT(run_layer(e, l, bad[i].loc, bad[i].gz, bad[i].size, bad[i].tar, &out, &msg),
                 WV_EINVAL);
    CHECK_HAS(msg, bad[i].msg);
    CHECK_EQ_INT(wv_cas_exists(e->app.cas, l->gz_digest, NULL), WV_ENOTFOUND);
  }
}

/* The good layer: stored in the blob store, referenced as cas: by the token, omitted from the
 * persisted record. */
TEST(data_layer_stored) {
  env_t *e = env_start();
  data_layer_t *d = data_layer_start(300000);
  CHECK(e && d);
  const layer_t *l = &d->l;
  json_object *out;
  const char *msg;
  CHECK_OK(run_data_layer(e, d, l->tar_digest, &out, &msg));
  uint64_t size = 0;
  CHECK_OK(wv_cas_exists(e->app.cas, l->gz_digest, &size));
  CHECK_EQ_INT(size, l->gz_len);
  wv_token_rec_t t;
  CHECK_OK(token_record(e, jstr(out, "requestId"), &t, NULL));
  char cas[100];
  snprintf(cas, sizeof cas, "\"location\":\"cas:%s\"", l->gz_digest);
  CHECK_HAS(t.cc_json, cas);
  CHECK_HAS(t.cc_json, "https://example.com/x.tar.gz");
  CHECK_LACKS(t.cc_json, "data:");
  wv_container_config_t cc;
  const char *m = NULL;
  CHECK_OK(wv_container_config_parse(e->a, t.cc_json, strlen(t.cc_json), &cc, &m));
  CHECK_EQ_INT(cc.n_layers, 2);
  CHECK_EQ_INT(cc.layers[1].gzip_size, l->gz_len);
  char *val = NULL;
  size_t len = 0;
  CHECK_OK(wv_store_get(e->app.store, WV_DB_REQUESTS, jstr(out, "requestId"), &val, &len, NULL));
  TEST_CLEANUP(free, val);
  CHECK_HAS(val, "\"location\":\"data:DATA+OMITTED\"");
  CHECK_LACKS(val, l->b64);
}

/* Verified once, the same bytes are not inflated again (app->layer_memo) — but a wrong
 * tarDigest with them is still refused. */
TEST(data_layer_verified_once) {
  env_t *e = env_start();
  data_layer_t *d = data_layer_start(300000);
  CHECK(e && d);
  const layer_t *l = &d->l;
  json_object *out;
  const char *msg;
  for (int i = 0; i < 2; i++)
    CHECK_OK(run_data_layer(e, d, l->tar_digest, &out, &msg));
  CHECK_EQ_INT(run_data_layer(e, d, OTHER_DIGEST, &out, &msg), WV_EINVAL);
  CHECK_HAS(msg, "`tarDigest` is sha256:0000");
}

/* ---- on the IO loop (wv_creq_handle_flags, WV_CREQ_ON_LOOP) ------------------------------ */

/* What a parked request's done callback got; it runs on the store's committer thread. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int calls, rc;
  char token[64];
} parked_t;

static void parked_cb(void *arg, int rc, json_object *resp) {
  parked_t *p = arg;
  const char *t = NULL;
  pthread_mutex_lock(&p->mu);
  p->calls++;
  p->rc = rc;
  if (resp && wv_json_get_str(resp, "requestId", &t) == 0)
    snprintf(p->token, sizeof p->token, "%s", t);
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  json_object_put(resp);
}

/* Runs body with flags; a parked request is waited for (*p filled). */
static int run_flags(env_t *e, const char *body, unsigned *flags, parked_t *p, const char **msg) {
  json_object *out = NULL;
  *msg = NULL;
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  int rc = wv_creq_handle_flags(&e->app, e->a, body, strlen(body), true, "203.0.113.7", &out, msg,
                                NULL, parked_cb, p, flags);
  pthread_mutex_lock(&p->mu);
  while (rc == WV_PARKED && p->calls == 0)
    pthread_cond_wait(&p->cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
  json_object_put(out);
  return rc;
}

/*
 * A request whose data: layer was never verified is deferred by the loop before anything is
 * inflated or stored, with its pull permit noted as taken; on a worker it is verified, stored and
 * parked; the same request then parks on the loop itself. A wrong digest is still refused on
 * the loop, and a build request is deferred before its permit.
 */
TEST(loop_handles_what_was_seen_and_defers_the_rest) {
  env_t *e = env_start();
  data_layer_t *d = data_layer_start(3000);
  CHECK(e && d);
  const layer_t *l = &d->l;
  char *body = layer_body(l, d->loc, l->gz_digest, (long long)l->gz_len, l->tar_digest);
  CHECK(body);
  TEST_CLEANUP(free, body);
  parked_t p;
  const char *msg;
  unsigned flags = WV_CREQ_ON_LOOP;
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_DEFER);
  CHECK_EQ_INT(wv_cas_exists(e->app.cas, l->gz_digest, NULL), WV_ENOTFOUND);
  flags = 0; /* the worker's run */
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_PARKED);
  CHECK_EQ_INT(p.calls, 1);
  CHECK_OK(p.rc);
  CHECK_OK(wv_cas_exists(e->app.cas, l->gz_digest, NULL));
  wv_token_rec_t t;
  CHECK_OK(token_record(e, p.token, &t, NULL));
  flags = WV_CREQ_ON_LOOP; /* seen now: handled on the loop, durable when done runs */
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_PARKED);
  CHECK_OK(p.rc);
  CHECK_OK(token_record(e, p.token, &t, NULL));
  /* The gzip bytes are hashed on the loop: another gzipDigest is refused there. */
  char *bad = layer_body(l, d->loc, OTHER_DIGEST, (long long)l->gz_len, l->tar_digest);
  CHECK(bad);
  TEST_CLEANUP(free, bad);
  flags = WV_CREQ_ON_LOOP;
  CHECK_EQ_INT(run_flags(e, bad, &flags, &p, &msg), WV_EINVAL);
  CHECK_HAS(msg, "`gzipDigest` is sha256:0000");
  /* Another tarDigest needs the layer inflated: that is a worker's. */
  char *bad_tar = layer_body(l, d->loc, l->gz_digest, (long long)l->gz_len, OTHER_DIGEST);
  CHECK(bad_tar);
  TEST_CLEANUP(free, bad_tar);
  flags = WV_CREQ_ON_LOOP;
  CHECK_EQ_INT(run_flags(e, bad_tar, &flags, &p, &msg), WV_DEFER);
  flags = WV_CREQ_ON_LOOP;
  CHECK_EQ_INT(run_flags(e, cli_conda_example, &flags, &p, &msg), WV_DEFER);
  /* Too large a body for the loop: deferred unread. */
  char *big = calloc(1, WV_CREQ_INLINE_MAX_BODY + 2);
  CHECK(big);
  TEST_CLEANUP(free, big);
  memset(big, ' ', WV_CREQ_INLINE_MAX_BODY + 1);
  flags = WV_CREQ_ON_LOOP;
  CHECK_EQ_INT(run_flags(e, big, &flags, &p, &msg), WV_DEFER);
}

/* A shared (cluster) bucket standing in for Redis: it only counts that it was asked. */
static int count_shared(void *arg, const char *key, int64_t iv, int64_t burst, bool take,
                        int64_t *ahead) {
  (void)key, (void)iv, (void)burst, (void)take;
  (*(int *)arg)++;
  *ahead = 0;
  return 0;
}

/*
 * A request the loop defers carries no pull permit: one it took is given back, and the worker's
 * run takes its own. Three deferrals that no worker runs (what a full worker queue answers with
 * 503) cost nothing: the address still has its two permits, for two worker runs, and then 429.
 * With cluster-wide (Redis) buckets the loop defers before any permit is asked for.
 */
TEST(loop_deferral_costs_no_permit) {
  env_t *e = env_start();
  data_layer_t *d = data_layer_start(2000);
  CHECK(e && d);
  wv_ratelimit_rate_t two = {2, 3600000}, off = {0, 0};
  CHECK_OK(wv_ratelimit_new("pull", two, off, 64, &e->app.pull_limit));
  TEST_CLEANUP(wv_ratelimit_free, e->app.pull_limit);
  const layer_t *l = &d->l;
  char *body = layer_body(l, d->loc, l->gz_digest, (long long)l->gz_len, l->tar_digest);
  CHECK(body);
  TEST_CLEANUP(free, body);
  parked_t p;
  const char *msg;
  unsigned flags;
  for (int i = 0; i < 3; i++) { /* its layer was never verified: deferred, after the permit */
    flags = WV_CREQ_ON_LOOP;
    CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_DEFER);
  }
  for (int i = 0; i < 2; i++) {
    flags = 0; /* a worker's run */
    CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_PARKED);
    CHECK_OK(p.rc);
  }
  flags = WV_CREQ_ON_LOOP; /* verified now, but the address is out of permits: 429 at once */
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_EBUSY);
  CHECK_HAS(msg, "Request exceeded pull rate limit for IP 203.0.113.7");
  /* Cluster-wide buckets: the loop never asks them (a round trip); the worker does. */
  wv_ratelimit_t *shared = NULL;
  CHECK_OK(wv_ratelimit_new("pull", two, off, 64, &shared));
  TEST_CLEANUP(wv_ratelimit_free, shared);
  int asked = 0;
  wv_ratelimit_share(shared, count_shared, &asked);
  e->app.pull_limit = shared;
  flags = WV_CREQ_ON_LOOP;
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_DEFER);
  CHECK_EQ_INT(asked, 0);
  CHECK_OK(wv_ratelimit_peek(shared, NULL, "203.0.113.7", NULL));
  flags = 0;
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_PARKED);
  CHECK_EQ_INT(asked, 1);
}

/* A towerAccessToken is checked on the loop against fast (legacy SHA-256) account values only:
 * with a salted, slow one configured it goes to a worker, before its permit. */
TEST(loop_defers_slow_account_hashes) {
  env_t *e = env_start();
  CHECK(e);
  const char *body = "{\"containerImage\":\"busybox\",\"towerAccessToken\":\"" ALICE_TOKEN "\"}";
  parked_t p;
  const char *msg;
  unsigned flags = WV_CREQ_ON_LOOP; /* alice's value is the legacy form: decided at once */
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_PARKED);
  CHECK_OK(p.rc);
  char slow[256];
  CHECK_OK(wv_secret_hash(ALICE_TOKEN, 1000, slow, sizeof slow));
  free(e->cfg.accounts.values[0]);
  e->cfg.accounts.values[0] = strdup(slow);
  flags = WV_CREQ_ON_LOOP;
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_DEFER);
  flags = 0; /* the worker's run verifies it */
  CHECK_EQ_INT(run_flags(e, body, &flags, &p, &msg), WV_PARKED);
  CHECK_OK(p.rc);
}

/*
 * A layer verified and seen in the CAS is not looked up there again (no stat per request) until
 * this process removes a blob: then the next request finds it gone and stores it again.
 */
TEST(data_layer_restored_after_a_removal) {
  env_t *e = env_start();
  data_layer_t *d = data_layer_start(3000);
  CHECK(e && d);
  const layer_t *l = &d->l;
  json_object *out;
  const char *msg;
  for (int i = 0; i < 3; i++)
    CHECK_OK(run_data_layer(e, d, l->tar_digest, &out, &msg));
  uint64_t before = wv_cas_removals(e->app.cas);
  CHECK_OK(wv_cas_delete(e->app.cas, l->gz_digest));
  CHECK_EQ_INT(wv_cas_removals(e->app.cas), before + 1);
  CHECK_EQ_INT(wv_cas_exists(e->app.cas, l->gz_digest, NULL), WV_ENOTFOUND);
  CHECK_OK(run_data_layer(e, d, l->tar_digest, &out, &msg));
  uint64_t size = 0;
  CHECK_OK(wv_cas_exists(e->app.cas, l->gz_digest, &size));
  CHECK_EQ_INT(size, l->gz_len);
}

/* A gzip bomb made cheaply: `members` concatenated gzip members of 1 MiB of zeros each. */
static int make_bomb(layer_t *l, size_t members) {
  size_t n = 1 << 20;
  unsigned char *zeros = calloc(1, n), one[4096];
  z_stream z = {0};
  if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return -1;
  z.next_in = zeros;
  z.avail_in = (uInt)n;
  z.next_out = one;
  z.avail_out = sizeof one;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END)
    return -1;
  size_t m = z.total_out;
  deflateEnd(&z);
  l->gz_len = m * members;
  unsigned char *gz = malloc(l->gz_len);
  for (size_t i = 0; i < members; i++)
    memcpy(gz + i * m, one, m);
  wv_digest_of(gz, l->gz_len, l->gz_digest);
  snprintf(l->tar_digest, sizeof l->tar_digest, "sha256:%064d", 0);
  l->b64 = malloc(4 * ((l->gz_len + 2) / 3) + 8);
  memcpy(l->b64, "data:", 5);
  EVP_EncodeBlock((unsigned char *)l->b64 + 5, gz, (int)l->gz_len);
  free(gz);
  free(zeros);
  return 0;
}

/* Runs wv_layers_verify_data on the bomb; returns the milliseconds it took. */
static int64_t verify_ms(wv_arena_t *a, const wv_config_t *cfg, const layer_t *l, long long size,
                         const char *gz_digest, const char **msg) {
  wv_container_layer_t cl = {
      .location = l->b64, .gzip_digest = gz_digest, .gzip_size = size, .tar_digest = l->tar_digest};
  int64_t t0 = wv_mono_ns();
  *msg = NULL;
  int rc = wv_layers_verify_data(a, NULL, NULL, cfg, 0, &cl, msg);
  return rc == WV_EINVAL ? (wv_mono_ns() - t0) / 1000000 : -1;
}

TEST(data_layer_bomb_cheap_checks_first) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  layer_t l;
  CHECK_OK(make_bomb(&l, 1024)); /* 1 GiB of zeros in about 1 MB */
  const char *msg = NULL;
  /* A wrong gzipSize or gzipDigest is noticed without inflating anything. */
  int64_t ms = verify_ms(a, NULL, &l, (long long)l.gz_len + 1, l.gz_digest, &msg);
  CHECK(ms >= 0 && ms < WV_TEST_MS(150));
  CHECK(msg);
  CHECK_HAS(msg, "`gzipSize` is");
  static const char other[] =
      "sha256:0000000000000000000000000000000000000000000000000000000000000000";
  ms = verify_ms(a, NULL, &l, (long long)l.gz_len, other, &msg);
  CHECK(ms >= 0 && ms < WV_TEST_MS(150));
  CHECK(msg);
  CHECK_HAS(msg, "`gzipDigest` is");
  /* Right size and digest: inflated only up to ratio x size + 1 MiB, then refused. */
  CHECK_EQ_INT(wv_layers_inflate_budget(NULL, l.gz_len), 100 * l.gz_len + (1 << 20));
  ms = verify_ms(a, NULL, &l, (long long)l.gz_len, l.gz_digest, &msg);
  CHECK(ms >= 0);
  if (msg)
    fprintf(stderr, "  %s (%lld ms)\n", msg, (long long)ms);
  CHECK(msg);
  CHECK_HAS(msg, "the uncompressed layer exceeds its budget of");
  /* The absolute cap wins over the ratio, and both come from the config. */
  wv_config_t cfg = {.data_layer_max_inflated = 4 << 20, .data_layer_max_ratio = 1000};
  CHECK_EQ_INT(wv_layers_inflate_budget(&cfg, l.gz_len), 4 << 20);
  CHECK_EQ_INT(wv_layers_inflate_budget(&cfg, 1000), 1000 * 1000 + (1 << 20));
  CHECK_EQ_INT(wv_layers_inflate_budget(&cfg, UINT64_MAX / 2), 4 << 20);
  ms = verify_ms(a, &cfg, &l, (long long)l.gz_len, l.gz_digest, &msg);
  CHECK(msg);
  CHECK_HAS(msg, "budget of 4194304 bytes");
  free(l.b64);
}

TEST(layer_size_limit) {
  env_t *e = env_start();
  CHECK(e);
  e->cfg.max_data_layer_size = 10;
  json_object *out = NULL;
  const char *msg = NULL;
  CHECK_EQ_INT(run(e,
                   "{\"containerImage\":\"ubuntu\",\"containerConfig\":{\"layers\":"
                   "[{\"location\":\"data:AAAAAAAAAAAA\"}]}}",
                   true, &out, &msg),
               WV_EINVAL);
  CHECK_EQ_STR(msg, "Container layer exceeds the maximum allowed size");
}

TEST(base64_and_helpers) {
  CHECK_EQ_INT(wv_base64_decoded_len("", 0), 0);
  CHECK_EQ_INT(wv_base64_decoded_len("aGVsbG8=", 8), 5);
  CHECK_EQ_INT(wv_base64_decoded_len("aGVsbA==", 8), 4);
  CHECK_EQ_INT(wv_base64_decoded_len("aGVsbG8", 7), -1);
  CHECK_EQ_INT(wv_base64_decoded_len("aGV=bG8=", 8), -1);
  CHECK_EQ_INT(wv_base64_decoded_len("aGVs bG8", 8), -1);
  /* Spare bits: a text that would not re-encode to itself (Wave's round-trip check). */
  CHECK(wv_base64_canonical("aGVsbG8=", 8) && wv_base64_canonical("aGVsbA==", 8));
  CHECK(!wv_base64_canonical("aGVsbG9=", 8) && !wv_base64_canonical("aGVsbB==", 8));
  CHECK(wv_base64_canonical("aGVs", 4) && wv_base64_canonical("", 0));
  wv_arena_t *a = wv_arena_new(0);
  char *out = NULL;
  size_t n = 0;
  CHECK_OK(wv_base64_decode(a, "YWxpY2U6cHc=", 12, &out, &n));
  CHECK_EQ_STR(out, "alice:pw");
  CHECK_EQ_STR(wv_record_zone_id(a, "2024-05-01T12:00:00Z"), "Z");
  CHECK_EQ_STR(wv_record_zone_id(a, "2024-05-01T12:00-05:30"), "-05:30");
  CHECK(wv_record_zone_id(a, "yesterday") == NULL);
  wv_arena_free(a);
  env_t *e = env_start();
  CHECK(e);
  CHECK(wv_secret_account_check(&e->cfg, "alice", ALICE_TOKEN));
  CHECK(!wv_secret_account_check(&e->cfg, "alice", "wrong"));
  CHECK(!wv_secret_account_check(&e->cfg, "bob", ALICE_TOKEN));
  CHECK_EQ_STR(wv_secret_account_for_token(&e->cfg, ALICE_TOKEN), "alice");
  CHECK(wv_secret_account_for_token(&e->cfg, "x") == NULL);
  /* The salted form works the same way, for Basic and for towerAccessToken. */
  char stored[WV_SECRET_MAX_LEN];
  CHECK_OK(wv_secret_hash(ALICE_TOKEN, 1000, stored, sizeof stored));
  free(e->cfg.accounts.values[0]);
  e->cfg.accounts.values[0] = strdup(stored);
  CHECK(wv_secret_account_check(&e->cfg, "alice", ALICE_TOKEN));
  CHECK(!wv_secret_account_check(&e->cfg, "alice", "wrong"));
  CHECK(!wv_secret_account_check(&e->cfg, "bob", ALICE_TOKEN));
  CHECK_EQ_STR(wv_secret_account_for_token(&e->cfg, ALICE_TOKEN), "alice");
  CHECK(wv_secret_account_for_token(&e->cfg, "x") == NULL);
}

WV_TESTS(T(example1_nextflow_nulls_parse_and_check),
         T(example2_cli_conda_build_is_501_after_checks), T(example4_freeze_is_501_after_checks),
         T(messages_in_spec_order), T(sif_freeze_without_repository),
         T(anonymous_refused_when_disabled), T(mirror_disabled_and_own_repository), T(v2_response),
         T(v2_token_record), T(v2_persisted_record), T(v2_status), T(v1_response_omits_v2_fields),
         T(tokens_are_random_alnum_and_unique), T(data_layer_refusals), T(data_layer_stored),
         T(data_layer_verified_once), T(data_layer_bomb_cheap_checks_first), T(layer_size_limit),
         T(loop_handles_what_was_seen_and_defers_the_rest), T(data_layer_restored_after_a_removal),
         T(loop_defers_slow_account_hashes), T(loop_deferral_costs_no_permit),
         T(base64_and_helpers))
