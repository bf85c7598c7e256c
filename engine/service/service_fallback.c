/*
 * service_fallback.c: the fallback triggers (service_fallback.h), shared by
 * the service's own tries and the server's. Moved here from
 * server/fallback.c so that a library user gets the same decisions.
 */
#include <stdio.h>

#include "engine/service/service_fallback.h"
#include "engine/service/service_internal.h"
#include "util.h"

static const char *const reason_names[VKI_FALLBACK_N_REASONS] = {"missing", "failed", "memory", "breaker_open",
                                                                 "eta", "loading"};

const char *vki_fallback_reason_name(vki_fallback_reason r)
{
    if (r == VKI_FALLBACK_NONE) return "none";
    return r >= 0 && r < VKI_FALLBACK_N_REASONS ? reason_names[r] : "?";
}

int svc_fb_precheck(vki_service *svc, int32_t i, double deadline_ms, bool check_eta, svc_fb_verdict *v)
{
    scheduler *s = svc->s;
    sched_model_info info;
    sched_model_get_info(s, i, &info);
    if (info.state == SCHED_FAILED) {
        const bool missing = info.fail_status == VKI_ERR_NOT_FOUND;
        snprintf(v->msg, sizeof v->msg, "model '%s' failed to load: %s", info.id, info.error);
        v->status = info.fail_status != VKI_OK ? info.fail_status : VKI_ERR_INTERNAL;
        v->retry_s = 0;
        return missing ? VKI_FALLBACK_MISSING : VKI_FALLBACK_FAILED;
    }
    if (!info.can_queue) {
        /* Still opening its file: not a failure, but it cannot take a request yet. */
        snprintf(v->msg, sizeof v->msg, "model '%s' is %s; retry shortly", info.id, sched_state_name(info.state));
        v->status = VKI_ERR_QUEUE_FULL;
        v->retry_s = 1;
        return VKI_FALLBACK_LOADING;
    }
    if (info.breaker == SCHED_BREAKER_OPEN) {
        snprintf(v->msg, sizeof v->msg,
                 "model '%s' is unavailable: its circuit breaker is open after repeated failures; retry in %.0f s",
                 info.id, VKI_MAX(1.0, info.breaker_retry_s));
        v->status = VKI_ERR_DEVICE_LOST;
        v->retry_s = VKI_MAX(1.0, info.breaker_retry_s);
        return VKI_FALLBACK_BREAKER_OPEN;
    }
    if (check_eta && deadline_ms > 0) {
        double eta = sched_eta_ms(s, i), now = vki_time_ms();
        if (eta > 0 && now + eta > deadline_ms) {
            snprintf(v->msg, sizeof v->msg,
                     "model '%s' would not answer before the request's timeout: its queue's ETA is %.2f s, the "
                     "timeout %.2f s", info.id, eta / 1e3, (deadline_ms - now) / 1e3);
            v->status = VKI_ERR_TIMEOUT;
            v->retry_s = 0;
            return VKI_FALLBACK_ETA;
        }
    }
    return -1;
}

int svc_fb_judge(vki_service *svc, int32_t i, vki_status st, double eta_s)
{
    scheduler *s = svc->s;
    sched_model_info info;
    sched_model_get_info(s, i, &info);
    if (info.state == SCHED_FAILED) return info.fail_status == VKI_ERR_NOT_FOUND ? VKI_FALLBACK_MISSING
                                                                                 : VKI_FALLBACK_FAILED;
    switch (st) {
    case VKI_ERR_OUT_OF_DEVICE_MEMORY: return VKI_FALLBACK_MEMORY;
    case VKI_ERR_DEVICE_LOST:
        /* Refused by the breaker (a wait), or ended because it opened. */
        return eta_s > 0 || info.breaker != SCHED_BREAKER_CLOSED ? VKI_FALLBACK_BREAKER_OPEN : VKI_FALLBACK_FAILED;
    case VKI_ERR_INTERNAL:
    case VKI_ERR_BAD_FILE:
    case VKI_ERR_OUT_OF_MEMORY: return VKI_FALLBACK_FAILED;
    default: return -1;
    }
}

int32_t vki_service_fallback_candidates(vki_service *svc, int32_t i, const vki_request_needs *need, int32_t *out,
                                        double *scores, int32_t max)
{
    if (!svc || !out || max <= 0 || i < 0 || i >= sched_n_models(svc->s)) return 0;
    const sched_needs n = need ? (sched_needs){.caps = need->capabilities, .n_tokens = need->n_tokens,
                                               .n_embd = need->n_embd}
                               : (sched_needs){0};
    return sched_fallback_candidates(svc->s, i, &n, out, scores, max);
}
