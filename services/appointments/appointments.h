/* appointments: booking requests (appointments.requests and POST /v1/appointments) become
 * appointments at the agency's booking system; PostgreSQL holds the state, results leave through
 * an outbox to appointments.results. Shared declarations of the service's files:
 *   main.c     the table of contents: config, wiring, loop, shutdown
 *   config.c   the config keys and the metric families
 *   idnum.c    the id number kept only hashed (HMAC) or encrypted (AES-256-GCM)
 *   request.c  a request document: parse, validate, the fields
 *   store.c    the PostgreSQL statements: insert, claim, finish, cancel, read, outbox
 *   booking.c  the booking system client: OAuth2 client credentials + FHIR R4 Slot/Appointment
 *   worker.c   the booking workers: claim a request, book it, record the outcome
 *   intake.c   the appointments.requests consumer (bad records to the DLQ)
 *   http.c     POST/GET/DELETE /v1/appointments
 *   outbox.c   the publisher: outbox rows to appointments.results, marked sent after the ack
 */
#ifndef APPOINTMENTS_H
#define APPOINTMENTS_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "taina/app.h"
#include "taina/breaker.h"
#include "taina/db.h"
#include "taina/http_client.h"
#include "taina/kafka.h"
#include "taina/metrics.h"
#include "taina/schema.h"

typedef struct appt_cfg {
    char *topic_in, *topic_out, *topic_dlq, *group;
    char *database_url;
    int64_t db_pool, db_timeout_ms;
    char *migrations_dir;
    int id_storage; /* APPT_ID_* */
    char *id_key;   /* 64 hex digits */
    char *booking_url, *token_url, *client_id, *client_secret, *scope;
    int64_t booking_timeout_ms, token_skew_ms, token_default_ttl_ms;
    int64_t workers, max_attempts, retry_base_ms, retry_cap_ms, lease_ms, poll_ms;
    int64_t max_slots;
    int64_t outbox_batch, outbox_linger_ms, outbox_retention_ms;
    int64_t test_outbox_hold_ms;
    char *schemas_dir;
} appt_cfg_t;

enum { APPT_ID_HMAC, APPT_ID_AES_GCM };
extern const tn_cfg_key_t appt_keys[];
extern const size_t appt_nkeys;

typedef struct appt_metrics {
    tn_metric_t *requests;  /* {source, outcome}: accepted, duplicate, conflict, invalid */
    tn_metric_t *outcomes;  /* {outcome}: booked, failed, cancelled */
    tn_metric_t *attempts;  /* {result}: booked, retry, failed, slot_taken */
    tn_metric_t *latency;   /* histogram: accepted -> booked or failed, seconds */
    tn_metric_t *backlog;   /* gauge: outbox rows not yet published */
    tn_metric_t *published; /* counter: results published */
    tn_metric_t *refreshes; /* {reason}: token fetches: initial, expiry, unauthorized */
    tn_metric_t *dlq;       /* {reason} */
} appt_metrics_t;

/* ------------------------------------------------------------------------------------------ */
/* idnum.c */

/** @brief Check the key of @p cfg. @returns TN_OK or TN_ERR_CONFIG with a sentence. */
tn_err_t appt_idnum_check(const appt_cfg_t *cfg, char *errbuf, size_t errlen);
/** @brief The value stored for @p id_number: "hmac-sha256:HEX" or "aes-256-gcm:BASE64".
 *  Caller frees. */
char *appt_idnum_protect(const appt_cfg_t *cfg, const char *id_number);
/**
 * @brief The identifier sent to the booking system for a stored value: the plain id number
 *        (decrypted) with aes-256-gcm, the HMAC (a stable pseudonym) with hmac-sha256.
 * @returns NULL when the value cannot be opened (wrong key). Caller frees (wipe first).
 */
char *appt_idnum_for_booking(const appt_cfg_t *cfg, const char *stored);

/* ------------------------------------------------------------------------------------------ */
/* request.c */

/** A validated request; strings borrowed from @p doc. */
typedef struct appt_request {
    json_t *doc; /* the appointments.requests value (owned) */
    const char *request_id, *tenant_id, *session_id, *citizen_name, *id_number, *phone;
    const char *service_code, *window_from, *window_to, *lang, *requested_at;
} appt_request_t;

/** Why a document was refused. */
typedef struct appt_reject {
    int status;        /* HTTP status: 400, 422 */
    const char *code;  /* invalid_json, invalid_utf8, schema_violation */
    char message[512]; /* one line, never the id number */
    json_t *error;     /* the schema error object, or NULL */
} appt_reject_t;

/**
 * @brief Parse @p len bytes as one JSON object.
 * @returns the document, or NULL with @p why filled (400 invalid_json, 422 invalid_utf8).
 */
json_t *appt_request_parse(const char *text, size_t len, appt_reject_t *why);
/**
 * @brief Validate @p doc (taken) against @p schema and fill @p out.
 * @returns TN_OK, or TN_ERR_SCHEMA with @p why (422 schema_violation); @p doc is freed then.
 */
tn_err_t appt_request_from(const tn_schema_t *schema, json_t *doc, appt_request_t *out,
                           appt_reject_t *why);
void appt_request_cleanup(appt_request_t *r);
void appt_reject_cleanup(appt_reject_t *why);

/* ------------------------------------------------------------------------------------------ */
/* store.c: one statement per operation (a state change and its outbox row are one statement,
 * so one round trip and one transaction). Every function makes one attempt: TN_ERR_UNAVAILABLE
 * means the database is not reachable (retry with appt_store_backoff). */

typedef struct appt appt_t;

/** A row as the service needs it. Strings owned; free with appt_row_cleanup(). */
typedef struct appt_row {
    char *request_id, *tenant_id, *status, *external_id, *view; /* view: the HTTP body */
    double age_s; /* seconds since the request was accepted (latency metric) */
} appt_row_t;

void appt_row_cleanup(appt_row_t *r);

/** A claimed request, what a worker needs to book it. */
typedef struct appt_claim {
    char *request_id, *tenant_id, *citizen_name, *id_stored, *phone, *service_code;
    char *window_from, *window_to, *lang;
    int attempts;
} appt_claim_t;

void appt_claim_cleanup(appt_claim_t *c);

/** @brief Apply the migrations (blocking retries until the database answers or a stop). */
tn_err_t appt_store_migrate(appt_t *a);
/**
 * @brief Insert a request unless its request_id exists. @p created says which; @p row is the
 *        stored state either way. TN_ERR_INVALID: the database refused a value (422).
 */
tn_err_t appt_store_insert(appt_t *a, const appt_request_t *r, const char *id_stored, bool *created,
                           appt_row_t *row, char *err, size_t errlen);
/** @brief The row of @p request_id for @p tenant. TN_ERR_NOT_FOUND when none. */
tn_err_t appt_store_get(appt_t *a, const char *request_id, const char *tenant, appt_row_t *row);
/**
 * @brief Claim the next request due for a booking attempt (status booking, attempts + 1,
 *        leased). TN_DECLINED when none is due.
 */
tn_err_t appt_store_claim(appt_t *a, appt_claim_t *c);
/** @brief Record a booking. TN_DECLINED when the request is no longer `booking` (cancelled). */
tn_err_t appt_store_booked(appt_t *a, const char *request_id, const char *external_id,
                           const char *slot_id, const char *start, const char *end,
                           appt_row_t *row);
/** @brief Record a final failure with @p reason. TN_DECLINED as above. */
tn_err_t appt_store_failed(appt_t *a, const char *request_id, const char *reason, appt_row_t *row);
/** @brief Release the lease and try again in @p delay_ms (the reason is kept for GET). */
tn_err_t appt_store_retry(appt_t *a, const char *request_id, int64_t delay_ms, const char *reason);
/** @brief Cancel a request not booked yet (requested or booking). TN_DECLINED otherwise. */
tn_err_t appt_store_cancel_pending(appt_t *a, const char *request_id, const char *tenant,
                                   appt_row_t *row);
/** @brief Cancel a booked request after the booking system cancelled it. TN_DECLINED otherwise. */
tn_err_t appt_store_cancel_booked(appt_t *a, const char *request_id, const char *tenant,
                                  appt_row_t *row);
/** @brief Keep the external id of a booking made after the request was cancelled. */
tn_err_t appt_store_note_external(appt_t *a, const char *request_id, const char *external_id);

/** @brief The wait before retrying a store call after @p attempt failures (logged). */
int64_t appt_store_backoff(appt_t *a, int attempt);

/* ------------------------------------------------------------------------------------------ */
/* booking.c */

typedef struct booking booking_t;

typedef enum { BOOKING_OK, BOOKING_RETRY, BOOKING_FAILED } booking_outcome_t;

typedef struct booking_result {
    booking_outcome_t outcome;
    char external_id[129];
    char slot_id[160];
    char start[48], end[48];
    int slots_taken; /* slots found taken (409) on the way */
    char reason[512];
} booking_result_t;

/**
 * @brief The client. Every booking and cancel reports to @p breaker (borrowed; outlives the
 *        client): the system down, slow or garbled counts against it, any answer for it. The
 *        callers ask it before calling (booking_book and booking_cancel do not).
 */
booking_t *booking_new(const appt_cfg_t *cfg, appt_metrics_t *m, tn_metrics_t *reg,
                       tn_breaker_t *breaker, char *errbuf, size_t errlen);
void booking_destroy(booking_t *bk);
/** @brief Book @p c (with the id number as the booking system gets it). @thread Any. */
void booking_book(booking_t *bk, const appt_claim_t *c, const char *identifier,
                  booking_result_t *out);
/**
 * @brief Cancel appointment @p external_id. TN_OK (also when the system no longer knows it),
 *        TN_ERR_UNAVAILABLE (retry later), TN_ERR_UPSTREAM (refused), reason in @p err.
 */
tn_err_t booking_cancel(booking_t *bk, const char *external_id, const char *reason, char *err,
                        size_t errlen);

/* ------------------------------------------------------------------------------------------ */
/* The service */

struct appt {
    const appt_cfg_t *cfg;
    appt_metrics_t m;
    tn_app_t *app;
    tn_schema_t *schema_topic, *schema_http;
    tn_db_t *db;
    booking_t *booking;
    tn_breaker_t breaker; /* the booking system's: while open, workers claim nothing */
    tn_kafka_producer_t *producer;
    tn_kafka_consumer_t *consumer;
    atomic_bool migrated, assigned;
    /* wake-ups: new requests for the workers, new outbox rows for the publisher */
    pthread_mutex_t lock;
    pthread_cond_t work_cv, outbox_cv;
    uint64_t work_seq, outbox_seq;
    pthread_t *workers;
    size_t nworkers;
    pthread_t publisher;
    bool publisher_started;
};

void appt_metrics_init(appt_metrics_t *m, tn_metrics_t *reg);
/** @brief Wake the workers (a request was stored) / the publisher (a state changed). */
void appt_wake_workers(appt_t *a);
void appt_wake_publisher(appt_t *a);

/* worker.c */
tn_err_t appt_workers_start(appt_t *a);
void appt_workers_join(appt_t *a);
/**
 * @brief Cancel at the booking system and record it (DELETE and a booking that finished after
 *        its request was cancelled). TN_AGAIN without a call while the booking system's
 *        circuit is open (when to retry in @p err).
 */
tn_err_t appt_cancel_booked(appt_t *a, const char *request_id, const char *tenant,
                            const char *external_id, appt_row_t *row, char *err, size_t errlen);

/* intake.c */
tn_err_t appt_intake_run(appt_t *a);
/**
 * @brief Store a validated request (retrying while the database is away, up to @p wait_ms):
 *        TN_OK with @p created / @p row; TN_ERR_EXISTS: the request id belongs to another
 *        tenant; TN_ERR_INVALID: refused by the database (reason in @p err);
 *        TN_ERR_UNAVAILABLE / TN_ERR_STOPPED.
 */
tn_err_t appt_accept(appt_t *a, const appt_request_t *r, int64_t wait_ms, bool *created,
                     appt_row_t *row, char *err, size_t errlen);

/* http.c */
extern const tn_http_route_t appt_routes[];
extern const size_t appt_nroutes;

/* outbox.c */
tn_err_t appt_publisher_start(appt_t *a);
void appt_publisher_join(appt_t *a);

#endif
