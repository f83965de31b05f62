/* PII redaction: typed placeholders from PCRE2 rules with checksums and match limits. */
#include "taina/pii.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/mem.h"
#include "bytes_int.h"

/* Limits per match attempt: generous for real text, tiny next to catastrophic backtracking. */
#define MATCH_LIMIT 200000
#define DEPTH_LIMIT 5000
#define MAX_RULES   64

/* (tools/demo/corpus/check.py reads these literals: no macros in them) */
const char tn_pii_default_rules[] =
    "# TYPE  CHECK  pattern. Specific rules first: each applies to the output of the ones above.\n"
    "EMAIL   none   [A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,63}){0,8}"
    "\\.[A-Za-z]{2,24}\\b\n"
    /* any case ("es91 2100 ..."): the mod-97 check keeps words out */
    "IBAN    iban   (?i)\\b[A-Z]{2}\\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\\b\n"
    "CARD    luhn   \\b\\d(?:[ -]?\\d){12,18}\\b\n"
    /* with dashes the layout says cedula (and some issued numbers fail the check digit); without
     * them 11 digits could be anything: the check digit decides, and 1 + a DR area code is a
     * phone */
    "CEDULA  none   \\b\\d{3}-\\d{7}-\\d\\b\n"
    "CEDULA  cedula (?<![\\w+])(?<!\\d[ .-])(?!1(?:809|829|849))\\d{3}(?:\\d{7}| \\d{7} )\\d\\b"
    "(?![ .-]?\\d)\n"
    /* a phone is a whole run of digit groups, not the middle or end of a longer number, in a
     * NANP shape ((809) 555-0142, 829-555-0199, +1 849 555 0100, 8095550142: area code and
     * exchange 2-9xx) or international with "+" and a country code: a year-prefixed reference
     * (2026-004512) or an RNC (1-31-12345-6) is neither */
    "PHONE   phone  (?<![\\w+])(?<!\\d[ .-])(?:\\+?1[ .-]?)?(?:\\([2-9]\\d\\d\\)|[2-9]\\d\\d)[ .-]?"
    "[2-9]\\d\\d[ .-]?\\d{4}\\b(?![ .-]?\\d)\n"
    "PHONE   phone  (?<![\\w+])\\+[2-9]\\d{0,2}(?:[ .()-]{0,2}\\d){6,13}\\b(?![ .-]?\\d)\n";

typedef enum { CHECK_NONE, CHECK_LUHN, CHECK_IBAN, CHECK_PHONE, CHECK_CEDULA } check_t;

/*
 * Anchors: for a pattern known here, every match holds an anchor (a byte, or two ASCII digits in
 * a row) a bounded distance after its start, so only the start positions within that distance
 * before an anchor can match, and apply_rule() runs PCRE2 on those windows alone (start offset
 * and offset limit), not over the whole text. The result is the same, position by position: a
 * start position is tried with the whole subject around it (look-behinds and \b see the text
 * before the window), and those left out cannot match. Only these exact pattern texts (those of
 * tn_pii_default_rules) get an anchor; any other rule, or one of these edited, scans everything
 * (tests/unit/common/pii_test.c compares the two ways on random text).
 */
/* an anchor is a byte, an ASCII digit, or the first of two ASCII digits in a row */
typedef enum { ANCHOR_NONE, ANCHOR_BYTE, ANCHOR_DIGIT, ANCHOR_DIGITS } anchor_t;

static const struct {
    const char *pattern;
    anchor_t anchor;
    char byte;
    size_t min, max; /* bytes from a match's start to its anchor */
} anchors[] = {
    /* EMAIL: [class]{1,64}@, the class ASCII without "@": the first "@" is 1 to 64 bytes on */
    {"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,63}){0,8}\\.[A-Za-z]{2,24}\\b",
     ANCHOR_BYTE, '@', 1, 64},
    /* IBAN: two letters, then \d{2} (ASCII digits: no PCRE2_UCP); a letter is 1 byte, or 2 or 3
     * for the caseless matches of s and k in UTF mode (U+017F, U+212A) */
    {"(?i)\\b[A-Z]{2}\\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\\b", ANCHOR_DIGITS, 0, 2, 6},
    /* CARD: a digit first */
    {"\\b\\d(?:[ -]?\\d){12,18}\\b", ANCHOR_DIGIT, 0, 0, 0},
    /* CEDULA with dashes: \d{3} first */
    {"\\b\\d{3}-\\d{7}-\\d\\b", ANCHOR_DIGITS, 0, 0, 0},
    /* CEDULA without dashes: \d{3} first (the look-arounds take no bytes) */
    {"(?<![\\w+])(?<!\\d[ .-])(?!1(?:809|829|849))\\d{3}(?:\\d{7}| \\d{7} )\\d\\b(?![ .-]?\\d)",
     ANCHOR_DIGITS, 0, 0, 0},
    /* PHONE, NANP: at most "+1 (" (4 bytes) before the area code's [2-9]\d */
    {"(?<![\\w+])(?<!\\d[ .-])(?:\\+?1[ .-]?)?(?:\\([2-9]\\d\\d\\)|[2-9]\\d\\d)[ .-]?[2-9]\\d\\d[ "
     ".-]?"
     "\\d{4}\\b(?![ .-]?\\d)",
     ANCHOR_DIGITS, 0, 0, 4},
};

typedef struct rule {
    pcre2_code *re;
    check_t check;
    size_t type; /* index into types */
    int line;
    anchor_t anchor;
    char byte;
    size_t min, max;
} rule_t;

struct tn_pii {
    rule_t rules[MAX_RULES];
    size_t nrules;
    char *types[MAX_RULES];
    size_t ntypes;
    char *placeholders[MAX_RULES]; /* "[EMAIL]" */
    pcre2_match_context *mctx;
};

void tn_pii_destroy(tn_pii_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nrules; i++)
        pcre2_code_free(p->rules[i].re);
    for (size_t i = 0; i < p->ntypes; i++) {
        free(p->types[i]);
        free(p->placeholders[i]);
    }
    pcre2_match_context_free(p->mctx);
    free(p);
}

static size_t type_index(tn_pii_t *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->ntypes; i++)
        if (strlen(p->types[i]) == len && strncmp(p->types[i], name, len) == 0)
            return i;
    p->types[p->ntypes] = tn_xstrndup(name, len);
    p->placeholders[p->ntypes] = tn_xasprintf("[%.*s]", (int)len, name);
    return p->ntypes++;
}

static int check_parse(const char *s, size_t len, check_t *out)
{
    static const char *const names[] = {"none", "luhn", "iban", "phone", "cedula"};
    for (size_t i = 0; i < TN_ARRAY_LEN(names); i++) {
        if (strlen(names[i]) == len && strncmp(s, names[i], len) == 0) {
            *out = (check_t)i;
            return 0;
        }
    }
    return -1;
}

/* Next whitespace-separated field of a line. */
static const char *field(const char *s, size_t *len)
{
    while (*s == ' ' || *s == '\t')
        s++;
    *len = strcspn(s, " \t\r\n");
    return s;
}

/* A match context with this module's limits. */
static pcre2_match_context *limits_context(void)
{
    pcre2_match_context *m = pcre2_match_context_create(NULL);
    TN_ASSERT(m);
    pcre2_set_match_limit(m, MATCH_LIMIT);
    pcre2_set_depth_limit(m, DEPTH_LIMIT);
    return m;
}

tn_pii_t *tn_pii_new(const char *text, const char *name, char *errbuf, size_t errlen)
{
    tn_pii_t *p = tn_xcalloc(1, sizeof(*p));
    const char *src = text ? text : tn_pii_default_rules;
    const char *what = name ? name : (text ? "PII rules" : "built-in PII rules");
    int lineno = 0;
    p->mctx = limits_context();

    for (const char *line = src; *line;) {
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        lineno++;
        size_t tl, cl;
        const char *type = field(line, &tl);
        if (tl == 0 || *type == '#' || type >= line + ll)
            goto next;
        const char *chk = field(type + tl, &cl);
        const char *pat = chk + cl;
        while (*pat == ' ' || *pat == '\t')
            pat++;
        size_t pl = (size_t)(line + ll - pat);
        while (pl && (pat[pl - 1] == '\r' || pat[pl - 1] == ' '))
            pl--;
        check_t check;
        if (cl == 0 || pat >= line + ll || pl == 0) {
            snprintf(errbuf, errlen, "%s line %d: expected TYPE CHECK PATTERN", what, lineno);
            goto fail;
        }
        for (size_t i = 0; i < tl; i++) {
            if (!isupper((unsigned char)type[i]) && type[i] != '_') {
                snprintf(errbuf, errlen, "%s line %d: type must be upper case letters", what,
                         lineno);
                goto fail;
            }
        }
        if (check_parse(chk, cl, &check) != 0) {
            snprintf(errbuf, errlen,
                     "%s line %d: check \"%.*s\" is not none, luhn, iban, phone or cedula", what,
                     lineno, (int)cl, chk);
            goto fail;
        }
        if (p->nrules == MAX_RULES) {
            snprintf(errbuf, errlen, "%s: more than %d rules", what, MAX_RULES);
            goto fail;
        }
        size_t ai = 0;
        while (ai < TN_ARRAY_LEN(anchors) &&
               (strlen(anchors[ai].pattern) != pl || memcmp(anchors[ai].pattern, pat, pl) != 0))
            ai++;
        int ec;
        PCRE2_SIZE eo;
        uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
        if (ai < TN_ARRAY_LEN(anchors))
            opts |= PCRE2_USE_OFFSET_LIMIT;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, pl, opts, &ec, &eo, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            snprintf(errbuf, errlen, "%s line %d: pattern error at offset %zu: %s", what, lineno,
                     (size_t)eo, (const char *)msg);
            goto fail;
        }
        if (!TN_ON_VALGRIND())
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: else the interpreter runs */
        rule_t *r = &p->rules[p->nrules++];
        r->re = re;
        r->check = check;
        r->type = type_index(p, type, tl);
        r->line = lineno;
        if (ai < TN_ARRAY_LEN(anchors)) {
            r->anchor = anchors[ai].anchor;
            r->byte = anchors[ai].byte;
            r->min = anchors[ai].min;
            r->max = anchors[ai].max;
        }
    next:
        line += ll + (eol ? 1 : 0);
    }
    if (p->nrules == 0) {
        snprintf(errbuf, errlen, "%s: no rules", what);
        goto fail;
    }
    return p;
fail:
    tn_pii_destroy(p);
    return NULL;
}

tn_pii_t *tn_pii_load(const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot open", path);
        return NULL;
    }
    tn_buf_t b;
    tn_buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    tn_err_t rc = TN_OK;
    while (rc == TN_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = tn_buf_add(&b, chunk, n);
    fclose(f);
    tn_pii_t *p = NULL;
    if (rc != TN_OK)
        snprintf(errbuf, errlen, "%s: larger than 1 MiB", path);
    else
        p = tn_pii_new(b.data ? b.data : "", path, errbuf, errlen);
    tn_buf_cleanup(&b);
    return p;
}

size_t tn_pii_ntypes(const tn_pii_t *p)
{
    return p->ntypes;
}

const char *tn_pii_type_name(const tn_pii_t *p, size_t i)
{
    TN_ASSERT(i < p->ntypes);
    return p->types[i];
}

/* ---------------------------------------------------------------------------------------------
 * Checks */

/* The Luhn sum over the digits of @p s (other characters skipped); their number in @p ndig. */
static int luhn_sum(const char *s, size_t len, int *ndig)
{
    int sum = 0;
    *ndig = 0;
    for (size_t i = len; i-- > 0;) {
        if (!isdigit((unsigned char)s[i]))
            continue;
        int d = s[i] - '0';
        if ((*ndig)++ % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum;
}

int tn_pii_luhn_ok(const char *s, size_t len)
{
    int ndig;
    int sum = luhn_sum(s, len, &ndig);
    return ndig >= 13 && ndig <= 19 && sum % 10 == 0;
}

int tn_pii_cedula_ok(const char *s, size_t len)
{
    /* The JCE check digit: weights 1,2,1,2... over the first ten digits from the left (products
     * over 9 lose 9), the eleventh brings the sum to a multiple of 10: Luhn over 11 digits. */
    int ndig;
    int sum = luhn_sum(s, len, &ndig);
    return ndig == 11 && sum % 10 == 0;
}

int tn_pii_iban_ok(const char *s, size_t len)
{
    char c[40];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            continue;
        if (n == sizeof(c) || !isalnum((unsigned char)s[i]))
            return 0;
        c[n++] = (char)toupper((unsigned char)s[i]);
    }
    if (n < 15 || n > 34 || !isalpha((unsigned char)c[0]) || !isalpha((unsigned char)c[1]))
        return 0;
    /* Move the first four characters to the end, letters as 10..35, then mod 97 == 1. */
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        char ch = c[(k + 4) % n];
        if (isdigit((unsigned char)ch))
            rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
        else
            rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
    }
    return rem == 1;
}

static int phone_ok(const char *s, size_t len)
{
    int nd = 0;
    for (size_t i = 0; i < len; i++)
        nd += isdigit((unsigned char)s[i]) != 0;
    return nd >= 9 && nd <= 15;
}

static int check_ok(check_t check, const char *s, size_t len)
{
    switch (check) {
    case CHECK_LUHN:
        return tn_pii_luhn_ok(s, len);
    case CHECK_IBAN:
        return tn_pii_iban_ok(s, len);
    case CHECK_PHONE:
        return phone_ok(s, len);
    case CHECK_CEDULA:
        return tn_pii_cedula_ok(s, len);
    case CHECK_NONE:
        break;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Redaction */

/*
 * An IBAN pattern's groups also take a word or number that follows it ("ES91 ... 1332 PLEASE",
 * any case with (?i)), and then the whole match fails its check. Retry the @p *n bytes at @p s
 * without their trailing space-separated pieces, longest first: on success *n is the new length.
 * (tools/demo/corpus/check.py mirrors this.)
 */
static int shorter_ok(check_t check, const char *s, size_t *n)
{
    if (check != CHECK_IBAN)
        return 0;
    for (size_t k = *n; k-- > 0;) {
        if (s[k] == ' ' && tn_pii_iban_ok(s, k)) {
            *n = k;
            return 1;
        }
    }
    return 0;
}

/*
 * The runs of ASCII digits in the text the rules work on, found once and shared by the rules
 * anchored on digits (each used to scan the whole text for them): the text changes only where a
 * rule replaces something, and apply_rule() carries the runs of the text it copies over to its
 * output (placeholders hold no digits: "[" and "]" around upper case letters and "_").
 */
typedef struct digit_run {
    size_t start, end; /* in[start..end) are digits, in[start - 1] and in[end] are not */
} digit_run_t;

typedef struct digits {
    digit_run_t *run; /* local, or allocated when a text has more runs */
    size_t n, cap;
    int fresh; /* the runs are those of the current text */
    digit_run_t local[64];
} digits_t;

static void digits_init(digits_t *d)
{
    d->run = d->local;
    d->n = 0;
    d->cap = TN_ARRAY_LEN(d->local);
    d->fresh = 0;
}

static void digits_cleanup(digits_t *d)
{
    if (d->run != d->local)
        free(d->run);
}

static int is_digit(char c)
{
    return (unsigned)(c - '0') <= 9;
}

/* Bit 7 of each byte of @p w set where that byte is an ASCII digit: with bit 7 of every byte
 * cleared, adding 0x50 (sets bit 7 from '0' up) or 0x46 (from '9' + 1 up) carries into no other
 * byte; bytes from 0x80 up are masked out. */
static uint64_t digit_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;
    uint64_t x = w & ~high;
    return (x + ones * (0x80 - '0')) & ~(x + ones * (0x80 - '9' - 1)) & ~w & high;
}

static void digits_push(digits_t *d, size_t start, size_t end)
{
    if (d->n == d->cap) {
        digit_run_t *grown = tn_xmalloc(2 * d->cap * sizeof(*grown));
        memcpy(grown, d->run, d->n * sizeof(*grown));
        digits_cleanup(d);
        d->run = grown;
        d->cap *= 2;
    }
    d->run[d->n++] = (digit_run_t){start, end};
}

/* Append to @p to the runs of @p from within in[b..e) (from run *k on), which the output holds
 * from @p at on: a run cut at b or e ends there, next to a placeholder. */
static void digits_move(digits_t *to, const digits_t *from, size_t *k, size_t b, size_t e,
                        size_t at)
{
    for (; *k < from->n && from->run[*k].start < e; (*k)++) {
        const digit_run_t *run = &from->run[*k];
        size_t start = run->start > b ? run->start : b, end = run->end < e ? run->end : e;
        if (start < end)
            digits_push(to, start - b + at, end - b + at);
        if (run->end > e) /* the rest may be copied next */
            break;
    }
}

static void digits_find(digits_t *d, const char *in, size_t len)
{
    d->n = 0;
    d->fresh = 1;
    for (size_t i = 0; i < len;) {
#ifdef TN_V16
        if (len - i >= 16) { /* sixteen bytes at once: on to the first digit, if any */
            unsigned m = tn_v16_bits(tn_v16_in(tn_v16_load(in + i), '0', '9'));
            if (!m) {
                i += 16;
                continue;
            }
            i += (size_t)__builtin_ctz(m);
        }
#endif
        if (len - i >= 8) { /* eight bytes at once while none is a digit: most of the text */
            uint64_t w;
            memcpy(&w, in + i, 8);
            if (!digit_bytes(w)) {
                i += 8;
                continue;
            }
        }
        if (!is_digit(in[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (++i < len && is_digit(in[i]))
            ;
        digits_push(d, start, i);
    }
}

/*
 * The window of start positions, at or after @p pos, where a match of anchored rule @p r can
 * begin: [*lo, *hi], the windows of anchors that touch merged; 0 when there is none. Digit
 * anchors come from @p d, the runs of in[0..len), from run *k on (pos only grows from call to
 * call in a scan, and so does *k).
 */
static int window(const rule_t *r, const digits_t *d, size_t *k, const char *in, size_t len,
                  size_t pos, size_t *lo, size_t *hi)
{
    size_t from = pos + r->min;
    if (r->anchor == ANCHOR_BYTE) {
        const char *at = from < len ? memchr(in + from, r->byte, len - from) : NULL;
        if (!at)
            return 0;
        size_t a = (size_t)(at - in);
        *lo = a > pos + r->max ? a - r->max : pos;
        *hi = a - r->min;
        while ((at = memchr(in + a + 1, r->byte, len - a - 1)) &&
               (size_t)(at - in) <= *hi + 1 + r->max) {
            a = (size_t)(at - in);
            *hi = a - r->min;
        }
    } else {
        /* a run [start, end) holds the anchors start..end - w: the digits, or the first digits
         * of two in a row; they are adjacent, so their windows touch */
        size_t w = r->anchor == ANCHOR_DIGITS ? 2 : 1;
        while (*k < d->n && (d->run[*k].end - d->run[*k].start < w || d->run[*k].end - w < from))
            (*k)++;
        if (*k == d->n)
            return 0;
        size_t a = d->run[*k].start > from ? d->run[*k].start : from;
        *lo = a > pos + r->max ? a - r->max : pos;
        *hi = d->run[*k].end - w - r->min;
        for (size_t j = *k + 1; j < d->n && d->run[j].start <= *hi + 1 + r->max; j++)
            if (d->run[j].end - d->run[j].start >= w)
                *hi = d->run[j].end - w - r->min;
    }
    /* never start inside a character (the text is valid UTF-8: see tn_pii_redact) */
    while (*lo > pos && ((unsigned char)in[*lo] & 0xc0) == 0x80)
        (*lo)--;
    return 1;
}

/* Apply one rule to in[0..len), writing to out (empty) only once it replaces something: *replaced
 * says whether it did (when it did not, out is untouched and the text stays in[0..len)). @p wctx:
 * a match context of our own for the windows of an anchored rule, NULL when the text may not be
 * valid UTF-8 (no windows). @p d: the digit runs of in[0..len) when @p r is anchored on digits
 * or @p nd is not NULL; then @p nd (empty) gets those of out, when something is replaced.
 */
static tn_err_t apply_rule(const tn_pii_t *p, const rule_t *r, pcre2_match_data *md,
                           pcre2_match_context *wctx, const digits_t *d, digits_t *nd,
                           const char *in, size_t len, tn_buf_t *out, size_t *counts, int *replaced,
                           char *errbuf, size_t errlen)
{
    size_t pos = 0, copied = 0, k = 0, dk = 0;
    *replaced = 0;
    tn_err_t rc = TN_OK;
    int windowed = wctx && r->anchor != ANCHOR_NONE;
    while (pos <= len) {
        size_t lo = pos, hi = 0;
        if (windowed) {
            if (!window(r, d, &k, in, len, pos, &lo, &hi))
                break;
            pcre2_set_offset_limit(wctx, hi - copied);
        }
        /* The subject starts after the last replacement: the output holds a placeholder there,
         * not the bytes it replaced, so a lookbehind or \b next to it must not see them (in
         * "+34911234567+34911234568" the second number follows a digit only until the first is
         * "[PHONE]"). Nothing before the subject is what a placeholder is to the built-in rules:
         * not a word character, digit or "+"; and NOTBOL keeps ^ from matching there. */
        int m = pcre2_match(r->re, (PCRE2_SPTR)in + copied, len - copied, lo - copied,
                            copied ? PCRE2_NOTBOL : 0, md, windowed ? wctx : p->mctx);
        if (m == PCRE2_ERROR_NOMATCH && windowed) {
            pos = hi + 1;
            continue;
        }
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(m, msg, sizeof(msg));
            snprintf(errbuf, errlen, "PII rule %s (line %d) gave up: %s", p->types[r->type],
                     r->line, (const char *)msg);
            return TN_ERR_INVALID;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = copied + ov[0], e = copied + ov[1];
        if (e == s) { /* empty match: step over one byte */
            pos = e + 1;
            continue;
        }
        size_t n = e - s;
        if (check_ok(r->check, in + s, n) || shorter_ok(r->check, in + s, &n)) {
            size_t at = out->len;
            rc = tn_buf_add(out, in + copied, s - copied);
            if (rc == TN_OK)
                rc = tn_buf_adds(out, p->placeholders[r->type]);
            if (rc != TN_OK)
                return rc;
            if (nd)
                digits_move(nd, d, &dk, copied, s, at);
            copied = s + n;
            *replaced = 1;
            if (counts)
                counts[r->type]++;
        }
        pos = s + n;
    }
    if (!*replaced) /* the text as it is: no copy, but the cap a copy would have hit */
        return len > out->max ? TN_ERR_TOO_LARGE : TN_OK;
    size_t at = out->len;
    rc = tn_buf_add(out, in + copied, len - copied);
    if (rc == TN_OK && nd)
        digits_move(nd, d, &dk, copied, len, at);
    return rc;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF)? */
static int utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (len - i >= 8) { /* ASCII eight bytes at a time: most of the text */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080u) == 0) {
                i += 8;
                continue;
            }
            while (s[i] < 0x80) /* one of these eight is not ASCII */
                i++;
        } else if (s[i] < 0x80) {
            i++;
            continue;
        }
        unsigned c = s[i];
        size_t need = c >= 0xc2 && c <= 0xdf   ? 1
                      : c >= 0xe0 && c <= 0xef ? 2
                      : c >= 0xf0 && c <= 0xf4 ? 3
                                               : 0;
        if (need == 0 || len - i <= need)
            return 0;
        unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
        unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += need + 1;
    }
    return 1;
}

/* Passes of the rules over their own output at most (see tn_pii_redact): a text that has not
 * settled by then is refused, not passed on half redacted. A chain of numbers glued together
 * settles in one pass (apply_rule() matches after a placeholder as after one); the last pass
 * with replacements is followed by one that checks. */
#define MAX_PASSES 8

/*
 * What a thread keeps from call to call: the match data, a match context for the windows (its
 * offset limit is set before each windowed match) and the two texts the rules write in turn,
 * some 8 allocations a call otherwise. A text buffer above TN_TLS_KEEP bytes is let go after
 * the call that grew it.
 */
typedef struct scratch {
    pcre2_match_data *md;
    pcre2_match_context *wctx;
    tn_buf_t a, b;
} scratch_t;

static void scratch_free(void *block)
{
    scratch_t *sc = block;
    pcre2_match_data_free(sc->md);
    pcre2_match_context_free(sc->wctx);
    tn_buf_cleanup(&sc->a);
    tn_buf_cleanup(&sc->b);
}

static tn_tls_t scratch = TN_TLS_INIT(sizeof(scratch_t), scratch_free);

static scratch_t *scratch_get(size_t max)
{
    scratch_t *sc = tn_tls_get(&scratch);
    if (!sc->md) {
        sc->md = pcre2_match_data_create(16, NULL);
        sc->wctx = limits_context();
        TN_ASSERT(sc->md);
    }
    sc->a.max = sc->b.max = max;
    tn_buf_reset(&sc->a);
    tn_buf_reset(&sc->b);
    return sc;
}

static void scratch_trim(scratch_t *sc)
{
    if (sc->a.cap > TN_TLS_KEEP)
        tn_buf_cleanup(&sc->a);
    if (sc->b.cap > TN_TLS_KEEP)
        tn_buf_cleanup(&sc->b);
}

/* @p valid: the text is known to be valid UTF-8. */
static tn_err_t redact(const tn_pii_t *p, const char *text, size_t len, int valid, tn_buf_t *out,
                       size_t *counts, char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_OK;
    scratch_t *sc = scratch_get(out->max);
    pcre2_match_data *md = sc->md;
    /* valid UTF-8 in, valid out (matches start and end on characters, placeholders are ASCII) */
    pcre2_match_context *wctx = valid || utf8_valid(text, len) ? sc->wctx : NULL;
    /* the text so far: the caller's until a rule replaces something, then that rule's output */
    const char *cur = len ? text : "";
    size_t curlen = len;
    tn_buf_t *dst = &sc->a;
    digits_t dg[2]; /* the runs of cur, and of the next text */
    size_t di = 0;
    digits_init(&dg[0]);
    digits_init(&dg[1]);
    /* A placeholder can give the text next to it the context a rule wanted: "4502+34911234567"
     * is one token, but once "…4502" is a phone, "[PHONE]+34911234567" is another. So while a
     * pass replaces something, the rules run again over their own output: the result holds
     * nothing they would redact (text without PII takes one pass). Once every rule in a row has
     * replaced nothing, each has seen the final text: the rest of the pass would change nothing.
     */
    size_t quiet = 0; /* rules in a row that replaced nothing */
    for (size_t pass = 0; rc == TN_OK && pass < MAX_PASSES && quiet < p->nrules; pass++) {
        for (size_t i = 0; i < p->nrules && quiet < p->nrules; i++) {
            const rule_t *r = &p->rules[i];
            digits_t *d = &dg[di], *nd = &dg[!di];
            int replaced;
            if (wctx && (r->anchor == ANCHOR_DIGIT || r->anchor == ANCHOR_DIGITS) && !d->fresh)
                digits_find(d, cur, curlen);
            tn_buf_reset(dst);
            nd->n = 0;
            rc = apply_rule(p, r, md, wctx, d, d->fresh ? nd : NULL, cur, curlen, dst, counts,
                            &replaced, errbuf, errlen);
            if (rc != TN_OK)
                break;
            if (!replaced) {
                quiet++;
                continue;
            }
            quiet = 0;
            nd->fresh = d->fresh; /* apply_rule() moved the runs over */
            di = !di;
            cur = dst->data;
            curlen = dst->len;
            dst = dst == &sc->a ? &sc->b : &sc->a;
        }
    }
    if (rc == TN_OK && quiet < p->nrules) {
        snprintf(errbuf, errlen, "PII rules did not settle after %d passes over their output",
                 MAX_PASSES);
        rc = TN_ERR_INVALID;
    }
    if (rc == TN_OK)
        rc = tn_buf_add(out, cur, curlen);
    scratch_trim(sc);
    digits_cleanup(&dg[0]);
    digits_cleanup(&dg[1]);
    return rc;
}

tn_err_t tn_pii_redact(const tn_pii_t *p, const char *text, size_t len, tn_buf_t *out,
                       size_t *counts, char *errbuf, size_t errlen)
{
    return redact(p, text, len, 0, out, counts, errbuf, errlen);
}

tn_err_t tn_pii_redact_utf8(const tn_pii_t *p, const char *text, size_t len, tn_buf_t *out,
                            size_t *counts, char *errbuf, size_t errlen)
{
    return redact(p, text, len, 1, out, counts, errbuf, errlen);
}
