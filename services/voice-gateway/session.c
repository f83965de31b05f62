/* voice-gateway: one session on the loop thread. Opus packets are decoded at 16 kHz whatever the
 * client's rate (Opus decodes any packet at any rate), cut into 20 ms frames, and run through
 * the voice activity detector; an utterance starts at the first voiced frame (with a short
 * pre-roll) and ends after the configured silence or at the maximum length, trimmed to its last
 * voiced frame. Speech while a reply is being prepared or played interrupts it (barge-in). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/log.h"
#include "taina/mem.h"
#include "taina/trace.h"
#include "voice.h"

#define RATE  16000 /* processing rate */
#define FRAME 320   /* 20 ms at RATE */

vg_session_t *vg_session_new(vg_t *g, tn_ws_conn_t *conn, const char *tenant, const char *key)
{
    vg_session_t *s = tn_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    atomic_init(&s->gen, 1);
    s->g = g;
    s->conn = tn_ws_conn_keep(conn);
    tn_uuid4(s->id, sizeof(s->id));
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
    if (key)
        s->rag_auth = tn_xasprintf("Authorization: Bearer %s", key);
    s->opened_us = tn_ws_now_us();
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

vg_session_t *vg_session_keep(vg_session_t *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void vg_session_release(vg_session_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    tn_ws_conn_release(s->conn);
    tn_opus_dec_destroy(s->dec);
    tn_opus_enc_destroy(s->enc);
    vg_playout_free(s->play_head);
    tn_vad_destroy(s->vad);
    free(s->pcm);
    free(s->vadbuf);
    free(s->utt);
    free(s->ring);
    if (s->rag_auth) {
        memset(s->rag_auth, 0, strlen(s->rag_auth)); /* the caller's key */
        free(s->rag_auth);
    }
    free(s->citizen_name);
    free(s->citizen_id);
    free(s->citizen_phone);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void vg_session_set_citizen(vg_session_t *s, const json_t *c)
{
    if (!json_is_object(c))
        return;
    const char *name = json_string_value(json_object_get(c, "name"));
    const char *idn = json_string_value(json_object_get(c, "id_number"));
    const char *phone = json_string_value(json_object_get(c, "phone"));
    pthread_mutex_lock(&s->mu);
    if (name) {
        free(s->citizen_name);
        s->citizen_name = tn_xstrdup(name);
    }
    if (idn) {
        free(s->citizen_id);
        s->citizen_id = tn_xstrdup(idn);
    }
    if (phone) {
        free(s->citizen_phone);
        s->citizen_phone = tn_xstrdup(phone);
    }
    pthread_mutex_unlock(&s->mu);
}

bool vg_session_start(vg_session_t *s, const char *lang, int rate, const json_t *citizen)
{
    vg_t *g = s->g;
    const vg_cfg_t *c = g->cfg;
    char err[256];
    tn_vad_opts_t vo = tn_vad_opts_default();
    vo.denoise = c->vad_denoise;
    vo.prob_start = (int)c->vad_prob_start;
    vo.prob_continue = (int)c->vad_prob_continue;
    vo.energy_floor_dbfs = (int)c->vad_floor_dbfs;
    vo.quiet_stride = (int)c->vad_quiet_stride;
    vo.detect_rate = c->vad_half_rate && !c->vad_denoise ? RATE / 2 : 0;
    if (!(s->dec = tn_opus_dec_new(RATE, err, sizeof(err))) ||
        !(s->vad = tn_vad_new(RATE, FRAME, &vo, err, sizeof(err)))) {
        vg_send_error(s, "internal", "cannot start the audio path: %s", err);
        tn_ws_conn_close(s->conn, TN_WS_CLOSE_INTERNAL, "audio path");
        return false;
    }
    snprintf(s->lang, sizeof(s->lang), "%s", lang);
    s->rate = rate;
    s->frame = (size_t)rate / 50;
    s->pcm = tn_xmalloc(TN_OPUS_MAX_FRAME * sizeof(int16_t));
    s->vadbuf = tn_xmalloc(FRAME * sizeof(int16_t));
    s->ring_frames = (size_t)(c->preroll_ms / 20);
    s->ring = tn_xcalloc(s->ring_frames + 1, FRAME * sizeof(int16_t));
    s->utt_cap = (size_t)(c->max_utterance_ms / 20 + s->ring_frames + 2) * FRAME;
    s->utt = tn_xmalloc(s->utt_cap * sizeof(int16_t));
    vg_session_set_citizen(s, citizen);
    s->started = true;
    vg_send_json(s, json_pack("{s:s, s:s}", "type", "ready", "session_id", s->id));
    vg_event(s, "start", json_pack("{s:i}", "sample_rate", rate));
    return true;
}

bool vg_session_busy(vg_session_t *s)
{
    return tn_ws_now_us() < atomic_load(&s->busy_until_us);
}

void vg_session_interrupt(vg_session_t *s)
{
    pthread_mutex_lock(&s->mu); /* the playout checks the generation and sends under mu */
    unsigned old = atomic_fetch_add(&s->gen, 1);
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->busy_until_us, 0);
    size_t dropped = tn_ws_conn_cancel(s->conn, old);
    atomic_fetch_add(&s->interruptions, 1);
    tn_metric_add(s->g->m.interrupts, TN_NOLABELS, 1);
    vg_send_json(s, json_pack("{s:s}", "type", "interrupted"));
    vg_event(s, "interrupted", json_pack("{s:I}", "dropped_packets", (json_int_t)dropped));
}

/* Hand a turn to the pool; a running turn is superseded (interrupted) first. */
static void submit(vg_session_t *s, vg_turn_t *t)
{
    if (vg_session_busy(s))
        vg_session_interrupt(s);
    t->s = vg_session_keep(s);
    pthread_mutex_lock(&s->mu);
    t->gen = atomic_fetch_add(&s->gen, 1) + 1;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->busy_until_us, INT64_MAX);
    if (!vg_pool_submit(s->g, t)) {
        atomic_store(&s->busy_until_us, 0);
        vg_send_error(s, "overloaded", "too many turns waiting; ask again in a moment");
    }
}

void vg_session_text(vg_session_t *s, const char *text)
{
    vg_turn_t *t = tn_xcalloc(1, sizeof(*t));
    t->text_turn = true;
    t->text = tn_xstrdup(text);
    t->end_us = tn_ws_now_us();
    submit(s, t);
}

/* The utterance ends: trim it to its last voiced frame and transcribe it, or drop noise. */
static void end_utterance(vg_session_t *s)
{
    s->in_speech = false;
    s->run_ms = 0;
    size_t n = s->utt_last_voiced;
    double voiced = (double)s->voiced_ms;
    s->utt_n = 0;
    if (voiced < (double)s->g->cfg->min_speech_ms || n == 0)
        return;
    vg_turn_t *t = tn_xcalloc(1, sizeof(*t));
    t->pcm = tn_xmalloc(n * sizeof(int16_t));
    memcpy(t->pcm, s->utt, n * sizeof(int16_t));
    t->n = n;
    t->speech_ms = voiced;
    t->end_us = tn_ws_now_us();
    submit(s, t);
}

static void utt_append(vg_session_t *s, const int16_t *frame)
{
    if (s->utt_n + FRAME <= s->utt_cap) {
        memcpy(s->utt + s->utt_n, frame, FRAME * sizeof(int16_t));
        s->utt_n += FRAME;
    }
}

/* One 20 ms frame at 16 kHz. */
static void frame_in(vg_session_t *s, const int16_t *frame)
{
    const vg_cfg_t *c = s->g->cfg;
    memcpy(s->vadbuf, frame, FRAME * sizeof(int16_t)); /* the detector may denoise its copy */
    bool voiced = tn_vad_frame(s->vad, s->vadbuf);
    s->run_ms = voiced ? s->run_ms + 20 : 0;
    if (!s->in_speech) {
        if (voiced) {
            s->in_speech = true;
            s->utt_n = 0;
            for (size_t i = 0; i < s->ring_fill; i++) {
                size_t k = (s->ring_pos + s->ring_frames - s->ring_fill + i) % s->ring_frames;
                utt_append(s, s->ring + k * FRAME);
            }
            s->ring_fill = 0;
            utt_append(s, frame);
            s->voiced_ms = 20;
            s->silence_ms = 0;
            s->utt_last_voiced = s->utt_n;
        } else if (s->ring_frames) {
            memcpy(s->ring + s->ring_pos * FRAME, frame, FRAME * sizeof(int16_t));
            s->ring_pos = (s->ring_pos + 1) % s->ring_frames;
            if (s->ring_fill < s->ring_frames)
                s->ring_fill++;
        }
    } else {
        utt_append(s, frame);
        if (voiced) {
            s->voiced_ms += 20;
            s->silence_ms = 0;
            s->utt_last_voiced = s->utt_n;
        } else {
            s->silence_ms += 20;
        }
    }
    if (s->run_ms >= c->barge_in_ms && vg_session_busy(s))
        vg_session_interrupt(s);
    if (s->in_speech && (s->silence_ms >= c->endpoint_silence_ms || s->utt_n + FRAME > s->utt_cap))
        end_utterance(s);
}

void vg_session_audio(vg_session_t *s, const uint8_t *pkt, size_t len)
{
    atomic_fetch_add(&s->packets_in, 1);
    int n = tn_opus_dec_decode(s->dec, pkt, len, s->pcm, TN_OPUS_MAX_FRAME);
    if (n < 0) {
        long e = atomic_fetch_add(&s->opus_errors, 1) + 1;
        tn_metric_add(s->g->m.opus_errors, TN_NOLABELS, 1);
        if (e == 1 || e % 50 == 0) /* reported, not once per packet */
            vg_send_error(s, "bad_audio", "%ld Opus packet(s) could not be decoded (skipped)", e);
        return;
    }
    atomic_fetch_add(&s->audio_in_ms, (long long)n * 1000 / RATE);
    int64_t now = tn_ws_now_us(), at = now - s->in_stream_ms * 1000;
    if (!s->in_anchor_us || at < s->in_anchor_us)
        s->in_anchor_us = at;
    if (at - s->in_anchor_us > s->in_late_max_us)
        s->in_late_max_us = at - s->in_anchor_us;
    s->in_stream_ms += (int64_t)n * 1000 / RATE;
    /* Packets of 20 ms make whole frames; others (10, 40, 60 ms) are cut, a remainder under one
     * frame is dropped (at most 19 ms per odd packet). */
    for (int off = 0; off + FRAME <= n; off += FRAME)
        frame_in(s, s->pcm + off);
}

void vg_session_flush(vg_session_t *s)
{
    s->in_anchor_us = s->in_stream_ms = 0; /* the client's stream ends: the next one re-anchors */
    if (s->in_speech)
        end_utterance(s);
}

void vg_session_closed(vg_session_t *s, int code)
{
    vg_t *g = s->g;
    s->closed = true;
    atomic_fetch_add(&s->gen, 1); /* running turns stop at their next step */
    vg_booking_forget(g, s);
    const char *outcome = code == TN_WS_CLOSE_NORMAL       ? "normal"
                          : code == TN_WS_CLOSE_GOING_AWAY ? "going_away"
                          : code == TN_WS_CLOSE_ABNORMAL   ? "dropped"
                          : code == TN_WS_CLOSE_TOO_BIG    ? "too_big"
                          : code == TN_WS_CLOSE_PROTOCOL   ? "protocol_error"
                          : code == TN_WS_CLOSE_POLICY     ? "policy"
                                                           : "other";
    tn_metric_add(g->m.sessions, TN_LABELS(outcome), 1);
    if (!s->started)
        return;
    double dur = (double)(tn_ws_now_us() - s->opened_us) / 1000.0;
    vg_event(s, "end",
             json_pack("{s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:i, s:s}", "duration_ms",
                       dur, "turns", (json_int_t)atomic_load(&s->turns), "interruptions",
                       (json_int_t)atomic_load(&s->interruptions), "packets_in",
                       (json_int_t)atomic_load(&s->packets_in), "opus_errors",
                       (json_int_t)atomic_load(&s->opus_errors), "audio_in_ms",
                       (json_int_t)atomic_load(&s->audio_in_ms), "audio_out_ms",
                       (json_int_t)atomic_load(&s->audio_out_ms), "in_late_ms",
                       (double)s->in_late_max_us / 1000.0, "out_late_ms",
                       (double)tn_ws_conn_late_us(s->conn) / 1000.0, "close_code", code, "outcome",
                       outcome));
}
