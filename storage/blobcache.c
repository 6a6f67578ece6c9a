/*
 * storage/blobcache.c — the upstream blob cache: a CAS of its own plus an
 * in-memory LRU index. See blobcache.h for what it promises.
 *
 * DESIGN
 *
 * The index is a chained hash table of nodes keyed by digest (the digest's
 * hex is already uniformly distributed, so its first 16 hex digits are the
 * hash) and a doubly linked list in order of use: lru.next is the most
 * recently used, lru.prev the least. Trimming detaches victims under the
 * mutex into a private list and unlinks their files after releasing it, so a
 * reader on an IO loop never waits behind file-system work. A victim that is
 * re-added before its unlink runs is harmless: the unlink may then remove a
 * freshly published file, and the next read finds it missing (WV_ENOTFOUND),
 * which the proxy treats as a miss and fetches again.
 */
#include "storage/blobcache.h"

#include "core/err.h"
#include "core/log.h"
#include "storage/cas.h"
#include "core/timefmt.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS (1u << 16)
#define TOUCH_MS (3600 * 1000LL) /* how stale a file's mtime may get before a hit resets it */
#define RESERVE_MAX (1ull << 30) /* keep this much free on the filesystem (or 5% if less) */

typedef struct node {
  struct node *hnext;
  struct node *prev, *next; /* use order */
  uint64_t size;
  int64_t used_ms;  /* last use, wall clock (comparable with file mtimes) */
  int64_t touch_ms; /* the file's mtime as last set or read */
  char digest[WV_CAS_DIGEST_LEN + 1];
} node_t;

struct wv_bcache {
  wv_cas_t *cas;
  char *root;
  uint64_t max_bytes;
  int64_t idle_ms;
  pthread_mutex_t mu;
  uint64_t inflight; /* bytes reserved by writers not yet finished */
  node_t **tab;
  node_t lru; /* sentinel */
  wv_bcache_stats_t st;
};

struct wv_bcache_writer {
  wv_bcache_t *b;
  wv_cas_writer_t *w;
  uint64_t reserved; /* counted in b->inflight until commit or abort */
};

static size_t bucket(const char *digest) {
  uint64_t h = 0;
  for (int i = 7; i < 7 + 16; i++) {
    char c = digest[i];
    h = h << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  return (size_t)(h & (NBUCKETS - 1));
}

/* ---- index (mutex held) ---------------------------------------------------------- */

static node_t *find(wv_bcache_t *b, const char *digest) {
  for (node_t *n = b->tab[bucket(digest)]; n; n = n->hnext)
    if (strcmp(n->digest, digest) == 0)
      return n;
  return NULL;
}

static void lru_unlink(node_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
}

static void lru_front(wv_bcache_t *b, node_t *n) {
  n->next = b->lru.next;
  n->prev = &b->lru;
  b->lru.next->prev = n;
  b->lru.next = n;
}

/* Takes n out of the table and the list; the caller owns it. */
static void detach(wv_bcache_t *b, node_t *n) {
  node_t **pp = &b->tab[bucket(n->digest)];
  while (*pp != n)
    pp = &(*pp)->hnext;
  *pp = n->hnext;
  lru_unlink(n);
  b->st.blobs--;
  b->st.bytes -= n->size;
}

/* Adds a blob (or refreshes one already there) as the most recently used. */
static int add(wv_bcache_t *b, const char *digest, uint64_t size, int64_t used_ms) {
  node_t *n = find(b, digest);
  if (n) {
    lru_unlink(n);
  } else {
    if (!(n = calloc(1, sizeof *n)))
      return WV_ENOMEM;
    memcpy(n->digest, digest, WV_CAS_DIGEST_LEN + 1);
    n->size = size;
    size_t k = bucket(digest);
    n->hnext = b->tab[k];
    b->tab[k] = n;
    b->st.blobs++;
    b->st.bytes += size;
  }
  n->used_ms = n->touch_ms = used_ms;
  lru_front(b, n);
  return 0;
}

/* Detaches the least recently used blobs until the cache fits; they go to *victims. */
static void trim(wv_bcache_t *b, int64_t now, node_t **victims) {
  while (b->lru.prev != &b->lru) {
    node_t *old = b->lru.prev;
    bool over = b->st.bytes > b->max_bytes || b->st.blobs > WV_BCACHE_MAX_BLOBS;
    if (!over && now - old->used_ms <= b->idle_ms)
      break;
    detach(b, old);
    b->st.evicted++;
    b->st.evicted_bytes += old->size;
    old->hnext = *victims;
    *victims = old;
  }
}

/* Removes the victims' files (mutex not held). */
static void drop(wv_bcache_t *b, node_t *victims) {
  while (victims) {
    node_t *n = victims;
    victims = n->hnext;
    int rc = wv_cas_delete(b->cas, n->digest);
    if (rc && rc != WV_ENOTFOUND)
      wv_warn("blob cache: cannot remove %s: %s", n->digest, wv_strerror(rc));
    free(n);
  }
}

/* ---- open: index what is on disk --------------------------------------------------- */

typedef struct {
  char digest[WV_CAS_DIGEST_LEN + 1];
  uint64_t size;
  int64_t mtime_ms;
} found_t;

static int by_mtime(const void *a, const void *b) {
  const found_t *x = a, *y = b;
  return x->mtime_ms < y->mtime_ms ? -1 : x->mtime_ms > y->mtime_ms;
}

/* Appends the blobs of one shard directory (<root>/blobs/sha256/<xx>) to *v. */
static int scan_shard(const char *dir, found_t **v, size_t *n, size_t *cap) {
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  struct dirent *e;
  int rc = 0;
  while (!rc && (e = readdir(d)) != NULL) {
    char digest[WV_CAS_DIGEST_LEN + 1];
    if (strlen(e->d_name) != WV_CAS_DIGEST_LEN - 7)
      continue;
    memcpy(digest, "sha256:", 7);
    memcpy(digest + 7, e->d_name, WV_CAS_DIGEST_LEN - 7 + 1);
    struct stat st;
    if (!wv_cas_digest_valid(digest) || fstatat(dirfd(d), e->d_name, &st, 0) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 256;
      found_t *nv = realloc(*v, nc * sizeof *nv);
      if (!nv) {
        rc = WV_ENOMEM;
        break;
      }
      *v = nv;
      *cap = nc;
    }
    found_t *f = &(*v)[(*n)++];
    memcpy(f->digest, digest, sizeof f->digest);
    f->size = (uint64_t)st.st_size;
    f->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
  }
  closedir(d);
  return rc;
}

static int index_disk(wv_bcache_t *b) {
  char *shas = NULL;
  if (asprintf(&shas, "%s/blobs/sha256", b->root) < 0)
    return WV_ENOMEM;
  found_t *v = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  DIR *d = opendir(shas);
  if (d) {
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
      if (strlen(e->d_name) != 2 || e->d_name[0] == '.')
        continue;
      char dir[4096];
      snprintf(dir, sizeof dir, "%s/%s", shas, e->d_name);
      rc = scan_shard(dir, &v, &n, &cap);
    }
    closedir(d);
  }
  free(shas);
  if (n > 1)
    qsort(v, n, sizeof *v, by_mtime);
  for (size_t i = 0; !rc && i < n; i++) /* oldest first, so the newest ends in front */
    rc = add(b, v[i].digest, v[i].size, v[i].mtime_ms);
  free(v);
  node_t *victims = NULL;
  trim(b, wv_now_ms(), &victims);
  b->st.evicted = b->st.evicted_bytes = 0; /* count what happens from now on */
  drop(b, victims);
  if (b->st.blobs)
    wv_info("blob cache: %llu blobs, %llu bytes in %s", (unsigned long long)b->st.blobs,
            (unsigned long long)b->st.bytes, b->root);
  return rc;
}

int wv_bcache_open(wv_bcache_t **out, const char *root, uint64_t max_bytes, int64_t idle_ms) {
  if (!out || !root || !*root || !max_bytes || idle_ms <= 0)
    return WV_EINVAL;
  wv_bcache_t *b = calloc(1, sizeof *b);
  if (!b)
    return WV_ENOMEM;
  b->max_bytes = max_bytes;
  b->idle_ms = idle_ms;
  b->lru.next = b->lru.prev = &b->lru;
  pthread_mutex_init(&b->mu, NULL);
  int rc = WV_ENOMEM;
  if (!(b->root = strdup(root)) || !(b->tab = calloc(NBUCKETS, sizeof *b->tab)))
    goto out;
  if ((rc = wv_cas_open(&b->cas, root, 0)) != 0)
    goto out;
  if ((rc = index_disk(b)) != 0)
    goto out;
  *out = b;
  b = NULL;
out:
  wv_bcache_close(b);
  return rc;
}

void wv_bcache_close(wv_bcache_t *b) {
  if (!b)
    return;
  node_t *n = b->lru.next;
  while (n && n != &b->lru) {
    node_t *next = n->next;
    free(n);
    n = next;
  }
  free(b->tab);
  wv_cas_close(b->cas);
  pthread_mutex_destroy(&b->mu);
  free(b->root);
  free(b);
}

/* ---- reading ---------------------------------------------------------------------- */

int wv_bcache_open_blob(wv_bcache_t *b, const char *digest, int *fd, uint64_t *size) {
  if (!wv_cas_digest_valid(digest))
    return WV_EINVAL;
  pthread_mutex_lock(&b->mu);
  node_t *n = find(b, digest);
  if (!n)
    b->st.misses++;
  pthread_mutex_unlock(&b->mu);
  if (!n)
    return WV_ENOTFOUND;
  int rc = wv_cas_open_blob(b->cas, digest, fd, size);
  int64_t now = wv_now_ms();
  bool touch = false;
  pthread_mutex_lock(&b->mu);
  if (rc == 0) {
    b->st.hits++;
    if ((n = find(b, digest)) != NULL) {
      lru_unlink(n);
      lru_front(b, n);
      n->used_ms = now;
      if (now - n->touch_ms > TOUCH_MS) {
        n->touch_ms = now;
        touch = true;
      }
    }
  } else if (rc == WV_ENOTFOUND) {
    b->st.misses++;
    if ((n = find(b, digest)) != NULL) { /* removed behind our back: forget it */
      detach(b, n);
      free(n);
    }
  }
  pthread_mutex_unlock(&b->mu);
  if (touch)
    futimens(*fd, NULL); /* best effort: only the order after a restart depends on it */
  return rc;
}

int wv_bcache_exists(wv_bcache_t *b, const char *digest, uint64_t *size) {
  if (!wv_cas_digest_valid(digest))
    return WV_EINVAL;
  pthread_mutex_lock(&b->mu);
  node_t *n = find(b, digest);
  if (n && size)
    *size = n->size;
  pthread_mutex_unlock(&b->mu);
  return n ? 0 : WV_ENOTFOUND;
}

/* ---- writing ---------------------------------------------------------------------- */

/* True when the filesystem has room for length more bytes above the reserve. */
static bool room_for(const wv_bcache_t *b, uint64_t length) {
  struct statvfs vfs;
  if (statvfs(b->root, &vfs) != 0)
    return false;
  uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
  uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
  uint64_t reserve = total / 20 < RESERVE_MAX ? total / 20 : RESERVE_MAX;
  return avail > length + reserve;
}

/*
 * Blobs being written count too: each writer reserves its announced length
 * (a quarter of the cap when unsized), all writers together at most half
 * the cap, and the filesystem must hold what is reserved above its reserve.
 */
int wv_bcache_begin(wv_bcache_t *b, int64_t length, wv_bcache_writer_t **out) {
  uint64_t want = length >= 0 ? (uint64_t)length : b->max_bytes / 4;
  pthread_mutex_lock(&b->mu);
  bool ok = want <= b->max_bytes / 4 && b->inflight + want <= b->max_bytes / 2;
  if (ok)
    b->inflight += want;
  uint64_t inflight = b->inflight;
  pthread_mutex_unlock(&b->mu);
  wv_bcache_writer_t *w = NULL;
  int rc = !ok || !room_for(b, inflight) ? WV_ETOOBIG : 0;
  if (!rc && !(w = calloc(1, sizeof *w)))
    rc = WV_ENOMEM;
  if (!rc) {
    w->b = b;
    w->reserved = want;
    rc = wv_cas_begin_verified(b->cas, &w->w);
  }
  if (rc) {
    free(w);
    pthread_mutex_lock(&b->mu);
    if (ok)
      b->inflight -= want;
    b->st.skipped++;
    pthread_mutex_unlock(&b->mu);
    return rc;
  }
  *out = w;
  return 0;
}

int wv_bcache_write(wv_bcache_writer_t *w, const void *p, size_t n) {
  if (wv_cas_written(w->w) + n > w->reserved)
    return WV_ETOOBIG; /* longer than announced, or an unsized body over a quarter */
  return wv_cas_write(w->w, p, n);
}

int wv_bcache_writer_fd(const wv_bcache_writer_t *w) { return wv_cas_writer_fd(w->w); }

void wv_bcache_abort(wv_bcache_writer_t *w) {
  if (!w)
    return;
  pthread_mutex_lock(&w->b->mu);
  w->b->st.skipped++;
  w->b->inflight -= w->reserved;
  pthread_mutex_unlock(&w->b->mu);
  wv_cas_abort(w->w);
  free(w);
}

int wv_bcache_commit(wv_bcache_writer_t *w, const char *digest) {
  wv_bcache_t *b = w->b;
  uint64_t size = wv_cas_written(w->w), reserved = w->reserved;
  int rc = wv_cas_commit(w->w, digest, NULL);
  free(w);
  node_t *victims = NULL;
  pthread_mutex_lock(&b->mu);
  b->inflight -= reserved;
  if (rc == 0)
    rc = add(b, digest, size, wv_now_ms());
  if (rc == 0)
    b->st.added++;
  else
    b->st.skipped++;
  trim(b, wv_now_ms(), &victims);
  pthread_mutex_unlock(&b->mu);
  drop(b, victims);
  return rc;
}

int wv_bcache_put(wv_bcache_t *b, const void *p, size_t n, const char *digest) {
  if (!wv_cas_digest_valid(digest))
    return WV_EINVAL;
  wv_bcache_writer_t *w;
  int rc = wv_bcache_begin(b, (int64_t)n, &w);
  if (rc)
    return rc;
  if ((rc = wv_bcache_write(w, p, n)) != 0) {
    wv_bcache_abort(w);
    return rc;
  }
  return wv_bcache_commit(w, digest);
}

void wv_bcache_stats(wv_bcache_t *b, wv_bcache_stats_t *out) {
  pthread_mutex_lock(&b->mu);
  *out = b->st;
  pthread_mutex_unlock(&b->mu);
}
