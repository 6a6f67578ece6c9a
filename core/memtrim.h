/*
 * core/memtrim.h — giving memory back to the system after a spike
 * (docs/security.md).
 *
 * glibc keeps freed memory in its arenas: after a few large request bodies
 * (a 10 MiB buffer, then json-c's many small objects on a worker's arena)
 * the process would stay at its peak. Two measures bring RSS back: at
 * start-up, a fixed mmap threshold (1 MiB), so every large buffer is its own
 * mapping, unmapped on free (glibc's sliding threshold would otherwise grow
 * to the largest body seen and put later ones on the heap); and a trimmer
 * thread that calls malloc_trim(0) — which also returns the free pages inside
 * every arena — every WV_MEMTRIM_DELAY_MS for WV_MEMTRIM_WINDOW_MS after a
 * large input arrived (wv_memtrim_note; the request that brought it may free
 * its memory seconds later), and never otherwise.
 *
 * Thread rules: wv_memtrim_note may be called from any thread; start and stop
 * from the composition root only.
 */
#ifndef WV_MEMTRIM_H
#define WV_MEMTRIM_H

#include <stddef.h>

#define WV_MEMTRIM_LARGE (1u << 20) /* inputs from this size on are "large" */
#define WV_MEMTRIM_DELAY_MS 2000
#define WV_MEMTRIM_WINDOW_MS 30000

/* Sets the malloc thresholds and starts the trimmer. 0 or WV_EINTERNAL. */
int wv_memtrim_start(void);
void wv_memtrim_stop(void);
/* Records that an input of bytes was handled; large ones schedule a trim. */
void wv_memtrim_note(size_t bytes);

#endif
