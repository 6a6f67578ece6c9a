/*
 * registry/copy_blob.c — copying one blob between registries without
 * holding it in memory.
 *
 * DESIGN. Our HTTP client sends request bodies from memory and delivers
 * response bodies to a callback on the thread that made the request, and a
 * curl handle cannot be re-entered from its own callback. So the source GET
 * runs on a helper thread (its own client) whose body callback writes into a
 * bounded ring (WV_COPY_RING bytes) and blocks while the ring is full; the
 * copying thread reads the ring into a chunk buffer and sends each full chunk
 * as one PATCH. Back-pressure reaches the source over TCP: when the target is
 * slow, the helper blocks, curl stops reading, the source's window closes.
 * Memory per blob is chunk + ring, whatever the blob's size.
 *
 * Locks: pipe_t.mu guards the ring and the producer's result; it is never
 * held across network I/O (the producer waits on the condition variable, not
 * with the lock held during curl calls).
 *
 * The upload follows the distribution API: POST opens a session (or mounts,
 * within one registry), each PATCH carries Content-Range and answers 202 with
 * the next Location, PUT ?digest= closes it. A failed session is DELETEd
 * (best effort). The bytes are hashed as they pass; the size and the digest
 * are checked before the PUT, and the registry checks the digest again.
 */
#include "core/err.h"
#include "core/log.h"
#include "core/timefmt.h"
#include "registry/copy_int.h"
#include "registry/fetch.h"
#include "registry/upstream.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_SLICE_MS 200

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char *ring;
  size_t cap, rpos, len;
  bool done; /* the producer finished (rc, end, status, why set) */
  bool stop; /* the consumer gave up: abort the transfer */
  int rc;
  wv_fetch_end_t end; /* where wv_fetch_follow() stopped */
  long status;        /* the final response's */
  char why[1024];     /* with rc: the source's failure in words (see producer) */
  copy_t *m;
  const wv_copy_desc_t *d;
} pipe_t;

/* ---- producer: the source GET on a helper thread ------------------------------ */

static bool pipe_stopped(void *arg) {
  pipe_t *p = arg;
  pthread_mutex_lock(&p->mu);
  bool stop = p->stop;
  pthread_mutex_unlock(&p->mu);
  return stop;
}

/* wv_fetch_follow's feed: the blob's bytes into the ring, waiting while it is full. */
static int pipe_feed(void *arg, const char *data, size_t len) {
  pipe_t *p = arg;
  pthread_mutex_lock(&p->mu);
  while (len > 0) {
    while (p->len == p->cap && !p->stop)
      pthread_cond_wait(&p->cv, &p->mu);
    if (p->stop)
      break;
    size_t wpos = (p->rpos + p->len) % p->cap;
    size_t n = p->cap - p->len;
    if (n > p->cap - wpos)
      n = p->cap - wpos;
    if (n > len)
      n = len;
    memcpy(p->ring + wpos, data, n);
    p->len += n;
    data += n;
    len -= n;
    pthread_cond_broadcast(&p->cv);
  }
  bool stop = p->stop;
  pthread_mutex_unlock(&p->mu);
  return stop ? 1 : 0;
}

/* The source's failure (rc, where f ended) in words, for source_result to name the step. */
static void source_why(const copy_t *m, const wv_fetch_follow_t *f, int rc, const wv_fetch_err_t *e,
                       char *why, size_t n) {
  const char *src = m->o->src_registry;
  switch (f->end) {
  case WV_FETCH_END_REGISTRY: /* e says it; the transport's own text went to the log */
    snprintf(why, n, "%s", e->msg);
    return;
  case WV_FETCH_END_REDIRECTED:
    wv_warn("upstream %s: blob redirect to %s failed: %s", src, f->url, f->detail);
    snprintf(why, n, "source registry %s: blob redirect: %s", src,
             f->detail[0] ? f->detail : wv_strerror(rc));
    return;
  case WV_FETCH_END_TOO_MANY:
    snprintf(why, n, "source registry %s redirected the blob more than %d times", src,
             WV_HTTP_MAX_BLOB_REDIRECTS);
    return;
  case WV_FETCH_END_LOCATION:
    wv_warn("upstream %s: unusable blob redirect to '%s'", src, f->location);
    snprintf(why, n, "source registry %s redirected the blob to an unusable location", src);
    return;
  default: /* stopped, out of memory */
    snprintf(why, n, "source registry %s: %s", src, wv_strerror(rc));
  }
}

/* GETs the blob from the source (wv_fetch_follow: Wave's redirect policy) into the ring. */
static void *producer(void *arg) {
  pipe_t *p = arg;
  copy_t *m = p->m;
  char base[512] = "";
  wv_upstream_base_url(m->u, m->o->src_registry, base, sizeof base);
  wv_fetch_follow_t f = {.registry = m->o->src_registry,
                         .repo = m->o->src_repo,
                         .who = m->o->who,
                         .digest = p->d->digest,
                         .base = base,
                         .timeout_ms = -1,
                         .connect_timeout_ms = m->conn_timeout,
                         .idle_timeout_ms = m->idle_timeout,
                         .feed = pipe_feed,
                         .feed_arg = p,
                         .stopped = pipe_stopped};
  wv_fetch_err_t e = {0};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  wv_arena_t *a = wv_arena_new(4 * MIRROR_URL_MAX);
  int rc = a ? wv_fetch_follow(m->app, a, &f, &resp, &e) : WV_ENOMEM;
  if (rc) /* read by the consumer after it joined this thread */
    source_why(m, &f, rc, &e, p->why, sizeof p->why);
  pthread_mutex_lock(&p->mu);
  p->rc = rc;
  p->end = f.end;
  p->status = resp.status;
  p->done = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  wv_http_resp_free(&resp);
  wv_arena_free(a);
  return NULL;
}

/*
 * Reads up to want bytes into buf (*got), fewer only at the end of the
 * stream. Returns 0, or WV_ECLOSED when the copy was cancelled meanwhile.
 */
static int pipe_read(pipe_t *p, char *buf, size_t want, size_t *got) {
  *got = 0;
  int rc = 0;
  pthread_mutex_lock(&p->mu);
  while (*got < want) {
    while (p->len == 0 && !p->done) {
      struct timespec ts = wv_deadline_ts(CLOCK_REALTIME, WAIT_SLICE_MS);
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
      if (p->len == 0 && !p->done && wv__copy_cancelled(p->m)) {
        rc = WV_ECLOSED;
        goto out;
      }
    }
    if (p->len == 0)
      break; /* done and drained */
    size_t n = want - *got;
    if (n > p->len)
      n = p->len;
    if (n > p->cap - p->rpos)
      n = p->cap - p->rpos;
    memcpy(buf + *got, p->ring + p->rpos, n);
    p->rpos = (p->rpos + n) % p->cap;
    p->len -= n;
    *got += n;
    pthread_cond_broadcast(&p->cv);
  }
out:
  pthread_mutex_unlock(&p->mu);
  return rc;
}

/* ---- consumer: the upload session ------------------------------------------- */

typedef struct {
  wv_arena_t *a;            /* a few strings per blob, not per chunk */
  char loc[MIRROR_URL_MAX]; /* current session URL: a path on the target, or absolute */
  bool same;                /* loc is a path on the target */
  char what[256];
} session_t;

/* Takes the Location of a 202 as the session's next URL (one per PATCH: no arena growth). */
static int session_next(copy_t *m, session_t *s, const wv_http_resp_t *resp) {
  const char *loc = wv_http_resp_header(resp, "Location"), *t = NULL;
  wv_arena_t *tmp = wv_arena_new(2 * MIRROR_URL_MAX);
  int rc = tmp ? 0 : WV_ENOMEM;
  if (!rc && (!loc || wv_copy_location(tmp, m->dst_base, loc, NULL, &t, &s->same) ||
              strlen(t) >= sizeof s->loc))
    rc = wv__copy_fail(m, WV_EUPSTREAM, "%s: target registry %s sent no usable upload Location",
                       s->what, m->o->dst_registry);
  if (!rc)
    memcpy(s->loc, t, strlen(t) + 1);
  wv_arena_free(tmp);
  return rc;
}

/* Opens the session, or mounts the blob (*mounted) when source and target share a registry. */
static int session_open(copy_t *m, session_t *s, const wv_copy_desc_t *d, bool *mounted) {
  bool mount = m->same_registry && strcmp(m->o->src_repo, m->o->dst_repo) != 0;
  const char *path = mount ? wv_arena_sprintf(s->a, "/v2/%s/blobs/uploads/?mount=%s&from=%s",
                                              m->o->dst_repo, d->digest, m->o->src_repo)
                           : wv_arena_sprintf(s->a, "/v2/%s/blobs/uploads/", m->o->dst_repo);
  if (!path)
    return WV_ENOMEM;
  const char *hdrs[] = {"Content-Type: application/octet-stream", NULL};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv__copy_request(m, true, s->what, "POST", path, false, hdrs, "", 0, &resp);
  *mounted = !rc && mount && resp.status == 201;
  if (!rc && !*mounted)
    rc = resp.status == 202 ? session_next(m, s, &resp)
                            : wv__copy_fail_status(m, true, s->what, &resp);
  wv_http_resp_free(&resp);
  return rc;
}

/* Sends one chunk at offset off. */
static int session_patch(copy_t *m, session_t *s, const char *buf, size_t n, uint64_t off) {
  char range[96];
  wv_copy_content_range(off, n, range, sizeof range);
  const char *hdrs[] = {"Content-Type: application/octet-stream", range, "Expect:", NULL};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv__copy_request(m, true, s->what, "PATCH", s->loc, !s->same, hdrs, buf, n, &resp);
  if (!rc)
    rc = resp.status == 202 ? session_next(m, s, &resp)
                            : wv__copy_fail_status(m, true, s->what, &resp);
  wv_http_resp_free(&resp);
  return rc;
}

static int session_close(copy_t *m, session_t *s, const wv_copy_desc_t *d) {
  const char *url = NULL;
  bool same = s->same;
  if (wv_copy_location(s->a, m->dst_base, s->loc, d->digest, &url, &same))
    return WV_ENOMEM;
  const char *hdrs[] = {"Content-Type: application/octet-stream", NULL};
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv__copy_request(m, true, s->what, "PUT", url, !same, hdrs, "", 0, &resp);
  if (!rc && resp.status != 201 && resp.status != 204)
    rc = wv__copy_fail_status(m, true, s->what, &resp);
  wv_http_resp_free(&resp);
  return rc;
}

static void session_cancel(copy_t *m, session_t *s) {
  char keep[512];
  snprintf(keep, sizeof keep, "%s", m->err); /* the real failure stays the reason */
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  wv__copy_request(m, true, s->what, "DELETE", s->loc, !s->same, NULL, NULL, 0, &resp);
  wv_http_resp_free(&resp);
  snprintf(m->err, m->errlen, "%s", keep);
}

/* ---- the blob ------------------------------------------------------------------- */

/* Why the source stream ended badly, or 0. */
static int source_result(copy_t *m, pipe_t *p) {
  char what[200];
  snprintf(what, sizeof what, "fetch blob %s of %s", p->d->digest, m->o->src_repo);
  if (p->rc && p->rc != WV_ECLOSED) {
    /* A transport failure may pass; a redirect the source keeps sending will not. */
    m->retry = (p->end == WV_FETCH_END_REGISTRY || p->end == WV_FETCH_END_REDIRECTED) &&
               (p->rc == WV_EUPSTREAM || p->rc == WV_ETIMEOUT);
    return wv__copy_fail(m, p->rc, "%s: %s", what, p->why);
  }
  if (p->status != 200) {
    m->retry = p->status == 429 || p->status >= 500;
    return wv__copy_fail(m, WV_EUPSTREAM, "%s: source registry %s answered %ld", what,
                         m->o->src_registry, p->status);
  }
  return p->rc;
}

/* Streams the source into the open session; checks size and digest. */
static int stream(copy_t *m, session_t *s, pipe_t *p, char *chunk, uint64_t *total,
                  size_t *chunks) {
  wv_sha256_t h;
  int rc = wv_sha256_init(&h);
  size_t got = 0;
  *total = 0;
  do {
    if (!rc && wv__copy_cancelled(m)) /* a steady stream never waits in pipe_read */
      rc = WV_ECLOSED;
    rc = rc ? rc : pipe_read(p, chunk, m->chunk, &got);
    if (rc == WV_ECLOSED)
      rc = wv__copy_fail(m, rc, "mirror cancelled");
    if (!rc && got) {
      rc = wv_sha256_update(&h, chunk, got);
      rc = rc ? rc : session_patch(m, s, chunk, got, *total);
      *total += got;
      (*chunks)++;
    }
  } while (!rc && got == m->chunk);
  uint8_t hash[WV_SHA256_LEN];
  char dg[WV_DIGEST_STRLEN];
  if (rc) {
    wv_sha256_abort(&h);
    return rc;
  }
  if ((rc = wv_sha256_final(&h, hash)))
    return rc;
  wv_digest_format(hash, dg);
  if (p->d->size >= 0 && *total != (uint64_t)p->d->size)
    return wv__copy_fail(m, WV_EDIGEST,
                         "%s: source registry %s sent %" PRIu64 " bytes, expected %" PRId64,
                         s->what, m->o->src_registry, *total, p->d->size);
  if (strcmp(dg, p->d->digest) != 0)
    return wv__copy_fail(m, WV_EDIGEST, "%s: source registry %s sent bytes hashing to %s", s->what,
                         m->o->src_registry, dg);
  return 0;
}

static int pipe_init(pipe_t *p, copy_t *m, const wv_copy_desc_t *d) {
  memset(p, 0, sizeof *p);
  p->m = m;
  p->d = d;
  p->cap = WV_COPY_RING;
  p->ring = malloc(p->cap);
  if (!p->ring)
    return WV_ENOMEM;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  return 0;
}

static void pipe_destroy(pipe_t *p) {
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->ring);
}

/* Uploads d into an open session from the source, on a helper thread. */
static int upload(copy_t *m, session_t *s, const wv_copy_desc_t *d, uint64_t *total,
                  size_t *chunks) {
  pipe_t p;
  char *chunk = malloc(m->chunk);
  int rc = chunk ? pipe_init(&p, m, d) : WV_ENOMEM;
  if (rc) {
    free(chunk);
    return rc;
  }
  pthread_t th;
  if (pthread_create(&th, NULL, producer, &p) != 0) {
    pipe_destroy(&p);
    free(chunk);
    return wv__copy_fail(m, WV_EINTERNAL, "cannot start a thread to read blob %s", d->digest);
  }
  rc = stream(m, s, &p, chunk, total, chunks);
  pthread_mutex_lock(&p.mu);
  p.stop = true;
  pthread_cond_broadcast(&p.cv);
  pthread_mutex_unlock(&p.mu);
  pthread_join(th, NULL);
  /* A failed source explains a short or wrong stream better than the digest check. */
  int src = source_result(m, &p);
  if (src && (!rc || rc == WV_EDIGEST))
    rc = src;
  pipe_destroy(&p);
  free(chunk);
  return rc ? rc : session_close(m, s, d);
}

int wv__copy_blob(copy_t *m, const wv_copy_desc_t *d) {
  wv_arena_t *a = wv_arena_new(4 * MIRROR_URL_MAX);
  if (!a)
    return WV_ENOMEM;
  session_t s = {.a = a};
  snprintf(s.what, sizeof s.what, "upload blob %s to %s", d->digest, m->o->dst_repo);
  char path[MIRROR_URL_MAX];
  snprintf(path, sizeof path, "/v2/%s/blobs/%s", m->o->dst_repo, d->digest);
  wv_http_resp_t resp;
  wv_http_resp_init(&resp);
  int rc = wv__copy_request(m, true, "check target", "HEAD", path, false, NULL, NULL, 0, &resp);
  bool exists = !rc && resp.status == 200, mounted = false;
  wv_http_resp_free(&resp);
  uint64_t total = 0;
  size_t chunks = 0;
  if (exists) {
    m->st.blobs_existing++;
    wv__copy_logf(m, "blob %s already in the target", d->digest);
    rc = 0;
    goto out;
  }
  rc = session_open(m, &s, d, &mounted);
  if (!rc && mounted) {
    m->st.blobs_mounted++;
    wv__copy_logf(m, "blob %s mounted from %s", d->digest, m->o->src_repo);
    goto out;
  }
  if (!rc && (rc = upload(m, &s, d, &total, &chunks)))
    session_cancel(m, &s);
  if (!rc) {
    m->st.blobs_copied++;
    m->st.bytes += total;
    wv__copy_logf(m, "blob %s copied (%" PRIu64 " bytes in %zu chunks)", d->digest, total, chunks);
  }
out:
  wv_arena_free(a);
  return rc;
}
