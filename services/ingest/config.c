/* ingest: configuration keys, the rules compiled at start, the metric families. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "taina/log.h"
#include "taina/mem.h"

#define KEY(name, type, field, def, help, min, max)                                                \
    {                                                                                              \
        name, type, offsetof(ingest_cfg_t, field), def, 0, help, min, max, NULL                    \
    }

const char *const ingest_checkpoint_modes[] = {"auto", "on", "off", NULL};

const tn_cfg_key_t ingest_keys[] = {
    KEY("ingest_topic_raw", TN_CFG_STRING, topic_raw, "tickets.raw",
        "Topic of raw tickets (HTTP ingest writes it, the pipeline reads it)", 0, 0),
    KEY("ingest_topic_enriched", TN_CFG_STRING, topic_enriched, "tickets.enriched",
        "Topic of enriched tickets", 0, 0),
    KEY("ingest_topic_dlq", TN_CFG_STRING, topic_dlq, "tickets.dlq", "Dead-letter topic", 0, 0),
    KEY("ingest_group", TN_CFG_STRING, group, "taina-ingest", "Consumer group of the pipeline", 0,
        0),
    KEY("ingest_transactional_id", TN_CFG_STRING, transactional_id, "",
        "Transactional id (stable per replica; empty = taina-ingest-<hostname>); the pipeline's "
        "second producer uses it with -1 appended",
        0, 0),
    KEY("ingest_checkpoint_topic", TN_CFG_STRING, checkpoint_topic, "taina.checkpoints",
        "Topic that also records each transaction's input offsets (exactly once on clusters "
        "that do not store transactional offsets, like devstack); empty = off",
        0, 0),
    {"ingest_checkpoints", TN_CFG_ENUM, offsetof(ingest_cfg_t, checkpoints), "auto", 0,
     "Write the checkpoints: auto (only where the cluster does not store transactional offsets: "
     "librdkafka's mock cluster, devstack), on or off",
     0, 0, ingest_checkpoint_modes},
    KEY("ingest_schemas_dir", TN_CFG_STRING, schemas_dir, "schemas",
        "Folder of the JSON Schemas (the repo's schemas/)", 0, 0),
    KEY("ingest_pii_rules_file", TN_CFG_STRING, pii_rules_file, "",
        "PII redaction rules (empty = built-in: EMAIL, IBAN, CARD, CEDULA, PHONE)", 0, 0),
    KEY("ingest_category_rules_file", TN_CFG_STRING, category_rules_file, "",
        "Category rules (empty = built-in citizen-services rules)", 0, 0),
    KEY("ingest_chunk_words", TN_CFG_INT, chunk_words, "200", "Words per chunk at most", 8, 10000),
    KEY("ingest_chunk_overlap", TN_CFG_INT, chunk_overlap, "40",
        "Words shared by consecutive chunks (less than ingest_chunk_words)", 0, 9999),
    KEY("ingest_chunk_text", TN_CFG_BOOL, chunk_text, "false",
        "Also write each chunk's text into tickets.enriched (false: a chunk is its start and end "
        "code-point offsets into the record's text, which halves the topic's bytes)",
        0, 0),
    KEY("ingest_batch_max", TN_CFG_INT, batch_max, "500", "Records per transaction at most", 1,
        100000),
    KEY("ingest_batch_max_bytes", TN_CFG_SIZE, batch_max_bytes, "2MiB",
        "Enriched bytes in memory at most: the records held while a transaction commits plus "
        "what the producer holds until acknowledged (a batch that reaches it streams the rest "
        "of its records into its open transaction)",
        65536, 1LL << 30),
    KEY("ingest_batch_linger", TN_CFG_DURATION, batch_linger_ms, "100ms",
        "How long a transaction gathers records before it commits", 1, 60000),
    KEY("ingest_batch_min_time", TN_CFG_DURATION, batch_min_ms, "20ms",
        "Shortest time a transaction gathers records while the one before it commits (fewer, "
        "larger transactions: librdkafka 2.0 spends about 3 ms of CPU on each)",
        0, 60000),
    KEY("ingest_txn_timeout", TN_CFG_DURATION, txn_timeout_ms, "30s",
        "Deadline of a transaction commit or abort", 1000, 600000),
    KEY("ingest_max_items", TN_CFG_INT, max_items, "1000",
        "NDJSON lines per request at most (more gets 413)", 1, 1000000),
    KEY("ingest_produce_timeout", TN_CFG_DURATION, produce_timeout_ms, "5s",
        "How long a request waits for the broker to take its records (then 503)", 100, 300000),
    KEY("ingest_max_record_bytes", TN_CFG_SIZE, max_record_bytes, "900KiB",
        "Largest raw record the pipeline enriches (larger goes to the DLQ as too_large)", 1024,
        1LL << 30),
    KEY("ingest_enrich", TN_CFG_BOOL, enrich, "true",
        "Run the enrichment pipeline (false: HTTP ingest only)", 0, 0),
};
const size_t ingest_nkeys = TN_ARRAY_LEN(ingest_keys);

static tn_schema_t *load_schema(const char *dir, const char *name)
{
    char err[512];
    char *rel = tn_xasprintf("%s/%s", dir, name);
    char *path = tn_app_data_path(rel);
    tn_schema_t *s = tn_schema_load(path, err, sizeof(err));
    if (!s)
        TN_LOG(TN_LOG_ERROR, "ingest: schema: %s", err);
    free(path);
    free(rel);
    return s;
}

/* Read a whole rules file; NULL (logged) when it cannot be read. */
static char *read_rules(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        TN_LOG(TN_LOG_ERROR, "ingest: cannot read rules file %s", path);
        return NULL;
    }
    tn_buf_t b;
    tn_buf_init(&b, 16u << 20);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        tn_buf_add(&b, chunk, n);
    fclose(f);
    tn_buf_add(&b, "", 1);
    return tn_buf_detach(&b, NULL);
}

tn_err_t ingest_rules_load(ingest_rules_t *r, const ingest_cfg_t *cfg)
{
    char err[512];
    memset(r, 0, sizeof(*r));
    if (cfg->chunk_overlap >= cfg->chunk_words) {
        TN_LOG(TN_LOG_ERROR,
               "ingest: TAINA_INGEST_CHUNK_OVERLAP (%lld) must be less than "
               "TAINA_INGEST_CHUNK_WORDS (%lld)",
               (long long)cfg->chunk_overlap, (long long)cfg->chunk_words);
        return TN_ERR_CONFIG;
    }
    r->chunk_words = (size_t)cfg->chunk_words;
    r->chunk_overlap = (size_t)cfg->chunk_overlap;
    r->chunk_text = cfg->chunk_text;
    r->http_ticket = load_schema(cfg->schemas_dir, "http/ingest.ticket.schema.json");
    r->raw = load_schema(cfg->schemas_dir, "tickets.raw.schema.json");
    r->enriched = load_schema(cfg->schemas_dir, "tickets.enriched.schema.json");
    if (!r->http_ticket || !r->raw || !r->enriched)
        goto fail;
    r->pii = *cfg->pii_rules_file ? tn_pii_load(cfg->pii_rules_file, err, sizeof(err))
                                  : tn_pii_new(NULL, "built-in PII rules", err, sizeof(err));
    if (!r->pii) {
        TN_LOG(TN_LOG_ERROR, "ingest: %s", err);
        goto fail;
    }
    /* enrich.c writes the type names as the keys of "pii" unescaped: tickets.enriched wants
     * ^[A-Z_]{1,32}$ and at most 32 of them (the pipeline counts up to 16) */
    for (size_t i = 0; i < tn_pii_ntypes(r->pii); i++) {
        const char *t = tn_pii_type_name(r->pii, i);
        if (i >= 16 || !*t || strlen(t) > 32 ||
            strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != strlen(t)) {
            TN_LOG(TN_LOG_ERROR, "ingest: PII type %s: at most 16 types named [A-Z_]{1,32}", t);
            goto fail;
        }
    }
    char *text = *cfg->category_rules_file ? read_rules(cfg->category_rules_file) : NULL;
    if (*cfg->category_rules_file && !text)
        goto fail;
    r->category = tn_category_new(
        text, *cfg->category_rules_file ? cfg->category_rules_file : "built-in category rules", err,
        sizeof(err));
    free(text);
    if (!r->category) {
        TN_LOG(TN_LOG_ERROR, "ingest: %s", err);
        goto fail;
    }
    return TN_OK;
fail:
    ingest_rules_free(r);
    return TN_ERR_CONFIG;
}

void ingest_rules_free(ingest_rules_t *r)
{
    tn_schema_destroy(r->http_ticket);
    tn_schema_destroy(r->raw);
    tn_schema_destroy(r->enriched);
    tn_pii_destroy(r->pii);
    tn_category_destroy(r->category);
    memset(r, 0, sizeof(*r));
}

void ingest_metrics_init(ingest_metrics_t *m, tn_metrics_t *reg)
{
    static const double secs[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                  0.01,   0.025,   0.05,   0.1,   0.25,   1};
    static const double sizes[] = {1, 10, 50, 100, 250, 500, 1000, 2000, 5000};
    m->http_items =
        tn_metrics_counter(reg, "taina_ingest_http_items_total",
                           "Items received over HTTP, by outcome.", TN_LABELS("outcome"));
    m->records_in =
        tn_metrics_counter(reg, "taina_ingest_records_in_total",
                           "Records read by the enrichment pipeline.", TN_LABELS("topic"));
    m->records_out = tn_metrics_counter(reg, "taina_ingest_records_out_total",
                                        "Records written by the enrichment pipeline (committed).",
                                        TN_LABELS("topic"));
    m->dlq = tn_metrics_counter(reg, "taina_ingest_dlq_total",
                                "Records sent to the dead-letter topic, by reason (committed).",
                                TN_LABELS("reason"));
    m->pii =
        tn_metrics_counter(reg, "taina_ingest_pii_redactions_total",
                           "PII matches replaced by placeholders, by type.", TN_LABELS("type"));
    m->invalid_utf8 =
        tn_metrics_counter(reg, "taina_ingest_invalid_utf8_total",
                           "Invalid UTF-8 sequences replaced by U+FFFD.", TN_NOLABELS);
    m->enrich_secs =
        tn_metrics_histogram(reg, "taina_ingest_enrich_duration_seconds",
                             "Time to enrich one record.", TN_NOLABELS, secs, TN_ARRAY_LEN(secs));
    m->txn_commit_secs = tn_metrics_histogram(
        reg, "taina_ingest_txn_commit_seconds",
        "Time to commit one pipeline transaction (offsets, commit, offset commit, checkpoints).",
        TN_NOLABELS, tn_metrics_duration_buckets, tn_metrics_duration_nbuckets);
    m->txn_records = tn_metrics_histogram(reg, "taina_ingest_txn_records",
                                          "Input records per committed pipeline transaction.",
                                          TN_NOLABELS, sizes, TN_ARRAY_LEN(sizes));
    m->grow =
        tn_metrics_gauge(reg, "taina_ingest_enriched_bytes_ratio",
                         "Enriched bytes per raw byte as seen so far: how the memory budget "
                         "(TAINA_INGEST_BATCH_MAX_BYTES) counts records still being enriched.",
                         TN_NOLABELS);
    m->txn = tn_metrics_counter(reg, "taina_ingest_transactions_total",
                                "Pipeline transactions, by outcome.", TN_LABELS("outcome"));
}
