/* appointments: a request document, from the topic or from HTTP: parsed, validated against its
 * schema, its fields picked out. Messages never quote the id number. */
#include <stdio.h>
#include <string.h>

#include "appointments.h"
#include "taina/mem.h"

json_t *appt_request_parse(const char *text, size_t len, appt_reject_t *why)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc && json_is_object(doc))
        return doc;
    memset(why, 0, sizeof(*why));
    if (!doc && json_error_code(&jerr) == json_error_invalid_utf8) {
        /* well-formed JSON except for its encoding: the content is what is wrong */
        why->status = 422;
        why->code = "invalid_utf8";
        snprintf(why->message, sizeof(why->message), "the body is not valid UTF-8 (byte %d)",
                 jerr.position);
    } else {
        why->status = 400;
        why->code = "invalid_json";
        if (doc)
            snprintf(why->message, sizeof(why->message), "expected one JSON object");
        else
            snprintf(why->message, sizeof(why->message), "line %d, column %d: %s", jerr.line,
                     jerr.column, jerr.text);
    }
    json_decref(doc);
    return NULL;
}

static const char *str(const json_t *doc, const char *k)
{
    return json_string_value(json_object_get(doc, k));
}

tn_err_t appt_request_from(const tn_schema_t *schema, json_t *doc, appt_request_t *out,
                           appt_reject_t *why)
{
    tn_schema_error_t se;
    size_t nse = 0;
    memset(out, 0, sizeof(*out));
    if (tn_schema_validate(schema, doc, &se, 1, &nse) != TN_OK) {
        memset(why, 0, sizeof(*why));
        why->status = 422;
        why->code = "schema_violation";
        /* the validator's message names the path and keyword, never the value */
        if (nse) {
            tn_schema_error_format(&se, why->message, sizeof(why->message));
            why->error = tn_schema_error_json(&se);
        } else {
            snprintf(why->message, sizeof(why->message), "invalid request");
        }
        json_decref(doc);
        return TN_ERR_SCHEMA;
    }
    out->doc = doc;
    out->request_id = str(doc, "request_id");
    out->tenant_id = str(doc, "tenant_id");
    out->session_id = str(doc, "session_id");
    out->citizen_name = str(doc, "citizen_name");
    out->id_number = str(doc, "id_number");
    out->phone = str(doc, "phone");
    out->service_code = str(doc, "service_code");
    json_t *w = json_object_get(doc, "preferred_window");
    out->window_from = str(w, "from");
    out->window_to = str(w, "to");
    out->lang = str(doc, "lang");
    out->requested_at = str(doc, "requested_at");
    return TN_OK;
}

void appt_request_cleanup(appt_request_t *r)
{
    json_decref(r->doc);
    memset(r, 0, sizeof(*r));
}

void appt_reject_cleanup(appt_reject_t *why)
{
    json_decref(why->error);
    why->error = NULL;
}
