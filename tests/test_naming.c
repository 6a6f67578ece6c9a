/*
 * tests/test_naming.c — makeTargetImage and ids (contract §4.5, §4.6) and the
 * conda YAML loader/dumper they rely on (build/condayaml).
 */
#include "build/condayaml.h"
#include "build/naming.h"
#include "core/arena.h"
#include "core/err.h"
#include "runner.h"

static const char *CONDA1 = "dependencies:\n    - samtools=1.0\n";
static const char *CONDA2 = "dependencies:\n    - samtools=1.0\n    - bamtools=2.0\n"
                            "    - multiqc=1.15\n";
static const char *CONDA3 = "dependencies:\n    - samtools=1.0\n    - bamtools=2.0\n"
                            "    - multiqc=1.15\n    - bwa=1.2.3\n    - xx\n    - yy\n    - zz\n";
static const char *PIP1 = "channels:\n- bioconda\n- conda-forge\ndependencies:\n- pip\n- pip:\n"
                          "  - pandas==2.2.2\n";
static const char *PIP2 = "channels:\n- bioconda\n- conda-forge\ndependencies:\n- pip\n- pip:\n"
                          "  - pandas==2.2.2\n  - numpy=1.0\n";
static const char *GIT1 = "dependencies:\n- pip\n- pip:\n"
                          "  - \"https://github.com/seqeralabs/seqera-kit/archive/dev.zip\"\n";
static const char *GIT2 = "dependencies:\n- bwa\n- pip\n- pip:\n"
                          "  - \"https://github.com/seqeralabs/seqera-kit/archive/dev.zip\"\n"
                          "  - \"https://github.com/seqeralabs/seqera-kit/archive/dev2.zip\"\n";

/* The target image of a build of id "123" into foo.com/build, or "error". */
static const char *target(wv_arena_t *a, bool sif, const char *conda, wv_naming_strategy_t s) {
  const char *out = NULL;
  int rc = wv_naming_target_image(a, sif, "foo.com/build", "123", conda, s, &out);
  return rc ? "error" : out;
}

#define D WV_NAMING_DEFAULT
#define NONE WV_NAMING_NONE
#define TP WV_NAMING_TAG_PREFIX
#define IS WV_NAMING_IMAGE_SUFFIX

TEST(target_without_conda) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_naming_strategy_t all[] = {D, NONE, TP, IS};
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_STR(target(a, false, NULL, all[i]), "foo.com/build:123");
    CHECK_EQ_STR(target(a, true, NULL, all[i]), "oras://foo.com/build:123");
  }
}

TEST(target_spec_examples) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK_EQ_STR(target(a, false, CONDA1, D), "foo.com/build:samtools-1.0--123");
  CHECK_EQ_STR(target(a, false, CONDA1, NONE), "foo.com/build:123");
  CHECK_EQ_STR(target(a, false, CONDA1, TP), "foo.com/build:samtools-1.0--123");
  CHECK_EQ_STR(target(a, false, CONDA1, IS), "foo.com/build/samtools:1.0--123");
  CHECK_EQ_STR(target(a, true, CONDA1, D), "oras://foo.com/build:samtools-1.0--123");
  CHECK_EQ_STR(target(a, true, CONDA1, IS), "oras://foo.com/build/samtools:1.0--123");
  CHECK_EQ_STR(target(a, false, CONDA2, D),
               "foo.com/build:samtools-1.0_bamtools-2.0_multiqc-1.15--123");
  CHECK_EQ_STR(target(a, false, CONDA2, IS), "foo.com/build/samtools_bamtools_multiqc:123");
  CHECK_EQ_STR(target(a, false, CONDA3, TP),
               "foo.com/build:samtools-1.0_bamtools-2.0_multiqc-1.15_bwa-1.2.3_pruned--123");
  CHECK_EQ_STR(target(a, false, CONDA3, IS),
               "foo.com/build/samtools_bamtools_multiqc_bwa_pruned:123");
  CHECK_EQ_STR(target(a, false, PIP1, D), "foo.com/build:pip_pandas-2.2.2--123");
  CHECK_EQ_STR(target(a, false, PIP1, IS), "foo.com/build/pip_pandas:123");
  CHECK_EQ_STR(target(a, false, PIP2, TP), "foo.com/build:pip_pandas-2.2.2_numpy-1.0--123");
  CHECK_EQ_STR(target(a, false, PIP2, IS), "foo.com/build/pip_pandas_numpy:123");
  CHECK_EQ_STR(target(a, false, GIT1, D), "foo.com/build:pip--123");
  CHECK_EQ_STR(target(a, false, GIT1, IS), "foo.com/build/pip:123");
  CHECK_EQ_STR(target(a, false, GIT2, TP), "foo.com/build:bwa_pip--123");
  CHECK_EQ_STR(target(a, false, GIT2, IS), "foo.com/build/bwa_pip:123");
}

TEST(target_name_and_quirks) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  /* A top-level name is the single tool. */
  CHECK_EQ_STR(target(a, false, "name: My-Env!\ndependencies:\n- bwa=1\n", D),
               "foo.com/build:My-Env--123");
  CHECK_EQ_STR(target(a, false, "name: My-Env!\ndependencies:\n- bwa=1\n", IS),
               "foo.com/build/my-env:123");
  /* Channel prefixes are dropped, duplicates removed, '>' '<' split too. */
  CHECK_EQ_STR(target(a, false,
                      "dependencies:\n- bioconda::bwa=0.7\n- conda-forge::bwa=0.7\n"
                      "- 'numpy>=1.2'\n",
                      D),
               "foo.com/build:bwa-0.7_numpy-1.2--123");
  /* One shared version across tools makes the imageSuffix tag. */
  CHECK_EQ_STR(target(a, false, "dependencies:\n- a=1.0\n- b=1.0\n", IS),
               "foo.com/build/a_b:1.0--123");
  /* A version-less entry keeps its text in tagPrefix mode; '<' is then filtered. */
  CHECK_EQ_STR(target(a, false, "dependencies:\n- foo<\n", D), "foo.com/build:foo--123");
  /* Unusable YAML: no names, the tag is the id. */
  CHECK_EQ_STR(target(a, false, "dependencies:\n- 1.0\n", D), "foo.com/build:123");
  CHECK_EQ_STR(target(a, false, "dependencies: bwa\n", D), "foo.com/build:123");
  CHECK_EQ_STR(target(a, false, "dependencies:\n- bioconda::\n", D), "foo.com/build:123");
  CHECK_EQ_STR(target(a, false, "- a\n- b\n", D), "foo.com/build:123");
  CHECK_EQ_STR(target(a, false, "dependencies:\n- https://x/y.lock\n", D), "foo.com/build:123");
  CHECK_EQ_STR(target(a, false, "{{{", D), "foo.com/build:123");
  /* A name that normalises to nothing prints as Groovy's "null". */
  CHECK_EQ_STR(target(a, false, "name: '!!!'\n", D), "foo.com/build:null--123");
  const char *out;
  CHECK_EQ_INT(wv_naming_target_image(a, false, "", "1", NULL, D, &out), WV_EINVAL);
}

TEST(normalise_rules) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK_EQ_STR(wv_naming_normalise_tag(a, "__a b*c__"), "abc");
  CHECK(wv_naming_normalise_tag(a, "___") == NULL);
  /* 90 chars of '_'-joined tokens: re-joined until past 80, then cut at 80. */
  const char *longtag = "aaaaaaaaaa_bbbbbbbbbb_cccccccccc_dddddddddd_eeeeeeeeee_ffffffffff_"
                        "gggggggggg_hhhhhhhhhh";
  CHECK_EQ_STR(wv_naming_normalise_tag(a, longtag),
               "aaaaaaaaaa_bbbbbbbbbb_cccccccccc_dddddddddd_eeeeeeeeee_ffffffffff_gggggggggg_hhh");
  CHECK_EQ_INT(strlen(wv_naming_normalise_tag(a, longtag)), 80);
  /* Double underscores vanish only when shortening is needed. */
  CHECK_EQ_STR(wv_naming_normalise_tag(a, "a__b"), "a__b");
  /* Names: lower case, '/' allowed, Java's Kelvin sign and dotted I become ASCII. */
  CHECK_EQ_STR(wv_naming_normalise_name(a, "Foo/Bar_\xe2\x84\xaa\xc4\xb0\xc3\xa9"), "foo/bar_ki");
}

TEST(strategy_parse) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_naming_strategy_t s;
  const char *msg = NULL;
  CHECK_OK(wv_naming_strategy_parse(a, NULL, &s, &msg));
  CHECK_EQ_INT(s, D);
  CHECK_OK(wv_naming_strategy_parse(a, "imageSuffix", &s, &msg));
  CHECK_EQ_INT(s, IS);
  CHECK_EQ_INT(wv_naming_strategy_parse(a, "bogus", &s, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Unsupported image naming strategy: 'bogus'");
}

TEST(build_repo_and_public_rules) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  const char *out, *msg = NULL;
  const char *reserved[] = {"wave", "seqera"};
  const char *pub = "community.wave.seqera.io";
  CHECK_OK(
      wv_naming_build_repo(a, NULL, false, "reg.io/wave/build", pub, reserved, 2, D, &out, &msg));
  CHECK_EQ_STR(out, "reg.io/wave/build");
  CHECK_OK(wv_naming_build_repo(a, "docker.io/me/x", true, "reg.io/wave/build", pub, reserved, 2, D,
                                &out, &msg));
  CHECK_EQ_STR(out, "docker.io/me/x");
  /* Freeze without a repository lands in the public repo: "/library" for imageSuffix. */
  CHECK_OK(
      wv_naming_build_repo(a, NULL, true, "reg.io/wave/build", pub, reserved, 2, D, &out, &msg));
  CHECK_EQ_STR(out, "community.wave.seqera.io/library");
  CHECK_EQ_INT(wv_naming_effective_strategy(D, out, pub), IS);
  CHECK_EQ_INT(wv_naming_effective_strategy(TP, out, pub), TP);
  CHECK_OK(
      wv_naming_build_repo(a, NULL, true, "reg.io/wave/build", pub, reserved, 2, TP, &out, &msg));
  CHECK_EQ_STR(out, "community.wave.seqera.io/library/build");
  CHECK_EQ_INT(wv_naming_build_repo(a, "community.wave.seqera.io/seqera/x", true, NULL, pub,
                                    reserved, 2, D, &out, &msg),
               WV_EINVAL);
  CHECK_EQ_STR(msg, "Use of repository 'community.wave.seqera.io/seqera/x' is not allowed");
  CHECK_EQ_INT(wv_naming_build_repo(a, NULL, false, NULL, NULL, NULL, 0, D, &out, &msg), WV_EINVAL);
  CHECK_EQ_STR(msg, "Missing build repository attribute");
  /* The spec's example: community.wave.seqera.io/library/bwa_samtools:<id>. */
  CHECK_OK(wv_naming_build_repo(a, NULL, true, "r/x", pub, NULL, 0, D, &out, &msg));
  const char *img;
  CHECK_OK(wv_naming_target_image(a, false, out, "abc", "dependencies:\n- bwa=1\n- samtools=2\n",
                                  wv_naming_effective_strategy(D, out, pub), &img));
  CHECK_EQ_STR(img, "community.wave.seqera.io/library/bwa_samtools:abc");
}

TEST(ids) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK_EQ_STR(wv_naming_build_id(a, "7efaa2ed59c58a16", 1), "bd-7efaa2ed59c58a16_1");
  CHECK_EQ_STR(wv_naming_dry_run_id(a, "7efaa2ed59c58a16"), "7efaa2ed59c58a16_0");
  CHECK_EQ_STR(wv_naming_multi_parent_id(a, "7efaa2ed59c58a16"), "bd-7efaa2ed59c58a16_0");
  CHECK_EQ_STR(wv_naming_job_name(a, "bd-7efaa2ed59c58a16_1"), "bd-7efaa2ed59c58a16-1");
}

/* in loaded and dumped again, or the loader's message. */
static const char *roundtrip(wv_arena_t *a, const char *in) {
  wv_yaml_node_t *root;
  const char *out, *msg = NULL;
  if (wv_yaml_load(a, in, strlen(in), &root, &msg))
    return msg ? msg : "error";
  return wv_yaml_dump(a, root, &out) ? "error" : out;
}

TEST(yaml_dump_snakeyaml_style) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  CHECK_EQ_STR(roundtrip(a, "dependencies:\n  - foo=1.0\n  - bar=2.0\n"),
               "dependencies:\n- foo=1.0\n- bar=2.0\n");
  CHECK_EQ_STR(
      roundtrip(a, "name: x\ndependencies: [a, {pip: [b, c]}]\nvariables: {A: '1', B: x}\n"),
      "name: x\ndependencies:\n- a\n- pip:\n  - b\n  - c\nvariables:\n  A: '1'\n  B: x\n");
  /* Typed plain scalars come back canonical; strings that look typed are quoted. */
  CHECK_EQ_STR(roundtrip(a, "a: yes\nb: 0x10\nc: 1e3\nd: ~\ne: '3.10'\nf: 3.10\ng: \"true\"\n"),
               "a: true\nb: 16\nc: 1000.0\nd: null\ne: '3.10'\nf: 3.1\ng: 'true'\n");
  CHECK_EQ_STR(
      roundtrip(a, "a: ''\nb: '- x'\nc: 'x: y'\nd: 'it''s'\ne: \"tab\\there\"\nf: []\ng: {}\n"),
      "a: ''\nb: '- x'\nc: 'x: y'\nd: it's\ne: \"tab\\there\"\nf: []\ng: {}\n");
  CHECK_EQ_STR(roundtrip(a, "a:\n- - x\n  - y\n- caf\xc3\xa9\n"),
               "a:\n- - x\n  - y\n- caf\xc3\xa9\n");
  CHECK_EQ_STR(roundtrip(a, "a: 1\na: 2\nb: 3\n"), "a: 2\nb: 3\n");
  /* Refused: aliases, several documents, non-mapping roots, bad syntax. */
  CHECK_HAS(roundtrip(a, "a: &x 1\nb: *x\n"), "aliases");
  CHECK_HAS(roundtrip(a, "a: 1\n---\nb: 2\n"), "single document");
  CHECK_HAS(roundtrip(a, "- a\n"), "not a mapping");
  CHECK_HAS(roundtrip(a, "a: [\n"), "Invalid conda YAML at line");
}

TEST(yaml_limits) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  char deep[400];
  size_t n = 0;
  for (int i = 0; i < 100; i++)
    deep[n++] = '[';
  for (int i = 0; i < 100; i++)
    deep[n++] = ']';
  deep[n] = '\0';
  char doc[420];
  snprintf(doc, sizeof doc, "a: %s\n", deep);
  wv_yaml_node_t *root;
  const char *msg = NULL;
  CHECK_EQ_INT(wv_yaml_load(a, doc, strlen(doc), &root, &msg), WV_ETOOBIG);
}

WV_TESTS(T(target_without_conda), T(target_spec_examples), T(target_name_and_quirks),
         T(normalise_rules), T(strategy_parse), T(build_repo_and_public_rules), T(ids),
         T(yaml_dump_snakeyaml_style), T(yaml_limits))
