/* Signals, the stop flag, the wake-up pipe and the grace-period watchdog. */
#include "taina/lifecycle.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "taina/clock.h"
#include "taina/log.h"

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t signal_count;
static int wake_pipe[2] = {-1, -1};
static _Atomic int64_t grace_deadline; /* monotonic ms; 0 = not armed */

static void wake(void)
{
    if (wake_pipe[1] >= 0) {
        ssize_t r = write(wake_pipe[1], "x", 1);
        (void)r; /* a full pipe already wakes the reader */
    }
}

static void on_signal(int sig)
{
    (void)sig;
    signal_count = signal_count + 1;
    if (signal_count > 1) {
        static const char msg[] = "{\"level\":\"warn\",\"msg\":\"second signal: exiting now\"}\n";
        ssize_t r = write(2, msg, sizeof(msg) - 1);
        (void)r;
        _exit(1);
    }
    stop_flag = 1;
    wake();
}

tn_err_t tn_lifecycle_install(void)
{
    if (wake_pipe[0] < 0) {
        if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
            TN_LOG(TN_LOG_ERROR, "lifecycle: pipe: %s", strerror(errno));
            return TN_ERR_IO;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return TN_OK;
}

int tn_lifecycle_is_stopping(void)
{
    return stop_flag != 0;
}

void tn_lifecycle_request_stop(void)
{
    stop_flag = 1;
    wake();
}

int tn_lifecycle_wait(int64_t ms)
{
    int64_t deadline = ms < 0 ? INT64_MAX : tn_clock_mono_ms() + ms;
    while (!stop_flag) {
        int64_t left = deadline - tn_clock_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
        int timeout = left > 1000 ? 1000 : (int)left; /* also re-check the flag now and then */
        if (wake_pipe[0] < 0) {
            tn_clock_sleep_ms(timeout < 50 ? timeout : 50);
            continue;
        }
        if (poll(&pfd, 1, timeout) > 0) {
            char drain[64];
            while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
                ;
        }
    }
    return 1;
}

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        int64_t dl = atomic_load(&grace_deadline);
        if (dl == 0)
            return NULL; /* disarmed (reset) */
        int64_t left = dl - tn_clock_mono_ms();
        if (left <= 0)
            break;
        tn_clock_sleep_ms(left > 100 ? 100 : left);
    }
    TN_LOG(TN_LOG_ERROR, "shutdown grace period exceeded: exiting with in-flight work unfinished");
    _exit(1);
}

void tn_lifecycle_arm_grace(int64_t grace_ms)
{
    int64_t expected = 0;
    if (!atomic_compare_exchange_strong(&grace_deadline, &expected, tn_clock_mono_ms() + grace_ms))
        return;
    pthread_t th;
    if (pthread_create(&th, NULL, watchdog, NULL) == 0)
        pthread_detach(th);
}

int64_t tn_lifecycle_grace_left_ms(void)
{
    int64_t dl = atomic_load(&grace_deadline);
    if (dl == 0)
        return INT64_MAX;
    int64_t left = dl - tn_clock_mono_ms();
    return left > 0 ? left : 0;
}

void tn_lifecycle_reset(void)
{
    stop_flag = 0;
    signal_count = 0;
    atomic_store(&grace_deadline, 0);
}
