/* Answer providers: "extractive" (best sentences of the passages, in C) and "openai" (POST
 * /v1/chat/completions, whole or streamed as Server-Sent Events). */
#include "taina/llm.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "taina/buf.h"
#include "taina/category.h"
#include "taina/http_client.h"
#include "taina/lang.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/text.h"

#include "llm_int.h"

#define DEF_EXTRACTIVE_MODEL "taina-extractive-v1"
#define DEF_TEMPERATURE      0.2
#define DEF_MAX_TOKENS       512
#define DEF_MAX_CHARS        800
#define DEF_TIMEOUT_MS       30000
#define DEF_ATTEMPTS         2
#define UPSTREAM             "llm"
#define MAX_ANSWER           (1u << 20)  /* bytes of answer text kept */
#define MAX_SSE_LINE         (1u << 20)  /* bytes of one SSE line or event */
#define MAX_RESPONSE         (4u << 20)  /* bytes of a whole (non-streamed) answer */
#define MAX_QWORDS           64          /* distinct content words of a question considered */
#define DEF_CACHE_PASSAGES   2048        /* passages whose analysis the extractive provider keeps */
#define MAX_CACHED_PASSAGE   (64u << 10) /* bytes: a longer passage is analysed every time */
#define CACHE_WAYS           8

typedef enum { PROVIDER_EXTRACTIVE, PROVIDER_OPENAI } provider_t;

typedef struct passage_info passage_info_t;

/* One set of the extractive provider's passage cache: its CACHE_WAYS passages, the most recently
 * used first. */
typedef struct cache_set {
    pthread_mutex_t mu;
    passage_info_t *way[CACHE_WAYS];
} cache_set_t;

struct tn_llm {
    provider_t provider;
    cache_set_t *cache; /* extractive: nsets sets (a power of two) of ways, or NULL */
    size_t nsets, ways;
    char *model;
    double temperature;
    int max_tokens;
    size_t max_chars;
    int64_t timeout_ms;
    char *path; /* "/v1/chat/completions", or "/chat/completions" when the URL ends in /v1 */
    tn_http_client_t *hc;
};

/* ------------------------------------------------------------------------------------------ */
/* Small helpers */

static void set_why(tn_llm_error_t *why, int status, int timeout, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_why(tn_llm_error_t *why, int status, int timeout, const char *fmt, ...)
{
    if (!why)
        return;
    why->status = status;
    why->timeout = timeout;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
    va_end(ap);
    for (char *p = why->msg; *p; p++) /* one line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* "es" or "en" for the answer: the caller's, else detected from the question, else from the
 * passages; English when nothing tells. *sure is false in that last case. */
static const char *answer_lang(const char *lang, const char *question,
                               const tn_llm_passage_t *passages, size_t n, bool *sure)
{
    *sure = true;
    if (lang && (strcmp(lang, "es") == 0 || strcmp(lang, "en") == 0))
        return lang;
    tn_lang_t d = tn_lang_detect(question, strlen(question), NULL);
    if (strcmp(d.code, "und") != 0)
        return d.code;
    for (size_t i = 0; i < n; i++) {
        d = tn_lang_detect(passages[i].text, passages[i].text_len, NULL);
        if (strcmp(d.code, "und") != 0)
            return d.code;
    }
    *sure = false;
    return "en";
}

/* ------------------------------------------------------------------------------------------ */
/* Extractive provider
 *
 * Words are runs of the folded text (tn_category_fold: lower case, accents removed) split at
 * spaces and apostrophes; content words have 3 or more letters and are not stop words of
 * Spanish or English; a final "s" of a word of 4+ letters (not "ss") is dropped so that plurals
 * meet their singulars. A sentence scores the number of distinct content words of the question
 * it holds, plus 0.25 * (n - i) / n for passage i of n (never enough to beat one more word).
 * A question sentence ("¿...", "...?": a FAQ's own) is never used while any other sentence is
 * a candidate; the sentence right after a question that holds question words is its answer and
 * adds that question's count to its own (a FAQ's answer rarely repeats the question's words).
 * Sentences that share no word (and follow no such question) are never used; the same sentence
 * in two passages is used once. The best sentences (ties: earlier passage, then earlier
 * sentence) are taken while the answer fits max_chars characters, and written in passage order,
 * each followed by its marker. */

static const char *const stop_words[] = {
    /* English */
    "about",
    "after",
    "again",
    "all",
    "also",
    "and",
    "any",
    "are",
    "because",
    "been",
    "before",
    "being",
    "between",
    "both",
    "but",
    "can",
    "could",
    "did",
    "does",
    "doing",
    "done",
    "down",
    "during",
    "each",
    "few",
    "for",
    "from",
    "further",
    "get",
    "got",
    "had",
    "has",
    "have",
    "having",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "into",
    "its",
    "itself",
    "just",
    "know",
    "let",
    "like",
    "may",
    "might",
    "more",
    "most",
    "much",
    "must",
    "need",
    "not",
    "now",
    "off",
    "once",
    "only",
    "other",
    "our",
    "ours",
    "out",
    "over",
    "own",
    "please",
    "same",
    "shall",
    "she",
    "should",
    "some",
    "such",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "too",
    "under",
    "until",
    "very",
    "want",
    "was",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    /* Spanish (folded: no accents) */
    "algo",
    "algun",
    "alguna",
    "algunas",
    "alguno",
    "algunos",
    "ante",
    "aqui",
    "asi",
    "aun",
    "cada",
    "como",
    "con",
    "contra",
    "cual",
    "cuales",
    "cuando",
    "cuanto",
    "cuanta",
    "cuantos",
    "cuantas",
    "debe",
    "deben",
    "debo",
    "del",
    "desde",
    "donde",
    "durante",
    "ella",
    "ellas",
    "ellos",
    "entre",
    "era",
    "eran",
    "esa",
    "esas",
    "ese",
    "eso",
    "esos",
    "esta",
    "estan",
    "estar",
    "estas",
    "este",
    "esto",
    "estos",
    "estoy",
    "favor",
    "fue",
    "fueron",
    "hace",
    "hacer",
    "hago",
    "han",
    "hasta",
    "hay",
    "las",
    "les",
    "los",
    "mas",
    "mis",
    "mismo",
    "misma",
    "muy",
    "nada",
    "necesito",
    "necesita",
    "nos",
    "nosotros",
    "nuestra",
    "nuestro",
    "otra",
    "otras",
    "otro",
    "otros",
    "para",
    "pero",
    "poco",
    "por",
    "porque",
    "puede",
    "pueden",
    "puedo",
    "que",
    "quien",
    "quienes",
    "quiero",
    "quiere",
    "saber",
    "ser",
    "sera",
    "sido",
    "sin",
    "sobre",
    "son",
    "soy",
    "sus",
    "tal",
    "tambien",
    "tan",
    "tanto",
    "tener",
    "tengo",
    "tiene",
    "tienen",
    "toda",
    "todas",
    "todo",
    "todos",
    "tus",
    "una",
    "unas",
    "uno",
    "unos",
    "usted",
    "ustedes",
    "vez",
    "yo",
};

/* The stop words in an open-addressing set (FNV-1a, built once): every word of every passage is
 * looked up. */
enum { STOP_SLOTS = 1024 }; /* a power of two, over 4x the words */
static const char *stop_set[STOP_SLOTS];
static unsigned char stop_len[STOP_SLOTS];
static pthread_once_t stop_once = PTHREAD_ONCE_INIT;

static uint32_t stop_hash(const char *w, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

static void stop_build(void)
{
    for (size_t i = 0; i < TN_ARRAY_LEN(stop_words); i++) {
        size_t len = strlen(stop_words[i]);
        uint32_t j = stop_hash(stop_words[i], len) & (STOP_SLOTS - 1);
        while (stop_set[j])
            j = (j + 1) & (STOP_SLOTS - 1);
        stop_set[j] = stop_words[i];
        stop_len[j] = (unsigned char)len;
    }
}

/* @p h: stop_hash(w, len) */
static bool is_stop_word(const char *w, size_t len, uint32_t h)
{
    pthread_once(&stop_once, stop_build);
    for (uint32_t j = h & (STOP_SLOTS - 1); stop_set[j]; j = (j + 1) & (STOP_SLOTS - 1))
        if (stop_len[j] == len && memcmp(stop_set[j], w, len) == 0)
            return true;
    return false;
}

/* A buffer reused for every fold of one answer: no allocation per sentence. */
typedef struct scratch {
    char *buf;
    size_t cap;
} scratch_t;

/* Calls @p fn for each content word of @p len bytes of text (folded, trimmed of a plural "s")
 * with its stop_hash(). The folded text stays in @p sc (until its next use); returns its
 * length. */
typedef void(word_fn)(void *opaque, const char *w, size_t len, uint32_t h);

static size_t content_words(const char *text, size_t len, word_fn *fn, void *opaque, scratch_t *sc)
{
    size_t flen = tn_category_fold_into(text, len, &sc->buf, &sc->cap);
    const char *f = sc->buf;
    for (size_t i = 0; i < flen;) {
        while (i < flen && (f[i] == ' ' || f[i] == '\''))
            i++;
        const char *p = f + i;
        size_t letters = 0;
        while (i < flen && f[i] != ' ' && f[i] != '\'') {
            letters += ((unsigned char)f[i] & 0xC0) != 0x80;
            i++;
        }
        size_t wl = (size_t)(f + i - p);
        if (wl == 0)
            break;
        if (letters >= 4 && p[wl - 1] == 's' && p[wl - 2] != 's') {
            wl--;
            letters--;
        }
        if (letters < 3)
            continue;
        uint32_t h = stop_hash(p, wl);
        if (!is_stop_word(p, wl, h))
            fn(opaque, p, wl, h);
    }
    return flen;
}

typedef struct qwords {
    char *w[MAX_QWORDS];
    size_t len[MAX_QWORDS];
    uint32_t hash[MAX_QWORDS]; /* stop_hash(): compared before the bytes */
    size_t n;
    uint64_t bloom; /* bit hash % 64 of each: a word whose bit is clear is none of them */
} qwords_t;

static int qwords_find(const qwords_t *q, const char *w, size_t len, uint32_t h)
{
    for (size_t i = 0; i < q->n; i++)
        if (q->hash[i] == h && q->len[i] == len && memcmp(q->w[i], w, len) == 0)
            return (int)i;
    return -1;
}

static void qwords_add(void *opaque, const char *w, size_t len, uint32_t h)
{
    qwords_t *q = opaque;
    if (q->n < MAX_QWORDS && qwords_find(q, w, len, h) < 0) {
        q->w[q->n] = tn_xstrndup(w, len);
        q->bloom |= (uint64_t)1 << (h & 63);
        q->hash[q->n] = h;
        q->len[q->n++] = len;
    }
}

/* One candidate sentence. */
typedef struct sent {
    size_t passage, index; /* passage number (0-based) and sentence number in it */
    const char *text;      /* borrowed from the passage, trimmed */
    size_t len;
    double score;
    size_t chars;  /* characters it adds to the answer: " " + text + " [n]" */
    bool question; /* used only when no other sentence is left */
    uint64_t
        fold_hash; /* of its folded text: two sentences that differ here say different things */
} sent_t;

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void sentence_out(const char *t, size_t s, size_t e, tn_llm_sentence_fn *add, void *opaque)
{
    while (s < e && is_space((unsigned char)t[s]))
        s++;
    while (e > s && is_space((unsigned char)t[e - 1]))
        e--;
    if (e > s)
        add(opaque, t + s, e - s);
}

static bool ellipsis_at(const char *t, size_t len, size_t i)
{
    return i + 3 <= len && memcmp(t + i, "\xE2\x80\xA6", 3) == 0;
}

/* Abbreviations after which a "." does not end the sentence, whatever follows: titles before a
 * name and the ones that never end a sentence (compared folded: lower case, no accents). Not
 * "no" (a Spanish and English answer: "No. Usted debe..."; "No. 5" is caught by the digit) nor
 * "etc", "a.m", "p.m", which end a sentence before an upper-case letter and not otherwise. */
static const char *const abbreviations[] = {
    /* Spanish */
    "sr", "sra", "srta", "sres", "dr", "dra", "lic", "licda", "ing", "arq", "prof", "num", "nro",
    "art", "av", "avda", "pag", "tel", "ej", "p.ej", "ud", "uds", "vd", "vol", "cap", "aprox",
    "depto", "ee.uu",
    /* English */
    "mr", "mrs", "ms", "st", "vs", "e.g", "i.e", "approx", "dept", "fig", "jr", "u.s", "tel"};

static size_t abbreviation_max; /* bytes of the longest of the list */
static pthread_once_t abbreviation_once = PTHREAD_ONCE_INIT;

static void abbreviation_build(void)
{
    for (size_t i = 0; i < TN_ARRAY_LEN(abbreviations); i++)
        if (strlen(abbreviations[i]) > abbreviation_max)
            abbreviation_max = strlen(abbreviations[i]);
}

/* Whether the word before the "." at @p dot of @p t (from the last blank or opening bracket or
 * quote) is an abbreviation of the list or an initial. */
static bool abbreviation_before(const char *t, size_t dot, scratch_t *sc)
{
    size_t b = dot;
    while (b > 0 && t[b - 1] != '\0' && !is_space((unsigned char)t[b - 1]) && t[b - 1] != '(' &&
           t[b - 1] != '"' && t[b - 1] != '\'' && t[b - 1] != '[')
        b--;
    if (b == dot)
        return false;
    if (dot - b == 1 && t[b] >= 'A' && t[b] <= 'Z') /* an initial: "J. R. Smith" */
        return true;
    size_t flen = tn_category_fold_into(t + b, dot - b + 1, &sc->buf, &sc->cap);
    const char *f = sc->buf; /* " dra " or " p ej " */
    /* a match is " " + the abbreviation + " ": no longer one can be */
    pthread_once(&abbreviation_once, abbreviation_build);
    if (flen > abbreviation_max + 2)
        return false;
    bool found = false;
    for (size_t i = 0; i < TN_ARRAY_LEN(abbreviations) && !found; i++) {
        const char *a = abbreviations[i];
        size_t k = 1, al = strlen(a);
        /* the fold turns "." into " ": compare ignoring that */
        size_t j = 0;
        for (; j < al && f[k]; j++, k++)
            if (f[k] != (a[j] == '.' ? ' ' : a[j]))
                break;
        found = j == al && f[k] == ' ' && f[k + 1] == '\0';
    }
    return found;
}

/* Whether the first word after @p j starts with a lower-case letter or a digit. */
static bool continues_lower(const char *t, size_t len, size_t j)
{
    while (j < len && is_space((unsigned char)t[j]) && t[j] != '\n')
        j++;
    if (j >= len)
        return false;
    unsigned char c = (unsigned char)t[j];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    /* Latin-1 lower-case letters (a with grave to y with diaeresis): C3 A0..C3 BF, not C3 B7 */
    return c == 0xC3 && j + 1 < len && (unsigned char)t[j + 1] >= 0xA0 &&
           (unsigned char)t[j + 1] != 0xB7;
}

/* Whether @p c may follow a sentence's end mark and still belong to it: . ! ? " ' ) ] */
static bool is_end_tail(char c)
{
    return c == '.' || c == '!' || c == '?' || c == '"' || c == '\'' || c == ')' || c == ']';
}

static void split_sentences(const char *t, size_t len, tn_llm_sentence_fn *add, void *opaque,
                            scratch_t *sc)
{
    size_t start = 0, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)t[i];
        /* most bytes: none of \n . ! ? or the first byte of "…" */
        if (c != '\n' && c != '.' && c != '!' && c != '?' && c != 0xE2) {
            i++;
            continue;
        }
        if (c == '\n') {
            sentence_out(t, start, i, add, opaque);
            start = ++i;
            continue;
        }
        bool ell = ellipsis_at(t, len, i);
        if (!ell && c == 0xE2) {
            i++;
            continue;
        }
        size_t j = ell ? i + 3 : i + 1;
        for (;;) {
            if (j < len && is_end_tail(t[j]))
                j++;
            else if (ellipsis_at(t, len, j))
                j += 3;
            else if (j + 2 <= len && memcmp(t + j, "\xC2\xBB", 2) == 0) /* » */
                j += 2;
            else
                break;
        }
        bool end = j == len || is_space((unsigned char)t[j]);
        /* a lone "." may be an abbreviation's or an initial's, inside the sentence */
        if (end && j == i + 1 && t[i] == '.' &&
            (abbreviation_before(t, i, sc) || continues_lower(t, len, j)))
            end = false;
        if (end) {
            sentence_out(t, start, j, add, opaque);
            start = j;
        }
        i = j;
    }
    sentence_out(t, start, len, add, opaque);
}

TN_TESTABLE void tn_llm_split_sentences(const char *t, size_t len, tn_llm_sentence_fn *add,
                                        void *opaque)
{
    scratch_t sc = {NULL, 0};
    split_sentences(t, len, add, opaque, &sc);
    free(sc.buf);
}

TN_TESTABLE int tn_llm_is_question(const char *s, size_t len)
{
    size_t b = 0;
    for (;;) {
        if (b < len && s[b] != '\0' && strchr("\"'([", s[b]))
            b++;
        else if (b + 2 <= len && memcmp(s + b, "\xC2\xAB", 2) == 0) /* « */
            b += 2;
        else
            break;
    }
    if (b + 2 <= len && memcmp(s + b, "\xC2\xBF", 2) == 0) /* ¿ */
        return 1;
    while (len > 0 && s[len - 1] != '\0' && strchr("\"')] ", s[len - 1]))
        len--;
    if (len >= 2 && memcmp(s + len - 2, "\xC2\xBB", 2) == 0) /* » */
        len -= 2;
    return len > 0 && s[len - 1] == '?';
}

/* FNV-1a, 64 bits */
static uint64_t text_hash(const char *p, size_t len)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211u;
    return h;
}

/* Bytes of " [n]" for passage number @p n. */
static size_t marker_len(size_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return 3 + d;
}

/* ------------------------------------------------------------------------------------------ */
/* A passage analysed once for any question: its sentences (where, how many characters, whether
 * they ask, the hash of their folded text) and their content words (folded bytes and hash).
 * Answering then only looks the question's words up in them. The analyses are kept in the llm's
 * cache (CACHE_WAYS-way sets, keyed by a hash of the text and compared byte for byte), so a
 * passage that comes back, as the chunks of a popular question do, is not split, folded and
 * tokenized again. */

typedef struct pword {
    uint32_t off; /* in bytes[] */
    uint32_t len;
    uint32_t hash; /* stop_hash() */
} pword_t;

typedef struct psent {
    size_t start, len; /* of the trimmed sentence in the passage text */
    size_t w0, nw;     /* its content words: w[w0 .. w0 + nw) */
    size_t chars;      /* tn_text_cp_count() of the sentence */
    bool question;
    uint64_t fold_hash;
} psent_t;

struct passage_info {
    uint64_t key; /* passage_key() of the text */
    char *text;   /* a copy to compare with on lookup (cached ones only) */
    size_t len;
    psent_t *s;
    size_t ns, scap;
    pword_t *w;
    size_t nw, wcap;
    char *bytes; /* the content words, folded, one after another */
    size_t nbytes, bcap;
};

static void passage_free(passage_info_t *p)
{
    if (!p)
        return;
    free(p->text);
    free(p->s);
    free(p->w);
    free(p->bytes);
    free(p);
}

/* A fast hash of a passage (8 bytes a step); equal keys are then compared byte for byte. */
static uint64_t passage_key(const char *t, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15u ^ len, v;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&v, t + i, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDu;
        h ^= h >> 32;
    }
    v = 0;
    memcpy(&v, t + i, len - i);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53u;
    return h ^ (h >> 29);
}

typedef struct analyze {
    passage_info_t *p;
    const char *base; /* the passage text */
    scratch_t *fold;
} analyze_t;

static void word_keep(void *opaque, const char *w, size_t len, uint32_t h)
{
    passage_info_t *p = opaque;
    TN_ASSERT(p->nbytes + len < UINT32_MAX);
    if (p->nbytes + len > p->bcap) {
        p->bcap = 2 * (p->nbytes + len);
        p->bytes = tn_xrealloc(p->bytes, p->bcap);
    }
    if (p->nw == p->wcap) {
        p->wcap = p->wcap ? 2 * p->wcap : 64;
        p->w = tn_xrealloc(p->w, p->wcap * sizeof(*p->w));
    }
    memcpy(p->bytes + p->nbytes, w, len);
    p->w[p->nw++] = (pword_t){(uint32_t)p->nbytes, (uint32_t)len, h};
    p->nbytes += len;
}

static void analyze_add(void *opaque, const char *text, size_t len)
{
    analyze_t *an = opaque;
    passage_info_t *p = an->p;
    if (p->ns == p->scap) {
        p->scap = p->scap ? 2 * p->scap : 16;
        p->s = tn_xrealloc(p->s, p->scap * sizeof(*p->s));
    }
    psent_t *ps = &p->s[p->ns++];
    ps->start = (size_t)(text - an->base);
    ps->len = len;
    ps->w0 = p->nw;
    size_t flen = content_words(text, len, word_keep, p, an->fold);
    ps->nw = p->nw - ps->w0;
    ps->fold_hash = text_hash(an->fold->buf, flen);
    ps->question = tn_llm_is_question(text, len) != 0;
    ps->chars = tn_text_cp_count(text, len);
}

/* Analyse @p len bytes of @p text (@p keep: with a copy of the text, for the cache). Caller
 * owns the result; free with passage_free(). */
static passage_info_t *passage_analyze(const char *text, size_t len, uint64_t key, bool keep,
                                       scratch_t *fold, scratch_t *split)
{
    passage_info_t *p = tn_xcalloc(1, sizeof(*p));
    p->key = key;
    p->len = len;
    if (keep) {
        p->text = tn_xmalloc(len ? len : 1);
        memcpy(p->text, text, len);
    }
    analyze_t an = {p, text, fold};
    split_sentences(text, len, analyze_add, &an, split);
    return p;
}

/* The cached analysis of @p text in @p set (locked, of @p ways), made the most recently used;
 * or NULL. */
static passage_info_t *cache_find(cache_set_t *set, size_t ways, uint64_t key, const char *text,
                                  size_t len)
{
    for (size_t i = 0; i < ways; i++) {
        passage_info_t *p = set->way[i];
        if (p && p->key == key && p->len == len && memcmp(p->text, text, len) == 0) {
            memmove(&set->way[1], &set->way[0], i * sizeof(*set->way));
            set->way[0] = p;
            return p;
        }
    }
    return NULL;
}

typedef struct collect {
    sent_t *s;
    size_t n, cap;
    size_t passage;
    const qwords_t *q;
    double bonus;
    int q_hits;      /* the previous sentence of the passage is a question with this many words */
    size_t nonq;     /* candidates that are not questions */
    scratch_t fold;  /* the folded sentence */
    scratch_t split; /* the folded word before a "." */
} collect_t;

_Static_assert(MAX_QWORDS <= 64, "the question words seen in a sentence are one uint64_t");

/* The candidate sentences of passage c->passage, whose @p text @p p analyses. */
static void collect_passage(collect_t *c, const passage_info_t *p, const char *text)
{
    for (size_t k = 0; k < p->ns; k++) {
        const psent_t *ps = &p->s[k];
        uint64_t seen = 0;
        int count = 0;
        for (size_t j = 0; j < ps->nw; j++) {
            const pword_t *w = &p->w[ps->w0 + j];
            if (!(c->q->bloom >> (w->hash & 63) & 1))
                continue;
            int i = qwords_find(c->q, p->bytes + w->off, w->len, w->hash);
            if (i >= 0 && !(seen >> i & 1)) {
                seen |= (uint64_t)1 << i;
                count++;
            }
        }
        bool question = ps->question;
        /* A FAQ: the sentence after a question that matches is its answer, and inherits its
         * words (even with none of its own: "¿Cuánto cuesta? RD$ 2,400."). A bare "No." or
         * "Gracias." says too little alone: the lift passes to the sentence after it. */
        int lift = question ? 0 : c->q_hits;
        c->q_hits = question ? count : 0;
        if (lift > 0 && count == 0 && ps->nw < 2) {
            c->q_hits = lift;
            continue;
        }
        if (count == 0 && lift == 0)
            continue;
        c->nonq += !question;
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 32;
            c->s = tn_xrealloc(c->s, c->cap * sizeof(*c->s));
        }
        c->s[c->n++] = (sent_t){.passage = c->passage,
                                .index = k,
                                .text = text + ps->start,
                                .len = ps->len,
                                .score = count + lift + c->bonus,
                                .chars = 1 + ps->chars + marker_len(c->passage + 1),
                                .question = question,
                                .fold_hash = ps->fold_hash};
    }
}

/* Collect the candidates of passage @p text: from its cached analysis, or from one made now (and
 * cached when it may be). */
static void collect_from(tn_llm_t *l, collect_t *c, const char *text, size_t len)
{
    cache_set_t *set = NULL;
    uint64_t key = 0;
    if (l->cache && len <= MAX_CACHED_PASSAGE) {
        key = passage_key(text, len);
        set = &l->cache[key & (l->nsets - 1)];
        pthread_mutex_lock(&set->mu);
        passage_info_t *p = cache_find(set, l->ways, key, text, len);
        if (p)
            collect_passage(c, p, text); /* under the lock: it may be replaced once released */
        pthread_mutex_unlock(&set->mu);
        if (p)
            return;
    }
    passage_info_t *p = passage_analyze(text, len, key, set != NULL, &c->fold, &c->split);
    collect_passage(c, p, text);
    if (set) {
        pthread_mutex_lock(&set->mu);
        if (!cache_find(set, l->ways, key, text, len)) { /* not put there meanwhile */
            passage_free(set->way[l->ways - 1]);
            memmove(&set->way[1], &set->way[0], (l->ways - 1) * sizeof(*set->way));
            set->way[0] = p;
            p = NULL; /* the cache's now */
        }
        pthread_mutex_unlock(&set->mu);
    }
    passage_free(p);
}

static int by_score(const void *a, const void *b)
{
    const sent_t *x = a, *y = b;
    if (x->question != y->question)
        return x->question ? 1 : -1;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->passage != y->passage)
        return x->passage < y->passage ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int by_position(const void *a, const void *b)
{
    const sent_t *x = a, *y = b;
    if (x->passage != y->passage)
        return x->passage < y->passage ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Whether @p s says the same as one of the @p n chosen sentences (folded text equal; the texts
 * are folded only when their hashes are equal). */
static bool is_repeat(const sent_t *s, const sent_t *chosen, size_t n)
{
    bool same = false;
    for (size_t i = 0; i < n && !same; i++) {
        if (chosen[i].fold_hash != s->fold_hash)
            continue;
        char *a = tn_category_fold(s->text, s->len);
        char *b = tn_category_fold(chosen[i].text, chosen[i].len);
        same = strcmp(a, b) == 0;
        free(b);
        free(a);
    }
    return same;
}

/* Cut @p s to at most @p chars characters at a word boundary, adding "…". */
static void add_cut(tn_buf_t *b, const char *s, size_t len, size_t chars)
{
    size_t k = 0, c = 0, last_space = 0;
    while (k < len && c + 1 < chars) { /* room for the ellipsis */
        if (s[k] == ' ')
            last_space = k;
        k++;
        while (k < len && ((unsigned char)s[k] & 0xC0) == 0x80)
            k++;
        c++;
    }
    if (k < len && last_space > 0)
        k = last_space;
    tn_buf_add(b, s, k);
    tn_buf_adds(b, "\xE2\x80\xA6");
}

static tn_err_t emit(tn_llm_token_fn *on_token, void *opaque, const char *p, size_t len)
{
    if (on_token && len > 0 && on_token(opaque, p, len) != 0)
        return TN_ERR_STOPPED;
    return TN_OK;
}

static tn_err_t answer_extractive(tn_llm_t *l, const char *question, const char *lang,
                                  const tn_llm_passage_t *passages, size_t n,
                                  tn_llm_token_fn *on_token, void *opaque, char **answer,
                                  tn_llm_error_t *why)
{
    tn_err_t rc = TN_ERR_STOPPED;
    bool sure;
    const char *code = answer_lang(lang, question, passages, n, &sure);
    bool es = strcmp(code, "es") == 0;
    const char *lead = es ? "Según los documentos:" : "According to the documents:";
    const char *none = es ? "No encontré una respuesta en los documentos."
                          : "I could not find an answer in the documents.";
    qwords_t q = {.n = 0};
    collect_t c = {.q = &q};
    sent_t *chosen = NULL;
    size_t nchosen = 0;
    tn_buf_t out;
    tn_buf_init(&out, MAX_ANSWER);

    content_words(question, strlen(question), qwords_add, &q, &c.fold);
    for (size_t i = 0; i < n && q.n > 0; i++) {
        if (!passages[i].text || passages[i].text_len == 0)
            continue;
        c.passage = i;
        c.q_hits = 0;
        c.bonus = 0.25 * (double)(n - i) / (double)n;
        collect_from(l, &c, passages[i].text, passages[i].text_len);
    }
    if (c.n == 0) {
        tn_buf_adds(&out, none);
        if (emit(on_token, opaque, out.data, out.len) != TN_OK)
            goto out;
        rc = TN_OK;
        goto out;
    }
    qsort(c.s, c.n, sizeof(*c.s), by_score);
    chosen = tn_xcalloc(c.n, sizeof(*chosen));
    size_t used = tn_text_cp_count(lead, strlen(lead));
    for (size_t i = 0; i < c.n; i++) {
        if ((c.s[i].question && c.nonq > 0) || used + c.s[i].chars > l->max_chars ||
            is_repeat(&c.s[i], chosen, nchosen))
            continue;
        chosen[nchosen++] = c.s[i];
        used += c.s[i].chars;
    }
    qsort(chosen, nchosen, sizeof(*chosen), by_position);

    if (nchosen == 0) {
        /* Even the best sentence is too long: its start, cut to what is left (without the
         * lead-in when that leaves no room for a few words). */
        sent_t *s = &c.s[0];
        char marker[32];
        int ml = snprintf(marker, sizeof(marker), " [%zu]", s->passage + 1);
        size_t need = 1 + (size_t)ml + 12; /* " " + a word or two + "…" + marker */
        if (used + need > l->max_chars) {
            lead = "";
            used = 0;
        }
        size_t room = l->max_chars > used + (lead[0] ? 1 : 0) + (size_t)ml
                          ? l->max_chars - used - (lead[0] ? 1 : 0) - (size_t)ml
                          : 2;
        tn_buf_adds(&out, lead);
        if (emit(on_token, opaque, out.data, out.len) != TN_OK)
            goto out;
        size_t before = out.len;
        if (out.len > 0)
            tn_buf_adds(&out, " ");
        add_cut(&out, s->text, s->len, room);
        tn_buf_adds(&out, marker);
        if (emit(on_token, opaque, out.data + before, out.len - before) != TN_OK)
            goto out;
    } else {
        tn_buf_adds(&out, lead);
        if (emit(on_token, opaque, out.data, out.len) != TN_OK)
            goto out;
    }
    for (size_t i = 0; i < nchosen; i++) {
        size_t before = out.len;
        tn_buf_adds(&out, " ");
        tn_buf_add(&out, chosen[i].text, chosen[i].len);
        tn_buf_addf(&out, " [%zu]", chosen[i].passage + 1);
        if (emit(on_token, opaque, out.data + before, out.len - before) != TN_OK)
            goto out;
    }
    rc = TN_OK;
out:
    if (rc == TN_ERR_STOPPED)
        set_why(why, 0, 0, "llm: the reader stopped the answer");
    else if (answer)
        *answer = tn_buf_detach(&out, NULL);
    tn_buf_cleanup(&out);
    for (size_t i = 0; i < q.n; i++)
        free(q.w[i]);
    free(c.s);
    free(c.fold.buf);
    free(c.split.buf);
    free(chosen);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* OpenAI provider: request */

/* A JSON string of @p len bytes; invalid UTF-8 becomes U+FFFD (jansson refuses it). */
static json_t *json_text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j)
        return j;
    size_t fixed_len = 0;
    char *fixed = tn_text_utf8_repair(s, len, &fixed_len, NULL);
    j = json_stringn(fixed, fixed_len);
    free(fixed);
    return j ? j : json_string("");
}

static char *system_prompt(const char *code, bool sure)
{
    const char *in = !sure                     ? "the language of the question"
                     : strcmp(code, "es") == 0 ? "Spanish"
                                               : "English";
    return tn_xasprintf(
        "You answer questions using only the numbered passages the user gives you. Answer in "
        "%s, briefly and plainly. After each statement, cite the passage it comes from with its "
        "number in square brackets, like [1] or [2]. If the passages do not contain the answer, "
        "say that you could not find it in the documents. Never invent facts, numbers or "
        "passage numbers.",
        in);
}

/* The passages, one per block ("[1] (Title) text"), then the question. */
static json_t *user_message(const char *question, const char *code,
                            const tn_llm_passage_t *passages, size_t n)
{
    bool es = strcmp(code, "es") == 0;
    tn_buf_t b;
    tn_buf_init(&b, SIZE_MAX / 2);
    tn_buf_adds(&b, es ? "Pasajes:\n\n" : "Passages:\n\n");
    for (size_t i = 0; i < n; i++) {
        tn_buf_addf(&b, "[%zu] ", i + 1);
        if (passages[i].title && passages[i].title[0])
            tn_buf_addf(&b, "(%s) ", passages[i].title);
        /* One line per passage: a line break inside would look like the next block. */
        const char *t = passages[i].text ? passages[i].text : "";
        for (size_t k = 0; k < passages[i].text_len; k++)
            tn_buf_add(&b, t[k] == '\n' || t[k] == '\r' ? " " : t + k, 1);
        tn_buf_adds(&b, "\n\n");
    }
    tn_buf_adds(&b, es ? "Pregunta: " : "Question: ");
    tn_buf_adds(&b, question);
    json_t *j = json_text(b.data, b.len);
    tn_buf_cleanup(&b);
    return j;
}

static json_t *chat_request(const tn_llm_t *l, const char *question, const char *code, bool sure,
                            const tn_llm_passage_t *passages, size_t n, bool stream)
{
    char *sys = system_prompt(code, sure);
    json_t *msgs = json_array();
    json_array_append_new(msgs, json_pack("{ssss}", "role", "system", "content", sys));
    json_array_append_new(msgs, json_pack("{ssso}", "role", "user", "content",
                                          user_message(question, code, passages, n)));
    free(sys);
    json_t *body = json_object();
    json_object_set_new(body, "model", json_string(l->model));
    json_object_set_new(body, "messages", msgs);
    json_object_set_new(body, "temperature", json_real(l->temperature));
    json_object_set_new(body, "max_tokens", json_integer(l->max_tokens));
    json_object_set_new(body, "stream", json_boolean(stream));
    return body;
}

/* Map a failed request to the contract's codes and fill @p why. */
static tn_err_t map_failure(tn_err_t rc, const tn_http_response_t *resp, tn_llm_error_t *why)
{
    int status = (int)resp->status;
    char desc[300];
    switch (rc) {
    case TN_ERR_TIMEOUT:
        set_why(why, status, 1, "llm: timed out after %d attempt(s)", resp->attempts);
        return TN_ERR_TIMEOUT;
    case TN_ERR_UNAVAILABLE:
        if (status)
            set_why(why, status, 0, "llm: HTTP %d after %d attempt(s)", status, resp->attempts);
        else
            set_why(why, 0, 0, "llm: no answer (%s) after %d attempt(s)",
                    resp->error[0] ? resp->error : "connection failed", resp->attempts);
        return TN_ERR_UNAVAILABLE;
    case TN_ERR_UPSTREAM: {
        json_t *doc = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
        const char *m = tn_http_json_error_message(doc);
        if (m)
            set_why(why, status, 0, "llm: HTTP %d: %.200s", status, m);
        else
            set_why(why, status, 0, "llm: %s", tn_http_response_describe(resp, desc, sizeof(desc)));
        json_decref(doc);
        return TN_ERR_UPSTREAM;
    }
    case TN_ERR_PARSE:
        set_why(why, status, 0, "llm: HTTP %d answer is not JSON", status);
        return TN_ERR_PARSE;
    case TN_ERR_TOO_LARGE:
        set_why(why, status, 0, "llm: the answer is larger than %u bytes", MAX_RESPONSE);
        return TN_ERR_PARSE;
    default:
        set_why(why, status, 0, "llm: %s", tn_err_str(rc));
        return rc;
    }
}

/* choices[0].message.content of a chat.completion. */
static tn_err_t take_completion(const json_t *doc, int status, tn_buf_t *out, tn_llm_error_t *why)
{
    json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    json_t *content = json_object_get(msg, "content");
    if (!json_is_object(msg)) {
        set_why(why, status, 0, "llm: the answer has no choices[0].message");
        return TN_ERR_PARSE;
    }
    if (json_is_null(content) || !content) {
        json_t *refusal = json_object_get(msg, "refusal");
        set_why(why, status, 0, "llm: the model gave no text%s%.150s",
                json_is_string(refusal) ? ": " : "",
                json_is_string(refusal) ? json_string_value(refusal) : "");
        return TN_ERR_PARSE;
    }
    if (!json_is_string(content)) {
        set_why(why, status, 0, "llm: choices[0].message.content is not a string");
        return TN_ERR_PARSE;
    }
    if (tn_buf_add(out, json_string_value(content), json_string_length(content)) != TN_OK) {
        set_why(why, status, 0, "llm: the answer is longer than %u bytes", MAX_ANSWER);
        return TN_ERR_PARSE;
    }
    return TN_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* OpenAI provider: streaming (Server-Sent Events)
 *
 * Lines end in LF, CRLF or CR (a CR at the end of one network read and the LF at the start of
 * the next are one line end). "data:" lines (one optional space after the colon) add to the
 * event's data, joined by LF; a blank line ends the event. Comment lines (":") and other fields
 * ("event:", "id:", "retry:", unknown ones) are ignored. An event "[DONE]" ends the stream; an
 * event whose JSON has "error" is an error; otherwise choices[0].delta.content, when a string,
 * is the next piece. A server that ignores "stream" and answers application/json is read as a
 * whole answer. */

typedef struct sse {
    tn_http_response_t *resp;
    tn_llm_token_fn *on_token;
    void *opaque;
    tn_buf_t line;  /* the line being read */
    tn_buf_t data;  /* the event's data */
    tn_buf_t *text; /* the answer so far */
    bool has_data;  /* the event has a data field (maybe empty) */
    bool after_cr;  /* the last byte was a CR: a following LF ends nothing */
    bool decided;   /* looked at the Content-Type */
    bool whole;     /* not an event stream: the body is kept in line for a JSON parse */
    bool done;      /* [DONE] seen */
    bool finished;  /* a finish_reason seen */
    tn_err_t rc;    /* why the reading stopped (TN_OK: the reader went away, or not stopped) */
    bool reader_stopped;
    tn_llm_error_t *why;
} sse_t;

static int sse_fail(sse_t *s, tn_err_t rc)
{
    s->rc = rc;
    return 1;
}

static int sse_event(sse_t *s)
{
    const char *d = s->data.data ? s->data.data : "";
    size_t dl = s->data.len;
    int status = (int)s->resp->status;
    s->has_data = false;
    if (dl >= 6 && memcmp(d, "[DONE]", 6) == 0) {
        s->done = true; /* what follows is read but ignored: the connection stays usable */
        return 0;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(d, dl, 0, &jerr);
    if (!json_is_object(doc)) {
        set_why(s->why, status, 0, "llm: a stream event is not a JSON object: %s", jerr.text);
        json_decref(doc);
        return sse_fail(s, TN_ERR_PARSE);
    }
    json_t *err = json_object_get(doc, "error");
    if (err && !json_is_null(err)) {
        const char *m = tn_http_json_error_message(doc);
        set_why(s->why, status, 0, "llm: error in the stream: %.200s", m ? m : "(no message)");
        json_decref(doc);
        return sse_fail(s, TN_ERR_UPSTREAM);
    }
    json_t *choice = json_array_get(json_object_get(doc, "choices"), 0);
    json_t *content = json_object_get(json_object_get(choice, "delta"), "content");
    json_t *finish = json_object_get(choice, "finish_reason");
    if (json_is_string(finish))
        s->finished = true;
    int stop = 0;
    if (json_is_string(content) && json_string_length(content) > 0) {
        const char *p = json_string_value(content);
        size_t n = json_string_length(content);
        if (tn_buf_add(s->text, p, n) != TN_OK) {
            set_why(s->why, status, 0, "llm: the answer is longer than %u bytes", MAX_ANSWER);
            stop = sse_fail(s, TN_ERR_PARSE);
        } else if (s->on_token && s->on_token(s->opaque, p, n) != 0) {
            s->reader_stopped = true;
            stop = 1;
        }
    }
    json_decref(doc);
    return stop;
}

static int sse_line(sse_t *s)
{
    const char *p = s->line.data ? s->line.data : "";
    size_t n = s->line.len;
    int stop = 0;
    if (n == 0) {
        if (s->has_data)
            stop = sse_event(s);
        tn_buf_reset(&s->data);
    } else if (n >= 5 && memcmp(p, "data:", 5) == 0) {
        size_t k = 5 + (n > 5 && p[5] == ' ');
        if ((s->has_data && tn_buf_add(&s->data, "\n", 1) != TN_OK) ||
            tn_buf_add(&s->data, p + k, n - k) != TN_OK) {
            set_why(s->why, (int)s->resp->status, 0, "llm: a stream event is over %u bytes",
                    MAX_SSE_LINE);
            stop = sse_fail(s, TN_ERR_PARSE);
        }
        s->has_data = true;
    }
    tn_buf_reset(&s->line);
    return stop;
}

static int sse_piece(void *opaque, const char *p, size_t n)
{
    sse_t *s = opaque;
    if (s->done)
        return 0;
    if (!s->decided) {
        const char *ct = tn_http_response_header(s->resp, "Content-Type");
        s->decided = true;
        s->whole = ct && strncasecmp(ct, "application/json", 16) == 0;
    }
    if (s->whole) {
        if (tn_buf_add(&s->line, p, n) != TN_OK) {
            set_why(s->why, (int)s->resp->status, 0, "llm: the answer is larger than %u bytes",
                    MAX_SSE_LINE);
            return sse_fail(s, TN_ERR_PARSE);
        }
        return 0;
    }
    for (size_t i = 0; i < n && !s->done; i++) {
        char ch = p[i];
        if (ch == '\n' && s->after_cr) {
            s->after_cr = false;
            continue;
        }
        s->after_cr = ch == '\r';
        if (ch == '\n' || ch == '\r') {
            if (sse_line(s) != 0)
                return 1;
            continue;
        }
        /* Runs of ordinary bytes are added at once. */
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        if (tn_buf_add(&s->line, p + i, j - i) != TN_OK) {
            set_why(s->why, (int)s->resp->status, 0, "llm: a stream line is over %u bytes",
                    MAX_SSE_LINE);
            return sse_fail(s, TN_ERR_PARSE);
        }
        i = j - 1;
    }
    return 0;
}

static tn_err_t answer_stream(tn_llm_t *l, const tn_http_request_t *req, tn_llm_token_fn *on_token,
                              void *opaque, tn_buf_t *text, tn_http_response_t *resp,
                              tn_llm_error_t *why)
{
    sse_t s = {.resp = resp, .on_token = on_token, .opaque = opaque, .text = text, .why = why};
    tn_buf_init(&s.line, MAX_SSE_LINE);
    tn_buf_init(&s.data, MAX_SSE_LINE);
    tn_err_t rc = tn_http_client_stream(l->hc, req, sse_piece, &s, resp);
    if (rc == TN_ERR_STOPPED && s.reader_stopped) {
        set_why(why, (int)resp->status, 0, "llm: the reader stopped the answer");
    } else if (rc == TN_ERR_STOPPED) {
        rc = s.rc; /* why already says */
    } else if (rc == TN_OK && (resp->status < 200 || resp->status > 299)) {
        rc = map_failure(TN_ERR_UPSTREAM, resp, why);
    } else if (rc != TN_OK) {
        rc = map_failure(rc, resp, why);
    } else if (s.whole) {
        json_t *doc = json_loadb(s.line.data ? s.line.data : "", s.line.len, 0, NULL);
        rc = doc ? take_completion(doc, (int)resp->status, text, why)
                 : map_failure(TN_ERR_PARSE, resp, why);
        json_decref(doc);
        if (rc == TN_OK && on_token && text->len > 0 && on_token(opaque, text->data, text->len)) {
            set_why(why, (int)resp->status, 0, "llm: the reader stopped the answer");
            rc = TN_ERR_STOPPED;
        }
    } else {
        /* The end of the body ends the last event, as in a browser. */
        if (!s.done && s.line.len > 0 && sse_line(&s) == 0 && s.has_data)
            sse_event(&s);
        if (s.rc != TN_OK) {
            rc = s.rc;
        } else if (s.reader_stopped) {
            set_why(why, (int)resp->status, 0, "llm: the reader stopped the answer");
            rc = TN_ERR_STOPPED;
        } else if (!s.done && !s.finished) {
            set_why(why, (int)resp->status, 0, "llm: the stream ended before [DONE]");
            rc = TN_ERR_PARSE;
        }
    }
    tn_buf_cleanup(&s.line);
    tn_buf_cleanup(&s.data);
    return rc;
}

static tn_err_t answer_openai(tn_llm_t *l, const char *question, const char *lang,
                              const tn_llm_passage_t *passages, size_t n, tn_llm_token_fn *on_token,
                              void *opaque, char **answer, tn_llm_error_t *why)
{
    bool sure;
    const char *code = answer_lang(lang, question, passages, n, &sure);
    json_t *body = chat_request(l, question, code, sure, passages, n, on_token != NULL);
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_buf_t text;
    tn_buf_init(&text, MAX_ANSWER);
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = l->path,
                             .timeout_ms = l->timeout_ms,
                             .deadline_ms = l->timeout_ms};
    tn_err_t rc;
    if (on_token) {
        char *js = json_dumps(body, JSON_COMPACT);
        static const char *const hdrs[] = {"Accept: text/event-stream", NULL};
        req.headers = hdrs;
        req.body = js;
        req.body_len = js ? strlen(js) : 0;
        req.content_type = "application/json";
        rc = answer_stream(l, &req, on_token, opaque, &text, &resp, why);
        free(js);
    } else {
        json_t *doc = NULL;
        rc = tn_http_client_json_req(l->hc, &req, body, &resp, &doc);
        if (rc == TN_OK && !doc) {
            set_why(why, (int)resp.status, 0, "llm: HTTP %d with an empty body", (int)resp.status);
            rc = TN_ERR_PARSE;
        } else if (rc != TN_OK) {
            rc = map_failure(rc, &resp, why);
        } else {
            rc = take_completion(doc, (int)resp.status, &text, why);
        }
        json_decref(doc);
    }
    if (rc == TN_OK && answer)
        *answer = tn_buf_detach(&text, NULL);
    if (rc != TN_OK && rc != TN_ERR_STOPPED)
        TN_LOG(TN_LOG_WARN, "llm: %s answer from %s failed: %s: %s",
               on_token ? "streamed" : "whole", l->model, tn_err_name(rc), why ? why->msg : "");
    tn_buf_cleanup(&text);
    tn_http_response_cleanup(&resp);
    json_decref(body);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* API */

tn_llm_opts_t tn_llm_opts_default(void)
{
    tn_llm_opts_t o = {
        .provider = "extractive",
        .temperature = DEF_TEMPERATURE,
        .max_tokens = DEF_MAX_TOKENS,
        .max_chars = DEF_MAX_CHARS,
        .timeout_ms = DEF_TIMEOUT_MS,
        .max_attempts = DEF_ATTEMPTS,
        .cache_passages = DEF_CACHE_PASSAGES,
    };
    return o;
}

static bool openai_init(tn_llm_t *l, const tn_llm_opts_t *o, char *errbuf, size_t errlen)
{
    if (!o->url || !o->url[0] || !o->model || !o->model[0]) {
        snprintf(errbuf, errlen, "llm: the openai provider needs %s",
                 !o->model || !o->model[0] ? "a model" : "a url");
        return false;
    }
    if (o->temperature > 2.0) {
        snprintf(errbuf, errlen, "llm: temperature %g is out of range (0..2)", o->temperature);
        return false;
    }
    tn_http_client_opts_t ho = tn_http_client_opts_default();
    ho.upstream = UPSTREAM;
    ho.timeout_ms = l->timeout_ms;
    ho.deadline_ms = l->timeout_ms;
    ho.max_attempts = o->max_attempts > 0 ? o->max_attempts : DEF_ATTEMPTS;
    ho.metrics = o->metrics;
    /* POST attempts are only ever repeated before the first token: nothing was answered yet. */
    ho.max_response_bytes = MAX_RESPONSE;
    char herr[256];
    l->hc = tn_http_client_openai_new(&ho, o->url, o->api_key, "/chat/completions", &l->path, herr,
                                      sizeof(herr));
    if (!l->hc)
        snprintf(errbuf, errlen, "llm: %s", herr);
    return l->hc != NULL;
}

tn_llm_t *tn_llm_new(const tn_llm_opts_t *o, char *errbuf, size_t errlen)
{
    TN_ASSERT(o);
    tn_llm_t *l = tn_xcalloc(1, sizeof(*l));
    const char *prov = o->provider && o->provider[0] ? o->provider : "extractive";
    l->temperature = o->temperature >= 0 ? o->temperature : DEF_TEMPERATURE;
    l->max_tokens = o->max_tokens > 0 ? o->max_tokens : DEF_MAX_TOKENS;
    l->max_chars = o->max_chars > 0 ? o->max_chars : DEF_MAX_CHARS;
    l->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEF_TIMEOUT_MS;
    if (strcmp(prov, "extractive") == 0) {
        l->provider = PROVIDER_EXTRACTIVE;
        l->model = tn_xstrdup(o->model && o->model[0] ? o->model : DEF_EXTRACTIVE_MODEL);
        size_t want = o->cache_passages < 0    ? 0
                      : o->cache_passages == 0 ? DEF_CACHE_PASSAGES
                                               : (size_t)o->cache_passages;
        if (want > 0) {
            l->ways = want < CACHE_WAYS ? want : CACHE_WAYS;
            for (l->nsets = 1; l->nsets * l->ways < want; l->nsets *= 2)
                ;
            l->cache = tn_xcalloc(l->nsets, sizeof(*l->cache));
            for (size_t i = 0; i < l->nsets; i++)
                pthread_mutex_init(&l->cache[i].mu, NULL);
        }
        return l;
    }
    if (strcmp(prov, "openai") != 0) {
        snprintf(errbuf, errlen, "llm: unknown provider \"%s\" (extractive, openai)", prov);
        goto fail;
    }
    l->provider = PROVIDER_OPENAI;
    if (!openai_init(l, o, errbuf, errlen))
        goto fail;
    l->model = tn_xstrdup(o->model);
    return l;
fail:
    tn_llm_destroy(l);
    return NULL;
}

void tn_llm_destroy(tn_llm_t *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nsets; i++) {
        for (size_t j = 0; j < l->ways; j++)
            passage_free(l->cache[i].way[j]);
        pthread_mutex_destroy(&l->cache[i].mu);
    }
    free(l->cache);
    tn_http_client_destroy(l->hc);
    free(l->path);
    free(l->model);
    free(l);
}

const char *tn_llm_model(const tn_llm_t *l)
{
    TN_ASSERT(l);
    return l->model;
}

tn_err_t tn_llm_answer(tn_llm_t *l, const char *question, const char *lang,
                       const tn_llm_passage_t *passages, size_t n, tn_llm_token_fn *on_token,
                       void *opaque, char **answer, tn_llm_error_t *why)
{
    TN_ASSERT(l && question && (passages || n == 0));
    if (answer)
        *answer = NULL;
    if (why)
        memset(why, 0, sizeof(*why));
    if (!on_token)
        TN_ASSERT(answer);
    if (l->provider == PROVIDER_EXTRACTIVE)
        return answer_extractive(l, question, lang, passages, n, on_token, opaque, answer, why);
    return answer_openai(l, question, lang, passages, n, on_token, opaque, answer, why);
}
