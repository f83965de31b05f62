/*
 * Every example under schemas/examples/ validates, or fails, as its name says:
 *   schemas/examples/<schema>/valid-*.json    must be valid against the schema
 *   schemas/examples/<schema>/invalid-*.json  must be rejected (the first error is printed)
 * <schema> is the schema's path under schemas/ with "/" as "." and without ".schema.json":
 * "tickets.raw" is schemas/tickets.raw.schema.json, "http.ingest.ticket" is
 * schemas/http/ingest.ticket.schema.json.
 * Also: every topic of schemas/topics.json has a value schema, every schema compiles and has
 * at least one valid and one invalid example.
 * Closes with "N passed, N failed".
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "taina/schema.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "http.ingest.ticket" -> "schemas/http/ingest.ticket.schema.json" */
static void schema_path(const char *name, char *out, size_t len)
{
    if (!strncmp(name, "http.", 5))
        snprintf(out, len, "schemas/http/%s.schema.json", name + 5);
    else
        snprintf(out, len, "schemas/%s.schema.json", name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entry names of @p dir (no dot files); caller frees each and the array. */
static size_t list_dir(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    size_t n = 0, cap = 0;
    char **v = NULL;
    struct dirent *de;
    if (!d) {
        *out = NULL;
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            v = realloc(v, cap * sizeof(*v));
            if (!v)
                abort();
        }
        v[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    return n;
}

static int accepts_anything(const tn_schema_t *s)
{
    const char *probes[] = {"null", "0", "-1.5", "\"\"", "[]", "{}", "{\"a\":[1]}", "true"};
    for (size_t i = 0; i < sizeof(probes) / sizeof(*probes); i++) {
        json_t *v = json_loads(probes[i], JSON_DECODE_ANY, NULL);
        int ok = tn_schema_validate(s, v, NULL, 0, NULL) == TN_OK;
        json_decref(v);
        if (!ok)
            return 0;
    }
    return 1;
}

static void run_examples(const char *name)
{
    char spath[512], dir[512], err[512];
    schema_path(name, spath, sizeof(spath));
    snprintf(dir, sizeof(dir), "schemas/examples/%s", name);
    tn_schema_t *s = tn_schema_load(spath, err, sizeof(err));
    check(s != NULL, spath, s ? NULL : err);
    if (!s)
        return;

    char **files;
    size_t n = list_dir(dir, &files);
    int nvalid = 0, ninvalid = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024], line[1024], what[1100];
        int want_valid = !strncmp(files[i], "valid-", 6);
        int want_invalid = !strncmp(files[i], "invalid-", 8);
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        check(want_valid || want_invalid, path, "name must start with valid- or invalid-");
        json_error_t jerr;
        json_t *doc = json_load_file(path, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        check(doc != NULL, path, doc ? NULL : jerr.text);
        if (doc && (want_valid || want_invalid)) {
            tn_schema_error_t e[1];
            size_t ne = 0;
            int valid = tn_schema_validate(s, doc, e, 1, &ne) == TN_OK;
            if (!valid && ne)
                tn_schema_error_format(&e[0], line, sizeof(line));
            else
                snprintf(line, sizeof(line), "valid");
            snprintf(what, sizeof(what), "%s is %s, name says %s", path,
                     valid ? "valid" : "invalid", want_valid ? "valid" : "invalid");
            check(valid == want_valid, what, valid ? NULL : line);
            if (valid == want_valid && !valid)
                printf("ok   %s: %s\n", path, line);
            nvalid += want_valid;
            ninvalid += want_invalid;
        }
        json_decref(doc);
        free(files[i]);
    }
    free(files);
    /* A schema that takes any JSON (tickets.dlq keeps the failed record's bytes) has no
     * invalid JSON example; every other schema needs both kinds. */
    check(nvalid > 0 && (ninvalid > 0 || accepts_anything(s)), dir,
          "needs at least one valid- and one invalid- example");
    tn_schema_destroy(s);
}

/* Every *.schema.json under schemas/ (and schemas/http/) has an examples folder. */
static void check_schema_dir(const char *sub, const char *prefix)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "schemas%s", sub);
    char **files;
    size_t n = list_dir(dir, &files);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(files[i]);
        const char *suf = ".schema.json";
        if (len > strlen(suf) && !strcmp(files[i] + len - strlen(suf), suf)) {
            char name[300], ex[600];
            snprintf(name, sizeof(name), "%s%.*s", prefix, (int)(len - strlen(suf)), files[i]);
            snprintf(ex, sizeof(ex), "schemas/examples/%s", name);
            struct stat st;
            check(stat(ex, &st) == 0 && S_ISDIR(st.st_mode), ex, "missing examples folder");
        }
        free(files[i]);
    }
    free(files);
}

static void check_topics(void)
{
    json_error_t jerr;
    json_t *t = json_load_file("schemas/topics.json", 0, &jerr);
    check(t != NULL, "schemas/topics.json", t ? NULL : jerr.text);
    if (!t)
        return;
    json_t *topics = json_object_get(t, "topics"), *topic;
    size_t i;
    check(json_array_size(topics) >= 8, "schemas/topics.json", "fewer than 8 topics");
    json_array_foreach(topics, i, topic)
    {
        const char *name = json_string_value(json_object_get(topic, "name"));
        char path[512];
        if (!name) {
            check(0, "schemas/topics.json", "topic without a name");
            continue;
        }
        schema_path(name, path, sizeof(path));
        check(file_exists(path), path, "topic without a value schema");
        check(json_integer_value(json_object_get(topic, "partitions")) > 0, name, "partitions");
        check(json_is_string(json_object_get(topic, "cleanup_policy")), name, "cleanup_policy");
        check(json_is_integer(json_object_get(topic, "retention_ms")), name, "retention_ms");
    }
    json_decref(t);
}

int main(void)
{
    check_topics();
    check_schema_dir("", "");
    check_schema_dir("/http", "http.");
    char **names;
    size_t n = list_dir("schemas/examples", &names);
    check(n >= 19, "schemas/examples", "fewer example folders than schemas");
    for (size_t i = 0; i < n; i++) {
        run_examples(names[i]);
        free(names[i]);
    }
    free(names);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
