/* taina-devstack: a local Kafka (librdkafka's mock cluster) with the suite's topics. */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "taina/app.h"
#include "taina/devstack.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

/*
 * The mock cluster accepts its clients' connections with accept() and leaves Nagle's algorithm
 * on, which a Kafka broker turns off. A small answer (a ProduceResponse) written while an
 * earlier one was not acknowledged yet then waited for the client's delayed ACK: about 40 ms,
 * for one produce request in ten. librdkafka calls accept() through the dynamic linker, so this
 * definition in the executable is the one it gets; it accepts as libc would (accept4 without
 * flags) and sets TCP_NODELAY, as Kafka does.
 */
int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    int s = accept4(fd, addr, len, 0);
    if (s >= 0) {
        int one = 1;
        (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return s;
}

typedef struct devstack_cfg {
    int64_t brokers;
    char *topics_file;
    char *bootstrap_file;
    int64_t control_port;
} devstack_cfg_t;

static const tn_cfg_key_t devstack_keys[] = {
    {"devstack_brokers", TN_CFG_INT, offsetof(devstack_cfg_t, brokers), "3", 0,
     "Number of mock brokers", 1, 9, NULL},
    {"devstack_topics_file", TN_CFG_STRING, offsetof(devstack_cfg_t, topics_file),
     "schemas/topics.json", 0, "Topics to create (name, partitions, replication)", 0, 0, NULL},
    {"devstack_bootstrap_file", TN_CFG_STRING, offsetof(devstack_cfg_t, bootstrap_file), "", 0,
     "Also write the bootstrap address to this file (removed at exit)", 0, 0, NULL},
    {"devstack_control_port", TN_CFG_INT, offsetof(devstack_cfg_t, control_port), "0", 0,
     "Port of the fault control API on 127.0.0.1 (broker down/up, errors, RTT, leader; 0 = off)", 0,
     65535, NULL},
};

typedef struct devstack_state {
    tn_devstack_t *ds;
    devstack_control_t *ctl;
    const devstack_cfg_t *cfg;
} devstack_state_t;

static tn_err_t write_bootstrap(const char *path, const char *bootstrap)
{
    char *tmp = tn_xasprintf("%s.tmp", path);
    tn_err_t rc = TN_ERR_IO;
    FILE *f = fopen(tmp, "w");
    if (!f)
        goto out;
    fprintf(f, "%s\n", bootstrap);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        goto out;
    rc = TN_OK;
out:
    if (rc != TN_OK)
        TN_LOG(TN_LOG_ERROR, "cannot write %s: %s", path, strerror(errno));
    free(tmp);
    return rc;
}

static tn_err_t devstack_init(tn_app_t *app, void *cfgp, void **state)
{
    (void)app;
    devstack_cfg_t *cfg = cfgp;
    char errbuf[512];
    size_t ntopics = 0;
    tn_err_t rc = TN_ERR;
    char *topics = tn_app_data_path(cfg->topics_file);
    devstack_state_t *st = tn_xcalloc(1, sizeof(*st));
    st->cfg = cfg;
    st->ds = tn_devstack_new((int)cfg->brokers, errbuf, sizeof(errbuf));
    if (!st->ds) {
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        goto out;
    }
    rc = tn_devstack_create_topics_file(st->ds, topics, &ntopics, errbuf, sizeof(errbuf));
    if (rc != TN_OK) {
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        rc = rc == TN_ERR_KAFKA ? rc : TN_ERR_CONFIG;
        goto out;
    }
    if (cfg->control_port) {
        st->ctl = devstack_control_start(st->ds, (int)cfg->control_port, errbuf, sizeof(errbuf));
        if (!st->ctl) {
            TN_LOG(TN_LOG_ERROR, "devstack: control API: %s", errbuf);
            rc = TN_ERR_IO;
            goto out;
        }
        TN_LOG(TN_LOG_INFO, "devstack: fault control API on 127.0.0.1:%d", (int)cfg->control_port);
    }
    /* The bootstrap file comes last: once it exists, everything above is ready. */
    if (*cfg->bootstrap_file) {
        rc = write_bootstrap(cfg->bootstrap_file, tn_devstack_bootstrap(st->ds));
        if (rc != TN_OK)
            goto out;
    }
    TN_LOGF(TN_LOG_INFO, TN_F({"bootstrap", tn_devstack_bootstrap(st->ds)}, {"topics", topics}),
            "devstack ready: %d brokers, %zu topics", (int)cfg->brokers, ntopics);
    printf("%s\n", tn_devstack_bootstrap(st->ds));
    fflush(stdout);
    rc = TN_OK;
out:
    free(topics);
    if (rc != TN_OK) {
        devstack_control_destroy(st->ctl);
        tn_devstack_destroy(st->ds);
        free(st);
        st = NULL;
    }
    *state = st;
    return rc;
}

static tn_err_t devstack_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    tn_lifecycle_wait(-1);
    return TN_OK;
}

static void devstack_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    devstack_state_t *st = state;
    if (*st->cfg->bootstrap_file)
        unlink(st->cfg->bootstrap_file);
    devstack_control_destroy(st->ctl);
    tn_devstack_destroy(st->ds);
    free(st);
}

static const tn_app_def_t devstack_def = {
    .name = "devstack",
    .summary = "local Kafka (librdkafka mock cluster) with the suite's topics",
    .keys = devstack_keys,
    .nkeys = TN_ARRAY_LEN(devstack_keys),
    .cfg_size = sizeof(devstack_cfg_t),
    .init = devstack_init,
    .run = devstack_run,
    .shutdown = devstack_shutdown,
};

int main(int argc, char **argv)
{
    return tn_app_main(&devstack_def, argc, argv, environ);
}
