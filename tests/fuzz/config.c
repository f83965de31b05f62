/* Fuzz target: the configuration loader. The input is a --config file (KEY=value lines) loaded
 * against a table with a key of every type, its lines are also given as TAINA_* environment
 * strings, and the whole input goes through the value parsers (duration, size, bool). */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "taina/config.h"

typedef struct fz_cfg {
    char *str, *url;
    int64_t num, dur, size, big;
    bool flag;
    int choice;
} fz_cfg_t;

static const char *const choices[] = {"local", "qdrant", "none", NULL};

#define K(name, type, field, def, min, max, ch)                                                    \
    {                                                                                              \
        name, type, offsetof(fz_cfg_t, field), def, 0, "fuzz", min, max, ch                        \
    }
static const tn_cfg_key_t keys[] = {
    K("fz_str", TN_CFG_STRING, str, "x", 0, 0, NULL),
    K("fz_url", TN_CFG_URL, url, "", 0, 0, NULL),
    K("fz_int", TN_CFG_INT, num, "8", 1, 1024, NULL),
    K("fz_big", TN_CFG_INT, big, "0", 0, 0, NULL),
    K("fz_dur", TN_CFG_DURATION, dur, "5s", 0, 3600000, NULL),
    K("fz_size", TN_CFG_SIZE, size, "1MiB", 1, (int64_t)1 << 40, NULL),
    K("fz_flag", TN_CFG_BOOL, flag, "false", 0, 0, NULL),
    K("fz_enum", TN_CFG_ENUM, choice, "local", 0, 0, choices),
};

static int fd = -1;
static char path[64];
static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fuzz_quiet();
        fd = memfd_create("fuzz-config", 0);
        FUZZ_CHECK(fd >= 0, "memfd_create");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        devnull = fopen("/dev/null", "w");
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size, "memfd");

    /* the value parsers on the whole input */
    char *s = fuzz_cstr(data, size);
    int64_t v;
    bool b;
    if (tn_cfg_parse_duration(s, &v) == TN_OK)
        FUZZ_CHECK(v >= 0, "duration %lld", (long long)v);
    if (tn_cfg_parse_size(s, &v) == TN_OK)
        FUZZ_CHECK(v >= 0, "size %lld", (long long)v);
    (void)tn_cfg_parse_bool(s, &b);

    /* every line also as TAINA_<line> in the environment */
    size_t nenv = 0, cap = 8;
    char **envp = tn_xcalloc(cap + 1, sizeof(*envp));
    for (char *line = s, *next; line && *line && nenv < 64; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (nenv == cap) {
            cap *= 2;
            envp = tn_xrealloc(envp, (cap + 1) * sizeof(*envp));
        }
        envp[nenv++] = tn_xasprintf("TAINA_%s", line);
        envp[nenv] = NULL;
    }

    fz_cfg_t c;
    memset(&c, 0, sizeof(c));
    char err[512] = "";
    for (int with_file = 0; with_file < 2; with_file++) {
        tn_cfg_t *cfg = tn_cfg_new("fuzz");
        tn_cfg_add_table(cfg, "fz", keys, TN_ARRAY_LEN(keys), &c);
        tn_err_t rc =
            tn_cfg_load(cfg, with_file ? path : NULL, with_file ? NULL : envp, err, sizeof(err));
        if (rc == TN_OK) {
            FUZZ_CHECK(c.num >= 1 && c.num <= 1024, "int out of range: %lld", (long long)c.num);
            FUZZ_CHECK(c.dur >= 0 && c.dur <= 3600000, "duration out of range");
            FUZZ_CHECK(c.size >= 1 && c.size <= (int64_t)1 << 40, "size out of range");
            FUZZ_CHECK(c.choice >= 0 && c.choice < 3, "enum %d", c.choice);
            FUZZ_CHECK(c.str && c.url, "strings unset");
            tn_cfg_print_effective(cfg, devnull);
        } else {
            FUZZ_CHECK(rc == TN_ERR_CONFIG && err[0], "rc %d without a reason", rc);
        }
        size_t nprops;
        tn_cfg_kafka_props(cfg, &nprops);
        tn_cfg_destroy(cfg);
    }
    for (size_t i = 0; i < nenv; i++)
        free(envp[i]);
    free(envp);
    free(s);
    return 0;
}
