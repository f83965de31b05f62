/* Text for ingest: UTF-8 repair, HTML to text, NFC, whitespace collapse, SHA-256, chunking. */
#include "taina/text.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "taina/mem.h"
#include "bytes_int.h"

#define REPLACEMENT 0xFFFD

/* ---------------------------------------------------------------------------------------------
 * Code points */

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Decode one code point from s[0..n), n > 0. Returns the bytes consumed and the code point, or
 * -1 for an invalid sequence. An invalid sequence is the longest prefix of a well-formed one
 * (Unicode's "maximal subpart" practice, as browsers and Python do): a truncated sequence is
 * one error, while overlong leads (C0, C1, E0 80.., F0 80..), surrogates (ED A0..) and bytes
 * above U+10FFFF fail at their first bad byte and every stray byte after that is its own error.
 */
static size_t decode_utf8(const unsigned char *s, size_t n, int32_t *cp)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *cp = -1;
        return 1;
    }
    size_t i = 1;
    for (; i <= need && i < n; i++) {
        if (s[i] < lo || s[i] > hi)
            break;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = i > need ? (int32_t)v : -1;
    return i;
}

/* ---------------------------------------------------------------------------------------------
 * Eight bytes at a time. Ticket text is mostly runs of printable ASCII with a 2-byte letter now
 * and then, so the scans below test 8 bytes with a few integer operations (SWAR, bytes_int.h)
 * and fall back to the byte-at-a-time code only at the bytes that need it. */

/* Bytes outside printable ASCII [0x20, 0x7F). */
static inline uint64_t bytes_not_printable(uint64_t w)
{
    return bytes_lt(w, 0x20) | bytes_gt(w, 0x7E);
}

/* Unicode White_Space: Zs, Zl, Zp, TAB..CR and NEL. */
static int is_space_cp(int32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85)
        return 1;
    if (cp < 0xA0)
        return 0;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

/* Cc (C0, DEL, C1) that is not whitespace: removed. */
static int is_dropped_control(int32_t cp)
{
    return (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) && !is_space_cp(cp);
}

/* Valid UTF-8 without NUL and controls; returns the length. out holds 3 * len + 1 bytes. */
static size_t repair(const unsigned char *in, size_t len, char *out, size_t *invalid)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        /* printable ASCII, most of the text, 8 bytes at a time up to the first other byte; all 8
         * are stored (o <= 3 * i leaves room), the rest is overwritten next */
        while (i + 8 <= len) {
            uint64_t bad = bytes_not_printable(tn_load8_le(in + i));
            memcpy(out + o, in + i, 8);
            size_t k = bad ? first_byte(bad) : 8;
            i += k;
            o += k;
            if (bad)
                break;
        }
        if (i == len)
            break;
        if (in[i] >= 0x20 && in[i] < 0x7F) {
            out[o++] = (char)in[i++];
            continue;
        }
        int32_t cp;
        size_t k = decode_utf8(in + i, len - i, &cp);
        if (cp < 0) {
            (*invalid)++;
            o += put_utf8(out + o, REPLACEMENT);
        } else if (!is_dropped_control(cp)) {
            memcpy(out + o, in + i, k);
            o += k;
        }
        i += k;
    }
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * HTML to text. One pass; every search either consumes what it scanned or is cached, so the
 * whole pass is linear in the input (1 MB of '<' or '&' included). */

typedef struct entity {
    const char *name;
    uint32_t cp;
} entity_t;

static const entity_t entities[] = {
    {"amp", '&'},     {"lt", '<'},      {"gt", '>'},      {"quot", '"'},    {"apos", '\''},
    {"nbsp", 0xA0},   {"aacute", 0xE1}, {"eacute", 0xE9}, {"iacute", 0xED}, {"oacute", 0xF3},
    {"uacute", 0xFA}, {"ntilde", 0xF1}, {"Aacute", 0xC1}, {"Eacute", 0xC9}, {"Iacute", 0xCD},
    {"Oacute", 0xD3}, {"Uacute", 0xDA}, {"Ntilde", 0xD1}, {"uuml", 0xFC},   {"Uuml", 0xDC},
    {"iexcl", 0xA1},  {"iquest", 0xBF}, {"copy", 0xA9},   {"reg", 0xAE},    {"euro", 0x20AC},
    {"ordf", 0xAA},   {"ordm", 0xBA},   {"laquo", 0xAB},  {"raquo", 0xBB},
};

/* Tags that separate words: they become a space. */
static const char *const block_tags[] = {
    "p",       "div",     "br",     "li",     "ul",         "ol",  "h1", "h2",
    "h3",      "h4",      "h5",     "h6",     "tr",         "td",  "th", "table",
    "section", "article", "header", "footer", "blockquote", "pre", "hr",
};

typedef struct html {
    const char *s;
    size_t n;
    size_t gt;    /* the next '>' at or after the last query (n: none left); SIZE_MAX: unknown */
    int noquotes; /* an attribute quote ran to the end once: tags now end at the first '>' */
} html_t;

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static size_t next_gt(html_t *h, size_t from)
{
    if (h->gt != SIZE_MAX && h->gt >= from)
        return h->gt;
    const char *p = memchr(h->s + from, '>', h->n - from);
    h->gt = p ? (size_t)(p - h->s) : h->n;
    return h->gt;
}

/* The '>' closing the tag whose body starts at @p from, skipping '>' in quoted attribute values;
 * n when there is none. */
static size_t tag_end(html_t *h, size_t from)
{
    size_t g = next_gt(h, from);
    if (g == h->n || h->noquotes)
        return g;
    char quote = 0, prev = 0;
    for (size_t j = from; j < h->n; j++) {
        char c = h->s[j];
        if (quote) {
            if (c == quote)
                quote = 0;
        } else if ((c == '"' || c == '\'') && prev == '=') {
            quote = c;
        } else if (c == '>') {
            return j;
        }
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            prev = c;
    }
    h->noquotes = 1; /* scanned to the end once: never again, to stay linear */
    return g;
}

/* Position of "</name" (any case) at or after @p from, or n. */
static size_t find_close(const html_t *h, size_t from, const char *name)
{
    size_t nl = strlen(name);
    while (from < h->n) {
        const char *p = memchr(h->s + from, '<', h->n - from);
        if (!p)
            return h->n;
        size_t at = (size_t)(p - h->s);
        if (at + 2 + nl <= h->n && h->s[at + 1] == '/' &&
            strncasecmp(h->s + at + 2, name, nl) == 0 &&
            (at + 2 + nl == h->n || !is_alnum(h->s[at + 2 + nl])))
            return at;
        from = at + 1;
    }
    return h->n;
}

/* Decode the entity at s[0] == '&'. Returns its length (with '&' and ';') or 0 if it is not one
 * we know, which is then kept as written. */
static size_t parse_entity(const char *s, size_t n, uint32_t *cp)
{
    size_t j = 1;
    if (j < n && s[j] == '#') {
        int hex = 0;
        uint32_t v = 0;
        j++;
        if (j < n && (s[j] == 'x' || s[j] == 'X')) {
            hex = 1;
            j++;
        }
        size_t first = j;
        for (; j < n; j++) {
            char c = s[j];
            uint32_t d;
            if (c >= '0' && c <= '9')
                d = (uint32_t)(c - '0');
            else if (hex && c >= 'a' && c <= 'f')
                d = (uint32_t)(c - 'a' + 10);
            else if (hex && c >= 'A' && c <= 'F')
                d = (uint32_t)(c - 'A' + 10);
            else
                break;
            if (v <= 0x10FFFF) /* past it stays invalid; no overflow */
                v = v * (hex ? 16 : 10) + d;
        }
        if (j == first || j >= n || s[j] != ';')
            return 0;
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            v = REPLACEMENT;
        *cp = v;
        return j + 1;
    }
    while (j < n && j <= 8 && is_alnum(s[j]))
        j++;
    if (j >= n || s[j] != ';')
        return 0;
    for (size_t e = 0; e < TN_ARRAY_LEN(entities); e++)
        if (strlen(entities[e].name) == j - 1 && memcmp(entities[e].name, s + 1, j - 1) == 0) {
            *cp = entities[e].cp;
            return j + 1;
        }
    return 0;
}

static int is_block(const char *name)
{
    for (size_t i = 0; i < TN_ARRAY_LEN(block_tags); i++)
        if (strcmp(block_tags[i], name) == 0)
            return 1;
    return 0;
}

/* The tag at s[i] == '<' (an element, end tag, <!...> or <?...>): skip it, and the content
 * of script/style. Returns the next position, or 0 when '<' is plain text. */
static size_t skip_tag(html_t *h, size_t i, char *out, size_t *o)
{
    const char *s = h->s;
    size_t n = h->n;
    if (i + 4 <= n && memcmp(s + i, "<!--", 4) == 0) {
        const char *e = memmem(s + i + 4, n - i - 4, "-->", 3);
        return e ? (size_t)(e - s) + 3 : n; /* an unclosed comment runs to the end */
    }
    size_t j = i + 1;
    int closing = j < n && s[j] == '/';
    if (closing)
        j++;
    if (j >= n || !(is_alpha(s[j]) || (!closing && (s[j] == '!' || s[j] == '?'))))
        return 0;
    size_t end = tag_end(h, j);
    if (end == n)
        return 0; /* no '>': "a<b" is text */
    char name[16];
    size_t nl = 0;
    while (j < end && is_alnum(s[j]) && nl < sizeof(name) - 1) {
        char c = s[j++];
        name[nl++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    name[nl] = '\0';
    if (is_block(name))
        out[(*o)++] = ' ';
    if (!closing && s[end - 1] != '/' && (!strcmp(name, "script") || !strcmp(name, "style"))) {
        size_t c = find_close(h, end + 1, name);
        if (c == n)
            return n; /* unclosed: the rest is script */
        size_t ce = tag_end(h, c + 2);
        return ce == n ? n : ce + 1;
    }
    return end + 1;
}

/* HTML in[0..len) to text in out (never longer than the input). Returns the length. */
static size_t html_to_text(const char *in, size_t len, char *out)
{
    html_t h = {in, len, SIZE_MAX, 0};
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (in[i] == '<') {
            size_t next = skip_tag(&h, i, out, &o);
            if (next) {
                i = next;
                continue;
            }
        } else if (in[i] == '&') {
            uint32_t cp = 0;
            size_t k = parse_entity(in + i, len - i, &cp);
            if (k) {
                if (!is_dropped_control((int32_t)cp))
                    o += put_utf8(out + o, cp);
                i += k;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Normalize */

/*
 * Bytes collapse() copies as they stand, 8 at a time: printable ASCII but space, continuation
 * bytes, and the leads C3..DF of 2-byte characters (U+00C0..U+07FF: á, ñ, none of them
 * whitespace). Not C2: U+0085 and U+00A0 are whitespace. On w ^ HIGHS, bytes from 0x80 up turn
 * into 0x00..0x7F and ASCII into 0x80 and up, which bytes_lt() never counts.
 */
static inline uint64_t kept_bytes(uint64_t w)
{
    uint64_t x = w ^ HIGHS;
    uint64_t ascii = ~(bytes_lt(w, 0x21) | bytes_gt(w, 0x7E)) & HIGHS;
    uint64_t cont = bytes_lt(x, 0x40);
    uint64_t lead2 = bytes_lt(x, 0x60) & ~bytes_lt(x, 0x43);
    return ascii | cont | lead2;
}

/* Collapse whitespace runs in valid UTF-8 in[0..len) to one space, trimmed; counts code points. */
static size_t collapse(const char *in, size_t len, char *out, size_t *chars)
{
    size_t o = 0, nchars = 0;
    int pending = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k;
#ifdef TN_V16
        /* 16 bytes kept as they are, with no second space in a row: copied at once */
        if (i + 16 <= len) {
            __m128i v = tn_v16_load(in + i);
            unsigned space = tn_v16_bits(tn_v16_eq(v, ' '));
            __m128i cont = tn_v16_in(v, 0x80, 0xBF);
            unsigned lead2 = tn_v16_bits(tn_v16_in(v, 0xC3, 0xDF));
            unsigned kept = tn_v16_bits(tn_v16_in(v, 0x21, 0x7E)) | tn_v16_bits(cont) | lead2;
            unsigned bad = (~(kept | space) & 0xFFFF) | (space & (space << 1)) | (lead2 & 0x8000);
            if (pending || o == 0)
                bad |= space & 1;
            if (!bad) {
                if (pending) {
                    out[o++] = ' ';
                    nchars++;
                }
                _mm_storeu_si128((__m128i *)(out + o), v);
                pending = (int)(space >> 15);
                o += 16 - (size_t)pending;
                nchars += 16 - tn_v16_count(cont) - (size_t)pending;
                i += 16;
                continue;
            }
        }
#endif
        if (i + 8 <= len) {
            uint64_t w = tn_load8_le(in + i);
            uint64_t space = bytes_eq(w, ' ');
            uint64_t bad = ~(kept_bytes(w) | space) & HIGHS;
            bad |= space & (space << 8); /* the second of two spaces */
            if (pending || o == 0)
                bad |= space & 0x80; /* a space first would be dropped, not copied */
            /* a 2-byte lead last (110xxxxx): the byte steps decode it with its second byte */
            bad |= (w & ~(w << 2)) & (w << 1) & (0x80ULL << 56);
            /* bytes before the first bad one are copied as they are, but a space last becomes
             * the pending one; all 8 are stored (o + pending <= i leaves room) */
            uint64_t run = before_first(bad);
            k = bad ? first_byte(bad) : 8;
            if (k > 0) {
                if (pending) {
                    out[o++] = ' ';
                    nchars++;
                }
                memcpy(out + o, in + i, 8);
                pending = (int)((space >> (8 * k - 1)) & 1);
                o += k - (size_t)pending;
                nchars += count_bytes(lead_bytes(w) & run) - (size_t)pending;
                i += k;
            }
            if (!bad)
                continue;
        }
        unsigned char c = (unsigned char)in[i];
        if (c > ' ' && c < 0x7F) { /* printable ASCII but space: most of the text */
            if (pending) {
                out[o++] = ' ';
                nchars++;
                pending = 0;
            }
            out[o++] = (char)c;
            nchars++;
            i++;
            continue;
        }
        if (c == ' ') {
            pending = o > 0;
            i++;
            continue;
        }
        k = decode_utf8((const unsigned char *)in + i, len - i, &cp);
        if (is_space_cp(cp)) {
            pending = o > 0;
        } else {
            if (pending) {
                out[o++] = ' ';
                nchars++;
                pending = 0;
            }
            memcpy(out + o, in + i, k);
            o += k;
            nchars++;
        }
        i += k;
    }
    *chars = nchars;
    return o;
}

/*
 * A code point that NFC leaves alone wherever it stands: below U+0300 (every one of them is NFC
 * quick check Yes with combining class 0, and none is the second of a composition), or one with
 * combining class 0, no decomposition, no part in any composition and outside the Hangul jamo
 * and syllables (composed algorithmically). tests/unit/common/text_test.c checks this against
 * utf8proc for every code point.
 */
int tn_text_nfc_inert(int32_t cp)
{
    if (cp < 0x300)
        return 1;
    if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xAC00 && cp <= 0xD7A3))
        return 0;
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    return p->combining_class == 0 && p->decomp_seqindex == UINT16_MAX &&
           p->comb_index == UINT16_MAX;
}

/* Valid UTF-8 that NFC leaves unchanged because every code point is inert (most text). */
static int nfc_stable(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        /* Bytes below 0xCC (ASCII, a continuation byte or a lead below U+0300) are skipped, 8 at a
         * time: a byte is 0xCC or more when bit 7 is set and its low 7 bits exceed 0x4B. A jump
         * lands on a lead byte, as the byte steps did, since continuations are below 0xC0. */
        if (i + 8 <= len) {
            uint64_t w = tn_load8_le(u + i);
            uint64_t big = w & bytes_gt(w & ~HIGHS, 0x4B);
            if (!big) {
                i += 8;
                continue;
            }
            i += first_byte(big);
        } else if (u[i] < 0xCC) {
            i++;
            continue;
        }
        int32_t cp;
        i += decode_utf8(u + i, len - i, &cp);
        if (cp < 0 || !tn_text_nfc_inert(cp))
            return 0;
    }
    return 1;
}

/*
 * Text that repair() and NFC leave as it is: valid UTF-8, no control but whitespace, every code
 * point NFC-inert (most tickets). Read only, 8 bytes at a time over printable ASCII, so that
 * such text goes straight to collapse() without the copy into a 3 * len buffer and the second
 * pass of nfc_stable().
 */
static int clean_nfc(const unsigned char *u, size_t len)
{
    for (size_t i = 0; i < len;) {
#ifdef TN_V16
        if (i + 16 <= len && tn_v16_bits(tn_v16_in(tn_v16_load(u + i), 0x20, 0x7E)) == 0xFFFF) {
            i += 16;
            continue;
        }
#endif
        if (i + 8 <= len) {
            uint64_t odd = bytes_not_printable(tn_load8_le(u + i));
            if (!odd) {
                i += 8;
                continue;
            }
            i += first_byte(odd);
        }
        int32_t cp;
        i += decode_utf8(u + i, len - i, &cp);
        if (cp < 0 || is_dropped_control(cp) || !tn_text_nfc_inert(cp))
            return 0;
    }
    return 1;
}

/* Room for @p n bytes in *buf (of *cap bytes): the buffer. */
static char *room(char **buf, size_t *cap, size_t n)
{
    if (*cap < n) {
        free(*buf); /* nothing in it to keep */
        *buf = tn_xmalloc(n);
        *cap = n;
    }
    return *buf;
}

char *tn_text_normalize_into(const char *in, size_t len, unsigned flags, tn_text_norm_t *st,
                             char **buf, size_t *cap)
{
    tn_text_norm_t stats = {0, 0, 0};
    TN_ASSERT(in || len == 0);
    if (!(flags & TN_TEXT_HTML) && clean_nfc((const unsigned char *)in, len)) {
        char *out = room(buf, cap, len + 1);
        stats.len = len ? collapse(in, len, out, &stats.chars) : 0;
        out[stats.len] = '\0';
        if (st)
            *st = stats;
        return out;
    }
    /* A bad byte becomes 3 bytes of U+FFFD; nothing else grows. */
    TN_ASSERT(len < SIZE_MAX / 3);
    char *a = tn_xmalloc(3 * len + 1);
    size_t alen = len ? repair((const unsigned char *)in, len, a, &stats.invalid_utf8) : 0;
    if (flags & TN_TEXT_HTML) {
        char *b = tn_xmalloc(alen + 1);
        alen = html_to_text(a, alen, b);
        free(a);
        a = b;
    }
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t nlen = 0;
    if (alen > 0 && !nfc_stable(a, alen))
        nlen = utf8proc_map((const utf8proc_uint8_t *)a, (utf8proc_ssize_t)alen, &nfc,
                            UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    const char *src = a;
    size_t slen = alen;
    if (nlen >= 0 && nfc) { /* the input is valid UTF-8, so utf8proc fails only on memory */
        src = (const char *)nfc;
        slen = (size_t)nlen;
    }
    char *out = room(buf, cap, slen + 1);
    stats.len = collapse(src, slen, out, &stats.chars);
    out[stats.len] = '\0';
    free(nfc);
    free(a);
    if (st)
        *st = stats;
    return out;
}

char *tn_text_normalize(const char *in, size_t len, unsigned flags, tn_text_norm_t *st)
{
    char *buf = NULL;
    size_t cap = 0;
    return tn_text_normalize_into(in, len, flags, st, &buf, &cap);
}

/* SHA-256 fetched from the default provider once: EVP_Digest() with EVP_sha256() looks the
 * implementation up on every call (locks, a name lookup, allocations), some 0.4 us of the
 * 1.4 us a 1 KB ticket's hash took. Kept for the life of the process. Each thread keeps one
 * digest context too, initialized again for each text: EVP_Digest() allocated and freed a
 * context and its state, about 10 allocations a ticket. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void sha256_ctx_free(void *block)
{
    EVP_MD_CTX_free(*(EVP_MD_CTX **)block);
}

static tn_tls_t sha256_ctx = TN_TLS_INIT(sizeof(EVP_MD_CTX *), sha256_ctx_free);

void tn_text_sha256_hex(const void *p, size_t len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    pthread_once(&sha256_once, sha256_fetch);
    EVP_MD_CTX **ctxp = tn_tls_get(&sha256_ctx), *ctx = *ctxp;
    if (!ctx) {
        ctx = *ctxp = EVP_MD_CTX_new();
        TN_ASSERT(ctx);
    }
    /* SHA-256 from the default provider only fails when the library is broken. */
    int ok = EVP_DigestInit_ex2(ctx, sha256_md ? sha256_md : EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, p, len) && EVP_DigestFinal_ex(ctx, md, &n);
    TN_ASSERT(ok == 1 && n == 32);
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xF];
    }
    hex[64] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Chunking */

/* w[0..len) ends in the UTF-8 character E2 80 @p last (” ’ …). */
static int ends_e280(const unsigned char *w, size_t len, unsigned char last)
{
    return len >= 3 && w[len - 1] == last && w[len - 2] == 0x80 && w[len - 3] == 0xE2;
}

/* A word ending in . ! ? or …, then any closing quotes or brackets: " ' ) ] » ” ’. Byte tests
 * instead of strlen and memcmp per closer: this runs once per word. */
static int is_sentence_end(const char *text, size_t len)
{
    const unsigned char *w = (const unsigned char *)text;
    while (len > 0) {
        unsigned char c = w[len - 1];
        if (c == '"' || c == '\'' || c == ')' || c == ']')
            len -= 1;
        else if (c == 0xBB && len >= 2 && w[len - 2] == 0xC2) /* » */
            len -= 2;
        else if (ends_e280(w, len, 0x9D) || ends_e280(w, len, 0x99)) /* ” ’ */
            len -= 3;
        else
            break;
    }
    if (len == 0)
        return 0;
    unsigned char last = w[len - 1];
    return last == '.' || last == '!' || last == '?' || ends_e280(w, len, 0xA6) /* … */;
}

static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The bytes is_sep() accepts: space and 0x09..0x0D. */
static inline uint64_t sep_bytes(uint64_t w)
{
    return bytes_eq(w, ' ') | (bytes_lt(w, 0x0E) & ~bytes_lt(w, 0x09));
}

/* The separators of p[0..64), one bit per byte, byte 0 in bit 0. */
static inline uint64_t sep_bits64(const char *p)
{
    uint64_t bits = 0;
#ifdef TN_V16
    for (int k = 0; k < 4; k++) {
        __m128i v = tn_v16_load(p + 16 * k);
        bits |= (uint64_t)tn_v16_bits(_mm_or_si128(tn_v16_eq(v, ' '), tn_v16_in(v, 0x09, 0x0D)))
                << (16 * k);
    }
#else
    for (int k = 0; k < 8; k++) /* bit 7 of each byte gathered by a multiply (bytes_int.h) */
        bits |= ((sep_bytes(tn_load8_le(p + 8 * k)) >> 7) * 0x0102040810204080ULL >> 56) << (8 * k);
#endif
    return bits;
}

/*
 * The words of a text as bits: bit j of first[b] is set when byte 64 * b + j starts a word (a
 * byte that is no separator, first or after one that is), before[b] counts the words that start
 * in the blocks before b. Built without a branch per word (storing every word's start, the way
 * this began, was a mispredicted branch a word); a word's start is looked up only for the few
 * words that bound a chunk or are looked at as a place to cut.
 */
typedef struct words {
    uint64_t *first;
    size_t *before; /* nblocks + 1 entries: before[nblocks] is the number of words */
    size_t nblocks;
    size_t b; /* word_at()'s block, where the last lookup was */
} words_t;

static void words_init(words_t *w, const char *text, size_t len)
{
    w->nblocks = len / 64 + 1;
    w->first =
        tn_xmalloc(w->nblocks * (sizeof(*w->first) + sizeof(*w->before)) + sizeof(*w->before));
    w->before = (size_t *)(w->first + w->nblocks);
    w->b = 0;
    uint64_t carry = 1; /* the byte before is a separator (or there is none) */
    size_t n = 0;
    for (size_t b = 0; b < w->nblocks; b++) {
        uint64_t sep;
        if (64 * b + 64 <= len) {
            sep = sep_bits64(text + 64 * b);
        } else { /* the tail, padded with separators */
            char tail[64];
            memset(tail, ' ', sizeof(tail));
            if (len > 64 * b)
                memcpy(tail, text + 64 * b, len - 64 * b);
            sep = sep_bits64(tail);
        }
        uint64_t first = ~sep & ((sep << 1) | carry);
        carry = sep >> 63;
        w->first[b] = first;
        w->before[b] = n;
        n += (size_t)__builtin_popcountll(first);
    }
    w->before[w->nblocks] = n;
}

static size_t words_count(const words_t *w)
{
    return w->before[w->nblocks];
}

/* The first byte of word @p k (< words_count()): its block found from the last lookup's (chunks
 * move forward, and back a little for a place to cut), then its bit. */
static size_t word_at(words_t *w, size_t k)
{
    while (k < w->before[w->b])
        w->b--;
    while (k >= w->before[w->b + 1])
        w->b++;
    uint64_t m = w->first[w->b];
    for (size_t r = k - w->before[w->b]; r > 0; r--)
        m &= m - 1;
    return 64 * w->b + (size_t)__builtin_ctzll(m);
}

/* The end of the word that starts at @p i: the next separator, or len. */
static size_t word_end(const char *text, size_t len, size_t i)
{
    for (; i + 8 <= len; i += 8) {
        uint64_t sep = sep_bytes(tn_load8_le(text + i));
        if (sep)
            return i + first_byte(sep);
    }
    while (i < len && !is_sep(text[i]))
        i++;
    return i;
}

/* Code points before byte @p to, moved there from where the cursor stood (either way). */
static size_t cp_at(tn_text_pos_t *at, const char *text, size_t to)
{
    if (to >= at->byte)
        at->cp += tn_text_cp_count(text + at->byte, to - at->byte);
    else
        at->cp -= tn_text_cp_count(text + to, at->byte - to);
    at->byte = to;
    return at->cp;
}

/*
 * Only the words' first bytes are marked (words_t); a word's start and end, whether it ends a
 * sentence and the code-point offsets are worked out for the few words that bound a chunk or are
 * looked at as a place to cut (a record of every word's ends, code points and sentence flag was
 * most of the time chunking took).
 */
tn_err_t tn_text_chunk(const char *text, size_t len, size_t max_words, size_t overlap,
                       tn_text_chunk_t **out, size_t *n)
{
    TN_ASSERT(out && n && (text || len == 0));
    *out = NULL;
    *n = 0;
    if (max_words == 0 || overlap >= max_words)
        return TN_ERR_INVALID;

    words_t w;
    words_init(&w, text, len);
    size_t nwords = words_count(&w);
    tn_text_pos_t first = {0, 0}, last = {0, 0}; /* code-point cursors: chunk starts, ends */
    tn_text_chunk_t *chunks = NULL;
    size_t nchunks = 0, ccap = 0;
    for (size_t s = 0; s < nwords;) {
        size_t limit = TN_MIN(s + max_words, nwords);
        size_t end = limit;
        if (limit < nwords) {
            /* the last sentence end in the second half of the window, if any */
            for (size_t e = limit; e-- > s + max_words / 2;) {
                size_t ws = word_at(&w, e), we = word_end(text, len, ws);
                if (is_sentence_end(text + ws, we - ws)) {
                    end = e + 1;
                    break;
                }
            }
        }
        if (nchunks == ccap) {
            ccap = ccap ? 2 * ccap : 16;
            chunks = tn_xrealloc(chunks, ccap * sizeof(*chunks));
        }
        size_t bs = word_at(&w, s), be = word_end(text, len, word_at(&w, end - 1));
        /* a chunk starts an overlap before the last one ended: counted back from that end, not
         * on from the last start (the text is counted about once, not twice) */
        if ((bs > last.byte ? bs - last.byte : last.byte - bs) <
            (bs > first.byte ? bs - first.byte : first.byte - bs))
            first = last;
        chunks[nchunks] = (tn_text_chunk_t){
            .index = nchunks,
            .start = cp_at(&first, text, bs),
            .end = cp_at(&last, text, be),
            .byte_start = bs,
            .byte_end = be,
            .words = end - s,
        };
        nchunks++;
        if (end == nwords)
            break;
        size_t next = end > overlap ? end - overlap : 0;
        s = TN_MAX(next, s + 1); /* always advance */
    }
    free(w.first);
    *out = chunks;
    *n = nchunks;
    return TN_OK;
}

size_t tn_text_utf8_complete(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t lead = len;
    while (lead > 0 && len - lead < 4 && (u[lead - 1] & 0xC0) == 0x80)
        lead--;
    if (lead == 0)
        return len;
    unsigned char c = u[--lead];
    size_t need = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return lead + need > len ? lead : len;
}

size_t tn_text_json_plain(const char *s, size_t len, int utf8)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
#ifdef TN_V16
    for (; i + 16 <= len; i += 16) {
        __m128i v = tn_v16_load(u + i);
        __m128i special = _mm_or_si128(tn_v16_in(v, 0, 0x1F),
                                       _mm_or_si128(tn_v16_eq(v, '"'), tn_v16_eq(v, '\\')));
        if (tn_v16_bits(special))
            break;
        unsigned high = tn_v16_bits(v);
        if (utf8 && high) { /* only whole 2-byte sequences (C2..DF, then 80..BF) */
            unsigned lead = tn_v16_bits(tn_v16_in(v, 0xC2, 0xDF));
            unsigned cont = tn_v16_bits(tn_v16_in(v, 0x80, 0xBF));
            if (high != (lead | cont) || cont != ((lead << 1) & 0xFFFF) || (lead & 0x8000))
                break;
        }
    }
#endif
    for (; i + 8 <= len; i += 8) {
        uint64_t w = tn_load8_le(u + i);
        uint64_t special = bytes_lt(w, 0x20) | bytes_eq(w, '"') | bytes_eq(w, '\\');
        if (special | (utf8 ? w & HIGHS : 0))
            break;
    }
    for (; i < len; i++) {
        unsigned char c = u[i];
        if (c < 0x20 || c == '"' || c == '\\' || (utf8 && c >= 0x80))
            break;
    }
    return i;
}

size_t tn_text_cp_count(const char *s, size_t len)
{
    size_t n = 0, i = 0;
#ifdef TN_V16
    for (; len - i >= 16; i += 16)
        n += 16 - tn_v16_count(tn_v16_in(tn_v16_load(s + i), 0x80, 0xBF));
#endif
    for (; len - i >= 8; i += 8)
        n += count_bytes(lead_bytes(tn_load8_le(s + i)));
    for (; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

int tn_text_cp_span(const char *s, size_t len, size_t start, size_t end, tn_text_pos_t *at,
                    size_t *byte_start, size_t *byte_end)
{
    if (start >= end)
        return -1;
    size_t cp = 0, i = 0;
    if (at && at->cp <= start && at->byte <= len) {
        cp = at->cp;
        i = at->byte;
    }
    while (i < len && cp < end) {
        /* 8 bytes at once when none of their code points is start and they do not reach end */
        if (i + 8 <= len) {
            size_t n8 = count_bytes(lead_bytes(tn_load8_le(s + i)));
            if ((cp > start || cp + n8 <= start) && cp + n8 < end) {
                cp += n8;
                i += 8;
                continue;
            }
        }
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (cp == start) {
                *byte_start = i;
                if (at)
                    *at = (tn_text_pos_t){start, i};
            }
            cp++;
        }
        i++;
    }
    if (cp < end)
        return -1;
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80) /* the last character's tail */
        i++;
    *byte_end = i;
    return 0;
}

char *tn_text_utf8_repair(const char *in, size_t len, size_t *out_len, size_t *invalid)
{
    char *out = tn_xmalloc(3 * len + 1);
    size_t o = 0, bad = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k = decode_utf8((const unsigned char *)in + i, len - i, &cp);
        if (cp < 0) {
            bad++;
            o += put_utf8(out + o, REPLACEMENT);
        } else {
            memcpy(out + o, in + i, k);
            o += k;
        }
        i += k;
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    if (invalid)
        *invalid += bad;
    return out;
}
