/* taina-replay: topic replay, dead-letter re-drive, consumer offsets and lag, Qdrant reindex.
 * Shared declarations of the tool's files:
 *   main.c     the commands, their options (a config table: --from or TAINA_REPLAY_FROM) and
 *              the checks of which option goes with which command; help texts
 *   args.c     parsing of option values: positions (beginning|now|OFFSET|TIME), partition
 *              lists, rates, shifts; progress lines on stderr
 *   copy.c     copy and dlq: read ranges, filter, produce with taina-replay-of
 *   offsets.c  lag and reset-offsets
 *   reindex.c  reindex: tickets.embedded -> a new Qdrant collection, verify, switch the alias
 */
#ifndef REPLAY_H
#define REPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "taina/app.h"
#include "taina/kafka.h"
#include "taina/kafka_admin.h"
#include "taina/qdrant.h"

enum { CMD_COPY, CMD_RESET, CMD_REINDEX, CMD_LAG, CMD_DLQ, CMD_COUNT };
extern const char *const replay_commands[];

typedef struct replay_cfg {
    int command; /* CMD_* */
    char *from, *to, *partitions, *start, *end, *tenant, *rate, *reason;
    bool dry_run, json, execute, swap, force, any_source;
    char *group, *topic, *to_datetime, *to_offset, *shift_by;
    bool to_earliest, to_latest;
    char *collection, *alias, *source, *model;
    int64_t batch, join_timeout_ms;
    char *qdrant_url, *qdrant_api_key;
    int64_t qdrant_timeout_ms;
} replay_cfg_t;

typedef struct replay {
    tn_app_t *app;
    const replay_cfg_t *cfg;
    tn_kafka_opts_t kopts;
    FILE *out; /* results (stdout) */
    FILE *err; /* progress and messages (stderr) */
} replay_t;

/* args.c */

/** A position in a partition: the log start, the end as of now, an offset or a time. */
typedef struct replay_pos {
    enum { POS_BEGINNING, POS_NOW, POS_OFFSET, POS_TIME } kind;
    int64_t value; /* offset, or epoch ms */
} replay_pos_t;

/** Parse beginning|now|OFFSET|RFC 3339 time. 0, or -1 with a sentence in @p err. */
int replay_parse_pos(const char *s, replay_pos_t *p, char *err, size_t errlen);
/** Parse an RFC 3339 time ("2026-11-24T10:00:00Z", "...T10:00:00.250+01:00", "2026-11-24"). */
int replay_parse_time(const char *s, int64_t *ms);
/**
 * Parse "0,2,5-7" into a mask of @p n partitions (NULL or "" = all). 0, or -1 with a sentence
 * (a partition the topic does not have is an error).
 */
int replay_parse_partitions(const char *s, int32_t n, bool *mask, char *err, size_t errlen);
/** Parse a rate "500", "500/s" or "30/m" into records per second (0 = unlimited). */
int replay_parse_rate(const char *s, double *per_s, char *err, size_t errlen);
/** Parse a signed integer (the whole string). */
int replay_parse_i64(const char *s, int64_t *v);

/** Progress on stderr: at most one line per second, and a last one. */
typedef struct replay_progress {
    const char *what;
    uint64_t done, total;
    double t0, last;
} replay_progress_t;
void replay_progress_start(replay_progress_t *p, const char *what, uint64_t total);
void replay_progress_tick(replay_t *rp, replay_progress_t *p, bool last);
/** Wait so that @p done records since @p t0 do not exceed @p per_s (0 = no limit). */
void replay_rate_wait(double per_s, uint64_t done, double t0);

/* copy.c */
tn_err_t replay_copy_run(replay_t *rp);
tn_err_t replay_dlq_run(replay_t *rp);

/* offsets.c */
tn_err_t replay_lag_run(replay_t *rp);
tn_err_t replay_reset_run(replay_t *rp);

/* reindex.c */
tn_err_t replay_reindex_run(replay_t *rp);

#endif
