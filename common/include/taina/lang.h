/**
 * @file lang.h
 * @brief Language detection for Spanish and English text, offline: function-word frequencies and
 *        Spanish-only letters, with a confidence. Anything else is "und".
 *
 * @thread Pure functions: call from any thread.
 */
#ifndef TAINA_LANG_H
#define TAINA_LANG_H

#include <stddef.h>

/** A detection: "es", "en" or "und", and a confidence in [0, 1]. */
typedef struct tn_lang {
    const char *code; /**< static string */
    double confidence;
} tn_lang_t;

/**
 * @brief Detect the language of @p len bytes of UTF-8 @p text from all its words, folded as the
 *        category keywords are (lower case, accents removed: "Está" is the function word
 *        "esta"), and the Spanish-only letters and marks as they stand. Short or mixed text gives
 *        "und" (or a low confidence); a @p hint ("es"/"en", may be NULL) breaks near-ties.
 *        tn_category_classify_lang() detects the same in the pass that finds the keywords.
 */
tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint);

#endif
