/* Internal (lang.c, category.c): language evidence from the words of folded text. The category
 * scan splits title and body into words for its keywords; each word's key also counts here, so
 * that classifying a ticket and detecting its language is one pass over its words. */
#ifndef TAINA_LANG_INT_H
#define TAINA_LANG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "taina/lang.h"

/* Evidence in halves, as integers (the same sums as adding 0.5s and 1s): Spanish in the low 32
 * bits of halves, English in the high 32 (a text under 2 GB cannot carry into English). */
typedef struct lang_evidence {
    uint64_t halves;
    size_t words;
} lang_evidence_t;

#define LANG_ES2(ev) ((size_t)((ev)->halves & 0xFFFFFFFFu))
#define LANG_EN2(ev) ((size_t)((ev)->halves >> 32))

/* The function words, both lists in one table (lang.c): a word's key and the lists it is in (bit
 * 0 Spanish, bit 1 English; each adds 2 to its half). A word is looked up by its bytes packed into
 * an integer (none is longer than 8 bytes) in the one slot a multiply gives it (chosen so that no
 * two listed words share one): a load and a compare, no probing and no branch. An empty slot holds
 * key 0, which no word has. 512 slots of 8 bytes and 512 of 1 (4.5 KB): the table is read once a
 * word, next to the category's slots and the text, and at 1,024 slots of key and halves (16 KB)
 * it was half of L1 and a fifth of the scan's time in the service. */
#define LANG_SLOT_BITS 9
extern uint64_t tn_lang_keys[1u << LANG_SLOT_BITS];
extern uint8_t tn_lang_lists[1u << LANG_SLOT_BITS];
extern const uint64_t tn_lang_list_halves[4];
extern uint64_t tn_lang_slot_mult;

/* The slot of @p key. */
static inline size_t lang_slot_of(uint64_t key)
{
    return (size_t)((key * tn_lang_slot_mult) >> (64 - LANG_SLOT_BITS));
}

/* Build the table (once; any thread). */
void tn_lang_init(void);

/* Count a word of folded text of @p n bytes (0: no word, as between two spaces) whose first 8
 * bytes are @p key (byte 0 in the low bits, zero past the word). Without a branch on the word. */
static inline void lang_add_word(lang_evidence_t *ev, uint64_t key, size_t n)
{
    key &= 0 - (uint64_t)(n <= 8); /* longer: no function word */
    size_t i = lang_slot_of(key);
    ev->halves += tn_lang_list_halves[tn_lang_lists[i]] & (0 - (uint64_t)(tn_lang_keys[i] == key));
    ev->words += n != 0;
}

/* Spanish-only letters and marks (ñ á é í ó ú ¿ ¡) in @p len bytes of @p text, in halves: 1 for
 * a letter, 2 for an opening mark. */
size_t tn_lang_marks(const char *text, size_t len);

/* The same for one decoded code point: what tn_lang_marks() counts for its UTF-8 (the category
 * scan's fold decodes every character that is not ASCII, and counts them as it goes). */
static inline unsigned lang_cp_marks(int32_t cp)
{
    switch (cp) {
    case 0xF1: /* ñ */
    case 0xD1: /* Ñ */
    case 0xE1: /* á */
    case 0xE9: /* é */
    case 0xED: /* í */
    case 0xF3: /* ó */
    case 0xFA: /* ú */
        return 1;
    case 0xBF: /* ¿ */
    case 0xA1: /* ¡ */
        return 2;
    default:
        return 0;
    }
}

/* The language the evidence speaks for, @p hint ("es"/"en", may be NULL) breaking near-ties. */
tn_lang_t tn_lang_decide(const lang_evidence_t *ev, const char *hint);

/* category.c: the words of @p len bytes of UTF-8 @p text, folded as keywords are, and its marks
 * (tn_lang_marks()), into @p ev. */
void tn_category_lang_words(const char *text, size_t len, lang_evidence_t *ev);

#endif
