/* voice-gateway: voice sessions over WebSocket: Opus in, transcript, grounded answer from rag,
 * spoken answer as Opus out.
 *   main.c     the table of contents: config, wiring, loop, shutdown
 *   config.c   the config keys and metric families
 *   gateway.c  the WebSocket endpoint and HTTP routes: auth (API keys, signed tokens), the
 *              control messages, /health /ready /metrics, POST /v1/sessions/token
 *   session.c  one session on the loop thread: Opus decode, voice activity, endpointing,
 *              barge-in
 *   turn.c     one turn on a worker: STT, intent or rag, TTS, handed to the playout
 *   playout.c  reply audio encoded in real time (one thread, 20 ms tick) and paced
 *   rag.c      the rag client: POST /v1/query with stream:true, Server-Sent Events
 *   booking.c  booking intents -> appointments.requests; appointments.results -> sessions
 *   events.c   voice.sessions events (transcripts PII-redacted)
 */
#ifndef VOICE_H
#define VOICE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "taina/app.h"
#include "taina/audio.h"
#include "taina/auth.h"
#include "taina/breaker.h"
#include "taina/category.h"
#include "taina/http_client.h"
#include "taina/kafka.h"
#include "taina/metrics.h"
#include "taina/pii.h"
#include "taina/schema.h"
#include "taina/stt.h"
#include "taina/tts.h"
#include "taina/ws.h"

typedef struct vg_cfg {
    int64_t max_sessions, max_frame, max_message, max_queue, idle_timeout_ms;
    char *token_secret;
    int64_t token_ttl_ms;
    char *rag_url, *rag_keys_file;
    int64_t rag_timeout_ms, rag_top_k, spoken_sentences;
    int64_t endpoint_silence_ms, max_utterance_ms, min_speech_ms, barge_in_ms, preroll_ms;
    int64_t pacing_lead_ms, io_batch_ms, opus_bitrate, opus_complexity, workers, max_pending_turns;
    bool vad_denoise, vad_half_rate;
    int64_t vad_prob_start, vad_prob_continue, vad_floor_dbfs, vad_quiet_stride;
    int stt_provider;
    char *stt_url, *stt_api_key, *stt_model;
    int64_t stt_timeout_ms;
    int tts_provider;
    char *tts_url, *tts_api_key, *tts_voice_es, *tts_voice_en, *tts_model;
    int64_t tts_timeout_ms;
    char *topic_sessions, *topic_requests, *topic_results;
    char *intent_rules_file, *service_rules_file, *pii_rules_file, *schemas_dir;
    int64_t booking_window_ms;
    char *booking_reply_es, *booking_reply_en, *citizen_prompt_es, *citizen_prompt_en,
        *fallback_reply_es, *fallback_reply_en;
    int64_t probe_interval_ms, tts_cache;
} vg_cfg_t;

extern const char *const vg_stt_providers[];
extern const char *const vg_tts_providers[];
extern const tn_cfg_key_t vg_keys[];
extern const size_t vg_nkeys;

typedef struct vg_metrics {
    tn_metric_t *active;      /* gauge */
    tn_metric_t *sessions;    /* counter {outcome} */
    tn_metric_t *turns;       /* counter {kind,outcome} */
    tn_metric_t *first_audio; /* histogram: end of speech -> first reply audio */
    tn_metric_t *overhead;    /* histogram: the same minus the time spent in STT, rag, TTS */
    tn_metric_t *stage;       /* histogram {stage}: stt, rag, tts */
    tn_metric_t *opus_errors; /* counter */
    tn_metric_t *interrupts;  /* counter */
    tn_metric_t *events;      /* counter {topic,outcome} */
    tn_metric_t *refused;     /* counter {reason}: upgrades refused */
} vg_metrics_t;

/* One tenant's key for rag (token sessions: the gateway calls rag with it). */
typedef struct vg_rag_key {
    char tenant[TN_AUTH_TENANT_MAX + 1];
    char *key;
} vg_rag_key_t;

typedef struct vg vg_t;
typedef struct vg_session vg_session_t;
typedef struct vg_play vg_play_t;

/* A unit of work for the pool: a turn of a session. */
typedef struct vg_turn {
    struct vg_turn *next;
    vg_session_t *s; /* a reference */
    unsigned gen;    /* the session's generation when the turn began (its send tag) */
    bool text_turn;
    char *text;   /* text turns: the question */
    int16_t *pcm; /* voice turns: the utterance */
    size_t n;
    int64_t end_us;   /* end of speech (or the text message's arrival) */
    double speech_ms; /* voiced part of the utterance */
} vg_turn_t;

struct vg {
    const vg_cfg_t *cfg;
    tn_app_t *app;
    vg_metrics_t m;
    tn_auth_t *auth; /* borrowed from the app; NULL = auth disabled */
    unsigned char token_secret[64];
    size_t token_secret_len;
    vg_rag_key_t *rag_keys;
    size_t nrag_keys;
    tn_ws_server_t *ws;
    tn_schema_t *client_schema, *sessions_schema, *requests_schema;
    tn_pii_t *pii;
    tn_category_t *intents, *services;
    tn_stt_t *stt;
    tn_tts_t *tts;
    tn_http_client_t *rag, *probe_stt, *probe_tts;
    /* one circuit breaker per upstream: while open, turns get upstream_unavailable at once */
    tn_breaker_t stt_breaker, tts_breaker, rag_breaker;
    tn_kafka_producer_t *producer;
    /* the worker pool */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    vg_turn_t *qhead, *qtail;
    size_t qlen;
    bool qstop;
    pthread_t *workers;
    size_t nworkers;
    /* the playout thread: sessions with reply audio to encode (each entry a reference) */
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    pthread_cond_t pfirst; /* broadcast when a turn's first packet was queued */
    vg_session_t **playing;
    size_t nplaying, capplaying;
    bool pstop, pkick, playout_running;
    pthread_t playout;
    /* readiness (the prober and the results consumer) */
    pthread_t prober, results;
    bool prober_running, results_running;
    atomic_bool stop_bg;
    atomic_bool rag_ok, stt_ok, tts_ok, kafka_ok;
    tn_kafka_consumer_t *results_cons;
    /* booking requests waiting for results: request id -> session */
    pthread_mutex_t bmu;
    struct vg_pending *pending;
    atomic_int nsessions;
    /* spoken texts already synthesized (fixed prompts, frequent answers), by lang and rate */
    pthread_mutex_t cmu;
    struct vg_cached *cache; /* most recently used first */
    size_t ncache;
};

struct vg_session {
    atomic_int refs;
    vg_t *g;
    tn_ws_conn_t *conn; /* a reference */
    char id[37];
    char tenant[TN_AUTH_TENANT_MAX + 1];
    char *rag_auth; /* "Authorization: Bearer KEY" for rag, or NULL (auth disabled) */
    char trace[64];
    int64_t opened_us;
    /* set by the start message (loop thread; read by workers after start) */
    bool started, closed;
    char lang[3];
    int rate;
    size_t frame;       /* samples per 20 ms */
    pthread_mutex_t mu; /* citizen data, counters that workers update */
    char *citizen_name, *citizen_id, *citizen_phone;
    /* audio (loop thread only) */
    tn_opus_dec_t *dec;
    tn_vad_t *vad;
    int16_t *pcm, *vadbuf;
    int16_t *utt;                           /* the utterance being collected (pre-roll included) */
    size_t utt_n, utt_cap, utt_last_voiced; /* samples; last voiced frame end */
    int16_t *ring;                          /* pre-roll frames before speech */
    size_t ring_frames, ring_pos, ring_fill;
    bool in_speech;
    int64_t silence_ms, voiced_ms, run_ms; /* run_ms: consecutive voiced time */
    /* real time of the incoming stream: the earliest (arrival - audio before it) of the stream,
     * and the worst lag of a packet behind it (a loop that falls behind shows here) */
    int64_t in_anchor_us, in_stream_ms, in_late_max_us;
    /* reply audio waiting to be encoded (guarded by mu), the encoder (playout thread only),
     * and when the first packet of generation first_out_gen was queued */
    vg_play_t *play_head, *play_tail;
    bool in_playout;
    tn_opus_enc_t *enc;
    atomic_uint first_out_gen;
    atomic_llong first_out_us;
    /* turns */
    atomic_uint gen; /* bumped by barge-in and by each new turn (under mu: see playout.c) */
    atomic_llong busy_until_us; /* a turn runs or its audio plays until then */
    /* totals (atomic: loop thread and workers) */
    atomic_long packets_in, opus_errors, turns, interruptions, bad_messages;
    atomic_llong audio_in_ms, audio_out_ms;
};

/* config.c */
void vg_metrics_init(vg_metrics_t *m, tn_metrics_t *reg);

/* gateway.c */
tn_err_t vg_gateway_start(vg_t *g, char *err, size_t errlen);
/** Send a JSON message to the session (takes @p msg). */
void vg_send_json(vg_session_t *s, json_t *msg);
void vg_send_error(vg_session_t *s, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* session.c */
vg_session_t *vg_session_new(vg_t *g, tn_ws_conn_t *conn, const char *tenant, const char *key);
vg_session_t *vg_session_keep(vg_session_t *s);
void vg_session_release(vg_session_t *s);
/** The start message (validated). false: an error was sent (bad rate). */
bool vg_session_start(vg_session_t *s, const char *lang, int rate, const json_t *citizen);
void vg_session_set_citizen(vg_session_t *s, const json_t *citizen);
/** One binary message: an Opus packet. */
void vg_session_audio(vg_session_t *s, const uint8_t *pkt, size_t len);
/** Stop message: the utterance being collected ends now. */
void vg_session_flush(vg_session_t *s);
/** A text question. */
void vg_session_text(vg_session_t *s, const char *text);
/** The socket is gone (code). */
void vg_session_closed(vg_session_t *s, int code);
/** Barge-in: cancel the running turn and its queued audio, tell the client. */
void vg_session_interrupt(vg_session_t *s);
bool vg_session_busy(vg_session_t *s);

/* turn.c */
void vg_tts_cache_free(vg_t *g);
tn_err_t vg_pool_start(vg_t *g);
void vg_pool_stop(vg_t *g);
/** Queue a turn (takes it). false when the pool is full (the turn was freed). */
bool vg_pool_submit(vg_t *g, vg_turn_t *t);
void vg_turn_free(vg_turn_t *t);

/* playout.c */
tn_err_t vg_playout_start(vg_t *g);
void vg_playout_stop(vg_t *g);
/** Play @p n samples (copied, the session's rate) from real-time @p slot_us, for turn @p gen. */
void vg_playout_audio(vg_session_t *s, unsigned gen, const int16_t *pcm, size_t n, int64_t slot_us);
/** audio_end of turn @p gen, sent with the packet of @p slot_us (after the last one). */
void vg_playout_end(vg_session_t *s, unsigned gen, int64_t slot_us);
void vg_playout_free(vg_play_t *p);

/* rag.c */
typedef struct vg_rag_answer {
    json_t *citations; /* array */
    char *text;        /* the whole answer */
    char answer_error[256];
    double upstream_ms; /* until the answer was complete */
    long status;        /* rag's HTTP status (0: no answer) */
} vg_rag_answer_t;
/** Called with each complete sentence of the answer as it streams (return non-zero to stop). */
typedef int(vg_sentence_fn)(void *opaque, const char *sentence, size_t len);
tn_err_t vg_rag_ask(vg_t *g, vg_session_t *s, const char *question, vg_sentence_fn *on_sentence,
                    void *opaque, vg_rag_answer_t *out, char *err, size_t errlen);
void vg_rag_answer_free(vg_rag_answer_t *a);
/** Split complete sentences off the front of @p buf (pending text); exposed for the tests. */
size_t vg_sentence_end(const char *text, size_t len, size_t min_len);
/** Copy @p len bytes of @p text without citation markers "[n]" and with blanks collapsed. */
char *vg_speakable(const char *text, size_t len);

/* booking.c */
tn_err_t vg_booking_start(vg_t *g, char *err, size_t errlen);
void vg_booking_stop(vg_t *g);
/** The service code when @p text asks for an appointment (borrowed), else NULL. */
const char *vg_booking_intent(vg_t *g, const char *text, const char *lang);
/** Produce an appointments.requests record for @p s; the request id into @p rid (37 bytes).
 *  TN_ERR_INVALID when the session has no citizen data (a message was sent). */
tn_err_t vg_booking_request(vg_t *g, vg_session_t *s, const char *service, char *rid);
void vg_booking_forget(vg_t *g, vg_session_t *s);

/* events.c */
/** Produce one voice.sessions event: @p extra's fields are added to the common ones (takes). */
void vg_event(vg_session_t *s, const char *event, json_t *extra);
/** A redacted copy of @p text (caller frees), or NULL when redaction failed. */
char *vg_redact(vg_t *g, const char *text);

#endif
