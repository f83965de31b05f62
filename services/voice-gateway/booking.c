/* voice-gateway: booking. A transcript with a booking intent (keyword rules per language)
 * becomes an appointments.requests record; appointments.results records for requests of live
 * sessions are pushed to those sessions as {"type":"appointment",...}. The citizen's name and
 * id number cannot come from a voice turn: the client gives them in the start message or in a
 * {"type":"citizen"} message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/trace.h"
#include "voice.h"

typedef struct vg_pending {
    struct vg_pending *next;
    char rid[37];
    vg_session_t *s; /* a reference */
} vg_pending_t;

const char *vg_booking_intent(vg_t *g, const char *text, const char *lang)
{
    tn_category_result_t r = tn_category_classify(g->intents, text, strlen(text), lang);
    if (r.score <= 0 || strcmp(r.category, "book") != 0)
        return NULL;
    tn_category_result_t svc = tn_category_classify(g->services, text, strlen(text), lang);
    return svc.category;
}

tn_err_t vg_booking_request(vg_t *g, vg_session_t *s, const char *service, char *rid)
{
    pthread_mutex_lock(&s->mu);
    json_t *v = NULL;
    if (s->citizen_name && s->citizen_id) {
        char now[40], from[40], to[40];
        int64_t wall = tn_clock_wall_ms();
        v = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s}",
                      "schema_version", 1, "request_id", tn_uuid4(rid, 37), "tenant_id", s->tenant,
                      "session_id", s->id, "citizen_name", s->citizen_name, "id_number",
                      s->citizen_id, "service_code", service, "preferred_window", "from",
                      tn_clock_rfc3339(from, sizeof(from), wall + 86400000), "to",
                      tn_clock_rfc3339(to, sizeof(to), wall + 86400000 + g->cfg->booking_window_ms),
                      "lang", s->lang, "requested_at", tn_clock_rfc3339(now, sizeof(now), wall));
        if (s->citizen_phone)
            json_object_set_new(v, "phone", json_string(s->citizen_phone));
    }
    pthread_mutex_unlock(&s->mu);
    if (!v) {
        vg_send_error(s, "citizen_required",
                      "to book an appointment send {\"type\":\"citizen\",\"name\":...,"
                      "\"id_number\":...} first, then ask again");
        return TN_ERR_INVALID;
    }
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(g->requests_schema, v, &se, 1, &nse) != TN_OK) {
        vg_send_error(s, "invalid_citizen", "the booking request is not valid: %s %s",
                      nse ? se.instance_path : "", nse ? se.message : "");
        json_decref(v);
        return TN_ERR_INVALID;
    }
    char *value = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    tn_kafka_header_t h[2] = {{TN_KAFKA_H_SCHEMA, "appointments.requests/1", 23}};
    size_t nh = 1;
    if (s->trace[0]) {
        h[1] = (tn_kafka_header_t){"traceparent", s->trace, strlen(s->trace)};
        nh = 2;
    }
    tn_kafka_record_t rec = {g->cfg->topic_requests, -1, rid, strlen(rid), value,
                             strlen(value),          h,  nh};
    /* The request must not be lost: wait for the broker (a worker thread may block). */
    tn_err_t res = TN_OK;
    tn_err_t rc = tn_kafka_produce_sync(g->producer, &rec, 1, &res, 10000);
    free(value);
    tn_metric_add(g->m.events,
                  TN_LABELS(g->cfg->topic_requests, rc == TN_OK ? "produced" : "failed"), 1);
    if (rc != TN_OK) {
        vg_send_error(s, "booking_unavailable", "the booking request could not be recorded: %s",
                      tn_err_str(rc));
        return rc;
    }
    vg_pending_t *p = tn_xcalloc(1, sizeof(*p));
    snprintf(p->rid, sizeof(p->rid), "%s", rid);
    p->s = vg_session_keep(s);
    pthread_mutex_lock(&g->bmu);
    p->next = g->pending;
    g->pending = p;
    pthread_mutex_unlock(&g->bmu);
    vg_send_json(s, json_pack("{s:s, s:s, s:s}", "type", "appointment", "request_id", rid, "status",
                              "requested"));
    return TN_OK;
}

void vg_booking_forget(vg_t *g, vg_session_t *s)
{
    vg_pending_t *gone = NULL;
    pthread_mutex_lock(&g->bmu);
    for (vg_pending_t **pp = &g->pending; *pp;) {
        vg_pending_t *p = *pp;
        if (p->s == s) {
            *pp = p->next;
            p->next = gone;
            gone = p;
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&g->bmu);
    while (gone) {
        vg_pending_t *n = gone->next;
        vg_session_release(gone->s);
        free(gone);
        gone = n;
    }
}

/* One appointments.results record: to its session, if it is ours. */
static void on_result(vg_t *g, const tn_kafka_msg_t *m)
{
    json_t *v = json_loadb(m->value, m->value_len, 0, NULL);
    const char *rid = json_string_value(json_object_get(v, "request_id"));
    const char *status = json_string_value(json_object_get(v, "status"));
    if (!rid || !status) {
        json_decref(v);
        return;
    }
    bool final = strcmp(status, "requested") != 0 && strcmp(status, "booking") != 0;
    vg_session_t *s = NULL;
    pthread_mutex_lock(&g->bmu);
    for (vg_pending_t **pp = &g->pending; *pp; pp = &(*pp)->next) {
        vg_pending_t *p = *pp;
        if (strcmp(p->rid, rid) != 0)
            continue;
        s = vg_session_keep(p->s);
        if (final) {
            *pp = p->next;
            vg_session_release(p->s);
            free(p);
        }
        break;
    }
    pthread_mutex_unlock(&g->bmu);
    if (s) {
        json_t *msg = json_pack("{s:s, s:s, s:s}", "type", "appointment", "request_id", rid,
                                "status", status);
        json_t *slot = json_object_get(v, "slot");
        if (json_is_object(slot))
            json_object_set(msg, "slot", slot);
        vg_send_json(s, msg);
        vg_session_release(s);
    }
    json_decref(v);
}

static void *results_main(void *arg)
{
    vg_t *g = arg;
    int64_t next_check = 0;
    while (!atomic_load(&g->stop_bg)) {
        if (tn_clock_mono_ms() >= next_check) {
            /* asks the brokers for the ends: a cheap "is Kafka there" for /ready */
            atomic_store(&g->kafka_ok, tn_kafka_consumer_mark_ends(g->results_cons, 2000) == TN_OK);
            next_check = tn_clock_mono_ms() + g->cfg->probe_interval_ms;
        }
        tn_kafka_msg_t m;
        if (tn_kafka_consumer_poll(g->results_cons, 200, &m, NULL) == TN_OK) {
            on_result(g, &m);
            tn_kafka_msg_release(&m);
        }
    }
    return NULL;
}

tn_err_t vg_booking_start(vg_t *g, char *err, size_t errlen)
{
    pthread_mutex_init(&g->bmu, NULL);
    const vg_cfg_t *c = g->cfg;
    char *path = tn_app_data_path(*c->intent_rules_file ? c->intent_rules_file
                                                        : "services/voice-gateway/intents.rules");
    FILE *f = fopen(path, "r");
    char *text = NULL;
    if (f) {
        size_t cap = 0;
        ssize_t n = getdelim(&text, &cap, '\0', f);
        fclose(f);
        if (n < 0)
            TN_FREE(text);
    }
    if (!text) {
        snprintf(err, errlen, "cannot read the intent rules %s", path);
        free(path);
        return TN_ERR_CONFIG;
    }
    g->intents = tn_category_new(text, path, err, errlen);
    free(text);
    free(path);
    if (!g->intents)
        return TN_ERR_CONFIG;
    char *stext = NULL;
    if (*c->service_rules_file) {
        f = fopen(c->service_rules_file, "r");
        size_t cap = 0;
        if (!f || getdelim(&stext, &cap, '\0', f) < 0) {
            snprintf(err, errlen, "cannot read the service rules %s", c->service_rules_file);
            if (f)
                fclose(f);
            free(stext);
            return TN_ERR_CONFIG;
        }
        fclose(f);
    }
    g->services = tn_category_new(stext, c->service_rules_file, err, errlen);
    free(stext);
    if (!g->services)
        return TN_ERR_CONFIG;
    tn_kafka_opts_t ko = tn_app_kafka_opts(g->app, "taina-voice-gateway");
    const char *topics[] = {c->topic_results, NULL};
    if (!(g->results_cons = tn_kafka_consumer_new(&ko, NULL, topics, err, errlen)))
        return TN_ERR_CONFIG;
    if (pthread_create(&g->results, NULL, results_main, g) != 0) {
        snprintf(err, errlen, "cannot start the results thread");
        return TN_ERR;
    }
    g->results_running = true;
    return TN_OK;
}

void vg_booking_stop(vg_t *g)
{
    atomic_store(&g->stop_bg, true);
    if (g->results_running)
        pthread_join(g->results, NULL);
    g->results_running = false;
    tn_kafka_consumer_destroy(g->results_cons);
    g->results_cons = NULL;
    while (g->pending) {
        vg_pending_t *p = g->pending;
        g->pending = p->next;
        vg_session_release(p->s);
        free(p);
    }
    tn_category_destroy(g->intents);
    tn_category_destroy(g->services);
    pthread_mutex_destroy(&g->bmu);
}
