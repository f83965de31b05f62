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

/* Word lengths: counted up to WORD_CAP; FOREIGN marks a word with a non-ASCII letter. */
#define WORD_CAP 23
#define FOREIGN  24

tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint)
{
    pthread_once(&slots_once, build_slots);
    double es = 0, en = 0;
    size_t words = 0, wl = 0;
    uint64_t key = 0;
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? u[i] : ' ';
        if (c >= 0x80) {
            /* Spanish-only letters and marks: ñ Ñ ¿ ¡ á é í ó ú (UTF-8 lead 0xC2/0xC3). */
            unsigned char d = i + 1 < len ? u[i + 1] : 0;
            if (c == 0xC3 && (d == 0xB1 || d == 0x91 || d == 0xA1 || d == 0xA9 || d == 0xAD ||
                              d == 0xB3 || d == 0xBA))
                es += 0.5;
            else if (c == 0xC2 && (d == 0xBF || d == 0xA1))
                es += 1;
            if (wl > 0) /* a non-ASCII letter inside a word: not a function word */
                wl = FOREIGN;
            continue;
        }
        if (letter[c]) {
            if (wl < WORD_CAP) {
                if (wl < MAX_WORD)
                    key |= (uint64_t)letter[c] << (8 * wl);
                wl++;
            }
            continue;
        }
        if (wl > 0 && wl != FOREIGN) {
            words++;
            if (wl <= MAX_WORD) {
                unsigned lists = slots[find(key)].lists;
                if (lists & 1)
                    es += 1;
                if (lists & 2)
                    en += 1;
            }
        }
        wl = 0;
        key = 0;
    }
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
