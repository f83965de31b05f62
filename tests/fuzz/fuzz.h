/* Shared helpers of the fuzz targets (tests/fuzz/<target>.c). Each target defines
 * LLVMFuzzerTestOneInput; it is built twice: with clang and libFuzzer by `make fuzz`
 * (build/fuzz/<target>), and with the normal compiler and replay.c into
 * build/tests/unit/fuzz_<target>, which `make test` runs over the target's corpus and
 * regression inputs. A target aborts (FUZZ_CHECK) when a property it checks fails. */
#ifndef TN_FUZZ_H
#define TN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/app.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed property is a crash: libFuzzer keeps the input, the replay program dies. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a NUL-terminated string (it may hold NULs of its own). Caller frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = tn_xmalloc(size + 1);
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Log lines of the code under test would flood the fuzzer's output: only errors. */
static inline void fuzz_quiet(void)
{
    tn_log_set_level(TN_LOG_FATAL);
}

/* A schema of the repo (path under schemas/), compiled once; aborts when it does not compile. */
static inline tn_schema_t *fuzz_schema(const char *name)
{
    char err[512];
    char *rel = tn_xasprintf("schemas/%s", name);
    char *path = tn_app_data_path(rel);
    tn_schema_t *s = tn_schema_load(path, err, sizeof(err));
    FUZZ_CHECK(s, "%s: %s", path, err);
    free(path);
    free(rel);
    return s;
}

/* Whether @p n bytes are valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static inline int fuzz_utf8_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k >= n)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

#endif
