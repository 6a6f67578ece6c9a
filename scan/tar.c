/*
 * scan/tar.c — streaming tar walker.
 *
 * DESIGN. Input arrives in arbitrary chunks, so the walker is a state
 * machine over three states: HEADER (collecting one 512-byte block), DATA
 * (an entry's data plus its padding to the next block, either captured into
 * fbuf for a wanted file, into mbuf for a meta header, or merely counted) and
 * END (after two zero blocks; the rest is ignored). Meta headers (pax 'x',
 * GNU 'L'/'K') set overrides that apply to the next real header only.
 */
#include "scan/tar.h"

#include "core/buf.h"
#include "core/err.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 512

enum { ST_HEADER, ST_DATA, ST_END, ST_FAILED };
enum { DATA_SKIP, DATA_FILE, DATA_META };

struct wv_tar {
  wv_tar_opts_t o;
  int state;
  unsigned char hdr[BLOCK];
  size_t hlen;
  int zero_blocks;
  uint64_t data_left, pad_left, offset, entries;
  int data_mode;
  char meta_type; /* typeflag of the meta header being collected */
  wv_buf_t fbuf, mbuf;
  /* overrides from meta headers, for the next entry */
  wv_buf_t long_name, long_link;
  bool has_size;
  uint64_t pax_size;
  /* the current entry */
  wv_tar_entry_t e;
  char path[WV_TAR_PATH_MAX];
  char link[WV_TAR_PATH_MAX];
  char err[256];
};

static int fail(wv_tar_t *t, int rc, const char *fmt, unsigned long long a) {
  snprintf(t->err, sizeof t->err, fmt, a);
  t->state = ST_FAILED;
  return rc;
}

int wv_tar_new(wv_tar_t **out, const wv_tar_opts_t *opts) {
  if (!out || !opts || !opts->entry_cb)
    return WV_EINVAL;
  wv_tar_t *t = calloc(1, sizeof *t);
  if (!t)
    return WV_ENOMEM;
  t->o = *opts;
  if (!t->o.max_file)
    t->o.max_file = 16u << 20;
  wv_buf_init(&t->fbuf, t->o.max_file + 1);
  wv_buf_init(&t->mbuf, WV_TAR_META_MAX + 1);
  wv_buf_init(&t->long_name, WV_TAR_META_MAX + 1);
  wv_buf_init(&t->long_link, WV_TAR_META_MAX + 1);
  *out = t;
  return 0;
}

void wv_tar_free(wv_tar_t *t) {
  if (!t)
    return;
  wv_buf_free(&t->fbuf);
  wv_buf_free(&t->mbuf);
  wv_buf_free(&t->long_name);
  wv_buf_free(&t->long_link);
  free(t);
}

const char *wv_tar_error(const wv_tar_t *t) { return t->err; }
uint64_t wv_tar_entries(const wv_tar_t *t) { return t->entries; }

int wv_tar_path_normalize(const char *in, size_t n, char *out, size_t outlen) {
  size_t o = 0;
  const char *p = in, *e = in + n;
  while (p < e) {
    while (p < e && *p == '/')
      p++;
    const char *c = p;
    while (p < e && *p != '/' && *p != '\0')
      p++;
    size_t cl = (size_t)(p - c);
    if (p < e && *p == '\0')
      e = p; /* a NUL ends the name */
    if (cl == 0 || (cl == 1 && c[0] == '.'))
      continue;
    if (cl == 2 && c[0] == '.' && c[1] == '.') {
      while (o > 0 && out[o - 1] != '/')
        o--;
      if (o > 0)
        o--;
      continue;
    }
    if (o + (o > 0) + cl + 1 > outlen)
      return WV_ETOOBIG;
    if (o > 0)
      out[o++] = '/';
    memcpy(out + o, c, cl);
    o += cl;
  }
  if (outlen == 0)
    return WV_ETOOBIG;
  out[o] = '\0';
  return 0;
}

/* Octal (space/NUL padded) or GNU base-256. Returns false on garbage. */
static bool parse_num(const unsigned char *f, size_t n, uint64_t *out) {
  uint64_t v = 0;
  if (f[0] & 0x80) {
    if (f[0] & 0x40)
      return false; /* negative */
    v = f[0] & 0x3f;
    for (size_t i = 1; i < n; i++) {
      if (v >> 55)
        return false;
      v = (v << 8) | f[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < n && (f[i] == ' ' || f[i] == '\0'))
    i++;
  for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
    if (v >> 60)
      return false;
    v = v * 8 + (uint64_t)(f[i] - '0');
  }
  for (; i < n; i++)
    if (f[i] != ' ' && f[i] != '\0')
      return false;
  *out = v;
  return true;
}

static bool checksum_ok(const unsigned char *h) {
  uint64_t want;
  if (!parse_num(h + 148, 8, &want))
    return false;
  uint64_t u = 0;
  int64_t s = 0;
  for (int i = 0; i < BLOCK; i++) {
    unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
    u += c;
    s += (signed char)c;
  }
  return u == want || (uint64_t)s == want;
}

/* Parses the records "<len> <key>=<value>\n" of a pax header. */
static int pax_parse(wv_tar_t *t, const char *p, size_t n) {
  const char *e = p + n;
  while (p < e) {
    char *sp;
    unsigned long len = strtoul(p, &sp, 10);
    if (sp == p || *sp != ' ' || len < 5 || len > (size_t)(e - p) || p[len - 1] != '\n')
      return fail(t, WV_EPARSE, "malformed pax header near offset %llu", t->offset);
    const char *k = sp + 1, *rec_end = p + len - 1;
    const char *eq = memchr(k, '=', (size_t)(rec_end - k));
    if (!eq)
      return fail(t, WV_EPARSE, "malformed pax record near offset %llu", t->offset);
    size_t kl = (size_t)(eq - k), vl = (size_t)(rec_end - eq - 1);
    int rc = 0;
    if (kl == 4 && memcmp(k, "path", 4) == 0) {
      wv_buf_reset(&t->long_name);
      rc = wv_buf_append(&t->long_name, eq + 1, vl);
    } else if (kl == 8 && memcmp(k, "linkpath", 8) == 0) {
      wv_buf_reset(&t->long_link);
      rc = wv_buf_append(&t->long_link, eq + 1, vl);
    } else if (kl == 4 && memcmp(k, "size", 4) == 0) {
      char num[32];
      if (vl == 0 || vl >= sizeof num)
        return fail(t, WV_EPARSE, "bad pax size near offset %llu", t->offset);
      memcpy(num, eq + 1, vl);
      num[vl] = '\0';
      char *ne;
      t->pax_size = strtoull(num, &ne, 10);
      if (*ne)
        return fail(t, WV_EPARSE, "bad pax size near offset %llu", t->offset);
      t->has_size = true;
    }
    if (rc)
      return fail(t, rc, "pax header too large near offset %llu", t->offset);
    p += len;
  }
  return 0;
}

/* Classifies whiteouts; fills t->e.type and t->path from the raw name. */
static int set_path(wv_tar_t *t, const char *raw, size_t n, char typeflag) {
  int rc = wv_tar_path_normalize(raw, n, t->path, sizeof t->path);
  if (rc)
    return fail(t, rc, "entry name longer than the path limit at offset %llu", t->offset);
  char *base = strrchr(t->path, '/');
  base = base ? base + 1 : t->path;
  if (strncmp(base, ".wh.", 4) != 0)
    return 0;
  if (strcmp(base, ".wh..wh..opq") == 0) {
    t->e.type = WV_TAR_OPAQUE;
    base[base > t->path ? -1 : 0] = '\0';
  } else if (strncmp(base, ".wh..wh.", 8) == 0) {
    t->e.type = WV_TAR_OTHER; /* aufs bookkeeping (.wh..wh.plnk): not a deletion */
  } else {
    t->e.type = WV_TAR_WHITEOUT;
    memmove(base, base + 4, strlen(base + 4) + 1);
  }
  (void)typeflag;
  return 0;
}

static wv_tar_type_t type_of(char tf) {
  switch (tf) {
  case '0':
  case '\0':
  case '7':
    return WV_TAR_FILE;
  case '1':
    return WV_TAR_HARDLINK;
  case '2':
    return WV_TAR_SYMLINK;
  case '5':
    return WV_TAR_DIR;
  default:
    return WV_TAR_OTHER;
  }
}

/* Name of a ustar header: prefix "/" name for POSIX ustar, name alone otherwise. */
static size_t header_name(const unsigned char *h, char *out) {
  size_t n = strnlen((const char *)h, 100), o = 0;
  if (memcmp(h + 257, "ustar\0", 6) == 0 && h[345]) {
    size_t pn = strnlen((const char *)h + 345, 155);
    memcpy(out, h + 345, pn);
    o = pn;
    out[o++] = '/';
  }
  memcpy(out + o, h, n);
  return o + n;
}

static void clear_overrides(wv_tar_t *t) {
  wv_buf_reset(&t->long_name);
  wv_buf_reset(&t->long_link);
  t->has_size = false;
}

static int begin_data(wv_tar_t *t, uint64_t size, int mode) {
  t->data_left = size;
  t->pad_left = (BLOCK - size % BLOCK) % BLOCK;
  t->data_mode = mode;
  t->state = ST_DATA;
  return 0;
}

static int report_entry(wv_tar_t *t, const unsigned char *h, uint64_t size) {
  char tf = (char)h[156];
  char raw[100 + 1 + 155];
  int rc;
  t->e.type = type_of(tf);
  if (t->long_name.len)
    rc = set_path(t, t->long_name.data, t->long_name.len, tf);
  else
    rc = set_path(t, raw, header_name(h, raw), tf);
  if (rc)
    return rc;
  if (t->e.type == WV_TAR_FILE && !t->long_name.len) {
    size_t nl = strnlen((const char *)h, 100);
    if (nl && h[nl - 1] == '/')
      t->e.type = WV_TAR_DIR; /* pre-POSIX directories */
  }
  const char *ln = t->long_link.len ? t->long_link.data : (const char *)h + 157;
  size_t lnl = t->long_link.len ? t->long_link.len : strnlen((const char *)h + 157, 100);
  if (lnl >= sizeof t->link)
    return fail(t, WV_ETOOBIG, "link name too long at offset %llu", t->offset);
  memcpy(t->link, ln, lnl);
  t->link[lnl] = '\0';
  uint64_t mode = 0;
  parse_num(h + 100, 8, &mode);
  t->e.mode = (uint32_t)mode;
  t->e.path = t->path;
  t->e.linkname = t->link;
  /* Only regular files carry content; a hardlink's size field is not its data. */
  uint64_t data =
      (tf == '1' || tf == '2' || tf == '5' || tf == '3' || tf == '4' || tf == '6') ? 0 : size;
  t->e.size = t->e.type == WV_TAR_FILE ? data : 0;
  clear_overrides(t);
  t->entries++;
  int want = t->o.entry_cb(t->o.arg, &t->e);
  if (want < 0)
    return fail(t, want, "walk stopped by the caller at offset %llu", t->offset);
  if (want > 0 && t->e.type == WV_TAR_FILE) {
    if (data > t->o.max_file)
      return fail(t, WV_ETOOBIG, "wanted file larger than the cap (%llu bytes)",
                  (unsigned long long)data);
    wv_buf_reset(&t->fbuf);
    return begin_data(t, data, DATA_FILE);
  }
  return begin_data(t, data, DATA_SKIP);
}

static int on_header(wv_tar_t *t) {
  const unsigned char *h = t->hdr;
  bool zero = true;
  for (int i = 0; i < BLOCK && zero; i++)
    zero = h[i] == 0;
  if (zero) {
    if (++t->zero_blocks == 2)
      t->state = ST_END;
    return 0;
  }
  t->zero_blocks = 0;
  if (!checksum_ok(h))
    return fail(t, WV_EPARSE, "bad tar header checksum at offset %llu", t->offset - BLOCK);
  uint64_t size;
  if (!parse_num(h + 124, 12, &size))
    return fail(t, WV_EPARSE, "bad size field at offset %llu", t->offset - BLOCK);
  char tf = (char)h[156];
  if (tf == 'x' || tf == 'g' || tf == 'L' || tf == 'K') {
    if (size > WV_TAR_META_MAX)
      return fail(t, WV_ETOOBIG, "meta header of %llu bytes exceeds the cap",
                  (unsigned long long)size);
    t->meta_type = tf;
    wv_buf_reset(&t->mbuf);
    return begin_data(t, size, DATA_META);
  }
  if (t->has_size)
    size = t->pax_size;
  return report_entry(t, h, size);
}

static int on_meta_done(wv_tar_t *t) {
  const char *d = t->mbuf.data ? t->mbuf.data : "";
  size_t n = t->mbuf.len;
  int rc = 0;
  switch (t->meta_type) {
  case 'x':
    return pax_parse(t, d, n);
  case 'L':
    wv_buf_reset(&t->long_name);
    rc = wv_buf_append(&t->long_name, d, strnlen(d, n));
    break;
  case 'K':
    wv_buf_reset(&t->long_link);
    rc = wv_buf_append(&t->long_link, d, strnlen(d, n));
    break;
  default: /* 'g': global pax headers are not applied (no image tool writes them) */
    break;
  }
  return rc ? fail(t, rc, "long name too large at offset %llu", t->offset) : 0;
}

static int on_data_done(wv_tar_t *t) {
  if (t->data_mode == DATA_META)
    return on_meta_done(t);
  if (t->data_mode == DATA_FILE && t->o.file_cb) {
    int rc = t->o.file_cb(t->o.arg, &t->e, t->fbuf.data ? t->fbuf.data : "", t->fbuf.len);
    if (rc)
      return fail(t, rc, "walk stopped by the caller at offset %llu", t->offset);
  }
  return 0;
}

int wv_tar_write(wv_tar_t *t, const void *p, size_t n) {
  const unsigned char *s = p;
  if (t->state == ST_FAILED)
    return WV_EINVAL;
  while (n > 0) {
    int rc = 0;
    if (t->state == ST_END)
      return 0;
    if (t->state == ST_HEADER) {
      size_t k = BLOCK - t->hlen < n ? BLOCK - t->hlen : n;
      memcpy(t->hdr + t->hlen, s, k);
      t->hlen += k, s += k, n -= k, t->offset += k;
      if (t->hlen == BLOCK) {
        t->hlen = 0;
        rc = on_header(t);
      }
    } else if (t->data_left > 0) {
      size_t k = t->data_left < n ? (size_t)t->data_left : n;
      if (t->data_mode == DATA_FILE)
        rc = wv_buf_append(&t->fbuf, s, k);
      else if (t->data_mode == DATA_META)
        rc = wv_buf_append(&t->mbuf, s, k);
      if (rc)
        return fail(t, rc, "out of memory at offset %llu", t->offset);
      t->data_left -= k, s += k, n -= k, t->offset += k;
    } else {
      size_t k = t->pad_left < n ? (size_t)t->pad_left : n;
      t->pad_left -= k, s += k, n -= k, t->offset += k;
    }
    if (rc)
      return rc;
    if (t->state == ST_DATA && t->data_left == 0 && t->pad_left == 0) {
      t->state = ST_HEADER;
      if ((rc = on_data_done(t)))
        return rc;
    }
  }
  /* An entry with no data (or data ending exactly here) completes without more input. */
  if (t->state == ST_DATA && t->data_left == 0 && t->pad_left == 0) {
    t->state = ST_HEADER;
    return on_data_done(t);
  }
  return 0;
}

int wv_tar_finish(wv_tar_t *t) {
  if (t->state == ST_FAILED)
    return WV_EINVAL;
  if (t->state == ST_DATA || t->hlen != 0)
    return fail(t, WV_EPARSE, "layer ends inside an entry at offset %llu", t->offset);
  return 0;
}
