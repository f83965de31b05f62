/* Unit tests for common/src/ws.c: a server and a client of this module talking over loopback. */
#include "tn_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "taina/clock.h"
#include "taina/mem.h"
#include "taina/ws.h"

#define MAXMSG 64

/* What one side saw. */
typedef struct side {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *msgs[MAXMSG];
    bool binary[MAXMSG];
    int64_t at[MAXMSG];
    int nmsgs, opened, closed, close_code, http_status;
    tn_ws_conn_t *conn; /* server side: the last connection (a reference) */
} side_t;

static void side_init(side_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void side_free(side_t *s)
{
    for (int i = 0; i < s->nmsgs; i++)
        free(s->msgs[i]);
    tn_ws_conn_release(s->conn);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

/* Wait until *field >= want (up to 5 s). */
static int wait_for(side_t *s, const int *field, int want)
{
    int64_t end = tn_clock_mono_ms() + 5000;
    pthread_mutex_lock(&s->mu);
    while (*field < want && tn_clock_mono_ms() < end) {
        pthread_mutex_unlock(&s->mu);
        tn_clock_sleep_ms(5);
        pthread_mutex_lock(&s->mu);
    }
    int got = *field;
    pthread_mutex_unlock(&s->mu);
    return got >= want;
}

static int srv_upgrade(tn_ws_conn_t *c, void *opaque, char *code, char *msg)
{
    char buf[128];
    (void)opaque;
    if (tn_ws_conn_header(c, "authorization", buf, sizeof(buf)) < 0 ||
        strcmp(buf, "Bearer ok") != 0) {
        snprintf(code, 64, "unauthorized");
        snprintf(msg, 256, "no key");
        return 401;
    }
    return 0;
}

static void on_open(tn_ws_conn_t *c, void *opaque)
{
    side_t *s = opaque;
    pthread_mutex_lock(&s->mu);
    s->opened++;
    if (!s->conn)
        s->conn = tn_ws_conn_keep(c);
    pthread_mutex_unlock(&s->mu);
}

static void on_message(tn_ws_conn_t *c, const uint8_t *data, size_t len, bool binary, void *opaque)
{
    side_t *s = opaque;
    pthread_mutex_lock(&s->mu);
    if (s->nmsgs < MAXMSG) {
        s->msgs[s->nmsgs] = tn_xstrndup((const char *)data, len);
        s->binary[s->nmsgs] = binary;
        s->at[s->nmsgs] = tn_ws_now_us();
        s->nmsgs++;
    }
    pthread_mutex_unlock(&s->mu);
    if (tn_ws_conn_user(c) == (void *)1) /* the server echoes */
        tn_ws_conn_send(c, data, len, binary);
}

static void on_close(tn_ws_conn_t *c, int code, int http_status, void *opaque)
{
    side_t *s = opaque;
    (void)c;
    pthread_mutex_lock(&s->mu);
    s->closed++;
    s->close_code = code;
    s->http_status = http_status;
    pthread_mutex_unlock(&s->mu);
}

static int srv_upgrade_echo(tn_ws_conn_t *c, void *opaque, char *code, char *msg)
{
    int st = srv_upgrade(c, opaque, code, msg);
    if (!st)
        tn_ws_conn_set_user(c, (void *)1);
    return st;
}

static void http_hello(tn_ws_http_req_t *r, void *opaque)
{
    (void)opaque;
    tn_ws_http_respond(r, 200, "text/plain", "hello", 5);
}

typedef struct pair {
    side_t srv, cli;
    tn_ws_server_t *server;
    tn_ws_client_t *client;
    tn_ws_handlers_t sh, ch;
    char url[128];
} pair_t;

static void pair_up(pair_t *p)
{
    char err[256];
    side_init(&p->srv);
    side_init(&p->cli);
    p->sh = (tn_ws_handlers_t){srv_upgrade_echo, on_open, on_message, on_close};
    p->ch = (tn_ws_handlers_t){NULL, on_open, on_message, on_close};
    tn_ws_server_opts_t o = tn_ws_server_opts_default();
    o.bind_addr = "127.0.0.1";
    o.port = 0;
    o.ws_path = "/ws";
    o.max_frame = 4096;
    o.max_message = 8192;
    o.handlers = &p->sh;
    o.opaque = &p->srv;
    const tn_ws_http_route_t routes[] = {{"GET", "/hello", http_hello, NULL}};
    p->server = tn_ws_server_new(&o, routes, 1, err, sizeof(err));
    assert_non_null(p->server);
    snprintf(p->url, sizeof(p->url), "ws://127.0.0.1:%d/ws", tn_ws_server_port(p->server));
    tn_ws_client_opts_t co = tn_ws_client_opts_default();
    co.handlers = &p->ch;
    co.opaque = &p->cli;
    p->client = tn_ws_client_new(&co, err, sizeof(err));
    assert_non_null(p->client);
}

static void pair_down(pair_t *p)
{
    tn_ws_client_destroy(p->client);
    tn_ws_server_destroy(p->server);
    side_free(&p->srv);
    side_free(&p->cli);
}

static tn_ws_conn_t *connect_ok(pair_t *p, const char *key)
{
    char err[256], hdr[64];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", key);
    const char *h[] = {hdr, NULL};
    return tn_ws_client_connect(p->client, p->url, h, NULL, err, sizeof(err));
}

/* Echo of text and binary messages, and a message in fragments joined (the client sends it
 * whole; lws splits nothing under max_frame). */
static void test_echo(void **state)
{
    pair_t p;
    TN_UNUSED(state);
    pair_up(&p);
    tn_ws_conn_t *c = connect_ok(&p, "ok");
    assert_true(wait_for(&p.cli, &p.cli.opened, 1));
    assert_int_equal(tn_ws_conn_send(c, "hello", 5, false), TN_OK);
    assert_int_equal(tn_ws_conn_send(c, "\x01\x02", 2, true), TN_OK);
    assert_true(wait_for(&p.cli, &p.cli.nmsgs, 2));
    assert_string_equal(p.cli.msgs[0], "hello");
    assert_false(p.cli.binary[0]);
    assert_true(p.cli.binary[1]);
    assert_int_equal(tn_ws_server_conns(p.server), 1);
    tn_ws_conn_close(c, TN_WS_CLOSE_NORMAL, "bye");
    assert_true(wait_for(&p.srv, &p.srv.closed, 1));
    assert_int_equal(p.srv.close_code, 1000);
    assert_int_equal(tn_ws_conn_send(c, "late", 4, false), TN_ERR_STOPPED);
    tn_ws_conn_release(c);
    pair_down(&p);
}

/* Timed messages go at their time, in order; a cancelled tag never goes; an untimed message
 * overtakes timed ones that are not due. */
static void test_paced_and_cancelled(void **state)
{
    pair_t p;
    TN_UNUSED(state);
    pair_up(&p);
    tn_ws_conn_t *c = connect_ok(&p, "ok");
    assert_true(wait_for(&p.srv, &p.srv.opened, 1));
    tn_ws_conn_t *sc = p.srv.conn;
    int64_t t0 = tn_ws_now_us();
    char m[8];
    for (int i = 0; i < 4; i++) {
        snprintf(m, sizeof(m), "p%d", i);
        tn_ws_conn_send_at(sc, m, strlen(m), true, t0 + 60000 + i * 40000, 7);
    }
    tn_ws_conn_send_at(sc, "gone", 4, false, t0 + 2000000, 9);
    tn_ws_conn_send(sc, "now", 3, false);
    assert_int_equal(tn_ws_conn_cancel(sc, 9), 1);
    assert_true(wait_for(&p.cli, &p.cli.nmsgs, 5));
    assert_string_equal(p.cli.msgs[0], "now");
    for (int i = 0; i < 4; i++) {
        snprintf(m, sizeof(m), "p%d", i);
        assert_string_equal(p.cli.msgs[i + 1], m);
        assert_true(p.cli.at[i + 1] >= t0 + 60000 + i * 40000);
        assert_true(p.cli.at[i + 1] < t0 + 60000 + i * 40000 + 200000);
    }
    tn_clock_sleep_ms(50);
    assert_int_equal(p.cli.nmsgs, 5);
    /* barge-in: queued audio dropped by tag */
    tn_ws_conn_send_at(sc, "a", 1, true, t0 + 5000000, 11);
    tn_ws_conn_send_at(sc, "b", 1, true, t0 + 5020000, 11);
    assert_int_equal(tn_ws_conn_queued(sc), 2);
    assert_int_equal(tn_ws_conn_cancel(sc, 11), 2);
    assert_int_equal(tn_ws_conn_queued(sc), 0);
    tn_ws_conn_release(c);
    pair_down(&p);
}

/* A refused upgrade reaches the client as its HTTP status; caps close with 1009. */
static void test_refused_and_too_big(void **state)
{
    pair_t p;
    TN_UNUSED(state);
    pair_up(&p);
    tn_ws_conn_t *bad = connect_ok(&p, "nope");
    assert_true(wait_for(&p.cli, &p.cli.closed, 1));
    assert_int_equal(p.cli.http_status, 401);
    assert_int_equal(p.srv.opened, 0);
    tn_ws_conn_release(bad);

    tn_ws_conn_t *c = connect_ok(&p, "ok");
    assert_true(wait_for(&p.cli, &p.cli.opened, 1));
    char *big = tn_xcalloc(1, 6000); /* over max_frame (4096) */
    tn_ws_conn_send(c, big, 6000, true);
    assert_true(wait_for(&p.cli, &p.cli.closed, 2));
    assert_int_equal(p.cli.close_code, 1009);
    free(big);
    tn_ws_conn_release(c);
    pair_down(&p);
}

/* Plain HTTP routes on the same port, 404 elsewhere; shutdown sends 1001. */
static void test_http_and_shutdown(void **state)
{
    pair_t p;
    TN_UNUSED(state);
    pair_up(&p);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)tn_ws_server_port(p.server))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                       "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t)(sizeof(req) - 1));
    char buf[4096] = "";
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(buf) - 1 && (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "hello"));

    tn_ws_conn_t *c = connect_ok(&p, "ok");
    assert_true(wait_for(&p.cli, &p.cli.opened, 1));
    assert_int_equal(tn_ws_server_shutdown(p.server, TN_WS_CLOSE_GOING_AWAY, "bye", 3000), 0);
    assert_true(wait_for(&p.cli, &p.cli.closed, 1));
    assert_int_equal(p.cli.close_code, 1001);
    tn_ws_conn_t *late = connect_ok(&p, "ok");
    assert_true(wait_for(&p.cli, &p.cli.closed, 2));
    assert_int_equal(p.cli.http_status, 503);
    tn_ws_conn_release(late);
    tn_ws_conn_release(c);
    pair_down(&p);
}

/* lws's own timers (idle ping, then hangup) run on the event loop: a client that completes the
 * upgrade and then never answers is closed after about twice idle_timeout_s. */
static void test_idle_hangup(void **state)
{
    side_t srv;
    tn_ws_handlers_t sh = {srv_upgrade_echo, on_open, on_message, on_close};
    char err[256];
    TN_UNUSED(state);
    side_init(&srv);
    tn_ws_server_opts_t o = tn_ws_server_opts_default();
    o.bind_addr = "127.0.0.1";
    o.port = 0;
    o.ws_path = "/ws";
    o.idle_timeout_s = 1;
    o.handlers = &sh;
    o.opaque = &srv;
    tn_ws_server_t *server = tn_ws_server_new(&o, NULL, 0, err, sizeof(err));
    assert_non_null(server);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)tn_ws_server_port(server))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char req[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ok\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t)(sizeof(req) - 1));
    assert_true(wait_for(&srv, &srv.opened, 1));
    int64_t t0 = tn_clock_mono_ms();
    assert_true(wait_for(&srv, &srv.closed, 1)); /* within 5 s: ping at 1 s, hangup at 2 s */
    int64_t took = tn_clock_mono_ms() - t0;
    assert_true(took >= 900);
    close(fd);
    tn_ws_server_destroy(server);
    side_free(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_paced_and_cancelled),
        cmocka_unit_test(test_refused_and_too_big),
        cmocka_unit_test(test_http_and_shutdown),
        cmocka_unit_test(test_idle_hangup),
    };
    return cmocka_run_group_tests_name("ws", tests, NULL, NULL);
}
