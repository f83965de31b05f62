/* Spanish/English detection from function words and Spanish-only letters. */
#include "taina/lang.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "taina/mem.h"

/* Frequent words that are (almost) only Spanish or only English. */
static const char *const es_words[] = {
    "al",     "algo",  "ante",     "cita", "como",  "con",   "cuando", "de",    "del",
    "desde",  "donde", "el",       "ella", "ellos", "en",    "entre",  "es",    "esta",
    "este",   "esto",  "hay",      "la",   "las",   "le",    "lo",     "los",   "mi",
    "mis",    "muy",   "necesito", "para", "pero",  "por",   "porque", "puedo", "que",
    "quiero", "se",    "ser",      "si",   "sin",   "sobre", "son",    "su",    "sus",
    "tengo",  "una",   "uno",      "unos", "y",     "ya",    "yo",
};
static const char *const en_words[] = {
    "a",      "about", "am",   "and",   "are",  "as",   "at",   "be",   "but",  "by",
    "can",    "could", "do",   "does",  "for",  "from", "have", "how",  "i",    "if",
    "in",     "is",    "it",   "my",    "need", "not",  "of",   "on",   "or",   "please",
    "should", "that",  "the",  "this",  "to",   "want", "was",  "what", "when", "where",
    "which",  "will",  "with", "would", "you",  "your",
};

/* Both lists in one open-addressing hash table, built once: bit 1 Spanish, bit 2 English. A word
 * is looked up by its bytes packed into an integer (none of the listed words is longer than 8
 * bytes, so a longer word is no function word): a multiply and an integer compare per word. */
#define NSLOTS   256
#define MAX_WORD 8
static struct {
    uint64_t key; /* 0: empty */
    unsigned char lists;
} slots[NSLOTS];
/* A word's byte: ASCII letters lowercased (as tolower() in the C locale) and the apostrophe;
 * 0 for any other ASCII byte, which ends a word. */
static unsigned char letter[0x80];
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static size_t find(uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15u) >> 56); /* NSLOTS = 2^8 */
    while (slots[i].key && slots[i].key != key)
        i = (i + 1) & (NSLOTS - 1);
    return i;
}

static void add_list(const char *const *list, size_t n, unsigned char bit)
{
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(list[k]);
        TN_ASSERT(len > 0 && len <= MAX_WORD);
        uint64_t key = 0;
        for (size_t j = 0; j < len; j++)
            key |= (uint64_t)(unsigned char)list[k][j] << (8 * j);
        size_t i = find(key);
        slots[i].key = key;
        slots[i].lists |= bit;
    }
}

static void build_slots(void)
{
    for (unsigned c = 'a'; c <= 'z'; c++) {
        letter[c] = (unsigned char)c;
        letter[c - 'a' + 'A'] = (unsigned char)c;
    }
    letter['\''] = '\'';
    add_list(es_words, TN_ARRAY_LEN(es_words), 1);
    add_list(en_words, TN_ARRAY_LEN(en_words), 2);
}

/* Spanish-only letters and marks: ñ Ñ ¿ ¡ á é í ó ú (UTF-8 lead 0xC2/0xC3), as evidence in
 * halves: 1 for a letter, 2 for an opening mark. */
static unsigned mark_halves(const unsigned char *u, size_t len, size_t i)
{
    unsigned char c = u[i], d = i + 1 < len ? u[i + 1] : 0;
    if (c == 0xC3)
        return d == 0xB1 || d == 0x91 || d == 0xA1 || d == 0xA9 || d == 0xAD || d == 0xB3 ||
               d == 0xBA;
    if (c == 0xC2)
        return 2 * (d == 0xBF || d == 0xA1);
    return 0;
}

tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint)
{
    pthread_once(&slots_once, build_slots);
    /* evidence counted in halves, as integers: the same sums as adding 0.5s and 1s */
    size_t es2 = 0, en2 = 0, words = 0;
    const unsigned char *u = (const unsigned char *)text;
    /* the first TN_LANG_SAMPLE bytes (the word there read to its end) */
    size_t stop = len < TN_LANG_SAMPLE ? len : TN_LANG_SAMPLE;
    for (size_t i = 0; i < stop;) {
        unsigned char c = u[i];
        if (c >= 0x80) { /* outside a word: a word starts at an ASCII letter */
            es2 += mark_halves(u, len, i++);
            continue;
        }
        if (!letter[c]) {
            i++;
            continue;
        }
        /* A word: up to the next ASCII byte that is no letter. A non-ASCII letter in it makes
         * it no function word (all are ASCII), and none is longer than MAX_WORD. */
        size_t start = i;
        uint64_t key = 0;
        int foreign = 0;
        for (; i < len; i++) {
            c = u[i];
            if (c >= 0x80) {
                es2 += mark_halves(u, len, i);
                foreign = 1;
                continue;
            }
            if (!letter[c])
                break;
            if (i - start < MAX_WORD)
                key |= (uint64_t)letter[c] << (8 * (i - start));
        }
        if (foreign)
            continue;
        words++;
        if (i - start <= MAX_WORD) {
            unsigned lists = slots[find(key)].lists;
            es2 += 2 * (lists & 1);
            en2 += lists & 2;
        }
    }
    double es = (double)es2 / 2, en = (double)en2 / 2;
    tn_lang_t r = {"und", 0};
    double total = es + en;
    if (total < 2 || words == 0)
        return r;
    if (hint && strcmp(hint, "es") == 0)
        es += 0.5;
    else if (hint && strcmp(hint, "en") == 0)
        en += 0.5;
    double best = es > en ? es : en;
    /* Share of the evidence, discounted for little evidence: 2 signals give at most 0.5. */
    double share = best / (es + en);
    double amount = total >= 8 ? 1.0 : total / 8.0 + 0.25;
    r.confidence = share * (amount > 1 ? 1 : amount);
    if (share < 0.6) {
        /* Too close to call: the sender's hint decides if its language is not behind. */
        int hint_es = hint && strcmp(hint, "es") == 0, hint_en = hint && strcmp(hint, "en") == 0;
        if ((hint_es && es >= en) || (hint_en && en >= es))
            return (tn_lang_t){hint_es ? "es" : "en", r.confidence};
        return (tn_lang_t){"und", r.confidence};
    }
    r.code = es > en ? "es" : "en";
    return r;
}
