/* appointments: the id number is never stored, logged or published as it is. It is kept either
 * encrypted (AES-256-GCM, a random 96-bit nonce per value, so the booking system can still get
 * it) or as an HMAC-SHA256 (a keyed hash: equal ids match, nobody without the key can test
 * guesses; the booking system then gets the hash as a stable pseudonym). */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "appointments.h"
#include "taina/mem.h"

#define HMAC_PREFIX "hmac-sha256:"
#define GCM_PREFIX  "aes-256-gcm:"
#define NONCE_LEN   12
#define TAG_LEN     16

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool key_bytes(const appt_cfg_t *cfg, unsigned char key[32])
{
    const char *k = cfg->id_key ? cfg->id_key : "";
    if (strlen(k) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        int hi = hexval(k[2 * i]), lo = hexval(k[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        key[i] = (unsigned char)(hi * 16 + lo);
    }
    return true;
}

tn_err_t appt_idnum_check(const appt_cfg_t *cfg, char *errbuf, size_t errlen)
{
    unsigned char key[32];
    bool ok = key_bytes(cfg, key);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        snprintf(errbuf, errlen, "TAINA_APPOINTMENTS_ID_KEY must be 64 hex digits (32 bytes)");
        return TN_ERR_CONFIG;
    }
    return TN_OK;
}

static char *hmac_hex(const unsigned char key[32], const char *id)
{
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, 32, (const unsigned char *)id, strlen(id), mac, &len);
    char *out = tn_xmalloc(sizeof(HMAC_PREFIX) + 64);
    memcpy(out, HMAC_PREFIX, sizeof(HMAC_PREFIX) - 1);
    for (unsigned i = 0; i < len; i++)
        snprintf(out + sizeof(HMAC_PREFIX) - 1 + 2 * i, 3, "%02x", mac[i]);
    return out;
}

static char *gcm_seal(const unsigned char key[32], const char *id)
{
    size_t n = strlen(id);
    size_t raw_len = NONCE_LEN + n + TAG_LEN;
    unsigned char *raw = tn_xmalloc(raw_len);
    char *out = NULL;
    int len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    TN_ASSERT(ctx);
    if (RAND_bytes(raw, NONCE_LEN) != 1 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
        EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &len, (const unsigned char *)id, (int)n) != 1 ||
        EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + n) != 1)
        tn_assert_fail("AES-256-GCM encryption failed", __FILE__, __LINE__);
    size_t b64 = 4 * ((raw_len + 2) / 3);
    out = tn_xmalloc(sizeof(GCM_PREFIX) + b64 + 1);
    memcpy(out, GCM_PREFIX, sizeof(GCM_PREFIX) - 1);
    EVP_EncodeBlock((unsigned char *)out + sizeof(GCM_PREFIX) - 1, raw, (int)raw_len);
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    return out;
}

static char *gcm_open(const unsigned char key[32], const char *b64)
{
    size_t n = strlen(b64);
    if (n % 4 || n < 4)
        return NULL;
    unsigned char *raw = tn_xmalloc(n);
    int got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    if (got >= 0) {
        for (size_t i = n; i > 0 && b64[i - 1] == '='; i--)
            got--; /* EVP_DecodeBlock counts padding as zero bytes */
    }
    char *plain = NULL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    TN_ASSERT(ctx);
    if (got >= NONCE_LEN + TAG_LEN) {
        int ct = got - NONCE_LEN - TAG_LEN, len = 0, fin = 0;
        plain = tn_xcalloc(1, (size_t)ct + 1);
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
            EVP_DecryptUpdate(ctx, (unsigned char *)plain, &len, raw + NONCE_LEN, ct) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + ct) != 1 ||
            EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + len, &fin) != 1) {
            OPENSSL_cleanse(plain, (size_t)ct + 1);
            TN_FREE(plain); /* wrong key or tampered */
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    return plain;
}

char *appt_idnum_protect(const appt_cfg_t *cfg, const char *id_number)
{
    unsigned char key[32];
    TN_ASSERT(key_bytes(cfg, key)); /* checked at start */
    char *out =
        cfg->id_storage == APPT_ID_HMAC ? hmac_hex(key, id_number) : gcm_seal(key, id_number);
    OPENSSL_cleanse(key, sizeof(key));
    return out;
}

char *appt_idnum_for_booking(const appt_cfg_t *cfg, const char *stored)
{
    unsigned char key[32];
    TN_ASSERT(key_bytes(cfg, key));
    char *out = NULL;
    if (!strncmp(stored, HMAC_PREFIX, sizeof(HMAC_PREFIX) - 1))
        out = tn_xstrdup(stored + sizeof(HMAC_PREFIX) - 1);
    else if (!strncmp(stored, GCM_PREFIX, sizeof(GCM_PREFIX) - 1))
        out = gcm_open(key, stored + sizeof(GCM_PREFIX) - 1);
    OPENSSL_cleanse(key, sizeof(key));
    return out;
}
