/* taina-appointments: booking requests (appointments.requests, POST /v1/appointments) become
 * appointments at the agency's booking system (OAuth2 + FHIR R4); PostgreSQL is the source of
 * truth, results leave through an outbox to appointments.results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appointments.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

static bool ready(void *opaque, char *reason, size_t len)
{
    appt_t *a = opaque;
    if (!atomic_load(&a->migrated) || !tn_db_is_up(a->db)) {
        snprintf(reason, len, "the database is not reachable or not migrated yet");
        return false;
    }
    if (tn_breaker_is_open(&a->breaker)) {
        snprintf(reason, len,
                 "the booking system's circuit is open (it failed repeatedly); "
                 "requests wait, a probe goes every cooldown");
        return false;
    }
    if (!atomic_load(&a->assigned)) {
        snprintf(reason, len, "no partitions of the requests topic assigned yet");
        return false;
    }
    return true;
}

static void appt_free(appt_t *a)
{
    if (a->consumer)
        tn_kafka_consumer_close(a->consumer);
    tn_kafka_consumer_destroy(a->consumer);
    if (a->producer)
        tn_kafka_producer_flush(a->producer, 10000);
    tn_kafka_producer_destroy(a->producer);
    booking_destroy(a->booking);
    tn_breaker_destroy(&a->breaker);
    tn_db_destroy(a->db);
    tn_schema_destroy(a->schema_topic);
    tn_schema_destroy(a->schema_http);
    pthread_cond_destroy(&a->work_cv);
    pthread_cond_destroy(&a->outbox_cv);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static tn_schema_t *schema(const appt_cfg_t *c, const char *name)
{
    char err[512];
    char *rel = tn_xasprintf("%s/%s", c->schemas_dir, name);
    char *path = tn_app_data_path(rel);
    tn_schema_t *s = tn_schema_load(path, err, sizeof(err));
    if (!s)
        TN_LOG(TN_LOG_ERROR, "appointments: %s", err);
    free(rel);
    free(path);
    return s;
}

static tn_err_t clients_new(appt_t *a, tn_app_t *app)
{
    const appt_cfg_t *c = a->cfg;
    char err[512];
    if (appt_idnum_check(c, err, sizeof(err)) != TN_OK)
        goto bad;
    tn_db_opts_t dbo = {.conninfo = c->database_url,
                        .pool_size = (int)c->db_pool,
                        .statement_timeout_ms = c->db_timeout_ms,
                        .application_name = "taina-appointments",
                        .metrics = tn_app_metrics(app)};
    if (!(a->db = tn_db_new(&dbo, err, sizeof(err))))
        goto bad;
    if (!(a->booking = booking_new(c, &a->m, tn_app_metrics(app), &a->breaker, err, sizeof(err))))
        goto bad;
    tn_kafka_opts_t ko = tn_app_kafka_opts(app, "taina-appointments");
    if (!(a->producer = tn_kafka_producer_new(&ko, NULL, err, sizeof(err))))
        goto bad;
    const char *topics[] = {c->topic_in, NULL};
    if (!(a->consumer = tn_kafka_consumer_new(&ko, c->group, topics, err, sizeof(err))))
        goto bad;
    return TN_OK;
bad:
    TN_LOG(TN_LOG_ERROR, "appointments: %s", err);
    return TN_ERR_CONFIG;
}

static tn_err_t appt_init(tn_app_t *app, void *cfgp, void **state)
{
    appt_t *a = tn_xcalloc(1, sizeof(*a));
    a->cfg = cfgp;
    a->app = app;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->work_cv, NULL);
    pthread_cond_init(&a->outbox_cv, NULL);
    appt_metrics_init(&a->m, tn_app_metrics(app));
    tn_app_breaker_init(app, &a->breaker, "booking");
    tn_err_t rc = TN_ERR_CONFIG;
    a->schema_topic = schema(a->cfg, "appointments.requests.schema.json");
    a->schema_http = schema(a->cfg, "http/appointments.request.schema.json");
    if (a->schema_topic && a->schema_http)
        rc = clients_new(a, app);
    tn_http_route_t routes[8];
    TN_ASSERT(appt_nroutes <= TN_ARRAY_LEN(routes));
    for (size_t i = 0; i < appt_nroutes; i++) {
        routes[i] = appt_routes[i];
        routes[i].opaque = a;
    }
    if (rc == TN_OK)
        rc = tn_app_http_start(app, routes, appt_nroutes, ready, a);
    if (rc != TN_OK) {
        appt_free(a);
        return rc;
    }
    *state = a;
    return TN_OK;
}

static tn_err_t appt_run(tn_app_t *app, void *state)
{
    (void)app;
    appt_t *a = state;
    tn_err_t rc = appt_store_migrate(a);
    if (rc == TN_ERR_STOPPED)
        return TN_OK;
    if (rc != TN_OK)
        return rc;
    atomic_store(&a->migrated, true);
    rc = appt_workers_start(a);
    if (rc == TN_OK)
        rc = appt_publisher_start(a);
    if (rc == TN_OK)
        rc = appt_intake_run(a);
    return rc;
}

static void appt_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    appt_t *a = state;
    if (!a)
        return;
    /* the workers finish the booking in hand; the publisher then sends what they recorded */
    appt_workers_join(a);
    appt_publisher_join(a);
    appt_free(a);
}

static const tn_app_def_t def = {
    .name = "appointments",
    .summary = "Books appointments with the agency's booking system (OAuth2, FHIR R4); "
               "PostgreSQL state, results through an outbox",
    .features = TN_APP_HTTP | TN_APP_KAFKA | TN_APP_AUTH | TN_APP_BREAKER,
    .http_port = "8084",
    .keys = appt_keys,
    .cfg_size = sizeof(appt_cfg_t),
    .init = appt_init,
    .run = appt_run,
    .shutdown = appt_shutdown,
};

int main(int argc, char **argv)
{
    tn_app_def_t d = def;
    d.nkeys = appt_nkeys;
    return tn_app_main(&d, argc, argv, environ);
}
