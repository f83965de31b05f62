/* Unit tests for services/ingest/enrich.c: the enriched output of a fixed set of varied records is
 * pinned by SHA-256 (enriched_at masked), so that making enrichment faster cannot change a byte of
 * it. The sets: hand-written records (es/en, HTML, every PII type, invalid UTF-8, NFD, many
 * chunks, refusals), the fuzz corpus of enrich, the 68 demo documents, and 400 records from a
 * seeded generator that mixes sentences, PII-like digit runs, HTML, controls and bad bytes. When a
 * digest changes the test prints each record's digest, to compare with a run of the old code. */
#include "tn_test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../../services/ingest/ingest.h"
#include "taina/buf.h"
#include "taina/mem.h"
#include "taina/text.h"

/* The pinned digests were taken with each chunk's text in the output (ingest_chunk_text). */
static ingest_rules_t rules_200, rules_24, rules_24_offsets;

static void load(ingest_rules_t *r, int words, int overlap, bool chunk_text)
{
    ingest_cfg_t cfg = {.schemas_dir = "schemas",
                        .pii_rules_file = "",
                        .category_rules_file = "",
                        .chunk_words = words,
                        .chunk_overlap = overlap,
                        .chunk_text = chunk_text};
    assert_int_equal(ingest_rules_load(r, &cfg), TN_OK);
}

/* The digests of one set: every record's, and the set's (SHA-256 over the records' digests). */
typedef struct digests {
    tn_buf_t all;
} digests_t;

/* Enrich @p value with @p r and add the digest of everything it returns (output with the
 * enriched_at value masked, refusal reason and detail, PII counts, invalid UTF-8 count). */
static size_t fast_parsed, parsed;

/* ingest_json_parse() builds jansson's tree, or leaves the value to jansson. */
static void same_tree(const char *value, size_t len)
{
    json_t *fast = ingest_json_parse(value, len);
    json_t *slow = json_loadb(value, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    parsed++;
    if (!fast) {
        json_decref(slow);
        return;
    }
    fast_parsed++;
    assert_non_null(slow);
    assert_true(json_equal(fast, slow));
    /* members in the same order, integers as integers */
    char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = json_dumps(slow, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(a);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(fast);
    json_decref(slow);
}

static void add(digests_t *d, const ingest_rules_t *r, const char *value, size_t len)
{
    same_tree(value, len);
    size_t counts[16] = {0}, bad = 0, out_len = 0;
    ingest_reject_t why = {0};
    char *id = NULL;
    char *out = ingest_enrich(r, value, len, 900 * 1024, counts, &bad, &why, &out_len, &id);
    tn_buf_t b;
    tn_buf_init(&b, (size_t)-1);
    if (out) {
        char *at = strstr(out, "\"enriched_at\":\"");
        assert_non_null(at);
        for (at += 15; *at && *at != '"'; at++)
            *at = 'X';
        /* the confidence (not in a deletion): in [0, 1], four decimals at most, one at least */
        const char *c = strstr(out, "\"lang_confidence\":");
        assert_true(c || strstr(out, "\"deleted\":true"));
        char *e;
        double conf = c ? strtod(c + 18, &e) : 0;
        const char *dot = c ? strchr(c + 18, '.') : NULL;
        assert_true(!c ||
                    (conf >= 0 && conf <= 1 && dot && dot < e && e - dot >= 2 && e - dot <= 5));
        tn_buf_add(&b, out, out_len);
        tn_buf_addf(&b, "|%s|%zu", id, bad);
        for (size_t i = 0; i < 16; i++)
            tn_buf_addf(&b, ",%zu", counts[i]);
    } else {
        assert_null(id);
        tn_buf_addf(&b, "REJECT|%s|%s", why.reason, why.detail);
    }
    char hex[65];
    tn_text_sha256_hex(b.data, b.len, hex);
    tn_buf_addf(&d->all, "%s\n", hex);
    tn_buf_cleanup(&b);
    free(out);
    free(id);
}

static void check(digests_t *d, const char *set, const char *want)
{
    char hex[65];
    tn_text_sha256_hex(d->all.data, d->all.len, hex);
    if (strcmp(hex, want) != 0) {
        print_message("enrich output of set %s changed: %s, pinned %s; per record:\n", set, hex,
                      want);
        for (size_t i = 0; i < d->all.len; i += 65)
            print_message("%s %zu %.64s\n", set, i / 65, d->all.data + i);
    }
    tn_buf_cleanup(&d->all);
    assert_string_equal(hex, want);
}

/* A tickets.raw value around @p title and @p body (JSON string contents, already escaped). */
static char *raw(const char *title, const char *body, const char *ctype, const char *lang)
{
    return tn_xasprintf(
        "{\"schema_version\":1,\"ticket_id\":\"0b9a3a3e-6a44-4f5c-9a43-64a0c2b3c1d2"
        "\",\"tenant_id\":\"tenant-a\",\"source\":\"web\",\"title\":\"%s\","
        "\"body\":\"%s\",\"content_type\":\"%s\",\"created_at\":"
        "\"2026-11-24T10:00:00Z\",\"metadata\":{\"k\":\"v\\u0000\",\"n\":2.5,\"b\":true}%s%s%s}",
        title, body, ctype, lang ? ",\"lang\":\"" : "", lang ? lang : "", lang ? "\"" : "");
}

static const char *const hand[][4] = {
    {"Renovar pasaporte",
     "Hola, me llamo María y quiero una cita. Mi correo es maria.perez@correo.gob.do y mi "
     "teléfono +1 809-555-0123. Mi cédula es 001-1234567-8 y también 00112345678. Pagué con "
     "la tarjeta 4111 1111 1111 1111. IBAN ES91 2100 0418 4502 0005 1332 PLEASE, es91 2100 0418 "
     "4502 0005 1332. Referencia 2026-004512, RNC 1-31-12345-6. ¿Qué documentos necesito?",
     "text/plain", "es"},
    {"Passport renewal",
     "Hello, I need to renew my passport. Call me at (809) 555-0142 or 8095550142 or +44 20 7946 "
     "0958. Card 5500-0000-0000-0004 and 4111111111111112 (bad). GB82 WEST 1234 5698 7654 32 is "
     "my account. 4502+34911234567 is one token. Write to john.smith7@outlook.com. Thanks Mr. "
     "Smith! Really? Yes... e.g. this one.",
     "text/plain", NULL},
    {"Aviso &amp; <b>urgente</b>",
     "<html><head><style>p{color:red}</style><script>var x = '<p>';</script></head><body><h1>"
     "Cita</h1><p>Mi correo&nbsp;es <a href='mailto:a@b.co'>a@b.co</a> &#233;&#x00e9; &lt;ok&gt; "
     "&bogus; &amp</p><br/><ul><li>uno</li><li>dos</li></ul><!-- comentario --><p>tel 809 555 "
     "1234</p></body></html>",
     "text/html", "es"},
    {"NFD: Jose\\u0301 Pe\\u0301rez",
     "Cafe\\u0301 y nin\\u0303o. Ａ ﬁ ℌ \\u1e9b\\u0323 Hangul \\u1100\\u1161\\u11a8 "
     "\\ud83d\\ude00 emoji. \\u0000 nul \\u0007 bell \\u200b zwsp \\u00a0 nbsp\\r\\n\\ttab",
     "text/plain", "en"},
    {"   ", "\\t\\n ", "text/plain", NULL},
    {"Only title", "", "text/plain", "es"},
    {"x", "y", "text/plain", "en"},
};

static void test_hand(void **state)
{
    TN_UNUSED(state);
    digests_t d = {0};
    tn_buf_init(&d.all, (size_t)-1);
    for (size_t i = 0; i < TN_ARRAY_LEN(hand); i++) {
        char *v = raw(hand[i][0], hand[i][1], hand[i][2], hand[i][3]);
        add(&d, &rules_200, v, strlen(v));
        add(&d, &rules_24, v, strlen(v));
        free(v);
    }
    /* a long title that placeholders make longer than 500 code points */
    tn_buf_t t;
    tn_buf_init(&t, (size_t)-1);
    for (int i = 0; i < 49; i++)
        tn_buf_adds(&t, "a@b.co 12 ");
    tn_buf_add(&t, "", 1);
    char *v = raw(t.data, "body", "text/plain", NULL);
    add(&d, &rules_200, v, strlen(v));
    free(v);
    tn_buf_cleanup(&t);
    /* a long text: many chunks, sentence ends of every kind */
    tn_buf_init(&t, (size_t)-1);
    for (int i = 0; i < 400; i++)
        tn_buf_addf(&t, "Frase %d del texto largo, con palabras%s ", i,
                    i % 3 == 0   ? "."
                    : i % 3 == 1 ? "?\\n\\n"
                                 : " Sr. López etc.");
    tn_buf_add(&t, "", 1);
    v = raw("Texto largo", t.data, "text/plain", "es");
    add(&d, &rules_200, v, strlen(v));
    add(&d, &rules_24, v, strlen(v));
    free(v);
    tn_buf_cleanup(&t);
    /* invalid UTF-8 inside strings, and refusals */
    static const char *const others[] = {
        "{\"schema_version\":1,\"ticket_id\":\"0b9a3a3e-6a44-4f5c-9a43-64a0c2b3c1d2\",\"tenant_"
        "id\":"
        "\"t\",\"source\":\"web\",\"title\":\"ma\xf1\x61na \xc3\",\"body\":\"bad \xff\xfe \xed\xa0"
        "\x80 \xf0\x9f\x98 \xe2\x82\xac ok\",\"content_type\":\"text/plain\",\"created_at\":"
        "\"2026-11-24T10:00:00Z\"}",
        "{\"schema_version\":2}",
        "{\"schema_version\":1}",
        "not json",
        "{\"schema_version\":1,\"ticket_id\":\"0b9a3a3e-6a44-4f5c-9a43-64a0c2b3c1d2\",\"tenant_"
        "id\":"
        "\"t\",\"deleted\":true,\"created_at\":\"2026-11-24T10:00:00Z\"}",
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(others); i++)
        add(&d, &rules_200, others[i], strlen(others[i]));
    check(&d, "hand", "6eb2c57493cfa13ab9c4dbbd0ca70a7501a6a8999897c0d590e4b0c8bd0ede82");
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    tn_buf_t b;
    tn_buf_init(&b, (size_t)-1);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        tn_buf_add(&b, chunk, n);
    fclose(f);
    tn_buf_add(&b, "", 1);
    return tn_buf_detach(&b, len);
}

/* As tests/fuzz/enrich.c: 0xFF, flags, then "title\nbody" (unchecked UTF-8) in a raw record. */
static void wrap(char **v, size_t *len)
{
    const char *p = *v + 2, *end = *v + *len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *body = nl ? nl + 1 : p;
    size_t tlen = nl ? (size_t)(nl - p) : (size_t)(end - p);
    unsigned flags = (unsigned char)(*v)[1];
    json_t *r = json_pack(
        "{s:i, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:o, s:s}", "schema_version", 1, "ticket_id",
        "0b9a3a3e-6a44-4f5c-9a43-64a0c2b3c1d2", "tenant_id", "tenant-a", "source", "web", "title",
        tlen ? json_stringn_nocheck(p, tlen > 400 ? 400 : tlen) : json_string("-"), "body",
        json_stringn_nocheck(body, (size_t)(end - body)), "content_type",
        flags & 1 ? "text/html" : "text/plain", "created_at", "2026-11-24T10:00:00Z", "metadata",
        json_object(), "lang", flags & 2 ? "es" : "en");
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    if (!s) /* invalid UTF-8 that json_dumps() refuses: the fuzz target skips it too */
        return;
    free(*v);
    *v = s;
    *len = strlen(s);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void add_dir(digests_t *d, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, by_name);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char *path = tn_xasprintf("%s/%s", dir, names[i]->d_name);
            size_t len;
            char *v = slurp(path, &len);
            len--;
            if (len >= 2 && (unsigned char)v[0] == 0xff) /* the fuzz target's wrapped form */
                wrap(&v, &len);
            add(d, &rules_200, v, len);
            add(d, &rules_24, v, len);
            free(v);
            free(path);
        }
        free(names[i]);
    }
    free(names);
}

static void test_corpus(void **state)
{
    TN_UNUSED(state);
    digests_t d = {0};
    tn_buf_init(&d.all, (size_t)-1);
    add_dir(&d, "tests/fuzz/corpus/enrich");
    add_dir(&d, "tests/fuzz/regress/enrich");
    check(&d, "corpus", "bfd69ab4072e09ff7df73fe78b6f92c141e04580b20e9f715e9d9cfe384b46e8");
}

/* The demo documents as tickets.raw records. */
static void test_demo(void **state)
{
    TN_UNUSED(state);
    digests_t d = {0};
    tn_buf_init(&d.all, (size_t)-1);
    size_t len;
    char *all = slurp("tools/demo/corpus/documents.ndjson", &len);
    for (char *line = all, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        json_t *doc = json_loadb(line, (size_t)(nl - line), 0, NULL);
        assert_non_null(doc);
        json_object_set_new(doc, "schema_version", json_integer(1));
        json_object_set_new(doc, "tenant_id", json_string("tenant-a"));
        char *v = json_dumps(doc, JSON_COMPACT);
        add(&d, &rules_200, v, strlen(v));
        add(&d, &rules_24, v, strlen(v));
        free(v);
        json_decref(doc);
    }
    free(all);
    check(&d, "demo", "120bca1b1b74befeff4c51ba9e49743610d338b01e15476285d0b166bbb94bd0");
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static const char *const pieces[] = {
    "Buenos días, quiero renovar mi pasaporte que vence en enero.",
    "Solicité una cita para la licencia de conducir hace dos semanas.",
    "Mi cédula está vencida y necesito saber si puedo votar.",
    "Es urgente: mi pasaporte fue robado y viajo la próxima semana.",
    "Hello, I need to renew my passport before my trip.",
    "The pension for my father was not paid this month.",
    "I want to file a complaint about the poor service.",
    "Mi teléfono es 809-555-1234, llámenme.",
    "maria.perez12@gmail.com",
    "john.smith7@outlook.com.",
    "001-1234567-8",
    "00112345678",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "GB82 WEST 1234 5698 7654 32",
    "es91 2100 0418 4502 0005 1332",
    "+34 911 234 567",
    "+1 (809) 555-0142",
    "4502+34911234567",
    "2026-004512",
    "1-31-12345-6",
    "8095550142",
    "Dr. Sr. etc. e.g.",
    "¿Qué? ¡Sí!",
    "Café Niño ÁÉÍÓÚ ñ ü",
    "Cafe\\u0301 nin\\u0303o",
    "<p>parrafo</p>",
    "<br>",
    "<script>x<y</script>",
    "&amp; &lt; &#233; &#x41;",
    "\\n\\n",
    "\\t",
    "\\u0000",
    "\\u0007",
    "\\\"quoted\\\"",
    "\\\\",
    "\xff\xfe",
    "\xc3",
    "\xe2\x82",
    "\xed\xa0\x80",
    "€ 𝄞 😀",
    "urgente queja factura pago",
    "1234567890123456789012345",
    "12 34 56 78 90 12 34",
    "a@b",
    "@@",
    "x.y@z.",
    "ES00 0000",
    "DE89370400440532013000",
    "IBAN DE89 3704 0044 0532 0130 00 thanks",
};

static char *gen(uint64_t *s, int *html, size_t max)
{
    tn_buf_t b;
    tn_buf_init(&b, (size_t)-1);
    /* one call after the other (in one expression their order would be the compiler's) */
    uint32_t first = rnd(s);
    uint32_t second = max > 100 ? rnd(s) : 1;
    size_t want = 20 + first % (second % 4 == 0 ? 12000 : max);
    while (b.len < want) {
        const char *p = pieces[rnd(s) % TN_ARRAY_LEN(pieces)];
        tn_buf_adds(&b, p);
        uint32_t sep = rnd(s) % 8;
        tn_buf_adds(&b, sep == 0 ? "" : sep == 1 ? "  " : sep == 2 ? "\\n" : sep == 3 ? "-" : " ");
        if (rnd(s) % 20 == 0) { /* a random digit run with separators */
            int n = 1 + (int)(rnd(s) % 24);
            for (int i = 0; i < n; i++) {
                char c[2] = {(char)('0' + rnd(s) % 10), 0};
                tn_buf_adds(&b, c);
                uint32_t k = rnd(s) % 9;
                tn_buf_adds(&b, k == 0 ? " " : k == 1 ? "-" : k == 2 ? "." : "");
            }
            tn_buf_adds(&b, " ");
        }
    }
    tn_buf_add(&b, "", 1);
    *html = rnd(s) % 5 == 0;
    return tn_buf_detach(&b, NULL);
}

static void test_generated(void **state)
{
    TN_UNUSED(state);
    digests_t d = {0};
    tn_buf_init(&d.all, (size_t)-1);
    uint64_t s = 42;
    for (int i = 0; i < 400; i++) {
        int html, h2;
        char *body = gen(&s, &html, 1500);
        char *title = gen(&s, &h2, 60);
        static const char *const langs[] = {NULL, "es", "en", "es"};
        char *v = raw(title, body, html ? "text/html" : "text/plain", langs[rnd(&s) % 4]);
        add(&d, i % 2 ? &rules_24 : &rules_200, v, strlen(v));
        free(v);
        free(title);
        free(body);
    }
    /* most records take the fast path (the hand and generated ones carry a real: jansson's) */
    assert_true(fast_parsed * 4 > parsed);
    check(&d, "generated", "bfd3726e24cee8fde04d7a44f29ca2b820c539e46a531171c7e910eebb7b4f95");
}

/* Without ingest_chunk_text a chunk has no text member and is otherwise the same; its offsets
 * give back the text the other output carries, and the output is valid tickets.enriched. */
static void test_chunk_offsets_only(void **state)
{
    TN_UNUSED(state);
    uint64_t s = 7;
    size_t chunks = 0;
    for (int i = 0; i < 60; i++) {
        int html, h2;
        char *body = gen(&s, &html, 1500);
        char *title = gen(&s, &h2, 60);
        char *v = raw(title, body, html ? "text/html" : "text/plain", NULL);
        ingest_reject_t why = {0};
        char *id1 = NULL, *id2 = NULL;
        size_t c1[16] = {0}, c2[16] = {0}, bad, n1, n2; /* enrich adds to the counts */
        char *with = ingest_enrich(&rules_24, v, strlen(v), 900 * 1024, c1, &bad, &why, &n1, &id1);
        char *without =
            ingest_enrich(&rules_24_offsets, v, strlen(v), 900 * 1024, c2, &bad, &why, &n2, &id2);
        assert_non_null(with);
        assert_non_null(without);
        assert_true(n2 < n1);
        json_t *a = json_loadb(with, n1, JSON_ALLOW_NUL, NULL);
        json_t *b = json_loadb(without, n2, JSON_ALLOW_NUL, NULL);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(tn_schema_validate(rules_24_offsets.enriched, b, NULL, 0, NULL), TN_OK);
        const char *text = json_string_value(json_object_get(b, "text"));
        size_t tlen = json_string_length(json_object_get(b, "text"));
        json_t *ca = json_object_get(a, "chunks"), *cb = json_object_get(b, "chunks");
        assert_int_equal(json_array_size(ca), json_array_size(cb));
        for (size_t k = 0; k < json_array_size(ca); k++, chunks++) {
            json_t *x = json_array_get(ca, k), *y = json_array_get(cb, k);
            assert_null(json_object_get(y, "text"));
            size_t bs, be;
            size_t start = (size_t)json_integer_value(json_object_get(y, "start"));
            size_t end = (size_t)json_integer_value(json_object_get(y, "end"));
            assert_int_equal(tn_text_cp_span(text, tlen, start, end, NULL, &bs, &be), 0);
            const char *want = json_string_value(json_object_get(x, "text"));
            assert_int_equal(be - bs, strlen(want));
            assert_memory_equal(text + bs, want, be - bs);
            json_object_del(x, "text");
        }
        json_object_del(a, "enriched_at");
        json_object_del(b, "enriched_at");
        assert_true(json_equal(a, b));
        json_decref(a);
        json_decref(b);
        free(with);
        free(without);
        free(id1);
        free(id2);
        free(v);
        free(title);
        free(body);
    }
    assert_true(chunks > 120); /* 24-word chunks: several per record */
}

/* The parser's corners, each either parsed as jansson does or left to it. */
/* A chunk longer than a chunk's text may be (one word of 20,001 letters) is rejected, named by
 * its text when the text is written and by the chunk when only its offsets are. */
static void test_chunk_too_long(void **state)
{
    (void)state;
    char *word = tn_xmalloc(20002);
    memset(word, 'a', 20001);
    word[20001] = '\0';
    char *v = raw("Largo", word, "text/plain", NULL);
    const ingest_rules_t *sets[] = {&rules_24, &rules_24_offsets};
    const char *want[] = {"/chunks/0/text: maxLength: length 20001",
                          "/chunks/0: maxLength: length 20001"};
    for (size_t i = 0; i < 2; i++) {
        size_t counts[16] = {0}, bad = 0, out_len = 0;
        ingest_reject_t why = {0};
        char *id = NULL;
        char *out =
            ingest_enrich(sets[i], v, strlen(v), 900 * 1024, counts, &bad, &why, &out_len, &id);
        assert_null(out);
        assert_string_equal(why.reason, "enrich");
        if (!strstr(why.detail, want[i]))
            fail_msg("%s: want %s", why.detail, want[i]);
    }
    free(v);
    free(word);
}

static void test_json_parse(void **state)
{
    TN_UNUSED(state);
    static const char *const docs[] = {
        "{}",
        "[]",
        " {\"a\" : [ 1 , -2, 0, -0, true, false, null, \"x\" ] } \r\n\t",
        "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\\u0000z\"}",
        "{\"a\":\"\\ud83d\"}",
        "{\"a\":\"\\ude00\"}",
        "{\"a\":\"\\ud83dx\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\x7f\"}",
        "{\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        "{\"a\":\"\xc3\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":1,\"a\":2}",
        "{\"a\\u0000b\":1}",
        "{\"\":1}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":1.5}",
        "{\"a\":1e3}",
        "{\"a\":123456789012345678}",
        "{\"a\":1234567890123456789}",
        "{\"a\":-123456789012345678}",
        "{\"a\":99999999999999999999}",
        "{\"a\":truex}",
        "{\"a\":tru}",
        "{\"a\":1,}",
        "[1,]",
        "{\"a\" 1}",
        "{\"a\":1} x",
        "{\"a\":1}\x00",
        "\"s\"",
        "1",
        "",
        "  ",
        "{",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]"
        "]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
        "{\"b\":2,\"a\":1,\"c\":{\"z\":null,\"y\":[]}}",
        "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(docs); i++)
        same_tree(docs[i], strlen(docs[i]) + (strstr(docs[i], "\x00") ? 1 : 0));
    /* strings read eight bytes at a time: every kind of byte that stops the fast path, at
     * every offset of a long string (before, inside and after an 8-byte word) */
    static const char *const stops[] = {"\\n",  "\\u00e9",      "\"",   "\x01", "\xc3\xa9",
                                        "\xc3", "\xe2\x82\xac", "\xff", "\x7f", "\\"};
    for (size_t k = 0; k < TN_ARRAY_LEN(stops); k++)
        for (size_t at = 0; at < 20; at++) {
            char v[96];
            int n = snprintf(v, sizeof(v), "{\"a\":\"%.*s%s%.*s\"}", (int)at,
                             "abcdefghijklmnopqrstuvwxyz", stops[k], (int)(19 - at),
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
            same_tree(v, (size_t)n);
        }
    /* a duplicate key is jansson's error: the fast path leaves it, also deep inside */
    static const char *const dups[] = {"{\"a\":1,\"a\":2}",
                                       "{\"a\":{\"b\":\"x\",\"c\":1,\"b\":\"y\"}}"};
    for (size_t i = 0; i < TN_ARRAY_LEN(dups); i++) {
        json_t *d = ingest_json_parse(dups[i], strlen(dups[i]));
        assert_null(d);
    }
    /* the NUL escape and the pair decode to these bytes */
    json_t *doc = ingest_json_parse(docs[3], strlen(docs[3]));
    assert_non_null(doc);
    json_t *a = json_object_get(doc, "a");
    assert_int_equal(json_string_length(a), 20);
    assert_memory_equal(json_string_value(a),
                        "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z", 20);
    json_decref(doc);
}

static int setup(void **state)
{
    TN_UNUSED(state);
    load(&rules_200, 200, 40, true);
    load(&rules_24, 24, 5, true);
    load(&rules_24_offsets, 24, 5, false);
    return 0;
}

static int teardown(void **state)
{
    TN_UNUSED(state);
    ingest_rules_free(&rules_200);
    ingest_rules_free(&rules_24);
    ingest_rules_free(&rules_24_offsets);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_demo),
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_chunk_too_long),
        cmocka_unit_test(test_json_parse),
        cmocka_unit_test(test_chunk_offsets_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
