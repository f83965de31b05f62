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

/** Longest text one call speaks, in bytes (ElevenLabs' own limit is some 10,000 characters). */
#define TN_TTS_MAX_TEXT 5000

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
/**
 * @brief A synthesizer. espeak needs nothing (the engine starts on the first call);
 *        elevenlabs needs api_key, voice_es and voice_en.
 * @returns NULL with a sentence in @p errbuf. Caller owns the result; free with
 *          tn_tts_destroy() (NULL ok).
 */
tn_tts_t *tn_tts_new(const tn_tts_opts_t *o, char *errbuf, size_t errlen);
void tn_tts_destroy(tn_tts_t *t);

/**
 * @brief Speak @p text (UTF-8) in @p lang ("es", "en").
 * @param pcm out: the samples (caller frees); @p n their count; @p rate their sample rate
 *        (espeak-ng's native 22050, elevenlabs 16000): the caller resamples.
 * @returns TN_OK; TN_ERR_UNAVAILABLE, TN_ERR_UPSTREAM, TN_ERR_PARSE as for STT;
 *          TN_ERR_INVALID (a language without a voice, an empty text or one over
 *          TN_TTS_MAX_TEXT bytes, text that is not UTF-8); TN_ERR_TOO_LARGE (more than 300 s
 *          of speech). A sentence in @p errbuf.
 * @thread Any thread. espeak calls wait for one another (one engine per process).
 */
tn_err_t tn_tts_synthesize(tn_tts_t *t, const char *text, const char *lang, int16_t **pcm,
                           size_t *n, int *rate, char *errbuf, size_t errlen);

#endif
