/* voice-gateway: reply audio encoded in real time. Turns (workers) hand their reply's PCM to
 * the playout thread, which encodes each 20 ms frame shortly before it is due and queues it
 * pacing_lead ahead of real time. Encoding a whole reply at once on the worker cost ~6 ms of
 * CPU in one go; when a few hundred sessions ended their utterances together, dozens of
 * workers encoding at once took the core from the loop thread for hundreds of milliseconds
 * (input handled late, replies sent late). In real time, a session costs one encode per 20 ms
 * while it plays, and one thread on a 20 ms tick does them all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taina/log.h"
#include "taina/mem.h"
#include "voice.h"

#define TICK_US    20000 /* the playout tick: frames are encoded on this grid */
#define AHEAD_US   40000 /* each tick encodes what is due (minus the lead) within this */
#define JOIN_CHECK 16    /* during a pass, look for sessions that joined after this many */

/* A piece of reply audio, or the end of a reply (n = 0, end). */
struct vg_play {
    struct vg_play *next;
    unsigned gen;    /* the turn's generation: its send tag */
    int16_t *pcm;    /* at the session's rate; owned */
    size_t n, pos;   /* samples; the next frame starts at pos */
    int64_t slot_us; /* real-time slot of pcm[pos] */
    int64_t at_us;   /* when it was handed over: frames queued by then are on time */
    bool end;        /* send audio_end at slot_us */
};

static void play_free(vg_play_t *p)
{
    while (p) {
        vg_play_t *n = p->next;
        free(p->pcm);
        free(p);
        p = n;
    }
}

/* Queue a piece on the session, and the session on the playout list. */
static void enqueue(vg_t *g, vg_session_t *s, vg_play_t *p)
{
    bool add = false;
    pthread_mutex_lock(&s->mu);
    if (s->play_tail)
        s->play_tail->next = p;
    else
        s->play_head = p;
    s->play_tail = p;
    if (!s->in_playout) {
        s->in_playout = true;
        add = true;
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&g->pmu);
    if (add) {
        if (g->nplaying == g->capplaying) {
            g->capplaying = g->capplaying ? g->capplaying * 2 : 64;
            g->playing = tn_xrealloc(g->playing, g->capplaying * sizeof(*g->playing));
        }
        g->playing[g->nplaying++] = vg_session_keep(s);
    }
    g->pkick = true; /* a new reply's first frames go now, not at the next tick */
    pthread_cond_signal(&g->pcv);
    pthread_mutex_unlock(&g->pmu);
}

void vg_playout_audio(vg_session_t *s, unsigned gen, const int16_t *pcm, size_t n, int64_t slot_us)
{
    vg_play_t *p = tn_xcalloc(1, sizeof(*p));
    p->gen = gen;
    p->pcm = tn_xmalloc(n * sizeof(int16_t) + 1);
    memcpy(p->pcm, pcm, n * sizeof(int16_t));
    p->n = n;
    p->slot_us = slot_us;
    p->at_us = tn_ws_now_us();
    enqueue(s->g, s, p);
}

void vg_playout_end(vg_session_t *s, unsigned gen, int64_t slot_us)
{
    vg_play_t *p = tn_xcalloc(1, sizeof(*p));
    p->gen = gen;
    p->end = true;
    p->slot_us = slot_us;
    enqueue(s->g, s, p);
}

/* Encode and queue what is due within AHEAD_US for one session. Returns true when its queue is
 * empty (it leaves the playout list). Playout thread only. */
static bool session_play(vg_t *g, vg_session_t *s, int64_t now, int16_t *buf, size_t cap,
                         bool *first)
{
    const int64_t lead = g->cfg->pacing_lead_ms * 1000;
    uint8_t pkt[TN_OPUS_MAX_PACKET];
    char err[256];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        vg_play_t *p = s->play_head;
        unsigned gen = atomic_load(&s->gen);
        while (p && (p->gen != gen || (!p->end && p->pos >= p->n))) { /* stale or played */
            s->play_head = p->next;
            p->next = NULL;
            play_free(p);
            p = s->play_head;
        }
        if (!p) {
            s->play_tail = NULL;
            s->in_playout = false;
            pthread_mutex_unlock(&s->mu);
            return true;
        }
        if (p->slot_us - lead > now + AHEAD_US) {
            pthread_mutex_unlock(&s->mu);
            return false;
        }
        if (p->end) {
            static const char ae[] = "{\"type\":\"audio_end\"}";
            tn_ws_conn_send_at(s->conn, ae, sizeof(ae) - 1, false, p->slot_us - lead, gen);
            s->play_head = p->next;
            p->next = NULL;
            play_free(p);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        size_t frame = s->frame, k = p->n - p->pos < frame ? p->n - p->pos : frame;
        TN_ASSERT(frame <= cap);
        memcpy(buf, p->pcm + p->pos, k * sizeof(int16_t));
        if (k < frame)
            memset(buf + k, 0, (frame - k) * sizeof(int16_t));
        /* Its due time for the socket, and for its lateness (tn_ws_conn_late_us): slot - lead,
         * or when it was handed over for the frames already due then (a new reply's first
         * ones), so a playout that falls behind shows as late, and a reply's start does not. */
        int64_t due = p->slot_us - lead > p->at_us ? p->slot_us - lead : p->at_us;
        p->pos += k;
        p->slot_us += 20000;
        pthread_mutex_unlock(&s->mu);
        if (!s->enc) {
            s->enc = tn_opus_enc_new(s->rate, (int)g->cfg->opus_bitrate, err, sizeof(err));
            if (!s->enc) {
                TN_LOG(TN_LOG_ERROR, "session %s: cannot encode audio: %s", s->id, err);
                return false;
            }
            tn_opus_enc_set_complexity(s->enc, (int)g->cfg->opus_complexity);
        }
        ssize_t bytes = tn_opus_enc_encode(s->enc, buf, pkt, sizeof(pkt));
        if (bytes < 0)
            continue;
        /* The send happens under s->mu after the generation check, so a barge-in (which bumps
         * the generation under s->mu, then drops the queued packets of the old one) never
         * leaves a stale packet behind. */
        pthread_mutex_lock(&s->mu);
        if (atomic_load(&s->gen) == gen) {
            tn_ws_conn_send_at(s->conn, pkt, (size_t)bytes, true, due, gen);
            if (atomic_load(&s->first_out_gen) != gen) {
                atomic_store(&s->first_out_us, tn_ws_now_us());
                atomic_store(&s->first_out_gen, gen);
                *first = true;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static void *playout_main(void *arg)
{
    vg_t *g = arg;
    int16_t *buf = tn_xmalloc(TN_OPUS_MAX_FRAME * sizeof(int16_t));
    vg_session_t **list = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&g->pmu);
    while (!g->pstop) {
        if (!g->nplaying && !g->pkick) {
            pthread_cond_wait(&g->pcv, &g->pmu);
            continue;
        }
        if (!g->pkick) { /* sleep to the next tick of the grid (or a kick) */
            int64_t now = tn_ws_now_us(), at = (now / TICK_US + 1) * TICK_US;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + (at - now) * 1000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&g->pcv, &g->pmu, &ts);
            if (g->pstop)
                break;
        }
        g->pkick = false;
        size_t n = g->nplaying;
        if (n > cap) {
            cap = n * 2;
            list = tn_xrealloc(list, cap * sizeof(*list));
        }
        memcpy(list, g->playing, n * sizeof(*list)); /* entries stay until we remove them */
        pthread_mutex_unlock(&g->pmu);
        int64_t now = tn_ws_now_us();
        size_t ndone = 0;
        bool first = false;
        /* Replies that have not started go first: a pass over a few hundred playing sessions
         * takes some milliseconds, and a new reply's first packet is the latency a caller
         * hears; the others are queued pacing_lead ahead and can wait for the end of the pass.
         * Sessions that join during the pass (they are appended to g->playing; only this
         * thread removes entries) are served between every few sessions, so a reply that
         * starts while 300 others are encoded does not wait for all of them. */
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = ndone; i < n; i++) {
                if (pass == 1 && i % JOIN_CHECK == 0) {
                    pthread_mutex_lock(&g->pmu);
                    size_t m = g->nplaying;
                    if (m > n) {
                        if (m > cap) {
                            cap = m * 2;
                            list = tn_xrealloc(list, cap * sizeof(*list));
                        }
                        memcpy(list + n, g->playing + n, (m - n) * sizeof(*list));
                    }
                    pthread_mutex_unlock(&g->pmu);
                    for (; n < m; n++) /* visited again at the end of this pass: harmless */
                        session_play(g, list[n], tn_ws_now_us(), buf, TN_OPUS_MAX_FRAME, &first);
                }
                vg_session_t *s = list[i];
                bool starting = atomic_load(&s->first_out_gen) != atomic_load(&s->gen);
                if (starting != (pass == 0))
                    continue;
                if (session_play(g, s, now, buf, TN_OPUS_MAX_FRAME, &first)) {
                    list[i] = list[ndone]; /* finished: collected at the front */
                    list[ndone++] = s;
                }
            }
        pthread_mutex_lock(&g->pmu);
        if (first)
            pthread_cond_broadcast(&g->pfirst); /* turns waiting for their first packet */
        for (size_t i = 0; i < ndone; i++)      /* drop one entry (and its reference) each */
            for (size_t j = 0; j < g->nplaying; j++)
                if (g->playing[j] == list[i]) {
                    g->playing[j] = g->playing[--g->nplaying];
                    pthread_mutex_unlock(&g->pmu);
                    vg_session_release(list[i]);
                    pthread_mutex_lock(&g->pmu);
                    break;
                }
    }
    pthread_mutex_unlock(&g->pmu);
    free(list);
    free(buf);
    return NULL;
}

tn_err_t vg_playout_start(vg_t *g)
{
    pthread_condattr_t ca; /* deadlines on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->pmu, NULL);
    pthread_cond_init(&g->pcv, &ca);
    pthread_cond_init(&g->pfirst, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&g->playout, NULL, playout_main, g) != 0)
        return TN_ERR;
    g->playout_running = true;
    return TN_OK;
}

void vg_playout_stop(vg_t *g)
{
    if (!g->playout_running)
        return;
    pthread_mutex_lock(&g->pmu);
    g->pstop = true;
    pthread_cond_signal(&g->pcv);
    pthread_mutex_unlock(&g->pmu);
    pthread_join(g->playout, NULL);
    g->playout_running = false;
    for (size_t i = 0; i < g->nplaying; i++)
        vg_session_release(g->playing[i]);
    free(g->playing);
    g->playing = NULL;
    g->nplaying = g->capplaying = 0;
    pthread_cond_destroy(&g->pcv);
    pthread_cond_destroy(&g->pfirst);
    pthread_mutex_destroy(&g->pmu);
}

void vg_playout_free(vg_play_t *p)
{
    play_free(p);
}
