/* embedder: configuration keys and metric families. */
#include <stddef.h>

#include "embedder.h"
#include "taina/mem.h"

#define KEY(name, type, field, def, flags, help, min, max)                                         \
    {                                                                                              \
        name, type, offsetof(embedder_cfg_t, field), def, flags, help, min, max, NULL              \
    }

const char *const embedder_providers[] = {"hash", "openai", NULL};
static const char *const stores[] = {"none", "qdrant", NULL};

const tn_cfg_key_t embedder_keys[] = {
    KEY("embedder_topic_in", TN_CFG_STRING, topic_in, "tickets.enriched", 0,
        "Topic of enriched tickets to embed", 0, 0),
    KEY("embedder_topic_out", TN_CFG_STRING, topic_out, "tickets.embedded", 0,
        "Topic of embedded chunks (vectors)", 0, 0),
    KEY("embedder_topic_dlq", TN_CFG_STRING, topic_dlq, "tickets.dlq", 0, "Dead-letter topic", 0,
        0),
    KEY("embedder_group", TN_CFG_STRING, group, "taina-embedder", 0, "Consumer group", 0, 0),
    KEY("embedder_batch_chunks", TN_CFG_INT, batch_chunks, "64", 0,
        "Chunks per batch (across records) before embedding", 1, 100000),
    KEY("embedder_batch_linger", TN_CFG_DURATION, batch_linger_ms, "50ms", 0,
        "How long a batch waits for more chunks", 1, 60000),
    KEY("embedder_max_attempts", TN_CFG_INT, max_attempts, "20", 0,
        "Attempts of a batch against failing upstreams before its records go to the DLQ", 1, 1000),
    KEY("embedder_retry_base", TN_CFG_DURATION, retry_base_ms, "200ms", 0,
        "First retry wait (doubles each attempt, full jitter)", 1, 600000),
    KEY("embedder_retry_cap", TN_CFG_DURATION, retry_cap_ms, "10s", 0, "Longest retry wait", 1,
        3600000),
    KEY("embedder_schemas_dir", TN_CFG_STRING, schemas_dir, "schemas", 0,
        "Folder of the JSON Schemas", 0, 0),
    {"embed_provider", TN_CFG_ENUM, offsetof(embedder_cfg_t, provider), "hash", 0,
     "Embeddings: hash (in-process, deterministic) or openai (any OpenAI-compatible API)", 0, 0,
     embedder_providers},
    KEY("embed_model", TN_CFG_STRING, model, "", 0,
        "Model name (openai: required; hash: default taina-hash-v1)", 0, 0),
    KEY("embed_dims", TN_CFG_INT, dims, "384", 0,
        "Vector size (hash), or the dimensions to ask the openai model for (0 = its own)", 0,
        65536),
    KEY("embed_url", TN_CFG_STRING, embed_url, "", 0,
        "Base URL of the OpenAI-compatible API (http://host:port)", 0, 0),
    KEY("embed_api_key", TN_CFG_STRING, embed_api_key, "", TN_CFG_SECRET,
        "API key of the embeddings API", 0, 0),
    KEY("embed_batch", TN_CFG_INT, embed_batch, "64", 0, "Texts per embeddings request", 1, 2048),
    KEY("embed_timeout", TN_CFG_DURATION, embed_timeout_ms, "30s", 0,
        "Deadline of one embeddings call, retries included", 100, 600000),
    {"vector_store", TN_CFG_ENUM, offsetof(embedder_cfg_t, vector_store), "none", 0,
     "Where points go besides tickets.embedded: none (rag's local store reads the topic) or "
     "qdrant",
     0, 0, stores},
    KEY("qdrant_url", TN_CFG_STRING, qdrant_url, "http://127.0.0.1:6333", 0, "Qdrant REST URL", 0,
        0),
    KEY("qdrant_api_key", TN_CFG_STRING, qdrant_api_key, "", TN_CFG_SECRET, "Qdrant API key", 0, 0),
    KEY("qdrant_collection", TN_CFG_STRING, collection, "taina-chunks", 0,
        "Collection or alias the points go to", 0, 0),
    KEY("qdrant_timeout", TN_CFG_DURATION, qdrant_timeout_ms, "10s", 0,
        "Deadline of one Qdrant call, retries included", 100, 600000),
};
const size_t embedder_nkeys = TN_ARRAY_LEN(embedder_keys);

void embedder_metrics_init(embedder_metrics_t *m, tn_metrics_t *reg)
{
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    static const double secs[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1,   0.25,   0.5,   1,    2.5,   10};
    m->records = tn_metrics_counter(reg, "taina_embedder_records_total",
                                    "Enriched records handled, by outcome (committed).",
                                    TN_LABELS("outcome"));
    m->chunks = tn_metrics_counter(reg, "taina_embedder_chunks_total",
                                   "Chunks embedded and written (committed).", TN_NOLABELS);
    m->dlq = tn_metrics_counter(reg, "taina_embedder_dlq_total",
                                "Records sent to the dead-letter topic, by reason.",
                                TN_LABELS("reason"));
    m->batch = tn_metrics_histogram(reg, "taina_embedder_batch_chunks", "Chunks per batch.",
                                    TN_NOLABELS, sizes, TN_ARRAY_LEN(sizes));
    m->batch_s = tn_metrics_histogram(reg, "taina_embedder_batch_duration_seconds",
                                      "Time to embed and write one batch (successful attempt).",
                                      TN_NOLABELS, secs, TN_ARRAY_LEN(secs));
    m->retries = tn_metrics_counter(reg, "taina_embedder_retries_total",
                                    "Batch attempts that failed and were retried, by stage.",
                                    TN_LABELS("stage"));
}
