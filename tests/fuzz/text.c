/* Fuzz target: text normalization and chunking. The first byte sets HTML mode and the chunk
 * size and overlap; the rest is the text. Normalized text must be valid UTF-8 without NULs,
 * single-spaced and trimmed, with its counts right; chunks must lie inside it, on code-point
 * boundaries, in order, and cover it (only spaces between one chunk and the next). */
#include "fuzz.h"
#include "taina/text.h"

static size_t cps(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

static int boundary(const char *s, size_t len, size_t i)
{
    return i == len || ((unsigned char)s[i] & 0xc0) != 0x80;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    size_t rlen, invalid = 0; /* added to */
    char *rep = tn_text_utf8_repair(in, len, &rlen, &invalid);
    FUZZ_CHECK(fuzz_utf8_ok(rep, rlen) && rep[rlen] == '\0', "repair left invalid UTF-8");
    FUZZ_CHECK((invalid == 0) == fuzz_utf8_ok(in, len), "repair counted %zu", invalid);
    free(rep);

    tn_text_norm_t st;
    char *t = tn_text_normalize(in, len, mode & 1 ? TN_TEXT_HTML : 0, &st);
    FUZZ_CHECK(strlen(t) == st.len, "length %zu, said %zu", strlen(t), st.len);
    FUZZ_CHECK(fuzz_utf8_ok(t, st.len), "normalized text is not valid UTF-8");
    FUZZ_CHECK(cps(t, st.len) == st.chars, "%zu code points, said %zu", cps(t, st.len), st.chars);
    FUZZ_CHECK(st.len == 0 || (t[0] != ' ' && t[st.len - 1] != ' '), "not trimmed");
    FUZZ_CHECK(!strstr(t, "  "), "two spaces in a row");

    size_t words = 8 + ((mode >> 1) & 0x1f);  /* 8..39 */
    size_t overlap = (mode >> 6) * words / 4; /* 0, 1/4, 1/2, 3/4 */
    tn_text_chunk_t *ch = NULL;
    size_t n = 0;
    FUZZ_CHECK(tn_text_chunk(t, st.len, words, overlap, &ch, &n) == TN_OK, "chunk failed");
    FUZZ_CHECK((n == 0) == (st.len == 0), "%zu chunks of %zu bytes", n, st.len);
    for (size_t i = 0; i < n; i++) {
        const tn_text_chunk_t *c = &ch[i];
        FUZZ_CHECK(c->index == i, "index %zu at %zu", c->index, i);
        FUZZ_CHECK(c->byte_start < c->byte_end && c->byte_end <= st.len, "bytes [%zu, %zu) of %zu",
                   c->byte_start, c->byte_end, st.len);
        FUZZ_CHECK(boundary(t, st.len, c->byte_start) && boundary(t, st.len, c->byte_end),
                   "chunk %zu cuts a code point", i);
        FUZZ_CHECK(c->start == cps(t, c->byte_start) && c->end == cps(t, c->byte_end),
                   "chunk %zu: code points [%zu, %zu) for bytes [%zu, %zu)", i, c->start, c->end,
                   c->byte_start, c->byte_end);
        FUZZ_CHECK(c->words >= 1 && c->words <= words, "chunk %zu has %zu words", i, c->words);
        if (i == 0)
            FUZZ_CHECK(c->byte_start == 0, "text before the first chunk");
        else {
            const tn_text_chunk_t *p = &ch[i - 1];
            FUZZ_CHECK(p->byte_start < c->byte_start, "chunk %zu does not advance", i);
            for (size_t b = p->byte_end; b < c->byte_start; b++)
                FUZZ_CHECK(t[b] == ' ', "gap of text between chunks %zu and %zu", i - 1, i);
        }
        if (i == n - 1)
            FUZZ_CHECK(c->byte_end == st.len, "text after the last chunk");
    }
    free(ch);
    free(t);
    return 0;
}
