/* Unit tests for common/src/log.c: JSON lines, levels, context, fields, debug contexts. */
#include "tn_test.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "taina/log.h"

static char *buf;
static size_t len;
static FILE *mem;

static int setup(void **state)
{
    (void)state;
    mem = open_memstream(&buf, &len);
    tn_log_set_output(mem);
    tn_log_init("testsvc", TN_LOG_INFO);
    tn_log_set_dbg(0);
    tn_log_ctx_clear();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tn_log_set_output(NULL);
    fclose(mem);
    free(buf);
    buf = NULL;
    return 0;
}

/* Parse every line of the captured output as JSON. */
static json_t *lines(void)
{
    fflush(mem);
    json_t *arr = json_array();
    char *copy = strndup(buf, len);
    for (char *line = copy, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        assert_non_null(next); /* every line ends with a newline */
        *next++ = '\0';
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        if (!j)
            fail_msg("not JSON: %s (%s)", line, err.text);
        json_array_append_new(arr, j);
    }
    free(copy);
    return arr;
}

static void test_line_shape(void **state)
{
    (void)state;
    TN_LOG(TN_LOG_INFO, "hello %s \"quoted\"\n%d", "world", 42);
    json_t *l = lines();
    assert_int_equal(json_array_size(l), 1);
    json_t *o = json_array_get(l, 0);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(o, "service")), "testsvc");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "hello world \"quoted\"\n42");
    const char *ts = json_string_value(json_object_get(o, "ts"));
    assert_non_null(ts);
    /* RFC 3339 UTC with milliseconds: 2026-11-24T05:45:29.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    json_decref(l);
}

static int evaluated;
static const char *side_effect(void)
{
    evaluated++;
    return "x";
}

static void test_levels(void **state)
{
    (void)state;
    evaluated = 0;
    TN_LOG(TN_LOG_DEBUG, "hidden %s", side_effect());
    assert_int_equal(evaluated, 0); /* arguments not evaluated below the level */
    TN_LOG(TN_LOG_WARN, "shown");
    tn_log_set_level(TN_LOG_ERROR);
    TN_LOG(TN_LOG_WARN, "hidden");
    TN_LOG(TN_LOG_ERROR, "shown too");
    json_t *l = lines();
    assert_int_equal(json_array_size(l), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "level")), "warn");
    json_decref(l);
    tn_log_level_t lv;
    assert_int_equal(tn_log_level_parse("DEBUG", &lv), TN_OK);
    assert_int_equal(lv, TN_LOG_DEBUG);
    assert_int_equal(tn_log_level_parse("chatty", &lv), TN_ERR_INVALID);
}

static void test_context_and_fields(void **state)
{
    (void)state;
    tn_log_ctx_set_trace("4bf92f3577b34da6a3ce929d0e0e4736");
    tn_log_ctx_set_request("req-1");
    tn_log_ctx_set_action("consuming tickets.raw");
    TN_LOGF(TN_LOG_INFO, TN_F({"topic", "tickets.raw"}, {"partition", "3"}), "record");
    tn_log_ctx_clear();
    TN_LOG(TN_LOG_INFO, "plain");
    json_t *l = lines();
    json_t *o = json_array_get(l, 0);
    assert_string_equal(json_string_value(json_object_get(o, "trace_id")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "req-1");
    assert_string_equal(json_string_value(json_object_get(o, "action")), "consuming tickets.raw");
    assert_string_equal(json_string_value(json_object_get(o, "topic")), "tickets.raw");
    assert_string_equal(json_string_value(json_object_get(o, "partition")), "3");
    assert_null(json_object_get(json_array_get(l, 1), "trace_id"));
    json_decref(l);
}

static void test_debug_contexts(void **state)
{
    (void)state;
    int mask;
    char err[128];
    assert_int_equal(tn_log_dbg_parse("kafka,http", &mask, err, sizeof(err)), TN_OK);
    assert_int_equal(mask, TN_DBG_KAFKA | TN_DBG_HTTP);
    assert_int_equal(tn_log_dbg_parse("all,-db", &mask, err, sizeof(err)), TN_OK);
    assert_true(mask & TN_DBG_KAFKA);
    assert_false(mask & TN_DBG_DB);
    assert_int_equal(tn_log_dbg_parse("kafak", &mask, err, sizeof(err)), TN_ERR_INVALID);
    assert_non_null(strstr(err, "kafak"));
    tn_log_set_dbg(TN_DBG_KAFKA);
    TN_DBG(TN_DBG_HTTP, "not shown");
    TN_DBG(TN_DBG_KAFKA, "shown");
    json_t *l = lines();
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "ctx")), "kafka");
    json_decref(l);
}

static void *writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        TN_LOG(TN_LOG_INFO, "line %d from a thread with a longer message to interleave", i);
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    (void)state;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, writer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    json_t *l = lines(); /* fails if any line is not whole JSON */
    assert_int_equal(json_array_size(l), 800);
    json_decref(l);
}

static void test_huge_message_stays_json(void **state)
{
    (void)state;
    char *big = malloc(200000);
    memset(big, 'a', 199999);
    big[199999] = '\0';
    TN_LOGF(TN_LOG_INFO, TN_F({"body", big}), "big");
    free(big);
    json_t *l = lines();
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_message_stays_json, setup, teardown),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
