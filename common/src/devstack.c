/* devstack: librdkafka's mock cluster with the suite's topics (part of the Kafka wrapper). */
#include "taina/devstack.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <string.h>

#include "taina/log.h"
#include "taina/mem.h"

struct tn_devstack {
    rd_kafka_t *rk; /* owns the mock cluster's threads */
    rd_kafka_mock_cluster_t *mcluster;
    char *bootstrap;
    int brokers;
};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0..3 errors, 4 warning, 5..6 info, 7 debug */
    tn_log_level_t l = level <= 3 ? TN_LOG_ERROR : level == 4 ? TN_LOG_WARN : TN_LOG_DEBUG;
    TN_LOGF(l, TN_F({"facility", fac}), "devstack: %s", buf);
}

tn_devstack_t *tn_devstack_new(int brokers, char *errbuf, size_t errlen)
{
    tn_devstack_t *ds = NULL;
    char rkerr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (rd_kafka_conf_set(conf, "client.id", "taina-devstack", rkerr, sizeof(rkerr)) !=
        RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "devstack: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!rk) {
        snprintf(errbuf, errlen, "devstack: cannot create the Kafka handle: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        snprintf(errbuf, errlen, "devstack: cannot start a mock cluster of %d brokers", brokers);
        rd_kafka_destroy(rk);
        return NULL;
    }
    ds = tn_xcalloc(1, sizeof(*ds));
    ds->rk = rk;
    ds->mcluster = mc;
    ds->brokers = brokers;
    ds->bootstrap = tn_xstrdup(rd_kafka_mock_cluster_bootstraps(mc));
    return ds;
}

void tn_devstack_destroy(tn_devstack_t *ds)
{
    if (!ds)
        return;
    rd_kafka_mock_cluster_destroy(ds->mcluster);
    rd_kafka_destroy(ds->rk);
    free(ds->bootstrap);
    free(ds);
}

const char *tn_devstack_bootstrap(const tn_devstack_t *ds)
{
    return ds->bootstrap;
}

tn_err_t tn_devstack_create_topic(tn_devstack_t *ds, const char *name, int partitions,
                                  int replication, char *errbuf, size_t errlen)
{
    if (replication > ds->brokers)
        replication = ds->brokers;
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(ds->mcluster, name, partitions,
                                                         replication < 1 ? 1 : replication);
    if (err) {
        snprintf(errbuf, errlen, "devstack: cannot create topic %s: %s", name,
                 rd_kafka_err2str(err));
        return TN_ERR_KAFKA;
    }
    return TN_OK;
}

tn_err_t tn_devstack_create_topics_file(tn_devstack_t *ds, const char *path, size_t *ntopics,
                                        char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_ERR_PARSE;
    json_error_t jerr;
    size_t created = 0;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(errbuf, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return jerr.line <= 0 ? TN_ERR_IO : TN_ERR_PARSE;
    }
    json_t *topics = json_object_get(root, "topics");
    if (!json_is_array(topics)) {
        snprintf(errbuf, errlen, "%s: expected an object with a \"topics\" array", path);
        goto out;
    }
    size_t i;
    json_t *t;
    json_array_foreach(topics, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *parts = json_object_get(t, "partitions");
        json_t *repl = json_object_get(t, "replication_factor");
        if (!name || !*name || !json_is_integer(parts) || json_integer_value(parts) < 1 ||
            json_integer_value(parts) > 1000) {
            snprintf(errbuf, errlen,
                     "%s: topic #%zu needs a \"name\" and \"partitions\" between 1 and 1000", path,
                     i);
            goto out;
        }
        rc = tn_devstack_create_topic(ds, name, (int)json_integer_value(parts),
                                      json_is_integer(repl) ? (int)json_integer_value(repl) : 1,
                                      errbuf, errlen);
        if (rc != TN_OK)
            goto out;
        rc = TN_ERR_PARSE;
        created++;
    }
    rc = TN_OK;
out:
    if (ntopics)
        *ntopics = created;
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Faults */

static const struct {
    const char *name;
    int16_t key;
} apis[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"InitProducerId", 22},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

static int error_code(const char *name, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++) {
        if (descs[i].name && strcmp(descs[i].name, name) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    return -1;
}

tn_err_t tn_devstack_push_errors(tn_devstack_t *ds, const char *api, size_t count,
                                 const char *error)
{
    rd_kafka_resp_err_t err;
    if (error_code(error, &err) != 0)
        return TN_ERR_INVALID;
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
        if (strcmp(apis[i].name, api) == 0) {
            rd_kafka_resp_err_t *errs = tn_xcalloc(count ? count : 1, sizeof(*errs));
            for (size_t j = 0; j < count; j++)
                errs[j] = err;
            rd_kafka_mock_push_request_errors_array(ds->mcluster, apis[i].key, count, errs);
            free(errs);
            return TN_OK;
        }
    }
    return TN_ERR_INVALID;
}

static tn_err_t broker_ok(const tn_devstack_t *ds, int id)
{
    return id >= 1 && id <= ds->brokers ? TN_OK : TN_ERR_INVALID;
}

tn_err_t tn_devstack_broker_set_up(tn_devstack_t *ds, int id, int up)
{
    if (broker_ok(ds, id) != TN_OK)
        return TN_ERR_INVALID;
    rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(ds->mcluster, id)
                                 : rd_kafka_mock_broker_set_down(ds->mcluster, id);
    return err ? TN_ERR_KAFKA : TN_OK;
}

tn_err_t tn_devstack_broker_set_rtt(tn_devstack_t *ds, int id, int rtt_ms)
{
    if (broker_ok(ds, id) != TN_OK || rtt_ms < 0)
        return TN_ERR_INVALID;
    return rd_kafka_mock_broker_set_rtt(ds->mcluster, id, rtt_ms) ? TN_ERR_KAFKA : TN_OK;
}

tn_err_t tn_devstack_set_leader(tn_devstack_t *ds, const char *topic, int partition, int id)
{
    if (broker_ok(ds, id) != TN_OK)
        return TN_ERR_INVALID;
    return rd_kafka_mock_partition_set_leader(ds->mcluster, topic, partition, id) ? TN_ERR_KAFKA
                                                                                  : TN_OK;
}
