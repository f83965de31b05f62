/* Configuration tables: defaults, --config file, TAINA_* environment, validation, printing. */
#include "taina/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "taina/buf.h"
#include "taina/mem.h"

#define ENV_PREFIX   "TAINA_"
#define KAFKA_PREFIX "kafka_"
#define MAX_TABLES   8
#define MAX_LINE     8192

typedef enum { SRC_UNSET, SRC_DEFAULT, SRC_FILE, SRC_ENV, SRC_ARG } src_t;

typedef struct table {
    const char *title;
    const tn_cfg_key_t *keys;
    size_t nkeys;
    void *base;
    src_t *src; /* per key: where the value came from */
} table_t;

struct tn_cfg {
    char *program;
    table_t tables[MAX_TABLES];
    size_t ntables;
    tn_cfg_prop_t *props;
    size_t nprops;
};

static const char *const type_names[] = {"string", "int",  "bool", "duration",
                                         "size",   "enum", "url"};
static const char *const src_names[] = {"unset", "default", "file", "env", "argument"};

tn_cfg_t *tn_cfg_new(const char *program)
{
    tn_cfg_t *cfg = tn_xcalloc(1, sizeof(*cfg));
    cfg->program = tn_xstrdup(program);
    return cfg;
}

static char **str_field(const table_t *t, const tn_cfg_key_t *k)
{
    return (char **)((char *)t->base + k->offset);
}

void tn_cfg_destroy(tn_cfg_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->ntables; i++) {
        table_t *t = &cfg->tables[i];
        for (size_t j = 0; j < t->nkeys; j++) {
            const tn_cfg_key_t *k = &t->keys[j];
            if (k->type == TN_CFG_STRING || k->type == TN_CFG_URL)
                TN_FREE(*str_field(t, k));
        }
        free(t->src);
    }
    for (size_t i = 0; i < cfg->nprops; i++) {
        free(cfg->props[i].name);
        free(cfg->props[i].value);
    }
    free(cfg->props);
    free(cfg->program);
    free(cfg);
}

void tn_cfg_add_table(tn_cfg_t *cfg, const char *title, const tn_cfg_key_t *keys, size_t nkeys,
                      void *base)
{
    TN_ASSERT(cfg->ntables < MAX_TABLES);
    table_t *t = &cfg->tables[cfg->ntables++];
    t->title = title;
    t->keys = keys;
    t->nkeys = nkeys;
    t->base = base;
    t->src = tn_xcalloc(nkeys ? nkeys : 1, sizeof(*t->src));
}

/* ---------------------------------------------------------------------------------------------
 * Value parsers */

tn_err_t tn_cfg_parse_bool(const char *s, bool *b)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < TN_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *b = true;
            return TN_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *b = false;
            return TN_OK;
        }
    }
    return TN_ERR_INVALID;
}

static tn_err_t parse_int(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return TN_ERR_INVALID;
    *v = x;
    return TN_OK;
}

tn_err_t tn_cfg_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *p = s;
    int64_t total = 0;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return TN_OK;
    }
    if (!*p)
        return TN_ERR_INVALID;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return TN_ERR_INVALID;
        char *end;
        errno = 0;
        long long n = strtoll(p, &end, 10);
        if (errno)
            return TN_ERR_INVALID;
        size_t ul = 0;
        while (isalpha((unsigned char)end[ul]))
            ul++;
        int found = 0;
        for (size_t i = 0; i < TN_ARRAY_LEN(units); i++) {
            if (ul == strlen(units[i].unit) && strncmp(end, units[i].unit, ul) == 0) {
                if (n > INT64_MAX / units[i].ms || total > INT64_MAX - n * units[i].ms)
                    return TN_ERR_INVALID;
                total += n * units[i].ms;
                found = 1;
            }
        }
        if (!found)
            return TN_ERR_INVALID;
        p = end + ul;
    }
    *ms = total;
    return TN_OK;
}

tn_err_t tn_cfg_parse_size(const char *s, int64_t *bytes)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {{"", 1},          {"b", 1},        {"k", 1 << 10},  {"kb", 1 << 10},
                 {"kib", 1 << 10}, {"m", 1 << 20},  {"mb", 1 << 20}, {"mib", 1 << 20},
                 {"g", 1 << 30},   {"gb", 1 << 30}, {"gib", 1 << 30}};
    if (!isdigit((unsigned char)*s))
        return TN_ERR_INVALID;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno)
        return TN_ERR_INVALID;
    for (size_t i = 0; i < TN_ARRAY_LEN(units); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (n > INT64_MAX / units[i].mult)
                return TN_ERR_INVALID;
            *bytes = n * units[i].mult;
            return TN_OK;
        }
    }
    return TN_ERR_INVALID;
}

static int url_ok(const char *s)
{
    const char *host;
    if (strncasecmp(s, "http://", 7) == 0)
        host = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        host = s + 8;
    else
        return 0;
    if (!*host || *host == '/' || *host == ':')
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* Display name of a key: its environment variable. */
static void env_name(const tn_cfg_key_t *k, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, ENV_PREFIX "%s", k->name);
    for (size_t i = 0; i < n && i < len; i++)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

static void choices_text(const tn_cfg_key_t *k, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; k->choices && k->choices[i] && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", k->choices[i]);
}

/* Parse @p text for key @p k and store it. Writes one sentence into errbuf on failure. */
static tn_err_t set_value(const table_t *t, const tn_cfg_key_t *k, const char *text, char *errbuf,
                          size_t errlen)
{
    char name[128];
    env_name(k, name, sizeof(name));
    void *field = (char *)t->base + k->offset;
    int64_t v = 0;
    tn_err_t rc = TN_OK;
    const char *want = NULL;

    switch (k->type) {
    case TN_CFG_URL:
        if (*text && !url_ok(text)) {
            snprintf(errbuf, errlen, "%s: \"%s\" is not an http:// or https:// URL", name, text);
            return TN_ERR_CONFIG;
        }
        /* fall through */
    case TN_CFG_STRING:
        free(*(char **)field);
        *(char **)field = tn_xstrdup(text);
        return TN_OK;
    case TN_CFG_BOOL:
        if (tn_cfg_parse_bool(text, (bool *)field) != TN_OK) {
            snprintf(errbuf, errlen, "%s: \"%s\" is not a boolean (use true or false)", name, text);
            return TN_ERR_CONFIG;
        }
        return TN_OK;
    case TN_CFG_ENUM:
        for (int i = 0; k->choices && k->choices[i]; i++) {
            if (strcasecmp(text, k->choices[i]) == 0) {
                *(int *)field = i;
                return TN_OK;
            }
        }
        {
            char ch[256];
            choices_text(k, ch, sizeof(ch));
            snprintf(errbuf, errlen, "%s: \"%s\" is not one of: %s", name, text, ch);
        }
        return TN_ERR_CONFIG;
    case TN_CFG_INT:
        rc = parse_int(text, &v);
        want = "an integer";
        break;
    case TN_CFG_DURATION:
        rc = tn_cfg_parse_duration(text, &v);
        want = "a duration with a unit (e.g. 250ms, 5s, 2m, 1h)";
        break;
    case TN_CFG_SIZE:
        rc = tn_cfg_parse_size(text, &v);
        want = "a size (e.g. 1048576, 64KB, 10MiB)";
        break;
    }
    if (rc != TN_OK) {
        snprintf(errbuf, errlen, "%s: \"%s\" is not %s", name, text, want);
        return TN_ERR_CONFIG;
    }
    if (k->min < k->max && (v < k->min || v > k->max)) {
        snprintf(errbuf, errlen, "%s: %s is out of range [%" PRId64 ", %" PRId64 "]%s", name, text,
                 k->min, k->max,
                 k->type == TN_CFG_DURATION ? " milliseconds"
                 : k->type == TN_CFG_SIZE   ? " bytes"
                                            : "");
        return TN_ERR_CONFIG;
    }
    *(int64_t *)field = v;
    return TN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Loading */

static int find_key(tn_cfg_t *cfg, const char *name, size_t nlen, table_t **tp,
                    const tn_cfg_key_t **kp)
{
    for (size_t i = 0; i < cfg->ntables; i++) {
        table_t *t = &cfg->tables[i];
        for (size_t j = 0; j < t->nkeys; j++) {
            if (strlen(t->keys[j].name) == nlen && strncasecmp(t->keys[j].name, name, nlen) == 0) {
                *tp = t;
                *kp = &t->keys[j];
                return (int)j;
            }
        }
    }
    return -1;
}

static void set_prop(tn_cfg_t *cfg, const char *suffix, size_t slen, const char *value)
{
    char *name = tn_xstrndup(suffix, slen);
    for (char *p = name; *p; p++)
        *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < cfg->nprops; i++) {
        if (strcmp(cfg->props[i].name, name) == 0) {
            free(name);
            free(cfg->props[i].value);
            cfg->props[i].value = tn_xstrdup(value);
            return;
        }
    }
    cfg->props = tn_xrealloc(cfg->props, (cfg->nprops + 1) * sizeof(*cfg->props));
    cfg->props[cfg->nprops].name = name;
    cfg->props[cfg->nprops].value = tn_xstrdup(value);
    cfg->nprops++;
}

/*
 * Apply NAME=value where NAME is a key name without the TAINA_ prefix (any case).
 * @returns TN_DECLINED when the name is not ours (unknown), TN_OK, or TN_ERR_CONFIG.
 */
static tn_err_t apply(tn_cfg_t *cfg, const char *name, size_t nlen, const char *value, src_t src,
                      char *errbuf, size_t errlen)
{
    table_t *t;
    const tn_cfg_key_t *k;
    int idx = find_key(cfg, name, nlen, &t, &k);
    if (idx >= 0) {
        tn_err_t rc = set_value(t, k, value, errbuf, errlen);
        if (rc == TN_OK)
            t->src[idx] = src;
        return rc;
    }
    if (nlen > strlen(KAFKA_PREFIX) && strncasecmp(name, KAFKA_PREFIX, strlen(KAFKA_PREFIX)) == 0) {
        set_prop(cfg, name + strlen(KAFKA_PREFIX), nlen - strlen(KAFKA_PREFIX), value);
        return TN_OK;
    }
    return TN_DECLINED;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static tn_err_t load_file(tn_cfg_t *cfg, const char *path, char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_ERR_CONFIG;
    char line[MAX_LINE];
    int lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errlen, "--config %s: %s", path, strerror(errno));
        return TN_ERR_CONFIG;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(errbuf, errlen, "%s:%d: line longer than %d bytes", path, lineno, MAX_LINE);
            goto out;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errbuf, errlen, "%s:%d: expected KEY=value", path, lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s);
        char *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        if (strncasecmp(key, ENV_PREFIX, strlen(ENV_PREFIX)) == 0)
            key += strlen(ENV_PREFIX);
        char sub[512];
        tn_err_t arc = apply(cfg, key, strlen(key), val, SRC_FILE, sub, sizeof(sub));
        if (arc == TN_DECLINED) {
            snprintf(errbuf, errlen, "%s:%d: unknown key %s%s (see --help)", path, lineno,
                     ENV_PREFIX, key);
            goto out;
        }
        if (arc != TN_OK) {
            snprintf(errbuf, errlen, "%s:%d: %s", path, lineno, sub);
            goto out;
        }
    }
    rc = TN_OK;
out:
    fclose(f);
    return rc;
}

/* One command-line override: --name value (name may omit the table title prefix). */
typedef struct arg_override {
    const char *name;
    size_t nlen;
    const char *value;
} arg_override_t;

static tn_err_t load(tn_cfg_t *cfg, const char *file, char *const *envp, const arg_override_t *args,
                     size_t nargs, char *errbuf, size_t errlen);

tn_err_t tn_cfg_load(tn_cfg_t *cfg, const char *file, char *const *envp, char *errbuf,
                     size_t errlen)
{
    return load(cfg, file, envp, NULL, 0, errbuf, errlen);
}

/* Find the key a command-line flag names: "bootstrap-file" matches bootstrap_file or, in a
 * table titled "devstack", devstack_bootstrap_file. */
static tn_err_t apply_arg(tn_cfg_t *cfg, const arg_override_t *a, char *errbuf, size_t errlen)
{
    char name[128];
    if (a->nlen >= sizeof(name) - 1)
        goto unknown;
    for (size_t i = 0; i < a->nlen; i++)
        name[i] = a->name[i] == '-' ? '_' : a->name[i];
    name[a->nlen] = '\0';
    tn_err_t rc = apply(cfg, name, a->nlen, a->value, SRC_ARG, errbuf, errlen);
    if (rc != TN_DECLINED)
        return rc;
    for (size_t i = 0; i < cfg->ntables; i++) {
        char full[256];
        int n = snprintf(full, sizeof(full), "%s_%s", cfg->tables[i].title, name);
        table_t *t;
        const tn_cfg_key_t *k;
        int idx = find_key(cfg, full, (size_t)n, &t, &k);
        if (idx >= 0 && t == &cfg->tables[i]) {
            if (set_value(t, k, a->value, errbuf, errlen) != TN_OK)
                return TN_ERR_CONFIG;
            t->src[idx] = SRC_ARG;
            return TN_OK;
        }
    }
unknown:
    snprintf(errbuf, errlen, "unknown option --%.*s (try --help)", (int)a->nlen, a->name);
    return TN_ERR_CONFIG;
}

static tn_err_t load(tn_cfg_t *cfg, const char *file, char *const *envp, const arg_override_t *args,
                     size_t nargs, char *errbuf, size_t errlen)
{
    /* 1. defaults */
    for (size_t i = 0; i < cfg->ntables; i++) {
        table_t *t = &cfg->tables[i];
        for (size_t j = 0; j < t->nkeys; j++) {
            const tn_cfg_key_t *k = &t->keys[j];
            if (!k->def)
                continue;
            tn_err_t rc = set_value(t, k, k->def, errbuf, errlen);
            TN_ASSERT(rc == TN_OK); /* a bad default is a bug in the table */
            t->src[j] = SRC_DEFAULT;
        }
    }
    /* 2. file */
    if (file && load_file(cfg, file, errbuf, errlen) != TN_OK)
        return TN_ERR_CONFIG;
    /* 3. environment: unknown TAINA_* names are left alone (a shared env may hold others'). */
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
            continue;
        const char *name = *e + strlen(ENV_PREFIX);
        const char *eq = strchr(name, '=');
        if (!eq)
            continue;
        tn_err_t rc = apply(cfg, name, (size_t)(eq - name), eq + 1, SRC_ENV, errbuf, errlen);
        if (rc < 0)
            return TN_ERR_CONFIG;
    }
    /* 4. command line */
    for (size_t i = 0; i < nargs; i++) {
        if (apply_arg(cfg, &args[i], errbuf, errlen) != TN_OK)
            return TN_ERR_CONFIG;
    }
    /* 5. required keys */
    for (size_t i = 0; i < cfg->ntables; i++) {
        table_t *t = &cfg->tables[i];
        for (size_t j = 0; j < t->nkeys; j++) {
            const tn_cfg_key_t *k = &t->keys[j];
            if (!(k->flags & TN_CFG_REQUIRED))
                continue;
            int unset = t->src[j] == SRC_UNSET;
            if ((k->type == TN_CFG_STRING || k->type == TN_CFG_URL) && !unset) {
                const char *s = *str_field(t, k);
                unset = !s || !*s;
            }
            if (unset) {
                char name[128];
                env_name(k, name, sizeof(name));
                snprintf(errbuf, errlen, "%s is required: %s", name, k->help);
                return TN_ERR_CONFIG;
            }
        }
    }
    return TN_OK;
}

const tn_cfg_prop_t *tn_cfg_kafka_props(const tn_cfg_t *cfg, size_t *n)
{
    *n = cfg->nprops;
    return cfg->props;
}

/* ---------------------------------------------------------------------------------------------
 * Printing */

static int prop_is_secret(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "key.pem") ||
           strstr(name, "token") || strstr(name, "jaas");
}

static void value_text(const table_t *t, const tn_cfg_key_t *k, char *buf, size_t len)
{
    const void *field = (const char *)t->base + k->offset;
    int64_t v;
    switch (k->type) {
    case TN_CFG_STRING:
    case TN_CFG_URL:
        snprintf(buf, len, "%s", *(char *const *)field ? *(char *const *)field : "");
        return;
    case TN_CFG_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        return;
    case TN_CFG_ENUM:
        snprintf(buf, len, "%s", k->choices[*(const int *)field]);
        return;
    case TN_CFG_DURATION:
        v = *(const int64_t *)field;
        if (v % 3600000 == 0 && v)
            snprintf(buf, len, "%" PRId64 "h", v / 3600000);
        else if (v % 60000 == 0 && v)
            snprintf(buf, len, "%" PRId64 "m", v / 60000);
        else if (v % 1000 == 0 && v)
            snprintf(buf, len, "%" PRId64 "s", v / 1000);
        else
            snprintf(buf, len, "%" PRId64 "ms", v);
        return;
    case TN_CFG_INT:
    case TN_CFG_SIZE:
        snprintf(buf, len, "%" PRId64, *(const int64_t *)field);
        return;
    }
}

static void type_text(const tn_cfg_key_t *k, char *buf, size_t len)
{
    if (k->type == TN_CFG_ENUM) {
        char ch[200];
        choices_text(k, ch, sizeof(ch));
        snprintf(buf, len, "enum: %s", ch);
    } else if (k->type == TN_CFG_INT && k->min < k->max) {
        snprintf(buf, len, "int %" PRId64 "..%" PRId64, k->min, k->max);
    } else {
        snprintf(buf, len, "%s", type_names[k->type]);
    }
}

void tn_cfg_print_help(const tn_cfg_t *cfg, FILE *out)
{
    fprintf(
        out,
        "Usage: %s [--config FILE] [--KEY VALUE]... [--print-config] [--list-config] [--help]\n\n"
        "Configuration comes from the environment (TAINA_<KEY>) and, with --config, a file\n"
        "of KEY=value lines (environment wins). Kafka client properties pass through as\n"
        "TAINA_KAFKA_<PROPERTY>, dots as underscores (TAINA_KAFKA_SASL_MECHANISM).\n"
        "A key may also be given as --key-name VALUE (highest precedence).\n",
        cfg->program);
    for (size_t i = 0; i < cfg->ntables; i++) {
        const table_t *t = &cfg->tables[i];
        fprintf(out, "\n%s:\n", t->title);
        for (size_t j = 0; j < t->nkeys; j++) {
            const tn_cfg_key_t *k = &t->keys[j];
            char name[128], type[256];
            env_name(k, name, sizeof(name));
            type_text(k, type, sizeof(type));
            fprintf(out, "  %-34s %s%s%s\n", name, type,
                    k->flags & TN_CFG_REQUIRED ? ", required" : "",
                    k->flags & TN_CFG_SECRET ? ", secret" : "");
            fprintf(out, "  %-34s %s", "", k->help);
            if (k->def && *k->def)
                fprintf(out, " (default: %s)", k->def);
            fputc('\n', out);
        }
    }
}

void tn_cfg_print_effective(const tn_cfg_t *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->ntables; i++) {
        const table_t *t = &cfg->tables[i];
        for (size_t j = 0; j < t->nkeys; j++) {
            const tn_cfg_key_t *k = &t->keys[j];
            char name[128], val[1024];
            env_name(k, name, sizeof(name));
            value_text(t, k, val, sizeof(val));
            if ((k->flags & TN_CFG_SECRET) && *val)
                snprintf(val, sizeof(val), "********");
            fprintf(out, "%s=%s  # %s\n", name, val, src_names[t->src[j]]);
        }
    }
    for (size_t i = 0; i < cfg->nprops; i++)
        fprintf(out, "kafka property %s=%s\n", cfg->props[i].name,
                prop_is_secret(cfg->props[i].name) ? "********" : cfg->props[i].value);
}

void tn_cfg_print_markdown(const tn_cfg_t *cfg, FILE *out)
{
    fprintf(out, "| variable | type | default | description |\n| --- | --- | --- | --- |\n");
    for (size_t i = 0; i < cfg->ntables; i++) {
        const table_t *t = &cfg->tables[i];
        for (size_t j = 0; j < t->nkeys; j++) {
            const tn_cfg_key_t *k = &t->keys[j];
            char name[128], type[256];
            env_name(k, name, sizeof(name));
            type_text(k, type, sizeof(type));
            fprintf(out, "| `%s` | %s%s%s | %s%s%s | %s |\n", name, type,
                    k->flags & TN_CFG_REQUIRED ? ", required" : "",
                    k->flags & TN_CFG_SECRET ? ", secret" : "", k->def && *k->def ? "`" : "",
                    k->def ? k->def : "", k->def && *k->def ? "`" : "", k->help);
        }
    }
}

tn_cfg_action_t tn_cfg_from_args(tn_cfg_t *cfg, int argc, char **argv, char *const *envp, FILE *out,
                                 FILE *err)
{
    const char *file = NULL;
    int help = 0, print = 0, markdown = 0;
    char errbuf[1024];
    arg_override_t *ov = tn_xcalloc((size_t)argc + 1, sizeof(*ov));
    size_t nov = 0;
    tn_cfg_action_t act = TN_CFG_EXIT_BAD;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help = 1;
        } else if (strcmp(a, "--print-config") == 0) {
            print = 1;
        } else if (strcmp(a, "--list-config") == 0) {
            markdown = 1;
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (i + 1 >= argc) {
                fprintf(err, "%s: --config needs a file name\n", cfg->program);
                goto out;
            }
            file = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            file = a + 9;
        } else if (strncmp(a, "--", 2) == 0 && a[2]) {
            /* --key value, --key=value, or a bare --flag meaning true */
            const char *eq = strchr(a, '=');
            ov[nov].name = a + 2;
            ov[nov].nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (eq)
                ov[nov].value = eq + 1;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                ov[nov].value = argv[++i];
            else
                ov[nov].value = "true";
            nov++;
        } else {
            fprintf(err, "%s: unknown argument \"%s\" (try --help)\n", cfg->program, a);
            goto out;
        }
    }
    if (help) {
        tn_cfg_print_help(cfg, out);
        act = TN_CFG_EXIT_OK;
        goto out;
    }
    if (markdown) {
        tn_cfg_print_markdown(cfg, out);
        act = TN_CFG_EXIT_OK;
        goto out;
    }
    if (load(cfg, file, envp, ov, nov, errbuf, sizeof(errbuf)) != TN_OK) {
        fprintf(err, "%s: configuration error: %s\n", cfg->program, errbuf);
        goto out;
    }
    if (print) {
        tn_cfg_print_effective(cfg, out);
        act = TN_CFG_EXIT_OK;
        goto out;
    }
    act = TN_CFG_RUN;
out:
    free(ov);
    return act;
}
