/* Unit tests for services/rag/sources.c (TAINA_RAG_SOURCES) and the filters.source part of
 * rag_request_parse (services/rag/http.c), with the real request schemas. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "../../../../services/rag/rag.h"
#include "taina/app.h"
#include "taina/mem.h"

static tn_schema_t *schema(const char *name)
{
    char err[512];
    char *rel = tn_xasprintf("schemas/http/%s", name);
    char *path = tn_app_data_path(rel);
    tn_schema_t *s = tn_schema_load(path, err, sizeof(err));
    assert_non_null(s);
    free(path);
    free(rel);
    return s;
}

/* Parse @p body with both request schemas; the status (both must agree), the request of the
 * search schema in @p out (json_decref(out->doc) when 0). */
static int parse(const char *body, rag_request_t *out)
{
    static const char *const names[] = {"rag.query.request.schema.json",
                                        "rag.search.request.schema.json"};
    int status[2];
    for (size_t i = 0; i < 2; i++) {
        tn_schema_t *s = schema(names[i]);
        json_t *err = NULL;
        rag_request_t rq;
        status[i] = rag_request_parse(s, body, strlen(body), &rq, &err);
        if (status[i]) {
            assert_null(rq.doc);
            assert_non_null(err);
            json_decref(err);
        } else if (i == 0) {
            json_decref(rq.doc);
        } else {
            *out = rq;
        }
        tn_schema_destroy(s);
    }
    assert_int_equal(status[0], status[1]);
    return status[1];
}

static void test_request_source(void **state)
{
    TN_UNUSED(state);
    rag_request_t rq;
    assert_int_equal(parse("{\"question\":\"agua\"}", &rq), 0);
    assert_int_equal(rq.q.filter.nsources, 0);
    json_decref(rq.doc);

    assert_int_equal(parse("{\"question\":\"agua\",\"filters\":{\"source\":\"import\"}}", &rq), 0);
    assert_int_equal(rq.q.filter.nsources, 1);
    assert_string_equal(rq.q.filter.sources[0], "import");
    json_decref(rq.doc);

    assert_int_equal(parse("{\"question\":\"agua\",\"filters\":{\"lang\":\"es\",\"source\":"
                           "[\"import\",\"web\",\"email\"]}}",
                           &rq),
                     0);
    assert_int_equal(rq.q.filter.nsources, 3);
    assert_string_equal(rq.q.filter.sources[0], "import");
    assert_string_equal(rq.q.filter.sources[2], "email");
    assert_string_equal(rq.q.filter.lang, "es");
    json_decref(rq.doc);

    assert_int_equal(parse("{\"question\":\"q\",\"filters\":{\"source\":[\"a\",\"b\",\"c\",\"d\","
                           "\"e\",\"f\",\"g\",\"h\"]}}",
                           &rq),
                     0);
    assert_int_equal(rq.q.filter.nsources, TN_VEC_MAX_SOURCES);
    assert_string_equal(rq.q.filter.sources[7], "h");
    json_decref(rq.doc);

    static const char *const bad[] = {
        "{\"question\":\"q\",\"filters\":{\"source\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\","
        "\"h\",\"i\"]}}",
        "{\"question\":\"q\",\"filters\":{\"source\":[]}}",
        "{\"question\":\"q\",\"filters\":{\"source\":\"\"}}",
        "{\"question\":\"q\",\"filters\":{\"source\":[\"\"]}}",
        "{\"question\":\"q\",\"filters\":{\"source\":7}}",
        "{\"question\":\"q\",\"filters\":{\"source\":[7]}}",
        "{\"question\":\"q\",\"filters\":{\"source\":null}}",
        "{\"question\":\"q\",\"filters\":{\"source\":"
        "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxx\"}}", /* 65 */
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++)
        assert_int_equal(parse(bad[i], &rq), 422);
}

static void test_sources_parse(void **state)
{
    TN_UNUSED(state);
    char err[256], *buf = NULL;
    const char *out[TN_VEC_MAX_SOURCES];
    size_t n = 99;
    assert_int_equal(rag_sources_parse("", &buf, out, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 0);
    assert_null(buf);
    assert_int_equal(rag_sources_parse(" \t", &buf, out, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(rag_sources_parse(NULL, &buf, out, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 0);

    assert_int_equal(rag_sources_parse(" import , web\t", &buf, out, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], "import");
    assert_string_equal(out[1], "web");
    free(buf);
    assert_int_equal(rag_sources_parse("a,b,c,d,e,f,g,h", &buf, out, &n, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 8);
    free(buf);

    static const char *const bad[] = {"import,,web",
                                      "import,",
                                      ",web",
                                      " , ",
                                      "a,b,c,d,e,f,g,h,i",
                                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                      "xxxxxxxxxxxxxxxxx"};
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        buf = NULL;
        assert_int_equal(rag_sources_parse(bad[i], &buf, out, &n, err, sizeof(err)), TN_ERR_CONFIG);
        assert_null(buf);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err, "TAINA_RAG_SOURCES: "));
    }
}

static void test_sources_apply(void **state)
{
    TN_UNUSED(state);
    static const char *const allowed[] = {"import", "web"};
    char msg[512] = "";
    rag_filter_t f = {.tenant_id = "A"};
    assert_int_equal(rag_sources_apply(allowed, 0, &f, msg, sizeof(msg)), 0);
    assert_int_equal(f.nsources, 0); /* nothing configured: every source */

    assert_int_equal(rag_sources_apply(allowed, 2, &f, msg, sizeof(msg)), 0);
    assert_int_equal(f.nsources, 2); /* no request filter: the configured set */
    assert_string_equal(f.sources[1], "web");

    f = (rag_filter_t){.tenant_id = "A", .sources = {"web"}, .nsources = 1};
    assert_int_equal(rag_sources_apply(allowed, 2, &f, msg, sizeof(msg)), 0);
    assert_int_equal(f.nsources, 1); /* a subset stays as asked */
    assert_string_equal(f.sources[0], "web");

    f = (rag_filter_t){.tenant_id = "A", .sources = {"web", "email"}, .nsources = 2};
    assert_int_equal(rag_sources_apply(allowed, 2, &f, msg, sizeof(msg)), 422);
    assert_string_equal(msg, "filters.source \"email\" is not one of the sources this service "
                             "answers from (import, web)");
    f = (rag_filter_t){.tenant_id = "A", .sources = {"email"}, .nsources = 1};
    assert_int_equal(rag_sources_apply(allowed, 0, &f, msg, sizeof(msg)), 0); /* unconfigured */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_source),
        cmocka_unit_test(test_sources_parse),
        cmocka_unit_test(test_sources_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
