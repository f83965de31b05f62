/* W3C traceparent parsing and generation; random ids. */
#include "taina/trace.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "taina/mem.h"

static const char hexdig[] = "0123456789abcdef";

void tn_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0)
            continue; /* EINTR; the entropy pool is always there on Linux >= 3.17 */
        p += r;
        n -= (size_t)r;
    }
}

/* Random bytes for identifiers (trace, span and ticket ids), which are unique, not secret: taken
 * from a per-thread pool that one getrandom() fills for some 20 ids. A consumer that starts a
 * trace per record otherwise made two system calls per record (some 5% of the ingest pipeline's
 * thread). A forked child empties the pool of the thread that forked, so that parent and child
 * never hand out the same ids; the pool of any other thread does not exist in the child. */
#define ID_POOL 512
static __thread struct {
    unsigned char b[ID_POOL];
    size_t left; /* bytes not handed out yet, at the end of b; 0: empty (a new thread's pool) */
} id_pool;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_pool_forget(void)
{
    id_pool.left = 0;
}

static void id_pool_atfork(void)
{
    pthread_atfork(NULL, NULL, id_pool_forget);
}

static void id_bytes(unsigned char *out, size_t n)
{
    TN_ASSERT(n <= ID_POOL);
    if (id_pool.left < n) {
        pthread_once(&id_once, id_pool_atfork);
        tn_random_bytes(id_pool.b, ID_POOL);
        id_pool.left = ID_POOL;
    }
    memcpy(out, id_pool.b + ID_POOL - id_pool.left, n);
    id_pool.left -= n;
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char raw[16];
    TN_ASSERT(nbytes <= sizeof(raw));
    do {
        id_bytes(raw, nbytes);
        int nonzero = 0;
        for (size_t i = 0; i < nbytes; i++)
            nonzero |= raw[i];
        if (nonzero)
            break;
    } while (1);
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hexdig[raw[i] >> 4];
        out[2 * i + 1] = hexdig[raw[i] & 0xf];
    }
    out[2 * nbytes] = '\0';
}

static int lowhex(const char *s, size_t n, int *all_zero)
{
    int z = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        if (c != '0')
            z = 0;
    }
    if (all_zero)
        *all_zero = z;
    return 1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

tn_err_t tn_trace_parse(const char *v, size_t len, tn_trace_t *t)
{
    int zero;
    /* 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 */
    if (!v || len < TN_TRACE_LEN)
        return TN_ERR_PARSE;
    if (!lowhex(v, 2, NULL) || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return TN_ERR_PARSE;
    if (v[0] == 'f' && v[1] == 'f')
        return TN_ERR_PARSE;
    /* Version 00 is exactly 55 bytes; later versions may append "-..." fields. */
    if (v[0] == '0' && v[1] == '0' && len != TN_TRACE_LEN)
        return TN_ERR_PARSE;
    if (len > TN_TRACE_LEN && v[TN_TRACE_LEN] != '-')
        return TN_ERR_PARSE;
    if (!lowhex(v + 3, 32, &zero) || zero)
        return TN_ERR_PARSE;
    if (!lowhex(v + 36, 16, &zero) || zero)
        return TN_ERR_PARSE;
    if (!lowhex(v + 53, 2, NULL))
        return TN_ERR_PARSE;
    memcpy(t->trace_id, v + 3, 32);
    t->trace_id[32] = '\0';
    memcpy(t->span_id, v + 36, 16);
    t->span_id[16] = '\0';
    t->flags = (uint8_t)(hexval(v[53]) << 4 | hexval(v[54]));
    return TN_OK;
}

void tn_trace_new(tn_trace_t *t)
{
    random_hex(t->trace_id, 16);
    random_hex(t->span_id, 8);
    t->flags = 0x01;
}

void tn_trace_child(const tn_trace_t *parent, tn_trace_t *child)
{
    if (child != parent)
        memcpy(child->trace_id, parent->trace_id, sizeof(child->trace_id));
    child->flags = parent->flags;
    random_hex(child->span_id, 8);
}

int tn_trace_continue(const char *value, size_t len, tn_trace_t *out)
{
    tn_trace_t in;
    if (value && tn_trace_parse(value, len, &in) == TN_OK) {
        tn_trace_child(&in, out);
        return 1;
    }
    tn_trace_new(out);
    return 0;
}

char *tn_trace_format(const tn_trace_t *t, char *buf, size_t buflen)
{
    /* "00-%s-%s-%02x" without printf (once per produced record) */
    if (strnlen(t->trace_id, 33) != 32 || strnlen(t->span_id, 17) != 16) { /* not from here */
        snprintf(buf, buflen, "00-%s-%s-%02x", t->trace_id, t->span_id, t->flags);
        return buf;
    }
    char v[TN_TRACE_LEN + 1];
    memcpy(v, "00-", 3);
    memcpy(v + 3, t->trace_id, 32);
    v[35] = '-';
    memcpy(v + 36, t->span_id, 16);
    v[52] = '-';
    v[53] = hexdig[t->flags >> 4];
    v[54] = hexdig[t->flags & 0xf];
    v[55] = '\0';
    if (buflen > 0) {
        size_t n = buflen - 1 < TN_TRACE_LEN ? buflen - 1 : TN_TRACE_LEN;
        memcpy(buf, v, n);
        buf[n] = '\0';
    }
    return buf;
}

/* 16 bytes as canonical UUID text. */
static void uuid_format(const unsigned char *b, char *buf)
{
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[o++] = '-';
        buf[o++] = hexdig[b[i] >> 4];
        buf[o++] = hexdig[b[i] & 0xf];
    }
    buf[o] = '\0';
}

char *tn_uuid4(char *buf, size_t buflen)
{
    unsigned char b[16];
    TN_ASSERT(buflen >= 37);
    id_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, buf);
    return buf;
}

char *tn_uuid5(const char *ns, const void *name, size_t len, char out[37])
{
    unsigned char nsb[16], md[EVP_MAX_MD_SIZE];
    size_t k = 0;
    for (const char *p = ns; *p && k < 16; p++) {
        if (*p == '-' && (p - ns == 8 || p - ns == 13 || p - ns == 18 || p - ns == 23))
            continue;
        int hi = hexval(p[0]), lo = p[1] ? hexval(p[1]) : -1;
        if (hi < 0 || lo < 0)
            return NULL;
        nsb[k++] = (unsigned char)(hi << 4 | lo);
        p++;
    }
    if (k != 16 || strlen(ns) != 36)
        return NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int mdlen = 0;
    TN_ASSERT(ctx);
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, nsb, 16) &&
             EVP_DigestUpdate(ctx, name, len) && EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    TN_ASSERT(ok && mdlen >= 16);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    uuid_format(md, out);
    return out;
}
