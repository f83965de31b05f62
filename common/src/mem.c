/* Allocation wrappers that abort on out-of-memory, and the assertion handler. */
#include "taina/mem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void oom(size_t n)
{
    /* No allocation here: the logger may need memory we do not have. */
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
    abort();
}

void *tn_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *tn_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *tn_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *tn_xstrdup(const char *s)
{
    if (!s)
        return NULL;
    return tn_xstrndup(s, strlen(s));
}

char *tn_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = tn_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *tn_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    char *p = tn_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* A thread's block: its cleanup first, the caller's bytes after it. */
typedef struct tls_block {
    void (*cleanup)(void *block);
    max_align_t data[];
} tls_block_t;

static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;

static void tls_free(void *p)
{
    tls_block_t *b = p;
    if (b->cleanup)
        b->cleanup(b->data);
    free(b);
}

void *tn_tls_get(tn_tls_t *t)
{
    if (!__atomic_load_n(&t->ready, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&tls_mu);
        if (!t->ready) {
            TN_ASSERT(pthread_key_create(&t->key, tls_free) == 0);
            __atomic_store_n(&t->ready, 1, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&tls_mu);
    }
    tls_block_t *b = pthread_getspecific(t->key);
    if (!b) {
        b = tn_xcalloc(1, sizeof(*b) + t->size);
        b->cleanup = t->cleanup;
        TN_ASSERT(pthread_setspecific(t->key, b) == 0);
    }
    return b->data;
}

void tn_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"assertion failed: %s\",\"file\":\"%s:%d\"}\n",
            expr, file, line);
    abort();
}
