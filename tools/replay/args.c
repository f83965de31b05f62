/* taina-replay: parsing of option values, progress lines and the rate limit. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"

int replay_parse_i64(const char *s, int64_t *v)
{
    char *end = NULL;
    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

/* Digits at s[0..n) as a number; -1 when not all digits. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int replay_parse_time(const char *s, int64_t *ms)
{
    size_t len = strlen(s);
    if (len < 10 || s[4] != '-' || s[7] != '-')
        return -1;
    struct tm tm = {0};
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = 0, mi = 0, sec = 0, frac_ms = 0, tz_min = 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 9 || p[3] != ':' || p[6] != ':')
            return -1;
        h = digits(p + 1, 2);
        mi = digits(p + 4, 2);
        sec = digits(p + 7, 2);
        if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
            return -1;
        p += 9;
        if (*p == '.') {
            int scale = 100;
            p++;
            if (!isdigit((unsigned char)*p))
                return -1;
            for (; isdigit((unsigned char)*p); p++, scale /= 10)
                frac_ms += (*p - '0') * scale;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            if (strlen(p) != 6 || p[3] != ':')
                return -1;
            int th = digits(p + 1, 2), tm_ = digits(p + 4, 2);
            if (th < 0 || tm_ < 0 || th > 23 || tm_ > 59)
                return -1;
            tz_min = (th * 60 + tm_) * (*p == '-' ? -1 : 1);
            p += 6;
        } else {
            return -1; /* a time without zone is ambiguous */
        }
    }
    if (*p)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = ((int64_t)t - (int64_t)tz_min * 60) * 1000 + frac_ms;
    return 0;
}

int replay_parse_pos(const char *s, replay_pos_t *p, char *err, size_t errlen)
{
    if (!strcmp(s, "beginning") || !strcmp(s, "earliest")) {
        p->kind = POS_BEGINNING;
    } else if (!strcmp(s, "now") || !strcmp(s, "end") || !strcmp(s, "latest")) {
        p->kind = POS_NOW;
    } else if (replay_parse_i64(s, &p->value) == 0 && p->value >= 0) {
        p->kind = POS_OFFSET;
    } else if (replay_parse_time(s, &p->value) == 0) {
        p->kind = POS_TIME;
    } else {
        snprintf(err, errlen,
                 "\"%s\" is not beginning, now, an offset or an RFC 3339 time "
                 "(2026-11-24T10:00:00Z)",
                 s);
        return -1;
    }
    return 0;
}

int replay_parse_partitions(const char *s, int32_t n, bool *mask, char *err, size_t errlen)
{
    int any = !s || !*s;
    for (int32_t i = 0; i < n; i++)
        mask[i] = any;
    if (any)
        return 0;
    const char *p = s;
    while (*p) {
        char *end = NULL;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0)
            goto bad;
        b = a;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p || b < a)
                goto bad;
        }
        if (b >= n) {
            snprintf(err, errlen, "--partitions %s: the topic has %" PRId32 " partitions", s, n);
            return -1;
        }
        for (long i = a; i <= b; i++)
            mask[i] = true;
        if (*end == ',')
            end++;
        else if (*end)
            goto bad;
        p = end;
    }
    return 0;
bad:
    snprintf(err, errlen, "--partitions \"%s\": expected a list such as 0,2,4-5", s);
    return -1;
}

int replay_parse_rate(const char *s, double *per_s, char *err, size_t errlen)
{
    *per_s = 0;
    if (!s || !*s)
        return 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || !isfinite(v))
        goto bad;
    if (!strcmp(end, "/m") || !strcmp(end, "/min"))
        v /= 60;
    else if (*end && strcmp(end, "/s"))
        goto bad;
    *per_s = v;
    return 0;
bad:
    snprintf(err, errlen, "--rate \"%s\": expected records per second, e.g. 500 or 500/s", s);
    return -1;
}

void replay_progress_start(replay_progress_t *p, const char *what, uint64_t total)
{
    p->what = what;
    p->done = 0;
    p->total = total;
    p->t0 = tn_clock_mono_s();
    p->last = p->t0;
}

void replay_progress_tick(replay_t *rp, replay_progress_t *p, bool last)
{
    double now = tn_clock_mono_s();
    if (!last && now - p->last < 1.0)
        return;
    p->last = now;
    double el = now - p->t0, rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "-";
    if (p->total > p->done && rate > 0)
        snprintf(eta, sizeof(eta), "%.0fs", (double)(p->total - p->done) / rate);
    else if (p->total <= p->done)
        snprintf(eta, sizeof(eta), "0s");
    fprintf(rp->err,
            "%s: %" PRIu64 "/%" PRIu64 " records (%.0f%%), %.0f/s, elapsed %.1fs, ETA %s\n",
            p->what, p->done, p->total,
            p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, rate, el, eta);
    fflush(rp->err);
}

void replay_rate_wait(double per_s, uint64_t done, double t0)
{
    if (per_s <= 0)
        return;
    double due = t0 + (double)done / per_s, now = tn_clock_mono_s();
    if (due > now)
        tn_lifecycle_wait((int64_t)((due - now) * 1000) + 1);
}
