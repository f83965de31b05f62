/* taina-fake-qdrant: the fast path of upsert bodies. A body of 64 points x 384 floats is
 * ~400 KB, and jansson makes one json_t (a malloc and a strtod) per number. Here one pass over
 * the text turns the "vector" arrays of the points straight into floats and leaves in their
 * place the number of the vector, so jansson only parses the rest (ids and payloads).
 *
 * It is an optimization only: whenever the body is anything but the plain case (a vector that
 * is not a flat array of JSON numbers, an escaped key, a number the fast conversion would not
 * give exactly as jansson does...) the caller parses the whole body as before, so the answers
 * and the errors stay the same. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdrant.h"
#include "taina/mem.h"

typedef struct scan {
    const char *p, *end;
    const char *copied; /* the text before it is in out */
    char *out;
    size_t olen, ocap;
    fastvec_t *fv;
} scan_t;

static void out_add(scan_t *s, const char *p, size_t n)
{
    if (s->olen + n + 1 > s->ocap) {
        while (s->olen + n + 1 > s->ocap)
            s->ocap = s->ocap ? s->ocap * 2 : 4096;
        s->out = tn_xrealloc(s->out, s->ocap);
    }
    memcpy(s->out + s->olen, p, n);
    s->olen += n;
}

static void ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(scan_t *s, char ch)
{
    ws(s);
    if (s->p < s->end && *s->p == ch) {
        s->p++;
        return true;
    }
    return false;
}

/* At a '"': past the closing quote; the raw text in @p k / @p klen; false when unterminated
 * or when it has an escape (a key we could misread: not the fast path). */
static bool plain_string(scan_t *s, const char **k, size_t *klen)
{
    const char *q = ++s->p;
    while (q < s->end && *q != '"') {
        if (*q == '\\')
            return false;
        q++;
    }
    if (q >= s->end)
        return false;
    *k = s->p;
    *klen = (size_t)(q - s->p);
    s->p = q + 1;
    return true;
}

/* Past one value, whatever it is (jansson checks it later): a string, a bracketed value or a
 * scalar (up to a delimiter). */
static bool skip_value(scan_t *s)
{
    size_t depth = 0;
    ws(s);
    while (s->p < s->end) {
        char ch = *s->p;
        if (ch == '"') {
            const char *q = s->p + 1;
            while (q < s->end && *q != '"')
                q += (*q == '\\' && q + 1 < s->end) ? 2 : 1;
            if (q >= s->end)
                return false;
            s->p = q + 1;
            if (depth == 0)
                return true;
        } else if (ch == '[' || ch == '{') {
            depth++;
            s->p++;
        } else if (ch == ']' || ch == '}') {
            if (depth == 0)
                return true; /* a scalar ended by its container */
            s->p++;
            if (--depth == 0)
                return true;
        } else if (depth == 0 &&
                   (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')) {
            return true;
        } else {
            s->p++;
        }
    }
    return depth == 0;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * One JSON number to the float jansson would give: (float) of its double (strtod, correctly
 * rounded) for a real, (float)(double) of its long long for an integer. Exact products and
 * quotients of a mantissa < 2^53 by 10^0..10^22 are correctly rounded too (Clinger's fast
 * path); other reals go through strtod. @returns false on bad syntax or anything jansson
 * would refuse (integer or real overflow): not the fast path.
 */
static bool number(scan_t *s, float *out)
{
    const char *p = s->p, *e = s->end, *start = p;
    bool neg = false, real = false;
    uint64_t m = 0;
    int exp10 = 0;
    bool exact = true; /* m holds every significant digit and m < 2^53 */
    if (p < e && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= e || *p < '0' || *p > '9')
        return false;
    if (*p == '0') {
        p++;
    } else {
        for (; p < e && *p >= '0' && *p <= '9'; p++) {
            if (exact && m * 10 + (uint64_t)(*p - '0') < (1ULL << 53)) /* m < 2^53 */
                m = m * 10 + (uint64_t)(*p - '0');
            else
                exact = false;
        }
    }
    if (p < e && *p == '.') {
        real = true;
        p++;
        if (p >= e || *p < '0' || *p > '9')
            return false;
        for (; p < e && *p >= '0' && *p <= '9'; p++) {
            if (exact && m * 10 + (uint64_t)(*p - '0') < (1ULL << 53)) {
                m = m * 10 + (uint64_t)(*p - '0');
                exp10--;
            } else {
                exact = false;
            }
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        bool eneg = false;
        if (p < e && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= e || *p < '0' || *p > '9')
            return false;
        int x = 0;
        for (; p < e && *p >= '0' && *p <= '9'; p++)
            x = x < 10000 ? x * 10 + (*p - '0') : x;
        exp10 += eneg ? -x : x;
    }
    size_t len = (size_t)(p - start);
    if (p >= e || len > 63)
        return false;
    if (!real) {
        /* jansson: strtoll, refusing what does not fit */
        if (!exact)
            return false;
        long long v = neg ? -(long long)m : (long long)m; /* "-0" is the integer 0 */
        *out = (float)(double)v;
        s->p = p;
        return true;
    }
    double d;
    if (exact && exp10 >= -22 && exp10 <= 22) {
        d = exp10 >= 0 ? (double)m * pow10_exact[exp10] : (double)m / pow10_exact[-exp10];
        if (neg)
            d = -d;
    } else {
        char buf[64];
        memcpy(buf, start, len);
        buf[len] = '\0';
        char *stop = NULL;
        errno = 0;
        d = strtod(buf, &stop);
        if (stop != buf + len || (errno == ERANGE && isinf(d)))
            return false;
    }
    *out = (float)d;
    s->p = p;
    return true;
}

/* At the '[' of a point's vector: its floats into fv, its number k in out. */
static bool strip_vector(scan_t *s)
{
    fastvec_t *fv = s->fv;
    const char *open = s->p++;
    size_t first = fv->nvals;
    ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
    } else {
        for (;;) {
            ws(s);
            if (fv->nvals == fv->capvals) {
                fv->capvals = fv->capvals ? fv->capvals * 2 : 4096;
                fv->vals = tn_xrealloc(fv->vals, fv->capvals * sizeof(*fv->vals));
            }
            if (!number(s, &fv->vals[fv->nvals]))
                return false;
            fv->nvals++;
            if (eat(s, ']'))
                break;
            if (!eat(s, ','))
                return false;
        }
    }
    if (fv->n == fv->cap) {
        fv->cap = fv->cap ? fv->cap * 2 : 64;
        fv->off = tn_xrealloc(fv->off, fv->cap * sizeof(*fv->off));
        fv->len = tn_xrealloc(fv->len, fv->cap * sizeof(*fv->len));
    }
    fv->off[fv->n] = first;
    fv->len[fv->n] = fv->nvals - first;
    char num[24];
    int k = snprintf(num, sizeof(num), "%zu", fv->n);
    fv->n++;
    out_add(s, s->copied, (size_t)(open - s->copied));
    out_add(s, num, (size_t)k);
    s->copied = s->p;
    return true;
}

/* One element of "points": strip its "vector" when it is an object. */
static bool point(scan_t *s)
{
    ws(s);
    if (s->p >= s->end || *s->p != '{')
        return skip_value(s);
    s->p++;
    if (eat(s, '}'))
        return true;
    for (;;) {
        const char *k;
        size_t klen;
        ws(s);
        if (s->p >= s->end || *s->p != '"' || !plain_string(s, &k, &klen) || !eat(s, ':'))
            return false;
        ws(s);
        if (klen == 6 && memcmp(k, "vector", 6) == 0) {
            /* anything but a flat array of numbers takes the ordinary path */
            if (s->p >= s->end || *s->p != '[' || !strip_vector(s))
                return false;
        } else if (!skip_value(s)) {
            return false;
        }
        if (eat(s, '}'))
            return true;
        if (!eat(s, ','))
            return false;
    }
}

/* The body's top-level object: the elements of its "points" array go through point(). */
static bool root(scan_t *s)
{
    if (!eat(s, '{'))
        return false;
    if (eat(s, '}'))
        return true;
    for (;;) {
        const char *k;
        size_t klen;
        ws(s);
        if (s->p >= s->end || *s->p != '"' || !plain_string(s, &k, &klen) || !eat(s, ':'))
            return false;
        ws(s);
        if (klen == 6 && memcmp(k, "points", 6) == 0 && s->p < s->end && *s->p == '[') {
            s->p++;
            if (!eat(s, ']')) {
                for (;;) {
                    if (!point(s))
                        return false;
                    if (eat(s, ']'))
                        break;
                    if (!eat(s, ','))
                        return false;
                }
            }
        } else if (!skip_value(s)) {
            return false;
        }
        if (eat(s, '}'))
            return true;
        if (!eat(s, ','))
            return false;
    }
}

json_t *fastvec_parse(const char *body, size_t len, fastvec_t *fv)
{
    memset(fv, 0, sizeof(*fv));
    if (!body)
        return NULL;
    scan_t s = {.p = body, .end = body + len, .copied = body, .fv = fv};
    json_t *j = NULL;
    if (root(&s) && fv->n > 0) {
        out_add(&s, s.copied, (size_t)(s.end - s.copied));
        json_error_t jerr;
        j = json_loadb(s.out, s.olen, JSON_REJECT_DUPLICATES, &jerr);
        if (j && !json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
    }
    free(s.out);
    if (!j)
        fastvec_free(fv);
    return j;
}

bool fastvec_get(const fastvec_t *fv, json_t *v, const float **vals, size_t *len)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (size_t)json_integer_value(v) >= fv->n)
        return false;
    size_t k = (size_t)json_integer_value(v);
    *vals = fv->vals + fv->off[k]; /* fv->vals is NULL when every vector is empty */
    *len = fv->len[k];
    return true;
}

void fastvec_free(fastvec_t *fv)
{
    free(fv->vals);
    free(fv->off);
    free(fv->len);
    memset(fv, 0, sizeof(*fv));
}
