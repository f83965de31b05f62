/* Audio for voice sessions: Opus (libopus), resampling and VAD (libspeexdsp), dBFS and WAV. */
#include "taina/audio.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <opus.h>
#include <speex/speex_preprocess.h>
#include <speex/speex_resampler.h>

#include "taina/log.h"
#include "taina/mem.h"

#define WAV_MAX_FILE   (256u << 20) /* bytes: some 2 hours of 16 kHz mono */
#define WAV_HEADER     44
#define RATE_MIN       1000
#define RATE_MAX       384000
#define DEF_BITRATE    24000
#define DEF_RS_QUALITY 5

bool tn_opus_rate_ok(int rate)
{
    return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

/* ============================================================================================ */
/* Opus                                                                                         */

struct tn_opus_dec {
    OpusDecoder *od;
    int rate;
};

tn_opus_dec_t *tn_opus_dec_new(int rate, char *errbuf, size_t errlen)
{
    if (!tn_opus_rate_ok(rate)) {
        snprintf(errbuf, errlen,
                 "opus: sample rate %d is not one of 8000, 12000, 16000, 24000, 48000", rate);
        return NULL;
    }
    int err = OPUS_OK;
    OpusDecoder *od = opus_decoder_create(rate, 1, &err);
    if (!od || err != OPUS_OK) {
        snprintf(errbuf, errlen, "opus: cannot create a decoder: %s", opus_strerror(err));
        return NULL;
    }
    tn_opus_dec_t *d = tn_xcalloc(1, sizeof(*d));
    d->od = od;
    d->rate = rate;
    return d;
}

void tn_opus_dec_destroy(tn_opus_dec_t *d)
{
    if (!d)
        return;
    opus_decoder_destroy(d->od);
    free(d);
}

int tn_opus_dec_decode(tn_opus_dec_t *d, const uint8_t *pkt, size_t len, int16_t *pcm, size_t max)
{
    TN_ASSERT(d && pcm);
    if (!pkt || len == 0 || len > TN_OPUS_MAX_PACKET)
        return -1;
    /* Check the packet's own framing (TOC, frame count, lengths) and its duration before
     * decoding, so that a packet can never ask for more samples than @p pcm holds. */
    opus_int16 sizes[48];
    const unsigned char *frames[48];
    unsigned char toc = 0;
    int nf = opus_packet_parse(pkt, (opus_int32)len, &toc, frames, sizes, NULL);
    if (nf <= 0)
        return -1;
    int ns = opus_packet_get_nb_samples(pkt, (opus_int32)len, d->rate);
    if (ns <= 0 || (size_t)ns > max || ns > d->rate * 120 / 1000)
        return -1;
    int got = opus_decode(d->od, pkt, (opus_int32)len, pcm, ns, 0);
    if (got < 0) {
        TN_LOG(TN_LOG_DEBUG, "opus: packet of %zu bytes not decoded: %s", len, opus_strerror(got));
        return -1;
    }
    return got;
}

struct tn_opus_enc {
    OpusEncoder *oe;
    int rate;
    size_t frame;
};

tn_opus_enc_t *tn_opus_enc_new(int rate, int bitrate, char *errbuf, size_t errlen)
{
    if (!tn_opus_rate_ok(rate)) {
        snprintf(errbuf, errlen,
                 "opus: sample rate %d is not one of 8000, 12000, 16000, 24000, 48000", rate);
        return NULL;
    }
    if (bitrate == 0)
        bitrate = DEF_BITRATE;
    if (bitrate < 500 || bitrate > 512000) {
        snprintf(errbuf, errlen, "opus: bitrate %d is outside 500..512000 bits/s", bitrate);
        return NULL;
    }
    int err = OPUS_OK;
    OpusEncoder *oe = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, &err);
    if (!oe || err != OPUS_OK) {
        snprintf(errbuf, errlen, "opus: cannot create an encoder: %s", opus_strerror(err));
        return NULL;
    }
    opus_encoder_ctl(oe, OPUS_SET_BITRATE(bitrate));
    opus_encoder_ctl(oe, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    opus_encoder_ctl(oe, OPUS_SET_COMPLEXITY(TN_OPUS_DEFAULT_COMPLEXITY));
    tn_opus_enc_t *e = tn_xcalloc(1, sizeof(*e));
    e->oe = oe;
    e->rate = rate;
    e->frame = (size_t)rate / 50;
    return e;
}

void tn_opus_enc_destroy(tn_opus_enc_t *e)
{
    if (!e)
        return;
    opus_encoder_destroy(e->oe);
    free(e);
}

size_t tn_opus_enc_frame(const tn_opus_enc_t *e)
{
    return e->frame;
}

tn_err_t tn_opus_enc_set_complexity(tn_opus_enc_t *e, int complexity)
{
    TN_ASSERT(e);
    if (complexity < 0 || complexity > 10)
        return TN_ERR_INVALID;
    return opus_encoder_ctl(e->oe, OPUS_SET_COMPLEXITY(complexity)) == OPUS_OK ? TN_OK : TN_ERR;
}

ssize_t tn_opus_enc_encode(tn_opus_enc_t *e, const int16_t *pcm, uint8_t *out, size_t max)
{
    TN_ASSERT(e && pcm && out);
    opus_int32 cap = (opus_int32)TN_MIN(max, (size_t)TN_OPUS_MAX_PACKET);
    int n = opus_encode(e->oe, pcm, (int)e->frame, out, cap);
    if (n < 0) {
        TN_LOG(TN_LOG_WARN, "opus: encode failed: %s", opus_strerror(n));
        return -1;
    }
    return n;
}

/* ============================================================================================ */
/* Resampling                                                                                   */

struct tn_resampler {
    SpeexResamplerState *st;
    int in_rate, out_rate;
};

tn_resampler_t *tn_resampler_new(int in_rate, int out_rate, int quality, char *errbuf,
                                 size_t errlen)
{
    if (quality == -1)
        quality = DEF_RS_QUALITY;
    if (in_rate < RATE_MIN || in_rate > RATE_MAX || out_rate < RATE_MIN || out_rate > RATE_MAX) {
        snprintf(errbuf, errlen, "resampler: rates must be %d..%d Hz (got %d -> %d)", RATE_MIN,
                 RATE_MAX, in_rate, out_rate);
        return NULL;
    }
    if (quality < 0 || quality > 10) {
        snprintf(errbuf, errlen, "resampler: quality %d is outside 0..10", quality);
        return NULL;
    }
    int err = 0;
    SpeexResamplerState *st =
        speex_resampler_init(1, (spx_uint32_t)in_rate, (spx_uint32_t)out_rate, quality, &err);
    if (!st || err != RESAMPLER_ERR_SUCCESS) {
        snprintf(errbuf, errlen, "resampler: %s", speex_resampler_strerror(err));
        if (st)
            speex_resampler_destroy(st);
        return NULL;
    }
    tn_resampler_t *r = tn_xcalloc(1, sizeof(*r));
    r->st = st;
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    return r;
}

void tn_resampler_destroy(tn_resampler_t *r)
{
    if (!r)
        return;
    speex_resampler_destroy(r->st);
    free(r);
}

size_t tn_resample(tn_resampler_t *r, const int16_t *in, size_t n, int16_t *out, size_t max)
{
    TN_ASSERT(r && (in || n == 0) && (out || max == 0));
    size_t done_in = 0, done_out = 0;
    while (done_in < n && done_out < max) {
        spx_uint32_t il = (spx_uint32_t)TN_MIN(n - done_in, (size_t)1 << 20);
        spx_uint32_t ol = (spx_uint32_t)TN_MIN(max - done_out, (size_t)1 << 20);
        speex_resampler_process_int(r->st, 0, in + done_in, &il, out + done_out, &ol);
        if (il == 0 && ol == 0)
            break;
        done_in += il;
        done_out += ol;
    }
    return done_out;
}

int16_t *tn_resample_all(const int16_t *in, size_t n, int in_rate, int out_rate, size_t *out_n)
{
    TN_ASSERT((in || n == 0) && out_n);
    char err[128];
    size_t want =
        (size_t)(((uint64_t)n * (uint64_t)out_rate + (uint64_t)in_rate / 2) / (uint64_t)in_rate);
    int16_t *out = tn_xmalloc((want + 1) * sizeof(int16_t));
    *out_n = 0;
    tn_resampler_t *r = tn_resampler_new(in_rate, out_rate, -1, err, sizeof(err));
    if (!r) {
        TN_LOG(TN_LOG_WARN, "%s", err);
        free(out);
        return NULL;
    }
    /* Drop the filter's leading delay and push zeros after the signal to flush its tail, so
     * the output lines up with the input and has exactly n * out_rate / in_rate samples. */
    speex_resampler_skip_zeros(r->st);
    size_t got = tn_resample(r, in, n, out, want);
    int lat = speex_resampler_get_input_latency(r->st);
    if (lat > 0 && got < want) {
        int16_t *zeros = tn_xcalloc((size_t)lat, sizeof(int16_t));
        got += tn_resample(r, zeros, (size_t)lat, out + got, want - got);
        free(zeros);
    }
    tn_resampler_destroy(r);
    *out_n = got;
    return out;
}

/* ============================================================================================ */
/* Voice activity                                                                               */

tn_vad_opts_t tn_vad_opts_default(void)
{
    return (tn_vad_opts_t){.denoise = true,
                           .prob_start = 80,
                           .prob_continue = 65,
                           .energy_floor_dbfs = -50,
                           .quiet_stride = 1,
                           .detect_rate = 0};
}

/* Half-band low-pass (-1 0 9 16 9 0 -1)/32 and decimation by 2. @p b holds HB_HIST samples of the
 * previous frame, then the @p n new ones; @p out gets n/2. The filter's 1.5-sample delay does
 * not matter to a detector that decides per 20 ms. */
#define HB_HIST 5
static void halfband_decimate(const int16_t *b, size_t n, int16_t *out)
{
    for (size_t i = 0; i < n / 2; i++) {
        const int16_t *x = b + 2 * i; /* centre x[3] */
        int32_t acc = 16 * (int32_t)x[3] + 9 * ((int32_t)x[2] + x[4]) - ((int32_t)x[0] + x[6]);
        acc /= 32;
        out[i] = (int16_t)(acc > INT16_MAX ? INT16_MAX : acc < INT16_MIN ? INT16_MIN : acc);
    }
}

struct tn_vad {
    SpeexPreprocessState *st;
    tn_vad_opts_t o;
    size_t frame;
    int16_t *scratch; /* the frame the detector may change, when denoise is off */
    int16_t *hb;      /* decimating: HB_HIST samples of the last frame, then this one; else NULL */
    bool in_speech;   /* the probability alone said speech on the last frame */
    int last_prob;
    unsigned seen, quiet; /* frames run through speexdsp; quiet frames since the last one run */
};

tn_vad_t *tn_vad_new(int rate, size_t frame, const tn_vad_opts_t *o, char *errbuf, size_t errlen)
{
    tn_vad_opts_t opts = o ? *o : tn_vad_opts_default();
    if (rate < 8000 || rate > 48000) {
        snprintf(errbuf, errlen, "vad: sample rate %d is outside 8000..48000", rate);
        return NULL;
    }
    if (frame < (size_t)rate / 200 || frame > (size_t)rate / 10) {
        snprintf(errbuf, errlen, "vad: a frame of %zu samples is not 5..100 ms at %d Hz", frame,
                 rate);
        return NULL;
    }
    if (opts.quiet_stride < 1)
        opts.quiet_stride = 1;
    if (opts.prob_start < 0 || opts.prob_start > 100 || opts.prob_continue < 0 ||
        opts.prob_continue > 100) {
        snprintf(errbuf, errlen, "vad: probabilities must be 0..100 percent");
        return NULL;
    }
    if (opts.detect_rate && opts.detect_rate != rate &&
        (opts.denoise || opts.detect_rate * 2 != rate || frame % 2)) {
        snprintf(errbuf, errlen,
                 "vad: the detector runs at %d Hz or at half that without denoise (asked: %d Hz)",
                 rate, opts.detect_rate);
        return NULL;
    }
    bool half = opts.detect_rate && opts.detect_rate != rate;
    SpeexPreprocessState *st =
        speex_preprocess_state_init((int)(half ? frame / 2 : frame), half ? rate / 2 : rate);
    if (!st) {
        snprintf(errbuf, errlen, "vad: speex_preprocess_state_init failed");
        return NULL;
    }
    /* SPEEX_PREPROCESS_SET_VAD would make speexdsp print a warning on stderr for every
     * detector (its VAD is "a hack pending a rewrite"): the same start/continue hysteresis is
     * applied here on the speech probability the preprocessor computes anyway. */
    int dn = opts.denoise ? 1 : 0;
    speex_preprocess_ctl(st, SPEEX_PREPROCESS_SET_DENOISE, &dn);
    tn_vad_t *v = tn_xcalloc(1, sizeof(*v));
    v->st = st;
    v->o = opts;
    v->frame = frame;
    if (half) {
        v->hb = tn_xcalloc(HB_HIST + frame, sizeof(int16_t));
        v->scratch = tn_xmalloc(frame / 2 * sizeof(int16_t));
    } else if (!opts.denoise) {
        v->scratch = tn_xmalloc(frame * sizeof(int16_t));
    }
    return v;
}

void tn_vad_destroy(tn_vad_t *v)
{
    if (!v)
        return;
    speex_preprocess_state_destroy(v->st);
    free(v->scratch);
    free(v->hb);
    free(v);
}

bool tn_vad_frame(tn_vad_t *v, int16_t *pcm)
{
    TN_ASSERT(v && pcm);
    /* The floor is taken on the frame as it came, before any denoising. The detector still
     * sees quiet frames, so its noise estimate follows the background. */
    bool loud = tn_audio_dbfs(pcm, v->frame) >= (double)v->o.energy_floor_dbfs;
    if (v->hb) { /* the filter's history follows every frame, also those the detector skips */
        memmove(v->hb, v->hb + v->frame, HB_HIST * sizeof(int16_t));
        memcpy(v->hb + HB_HIST, pcm, v->frame * sizeof(int16_t));
    }
    /* speexdsp is most of a voice session's input cost (more than Opus decoding): a frame under
     * the floor is not speech whatever it says, so once the estimate has settled (50 frames)
     * only every quiet_stride-th such frame goes through it, to follow the background. */
    if (!loud && !v->o.denoise && v->o.quiet_stride > 1 && v->seen >= 50 &&
        ++v->quiet % (unsigned)v->o.quiet_stride != 0)
        return false;
    if (v->seen < 50)
        v->seen++;
    int16_t *buf = pcm;
    if (v->hb) {
        halfband_decimate(v->hb, v->frame, v->scratch);
        buf = v->scratch;
    } else if (v->scratch) {
        memcpy(v->scratch, pcm, v->frame * sizeof(int16_t));
        buf = v->scratch;
    }
    speex_preprocess_run(v->st, buf);
    spx_int32_t prob = 0;
    speex_preprocess_ctl(v->st, SPEEX_PREPROCESS_GET_PROB, &prob);
    v->last_prob = (int)prob;
    bool speech = prob > (v->in_speech ? v->o.prob_continue : v->o.prob_start);
    v->in_speech = speech;
    return loud && speech;
}

int tn_vad_last_prob(const tn_vad_t *v)
{
    return v->last_prob;
}

/* ============================================================================================ */
/* Level                                                                                        */

double tn_audio_dbfs(const int16_t *pcm, size_t n)
{
    if (!pcm || n == 0)
        return -100.0;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)pcm[i] * (double)pcm[i];
    double rms = sqrt(sum / (double)n);
    if (rms <= 0)
        return -100.0;
    double db = 20.0 * log10(rms / 32768.0);
    return db < -100.0 ? -100.0 : db;
}

/* ============================================================================================ */
/* WAV                                                                                          */

static uint32_t rd_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void wr_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void wr_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* The GUID tail of KSDATAFORMAT_SUBTYPE_PCM after its first two bytes (0x0001). */
static const uint8_t PCM_GUID_TAIL[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                          0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

tn_err_t tn_wav_decode(const uint8_t *buf, size_t len, int16_t **pcm, size_t *n, int *rate,
                       char *errbuf, size_t errlen)
{
    TN_ASSERT(pcm && n && rate && (buf || len == 0));
    *pcm = NULL;
    *n = 0;
    *rate = 0;
    if (len < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0) {
        snprintf(errbuf, errlen, "wav: not a RIFF/WAVE file");
        return TN_ERR_PARSE;
    }
    bool have_fmt = false;
    unsigned channels = 0;
    uint32_t srate = 0;
    size_t off = 12;
    /* Walk the chunks; each one is bounds-checked against the buffer, odd sizes are padded. */
    while (off + 8 <= len) {
        const uint8_t *id = buf + off;
        uint32_t size = rd_le32(buf + off + 4);
        size_t body = off + 8;
        size_t rest = len - body;
        if (memcmp(id, "fmt ", 4) == 0) {
            if (size < 16 || size > rest) {
                snprintf(errbuf, errlen, "wav: bad fmt chunk of %u bytes", size);
                return TN_ERR_PARSE;
            }
            const uint8_t *f = buf + body;
            uint16_t fmt = rd_le16(f);
            channels = rd_le16(f + 2);
            srate = rd_le32(f + 4);
            uint16_t align = rd_le16(f + 12);
            uint16_t bits = rd_le16(f + 14);
            if (fmt == 0xFFFE) { /* WAVE_FORMAT_EXTENSIBLE: the real format is the GUID */
                if (size < 40 || rd_le16(f + 24) != 1 ||
                    memcmp(f + 26, PCM_GUID_TAIL, sizeof(PCM_GUID_TAIL)) != 0) {
                    snprintf(errbuf, errlen, "wav: extensible format that is not PCM");
                    return TN_ERR_PARSE;
                }
                fmt = 1;
            }
            if (fmt != 1) {
                snprintf(errbuf, errlen, "wav: format %u is not PCM", fmt);
                return TN_ERR_PARSE;
            }
            if (bits != 16) {
                snprintf(errbuf, errlen, "wav: %u-bit samples (only 16-bit PCM is read)", bits);
                return TN_ERR_PARSE;
            }
            if (channels != 1 && channels != 2) {
                snprintf(errbuf, errlen, "wav: %u channels (only mono and stereo are read)",
                         channels);
                return TN_ERR_PARSE;
            }
            if (align != channels * 2) {
                snprintf(errbuf, errlen, "wav: block align %u for %u channels of 16 bits", align,
                         channels);
                return TN_ERR_PARSE;
            }
            if (srate < RATE_MIN || srate > RATE_MAX) {
                snprintf(errbuf, errlen, "wav: sample rate %u is outside %d..%d", srate, RATE_MIN,
                         RATE_MAX);
                return TN_ERR_PARSE;
            }
            have_fmt = true;
        } else if (memcmp(id, "data", 4) == 0) {
            if (!have_fmt) {
                snprintf(errbuf, errlen, "wav: data chunk before the fmt chunk");
                return TN_ERR_PARSE;
            }
            /* 0xFFFFFFFF is what streaming writers leave when they cannot seek back: the
             * data then runs to the end of the file. Any other size past the end is a
             * truncated file. */
            size_t dlen = size;
            if (size == 0xFFFFFFFFu) {
                dlen = rest;
            } else if (size > rest) {
                snprintf(errbuf, errlen, "wav: truncated: data chunk of %u bytes, %zu present",
                         size, rest);
                return TN_ERR_PARSE;
            }
            size_t frames = dlen / (channels * 2);
            const uint8_t *d = buf + body;
            int16_t *out = tn_xmalloc((frames ? frames : 1) * sizeof(int16_t));
            for (size_t i = 0; i < frames; i++) {
                if (channels == 1) {
                    out[i] = (int16_t)rd_le16(d + 2 * i);
                } else {
                    int32_t l = (int16_t)rd_le16(d + 4 * i);
                    int32_t r = (int16_t)rd_le16(d + 4 * i + 2);
                    out[i] = (int16_t)((l + r) / 2);
                }
            }
            *pcm = out;
            *n = frames;
            *rate = (int)srate;
            return TN_OK;
        }
        size_t step = (size_t)size + (size & 1);
        if (step > rest)
            break;
        off = body + step;
    }
    snprintf(errbuf, errlen, "wav: %s", have_fmt ? "no data chunk" : "no fmt chunk");
    return TN_ERR_PARSE;
}

tn_err_t tn_wav_read(const char *path, int16_t **pcm, size_t *n, int *rate, char *errbuf,
                     size_t errlen)
{
    TN_ASSERT(path && pcm && n && rate);
    tn_err_t rc = TN_ERR_IO;
    uint8_t *buf = NULL;
    *pcm = NULL;
    *n = 0;
    *rate = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(errbuf, errlen, "wav: cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    size_t cap = 1 << 16, len = 0;
    buf = tn_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= WAV_MAX_FILE) {
                snprintf(errbuf, errlen, "wav: %s is larger than %u bytes", path, WAV_MAX_FILE);
                rc = TN_ERR_TOO_LARGE;
                goto out;
            }
            cap *= 2;
            buf = tn_xrealloc(buf, cap);
        }
        size_t k = fread(buf + len, 1, cap - len, fp);
        len += k;
        if (k == 0) {
            if (ferror(fp)) {
                snprintf(errbuf, errlen, "wav: cannot read %s: %s", path, strerror(errno));
                goto out;
            }
            break;
        }
    }
    rc = tn_wav_decode(buf, len, pcm, n, rate, errbuf, errlen);
out:
    if (fp)
        fclose(fp);
    free(buf);
    return rc;
}

uint8_t *tn_wav_encode(const int16_t *pcm, size_t n, int rate, size_t *len)
{
    TN_ASSERT((pcm || n == 0) && len && rate > 0);
    TN_ASSERT(n <= (0xFFFFFFFFu - WAV_HEADER) / 2);
    size_t dlen = n * 2;
    uint8_t *b = tn_xmalloc(WAV_HEADER + dlen);
    memcpy(b, "RIFF", 4);
    wr_le32(b + 4, (uint32_t)(36 + dlen));
    memcpy(b + 8, "WAVEfmt ", 8);
    wr_le32(b + 16, 16);
    wr_le16(b + 20, 1);
    wr_le16(b + 22, 1);
    wr_le32(b + 24, (uint32_t)rate);
    wr_le32(b + 28, (uint32_t)rate * 2);
    wr_le16(b + 32, 2);
    wr_le16(b + 34, 16);
    memcpy(b + 36, "data", 4);
    wr_le32(b + 40, (uint32_t)dlen);
    for (size_t i = 0; i < n; i++)
        wr_le16(b + WAV_HEADER + 2 * i, (uint16_t)pcm[i]);
    *len = WAV_HEADER + dlen;
    return b;
}

tn_err_t tn_wav_write(const char *path, const int16_t *pcm, size_t n, int rate, char *errbuf,
                      size_t errlen)
{
    TN_ASSERT(path);
    if (rate < RATE_MIN || rate > RATE_MAX || n > (0xFFFFFFFFu - WAV_HEADER) / 2) {
        snprintf(errbuf, errlen, "wav: cannot write %zu samples at %d Hz", n, rate);
        return TN_ERR_INVALID;
    }
    size_t len = 0;
    uint8_t *b = tn_wav_encode(pcm, n, rate, &len);
    tn_err_t rc = TN_ERR_IO;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        snprintf(errbuf, errlen, "wav: cannot create %s: %s", path, strerror(errno));
        goto out;
    }
    if (fwrite(b, 1, len, fp) != len) {
        snprintf(errbuf, errlen, "wav: cannot write %s: %s", path, strerror(errno));
        fclose(fp);
        goto out;
    }
    if (fclose(fp) != 0) {
        snprintf(errbuf, errlen, "wav: cannot write %s: %s", path, strerror(errno));
        goto out;
    }
    rc = TN_OK;
out:
    free(b);
    return rc;
}
