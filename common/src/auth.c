/* API keys: parse the keys file, and look up the tenant of a key by constant-time hash compare. */
#include "taina/auth.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

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
