/* Unit tests for common/src/devstack.c: mock cluster start, topics file, errors. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/devstack.h"
#include "taina/mem.h"

static void test_topics_from_file(void **state)
{
    (void)state;
    char err[512];
    tn_devstack_t *ds = tn_devstack_new(3, err, sizeof(err));
    assert_non_null(ds);
    const char *bs = tn_devstack_bootstrap(ds);
    assert_non_null(strstr(bs, "127.0.0.1:"));
    char *dir = tn_test_mkdtemp("devstack");
    char *path = tn_xasprintf("%s/topics.json", dir);
    tn_test_write_file(path, "{\"topics\":[{\"name\":\"a.one\",\"partitions\":4,"
                             "\"replication_factor\":5},{\"name\":\"b.two\",\"partitions\":1}]}");
    size_t n = 0;
    assert_int_equal(tn_devstack_create_topics_file(ds, path, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 2);
    /* an independent client sees them */
    char *cmd = tn_xasprintf("kcat -b %s -L -t a.one", bs), *out = NULL;
    assert_int_equal(tn_test_run(cmd, &out, 1), 0);
    assert_non_null(strstr(out, "topic \"a.one\" with 4 partitions"));
    free(out);
    free(cmd);
    tn_devstack_destroy(ds);
    tn_test_rmdir(dir);
    free(path);
    free(dir);
}

static void test_bad_topics_files(void **state)
{
    (void)state;
    char err[512];
    tn_devstack_t *ds = tn_devstack_new(1, err, sizeof(err));
    assert_non_null(ds);
    char *dir = tn_test_mkdtemp("devstack");
    char *path = tn_xasprintf("%s/t.json", dir);
    assert_int_equal(
        tn_devstack_create_topics_file(ds, "/nonexistent.json", NULL, err, sizeof(err)), TN_ERR_IO);
    tn_test_write_file(path, "{\"topics\": [");
    assert_int_equal(tn_devstack_create_topics_file(ds, path, NULL, err, sizeof(err)),
                     TN_ERR_PARSE);
    tn_test_write_file(path, "{\"topics\":[{\"name\":\"x\",\"partitions\":0}]}");
    assert_int_equal(tn_devstack_create_topics_file(ds, path, NULL, err, sizeof(err)),
                     TN_ERR_PARSE);
    assert_non_null(strstr(err, "partitions"));
    tn_test_write_file(path, "[1,2]");
    assert_int_equal(tn_devstack_create_topics_file(ds, path, NULL, err, sizeof(err)),
                     TN_ERR_PARSE);
    tn_devstack_destroy(ds);
    tn_devstack_destroy(NULL);
    tn_test_rmdir(dir);
    free(path);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_from_file),
        cmocka_unit_test(test_bad_topics_files),
    };
    return cmocka_run_group_tests_name("devstack", tests, NULL, NULL);
}
