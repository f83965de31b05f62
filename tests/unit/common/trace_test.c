/* Unit tests for common/src/trace.c: W3C traceparent parse/format/continue, UUIDv4. */
#include "tn_test.h"

#include <string.h>

#include "taina/trace.h"

static const char *good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void test_parse_valid(void **state)
{
    (void)state;
    tn_trace_t t;
    assert_int_equal(tn_trace_parse(good, strlen(good), &t), TN_OK);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.span_id, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    char out[64];
    assert_string_equal(tn_trace_format(&t, out, sizeof(out)), good);
    /* a future version with an extra field is accepted */
    const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
    assert_int_equal(tn_trace_parse(v1, strlen(v1), &t), TN_OK);
    assert_int_equal(t.flags, 0);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      /* short */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 with extra */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  /* junk after flags */
    };
    tn_trace_t t;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(tn_trace_parse(bad[i], strlen(bad[i]), &t), TN_ERR_PARSE);
    assert_int_equal(tn_trace_parse(NULL, 0, &t), TN_ERR_PARSE);
}

static void test_continue_and_new(void **state)
{
    (void)state;
    tn_trace_t t, u;
    assert_int_equal(tn_trace_continue(good, strlen(good), &t), 1);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_not_equal(t.span_id, "00f067aa0ba902b7"); /* a new hop */
    assert_int_equal(tn_trace_continue("garbage", 7, &u), 0);
    assert_int_equal(strlen(u.trace_id), 32);
    assert_string_not_equal(u.trace_id, t.trace_id);
    char out[64];
    tn_trace_format(&u, out, sizeof(out));
    tn_trace_t back;
    assert_int_equal(tn_trace_parse(out, strlen(out), &back), TN_OK); /* what we make parses */
    assert_string_equal(back.trace_id, u.trace_id);
    tn_trace_child(&u, &back);
    assert_string_equal(back.trace_id, u.trace_id);
    assert_int_equal(back.flags, 1);
}

static void test_uuid4(void **state)
{
    (void)state;
    char a[37], b[37];
    tn_uuid4(a, sizeof(a));
    tn_uuid4(b, sizeof(b));
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '4');           /* version */
    assert_non_null(strchr("89ab", a[19])); /* variant */
    assert_int_equal(a[8], '-');
    assert_string_not_equal(a, b);
}

/* RFC 9562 example (as Python's uuid.uuid5(NAMESPACE_DNS, "www.example.com")). */
static void test_uuid5(void **state)
{
    (void)state;
    char out[37];
    assert_non_null(tn_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com", 15, out));
    assert_string_equal(out, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
    assert_null(tn_uuid5("not-a-uuid", "x", 1, out));
    assert_null(tn_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430cz", "x", 1, out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_continue_and_new),
        cmocka_unit_test(test_uuid4),
        cmocka_unit_test(test_uuid5),
    };
    return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
