/**
 * @file metrics.h
 * @brief Prometheus metrics: counters, gauges and histograms with labels, text format 0.0.4.
 *
 * Also the CloudWatch Embedded Metric Format line of the consumer lag (tn_metrics_emf_lag()).
 *
 * A registry (tn_metrics_t) holds metric families. A family has a name, help text, a type and
 * a fixed list of label names; each distinct tuple of label values is one series, created on
 * first use. Names follow DESIGN.md: prefix `taina_`, base units, counters end in `_total`.
 *
 *     tn_metric_t *recs = tn_metrics_counter(m, "taina_records_consumed_total",
 *                                            "Records consumed.", TN_LABELS("topic"));
 *     tn_metric_add(recs, TN_LABELS("tickets.raw"), 1);
 *
 * @thread Every function is thread-safe. Updates to an existing series take no global lock.
 */
#ifndef TAINA_METRICS_H
#define TAINA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "taina/buf.h"
#include "taina/err.h"

typedef struct tn_metrics tn_metrics_t;
typedef struct tn_metric tn_metric_t;

/** A NULL-terminated list of label names or values: TN_LABELS("topic", "reason"). */
#define TN_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})
/** No labels. */
#define TN_NOLABELS ((const char *const[]){NULL})

/** Default histogram buckets for durations in seconds (1 ms .. 30 s). */
extern const double tn_metrics_duration_buckets[];
extern const size_t tn_metrics_duration_nbuckets;

/** @brief A new empty registry. Caller owns the result; free with tn_metrics_destroy(). */
tn_metrics_t *tn_metrics_new(void);
/** @brief Free the registry and all its families. NULL ok. Families become invalid. */
void tn_metrics_destroy(tn_metrics_t *m);

/**
 * @brief Register (or find) a counter family. Registering an existing name with the same
 *        type and labels returns the existing family; a conflicting one is a bug (assert).
 * @param labels NULL-terminated label names (copied); TN_NOLABELS for none.
 * @returns the family. Borrowed; valid until tn_metrics_destroy().
 */
tn_metric_t *tn_metrics_counter(tn_metrics_t *m, const char *name, const char *help,
                                const char *const *labels);
/** @brief Register (or find) a gauge family. See tn_metrics_counter(). */
tn_metric_t *tn_metrics_gauge(tn_metrics_t *m, const char *name, const char *help,
                              const char *const *labels);
/**
 * @brief Register (or find) a histogram family with @p nbuckets ascending upper bounds
 *        (copied; +Inf is implicit).
 */
tn_metric_t *tn_metrics_histogram(tn_metrics_t *m, const char *name, const char *help,
                                  const char *const *labels, const double *buckets,
                                  size_t nbuckets);

/** @brief Add @p v (>= 0 for counters) to the series with label values @p values. */
void tn_metric_add(tn_metric_t *f, const char *const *values, double v);
/** @brief Set a gauge series to @p v. */
void tn_metric_set(tn_metric_t *f, const char *const *values, double v);
/** @brief Record one observation in a histogram series. */
void tn_metric_observe(tn_metric_t *f, const char *const *values, double v);
/** @brief The current value of a counter or gauge series (0 if it does not exist). Tests. */
double tn_metric_get(tn_metric_t *f, const char *const *values);
/** @brief Count of observations in a histogram series (0 if it does not exist). Tests. */
unsigned long long tn_metric_count(tn_metric_t *f, const char *const *values);
/** @brief Remove a series (e.g. the lag gauge of a partition this consumer lost). */
void tn_metric_remove(tn_metric_t *f, const char *const *values);

/**
 * A collector runs at the start of every render, to set gauges computed on demand
 * (process memory, queue depths). @thread Runs on the rendering thread.
 */
typedef void(tn_metrics_collect_cb)(tn_metrics_t *m, void *opaque);
/** @brief Add a collector. @p opaque is borrowed and must outlive the registry. */
void tn_metrics_add_collector(tn_metrics_t *m, tn_metrics_collect_cb *cb, void *opaque);

/**
 * @brief Append the Prometheus text exposition (format 0.0.4) of every family to @p out:
 *        `# HELP`, `# TYPE`, series sorted by family name, label values escaped.
 *        Also includes process metrics (`process_resident_memory_bytes`,
 *        `process_cpu_seconds_total`, `process_start_time_seconds`, `process_open_fds`).
 * @returns TN_OK or TN_ERR_TOO_LARGE when @p out's cap is reached.
 */
tn_err_t tn_metrics_render(tn_metrics_t *m, tn_buf_t *out);

/* ------------------------------------------------------------------------------------------ */
/* CloudWatch Embedded Metric Format (CONTRACTS.md section 7)                                  */

/** Default EMF namespace (TAINA_METRICS_EMF_NAMESPACE). */
#define TN_METRICS_EMF_NAMESPACE "Taina"

/** One consumer-lag data point for ECS target tracking. All strings borrowed during the call. */
typedef struct tn_metrics_emf_lag {
    const char *ns;       /**< CloudWatch namespace, e.g. "Taina" */
    const char *service;  /**< dimension `Service` ("embedder") */
    const char *group;    /**< dimension `ConsumerGroup` */
    const char *topic;    /**< member `Topic` (searchable, not a dimension) */
    double lag_sum;       /**< metric `ConsumerLagSum` (Unit Count): records behind, summed */
    int64_t timestamp_ms; /**< `_aws.Timestamp`, ms since the epoch */
} tn_metrics_emf_lag_t;

/**
 * @brief Append one EMF document for @p r to @p out as a single line ending in '\n':
 *        `{"_aws":{"Timestamp":T,"CloudWatchMetrics":[{"Namespace":NS,
 *        "Dimensions":[["Service","ConsumerGroup"]],"Metrics":[{"Name":"ConsumerLagSum",
 *        "Unit":"Count"}]}]},"Service":S,"ConsumerGroup":G,"Topic":T,"ConsumerLagSum":N}`.
 * @returns TN_OK; TN_ERR_INVALID for a namespace that CloudWatch refuses (see
 *          tn_metrics_emf_namespace_ok()), an empty dimension value or a non-finite value;
 *          TN_ERR_TOO_LARGE when @p out's cap is reached.
 */
tn_err_t tn_metrics_emf_lag(tn_buf_t *out, const tn_metrics_emf_lag_t *r);

/** @brief Whether @p ns is a valid CloudWatch namespace: 1..256 of [A-Za-z0-9._#:/-]. */
int tn_metrics_emf_namespace_ok(const char *ns);

#endif
