/*
 * One trace id follows a request from an HTTP header into Kafka and out again:
 * client traceparent -> HTTP handler (log lines carry the trace id) -> Kafka record header
 * -> consumer continues the same trace. A request without traceparent starts a new trace.
 */
#include "tn_test.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/devstack.h"
#include "taina/http_server.h"
#include "taina/kafka.h"
#include "taina/log.h"
#include "taina/mem.h"

#define TOPIC "tickets.raw"

typedef struct ctx {
    tn_kafka_producer_t *prod;
} ctx_t;

/* Produce the body to Kafka with the request's trace, answer with the trace id. */
static void on_ticket(tn_http_req_t *req, void *opaque)
{
    ctx_t *c = opaque;
    char tp[TN_TRACE_LEN + 1];
    size_t len;
    const char *body = tn_http_req_body(req, &len);
    tn_kafka_header_t h = tn_kafka_trace_header(tn_http_req_trace(req), tp, sizeof(tp));
    tn_kafka_record_t r = {TOPIC, -1, "t-1", 3, body, len, &h, 1};
    tn_err_t res;
    TN_LOG(TN_LOG_INFO, "producing a ticket");
    if (tn_kafka_produce_sync(c->prod, &r, 1, &res, 10000) != TN_OK) {
        tn_http_req_respond_error(req, 503, "unavailable", "kafka: %s", tn_err_str(res));
        return;
    }
    tn_http_req_respond_json(req, 202,
                             json_pack("{s:s}", "trace_id", tn_http_req_trace(req)->trace_id));
}

static const char *const json_only[] = {"application/json", NULL};

static char *post(int port, const char *traceparent)
{
    char *cmd = tn_xasprintf("curl -s -X POST -H 'Content-Type: application/json' %s%s%s "
                             "--data '{\"title\":\"x\"}' http://127.0.0.1:%d/v1/tickets",
                             traceparent ? "-H 'traceparent: " : "", traceparent ? traceparent : "",
                             traceparent ? "'" : "", port);
    char *out = NULL;
    assert_int_equal(tn_test_run(cmd, &out, 0), 0);
    free(cmd);
    return out;
}

static void test_trace_follows_the_record(void **state)
{
    (void)state;
    char err[512];
    char *logbuf = NULL;
    size_t loglen = 0;
    FILE *logf = open_memstream(&logbuf, &loglen);
    tn_log_set_output(logf);

    tn_devstack_t *ds = tn_devstack_new(1, err, sizeof(err));
    assert_non_null(ds);
    assert_int_equal(tn_devstack_create_topic(ds, TOPIC, 1, 1, err, sizeof(err)), TN_OK);
    tn_kafka_opts_t ko = {.brokers = tn_devstack_bootstrap(ds)};
    ctx_t c = {.prod = tn_kafka_producer_new(&ko, NULL, err, sizeof(err))};
    assert_non_null(c.prod);

    tn_http_route_t routes[] = {{"POST", "/v1/tickets", on_ticket, 0, json_only, &c}};
    tn_http_server_opts_t o;
    tn_http_server_opts_init(&o);
    o.bind_addr = "127.0.0.1";
    o.port = 0;
    tn_http_server_t *srv = NULL;
    assert_int_equal(tn_http_server_new(&o, routes, 1, &srv, err, sizeof(err)), TN_OK);
    assert_int_equal(tn_http_server_start(srv, err, sizeof(err)), TN_OK);

    const char *incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char *a = post(tn_http_server_port(srv), incoming);
    assert_non_null(strstr(a, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\""));
    char *b = post(tn_http_server_port(srv), NULL); /* no traceparent: a new trace */
    json_t *bj = json_loads(b, 0, NULL);
    const char *new_trace = json_string_value(json_object_get(bj, "trace_id"));
    assert_non_null(new_trace);
    assert_int_equal(strlen(new_trace), 32);
    assert_string_not_equal(new_trace, "4bf92f3577b34da6a3ce929d0e0e4736");

    /* the consumer continues each record's trace */
    const char *topics[] = {TOPIC, NULL};
    tn_kafka_consumer_t *cons = tn_kafka_consumer_new(&ko, NULL, topics, err, sizeof(err));
    assert_non_null(cons);
    const char *want[] = {"4bf92f3577b34da6a3ce929d0e0e4736", new_trace};
    int got = 0;
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(20000);
    while (got < 2 && tn_clock_mono_ms() < deadline) {
        tn_kafka_msg_t m;
        if (tn_kafka_consumer_poll(cons, 100, &m, NULL) != TN_OK)
            continue;
        size_t hl;
        const char *hv = tn_kafka_msg_header(&m, "traceparent", &hl);
        assert_non_null(hv);
        tn_trace_t hop;
        assert_int_equal(tn_kafka_msg_trace(&m, &hop), 1);
        assert_string_equal(hop.trace_id, want[got]);
        /* each hop has its own span id */
        assert_true(memcmp(hv + 36, hop.span_id, 16) != 0);
        if (got == 0)
            assert_true(memcmp(hv + 36, "00f067aa0ba902b7", 16) != 0);
        tn_kafka_msg_release(&m);
        got++;
    }
    assert_int_equal(got, 2);

    /* the handler's log line carried the trace id */
    fflush(logf);
    assert_non_null(strstr(logbuf, "\"msg\":\"producing a ticket\",\"trace_id\":"
                                   "\"4bf92f3577b34da6a3ce929d0e0e4736\""));
    tn_log_ctx_clear();
    tn_log_set_output(NULL);
    fclose(logf);
    free(logbuf);
    json_decref(bj);
    free(a);
    free(b);
    tn_kafka_consumer_destroy(cons);
    tn_http_server_destroy(srv);
    tn_kafka_producer_destroy(c.prod);
    tn_devstack_destroy(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_trace_follows_the_record)};
    return cmocka_run_group_tests_name("trace-propagation", tests, NULL, NULL);
}
