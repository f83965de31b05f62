/* voice-gateway: configuration keys and metric families. */
#include <stddef.h>

#include "taina/mem.h"
#include "voice.h"

#define KEY(name, type, field, def, flags, help, min, max)                                         \
    {                                                                                              \
        name, type, offsetof(vg_cfg_t, field), def, flags, help, min, max, NULL                    \
    }
#define ENUM(name, field, def, help, choices)                                                      \
    {                                                                                              \
        name, TN_CFG_ENUM, offsetof(vg_cfg_t, field), def, 0, help, 0, 0, choices                  \
    }

const char *const vg_stt_providers[] = {"local", "deepgram", "openai", NULL};
const char *const vg_tts_providers[] = {"espeak", "elevenlabs", NULL};

const tn_cfg_key_t vg_keys[] = {
    KEY("voice_max_sessions", TN_CFG_INT, max_sessions, "2000", 0,
        "Sessions open at once; more upgrades get 503", 1, 1000000),
    KEY("voice_max_frame", TN_CFG_SIZE, max_frame, "16KiB", 0,
        "Largest WebSocket frame payload (larger closes the session with 1009)", 1024, 1 << 24),
    KEY("voice_max_message", TN_CFG_SIZE, max_message, "64KiB", 0,
        "Largest WebSocket message, fragments joined (larger closes with 1009)", 1024, 1 << 26),
    KEY("voice_max_queue", TN_CFG_SIZE, max_queue, "2MiB", 0,
        "Largest send queue of a session (a client that does not read is closed with 1008)", 65536,
        1LL << 31),
    KEY("voice_idle_timeout", TN_CFG_DURATION, idle_timeout_ms, "30s", 0,
        "A silent connection gets a ping after this, and is closed after twice this", 1000,
        3600000),
    KEY("voice_token_secret", TN_CFG_STRING, token_secret, "", TN_CFG_SECRET,
        "HMAC secret of session tokens (at least 32 characters; shared by every replica). "
        "Empty = a random secret per process: tokens work only on the replica that made them",
        0, 0),
    KEY("voice_token_ttl", TN_CFG_DURATION, token_ttl_ms, "5m", 0,
        "Lifetime of a session token from POST /v1/sessions/token", 1000, 86400000),
    KEY("rag_url", TN_CFG_URL, rag_url, "http://127.0.0.1:8082", 0,
        "Base URL of the rag service (POST /v1/query, streamed)", 0, 0),
    KEY("voice_rag_keys_file", TN_CFG_STRING, rag_keys_file, "", TN_CFG_SECRET,
        "Keys the gateway calls rag with for sessions opened with a token: 'TENANT_ID KEY' "
        "per line (sessions opened with an API key forward that key)",
        0, 0),
    KEY("voice_rag_timeout", TN_CFG_DURATION, rag_timeout_ms, "10s", 0,
        "Deadline of one rag answer", 100, 600000),
    KEY("voice_rag_top_k", TN_CFG_INT, rag_top_k, "3", 0, "Passages rag cites per answer", 1, 50),
    KEY("voice_spoken_sentences", TN_CFG_INT, spoken_sentences, "3", 0,
        "Sentences of an answer that are spoken (the reply message has them all); 0 = all", 0,
        1000),
    KEY("voice_endpoint_silence", TN_CFG_DURATION, endpoint_silence_ms, "500ms", 0,
        "Silence that ends an utterance", 100, 10000),
    KEY("voice_max_utterance", TN_CFG_DURATION, max_utterance_ms, "15s", 0,
        "Longest utterance; a longer one is cut and transcribed", 1000, 120000),
    KEY("voice_min_speech", TN_CFG_DURATION, min_speech_ms, "120ms", 0,
        "Voiced time below which an utterance is noise and dropped", 20, 5000),
    KEY("voice_barge_in", TN_CFG_DURATION, barge_in_ms, "200ms", 0,
        "Continuous speech during a reply that interrupts it", 20, 5000),
    KEY("voice_preroll", TN_CFG_DURATION, preroll_ms, "40ms", 0,
        "Audio kept before the first voiced frame (the detector starts late on soft onsets)", 0,
        1000),
    KEY("voice_pacing_lead", TN_CFG_DURATION, pacing_lead_ms, "100ms", 0,
        "How far ahead of real time reply packets are sent (client jitter buffer)", 0, 5000),
    KEY("voice_io_batch", TN_CFG_DURATION, io_batch_ms, "4ms", 0,
        "The loop thread reads the sockets at most this often, everything ready at once (fewer "
        "wake-ups, each of which preempts the reply encoding on a shared core); 0 = at once",
        0, 20),
    KEY("voice_opus_bitrate", TN_CFG_INT, opus_bitrate, "24000", 0, "Bitrate of reply audio", 6000,
        510000),
    KEY("voice_opus_complexity", TN_CFG_INT, opus_complexity, "0", 0,
        "Opus encoder complexity of reply audio (0: ~11% less encoding CPU than 1, the same "
        "fidelity in tests/bench/voice-media; 1 adds SILK's mid pitch estimator)",
        0, 10),
    KEY("voice_workers", TN_CFG_INT, workers, "16", 0,
        "Threads that run turns (STT, rag, TTS calls block them)", 1, 1024),
    KEY("voice_max_pending_turns", TN_CFG_INT, max_pending_turns, "1000", 0,
        "Turns waiting for a worker; more are refused with an 'overloaded' error", 1, 1000000),
    KEY("voice_vad_denoise", TN_CFG_BOOL, vad_denoise, "false", 0,
        "Denoise frames before voice detection (speexdsp; costs CPU per frame)", 0, 0),
    KEY("voice_vad_prob_start", TN_CFG_INT, vad_prob_start, "80", 0,
        "Speech probability (percent) that starts speech", 0, 100),
    KEY("voice_vad_prob_continue", TN_CFG_INT, vad_prob_continue, "65", 0,
        "Speech probability (percent) that keeps speech going", 0, 100),
    KEY("voice_vad_floor", TN_CFG_INT, vad_floor_dbfs, "-50", 0,
        "Frames quieter than this (dBFS) are never speech", -100, 0),
    KEY("voice_vad_quiet_stride", TN_CFG_INT, vad_quiet_stride, "4", 0,
        "Without denoise, only every Nth frame under the floor goes through the detector (it "
        "cannot be speech; the others keep the noise estimate on the background); 1 = all",
        1, 100),
    KEY("voice_vad_half_rate", TN_CFG_BOOL, vad_half_rate, "true", 0,
        "Without denoise, the detector runs on the frame decimated to 8 kHz: half its CPU, the "
        "same decisions as at 16 kHz on the speech of tests/bench/voice-media",
        0, 0),
    ENUM("stt_provider", stt_provider, "local",
         "Speech to text: local (pocketsphinx, English), deepgram or openai", vg_stt_providers),
    KEY("stt_url", TN_CFG_STRING, stt_url, "", 0,
        "STT base URL (deepgram: https://api.deepgram.com; openai: https://api.openai.com)", 0, 0),
    KEY("stt_api_key", TN_CFG_STRING, stt_api_key, "", TN_CFG_SECRET, "STT API key", 0, 0),
    KEY("stt_model", TN_CFG_STRING, stt_model, "", 0,
        "STT model (deepgram: nova-2; openai: whisper-1)", 0, 0),
    KEY("stt_timeout", TN_CFG_DURATION, stt_timeout_ms, "15s", 0, "Deadline of one transcription",
        100, 600000),
    ENUM("tts_provider", tts_provider, "espeak", "Text to speech: espeak (local) or elevenlabs",
         vg_tts_providers),
    KEY("tts_url", TN_CFG_STRING, tts_url, "", 0,
        "ElevenLabs base URL (empty: https://api.elevenlabs.io)", 0, 0),
    KEY("tts_api_key", TN_CFG_STRING, tts_api_key, "", TN_CFG_SECRET, "ElevenLabs API key", 0, 0),
    KEY("tts_voice_es", TN_CFG_STRING, tts_voice_es, "", 0,
        "Spanish voice (espeak: es; elevenlabs: a voice id)", 0, 0),
    KEY("tts_voice_en", TN_CFG_STRING, tts_voice_en, "", 0,
        "English voice (espeak: en; elevenlabs: a voice id)", 0, 0),
    KEY("tts_model", TN_CFG_STRING, tts_model, "", 0, "ElevenLabs model id", 0, 0),
    KEY("tts_timeout", TN_CFG_DURATION, tts_timeout_ms, "15s", 0, "Deadline of one synthesis", 100,
        600000),
    KEY("voice_topic_sessions", TN_CFG_STRING, topic_sessions, "voice.sessions", 0,
        "Topic of session events", 0, 0),
    KEY("voice_topic_requests", TN_CFG_STRING, topic_requests, "appointments.requests", 0,
        "Topic of booking requests", 0, 0),
    KEY("voice_topic_results", TN_CFG_STRING, topic_results, "appointments.results", 0,
        "Topic of booking results, pushed to the session that asked", 0, 0),
    KEY("voice_intent_rules_file", TN_CFG_STRING, intent_rules_file, "", 0,
        "Booking intent keywords per language (category rules format; empty = "
        "services/voice-gateway/intents.rules)",
        0, 0),
    KEY("voice_service_rules_file", TN_CFG_STRING, service_rules_file, "", 0,
        "Keywords that name the service of a booking (category rules format; empty = the "
        "built-in ticket categories)",
        0, 0),
    KEY("voice_pii_rules_file", TN_CFG_STRING, pii_rules_file, "", 0,
        "PII rules for transcripts in voice.sessions (empty = built-in)", 0, 0),
    KEY("voice_schemas_dir", TN_CFG_STRING, schemas_dir, "schemas", 0, "Folder of the JSON Schemas",
        0, 0),
    KEY("voice_booking_window", TN_CFG_DURATION, booking_window_ms, "168h", 0,
        "Preferred window of a booking request: from tomorrow, this long", 3600000,
        31LL * 86400000),
    KEY("voice_booking_reply_es", TN_CFG_STRING, booking_reply_es,
        "De acuerdo, estoy pidiendo su cita. Le aviso en cuanto esté confirmada.", 0,
        "What the assistant says in Spanish when it requests an appointment", 0, 0),
    KEY("voice_booking_reply_en", TN_CFG_STRING, booking_reply_en,
        "All right, I am requesting your appointment. I will let you know when it is confirmed.", 0,
        "What the assistant says in English when it requests an appointment", 0, 0),
    KEY("voice_citizen_prompt_es", TN_CFG_STRING, citizen_prompt_es,
        "Para pedir una cita necesito su nombre y su número de documento.", 0,
        "What the assistant says in Spanish when a booking lacks the citizen's data", 0, 0),
    KEY("voice_citizen_prompt_en", TN_CFG_STRING, citizen_prompt_en,
        "To book an appointment I need your name and your id number.", 0,
        "What the assistant says in English when a booking lacks the citizen's data", 0, 0),
    KEY("voice_fallback_reply_es", TN_CFG_STRING, fallback_reply_es,
        "Lo siento, ahora no puedo responder. Inténtelo de nuevo en un momento.", 0,
        "Spanish answer when rag fails", 0, 0),
    KEY("voice_fallback_reply_en", TN_CFG_STRING, fallback_reply_en,
        "Sorry, I cannot answer right now. Please try again in a moment.", 0,
        "English answer when rag fails", 0, 0),
    KEY("voice_tts_cache", TN_CFG_INT, tts_cache, "64", 0,
        "Spoken texts kept after synthesis (prompts and repeated answers are spoken at once; "
        "0 = none)",
        0, 100000),
    KEY("voice_probe_interval", TN_CFG_DURATION, probe_interval_ms, "2s", 0,
        "How often /ready checks rag, the STT/TTS hosts and Kafka", 100, 600000),
};
const size_t vg_nkeys = TN_ARRAY_LEN(vg_keys);

void vg_metrics_init(vg_metrics_t *m, tn_metrics_t *reg)
{
    static const double lat[] = {0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2,
                                 0.3,   0.5,  0.75, 1,    1.5,  2,     3,   5,    10};
    static const double fine[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03,
                                  0.05,   0.075, 0.1,   0.2,   0.5,  1};
    m->active = tn_metrics_gauge(reg, "taina_voice_sessions", "Open voice sessions.", TN_NOLABELS);
    m->sessions = tn_metrics_counter(reg, "taina_voice_sessions_total",
                                     "Sessions ended, by how they ended.", TN_LABELS("outcome"));
    m->turns = tn_metrics_counter(reg, "taina_voice_turns_total", "Turns by kind and outcome.",
                                  TN_LABELS("kind", "outcome"));
    m->first_audio = tn_metrics_histogram(
        reg, "taina_voice_first_audio_seconds",
        "End of speech (or text question) to the first reply audio packet queued for sending.",
        TN_NOLABELS, lat, TN_ARRAY_LEN(lat));
    m->overhead = tn_metrics_histogram(
        reg, "taina_voice_overhead_seconds",
        "The gateway's own part of taina_voice_first_audio_seconds (minus STT, rag and TTS time).",
        TN_NOLABELS, fine, TN_ARRAY_LEN(fine));
    m->stage = tn_metrics_histogram(reg, "taina_voice_stage_duration_seconds",
                                    "Upstream time per turn: stt, rag (to the whole answer), "
                                    "tts (per sentence).",
                                    TN_LABELS("stage"), lat, TN_ARRAY_LEN(lat));
    m->opus_errors = tn_metrics_counter(reg, "taina_voice_opus_errors_total",
                                        "Opus packets that could not be decoded.", TN_NOLABELS);
    m->interrupts =
        tn_metrics_counter(reg, "taina_voice_interruptions_total",
                           "Replies cut short by the caller speaking (barge-in).", TN_NOLABELS);
    m->events =
        tn_metrics_counter(reg, "taina_voice_records_total",
                           "Records produced (or failed) by topic.", TN_LABELS("topic", "outcome"));
    m->refused = tn_metrics_counter(reg, "taina_voice_upgrades_refused_total",
                                    "WebSocket upgrades refused, by reason.", TN_LABELS("reason"));
}
