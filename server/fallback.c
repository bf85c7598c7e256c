/*
 * fallback.c: the HTTP face of fallback: the plan a request's body allows
 * (model_fallback, then the library's vki_service_fallback_candidates) and
 * the counters (vkinfer_fallbacks_total{model,to,reason}) with their events.
 * The tries are the service's jobs' (the routes pass the plan as
 * candidates); a job's refusal becomes an HTTP error in srv_send_job_error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
