/* The suite's error codes: names and texts. */
#include "taina/err.h"

const char *tn_err_str(tn_err_t rc)
{
    switch (rc) {
#define TN_ERR_STR_(name, val, text)                                                               \
    case name:                                                                                     \
        return text;
        TN_ERR_LIST(TN_ERR_STR_)
#undef TN_ERR_STR_
    }
    return "unknown error";
}

const char *tn_err_name(tn_err_t rc)
{
    switch (rc) {
#define TN_ERR_NAME_(name, val, text)                                                              \
    case name:                                                                                     \
        return #name;
        TN_ERR_LIST(TN_ERR_NAME_)
#undef TN_ERR_NAME_
    }
    return "TN_ERR_UNKNOWN";
}
