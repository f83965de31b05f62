/* Unit tests for common/src/category.c: folding, rules, defaults, errors. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/buf.h"
#include "taina/category.h"
#include "taina/mem.h"

#include <ctype.h>
#include <utf8proc.h>

static tn_category_result_t classify(const tn_category_t *c, const char *t, const char *lang)
{
    return tn_category_classify(c, t, strlen(t), lang);
}

static void test_fold(void **state)
{
    (void)state;
    const char *in = "¿Cómo RENUEVO la Cédula?  ¡Ñandú!";
    char *f = tn_category_fold(in, strlen(in));
    assert_string_equal(f, " como renuevo la cedula nandu ");
    free(f);
    f = tn_category_fold("", 0);
    assert_string_equal(f, " ");
    free(f);
}

/* Code points that fold to many bytes, then ASCII (one byte each, the fast path): the output
 * grows past the input's size and stays whole. */
static void test_fold_grows(void **state)
{
    (void)state;
    tn_buf_t in, want;
    tn_buf_init(&in, 1 << 20);
    tn_buf_init(&want, 1 << 20);
    for (int i = 0; i < 1000; i++)
        tn_buf_adds(&in, "\xc5\x89"); /* U+0149, folded to U+02BC U+006E: 2 bytes to 3 */
    char *head = tn_category_fold(in.data, in.len);
    tn_buf_add(&want, head, strlen(head) - 1); /* its trailing space */
    for (int i = 0; i < 20000; i++) {
        tn_buf_adds(&in, "a");
        tn_buf_adds(&want, "a");
    }
    tn_buf_adds(&in, "!");
    tn_buf_add(&want, " ", 2);
    char *all = tn_category_fold(in.data, in.len);
    assert_string_equal(all, want.data);
    free(all);
    free(head);
    tn_buf_cleanup(&in);
    tn_buf_cleanup(&want);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256];
    tn_category_t *c = tn_category_new(NULL, NULL, err, sizeof(err));
    assert_non_null(c);
    struct {
        const char *text, *lang, *want, *prio;
    } cases[] = {
        {"¿Qué necesito para renovar el pasaporte?", "es", "passport", "normal"},
        {"How do I replace a lost driving licence?", "en", "driving_licence", "normal"},
        {"Perdí mi cédula de identidad", "es", "national_id", "normal"},
        {"Necesito una copia del acta de nacimiento", "es", "civil_registry", "normal"},
        {"I want to file a complaint about poor service", "en", "complaint", "high"},
        {"Quiero agendar una cita para la matrícula del vehículo", "es", "vehicle", "normal"},
        {"Hello, good morning", "en", "general", "normal"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tn_category_result_t r = classify(c, cases[i].text, cases[i].lang);
        if (strcmp(r.category, cases[i].want) != 0 || strcmp(r.priority, cases[i].prio) != 0)
            fail_msg("%s -> %s/%s, want %s/%s", cases[i].text, r.category, r.priority,
                     cases[i].want, cases[i].prio);
    }
    /* whole words only: "taxi" is not "tax" */
    assert_string_equal(classify(c, "I took a taxi", "en").category, "general");
    /* rules of the other language are skipped; und tries all */
    assert_string_equal(classify(c, "passport", "es").category, "general");
    assert_string_equal(classify(c, "passport", "und").category, "passport");
    tn_category_destroy(c);
}

static void test_custom_rules_and_errors(void **state)
{
    (void)state;
    char err[256];
    tn_category_t *c =
        tn_category_new("a normal * alpha, beta gamma\nb high es delta\n", "t", err, sizeof(err));
    assert_non_null(c);
    tn_category_result_t r = classify(c, "Beta Gamma then alpha", "en");
    assert_string_equal(r.category, "a");
    assert_int_equal(r.score, 2); /* a phrase of two words scores 1, like one word */
    assert_int_equal(r.keywords, 2);
    assert_string_equal(classify(c, "delta", "es").priority, "high");
    tn_category_destroy(c);
    assert_null(tn_category_new("a normal\n", "t", err, sizeof(err)));
    assert_non_null(strstr(err, "t line 1"));
    assert_null(tn_category_new("# x\na normal fr bonjour\n", "t", err, sizeof(err)));
    assert_non_null(strstr(err, "line 2"));
    assert_null(tn_category_new("a normal es , ,\n", "t", err, sizeof(err)));
    assert_non_null(strstr(err, "no keywords"));
}

static tn_category_result_t classify_doc(const tn_category_t *c, const char *title,
                                         const char *body, const char *lang)
{
    return tn_category_classify_doc(c, title, title ? strlen(title) : 0, body, strlen(body), lang);
}

/* The document's topic wins over passing mentions: multi-word keywords score 1, the title
 * weighs TN_CATEGORY_TITLE_WEIGHT, ties go to the category with more distinct keywords. */
static void test_scoring(void **state)
{
    (void)state;
    char err[256];
    tn_category_t *c = tn_category_new("b normal * zeta, eta theta iota\n"
                                       "a normal * alpha, beta\n",
                                       "t", err, sizeof(err));
    assert_non_null(c);
    /* a three-word phrase no longer outscores two one-word keywords */
    tn_category_result_t r = classify_doc(c, NULL, "eta theta iota then alpha and beta", "en");
    assert_string_equal(r.category, "a");
    assert_int_equal(r.score, 2);
    /* tie on score: more distinct keywords wins, although b comes first in the file */
    r = classify_doc(c, NULL, "zeta zeta alpha beta", "en");
    assert_string_equal(r.category, "a");
    assert_int_equal(r.score, 2);
    assert_int_equal(r.keywords, 2);
    /* same score and keywords: the first in the file */
    assert_string_equal(classify_doc(c, NULL, "zeta alpha", "en").category, "b");
    /* a keyword in the title counts TN_CATEGORY_TITLE_WEIGHT times */
    r = classify_doc(c, "Zeta", "alpha beta", "en");
    assert_string_equal(r.category, "b");
    assert_int_equal(r.score, TN_CATEGORY_TITLE_WEIGHT);
    assert_int_equal(r.keywords, 1);
    assert_string_equal(classify_doc(c, "Nothing here", "alpha beta", "en").category, "a");
    /* tn_category_classify() is the body without a title */
    r = classify(c, "Zeta. alpha alpha beta", "en");
    assert_string_equal(r.category, "a");
    assert_int_equal(r.score, 3);
    /* words longer than 8 bytes are equal only to the end, not by their first 8 bytes (the
     * key the lookup starts from) and their length */
    tn_category_t *l =
        tn_category_new("p normal * pasaportes, registration number\n", "t", err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(classify(l, "pasaportex registratiox number", "es").score, 0);
    r = classify(l, "Pasaportes, registration number", "es");
    assert_string_equal(r.category, "p");
    assert_int_equal(r.score, 2);
    tn_category_destroy(l);
    /* deterministic: same answer every time */
    for (int i = 0; i < 10; i++)
        assert_string_equal(classify_doc(c, "zeta", "beta zeta", "en").category, "b");
    tn_category_destroy(c);

    /* The built-in rules on the demo corpus's two misfits (tools/demo/corpus): a learner's
     * permit page and a benefits-card ticket that mention an ID card in passing. */
    c = tn_category_new(NULL, NULL, err, sizeof(err));
    assert_non_null(c);
    r = classify_doc(c, "Learner's permit",
                     "The learner's permit is the first step towards a driving licence. Bring "
                     "your ID card or birth certificate. Book the driving test on the portal.",
                     "en");
    assert_string_equal(r.category, "driving_licence");
    r = classify_doc(c, "Benefits card blocked after three wrong PINs",
                     "He receives the pension and his benefits card was blocked. He gave his ID "
                     "card number. A blocked card is unblocked at the bank with his ID card.",
                     "en");
    assert_string_equal(r.category, "social_benefits");
    r = classify_doc(c, "Permiso internacional de conducir",
                     "Requisitos: licencia de conducir vigente, cédula de identidad o pasaporte.",
                     "es");
    assert_string_equal(r.category, "driving_licence");
    /* and a passing mention stays a passing mention when the topic is the ID card */
    r = classify_doc(c, "Renew your ID card",
                     "Bring your old ID card. Your driving licence is not accepted instead.", "en");
    assert_string_equal(r.category, "national_id");
    tn_category_destroy(c);
}

/* The fold as first written: the whole text through utf8proc_map. */
static char *fold_ref(const char *text, size_t len)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &mapped,
                     UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD);
    const char *src = n >= 0 ? (const char *)mapped : text;
    size_t sl = n >= 0 ? (size_t)n : len;
    char *out = malloc(sl + 3);
    size_t o = 0;
    out[o++] = ' ';
    for (size_t i = 0; i < sl;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)src + i, (utf8proc_ssize_t)(sl - i), &cp);
        if (k <= 0) {
            k = 1;
            cp = ' ';
        }
        utf8proc_category_t cat = utf8proc_category(cp);
        int word = cp == '\'' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                   (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
        if (word) {
            for (utf8proc_ssize_t j = 0; j < k; j++)
                out[o++] = (char)tolower((unsigned char)src[i + (size_t)j]);
        } else if (out[o - 1] != ' ') {
            out[o++] = ' ';
        }
        i += (size_t)k;
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
    free(mapped);
    return out;
}

/* Also through tn_category_fold_into with one buffer reused by every check (left holding a
 * longer fold, or grown from small, or refilled by the whole-text path). */
static char *reused;
static size_t reused_cap;

static void check_fold(const char *s, size_t n)
{
    char *want = fold_ref(s, n), *got = tn_category_fold(s, n);
    if (strcmp(want, got) != 0)
        fail_msg("fold of %zu bytes %02x %02x %02x %02x: \"%s\", want \"%s\"", n,
                 (unsigned char)s[0], n > 1 ? (unsigned char)s[1] : 0,
                 n > 2 ? (unsigned char)s[2] : 0, n > 3 ? (unsigned char)s[3] : 0, got, want);
    size_t len = tn_category_fold_into(s, n, &reused, &reused_cap);
    assert_int_equal(len, strlen(want));
    assert_string_equal(reused, want);
    free(want);
    free(got);
}

/* The per-code-point fold (a table, then utf8proc per code point) equals the whole-text one for
 * every code point, alone and between letters, next to a combining mark, and on invalid UTF-8. */
static void test_fold_every_code_point(void **state)
{
    (void)state;
    for (int32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        char s[16];
        size_t n = 0;
        s[n++] = 'A';
        n += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)s + n);
        s[n++] = 'b';
        check_fold(s, n);
        check_fold(s + 1, n - 2);
        if (cp < 0x800 || (cp & 0xFF) == 0x41) { /* and before a combining mark */
            memcpy(s + n - 1, "\xCC\x81", 2);
            check_fold(s, n + 1);
        }
    }
    check_fold("Caf\xC3\xA9 \xFF x", 7);
    check_fold("\xE1\xBA\xA0\xCC\x81\xCC\xA3 ma\xCD\x85\xCC\x81", 15);
    char big[4000]; /* grows the reused buffer past its first size, then a short one in it */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "A\xC3\xA9 .b"[i % 6];
    check_fold(big, sizeof(big));
    check_fold("x", 1);
    free(reused);
    reused = NULL;
    reused_cap = 0;
}

/* Mostly-ASCII texts (the 8-bytes-at-a-time path) of every length up to 40: letters of both
 * cases, digits, apostrophes, separators alone and in runs, controls, now and then a 2-byte
 * letter or an invalid byte, against the reference. */
static void test_fold_ascii_random(void **state)
{
    (void)state;
    static const char alphabet[] = "aZmq09'  ..,-_\t\n@[`{~\x7f\x01AzMQ";
    uint64_t x = 0x9E3779B97F4A7C15u;
    char s[48];
    for (int iter = 0; iter < 50000; iter++) {
        size_t n = (size_t)(iter % 41);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned r = (unsigned)(x >> 32);
            if (r % 97 == 0 && i + 1 < n) { /* é, or a lone continuation byte */
                s[i++] = r % 2 ? '\xC3' : '\x80';
                s[i] = r % 2 ? '\xA9' : 'a';
            } else {
                s[i] = alphabet[r % (sizeof(alphabet) - 1)];
            }
        }
        check_fold(s, n);
    }
    free(reused);
    reused = NULL;
    reused_cap = 0;
}

/* Scores equal those of one strstr per phrase over the folded title (TN_CATEGORY_TITLE_WEIGHT
 * each) and body (1 each), ties to the category with more distinct phrases found, on texts of
 * keyword words. */
static void test_classify_like_strstr(void **state)
{
    (void)state;
    static const char *const words[] = {
        "de",      "tax",      "id",     "card",   "licencia", "conducir",  "acta",    "nacimiento",
        "book",    "tax",      "return", "urgent", "Cédula",   "PASAPORTE", "x",       "driver's",
        "license", "registro", "civil",  "mal",    "servicio", "poor",      "service", "national",
    };
    static const char rules[] =
        "a normal * tax, tax id, id, de de, x x x\n"
        "b high es licencia de conducir, acta de nacimiento, cedula, mal servicio\n"
        "c normal en driver's license, book, poor service, national id card\n"
        "a normal en card, tax return, tax\n"
        "d urgent * urgent, pasaporte, registro civil, de\n";
    /* the rules' phrases, folded, by category; lang as tn_category_classify() applies it */
    static const struct {
        int cat;
        const char *lang, *phrase;
    } ph[] = {
        {0, "*", " tax "},
        {0, "*", " tax id "},
        {0, "*", " id "},
        {0, "*", " de de "},
        {0, "*", " x x x "},
        {1, "es", " licencia de conducir "},
        {1, "es", " acta de nacimiento "},
        {1, "es", " cedula "},
        {1, "es", " mal servicio "},
        {2, "en", " driver's license "},
        {2, "en", " book "},
        {2, "en", " poor service "},
        {2, "en", " national id card "},
        {0, "en", " card "},
        {0, "en", " tax return "},
        {0, "en", " tax "},
        {3, "*", " urgent "},
        {3, "*", " pasaporte "},
        {3, "*", " registro civil "},
        {3, "*", " de "},
    };
    char err[256];
    tn_category_t *c = tn_category_new(rules, "t", err, sizeof(err));
    assert_non_null(c);
    const char *cats[] = {"a", "b", "c", "d"};
    unsigned seed = 7;
    for (int t = 0; t < 3000; t++) {
        char text[600];
        size_t n = 0, tlen = 0;
        int nw = 1 + t % 40, tw = t % 5 == 0 ? 0 : (t / 5) % 6; /* words of the title */
        for (int w = 0; w < nw; w++) {
            seed = seed * 1103515245u + 12345u;
            if (w == tw)
                tlen = n;
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s",
                                  words[(seed >> 8) % (sizeof(words) / sizeof(*words))],
                                  (seed >> 20) % 5 == 0 ? ", " : " ");
        }
        if (tw >= nw)
            tlen = n;
        const char *lang = t % 3 == 0 ? "es" : t % 3 == 1 ? "en" : "und";
        char *ft = tn_category_fold(text, tlen), *fb = tn_category_fold(text + tlen, n - tlen);
        int want[4] = {0}, kw[4] = {0};
        for (size_t k = 0; k < sizeof(ph) / sizeof(*ph); k++) {
            if (ph[k].lang[0] != '*' && strcmp(lang, "und") != 0 && strcmp(ph[k].lang, lang) != 0)
                continue;
            int found = 0;
            for (const char *p = strstr(ft, ph[k].phrase); p; p = strstr(p + 1, ph[k].phrase))
                want[ph[k].cat] += TN_CATEGORY_TITLE_WEIGHT, found = 1;
            for (const char *p = strstr(fb, ph[k].phrase); p; p = strstr(p + 1, ph[k].phrase))
                want[ph[k].cat] += 1, found = 1;
            kw[ph[k].cat] += found;
        }
        free(ft);
        free(fb);
        /* categories in file order: a, b, c, d */
        int best = -1, score = 0, keywords = 0;
        for (int k = 0; k < 4; k++)
            if (want[k] > score || (want[k] == score && score > 0 && kw[k] > keywords)) {
                best = k;
                score = want[k];
                keywords = kw[k];
            }
        tn_category_result_t r =
            tn_category_classify_doc(c, text, tlen, text + tlen, n - tlen, lang);
        if (r.score != score || r.keywords != keywords ||
            strcmp(r.category, best < 0 ? "general" : cats[best]) != 0)
            fail_msg("\"%.*s\" | \"%s\" (%s): %s %d/%d, want %s %d/%d", (int)tlen, text,
                     text + tlen, lang, r.category, r.score, r.keywords,
                     best < 0 ? "general" : cats[best], score, keywords);
    }
    tn_category_destroy(c);
}

/* tn_category_classify_lang() detects in its one pass what tn_lang_detect() of "title. body"
 * detects (the same words and marks), and then classifies as tn_category_classify_doc() in that
 * language; on texts of keywords, function words of both languages, accents and separators. */
static void test_classify_lang(void **state)
{
    (void)state;
    static const char *const words[] = {
        "de",
        "la",
        "the",
        "and",
        "pasaporte",
        "passport",
        "cita",
        "book",
        "est\xc3\xa1",
        "qu\xc3\xa9",
        "\xc2\xbf"
        "D\xc3\xb3nde",
        "Urgente",
        "tax",
        "id",
        "card",
        "licencia",
        "conducir",
        "necesito",
        "necesitos",
        "I",
        "it's",
        "mal",
        "servicio",
        "poor",
        "service",
        "x",
        "2026",
        "ni\xc3\xb1o",
    };
    static const char *const seps[] = {" ", ", ", ". ", "\n", "  ", "-"};
    tn_category_t *c = tn_category_new(NULL, "t", NULL, 0);
    assert_non_null(c);
    unsigned seed = 11;
    for (int t = 0; t < 3000; t++) {
        char text[900];
        size_t n = 0, tlen = 0;
        int nw = 1 + t % 60, tw = t % 7 == 0 ? 0 : (t / 7) % 5;
        for (int w = 0; w < nw; w++) {
            seed = seed * 1103515245u + 12345u;
            if (w == tw)
                tlen = n;
            n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%s",
                                  words[(seed >> 8) % TN_ARRAY_LEN(words)],
                                  seps[(seed >> 20) % TN_ARRAY_LEN(seps)]);
        }
        if (tw >= nw)
            tlen = n;
        const char *hint = t % 3 == 0 ? "es" : t % 3 == 1 ? "en" : NULL;
        char *all = tn_xasprintf("%.*s. %s", (int)tlen, text, text + tlen);
        tn_lang_t want = tn_lang_detect(all, strlen(all), hint), got;
        free(all);
        tn_category_result_t r =
            tn_category_classify_lang(c, text, tlen, text + tlen, n - tlen, hint, &got);
        tn_category_result_t w =
            tn_category_classify_doc(c, text, tlen, text + tlen, n - tlen, want.code);
        if (strcmp(got.code, want.code) != 0 || got.confidence != want.confidence ||
            strcmp(r.category, w.category) != 0 || r.score != w.score || r.keywords != w.keywords)
            fail_msg("\"%.*s\" | \"%s\": %s %.4f %s %d/%d, want %s %.4f %s %d/%d", (int)tlen, text,
                     text + tlen, got.code, got.confidence, r.category, r.score, r.keywords,
                     want.code, want.confidence, w.category, w.score, w.keywords);
    }
    tn_category_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_fold_grows),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_custom_rules_and_errors),
        cmocka_unit_test(test_scoring),
        cmocka_unit_test(test_fold_every_code_point),
        cmocka_unit_test(test_fold_ascii_random),
        cmocka_unit_test(test_classify_like_strstr),
        cmocka_unit_test(test_classify_lang),
    };
    return cmocka_run_group_tests_name("category", tests, NULL, NULL);
}
