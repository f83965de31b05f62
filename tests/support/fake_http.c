/* A scripted HTTP/1.1 server for tests: canned responses, a handler hook and a request log. */
#include "fake_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "taina/clock.h"
#include "taina/mem.h"

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (64 * 1024 * 1024)

/* A response with its own copies of the strings; r points into them. */
typedef struct owned_resp {
    tn_fake_http_resp_t r;
    char *content_type, *headers, *body;
    struct owned_resp *next;
} owned_resp_t;

typedef struct conn {
    tn_fake_http_t *fh;
    int fd;
    int id;
    pthread_t tid;
    struct conn *next;
} conn_t;

struct tn_fake_http {
    int lfd;
    int port;
    char url[64];
    int stop_pipe[2]; /* written once at stop; stays readable, so every poller wakes */
    pthread_t acceptor;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* a request was recorded */
    owned_resp_t *qhead, *qtail;
    size_t nqueued;
    owned_resp_t def;
    tn_fake_http_handler_cb *cb;
    void *cb_opaque;
    tn_fake_http_req_t **reqs;
    size_t nreqs, capreqs;
    int nconns;
    conn_t *conns;
};

/* ------------------------------------------------------------------------------------------ */
/* Responses */

static char *memdup0(const char *p, size_t n)
{
    char *s = tn_xmalloc(n + 1);
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void owned_copy(owned_resp_t *dst, const tn_fake_http_resp_t *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->r = *src;
    if (src->content_type)
        dst->content_type = tn_xstrdup(src->content_type);
    if (src->headers)
        dst->headers = tn_xstrdup(src->headers);
    size_t blen = src->body ? (src->body_len ? src->body_len : strlen(src->body)) : 0;
    if (src->body)
        dst->body = memdup0(src->body, blen);
    dst->r.content_type = dst->content_type;
    dst->r.headers = dst->headers;
    dst->r.body = dst->body;
    dst->r.body_len = blen;
}

static void owned_cleanup(owned_resp_t *o)
{
    TN_FREE(o->content_type);
    TN_FREE(o->headers);
    TN_FREE(o->body);
}

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Requests */

static void req_free(tn_fake_http_req_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    free(r->method);
    free(r->target);
    free(r->head);
    free(r->body);
    free(r);
}

const char *tn_fake_http_req_header(const tn_fake_http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->names[i], name) == 0)
            return req->values[i];
    return NULL;
}

/* Parse the request head (without the final blank line). Returns NULL when malformed. */
static tn_fake_http_req_t *parse_head(const char *head, size_t len)
{
    tn_fake_http_req_t *r = tn_xcalloc(1, sizeof(*r));
    r->head = memdup0(head, len);
    const char *p = r->head, *end = r->head + len;
    const char *eol = strstr(p, "\r\n");
    if (!eol)
        eol = end;
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        req_free(r);
        return NULL;
    }
    r->method = memdup0(p, (size_t)(sp1 - p));
    r->target = memdup0(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    p = eol < end ? eol + 2 : end;
    while (p < end) {
        eol = strstr(p, "\r\n");
        if (!eol)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon) {
            req_free(r);
            return NULL;
        }
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        r->names = tn_xrealloc(r->names, (r->nheaders + 1) * sizeof(char *));
        r->values = tn_xrealloc(r->values, (r->nheaders + 1) * sizeof(char *));
        r->names[r->nheaders] = memdup0(p, (size_t)(colon - p));
        r->values[r->nheaders] = memdup0(v, (size_t)(ve - v));
        r->nheaders++;
        p = eol < end ? eol + 2 : end;
    }
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Connection I/O */

typedef struct io {
    conn_t *c;
    tn_buf_t in; /* bytes received and not yet consumed */
} io_t;

/* true when the server is stopping (the stop pipe is readable). */
static bool stopping(const tn_fake_http_t *fh)
{
    struct pollfd p = {.fd = fh->stop_pipe[0], .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Sleep @p ms unless the server stops first. Returns false when stopping. */
static bool wait_ms(const tn_fake_http_t *fh, int64_t ms)
{
    int64_t deadline = tn_clock_mono_ms() + ms;
    for (;;) {
        int64_t left = deadline - tn_clock_mono_ms();
        if (left <= 0)
            return !stopping(fh);
        struct pollfd p = {.fd = fh->stop_pipe[0], .events = POLLIN};
        int n = poll(&p, 1, (int)TN_MIN(left, 1000));
        if (n > 0)
            return false;
    }
}

/* Read more bytes into io->in. Returns false on EOF, error, overflow or stop. */
static bool read_more(io_t *io)
{
    char chunk[16384];
    for (;;) {
        struct pollfd p[2] = {{.fd = io->c->fd, .events = POLLIN},
                              {.fd = io->c->fh->stop_pipe[0], .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[1].revents & POLLIN))
            return false;
        ssize_t r = recv(io->c->fd, chunk, sizeof(chunk), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        return tn_buf_add(&io->in, chunk, (size_t)r) == TN_OK;
    }
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* Wait until io->in holds a CRLF at or after @p from; returns its offset or -1. */
static long wait_crlf(io_t *io, size_t from)
{
    for (;;) {
        if (io->in.len >= from + 2) {
            const char *hit = memmem(io->in.data + from, io->in.len - from, "\r\n", 2);
            if (hit)
                return hit - io->in.data;
        }
        if (io->in.len > from + MAX_HEAD || !read_more(io))
            return -1;
    }
}

static bool wait_len(io_t *io, size_t n)
{
    while (io->in.len < n)
        if (!read_more(io))
            return false;
    return true;
}

/* Read a chunked body starting at @p off into @p body; *end gets the offset after it. */
static bool read_chunked(io_t *io, size_t off, tn_buf_t *body, size_t *end)
{
    for (;;) {
        long eol = wait_crlf(io, off);
        if (eol < 0)
            return false;
        char *stop = NULL;
        unsigned long size = strtoul(io->in.data + off, &stop, 16);
        if (stop == io->in.data + off || size > MAX_BODY)
            return false;
        off = (size_t)eol + 2;
        if (size == 0)
            break;
        if (!wait_len(io, off + size + 2) || tn_buf_add(body, io->in.data + off, size) != TN_OK)
            return false;
        off += size + 2;
    }
    /* Trailer section: lines until an empty one. */
    for (;;) {
        long eol = wait_crlf(io, off);
        if (eol < 0)
            return false;
        bool empty = (size_t)eol == off;
        off = (size_t)eol + 2;
        if (empty)
            break;
    }
    *end = off;
    return true;
}

/* Read one whole request. Returns NULL on EOF or a broken request (the connection ends). */
static tn_fake_http_req_t *read_request(io_t *io)
{
    const char *hit = NULL;
    for (;;) {
        if (io->in.len >= 4)
            hit = memmem(io->in.data, io->in.len, "\r\n\r\n", 4);
        if (hit)
            break;
        if (io->in.len > MAX_HEAD || !read_more(io))
            return NULL;
    }
    size_t head_len = (size_t)(hit - io->in.data);
    tn_fake_http_req_t *r = parse_head(io->in.data, head_len);
    if (!r)
        return NULL;
    size_t off = head_len + 4;
    tn_buf_t body;
    tn_buf_init(&body, MAX_BODY);
    const char *te = tn_fake_http_req_header(r, "Transfer-Encoding");
    const char *cl = tn_fake_http_req_header(r, "Content-Length");
    const char *expect = tn_fake_http_req_header(r, "Expect");
    bool ok = true;
    if (expect && strcasecmp(expect, "100-continue") == 0 && io->in.len == off) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ok = send_all(io->c->fd, cont, sizeof(cont) - 1);
    }
    if (ok && te && strcasecmp(te, "chunked") == 0) {
        ok = read_chunked(io, off, &body, &off);
    } else if (ok && cl) {
        char *stop = NULL;
        unsigned long long n = strtoull(cl, &stop, 10);
        ok = stop != cl && *stop == '\0' && n <= MAX_BODY && wait_len(io, off + n);
        if (ok)
            ok = tn_buf_add(&body, io->in.data + off, n) == TN_OK;
        off += ok ? n : 0;
    }
    if (!ok) {
        tn_buf_cleanup(&body);
        req_free(r);
        return NULL;
    }
    r->body = tn_buf_detach(&body, &r->body_len);
    /* Keep pipelined bytes for the next request. */
    memmove(io->in.data, io->in.data + off, io->in.len - off);
    io->in.len -= off;
    io->in.data[io->in.len] = '\0';
    return r;
}

/* Pick the answer for @p req into @p out (owned copies). */
static void choose(tn_fake_http_t *fh, const tn_fake_http_req_t *req, owned_resp_t *out)
{
    pthread_mutex_lock(&fh->lock);
    owned_resp_t *q = fh->qhead;
    if (q) {
        fh->qhead = q->next;
        if (!fh->qhead)
            fh->qtail = NULL;
        fh->nqueued--;
    }
    tn_fake_http_handler_cb *cb = fh->cb;
    void *opaque = fh->cb_opaque;
    pthread_mutex_unlock(&fh->lock);
    if (q) {
        *out = *q;
        free(q);
        return;
    }
    if (cb) {
        tn_fake_http_resp_t r = {0};
        tn_buf_t body, headers;
        tn_buf_init(&body, MAX_BODY);
        tn_buf_init(&headers, MAX_HEAD);
        bool answered = cb(req, &r, &body, &headers, opaque);
        if (answered) {
            if (!r.body && body.len) {
                r.body = body.data;
                r.body_len = body.len;
            }
            if (!r.headers && headers.len)
                r.headers = headers.data;
            owned_copy(out, &r);
        }
        tn_buf_cleanup(&body);
        tn_buf_cleanup(&headers);
        if (answered)
            return;
    }
    pthread_mutex_lock(&fh->lock);
    owned_copy(out, &fh->def.r);
    pthread_mutex_unlock(&fh->lock);
}

/* Send @p r as the answer to @p req. Returns false when the connection must close. */
static bool answer(conn_t *c, const tn_fake_http_req_t *req, const tn_fake_http_resp_t *r,
                   bool close_after)
{
    int status = r->status ? r->status : 200;
    bool head_only = strcmp(req->method, "HEAD") == 0 || status == 204 || status == 304;
    tn_buf_t out;
    tn_buf_init(&out, (size_t)MAX_BODY + MAX_HEAD);
    tn_buf_addf(&out, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (r->content_type)
        tn_buf_addf(&out, "Content-Type: %s\r\n", r->content_type);
    if (r->chunked)
        tn_buf_adds(&out, "Transfer-Encoding: chunked\r\n");
    else if (status != 204 && status != 304)
        tn_buf_addf(&out, "Content-Length: %zu\r\n", r->body_len);
    if (close_after)
        tn_buf_adds(&out, "Connection: close\r\n");
    if (r->headers)
        tn_buf_adds(&out, r->headers);
    tn_buf_adds(&out, "\r\n");
    size_t head_len = out.len;
    size_t n = r->body_len;
    bool partial = r->send_body_bytes > 0 && (size_t)r->send_body_bytes < n;
    if (partial)
        n = (size_t)r->send_body_bytes;
    if (!head_only && r->chunked) {
        for (size_t off = 0; off < n; off += 4096) {
            size_t k = TN_MIN((size_t)4096, n - off);
            tn_buf_addf(&out, "%zx\r\n", k);
            tn_buf_add(&out, r->body + off, k);
            tn_buf_adds(&out, "\r\n");
        }
        if (!partial)
            tn_buf_adds(&out, "0\r\n\r\n");
    } else if (!head_only && n) {
        tn_buf_add(&out, r->body, n);
    }
    bool ok;
    if (r->piece_bytes > 0) {
        int one = 1; /* small pieces must leave now, not when Nagle allows */
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ok = send_all(c->fd, out.data, head_len);
        for (size_t off = head_len; ok && off < out.len; off += r->piece_bytes) {
            if (r->piece_delay_ms > 0 && !wait_ms(c->fh, r->piece_delay_ms))
                ok = false;
            else
                ok = send_all(c->fd, out.data + off, TN_MIN(r->piece_bytes, out.len - off));
        }
    } else {
        ok = send_all(c->fd, out.data, out.len);
    }
    tn_buf_cleanup(&out);
    return ok && !partial && !close_after;
}

static void record(tn_fake_http_t *fh, tn_fake_http_req_t *req)
{
    pthread_mutex_lock(&fh->lock);
    if (fh->nreqs == fh->capreqs) {
        fh->capreqs = fh->capreqs ? fh->capreqs * 2 : 16;
        fh->reqs = tn_xrealloc(fh->reqs, fh->capreqs * sizeof(*fh->reqs));
    }
    fh->reqs[fh->nreqs++] = req;
    pthread_cond_broadcast(&fh->cond);
    pthread_mutex_unlock(&fh->lock);
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    tn_fake_http_t *fh = c->fh;
    io_t io = {.c = c};
    tn_buf_init(&io.in, (size_t)MAX_BODY + 2 * MAX_HEAD);
    for (;;) {
        tn_fake_http_req_t *req = read_request(&io);
        if (!req)
            break;
        req->conn = c->id;
        record(fh, req); /* the server owns it now; it stays valid until stop */
        owned_resp_t o;
        choose(fh, req, &o);
        bool keep = true;
        if (o.r.delay_ms > 0 && !wait_ms(fh, o.r.delay_ms))
            keep = false;
        else if (o.r.action == TN_FAKE_RESET) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            keep = false;
        } else if (o.r.action == TN_FAKE_CLOSE) {
            keep = false;
        } else {
            const char *conn_hdr = tn_fake_http_req_header(req, "Connection");
            bool close_after = o.r.close_after ||
                               (conn_hdr && strcasecmp(conn_hdr, "close") == 0) ||
                               strncmp(req->head + strlen(req->method) + strlen(req->target) + 2,
                                       "HTTP/1.0", 8) == 0;
            keep = answer(c, req, &o.r, close_after);
        }
        owned_cleanup(&o);
        if (!keep)
            break;
    }
    tn_buf_cleanup(&io.in);
    pthread_mutex_lock(&fh->lock);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_unlock(&fh->lock);
    return NULL;
}

static void *accept_main(void *arg)
{
    tn_fake_http_t *fh = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = fh->lfd, .events = POLLIN},
                              {.fd = fh->stop_pipe[0], .events = POLLIN}};
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[1].revents & POLLIN))
            break;
        int fd = accept4(fh->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_t *c = tn_xcalloc(1, sizeof(*c));
        c->fh = fh;
        c->fd = fd;
        pthread_mutex_lock(&fh->lock);
        c->id = ++fh->nconns;
        c->next = fh->conns;
        fh->conns = c;
        int rc = pthread_create(&c->tid, NULL, conn_main, c);
        if (rc != 0) {
            /* Leave it listed with fd -1 and no thread: stop skips the join. */
            close(fd);
            c->fd = -1;
            c->id = -c->id;
        }
        pthread_mutex_unlock(&fh->lock);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Public API */

tn_fake_http_t *tn_fake_http_start(void)
{
    tn_fake_http_t *fh = tn_xcalloc(1, sizeof(*fh));
    fh->lfd = fh->stop_pipe[0] = fh->stop_pipe[1] = -1;
    pthread_mutex_init(&fh->lock, NULL);
    pthread_cond_init(&fh->cond, NULL);
    owned_copy(&fh->def, &(tn_fake_http_resp_t){.status = 404});

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t sl = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fh->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fh->lfd < 0 || bind(fh->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fh->lfd, 64) != 0 || getsockname(fh->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
        pipe2(fh->stop_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "fake_http: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        goto fail;
    }
    fh->port = ntohs(sa.sin_port);
    snprintf(fh->url, sizeof(fh->url), "http://127.0.0.1:%d", fh->port);
    if (pthread_create(&fh->acceptor, NULL, accept_main, fh) != 0) {
        fprintf(stderr, "fake_http: cannot start a thread\n");
        goto fail;
    }
    return fh;
fail:
    if (fh->lfd >= 0)
        close(fh->lfd);
    if (fh->stop_pipe[0] >= 0) {
        close(fh->stop_pipe[0]);
        close(fh->stop_pipe[1]);
    }
    owned_cleanup(&fh->def);
    pthread_cond_destroy(&fh->cond);
    pthread_mutex_destroy(&fh->lock);
    free(fh);
    return NULL;
}

void tn_fake_http_stop(tn_fake_http_t *fh)
{
    if (!fh)
        return;
    char b = 1;
    while (write(fh->stop_pipe[1], &b, 1) < 0 && errno == EINTR)
        ;
    pthread_join(fh->acceptor, NULL);
    /* Unblock writers stuck on a client that stopped reading. */
    pthread_mutex_lock(&fh->lock);
    for (conn_t *c = fh->conns; c; c = c->next)
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&fh->lock);
    while (fh->conns) {
        conn_t *c = fh->conns;
        fh->conns = c->next;
        if (c->id > 0)
            pthread_join(c->tid, NULL);
        free(c);
    }
    close(fh->lfd);
    close(fh->stop_pipe[0]);
    close(fh->stop_pipe[1]);
    while (fh->qhead) {
        owned_resp_t *q = fh->qhead;
        fh->qhead = q->next;
        owned_cleanup(q);
        free(q);
    }
    owned_cleanup(&fh->def);
    for (size_t i = 0; i < fh->nreqs; i++)
        req_free(fh->reqs[i]);
    free(fh->reqs);
    pthread_cond_destroy(&fh->cond);
    pthread_mutex_destroy(&fh->lock);
    free(fh);
}

int tn_fake_http_port(const tn_fake_http_t *fh)
{
    return fh->port;
}

const char *tn_fake_http_url(const tn_fake_http_t *fh)
{
    return fh->url;
}

void tn_fake_http_push(tn_fake_http_t *fh, const tn_fake_http_resp_t *resp)
{
    owned_resp_t *q = tn_xmalloc(sizeof(*q));
    owned_copy(q, resp);
    pthread_mutex_lock(&fh->lock);
    if (fh->qtail)
        fh->qtail->next = q;
    else
        fh->qhead = q;
    fh->qtail = q;
    fh->nqueued++;
    pthread_mutex_unlock(&fh->lock);
}

void tn_fake_http_push_simple(tn_fake_http_t *fh, int status, const char *content_type,
                              const char *body)
{
    tn_fake_http_push(
        fh, &(tn_fake_http_resp_t){.status = status, .content_type = content_type, .body = body});
}

void tn_fake_http_set_default(tn_fake_http_t *fh, const tn_fake_http_resp_t *resp)
{
    owned_resp_t o;
    owned_copy(&o, resp);
    pthread_mutex_lock(&fh->lock);
    owned_resp_t old = fh->def;
    fh->def = o;
    pthread_mutex_unlock(&fh->lock);
    owned_cleanup(&old);
}

void tn_fake_http_set_handler(tn_fake_http_t *fh, tn_fake_http_handler_cb *cb, void *opaque)
{
    pthread_mutex_lock(&fh->lock);
    fh->cb = cb;
    fh->cb_opaque = opaque;
    pthread_mutex_unlock(&fh->lock);
}

size_t tn_fake_http_queued(tn_fake_http_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    size_t n = fh->nqueued;
    pthread_mutex_unlock(&fh->lock);
    return n;
}

size_t tn_fake_http_nrequests(tn_fake_http_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    size_t n = fh->nreqs;
    pthread_mutex_unlock(&fh->lock);
    return n;
}

const tn_fake_http_req_t *tn_fake_http_request(tn_fake_http_t *fh, size_t i)
{
    pthread_mutex_lock(&fh->lock);
    const tn_fake_http_req_t *r = i < fh->nreqs ? fh->reqs[i] : NULL;
    pthread_mutex_unlock(&fh->lock);
    return r;
}

int tn_fake_http_connections(tn_fake_http_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    int n = fh->nconns;
    pthread_mutex_unlock(&fh->lock);
    return n;
}

bool tn_fake_http_wait_requests(tn_fake_http_t *fh, size_t n, int64_t timeout_ms)
{
    int64_t deadline = tn_clock_mono_ms() + timeout_ms;
    pthread_mutex_lock(&fh->lock);
    while (fh->nreqs < n) {
        int64_t left = deadline - tn_clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (TN_MIN(left, 100) * 1000000);
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&fh->cond, &fh->lock, &ts);
    }
    bool ok = fh->nreqs >= n;
    pthread_mutex_unlock(&fh->lock);
    return ok;
}
