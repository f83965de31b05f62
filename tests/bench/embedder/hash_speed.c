/*
 * Chunks per second of the hash embedder (tn_embed_hash, one thread, one core).
 *   bench-embedder CORPUS [CHUNKS] [SECONDS] [DIMS]
 * CORPUS: one chunk of text per line (corpus.py: distinct 200-word chunks). Embeds the first
 * CHUNKS (default 4000) lines once to warm up, then whole passes over them until SECONDS
 * (default 2) of wall time are up, and prints
 *   "c_chunks_per_s_cpu R c_chunks_per_s_wall W chunks K passes P avg_bytes B cpu_s C wall_s S"
 * where R counts the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), W the wall time. run.sh runs
 * it next to its Python anchor (hash_anchor.py) on the same corpus.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taina/embed.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Up to @p max lines of @p path (newline dropped); @returns how many, 0 on error. */
static size_t read_lines(const char *path, size_t max, char ***lines, size_t **lens)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 0;
    }
    *lines = calloc(max, sizeof(**lines));
    *lens = calloc(max, sizeof(**lens));
    if (!*lines || !*lens) {
        fclose(f);
        return 0;
    }
    size_t n = 0, cap = 0;
    char *line = NULL;
    ssize_t got;
    while (n < max && (got = getline(&line, &cap, f)) > 0) {
        size_t l = (size_t)got;
        if (line[l - 1] == '\n')
            l--;
        if (l == 0)
            continue;
        (*lines)[n] = malloc(l + 1);
        if (!(*lines)[n])
            break;
        memcpy((*lines)[n], line, l);
        (*lines)[n][l] = '\0';
        (*lens)[n++] = l;
    }
    free(line);
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-embedder CORPUS [CHUNKS] [SECONDS] [DIMS]\n");
        return 2;
    }
    size_t want = argc > 2 ? strtoul(argv[2], NULL, 10) : 4000;
    double secs = argc > 3 ? strtod(argv[3], NULL) : 2.0;
    size_t dims = argc > 4 ? strtoul(argv[4], NULL, 10) : 384;
    if (want == 0 || dims == 0 || !(secs > 0)) {
        fprintf(stderr, "bench-embedder: CHUNKS, SECONDS and DIMS must be positive\n");
        return 2;
    }
    char **lines = NULL;
    size_t *lens = NULL;
    size_t n = read_lines(argv[1], want, &lines, &lens);
    float *v = malloc(dims * sizeof(float));
    if (n == 0 || !v) {
        fprintf(stderr, "bench-embedder: no chunks in %s\n", argv[1]);
        return 2;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += lens[i];

    /* Warm up (and check): every vector has unit length. */
    for (size_t i = 0; i < n; i++) {
        tn_embed_hash(lines[i], lens[i], dims, v);
        double ss = 0;
        for (size_t k = 0; k < dims; k++)
            ss += (double)v[k] * v[k];
        if (fabs(ss - 1.0) > 1e-3) {
            fprintf(stderr, "bench-embedder: chunk %zu: |v|^2 = %f, not 1\n", i, ss);
            return 3;
        }
    }

    double sink = 0;
    size_t passes = 0;
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w1;
    do {
        for (size_t i = 0; i < n; i++) {
            tn_embed_hash(lines[i], lens[i], dims, v);
            sink += v[i % dims];
        }
        passes++;
        w1 = clock_s(CLOCK_MONOTONIC);
    } while (w1 - w0 < secs);
    double c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    double done = (double)(n * passes);
    printf("c_chunks_per_s_cpu %.0f c_chunks_per_s_wall %.0f chunks %zu passes %zu avg_bytes %.0f "
           "cpu_s %.3f wall_s %.3f\n",
           done / (c1 - c0), done / (w1 - w0), n, passes, (double)bytes / (double)n, c1 - c0,
           w1 - w0);
    fprintf(stderr, "bench-embedder: checksum %g\n", sink);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(lens);
    free(v);
    return 0;
}
