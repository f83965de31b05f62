/* Test helpers shared by unit and integration tests. */
#include "tn_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "taina/clock.h"
#include "taina/config.h"
#include "taina/mem.h"

int64_t tn_test_timeout_ms(int64_t ms)
{
    const char *m = secure_getenv("TN_TEST_TIMEOUT_MULT");
    long mult = m ? strtol(m, NULL, 10) : 1;
    return ms * (mult > 0 ? mult : 1);
}

char *tn_test_mkdtemp(const char *tag)
{
    char *tmpl = tn_xasprintf("/tmp/taina-%s-XXXXXX", tag);
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    chmod(tmpl, 0777);
    return tmpl;
}

void tn_test_rmdir(const char *dir)
{
    const char *leave = secure_getenv("TEST_LEAVE");
    if (!dir || (leave && *leave == '1'))
        return;
    char *cmd = tn_xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(cmd);
}

int tn_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t sl = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

int tn_test_write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = strlen(data);
    int rc = fwrite(data, 1, n, f) == n ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

char *tn_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = tn_xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = tn_xrealloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int tn_test_run(const char *cmd, char **out, int merge_stderr)
{
    char *full = tn_xasprintf("%s%s", cmd, merge_stderr ? " 2>&1" : "");
    FILE *p = popen(full, "r");
    free(full);
    if (!p)
        return -1;
    size_t cap = 4096, n = 0;
    char *buf = tn_xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = tn_xrealloc(buf, cap);
        }
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t tn_test_spawn(char *const argv[], const char *logfile)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execv(argv[0], argv);
    _exit(127);
}

int tn_test_stop(pid_t pid, int64_t ms)
{
    int st;
    kill(pid, SIGTERM);
    int64_t deadline = tn_clock_mono_ms() + ms;
    while (tn_clock_mono_ms() < deadline) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        tn_clock_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

char *tn_test_build_path(const char *rel)
{
    const char *b = secure_getenv("TN_BUILD_DIR");
    return tn_xasprintf("%s/%s", b ? b : "build", rel);
}

int tn_test_wait_file(const char *path, int64_t ms)
{
    int64_t deadline = tn_clock_mono_ms() + ms;
    struct stat st;
    while (tn_clock_mono_ms() < deadline) {
        if (stat(path, &st) == 0 && st.st_size > 0)
            return 0;
        tn_clock_sleep_ms(20);
    }
    return -1;
}
