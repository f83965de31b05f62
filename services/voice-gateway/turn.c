/* voice-gateway: turns on a pool of worker threads. A turn transcribes the utterance (STT), then
 * books (a booking intent) or asks rag, speaking each sentence of the answer as it streams in:
 * TTS, resampling to the session's rate, and the PCM handed to the playout (playout.c), which
 * encodes it in real time and paces it. Every step checks that the turn is still current:
 * barge-in or a closed session makes it stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taina/log.h"
#include "taina/mem.h"
#include "voice.h"

#define STT_RATE 16000

void vg_turn_free(vg_turn_t *t)
{
    if (!t)
        return;
    vg_session_release(t->s);
    free(t->text);
    free(t->pcm);
    free(t);
}

/* ------------------------------------------------------------------------------------------- */
/* Speaking                                                                                     */

typedef struct speaker {
    vg_t *g;
    vg_session_t *s;
    vg_turn_t *t;
    int64_t next_us;      /* real-time position of the next packet */
    int64_t first_us;     /* when the first audio was handed to the playout (0: none yet) */
    int64_t rag_start_us; /* rag call start (0: not asking rag) */
    double upstream_ms;   /* STT, rag and TTS time before the first packet */
    double stt_ms, tts_ms;
    size_t packets;
    bool failed;
    bool tts_refused; /* the TTS circuit was open: told once per turn */
} speaker_t;

/* Refused by @p b's open circuit: tell the session at once which upstream is away and when it
 * is tried again. */
static void send_unavailable(vg_session_t *s, tn_breaker_t *b, const char *what, const char *still)
{
    vg_send_error(s, "upstream_unavailable",
                  "%s (%s) is unavailable: circuit open after repeated failures, tried again in "
                  "%lld s; %s",
                  what, b->name, (long long)(tn_breaker_retry_in_ms(b) + 999) / 1000, still);
}

static bool current(const speaker_t *sp)
{
    return atomic_load(&sp->s->gen) == sp->t->gen && tn_ws_conn_open(sp->s->conn);
}

/* Hand @p n samples (at the session's rate) to the playout, after what this turn already
 * said (or from now, when TTS fell behind playback: a gap). */
static void play(speaker_t *sp, const int16_t *pcm, size_t n)
{
    vg_session_t *s = sp->s;
    if (!n || !current(sp))
        return;
    int64_t now = tn_ws_now_us();
    if (sp->next_us < now)
        sp->next_us = now;
    vg_playout_audio(s, sp->t->gen, pcm, n, sp->next_us);
    if (!sp->first_us)
        sp->first_us = now;
    size_t frames = (n + s->frame - 1) / s->frame;
    sp->next_us += (int64_t)frames * 20000;
    sp->packets += frames;
    atomic_fetch_add(&s->audio_out_ms, (long long)(n * 1000 / (size_t)s->rate));
}

/* When the playout queued the turn's first packet (it does within a tick of play(); waits up
 * to a second), or 0. */
static int64_t first_packet_us(speaker_t *sp)
{
    vg_t *g = sp->g;
    vg_session_t *s = sp->s;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 1;
    pthread_mutex_lock(&g->pmu);
    while (atomic_load(&s->first_out_gen) != sp->t->gen && current(sp))
        if (pthread_cond_timedwait(&g->pfirst, &g->pmu, &ts) != 0)
            break;
    pthread_mutex_unlock(&g->pmu);
    return atomic_load(&s->first_out_gen) == sp->t->gen ? atomic_load(&s->first_out_us) : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* The TTS cache: what was spoken at a rate, kept whole (texts are short) */

typedef struct vg_cached {
    struct vg_cached *next;
    char lang[3];
    int rate;
    char *text;
    int16_t *pcm;
    size_t n;
} vg_cached_t;

/* A copy of the cached audio of @p text, or NULL. */
static int16_t *cache_get(vg_t *g, const char *lang, int rate, const char *text, size_t *n)
{
    int16_t *out = NULL;
    pthread_mutex_lock(&g->cmu);
    for (vg_cached_t **pp = &g->cache; *pp; pp = &(*pp)->next) {
        vg_cached_t *e = *pp;
        if (e->rate != rate || strcmp(e->lang, lang) != 0 || strcmp(e->text, text) != 0)
            continue;
        *pp = e->next; /* to the front */
        e->next = g->cache;
        g->cache = e;
        out = tn_xmalloc(e->n * sizeof(int16_t) + 1);
        memcpy(out, e->pcm, e->n * sizeof(int16_t));
        *n = e->n;
        break;
    }
    pthread_mutex_unlock(&g->cmu);
    return out;
}

static void cache_put(vg_t *g, const char *lang, int rate, const char *text, const int16_t *pcm,
                      size_t n)
{
    if (g->cfg->tts_cache <= 0)
        return;
    vg_cached_t *e = tn_xcalloc(1, sizeof(*e));
    snprintf(e->lang, sizeof(e->lang), "%s", lang);
    e->rate = rate;
    e->text = tn_xstrdup(text);
    e->pcm = tn_xmalloc(n * sizeof(int16_t) + 1);
    memcpy(e->pcm, pcm, n * sizeof(int16_t));
    e->n = n;
    vg_cached_t *drop = NULL;
    pthread_mutex_lock(&g->cmu);
    e->next = g->cache;
    g->cache = e;
    if (++g->ncache > (size_t)g->cfg->tts_cache) { /* drop the least recently used */
        vg_cached_t **pp = &g->cache;
        while ((*pp)->next)
            pp = &(*pp)->next;
        drop = *pp;
        *pp = NULL;
        g->ncache--;
    }
    pthread_mutex_unlock(&g->cmu);
    if (drop) {
        free(drop->text);
        free(drop->pcm);
        free(drop);
    }
}

void vg_tts_cache_free(vg_t *g)
{
    while (g->cache) {
        vg_cached_t *e = g->cache;
        g->cache = e->next;
        free(e->text);
        free(e->pcm);
        free(e);
    }
    g->ncache = 0;
}

/* Speak one piece of text. Returns non-zero when the turn is no longer current. */
static int speak(speaker_t *sp, const char *text, size_t len)
{
    vg_t *g = sp->g;
    vg_session_t *s = sp->s;
    char *say = vg_speakable(text, len);
    if (!*say) {
        free(say);
        return !current(sp);
    }
    if (sp->rag_start_us && !sp->first_us) /* waiting for rag counts as upstream time */
        sp->upstream_ms += (double)(tn_ws_now_us() - sp->rag_start_us) / 1000.0;
    char err[256];
    size_t n = 0;
    int rate = s->rate;
    int64_t t0 = tn_ws_now_us();
    int16_t *pcm = cache_get(g, s->lang, s->rate, say, &n);
    tn_err_t rc = TN_OK;
    if (!pcm && !tn_breaker_allow(&g->tts_breaker)) {
        if (!sp->tts_refused && current(sp))
            send_unavailable(s, &g->tts_breaker, "speech synthesis", "the reply comes as text");
        sp->tts_refused = true;
        sp->failed = true;
        free(say);
        return !current(sp);
    }
    if (!pcm) {
        rc = tn_tts_synthesize(g->tts, say, s->lang, &pcm, &n, &rate, err, sizeof(err));
        tn_breaker_record(&g->tts_breaker, rc);
        if (rc == TN_OK && rate != s->rate) {
            size_t m = 0;
            int16_t *re = tn_resample_all(pcm, n, rate, s->rate, &m);
            free(pcm);
            pcm = re;
            n = m;
            rate = s->rate;
        }
        if (rc == TN_OK)
            cache_put(g, s->lang, s->rate, say, pcm, n);
    }
    double ms = (double)(tn_ws_now_us() - t0) / 1000.0;
    free(say);
    sp->tts_ms += ms;
    if (!sp->first_us)
        sp->upstream_ms += ms;
    if (sp->rag_start_us && !sp->first_us)
        sp->rag_start_us = tn_ws_now_us(); /* the next wait starts now */
    tn_metric_observe(g->m.stage, TN_LABELS("tts"), ms / 1000.0);
    if (rc != TN_OK) {
        if (current(sp))
            vg_send_error(s, "tts_failed", "speech synthesis failed: %s", err);
        sp->failed = true;
        free(pcm);
        return !current(sp);
    }
    if (current(sp))
        play(sp, pcm, n);
    free(pcm);
    return !current(sp);
}

static int on_sentence(void *opaque, const char *sentence, size_t len)
{
    return speak(opaque, sentence, len);
}

/* ------------------------------------------------------------------------------------------- */
/* A turn                                                                                       */

/* STT of a voice turn: the transcript (caller frees), or NULL when the turn ends here. */
static char *transcribe(speaker_t *sp)
{
    vg_t *g = sp->g;
    vg_session_t *s = sp->s;
    vg_turn_t *t = sp->t;
    tn_stt_result_t res = {0};
    char err[256];
    if (!tn_breaker_allow(&g->stt_breaker)) {
        tn_metric_add(g->m.turns, TN_LABELS("voice", "stt_unavailable"), 1);
        if (current(sp))
            send_unavailable(s, &g->stt_breaker, "speech recognition", "text messages still work");
        return NULL;
    }
    int64_t t0 = tn_ws_now_us();
    tn_err_t rc =
        tn_stt_transcribe(g->stt, t->pcm, t->n, STT_RATE, s->lang, &res, err, sizeof(err));
    tn_breaker_record(&g->stt_breaker, rc);
    sp->stt_ms = (double)(tn_ws_now_us() - t0) / 1000.0;
    sp->upstream_ms += sp->stt_ms;
    tn_metric_observe(g->m.stage, TN_LABELS("stt"), sp->stt_ms / 1000.0);
    if (rc != TN_OK) {
        free(res.text);
        tn_metric_add(g->m.turns, TN_LABELS("voice", "stt_error"), 1);
        if (current(sp))
            vg_send_error(s, "stt_failed", "speech recognition failed: %s", err);
        return NULL;
    }
    if (!current(sp)) {
        free(res.text);
        return NULL;
    }
    vg_send_json(s,
                 json_pack("{s:s, s:s, s:b}", "type", "transcript", "text", res.text, "final", 1));
    return res.text;
}

static void turn_event(speaker_t *sp, const char *text)
{
    vg_turn_t *t = sp->t;
    char *red = vg_redact(sp->g, text);
    json_t *e =
        json_pack("{s:s, s:s, s:I}", "kind", t->text_turn ? "text" : "voice", "transcript",
                  red ? red : "[redaction failed]", "turn", (json_int_t)atomic_load(&sp->s->turns));
    if (!t->text_turn) {
        json_object_set_new(e, "audio_ms", json_real((double)t->n * 1000.0 / STT_RATE));
        json_object_set_new(e, "speech_ms", json_real(t->speech_ms));
        json_object_set_new(e, "stt_ms", json_real(sp->stt_ms));
    }
    vg_event(sp->s, "turn", e);
    free(red);
}

static void run_turn(vg_t *g, vg_turn_t *t)
{
    vg_session_t *s = t->s;
    speaker_t sp = {.g = g, .s = s, .t = t};
    char err[512] = "";
    const char *kind = t->text_turn ? "text" : "voice";
    char *heard = NULL;
    if (!t->text_turn && !(heard = transcribe(&sp)))
        goto out;
    const char *question = t->text_turn ? t->text : heard;
    atomic_fetch_add(&s->turns, 1);
    turn_event(&sp, question);
    if (!*question) {
        tn_metric_add(g->m.turns, TN_LABELS(kind, "no_speech"), 1);
        goto out;
    }
    const char *outcome = "ok", *service = vg_booking_intent(g, question, s->lang);
    json_t *citations = NULL;
    char *reply = NULL;
    double rag_ms = 0;
    if (service) {
        char rid[37];
        if (vg_booking_request(g, s, service, rid) == TN_OK) {
            reply = tn_xstrdup(!strcmp(s->lang, "es") ? g->cfg->booking_reply_es
                                                      : g->cfg->booking_reply_en);
            outcome = "booking";
            speak(&sp, reply, strlen(reply));
        } else {
            outcome = "booking_incomplete";
            reply = tn_xstrdup(!strcmp(s->lang, "es") ? g->cfg->citizen_prompt_es
                                                      : g->cfg->citizen_prompt_en);
            speak(&sp, reply, strlen(reply));
        }
    } else if (!tn_breaker_allow(&g->rag_breaker)) {
        outcome = "rag_unavailable";
        send_unavailable(s, &g->rag_breaker, "the answer service", "booking still works");
        reply = tn_xstrdup(!strcmp(s->lang, "es") ? g->cfg->fallback_reply_es
                                                  : g->cfg->fallback_reply_en);
        speak(&sp, reply, strlen(reply));
    } else {
        vg_rag_answer_t ans = {0};
        sp.rag_start_us = tn_ws_now_us();
        tn_err_t rc = vg_rag_ask(g, s, question, on_sentence, &sp, &ans, err, sizeof(err));
        /* rag's 5xx and 429 count against it (its own upstreams may be away); 4xx do not */
        tn_breaker_record(&g->rag_breaker,
                          rc == TN_ERR_UPSTREAM && (ans.status >= 500 || ans.status == 429)
                              ? TN_ERR_UNAVAILABLE
                              : rc);
        rag_ms = ans.upstream_ms;
        tn_metric_observe(g->m.stage, TN_LABELS("rag"), rag_ms / 1000.0);
        sp.rag_start_us = 0;
        if (rc == TN_OK && ans.text && *ans.text) {
            reply = ans.text;
            ans.text = NULL;
            citations = ans.citations;
            ans.citations = NULL;
        } else if (current(&sp) && rc != TN_ERR_STOPPED) {
            outcome = "rag_error";
            vg_send_error(s, "rag_failed", "%s", err[0] ? err : ans.answer_error);
            reply = tn_xstrdup(!strcmp(s->lang, "es") ? g->cfg->fallback_reply_es
                                                      : g->cfg->fallback_reply_en);
            speak(&sp, reply, strlen(reply));
        }
        vg_rag_answer_free(&ans);
    }
    if (current(&sp) && reply) {
        vg_send_json(s, json_pack("{s:s, s:s, s:o}", "type", "reply", "text", reply, "citations",
                                  citations ? json_incref(citations) : json_array()));
        /* audio_end goes right after the last packet (same tag: barge-in drops it too) */
        int64_t end = sp.next_us ? sp.next_us : tn_ws_now_us();
        vg_playout_end(s, t->gen, end);
        json_t *ev =
            json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:I}", "kind", kind, "reply", reply,
                      "citations", (json_int_t)json_array_size(citations), "stt_ms", sp.stt_ms,
                      "rag_ms", rag_ms, "tts_ms", sp.tts_ms, "packets_out", (json_int_t)sp.packets);
        int64_t first = sp.first_us ? first_packet_us(&sp) : 0;
        if (first) {
            double total = (double)(first - t->end_us) / 1000.0;
            double own = total > sp.upstream_ms ? total - sp.upstream_ms : 0;
            tn_metric_observe(g->m.first_audio, TN_NOLABELS, total / 1000.0);
            tn_metric_observe(g->m.overhead, TN_NOLABELS, own / 1000.0);
            json_object_set_new(ev, "latency_ms", json_real(total));
            json_object_set_new(ev, "overhead_ms", json_real(own));
        }
        vg_event(s, "reply", ev);
        /* barge-in stays possible until the audio has played */
        unsigned gen = t->gen;
        if (atomic_load(&s->gen) == gen)
            atomic_store(&s->busy_until_us, end);
    } else if (!current(&sp)) {
        outcome = "interrupted";
    }
    tn_metric_add(g->m.turns, TN_LABELS(kind, outcome), 1);
    json_decref(citations);
    free(reply);
out:
    if (atomic_load(&s->gen) == t->gen && atomic_load(&s->busy_until_us) == INT64_MAX)
        atomic_store(&s->busy_until_us, 0);
    free(heard);
}

/* ------------------------------------------------------------------------------------------- */
/* The pool                                                                                     */

static void *worker(void *arg)
{
    vg_t *g = arg;
    for (;;) {
        pthread_mutex_lock(&g->qmu);
        while (!g->qhead && !g->qstop)
            pthread_cond_wait(&g->qcv, &g->qmu);
        vg_turn_t *t = g->qhead;
        if (!t) { /* stopping and nothing left */
            pthread_mutex_unlock(&g->qmu);
            return NULL;
        }
        g->qhead = t->next;
        if (!g->qhead)
            g->qtail = NULL;
        g->qlen--;
        pthread_mutex_unlock(&g->qmu);
        if (atomic_load(&t->s->gen) == t->gen && tn_ws_conn_open(t->s->conn))
            run_turn(g, t);
        vg_turn_free(t);
    }
}

tn_err_t vg_pool_start(vg_t *g)
{
    pthread_mutex_init(&g->cmu, NULL);
    pthread_mutex_init(&g->qmu, NULL);
    pthread_cond_init(&g->qcv, NULL);
    if (vg_playout_start(g) != TN_OK)
        return TN_ERR;
    g->workers = tn_xcalloc((size_t)g->cfg->workers, sizeof(pthread_t));
    for (int64_t i = 0; i < g->cfg->workers; i++) {
        if (pthread_create(&g->workers[i], NULL, worker, g) != 0)
            return TN_ERR;
        g->nworkers++;
    }
    return TN_OK;
}

void vg_pool_stop(vg_t *g)
{
    if (!g->workers)
        return;
    pthread_mutex_lock(&g->qmu);
    g->qstop = true;
    pthread_cond_broadcast(&g->qcv);
    pthread_mutex_unlock(&g->qmu);
    for (size_t i = 0; i < g->nworkers; i++)
        pthread_join(g->workers[i], NULL);
    vg_playout_stop(g); /* after the workers: nothing hands it audio any more */
    free(g->workers);
    g->workers = NULL;
    pthread_cond_destroy(&g->qcv);
    pthread_mutex_destroy(&g->qmu);
    vg_tts_cache_free(g);
    pthread_mutex_destroy(&g->cmu);
}

bool vg_pool_submit(vg_t *g, vg_turn_t *t)
{
    pthread_mutex_lock(&g->qmu);
    if (g->qstop || g->qlen >= (size_t)g->cfg->max_pending_turns) {
        pthread_mutex_unlock(&g->qmu);
        vg_turn_free(t);
        return false;
    }
    t->next = NULL;
    if (g->qtail)
        g->qtail->next = t;
    else
        g->qhead = t;
    g->qtail = t;
    g->qlen++;
    pthread_cond_signal(&g->qcv);
    pthread_mutex_unlock(&g->qmu);
    return true;
}
