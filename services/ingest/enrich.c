/* ingest: one tickets.raw value -> one tickets.enriched value. Pure: no I/O, no globals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/lang.h"
#include "taina/mem.h"
#include "taina/text.h"

static json_t *reject(ingest_reject_t *why, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json_t *reject(ingest_reject_t *why, const char *reason, const char *fmt, ...)
{
    va_list ap;
    why->reason = reason;
    va_start(ap, fmt);
    vsnprintf(why->detail, sizeof(why->detail), fmt, ap);
    va_end(ap);
    return NULL;
}

static json_t *copy_field(json_t *out, const json_t *in, const char *name)
{
    json_t *v = json_object_get(in, name);
    if (v)
        json_object_set(out, name, v);
    return v;
}

/* Redact @p text into a new string; NULL with @p err on a match-limit failure. */
static char *redact(const ingest_rules_t *r, const char *text, size_t len, size_t *counts,
                    size_t *out_len, char *err, size_t errlen)
{
    tn_buf_t b;
    tn_buf_init(&b, len * 2 + 4096);
    if (tn_pii_redact(r->pii, text, len, &b, counts, err, errlen) != TN_OK) {
        tn_buf_cleanup(&b);
        return NULL;
    }
    tn_buf_add(&b, "", 1);
    char *s = tn_buf_detach(&b, out_len);
    *out_len -= 1;
    return s;
}

static json_t *chunks_json(const char *text, size_t len, const ingest_rules_t *r)
{
    json_t *arr = json_array();
    tn_text_chunk_t *ch = NULL;
    size_t n = 0;
    if (tn_text_chunk(text, len, r->chunk_words, r->chunk_overlap, &ch, &n) != TN_OK)
        return arr;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object();
        json_object_set_new(c, "index", json_integer((json_int_t)ch[i].index));
        json_object_set_new(
            c, "text", json_stringn(text + ch[i].byte_start, ch[i].byte_end - ch[i].byte_start));
        json_object_set_new(c, "start", json_integer((json_int_t)ch[i].start));
        json_object_set_new(c, "end", json_integer((json_int_t)ch[i].end));
        json_object_set_new(c, "words", json_integer((json_int_t)ch[i].words));
        json_array_append_new(arr, c);
    }
    free(ch);
    return arr;
}

static void set_now(json_t *out, const char *name)
{
    char ts[40];
    json_object_set_new(out, name,
                        json_string(tn_clock_rfc3339(ts, sizeof(ts), tn_clock_wall_ms())));
}

/* The raw value parsed, with invalid UTF-8 repaired (and counted) if that is what kept it from
 * parsing. */
static json_t *parse(const void *value, size_t len, size_t *invalid, ingest_reject_t *why)
{
    json_error_t jerr;
    json_t *doc = json_loadb(value, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (doc || json_error_code(&jerr) != json_error_invalid_utf8)
        return doc ? doc
                   : reject(why, "json", "line %d column %d: %s", jerr.line, jerr.column,
                            jerr.text);
    size_t n;
    char *fixed = tn_text_utf8_repair(value, len, &n, invalid);
    doc = json_loadb(fixed, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    free(fixed);
    return doc ? doc
               : reject(why, "json", "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
}

json_t *ingest_enrich(const ingest_rules_t *r, const void *value, size_t len, size_t max_bytes,
                      size_t *pii_counts, size_t *invalid_utf8, ingest_reject_t *why)
{
    size_t bad = 0;
    if (len > max_bytes)
        return reject(why, "too_large", "record of %zu bytes, more than %zu", len, max_bytes);
    json_t *raw = parse(value, len, &bad, why);
    if (!raw)
        return NULL;
    json_t *ver = json_object_get(raw, "schema_version");
    if (json_is_integer(ver) && json_integer_value(ver) != 1) {
        json_decref(raw);
        return reject(why, "unknown_version", "schema_version %lld is not known (1 is)",
                      (long long)json_integer_value(ver));
    }
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(r->raw, raw, &se, 1, &nse) != TN_OK) {
        char line[900];
        json_decref(raw);
        return reject(why, "schema", "%s",
                      nse ? tn_schema_error_format(&se, line, sizeof(line)) : "invalid");
    }

    json_t *out = json_object();
    json_object_set_new(out, "schema_version", json_integer(1));
    copy_field(out, raw, "ticket_id");
    copy_field(out, raw, "tenant_id");
    copy_field(out, raw, "created_at");
    copy_field(out, raw, "received_at");
    if (json_is_true(json_object_get(raw, "deleted"))) {
        json_object_set_new(out, "deleted", json_true());
        set_now(out, "enriched_at");
        json_decref(raw);
        return out;
    }
    copy_field(out, raw, "source");
    copy_field(out, raw, "metadata");

    /* normalize */
    json_t *jt = json_object_get(raw, "title"), *jb = json_object_get(raw, "body");
    int html = !strcmp(json_string_value(json_object_get(raw, "content_type")), "text/html");
    tn_text_norm_t nt, nb;
    char *title = tn_text_normalize(json_string_value(jt), json_string_length(jt), 0, &nt);
    char *body = tn_text_normalize(json_string_value(jb), json_string_length(jb),
                                   html ? TN_TEXT_HTML : 0, &nb);
    bad += nt.invalid_utf8 + nb.invalid_utf8;
    char hash[65];
    tn_text_sha256_hex(body, nb.len, hash);

    /* language and category on the whole text, before redaction */
    /* "title. body" (normalized text holds no NUL) */
    size_t all_len = nt.len + 2 + nb.len;
    char *all = tn_xmalloc(all_len + 1);
    memcpy(all, title, nt.len);
    memcpy(all + nt.len, ". ", 2);
    memcpy(all + nt.len + 2, body, nb.len + 1);
    const char *hint = json_string_value(json_object_get(raw, "lang"));
    tn_lang_t lang = tn_lang_detect(all, all_len, hint);
    tn_category_result_t cat = tn_category_classify(r->category, all, all_len, lang.code);
    free(all);

    /* redact */
    char err[256];
    size_t tlen, blen;
    char *rtitle = redact(r, title, nt.len, pii_counts, &tlen, err, sizeof(err));
    char *rbody = rtitle ? redact(r, body, nb.len, pii_counts, &blen, err, sizeof(err)) : NULL;
    free(title);
    free(body);
    if (!rbody) {
        free(rtitle);
        json_decref(out);
        json_decref(raw);
        return reject(why, "enrich", "PII redaction failed: %s", err);
    }
    if (tlen == 0) { /* the title was only whitespace or controls */
        free(rtitle);
        rtitle = tn_xstrdup("(untitled)");
        tlen = strlen(rtitle);
    }
    /* an empty body: the title is the text to index */
    const char *text = blen ? rbody : rtitle;
    size_t text_len = blen ? blen : tlen;

    json_object_set_new(out, "title", json_stringn(rtitle, tlen));
    json_object_set_new(out, "text", json_stringn(text, text_len));
    json_object_set_new(out, "lang", json_string(lang.code));
    json_object_set_new(out, "lang_confidence", json_real(lang.confidence));
    json_object_set_new(out, "category", json_string(cat.category));
    json_object_set_new(out, "priority", json_string(cat.priority));
    json_t *pii = json_object();
    for (size_t i = 0; pii_counts && i < tn_pii_ntypes(r->pii); i++)
        if (pii_counts[i])
            json_object_set_new(pii, tn_pii_type_name(r->pii, i),
                                json_integer((json_int_t)pii_counts[i]));
    json_object_set_new(out, "pii", pii);
    json_object_set_new(out, "invalid_utf8", json_integer((json_int_t)bad));
    json_object_set_new(out, "content_hash", json_string(hash));
    set_now(out, "enriched_at");
    json_object_set_new(out, "chunks", chunks_json(text, text_len, r));
    free(rtitle);
    free(rbody);
    json_decref(raw);
    if (invalid_utf8)
        *invalid_utf8 = bad;

    if (tn_schema_validate(r->enriched, out, &se, 1, &nse) != TN_OK) {
        char line[900];
        json_decref(out);
        return reject(why, "enrich", "output does not match tickets.enriched: %s",
                      nse ? tn_schema_error_format(&se, line, sizeof(line)) : "invalid");
    }
    return out;
}
