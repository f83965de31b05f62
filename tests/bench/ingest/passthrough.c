/*
 * The ceiling of the ingest pipeline: a transactional consume-produce passthrough of the same
 * bytes, with the Kafka settings of taina-ingest (common/include/taina/kafka.h defaults, the
 * same statistics period and a metrics registry, its 2 MB consumer read-ahead and fetcher
 * wake-ups) and its batching (500 records, 100 ms linger).
 *   bench-ingest BOOTSTRAP N [OUT_TOPIC] [GROUP] [BATCH] [LINGER_MS]
 * Consumes tickets.raw in a consumer group; per batch: begin, produce each record (key and
 * value unchanged) to OUT_TOPIC (default tickets.enriched), commit with the consumer's
 * positions. Stops once N records are committed and prints
 *   "passthrough_records N seconds S records_per_s R vmhwm_kb K"
 * timed from the first consumed record to the commit that covers the N-th.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "taina/clock.h"
#include "taina/kafka.h"
#include "taina/log.h"
#include "taina/metrics.h"

/* Peak resident set of this process (VmHWM), in kB; -1 when unknown. */
/* User + system CPU seconds of the process, all threads. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long vmhwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static int produce(tn_kafka_producer_t *p, const char *topic, const tn_kafka_msg_t *m)
{
    tn_kafka_record_t rec = {topic, -1, m->key, m->key_len, m->value, m->value_len, NULL, 0};
    tn_kafka_error_t e;
    tn_err_t rc;
    while ((rc = tn_kafka_produce(p, &rec, &e)) == TN_AGAIN)
        tn_clock_sleep_ms(5); /* the local queue is full: the poll thread drains it */
    if (rc != TN_OK) {
        fprintf(stderr, "bench-ingest: produce: %s\n", e.msg);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench-ingest BOOTSTRAP N [OUT_TOPIC] [GROUP] [BATCH] "
                        "[LINGER_MS]\n");
        return 2;
    }
    const char *bootstrap = argv[1];
    long want = strtol(argv[2], NULL, 10);
    const char *out = argc > 3 ? argv[3] : "tickets.enriched";
    const char *group = argc > 4 ? argv[4] : "bench-passthrough";
    long batch_max = argc > 5 ? strtol(argv[5], NULL, 10) : 500;
    int64_t linger_ms = argc > 6 ? strtol(argv[6], NULL, 10) : 100;
    tn_log_init("bench-ingest", TN_LOG_WARN);

    tn_metrics_t *reg = tn_metrics_new();
    tn_kafka_opts_t o = {0};
    o.brokers = bootstrap;
    o.metrics = reg;
    o.stats_interval_ms = 5000; /* taina's kafka_stats_interval default */
    o.client_id = "bench-passthrough";
    /* librdkafka < 2.4: the transactional main thread spins at nice 19 rather than nap as
     * taina-ingest's does (kafka.c): this loop waits for each commit with a core to spare, and
     * the naps' late timers made it slower (173,000 against 192,500 records/s at 1 KB, 4
     * interleaved runs): the ceiling at its best */
    o.spin_nice = 1;
    char err[512];
    tn_kafka_error_t e;
    tn_kafka_producer_t *p = tn_kafka_producer_new(&o, "bench-passthrough", err, sizeof(err));
    if (!p || tn_kafka_txn_init(p, 30000, &e) != TN_OK) {
        fprintf(stderr, "bench-ingest: producer: %s\n", p ? e.msg : err);
        tn_kafka_producer_destroy(p);
        tn_metrics_destroy(reg);
        return 1;
    }
    const char *topics[] = {"tickets.raw", NULL};
    /* taina-ingest's consumer: fetchers woken as records are taken; 2 MB of read-ahead */
    tn_cfg_prop_t readahead[] = {{"queued.max.messages.kbytes", "2048"}};
    tn_kafka_opts_t co = o;
    co.defaults = readahead;
    co.ndefaults = 1;
    tn_kafka_consumer_t *c = tn_kafka_consumer_new(&co, group, topics, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bench-ingest: consumer: %s\n", err);
        tn_kafka_producer_destroy(p);
        tn_metrics_destroy(reg);
        return 1;
    }

    long done = 0, done0 = 0;
    double t0 = 0, t1 = 0, cpu0 = 0, give_up = tn_clock_mono_s() + 120;
    int rc = 0;
    while (done < want && !rc) {
        long in = 0;
        int in_txn = 0;
        int64_t deadline = 0;
        while (in < batch_max) {
            int64_t wait = in_txn ? deadline - tn_clock_mono_ms() : 200;
            if (in_txn && wait <= 0)
                break;
            tn_kafka_msg_t m;
            if (wait > 0)
                wait = tn_kafka_consumer_refill(c, wait);
            tn_err_t prc = tn_kafka_consumer_poll(c, wait, &m, &e);
            if (prc == TN_AGAIN) {
                if (!in_txn && tn_clock_mono_s() > give_up) {
                    fprintf(stderr, "bench-ingest: no records for too long (%ld of %ld)\n", done,
                            want);
                    rc = 1;
                    break;
                }
                continue;
            }
            if (prc != TN_OK) {
                if (e.fatal) {
                    rc = 1;
                    break;
                }
                continue;
            }
            tn_kafka_consumer_refill(c, 0); /* as taina-ingest: fetchers woken as records go */
            if (!in_txn) {
                if (tn_kafka_txn_begin(p, &e) != TN_OK) {
                    tn_kafka_msg_release(&m);
                    fprintf(stderr, "bench-ingest: begin: %s\n", e.msg);
                    rc = 1;
                    break;
                }
                in_txn = 1;
                deadline = tn_clock_mono_ms() + linger_ms;
            }
            if (produce(p, out, &m) != 0)
                rc = 1;
            tn_kafka_msg_release(&m);
            in++;
            if (rc)
                break;
        }
        if (!in_txn)
            continue;
        if (rc || tn_kafka_txn_commit(p, c, 30000, &e) != TN_OK) {
            fprintf(stderr, "bench-ingest: transaction failed: %s\n", rc ? "produce" : e.msg);
            rc = 1;
            break;
        }
        done += in;
        t1 = tn_clock_mono_s();
        if (t0 == 0) {
            t0 = t1;
            done0 = done;
            cpu0 = cpu_s();
        }
    }
    if (!rc && done > done0)
        printf("passthrough_records %ld seconds %.3f records_per_s %.0f vmhwm_kb %ld "
               "cpu_us_per_record %.0f\n",
               done - done0, t1 - t0, (double)(done - done0) / (t1 - t0), vmhwm_kb(),
               (cpu_s() - cpu0) * 1e6 / (double)(done - done0));
    else if (!rc) {
        fprintf(stderr, "bench-ingest: N=%ld fits in one transaction: nothing to time\n", want);
        rc = 1;
    }
    tn_kafka_consumer_close(c);
    tn_kafka_consumer_destroy(c);
    tn_kafka_producer_destroy(p);
    tn_metrics_destroy(reg);
    return rc;
}
