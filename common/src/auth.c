/* API keys: parse the keys file, and look up the tenant of a key by constant-time hash compare. */
#include "taina/auth.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "taina/buf.h"
#include "taina/mem.h"

#define DIGEST_LEN 32

typedef struct auth_key {
    char tenant[TN_AUTH_TENANT_MAX + 1];
    unsigned char hash[DIGEST_LEN];
} auth_key_t;

struct tn_auth {
    auth_key_t *keys;
    size_t nkeys;
};

static void sha256(const void *p, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = 0;
    /* EVP_Digest with the built-in SHA-256 only fails when the library is broken. */
    int ok = EVP_Digest(p, len, out, &n, EVP_sha256(), NULL);
    TN_ASSERT(ok == 1 && n == DIGEST_LEN);
}

void tn_auth_hash_hex(const char *key, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[DIGEST_LEN];
    sha256(key, len, md);
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[TN_AUTH_HEX_LEN] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool tenant_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Split one line (without its '\n') into at most three fields; a '#' ends the line. */
static size_t split_fields(const char *line, size_t len, const char *f[3], size_t flen[3])
{
    size_t n = 0, i = 0;
    while (i < len && line[i] != '#') {
        while (i < len && is_blank(line[i]))
            i++;
        if (i >= len || line[i] == '#')
            break;
        size_t start = i;
        while (i < len && !is_blank(line[i]) && line[i] != '#')
            i++;
        if (n < 3) {
            f[n] = line + start;
            flen[n] = i - start;
        }
        n++;
    }
    return n;
}

/* Check one "TENANT HASH" line and fill @p k; on failure write why (without the location). */
static bool parse_key(const char *line, size_t len, auth_key_t *k, char *why, size_t whylen)
{
    const char *f[3];
    size_t flen[3];
    size_t n = split_fields(line, len, f, flen);
    if (n != 2) {
        snprintf(why, whylen, "expected `TENANT_ID SHA256_HEX_OF_KEY`, found %zu field%s", n,
                 n == 1 ? "" : "s");
        return false;
    }
    if (flen[0] > TN_AUTH_TENANT_MAX) {
        snprintf(why, whylen, "tenant id longer than %d characters", TN_AUTH_TENANT_MAX);
        return false;
    }
    for (size_t i = 0; i < flen[0]; i++) {
        if (!tenant_char(f[0][i])) {
            snprintf(why, whylen, "tenant id may only hold letters, digits, '.', '_' and '-'");
            return false;
        }
    }
    if (flen[1] != TN_AUTH_HEX_LEN) {
        snprintf(why, whylen, "key hash must be %d hex digits (SHA-256), found %zu characters",
                 TN_AUTH_HEX_LEN, flen[1]);
        return false;
    }
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        int hi = hex_val(f[1][2 * i]), lo = hex_val(f[1][2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(why, whylen, "key hash is not hexadecimal");
            return false;
        }
        k->hash[i] = (unsigned char)(hi << 4 | lo);
    }
    memcpy(k->tenant, f[0], flen[0]);
    k->tenant[flen[0]] = '\0';
    return true;
}

tn_err_t tn_auth_parse(const char *text, size_t len, const char *name, tn_auth_t **out,
                       char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_ERR_CONFIG;
    tn_auth_t *auth = tn_xcalloc(1, sizeof(*auth));
    size_t cap = 0, lineno = 0, pos = 0;
    char why[160];

    *out = NULL;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        pos += llen + (nl ? 1 : 0);
        lineno++;

        const char *f[3];
        size_t flen[3];
        if (split_fields(line, llen, f, flen) == 0)
            continue; /* blank or comment */
        if (memchr(line, '\0', llen)) {
            snprintf(errbuf, errlen, "%s line %zu: contains a NUL byte", name, lineno);
            goto out;
        }
        auth_key_t k;
        if (!parse_key(line, llen, &k, why, sizeof(why))) {
            snprintf(errbuf, errlen, "%s line %zu: %s", name, lineno, why);
            goto out;
        }
        for (size_t i = 0; i < auth->nkeys; i++) {
            if (memcmp(auth->keys[i].hash, k.hash, DIGEST_LEN) == 0) {
                snprintf(errbuf, errlen, "%s line %zu: duplicate key (already given for tenant %s)",
                         name, lineno, auth->keys[i].tenant);
                goto out;
            }
        }
        if (auth->nkeys == cap) {
            cap = cap ? cap * 2 : 8;
            auth->keys = tn_xrealloc(auth->keys, cap * sizeof(*auth->keys));
        }
        auth->keys[auth->nkeys++] = k;
    }
    if (auth->nkeys == 0) {
        snprintf(errbuf, errlen, "%s: no keys (expected lines `TENANT_ID SHA256_HEX_OF_KEY`)",
                 name);
        goto out;
    }
    *out = auth;
    auth = NULL; /* handed to the caller */
    rc = TN_OK;
out:
    tn_auth_destroy(auth);
    return rc;
}

tn_err_t tn_auth_load(const char *path, tn_auth_t **out, char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_ERR_IO;
    tn_buf_t text;
    char chunk[4096];
    FILE *f = fopen(path, "rb");

    tn_buf_init(&text, TN_AUTH_FILE_MAX);
    *out = NULL;
    if (!f) {
        snprintf(errbuf, errlen, "cannot open API keys file %s: %m", path);
        goto out;
    }
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (tn_buf_add(&text, chunk, n) != TN_OK) {
            snprintf(errbuf, errlen, "API keys file %s is larger than %u bytes", path,
                     TN_AUTH_FILE_MAX);
            rc = TN_ERR_TOO_LARGE;
            goto out;
        }
    }
    if (ferror(f)) {
        snprintf(errbuf, errlen, "cannot read API keys file %s", path);
        goto out;
    }
    rc = tn_auth_parse(text.data ? text.data : "", text.len, path, out, errbuf, errlen);
out:
    if (f)
        fclose(f);
    tn_buf_cleanup(&text);
    return rc;
}

void tn_auth_destroy(tn_auth_t *auth)
{
    if (!auth)
        return;
    free(auth->keys);
    free(auth);
}

size_t tn_auth_count(const tn_auth_t *auth)
{
    return auth->nkeys;
}

tn_err_t tn_auth_lookup(const tn_auth_t *auth, const char *key, size_t keylen, const char **tenant)
{
    size_t index;
    return tn_auth_lookup_index(auth, key, keylen, tenant, &index);
}

tn_err_t tn_auth_lookup_index(const tn_auth_t *auth, const char *key, size_t keylen,
                              const char **tenant, size_t *index)
{
    unsigned char md[DIGEST_LEN];
    size_t found = 0, any = 0;

    sha256(key, keylen, md);
    /* Visit every key and select the match with masks: neither an early exit nor a branch on
     * the comparison result, so timing does not depend on which key (if any) matched. */
    for (size_t i = 0; i < auth->nkeys; i++) {
        size_t eq = (size_t)(CRYPTO_memcmp(md, auth->keys[i].hash, DIGEST_LEN) == 0);
        size_t mask = (size_t)0 - eq;
        found = (found & ~mask) | (i & mask);
        any |= mask;
    }
    *tenant = any ? auth->keys[found].tenant : NULL;
    *index = found;
    return any ? TN_OK : TN_ERR_AUTH;
}

/* ------------------------------------------------------------------------------------------- */
/* Signed tokens                                                                                */

static bool tenant_ok(const char *t, size_t n)
{
    if (n == 0 || n > TN_AUTH_TENANT_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!tenant_char(t[i]))
            return false;
    return true;
}

/* base64url without padding of 32 bytes: 43 characters and a NUL. */
static void token_mac(const void *secret, size_t slen, const char *msg, size_t len, char out[44])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned char *ok =
        HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)msg, len, md, &mdlen);
    TN_ASSERT(ok && mdlen == DIGEST_LEN);
    size_t o = 0;
    for (size_t i = 0; i < DIGEST_LEN; i += 3) {
        unsigned v = (unsigned)md[i] << 16;
        if (i + 1 < DIGEST_LEN)
            v |= (unsigned)md[i + 1] << 8;
        if (i + 2 < DIGEST_LEN)
            v |= md[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < DIGEST_LEN)
            out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < DIGEST_LEN)
            out[o++] = b64[v & 63];
    }
    out[o] = '\0';
}

tn_err_t tn_auth_token_sign(const void *secret, size_t secret_len, const char *tenant,
                            long long expires_s, char *out, size_t outlen)
{
    char mac[44];
    if (!tenant_ok(tenant, strlen(tenant)) || expires_s < 0 || outlen < TN_AUTH_TOKEN_MAX + 1)
        return TN_ERR_INVALID;
    int n = snprintf(out, outlen, "v1~%s~%lld", tenant, expires_s);
    token_mac(secret, secret_len, out, (size_t)n, mac);
    snprintf(out + n, outlen - (size_t)n, "~%s", mac);
    return TN_OK;
}

tn_err_t tn_auth_token_verify(const void *secret, size_t secret_len, const char *token,
                              long long now_s, char *tenant, long long *expires_s)
{
    size_t len = strnlen(token, TN_AUTH_TOKEN_MAX + 1);
    const char *t1, *t2, *t3;
    if (len > TN_AUTH_TOKEN_MAX || strncmp(token, "v1~", 3) != 0 ||
        !(t1 = token + 3, t2 = strchr(t1, '~')) || !(t3 = strchr(t2 + 1, '~')) ||
        !tenant_ok(t1, (size_t)(t2 - t1)) || t3 == t2 + 1 || strlen(t3 + 1) != 43)
        return TN_ERR_PARSE;
    long long exp = 0;
    for (const char *p = t2 + 1; p < t3; p++) {
        if (*p < '0' || *p > '9' || exp > 100000000000LL)
            return TN_ERR_PARSE;
        exp = exp * 10 + (*p - '0');
    }
    char mac[44];
    token_mac(secret, secret_len, token, (size_t)(t3 - token), mac);
    if (CRYPTO_memcmp(mac, t3 + 1, 43) != 0)
        return TN_ERR_AUTH;
    memcpy(tenant, t1, (size_t)(t2 - t1));
    tenant[t2 - t1] = '\0';
    if (expires_s)
        *expires_s = exp;
    return exp <= now_s ? TN_ERR_TIMEOUT : TN_OK;
}
