/**
 * @file fake_http.h
 * @brief A scripted HTTP/1.1 server for tests (canned responses, like curl's test servers).
 *
 * The server listens on an ephemeral port of 127.0.0.1 (bound directly, so no port race), accepts
 * connections on its own thread and serves each connection on a thread of its own, with
 * keep-alive. Every request is answered by, in order of precedence:
 *   1. the next response of the queue (tn_fake_http_push()), consumed once;
 *   2. the handler (tn_fake_http_set_handler()), which can compute an answer from the request;
 *   3. the default response (tn_fake_http_set_default(); initially 404 with an empty body).
 * Every request received is recorded (method, target, headers, body, connection number) together
 * with the number of TCP connections accepted, for assertions.
 *
 *     tn_fake_http_t *fh = tn_fake_http_start();
 *     tn_fake_http_push(fh, &(tn_fake_http_resp_t){.status = 503});
 *     tn_fake_http_push(fh, &(tn_fake_http_resp_t){.status = 200, .body = "{}",
 *                                                 .content_type = "application/json"});
 *     ... point a client at tn_fake_http_url(fh) ...
 *     assert_int_equal(tn_fake_http_nrequests(fh), 2);
 *     tn_fake_http_stop(fh);
 *
 * Requests: bodies are read by Content-Length or chunked transfer coding; request heads are capped
 * at 64 KiB and bodies at 64 MiB (a bigger request is answered 413 and the connection closed).
 * "Expect: 100-continue" is answered with an interim 100.
 *
 * Test helper: only tests link it. It uses TN_ASSERT for its own failures (a broken test rig).
 * @thread Every function may be called from any thread while the server runs.
 */
#ifndef TN_FAKE_HTTP_H
#define TN_FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/buf.h"

typedef struct tn_fake_http tn_fake_http_t;

/** What the server does with a request. */
typedef enum {
    TN_FAKE_ANSWER = 0, /**< send the response (the default) */
    TN_FAKE_CLOSE,      /**< close the connection without answering (orderly FIN) */
    TN_FAKE_RESET       /**< abort the connection without answering (TCP RST) */
} tn_fake_http_action_t;

/**
 * A canned response. Strings are borrowed for the call that receives the struct only: push and
 * set_default copy them, a handler's are copied when it returns.
 */
typedef struct tn_fake_http_resp {
    int status;               /**< 0 means 200 */
    const char *content_type; /**< Content-Type header, or NULL for none */
    const char *headers;      /**< extra raw header lines, each ending in "\r\n"; NULL ok */
    const char *body;         /**< body bytes, or NULL for an empty body */
    size_t body_len;          /**< 0: strlen(body) */
    int64_t delay_ms;         /**< wait this long after reading the request, before acting */
    tn_fake_http_action_t action;
    long send_body_bytes;   /**< 0: all; N > 0: send only N body bytes (Content-Length still
                                 announces the whole body), then close the connection */
    bool chunked;           /**< send the body with Transfer-Encoding: chunked */
    bool close_after;       /**< send "Connection: close" and close after answering */
    size_t piece_bytes;     /**< 0: send the answer at once; N > 0: send the head, then the body
                                 as it goes on the wire (chunk framing included) in writes of N
                                 bytes, piece_delay_ms apart (streams split at odd places) */
    int64_t piece_delay_ms; /**< wait between two pieces */
} tn_fake_http_resp_t;

/** One request the server received. Borrowed from the server; valid until tn_fake_http_stop(). */
typedef struct tn_fake_http_req {
    char *method;  /**< "GET" */
    char *target;  /**< request-target as sent: "/v1/x?y=1" */
    char *head;    /**< the raw request head, request line and headers, up to the blank line */
    char **names;  /**< header names as sent */
    char **values; /**< header values, leading and trailing blanks removed */
    size_t nheaders;
    char *body; /**< NUL-terminated (the NUL is not counted in body_len); never NULL */
    size_t body_len;
    int conn; /**< 1-based number of the TCP connection it arrived on */
} tn_fake_http_req_t;

/**
 * A handler computes the answer to @p req. It fills @p resp (zeroed on entry), may append the body
 * to @p body (used when resp->body is NULL) and extra raw header lines to @p headers (each
 * ending in "\r\n"; used when resp->headers is NULL). Both buffers are owned by the server.
 * @returns true when it answered, false to fall through to the default response.
 * @thread Runs on the connection's thread; handlers for different connections run concurrently.
 */
typedef bool(tn_fake_http_handler_cb)(const tn_fake_http_req_t *req, tn_fake_http_resp_t *resp,
                                      tn_buf_t *body, tn_buf_t *headers, void *opaque);

/**
 * @brief Start a server on 127.0.0.1 on a free port.
 * @returns the server, or NULL (a line on stderr says why). Caller owns the result; free with
 *          tn_fake_http_stop().
 */
tn_fake_http_t *tn_fake_http_start(void);
/** @brief Close every connection, join every thread and free the server. NULL ok. */
void tn_fake_http_stop(tn_fake_http_t *fh);

/** @brief The port it listens on. */
int tn_fake_http_port(const tn_fake_http_t *fh);
/** @brief "http://127.0.0.1:PORT" (no trailing slash). Borrowed; valid until stop. */
const char *tn_fake_http_url(const tn_fake_http_t *fh);

/** @brief Queue a response for the next request not yet answered. @p resp is copied. */
void tn_fake_http_push(tn_fake_http_t *fh, const tn_fake_http_resp_t *resp);
/** @brief Queue a plain answer: @p status with @p body (NULL ok) of type @p content_type. */
void tn_fake_http_push_simple(tn_fake_http_t *fh, int status, const char *content_type,
                              const char *body);
/** @brief Set the answer used when the queue is empty and no handler answers. Copied. */
void tn_fake_http_set_default(tn_fake_http_t *fh, const tn_fake_http_resp_t *resp);
/** @brief Set (or with NULL clear) the handler. @p opaque is borrowed; it must outlive its use. */
void tn_fake_http_set_handler(tn_fake_http_t *fh, tn_fake_http_handler_cb *cb, void *opaque);
/** @brief Number of queued responses not yet used. */
size_t tn_fake_http_queued(tn_fake_http_t *fh);

/** @brief Number of requests received so far. */
size_t tn_fake_http_nrequests(tn_fake_http_t *fh);
/** @brief The @p i th request received (0-based), or NULL. Borrowed; valid until stop. */
const tn_fake_http_req_t *tn_fake_http_request(tn_fake_http_t *fh, size_t i);
/** @brief Number of TCP connections accepted so far. */
int tn_fake_http_connections(tn_fake_http_t *fh);
/** @brief Wait until at least @p n requests arrived or @p timeout_ms passed. @returns true if so.
 */
bool tn_fake_http_wait_requests(tn_fake_http_t *fh, size_t n, int64_t timeout_ms);

/** @brief A header of @p req by case-insensitive name, or NULL. Borrowed like @p req. */
const char *tn_fake_http_req_header(const tn_fake_http_req_t *req, const char *name);

#endif
