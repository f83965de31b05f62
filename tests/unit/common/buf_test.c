/* Unit tests for common/src/buf.c: capped growth, formatting, JSON strings. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/buf.h"

static void test_grow_and_cap(void **state)
{
    (void)state;
    tn_buf_t b;
    tn_buf_init(&b, 10);
    assert_int_equal(tn_buf_adds(&b, "hello"), TN_OK);
    assert_int_equal(tn_buf_addf(&b, "%d", 1234), TN_OK);
    assert_string_equal(b.data, "hello1234");
    assert_int_equal(tn_buf_adds(&b, "xy"), TN_ERR_TOO_LARGE);
    assert_string_equal(b.data, "hello1234"); /* unchanged on failure */
    assert_int_equal(tn_buf_addf(&b, "%s", "ab"), TN_ERR_TOO_LARGE);
    assert_int_equal(tn_buf_adds(&b, "!"), TN_OK);
    assert_int_equal(b.len, 10);
    tn_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    tn_buf_cleanup(&b);
    tn_buf_cleanup(&b); /* twice is fine */
}

static void test_uint(void **state)
{
    (void)state;
    static const unsigned long long v[] = {0, 7, 10, 99, 100, 1234567890, 18446744073709551615ull};
    tn_buf_t b, want;
    tn_buf_init(&b, 4096);
    tn_buf_init(&want, 4096);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(tn_buf_add_uint(&b, v[i]), TN_OK);
        tn_buf_addf(&want, "%llu", v[i]);
        tn_buf_add(&b, ",", 1);
        tn_buf_add(&want, ",", 1);
    }
    assert_string_equal(b.data, want.data);
    tn_buf_cleanup(&b);
    tn_buf_cleanup(&want);
    tn_buf_init(&b, 3); /* the cap holds: unchanged on failure */
    assert_int_equal(tn_buf_add_uint(&b, 1000), TN_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0);
    assert_int_equal(tn_buf_add_uint(&b, 999), TN_OK);
    assert_string_equal(b.data, "999");
    tn_buf_cleanup(&b);
}

static void test_big_growth(void **state)
{
    (void)state;
    tn_buf_t b;
    tn_buf_init(&b, 1 << 20);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(tn_buf_add(&b, "0123456789", 10), TN_OK);
    assert_int_equal(b.len, 100000);
    size_t len;
    char *s = tn_buf_detach(&b, &len);
    assert_int_equal(len, 100000);
    assert_int_equal(s[99999], '9');
    assert_null(b.data);
    free(s);
}

/* A reservation makes room once: appends within it keep the allocation; past the maximum it
 * fails and leaves the buffer as it was. */
static void test_reserve(void **state)
{
    (void)state;
    tn_buf_t b;
    tn_buf_init(&b, 100);
    assert_int_equal(tn_buf_reserve(&b, 101), TN_ERR_TOO_LARGE);
    assert_null(b.data);
    assert_int_equal(tn_buf_reserve(&b, 90), TN_OK);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    char *at = b.data;
    for (int i = 0; i < 9; i++)
        assert_int_equal(tn_buf_add(&b, "0123456789", 10), TN_OK);
    assert_ptr_equal(b.data, at);
    assert_int_equal(b.len, 90);
    assert_int_equal(tn_buf_reserve(&b, 11), TN_ERR_TOO_LARGE);
    assert_int_equal(tn_buf_reserve(&b, 10), TN_OK);
    assert_int_equal(b.len, 90);
    assert_memory_equal(b.data + 80, "0123456789", 11);
    tn_buf_cleanup(&b);
}

static void test_json_string(void **state)
{
    (void)state;
    tn_buf_t b;
    tn_buf_init(&b, 100);
    assert_int_equal(tn_buf_add_json_str(&b, "a\"b\\c\n\t\x01é"), TN_OK);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001é\"");
    tn_buf_reset(&b);
    b.max = 5;
    assert_int_equal(tn_buf_add_json_str(&b, "too long"), TN_ERR_TOO_LARGE);
    assert_int_equal(b.len, 0); /* all or nothing */
    tn_buf_cleanup(&b);
}

/* An error message may quote hostile bytes (jansson's "near '...'" cuts a character in two):
 * the literal must still be valid UTF-8, so a bad byte becomes U+FFFD (found by fuzz/rag_body). */
static void test_json_string_invalid_utf8(void **state)
{
    (void)state;
    tn_buf_t b;
    tn_buf_init(&b, 1000);
    assert_int_equal(tn_buf_add_json_str(&b, "near '\\\xc3' \xff\xfe ok \xe2\x82\xac \xed\xa0\x80 "
                                             "\xc0\xaf \xf4\x90\x80\x80 \xf0\x9f\x98\x80 \xe2\x82"),
                     TN_OK);
    assert_string_equal(b.data, "\"near '\\\\\\ufffd' \\ufffd\\ufffd ok \xe2\x82\xac "
                                "\\ufffd\\ufffd\\ufffd \\ufffd\\ufffd "
                                "\\ufffd\\ufffd\\ufffd\\ufffd \xf0\x9f\x98\x80 \\ufffd\\ufffd\"");
    tn_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_and_cap), cmocka_unit_test(test_uint),
        cmocka_unit_test(test_big_growth),   cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_json_string),  cmocka_unit_test(test_json_string_invalid_utf8),
    };
    return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
