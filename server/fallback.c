/*
 * fallback.c: which models a request may go to when its own cannot serve
 * it (missing, failed, no device memory, breaker open, ETA past the
 * request's deadline), what each try's failure means, and the counters
 * (vkinfer_fallbacks_total{model,to,reason}). The routes run the tries:
 * a chat prompt is rendered with each model's own template.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/events.h"
#include "server/srv_internal.h"
#include "util.h"

static const char *const reason_names[SRV_FB_N] = {"missing", "failed", "memory", "breaker_open", "eta",
                                                            "loading"};

bool srv_fb_init(srv_server *srv)
{
    /* Sized for every slot models added by a reload may take: indices
     * never move, so the counters need no locking as models come. */
    const size_t n = SCHED_MAX_MODELS;
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
    const int32_t n = SCHED_MAX_MODELS;
    if (from < 0 || to < 0 || from >= n || to >= n || reason < 0 || reason >= SRV_FB_N) return;
    atomic_fetch_add(&srv->fb_count[((size_t)from * (size_t)n + (size_t)to) * SRV_FB_N + (size_t)reason], 1);
    srv_events *ev = atomic_load(&srv->events);
    if (ev) {
        sched_model_info fi, ti;
        sched_model_get_info(srv->s, from, &fi);
        sched_model_get_info(srv->s, to, &ti);
        srv_events_push(ev, "fallback", fi.id, "a request for %s was served by %s (%s)", fi.id, ti.id,
                        reason_names[reason]);
    }
}

void srv_fb_metrics(srv_server *srv, srv_buf *b)
{
    const int32_t n = sched_n_models(srv->s);
    const size_t stride = SCHED_MAX_MODELS;
    srv_buf_printf(b, "# HELP vkinfer_fallbacks_total Requests for a model served by another, by the reason its own "
                      "could not serve.\n# TYPE vkinfer_fallbacks_total counter\n");
    for (int32_t f = 0; f < n; f++)
        for (int32_t t = 0; t < n; t++)
            for (int r = 0; r < SRV_FB_N; r++) {
                uint64_t v = atomic_load(&srv->fb_count[((size_t)f * stride + (size_t)t) * SRV_FB_N + (size_t)r]);
                if (!v) continue;
                sched_model_info fi, ti;
                sched_model_get_info(srv->s, f, &fi);
                sched_model_get_info(srv->s, t, &ti);
                srv_buf_printf(b, "vkinfer_fallbacks_total{model=\"%s\",to=\"%s\",reason=\"%s\"} %llu\n", fi.id, ti.id,
                               reason_names[r], (unsigned long long)v);
            }
}

int32_t srv_fb_plan(srv_conn *cn, const cJSON *body, int32_t model, const sched_needs *need, int32_t *order,
                    int32_t max, enum MHD_Result *ret)
{
    const cJSON *jf = cJSON_GetObjectItemCaseSensitive(body, "model_fallback");
    if (jf && !cJSON_IsNull(jf) && !cJSON_IsBool(jf)) {
        *ret = srv_send_error(cn, 400, "invalid_field", 0, "model_fallback: expected true or false");
        return 0;
    }
    order[0] = model;
    if (cJSON_IsFalse(jf) || max < 2) return 1;
    return 1 + sched_fallback_candidates(cn->srv->s, model, need, order + 1, NULL, max - 1);
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
    sched_model_info info;
    sched_model_get_info(cn->srv->s, i, &info);
    char msg[1200];
    if (info.state == SCHED_FAILED) {
        const bool missing = info.fail_status == VKI_ERR_NOT_FOUND;
        snprintf(msg, sizeof msg, "model '%s' failed to load: %s", info.id, info.error);
        set_error(e, 503, "model_failed", 0, msg);
        return missing ? SRV_FB_MISSING : SRV_FB_FAILED;
    }
    if (!info.can_queue) {
        /* Still opening its file: not a failure, but it cannot take a request yet. */
        snprintf(msg, sizeof msg, "model '%s' is %s; retry shortly", info.id, sched_state_name(info.state));
        set_error(e, 503, "model_loading", 1, msg);
        return SRV_FB_LOADING;
    }
    if (info.breaker == SCHED_BREAKER_OPEN) {
        snprintf(msg, sizeof msg, "model '%s' is unavailable: its circuit breaker is open after repeated failures; "
                 "retry in %.0f s", info.id, VKI_MAX(1.0, info.breaker_retry_s));
        set_error(e, 503, "breaker_open", (int)VKI_MAX(1.0, info.breaker_retry_s + 0.999), msg);
        return SRV_FB_BREAKER;
    }
    if (check_eta && deadline_ms > 0) {
        double eta = sched_eta_ms(cn->srv->s, i), now = vki_time_ms();
        if (eta > 0 && now + eta > deadline_ms) {
            snprintf(msg, sizeof msg, "model '%s' would not answer before the request's timeout: its queue's ETA is "
                     "%.2f s, the timeout %.2f s", info.id, eta / 1e3, (deadline_ms - now) / 1e3);
            set_error(e, 504, "timeout", 0, msg);
            return SRV_FB_ETA;
        }
    }
    return -1;
}

int srv_fb_judge(srv_conn *cn, int32_t i, vki_status st, const char *msg, double eta_s, srv_fb_error *e)
{
    unsigned http;
    const char *code;
    int retry;
    srv_status_http(st, eta_s, &http, &code, &retry);
    set_error(e, http, code, retry, msg && msg[0] ? msg : vki_status_str(st));
    sched_model_info info;
    sched_model_get_info(cn->srv->s, i, &info);
    if (info.state == SCHED_FAILED) {
        e->http = 503;
        e->code = "model_failed";
        return info.fail_status == VKI_ERR_NOT_FOUND ? SRV_FB_MISSING : SRV_FB_FAILED;
    }
    switch (st) {
    case VKI_ERR_OUT_OF_DEVICE_MEMORY: return SRV_FB_MEMORY;
    case VKI_ERR_DEVICE_LOST:
        /* Refused by the breaker (a wait), or ended because it opened. */
        return eta_s > 0 || info.breaker != SCHED_BREAKER_CLOSED ? SRV_FB_BREAKER : SRV_FB_FAILED;
    case VKI_ERR_INTERNAL:
    case VKI_ERR_BAD_FILE:
    case VKI_ERR_OUT_OF_MEMORY: return SRV_FB_FAILED;
    default: return -1; /* the client's doing, a timeout, a cancel, a full queue */
    }
}
