/* taina-replay: the commands, their options and help, wired on tn_app_main. Every option is a
 * key of the "replay" table, so `--from X` and TAINA_REPLAY_FROM=X both work (a Kubernetes Job
 * can be configured from its environment alone); main() turns the command word into
 * `--command WORD` and checks which options go with which command. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "replay.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

const char *const replay_commands[] = {"copy", "reset-offsets", "reindex", "lag", "dlq", NULL};

#define KEY(name, type, field, def, help)                                                          \
    {                                                                                              \
        name, type, offsetof(replay_cfg_t, field), def, 0, help, 0, 0, NULL                        \
    }

static const tn_cfg_key_t replay_keys[] = {
    {"replay_command", TN_CFG_ENUM, offsetof(replay_cfg_t, command), "copy", 0,
     "The command (the first argument): copy, reset-offsets, reindex, lag, dlq", 0, 0,
     replay_commands},
    KEY("replay_from", TN_CFG_STRING, from, "", "copy, dlq: topic to read"),
    KEY("replay_to", TN_CFG_STRING, to, "", "copy, dlq: topic to write"),
    KEY("replay_partitions", TN_CFG_STRING, partitions, "",
        "copy, dlq: source partitions, e.g. 0,2,4-5 (default all)"),
    KEY("replay_start", TN_CFG_STRING, start, "", "copy, dlq: beginning | OFFSET | RFC 3339 time"),
    KEY("replay_end", TN_CFG_STRING, end, "",
        "copy, dlq: now | OFFSET (exclusive) | RFC 3339 time"),
    KEY("replay_tenant", TN_CFG_STRING, tenant, "",
        "copy, dlq: only records whose JSON value has this tenant_id"),
    KEY("replay_rate", TN_CFG_STRING, rate, "", "copy, dlq: at most N records/s (N, N/s or N/m)"),
    KEY("replay_dry_run", TN_CFG_BOOL, dry_run, "false",
        "copy, dlq: count what would be copied, write nothing"),
    KEY("replay_reason", TN_CFG_STRING, reason, "", "dlq: only dead letters with this taina-error"),
    KEY("replay_any_source", TN_CFG_BOOL, any_source, "false",
        "dlq: also re-drive dead letters whose taina-source-topic is not --to"),
    KEY("replay_group", TN_CFG_STRING, group, "", "lag, reset-offsets: consumer group"),
    KEY("replay_topic", TN_CFG_STRING, topic, "",
        "reset-offsets: topic (required); lag: only this topic"),
    KEY("replay_to_datetime", TN_CFG_STRING, to_datetime, "",
        "reset-offsets: to the first record at or after this RFC 3339 time"),
    KEY("replay_to_offset", TN_CFG_STRING, to_offset, "", "reset-offsets: to this offset"),
    KEY("replay_shift_by", TN_CFG_STRING, shift_by, "",
        "reset-offsets: move the committed offsets by N (negative: back)"),
    KEY("replay_to_earliest", TN_CFG_BOOL, to_earliest, "false", "reset-offsets: to the log start"),
    KEY("replay_to_latest", TN_CFG_BOOL, to_latest, "false", "reset-offsets: to the log end"),
    KEY("replay_execute", TN_CFG_BOOL, execute, "false",
        "reset-offsets: apply (default: dry run, print the plan)"),
    KEY("replay_json", TN_CFG_BOOL, json, "false", "lag, reset-offsets: print JSON"),
    {"replay_join_timeout", TN_CFG_DURATION, offsetof(replay_cfg_t, join_timeout_ms), "60s", 0,
     "reset-offsets on a cluster without group admin (devstack): how long joining may take", 1000,
     3600000, NULL},
    KEY("replay_collection", TN_CFG_STRING, collection, "", "reindex: the new collection"),
    KEY("replay_alias", TN_CFG_STRING, alias, "taina-chunks",
        "reindex: the alias readers use (TAINA_QDRANT_COLLECTION of rag)"),
    KEY("replay_source", TN_CFG_STRING, source, "tickets.embedded",
        "reindex: the topic of chunk vectors"),
    KEY("replay_model", TN_CFG_STRING, model, "",
        "reindex: only vectors of this model (needed when the topic holds several)"),
    KEY("replay_swap", TN_CFG_BOOL, swap, "false",
        "reindex: switch the alias to the new collection once verified"),
    KEY("replay_force", TN_CFG_BOOL, force, "false",
        "reindex: swap even when the source topic lost its start (retention)"),
    {"replay_batch", TN_CFG_INT, offsetof(replay_cfg_t, batch), "256", 0,
     "reindex: points per upsert", 1, 100000, NULL},
    KEY("qdrant_url", TN_CFG_STRING, qdrant_url, "http://127.0.0.1:6333", "Qdrant REST URL"),
    {"qdrant_api_key", TN_CFG_STRING, offsetof(replay_cfg_t, qdrant_api_key), "", TN_CFG_SECRET,
     "Qdrant API key", 0, 0, NULL},
    {"qdrant_timeout", TN_CFG_DURATION, offsetof(replay_cfg_t, qdrant_timeout_ms), "30s", 0,
     "Deadline of one Qdrant call, retries included", 100, 600000, NULL},
};

/* Which options each command takes (bit per CMD_*). */
#define B(c) (1u << (c))
typedef struct opt_use {
    const char *flag;
    size_t field;
    int is_bool;
    unsigned cmds;
} opt_use_t;

#define USE_S(flag, field, cmds)                                                                   \
    {                                                                                              \
        flag, offsetof(replay_cfg_t, field), 0, cmds                                               \
    }
#define USE_B(flag, field, cmds)                                                                   \
    {                                                                                              \
        flag, offsetof(replay_cfg_t, field), 1, cmds                                               \
    }
static const opt_use_t uses[] = {
    USE_S("--from", from, B(CMD_COPY) | B(CMD_DLQ)),
    USE_S("--to", to, B(CMD_COPY) | B(CMD_DLQ)),
    USE_S("--partitions", partitions, B(CMD_COPY) | B(CMD_DLQ)),
    USE_S("--start", start, B(CMD_COPY) | B(CMD_DLQ)),
    USE_S("--end", end, B(CMD_COPY) | B(CMD_DLQ)),
    USE_S("--tenant", tenant, B(CMD_COPY) | B(CMD_DLQ)),
    USE_S("--rate", rate, B(CMD_COPY) | B(CMD_DLQ)),
    USE_B("--dry-run", dry_run, B(CMD_COPY) | B(CMD_DLQ)),
    USE_S("--reason", reason, B(CMD_DLQ)),
    USE_B("--any-source", any_source, B(CMD_DLQ)),
    USE_S("--group", group, B(CMD_LAG) | B(CMD_RESET)),
    USE_S("--topic", topic, B(CMD_LAG) | B(CMD_RESET)),
    USE_S("--to-datetime", to_datetime, B(CMD_RESET)),
    USE_S("--to-offset", to_offset, B(CMD_RESET)),
    USE_S("--shift-by", shift_by, B(CMD_RESET)),
    USE_B("--to-earliest", to_earliest, B(CMD_RESET)),
    USE_B("--to-latest", to_latest, B(CMD_RESET)),
    USE_B("--execute", execute, B(CMD_RESET)),
    USE_B("--json", json, B(CMD_LAG) | B(CMD_RESET)),
    USE_S("--collection", collection, B(CMD_REINDEX)),
    USE_S("--model", model, B(CMD_REINDEX)),
    USE_B("--swap", swap, B(CMD_REINDEX)),
    USE_B("--force", force, B(CMD_REINDEX)),
};

static const char *const usage_text[CMD_COUNT] = {
    [CMD_COPY] =
        "usage: taina-replay copy --from T1 --to T2 [--partitions 0,2-3]\n"
        "           [--start beginning|OFFSET|TIME] [--end now|OFFSET|TIME] [--tenant X]\n"
        "           [--rate N/s] [--dry-run]\n\n"
        "Copies the records of T1 (keys, values, headers) to T2 with an idempotent producer,\n"
        "adding the header taina-replay-of: T1/PARTITION/OFFSET. Per-partition order is kept:\n"
        "when T1 and T2 have the same number of partitions a record stays in its partition\n"
        "number; otherwise it goes by key (murmur2, as Kafka's default partitioner), and a\n"
        "record without key to partition (source partition mod count).\n"
        "--start/--end: offsets (end exclusive) or RFC 3339 times (2026-11-24T10:00:00Z); a time\n"
        "is looked up per partition and records are also filtered by their own timestamp (on\n"
        "devstack the lookup scans, since its broker answers the end offset). --end now: the\n"
        "end offsets when the copy starts. --tenant: only records whose JSON value has that\n"
        "tenant_id. Progress (rate, done/total, ETA) on stderr, a summary on stdout.\n",
    [CMD_RESET] =
        "usage: taina-replay reset-offsets --group G --topic T\n"
        "           (--to-datetime TIME | --to-offset N | --shift-by N | --to-earliest |\n"
        "            --to-latest) [--execute] [--json]\n\n"
        "Prints, per partition, the committed offset, the new one, the log end and the lag\n"
        "after the reset. Nothing changes without --execute, which refuses while the group has\n"
        "active members (stop the service first). New offsets are clamped to the log.\n",
    [CMD_REINDEX] =
        "usage: taina-replay reindex --collection NEW [--alias taina-chunks] [--swap]\n"
        "           [--source tickets.embedded] [--model M] [--force]\n\n"
        "Builds Qdrant collection NEW from tickets.embedded without re-embedding: per point the\n"
        "latest record wins, chunks a ticket no longer has and deleted tickets stay out.\n"
        "Then checks the point count of NEW against the log, and with --swap points ALIAS at\n"
        "NEW in one atomic alias request (readers such as rag use the alias and never see a\n"
        "gap). The old collection is kept: switch back with the same command, or delete it.\n"
        "Re-embedding with a new model is a replay instead: start an embedder with the new\n"
        "model, TAINA_QDRANT_COLLECTION=NEW and a new group, then `copy` (or a reset of its\n"
        "group) of tickets.enriched feeds it; swap with `reindex ... --swap` when it caught up.\n",
    [CMD_LAG] = "usage: taina-replay lag --group G [--topic T] [--json]\n\n"
                "Per partition: committed offset, high watermark and lag; then the sum. Without\n"
                "--topic, every topic where the group committed an offset.\n",
    [CMD_DLQ] =
        "usage: taina-replay dlq [--from tickets.dlq] [--to tickets.raw] [--reason CODE]\n"
        "           [--any-source] [--partitions ..] [--start ..] [--end ..] [--rate N/s]\n"
        "           [--dry-run]\n\n"
        "Re-drives dead letters after a fix: copies them to --to without the taina-error*\n"
        "and taina-source-* headers, with taina-replay-of: tickets.dlq/PARTITION/OFFSET.\n"
        "Only dead letters whose taina-source-topic is --to (an enriched record failed by the\n"
        "embedder does not belong in tickets.raw), unless --any-source; with --reason, only\n"
        "those whose taina-error is CODE.\n",
};

static const char *const settings_text =
    "\nConnection settings (environment or --key-name VALUE): TAINA_KAFKA_BROKERS,\n"
    "TAINA_KAFKA_<PROPERTY> for SASL/TLS (TAINA_KAFKA_SECURITY_PROTOCOL=SASL_SSL ...),\n"
    "TAINA_QDRANT_URL, TAINA_QDRANT_API_KEY. Every option is also TAINA_REPLAY_<OPTION>.\n"
    "Exit codes: 0 done, 2 bad usage or configuration, 1 failure (or refused).\n"
    "All keys: taina-replay --help\n";

static void print_top_usage(FILE *f)
{
    fprintf(f, "usage: taina-replay COMMAND [options]   (taina-replay COMMAND --help)\n\n"
               "  copy           copy records between topics (offset or time range)\n"
               "  dlq            re-drive dead letters after a fix\n"
               "  lag            committed offsets, high watermarks and lag of a group\n"
               "  reset-offsets  move a stopped group's committed offsets (dry run by default)\n"
               "  reindex        build a Qdrant collection from tickets.embedded, switch the "
               "alias\n");
}

static int cmd_index(const char *s)
{
    for (int i = 0; replay_commands[i]; i++)
        if (!strcmp(s, replay_commands[i]))
            return i;
    return -1;
}

static const char *field_str(const replay_cfg_t *c, size_t off)
{
    return *(char *const *)((const char *)c + off);
}

/* Options that do not belong to the command, and what each command needs. */
static int check_usage(const replay_cfg_t *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < TN_ARRAY_LEN(uses); i++) {
        const opt_use_t *u = &uses[i];
        int set = u->is_bool ? *(const bool *)((const char *)c + u->field)
                             : (field_str(c, u->field) && *field_str(c, u->field));
        if (set && !(u->cmds & B(c->command))) {
            snprintf(err, errlen, "%s does not apply to %s", u->flag, replay_commands[c->command]);
            return -1;
        }
    }
    /* Values that need no cluster to be judged. */
    replay_pos_t pos;
    double rate;
    int64_t v;
    bool mask[1024];
    if ((*c->start && replay_parse_pos(c->start, &pos, err, errlen)) ||
        (*c->end && replay_parse_pos(c->end, &pos, err, errlen)) ||
        replay_parse_rate(c->rate, &rate, err, errlen) ||
        replay_parse_partitions(c->partitions, (int32_t)TN_ARRAY_LEN(mask), mask, err, errlen))
        return -1;
    if (*c->to_offset && (replay_parse_i64(c->to_offset, &v) || v < 0)) {
        snprintf(err, errlen, "--to-offset \"%s\" is not an offset", c->to_offset);
        return -1;
    }
    if (*c->shift_by && replay_parse_i64(c->shift_by, &v)) {
        snprintf(err, errlen, "--shift-by \"%s\" is not an integer", c->shift_by);
        return -1;
    }
    if (*c->to_datetime && replay_parse_time(c->to_datetime, &v)) {
        snprintf(err, errlen, "--to-datetime \"%s\" is not an RFC 3339 time (2026-11-24T10:00:00Z)",
                 c->to_datetime);
        return -1;
    }
    switch (c->command) {
    case CMD_COPY:
        if (!*c->from || !*c->to) {
            snprintf(err, errlen, "copy needs --from and --to");
            return -1;
        }
        if (!strcmp(c->from, c->to)) {
            snprintf(err, errlen, "--from and --to are the same topic");
            return -1;
        }
        break;
    case CMD_DLQ:
        break;
    case CMD_LAG:
        if (!*c->group) {
            snprintf(err, errlen, "lag needs --group");
            return -1;
        }
        break;
    case CMD_RESET: {
        int n = (*c->to_datetime != 0) + (*c->to_offset != 0) + (*c->shift_by != 0) +
                c->to_earliest + c->to_latest;
        if (!*c->group || !*c->topic) {
            snprintf(err, errlen, "reset-offsets needs --group and --topic");
            return -1;
        }
        if (n != 1) {
            snprintf(err, errlen,
                     "reset-offsets needs exactly one of --to-datetime, --to-offset, --shift-by, "
                     "--to-earliest, --to-latest");
            return -1;
        }
        break;
    }
    case CMD_REINDEX:
        if (!*c->collection || !*c->alias) {
            snprintf(err, errlen, "reindex needs --collection (and --alias)");
            return -1;
        }
        if (!strcmp(c->collection, c->alias)) {
            snprintf(err, errlen, "--collection and --alias must differ");
            return -1;
        }
        break;
    default:
        break;
    }
    return 0;
}

static tn_err_t replay_init(tn_app_t *app, void *cfgp, void **state)
{
    replay_cfg_t *cfg = cfgp;
    char err[512];
    *state = NULL;
    if (cfg->command == CMD_DLQ) { /* defaults of the re-drive */
        if (!*cfg->from) {
            free(cfg->from);
            cfg->from = tn_xstrdup("tickets.dlq");
        }
        if (!*cfg->to) {
            free(cfg->to);
            cfg->to = tn_xstrdup("tickets.raw");
        }
    }
    if (check_usage(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "taina-replay: %s (see taina-replay %s --help)\n", err,
                replay_commands[cfg->command]);
        return TN_ERR_CONFIG;
    }
    replay_t *rp = tn_xcalloc(1, sizeof(*rp));
    rp->app = app;
    rp->cfg = cfg;
    rp->kopts = tn_app_kafka_opts(app, "taina-replay");
    rp->kopts.metrics = NULL; /* a one-shot tool: nobody scrapes it */
    rp->kopts.stats_interval_ms = 0;
    rp->out = stdout;
    rp->err = stderr;
    *state = rp;
    return TN_OK;
}

static tn_err_t replay_run(tn_app_t *app, void *state)
{
    (void)app;
    replay_t *rp = state;
    switch (rp->cfg->command) {
    case CMD_COPY:
        return replay_copy_run(rp);
    case CMD_DLQ:
        return replay_dlq_run(rp);
    case CMD_LAG:
        return replay_lag_run(rp);
    case CMD_RESET:
        return replay_reset_run(rp);
    case CMD_REINDEX:
        return replay_reindex_run(rp);
    default:
        return TN_ERR_INVALID;
    }
}

static void replay_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    free(state);
}

static const tn_app_def_t def = {
    .name = "replay",
    .summary = "topic replay, dead-letter re-drive, group offsets and lag, Qdrant reindex",
    .features = TN_APP_KAFKA,
    .keys = replay_keys,
    .nkeys = TN_ARRAY_LEN(replay_keys),
    .cfg_size = sizeof(replay_cfg_t),
    .init = replay_init,
    .run = replay_run,
    .shutdown = replay_shutdown,
};

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        print_top_usage(argc < 2 ? stderr : stdout);
        if (argc < 2)
            return 2;
        printf("\nEvery key (environment TAINA_<KEY>, or --key-name VALUE):\n");
        char *help_argv[] = {argv[0], "--help", NULL};
        return tn_app_main(&def, 2, help_argv, environ);
    }
    int cmd = cmd_index(argv[1]);
    if (cmd < 0) {
        fprintf(stderr, "taina-replay: unknown command \"%s\"\n", argv[1]);
        print_top_usage(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text[cmd], stdout);
            fputs(settings_text, stdout);
            return 0;
        }
    /* A tool's log lines are noise next to its output: warnings and errors only, unless
     * TAINA_LOG_LEVEL or --log-level says otherwise. */
    int quiet = 1;
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "TAINA_LOG_LEVEL=", 16))
            quiet = 0;
    for (int i = 2; i < argc; i++)
        if (!strncmp(argv[i], "--log-level", 11))
            quiet = 0;
    char **av = tn_xcalloc((size_t)argc + 6, sizeof(*av));
    int n = 0;
    av[n++] = argv[0];
    av[n++] = "--command";
    av[n++] = argv[1];
    if (quiet) {
        av[n++] = "--log-level";
        av[n++] = "warn";
    }
    for (int i = 2; i < argc; i++)
        av[n++] = argv[i];
    int code = tn_app_main(&def, n, av, environ);
    free(av);
    return code;
}
