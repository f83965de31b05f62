/* Speech to text: "deepgram" and "openai" over HTTP, "local" with pocketsphinx (English). */
#include "taina/stt.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sphinxbase/err.h>
#include <pocketsphinx.h>

#include "taina/audio.h"
#include "taina/buf.h"
#include "taina/http_client.h"
#include "taina/log.h"
#include "taina/mem.h"

#define UPSTREAM       "stt"
#define DEF_TIMEOUT_MS 15000
#define DEF_ATTEMPTS   3
#define DEF_DG_URL     "https://api.deepgram.com"
#define DEF_DG_MODEL   "nova-2"
#define DEF_OA_MODEL   "whisper-1"
#define DEF_PS_MODEL   "/usr/share/pocketsphinx/model/en-us"
#define PS_RATE        16000
#define MAX_SECONDS    300        /* of audio in one utterance */
#define MAX_ANSWER     (4u << 20) /* bytes of a transcription answer */

typedef enum { PROVIDER_DEEPGRAM, PROVIDER_OPENAI, PROVIDER_LOCAL } provider_t;

struct tn_stt {
    provider_t provider;
    char *model;
    int64_t timeout_ms;
    tn_http_client_t *hc;
    char *path; /* openai: "/v1/audio/transcriptions" or "/audio/transcriptions" */

    /* local: the decoder is loaded on the first call (some 30 MB of model, about a second) and
     * decodes one utterance at a time. */
    pthread_mutex_t ps_lock;
    ps_decoder_t *ps;
    cmd_ln_t *ps_cfg;
    bool ps_failed;
};

/* ============================================================================================ */
/* HTTP providers                                                                               */

/* "es", "en", "es-419", "pt-BR": letters, digits and dashes only (they go in a query). */
static bool lang_ok(const char *lang)
{
    size_t n = strlen(lang);
    if (n < 2 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = lang[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}

static void add_escaped(tn_buf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            tn_buf_add(b, s, 1);
        else
            tn_buf_addf(b, "%%%02X", ch);
    }
}

/* The message of an error body: Deepgram's err_msg, or the common shapes. Borrowed. */
static const char *error_message(const json_t *doc)
{
    json_t *m = json_object_get(doc, "err_msg");
    if (json_is_string(m))
        return json_string_value(m);
    return tn_http_json_error_message(doc);
}

/* Turn the outcome of a request into the contract's codes. TN_OK only for a 2xx answer. */
static tn_err_t http_outcome(const char *who, tn_err_t hrc, const tn_http_response_t *resp,
                             char *errbuf, size_t errlen)
{
    if (hrc == TN_ERR_TOO_LARGE) {
        snprintf(errbuf, errlen, "stt: %s answered more than %u bytes", who, MAX_ANSWER);
        return TN_ERR_PARSE;
    }
    if (hrc != TN_OK) {
        if (resp->status)
            snprintf(errbuf, errlen, "stt: %s answered HTTP %ld after %d attempt(s)", who,
                     resp->status, resp->attempts);
        else
            snprintf(errbuf, errlen, "stt: %s %s after %d attempt(s)", who,
                     hrc == TN_ERR_TIMEOUT ? "timed out" : "did not answer (connection failed)",
                     resp->attempts);
        return TN_ERR_UNAVAILABLE;
    }
    if (resp->status >= 200 && resp->status <= 299)
        return TN_OK;
    json_t *doc = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
    const char *m = error_message(doc);
    char desc[300];
    if (m)
        snprintf(errbuf, errlen, "stt: %s answered HTTP %ld: %.200s", who, resp->status, m);
    else
        snprintf(errbuf, errlen, "stt: %s answered %s", who,
                 tn_http_response_describe(resp, desc, sizeof(desc)));
    json_decref(doc);
    return TN_ERR_UPSTREAM;
}

static tn_err_t deepgram(tn_stt_t *s, const uint8_t *wav, size_t wlen, const char *lang,
                         tn_stt_result_t *out, char *errbuf, size_t errlen)
{
    tn_err_t rc;
    json_t *doc = NULL;
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_buf_t p;
    tn_buf_init(&p, 1024);
    tn_buf_adds(&p, "/v1/listen?model=");
    add_escaped(&p, s->model);
    tn_buf_adds(&p, "&language=");
    add_escaped(&p, lang);
    tn_buf_adds(&p, "&punctuate=true");
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = p.data,
                             .body = wav,
                             .body_len = wlen,
                             .content_type = "audio/wav",
                             .deadline_ms = s->timeout_ms};
    rc =
        http_outcome("deepgram", tn_http_client_request(s->hc, &req, &resp), &resp, errbuf, errlen);
    if (rc != TN_OK)
        goto out;
    rc = TN_ERR_PARSE;
    doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    json_t *alt = json_array_get(
        json_object_get(
            json_array_get(json_object_get(json_object_get(doc, "results"), "channels"), 0),
            "alternatives"),
        0);
    json_t *text = json_object_get(alt, "transcript");
    if (!json_is_string(text)) {
        snprintf(errbuf, errlen,
                 "stt: deepgram answered HTTP %ld without "
                 "results.channels[0].alternatives[0].transcript",
                 resp.status);
        goto out;
    }
    json_t *conf = json_object_get(alt, "confidence");
    out->text = tn_xstrdup(json_string_value(text));
    out->confidence = json_is_number(conf) ? json_number_value(conf) : -1;
    rc = TN_OK;
out:
    json_decref(doc);
    tn_buf_cleanup(&p);
    tn_http_response_cleanup(&resp);
    return rc;
}

static tn_err_t openai(tn_stt_t *s, const uint8_t *wav, size_t wlen, const char *lang,
                       tn_stt_result_t *out, char *errbuf, size_t errlen)
{
    tn_err_t rc;
    json_t *doc = NULL;
    char *ct = NULL;
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    /* ISO-639-1 only: "es-ES" -> "es". */
    char iso[3] = {lang[0], lang[1], '\0'};
    tn_http_form_part_t parts[] = {
        {"file", "audio.wav", "audio/wav", wav, wlen},
        {"model", NULL, NULL, s->model, strlen(s->model)},
        {"language", NULL, NULL, iso, 2},
        {"response_format", NULL, NULL, "json", 4},
    };
    size_t blen = 0;
    uint8_t *body = tn_http_form_encode(parts, TN_ARRAY_LEN(parts), &blen, &ct);
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = s->path,
                             .body = body,
                             .body_len = blen,
                             .content_type = ct,
                             .deadline_ms = s->timeout_ms};
    rc = http_outcome("openai", tn_http_client_request(s->hc, &req, &resp), &resp, errbuf, errlen);
    free(body);
    if (rc != TN_OK)
        goto out;
    rc = TN_ERR_PARSE;
    doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    json_t *text = json_object_get(doc, "text");
    if (!json_is_string(text)) {
        snprintf(errbuf, errlen, "stt: openai answered HTTP %ld without a \"text\" string",
                 resp.status);
        goto out;
    }
    out->text = tn_xstrdup(json_string_value(text));
    out->confidence = -1;
    rc = TN_OK;
out:
    json_decref(doc);
    free(ct);
    tn_http_response_cleanup(&resp);
    return rc;
}

/* ============================================================================================ */
/* pocketsphinx                                                                                 */

/* sphinxbase's log hook: it prints pages of INFO at start-up; only its warnings and errors
 * reach our log. (The hook is process-wide: it is set once and carries no state.) */
__attribute__((format(printf, 3, 4))) static void ps_log(void *opaque, err_lvl_t lvl,
                                                         const char *fmt, ...)
{
    TN_UNUSED(opaque);
    if (lvl < ERR_WARN)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    line[strcspn(line, "\n")] = '\0';
    if (*line)
        TN_LOG(lvl >= ERR_ERROR ? TN_LOG_WARN : TN_LOG_DEBUG, "pocketsphinx: %s", line);
}

static pthread_once_t ps_log_once = PTHREAD_ONCE_INIT;
static void ps_log_init(void)
{
    err_set_logfp(NULL); /* also stops the parameter dump that cmd_ln_init prints */
    err_set_callback(ps_log, NULL);
}

/* Load the decoder. Caller holds ps_lock. */
static bool ps_load(tn_stt_t *s, char *errbuf, size_t errlen)
{
    if (s->ps)
        return true;
    if (s->ps_failed) {
        snprintf(errbuf, errlen, "stt: the pocketsphinx model in %s could not be loaded", s->model);
        return false;
    }
    pthread_once(&ps_log_once, ps_log_init);
    char *hmm = tn_xasprintf("%s/en-us", s->model);
    char *lm = tn_xasprintf("%s/en-us.lm.bin", s->model);
    char *dict = tn_xasprintf("%s/cmudict-en-us.dict", s->model);
    s->ps_cfg = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict,
                            "-samprate", "16000", NULL);
    if (s->ps_cfg)
        s->ps = ps_init(s->ps_cfg);
    free(hmm);
    free(lm);
    free(dict);
    if (!s->ps) {
        s->ps_failed = true;
        snprintf(errbuf, errlen, "stt: the pocketsphinx model in %s could not be loaded", s->model);
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        return false;
    }
    return true;
}

static tn_err_t local(tn_stt_t *s, const int16_t *pcm, size_t n, int rate, const char *lang,
                      tn_stt_result_t *out, char *errbuf, size_t errlen)
{
    if (strncmp(lang, "en", 2) != 0 || (lang[2] && lang[2] != '-' && lang[2] != '_')) {
        snprintf(errbuf, errlen, "stt: the local provider recognizes English only, not \"%s\"",
                 lang);
        return TN_ERR_INVALID;
    }
    int16_t *res = NULL;
    if (rate != PS_RATE) {
        size_t m = 0;
        res = tn_resample_all(pcm, n, rate, PS_RATE, &m);
        if (!res) {
            snprintf(errbuf, errlen, "stt: cannot resample %d Hz audio", rate);
            return TN_ERR_INVALID;
        }
        pcm = res;
        n = m;
    }
    tn_err_t rc = TN_ERR_UNAVAILABLE;
    pthread_mutex_lock(&s->ps_lock);
    if (!ps_load(s, errbuf, errlen))
        goto out;
    rc = TN_ERR;
    if (ps_start_utt(s->ps) < 0 || ps_process_raw(s->ps, pcm, n, FALSE, TRUE) < 0 ||
        ps_end_utt(s->ps) < 0) {
        snprintf(errbuf, errlen, "stt: pocketsphinx failed to decode %zu samples", n);
        goto out;
    }
    int32 score = 0;
    const char *hyp = ps_get_hyp(s->ps, &score);
    out->text = tn_xstrdup(hyp ? hyp : "");
    /* The posterior of the best path, from the lattice (0..1). */
    int32 lp = ps_get_prob(s->ps);
    out->confidence = logmath_exp(ps_get_logmath(s->ps), lp);
    if (!(out->confidence >= 0 && out->confidence <= 1))
        out->confidence = -1;
    rc = TN_OK;
out:
    pthread_mutex_unlock(&s->ps_lock);
    free(res);
    return rc;
}

/* ============================================================================================ */
/* API                                                                                          */

tn_stt_opts_t tn_stt_opts_default(void)
{
    return (tn_stt_opts_t){
        .provider = "local", .timeout_ms = DEF_TIMEOUT_MS, .max_attempts = DEF_ATTEMPTS};
}

tn_stt_t *tn_stt_new(const tn_stt_opts_t *o, char *errbuf, size_t errlen)
{
    TN_ASSERT(o);
    const char *prov = o->provider && *o->provider ? o->provider : "";
    tn_stt_t *s = tn_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->ps_lock, NULL);
    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEF_TIMEOUT_MS;
    const char *def_model;
    if (strcmp(prov, "deepgram") == 0) {
        s->provider = PROVIDER_DEEPGRAM;
        def_model = DEF_DG_MODEL;
    } else if (strcmp(prov, "openai") == 0) {
        s->provider = PROVIDER_OPENAI;
        def_model = DEF_OA_MODEL;
    } else if (strcmp(prov, "local") == 0) {
        s->provider = PROVIDER_LOCAL;
        def_model = DEF_PS_MODEL;
    } else {
        snprintf(errbuf, errlen, "stt: unknown provider \"%s\" (deepgram, openai, local)", prov);
        goto fail;
    }
    s->model = tn_xstrdup(o->model && *o->model ? o->model : def_model);
    if (s->provider == PROVIDER_LOCAL)
        return s;

    tn_http_client_opts_t ho = tn_http_client_opts_default();
    ho.upstream = UPSTREAM;
    ho.timeout_ms = s->timeout_ms;
    ho.deadline_ms = s->timeout_ms;
    ho.max_attempts = o->max_attempts > 0 ? o->max_attempts : DEF_ATTEMPTS;
    ho.metrics = o->metrics;
    ho.retry_post = true; /* a transcription has no side effect: repeating it is harmless */
    ho.max_response_bytes = MAX_ANSWER;
    char herr[256];
    if (s->provider == PROVIDER_OPENAI) {
        if (!o->url || !*o->url) {
            snprintf(errbuf, errlen, "stt: the openai provider needs a URL");
            goto fail;
        }
        s->hc = tn_http_client_openai_new(&ho, o->url, o->api_key, "/audio/transcriptions",
                                          &s->path, herr, sizeof(herr));
    } else {
        char *auth =
            o->api_key && *o->api_key ? tn_xasprintf("Authorization: Token %s", o->api_key) : NULL;
        const char *hdrs[] = {auth, NULL};
        ho.base_url = o->url && *o->url ? o->url : DEF_DG_URL;
        ho.headers = hdrs;
        s->hc = tn_http_client_new(&ho, herr, sizeof(herr));
        if (auth) {
            memset(auth, 0, strlen(auth)); /* the client keeps its own copy */
            free(auth);
        }
    }
    if (!s->hc) {
        snprintf(errbuf, errlen, "stt: %s", herr);
        goto fail;
    }
    return s;
fail:
    tn_stt_destroy(s);
    return NULL;
}

void tn_stt_destroy(tn_stt_t *s)
{
    if (!s)
        return;
    if (s->ps)
        ps_free(s->ps);
    if (s->ps_cfg)
        cmd_ln_free_r(s->ps_cfg);
    pthread_mutex_destroy(&s->ps_lock);
    tn_http_client_destroy(s->hc);
    free(s->path);
    free(s->model);
    free(s);
}

tn_err_t tn_stt_transcribe(tn_stt_t *s, const int16_t *pcm, size_t n, int rate, const char *lang,
                           tn_stt_result_t *out, char *errbuf, size_t errlen)
{
    TN_ASSERT(s && (pcm || n == 0) && lang && out);
    out->text = NULL;
    out->confidence = -1;
    if (!lang_ok(lang)) {
        snprintf(errbuf, errlen, "stt: bad language code \"%.20s\"", lang);
        return TN_ERR_INVALID;
    }
    if (rate < 8000 || rate > 48000 || n > (size_t)rate * MAX_SECONDS) {
        snprintf(errbuf, errlen, "stt: %zu samples at %d Hz (8000..48000 Hz, at most %d s)", n,
                 rate, MAX_SECONDS);
        return TN_ERR_INVALID;
    }
    if (s->provider == PROVIDER_LOCAL)
        return local(s, pcm, n, rate, lang, out, errbuf, errlen);
    size_t wlen = 0;
    uint8_t *wav = tn_wav_encode(pcm, n, rate, &wlen);
    tn_err_t rc = s->provider == PROVIDER_DEEPGRAM
                      ? deepgram(s, wav, wlen, lang, out, errbuf, errlen)
                      : openai(s, wav, wlen, lang, out, errbuf, errlen);
    free(wav);
    if (rc != TN_OK)
        TN_LOG(TN_LOG_WARN, "%s", errbuf); /* never the transcript: only failures */
    return rc;
}
