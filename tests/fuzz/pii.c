/* Fuzz target: PII redaction. Input starting with '#' is a rules file (compiled; when it
 * compiles, it redacts a fixed text with PII in it); anything else is text redacted with the
 * built-in rules, which must not fail, must keep valid UTF-8 valid, and must leave nothing that
 * the same rules would redact again. */
#include "fuzz.h"
#include "taina/buf.h"
#include "taina/pii.h"

static tn_pii_t *builtin;

static const char sample[] =
    "Escríbame a maria.perez@correo.gob.do o al +1 809-555-0123; tarjeta 4111 1111 1111 1111, "
    "cédula 001-1234567-8, IBAN DO28 BAGR 0000 0001 2124 5361 1324. aaaaaaaaaaaaaaaaaaaa@";

static size_t redact(const tn_pii_t *p, const char *text, size_t len, tn_buf_t *out, size_t *counts,
                     tn_err_t *rc)
{
    char err[256] = "";
    size_t ntypes = tn_pii_ntypes(p);
    memset(counts, 0, ntypes * sizeof(*counts));
    *rc = tn_pii_redact(p, text, len, out, counts, err, sizeof(err));
    FUZZ_CHECK(*rc == TN_OK || *rc == TN_ERR_INVALID || *rc == TN_ERR_TOO_LARGE, "rc %d", *rc);
    FUZZ_CHECK(*rc != TN_ERR_INVALID || err[0], "a failed rule without a name");
    size_t total = 0;
    for (size_t i = 0; i < ntypes; i++)
        total += counts[i];
    return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t counts[64];
    tn_err_t rc;
    if (!builtin) {
        char err[256];
        fuzz_quiet();
        builtin = tn_pii_new(NULL, "built-in", err, sizeof(err));
        FUZZ_CHECK(builtin, "%s", err);
    }
    if (size > 0 && data[0] == '#') {
        char *text = fuzz_cstr(data, size), err[256] = "";
        tn_pii_t *p = tn_pii_new(text, "fuzz.rules", err, sizeof(err));
        FUZZ_CHECK(p || err[0], "no reason");
        if (p) {
            FUZZ_CHECK(tn_pii_ntypes(p) <= TN_ARRAY_LEN(counts), "%zu types", tn_pii_ntypes(p));
            tn_buf_t out;
            tn_buf_init(&out, 1 << 20);
            redact(p, sample, sizeof(sample) - 1, &out, counts, &rc);
            tn_buf_cleanup(&out);
            tn_pii_destroy(p);
        }
        free(text);
        return 0;
    }
    tn_buf_t out, again;
    tn_buf_init(&out, size * 2 + 4096);
    tn_buf_init(&again, size * 2 + 4096);
    redact(builtin, (const char *)data, size, &out, counts, &rc);
    FUZZ_CHECK(rc == TN_OK, "the built-in rules failed on %zu bytes", size);
    if (fuzz_utf8_ok((const char *)data, size))
        FUZZ_CHECK(fuzz_utf8_ok(out.data, out.len), "valid UTF-8 in, invalid out");
    size_t more = redact(builtin, out.data ? out.data : "", out.len, &again, counts, &rc);
    FUZZ_CHECK(rc == TN_OK && more == 0, "redacted output still has %zu matches: %.*s", more,
               (int)TN_MIN(out.len, 400), out.data ? out.data : "");
    tn_buf_cleanup(&out);
    tn_buf_cleanup(&again);
    return 0;
}
