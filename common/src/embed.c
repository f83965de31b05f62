/* Embedding providers: "hash" (feature hashing in C) and "openai" (POST /v1/embeddings). */
#include "taina/embed.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/category.h"
#include "taina/clock.h"
#include "taina/http_client.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/text.h"
#include "bytes_int.h"

#define DEF_DIMS        384
#define DEF_MAX_BATCH   64
#define DEF_TIMEOUT_MS  30000
#define DEF_ATTEMPTS    4
#define DEF_HASH_MODEL  "taina-hash-v1"
#define UPSTREAM        "embeddings"
#define MIN_RESPONSE    (1u << 20)   /* bytes: the answer cap of a client of few texts */
#define RESPONSE_PER_IN (256u << 10) /* bytes of JSON answer allowed per input text */

_Static_assert(sizeof(float) == 4, "float must be IEEE 754 binary32");

typedef enum { PROVIDER_HASH, PROVIDER_OPENAI } provider_t;

struct tn_embedder {
    provider_t provider;
    char *model;
    size_t want_dims;    /* configured dims; 0 = learn (openai) */
    _Atomic size_t dims; /* hash: fixed; openai: configured or learned from the first answer */
    size_t max_batch;
    int64_t timeout_ms;
    char *path; /* "/v1/embeddings", or "/embeddings" when the URL already ends in /v1 */
    tn_http_client_t *hc;
};

/* ------------------------------------------------------------------------------------------ */
/* Hash provider
 *
 * Features of the folded text (tn_category_fold: case folded, accents stripped), where a word is
 * a maximal run of letters and digits:
 *   - each word (kind 0, weight 1.0),
 *   - each pair of adjacent words, hashed as "w1 w2" (kind 1, weight 0.7),
 *   - each character 3-, 4- and 5-gram of the word padded as "<word>" (kind 2, weight 0.3);
 *     characters are UTF-8 code points.
 * Feature hash, over the feature's bytes p[0..n) and its kind k (0 word, 1 bigram, 2 char n-gram):
 *     h = 0x9e3779b97f4a7c15 ^ (k << 56) ^ n
 *     for each 8-byte block b of p, read little-endian, the last one zero-padded:
 *         h = fmix64(h ^ b)                       (fmix64: MurmurHash3's 64-bit finalizer)
 * Bucket = (((h >> 24) mod 2^32) * dims) >> 32, the multiply-shift range reduction (like
 * h mod dims, without a division); sign = bit 63 of h (set: negative). Each distinct feature adds
 * sign * weight * (1 + ln tf) to its bucket, in order of first appearance; the vector is then
 * L2-normalized. Everything is integer or IEEE arithmetic in a fixed order, so results are the
 * same on every machine (up to libm's last-bit rounding of log).
 *
 * Speed (some 25,000 texts of 200 words a second on one core): no allocation per feature, and
 * none per call once a thread's buffers are warm (map, replay list, folded words); ASCII runs are
 * folded without utf8proc; a repeated non-ASCII run is folded once per text; a repeated word's
 * n-grams are counted again from a list of their map indices instead of being hashed and looked up
 * again.
 */

#define HASH_SEED   0x9e3779b97f4a7c15ull
#define W_WORD      1.0f
#define W_BIGRAM    0.7f
#define W_CHAR      0.3f
#define NGRAM_MIN   3
#define NGRAM_MAX   5
#define NGRAM_BATCH 192 /* n-gram hashes of an ASCII word batched (words up to 62 letters) */

static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static inline uint64_t feature_hash(unsigned kind, const char *p, size_t n)
{
    uint64_t h = HASH_SEED ^ (uint64_t)kind << 56 ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        h = fmix64(h ^ tn_load8_le(p + i));
    if (i < n || n == 0) {
        uint64_t b = 0;
        for (size_t k = 0; i + k < n; k++)
            b |= (uint64_t)(unsigned char)p[i + k] << (8 * k);
        h = fmix64(h ^ b);
    }
    return h;
}

/* Feature kinds and their weights. */
enum { KIND_WORD = 0, KIND_BIGRAM = 1, KIND_CHAR = 2 };
static const float kind_weight[4] = {W_WORD, W_BIGRAM, W_CHAR, 0.0f};

/* kind weight x (float)(1 + ln tf) for tf below TF_TABLE (tf 1: the kind weight itself). */
#define TF_TABLE 64
static float tf_weight[4][TF_TABLE];
static pthread_once_t tf_once = PTHREAD_ONCE_INIT;

static void tf_init(void)
{
    for (unsigned k = 0; k < 4; k++)
        for (uint32_t c = 1; c < TF_TABLE; c++)
            tf_weight[k][c] =
                c > 1 ? kind_weight[k] * (float)(1.0 + log((double)c)) : kind_weight[k];
}

/*
 * The distinct features of one text, counted. Open addressing with linear probing over 64-bit
 * slots, at most half full: bits 24..63 hold the top 40 bits of the feature's hash, bits 22..23
 * its kind, bits 0..21 1 + its index in the dense arrays keys[] and counts[] (0: an empty slot).
 * The dense arrays are in order of first appearance, which fixes the summation order on every
 * machine and makes the final pass sequential. Two of a text's 10,000 features share their 40
 * bits with odds of about 1 in 20,000 (they would then count as one). A text with more than
 * 2^22 - 1 distinct features (some 100 MB) ignores the features beyond.
 */
#define SLOT_HASH (~(uint64_t)0 << 24)
#define SLOT_KIND 22
#define SLOT_IDX  (((uint64_t)1 << 22) - 1)

typedef struct {
    uint64_t *slots;
    uint64_t *keys; /* (hash & SLOT_HASH) | kind << SLOT_KIND */
    uint32_t *counts;
    uint32_t *ngrams; /* words: 1 + where their n-grams are listed in the replay list; else 0 */
    size_t mask;
    size_t used;
    size_t alloc; /* slots allocated (keys, counts, ngrams: half as many) */
} fmap_t;

/*
 * Per-thread buffers kept between calls (tn_tls_get(): freed when the thread ends): one
 * text's map, replay list and folded words are some 90 KB, and allocating and freeing them on
 * every call made glibc grow and trim the heap each time (a fifth of the time in the kernel).
 * Buffers above TN_TLS_KEEP bytes are freed after the call instead of kept.
 */
typedef struct {
    fmap_t map; /* slots NULL: none kept */
    char *fold;
    size_t fold_cap;
    uint32_t *replay;
    size_t replay_cap;
} hash_scratch_t;

static void scratch_free(void *p)
{
    hash_scratch_t *sc = p;
    free(sc->map.slots);
    free(sc->map.keys);
    free(sc->map.counts);
    free(sc->map.ngrams);
    free(sc->fold);
    free(sc->replay);
}

static tn_tls_t scratch = TN_TLS_INIT(sizeof(hash_scratch_t), scratch_free);

#define FMAP_NONE UINT32_MAX /* a feature beyond the limit, not counted */

/* A map of @p cap slots, reusing the arrays of @p kept (taken; may be empty) when big enough. */
static void fmap_init(fmap_t *m, size_t cap, fmap_t *kept)
{
    if (kept->slots && kept->alloc >= cap) {
        *m = *kept;
        memset(m->slots, 0, cap * sizeof(uint64_t));
    } else {
        free(kept->slots);
        free(kept->keys);
        free(kept->counts);
        free(kept->ngrams);
        m->slots = tn_xcalloc(cap, sizeof(uint64_t));
        m->keys = tn_xmalloc(cap / 2 * sizeof(uint64_t));
        m->counts = tn_xmalloc(cap / 2 * sizeof(uint32_t));
        m->ngrams = tn_xmalloc(cap / 2 * sizeof(uint32_t));
        m->alloc = cap;
    }
    memset(kept, 0, sizeof(*kept));
    m->mask = cap - 1;
    m->used = 0;
}

static void fmap_cleanup(fmap_t *m)
{
    free(m->slots);
    free(m->keys);
    free(m->counts);
    free(m->ngrams);
    memset(m, 0, sizeof(*m));
}

/* After a call: free what is too big to keep. */
static void scratch_trim(hash_scratch_t *sc)
{
    if (sc->map.alloc * 2 * sizeof(uint64_t) > TN_TLS_KEEP)
        fmap_cleanup(&sc->map);
    if (sc->fold_cap > TN_TLS_KEEP) {
        free(sc->fold);
        sc->fold = NULL;
        sc->fold_cap = 0;
    }
    if (sc->replay_cap * sizeof(uint32_t) > TN_TLS_KEEP) {
        free(sc->replay);
        sc->replay = NULL;
        sc->replay_cap = 0;
    }
}

static void fmap_grow(fmap_t *m)
{
    size_t cap = (m->mask + 1) * 2;
    if (cap <= m->alloc) {
        memset(m->slots, 0, cap * sizeof(uint64_t));
    } else {
        free(m->slots);
        m->slots = tn_xcalloc(cap, sizeof(uint64_t));
        m->keys = tn_xrealloc(m->keys, cap / 2 * sizeof(uint64_t));
        m->counts = tn_xrealloc(m->counts, cap / 2 * sizeof(uint32_t));
        m->ngrams = tn_xrealloc(m->ngrams, cap / 2 * sizeof(uint32_t));
        m->alloc = cap;
    }
    m->mask = cap - 1;
    for (size_t k = 0; k < m->used; k++) {
        size_t j = (size_t)(m->keys[k] >> 24) & m->mask;
        while (m->slots[j] != 0)
            j = (j + 1) & m->mask;
        m->slots[j] = m->keys[k] | (k + 1);
    }
}

/* Count one occurrence. @returns the feature's index in the dense arrays (FMAP_NONE beyond the
 * limit); *fresh tells whether it is its first. */
static inline uint32_t fmap_add(fmap_t *m, uint64_t h, unsigned kind, bool *fresh)
{
    uint64_t key = (h & SLOT_HASH) | (uint64_t)kind << SLOT_KIND;
    size_t i = (size_t)(h >> 24) & m->mask;
    *fresh = false;
    for (;;) {
        uint64_t v = m->slots[i];
        if (v == 0)
            break;
        if ((v ^ key) >> SLOT_KIND == 0) {
            uint32_t idx = (uint32_t)(v & SLOT_IDX) - 1;
            m->counts[idx]++;
            return idx;
        }
        i = (i + 1) & m->mask;
    }
    if (m->used == SLOT_IDX)
        return FMAP_NONE;
    if (2 * (m->used + 1) > m->mask + 1) {
        fmap_grow(m);
        return fmap_add(m, h, kind, fresh);
    }
    *fresh = true;
    uint32_t idx = (uint32_t)m->used++;
    m->slots[i] = key | (idx + 1);
    m->keys[idx] = key;
    m->counts[idx] = 1;
    m->ngrams[idx] = 0;
    return idx;
}

static inline bool is_ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * The words of the folded text, each followed by exactly one space. A run of ASCII letters and
 * digits is lowercased here: for ASCII that is exactly what tn_category_fold does (its word
 * characters are the letters, digits and the apostrophe, which we split words on), and it spares
 * utf8proc the bulk of the text. A run that holds any non-ASCII byte goes through
 * tn_category_fold. Caller frees; *outlen bytes.
 */
typedef struct {
    size_t raw_off, raw_len; /* the run in the text; raw_len 0: an empty entry */
    size_t out_off, out_len; /* its folded words in the output */
} fold_seen_t;

#define FOLD_CACHE 64 /* direct-mapped: a clash just folds again */

static char *fold_words(const char *text, size_t len, size_t *outlen, char *buf, size_t *bufcap)
{
    size_t cap = len + 16, o = 0;
    char *out = buf;
    if (*bufcap < cap)
        out = tn_xrealloc(buf, cap);
    else
        cap = *bufcap;
    fold_seen_t cache[FOLD_CACHE];
    memset(cache, 0, sizeof(cache));
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80 && !is_ascii_alnum(c)) {
            i++;
            continue;
        }
        size_t s = i;
        unsigned char high = 0;
        while (i < len) {
            c = (unsigned char)text[i];
            if (c < 0x80 && !is_ascii_alnum(c))
                break;
            high |= c & 0x80;
            i++;
        }
        if (o + (i - s) + 1 > cap) { /* earlier folds may have grown the text */
            cap = 2 * cap + (i - s);
            out = tn_xrealloc(out, cap);
        }
        if (!high) {
            for (size_t k = s; k < i; k++) {
                c = (unsigned char)text[k];
                out[o++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
            }
            out[o++] = ' ';
            continue;
        }
        /* Repeated words are folded once per text. */
        uint64_t h = feature_hash(KIND_WORD, text + s, i - s);
        size_t slot = (size_t)h & (FOLD_CACHE - 1);
        fold_seen_t *seen = &cache[slot];
        if (seen->raw_len == i - s && memcmp(text + seen->raw_off, text + s, i - s) == 0) {
            if (o + seen->out_len > cap) {
                cap = 2 * cap + seen->out_len;
                out = tn_xrealloc(out, cap);
            }
            memmove(out + o, out + seen->out_off, seen->out_len);
            o += seen->out_len;
            continue;
        }
        size_t o0 = o;
        char *f = tn_category_fold(text + s, i - s); /* " w1 w2 " */
        size_t fl = strlen(f);
        if (o + fl + 1 > cap) {
            cap = 2 * cap + fl;
            out = tn_xrealloc(out, cap);
        }
        for (size_t k = 0; k < fl; k++) {
            char ch = f[k] == '\'' ? ' ' : f[k];
            if (ch != ' ' || (o > 0 && out[o - 1] != ' '))
                out[o++] = ch;
        }
        free(f);
        *seen = (fold_seen_t){.raw_off = s, .raw_len = i - s, .out_off = o0, .out_len = o - o0};
    }
    *outlen = o;
    *bufcap = cap;
    return out;
}

/* Count the character n-grams of "<word>" (pw: the padded word, pl bytes, nc characters, with 8
 * readable bytes after it) and list their indices in @p list. @returns how many. */
static size_t add_char_ngrams(fmap_t *m, const char *pw, size_t pl, size_t nc, uint32_t *list)
{
    size_t o = 0;
    bool fresh;
    if (nc == pl && pl <= NGRAM_BATCH / 3) {
        /* ASCII: a character is a byte, an n-gram fits one block. All the word's hashes first,
         * their slots prefetched, then counted in order: the probes' cache misses overlap. */
        static const uint64_t mask[NGRAM_MAX + 1] = {
            0, 0, 0, 0xFFFFFFull, 0xFFFFFFFFull, 0xFFFFFFFFFFull};
        uint64_t hs[NGRAM_BATCH];
        size_t nh = 0;
        for (size_t i = 0; i + NGRAM_MIN <= pl; i++) {
            uint64_t x = tn_load8_le(pw + i);
            for (size_t n = NGRAM_MIN; n <= NGRAM_MAX && i + n <= pl; n++) {
                uint64_t h = HASH_SEED ^ (uint64_t)KIND_CHAR << 56 ^ (uint64_t)n;
                /* = feature_hash(KIND_CHAR, pw + i, n) */
                h = fmix64(h ^ (x & mask[n]));
                __builtin_prefetch(&m->slots[(size_t)(h >> 24) & m->mask]);
                hs[nh++] = h;
            }
        }
        for (size_t k = 0; k < nh; k++)
            list[o++] = fmap_add(m, hs[k], KIND_CHAR, &fresh);
        return o;
    }
    size_t left = nc; /* characters from the start position to the end */
    for (size_t i = 0; i < pl && left >= NGRAM_MIN; left--) {
        size_t j = i, chars = 0;
        while (j < pl && chars < NGRAM_MAX) {
            j++;
            while (j < pl && ((unsigned char)pw[j] & 0xC0) == 0x80)
                j++;
            chars++;
            if (chars >= NGRAM_MIN)
                list[o++] = fmap_add(m, feature_hash(KIND_CHAR, pw + i, j - i), KIND_CHAR, &fresh);
        }
        i++;
        while (i < pl && ((unsigned char)pw[i] & 0xC0) == 0x80)
            i++;
    }
    return o;
}

void tn_embed_hash(const char *text, size_t len, size_t dims, float *out)
{
    if (dims == 0)
        return;
    TN_ASSERT(out && (text || len == 0));
    memset(out, 0, dims * sizeof(float));
    if (len == 0)
        return;
    hash_scratch_t *sc = tn_tls_get(&scratch);
    size_t fl = 0;
    char *folded = fold_words(text, len, &fl, sc->fold, &sc->fold_cap);
    sc->fold = folded;

    size_t words = 0, maxw = 0;
    for (size_t i = 0; i < fl;) {
        if (folded[i] == ' ') {
            i++;
            continue;
        }
        size_t s = i;
        while (i < fl && folded[i] != ' ')
            i++;
        words++;
        maxw = TN_MAX(maxw, i - s);
    }
    if (words == 0) {
        scratch_trim(sc);
        return;
    }
    /* About 10 distinct features per word in running text; the map grows if there are more. */
    size_t cap = 256;
    while (cap < 20 * words)
        cap <<= 1;
    fmap_t m;
    fmap_init(&m, cap, &sc->map);
    char small[256];
    char *pw = maxw + 10 <= sizeof(small) ? small : tn_xmalloc(maxw + 10);
    /* Per distinct word: the number of its n-grams, then their indices. A word of c bytes has at
     * most 3 (c + 2) n-grams. Entry 0 is unused, so 0 can mean "none" in m.ngrams. */
    size_t rcap = 1 + words + 3 * (fl + 2 * words);
    if (sc->replay_cap < rcap) {
        sc->replay = tn_xrealloc(sc->replay, rcap * sizeof(uint32_t));
        sc->replay_cap = rcap;
    }
    uint32_t *replay = sc->replay;
    size_t nreplay = 1;

    const char *prev = NULL;
    for (size_t i = 0; i < fl;) {
        if (folded[i] == ' ') {
            i++;
            continue;
        }
        const char *w = folded + i;
        size_t s = i;
        while (i < fl && folded[i] != ' ')
            i++;
        size_t wl = i - s;

        bool fresh;
        uint32_t wi = fmap_add(&m, feature_hash(KIND_WORD, w, wl), KIND_WORD, &fresh);
        if (prev) /* "w1 w2": words are one space apart in folded */
            fmap_add(&m, feature_hash(KIND_BIGRAM, prev, (size_t)(w + wl - prev)), KIND_BIGRAM,
                     &fresh);
        if (wi != FMAP_NONE && m.ngrams[wi] != 0) {
            /* A word seen before has the same n-grams: count them again without hashing. */
            const uint32_t *l = replay + m.ngrams[wi];
            for (uint32_t k = 1; k <= l[0]; k++)
                if (l[k] != FMAP_NONE)
                    m.counts[l[k]]++;
        } else {
            pw[0] = '<';
            memcpy(pw + 1, w, wl);
            pw[wl + 1] = '>';
            memset(pw + wl + 2, 0, 8);
            size_t n =
                add_char_ngrams(&m, pw, wl + 2, tn_text_cp_count(w, wl) + 2, replay + nreplay + 1);
            replay[nreplay] = (uint32_t)n;
            if (wi != FMAP_NONE)
                m.ngrams[wi] = (uint32_t)nreplay;
            nreplay += n + 1;
        }
        prev = w;
    }

    /* Bucket and signed weight per distinct feature, without branches: the sign is the weight's
     * sign bit (negation, exactly), and kind weight x (1 + ln tf) comes from a table below tf 64.
     */
    pthread_once(&tf_once, tf_init);
    for (size_t k = 0; k < m.used; k++) {
        uint64_t v = m.keys[k];
        uint32_t count = m.counts[k];
        unsigned kind = (unsigned)(v >> SLOT_KIND) & 3;
        float wgt = count < TF_TABLE ? tf_weight[kind][count]
                                     : kind_weight[kind] * (float)(1.0 + log((double)count));
        uint32_t wb;
        memcpy(&wb, &wgt, sizeof(wb));
        wb ^= (uint32_t)(v >> 63) << 31;
        memcpy(&wgt, &wb, sizeof(wgt));
        size_t b = (size_t)((((v >> 24) & 0xFFFFFFFFu) * (uint64_t)dims) >> 32);
        out[b] += wgt;
    }
    double ss = 0;
    for (size_t i = 0; i < dims; i++)
        ss += (double)out[i] * (double)out[i];
    if (ss > 0) {
        float inv = (float)(1.0 / sqrt(ss));
        for (size_t i = 0; i < dims; i++)
            out[i] *= inv;
    }
    if (pw != small)
        free(pw);
    sc->map = m;
    scratch_trim(sc);
}

/* ------------------------------------------------------------------------------------------ */
/* Embedder */

tn_embed_opts_t tn_embed_opts_default(void)
{
    tn_embed_opts_t o = {
        .provider = "hash",
        .dims = DEF_DIMS,
        .max_batch = DEF_MAX_BATCH,
        .timeout_ms = DEF_TIMEOUT_MS,
        .max_attempts = DEF_ATTEMPTS,
    };
    return o;
}

static bool openai_init(tn_embedder_t *e, const tn_embed_opts_t *o, char *errbuf, size_t errlen)
{
    if (!o->url || !o->url[0] || !o->model || !o->model[0]) {
        snprintf(errbuf, errlen, "embed: the openai provider needs %s",
                 !o->model || !o->model[0] ? "a model" : "a url");
        return false;
    }
    tn_http_client_opts_t ho = tn_http_client_opts_default();
    ho.upstream = UPSTREAM;
    ho.timeout_ms = e->timeout_ms;
    ho.deadline_ms = e->timeout_ms;
    ho.max_attempts = o->max_attempts > 0 ? o->max_attempts : DEF_ATTEMPTS;
    ho.metrics = o->metrics;
    ho.max_response_bytes = e->max_batch > MIN_RESPONSE / RESPONSE_PER_IN
                                ? e->max_batch * RESPONSE_PER_IN
                                : MIN_RESPONSE;
    char herr[256];
    e->hc = tn_http_client_openai_new(&ho, o->url, o->api_key, "/embeddings", &e->path, herr,
                                      sizeof(herr));
    if (!e->hc)
        snprintf(errbuf, errlen, "embed: %s", herr);
    return e->hc != NULL;
}

tn_embedder_t *tn_embedder_new(const tn_embed_opts_t *o, char *errbuf, size_t errlen)
{
    TN_ASSERT(o);
    tn_embedder_t *e = tn_xcalloc(1, sizeof(*e));
    const char *prov = o->provider && o->provider[0] ? o->provider : "hash";
    e->max_batch = o->max_batch > 0 ? o->max_batch : DEF_MAX_BATCH;
    e->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEF_TIMEOUT_MS;
    if (strcmp(prov, "hash") == 0) {
        e->provider = PROVIDER_HASH;
        e->model = tn_xstrdup(o->model && o->model[0] ? o->model : DEF_HASH_MODEL);
        e->want_dims = o->dims > 0 ? o->dims : DEF_DIMS;
        atomic_init(&e->dims, e->want_dims);
        return e;
    }
    if (strcmp(prov, "openai") != 0) {
        snprintf(errbuf, errlen, "embed: unknown provider \"%s\" (hash, openai)", prov);
        goto fail;
    }
    e->provider = PROVIDER_OPENAI;
    e->want_dims = o->dims;
    atomic_init(&e->dims, o->dims);
    if (!openai_init(e, o, errbuf, errlen))
        goto fail;
    e->model = tn_xstrdup(o->model);
    return e;
fail:
    tn_embedder_destroy(e);
    return NULL;
}

void tn_embedder_destroy(tn_embedder_t *e)
{
    if (!e)
        return;
    tn_http_client_destroy(e->hc);
    free(e->path);
    free(e->model);
    free(e);
}

const char *tn_embedder_model(const tn_embedder_t *e)
{
    TN_ASSERT(e);
    return e->model;
}

size_t tn_embedder_dims(const tn_embedder_t *e)
{
    TN_ASSERT(e);
    return atomic_load(&((tn_embedder_t *)e)->dims);
}

/* ------------------------------------------------------------------------------------------ */
/* OpenAI provider */

static void set_why(tn_embed_error_t *why, int status, int retriable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_why(tn_embed_error_t *why, int status, int retriable, const char *fmt, ...)
{
    if (!why)
        return;
    why->status = status;
    why->retriable = retriable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    for (char *p = why->msg; *p; p++) /* one line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* A JSON string of @p len bytes; invalid UTF-8 sequences become U+FFFD (jansson refuses them). */
static json_t *json_text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    tn_buf_t b;
    tn_buf_init(&b, 3 * len + 16); /* every byte may become 3 */
    for (size_t i = 0; i < len;) {
        size_t k = 1;
        unsigned char c = (unsigned char)s[i];
        size_t need = c < 0x80             ? 1
                      : (c & 0xE0) == 0xC0 ? 2
                      : (c & 0xF0) == 0xE0 ? 3
                      : (c & 0xF8) == 0xF0 ? 4
                                           : 0;
        bool valid = need > 0 && i + need <= len && !(need == 2 && c < 0xC2);
        for (size_t t = 1; valid && t < need; t++)
            valid = ((unsigned char)s[i + t] & 0xC0) == 0x80;
        if (valid && need > 1) {
            json_t *probe = json_stringn(s + i, need); /* overlongs, surrogates, > U+10FFFF */
            valid = probe != NULL;
            json_decref(probe);
        }
        if (valid) {
            k = need;
            tn_buf_add(&b, s + i, k);
        } else {
            tn_buf_add(&b, "\xEF\xBF\xBD", 3);
        }
        i += k;
    }
    j = json_stringn(b.data ? b.data : "", b.len);
    tn_buf_cleanup(&b);
    TN_ASSERT(j);
    return j;
}

/* Map a failed request to the contract's codes and fill @p why. */
static tn_err_t map_failure(tn_err_t rc, const tn_http_response_t *resp, tn_embed_error_t *why)
{
    int status = (int)resp->status;
    char desc[300];
    switch (rc) {
    case TN_ERR_UNAVAILABLE:
    case TN_ERR_TIMEOUT:
        if (status)
            set_why(why, status, 1, "embeddings: HTTP %d after %d attempt(s)", status,
                    resp->attempts);
        else
            set_why(why, 0, 1, "embeddings: %s (%s) after %d attempt(s)",
                    rc == TN_ERR_TIMEOUT ? "timed out" : "no answer",
                    resp->error[0] ? resp->error : "connection failed", resp->attempts);
        return TN_ERR_UNAVAILABLE;
    case TN_ERR_UPSTREAM: {
        json_t *doc = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
        const char *m = tn_http_json_error_message(doc);
        if (m)
            set_why(why, status, 0, "embeddings: HTTP %d: %.200s", status, m);
        else
            set_why(why, status, 0, "embeddings: %s",
                    tn_http_response_describe(resp, desc, sizeof(desc)));
        json_decref(doc);
        return TN_ERR_UPSTREAM;
    }
    case TN_ERR_PARSE:
        set_why(why, status, 0, "embeddings: HTTP %d answer is not JSON", status);
        return TN_ERR_PARSE;
    case TN_ERR_TOO_LARGE:
        set_why(why, status, 0, "embeddings: the answer is larger than %zu bytes", resp->body.max);
        return TN_ERR_PARSE;
    default:
        set_why(why, status, 0, "embeddings: %s", tn_err_str(rc));
        return rc;
    }
}

/* Check the answer to one batch of @p cnt texts and copy its vectors to @p *out (rows
 * @p first ..). Allocates *out (n rows) once the dims are known. */
static tn_err_t take_answer(tn_embedder_t *e, json_t *doc, size_t first, size_t cnt, size_t n,
                            float **out, size_t *dims, int status, tn_embed_error_t *why)
{
    tn_err_t rc = TN_ERR_PARSE;
    json_t *data = json_object_get(doc, "data");
    unsigned char *seen = NULL;
    if (!json_is_array(data)) {
        set_why(why, status, 0, "embeddings: the answer has no \"data\" array");
        goto out;
    }
    if (json_array_size(data) != cnt) {
        set_why(why, status, 0, "embeddings: %zu vectors for %zu inputs", json_array_size(data),
                cnt);
        goto out;
    }
    seen = tn_xcalloc(cnt, 1);
    size_t i;
    json_t *item;
    json_array_foreach(data, i, item)
    {
        json_t *idx = json_object_get(item, "index");
        json_t *emb = json_object_get(item, "embedding");
        /* "index" may be missing (some servers): then the position is the index. */
        json_int_t k = idx ? (json_is_integer(idx) ? json_integer_value(idx) : -1) : (json_int_t)i;
        if (k < 0 || (size_t)k >= cnt || seen[k]) {
            set_why(why, status, 0, "embeddings: data[%zu] has a bad or repeated index", i);
            goto out;
        }
        seen[k] = 1;
        if (!json_is_array(emb) || json_array_size(emb) == 0) {
            set_why(why, status, 0, "embeddings: data[%zu].embedding is not a vector", i);
            goto out;
        }
        size_t d = json_array_size(emb);
        if (*dims == 0) {
            if (e->want_dims > 0 && d != e->want_dims) {
                set_why(why, status, 0, "embeddings: %zu dims, configured %zu", d, e->want_dims);
                goto out;
            }
            size_t expect = 0;
            if (!atomic_compare_exchange_strong(&e->dims, &expect, d) && expect != d) {
                set_why(why, status, 0, "embeddings: %zu dims, earlier answers had %zu", d, expect);
                goto out;
            }
            *dims = d;
            *out = tn_xmalloc(n * d * sizeof(float));
        } else if (d != *dims) {
            set_why(why, status, 0, "embeddings: %zu dims, expected %zu", d, *dims);
            goto out;
        }
        float *row = *out + (first + (size_t)k) * d;
        for (size_t j = 0; j < d; j++) {
            json_t *v = json_array_get(emb, j);
            if (!json_is_number(v)) {
                set_why(why, status, 0, "embeddings: data[%zu].embedding[%zu] is not a number", i,
                        j);
                goto out;
            }
            double x = json_number_value(v);
            if (!isfinite(x) || fabs(x) > 3.4e38) {
                set_why(why, status, 0, "embeddings: data[%zu].embedding[%zu] is out of range", i,
                        j);
                goto out;
            }
            row[j] = (float)x;
        }
    }
    rc = TN_OK;
out:
    free(seen);
    return rc;
}

static tn_err_t embed_openai(tn_embedder_t *e, const char *const *texts, const size_t *lens,
                             size_t n, float **out, size_t *dims, tn_embed_error_t *why)
{
    tn_err_t rc = TN_OK;
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    int64_t deadline = tn_clock_mono_ms() + e->timeout_ms;
    for (size_t first = 0; first < n && rc == TN_OK; first += e->max_batch) {
        size_t cnt = TN_MIN(e->max_batch, n - first);
        int64_t left = deadline - tn_clock_mono_ms();
        if (left <= 0) {
            set_why(why, (int)resp.status, 1, "embeddings: deadline of %lld ms passed",
                    (long long)e->timeout_ms);
            rc = TN_ERR_UNAVAILABLE;
            break;
        }
        json_t *input = json_array();
        for (size_t i = first; i < first + cnt; i++) {
            const char *t = texts[i] ? texts[i] : "";
            size_t l = lens ? lens[i] : strlen(t);
            json_array_append_new(input, json_text(t, l));
        }
        json_t *body = json_object();
        json_object_set_new(body, "model", json_string(e->model));
        json_object_set_new(body, "input", input);
        if (e->want_dims > 0)
            json_object_set_new(body, "dimensions", json_integer((json_int_t)e->want_dims));
        tn_http_request_t req = {
            .method = TN_HTTP_POST, .path = e->path, .timeout_ms = left, .deadline_ms = left};
        json_t *doc = NULL;
        tn_err_t hrc = tn_http_client_json_req(e->hc, &req, body, &resp, &doc);
        json_decref(body);
        if (hrc == TN_OK && !doc) {
            set_why(why, (int)resp.status, 0, "embeddings: HTTP %d with an empty body",
                    (int)resp.status);
            rc = TN_ERR_PARSE;
        } else if (hrc != TN_OK) {
            rc = map_failure(hrc, &resp, why);
        } else {
            rc = take_answer(e, doc, first, cnt, n, out, dims, (int)resp.status, why);
        }
        json_decref(doc);
        if (rc != TN_OK)
            TN_LOG(TN_LOG_WARN, "embed: batch of %zu input(s) at %zu of %zu failed: %s: %s", cnt,
                   first, n, tn_err_name(rc), why ? why->msg : "");
    }
    tn_http_response_cleanup(&resp);
    return rc;
}

tn_err_t tn_embed(tn_embedder_t *e, const char *const *texts, const size_t *lens, size_t n,
                  float **out, size_t *dims, tn_embed_error_t *why)
{
    TN_ASSERT(e && out && dims && (texts || n == 0));
    *out = NULL;
    *dims = 0;
    if (why)
        memset(why, 0, sizeof(*why));
    if (e->provider == PROVIDER_HASH) {
        size_t d = e->want_dims;
        *dims = d;
        if (n == 0)
            return TN_OK;
        *out = tn_xmalloc(n * d * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            const char *t = texts[i] ? texts[i] : "";
            tn_embed_hash(t, lens ? lens[i] : strlen(t), d, *out + i * d);
        }
        return TN_OK;
    }
    if (n == 0) {
        *dims = tn_embedder_dims(e);
        return TN_OK;
    }
    tn_err_t rc = embed_openai(e, texts, lens, n, out, dims, why);
    if (rc != TN_OK) {
        TN_FREE(*out);
        *dims = 0;
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Vectors as base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *tn_embed_vector_b64(const float *v, size_t n)
{
    TN_ASSERT(v || n == 0);
    size_t nb = n * 4;
    char *s = tn_xmalloc((nb + 2) / 3 * 4 + 1);
    size_t o = 0;
    uint32_t acc = 0;
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) { /* little-endian whatever the host */
            acc = (acc << 8) | ((u >> (8 * k)) & 0xFF);
            if (++have == 3) {
                s[o++] = b64_alphabet[(acc >> 18) & 63];
                s[o++] = b64_alphabet[(acc >> 12) & 63];
                s[o++] = b64_alphabet[(acc >> 6) & 63];
                s[o++] = b64_alphabet[acc & 63];
                acc = 0;
                have = 0;
            }
        }
    }
    if (have == 1) {
        s[o++] = b64_alphabet[(acc >> 2) & 63];
        s[o++] = b64_alphabet[(acc << 4) & 63];
        s[o++] = '=';
        s[o++] = '=';
    } else if (have == 2) {
        s[o++] = b64_alphabet[(acc >> 10) & 63];
        s[o++] = b64_alphabet[(acc >> 4) & 63];
        s[o++] = b64_alphabet[(acc << 2) & 63];
        s[o++] = '=';
    }
    s[o] = '\0';
    return s;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

float *tn_embed_vector_from_b64(const char *b64, size_t len, size_t *n)
{
    TN_ASSERT(n && (b64 || len == 0));
    *n = 0;
    if (len % 4 != 0)
        return NULL;
    size_t pad = 0;
    if (len > 0 && b64[len - 1] == '=')
        pad = len > 1 && b64[len - 2] == '=' ? 2 : 1;
    size_t nb = len / 4 * 3 - pad;
    if (nb % 4 != 0)
        return NULL;
    unsigned char *bytes = tn_xmalloc(nb + 3);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int q[4];
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)b64[i + (size_t)k];
            q[k] = (last && c == '=' && k >= 4 - (int)pad) ? 0 : b64_value(c);
            if (q[k] < 0)
                goto bad;
        }
        uint32_t acc =
            (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (uint32_t)q[2] << 6 | (uint32_t)q[3];
        /* Bits under the padding must be zero (one encoding per vector). */
        if (last && ((pad == 1 && (acc & 0xFF)) || (pad == 2 && (acc & 0xFFFF))))
            goto bad;
        bytes[o++] = (unsigned char)(acc >> 16);
        bytes[o++] = (unsigned char)(acc >> 8);
        bytes[o++] = (unsigned char)acc;
    }
    size_t cnt = nb / 4;
    float *v = tn_xmalloc(cnt ? cnt * sizeof(float) : sizeof(float));
    for (size_t i = 0; i < cnt; i++) {
        const unsigned char *p = bytes + 4 * i;
        uint32_t u =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&v[i], &u, 4);
    }
    free(bytes);
    *n = cnt;
    return v;
bad:
    free(bytes);
    return NULL;
}
