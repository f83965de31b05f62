/**
 * @file schema.h
 * @brief JSON Schema (draft-07) validation of jansson values: compile once, validate many times.
 *
 *     tn_schema_t *s = tn_schema_load("schemas/tickets.raw.schema.json", err, sizeof(err));
 *     tn_schema_error_t e[4];
 *     size_t n;
 *     if (tn_schema_validate(s, doc, e, 4, &n) != TN_OK)
 *         tn_schema_error_format(&e[0], line, sizeof(line));   // "/title: required: ..."
 *
 * Keywords: type, enum, const, properties, patternProperties, additionalProperties, required,
 * propertyNames, dependencies, items, additionalItems, contains, minItems, maxItems, uniqueItems,
 * minProperties, maxProperties, minLength/maxLength (code points), pattern (PCRE2 with match
 * limits), minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf, allOf, anyOf, oneOf,
 * not, if/then/else, $ref to local JSON pointers and to $ids in the same document, definitions,
 * boolean schemas, and format: date-time, date, time, email, hostname, ipv4, ipv6, uri, uuid.
 *
 * @thread A compiled schema is immutable: any number of threads may validate with it at once.
 */
#ifndef TAINA_SCHEMA_H
#define TAINA_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#include "taina/err.h"

typedef struct tn_schema tn_schema_t;

/** One validation error. */
typedef struct tn_schema_error {
    char
        instance_path[256]; /**< JSON Pointer into the document ("" = the root), "/items/3/title" */
    char schema_path[256];  /**< JSON Pointer into the schema of the failing keyword */
    char keyword[32];       /**< "required", "type", "maxLength", ... */
    char message[256];      /**< readable reason: "missing property \"title\"" */
} tn_schema_error_t;

/**
 * @brief Compile @p schema (borrowed; the compiled form keeps what it needs).
 * @returns the schema, or NULL with one sentence in @p errbuf (e.g. an invalid regular
 *          expression, an unresolvable $ref). Caller owns the result; free with
 *          tn_schema_destroy().
 */
tn_schema_t *tn_schema_compile(const json_t *schema, char *errbuf, size_t errlen);
/** @brief Read a schema file and compile it. Same ownership as tn_schema_compile(). */
tn_schema_t *tn_schema_load(const char *path, char *errbuf, size_t errlen);
/** @brief Free a compiled schema. NULL ok. */
void tn_schema_destroy(tn_schema_t *s);

/**
 * @brief Validate @p instance.
 * @param errs room for up to @p maxerrs errors (may be NULL with maxerrs 0); the first is the
 *        most useful one to show.
 * @param nerrs out: how many errors were written (may be NULL).
 * @returns TN_OK when valid, TN_ERR_SCHEMA when not.
 */
tn_err_t tn_schema_validate(const tn_schema_t *s, const json_t *instance, tn_schema_error_t *errs,
                            size_t maxerrs, size_t *nerrs);

/**
 * @brief The error as the JSON error object of an HTTP answer (schemas/http/error.schema.json):
 *        {"code":"schema_violation","message":LINE,"path":"/title","keyword":"required"}.
 *        Caller owns the result.
 */
json_t *tn_schema_error_json(const tn_schema_error_t *e);

/** @brief One readable line: "/title: required: missing property \"title\" (#/required)". */
char *tn_schema_error_format(const tn_schema_error_t *e, char *buf, size_t len);

#endif
