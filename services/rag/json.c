/* rag: JSON written straight into a buffer, for the bodies and events of every request: the
 * same bytes json_dumps writes of the same jansson values, without building them. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rag.h"
#include "taina/mem.h"

void rag_jw_init(rag_jw_t *w, size_t max)
{
    tn_buf_init(&w->b, max);
    w->rc = TN_OK;
}

void rag_jw_raw(rag_jw_t *w, const char *s)
{
    if (w->rc == TN_OK)
        w->rc = tn_buf_adds(&w->b, s);
}

void rag_jw_str(rag_jw_t *w, const char *s, size_t len)
{
    if (w->rc == TN_OK)
        w->rc = tn_buf_add_json_strn(&w->b, s, len);
}

void rag_jw_kv(rag_jw_t *w, const char *key, const char *s)
{
    rag_jw_raw(w, key);
    rag_jw_str(w, s, strlen(s));
}

void rag_jw_int(rag_jw_t *w, long long v)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", v);
    rag_jw_raw(w, s);
}

void rag_jw_real(rag_jw_t *w, double v)
{
    char s[48];
    if (!isfinite(v)) {
        rag_jw_raw(w, "null");
        return;
    }
    size_t n = (size_t)snprintf(s, sizeof(s), "%.17g", v);
    if (strspn(s, "0123456789-") == n) {
        memcpy(s + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(s, 'e');
    if (e) {
        char *from = e + 2, *to = e + 1; /* past the sign, or onto a "+" */
        if (*to == '-')
            to++;
        while (*from == '0')
            from++;
        memmove(to, from, (size_t)(s + n + 1 - from));
    }
    rag_jw_raw(w, s);
}

void rag_jw_hit_head(rag_jw_t *w, const rag_hit_t *h, size_t i)
{
    rag_jw_kv(w, i ? ",{\"ticket_id\":" : "{\"ticket_id\":", h->ticket_id);
    rag_jw_raw(w, ",\"chunk_index\":");
    rag_jw_int(w, h->chunk_index);
    rag_jw_raw(w, ",\"score\":");
    rag_jw_real(w, (double)h->score);
}

char *rag_jw_detach(rag_jw_t *w, size_t *len)
{
    TN_ASSERT(w->rc == TN_OK); /* callers size max so that it cannot be reached */
    char *s = tn_buf_detach(&w->b, len);
    tn_buf_cleanup(&w->b);
    return s;
}
