/* Unit tests for build/builder: template rendering, steps, auth files. */
#include "build/builder.h"
#include "core/err.h"
#include "runner.h"
#include "storage_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const wv_builder_target_t embedded_target = {
    .workspace = "/ws", .workdir = "/ws/bd-1", .platform = "linux/amd64", .tag = "abc"};
static const wv_builder_target_t repo_target = {.workspace = "/ws",
                                                .workdir = "/ws/bd-1",
                                                .platform = "linux/arm64",
                                                .repo = "127.0.0.1:5000/wave/build",
                                                .tag = "abc",
                                                .insecure = true};

/* argv joined by single spaces. */
static const char *joined(wv_arena_t *a, const char *const *argv) {
  wv_buf_t b;
  wv_buf_init(&b, 1 << 16);
  for (size_t i = 0; argv[i]; i++)
    if (wv_buf_printf(&b, "%s%s", i ? " " : "", argv[i]))
      break;
  const char *s = wv_arena_strdup(a, b.data ? b.data : "");
  wv_buf_free(&b);
  return s;
}

/* The configuration, builder and arena of a test, freed when the test returns. */
typedef struct {
  wv_config_t cfg;
  wv_builder_t b;
  wv_arena_t *a;
} bfx_t;

static void bfx_free(bfx_t *f) {
  wv_arena_free(f->a);
  wv_config_free(&f->cfg);
  free(f);
}

static bfx_t *bfx_start(void) {
  bfx_t *f = calloc(1, sizeof *f);
  if (!f || !(f->a = wv_arena_new(0))) {
    free(f);
    return NULL;
  }
  TEST_CLEANUP(bfx_free, f);
  return f;
}

/* Into the embedded registry: build, push to an OCI layout, import, and the cache steps. */
TEST(default_buildah_templates) {
  wv_job_step_t steps[WV_BUILDER_MAX_STEPS];
  size_t n;
  char err[256];
  bfx_t *f = bfx_start();
  CHECK(f);
  wv_arena_t *a = f->a;
  CHECK_OK(wv_config_defaults(&f->cfg));
  CHECK_OK(wv_builder_from_config(&f->cfg, &f->b));
  CHECK_EQ_INT(f->b.kind, WV_BUILDER_BUILDAH);
  CHECK_OK(wv_builder_steps(a, &f->b, &embedded_target, steps, &n, err, sizeof err));
  CHECK_EQ_INT(n, 6);
  /* {storage-driver}: vfs when the target names none; {layers} from the target. */
  const char *B =
      "buildah --root /ws/buildah/root --runroot /ws/buildah/runroot --storage-driver vfs";
  CHECK_EQ_STR(joined(a, steps[0].argv),
               wv_arena_sprintf(
                   a,
                   "%s build --layers=false --pull=always --isolation chroot --runtime "
                   "/usr/sbin/runc --tls-verify=true --authfile /ws/bd-1/config.json --platform "
                   "linux/amd64 -f /ws/bd-1/Containerfile -t "
                   "localhost/wave/build:abc /ws/bd-1/context",
                   B));
  CHECK_EQ_STR(joined(a, steps[1].argv),
               wv_arena_sprintf(a,
                                "%s push --tls-verify=true --authfile /ws/bd-1/config.json "
                                "--digestfile /ws/bd-1/digest localhost/wave/build:abc "
                                "oci:/ws/bd-1/oci:abc",
                                B));
  /* {pull}: "missing" once waved pinned the base to a digest (docs/builds.md). */
  wv_builder_target_t pinned = embedded_target;
  pinned.pull = "missing";
  CHECK_OK(wv_builder_steps(a, &f->b, &pinned, steps, &n, err, sizeof err));
  CHECK_HAS(joined(a, steps[0].argv), " --pull=missing ");
  CHECK_EQ_INT(steps[2].type, WV_JOB_STEP_FN);
  CHECK_EQ_STR(steps[2].fn, WV_BUILDER_IMPORT_FN);
  CHECK_HAS(steps[2].arg, "\"layout\":\"/ws/bd-1/oci\"");
  /* Then the layers' maps for later builds (storage/embedded.h), a tidy-up step. */
  CHECK_EQ_STR(steps[3].fn, WV_BUILDER_MAP_FN);
  CHECK_HAS(steps[3].arg, "\"tag\":\"abc\"");
  CHECK(steps[3].may_fail && steps[4].may_fail && !steps[0].may_fail);
  /* The last step keeps <workspace>/buildah under the cap (prune, then prune-all). */
  CHECK_EQ_INT(steps[5].type, WV_JOB_STEP_FN);
  CHECK_EQ_STR(steps[5].fn, WV_BUILDER_PRUNE_FN);
  CHECK(steps[5].may_fail);
  CHECK_HAS(steps[5].arg, "\"dir\":\"/ws/buildah\"");
  CHECK_HAS(steps[5].arg, "\"--storage-driver\",\"vfs\",\"rmi\",\"--prune\"]");
  CHECK_HAS(steps[5].arg, "\"rmi\",\"--all\"]");
  CHECK_EQ_STR(steps[0].cwd, "/ws/bd-1");
  bool has_auth_env = false;
  for (size_t i = 0; steps[0].env[i]; i++)
    has_auth_env |= strcmp(steps[0].env[i], "REGISTRY_AUTH_FILE=/ws/bd-1/config.json") == 0;
  CHECK(has_auth_env);
}

/* Pushed to a registry: docker:// destination, no import step. */
TEST(default_buildah_templates_registry) {
  wv_job_step_t steps[WV_BUILDER_MAX_STEPS];
  size_t n;
  char err[256];
  bfx_t *f = bfx_start();
  CHECK(f);
  wv_arena_t *a = f->a;
  CHECK_OK(wv_config_defaults(&f->cfg));
  CHECK_OK(wv_builder_from_config(&f->cfg, &f->b));
  wv_builder_target_t rt = repo_target;
  rt.layers = true;
  rt.storage_driver = "overlay";
  CHECK_OK(wv_builder_steps(a, &f->b, &rt, steps, &n, err, sizeof err));
  CHECK_EQ_INT(n, 3); /* build, push, prune: no rmi, it would drop the cached steps */
  CHECK_EQ_STR(steps[2].fn, WV_BUILDER_PRUNE_FN);
  CHECK_HAS(joined(a, steps[0].argv), "--storage-driver overlay build --layers=true ");
  CHECK_HAS(joined(a, steps[1].argv), "--storage-driver overlay push ");
  CHECK_HAS(joined(a, steps[0].argv), "--tls-verify=false");
  CHECK_HAS(joined(a, steps[0].argv), "--platform linux/arm64");
  CHECK_HAS(joined(a, steps[0].argv), "-t 127.0.0.1:5000/wave/build:abc ");
  CHECK_HAS(joined(a, steps[1].argv),
            " 127.0.0.1:5000/wave/build:abc docker://127.0.0.1:5000/wave/build:abc");
}

/* No prune template: no prune step. */
TEST(no_prune_template) {
  wv_job_step_t steps[WV_BUILDER_MAX_STEPS];
  size_t n;
  char err[256];
  bfx_t *f = bfx_start();
  CHECK(f);
  wv_arena_t *a = f->a;
  CHECK_OK(wv_config_defaults(&f->cfg));
  free(f->cfg.build_buildah_prune);
  f->cfg.build_buildah_prune = strdup("");
  CHECK_OK(wv_builder_from_config(&f->cfg, &f->b));
  CHECK_OK(wv_builder_steps(a, &f->b, &repo_target, steps, &n, err, sizeof err));
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_STR(steps[n - 1].name, "cleanup");
}

/* The overlay probe answers with a reason and leaves nothing behind. */
TEST(overlay_probe) {
  char dir[] = "/tmp/wv-probe-XXXXXX", why[512], sub[600];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(sub, sizeof sub, "%s/buildah", dir);
  int rc = wv_builder_probe_overlay(sub, why, sizeof why);
  CHECK(rc == 0 ? why[0] == '\0' : why[0] != '\0');
  CHECK_EQ_INT(rmdir(sub), 0); /* empty again: the scratch tree is gone */
  CHECK_EQ_INT(rmdir(dir), 0);
  CHECK_EQ_INT(wv_builder_probe_overlay("/proc/no/such/dir", why, sizeof why) != 0, 1);
  CHECK(why[0] != '\0');
}

TEST(buildkit_template) {
  wv_job_step_t steps[WV_BUILDER_MAX_STEPS];
  size_t n;
  char err[256];
  bfx_t *f = bfx_start();
  CHECK(f);
  wv_arena_t *a = f->a;
  CHECK_OK(wv_config_defaults(&f->cfg));
  free(f->cfg.build_builder);
  f->cfg.build_builder = strdup("buildkit");
  CHECK_OK(wv_builder_from_config(&f->cfg, &f->b));
  CHECK_OK(wv_builder_steps(a, &f->b, &repo_target, steps, &n, err, sizeof err));
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_STR(joined(a, steps[0].argv),
               "buildctl --addr unix:///run/buildkit/buildkitd.sock build --frontend "
               "dockerfile.v0 --local dockerfile=/ws/bd-1 --opt filename=Containerfile --local "
               "context=/ws/bd-1/context --opt platform=linux/arm64 --output "
               "type=image,name=127.0.0.1:5000/wave/build:abc,push=true,oci-mediatypes=true,"
               "registry.insecure=true");
  bool docker_config = false;
  for (size_t i = 0; steps[0].env[i]; i++)
    docker_config |= strcmp(steps[0].env[i], "DOCKER_CONFIG=/ws/bd-1") == 0;
  CHECK(docker_config);
  CHECK_OK(wv_builder_steps(a, &f->b, &embedded_target, steps, &n, err, sizeof err));
  CHECK_EQ_INT(n, 3); /* build, import, map-layers */
  CHECK_HAS(joined(a, steps[0].argv),
            "--output type=oci,dest=/ws/bd-1/oci,tar=false,name=localhost/wave/build:abc");
  CHECK_EQ_INT(steps[1].type, WV_JOB_STEP_FN);
}

TEST(expansion_rules) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char **argv;
  char err[256];
  wv_builder_target_t t = embedded_target;
  /* A value with spaces stays one argument; nothing is split or shell-parsed. */
  t.tag = "a b;rm -rf /";
  CHECK_OK(wv_builder_expand(a, "echo {tag}  x={tag}", &t, &argv, err, sizeof err));
  CHECK_EQ_STR(argv[0], "echo");
  CHECK_EQ_STR(argv[1], "a b;rm -rf /");
  CHECK_EQ_STR(argv[2], "x=a b;rm -rf /");
  CHECK(argv[3] == NULL);
  /* A word that is one empty placeholder is dropped; an empty part of a word is not. */
  t.platform = "";
  CHECK_OK(wv_builder_expand(a, "tool {platform} --platform={platform} end", &t, &argv, err,
                             sizeof err));
  CHECK_EQ_STR(joined(a, argv), "tool --platform= end");
  CHECK_EQ_INT(wv_builder_expand(a, "tool {nope}", &t, &argv, err, sizeof err), WV_EINVAL);
  CHECK_EQ_STR(err, "unknown placeholder {nope}");
  CHECK_EQ_INT(wv_builder_expand(a, "tool {tag", &t, &argv, err, sizeof err), WV_EINVAL);
  CHECK_EQ_INT(wv_builder_expand(a, "   ", &t, &argv, err, sizeof err), WV_EINVAL);
}

TEST(authfile_content_and_no_credentials_in_argv) {
  wv_builder_cred_t creds[] = {{"127.0.0.1:5000", "alice", "s3cr3t-pass"},
                               {"docker.io", "bob", "hub-pass"},
                               {"quay.io", NULL, NULL}};
  wv_buf_t b;
  wv_buf_init(&b, 1 << 16);
  CHECK_OK(wv_builder_authfile(creds, 3, &b));
  /* base64("alice:s3cr3t-pass") and base64("bob:hub-pass") */
  CHECK_EQ_STR(b.data,
               "{\"auths\":{\"https://127.0.0.1:5000\":{\"auth\":\"YWxpY2U6czNjcjN0LXBhc3M=\"},"
               "\"https://index.docker.io/v1/\":{\"auth\":\"Ym9iOmh1Yi1wYXNz\"}}}");
  wv_buf_free(&b);

  char dir[256], path[300];
  CHECK(tmpdir_make(dir, "builder"));
  CHECK_OK(wv_builder_write_authfile(dir, creds, 3));
  snprintf(path, sizeof path, "%s/config.json", dir);
  struct stat st;
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK_EQ_INT(st.st_mode & 0777, 0600);

  /* No step of any backend carries a credential on argv or in env. */
  wv_config_t cfg;
  wv_builder_t bk;
  wv_job_step_t steps[WV_BUILDER_MAX_STEPS];
  size_t n;
  char err[256];
  wv_arena_t *a = wv_arena_new(0);
  CHECK_OK(wv_config_defaults(&cfg));
  for (int backend = 0; backend < 2; backend++) {
    free(cfg.build_builder);
    cfg.build_builder = strdup(backend ? "buildkit" : "buildah");
    CHECK_OK(wv_builder_from_config(&cfg, &bk));
    wv_builder_target_t t = repo_target;
    t.workdir = dir;
    CHECK_OK(wv_builder_steps(a, &bk, &t, steps, &n, err, sizeof err));
    for (size_t i = 0; i < n; i++)
      for (size_t k = 0; steps[i].type == WV_JOB_STEP_CMD && steps[i].argv[k]; k++) {
        CHECK_LACKS(steps[i].argv[k], "s3cr3t");
        CHECK_LACKS(steps[i].argv[k], "YWxpY2U");
        CHECK_LACKS(steps[i].argv[k], "alice");
      }
    for (size_t k = 0; steps[0].env[k]; k++) {
      CHECK_LACKS(steps[0].env[k], "s3cr3t");
      CHECK_LACKS(steps[0].env[k], "YWxpY2U");
    }
  }
  wv_arena_free(a);
  wv_config_free(&cfg);
  tmpdir_remove(dir);
}

WV_TESTS(T(default_buildah_templates), T(default_buildah_templates_registry), T(no_prune_template),
         T(overlay_probe), T(buildkit_template), T(expansion_rules),
         T(authfile_content_and_no_credentials_in_argv))
