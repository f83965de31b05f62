/**
 * @file config.h
 * @brief Configuration declared once as tables of keys (STYLE rule 18).
 *
 * Each program declares its keys in a table of tn_cfg_key_t bound by offsetof to a struct of
 * its own. Values come, in increasing precedence, from the defaults, an optional
 * `--config FILE` (`KEY=value` lines, same names as the environment), and the environment
 * (`TAINA_<KEY>`). Every value is validated; the first bad one stops the load with one
 * sentence naming the variable. Kafka client properties pass through as
 * `TAINA_KAFKA_<PROPERTY>` with dots as underscores (TAINA_KAFKA_SASL_MECHANISM ->
 * sasl.mechanism) unless a table declares that name.
 *
 * Field types in the bound struct:
 *   STRING, URL  char *    (owned by the tn_cfg_t; NULL when unset)
 *   INT          int64_t
 *   BOOL         bool
 *   DURATION     int64_t   milliseconds; text needs a unit: "250ms", "5s", "2m", "1h"
 *   SIZE         int64_t   bytes; "1048576", "64KB", "10MiB", "1G" (binary multiples)
 *   ENUM         int       index into the key's NULL-terminated `choices`
 *
 * Nothing else in the suite reads the environment (make lint rejects getenv elsewhere).
 */
#ifndef TAINA_CONFIG_H
#define TAINA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "taina/err.h"

typedef enum {
    TN_CFG_STRING,
    TN_CFG_INT,
    TN_CFG_BOOL,
    TN_CFG_DURATION,
    TN_CFG_SIZE,
    TN_CFG_ENUM,
    TN_CFG_URL
} tn_cfg_type_t;

enum {
    TN_CFG_REQUIRED = 1 << 0, /**< start-up fails while unset or empty */
    TN_CFG_SECRET = 1 << 1    /**< masked in --print-config and never logged */
};

/** One configuration key. Tables of these are static const data. */
typedef struct tn_cfg_key {
    const char *name;           /**< lower-case, e.g. "http_port" -> TAINA_HTTP_PORT */
    tn_cfg_type_t type;         /**< how the text is parsed and where it is stored */
    size_t offset;              /**< offsetof(field) in the struct the table is bound to */
    const char *def;            /**< default as text, parsed like any value; NULL = unset */
    unsigned flags;             /**< TN_CFG_REQUIRED, TN_CFG_SECRET */
    const char *help;           /**< one line */
    int64_t min, max;           /**< INT, DURATION (ms), SIZE (bytes): bounds when min < max */
    const char *const *choices; /**< ENUM: NULL-terminated names */
} tn_cfg_key_t;

/** A Kafka client property passed through from TAINA_KAFKA_<PROPERTY>. */
typedef struct tn_cfg_prop {
    char *name; /**< librdkafka property name ("sasl.mechanism") */
    char *value;
} tn_cfg_prop_t;

typedef struct tn_cfg tn_cfg_t;

/** What the caller of tn_cfg_from_args() should do next. */
typedef enum {
    TN_CFG_RUN = 0,     /**< configuration loaded: start */
    TN_CFG_EXIT_OK = 1, /**< --help or --print-config done: exit 0 */
    TN_CFG_EXIT_BAD = 2 /**< bad arguments or values, one line printed: exit 2 */
} tn_cfg_action_t;

/** @brief A configuration for @p program. Caller owns the result; free with tn_cfg_destroy(). */
tn_cfg_t *tn_cfg_new(const char *program);
/** @brief Free the configuration and every string it stored in the bound structs. NULL ok. */
void tn_cfg_destroy(tn_cfg_t *cfg);

/**
 * @brief Add a table of @p nkeys keys bound to @p base (the struct their offsets refer to).
 * @param title heading in --help ("common", "ingest"). Borrowed: the table, base and title
 *        must outlive @p cfg.
 */
void tn_cfg_add_table(tn_cfg_t *cfg, const char *title, const tn_cfg_key_t *keys, size_t nkeys,
                      void *base);

/**
 * @brief Load defaults, then @p file (may be NULL), then @p envp (NULL-terminated
 *        "NAME=value" strings, as `environ`), and validate.
 * @returns TN_OK, or TN_ERR_CONFIG with one sentence in @p errbuf.
 */
tn_err_t tn_cfg_load(tn_cfg_t *cfg, const char *file, char *const *envp, char *errbuf,
                     size_t errlen);

/**
 * @brief The whole start-up dance for a program: parse argv (--help, --print-config,
 *        --list-config, --config FILE, and --key-name VALUE for any declared key, which wins
 *        over the environment; in a table titled "devstack", --bootstrap-file also names
 *        devstack_bootstrap_file), load, print what was asked for to @p out and errors
 *        (one line) to @p err.
 */
tn_cfg_action_t tn_cfg_from_args(tn_cfg_t *cfg, int argc, char **argv, char *const *envp, FILE *out,
                                 FILE *err);

/** @brief Print usage and the table of keys (env name, type, default, help). */
void tn_cfg_print_help(const tn_cfg_t *cfg, FILE *out);
/** @brief Print effective values as `TAINA_KEY=value` lines, secrets masked. After load. */
void tn_cfg_print_effective(const tn_cfg_t *cfg, FILE *out);
/** @brief Print the keys as a Markdown table (the README's configuration reference). */
void tn_cfg_print_markdown(const tn_cfg_t *cfg, FILE *out);

/** @brief The Kafka passthrough properties. Borrowed; valid until tn_cfg_destroy(). */
const tn_cfg_prop_t *tn_cfg_kafka_props(const tn_cfg_t *cfg, size_t *n);

/** @brief Parse a duration ("250ms", "5s", "1m30s", "2h") into milliseconds. */
tn_err_t tn_cfg_parse_duration(const char *s, int64_t *ms);
/** @brief Parse a size ("1024", "64KB", "10MiB", "1G") into bytes. */
tn_err_t tn_cfg_parse_size(const char *s, int64_t *bytes);
/** @brief Parse a boolean (true/false, 1/0, yes/no, on/off; case-insensitive). */
tn_err_t tn_cfg_parse_bool(const char *s, bool *b);

#endif
