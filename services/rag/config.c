/* rag: configuration keys and metric families. */
#include <stddef.h>

#include "rag.h"
#include "taina/mem.h"

#define KEY(name, type, field, def, flags, help, min, max)                                         \
    {                                                                                              \
        name, type, offsetof(rag_cfg_t, field), def, flags, help, min, max, NULL                   \
    }
#define ENUM(name, field, def, help, choices)                                                      \
    {                                                                                              \
        name, TN_CFG_ENUM, offsetof(rag_cfg_t, field), def, 0, help, 0, 0, choices                 \
    }

static const char *const backends[] = {"local", "qdrant", NULL};
const char *const rag_embed_providers[] = {"hash", "openai", NULL};
const char *const rag_llm_providers[] = {"extractive", "openai", NULL};

const tn_cfg_key_t rag_keys[] = {
    ENUM("rag_backend", backend, "local",
         "Vector search: local (exact, in memory, from tickets.embedded) or qdrant", backends),
    KEY("rag_topic_embedded", TN_CFG_STRING, topic_embedded, "tickets.embedded", 0,
        "Topic the local backend materializes", 0, 0),
    KEY("rag_topic_queries", TN_CFG_STRING, topic_queries, "rag.queries", 0,
        "Topic of query events", 0, 0),
    KEY("rag_max_inflight", TN_CFG_INT, max_inflight, "64", 0,
        "Requests answered at once; more get 503 with Retry-After", 1, 100000),
    KEY("rag_request_timeout", TN_CFG_DURATION, request_timeout_ms, "15s", 0,
        "Deadline of a request (504 when an upstream exceeds it)", 100, 600000),
    KEY("rag_context_tokens", TN_CFG_INT, context_tokens, "1500", 0,
        "Token budget of the context given to the LLM (4 characters a token)", 50, 1000000),
    KEY("rag_local_seed_file", TN_CFG_STRING, local_seed_file, "", 0,
        "Local backend: NDJSON of tickets.embedded record values applied before the topic is "
        "read (a bench and operations aid: loads a snapshot without Kafka; empty = none)",
        0, 0),
    KEY("rag_coalesce_window_us", TN_CFG_INT, coalesce_window_us, "1000", 0,
        "Local backend: > 0 runs the shared scan (one thread reads the matrix round and round; "
        "a search joins at the next block and leaves after one round); 0 = every search alone",
        0, 1000000),
    KEY("rag_coalesce_max", TN_CFG_INT, coalesce_max, "16", 0,
        "Local backend: most searches in the shared scan at once (more wait to join)", 1, 256),
    KEY("rag_coalesce_passes", TN_CFG_INT, coalesce_passes, "1", 0,
        "Unused since the shared scan replaced coalesced passes; kept so that existing "
        "configurations still start",
        1, 256),
    KEY("rag_sources", TN_CFG_STRING, sources, "", 0,
        "Sources (comma-separated, at most 8; e.g. import,web) every search is limited to; a "
        "request's filters.source must be among them (else 422); empty = every source",
        0, 0),
    KEY("rag_schemas_dir", TN_CFG_STRING, schemas_dir, "schemas", 0, "Folder of the JSON Schemas",
        0, 0),
    KEY("rag_pii_rules_file", TN_CFG_STRING, pii_rules_file, "", 0,
        "PII rules for the questions in rag.queries (empty = built-in, as ingest)", 0, 0),
    ENUM("embed_provider", embed_provider, "hash",
         "Embeddings of the question: the same provider and model as the index",
         rag_embed_providers),
    KEY("embed_model", TN_CFG_STRING, embed_model, "", 0,
        "Model name (openai: required; hash: taina-hash-v1)", 0, 0),
    KEY("embed_dims", TN_CFG_INT, embed_dims, "384", 0, "Vector size (as the embedder's)", 0,
        65536),
    KEY("embed_url", TN_CFG_STRING, embed_url, "", 0, "OpenAI-compatible embeddings base URL", 0,
        0),
    KEY("embed_api_key", TN_CFG_STRING, embed_api_key, "", TN_CFG_SECRET, "Embeddings API key", 0,
        0),
    KEY("embed_timeout", TN_CFG_DURATION, embed_timeout_ms, "5s", 0,
        "Deadline of the question's embedding", 100, 600000),
    KEY("qdrant_url", TN_CFG_STRING, qdrant_url, "http://127.0.0.1:6333", 0, "Qdrant REST URL", 0,
        0),
    KEY("qdrant_api_key", TN_CFG_STRING, qdrant_api_key, "", TN_CFG_SECRET, "Qdrant API key", 0, 0),
    KEY("qdrant_collection", TN_CFG_STRING, collection, "taina-chunks", 0,
        "Collection or alias to search", 0, 0),
    KEY("qdrant_timeout", TN_CFG_DURATION, qdrant_timeout_ms, "5s", 0,
        "Deadline of one Qdrant search", 100, 600000),
    ENUM("llm_provider", llm_provider, "extractive",
         "Answers: extractive (from the best sentences, no network) or openai", rag_llm_providers),
    KEY("llm_model", TN_CFG_STRING, llm_model, "", 0, "Chat model (openai)", 0, 0),
    KEY("llm_url", TN_CFG_STRING, llm_url, "", 0, "OpenAI-compatible chat base URL", 0, 0),
    KEY("llm_api_key", TN_CFG_STRING, llm_api_key, "", TN_CFG_SECRET, "LLM API key", 0, 0),
    KEY("llm_timeout", TN_CFG_DURATION, llm_timeout_ms, "30s", 0, "Deadline of one LLM call", 100,
        600000),
    KEY("llm_max_tokens", TN_CFG_INT, llm_max_tokens, "512", 0, "Longest answer (openai)", 1,
        100000),
};
const size_t rag_nkeys = TN_ARRAY_LEN(rag_keys);

void rag_metrics_init(rag_metrics_t *m, tn_metrics_t *reg)
{
    static const double secs[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    m->queries =
        tn_metrics_counter(reg, "taina_rag_queries_total", "Requests by endpoint and outcome.",
                           TN_LABELS("endpoint", "outcome"));
    m->stage_s =
        tn_metrics_histogram(reg, "taina_rag_stage_duration_seconds", "Time per stage of a query.",
                             TN_LABELS("stage"), secs, TN_ARRAY_LEN(secs));
    m->index = tn_metrics_gauge(reg, "taina_rag_index", "Local index: chunks, rows and bytes.",
                                TN_LABELS("what"));
    m->inflight =
        tn_metrics_gauge(reg, "taina_rag_inflight", "Requests being answered.", TN_NOLABELS);
    m->events = tn_metrics_counter(reg, "taina_rag_events_total", "rag.queries events, by outcome.",
                                   TN_LABELS("outcome"));
}
