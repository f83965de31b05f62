/* Unit tests for common/src/lang.c: Spanish, English, undetermined. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/lang.h"

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

/* A long text is judged on its first TN_LANG_SAMPLE bytes: Spanish there and English after
 * it is Spanish, whatever the length of the rest; a word across the limit is read whole. */
static void test_sample(void **state)
{
    (void)state;
    const char *es = "Quiero renovar el pasaporte y necesito una cita para la semana que viene. ";
    const char *en = "I would like to know when the office is open and what I need to bring. ";
    size_t cap = 4 * TN_LANG_SAMPLE, n = 0;
    char *t = malloc(cap);
    while (n < TN_LANG_SAMPLE) {
        memcpy(t + n, es, strlen(es));
        n += strlen(es);
    }
    size_t es_end = n;
    while (n + strlen(en) < cap) {
        memcpy(t + n, en, strlen(en));
        n += strlen(en);
    }
    tn_lang_t all = tn_lang_detect(t, n, NULL), head = tn_lang_detect(t, es_end, NULL);
    assert_string_equal(all.code, "es");
    assert_true(all.confidence == head.confidence); /* nothing after the sample counted */
    /* English from the start: English, though most of the sample's successors are Spanish */
    tn_lang_t en_first = tn_lang_detect(t + es_end, n - es_end, NULL);
    assert_string_equal(en_first.code, "en");
    /* "the" ends exactly at the limit or runs past it: the word counts the same */
    memset(t, ' ', TN_LANG_SAMPLE + 8);
    memcpy(t + TN_LANG_SAMPLE - 3, "the", 3);
    memcpy(t + TN_LANG_SAMPLE - 40, "and the of", 10);
    tn_lang_t a = tn_lang_detect(t, TN_LANG_SAMPLE + 8, NULL);
    memcpy(t + TN_LANG_SAMPLE - 3, " the", 4);
    tn_lang_t b = tn_lang_detect(t, TN_LANG_SAMPLE + 8, NULL);
    assert_string_equal(a.code, "en");
    assert_string_equal(b.code, "en");
    assert_true(a.confidence == b.confidence);
    free(t);
}

static void test_hint_breaks_ties(void **state)
{
    (void)state;
    const char *mixed = "the passport and de la oficina";
    assert_string_equal(tn_lang_detect(mixed, strlen(mixed), "es").code, "es");
    assert_string_equal(tn_lang_detect(mixed, strlen(mixed), "en").code, "en");
    assert_string_equal(tn_lang_detect(mixed, strlen(mixed), NULL).code, "und");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spanish),          cmocka_unit_test(test_english),
        cmocka_unit_test(test_undetermined),     cmocka_unit_test(test_sample),
        cmocka_unit_test(test_hint_breaks_ties),
    };
    return cmocka_run_group_tests_name("lang", tests, NULL, NULL);
}
