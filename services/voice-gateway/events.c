/* voice-gateway: voice.sessions events (start, turn, reply, interrupted, end), validated against
 * their schema and produced without waiting (telemetry: a full queue drops and counts). */
#include <stdlib.h>
#include <string.h>

#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "voice.h"

char *vg_redact(vg_t *g, const char *text)
{
    char err[256];
    tn_buf_t red;
    tn_buf_init(&red, strlen(text) * 2 + 256);
    if (tn_pii_redact(g->pii, text, strlen(text), &red, NULL, err, sizeof(err)) != TN_OK) {
        tn_buf_cleanup(&red);
        return NULL;
    }
    return tn_buf_detach(&red, NULL);
}

void vg_event(vg_session_t *s, const char *event, json_t *extra)
{
    vg_t *g = s->g;
    char now[40];
    json_t *v = json_pack("{s:i, s:s, s:s, s:s, s:s}", "schema_version", 1, "session_id", s->id,
                          "tenant_id", s->tenant, "event", event, "at",
                          tn_clock_rfc3339(now, sizeof(now), tn_clock_wall_ms()));
    if (s->lang[0])
        json_object_set_new(v, "lang", json_string(s->lang));
    if (extra)
        json_object_update(v, extra);
    json_decref(extra);
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(g->sessions_schema, v, &se, 1, &nse) != TN_OK) {
        /* a bug of ours: say so, never send a record its readers would refuse */
        TN_LOG(TN_LOG_ERROR, "voice.sessions %s event does not match its schema: %s %s", event,
               nse ? se.instance_path : "", nse ? se.message : "");
        tn_metric_add(g->m.events, TN_LABELS(g->cfg->topic_sessions, "invalid"), 1);
        json_decref(v);
        return;
    }
    char *value = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    tn_kafka_header_t h[2] = {{TN_KAFKA_H_SCHEMA, "voice.sessions/1", 16}};
    size_t nh = 1;
    if (s->trace[0]) {
        h[1] = (tn_kafka_header_t){"traceparent", s->trace, strlen(s->trace)};
        nh = 2;
    }
    tn_kafka_record_t rec = {g->cfg->topic_sessions, -1, s->id, strlen(s->id), value,
                             strlen(value),          h,  nh};
    tn_err_t rc = tn_kafka_produce(g->producer, &rec, NULL);
    tn_metric_add(g->m.events,
                  TN_LABELS(g->cfg->topic_sessions, rc == TN_OK ? "produced" : "dropped"), 1);
    free(value);
}
