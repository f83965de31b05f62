/**
 * @file pii.h
 * @brief PII redaction with typed placeholders: "[EMAIL]", "[PHONE]", "[CEDULA]", "[CARD]",
 * "[IBAN]".
 *
 * Rules come from a text file (or the built-in defaults, tn_pii_default_rules), one per line:
 *
 *     # TYPE   CHECK  PCRE2 pattern (rest of the line)
 *     CEDULA   none   \b\d{3}-\d{7}-\d\b
 *     CARD     luhn   \b\d(?:[ -]?\d){12,18}\b
 *
 * CHECK is `none`, `luhn` (the digits of the match must pass the Luhn check), `iban` (ISO 13616
 * mod-97 check), `phone` (9 to 15 digits) or `cedula` (11 digits with a valid Dominican cedula
 * check digit). Rules apply in file order, each to the output of the previous one, so put the
 * specific ones (IBAN, CARD, CEDULA) before the loose ones (PHONE); rules of one TYPE share its
 * placeholder and counter. An `iban` match that fails its check is tried again without its
 * trailing space-separated pieces (a word after the IBAN is not part of it). Patterns are compiled
 * once (JIT when available) and run with match and depth limits: input that makes a pattern blow
 * its limit is an error, never a hang, and the text is not passed on half-redacted.
 * tools/demo/corpus/check.py reads the built-in rules from pii.c and runs them with Python's re:
 * keep patterns to the syntax both share (fixed-width look-behinds, a leading (?i)).
 *
 * @thread A tn_pii_t is immutable after tn_pii_new(): any number of threads may redact with it.
 */
#ifndef TAINA_PII_H
#define TAINA_PII_H

#include <stddef.h>

#include "taina/buf.h"
#include "taina/err.h"

typedef struct tn_pii tn_pii_t;

/** The built-in rules (used when no rules file is configured). */
extern const char tn_pii_default_rules[];

/**
 * @brief Compile rules from @p text (NUL-terminated, the file format above); NULL = defaults.
 * @param name shown in error messages ("pii.rules"). May be NULL.
 * @returns NULL with one sentence in @p errbuf naming the line. Caller owns the result; free
 *          with tn_pii_destroy().
 */
tn_pii_t *tn_pii_new(const char *text, const char *name, char *errbuf, size_t errlen);
/** @brief Read a rules file and compile it. Same ownership as tn_pii_new(). */
tn_pii_t *tn_pii_load(const char *path, char *errbuf, size_t errlen);
/** @brief Free. NULL ok. */
void tn_pii_destroy(tn_pii_t *p);

/** @brief Number of distinct placeholder types (rules of one type share a counter). */
size_t tn_pii_ntypes(const tn_pii_t *p);
/** @brief Name of type @p i ("EMAIL"). Borrowed; valid until destroy. */
const char *tn_pii_type_name(const tn_pii_t *p, size_t i);

/**
 * @brief Append @p text with every match replaced by its placeholder to @p out. While a pass
 *        of the rules replaces something they run again over their own output (a placeholder
 *        can give the text next to it the context a rule wanted): the result holds nothing
 *        they would redact.
 * @param counts tn_pii_ntypes() counters, incremented per replacement (may be NULL).
 * @returns TN_OK; TN_ERR_TOO_LARGE when @p out's cap is reached; TN_ERR_INVALID when a pattern
 *          hit its match limit (the rule is named in @p errbuf), or when the rules still
 *          replaced something after 8 passes (a rule that matches placeholders): @p out holds
 *          nothing usable.
 */
tn_err_t tn_pii_redact(const tn_pii_t *p, const char *text, size_t len, tn_buf_t *out,
                       size_t *counts, char *errbuf, size_t errlen);
/**
 * @brief tn_pii_redact() for @p text known to be valid UTF-8 (tn_text_normalize()'s output):
 *        the same result without checking it again.
 */
tn_err_t tn_pii_redact_utf8(const tn_pii_t *p, const char *text, size_t len, tn_buf_t *out,
                            size_t *counts, char *errbuf, size_t errlen);

/** @brief The Luhn check over the digits of @p s (other characters ignored; >= 13 digits). */
int tn_pii_luhn_ok(const char *s, size_t len);
/**
 * @brief The Dominican cedula check digit: exactly 11 digits (other characters ignored) whose
 *        Luhn sum is a multiple of 10 (weights 1,2,1,2... from the left over the first ten).
 */
int tn_pii_cedula_ok(const char *s, size_t len);
/** @brief The IBAN mod-97 check (spaces ignored, country code and length sanity). */
int tn_pii_iban_ok(const char *s, size_t len);

#endif
