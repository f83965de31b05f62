/*
 * The official JSON-Schema-Test-Suite (Debian json-schema-test-suite), draft-07: every file but
 * refRemote.json, plus optional/format for the formats we implement, case for case.
 * Skipped cases are listed with their reason in tests/integration/schema-suite-skips.txt.
 * Prints one line per failing case and closes with "N passed, N failed, N skipped".
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/mem.h"
#include "taina/schema.h"

#define SUITE "/usr/share/json-schema-test-suite/tests/draft7"

static const char *const formats[] = {"date-time", "date", "time", "email", "hostname",
                                      "ipv4",      "ipv6", "uri",  "uuid",  NULL};

typedef struct skip {
    char *file, *group, *reason;
} skip_t;

static skip_t *skips;
static size_t nskips;
static int passed, failed, skipped;

static void load_skips(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2)
            continue;
        *t1 = *t2 = '\0';
        skips = tn_xrealloc(skips, (nskips + 1) * sizeof(*skips));
        skips[nskips++] = (skip_t){tn_xstrdup(line), tn_xstrdup(t1 + 1), tn_xstrdup(t2 + 1)};
    }
    fclose(f);
}

static const char *skip_reason(const char *file, const char *group)
{
    for (size_t i = 0; i < nskips; i++)
        if (!strcmp(skips[i].file, file) && !strcmp(skips[i].group, group))
            return skips[i].reason;
    return NULL;
}

static void run_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_error_t jerr;
    json_t *groups = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!groups) {
        printf("FAIL %s: cannot read: %s\n", path, jerr.text);
        failed++;
        return;
    }
    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g)
    {
        const char *gdesc = json_string_value(json_object_get(g, "description"));
        json_t *tests = json_object_get(g, "tests");
        const char *why = skip_reason(name, gdesc);
        if (why) {
            skipped += (int)json_array_size(tests);
            printf("skip %s / %s: %s\n", name, gdesc, why);
            continue;
        }
        char err[512];
        tn_schema_t *s = tn_schema_compile(json_object_get(g, "schema"), err, sizeof(err));
        size_t ti;
        json_t *t;
        json_array_foreach(tests, ti, t)
        {
            const char *tdesc = json_string_value(json_object_get(t, "description"));
            int want = json_is_true(json_object_get(t, "valid"));
            if (!s) {
                printf("FAIL %s / %s / %s: schema does not compile: %s\n", name, gdesc, tdesc, err);
                failed++;
                continue;
            }
            tn_schema_error_t e;
            size_t n = 0;
            int got = tn_schema_validate(s, json_object_get(t, "data"), &e, 1, &n) == TN_OK;
            if (got == want) {
                passed++;
            } else {
                char line[600] = "";
                if (n)
                    tn_schema_error_format(&e, line, sizeof(line));
                printf("FAIL %s / %s / %s: expected %s, got %s %s\n", name, gdesc, tdesc,
                       want ? "valid" : "invalid", got ? "valid" : "invalid", line);
                failed++;
            }
        }
        tn_schema_destroy(s);
    }
    json_decref(groups);
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *skipfile = argc > 1 ? argv[1] : "tests/integration/schema-suite-skips.txt";
    load_skips(skipfile);
    DIR *d = opendir(SUITE);
    if (!d) {
        printf("cannot open %s (Debian package json-schema-test-suite)\n0 passed, 1 failed\n",
               SUITE);
        return 1;
    }
    char *names[128] = {NULL};
    size_t nn = 0;
    for (struct dirent *de = readdir(d); de && nn < 128; de = readdir(d)) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".json") && strcmp(de->d_name, "refRemote.json"))
            names[nn++] = tn_xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof(*names), cmp);
    for (size_t i = 0; i < nn; i++) {
        run_file(SUITE, names[i]);
        free(names[i]);
    }
    for (size_t i = 0; formats[i]; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s.json", formats[i]);
        char path[256];
        snprintf(path, sizeof(path), "%s/optional/format/%s", SUITE, name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* this version of the suite has no cases for it */
        fclose(f);
        run_file(SUITE "/optional/format", name);
    }
    for (size_t i = 0; i < nskips; i++) {
        free(skips[i].file);
        free(skips[i].group);
        free(skips[i].reason);
    }
    free(skips);
    printf("\nskipped %d case(s), listed with reasons in %s\n", skipped, skipfile);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
