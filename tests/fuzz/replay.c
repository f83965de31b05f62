/* Replays inputs through a fuzz target without libFuzzer (gcc, the normal build): `make test`
 * runs build/tests/unit/fuzz_<target> with no arguments over tests/fuzz/corpus/<target>/ and
 * tests/fuzz/regress/<target>/ (every crash found by fuzzing stays there), one test case per
 * file. With arguments it replays those files or folders instead (a crash input to debug). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "taina/buf.h"

static size_t replayed;

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    tn_buf_t b;
    tn_buf_init(&b, (size_t)-1);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        tn_buf_add(&b, chunk, n);
    fclose(f);
    /* an exact-size copy, so that ASan sees a read past the input's end */
    uint8_t *data = tn_xmalloc(b.len ? b.len : 1);
    if (b.len)
        memcpy(data, b.data, b.len);
    LLVMFuzzerTestOneInput(data, b.len);
    free(data);
    tn_buf_cleanup(&b);
    replayed++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A file, or every regular file of a folder (sorted, not recursive). A missing folder is empty. */
static int replay_path(const char *path, int must_exist)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (!must_exist)
            return 0;
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        names = tn_xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = tn_xasprintf("%s/%s", path, e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && replay_file(names[i]) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            rc |= replay_path(argv[i], 1);
    } else {
        /* fuzz_<target> */
        const char *base = strrchr(argv[0], '/');
        base = base ? base + 1 : argv[0];
        const char *target = strncmp(base, "fuzz_", 5) == 0 ? base + 5 : base;
        static const char *const dirs[] = {"corpus", "regress"};
        for (size_t i = 0; i < 2; i++) {
            char *rel = tn_xasprintf("tests/fuzz/%s/%s", dirs[i], target);
            char *path = tn_app_data_path(rel);
            rc |= replay_path(path, 0);
            free(path);
            free(rel);
        }
    }
    printf("%s: %zu inputs replayed\n", argv[0], replayed);
    printf("%zu passed, %d failed\n", replayed, rc ? 1 : 0);
    return rc ? 1 : 0;
}
