/* WebSocket server and client on libwebsockets: one loop thread per context, size caps, a
 * thread-safe timed send queue per connection, and plain HTTP routes on the server's port.
 * libwebsockets runs on a libev loop that this module owns (its evlib plugin, epoll): the
 * default poll() backend walks every socket on every wake-up, which made a loop with a few
 * hundred voice sessions spend more time in poll() than in their audio. */
#include "taina/ws.h"

#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "taina/log.h"
#include "taina/mem.h"

/* ------------------------------------------------------------------------------------------- */
/* Types                                                                                        */

typedef struct msg {
    struct msg *next;
    int64_t due;
    unsigned tag;
    bool binary;
    size_t len;
    unsigned char buf[]; /* LWS_PRE headroom + payload */
} msg_t;

typedef struct loop loop_t;

struct tn_ws_conn {
    atomic_int refs;
    loop_t *loop;
    void *user;
    /* guarded by mu */
    pthread_mutex_t mu;
    msg_t *head, *tail;
    size_t nqueued, qbytes;
    /* due times never decrease along the queue: a walk can stop at the first one not due */
    bool in_order;
    int64_t last_due;
    bool closing;
    atomic_llong late_max; /* worst lateness of a timed message at its write */
    int close_code;
    char close_reason[124];
    atomic_bool open;
    /* loop thread only */
    struct lws *wsi;
    bool in_wake; /* guarded by loop->mu */
    bool opened, gone, is_client, need_connect;
    int peer_code, http_status;
    unsigned char *rx;
    size_t rxlen, rxcap;
    bool rx_binary;
    struct tn_ws_conn *prev_c, *next_c; /* the loop's list of connections */
    /* waiting for the pacing tick: its earliest timed message is not due yet */
    bool paced;
    int64_t next_due;
    struct tn_ws_conn *prev_p, *next_p;
    /* client connect parameters */
    char *host, *path;
    int port;
    char **headers;
};

typedef struct route {
    tn_ws_http_route_t r;
} route_t;

struct loop {
    struct lws_context *ctx;
    struct ev_loop *evl; /* ours, given to libwebsockets as a foreign loop */
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t mu; /* wake list, close-all request */
    tn_ws_conn_t **wake;
    size_t nwake, capwake;
    int close_all_code; /* 0 = none pending */
    char close_all_reason[124];
    const tn_ws_handlers_t *h;
    void *opaque;
    size_t max_frame, max_message, max_queue, max_http_body;
    atomic_uint nconns;
    atomic_bool refusing;
    unsigned max_conns;
    tn_ws_conn_t *conns; /* loop thread only */
    const char *ws_path;
    route_t *routes;
    size_t nroutes;
    struct lws_protocols protocols[2];
    lws_retry_bo_t retry;
    ev_timer nudge; /* once a second: libwebsockets' own timers get serviced (see loop_start) */
    /* the shared pacing tick (loop thread only) */
    ev_timer tick;
    int64_t tick_us;      /* the tick's period: due times are served on its grid */
    unsigned io_batch_us; /* libev's I/O collect interval (0: poll as soon as anything is ready) */
    int64_t tick_at;      /* when the armed tick fires (0: not armed) */
    tn_ws_conn_t *paced;  /* connections waiting for it */
};

struct tn_ws_server {
    loop_t l;
    char *ws_path;
    int port;
};

struct tn_ws_client {
    loop_t l;
};

/* An HTTP request on the server (per-session data of plain HTTP connections). */
struct tn_ws_http_req {
    struct lws *wsi;
    const route_t *route;
    unsigned char *body;
    size_t body_len;
    bool too_large, answered, close_after;
    unsigned char *resp; /* LWS_PRE + body */
    size_t resp_len;
};

/* ------------------------------------------------------------------------------------------- */
/* Clock and log                                                                                */

int64_t tn_ws_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    /* libwebsockets logs peers' misbehaviour as errors: debug context "http" */
    TN_DBG(TN_DBG_HTTP, "libwebsockets(%d): %.*s", level, (int)n, line);
}

static void lws_log_setup(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
}

/* ------------------------------------------------------------------------------------------- */
/* Connections                                                                                  */

static tn_ws_conn_t *conn_new(loop_t *l)
{
    tn_ws_conn_t *c = tn_xcalloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    c->loop = l;
    c->peer_code = 0;
    return c;
}

static void queue_free(msg_t *m)
{
    while (m) {
        msg_t *n = m->next;
        free(m);
        m = n;
    }
}

tn_ws_conn_t *tn_ws_conn_keep(tn_ws_conn_t *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void tn_ws_conn_release(tn_ws_conn_t *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    queue_free(c->head);
    free(c->rx);
    free(c->host);
    free(c->path);
    for (size_t i = 0; c->headers && c->headers[i]; i++)
        free(c->headers[i]);
    free(c->headers);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void *tn_ws_conn_user(const tn_ws_conn_t *c)
{
    return c->user;
}

void tn_ws_conn_set_user(tn_ws_conn_t *c, void *user)
{
    c->user = user;
}

bool tn_ws_conn_open(const tn_ws_conn_t *c)
{
    return atomic_load(&c->open);
}

static bool on_loop_thread(const loop_t *l)
{
    return l->running && pthread_equal(pthread_self(), l->thread);
}

/* Ask the loop to service @p c (write, close, connect). Any thread. */
static void wake(tn_ws_conn_t *c)
{
    loop_t *l = c->loop;
    if (on_loop_thread(l)) {
        if (c->wsi && !c->gone)
            lws_callback_on_writable(c->wsi);
        return;
    }
    /* One wake-up per batch: a worker queueing a reply's packets, or many sessions' replies,
     * signals the loop once until the loop takes the list. */
    bool signal = false;
    pthread_mutex_lock(&l->mu);
    if (!c->in_wake) {
        if (l->nwake == l->capwake) {
            l->capwake = l->capwake ? l->capwake * 2 : 64;
            l->wake = tn_xrealloc(l->wake, l->capwake * sizeof(*l->wake));
        }
        c->in_wake = true;
        signal = l->nwake == 0;
        l->wake[l->nwake++] = tn_ws_conn_keep(c);
    }
    pthread_mutex_unlock(&l->mu);
    if (signal && l->ctx)
        lws_cancel_service(l->ctx);
}

static void close_locked(tn_ws_conn_t *c, int code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason ? reason : "");
    atomic_store(&c->open, false);
}

void tn_ws_conn_close(tn_ws_conn_t *c, int code, const char *reason)
{
    pthread_mutex_lock(&c->mu);
    bool was = c->closing;
    close_locked(c, code, reason);
    pthread_mutex_unlock(&c->mu);
    if (!was)
        wake(c);
}

tn_err_t tn_ws_conn_send_at(tn_ws_conn_t *c, const void *data, size_t len, bool binary,
                            int64_t due_us, unsigned tag)
{
    msg_t *m = tn_xmalloc(sizeof(*m) + LWS_PRE + len);
    m->next = NULL;
    m->due = due_us;
    m->tag = tag;
    m->binary = binary;
    m->len = len;
    if (len)
        memcpy(m->buf + LWS_PRE, data, len);
    pthread_mutex_lock(&c->mu);
    if (c->closing || c->gone) {
        pthread_mutex_unlock(&c->mu);
        free(m);
        return TN_ERR_STOPPED;
    }
    if (c->qbytes + len > c->loop->max_queue) {
        close_locked(c, TN_WS_CLOSE_POLICY, "send queue full: the client does not read");
        pthread_mutex_unlock(&c->mu);
        free(m);
        wake(c);
        return TN_ERR_TOO_LARGE;
    }
    if (!c->head) {
        c->in_order = true;
        c->last_due = 0;
    }
    if (due_us < c->last_due)
        c->in_order = false; /* e.g. an untimed message behind timed ones: walk it all */
    c->last_due = due_us;
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    c->nqueued++;
    c->qbytes += len;
    pthread_mutex_unlock(&c->mu);
    wake(c);
    return TN_OK;
}

tn_err_t tn_ws_conn_send(tn_ws_conn_t *c, const void *data, size_t len, bool binary)
{
    return tn_ws_conn_send_at(c, data, len, binary, 0, 0);
}

size_t tn_ws_conn_cancel(tn_ws_conn_t *c, unsigned tag)
{
    size_t n = 0;
    if (!tag)
        return 0;
    pthread_mutex_lock(&c->mu);
    msg_t **pp = &c->head, *last = NULL;
    while (*pp) {
        msg_t *m = *pp;
        if (m->tag == tag) {
            *pp = m->next;
            c->nqueued--;
            c->qbytes -= m->len;
            free(m);
            n++;
        } else {
            last = m;
            pp = &m->next;
        }
    }
    c->tail = last;
    pthread_mutex_unlock(&c->mu);
    return n;
}

int64_t tn_ws_conn_late_us(const tn_ws_conn_t *c)
{
    return atomic_load(&c->late_max);
}

size_t tn_ws_conn_queued(tn_ws_conn_t *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->nqueued;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Unlink and return the first message that is due, or NULL; *next_due gets the earliest due
 * time of the rest (INT64_MAX when none). Called with c->mu held. */
static msg_t *take_due(tn_ws_conn_t *c, int64_t now, int64_t *next_due)
{
    msg_t **pp = &c->head, *prev = NULL;
    *next_due = INT64_MAX;
    for (msg_t *m = c->head; m; prev = m, pp = &m->next, m = m->next) {
        if (m->due <= now) {
            *pp = m->next;
            if (c->tail == m)
                c->tail = prev;
            c->nqueued--;
            c->qbytes -= m->len;
            return m;
        }
        if (m->due < *next_due)
            *next_due = m->due;
        if (c->in_order)
            break; /* the rest are due no earlier: a paced stream is not walked every tick */
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Pacing: one tick for the whole loop                                                          */

/* Timed messages are not served by a timer per connection: a connection whose next message is
 * not due joins the loop's paced list, and one timer, on a grid of tick_us, makes every
 * connection whose time has come writable in the same wake-up. A message goes at most one
 * tick after its due time; a voice reply is queued pacing_lead ahead of real time, so the tick
 * (20 ms) costs it no lateness, and a few hundred sessions cost 50 wake-ups a second, not 50
 * each. */

static void pace_arm(loop_t *l, int64_t due)
{
    int64_t at = (due + l->tick_us - 1) / l->tick_us * l->tick_us; /* up to the grid */
    if (l->tick_at && l->tick_at <= at)
        return;
    int64_t wait = at - tn_ws_now_us();
    ev_timer_stop(l->evl, &l->tick);
    ev_timer_set(&l->tick, wait > 0 ? (double)wait / 1e6 : 0., 0.);
    ev_timer_start(l->evl, &l->tick);
    l->tick_at = at;
}

static void pace_add(loop_t *l, tn_ws_conn_t *c, int64_t due)
{
    c->next_due = due;
    if (!c->paced) {
        c->paced = true;
        c->prev_p = NULL;
        c->next_p = l->paced;
        if (l->paced)
            l->paced->prev_p = c;
        l->paced = c;
    }
    pace_arm(l, due);
}

static void pace_remove(loop_t *l, tn_ws_conn_t *c)
{
    if (!c->paced)
        return;
    if (c->prev_p)
        c->prev_p->next_p = c->next_p;
    else
        l->paced = c->next_p;
    if (c->next_p)
        c->next_p->prev_p = c->prev_p;
    c->prev_p = c->next_p = NULL;
    c->paced = false;
}

static void pace_tick(struct ev_loop *evl, ev_timer *w, int revents)
{
    loop_t *l = w->data;
    int64_t now = tn_ws_now_us(), next = INT64_MAX;
    (void)evl;
    (void)revents;
    l->tick_at = 0;
    for (tn_ws_conn_t *c = l->paced, *n; c; c = n) {
        n = c->next_p;
        if (c->next_due <= now) {
            pace_remove(l, c);
            if (c->wsi && !c->gone)
                lws_callback_on_writable(c->wsi); /* conn_write sends it, or re-queues */
        } else if (c->next_due < next) {
            next = c->next_due;
        }
    }
    if (next != INT64_MAX)
        pace_arm(l, next);
}

/* WRITEABLE: send what is due (until the socket would block), close when asked, or wait for
 * the pacing tick of the next timed message. Returns -1 to close. */
static int conn_write(tn_ws_conn_t *c, struct lws *wsi)
{
    int64_t next = INT64_MAX;
    int sent = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (sent && lws_send_pipe_choked(wsi)) {
            pthread_mutex_unlock(&c->mu);
            lws_callback_on_writable(wsi);
            return 0;
        }
        msg_t *m = take_due(c, tn_ws_now_us(), &next);
        if (!m)
            break;
        pthread_mutex_unlock(&c->mu);
        if (m->due) {
            int64_t late = tn_ws_now_us() - m->due;
            if (late > atomic_load(&c->late_max))
                atomic_store(&c->late_max, late);
        }
        int rc =
            lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        size_t len = m->len;
        free(m);
        if (rc < (int)len)
            return -1;
        sent++;
        pthread_mutex_lock(&c->mu);
    }
    if (c->closing) {
        queue_free(c->head);
        c->head = c->tail = NULL;
        c->nqueued = c->qbytes = 0;
        int code = c->close_code;
        char reason[124];
        snprintf(reason, sizeof(reason), "%s", c->close_reason);
        pthread_mutex_unlock(&c->mu);
        c->peer_code = code; /* reported to on_close as ours */
        lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
        return -1;
    }
    pthread_mutex_unlock(&c->mu);
    if (next != INT64_MAX)
        pace_add(c->loop, c, next);
    return 0;
}

static void conn_link(loop_t *l, tn_ws_conn_t *c)
{
    c->next_c = l->conns;
    if (l->conns)
        l->conns->prev_c = c;
    l->conns = c;
}

static void conn_unlink(loop_t *l, tn_ws_conn_t *c)
{
    if (c->prev_c)
        c->prev_c->next_c = c->next_c;
    else if (l->conns == c)
        l->conns = c->next_c;
    if (c->next_c)
        c->next_c->prev_c = c->prev_c;
    c->prev_c = c->next_c = NULL;
}

/* The socket is gone: tell the owner once, drop the socket's reference. */
static void conn_gone(tn_ws_conn_t *c, int code)
{
    loop_t *l = c->loop;
    if (c->gone)
        return;
    pthread_mutex_lock(&c->mu);
    c->gone = true;
    c->closing = true;
    atomic_store(&c->open, false);
    pthread_mutex_unlock(&c->mu);
    c->wsi = NULL;
    conn_unlink(l, c);
    pace_remove(l, c);
    if (!c->is_client)
        atomic_fetch_sub(&l->nconns, 1);
    if ((c->opened || c->is_client) && l->h->on_close)
        l->h->on_close(c, code, c->http_status, l->opaque);
    tn_ws_conn_release(c);
}

/* Append one received piece; deliver the message when complete. -1: close (reason set). */
static int conn_receive(tn_ws_conn_t *c, struct lws *wsi, const void *in, size_t len)
{
    loop_t *l = c->loop;
    size_t remaining = lws_remaining_packet_payload(wsi);
    if (len + remaining > l->max_frame) {
        static const char why[] = "frame too large";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                         sizeof(why) - 1);
        c->peer_code = TN_WS_CLOSE_TOO_BIG;
        return -1;
    }
    if (c->rxlen == 0)
        c->rx_binary = lws_frame_is_binary(wsi);
    if (c->rxlen + len + remaining > l->max_message) {
        static const char why[] = "message too large";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                         sizeof(why) - 1);
        c->peer_code = TN_WS_CLOSE_TOO_BIG;
        return -1;
    }
    bool final = lws_is_final_fragment(wsi);
    if (final && c->rxlen == 0) { /* the common case: a whole message in one piece */
        if (l->h->on_message)
            l->h->on_message(c, in, len, c->rx_binary, l->opaque);
        return 0;
    }
    if (c->rxlen + len > c->rxcap) {
        size_t cap = c->rxcap ? c->rxcap : 4096;
        while (cap < c->rxlen + len)
            cap *= 2;
        c->rx = tn_xrealloc(c->rx, cap);
        c->rxcap = cap;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        size_t n = c->rxlen;
        c->rxlen = 0;
        if (l->h->on_message)
            l->h->on_message(c, c->rx, n, c->rx_binary, l->opaque);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Loop                                                                                         */

static void *loop_main(void *arg)
{
    loop_t *l = arg;
    /* Returns on ev_break(), from the wake-up that sees the stop flag (loop_wakeups). */
    ev_run(l->evl, 0);
    return NULL;
}

static void client_do_connect(loop_t *l, tn_ws_conn_t *c);

/* EVENT_WAIT_CANCELLED: service the connections other threads asked for. */
static void loop_wakeups(loop_t *l)
{
    pthread_mutex_lock(&l->mu);
    tn_ws_conn_t **list = l->wake;
    size_t n = l->nwake;
    l->wake = NULL;
    l->nwake = l->capwake = 0;
    for (size_t i = 0; i < n; i++)
        list[i]->in_wake = false;
    int code = l->close_all_code;
    char reason[124];
    snprintf(reason, sizeof(reason), "%s", l->close_all_reason);
    l->close_all_code = 0;
    pthread_mutex_unlock(&l->mu);
    if (atomic_load(&l->stop))
        ev_break(l->evl, EVBREAK_ALL);
    for (size_t i = 0; i < n; i++) {
        tn_ws_conn_t *c = list[i];
        if (c->need_connect) {
            c->need_connect = false;
            client_do_connect(l, c);
        } else if (c->wsi && !c->gone) {
            lws_callback_on_writable(c->wsi);
        }
        tn_ws_conn_release(c);
    }
    free(list);
    if (code)
        for (tn_ws_conn_t *c = l->conns; c; c = c->next_c) {
            pthread_mutex_lock(&c->mu);
            close_locked(c, code, reason);
            pthread_mutex_unlock(&c->mu);
            if (c->wsi)
                lws_callback_on_writable(c->wsi);
        }
}

static void loop_nudge(struct ev_loop *evl, ev_timer *w, int revents)
{
    loop_t *l = w->data;
    (void)evl;
    (void)revents;
    if (l->ctx)
        lws_cancel_service(l->ctx);
}

static tn_err_t loop_start(loop_t *l, struct lws_context_creation_info *info, char *errbuf,
                           size_t errlen)
{
    lws_log_setup();
    pthread_mutex_init(&l->mu, NULL);
    /* epoll: one wake-up costs what is ready, not every socket. No signal watchers: a foreign
     * loop leaves the process's signal handling alone (lws's own loop would take SIGINT). */
    l->evl = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
    if (!l->evl) {
        snprintf(errbuf, errlen, "cannot create the WebSocket event loop (epoll)");
        return TN_ERR_IO;
    }
    /* libwebsockets (4.1) re-arms its timer (idle ping, hangup, timeouts) from an idle watcher
     * that runs after socket events; on an idle loop with slow timing (valgrind) the hangup of
     * a silent peer never came. A wake-up of our own once a second goes through that path. */
    ev_timer_init(&l->nudge, loop_nudge, 1., 1.);
    l->nudge.data = l;
    ev_timer_start(l->evl, &l->nudge);
    ev_timer_init(&l->tick, pace_tick, 0., 0.);
    l->tick.data = l;
    if (l->io_batch_us)
        ev_set_io_collect_interval(l->evl, (double)l->io_batch_us / 1e6);
    info->user = l;
    info->options |= LWS_SERVER_OPTION_LIBEV;
    info->foreign_loops = (void **)&l->evl;
    l->ctx = lws_create_context(info);
    if (!l->ctx) {
        snprintf(errbuf, errlen,
                 "cannot start the WebSocket loop (port %d in use, or the libwebsockets libev "
                 "plugin missing?)",
                 info->port);
        ev_loop_destroy(l->evl);
        l->evl = NULL;
        return TN_ERR_IO;
    }
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        snprintf(errbuf, errlen, "cannot start the WebSocket loop thread");
        lws_context_destroy(l->ctx);
        l->ctx = NULL;
        ev_loop_destroy(l->evl);
        l->evl = NULL;
        return TN_ERR_IO;
    }
    l->running = true;
    return TN_OK;
}

static void loop_stop(loop_t *l)
{
    if (l->running) {
        atomic_store(&l->stop, true);
        lws_cancel_service(l->ctx);
        pthread_join(l->thread, NULL);
        l->running = false;
    }
    if (l->ctx)
        lws_context_destroy(l->ctx); /* closes what is left: callbacks on this thread */
    l->ctx = NULL;
    if (l->evl) {
        ev_timer_stop(l->evl, &l->nudge);
        ev_timer_stop(l->evl, &l->tick);
        ev_loop_destroy(l->evl); /* after the context: it stops its watchers on this loop */
    }
    l->evl = NULL;
    for (size_t i = 0; i < l->nwake; i++)
        tn_ws_conn_release(l->wake[i]);
    free(l->wake);
    l->wake = NULL;
    l->nwake = 0;
    pthread_mutex_destroy(&l->mu);
}

/* ------------------------------------------------------------------------------------------- */
/* Server: HTTP                                                                                 */

static int hdr_token(const char *name)
{
    static const struct {
        const char *name;
        int tok;
    } known[] = {
        {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
        {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
        {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
        {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
        {"origin", WSI_TOKEN_ORIGIN},
        {"host", WSI_TOKEN_HOST},
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(known); i++)
        if (!strcasecmp(name, known[i].name))
            return known[i].tok;
    return -1;
}

static int wsi_header(struct lws *wsi, const char *name, char *buf, size_t len)
{
    int tok = hdr_token(name);
    int n;
    if (tok >= 0) {
        if (lws_hdr_total_length(wsi, (enum lws_token_indexes)tok) <= 0)
            return -1;
        n = lws_hdr_copy(wsi, buf, (int)len, (enum lws_token_indexes)tok);
    } else {
        char cname[80];
        int cl = snprintf(cname, sizeof(cname), "%s:", name);
        if (cl <= 0 || (size_t)cl >= sizeof(cname) || lws_hdr_custom_length(wsi, cname, cl) <= 0)
            return -1;
        n = lws_hdr_custom_copy(wsi, buf, (int)len, cname, cl);
    }
    return n < 0 ? -1 : n;
}

int tn_ws_http_header(tn_ws_http_req_t *r, const char *name, char *buf, size_t len)
{
    return wsi_header(r->wsi, name, buf, len);
}

const char *tn_ws_http_body(tn_ws_http_req_t *r, size_t *len)
{
    *len = r->body_len;
    return r->body ? (const char *)r->body : "";
}

void tn_ws_http_respond(tn_ws_http_req_t *r, int status, const char *content_type, const void *body,
                        size_t len)
{
    unsigned char hbuf[LWS_PRE + 1024];
    unsigned char *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof(hbuf) - 1;
    if (r->answered)
        return;
    r->answered = true;
    free(r->resp);
    r->resp = tn_xmalloc(LWS_PRE + len + 1);
    if (len)
        memcpy(r->resp + LWS_PRE, body, len);
    r->resp_len = len;
    if (lws_add_http_common_headers(r->wsi, (unsigned)status, content_type, len, &p, end) ||
        lws_finalize_write_http_header(r->wsi, start, &p, end)) {
        r->close_after = true;
        return;
    }
    lws_callback_on_writable(r->wsi);
}

static void http_error(tn_ws_http_req_t *r, int status, const char *code, const char *msg)
{
    char body[512];
    int n =
        snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    tn_ws_http_respond(r, status, "application/json", body, (size_t)n);
}

static void http_dispatch(loop_t *l, tn_ws_http_req_t *r)
{
    if (r->too_large) {
        r->close_after = true;
        http_error(r, 413, "payload_too_large", "the body is larger than the limit");
    } else {
        r->route->r.fn(r, r->route->r.opaque);
        if (!r->answered)
            http_error(r, 500, "internal", "the handler did not answer");
    }
    (void)l;
}

static void http_reset(tn_ws_http_req_t *r, struct lws *wsi)
{
    free(r->body);
    free(r->resp);
    memset(r, 0, sizeof(*r));
    r->wsi = wsi;
}

/* LWS_CALLBACK_HTTP: route by method and path; GET answers now, POST after its body. */
static int http_begin(loop_t *l, struct lws *wsi, tn_ws_http_req_t *r, const char *uri)
{
    http_reset(r, wsi);
    const char *method = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)    ? "GET"
                         : lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) ? "POST"
                                                                         : "OTHER";
    bool path_known = false;
    for (size_t i = 0; i < l->nroutes; i++) {
        if (strcmp(l->routes[i].r.path, uri) != 0)
            continue;
        path_known = true;
        if (!strcmp(l->routes[i].r.method, method))
            r->route = &l->routes[i];
    }
    if (!r->route) {
        if (path_known)
            http_error(r, 405, "method_not_allowed", "method not allowed on this path");
        else if (l->ws_path && !strcmp(uri, l->ws_path))
            http_error(r, 426, "upgrade_required", "this path takes WebSocket upgrades only");
        else
            http_error(r, 404, "not_found", "no such path");
        return 0;
    }
    if (!strcmp(method, "POST")) {
        char cl[32];
        long long n = 0;
        if (wsi_header(wsi, "content-length", cl, sizeof(cl)) > 0)
            n = strtoll(cl, NULL, 10);
        if (n > (long long)l->max_http_body) {
            r->too_large = true;
            http_dispatch(l, r);
            return 0;
        }
        if (n > 0)
            return 0; /* wait for the body */
    }
    http_dispatch(l, r);
    return 0;
}

static int http_body(loop_t *l, tn_ws_http_req_t *r, const void *in, size_t len)
{
    if (r->too_large || !r->route || !in || len == 0)
        return 0;
    if (r->body_len + len > l->max_http_body) {
        r->too_large = true;
        return 0;
    }
    r->body = tn_xrealloc(r->body, r->body_len + len + 1);
    memcpy(r->body + r->body_len, in, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int http_writeable(tn_ws_http_req_t *r, struct lws *wsi)
{
    if (!r->answered || !r->resp)
        return 0;
    int rc = lws_write(wsi, r->resp + LWS_PRE, r->resp_len, LWS_WRITE_HTTP_FINAL);
    bool close_after = r->close_after;
    http_reset(r, wsi);
    if (rc < 0 || close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Server: upgrade                                                                              */

int tn_ws_conn_header(tn_ws_conn_t *c, const char *name, char *buf, size_t len)
{
    return c->wsi ? wsi_header(c->wsi, name, buf, len) : -1;
}

int tn_ws_conn_query(tn_ws_conn_t *c, const char *name, char *buf, size_t len)
{
    char key[80];
    if (!c->wsi || snprintf(key, sizeof(key), "%s=", name) >= (int)sizeof(key))
        return -1;
    const char *v = lws_get_urlarg_by_name(c->wsi, key, buf, (int)len);
    if (!v)
        return -1;
    size_t n = strlen(v);
    memmove(buf, v, n + 1);
    return (int)n;
}

/* A refused upgrade: the status line and a JSON body written straight to the socket (the
 * connection is closed right after; libwebsockets has no response path for a refused upgrade). */
static void refuse(struct lws *wsi, int status, const char *code, const char *msg)
{
    char body[512], resp[1024];
    int bl =
        snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    const char *text = status == 401   ? "Unauthorized"
                       : status == 403 ? "Forbidden"
                       : status == 404 ? "Not Found"
                       : status == 503 ? "Service Unavailable"
                                       : "Error";
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "%sConnection: close\r\n\r\n%s",
                     status, text, bl, status == 401 ? "WWW-Authenticate: Bearer\r\n" : "", body);
    if (n > 0 && (size_t)n < sizeof(resp)) {
        ssize_t w = send(lws_get_socket_fd(wsi), resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w; /* best effort: the connection closes either way */
    }
}

static int ws_filter(loop_t *l, struct lws *wsi)
{
    char uri[256];
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) < 0 || !l->ws_path ||
        strcmp(uri, l->ws_path) != 0) {
        refuse(wsi, 404, "not_found", "no WebSocket endpoint on this path");
        return -1;
    }
    if (atomic_load(&l->refusing)) {
        refuse(wsi, 503, "shutting_down", "the service is shutting down");
        return -1;
    }
    if (atomic_load(&l->nconns) >= l->max_conns) {
        refuse(wsi, 503, "too_many_sessions", "too many open sessions; retry later");
        return -1;
    }
    tn_ws_conn_t *c = conn_new(l);
    c->wsi = wsi;
    char code[64] = "refused", msg[256] = "refused";
    int st = l->h->on_upgrade ? l->h->on_upgrade(c, l->opaque, code, msg) : 0;
    if (st) {
        refuse(wsi, st, code, msg);
        c->wsi = NULL;
        tn_ws_conn_release(c);
        return -1;
    }
    atomic_fetch_add(&l->nconns, 1);
    atomic_store(&c->open, true);
    conn_link(l, c);
    lws_set_opaque_user_data(wsi, c);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The one protocol callback (server and client)                                                */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct lws_context *ctx = wsi ? lws_get_context(wsi) : NULL;
    loop_t *l = ctx ? lws_context_user(ctx) : NULL;
    tn_ws_conn_t *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    tn_ws_http_req_t *r = user;
    if (!l)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        loop_wakeups(l);
        return 0;
    /* server, plain HTTP */
    case LWS_CALLBACK_HTTP:
        return r ? http_begin(l, wsi, r, in ? (const char *)in : "/") : -1;
    case LWS_CALLBACK_HTTP_BODY:
        return r ? http_body(l, r, in, len) : -1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (r && r->route && !r->answered)
            http_dispatch(l, r);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return r ? http_writeable(r, wsi) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (r && !c)
            http_reset(r, wsi);
        return 0;
    /* server, WebSocket */
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_filter(l, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if (c) {
            c->opened = true;
            if (l->h->on_open)
                l->h->on_open(c, l->opaque);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c) {
            c->opened = true;
            atomic_store(&c->open, true);
            c->http_status = 101;
            if (l->h->on_open)
                l->h->on_open(c, l->opaque);
            lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return c && !c->gone ? conn_receive(c, wsi, in, len) : 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c && !c->gone ? conn_write(c, wsi) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c && len >= 2) {
            const unsigned char *p = in;
            c->peer_code = (p[0] << 8) | p[1];
        } else if (c) {
            c->peer_code = TN_WS_CLOSE_NO_STATUS;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (c && c->headers) {
            unsigned char **p = in, *end = *p + len;
            for (size_t i = 0; c->headers[i]; i++) {
                const char *h = c->headers[i], *colon = strchr(h, ':');
                if (!colon)
                    continue;
                char name[128];
                size_t nl = (size_t)(colon - h) + 1;
                if (nl >= sizeof(name))
                    continue;
                memcpy(name, h, nl);
                name[nl] = '\0';
                const char *v = colon + 1;
                while (*v == ' ')
                    v++;
                if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                                (const unsigned char *)v, (int)strlen(v), p, end))
                    return -1;
            }
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c) {
            c->http_status = (int)lws_http_client_http_response(wsi);
            TN_DBG(TN_DBG_HTTP, "ws connect failed: %s", in ? (const char *)in : "?");
            conn_gone(c, TN_WS_CLOSE_ABNORMAL);
            lws_set_opaque_user_data(wsi, NULL);
        }
        return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c) {
            conn_gone(c, c->peer_code ? c->peer_code : TN_WS_CLOSE_ABNORMAL);
            lws_set_opaque_user_data(wsi, NULL);
        }
        if (reason == LWS_CALLBACK_WSI_DESTROY && r && !c && l->protocols[0].per_session_data_size)
            http_reset(r, wsi);
        return 0;
    default:
        return 0;
    }
}

static void protocols_init(loop_t *l)
{
    l->protocols[0].name = "taina-ws";
    l->protocols[0].callback = callback;
    l->protocols[0].per_session_data_size = sizeof(tn_ws_http_req_t);
    l->protocols[0].rx_buffer_size = l->max_frame < 4096 ? 4096 : l->max_frame;
}

/* ------------------------------------------------------------------------------------------- */
/* Server                                                                                       */

tn_ws_server_opts_t tn_ws_server_opts_default(void)
{
    tn_ws_server_opts_t o = {0};
    o.bind_addr = "0.0.0.0";
    o.ws_path = "/";
    o.max_frame = 64 * 1024;
    o.max_message = 256 * 1024;
    o.max_queue = 4u << 20;
    o.max_http_body = 64 * 1024;
    o.max_conns = 4096;
    o.idle_timeout_s = 30;
    o.pacing_tick_ms = 20;
    return o;
}

tn_ws_server_t *tn_ws_server_new(const tn_ws_server_opts_t *o, const tn_ws_http_route_t *routes,
                                 size_t nroutes, char *errbuf, size_t errlen)
{
    static const tn_ws_handlers_t none = {0};
    tn_ws_server_t *s = tn_xcalloc(1, sizeof(*s));
    loop_t *l = &s->l;
    s->ws_path = tn_xstrdup(o->ws_path ? o->ws_path : "/");
    l->ws_path = s->ws_path;
    l->h = o->handlers ? o->handlers : &none;
    l->opaque = o->opaque;
    l->max_frame = o->max_frame ? o->max_frame : 64 * 1024;
    l->max_message = o->max_message ? o->max_message : 256 * 1024;
    l->max_queue = o->max_queue ? o->max_queue : 4u << 20;
    l->max_http_body = o->max_http_body ? o->max_http_body : 64 * 1024;
    l->max_conns = o->max_conns ? o->max_conns : 4096;
    l->tick_us = (int64_t)(o->pacing_tick_ms ? o->pacing_tick_ms : 20) * 1000;
    l->io_batch_us = o->io_batch_us;
    if (l->max_message < l->max_frame)
        l->max_message = l->max_frame;
    l->nroutes = nroutes;
    l->routes = tn_xcalloc(nroutes ? nroutes : 1, sizeof(*l->routes));
    for (size_t i = 0; i < nroutes; i++)
        l->routes[i].r = routes[i];
    protocols_init(l);
    unsigned idle = o->idle_timeout_s ? o->idle_timeout_s : 30;
    l->retry.secs_since_valid_ping = (uint16_t)idle;
    l->retry.secs_since_valid_hangup = (uint16_t)(idle * 2);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = o->port;
    const char *bind = o->bind_addr ? o->bind_addr : "0.0.0.0";
    info.iface = strcmp(bind, "0.0.0.0") ? bind : NULL;
    info.protocols = l->protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    info.pt_serv_buf_size =
        (unsigned)(l->max_frame + LWS_PRE + 1024 > 16384 ? l->max_frame + LWS_PRE + 1024 : 16384);
    info.retry_and_idle_policy = &l->retry;
    info.timeout_secs = idle;
    info.max_http_header_data = 4096;
    info.vhost_name = "taina";
    if (loop_start(l, &info, errbuf, errlen) != TN_OK) {
        free(l->routes);
        free(s->ws_path);
        free(s);
        return NULL;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(l->ctx, "taina");
    s->port = vh ? lws_get_vhost_listen_port(vh) : o->port;
    return s;
}

int tn_ws_server_port(const tn_ws_server_t *s)
{
    return s->port;
}

unsigned tn_ws_server_conns(const tn_ws_server_t *s)
{
    return atomic_load(&s->l.nconns);
}

unsigned tn_ws_server_shutdown(tn_ws_server_t *s, int code, const char *reason, int64_t wait_ms)
{
    loop_t *l = &s->l;
    atomic_store(&l->refusing, true);
    pthread_mutex_lock(&l->mu);
    l->close_all_code = code;
    snprintf(l->close_all_reason, sizeof(l->close_all_reason), "%s", reason ? reason : "");
    pthread_mutex_unlock(&l->mu);
    lws_cancel_service(l->ctx);
    int64_t end = tn_ws_now_us() + wait_ms * 1000;
    while (atomic_load(&l->nconns) > 0 && tn_ws_now_us() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&l->nconns);
}

void tn_ws_server_destroy(tn_ws_server_t *s)
{
    if (!s)
        return;
    loop_stop(&s->l);
    free(s->l.routes);
    free(s->ws_path);
    free(s);
}

/* ------------------------------------------------------------------------------------------- */
/* Client                                                                                       */

tn_ws_client_opts_t tn_ws_client_opts_default(void)
{
    tn_ws_client_opts_t o = {0};
    o.max_frame = 64 * 1024;
    o.max_message = 1u << 20;
    o.max_queue = 16u << 20;
    o.pacing_tick_ms = 5;
    return o;
}

tn_ws_client_t *tn_ws_client_new(const tn_ws_client_opts_t *o, char *errbuf, size_t errlen)
{
    static const tn_ws_handlers_t none = {0};
    tn_ws_client_t *cl = tn_xcalloc(1, sizeof(*cl));
    loop_t *l = &cl->l;
    l->h = o->handlers ? o->handlers : &none;
    l->opaque = o->opaque;
    l->max_frame = o->max_frame ? o->max_frame : 64 * 1024;
    l->max_message = o->max_message ? o->max_message : 1u << 20;
    l->max_queue = o->max_queue ? o->max_queue : 16u << 20;
    l->max_conns = UINT32_MAX;
    l->tick_us = (int64_t)(o->pacing_tick_ms ? o->pacing_tick_ms : 5) * 1000;
    protocols_init(l);
    l->protocols[0].per_session_data_size = 0;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = l->protocols;
    info.pt_serv_buf_size =
        (unsigned)(l->max_frame + LWS_PRE + 1024 > 16384 ? l->max_frame + LWS_PRE + 1024 : 16384);
    info.fd_limit_per_thread = 8192;
    if (loop_start(l, &info, errbuf, errlen) != TN_OK) {
        free(cl);
        return NULL;
    }
    return cl;
}

/* On the loop thread: start the connection (its outcome comes as callbacks). */
static void client_do_connect(loop_t *l, tn_ws_conn_t *c)
{
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof(i));
    i.context = l->ctx;
    i.address = c->host;
    i.port = c->port;
    i.path = c->path;
    i.host = c->host;
    i.origin = c->host;
    i.local_protocol_name = "taina-ws";
    i.opaque_user_data = c;
    conn_link(l, c);
    c->wsi = lws_client_connect_via_info(&i);
    if (!c->wsi && !c->gone) /* failed before any callback */
        conn_gone(c, TN_WS_CLOSE_ABNORMAL);
}

tn_ws_conn_t *tn_ws_client_connect(tn_ws_client_t *cl, const char *url, const char *const *headers,
                                   void *user, char *errbuf, size_t errlen)
{
    if (strncmp(url, "ws://", 5) != 0) {
        snprintf(errbuf, errlen, "not a ws:// URL: %s", url);
        return NULL;
    }
    const char *hp = url + 5, *slash = strchr(hp, '/');
    size_t hl = slash ? (size_t)(slash - hp) : strlen(hp);
    char hostport[256];
    if (hl == 0 || hl >= sizeof(hostport)) {
        snprintf(errbuf, errlen, "bad host in %s", url);
        return NULL;
    }
    memcpy(hostport, hp, hl);
    hostport[hl] = '\0';
    int port = 80;
    char *colon = strrchr(hostport, ':');
    if (colon) {
        *colon = '\0';
        port = (int)strtol(colon + 1, NULL, 10);
    }
    tn_ws_conn_t *c = conn_new(&cl->l);
    c->is_client = true;
    c->user = user;
    c->host = tn_xstrdup(hostport);
    c->port = port;
    c->path = tn_xstrdup(slash ? slash : "/");
    size_t nh = 0;
    while (headers && headers[nh])
        nh++;
    c->headers = tn_xcalloc(nh + 1, sizeof(char *));
    for (size_t i = 0; i < nh; i++)
        c->headers[i] = tn_xstrdup(headers[i]);
    c->need_connect = true;
    tn_ws_conn_keep(c); /* the caller's reference; the first one is the socket's */
    if (on_loop_thread(&cl->l)) {
        c->need_connect = false;
        client_do_connect(&cl->l, c);
    } else {
        wake(c);
    }
    return c;
}

void tn_ws_client_destroy(tn_ws_client_t *cl)
{
    if (!cl)
        return;
    loop_stop(&cl->l);
    free(cl);
}
