/* The PostgreSQL wrapper against a real server (tests/support/pg.py starts a throwaway one):
 * parameters round-trip verbatim, errors map to tn_err_t, broken connections are replaced,
 * migrations apply once and a failing one leaves nothing. */
#include "tn_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/db.h"
#include "taina/mem.h"
#include "taina/metrics.h"

static char *g_dir;
static char *g_uri;

static int pg_start(void **state)
{
    (void)state;
    char *tmp = tn_test_mkdtemp("db");
    g_dir = tn_xasprintf("%s/pg", tmp);
    free(tmp);
    char *cmd = tn_xasprintf("/usr/bin/python3 tests/support/pg.py start %s", g_dir);
    char *out = NULL;
    int st = tn_test_run(cmd, &out, 0);
    free(cmd);
    if (st != 0 || !out) {
        fprintf(stderr, "pg.py start failed: %s\n", out ? out : "");
        free(out);
        return -1;
    }
    out[strcspn(out, "\n")] = '\0';
    g_uri = out;
    return 0;
}

static int pg_stop(void **state)
{
    (void)state;
    char *cmd = tn_xasprintf("/usr/bin/python3 tests/support/pg.py stop %s", g_dir);
    char *out = NULL;
    tn_test_run(cmd, &out, 1);
    free(out);
    free(cmd);
    char *parent = tn_xstrndup(g_dir, strlen(g_dir) - 3);
    tn_test_rmdir(parent);
    free(parent);
    free(g_dir);
    free(g_uri);
    return 0;
}

static tn_db_t *pool(tn_metrics_t *m, int size)
{
    char err[256];
    tn_db_opts_t o = {.conninfo = g_uri, .pool_size = size, .metrics = m};
    tn_db_t *db = tn_db_new(&o, err, sizeof(err));
    assert_non_null(db);
    return db;
}

static void test_bad_conninfo(void **state)
{
    (void)state;
    char err[256];
    tn_db_opts_t o = {.conninfo = "host=127.0.0.1 port='unterminated"};
    assert_null(tn_db_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "conninfo"));
    o.conninfo = "";
    assert_null(tn_db_new(&o, err, sizeof(err)));
}

static void test_params_verbatim(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    tn_db_t *db = pool(m, 2);
    tn_db_conn_t *c = NULL;
    tn_db_error_t e;
    assert_int_equal(tn_db_acquire(db, 1000, &c, &e), TN_OK);
    assert_int_equal(
        tn_db_exec(c, "CREATE TEMP TABLE t (id int PRIMARY KEY, s text)", 0, NULL, NULL, NULL, &e),
        TN_OK);
    const char *hostile[] = {"Robert'); DROP TABLE t;--", "\"quoted\" \\ back", "$1 $2 %s %n",
                             "ñandú ✓ 😀"};
    for (size_t i = 0; i < TN_ARRAY_LEN(hostile); i++) {
        char id[8];
        snprintf(id, sizeof(id), "%zu", i);
        const char *p[] = {id, hostile[i]};
        assert_int_equal(tn_db_exec(c, "INSERT INTO t VALUES ($1, $2)", 2, p, NULL, NULL, &e),
                         TN_OK);
        tn_db_res_t *res = NULL;
        assert_int_equal(tn_db_exec(c, "SELECT s FROM t WHERE id = $1", 1, p, NULL, &res, &e),
                         TN_OK);
        assert_int_equal(tn_db_res_rows(res), 1);
        assert_string_equal(tn_db_res_get(res, 0, 0), hostile[i]);
        tn_db_res_free(res);
    }
    /* NULL parameter, affected rows, column lookup */
    const char *pn[] = {"9", NULL};
    assert_int_equal(tn_db_exec(c, "INSERT INTO t VALUES ($1, $2)", 2, pn, NULL, NULL, &e), TN_OK);
    tn_db_res_t *res = NULL;
    assert_int_equal(tn_db_exec(c, "SELECT id, s FROM t WHERE id = 9", 0, NULL, NULL, &res, &e),
                     TN_OK);
    assert_true(tn_db_res_is_null(res, 0, tn_db_res_col(res, "s")));
    assert_int_equal(tn_db_res_col(res, "nope"), -1);
    tn_db_res_free(res);
    assert_int_equal(tn_db_exec(c, "UPDATE t SET s = 'x' WHERE id < 3", 0, NULL, NULL, &res, &e),
                     TN_OK);
    assert_int_equal(tn_db_res_affected(res), 3);
    tn_db_res_free(res);
    /* unique violation, invalid UTF-8, and a plain error */
    const char *dup[] = {"0", "again"};
    assert_int_equal(tn_db_exec(c, "INSERT INTO t VALUES ($1, $2)", 2, dup, NULL, NULL, &e),
                     TN_ERR_EXISTS);
    assert_string_equal(e.sqlstate, "23505");
    const char *bad[] = {"7", "caf\xe9 \xff"};
    assert_int_equal(tn_db_exec(c, "INSERT INTO t VALUES ($1, $2)", 2, bad, NULL, NULL, &e),
                     TN_ERR_INVALID);
    assert_false(e.retriable);
    assert_int_equal(tn_db_exec(c, "SELECT nope FROM t", 0, NULL, NULL, NULL, &e), TN_ERR);
    assert_null(strchr(e.msg, '\n'));
    tn_db_release(db, c);
    assert_true(
        tn_metric_get(tn_metrics_counter(m, "taina_db_queries_total", "", TN_LABELS("outcome")),
                      TN_LABELS("ok")) >= 10);
    tn_db_destroy(db);
    tn_metrics_destroy(m);
}

static void test_broken_connection_replaced(void **state)
{
    (void)state;
    tn_db_t *db = pool(NULL, 2);
    tn_db_conn_t *a = NULL, *b = NULL;
    tn_db_error_t e;
    assert_int_equal(tn_db_acquire(db, 1000, &a, &e), TN_OK);
    tn_db_res_t *res = NULL;
    assert_int_equal(tn_db_exec(a, "SELECT pg_backend_pid()::text", 0, NULL, NULL, &res, &e),
                     TN_OK);
    char *pid = tn_xstrdup(tn_db_res_get(res, 0, 0));
    tn_db_res_free(res);
    assert_int_equal(tn_db_acquire(db, 1000, &b, &e), TN_OK);
    const char *p[] = {pid};
    assert_int_equal(tn_db_exec(b, "SELECT pg_terminate_backend($1::int)", 1, p, NULL, NULL, &e),
                     TN_OK);
    /* the pool is full: a third acquire times out */
    tn_db_conn_t *c = NULL;
    assert_int_equal(tn_db_acquire(db, 50, &c, &e), TN_ERR_TIMEOUT);
    assert_int_equal(tn_db_exec(a, "SELECT 1", 0, NULL, NULL, NULL, &e), TN_ERR_UNAVAILABLE);
    assert_true(e.retriable);
    assert_false(tn_db_is_up(db));
    tn_db_release(db, a); /* closed, not pooled */
    assert_int_equal(tn_db_acquire(db, 1000, &a, &e), TN_OK);
    assert_int_equal(tn_db_exec(a, "SELECT 1", 0, NULL, NULL, NULL, &e), TN_OK);
    assert_true(tn_db_is_up(db));
    /* a connection given back inside a transaction is closed, not reused with its locks */
    assert_int_equal(tn_db_exec(b, "BEGIN", 0, NULL, NULL, NULL, &e), TN_OK);
    tn_db_release(db, b);
    assert_int_equal(tn_db_acquire(db, 1000, &b, &e), TN_OK);
    assert_int_equal(tn_db_exec(b, "BEGIN", 0, NULL, NULL, NULL, &e), TN_OK);
    assert_int_equal(tn_db_exec(b, "ROLLBACK", 0, NULL, NULL, NULL, &e), TN_OK);
    tn_db_release(db, a);
    tn_db_release(db, b);
    free(pid);
    tn_db_destroy(db);

    /* nothing listens there: unavailable, retriable */
    char uri[128];
    snprintf(uri, sizeof(uri), "postgresql://postgres@127.0.0.1:%d/x?connect_timeout=2",
             tn_test_free_port());
    char err[128];
    tn_db_opts_t o = {.conninfo = uri};
    db = tn_db_new(&o, err, sizeof(err));
    assert_int_equal(tn_db_acquire(db, 100, &a, &e), TN_ERR_UNAVAILABLE);
    assert_true(e.retriable);
    assert_false(tn_db_is_up(db));
    tn_db_destroy(db);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *p = tn_xasprintf("%s/%s", dir, name);
    assert_int_equal(tn_test_write_file(p, text), 0);
    free(p);
}

static void test_migrations(void **state)
{
    (void)state;
    char *dir = tn_test_mkdtemp("migr");
    write_file(dir, "0001_a.sql",
               "CREATE TABLE m1 (id int PRIMARY KEY);\nINSERT INTO m1 VALUES (1);\n");
    write_file(dir, "0002_b.sql", "ALTER TABLE m1 ADD COLUMN s text;\n");
    write_file(dir, "README.md", "not a migration");
    tn_db_t *db = pool(NULL, 2);
    tn_db_conn_t *c = NULL;
    tn_db_error_t e;
    char err[256];
    int n = -1;
    assert_int_equal(tn_db_acquire(db, 1000, &c, &e), TN_OK);
    assert_int_equal(tn_db_migrate(c, dir, 42, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(tn_db_migrate(c, dir, 42, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 0);
    /* a failing file: its first statement is not kept, the error names it */
    write_file(dir, "0003_c.sql", "INSERT INTO m1 VALUES (2);\nSELECT * FROM missing_table;\n");
    assert_int_equal(tn_db_migrate(c, dir, 42, &n, err, sizeof(err)), TN_ERR);
    assert_non_null(strstr(err, "0003_c.sql"));
    tn_db_res_t *res = NULL;
    assert_int_equal(tn_db_exec(c, "SELECT count(*) FROM m1", 0, NULL, NULL, &res, &e), TN_OK);
    assert_string_equal(tn_db_res_get(res, 0, 0), "1");
    tn_db_res_free(res);
    assert_int_equal(
        tn_db_exec(c, "SELECT name FROM schema_migrations ORDER BY name", 0, NULL, NULL, &res, &e),
        TN_OK);
    assert_int_equal(tn_db_res_rows(res), 2);
    assert_string_equal(tn_db_res_get(res, 1, 0), "0002_b.sql");
    tn_db_res_free(res);
    /* the advisory lock was released: another session can take it at once */
    tn_db_conn_t *c2 = NULL;
    assert_int_equal(tn_db_acquire(db, 1000, &c2, &e), TN_OK);
    assert_int_equal(
        tn_db_exec(c2, "SELECT pg_try_advisory_lock(42)::text", 0, NULL, NULL, &res, &e), TN_OK);
    assert_string_equal(tn_db_res_get(res, 0, 0), "true");
    tn_db_res_free(res);
    tn_db_release(db, c2);
    assert_int_equal(tn_db_migrate(c, "/nonexistent-dir", 42, &n, err, sizeof(err)), TN_ERR_IO);
    tn_db_release(db, c);
    tn_db_destroy(db);
    tn_test_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_conninfo),
        cmocka_unit_test(test_params_verbatim),
        cmocka_unit_test(test_broken_connection_replaced),
        cmocka_unit_test(test_migrations),
    };
    return cmocka_run_group_tests(tests, pg_start, pg_stop);
}
