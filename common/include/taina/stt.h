/**
 * @file stt.h
 * @brief Speech to text behind one interface: one utterance of PCM in, its transcript out.
 *
 *   - "deepgram": Deepgram pre-recorded REST, POST {url}/v1/listen?model=..&language=..
 *     with `Authorization: Token KEY` and the audio as audio/wav (CONTRACTS.md section 3.1).
 *   - "openai": any OpenAI-compatible POST {url}/v1/audio/transcriptions (multipart, a WAV
 *     file, model, language; CONTRACTS.md section 2.3).
 *   - "local": pocketsphinx (Debian, English model only; offline, for the demo; its accuracy
 *     on espeak-ng speech is stated in common/README.md). Other languages answer
 *     TN_ERR_INVALID.
 * HTTP providers use the common http_client: timeouts, retries with backoff on 429/5xx, the
 * upstream metrics with upstream="stt". Transcripts are never logged.
 *
 * @thread A tn_stt_t may be used from several threads at once.
 */
#ifndef TAINA_STT_H
#define TAINA_STT_H

#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/metrics.h"

typedef struct tn_stt tn_stt_t;

typedef struct tn_stt_opts {
    const char *provider;  /**< "deepgram", "openai" or "local" */
    const char *url;       /**< base URL of an HTTP provider ("https://api.deepgram.com") */
    const char *api_key;   /**< HTTP providers; NULL/"" = none */
    const char *model;     /**< deepgram ["nova-2"], openai ["whisper-1"]; local: the model
                                directory, holding en-us/, en-us.lm.bin and cmudict-en-us.dict
                                ["/usr/share/pocketsphinx/model/en-us"] */
    int64_t timeout_ms;    /**< deadline of one call, all attempts [15000] */
    int max_attempts;      /**< [3] */
    tn_metrics_t *metrics; /**< borrowed, may be NULL */
} tn_stt_opts_t;

/** @brief The defaults: provider "local", the timeout and attempts in brackets above. */
tn_stt_opts_t tn_stt_opts_default(void);
/** @returns NULL with a sentence in @p errbuf (unknown provider, missing url, no model).
 *           Caller owns the result; free with tn_stt_destroy() (NULL ok). */
tn_stt_t *tn_stt_new(const tn_stt_opts_t *o, char *errbuf, size_t errlen);
void tn_stt_destroy(tn_stt_t *s);

/** One transcript. */
typedef struct tn_stt_result {
    char *text;        /**< UTF-8, may be empty (no speech recognized); caller frees */
    double confidence; /**< 0..1, or -1 when the provider gives none */
} tn_stt_result_t;

/**
 * @brief Transcribe @p n samples at @p rate of language @p lang ("es", "en").
 * @returns TN_OK; TN_ERR_UNAVAILABLE (timeout, 429/5xx after the retries, connection);
 *          TN_ERR_UPSTREAM (other 4xx); TN_ERR_PARSE (an answer without a transcript);
 *          TN_ERR_INVALID (a language the provider cannot do, a malformed language code,
 *          a rate outside 8000..48000 Hz or more than 300 s of audio). A sentence in @p errbuf.
 *          "local" resamples to 16 kHz itself, loads its model on the first call (about a
 *          second) and decodes one utterance at a time per tn_stt_t.
 * @param out on TN_OK the transcript (out->text: caller frees); on failure text is NULL.
 */
tn_err_t tn_stt_transcribe(tn_stt_t *s, const int16_t *pcm, size_t n, int rate, const char *lang,
                           tn_stt_result_t *out, char *errbuf, size_t errlen);

#endif
