/*
 * build/context.c — safe tar.gz extraction for build contexts (see context.h).
 *
 * DESIGN. Bytes flow one way: input → zlib inflate (gzip, multi-member) →
 * sha256 → a tar state machine fed in arbitrary slices. The state machine
 * collects 512-byte headers, then either streams an entry's data into the
 * file being written, collects it as metadata (pax / GNU long names, capped)
 * or discards it, then skips the padding to the next block. Nothing is held
 * whole in memory.
 *
 * Path safety never relies on string checks alone: names are normalised
 * (no absolute paths, no "..", "." and empty components dropped), and then
 * every directory on the way is opened with openat(O_NOFOLLOW | O_DIRECTORY)
 * starting from an fd of the context root, so a symlink planted by an
 * earlier entry cannot redirect a write. Symlink targets are checked
 * lexically and resolved on disk when created and, at the end, every symlink
 * is resolved inside the root again (following chains through the links
 * actually on disk) to catch combinations such as "a -> ." then "b -> a/..".
 * A hard link to a symlink becomes a symlink with the same text, checked the
 * same way: no chain of links may produce a path outside the root.
 */
#include "build/context.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define BLOCK 512
#define CHUNK (64u * 1024)
#define MAX_PATH_LEN 4096
#define MAX_META (64u * 1024) /* pax header / GNU long name data */
#define MAX_LINK_HOPS 40

void wv_context_limits_default(wv_context_limits_t *l) {
  l->max_file_bytes = 1u << 20;
  l->max_total_bytes = 10u << 20;
  l->max_entries = 10000;
}

typedef enum { ST_HEADER, ST_DATA, ST_PAD, ST_END } state_t;
typedef enum { DATA_FILE, DATA_META, DATA_SKIP } sink_t;

typedef struct link_rec {
  char *path;
  struct link_rec *next;
} link_rec_t;

typedef struct {
  wv_arena_t *a;
  const char **msg;
  const wv_context_limits_t *lim;
  wv_context_result_t *res;
  int root;
  wv_sha256_t sha;
  uint64_t stream, stream_max;
  /* tar parser */
  state_t st;
  uint8_t hdr[BLOCK];
  size_t hdr_fill;
  uint64_t remaining, pad;
  sink_t sink;
  int fd;
  char meta_kind;
  char *meta;
  size_t meta_len;
  char *next_path, *next_link; /* from pax / GNU headers, for the next entry */
  int64_t next_size;
  int zero_blocks;
  uint64_t entries;
  const char *name; /* current entry, for messages */
  link_rec_t *links;
} tar_t;

static int say(tar_t *t, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(tar_t *t, int rc, const char *fmt, ...) {
  if (t->msg) {
    va_list ap;
    va_start(ap, fmt);
    *t->msg = wv_arena_vsprintf(t->a, fmt, ap);
    va_end(ap);
  }
  return rc;
}

/* "1 MB", "512 KB" or "1000 bytes": the limit as the message shows it. */
static const char *human(wv_arena_t *a, uint64_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0)
    return wv_arena_sprintf(a, "%llu MB", (unsigned long long)(n >> 20));
  if (n >= 1024 && n % 1024 == 0)
    return wv_arena_sprintf(a, "%llu KB", (unsigned long long)(n >> 10));
  return wv_arena_sprintf(a, "%llu bytes", (unsigned long long)n);
}

/* ---- names ------------------------------------------------------------------------- */

/*
 * Normalises an entry name into "a/b/c": refuses absolute paths and ".."
 * components, drops "." and empty components. "" means the root itself.
 */
static int normalise(tar_t *t, const char *in, char **out) {
  if (in[0] == '/' || strlen(in) > MAX_PATH_LEN)
    return say(t, WV_EINVAL, "Build context entry '%s' has an unsafe path", in);
  char *r = wv_arena_alloc(t->a, strlen(in) + 1), *w = r;
  if (!r)
    return WV_ENOMEM;
  for (const char *p = in; *p;) {
    size_t n = strcspn(p, "/");
    if (n == 2 && !strncmp(p, "..", 2))
      return say(t, WV_EINVAL, "Build context entry '%s' has an unsafe path", in);
    if (n && !(n == 1 && *p == '.')) {
      if (w != r)
        *w++ = '/';
      memcpy(w, p, n), w += n;
    }
    p += n + (p[n] == '/');
  }
  *w = '\0';
  *out = r;
  return 0;
}

/*
 * Opens the directory that holds path (creating missing directories) with
 * every component opened O_NOFOLLOW from the root. *base points at the last
 * component. Returns an fd (caller closes) or a negative code.
 */
static int open_parent(tar_t *t, char *path, const char **base) {
  int dfd = dup(t->root);
  if (dfd < 0)
    return say(t, WV_EIO, "Cannot open the build context directory: %s", strerror(errno));
  char *p = path;
  for (char *slash; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
    *slash = '\0';
    if (mkdirat(dfd, p, 0755) != 0 && errno != EEXIST) {
      int e = errno;
      *slash = '/';
      close(dfd);
      return say(t, WV_EIO, "Build context entry '%s' cannot be created: %s", t->name, strerror(e));
    }
    int next = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    *slash = '/';
    close(dfd);
    if (next < 0) {
      if (e == ELOOP || e == ENOTDIR)
        return say(t, WV_EINVAL,
                   "Build context entry '%s' would be written through a symbolic link or a file",
                   t->name);
      return say(t, WV_EIO, "Build context entry '%s' cannot be created: %s", t->name, strerror(e));
    }
    dfd = next;
  }
  *base = p;
  return dfd;
}

/* Removes a non-directory left by an earlier entry of the same name (tar overwrites). */
static int clear_slot(tar_t *t, int dfd, const char *base) {
  struct stat st;
  if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno == ENOENT
               ? 0
               : say(t, WV_EIO, "Build context entry '%s': %s", t->name, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return say(t, WV_EINVAL, "Build context entry '%s' replaces a directory", t->name);
  return unlinkat(dfd, base, 0) == 0
             ? 0
             : say(t, WV_EIO, "Build context entry '%s': %s", t->name, strerror(errno));
}

/* ---- entries ----------------------------------------------------------------------- */

static int begin_file(tar_t *t, char *path, unsigned mode, uint64_t size) {
  if (size > t->lim->max_file_bytes)
    return say(t, WV_ETOOBIG, "Build context file '%s' exceeds the maximum allowed size of %s",
               t->name, human(t->a, t->lim->max_file_bytes));
  if (t->res->bytes + size > t->lim->max_total_bytes)
    return say(t, WV_ETOOBIG, "Build context exceeds the maximum allowed size of %s",
               human(t->a, t->lim->max_total_bytes));
  if (!*path)
    return say(t, WV_EINVAL, "Build context entry '%s' has an unsafe path", t->name);
  const char *base;
  int dfd = open_parent(t, path, &base);
  if (dfd < 0)
    return dfd;
  int rc = clear_slot(t, dfd, base);
  if (!rc) {
    t->fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   (mode & 0755) | 0600);
    if (t->fd < 0)
      rc = say(t, WV_EIO, "Build context entry '%s' cannot be created: %s", t->name,
               strerror(errno));
  }
  close(dfd);
  if (rc)
    return rc;
  t->res->files++;
  t->res->bytes += size;
  t->sink = DATA_FILE;
  return 0;
}

static int make_dir(tar_t *t, char *path, unsigned mode) {
  t->res->dirs++;
  if (!*path)
    return 0;
  const char *base;
  int dfd = open_parent(t, path, &base);
  if (dfd < 0)
    return dfd;
  int rc = 0;
  if (mkdirat(dfd, base, (mode & 0755) | 0700) != 0) {
    struct stat st;
    if (errno != EEXIST || fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISDIR(st.st_mode))
      rc = say(t, WV_EINVAL, "Build context entry '%s' cannot be created as a directory", t->name);
  }
  close(dfd);
  return rc;
}

/* A symlink target is resolved lexically from the link's directory; it must stay inside. */
static bool target_inside(const char *link_path, const char *target) {
  if (target[0] == '/' || !target[0])
    return false;
  long depth = 0;
  for (const char *p = link_path; (p = strchr(p, '/')) != NULL; p++)
    depth++;
  for (const char *p = target; *p;) {
    size_t n = strcspn(p, "/");
    if (n == 2 && !strncmp(p, "..", 2)) {
      if (--depth < 0)
        return false;
    } else if (n && !(n == 1 && *p == '.')) {
      depth++;
    }
    p += n + (p[n] == '/');
  }
  return true;
}

static bool resolves_inside(tar_t *t, const char *path);

/*
 * Creates path -> target after the lexical check, then resolves the new link
 * through the links already on disk at once (check_end resolves every link
 * again, since a later entry may change what an earlier one resolves to).
 */
static int make_symlink(tar_t *t, char *path, const char *target) {
  if (!*path || !target_inside(path, target))
    return say(t, WV_EINVAL,
               "Build context entry '%s' is a link pointing outside the build context", t->name);
  link_rec_t *rec = wv_arena_alloc(t->a, sizeof *rec);
  if (!rec || !(rec->path = wv_arena_strdup(t->a, path)))
    return WV_ENOMEM;
  const char *base;
  int dfd = open_parent(t, path, &base);
  if (dfd < 0)
    return dfd;
  int rc = clear_slot(t, dfd, base);
  if (!rc && symlinkat(target, dfd, base) != 0)
    rc = say(t, WV_EIO, "Build context entry '%s' cannot be created: %s", t->name, strerror(errno));
  if (!rc && !resolves_inside(t, rec->path)) {
    unlinkat(dfd, base, 0);
    rc = say(t, WV_EINVAL, "Build context entry '%s' is a link pointing outside the build context",
             t->name);
  }
  close(dfd);
  if (!rc)
    rec->next = t->links, t->links = rec, t->res->symlinks++;
  return rc;
}

/*
 * A hard link names its target's final entry. When that entry is a symlink,
 * linking it would copy its text to another directory, where the same
 * relative target may point elsewhere (outside): so the link becomes a new
 * symlink with that text, checked like any other. Directories on the way to
 * the target are opened O_NOFOLLOW, so a target is never reached through a
 * symlink.
 */
static int make_hardlink(tar_t *t, char *path, const char *target) {
  char *tp;
  int rc = normalise(t, target, &tp);
  if (rc || !*tp || !*path)
    return say(t, WV_EINVAL,
               "Build context entry '%s' is a link pointing outside the build context", t->name);
  const char *tbase, *base;
  int tfd = open_parent(t, tp, &tbase);
  if (tfd < 0)
    return tfd;
  struct stat st;
  if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    char text[MAX_PATH_LEN + 1];
    ssize_t n = readlinkat(tfd, tbase, text, MAX_PATH_LEN);
    close(tfd);
    if (n < 0)
      return say(t, WV_EIO, "Build context entry '%s' cannot be linked to '%s': %s", t->name,
                 target, strerror(errno));
    text[n] = '\0';
    rc = make_symlink(t, path, text);
    if (!rc) /* counted as a hard link, as the archive says */
      t->res->symlinks--, t->res->hardlinks++;
    return rc;
  }
  int dfd = open_parent(t, path, &base);
  if (dfd < 0) {
    close(tfd);
    return dfd;
  }
  rc = clear_slot(t, dfd, base);
  if (!rc && linkat(tfd, tbase, dfd, base, 0) != 0)
    rc = say(t, errno == ENOENT ? WV_EINVAL : WV_EIO,
             "Build context entry '%s' cannot be linked to '%s': %s", t->name, target,
             strerror(errno));
  close(tfd);
  close(dfd);
  if (!rc)
    t->res->hardlinks++;
  return rc;
}

/* ---- headers ------------------------------------------------------------------------ */

/* Octal (NUL/space terminated) or GNU base-256 numbers. -1 when malformed. */
static int64_t tar_number(const uint8_t *f, size_t n) {
  if (f[0] & 0x80) {
    if (f[0] != 0x80)
      return -1; /* negative or too large */
    uint64_t v = 0;
    for (size_t i = 1; i < n; i++) {
      if (v >> 55)
        return -1;
      v = v << 8 | f[i];
    }
    return (int64_t)v;
  }
  size_t i = 0;
  while (i < n && f[i] == ' ')
    i++;
  uint64_t v = 0;
  bool any = false;
  for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, any = true) {
    if (v >> 60)
      return -1;
    v = v << 3 | (uint64_t)(f[i] - '0');
  }
  for (; i < n; i++)
    if (f[i] != ' ' && f[i] != '\0')
      return -1;
  return any ? (int64_t)v : 0;
}

static bool checksum_ok(const uint8_t *h) {
  int64_t want = tar_number(h + 148, 8);
  uint64_t u = 0;
  int64_t s = 0;
  for (int i = 0; i < BLOCK; i++) {
    uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
    u += c, s += (int8_t)c;
  }
  return want >= 0 && ((uint64_t)want == u || want == s);
}

static char *field(tar_t *t, const uint8_t *f, size_t n) {
  size_t l = strnlen((const char *)f, n);
  return wv_arena_strndup(t->a, (const char *)f, l);
}

/* Applies pax records ("<len> key=value\n") we care about to the next entry. */
static int apply_pax(tar_t *t) {
  for (size_t i = 0; i < t->meta_len;) {
    size_t j = i;
    uint64_t len = 0;
    while (j < t->meta_len && t->meta[j] >= '0' && t->meta[j] <= '9' && len < MAX_META)
      len = len * 10 + (uint64_t)(t->meta[j++] - '0');
    if (j == i || j >= t->meta_len || t->meta[j] != ' ' || len < (j - i) + 3 ||
        i + len > t->meta_len || t->meta[i + len - 1] != '\n')
      return say(t, WV_EPARSE, "Build context archive is corrupted: invalid pax header");
    const char *kv = t->meta + j + 1;
    size_t kvlen = i + len - 1 - (j + 1);
    const char *eq = memchr(kv, '=', kvlen);
    if (!eq)
      return say(t, WV_EPARSE, "Build context archive is corrupted: invalid pax header");
    size_t kl = (size_t)(eq - kv), vl = kvlen - kl - 1;
    char *val = wv_arena_strndup(t->a, eq + 1, vl);
    if (!val)
      return WV_ENOMEM;
    if (kl == 4 && !strncmp(kv, "path", 4))
      t->next_path = val;
    else if (kl == 8 && !strncmp(kv, "linkpath", 8))
      t->next_link = val;
    else if (kl == 4 && !strncmp(kv, "size", 4)) {
      char *end;
      errno = 0;
      long long v = strtoll(val, &end, 10);
      if (!*val || *end || v < 0 || errno)
        return say(t, WV_EPARSE, "Build context archive is corrupted: invalid pax size");
      t->next_size = v;
    }
    i += len;
  }
  return 0;
}

/* Called when a metadata entry's data is complete. */
static int end_meta(tar_t *t) {
  if (t->meta_kind == 'x')
    return apply_pax(t);
  if (t->meta_kind == 'L' || t->meta_kind == 'K') {
    char *s = wv_arena_strndup(t->a, t->meta, strnlen(t->meta, t->meta_len));
    if (!s)
      return WV_ENOMEM;
    *(t->meta_kind == 'L' ? &t->next_path : &t->next_link) = s;
  }
  return 0; /* 'g': global pax headers are ignored */
}

static const char *type_name(char type) {
  switch (type) {
  case '3':
    return "character device";
  case '4':
    return "block device";
  case '6':
    return "fifo";
  default:
    return "unsupported entry type";
  }
}

/* Sets up the data phase of the entry whose header is in t->hdr. */
static int on_header(tar_t *t) {
  const uint8_t *h = t->hdr;
  if (!checksum_ok(h))
    return say(t, WV_EPARSE, "Build context archive is corrupted: invalid tar header checksum");
  if (++t->entries > t->lim->max_entries)
    return say(t, WV_ETOOBIG, "Build context exceeds the maximum of %u entries",
               (unsigned)t->lim->max_entries);
  char type = (char)h[156];
  int64_t size = tar_number(h + 124, 12);
  int64_t mode = tar_number(h + 100, 8);
  if (size < 0 || mode < 0)
    return say(t, WV_EPARSE, "Build context archive is corrupted: invalid tar header");
  t->sink = DATA_SKIP;
  t->remaining = (uint64_t)size;
  t->pad = (BLOCK - (uint64_t)size % BLOCK) % BLOCK;
  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
    if ((uint64_t)size > MAX_META)
      return say(t, WV_ETOOBIG, "Build context archive has a metadata header above %u bytes",
                 MAX_META);
    t->meta = wv_arena_alloc(t->a, (size_t)size + 1);
    if (!t->meta)
      return WV_ENOMEM;
    t->meta_len = 0, t->meta_kind = type, t->sink = DATA_META;
    return 0;
  }
  /* An ordinary entry: its name (pax / GNU long name first, else ustar prefix + name). */
  char *name = t->next_path;
  if (!name) {
    char *n = field(t, h, 100);
    bool posix = !memcmp(h + 257, "ustar\0", 6);
    char *prefix = posix ? field(t, h + 345, 155) : NULL;
    name = prefix && *prefix ? wv_arena_sprintf(t->a, "%s/%s", prefix, n) : n;
  }
  char *link = t->next_link ? t->next_link : field(t, h + 157, 100);
  if (t->next_size >= 0 && (type == '0' || type == '\0' || type == '7'))
    t->remaining = (uint64_t)t->next_size, t->pad = (BLOCK - t->remaining % BLOCK) % BLOCK;
  t->next_path = t->next_link = NULL, t->next_size = -1;
  if (!name || !link)
    return WV_ENOMEM;
  t->name = name;
  char *path;
  int rc = normalise(t, name, &path);
  if (rc)
    return rc;
  switch (type) {
  case '0':
  case '\0':
  case '7':
    return begin_file(t, path, (unsigned)mode, t->remaining);
  case '5':
    return make_dir(t, path, (unsigned)mode);
  case '2':
    return make_symlink(t, path, link);
  case '1':
    return make_hardlink(t, path, link);
  default:
    return say(t, WV_EINVAL, "Build context entry '%s' has an unsupported type (%s)", name,
               type_name(type));
  }
}

/* ---- the tar state machine ------------------------------------------------------------ */

static int write_all(tar_t *t, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(t->fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return say(t, w < 0 ? wv_err_io(errno) : WV_EIO,
                 "Build context entry '%s' cannot be written: %s", t->name, strerror(errno));
    p += w, n -= (size_t)w;
  }
  return 0;
}

static int end_entry(tar_t *t) {
  int rc = 0;
  if (t->sink == DATA_FILE) {
    if (close(t->fd) != 0)
      rc = say(t, WV_EIO, "Build context entry '%s' cannot be written: %s", t->name,
               strerror(errno));
    t->fd = -1;
  } else if (t->sink == DATA_META) {
    rc = end_meta(t);
  }
  t->sink = DATA_SKIP;
  t->st = t->pad ? ST_PAD : ST_HEADER;
  return rc;
}

static int header_block(tar_t *t) {
  static const uint8_t zero[BLOCK];
  t->hdr_fill = 0;
  if (!memcmp(t->hdr, zero, BLOCK)) {
    if (++t->zero_blocks == 2)
      t->st = ST_END;
    return 0;
  }
  t->zero_blocks = 0;
  int rc = on_header(t);
  if (rc)
    return rc;
  if (t->remaining)
    t->st = ST_DATA;
  else
    rc = end_entry(t);
  return rc;
}

/* Feeds n decompressed bytes to the parser. */
static int tar_feed(tar_t *t, const uint8_t *p, size_t n) {
  int rc = 0;
  while (n && !rc) {
    size_t k;
    switch (t->st) {
    case ST_HEADER:
      k = BLOCK - t->hdr_fill < n ? BLOCK - t->hdr_fill : n;
      memcpy(t->hdr + t->hdr_fill, p, k);
      t->hdr_fill += k;
      if (t->hdr_fill == BLOCK)
        rc = header_block(t);
      break;
    case ST_DATA:
      k = t->remaining < n ? (size_t)t->remaining : n;
      if (t->sink == DATA_FILE)
        rc = write_all(t, p, k);
      else if (t->sink == DATA_META)
        memcpy(t->meta + t->meta_len, p, k), t->meta_len += k;
      t->remaining -= k;
      if (!rc && !t->remaining)
        rc = end_entry(t);
      break;
    case ST_PAD:
      k = t->pad < n ? (size_t)t->pad : n;
      t->pad -= k;
      if (!t->pad)
        t->st = ST_HEADER;
      break;
    default: /* after the end-of-archive blocks: hashed, otherwise ignored */
      k = n;
      break;
    }
    p += k, n -= k;
  }
  return rc;
}

/* Hashes and parses a slice of the tar stream, enforcing the stream cap. */
static int on_tar_bytes(tar_t *t, const uint8_t *p, size_t n) {
  t->stream += n;
  if (t->stream > t->stream_max)
    return say(t, WV_ETOOBIG, "Build context exceeds the maximum allowed size of %s",
               human(t->a, t->lim->max_total_bytes));
  int rc = wv_sha256_update(&t->sha, p, n);
  return rc ? rc : tar_feed(t, p, n);
}

/* ---- gzip ------------------------------------------------------------------------------- */

typedef struct {
  z_stream z;
  bool member_done; /* the last member ended: only trailing members may follow */
  uint8_t out[CHUNK];
} gunzip_t;

/* One inflate call into g->out: *zr its result, *got the bytes it made. */
static int inflate_once(tar_t *t, gunzip_t *g, int *zr, size_t *got) {
  g->z.next_out = g->out;
  g->z.avail_out = CHUNK;
  *zr = inflate(&g->z, Z_NO_FLUSH);
  if (*zr != Z_OK && *zr != Z_STREAM_END && *zr != Z_BUF_ERROR)
    return say(t, WV_EPARSE, "Build context is not a valid gzip archive: %s",
               g->z.msg ? g->z.msg : "corrupted data");
  *got = CHUNK - g->z.avail_out;
  return 0;
}

/* Inflates one input slice; multi-member gzip streams are accepted. */
static int gunzip_feed(tar_t *t, gunzip_t *g, const uint8_t *in, size_t n) {
  g->z.next_in = (Bytef *)in;
  g->z.avail_in = (uInt)n;
  while (g->z.avail_in > 0) {
    if (g->member_done) {
      if (inflateReset(&g->z) != Z_OK)
        return WV_EINTERNAL;
      g->member_done = false;
    }
    int zr = Z_OK;
    size_t got = 0;
    int rc = inflate_once(t, g, &zr, &got);
    rc = rc ? rc : on_tar_bytes(t, g->out, got);
    if (rc)
      return rc;
    if (zr == Z_STREAM_END)
      g->member_done = true;
    else if (zr == Z_BUF_ERROR && got == 0)
      break; /* needs more input */
  }
  /* Drain output that did not fit while the input was consumed. */
  while (!g->member_done) {
    int zr = Z_OK;
    size_t got = 0;
    int rc = inflate_once(t, g, &zr, &got);
    rc = rc ? rc : got ? on_tar_bytes(t, g->out, got) : 0;
    if (rc)
      return rc;
    if (zr == Z_STREAM_END)
      g->member_done = true;
    if (got == 0)
      break;
  }
  return 0;
}

/* ---- symlink verification -------------------------------------------------------------- */

/*
 * Resolves path inside the root the way the kernel would, following the
 * symlinks on disk (at most MAX_LINK_HOPS), with the root as a jail: a ".."
 * above it is an escape. Missing components are resolved lexically.
 */
static bool resolves_inside(tar_t *t, const char *path) {
  char stack[MAX_PATH_LEN + 2] = "";
  size_t depth_len[MAX_PATH_LEN / 2];
  int depth = 0, hops = 0;
  /* pending: the components still to walk, most recent link target first */
  char pending[MAX_PATH_LEN * 2];
  if (snprintf(pending, sizeof pending, "%s", path) >= (int)sizeof pending)
    return false;
  size_t pos = 0;
  while (pending[pos]) {
    size_t n = strcspn(pending + pos, "/");
    char comp[MAX_PATH_LEN + 1];
    if (n > MAX_PATH_LEN)
      return false;
    memcpy(comp, pending + pos, n), comp[n] = '\0';
    pos += n + (pending[pos + n] == '/');
    if (!n || !strcmp(comp, "."))
      continue;
    if (!strcmp(comp, "..")) {
      if (depth == 0)
        return false;
      stack[depth_len[--depth]] = '\0';
      continue;
    }
    size_t cur = strlen(stack);
    if (cur + n + 2 > sizeof stack || depth >= MAX_PATH_LEN / 2)
      return false;
    depth_len[depth++] = cur;
    snprintf(stack + cur, sizeof stack - cur, "%s%s", cur ? "/" : "", comp);
    char target[MAX_PATH_LEN + 1];
    ssize_t tl = readlinkat(t->root, stack, target, MAX_PATH_LEN);
    if (tl < 0)
      continue; /* not a link (or missing): keep walking */
    target[tl] = '\0';
    if (target[0] == '/' || ++hops > MAX_LINK_HOPS)
      return false;
    /* Replace the component by the link target: pop it and prepend the target. */
    stack[depth_len[--depth]] = '\0';
    char rest[MAX_PATH_LEN * 2];
    if (snprintf(rest, sizeof rest, "%s/%s", target, pending + pos) >= (int)sizeof rest)
      return false;
    memcpy(pending, rest, strlen(rest) + 1);
    pos = 0;
  }
  return true;
}

static int verify_links(tar_t *t) {
  for (link_rec_t *l = t->links; l; l = l->next)
    if (!resolves_inside(t, l->path)) {
      t->name = l->path;
      return say(t, WV_EINVAL,
                 "Build context entry '%s' is a link pointing outside the build context", l->path);
    }
  return 0;
}

/* ---- entry points ------------------------------------------------------------------------ */

typedef int (*reader_cb)(void *src, const uint8_t **chunk, size_t *n); /* n = 0 at the end */

/* Checks that both streams ended cleanly and the links stay inside; 0 or an error. */
static int check_end(tar_t *t, gunzip_t *g) {
  if (!g->member_done)
    return say(t, WV_EPARSE, "Build context is not a valid gzip archive: unexpected end of data");
  if (t->st != ST_END && !(t->st == ST_HEADER && t->hdr_fill == 0))
    return say(t, WV_EPARSE, "Build context archive is truncated%s%s%s", t->name ? " (entry '" : "",
               t->name ? t->name : "", t->name ? "')" : "");
  return verify_links(t);
}

/* Ends the hash context in every case; the digest only on success. */
static int finish(tar_t *t, gunzip_t *g) {
  int rc = check_end(t, g);
  if (rc) {
    wv_sha256_abort(&t->sha);
    return rc;
  }
  uint8_t hash[WV_SHA256_LEN];
  if ((rc = wv_sha256_final(&t->sha, hash)) == 0)
    wv_digest_format(hash, t->res->tar_digest);
  return rc;
}

static int unpack(wv_arena_t *a, reader_cb next, void *src, const char *dir,
                  const wv_context_limits_t *lim, wv_context_result_t *res, const char **msg) {
  wv_context_limits_t dflt;
  if (msg)
    *msg = NULL;
  if (!lim)
    wv_context_limits_default(&dflt), lim = &dflt;
  memset(res, 0, sizeof *res);
  tar_t t = {.a = a, .msg = msg, .lim = lim, .res = res, .fd = -1, .next_size = -1};
  /* Headers, padding and end blocks on top of the content: 3 blocks per entry is generous. */
  t.stream_max = lim->max_total_bytes + (uint64_t)lim->max_entries * 3 * BLOCK + 64 * BLOCK;
  gunzip_t *g = wv_arena_alloc(a, sizeof *g); /* the output buffer needs no clearing */
  if (!g)
    return WV_ENOMEM;
  memset(g, 0, offsetof(gunzip_t, out));
  t.root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (t.root < 0)
    return say(&t, WV_EIO, "Cannot open the build context directory '%s': %s", dir,
               strerror(errno));
  int rc = wv_sha256_init(&t.sha);
  if (!rc && inflateInit2(&g->z, 15 + 16) != Z_OK)
    rc = WV_ENOMEM;
  bool zinit = rc == 0;
  while (!rc) {
    const uint8_t *chunk;
    size_t n;
    if ((rc = next(src, &chunk, &n)) != 0 || n == 0)
      break;
    rc = gunzip_feed(&t, g, chunk, n);
  }
  if (!rc)
    rc = finish(&t, g); /* releases the hash context */
  else
    wv_sha256_abort(&t.sha);
  if (zinit)
    inflateEnd(&g->z);
  if (t.fd >= 0)
    close(t.fd);
  close(t.root);
  return rc;
}

typedef struct {
  const uint8_t *p;
  size_t left;
} mem_src_t;

static int mem_next(void *src, const uint8_t **chunk, size_t *n) {
  mem_src_t *m = src;
  *n = m->left < CHUNK ? m->left : CHUNK;
  *chunk = m->p;
  m->p += *n, m->left -= *n;
  return 0;
}

int wv_context_unpack(wv_arena_t *a, const void *gz, size_t len, const char *dir,
                      const wv_context_limits_t *lim, wv_context_result_t *res, const char **msg) {
  mem_src_t m = {gz, len};
  return unpack(a, mem_next, &m, dir, lim, res, msg);
}

typedef struct {
  int fd;
  uint8_t buf[CHUNK];
} file_src_t;

static int file_next(void *src, const uint8_t **chunk, size_t *n) {
  file_src_t *f = src;
  ssize_t r;
  do
    r = read(f->fd, f->buf, CHUNK);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return WV_EIO;
  *chunk = f->buf, *n = (size_t)r;
  return 0;
}

int wv_context_unpack_file(wv_arena_t *a, const char *path, const char *dir,
                           const wv_context_limits_t *lim, wv_context_result_t *res,
                           const char **msg) {
  file_src_t *f = wv_arena_alloc(a, sizeof *f);
  if (!f)
    return WV_ENOMEM;
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    if (msg)
      *msg = wv_arena_sprintf(a, "Cannot read the build context archive '%s': %s", path,
                              strerror(errno));
    return WV_EIO;
  }
  int rc = unpack(a, file_next, f, dir, lim, res, msg);
  close(f->fd);
  if (rc == WV_EIO && msg && !*msg)
    *msg = wv_arena_sprintf(a, "Cannot read the build context archive '%s'", path);
  return rc;
}
