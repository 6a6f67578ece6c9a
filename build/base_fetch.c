/*
 * build/base_fetch.c — a pinned base's layers fetched and mapped while an embedded build runs
 * (see base_fetch.h).
 *
 * DESIGN. The table lists the layers in flight (one entry per gzip digest G, with its bytes
 * so far and when it started); an entry is removed, with a broadcast, when its layer ended,
 * mapped or not: the store's map says which. A fetch thread takes the layers of one base that
 * no other thread has, one after the other: GET into a CAS writer (hashed as it streams,
 * committed only as G), then wv_embedded_map_blob. The seed step reads the entries of its
 * layers to decide how long to wait, then seeds from the store.
 *
 * Interest is counted per build, not per layer: a build that starts or joins a fetch gets one
 * member record naming the entries it counted in (by serial, so an entry that ended and was
 * made again for the same G by a later fetch is not touched), and releasing the build drops
 * exactly those counts, once. A build that joined nothing has no member, so its release can
 * never stop another build's fetch; and the build's end releases it whatever step it failed
 * at (build.c registers the release with wv_job_on_done), not only its seed step.
 */
#include "build/base_fetch.h"
#include "build/build_int.h"
#include "build/builder.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "registry/fetch.h"
#include "registry/upstream.h"
#include "storage/cas.h"
#include "storage/embedded.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WAIT_SLICE_MS 20

typedef struct entry {
  struct entry *next;
  char g[WV_EMBEDDED_DIGEST_LEN];
  uint64_t size, got;
  int64_t t0_ns;      /* the layer's turn came */
  int64_t fetched_ns; /* its bytes are all there (the inflate runs); 0 while they arrive */
  int interest;       /* builds that want it (started it or joined, not released yet) */
  uint64_t serial;    /* unique in the table's life: what members name */
} entry_t;

/* One build's interest: the entries it counted in (wv_base_fetch_start), dropped once. */
typedef struct member {
  struct member *next;
  char build[WV_JOB_ID_MAX + 1];
  size_t n;
  uint64_t serials[];
} member_t;

typedef struct {
  pthread_t tid;
  bool used, started, finished;
} slot_t;

struct wv_base_fetch_table {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  entry_t *inflight;
  member_t *members;    /* builds holding interest */
  uint64_t next_serial; /* of the next entry */
  slot_t slots[WV_BASE_FETCH_THREADS];
  atomic_bool stop;
};

typedef struct {
  char g[WV_EMBEDDED_DIGEST_LEN], x[WV_EMBEDDED_DIGEST_LEN];
  char mt[WV_EMBEDDED_MEDIATYPE_MAX];
  int64_t size;
} flayer_t;

/* One fetch thread's work: the layers it took on (malloc'd, the thread frees it). */
typedef struct {
  wv_base_fetch_table_t *t;
  const wv_app_t *app;
  int slot;
  char *registry, *image, *who_copy;
  const char *who;     /* who_copy, or WV_WHO_WAVED / NULL as given */
  int64_t deadline_ns; /* the whole fetch's (wave.build.timeout from its start) */
  size_t n;
  flayer_t layers[];
} fetch_t;

int wv_base_fetch_table_new(wv_base_fetch_table_t **out) {
  wv_base_fetch_table_t *t = calloc(1, sizeof *t);
  if (!t)
    return WV_ENOMEM;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  atomic_init(&t->stop, false);
  *out = t;
  return 0;
}

void wv_base_fetch_table_free(wv_base_fetch_table_t *t) {
  if (!t)
    return;
  atomic_store(&t->stop, true);
  for (int i = 0; i < WV_BASE_FETCH_THREADS; i++) {
    pthread_mutex_lock(&t->mu);
    bool join = t->slots[i].started;
    pthread_t tid = t->slots[i].tid;
    pthread_mutex_unlock(&t->mu);
    if (join)
      pthread_join(tid, NULL);
  }
  while (t->inflight) { /* none: each thread removed its own */
    entry_t *e = t->inflight;
    t->inflight = e->next;
    free(e);
  }
  while (t->members) { /* builds not released yet: nothing is left to want */
    member_t *m = t->members;
    t->members = m->next;
    free(m);
  }
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* ---- the layers of a base ---- */

static bool gzip_type(const char *mt) {
  return mt && (strcmp(mt, "application/vnd.oci.image.layer.v1.tar+gzip") == 0 ||
                strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar.gzip") == 0);
}

int wv_base_fetch_layers(wv_arena_t *a, const char *manifest, size_t mlen, const char *config,
                         size_t clen, wv_base_fetch_layer_t **out, size_t *n) {
  json_object *m = NULL, *c = NULL, *layers, *rootfs, *ids;
  char perr[128];
  *out = NULL;
  *n = 0;
  if (!manifest || !config || wv_json_parse(manifest, mlen, 4u << 20, 0, &m, perr, sizeof perr))
    return WV_EPARSE;
  int rc = wv_json_parse(config, clen, 8u << 20, 0, &c, perr, sizeof perr) ? WV_EPARSE : 0;
  if (!rc && (wv_json_get_array(m, "layers", &layers) || wv_json_get_object(c, "rootfs", &rootfs) ||
              wv_json_get_array(rootfs, "diff_ids", &ids)))
    rc = WV_EPARSE;
  size_t k = rc ? 0 : json_object_array_length(layers);
  if (!rc && k > WV_BASE_FETCH_LAYERS)
    rc = WV_ETOOBIG;
  if (!rc && k != json_object_array_length(ids))
    k = 0; /* the config does not describe these layers: nothing to pair */
  wv_base_fetch_layer_t *v = k ? wv_arena_calloc(a, k * sizeof *v) : NULL;
  if (k && !v)
    rc = WV_ENOMEM;
  for (size_t i = 0; !rc && i < k; i++) {
    json_object *l = json_object_array_get_idx(layers, i);
    const char *g, *mt, *x = json_object_get_string(json_object_array_get_idx(ids, i));
    int64_t size;
    if (wv_json_get_str(l, "digest", &g) || wv_json_get_str(l, "mediaType", &mt) ||
        wv_json_get_int64(l, "size", &size) || !gzip_type(mt) || !x || size <= 0 ||
        !wv_cas_digest_valid(g) || !wv_cas_digest_valid(x))
      continue;
    v[*n] = (wv_base_fetch_layer_t){.digest = wv_arena_strdup(a, g),
                                    .size = size,
                                    .media_type = wv_arena_strdup(a, mt),
                                    .diff_id = wv_arena_strdup(a, x)};
    if (!v[*n].digest || !v[*n].media_type || !v[*n].diff_id)
      rc = WV_ENOMEM;
    (*n)++;
  }
  json_object_put(m);
  json_object_put(c);
  if (!rc)
    *out = v;
  else
    *n = 0;
  return rc;
}

/* ---- the fetch thread ---- */

static entry_t *find(wv_base_fetch_table_t *t, const char *g) {
  for (entry_t *e = t->inflight; e; e = e->next)
    if (strcmp(e->g, g) == 0)
      return e;
  return NULL;
}

typedef struct {
  wv_base_fetch_table_t *t;
  entry_t *e;
  wv_cas_writer_t *w;
  uint64_t max;
  int64_t deadline_ns;
  int rc;
} feed_t;

/* Why a layer must stop now: WV_ECLOSED (waved stops, or no build wants it any more),
 * WV_ETIMEOUT (the fetch's deadline passed), else 0. */
static int halt_reason(wv_base_fetch_table_t *t, entry_t *e, int64_t deadline_ns) {
  if (atomic_load(&t->stop))
    return WV_ECLOSED;
  if (wv_now_ns() >= deadline_ns)
    return WV_ETIMEOUT;
  pthread_mutex_lock(&t->mu);
  int interest = e ? e->interest : 1;
  pthread_mutex_unlock(&t->mu);
  return interest > 0 ? 0 : WV_ECLOSED;
}

static bool stopped(void *arg) {
  feed_t *f = arg;
  int rc = halt_reason(f->t, f->e, f->deadline_ns);
  if (rc && !f->rc)
    f->rc = rc;
  return rc != 0;
}

static int feed(void *arg, const char *data, size_t len) {
  feed_t *f = arg;
  if (stopped(f))
    return 1;
  if (wv_cas_written(f->w) + len > f->max) {
    f->rc = WV_ETOOBIG;
    return 1;
  }
  int rc = wv_cas_write(f->w, data, len);
  if (rc) {
    f->rc = rc;
    return 1;
  }
  pthread_mutex_lock(&f->t->mu);
  f->e->got += len;
  pthread_mutex_unlock(&f->t->mu);
  return 0;
}

/* GETs layer l into the CAS, committed only as l->g of l->size bytes; why says what failed. */
static int fetch_layer(fetch_t *f, const flayer_t *l, entry_t *e, char *why, size_t whylen) {
  const wv_app_t *app = f->app;
  char base[512];
  if (wv_upstream_base_url(app->upstream, f->registry, base, sizeof base))
    return snprintf(why, whylen, "no URL for registry %s", f->registry), WV_EINVAL;
  feed_t fd = {.t = f->t, .e = e, .max = (uint64_t)l->size, .deadline_ns = f->deadline_ns};
  int64_t left_ms = (f->deadline_ns - wv_now_ns()) / 1000000;
  if (left_ms < 1)
    return snprintf(why, whylen, "the fetch's deadline passed"), WV_ETIMEOUT;
  int rc = wv_cas_begin(app->cas, &fd.w);
  wv_arena_t *a = rc ? NULL : wv_arena_new(16384);
  if (!rc && !a)
    rc = WV_ENOMEM;
  if (rc) {
    wv_cas_abort(fd.w);
    return snprintf(why, whylen, "%s", wv_strerror(rc)), rc;
  }
  wv_fetch_follow_t ff = {.registry = f->registry,
                          .repo = f->image,
                          .who = f->who,
                          .digest = l->g,
                          .base = base,
                          .timeout_ms = left_ms, /* the fetch's deadline, not per layer */
                          .idle_timeout_ms = app->cfg->hc_idle_timeout_ms,
                          .feed = feed,
                          .feed_arg = &fd,
                          .stopped = stopped};
  wv_fetch_err_t err = {0};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  rc = wv_fetch_follow(app, a, &ff, &resp, &err);
  if (fd.rc) {
    snprintf(why, whylen, "%s", wv_strerror(fd.rc));
    rc = fd.rc;
  } else if (rc) {
    snprintf(why, whylen, "%s",
             ff.end == WV_FETCH_END_REGISTRY && err.msg[0] ? err.msg : wv_strerror(rc));
  } else if (resp.status != 200) {
    snprintf(why, whylen, "the registry answered %ld", resp.status);
    rc = WV_EUPSTREAM;
  } else if (wv_cas_written(fd.w) != (uint64_t)l->size) {
    snprintf(why, whylen, "%llu bytes, the manifest says %lld",
             (unsigned long long)wv_cas_written(fd.w), (long long)l->size);
    rc = WV_EDIGEST;
  }
  wv_http_resp_free(&resp);
  wv_arena_free(a);
  if (rc) {
    wv_cas_abort(fd.w);
    return rc;
  }
  rc = wv_cas_commit(fd.w, l->g, NULL); /* the bytes hash to G, or nothing is kept */
  if (rc)
    snprintf(why, whylen, "%s", wv_strerror(rc));
  return rc;
}

/* One layer: in the CAS (fetched when missing), then mapped after waved's own inflate. */
static int one_layer(fetch_t *f, const flayer_t *l, char *why, size_t whylen) {
  wv_base_fetch_table_t *t = f->t;
  uint64_t have;
  pthread_mutex_lock(&t->mu);
  entry_t *e = find(t, l->g);
  if (e)
    e->t0_ns = wv_now_ns();
  pthread_mutex_unlock(&t->mu);
  if (!e)
    return WV_EINTERNAL;
  int rc = 0;
  if (wv_cas_exists(f->app->cas, l->g, &have) != 0 || have != (uint64_t)l->size)
    rc = fetch_layer(f, l, e, why, whylen);
  if (rc)
    return rc;
  pthread_mutex_lock(&t->mu);
  e->got = e->size;
  e->fetched_ns = wv_now_ns();
  pthread_mutex_unlock(&t->mu);
  char x[WV_EMBEDDED_DIGEST_LEN];
  rc = wv_embedded_map_blob(f->app->store, f->app->cas, l->g, l->mt, l->x, &t->stop, x);
  if (rc == WV_EEXISTS) /* X got another map meanwhile (the first wins): seeding uses it */
    rc = 0;
  if (rc == WV_EDIGEST)
    snprintf(why, whylen, "it inflates to %s, the image config says %s", x, l->x);
  else if (rc)
    snprintf(why, whylen, "cannot map it: %s", wv_strerror(rc));
  return rc;
}

static void *run(void *arg) {
  fetch_t *f = arg;
  wv_base_fetch_table_t *t = f->t;
  /* Below the builders: on Linux a nice value is a thread's own. */
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WV_BASE_FETCH_NICE) != 0)
    wv_debug("build base fetch: cannot lower its priority: %s", strerror(errno));
  for (size_t i = 0; i < f->n; i++) {
    const flayer_t *l = &f->layers[i];
    char why[1024] = "";
    int64_t t0 = wv_now_ns();
    pthread_mutex_lock(&t->mu);
    entry_t *cur = find(t, l->g);
    pthread_mutex_unlock(&t->mu);
    int rc = halt_reason(t, cur, f->deadline_ns);
    if (rc)
      snprintf(why, sizeof why, "%s",
               rc == WV_ETIMEOUT ? "the fetch's deadline passed" : "no build wants it any more");
    else
      rc = one_layer(f, l, why, sizeof why);
    if (rc == WV_EDIGEST)
      wv_warn("build base %s/%s: layer %s not mapped: %s", f->registry, f->image, l->g, why);
    else if (rc)
      wv_info("build base %s/%s: layer %s not prefetched (%s); the push compresses it", f->registry,
              f->image, l->g, why[0] ? why : wv_strerror(rc));
    else
      wv_debug("build base %s/%s: layer %s (%lld bytes) fetched and mapped in %.0f ms", f->registry,
               f->image, l->g, (long long)l->size, (wv_now_ns() - t0) / 1e6);
    pthread_mutex_lock(&t->mu);
    for (entry_t **p = &t->inflight; *p; p = &(*p)->next)
      if (strcmp((*p)->g, l->g) == 0) {
        entry_t *e = *p;
        *p = e->next;
        free(e);
        break;
      }
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
  }
  pthread_mutex_lock(&t->mu);
  t->slots[f->slot].finished = true;
  pthread_mutex_unlock(&t->mu);
  free(f->registry);
  free(f->image);
  free(f->who_copy);
  free(f);
  return NULL;
}

int wv_base_fetch_admit(uint64_t total, uint64_t need, uint64_t free_bytes) {
  if (total > WV_BASE_FETCH_BASE_MAX)
    return WV_ETOOBIG;
  if (free_bytes < need || free_bytes - need < WV_BASE_FETCH_DISK_MARGIN)
    return WV_ENOSPC;
  return 0;
}

/* Drops the interest of every member of build (mu held); true when it had one. */
static bool release_locked(wv_base_fetch_table_t *t, const char *build) {
  bool found = false;
  for (member_t **p = &t->members; *p;) {
    member_t *m = *p;
    if (strcmp(m->build, build) != 0) {
      p = &m->next;
      continue;
    }
    for (entry_t *e = t->inflight; e; e = e->next)
      for (size_t i = 0; i < m->n; i++)
        if (e->serial == m->serials[i] && e->interest > 0)
          e->interest--;
    *p = m->next;
    free(m);
    found = true;
  }
  return found;
}

/* The job of a build ended (any way, or waved stops): it wants none of its base's layers. */
static void job_ended(void *arg, const wv_job_info_t *info) {
  wv_base_fetch_release(arg, info->id);
}

/*
 * The build's member is in the table: its release comes with the seed step or, at the latest,
 * when its job ends (at once when it ended already). A job that cannot be waited for
 * releases now: the layers then go on only for other builds that want them.
 */
static void release_at_end(wv_base_fetch_table_t *t, wv_job_engine_t *jobs, const char *build) {
  if (jobs && wv_job_on_done(jobs, build, job_ended, t) != 0)
    wv_base_fetch_release(t, build);
}

int wv_base_fetch_start(wv_base_fetch_table_t *t, const wv_app_t *app, wv_job_engine_t *jobs,
                        const char *build, const char *registry, const char *image, const char *who,
                        const wv_base_fetch_layer_t *layers, size_t n) {
  if (!t || !app->upstream || !build || strlen(build) > WV_JOB_ID_MAX || !registry || !image ||
      n > WV_BASE_FETCH_LAYERS)
    return WV_EINVAL;
  uint64_t total = 0, need = 0, have;
  for (size_t i = 0; i < n; i++) { /* each is capped first: the sum cannot wrap */
    if (layers[i].size > (int64_t)WV_BASE_FETCH_BASE_MAX)
      return WV_ETOOBIG;
    if (layers[i].size > 0)
      total += (uint64_t)layers[i].size;
  }
  if (total > WV_BASE_FETCH_BASE_MAX)
    return WV_ETOOBIG;
  fetch_t *f = calloc(1, sizeof *f + n * sizeof f->layers[0]);
  if (!f)
    return WV_ENOMEM;
  for (size_t i = 0; i < n; i++) { /* what is not mapped yet */
    const wv_base_fetch_layer_t *l = &layers[i];
    if (l->size <= 0 || (uint64_t)l->size > WV_BASE_FETCH_MAX || !wv_cas_digest_valid(l->digest) ||
        !wv_cas_digest_valid(l->diff_id) || !gzip_type(l->media_type) ||
        wv_embedded_mapped(app->store, app->cas, l->diff_id, NULL)) /* any live map of X */
      continue;
    flayer_t *d = &f->layers[f->n++];
    snprintf(d->g, sizeof d->g, "%s", l->digest);
    snprintf(d->x, sizeof d->x, "%s", l->diff_id);
    snprintf(d->mt, sizeof d->mt, "%s", l->media_type);
    d->size = l->size;
    if (wv_cas_exists(app->cas, l->digest, &have) != 0)
      need += (uint64_t)l->size;
  }
  struct statvfs vfs;
  uint64_t free_bytes = UINT64_MAX;
  if (need > 0 && app->cfg->storage_path && statvfs(app->cfg->storage_path, &vfs) == 0)
    free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
  int admit = f->n ? wv_base_fetch_admit(total, need, free_bytes) : 0;
  member_t *m = admit || !f->n ? NULL : calloc(1, sizeof *m + f->n * sizeof m->serials[0]);
  if (!admit && f->n && !m)
    admit = WV_ENOMEM;
  if (admit || !f->n) {
    free(f);
    return admit;
  }
  snprintf(m->build, sizeof m->build, "%s", build);
  f->deadline_ns = wv_now_ns() + app->cfg->build_timeout_ms * 1000000LL;
  pthread_t reap[WV_BASE_FETCH_THREADS];
  int nreap = 0, slot = -1;
  pthread_mutex_lock(&t->mu);
  for (int i = 0; i < WV_BASE_FETCH_THREADS; i++) { /* ended threads are joined below */
    slot_t *s = &t->slots[i];
    if (s->used && s->started && s->finished) {
      reap[nreap++] = s->tid;
      *s = (slot_t){0};
    }
    if (!s->used && slot < 0)
      slot = i;
  }
  size_t k = 0;
  for (size_t i = 0; i < f->n; i++) { /* this build wants those in flight too */
    entry_t *e = find(t, f->layers[i].g);
    if (e) {
      e->interest++;
      m->serials[m->n++] = e->serial;
    }
  }
  for (size_t i = 0; slot >= 0 && i < f->n; i++) { /* take the layers nobody has */
    if (find(t, f->layers[i].g))
      continue;
    entry_t *e = calloc(1, sizeof *e);
    if (!e)
      break;
    snprintf(e->g, sizeof e->g, "%s", f->layers[i].g);
    e->size = (uint64_t)f->layers[i].size;
    e->t0_ns = wv_now_ns();
    e->interest = 1;
    e->serial = ++t->next_serial;
    e->next = t->inflight;
    t->inflight = e;
    m->serials[m->n++] = e->serial;
    f->layers[k++] = f->layers[i];
  }
  f->n = k;
  if (k > 0)
    t->slots[slot].used = true;
  bool member = m->n > 0;
  if (member) { /* the build's one member: what its release drops */
    m->next = t->members;
    t->members = m;
    m = NULL;
  }
  pthread_mutex_unlock(&t->mu);
  free(m); /* it counted in nothing */
  if (member && k == 0)
    release_at_end(t, jobs, build);
  for (int i = 0; i < nreap; i++)
    pthread_join(reap[i], NULL);
  if (k == 0) {
    free(f);
    return 0;
  }
  f->t = t;
  f->app = app;
  f->slot = slot;
  f->registry = strdup(registry);
  f->image = strdup(image);
  f->who = who;
  if (who && who != WV_WHO_WAVED)
    f->who = f->who_copy = strdup(who);
  pthread_t tid;
  int rc = f->registry && f->image && (!who || f->who) ? 0 : WV_ENOMEM;
  if (!rc && pthread_create(&tid, NULL, run, f) != 0)
    rc = WV_EINTERNAL;
  pthread_mutex_lock(&t->mu);
  if (rc) { /* nobody will fetch them: out of the table */
    for (size_t i = 0; i < k; i++)
      for (entry_t **p = &t->inflight; *p; p = &(*p)->next)
        if (strcmp((*p)->g, f->layers[i].g) == 0) {
          entry_t *e = *p;
          *p = e->next;
          free(e);
          break;
        }
    t->slots[slot] = (slot_t){0};
    release_locked(t, build); /* and the layers it joined */
    pthread_cond_broadcast(&t->cv);
  } else {
    t->slots[slot].tid = tid;
    t->slots[slot].started = true;
  }
  pthread_mutex_unlock(&t->mu);
  if (rc) {
    free(f->registry);
    free(f->image);
    free(f->who_copy);
    free(f);
    return rc;
  }
  release_at_end(t, jobs, build);
  return (int)k;
}

bool wv_base_fetch_release(wv_base_fetch_table_t *t, const char *build) {
  if (!t || !build)
    return false;
  pthread_mutex_lock(&t->mu);
  bool found = release_locked(t, build);
  if (found)
    pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  return found;
}

size_t wv_base_fetch_builds(wv_base_fetch_table_t *t) {
  size_t n = 0;
  pthread_mutex_lock(&t->mu);
  for (const member_t *m = t->members; m; m = m->next)
    n++;
  pthread_mutex_unlock(&t->mu);
  return n;
}

size_t wv_base_fetch_inflight(wv_base_fetch_table_t *t) {
  size_t n = 0;
  pthread_mutex_lock(&t->mu);
  for (const entry_t *e = t->inflight; e; e = e->next)
    n++;
  pthread_mutex_unlock(&t->mu);
  return n;
}

/* ---- the wait before the push ---- */

/* Projected ms until entry e is mapped: bytes left at the rate seen so far, then the inflate. */
static int64_t projected_ms(const entry_t *e, int64_t now) {
  int64_t verify = (int64_t)(e->size / WV_BASE_FETCH_INFLATE_BYTES_PER_MS);
  if (e->fetched_ns)
    return verify - (now - e->fetched_ns) / 1000000 > 0 ? verify - (now - e->fetched_ns) / 1000000
                                                        : 0;
  int64_t elapsed = (now - e->t0_ns) / 1000000;
  if (elapsed < 1)
    elapsed = 1;
  if (e->got == 0) /* no byte yet: assume it takes as long again as it did so far */
    return elapsed + verify;
  double rate = (double)e->got / (double)elapsed; /* bytes per ms */
  return (int64_t)((double)(e->size - e->got) / rate) + verify;
}

int64_t wv_base_fetch_wait(wv_base_fetch_table_t *t, const wv_base_fetch_layer_t *layers,
                           size_t n) {
  int64_t t0 = wv_now_ns(), cap = -1, waited = 0;
  if (!t)
    return 0;
  pthread_mutex_lock(&t->mu);
  for (;;) {
    int64_t now = wv_now_ns(), budget = 0;
    bool worth = false;
    for (size_t i = 0; i < n; i++) {
      const entry_t *e = find(t, layers[i].digest);
      if (!e)
        continue;
      int64_t gz = (int64_t)(e->size / WV_BASE_FETCH_GZIP_BYTES_PER_MS);
      if (projected_ms(e, now) <= gz) {
        worth = true;
        budget += gz;
      }
    }
    waited = (now - t0) / 1000000;
    if (cap < 0) /* never longer than the gzip it saves */
      cap = budget < WV_BASE_FETCH_WAIT_MAX_MS ? budget : WV_BASE_FETCH_WAIT_MAX_MS;
    if (!worth || waited >= cap || atomic_load(&t->stop))
      break;
    struct timespec ts = wv_deadline_ts(CLOCK_REALTIME, WAIT_SLICE_MS);
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
  }
  pthread_mutex_unlock(&t->mu);
  return waited;
}

/* ---- the seed-layout step ---- */

const char *wv_base_fetch_seed_arg(wv_arena_t *a, const wv_base_fetch_layer_t *layers, size_t n) {
  json_object *o = json_object_new_object(), *list = json_object_new_array();
  int rc = o && list ? 0 : WV_ENOMEM;
  for (size_t i = 0; !rc && i < n; i++) {
    json_object *l = json_object_new_object();
    rc = l ? wv_json_add_str(l, "digest", layers[i].digest) : WV_ENOMEM;
    rc = rc ? rc : wv_json_add_int(l, "size", layers[i].size);
    rc = rc ? rc : wv_json_add_str(l, "mediaType", layers[i].media_type);
    rc = rc ? rc : wv_json_add_str(l, "diffId", layers[i].diff_id);
    if (!rc && json_object_array_add(list, l))
      rc = WV_ENOMEM;
    else if (rc)
      json_object_put(l);
  }
  if (!rc && json_object_object_add(o, "layers", list))
    rc = WV_ENOMEM;
  else if (!rc)
    list = NULL;
  const char *arg = rc ? NULL : wv_arena_strdup(a, wv_json_compact(o));
  json_object_put(list);
  json_object_put(o);
  return arg;
}

/* The step's layers, back from its argument (arena). */
static int seed_layers(wv_arena_t *a, const char *arg, wv_base_fetch_layer_t **out, size_t *n) {
  json_object *o = NULL, *list;
  char perr[128];
  *n = 0;
  if (!arg || wv_json_parse(arg, strlen(arg), 256 * 1024, 0, &o, perr, sizeof perr) ||
      wv_json_get_array(o, "layers", &list) ||
      json_object_array_length(list) > WV_BASE_FETCH_LAYERS) {
    json_object_put(o);
    return WV_EPARSE;
  }
  size_t k = json_object_array_length(list);
  wv_base_fetch_layer_t *v = wv_arena_calloc(a, (k + 1) * sizeof *v);
  int rc = v ? 0 : WV_ENOMEM;
  for (size_t i = 0; !rc && i < k; i++) {
    json_object *l = json_object_array_get_idx(list, i);
    const char *g, *mt, *x;
    int64_t size;
    if (wv_json_get_str(l, "digest", &g) || wv_json_get_str(l, "mediaType", &mt) ||
        wv_json_get_str(l, "diffId", &x) || wv_json_get_int64(l, "size", &size)) {
      rc = WV_EPARSE;
      break;
    }
    v[*n] = (wv_base_fetch_layer_t){.digest = wv_arena_strdup(a, g),
                                    .size = size,
                                    .media_type = wv_arena_strdup(a, mt),
                                    .diff_id = wv_arena_strdup(a, x)};
    rc = v[*n].digest && v[*n].media_type && v[*n].diff_id ? 0 : WV_ENOMEM;
    (*n)++;
  }
  json_object_put(o);
  *out = v;
  return rc;
}

/* fn_arg: the wv_app_t. Never fails the build: an unseeded layout is pushed as before. */
static int seed_fn(wv_job_ctx_t *ctx, void *fn_arg, const char *arg) {
  const wv_app_t *app = fn_arg;
  const char *wd = wv_job_ctx_workdir(ctx);
  wv_arena_t *a = wv_arena_new(0);
  wv_base_fetch_layer_t *layers = NULL;
  size_t n = 0;
  int rc = a ? seed_layers(a, arg, &layers, &n) : WV_ENOMEM;
  if (rc || !wd || n == 0) {
    if (rc)
      wv_job_ctx_logf(ctx, "seed-layout: %s", wv_strerror(rc));
    wv_arena_free(a);
    return 0;
  }
  int64_t waited = wv_base_fetch_wait(wv__build_fetches(app), layers, n);
  /* What is still in flight is late for this build: it wants none of it any more. */
  wv_base_fetch_release(wv__build_fetches(app), wv_job_ctx_id(ctx));
  const char **ids = wv_arena_calloc(a, n * sizeof *ids);
  const char *layout = wv_arena_sprintf(a, "%s/oci", wd);
  int seeded = 0;
  for (size_t i = 0; ids && i < n; i++)
    ids[i] = layers[i].diff_id;
  rc = ids && layout ? wv_embedded_seed_layout(app->store, app->cas, layout, ids, n, &seeded)
                     : WV_ENOMEM;
  if (rc) {
    wv_job_ctx_logf(ctx, "build layout %s: not seeded: %s", layout, wv_strerror(rc));
    wv_debug("build layout %s: not seeded: %s", layout, wv_strerror(rc));
  } else {
    wv_job_ctx_logf(ctx, "build layout %s: %d of %zu base layers seeded (waited %lld ms)", layout,
                    seeded, n, (long long)waited);
    wv_info("build layout %s: %d of %zu base layers seeded (waited %lld ms)", layout, seeded, n,
            (long long)waited);
  }
  wv_arena_free(a);
  return 0;
}

int wv_base_fetch_register(wv_job_engine_t *e, const wv_app_t *app) {
  return wv_job_register_fn(e, WV_BUILDER_SEED_FN, seed_fn, (void *)app);
}
