/* Token buckets per client, each with its own lock (requests of different keys never wait on
 * each other). */
#include "taina/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "taina/mem.h"

typedef struct bucket {
    pthread_mutex_t mu;
    double tokens;
    int64_t at_ms; /* when tokens was computed; 0 = never (full) */
} bucket_t;

struct tn_ratelimit {
    double rate, burst; /* tokens per ms, most tokens */
    size_t n;
    bucket_t *b;
};

tn_ratelimit_t *tn_ratelimit_new(size_t n, double rate, double burst)
{
    if (!(rate > 0) || !(burst > 0) || n == 0)
        return NULL;
    tn_ratelimit_t *rl = tn_xcalloc(1, sizeof(*rl));
    rl->rate = rate / 1000.0;
    rl->burst = burst < 1 ? 1 : burst;
    rl->n = n;
    rl->b = tn_xcalloc(n, sizeof(*rl->b));
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_init(&rl->b[i].mu, NULL);
        rl->b[i].tokens = rl->burst;
    }
    return rl;
}

void tn_ratelimit_destroy(tn_ratelimit_t *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < rl->n; i++)
        pthread_mutex_destroy(&rl->b[i].mu);
    free(rl->b);
    free(rl);
}

bool tn_ratelimit_take(tn_ratelimit_t *rl, size_t i, int64_t now_ms, int64_t *retry_ms)
{
    if (!rl || i >= rl->n)
        return true;
    bucket_t *b = &rl->b[i];
    pthread_mutex_lock(&b->mu);
    if (b->at_ms && now_ms > b->at_ms) {
        b->tokens += (double)(now_ms - b->at_ms) * rl->rate;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
    }
    if (!b->at_ms || now_ms > b->at_ms)
        b->at_ms = now_ms;
    bool ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    else if (retry_ms) {
        int64_t ms = (int64_t)ceil((1.0 - b->tokens) / rl->rate);
        *retry_ms = ms < 1 ? 1 : ms;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}
