/**
 * @file llm.h
 * @brief Answer generation behind one interface: a question and its context passages in, an
 *        answer out, whole or streamed token by token.
 *
 *   - "extractive" (the embedded default, no network): the answer is composed from the best
 *     sentences of the best passages (sentence scores by overlap with the question's words,
 *     accent- and case-folded, stop words ignored, passage rank as a tie-break), in the order
 *     of the passages, with citation markers "[1]", "[2]" naming the passage of each sentence,
 *     within max_chars; in the question's language (a lead-in "Según los documentos:" or
 *     "According to the documents:"), and a clear "no answer" sentence in that language when no
 *     sentence shares a content word with the question.
 *     Details: sentences end after . ! ? or "…" followed by a blank, or at a line break, but
 *     not at the "." of an abbreviation (Sr., Dra., Mr., e.g.), an initial, or one followed by a
 *     lower-case word or a digit ("9 a.m. to 4 p.m."); a content word has 3+ letters, is not a
 *     Spanish or English stop word, and loses a final "s" when it has 4+ letters (plurals meet
 *     singulars); a sentence scores its number of distinct question words plus at most 0.25
 *     for an earlier passage; questions ("¿...", "...?") are used only when nothing else is
 *     left, and the sentence after a matching question (a FAQ's answer) adds the question's
 *     count to its own (past a bare "No." or "Gracias.": fewer than 2 content words); a sentence
 * repeated in two passages is used once. max_chars counts characters (code points) of the whole
 * answer, lead-in included; when even the best sentence does not fit, its start is cut at a word
 * and ends in "…" (without the lead-in if there is no room for both). Deterministic.
 *   - "openai": any OpenAI-compatible POST {url}/v1/chat/completions (CONTRACTS.md 2.2), non
 *     streaming or streaming (SSE "data:" lines, "[DONE]"), model, api key, temperature,
 *     max_tokens; a system prompt that asks for an answer grounded in the numbered passages,
 *     in the question's language, with [n] markers. Errors mapped like embed.h.
 *     The user message lists the passages as "[n] (title) text" blocks (line breaks of a text
 *     become spaces), then the question. 429 and 5xx answers and failed connections are
 *     retried (max_attempts in all) only before the first token; once a token was delivered a
 *     failure ends the call. A server that answers a streaming request with a whole JSON
 *     completion is accepted (its text is one piece). An in-stream {"error": ...} is
 *     TN_ERR_UPSTREAM; a stream that ends without "[DONE]" or a finish_reason is TN_ERR_PARSE.
 *
 * @thread An llm may be used from several threads at once.
 */
#ifndef TAINA_LLM_H
#define TAINA_LLM_H

#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/metrics.h"

typedef struct tn_llm tn_llm_t;

typedef struct tn_llm_opts {
    const char *provider; /**< "extractive" (default) or "openai" */
    const char *model;    /**< openai: required; extractive: reported name "taina-extractive-v1" */
    const char *url; /**< openai base URL ("http://127.0.0.1:8000"); /v1/chat/completions added */
    const char *api_key; /**< openai: Bearer; NULL/"" = none */
    double temperature;  /**< openai: default 0.2 */
    int max_tokens;      /**< openai: default 512 */
    size_t max_chars;    /**< extractive: answer length cap, default 800 */
    /** extractive: passages (up to 64 KB each) whose sentences and words are kept, the most
     *  recently used, so that one seen again is not analysed again: default (0) 2048, about
     *  4 KB each for chunks of 200 words; -1 none. The answers are the same either way. */
    int cache_passages;
    int64_t timeout_ms;    /**< openai: deadline of one call, default 30000 */
    int max_attempts;      /**< openai: attempts before the first token, default 2 */
    tn_metrics_t *metrics; /**< borrowed; upstream="llm" */
} tn_llm_opts_t;

/** @brief Defaults: extractive, temperature 0.2, max_tokens 512, max_chars 800, 30 s, 2 attempts.
 */
tn_llm_opts_t tn_llm_opts_default(void);
/**
 * @brief Make an answer provider (strings of @p o are copied).
 * @returns NULL with one sentence in @p errbuf (unknown provider, openai without url or model,
 *          bad URL, temperature above 2). Caller owns the result; free with tn_llm_destroy().
 */
tn_llm_t *tn_llm_new(const tn_llm_opts_t *o, char *errbuf, size_t errlen);
/** @brief Free. NULL ok. No call may be in progress. */
void tn_llm_destroy(tn_llm_t *l);
/** @brief The model name. Borrowed; valid until tn_llm_destroy(). */
const char *tn_llm_model(const tn_llm_t *l);

/** One context passage (borrowed strings). */
typedef struct tn_llm_passage {
    const char *title; /**< may be NULL */
    const char *text;
    size_t text_len;
} tn_llm_passage_t;

/** Why a call failed. */
typedef struct tn_llm_error {
    int status;  /**< HTTP status, 0 if none */
    int timeout; /**< the deadline passed */
    char msg[256];
} tn_llm_error_t;

/**
 * Called for each piece of the answer as it arrives (streaming) or once with the whole answer.
 * @p text (@p len > 0 bytes, not NUL-terminated) is borrowed for the call only. The pieces,
 * concatenated, are the answer. Return non-zero to stop (the client went away); the call then
 * returns TN_ERR_STOPPED. @thread Runs on the thread that called tn_llm_answer().
 */
typedef int(tn_llm_token_fn)(void *opaque, const char *text, size_t len);

/**
 * @brief Answer @p question (in @p lang: "es", "en", or NULL to detect) from @p n passages.
 * @param on_token NULL: the whole answer is returned in @p answer (caller frees). Non-NULL:
 *        pieces go to @p on_token as they come (openai streams; extractive sends sentences),
 *        and @p answer still gets the whole text (may be NULL if not wanted).
 * @param answer out: on TN_OK the whole answer, NUL-terminated; caller frees. NULL on failure.
 * @param why may be NULL; on failure one line (no passage text, no secrets), the HTTP status
 *        and whether the deadline passed.
 * @returns TN_OK; TN_ERR_TIMEOUT (deadline); TN_ERR_UNAVAILABLE (upstream down, 429/5xx after
 *          retries); TN_ERR_UPSTREAM (other 4xx); TN_ERR_PARSE (malformed answer or stream);
 *          TN_ERR_STOPPED (on_token asked to stop).
 */
tn_err_t tn_llm_answer(tn_llm_t *l, const char *question, const char *lang,
                       const tn_llm_passage_t *passages, size_t n, tn_llm_token_fn *on_token,
                       void *opaque, char **answer, tn_llm_error_t *why);

#endif
