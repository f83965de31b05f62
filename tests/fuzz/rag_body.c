/* Fuzz target: the POST /v1/query and /v1/search body parser of rag (rag_request_parse) with the
 * real request schemas. A body it accepts must give a question and a top_k in 1..50. */
#include "fuzz.h"
#include "../../services/rag/rag.h"

static tn_schema_t *schemas[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schemas[0]) {
        fuzz_quiet();
        schemas[0] = fuzz_schema("http/rag.query.request.schema.json");
        schemas[1] = fuzz_schema("http/rag.search.request.schema.json");
    }
    for (size_t i = 0; i < 2; i++) {
        rag_request_t rq;
        json_t *error = NULL;
        int status = rag_request_parse(schemas[i], (const char *)data, size, &rq, &error);
        if (status) {
            FUZZ_CHECK(status == 400 || status == 422, "status %d", status);
            FUZZ_CHECK(!rq.doc && json_is_object(error), "error object");
            FUZZ_CHECK(json_is_string(json_object_get(error, "code")) &&
                           json_is_string(json_object_get(error, "message")),
                       "code and message");
            json_decref(error);
            continue;
        }
        FUZZ_CHECK(!error && rq.doc && rq.q.question && *rq.q.question, "no question");
        FUZZ_CHECK(rq.q.top_k >= 1 && rq.q.top_k <= 50, "top_k %zu", rq.q.top_k);
        FUZZ_CHECK(strlen(rq.q.question) <= 4 * 4000, "question of %zu bytes",
                   strlen(rq.q.question));
        json_decref(rq.doc);
    }
    return 0;
}
