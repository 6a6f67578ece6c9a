/* Unit tests for core/preflight: builder programs, storage directories, disk, port, texts. */
#include "core/config.h"
#include "core/err.h"
#include "core/preflight.h"
#include "tests/runner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void set_str(char **field, const char *v) {
  free(*field);
  *field = strdup(v);
}

/* The builder named by templates whose programs exist, then ones whose programs do not. */
TEST(builder_programs_from_templates) {
  wv_config_t cfg;
  wv_preflight_t *pf;
  char why[256];
  CHECK_OK(wv_config_defaults(&cfg));
  set_str(&cfg.build_buildah_build, "/bin/sh --runtime /bin/true build {context}");
  set_str(&cfg.build_buildah_push, "sh push {image}");
  set_str(&cfg.build_buildah_cleanup, "");
  CHECK_OK(wv_preflight_new(&cfg, WV_JOB_MEM_CGROUP2, &pf));
  CHECK_OK(wv_preflight_builder(pf, why, sizeof why));
  CHECK_EQ_STR(why, "");
  CHECK_EQ_STR(wv_preflight_mem_name(pf), "cgroup2");
  wv_preflight_free(pf);

  /* A missing --runtime is found as well as a missing program. */
  set_str(&cfg.build_buildah_build, "sh --runtime=/nonexistent/runc build {context}");
  CHECK_OK(wv_preflight_new(&cfg, WV_JOB_MEM_RLIMIT, &pf));
  CHECK_EQ_INT(wv_preflight_builder(pf, why, sizeof why), WV_EUNAVAIL);
  CHECK_EQ_STR(why, "/nonexistent/runc not found");
  CHECK_EQ_STR(wv_preflight_mem_name(pf), "rlimit-as");
  wv_preflight_free(pf);

  set_str(&cfg.build_buildah_build, "no-such-buildah-xyz build {context}");
  CHECK_OK(wv_preflight_new(&cfg, WV_JOB_MEM_NONE, &pf));
  CHECK_EQ_INT(wv_preflight_builder(pf, why, sizeof why), WV_EUNAVAIL);
  CHECK_EQ_STR(why, "no-such-buildah-xyz not found");
  wv_preflight_free(pf);

  /* buildkit: its own template, and the buildkitd socket it names. */
  set_str(&cfg.build_builder, "buildkit");
  set_str(&cfg.build_buildkit_build, "sh --addr unix:///nonexistent/buildkitd.sock build");
  CHECK_OK(wv_preflight_new(&cfg, WV_JOB_MEM_CGROUP1, &pf));
  CHECK_EQ_INT(wv_preflight_builder(pf, why, sizeof why), WV_EUNAVAIL);
  CHECK_EQ_STR(why, "no buildkitd socket at /nonexistent/buildkitd.sock");
  wv_preflight_free(pf);

  /* Builds switched off: nothing is needed. */
  cfg.build_enabled = false;
  CHECK_OK(wv_preflight_new(&cfg, WV_JOB_MEM_NONE, &pf));
  CHECK_OK(wv_preflight_builder(pf, why, sizeof why));
  wv_preflight_free(pf);
  wv_config_free(&cfg);
}

TEST(storage_dirs) {
  char base[] = "/tmp/wv-preflight-XXXXXX", path[256], err[512];
  CHECK(mkdtemp(base) != NULL);
  /* Missing parents are created. */
  snprintf(path, sizeof path, "%s/a/b/data", base);
  CHECK_OK(wv_preflight_dir("storage.path", path, err, sizeof err));
  struct stat st;
  CHECK_EQ_INT(stat(path, &st), 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK_OK(wv_preflight_dir("storage.path", path, err, sizeof err)); /* again: fine */
  /* A file in the way: one line naming the key, the path and the reason. */
  snprintf(path, sizeof path, "%s/file", base);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  fclose(f);
  char under[300];
  snprintf(under, sizeof under, "%s/data", path);
  CHECK_EQ_INT(wv_preflight_dir("wave.build.workspace", under, err, sizeof err), WV_EIO);
  char want[600];
  snprintf(want, sizeof want, "wave.build.workspace: %s: cannot create the directory: %s", under,
           strerror(ENOTDIR));
  CHECK_EQ_STR(err, want);
  CHECK_EQ_INT(wv_preflight_dir("storage.path", path, err, sizeof err), WV_EIO);
  CHECK_PREFIX(err, "storage.path: ");
  /* A read-only place (as root, /proc is still refused). */
  CHECK_EQ_INT(wv_preflight_dir("storage.path", "/proc/wv-preflight", err, sizeof err), WV_EIO);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", base);
  CHECK_EQ_INT(system(cmd), 0);
}

TEST(disk_and_reserve) {
  wv_preflight_disk_t d;
  CHECK_OK(wv_preflight_disk_stat("/tmp", 0, &d));
  CHECK(d.total > 0 && d.free <= d.total && !d.low);
  /* A reserve above the filesystem's size is capped at half of it. */
  CHECK_OK(wv_preflight_disk_stat("/tmp", UINT64_MAX, &d));
  CHECK_EQ_INT(d.reserve, d.total / 2);
  CHECK_EQ_INT(d.low, (d.free < d.total / 2));
  CHECK_EQ_INT(wv_preflight_disk_stat("/nonexistent/wv", 0, &d), WV_EIO);
  CHECK(d.low);
  char text[512];
  wv_preflight_disk_nospace_text("/tmp", 0, text, sizeof text);
  CHECK_PREFIX(text, "Insufficient storage - /tmp: ");
  CHECK_HAS(text, " bytes free");
  CHECK_LACKS(text, "reserve");
  wv_preflight_disk_nospace_text("/tmp", UINT64_MAX, text, sizeof text);
  CHECK(d.low ? strstr(text, "below the reserve of") != NULL : 1);
  wv_preflight_disk_nospace_text("/nonexistent/wv", 0, text, sizeof text);
  CHECK_EQ_STR(text, "Insufficient storage - /nonexistent/wv: free space unknown");
}

TEST(port_in_use) {
  char err[512];
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  CHECK(fd >= 0);
  CHECK_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(listen(fd, 1), 0);
  CHECK_EQ_INT(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  int port = ntohs(a.sin_port);
  CHECK_EQ_INT(wv_preflight_port("127.0.0.1", port, err, sizeof err), WV_EIO);
  CHECK_PREFIX(err, "server.port: cannot listen on 127.0.0.1:");
  CHECK_HAS(err, "Address already in use");
  close(fd);
  CHECK_OK(wv_preflight_port("127.0.0.1", port, err, sizeof err)); /* free again */
  CHECK_OK(wv_preflight_port("127.0.0.1", 0, err, sizeof err));
  CHECK_EQ_INT(wv_preflight_port("not-an-ip", 9090, err, sizeof err), WV_EIO);
  CHECK_PREFIX(err, "server.host: 'not-an-ip'");
}

TEST(errno_mapping) {
  CHECK_EQ_INT(wv_err_io(ENOSPC), WV_ENOSPC);
  CHECK_EQ_INT(wv_err_io(EDQUOT), WV_ENOSPC);
  CHECK_EQ_INT(wv_err_io(EIO), WV_EIO);
  CHECK_EQ_INT(wv_err_io(EACCES), WV_EIO);
}

WV_TESTS(T(builder_programs_from_templates), T(storage_dirs), T(disk_and_reserve), T(port_in_use),
         T(errno_mapping))
