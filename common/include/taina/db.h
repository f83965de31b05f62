/**
 * @file db.h
 * @brief PostgreSQL for the suite (wraps libpq): a small pool of connections that reconnect,
 *        parameterized statements only, errors mapped to tn_err_t with "retry?" answered, and
 *        SQL migrations applied once under an advisory lock.
 *
 *     tn_db_opts_t o = {.conninfo = cfg->database_url, .pool_size = 4, .metrics = m};
 *     tn_db_t *db = tn_db_new(&o, err, sizeof(err));
 *     tn_db_conn_t *conn;
 *     tn_db_error_t de;
 *     if (tn_db_acquire(db, 2000, &conn, &de) == TN_OK) {
 *         const char *p[] = {id};
 *         tn_db_res_t *res = NULL;
 *         rc = tn_db_exec(conn, "SELECT status FROM appointments WHERE request_id = $1", 1, p,
 *                         NULL, &res, &de);
 *         ... tn_db_res_get(res, 0, 0) ...
 *         tn_db_res_free(res);
 *         tn_db_release(db, conn);
 *     }
 *
 * Values travel as parameters ($1, $2 ...), never inside the SQL text: there is no function
 * here that formats a value into a statement. A parameter is text (NUL-terminated) unless a
 * length is given, in which case it is sent as binary (bytea).
 *
 * Connections: the pool opens them when they are first needed. A statement that fails because
 * the connection broke (the server went away, restarted, or the network failed) marks the
 * connection broken; tn_db_release() closes it and the next tn_db_acquire() opens a new one.
 * Callers retry such failures (TN_ERR_UNAVAILABLE) with backoff; nothing here sleeps except
 * the wait for a free connection.
 *
 * Log: libpq's notices go to the log at debug level (context "db"); statements are logged by
 * name only at debug level, never their parameters.
 *
 * Metrics (when a registry is given): taina_db_queries_total{outcome} (ok, error,
 * unavailable: one per round trip to the server), taina_db_query_duration_seconds,
 * taina_db_connects_total{outcome}, taina_db_up (1 while the last connection attempt or
 * statement reached the server).
 *
 * @thread The pool is thread-safe. A connection is used by one thread at a time, between
 *         tn_db_acquire() and tn_db_release().
 */
#ifndef TAINA_DB_H
#define TAINA_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/metrics.h"

typedef struct tn_db tn_db_t;
typedef struct tn_db_conn tn_db_conn_t;
typedef struct tn_db_res tn_db_res_t;

/** Pool options. Pointers are borrowed during tn_db_new() (metrics: for the pool's life). */
typedef struct tn_db_opts {
    const char *conninfo;         /**< libpq conninfo or URI; required */
    int pool_size;                /**< connections at most [4] */
    int64_t connect_timeout_ms;   /**< per connection attempt [5000] */
    int64_t statement_timeout_ms; /**< server-side statement_timeout; 0 = the server's */
    const char *application_name; /**< shown in pg_stat_activity ["taina"] */
    tn_metrics_t *metrics;        /**< may be NULL */
} tn_db_opts_t;

/** What went wrong with a statement or a connection (STYLE rule 9). */
typedef struct tn_db_error {
    char sqlstate[6]; /**< "23505"; "" when none (connection failures) */
    bool retriable;   /**< the same work may succeed later (connection lost, deadlock,
                           serialization failure, server shutting down) */
    char msg[256];    /**< the server's or libpq's text, one line */
} tn_db_error_t;

/**
 * @brief A pool. No connection is opened yet (the database may still be starting).
 * @returns NULL with one sentence in @p errbuf (missing or malformed conninfo). Caller owns the
 *          result; free with tn_db_destroy().
 */
tn_db_t *tn_db_new(const tn_db_opts_t *o, char *errbuf, size_t errlen);
/** @brief Close every connection and free the pool. No connection may be acquired. NULL ok. */
void tn_db_destroy(tn_db_t *db);

/**
 * @brief Take a connection, opening one when none is idle and the pool is not full; waits up
 *        to @p wait_ms for one to be released when it is.
 * @returns TN_OK with @p out set (give it back with tn_db_release()); TN_ERR_UNAVAILABLE when a
 *          connection could not be opened (reason in @p e); TN_ERR_TIMEOUT when none was free.
 */
tn_err_t tn_db_acquire(tn_db_t *db, int64_t wait_ms, tn_db_conn_t **out, tn_db_error_t *e);
/** @brief Give a connection back (a broken one, or one left inside a transaction, is closed). */
void tn_db_release(tn_db_t *db, tn_db_conn_t *conn);

/**
 * @brief Run one statement with @p nparams parameters (a NULL value is SQL NULL).
 * @param lens NULL: every parameter is text; else lens[i] > 0 sends parameter i as binary of
 *        that length, 0 as text.
 * @param res out: the result rows (may be NULL when the caller needs none). Caller owns it;
 *        free with tn_db_res_free(). NULL on failure.
 * @returns TN_OK; TN_ERR_UNAVAILABLE (connection lost: retry on a new connection);
 *          TN_ERR_EXISTS (unique violation, 23505); TN_AGAIN (deadlock or serialization
 *          failure: redo the transaction); TN_ERR_INVALID (the input was refused: invalid text
 *          encoding, value too long, bad syntax of a value: class 22); TN_ERR otherwise.
 *          @p e (may be NULL) says why.
 */
tn_err_t tn_db_exec(tn_db_conn_t *conn, const char *sql, int nparams, const char *const *params,
                    const int *lens, tn_db_res_t **res, tn_db_error_t *e);

/** @brief Rows in a result. */
int tn_db_res_rows(const tn_db_res_t *res);
/** @brief Rows a command changed (UPDATE, INSERT, DELETE). */
long tn_db_res_affected(const tn_db_res_t *res);
/** @brief Column index by name, or -1. */
int tn_db_res_col(const tn_db_res_t *res, const char *name);
/** @brief A value as text ("" for NULL). Borrowed; valid until tn_db_res_free(). */
const char *tn_db_res_get(const tn_db_res_t *res, int row, int col);
/** @brief Byte length of a value. */
size_t tn_db_res_len(const tn_db_res_t *res, int row, int col);
/** @brief Is the value SQL NULL? */
bool tn_db_res_is_null(const tn_db_res_t *res, int row, int col);
/** @brief Free a result. NULL ok. */
void tn_db_res_free(tn_db_res_t *res);

/** @brief Whether the last connection attempt or statement of the pool reached the server. */
bool tn_db_is_up(const tn_db_t *db);

/**
 * @brief Apply the migrations in @p dir: every `*.sql` file in name order whose name is not yet
 *        in table `schema_migrations` (created when missing) runs in its own transaction, and
 *        its name is recorded in the same transaction. The whole run holds the session advisory
 *        lock @p lock_key, so replicas starting together apply each file once.
 * @param applied out: files applied by this call (may be NULL).
 * @returns TN_OK; TN_ERR_UNAVAILABLE (database not reachable: retry); TN_ERR_IO (folder or
 *          file unreadable); TN_ERR (a migration failed: one sentence with its name in
 *          @p errbuf; nothing of that file is kept).
 */
tn_err_t tn_db_migrate(tn_db_conn_t *conn, const char *dir, int64_t lock_key, int *applied,
                       char *errbuf, size_t errlen);

#endif
