/*
 * fallback.c: the HTTP face of fallback: the plan a request's body allows
 * (model_fallback, then the library's vki_service_fallback_candidates), the
 * library's triggers (engine/service/service_fallback.c) as HTTP errors,
 * and the counters (vkinfer_fallbacks_total{model,to,reason}). The routes
 * still run the tries themselves: a chat prompt is rendered with each
 * model's own template, which the service's jobs cannot do yet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/service/service_fallback.h"
#include "server/events.h"
#include "server/srv_internal.h"
#include "util.h"


bool srv_fb_init(srv_server *srv)
{
    /* Sized for every slot models added by a reload may take: indices
     * never move, so the counters need no locking as models come. */
    const size_t n = VKI_SERVICE_MAX_MODELS;
    srv->fb_count = calloc(n * n * SRV_FB_N, sizeof *srv->fb_count);
    return srv->fb_count != NULL;
}

void srv_fb_free(srv_server *srv)
{
    free(srv->fb_count);
    srv->fb_count = NULL;
}

void srv_fb_count(srv_server *srv, int32_t from, int32_t to, int reason)
{
    const int32_t n = VKI_SERVICE_MAX_MODELS;
    if (from < 0 || to < 0 || from >= n || to >= n || reason < 0 || reason >= SRV_FB_N) return;
    atomic_fetch_add(&srv->fb_count[((size_t)from * (size_t)n + (size_t)to) * SRV_FB_N + (size_t)reason], 1);
    srv_events *ev = atomic_load(&srv->events);
    if (ev) {
        vki_service_model_info fi, ti;
        vki_service_get_model_info(srv->svc, from, &fi);
        vki_service_get_model_info(srv->svc, to, &ti);
        srv_events_push(ev, "fallback", fi.id, "a request for %s was served by %s (%s)", fi.id, ti.id,
                        vki_fallback_reason_name((vki_fallback_reason)reason));
    }
}

void srv_fb_metrics(srv_server *srv, srv_buf *b)
{
    const int32_t n = vki_service_model_count(srv->svc);
    const size_t stride = VKI_SERVICE_MAX_MODELS;
    srv_buf_printf(b, "# HELP vkinfer_fallbacks_total Requests for a model served by another, by the reason its own "
                      "could not serve.\n# TYPE vkinfer_fallbacks_total counter\n");
    for (int32_t f = 0; f < n; f++)
        for (int32_t t = 0; t < n; t++)
            for (int r = 0; r < SRV_FB_N; r++) {
                uint64_t v = atomic_load(&srv->fb_count[((size_t)f * stride + (size_t)t) * SRV_FB_N + (size_t)r]);
                if (!v) continue;
                vki_service_model_info fi, ti;
                vki_service_get_model_info(srv->svc, f, &fi);
                vki_service_get_model_info(srv->svc, t, &ti);
                srv_buf_printf(b, "vkinfer_fallbacks_total{model=\"%s\",to=\"%s\",reason=\"%s\"} %llu\n", fi.id, ti.id,
                               vki_fallback_reason_name((vki_fallback_reason)r), (unsigned long long)v);
            }
}

int32_t srv_fb_plan(srv_conn *cn, const cJSON *body, int32_t model, const vki_request_needs *need, int32_t *order,
                    int32_t max, enum MHD_Result *ret)
{
    const cJSON *jf = cJSON_GetObjectItemCaseSensitive(body, "model_fallback");
    if (jf && !cJSON_IsNull(jf) && !cJSON_IsBool(jf)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "model_fallback: expected true or false");
        return 0;
    }
    order[0] = model;
    if (cJSON_IsFalse(jf) || max < 2) return 1;
    return 1 + vki_service_fallback_candidates(cn->srv->svc, model, need, order + 1, NULL, max - 1);
}

static void set_error(srv_fb_error *e, unsigned http, const char *code, int retry, const char *msg)
{
    e->http = http;
    e->code = code;
    e->retry = retry;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
}

int srv_fb_precheck(srv_conn *cn, int32_t i, double deadline_ms, bool check_eta, srv_fb_error *e)
{
    svc_fb_verdict v;
    int reason = svc_fb_precheck(cn->srv->svc, i, deadline_ms, check_eta, &v);
    switch (reason) {
    case SRV_FB_MISSING:
    case SRV_FB_FAILED: set_error(e, 503, "model_failed", 0, v.msg); break;
    case SRV_FB_LOADING: set_error(e, 503, "model_loading", 1, v.msg); break;
    case SRV_FB_BREAKER: set_error(e, 503, "breaker_open", (int)(v.retry_s + 0.999), v.msg); break;
    case SRV_FB_ETA: set_error(e, 504, "timeout", 0, v.msg); break;
    default: break;
    }
    return reason;
}

int srv_fb_judge(srv_conn *cn, int32_t i, vki_status st, const char *msg, double eta_s, srv_fb_error *e)
{
    unsigned http;
    const char *code;
    int retry;
    srv_status_http(st, eta_s, &http, &code, &retry);
    set_error(e, http, code, retry, msg && msg[0] ? msg : vki_status_str(st));
    int reason = svc_fb_judge(cn->srv->svc, i, st, eta_s);
    if (reason == SRV_FB_MISSING || reason == SRV_FB_FAILED) {
        vki_service_model_info info;
        if (vki_service_get_model_info(cn->srv->svc, i, &info) == VKI_OK && info.state == VKI_MODEL_FAILED) {
            e->http = 503;
            e->code = "model_failed";
        }
    }
    return reason;
}
