/* Unit tests for common/src/stt.c: options and argument checks. The HTTP providers are tested
 * against taina-fake-speech (tests/integration/0018-stt-tts-providers.c), the local one on
 * espeak-ng speech (tests/integration/0019-stt-local.c): loading its model under valgrind would
 * take minutes. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/stt.h"

static void test_new(void **state)
{
    (void)state;
    char err[256];
    tn_stt_opts_t o = tn_stt_opts_default();
    assert_string_equal(o.provider, "local");
    tn_stt_t *s = tn_stt_new(&o, err, sizeof(err));
    assert_non_null(s);
    tn_stt_destroy(s);
    tn_stt_destroy(NULL);

    o.provider = "whisper.cpp";
    assert_null(tn_stt_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "whisper.cpp"));
    o.provider = "openai";
    assert_null(tn_stt_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "URL"));
    o.url = "gopher://x";
    assert_null(tn_stt_new(&o, err, sizeof(err)));
    o.url = "http://127.0.0.1:1/v1";
    s = tn_stt_new(&o, err, sizeof(err));
    assert_non_null(s);
    tn_stt_destroy(s);
    o.provider = "deepgram";
    o.url = NULL; /* the public endpoint */
    o.api_key = "k";
    s = tn_stt_new(&o, err, sizeof(err));
    assert_non_null(s);
    tn_stt_destroy(s);
}

static void test_bad_input(void **state)
{
    (void)state;
    char err[256];
    tn_stt_opts_t o = tn_stt_opts_default();
    tn_stt_t *s = tn_stt_new(&o, err, sizeof(err));
    int16_t pcm[160] = {0};
    tn_stt_result_t r = {.text = (char *)"x"};
    /* Spanish is not in the local model; checked before the model is loaded. */
    assert_int_equal(tn_stt_transcribe(s, pcm, 160, 16000, "es", &r, err, sizeof(err)),
                     TN_ERR_INVALID);
    assert_null(r.text);
    assert_non_null(strstr(err, "English"));
    assert_int_equal(tn_stt_transcribe(s, pcm, 160, 16000, "en&x=1", &r, err, sizeof(err)),
                     TN_ERR_INVALID);
    assert_int_equal(tn_stt_transcribe(s, pcm, 160, 4000, "en", &r, err, sizeof(err)),
                     TN_ERR_INVALID);
    assert_int_equal(tn_stt_transcribe(s, pcm, 16000 * 301, 16000, "en", &r, err, sizeof(err)),
                     TN_ERR_INVALID);
    tn_stt_destroy(s);

    /* A model directory that does not exist: TN_ERR_UNAVAILABLE, and again without retrying. */
    o.model = "/nonexistent/model";
    s = tn_stt_new(&o, err, sizeof(err));
    assert_int_equal(tn_stt_transcribe(s, pcm, 160, 16000, "en", &r, err, sizeof(err)),
                     TN_ERR_UNAVAILABLE);
    assert_non_null(strstr(err, "/nonexistent/model"));
    assert_int_equal(tn_stt_transcribe(s, pcm, 160, 16000, "en-US", &r, err, sizeof(err)),
                     TN_ERR_UNAVAILABLE);
    tn_stt_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("stt", tests, NULL, NULL);
}
