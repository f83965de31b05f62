/* Prometheus metrics: families of labelled series, rendered in text format 0.0.4. */
#include "taina/metrics.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "taina/mem.h"

typedef enum { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM } fam_type_t;

static const char *const fam_type_names[] = {"counter", "gauge", "histogram"};

const double tn_metrics_duration_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,  0.5,    1,     2.5,  5,     10,   30};
const size_t tn_metrics_duration_nbuckets = TN_ARRAY_LEN(tn_metrics_duration_buckets);

typedef struct series {
    char *key;     /* label values joined by \x1f: the lookup and sort key */
    char **values; /* nlabels label values */
    double value;  /* counter, gauge */
    double sum;    /* histogram */
    unsigned long long count;
    unsigned long long *buckets; /* per-bucket (not cumulative) counts */
} series_t;

struct tn_metric {
    char *name;
    char *help;
    fam_type_t type;
    char **labels;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    pthread_mutex_t lock; /* guards the series below; one family never blocks another */
    series_t **series;
    size_t nseries, capseries;
};

typedef struct collector {
    tn_metrics_collect_cb *cb;
    void *opaque;
} collector_t;

struct tn_metrics {
    pthread_mutex_t lock; /* guards the family list and collectors */
    tn_metric_t **fams;
    size_t nfams, capfams;
    collector_t *collectors;
    size_t ncollectors;
};

tn_metrics_t *tn_metrics_new(void)
{
    tn_metrics_t *m = tn_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void series_free(series_t *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s->key);
    free(s);
}

static void family_free(tn_metric_t *f)
{
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f->series[i], f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->series);
    free(f->labels);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void tn_metrics_destroy(tn_metrics_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nfams; i++)
        family_free(m->fams[i]);
    free(m->fams);
    free(m->collectors);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Prometheus metric and label names: [a-zA-Z_:][a-zA-Z0-9_:]* (labels without ':'). */
static int name_ok(const char *s, int allow_colon)
{
    if (!s || !*s || isdigit((unsigned char)*s))
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || (allow_colon && *p == ':')))
            return 0;
    return 1;
}

static size_t count_list(const char *const *l)
{
    size_t n = 0;
    while (l && l[n])
        n++;
    return n;
}

static tn_metric_t *family_get(tn_metrics_t *m, const char *name, const char *help, fam_type_t type,
                               const char *const *labels, const double *bounds, size_t nbounds)
{
    TN_ASSERT(name_ok(name, 1));
    size_t nl = count_list(labels);
    for (size_t i = 0; i < nl; i++)
        TN_ASSERT(name_ok(labels[i], 0) && strncmp(labels[i], "__", 2) != 0 &&
                  strcmp(labels[i], "le") != 0);
    for (size_t i = 1; i < nbounds; i++)
        TN_ASSERT(bounds[i] > bounds[i - 1]);

    pthread_mutex_lock(&m->lock);
    tn_metric_t *f = NULL;
    for (size_t i = 0; i < m->nfams; i++) {
        if (strcmp(m->fams[i]->name, name) == 0) {
            f = m->fams[i];
            /* Registering a name again must mean the same metric. */
            TN_ASSERT(f->type == type && f->nlabels == nl);
            for (size_t j = 0; j < nl; j++)
                TN_ASSERT(strcmp(f->labels[j], labels[j]) == 0);
            pthread_mutex_unlock(&m->lock);
            return f;
        }
    }
    f = tn_xcalloc(1, sizeof(*f));
    f->name = tn_xstrdup(name);
    f->help = tn_xstrdup(help ? help : "");
    f->type = type;
    f->nlabels = nl;
    f->labels = tn_xcalloc(nl ? nl : 1, sizeof(char *));
    for (size_t i = 0; i < nl; i++)
        f->labels[i] = tn_xstrdup(labels[i]);
    if (nbounds) {
        f->bounds = tn_xmalloc(nbounds * sizeof(double));
        memcpy(f->bounds, bounds, nbounds * sizeof(double));
        f->nbounds = nbounds;
    }
    pthread_mutex_init(&f->lock, NULL);
    if (m->nfams == m->capfams) {
        m->capfams = m->capfams ? m->capfams * 2 : 16;
        m->fams = tn_xrealloc(m->fams, m->capfams * sizeof(*m->fams));
    }
    m->fams[m->nfams++] = f;
    pthread_mutex_unlock(&m->lock);
    return f;
}

tn_metric_t *tn_metrics_counter(tn_metrics_t *m, const char *name, const char *help,
                                const char *const *labels)
{
    return family_get(m, name, help, FAM_COUNTER, labels, NULL, 0);
}

tn_metric_t *tn_metrics_gauge(tn_metrics_t *m, const char *name, const char *help,
                              const char *const *labels)
{
    return family_get(m, name, help, FAM_GAUGE, labels, NULL, 0);
}

tn_metric_t *tn_metrics_histogram(tn_metrics_t *m, const char *name, const char *help,
                                  const char *const *labels, const double *buckets, size_t nbuckets)
{
    TN_ASSERT(nbuckets > 0);
    return family_get(m, name, help, FAM_HISTOGRAM, labels, buckets, nbuckets);
}

/* ---------------------------------------------------------------------------------------------
 * Series */

/* The series key of @p values: each value and a 0x1F. Into @p buf when it fits @p cap bytes,
 * else into a new allocation (free it when it is not @p buf). */
static char *join_values(const tn_metric_t *f, const char *const *values, char *buf, size_t cap)
{
    size_t len = 1;
    TN_ASSERT(count_list(values) == f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++)
        len += strlen(values[i]) + 1;
    char *key = len <= cap ? buf : tn_xmalloc(len), *p = key;
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t n = strlen(values[i]);
        memcpy(p, values[i], n);
        p += n;
        *p++ = '\x1f';
    }
    *p = '\0';
    return key;
}

/* Binary search in the sorted series array. @returns index, or -(insert position) - 1. */
static long find_series(const tn_metric_t *f, const char *key)
{
    long lo = 0, hi = (long)f->nseries - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        int c = strcmp(f->series[mid]->key, key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

/* Find or create a series. Called with f->lock held. */
static series_t *series_get(tn_metric_t *f, const char *const *values, int create)
{
    /* the key on the stack: an update of an existing series (nearly all of them, some per
     * record in a pipeline) allocates nothing */
    char kbuf[256];
    char *key = join_values(f, values, kbuf, sizeof(kbuf));
    long idx = find_series(f, key);
    if (idx >= 0 || !create) {
        if (key != kbuf)
            free(key);
        return idx >= 0 ? f->series[idx] : NULL;
    }
    size_t pos = (size_t)(-idx - 1);
    series_t *s = tn_xcalloc(1, sizeof(*s));
    s->key = key == kbuf ? tn_xstrdup(kbuf) : key;
    s->values = tn_xcalloc(f->nlabels ? f->nlabels : 1, sizeof(char *));
    for (size_t i = 0; i < f->nlabels; i++)
        s->values[i] = tn_xstrdup(values[i]);
    if (f->type == FAM_HISTOGRAM)
        s->buckets = tn_xcalloc(f->nbounds, sizeof(*s->buckets));
    if (f->nseries == f->capseries) {
        f->capseries = f->capseries ? f->capseries * 2 : 8;
        f->series = tn_xrealloc(f->series, f->capseries * sizeof(*f->series));
    }
    if (f->nseries > pos)
        memmove(&f->series[pos + 1], &f->series[pos], (f->nseries - pos) * sizeof(*f->series));
    f->series[pos] = s;
    f->nseries++;
    return s;
}

void tn_metric_add(tn_metric_t *f, const char *const *values, double v)
{
    TN_ASSERT(f->type != FAM_HISTOGRAM);
    TN_ASSERT(f->type != FAM_COUNTER || v >= 0);
    pthread_mutex_lock(&f->lock);
    series_get(f, values, 1)->value += v;
    pthread_mutex_unlock(&f->lock);
}

void tn_metric_set(tn_metric_t *f, const char *const *values, double v)
{
    TN_ASSERT(f->type == FAM_GAUGE);
    pthread_mutex_lock(&f->lock);
    series_get(f, values, 1)->value = v;
    pthread_mutex_unlock(&f->lock);
}

void tn_metric_observe(tn_metric_t *f, const char *const *values, double v)
{
    TN_ASSERT(f->type == FAM_HISTOGRAM);
    pthread_mutex_lock(&f->lock);
    series_t *s = series_get(f, values, 1);
    for (size_t i = 0; i < f->nbounds; i++) {
        if (v <= f->bounds[i]) {
            s->buckets[i]++;
            break;
        }
    }
    s->sum += v;
    s->count++;
    pthread_mutex_unlock(&f->lock);
}

double tn_metric_get(tn_metric_t *f, const char *const *values)
{
    pthread_mutex_lock(&f->lock);
    series_t *s = series_get(f, values, 0);
    double v = s ? (f->type == FAM_HISTOGRAM ? s->sum : s->value) : 0;
    pthread_mutex_unlock(&f->lock);
    return v;
}

unsigned long long tn_metric_count(tn_metric_t *f, const char *const *values)
{
    pthread_mutex_lock(&f->lock);
    series_t *s = series_get(f, values, 0);
    unsigned long long n = s ? s->count : 0;
    pthread_mutex_unlock(&f->lock);
    return n;
}

void tn_metric_remove(tn_metric_t *f, const char *const *values)
{
    char kbuf[256];
    char *key = join_values(f, values, kbuf, sizeof(kbuf));
    pthread_mutex_lock(&f->lock);
    long idx = find_series(f, key);
    if (idx >= 0) {
        series_free(f->series[idx], f->nlabels);
        memmove(&f->series[idx], &f->series[idx + 1],
                (f->nseries - (size_t)idx - 1) * sizeof(*f->series));
        f->nseries--;
    }
    pthread_mutex_unlock(&f->lock);
    if (key != kbuf)
        free(key);
}

void tn_metrics_add_collector(tn_metrics_t *m, tn_metrics_collect_cb *cb, void *opaque)
{
    pthread_mutex_lock(&m->lock);
    m->collectors = tn_xrealloc(m->collectors, (m->ncollectors + 1) * sizeof(*m->collectors));
    m->collectors[m->ncollectors].cb = cb;
    m->collectors[m->ncollectors].opaque = opaque;
    m->ncollectors++;
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------------------------------------
 * Rendering */

static void fmt_double(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "NaN");
    else if (isinf(v))
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, len, "%.0f", v);
    else
        snprintf(buf, len, "%.17g", v);
}

/* Escape a label value (\\, \", \n) or, with quote = 0, a HELP text (\\, \n). */
static tn_err_t add_escaped(tn_buf_t *b, const char *s, int quote)
{
    tn_err_t rc = TN_OK;
    for (const char *p = s; rc == TN_OK && *p; p++) {
        if (*p == '\\')
            rc = tn_buf_add(b, "\\\\", 2);
        else if (*p == '\n')
            rc = tn_buf_add(b, "\\n", 2);
        else if (quote && *p == '"')
            rc = tn_buf_add(b, "\\\"", 2);
        else
            rc = tn_buf_add(b, p, 1);
    }
    return rc;
}

/* name{l1="v1",...[,le="x"]} value\n */
static tn_err_t add_sample(tn_buf_t *b, const tn_metric_t *f, const series_t *s, const char *suffix,
                           const char *le, double v)
{
    char num[64];
    tn_err_t rc = tn_buf_addf(b, "%s%s", f->name, suffix);
    if (rc == TN_OK && (f->nlabels || le)) {
        rc = tn_buf_add(b, "{", 1);
        for (size_t i = 0; rc == TN_OK && i < f->nlabels; i++) {
            rc = tn_buf_addf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
            if (rc == TN_OK)
                rc = add_escaped(b, s->values[i], 1);
            if (rc == TN_OK)
                rc = tn_buf_add(b, "\"", 1);
        }
        if (rc == TN_OK && le)
            rc = tn_buf_addf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
        if (rc == TN_OK)
            rc = tn_buf_add(b, "}", 1);
    }
    fmt_double(num, sizeof(num), v);
    if (rc == TN_OK)
        rc = tn_buf_addf(b, " %s\n", num);
    return rc;
}

static tn_err_t render_family(tn_buf_t *b, tn_metric_t *f)
{
    tn_err_t rc = tn_buf_addf(b, "# HELP %s ", f->name);
    if (rc == TN_OK)
        rc = add_escaped(b, f->help, 0);
    if (rc == TN_OK)
        rc = tn_buf_addf(b, "\n# TYPE %s %s\n", f->name, fam_type_names[f->type]);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; rc == TN_OK && i < f->nseries; i++) {
        const series_t *s = f->series[i];
        if (f->type != FAM_HISTOGRAM) {
            rc = add_sample(b, f, s, "", NULL, s->value);
            continue;
        }
        unsigned long long cum = 0;
        char le[64];
        for (size_t j = 0; rc == TN_OK && j < f->nbounds; j++) {
            cum += s->buckets[j];
            fmt_double(le, sizeof(le), f->bounds[j]);
            rc = add_sample(b, f, s, "_bucket", le, (double)cum);
        }
        if (rc == TN_OK)
            rc = add_sample(b, f, s, "_bucket", "+Inf", (double)s->count);
        if (rc == TN_OK)
            rc = add_sample(b, f, s, "_sum", NULL, s->sum);
        if (rc == TN_OK)
            rc = add_sample(b, f, s, "_count", NULL, (double)s->count);
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* The boot time, read once: /proc/stat is long (a line of interrupt counts) and costly to
 * generate, and reading it on every scrape was most of a scrape's CPU. */
static double btime;
static pthread_once_t btime_once = PTHREAD_ONCE_INIT;

static void read_btime(void)
{
    FILE *st = fopen("/proc/stat", "r");
    if (!st)
        return;
    char line[256];
    while (fgets(line, sizeof(line), st))
        if (sscanf(line, "btime %lf", &btime) == 1)
            break;
    fclose(st);
}

/* Process metrics from /proc, with the standard client-library names. */
static void collect_process(tn_metrics_t *m)
{
    static const char *const none[] = {NULL};
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* Fields after the command name, which may hold spaces: start after the last ')'. */
        char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0, vsize = 0;
        unsigned long long start = 0;
        long rss = 0;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                        "%*d %*d %llu %lu %ld",
                        &utime, &stime, &start, &vsize, &rss) == 5) {
            tn_metric_set(tn_metrics_gauge(m, "process_resident_memory_bytes",
                                           "Resident memory size in bytes.", none),
                          none, (double)rss * (double)page);
            tn_metric_set(tn_metrics_gauge(m, "process_virtual_memory_bytes",
                                           "Virtual memory size in bytes.", none),
                          none, (double)vsize);
            tn_metric_t *cpu = tn_metrics_counter(m, "process_cpu_seconds_total",
                                                  "Total user and system CPU time spent in "
                                                  "seconds.",
                                                  none);
            pthread_mutex_lock(&cpu->lock);
            series_get(cpu, none, 1)->value = (double)(utime + stime) / (double)ticks;
            pthread_mutex_unlock(&cpu->lock);
            pthread_once(&btime_once, read_btime);
            tn_metric_set(tn_metrics_gauge(m, "process_start_time_seconds",
                                           "Start time of the process since unix epoch in "
                                           "seconds.",
                                           none),
                          none, btime + (double)start / (double)ticks);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = -1; /* the DIR's own descriptor */
        while (readdir(d))
            fds++;
        closedir(d);
        tn_metric_set(
            tn_metrics_gauge(m, "process_open_fds", "Number of open file descriptors.", none), none,
            (double)(fds - 2)); /* . and .. */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        tn_metric_set(tn_metrics_gauge(m, "process_max_fds",
                                       "Maximum number of open file descriptors.", none),
                      none, (double)rl.rlim_cur);
}

static int cmp_family(const void *a, const void *b)
{
    return strcmp((*(tn_metric_t *const *)a)->name, (*(tn_metric_t *const *)b)->name);
}

tn_err_t tn_metrics_render(tn_metrics_t *m, tn_buf_t *out)
{
    pthread_mutex_lock(&m->lock);
    size_t nc = m->ncollectors;
    collector_t *cs = tn_xmalloc((nc ? nc : 1) * sizeof(*cs));
    if (nc)
        memcpy(cs, m->collectors, nc * sizeof(*cs));
    pthread_mutex_unlock(&m->lock);
    /* Collectors register and set metrics, so they run without the registry lock. */
    collect_process(m);
    for (size_t i = 0; i < nc; i++)
        cs[i].cb(m, cs[i].opaque);
    free(cs);

    pthread_mutex_lock(&m->lock);
    size_t n = m->nfams;
    tn_metric_t **fams = tn_xmalloc((n ? n : 1) * sizeof(*fams));
    if (n)
        memcpy(fams, m->fams, n * sizeof(*fams));
    pthread_mutex_unlock(&m->lock);
    qsort(fams, n, sizeof(*fams), cmp_family);
    tn_err_t rc = TN_OK;
    for (size_t i = 0; rc == TN_OK && i < n; i++)
        rc = render_family(out, fams[i]);
    free(fams);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * CloudWatch Embedded Metric Format: one JSON document per line (CONTRACTS.md section 7) */

int tn_metrics_emf_namespace_ok(const char *ns)
{
    size_t n = ns ? strlen(ns) : 0;
    if (n == 0 || n > 256)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)ns[i]) && !strchr("._#:/-", ns[i]))
            return 0;
    return 1;
}

/* A dimension value: non-empty, at most 1024 bytes, ASCII (CONTRACTS.md 7.1). */
static int emf_dim_ok(const char *v)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0 || n > 1024)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] >= 0x80)
            return 0;
    return 1;
}

tn_err_t tn_metrics_emf_lag(tn_buf_t *out, const tn_metrics_emf_lag_t *r)
{
    tn_err_t rc = TN_ERR_INVALID;
    json_t *doc = NULL;
    char *text = NULL;
    if (!tn_metrics_emf_namespace_ok(r->ns) || !emf_dim_ok(r->service) || !emf_dim_ok(r->group) ||
        !isfinite(r->lag_sum))
        goto out;
    /* Members in this order: _aws first, then the dimensions, then the metric
     * (JSON_PRESERVE_ORDER), so a person reading the log sees the same shape as the contract. */
    /* A lag is a whole number of records: written as an integer when it is one. */
    json_t *value = r->lag_sum == floor(r->lag_sum) && fabs(r->lag_sum) < 9e15
                        ? json_integer((json_int_t)r->lag_sum)
                        : json_real(r->lag_sum);
    doc = json_pack("{s:{s:I,s:[{s:s,s:[[s,s]],s:[{s:s,s:s}]}]},s:s,s:s,s:s,s:o}", "_aws",
                    "Timestamp", (json_int_t)r->timestamp_ms, "CloudWatchMetrics", "Namespace",
                    r->ns, "Dimensions", "Service", "ConsumerGroup", "Metrics", "Name",
                    "ConsumerLagSum", "Unit", "Count", "Service", r->service, "ConsumerGroup",
                    r->group, "Topic", r->topic ? r->topic : "", "ConsumerLagSum", value);
    if (!doc)
        goto out;
    text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    if (!text)
        goto out;
    rc = tn_buf_addf(out, "%s\n", text);
out:
    free(text);
    json_decref(doc);
    return rc;
}
