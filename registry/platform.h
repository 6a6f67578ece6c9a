/*
 * registry/platform.h — container platforms (contract §4.7).
 *
 * A platform string is "os/arch[/variant]" or just "arch" (os defaults to
 * linux); a multi-platform request is a comma-separated list of them
 * ("linux/amd64,linux/arm64"), each trimmed. Normalisation:
 *   - arch aliases x86_64, x86-64 → amd64 and aarch64 → arm64; the allowed
 *     set is amd64, x86_64, x86-64, arm64, aarch64, arm; anything else is
 *     "Unsupported container platform: <arch>";
 *   - arm64 with variant v8 or 8 has no variant; arm without a variant (or
 *     7) is v7, and 5|6|8 become v5|v6|v8; other variants are kept as given;
 *   - empty segments are skipped (Wave tokenises on '/'), more than three
 *     give "Invalid container platform: <v> -- offending value: <v>" (Wave's
 *     text; the spec does not list it);
 *   - an empty value is "Missing container platform attribute" (callers that
 *     default an absent containerPlatform to linux/amd64 do so before).
 * waved also rejects os and variant words outside [A-Za-z0-9._-]{1,31}, with
 * the "Unsupported" message, since they end up in names and messages.
 *
 * Index matching (wv_platform_match_entry) compares one index entry's
 * "platform" object: os equal; arch equal modulo aliases; variant equal after
 * the same normalisation is applied to the entry (so an entry arm64/v8
 * matches arm64 and an arm entry without variant matches arm/v7, as in
 * containerd), with the spec's rule that for arm64 an empty variant matches
 * none or v8.
 *
 * Platforms are plain values (fixed arrays): no allocation except the
 * error message, which is an arena string.
 */
#ifndef WV_PLATFORM_H
#define WV_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"

#define WV_PLATFORM_WORD 32                    /* os, arch, variant: at most 31 bytes + NUL */
#define WV_PLATFORM_MAX 8                      /* platforms in one comma-separated list */
#define WV_PLATFORM_STR (3 * WV_PLATFORM_WORD) /* fits one formatted platform */

typedef struct {
  char os[WV_PLATFORM_WORD];
  char arch[WV_PLATFORM_WORD];
  char variant[WV_PLATFORM_WORD]; /* "" when none */
} wv_platform_t;

typedef struct {
  wv_platform_t items[WV_PLATFORM_MAX];
  size_t n;
} wv_platform_list_t;

/* Parses one platform. Returns 0 or WV_EINVAL (with message) or WV_ENOMEM. */
int wv_platform_parse(wv_arena_t *a, const char *s, wv_platform_t *out, const char **msg);

/* Parses a comma-separated list (at least one). Same returns; WV_ETOOBIG past WV_PLATFORM_MAX. */
int wv_platform_parse_list(wv_arena_t *a, const char *s, wv_platform_list_t *out, const char **msg);

/* Writes "linux/arm/v7" into buf (always NUL-terminated); returns the length it needed. */
size_t wv_platform_format(const wv_platform_t *p, char *buf, size_t size);

/* "linux/amd64,linux/arm64" as an arena string (NULL on OOM). */
const char *wv_platform_list_format(wv_arena_t *a, const wv_platform_list_t *l);

/* True when the (normalised) platforms are the same. */
bool wv_platform_equal(const wv_platform_t *x, const wv_platform_t *y);

/*
 * True when an index entry's platform fields match want. os and arch are
 * required (NULL never matches); variant may be NULL or "".
 */
bool wv_platform_match_entry(const wv_platform_t *want, const char *os, const char *arch,
                             const char *variant);

/* True when any platform of the list matches the entry. */
bool wv_platform_list_match_entry(const wv_platform_list_t *want, const char *os, const char *arch,
                                  const char *variant);

/* Normalises an architecture alias ("x86_64" → "amd64"); unknown names come back unchanged. */
const char *wv_platform_arch_canonical(const char *arch);

#endif
