/* Unit tests for common/src/embed.c: the hash provider, the openai provider against the scripted
 * server in tests/support, and the base64 vector encoding. */
#include "tn_test.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_http.h"
#include "taina/clock.h"
#include "taina/embed.h"
#include "taina/log.h"
#include "taina/mem.h"

/* ------------------------------------------------------------------------------------------ */
/* Hash provider */

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

static double cosine(const char *a, const char *b, size_t dims)
{
    float *va = tn_xmalloc(dims * sizeof(float));
    float *vb = tn_xmalloc(dims * sizeof(float));
    tn_embed_hash(a, strlen(a), dims, va);
    tn_embed_hash(b, strlen(b), dims, vb);
    double c = dot(va, vb, dims);
    free(va);
    free(vb);
    return c;
}

/* Pinned: the same values on every machine (the hash and the feature order are fixed). */
static void test_hash_pinned(void **state)
{
    (void)state;
    const char *text = "Quiero renovar el pasaporte de mi hija, por favor.";
    float v[384];
    tn_embed_hash(text, strlen(text), 384, v);
    static const struct {
        size_t i;
        float x;
    } pinned[] = {
        {3, 0.1106162f},    {8, 0.0653317f},    {28, 0.1524406f},  {32, -0.0653317f},
        {119, 0.1306634f},  {155, -0.2177723f}, {173, 0.2831040f}, {286, -0.1306634f},
        {297, -0.2177723f}, {368, 0.2177723f},  {0, 0.0f},
    };
    for (size_t k = 0; k < TN_ARRAY_LEN(pinned); k++) {
        if (fabsf(v[pinned[k].i] - pinned[k].x) > 1e-5f)
            fail_msg("component %zu: %.7f, pinned %.7f", pinned[k].i, (double)v[pinned[k].i],
                     (double)pinned[k].x);
    }
    size_t nz = 0;
    double checksum = 0;
    for (size_t i = 0; i < 384; i++) {
        nz += v[i] != 0.0f;
        checksum += (double)(i + 1) * (double)v[i];
    }
    assert_int_equal(nz, 93);
    if (fabs(checksum - 163.070384) > 1e-3)
        fail_msg("checksum %.6f, pinned 163.070384", checksum);
    /* Non-ASCII: folded accents, Cyrillic and CJK n-grams of code points. */
    const char *utf = "¿Cédula de IDENTIDAD? — Москва, 東京都; naïve façade ß";
    float u[128];
    tn_embed_hash(utf, strlen(utf), 128, u);
    nz = 0;
    checksum = 0;
    for (size_t i = 0; i < 128; i++) {
        nz += u[i] != 0.0f;
        checksum += (double)(i + 1) * (double)u[i];
    }
    assert_int_equal(nz, 77);
    if (fabs(checksum - 41.979156) > 1e-3 || fabsf(u[2] - 0.0695272f) > 1e-5f)
        fail_msg("checksum %.6f, pinned 41.979156; u[2] %.7f", checksum, (double)u[2]);
    /* Repeated words (folded once, their n-grams counted again without hashing). */
    const char *rep = "la cédula de la hija, la CÉDULA de la hija; cédula cédula de de de la la la "
                      "la ñandú ñandú Москва Москва";
    float r[384];
    tn_embed_hash(rep, strlen(rep), 384, r);
    checksum = 0;
    for (size_t i = 0; i < 384; i++)
        checksum += (double)(i + 1) * (double)r[i] * (double)(i % 7 + 1);
    if (fabs(checksum - 118.932176) > 1e-3)
        fail_msg("checksum %.6f, pinned 118.932176", checksum);
    /* Twice in a row: the same bytes. */
    float w[384];
    tn_embed_hash(text, strlen(text), 384, w);
    assert_memory_equal(v, w, sizeof(v));
}

/* FNV-1a 64 of the vector's float32 bit patterns, least significant byte first. */
static uint64_t vec_digest(const float *v, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], sizeof(b));
        for (int k = 0; k < 4; k++) {
            h ^= (b >> (8 * k)) & 0xFF;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

/* Pinned to the bit: every component of the vectors of a few texts at a few sizes, so that any
 * change of the hash provider's output (which would silently invalidate every index built with
 * it) fails here, even one below the tolerances of test_hash_pinned. The texts cover ASCII,
 * folded accents, Cyrillic and CJK n-grams, apostrophes, invalid UTF-8, repeated words, a word
 * longer than the ASCII n-gram batch and a 200-word chunk like the benchmark's. (Computed with
 * glibc's log; another libm could differ in the last bit of a tf > 1 weight.) */
static void test_hash_pinned_bits(void **state)
{
    (void)state;
    static const char *const words[] = {
        "solicitud",       "de",    "renovación", "del",     "pasaporte",   "cédula", "cita",
        "registro",        "civil", "Москва",     "東京都",  "the",         "office", "opening",
        "hours",           "niño",  "año",        "façade",  "ÉTÉ",         "l'état", "certificado",
        "empadronamiento", "2024",  "n.º",        "¿dónde?", "ayuntamiento"};
    char chunk[4096];
    size_t o = 0;
    uint64_t r = 7;
    for (int w = 0; w < 200; w++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        o += (size_t)snprintf(chunk + o, sizeof(chunk) - o, "%s%s", w ? (r >> 62 ? " " : ", ") : "",
                              words[(r >> 33) % TN_ARRAY_LEN(words)]);
    }
    char longword[200];
    for (size_t i = 0; i < sizeof(longword) - 1; i++)
        longword[i] = (char)('a' + (i * 7) % 26);
    longword[sizeof(longword) - 1] = '\0';
    const char *texts[] = {
        "Quiero renovar el pasaporte de mi hija, por favor.",
        "¿Cédula de IDENTIDAD? — Москва, 東京都; naïve façade ß",
        "la cédula de la hija, la CÉDULA de la hija; cédula cédula de de de la la la la ñandú",
        "l'état d'urgence, it's O'Brien's",
        "x\xff\xfe y \xc3 z \xe2\x82",
        longword,
        chunk,
    };
    static const size_t dims[] = {1, 7, 64, 384, 1024};
    static const uint64_t pinned[] = {
        0xb24afc403895052eull, 0x50d9e9d99594386dull, 0xf8ac11188fdb70d4ull, 0x48e4bce1590ba239ull,
        0x6c8bdd99bba5d021ull, 0x0608c9dfed239766ull, 0x018fa7e3523f2df5ull,
    };
    float *v = tn_xmalloc(1024 * sizeof(float));
    size_t bad = 0;
    for (size_t t = 0; t < TN_ARRAY_LEN(texts); t++) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t d = 0; d < TN_ARRAY_LEN(dims); d++) {
            tn_embed_hash(texts[t], strlen(texts[t]), dims[d], v);
            h = vec_digest(v, dims[d], h);
        }
        if (h != pinned[t]) {
            print_message("text %zu: digest 0x%016llxull, pinned 0x%016llxull\n", t,
                          (unsigned long long)h, (unsigned long long)pinned[t]);
            bad++;
        }
    }
    free(v);
    if (bad)
        fail_msg("%zu texts embed differently from their pinned vectors", bad);
}

static void test_hash_norm(void **state)
{
    (void)state;
    const char *texts[] = {"a",
                           "hola",
                           "Renovación de cédula",
                           "the the the the the",
                           "Москва, улица Тверская 7",
                           "東京都 渋谷区",
                           "x\xff\xfe y \xc3 z",
                           "one two three four five six seven eight nine ten eleven twelve"};
    const size_t dims[] = {1, 2, 7, 64, 384, 1024};
    for (size_t t = 0; t < TN_ARRAY_LEN(texts); t++) {
        for (size_t d = 0; d < TN_ARRAY_LEN(dims); d++) {
            float *v = tn_xmalloc(dims[d] * sizeof(float));
            tn_embed_hash(texts[t], strlen(texts[t]), dims[d], v);
            double n2 = dot(v, v, dims[d]);
            /* dims 1 or 2: the signed sum may cancel out exactly, which gives zero. */
            if (!(fabs(n2 - 1.0) < 1e-5 || (dims[d] <= 2 && n2 == 0.0)))
                fail_msg("text %zu dims %zu: |v|^2 = %f", t, dims[d], n2);
            free(v);
        }
    }
}

/* One long word: the "<word>" buffer comes from the heap and the map grows many times. */
static void test_hash_long_word(void **state)
{
    (void)state;
    size_t n = 5000;
    char *t = tn_xmalloc(n + 1);
    uint64_t r = 42;
    for (size_t i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (char)('a' + (r >> 59) % 26);
    }
    t[n] = '\0';
    float v[256], w[256];
    tn_embed_hash(t, n, 256, v);
    assert_true(fabs(dot(v, v, 256) - 1.0) < 1e-5);
    /* The same word twice: its n-grams are counted again, not rehashed; the same direction
     * except for the unigram and the bigram. */
    char *t2 = tn_xasprintf("%s %s", t, t);
    tn_embed_hash(t2, strlen(t2), 256, w);
    assert_true(dot(v, w, 256) > 0.99);
    free(t2);
    free(t);
}

static void test_hash_empty_is_zero(void **state)
{
    (void)state;
    const char *texts[] = {"", "   ", "!!! ... ---", "''"};
    float v[64];
    for (size_t t = 0; t < TN_ARRAY_LEN(texts); t++) {
        for (size_t i = 0; i < 64; i++)
            v[i] = 42.0f;
        tn_embed_hash(texts[t], strlen(texts[t]), 64, v);
        for (size_t i = 0; i < 64; i++)
            assert_true(v[i] == 0.0f);
    }
    tn_embed_hash(NULL, 0, 64, v);
    for (size_t i = 0; i < 64; i++)
        assert_true(v[i] == 0.0f);
    tn_embed_hash("abc", 3, 0, NULL); /* zero dims: nothing to write */
}

static void test_hash_similarity(void **state)
{
    (void)state;
    /* Case and accents fold away: the same vector. */
    double same =
        cosine("Quiero renovar mi pasaporte urgente", "QUIERO RENOVÁR mi PASAPÓRTE urgente", 384);
    assert_true(fabs(same - 1.0) < 1e-5);
    /* Exactly the same vector, whichever way each word is spelled or repeated. */
    const char *variants[] = {"cedula cedula Cedula tramite", "cédula cédula CÉDULA trámite",
                              "CÉDULA;cedula...cÉdUlA\ttrÁmite!"};
    float v0[64], vi[64];
    tn_embed_hash(variants[0], strlen(variants[0]), 64, v0);
    for (size_t i = 1; i < TN_ARRAY_LEN(variants); i++) {
        tn_embed_hash(variants[i], strlen(variants[i]), 64, vi);
        assert_memory_equal(v0, vi, sizeof(v0));
    }
    /* Punctuation is a separator. */
    assert_true(fabs(cosine("renovar, pasaporte!", "renovar pasaporte", 384) - 1.0) < 1e-5);

    double close = cosine("necesito renovar mi pasaporte vencido",
                          "renovación del pasaporte vencido, ¿qué necesito?", 384);
    double far1 = cosine("necesito renovar mi pasaporte vencido",
                         "el agua del baño sale fría desde ayer", 384);
    double far2 = cosine("my passport expired and I need a new one",
                         "the street light on the corner is broken", 384);
    double close2 = cosine("my passport expired and I need a new one",
                           "need to renew an expired passport", 384);
    print_message("cos close %.3f far %.3f | close %.3f far %.3f\n", close, far1, close2, far2);
    assert_true(close > far1 + 0.2);
    assert_true(close2 > far2 + 0.2);
    /* Word order matters a little (bigrams), not much. */
    double swapped = cosine("pasaporte renovar", "renovar pasaporte", 384);
    assert_true(swapped > 0.6 && swapped < 0.999);
}

static void test_hash_dims_variation(void **state)
{
    (void)state;
    const char *t = "Solicitud de certificado de antecedentes penales";
    float a[1];
    tn_embed_hash(t, strlen(t), 1, a);
    assert_true(a[0] == 1.0f || a[0] == -1.0f || a[0] == 0.0f);
    /* Lengths are honoured: not NUL-terminated, and a prefix differs from the whole. */
    float full[256], pre[256], pre2[256];
    tn_embed_hash(t, strlen(t), 256, full);
    tn_embed_hash(t, 9, 256, pre); /* "Solicitud" */
    tn_embed_hash("Solicitud", 9, 256, pre2);
    assert_memory_equal(pre, pre2, sizeof(pre));
    assert_true(dot(full, pre, 256) < 0.99);
    /* Different dims: each normalized. */
    for (size_t d = 3; d < 600; d += 97) {
        float *v = tn_xmalloc(d * sizeof(float));
        tn_embed_hash(t, strlen(t), d, v);
        assert_true(fabs(dot(v, v, d) - 1.0) < 1e-5);
        free(v);
    }
}

static void test_hash_embedder(void **state)
{
    (void)state;
    char err[256] = "";
    tn_embed_opts_t o = tn_embed_opts_default();
    assert_string_equal(o.provider, "hash");
    assert_int_equal(o.dims, 384);
    assert_int_equal(o.max_batch, 64);
    assert_int_equal(o.timeout_ms, 30000);
    assert_int_equal(o.max_attempts, 4);
    o.dims = 32;
    tn_embedder_t *e = tn_embedder_new(&o, err, sizeof(err));
    assert_non_null(e);
    assert_string_equal(tn_embedder_model(e), "taina-hash-v1");
    assert_int_equal(tn_embedder_dims(e), 32);
    const char *texts[] = {"uno dos", "", "tres cuatro xyz"};
    const size_t lens[] = {3, 0, 15};
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    assert_int_equal(tn_embed(e, texts, lens, 3, &out, &dims, &why), TN_OK);
    assert_int_equal(dims, 32);
    float ref[32];
    tn_embed_hash("uno", 3, 32, ref);
    assert_memory_equal(out, ref, sizeof(ref));
    for (size_t i = 0; i < 32; i++)
        assert_true(out[32 + i] == 0.0f);
    tn_embed_hash(texts[2], 15, 32, ref);
    assert_memory_equal(out + 64, ref, sizeof(ref));
    free(out);
    /* lens NULL: NUL-terminated texts. */
    assert_int_equal(tn_embed(e, texts, NULL, 1, &out, &dims, NULL), TN_OK);
    tn_embed_hash("uno dos", 7, 32, ref);
    assert_memory_equal(out, ref, sizeof(ref));
    free(out);
    assert_int_equal(tn_embed(e, texts, NULL, 0, &out, &dims, NULL), TN_OK);
    assert_null(out);
    tn_embedder_destroy(e);

    o = tn_embed_opts_default();
    o.model = "mine";
    o.dims = 0;
    e = tn_embedder_new(&o, err, sizeof(err));
    assert_string_equal(tn_embedder_model(e), "mine");
    assert_int_equal(tn_embedder_dims(e), 384);
    tn_embedder_destroy(e);
    tn_embedder_destroy(NULL);
}

/* Not an assertion: prints the speed for 200-word chunks (~1,300 bytes). */
static void test_hash_speed(void **state)
{
    (void)state;
    /* Spanish ticket text: about 6.5 bytes a word with its separator, some accents. */
    static const char *vocab[] = {"solicitud",
                                  "renovación",
                                  "pasaporte",
                                  "cédula",
                                  "trámite",
                                  "oficina",
                                  "urgente",
                                  "necesito",
                                  "por",
                                  "favor",
                                  "gracias",
                                  "de",
                                  "la",
                                  "el",
                                  "mi",
                                  "para",
                                  "con",
                                  "días",
                                  "semana",
                                  "número",
                                  "pago",
                                  "que",
                                  "no",
                                  "se",
                                  "en",
                                  "un",
                                  "una",
                                  "los",
                                  "las",
                                  "del",
                                  "hace",
                                  "tres",
                                  "meses",
                                  "nadie",
                                  "responde",
                                  "calle",
                                  "agua",
                                  "luz",
                                  "barrio",
                                  "vecinos",
                                  "reclamo",
                                  "queja",
                                  "hijo",
                                  "hija",
                                  "escuela",
                                  "inscribir",
                                  "turno",
                                  "médico",
                                  "centro",
                                  "salud",
                                  "basura",
                                  "camión",
                                  "pasó",
                                  "lunes",
                                  "martes",
                                  "ayer",
                                  "hoy",
                                  "mañana",
                                  "todavía",
                                  "espera",
                                  "formulario",
                                  "correo",
                                  "web",
                                  "página",
                                  "error",
                                  "sistema",
                                  "dice",
                                  "datos",
                                  "fecha",
                                  "hora",
                                  "muy",
                                  "mal",
                                  "bien",
                                  "ya",
                                  "es",
                                  "y",
                                  "o",
                                  "a",
                                  "al",
                                  "lo",
                                  "me",
                                  "le",
                                  "su",
                                  "sus",
                                  "municipalidad",
                                  "documentación",
                                  "certificado",
                                  "nacimiento",
                                  "antecedentes",
                                  "departamento",
                                  "administración",
                                  "inmediatamente",
                                  "comunicarme",
                                  "funcionario",
                                  "electricidad",
                                  "alumbrado",
                                  "recolección",
                                  "transferencia",
                                  "devolución"};
    size_t nv = TN_ARRAY_LEN(vocab);
    enum { NCHUNK = 64 };
    char *chunks[NCHUNK];
    size_t lens[NCHUNK];
    uint64_t r = 88172645463325252ull;
    size_t total = 0;
    for (int c = 0; c < NCHUNK; c++) {
        char *b = tn_xmalloc(4096);
        size_t o = 0;
        for (int w = 0; w < 200; w++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            const char *word = vocab[r % nv];
            size_t wl = strlen(word);
            memcpy(b + o, word, wl);
            o += wl;
            b[o++] = (r >> 20) % 13 == 0 ? ',' : ' ';
        }
        b[o] = '\0';
        chunks[c] = b;
        lens[c] = o;
        total += o;
    }
    float v[384];
    /* CPU time of this thread: other processes on the machine do not count. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    long done = 0;
    double secs = 0;
    while (done < 200 || secs < 0.5) {
        tn_embed_hash(chunks[done % NCHUNK], lens[done % NCHUNK], 384, v);
        if (++done % 64 == 0) {
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
            secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        }
    }
    print_message("hash speed: %.0f chunks/s (200 words, %zu bytes average, 384 dims, one "
                  "thread)\n",
                  (double)done / secs, total / NCHUNK);
    for (int c = 0; c < NCHUNK; c++)
        free(chunks[c]);
}

/* ------------------------------------------------------------------------------------------ */
/* OpenAI provider */

typedef enum {
    ANS_GOOD = 0,
    ANS_WRONG_COUNT,
    ANS_MIXED_DIMS,
    ANS_NOT_NUMBER,
    ANS_DUP_INDEX,
    ANS_NO_DATA,
} answer_mode_t;

typedef struct fixture {
    tn_fake_http_t *fh;
    tn_embedder_t *e;
    char err[256];
    size_t ans_dims;    /* dims of the vectors the handler answers with */
    answer_mode_t mode; /* how the handler answers */
} fixture_t;

/* An OpenAI-like server: input "k" (a number) gets the vector [10k, 10k+1, ...], answered in
 * reverse order with the right "index" (so the client must sort). */
static bool embeddings_handler(const tn_fake_http_req_t *req, tn_fake_http_resp_t *resp,
                               tn_buf_t *body, tn_buf_t *headers, void *opaque)
{
    (void)headers;
    const fixture_t *f = opaque;
    json_t *in = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *input = json_object_get(in, "input");
    if (!json_is_array(input)) {
        json_decref(in);
        return false;
    }
    size_t n = json_array_size(input);
    size_t nout = f->mode == ANS_WRONG_COUNT ? n + 1 : n;
    json_t *data = json_array();
    for (size_t k = nout; k-- > 0;) {
        size_t src = k < n ? k : 0;
        double base = 10.0 * strtod(json_string_value(json_array_get(input, src)), NULL);
        size_t d = f->ans_dims + (f->mode == ANS_MIXED_DIMS && k == 0);
        json_t *emb = json_array();
        for (size_t j = 0; j < d; j++) {
            if (f->mode == ANS_NOT_NUMBER && j == 1)
                json_array_append_new(emb, json_string("x"));
            else
                json_array_append_new(emb, json_real(base + (double)j));
        }
        size_t idx = f->mode == ANS_DUP_INDEX ? 0 : k;
        json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                              (json_int_t)idx, "embedding", emb));
    }
    json_t *ans = json_pack("{s:s, s:o, s:s}", "object", "list",
                            f->mode == ANS_NO_DATA ? "items" : "data", data, "model", "m");
    char *text = json_dumps(ans, JSON_COMPACT);
    tn_buf_adds(body, text);
    free(text);
    json_decref(ans);
    json_decref(in);
    resp->status = 200;
    resp->content_type = "application/json";
    return true;
}

static tn_embed_opts_t openai_opts(const fixture_t *f)
{
    tn_embed_opts_t o = tn_embed_opts_default();
    o.provider = "openai";
    o.model = "text-embedding-3-small";
    o.url = tn_fake_http_url(f->fh);
    o.api_key = "sk-test-123";
    o.dims = 4;
    o.max_batch = 3;
    o.max_attempts = 3;
    o.timeout_ms = tn_test_timeout_ms(20000);
    return o;
}

static void use_embedder(fixture_t *f, const tn_embed_opts_t *o)
{
    tn_embedder_destroy(f->e);
    f->e = tn_embedder_new(o, f->err, sizeof(f->err));
    if (!f->e)
        fail_msg("tn_embedder_new: %s", f->err);
}

static int setup(void **state)
{
    fixture_t *f = tn_xcalloc(1, sizeof(*f));
    f->fh = tn_fake_http_start();
    assert_non_null(f->fh);
    f->ans_dims = 4;
    tn_fake_http_set_handler(f->fh, embeddings_handler, f);
    tn_embed_opts_t o = openai_opts(f);
    use_embedder(f, &o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tn_embedder_destroy(f->e);
    tn_fake_http_stop(f->fh);
    free(f);
    return 0;
}

static const char *const NUMS[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

static tn_err_t embed_n(fixture_t *f, size_t n, float **out, size_t *dims, tn_embed_error_t *why)
{
    return tn_embed(f->e, NUMS, NULL, n, out, dims, why);
}

static void check_rows(const float *out, size_t n, size_t dims)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dims; j++)
            if (out[i * dims + j] != (float)(10.0 * (double)i + (double)j))
                fail_msg("row %zu col %zu: %f", i, j, (double)out[i * dims + j]);
}

static void test_openai_request_shape(void **state)
{
    fixture_t *f = *state;
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_OK);
    assert_int_equal(dims, 4);
    check_rows(out, 2, 4);
    free(out);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
    const tn_fake_http_req_t *req = tn_fake_http_request(f->fh, 0);
    assert_string_equal(req->method, "POST");
    assert_string_equal(req->target, "/v1/embeddings");
    assert_string_equal(tn_fake_http_req_header(req, "Authorization"), "Bearer sk-test-123");
    assert_string_equal(tn_fake_http_req_header(req, "Content-Type"), "application/json");
    json_t *b = json_loadb(req->body, req->body_len, 0, NULL);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "model")), "text-embedding-3-small");
    json_t *input = json_object_get(b, "input");
    assert_true(json_is_array(input));
    assert_int_equal(json_array_size(input), 2);
    assert_string_equal(json_string_value(json_array_get(input, 0)), "0");
    assert_string_equal(json_string_value(json_array_get(input, 1)), "1");
    assert_int_equal(json_integer_value(json_object_get(b, "dimensions")), 4);
    assert_int_equal(json_object_size(b), 3);
    json_decref(b);
}

static void test_openai_batches_and_order(void **state)
{
    fixture_t *f = *state;
    tn_embed_opts_t o = openai_opts(f);
    o.dims = 0; /* learn them */
    o.api_key = NULL;
    use_embedder(f, &o);
    f->ans_dims = 5;
    assert_int_equal(tn_embedder_dims(f->e), 0);
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    assert_int_equal(embed_n(f, 7, &out, &dims, &why), TN_OK);
    assert_int_equal(dims, 5);
    assert_int_equal(tn_embedder_dims(f->e), 5);
    check_rows(out, 7, 5);
    free(out);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3); /* ceil(7 / 3) */
    const size_t sizes[] = {3, 3, 1};
    for (size_t r = 0; r < 3; r++) {
        const tn_fake_http_req_t *req = tn_fake_http_request(f->fh, r);
        assert_null(tn_fake_http_req_header(req, "Authorization"));
        json_t *b = json_loadb(req->body, req->body_len, 0, NULL);
        json_t *input = json_object_get(b, "input");
        assert_int_equal(json_array_size(input), sizes[r]);
        assert_string_equal(json_string_value(json_array_get(input, 0)), NUMS[3 * r]);
        assert_null(json_object_get(b, "dimensions"));
        json_decref(b);
    }
    /* Exactly max_batch: one request. Zero texts: none. */
    assert_int_equal(embed_n(f, 3, &out, &dims, &why), TN_OK);
    free(out);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 4);
    assert_int_equal(embed_n(f, 0, &out, &dims, &why), TN_OK);
    assert_null(out);
    assert_int_equal(dims, 5);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 4);

    /* The dims changed since the last answer: refused. */
    f->ans_dims = 6;
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_ERR_PARSE);
    assert_null(out);
    assert_int_equal(why.retriable, 0);
    assert_non_null(strstr(why.msg, "dims"));
}

static void test_openai_v1_in_url(void **state)
{
    fixture_t *f = *state;
    tn_embed_opts_t o = openai_opts(f);
    char *url = tn_xasprintf("%s/v1/", tn_fake_http_url(f->fh));
    o.url = url;
    use_embedder(f, &o);
    free(url);
    float *out = NULL;
    size_t dims = 0;
    assert_int_equal(embed_n(f, 1, &out, &dims, NULL), TN_OK);
    free(out);
    assert_string_equal(tn_fake_http_request(f->fh, 0)->target, "/v1/embeddings");
}

static void test_openai_429_retry_after(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 429,
                                                    .headers = "Retry-After: 1\r\n",
                                                    .content_type = "application/json",
                                                    .body = "{\"error\":{\"message\":\"slow\"}}"});
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    int64_t start = tn_clock_mono_ms();
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_OK);
    assert_true(tn_clock_mono_ms() - start >= 900);
    check_rows(out, 2, 4);
    free(out);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2);
}

static void test_openai_500s_unavailable(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_set_handler(f->fh, NULL, NULL);
    tn_fake_http_set_default(f->fh, &(tn_fake_http_resp_t){.status = 500, .body = "oops"});
    float *out = (float *)1;
    size_t dims = 9;
    tn_embed_error_t why;
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_ERR_UNAVAILABLE);
    assert_null(out);
    assert_int_equal(dims, 0);
    assert_int_equal(why.retriable, 1);
    assert_int_equal(why.status, 500);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3); /* max_attempts */
}

static void test_openai_connection_refused(void **state)
{
    fixture_t *f = *state;
    tn_embed_opts_t o = openai_opts(f);
    char *url = tn_xasprintf("http://127.0.0.1:%d", tn_test_free_port());
    o.url = url;
    o.max_attempts = 2;
    use_embedder(f, &o);
    free(url);
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    assert_int_equal(embed_n(f, 1, &out, &dims, &why), TN_ERR_UNAVAILABLE);
    assert_int_equal(why.retriable, 1);
    assert_int_equal(why.status, 0);
}

static void test_openai_400_upstream(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){
                                 .status = 400,
                                 .content_type = "application/json",
                                 .body = "{\"error\":{\"message\":\"This model's maximum context "
                                         "length is 8192 tokens\",\"type\":"
                                         "\"invalid_request_error\"}}"});
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_ERR_UPSTREAM);
    assert_null(out);
    assert_int_equal(why.retriable, 0);
    assert_int_equal(why.status, 400);
    assert_non_null(strstr(why.msg, "maximum context length is 8192 tokens"));
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1); /* not retried */

    /* TEI-style error (a string), and a body that is not JSON. */
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 413,
                                                    .content_type = "application/json",
                                                    .body = "{\"error\":\"batch too large\"}"});
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_ERR_UPSTREAM);
    assert_non_null(strstr(why.msg, "batch too large"));
    tn_fake_http_push_simple(f->fh, 401, "text/plain", "no key");
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_ERR_UPSTREAM);
    assert_int_equal(why.status, 401);
    assert_non_null(strstr(why.msg, "no key"));
}

static void expect_parse(fixture_t *f, answer_mode_t mode, size_t ans_dims)
{
    f->mode = mode;
    f->ans_dims = ans_dims;
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    tn_err_t rc = embed_n(f, 5, &out, &dims, &why);
    if (rc != TN_ERR_PARSE)
        fail_msg("mode %d dims %zu: %s", (int)mode, ans_dims, tn_err_name(rc));
    assert_null(out);
    assert_int_equal(why.retriable, 0);
    assert_int_equal(why.status, 200);
    assert_true(why.msg[0] != '\0');
}

static void test_openai_malformed(void **state)
{
    fixture_t *f = *state;
    expect_parse(f, ANS_WRONG_COUNT, 4);
    expect_parse(f, ANS_GOOD, 3); /* configured 4 */
    expect_parse(f, ANS_MIXED_DIMS, 4);
    expect_parse(f, ANS_NOT_NUMBER, 4);
    expect_parse(f, ANS_DUP_INDEX, 4);
    expect_parse(f, ANS_NO_DATA, 4);
    f->mode = ANS_GOOD;
    f->ans_dims = 4;
    tn_fake_http_push_simple(f->fh, 200, "application/json", "{not json");
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_ERR_PARSE);
    tn_fake_http_push_simple(f->fh, 200, "application/json", NULL);
    assert_int_equal(embed_n(f, 2, &out, &dims, &why), TN_ERR_PARSE);
    /* Second batch malformed: the first batch's rows are dropped too. */
    tn_fake_http_push_simple(f->fh, 200, "application/json",
                             "{\"data\":[{\"index\":0,\"embedding\":[1,2,3,4]},"
                             "{\"index\":1,\"embedding\":[1,2,3,4]},"
                             "{\"index\":2,\"embedding\":[1,2,3,4]}]}");
    tn_fake_http_push_simple(f->fh, 200, "application/json",
                             "{\"data\":[{\"index\":0,\"embedding\":[1,2,null,4]}]}");
    assert_int_equal(embed_n(f, 4, &out, &dims, &why), TN_ERR_PARSE);
    assert_null(out);
    /* Integers are numbers too; still works afterwards. */
    tn_fake_http_push_simple(f->fh, 200, "application/json",
                             "{\"data\":[{\"index\":0,\"embedding\":[1,2,3,4]}]}");
    assert_int_equal(embed_n(f, 1, &out, &dims, &why), TN_OK);
    assert_true(out[3] == 4.0f);
    free(out);
}

static void test_openai_texts_with_lens(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_set_handler(f->fh, NULL, NULL);
    tn_fake_http_set_default(
        f->fh, &(tn_fake_http_resp_t){.status = 200,
                                      .content_type = "application/json",
                                      .body = "{\"data\":[{\"index\":0,\"embedding\":[1,0,0,0]},"
                                              "{\"index\":1,\"embedding\":[0,1,0,0]}]}"});
    const char *texts[] = {"añoXXXX", "bad \xff utf8"};
    const size_t lens[] = {4, 10};
    float *out = NULL;
    size_t dims = 0;
    tn_embed_error_t why;
    assert_int_equal(tn_embed(f->e, texts, lens, 2, &out, &dims, &why), TN_OK);
    free(out);
    const tn_fake_http_req_t *req = tn_fake_http_request(f->fh, 0);
    json_t *b = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *input = json_object_get(b, "input");
    assert_string_equal(json_string_value(json_array_get(input, 0)), "año");
    assert_string_equal(json_string_value(json_array_get(input, 1)), "bad \xEF\xBF\xBD utf8");
    json_decref(b);
}

typedef struct {
    tn_embedder_t *e;
    int ok;
} worker_t;

static void *embed_worker(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 10; i++) {
        float *out = NULL;
        size_t dims = 0;
        if (tn_embed(w->e, NUMS, NULL, 7, &out, &dims, NULL) == TN_OK && dims == 4 &&
            out[6 * 4 + 3] == 63.0f)
            w->ok++;
        free(out);
    }
    return NULL;
}

/* One embedder, several threads, dims learned concurrently. */
static void test_openai_threads(void **state)
{
    fixture_t *f = *state;
    tn_embed_opts_t o = openai_opts(f);
    o.dims = 0;
    use_embedder(f, &o);
    enum { NT = 4 };
    pthread_t t[NT];
    worker_t w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (worker_t){.e = f->e};
        assert_int_equal(pthread_create(&t[i], NULL, embed_worker, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 10);
    }
    assert_int_equal(tn_embedder_dims(f->e), 4);
    assert_int_equal(tn_fake_http_nrequests(f->fh), NT * 10 * 3);
}

static void test_new_errors(void **state)
{
    fixture_t *f = *state;
    tn_embed_opts_t o = openai_opts(f);
    char err[256];
    o.provider = "word2vec";
    assert_null(tn_embedder_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "word2vec"));
    o = openai_opts(f);
    o.model = NULL;
    assert_null(tn_embedder_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "model"));
    o = openai_opts(f);
    o.url = "";
    assert_null(tn_embedder_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "url"));
    o = openai_opts(f);
    o.url = "ftp://example.com";
    assert_null(tn_embedder_new(&o, err, sizeof(err)));
    assert_true(err[0] != '\0');
    o = openai_opts(f);
    o.dims = 0;
    tn_embedder_t *e = tn_embedder_new(&o, err, sizeof(err));
    assert_non_null(e);
    assert_string_equal(tn_embedder_model(e), "text-embedding-3-small");
    assert_int_equal(tn_embedder_dims(e), 0);
    tn_embedder_destroy(e);
}

/* ------------------------------------------------------------------------------------------ */
/* Base64 */

static void test_b64_pinned(void **state)
{
    (void)state;
    const float v[] = {1.0f, -2.5f};
    char *s = tn_embed_vector_b64(v, 2);
    assert_string_equal(s, "AACAPwAAIMA=");
    size_t n = 0;
    float *back = tn_embed_vector_from_b64(s, strlen(s), &n);
    assert_non_null(back);
    assert_int_equal(n, 2);
    assert_memory_equal(back, v, sizeof(v));
    free(back);
    free(s);
    s = tn_embed_vector_b64(v, 1);
    assert_string_equal(s, "AACAPw==");
    free(s);
}

static void test_b64_round_trip(void **state)
{
    (void)state;
    float v[7] = {0.0f, -0.0f, 3.14159f, -1e-30f, 1e30f, INFINITY, 0.5f};
    for (size_t n = 0; n <= 7; n++) {
        char *s = tn_embed_vector_b64(v, n);
        assert_int_equal(strlen(s), (4 * n + 2) / 3 * 4);
        size_t m = 99;
        float *back = tn_embed_vector_from_b64(s, strlen(s), &m);
        assert_non_null(back);
        assert_int_equal(m, n);
        if (n)
            assert_memory_equal(back, v, n * sizeof(float));
        free(back);
        free(s);
    }
    float big[384];
    tn_embed_hash("vector grande", 13, 384, big);
    char *s = tn_embed_vector_b64(big, 384);
    size_t m = 0;
    float *back = tn_embed_vector_from_b64(s, strlen(s), &m);
    assert_int_equal(m, 384);
    assert_memory_equal(back, big, sizeof(big));
    free(back);
    free(s);
}

static void test_b64_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "AACAPwAAIMA",   /* length not a multiple of 4 */
        "AAAA",          /* 3 bytes: not whole floats */
        "AACAP*AAIMA=",  /* bad character */
        "AACAPwAAIMA==", /* length */
        "AACA=wAAIMA=",  /* padding in the middle */
        "AACAPwAAIMB=",  /* non-zero bits under the padding */
        "AACAPw=A",      /* padding then data */
        "AACA Pw=",      /* whitespace */
        "====",
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++) {
        size_t n = 7;
        float *v = tn_embed_vector_from_b64(bad[i], strlen(bad[i]), &n);
        if (v)
            fail_msg("\"%s\" decoded", bad[i]);
        assert_int_equal(n, 0);
    }
    /* The length is honoured (no NUL needed). */
    size_t n = 0;
    float *v = tn_embed_vector_from_b64("AACAPw==garbage", 8, &n);
    assert_non_null(v);
    assert_int_equal(n, 1);
    assert_true(v[0] == 1.0f);
    free(v);
}

int main(void)
{
    tn_log_init("embed_test", TN_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_pinned),
        cmocka_unit_test(test_hash_pinned_bits),
        cmocka_unit_test(test_hash_norm),
        cmocka_unit_test(test_hash_long_word),
        cmocka_unit_test(test_hash_empty_is_zero),
        cmocka_unit_test(test_hash_similarity),
        cmocka_unit_test(test_hash_dims_variation),
        cmocka_unit_test(test_hash_embedder),
        cmocka_unit_test(test_hash_speed),
        cmocka_unit_test_setup_teardown(test_openai_request_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_batches_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_v1_in_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_429_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_500s_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_400_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_texts_with_lens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_errors, setup, teardown),
        cmocka_unit_test(test_b64_pinned),
        cmocka_unit_test(test_b64_round_trip),
        cmocka_unit_test(test_b64_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
