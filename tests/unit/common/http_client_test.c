/* Unit tests for common/src/http_client.c against the scripted server in tests/support. */
#include "tn_test.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fake_http.h"
#include "taina/clock.h"
#include "taina/http_client.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/metrics.h"

#define SECRET "s3cr3t-key-value"

typedef struct fixture {
    tn_fake_http_t *fh;
    tn_http_client_t *hc;
    tn_metrics_t *m;
    tn_http_response_t resp;
    char err[256];
} fixture_t;

/* Options every test starts from: short waits so retries cost little. */
static tn_http_client_opts_t base_opts(fixture_t *f)
{
    static const char *const hdrs[] = {"api-key: " SECRET, NULL};
    tn_http_client_opts_t o = tn_http_client_opts_default();
    o.upstream = "fake";
    o.base_url = tn_fake_http_url(f->fh);
    o.headers = hdrs;
    o.connect_timeout_ms = tn_test_timeout_ms(2000);
    o.timeout_ms = tn_test_timeout_ms(5000);
    o.deadline_ms = tn_test_timeout_ms(20000);
    o.backoff_base_ms = 10;
    o.backoff_cap_ms = 50;
    o.max_attempts = 3;
    return o;
}

static void use_client(fixture_t *f, const tn_http_client_opts_t *o)
{
    tn_http_client_destroy(f->hc);
    f->hc = tn_http_client_new(o, f->err, sizeof(f->err));
    assert_non_null(f->hc);
}

static int setup(void **state)
{
    fixture_t *f = tn_xcalloc(1, sizeof(*f));
    f->fh = tn_fake_http_start();
    assert_non_null(f->fh);
    tn_http_response_init(&f->resp);
    tn_http_client_opts_t o = base_opts(f);
    use_client(f, &o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tn_http_client_destroy(f->hc);
    tn_fake_http_stop(f->fh);
    tn_http_response_cleanup(&f->resp);
    tn_metrics_destroy(f->m);
    free(f);
    return 0;
}

static tn_err_t get(fixture_t *f, const char *path)
{
    tn_http_request_t req = {.method = TN_HTTP_GET, .path = path};
    return tn_http_client_request(f->hc, &req, &f->resp);
}

static tn_err_t post(fixture_t *f, const char *path, const char *body, unsigned flags)
{
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = path,
                             .body = body,
                             .body_len = strlen(body),
                             .content_type = "text/plain",
                             .flags = flags};
    return tn_http_client_request(f->hc, &req, &f->resp);
}

/* ------------------------------------------------------------------------------------------ */

static void test_get_json(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200,
                                                    .content_type = "application/json",
                                                    .headers = "X-Request-Id: r-42\r\n",
                                                    .body = "{\"result\":{\"count\":7}}"});
    json_t *out = NULL;
    assert_int_equal(
        tn_http_client_json(f->hc, TN_HTTP_GET, "/collections/t?exact=true", NULL, &f->resp, &out),
        TN_OK);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(f->resp.attempts, 1);
    assert_non_null(out);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "result"), "count")),
                     7);
    json_decref(out);
    assert_string_equal(tn_http_response_header(&f->resp, "x-request-id"), "r-42");
    assert_string_equal(tn_http_response_header(&f->resp, "CONTENT-TYPE"), "application/json");
    assert_null(tn_http_response_header(&f->resp, "X-Missing"));

    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
    const tn_fake_http_req_t *r = tn_fake_http_request(f->fh, 0);
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->target, "/collections/t?exact=true");
    assert_string_equal(tn_fake_http_req_header(r, "Accept"), "application/json");
    assert_string_equal(tn_fake_http_req_header(r, "api-key"), SECRET);
    assert_string_equal(tn_fake_http_req_header(r, "User-Agent"), "taina/1");
    assert_null(tn_fake_http_req_header(r, "Content-Type"));
    assert_int_equal(r->body_len, 0);
}

static void test_post_json_exact_bytes(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 200, "application/json", "{\"status\":\"ok\"}");
    json_t *body =
        json_pack("{s:s, s:i, s:[f]}", "text", "caf\xc3\xa9 \"quoted\"", "n", 2, "v", 0.5);
    const char *hdrs[] = {"X-Trace: abc",
                          "traceparent: 00-0af7651916cd43dd8448eb211c80319c-"
                          "b7ad6b7169203331-01",
                          NULL};
    tn_http_request_t req = {.method = TN_HTTP_POST, .path = "v1/embeddings", .headers = hdrs};
    json_t *out = NULL;
    assert_int_equal(tn_http_client_json_req(f->hc, &req, body, &f->resp, &out), TN_OK);
    json_decref(body);
    assert_string_equal(json_string_value(json_object_get(out, "status")), "ok");
    json_decref(out);

    const tn_fake_http_req_t *r = tn_fake_http_request(f->fh, 0);
    assert_non_null(r);
    const char *want = "{\"text\":\"caf\xc3\xa9 \\\"quoted\\\"\",\"n\":2,\"v\":[0.5]}";
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->target, "/v1/embeddings");
    assert_true(strncmp(r->head, "POST /v1/embeddings HTTP/1.1\r\n", 30) == 0);
    assert_string_equal(r->body, want);
    assert_int_equal(r->body_len, strlen(want));
    assert_string_equal(tn_fake_http_req_header(r, "Content-Type"), "application/json");
    char cl[32];
    snprintf(cl, sizeof(cl), "%zu", strlen(want));
    assert_string_equal(tn_fake_http_req_header(r, "Content-Length"), cl);
    assert_string_equal(tn_fake_http_req_header(r, "X-Trace"), "abc");
    assert_non_null(tn_fake_http_req_header(r, "traceparent"));
    assert_string_equal(tn_fake_http_req_header(r, "api-key"), SECRET);
    assert_null(tn_fake_http_req_header(r, "Expect"));
}

static void test_put_delete_head(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 200, NULL, "x");
    tn_fake_http_push_simple(f->fh, 204, NULL, NULL);
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200, .body = "ignored"});
    tn_http_request_t put = {.method = TN_HTTP_PUT,
                             .path = "/a",
                             .body = "{}",
                             .body_len = 2,
                             .content_type = "application/json"};
    assert_int_equal(tn_http_client_request(f->hc, &put, &f->resp), TN_OK);
    tn_http_request_t del = {.method = TN_HTTP_DELETE, .path = "/b"};
    assert_int_equal(tn_http_client_request(f->hc, &del, &f->resp), TN_OK);
    assert_int_equal(f->resp.status, 204);
    tn_http_request_t head = {.method = TN_HTTP_HEAD, .path = "/c"};
    assert_int_equal(tn_http_client_request(f->hc, &head, &f->resp), TN_OK);
    assert_int_equal(f->resp.body.len, 0);
    assert_string_equal(tn_fake_http_request(f->fh, 0)->method, "PUT");
    assert_string_equal(tn_fake_http_request(f->fh, 0)->body, "{}");
    assert_string_equal(tn_fake_http_request(f->fh, 1)->method, "DELETE");
    assert_int_equal(tn_fake_http_request(f->fh, 1)->body_len, 0);
    assert_string_equal(tn_fake_http_request(f->fh, 2)->method, "HEAD");
}

static void test_503_then_200(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 503, "text/plain", "busy");
    tn_fake_http_push_simple(f->fh, 200, "text/plain", "fine");
    assert_int_equal(get(f, "/x"), TN_OK);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(f->resp.attempts, 2);
    assert_string_equal(f->resp.body.data, "fine");
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2);
}

static void test_retry_after_seconds(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(f->fh,
                      &(tn_fake_http_resp_t){.status = 503, .headers = "Retry-After: 1\r\n"});
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    int64_t t0 = tn_clock_mono_ms();
    assert_int_equal(get(f, "/x"), TN_OK);
    assert_true(tn_clock_mono_ms() - t0 >= 1000);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2);
}

static void test_retry_after_http_date(void **state)
{
    fixture_t *f = *state;
    /* Two seconds ahead, truncated to whole seconds by the format: at least one second away. */
    time_t when = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&when, &tm);
    char hdr[96];
    strftime(hdr, sizeof(hdr), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 429, .headers = hdr});
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    int64_t t0 = tn_clock_mono_ms();
    assert_int_equal(get(f, "/x"), TN_OK);
    assert_true(tn_clock_mono_ms() - t0 >= 900);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2);
}

static void test_retry_after_past_deadline_gives_up(void **state)
{
    fixture_t *f = *state;
    tn_http_client_opts_t o = base_opts(f);
    o.deadline_ms = tn_test_timeout_ms(3000);
    use_client(f, &o);
    tn_fake_http_push(f->fh,
                      &(tn_fake_http_resp_t){.status = 503, .headers = "Retry-After: 3600\r\n"});
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    assert_int_equal(get(f, "/x"), TN_ERR_UNAVAILABLE);
    assert_int_equal(f->resp.status, 503);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
}

static void test_429_retried(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 429, NULL, "slow down");
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    assert_int_equal(get(f, "/x"), TN_OK);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2);
}

static void test_all_attempts_503(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_set_default(f->fh, &(tn_fake_http_resp_t){.status = 503, .body = "down"});
    assert_int_equal(get(f, "/x"), TN_ERR_UNAVAILABLE);
    assert_int_equal(f->resp.status, 503);
    assert_int_equal(f->resp.attempts, 3);
    assert_string_equal(f->resp.body.data, "down");
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3);
}

static void test_404_not_retried(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 404, "application/json",
                             "{\"status\":{\"error\":\"Not found: "
                             "Collection `t` doesn't exist!\"}}");
    tn_fake_http_push_simple(f->fh, 200, NULL, "{}");
    assert_int_equal(get(f, "/collections/t"), TN_OK);
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
    assert_int_equal(tn_fake_http_queued(f->fh), 1); /* the 200 was never asked for */
    assert_int_equal(get(f, "/drain"), TN_OK);

    /* The JSON helper turns it into TN_ERR_UPSTREAM and keeps the body for the message. */
    tn_fake_http_push_simple(f->fh, 400, "application/json", "{\"error\":\"bad\nvector\"}");
    json_t *out = NULL;
    assert_int_equal(tn_http_client_json(f->hc, TN_HTTP_GET, "/y", NULL, &f->resp, &out),
                     TN_ERR_UPSTREAM);
    assert_null(out);
    assert_int_equal(f->resp.status, 400);
    char msg[128];
    assert_string_equal(tn_http_response_describe(&f->resp, msg, sizeof(msg)),
                        "HTTP 400: {\"error\":\"bad vector\"}");
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3);
}

static void test_timeout(void **state)
{
    fixture_t *f = *state;
    tn_http_client_opts_t o = base_opts(f);
    o.timeout_ms = 200;
    o.max_attempts = 1;
    use_client(f, &o);
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200, .delay_ms = 5000});
    int64_t t0 = tn_clock_mono_ms();
    assert_int_equal(get(f, "/slow"), TN_ERR_TIMEOUT);
    assert_true(tn_clock_mono_ms() - t0 >= 200);
    assert_int_equal(f->resp.status, 0);
}

static void test_deadline_bounds_retries(void **state)
{
    fixture_t *f = *state;
    tn_http_client_opts_t o = base_opts(f);
    o.timeout_ms = 300;
    o.deadline_ms = 700;
    o.max_attempts = 10;
    use_client(f, &o);
    tn_fake_http_set_default(f->fh, &(tn_fake_http_resp_t){.status = 200, .delay_ms = 5000});
    assert_int_equal(get(f, "/slow"), TN_ERR_TIMEOUT);
    assert_true(f->resp.attempts >= 2);
    assert_true(f->resp.attempts <= 4);
}

static void test_connection_refused(void **state)
{
    fixture_t *f = *state;
    int port = tn_test_free_port();
    assert_true(port > 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    tn_http_client_opts_t o = base_opts(f);
    o.base_url = url;
    use_client(f, &o);
    assert_int_equal(get(f, "/x"), TN_ERR_UNAVAILABLE);
    assert_int_equal(f->resp.status, 0);
    assert_int_equal(f->resp.attempts, 3);
}

static void test_close_and_reset_retried(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.action = TN_FAKE_CLOSE});
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.action = TN_FAKE_RESET});
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    assert_int_equal(get(f, "/x"), TN_OK);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(f->resp.attempts, 3);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 3);
}

static void test_partial_body_retried(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(
        f->fh, &(tn_fake_http_resp_t){.status = 200, .body = "0123456789", .send_body_bytes = 4});
    tn_fake_http_push_simple(f->fh, 200, NULL, "0123456789");
    assert_int_equal(get(f, "/x"), TN_OK);
    assert_string_equal(f->resp.body.data, "0123456789");
    assert_int_equal(f->resp.attempts, 2);
}

static void test_too_large(void **state)
{
    fixture_t *f = *state;
    tn_http_client_opts_t o = base_opts(f);
    o.max_response_bytes = 1024;
    use_client(f, &o);
    char *big = tn_xmalloc(4097);
    memset(big, 'a', 4096);
    big[4096] = '\0';
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200, .body = big});
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200, .body = big, .chunked = true});
    free(big);
    assert_int_equal(get(f, "/announced"), TN_ERR_TOO_LARGE); /* Content-Length over the cap */
    assert_int_equal(get(f, "/chunked"), TN_ERR_TOO_LARGE);   /* found while reading */
    assert_true(f->resp.body.len <= 1024);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 2); /* neither retried */

    /* Exactly at the cap is fine. */
    char *fits = tn_xmalloc(1025);
    memset(fits, 'b', 1024);
    fits[1024] = '\0';
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200, .body = fits, .chunked = true});
    free(fits);
    assert_int_equal(get(f, "/fits"), TN_OK);
    assert_int_equal(f->resp.body.len, 1024);
}

static void test_malformed_json(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push_simple(f->fh, 200, "application/json", "{\"result\": [1, 2,");
    json_t *out = NULL;
    assert_int_equal(tn_http_client_json(f->hc, TN_HTTP_GET, "/x", NULL, &f->resp, &out),
                     TN_ERR_PARSE);
    assert_null(out);
    /* An empty 2xx body is no document at all, not a parse error. */
    tn_fake_http_push_simple(f->fh, 204, NULL, NULL);
    assert_int_equal(tn_http_client_json(f->hc, TN_HTTP_DELETE, "/x", NULL, &f->resp, &out), TN_OK);
    assert_null(out);
}

static void test_connection_reused(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_set_default(f->fh, &(tn_fake_http_resp_t){.status = 200, .body = "same"});
    for (int i = 0; i < 3; i++) {
        assert_int_equal(get(f, "/x"), TN_OK);
        assert_string_equal(f->resp.body.data, "same");
    }
    assert_int_equal(post(f, "/y", "body", 0), TN_OK);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 4);
    assert_int_equal(tn_fake_http_connections(f->fh), 1);
}

static void test_post_retry_policy(void **state)
{
    fixture_t *f = *state;
    /* Default: POST is not idempotent, a 503 is final. */
    tn_fake_http_push_simple(f->fh, 503, NULL, "busy");
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    assert_int_equal(post(f, "/points", "p", 0), TN_ERR_UNAVAILABLE);
    assert_int_equal(f->resp.status, 503);
    assert_int_equal(f->resp.attempts, 1);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 1);
    assert_int_equal(get(f, "/drain"), TN_OK); /* uses the queued 200 */

    /* Per request: TN_HTTP_F_IDEMPOTENT. */
    tn_fake_http_push_simple(f->fh, 503, NULL, "busy");
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    assert_int_equal(post(f, "/points", "p", TN_HTTP_F_IDEMPOTENT), TN_OK);
    assert_int_equal(f->resp.attempts, 2);

    /* Per client: retry_post; TN_HTTP_F_NO_RETRY still wins. */
    tn_http_client_opts_t o = base_opts(f);
    o.retry_post = true;
    use_client(f, &o);
    tn_fake_http_push_simple(f->fh, 502, NULL, "gw");
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    assert_int_equal(post(f, "/points", "p", 0), TN_OK);
    assert_int_equal(f->resp.attempts, 2);
    tn_fake_http_push_simple(f->fh, 502, NULL, "gw");
    assert_int_equal(post(f, "/points", "p", TN_HTTP_F_NO_RETRY), TN_ERR_UNAVAILABLE);
    assert_int_equal(f->resp.attempts, 1);
    /* Each retried body is sent again, byte for byte. */
    size_t n = tn_fake_http_nrequests(f->fh);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++)
        if (strcmp(tn_fake_http_request(f->fh, i)->method, "POST") == 0)
            assert_string_equal(tn_fake_http_request(f->fh, i)->body, "p");
}

static void test_metrics(void **state)
{
    fixture_t *f = *state;
    f->m = tn_metrics_new();
    tn_http_client_opts_t o = base_opts(f);
    o.metrics = f->m;
    use_client(f, &o);
    tn_fake_http_push_simple(f->fh, 503, NULL, "busy");
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    tn_fake_http_push_simple(f->fh, 404, NULL, "no");
    assert_int_equal(get(f, "/x"), TN_OK);
    assert_int_equal(get(f, "/y"), TN_OK);

    tn_metric_t *reqs = tn_metrics_counter(f->m, "taina_upstream_requests_total",
                                           "Attempts of requests to upstream APIs, by outcome.",
                                           TN_LABELS("upstream", "outcome"));
    tn_metric_t *retries = tn_metrics_counter(f->m, "taina_upstream_retries_total",
                                              "Requests to upstream APIs retried after a failure.",
                                              TN_LABELS("upstream"));
    tn_metric_t *dur =
        tn_metrics_histogram(f->m, "taina_upstream_request_duration_seconds",
                             "Duration of one attempt of a request to an upstream API.",
                             TN_LABELS("upstream", "outcome"), tn_metrics_duration_buckets,
                             tn_metrics_duration_nbuckets);
    assert_true(tn_metric_get(reqs, TN_LABELS("fake", "ok")) == 1.0);
    assert_true(tn_metric_get(reqs, TN_LABELS("fake", "server_error")) == 1.0);
    assert_true(tn_metric_get(reqs, TN_LABELS("fake", "client_error")) == 1.0);
    assert_true(tn_metric_get(reqs, TN_LABELS("fake", "timeout")) == 0.0);
    assert_true(tn_metric_get(retries, TN_LABELS("fake")) == 1.0);
    assert_int_equal(tn_metric_count(dur, TN_LABELS("fake", "ok")), 1);
    assert_int_equal(tn_metric_count(dur, TN_LABELS("fake", "server_error")), 1);

    /* Transport failures count as timeout / error. */
    tn_http_client_opts_t o2 = o;
    o2.timeout_ms = 100;
    o2.max_attempts = 1;
    use_client(f, &o2);
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200, .delay_ms = 3000});
    assert_int_equal(get(f, "/slow"), TN_ERR_TIMEOUT);
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.action = TN_FAKE_CLOSE});
    assert_int_equal(get(f, "/closed"), TN_ERR_UNAVAILABLE);
    assert_true(tn_metric_get(reqs, TN_LABELS("fake", "timeout")) == 1.0);
    assert_true(tn_metric_get(reqs, TN_LABELS("fake", "error")) == 1.0);
}

static void test_debug_log_redacts_secrets(void **state)
{
    fixture_t *f = *state;
    char *dir = tn_test_mkdtemp("http-client");
    assert_non_null(dir);
    char *path = tn_xasprintf("%s/log", dir);
    FILE *log = fopen(path, "w+");
    assert_non_null(log);
    tn_log_set_output(log);
    tn_log_set_dbg(TN_DBG_CLIENT);

    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200,
                                                    .body = "ok",
                                                    .headers = "Set-Cookie: session=" SECRET
                                                               "\r\nX-Plain: v1\r\n"});
    const char *hdrs[] = {"Authorization: Bearer " SECRET, NULL};
    tn_http_request_t req = {
        .method = TN_HTTP_GET, .path = "/x?wait=true&api_key=" SECRET "&n=1", .headers = hdrs};
    assert_int_equal(tn_http_client_request(f->hc, &req, &f->resp), TN_OK);

    tn_log_set_dbg(0);
    tn_log_set_output(NULL);
    fclose(log);
    char *text = tn_test_read_file(path, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "> GET /x?wait=true&api_key=[redacted]&n=1 HTTP/1.1"));
    assert_non_null(strstr(text, "X-Plain: v1"));
    assert_non_null(strstr(text, "api-key: [redacted]"));
    assert_non_null(strstr(text, "Authorization: [redacted]"));
    assert_null(strstr(text, SECRET));
    free(text);
    free(path);
    tn_test_rmdir(dir);
    free(dir);
}

static void test_bad_options(void **state)
{
    fixture_t *f = *state;
    tn_http_client_opts_t o = base_opts(f);
    o.base_url = "ftp://example.org/";
    assert_null(tn_http_client_new(&o, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, "ftp://example.org/"));

    o = base_opts(f);
    o.upstream = NULL;
    assert_null(tn_http_client_new(&o, f->err, sizeof(f->err)));
    assert_non_null(strstr(f->err, "upstream"));

    o = base_opts(f);
    o.headers = (const char *const[]){"api-key " SECRET, NULL};
    assert_null(tn_http_client_new(&o, f->err, sizeof(f->err)));
    assert_null(strstr(f->err, SECRET));

    o = base_opts(f);
    o.headers = (const char *const[]){"api-key: " SECRET "\r\nX-Injected: 1", NULL};
    assert_null(tn_http_client_new(&o, f->err, sizeof(f->err)));
    assert_null(strstr(f->err, SECRET));

    /* Bad request-level input is TN_ERR_INVALID, and nothing is sent. */
    tn_http_request_t req = {.method = TN_HTTP_GET, .path = "/a b"};
    assert_int_equal(tn_http_client_request(f->hc, &req, &f->resp), TN_ERR_INVALID);
    const char *bad[] = {"X-A: 1\r\nX-B: 2", NULL};
    tn_http_request_t req2 = {.method = TN_HTTP_GET, .path = "/a", .headers = bad};
    assert_int_equal(tn_http_client_request(f->hc, &req2, &f->resp), TN_ERR_INVALID);
    assert_int_equal(tn_fake_http_nrequests(f->fh), 0);

    /* Without a base URL only absolute URLs work. */
    o = base_opts(f);
    o.base_url = NULL;
    use_client(f, &o);
    assert_int_equal(get(f, "/relative"), TN_ERR_INVALID);
    char *abs = tn_xasprintf("%s/absolute", tn_fake_http_url(f->fh));
    tn_fake_http_push_simple(f->fh, 200, NULL, "ok");
    assert_int_equal(get(f, abs), TN_OK);
    free(abs);
    assert_string_equal(tn_fake_http_request(f->fh, 0)->target, "/absolute");
}

/* Several threads share one client; every answer must reach its own caller. */
typedef struct worker {
    fixture_t *f;
    int id;
    int ok;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    for (int i = 0; i < 10; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/echo/%d/%d", w->id, i);
        tn_http_request_t req = {.method = TN_HTTP_GET, .path = path};
        if (tn_http_client_request(w->f->hc, &req, &resp) == TN_OK && resp.status == 200 &&
            strcmp(resp.body.data, path) == 0)
            w->ok++;
    }
    tn_http_response_cleanup(&resp);
    return NULL;
}

static bool echo_target(const tn_fake_http_req_t *req, tn_fake_http_resp_t *resp, tn_buf_t *body,
                        tn_buf_t *headers, void *opaque)
{
    TN_UNUSED(headers);
    TN_UNUSED(opaque);
    resp->status = 200;
    resp->content_type = "text/plain";
    tn_buf_adds(body, req->target);
    return true;
}

static void test_threads_share_client(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_set_handler(f->fh, echo_target, NULL);
    enum { NT = 4 };
    pthread_t t[NT];
    worker_t w[NT];
    for (int i = 0; i < NT; i++) {
        w[i] = (worker_t){.f = f, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 10);
    }
    assert_int_equal(tn_fake_http_nrequests(f->fh), NT * 10);
    /* Handles (and their connections) are pooled: no connection per request. */
    assert_true(tn_fake_http_connections(f->fh) <= NT);
}

/* ------------------------------------------------------------------------------------------ */
/* Streaming */

typedef struct sink {
    tn_buf_t got;
    int calls;
    int stop_at; /* stop on this call (1-based); 0: never */
    const tn_http_response_t *resp;
    bool saw_type; /* the headers were readable at the first piece */
} sink_t;

static int sink_piece(void *opaque, const char *data, size_t len)
{
    sink_t *s = opaque;
    if (s->calls == 0)
        s->saw_type = tn_http_response_header(s->resp, "Content-Type") != NULL;
    s->calls++;
    tn_buf_add(&s->got, data, len);
    return s->stop_at && s->calls >= s->stop_at;
}

static tn_err_t stream(fixture_t *f, sink_t *s, const char *body)
{
    tn_buf_init(&s->got, 1 << 20);
    s->resp = &f->resp;
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = "/stream",
                             .body = body,
                             .body_len = strlen(body),
                             .content_type = "application/json",
                             .flags = TN_HTTP_F_IDEMPOTENT};
    return tn_http_client_stream(f->hc, &req, sink_piece, s, &f->resp);
}

static const char SSE[] =
    "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\ndata: [DONE]\n\n";

static void test_stream_pieces(void **state)
{
    fixture_t *f = *state;
    /* 503 first: retried, since nothing reached the sink; then a body in 5-byte pieces. */
    tn_fake_http_push_simple(f->fh, 503, "application/json", "{\"busy\":true}");
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200,
                                                    .content_type = "text/event-stream",
                                                    .body = SSE,
                                                    .chunked = true,
                                                    .piece_bytes = 5,
                                                    .piece_delay_ms = 2});
    sink_t s = {0};
    assert_int_equal(stream(f, &s, "{}"), TN_OK);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(f->resp.attempts, 2);
    assert_string_equal(s.got.data, SSE);
    assert_true(s.calls > 3); /* it came in pieces, as sent */
    assert_true(s.saw_type);
    assert_int_equal(f->resp.body.len, 0); /* streamed, not kept */
    tn_buf_cleanup(&s.got);

    /* A 4xx is an answer: kept whole in resp->body, never streamed. */
    tn_fake_http_push_simple(f->fh, 404, "application/json", "{\"error\":\"nope\"}");
    sink_t s2 = {0};
    assert_int_equal(stream(f, &s2, "{}"), TN_OK);
    assert_int_equal(f->resp.status, 404);
    assert_int_equal(s2.calls, 0);
    assert_string_equal(f->resp.body.data, "{\"error\":\"nope\"}");
    tn_buf_cleanup(&s2.got);
}

static void test_stream_stop(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200,
                                                    .content_type = "text/event-stream",
                                                    .body = SSE,
                                                    .piece_bytes = 4,
                                                    .piece_delay_ms = 2});
    sink_t s = {.stop_at = 2};
    assert_int_equal(stream(f, &s, "{}"), TN_ERR_STOPPED);
    assert_int_equal(s.calls, 2);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(f->resp.attempts, 1);
    tn_buf_cleanup(&s.got);
}

static void test_stream_failure_after_first_piece(void **state)
{
    fixture_t *f = *state;
    /* The connection closes half-way: the sink saw a part, so no retry. */
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200,
                                                    .content_type = "text/event-stream",
                                                    .body = SSE,
                                                    .send_body_bytes = 10});
    tn_fake_http_push_simple(f->fh, 200, "text/event-stream", SSE);
    sink_t s = {0};
    assert_int_equal(stream(f, &s, "{}"), TN_ERR_UNAVAILABLE);
    assert_int_equal(f->resp.attempts, 1);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(s.got.len, 10);
    tn_buf_cleanup(&s.got);

    /* A body over the cap in all, though every piece is small. */
    tn_http_client_opts_t o = base_opts(f);
    o.max_response_bytes = 16;
    use_client(f, &o);
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200,
                                                    .content_type = "text/event-stream",
                                                    .body = SSE,
                                                    .chunked = true,
                                                    .piece_bytes = 8,
                                                    .piece_delay_ms = 1});
    sink_t s2 = {0};
    assert_int_equal(stream(f, &s2, "{}"), TN_ERR_TOO_LARGE);
    assert_true(s2.got.len <= 16);
    tn_buf_cleanup(&s2.got);
}

static void test_stream_deadline(void **state)
{
    fixture_t *f = *state;
    tn_fake_http_push(f->fh, &(tn_fake_http_resp_t){.status = 200,
                                                    .content_type = "text/event-stream",
                                                    .body = SSE,
                                                    .piece_bytes = 10,
                                                    .piece_delay_ms = 100});
    sink_t s = {0};
    tn_buf_init(&s.got, 1 << 20);
    s.resp = &f->resp;
    tn_http_request_t req = {.method = TN_HTTP_GET, .path = "/stream", .deadline_ms = 250};
    assert_int_equal(tn_http_client_stream(f->hc, &req, sink_piece, &s, &f->resp), TN_ERR_TIMEOUT);
    assert_true(s.calls >= 1);
    assert_int_equal(f->resp.attempts, 1); /* not retried after a piece */
    assert_true(f->resp.elapsed_ms < tn_test_timeout_ms(2000));
    tn_buf_cleanup(&s.got);
}

static void test_form_encode(void **state)
{
    (void)state;
    const uint8_t bin[5] = {0, '\r', '\n', '-', 0xFF};
    tn_http_form_part_t parts[] = {
        {"file", "audio.wav", "audio/wav", bin, sizeof(bin)},
        {"model", NULL, NULL, "whisper-1", 9},
        {"empty", NULL, NULL, NULL, 0},
    };
    size_t len = 0;
    char *ct = NULL;
    uint8_t *body = tn_http_form_encode(parts, TN_ARRAY_LEN(parts), &len, &ct);
    const char *pre = "multipart/form-data; boundary=";
    assert_int_equal(strncmp(ct, pre, strlen(pre)), 0);
    const char *bd = ct + strlen(pre);
    char *want = tn_xasprintf("--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                              "filename=\"audio.wav\"\r\nContent-Type: audio/wav\r\n\r\n",
                              bd);
    assert_memory_equal(body, want, strlen(want));
    assert_memory_equal(body + strlen(want), bin, sizeof(bin));
    size_t head = strlen(want);
    free(want);
    want = tn_xasprintf("\r\n--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
                        "whisper-1\r\n--%s\r\nContent-Disposition: form-data; "
                        "name=\"empty\"\r\n\r\n\r\n--%s--\r\n",
                        bd, bd, bd);
    assert_int_equal(len, head + sizeof(bin) + strlen(want));
    assert_memory_equal(body + head + sizeof(bin), want, strlen(want));
    free(want);
    /* Two bodies get different boundaries. */
    char *ct2 = NULL;
    uint8_t *body2 = tn_http_form_encode(parts, 1, &len, &ct2);
    assert_string_not_equal(ct, ct2);
    free(body2);
    free(ct2);
    free(body);
    free(ct);
}

static void test_json_error_message(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *want;
    } cases[] = {
        {"{\"error\":{\"message\":\"bad key\",\"type\":\"x\"}}", "bad key"},
        {"{\"error\":\"plain\"}", "plain"},
        {"{\"message\":\"top\"}", "top"},
        {"{\"detail\":\"fastapi\"}", "fastapi"},
        {"{\"error\":{\"code\":1}}", NULL},
        {"[1]", NULL},
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(cases); i++) {
        json_t *d = json_loads(cases[i].doc, 0, NULL);
        const char *m = tn_http_json_error_message(d);
        if (cases[i].want)
            assert_string_equal(m, cases[i].want);
        else
            assert_null(m);
        json_decref(d);
    }
    assert_null(tn_http_json_error_message(NULL));
}

int main(void)
{
    tn_log_init("http_client_test", TN_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_json_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_delete_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_then_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_http_date, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_past_deadline_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_attempts_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_bounds_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_and_reset_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_body_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_retry_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_log_redacts_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_failure_after_first_piece, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_deadline, setup, teardown),
        cmocka_unit_test(test_json_error_message),
        cmocka_unit_test(test_form_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
