/* Unit tests for core/config: defaults, the shipped config.yml, each error path. */
#include "core/config.h"
#include "core/err.h"
#include "tests/runner.h"

#include <stdbool.h>
#include <unistd.h>

/* Where load_text wrote the text, and the loader's message. */
typedef struct {
  char path[64];
  char err[512];
} loaded_t;

/* Writes text to a fresh temp file and loads it over the defaults; l says where and why. */
static int load_text(wv_config_t *cfg, loaded_t *l, const char *text) {
  l->err[0] = '\0';
  strcpy(l->path, "/tmp/wv-config-XXXXXX");
  int fd = mkstemp(l->path);
  if (fd < 0)
    return WV_EIO;
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  close(fd);
  if (w != (ssize_t)n)
    return WV_EIO;
  int rc = wv_config_defaults(cfg);
  if (rc == 0)
    rc = wv_config_load(cfg, l->path, l->err, sizeof l->err);
  unlink(l->path);
  return rc;
}

/* Loads text expecting failure; checks the message is "<file>:<line>: <rest>". */
static bool fails_with(const char *text, int line, const char *rest) {
  wv_config_t cfg;
  loaded_t l;
  int rc = load_text(&cfg, &l, text);
  wv_config_free(&cfg);
  char want[512];
  snprintf(want, sizeof want, "%s:%d: %s", l.path, line, rest);
  if (rc == 0 || strcmp(l.err, want) != 0) {
    fprintf(stderr, "  rc=%d\n  got:  %s\n  want: %s\n", rc, l.err, want);
    return false;
  }
  return true;
}

static const char *src_file(const char *name, char *out, size_t outlen) {
  const char *src = getenv("WAVED_SRC");
  snprintf(out, outlen, "%s/%s", src ? src : "..", name);
  if (!src && access(out, R_OK) != 0) /* run by hand from out/tests */
    snprintf(out, outlen, "../../%s", name);
  return out;
}

TEST(defaults) {
  wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  CHECK_EQ_INT(cfg.server_port, 9090);
  CHECK_EQ_INT(cfg.idle_timeout_ms, 910000);
  CHECK_EQ_INT(cfg.token_ttl_ms, 36LL * 3600 * 1000);
  CHECK_EQ_INT(cfg.max_header_bytes, 16384);
  CHECK_EQ_INT(cfg.max_body_size, 10 << 20);
  CHECK_EQ_INT(cfg.storage_map_size, 4ULL << 30);
  CHECK_EQ_INT(cfg.commit_delay_us, 200);
  CHECK(cfg.anonymous_access);
  CHECK_EQ_STR(cfg.server_url, "http://localhost:9090");
  CHECK_EQ_STR(wv_config_authority(&cfg), "localhost:9090");
  CHECK_EQ_STR(cfg.log_level, "info");
  CHECK_EQ_INT(cfg.accounts.len, 0);
  wv_config_free(&cfg);
}

TEST(shipped_config_yml_loads_and_states_defaults) {
  char err[512] = "";
  char path[1024];
  wv_config_t cfg, def;
  unsetenv("WAVE_SERVER_URL");
  unsetenv("WAVE_SERVER_PORT");
  CHECK_OK(wv_config_defaults(&cfg));
  int rc = wv_config_load(&cfg, src_file("config.yml", path, sizeof path), err, sizeof err);
  if (rc)
    fprintf(stderr, "  %s\n", err);
  CHECK_OK(rc);
  CHECK_OK(wv_config_defaults(&def));
  const char *diff = wv_config_first_difference(&cfg, &def);
  if (diff)
    fprintf(stderr, "  config.yml disagrees with the schema default of %s\n", diff);
  CHECK(diff == NULL);
  wv_config_free(&cfg);
  wv_config_free(&def);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  static char text[1 << 16];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  return text;
}

TEST(every_schema_key_documented_in_config_yml) {
  char path[1024];
  const char *text = slurp(src_file("config.yml", path, sizeof path));
  CHECK(text);
  wv_config_keyinfo_t ki;
  size_t i = 0;
  for (; wv_config_schema_at(i, &ki) == 0; i++) {
    /* Each key is introduced by a "# <full.key> —" comment line. */
    char needle[300];
    snprintf(needle, sizeof needle, "# %s \xe2\x80\x94", ki.key);
    if (!strstr(text, needle))
      fprintf(stderr, "  config.yml does not document %s\n", ki.key);
    CHECK_HAS(text, needle);
  }
  CHECK(i >= 20);
}

TEST(every_default_parses) {
  loaded_t l;
  /* wv_config_defaults would fail on a bad default; prove each one through a file too. */
  wv_config_keyinfo_t ki;
  for (size_t i = 0; wv_config_schema_at(i, &ki) == 0; i++) {
    char text[512];
    snprintf(text, sizeof text, "%s: %s\n", ki.key, ki.def);
    wv_config_t cfg;
    int rc = load_text(&cfg, &l, text);
    wv_config_free(&cfg);
    if (rc)
      fprintf(stderr, "  %s\n", l.err);
    CHECK_OK(rc);
  }
}

TEST(values_camelcase_aliases_and_dotted_keys) {
  loaded_t l;
  wv_config_t cfg;
  int rc = load_text(&cfg, &l,
                     "server:\n"
                     "  ioThreads: 3\n"
                     "  max-body-size: 1MB\n"
                     "  maxHeaderSize: 2KiB\n"
                     "micronaut:\n"
                     "  server:\n"
                     "    port: 8081\n"
                     "    idleTimeout: 15m\n"
                     "wave.allowAnonymous: false\n"
                     "wave:\n"
                     "  server: {url: 'https://wave.example.org:8443/'}\n"
                     "  accounts:\n"
                     "    alice: 2BD806C97F0E00AF1A1FC3328FA763A9269723C8DB8FAC4F93AF71DB186D6E90\n"
                     "storage: {commit-delay: 2ms, sweepInterval: 2h, map-size: 1073741824}\n"
                     "log: {level: debug}\n");
  if (rc)
    fprintf(stderr, "  %s\n", l.err);
  CHECK_OK(rc);
  CHECK_EQ_INT(cfg.io_threads, 3);
  CHECK_EQ_INT(cfg.max_body_size, 1000000);
  CHECK_EQ_INT(cfg.max_header_bytes, 2048);
  CHECK_EQ_INT(cfg.server_port, 8081);
  CHECK_EQ_INT(cfg.idle_timeout_ms, 900000);
  CHECK(!cfg.anonymous_access);
  CHECK_EQ_STR(cfg.server_url, "https://wave.example.org:8443");
  CHECK_EQ_STR(wv_config_authority(&cfg), "wave.example.org:8443");
  CHECK_EQ_INT(cfg.accounts.len, 1);
  CHECK_EQ_STR(cfg.accounts.keys[0], "alice");
  CHECK_EQ_STR(cfg.accounts.values[0],
               "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90");
  CHECK_EQ_INT(cfg.commit_delay_us, 2000);
  CHECK_EQ_INT(cfg.sweep_interval_ms, 2LL * 3600 * 1000);
  CHECK_EQ_INT(cfg.storage_map_size, 1 << 30);
  CHECK_EQ_STR(cfg.log_level, "debug");
  wv_config_free(&cfg);
}

TEST(empty_file_and_empty_sections) {
  loaded_t l;
  wv_config_t cfg;
  CHECK_OK(load_text(&cfg, &l, ""));
  wv_config_free(&cfg);
  CHECK_OK(load_text(&cfg, &l, "# only a comment\nserver:\nwave:\n  tokens: ~\n"));
  CHECK_EQ_INT(cfg.server_port, 9090);
  wv_config_free(&cfg);
}

TEST(bad_duration) {
  CHECK(fails_with("server:\n  port: 1\n  idle-timeout: abc\n", 3,
                   "server.idle-timeout: invalid duration 'abc' (expected e.g. 910s, 15m, 36h)"));
  CHECK(fails_with("server:\n  idleTimeout: 910\n", 2,
                   "server.idleTimeout: invalid duration '910' (expected e.g. 910s, 15m, 36h)"));
  CHECK(fails_with("storage.sweep-interval: 1500us\n", 1,
                   "storage.sweep-interval: duration '1500us' is finer than the 1ms resolution "
                   "of this key"));
  CHECK(fails_with("server.idle-timeout: 99999999999999999999h\n", 1,
                   "server.idle-timeout: invalid duration '99999999999999999999h' (expected e.g. "
                   "910s, 15m, 36h)"));
  CHECK(fails_with("server.idle-timeout: 8d\n", 1,
                   "server.idle-timeout: '8d' out of range (1000ms..604800000ms)"));
}

TEST(bad_size) {
  CHECK(fails_with("\nserver:\n  max-body-size: 10 MB\n", 3,
                   "server.max-body-size: invalid size '10 MB' (expected e.g. 16KiB, 10MB, 4GiB)"));
  CHECK(fails_with("server:\n  max-body-size: 10mb\n", 2,
                   "server.max-body-size: invalid size '10mb' (expected e.g. 16KiB, 10MB, 4GiB)"));
  CHECK(fails_with("server:\n  max-header-size: 1B\n", 2,
                   "server.max-header-size: '1B' out of range (1024 bytes..1048576 bytes)"));
}

TEST(bad_int_bool_and_checks) {
  CHECK(fails_with("server:\n  port: 70000\n", 2, "server.port: '70000' out of range (1..65535)"));
  CHECK(fails_with("server:\n  port: 90x\n", 2, "server.port: invalid integer '90x'"));
  CHECK(fails_with("server:\n  port:\n", 2, "server.port: missing value (expected an integer)"));
  CHECK(fails_with("wave:\n  allow-anonymous: maybe\n", 2,
                   "wave.allow-anonymous: invalid boolean 'maybe' (expected true or false)"));
  CHECK(fails_with("log:\n  level: loud\n", 2,
                   "log.level: invalid log level 'loud' (expected debug, info, warn, error or "
                   "off)"));
  CHECK(
      fails_with("wave:\n  server:\n    url: ftp://x\n", 3,
                 "wave.server.url: invalid URL 'ftp://x' (expected http(s)://host[:port][/path])"));
  CHECK(fails_with("wave.server.url: http://h:99999\n", 1,
                   "wave.server.url: invalid URL 'http://h:99999' (expected "
                   "http(s)://host[:port][/path])"));
  CHECK(fails_with("wave:\n  accounts:\n    bob: secret\n", 3,
                   "wave.accounts.bob: expected the output of `waved hash-password` "
                   "(pbkdf2-sha256$...) or the sha256 hex of the password (64 hex digits)"));
}

TEST(unknown_key) {
  CHECK(fails_with("server:\n  port: 9090\n  io-thread: 2\n", 3, "server.io-thread: unknown key"));
  CHECK(fails_with("wave:\n  bild:\n    repo: x\n", 2, "wave.bild: unknown key"));
  CHECK(fails_with("wave:\n  build:\n    repro: x\n", 3, "wave.build.repro: unknown key"));
  CHECK(fails_with("severs: {}\n", 1, "severs: unknown key"));
}

TEST(wrong_type) {
  CHECK(fails_with("server:\n  port:\n    value: 1\n", 3,
                   "server.port: expected an integer, got a mapping"));
  CHECK(fails_with("log:\n  level: [info]\n", 2, "log.level: expected a string, got a list"));
  CHECK(fails_with("server: 9090\n", 1, "server: expected a mapping of keys, got a scalar"));
  CHECK(fails_with("wave:\n  accounts: alice\n", 2,
                   "wave.accounts: expected a mapping, got a scalar"));
  CHECK(fails_with("- a\n- b\n", 1, "the top level must be a mapping of keys"));
}

TEST(yaml_syntax_error) {
  loaded_t l;
  wv_config_t cfg;
  CHECK(load_text(&cfg, &l, "server:\n  port: 1\n  host: [oops\nlog: {}\n") == WV_EPARSE);
  wv_config_free(&cfg);
  char want[128];
  snprintf(want, sizeof want, "%s:", l.path);
  CHECK_PREFIX(l.err, want);
  CHECK_HAS(l.err, "YAML syntax error");
  /* libyaml reports the flow sequence at the line where it notices it is unterminated. */
  int line = atoi(l.err + strlen(want));
  CHECK(line >= 3 && line <= 5);

  CHECK(load_text(&cfg, &l, "server:\n\tport: 1\n") == WV_EPARSE);
  wv_config_free(&cfg);
  CHECK_HAS(l.err, ":2: YAML syntax error");
}

TEST(missing_file) {
  char err[512] = "";
  wv_config_t cfg;
  CHECK_OK(wv_config_defaults(&cfg));
  CHECK_EQ_INT(wv_config_load(&cfg, "/nonexistent/waved.yml", err, sizeof err), WV_EIO);
  CHECK_HAS(err, "/nonexistent/waved.yml: cannot open");
  wv_config_free(&cfg);
}

/* Resolves storage.path = rel and wave.build.workspace = ws against config_file. */
static bool resolves(const char *config_file, const char *rel, const char *ws, const char *want,
                     const char *want_ws) {
  wv_config_t cfg;
  char err[512] = "";
  bool ok = wv_config_defaults(&cfg) == 0;
  free(cfg.storage_path);
  free(cfg.build_workspace);
  cfg.storage_path = strdup(rel);
  cfg.build_workspace = strdup(ws);
  ok = ok && wv_config_resolve_paths(&cfg, config_file, err, sizeof err) == 0;
  ok = ok && strcmp(cfg.storage_path, want) == 0 && strcmp(cfg.build_workspace, want_ws) == 0;
  if (!ok)
    fprintf(stderr, "  %s + %s, %s -> %s, %s (want %s, %s) %s\n", config_file ? config_file : "-",
            rel, ws, cfg.storage_path, cfg.build_workspace, want, want_ws, err);
  wv_config_free(&cfg);
  return ok;
}

TEST(paths_resolved_against_config_dir) {
  char err[512] = "";
  char cwd[4096], want[4200], want_ws[4200];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  /* The shipped default next to an absolute config file. */
  CHECK(resolves("/etc/waved/config.yml", "./data", "", "/etc/waved/data", ""));
  CHECK(resolves("/etc/waved/config.yml", "data/./x//y/", "ws", "/etc/waved/data/x/y",
                 "/etc/waved/ws"));
  CHECK(resolves("/config.yml", "./data", "/abs/ws", "/data", "/abs/ws"));
  CHECK(resolves("/etc/waved/config.yml", "/var/lib/waved", "", "/var/lib/waved", ""));
  CHECK(resolves("/etc/waved/config.yml", "../data", "", "/etc/waved/../data", ""));
  /* A relative config file: its directory, taken from the cwd. */
  snprintf(want, sizeof want, "%s/conf/data", cwd);
  snprintf(want_ws, sizeof want_ws, "%s/conf/ws", cwd);
  CHECK(resolves("./conf/config.yml", "./data", "ws", want, want_ws));
  snprintf(want, sizeof want, "%s/data", cwd);
  CHECK(resolves("config.yml", "./data", "", want, ""));
  /* No config file: the working directory. */
  CHECK(resolves(NULL, "./data", "", want, ""));
  /* Too long once absolute: a clear error naming the key. */
  wv_config_t cfg;
  char longp[5000];
  memset(longp, 'a', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  CHECK_OK(wv_config_defaults(&cfg));
  free(cfg.storage_path);
  cfg.storage_path = strdup(longp);
  CHECK_EQ_INT(wv_config_resolve_paths(&cfg, "/etc/config.yml", err, sizeof err), WV_EINVAL);
  CHECK_PREFIX(err, "storage.path: ");
  wv_config_free(&cfg);
}

TEST(env_overrides) {
  loaded_t l;
  wv_config_t cfg;
  setenv("WAVE_SERVER_URL", "http://[::1]:7000/base", 1);
  setenv("WAVE_SERVER_PORT", "7000", 1);
  int rc = load_text(&cfg, &l, "server: {port: 1234}\nwave.server.url: http://other\n");
  CHECK_OK(rc);
  CHECK_EQ_INT(cfg.server_port, 7000);
  CHECK_EQ_STR(wv_config_authority(&cfg), "[::1]:7000");
  wv_config_free(&cfg);

  setenv("WAVE_SERVER_PORT", "seventy", 1);
  CHECK(load_text(&cfg, &l, "") == WV_EINVAL);
  wv_config_free(&cfg);
  CHECK_EQ_STR(l.err, "WAVE_SERVER_PORT: invalid integer 'seventy'");

  setenv("WAVE_SERVER_PORT", "", 1); /* empty = unset */
  setenv("WAVE_SERVER_URL", "localhost:9090", 1);
  CHECK(load_text(&cfg, &l, "") == WV_EINVAL);
  wv_config_free(&cfg);
  CHECK_EQ_STR(l.err, "WAVE_SERVER_URL: invalid URL 'localhost:9090' (expected "
                      "http(s)://host[:port][/path])");
  unsetenv("WAVE_SERVER_URL");
  unsetenv("WAVE_SERVER_PORT");
}

TEST(print_schema) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  CHECK(f);
  wv_config_print_schema(f);
  fclose(f);
  CHECK_HAS(text, "server.idle-timeout");
  CHECK_HAS(text, "micronaut.server.idle-timeout");
  CHECK_HAS(text, "910s");
  free(text);
}

TEST(registries) {
  loaded_t l;
  wv_config_t cfg;
  setenv("WV_TEST_REG_PASS", "s3cret", 1);
  unsetenv("WV_TEST_REG_UNSET");
  CHECK_OK(load_text(&cfg, &l,
                     "wave:\n  registries:\n"
                     "    \"127.0.0.1:5001\":\n      username: alice\n"
                     "      password: ${WV_TEST_REG_PASS}\n      insecure: true\n"
                     "    quay.io:\n      username: ${WV_TEST_REG_UNSET:}\n"
                     "      password: ${WV_TEST_REG_UNSET:}\n"
                     "    reg.lab: {username: bob, password: \"${WV_TEST_REG_UNSET:dflt}\"}\n"));
  CHECK_EQ_INT(cfg.registries.len, 3);
  CHECK_EQ_STR(cfg.registries.items[0].host, "127.0.0.1:5001");
  CHECK_EQ_STR(cfg.registries.items[0].username, "alice");
  CHECK_EQ_STR(cfg.registries.items[0].password, "s3cret");
  CHECK(cfg.registries.items[0].insecure);
  CHECK(cfg.registries.items[1].username == NULL); /* empty ${VAR:} = anonymous */
  CHECK(!cfg.registries.items[1].insecure);
  CHECK_EQ_STR(cfg.registries.items[2].password, "dflt");
  wv_config_t other;
  CHECK_OK(wv_config_defaults(&other));
  CHECK_EQ_STR(wv_config_first_difference(&cfg, &other), "wave.registries");
  wv_config_free(&other);
  wv_config_free(&cfg);
  CHECK(fails_with("wave:\n  registries:\n    quay.io:\n      user: x\n", 4,
                   "wave.registries.quay.io.user: unknown key (expected username, password, "
                   "insecure, allow)"));
  CHECK(fails_with("wave:\n  registries:\n    quay.io: x\n", 3,
                   "wave.registries.quay.io: expected a mapping of username, password, insecure, "
                   "allow"));
  CHECK(fails_with("wave:\n  registries:\n    quay.io:\n      username: x\n", 4,
                   "wave.registries.quay.io: username without password"));
  CHECK(fails_with("wave:\n  registries:\n    quay.io:\n      insecure: maybe\n", 4,
                   "wave.registries.quay.io.insecure: invalid boolean 'maybe' (expected true or "
                   "false)"));
}

/* wave.registries.<host>.allow: who may use the configured credentials, and for what. */
TEST(registry_allow_policy) {
  loaded_t l;
  wv_config_t cfg;
  CHECK_OK(load_text(&cfg, &l,
                     "wave:\n  registries:\n"
                     "    reg.lab:\n      username: op\n      password: pw\n"
                     "      allow:\n        anonymous: pull\n"
                     "        accounts: {alice: push, bob: none, '*': pull}\n"
                     "    strict.lab: {username: op, password: pw}\n"
                     "    open.lab: {insecure: true}\n"));
  CHECK_EQ_INT(cfg.registries.len, 3);
  const wv_config_registry_t *r = &cfg.registries.items[0], *strict = &cfg.registries.items[1],
                             *open = &cfg.registries.items[2];
  CHECK_EQ_INT(wv_registry_perm(r, NULL), WV_PERM_PULL);
  CHECK_EQ_INT(wv_registry_perm(r, "alice"), WV_PERM_PUSH);
  CHECK_EQ_INT(wv_registry_perm(r, "bob"), WV_PERM_NONE);
  CHECK_EQ_INT(wv_registry_perm(r, "carol"), WV_PERM_PULL); /* "*" */
  /* Defaults: nobody may use the credentials. */
  CHECK_EQ_INT(wv_registry_perm(strict, NULL), WV_PERM_NONE);
  CHECK_EQ_INT(wv_registry_perm(strict, "alice"), WV_PERM_NONE);
  /* No credentials configured: nothing to guard. */
  CHECK_EQ_INT(wv_registry_perm(open, NULL), WV_PERM_PUSH);
  CHECK_EQ_INT(wv_registry_perm(NULL, NULL), WV_PERM_PUSH);
  CHECK_EQ_STR(wv_perm_name(WV_PERM_PULL), "pull");
  wv_config_registry_t copy;
  CHECK_OK(wv_config_registry_copy(&copy, r));
  CHECK_EQ_INT(wv_registry_perm(&copy, "alice"), WV_PERM_PUSH);
  CHECK_EQ_INT(wv_registry_perm(&copy, "bob"), WV_PERM_NONE);
  CHECK_EQ_INT(wv_registry_perm(&copy, NULL), WV_PERM_PULL);
  wv_config_registry_free(&copy);
  /* A changed policy is a changed configuration. */
  wv_config_t other;
  CHECK_OK(load_text(&other, &l,
                     "wave:\n  registries:\n"
                     "    reg.lab:\n      username: op\n      password: pw\n"
                     "      allow:\n        anonymous: pull\n"
                     "        accounts: {alice: pull, bob: none, '*': pull}\n"
                     "    strict.lab: {username: op, password: pw}\n"
                     "    open.lab: {insecure: true}\n"));
  CHECK_EQ_STR(wv_config_first_difference(&cfg, &other), "wave.registries");
  wv_config_free(&other);
  wv_config_free(&cfg);
  CHECK(fails_with("wave:\n  registries:\n    q.io:\n      allow: {anonymous: write}\n", 4,
                   "wave.registries.q.io.allow.anonymous: expected none, pull or push"));
  CHECK(fails_with("wave:\n  registries:\n    q.io:\n      allow: {accounts: {a: all}}\n", 4,
                   "wave.registries.q.io.allow.accounts.a: expected none, pull or push"));
  CHECK(fails_with("wave:\n  registries:\n    q.io:\n      allow: {everyone: pull}\n", 4,
                   "wave.registries.q.io.allow.everyone: unknown key (expected anonymous, "
                   "accounts)"));
  CHECK(fails_with("wave:\n  registries:\n    q.io:\n      allow: pull\n", 4,
                   "wave.registries.q.io.allow: expected a mapping of anonymous, accounts"));
}

TEST(scan_keys) {
  loaded_t l;
  wv_config_t cfg;
  CHECK_OK(load_text(&cfg, &l,
                     "wave:\n  scan:\n    enabled: true\n    severity: HIGH,CRITICAL\n"
                     "    vulnerability: {limit: 7}\n    id: {duration: 1h}\n"));
  CHECK(cfg.scan_enabled);
  CHECK_EQ_STR(cfg.scan_severity, "HIGH,CRITICAL");
  CHECK_EQ_INT(cfg.scan_vuln_limit, 7);
  CHECK_EQ_INT(cfg.scan_id_ttl_ms, 3600000);
  CHECK_EQ_INT(cfg.scan_status_ttl_ms, 5LL * 24 * 3600 * 1000);
  wv_config_free(&cfg);
  CHECK(fails_with("wave.scan.severity: HIGH,SEVERE\n", 1,
                   "wave.scan.severity: unknown severity 'SEVERE' (expected LOW, MEDIUM, HIGH, "
                   "CRITICAL, UNKNOWN)"));
}

/* wave.security.outbound.*: the allow list as a YAML list or one comma string; bad entries. */
TEST(outbound_keys) {
  loaded_t l;
  wv_config_t cfg;
  int rc = load_text(&cfg, &l,
                     "wave:\n"
                     "  security:\n"
                     "    outbound:\n"
                     "      allowPrivate: true\n"
                     "      allow: [127.0.0.1/32, '::1', files.lab.example, '*.corp.example']\n");
  if (rc)
    fprintf(stderr, "  %s\n", l.err);
  CHECK_OK(rc);
  CHECK(cfg.outbound_allow_private);
  CHECK_EQ_STR(cfg.outbound_allow, "127.0.0.1/32,::1,files.lab.example,*.corp.example");
  wv_config_free(&cfg);
  CHECK_OK(load_text(&cfg, &l, "wave.security.outbound.allow: 10.0.0.0/8, fd00::/8\n"));
  CHECK_EQ_STR(cfg.outbound_allow, "10.0.0.0/8, fd00::/8");
  CHECK(!cfg.outbound_allow_private);
  wv_config_free(&cfg);
  CHECK_OK(load_text(&cfg, &l, "wave.security.outbound.allow: []\n"));
  CHECK_EQ_STR(cfg.outbound_allow, "");
  wv_config_free(&cfg);
  CHECK(fails_with("wave.security.outbound:\n  allow:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n", 4,
                   "wave.security.outbound.allow: '10.0.0.1/8' has bits set past its /8 prefix"));
  CHECK(fails_with("wave.security.outbound.allow: [http://x]\n", 1,
                   "wave.security.outbound.allow: 'http://x' is not an IP address, a CIDR block "
                   "or a host name"));
  CHECK(fails_with("wave.security.outbound.allow: [[1]]\n", 1,
                   "wave.security.outbound.allow: list items must be scalars, got a list"));
  CHECK(fails_with("wave.security.outbound.allow: ['a,b']\n", 1,
                   "wave.security.outbound.allow: a list item may not contain a comma"));
  CHECK(fails_with("wave.security.outbound.allow: {a: 1}\n", 1,
                   "wave.security.outbound.allow: expected a list, got a mapping"));
  CHECK_OK(load_text(&cfg, &l, "wave.security.ssrfProtection.enabled: false\n"));
  CHECK(!cfg.ssrf_protection);
  wv_config_free(&cfg);
  CHECK(fails_with("wave.security.outbound.allow-private: maybe\n", 1,
                   "wave.security.outbound.allow-private: invalid boolean 'maybe' (expected true "
                   "or false)"));
}

WV_TESTS(T(defaults), T(registries), T(registry_allow_policy),
         T(shipped_config_yml_loads_and_states_defaults),
         T(every_schema_key_documented_in_config_yml), T(every_default_parses),
         T(values_camelcase_aliases_and_dotted_keys), T(empty_file_and_empty_sections),
         T(bad_duration), T(bad_size), T(bad_int_bool_and_checks), T(unknown_key), T(wrong_type),
         T(yaml_syntax_error), T(missing_file), T(paths_resolved_against_config_dir),
         T(env_overrides), T(print_schema), T(scan_keys), T(outbound_keys))
