/*
 * core/ansi.h — removing terminal escape sequences from builder output
 * before it is served (build logs, the 400 a pull gets for a failed build;
 * contract §6.1 "Logs are ANSI-stripped").
 *
 * Pure, no allocation, any thread.
 */
#ifndef WV_ANSI_H
#define WV_ANSI_H

#include <stddef.h>

/*
 * Strips, in place, CSI sequences (ESC '[' params final-byte), OSC sequences
 * (ESC ']' ... BEL or ESC '\'), other two-byte ESC sequences and a lone
 * ESC. Returns the new length; s[len] is set to '\0' when the text shrank.
 */
size_t wv_ansi_strip(char *s, size_t len);

#endif
