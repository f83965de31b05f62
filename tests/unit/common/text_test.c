/* Unit tests for common/src/text.c: UTF-8 repair, HTML, NFC, whitespace, SHA-256, chunking. */
#include "tn_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/mem.h"
#include "taina/text.h"

#include <utf8proc.h>

#define FFFD "\xEF\xBF\xBD"

/* Normalize @p len bytes copied into an exact-size heap buffer (no NUL after them), so ASan and
 * valgrind catch any read past the end; compare with @p want and return the stats. */
static tn_text_norm_t check_norm_n(const char *in, size_t len, unsigned flags, const char *want)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, in, len);
    tn_text_norm_t st;
    char *out = tn_text_normalize(copy, len, flags, &st);
    if (strcmp(out, want) != 0)
        fail_msg("normalize(\"%.*s\") = \"%s\", want \"%s\"", (int)len, in, out, want);
    assert_int_equal(st.len, strlen(want));
    free(out);
    free(copy);
    return st;
}

static tn_text_norm_t check_norm(const char *in, unsigned flags, const char *want)
{
    return check_norm_n(in, strlen(in), flags, want);
}

static void check_html(const char *in, const char *want)
{
    check_norm(in, TN_TEXT_HTML, want);
}

static void test_utf8_repair(void **state)
{
    (void)state;
    struct {
        const char *in, *want;
        size_t invalid;
    } cases[] = {
        {"a\x80z", "a" FFFD "z", 1},                                  /* lone continuation */
        {"ab\xE2\x82", "ab" FFFD, 1},                                 /* truncated at the end */
        {"a\xF0\x9F\x98z", "a" FFFD "z", 1},                          /* truncated 4-byte */
        {"x\xC0\xAFy", "x" FFFD FFFD "y", 2},                         /* overlong '/' */
        {"x\xE0\x80\xAFy", "x" FFFD FFFD FFFD "y", 3},                /* overlong 3-byte */
        {"s\xED\xA0\x80t", "s" FFFD FFFD FFFD "t", 3},                /* surrogate U+D800 */
        {"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD, 4},                 /* above U+10FFFF */
        {"\xFF\xFE", FFFD FFFD, 2},                                   /* never valid */
        {"ok \xC3\xB1 \xE2\x82\xAC \xF0\x9F\x98\x80", "ok ñ € 😀", 0}, /* valid 2/3/4-byte */
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(cases); i++) {
        tn_text_norm_t st = check_norm(cases[i].in, 0, cases[i].want);
        if (st.invalid_utf8 != cases[i].invalid)
            fail_msg("case %zu: %zu invalid, want %zu", i, st.invalid_utf8, cases[i].invalid);
    }
    tn_text_norm_t st = check_norm("a\x80z", 0, "a" FFFD "z");
    assert_int_equal(st.chars, 3);
}

static void test_controls_and_nul(void **state)
{
    (void)state;
    /* NUL, SOH, DEL and a C1 control (U+0090) are removed; NEL (U+0085) is whitespace */
    static const char in[] = "a\0b\x01"
                             "c\x7F"
                             "d\xC2\x90"
                             "e\xC2\x85"
                             "f";
    tn_text_norm_t st = check_norm_n(in, sizeof(in) - 1, 0, "abcde f");
    assert_int_equal(st.chars, 7);
    assert_int_equal(st.invalid_utf8, 0);
    check_norm_n("\0\0\0", 3, 0, "");
}

static void test_nfc(void **state)
{
    (void)state;
    tn_text_norm_t st = check_norm("e\xCC\x81", 0, "\xC3\xA9");
    assert_int_equal(st.chars, 1);
    assert_int_equal(st.len, 2);
    check_norm("Jose\xCC\x81 Nin\xCC\x83o", 0, "José Niño");
    /* a decomposed accent written as an HTML entity is composed too */
    check_norm("caf&eacute; cafe\xCC\x81", TN_TEXT_HTML, "café café");
}

static size_t put_cp(char *o, int32_t cp)
{
    return (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)o);
}

/* NFC of the whole string through utf8proc, as tn_text_normalize() would without its shortcut. */
static int nfc_same(const char *s, size_t len)
{
    utf8proc_uint8_t *n = NULL;
    utf8proc_ssize_t nl = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &n,
                                       UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    int same = nl == (utf8proc_ssize_t)len && memcmp(n, s, len) == 0;
    free(n);
    return same;
}

/* The NFC shortcut's claim, for every code point: an inert one is unchanged by NFC alone and after
 * a letter, has combining class 0, and is never a later part of the canonical decomposition of
 * a code point that NFC composes (so never the second of a composition); everything below U+0300 is
 * inert. */
static void test_nfc_inert(void **state)
{
    (void)state;
    for (int32_t cp = 0; cp < 0x300; cp++)
        assert_true(tn_text_nfc_inert(cp));
    for (int32_t cp = 1; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        if (tn_text_nfc_inert(cp)) {
            char s[16];
            size_t n = put_cp(s, 'e');
            n += put_cp(s + n, cp);
            if (utf8proc_get_property(cp)->combining_class != 0 || !nfc_same(s + 1, n - 1) ||
                !nfc_same(s, n))
                fail_msg("U+%04X is not inert", (unsigned)cp);
        }
        utf8proc_int32_t d[32];
        int last = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(cp, d, 32, UTF8PROC_DECOMPOSE, &last);
        assert_true(nd >= 1 && nd <= 32);
        /* composition excluded (U+0F43 -> U+0F42 U+0FB7): its parts never compose back */
        for (utf8proc_ssize_t j = 1; j < nd && !utf8proc_get_property(cp)->comp_exclusion; j++)
            if (tn_text_nfc_inert(d[j]))
                fail_msg("U+%04X decomposes with inert U+%04X", (unsigned)cp, (unsigned)d[j]);
    }
    /* pairs below U+0300 are already NFC (sampled) */
    for (int32_t a = 0x20; a < 0x300; a++)
        for (int32_t b = 0x20; b < 0x300; b += 5) {
            char s[8];
            size_t n = put_cp(s, a);
            n += put_cp(s + n, b);
            if (!nfc_same(s, n))
                fail_msg("U+%04X U+%04X changes under NFC", (unsigned)a, (unsigned)b);
        }
    /* text with a combining mark or a singleton still goes through NFC */
    check_norm("\xE2\x84\xAB", 0, "\xC3\x85"); /* ANGSTROM SIGN -> A with ring */
    check_norm("a\xE2\x80\x80"
               "b",
               0, "a b"); /* EN QUAD -> EN SPACE, whitespace */
    check_norm("\xE2\x80\x9Cok\xE2\x80\x9D \xE2\x82\xAC", 0,
               "\xE2\x80\x9Cok\xE2\x80\x9D \xE2\x82\xAC");
    check_norm("\xE1\x84\x80\xE1\x85\xA1", 0, "\xEA\xB0\x80"); /* Hangul L V -> GA */
}

static void test_whitespace(void **state)
{
    (void)state;
    tn_text_norm_t st = check_norm("  a\t\tb\n\r\nc\xC2\xA0\xC2\xA0"
                                   "d\xE2\x80\x83"
                                   "e\xE2\x80\xA8"
                                   "f\v\f"
                                   "g \xE3\x80\x80 ",
                                   0, "a b c d e f g");
    assert_int_equal(st.chars, 13);
    check_norm(" \t\n\xC2\xA0 ", 0, "");
    check_norm("", 0, "");
    /* zero-width space is not whitespace (Cf) and stays */
    check_norm("a\xE2\x80\x8B"
               "b",
               0,
               "a\xE2\x80\x8B"
               "b");
    /* stats are optional; NULL input with no bytes is fine */
    char *out = tn_text_normalize(NULL, 0, TN_TEXT_HTML, NULL);
    assert_string_equal(out, "");
    free(out);
}

static void test_html_tags(void **state)
{
    (void)state;
    check_html("<p>Hola</p><p>mundo</p>", "Hola mundo");
    check_html("hel<b>lo</b> <i>there</i>", "hello there");
    check_html("a<br>b<br/>c<BR />d", "a b c d");
    check_html("<div>x</div><span>y</span><div>z</div>", "x y z");
    check_html("<ul><li>uno</li><li>dos</li></ul>", "uno dos");
    check_html("<table><tr><td>a</td><TD>b</TD></tr></table>", "a b");
    check_html("<h1>Title</h1>text<hr>end", "Title text end");
    check_html("<!DOCTYPE html><html><head><title>T</title></head><body>x</body></html>", "Tx");
    check_html("<a href=\"x>y\" title='a>b'>link</a>", "link");
    check_html("<?xml version=\"1.0\"?>ok", "ok");
    check_html("a < b and c > d", "a < b and c > d");
    check_html("3<4 and x<y", "3<4 and x<y"); /* no '>' after: text */
    check_html("a <3", "a <3");
    check_html("x </ p> y", "x </ p> y");
    /* without the flag, markup is text */
    check_norm("<b>a</b> &amp;", 0, "<b>a</b> &amp;");
}

static void test_html_script_style_comments(void **state)
{
    (void)state;
    check_html("a<script>var x = '<p>' + 1 < 2;</script>b", "ab");
    check_html("<style type=\"text/css\">p { color: red }</style>x", "x");
    check_html("<SCRIPT type=x>bad()</SCRIPT >ok", "ok");
    check_html("<script>a</scripty></script>b", "b");
    check_html("a<script>never closed", "a");
    check_html("<script/>kept", "kept");
    check_html("a<!-- hidden <b>bold</b> -->b", "ab");
    check_html("a<!---->b<!-- x -- y -->c", "abc");
    check_html("a<!-- never closed", "a");
}

static void test_html_entities(void **state)
{
    (void)state;
    check_html("&amp;&lt;&gt;&quot;&apos;", "&<>\"'");
    check_html("caf&eacute; &Ntilde;and&uacute; &iquest;&aacute;&iacute;&oacute;&ntilde;?",
               "café Ñandú ¿áíóñ?");
    check_html("&Aacute;&Eacute;&Iacute;&Oacute;&Uacute;&uuml;&Uuml;&iexcl;", "ÁÉÍÓÚüÜ¡");
    check_html("&copy;&reg;&euro;&ordf;&ordm;&laquo;x&raquo;", "©®€ªº«x»");
    check_html("&#65;&#x42;&#X43;&#x00e9;&#8364;", "ABCé€");
    check_html("[&#0;][&#xD800;][&#1114112;][&#x110000;][&#99999999999999999999;]",
               "[" FFFD "][" FFFD "][" FFFD "][" FFFD "][" FFFD "]");
    check_html("&foo; &amp &#; &#x; &#12 &AMP; &", "&foo; &amp &#; &#x; &#12 &AMP; &");
    check_html("a&nbsp;&nbsp;b&#160;c", "a b c");
    check_html("&lt;b&gt;not a tag&lt;/b&gt;", "<b>not a tag</b>");
    check_html("x&#1;y&#9;z", "xy z"); /* decoded controls are removed, tab is whitespace */
    /* entities decode once: "&amp;lt;" is "&lt;" as text */
    check_html("&amp;lt;", "&lt;");
}

static void test_html_truncated(void **state)
{
    (void)state;
    /* every prefix of a markup-heavy input: no read past the end (exact-size copies) */
    static const char doc[] = "<p class=\"a\">x&amp;y &#x41; &eacute;<!-- c --><script>s</script>"
                              "<br/>caf\xC3\xA9</p>";
    for (size_t n = 0; n <= sizeof(doc) - 1; n++) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, doc, n);
        tn_text_norm_t st;
        char *out = tn_text_normalize(copy, n, TN_TEXT_HTML, &st);
        assert_int_equal(strlen(out), st.len);
        free(out);
        free(copy);
    }
    check_html(
        "<p class=\"a\">x&amp;y &#x41; &eacute;<!-- c --><script>s</script><br/>caf\xC3\xA9</p>",
        "x&y A é café");
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[65];
    tn_text_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    tn_text_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Chunk @p t and return the chunks (caller frees) after checking the basic invariants. */
static tn_text_chunk_t *chunk(const char *t, size_t max_words, size_t overlap, size_t *n)
{
    tn_text_chunk_t *ch = NULL;
    assert_int_equal(tn_text_chunk(t, strlen(t), max_words, overlap, &ch, n), TN_OK);
    for (size_t i = 0; i < *n; i++) {
        assert_int_equal(ch[i].index, i);
        assert_true(ch[i].words >= 1 && ch[i].words <= max_words);
        assert_true(ch[i].byte_start < ch[i].byte_end && ch[i].start < ch[i].end);
        if (i > 0)
            assert_true(ch[i].start > ch[i - 1].start);
    }
    return ch;
}

static void assert_chunk_text(const char *t, const tn_text_chunk_t *c, const char *want)
{
    size_t len = c->byte_end - c->byte_start;
    if (len != strlen(want) || memcmp(t + c->byte_start, want, len) != 0)
        fail_msg("chunk %zu is \"%.*s\", want \"%s\"", c->index, (int)len, t + c->byte_start, want);
}

static void test_chunk_spanish(void **state)
{
    (void)state;
    const char *t = "El niño comió pan. Después salió a jugar al jardín. ¡Qué día tan bonito! "
                    "Mañana volverá.";
    size_t n;
    tn_text_chunk_t *ch = chunk(t, 8, 2, &n);
    assert_int_equal(n, 3);
    /* the window [0,8) has its only sentence end in the first half: cut at the word limit */
    assert_chunk_text(t, &ch[0], "El niño comió pan. Después salió a jugar");
    assert_int_equal(ch[0].words, 8);
    assert_int_equal(ch[0].start, 0);
    assert_int_equal(ch[0].end, 40);
    assert_int_equal(ch[0].byte_start, 0);
    assert_int_equal(ch[0].byte_end, 44);
    /* starts 2 words back; ends at the sentence end "bonito!" in the second half */
    assert_chunk_text(t, &ch[1], "a jugar al jardín. ¡Qué día tan bonito!");
    assert_int_equal(ch[1].words, 8);
    assert_int_equal(ch[1].start, 33);
    assert_int_equal(ch[1].end, 72);
    assert_int_equal(ch[1].byte_start, 37);
    assert_int_equal(ch[1].byte_end, 80);
    assert_chunk_text(t, &ch[2], "tan bonito! Mañana volverá.");
    assert_int_equal(ch[2].words, 4);
    assert_int_equal(ch[2].start, 61);
    assert_int_equal(ch[2].end, 88);
    assert_int_equal(ch[2].byte_start, 69);
    assert_int_equal(ch[2].byte_end, 98);
    assert_int_equal(strlen(t), 98);
    free(ch);
}

static void test_chunk_sentence_cut(void **state)
{
    (void)state;
    size_t n;
    const char *t = "a b c. d e f g h";
    tn_text_chunk_t *ch = chunk(t, 4, 0, &n);
    assert_int_equal(n, 3);
    assert_chunk_text(t, &ch[0], "a b c.");
    assert_chunk_text(t, &ch[1], "d e f g");
    assert_chunk_text(t, &ch[2], "h");
    free(ch);

    /* the sentence end may be ! ? … and be followed by closing quotes and brackets */
    static const char *const ends[] = {"fin.»",  "fin…",  "(sí!)",  "“¿vienes?”", "'no?'",
                                       "fin.\"", "fin!]", "dijo.’", "¿qué?"};
    for (size_t i = 0; i < TN_ARRAY_LEN(ends); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "uno dos %s cuatro cinco seis siete ocho", ends[i]);
        ch = chunk(buf, 4, 0, &n);
        if (ch[0].words != 3)
            fail_msg("\"%s\" is not a sentence end", ends[i]);
        free(ch);
    }
    static const char *const not_ends[] = {"fin,", "fin.x", "»", "\"", "fin;", "a.b"};
    for (size_t i = 0; i < TN_ARRAY_LEN(not_ends); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "uno dos %s cuatro cinco seis siete ocho", not_ends[i]);
        ch = chunk(buf, 4, 0, &n);
        if (ch[0].words != 4)
            fail_msg("\"%s\" is a sentence end", not_ends[i]);
        free(ch);
    }
    /* the last sentence end of the second half wins */
    t = "a b c. d. e f g";
    ch = chunk(t, 5, 0, &n);
    assert_chunk_text(t, &ch[0], "a b c. d.");
    free(ch);
}

static void test_chunk_long_sentence(void **state)
{
    (void)state;
    size_t n;
    const char *t = "uno dos tres cuatro cinco seis siete ocho nueve diez.";
    tn_text_chunk_t *ch = chunk(t, 4, 1, &n);
    assert_int_equal(n, 3);
    assert_chunk_text(t, &ch[0], "uno dos tres cuatro");
    assert_chunk_text(t, &ch[1], "cuatro cinco seis siete");
    assert_chunk_text(t, &ch[2], "siete ocho nueve diez.");
    free(ch);
    /* fits in one chunk */
    ch = chunk(t, 10, 3, &n);
    assert_int_equal(n, 1);
    assert_chunk_text(t, &ch[0], t);
    assert_int_equal(ch[0].end, strlen(t));
    free(ch);
}

static void test_chunk_overlap(void **state)
{
    (void)state;
    char t[256] = "";
    for (int i = 0; i < 20; i++)
        snprintf(t + strlen(t), sizeof(t) - strlen(t), "%sw%02d", i ? " " : "", i);
    size_t n;
    tn_text_chunk_t *ch = chunk(t, 5, 2, &n);
    assert_int_equal(n, 6); /* [0,5) [3,8) [6,11) [9,14) [12,17) [15,20) */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ch[i].words, 5);
        assert_int_equal(ch[i].byte_start, 4 * 3 * i);
        if (i > 0) { /* the span shared with the previous chunk is exactly two words */
            char want[64];
            snprintf(want, sizeof(want), "w%02zu w%02zu", 3 * i, 3 * i + 1);
            size_t len = ch[i - 1].byte_end - ch[i].byte_start;
            assert_int_equal(len, strlen(want));
            assert_memory_equal(t + ch[i].byte_start, want, len);
        }
    }
    assert_chunk_text(t, &ch[5], "w15 w16 w17 w18 w19");
    free(ch);

    /* a sentence cut close to the start with a large overlap still advances by one word */
    const char *s = "a b c. d e f";
    ch = chunk(s, 4, 3, &n);
    assert_int_equal(n, 3);
    assert_chunk_text(s, &ch[0], "a b c.");
    assert_chunk_text(s, &ch[1], "b c. d e");
    assert_chunk_text(s, &ch[2], "c. d e f");
    free(ch);
}

static void test_chunk_determinism(void **state)
{
    (void)state;
    const char *t = "Primera frase corta. Segunda frase con más palabras que la anterior, sin "
                    "duda alguna. ¿Tercera? ¡Cuarta! Quinta… y «sexta.» Fin.";
    size_t n1, n2;
    tn_text_chunk_t *a = chunk(t, 6, 2, &n1);
    tn_text_chunk_t *b = chunk(t, 6, 2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof(*a));
    assert_int_equal(a[n1 - 1].byte_end, strlen(t)); /* the last chunk reaches the end */
    free(a);
    free(b);
}

static void test_chunk_params_and_empty(void **state)
{
    (void)state;
    tn_text_chunk_t *ch = (tn_text_chunk_t *)&ch; /* non-NULL: must be reset */
    size_t n = 99;
    assert_int_equal(tn_text_chunk("a b", 3, 0, 0, &ch, &n), TN_ERR_INVALID);
    assert_null(ch);
    assert_int_equal(n, 0);
    assert_int_equal(tn_text_chunk("a b", 3, 4, 4, &ch, &n), TN_ERR_INVALID);
    assert_int_equal(tn_text_chunk("a b", 3, 4, 5, &ch, &n), TN_ERR_INVALID);
    assert_int_equal(tn_text_chunk("", 0, 4, 1, &ch, &n), TN_OK);
    assert_null(ch);
    assert_int_equal(n, 0);
    assert_int_equal(tn_text_chunk(NULL, 0, 4, 1, &ch, &n), TN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tn_text_chunk("   ", 3, 4, 1, &ch, &n), TN_OK);
    assert_null(ch);
    assert_int_equal(n, 0);
    /* max_words 1: one chunk per word */
    assert_int_equal(tn_text_chunk("x. y z", 6, 1, 0, &ch, &n), TN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ch[2].start, 5);
    free(ch);
}

/* 1 MB of one byte through normalize (and chunk): linear, so this returns at once. */
static void pathological(const char *unit, unsigned flags, char last)
{
    const size_t total = 1 << 20;
    size_t ul = strlen(unit);
    char *in = malloc(total);
    assert_non_null(in);
    for (size_t i = 0; i < total; i++)
        in[i] = unit[i % ul];
    if (last)
        in[total - 1] = last;
    tn_text_norm_t st;
    char *out = tn_text_normalize(in, total, flags, &st);
    assert_int_equal(strlen(out), st.len);
    tn_text_chunk_t *ch = NULL;
    size_t n = 0;
    assert_int_equal(tn_text_chunk(out, st.len, 200, 40, &ch, &n), TN_OK);
    free(ch);
    free(out);
    free(in);
}

static void test_pathological(void **state)
{
    (void)state;
    pathological("<", TN_TEXT_HTML, 0);
    pathological("&", TN_TEXT_HTML, 0);
    pathological(".", TN_TEXT_HTML, 0);
    pathological("<a", TN_TEXT_HTML, 0);
    pathological("<a x=\"", TN_TEXT_HTML, 0);
    pathological("&#1", TN_TEXT_HTML, 0);
    pathological("&amp", TN_TEXT_HTML, 0);
    pathological("<!--", TN_TEXT_HTML, 0);
    pathological("<script>", TN_TEXT_HTML, 0);
    pathological("</script>", TN_TEXT_HTML, 0);
    pathological("\x80", 0, 0);
    pathological(". ", 0, 0);
    pathological("a. ", 0, 0);
    /* a '>' at the very end: every '<' could start a tag */
    pathological("<", TN_TEXT_HTML, '>');
    pathological("<a", TN_TEXT_HTML, '>');
    pathological("<a x=\"", TN_TEXT_HTML, '>');
    pathological("<a x='>", TN_TEXT_HTML, '>');
    pathological("<script>", TN_TEXT_HTML, '>');
}

/* The repair step alone keeps everything else: JSON with a bad byte in a string parses after. */
static void test_utf8_repair_only(void **state)
{
    (void)state;
    const char in[] = "{\"t\":\"a\xff"
                      "b\x01\\n  c\xe2\x82\"}";
    size_t n = 0, bad = 0;
    char *out = tn_text_utf8_repair(in, sizeof(in) - 1, &n, &bad);
    assert_int_equal(bad, 2);
    assert_string_equal(out, "{\"t\":\"a\xef\xbf\xbd"
                             "b\x01\\n  c\xef\xbf\xbd\"}");
    assert_int_equal(n, strlen(out));
    free(out);
    out = tn_text_utf8_repair("", 0, &n, NULL);
    assert_string_equal(out, "");
    assert_int_equal(n, 0);
    free(out);
}

/* A cut to a byte budget that splits a character drops the half; whole text is kept as is. */
/* The word-at-a-time count agrees with a byte-by-byte one for every length and alignment,
 * whatever the bytes (continuation bytes, leads, ASCII, invalid sequences). */
static void test_cp_count(void **state)
{
    (void)state;
    static const unsigned char pool[] = {'a', ' ', 0x7F, 0x80, 0xBF, 0xC3, 0xA9, 0xE2, 0xF0, 0xFF};
    char s[80];
    unsigned seed = 7;
    for (int round = 0; round < 2000; round++) {
        for (size_t i = 0; i < sizeof(s); i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = (char)pool[(seed >> 16) % sizeof(pool)];
        }
        for (size_t off = 0; off < 8; off++)
            for (size_t n = 0; off + n <= sizeof(s); n += 1 + n / 8) {
                size_t want = 0;
                for (size_t i = off; i < off + n; i++)
                    want += ((unsigned char)s[i] & 0xC0) != 0x80;
                assert_int_equal(tn_text_cp_count(s + off, n), want);
            }
    }
    assert_int_equal(tn_text_cp_count("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10), 4);
}

static void test_cp_span(void **state)
{
    (void)state;
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                    "b";                           /* a é € 😀 b */
    const size_t at_byte[] = {0, 1, 3, 6, 10, 11}; /* byte offset of each code point */
    size_t bs = 99, be = 99;
    for (size_t a = 0; a < 5; a++)
        for (size_t b = a + 1; b <= 5; b++) {
            assert_int_equal(tn_text_cp_span(s, 11, a, b, NULL, &bs, &be), 0);
            assert_int_equal(bs, at_byte[a]);
            assert_int_equal(be, at_byte[b]);
        }
    assert_int_equal(tn_text_cp_span(s, 11, 2, 2, NULL, &bs, &be), -1); /* empty */
    assert_int_equal(tn_text_cp_span(s, 11, 3, 1, NULL, &bs, &be), -1); /* reversed */
    assert_int_equal(tn_text_cp_span(s, 11, 4, 6, NULL, &bs, &be), -1); /* past the end */
    assert_int_equal(tn_text_cp_span(s, 0, 0, 1, NULL, &bs, &be), -1);
    /* a position carried from span to span: the same bytes, in order or not */
    tn_text_pos_t at = {0, 0};
    const size_t spans[][2] = {{0, 2}, {1, 3}, {3, 5}, {3, 4}, {1, 2}, {0, 5}, {4, 5}};
    for (size_t k = 0; k < TN_ARRAY_LEN(spans); k++) {
        assert_int_equal(tn_text_cp_span(s, 11, spans[k][0], spans[k][1], &at, &bs, &be), 0);
        assert_int_equal(bs, at_byte[spans[k][0]]);
        assert_int_equal(be, at_byte[spans[k][1]]);
        assert_int_equal(at.cp, spans[k][0]);
        assert_int_equal(at.byte, bs);
    }
    assert_int_equal(tn_text_cp_span(s, 11, 4, 6, &at, &bs, &be), -1);
}

static void test_utf8_complete(void **state)
{
    (void)state;
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a é € 😀: 1+2+3+4 bytes */
    const size_t whole[] = {0, 1, 3, 6, 10};
    for (size_t len = 0; len <= 10; len++) {
        size_t want = 0;
        for (size_t i = 0; i < 5; i++)
            if (whole[i] <= len)
                want = whole[i];
        assert_int_equal(tn_text_utf8_complete(s, len), want);
    }
    /* stray continuation bytes are not a cut character: left for the repair step */
    assert_int_equal(tn_text_utf8_complete("\x80\x80", 2), 2);
    assert_int_equal(tn_text_utf8_complete("a\x80\x80\x80\x80", 5), 5);
}

/* ---------------------------------------------------------------------------------------------
 * The word-at-a-time scans of text.c against byte-at-a-time references (the code before them):
 * the same bytes, counts and chunks for a special byte sequence at every offset of a block, in
 * runs that cross 8- and 16-byte boundaries and in text that ends mid-block. */

static size_t ref_decode(const unsigned char *s, size_t n, int32_t *cp)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        *cp = -1;
        return 1;
    }
    size_t i = 1;
    for (; i <= need && i < n; i++) {
        if (s[i] < lo || s[i] > hi)
            break;
        lo = 0x80;
        hi = 0xBF;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = i > need ? (int32_t)v : -1;
    return i;
}

static int ref_is_space(int32_t cp)
{
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85)
        return 1;
    if (cp < 0xA0)
        return 0;
    utf8proc_category_t cat = utf8proc_category(cp);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

/* tn_text_normalize(in, len, 0, st) one byte at a time, NFC always through utf8proc. */
static char *ref_normalize(const unsigned char *in, size_t len, tn_text_norm_t *st)
{
    char *a = malloc(3 * len + 1);
    assert_non_null(a);
    size_t alen = 0;
    *st = (tn_text_norm_t){0, 0, 0};
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k = ref_decode(in + i, len - i, &cp);
        if (cp < 0) {
            st->invalid_utf8++;
            memcpy(a + alen, FFFD, 3);
            alen += 3;
        } else if (!((cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) && !ref_is_space(cp))) {
            memcpy(a + alen, in + i, k);
            alen += k;
        }
        i += k;
    }
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t nlen = 0;
    if (alen > 0) {
        nlen = utf8proc_map((const utf8proc_uint8_t *)a, (utf8proc_ssize_t)alen, &nfc,
                            UTF8PROC_COMPOSE | UTF8PROC_STABLE);
        assert_true(nlen >= 0);
    }
    const unsigned char *s = nfc ? nfc : (const unsigned char *)a;
    char *out = malloc((size_t)nlen + 1);
    assert_non_null(out);
    size_t o = 0;
    int pending = 0;
    for (size_t i = 0; i < (size_t)nlen;) {
        int32_t cp;
        size_t k = ref_decode(s + i, (size_t)nlen - i, &cp);
        if (ref_is_space(cp)) {
            pending = o > 0;
        } else {
            if (pending) {
                out[o++] = ' ';
                st->chars++;
                pending = 0;
            }
            memcpy(out + o, s + i, k);
            o += k;
            st->chars++;
        }
        i += k;
    }
    out[o] = '\0';
    st->len = o;
    free(nfc);
    free(a);
    return out;
}

static int ref_ends_with(const char *w, size_t len, const char *suffix)
{
    size_t sl = strlen(suffix);
    return len >= sl && memcmp(w + len - sl, suffix, sl) == 0;
}

static int ref_sentence_end(const char *w, size_t len)
{
    static const char *const closers[] = {"\"",           "'",           ")", "]", "\xC2\xBB",
                                          "\xE2\x80\x9D", "\xE2\x80\x99"};
    for (int stripped = 1; stripped && len > 0;) {
        stripped = 0;
        for (size_t i = 0; i < TN_ARRAY_LEN(closers); i++)
            if (ref_ends_with(w, len, closers[i])) {
                len -= strlen(closers[i]);
                stripped = 1;
                break;
            }
    }
    if (len == 0)
        return 0;
    char last = w[len - 1];
    return last == '.' || last == '!' || last == '?' || ref_ends_with(w, len, "\xE2\x80\xA6");
}

static int ref_is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* tn_text_chunk() one byte at a time; returns the number of chunks. */
static size_t ref_chunk(const char *text, size_t len, size_t max_words, size_t overlap,
                        tn_text_chunk_t *out, size_t cap)
{
    size_t nw = 0, cp = 0, nch = 0;
    size_t(*w)[5] = malloc((len + 1) * sizeof(*w)); /* bs, be, cs, ce, sentence end */
    assert_non_null(w);
    for (size_t i = 0; i < len;) {
        if (ref_is_sep(text[i])) {
            i++;
            cp++;
            continue;
        }
        w[nw][0] = i;
        w[nw][2] = cp;
        for (; i < len && !ref_is_sep(text[i]); i++)
            if (((unsigned char)text[i] & 0xC0) != 0x80)
                cp++;
        w[nw][1] = i;
        w[nw][3] = cp;
        w[nw][4] = (size_t)ref_sentence_end(text + w[nw][0], i - w[nw][0]);
        nw++;
    }
    for (size_t s = 0; s < nw;) {
        size_t limit = TN_MIN(s + max_words, nw), end = limit;
        if (limit < nw)
            for (size_t e = limit; e-- > s + max_words / 2;)
                if (w[e][4]) {
                    end = e + 1;
                    break;
                }
        assert_true(nch < cap);
        out[nch] = (tn_text_chunk_t){nch, w[s][2], w[end - 1][3], w[s][0], w[end - 1][1], end - s};
        nch++;
        if (end == nw)
            break;
        size_t next = end > overlap ? end - overlap : 0;
        s = TN_MAX(next, s + 1);
    }
    free(w);
    return nch;
}

static int ref_cp_span(const char *s, size_t len, size_t start, size_t end, size_t *bs, size_t *be)
{
    if (start >= end)
        return -1;
    size_t cp = 0, i = 0;
    for (; i < len && cp < end; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80)
            continue;
        if (cp == start)
            *bs = i;
        cp++;
    }
    if (cp < end)
        return -1;
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    *be = i;
    return 0;
}

/* Chunks of @p t (any bytes) with a few window sizes, and its code-point spans, as the references
 * give them. */
static void check_chunks_spans(const char *t, size_t len)
{
    static const size_t params[][2] = {{1, 0}, {2, 1}, {3, 1}, {5, 2}, {8, 3}};
    size_t cap = len + 1;
    tn_text_chunk_t *want = malloc(cap * sizeof(*want));
    assert_non_null(want);
    for (size_t p = 0; p < TN_ARRAY_LEN(params); p++) {
        size_t nw = ref_chunk(t, len, params[p][0], params[p][1], want, cap), n = 0;
        tn_text_chunk_t *ch = NULL;
        assert_int_equal(tn_text_chunk(t, len, params[p][0], params[p][1], &ch, &n), TN_OK);
        if (n != nw || (n && memcmp(ch, want, n * sizeof(*ch)) != 0))
            fail_msg("chunk(\"%.*s\", %zu, %zu): %zu chunks, want %zu, or other offsets", (int)len,
                     t, params[p][0], params[p][1], n, nw);
        free(ch);
    }
    free(want);
    size_t cps = 0;
    for (size_t i = 0; i < len; i++)
        cps += ((unsigned char)t[i] & 0xC0) != 0x80;
    tn_text_pos_t at = {0, 0};
    for (size_t a = 0; a <= cps; a++)
        for (size_t b = a; b <= cps + 1 && b <= a + 24; b += 1 + (b > a + 3) * 4) {
            size_t bs = 0, be = 0, wbs = 0, wbe = 0;
            int rc = tn_text_cp_span(t, len, a, b, NULL, &bs, &be);
            int wrc = ref_cp_span(t, len, a, b, &wbs, &wbe);
            if (rc != wrc || (rc == 0 && (bs != wbs || be != wbe)))
                fail_msg("cp_span(\"%.*s\", %zu, %zu) = %d [%zu, %zu), want %d [%zu, %zu)",
                         (int)len, t, a, b, rc, bs, be, wrc, wbs, wbe);
            /* and from a position carried along in increasing order */
            rc = tn_text_cp_span(t, len, a, b, &at, &bs, &be);
            if (rc != wrc || (rc == 0 && (bs != wbs || be != wbe)))
                fail_msg("cp_span(\"%.*s\", %zu, %zu, at) = %d [%zu, %zu), want %d [%zu, %zu)",
                         (int)len, t, a, b, rc, bs, be, wrc, wbs, wbe);
        }
}

/* @p in (len bytes, any) through normalize, chunk and cp_span against the references. */
static void check_fast(const char *in, size_t len)
{
    char *copy = malloc(len ? len : 1); /* exact size: ASan and valgrind catch any over-read */
    assert_non_null(copy);
    memcpy(copy, in, len);
    tn_text_norm_t st, want_st;
    char *out = tn_text_normalize(copy, len, 0, &st);
    char *want = ref_normalize((const unsigned char *)copy, len, &want_st);
    if (strcmp(out, want) != 0 || st.len != want_st.len || st.chars != want_st.chars ||
        st.invalid_utf8 != want_st.invalid_utf8)
        fail_msg("normalize(\"%.*s\") = \"%s\" (%zu bytes, %zu chars, %zu invalid), want \"%s\" "
                 "(%zu, %zu, %zu)",
                 (int)len, in, out, st.len, st.chars, st.invalid_utf8, want, want_st.len,
                 want_st.chars, want_st.invalid_utf8);
    check_chunks_spans(out, st.len);
    check_chunks_spans(copy, len); /* separators of every kind, invalid UTF-8 */
    free(want);
    free(out);
    free(copy);
}

typedef struct piece {
    const char *s;
    size_t n;
} piece_t;

#define P(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
static const piece_t pieces[] = {
    P(" "),
    P("  "),
    P("\t"),
    P("\n"),
    P("\r"),
    P("\v"),
    P("\f"),
    P(" \n "),
    P("\x7f"),
    P("\x01"),
    P("\x00"),
    P("\x1f"),
    P("\xc2\xa0"),
    P("\xc2\x85"),
    P("\xc2\x9f"),
    P("\xc2\xbf"),
    P("\xc2\xa1"),
    P("\xc3\xb1"),
    P("\xc3\xa1"),
    P("\xdf\xbf"),
    P("\xe2\x80\xa6"),
    P("\xe2\x80\x9d"),
    P("\xe2\x80\x99"),
    P("\xc2\xbb"),
    P("\xe2\x80\xa8"),
    P("\xe3\x80\x80"),
    P("\xe2\x80\xaf"),
    P("\xe1\x9a\x80"),
    P("."),
    P("!"),
    P("?"),
    P("\""),
    P("'"),
    P(")"),
    P("]"),
    P(".\""),
    P("!)"),
    P("?\xc2\xbb"),
    P(".\xe2\x80\x9d"),
    P("\xe2\x80\xa6\xe2\x80\x99"),
    P(". "),
    P("\xc2\xbb"),
    P("e\xcc\x81"),
    P("\xcc\x81"),
    P("\xea\xb0\x80"),
    P("\xe1\x84\x80"),
    P("\xf0\x9f\x98\x80"),
    P("\x80"),
    P("\xbf"),
    P("\xc3"),
    P("\xe2\x82"),
    P("\xc0\xaf"),
    P("\xed\xa0\x80"),
    P("\xff"),
    P("\xf4\x90\x80\x80"),
    P("\xc2"),
    P("\xc3 "),
    P("word"),
};
#undef P

/* Every piece after 0..33 bytes of a run and before 0..17 more: each offset of a 16-byte block,
 * text ending at each offset too. */
static void test_fast_paths_offsets(void **state)
{
    (void)state;
    static const char *const fill[] = {
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",     /* no separator */
        "ab cd ef gh ij kl mn op qr st uv wx yz AB CD E", /* single spaces */
        "\xc3\xb1"
        "and\xc3\xba a\xc3\xb1"
        "ejo se\xc3\xb1"
        "al \xc2\xbf"
        "c\xc3\xb3mo est\xc3\xa1?",
    };
    char buf[128];
    for (size_t f = 0; f < TN_ARRAY_LEN(fill); f++)
        for (size_t p = 0; p < TN_ARRAY_LEN(pieces); p++)
            for (size_t a = 0; a <= 33; a++)
                for (size_t b = 0; b <= 17; b += 1 + (b >= 2) * 4) {
                    size_t n = 0;
                    memcpy(buf, fill[f], a);
                    n += a;
                    memcpy(buf + n, pieces[p].s, pieces[p].n);
                    n += pieces[p].n;
                    memcpy(buf + n, fill[f] + (f == 2 ? 0 : 3), b);
                    n += b;
                    check_fast(buf, n);
                }
}

/* Random texts of pieces and runs of every length. */
static void test_fast_paths_random(void **state)
{
    (void)state;
    static const char run[] = "Necesito renovar mi pasaporte y no s\xc3\xa9 qu\xc3\xa9 documentos "
                              "necesito para la cita de ma\xc3\xb1"
                              "ana.";
    uint32_t seed = 12345;
    char buf[1024];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0;
        seed = seed * 1103515245u + 12345u;
        size_t parts = (seed >> 16) % 24;
        for (size_t k = 0; k < parts; k++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 8) % 3 == 0) {
                const piece_t *pc = &pieces[(seed >> 12) % TN_ARRAY_LEN(pieces)];
                memcpy(buf + n, pc->s, pc->n);
                n += pc->n;
            } else {
                size_t from = (seed >> 10) % (sizeof(run) - 1);
                size_t take = TN_MIN((seed >> 20) % 40, sizeof(run) - 1 - from);
                memcpy(buf + n, run + from, take);
                n += take;
            }
        }
        check_fast(buf, n);
    }
}

/* tn_text_chunk() against ref_chunk() on random texts of words, sentence ends, closers, multi-byte
 * characters and every separator, up to 4 KB (many of the 64-byte blocks its word starts are
 * marked in, and places to cut looked for back across them), for windows of 1 to 60 words. */
static void test_chunk_random(void **state)
{
    (void)state;
    static const char *const parts[] = {
        "a",
        "bb",
        "palabra",
        "fin.",
        "ya!",
        "qu\xc3\xa9?",
        "dijo.\"",
        "(nota.)",
        "eso\xe2\x80\xa6",
        "\xc2\xbfs\xc3\xad?\xc2\xbb",
        "ok.\xe2\x80\x9d",
        "x.\xe2\x80\x99",
        "[1].",
        "ma\xc3\xb1"
        "ana",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        ".",
        "'",
        " ",
        "\t",
        "\n",
        "\r\n",
        "\v\f",
        "   ",
    };
    uint32_t seed = 777;
    enum { CAP = 4096 };
    char *buf = malloc(CAP + 64);
    tn_text_chunk_t *want = calloc(CAP + 1, sizeof(*want));
    for (int iter = 0; iter < 1500; iter++) {
        size_t n = 0;
        seed = seed * 1103515245u + 12345u;
        size_t target = (seed >> 8) % CAP;
        while (n < target) {
            seed = seed * 1103515245u + 12345u;
            const char *pc = parts[(seed >> 12) % TN_ARRAY_LEN(parts)];
            size_t k = strlen(pc);
            if (n + k + 1 > CAP)
                break;
            memcpy(buf + n, pc, k);
            n += k;
            if ((seed >> 20) % 3) /* most parts are words with a separator after them */
                buf[n++] = ' ';
        }
        seed = seed * 1103515245u + 12345u;
        size_t max_words = 1 + (seed >> 10) % 60, overlap = (seed >> 20) % max_words;
        tn_text_chunk_t *got = NULL;
        size_t ngot = 0;
        assert_int_equal(tn_text_chunk(buf, n, max_words, overlap, &got, &ngot), TN_OK);
        size_t nwant = ref_chunk(buf, n, max_words, overlap, want, CAP + 1);
        if (ngot != nwant)
            fail_msg("iteration %d: %zu chunks, want %zu (max %zu overlap %zu, %zu bytes)", iter,
                     ngot, nwant, max_words, overlap, n);
        for (size_t i = 0; i < ngot; i++)
            if (got[i].index != want[i].index || got[i].start != want[i].start ||
                got[i].end != want[i].end || got[i].byte_start != want[i].byte_start ||
                got[i].byte_end != want[i].byte_end || got[i].words != want[i].words)
                fail_msg("iteration %d chunk %zu: bytes %zu-%zu cps %zu-%zu words %zu, want "
                         "%zu-%zu %zu-%zu %zu",
                         iter, i, got[i].byte_start, got[i].byte_end, got[i].start, got[i].end,
                         got[i].words, want[i].byte_start, want[i].byte_end, want[i].start,
                         want[i].end, want[i].words);
        free(got);
    }
    free(want);
    free(buf);
}

/* tn_text_json_plain() on random texts of the pieces that matter (plain ASCII, the bytes JSON
 * escapes, 2-, 3- and 4-byte UTF-8, stray continuation and lead bytes), each length to 80 at
 * every offset, copied to an exact-size buffer: without @p utf8 the prefix ends at the first
 * byte to escape; with it, at such a byte or a byte from 0x80 up, and every byte before is
 * ASCII or part of a whole 2-byte sequence. */
static void test_json_plain(void **state)
{
    (void)state;
    static const char *const json_pieces[] = {
        "abcdefgh",
        "x",
        " ",
        "\xC3\xA9",
        "\xC3\xB1o",
        "\xC2\xBF",
        "\xE2\x80\x99",
        "\xF0\x9F\x98\x80",
        "\"",
        "\\",
        "\n",
        "\x1F",
        "\x7F",
        "\x80",
        "\xC3",
        "\xDF\xBF",
        "\xC1\xBF",
        "\xE0",
        "0123456789",
    };
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (int it = 0; it < 20000; it++) {
        char text[128];
        size_t n = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t want = x % 80;
        while (n < want) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *p = json_pieces[x % TN_ARRAY_LEN(json_pieces)];
            size_t k = strlen(p);
            memcpy(text + n, p, k);
            n += k;
        }
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, text, n);
        const unsigned char *u = (const unsigned char *)copy;
        for (size_t off = 0; off <= n; off++) {
            size_t len = n - off, ref = 0;
            while (ref < len && u[off + ref] >= 0x20 && u[off + ref] != '"' && u[off + ref] != '\\')
                ref++;
            size_t got = tn_text_json_plain(copy + off, len, 0);
            if (got != ref)
                fail_msg("json_plain(%zu bytes at %zu) = %zu, want %zu", len, off, got, ref);
            got = tn_text_json_plain(copy + off, len, 1);
            assert_true(got <= ref);
            if (got < len)
                assert_true(got == ref || u[off + got] >= 0x80);
            for (size_t i = 0; i < got; i++) {
                unsigned char c = u[off + i];
                if (c < 0x80)
                    continue;
                if (c < 0xC2 || c > 0xDF || i + 1 >= got || (u[off + i + 1] & 0xC0) != 0x80)
                    fail_msg("json_plain(%zu bytes at %zu, utf8) = %zu passes byte %02x at %zu",
                             len, off, got, c, i);
                i++;
            }
        }
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_repair),
        cmocka_unit_test(test_utf8_repair_only),
        cmocka_unit_test(test_utf8_complete),
        cmocka_unit_test(test_cp_count),
        cmocka_unit_test(test_cp_span),
        cmocka_unit_test(test_controls_and_nul),
        cmocka_unit_test(test_nfc),
        cmocka_unit_test(test_nfc_inert),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_html_tags),
        cmocka_unit_test(test_html_script_style_comments),
        cmocka_unit_test(test_html_entities),
        cmocka_unit_test(test_html_truncated),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_chunk_spanish),
        cmocka_unit_test(test_chunk_sentence_cut),
        cmocka_unit_test(test_chunk_long_sentence),
        cmocka_unit_test(test_chunk_overlap),
        cmocka_unit_test(test_chunk_determinism),
        cmocka_unit_test(test_chunk_params_and_empty),
        cmocka_unit_test(test_chunk_random),
        cmocka_unit_test(test_pathological),
        cmocka_unit_test(test_fast_paths_offsets),
        cmocka_unit_test(test_fast_paths_random),
        cmocka_unit_test(test_json_plain),
    };
    return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
