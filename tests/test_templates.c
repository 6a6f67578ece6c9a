/*
 * tests/test_templates.c — container files and conda YAML from `packages`
 * (contract §6.2) and the freeze rewrite (§6.3), compared with the expected
 * texts in tests/fixtures/templates/. WV_REGEN_FIXTURES=1 rewrites them
 * (then review the diff: the fixtures are the contract, not the output).
 */
#include "build/checksum.h"
#include "build/naming.h"
#include "build/freeze.h"
#include "build/templates.h"
#include "core/arena.h"
#include "core/err.h"
#include "runner.h"

#include <json-c/json.h>

/* A test's arena (freed when it returns) and the defaults it renders with: Wave's unless it
 * changes them. */
typedef struct {
  wv_arena_t *a;
  wv_template_defaults_t d;
} tfx_t;

static bool tfx_open(tfx_t *f) {
  wv_template_defaults_wave(&f->d);
  return (f->a = wv_test_arena()) != NULL;
}

static const char *fixture_path(wv_arena_t *a, const char *name) {
  return wv_test_fixture(a, "templates", name);
}

/* Compares text with the fixture (or rewrites it in regeneration mode). */
static int same_as_fixture(wv_arena_t *a, const char *name, const char *text) {
  if (getenv("WV_REGEN_FIXTURES")) {
    FILE *f = fopen(fixture_path(a, name), "wb");
    if (!f)
      return 0;
    fputs(text, f);
    fclose(f);
    return 1;
  }
  const char *want = wv_test_read_file(a, fixture_path(a, name), 1 << 16, NULL);
  if (!want || strcmp(want, text) != 0) {
    fprintf(stderr, "  fixture %s differs; got:\n%s\n", name, text);
    return 0;
  }
  return 1;
}

static int packages(wv_arena_t *a, const char *json, wv_template_packages_t *p) {
  json_object *o = json_tokener_parse(json);
  const char *msg = NULL;
  int rc = wv_template_packages_from_json(a, o, p, &msg);
  json_object_put(o);
  if (rc)
    fprintf(stderr, "  packages: %s\n", msg ? msg : wv_strerror(rc));
  return rc;
}

static int render(const tfx_t *f, const char *json, wv_template_t tpl, bool sif, const char **out) {
  wv_template_packages_t p;
  const char *msg = NULL;
  int rc = packages(f->a, json, &p);
  if (!rc)
    rc = wv_template_packages_container_file(f->a, &p, tpl, sif, &f->d, out, &msg);
  if (rc)
    fprintf(stderr, "  render: %s\n", msg ? msg : wv_strerror(rc));
  return rc;
}

static const char *conda_yaml(wv_arena_t *a, const char *json) {
  wv_template_packages_t p;
  const char *y = NULL, *msg = NULL;
  if (packages(a, json, &p) || wv_template_packages_conda_yaml(a, &p, &y, &msg))
    return msg ? msg : "error";
  return y ? y : "(none)";
}

#define ENTRIES                                                                                    \
  "{\"type\":\"CONDA\",\"entries\":[\"bioconda::samtools=1.17\",\"pip:pandas==2.2.2 "              \
  "'numpy<2'\"],\"channels\":[\"conda-forge\",\"bioconda\"],\"condaOpts\":{\"mambaImage\":"        \
  "\"mambaorg/micromamba:1.5.10-noble\",\"basePackages\":\"conda-forge::procps-ng\","              \
  "\"baseImage\":\"ubuntu:24.04\",\"commands\":[\"RUN echo done\"]},\"pixiOpts\":null}"
#define LOCK                                                                                       \
  "{\"type\":\"CONDA\",\"entries\":[\"https://foo.com/lock.yml\"],\"channels\":[\"conda-forge\","  \
  "\"defaults\"],\"condaOpts\":{\"basePackages\":\"foo::one bar::two\"}}"

TEST(conda_v2) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *out;
  CHECK_OK(render(&fx, ENTRIES, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "conda-v2-entries.Dockerfile", out));
  CHECK_OK(render(&fx, ENTRIES, WV_TEMPLATE_MICROMAMBA_V2, true, &out));
  CHECK(same_as_fixture(fx.a, "conda-v2-entries.singularity", out));
  CHECK_OK(render(&fx, LOCK, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "conda-v2-lock.Dockerfile", out));
  CHECK_OK(render(&fx, LOCK, WV_TEMPLATE_DEFAULT, true, &out));
  CHECK(same_as_fixture(fx.a, "conda-v2-lock.singularity", out));
  CHECK(same_as_fixture(fx.a, "conda-v2-entries.conda.yml", conda_yaml(fx.a, ENTRIES)));
  CHECK_EQ_STR(conda_yaml(fx.a, LOCK), "(none)");
  /* An offline lab's defaults replace every image; explicit null basePackages drops the line. */
  fx.d.mamba_image_v2 = "lab.local/micromamba:2";
  fx.d.conda_base_image = "lab.local/ubuntu:24.04";
  CHECK_OK(render(
      &fx, "{\"type\":\"CONDA\",\"entries\":[\"bwa\"],\"condaOpts\":{\"basePackages\":null}}",
      WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "conda-v2-offline.Dockerfile", out));
}

TEST(conda_v1) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *out;
  CHECK_OK(render(&fx, LOCK, WV_TEMPLATE_MICROMAMBA_V1, false, &out));
  CHECK(same_as_fixture(fx.a, "conda-v1-lock.Dockerfile", out));
  CHECK_OK(render(&fx, LOCK, WV_TEMPLATE_MICROMAMBA_V1, true, &out));
  CHECK(same_as_fixture(fx.a, "conda-v1-lock.singularity", out));
  CHECK_OK(render(&fx, ENTRIES, WV_TEMPLATE_MICROMAMBA_V1, false, &out));
  CHECK(same_as_fixture(fx.a, "conda-v1-entries.Dockerfile", out));
  CHECK_OK(render(&fx, ENTRIES, WV_TEMPLATE_MICROMAMBA_V1, true, &out));
  CHECK(same_as_fixture(fx.a, "conda-v1-entries.singularity", out));
}

TEST(pixi_v1) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *out, *msg = NULL;
  const char *req = "{\"type\":\"CONDA\",\"entries\":[\"salmon\",\"bwa\"],\"channels\":"
                    "[\"conda-forge\",\"bioconda\"],\"pixiOpts\":{\"pixiImage\":\"my/pixi:1\","
                    "\"commands\":[\"echo a\",\"echo b\"]}}";
  CHECK_OK(render(&fx, req, WV_TEMPLATE_PIXI_V1, false, &out));
  CHECK(same_as_fixture(fx.a, "pixi-v1.Dockerfile", out));
  CHECK_OK(render(&fx, req, WV_TEMPLATE_PIXI_V1, true, &out));
  CHECK(same_as_fixture(fx.a, "pixi-v1.singularity", out));
  CHECK_EQ_STR(conda_yaml(fx.a, req),
               "channels:\n- conda-forge\n- bioconda\ndependencies:\n- salmon\n- bwa\n");
  wv_template_packages_t p;
  CHECK_OK(packages(fx.a, LOCK, &p));
  CHECK_EQ_INT(
      wv_template_packages_container_file(fx.a, &p, WV_TEMPLATE_PIXI_V1, false, &fx.d, &out, &msg),
      WV_EINVAL);
  CHECK_EQ_STR(msg, "Conda lock file is not supported by 'conda/pixi:v1' template");
}

TEST(cran_v1) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *out;
  const char *req = "{\"type\":\"CRAN\",\"entries\":[\"dplyr\",\"bioc::DESeq2\"],\"channels\":"
                    "[\"cran\",\"bioconductor\",\"https://r.example.org\"],\"cranOpts\":"
                    "{\"commands\":[\"RUN echo ok\"]}}";
  CHECK_OK(render(&fx, req, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "cran-v1-entries.Dockerfile", out));
  CHECK_OK(render(&fx, req, WV_TEMPLATE_CRAN_V1, true, &out));
  CHECK(same_as_fixture(fx.a, "cran-v1-entries.singularity", out));
  const char *ctx = "{\"type\":\"CRAN\",\"cranOpts\":{\"rImage\":\"rocker/r-ver:4.5.0\"}}";
  CHECK_OK(render(&fx, ctx, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "cran-v1-context.Dockerfile", out));
  CHECK_OK(render(&fx, ctx, WV_TEMPLATE_DEFAULT, true, &out));
  CHECK(same_as_fixture(fx.a, "cran-v1-context.singularity", out));
  CHECK_EQ_STR(conda_yaml(fx.a, req), "(none)");
  /* The Wave CLI's shape (no channels) and `cran`/`bioconductor` channels keep
   * Wave's text byte for byte; only a URL left in effect is passed to install2.r. */
  const char *cli = "{\"type\":\"CRAN\",\"entries\":[\"dplyr\"],\"cranOpts\":{\"rImage\":"
                    "\"rocker/r-ver:4.4.1\",\"basePackages\":\"littler r-cran-docopt\","
                    "\"commands\":null}}";
  const char *wave_text =
      "FROM rocker/r-ver:4.4.1\n"
      "RUN \\\n"
      "    R -e \"options(repos = c(CRAN = 'https://cloud.r-project.org/'))\" \\\n"
      "    && apt-get update && apt-get install -y littler r-cran-docopt \\\n"
      "    && install2.r 'dplyr' \\\n"
      "    && rm -rf /tmp/downloaded_packages/ /tmp/*.rds \\\n"
      "    && rm -rf /var/lib/apt/lists/*\n"
      "USER root\n"
      "ENV R_LIBS_USER=\"/usr/local/lib/R/site-library\"\n";
  CHECK_OK(render(&fx, cli, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK_EQ_STR(out, wave_text);
  const char *later_cran = "{\"type\":\"CRAN\",\"entries\":[\"dplyr\"],\"channels\":"
                           "[\"https://r.example.org\",\"bioconductor\",\"CRAN\"]}";
  CHECK_OK(render(&fx, later_cran, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK_HAS(out, "&& install2.r 'dplyr' \\\n");
  const char *local = "{\"type\":\"CRAN\",\"entries\":[\"wavedhello\"],\"channels\":"
                      "[\"http://127.0.0.1:8080\"],\"cranOpts\":{\"rImage\":\"r:1\","
                      "\"basePackages\":null}}";
  CHECK_OK(render(&fx, local, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK_EQ_STR(out, "FROM r:1\n"
                    "RUN \\\n"
                    "    R -e \"options(repos = c(CRAN = 'http://127.0.0.1:8080'))\" \\\n"
                    "    && install2.r -r 'http://127.0.0.1:8080' 'wavedhello' \\\n"
                    "    && rm -rf /tmp/downloaded_packages/ /tmp/*.rds \\\n"
                    "    && rm -rf /var/lib/apt/lists/*\n"
                    "USER root\n"
                    "ENV R_LIBS_USER=\"/usr/local/lib/R/site-library\"\n");
  const char *odd = "{\"type\":\"CRAN\",\"entries\":[\"x\"],\"channels\":[\"http://a/'b\"]}";
  CHECK_OK(render(&fx, odd, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK_HAS(out, "install2.r 'x'");
  const char *word = "{\"type\":\"CRAN\",\"entries\":[\"x\"],\"channels\":[\"conda-forge\"]}";
  CHECK_OK(render(&fx, word, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK_HAS(out, "install2.r 'x'");
}

TEST(environment_yaml) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  /* base64 of "name: rnaseq\ndependencies:\n  - salmon=1.10\n  - pip:\n    - multiqc\n" */
  const char *req =
      "{\"type\":\"CONDA\",\"environment\":\"bmFtZTogcm5hc2VxCmRlcGVuZGVuY2llczoKICAt"
      "IHNhbG1vbj0xLjEwCiAgLSBwaXA6CiAgICAtIG11bHRpcWMK\",\"channels\":[\"bioconda\"]}";
  CHECK_EQ_STR(conda_yaml(fx.a, req),
               "name: rnaseq\ndependencies:\n- salmon=1.10\n- pip:\n  - multiqc\n"
               "channels:\n- bioconda\n");
  const char *dup = "{\"type\":\"CONDA\",\"environment\":\"Y2hhbm5lbHM6IFtiaW9jb25kYV0K\","
                    "\"channels\":[\"bioconda\",\"conda-forge\"]}"; /* channels: [bioconda] */
  CHECK_EQ_STR(conda_yaml(fx.a, dup), "channels:\n- bioconda\n- conda-forge\n");
  const char *out;
  CHECK_OK(render(&fx, req, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "conda-v2-environment.Dockerfile", out));
}

/* A CONDA request whose environment is `text` (base64-encoded here), with channels JSON. */
static const char *env_request(wv_arena_t *a, const char *text, const char *channels) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(text);
  char *b = wv_arena_alloc(a, (n + 2) / 3 * 4 + 1), *w = b;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)text[i] << 16;
    v |= i + 1 < n ? (unsigned char)text[i + 1] << 8 : 0;
    v |= i + 2 < n ? (unsigned char)text[i + 2] : 0;
    *w++ = tbl[v >> 18 & 63], *w++ = tbl[v >> 12 & 63];
    *w++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
    *w++ = i + 2 < n ? tbl[v & 63] : '=';
  }
  *w = '\0';
  return wv_arena_sprintf(a, "{\"type\":\"CONDA\",\"environment\":\"%s\"%s%s}", b,
                          channels ? ",\"channels\":" : "", channels ? channels : "");
}

/* nf-wave sends .txt conda files (explicit lock files, spec lists) as `environment`. */
TEST(environment_text) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *lock =
      "# This file may be used to create an environment using:\n"
      "# $ conda create --name <env> --file <this file>\n"
      "# platform: linux-64\n"
      "@EXPLICIT\n"
      "https://conda.anaconda.org/conda-forge/linux-64/"
      "zlib-1.3.1-hb9d3cd8_2.conda#c9f075ab2f33b3bbee9e62d4ad0a6cd8\n"
      "  https://conda.anaconda.org/bioconda/linux-64/bwa-0.7.18-he4a0461_1.tar.bz2\r\n"
      "\n";
  CHECK_EQ_STR(conda_yaml(fx.a, env_request(fx.a, lock, NULL)),
               "dependencies:\n"
               "- https://conda.anaconda.org/conda-forge/linux-64/"
               "zlib-1.3.1-hb9d3cd8_2.conda#c9f075ab2f33b3bbee9e62d4ad0a6cd8\n"
               "- https://conda.anaconda.org/bioconda/linux-64/bwa-0.7.18-he4a0461_1.tar.bz2\n");
  /* The container file is Wave's conda-file template, as for a YAML environment. */
  const char *out;
  CHECK_OK(render(&fx, env_request(fx.a, lock, NULL), WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "conda-v2-environment.Dockerfile", out));
  CHECK_OK(render(&fx, env_request(fx.a, lock, NULL), WV_TEMPLATE_MICROMAMBA_V1, false, &out));
  const char *v1 = "FROM mambaorg/micromamba:1.5.10-noble\n"
                   "COPY --chown=$MAMBA_USER:$MAMBA_USER conda.yml /tmp/conda.yml\n"
                   "RUN micromamba install -y -n base -f /tmp/conda.yml \\\n";
  CHECK_PREFIX(out, v1);

  /* A spec list gives the YAML of the same specs sent as entries (one spec per line). */
  const char *specs = "# comment\nbioconda::samtools=1.17\n\nnumpy >=1.20\npip:multiqc==1.21\n";
  const char *as_text =
      conda_yaml(fx.a, env_request(fx.a, specs, "[\"conda-forge\",\"bioconda\"]"));
  CHECK_EQ_STR(as_text, "channels:\n- conda-forge\n- bioconda\ndependencies:\n"
                        "- bioconda::samtools=1.17\n- numpy >=1.20\n- pip\n- pip:\n"
                        "  - multiqc==1.21\n");
  CHECK_EQ_STR(conda_yaml(fx.a, "{\"type\":\"CONDA\",\"entries\":[\"bioconda::samtools=1.17\"],"
                                "\"channels\":[\"bioconda\"]}"),
               conda_yaml(fx.a, env_request(fx.a, "bioconda::samtools=1.17\n", "[\"bioconda\"]")));

  /* Errors: a bad lock line, an empty lock, pip:: in a list; YAML files keep the YAML checks. */
  CHECK_EQ_STR(
      conda_yaml(fx.a, env_request(fx.a, "@EXPLICIT\nhttps://x/a.conda\nzlib=1.3\n", NULL)),
      "Invalid conda lock file at line 3: expected one http(s) package URL");
  CHECK_EQ_STR(conda_yaml(fx.a, env_request(fx.a, "# c\n@EXPLICIT\n# nothing\n", NULL)),
               "Invalid conda lock file: no package URL after @EXPLICIT");
  CHECK_EQ_STR(conda_yaml(fx.a, env_request(fx.a, "pip::x\n", NULL)),
               "Invalid pip prefix - Likely you want to use 'pip:x' instead of 'pip::x'");
  const char *bad = conda_yaml(fx.a, env_request(fx.a, "name: x\ndependencies:\n  - [a\n", NULL));
  CHECK_PREFIX(bad, "Invalid conda YAML at line");
  bad = conda_yaml(fx.a, env_request(fx.a, "samtools\n- bwa\n", NULL));
  CHECK_PREFIX(bad, "Invalid conda YAML at line");
  bad = conda_yaml(fx.a, env_request(fx.a, "# only a comment\n", NULL));
  CHECK_PREFIX(bad, "Invalid conda YAML at line");
}

TEST(validation_messages) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  struct {
    const char *json;
    wv_template_t tpl;
    const char *msg;
  } cases[] = {
      {"{\"entries\":[\"bwa\"]}", WV_TEMPLATE_DEFAULT,
       "Unexpected or missing package type '-' or build template '-'"},
      {"{\"type\":\"CONDA\",\"entries\":[\"bwa\"],\"environment\":\"YTogMQo=\"}",
       WV_TEMPLATE_DEFAULT,
       "Attributes 'entries' and 'environment' of 'packages' cannot be used together"},
      {"{\"type\":\"CONDA\",\"entries\":[\"https://x/lock.yml\",\"bwa\"]}", WV_TEMPLATE_DEFAULT,
       "No more than one Conda lock remote file can be specified at the same time"},
      {"{\"type\":\"CONDA\",\"entries\":[\"pip::numpy\"]}", WV_TEMPLATE_DEFAULT,
       "Invalid pip prefix - Likely you want to use 'pip:numpy' instead of 'pip::numpy'"},
      {"{\"type\":\"CONDA\",\"environment\":\"YTogMQo\"}", WV_TEMPLATE_DEFAULT,
       "Invalid 'packages.envFile' attribute - make sure it encoded as a base64 string"},
      {"{\"type\":\"CONDA\"}", WV_TEMPLATE_DEFAULT,
       "Attribute 'entries' or 'environment' is required for 'CONDA' packages"},
      {"{\"type\":\"CRAN\",\"entries\":[\"x\"]}", WV_TEMPLATE_MICROMAMBA_V2,
       "Unexpected or missing package type 'CRAN' or build template 'conda/micromamba:v2'"},
      {"{\"type\":\"CONDA\",\"entries\":[\"x\"]}", WV_TEMPLATE_CRAN_V1,
       "Unexpected or missing package type 'CONDA' or build template 'cran/installr:v1'"},
      {"{\"type\":\"CRAN\",\"entries\":[\"x\"]}", WV_TEMPLATE_PIXI_V1,
       "Package type 'CRAN' not supported by 'conda/pixi:v1' build template"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wv_template_packages_t p;
    const char *out, *msg = NULL;
    CHECK_OK(packages(fx.a, cases[i].json, &p));
    CHECK_EQ_INT(
        wv_template_packages_container_file(fx.a, &p, cases[i].tpl, false, &fx.d, &out, &msg),
        WV_EINVAL);
    CHECK_EQ_STR(msg, cases[i].msg);
  }
  wv_template_packages_t p;
  const char *msg = NULL;
  json_object *o = json_tokener_parse("{\"type\":\"PIP\"}");
  CHECK_EQ_INT(wv_template_packages_from_json(fx.a, o, &p, &msg), WV_EINVAL);
  json_object_put(o);
  o = json_tokener_parse("{\"type\":\"CONDA\",\"entries\":[1]}");
  CHECK_EQ_INT(wv_template_packages_from_json(fx.a, o, &p, &msg), WV_EINVAL);
  json_object_put(o);
  /* Explicit nulls everywhere are accepted. */
  CHECK_OK(packages(fx.a,
                    "{\"type\":\"CONDA\",\"entries\":[\"bwa\"],\"environment\":null,"
                    "\"channels\":null,\"condaOpts\":null,\"cranOpts\":null}",
                    &p));
  CHECK(p.channels == NULL && p.conda_opts == NULL);
  wv_template_t t;
  CHECK_EQ_INT(wv_template_parse(fx.a, "conda/foo:v9", &t, &msg), WV_EINVAL);
  CHECK_OK(wv_template_parse(fx.a, "conda/pixi:v1", &t, &msg));
  CHECK_EQ_INT(t, WV_TEMPLATE_PIXI_V1);
}

/* The spec's example 2 (contract §10.3): a Wave CLI conda build whose hosted tag is known. */
TEST(spec_example_2_tag) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *req = "{\"type\":\"CONDA\",\"entries\":[\"bioconda::samtools=1.17\"],\"channels\":"
                    "[\"conda-forge\",\"bioconda\"],\"condaOpts\":{\"mambaImage\":"
                    "\"mambaorg/micromamba:1.5.10-noble\",\"basePackages\":\"conda-forge::procps-"
                    "ng\",\"baseImage\":\"ubuntu:24.04\"}}";
  const char *file, *yaml = conda_yaml(fx.a, req), *img;
  CHECK_OK(render(&fx, req, WV_TEMPLATE_DEFAULT, false, &file));
  wv_checksum_input_t in = {.container_file = file,
                            .conda_file = yaml,
                            .platform = "linux/amd64",
                            .repository = "private.cr.seqera.io/wave/build"};
  char id[WV_CHECKSUM_STRLEN];
  CHECK_OK(wv_checksum_container_id(&in, id));
  CHECK_OK(wv_naming_target_image(fx.a, false, in.repository, id, yaml, WV_NAMING_DEFAULT, &img));
  CHECK_PREFIX(img, "private.cr.seqera.io/wave/build:samtools-1.17--");
}

/*
 * The request shapes nf-wave and the Wave CLI send for conda and pixi builds. The expected
 * container files are the expected outputs of Wave's own tests (seqeralabs/wave), copied to
 * tests/fixtures/templates/wave-*; the expected ids were computed by the independent
 * reference tests/fixtures/gen_checksum_vectors.py over those texts (platform linux/amd64,
 * repository wave/build).
 */
static const char *shape_id(wv_arena_t *a, const char *file, const char *yaml) {
  wv_checksum_input_t in = {.container_file = file,
                            .conda_file = yaml,
                            .platform = "linux/amd64",
                            .repository = "wave/build"};
  char *id = wv_arena_alloc(a, WV_CHECKSUM_STRLEN);
  return wv_checksum_container_id(&in, id) ? "error" : id;
}

TEST(wave_request_shapes) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *out, *yaml;
  /* entries with channels, default template. ContainerHelperTest: "should create conda docker
   * file with packages using micromamba v2 by default". */
  const char *entries = "{\"type\":\"CONDA\",\"entries\":[\"bwa=0.7.15\",\"salmon=1.1.1\"],"
                        "\"channels\":[\"conda-forge\",\"bioconda\"]}";
  CHECK_OK(render(&fx, entries, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "wave-v2-entries.Dockerfile", out));
  CHECK_EQ_STR(yaml = conda_yaml(fx.a, entries),
               "channels:\n- conda-forge\n- bioconda\ndependencies:\n"
               "- bwa=0.7.15\n- salmon=1.1.1\n");
  CHECK_EQ_STR(shape_id(fx.a, out, yaml), "dd3faed20244213c");
  /* The Wave CLI's shape: condaOpts with the v1 image, which the v2 template replaces.
   * CondaHelperTest: "should override a v1 mamba image with the v2 default in v2". */
  const char *cli = "{\"type\":\"CONDA\",\"entries\":[\"bwa=0.7.15\",\"salmon=1.1.1\"],"
                    "\"channels\":[\"conda-forge\",\"bioconda\"],\"condaOpts\":{\"mambaImage\":"
                    "\"mambaorg/micromamba:1.5.10-noble\",\"basePackages\":\"conda-forge::procps-"
                    "ng\",\"baseImage\":\"ubuntu:24.04\",\"commands\":null}}";
  CHECK_OK(render(&fx, cli, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "wave-v2-entries.Dockerfile", out));
  CHECK_EQ_STR(shape_id(fx.a, out, conda_yaml(fx.a, cli)), "dd3faed20244213c");
  /* The generated conda file. ContainerHelperTest: "should validate conda packages helper". */
  CHECK(same_as_fixture(fx.a, "wave-packages.conda.yml",
                        conda_yaml(fx.a, "{\"type\":\"CONDA\",\"entries\":[\"this\",\"that\"],"
                                         "\"channels\":[\"defaults\"]}")));

  /* environment file + channels (nf-wave's local conda file). ContainerHelperTest: "should
   * validate conda env and channels helper" (conda file); TemplateUtilsTest: "should create
   * dockerfile using micromamba v2 template from conda file" (container file). */
  const char *env = "{\"type\":\"CONDA\",\"environment\":\"Y2hhbm5lbHM6Ci0gYWEKZGVwZW5kZW5jaWVzOgot"
                    "IGJ3YT0wLjcuMTUKLSBzYWxtb249MS4xLjEK\",\"channels\":[\"xx\",\"yy\"],"
                    "\"condaOpts\":{\"mambaImage\":\"mambaorg/micromamba:2.1.1\",\"baseImage\":"
                    "\"ubuntu:24.04\",\"basePackages\":\"conda-forge::procps-ng\"}}";
  CHECK(same_as_fixture(fx.a, "wave-env-channels.conda.yml", yaml = conda_yaml(fx.a, env)));
  CHECK_OK(render(&fx, env, WV_TEMPLATE_DEFAULT, false, &out));
  CHECK(same_as_fixture(fx.a, "wave-v2-file.Dockerfile", out));
  CHECK_EQ_STR(shape_id(fx.a, out, yaml), "eb06328a47325604");

  /* lock-file URL. ContainerHelperTest: "should create conda docker file with lock file and
   * micromamba v2"; no conda file. */
  const char *lock = "{\"type\":\"CONDA\",\"entries\":[\"https://foo.com/lock.yml\"],"
                     "\"channels\":[\"conda-forge\",\"bioconda\"]}";
  CHECK_OK(render(&fx, lock, WV_TEMPLATE_MICROMAMBA_V2, false, &out));
  CHECK(same_as_fixture(fx.a, "wave-v2-lock.Dockerfile", out));
  CHECK_EQ_STR(conda_yaml(fx.a, lock), "(none)");
  CHECK_EQ_STR(shape_id(fx.a, out, NULL), "8a499c12066c303a");

  /* pixi. ContainerHelperTest: "should create conda docker file with packages and pixi". */
  const char *pixi = "{\"type\":\"CONDA\",\"entries\":[\"bwa=0.7.15\",\"salmon=1.1.1\"],"
                     "\"channels\":[\"conda-forge\"]}";
  CHECK_OK(render(&fx, pixi, WV_TEMPLATE_PIXI_V1, false, &out));
  CHECK(same_as_fixture(fx.a, "wave-pixi-entries.Dockerfile", out));
  CHECK_EQ_STR(shape_id(fx.a, out, conda_yaml(fx.a, pixi)), "a503d19638edca11");
}

#define H64(c)                                                                                     \
  c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
      c c c c c c c c c c c c c c c c

TEST(freeze_rewrite) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char *ep[] = {"/bin/sh", "-c"}, *cmd[] = {"echo", "hi"}, *env[] = {"A=1", "B=two"};
  wv_container_layer_t layers[] = {
      {"data:xx", "sha256:" H64("a"), 10, "sha256:" H64("b")},
      {"https://x/fusion-amd64.tar.gz", "sha256:" H64("c"), 20, "sha256:" H64("d")}};
  wv_container_config_t cc = {ep, 2, cmd, 2, env, 2, "/work", layers, 2};
  const char *chain[] = {"/usr/bin/tini", "--"};
  wv_freeze_input_t in = {
      .container_image = "ubuntu:24.04", .config = &cc, .entry_chain = chain, .n_entry_chain = 2};
  const char *out;
  CHECK_OK(wv_freeze_container_file(fx.a, &in, &out));
  CHECK(same_as_fixture(fx.a, "freeze-image.Dockerfile", out));
  in.singularity = true;
  const char *sep[] = {"my tool", "it's"};
  wv_container_config_t scc = cc;
  scc.entrypoint = sep;
  in.config = &scc;
  CHECK_OK(wv_freeze_container_file(fx.a, &in, &out));
  CHECK(same_as_fixture(fx.a, "freeze-image.singularity", out));
  /* A container file with a config: the file, a newline, the comment, then the config. */
  wv_freeze_input_t f = {.container_file = "FROM alpine\nRUN true", .config = &cc};
  CHECK_OK(wv_freeze_container_file(fx.a, &f, &out));
  CHECK(same_as_fixture(fx.a, "freeze-file.Dockerfile", out));
  /* A container file without a config is built as it is; an image alone still gets FROM. */
  wv_container_config_t empty = {0};
  f.config = &empty;
  CHECK_OK(wv_freeze_container_file(fx.a, &f, &out));
  CHECK(out == NULL);
  wv_freeze_input_t img = {.container_image = "alpine:3"};
  CHECK_OK(wv_freeze_container_file(fx.a, &img, &out));
  CHECK_EQ_STR(out, "# wave generated container file\nFROM alpine:3\n");
  wv_freeze_input_t none = {0};
  CHECK_EQ_INT(wv_freeze_container_file(fx.a, &none, &out), WV_EINVAL);
  CHECK_EQ_STR(wv_freeze_layer_name(fx.a, &layers[0]), "layer-" H64("a") ".tar.gz");
}

TEST(freeze_entrypoint_source) {
  tfx_t fx;
  CHECK(tfx_open(&fx));
  const char **e, *img;
  size_t n;
  CHECK_OK(wv_freeze_entrypoint_source(
      fx.a,
      "FROM a AS build\nENTRYPOINT [\"x\"]\nFROM --platform=linux/amd64 b:1\n"
      "ENTRYPOINT [\"/bin/tini\", \"--\"]\nRUN x\nENTRYPOINT run  me\n",
      &e, &n, &img));
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_STR(e[0], "run");
  CHECK_EQ_STR(e[1], "me");
  CHECK(img == NULL);
  CHECK_OK(wv_freeze_entrypoint_source(
      fx.a, "FROM a\nENTRYPOINT [\"/bin/tini\", \"--\"]\nFROM --platform=linux/amd64 b:1\nRUN x\n",
      &e, &n, &img));
  CHECK(e == NULL);
  CHECK_EQ_STR(img, "b:1");
  CHECK_OK(wv_freeze_entrypoint_source(fx.a, "BootStrap: docker\nFrom: alpine:3\n", &e, &n, &img));
  CHECK_EQ_STR(img, "alpine:3");
  CHECK_OK(wv_freeze_entrypoint_source(fx.a, "FROM a\nENTRYPOINT [\"/bin/tini\", \"--\"]\n", &e, &n,
                                       &img));
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_STR(e[0], "/bin/tini");
  CHECK_EQ_STR(e[1], "--");
}

WV_TESTS(T(conda_v2), T(conda_v1), T(pixi_v1), T(cran_v1), T(environment_yaml), T(environment_text),
         T(validation_messages), T(spec_example_2_tag), T(wave_request_shapes), T(freeze_rewrite),
         T(freeze_entrypoint_source))
