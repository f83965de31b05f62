/* Fuzz target: the JSON Schema validator. The input is parsed as JSON (any value); it is
 * validated against the schemas of tickets.raw, tickets.enriched and the HTTP bodies, and then
 * compiled as a schema of its own and, when it compiles, used to validate itself and a few
 * fixed instances. Every error must format into a bounded line and an error object. */
#include "fuzz.h"

static tn_schema_t *fixed[4];
static json_t *samples[6];

static void init(void)
{
    static const char *const names[] = {"tickets.raw.schema.json", "tickets.enriched.schema.json",
                                        "http/ingest.ticket.schema.json",
                                        "http/rag.query.request.schema.json"};
    fuzz_quiet();
    for (size_t i = 0; i < TN_ARRAY_LEN(names); i++)
        fixed[i] = fuzz_schema(names[i]);
    static const char *const texts[] = {
        "null",
        "0",
        "1.5",
        "\"renovación de pasaporte\"",
        "[1, \"a\", {\"b\": [true]}]",
        "{\"schema_version\": 1, \"ticket_id\": \"t-1\", \"tenant_id\": \"a\", \"source\": "
        "\"web\", \"title\": \"Cita\", \"body\": \"Quiero una cita\", \"content_type\": "
        "\"text/plain\", \"created_at\": \"2026-11-24T10:00:00Z\", \"metadata\": {}}"};
    for (size_t i = 0; i < TN_ARRAY_LEN(texts); i++) {
        samples[i] = json_loads(texts[i], JSON_DECODE_ANY, NULL);
        FUZZ_CHECK(samples[i], "sample %zu", i);
    }
}

static void check(const tn_schema_t *s, const json_t *inst)
{
    tn_schema_error_t errs[4];
    size_t n = 99;
    tn_err_t rc = tn_schema_validate(s, inst, errs, TN_ARRAY_LEN(errs), &n);
    FUZZ_CHECK(rc == TN_OK || rc == TN_ERR_SCHEMA, "rc %d", rc);
    FUZZ_CHECK(n <= TN_ARRAY_LEN(errs), "%zu errors reported", n);
    FUZZ_CHECK(rc != TN_OK || n == 0, "valid with %zu errors", n);
    for (size_t i = 0; i < n; i++) {
        char line[1024];
        tn_schema_error_format(&errs[i], line, sizeof(line));
        FUZZ_CHECK(strlen(line) < sizeof(line), "unterminated line");
        json_t *j = tn_schema_error_json(&errs[i]);
        FUZZ_CHECK(json_is_object(j), "error object");
        json_decref(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fixed[0])
        init();
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!doc)
        return 0;
    for (size_t i = 0; i < TN_ARRAY_LEN(fixed); i++)
        check(fixed[i], doc);
    char err[512];
    tn_schema_t *s = tn_schema_compile(doc, err, sizeof(err));
    if (s) {
        check(s, doc);
        for (size_t i = 0; i < TN_ARRAY_LEN(samples); i++)
            check(s, samples[i]);
        tn_schema_destroy(s);
    } else {
        FUZZ_CHECK(err[0] && strlen(err) < sizeof(err), "compile failed without a reason");
    }
    json_decref(doc);
    return 0;
}
