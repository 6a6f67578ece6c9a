/*
 * core/secret.h — account secrets (wave.accounts values): salted, slow hashes
 * and their verification (docs/security.md).
 *
 * The stored form is "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>":
 * PBKDF2-HMAC-SHA256 (OpenSSL) over the secret with a 16-byte random salt,
 * 32 bytes of output, WV_SECRET_MIN_ITER..WV_SECRET_MAX_ITER iterations
 * (`waved hash-password` prints one). The older form, 64 hex digits of an
 * unsalted SHA-256, is still accepted (with a start-up warning) so existing
 * configurations keep working. Every comparison is constant-time.
 *
 * A slow hash per check would make each request with a valid credential pay
 * for it again, so a successful verification is remembered: a fixed table of
 * WV_SECRET_CACHE entries keyed by SHA-256(stored value, NUL, secret); only
 * successes are cached, so the table says nothing to whoever lacks the secret.
 * Thread rules: every function may be called from any thread (one mutex
 * guards the table; the slow hash runs outside it). At most half the online
 * CPUs (at least one) run a slow verification at once; more callers wait, so
 * a flood of wrong passwords cannot take every core from the IO loop.
 */
#ifndef WV_SECRET_H
#define WV_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define WV_SECRET_PREFIX "pbkdf2-sha256$"
#define WV_SECRET_DEFAULT_ITER 600000 /* OWASP's figure for PBKDF2-HMAC-SHA256 */
#define WV_SECRET_MIN_ITER 1000
#define WV_SECRET_MAX_ITER 10000000
#define WV_SECRET_MAX_LEN 128 /* the stored form is ~120 characters */
#define WV_SECRET_CACHE 256

typedef enum { WV_SECRET_BAD = 0, WV_SECRET_PBKDF2, WV_SECRET_LEGACY_SHA256 } wv_secret_kind_t;

/* The form of a stored value: PBKDF2, the legacy SHA-256 hex, or BAD (neither). */
wv_secret_kind_t wv_secret_kind(const char *stored);

/*
 * Writes the stored form of secret with a fresh random salt into out
 * (outlen >= WV_SECRET_MAX_LEN). 0, WV_EINVAL (iterations out of range) or
 * WV_EINTERNAL.
 */
int wv_secret_hash(const char *secret, int iterations, char *out, size_t outlen);

/*
 * True when secret matches the stored value (either form). A malformed stored
 * value matches nothing. Costs one slow hash unless this pair was verified
 * before (see above).
 */
bool wv_secret_verify(const char *stored, const char *secret);

#include "core/config.h"

/*
 * Checks every wave.accounts value at start-up: a legacy SHA-256 value is
 * logged as a warning (unsalted and fast: replace it with the output of
 * `waved hash-password`); a value of neither form is an error (WV_EINVAL,
 * logged with the account name).
 */
int wv_secret_check_accounts(const wv_config_t *cfg);

/*
 * HTTP Basic against wave.accounts: true when user is an account and password
 * verifies against its value. Every call costs one verification, also for an
 * unknown user, so the time taken says nothing about account names.
 */
bool wv_secret_account_check(const wv_config_t *cfg, const char *user, const char *password);

/*
 * The account (a key of cfg->accounts) whose stored value token (a
 * towerAccessToken) verifies against, or NULL (also for a NULL token). Every
 * account is tried, so the time taken does not say which one matched.
 */
const char *wv_secret_account_for_token(const wv_config_t *cfg, const char *token);

/*
 * True when wv_secret_account_for_token may cost a slow hash: some account's value is a
 * salted, slow one (a token is verified against every account, and only a pair verified
 * before is remembered). False when every value is the fast legacy form, or there are none.
 */
bool wv_secret_token_slow(const wv_config_t *cfg);

/*
 * The same check without the slow hash, for the IO loop: YES or NO when the
 * answer is known at once (a pair verified before, a legacy SHA-256 value, no
 * accounts), SLOW when only wv_secret_account_check can tell (on a worker).
 */
typedef enum { WV_SECRET_NO = 0, WV_SECRET_YES, WV_SECRET_SLOW } wv_secret_quick_t;
wv_secret_quick_t wv_secret_account_quick(const wv_config_t *cfg, const char *user,
                                          const char *password);

/*
 * `waved hash-password [--iterations N]`: reads the password from the first
 * line of stdin and prints the stored form. Returns the exit status.
 */
int wv_secret_main(int argc, char **argv);

#endif
