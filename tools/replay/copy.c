/* taina-replay copy and dlq: read offset ranges of a topic, filter, produce to another topic with
 * the idempotent producer and a taina-replay-of header. */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

#define H_REPLAY_OF "taina-replay-of"

typedef struct copy_job {
    const char *from, *to;
    const char *reason; /* dlq: only this taina-error (NULL: any) */
    bool dlq;           /* strip the DLQ headers, check taina-source-topic */
    int32_t nfrom, nto; /* partition counts */
    tn_kafka_range_t *ranges;
    size_t nranges;
    int64_t t_start, t_end; /* record time filter, ms; -1 none */
    /* counts */
    uint64_t copied, skip_time, skip_tenant, skip_reason, skip_source, failed;
} copy_job_t;

static int64_t pos_offset(const replay_pos_t *p, int64_t lo, int64_t hi)
{
    int64_t o = p->kind == POS_BEGINNING ? lo : p->kind == POS_NOW ? hi : p->value;
    return o < lo ? lo : o > hi ? hi : o;
}

/* Turn --partitions/--start/--end into one offset range per selected partition. */
static tn_err_t plan(replay_t *rp, tn_kafka_admin_t *a, copy_job_t *j, char *err, size_t errlen)
{
    const replay_cfg_t *c = rp->cfg;
    replay_pos_t start = {POS_BEGINNING, 0}, end = {POS_NOW, 0};
    if ((*c->start && replay_parse_pos(c->start, &start, err, errlen)) ||
        (*c->end && replay_parse_pos(c->end, &end, err, errlen)))
        return TN_ERR_CONFIG;
    tn_err_t rc = tn_kafka_admin_partition_count(a, j->from, &j->nfrom, err, errlen);
    if (rc == TN_OK)
        rc = tn_kafka_admin_partition_count(a, j->to, &j->nto, err, errlen);
    if (rc != TN_OK)
        return rc;
    bool *mask = tn_xcalloc((size_t)j->nfrom, sizeof(*mask));
    if (replay_parse_partitions(c->partitions, j->nfrom, mask, err, errlen)) {
        free(mask);
        return TN_ERR_CONFIG;
    }
    j->t_start = start.kind == POS_TIME ? start.value : -1;
    j->t_end = end.kind == POS_TIME ? end.value : -1;
    j->ranges = tn_xcalloc((size_t)j->nfrom, sizeof(*j->ranges));
    for (int32_t p = 0; p < j->nfrom && rc == TN_OK; p++) {
        if (!mask[p])
            continue;
        int64_t lo, hi, s, e;
        rc = tn_kafka_admin_watermarks(a, j->from, p, &lo, &hi, err, errlen);
        if (rc != TN_OK)
            break;
        s = pos_offset(&start, lo, hi);
        e = pos_offset(&end, lo, hi);
        /* A time is looked up (exactly: checked, scanned on devstack); the records are filtered
         * by their own timestamps too, since timestamps need not grow with offsets. */
        if (start.kind == POS_TIME)
            rc = tn_kafka_admin_offset_for_time(a, j->from, p, start.value, &s, NULL, err, errlen);
        if (rc == TN_OK && end.kind == POS_TIME)
            rc =
                tn_kafka_admin_offset_for_time(a, j->from, p, end.value + 1, &e, NULL, err, errlen);
        j->ranges[j->nranges++] = (tn_kafka_range_t){p, s, e > s ? e : s};
    }
    free(mask);
    return rc;
}

static uint64_t plan_total(const copy_job_t *j)
{
    uint64_t t = 0;
    for (size_t i = 0; i < j->nranges; i++)
        t += (uint64_t)(j->ranges[i].end - j->ranges[i].start);
    return t;
}

static bool header_is(const tn_kafka_msg_t *m, const char *name, const char *want)
{
    size_t len = 0;
    const char *v = tn_kafka_msg_header(m, name, &len);
    return v && len == strlen(want) && !memcmp(v, want, len);
}

/* Does the record's JSON value carry this tenant_id? */
static bool tenant_matches(const tn_kafka_msg_t *m, const char *tenant)
{
    json_t *v = json_loadb(m->value, m->value_len, 0, NULL);
    const char *t = json_string_value(json_object_get(v, "tenant_id"));
    bool ok = t && !strcmp(t, tenant);
    json_decref(v);
    return ok;
}

/* Which records to skip, counted by reason. */
static bool wanted(replay_t *rp, copy_job_t *j, const tn_kafka_msg_t *m)
{
    if ((j->t_start >= 0 && m->timestamp_ms < j->t_start) ||
        (j->t_end >= 0 && m->timestamp_ms > j->t_end)) {
        j->skip_time++;
        return false;
    }
    if (j->dlq && j->reason && !header_is(m, TN_KAFKA_H_ERROR, j->reason)) {
        j->skip_reason++;
        return false;
    }
    if (j->dlq && !rp->cfg->any_source && !header_is(m, TN_KAFKA_H_SRC_TOPIC, j->to)) {
        j->skip_source++;
        return false;
    }
    if (*rp->cfg->tenant && !tenant_matches(m, rp->cfg->tenant)) {
        j->skip_tenant++;
        return false;
    }
    return true;
}

/* Produce one copy: the record's headers (without the DLQ ones for a re-drive, and without an
 * earlier taina-replay-of) plus taina-replay-of. */
static tn_err_t produce_copy(tn_kafka_producer_t *prod, copy_job_t *j, const tn_kafka_msg_t *m)
{
    size_t n = tn_kafka_msg_header_count(m), k = 0;
    tn_kafka_header_t *h = tn_xcalloc(n + 1, sizeof(*h));
    for (size_t i = 0; i < n; i++) {
        const char *name;
        if (tn_kafka_msg_header_at(m, i, &name, &h[k].value, &h[k].len) != TN_OK)
            continue;
        if (!strcmp(name, H_REPLAY_OF) ||
            (j->dlq && (!strncmp(name, "taina-error", 11) || !strncmp(name, "taina-source-", 13))))
            continue;
        h[k++].name = name;
    }
    char of[512];
    snprintf(of, sizeof(of), "%s/%" PRId32 "/%" PRId64, j->from, m->partition, m->offset);
    h[k++] = (tn_kafka_header_t){H_REPLAY_OF, of, strlen(of)};
    /* Same partition count: keep the partition (order and placement as in the source).
     * Otherwise by key (murmur2, as Kafka's default partitioner: the key's partition in the
     * destination); a record without key keeps its source partition's order in one place. */
    int32_t part = j->nfrom == j->nto ? m->partition : m->key ? -1 : m->partition % j->nto;
    tn_kafka_record_t r = {j->to, part, m->key, m->key_len, m->value, m->value_len, h, k};
    tn_kafka_error_t ke;
    tn_err_t rc;
    while ((rc = tn_kafka_produce(prod, &r, &ke)) == TN_AGAIN && !tn_lifecycle_is_stopping())
        tn_clock_sleep_ms(10); /* local queue full: the poll thread drains it */
    if (rc != TN_OK && rc != TN_AGAIN)
        TN_LOG(TN_LOG_ERROR, "produce to %s: %s", j->to, ke.msg);
    free(h);
    return rc;
}

static void print_plan(replay_t *rp, const copy_job_t *j, const char *verb)
{
    fprintf(rp->out, "%s %s -> %s (%s)\n", verb, j->from, j->to,
            j->nfrom == j->nto ? "same partition count: each record keeps its partition"
                               : "partition counts differ: by key (murmur2)");
    for (size_t i = 0; i < j->nranges; i++)
        fprintf(rp->out,
                "  %s[%" PRId32 "] offsets %" PRId64 "..%" PRId64 " (%" PRId64 " records)\n",
                j->from, j->ranges[i].partition, j->ranges[i].start, j->ranges[i].end,
                j->ranges[i].end - j->ranges[i].start);
}

static tn_err_t copy_run(replay_t *rp, copy_job_t *j)
{
    char err[512];
    double rate = 0;
    tn_err_t rc;
    tn_kafka_admin_t *a = NULL;
    tn_kafka_reader_t *rd = NULL;
    tn_kafka_producer_t *prod = NULL;
    if (replay_parse_rate(rp->cfg->rate, &rate, err, sizeof(err))) {
        rc = TN_ERR_CONFIG;
        goto out;
    }
    a = tn_kafka_admin_new(&rp->kopts, NULL, err, sizeof(err));
    if (!a) {
        rc = TN_ERR_KAFKA;
        goto out;
    }
    rc = plan(rp, a, j, err, sizeof(err));
    if (rc != TN_OK)
        goto out;
    print_plan(rp, j, rp->cfg->dry_run ? "dry run: would copy" : "copying");
    fflush(rp->out);
    rd = tn_kafka_reader_new(&rp->kopts, j->from, j->ranges, j->nranges, err, sizeof(err));
    if (!rd) {
        rc = TN_ERR_KAFKA;
        goto out;
    }
    if (!rp->cfg->dry_run) {
        prod = tn_kafka_producer_new(&rp->kopts, NULL, err, sizeof(err));
        if (!prod) {
            rc = TN_ERR_KAFKA;
            goto out;
        }
    }
    replay_progress_t pg;
    replay_progress_start(&pg, j->dlq ? "dlq" : "copy", plan_total(j));
    double t0 = tn_clock_mono_s();
    int64_t idle_since = tn_clock_mono_ms();
    rc = TN_OK;
    while (!tn_kafka_reader_done(rd) && !tn_lifecycle_is_stopping()) {
        tn_kafka_msg_t m;
        tn_err_t prc = tn_kafka_reader_poll(rd, 200, &m);
        if (prc == TN_ERR_FATAL) {
            snprintf(err, sizeof(err), "reading %s failed", j->from);
            rc = TN_ERR_KAFKA;
            break;
        }
        if (prc != TN_OK) {
            if (tn_clock_mono_ms() - idle_since > 60000) {
                snprintf(err, sizeof(err), "no record from %s for 60 s before the end offsets",
                         j->from);
                rc = TN_ERR_TIMEOUT;
                break;
            }
            continue;
        }
        idle_since = tn_clock_mono_ms();
        pg.done++;
        if (wanted(rp, j, &m)) {
            if (prod && produce_copy(prod, j, &m) != TN_OK)
                j->failed++;
            else
                j->copied++;
            replay_rate_wait(rate, j->copied, t0);
        }
        tn_kafka_msg_release(&m);
        replay_progress_tick(rp, &pg, false);
    }
    replay_progress_tick(rp, &pg, true);
    if (prod && tn_kafka_producer_flush(prod, 60000) != TN_OK && rc == TN_OK) {
        snprintf(err, sizeof(err), "%s did not acknowledge every record within 60 s", j->to);
        rc = TN_ERR_TIMEOUT;
    }
    if (prod) {
        tn_kafka_producer_stats_t st;
        tn_kafka_producer_get_stats(prod, &st);
        j->failed += st.failed;
        j->copied = st.delivered;
    }
    bool stopped = tn_lifecycle_is_stopping() && !tn_kafka_reader_done(rd);
    fprintf(rp->out,
            "%s %" PRIu64 " of %" PRIu64 " records read%s; skipped: %" PRIu64 " outside the time "
            "range, %" PRIu64 " other tenant",
            rp->cfg->dry_run ? "would copy" : "copied", j->copied, pg.done,
            stopped ? " (interrupted)" : "", j->skip_time, j->skip_tenant);
    if (j->dlq)
        fprintf(rp->out, ", %" PRIu64 " other reason, %" PRIu64 " other source topic",
                j->skip_reason, j->skip_source);
    fprintf(rp->out, "; failed: %" PRIu64 "; %.1fs\n", j->failed, tn_clock_mono_s() - t0);
    if (rc == TN_OK && (j->failed || stopped)) {
        snprintf(err, sizeof(err), stopped ? "interrupted" : "some records were not written");
        rc = TN_ERR_KAFKA;
    }
out:
    if (rc != TN_OK)
        fprintf(rp->err, "taina-replay: %s\n", err);
    tn_kafka_producer_destroy(prod);
    tn_kafka_reader_destroy(rd);
    tn_kafka_admin_destroy(a);
    free(j->ranges);
    return rc;
}

tn_err_t replay_copy_run(replay_t *rp)
{
    copy_job_t j = {.from = rp->cfg->from, .to = rp->cfg->to};
    return copy_run(rp, &j);
}

tn_err_t replay_dlq_run(replay_t *rp)
{
    copy_job_t j = {.from = rp->cfg->from,
                    .to = rp->cfg->to,
                    .dlq = true,
                    .reason = *rp->cfg->reason ? rp->cfg->reason : NULL};
    return copy_run(rp, &j);
}
