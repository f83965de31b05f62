/* Private declarations of the schema module, shared by schema.c and schema_format.c. */
#ifndef TAINA_SCHEMA_INT_H
#define TAINA_SCHEMA_INT_H

#include <stddef.h>

/**
 * Is @p s (@p len bytes) valid for format @p fmt? Formats we do not know are valid (the
 * specification makes format an annotation unless the validator knows it).
 */
int tn_schema_format_ok(const char *fmt, const char *s, size_t len);

#endif
