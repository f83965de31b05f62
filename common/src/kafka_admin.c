/* Kafka operations of tools: metadata, watermarks, committed offsets, offsets by time, group
 * description and offset changes, bounded reads. See kafka_admin.h for the devstack notes. */
#include "taina/kafka_admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_int.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

#define META_TIMEOUT_MS 10000

struct tn_kafka_admin {
    rd_kafka_t *rk; /* a consumer that never subscribes: metadata, queries, admin requests */
    char *group;
    tn_kafka_opts_t opts; /* for the join fallback; points into the copies below */
    char *brokers;
    tn_cfg_prop_t *props; /* copied: the handle may outlive the caller's options */
    size_t nprops;
};

/* A consumer handle: never commits by itself, partition EOF events on. */
static rd_kafka_t *consumer_new(const tn_kafka_opts_t *o, const char *group,
                                const char *const *extra, char *errbuf, size_t errlen)
{
    static const char *const defaults[] = {"enable.auto.commit",
                                           "false",
                                           "enable.auto.offset.store",
                                           "false",
                                           "enable.partition.eof",
                                           "true",
                                           "isolation.level",
                                           "read_committed",
                                           "auto.offset.reset",
                                           "earliest",
                                           NULL};
    char rkerr[512];
    rd_kafka_conf_t *conf = tn_kafka_conf_build(o, defaults, errbuf, errlen);
    if (!conf)
        return NULL;
    for (size_t i = 0; extra && extra[i]; i += 2) {
        if (rd_kafka_conf_set(conf, extra[i], extra[i + 1], rkerr, sizeof(rkerr)) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errbuf, errlen, "kafka property %s: %s", extra[i], rkerr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (rd_kafka_conf_set(conf, "group.id", group ? group : "taina-admin", rkerr, sizeof(rkerr)) !=
        RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "kafka property group.id: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        snprintf(errbuf, errlen, "kafka consumer: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

tn_kafka_admin_t *tn_kafka_admin_new(const tn_kafka_opts_t *o, const char *group, char *errbuf,
                                     size_t errlen)
{
    tn_kafka_admin_t *a = tn_xcalloc(1, sizeof(*a));
    a->brokers = tn_xstrdup(o->brokers);
    a->group = group ? tn_xstrdup(group) : NULL;
    a->props = tn_xcalloc(o->nprops + 1, sizeof(*a->props));
    for (size_t i = 0; i < o->nprops; i++) {
        a->props[i].name = tn_xstrdup(o->props[i].name);
        a->props[i].value = tn_xstrdup(o->props[i].value);
    }
    a->nprops = o->nprops;
    a->opts = (tn_kafka_opts_t){
        .brokers = a->brokers, .props = a->props, .nprops = a->nprops, .client_id = "taina-admin"};
    a->rk = consumer_new(&a->opts, group, NULL, errbuf, errlen);
    if (!a->rk) {
        tn_kafka_admin_destroy(a);
        return NULL;
    }
    return a;
}

void tn_kafka_admin_destroy(tn_kafka_admin_t *a)
{
    if (!a)
        return;
    /* It never joins its group: nothing to leave or commit. A consumer close would also wait
     * on the group coordinator while the group rebalances (seen on devstack). */
    if (a->rk)
        rd_kafka_destroy_flags(a->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    for (size_t i = 0; i < a->nprops; i++) {
        free(a->props[i].name);
        free(a->props[i].value);
    }
    free(a->props);
    free(a->brokers);
    free(a->group);
    free(a);
}

/* ---------------------------------------------------------------------------------------------
 * Metadata and offsets */

tn_err_t tn_kafka_admin_partition_count(tn_kafka_admin_t *a, const char *topic, int32_t *n,
                                        char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(a->rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(a->rk, 0, rkt, &md, META_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    *n = 0;
    if (!err && md) {
        if (md->topic_cnt != 1)
            err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        else if (md->topics[0].err)
            err = md->topics[0].err;
        else if (md->topics[0].partition_cnt == 0)
            err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        else
            *n = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (err) {
        snprintf(errbuf, errlen, "topic %s: %s", topic, rd_kafka_err2str(err));
        return tn_kafka_map_err(err);
    }
    return TN_OK;
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

tn_err_t tn_kafka_admin_topics(tn_kafka_admin_t *a, char ***names, size_t *n, char *errbuf,
                               size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    *names = NULL;
    *n = 0;
    rd_kafka_resp_err_t err = rd_kafka_metadata(a->rk, 1, NULL, &md, META_TIMEOUT_MS);
    if (err) {
        snprintf(errbuf, errlen, "metadata: %s", rd_kafka_err2str(err));
        return tn_kafka_map_err(err);
    }
    char **out = tn_xcalloc((size_t)md->topic_cnt + 1, sizeof(*out));
    size_t k = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!md->topics[i].err && strncmp(md->topics[i].topic, "__", 2) != 0)
            out[k++] = tn_xstrdup(md->topics[i].topic);
    rd_kafka_metadata_destroy(md);
    qsort(out, k, sizeof(*out), name_cmp);
    *names = out;
    *n = k;
    return TN_OK;
}

void tn_kafka_admin_names_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

tn_err_t tn_kafka_admin_watermarks(tn_kafka_admin_t *a, const char *topic, int32_t partition,
                                   int64_t *lo, int64_t *hi, char *errbuf, size_t errlen)
{
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(a->rk, topic, partition, lo, hi, META_TIMEOUT_MS);
    if (err) {
        snprintf(errbuf, errlen, "%s[%" PRId32 "] watermarks: %s", topic, partition,
                 rd_kafka_err2str(err));
        return tn_kafka_map_err(err);
    }
    return TN_OK;
}

tn_err_t tn_kafka_admin_committed(tn_kafka_admin_t *a, const char *topic, int32_t n,
                                  int64_t *offsets, char *errbuf, size_t errlen)
{
    if (!a->group) {
        snprintf(errbuf, errlen, "no consumer group given");
        return TN_ERR_INVALID;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int32_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    rd_kafka_resp_err_t err = rd_kafka_committed(a->rk, l, META_TIMEOUT_MS);
    for (int i = 0; !err && i < l->cnt; i++) {
        if (l->elems[i].err) {
            err = l->elems[i].err;
            break;
        }
        offsets[l->elems[i].partition] = l->elems[i].offset >= 0 ? l->elems[i].offset : -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errbuf, errlen, "committed offsets of group %s on %s: %s", a->group, topic,
                 rd_kafka_err2str(err));
        return tn_kafka_map_err(err);
    }
    return TN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Reading single records and scanning (the admin handle's own assignment) */

/* Assign one partition from @p offset. */
static tn_err_t assign_one(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return tn_kafka_map_err(err);
}

/*
 * Read from @p from until a record whose timestamp is >= @p ts_ms (its offset in *found) or
 * @p hi (*found = hi). With @p first_only, stop after the first record whatever its time.
 */
static tn_err_t scan_from(tn_kafka_admin_t *a, const char *topic, int32_t partition, int64_t from,
                          int64_t hi, int64_t ts_ms, int first_only, int64_t *found,
                          int64_t *first_ts, char *errbuf, size_t errlen)
{
    tn_err_t rc = assign_one(a->rk, topic, partition, from);
    *found = hi;
    if (first_ts)
        *first_ts = -1;
    if (rc != TN_OK) {
        snprintf(errbuf, errlen, "%s[%" PRId32 "]: assign: %s", topic, partition, tn_err_str(rc));
        return rc;
    }
    int64_t deadline = tn_clock_mono_ms() + 60000;
    rc = TN_ERR_TIMEOUT;
    while (tn_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(a->rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            int done = m->offset >= hi;
            rd_kafka_message_destroy(m);
            if (done) {
                rc = TN_OK;
                break;
            }
            continue;
        }
        if (m->err) {
            TN_LOG(TN_LOG_WARN, "kafka: %s[%" PRId32 "]: %s", topic, partition,
                   rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        int64_t off = m->offset;
        rd_kafka_message_destroy(m);
        if (first_ts && *first_ts < 0)
            *first_ts = ts;
        if (first_only || ts >= ts_ms || off + 1 >= hi) {
            if (first_only || ts >= ts_ms)
                *found = off;
            rc = TN_OK;
            break;
        }
    }
    rd_kafka_assign(a->rk, NULL);
    if (rc != TN_OK)
        snprintf(errbuf, errlen, "%s[%" PRId32 "]: reading from offset %" PRId64 " timed out",
                 topic, partition, from);
    return rc;
}

/* The timestamp of the record at @p offset (-1 when there is none there, e.g. a control
 * record: then the next record's). */
static tn_err_t ts_at(tn_kafka_admin_t *a, const char *topic, int32_t partition, int64_t offset,
                      int64_t hi, int64_t *ts, char *errbuf, size_t errlen)
{
    int64_t found;
    return scan_from(a, topic, partition, offset, hi, 0, 1, &found, ts, errbuf, errlen);
}

tn_err_t tn_kafka_admin_offset_for_time(tn_kafka_admin_t *a, const char *topic, int32_t partition,
                                        int64_t ts_ms, int64_t *offset, bool *scanned, char *errbuf,
                                        size_t errlen)
{
    int64_t lo = 0, hi = 0, before = -1, at = -1;
    if (scanned)
        *scanned = false;
    tn_err_t rc = tn_kafka_admin_watermarks(a, topic, partition, &lo, &hi, errbuf, errlen);
    if (rc != TN_OK)
        return rc;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = ts_ms;
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(a->rk, l, META_TIMEOUT_MS);
    int64_t o = err ? -1 : l->elems[0].offset;
    if (!err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errbuf, errlen, "%s[%" PRId32 "]: offsets for times: %s", topic, partition,
                 rd_kafka_err2str(err));
        return tn_kafka_map_err(err);
    }
    if (o < 0 || o > hi) /* -1: no record at or after the time */
        o = hi;
    if (o < lo)
        o = lo;
    /* Check: the record before must be older, the record at it must not be. */
    if (o > lo && (rc = ts_at(a, topic, partition, o - 1, hi, &before, errbuf, errlen)) != TN_OK)
        return rc;
    if (o < hi && (rc = ts_at(a, topic, partition, o, hi, &at, errbuf, errlen)) != TN_OK)
        return rc;
    if ((o > lo && before >= ts_ms) || (o < hi && at >= 0 && at < ts_ms)) {
        if (scanned)
            *scanned = true;
        TN_LOG(TN_LOG_DEBUG,
               "kafka: %s[%" PRId32 "]: the broker's offset for time %" PRId64 " is %" PRId64
               ", which the records contradict: scanning",
               topic, partition, ts_ms, o);
        if (lo >= hi) {
            o = hi;
        } else {
            rc = scan_from(a, topic, partition, lo, hi, ts_ms, 0, &o, NULL, errbuf, errlen);
            if (rc != TN_OK)
                return rc;
        }
    }
    *offset = o;
    return TN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Groups */

/* Run one admin request and wait for its result event of @p type. Caller destroys the event. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                    int64_t timeout_ms)
{
    int64_t deadline = tn_clock_mono_ms() + timeout_ms;
    while (tn_clock_mono_ms() < deadline) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 500);
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == type)
            return ev;
        rd_kafka_event_destroy(ev);
    }
    return NULL;
}

void tn_kafka_group_cleanup(tn_kafka_group_t *g)
{
    if (!g)
        return;
    free(g->members);
    g->members = NULL;
    g->nmembers = 0;
}

static void copy_str(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* ListGroups + DescribeGroups (rd_kafka_list_groups), not the DescribeConsumerGroups admin
 * request: with librdkafka 2.0 against a cluster that does not support it (devstack), that one
 * answers "unsupported" but leaves the handle unable to be destroyed (its main thread blocks). */
tn_err_t tn_kafka_admin_describe_group(tn_kafka_admin_t *a, tn_kafka_group_t *g, char *errbuf,
                                       size_t errlen)
{
    memset(g, 0, sizeof(*g));
    if (!a->group) {
        snprintf(errbuf, errlen, "no consumer group given");
        return TN_ERR_INVALID;
    }
    const struct rd_kafka_group_list *gl = NULL;
    rd_kafka_resp_err_t err = rd_kafka_list_groups(a->rk, a->group, &gl, META_TIMEOUT_MS);
    if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
        err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION) {
        snprintf(errbuf, errlen, "the cluster cannot describe groups");
        return TN_DECLINED;
    }
    if (err && err != RD_KAFKA_RESP_ERR__PARTIAL) {
        snprintf(errbuf, errlen, "describe group %s: %s", a->group, rd_kafka_err2str(err));
        return tn_kafka_map_err(err);
    }
    const struct rd_kafka_group_info *gi = NULL;
    for (int i = 0; i < gl->group_cnt; i++)
        if (!strcmp(gl->groups[i].group, a->group) && !gl->groups[i].err)
            gi = &gl->groups[i];
    /* A group the cluster does not know has no members: Kafka's "Dead". */
    copy_str(g->state, sizeof(g->state), gi ? gi->state : "Dead");
    g->nmembers = gi ? (size_t)gi->member_cnt : 0;
    g->members = tn_xcalloc(g->nmembers + 1, sizeof(*g->members));
    for (size_t i = 0; i < g->nmembers; i++) {
        const struct rd_kafka_group_member_info *m = &gi->members[i];
        copy_str(g->members[i].member_id, sizeof(g->members[i].member_id), m->member_id);
        copy_str(g->members[i].client_id, sizeof(g->members[i].client_id), m->client_id);
        copy_str(g->members[i].host, sizeof(g->members[i].host), m->client_host);
    }
    rd_kafka_group_list_destroy(gl);
    return TN_OK;
}

static rd_kafka_topic_partition_list_t *offsets_list(const char *topic, int32_t n,
                                                     const int64_t *offsets)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int32_t i = 0; i < n; i++)
        if (offsets[i] >= 0)
            rd_kafka_topic_partition_list_add(l, topic, i)->offset = offsets[i];
    return l;
}

/* AlterConsumerGroupOffsets from outside the group. */
static rd_kafka_resp_err_t alter_outside(tn_kafka_admin_t *a, const char *topic, int32_t n,
                                         const int64_t *offsets, char *errbuf, size_t errlen)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(a->rk);
    rd_kafka_AdminOptions_t *opt =
        rd_kafka_AdminOptions_new(a->rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
    rd_kafka_topic_partition_list_t *l = offsets_list(topic, n, offsets);
    rd_kafka_AlterConsumerGroupOffsets_t *alter =
        rd_kafka_AlterConsumerGroupOffsets_new(a->group, l);
    rd_kafka_AdminOptions_set_request_timeout(opt, META_TIMEOUT_MS, NULL, 0);
    rd_kafka_AlterConsumerGroupOffsets(a->rk, &alter, 1, opt, q);
    rd_kafka_event_t *ev =
        admin_wait(q, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT, META_TIMEOUT_MS + 5000);
    rd_kafka_resp_err_t err = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (ev && !err) {
        size_t ng = 0;
        const rd_kafka_group_result_t **gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
            rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &ng);
        const rd_kafka_error_t *ge = ng ? rd_kafka_group_result_error(gr[0]) : NULL;
        if (ge)
            err = rd_kafka_error_code(ge);
        const rd_kafka_topic_partition_list_t *pl =
            ng ? rd_kafka_group_result_partitions(gr[0]) : NULL;
        for (int i = 0; !err && pl && i < pl->cnt; i++)
            err = pl->elems[i].err;
    }
    if (err)
        snprintf(errbuf, errlen, "alter offsets of group %s: %s", a->group, rd_kafka_err2str(err));
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AlterConsumerGroupOffsets_destroy(alter);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    return err;
}

/* The join fallback: what the rebalance callback saw. */
typedef struct join_state {
    int assigned; /* partitions of the topic currently assigned to us */
    int rebalances;
    int ever_assigned; /* an assignment arrived, even an empty one */
} join_state_t;

static void join_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    join_state_t *js = opaque;
    const char *proto = rd_kafka_rebalance_protocol(rk); /* NULL before the first join */
    int coop = proto && !strcmp(proto, "COOPERATIVE");
    js->rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        js->ever_assigned = 1;
        rd_kafka_error_t *e = coop ? rd_kafka_incremental_assign(rk, parts) : NULL;
        if (!coop)
            rd_kafka_assign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
        js->assigned = coop ? js->assigned + parts->cnt : parts->cnt;
        /* We only commit: fetching nothing keeps this cheap. */
        rd_kafka_pause_partitions(rk, parts);
    } else {
        rd_kafka_error_t *e = coop ? rd_kafka_incremental_unassign(rk, parts) : NULL;
        if (!coop)
            rd_kafka_assign(rk, NULL);
        if (e)
            rd_kafka_error_destroy(e);
        js->assigned = coop ? js->assigned - parts->cnt : 0;
    }
}

static tn_err_t alter_by_joining(tn_kafka_admin_t *a, const char *topic, int32_t n,
                                 const int64_t *offsets, int64_t timeout_ms, char *errbuf,
                                 size_t errlen)
{
    static const char *const extra[] = {"partition.assignment.strategy", "cooperative-sticky",
                                        "session.timeout.ms", "6000", NULL};
    join_state_t js = {0};
    tn_err_t rc = TN_ERR_KAFKA;
    rd_kafka_conf_t *conf = tn_kafka_conf_build(&a->opts, NULL, errbuf, errlen);
    rd_kafka_t *rk = NULL;
    char rkerr[512];
    if (!conf)
        return TN_ERR_CONFIG;
    const char *const props[] = {"enable.auto.commit",
                                 "false",
                                 "enable.auto.offset.store",
                                 "false",
                                 "group.id",
                                 a->group,
                                 NULL};
    for (size_t i = 0; props[i]; i += 2)
        rd_kafka_conf_set(conf, props[i], props[i + 1], rkerr, sizeof(rkerr));
    for (size_t i = 0; extra[i]; i += 2)
        rd_kafka_conf_set(conf, extra[i], extra[i + 1], rkerr, sizeof(rkerr));
    rd_kafka_conf_set_rebalance_cb(conf, join_rebalance_cb);
    rd_kafka_conf_set_opaque(conf, &js);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errbuf, errlen, "kafka consumer: %s", rkerr);
        return TN_ERR_KAFKA;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        snprintf(errbuf, errlen, "subscribe to %s: %s", topic, rd_kafka_err2str(err));
        goto out;
    }
    /* Wait for the first assignment, then a moment more: a member that joins with us (or was
     * there) takes its share in the same or the next rebalance. */
    int64_t deadline = tn_clock_mono_ms() + timeout_ms, settle = -1;
    while (tn_clock_mono_ms() < deadline && (settle < 0 || tn_clock_mono_ms() < settle)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
        if (js.rebalances && settle < 0)
            settle = tn_clock_mono_ms() + 1500;
    }
    if (!js.rebalances) {
        snprintf(errbuf, errlen,
                 "joining group %s timed out (a member that just left makes a newcomer wait its "
                 "rebalance timeout)",
                 a->group);
        rc = TN_ERR_TIMEOUT;
        goto out;
    }
    if (js.assigned < n) {
        snprintf(errbuf, errlen,
                 "group %s has active members: they hold %d of the %" PRId32 " partitions of %s",
                 a->group, n - js.assigned, n, topic);
        rc = TN_ERR_EXISTS;
        goto out;
    }
    rd_kafka_topic_partition_list_t *l = offsets_list(topic, n, offsets);
    err = l->cnt ? rd_kafka_commit(rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errbuf, errlen, "commit offsets of group %s: %s", a->group, rd_kafka_err2str(err));
        goto out;
    }
    rc = TN_OK;
out:
    rd_kafka_consumer_close(rk);
    tn_kafka_group_destroy(rk, a->group, js.ever_assigned);
    return rc;
}

tn_err_t tn_kafka_admin_alter_committed(tn_kafka_admin_t *a, const char *topic, int32_t n,
                                        const int64_t *offsets, int64_t timeout_ms, char *errbuf,
                                        size_t errlen)
{
    tn_kafka_group_t g;
    if (!a->group) {
        snprintf(errbuf, errlen, "no consumer group given");
        return TN_ERR_INVALID;
    }
    tn_err_t rc = tn_kafka_admin_describe_group(a, &g, errbuf, errlen);
    if (rc == TN_OK) {
        if (g.nmembers) {
            tn_buf_t b;
            tn_buf_init(&b, 4096);
            for (size_t i = 0; i < g.nmembers && i < 8; i++)
                tn_buf_addf(&b, "%s%s@%s", i ? ", " : "", g.members[i].client_id,
                            g.members[i].host);
            snprintf(errbuf, errlen, "group %s is %s with %zu active member(s): %s", a->group,
                     g.state, g.nmembers, b.data ? b.data : "");
            tn_buf_cleanup(&b);
            tn_kafka_group_cleanup(&g);
            return TN_ERR_EXISTS;
        }
        tn_kafka_group_cleanup(&g);
        rd_kafka_resp_err_t err = alter_outside(a, topic, n, offsets, errbuf, errlen);
        if (!err)
            return TN_OK;
        if (err != RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID)
            return tn_kafka_map_err(err);
        /* A cluster that keeps the group's last member in mind (the mock): join instead. */
    } else if (rc != TN_DECLINED) {
        return rc;
    }
    return alter_by_joining(a, topic, n, offsets, timeout_ms, errbuf, errlen);
}

/* ---------------------------------------------------------------------------------------------
 * Reading ranges */

struct tn_kafka_reader {
    rd_kafka_t *rk;
    char *topic;
    tn_kafka_range_t *ranges;
    bool *done;
    size_t n, ndone;
};

static tn_kafka_range_t *range_of(tn_kafka_reader_t *r, int32_t partition, size_t *idx)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ranges[i].partition == partition) {
            *idx = i;
            return &r->ranges[i];
        }
    return NULL;
}

static void range_done(tn_kafka_reader_t *r, size_t i)
{
    if (r->done[i])
        return;
    r->done[i] = true;
    r->ndone++;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->topic, r->ranges[i].partition);
    rd_kafka_pause_partitions(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

tn_kafka_reader_t *tn_kafka_reader_new(const tn_kafka_opts_t *o, const char *topic,
                                       const tn_kafka_range_t *ranges, size_t n, char *errbuf,
                                       size_t errlen)
{
    tn_kafka_reader_t *r = tn_xcalloc(1, sizeof(*r));
    r->topic = tn_xstrdup(topic);
    r->n = n;
    r->ranges = tn_xcalloc(n + 1, sizeof(*r->ranges));
    r->done = tn_xcalloc(n + 1, sizeof(*r->done));
    memcpy(r->ranges, ranges, n * sizeof(*ranges));
    r->rk = consumer_new(o, NULL, NULL, errbuf, errlen);
    if (!r->rk) {
        tn_kafka_reader_destroy(r);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n + 1);
    for (size_t i = 0; i < n; i++)
        if (ranges[i].start < ranges[i].end)
            rd_kafka_topic_partition_list_add(l, topic, ranges[i].partition)->offset =
                ranges[i].start;
    rd_kafka_resp_err_t err = l->cnt ? rd_kafka_assign(r->rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errbuf, errlen, "%s: assign: %s", topic, rd_kafka_err2str(err));
        tn_kafka_reader_destroy(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (ranges[i].start >= ranges[i].end) {
            r->done[i] = true;
            r->ndone++;
        }
    return r;
}

void tn_kafka_reader_destroy(tn_kafka_reader_t *r)
{
    if (!r)
        return;
    if (r->rk) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    free(r->topic);
    free(r->ranges);
    free(r->done);
    free(r);
}

bool tn_kafka_reader_done(const tn_kafka_reader_t *r)
{
    return r->ndone == r->n;
}

tn_err_t tn_kafka_reader_poll(tn_kafka_reader_t *r, int64_t timeout_ms, tn_kafka_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    int64_t deadline = tn_clock_mono_ms() + timeout_ms;
    while (!tn_kafka_reader_done(r)) {
        int64_t left = deadline - tn_clock_mono_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, (int)(left > 0 ? left : 0));
        if (!m)
            return TN_AGAIN;
        size_t i = 0;
        tn_kafka_range_t *rg = range_of(r, m->partition, &i);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* The position passed control records too: the range may be over without a last
             * record at end - 1. */
            if (rg && m->offset >= rg->end)
                range_done(r, i);
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            rd_kafka_resp_err_t err = m->err;
            TN_LOGF(TN_LOG_WARN, TN_F({"code", rd_kafka_err2name(err)}), "kafka: reader: %s",
                    rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return err == RD_KAFKA_RESP_ERR__FATAL ? TN_ERR_FATAL : TN_ERR_KAFKA;
        }
        if (!rg || r->done[i] || m->offset >= rg->end) {
            if (rg && m->offset >= rg->end)
                range_done(r, i);
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->offset + 1 >= rg->end)
            range_done(r, i);
        tn_kafka_msg_fill(out, m);
        return TN_OK;
    }
    return TN_AGAIN;
}
