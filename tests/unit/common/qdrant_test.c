/* Unit tests for common/src/qdrant.c against the scripted HTTP server in tests/support. */
#include "tn_test.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_http.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/metrics.h"
#include "taina/qdrant.h"

#define SECRET "qd-s3cr3t-key"
#define COLL   "taina-chunks"
#define UUID1  "5c56c793-69f3-4fbf-87e6-c4bf54c28c26"
#define UUID2  "0b6a8e3c-1d2e-4f50-9a7b-2c3d4e5f6a7b"

#define OK_UPDATE "{\"result\":{\"operation_id\":7,\"status\":\"completed\"},\"status\":\"ok\"}"
#define OK_TRUE   "{\"result\":true,\"status\":\"ok\",\"time\":0.001}"
#define NO_ALIAS  "{\"result\":{\"aliases\":[]},\"status\":\"ok\"}"

typedef struct fixture {
    tn_fake_http_t *fh;
    tn_qdrant_t *q;
    tn_metrics_t *m;
    char err[512];
} fixture_t;

static tn_qdrant_opts_t base_opts(fixture_t *f)
{
    tn_qdrant_opts_t o = {.url = tn_fake_http_url(f->fh),
                          .api_key = SECRET,
                          .timeout_ms = tn_test_timeout_ms(10000),
                          .max_attempts = 3,
                          .metrics = f->m};
    return o;
}

static void use_client(fixture_t *f, const tn_qdrant_opts_t *o)
{
    tn_qdrant_destroy(f->q);
    f->q = tn_qdrant_new(o, f->err, sizeof(f->err));
    assert_non_null(f->q);
}

static int setup(void **state)
{
    fixture_t *f = tn_xcalloc(1, sizeof(*f));
    f->fh = tn_fake_http_start();
    assert_non_null(f->fh);
    f->m = tn_metrics_new();
    tn_qdrant_opts_t o = base_opts(f);
    use_client(f, &o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tn_qdrant_destroy(f->q);
    tn_fake_http_stop(f->fh);
    tn_metrics_destroy(f->m);
    free(f);
    return 0;
}

static void push(fixture_t *f, int status, const char *body)
{
    tn_fake_http_push_simple(f->fh, status, "application/json", body);
}

/* Qdrant's error envelope. */
static void push_error(fixture_t *f, int status, const char *msg)
{
    char *body = tn_xasprintf("{\"status\":{\"error\":\"%s\"},\"time\":0.0002}", msg);
    push(f, status, body);
    free(body);
}

static void push_info(fixture_t *f, int size, const char *distance, const char *schema)
{
    char *body = tn_xasprintf("{\"result\":{\"status\":\"green\",\"optimizer_status\":\"ok\","
                              "\"segments_count\":2,\"points_count\":10,\"config\":{\"params\":{"
                              "\"vectors\":{\"size\":%d,\"distance\":\"%s\"},\"shard_number\":1}},"
                              "\"payload_schema\":%s},\"status\":\"ok\",\"time\":0.001}",
                              size, distance, schema);
    push(f, 200, body);
    free(body);
}

#define FULL_SCHEMA                                                                                \
    "{\"tenant_id\":{\"data_type\":\"keyword\",\"points\":3},\"ticket_id\":{\"data_type\":"        \
    "\"keyword\",\"points\":3},\"source\":{\"data_type\":\"keyword\",\"points\":3}}"

static const tn_fake_http_req_t *req_at(fixture_t *f, size_t i)
{
    const tn_fake_http_req_t *r = tn_fake_http_request(f->fh, i);
    assert_non_null(r);
    return r;
}

/* Check method, target and (when given) the body, compared as JSON. */
static void check_req(fixture_t *f, size_t i, const char *method, const char *target,
                      const char *body)
{
    const tn_fake_http_req_t *r = req_at(f, i);
    assert_string_equal(r->method, method);
    assert_string_equal(r->target, target);
    assert_string_equal(tn_fake_http_req_header(r, "api-key"), SECRET);
    if (!body) {
        assert_int_equal(r->body_len, 0);
        return;
    }
    assert_string_equal(tn_fake_http_req_header(r, "Content-Type"), "application/json");
    json_error_t e;
    json_t *want = json_loads(body, 0, &e);
    assert_non_null(want);
    json_t *got = json_loadb(r->body, r->body_len, 0, &e);
    if (!got || !json_equal(want, got))
        fail_msg("request %zu body\n got: %s\nwant: %s", i, r->body, body);
    json_decref(want);
    json_decref(got);
}

static bool has(const char *hay, const char *needle)
{
    if (strstr(hay, needle))
        return true;
    print_error("\"%s\" does not contain \"%s\"\n", hay, needle);
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Client */

static void test_new_bad_options(void **state)
{
    fixture_t *f = *state;
    char err[256];
    tn_qdrant_opts_t o = {.url = NULL};
    assert_null(tn_qdrant_new(&o, err, sizeof(err)));
    assert_true(has(err, "URL"));
    o.url = "";
    assert_null(tn_qdrant_new(&o, err, sizeof(err)));
    o.url = "ftp://127.0.0.1:6333";
    assert_null(tn_qdrant_new(&o, err, sizeof(err)));
    assert_true(err[0] != '\0');
    o = base_opts(f);
    o.api_key = "abc\r\nX-Evil: 1";
    assert_null(tn_qdrant_new(&o, err, sizeof(err)));
    assert_true(has(err, "line break"));
    assert_null(strstr(err, "abc"));
    o = base_opts(f);
    o.timeout_ms = -1;
    assert_null(tn_qdrant_new(&o, err, sizeof(err)));
    tn_qdrant_destroy(NULL);

    /* No key: no api-key header; a trailing slash on the URL is harmless. */
    char *url = tn_xasprintf("%s/", tn_fake_http_url(f->fh));
    o = (tn_qdrant_opts_t){.url = url, .api_key = ""};
    use_client(f, &o);
    push(f, 200, "{\"result\":{\"count\":3},\"status\":\"ok\"}");
    size_t n = 0;
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(n, 3);
    const tn_fake_http_req_t *r = req_at(f, 0);
    assert_string_equal(r->target, "/collections/" COLL "/points/count");
    assert_null(tn_fake_http_req_header(r, "api-key"));
    free(url);
}

static void test_bad_names(void **state)
{
    fixture_t *f = *state;
    const char *bad[] = {"", "a/b", "a b", "..", "x?wait=false", "é", "a%2F"};
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++) {
        assert_int_equal(tn_qdrant_ensure_collection(f->q, bad[i], 4, f->err, sizeof(f->err)),
                         TN_ERR_INVALID);
        assert_true(has(f->err, "bad collection name"));
        assert_int_equal(tn_qdrant_delete_collection(f->q, bad[i], f->err, sizeof(f->err)),
                         TN_ERR_INVALID);
        assert_int_equal(tn_qdrant_alias_delete(f->q, bad[i], f->err, sizeof(f->err)),
                         TN_ERR_INVALID);
        assert_true(has(f->err, "bad alias name"));
    }
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(tn_qdrant_delete_collection(f->q, longname, f->err, sizeof(f->err)),
                     TN_ERR_INVALID);
    assert_int_equal(tn_qdrant_alias_switch(f->q, "ok-alias", NULL, f->err, sizeof(f->err)),
                     TN_ERR_INVALID);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 0, f->err, sizeof(f->err)),
                     TN_ERR_INVALID);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* ensure_collection */

static void test_ensure_existing(void **state)
{
    fixture_t *f = *state;
    push_info(f, 384, "Cosine", FULL_SCHEMA);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(f->err, "");
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
    check_req(f, 0, "GET", "/collections/" COLL, NULL);
    assert_string_equal(tn_fake_http_req_header(req_at(f, 0), "Accept"), "application/json");
}

static void test_ensure_existing_missing_index(void **state)
{
    fixture_t *f = *state;
    push_info(f, 384, "Cosine", "{\"tenant_id\":{\"data_type\":\"keyword\"}}");
    push(f, 200, OK_UPDATE);
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3);
    check_req(f, 1, "PUT", "/collections/" COLL "/index?wait=true",
              "{\"field_name\":\"ticket_id\",\"field_schema\":\"keyword\"}");
    check_req(f, 2, "PUT", "/collections/" COLL "/index?wait=true",
              "{\"field_name\":\"source\",\"field_schema\":\"keyword\"}");
}

static void test_ensure_mismatch(void **state)
{
    fixture_t *f = *state;
    push_info(f, 768, "Dot", FULL_SCHEMA);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_CONFIG);
    assert_string_equal(f->err, "collection " COLL " has vectors of size 768 and distance Dot; "
                                "this service needs 384 and Cosine");
    push_info(f, 384, "Euclid", FULL_SCHEMA);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_CONFIG);
    assert_true(has(f->err, "size 384 and distance Euclid"));
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2); /* no index created on a mismatch */
}

static void test_ensure_named_vectors(void **state)
{
    fixture_t *f = *state;
    push(f, 200,
         "{\"result\":{\"status\":\"green\",\"config\":{\"params\":{\"vectors\":{\"text\":{"
         "\"size\":384,\"distance\":\"Cosine\"},\"image\":{\"size\":512,\"distance\":\"Dot\"}}}},"
         "\"payload_schema\":{}},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_CONFIG);
    assert_true(has(f->err, "collection " COLL " has named vectors (text, image)"));
    assert_true(has(f->err, "one unnamed vector of size 384 and distance Cosine"));

    push(f, 200, "{\"result\":{\"config\":{}},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_PARSE);
    push(f, 200,
         "{\"result\":{\"config\":{\"params\":{\"vectors\":{\"size\":\"384\","
         "\"distance\":\"Cosine\"}}}},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_PARSE);
}

static void test_ensure_creates(void **state)
{
    fixture_t *f = *state;
    push_error(f, 404, "Not found: Collection `" COLL "` doesn't exist!");
    push(f, 200, NO_ALIAS);
    push(f, 200, OK_TRUE);
    push(f, 200, OK_UPDATE);
    push(f, 200, OK_UPDATE);
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 6);
    check_req(f, 0, "GET", "/collections/" COLL, NULL);
    check_req(f, 1, "GET", "/aliases", NULL);
    check_req(f, 2, "PUT", "/collections/" COLL,
              "{\"vectors\":{\"size\":384,\"distance\":\"Cosine\"}}");
    assert_string_equal(req_at(f, 2)->body, "{\"vectors\":{\"size\":384,\"distance\":\"Cosine\"}}");
    check_req(f, 3, "PUT", "/collections/" COLL "/index?wait=true",
              "{\"field_name\":\"tenant_id\",\"field_schema\":\"keyword\"}");
    check_req(f, 4, "PUT", "/collections/" COLL "/index?wait=true",
              "{\"field_name\":\"ticket_id\",\"field_schema\":\"keyword\"}");
    check_req(f, 5, "PUT", "/collections/" COLL "/index?wait=true",
              "{\"field_name\":\"source\",\"field_schema\":\"keyword\"}");
}

static void test_ensure_create_race(void **state)
{
    fixture_t *f = *state;
    push_error(f, 404, "Not found: Collection `" COLL "` doesn't exist!");
    push(f, 200, NO_ALIAS);
    push_error(f, 409, "Wrong input: Collection `" COLL "` already exists!");
    push_info(f, 384, "Cosine", FULL_SCHEMA);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 4);
    check_req(f, 3, "GET", "/collections/" COLL, NULL);

    /* The other replica made another size: that is a config error, not a success. */
    push_error(f, 404, "Not found");
    push(f, 200, NO_ALIAS);
    push_error(f, 409, "Wrong input: Collection `" COLL "` already exists!");
    push_info(f, 1536, "Cosine", FULL_SCHEMA);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_CONFIG);
    assert_true(has(f->err, "size 1536"));
}

static void test_ensure_through_alias(void **state)
{
    fixture_t *f = *state;
    push_error(f, 404, "Not found: Collection `" COLL "` doesn't exist!");
    push(f, 200,
         "{\"result\":{\"aliases\":[{\"alias_name\":\"other\",\"collection_name\":\"x\"},"
         "{\"alias_name\":\"" COLL "\",\"collection_name\":\"" COLL "-v2\"}]},\"status\":\"ok\"}");
    push_info(f, 768, "Cosine", FULL_SCHEMA);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_CONFIG);
    assert_string_equal(f->err, "collection " COLL "-v2 (alias " COLL ") has vectors of size 768 "
                                "and distance Cosine; this service needs 384 and Cosine");
    check_req(f, 2, "GET", "/collections/" COLL "-v2", NULL);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3);
}

static void test_ensure_errors(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 401, "text/plain", "Invalid API key or JWT");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_UPSTREAM);
    assert_string_equal(f->err,
                        "qdrant GET /collections/" COLL ": HTTP 401: Invalid API key or JWT");

    tn_fake_http_push_simple(f->fh, 403, "text/plain", "Forbidden: read-only\n");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_UPSTREAM);
    assert_true(has(f->err, "HTTP 403: Forbidden: read-only"));

    push(f, 200, "{\"result\": {\"config\": ");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_PARSE);
    assert_true(has(f->err, "not JSON"));

    push(f, 200, "{\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_PARSE);
    assert_true(has(f->err, "no \"result\""));

    for (int i = 0; i < 3; i++)
        push_error(f, 500, "Service internal error: disk");
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_UNAVAILABLE);
    assert_true(has(f->err, "HTTP 500 after 3 attempts: Service internal error: disk"));

    /* The alias list fails while looking: the error is reported, nothing is created. */
    push_error(f, 404, "Not found");
    push_error(f, 400, "Bad request: nope");
    size_t before = tn_fake_http_nrequests(f->fh);
    assert_int_equal(tn_qdrant_ensure_collection(f->q, COLL, 384, f->err, sizeof(f->err)),
                     TN_ERR_UPSTREAM);
    assert_int_equal(tn_fake_http_nrequests(f->fh), before + 2);
}

/* ------------------------------------------------------------------------------------------ */
/* Points */

static void test_upsert_exact_body(void **state)
{
    fixture_t *f = *state;
    float v1[] = {0.5f, -1.25f, 3.0f};
    float v2[] = {1.0f, 0.0f, 0.1f};
    json_t *payload = json_pack("{s:s, s:i, s:[s]}", "tenant_id", "t1", "n", 2, "tags", "a\"b");
    tn_qdrant_point_t pts[] = {{.id = UUID1, .vector = v1, .dims = 3, .payload = payload},
                               {.id = "42", .vector = v2, .dims = 3}};
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, pts, 2, f->err, sizeof(f->err)), TN_OK);
    const tn_fake_http_req_t *r = req_at(f, 0);
    assert_string_equal(r->method, "PUT");
    assert_string_equal(r->target, "/collections/" COLL "/points?wait=true");
    assert_string_equal(tn_fake_http_req_header(r, "api-key"), SECRET);
    assert_string_equal(tn_fake_http_req_header(r, "Content-Type"), "application/json");
    assert_string_equal(r->body,
                        "{\"points\":[{\"id\":\"" UUID1 "\",\"vector\":[0.5,-1.25,3],"
                        "\"payload\":{\"tenant_id\":\"t1\",\"n\":2,\"tags\":[\"a\\\"b\"]}},"
                        "{\"id\":42,\"vector\":[1,0,0.100000001]}]}");
    json_decref(payload);

    /* "acknowledged" (wait=false semantics) is accepted too. */
    push(f, 200, "{\"result\":{\"operation_id\":8,\"status\":\"acknowledged\"},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, pts + 1, 1, f->err, sizeof(f->err)), TN_OK);
}

/* A pre-serialized payload is written as is; a tree payload wins over it; text that is not an
 * object is refused before any request. */
static void test_upsert_payload_json(void **state)
{
    fixture_t *f = *state;
    float v[] = {0.5f, 1.0f};
    json_t *tree = json_pack("{s:i}", "n", 1);
    tn_qdrant_point_t pts[] = {
        {.id = UUID1, .vector = v, .dims = 2, .payload_json = "{\"text\":\"a\\\"b\",\"k\":[1]}"},
        {.id = UUID2, .vector = v, .dims = 2, .payload = tree, .payload_json = "{\"x\":0}"}};
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, pts, 2, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(req_at(f, 0)->body,
                        "{\"points\":[{\"id\":\"" UUID1 "\",\"vector\":[0.5,1],"
                        "\"payload\":{\"text\":\"a\\\"b\",\"k\":[1]}},"
                        "{\"id\":\"" UUID2 "\",\"vector\":[0.5,1],\"payload\":{\"n\":1}}]}");
    json_decref(tree);
    size_t before = tn_fake_http_nrequests(f->fh);
    tn_qdrant_point_t bad[] = {{.id = UUID1, .vector = v, .dims = 2, .payload_json = " [1]"}};
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, bad, 1, f->err, sizeof(f->err)), TN_ERR_INVALID);
    assert_true(has(f->err, "not an object"));
    assert_int_equal(tn_fake_http_nrequests(f->fh), before);
}

static void test_upsert_floats_exact(void **state)
{
    fixture_t *f = *state;
    enum { N = 4096 };
    float *v = tn_xmalloc(N * sizeof(float));
    unsigned s = 12345;
    for (size_t i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        float x = (float)((double)(s >> 8) / (double)(1u << 24)) * 2.0f - 1.0f;
        v[i] = x * ((i % 7 == 0) ? 1e-30f : (i % 11 == 0) ? 1e30f : 1.0f);
        if (v[i] == 0.0f)
            v[i] = 0.25f;
    }
    v[0] = 1.17549435e-38f; /* FLT_MIN */
    v[1] = 3.40282347e+38f; /* FLT_MAX */
    v[2] = 1.40129846e-45f; /* smallest denormal */
    v[3] = 0.1f;
    tn_qdrant_point_t p = {.id = UUID1, .vector = v, .dims = N};
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_OK);
    const tn_fake_http_req_t *r = req_at(f, 0);
    json_error_t e;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &e);
    assert_non_null(doc);
    json_t *vec = json_object_get(json_array_get(json_object_get(doc, "points"), 0), "vector");
    assert_int_equal(json_array_size(vec), N);
    for (size_t i = 0; i < N; i++) {
        float back = (float)json_number_value(json_array_get(vec, i));
        if (memcmp(&back, &v[i], sizeof(float)) != 0)
            fail_msg("value %zu: %.9g came back as %.9g", i, (double)v[i], (double)back);
    }
    json_decref(doc);
    free(v);
}

/* Random finite floats of every magnitude (random bit patterns, so exponents are uniform:
 * subnormals, 1e-38 .. 3e38) and the formatter's edges: each value must read back bit for bit,
 * and its text must be exactly what "%.9g" prints (the body is the same as with snprintf). */
static void test_upsert_floats_random(void **state)
{
    fixture_t *f = *state;
    enum { N = 20000 };
    static const float edges[] = {
        1048576.125f,    /* a tie at 9 digits: half to even (1048576.12) */
        1048576.375f,    /* 1048576.38 */
        999999999.0f,    /* rounds to 1e+09 */
        999999936.0f,    /* largest float < 1e9 */
        1e9f,            /* snprintf */
        0.0001f,         /* the f/e style edge */
        0.000099999997f, /* e style */
        9.99999994e-05f,
        0.99999994f, /* largest float < 1 */
        1.0f,
        -0.0f,
        0.0f,
        1e-36f,
        9.99999946e-37f,
        1.17549435e-38f,
        -3.40282347e+38f,
        123456789.0f,
        100000000.0f,
        0.5f,
        -0.125f,
        1.5e-45f,
    };
    float *v = tn_xmalloc(N * sizeof(float));
    uint64_t s = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < N; i++) {
        do {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            uint32_t bits = (uint32_t)(s >> 32);
            if (i % 2) /* half of them near [-1, 1], like embeddings */
                bits = (bits & 0x807FFFFFu) | (uint32_t)(100 + (s >> 8) % 28) << 23;
            memcpy(&v[i], &bits, sizeof(float));
        } while (!isfinite(v[i]));
    }
    memcpy(v, edges, sizeof(edges));
    tn_qdrant_point_t p = {.id = UUID1, .vector = v, .dims = N};
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_OK);
    const tn_fake_http_req_t *r = req_at(f, 0);
    const char *at = strstr(r->body, "\"vector\":[");
    assert_non_null(at);
    at += strlen("\"vector\":[");
    for (size_t i = 0; i < N; i++) {
        char want[32];
        int k = snprintf(want, sizeof(want), "%.9g", (double)v[i]);
        if (strncmp(at, want, (size_t)k) != 0 || (at[k] != ',' && at[k] != ']'))
            fail_msg("value %zu: want %s, body has %.20s", i, want, at);
        float back = strtof(at, NULL);
        if (memcmp(&back, &v[i], sizeof(float)) != 0)
            fail_msg("value %zu: %s came back as %.9g", i, want, (double)back);
        at += k + 1;
    }
    free(v);
}

static void test_upsert_invalid(void **state)
{
    fixture_t *f = *state;
    float ok[] = {1, 2};
    float nan_v[] = {1, NAN};
    float inf_v[] = {INFINITY, 2};
    json_t *arr = json_array();
    tn_qdrant_point_t cases[] = {{.id = UUID1, .vector = nan_v, .dims = 2},
                                 {.id = UUID1, .vector = inf_v, .dims = 2},
                                 {.id = NULL, .vector = ok, .dims = 2},
                                 {.id = "", .vector = ok, .dims = 2},
                                 {.id = UUID1, .vector = NULL, .dims = 2},
                                 {.id = UUID1, .vector = ok, .dims = 0},
                                 {.id = UUID1, .vector = ok, .dims = 2, .payload = arr}};
    for (size_t i = 0; i < TN_ARRAY_LEN(cases); i++) {
        tn_qdrant_point_t pts[2] = {{.id = UUID2, .vector = ok, .dims = 2}, cases[i]};
        assert_int_equal(tn_qdrant_upsert(f->q, COLL, pts, 2, f->err, sizeof(f->err)),
                         TN_ERR_INVALID);
        assert_true(has(f->err, "point 1"));
    }
    assert_true(has(f->err, "not an object"));
    json_decref(arr);
    /* Nothing to write: no request. */
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, NULL, 0, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 0);
}

static void test_upsert_large_batch_fast(void **state)
{
    fixture_t *f = *state;
    enum { NPTS = 64, DIMS = 1536 };
    float *v = tn_xmalloc((size_t)NPTS * DIMS * sizeof(float));
    for (size_t i = 0; i < (size_t)NPTS * DIMS; i++)
        v[i] = (float)((double)((i * 2654435761u) % 100003u) / 100003.0 - 0.5);
    tn_qdrant_point_t pts[NPTS];
    char ids[NPTS][40];
    json_t *payloads[NPTS];
    for (size_t i = 0; i < NPTS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "00000000-0000-4000-8000-%012zu", i);
        payloads[i] =
            json_pack("{s:s, s:s, s:i}", "tenant_id", "t1", "ticket_id", ids[i], "chunk", (int)i);
        pts[i] = (tn_qdrant_point_t){
            .id = ids[i], .vector = v + i * DIMS, .dims = DIMS, .payload = payloads[i]};
    }
    push(f, 200, OK_UPDATE);
    int64_t t0 = tn_clock_mono_ms();
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, pts, NPTS, f->err, sizeof(f->err)), TN_OK);
    int64_t took = tn_clock_mono_ms() - t0;
    assert_true(took < tn_test_timeout_ms(1500));

    const tn_fake_http_req_t *r = req_at(f, 0);
    json_error_t e;
    json_t *doc = json_loadb(r->body, r->body_len, 0, &e);
    assert_non_null(doc);
    json_t *arr = json_object_get(doc, "points");
    assert_int_equal(json_array_size(arr), NPTS);
    json_t *last = json_array_get(arr, NPTS - 1);
    assert_string_equal(json_string_value(json_object_get(last, "id")), ids[NPTS - 1]);
    assert_int_equal(json_array_size(json_object_get(last, "vector")), DIMS);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(last, "payload"), "chunk")),
                     NPTS - 1);
    json_decref(doc);
    for (size_t i = 0; i < NPTS; i++)
        json_decref(payloads[i]);
    free(v);
}

static void test_upsert_errors(void **state)
{
    fixture_t *f = *state;
    float v[] = {1, 2, 3};
    tn_qdrant_point_t p = {.id = UUID1, .vector = v, .dims = 3};

    push_error(f, 400, "Wrong input: Vector dimension error: expected dim: 4, got 3");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_ERR_UPSTREAM);
    assert_string_equal(f->err, "qdrant PUT /collections/" COLL "/points?wait=true: HTTP 400: "
                                "Wrong input: Vector dimension error: expected dim: 4, got 3");
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1); /* a refusal is not retried */

    push_error(f, 404, "Not found: Collection `" COLL "` doesn't exist!");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_ERR_NOT_FOUND);
    assert_true(has(f->err, "Not found: Collection"));

    push_error(f, 422, "Validation error in JSON body: x");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_ERR_UPSTREAM);

    push_error(f, 408, "Timeout: operation took too long");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)),
                     TN_ERR_UNAVAILABLE);

    push(f, 200, "{\"result\":{\"operation_id\":1,\"status\":\"wait_timeout\"},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)),
                     TN_ERR_UNAVAILABLE);
    assert_true(has(f->err, "wait_timeout"));

    push(f, 200, "{\"result\":{\"operation_id\":1,\"status\":\"weird\"},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_ERR_PARSE);
    push(f, 200, "{\"result\":true,\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_ERR_PARSE);
    push(f, 200, "not json at all");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_ERR_PARSE);
}

static void test_upsert_retried(void **state)
{
    fixture_t *f = *state;
    float v[] = {1, 2, 3};
    tn_qdrant_point_t p = {.id = UUID1, .vector = v, .dims = 3};
    push_error(f, 503, "Service unavailable");
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 429,
                                                    .headers = "Retry-After: 0\r\n",
                                                    .content_type = "application/json",
                                                    .body = "{\"status\":{\"error\":\"slow\"}}"});
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3);
    assert_string_equal(req_at(f, 0)->body, req_at(f, 2)->body);

    for (int i = 0; i < 3; i++)
        push_error(f, 503, "Service unavailable: shard");
    assert_int_equal(tn_qdrant_upsert(f->q, COLL, &p, 1, f->err, sizeof(f->err)),
                     TN_ERR_UNAVAILABLE);
    assert_true(has(f->err, "HTTP 503 after 3 attempts: Service unavailable: shard"));

    /* Deletes are POSTs; they are retried as well (retry_post). */
    push_error(f, 502, "bad gateway");
    push(f, 200, OK_UPDATE);
    const char *ids[] = {UUID1};
    assert_int_equal(tn_qdrant_delete_ids(f->q, COLL, ids, 1, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 8);
}

static void test_delete_points(void **state)
{
    fixture_t *f = *state;
    json_t *filter =
        json_pack("{s:[{s:s, s:{s:s}}]}", "must", "key", "ticket_id", "match", "value", "T-1");
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_delete_filter(f->q, COLL, filter, f->err, sizeof(f->err)), TN_OK);
    check_req(f, 0, "POST", "/collections/" COLL "/points/delete?wait=true",
              "{\"filter\":{\"must\":[{\"key\":\"ticket_id\",\"match\":{\"value\":\"T-1\"}}]}}");
    json_decref(filter);

    const char *ids[] = {UUID1, "7", UUID2, "18446744073709551616", "007"};
    push(f, 200, OK_UPDATE);
    assert_int_equal(tn_qdrant_delete_ids(f->q, COLL, ids, 5, f->err, sizeof(f->err)), TN_OK);
    check_req(f, 1, "POST", "/collections/" COLL "/points/delete?wait=true",
              "{\"points\":[\"" UUID1 "\",7,\"" UUID2 "\",\"18446744073709551616\",\"007\"]}");

    assert_int_equal(tn_qdrant_delete_ids(f->q, COLL, NULL, 0, f->err, sizeof(f->err)), TN_OK);
    const char *bad[] = {UUID1, ""};
    assert_int_equal(tn_qdrant_delete_ids(f->q, COLL, bad, 2, f->err, sizeof(f->err)),
                     TN_ERR_INVALID);
    assert_int_equal(tn_qdrant_delete_filter(f->q, COLL, NULL, f->err, sizeof(f->err)),
                     TN_ERR_INVALID);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2);

    push_error(f, 404, "Not found: Collection `" COLL "` doesn't exist!");
    assert_int_equal(tn_qdrant_delete_ids(f->q, COLL, ids, 1, f->err, sizeof(f->err)),
                     TN_ERR_NOT_FOUND);
}

/* ------------------------------------------------------------------------------------------ */
/* Reads */

static void test_search(void **state)
{
    fixture_t *f = *state;
    float v[] = {0.25f, -0.5f, 1.0f};
    json_t *filter =
        json_pack("{s:{s:s, s:{s:s}}}", "must", "key", "tenant_id", "match", "value", "t1");
    push(f, 200,
         "{\"result\":{\"points\":[{\"id\":\"" UUID1 "\",\"version\":3,\"score\":0.91,"
         "\"payload\":{\"text\":\"hello\"}},{\"id\":12345678901234,\"version\":1,\"score\":0.5},"
         "{\"id\":\"" UUID2 "\",\"version\":1,\"score\":0.25,\"payload\":null}]},\"status\":\"ok\","
         "\"time\":0.002}");
    tn_qdrant_hit_t *hits = NULL;
    size_t n = 0;
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, v, 3, filter, 5, 0.5, &hits, &n, f->err, sizeof(f->err)),
        TN_OK);
    check_req(f, 0, "POST", "/collections/" COLL "/points/query",
              "{\"query\":[0.25,-0.5,1],\"limit\":5,\"with_payload\":true,\"filter\":{\"must\":{"
              "\"key\":\"tenant_id\",\"match\":{\"value\":\"t1\"}}},\"score_threshold\":0.5}");
    assert_int_equal(n, 3);
    assert_string_equal(hits[0].id, UUID1);
    assert_true(hits[0].score == 0.91);
    assert_string_equal(json_string_value(json_object_get(hits[0].payload, "text")), "hello");
    assert_string_equal(hits[1].id, "12345678901234");
    assert_null(hits[1].payload);
    assert_string_equal(hits[2].id, UUID2);
    assert_null(hits[2].payload);
    tn_qdrant_hits_free(hits, n);
    json_decref(filter);

    /* No filter, no threshold (below -1), no hits; -1 itself is a threshold. */
    push(f, 200, "{\"result\":{\"points\":[]},\"status\":\"ok\"}");
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, v, 3, NULL, 10, -2.0, &hits, &n, f->err, sizeof(f->err)),
        TN_OK);
    assert_int_equal(n, 0);
    tn_qdrant_hits_free(hits, n);
    check_req(f, 1, "POST", "/collections/" COLL "/points/query",
              "{\"query\":[0.25,-0.5,1],\"limit\":10,\"with_payload\":true}");
    push(f, 200, "{\"result\":{\"points\":[]},\"status\":\"ok\"}");
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, v, 3, NULL, 10, -1.0, &hits, &n, f->err, sizeof(f->err)),
        TN_OK);
    assert_non_null(strstr(req_at(f, 2)->body, "\"score_threshold\":-1"));

    /* Refused locally. */
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, v, 3, NULL, 0, -2.0, &hits, &n, f->err, sizeof(f->err)),
        TN_ERR_INVALID);
    float bad[] = {NAN};
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, bad, 1, NULL, 3, -2.0, &hits, &n, f->err, sizeof(f->err)),
        TN_ERR_INVALID);
    json_t *arr = json_array();
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, v, 3, arr, 3, -2.0, &hits, &n, f->err, sizeof(f->err)),
        TN_ERR_INVALID);
    json_decref(arr);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3);
}

static void test_search_bad_answers(void **state)
{
    fixture_t *f = *state;
    float v[] = {1, 0};
    const char *answers[] = {
        "{\"result\":[],\"status\":\"ok\"}", /* legacy /search shape */
        "{\"result\":{\"points\":[{\"id\":\"" UUID1 "\",\"score\":0.9,\"payload\":{}},"
        "{\"id\":\"" UUID2 "\"}]},\"status\":\"ok\"}",
        "{\"result\":{\"points\":[{\"id\":\"" UUID1 "\",\"score\":0.9,\"payload\":{}},"
        "{\"id\":-4,\"score\":0.1}]},\"status\":\"ok\"}",
        "{\"result\":{\"points\":[{\"id\":\"" UUID1 "\",\"score\":0.9,\"payload\":[1]}]}}",
        "{\"result\":{\"points\":[{\"id\":\"0123456789012345678901234567890123456789012345678901\","
        "\"score\":0.9}]}}",
        "{\"result\":{\"points\":[{\"score\":0.9}]}}",
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(answers); i++) {
        push(f, 200, answers[i]);
        static tn_qdrant_hit_t sentinel;
        tn_qdrant_hit_t *hits = &sentinel;
        size_t n = 99;
        assert_int_equal(
            tn_qdrant_search(f->q, COLL, v, 2, NULL, 3, -2.0, &hits, &n, f->err, sizeof(f->err)),
            TN_ERR_PARSE);
        assert_null(hits);
        assert_int_equal(n, 0);
        assert_true(has(f->err, "unexpected answer"));
    }
}

/* max_response_bytes: an answer over the cap is TN_ERR_TOO_LARGE, once (not retried). */
static void test_response_cap(void **state)
{
    fixture_t *f = *state;
    tn_qdrant_opts_t o = base_opts(f);
    o.max_response_bytes = 4096;
    use_client(f, &o);
    size_t len = 8192;
    char *big = tn_xmalloc(len + 64);
    int n = snprintf(big, 64, "{\"result\":{\"points\":[]},\"pad\":\"");
    memset(big + n, 'x', len);
    memcpy(big + n + len, "\"}", 3);
    push(f, 200, big);
    free(big);
    float v[] = {1, 0};
    tn_qdrant_hit_t *hits = NULL;
    size_t nh = 0;
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, v, 2, NULL, 3, -2.0, &hits, &nh, f->err, sizeof(f->err)),
        TN_ERR_TOO_LARGE);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
    /* an answer under the cap still works */
    push(f, 200, "{\"result\":{\"points\":[]},\"status\":\"ok\"}");
    assert_int_equal(
        tn_qdrant_search(f->q, COLL, v, 2, NULL, 3, -2.0, &hits, &nh, f->err, sizeof(f->err)),
        TN_OK);
    tn_qdrant_hits_free(hits, nh);
}

static void test_scroll(void **state)
{
    fixture_t *f = *state;
    json_t *filter =
        json_pack("{s:[{s:s, s:{s:s}}]}", "must", "key", "tenant_id", "match", "value", "t1");
    push(f, 200,
         "{\"result\":{\"points\":[{\"id\":\"" UUID1 "\",\"payload\":{\"a\":1},\"vector\":[1,2]}],"
         "\"next_page_offset\":\"" UUID2 "\"},\"status\":\"ok\"}");
    json_t *pts = NULL, *next = NULL;
    assert_int_equal(
        tn_qdrant_scroll(f->q, COLL, filter, 100, 1, NULL, &pts, &next, f->err, sizeof(f->err)),
        TN_OK);
    check_req(f, 0, "POST", "/collections/" COLL "/points/scroll",
              "{\"limit\":100,\"with_payload\":true,\"with_vector\":true,\"filter\":{\"must\":[{"
              "\"key\":\"tenant_id\",\"match\":{\"value\":\"t1\"}}]}}");
    assert_int_equal(json_array_size(pts), 1);
    assert_string_equal(json_string_value(next), UUID2);
    json_decref(pts);

    push(f, 200, "{\"result\":{\"points\":[],\"next_page_offset\":null},\"status\":\"ok\"}");
    json_t *pts2 = NULL, *next2 = (json_t *)1;
    assert_int_equal(
        tn_qdrant_scroll(f->q, COLL, NULL, 10, 0, next, &pts2, &next2, f->err, sizeof(f->err)),
        TN_OK);
    check_req(f, 1, "POST", "/collections/" COLL "/points/scroll",
              "{\"limit\":10,\"with_payload\":true,\"with_vector\":false,\"offset\":\"" UUID2
              "\"}");
    assert_int_equal(json_array_size(pts2), 0);
    assert_null(next2);
    json_decref(pts2);
    json_decref(next);

    /* An integer offset, and an answer without next_page_offset at all. */
    json_t *off = json_integer(17);
    push(f, 200, "{\"result\":{\"points\":[{\"id\":18}]},\"status\":\"ok\"}");
    assert_int_equal(
        tn_qdrant_scroll(f->q, COLL, NULL, 1, 0, off, &pts, &next, f->err, sizeof(f->err)), TN_OK);
    assert_non_null(strstr(req_at(f, 2)->body, "\"offset\":17"));
    assert_null(next);
    json_decref(pts);
    json_decref(off);

    /* Bad answers and bad arguments. */
    push(f, 200, "{\"result\":{\"points\":{},\"next_page_offset\":null},\"status\":\"ok\"}");
    assert_int_equal(
        tn_qdrant_scroll(f->q, COLL, NULL, 1, 0, NULL, &pts, &next, f->err, sizeof(f->err)),
        TN_ERR_PARSE);
    assert_null(pts);
    push(f, 200, "{\"result\":{\"points\":[],\"next_page_offset\":1.5},\"status\":\"ok\"}");
    assert_int_equal(
        tn_qdrant_scroll(f->q, COLL, NULL, 1, 0, NULL, &pts, &next, f->err, sizeof(f->err)),
        TN_ERR_PARSE);
    json_t *badoff = json_real(1.5);
    assert_int_equal(
        tn_qdrant_scroll(f->q, COLL, NULL, 1, 0, badoff, &pts, &next, f->err, sizeof(f->err)),
        TN_ERR_INVALID);
    json_decref(badoff);
    assert_int_equal(
        tn_qdrant_scroll(f->q, COLL, NULL, 0, 0, NULL, &pts, &next, f->err, sizeof(f->err)),
        TN_ERR_INVALID);
    json_decref(filter);
}

static void test_count(void **state)
{
    fixture_t *f = *state;
    json_t *filter =
        json_pack("{s:{s:s, s:{s:s}}}", "must", "key", "ticket_id", "match", "value", "T-9");
    push(f, 200, "{\"result\":{\"count\":42},\"status\":\"ok\",\"time\":0.0001}");
    size_t n = 0;
    assert_int_equal(tn_qdrant_count(f->q, COLL, filter, &n, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(n, 42);
    check_req(f, 0, "POST", "/collections/" COLL "/points/count",
              "{\"exact\":true,\"filter\":{\"must\":{\"key\":\"ticket_id\",\"match\":{\"value\":"
              "\"T-9\"}}}}");
    push(f, 200, "{\"result\":{\"count\":0},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(n, 0);
    check_req(f, 1, "POST", "/collections/" COLL "/points/count", "{\"exact\":true}");
    push(f, 200, "{\"result\":{\"count\":-1},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)), TN_ERR_PARSE);
    push(f, 200, "{\"result\":{},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)), TN_ERR_PARSE);
    push_error(f, 404, "Not found: Collection `" COLL "` doesn't exist!");
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)),
                     TN_ERR_NOT_FOUND);
    json_decref(filter);
}

/* ------------------------------------------------------------------------------------------ */
/* Collections and aliases */

static void test_delete_collection(void **state)
{
    fixture_t *f = *state;
    push(f, 200, OK_TRUE);
    assert_int_equal(tn_qdrant_delete_collection(f->q, COLL, f->err, sizeof(f->err)), TN_OK);
    check_req(f, 0, "DELETE", "/collections/" COLL, NULL);
    push(f, 200, "{\"result\":false,\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_delete_collection(f->q, COLL, f->err, sizeof(f->err)), TN_OK);
    push_error(f, 404, "Not found");
    assert_int_equal(tn_qdrant_delete_collection(f->q, COLL, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(f->err, "");
    tn_fake_http_push_simple(f->fh, 403, "text/plain", "Forbidden: read-only key");
    assert_int_equal(tn_qdrant_delete_collection(f->q, COLL, f->err, sizeof(f->err)),
                     TN_ERR_UPSTREAM);
    assert_true(has(f->err, "HTTP 403: Forbidden: read-only key"));
}

#define SWITCH_BODY                                                                                \
    "{\"actions\":[{\"delete_alias\":{\"alias_name\":\"" COLL "\"}},{\"create_alias\":{"           \
    "\"collection_name\":\"" COLL "-v2\",\"alias_name\":\"" COLL "\"}}]}"
#define CREATE_BODY                                                                                \
    "{\"actions\":[{\"create_alias\":{\"collection_name\":\"" COLL "-v2\",\"alias_name\":\"" COLL  \
    "\"}}]}"

static void test_alias_switch(void **state)
{
    fixture_t *f = *state;
    push(f, 200, OK_TRUE);
    assert_int_equal(tn_qdrant_alias_switch(f->q, COLL, COLL "-v2", f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
    check_req(f, 0, "POST", "/collections/aliases", SWITCH_BODY);
    assert_string_equal(req_at(f, 0)->body, SWITCH_BODY);
}

static void test_alias_switch_first_time(void **state)
{
    fixture_t *f = *state;
    push_error(f, 404, "Not found: Alias " COLL " does not exists!");
    push(f, 200, OK_TRUE);
    assert_int_equal(tn_qdrant_alias_switch(f->q, COLL, COLL "-v2", f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(f->err, "");
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2);
    check_req(f, 1, "POST", "/collections/aliases", CREATE_BODY);

    /* Some servers say it with a 400. */
    push_error(f, 400, "Bad request: Alias " COLL " does not exist");
    push(f, 200, OK_TRUE);
    assert_int_equal(tn_qdrant_alias_switch(f->q, COLL, COLL "-v2", f->err, sizeof(f->err)), TN_OK);
    check_req(f, 3, "POST", "/collections/aliases", CREATE_BODY);

    /* Another replica created it in between: switch again. */
    push_error(f, 404, "Not found: Alias " COLL " does not exists!");
    push_error(f, 409, "Wrong input: Alias " COLL " already exists!");
    push(f, 200, OK_TRUE);
    assert_int_equal(tn_qdrant_alias_switch(f->q, COLL, COLL "-v2", f->err, sizeof(f->err)), TN_OK);
    check_req(f, 6, "POST", "/collections/aliases", SWITCH_BODY);

    /* The collection itself is missing: both tries fail, NOT_FOUND. */
    push_error(f, 404, "Not found: Collection `" COLL "-v2` doesn't exist!");
    push_error(f, 404, "Not found: Collection `" COLL "-v2` doesn't exist!");
    assert_int_equal(tn_qdrant_alias_switch(f->q, COLL, COLL "-v2", f->err, sizeof(f->err)),
                     TN_ERR_NOT_FOUND);
    assert_true(has(f->err, "doesn't exist"));
    assert_int_equal(tn_fake_http_nrequests(f->fh), 9);

    /* Another refusal is not retried. */
    push_error(f, 400, "Bad request: something else");
    assert_int_equal(tn_qdrant_alias_switch(f->q, COLL, COLL "-v2", f->err, sizeof(f->err)),
                     TN_ERR_UPSTREAM);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 10);
}

static void test_alias_delete(void **state)
{
    fixture_t *f = *state;
    push(f, 200, OK_TRUE);
    assert_int_equal(tn_qdrant_alias_delete(f->q, COLL, f->err, sizeof(f->err)), TN_OK);
    check_req(f, 0, "POST", "/collections/aliases",
              "{\"actions\":[{\"delete_alias\":{\"alias_name\":\"" COLL "\"}}]}");
    push_error(f, 404, "Not found: Alias " COLL " does not exists!");
    assert_int_equal(tn_qdrant_alias_delete(f->q, COLL, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(f->err, "");
    tn_fake_http_push_simple(f->fh, 401, "text/plain",
                             "Must provide an API key or an Authorization bearer token");
    assert_int_equal(tn_qdrant_alias_delete(f->q, COLL, f->err, sizeof(f->err)), TN_ERR_UPSTREAM);
    assert_true(has(f->err, "HTTP 401: Must provide an API key"));
}

static void test_alias_target(void **state)
{
    fixture_t *f = *state;
    const char *list = "{\"result\":{\"aliases\":[{\"alias_name\":\"a1\",\"collection_name\":"
                       "\"c1\"},{\"alias_name\":\"" COLL "\",\"collection_name\":\"" COLL
                       "-v7\"}]},\"status\":\"ok\"}";
    char out[64];
    push(f, 200, list);
    assert_int_equal(tn_qdrant_alias_target(f->q, COLL, out, sizeof(out), f->err, sizeof(f->err)),
                     TN_OK);
    assert_string_equal(out, COLL "-v7");
    check_req(f, 0, "GET", "/aliases", NULL);

    push(f, 200, list);
    assert_int_equal(tn_qdrant_alias_target(f->q, "nope", out, sizeof(out), f->err, sizeof(f->err)),
                     TN_ERR_NOT_FOUND);
    assert_string_equal(out, "");
    assert_true(has(f->err, "no alias nope"));

    push(f, 200, list);
    char tiny[8];
    assert_int_equal(tn_qdrant_alias_target(f->q, COLL, tiny, sizeof(tiny), f->err, sizeof(f->err)),
                     TN_ERR_TOO_LARGE);

    push(f, 200, "{\"result\":{\"aliases\":[{\"alias_name\":\"x\"}]},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_alias_target(f->q, COLL, out, sizeof(out), f->err, sizeof(f->err)),
                     TN_ERR_PARSE);
    push(f, 200, "{\"result\":{},\"status\":\"ok\"}");
    assert_int_equal(tn_qdrant_alias_target(f->q, COLL, out, sizeof(out), f->err, sizeof(f->err)),
                     TN_ERR_PARSE);
}

/* ------------------------------------------------------------------------------------------ */
/* Health, transport, metrics, threads */

static void test_ping(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 200, "text/plain", "all shards are ready");
    assert_int_equal(tn_qdrant_ping(f->q, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(req_at(f, 0)->target, "/readyz");

    tn_fake_http_push_simple(f->fh, 404, NULL, NULL);
    tn_fake_http_push_simple(f->fh, 200, "text/plain", "healthz check passed");
    assert_int_equal(tn_qdrant_ping(f->q, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(req_at(f, 2)->target, "/healthz");

    /* Not ready: reported at once, no retry and no fallback. */
    tn_fake_http_push_simple(f->fh, 503, "text/plain", "some shards are not ready");
    assert_int_equal(tn_qdrant_ping(f->q, f->err, sizeof(f->err)), TN_ERR_UNAVAILABLE);
    assert_true(has(f->err, "some shards are not ready"));
    assert_int_equal(tn_fake_http_nrequests(f->fh), 4);
}

static void test_no_answer(void **state)
{
    fixture_t *f = *state;
    char *url = tn_xasprintf("http://127.0.0.1:%d", tn_test_free_port());
    tn_qdrant_opts_t o = {.url = url, .timeout_ms = tn_test_timeout_ms(3000), .max_attempts = 2};
    use_client(f, &o);
    size_t n;
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)),
                     TN_ERR_UNAVAILABLE);
    assert_true(has(f->err, "no answer after 2 attempts"));
    free(url);

    /* Too slow: the deadline ends the call. */
    o = base_opts(f);
    o.timeout_ms = 300;
    o.max_attempts = 1;
    use_client(f, &o);
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200, .delay_ms = 2000});
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)),
                     TN_ERR_UNAVAILABLE);
    assert_true(has(f->err, "timed out"));
}

static void test_metrics(void **state)
{
    fixture_t *f = *state;
    push_error(f, 503, "busy");
    push(f, 200, "{\"result\":{\"count\":1},\"status\":\"ok\"}");
    size_t n;
    assert_int_equal(tn_qdrant_count(f->q, COLL, NULL, &n, f->err, sizeof(f->err)), TN_OK);
    tn_metric_t *reqs = tn_metrics_counter(f->m, "taina_upstream_requests_total",
                                           "Attempts of requests to upstream APIs, by outcome.",
                                           TN_LABELS("upstream", "outcome"));
    tn_metric_t *retries = tn_metrics_counter(f->m, "taina_upstream_retries_total",
                                              "Requests to upstream APIs retried after a failure.",
                                              TN_LABELS("upstream"));
    assert_true(tn_metric_get(reqs, TN_LABELS("qdrant", "ok")) == 1.0);
    assert_true(tn_metric_get(reqs, TN_LABELS("qdrant", "server_error")) == 1.0);
    assert_true(tn_metric_get(retries, TN_LABELS("qdrant")) == 1.0);
}

typedef struct thread_arg {
    fixture_t *f;
    int ok;
} thread_arg_t;

static bool count_handler(const tn_fake_http_req_t *req, tn_fake_http_resp_t *resp, tn_buf_t *body,
                          tn_buf_t *headers, void *opaque)
{
    TN_UNUSED(req);
    TN_UNUSED(headers);
    TN_UNUSED(opaque);
    resp->status = 200;
    resp->content_type = "application/json";
    tn_buf_adds(body, "{\"result\":{\"count\":7},\"status\":\"ok\"}");
    return true;
}

static void *count_thread(void *p)
{
    thread_arg_t *a = p;
    char err[256];
    for (int i = 0; i < 25; i++) {
        size_t n = 0;
        if (tn_qdrant_count(a->f->q, COLL, NULL, &n, err, sizeof(err)) == TN_OK && n == 7)
            a->ok++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_set_handler(f->fh, count_handler, NULL);
    pthread_t th[4];
    thread_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg_t){.f = f};
        assert_int_equal(pthread_create(&th[i], NULL, count_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 25);
    }
    assert_int_equal(tn_fake_http_nrequests(f->fh), 100);
}

int main(void)
{
    tn_log_init("qdrant_test", TN_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_existing_missing_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_named_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_create_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_through_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ensure_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_exact_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_payload_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_floats_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_floats_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_large_batch_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upsert_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_bad_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scroll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_collection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_switch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_switch_first_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
