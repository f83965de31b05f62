/* Fuzz target: the POST /v1/tickets body of ingest. The first byte picks JSON or NDJSON; the rest
 * is the body, parsed by ingest_body_parse() and each item completed by ingest_item_prepare()
 * with the real schemas. An accepted item must become a tickets.raw value that validates. */
#include "../../services/ingest/ingest.h"
#include "fuzz.h"

static ingest_rules_t rules;

static void init(void)
{
    ingest_cfg_t cfg = {.schemas_dir = "schemas",
                        .pii_rules_file = "",
                        .category_rules_file = "",
                        .chunk_words = 200,
                        .chunk_overlap = 40};
    fuzz_quiet();
    FUZZ_CHECK(ingest_rules_load(&rules, &cfg) == TN_OK, "ingest rules");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rules.raw)
        init();
    if (size < 1)
        return 0;
    bool ndjson = data[0] & 1;
    ingest_item_t *items;
    size_t n;
    ingest_body_error_t err;
    tn_err_t rc = ingest_body_parse((const char *)data + 1, size - 1, ndjson, 20, &items, &n, &err);
    if (rc != TN_OK) {
        FUZZ_CHECK(err.status == 400 || err.status == 413, "status %d", err.status);
        FUZZ_CHECK(err.code && err.message[0], "no error code or message");
        return 0;
    }
    FUZZ_CHECK(n >= 1 && n <= 20 && (ndjson || n == 1), "%zu items", n);
    for (size_t i = 0; i < n; i++) {
        ingest_item_t *it = &items[i];
        ingest_item_prepare(&rules, it, "tenant-a", "2026-11-24T10:00:00Z");
        if (!it->doc) {
            FUZZ_CHECK(json_is_string(json_object_get(it->error, "code")), "rejected, no code");
            continue;
        }
        FUZZ_CHECK(it->value && it->id && *it->id, "accepted without a value or an id");
        json_t *raw = json_loads(it->value, 0, NULL);
        FUZZ_CHECK(raw, "the tickets.raw value does not parse: %s", it->value);
        tn_schema_error_t se;
        FUZZ_CHECK(tn_schema_validate(rules.raw, raw, &se, 1, NULL) == TN_OK,
                   "the tickets.raw value does not validate: %s", it->value);
        json_decref(raw);
    }
    ingest_items_free(items, n);
    return 0;
}
