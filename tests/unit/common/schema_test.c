/* Unit tests for common/src/schema.c beyond the official suite: errors, limits, threads. */
#include "tn_test.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/mem.h"
#include "taina/schema.h"

static tn_schema_t *compile(const char *text)
{
    char err[512];
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    tn_schema_t *s = tn_schema_compile(j, err, sizeof(err));
    json_decref(j);
    if (!s)
        fail_msg("compile: %s", err);
    return s;
}

static tn_err_t check(tn_schema_t *s, const char *doc, tn_schema_error_t *e, size_t *n)
{
    json_t *j = json_loads(doc, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    tn_err_t rc = tn_schema_validate(s, j, e, e ? 4 : 0, n);
    json_decref(j);
    return rc;
}

static const char *ticket = "{\"type\":\"object\",\"required\":[\"title\",\"tenant_id\"],"
                            "\"additionalProperties\":false,\"properties\":{"
                            "\"title\":{\"type\":\"string\",\"maxLength\":5},"
                            "\"tenant_id\":{\"type\":\"string\"},"
                            "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
                            "\"a/b~c\":{\"type\":\"integer\"}}}";

static void test_error_paths_and_keywords(void **state)
{
    (void)state;
    tn_schema_t *s = compile(ticket);
    tn_schema_error_t e[4];
    size_t n = 0;
    assert_int_equal(check(s, "{\"title\":\"ok\",\"tenant_id\":\"t\"}", e, &n), TN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(check(s, "{\"title\":\"ok\"}", e, &n), TN_ERR_SCHEMA);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].keyword, "required");
    assert_string_equal(e[0].instance_path, "");
    assert_non_null(strstr(e[0].message, "tenant_id"));
    assert_int_equal(check(s, "{\"title\":\"ok\",\"tenant_id\":\"t\",\"tags\":[\"a\",3]}", e, &n),
                     TN_ERR_SCHEMA);
    assert_string_equal(e[0].instance_path, "/tags/1");
    assert_string_equal(e[0].keyword, "type");
    assert_string_equal(e[0].schema_path, "#/properties/tags/items/type");
    char line[512];
    tn_schema_error_format(&e[0], line, sizeof(line));
    assert_string_equal(line, "/tags/1: type: integer, expected string "
                              "(#/properties/tags/items/type)");
    /* JSON Pointer escaping of ~ and / in a property name */
    assert_int_equal(check(s, "{\"title\":\"ok\",\"tenant_id\":\"t\",\"a/b~c\":\"x\"}", e, &n),
                     TN_ERR_SCHEMA);
    assert_string_equal(e[0].instance_path, "/a~1b~0c");
    /* several errors at once, capped by the caller's room */
    assert_int_equal(check(s, "{\"title\":\"toolong\",\"x\":1,\"y\":2,\"z\":3,\"w\":4}", e, &n),
                     TN_ERR_SCHEMA);
    assert_int_equal(n, 4);
    assert_int_equal(check(s, "[]", NULL, NULL), TN_ERR_SCHEMA);
    tn_schema_destroy(s);
}

/* A long non-ASCII key cut to fit the path and message buffers keeps whole characters, so the
 * error renders as JSON (found by the rag_body fuzzer: 422 without a body). */
static void test_error_cut_whole_characters(void **state)
{
    (void)state;
    tn_schema_t *s = compile(ticket);
    for (size_t prefix = 0; prefix < 2; prefix++) {
        char doc[1024];
        size_t o = (size_t)snprintf(doc, sizeof(doc),
                                    "{\"title\":\"ok\",\"tenant_id\":\"t\",\"tags\":{\"");
        if (prefix)
            doc[o++] = 'a';
        for (size_t i = 0; i < 200; i++)
            o += (size_t)snprintf(doc + o, sizeof(doc) - o, "\xc3\xa9");
        snprintf(doc + o, sizeof(doc) - o, "\":1}}");
        tn_schema_error_t e[4];
        size_t n = 0;
        assert_int_equal(check(s, doc, e, &n), TN_ERR_SCHEMA);
        json_t *j = tn_schema_error_json(&e[0]);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "keyword")), "type");
        json_decref(j);
    }
    json_t *key = json_object();
    char name[600];
    size_t len = 0;
    for (size_t i = 0; i < 250; i++)
        len += (size_t)snprintf(name + len, sizeof(name) - len, "%s", i % 2 ? "\xc3\xa9" : "x");
    json_object_set_new(key, "title", json_string("ok"));
    json_object_set_new(key, "tenant_id", json_string("t"));
    json_object_set_new(key, name, json_integer(1));
    tn_schema_error_t e[4];
    size_t n = 0;
    assert_int_equal(tn_schema_validate(s, key, e, 4, &n), TN_ERR_SCHEMA);
    json_t *j = tn_schema_error_json(&e[0]);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "keyword")), "additionalProperties");
    json_decref(j);
    json_decref(key);
    tn_schema_destroy(s);
}

static void test_code_points(void **state)
{
    (void)state;
    tn_schema_t *s = compile("{\"type\":\"string\",\"minLength\":4,\"maxLength\":4}");
    assert_int_equal(check(s, "\"cañó\"", NULL, NULL), TN_OK); /* 4 code points, 6 bytes */
    assert_int_equal(check(s, "\"\\ud83d\\ude00abc\"", NULL, NULL), TN_OK); /* emoji = 1 */
    assert_int_equal(check(s, "\"abcde\"", NULL, NULL), TN_ERR_SCHEMA);
    tn_schema_destroy(s);
    /* the bytes bound the code points: counted only when they cannot decide */
    s = compile("{\"type\":\"string\",\"maxLength\":3}");
    assert_int_equal(check(s, "\"abc\"", NULL, NULL), TN_OK);
    assert_int_equal(check(s, "\"\u00f1\u00f1\u00f1\"", NULL, NULL), TN_OK); /* 6 bytes, 3 */
    assert_int_equal(check(s, "\"\u00f1\u00f1\u00f1a\"", NULL, NULL), TN_ERR_SCHEMA);
    assert_int_equal(check(s, "\"abcd\"", NULL, NULL), TN_ERR_SCHEMA);
    tn_schema_destroy(s);
    s = compile("{\"type\":\"string\",\"minLength\":1}");
    assert_int_equal(check(s, "\"\"", NULL, NULL), TN_ERR_SCHEMA);
    assert_int_equal(check(s, "\"\u00f1\"", NULL, NULL), TN_OK);
    tn_schema_destroy(s);
    s = compile("{\"type\":\"string\",\"minLength\":2}");
    assert_int_equal(check(s, "\"\u00f1\"", NULL, NULL), TN_ERR_SCHEMA); /* 2 bytes, 1 */
    assert_int_equal(check(s, "\"ab\"", NULL, NULL), TN_OK);
    tn_schema_destroy(s);
}

static void test_compile_errors(void **state)
{
    (void)state;
    char err[512];
    json_t *j = json_loads("{\"properties\":{\"a\":{\"pattern\":\"(unclosed\"}}}", 0, NULL);
    assert_null(tn_schema_compile(j, err, sizeof(err)));
    assert_non_null(strstr(err, "(unclosed"));
    json_decref(j);
    j = json_loads("{\"$ref\":\"#/definitions/missing\"}", 0, NULL);
    assert_null(tn_schema_compile(j, err, sizeof(err)));
    assert_non_null(strstr(err, "#/definitions/missing"));
    json_decref(j);
    j = json_loads("[1]", 0, NULL);
    assert_null(tn_schema_compile(j, err, sizeof(err)));
    json_decref(j);
    assert_null(tn_schema_load("/nonexistent.schema.json", err, sizeof(err)));
    tn_schema_destroy(NULL);
}

static void test_catastrophic_pattern_is_bounded(void **state)
{
    (void)state;
    tn_schema_t *s = compile("{\"type\":\"string\",\"pattern\":\"^(a+)+$\"}");
    char doc[4200];
    doc[0] = '"';
    memset(doc + 1, 'a', 4096);
    memcpy(doc + 4097, "!\"", 3);
    tn_schema_error_t e[4];
    size_t n;
    int64_t t0 = tn_clock_mono_ms();
    assert_int_equal(check(s, doc, e, &n), TN_ERR_SCHEMA); /* an error, not a hang */
    assert_string_equal(e[0].keyword, "pattern");
    assert_true(tn_clock_mono_ms() - t0 < tn_test_timeout_ms(20000));
    tn_schema_destroy(s);
}

static void test_recursive_ref_depth(void **state)
{
    (void)state;
    /* a schema that refers to itself through a tree: deep but finite data validates */
    tn_schema_t *s = compile("{\"type\":\"object\",\"properties\":{\"child\":{\"$ref\":\"#\"}}}");
    assert_int_equal(check(s, "{\"child\":{\"child\":{\"child\":{}}}}", NULL, NULL), TN_OK);
    assert_int_equal(check(s, "{\"child\":{\"child\":3}}", NULL, NULL), TN_ERR_SCHEMA);
    tn_schema_destroy(s);
    /* an endless loop of references is cut by the depth limit */
    s = compile("{\"definitions\":{\"a\":{\"$ref\":\"#/definitions/b\"},\"b\":{\"$ref\":"
                "\"#/definitions/a\"}},\"$ref\":\"#/definitions/a\"}");
    tn_schema_error_t e[4];
    size_t n;
    assert_int_equal(check(s, "1", e, &n), TN_ERR_SCHEMA);
    assert_string_equal(e[0].keyword, "$ref");
    tn_schema_destroy(s);
}

static tn_schema_t *shared;

static void *work(void *arg)
{
    (void)arg;
    json_t *good = json_loads("{\"title\":\"ok\",\"tenant_id\":\"t\"}", 0, NULL);
    json_t *bad = json_loads("{\"title\":\"toolong\",\"tenant_id\":\"t\"}", 0, NULL);
    long wrong = 0;
    for (int i = 0; i < 5000; i++) {
        wrong += tn_schema_validate(shared, good, NULL, 0, NULL) != TN_OK;
        wrong += tn_schema_validate(shared, bad, NULL, 0, NULL) != TN_ERR_SCHEMA;
    }
    json_decref(good);
    json_decref(bad);
    return (void *)wrong;
}

static void test_threads(void **state)
{
    (void)state;
    shared = compile(ticket);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, work, NULL);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    tn_schema_destroy(shared);
}

static void test_formats(void **state)
{
    (void)state;
    tn_schema_t *s = compile("{\"type\":\"object\",\"properties\":{"
                             "\"id\":{\"format\":\"uuid\"},\"at\":{\"format\":\"date-time\"},"
                             "\"mail\":{\"format\":\"email\"},\"ip\":{\"format\":\"ipv4\"}}}");
    assert_int_equal(check(s,
                           "{\"id\":\"3f2b8c1e-9a4d-4c6e-8b7a-1d2e3f4a5b6c\","
                           "\"at\":\"2026-11-24T05:45:29.123Z\",\"mail\":\"ana@gob.do\","
                           "\"ip\":\"10.0.0.1\"}",
                           NULL, NULL),
                     TN_OK);
    const char *bad[] = {"{\"id\":\"3f2b8c1e9a4d4c6e8b7a1d2e3f4a5b6c\"}",
                         "{\"at\":\"2026-02-30T00:00:00Z\"}",
                         "{\"at\":\"2026-11-24 05:45:29Z\"}",
                         "{\"mail\":\"ana@@gob.do\"}",
                         "{\"ip\":\"10.0.0.256\"}",
                         "{\"ip\":\"010.0.0.1\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (check(s, bad[i], NULL, NULL) != TN_ERR_SCHEMA)
            fail_msg("should be invalid: %s", bad[i]);
    /* formats apply to strings only; unknown formats are annotations */
    assert_int_equal(check(s, "{\"id\":42}", NULL, NULL), TN_OK);
    tn_schema_destroy(s);
    s = compile("{\"format\":\"color\"}");
    assert_int_equal(check(s, "\"red\"", NULL, NULL), TN_OK);
    tn_schema_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_paths_and_keywords),
        cmocka_unit_test(test_code_points),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_catastrophic_pattern_is_bounded),
        cmocka_unit_test(test_recursive_ref_depth),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_error_cut_whole_characters),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
