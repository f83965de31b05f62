/* Unit tests for common/src/trace.c: W3C traceparent parse/format/continue, UUIDv4. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ids come from a per-thread pool of random bytes: many of them, across refills, are all
 * different, well formed, and a formatted traceparent is cut as snprintf() would cut it. */
static void test_ids_many(void **state)
{
    (void)state;
    enum { N = 3000 };
    char **ids = calloc(2 * N, sizeof(*ids));
    for (size_t i = 0; i < N; i++) {
        tn_trace_t t;
        tn_trace_new(&t);
        char out[64];
        tn_trace_format(&t, out, sizeof(out));
        assert_int_equal(strlen(out), TN_TRACE_LEN);
        tn_trace_t back;
        assert_int_equal(tn_trace_parse(out, strlen(out), &back), TN_OK);
        ids[2 * i] = strdup(t.trace_id);
        ids[2 * i + 1] = malloc(37);
        tn_uuid4(ids[2 * i + 1], 37);
    }
    qsort(ids, 2 * N, sizeof(*ids), cmp_str);
    for (size_t i = 1; i < 2 * N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    for (size_t i = 0; i < 2 * N; i++)
        free(ids[i]);
    free(ids);
    tn_trace_t t;
    assert_int_equal(tn_trace_parse(good, strlen(good), &t), TN_OK);
    char small[10];
    assert_string_equal(tn_trace_format(&t, small, sizeof(small)), "00-4bf92f");
}

/* A forked child does not repeat the ids its parent hands out next (a few forks in a row, as
 * one of them may fall where the parent's pool runs out and both would draw anew anyway). */
static void test_ids_fork(void **state)
{
    (void)state;
    for (int round = 0; round < 8; round++) {
        char mine[37], child[37] = {0};
        int fd[2];
        assert_int_equal(pipe(fd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            char c[37];
            tn_uuid4(c, sizeof(c));
            _exit(write(fd[1], c, 37) == 37 ? 0 : 1);
        }
        close(fd[1]);
        tn_uuid4(mine, sizeof(mine));
        assert_int_equal(read(fd[0], child, 37), 37);
        close(fd[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_string_not_equal(child, mine);
    }
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
        cmocka_unit_test(test_ids_many),
        cmocka_unit_test(test_ids_fork),
        cmocka_unit_test(test_uuid5),
    };
    return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
