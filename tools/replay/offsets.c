/* taina-replay lag and reset-offsets: a group's committed offsets against the log. */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "taina/log.h"
#include "taina/mem.h"

/* One partition's numbers. */
typedef struct prow {
    const char *topic;
    int32_t partition;
    int64_t committed; /* -1 none */
    int64_t lo, hi;
    int64_t target; /* reset-offsets: the new offset */
} prow_t;

/* Records the group still has to read from @p at (-1: no commit, so from the log start). */
static int64_t lag_at(const prow_t *r, int64_t at)
{
    int64_t from = at >= 0 ? at : r->lo;
    return r->hi > from ? r->hi - from : 0;
}

/* Rows of @p topic: committed offsets and watermarks. */
static tn_err_t rows_of(tn_kafka_admin_t *a, const char *topic, prow_t **rows, int32_t *n,
                        char *err, size_t errlen)
{
    *rows = NULL;
    tn_err_t rc = tn_kafka_admin_partition_count(a, topic, n, err, errlen);
    if (rc != TN_OK)
        return rc;
    int64_t *committed = tn_xcalloc((size_t)*n, sizeof(*committed));
    prow_t *r = tn_xcalloc((size_t)*n, sizeof(*r));
    rc = tn_kafka_admin_committed(a, topic, *n, committed, err, errlen);
    for (int32_t p = 0; p < *n && rc == TN_OK; p++) {
        r[p] = (prow_t){topic, p, committed[p], 0, 0, -1};
        rc = tn_kafka_admin_watermarks(a, topic, p, &r[p].lo, &r[p].hi, err, errlen);
    }
    free(committed);
    if (rc != TN_OK) {
        free(r);
        return rc;
    }
    *rows = r;
    return TN_OK;
}

static void print_offset(FILE *f, int w, int64_t v)
{
    if (v >= 0)
        fprintf(f, " %*" PRId64, w, v);
    else
        fprintf(f, " %*s", w, "-");
}

static json_t *jint_or_null(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

tn_err_t replay_lag_run(replay_t *rp)
{
    const replay_cfg_t *c = rp->cfg;
    char err[512] = "";
    char **topics = NULL;
    size_t ntopics = 0;
    tn_err_t rc = TN_ERR_KAFKA;
    prow_t *all = NULL;
    size_t nall = 0;
    tn_kafka_admin_t *a = tn_kafka_admin_new(&rp->kopts, c->group, err, sizeof(err));
    if (!a)
        goto out;
    if (*c->topic) {
        topics = tn_xcalloc(1, sizeof(*topics));
        topics[0] = tn_xstrdup(c->topic);
        ntopics = 1;
    } else if ((rc = tn_kafka_admin_topics(a, &topics, &ntopics, err, sizeof(err))) != TN_OK) {
        goto out;
    }
    for (size_t t = 0; t < ntopics; t++) {
        prow_t *rows;
        int32_t n;
        rc = rows_of(a, topics[t], &rows, &n, err, sizeof(err));
        if (rc != TN_OK)
            goto out;
        int any = *c->topic != 0;
        for (int32_t p = 0; p < n; p++)
            any |= rows[p].committed >= 0;
        if (any) { /* a topic the group never committed on is not its topic */
            all = tn_xrealloc(all, (nall + (size_t)n) * sizeof(*all));
            memcpy(all + nall, rows, (size_t)n * sizeof(*rows));
            nall += (size_t)n;
        }
        free(rows);
    }
    int64_t sum = 0;
    for (size_t i = 0; i < nall; i++)
        sum += lag_at(&all[i], all[i].committed);
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < nall; i++)
            json_array_append_new(arr, json_pack("{s:s, s:i, s:o, s:I, s:I, s:I}", "topic",
                                                 all[i].topic, "partition", (int)all[i].partition,
                                                 "committed", jint_or_null(all[i].committed),
                                                 "log_start", (json_int_t)all[i].lo,
                                                 "high_watermark", (json_int_t)all[i].hi, "lag",
                                                 (json_int_t)lag_at(&all[i], all[i].committed)));
        json_t *doc = json_pack("{s:s, s:o, s:I}", "group", c->group, "partitions", arr, "lag",
                                (json_int_t)sum);
        json_dumpf(doc, rp->out, JSON_INDENT(2));
        fputc('\n', rp->out);
        json_decref(doc);
    } else {
        fprintf(rp->out, "%-28s %9s %12s %14s %10s\n", "TOPIC", "PARTITION", "COMMITTED",
                "HIGH-WATERMARK", "LAG");
        for (size_t i = 0; i < nall; i++) {
            fprintf(rp->out, "%-28s %9" PRId32, all[i].topic, all[i].partition);
            print_offset(rp->out, 12, all[i].committed);
            fprintf(rp->out, " %14" PRId64 " %10" PRId64 "\n", all[i].hi,
                    lag_at(&all[i], all[i].committed));
        }
        if (!nall)
            fprintf(rp->out, "group %s has no committed offsets%s%s\n", c->group,
                    *c->topic ? " on " : "", c->topic);
        fprintf(rp->out, "total lag of group %s: %" PRId64 "\n", c->group, sum);
    }
    rc = TN_OK;
out:
    if (rc != TN_OK)
        fprintf(rp->err, "taina-replay: %s\n", err);
    free(all);
    tn_kafka_admin_names_free(topics, ntopics);
    tn_kafka_admin_destroy(a);
    return rc;
}

/* The new offset of each row, clamped to the log. */
static tn_err_t targets(replay_t *rp, tn_kafka_admin_t *a, prow_t *rows, int32_t n, char *err,
                        size_t errlen)
{
    const replay_cfg_t *c = rp->cfg;
    int64_t v = 0, ts = 0;
    if ((*c->to_offset && replay_parse_i64(c->to_offset, &v)) ||
        (*c->shift_by && replay_parse_i64(c->shift_by, &v)) ||
        (*c->to_datetime && replay_parse_time(c->to_datetime, &ts))) {
        snprintf(err, errlen, "bad value of the reset option");
        return TN_ERR_CONFIG;
    }
    for (int32_t p = 0; p < n; p++) {
        prow_t *r = &rows[p];
        int64_t t;
        if (c->to_earliest) {
            t = r->lo;
        } else if (c->to_latest) {
            t = r->hi;
        } else if (*c->to_offset) {
            t = v;
        } else if (*c->shift_by) {
            t = (r->committed >= 0 ? r->committed : r->lo) + v;
        } else {
            tn_err_t rc = tn_kafka_admin_offset_for_time(a, r->topic, p, ts, &t, NULL, err, errlen);
            if (rc != TN_OK)
                return rc;
        }
        r->target = t < r->lo ? r->lo : t > r->hi ? r->hi : t;
    }
    return TN_OK;
}

static void print_plan(replay_t *rp, const prow_t *rows, int32_t n, const char *state)
{
    const replay_cfg_t *c = rp->cfg;
    int64_t before = 0, after = 0;
    for (int32_t p = 0; p < n; p++) {
        before += lag_at(&rows[p], rows[p].committed);
        after += lag_at(&rows[p], rows[p].target);
    }
    if (c->json) {
        json_t *arr = json_array();
        for (int32_t p = 0; p < n; p++)
            json_array_append_new(
                arr, json_pack("{s:s, s:i, s:o, s:I, s:I, s:I, s:I, s:I}", "topic", rows[p].topic,
                               "partition", (int)p, "current", jint_or_null(rows[p].committed),
                               "new", (json_int_t)rows[p].target, "log_start",
                               (json_int_t)rows[p].lo, "high_watermark", (json_int_t)rows[p].hi,
                               "lag", (json_int_t)lag_at(&rows[p], rows[p].committed), "new_lag",
                               (json_int_t)lag_at(&rows[p], rows[p].target)));
        json_t *doc =
            json_pack("{s:s, s:s, s:s, s:o, s:I, s:I}", "group", c->group, "topic", c->topic,
                      "state", state, "partitions", arr, "lag", before, "new_lag", after);
        json_dumpf(doc, rp->out, JSON_INDENT(2));
        fputc('\n', rp->out);
        json_decref(doc);
        return;
    }
    fprintf(rp->out, "%-28s %9s %12s %12s %14s %10s %10s\n", "TOPIC", "PARTITION", "CURRENT", "NEW",
            "HIGH-WATERMARK", "LAG", "NEW-LAG");
    for (int32_t p = 0; p < n; p++) {
        fprintf(rp->out, "%-28s %9" PRId32, rows[p].topic, p);
        print_offset(rp->out, 12, rows[p].committed);
        fprintf(rp->out, " %12" PRId64 " %14" PRId64 " %10" PRId64 " %10" PRId64 "\n",
                rows[p].target, rows[p].hi, lag_at(&rows[p], rows[p].committed),
                lag_at(&rows[p], rows[p].target));
    }
    fprintf(rp->out, "group %s on %s: lag %" PRId64 " -> %" PRId64 " (%s)\n", c->group, c->topic,
            before, after, state);
}

tn_err_t replay_reset_run(replay_t *rp)
{
    const replay_cfg_t *c = rp->cfg;
    char err[1024] = "";
    prow_t *rows = NULL;
    int32_t n = 0;
    tn_err_t rc = TN_ERR_KAFKA;
    tn_kafka_admin_t *a = tn_kafka_admin_new(&rp->kopts, c->group, err, sizeof(err));
    if (!a)
        goto out;
    rc = rows_of(a, c->topic, &rows, &n, err, sizeof(err));
    if (rc == TN_OK)
        rc = targets(rp, a, rows, n, err, sizeof(err));
    if (rc != TN_OK)
        goto out;
    if (!c->execute) {
        print_plan(rp, rows, n, "dry run: nothing changed, add --execute to apply");
        goto out;
    }
    int64_t *offs = tn_xcalloc((size_t)n, sizeof(*offs));
    for (int32_t p = 0; p < n; p++)
        offs[p] = rows[p].target;
    rc = tn_kafka_admin_alter_committed(a, c->topic, n, offs, c->join_timeout_ms, err, sizeof(err));
    free(offs);
    if (rc == TN_ERR_EXISTS) {
        fprintf(rp->err, "taina-replay: refusing to reset: %s; stop its consumers first\n", err);
        err[0] = '\0';
        goto out;
    }
    if (rc != TN_OK)
        goto out;
    /* Read back what the group has now. */
    int64_t *now = tn_xcalloc((size_t)n, sizeof(*now));
    rc = tn_kafka_admin_committed(a, c->topic, n, now, err, sizeof(err));
    for (int32_t p = 0; rc == TN_OK && p < n; p++) {
        if (now[p] != rows[p].target) {
            snprintf(err, sizeof(err),
                     "partition %" PRId32 ": committed %" PRId64 " after the reset, not %" PRId64,
                     p, now[p], rows[p].target);
            rc = TN_ERR_KAFKA;
        }
    }
    free(now);
    if (rc == TN_OK)
        print_plan(rp, rows, n, "executed");
out:
    if (rc != TN_OK && *err)
        fprintf(rp->err, "taina-replay: %s\n", err);
    free(rows);
    tn_kafka_admin_destroy(a);
    return rc;
}
