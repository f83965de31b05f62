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

/** Bytes of a text that detection reads: some 600 words, far more evidence than a confident
 *  answer needs, so that a long document costs no more than its start (as language identifiers
 *  such as CLD3 sample the first bytes). */
#define TN_LANG_SAMPLE 4096

/**
 * @brief Detect the language of @p len bytes of UTF-8 @p text (its first TN_LANG_SAMPLE bytes,
 *        the word there read to its end). Short or mixed text gives "und" (or a low
 *        confidence); a @p hint ("es"/"en", may be NULL) breaks near-ties.
 */
tn_lang_t tn_lang_detect(const char *text, size_t len, const char *hint);

#endif
