/**
 * @file mem.h
 * @brief Allocation (log and abort on out-of-memory), assertions and small shared macros.
 *
 * The suite runs supervised: an allocation failure is logged and aborts the process
 * (STYLE rule 11). Bounded buffers report TN_ERR_TOO_LARGE instead (see buf.h).
 */
#ifndef TAINA_MEM_H
#define TAINA_MEM_H

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

/** @brief malloc that aborts on failure. Caller owns the result; free with free(). */
void *tn_xmalloc(size_t n);
/** @brief calloc that aborts on failure. Caller owns the result; free with free(). */
void *tn_xcalloc(size_t nmemb, size_t size);
/** @brief realloc that aborts on failure. Caller owns the result; free with free(). */
void *tn_xrealloc(void *p, size_t n);
/** @brief strdup that aborts on failure; NULL in gives NULL out. Caller owns the result. */
char *tn_xstrdup(const char *s);
/** @brief strndup that aborts on failure. Caller owns the result. */
char *tn_xstrndup(const char *s, size_t n);
/** @brief asprintf-like formatting that aborts on failure. Caller owns the result. */
char *tn_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** @brief Log "file:line: assertion failed" and abort. Used by TN_ASSERT. */
void tn_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/** Internal invariants: a failure is a bug in the suite, never in its input. */
#define TN_ASSERT(expr)                                                                            \
    do {                                                                                           \
        if (!(expr))                                                                               \
            tn_assert_fail(#expr, __FILE__, __LINE__);                                             \
    } while (0)

/** Free and set to NULL, so a handed-off or freed pointer cannot be used again. */
#define TN_FREE(p)                                                                                 \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

#define TN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TN_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define TN_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define TN_UNUSED(x)    ((void)(x))

/*
 * True when running under valgrind (its header is optional at build time). Code that generates
 * machine code at run time (PCRE2's JIT) skips it there: valgrind cannot follow it and reports
 * false errors.
 */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TN_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef TN_ON_VALGRIND
#define TN_ON_VALGRIND() 0
#endif

/**
 * Per-thread state of one module: a zeroed block of @p size bytes for each thread that asks,
 * made on its first tn_tls_get() and, when the thread exits, given to @p cleanup (NULL: none)
 * and freed. For scratch memory reused from call to call (a block that holds a buffer grown
 * for one very large input should let it go after that call). Define one per module:
 *
 *     static tn_tls_t scratch = TN_TLS_INIT(sizeof(my_scratch_t), my_scratch_cleanup);
 *     my_scratch_t *sc = tn_tls_get(&scratch);
 */
typedef struct tn_tls {
    int ready; /* the key exists (read and written atomically) */
    pthread_key_t key;
    size_t size;
    void (*cleanup)(void *block);
} tn_tls_t;
#define TN_TLS_INIT(size, cleanup)                                                                 \
    {                                                                                              \
        0, 0, (size), (cleanup)                                                                    \
    }
/** Scratch buffers in a per-thread block larger than this are let go after the call. */
#define TN_TLS_KEEP ((size_t)1 << 20)
/** @brief This thread's block of @p t (see tn_tls_t); never NULL. */
void *tn_tls_get(tn_tls_t *t);

/** A static helper that unit tests may call: declare it in the module's _int.h. */
#define TN_TESTABLE

#endif
