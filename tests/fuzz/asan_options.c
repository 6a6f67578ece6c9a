/*
 * tests/fuzz/asan_options.c — AddressSanitizer defaults linked into every
 * fuzz target (ASAN_OPTIONS still overrides them). The quarantine, which
 * keeps freed memory poisoned so a later use is caught, is cut from 256 MiB
 * to 32 MiB: a use after free is still caught unless 32 MiB were freed in
 * between, more than an input of these targets allocates in all but rare
 * cases, and the targets no longer cycle through 256 MiB of fresh pages
 * (page faults and page clearing were most of their time; 1.5-3x more
 * executions per second, docs/security.md "Long runs").
 */
const char *__asan_default_options(void);

const char *__asan_default_options(void) { return "quarantine_size_mb=32"; }
