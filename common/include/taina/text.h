/**
 * @file text.h
 * @brief Text for ingest: normalization (UTF-8 repair, HTML to text, NFC, whitespace), content
 *        hash, and sentence-aware chunking with overlap and code-point offsets.
 *
 *     tn_text_norm_t n;
 *     char *t = tn_text_normalize(body, len, TN_TEXT_HTML, &n);   // caller frees t
 *     tn_text_chunk_t *ch; size_t nch;
 *     tn_text_chunk(t, n.len, 200, 40, &ch, &nch);                // caller frees ch
 *
 * @thread Pure functions: call from any thread.
 */
#ifndef TAINA_TEXT_H
#define TAINA_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"

/** Flags of tn_text_normalize(). */
enum {
    TN_TEXT_HTML = 1 << 0 /**< the input is HTML: strip tags, drop script/style, decode entities */
};

/** What normalization did. */
typedef struct tn_text_norm {
    size_t len;          /**< bytes of the result (without the NUL) */
    size_t invalid_utf8; /**< invalid sequences replaced by U+FFFD */
    size_t chars;        /**< code points in the result */
} tn_text_norm_t;

/**
 * @brief Normalize @p len bytes: invalid UTF-8 sequences become U+FFFD (each counted); NUL and
 *        other C0/C1 controls except whitespace are removed; with TN_TEXT_HTML, tags are removed
 *        (block-level tags and <br> act as whitespace, <script> and <style> content is dropped,
 *        comments removed) and entities decoded (named: the common Latin-1 set and &amp; &lt;
 *        &gt; &quot; &apos; &nbsp;; numeric: &#NN; and &#xHH;); then Unicode NFC (utf8proc);
 *        then every run of whitespace (Unicode White_Space, incl. NBSP) becomes one ASCII space,
 *        and leading/trailing whitespace is removed.
 * @param st out: sizes and counts (may be NULL).
 * @returns a NUL-terminated string; caller frees.
 */
char *tn_text_normalize(const char *in, size_t len, unsigned flags, tn_text_norm_t *st);
/**
 * @brief tn_text_normalize() into a buffer the caller keeps from call to call: @p *buf of
 *        @p *cap bytes (NULL and 0 at first), grown as needed (both updated).
 * @returns *buf, the NUL-terminated result.
 */
char *tn_text_normalize_into(const char *in, size_t len, unsigned flags, tn_text_norm_t *st,
                             char **buf, size_t *cap);

/**
 * @brief Whether NFC leaves code point @p cp unchanged wherever it stands (no decomposition, no
 *        part in any composition, combining class 0): true for everything below U+0300 and for
 *        most other letters and symbols. tn_text_normalize() skips NFC for text of such code
 *        points only.
 */
int tn_text_nfc_inert(int32_t cp);

/**
 * @brief Only the UTF-8 repair step of tn_text_normalize(): every invalid sequence becomes
 *        U+FFFD (counted in @p invalid, may be NULL); nothing else changes (NULs and controls
 *        stay). Use it to rescue JSON whose strings hold invalid UTF-8.
 * @param out_len out: bytes of the result (without the NUL).
 * @returns a NUL-terminated string; caller frees.
 */
char *tn_text_utf8_repair(const char *in, size_t len, size_t *out_len, size_t *invalid);

/**
 * @brief Bytes of @p s (UTF-8, @p len bytes) without a sequence cut short at its end: @p len, or
 *        the start of a last character whose bytes do not all fit. Use it after truncating text
 *        to a byte budget (snprintf into a fixed buffer, a snippet of N bytes).
 */
size_t tn_text_utf8_complete(const char *s, size_t len);

/**
 * @brief The bytes at the start of @p s (up to @p len) that a JSON string holds as they are: none
 *        below 0x20, no '"' or '\\'. With @p utf8, also only ASCII and whole 2-byte UTF-8
 *        sequences (C2..DF then 80..BF): the prefix stops at any other byte from 0x80 up for the
 *        caller to check. 16 bytes at a time where SSE2 is available.
 */
size_t tn_text_json_plain(const char *s, size_t len, int utf8);

/** @brief Code points in @p len bytes of UTF-8 @p s: the bytes that are not continuation bytes
 *         (10xxxxxx), so a string's length as JSON Schema and most APIs count it. */
size_t tn_text_cp_count(const char *s, size_t len);

/** A known position in a UTF-8 text: code point @c cp starts at byte @c byte. */
typedef struct tn_text_pos {
    size_t cp, byte;
} tn_text_pos_t;

/**
 * @brief The bytes [*@p byte_start, *@p byte_end) of the code points [@p start, @p end) of @p s
 *        (valid UTF-8, @p len bytes): how a chunk's offsets become its text.
 * @param at NULL, or a position of an earlier call (zeroed at first): the walk starts there when
 *        @p start is not before it, and it is moved to @p start, so spans in increasing order
 *        cost one pass over the text instead of one each.
 * @returns 0, or -1 when the span is empty, reversed or ends past the text.
 */
int tn_text_cp_span(const char *s, size_t len, size_t start, size_t end, tn_text_pos_t *at,
                    size_t *byte_start, size_t *byte_end);

/** @brief SHA-256 of @p len bytes as 64 lower-case hex digits and a NUL in @p hex. */
void tn_text_sha256_hex(const void *p, size_t len, char hex[65]);

/** One chunk of a normalized text. */
typedef struct tn_text_chunk {
    size_t index;                /**< 0, 1, 2, ... */
    size_t start, end;           /**< code-point offsets into the text: [start, end) */
    size_t byte_start, byte_end; /**< the same span in bytes */
    size_t words;                /**< words in the chunk */
} tn_text_chunk_t;

/**
 * @brief Split @p len bytes of normalized UTF-8 into chunks of at most @p max_words words, each
 *        after the first starting @p overlap words before the end of the previous one (overlap
 *        < max_words). Chunks end at sentence ends (. ! ? … followed by a space, or the end of
 *        the text) when a sentence end falls within the chunk's second half; otherwise at the
 *        word limit. A sentence longer than @p max_words is cut at the word limit. The span of
 *        a chunk starts at its first word and ends after its last word (and the sentence
 *        punctuation). Deterministic: the same text gives the same chunks. Empty or
 *        whitespace-only text gives no chunks.
 * @param out out: the chunks, caller frees (NULL when @p n is 0).
 * @returns TN_OK, or TN_ERR_INVALID when max_words is 0 or overlap >= max_words.
 */
tn_err_t tn_text_chunk(const char *text, size_t len, size_t max_words, size_t overlap,
                       tn_text_chunk_t **out, size_t *n);

#endif
