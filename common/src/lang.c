/* Spanish/English detection from function words (of folded text: the category scan's words) and
 * Spanish-only letters. */
#include "taina/lang.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "taina/mem.h"
#include "bytes_int.h"
#include "lang_int.h"

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

/* The table of lang_int.h: both lists, built once. */
#define NSLOTS   (1u << LANG_SLOT_BITS)
#define MAX_WORD 8
uint64_t tn_lang_keys[NSLOTS];
uint8_t tn_lang_lists[NSLOTS];
const uint64_t tn_lang_list_halves[4] = {0, 2, (uint64_t)2 << 32, 2 | (uint64_t)2 << 32};
uint64_t tn_lang_slot_mult;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

/* Put the words of @p list in the table, in list @p bit; 0 if one takes another word's slot. */
static int add_list(const char *const *list, size_t n, uint8_t bit)
{
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(list[k]);
        TN_ASSERT(len > 0 && len <= MAX_WORD);
        uint64_t key = tn_word_key(list[k], len);
        size_t i = lang_slot_of(key);
        if (tn_lang_keys[i] && tn_lang_keys[i] != key)
            return 0;
        tn_lang_keys[i] = key;
        tn_lang_lists[i] |= bit;
    }
    return 1;
}

static void build_slots(void)
{
    /* Odd multipliers from a fixed sequence until one spreads the ~100 words without a shared
     * slot. The sequence starts where it found one for these lists: from 0x9E3779B97F4A7C15 it
     * took 31,699 tries (21 ms) to reach it for 512 slots. Edited lists search on from there. */
    uint64_t x = 0xA5211488CB7814C3u;
    for (int tries = 0;; tries++) {
        TN_ASSERT(tries < 1000000);
        tn_lang_slot_mult = x | 1;
        memset(tn_lang_keys, 0, sizeof(tn_lang_keys));
        memset(tn_lang_lists, 0, sizeof(tn_lang_lists));
        if (add_list(es_words, TN_ARRAY_LEN(es_words), 1) &&
            add_list(en_words, TN_ARRAY_LEN(en_words), 2))
            break;
        x = x * 6364136223846793005u + 1442695040888963407u;
    }
}

void tn_lang_init(void)
{
    pthread_once(&slots_once, build_slots);
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

size_t tn_lang_marks(const char *text, size_t len)
{
    const unsigned char *u = (const unsigned char *)text;
    size_t n = 0, i = 0;
#ifdef TN_V16
    for (; i + 17 <= len; i += 16) {
        __m128i v = tn_v16_load(u + i);
        if (!tn_v16_bits(v))
            continue; /* ASCII */
        __m128i d = tn_v16_load(u + i + 1);
        __m128i accented = _mm_or_si128(
            _mm_or_si128(_mm_or_si128(tn_v16_eq(d, 0xB1), tn_v16_eq(d, 0x91)),
                         _mm_or_si128(tn_v16_eq(d, 0xA1), tn_v16_eq(d, 0xA9))),
            _mm_or_si128(_mm_or_si128(tn_v16_eq(d, 0xAD), tn_v16_eq(d, 0xB3)), tn_v16_eq(d, 0xBA)));
        __m128i opening = _mm_or_si128(tn_v16_eq(d, 0xBF), tn_v16_eq(d, 0xA1));
        n += tn_v16_count(_mm_and_si128(tn_v16_eq(v, 0xC3), accented)) +
             2 * tn_v16_count(_mm_and_si128(tn_v16_eq(v, 0xC2), opening));
    }
#endif
    for (; i < len; i++)
        n += mark_halves(u, len, i);
    return n;
}

tn_lang_t tn_lang_decide(const lang_evidence_t *ev, const char *hint)
{
    size_t es2 = LANG_ES2(ev), en2 = LANG_EN2(ev), words = ev->words;
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

/* The words of the text folded as the category scan folds keywords (lower case, accents
 * removed: "Está" counts as "esta"), every word, and the marks of the text as it stands. */
tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint)
{
    lang_evidence_t ev = {0, 0};
    if (len > 0) /* its marks too */
        tn_category_lang_words(text, len, &ev);
    return tn_lang_decide(&ev, hint);
}
