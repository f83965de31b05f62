/* taina-voice-client: talks to voice-gateway. Streams a WAV file as 20 ms Opus packets in real
 * time (or faster), or asks a text question; prints what the gateway says as JSON lines; writes
 * the reply audio to a WAV file; with --sessions N opens N sessions at once and reports each
 * one's latencies (load mode). */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "taina/app.h"
#include "taina/audio.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/ws.h"

extern char **environ;

typedef struct vc_cfg {
    char *url, *key, *token, *lang, *wav, *text, *out, *save_packets, *citizen_name, *citizen_id;
    int64_t rate, sessions, turns, barge_in_ms, timeout_ms, ramp_ms, late_ms, quiet;
    char *speed;
} vc_cfg_t;

#define KEY(name, type, field, def, help, min, max)                                                \
    {                                                                                              \
        name, type, offsetof(vc_cfg_t, field), def, 0, help, min, max, NULL                        \
    }

static const tn_cfg_key_t vc_keys[] = {
    KEY("url", TN_CFG_STRING, url, "ws://127.0.0.1:8083/v1/sessions/ws", "Gateway WebSocket URL", 0,
        0),
    {"key", TN_CFG_STRING, offsetof(vc_cfg_t, key), "", TN_CFG_SECRET,
     "API key (sent as Authorization: Bearer)", 0, 0, NULL},
    {"token", TN_CFG_STRING, offsetof(vc_cfg_t, token), "", TN_CFG_SECRET,
     "Session token instead of a key (sent as ?token=)", 0, 0, NULL},
    KEY("lang", TN_CFG_STRING, lang, "es", "Language of the session: es or en", 0, 0),
    KEY("rate", TN_CFG_INT, rate, "16000", "Sample rate of the session: 16000 or 48000", 8000,
        48000),
    KEY("wav", TN_CFG_STRING, wav, "", "WAV file to stream (16-bit PCM, any rate)", 0, 0),
    KEY("text", TN_CFG_STRING, text, "", "Ask this text question instead of streaming audio", 0, 0),
    KEY("out", TN_CFG_STRING, out, "", "Write the reply audio (first session) to this WAV file", 0,
        0),
    KEY("speed", TN_CFG_STRING, speed, "1",
        "Sending speed: 1 = real time, 4 = four times, 0 = "
        "as fast as possible",
        0, 0),
    KEY("sessions", TN_CFG_INT, sessions, "1", "Sessions to open at once (load mode)", 1, 100000),
    KEY("turns", TN_CFG_INT, turns, "1", "Turns per session (the question again after each reply)",
        1, 100000),
    KEY("barge_in_ms", TN_CFG_INT, barge_in_ms, "-1",
        "Speak again this long after the first reply audio arrives (barge-in); -1 = never", -1,
        600000),
    KEY("timeout_ms", TN_CFG_INT, timeout_ms, "60000", "Give up after this long", 100, 3600000),
    KEY("ramp_ms", TN_CFG_INT, ramp_ms, "0", "Spread the session starts over this long", 0, 600000),
    KEY("late_ms", TN_CFG_INT, late_ms, "100",
        "A reply packet later than this behind real time means the session fell behind", 1, 60000),
    KEY("quiet", TN_CFG_INT, quiet, "0", "1 = print only the summary (load mode)", 0, 1),
    KEY("save_packets", TN_CFG_STRING, save_packets, "",
        "Also write the Opus packets sent to this file (2-byte big-endian length, then the packet)",
        0, 0),
    KEY("citizen_name", TN_CFG_STRING, citizen_name, "", "Citizen name for bookings", 0, 0),
    KEY("citizen_id", TN_CFG_STRING, citizen_id, "", "Citizen id number for bookings", 0, 0),
};

/* A 20 ms frame louder than this is speech (for the client's end-of-speech time). */
#define SPEECH_DBFS -45.0

typedef struct pkt {
    uint8_t *data;
    size_t len;
} pkt_t;

typedef struct vc vc_t;

typedef struct sess {
    vc_t *vc;
    int idx;
    tn_ws_conn_t *conn;      /* set on the loop thread (callbacks) */
    tn_ws_conn_t *ref;       /* the main thread's reference */
    int turn;                /* turns asked so far */
    int64_t t_open, t_ready; /* us */
    int64_t t_sent;          /* end of the current question (last packet's due time) */
    int64_t t_spoken;        /* end of its speech (the last loud packet's due time), or t_sent */
    int64_t t_first;         /* first reply packet of the current turn */
    int64_t max_late_us;     /* reply packets behind real time, worst */
    int64_t send_late_us;    /* our own packets written after their real-time slot, worst */
    size_t turn_pkts, pkts_rx;
    bool barged, done;
    int close_code, http_status, errors, interrupted;
    double first_ms_sum, first_ms_max;
    double *first_ms; /* per turn */
    size_t nfirst;
    tn_opus_dec_t *dec; /* --out */
    int16_t *pcm;
    size_t npcm, cappcm;
} sess_t;

struct vc {
    const vc_cfg_t *cfg;
    double speed;
    pkt_t *pkts;
    size_t npkts;
    size_t speech_end; /* packets up to the last one louder than SPEECH_DBFS */
    sess_t *sess;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t ndone;
    int64_t t0;
};

static void emit(sess_t *s, const char *type, json_t *extra)
{
    if (s->vc->cfg->quiet) {
        json_decref(extra);
        return;
    }
    json_t *o = json_pack("{s:i, s:f, s:s}", "session", s->idx, "t_ms",
                          (double)(tn_ws_now_us() - s->vc->t0) / 1000.0, "event", type);
    if (extra)
        json_object_update(o, extra);
    json_decref(extra);
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    printf("%s\n", line);
    fflush(stdout);
    free(line);
}

static void finish(sess_t *s)
{
    if (s->done)
        return;
    s->done = true;
    pthread_mutex_lock(&s->vc->mu);
    s->vc->ndone++;
    pthread_cond_broadcast(&s->vc->cv);
    pthread_mutex_unlock(&s->vc->mu);
}

static void send_json(sess_t *s, json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    tn_ws_conn_send(s->conn, t, strlen(t), false);
    free(t);
}

/* One question: the packets paced from @p start (or the text), then stop. */
static void ask(sess_t *s, int64_t start)
{
    vc_t *vc = s->vc;
    s->turn++;
    s->turn_pkts = 0;
    s->t_first = 0;
    if (*vc->cfg->text) {
        s->t_sent = s->t_spoken = tn_ws_now_us();
        send_json(s, json_pack("{s:s, s:s}", "type", "text", "text", vc->cfg->text));
        return;
    }
    int64_t step = vc->speed > 0 ? (int64_t)(20000.0 / vc->speed) : 0;
    for (size_t i = 0; i < vc->npkts; i++)
        tn_ws_conn_send_at(s->conn, vc->pkts[i].data, vc->pkts[i].len, true,
                           step ? start + (int64_t)i * step : 0, 0);
    s->t_sent = step ? start + (int64_t)vc->npkts * step : tn_ws_now_us();
    s->t_spoken = step ? start + (int64_t)vc->speech_end * step : s->t_sent;
    static const char stop[] = "{\"type\":\"stop\"}";
    tn_ws_conn_send_at(s->conn, stop, sizeof(stop) - 1, false, step ? s->t_sent : 0, 0);
}

static void on_open(tn_ws_conn_t *c, void *opaque)
{
    sess_t *s = tn_ws_conn_user(c);
    (void)opaque;
    s->conn = c;
    const vc_cfg_t *cfg = s->vc->cfg;
    json_t *start = json_pack("{s:s, s:s, s:I}", "type", "start", "lang", cfg->lang, "sample_rate",
                              (json_int_t)cfg->rate);
    if (*cfg->citizen_name && *cfg->citizen_id)
        json_object_set_new(
            start, "citizen",
            json_pack("{s:s, s:s}", "name", cfg->citizen_name, "id_number", cfg->citizen_id));
    send_json(s, start);
}

static void reply_audio(sess_t *s, const uint8_t *data, size_t len)
{
    int64_t now = tn_ws_now_us();
    s->pkts_rx++;
    if (s->turn_pkts++ == 0) {
        s->t_first = now;
        double ms = (double)(now - s->t_spoken) / 1000.0;
        s->first_ms = tn_xrealloc(s->first_ms, (s->nfirst + 1) * sizeof(double));
        s->first_ms[s->nfirst++] = ms;
        emit(s, "first_audio", json_pack("{s:i, s:f}", "turn", s->turn, "latency_ms", ms));
        if (s->vc->cfg->barge_in_ms >= 0 && !s->barged && *s->vc->cfg->wav) {
            s->barged = true;
            ask(s, now + s->vc->cfg->barge_in_ms * 1000);
        }
    } else {
        /* the gateway sends each packet at most pacing_lead ahead: late = behind real time */
        int64_t late = now - (s->t_first + (int64_t)(s->turn_pkts - 1) * 20000);
        if (late > s->max_late_us)
            s->max_late_us = late;
    }
    if (s->dec) {
        if (s->npcm + TN_OPUS_MAX_FRAME > s->cappcm) {
            s->cappcm = (s->cappcm + TN_OPUS_MAX_FRAME) * 2;
            s->pcm = tn_xrealloc(s->pcm, s->cappcm * sizeof(int16_t));
        }
        int n = tn_opus_dec_decode(s->dec, data, len, s->pcm + s->npcm, TN_OPUS_MAX_FRAME);
        if (n > 0)
            s->npcm += (size_t)n;
    }
}

static void on_message(tn_ws_conn_t *c, const uint8_t *data, size_t len, bool binary, void *opaque)
{
    sess_t *s = tn_ws_conn_user(c);
    (void)opaque;
    if (binary) {
        reply_audio(s, data, len);
        return;
    }
    json_t *m = json_loadb((const char *)data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) {
        json_decref(m);
        return;
    }
    if (!strcmp(type, "ready")) {
        s->t_ready = tn_ws_now_us();
        ask(s, s->t_ready);
    } else if (!strcmp(type, "error")) {
        s->errors++;
    } else if (!strcmp(type, "interrupted")) {
        s->interrupted++;
    }
    json_t *ev = json_deep_copy(m);
    json_object_del(ev, "type");
    if (!strcmp(type, "reply"))
        json_object_set_new(ev, "latency_ms",
                            json_real((double)(tn_ws_now_us() - s->t_spoken) / 1000.0));
    if (!strcmp(type, "audio_end"))
        json_object_set_new(ev, "packets", json_integer((json_int_t)s->turn_pkts));
    emit(s, type, ev);
    if (!strcmp(type, "audio_end")) {
        int want = (int)s->vc->cfg->turns + (s->barged ? 1 : 0);
        if (s->turn < want)
            ask(s, tn_ws_now_us());
        else
            tn_ws_conn_close(c, TN_WS_CLOSE_NORMAL, "done");
    }
    json_decref(m);
}

static void on_close(tn_ws_conn_t *c, int code, int http_status, void *opaque)
{
    sess_t *s = tn_ws_conn_user(c);
    (void)opaque;
    s->send_late_us = tn_ws_conn_late_us(c);
    s->close_code = code;
    s->http_status = http_status;
    emit(s, "closed", json_pack("{s:i, s:i}", "code", code, "http_status", http_status));
    finish(s);
}

static const tn_ws_handlers_t handlers = {
    .on_open = on_open, .on_message = on_message, .on_close = on_close};

/* The WAV as 20 ms Opus packets at the session's rate. */
static tn_err_t encode_wav(vc_t *vc)
{
    const vc_cfg_t *cfg = vc->cfg;
    char err[256];
    int16_t *pcm = NULL;
    size_t n = 0;
    int rate = 0;
    if (tn_wav_read(cfg->wav, &pcm, &n, &rate, err, sizeof(err)) != TN_OK) {
        fprintf(stderr, "taina-voice-client: %s\n", err);
        return TN_ERR_CONFIG;
    }
    if (rate != (int)cfg->rate) {
        size_t m = 0;
        int16_t *re = tn_resample_all(pcm, n, rate, (int)cfg->rate, &m);
        free(pcm);
        pcm = re;
        n = m;
    }
    tn_opus_enc_t *enc = tn_opus_enc_new((int)cfg->rate, 0, err, sizeof(err));
    if (!enc) {
        free(pcm);
        fprintf(stderr, "taina-voice-client: %s\n", err);
        return TN_ERR_CONFIG;
    }
    size_t frame = tn_opus_enc_frame(enc);
    int16_t *buf = tn_xcalloc(frame, sizeof(int16_t));
    FILE *save = *cfg->save_packets ? fopen(cfg->save_packets, "wb") : NULL;
    vc->pkts = tn_xcalloc(n / frame + 1, sizeof(pkt_t));
    for (size_t off = 0; off < n; off += frame) {
        size_t k = TN_MIN(frame, n - off);
        memcpy(buf, pcm + off, k * sizeof(int16_t));
        memset(buf + k, 0, (frame - k) * sizeof(int16_t));
        uint8_t out[TN_OPUS_MAX_PACKET];
        ssize_t b = tn_opus_enc_encode(enc, buf, out, sizeof(out));
        if (b <= 0)
            continue;
        if (tn_audio_dbfs(buf, frame) > SPEECH_DBFS)
            vc->speech_end = vc->npkts + 1;
        pkt_t *p = &vc->pkts[vc->npkts++];
        p->data = tn_xmalloc((size_t)b);
        memcpy(p->data, out, (size_t)b);
        p->len = (size_t)b;
        if (save) {
            uint8_t hdr[2] = {(uint8_t)(b >> 8), (uint8_t)b};
            fwrite(hdr, 1, 2, save);
            fwrite(out, 1, (size_t)b, save);
        }
    }
    if (save)
        fclose(save);
    free(buf);
    free(pcm);
    tn_opus_enc_destroy(enc);
    return TN_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

static void summary(vc_t *vc)
{
    const vc_cfg_t *cfg = vc->cfg;
    double *all = tn_xcalloc(1, sizeof(double));
    size_t nall = 0, ok = 0, behind = 0, refused = 0, send_behind = 0;
    double worst_late = 0, worst_send_late = 0;
    for (int64_t i = 0; i < cfg->sessions; i++) {
        sess_t *s = &vc->sess[i];
        all = tn_xrealloc(all, (nall + s->nfirst + 1) * sizeof(double));
        if (s->nfirst) /* a session without reply audio has no first_ms array (NULL) */
            memcpy(all + nall, s->first_ms, s->nfirst * sizeof(double));
        nall += s->nfirst;
        if (s->http_status && s->http_status != 101)
            refused++;
        if (s->nfirst >= (size_t)cfg->turns)
            ok++;
        double late = (double)s->max_late_us / 1000.0;
        if (late > (double)cfg->late_ms)
            behind++;
        if (late > worst_late)
            worst_late = late;
        /* the client must keep real time too, or the gateway gets an easier load than it seems */
        double send_late = (double)s->send_late_us / 1000.0;
        if (send_late > (double)cfg->late_ms)
            send_behind++;
        if (send_late > worst_send_late)
            worst_send_late = send_late;
    }
    qsort(all, nall, sizeof(double), cmp_double);
    json_t *o = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f}", "event", "summary",
        "sessions", (json_int_t)cfg->sessions, "completed", (json_int_t)ok, "refused",
        (json_int_t)refused, "behind", (json_int_t)behind, "send_behind", (json_int_t)send_behind,
        "turns", (json_int_t)nall, "first_audio_p50_ms", pct(all, nall, 50), "first_audio_p99_ms",
        pct(all, nall, 99), "first_audio_max_ms", nall ? all[nall - 1] : 0.0, "worst_late_ms",
        worst_late, "worst_send_late_ms", worst_send_late);
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    printf("%s\n", line);
    free(line);
    json_decref(o);
    free(all);
}

static void vc_shutdown(tn_app_t *app, void *state);

static tn_err_t vc_init(tn_app_t *app, void *cfgp, void **state)
{
    vc_t *vc = tn_xcalloc(1, sizeof(*vc));
    vc->cfg = cfgp;
    vc->speed = strtod(vc->cfg->speed, NULL);
    pthread_mutex_init(&vc->mu, NULL);
    pthread_cond_init(&vc->cv, NULL);
    tn_err_t rc = TN_OK;
    if (!*vc->cfg->wav && !*vc->cfg->text) {
        fprintf(stderr, "taina-voice-client: give --wav FILE or --text QUESTION\n");
        rc = TN_ERR_CONFIG;
    } else if (*vc->cfg->wav) {
        rc = encode_wav(vc);
    }
    if (rc != TN_OK) {
        vc_shutdown(app, vc);
        return rc;
    }
    *state = vc;
    return TN_OK;
}

static tn_err_t vc_run(tn_app_t *app, void *state)
{
    (void)app;
    vc_t *vc = state;
    const vc_cfg_t *cfg = vc->cfg;
    char err[256], auth[600], url[1024];
    tn_ws_client_opts_t o = tn_ws_client_opts_default();
    o.handlers = &handlers;
    o.opaque = vc;
    tn_ws_client_t *cl = tn_ws_client_new(&o, err, sizeof(err));
    if (!cl) {
        fprintf(stderr, "taina-voice-client: %s\n", err);
        return TN_ERR;
    }
    const char *headers[2] = {NULL, NULL};
    if (*cfg->key) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->key);
        headers[0] = auth;
    }
    snprintf(url, sizeof(url), "%s%s%s", cfg->url, *cfg->token ? "?token=" : "", cfg->token);
    vc->sess = tn_xcalloc((size_t)cfg->sessions, sizeof(sess_t));
    vc->t0 = tn_ws_now_us();
    tn_err_t rc = TN_OK;
    for (int64_t i = 0; i < cfg->sessions; i++) {
        sess_t *s = &vc->sess[i];
        s->vc = vc;
        s->idx = (int)i;
        if (i == 0 && *cfg->out)
            s->dec = tn_opus_dec_new((int)cfg->rate, err, sizeof(err));
        if (cfg->ramp_ms && i)
            tn_clock_sleep_ms(cfg->ramp_ms / cfg->sessions);
        s->t_open = tn_ws_now_us();
        s->ref = tn_ws_client_connect(cl, url, headers, s, err, sizeof(err));
        if (!s->ref) {
            fprintf(stderr, "taina-voice-client: %s\n", err);
            rc = TN_ERR_CONFIG;
            finish(s);
        }
    }
    int64_t deadline = tn_ws_now_us() + cfg->timeout_ms * 1000;
    pthread_mutex_lock(&vc->mu);
    while (vc->ndone < cfg->sessions && tn_ws_now_us() < deadline && !tn_lifecycle_is_stopping()) {
        pthread_mutex_unlock(&vc->mu);
        tn_clock_sleep_ms(20);
        pthread_mutex_lock(&vc->mu);
    }
    bool all = vc->ndone == cfg->sessions;
    pthread_mutex_unlock(&vc->mu);
    tn_ws_client_destroy(cl); /* closes what is still open */
    if (*cfg->out && vc->sess[0].dec &&
        tn_wav_write(cfg->out, vc->sess[0].pcm, vc->sess[0].npcm, (int)cfg->rate, err,
                     sizeof(err)) != TN_OK)
        fprintf(stderr, "taina-voice-client: %s\n", err);
    summary(vc);
    if (rc == TN_OK && !all)
        rc = TN_ERR_TIMEOUT;
    return rc;
}

static void vc_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    vc_t *vc = state;
    if (!vc)
        return;
    for (int64_t i = 0; vc->sess && i < vc->cfg->sessions; i++) {
        tn_ws_conn_release(vc->sess[i].ref);
        tn_opus_dec_destroy(vc->sess[i].dec);
        free(vc->sess[i].pcm);
        free(vc->sess[i].first_ms);
    }
    for (size_t i = 0; i < vc->npkts; i++)
        free(vc->pkts[i].data);
    free(vc->pkts);
    free(vc->sess);
    pthread_cond_destroy(&vc->cv);
    pthread_mutex_destroy(&vc->mu);
    free(vc);
}

static const tn_app_def_t def = {
    .name = "voice-client",
    .summary = "Streams a WAV (or a text question) to voice-gateway; prints what it answers",
    .features = 0,
    .keys = vc_keys,
    .nkeys = TN_ARRAY_LEN(vc_keys),
    .cfg_size = sizeof(vc_cfg_t),
    .init = vc_init,
    .run = vc_run,
    .shutdown = vc_shutdown,
};

int main(int argc, char **argv)
{
    return tn_app_main(&def, argc, argv, environ);
}
