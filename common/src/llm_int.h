/* Internals of llm.c that its unit tests call. Not a public header. */
#ifndef TAINA_LLM_INT_H
#define TAINA_LLM_INT_H

#include <stddef.h>

/** Called once per sentence: @p text (@p len bytes, blanks trimmed) is borrowed for the call. */
typedef void(tn_llm_sentence_fn)(void *opaque, const char *text, size_t len);

/**
 * Split @p len bytes into sentences: a sentence ends after . ! ? or "…" (and any more of them,
 * closing quotes or brackets) followed by whitespace or the end of the text, or at a line break.
 * A lone "." does not end one after an abbreviation of the list (Sr., Dra., Mr., e.g., p. ej.,
 * ...) or an initial (one upper-case letter), nor when the next word starts with a lower-case
 * letter or a digit ("9 a.m. to", "etc. y", "No. 5").
 */
void tn_llm_split_sentences(const char *t, size_t len, tn_llm_sentence_fn *add, void *opaque);

/** Whether a sentence is a question: it starts with "¿" or ends with "?" (quotes aside). */
int tn_llm_is_question(const char *s, size_t len);

#endif
