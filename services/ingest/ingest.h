/* ingest: HTTP ingest of tickets to tickets.raw, and the exactly-once enrichment of tickets.raw
 * into tickets.enriched (or tickets.dlq). Shared declarations of the service's files:
 *   main.c      the table of contents: config, wiring, loop, shutdown
 *   config.c    the config keys
 *   http.c      POST /v1/tickets
 *   enrich.c    one raw record -> one enriched record (pure: no I/O)
 *   pipeline.c  the consume-transform-produce loop in Kafka transactions
 */
#ifndef INGEST_H
#define INGEST_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "taina/app.h"
#include "taina/category.h"
#include "taina/kafka.h"
#include "taina/metrics.h"
#include "taina/pii.h"
#include "taina/schema.h"

typedef struct ingest_cfg {
    char *topic_raw, *topic_enriched, *topic_dlq;
    char *group;
    char *transactional_id;
    char *checkpoint_topic;
    int checkpoints; /* INGEST_CKPT_* (ingest_checkpoint_modes) */
    char *schemas_dir;
    char *pii_rules_file, *category_rules_file;
    int64_t chunk_words, chunk_overlap;
    bool chunk_text;
    int64_t batch_max, batch_max_bytes, batch_linger_ms, batch_min_ms;
    int64_t txn_timeout_ms;
    int64_t max_items;
    int64_t produce_timeout_ms;
    int64_t max_record_bytes;
    bool enrich;
} ingest_cfg_t;

/* TAINA_INGEST_CHECKPOINTS, in the order of ingest_checkpoint_modes */
enum { INGEST_CKPT_AUTO, INGEST_CKPT_ON, INGEST_CKPT_OFF };
extern const char *const ingest_checkpoint_modes[];
extern const tn_cfg_key_t ingest_keys[];
extern const size_t ingest_nkeys;

/** Compiled once at start, shared read-only by the HTTP threads and the pipeline. */
typedef struct ingest_rules {
    tn_schema_t *http_ticket; /* schemas/http/ingest.ticket.schema.json */
    tn_schema_t *raw;         /* schemas/tickets.raw.schema.json */
    tn_schema_t *enriched;    /* schemas/tickets.enriched.schema.json */
    tn_pii_t *pii;
    tn_category_t *category;
    size_t chunk_words, chunk_overlap;
    bool chunk_text; /* each chunk also carries its text */
} ingest_rules_t;

typedef struct ingest_metrics {
    tn_metric_t *http_items;      /* {outcome}: accepted, rejected */
    tn_metric_t *records_in;      /* {topic} */
    tn_metric_t *records_out;     /* {topic} */
    tn_metric_t *dlq;             /* {reason} */
    tn_metric_t *pii;             /* {type} */
    tn_metric_t *invalid_utf8;    /* sequences replaced */
    tn_metric_t *enrich_secs;     /* histogram */
    tn_metric_t *txn;             /* {outcome}: committed, aborted */
    tn_metric_t *txn_commit_secs; /* histogram */
    tn_metric_t *txn_records;     /* histogram: input records per committed transaction */
    tn_metric_t *grow;            /* gauge: enriched bytes per raw byte, as the budget guesses */
} ingest_metrics_t;

typedef struct ingest {
    const ingest_cfg_t *cfg;
    ingest_rules_t rules;
    ingest_metrics_t m;
    tn_kafka_producer_t *http_producer; /* idempotent, acks=all: HTTP ingest */
    tn_kafka_producer_t *txn_producer;  /* transactional: the pipeline's open transaction's */
    tn_kafka_producer_t *txn[2]; /* the pipeline's two: <id> and <id>-1 (pipeline.c, run()) */
    tn_kafka_consumer_t *consumer;
    atomic_bool pipeline_ready; /* transactions initialized and partitions assigned */
    struct ingest_pool *pool;   /* the second enrichment thread (pipeline.c) */
} ingest_t;

/* config.c / main.c */
tn_err_t ingest_rules_load(ingest_rules_t *r, const ingest_cfg_t *cfg);
void ingest_rules_free(ingest_rules_t *r);
void ingest_metrics_init(ingest_metrics_t *m, tn_metrics_t *reg);

/* http.c */
void ingest_http_tickets(tn_http_req_t *req, void *opaque);

/** One ticket of a POST /v1/tickets body. */
typedef struct ingest_item {
    int line;       /* 1-based NDJSON line; 1 for a single JSON body */
    json_t *doc;    /* the ticket as it goes to tickets.raw; NULL when rejected */
    json_t *error;  /* {"code","message","path"?,"keyword"?} when rejected */
    char *value;    /* serialized doc, once prepared */
    const char *id; /* ticket_id, borrowed from doc */
} ingest_item_t;

/** Why a body was refused as a whole: the HTTP status, error code and message. */
typedef struct ingest_body_error {
    int status;       /* 400 or 413 */
    const char *code; /* "invalid_json", "too_many_items" */
    char message[256];
} ingest_body_error_t;

/**
 * Parse a POST /v1/tickets body (pure: no I/O): one JSON document, or with @p ndjson one per
 * line (blank lines skipped, at most @p max_items). On TN_OK @p out holds @p nout >= 1 parsed
 * items (free with ingest_items_free()); otherwise @p err says why (400 malformed line or no
 * line, 413 too many lines) and nothing is allocated.
 */
tn_err_t ingest_body_parse(const char *body, size_t len, bool ndjson, int64_t max_items,
                           ingest_item_t **out, size_t *nout, ingest_body_error_t *err);
/** Validate one parsed item against the HTTP ticket schema and complete it into a tickets.raw
 * value (ticket id, received_at, schema_version, tenant) in it->value; on failure it->doc is
 * NULL and it->error says why. */
void ingest_item_prepare(const ingest_rules_t *rules, ingest_item_t *it, const char *tenant,
                         const char *now);
void ingest_items_free(ingest_item_t *items, size_t n);

/* enrich.c */
/** Why a record cannot be enriched: a DLQ reason code and one readable line. */
typedef struct ingest_reject {
    const char *reason; /* "json", "schema", "unknown_version", "too_large", "enrich" */
    char detail[512];
} ingest_reject_t;

/**
 * Turn the bytes of a tickets.raw value into the tickets.enriched value: compact JSON (free()
 * it; its length in @p out_len) valid against tickets.enriched, and its ticket id in
 * @p ticket_id (free() it too); or NULL with @p why filled. @p pii_counts gets tn_pii_ntypes()
 * counters (may be NULL).
 */
char *ingest_enrich(const ingest_rules_t *r, const void *value, size_t len, size_t max_bytes,
                    size_t *pii_counts, size_t *invalid_utf8, ingest_reject_t *why, size_t *out_len,
                    char **ticket_id);

/** The fast path of ingest_enrich()'s parse (TN_TESTABLE): the tree json_loadb() builds with
 * JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, or NULL when it leaves @p value to jansson (errors,
 * reals, and whatever else it does not handle). Caller owns the result (json_decref). */
json_t *ingest_json_parse(const void *value, size_t len);

/* pipeline.c */
/** Start the second enrichment thread: first of all the threads (see ingest_init). */
void ingest_pool_start(ingest_t *in);
/** Create the transactional producer (retried until it works or a stop is requested) and the
 * consumer. TN_ERR_STOPPED when stopped first; TN_ERR_CONFIG on a bad setting (logged). */
tn_err_t ingest_pipeline_init(ingest_t *in, tn_app_t *app);
/** Consume, enrich and produce in transactions until stopping; returns on a fatal error. */
tn_err_t ingest_pipeline_run(ingest_t *in);
void ingest_pipeline_close(ingest_t *in);

#endif
