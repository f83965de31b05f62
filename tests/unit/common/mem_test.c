/* Unit tests for common/src/mem.c: per-thread blocks (tn_tls_get). */
#include "tn_test.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "taina/mem.h"

typedef struct block {
    int uses;
    char *held; /* memory the cleanup must free */
} block_t;

static int cleanups; /* blocks cleaned up, by exiting threads */
static pthread_mutex_t cleanups_mu = PTHREAD_MUTEX_INITIALIZER;

static void block_cleanup(void *p)
{
    block_t *b = p;
    free(b->held);
    pthread_mutex_lock(&cleanups_mu);
    cleanups++;
    pthread_mutex_unlock(&cleanups_mu);
}

static tn_tls_t tls = TN_TLS_INIT(sizeof(block_t), block_cleanup);
static tn_tls_t other = TN_TLS_INIT(64, NULL);

/* Uses this thread's block three times; returns its address. */
static void *use(void *arg)
{
    (void)arg;
    block_t *b = tn_tls_get(&tls);
    if (b->uses != 0 || b->held) /* a new block is zeroed */
        return NULL;
    b->held = tn_xstrdup("kept from call to call");
    for (int i = 0; i < 3; i++)
        ((block_t *)tn_tls_get(&tls))->uses++;
    return b->uses == 3 ? b : NULL;
}

static void test_one_block_per_thread(void **state)
{
    (void)state;
    pthread_t t[4];
    void *got[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, use, NULL), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], &got[i]), 0);
        assert_non_null(got[i]);
    }
    /* each thread had its own block, cleaned up (and freed) when it exited */
    assert_int_equal(cleanups, 4);

    /* this thread: the same block on every call, distinct from another tn_tls_t's */
    block_t *mine = tn_tls_get(&tls);
    assert_ptr_equal(tn_tls_get(&tls), mine);
    unsigned char *o = tn_tls_get(&other);
    assert_ptr_not_equal(o, (void *)mine);
    for (int i = 0; i < 64; i++)
        assert_int_equal(o[i], 0);
    assert_int_equal((uintptr_t)o % _Alignof(max_align_t), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_block_per_thread),
    };
    return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
