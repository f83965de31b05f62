/* voice-gateway: the rag client. POST {rag_url}/v1/query with "stream": true and the session's
 * credentials; the Server-Sent Events (citations, token..., done) are parsed as they arrive and
 * every complete sentence of the answer goes to the speaker at once, so the first words are
 * spoken while rag is still writing the rest. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/buf.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "voice.h"

/* Shortest sentence handed to TTS on its own (shorter ones wait for the next). */
#define MIN_SENTENCE 24

size_t vg_sentence_end(const char *text, size_t len, size_t min_len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '\n' && i + 1 >= min_len)
            return i + 1;
        if ((ch == '.' || ch == '!' || ch == '?' || ch == ';') && i + 1 < len &&
            (text[i + 1] == ' ' || text[i + 1] == '\n') && i + 1 >= min_len)
            return i + 1;
    }
    return 0;
}

char *vg_speakable(const char *text, size_t len)
{
    char *out = tn_xmalloc(len + 1);
    size_t o = 0;
    bool space = true; /* drop leading blanks */
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '[') { /* a citation marker [12] */
            size_t j = i + 1;
            while (j < len && isdigit((unsigned char)text[j]))
                j++;
            if (j > i + 1 && j < len && text[j] == ']') {
                i = j;
                continue;
            }
        }
        if (isspace((unsigned char)text[i])) {
            if (!space)
                out[o++] = ' ';
            space = true;
            continue;
        }
        /* "word [1]." leaves "word ." : glue punctuation back */
        if (o && out[o - 1] == ' ' && strchr(".,;:!?", text[i]))
            o--;
        out[o++] = text[i];
        space = false;
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return out;
}

typedef struct sse_state {
    tn_buf_t in;     /* bytes not parsed yet */
    tn_buf_t answer; /* the whole answer */
    size_t spoken;   /* answer bytes handed to on_sentence */
    json_t *citations;
    char answer_error[256];
    vg_sentence_fn *on_sentence;
    void *opaque;
    int stopped;
    int64_t max_said, said; /* sentences to speak (0 = all), spoken so far */
} sse_state_t;

/* Hand complete sentences (or, at the end, the rest) to the speaker, at most max_said of them:
 * a spoken answer stays short, the reply message carries the whole text. */
static int flush_sentences(sse_state_t *st, bool all)
{
    for (;;) {
        size_t left = st->answer.len - st->spoken;
        if (left == 0)
            return 0;
        if (st->max_said && st->said >= st->max_said) {
            st->spoken = st->answer.len;
            return 0;
        }
        const char *p = st->answer.data + st->spoken;
        size_t k = vg_sentence_end(p, left, MIN_SENTENCE);
        if (k == 0 && !all)
            return 0;
        if (k == 0)
            k = left; /* the end of the answer: the rest */
        st->spoken += k;
        st->said++;
        if (st->on_sentence(st->opaque, p, k))
            return 1;
    }
}

static int on_event(sse_state_t *st, const char *ev, const char *data)
{
    json_t *d = json_loads(data, 0, NULL);
    if (!d)
        return 0;
    if (!strcmp(ev, "citations")) {
        json_decref(st->citations);
        st->citations = json_incref(json_object_get(d, "citations"));
    } else if (!strcmp(ev, "token")) {
        const char *t = json_string_value(json_object_get(d, "text"));
        if (t && tn_buf_adds(&st->answer, t) == TN_OK && flush_sentences(st, false)) {
            json_decref(d);
            return 1;
        }
    } else if (!strcmp(ev, "done")) {
        const char *e = json_string_value(json_object_get(d, "answer_error"));
        if (e)
            snprintf(st->answer_error, sizeof(st->answer_error), "%s", e);
    }
    json_decref(d);
    return 0;
}

/* Body pieces: split into events at blank lines. */
static int on_piece(void *opaque, const char *data, size_t len)
{
    sse_state_t *st = opaque;
    if (tn_buf_add(&st->in, data, len) != TN_OK)
        return 1;
    for (;;) {
        char *end = memmem(st->in.data, st->in.len, "\n\n", 2);
        if (!end)
            return 0;
        *end = '\0';
        char ev[32] = "message";
        tn_buf_t payload;
        tn_buf_init(&payload, st->in.max);
        for (char *line = st->in.data; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            if (!strncmp(line, "event:", 6))
                snprintf(ev, sizeof(ev), "%s", line + 6 + (line[6] == ' '));
            else if (!strncmp(line, "data:", 5))
                tn_buf_adds(&payload, line + 5 + (line[5] == ' '));
            line = nl ? nl + 1 : NULL;
        }
        int stop = payload.len ? on_event(st, ev, payload.data) : 0;
        tn_buf_cleanup(&payload);
        size_t used = (size_t)(end - st->in.data) + 2;
        memmove(st->in.data, st->in.data + used, st->in.len - used);
        st->in.len -= used;
        if (stop) {
            st->stopped = 1;
            return 1;
        }
    }
}

tn_err_t vg_rag_ask(vg_t *g, vg_session_t *s, const char *question, vg_sentence_fn *on_sentence,
                    void *opaque, vg_rag_answer_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_t *body = json_pack("{s:s, s:b, s:I}", "question", question, "stream", 1, "top_k",
                             (json_int_t)g->cfg->rag_top_k);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char tp[128];
    const char *headers[4] = {"Accept: text/event-stream", NULL, NULL, NULL};
    size_t nh = 1;
    if (s->rag_auth)
        headers[nh++] = s->rag_auth;
    if (s->trace[0]) {
        snprintf(tp, sizeof(tp), "traceparent: %s", s->trace);
        headers[nh++] = tp;
    }
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = "/v1/query",
                             .headers = headers,
                             .body = text,
                             .body_len = strlen(text),
                             .content_type = "application/json",
                             .deadline_ms = g->cfg->rag_timeout_ms,
                             .timeout_ms = g->cfg->rag_timeout_ms,
                             .flags = TN_HTTP_F_IDEMPOTENT};
    sse_state_t st = {
        .on_sentence = on_sentence, .opaque = opaque, .max_said = g->cfg->spoken_sentences};
    tn_buf_init(&st.in, 1u << 20);
    tn_buf_init(&st.answer, 64 * 1024);
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_err_t rc = tn_http_client_stream(g->rag, &req, on_piece, &st, &resp);
    out->upstream_ms = (double)resp.elapsed_ms;
    out->status = resp.status;
    free(text);
    if (rc == TN_OK && resp.status == 200) {
        if (flush_sentences(&st, true))
            rc = TN_ERR_STOPPED;
    } else if (rc == TN_OK) {
        char d[300];
        snprintf(err, errlen, "rag answered %s", tn_http_response_describe(&resp, d, sizeof(d)));
        rc = resp.status == 401 ? TN_ERR_AUTH : TN_ERR_UPSTREAM;
    } else if (rc != TN_ERR_STOPPED) {
        snprintf(err, errlen, "rag: %s", tn_err_str(rc));
    }
    out->citations = st.citations ? st.citations : json_array();
    out->text = tn_buf_detach(&st.answer, NULL);
    snprintf(out->answer_error, sizeof(out->answer_error), "%s", st.answer_error);
    tn_buf_cleanup(&st.in);
    tn_buf_cleanup(&st.answer);
    tn_http_response_cleanup(&resp);
    return rc;
}

void vg_rag_answer_free(vg_rag_answer_t *a)
{
    json_decref(a->citations);
    free(a->text);
    memset(a, 0, sizeof(*a));
}
