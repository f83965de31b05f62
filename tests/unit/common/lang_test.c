/* Unit tests for common/src/lang.c: Spanish, English, undetermined, every word and folded words,
 * and against a plainly written reference. */
#include "tn_test.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "taina/category.h"
#include "taina/lang.h"
#include "taina/mem.h"

static tn_lang_t d(const char *s)
{
    return tn_lang_detect(s, strlen(s), NULL);
}

static void test_spanish(void **state)
{
    (void)state;
    const char *es[] = {
        "¿Qué documentos necesito para renovar el pasaporte? Tengo una cita el lunes.",
        "Quiero solicitar una copia del acta de nacimiento de mi hijo.",
        "La oficina está cerrada los domingos y abre a las ocho de la mañana.",
        "Perdí mi cédula y necesito saber cómo pedir un duplicado.",
    };
    for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++) {
        tn_lang_t l = d(es[i]);
        if (strcmp(l.code, "es") != 0 || l.confidence < 0.6)
            fail_msg("%s -> %s %.2f", es[i], l.code, l.confidence);
    }
}

static void test_english(void **state)
{
    (void)state;
    const char *en[] = {
        "How do I replace a lost driving licence? I need it for work.",
        "What are the opening hours of the passport office on Saturday?",
        "I would like to book an appointment to register my vehicle.",
        "Please tell me which documents are required for a birth certificate.",
    };
    for (size_t i = 0; i < sizeof(en) / sizeof(en[0]); i++) {
        tn_lang_t l = d(en[i]);
        if (strcmp(l.code, "en") != 0 || l.confidence < 0.6)
            fail_msg("%s -> %s %.2f", en[i], l.code, l.confidence);
    }
}

static void test_undetermined(void **state)
{
    (void)state;
    assert_string_equal(d("").code, "und");
    assert_string_equal(d("12345 ### ...").code, "und");
    assert_string_equal(d("Lorem ipsum dolor sit amet").code, "und");
    assert_string_equal(d("Guten Tag, wie geht es Ihnen heute").code, "und");
    /* a single shared function word is too little */
    tn_lang_t l = d("pasaporte");
    assert_string_equal(l.code, "und");
}

/* Every word counts, however long the text: Spanish first and twice as much English after it
 * is English. Words are folded as keywords are, so accented function words ("está", "qué",
 * "él", "sí", "cómo") are Spanish evidence, as are the marks on them. */
static void test_every_word(void **state)
{
    (void)state;
    const char *es = "Quiero renovar el pasaporte y necesito una cita para la semana que viene. ";
    const char *en = "I would like to know when the office is open and what I need to bring. ";
    size_t cap = 16384, n = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    while (n < 4096) {
        memcpy(t + n, es, strlen(es));
        n += strlen(es);
    }
    size_t es_end = n;
    while (n + strlen(en) < cap) {
        memcpy(t + n, en, strlen(en));
        n += strlen(en);
    }
    assert_string_equal(tn_lang_detect(t, es_end, NULL).code, "es");
    assert_string_equal(tn_lang_detect(t, n, NULL).code, "en");
    free(t);
    /* the, and, the: 3 English; está qué él sí cómo: 5 Spanish words and 5 marks */
    const char *acc = "the cat and the dog est\xc3\xa1 qu\xc3\xa9 \xc3\xa9l s\xc3\xad c\xc3\xb3mo";
    tn_lang_t l = d(acc);
    assert_string_equal(l.code, "es");
    assert_true(l.confidence > 0.7);
    /* upper case and accents fold away: the same words as in lower case without accents */
    tn_lang_t up = d("THE CAT AND THE DOG EST\xc3\x81 QU\xc3\x89 \xc3\x89L S\xc3\x8d C\xc3\x93MO");
    tn_lang_t plain = d("the cat and the dog esta que el si como");
    assert_string_equal(up.code, "es");
    assert_true(up.confidence == plain.confidence); /* no marks: upper-case accents are none */
}

static void test_hint_breaks_ties(void **state)
{
    (void)state;
    const char *mixed = "the passport and de la oficina";
    assert_string_equal(tn_lang_detect(mixed, strlen(mixed), "es").code, "es");
    assert_string_equal(tn_lang_detect(mixed, strlen(mixed), "en").code, "en");
    assert_string_equal(tn_lang_detect(mixed, strlen(mixed), NULL).code, "und");
}

/* ---------------------------------------------------------------------------------------------
 * The detector written plainly: the public fold split at its spaces, every word looked up in an
 * open-addressing table, the marks byte by byte (lang.c counts the words in the category scan's
 * pass, 64 bytes of spaces at a time). Random texts are compared with it. */

/* Frequent words that are (almost) only Spanish or only English. */
static const char *const ref_es_words[] = {
    "al",     "algo",  "ante",     "cita", "como",  "con",   "cuando", "de",    "del",
    "desde",  "donde", "el",       "ella", "ellos", "en",    "entre",  "es",    "esta",
    "este",   "esto",  "hay",      "la",   "las",   "le",    "lo",     "los",   "mi",
    "mis",    "muy",   "necesito", "para", "pero",  "por",   "porque", "puedo", "que",
    "quiero", "se",    "ser",      "si",   "sin",   "sobre", "son",    "su",    "sus",
    "tengo",  "una",   "uno",      "unos", "y",     "ya",    "yo",
};
static const char *const ref_en_words[] = {
    "a",      "about", "am",   "and",   "are",  "as",   "at",   "be",   "but",  "by",
    "can",    "could", "do",   "does",  "for",  "from", "have", "how",  "i",    "if",
    "in",     "is",    "it",   "my",    "need", "not",  "of",   "on",   "or",   "please",
    "should", "that",  "the",  "this",  "to",   "want", "was",  "what", "when", "where",
    "which",  "will",  "with", "would", "you",  "your",
};

/* Both lists in one open-addressing hash table, built once: bit 1 Spanish, bit 2 English. A word
 * is looked up by its bytes packed into an integer (none of the listed words is longer than 8
 * bytes, so a longer word is no function word): a multiply and an integer compare per word. */
#define NSLOTS   256
#define MAX_WORD 8
static struct {
    uint64_t key; /* 0: empty */
    unsigned char lists;
} ref_slots[NSLOTS];
static pthread_once_t ref_slots_once = PTHREAD_ONCE_INIT;

static size_t ref_find(uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15u) >> 56); /* NSLOTS = 2^8 */
    while (ref_slots[i].key && ref_slots[i].key != key)
        i = (i + 1) & (NSLOTS - 1);
    return i;
}

static void ref_add_list(const char *const *list, size_t n, unsigned char bit)
{
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(list[k]);
        TN_ASSERT(len > 0 && len <= MAX_WORD);
        uint64_t key = 0;
        for (size_t j = 0; j < len; j++)
            key |= (uint64_t)(unsigned char)list[k][j] << (8 * j);
        size_t i = ref_find(key);
        ref_slots[i].key = key;
        ref_slots[i].lists |= bit;
    }
}

static void ref_build_slots(void)
{
    ref_add_list(ref_es_words, TN_ARRAY_LEN(ref_es_words), 1);
    ref_add_list(ref_en_words, TN_ARRAY_LEN(ref_en_words), 2);
}

/* Spanish-only letters and marks: ñ Ñ ¿ ¡ á é í ó ú (UTF-8 lead 0xC2/0xC3), as evidence in
 * halves: 1 for a letter, 2 for an opening mark. */
static unsigned ref_mark_halves(const unsigned char *u, size_t len, size_t i)
{
    unsigned char c = u[i], d = i + 1 < len ? u[i + 1] : 0;
    if (c == 0xC3)
        return d == 0xB1 || d == 0x91 || d == 0xA1 || d == 0xA9 || d == 0xAD || d == 0xB3 ||
               d == 0xBA;
    if (c == 0xC2)
        return 2 * (d == 0xBF || d == 0xA1);
    return 0;
}

static tn_lang_t ref_detect(const char *text, size_t len, const char *hint)
{
    pthread_once(&ref_slots_once, ref_build_slots);
    /* evidence counted in halves, as integers: the same sums as adding 0.5s and 1s */
    size_t es2 = 0, en2 = 0, words = 0;
    const unsigned char *u = (const unsigned char *)text;
    /* every word of the folded text (" w1 w2 ... "), looked up if it is short enough */
    char *f = tn_category_fold(text, len), *save = NULL;
    for (char *w = strtok_r(f, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        size_t n = strlen(w);
        words++;
        if (n > MAX_WORD)
            continue;
        uint64_t key = 0;
        for (size_t j = 0; j < n; j++)
            key |= (uint64_t)(unsigned char)w[j] << (8 * j);
        unsigned lists = ref_slots[ref_find(key)].lists;
        es2 += 2 * (lists & 1);
        en2 += lists & 2;
    }
    free(f);
    /* the marks of the text as it stands */
    for (size_t i = 0; i < len; i++)
        es2 += ref_mark_halves(u, len, i);
    double es = (double)es2 / 2, en = (double)en2 / 2;
    tn_lang_t r = {"und", 0};
    double total = es + en;
    if (total < 2 || words == 0)
        return r;
    if (hint && strcmp(hint, "es") == 0)
        es += 0.5;
    else if (hint && strcmp(hint, "en") == 0)
        en += 0.5;
    double best = es > en ? es : en;
    /* Share of the evidence, discounted for little evidence: 2 signals give at most 0.5. */
    double share = best / (es + en);
    double amount = total >= 8 ? 1.0 : total / 8.0 + 0.25;
    r.confidence = share * (amount > 1 ? 1 : amount);
    if (share < 0.6) {
        /* Too close to call: the sender's hint decides if its language is not behind. */
        int hint_es = hint && strcmp(hint, "es") == 0, hint_en = hint && strcmp(hint, "en") == 0;
        if ((hint_es && es >= en) || (hint_en && en >= es))
            return (tn_lang_t){hint_es ? "es" : "en", r.confidence};
        return (tn_lang_t){"und", r.confidence};
    }
    r.code = es > en ? "es" : "en";
    return r;
}

/* Random texts of the pieces that matter (function words in both cases, Spanish marks, bytes
 * from 0x80 up in and between words, apostrophes, separators, words of 8 and 9 letters), of
 * every length to 300 and around 4 KB (many 64-byte blocks), at two alignments, with each hint: the
 * same language and the same confidence as the reference. */
static void test_like_reference(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "the ",
        "de ",
        "la ",
        "The ",
        "DE ",
        "\xc3\xb1",
        "\xc3\xa1",
        "\xc3\xa9",
        "\xc2\xbf",
        "\xc2\xa1",
        "\xc3",
        "\xc2",
        "x",
        "'",
        "it's ",
        "don't ",
        "  ",
        "\n",
        ".",
        ",",
        "necesito ",
        "necesito",
        "porque ",
        "would ",
        "please ",
        "abcdefgh",
        "abcdefghi",
        "Mi",
        "m\xc3\xad",
        "a",
        "y ",
        "@",
        "[",
        "`",
        "{",
        "_",
        "0",
        "9",
        "\x80",
        "\xff",
        "\xc3\xa9 la ",
        "la\xc3\xa9 ",
        "because ",
        "with ",
        "\xc3\xb1"
        "andu ",
        "I ",
        "i ",
        "Z",
        "A",
    };
    uint64_t x = 88172645463325252ULL;
    char *buf = malloc(5000);
    assert_non_null(buf);
    for (int it = 0; it < 60000; it++) {
        size_t n = 0, want;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        want = it % 10 == 0 ? 3900 + x % 400 : x % 300;
        while (n < want) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *p = pieces[x % TN_ARRAY_LEN(pieces)];
            memcpy(buf + 1 + n, p, strlen(p));
            n += strlen(p);
        }
        for (size_t off = 0; off < 2 && off <= n; off++) {
            const char *hint = it % 3 == 0 ? "es" : it % 3 == 1 ? "en" : NULL;
            /* an exact copy: ASan and valgrind see any read past the text */
            char *t = malloc(n - off + 1);
            assert_non_null(t);
            memcpy(t, buf + 1 + off, n - off);
            tn_lang_t a = ref_detect(t, n - off, hint), b = tn_lang_detect(t, n - off, hint);
            if (strcmp(a.code, b.code) != 0 || a.confidence != b.confidence)
                fail_msg("text %d (%zu bytes): %s %.4f, want %s %.4f", it, n - off, b.code,
                         b.confidence, a.code, a.confidence);
            free(t);
        }
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spanish),          cmocka_unit_test(test_english),
        cmocka_unit_test(test_undetermined),     cmocka_unit_test(test_every_word),
        cmocka_unit_test(test_hint_breaks_ties), cmocka_unit_test(test_like_reference),
    };
    return cmocka_run_group_tests_name("lang", tests, NULL, NULL);
}
