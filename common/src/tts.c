/* Text to speech: "espeak" (libespeak-ng, in process) and "elevenlabs" (HTTP, raw PCM back). */
#include "taina/tts.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <espeak-ng/speak_lib.h>

#include "taina/buf.h"
#include "taina/http_client.h"
#include "taina/log.h"
#include "taina/mem.h"

#define UPSTREAM       "tts"
#define DEF_TIMEOUT_MS 15000
#define DEF_ATTEMPTS   3
#define DEF_EL_URL     "https://api.elevenlabs.io"
#define DEF_EL_MODEL   "eleven_multilingual_v2"
#define EL_RATE        16000
#define MAX_SECONDS    300 /* of speech in one answer, both providers */
#define ESPEAK_BUF_MS  200

typedef enum { PROVIDER_ESPEAK, PROVIDER_ELEVENLABS } provider_t;

struct tn_tts {
    provider_t provider;
    char *voice_es, *voice_en;
    char *model;
    int64_t timeout_ms;
    tn_http_client_t *hc;
};

/* ============================================================================================ */
/* espeak-ng
 *
 * libespeak-ng keeps all its state in globals (the voice, the callback, the output buffers), so
 * the process has one engine: it is initialized on first use and every synthesis holds
 * espeak_lock from choosing the voice to the last sample. These are the library's globals, not
 * ours; nothing of a tn_tts_t lives here. The engine is never terminated (its one-time tables
 * stay until exit).
 */

static pthread_mutex_t espeak_lock = PTHREAD_MUTEX_INITIALIZER;
static int espeak_rate; /* 0: not initialized; -1: initialization failed; under espeak_lock */
/* Where the callback puts samples: the synthesis in progress, under espeak_lock. (Events carry
 * espeak_Synth's user_data, but a chunk of samples may come with no event but the terminator.) */
static struct espeak_collect *espeak_cur;

typedef struct espeak_collect {
    tn_buf_t pcm; /* samples as bytes, capped */
    bool too_long;
} espeak_collect_t;

/* Runs inside espeak_Synth (AUDIO_OUTPUT_SYNCHRONOUS): on the caller's thread, lock held. */
static int espeak_cb(short *wav, int n, espeak_EVENT *ev)
{
    TN_UNUSED(ev);
    espeak_collect_t *c = espeak_cur;
    if (!c || !wav || n <= 0)
        return 0;
    if (tn_buf_add(&c->pcm, wav, (size_t)n * sizeof(short)) != TN_OK) {
        c->too_long = true;
        return 1; /* abort the synthesis */
    }
    return 0;
}

/* Initialize the engine once. Caller holds espeak_lock. */
static int espeak_engine(void)
{
    if (espeak_rate == 0) {
        int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ESPEAK_BUF_MS, NULL,
                                     espeakINITIALIZE_DONT_EXIT);
        if (rate <= 0) {
            TN_LOG(TN_LOG_ERROR,
                   "tts: espeak-ng could not start (code %d): is espeak-ng-data "
                   "installed?",
                   rate);
            espeak_rate = -1;
        } else {
            espeak_SetSynthCallback(espeak_cb);
            espeak_rate = rate;
        }
    }
    return espeak_rate;
}

static tn_err_t espeak_say(tn_tts_t *t, const char *voice, const char *text, int16_t **pcm,
                           size_t *n, int *rate, char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_ERR_UNAVAILABLE;
    espeak_collect_t c = {0};
    pthread_mutex_lock(&espeak_lock);
    int r = espeak_engine();
    if (r <= 0) {
        snprintf(errbuf, errlen, "tts: espeak-ng is not available (see the log)");
        goto out;
    }
    espeak_ERROR er = espeak_SetVoiceByName(voice);
    if (er != EE_OK) {
        snprintf(errbuf, errlen, "tts: espeak-ng has no voice \"%s\"", voice);
        rc = TN_ERR_INVALID;
        goto out;
    }
    tn_buf_init(&c.pcm, (size_t)r * MAX_SECONDS * sizeof(short));
    espeak_cur = &c;
    er = espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
    espeak_cur = NULL;
    if (c.too_long) {
        snprintf(errbuf, errlen, "tts: the speech would be longer than %d s", MAX_SECONDS);
        rc = TN_ERR_TOO_LARGE;
        goto out;
    }
    if (er != EE_OK) {
        snprintf(errbuf, errlen, "tts: espeak-ng failed (code %d)", (int)er);
        rc = TN_ERR;
        goto out;
    }
    *n = c.pcm.len / sizeof(int16_t);
    *pcm = tn_xmalloc(c.pcm.len ? c.pcm.len : sizeof(int16_t));
    if (c.pcm.len)
        memcpy(*pcm, c.pcm.data, c.pcm.len);
    *rate = r;
    rc = TN_OK;
out:
    pthread_mutex_unlock(&espeak_lock);
    tn_buf_cleanup(&c.pcm);
    TN_UNUSED(t);
    return rc;
}

/* ============================================================================================ */
/* ElevenLabs                                                                                   */

/* The message of an ElevenLabs error body: {"detail": {"status", "message"}} for 400/401,
 * {"detail": [{"msg", ...}]} for 422, else the common shapes. Borrowed from @p doc. */
static const char *el_error_message(const json_t *doc)
{
    json_t *detail = json_object_get(doc, "detail");
    if (json_is_object(detail)) {
        json_t *m = json_object_get(detail, "message");
        if (json_is_string(m))
            return json_string_value(m);
        m = json_object_get(detail, "status");
        if (json_is_string(m))
            return json_string_value(m);
    }
    if (json_is_array(detail)) {
        json_t *m = json_object_get(json_array_get(detail, 0), "msg");
        if (json_is_string(m))
            return json_string_value(m);
    }
    return tn_http_json_error_message(doc);
}

static tn_err_t el_say(tn_tts_t *t, const char *voice, const char *lang, const char *text,
                       int16_t **pcm, size_t *n, int *rate, char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_ERR_UNAVAILABLE;
    char *path = NULL, *body = NULL;
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    /* Voice ids are opaque: escape anything that is not unreserved before it goes in a path. */
    tn_buf_t p;
    tn_buf_init(&p, 4096);
    tn_buf_adds(&p, "/v1/text-to-speech/");
    for (const char *s = voice; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            tn_buf_add(&p, s, 1);
        else
            tn_buf_addf(&p, "%%%02X", ch);
    }
    tn_buf_adds(&p, "?output_format=pcm_16000");
    path = tn_buf_detach(&p, NULL);
    json_t *j = json_pack("{ssss}", "text", text, "model_id", t->model);
    if (!j) {
        snprintf(errbuf, errlen, "tts: the text is not valid UTF-8");
        rc = TN_ERR_INVALID;
        goto out;
    }
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    static const char *const hdrs[] = {"Accept: audio/pcm", NULL};
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = path,
                             .headers = hdrs,
                             .body = body,
                             .body_len = strlen(body),
                             .content_type = "application/json",
                             .deadline_ms = t->timeout_ms};
    tn_err_t hrc = tn_http_client_request(t->hc, &req, &resp);
    if (hrc == TN_ERR_TOO_LARGE) {
        snprintf(errbuf, errlen, "tts: elevenlabs answered more than %d s of audio", MAX_SECONDS);
        rc = TN_ERR_PARSE;
        goto out;
    }
    if (hrc != TN_OK) {
        if (resp.status)
            snprintf(errbuf, errlen, "tts: elevenlabs answered HTTP %ld after %d attempt(s)",
                     resp.status, resp.attempts);
        else
            snprintf(errbuf, errlen, "tts: elevenlabs %s after %d attempt(s)",
                     hrc == TN_ERR_TIMEOUT ? "timed out" : "did not answer (connection failed)",
                     resp.attempts);
        rc = TN_ERR_UNAVAILABLE;
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        json_t *doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        const char *m = el_error_message(doc);
        char desc[300];
        if (m)
            snprintf(errbuf, errlen, "tts: elevenlabs answered HTTP %ld: %.200s", resp.status, m);
        else
            snprintf(errbuf, errlen, "tts: elevenlabs answered %s",
                     tn_http_response_describe(&resp, desc, sizeof(desc)));
        json_decref(doc);
        rc = TN_ERR_UPSTREAM;
        goto out;
    }
    const char *ct = tn_http_response_header(&resp, "Content-Type");
    if (resp.body.len == 0 || resp.body.len % 2 != 0 || (ct && strstr(ct, "json"))) {
        snprintf(errbuf, errlen, "tts: elevenlabs answered %zu bytes of %s, not 16-bit PCM samples",
                 resp.body.len, ct ? ct : "unknown type");
        rc = TN_ERR_PARSE;
        goto out;
    }
    size_t cnt = resp.body.len / 2;
    int16_t *out = tn_xmalloc(cnt * sizeof(int16_t));
    const uint8_t *b = (const uint8_t *)resp.body.data;
    for (size_t i = 0; i < cnt; i++) /* little-endian on the wire, whatever the host */
        out[i] = (int16_t)(uint16_t)(b[2 * i] | b[2 * i + 1] << 8);
    *pcm = out;
    *n = cnt;
    *rate = EL_RATE;
    rc = TN_OK;
out:
    if (rc != TN_OK)
        TN_LOG(TN_LOG_WARN, "%s (lang %s)", errbuf, lang);
    tn_http_response_cleanup(&resp);
    free(body);
    free(path);
    return rc;
}

/* ============================================================================================ */
/* API                                                                                          */

tn_tts_opts_t tn_tts_opts_default(void)
{
    return (tn_tts_opts_t){.provider = "espeak",
                           .url = DEF_EL_URL,
                           .voice_es = NULL,
                           .voice_en = NULL,
                           .model = DEF_EL_MODEL,
                           .timeout_ms = DEF_TIMEOUT_MS,
                           .max_attempts = DEF_ATTEMPTS};
}

static char *dup_or(const char *s, const char *def)
{
    return def || (s && *s) ? tn_xstrdup(s && *s ? s : def) : NULL;
}

tn_tts_t *tn_tts_new(const tn_tts_opts_t *o, char *errbuf, size_t errlen)
{
    TN_ASSERT(o);
    const char *prov = o->provider && *o->provider ? o->provider : "espeak";
    tn_tts_t *t = tn_xcalloc(1, sizeof(*t));
    t->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEF_TIMEOUT_MS;
    if (strcmp(prov, "espeak") == 0) {
        t->provider = PROVIDER_ESPEAK;
        t->voice_es = dup_or(o->voice_es, "es");
        t->voice_en = dup_or(o->voice_en, "en");
        return t;
    }
    if (strcmp(prov, "elevenlabs") != 0) {
        snprintf(errbuf, errlen, "tts: unknown provider \"%s\" (espeak, elevenlabs)", prov);
        goto fail;
    }
    t->provider = PROVIDER_ELEVENLABS;
    if (!o->api_key || !*o->api_key) {
        snprintf(errbuf, errlen, "tts: the elevenlabs provider needs an API key");
        goto fail;
    }
    if (!o->voice_es || !*o->voice_es || !o->voice_en || !*o->voice_en) {
        snprintf(errbuf, errlen, "tts: the elevenlabs provider needs a voice id for es and en");
        goto fail;
    }
    t->voice_es = tn_xstrdup(o->voice_es);
    t->voice_en = tn_xstrdup(o->voice_en);
    t->model = dup_or(o->model, DEF_EL_MODEL);
    char *key = tn_xasprintf("xi-api-key: %s", o->api_key);
    const char *hdrs[] = {key, NULL};
    tn_http_client_opts_t ho = tn_http_client_opts_default();
    ho.upstream = UPSTREAM;
    ho.base_url = o->url && *o->url ? o->url : DEF_EL_URL;
    ho.timeout_ms = t->timeout_ms;
    ho.deadline_ms = t->timeout_ms;
    ho.max_attempts = o->max_attempts > 0 ? o->max_attempts : DEF_ATTEMPTS;
    ho.headers = hdrs;
    ho.metrics = o->metrics;
    ho.retry_post = true; /* synthesis has no side effect: a repeated request is harmless */
    ho.max_response_bytes = (size_t)EL_RATE * 2 * MAX_SECONDS;
    char herr[256];
    t->hc = tn_http_client_new(&ho, herr, sizeof(herr));
    memset(key, 0, strlen(key)); /* the client has its own copy */
    free(key);
    if (!t->hc) {
        snprintf(errbuf, errlen, "tts: %s", herr);
        goto fail;
    }
    return t;
fail:
    tn_tts_destroy(t);
    return NULL;
}

void tn_tts_destroy(tn_tts_t *t)
{
    if (!t)
        return;
    tn_http_client_destroy(t->hc);
    free(t->voice_es);
    free(t->voice_en);
    free(t->model);
    free(t);
}

/* "es", "es-ES", "es_MX" -> true for @p want "es". */
static bool lang_is(const char *lang, const char *want)
{
    return strncmp(lang, want, 2) == 0 && (lang[2] == '\0' || lang[2] == '-' || lang[2] == '_');
}

tn_err_t tn_tts_synthesize(tn_tts_t *t, const char *text, const char *lang, int16_t **pcm,
                           size_t *n, int *rate, char *errbuf, size_t errlen)
{
    TN_ASSERT(t && text && lang && pcm && n && rate);
    *pcm = NULL;
    *n = 0;
    *rate = 0;
    const char *voice = lang_is(lang, "es")   ? t->voice_es
                        : lang_is(lang, "en") ? t->voice_en
                                              : NULL;
    if (!voice) {
        snprintf(errbuf, errlen, "tts: no voice for language \"%.20s\" (es, en)", lang);
        return TN_ERR_INVALID;
    }
    size_t len = strlen(text);
    if (len == 0 || len > TN_TTS_MAX_TEXT) {
        snprintf(errbuf, errlen, "tts: the text must have 1..%d bytes (got %zu)", TN_TTS_MAX_TEXT,
                 len);
        return TN_ERR_INVALID;
    }
    if (t->provider == PROVIDER_ESPEAK)
        return espeak_say(t, voice, text, pcm, n, rate, errbuf, errlen);
    return el_say(t, voice, lang, text, pcm, n, rate, errbuf, errlen);
}
