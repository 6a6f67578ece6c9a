/*
 * storage/state_move.h — moving one instance's state to a cluster and back
 * (docs/scale-out.md): `waved state export` copies the databases a cluster
 * shares (tokens, records, counters, the manifest cache, the embedded
 * registry's index) from storage.path's LMDB store into the Redis of
 * state.redis.*; `waved state import` copies them from Redis into
 * storage.path's LMDB store. Records keep their bytes and their expiry.
 *
 * Run it with the waved of storage.path stopped. Thread rules: one call,
 * from main, blocking.
 */
#ifndef WV_STATE_MOVE_H
#define WV_STATE_MOVE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  const char *data;   /* storage.path */
  uint64_t map_size;  /* storage.map-size */
  const char *url;    /* state.redis.url */
  const char *prefix; /* state.redis.prefix */
  int64_t timeout_ms; /* state.redis.timeout */
  bool to_redis;      /* export (LMDB to Redis), else import */
  const char *tls_ca; /* state.redis.tls-ca (NULL or "" = the system's CAs) */
} wv_state_move_t;

/* Copies, printing a line per database and a summary on stderr. The exit status: 0 or 1. */
int wv_state_move_main(const wv_state_move_t *o);

#endif
