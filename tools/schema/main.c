/*
 * taina-schema: validate JSON or NDJSON documents against a draft-07 schema.
 *
 *   taina-schema validate SCHEMA [FILE...]   (stdin when no FILE; one document, or NDJSON)
 *   taina-schema check SCHEMA
 *
 * One line per invalid document ("FILE:LINE: /path: keyword: message (#/schema/path)").
 * Exit 0 all valid, 1 some invalid or unreadable, 2 usage error or a schema that does not compile.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "taina/buf.h"
#include "taina/mem.h"
#include "taina/schema.h"

#define MAX_INPUT (256u << 20)

static int usage(void)
{
    fprintf(stderr, "usage: taina-schema validate SCHEMA [FILE...]\n"
                    "       taina-schema check SCHEMA\n");
    return 2;
}

static int report(const tn_schema_t *s, const char *name, int line, json_t *doc)
{
    tn_schema_error_t e[8];
    size_t n = 0;
    if (tn_schema_validate(s, doc, e, 8, &n) == TN_OK)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char msg[1024];
        printf("%s:%d: %s\n", name, line, tn_schema_error_format(&e[i], msg, sizeof(msg)));
    }
    return 1;
}

/* A whole-file JSON document, else NDJSON (one document per non-blank line). */
static int validate_stream(const tn_schema_t *s, const char *name, FILE *f)
{
    tn_buf_t b;
    char chunk[65536];
    size_t n;
    int bad = 0;
    tn_buf_init(&b, MAX_INPUT);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (tn_buf_add(&b, chunk, n) != TN_OK) {
            printf("%s: larger than %u bytes\n", name, MAX_INPUT);
            tn_buf_cleanup(&b);
            return 1;
        }
    }
    json_error_t jerr;
    json_t *whole = json_loadb(b.data ? b.data : "", b.len, JSON_DECODE_ANY, &jerr);
    if (whole) {
        bad = report(s, name, 1, whole);
        json_decref(whole);
        tn_buf_cleanup(&b);
        return bad;
    }
    int line = 0;
    for (const char *p = b.data, *end = b.data + b.len; p && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        size_t ws = strspn(p, " \t\r");
        if (p + ws < le) {
            json_t *doc = json_loadb(p, (size_t)(le - p), JSON_DECODE_ANY, &jerr);
            if (!doc) {
                printf("%s:%d: malformed JSON: %s\n", name, line, jerr.text);
                bad = 1;
            } else {
                bad |= report(s, name, line, doc);
                json_decref(doc);
            }
        }
        p = le + 1;
    }
    tn_buf_cleanup(&b);
    return bad;
}

int main(int argc, char **argv)
{
    char err[1024];
    if (argc < 3 || (strcmp(argv[1], "validate") && strcmp(argv[1], "check")))
        return usage();
    tn_schema_t *s = tn_schema_load(argv[2], err, sizeof(err));
    if (!s) {
        fprintf(stderr, "taina-schema: %s\n", err);
        return 2;
    }
    int bad = 0;
    if (!strcmp(argv[1], "check")) {
        printf("%s: ok\n", argv[2]);
    } else if (argc == 3) {
        bad = validate_stream(s, "-", stdin);
    } else {
        for (int i = 3; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) {
                printf("%s: cannot open\n", argv[i]);
                bad = 1;
                continue;
            }
            bad |= validate_stream(s, argv[i], f);
            fclose(f);
        }
    }
    tn_schema_destroy(s);
    return bad;
}
