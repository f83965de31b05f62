/* JSON Schema "format" checks: date-time, date, time, email, hostname, ipv4, ipv6, uri, uuid. */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "schema_int.h"

static int digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* full-date = YYYY-MM-DD with real calendar days */
static int date_ok(const char *s, size_t len)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len != 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2))
        return 0;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + num2(s + 2);
    int m = num2(s + 5), d = num2(s + 8);
    if (m < 1 || m > 12 || d < 1)
        return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

/* full-time = HH:MM:SS[.frac](Z|+HH:MM|-HH:MM); a leap second only at 23:59:60 UTC */
static int time_ok(const char *s, size_t len)
{
    if (len < 9 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) || s[5] != ':' ||
        !digits(s + 6, 2))
        return 0;
    int h = num2(s), mi = num2(s + 3), sec = num2(s + 6);
    size_t i = 8;
    if (i < len && s[i] == '.') {
        size_t j = ++i;
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
        if (i == j)
            return 0;
    }
    int off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) &&
               s[i + 3] == ':' && digits(s + i + 4, 2)) {
        int oh = num2(s + i + 1), om = num2(s + i + 4);
        if (oh > 23 || om > 59)
            return 0;
        off = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
        i += 6;
    } else {
        return 0;
    }
    if (i != len || h > 23 || mi > 59 || sec > 60)
        return 0;
    if (sec == 60) {
        int utc = ((h * 60 + mi - off) % 1440 + 1440) % 1440;
        return utc == 23 * 60 + 59;
    }
    return 1;
}

static int datetime_ok(const char *s, size_t len)
{
    return len > 11 && (s[10] == 'T' || s[10] == 't') && date_ok(s, 10) &&
           time_ok(s + 11, len - 11);
}

static int hostname_ok(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)c) && c != '-')
            return 0;
        if (c == '-' && label == 0)
            return 0;
        if (++label > 63)
            return 0;
    }
    return label > 0 && s[len - 1] != '-';
}

static int ipv4_ok(const char *s, size_t len)
{
    int parts = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && isdigit((unsigned char)s[j]))
            j++;
        if (j == i || j - i > 3 || (j - i > 1 && s[i] == '0'))
            return 0;
        int v = 0;
        for (size_t k = i; k < j; k++)
            v = v * 10 + (s[k] - '0');
        if (v > 255)
            return 0;
        parts++;
        if (j == len)
            break;
        if (s[j] != '.' || j + 1 == len)
            return 0;
        i = j + 1;
    }
    return parts == 4;
}

static int ipv6_ok(const char *s, size_t len)
{
    char buf[64];
    unsigned char out[16];
    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, out) == 1;
}

static int email_ok(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (!at || at == s || memchr(at + 1, '@', len - (size_t)(at - s) - 1))
        return 0;
    size_t ll = (size_t)(at - s);
    if (s[0] == '.' || s[ll - 1] == '.')
        return 0;
    for (size_t i = 0; i < ll; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || strchr("()<>[]:;@\\,\"", c))
            return 0;
        if (c == '.' && s[i + 1] == '.')
            return 0;
    }
    const char *dom = at + 1;
    size_t dl = len - ll - 1;
    if (dl > 2 && dom[0] == '[' && dom[dl - 1] == ']')
        return ipv4_ok(dom + 1, dl - 2) || ipv6_ok(dom + 1, dl - 2);
    return hostname_ok(dom, dl);
}

static int uuid_ok(const char *s, size_t len)
{
    if (len != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* An absolute URI (RFC 3986): scheme ":" then only URI characters, %XX escapes well formed. */
static int uri_ok(const char *s, size_t len)
{
    size_t i = 0;
    if (len == 0 || !isalpha((unsigned char)s[0]))
        return 0;
    while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i == len || s[i] != ':')
        return 0;
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return 0;
            i += 2;
            continue;
        }
        if (!(isalnum(c) || strchr("-._~:/?#[]@!$&'()*+,;=", c)))
            return 0;
    }
    return 1;
}

int tn_schema_format_ok(const char *fmt, const char *s, size_t len)
{
    if (!strcmp(fmt, "date-time"))
        return datetime_ok(s, len);
    if (!strcmp(fmt, "date"))
        return date_ok(s, len);
    if (!strcmp(fmt, "time"))
        return time_ok(s, len);
    if (!strcmp(fmt, "email"))
        return email_ok(s, len);
    if (!strcmp(fmt, "hostname"))
        return hostname_ok(s, len);
    if (!strcmp(fmt, "ipv4"))
        return ipv4_ok(s, len);
    if (!strcmp(fmt, "ipv6"))
        return ipv6_ok(s, len);
    if (!strcmp(fmt, "uri"))
        return uri_ok(s, len);
    if (!strcmp(fmt, "uuid"))
        return uuid_ok(s, len);
    return 1;
}
