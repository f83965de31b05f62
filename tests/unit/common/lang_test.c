/* Unit tests for common/src/lang.c: Spanish, English, undetermined. */
#include "tn_test.h"

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
        cmocka_unit_test(test_spanish),
        cmocka_unit_test(test_english),
        cmocka_unit_test(test_undetermined),
        cmocka_unit_test(test_hint_breaks_ties),
    };
    return cmocka_run_group_tests_name("lang", tests, NULL, NULL);
}
