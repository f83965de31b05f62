/* appointments: the PostgreSQL statements. Values go only as parameters. A state change is one
 * statement; the table's trigger writes its outbox row in the same transaction (migration 0001),
 * so a change and its result are committed together or not at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appointments.h"
#include "taina/breaker.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

/* The HTTP view, tenant and what the service acts on, for RETURNING and SELECT. */
#define ROW_COLS                                                                                   \
    "request_id::text, tenant_id, status, external_id, appointments_view(a) AS view, "             \
    "extract(epoch FROM now() - created_at)::float8 AS age"

static const char SQL_INSERT[] =
    "WITH ins AS ("
    " INSERT INTO appointments AS a (request_id, tenant_id, session_id, citizen_name, id_number,"
    "  phone, service_code, window_from, window_to, lang, requested_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    " ON CONFLICT (request_id) DO NOTHING"
    " RETURNING " ROW_COLS ")"
    " SELECT *, true AS created FROM ins"
    " UNION ALL"
    " SELECT " ROW_COLS ", false FROM appointments a"
    "  WHERE request_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)";

static const char SQL_GET[] =
    "SELECT " ROW_COLS " FROM appointments a WHERE request_id = $1 AND tenant_id = $2";

/* The oldest due request nobody holds; SKIP LOCKED lets workers (and replicas) claim different
 * rows without waiting on each other. */
static const char SQL_CLAIM[] =
    "UPDATE appointments a SET status = 'booking', attempts = a.attempts + 1,"
    "  lease_until = now() + $1::bigint * interval '1 millisecond', updated_at = now()"
    " WHERE request_id = ("
    "  SELECT request_id FROM appointments"
    "   WHERE status IN ('requested', 'booking') AND next_attempt_at <= now()"
    "     AND (lease_until IS NULL OR lease_until < now())"
    "   ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING request_id::text, tenant_id, citizen_name, id_number, phone, service_code,"
    "  appointments_ts(window_from), appointments_ts(window_to), lang, attempts";

static const char SQL_BOOKED[] =
    "UPDATE appointments a SET status = 'booked', external_id = $2, slot_id = $3,"
    "  slot_start = $4, slot_end = $5, reason = NULL, lease_until = NULL, updated_at = now()"
    " WHERE request_id = $1 AND status = 'booking' RETURNING " ROW_COLS;

static const char SQL_FAILED[] =
    "UPDATE appointments a SET status = 'failed', reason = $2, lease_until = NULL,"
    "  updated_at = now()"
    " WHERE request_id = $1 AND status = 'booking' RETURNING " ROW_COLS;

static const char SQL_RETRY[] = "UPDATE appointments SET lease_until = NULL, reason = $3,"
                                "  next_attempt_at = now() + $2::bigint * interval '1 millisecond'"
                                " WHERE request_id = $1 AND status = 'booking'";

static const char SQL_CANCEL_PENDING[] =
    "UPDATE appointments a SET status = 'cancelled', reason = 'cancelled by the requester',"
    "  lease_until = NULL, updated_at = now()"
    " WHERE request_id = $1 AND tenant_id = $2 AND status IN ('requested', 'booking')"
    " RETURNING " ROW_COLS;

static const char SQL_CANCEL_BOOKED[] =
    "UPDATE appointments a SET status = 'cancelled', reason = 'cancelled by the requester',"
    "  updated_at = now()"
    " WHERE request_id = $1 AND tenant_id = $2 AND status = 'booked' RETURNING " ROW_COLS;

static const char SQL_NOTE_EXTERNAL[] =
    "UPDATE appointments SET external_id = $2 WHERE request_id = $1 AND status = 'cancelled'";

void appt_row_cleanup(appt_row_t *r)
{
    free(r->request_id);
    free(r->tenant_id);
    free(r->status);
    free(r->external_id);
    free(r->view);
    memset(r, 0, sizeof(*r));
}

void appt_claim_cleanup(appt_claim_t *c)
{
    free(c->request_id);
    free(c->tenant_id);
    free(c->citizen_name);
    free(c->id_stored);
    free(c->phone);
    free(c->service_code);
    free(c->window_from);
    free(c->window_to);
    free(c->lang);
    memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const tn_db_res_t *res, int row, int col)
{
    return tn_db_res_is_null(res, row, col) ? NULL : tn_xstrdup(tn_db_res_get(res, row, col));
}

static void row_fill(const tn_db_res_t *res, int i, appt_row_t *row)
{
    appt_row_cleanup(row);
    row->request_id = dup_or_null(res, i, 0);
    row->tenant_id = dup_or_null(res, i, 1);
    row->status = dup_or_null(res, i, 2);
    row->external_id = dup_or_null(res, i, 3);
    row->view = dup_or_null(res, i, 4);
    row->age_s = strtod(tn_db_res_get(res, i, 5), NULL);
}

/* One statement on a pooled connection. */
static tn_err_t run1(appt_t *a, const char *sql, int n, const char *const *params,
                     tn_db_res_t **res, tn_db_error_t *de)
{
    tn_db_conn_t *conn = NULL;
    tn_err_t rc = tn_db_acquire(a->db, a->cfg->db_timeout_ms, &conn, de);
    if (rc != TN_OK)
        return rc == TN_ERR_TIMEOUT ? TN_ERR_UNAVAILABLE : rc;
    rc = tn_db_exec(conn, sql, n, params, NULL, res, de);
    tn_db_release(a->db, conn);
    if (rc != TN_OK && rc != TN_ERR_UNAVAILABLE && rc != TN_ERR_INVALID)
        TN_LOG(TN_LOG_ERROR, "appointments: database: %s (%s)", de->msg, de->sqlstate);
    return rc;
}

int64_t appt_store_backoff(appt_t *a, int attempt)
{
    (void)a;
    return tn_backoff_ms(attempt, 100, 5000) + 50;
}

tn_err_t appt_store_migrate(appt_t *a)
{
    char *dir = tn_app_data_path(a->cfg->migrations_dir);
    tn_err_t rc = TN_ERR_STOPPED;
    for (int attempt = 1; !tn_lifecycle_is_stopping(); attempt++) {
        char err[512];
        tn_db_conn_t *conn = NULL;
        tn_db_error_t de;
        int applied = 0;
        rc = tn_db_acquire(a->db, a->cfg->db_timeout_ms, &conn, &de);
        if (rc == TN_OK) {
            rc = tn_db_migrate(conn, dir, 0x7461696e61617074LL /* "tainaapt" */, &applied, err,
                               sizeof(err));
            tn_db_release(a->db, conn);
        } else {
            snprintf(err, sizeof(err), "%s", de.msg);
        }
        if (rc == TN_OK) {
            TN_LOG(TN_LOG_INFO, "appointments: database ready (%d migrations applied)", applied);
            break;
        }
        if (rc != TN_ERR_UNAVAILABLE && rc != TN_ERR_TIMEOUT) {
            TN_LOG(TN_LOG_ERROR, "appointments: %s", err);
            break;
        }
        TN_LOG(TN_LOG_WARN, "appointments: database not reachable yet: %s", err);
        if (tn_lifecycle_wait(appt_store_backoff(a, attempt)))
            rc = TN_ERR_STOPPED;
    }
    free(dir);
    return rc;
}

tn_err_t appt_store_insert(appt_t *a, const appt_request_t *r, const char *id_stored, bool *created,
                           appt_row_t *row, char *err, size_t errlen)
{
    const char *p[] = {r->request_id, r->tenant_id, r->session_id,   r->citizen_name,
                       id_stored,     r->phone,     r->service_code, r->window_from,
                       r->window_to,  r->lang,      r->requested_at};
    tn_db_error_t de = {0};
    /* A concurrent insert of the same id that commits while ours waits on ON CONFLICT is not
     * in our snapshot: no row comes back. The next statement sees it. */
    for (int tries = 0; tries < 3; tries++) {
        tn_db_res_t *res = NULL;
        tn_err_t rc = run1(a, SQL_INSERT, 11, p, &res, &de);
        if (rc != TN_OK) {
            snprintf(err, errlen, "%s", de.msg);
            return rc;
        }
        int n = tn_db_res_rows(res);
        if (n == 1) {
            row_fill(res, 0, row);
            *created = tn_db_res_get(res, 0, 6)[0] == 't';
        }
        tn_db_res_free(res);
        if (n == 1)
            return TN_OK;
    }
    snprintf(err, errlen, "the request could not be stored or read back");
    return TN_ERR;
}

tn_err_t appt_store_get(appt_t *a, const char *request_id, const char *tenant, appt_row_t *row)
{
    const char *p[] = {request_id, tenant};
    tn_db_res_t *res = NULL;
    tn_db_error_t de;
    tn_err_t rc = run1(a, SQL_GET, 2, p, &res, &de);
    if (rc != TN_OK)
        return rc;
    rc = tn_db_res_rows(res) ? TN_OK : TN_ERR_NOT_FOUND;
    if (rc == TN_OK)
        row_fill(res, 0, row);
    tn_db_res_free(res);
    return rc;
}

tn_err_t appt_store_claim(appt_t *a, appt_claim_t *c)
{
    char lease[32];
    snprintf(lease, sizeof(lease), "%lld", (long long)a->cfg->lease_ms);
    const char *p[] = {lease};
    tn_db_res_t *res = NULL;
    tn_db_error_t de;
    tn_err_t rc = run1(a, SQL_CLAIM, 1, p, &res, &de);
    if (rc != TN_OK)
        return rc;
    if (tn_db_res_rows(res) == 0) {
        tn_db_res_free(res);
        return TN_DECLINED;
    }
    c->request_id = dup_or_null(res, 0, 0);
    c->tenant_id = dup_or_null(res, 0, 1);
    c->citizen_name = dup_or_null(res, 0, 2);
    c->id_stored = dup_or_null(res, 0, 3);
    c->phone = dup_or_null(res, 0, 4);
    c->service_code = dup_or_null(res, 0, 5);
    c->window_from = dup_or_null(res, 0, 6);
    c->window_to = dup_or_null(res, 0, 7);
    c->lang = dup_or_null(res, 0, 8);
    c->attempts = (int)strtol(tn_db_res_get(res, 0, 9), NULL, 10);
    tn_db_res_free(res);
    return TN_OK;
}

/* A state change that returns the row; TN_DECLINED when the WHERE matched nothing. */
static tn_err_t change(appt_t *a, const char *sql, int n, const char *const *p, appt_row_t *row)
{
    tn_db_res_t *res = NULL;
    tn_db_error_t de;
    tn_err_t rc = run1(a, sql, n, p, &res, &de);
    if (rc != TN_OK)
        return rc;
    rc = tn_db_res_rows(res) ? TN_OK : TN_DECLINED;
    if (rc == TN_OK && row)
        row_fill(res, 0, row);
    tn_db_res_free(res);
    if (rc == TN_OK)
        appt_wake_publisher(a);
    return rc;
}

tn_err_t appt_store_booked(appt_t *a, const char *request_id, const char *external_id,
                           const char *slot_id, const char *start, const char *end, appt_row_t *row)
{
    const char *p[] = {request_id, external_id, slot_id, start, end};
    return change(a, SQL_BOOKED, 5, p, row);
}

tn_err_t appt_store_failed(appt_t *a, const char *request_id, const char *reason, appt_row_t *row)
{
    const char *p[] = {request_id, reason};
    return change(a, SQL_FAILED, 2, p, row);
}

tn_err_t appt_store_retry(appt_t *a, const char *request_id, int64_t delay_ms, const char *reason)
{
    char d[32];
    snprintf(d, sizeof(d), "%lld", (long long)delay_ms);
    const char *p[] = {request_id, d, reason};
    tn_db_error_t de;
    return run1(a, SQL_RETRY, 3, p, NULL, &de);
}

tn_err_t appt_store_cancel_pending(appt_t *a, const char *request_id, const char *tenant,
                                   appt_row_t *row)
{
    const char *p[] = {request_id, tenant};
    return change(a, SQL_CANCEL_PENDING, 2, p, row);
}

tn_err_t appt_store_cancel_booked(appt_t *a, const char *request_id, const char *tenant,
                                  appt_row_t *row)
{
    const char *p[] = {request_id, tenant};
    return change(a, SQL_CANCEL_BOOKED, 2, p, row);
}

tn_err_t appt_store_note_external(appt_t *a, const char *request_id, const char *external_id)
{
    const char *p[] = {request_id, external_id};
    tn_db_error_t de;
    return run1(a, SQL_NOTE_EXTERNAL, 2, p, NULL, &de);
}
