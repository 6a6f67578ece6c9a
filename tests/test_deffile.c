/*
 * tests/test_deffile.c — the Singularity definition-file parser
 * (build/sif/deffile.c): headers, sections kept verbatim and concatenated
 * when repeated, %files and %labels lines, every Wave template fixture
 * (the .singularity files of tests/fixtures/templates), and each refusal naming the
 * section or header it refuses.
 */
#include "build/sif/deffile.h"
#include "core/arena.h"
#include "core/err.h"
#include "runner.h"

static int parse(wv_arena_t *a, const char *text, wv_deffile_t *d, const char **msg) {
  *msg = NULL;
  return wv_deffile_parse(a, text, d, msg);
}

TEST(full_file) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  static const char text[] = "# a comment before the header\n"
                             "Bootstrap: docker\n"
                             "From: 127.0.0.1:5000/library/busybox:latest   # the base\n"
                             "\n"
                             "%files\n"
                             "    hello.txt /opt/hello.txt\n"
                             "    \"with space.txt\"\n"
                             "    # not a file\n"
                             "%post -c /bin/bash\n"
                             "    echo post > /posted\n"
                             "%environment\n"
                             "    export A=1\n"
                             "%runscript\n"
                             "    echo run \"$@\"\n"
                             "%labels\n"
                             "    Author someone@example.com\n"
                             "    Version 1.0 beta\n"
                             "%help\n"
                             "    Some help\n"
                             "%test\n"
                             "    true\n"
                             "%startscript\n"
                             "    echo start\n"
                             "%environment\n"
                             "    export B=2\n"
                             "%POST\n"
                             "    echo second\n";
  wv_deffile_t d;
  const char *msg;
  int rc = parse(a, text, &d, &msg);
  if (rc)
    FAIL_AT("%s", msg);
  CHECK_EQ_INT(rc, 0);
  CHECK_PREFIX(d.raw, "Bootstrap: docker\n");
  CHECK_EQ_STR(d.from, "127.0.0.1:5000/library/busybox:latest");
  CHECK_EQ_INT(d.n_headers, 2);
  CHECK_EQ_STR(d.headers[0].key, "bootstrap");
  CHECK_EQ_STR(d.headers[1].value, "127.0.0.1:5000/library/busybox:latest");
  CHECK_EQ_INT(d.n_files, 2);
  CHECK_EQ_STR(d.files[0].src, "hello.txt");
  CHECK_EQ_STR(d.files[0].dst, "/opt/hello.txt");
  CHECK_EQ_STR(d.files[1].src, "with space.txt");
  CHECK_EQ_STR(d.files[1].dst, "with space.txt");
  CHECK_EQ_STR(d.post.body, "    echo post > /posted\n    echo second\n");
  CHECK_EQ_STR(d.post.args, ""); /* the later section's args win */
  CHECK_EQ_STR(d.environment.body, "    export A=1\n    export B=2\n");
  CHECK_EQ_STR(d.runscript.body, "    echo run \"$@\"\n");
  CHECK_EQ_INT(d.n_labels, 2);
  CHECK_EQ_STR(d.labels[1].key, "Version");
  CHECK_EQ_STR(d.labels[1].value, "1.0 beta");
  CHECK_EQ_STR(d.help.body, "    Some help\n");
  CHECK_EQ_STR(d.test.body, "    true\n");
  CHECK_EQ_STR(d.startscript.body, "    echo start\n");
}

TEST(registry_namespace_continuation) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_deffile_t d;
  const char *msg;
  CHECK_EQ_INT(parse(a,
                     "BootStrap: docker\nRegistry: reg.example.com\nNamespace: lab\nFrom: \\\n"
                     "  tool:1\n%post\n  true\n",
                     &d, &msg),
               0);
  CHECK_EQ_STR(d.from, "reg.example.com/lab/tool:1");
  CHECK_EQ_STR(d.post.args, "");
}

/* tests/fixtures/templates/<name>, read into a; NULL when unreadable. */
static const char *fixture(wv_arena_t *a, const char *name) {
  return wv_test_read_file(a, wv_test_fixture(a, "templates", name), 1 << 16, NULL);
}

TEST(wave_templates_parse) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  static const char *const names[] = {"conda-v1-entries.singularity", "conda-v1-lock.singularity",
                                      "conda-v2-entries.singularity", "conda-v2-lock.singularity",
                                      "cran-v1-context.singularity",  "cran-v1-entries.singularity",
                                      "freeze-image.singularity",     "pixi-v1.singularity"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *t = fixture(a, names[i]);
    CHECK(t);
    wv_deffile_t d;
    const char *msg;
    int rc = parse(a, t, &d, &msg);
    if (rc)
      FAIL_AT("%s: %s", names[i], msg);
    CHECK_EQ_INT(rc, 0);
    CHECK(d.from && *d.from);
  }
  wv_deffile_t d;
  const char *msg;
  CHECK_EQ_INT(parse(a, fixture(a, "freeze-image.singularity"), &d, &msg), 0);
  CHECK_PREFIX(d.raw, "BootStrap: docker"); /* the leading comment is not stored */
  CHECK_EQ_INT(d.n_files, 2);
  CHECK_EQ_STR(d.files[0].dst, "/");
  CHECK_PREFIX(d.files[0].src, "{{wave_context_dir}}/layer-aaaa");
  CHECK_EQ_STR(d.environment.body,
               "  export WAVE_ENTRY_CHAIN=\"/usr/bin/tini --\"\n  export A=1 B=two\n");
  CHECK_EQ_STR(d.runscript.body, "  'my tool' it\\'s\n");
}

TEST(bootstrap_oras) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  wv_deffile_t d;
  const char *msg = NULL;
  CHECK_OK(parse(a,
                 "Bootstrap: oras\nFrom: oras://registry.example.com/lab/base:1.0\n%post\n  "
                 "true\n",
                 &d, &msg));
  CHECK(d.oras);
  CHECK_EQ_STR(d.from, "registry.example.com/lab/base:1.0");
  CHECK_OK(parse(a, "BootStrap: docker\nFrom: ubuntu\n", &d, &msg));
  CHECK(!d.oras);
}

TEST(refusals_name_what) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  static const struct {
    const char *text, *want;
    int rc;
  } cases[] = {
      {"Bootstrap: library\nFrom: x\n",
       "bootstrap agent not supported by this server (only "
       "'docker' and 'oras') 'library'",
       WV_EINVAL},
      {"Bootstrap: localimage\nFrom: /srv/images/base.sif\n",
       "'Bootstrap: localimage' names an image file on the server's disk, which a request may "
       "not read",
       WV_EINVAL},
      {"Bootstrap: oras\n%post\n true\n", "'Bootstrap: oras' needs a 'From:' header", WV_EINVAL},
      {"Bootstrap: docker\n%post\n true\n", "needs a 'From:' header", WV_EINVAL},
      {"From: x\n", "must start with a 'Bootstrap:' header", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\nFoo: y\n", "unknown header keyword 'foo'", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\nMirrorURL: y\n", "header keyword not supported", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\nnot a header\n", "header line without", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\n%setup\n true\n",
       "section not supported by this server "
       "'%setup'",
       WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\n%appinstall foo\n true\n", "'%appinstall'", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\n%bogus\n", "unknown section '%bogus'", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\n%files from build\n a b\n", "%files from another stage",
       WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\n%files\n a b c\n", "more than a source", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\n%files\n \"a b\n", "unclosed quote", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\n%post\n true\nBootstrap: docker\nFrom: y\n", "multi-stage",
       WV_EINVAL},
      {"Bootstrap: docker\nFrom: {{ base }}\n", "undefined build argument 'base'", WV_EINVAL},
      {"Bootstrap: docker\nFrom: x\nFrom: y\n", "given twice 'from'", WV_EINVAL},
      {"", "must start with", WV_EINVAL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    wv_deffile_t d;
    const char *msg = NULL;
    int rc = parse(a, cases[i].text, &d, &msg);
    if (rc != cases[i].rc || !msg || !strstr(msg, cases[i].want) ||
        strncmp(msg, "Invalid Singularity definition file - ", 38) != 0) {
      FAIL_AT("case %zu: rc %d msg '%s', want '%s'", i, rc, msg ? msg : "(null)", cases[i].want);
      return;
    }
  }
}

TEST(limits) {
  wv_arena_t *a = wv_test_arena();
  CHECK(a);
  char *big = malloc(WV_DEFFILE_MAX + 2);
  CHECK(big);
  memset(big, '#', WV_DEFFILE_MAX + 1);
  big[WV_DEFFILE_MAX + 1] = 0;
  wv_deffile_t d;
  const char *msg;
  CHECK_EQ_INT(parse(a, big, &d, &msg), WV_ETOOBIG);
  free(big);
  char *many = wv_arena_alloc(a, 64 * 1024);
  int n = sprintf(many, "Bootstrap: docker\nFrom: x\n%%files\n");
  for (int i = 0; i <= WV_DEFFILE_MAX_FILES; i++)
    n += sprintf(many + n, " f%d\n", i);
  CHECK_EQ_INT(parse(a, many, &d, &msg), WV_ETOOBIG);
}

WV_TESTS(T(full_file), T(registry_namespace_continuation), T(wave_templates_parse),
         T(bootstrap_oras), T(refusals_name_what), T(limits))
