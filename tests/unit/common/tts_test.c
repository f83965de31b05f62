/* Unit tests for common/src/tts.c: espeak-ng speaks Spanish and English (the elevenlabs provider
 * is tested against the fake in tests/integration/0018-stt-tts-providers.c). */
#include "tn_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "taina/audio.h"
#include "taina/tts.h"

/* Share of 20 ms frames louder than -40 dBFS. */
static double voiced_share(const int16_t *pcm, size_t n, int rate)
{
    size_t fr = (size_t)rate / 50, loud = 0, total = 0;
    for (size_t off = 0; off + fr <= n; off += fr, total++)
        loud += tn_audio_dbfs(pcm + off, fr) > -40;
    return total ? (double)loud / (double)total : 0;
}

static void speak(tn_tts_t *t, const char *text, const char *lang, double *secs)
{
    char err[256];
    int16_t *pcm = NULL;
    size_t n = 0;
    int rate = 0;
    assert_int_equal(tn_tts_synthesize(t, text, lang, &pcm, &n, &rate, err, sizeof(err)), TN_OK);
    assert_int_equal(rate, 22050);
    *secs = (double)n / rate;
    double level = tn_audio_dbfs(pcm, n), share = voiced_share(pcm, n, rate);
    print_message("espeak %s: %.2f s, %.1f dBFS, %.0f%% of frames voiced: %s\n", lang, *secs, level,
                  100 * share, text);
    assert_true(level > -30);
    assert_true(share > 0.5);
    free(pcm);
}

static void test_espeak(void **state)
{
    (void)state;
    char err[256];
    tn_tts_opts_t o = tn_tts_opts_default();
    tn_tts_t *t = tn_tts_new(&o, err, sizeof(err));
    assert_non_null(t);
    /* Some 12 words at espeak's 175 words a minute: 3 to 6 s, pauses included. */
    const char *es = "Quiero pedir una cita para renovar el pasaporte la semana que viene.";
    const char *en = "I would like to book an appointment to renew my passport next week.";
    double s_es = 0, s_en = 0, s_short = 0;
    speak(t, es, "es", &s_es);
    speak(t, en, "en-GB", &s_en);
    assert_true(s_es > 2.5 && s_es < 7);
    assert_true(s_en > 2.5 && s_en < 7);
    /* Length follows the text. */
    speak(t, "Hola.", "es", &s_short);
    assert_true(s_short < s_es / 3);

    int16_t *pcm = NULL;
    size_t n = 0;
    int rate = 0;
    assert_int_equal(tn_tts_synthesize(t, "Bonjour", "fr", &pcm, &n, &rate, err, sizeof(err)),
                     TN_ERR_INVALID);
    assert_null(pcm);
    assert_int_equal(tn_tts_synthesize(t, "", "en", &pcm, &n, &rate, err, sizeof(err)),
                     TN_ERR_INVALID);
    tn_tts_destroy(t);

    o.voice_en = "no-such-voice";
    t = tn_tts_new(&o, err, sizeof(err));
    assert_int_equal(tn_tts_synthesize(t, "hello", "en", &pcm, &n, &rate, err, sizeof(err)),
                     TN_ERR_INVALID);
    assert_non_null(strstr(err, "no-such-voice"));
    tn_tts_destroy(t);
    tn_tts_destroy(NULL);
}

static void test_new_errors(void **state)
{
    (void)state;
    char err[256];
    tn_tts_opts_t o = tn_tts_opts_default();
    o.provider = "festival";
    assert_null(tn_tts_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "festival"));
    o.provider = "elevenlabs";
    assert_null(tn_tts_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "API key"));
    o.api_key = "k";
    assert_null(tn_tts_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "voice"));
    o.voice_es = "v1";
    o.voice_en = "v2";
    o.url = "ftp://x";
    assert_null(tn_tts_new(&o, err, sizeof(err)));
    o.url = "http://127.0.0.1:1";
    tn_tts_t *t = tn_tts_new(&o, err, sizeof(err));
    assert_non_null(t);
    tn_tts_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_espeak),
        cmocka_unit_test(test_new_errors),
    };
    return cmocka_run_group_tests_name("tts", tests, NULL, NULL);
}
