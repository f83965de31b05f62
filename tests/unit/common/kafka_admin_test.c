/* Tests for common/src/kafka_admin.c against devstack (librdkafka's mock cluster on loopback). */
#include "tn_test.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/devstack.h"
#include "taina/kafka.h"
#include "taina/kafka_admin.h"
#include "taina/log.h"
#include "taina/mem.h"

typedef struct fx {
    tn_devstack_t *ds;
    tn_kafka_opts_t o;
    char err[1024];
} fx_t;

static int setup(void **state)
{
    fx_t *f = tn_xcalloc(1, sizeof(*f));
    f->ds = tn_devstack_new(3, f->err, sizeof(f->err));
    assert_non_null(f->ds);
    f->o.brokers = tn_devstack_bootstrap(f->ds);
    tn_log_set_level(TN_LOG_ERROR);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    tn_devstack_destroy(f->ds);
    free(f);
    return 0;
}

/* 3 partitions, records k0..k(n-1) to partition i % 3; a pause after the first half so the two
 * halves have distinct timestamps. @returns the time between the halves. */
static int64_t fill(fx_t *f, const char *t, int n)
{
    assert_int_equal(tn_devstack_create_topic(f->ds, t, 3, 3, f->err, sizeof(f->err)), TN_OK);
    tn_kafka_producer_t *p = tn_kafka_producer_new(&f->o, NULL, f->err, sizeof(f->err));
    assert_non_null(p);
    int64_t mid = 0;
    for (int i = 0; i < n; i++) {
        if (i == n / 2) {
            assert_int_equal(tn_kafka_producer_flush(p, tn_test_timeout_ms(20000)), TN_OK);
            tn_clock_sleep_ms(50);
            mid = tn_clock_wall_ms();
            tn_clock_sleep_ms(50);
        }
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        tn_kafka_record_t r = {t, i % 3, key, strlen(key), key, strlen(key), NULL, 0};
        assert_int_equal(tn_kafka_produce(p, &r, NULL), TN_OK);
    }
    assert_int_equal(tn_kafka_producer_flush(p, tn_test_timeout_ms(20000)), TN_OK);
    tn_kafka_producer_destroy(p);
    return mid;
}

static void test_metadata_watermarks_and_times(void **state)
{
    fx_t *f = *state;
    int64_t mid = fill(f, "adm.a", 30);
    tn_kafka_admin_t *a = tn_kafka_admin_new(&f->o, NULL, f->err, sizeof(f->err));
    assert_non_null(a);
    int32_t n = 0;
    assert_int_equal(tn_kafka_admin_partition_count(a, "adm.a", &n, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(n, 3);
    /* (An unknown topic is not tested: the mock creates topics on metadata requests.) */
    char **names;
    size_t nn;
    assert_int_equal(tn_kafka_admin_topics(a, &names, &nn, f->err, sizeof(f->err)), TN_OK);
    int found = 0;
    for (size_t i = 0; i < nn; i++)
        found |= !strcmp(names[i], "adm.a");
    assert_true(found);
    tn_kafka_admin_names_free(names, nn);
    int64_t lo, hi, off;
    bool scanned;
    for (int32_t p = 0; p < 3; p++) {
        assert_int_equal(tn_kafka_admin_watermarks(a, "adm.a", p, &lo, &hi, f->err, sizeof(f->err)),
                         TN_OK);
        assert_int_equal(lo, 0);
        assert_int_equal(hi, 10);
        /* before everything: the start; after everything: the end; between the halves: the
         * first record of the second half (devstack answers the end: the scan finds it) */
        assert_int_equal(tn_kafka_admin_offset_for_time(a, "adm.a", p, 0, &off, &scanned, f->err,
                                                        sizeof(f->err)),
                         TN_OK);
        assert_int_equal(off, 0);
        assert_int_equal(tn_kafka_admin_offset_for_time(a, "adm.a", p, tn_clock_wall_ms() + 60000,
                                                        &off, NULL, f->err, sizeof(f->err)),
                         TN_OK);
        assert_int_equal(off, 10);
        assert_int_equal(
            tn_kafka_admin_offset_for_time(a, "adm.a", p, mid, &off, NULL, f->err, sizeof(f->err)),
            TN_OK);
        assert_int_equal(off, 5);
    }
    tn_kafka_admin_destroy(a);
}

static void test_reader_reads_exactly_the_ranges(void **state)
{
    fx_t *f = *state;
    fill(f, "adm.r", 30);
    tn_kafka_range_t r[] = {{0, 2, 7}, {1, 0, 10}, {2, 4, 4}};
    tn_kafka_reader_t *rd = tn_kafka_reader_new(&f->o, "adm.r", r, 3, f->err, sizeof(f->err));
    assert_non_null(rd);
    int got[3] = {0};
    int64_t last[3] = {-1, -1, -1};
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(20000);
    while (!tn_kafka_reader_done(rd) && tn_clock_mono_ms() < deadline) {
        tn_kafka_msg_t m;
        if (tn_kafka_reader_poll(rd, 100, &m) != TN_OK)
            continue;
        assert_true(m.partition >= 0 && m.partition < 2);
        assert_true(m.offset >= r[m.partition].start && m.offset < r[m.partition].end);
        assert_true(m.offset > last[m.partition]);
        last[m.partition] = m.offset;
        got[m.partition]++;
        tn_kafka_msg_release(&m);
    }
    assert_true(tn_kafka_reader_done(rd));
    assert_int_equal(got[0], 5);
    assert_int_equal(got[1], 10);
    assert_int_equal(got[2], 0);
    tn_kafka_reader_destroy(rd);
}

static void test_committed_and_alter_without_members(void **state)
{
    fx_t *f = *state;
    fill(f, "adm.c", 30);
    tn_kafka_admin_t *a = tn_kafka_admin_new(&f->o, "adm-group", f->err, sizeof(f->err));
    assert_non_null(a);
    int64_t off[3];
    assert_int_equal(tn_kafka_admin_committed(a, "adm.c", 3, off, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(off[0], -1);
    tn_kafka_group_t g;
    assert_int_equal(tn_kafka_admin_describe_group(a, &g, f->err, sizeof(f->err)), TN_DECLINED);
    int64_t want[3] = {3, -1, 10};
    assert_int_equal(tn_kafka_admin_alter_committed(a, "adm.c", 3, want, tn_test_timeout_ms(30000),
                                                    f->err, sizeof(f->err)),
                     TN_OK);
    assert_int_equal(tn_kafka_admin_committed(a, "adm.c", 3, off, f->err, sizeof(f->err)), TN_OK);
    assert_int_equal(off[0], 3);
    assert_int_equal(off[1], -1); /* left as it was */
    assert_int_equal(off[2], 10);
    tn_kafka_admin_destroy(a);
}

typedef struct busy {
    fx_t *f;
    tn_err_t rc;
    char err[512];
    atomic_bool done;
} busy_t;

static void *try_alter(void *arg)
{
    busy_t *b = arg;
    tn_kafka_admin_t *a = tn_kafka_admin_new(&b->f->o, "adm-busy", b->err, sizeof(b->err));
    int64_t want[3] = {0, 0, 0};
    b->rc = a ? tn_kafka_admin_alter_committed(a, "adm.m", 3, want, tn_test_timeout_ms(20000),
                                               b->err, sizeof(b->err))
              : TN_ERR;
    tn_kafka_admin_destroy(a);
    atomic_store(&b->done, true);
    return NULL;
}

static void test_alter_refused_with_an_active_member(void **state)
{
    fx_t *f = *state;
    fill(f, "adm.m", 30);
    static tn_cfg_prop_t props[] = {{"session.timeout.ms", "6000"},
                                    {"max.poll.interval.ms", "7000"}};
    tn_kafka_opts_t o = f->o;
    o.props = props;
    o.nprops = 2;
    const char *topics[] = {"adm.m", NULL};
    tn_kafka_consumer_t *c = tn_kafka_consumer_new(&o, "adm-busy", topics, f->err, sizeof(f->err));
    assert_non_null(c);
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(20000);
    while (tn_kafka_consumer_assigned(c) < 3 && tn_clock_mono_ms() < deadline) {
        tn_kafka_msg_t m;
        if (tn_kafka_consumer_poll(c, 100, &m, NULL) == TN_OK)
            tn_kafka_msg_release(&m);
    }
    assert_int_equal(tn_kafka_consumer_assigned(c), 3);
    /* The member keeps polling here (a live service) while another thread tries the reset. */
    busy_t b = {.f = f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, try_alter, &b), 0);
    while (!atomic_load(&b.done)) {
        tn_kafka_msg_t m;
        if (tn_kafka_consumer_poll(c, 50, &m, NULL) == TN_OK)
            tn_kafka_msg_release(&m);
    }
    pthread_join(th, NULL);
    assert_int_equal(b.rc, TN_ERR_EXISTS);
    assert_non_null(strstr(b.err, "active members"));
    tn_kafka_consumer_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata_watermarks_and_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_reads_exactly_the_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committed_and_alter_without_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alter_refused_with_an_active_member, setup, teardown),
    };
    return cmocka_run_group_tests_name("kafka_admin", tests, NULL, NULL);
}
