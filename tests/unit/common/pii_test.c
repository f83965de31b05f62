/* Unit tests for common/src/pii.c: placeholders, checksums, rule files, hostile input. */
#include "tn_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/mem.h"
#include "taina/pii.h"

static tn_pii_t *pii;

static int setup(void **state)
{
    (void)state;
    char err[256];
    pii = tn_pii_new(NULL, NULL, err, sizeof(err));
    if (!pii)
        fail_msg("default rules: %s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tn_pii_destroy(pii);
    return 0;
}

static size_t type_of(const char *name)
{
    for (size_t i = 0; i < tn_pii_ntypes(pii); i++)
        if (strcmp(tn_pii_type_name(pii, i), name) == 0)
            return i;
    fail_msg("no type %s", name);
    return 0;
}

/* Redact @p in and compare with @p want; return the counts in @p counts (8 slots). */
static void redact_eq(const char *in, const char *want, size_t *counts)
{
    tn_buf_t out;
    char err[256];
    tn_buf_init(&out, 1 << 20);
    memset(counts, 0, 8 * sizeof(size_t));
    assert_int_equal(tn_pii_redact(pii, in, strlen(in), &out, counts, err, sizeof(err)), TN_OK);
    assert_string_equal(out.data, want);
    tn_buf_cleanup(&out);
}

static void test_spanish_ticket(void **state)
{
    (void)state;
    size_t c[8];
    redact_eq("Hola, soy Ana Pérez, cédula 001-1234567-8. Mi correo es ana.perez@correo.gob.do "
              "y mi teléfono (809) 555-1234. Quiero renovar el pasaporte.",
              "Hola, soy Ana Pérez, cédula [CEDULA]. Mi correo es [EMAIL] y mi teléfono [PHONE]. "
              "Quiero renovar el pasaporte.",
              c);
    assert_int_equal(c[type_of("CEDULA")], 1);
    assert_int_equal(c[type_of("EMAIL")], 1);
    assert_int_equal(c[type_of("PHONE")], 1);
}

/* A number glued to a redacted one gets the context its rule wanted only once the first is a
 * placeholder: the rules run again over their own output (found by fuzz/pii). */
static void test_redaction_is_a_fixpoint(void **state)
{
    (void)state;
    size_t c[8];
    redact_eq("llame al 91 2100 0418 4502+34911234567 hoy", "llame al [PHONE][PHONE] hoy", c);
    assert_int_equal(c[type_of("PHONE")], 2);
    redact_eq("[PHONE][PHONE]", "[PHONE][PHONE]", c);
    assert_int_equal(c[type_of("PHONE")], 0);
}

static void test_english_ticket_cards_and_iban(void **state)
{
    (void)state;
    size_t c[8];
    /* 4111 1111 1111 1111 passes Luhn; 4111 1111 1111 1112 does not and stays */
    redact_eq("Paid with card 4111 1111 1111 1111, refund to IBAN ES91 2100 0418 4502 0005 1332 "
              "please. Order 4111 1111 1111 1112 is not a card. Call +34 612 345 678.",
              "Paid with card [CARD], refund to IBAN [IBAN] please. Order 4111 1111 1111 1112 is "
              "not a card. Call [PHONE].",
              c);
    assert_int_equal(c[type_of("CARD")], 1);
    assert_int_equal(c[type_of("IBAN")], 1);
    assert_int_equal(c[type_of("PHONE")], 1);
}

static void test_not_pii(void **state)
{
    (void)state;
    size_t c[8];
    const char *plain = "Office hours: 8:00-15:30, 24/11/2026. Fee RD$ 2,500. Form 1040. "
                        "Ticket 12345678. Year 2026-11-24.";
    redact_eq(plain, plain, c);
    for (size_t i = 0; i < tn_pii_ntypes(pii); i++)
        assert_int_equal(c[i], 0);
}

static void test_checksums(void **state)
{
    (void)state;
    assert_true(tn_pii_luhn_ok("4111-1111-1111-1111", 19));
    assert_true(tn_pii_luhn_ok("5500 0000 0000 0004", 19));
    assert_false(tn_pii_luhn_ok("4111 1111 1111 1112", 19));
    assert_false(tn_pii_luhn_ok("0000", 4)); /* too short */
    assert_true(tn_pii_iban_ok("GB82 WEST 1234 5698 7654 32", 27));
    assert_true(tn_pii_iban_ok("DE89370400440532013000", 22));
    assert_false(tn_pii_iban_ok("GB82 WEST 1234 5698 7654 33", 27));
    assert_false(tn_pii_iban_ok("12", 2));
}

static void test_rule_file_errors(void **state)
{
    (void)state;
    char err[256];
    assert_null(tn_pii_new("EMAIL none\n", "r", err, sizeof(err)));
    assert_non_null(strstr(err, "line 1"));
    assert_null(tn_pii_new("# c\nEMAIL maybe x+\n", "r", err, sizeof(err)));
    assert_non_null(strstr(err, "line 2"));
    assert_null(tn_pii_new("EMAIL none (unclosed\n", "r", err, sizeof(err)));
    assert_non_null(strstr(err, "pattern error"));
    assert_null(tn_pii_new("email none x\n", "r", err, sizeof(err)));
    assert_null(tn_pii_new("# only comments\n\n", "r", err, sizeof(err)));
    assert_non_null(strstr(err, "no rules"));
    assert_null(tn_pii_load("/nonexistent/pii.rules", err, sizeof(err)));
    /* a custom file: two rules of one type share a counter */
    tn_pii_t *p =
        tn_pii_new("ID none \\bX-\\d{4}\\b\nID none \\bY-\\d{4}\\b\n", "r", err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(tn_pii_ntypes(p), 1);
    tn_buf_t out;
    tn_buf_init(&out, 1024);
    size_t c[1] = {0};
    assert_int_equal(tn_pii_redact(p, "a X-1234 b Y-9876", 17, &out, c, err, sizeof(err)), TN_OK);
    assert_string_equal(out.data, "a [ID] b [ID]");
    assert_int_equal(c[0], 2);
    tn_buf_cleanup(&out);
    tn_pii_destroy(p);
}

static void test_hostile_input_is_bounded(void **state)
{
    (void)state;
    /* a naive email pattern backtracks quadratically on this; ours must stay fast and exact */
    size_t n = 200000;
    char *s = tn_xmalloc(n + 1);
    memset(s, 'x', n);
    s[n] = '\0';
    tn_buf_t out;
    char err[256];
    tn_buf_init(&out, n + 16);
    int64_t t0 = tn_clock_mono_ms();
    assert_int_equal(tn_pii_redact(pii, s, n, &out, NULL, err, sizeof(err)), TN_OK);
    assert_int_equal(out.len, n);
    assert_true(tn_clock_mono_ms() - t0 < tn_test_timeout_ms(20000)); /* generous bound */
    tn_buf_cleanup(&out);
    /* a user rule that backtracks catastrophically hits the match limit: an error, no hang */
    tn_pii_t *bad = tn_pii_new("BAD none (a+)+$\n", "bad", err, sizeof(err));
    assert_non_null(bad);
    memset(s, 'a', 40);
    s[40] = '!';
    s[41] = '\0';
    tn_buf_init(&out, 1024);
    assert_int_equal(tn_pii_redact(bad, s, 41, &out, NULL, err, sizeof(err)), TN_ERR_INVALID);
    assert_non_null(strstr(err, "BAD"));
    tn_buf_cleanup(&out);
    tn_pii_destroy(bad);
    /* invalid UTF-8 does not break matching */
    const char *mixed = "mail \xff\xfe bob@example.org \xc3";
    tn_buf_init(&out, 1024);
    assert_int_equal(tn_pii_redact(pii, mixed, strlen(mixed), &out, NULL, err, sizeof(err)), TN_OK);
    assert_non_null(strstr(out.data, "[EMAIL]"));
    tn_buf_cleanup(&out);
    /* the output cap is respected */
    tn_buf_init(&out, 8);
    assert_int_equal(tn_pii_redact(pii, "hello world", 11, &out, NULL, err, sizeof(err)),
                     TN_ERR_TOO_LARGE);
    tn_buf_cleanup(&out);
    free(s);
}

static void *redact_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++) {
        tn_buf_t out;
        char err[128];
        size_t c[8] = {0};
        tn_buf_init(&out, 4096);
        const char *t = "write to juan@example.com or call 809-555-1234 now";
        if (tn_pii_redact(pii, t, strlen(t), &out, c, err, sizeof(err)) != TN_OK ||
            strcmp(out.data, "write to [EMAIL] or call [PHONE] now") != 0) {
            tn_buf_cleanup(&out);
            return (void *)1;
        }
        tn_buf_cleanup(&out);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, redact_many, NULL);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spanish_ticket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_english_ticket_cards_and_iban, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_pii, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redaction_is_a_fixpoint, setup, teardown),
        cmocka_unit_test(test_checksums),
        cmocka_unit_test(test_rule_file_errors),
        cmocka_unit_test_setup_teardown(test_hostile_input_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests_name("pii", tests, NULL, NULL);
}
