/*
 * The HTTP providers of tn_stt ("deepgram", "openai") and tn_tts ("elevenlabs") against
 * taina-fake-speech: the transcript the test set comes back, the fake received exactly the audio
 * we sent (its recorded upload), speech comes back as 16 kHz PCM; a wrong key or an unknown voice
 * is TN_ERR_UPSTREAM at once with the API's message; a steady 503 is retried max_attempts times
 * and ends TN_ERR_UNAVAILABLE; a malformed answer is TN_ERR_PARSE. Against the scripted server
 * (tests/support/fake_http.h): a 503 then a 200 succeeds on the second attempt, and the request
 * bytes are the contract's (path and query, auth header, content type, body).
 */
#include "tn_test.h"

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "fake_http.h"
#include "taina/audio.h"
#include "taina/clock.h"
#include "taina/http_client.h"
#include "taina/mem.h"
#include "taina/stt.h"
#include "taina/tts.h"

#define KEY "fake-speech-key"

typedef struct fake {
    pid_t pid;
    char *dir, *url;
    tn_http_client_t *admin;
} fake_t;

static fake_t F;

/* An admin call; @returns the parsed answer (caller decrefs) or NULL. */
static json_t *admin(tn_http_method_t m, const char *path, const char *body)
{
    json_t *in = body ? json_loads(body, 0, NULL) : NULL;
    json_t *out = NULL;
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_err_t rc = tn_http_client_json(F.admin, m, path, in, &resp, &out);
    json_decref(in);
    assert_int_equal(rc, TN_OK);
    tn_http_response_cleanup(&resp);
    return out;
}

static void admin_ok(tn_http_method_t m, const char *path, const char *body)
{
    json_decref(admin(m, path, body));
}

static json_int_t stat_of(const char *route)
{
    json_t *st = admin(TN_HTTP_GET, "/admin/stats", NULL);
    json_int_t n = json_integer_value(json_object_get(json_object_get(st, "requests"), route));
    json_decref(st);
    return n;
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    int port = tn_test_free_port();
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    setenv("TAINA_HTTP_PORT", portstr, 1);
    setenv("TAINA_HTTP_BIND", "127.0.0.1", 1);
    setenv("TAINA_HTTP_MAX_BODY", "16MiB", 1);
    setenv("TAINA_FAKE_API_KEY", KEY, 1);
    setenv("TAINA_FAKE_VOICES", "voice-es,voice-en", 1);
    F.dir = tn_test_mkdtemp("0018");
    char *log = tn_xasprintf("%s/fake-speech.log", F.dir);
    char *bin = tn_test_build_path("bin/taina-fake-speech");
    char *argv[] = {bin, NULL};
    F.pid = tn_test_spawn(argv, log);
    free(log);
    free(bin);
    assert_true(F.pid > 0);
    F.url = tn_xasprintf("http://127.0.0.1:%d", port);
    const char *hdrs[] = {"Authorization: Bearer " KEY, NULL};
    tn_http_client_opts_t o = tn_http_client_opts_default();
    o.upstream = "admin";
    o.base_url = F.url;
    o.headers = hdrs;
    o.max_attempts = 1;
    F.admin = tn_http_client_new(&o, err, sizeof(err));
    assert_non_null(F.admin);
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(15000);
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    for (;;) {
        tn_http_request_t req = {.method = TN_HTTP_GET, .path = "/ready"};
        if (tn_http_client_request(F.admin, &req, &resp) == TN_OK && resp.status == 200)
            break;
        assert_true(tn_clock_mono_ms() < deadline);
        tn_clock_sleep_ms(50);
    }
    tn_http_response_cleanup(&resp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tn_http_client_destroy(F.admin);
    int rc = tn_test_stop(F.pid, tn_test_timeout_ms(10000));
    tn_test_rmdir(F.dir);
    free(F.dir);
    free(F.url);
    return rc == 0 ? 0 : -1;
}

/* Speech to send: espeak-ng at its own 22050 Hz (any rate goes through as WAV). */
static int16_t *speech(const char *text, const char *lang, size_t *n, int *rate)
{
    char err[256];
    tn_tts_opts_t o = tn_tts_opts_default();
    tn_tts_t *t = tn_tts_new(&o, err, sizeof(err));
    int16_t *pcm = NULL;
    assert_int_equal(tn_tts_synthesize(t, text, lang, &pcm, n, rate, err, sizeof(err)), TN_OK);
    tn_tts_destroy(t);
    return pcm;
}

static tn_stt_t *stt_for(const char *provider, const char *key, int attempts)
{
    char err[256];
    tn_stt_opts_t o = tn_stt_opts_default();
    o.provider = provider;
    o.url = F.url;
    o.api_key = key;
    o.max_attempts = attempts;
    o.timeout_ms = tn_test_timeout_ms(10000);
    tn_stt_t *s = tn_stt_new(&o, err, sizeof(err));
    assert_non_null(s);
    return s;
}

/* The last upload the fake recorded is exactly @p pcm at @p rate. */
static void assert_last_upload(const int16_t *pcm, size_t n, int rate, const char *api,
                               const char *lang)
{
    json_t *ups = admin(TN_HTTP_GET, "/admin/stt/uploads", NULL);
    json_t *u = json_array_get(json_object_get(ups, "uploads"), 0);
    assert_string_equal(json_string_value(json_object_get(u, "api")), api);
    assert_int_equal(json_integer_value(json_object_get(u, "sample_rate")), rate);
    assert_int_equal(json_integer_value(json_object_get(u, "samples")), (json_int_t)n);
    assert_string_equal(json_string_value(json_object_get(u, "language")), lang);
    assert_string_equal(json_string_value(json_object_get(u, "content_type")), "audio/wav");
    json_decref(ups);
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_http_request_t req = {.method = TN_HTTP_GET, .path = "/admin/stt/last"};
    assert_int_equal(tn_http_client_request(F.admin, &req, &resp), TN_OK);
    assert_int_equal(resp.status, 200);
    size_t len = 0;
    uint8_t *wav = tn_wav_encode(pcm, n, rate, &len);
    assert_int_equal(resp.body.len, len);
    assert_memory_equal(resp.body.data, wav, len);
    free(wav);
    tn_http_response_cleanup(&resp);
}

static void test_stt_providers(void **state)
{
    (void)state;
    static const char *const providers[] = {"deepgram", "openai"};
    size_t n = 0;
    int rate = 0;
    int16_t *pcm = speech("Quiero pedir una cita.", "es", &n, &rate);
    for (size_t i = 0; i < TN_ARRAY_LEN(providers); i++) {
        char err[256];
        admin_ok(TN_HTTP_POST, "/admin/reset", NULL);
        admin_ok(TN_HTTP_POST, "/admin/stt/transcript",
                 "{\"text\": \"Quiero pedir una cita, por favor.\"}");
        tn_stt_t *s = stt_for(providers[i], KEY, 3);
        tn_stt_result_t r;
        assert_int_equal(tn_stt_transcribe(s, pcm, n, rate, "es", &r, err, sizeof(err)), TN_OK);
        assert_string_equal(r.text, "Quiero pedir una cita, por favor.");
        if (i == 0)
            assert_true(r.confidence > 0.9 && r.confidence <= 1);
        else
            assert_true(r.confidence == -1);
        free(r.text);
        assert_last_upload(pcm, n, rate, providers[i], "es");

        /* Silence: an empty transcript is an answer, not an error. */
        int16_t zeros[1600] = {0};
        assert_int_equal(tn_stt_transcribe(s, zeros, 1600, 16000, "en", &r, err, sizeof(err)),
                         TN_OK);
        assert_string_equal(r.text, "");
        free(r.text);
        tn_stt_destroy(s);

        /* A wrong key: 401 at once, with the API's message. */
        s = stt_for(providers[i], "wrong", 3);
        json_int_t before = stat_of(i == 0 ? "POST /v1/listen" : "POST /v1/audio/transcriptions");
        assert_int_equal(tn_stt_transcribe(s, pcm, n, rate, "es", &r, err, sizeof(err)),
                         TN_ERR_UPSTREAM);
        print_message("%s, wrong key: %s\n", providers[i], err);
        assert_non_null(strstr(err, "401"));
        assert_non_null(strstr(err, i == 0 ? "Invalid credentials" : "Incorrect API key"));
        assert_null(r.text);
        assert_int_equal(
            stat_of(i == 0 ? "POST /v1/listen" : "POST /v1/audio/transcriptions") - before, 1);
        tn_stt_destroy(s);
    }
    free(pcm);
}

static void test_stt_faults(void **state)
{
    (void)state;
    char err[256];
    size_t n = 0;
    int rate = 0;
    int16_t *pcm = speech("Hello.", "en", &n, &rate);
    static const char *const providers[] = {"deepgram", "openai"};
    static const char *const routes[] = {"POST /v1/listen", "POST /v1/audio/transcriptions"};
    for (size_t i = 0; i < 2; i++) {
        tn_stt_result_t r;
        tn_stt_t *s = stt_for(providers[i], KEY, 3);
        admin_ok(TN_HTTP_POST, "/admin/reset", NULL);
        admin_ok(TN_HTTP_POST, "/admin/faults", "{\"error_rate\": 1.0, \"error_status\": 503}");
        assert_int_equal(tn_stt_transcribe(s, pcm, n, rate, "en", &r, err, sizeof(err)),
                         TN_ERR_UNAVAILABLE);
        print_message("%s, steady 503: %s\n", providers[i], err);
        assert_non_null(strstr(err, "503 after 3 attempt(s)"));
        assert_int_equal(stat_of(routes[i]), 3);
        admin_ok(TN_HTTP_POST, "/admin/faults", "{\"error_rate\": 0, \"malformed_rate\": 1.0}");
        assert_int_equal(tn_stt_transcribe(s, pcm, n, rate, "en", &r, err, sizeof(err)),
                         TN_ERR_PARSE);
        admin_ok(TN_HTTP_POST, "/admin/faults", "{\"malformed_rate\": 0, \"drop_rate\": 1.0}");
        assert_int_equal(tn_stt_transcribe(s, pcm, n, rate, "en", &r, err, sizeof(err)),
                         TN_ERR_UNAVAILABLE);
        admin_ok(TN_HTTP_POST, "/admin/faults", "{\"drop_rate\": 0}");
        assert_int_equal(tn_stt_transcribe(s, pcm, n, rate, "en", &r, err, sizeof(err)), TN_OK);
        free(r.text);
        tn_stt_destroy(s);
    }
    free(pcm);
}

static tn_tts_t *el_tts(const char *key, const char *url)
{
    char err[256];
    tn_tts_opts_t o = tn_tts_opts_default();
    o.provider = "elevenlabs";
    o.url = url;
    o.api_key = key;
    o.voice_es = "voice-es";
    o.voice_en = "voice-en";
    o.timeout_ms = tn_test_timeout_ms(10000);
    tn_tts_t *t = tn_tts_new(&o, err, sizeof(err));
    assert_non_null(t);
    return t;
}

static void test_tts_elevenlabs(void **state)
{
    (void)state;
    char err[256];
    int16_t *pcm = NULL;
    size_t n = 0;
    int rate = 0;
    admin_ok(TN_HTTP_POST, "/admin/reset", NULL);
    tn_tts_t *t = el_tts(KEY, F.url);
    assert_int_equal(tn_tts_synthesize(t, "Su cita es el martes a las diez.", "es", &pcm, &n, &rate,
                                       err, sizeof(err)),
                     TN_OK);
    assert_int_equal(rate, 16000);
    print_message("elevenlabs: %.2f s at %.1f dBFS\n", (double)n / rate, tn_audio_dbfs(pcm, n));
    assert_true(n > 16000 && n < 16000 * 6);
    assert_true(tn_audio_dbfs(pcm, n) > -30);
    free(pcm);
    assert_int_equal(stat_of("POST /v1/text-to-speech/{voice_id}"), 1);

    admin_ok(TN_HTTP_POST, "/admin/faults", "{\"error_rate\": 1.0, \"error_status\": 503}");
    assert_int_equal(tn_tts_synthesize(t, "Hola.", "es", &pcm, &n, &rate, err, sizeof(err)),
                     TN_ERR_UNAVAILABLE);
    assert_int_equal(stat_of("POST /v1/text-to-speech/{voice_id}"), 4);
    admin_ok(TN_HTTP_POST, "/admin/faults", "{\"error_rate\": 0, \"malformed_rate\": 1.0}");
    assert_int_equal(tn_tts_synthesize(t, "Hola.", "es", &pcm, &n, &rate, err, sizeof(err)),
                     TN_ERR_PARSE);
    admin_ok(TN_HTTP_POST, "/admin/faults", "{\"malformed_rate\": 0}");
    tn_tts_destroy(t);

    /* An unknown voice and a wrong key: 4xx, not retried, the API's message. */
    char errbuf[256];
    tn_tts_opts_t o = tn_tts_opts_default();
    o.provider = "elevenlabs";
    o.url = F.url;
    o.api_key = KEY;
    o.voice_es = "nobody";
    o.voice_en = "voice-en";
    t = tn_tts_new(&o, errbuf, sizeof(errbuf));
    json_int_t before = stat_of("POST /v1/text-to-speech/{voice_id}");
    assert_int_equal(tn_tts_synthesize(t, "Hola.", "es", &pcm, &n, &rate, err, sizeof(err)),
                     TN_ERR_UPSTREAM);
    print_message("elevenlabs, unknown voice: %s\n", err);
    assert_non_null(strstr(err, "HTTP 404"));
    assert_non_null(strstr(err, "voice_id nobody was not found"));
    assert_int_equal(stat_of("POST /v1/text-to-speech/{voice_id}") - before, 1);
    tn_tts_destroy(t);
    t = el_tts("wrong", F.url);
    assert_int_equal(tn_tts_synthesize(t, "Hi.", "en", &pcm, &n, &rate, err, sizeof(err)),
                     TN_ERR_UPSTREAM);
    assert_non_null(strstr(err, "HTTP 401: Invalid API key"));
    tn_tts_destroy(t);
}

/* ------------------------------------------------------------------------------------------ */
/* Scripted server: a 503, then an answer; the exact request. */

/* The body holds @p s (binary-safe: the WAV part has NUL bytes). */
static bool has(const tn_fake_http_req_t *q, const char *s)
{
    return memmem(q->body, q->body_len, s, strlen(s)) != NULL;
}

static void test_scripted_requests(void **state)
{
    (void)state;
    char err[256];
    tn_fake_http_t *fh = tn_fake_http_start();
    assert_non_null(fh);
    int16_t pcm[800];
    for (size_t i = 0; i < 800; i++)
        pcm[i] = (int16_t)((i % 40) * 500 - 10000);
    size_t wlen = 0;
    uint8_t *wav = tn_wav_encode(pcm, 800, 16000, &wlen);
    tn_stt_result_t r;

    /* Deepgram */
    tn_fake_http_push_simple(fh, 503, "application/json", "{\"err_code\":\"x\"}");
    tn_fake_http_push_simple(fh, 200, "application/json",
                             "{\"results\":{\"channels\":[{\"alternatives\":[{\"transcript\":"
                             "\"hola\",\"confidence\":0.5}]}]}}");
    tn_stt_opts_t o = tn_stt_opts_default();
    o.provider = "deepgram";
    o.url = tn_fake_http_url(fh);
    o.api_key = "dg-secret";
    o.model = "nova-3";
    tn_stt_t *s = tn_stt_new(&o, err, sizeof(err));
    assert_int_equal(tn_stt_transcribe(s, pcm, 800, 16000, "es-419", &r, err, sizeof(err)), TN_OK);
    assert_string_equal(r.text, "hola");
    assert_true(r.confidence == 0.5);
    free(r.text);
    assert_int_equal(tn_fake_http_nrequests(fh), 2);
    const tn_fake_http_req_t *q = tn_fake_http_request(fh, 1);
    assert_string_equal(q->method, "POST");
    assert_string_equal(q->target, "/v1/listen?model=nova-3&language=es-419&punctuate=true");
    assert_string_equal(tn_fake_http_req_header(q, "Authorization"), "Token dg-secret");
    assert_string_equal(tn_fake_http_req_header(q, "Content-Type"), "audio/wav");
    assert_int_equal(q->body_len, wlen);
    assert_memory_equal(q->body, wav, wlen);
    /* An answer without a transcript. */
    tn_fake_http_push_simple(fh, 200, "application/json", "{\"results\":{}}");
    assert_int_equal(tn_stt_transcribe(s, pcm, 800, 16000, "es", &r, err, sizeof(err)),
                     TN_ERR_PARSE);
    tn_stt_destroy(s);

    /* OpenAI (URL ending in /v1) */
    tn_fake_http_push_simple(fh, 503, "application/json", "{}");
    tn_fake_http_push_simple(fh, 200, "application/json", "{\"text\":\"hello there\"}");
    char *v1 = tn_xasprintf("%s/v1", tn_fake_http_url(fh));
    o.provider = "openai";
    o.url = v1;
    o.api_key = "sk-secret";
    o.model = NULL;
    s = tn_stt_new(&o, err, sizeof(err));
    assert_int_equal(tn_stt_transcribe(s, pcm, 800, 16000, "en-US", &r, err, sizeof(err)), TN_OK);
    assert_string_equal(r.text, "hello there");
    free(r.text);
    assert_int_equal(tn_fake_http_nrequests(fh), 5);
    q = tn_fake_http_request(fh, 4);
    assert_string_equal(q->target, "/v1/audio/transcriptions");
    assert_string_equal(tn_fake_http_req_header(q, "Authorization"), "Bearer sk-secret");
    const char *ct = tn_fake_http_req_header(q, "Content-Type");
    assert_non_null(strstr(ct, "multipart/form-data; boundary="));
    assert_non_null(
        memmem(q->body, q->body_len,
               "name=\"file\"; filename=\"audio.wav\"\r\nContent-Type: audio/wav\r\n\r\n", 62));
    assert_non_null(memmem(q->body, q->body_len, wav, wlen));
    assert_non_null(has(q, "name=\"model\"\r\n\r\nwhisper-1\r\n"));
    assert_non_null(has(q, "name=\"language\"\r\n\r\nen\r\n"));
    assert_non_null(has(q, "name=\"response_format\"\r\n\r\njson\r\n"));
    /* 400: the error's message, not retried. */
    tn_fake_http_push_simple(fh, 400, "application/json",
                             "{\"error\":{\"message\":\"Audio file is too short\",\"type\":"
                             "\"invalid_request_error\",\"param\":null,\"code\":null}}");
    assert_int_equal(tn_stt_transcribe(s, pcm, 800, 16000, "en", &r, err, sizeof(err)),
                     TN_ERR_UPSTREAM);
    assert_string_equal(err, "stt: openai answered HTTP 400: Audio file is too short");
    assert_int_equal(tn_fake_http_nrequests(fh), 6);
    tn_stt_destroy(s);
    free(v1);

    /* ElevenLabs */
    uint8_t raw[6] = {0x01, 0x00, 0xFF, 0xFF, 0x00, 0x80};
    tn_fake_http_push_simple(fh, 503, "application/json", "{}");
    tn_fake_http_push(fh, &(tn_fake_http_resp_t){.status = 200,
                                                 .content_type = "audio/pcm",
                                                 .body = (const char *)raw,
                                                 .body_len = sizeof(raw)});
    tn_tts_t *t = el_tts("xi-secret", tn_fake_http_url(fh));
    int16_t *out = NULL;
    size_t n = 0;
    int rate = 0;
    assert_int_equal(
        tn_tts_synthesize(t, "Hola \"amigo\"", "es", &out, &n, &rate, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], -1);
    assert_int_equal(out[2], -32768);
    free(out);
    assert_int_equal(tn_fake_http_nrequests(fh), 8);
    q = tn_fake_http_request(fh, 7);
    assert_string_equal(q->target, "/v1/text-to-speech/voice-es?output_format=pcm_16000");
    assert_string_equal(tn_fake_http_req_header(q, "xi-api-key"), "xi-secret");
    assert_string_equal(tn_fake_http_req_header(q, "Content-Type"), "application/json");
    assert_string_equal(
        q->body, "{\"text\":\"Hola \\\"amigo\\\"\",\"model_id\":\"eleven_multilingual_v2\"}");
    /* An odd number of bytes is not 16-bit PCM. */
    tn_fake_http_push_simple(fh, 200, "audio/pcm", "abc");
    assert_int_equal(tn_tts_synthesize(t, "Hola", "es", &out, &n, &rate, err, sizeof(err)),
                     TN_ERR_PARSE);
    tn_tts_destroy(t);
    free(wav);
    tn_fake_http_stop(fh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stt_providers),
        cmocka_unit_test(test_stt_faults),
        cmocka_unit_test(test_tts_elevenlabs),
        cmocka_unit_test(test_scripted_requests),
    };
    return cmocka_run_group_tests_name("stt-tts-providers", tests, setup, teardown);
}
