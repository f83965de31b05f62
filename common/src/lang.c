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

/* Both lists in one open-addressing hash table, built once: bit 1 Spanish, bit 2 English. */
#define NSLOTS 256
static struct {
    const char *word;
    unsigned char len, lists;
} slots[NSLOTS];
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static uint32_t hash_word(const char *w, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

static size_t find(const char *w, size_t len)
{
    size_t i = hash_word(w, len) & (NSLOTS - 1);
    while (slots[i].word && !(slots[i].len == len && memcmp(slots[i].word, w, len) == 0))
        i = (i + 1) & (NSLOTS - 1);
    return i;
}

static void add_list(const char *const *list, size_t n, unsigned char bit)
{
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(list[k]), i = find(list[k], len);
        slots[i].word = list[k];
        slots[i].len = (unsigned char)len;
        slots[i].lists |= bit;
    }
}

static void build_slots(void)
{
    add_list(es_words, TN_ARRAY_LEN(es_words), 1);
    add_list(en_words, TN_ARRAY_LEN(en_words), 2);
}

tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint)
{
    pthread_once(&slots_once, build_slots);
    double es = 0, en = 0;
    size_t words = 0;
    char w[24];
    size_t wl = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)text[i] : ' ';
        /* Spanish-only letters and marks: ñ Ñ ¿ ¡ á é í ó ú (UTF-8 lead 0xC2/0xC3). */
        if (c == 0xC3 && i + 1 < len) {
            unsigned char d = (unsigned char)text[i + 1];
            if (d == 0xB1 || d == 0x91 || d == 0xA1 || d == 0xA9 || d == 0xAD || d == 0xB3 ||
                d == 0xBA)
                es += 0.5;
        } else if (c == 0xC2 && i + 1 < len) {
            unsigned char d = (unsigned char)text[i + 1];
            if (d == 0xBF || d == 0xA1)
                es += 1;
        }
        /* ASCII letters only, as isalpha() and tolower() in the C locale (never changed) */
        if ((unsigned)((c | 0x20) - 'a') < 26u || c == '\'') {
            if (wl < sizeof(w) - 1)
                w[wl++] = (char)(c == '\'' ? c : c | 0x20);
            continue;
        }
        if (c >= 0x80 && wl > 0) { /* a non-ASCII letter inside a word: not a function word */
            wl = sizeof(w);
            continue;
        }
        if (wl > 0 && wl < sizeof(w)) {
            words++;
            unsigned lists = slots[find(w, wl)].lists;
            if (lists & 1)
                es += 1;
            if (lists & 2)
                en += 1;
        }
        wl = 0;
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
