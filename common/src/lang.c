/* Spanish/English detection from function words and Spanish-only letters. */
#include "taina/lang.h"

#include <ctype.h>
#include <string.h>

#include "taina/mem.h"

/* Frequent words that are (almost) only Spanish or only English. Sorted for bsearch. */
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

static int cmp(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

static int in_list(const char *w, const char *const *list, size_t n)
{
    return bsearch(w, list, n, sizeof(*list), cmp) != NULL;
}

tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint)
{
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
        if (isalpha(c) || c == '\'') {
            if (wl < sizeof(w) - 1)
                w[wl++] = (char)tolower(c);
            continue;
        }
        if (c >= 0x80 && wl > 0) { /* a non-ASCII letter inside a word: not a function word */
            wl = sizeof(w);
            continue;
        }
        if (wl > 0 && wl < sizeof(w)) {
            w[wl] = '\0';
            words++;
            if (in_list(w, es_words, TN_ARRAY_LEN(es_words)))
                es += 1;
            if (in_list(w, en_words, TN_ARRAY_LEN(en_words)))
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
