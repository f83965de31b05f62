/* JSON-lines logger with per-thread context and named debug contexts. */
#include "taina/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "taina/buf.h"
#include "taina/clock.h"

volatile int tn_log_min_level = TN_LOG_INFO;
volatile int tn_log_dbg_mask = 0;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_service[64] = "taina";
static FILE *log_out;

static _Thread_local char ctx_trace[33];
static _Thread_local char ctx_request[65];
static _Thread_local char ctx_action[96];

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal", "off"};

static const struct {
    const char *name;
    int bit;
} dbg_names[] = {
    {"kafka", TN_DBG_KAFKA}, {"http", TN_DBG_HTTP},     {"client", TN_DBG_CLIENT},
    {"db", TN_DBG_DB},       {"config", TN_DBG_CONFIG}, {"audio", TN_DBG_AUDIO},
};

void tn_log_init(const char *service, tn_log_level_t level)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_service, sizeof(log_service), "%s", service ? service : "taina");
    pthread_mutex_unlock(&log_lock);
    tn_log_min_level = (int)level;
}

void tn_log_set_level(tn_log_level_t level)
{
    tn_log_min_level = (int)level;
}

void tn_log_set_output(FILE *f)
{
    pthread_mutex_lock(&log_lock);
    log_out = f;
    pthread_mutex_unlock(&log_lock);
}

tn_err_t tn_log_level_parse(const char *s, tn_log_level_t *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (tn_log_level_t)i;
            return TN_OK;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = TN_LOG_WARN;
        return TN_OK;
    }
    return TN_ERR_INVALID;
}

const char *tn_log_level_name(tn_log_level_t level)
{
    if ((int)level < 0 || (int)level > TN_LOG_OFF)
        return "unknown";
    return level_names[level];
}

tn_err_t tn_log_dbg_parse(const char *s, int *mask, char *errbuf, size_t errlen)
{
    int m = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ", ");
        if (n > 0) {
            int neg = (*p == '-');
            const char *name = p + neg;
            size_t nl = n - (size_t)neg;
            int bit = -1;
            if (nl == 3 && strncmp(name, "all", 3) == 0)
                bit = TN_DBG_ALL;
            for (size_t i = 0; bit < 0 && i < sizeof(dbg_names) / sizeof(dbg_names[0]); i++)
                if (strlen(dbg_names[i].name) == nl && strncmp(name, dbg_names[i].name, nl) == 0)
                    bit = dbg_names[i].bit;
            if (bit < 0) {
                snprintf(errbuf, errlen,
                         "unknown debug context \"%.*s\" (known: all, kafka, http, "
                         "client, db, config, audio)",
                         (int)nl, name);
                return TN_ERR_INVALID;
            }
            m = neg ? (m & ~bit) : (m | bit);
        }
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    *mask = m;
    return TN_OK;
}

void tn_log_set_dbg(int mask)
{
    tn_log_dbg_mask = mask;
}

const char *tn_log_dbg_name(tn_log_dbg_t ctx)
{
    for (size_t i = 0; i < sizeof(dbg_names) / sizeof(dbg_names[0]); i++)
        if (dbg_names[i].bit == (int)ctx)
            return dbg_names[i].name;
    return "all";
}

static void copy_ctx(char *dst, size_t len, const char *s)
{
    if (!s) {
        dst[0] = '\0';
        return;
    }
    snprintf(dst, len, "%s", s);
}

void tn_log_ctx_set_trace(const char *trace_id)
{
    copy_ctx(ctx_trace, sizeof(ctx_trace), trace_id);
}

void tn_log_ctx_set_request(const char *request_id)
{
    copy_ctx(ctx_request, sizeof(ctx_request), request_id);
}

void tn_log_ctx_set_action(const char *action)
{
    copy_ctx(ctx_action, sizeof(ctx_action), action);
}

void tn_log_ctx_clear(void)
{
    ctx_trace[0] = ctx_request[0] = ctx_action[0] = '\0';
}

static tn_err_t add_field(tn_buf_t *b, const char *key, const char *val)
{
    tn_err_t rc = tn_buf_adds(b, ",");
    if (rc == TN_OK)
        rc = tn_buf_add_json_str(b, key);
    if (rc == TN_OK)
        rc = tn_buf_adds(b, ":");
    if (rc == TN_OK)
        rc = tn_buf_add_json_str(b, val ? val : "");
    return rc;
}

void tn_log_write(tn_log_level_t level, const tn_log_field_t *fields, const char *fmt, ...)
{
    char ts[32], msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tn_clock_rfc3339(ts, sizeof(ts), tn_clock_wall_ms());

    /* A line is capped: an enormous field must not make the logger allocate without bound. */
    tn_buf_t b;
    tn_buf_init(&b, 64 * 1024);
    tn_buf_addf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"service\":", ts, tn_log_level_name(level));
    pthread_mutex_lock(&log_lock);
    tn_buf_add_json_str(&b, log_service);
    pthread_mutex_unlock(&log_lock);
    tn_buf_adds(&b, ",\"msg\":");
    tn_buf_add_json_str(&b, msg);
    tn_err_t rc = TN_OK;
    if (ctx_trace[0])
        rc = add_field(&b, "trace_id", ctx_trace);
    if (rc == TN_OK && ctx_request[0])
        rc = add_field(&b, "request_id", ctx_request);
    if (rc == TN_OK && ctx_action[0])
        rc = add_field(&b, "action", ctx_action);
    for (const tn_log_field_t *f = fields; rc == TN_OK && f && f->key; f++)
        rc = add_field(&b, f->key, f->val);
    if (rc == TN_OK)
        rc = tn_buf_adds(&b, "}\n");
    if (rc != TN_OK) {
        /* Too long: say so in a line that is still one valid JSON object. */
        tn_buf_reset(&b);
        tn_buf_addf(&b,
                    "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"log line over 64 KiB dropped\"}\n",
                    ts, tn_log_level_name(level));
    }

    pthread_mutex_lock(&log_lock);
    FILE *out = log_out ? log_out : stderr;
    fwrite(b.data, 1, b.len, out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
    tn_buf_cleanup(&b);
}
