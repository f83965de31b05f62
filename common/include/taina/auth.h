/**
 * @file auth.h
 * @brief API keys: a keys file mapping SHA-256 hashes of keys to tenants, and lookup.
 *
 * The keys file has one key per line, `TENANT_ID SHA256_HEX_OF_KEY`, separated by spaces or
 * tabs. `#` starts a comment (whole line or after the fields); blank lines are ignored.
 * Tenant ids are 1..64 characters of `[A-Za-z0-9._-]`; hashes are 64 hex digits (either case).
 * Only hashes are stored, so the file is not a secret by itself.
 *
 *     tn_auth_t *auth = NULL;
 *     if (tn_auth_load("/etc/taina/keys", &auth, err, sizeof(err)) != TN_OK) ...
 *     const char *tenant;
 *     if (tn_auth_lookup(auth, key, strlen(key), &tenant) == TN_OK) ...
 *
 * @thread A loaded tn_auth_t is immutable: tn_auth_lookup() may run on any number of threads
 *         at once. Load and destroy on one thread, while no lookup runs.
 */
#ifndef TAINA_AUTH_H
#define TAINA_AUTH_H

#include <stddef.h>

#include "taina/err.h"

/** Length of a SHA-256 digest in hex, without the terminating NUL. */
#define TN_AUTH_HEX_LEN 64
/** Longest tenant id accepted in a keys file. */
#define TN_AUTH_TENANT_MAX 64
/** Largest keys file read by tn_auth_load(). */
#define TN_AUTH_FILE_MAX (4u * 1024 * 1024)

typedef struct tn_auth tn_auth_t;

/**
 * @brief Read and parse the keys file at @p path.
 * @param out on success the key set. Caller owns the result; free with tn_auth_destroy().
 * @returns TN_OK; TN_ERR_IO when the file cannot be read; TN_ERR_TOO_LARGE over
 *          TN_AUTH_FILE_MAX; TN_ERR_CONFIG for a malformed line, a duplicate key or a file
 *          without keys. One sentence naming the file (and line) goes to @p errbuf.
 */
tn_err_t tn_auth_load(const char *path, tn_auth_t **out, char *errbuf, size_t errlen);

/**
 * @brief Parse keys-file text (@p len bytes, need not be NUL-terminated).
 * @param name how to call the source in error messages (a path, "test").
 * @param out on success the key set. Caller owns the result; free with tn_auth_destroy().
 * @returns TN_OK or TN_ERR_CONFIG with "NAME line N: ..." in @p errbuf.
 */
tn_err_t tn_auth_parse(const char *text, size_t len, const char *name, tn_auth_t **out,
                       char *errbuf, size_t errlen);

/** @brief Free the key set. NULL ok. Tenant strings returned by lookups become invalid. */
void tn_auth_destroy(tn_auth_t *auth);

/** @brief Number of keys loaded. */
size_t tn_auth_count(const tn_auth_t *auth);

/**
 * @brief Find the tenant of the presented API key.
 *
 * Hashes the key with SHA-256 and compares the digest with every stored hash in constant
 * time (no early exit), so the time taken does not reveal which key matched or how much of it.
 * @param tenant on TN_OK the tenant id. Borrowed; valid until tn_auth_destroy().
 * @returns TN_OK or TN_ERR_AUTH (unknown key; *tenant set to NULL).
 */
tn_err_t tn_auth_lookup(const tn_auth_t *auth, const char *key, size_t keylen, const char **tenant);

/**
 * @brief tn_auth_lookup() that also gives the matching key's position in the file (0-based,
 *        in 0..tn_auth_count()-1): per-key state such as rate limits is kept by it.
 */
tn_err_t tn_auth_lookup_index(const tn_auth_t *auth, const char *key, size_t keylen,
                              const char **tenant, size_t *index);

/**
 * @brief Write the lower-case hex SHA-256 of @p key (@p len bytes) to @p out (the format of
 *        the keys file). For tools and tests.
 * @param out at least TN_AUTH_HEX_LEN + 1 bytes; NUL-terminated.
 */
void tn_auth_hash_hex(const char *key, size_t len, char *out);

/* ------------------------------------------------------------------------------------------ */
/* Signed short-lived tokens (for browsers, which cannot set headers on a WebSocket upgrade)   */

/** Longest token tn_auth_token_sign() writes, without the NUL. */
#define TN_AUTH_TOKEN_MAX 160

/**
 * @brief A token for @p tenant valid until @p expires_s (Unix seconds):
 *        `v1~TENANT~EXPIRES~SIG`, SIG = base64url (no padding) of HMAC-SHA256(@p secret,
 *        "v1~TENANT~EXPIRES"). Only URL-safe characters: it can go in a query string as is.
 * @param out at least TN_AUTH_TOKEN_MAX + 1 bytes.
 * @returns TN_OK, or TN_ERR_INVALID for a tenant that a keys file would refuse.
 */
tn_err_t tn_auth_token_sign(const void *secret, size_t secret_len, const char *tenant,
                            long long expires_s, char *out, size_t outlen);

/**
 * @brief Check a token: signature (constant-time compare) and expiry against @p now_s.
 * @param tenant out: the tenant (at least TN_AUTH_TENANT_MAX + 1 bytes).
 * @param expires_s out, may be NULL.
 * @returns TN_OK; TN_ERR_PARSE (not a token); TN_ERR_AUTH (bad signature); TN_ERR_TIMEOUT
 *          (expired).
 */
tn_err_t tn_auth_token_verify(const void *secret, size_t secret_len, const char *token,
                              long long now_s, char *tenant, long long *expires_s);

#endif
