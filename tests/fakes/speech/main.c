/* taina-fake-speech: a double of the speech APIs the voice gateway calls, with the fault switches
 * of tests/support/fake_api.h:
 *   - Deepgram pre-recorded  POST /v1/listen                   (CONTRACTS.md 3.1)
 *   - OpenAI transcriptions  POST /v1/audio/transcriptions     (CONTRACTS.md 2.3)
 *   - ElevenLabs TTS         POST /v1/text-to-speech/{voice_id} (CONTRACTS.md 4)
 *
 * Transcripts are controlled by the test: a queue (each request takes the next one), else a
 * fixed transcript, else a default per language; audio that is silent (no 20 ms frame louder
 * than -50 dBFS) is always transcribed as "". Every upload is decoded (WAV, or Deepgram's raw
 * linear16) and the last fake_stt_keep are kept for GET /admin/stt/uploads and /admin/stt/last.
 *
 * Speech is real speech: espeak-ng through tn_tts (the Spanish or English voice, from
 * language_code or else detected from the text), resampled to the asked pcm_* rate, so its
 * length follows the text and the gateway can run it through VAD and STT like a person.
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fake_api.h"
#include "taina/app.h"
#include "taina/audio.h"
#include "taina/buf.h"
#include "taina/lang.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/tts.h"

extern char **environ;

typedef struct sp_cfg {
    tn_fake_cfg_t fake;
    char *transcript;
    int64_t keep;
    char *voices;
    int64_t max_chars;
} sp_cfg_t;

static const tn_cfg_key_t sp_keys[] = {
    TN_FAKE_CFG_KEYS(sp_cfg_t, fake),
    {"fake_stt_transcript", TN_CFG_STRING, offsetof(sp_cfg_t, transcript), "", 0,
     "Transcript of every upload (empty: a default sentence per language)", 0, 0, NULL},
    {"fake_stt_keep", TN_CFG_INT, offsetof(sp_cfg_t, keep), "8", 0,
     "Uploads kept for GET /admin/stt/uploads and /admin/stt/last", 1, 1000, NULL},
    {"fake_voices", TN_CFG_STRING, offsetof(sp_cfg_t, voices), "", 0,
     "ElevenLabs voice ids accepted, comma-separated (empty: any)", 0, 0, NULL},
    {"fake_max_chars", TN_CFG_INT, offsetof(sp_cfg_t, max_chars), "5000", 0,
     "ElevenLabs: longest text (more: 400 max_character_limit_exceeded)", 1, 100000, NULL},
};

#define SILENCE_DBFS -50.0
#define MAX_QUEUE    256

/* One upload, as received and decoded. */
typedef struct upload {
    uint64_t id;
    char api[16]; /* "deepgram" | "openai" */
    char *content_type;
    size_t bytes; /* body (or file part) size as received */
    int16_t *pcm;
    size_t n;
    int rate;
    double peak_dbfs; /* loudest 20 ms frame */
    char *language, *model, *transcript;
} upload_t;

typedef struct sp {
    const sp_cfg_t *cfg;
    tn_fake_t *fake;
    tn_tts_t *tts;

    pthread_mutex_t lock; /* everything below */
    upload_t *ring;       /* cfg->keep slots, newest at (next - 1) % keep */
    uint64_t next_id;     /* ids start at 1; next_id - 1 uploads so far */
    char *fixed;          /* NULL: the default */
    char *queue[MAX_QUEUE];
    size_t qhead, qlen;
    uint64_t n_deepgram, n_openai, n_tts, n_tts_chars;
    double audio_s, speech_s;
} sp_t;

/* ============================================================================================ */
/* Errors: one envelope per API, chosen by path                                                 */

typedef enum { API_DEEPGRAM, API_OPENAI, API_ELEVEN, API_OTHER } api_t;

static api_t api_of(tn_fake_call_t *c)
{
    const char *p = tn_http_req_path(c->req);
    if (strncmp(p, "/v1/listen", 10) == 0)
        return API_DEEPGRAM;
    if (strncmp(p, "/v1/audio/", 10) == 0)
        return API_OPENAI;
    if (strncmp(p, "/v1/text-to-speech", 18) == 0)
        return API_ELEVEN;
    return API_OTHER;
}

static void request_id(char *buf, size_t len)
{
    static _Atomic uint64_t seq;
    uint64_t n = ++seq;
    snprintf(buf, len, "fa4e5e00-0000-4000-8000-%012llx", (unsigned long long)n);
}

static void dg_error(tn_fake_call_t *c, int status, const char *code, const char *msg)
{
    char rid[64];
    request_id(rid, sizeof(rid));
    tn_http_req_respond_json(
        c->req, status, json_pack("{ssssss}", "err_code", code, "err_msg", msg, "request_id", rid));
}

static void oa_error(tn_fake_call_t *c, int status, const char *type, const char *code,
                     const char *msg)
{
    tn_http_req_respond_json(c->req, status,
                             json_pack("{s{ssssss?ss?}}", "error", "message", msg, "type", type,
                                       "param", NULL, "code", code));
}

static void el_error(tn_fake_call_t *c, int status, const char *code, const char *msg)
{
    tn_http_req_respond_json(c->req, status,
                             json_pack("{s{ssss}}", "detail", "status", code, "message", msg));
}

static void sp_error(tn_fake_call_t *c, int status, const char *message)
{
    switch (api_of(c)) {
    case API_DEEPGRAM:
        dg_error(c, status,
                 status == 429   ? "TOO_MANY_REQUESTS"
                 : status == 404 ? "NOT_FOUND"
                 : status >= 500 ? "INTERNAL_SERVER_ERROR"
                                 : "Bad Request",
                 message);
        break;
    case API_ELEVEN:
        el_error(c, status,
                 status == 429   ? "system_busy"
                 : status >= 500 ? "internal_error"
                                 : "invalid_request",
                 message);
        break;
    default:
        oa_error(c, status,
                 status == 429   ? "requests"
                 : status >= 500 ? "server_error"
                                 : "invalid_request_error",
                 status == 429 ? "rate_limit_exceeded" : NULL, message);
        break;
    }
}

/* Each API's own key header: Deepgram "Authorization: Token K" (Bearer for its short-lived
 * tokens), OpenAI "Authorization: Bearer K", ElevenLabs "xi-api-key: K". Admin: either. */
static bool sp_authorize(tn_fake_call_t *c, const char *key)
{
    const char *auth = tn_http_req_header(c->req, "Authorization");
    const char *xi = tn_http_req_header(c->req, "xi-api-key");
    const char *bearer = tn_fake_bearer(c->req);
    const char *token = auth && strncasecmp(auth, "Token ", 6) == 0 ? auth + 6 : NULL;
    switch (api_of(c)) {
    case API_DEEPGRAM:
        if ((token && strcmp(token, key) == 0) || (bearer && strcmp(bearer, key) == 0))
            return true;
        dg_error(c, 401, "INVALID_AUTH", "Invalid credentials.");
        return false;
    case API_ELEVEN:
        if (xi && strcmp(xi, key) == 0)
            return true;
        el_error(c, 401, "invalid_api_key", "Invalid API key");
        return false;
    case API_OPENAI:
        if (bearer && strcmp(bearer, key) == 0)
            return true;
        oa_error(c, 401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.");
        return false;
    default:
        if ((bearer && strcmp(bearer, key) == 0) || (xi && strcmp(xi, key) == 0) ||
            (token && strcmp(token, key) == 0))
            return true;
        oa_error(c, 401, "invalid_request_error", "invalid_api_key", "Missing or wrong API key.");
        return false;
    }
}

/* ============================================================================================ */
/* Transcripts and the upload record                                                            */

static const char *default_transcript(const char *lang)
{
    if (lang && strncmp(lang, "es", 2) == 0)
        return "Quiero pedir una cita para renovar el pasaporte.";
    return "I would like to book an appointment to renew my passport.";
}

static double peak_dbfs(const int16_t *pcm, size_t n, int rate)
{
    size_t fr = (size_t)(rate / 50);
    double peak = -100;
    if (fr == 0)
        return peak;
    for (size_t off = 0; off < n; off += fr) {
        double d = tn_audio_dbfs(pcm + off, TN_MIN(fr, n - off));
        if (d > peak)
            peak = d;
    }
    return peak;
}

static void upload_free(upload_t *u)
{
    free(u->content_type);
    free(u->pcm);
    free(u->language);
    free(u->model);
    free(u->transcript);
    memset(u, 0, sizeof(*u));
}

/* Record @p u (taken) and choose its transcript: "" for silence, else the queue's next, else the
 * fixed one, else the default. @returns a copy of the transcript (caller frees). */
static char *record(sp_t *s, upload_t *u)
{
    char *text;
    u->peak_dbfs = peak_dbfs(u->pcm, u->n, u->rate);
    pthread_mutex_lock(&s->lock);
    if (u->peak_dbfs < SILENCE_DBFS) {
        text = tn_xstrdup("");
    } else if (s->qlen > 0) {
        text = s->queue[s->qhead];
        s->queue[s->qhead] = NULL;
        s->qhead = (s->qhead + 1) % MAX_QUEUE;
        s->qlen--;
    } else {
        text = tn_xstrdup(s->fixed ? s->fixed : default_transcript(u->language));
    }
    u->transcript = tn_xstrdup(text);
    u->id = s->next_id++;
    upload_t *slot = &s->ring[(u->id - 1) % (uint64_t)s->cfg->keep];
    upload_free(slot);
    *slot = *u;
    s->audio_s += (double)u->n / u->rate;
    if (strcmp(u->api, "deepgram") == 0)
        s->n_deepgram++;
    else
        s->n_openai++;
    pthread_mutex_unlock(&s->lock);
    memset(u, 0, sizeof(*u));
    return text;
}

/* ============================================================================================ */
/* Deepgram                                                                                     */

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void iso_now(char *buf, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    size_t k = strlen(buf);
    snprintf(buf + k, len - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Words of @p text spread evenly over @p dur seconds. */
static json_t *dg_words(const char *text, double dur, double conf)
{
    json_t *a = json_array();
    size_t nw = 0;
    for (const char *p = text; *p;) {
        p += strspn(p, " ");
        if (*p) {
            nw++;
            p += strcspn(p, " ");
        }
    }
    double step = nw ? dur / (double)nw : 0;
    size_t i = 0;
    for (const char *p = text; *p;) {
        p += strspn(p, " ");
        size_t l = strcspn(p, " ");
        if (!l)
            break;
        char *pw = tn_xstrndup(p, l);
        char *w = tn_xstrndup(p, l);
        size_t o = 0;
        for (size_t k = 0; w[k]; k++) /* the bare word: lower case, no punctuation */
            if (!strchr(".,;:!?¿¡\"", w[k]))
                w[o++] = (w[k] >= 'A' && w[k] <= 'Z') ? (char)(w[k] | 0x20) : w[k];
        w[o] = '\0';
        json_array_append_new(a, json_pack("{sssfsfsfss}", "word", w, "start", step * (double)i,
                                           "end", step * (double)(i + 1), "confidence", conf,
                                           "punctuated_word", pw));
        free(w);
        free(pw);
        p += l;
        i++;
    }
    return a;
}

static void on_listen(tn_fake_call_t *c)
{
    sp_t *s = c->ctx;
    char msg[300];
    size_t blen = 0;
    const char *body = tn_http_req_body(c->req, &blen);
    const char *ct = tn_http_req_content_type(c->req);
    const char *enc = tn_http_req_query(c->req, "encoding");
    const char *lang = tn_http_req_query(c->req, "language");
    const char *model = tn_http_req_query(c->req, "model");
    upload_t u = {0};
    snprintf(u.api, sizeof(u.api), "deepgram");
    if (ct && strncasecmp(ct, "application/json", 16) == 0) {
        dg_error(c, 400, "Bad Request",
                 "The fake does not fetch remote audio: send the audio bytes in the body.");
        return;
    }
    if (blen == 0) {
        dg_error(c, 400, "Bad Request", "Bad Request: failed to process audio: empty body");
        return;
    }
    if (enc && *enc) {
        const char *sr = tn_http_req_query(c->req, "sample_rate");
        long rate = sr ? strtol(sr, NULL, 10) : 0;
        if (strcmp(enc, "linear16") != 0 || rate < 8000 || rate > 48000 || blen % 2) {
            dg_error(c, 400, "INVALID_QUERY_PARAMETER",
                     "The fake takes raw audio as encoding=linear16 with sample_rate 8000..48000 "
                     "(mono), or a WAV file without encoding.");
            return;
        }
        u.n = blen / 2;
        u.pcm = tn_xmalloc(TN_MAX(u.n, (size_t)1) * sizeof(int16_t));
        const uint8_t *b = (const uint8_t *)body;
        for (size_t i = 0; i < u.n; i++)
            u.pcm[i] = (int16_t)(uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
        u.rate = (int)rate;
    } else {
        if (tn_wav_decode((const uint8_t *)body, blen, &u.pcm, &u.n, &u.rate, msg, sizeof(msg)) !=
            TN_OK) {
            char m2[400];
            snprintf(m2, sizeof(m2),
                     "Bad Request: failed to process audio: corrupt or unsupported data (%s)", msg);
            dg_error(c, 400, "Bad Request", m2);
            return;
        }
    }
    u.content_type = tn_xstrdup(ct ? ct : "");
    u.bytes = blen;
    u.language = tn_xstrdup(lang && *lang ? lang : "en");
    u.model = tn_xstrdup(model && *model ? model : "base");
    double dur = (double)u.n / u.rate;
    char *text = record(s, &u);
    double conf = *text ? 0.98 : 0;
    char rid[64], sha[65], created[40];
    request_id(rid, sizeof(rid));
    sha256_hex(body, blen, sha);
    iso_now(created, sizeof(created));
    const char *muuid = "1abfe86b-e047-4eed-858a-35e5625b41ee";
    json_t *alt = json_pack("{sssfso}", "transcript", text, "confidence", conf, "words",
                            dg_words(text, dur, conf));
    json_t *out =
        json_pack("{s{sssssssssfsIs[s]s{s{ssssss}}}s{s[{s[o]}]}}", "metadata", "transaction_key",
                  "deprecated", "request_id", rid, "sha256", sha, "created", created, "duration",
                  dur, "channels", (json_int_t)1, "models", muuid, "model_info", muuid, "name",
                  model && *model ? model : "general", "version", "2024-01-09.29447", "arch",
                  "fake", "results", "channels", "alternatives", alt);
    free(text);
    tn_http_req_add_header(c->req, "dg-request-id", rid);
    tn_http_req_respond_json(c->req, 200, out);
}

/* ============================================================================================ */
/* OpenAI: multipart/form-data                                                                  */

typedef struct part {
    char name[64];
    char filename[128];
    char ctype[128];
    const char *data;
    size_t len;
} part_t;

/* The value of parameter @p key ("boundary", "name") in a header value, unquoted. */
static bool header_param(const char *h, size_t hlen, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 1 <= hlen; i++) {
        if ((i == 0 || h[i - 1] == ';' || h[i - 1] == ' ') && strncasecmp(h + i, key, kl) == 0 &&
            h[i + kl] == '=') {
            const char *v = h + i + kl + 1;
            const char *end = h + hlen;
            size_t n;
            if (v < end && *v == '"') {
                v++;
                const char *q = memchr(v, '"', (size_t)(end - v));
                if (!q)
                    return false;
                n = (size_t)(q - v);
            } else {
                n = 0;
                while (v + n < end && v[n] != ';' && v[n] != ' ' && v[n] != '\r')
                    n++;
            }
            if (n == 0 || n >= outlen)
                return false;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* Split a multipart body into at most @p max parts. @returns the count, or -1 malformed. */
static int multipart_parse(const char *body, size_t len, const char *boundary, part_t *parts,
                           int max)
{
    char delim[96];
    int dl = snprintf(delim, sizeof(delim), "--%s", boundary);
    if (dl <= 2 || (size_t)dl >= sizeof(delim))
        return -1;
    const char *end = body + len;
    const char *p = memmem(body, len, delim, (size_t)dl);
    int n = 0;
    while (p) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return n; /* closing delimiter */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return -1;
        p += 2;
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend || n == max)
            return -1;
        part_t *pt = &parts[n];
        memset(pt, 0, sizeof(*pt));
        for (const char *line = p; line < hend;) {
            const char *eol = memmem(line, (size_t)(hend - line) + 2, "\r\n", 2);
            size_t ll = (size_t)(eol - line);
            if (ll > 20 && strncasecmp(line, "Content-Disposition:", 20) == 0) {
                if (!header_param(line, ll, "name", pt->name, sizeof(pt->name)))
                    return -1;
                header_param(line, ll, "filename", pt->filename, sizeof(pt->filename));
            } else if (ll > 13 && strncasecmp(line, "Content-Type:", 13) == 0) {
                const char *v = line + 13;
                while (*v == ' ')
                    v++;
                size_t vl = (size_t)(eol - v);
                if (vl >= sizeof(pt->ctype))
                    vl = sizeof(pt->ctype) - 1;
                memcpy(pt->ctype, v, vl);
            }
            line = eol + 2;
        }
        if (!pt->name[0])
            return -1;
        const char *data = hend + 4;
        char ndelim[100];
        int nl = snprintf(ndelim, sizeof(ndelim), "\r\n%s", delim);
        const char *next = memmem(data, (size_t)(end - data), ndelim, (size_t)nl);
        if (!next)
            return -1;
        pt->data = data;
        pt->len = (size_t)(next - data);
        n++;
        p = next + 2;
    }
    return -1;
}

static const part_t *part_get(const part_t *parts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(parts[i].name, name) == 0)
            return &parts[i];
    return NULL;
}

static char *part_str(const part_t *p, const char *def)
{
    return p ? tn_xstrndup(p->data, p->len) : tn_xstrdup(def);
}

static void on_transcriptions(tn_fake_call_t *c)
{
    sp_t *s = c->ctx;
    size_t blen = 0;
    const char *body = tn_http_req_body(c->req, &blen);
    const char *ct = tn_http_req_content_type(c->req);
    char boundary[80], msg[300];
    part_t parts[16];
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0 ||
        !header_param(ct, strlen(ct), "boundary", boundary, sizeof(boundary))) {
        oa_error(c, 400, "invalid_request_error", NULL,
                 "Invalid Content-Type header: expected multipart/form-data with a boundary.");
        return;
    }
    int np = multipart_parse(body, blen, boundary, parts, (int)TN_ARRAY_LEN(parts));
    if (np < 0) {
        oa_error(c, 400, "invalid_request_error", NULL, "Could not parse multipart form.");
        return;
    }
    const part_t *file = part_get(parts, np, "file");
    const part_t *model = part_get(parts, np, "model");
    if (!file) {
        oa_error(c, 400, "invalid_request_error", NULL, "Missing required parameter: 'file'.");
        return;
    }
    if (!model || model->len == 0) {
        oa_error(c, 400, "invalid_request_error", NULL, "Missing required parameter: 'model'.");
        return;
    }
    char *fmt = part_str(part_get(parts, np, "response_format"), "json");
    char *lang = part_str(part_get(parts, np, "language"), "");
    upload_t u = {0};
    if (strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0 && strcmp(fmt, "verbose_json") != 0) {
        snprintf(msg, sizeof(msg),
                 "The fake answers response_format json, text or verbose_json, not '%.40s'.", fmt);
        oa_error(c, 400, "invalid_request_error", NULL, msg);
        goto out;
    }
    if (tn_wav_decode((const uint8_t *)file->data, file->len, &u.pcm, &u.n, &u.rate, msg,
                      sizeof(msg)) != TN_OK) {
        char m2[400];
        snprintf(m2, sizeof(m2),
                 "Invalid file format. The fake reads 16-bit PCM WAV files only (%s).", msg);
        oa_error(c, 400, "invalid_request_error", NULL, m2);
        goto out;
    }
    snprintf(u.api, sizeof(u.api), "openai");
    u.content_type = tn_xstrdup(file->ctype[0] ? file->ctype : "");
    u.bytes = file->len;
    u.language = tn_xstrdup(*lang ? lang : "en");
    u.model = part_str(model, "");
    double dur = (double)u.n / u.rate;
    char *text = record(s, &u);
    if (strcmp(fmt, "text") == 0) {
        char *t = tn_xasprintf("%s\n", text);
        tn_http_req_respond(c->req, 200, "text/plain; charset=utf-8", t, strlen(t));
        free(t);
    } else if (strcmp(fmt, "json") == 0) {
        tn_http_req_respond_json(
            c->req, 200,
            json_pack("{sss{sssf}}", "text", text, "usage", "type", "duration", "seconds", dur));
    } else {
        tn_http_req_respond_json(
            c->req, 200,
            json_pack("{sssfsss[{sIsIsfsfsss[]sfsfsfsf}]}", "language", *lang ? lang : "english",
                      "duration", dur, "text", text, "segments", "id", (json_int_t)0, "seek",
                      (json_int_t)0, "start", 0.0, "end", dur, "text", text, "tokens",
                      "temperature", 0.0, "avg_logprob", -0.2, "compression_ratio", 1.0,
                      "no_speech_prob", *text ? 0.01 : 0.9));
    }
    free(text);
out:
    upload_free(&u);
    free(fmt);
    free(lang);
}

/* ============================================================================================ */
/* ElevenLabs                                                                                   */

static bool voice_known(const char *list, const char *v)
{
    if (!list || !*list)
        return true;
    size_t vl = strlen(v);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == vl && strncmp(p, v, n) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

static void on_tts(tn_fake_call_t *c)
{
    sp_t *s = c->ctx;
    char msg[300];
    const char *voice = c->arg[0];
    const char *fmt = tn_http_req_query(c->req, "output_format");
    int rate = 0;
    if (!fmt || !*fmt)
        fmt = "mp3_44100_128";
    static const int rates[] = {8000, 16000, 22050, 24000, 32000, 44100, 48000};
    for (size_t i = 0; i < TN_ARRAY_LEN(rates); i++) {
        char name[32];
        snprintf(name, sizeof(name), "pcm_%d", rates[i]);
        if (strcmp(fmt, name) == 0)
            rate = rates[i];
    }
    if (!rate) {
        snprintf(msg, sizeof(msg),
                 "The fake produces pcm_* output formats only (raw 16-bit mono), not %.40s.", fmt);
        el_error(c, 400, "invalid_output_format", msg);
        return;
    }
    json_t *body = tn_fake_body_json(c, msg, sizeof(msg));
    if (!body) {
        tn_http_req_respond_json(c->req, 422,
                                 json_pack("{s[{s[ss]ssss}]}", "detail", "loc", "body", "text",
                                           "msg", msg, "type", "value_error.jsondecode"));
        return;
    }
    json_t *text = json_object_get(body, "text");
    json_t *lc = json_object_get(body, "language_code");
    int16_t *pcm = NULL, *out = NULL;
    if (!json_is_string(text)) {
        tn_http_req_respond_json(c->req, 422,
                                 json_pack("{s[{s[ss]ssss}]}", "detail", "loc", "body", "text",
                                           "msg", "field required", "type", "value_error.missing"));
        goto out;
    }
    size_t tl = json_string_length(text);
    if (tl == 0 || tl > (size_t)s->cfg->max_chars) {
        snprintf(msg, sizeof(msg), "The text must have 1 to %lld characters, not %zu.",
                 (long long)s->cfg->max_chars, tl);
        el_error(c, 400, tl ? "max_character_limit_exceeded" : "invalid_text", msg);
        goto out;
    }
    if (!voice_known(s->cfg->voices, voice)) {
        snprintf(msg, sizeof(msg), "A voice with the voice_id %.60s was not found.", voice);
        el_error(c, 404, "voice_not_found", msg);
        goto out;
    }
    const char *t = json_string_value(text);
    const char *lang = json_is_string(lc) ? json_string_value(lc) : NULL;
    if (!lang || (strncmp(lang, "es", 2) != 0 && strncmp(lang, "en", 2) != 0)) {
        tn_lang_t det = tn_lang_detect(t, tl, NULL);
        lang = strcmp(det.code, "es") == 0 ? "es" : "en";
    }
    size_t n = 0, m = 0;
    int r0 = 0;
    if (tn_tts_synthesize(s->tts, t, lang, &pcm, &n, &r0, msg, sizeof(msg)) != TN_OK) {
        el_error(c, 500, "internal_error", msg);
        goto out;
    }
    out = tn_resample_all(pcm, n, r0, rate, &m);
    uint8_t *bytes = tn_xmalloc(TN_MAX(m, (size_t)1) * 2);
    for (size_t i = 0; i < m; i++) {
        bytes[2 * i] = (uint8_t)((uint16_t)out[i] & 0xFF);
        bytes[2 * i + 1] = (uint8_t)((uint16_t)out[i] >> 8);
    }
    pthread_mutex_lock(&s->lock);
    s->n_tts++;
    s->n_tts_chars += tl;
    s->speech_s += (double)m / rate;
    pthread_mutex_unlock(&s->lock);
    char rid[64];
    request_id(rid, sizeof(rid));
    tn_http_req_add_header(c->req, "request-id", rid);
    tn_http_req_respond(c->req, 200, "audio/pcm", bytes, m * 2);
    free(bytes);
out:
    free(pcm);
    free(out);
    json_decref(body);
}

/* ============================================================================================ */
/* Admin                                                                                        */

static json_t *upload_json(const upload_t *u)
{
    return json_pack("{sIsssssIsIsisfsfssssss}", "id", (json_int_t)u->id, "api", u->api,
                     "content_type", u->content_type, "bytes", (json_int_t)u->bytes, "samples",
                     (json_int_t)u->n, "sample_rate", u->rate, "duration_s", (double)u->n / u->rate,
                     "peak_dbfs", u->peak_dbfs, "language", u->language, "model", u->model,
                     "transcript", u->transcript);
}

static json_t *transcript_state(sp_t *s)
{
    json_t *q = json_array();
    for (size_t i = 0; i < s->qlen; i++)
        json_array_append_new(q, json_string(s->queue[(s->qhead + i) % MAX_QUEUE]));
    return json_pack("{so?so}", "text", s->fixed ? json_string(s->fixed) : NULL, "queue", q);
}

/* POST {"text": "..."|null} sets (or with null clears) the fixed transcript; {"queue": [...]}
 * appends to the queue; {"clear_queue": true} empties it first. GET shows the state. */
static void admin_transcript(tn_fake_call_t *c)
{
    sp_t *s = c->ctx;
    if (strcmp(tn_http_req_method(c->req), "POST") == 0) {
        char msg[300];
        json_t *body = tn_fake_body_json(c, msg, sizeof(msg));
        if (!body) {
            oa_error(c, 400, "invalid_request_error", NULL, msg);
            return;
        }
        json_t *text = json_object_get(body, "text");
        json_t *queue = json_object_get(body, "queue");
        json_t *clear = json_object_get(body, "clear_queue");
        size_t i;
        json_t *v;
        bool ok = (!text || json_is_string(text) || json_is_null(text)) &&
                  (!queue || json_is_array(queue)) && (!clear || json_is_boolean(clear));
        json_array_foreach(queue, i, v) ok = ok && json_is_string(v);
        if (!ok) {
            oa_error(c, 400, "invalid_request_error", NULL,
                     "expected {\"text\": string|null, \"queue\": [string], \"clear_queue\": "
                     "bool}");
            json_decref(body);
            return;
        }
        pthread_mutex_lock(&s->lock);
        if (json_is_true(clear)) {
            while (s->qlen) {
                free(s->queue[s->qhead]);
                s->queue[s->qhead] = NULL;
                s->qhead = (s->qhead + 1) % MAX_QUEUE;
                s->qlen--;
            }
        }
        if (text) {
            free(s->fixed);
            s->fixed = json_is_string(text) ? tn_xstrdup(json_string_value(text)) : NULL;
        }
        bool full = false;
        json_array_foreach(queue, i, v)
        {
            if (s->qlen == MAX_QUEUE) {
                full = true;
                break;
            }
            s->queue[(s->qhead + s->qlen) % MAX_QUEUE] = tn_xstrdup(json_string_value(v));
            s->qlen++;
        }
        pthread_mutex_unlock(&s->lock);
        json_decref(body);
        if (full) {
            oa_error(c, 400, "invalid_request_error", NULL,
                     "the queue holds at most 256 transcripts (the ones before were added)");
            return;
        }
    }
    pthread_mutex_lock(&s->lock);
    json_t *out = transcript_state(s);
    pthread_mutex_unlock(&s->lock);
    tn_http_req_respond_json(c->req, 200, out);
}

static void admin_uploads(tn_fake_call_t *c)
{
    sp_t *s = c->ctx;
    json_t *a = json_array();
    pthread_mutex_lock(&s->lock);
    uint64_t total = s->next_id - 1, keep = (uint64_t)s->cfg->keep;
    for (uint64_t id = total; id >= 1 && id + keep > total; id--)
        json_array_append_new(a, upload_json(&s->ring[(id - 1) % keep]));
    pthread_mutex_unlock(&s->lock);
    tn_http_req_respond_json(c->req, 200,
                             json_pack("{sIso}", "total", (json_int_t)total, "uploads", a));
}

/* GET /admin/stt/last[?index=k]: the k-th newest upload (0 = the last) as a mono 16-bit WAV
 * at its own rate; X-Upload-* headers carry its record. */
static void admin_last(tn_fake_call_t *c)
{
    sp_t *s = c->ctx;
    const char *q = tn_http_req_query(c->req, "index");
    char *end = NULL;
    long k = q ? strtol(q, &end, 10) : 0;
    if (q && (*end || k < 0)) {
        oa_error(c, 400, "invalid_request_error", NULL, "index must be a whole number >= 0");
        return;
    }
    uint8_t *wav = NULL;
    size_t len = 0;
    char id[32] = "", transcript[1024] = "", api[16] = "";
    pthread_mutex_lock(&s->lock);
    uint64_t total = s->next_id - 1, keep = (uint64_t)s->cfg->keep;
    if ((uint64_t)k < TN_MIN(total, keep)) {
        const upload_t *u = &s->ring[(total - (uint64_t)k - 1) % keep];
        wav = tn_wav_encode(u->pcm, u->n, u->rate, &len);
        snprintf(id, sizeof(id), "%llu", (unsigned long long)u->id);
        snprintf(api, sizeof(api), "%s", u->api);
        /* header-safe: no CR/LF, cut short */
        snprintf(transcript, sizeof(transcript), "%s", u->transcript);
        for (char *p = transcript; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
    }
    pthread_mutex_unlock(&s->lock);
    if (!wav) {
        oa_error(c, 404, "invalid_request_error", NULL, "no such upload (yet)");
        return;
    }
    tn_http_req_add_header(c->req, "X-Upload-Id", id);
    tn_http_req_add_header(c->req, "X-Upload-Api", api);
    tn_http_req_respond(c->req, 200, "audio/wav", wav, len);
    free(wav);
}

static const tn_fake_route_t sp_routes[] = {
    {"POST", "/v1/listen", "POST /v1/listen", on_listen, 0},
    {"POST", "/v1/audio/transcriptions", "POST /v1/audio/transcriptions", on_transcriptions, 0},
    {"POST", "/v1/text-to-speech/*", "POST /v1/text-to-speech/{voice_id}", on_tts, 0},
    {"GET", "/admin/stt/transcript", "GET /admin/stt/transcript", admin_transcript, TN_FAKE_ADMIN},
    {"POST", "/admin/stt/transcript", "POST /admin/stt/transcript", admin_transcript,
     TN_FAKE_ADMIN},
    {"GET", "/admin/stt/uploads", "GET /admin/stt/uploads", admin_uploads, TN_FAKE_ADMIN},
    {"GET", "/admin/stt/last", "GET /admin/stt/last", admin_last, TN_FAKE_ADMIN},
};

static json_t *sp_stats(void *ctx)
{
    sp_t *s = ctx;
    pthread_mutex_lock(&s->lock);
    json_t *o = json_pack("{s{sIsIsf}s{sIsIsf}}", "stt", "deepgram", (json_int_t)s->n_deepgram,
                          "openai", (json_int_t)s->n_openai, "audio_seconds", s->audio_s, "tts",
                          "requests", (json_int_t)s->n_tts, "characters",
                          (json_int_t)s->n_tts_chars, "audio_seconds", s->speech_s);
    pthread_mutex_unlock(&s->lock);
    return o;
}

static void sp_clear(sp_t *s)
{
    for (int64_t i = 0; i < s->cfg->keep; i++)
        upload_free(&s->ring[i]);
    for (size_t i = 0; i < MAX_QUEUE; i++)
        TN_FREE(s->queue[i]);
    s->qhead = s->qlen = 0;
    TN_FREE(s->fixed);
}

static void sp_reset(void *ctx)
{
    sp_t *s = ctx;
    pthread_mutex_lock(&s->lock);
    sp_clear(s);
    s->fixed = *s->cfg->transcript ? tn_xstrdup(s->cfg->transcript) : NULL;
    s->next_id = 1;
    s->n_deepgram = s->n_openai = s->n_tts = s->n_tts_chars = 0;
    s->audio_s = s->speech_s = 0;
    pthread_mutex_unlock(&s->lock);
}

static const tn_fake_api_t sp_api = {
    .error = sp_error,
    .authorize = sp_authorize,
    .malformed_body = "{\"metadata\":{\"request_id\":\"x\"},\"results\":{\"channels\":[{\"alt",
    .stats = sp_stats,
    .reset = sp_reset,
};

static void sp_free(sp_t *s)
{
    tn_fake_destroy(s->fake);
    tn_tts_destroy(s->tts);
    if (s->ring)
        sp_clear(s);
    free(s->ring);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static tn_err_t sp_init(tn_app_t *app, void *cfgp, void **state)
{
    char errbuf[256];
    sp_t *s = tn_xcalloc(1, sizeof(*s));
    s->cfg = cfgp;
    pthread_mutex_init(&s->lock, NULL);
    s->ring = tn_xcalloc((size_t)s->cfg->keep, sizeof(upload_t));
    s->next_id = 1;
    s->fixed = *s->cfg->transcript ? tn_xstrdup(s->cfg->transcript) : NULL;
    tn_tts_opts_t to = tn_tts_opts_default();
    s->tts = tn_tts_new(&to, errbuf, sizeof(errbuf));
    s->fake = tn_fake_new(&sp_api, sp_routes, TN_ARRAY_LEN(sp_routes), s, &s->cfg->fake, errbuf,
                          sizeof(errbuf));
    if (!s->tts || !s->fake) {
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        sp_free(s);
        return TN_ERR_CONFIG;
    }
    tn_err_t rc = tn_fake_serve(s->fake, app);
    if (rc != TN_OK) {
        sp_free(s);
        return rc;
    }
    TN_LOG(TN_LOG_INFO, "fake speech listening on port %d", tn_app_http_port(app));
    *state = s;
    return TN_OK;
}

static tn_err_t sp_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    while (!tn_lifecycle_wait(-1))
        ;
    return TN_OK;
}

static void sp_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    if (state)
        sp_free(state);
}

static const tn_app_def_t sp_def = {
    .name = "fake-speech",
    .summary = "test double of Deepgram /v1/listen, OpenAI /v1/audio/transcriptions and "
               "ElevenLabs /v1/text-to-speech, recording uploads, with faults",
    .features = TN_APP_HTTP,
    .keys = sp_keys,
    .nkeys = TN_ARRAY_LEN(sp_keys),
    .cfg_size = sizeof(sp_cfg_t),
    .init = sp_init,
    .run = sp_run,
    .shutdown = sp_shutdown,
};

int main(int argc, char **argv)
{
    return tn_app_main(&sp_def, argc, argv, environ);
}
