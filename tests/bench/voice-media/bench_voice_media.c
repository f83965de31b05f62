/*
 * bench-voice-media: the per-frame CPU cost of a voice session's media work (common/src/audio.c)
 * at 16 kHz, 20 ms frames, and the real-time sessions one core sustains.
 *
 *   in:    Opus decode of the caller's packet + VAD with the speexdsp denoiser
 *   out:   resampling of the reply (espeak-ng's 22050 Hz to 16 kHz) + Opus encode
 *   total: in + out, as in a full-duplex session (the VAD keeps running while the reply
 *          plays, to hear barge-in); sessions per core = 20 ms / total.
 *
 * Input is real speech: ten sentences of espeak-ng (tn_tts), Spanish and English, with pauses,
 * encoded once by a client-side encoder (24 kbit/s, complexity 10). Times are thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID) over every frame of several passes, so other load on the machine
 * does not count. The encoder is timed at complexity 0..10 with the quality it buys (best
 * normalized correlation of the decoded reply with the original, and the bytes it takes), so the
 * default (TN_OPUS_DEFAULT_COMPLEXITY) can be chosen from the same run.
 *
 * Why complexity 1 by default (TN_OPUS_DEFAULT_COMPLEXITY): the budget of 300 sessions a core
 * is 66 us per 20 ms frame for everything, and decode + VAD already take some 30 us of it.
 * SILK's encoder costs about 45 us at complexity 0-1, 75-80 at 2-3, 105 at 4-5 and 150-220 at
 * 8-10 (measured on the 2-core build VM, see README), while the decoded reply's correlation with
 * the original moves by less than 0.01 from complexity 0 to 10 at the same 24 kbit/s: the
 * higher settings buy a finer pitch search and delayed-decision noise shaping, which matter
 * more for music and low bitrates than for TTS speech at 24 kbit/s. Complexity 1 keeps the
 * better pitch contours of 1 over 0 at almost the same cost.
 *
 * The gateway's own input path is timed too, with its defaults as run.sh reads them from
 * `taina-voice-gateway --list-config` (denoise, quiet stride, half-rate detector): vad_gw_us,
 * and how often its decisions agree with the full-rate detector without denoise (vad_gw_agree).
 *
 * Output: "key value" lines for tests/bench/voice-media/run.sh.
 *   bench-voice-media [passes [denoise quiet_stride half_rate]]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taina/audio.h"
#include "taina/mem.h"
#include "taina/tts.h"

#define RATE  16000
#define FRAME 320

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *const sentences[][2] = {
    {"es", "Quiero pedir una cita para renovar el pasaporte."},
    {"en", "I would like to book an appointment to renew my passport."},
    {"es", "Necesito el certificado de empadronamiento para el lunes."},
    {"en", "What documents do I need to register my new address?"},
    {"es", "Su cita es el martes a las diez de la mañana en la oficina central."},
    {"en", "Your appointment is confirmed for Tuesday at ten in the morning."},
    {"es", "¿Puedo pagar el impuesto de circulación por internet?"},
    {"en", "The registry office is open from nine to two on weekdays."},
    {"es", "Gracias, eso es todo por hoy."},
    {"en", "Is there anything else I can help you with?"},
};

/* All the sentences at 22050 Hz (the reply as TTS gives it), with 400 ms pauses. */
static int16_t *speech_22k(size_t *n)
{
    char err[256];
    tn_tts_opts_t o = tn_tts_opts_default();
    tn_tts_t *t = tn_tts_new(&o, err, sizeof(err));
    if (!t) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    int16_t *all = NULL;
    size_t len = 0;
    for (size_t i = 0; i < TN_ARRAY_LEN(sentences); i++) {
        int16_t *pcm = NULL;
        size_t m = 0;
        int rate = 0;
        if (tn_tts_synthesize(t, sentences[i][1], sentences[i][0], &pcm, &m, &rate, err,
                              sizeof(err)) != TN_OK) {
            fprintf(stderr, "%s\n", err);
            exit(1);
        }
        size_t pause = (size_t)rate * 4 / 10;
        all = tn_xrealloc(all, (len + m + pause) * sizeof(int16_t));
        memcpy(all + len, pcm, m * sizeof(int16_t));
        memset(all + len + m, 0, pause * sizeof(int16_t));
        len += m + pause;
        free(pcm);
    }
    tn_tts_destroy(t);
    *n = len;
    return all;
}

/* Best normalized correlation of b against a over lags 0..maxlag. */
static double best_corr(const int16_t *a, const int16_t *b, size_t n, size_t maxlag)
{
    double best = -1;
    for (size_t l = 0; l <= maxlag; l++) {
        double ab = 0, aa = 0, bb = 0;
        for (size_t i = 0; i + l < n; i++) {
            ab += (double)a[i] * b[i + l];
            aa += (double)a[i] * a[i];
            bb += (double)b[i + l] * b[i + l];
        }
        double c = ab / sqrt(aa * bb + 1e-9);
        if (c > best)
            best = c;
    }
    return best;
}

int main(int argc, char **argv)
{
    int passes = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5;
    if (passes < 1)
        passes = 1;
    tn_vad_opts_t gw = tn_vad_opts_default(); /* the gateway's detector */
    gw.denoise = argc > 2 ? strtol(argv[2], NULL, 10) != 0 : false;
    gw.quiet_stride = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 4;
    gw.detect_rate = argc > 4 && strtol(argv[4], NULL, 10) != 0 && !gw.denoise ? RATE / 2 : 0;
    char err[256];
    size_t n22 = 0, n16 = 0;
    int16_t *s22 = speech_22k(&n22);
    int16_t *s16 = tn_resample_all(s22, n22, 22050, RATE, &n16);
    size_t frames = n16 / FRAME;

    /* The caller's packets, encoded once. */
    tn_opus_enc_t *client = tn_opus_enc_new(RATE, 24000, err, sizeof(err));
    tn_opus_enc_set_complexity(client, 10);
    uint8_t(*pkts)[TN_OPUS_MAX_PACKET] = tn_xmalloc(frames * TN_OPUS_MAX_PACKET);
    size_t *plen = tn_xmalloc(frames * sizeof(size_t));
    for (size_t f = 0; f < frames; f++)
        plen[f] = (size_t)tn_opus_enc_encode(client, s16 + f * FRAME, pkts[f], TN_OPUS_MAX_PACKET);
    tn_opus_enc_destroy(client);
    printf("audio_s %.2f\nframes %zu\npasses %d\n", (double)n16 / RATE, frames, passes);

    /* in: decode + VAD (denoise). A fresh session per pass. */
    int16_t pcm[TN_OPUS_MAX_FRAME];
    size_t speech_frames = 0;
    double t_dec = 0, t_vad = 0;
    for (int p = 0; p < passes; p++) {
        tn_opus_dec_t *d = tn_opus_dec_new(RATE, err, sizeof(err));
        tn_vad_t *v = tn_vad_new(RATE, FRAME, NULL, err, sizeof(err));
        speech_frames = 0;
        for (size_t f = 0; f < frames; f++) {
            double t0 = cpu_s();
            int got = tn_opus_dec_decode(d, pkts[f], plen[f], pcm, TN_ARRAY_LEN(pcm));
            double t1 = cpu_s();
            if (got != FRAME) {
                fprintf(stderr, "decode failed at frame %zu\n", f);
                return 1;
            }
            speech_frames += tn_vad_frame(v, pcm);
            t_vad += cpu_s() - t1;
            t_dec += t1 - t0;
        }
        tn_opus_dec_destroy(d);
        tn_vad_destroy(v);
    }
    double nf = (double)frames * passes;
    printf("decode_us %.2f\nvad_us %.2f\nspeech_share %.2f\n", 1e6 * t_dec / nf, 1e6 * t_vad / nf,
           (double)speech_frames / (double)frames);

    /* in, as the gateway runs it: its detector, and the full-rate one without denoise beside it
     * (not timed) for the share of frames both decide alike. */
    tn_vad_opts_t full = tn_vad_opts_default();
    full.denoise = false;
    double t_gw = 0;
    size_t agree = 0;
    for (int p = 0; p < passes; p++) {
        tn_opus_dec_t *d = tn_opus_dec_new(RATE, err, sizeof(err));
        tn_vad_t *v = tn_vad_new(RATE, FRAME, &gw, err, sizeof(err));
        tn_vad_t *ref = tn_vad_new(RATE, FRAME, &full, err, sizeof(err));
        if (!d || !v || !ref) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        int16_t ref_pcm[FRAME];
        for (size_t f = 0; f < frames; f++) {
            tn_opus_dec_decode(d, pkts[f], plen[f], pcm, TN_ARRAY_LEN(pcm));
            memcpy(ref_pcm, pcm, sizeof(ref_pcm));
            double t0 = cpu_s();
            bool said = tn_vad_frame(v, pcm);
            t_gw += cpu_s() - t0;
            if (p == 0)
                agree += said == tn_vad_frame(ref, ref_pcm);
        }
        tn_opus_dec_destroy(d);
        tn_vad_destroy(v);
        tn_vad_destroy(ref);
    }
    printf("vad_gw_us %.2f\nvad_gw_agree %.4f\nvad_gw_opts denoise=%d,quiet_stride=%d,rate=%d\n",
           1e6 * t_gw / nf, (double)agree / (double)frames, gw.denoise, gw.quiet_stride,
           gw.detect_rate ? gw.detect_rate : RATE);

    /* out: resample 22050 -> 16000 in 20 ms pieces (441 samples in, 320 out), at the default
     * quality (5) and at speex's "VoIP" quality 3. */
    static const int qualities[] = {5, 3};
    for (size_t qi = 0; qi < TN_ARRAY_LEN(qualities); qi++) {
        double t_rs = 0;
        int16_t rs_out[1024];
        for (int p = 0; p < passes; p++) {
            tn_resampler_t *r = tn_resampler_new(22050, RATE, qualities[qi], err, sizeof(err));
            double t0 = cpu_s();
            for (size_t off = 0; off + 441 <= n22; off += 441)
                tn_resample(r, s22 + off, 441, rs_out, TN_ARRAY_LEN(rs_out));
            t_rs += cpu_s() - t0;
            tn_resampler_destroy(r);
        }
        printf("resample_q%d_us %.2f\n", qualities[qi],
               1e6 * t_rs / ((double)(n22 / 441) * passes));
    }

    /* out: encode at each complexity, and what it sounds like once decoded. */
    int16_t *back = tn_xmalloc(frames * FRAME * sizeof(int16_t));
    for (int cx = 0; cx <= 10; cx++) {
        double t_enc = 0;
        size_t bytes = 0;
        for (int p = 0; p < passes; p++) {
            tn_opus_enc_t *e = tn_opus_enc_new(RATE, 24000, err, sizeof(err));
            tn_opus_enc_set_complexity(e, cx);
            tn_opus_dec_t *d = tn_opus_dec_new(RATE, err, sizeof(err));
            uint8_t out[TN_OPUS_MAX_PACKET];
            for (size_t f = 0; f < frames; f++) {
                double t0 = cpu_s();
                ssize_t len = tn_opus_enc_encode(e, s16 + f * FRAME, out, sizeof(out));
                t_enc += cpu_s() - t0;
                if (len < 0)
                    return 1;
                if (p == 0) {
                    bytes += (size_t)len;
                    tn_opus_dec_decode(d, out, (size_t)len, back + f * FRAME, FRAME);
                }
            }
            tn_opus_enc_destroy(e);
            tn_opus_dec_destroy(d);
        }
        /* Quality over the first 10 s (the lag search is quadratic). */
        size_t qn = TN_MIN(frames * FRAME, (size_t)RATE * 10);
        double corr = best_corr(s16, back, qn - 400, 400);
        printf("encode_c%d_us %.2f\nencode_c%d_corr %.4f\nencode_c%d_kbps %.1f\n", cx,
               1e6 * t_enc / nf, cx, corr, cx, (double)bytes * 8 / ((double)frames * 0.02) / 1000);
    }
    printf("default_complexity %d\n", TN_OPUS_DEFAULT_COMPLEXITY);
    free(back);
    free(pkts);
    free(plen);
    free(s16);
    free(s22);
    return 0;
}
