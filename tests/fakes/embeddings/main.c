/* taina-fake-embeddings: a double of OpenAI's POST /v1/embeddings, POST /v1/chat/completions
 * and GET /v1/models (CONTRACTS.md sections 2.0 to 2.2), with the fault switches of
 * tests/support/fake_api.h.
 *
 * Vectors are deterministic: every word of the text (ASCII letters and digits, lower-cased, and
 * any non-ASCII bytes) adds a pseudo-random vector seeded by the word's hash, the whole text
 * adds a smaller one of its own, and the sum is L2-normalized. So equal texts get equal
 * vectors, texts sharing words are close (a useful stand-in for semantic search), and a smaller
 * "dimensions" is the renormalized prefix of a larger one, as with text-embedding-3. Token counts
 * are estimated as ceil(bytes / 4) per text (the length of a token array).
 *
 * Chat answers are deterministic and grounded: "Answer based on passage [n]: " and the first
 * sentence of the first numbered passage ("[n] ..." at the start of a line, a "(title)" right
 * after the marker skipped) of the last user message, or "I could not find an answer in the
 * documents." without one. Streamed word by word (fake_token_delay_ms apart) as SSE chunks. */
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fake_api.h"
#include "taina/app.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

typedef struct emb_cfg {
    tn_fake_cfg_t fake;
    int64_t dims;
    int64_t max_inputs;
    int64_t max_input_tokens;
    int64_t max_request_tokens;
    char *models;
    bool strict_models;
    int64_t token_delay_ms;
} emb_cfg_t;

static const tn_cfg_key_t emb_keys[] = {
    TN_FAKE_CFG_KEYS(emb_cfg_t, fake),
    {"fake_dims", TN_CFG_INT, offsetof(emb_cfg_t, dims), "384", 0,
     "Vector size when a request has no \"dimensions\"", 1, 16384, NULL},
    {"fake_max_inputs", TN_CFG_INT, offsetof(emb_cfg_t, max_inputs), "2048", 0,
     "Most inputs in one request (more: 400)", 1, 1000000, NULL},
    {"fake_max_input_tokens", TN_CFG_INT, offsetof(emb_cfg_t, max_input_tokens), "8192", 0,
     "Most tokens (ceil(bytes/4)) in one input (more: 400)", 1, INT64_MAX, NULL},
    {"fake_max_request_tokens", TN_CFG_INT, offsetof(emb_cfg_t, max_request_tokens), "300000", 0,
     "Most tokens in all the inputs of one request (more: 400)", 1, INT64_MAX, NULL},
    {"fake_models", TN_CFG_STRING, offsetof(emb_cfg_t, models),
     "text-embedding-3-small,text-embedding-3-large,text-embedding-ada-002", 0,
     "Models listed by GET /v1/models (comma-separated)", 0, 0, NULL},
    {"fake_strict_models", TN_CFG_BOOL, offsetof(emb_cfg_t, strict_models), "false", 0,
     "Answer 404 model_not_found for a model not in fake_models", 0, 0, NULL},
    {"fake_token_delay_ms", TN_CFG_INT, offsetof(emb_cfg_t, token_delay_ms), "0", 0,
     "Chat streams: milliseconds before each content chunk", 0, 60000, NULL},
};

#define MAX_DIMS 16384

typedef struct emb {
    const emb_cfg_t *cfg;
    tn_fake_t *fake;
    pthread_mutex_t lock;
    uint64_t n_requests, n_inputs, n_tokens;
    uint64_t n_chat, n_chat_streamed, n_chat_tokens;
} emb_t;

/* ============================================================================================ */
/* Errors                                                                                       */

static void oa_error_full(tn_fake_call_t *c, int status, const char *type, const char *param,
                          const char *code, const char *message)
{
    json_t *e = json_object();
    json_object_set_new(e, "message", json_string(message));
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    tn_http_req_respond_json(c->req, status, json_pack("{so}", "error", e));
}

static void bad(tn_fake_call_t *c, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void bad(tn_fake_call_t *c, const char *param, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    oa_error_full(c, 400, "invalid_request_error", param, code, msg);
}

/* Errors of the skeleton (404, 405, injected faults). */
static void oa_error(tn_fake_call_t *c, int status, const char *message)
{
    char msg[256];
    if (status == 404 || status == 405) {
        snprintf(msg, sizeof(msg), "Invalid URL (%s %s)", tn_http_req_method(c->req),
                 tn_http_req_path(c->req));
        oa_error_full(c, status, "invalid_request_error", NULL, NULL, msg);
    } else if (status == 429) {
        oa_error_full(c, status, "requests", NULL, "rate_limit_exceeded", message);
    } else if (status >= 500) {
        oa_error_full(c, status, "server_error", NULL, NULL, message);
    } else {
        oa_error_full(c, status, "invalid_request_error", NULL, NULL, message);
    }
}

static bool oa_authorize(tn_fake_call_t *c, const char *key)
{
    const char *got = tn_fake_bearer(c->req);
    if (got && strcmp(got, key) == 0)
        return true;
    if (!got) {
        oa_error_full(c, 401, "invalid_request_error", NULL, NULL,
                      "You didn't provide an API key. You need to provide your API key in an "
                      "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                      "YOUR_KEY).");
    } else {
        char msg[256];
        size_t n = strlen(got);
        snprintf(msg, sizeof(msg), "Incorrect API key provided: %.3s...%s.", got,
                 n > 4 ? got + n - 4 : "");
        oa_error_full(c, 401, "invalid_request_error", NULL, "invalid_api_key", msg);
    }
    return false;
}

/* ============================================================================================ */
/* Vectors                                                                                      */

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Add @p w times the pseudo-random vector of @p seed (components in [-1, 1)). */
static void add_seeded(double *acc, size_t dims, uint64_t seed, double w)
{
    uint64_t st = seed;
    for (size_t i = 0; i < dims; i++) {
        double u = (double)(splitmix(&st) >> 11) * (1.0 / 9007199254740992.0);
        acc[i] += w * (2 * u - 1);
    }
}

static bool word_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch >= 0x80;
}

static void embed_text(const char *s, size_t len, size_t dims, double *acc)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && !word_byte((unsigned char)s[i]))
            i++;
        size_t wl = 0;
        uint64_t h = 1469598103934665603ULL;
        while (i < len && word_byte((unsigned char)s[i])) {
            char ch = s[i++];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            h = fnv1a(&ch, 1, h);
            wl++;
        }
        if (wl)
            add_seeded(acc, dims, h, 1.0);
    }
    add_seeded(acc, dims, fnv1a(s, len, 0x84222325cbf29ce4ULL), 0.35);
}

static void embed_tokens(json_t *toks, size_t dims, double *acc)
{
    size_t i;
    json_t *t;
    uint64_t whole = 0x84222325cbf29ce4ULL;
    json_array_foreach(toks, i, t)
    {
        int64_t v = (int64_t)json_integer_value(t);
        add_seeded(acc, dims, fnv1a(&v, sizeof(v), 1469598103934665603ULL), 1.0);
        whole = fnv1a(&v, sizeof(v), whole);
    }
    add_seeded(acc, dims, whole, 0.35);
}

/* The normalized vector as JSON floats or as base64 of little-endian float32. */
static json_t *vector_out(const double *acc, size_t dims, bool b64)
{
    double s = 0;
    for (size_t i = 0; i < dims; i++)
        s += acc[i] * acc[i];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0;
    if (!b64) {
        json_t *a = json_array();
        for (size_t i = 0; i < dims; i++)
            json_array_append_new(a, json_real((float)(acc[i] * inv)));
        return a;
    }
    unsigned char *raw = tn_xmalloc(dims * 4);
    for (size_t i = 0; i < dims; i++) {
        float f = (float)(acc[i] * inv);
        uint32_t u;
        memcpy(&u, &f, 4);
        raw[4 * i] = (unsigned char)u;
        raw[4 * i + 1] = (unsigned char)(u >> 8);
        raw[4 * i + 2] = (unsigned char)(u >> 16);
        raw[4 * i + 3] = (unsigned char)(u >> 24);
    }
    unsigned char *txt = tn_xmalloc(4 * ((dims * 4 + 2) / 3) + 1);
    EVP_EncodeBlock(txt, raw, (int)(dims * 4));
    json_t *out = json_string((const char *)txt);
    free(raw);
    free(txt);
    return out;
}

/* ============================================================================================ */
/* Routes                                                                                       */

static bool model_known(const char *models, const char *m)
{
    size_t ml = strlen(m);
    for (const char *p = models; *p;) {
        size_t n = strcspn(p, ",");
        if (n == ml && memcmp(p, m, n) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

static bool token_array(json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return false;
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        if (!json_is_integer(t) || json_integer_value(t) < 0)
            return false;
    }
    return true;
}

static size_t tokens_of(json_t *in)
{
    if (json_is_string(in))
        return (json_string_length(in) + 3) / 4;
    return json_array_size(in);
}

static void on_embeddings(tn_fake_call_t *c)
{
    emb_t *e = c->ctx;
    const emb_cfg_t *cfg = e->cfg;
    char msg[512];
    json_t *body = tn_fake_body_json(c, msg, sizeof(msg));
    json_t *inputs = NULL;
    if (!body) {
        bad(c, NULL, NULL,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.) "
            "%s",
            msg);
        return;
    }
    json_t *model = json_object_get(body, "model");
    json_t *input = json_object_get(body, "input");
    json_t *dj = json_object_get(body, "dimensions");
    json_t *fmt = json_object_get(body, "encoding_format");
    size_t dims = (size_t)cfg->dims;
    bool b64 = false;
    if (!json_is_string(model) || !*json_string_value(model)) {
        bad(c, "model", NULL, "you must provide a model parameter");
        goto out;
    }
    if (cfg->strict_models && !model_known(cfg->models, json_string_value(model))) {
        snprintf(msg, sizeof(msg),
                 "The model `%.100s` does not exist or you do not have access to it.",
                 json_string_value(model));
        oa_error_full(c, 404, "invalid_request_error", NULL, "model_not_found", msg);
        goto out;
    }
    if (!input || json_is_null(input)) {
        bad(c, "input", NULL, "'input' is a required property");
        goto out;
    }
    if (dj && !json_is_null(dj)) {
        if (!json_is_integer(dj) || json_integer_value(dj) < 1 ||
            json_integer_value(dj) > MAX_DIMS) {
            bad(c, "dimensions", NULL, "Invalid value for 'dimensions': it must be from 1 to %d.",
                MAX_DIMS);
            goto out;
        }
        dims = (size_t)json_integer_value(dj);
    }
    if (fmt && !json_is_null(fmt)) {
        if (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "float") != 0 &&
                                     strcmp(json_string_value(fmt), "base64") != 0)) {
            bad(c, "encoding_format", NULL,
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.");
            goto out;
        }
        b64 = strcmp(json_string_value(fmt), "base64") == 0;
    }
    /* the inputs as an array of strings or token arrays */
    if (json_is_string(input) || token_array(input)) {
        inputs = json_array();
        json_array_append(inputs, input);
    } else if (json_is_array(input)) {
        inputs = json_incref(input);
    } else {
        bad(c, "input", NULL, "'$.input' is invalid. Please check the API reference.");
        goto out;
    }
    size_t n = json_array_size(inputs);
    if (n == 0) {
        bad(c, "input", NULL, "'$.input' is invalid: it must not be empty.");
        goto out;
    }
    if (n > (size_t)cfg->max_inputs) {
        bad(c, "input", NULL, "'$.input' is too long: %zu inputs, at most %lld are allowed.", n,
            (long long)cfg->max_inputs);
        goto out;
    }
    size_t total = 0;
    size_t i;
    json_t *in;
    json_array_foreach(inputs, i, in)
    {
        if (!(json_is_string(in) && json_string_length(in) > 0) && !token_array(in)) {
            bad(c, "input", NULL,
                "'$.input[%zu]' is invalid: each input must be a non-empty string or array of "
                "tokens.",
                i);
            goto out;
        }
        size_t t = tokens_of(in);
        if (t > (size_t)cfg->max_input_tokens) {
            bad(c, NULL, "context_length_exceeded",
                "This model's maximum context length is %lld tokens, however you requested %zu "
                "tokens (%zu in your prompt; 0 for the completion). Please reduce your prompt; "
                "or completion length.",
                (long long)cfg->max_input_tokens, t, t);
            goto out;
        }
        total += t;
    }
    if (total > (size_t)cfg->max_request_tokens) {
        bad(c, NULL, "max_tokens_per_request", "Requested %zu tokens, max %lld tokens per request",
            total, (long long)cfg->max_request_tokens);
        goto out;
    }

    json_t *data = json_array();
    double *acc = tn_xmalloc(dims * sizeof(*acc));
    json_array_foreach(inputs, i, in)
    {
        memset(acc, 0, dims * sizeof(*acc));
        if (json_is_string(in))
            embed_text(json_string_value(in), json_string_length(in), dims, acc);
        else
            embed_tokens(in, dims, acc);
        json_array_append_new(data,
                              json_pack("{sssIso}", "object", "embedding", "index", (json_int_t)i,
                                        "embedding", vector_out(acc, dims, b64)));
    }
    free(acc);
    pthread_mutex_lock(&e->lock);
    e->n_requests++;
    e->n_inputs += n;
    e->n_tokens += total;
    pthread_mutex_unlock(&e->lock);
    tn_http_req_respond_json(c->req, 200,
                             json_pack("{sssosss{sIsI}}", "object", "list", "data", data, "model",
                                       json_string_value(model), "usage", "prompt_tokens",
                                       (json_int_t)total, "total_tokens", (json_int_t)total));
out:
    json_decref(inputs);
    json_decref(body);
}

/* ============================================================================================ */
/* Chat completions                                                                             */

static const char NO_ANSWER[] = "I could not find an answer in the documents.";

/* The text of a message's content: a string, or the "text" parts of an array. Caller frees. */
static char *content_text(json_t *content)
{
    if (json_is_string(content))
        return tn_xstrdup(json_string_value(content));
    tn_buf_t b;
    tn_buf_init(&b, 64u << 20);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t))
            tn_buf_adds(&b, json_string_value(t));
    }
    return tn_buf_detach(&b, NULL);
}

/* "Answer based on passage [n]: <first sentence of passage n>", n the first numbered passage
 * of @p user. Caller frees. */
static char *grounded_answer(const char *user)
{
    for (const char *line = user; line && *line;) {
        const char *p = line;
        if (*p == '[' && p[1] >= '0' && p[1] <= '9') {
            const char *d = p + 1;
            while (*d >= '0' && *d <= '9')
                d++;
            if (*d == ']' && d - p - 1 < 6) {
                int n = 0;
                for (const char *k = p + 1; k < d; k++)
                    n = n * 10 + (*k - '0');
                const char *t = d + 1;
                while (*t == ' ' || *t == '\t')
                    t++;
                if (*t == '(') { /* a title */
                    const char *close = strchr(t, ')');
                    const char *eol = strchr(t, '\n');
                    if (close && (!eol || close < eol)) {
                        t = close + 1;
                        while (*t == ' ' || *t == '\t')
                            t++;
                    }
                }
                size_t len = 0;
                while (t[len] && t[len] != '\n' && t[len] != '\r') {
                    char ch = t[len++];
                    if ((ch == '.' || ch == '!' || ch == '?') &&
                        (t[len] == '\0' || t[len] == ' ' || t[len] == '\n' || t[len] == '\r'))
                        break;
                }
                if (len > 0)
                    return tn_xasprintf("Answer based on passage [%d]: %.*s", n, (int)len, t);
            }
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return tn_xstrdup(NO_ANSWER);
}

/* The pieces of @p text: each word with the blanks after it (the first with those before). */
static json_t *word_pieces(const char *text)
{
    json_t *a = json_array();
    const char *p = text;
    while (*p) {
        const char *s = p;
        if (s == text)
            while (*p == ' ')
                p++;
        while (*p && *p != ' ')
            p++;
        while (*p == ' ')
            p++;
        json_array_append_new(a, json_stringn(s, (size_t)(p - s)));
    }
    return a;
}

/* One SSE stream being sent: its events, rendered, and where we are. */
typedef struct chat_stream {
    char **events;  /* "data: ...\n\n" */
    bool *is_token; /* wait token_delay_ms before it */
    size_t n, next, off;
    int64_t delay_ms;
} chat_stream_t;

static void chat_stream_free(void *opaque)
{
    chat_stream_t *cs = opaque;
    for (size_t i = 0; i < cs->n; i++)
        free(cs->events[i]);
    free(cs->events);
    free(cs->is_token);
    free(cs);
}

static ssize_t chat_stream_read(void *opaque, char *buf, size_t max)
{
    chat_stream_t *cs = opaque;
    if (cs->next >= cs->n)
        return 0;
    if (cs->off == 0 && cs->is_token[cs->next] && cs->delay_ms > 0) {
        struct timespec ts = {.tv_sec = cs->delay_ms / 1000,
                              .tv_nsec = (long)(cs->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    const char *e = cs->events[cs->next];
    size_t left = strlen(e) - cs->off;
    size_t k = TN_MIN(left, max);
    memcpy(buf, e + cs->off, k);
    cs->off += k;
    if (cs->off == strlen(e)) {
        cs->next++;
        cs->off = 0;
    }
    return (ssize_t)k;
}

static void stream_add(chat_stream_t *cs, json_t *chunk, bool token)
{
    cs->events = tn_xrealloc(cs->events, (cs->n + 1) * sizeof(char *));
    cs->is_token = tn_xrealloc(cs->is_token, (cs->n + 1) * sizeof(bool));
    if (chunk) {
        char *js = json_dumps(chunk, JSON_COMPACT);
        cs->events[cs->n] = tn_xasprintf("data: %s\n\n", js);
        free(js);
        json_decref(chunk);
    } else {
        cs->events[cs->n] = tn_xstrdup("data: [DONE]\n\n");
    }
    cs->is_token[cs->n++] = token;
}

static const char *const ROLES[] = {"system", "developer", "user", "assistant", "tool"};

static void on_chat(tn_fake_call_t *c)
{
    emb_t *e = c->ctx;
    char msg[512];
    char *user = NULL, *text = NULL;
    json_t *pieces = NULL;
    json_t *body = tn_fake_body_json(c, msg, sizeof(msg));
    if (!body) {
        bad(c, NULL, NULL,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.) "
            "%s",
            msg);
        return;
    }
    json_t *model = json_object_get(body, "model");
    json_t *messages = json_object_get(body, "messages");
    json_t *stream = json_object_get(body, "stream");
    json_t *sopts = json_object_get(body, "stream_options");
    json_t *max_tokens = json_object_get(body, "max_tokens");
    json_t *max_ctokens = json_object_get(body, "max_completion_tokens");
    json_t *temperature = json_object_get(body, "temperature");
    if (!json_is_string(model) || !*json_string_value(model)) {
        bad(c, "model", NULL, "you must provide a model parameter");
        goto out;
    }
    if (e->cfg->strict_models && !model_known(e->cfg->models, json_string_value(model))) {
        snprintf(msg, sizeof(msg),
                 "The model `%.100s` does not exist or you do not have access to it.",
                 json_string_value(model));
        oa_error_full(c, 404, "invalid_request_error", NULL, "model_not_found", msg);
        goto out;
    }
    if (!messages || json_is_null(messages)) {
        bad(c, "messages", NULL, "Missing required parameter: 'messages'.");
        goto out;
    }
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        bad(c, "messages", NULL,
            "Invalid 'messages': empty array. Expected an array with "
            "minimum length 1, but got an empty array instead.");
        goto out;
    }
    if (stream && !json_is_null(stream) && !json_is_boolean(stream)) {
        bad(c, "stream", NULL, "Invalid type for 'stream': expected a boolean.");
        goto out;
    }
    bool streaming = json_is_true(stream);
    if (sopts && !json_is_null(sopts) && !streaming) {
        bad(c, "stream_options", NULL,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
        goto out;
    }
    if (temperature && !json_is_null(temperature) &&
        (!json_is_number(temperature) || json_number_value(temperature) < 0 ||
         json_number_value(temperature) > 2)) {
        bad(c, "temperature", "decimal_above_max_value",
            "Invalid 'temperature': expected a number from 0 to 2.");
        goto out;
    }
    json_t *mt = max_ctokens && !json_is_null(max_ctokens) ? max_ctokens : max_tokens;
    if (mt && !json_is_null(mt) && (!json_is_integer(mt) || json_integer_value(mt) < 1)) {
        bad(c, mt == max_tokens ? "max_tokens" : "max_completion_tokens", NULL,
            "Invalid value: expected an integer of at least 1.");
        goto out;
    }
    size_t i, prompt_bytes = 0;
    json_t *m;
    json_array_foreach(messages, i, m)
    {
        json_t *role = json_object_get(m, "role");
        json_t *content = json_object_get(m, "content");
        bool role_ok = false;
        for (size_t k = 0; json_is_string(role) && k < TN_ARRAY_LEN(ROLES); k++)
            role_ok = role_ok || strcmp(json_string_value(role), ROLES[k]) == 0;
        if (!json_is_object(m) || !role_ok) {
            bad(c, NULL, NULL,
                "Invalid value for 'messages[%zu].role': expected one of 'system', "
                "'developer', 'user', 'assistant' or 'tool'.",
                i);
            goto out;
        }
        bool null_ok = strcmp(json_string_value(role), "assistant") == 0;
        if (!(json_is_string(content) || json_is_array(content) ||
              (null_ok && json_is_null(content)))) {
            bad(c, NULL, NULL, "Invalid type for 'messages[%zu].content': expected a string.", i);
            goto out;
        }
        char *t = content_text(content);
        prompt_bytes += strlen(t);
        if (strcmp(json_string_value(role), "user") == 0) {
            free(user);
            user = t;
        } else {
            free(t);
        }
    }

    text = grounded_answer(user ? user : "");
    pieces = word_pieces(text);
    size_t npieces = json_array_size(pieces);
    const char *finish = "stop";
    if (mt && !json_is_null(mt) && (size_t)json_integer_value(mt) < npieces) {
        npieces = (size_t)json_integer_value(mt);
        finish = "length";
    }
    tn_buf_t all;
    tn_buf_init(&all, 1u << 20);
    for (i = 0; i < npieces; i++)
        tn_buf_adds(&all, json_string_value(json_array_get(pieces, i)));
    size_t prompt_tokens = (prompt_bytes + 3) / 4;
    json_t *usage =
        json_pack("{sIsIsI}", "prompt_tokens", (json_int_t)prompt_tokens, "completion_tokens",
                  (json_int_t)npieces, "total_tokens", (json_int_t)(prompt_tokens + npieces));
    pthread_mutex_lock(&e->lock);
    uint64_t nr = ++e->n_chat;
    e->n_chat_streamed += streaming;
    e->n_chat_tokens += npieces;
    pthread_mutex_unlock(&e->lock);
    char id[64];
    snprintf(id, sizeof(id), "chatcmpl-fake-%llu", (unsigned long long)nr);
    json_int_t created = (json_int_t)time(NULL);
    const char *mname = json_string_value(model);

    if (!streaming) {
        json_t *choice = json_pack("{sIs{ssssss?}sssn}", "index", (json_int_t)0, "message", "role",
                                   "assistant", "content", all.data ? all.data : "", "refusal",
                                   NULL, "finish_reason", finish, "logprobs");
        tn_http_req_respond_json(c->req, 200,
                                 json_pack("{sssssIsss[o]sossss}", "id", id, "object",
                                           "chat.completion", "created", created, "model", mname,
                                           "choices", choice, "usage", usage, "system_fingerprint",
                                           "fp_fake", "service_tier", "default"));
        tn_buf_cleanup(&all);
        goto out;
    }
    tn_buf_cleanup(&all);
    bool with_usage = json_is_true(json_object_get(sopts, "include_usage"));
    chat_stream_t *cs = tn_xcalloc(1, sizeof(*cs));
    cs->delay_ms = e->cfg->token_delay_ms;
    for (i = 0; i <= npieces + 1; i++) {
        json_t *delta;
        json_t *fin = json_null();
        if (i == 0) {
            delta = json_pack("{ssss}", "role", "assistant", "content", "");
        } else if (i <= npieces) {
            delta = json_pack("{sO}", "content", json_array_get(pieces, i - 1));
        } else {
            delta = json_object();
            json_decref(fin);
            fin = json_string(finish);
        }
        json_t *chunk =
            json_pack("{sssssIssss}", "id", id, "object", "chat.completion.chunk", "created",
                      created, "model", mname, "system_fingerprint", "fp_fake");
        json_object_set_new(chunk, "choices",
                            json_pack("[{sIsosnso}]", "index", (json_int_t)0, "delta", delta,
                                      "logprobs", "finish_reason", fin));
        if (with_usage)
            json_object_set_new(chunk, "usage", json_null());
        stream_add(cs, chunk, i > 0 && i <= npieces);
    }
    if (with_usage)
        stream_add(cs,
                   json_pack("{sssssIsss[]sO}", "id", id, "object", "chat.completion.chunk",
                             "created", created, "model", mname, "choices", "usage", usage),
                   false);
    stream_add(cs, NULL, false);
    json_decref(usage);
    usage = NULL;
    tn_http_req_respond_stream(c->req, 200, "text/event-stream", chat_stream_read, chat_stream_free,
                               cs);
out:
    json_decref(pieces);
    free(text);
    free(user);
    json_decref(body);
}

static json_t *model_json(const char *name, size_t len)
{
    json_t *id = json_stringn(name, len);
    return json_pack("{sosssIss}", "id", id, "object", "model", "created", (json_int_t)1700000000,
                     "owned_by", "taina-fake");
}

static void on_models(tn_fake_call_t *c)
{
    emb_t *e = c->ctx;
    json_t *data = json_array();
    for (const char *p = e->cfg->models; *p;) {
        size_t n = strcspn(p, ",");
        if (n)
            json_array_append_new(data, model_json(p, n));
        p += n;
        if (*p == ',')
            p++;
    }
    tn_http_req_respond_json(c->req, 200, json_pack("{ssso}", "object", "list", "data", data));
}

static void on_model(tn_fake_call_t *c)
{
    emb_t *e = c->ctx;
    if (!model_known(e->cfg->models, c->arg[0])) {
        char msg[256];
        snprintf(msg, sizeof(msg), "The model '%.100s' does not exist", c->arg[0]);
        oa_error_full(c, 404, "invalid_request_error", "model", "model_not_found", msg);
        return;
    }
    tn_http_req_respond_json(c->req, 200, model_json(c->arg[0], strlen(c->arg[0])));
}

static const tn_fake_route_t emb_routes[] = {
    {"POST", "/v1/embeddings", "POST /v1/embeddings", on_embeddings, 0},
    {"POST", "/v1/chat/completions", "POST /v1/chat/completions", on_chat, 0},
    {"GET", "/v1/models", "GET /v1/models", on_models, 0},
    {"GET", "/v1/models/*", "GET /v1/models/{model}", on_model, 0},
};

static json_t *emb_stats(void *ctx)
{
    emb_t *e = ctx;
    pthread_mutex_lock(&e->lock);
    json_t *o =
        json_pack("{s{sIsIsI}s{sIsIsI}}", "embeddings", "requests", (json_int_t)e->n_requests,
                  "inputs", (json_int_t)e->n_inputs, "tokens", (json_int_t)e->n_tokens, "chat",
                  "requests", (json_int_t)e->n_chat, "streamed", (json_int_t)e->n_chat_streamed,
                  "completion_tokens", (json_int_t)e->n_chat_tokens);
    pthread_mutex_unlock(&e->lock);
    return o;
}

static void emb_reset(void *ctx)
{
    emb_t *e = ctx;
    pthread_mutex_lock(&e->lock);
    e->n_requests = e->n_inputs = e->n_tokens = 0;
    e->n_chat = e->n_chat_streamed = e->n_chat_tokens = 0;
    pthread_mutex_unlock(&e->lock);
}

static const tn_fake_api_t emb_api = {
    .error = oa_error,
    .authorize = oa_authorize,
    .malformed_body =
        "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"embedding\":[0.1,",
    .stats = emb_stats,
    .reset = emb_reset,
};

static void emb_free(emb_t *e)
{
    tn_fake_destroy(e->fake);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

static tn_err_t emb_init(tn_app_t *app, void *cfgp, void **state)
{
    char errbuf[256];
    emb_t *e = tn_xcalloc(1, sizeof(*e));
    e->cfg = cfgp;
    pthread_mutex_init(&e->lock, NULL);
    e->fake = tn_fake_new(&emb_api, emb_routes, TN_ARRAY_LEN(emb_routes), e, &e->cfg->fake, errbuf,
                          sizeof(errbuf));
    if (!e->fake) {
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        emb_free(e);
        return TN_ERR_CONFIG;
    }
    tn_err_t rc = tn_fake_serve(e->fake, app);
    if (rc != TN_OK) {
        emb_free(e);
        return rc;
    }
    TN_LOG(TN_LOG_INFO, "fake embeddings listening on port %d", tn_app_http_port(app));
    *state = e;
    return TN_OK;
}

static tn_err_t emb_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    while (!tn_lifecycle_wait(-1))
        ;
    return TN_OK;
}

static void emb_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    if (state)
        emb_free(state);
}

static const tn_app_def_t emb_def = {
    .name = "fake-embeddings",
    .summary = "test double of OpenAI's /v1/embeddings (deterministic vectors) and "
               "/v1/chat/completions (grounded answers, SSE), with faults",
    .features = TN_APP_HTTP,
    .keys = emb_keys,
    .nkeys = TN_ARRAY_LEN(emb_keys),
    .cfg_size = sizeof(emb_cfg_t),
    .init = emb_init,
    .run = emb_run,
    .shutdown = emb_shutdown,
};

int main(int argc, char **argv)
{
    return tn_app_main(&emb_def, argc, argv, environ);
}
