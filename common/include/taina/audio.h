/**
 * @file audio.h
 * @brief Audio for voice sessions: Opus packets in and out (libopus), resampling and voice
 *        activity detection (libspeexdsp), and WAV files. PCM is always mono signed 16-bit.
 *
 *     tn_opus_dec_t *d = tn_opus_dec_new(16000, err, sizeof(err));
 *     int16_t pcm[TN_OPUS_MAX_FRAME];
 *     int n = tn_opus_dec_decode(d, pkt, len, pcm, TN_ARRAY_LEN(pcm)); // < 0: malformed
 *     tn_vad_t *v = tn_vad_new(16000, 320, NULL, err, sizeof(err));      // 20 ms frames
 *     bool speech = tn_vad_frame(v, pcm);                                   // may denoise pcm
 *     tn_opus_enc_t *e = tn_opus_enc_new(16000, 24000, err, sizeof(err));  // VOIP, 20 ms
 *     ssize_t bytes = tn_opus_enc_encode(e, frame320, out, sizeof(out));
 *
 * @thread One object per session and thread; different objects may be used at once.
 */
#ifndef TAINA_AUDIO_H
#define TAINA_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "taina/err.h"

/** Samples in the largest Opus frame at 48 kHz (120 ms), enough for any packet we accept. */
#define TN_OPUS_MAX_FRAME 5760
/** Bytes an encoded 20 ms packet never exceeds (RFC 6716 recommends 1275 per frame). */
#define TN_OPUS_MAX_PACKET 1500
/** Encoder complexity (0..10) of tn_opus_enc_new(); see tests/bench/voice-media for the why. */
#define TN_OPUS_DEFAULT_COMPLEXITY 1

/** @brief True for the sample rates Opus takes: 8000, 12000, 16000, 24000, 48000. */
bool tn_opus_rate_ok(int rate);

typedef struct tn_opus_dec tn_opus_dec_t;
/** @brief A mono decoder at @p rate. NULL with a sentence in @p errbuf for a bad rate. */
tn_opus_dec_t *tn_opus_dec_new(int rate, char *errbuf, size_t errlen);
void tn_opus_dec_destroy(tn_opus_dec_t *d);
/**
 * @brief Decode one packet into @p pcm (at most @p max samples).
 * @returns the samples decoded (e.g. 320 for 20 ms at 16 kHz), or -1 when the packet is
 *          malformed, empty, longer than TN_OPUS_MAX_PACKET or would decode to more than
 *          @p max samples (checked before decoding; the decoder stays usable).
 */
int tn_opus_dec_decode(tn_opus_dec_t *d, const uint8_t *pkt, size_t len, int16_t *pcm, size_t max);

typedef struct tn_opus_enc tn_opus_enc_t;
/** @brief A mono VOIP encoder at @p rate and @p bitrate bits/s (0 = 24000), 20 ms frames. */
tn_opus_enc_t *tn_opus_enc_new(int rate, int bitrate, char *errbuf, size_t errlen);
void tn_opus_enc_destroy(tn_opus_enc_t *e);
/** @brief Set the encoder complexity 0..10. @returns TN_OK or TN_ERR_INVALID (out of range). */
tn_err_t tn_opus_enc_set_complexity(tn_opus_enc_t *e, int complexity);
/** @brief Samples in one 20 ms frame of this encoder (rate / 50). */
size_t tn_opus_enc_frame(const tn_opus_enc_t *e);
/**
 * @brief Encode exactly one 20 ms frame (tn_opus_enc_frame() samples) into @p out.
 * @returns the packet size in bytes, or -1 on an encoder error.
 */
ssize_t tn_opus_enc_encode(tn_opus_enc_t *e, const int16_t *pcm, uint8_t *out, size_t max);

typedef struct tn_resampler tn_resampler_t;
/** @brief A resampler from @p in_rate to @p out_rate (speexdsp, quality 0..10, -1 = 5). */
tn_resampler_t *tn_resampler_new(int in_rate, int out_rate, int quality, char *errbuf,
                                 size_t errlen);
void tn_resampler_destroy(tn_resampler_t *r);
/**
 * @brief Resample all of @p in (@p n samples) into @p out (room for @p max samples; enough is
 *        n * out_rate / in_rate + 64). Keeps filter state between calls (streaming).
 * @returns the samples written.
 */
size_t tn_resample(tn_resampler_t *r, const int16_t *in, size_t n, int16_t *out, size_t max);
/** @brief Resample a whole buffer at once. @returns a new buffer (caller frees), count in @p out_n.
 */
int16_t *tn_resample_all(const int16_t *in, size_t n, int in_rate, int out_rate, size_t *out_n);

/** Voice activity detection settings. Start from tn_vad_opts_default(). */
typedef struct tn_vad_opts {
    bool denoise;          /**< run the speexdsp denoiser on the frame in place [true] */
    int prob_start;        /**< percent probability to enter speech [80] */
    int prob_continue;     /**< percent probability to stay in speech [65] */
    int energy_floor_dbfs; /**< frames quieter than this are never speech [-50] */
    /**
     * Without denoise, only every quiet_stride-th frame under the floor reaches speexdsp once
     * the detector has seen its first second (those frames cannot be speech; the others only
     * keep the noise estimate on the background). 1 = every frame [1].
     */
    int quiet_stride;
    /**
     * Without denoise, the detector may run on the frame decimated to half its rate (a
     * half-band filter, then speexdsp on half the samples): half the detector's CPU, and the
     * speech band it weighs (below 4 kHz at 16 kHz) is the same. Only a rate of exactly half
     * the frame's rate is taken; 0 = the frame's own rate [0].
     */
    int detect_rate;
} tn_vad_opts_t;
tn_vad_opts_t tn_vad_opts_default(void);

typedef struct tn_vad tn_vad_t;
/** @brief A detector for frames of @p frame samples at @p rate. @p o NULL = defaults. */
tn_vad_t *tn_vad_new(int rate, size_t frame, const tn_vad_opts_t *o, char *errbuf, size_t errlen);
void tn_vad_destroy(tn_vad_t *v);
/**
 * @brief Whether one frame (exactly the configured size) holds speech; may denoise it.
 *        Speech = at least energy_floor_dbfs (measured before denoising) and a speech
 *        probability above prob_start (prob_continue while the previous frame was speech).
 */
bool tn_vad_frame(tn_vad_t *v, int16_t *pcm);
/** @brief The speech probability (percent) speexdsp gave the last frame, for logs and tuning. */
int tn_vad_last_prob(const tn_vad_t *v);

/** @brief Level of @p n samples in dBFS (RMS; -100 for silence). */
double tn_audio_dbfs(const int16_t *pcm, size_t n);

/**
 * @brief Read a PCM WAV file (16-bit; mono, or stereo mixed down to mono).
 * @returns TN_OK with the samples in @p pcm (caller frees), their count and the rate;
 *          TN_ERR_IO (cannot read) or TN_ERR_PARSE (not a 16-bit PCM WAV), with a sentence.
 */
tn_err_t tn_wav_read(const char *path, int16_t **pcm, size_t *n, int *rate, char *errbuf,
                     size_t errlen);
/**
 * @brief Parse a WAV file image in memory (@p buf, @p len bytes; borrowed), as tn_wav_read().
 *        Chunks are walked with bounds checks: unknown chunks are skipped, `fmt ` must come
 *        before `data`, and a data size past the end of @p buf is rejected as truncated
 *        (except 0xFFFFFFFF, which streaming writers leave: the data then runs to the end).
 * @returns TN_OK with the samples in @p pcm (caller frees), or TN_ERR_PARSE with a sentence.
 */
tn_err_t tn_wav_decode(const uint8_t *buf, size_t len, int16_t **pcm, size_t *n, int *rate,
                       char *errbuf, size_t errlen);
/** @brief Write mono 16-bit PCM WAV. @returns TN_OK, TN_ERR_INVALID (rate outside 1000..384000
 *         or too many samples for a RIFF file) or TN_ERR_IO, with a sentence. */
tn_err_t tn_wav_write(const char *path, const int16_t *pcm, size_t n, int rate, char *errbuf,
                      size_t errlen);
/** @brief A WAV file image in memory (44-byte header + samples), for multipart uploads.
 *         Caller frees the result; its size in @p len. */
uint8_t *tn_wav_encode(const int16_t *pcm, size_t n, int rate, size_t *len);

#endif
