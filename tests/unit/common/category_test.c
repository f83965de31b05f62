/* Unit tests for common/src/category.c: folding, rules, defaults, errors. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/category.h"

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
    assert_int_equal(r.score, 3); /* phrase of two words + one word */
    assert_string_equal(classify(c, "delta", "es").priority, "high");
    tn_category_destroy(c);
    assert_null(tn_category_new("a normal\n", "t", err, sizeof(err)));
    assert_non_null(strstr(err, "t line 1"));
    assert_null(tn_category_new("# x\na normal fr bonjour\n", "t", err, sizeof(err)));
    assert_non_null(strstr(err, "line 2"));
    assert_null(tn_category_new("a normal es , ,\n", "t", err, sizeof(err)));
    assert_non_null(strstr(err, "no keywords"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_custom_rules_and_errors),
    };
    return cmocka_run_group_tests_name("category", tests, NULL, NULL);
}
