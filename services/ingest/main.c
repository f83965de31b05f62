/* taina-ingest: HTTP ingest of tickets into tickets.raw, and exactly-once enrichment of
 * tickets.raw into tickets.enriched (invalid records to tickets.dlq). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "ingest.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

static const char *const ticket_types[] = {"application/json", "application/x-ndjson", NULL};

/* /ready: the HTTP producer exists, and the pipeline (when on) has its transactions and
 * partitions. */
static bool ready(void *opaque, char *reason, size_t len)
{
    ingest_t *in = opaque;
    if (in->cfg->enrich && !atomic_load(&in->pipeline_ready)) {
        snprintf(reason, len, "the enrichment consumer has no partitions assigned yet");
        return false;
    }
    return true;
}

static tn_err_t http_producer_new(ingest_t *in, tn_app_t *app)
{
    char err[512], timeout[32];
    /* Every record gets its final answer within the produce timeout: no 503 for a record that
     * later lands anyway. (A user's TAINA_KAFKA_MESSAGE_TIMEOUT_MS still wins.) */
    snprintf(timeout, sizeof(timeout), "%lld", (long long)in->cfg->produce_timeout_ms);
    tn_cfg_prop_t defaults[] = {{"message.timeout.ms", timeout}};
    tn_kafka_opts_t o = tn_app_kafka_opts(app, "taina-ingest-http");
    o.defaults = defaults;
    o.ndefaults = 1;
    o.stats_interval_ms = 0;
    in->http_producer = tn_kafka_producer_new(&o, NULL, err, sizeof(err));
    if (!in->http_producer) {
        TN_LOG(TN_LOG_ERROR, "ingest: %s", err);
        return TN_ERR_CONFIG;
    }
    return TN_OK;
}

/* Free what init built (after the HTTP server stopped). */
static void ingest_free(ingest_t *in)
{
    ingest_pipeline_close(in);
    if (in->http_producer) {
        tn_kafka_producer_flush(in->http_producer, in->cfg->produce_timeout_ms);
        tn_kafka_producer_destroy(in->http_producer);
    }
    ingest_rules_free(&in->rules);
    free(in);
}

static tn_err_t ingest_init(tn_app_t *app, void *cfgp, void **state)
{
    ingest_t *in = tn_xcalloc(1, sizeof(*in));
    in->cfg = cfgp;
    /* The second enrichment thread first, before any other thread: glibc gives a thread the
     * arena of its first allocation for good, and with two arenas (main()) the first other
     * thread to allocate creates the second one; later threads share the two in turn. Started
     * after librdkafka's, the worker landed on the pipeline thread's arena in about a third of
     * the runs, and the two then waited on each other's malloc lock (15,000 futex sleeps a
     * thread in 20,000 8 KB tickets, 180 instead of 135 us of CPU a record). */
    if (in->cfg->enrich)
        ingest_pool_start(in);
    /* config: schemas and rules compiled once */
    tn_err_t rc = ingest_rules_load(&in->rules, in->cfg);
    if (rc != TN_OK)
        goto fail;
    ingest_metrics_init(&in->m, tn_app_metrics(app));
    /* wiring: the HTTP producer, the pipeline, the HTTP server */
    if ((rc = http_producer_new(in, app)) != TN_OK)
        goto fail;
    const tn_http_route_t routes[] = {
        {"POST", "/v1/tickets", ingest_http_tickets, TN_HTTP_ROUTE_AUTH, ticket_types, in},
    };
    if ((rc = tn_app_http_start(app, routes, TN_ARRAY_LEN(routes), ready, in)) != TN_OK)
        goto fail;
    *state = in;
    return TN_OK;
fail:
    ingest_free(in);
    return rc;
}

/* The loop: the pipeline (its transactions are set up here, while HTTP already serves and
 * /ready says why it is not ready), or with HTTP only, wait for the stop. */
static tn_err_t ingest_run(tn_app_t *app, void *state)
{
    ingest_t *in = state;
    if (!in->cfg->enrich) {
        while (!tn_lifecycle_wait(-1))
            ;
        return TN_OK;
    }
    tn_err_t rc = ingest_pipeline_init(in, app);
    return rc == TN_OK ? ingest_pipeline_run(in) : rc;
}

/* Shutdown: HTTP is drained by the skeleton first; then the pipeline's last transaction is
 * already committed, the consumer leaves, the producers flush. */
static void ingest_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    if (state)
        ingest_free(state);
}

static const tn_app_def_t def = {
    .name = "ingest",
    .summary = "HTTP ingest of tickets and their exactly-once enrichment into tickets.enriched",
    .features = TN_APP_HTTP | TN_APP_KAFKA | TN_APP_AUTH,
    .keys = ingest_keys,
    .cfg_size = sizeof(ingest_cfg_t),
    .init = ingest_init,
    .run = ingest_run,
    .shutdown = ingest_shutdown,
};

#ifdef __GLIBC__
/* Whether the environment sets @p prefix ("NAME="). */
static bool env_has(const char *prefix)
{
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, prefix, strlen(prefix)))
            return true;
    return false;
}
#endif

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* glibc gives each thread that allocates its own arena (up to 8 per core), each keeping
     * freed memory: with two enrichment threads, the HTTP threads and librdkafka's that is
     * megabytes of peak RSS for no speed. Two arenas, unless MALLOC_ARENA_MAX says otherwise. */
    if (!env_has("MALLOC_ARENA_MAX="))
        mallopt(M_ARENA_MAX, 2);
    /* glibc also raises its mmap threshold each time an mmapped block is freed (up to 32 MB),
     * after which librdkafka's fetch buffers (about 1 MB: a decompressed message set) come from
     * the arenas, whose freed space stays resident: 3 MB of peak RSS at 8 KB tickets. A fixed
     * threshold (glibc's initial 128 KiB) keeps big buffers mmapped, returned when freed. */
    if (!env_has("MALLOC_MMAP_THRESHOLD_="))
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    tn_app_def_t d = def;
    d.nkeys = ingest_nkeys;
    return tn_app_main(&d, argc, argv, environ);
}
