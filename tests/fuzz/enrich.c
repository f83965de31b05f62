/* Fuzz target: the enrichment of ingest (ingest_enrich) with the built-in rules. Input that
 * starts with 0xFF is a ticket title and body (invalid UTF-8 welcome) wrapped in a valid
 * tickets.raw record, so the normalizer, detector, classifier, redactor and chunker all run;
 * anything else is taken as the raw record's bytes. Output must be JSON valid against
 * tickets.enriched, with chunks inside the text; a refusal must name its reason; the fast parser
 * of enrich.c must build jansson's tree or none. */
#include "../../services/ingest/ingest.h"
#include "fuzz.h"

static ingest_rules_t rules;

static void init(void)
{
    ingest_cfg_t cfg = {.schemas_dir = "schemas",
                        .pii_rules_file = "",
                        .category_rules_file = "",
                        .chunk_words = 24,
                        .chunk_overlap = 5};
    fuzz_quiet();
    FUZZ_CHECK(ingest_rules_load(&rules, &cfg) == TN_OK, "ingest rules");
}

/* 0xFF, flags, then "title\nbody": a raw record around them (strings unchecked: may be invalid
 * UTF-8, as a producer other than ours may write). Caller frees. */
static char *wrap(const uint8_t *data, size_t size, size_t *len)
{
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *title = p, *body = nl ? nl + 1 : p;
    size_t tlen = nl ? (size_t)(nl - p) : (size_t)(end - p);
    tlen = tlen > 400 ? 400 : tlen; /* maxLength 500 */
    json_t *raw = json_pack(
        "{s:i, s:s, s:s, s:s, s:o, s:o, s:s, s:s, s:o, s:s}", "schema_version", 1, "ticket_id",
        "0b9a3a3e-6a44-4f5c-9a43-64a0c2b3c1d2", "tenant_id", "tenant-a", "source", "web", "title",
        tlen ? json_stringn_nocheck(title, tlen) : json_string("-"), "body",
        json_stringn_nocheck(body, (size_t)(end - body)), "content_type",
        data[1] & 1 ? "text/html" : "text/plain", "created_at", "2026-11-24T10:00:00Z", "metadata",
        json_object(), "lang", data[1] & 2 ? "es" : "en");
    char *s = json_dumps(raw, JSON_COMPACT);
    json_decref(raw);
    *len = s ? strlen(s) : 0;
    return s;
}

static size_t cps(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rules.raw)
        init();
    char *wrapped = NULL;
    const void *value = data;
    size_t len = size;
    if (size >= 2 && data[0] == 0xff) {
        wrapped = wrap(data, size, &len);
        if (!wrapped)
            return 0;
        value = wrapped;
    }
    /* the fast parser builds jansson's tree or leaves the value to jansson */
    json_t *fast = ingest_json_parse(value, len);
    if (fast) {
        json_t *slow = json_loadb(value, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
        FUZZ_CHECK(slow && json_equal(fast, slow), "fast parse differs from jansson's");
        char *a = json_dumps(fast, JSON_COMPACT), *b = json_dumps(slow, JSON_COMPACT);
        FUZZ_CHECK(!a == !b && (!a || !strcmp(a, b)), "fast parse: other order or types");
        free(a);
        free(b);
        json_decref(fast);
        json_decref(slow);
    }
    size_t counts[16] = {0}, bad = 0, out_len = 0;
    ingest_reject_t why = {0};
    char *id = NULL;
    char *out = ingest_enrich(&rules, value, len, 900 * 1024, counts, &bad, &why, &out_len, &id);
    if (!out) {
        FUZZ_CHECK(why.reason && why.detail[0], "refused without a reason");
        FUZZ_CHECK(!id, "refused but a ticket id was returned");
        free(wrapped);
        return 0;
    }
    FUZZ_CHECK(id && strlen(out) == out_len, "no id or wrong length");
    json_error_t jerr;
    json_t *doc = json_loadb(out, out_len, 0, &jerr);
    FUZZ_CHECK(doc, "output does not parse (%s): %.300s", jerr.text, out);
    tn_schema_error_t se;
    if (tn_schema_validate(rules.enriched, doc, &se, 1, NULL) != TN_OK) {
        char line[1024];
        FUZZ_CHECK(0, "output does not validate: %s: %.500s",
                   tn_schema_error_format(&se, line, sizeof(line)), out);
    }
    const char *text = json_string_value(json_object_get(doc, "text"));
    json_t *chunks = json_object_get(doc, "chunks");
    size_t i;
    json_t *c;
    size_t tchars = text ? cps(text, strlen(text)) : 0;
    json_array_foreach(chunks, i, c)
    {
        json_int_t s = json_integer_value(json_object_get(c, "start"));
        json_int_t e = json_integer_value(json_object_get(c, "end"));
        FUZZ_CHECK(0 <= s && s < e && (size_t)e <= tchars, "chunk %zu [%lld, %lld) of %zu", i,
                   (long long)s, (long long)e, tchars);
    }
    json_decref(doc);
    free(out);
    free(id);
    free(wrapped);
    return 0;
}
