/* Fuzz target: the API keys file parser (tn_auth_parse) and lookups against what it loaded. */
#include "fuzz.h"
#include "taina/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    tn_auth_t *auth = NULL;
    tn_err_t rc = tn_auth_parse((const char *)data, size, "fuzz", &auth, err, sizeof(err));
    if (rc != TN_OK) {
        FUZZ_CHECK(rc == TN_ERR_CONFIG && !auth && err[0], "rc %d without a reason", rc);
        return 0;
    }
    FUZZ_CHECK(auth && tn_auth_count(auth) > 0, "loaded without keys");
    const char *tenant = NULL;
    size_t index = 0;
    rc = tn_auth_lookup_index(auth, (const char *)data, size, &tenant, &index);
    FUZZ_CHECK(rc == TN_ERR_AUTH || (rc == TN_OK && tenant && index < tn_auth_count(auth)),
               "lookup rc %d", rc);
    FUZZ_CHECK(tn_auth_lookup(auth, "", 0, &tenant) == TN_ERR_AUTH || tenant, "empty key");
    tn_auth_destroy(auth);
    return 0;
}
