/* Keyword categorization on case- and accent-folded text (utf8proc). */
#include "taina/category.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#include "taina/buf.h"
#include "taina/mem.h"
#include "bytes_int.h"
#include "lang_int.h"

#define MAX_RULES 256

const char tn_category_default_rules[] =
    "# category        priority lang keywords\n"
    "passport          normal   es   pasaporte, pasaportes\n"
    "passport          normal   en   passport, passports\n"
    "national_id       normal   es   cedula, documento de identidad, carnet de identidad\n"
    "national_id       normal   en   id card, identity card, national id\n"
    "driving_licence   normal   es   licencia de conducir, licencia de conduccion, permiso de "
    "conducir, permiso internacional de conducir, permiso de aprendizaje\n"
    "driving_licence   normal   en   driving licence, driver's license, drivers license, driving "
    "license, driving permit, learner's permit, learner permit, driving test\n"
    "civil_registry    normal   es   acta de nacimiento, certificado de nacimiento, acta de "
    "matrimonio, certificado de matrimonio, registro civil\n"
    "civil_registry    normal   en   birth certificate, marriage certificate, civil registry\n"
    "tax               normal   es   impuesto, impuestos, rnc, declaracion jurada, numero de "
    "identificacion fiscal\n"
    "tax               normal   en   tax, taxes, tax id, tax return\n"
    "vehicle           normal   es   matricula, placa, vehiculo, marbete\n"
    "vehicle           normal   en   vehicle registration, licence plate, license plate, vehicle\n"
    "social_benefits   normal   es   subsidio, pension, ayuda social, beneficio, beneficios\n"
    "social_benefits   normal   en   benefit, benefits, pension, allowance, welfare\n"
    "appointments      normal   es   cita, turno, agendar, reservar\n"
    "appointments      normal   en   appointment, booking, book, schedule\n"
    "complaint         high     es   queja, reclamo, denuncia, mal servicio\n"
    "complaint         high     en   complaint, complain, poor service\n"
    "urgent            urgent   *    urgente, urgent, emergencia, emergency\n";

typedef struct rule {
    char *category;
    char *priority;
    char lang[4];   /* "es", "en", "*" */
    char **phrases; /* folded, " word word " */
    size_t nphrases;
} rule_t;

/* A keyword phrase, found by its first word in the hash table of struct tn_category. */
typedef struct phrase {
    const char *text; /* the rule's folded phrase, " word word " */
    size_t len;
    int rule;
    int next; /* the next phrase with the same first word, -1: none */
} phrase_t;

typedef struct slot {
    const char *word; /* NULL: empty; else the first word of phrases[head] (no spaces) */
    size_t len;
    uint64_t key; /* tn_word_key() of the word: longer words compare their bytes after 8 too */
    int head;
} slot_t;

struct tn_category {
    rule_t rules[MAX_RULES];
    size_t nrules;
    int first[MAX_RULES]; /* the first rule of each rule's category: it holds the score */
    phrase_t *phrases;
    size_t nphrases;
    slot_t *slots; /* open addressing, a power of two at least twice nphrases */
    size_t nslots;
    /* One bit per hash of a first word (4,096 bits from the hash's top 12): most words of a
     * text miss it, one L1 load, without touching the slots. (Two bits, each word testing both,
     * let a fifth as many words through to the slots, but cost more instructions than the
     * probes and mispredicted branches they saved.) */
    uint64_t filter[64];
};

static inline int maybe_first_word(const tn_category_t *c, uint32_t h)
{
    return (int)((c->filter[h >> 26] >> ((h >> 20) & 63)) & 1);
}

/* A word's hash from its key (tn_word_key(): its first 8 bytes, what the scan reads in one load)
 * and its length (no multiply per byte); words that share both compare their bytes after the
 * eighth. */
static uint32_t hash_key(uint64_t key, size_t len)
{
    return (uint32_t)(((key ^ len) * 0x9E3779B97F4A7C15u) >> 32);
}

static inline const slot_t *find_slot(const tn_category_t *c, const char *w, size_t len,
                                      uint64_t key, uint32_t h)
{
    for (size_t i = h & (c->nslots - 1);; i = (i + 1) & (c->nslots - 1)) {
        const slot_t *sl = &c->slots[i];
        if (!sl->word || (sl->key == key && sl->len == len &&
                          (len <= 8 || memcmp(sl->word + 8, w + 8, len - 8) == 0)))
            return sl;
    }
}

/* The whole text through utf8proc_map: the reference, for what the per-code-point path below
 * cannot do (invalid UTF-8, combining marks that survive the fold and would be reordered). */
static char *fold_map(const char *text, size_t len)
{
    utf8proc_uint8_t *mapped = NULL;
    /* Decompose, drop combining marks, case-fold. Invalid UTF-8 is folded byte-wise instead. */
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &mapped,
                     UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD);
    const char *src = n >= 0 ? (const char *)mapped : text;
    size_t sl = n >= 0 ? (size_t)n : len;
    char *out = tn_xmalloc(sl + 3);
    size_t o = 0;
    out[o++] = ' ';
    for (size_t i = 0; i < sl;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)src + i, (utf8proc_ssize_t)(sl - i), &cp);
        if (k <= 0) { /* invalid byte: a separator */
            k = 1;
            cp = ' ';
        }
        utf8proc_category_t cat = utf8proc_category(cp);
        int word = cp == '\'' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                   (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
        if (word) {
            for (utf8proc_ssize_t j = 0; j < k; j++)
                out[o++] = (char)tolower((unsigned char)src[i + (size_t)j]);
        } else if (out[o - 1] != ' ') {
            out[o++] = ' ';
        }
        i += (size_t)k;
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
    free(mapped);
    return out;
}

#define FOLD_CPS 0x800 /* the table covers one- and two-byte UTF-8 */
#define FOLD_MAX 7

/* One code point folded: its word bytes, ' ' standing for a separator. */
typedef struct fold_entry {
    unsigned char len; /* 0xFF: not in the table */
    char s[FOLD_MAX];
} fold_entry_t;

static fold_entry_t fold_table[FOLD_CPS];
/* ASCII folded: the byte, or 0 for a separator (every ASCII code point folds to one of them) */
static char fold_ascii[0x80];
static pthread_once_t fold_once = PTHREAD_ONCE_INIT;

/*
 * Fold code point @p cp as fold_map() does (its mapping is per code point, and with no combining
 * class left nothing is reordered): up to 64 bytes in @p o. Returns the length, or -1 when only
 * fold_map() knows the answer.
 */
static int fold_cp(int32_t cp, char *o)
{
    utf8proc_int32_t d[16];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char(
        cp, d, 16, UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD, &last);
    if (n < 0 || n > 16)
        return -1;
    int k = 0;
    for (utf8proc_ssize_t i = 0; i < n; i++) {
        const utf8proc_property_t *p = utf8proc_get_property(d[i]);
        if (p->combining_class != 0)
            return -1;
        utf8proc_category_t cat = (utf8proc_category_t)p->category;
        int word = d[i] == '\'' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                   (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
        if (word) {
            int e = (int)utf8proc_encode_char(d[i], (utf8proc_uint8_t *)o + k);
            for (int j = k; j < k + e; j++)
                o[j] = (char)tolower((unsigned char)o[j]);
            k += e;
        } else {
            o[k++] = ' ';
        }
    }
    return k;
}

static void fold_init(void)
{
    for (int32_t cp = 0; cp < FOLD_CPS; cp++) {
        char o[64];
        int k = fold_cp(cp, o);
        fold_entry_t *e = &fold_table[cp];
        if (k < 0 || k > FOLD_MAX) {
            e->len = 0xFF;
        } else {
            e->len = (unsigned char)k;
            memcpy(e->s, o, (size_t)k);
        }
        if (cp < 0x80) {
            TN_ASSERT(k == 1);
            fold_ascii[cp] = o[0] == ' ' ? 0 : o[0];
        }
    }
}

/* The fold of tn_category_fold_into(); @p loose leaves each separator a space of its own (runs
 * of spaces, not one): the scan skips runs itself, and text with a comma or a period after a
 * word then stays on the 16-byte path, which stops at two separators in a row. @p marks (may be
 * NULL) gets the text's Spanish marks (tn_lang_marks()), counted on the characters the fold
 * decodes anyway instead of in a pass of their own. */
static inline size_t fold_into(const char *text, size_t len, char **buf, size_t *bufcap,
                               const int loose, size_t *marks)
{
    size_t nmarks = 0;
    pthread_once(&fold_once, fold_init);
    size_t cap = *bufcap, o = 0;
    char *out = *buf;
    if (cap < len + 68) {
        cap = len + 68;
        out = tn_xrealloc(out, cap);
    }
    out[o++] = ' ';
    for (size_t i = 0; i < len;) {
        const char *f;
        int fl;
        char tmp[64];
        unsigned char c = (unsigned char)text[i];
        if (c < 0x80) {
            /* A run of ASCII (most text), one byte in and at most one out: each byte is written
             * (a separator as a space) and kept unless it is a second space in a row, with no
             * branch per byte (one on every word's end was the cost of this loop). */
            if (o + (len - i) + 3 > cap) {
                cap = TN_MAX(2 * cap, o + (len - i) + 3);
                out = tn_xrealloc(out, cap);
            }
            int space = out[o - 1] == ' ';
            while (i < len && (unsigned char)text[i] < 0x80) {
#ifdef TN_V16
                if (i + 16 <= len) { /* the same on 16 bytes */
                    __m128i v = tn_v16_load(text + i);
                    __m128i upper = tn_v16_in(v, 'A', 'Z');
                    __m128i word =
                        _mm_or_si128(_mm_or_si128(upper, tn_v16_in(v, 'a', 'z')),
                                     _mm_or_si128(tn_v16_in(v, '0', '9'), tn_v16_eq(v, '\'')));
                    unsigned sep = ~tn_v16_bits(word) & 0xFFFF;
                    if (!tn_v16_bits(v) && (loose || !(sep & ((sep << 1) | (unsigned)space)))) {
                        __m128i low = _mm_add_epi8(v, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
                        __m128i folded = _mm_or_si128(_mm_and_si128(word, low),
                                                      _mm_andnot_si128(word, _mm_set1_epi8(' ')));
                        _mm_storeu_si128((__m128i *)(out + o), folded);
                        o += 16;
                        i += 16;
                        space = (int)(sep >> 15);
                        continue;
                    }
                }
#endif
                /* 8 ASCII bytes with no two separators in a row fold as a word: letters
                 * lowercased, each separator a space */
                uint64_t w = i + 8 <= len ? tn_load8_le(text + i) : HIGHS;
                if (!(w & HIGHS)) {
                    uint64_t upper = bytes_gt(w, 'A' - 1) & bytes_lt(w, 'Z' + 1);
                    uint64_t word = upper | (bytes_gt(w, 'a' - 1) & bytes_lt(w, 'z' + 1)) |
                                    (bytes_gt(w, '0' - 1) & bytes_lt(w, '9' + 1)) |
                                    bytes_eq(w, '\'');
                    uint64_t sep = ~word & HIGHS;
                    if (loose || !(sep & ((sep << 8) | (space ? 0x80 : 0)))) {
                        uint64_t spaces = (sep >> 7) * 0xFF;
                        w = ((w + (upper >> 2)) & ~spaces) | (spaces & (' ' * ONES));
                        tn_store8_le(out + o, w);
                        o += 8;
                        i += 8;
                        space = (int)(sep >> 63);
                        continue;
                    }
                }
                size_t stop = TN_MIN(len, i + 8);
                for (; i < stop && (unsigned char)text[i] < 0x80; i++) {
                    char a = fold_ascii[(unsigned char)text[i]];
                    int sep = a == 0;
                    out[o] = sep ? ' ' : a;
                    o += (size_t)(loose | !(sep & space));
                    space = sep;
                }
            }
            continue;
        } else {
            utf8proc_int32_t cp;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)text + i,
                                                  (utf8proc_ssize_t)(len - i), &cp);
            if (k <= 0)
                goto whole;
            i += (size_t)k;
            nmarks += lang_cp_marks(cp);
            if (cp < FOLD_CPS && fold_table[cp].len != 0xFF) {
                f = fold_table[cp].s;
                fl = fold_table[cp].len;
            } else if ((fl = fold_cp(cp, tmp)) >= 0) {
                f = tmp;
            } else {
                goto whole;
            }
        }
        if (o + (size_t)fl + 3 > cap) {
            cap = 2 * cap + (size_t)fl;
            out = tn_xrealloc(out, cap);
        }
        for (int j = 0; j < fl; j++) {
            if (f[j] != ' ')
                out[o++] = f[j];
            else if (loose || out[o - 1] != ' ')
                out[o++] = ' ';
        }
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
    *buf = out;
    *bufcap = cap;
    if (marks)
        *marks = nmarks;
    return o;
whole:;
    char *m = fold_map(text, len);
    o = strlen(m);
    if (cap < o + 1) {
        cap = o + 1;
        out = tn_xrealloc(out, cap);
    }
    memcpy(out, m, o + 1);
    free(m);
    *buf = out;
    *bufcap = cap;
    if (marks) /* the bytes, as they stand (not necessarily UTF-8) */
        *marks = tn_lang_marks(text, len);
    return o;
}

size_t tn_category_fold_into(const char *text, size_t len, char **buf, size_t *bufcap)
{
    return fold_into(text, len, buf, bufcap, 0, NULL);
}

char *tn_category_fold(const char *text, size_t len)
{
    char *out = NULL;
    size_t cap = 0;
    tn_category_fold_into(text, len, &out, &cap);
    return out;
}

void tn_category_destroy(tn_category_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nrules; i++) {
        rule_t *r = &c->rules[i];
        for (size_t j = 0; j < r->nphrases; j++)
            free(r->phrases[j]);
        free(r->phrases);
        free(r->category);
        free(r->priority);
    }
    free(c->phrases);
    free(c->slots);
    free(c);
}

static const char *next_field(const char *s, const char *end, size_t *len)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    *len = 0;
    while (s + *len < end && s[*len] != ' ' && s[*len] != '\t')
        (*len)++;
    return s;
}

/* The phrases by first word, and each rule's category head. */
static void index_phrases(tn_category_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nrules; i++) {
        n += c->rules[i].nphrases;
        c->first[i] = (int)i;
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->rules[k].category, c->rules[i].category) == 0) {
                c->first[i] = (int)k;
                break;
            }
    }
    c->phrases = tn_xcalloc(n ? n : 1, sizeof(*c->phrases));
    for (c->nslots = 8; c->nslots < 2 * n; c->nslots *= 2)
        ;
    c->slots = tn_xcalloc(c->nslots, sizeof(*c->slots));
    /* Chains keep file order (rule, then phrase); the scores are sums, so order only matters
     * for reading. */
    int *tail = tn_xcalloc(c->nslots, sizeof(int));
    for (size_t i = 0; i < c->nrules; i++) {
        const rule_t *r = &c->rules[i];
        for (size_t j = 0; j < r->nphrases; j++) {
            const char *w = r->phrases[j] + 1;
            size_t wl = strcspn(w, " ");
            uint64_t key = tn_word_key(w, wl);
            uint32_t h = hash_key(key, wl);
            slot_t *sl = (slot_t *)find_slot(c, w, wl, key, h);
            int id = (int)c->nphrases++;
            c->phrases[id] = (phrase_t){r->phrases[j], strlen(r->phrases[j]), (int)i, -1};
            if (!sl->word) {
                *sl = (slot_t){w, wl, key, id};
                c->filter[h >> 26] |= 1ULL << ((h >> 20) & 63);
            } else {
                c->phrases[tail[sl - c->slots]].next = id;
            }
            tail[sl - c->slots] = id;
        }
    }
    free(tail);
}

tn_category_t *tn_category_new(const char *text, const char *name, char *errbuf, size_t errlen)
{
    tn_category_t *c = tn_xcalloc(1, sizeof(*c));
    const char *src = text ? text : tn_category_default_rules;
    const char *what = name ? name : "category rules";
    int lineno = 0;
    for (const char *line = src; *line;) {
        const char *eol = strchr(line, '\n');
        const char *end = eol ? eol : line + strlen(line);
        lineno++;
        size_t cl, pl, ll;
        const char *cat = next_field(line, end, &cl);
        if (cl == 0 || *cat == '#')
            goto next;
        const char *prio = next_field(cat + cl, end, &pl);
        const char *lang = next_field(prio + pl, end, &ll);
        const char *kw = lang + ll;
        if (pl == 0 || ll == 0 || kw >= end) {
            snprintf(errbuf, errlen, "%s line %d: expected CATEGORY PRIORITY LANG KEYWORDS", what,
                     lineno);
            goto fail;
        }
        if (!((ll == 2 && (!strncmp(lang, "es", 2) || !strncmp(lang, "en", 2))) ||
              (ll == 1 && *lang == '*'))) {
            snprintf(errbuf, errlen, "%s line %d: language must be es, en or *", what, lineno);
            goto fail;
        }
        if (c->nrules == MAX_RULES) {
            snprintf(errbuf, errlen, "%s: more than %d rules", what, MAX_RULES);
            goto fail;
        }
        rule_t *r = &c->rules[c->nrules++];
        r->category = tn_xstrndup(cat, cl);
        r->priority = tn_xstrndup(prio, pl);
        snprintf(r->lang, sizeof(r->lang), "%.*s", (int)ll, lang);
        for (const char *p = kw; p < end;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *pe = comma ? comma : end;
            char *folded = tn_category_fold(p, (size_t)(pe - p));
            if (strlen(folded) > 2) {
                r->phrases = tn_xrealloc(r->phrases, (r->nphrases + 1) * sizeof(char *));
                r->phrases[r->nphrases++] = folded;
            } else {
                free(folded);
            }
            p = pe + 1;
        }
        if (r->nphrases == 0) {
            snprintf(errbuf, errlen, "%s line %d: no keywords", what, lineno);
            goto fail;
        }
    next:
        line = eol ? eol + 1 : end;
    }
    index_phrases(c);
    return c;
fail:
    tn_category_destroy(c);
    return NULL;
}

/* Whether the phrase's rest @p p (" w2 ... wn ", what follows its first word; NUL-terminated) is
 * at @p t, the space after a word of the loosely folded text (NUL-terminated), where a run of
 * spaces matches one. */
static int rest_at(const char *t, const char *p)
{
    for (; *p; p++) {
        if (*p != ' ') {
            if (*t++ != *p)
                return 0;
        } else if (*t != ' ') {
            return 0;
        } else {
            while (*t == ' ')
                t++;
        }
    }
    return 1;
}

static const uint64_t low_bytes[9] = {
    0,
    0xFF,
    0xFFFF,
    0xFFFFFF,
    0xFFFFFFFF,
    0xFFFFFFFFFF,
    0xFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFF,
};

/* Add @p weight to hits[rule] for every keyword occurrence in @p len bytes of @p text, mark the
 * keywords seen, and count every word's language evidence and the text's marks into @p ev.
 * @p fold (*cap bytes) is the folding buffer, kept from call to call. */
static void scan(const tn_category_t *c, const char *text, size_t len, int weight, int *hits,
                 bool *seen, char **fold, size_t *cap, lang_evidence_t *ev)
{
    tn_lang_init(); /* the function words' table */
    size_t marks;
    size_t flen = fold_into(text, len, fold, cap, 1, &marks);
    if (*cap < flen + 64) {
        *cap = flen + 64;
        *fold = tn_xrealloc(*fold, *cap);
    }
    char *folded = *fold;
    memset(folded + flen, 0, 64); /* defined bytes for the reads past the text */
    /*
     * Every occurrence of " phrase " in the folded text (" word word ... word ", one space or
     * more between words) starts at a word: look each word up and compare the phrases that
     * begin with it (as many hits as strstr would find in the text with one space between
     * words). The spaces of 64 bytes at a time are the bits of a mask, so a word's end comes
     * from the mask, not from reading the bytes after the word before it, and one word's lookup
     * does not wait for the last; its key is its first 8 bytes.
     */
    size_t prev = 0;            /* the space before the next word */
    lang_evidence_t lang = *ev; /* in registers: stores through @p ev may alias hits[] */
    lang.halves += marks;       /* Spanish: the low half */
    for (size_t base = 0; base < flen; base += 64) {
        uint64_t spaces = tn_bits64_eq(folded + base, ' ');
        if (base == 0)
            spaces &= ~1ULL; /* the leading space ends no word */
        for (; spaces; spaces &= spaces - 1) {
            size_t e = base + (size_t)__builtin_ctzll(spaces), i = prev + 1, n = e - i;
            prev = e;
            /* the word's bytes of the 8 loaded (a table, not a branch: words of 8 bytes and more
             * are too many and too mixed with shorter ones to predict) */
            uint64_t key = tn_load8_le(folded + i) & low_bytes[n < 8 ? n : 8];
            lang_add_word(&lang, key, n);
            uint32_t h = hash_key(key, n);
            if (!maybe_first_word(c, h) || n == 0) /* n: between two spaces */
                continue;
            const slot_t *sl = find_slot(c, folded + i, n, key, h);
            /* the phrases that begin with this word: " word " is found; a longer one compares
             * what follows the word */
            for (int id = sl->word ? sl->head : -1; id >= 0; id = c->phrases[id].next) {
                const phrase_t *p = &c->phrases[id];
                if (p->len == n + 2 || rest_at(folded + e, p->text + n + 1)) {
                    hits[p->rule] += weight;
                    seen[id] = true;
                }
            }
        }
    }
    *ev = lang;
}

/* What a thread keeps from call to call: the folding buffer and the keywords seen (let go after
 * a call that grew them past TN_TLS_KEEP bytes). */
typedef struct scratch {
    char *fold;
    size_t fold_cap;
    bool *seen;
    size_t seen_cap;
} scratch_t;

static void scratch_free(void *block)
{
    scratch_t *sc = block;
    free(sc->fold);
    free(sc->seen);
}

static tn_tls_t scratch = TN_TLS_INIT(sizeof(scratch_t), scratch_free);

/* After a call: let the folding buffer go if it grew past TN_TLS_KEEP. */
static void fold_trim(scratch_t *sc)
{
    if (sc->fold_cap > TN_TLS_KEEP) {
        TN_FREE(sc->fold);
        sc->fold_cap = 0;
    }
}

/* Keywords and language evidence from the words of title and body; the rules of @p lang apply,
 * or with @p detected, of the language the words speak for (@p hint breaking near-ties). */
static tn_category_result_t classify(const tn_category_t *c, const char *title, size_t tlen,
                                     const char *body, size_t blen, const char *lang,
                                     const char *hint, tn_lang_t *detected)
{
    tn_category_result_t best = {"general", "normal", 0, 0};
    int hits[MAX_RULES] = {0};
    scratch_t *sc = tn_tls_get(&scratch);
    if (sc->seen_cap < c->nphrases) {
        free(sc->seen);
        sc->seen_cap = c->nphrases;
        sc->seen = tn_xmalloc(sc->seen_cap * sizeof(bool));
    }
    bool *seen = sc->seen;
    if (c->nphrases)
        memset(seen, 0, c->nphrases * sizeof(bool));
    lang_evidence_t ev = {0, 0};
    if (title && tlen > 0)
        scan(c, title, tlen, TN_CATEGORY_TITLE_WEIGHT, hits, seen, &sc->fold, &sc->fold_cap, &ev);
    if (body && blen > 0)
        scan(c, body, blen, 1, hits, seen, &sc->fold, &sc->fold_cap, &ev);
    fold_trim(sc);
    if (detected) {
        *detected = tn_lang_decide(&ev, hint);
        lang = detected->code;
    }
    /* Scores and distinct keywords summed per category name across its rules (es + * lines of
     * one category). */
    int scores[MAX_RULES] = {0}, distinct[MAX_RULES] = {0};
    bool live[MAX_RULES] = {false};
    bool any_lang = !lang || strcmp(lang, "und") == 0;
    for (size_t i = 0; i < c->nrules; i++) {
        const rule_t *r = &c->rules[i];
        live[i] = any_lang || r->lang[0] == '*' || strcmp(r->lang, lang) == 0;
        if (live[i])
            scores[c->first[i]] += hits[i];
    }
    for (size_t id = 0; id < c->nphrases; id++) {
        int rule = c->phrases[id].rule;
        if (seen[id] && live[rule])
            distinct[c->first[rule]]++;
    }
    for (size_t i = 0; i < c->nrules; i++) {
        if (scores[i] > best.score ||
            (scores[i] == best.score && scores[i] > 0 && distinct[i] > best.keywords)) {
            best.category = c->rules[i].category;
            best.priority = c->rules[i].priority;
            best.score = scores[i];
            best.keywords = distinct[i];
        }
    }
    return best;
}

tn_category_result_t tn_category_classify_doc(const tn_category_t *c, const char *title,
                                              size_t tlen, const char *body, size_t blen,
                                              const char *lang)
{
    return classify(c, title, tlen, body, blen, lang, NULL, NULL);
}

tn_category_result_t tn_category_classify_lang(const tn_category_t *c, const char *title,
                                               size_t tlen, const char *body, size_t blen,
                                               const char *hint, tn_lang_t *lang)
{
    return classify(c, title, tlen, body, blen, NULL, hint, lang);
}

/* lang_int.h: the words alone, against no rules (a filter that lets no word through). */
void tn_category_lang_words(const char *text, size_t len, lang_evidence_t *ev)
{
    static const tn_category_t no_rules;
    scratch_t *sc = tn_tls_get(&scratch);
    scan(&no_rules, text, len, 0, NULL, NULL, &sc->fold, &sc->fold_cap, ev);
    fold_trim(sc);
}

tn_category_result_t tn_category_classify(const tn_category_t *c, const char *text, size_t len,
                                          const char *lang)
{
    return tn_category_classify_doc(c, NULL, 0, text, len, lang);
}
