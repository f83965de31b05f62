/*
 * Validations per second of a typical tickets.enriched record with the common validator.
 *   bench-schema [SCHEMA] [DOCUMENT] [SECONDS]
 * Prints "c_validations_per_s N". run.sh runs it next to its Python anchor.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "taina/clock.h"
#include "taina/schema.h"

int main(int argc, char **argv)
{
    const char *spath = argc > 1 ? argv[1] : "schemas/tickets.enriched.schema.json";
    const char *dpath = argc > 2 ? argv[2] : "schemas/examples/tickets.enriched/valid-es.json";
    double secs = argc > 3 ? strtod(argv[3], NULL) : 2.0;
    char err[512];
    tn_schema_t *s = tn_schema_load(spath, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "bench-schema: %s\n", err);
        return 2;
    }
    json_error_t jerr;
    json_t *doc = json_load_file(dpath, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "bench-schema: %s: %s\n", dpath, jerr.text);
        return 2;
    }
    if (tn_schema_validate(s, doc, NULL, 0, NULL) != TN_OK) {
        fprintf(stderr, "bench-schema: %s does not validate\n", dpath);
        return 2;
    }
    /* Warm up, then run whole batches until the time is up. */
    long n = 0;
    double t0 = tn_clock_mono_s(), t1;
    do {
        for (int i = 0; i < 1000; i++)
            if (tn_schema_validate(s, doc, NULL, 0, NULL) != TN_OK)
                return 3;
        n += 1000;
        t1 = tn_clock_mono_s();
    } while (t1 - t0 < secs);
    printf("c_validations_per_s %.0f\n", (double)n / (t1 - t0));
    json_decref(doc);
    tn_schema_destroy(s);
    return 0;
}
