/* Spanish/English detection from function words and Spanish-only letters. */
#include "taina/lang.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "taina/mem.h"
#include "bytes_int.h"

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

/* Both lists in one table, built once: bit 1 Spanish, bit 2 English. A word is looked up by its
 * bytes packed into an integer (none of the listed words is longer than 8 bytes, so a longer word
 * is no function word) in the one slot a multiply gives it: the multiplier is chosen when the
 * table is built so that no two listed words share a slot, so a lookup is a load and a compare,
 * no probing and no branch. An empty slot holds key 0, which no word has. */
#define SLOT_BITS 10
#define NSLOTS    (1u << SLOT_BITS)
#define MAX_WORD  8
static uint64_t slot_key[NSLOTS];
static unsigned char slot_lists[NSLOTS];
static uint64_t slot_mult;
/* A word's byte: ASCII letters lowercased (as tolower() in the C locale) and the apostrophe;
 * 0 for any other ASCII byte, which ends a word. */
static unsigned char letter[0x80];
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static inline size_t slot_of(uint64_t key)
{
    return (size_t)((key * slot_mult) >> (64 - SLOT_BITS));
}

/* The lists of @p key: 0 unless it is a listed word. */
static inline unsigned lists_of(uint64_t key)
{
    size_t i = slot_of(key);
    return slot_lists[i] & (0u - (unsigned)(slot_key[i] == key));
}

/* Put the words of @p list in the table; 0 if one takes another word's slot. */
static int add_list(const char *const *list, size_t n, unsigned char bit)
{
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(list[k]);
        TN_ASSERT(len > 0 && len <= MAX_WORD);
        uint64_t key = 0;
        for (size_t j = 0; j < len; j++)
            key |= (uint64_t)(unsigned char)list[k][j] << (8 * j);
        size_t i = slot_of(key);
        if (slot_key[i] && slot_key[i] != key)
            return 0;
        slot_key[i] = key;
        slot_lists[i] |= bit;
    }
    return 1;
}

static void build_slots(void)
{
    for (unsigned c = 'a'; c <= 'z'; c++) {
        letter[c] = (unsigned char)c;
        letter[c - 'a' + 'A'] = (unsigned char)c;
    }
    letter['\''] = '\'';
    /* odd multipliers from a fixed sequence until one spreads the ~100 words without a shared
     * slot (a few hundred tries at most for 1,024 slots; the same one on every run) */
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int tries = 0;; tries++) {
        TN_ASSERT(tries < 100000);
        slot_mult = x | 1;
        memset(slot_key, 0, sizeof(slot_key));
        memset(slot_lists, 0, sizeof(slot_lists));
        if (add_list(es_words, TN_ARRAY_LEN(es_words), 1) &&
            add_list(en_words, TN_ARRAY_LEN(en_words), 2))
            break;
        x = x * 6364136223846793005u + 1442695040888963407u;
    }
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

/* The marks' halves of u[0..end) (a byte's mark may read u[end], as long as it is < len). */
static size_t marks(const unsigned char *u, size_t end, size_t len)
{
    size_t n = 0, i = 0;
#ifdef TN_V16
    for (; i + 16 <= end && i + 17 <= len; i += 16) {
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
    for (; i < end; i++)
        n += mark_halves(u, len, i);
    return n;
}

/* The first ASCII letter in u[i..stop), or stop. */
static size_t next_letter(const unsigned char *u, size_t i, size_t stop)
{
    while (i < stop && (u[i] >= 0x80 || !letter[u[i]]))
        i++;
    return i;
}

/* The end of the word that starts at the letter u[i]: the next ASCII byte that is no letter,
 * or len. *foreign: a byte from 0x80 up is in it. */
static size_t word_end(const unsigned char *u, size_t i, size_t len, int *foreign)
{
    *foreign = 0;
    for (; i < len; i++) {
        if (u[i] >= 0x80)
            *foreign = 1;
        else if (!letter[u[i]])
            break;
    }
    return i;
}

typedef struct evidence {
    size_t es2, en2, words; /* halves, as integers: the same sums as adding 0.5s and 1s */
} evidence_t;

/* Word u[0..n), all ASCII letters unless @p foreign; @p len bytes from u on are readable.
 * Without a branch on what the word is: a foreign or long word looks up key 0, found nowhere. */
static inline void add_word(evidence_t *ev, const unsigned char *u, size_t n, size_t len,
                            int foreign)
{
    uint64_t key = 0;
    if (len >= 8) { /* the word and what follows, lowercased at once, then cut: setting bit 5
                     * lowercases A-Z and leaves a-z and the apostrophe as they are */
        uint64_t w = tn_load8_le(u) | 0x20 * ONES;
        uint64_t keep = n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
        key = w & keep & (0 - (uint64_t)(n <= MAX_WORD && !foreign));
    } else if (!foreign) {
        for (size_t j = 0; j < n; j++)
            key |= (uint64_t)letter[u[j]] << (8 * j);
    }
    unsigned lists = lists_of(key);
    ev->words += !foreign;
    ev->es2 += 2 * (lists & 1);
    ev->en2 += lists & 2;
}

tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint)
{
    pthread_once(&slots_once, build_slots);
    evidence_t ev = {0, 0, 0};
    const unsigned char *u = (const unsigned char *)text;
    /*
     * The words that start in the first TN_LANG_SAMPLE bytes, the last one read to its end: a
     * word starts at an ASCII letter and runs to the next ASCII byte that is no letter; one
     * with a byte from 0x80 up is no function word (all are ASCII) and is not counted. The
     * marks are counted over the same bytes.
     */
    size_t stop = len < TN_LANG_SAMPLE ? len : TN_LANG_SAMPLE, end = stop, i = 0;
#ifdef TN_V16
    /*
     * 64 bytes at a time, from masks: letters L, bytes from 0x80 up H, and the others O, which
     * end words. A word starts at the first letter of each run of L|H bytes: the run's first
     * byte if it is a letter, else the byte after the run's leading H bytes, where adding the
     * run's start to them carries. Each word's end is the next O bit. Words come from the
     * masks, not from reading the bytes after the word before, so one word's lookup does not
     * wait for the last one's end. A word that runs past the block is read to its end and the
     * next block starts there; a run of H bytes across the boundary has no letter before it, so
     * the next block may take its first letter for a start.
     */
    while (i + 64 <= len && i < stop) {
        uint64_t letters = 0, high = 0;
        for (int k = 0; k < 4; k++) {
            __m128i v = tn_v16_load(u + i + 16 * (size_t)k);
            __m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* A-Z to a-z, 0x80+ stays */
            high |= (uint64_t)tn_v16_bits(v) << (16 * k);
            letters |=
                (uint64_t)tn_v16_bits(_mm_or_si128(tn_v16_in(lower, 'a', 'z'), tn_v16_eq(v, '\'')))
                << (16 * k);
        }
        uint64_t run = letters | high, other = ~run;
        uint64_t run_start = run & ~(run << 1);
        uint64_t starts = (run_start | (high + (run_start & high))) & letters;
        if (stop - i < 64)
            starts &= (1ULL << (stop - i)) - 1; /* words start before stop */
        size_t next = i + 64;
        for (; starts; starts &= starts - 1) {
            unsigned s = (unsigned)__builtin_ctzll(starts);
            uint64_t ends = other & (~0ULL << s);
            if (!ends) { /* it runs past the block */
                int foreign;
                size_t e = word_end(u, i + s, len, &foreign);
                add_word(&ev, u + i + s, e - i - s, len - i - s, foreign);
                end = e > end ? e : end;
                next = e;
                break;
            }
            unsigned e = (unsigned)__builtin_ctzll(ends);
            int foreign = (high & (ends - 1) & (~0ULL << s)) != 0;
            add_word(&ev, u + i + s, e - s, len - i - s, foreign);
            end = i + e > end ? i + e : end;
        }
        i = next;
    }
#endif
    for (i = next_letter(u, i, stop); i < stop; i = next_letter(u, i, stop)) {
        int foreign;
        size_t e = word_end(u, i, len, &foreign);
        add_word(&ev, u + i, e - i, len - i, foreign);
        end = e > end ? e : end;
        i = e;
    }
    size_t es2 = ev.es2 + marks(u, end, len), en2 = ev.en2, words = ev.words;
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
