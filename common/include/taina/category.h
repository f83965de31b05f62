/**
 * @file category.h
 * @brief Rule-based categorization of tickets: keywords per language -> category and priority.
 *
 * Rules file, one rule per line (`#` comments):
 *
 *     # category  priority  lang  keywords (comma-separated phrases)
 *     passport    normal    es    pasaporte, renovar pasaporte
 *     passport    normal    en    passport
 *     complaint   high      *     queja, complaint, reclamo
 *
 * Matching ignores case and accents ("Cédula" matches "cedula") and needs whole words. Each
 * occurrence of a keyword scores 1 in the body and TN_CATEGORY_TITLE_WEIGHT in the title, a
 * phrase of several words no more than one word (a passing "ID card" must not outweigh the
 * topic's own words); the category with the highest score wins, on ties the one with more
 * distinct keywords found, then the first in the file. No hit: the default category
 * ("general", "normal").
 * `lang` is "es", "en" or "*" (any); rules of the other language are skipped.
 *
 * @thread Immutable after tn_category_new(): any number of threads may classify.
 */
#ifndef TAINA_CATEGORY_H
#define TAINA_CATEGORY_H

#include <stddef.h>

#include "taina/err.h"
#include "taina/lang.h"

typedef struct tn_category tn_category_t;

/** The built-in rules (citizen services), used when no file is configured. */
extern const char tn_category_default_rules[];

/** A classification. Strings are borrowed from the rules; valid until destroy. */
typedef struct tn_category_result {
    const char *category;
    const char *priority;
    int score;    /**< keyword occurrences, title ones counted TN_CATEGORY_TITLE_WEIGHT times */
    int keywords; /**< distinct keywords of the category found */
} tn_category_result_t;

/** What one keyword occurrence in the title scores (the body: 1); the title names the topic. */
#define TN_CATEGORY_TITLE_WEIGHT 3

/**
 * @brief Compile rules (NULL = the built-in ones). @p name is for error messages.
 * @returns NULL with one sentence in @p errbuf naming the line. Caller owns the result; free
 *          with tn_category_destroy().
 */
tn_category_t *tn_category_new(const char *text, const char *name, char *errbuf, size_t errlen);
/** @brief Free. NULL ok. */
void tn_category_destroy(tn_category_t *c);
/**
 * @brief Classify a document: @p tlen bytes of UTF-8 title (may be NULL) and @p blen of body, in
 *        language @p lang ("es", "en", "und"; NULL: every rule). Deterministic.
 */
tn_category_result_t tn_category_classify_doc(const tn_category_t *c, const char *title,
                                              size_t tlen, const char *body, size_t blen,
                                              const char *lang);
/**
 * @brief tn_category_classify_doc() in the language the document is in: one pass over its words
 *        finds the keywords and detects the language (into @p lang, as tn_lang_detect() of
 *        title, ". ", body with @p hint), whose rules then apply.
 */
tn_category_result_t tn_category_classify_lang(const tn_category_t *c, const char *title,
                                               size_t tlen, const char *body, size_t blen,
                                               const char *hint, tn_lang_t *lang);
/** @brief Classify @p len bytes of UTF-8 text (a body without a title). */
tn_category_result_t tn_category_classify(const tn_category_t *c, const char *text, size_t len,
                                          const char *lang);
/**
 * @brief Fold @p len bytes of UTF-8 for matching: lower case, accents removed, every run of
 *        non-alphanumerics one space, padded with a space at both ends. Caller frees the result.
 */
char *tn_category_fold(const char *text, size_t len);
/**
 * @brief tn_category_fold() into a buffer the caller reuses (no allocation once it is big
 *        enough): the same bytes and a NUL in *buf, grown with tn_xrealloc() as needed.
 * @param buf   *buf NULL or from an earlier call; caller owns it, free() when done.
 * @param cap   *buf's size in bytes (0 with NULL); updated when it grows.
 * @returns the folded length (without the NUL).
 */
size_t tn_category_fold_into(const char *text, size_t len, char **buf, size_t *cap);

#endif
