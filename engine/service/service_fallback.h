/*
 * service_fallback.h: the fallback triggers: whether a model can take a
 * request now (missing, failed, still opening, breaker open, an ETA past
 * the deadline) and what a refused or failed try means, and the candidates'
 * order (vki_service_fallback_candidates, over the scheduler's scoring).
 * The tries are the service's (service_job.c). Must not: submit anything.
 */
#ifndef VKI_SERVICE_FALLBACK_H
#define VKI_SERVICE_FALLBACK_H

#include "engine/sched/sched.h"
#include "vkinfer.h"

/* Why model i cannot take the request now: the status a caller would get
 * and the message, and when a retry may succeed (0 = not known). */
typedef struct svc_fb_verdict {
    vki_status status;
    double     retry_s;
    char       msg[1200];
} svc_fb_verdict;

/* A vki_fallback_reason when model i cannot serve a request now (v filled),
 * else -1. check_eta: an ETA past deadline_ms (vki_time_ms clock; 0 = none)
 * counts, as it should only when another candidate follows. */
int svc_fb_precheck(vki_service *svc, int32_t i, double deadline_ms, bool check_eta, svc_fb_verdict *v);
/* The vki_fallback_reason behind a try of model i that ended with st
 * (eta_s: the refusal's retry time), or -1 when another model would not
 * help (the request's own fault, a timeout, a cancel, a full queue). */
int svc_fb_judge(vki_service *svc, int32_t i, vki_status st, double eta_s);

#endif
