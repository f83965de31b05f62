/* Unit tests for common/src/audio.c: Opus round trips and malformed packets, resampling, VAD,
 * dBFS and WAV files. Every signal is synthesized here; no external program is needed. */
#include "tn_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "taina/audio.h"
#include "taina/mem.h"

#define RATE 16000
#define PI   3.14159265358979323846

/* A sum of tones: 200, 450 and 1100 Hz at the given peak amplitude (0..1). */
static int16_t *tones(size_t n, int rate, double amp)
{
    int16_t *x = tn_xmalloc(n * sizeof(int16_t));
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate;
        double v = 0.5 * sin(2 * PI * 200 * t) + 0.3 * sin(2 * PI * 450 * t) +
                   0.2 * sin(2 * PI * 1100 * t);
        x[i] = (int16_t)lrint(v * amp * 32767);
    }
    return x;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform(void) /* [-1, 1) */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 4503599627370496.0 - 1.0;
}

/* White noise of the given RMS level in dBFS. */
static int16_t *noise(size_t n, double dbfs)
{
    double rms = 32768.0 * pow(10, dbfs / 20), a = rms * sqrt(3.0);
    int16_t *x = tn_xmalloc(n * sizeof(int16_t));
    for (size_t i = 0; i < n; i++)
        x[i] = (int16_t)lrint(a * uniform());
    return x;
}

/*
 * Speech-like: a glottal pulse train (f0 110..150 Hz, gliding) through three formant resonators
 * whose frequencies move from vowel to vowel every 250 ms, with a syllable envelope at 4 Hz and
 * some breath noise, normalized to a peak of @p amp.
 */
static int16_t *speechlike(size_t n, int rate, double amp)
{
    static const double formants[4][3] = {
        {730, 1090, 2440}, {270, 2290, 3010}, {570, 840, 2410}, {530, 1840, 2480}};
    double *y = tn_xcalloc(n, sizeof(double));
    double st[3][2] = {{0}};
    double phase = 0, peak = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate;
        double f0 = 130 + 20 * sin(2 * PI * 0.7 * t);
        phase += f0 / rate;
        double src = 0;
        if (phase >= 1) {
            phase -= 1;
            src = 1;
        }
        src += 0.02 * uniform();
        const double *f = formants[(size_t)(t * 4) % 4];
        double v = 0;
        for (int k = 0; k < 3; k++) { /* two-pole resonator, bandwidth 100 Hz */
            double r = exp(-PI * 100.0 / rate);
            double c = 2 * r * cos(2 * PI * f[k] / rate);
            double o = src + c * st[k][0] - r * r * st[k][1];
            st[k][1] = st[k][0];
            st[k][0] = o;
            v += o / (k + 1);
        }
        double env = 0.55 + 0.45 * sin(2 * PI * 4 * t);
        y[i] = v * env;
        if (fabs(y[i]) > peak)
            peak = fabs(y[i]);
    }
    int16_t *x = tn_xmalloc(n * sizeof(int16_t));
    for (size_t i = 0; i < n; i++)
        x[i] = (int16_t)lrint(y[i] / peak * amp * 32767);
    free(y);
    return x;
}

/* Best normalized correlation of @p b against @p a over lags 0..maxlag, and its lag. */
static double best_corr(const int16_t *a, const int16_t *b, size_t n, size_t maxlag, size_t *lag)
{
    double best = -2;
    for (size_t l = 0; l <= maxlag; l++) {
        double ab = 0, aa = 0, bb = 0;
        for (size_t i = 0; i + l < n; i++) {
            ab += (double)a[i] * b[i + l];
            aa += (double)a[i] * a[i];
            bb += (double)b[i + l] * b[i + l];
        }
        double c = ab / sqrt(aa * bb + 1e-9);
        if (c > best) {
            best = c;
            *lag = l;
        }
    }
    return best;
}

/* Encode @p x (whole frames) and decode it back; returns the decoded signal. */
static int16_t *opus_round_trip(const int16_t *x, size_t n, int bitrate, int complexity,
                                size_t *bytes)
{
    char err[256];
    tn_opus_enc_t *e = tn_opus_enc_new(RATE, bitrate, err, sizeof(err));
    tn_opus_dec_t *d = tn_opus_dec_new(RATE, err, sizeof(err));
    assert_non_null(e);
    assert_non_null(d);
    if (complexity >= 0)
        assert_int_equal(tn_opus_enc_set_complexity(e, complexity), TN_OK);
    size_t fr = tn_opus_enc_frame(e);
    assert_int_equal(fr, 320);
    int16_t *y = tn_xcalloc(n, sizeof(int16_t));
    *bytes = 0;
    for (size_t off = 0; off + fr <= n; off += fr) {
        uint8_t pkt[TN_OPUS_MAX_PACKET];
        ssize_t len = tn_opus_enc_encode(e, x + off, pkt, sizeof(pkt));
        assert_true(len > 0 && len <= TN_OPUS_MAX_PACKET);
        *bytes += (size_t)len;
        int got = tn_opus_dec_decode(d, pkt, (size_t)len, y + off, n - off);
        assert_int_equal(got, (int)fr);
    }
    tn_opus_enc_destroy(e);
    tn_opus_dec_destroy(d);
    return y;
}

static void test_opus_round_trip(void **state)
{
    (void)state;
    size_t n = RATE; /* 1 s */
    int16_t *x = tones(n, RATE, 0.5);
    size_t bytes = 0, lag = 0;
    /* Tones at the highest complexity (the codec path's fidelity), speech at the default. */
    int16_t *y = opus_round_trip(x, n, 24000, 10, &bytes);
    /* 50 packets at 24 kbit/s is some 3000 bytes; VBR allows a margin. */
    assert_in_range(bytes, 1500, 4500);
    /* Skip the first 100 ms (encoder start-up), then line the output up with the input. */
    size_t skip = RATE / 10;
    /* The tones repeat every 320 samples (50 Hz): look for the lag within one period. */
    double c = best_corr(x + skip, y + skip, n - skip - 800, 319, &lag);
    double sig = 0, err = 0;
    for (size_t i = skip; i + lag < n; i++) {
        sig += (double)x[i] * x[i];
        err += ((double)x[i] - y[i + lag]) * ((double)x[i] - y[i + lag]);
    }
    double snr = 10 * log10(sig / err);
    print_message("opus tones: correlation %.3f at lag %zu, SNR %.1f dB, %zu bytes\n", c, lag, snr,
                  bytes);
    assert_true(c > 0.95);
    assert_true(snr > 10);

    /* Speech-like signal: the decoded level and the waveform follow the input. */
    free(x);
    free(y);
    x = speechlike(n, RATE, 0.5);
    y = opus_round_trip(x, n, 24000, -1, &bytes);
    c = best_corr(x + skip, y + skip, n - skip - 800, 800, &lag);
    double lx = tn_audio_dbfs(x + skip, n - skip), ly = tn_audio_dbfs(y + skip, n - skip);
    print_message("opus speech-like: correlation %.3f, level %.1f -> %.1f dBFS\n", c, lx, ly);
    assert_true(c > 0.8);
    assert_true(fabs(lx - ly) < 3);
    free(x);
    free(y);
}

static void test_opus_bad_args(void **state)
{
    (void)state;
    char err[256];
    assert_null(tn_opus_dec_new(44100, err, sizeof(err)));
    assert_non_null(strstr(err, "44100"));
    assert_null(tn_opus_enc_new(22050, 0, err, sizeof(err)));
    assert_null(tn_opus_enc_new(16000, 100, err, sizeof(err)));
    assert_true(tn_opus_rate_ok(48000));
    assert_false(tn_opus_rate_ok(0));
    tn_opus_enc_t *e = tn_opus_enc_new(48000, 0, err, sizeof(err));
    assert_non_null(e);
    assert_int_equal(tn_opus_enc_frame(e), 960);
    assert_int_equal(tn_opus_enc_set_complexity(e, 11), TN_ERR_INVALID);
    assert_int_equal(tn_opus_enc_set_complexity(e, 0), TN_OK);
    tn_opus_enc_destroy(e);
    tn_opus_enc_destroy(NULL);
    tn_opus_dec_destroy(NULL);
}

static void test_opus_malformed(void **state)
{
    (void)state;
    char err[256];
    tn_opus_enc_t *e = tn_opus_enc_new(RATE, 24000, err, sizeof(err));
    tn_opus_dec_t *d = tn_opus_dec_new(RATE, err, sizeof(err));
    int16_t *x = tones(320, RATE, 0.5);
    uint8_t pkt[TN_OPUS_MAX_PACKET + 16];
    ssize_t len = tn_opus_enc_encode(e, x, pkt, TN_OPUS_MAX_PACKET);
    assert_true(len > 2);
    int16_t pcm[TN_OPUS_MAX_FRAME];

    assert_int_equal(tn_opus_dec_decode(d, pkt, 0, pcm, TN_ARRAY_LEN(pcm)), -1);
    assert_int_equal(tn_opus_dec_decode(d, NULL, 10, pcm, TN_ARRAY_LEN(pcm)), -1);
    assert_int_equal(tn_opus_dec_decode(d, pkt, TN_OPUS_MAX_PACKET + 1, pcm, TN_ARRAY_LEN(pcm)),
                     -1);
    /* A good packet that does not fit the caller's buffer is refused before decoding. */
    assert_int_equal(tn_opus_dec_decode(d, pkt, (size_t)len, pcm, 100), -1);
    /* Code 3 (arbitrary frame count) without its count byte: truncated. */
    uint8_t c3[1] = {(uint8_t)(pkt[0] | 0x03)};
    assert_int_equal(tn_opus_dec_decode(d, c3, 1, pcm, TN_ARRAY_LEN(pcm)), -1);
    /* Code 1 (two frames of equal size) with an odd payload. */
    uint8_t c1[4] = {(uint8_t)((pkt[0] & 0xFC) | 0x01), 1, 2, 3};
    assert_int_equal(tn_opus_dec_decode(d, c1, 4, pcm, TN_ARRAY_LEN(pcm)), -1);
    /* Code 3 asking for 48 frames of 20 ms (960 ms, more than the 120 ms a packet may hold). */
    uint8_t big[8] = {(uint8_t)((pkt[0] & 0xFC) | 0x03), 48, 0, 0, 0, 0, 0, 0};
    assert_int_equal(tn_opus_dec_decode(d, big, sizeof(big), pcm, TN_ARRAY_LEN(pcm)), -1);
    /* Code 2 with a first-frame length longer than the packet. */
    uint8_t c2[5] = {(uint8_t)((pkt[0] & 0xFC) | 0x02), 200, 1, 2, 3};
    assert_int_equal(tn_opus_dec_decode(d, c2, 5, pcm, TN_ARRAY_LEN(pcm)), -1);

    /* Truncations of a good packet and random garbage never crash nor overflow. */
    for (ssize_t k = 1; k < len; k++) {
        int got = tn_opus_dec_decode(d, pkt, (size_t)k, pcm, 320);
        assert_true(got == -1 || (got > 0 && got <= 320));
    }
    for (int i = 0; i < 2000; i++) {
        size_t n = 1 + (size_t)((uniform() + 1) * 200);
        for (size_t k = 0; k < n; k++)
            pkt[k] = (uint8_t)((uniform() + 1) * 128);
        int got = tn_opus_dec_decode(d, pkt, n, pcm, 960);
        assert_true(got == -1 || (got > 0 && got <= 960));
    }
    /* The decoder still works afterwards. */
    len = tn_opus_enc_encode(e, x, pkt, TN_OPUS_MAX_PACKET);
    assert_int_equal(tn_opus_dec_decode(d, pkt, (size_t)len, pcm, TN_ARRAY_LEN(pcm)), 320);
    free(x);
    tn_opus_enc_destroy(e);
    tn_opus_dec_destroy(d);
}

/* Frequency of a tone from its upward zero crossings (with a little hysteresis). */
static double tone_freq(const int16_t *x, size_t n, int rate)
{
    size_t first = 0, last = 0, count = 0;
    for (size_t i = 1; i < n; i++) {
        if (x[i - 1] < 0 && x[i] >= 0) {
            if (count == 0)
                first = i;
            last = i;
            count++;
        }
    }
    return count > 1 ? (double)(count - 1) * rate / (double)(last - first) : 0;
}

static int16_t *sine(size_t n, int rate, double f, double amp)
{
    int16_t *x = tn_xmalloc(n * sizeof(int16_t));
    for (size_t i = 0; i < n; i++)
        x[i] = (int16_t)lrint(amp * 32767 * sin(2 * PI * f * (double)i / rate));
    return x;
}

static void test_resample(void **state)
{
    (void)state;
    static const int pairs[][2] = {
        {16000, 48000}, {48000, 16000}, {22050, 16000}, {16000, 22050}, {8000, 16000}};
    for (size_t p = 0; p < TN_ARRAY_LEN(pairs); p++) {
        int in = pairs[p][0], out = pairs[p][1];
        size_t n = (size_t)in / 2; /* 0.5 s */
        int16_t *x = sine(n, in, 1000, 0.5);
        size_t m = 0;
        int16_t *y = tn_resample_all(x, n, in, out, &m);
        assert_non_null(y);
        size_t want = (size_t)llround((double)n * out / in);
        assert_int_equal(m, want);
        double f = tone_freq(y + m / 10, m - m / 5, out);
        print_message("resample %d -> %d: %zu -> %zu samples, tone %.1f Hz\n", in, out, n, m, f);
        assert_true(fabs(f - 1000) < 2);
        /* Aligned and level kept: the middle of the output matches a 1 kHz sine at out. */
        int16_t *ref = sine(m, out, 1000, 0.5);
        size_t lag = 0;
        double c = best_corr(ref + m / 4, y + m / 4, m / 2, 4, &lag);
        assert_true(c > 0.99);
        assert_true(fabs(tn_audio_dbfs(y + m / 4, m / 2) - tn_audio_dbfs(ref, m)) < 0.5);
        free(ref);
        free(x);
        free(y);
    }
}

static void test_resample_streaming(void **state)
{
    (void)state;
    char err[256];
    size_t n = 22050;
    int16_t *x = sine(n, 22050, 440, 0.5);
    tn_resampler_t *r = tn_resampler_new(22050, 16000, -1, err, sizeof(err));
    assert_non_null(r);
    int16_t *y = tn_xmalloc((n + 1024) * sizeof(int16_t));
    size_t m = 0;
    for (size_t off = 0; off < n; off += 441) /* 20 ms pieces */
        m += tn_resample(r, x + off, TN_MIN((size_t)441, n - off), y + m, n + 1024 - m);
    tn_resampler_destroy(r);
    /* Streaming keeps the filter's delay: short of n*16000/22050 by at most its latency. */
    assert_in_range(m, 16000 - 200, 16000);
    assert_true(fabs(tone_freq(y + 1000, m - 2000, 16000) - 440) < 1);
    /* An output buffer that is too small is filled and no more. */
    r = tn_resampler_new(22050, 16000, 3, err, sizeof(err));
    assert_int_equal(tn_resample(r, x, n, y, 100), 100);
    tn_resampler_destroy(r);
    assert_null(tn_resampler_new(22050, 16000, 11, err, sizeof(err)));
    assert_null(tn_resampler_new(0, 16000, 5, err, sizeof(err)));
    assert_null(tn_resample_all(x, n, 22050, 10, &m));
    free(x);
    free(y);
}

/* Share of the frames of @p x (after @p warm frames) that the VAD calls speech. */
static double vad_share(const int16_t *x, size_t n, const tn_vad_opts_t *o, size_t warm)
{
    char err[256];
    tn_vad_t *v = tn_vad_new(RATE, 320, o, err, sizeof(err));
    assert_non_null(v);
    int16_t fr[320];
    size_t yes = 0, total = 0;
    for (size_t off = 0, i = 0; off + 320 <= n; off += 320, i++) {
        memcpy(fr, x + off, sizeof(fr));
        bool s = tn_vad_frame(v, fr);
        if (i >= warm) {
            yes += s;
            total++;
        }
    }
    tn_vad_destroy(v);
    return total ? (double)yes / (double)total : 0;
}

static void test_vad(void **state)
{
    (void)state;
    size_t n = 3 * RATE;
    tn_vad_opts_t dn = tn_vad_opts_default(), raw = tn_vad_opts_default();
    raw.denoise = false;
    int16_t *sil = tn_xcalloc(n, sizeof(int16_t));
    int16_t *low = noise(n, -65);
    int16_t *sp = speechlike(n, RATE, 0.5);
    /* Speech over a steady background: the background first (the detector learns it). */
    int16_t *mix = noise(2 * n, -45);
    for (size_t i = 0; i < n; i++)
        mix[n + i] = (int16_t)TN_MAX(-32768, TN_MIN(32767, mix[n + i] + sp[i]));

    double s_sil = vad_share(sil, n, &dn, 0), s_low = vad_share(low, n, &dn, 0);
    double s_sp = vad_share(sp, n, &dn, 10), s_sp_raw = vad_share(sp, n, &raw, 10);
    double s_bg = vad_share(mix, n, &dn, 50); /* background only, after 1 s */
    double s_mix = vad_share(mix + n, n, &dn, 10);
    print_message("vad: silence %.2f, -65 dBFS noise %.2f, speech %.2f (no denoise %.2f), "
                  "-45 dBFS background %.2f, speech over it %.2f\n",
                  s_sil, s_low, s_sp, s_sp_raw, s_bg, s_mix);
    assert_true(s_sil == 0);
    assert_true(s_low == 0);
    assert_true(s_sp > 0.8);
    assert_true(s_sp_raw > 0.8);
    assert_true(s_mix > 0.8);
    assert_true(s_bg < 0.35); /* a steady background is mostly not speech once learned */
    /* The energy floor alone decides silence; a stricter floor silences the speech too. */
    char err[256];
    tn_vad_opts_t strict = dn;
    strict.energy_floor_dbfs = 0;
    assert_true(vad_share(sp, n, &strict, 0) == 0);

    /* quiet_stride: frames under the floor mostly skip speexdsp (they cannot be speech); the
     * decisions on low noise, then speech, then low noise again, stay those of every frame. */
    size_t nq = 3 * n;
    int16_t *q = noise(nq, -65);
    for (size_t i = 0; i < n; i++)
        q[n + i] = sp[i];
    tn_vad_opts_t every = raw, stride = raw;
    stride.quiet_stride = 4;
    tn_vad_t *ve = tn_vad_new(RATE, 320, &every, err, sizeof(err));
    tn_vad_t *vs = tn_vad_new(RATE, 320, &stride, err, sizeof(err));
    assert_non_null(ve);
    assert_non_null(vs);
    size_t differ = 0, speech_e = 0, speech_s = 0;
    for (size_t off = 0; off + 320 <= nq; off += 320) {
        int16_t fe[320], fs[320];
        memcpy(fe, q + off, sizeof(fe));
        memcpy(fs, q + off, sizeof(fs));
        bool de = tn_vad_frame(ve, fe), ds = tn_vad_frame(vs, fs);
        differ += de != ds;
        speech_e += de;
        speech_s += ds;
    }
    print_message("vad quiet_stride 4: %zu of %zu frames decided differently (speech %zu vs %zu)\n",
                  differ, nq / 320, speech_s, speech_e);
    assert_true(speech_e > 0.8 * (double)n / 320);
    assert_true(differ <= 3);
    tn_vad_destroy(ve);
    tn_vad_destroy(vs);
    free(q);

    /* detect_rate: the detector on the frame decimated to 8 kHz decides as the one at 16 kHz on
     * silence, speech and a background (the same shares, within a few frames), and leaves the
     * frame alone; only half the frame's rate, without denoise, is taken. */
    tn_vad_opts_t half = raw;
    half.detect_rate = RATE / 2;
    double h_sil = vad_share(sil, n, &half, 0), h_sp = vad_share(sp, n, &half, 10);
    double h_bg = vad_share(mix, n, &half, 50), r_bg = vad_share(mix, n, &raw, 50);
    double h_mix = vad_share(mix + n, n, &half, 10), r_mix = vad_share(mix + n, n, &raw, 10);
    print_message("vad at 8 kHz: silence %.2f, speech %.2f (16 kHz %.2f), background %.2f "
                  "(%.2f), speech over it %.2f (%.2f)\n",
                  h_sil, h_sp, s_sp_raw, h_bg, r_bg, h_mix, r_mix);
    assert_true(h_sil == 0);
    assert_true(h_sp > 0.8 && fabs(h_sp - s_sp_raw) < 0.05);
    assert_true(fabs(h_bg - r_bg) < 0.05);
    assert_true(fabs(h_mix - r_mix) < 0.05);
    tn_vad_t *vh = tn_vad_new(RATE, 320, &half, err, sizeof(err));
    assert_non_null(vh);
    int16_t fh[320];
    memcpy(fh, sp, sizeof(fh));
    tn_vad_frame(vh, fh);
    assert_memory_equal(fh, sp, sizeof(fh));
    tn_vad_destroy(vh);
    tn_vad_opts_t bad_half = half;
    bad_half.detect_rate = 4000;
    assert_null(tn_vad_new(RATE, 320, &bad_half, err, sizeof(err)));
    bad_half = dn;
    bad_half.detect_rate = RATE / 2; /* denoise writes the frame back at its own rate */
    assert_null(tn_vad_new(RATE, 320, &bad_half, err, sizeof(err)));

    /* Denoise changes the frame in place; without it the frame is left alone. */
    tn_vad_t *v = tn_vad_new(RATE, 320, &raw, err, sizeof(err));
    int16_t fr[320];
    memcpy(fr, low, sizeof(fr));
    tn_vad_frame(v, fr);
    assert_memory_equal(fr, low, sizeof(fr));
    tn_vad_destroy(v);
    tn_vad_destroy(NULL);

    assert_null(tn_vad_new(RATE, 10, NULL, err, sizeof(err)));
    assert_null(tn_vad_new(4000, 80, NULL, err, sizeof(err)));
    tn_vad_opts_t bad = dn;
    bad.prob_start = 101;
    assert_null(tn_vad_new(RATE, 320, &bad, err, sizeof(err)));
    free(sil);
    free(low);
    free(sp);
    free(mix);
}

static void test_dbfs(void **state)
{
    (void)state;
    int16_t *x = sine(RATE, RATE, 1000, 0.5);
    assert_true(fabs(tn_audio_dbfs(x, RATE) - (20 * log10(0.5 / sqrt(2)))) < 0.05);
    int16_t sq[4] = {32767, -32767, 32767, -32767};
    assert_true(fabs(tn_audio_dbfs(sq, 4)) < 0.01);
    int16_t z[4] = {0};
    assert_true(tn_audio_dbfs(z, 4) == -100);
    assert_true(tn_audio_dbfs(NULL, 0) == -100);
    free(x);
}

/* A little-endian WAV image built field by field, for the parser's error paths. */
typedef struct {
    uint8_t b[512];
    size_t n;
} img_t;

static void put(img_t *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}
static void put32(img_t *m, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(m, b, 4);
}
static void put16(img_t *m, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(m, b, 2);
}
static void fmt_chunk(img_t *m, uint16_t fmt, uint16_t ch, uint32_t rate, uint16_t bits)
{
    put(m, "fmt ", 4);
    put32(m, 16);
    put16(m, fmt);
    put16(m, ch);
    put32(m, rate);
    put32(m, rate * ch * bits / 8);
    put16(m, (uint16_t)(ch * bits / 8));
    put16(m, bits);
}
static void riff(img_t *m)
{
    m->n = 0;
    put(m, "RIFF", 4);
    put32(m, 0);
    put(m, "WAVE", 4);
}

static tn_err_t decode(const img_t *m, int16_t **pcm, size_t *n, int *rate, char *err)
{
    return tn_wav_decode(m->b, m->n, pcm, n, rate, err, 256);
}

static void test_wav(void **state)
{
    (void)state;
    char err[256];
    char *dir = tn_test_mkdtemp("audio");
    char *path = tn_xasprintf("%s/a.wav", dir);
    int16_t *x = tones(4000, RATE, 0.9);
    assert_int_equal(tn_wav_write(path, x, 4000, RATE, err, sizeof(err)), TN_OK);
    int16_t *y = NULL;
    size_t n = 0;
    int rate = 0;
    assert_int_equal(tn_wav_read(path, &y, &n, &rate, err, sizeof(err)), TN_OK);
    assert_int_equal(n, 4000);
    assert_int_equal(rate, RATE);
    assert_memory_equal(x, y, n * sizeof(int16_t));
    free(y);
    size_t len = 0;
    uint8_t *img = tn_wav_encode(x, 4000, RATE, &len);
    assert_int_equal(len, 44 + 8000);
    assert_memory_equal(img, "RIFF", 4);
    free(img);

    /* Missing file; a path we cannot create. */
    char *missing = tn_xasprintf("%s/none.wav", dir);
    assert_int_equal(tn_wav_read(missing, &y, &n, &rate, err, sizeof(err)), TN_ERR_IO);
    char *nodir = tn_xasprintf("%s/no/such/dir.wav", dir);
    assert_int_equal(tn_wav_write(nodir, x, 10, RATE, err, sizeof(err)), TN_ERR_IO);
    assert_int_equal(tn_wav_write(path, x, 10, 10, err, sizeof(err)), TN_ERR_INVALID);

    /* Stereo is mixed down; unknown chunks (odd sizes padded) are skipped. */
    img_t m;
    riff(&m);
    put(&m, "LIST", 4);
    put32(&m, 3);
    put(&m, "abc\0", 4);
    fmt_chunk(&m, 1, 2, 8000, 16);
    put(&m, "data", 4);
    put32(&m, 8);
    int16_t st[4] = {1000, 3000, -2000, -4000};
    put(&m, st, 8);
    assert_int_equal(decode(&m, &y, &n, &rate, err), TN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rate, 8000);
    assert_int_equal(y[0], 2000);
    assert_int_equal(y[1], -3000);
    free(y);

    /* A streaming writer's unknown data size runs to the end of the file. */
    riff(&m);
    fmt_chunk(&m, 1, 1, 16000, 16);
    put(&m, "data", 4);
    put32(&m, 0xFFFFFFFFu);
    put(&m, st, 6);
    assert_int_equal(decode(&m, &y, &n, &rate, err), TN_OK);
    assert_int_equal(n, 3);
    free(y);

    /* WAVE_FORMAT_EXTENSIBLE with the PCM subformat. */
    riff(&m);
    put(&m, "fmt ", 4);
    put32(&m, 40);
    put16(&m, 0xFFFE);
    put16(&m, 1);
    put32(&m, 16000);
    put32(&m, 32000);
    put16(&m, 2);
    put16(&m, 16);
    put16(&m, 22);
    put16(&m, 16);
    put32(&m, 4);
    static const uint8_t guid[16] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
                                     0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
    put(&m, guid, 16);
    put(&m, "data", 4);
    put32(&m, 4);
    put(&m, st, 4);
    assert_int_equal(decode(&m, &y, &n, &rate, err), TN_OK);
    assert_int_equal(n, 2);
    free(y);

    /* Rejections: each with a reason. */
    struct {
        const char *why;
        uint16_t fmt, ch, bits;
        uint32_t rate, dsize;
        bool data_first, no_data;
    } bad[] = {
        {"8-bit", 1, 1, 8, 16000, 4, false, false},
        {"float", 3, 1, 16, 16000, 4, false, false},
        {"6 channels", 1, 6, 16, 16000, 4, false, false},
        {"rate 0", 1, 1, 16, 0, 4, false, false},
        {"truncated data", 1, 1, 16, 16000, 4000, false, false},
        {"data before fmt", 1, 1, 16, 16000, 4, true, false},
        {"no data", 1, 1, 16, 16000, 4, false, true},
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++) {
        riff(&m);
        if (bad[i].data_first) {
            put(&m, "data", 4);
            put32(&m, 4);
            put(&m, st, 4);
        }
        fmt_chunk(&m, bad[i].fmt, bad[i].ch, bad[i].rate, bad[i].bits);
        if (!bad[i].data_first && !bad[i].no_data) {
            put(&m, "data", 4);
            put32(&m, bad[i].dsize);
            put(&m, st, 4);
        }
        y = NULL;
        tn_err_t rc = decode(&m, &y, &n, &rate, err);
        print_message("wav %s: %s\n", bad[i].why, err);
        assert_int_equal(rc, TN_ERR_PARSE);
        assert_null(y);
    }
    /* Not RIFF, empty, a chunk size that runs past the end, a short fmt chunk. */
    assert_int_equal(tn_wav_decode((const uint8_t *)"hello world!", 12, &y, &n, &rate, err, 256),
                     TN_ERR_PARSE);
    assert_int_equal(tn_wav_decode(NULL, 0, &y, &n, &rate, err, 256), TN_ERR_PARSE);
    riff(&m);
    put(&m, "junk", 4);
    put32(&m, 0xFFFFFFF0u);
    put(&m, "xxxxxxxx", 8);
    assert_int_equal(decode(&m, &y, &n, &rate, err), TN_ERR_PARSE);
    riff(&m);
    put(&m, "fmt ", 4);
    put32(&m, 8);
    put32(&m, 0x00010001);
    put32(&m, 16000);
    assert_int_equal(decode(&m, &y, &n, &rate, err), TN_ERR_PARSE);
    /* Every prefix of a good file is either rejected or reads fewer samples, never more. */
    img = tn_wav_encode(x, 100, RATE, &len);
    for (size_t k = 0; k < len; k++) {
        y = NULL;
        tn_err_t rc = tn_wav_decode(img, k, &y, &n, &rate, err, sizeof(err));
        assert_true(rc == TN_ERR_PARSE || (rc == TN_OK && n == 0));
        free(y);
    }
    free(img);

    free(x);
    free(path);
    free(missing);
    free(nodir);
    tn_test_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opus_round_trip),
        cmocka_unit_test(test_opus_bad_args),
        cmocka_unit_test(test_opus_malformed),
        cmocka_unit_test(test_resample),
        cmocka_unit_test(test_resample_streaming),
        cmocka_unit_test(test_vad),
        cmocka_unit_test(test_dbfs),
        cmocka_unit_test(test_wav),
    };
    return cmocka_run_group_tests_name("audio", tests, NULL, NULL);
}
