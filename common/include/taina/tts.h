/**
 * @file tts.h
 * @brief Text to speech behind one interface: text in, mono 16-bit PCM out.
 *
 *   - "espeak": libespeak-ng, offline, es and en voices; the embedded default. The library
 *     keeps global state, so calls are serialized inside the module.
 *   - "elevenlabs": POST {url}/v1/text-to-speech/{voice_id}?output_format=pcm_16000 with
 *     `xi-api-key` (CONTRACTS.md section 4); raw PCM back at 16 kHz.
 *
 * @thread A tn_tts_t may be used from several threads at once.
 */
#ifndef TAINA_TTS_H
#define TAINA_TTS_H

#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/metrics.h"

typedef struct tn_tts tn_tts_t;

typedef struct tn_tts_opts {
    const char *provider;  /**< "espeak" (default) or "elevenlabs" */
    const char *url;       /**< elevenlabs base URL ["https://api.elevenlabs.io"] */
    const char *api_key;   /**< elevenlabs */
    const char *voice_es;  /**< voice for Spanish: espeak ["es"], elevenlabs voice id */
    const char *voice_en;  /**< voice for English: espeak ["en"], elevenlabs voice id */
    const char *model;     /**< elevenlabs model_id ["eleven_multilingual_v2"] */
    int64_t timeout_ms;    /**< deadline of one call [15000] */
    int max_attempts;      /**< [3] */
    tn_metrics_t *metrics; /**< borrowed, may be NULL */
} tn_tts_opts_t;

tn_tts_opts_t tn_tts_opts_default(void);
tn_tts_t *tn_tts_new(const tn_tts_opts_t *o, char *errbuf, size_t errlen);
void tn_tts_destroy(tn_tts_t *t);

/**
 * @brief Speak @p text (UTF-8) in @p lang ("es", "en").
 * @param pcm out: the samples (caller frees); @p n their count; @p rate their sample rate
 *        (espeak-ng's native 22050, elevenlabs 16000): the caller resamples.
 * @returns TN_OK; TN_ERR_UNAVAILABLE, TN_ERR_UPSTREAM, TN_ERR_PARSE as for STT; a sentence.
 */
tn_err_t tn_tts_synthesize(tn_tts_t *t, const char *text, const char *lang, int16_t **pcm,
                           size_t *n, int *rate, char *errbuf, size_t errlen);

#endif
