/* rag: the source filter: TAINA_RAG_SOURCES split at start, and applied to every request (a
 * platform keeps its voice assistant answering from published documents only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag.h"
#include "taina/mem.h"

enum { SOURCE_MAX = 64 };

tn_err_t rag_sources_parse(const char *csv, char **buf, const char **out, size_t *n, char *err,
                           size_t errlen)
{
    tn_err_t rc = TN_ERR_CONFIG;
    char *b = tn_xstrdup(csv ? csv : "");
    size_t m = 0;
    *n = 0;
    *buf = NULL;
    if (!b[strspn(b, " \t")]) { /* empty: every source */
        rc = TN_OK;
        goto out;
    }
    for (char *p = b;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        p += strspn(p, " \t");
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        if (!len || len > SOURCE_MAX) {
            snprintf(err, errlen,
                     "TAINA_RAG_SOURCES: each source must have 1 to %d bytes (got \"%s\")",
                     SOURCE_MAX, csv);
            goto out;
        }
        if (m == TN_VEC_MAX_SOURCES) {
            snprintf(err, errlen, "TAINA_RAG_SOURCES: at most %d sources (got \"%s\")",
                     TN_VEC_MAX_SOURCES, csv);
            goto out;
        }
        out[m++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    *n = m;
    *buf = b;
    b = NULL; /* the caller's now */
    rc = TN_OK;
out:
    free(b);
    return rc;
}

int rag_sources_apply(const char *const *allowed, size_t nallowed, rag_filter_t *f, char *msg,
                      size_t len)
{
    if (!nallowed)
        return 0;
    if (!f->nsources) {
        for (size_t i = 0; i < nallowed; i++)
            f->sources[i] = allowed[i];
        f->nsources = nallowed;
        return 0;
    }
    for (size_t i = 0; i < f->nsources; i++) {
        size_t j = 0;
        while (j < nallowed && strcmp(f->sources[i], allowed[j]) != 0)
            j++;
        if (j == nallowed) {
            char list[TN_VEC_MAX_SOURCES * (SOURCE_MAX + 2)] = "";
            for (j = 0; j < nallowed; j++) {
                size_t at = strlen(list);
                snprintf(list + at, sizeof(list) - at, "%s%s", j ? ", " : "", allowed[j]);
            }
            snprintf(msg, len,
                     "filters.source \"%.64s\" is not one of the sources this service answers "
                     "from (%s)",
                     f->sources[i], list);
            return 422;
        }
    }
    return 0;
}
