/**
 * @file ws.h
 * @brief WebSocket server and client (wraps libwebsockets): RFC 6455 framing, masking,
 *        fragmentation, ping/pong and close codes are libwebsockets'; this module adds an event
 *        loop thread, frame and message size caps, a thread-safe send queue per connection with
 *        paced (timed) messages, and, on the server's port, small plain HTTP routes (/health,
 *        /ready, /metrics, a token endpoint).
 *
 *     tn_ws_server_opts_t o = tn_ws_server_opts_default();
 *     o.port = 8083; o.ws_path = "/v1/sessions/ws"; o.handlers = &h; o.opaque = svc;
 *     tn_ws_server_t *srv = tn_ws_server_new(&o, routes, nroutes, err, sizeof(err));
 *     ...   h.on_upgrade (auth), h.on_open, h.on_message, h.on_close run on the loop thread
 *     tn_ws_conn_send(conn, json, len, false);                  any thread
 *     tn_ws_conn_send_at(conn, pkt, n, true, due_us, tag);       paced audio, cancellable by tag
 *     tn_ws_server_shutdown(srv, 1001, "going away", 5000);      close frames, drain
 *     tn_ws_server_destroy(srv);
 *
 * Sending: every connection has one queue. A message is sent once its due time (monotonic
 * microseconds, tn_ws_now_us(); 0 = at once) has come, in queue order among the messages that
 * are due, so a timed stream stays in order and an untimed control message is not held behind
 * audio that is not due yet. Timed messages are served by one tick per loop (pacing_tick_ms),
 * not a timer per connection: one goes at most one tick after its due time, and every
 * connection's due messages go in the same wake-up. Messages queued with a tag can be dropped
 * before they are sent (tn_ws_conn_cancel()), for barge-in. A connection whose queue would exceed
 * max_queue bytes is closed with 1008 (a client that does not read must not make the process grow).
 *
 * Receiving: a frame whose payload exceeds max_frame, or a message (all its fragments) that
 * exceeds max_message, closes the connection with 1009 before it is buffered. Protocol errors
 * (bad opcodes, unmasked client frames, invalid UTF-8 in close frames) are libwebsockets': it
 * closes with 1002. Connections idle for idle_timeout_s get a ping; no answer within as long
 * again closes them.
 *
 * @thread One loop thread per server or client runs every callback (handlers, HTTP routes).
 *         tn_ws_conn_send*, tn_ws_conn_cancel, tn_ws_conn_close, tn_ws_conn_keep/release may be
 *         called from any thread; they wake the loop (lws_cancel_service).
 */
#ifndef TAINA_WS_H
#define TAINA_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"

typedef struct tn_ws_server tn_ws_server_t;
typedef struct tn_ws_client tn_ws_client_t;
/** One WebSocket connection (server or client side). Reference-counted. */
typedef struct tn_ws_conn tn_ws_conn_t;

/** Close codes (RFC 6455 section 7.4.1). */
enum {
    TN_WS_CLOSE_NORMAL = 1000,
    TN_WS_CLOSE_GOING_AWAY = 1001,
    TN_WS_CLOSE_PROTOCOL = 1002,
    TN_WS_CLOSE_UNSUPPORTED = 1003,
    TN_WS_CLOSE_NO_STATUS = 1005,
    TN_WS_CLOSE_ABNORMAL = 1006,
    TN_WS_CLOSE_INVALID_DATA = 1007,
    TN_WS_CLOSE_POLICY = 1008,
    TN_WS_CLOSE_TOO_BIG = 1009,
    TN_WS_CLOSE_INTERNAL = 1011,
    TN_WS_CLOSE_TRY_LATER = 1013
};

/** Connection events. Every callback runs on the loop thread; all are optional. */
typedef struct tn_ws_handlers {
    /**
     * Server: an upgrade request on ws_path (headers and query readable with
     * tn_ws_conn_header() / tn_ws_conn_query()). Return 0 to accept, or an HTTP status
     * (401, 503, ...) to refuse; a refusal gets that status with a JSON error body
     * `{"error":{"code":CODE,"message":MSG}}` from @p code / @p msg (room for 64 / 256 bytes).
     */
    int (*on_upgrade)(tn_ws_conn_t *c, void *opaque, char *code, char *msg);
    /** The connection is open (server: after the 101; client: after the server's 101). */
    void (*on_open)(tn_ws_conn_t *c, void *opaque);
    /** A whole message (fragments joined). @p data is borrowed for the call. */
    void (*on_message)(tn_ws_conn_t *c, const uint8_t *data, size_t len, bool binary, void *opaque);
    /**
     * The connection is gone: @p code is the peer's close code, ours when we closed it, or 1006
     * when it dropped without a close frame. Client: also a failed connect, with @p http_status
     * the upgrade answer's status (0 when none arrived). No callback follows for @p c.
     */
    void (*on_close)(tn_ws_conn_t *c, int code, int http_status, void *opaque);
} tn_ws_handlers_t;

/* ------------------------------------------------------------------------------------------ */
/* Plain HTTP routes on the server's port                                                      */

typedef struct tn_ws_http_req tn_ws_http_req_t;
/** Answers one request; must call tn_ws_http_respond(). Runs on the loop thread: keep it short. */
typedef void(tn_ws_http_fn)(tn_ws_http_req_t *r, void *opaque);

typedef struct tn_ws_http_route {
    const char *method; /**< "GET" or "POST" */
    const char *path;   /**< exact path */
    tn_ws_http_fn *fn;
    void *opaque; /**< borrowed */
} tn_ws_http_route_t;

/** @brief Header @p name (case-insensitive, without ':') into @p buf. @returns its length or -1. */
int tn_ws_http_header(tn_ws_http_req_t *r, const char *name, char *buf, size_t len);
/** @brief The body (POST; at most max_http_body bytes, else 413 was answered). Borrowed. */
const char *tn_ws_http_body(tn_ws_http_req_t *r, size_t *len);
/** @brief Answer with @p status, @p content_type and @p len bytes of @p body (copied). */
void tn_ws_http_respond(tn_ws_http_req_t *r, int status, const char *content_type, const void *body,
                        size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Server                                                                                      */

typedef struct tn_ws_server_opts {
    const char *bind_addr;   /**< numeric address ["0.0.0.0"] */
    int port;                /**< 0 = any free port */
    const char *ws_path;     /**< the one WebSocket path ["/"]; others get 404 */
    size_t max_frame;        /**< largest frame payload [64 KiB] */
    size_t max_message;      /**< largest message, fragments joined [256 KiB] */
    size_t max_queue;        /**< largest send queue of one connection [4 MiB] */
    size_t max_http_body;    /**< largest body of an HTTP route [64 KiB] */
    unsigned max_conns;      /**< WebSocket connections at once; more get 503 [4096] */
    unsigned idle_timeout_s; /**< ping after this idle time, close after twice [30] */
    unsigned pacing_tick_ms; /**< timed messages go on this shared tick, at most one late [20] */
    /**
     * The loop polls the sockets at most once per this many microseconds, taking everything
     * ready at once (libev's I/O collect interval); timers still fire on time. Hundreds of
     * connections that each send a packet every 20 ms would otherwise wake the loop thread for
     * nearly every packet, and each wake-up preempts the other threads on its core [0 = none].
     */
    unsigned io_batch_us;
    const tn_ws_handlers_t *handlers; /**< borrowed */
    void *opaque;                     /**< passed to handlers; borrowed */
} tn_ws_server_opts_t;

tn_ws_server_opts_t tn_ws_server_opts_default(void);

/**
 * @brief Bind and start the loop thread.
 * @param routes copied (strings and opaques borrowed); NULL for none.
 * @returns the server, or NULL with one sentence in @p errbuf (bind failed, bad option).
 */
tn_ws_server_t *tn_ws_server_new(const tn_ws_server_opts_t *o, const tn_ws_http_route_t *routes,
                                 size_t nroutes, char *errbuf, size_t errlen);
/** @brief The bound port. */
int tn_ws_server_port(const tn_ws_server_t *s);
/** @brief Open WebSocket connections. */
unsigned tn_ws_server_conns(const tn_ws_server_t *s);
/**
 * @brief Refuse new upgrades (503), send every connection a close frame with @p code and
 *        @p reason after its queued untimed messages, and wait up to @p wait_ms for them to go.
 * @returns the connections still open at the end.
 */
unsigned tn_ws_server_shutdown(tn_ws_server_t *s, int code, const char *reason, int64_t wait_ms);
/** @brief Stop the loop thread, drop the remaining connections and free. NULL ok. */
void tn_ws_server_destroy(tn_ws_server_t *s);

/* ------------------------------------------------------------------------------------------ */
/* Client                                                                                      */

typedef struct tn_ws_client_opts {
    size_t max_frame, max_message, max_queue; /**< as the server's */
    unsigned pacing_tick_ms;                  /**< as the server's [5] */
    const tn_ws_handlers_t *handlers;         /**< borrowed (on_upgrade unused) */
    void *opaque;
} tn_ws_client_opts_t;

tn_ws_client_opts_t tn_ws_client_opts_default(void);
/** @brief A client with its loop thread (any number of connections). NULL with a sentence. */
tn_ws_client_t *tn_ws_client_new(const tn_ws_client_opts_t *o, char *errbuf, size_t errlen);
/**
 * @brief Open a connection to @p url ("ws://host:port/path?query"), sending @p headers
 *        (NULL-terminated "Name: value" lines, copied). Connects on the loop thread; the result
 *        comes through on_open or on_close.
 * @param user set as the connection's user pointer before any callback.
 * @returns the connection with one reference for the caller (tn_ws_conn_release()), or NULL
 *          for a URL that is not ws://.
 */
tn_ws_conn_t *tn_ws_client_connect(tn_ws_client_t *cl, const char *url, const char *const *headers,
                                   void *user, char *errbuf, size_t errlen);
/** @brief Stop the loop thread, drop the connections and free. NULL ok. */
void tn_ws_client_destroy(tn_ws_client_t *cl);

/* ------------------------------------------------------------------------------------------ */
/* Connections                                                                                 */

/** @brief Monotonic clock in microseconds, the time base of tn_ws_conn_send_at(). */
int64_t tn_ws_now_us(void);

/** @brief Take a reference (keeps the object, not the socket, alive). */
tn_ws_conn_t *tn_ws_conn_keep(tn_ws_conn_t *c);
/** @brief Drop a reference. NULL ok. */
void tn_ws_conn_release(tn_ws_conn_t *c);
/** @brief The user pointer (set on upgrade/connect; borrowed). */
void *tn_ws_conn_user(const tn_ws_conn_t *c);
void tn_ws_conn_set_user(tn_ws_conn_t *c, void *user);
/** @brief Whether the socket is still open (false once on_close ran or close was asked). */
bool tn_ws_conn_open(const tn_ws_conn_t *c);

/**
 * @brief Server, inside on_upgrade only: request header @p name (case-insensitive, no ':') or
 *        query argument @p name (URL-decoded) into @p buf. @returns the length, or -1 if absent.
 */
int tn_ws_conn_header(tn_ws_conn_t *c, const char *name, char *buf, size_t len);
int tn_ws_conn_query(tn_ws_conn_t *c, const char *name, char *buf, size_t len);

/**
 * @brief Queue a message (copied) to be sent at once. @returns TN_OK; TN_ERR_STOPPED when the
 *        connection is closed or closing; TN_ERR_TOO_LARGE when max_queue would be exceeded
 *        (the connection is then closed with 1008).
 */
tn_err_t tn_ws_conn_send(tn_ws_conn_t *c, const void *data, size_t len, bool binary);
/** @brief As tn_ws_conn_send(), not before @p due_us (tn_ws_now_us() base), with @p tag. */
tn_err_t tn_ws_conn_send_at(tn_ws_conn_t *c, const void *data, size_t len, bool binary,
                            int64_t due_us, unsigned tag);
/** @brief Drop queued messages with @p tag (not 0). @returns how many were dropped. */
size_t tn_ws_conn_cancel(tn_ws_conn_t *c, unsigned tag);
/**
 * @brief The worst lateness so far of a timed message: how long after its due time it was
 *        written to the socket (0 when none was late). A sender that queues ahead on purpose
 *        passes the time it counts as on time (the voice playout: max(slot - lead, when the
 *        audio was handed over)). Any thread.
 */
int64_t tn_ws_conn_late_us(const tn_ws_conn_t *c);
/** @brief Messages queued and not sent yet. */
size_t tn_ws_conn_queued(tn_ws_conn_t *c);
/**
 * @brief Close with @p code and @p reason (at most 123 bytes) after the queued messages that
 *        are already due; later ones are dropped. Idempotent.
 */
void tn_ws_conn_close(tn_ws_conn_t *c, int code, const char *reason);

#endif
