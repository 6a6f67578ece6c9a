/*
 * http/server_peer.c — which pool runs a detached request, and fair shares of
 * the peer pool per client address.
 *
 * DESIGN
 *
 * Two pools. Handlers of the registry URL space (/v2) wait on peers: an
 * upstream that trickles a blob, a client that reads one slowly, a fill they
 * follow. They run on the peer pool (server.registry-workers threads, many,
 * since a waiting thread costs a stack and nothing else). Everything else —
 * the API, whose container requests must answer at once — runs on the worker
 * pool (server.workers), which therefore no pull can occupy
 * (docs/proxy.md, "Slow peers").
 *
 * Fair shares. One client address may run at most
 * server.registry-workers-per-client peer jobs at once. A job of an address at
 * its share does not run when a thread picks it: it waits in that address's
 * own list, and the next job of the address to end hands its share to the
 * oldest waiter (which goes back to the pool's queue holding the share), so
 * other addresses overtake it and nothing is refused. A job that parks gives
 * its share back when its handler returns; its resumption takes one anew.
 *
 * The table of addresses holds an entry only while the address holds a
 * share, so it never outgrows the jobs in flight. peer_mu is a leaf lock:
 * jobs are submitted and run without it.
 */
#include "http/server_int.h"
#include "core/siphash.h"
#include "core/err.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

struct peer_ip {
  peer_ip_t *next;
  char ip[46];
  int running;                       /* shares held: jobs running, or queued with a share */
  int nwait;                         /* jobs in the wait list */
  exchange_t *wait_head, *wait_tail; /* jobs waiting for a share, oldest first (wnext) */
};

/*
 * The share key of a client address: the address itself for IPv4, its /64 for IPv6 (one
 * host usually holds a whole /64, as the rate limits count it: docs/rate-limits.md).
 */
static void share_key(const char *ip, char out[46]) {
  struct in6_addr a6;
  if (strchr(ip, ':') && inet_pton(AF_INET6, ip, &a6) == 1) {
    memset(a6.s6_addr + 8, 0, 8);
    if (inet_ntop(AF_INET6, &a6, out, 46))
      return;
  }
  snprintf(out, 46, "%s", ip);
}

static unsigned ip_hash(const char *ip) { return (unsigned)(wv_str_hash(ip) % PEER_BUCKETS); }

/* The entry of ip, created when add; NULL when absent (or out of memory). peer_mu held. */
static peer_ip_t *ip_find(wv_server_t *s, const char *ip, bool add) {
  peer_ip_t **b = &s->peer_tab[ip_hash(ip)];
  for (peer_ip_t *e = *b; e; e = e->next)
    if (strcmp(e->ip, ip) == 0)
      return e;
  peer_ip_t *e = add ? calloc(1, sizeof *e) : NULL;
  if (e) {
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    e->next = *b;
    *b = e;
  }
  return e;
}

static void ip_remove(wv_server_t *s, peer_ip_t *gone) {
  for (peer_ip_t **p = &s->peer_tab[ip_hash(gone->ip)]; *p; p = &(*p)->next)
    if (*p == gone) {
      *p = gone->next;
      free(gone);
      return;
    }
}

static int peer_cap(const wv_server_t *s) { return s->o.registry_workers_per_client; }

/* Waiting requests of one address: as many as it may hold connections
 * (server.max-connections-per-ip: a cluster pulling through one address parks hundreds of
 * pulls at once), at least 4 shares. */
static int wait_cap(const wv_server_t *s) {
  int conns = s->o.max_conns_per_ip > 0 ? s->o.max_conns_per_ip : 1024;
  return conns > 4 * peer_cap(s) ? conns : 4 * peer_cap(s);
}

/* Gives up ip's share: to its oldest waiter (returned, to be queued), else back. */
static exchange_t *share_release(wv_server_t *s, const char *ip) {
  pthread_mutex_lock(&s->peer_mu);
  peer_ip_t *e = ip_find(s, ip, false);
  exchange_t *w = e ? e->wait_head : NULL;
  if (w) {
    e->wait_head = w->wnext;
    if (!e->wait_head)
      e->wait_tail = NULL;
    e->nwait--;
    s->nwaiting--;
    w->wnext = NULL;
    w->has_share = true;
  } else if (e && --e->running <= 0) {
    ip_remove(s, e);
  }
  pthread_mutex_unlock(&s->peer_mu);
  return w;
}

typedef enum { SHARE_RUN, SHARE_WAIT, SHARE_FULL } share_t;

/*
 * SHARE_RUN: ex may run now (it holds a share, or no entry could be made); SHARE_WAIT: it
 * waits in its address's list; SHARE_FULL: that list (wait_cap) or all lists together
 * (server.worker-queue) are full — the caller answers 503, as a full queue does.
 */
static share_t share_take(wv_server_t *s, exchange_t *ex) {
  if (ex->has_share)
    return SHARE_RUN;
  char key[46];
  share_key(ex->req.client_ip, key);
  pthread_mutex_lock(&s->peer_mu);
  peer_ip_t *e = ip_find(s, key, true);
  share_t r = SHARE_RUN;
  if (!e) {
    /* Out of memory: run unaccounted rather than lose the request. */
  } else if (e->running < peer_cap(s)) {
    e->running++;
    ex->has_share = true;
  } else if (e->nwait >= wait_cap(s) || s->nwaiting >= s->o.max_queued_jobs) {
    r = SHARE_FULL;
  } else {
    ex->wnext = NULL;
    if (e->wait_tail)
      e->wait_tail->wnext = ex;
    else
      e->wait_head = ex;
    e->wait_tail = ex;
    e->nwait++;
    s->nwaiting++;
    r = SHARE_WAIT;
  }
  pthread_mutex_unlock(&s->peer_mu);
  return r;
}

/* Answers ex 503 without running it (its loop drops the answer when the client left). */
static void refuse(exchange_t *ex, int rc, const char *msg) {
  ex->has_share = false;
  wv_resp_error(&ex->req, &ex->resp, rc, msg);
  ex->resp.status = 503;
  wv_resp_header(&ex->resp, "Retry-After", "1");
  wv__srv_done_push(ex);
}

/* Whether the connection ex answers has closed since it was detached (its slot's generation
 * moved on). Slots never move, and generations only grow, so a stale read only delays this. */
static bool client_gone(const exchange_t *ex) {
  return __atomic_load_n(&ex->loop->slots[ex->slot].gen, __ATOMIC_RELAXED) != ex->gen;
}

static void peer_job_run(wv_pool_job_t *job) {
  exchange_t *ex = (exchange_t *)((char *)job - offsetof(exchange_t, job));
  wv_server_t *s = ex->loop->srv;
  share_t st = share_take(s, ex);
  if (st == SHARE_WAIT)
    return; /* waits for a share of its own address */
  if (st == SHARE_FULL) {
    refuse(ex, WV_EBUSY, "Too many registry requests from this address in progress - retry later");
    return;
  }
  bool held = ex->has_share;
  ex->has_share = false;
  char key[46];
  share_key(ex->req.client_ip, key);
  if (client_gone(ex)) /* nobody to answer: no upstream work for it */
    refuse(ex, WV_EBUSY, "Client gone");
  else
    wv__srv_job_run(job); /* ex may be answered, recycled or parked from here on */
  if (!held)
    return;
  /* The share goes to the oldest waiter of the address; one the pool refuses (full or
   * stopping) is answered 503 and the share passes on. */
  exchange_t *w = share_release(s, key);
  int rc;
  while (w && (rc = wv_pool_submit(s->peer_pool, &w->job)) != 0) {
    refuse(w, rc, "Server busy - retry later");
    w = share_release(s, key);
  }
}

int wv__srv_submit(exchange_t *ex) {
  wv_server_t *s = ex->loop->srv;
  if (ex->req.registry && s->peer_pool) {
    ex->job.run = peer_job_run;
    return wv_pool_submit(s->peer_pool, &ex->job);
  }
  ex->job.run = wv__srv_job_run;
  return wv_pool_submit(s->pool, &ex->job);
}

void wv__srv_peer_free(wv_server_t *s) {
  for (int b = 0; b < PEER_BUCKETS; b++) {
    peer_ip_t *e = s->peer_tab[b];
    while (e) {
      peer_ip_t *next = e->next;
      for (exchange_t *w = e->wait_head, *wn; w; w = wn) {
        wn = w->wnext;
        wv__srv_ex_free(w);
      }
      free(e);
      e = next;
    }
    s->peer_tab[b] = NULL;
  }
}
