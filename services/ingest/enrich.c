/* ingest: one tickets.raw value -> one tickets.enriched value. Pure: no I/O, no globals. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/lang.h"
#include "taina/mem.h"
#include "taina/text.h"

static void *reject(ingest_reject_t *why, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void *reject(ingest_reject_t *why, const char *reason, const char *fmt, ...)
{
    va_list ap;
    why->reason = reason;
    va_start(ap, fmt);
    vsnprintf(why->detail, sizeof(why->detail), fmt, ap);
    va_end(ap);
    return NULL;
}

/*
 * What a thread keeps from record to record: the normalized title and body, the redacted title
 * and body, and the value being written (copied out at its exact size at the end). Allocating these
 * for every record (and growing the value by doubling) was about a tenth of an enrichment at 1 KB.
 * Buffers above TN_TLS_KEEP bytes are let go after the record that grew them.
 */
typedef struct scratch {
    char *title, *body;
    size_t title_cap, body_cap;
    tn_buf_t rtitle, rbody, out;
} scratch_t;

static void scratch_free(void *block)
{
    scratch_t *sc = block;
    free(sc->title);
    free(sc->body);
    tn_buf_cleanup(&sc->rtitle);
    tn_buf_cleanup(&sc->rbody);
    tn_buf_cleanup(&sc->out);
}

static tn_tls_t scratch = TN_TLS_INIT(sizeof(scratch_t), scratch_free);

static void trim_str(char **s, size_t *cap)
{
    if (*cap > TN_TLS_KEEP) {
        TN_FREE(*s);
        *cap = 0;
    }
}

static void trim_buf(tn_buf_t *b)
{
    if (b->cap > TN_TLS_KEEP)
        tn_buf_cleanup(b);
}

static void scratch_trim(scratch_t *sc)
{
    trim_str(&sc->title, &sc->title_cap);
    trim_str(&sc->body, &sc->body_cap);
    trim_buf(&sc->rtitle);
    trim_buf(&sc->rbody);
    trim_buf(&sc->out);
}

/* Redact @p text (normalized: valid UTF-8) into @p b; TN_OK, or @p err on a match-limit
 * failure. */
static tn_err_t redact(const ingest_rules_t *r, const char *text, size_t len, size_t *counts,
                       tn_buf_t *b, char *err, size_t errlen)
{
    b->max = len * 2 + 4096;
    tn_buf_reset(b);
    tn_buf_reserve(b, len + 256); /* placeholders are about as long as what they replace */
    return tn_pii_redact_utf8(r->pii, text, len, b, counts, err, errlen);
}

/* The value written so far, copied out at its size. */
static char *value_out(scratch_t *sc, size_t *out_len)
{
    char *res = tn_xmalloc(sc->out.len + 1);
    memcpy(res, sc->out.data, sc->out.len + 1);
    if (out_len)
        *out_len = sc->out.len;
    scratch_trim(sc);
    return res;
}

/* Append @p n bytes of @p s as a JSON string literal, escaped as json_dumps() escapes (runs of
 * plain bytes copied at once; NUL bytes become \u0000). */
static void put_str(tn_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    tn_buf_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        i += tn_text_json_plain(s + i, n - i, 0); /* up to the next byte to escape */
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        tn_buf_add(b, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, '0', '0', hex[c >> 4], hex[c & 0xf]};
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            tn_buf_add(b, esc, 6);
            continue;
        }
        tn_buf_add(b, esc, 2);
    }
    tn_buf_add(b, s + run, n - run);
    tn_buf_add(b, "\"", 1);
}

/* ,"name": for a literal @p name, in one append (the first member of an object has its "{"
 * written by the caller) */
#define KEY(name)               ",\"" name "\":"
#define put_key(b, name)        tn_buf_add((b), KEY(name), sizeof(KEY(name)) - 1)
#define copy_field(b, in, name) copy_member((b), (in), (name), KEY(name), sizeof(KEY(name)) - 1)

/* A record from the topic may carry an escaped NUL (\u0000) anywhere; the text fields lose
 * theirs in normalization, and a copied field gets U+FFFD for each, as tickets.enriched is read by
 * parsers that refuse NUL (jansson by default, and ingest's own HTTP path answers 400). */
static void nul_to_fffd(json_t *v)
{
    const char *k;
    json_t *m;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, k, m)
        {
            nul_to_fffd(m);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, m)
        {
            nul_to_fffd(m);
        }
    } else if (json_is_string(v) && memchr(json_string_value(v), 0, json_string_length(v))) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        tn_buf_t fixed;
        tn_buf_init(&fixed, n + 16);
        for (size_t j = 0; j < n; j++) {
            if (s[j])
                tn_buf_add(&fixed, s + j, 1);
            else
                tn_buf_adds(&fixed, "\xef\xbf\xbd");
        }
        json_string_setn(v, fixed.data, fixed.len);
        tn_buf_cleanup(&fixed);
    }
}

/* Copy member @p name of @p in, if present, as @p key (its ,"name":) and the value (strings
 * escaped here, anything else dumped). */
static void copy_member(tn_buf_t *b, const json_t *in, const char *name, const char *key,
                        size_t key_len)
{
    json_t *v = json_object_get(in, name);
    if (!v)
        return;
    nul_to_fffd(v);
    tn_buf_add(b, key, key_len);
    if (json_is_string(v)) {
        put_str(b, json_string_value(v), json_string_length(v));
        return;
    }
    char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    tn_buf_adds(b, d ? d : "null");
    free(d);
}

#define TITLE_MAX 500 /* code points: tickets.enriched's title maxLength */

/* Cut @p t (room for @p n bytes, more than TITLE_MAX code points) to TITLE_MAX - 1 code points and
 * an ellipsis, in place; returns the new length. */
static size_t cut_title(char *t, size_t n)
{
    size_t i = 0, k = 0;
    while (i < n && k < TITLE_MAX - 1) {
        i++;
        while (i < n && ((unsigned char)t[i] & 0xc0) == 0x80)
            i++;
        k++;
    }
    /* "…" is 3 bytes; the cut freed at least one code point of 1 byte or more: room for it only
     * if what was cut is 3 bytes or more, else cut one more code point */
    while (n - i < 3 && i > 0) {
        i--;
        while (i > 0 && ((unsigned char)t[i] & 0xc0) == 0x80)
            i--;
    }
    memcpy(t + i, "\xe2\x80\xa6", 3);
    return i + 3;
}

/* The parts of tickets.enriched that the input does not already guarantee (the copied fields
 * have the same rules in tickets.raw, which was validated): NULL when they hold, else the first
 * violation in the words of tn_schema_error_format(). */
static const char *out_violation(const char *title, size_t tlen, const char *text, size_t text_len,
                                 const char *category, const char *priority,
                                 const tn_text_chunk_t *ch, size_t n, bool chunk_text, char *line,
                                 size_t len)
{
    size_t t = tn_text_cp_count(title, tlen), c = strlen(category);
    if (t < 1 || t > 500)
        snprintf(line, len, "/title: %s: length %zu (#/properties/title)",
                 t < 1 ? "minLength" : "maxLength", t);
    else if (text_len > 200000 && tn_text_cp_count(text, text_len) > 200000) /* cps <= bytes */
        snprintf(line, len, "/text: maxLength: too long (#/properties/text)");
    else if (strcmp(priority, "low") && strcmp(priority, "normal") && strcmp(priority, "high") &&
             strcmp(priority, "urgent"))
        snprintf(line, len, "/priority: enum: not one of the values (#/properties/priority)");
    else if (c < 1 || c > 64)
        snprintf(line, len, "/category: %s: length %zu (#/properties/category)",
                 c < 1 ? "minLength" : "maxLength", c);
    else if (n > 10000)
        snprintf(line, len, "/chunks: maxItems: %zu items (#/properties/chunks)", n);
    else {
        for (size_t i = 0; i < n; i++) {
            size_t k = ch[i].end - ch[i].start;
            if (k < 1 || k > 20000) { /* the chunk's text, written or not, is its span */
                snprintf(line, len, "/chunks/%zu%s: %s: length %zu (#/definitions/chunk)", i,
                         chunk_text ? "/text" : "", k < 1 ? "minLength" : "maxLength", k);
                return line;
            }
        }
        return NULL;
    }
    return line;
}

/* A chunk's text is text[start:end] in code points; with_text copies it into the chunk too. */
static void put_chunks(tn_buf_t *b, const char *text, const tn_text_chunk_t *ch, size_t n,
                       bool with_text)
{
    tn_buf_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        tn_buf_adds(b, i ? ",{\"index\":" : "{\"index\":");
        tn_buf_add_uint(b, ch[i].index);
        if (with_text) {
            tn_buf_add(b, ",\"text\":", 8);
            put_str(b, text + ch[i].byte_start, ch[i].byte_end - ch[i].byte_start);
        }
        tn_buf_adds(b, ",\"start\":");
        tn_buf_add_uint(b, ch[i].start);
        tn_buf_adds(b, ",\"end\":");
        tn_buf_add_uint(b, ch[i].end);
        tn_buf_adds(b, ",\"words\":");
        tn_buf_add_uint(b, ch[i].words);
        tn_buf_add(b, "}", 1);
    }
    tn_buf_add(b, "]", 1);
}

/* "enriched_at": now */
static void put_enriched_at(tn_buf_t *b)
{
    char ts[40];
    tn_clock_rfc3339(ts, sizeof(ts), tn_clock_wall_ms());
    put_key(b, "enriched_at");
    put_str(b, ts, strlen(ts));
}

/* A confidence in [0, 1] with four decimals at most ("0.8571", "0.5", "1.0"): what a reader of
 * it needs, not printf's 17 digits of a double (%.17g was 4% of a 1 KB record's enrichment). */
static void put_confidence(tn_buf_t *b, double v)
{
    unsigned q = v > 0 ? (unsigned)(v * 10000 + 0.5) : 0;
    if (q >= 10000) {
        tn_buf_add(b, "1.0", 3);
        return;
    }
    char d[6] = {'0',
                 '.',
                 (char)('0' + q / 1000),
                 (char)('0' + q / 100 % 10),
                 (char)('0' + q / 10 % 10),
                 (char)('0' + q % 10)};
    size_t n = sizeof(d);
    while (n > 3 && d[n - 1] == '0')
        n--;
    tn_buf_add(b, d, n);
}

/*
 * A JSON parser for the plain records of tickets.raw, several times faster than json_loadb() on
 * long strings (jansson reads a byte at a time through its stream layer): objects, arrays,
 * strings (UTF-8 checked, every escape), integers of up to 18 digits, true, false, null. Anything
 * else (an error, a real, a duplicate key, a NUL in a key, deep nesting) returns NULL, and
 * json_loadb() then parses the record as before, so a tree from here is the one jansson builds
 * with JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL and errors keep jansson's words.
 */
typedef struct jp {
    const unsigned char *p, *end;
    int depth;
} jp_t;

static void jp_ws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int jp_hex4(const unsigned char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t jp_utf8(const unsigned char *p, const unsigned char *end)
{
    unsigned c = *p;
    size_t need = c >= 0xc2 && c <= 0xdf   ? 1
                  : c >= 0xe0 && c <= 0xef ? 2
                  : c >= 0xf0 && c <= 0xf4 ? 3
                                           : 0;
    if (need == 0 || (size_t)(end - p) <= need)
        return 0;
    unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k <= need; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    return need + 1;
}

/* A string after its opening quote, decoded into @p b (reset first); -1 to leave it to jansson. */
static int jp_string(jp_t *j, tn_buf_t *b)
{
    tn_buf_reset(b);
    const unsigned char *run = j->p;
    while (j->p < j->end) {
        /* plain ASCII and 2-byte UTF-8 in blocks; other UTF-8 is checked below */
        j->p += tn_text_json_plain((const char *)j->p, (size_t)(j->end - j->p), 1);
        if (j->p == j->end)
            break;
        unsigned c = *j->p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            j->p++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = jp_utf8(j->p, j->end);
            if (!n)
                return -1;
            j->p += n;
            continue;
        }
        tn_buf_add(b, run, (size_t)(j->p - run));
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c != '\\' || j->end - j->p < 2)
            return -1; /* a control character, or the end */
        char e = (char)j->p[1];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *k = e ? strchr(from, e) : NULL;
        if (k) {
            tn_buf_add(b, to + (k - from), 1);
            j->p += 2;
        } else if (e == 'u') {
            uint32_t cp, lo;
            if (j->end - j->p < 6 || jp_hex4(j->p + 2, &cp))
                return -1;
            j->p += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return -1;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                    jp_hex4(j->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                j->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            unsigned char u[4];
            size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            if (n == 1)
                u[0] = (unsigned char)cp;
            else {
                for (size_t i = n - 1; i > 0; i--, cp >>= 6)
                    u[i] = (unsigned char)(0x80 | (cp & 0x3f));
                u[0] = (unsigned char)((0xf00 >> n) | cp); /* 110x, 1110, 11110 leads */
            }
            tn_buf_add(b, u, n);
        } else {
            return -1;
        }
        run = j->p;
    }
    return -1;
}

static json_t *jp_value(jp_t *j, tn_buf_t *b);

static json_t *jp_object(jp_t *j, tn_buf_t *b)
{
    json_t *o = json_object();
    jp_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return o;
    }
    for (;;) {
        if (j->p == j->end || *j->p != '"')
            break;
        j->p++;
        if (jp_string(j, b) || memchr(b->data ? b->data : "", 0, b->len))
            break;
        tn_buf_add(b, "", 1);
        /* the key, kept while the value is decoded into the same buffer: on the stack unless
         * it is long (a malloc and free per member was a tenth of this parser's time) */
        char kbuf[64];
        char *key = b->len < sizeof(kbuf) ? memcpy(kbuf, b->data, b->len + 1) : tn_xstrdup(b->data);
        jp_ws(j);
        json_t *v = NULL;
        if (j->p < j->end && *j->p == ':') {
            j->p++;
            v = jp_value(j, b);
        }
        /* a duplicate replaces the first value and leaves the size: jansson's error (found
         * here rather than by a lookup before each member) */
        size_t members = json_object_size(o);
        int failed = !v || json_object_set_new_nocheck(o, key, v) || json_object_size(o) == members;
        if (key != kbuf)
            free(key);
        if (failed)
            break;
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            jp_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *jp_array(jp_t *j, tn_buf_t *b)
{
    json_t *a = json_array();
    jp_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return a;
    }
    for (;;) {
        json_t *v = jp_value(j, b);
        if (!v || json_array_append_new(a, v))
            break;
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

static int jp_word(jp_t *j, const char *w, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static json_t *jp_value(jp_t *j, tn_buf_t *b)
{
    jp_ws(j);
    if (j->p == j->end || j->depth >= 64)
        return NULL;
    unsigned c = *j->p;
    json_t *v = NULL;
    if (c == '{' || c == '[') {
        j->p++;
        j->depth++;
        v = c == '{' ? jp_object(j, b) : jp_array(j, b);
        j->depth--;
    } else if (c == '"') {
        j->p++;
        if (jp_string(j, b) == 0)
            v = json_stringn_nocheck(b->data ? b->data : "", b->len);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const unsigned char *s = j->p + (c == '-');
        const unsigned char *d = s;
        json_int_t n = 0;
        while (d < j->end && *d >= '0' && *d <= '9' && d - s < 18)
            n = n * 10 + (*d++ - '0');
        /* no digits, a leading zero, 19 digits or more, a fraction or exponent: jansson's */
        if (d == s || (*s == '0' && d - s > 1) ||
            (d < j->end && (*d == '.' || *d == 'e' || *d == 'E' || (*d >= '0' && *d <= '9'))))
            return NULL;
        j->p = d;
        v = json_integer(c == '-' ? -n : n);
    } else if (jp_word(j, "true", 4)) {
        v = json_true();
    } else if (jp_word(j, "false", 5)) {
        v = json_false();
    } else if (jp_word(j, "null", 4)) {
        v = json_null();
    }
    return v;
}

TN_TESTABLE json_t *ingest_json_parse(const void *value, size_t len)
{
    jp_t j = {value, (const unsigned char *)value + len, 0};
    tn_buf_t b;
    tn_buf_init(&b, (size_t)-1);
    tn_buf_reserve(&b, len); /* no string decodes longer than the record */
    jp_ws(&j);
    json_t *doc = j.p < j.end && (*j.p == '{' || *j.p == '[') ? jp_value(&j, &b) : NULL;
    jp_ws(&j);
    if (doc && j.p != j.end) {
        json_decref(doc);
        doc = NULL;
    }
    tn_buf_cleanup(&b);
    return doc;
}

/* The raw value parsed, with invalid UTF-8 repaired (and counted) if that is what kept it from
 * parsing. */
static json_t *parse(const void *value, size_t len, size_t *invalid, ingest_reject_t *why)
{
    json_t *fast = ingest_json_parse(value, len);
    if (fast)
        return fast;
    json_error_t jerr;
    json_t *doc = json_loadb(value, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (doc || json_error_code(&jerr) != json_error_invalid_utf8)
        return doc ? doc
                   : reject(why, "json", "line %d column %d: %s", jerr.line, jerr.column,
                            jerr.text);
    size_t n;
    char *fixed = tn_text_utf8_repair(value, len, &n, invalid);
    doc = json_loadb(fixed, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    free(fixed);
    return doc ? doc
               : reject(why, "json", "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
}

char *ingest_enrich(const ingest_rules_t *r, const void *value, size_t len, size_t max_bytes,
                    size_t *pii_counts, size_t *invalid_utf8, ingest_reject_t *why, size_t *out_len,
                    char **ticket_id)
{
    size_t bad = 0;
    if (len > max_bytes)
        return reject(why, "too_large", "record of %zu bytes, more than %zu", len, max_bytes);
    json_t *raw = parse(value, len, &bad, why);
    if (!raw)
        return NULL;
    json_t *ver = json_object_get(raw, "schema_version");
    if (json_is_integer(ver) && json_integer_value(ver) != 1) {
        long long v = (long long)json_integer_value(ver); /* ver belongs to raw */
        json_decref(raw);
        return reject(why, "unknown_version", "schema_version %lld is not known (1 is)", v);
    }
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(r->raw, raw, &se, 1, &nse) != TN_OK) {
        char line[900];
        json_decref(raw);
        return reject(why, "schema", "%s",
                      nse ? tn_schema_error_format(&se, line, sizeof(line)) : "invalid");
    }

    /* The value is written directly, members in the order of the schema's examples; the copied
     * members passed the same rules in tickets.raw, the rest is checked by out_violation(). */
    scratch_t *sc = tn_tls_get(&scratch);
    tn_buf_t *out = &sc->out;
    out->max = (size_t)-1;
    tn_buf_reset(out);
    tn_buf_adds(out, "{\"schema_version\":1");
    copy_field(out, raw, "ticket_id");
    copy_field(out, raw, "tenant_id");
    copy_field(out, raw, "created_at");
    copy_field(out, raw, "received_at");
    *ticket_id = tn_xstrdup(json_string_value(json_object_get(raw, "ticket_id")));
    if (json_is_true(json_object_get(raw, "deleted"))) {
        put_key(out, "deleted");
        tn_buf_adds(out, "true");
        put_enriched_at(out);
        tn_buf_add(out, "}", 1);
        json_decref(raw);
        if (invalid_utf8)
            *invalid_utf8 = bad;
        return value_out(sc, out_len);
    }
    copy_field(out, raw, "source");
    copy_field(out, raw, "metadata");

    /* normalize */
    json_t *jt = json_object_get(raw, "title"), *jb = json_object_get(raw, "body");
    int html = !strcmp(json_string_value(json_object_get(raw, "content_type")), "text/html");
    tn_text_norm_t nt, nb;
    char *title = tn_text_normalize_into(json_string_value(jt), json_string_length(jt), 0, &nt,
                                         &sc->title, &sc->title_cap);
    char *body = tn_text_normalize_into(json_string_value(jb), json_string_length(jb),
                                        html ? TN_TEXT_HTML : 0, &nb, &sc->body, &sc->body_cap);
    bad += nt.invalid_utf8 + nb.invalid_utf8;
    char hash[65];
    tn_text_sha256_hex(body, nb.len, hash);

    /* language and category from one pass over the words of title and body (the title's
     * keywords weigh more), before redaction */
    const char *hint = json_string_value(json_object_get(raw, "lang"));
    tn_lang_t lang;
    tn_category_result_t cat =
        tn_category_classify_lang(r->category, title, nt.len, body, nb.len, hint, &lang);
    json_decref(raw);

    /* redact */
    char err[256];
    if (redact(r, title, nt.len, pii_counts, &sc->rtitle, err, sizeof(err)) != TN_OK ||
        redact(r, body, nb.len, pii_counts, &sc->rbody, err, sizeof(err)) != TN_OK) {
        scratch_trim(sc);
        free(*ticket_id);
        *ticket_id = NULL;
        return reject(why, "enrich", "PII redaction failed: %s", err);
    }
    char *rtitle = sc->rtitle.data, *rbody = sc->rbody.data;
    size_t tlen = sc->rtitle.len, blen = sc->rbody.len;
    if (tlen == 0) { /* the title was only whitespace or controls */
        tn_buf_adds(&sc->rtitle, "(untitled)");
        rtitle = sc->rtitle.data;
        tlen = sc->rtitle.len;
    }
    /* a placeholder may be longer than what it replaced (code points <= bytes: count only
     * when the bytes could pass) */
    if (tlen > TITLE_MAX && tn_text_cp_count(rtitle, tlen) > TITLE_MAX)
        tlen = cut_title(rtitle, tlen);
    /* an empty body: the title is the text to index */
    const char *text = blen ? rbody : rtitle;
    size_t text_len = blen ? blen : tlen;
    tn_text_chunk_t *ch = NULL;
    size_t nch = 0;
    if (tn_text_chunk(text, text_len, r->chunk_words, r->chunk_overlap, &ch, &nch) != TN_OK)
        nch = 0;
    char line[900];
    if (out_violation(rtitle, tlen, text, text_len, cat.category, cat.priority, ch, nch,
                      r->chunk_text, line, sizeof(line))) {
        free(ch);
        scratch_trim(sc);
        free(*ticket_id);
        *ticket_id = NULL;
        return reject(why, "enrich", "output does not match tickets.enriched: %s", line);
    }

    put_key(out, "title");
    put_str(out, rtitle, tlen);
    put_key(out, "text");
    put_str(out, text, text_len);
    put_key(out, "lang");
    put_str(out, lang.code, strlen(lang.code));
    put_key(out, "lang_confidence");
    put_confidence(out, lang.confidence);
    put_key(out, "category");
    put_str(out, cat.category, strlen(cat.category));
    put_key(out, "priority");
    put_str(out, cat.priority, strlen(cat.priority));
    put_key(out, "pii");
    tn_buf_add(out, "{", 1);
    for (size_t i = 0, k = 0; pii_counts && i < tn_pii_ntypes(r->pii); i++) {
        if (!pii_counts[i])
            continue;
        tn_buf_adds(out, k++ ? ",\"" : "\""); /* "name":count, no printf */
        tn_buf_adds(out, tn_pii_type_name(r->pii, i));
        tn_buf_add(out, "\":", 2);
        tn_buf_add_uint(out, pii_counts[i]);
    }
    tn_buf_add(out, "}", 1);
    put_key(out, "invalid_utf8");
    tn_buf_add_uint(out, bad);
    put_key(out, "content_hash");
    put_str(out, hash, 64);
    put_enriched_at(out);
    put_key(out, "chunks");
    put_chunks(out, text, ch, nch, r->chunk_text);
    tn_buf_add(out, "}", 1);
    free(ch);
    if (invalid_utf8)
        *invalid_utf8 = bad;
    return value_out(sc, out_len);
}
