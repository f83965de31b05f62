/* appointments: configuration keys and metric families. */
#include <stddef.h>

#include "appointments.h"
#include "taina/mem.h"

#define KEY(name, type, field, def, flags, help, min, max)                                         \
    {                                                                                              \
        name, type, offsetof(appt_cfg_t, field), def, flags, help, min, max, NULL                  \
    }

static const char *const id_storages[] = {"hmac-sha256", "aes-256-gcm", NULL};

const tn_cfg_key_t appt_keys[] = {
    KEY("appointments_topic_in", TN_CFG_STRING, topic_in, "appointments.requests", 0,
        "Topic of booking requests", 0, 0),
    KEY("appointments_topic_out", TN_CFG_STRING, topic_out, "appointments.results", 0,
        "Topic the outbox publishes results to", 0, 0),
    KEY("appointments_topic_dlq", TN_CFG_STRING, topic_dlq, "tickets.dlq", 0,
        "Dead-letter topic for records that are not valid requests", 0, 0),
    KEY("appointments_group", TN_CFG_STRING, group, "taina-appointments", 0, "Consumer group", 0,
        0),
    KEY("database_url", TN_CFG_STRING, database_url, "", TN_CFG_REQUIRED | TN_CFG_SECRET,
        "PostgreSQL conninfo or URI (postgresql://user@host:5432/db)", 0, 0),
    KEY("appointments_db_pool", TN_CFG_INT, db_pool, "8", 0,
        "Database connections at most (workers, publisher, consumer and HTTP share them)", 2, 256),
    KEY("appointments_db_timeout", TN_CFG_DURATION, db_timeout_ms, "10s", 0,
        "Server-side statement timeout, and how long HTTP waits for the database", 100, 600000),
    KEY("appointments_migrations_dir", TN_CFG_STRING, migrations_dir, "services/appointments/sql",
        0, "Folder of the SQL migrations applied at start", 0, 0),
    {"appointments_id_storage", TN_CFG_ENUM, offsetof(appt_cfg_t, id_storage), "aes-256-gcm", 0,
     "How the id number is stored: aes-256-gcm (encrypted; the booking system gets it) or "
     "hmac-sha256 (hashed; the booking system gets the hash as a pseudonym)",
     0, 0, id_storages},
    KEY("appointments_id_key", TN_CFG_STRING, id_key, "", TN_CFG_REQUIRED | TN_CFG_SECRET,
        "Key of the id number storage: 64 hex digits (32 bytes)", 0, 0),
    KEY("booking_url", TN_CFG_STRING, booking_url, "", TN_CFG_REQUIRED,
        "FHIR R4 base URL of the booking system (http(s)://host/fhir)", 0, 0),
    KEY("booking_token_url", TN_CFG_STRING, token_url, "", TN_CFG_REQUIRED,
        "OAuth2 token endpoint (client credentials grant)", 0, 0),
    KEY("booking_client_id", TN_CFG_STRING, client_id, "", TN_CFG_REQUIRED, "OAuth2 client id", 0,
        0),
    KEY("booking_client_secret", TN_CFG_STRING, client_secret, "", TN_CFG_REQUIRED | TN_CFG_SECRET,
        "OAuth2 client secret", 0, 0),
    KEY("booking_scope", TN_CFG_STRING, scope, "", 0, "OAuth2 scope to ask for (empty: none)", 0,
        0),
    KEY("booking_timeout", TN_CFG_DURATION, booking_timeout_ms, "10s", 0,
        "Deadline of one booking system call, its quick retries included", 100, 600000),
    KEY("booking_token_skew", TN_CFG_DURATION, token_skew_ms, "30s", 0,
        "Refresh a token this long before it expires (at most half its lifetime)", 0, 3600000),
    KEY("booking_token_default_ttl", TN_CFG_DURATION, token_default_ttl_ms, "5m", 0,
        "Lifetime of a token whose answer has no expires_in", 1000, 86400000),
    KEY("appointments_workers", TN_CFG_INT, workers, "4", 0,
        "Booking workers (concurrent bookings)", 1, 64),
    KEY("appointments_max_attempts", TN_CFG_INT, max_attempts, "40", 0,
        "Booking attempts of a request before it fails (transient errors only)", 1, 100000),
    KEY("appointments_retry_base", TN_CFG_DURATION, retry_base_ms, "500ms", 0,
        "First retry wait (doubles each attempt, full jitter)", 1, 3600000),
    KEY("appointments_retry_cap", TN_CFG_DURATION, retry_cap_ms, "30s", 0, "Longest retry wait", 1,
        86400000),
    KEY("appointments_lease", TN_CFG_DURATION, lease_ms, "60s", 0,
        "A claimed request is left to its worker this long; after a crash it is taken again", 1000,
        86400000),
    KEY("appointments_poll", TN_CFG_DURATION, poll_ms, "500ms", 0,
        "How often idle workers and the publisher look at the database", 10, 60000),
    KEY("appointments_max_slots", TN_CFG_INT, max_slots, "10", 0,
        "Free slots asked for per search (tried in order when taken)", 1, 100),
    KEY("appointments_outbox_batch", TN_CFG_INT, outbox_batch, "200", 0,
        "Outbox rows published per round", 1, 10000),
    KEY("appointments_outbox_linger", TN_CFG_DURATION, outbox_linger_ms, "5ms", 0,
        "How long the publisher waits after a wake-up for more results to send in one round", 0,
        1000),
    KEY("appointments_outbox_retention", TN_CFG_DURATION, outbox_retention_ms, "168h", 0,
        "Sent outbox rows are deleted after this long", 60000, INT64_MAX / 2),
    KEY("appointments_test_outbox_hold", TN_CFG_DURATION, test_outbox_hold_ms, "0ms", 0,
        "TEST KNOB: publish outbox rows only once they are this old (a window to crash the "
        "service between the commit and the publish); 0 in production",
        0, 3600000),
    KEY("appointments_schemas_dir", TN_CFG_STRING, schemas_dir, "schemas", 0,
        "Folder of the JSON Schemas", 0, 0),
};
const size_t appt_nkeys = TN_ARRAY_LEN(appt_keys);

void appt_metrics_init(appt_metrics_t *m, tn_metrics_t *reg)
{
    static const double secs[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                  1,     2.5,  5,     10,   30,  60,   300};
    m->requests = tn_metrics_counter(reg, "taina_appointments_requests_total",
                                     "Requests received, by source (http, kafka) and outcome "
                                     "(accepted, duplicate, conflict, invalid).",
                                     TN_LABELS("source", "outcome"));
    m->outcomes = tn_metrics_counter(reg, "taina_appointments_outcomes_total",
                                     "Requests that reached a final state, by outcome (booked, "
                                     "failed, cancelled).",
                                     TN_LABELS("outcome"));
    m->attempts = tn_metrics_counter(reg, "taina_appointments_booking_attempts_total",
                                     "Booking attempts, by result (booked, retry, failed, "
                                     "slot_taken).",
                                     TN_LABELS("result"));
    m->latency = tn_metrics_histogram(reg, "taina_appointments_booking_duration_seconds",
                                      "Time from a request's acceptance to its booking or "
                                      "failure.",
                                      TN_LABELS("outcome"), secs, TN_ARRAY_LEN(secs));
    m->backlog =
        tn_metrics_gauge(reg, "taina_appointments_outbox_backlog",
                         "Outbox rows not yet published to appointments.results.", TN_NOLABELS);
    m->published =
        tn_metrics_counter(reg, "taina_appointments_results_published_total",
                           "Results published from the outbox (acknowledged).", TN_NOLABELS);
    m->refreshes = tn_metrics_counter(reg, "taina_appointments_token_refreshes_total",
                                      "OAuth2 tokens fetched, by reason (initial, expiry, "
                                      "unauthorized).",
                                      TN_LABELS("reason"));
    m->dlq = tn_metrics_counter(reg, "taina_appointments_dlq_total",
                                "Records sent to the dead-letter topic, by reason.",
                                TN_LABELS("reason"));
}
