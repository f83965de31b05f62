/* Unit tests for common/src/auth.c: keys file parsing, lookup, hashing. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/auth.h"
#include "taina/mem.h"

static void test_hash_hex(void **state)
{
    char hex[TN_AUTH_HEX_LEN + 1];
    TN_UNUSED(state);
    tn_auth_hash_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    tn_auth_hash_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* Only the given length counts. */
    tn_auth_hash_hex("abcdef", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* A keys file for "key-a" (tenant acme), "key-b" (tenant city.hall) and "key-c" (acme again). */
static char *sample_file(void)
{
    char ha[TN_AUTH_HEX_LEN + 1], hb[TN_AUTH_HEX_LEN + 1], hc[TN_AUTH_HEX_LEN + 1];
    tn_auth_hash_hex("key-a", 5, ha);
    tn_auth_hash_hex("key-b", 5, hb);
    tn_auth_hash_hex("key-c", 5, hc);
    for (char *p = hb; *p; p++) /* upper-case hex is accepted too */
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    return tn_xasprintf("# tenants and key hashes\n"
                        "\n"
                        "acme %s\n"
                        "   \t\n"
                        "\tcity.hall\t%s   # the city hall\r\n"
                        "acme %s",
                        ha, hb, hc);
}

static void test_parse_and_lookup(void **state)
{
    char err[256] = "";
    tn_auth_t *auth = NULL;
    const char *tenant = "x";
    char *text = sample_file();
    TN_UNUSED(state);

    assert_int_equal(tn_auth_parse(text, strlen(text), "keys", &auth, err, sizeof(err)), TN_OK);
    assert_non_null(auth);
    assert_int_equal(tn_auth_count(auth), 3);

    assert_int_equal(tn_auth_lookup(auth, "key-a", 5, &tenant), TN_OK);
    assert_string_equal(tenant, "acme");
    assert_int_equal(tn_auth_lookup(auth, "key-b", 5, &tenant), TN_OK);
    assert_string_equal(tenant, "city.hall");
    assert_int_equal(tn_auth_lookup(auth, "key-c", 5, &tenant), TN_OK);
    assert_string_equal(tenant, "acme");

    assert_int_equal(tn_auth_lookup(auth, "key-d", 5, &tenant), TN_ERR_AUTH);
    assert_null(tenant);
    assert_int_equal(tn_auth_lookup(auth, "key-", 4, &tenant), TN_ERR_AUTH);
    assert_int_equal(tn_auth_lookup(auth, "", 0, &tenant), TN_ERR_AUTH);
    /* The hash itself is not a key. */
    char ha[TN_AUTH_HEX_LEN + 1];
    tn_auth_hash_hex("key-a", 5, ha);
    assert_int_equal(tn_auth_lookup(auth, ha, strlen(ha), &tenant), TN_ERR_AUTH);

    tn_auth_destroy(auth);
    tn_auth_destroy(NULL);
    free(text);
}

static void expect_error(const char *text, const char *needle)
{
    char err[256] = "";
    tn_auth_t *auth = (tn_auth_t *)0x1;
    tn_err_t rc = tn_auth_parse(text, strlen(text), "keys.txt", &auth, err, sizeof(err));
    if (rc != TN_ERR_CONFIG || !strstr(err, needle))
        fail_msg("for %s: rc %s, error \"%s\", expected to contain \"%s\"", text, tn_err_name(rc),
                 err, needle);
    assert_null(auth);
}

static void test_parse_errors(void **state)
{
    char h[TN_AUTH_HEX_LEN + 1];
    TN_UNUSED(state);
    tn_auth_hash_hex("k", 1, h);

    expect_error("", "keys.txt: no keys");
    expect_error("# only a comment\n\n", "keys.txt: no keys");
    expect_error("acme\n",
                 "keys.txt line 1: expected `TENANT_ID SHA256_HEX_OF_KEY`, found 1 field");

    char *t = tn_xasprintf("# c\nacme %s\nacme %s extra\n", h, h);
    expect_error(t, "keys.txt line 3: expected");
    free(t);

    t = tn_xasprintf("acme %.63s\n", h);
    expect_error(t, "line 1: key hash must be 64 hex digits");
    free(t);

    t = tn_xasprintf("acme %.63sg\n", h);
    expect_error(t, "line 1: key hash is not hexadecimal");
    free(t);

    t = tn_xasprintf("ac/me %s\n", h);
    expect_error(t, "line 1: tenant id may only hold");
    free(t);

    t = tn_xasprintf("%065d %s\n", 7, h);
    expect_error(t, "line 1: tenant id longer than 64");
    free(t);

    char h2[TN_AUTH_HEX_LEN + 1];
    tn_auth_hash_hex("other", 5, h2);
    t = tn_xasprintf("acme %s\n\nbeta %s\ngamma %s\n", h, h2, h);
    expect_error(t, "line 4: duplicate key (already given for tenant acme)");
    free(t);

    /* A NUL inside the text is not silently accepted. */
    char withnul[80];
    size_t n = (size_t)snprintf(withnul, sizeof(withnul), "acme 00");
    withnul[n++] = '\0';
    memcpy(withnul + n, "ff\n", 3);
    char err[128];
    tn_auth_t *auth = NULL;
    assert_int_equal(tn_auth_parse(withnul, n + 3, "k", &auth, err, sizeof(err)), TN_ERR_CONFIG);
    assert_non_null(strstr(err, "k line 1"));
}

static void test_load_file(void **state)
{
    char err[256] = "";
    tn_auth_t *auth = NULL;
    const char *tenant = NULL;
    char *dir = tn_test_mkdtemp("auth");
    char *path = tn_xasprintf("%s/keys", dir);
    char *text = sample_file();
    TN_UNUSED(state);

    assert_int_equal(tn_test_write_file(path, text), 0);
    assert_int_equal(tn_auth_load(path, &auth, err, sizeof(err)), TN_OK);
    assert_int_equal(tn_auth_lookup(auth, "key-b", 5, &tenant), TN_OK);
    assert_string_equal(tenant, "city.hall");
    tn_auth_destroy(auth);
    auth = NULL;

    /* Errors name the file. */
    assert_int_equal(tn_test_write_file(path, "acme zz\n"), 0);
    assert_int_equal(tn_auth_load(path, &auth, err, sizeof(err)), TN_ERR_CONFIG);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 1"));
    assert_null(auth);

    char *missing = tn_xasprintf("%s/nope", dir);
    assert_int_equal(tn_auth_load(missing, &auth, err, sizeof(err)), TN_ERR_IO);
    assert_non_null(strstr(err, missing));
    assert_null(auth);

    free(missing);
    free(text);
    free(path);
    tn_test_rmdir(dir);
    free(dir);
}

/* Signed tokens: round trip, expiry, tampering, garbage. */
static void test_tokens(void **state)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    char tok[TN_AUTH_TOKEN_MAX + 1], tenant[TN_AUTH_TENANT_MAX + 1];
    long long exp = 0;
    TN_UNUSED(state);

    assert_int_equal(tn_auth_token_sign(secret, 32, "city.hall", 2000, tok, sizeof(tok)), TN_OK);
    assert_true(strncmp(tok, "v1~city.hall~2000~", 18) == 0);
    assert_int_equal(strlen(tok), 18 + 43);
    for (const char *p = tok; *p; p++) /* URL-safe as is */
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", *p));
    assert_int_equal(tn_auth_token_verify(secret, 32, tok, 1999, tenant, &exp), TN_OK);
    assert_string_equal(tenant, "city.hall");
    assert_int_equal(exp, 2000);
    assert_int_equal(tn_auth_token_verify(secret, 32, tok, 2000, tenant, NULL), TN_ERR_TIMEOUT);
    /* another secret, another tenant or expiry with the same signature, a flipped character */
    assert_int_equal(tn_auth_token_verify("other", 5, tok, 1, tenant, NULL), TN_ERR_AUTH);
    char forged[TN_AUTH_TOKEN_MAX + 1];
    snprintf(forged, sizeof(forged), "v1~city.hall~9000~%s", tok + 18);
    assert_int_equal(tn_auth_token_verify(secret, 32, forged, 1, tenant, NULL), TN_ERR_AUTH);
    snprintf(forged, sizeof(forged), "v1~evil~2000~%s", tok + 18);
    assert_int_equal(tn_auth_token_verify(secret, 32, forged, 1, tenant, NULL), TN_ERR_AUTH);
    snprintf(forged, sizeof(forged), "%s", tok);
    forged[30] = forged[30] == 'A' ? 'B' : 'A';
    assert_int_equal(tn_auth_token_verify(secret, 32, forged, 1, tenant, NULL), TN_ERR_AUTH);
    const char *bad[] = {"",
                         "v1",
                         "v1~~1~x",
                         "v2~a~1~"
                         "0123456789012345678901234567890123456789012",
                         "v1~a~1x~0123456789012345678901234567890123456789012",
                         "v1~a~1~short",
                         "v1~a b~1~0123456789012345678901234567890123456789012"};
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++)
        assert_int_equal(tn_auth_token_verify(secret, 32, bad[i], 1, tenant, NULL), TN_ERR_PARSE);
    assert_int_equal(tn_auth_token_sign(secret, 32, "bad tenant", 1, tok, sizeof(tok)),
                     TN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_hex),     cmocka_unit_test(test_parse_and_lookup),
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
