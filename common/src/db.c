/* PostgreSQL through libpq: a pool of connections that reconnect, parameterized statements,
 * libpq errors mapped to tn_err_t, migrations under an advisory lock. */
#include "taina/db.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

struct tn_db_conn {
    PGconn *pg;
    tn_db_t *db; /* the pool it belongs to (metrics, up state) */
    bool broken;
    tn_db_conn_t *next; /* idle list */
};

struct tn_db_res {
    PGresult *r;
};

struct tn_db {
    char *conninfo;
    int pool_size;
    int64_t connect_timeout_ms;
    int64_t statement_timeout_ms;
    char *app_name;
    pthread_mutex_t lock;
    pthread_cond_t freed;
    tn_db_conn_t *idle;
    int open; /* connections that exist (idle or lent) */
    atomic_bool up;
    tn_metric_t *m_queries, *m_duration, *m_connects, *m_up;
};

static void set_err(tn_db_error_t *e, const char *state, bool retriable, const char *msg)
{
    if (!e)
        return;
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", state ? state : "");
    e->retriable = retriable;
    snprintf(e->msg, sizeof(e->msg), "%s", msg ? msg : "");
    /* one line: libpq messages end with a newline and may have a DETAIL line */
    for (char *p = e->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(e->msg);
    while (n && e->msg[n - 1] == ' ')
        e->msg[--n] = '\0';
}

static void set_up(tn_db_t *db, bool up)
{
    atomic_store(&db->up, up);
    if (db->m_up)
        tn_metric_set(db->m_up, TN_NOLABELS, up ? 1 : 0);
}

/* libpq's notices (NOTICE, WARNING from the server) into our log. */
static void notice_cb(void *arg, const char *msg)
{
    (void)arg;
    TN_DBG(TN_DBG_DB, "postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

tn_db_t *tn_db_new(const tn_db_opts_t *o, char *errbuf, size_t errlen)
{
    if (!o->conninfo || !*o->conninfo) {
        snprintf(errbuf, errlen, "no database conninfo (TAINA_DATABASE_URL)");
        return NULL;
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(o->conninfo, &perr);
    if (!opts) {
        snprintf(errbuf, errlen, "bad database conninfo: %.*s", perr ? (int)strcspn(perr, "\n") : 7,
                 perr ? perr : "invalid");
        PQfreemem(perr);
        return NULL;
    }
    PQconninfoFree(opts);
    tn_db_t *db = tn_xcalloc(1, sizeof(*db));
    db->conninfo = tn_xstrdup(o->conninfo);
    db->pool_size = o->pool_size > 0 ? o->pool_size : 4;
    db->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    db->statement_timeout_ms = o->statement_timeout_ms;
    db->app_name = tn_xstrdup(o->application_name ? o->application_name : "taina");
    pthread_mutex_init(&db->lock, NULL);
    pthread_cond_init(&db->freed, NULL);
    if (o->metrics) {
        db->m_queries = tn_metrics_counter(o->metrics, "taina_db_queries_total",
                                           "Statements sent to PostgreSQL (round trips), by "
                                           "outcome.",
                                           TN_LABELS("outcome"));
        db->m_duration =
            tn_metrics_histogram(o->metrics, "taina_db_query_duration_seconds",
                                 "Time of one statement, round trip included.", TN_NOLABELS,
                                 tn_metrics_duration_buckets, tn_metrics_duration_nbuckets);
        db->m_connects = tn_metrics_counter(o->metrics, "taina_db_connects_total",
                                            "Connection attempts to PostgreSQL, by outcome.",
                                            TN_LABELS("outcome"));
        db->m_up = tn_metrics_gauge(o->metrics, "taina_db_up",
                                    "1 while the last connection attempt or statement reached "
                                    "PostgreSQL.",
                                    TN_NOLABELS);
    }
    set_up(db, true);
    return db;
}

static void conn_close(tn_db_conn_t *c)
{
    if (!c)
        return;
    PQfinish(c->pg);
    free(c);
}

void tn_db_destroy(tn_db_t *db)
{
    if (!db)
        return;
    while (db->idle) {
        tn_db_conn_t *c = db->idle;
        db->idle = c->next;
        conn_close(c);
    }
    pthread_cond_destroy(&db->freed);
    pthread_mutex_destroy(&db->lock);
    free(db->conninfo);
    free(db->app_name);
    free(db);
}

/* Open one connection (blocking, bounded by connect_timeout). */
static tn_err_t conn_open(tn_db_t *db, tn_db_conn_t **out, tn_db_error_t *e)
{
    char tmo[32], stmo[64];
    snprintf(tmo, sizeof(tmo), "%lld", (long long)((db->connect_timeout_ms + 999) / 1000));
    snprintf(stmo, sizeof(stmo), "-c statement_timeout=%lld", (long long)db->statement_timeout_ms);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", "options", NULL};
    const char *vals[] = {db->conninfo, tmo, db->app_name, db->statement_timeout_ms ? stmo : NULL,
                          NULL};
    if (!vals[3])
        keys[3] = NULL;
    /* expand_dbname: the conninfo (or URI) in "dbname" supplies every other setting */
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        set_err(e, NULL, true, pg ? PQerrorMessage(pg) : "out of memory");
        TN_DBG(TN_DBG_DB, "connect failed: %s", e ? e->msg : "");
        PQfinish(pg);
        if (db->m_connects)
            tn_metric_add(db->m_connects, TN_LABELS("error"), 1);
        set_up(db, false);
        return TN_ERR_UNAVAILABLE;
    }
    PQsetNoticeProcessor(pg, notice_cb, NULL);
    if (db->m_connects)
        tn_metric_add(db->m_connects, TN_LABELS("ok"), 1);
    set_up(db, true);
    tn_db_conn_t *c = tn_xcalloc(1, sizeof(*c));
    c->pg = pg;
    c->db = db;
    *out = c;
    return TN_OK;
}

tn_err_t tn_db_acquire(tn_db_t *db, int64_t wait_ms, tn_db_conn_t **out, tn_db_error_t *e)
{
    *out = NULL;
    int64_t until = tn_clock_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&db->lock);
    while (!db->idle && db->open >= db->pool_size) {
        int64_t left = until - tn_clock_mono_ms();
        if (left <= 0) {
            pthread_mutex_unlock(&db->lock);
            set_err(e, NULL, true, "no free database connection");
            return TN_ERR_TIMEOUT;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&db->freed, &db->lock, &ts);
    }
    if (db->idle) {
        *out = db->idle;
        db->idle = (*out)->next;
        (*out)->next = NULL;
        pthread_mutex_unlock(&db->lock);
        return TN_OK;
    }
    db->open++; /* reserve the place while connecting outside the lock */
    pthread_mutex_unlock(&db->lock);
    tn_err_t rc = conn_open(db, out, e);
    if (rc != TN_OK) {
        pthread_mutex_lock(&db->lock);
        db->open--;
        pthread_cond_signal(&db->freed);
        pthread_mutex_unlock(&db->lock);
    }
    return rc;
}

void tn_db_release(tn_db_t *db, tn_db_conn_t *conn)
{
    if (!conn)
        return;
    /* a connection left in a transaction (a caller's error path) would hold locks: close it */
    bool drop = conn->broken || PQstatus(conn->pg) != CONNECTION_OK ||
                PQtransactionStatus(conn->pg) != PQTRANS_IDLE;
    pthread_mutex_lock(&db->lock);
    if (drop) {
        db->open--;
    } else {
        conn->next = db->idle;
        db->idle = conn;
    }
    pthread_cond_signal(&db->freed);
    pthread_mutex_unlock(&db->lock);
    if (drop)
        conn_close(conn);
}

bool tn_db_is_up(const tn_db_t *db)
{
    return atomic_load(&((tn_db_t *)db)->up);
}

/* Map a failed result (or none) to our error codes. */
static tn_err_t map_error(tn_db_conn_t *conn, const PGresult *r, tn_db_error_t *e)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg)
        msg = PQerrorMessage(conn->pg);
    if (PQstatus(conn->pg) != CONNECTION_OK || !state ||
        !strncmp(state, "08", 2) || /* connection exception */
        !strcmp(state, "57P01") ||  /* admin_shutdown */
        !strcmp(state, "57P02") ||  /* crash_shutdown */
        !strcmp(state, "57P03")) {  /* cannot_connect_now */
        conn->broken = true;
        set_err(e, state, true, msg);
        return TN_ERR_UNAVAILABLE;
    }
    if (!strcmp(state, "23505")) {
        set_err(e, state, false, msg);
        return TN_ERR_EXISTS;
    }
    if (!strcmp(state, "40001") || !strcmp(state, "40P01")) {
        set_err(e, state, true, msg);
        return TN_AGAIN;
    }
    set_err(e, state, false, msg);
    return !strncmp(state, "22", 2) ? TN_ERR_INVALID : TN_ERR;
}

static void count(tn_db_t *db, tn_err_t rc, double t0)
{
    if (!db->m_queries)
        return;
    tn_metric_add(db->m_queries,
                  TN_LABELS(rc == TN_OK                ? "ok"
                            : rc == TN_ERR_UNAVAILABLE ? "unavailable"
                                                       : "error"),
                  1);
    tn_metric_observe(db->m_duration, TN_NOLABELS, tn_clock_mono_s() - t0);
}

tn_err_t tn_db_exec(tn_db_conn_t *conn, const char *sql, int nparams, const char *const *params,
                    const int *lens, tn_db_res_t **res, tn_db_error_t *e)
{
    TN_ASSERT(conn && sql && nparams >= 0 && nparams <= 64);
    if (res)
        *res = NULL;
    int formats[64];
    for (int i = 0; i < nparams; i++)
        formats[i] = lens && lens[i] > 0;
    double t0 = tn_clock_mono_s();
    PGresult *r =
        PQexecParams(conn->pg, sql, nparams, NULL, params, lens, lens ? formats : NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    tn_err_t rc = TN_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = map_error(conn, r, e);
    count(conn->db, rc, t0);
    set_up(conn->db, rc != TN_ERR_UNAVAILABLE);
    if (rc != TN_OK) {
        TN_DBG(TN_DBG_DB, "statement failed (%s): %s", e ? e->sqlstate : "",
               e ? e->msg : tn_err_str(rc));
        PQclear(r);
        return rc;
    }
    if (res) {
        *res = tn_xcalloc(1, sizeof(**res));
        (*res)->r = r;
    } else {
        PQclear(r);
    }
    return TN_OK;
}

int tn_db_res_rows(const tn_db_res_t *res)
{
    return PQntuples(res->r);
}

long tn_db_res_affected(const tn_db_res_t *res)
{
    const char *n = PQcmdTuples(res->r);
    return n && *n ? strtol(n, NULL, 10) : 0;
}

int tn_db_res_col(const tn_db_res_t *res, const char *name)
{
    return PQfnumber(res->r, name);
}

const char *tn_db_res_get(const tn_db_res_t *res, int row, int col)
{
    return PQgetvalue(res->r, row, col);
}

size_t tn_db_res_len(const tn_db_res_t *res, int row, int col)
{
    return (size_t)PQgetlength(res->r, row, col);
}

bool tn_db_res_is_null(const tn_db_res_t *res, int row, int col)
{
    return PQgetisnull(res->r, row, col) != 0;
}

void tn_db_res_free(tn_db_res_t *res)
{
    if (!res)
        return;
    PQclear(res->r);
    free(res);
}

/* ============================================================================================ */
/* Migrations                                                                                   */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.sql names in @p dir, sorted. Caller frees each and the array. */
static tn_err_t list_sql(const char *dir, char ***out, size_t *n, char *errbuf, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errbuf, errlen, "cannot open migrations folder %s: %s", dir, strerror(errno));
        return TN_ERR_IO;
    }
    size_t cap = 8;
    char **names = tn_xcalloc(cap, sizeof(*names));
    *n = 0;
    const struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (len < 5 || strcmp(ent->d_name + len - 4, ".sql") != 0 || ent->d_name[0] == '.')
            continue;
        if (*n == cap) {
            cap *= 2;
            names = tn_xrealloc(names, cap * sizeof(*names));
        }
        names[(*n)++] = tn_xstrdup(ent->d_name);
    }
    closedir(d);
    qsort(names, *n, sizeof(*names), name_cmp);
    *out = names;
    return TN_OK;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    tn_buf_t b;
    tn_buf_init(&b, (size_t)16 << 20);
    char chunk[8192];
    size_t got;
    tn_err_t rc = TN_OK;
    while (rc == TN_OK && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = tn_buf_add(&b, chunk, got);
    int bad = ferror(f) || rc != TN_OK;
    fclose(f);
    if (bad) {
        tn_buf_cleanup(&b);
        return NULL;
    }
    return tn_buf_detach(&b, NULL);
}

/* Run a whole migration file (several statements: the simple query protocol). The file is
 * ours, shipped with the program; no value from outside ever reaches this function. */
static tn_err_t exec_script(tn_db_conn_t *conn, const char *sql, tn_db_error_t *e)
{
    double t0 = tn_clock_mono_s();
    PGresult *r = PQexec(conn->pg, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    tn_err_t rc = TN_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
        rc = map_error(conn, r, e);
    count(conn->db, rc, t0);
    PQclear(r);
    return rc;
}

tn_err_t tn_db_migrate(tn_db_conn_t *conn, const char *dir, int64_t lock_key, int *applied,
                       char *errbuf, size_t errlen)
{
    tn_err_t rc;
    tn_db_error_t de;
    char **names = NULL;
    size_t n = 0;
    bool locked = false;
    char key[32];
    const char *kp[] = {key};
    snprintf(key, sizeof(key), "%lld", (long long)lock_key);
    if (applied)
        *applied = 0;
    rc = list_sql(dir, &names, &n, errbuf, errlen);
    if (rc != TN_OK)
        return rc;
    rc = tn_db_exec(conn, "SELECT pg_advisory_lock($1::bigint)", 1, kp, NULL, NULL, &de);
    if (rc != TN_OK)
        goto failed;
    locked = true;
    rc = tn_db_exec(conn,
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " name text PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    0, NULL, NULL, NULL, &de);
    if (rc != TN_OK)
        goto failed;
    for (size_t i = 0; i < n; i++) {
        const char *np[] = {names[i]};
        tn_db_res_t *res = NULL;
        rc = tn_db_exec(conn, "SELECT 1 FROM schema_migrations WHERE name = $1", 1, np, NULL, &res,
                        &de);
        if (rc != TN_OK)
            goto failed;
        int done = tn_db_res_rows(res) > 0;
        tn_db_res_free(res);
        if (done)
            continue;
        char *path = tn_xasprintf("%s/%s", dir, names[i]);
        char *sql = read_all(path);
        free(path);
        if (!sql) {
            snprintf(errbuf, errlen, "cannot read migration %s/%s", dir, names[i]);
            rc = TN_ERR_IO;
            goto out;
        }
        rc = tn_db_exec(conn, "BEGIN", 0, NULL, NULL, NULL, &de);
        if (rc == TN_OK)
            rc = exec_script(conn, sql, &de);
        if (rc == TN_OK)
            rc = tn_db_exec(conn, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, np, NULL,
                            NULL, &de);
        if (rc == TN_OK)
            rc = tn_db_exec(conn, "COMMIT", 0, NULL, NULL, NULL, &de);
        free(sql);
        if (rc != TN_OK) {
            if (rc != TN_ERR_UNAVAILABLE)
                tn_db_exec(conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL);
            snprintf(errbuf, errlen, "migration %s failed: %s", names[i], de.msg);
            rc = rc == TN_ERR_UNAVAILABLE ? TN_ERR_UNAVAILABLE : TN_ERR;
            goto out;
        }
        TN_LOG(TN_LOG_INFO, "database migration %s applied", names[i]);
        if (applied)
            (*applied)++;
    }
    rc = TN_OK;
    goto out;
failed:
    snprintf(errbuf, errlen, "migrations: %s", de.msg);
out:
    if (locked && !conn->broken)
        tn_db_exec(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, kp, NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
