/*
 * service_stats.c: what the service reports (vkinfer.h): each model's state
 * and counters with their histograms, the fallbacks between models, the
 * embedding cache's and the device budget's figures. Reads only: changing
 * the models is service_admin.c's.
 */
#include <stdio.h>
#include <string.h>

#include "engine/service/service_internal.h"
#include "error.h"

_Static_assert(VKI_HISTOGRAM_BUCKETS == SCHED_N_BUCKETS, "vkinfer.h's histogram is the scheduler's");

const double *vki_service_histogram_bounds(void) { return sched_bucket_s; }

static void histo_copy(const sched_histo *h, vki_histogram *out)
{
    for (int k = 0; k <= SCHED_N_BUCKETS; k++) out->bucket[k] = h->bucket[k];
    out->count = h->count;
    out->sum_s = h->sum_s;
}

void svc_info_from_sched(const sched_model_info *si, vki_service_model_info *out, scheduler *s, int32_t i)
{
    *out = (vki_service_model_info){
        .id = si->id, .path = si->path,
        .kind = si->kind == SCHED_KIND_EMBEDDING ? VKI_MODEL_KIND_EMBEDDING : VKI_MODEL_KIND_CHAT,
        .state = (vki_model_state)si->state, .can_queue = si->can_queue, .pin = si->pin,
        .fallback_cpu = si->fallback_cpu, .keep_alive_ms = si->keep_alive_ms, .load_ms = si->load_ms,
        .idle_ms = si->idle_ms, .bytes = si->bytes, .est_bytes = si->est_bytes, .n_ctx = si->n_ctx,
        .n_seq_max = si->n_seq_max, .breaker = (vki_breaker_state)si->breaker,
        .breaker_retry_ms = si->breaker_retry_s * 1e3, .eta_ms = i >= 0 ? sched_eta_ms(s, i) : 0,
        .started = si->started, .breaker_failures = si->breaker_failures, .breaker_trips = si->breaker_trips,
        .reloading = si->reloading, .removing = si->removing, .removed = si->removed,
        .generation = si->generation, .fail_status = si->fail_status};
    snprintf(out->message, sizeof out->message, "%s", si->error);
    snprintf(out->backend, sizeof out->backend, "%s", sched_state_resident(si->state) ? si->backend : "");
}

int32_t vki_service_model_count(const vki_service *svc) { return svc ? sched_n_models(svc->s) : 0; }

int32_t vki_service_model_find(const vki_service *svc, const char *id)
{
    return svc && id ? sched_find(svc->s, id) : -1;
}

vki_status vki_service_get_model_info(vki_service *svc, int32_t i, vki_service_model_info *out)
{
    if (!svc || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_get_model_info: NULL argument");
    if (i < 0 || i >= sched_n_models(svc->s))
        return vki_fail(VKI_ERR_NOT_FOUND, "vki_service_get_model_info: no model %d (the service has %d)", i,
                        sched_n_models(svc->s));
    sched_model_info si;
    sched_model_get_info(svc->s, i, &si);
    svc_info_from_sched(&si, out, svc->s, i);
    return VKI_OK;
}

/* The counter of fallbacks from -> to for reason; NULL when any is out of
 * range (the counters are sized once, for n_fb models). */
static _Atomic uint64_t *fb_slot(const vki_service *svc, int32_t from, int32_t to, int reason)
{
    const size_t n = (size_t)svc->n_fb;
    if (from < 0 || to < 0 || from >= svc->n_fb || to >= svc->n_fb || reason < 0 || reason >= VKI_FALLBACK_N_REASONS)
        return NULL;
    return &svc->fb_count[((size_t)from * n + (size_t)to) * VKI_FALLBACK_N_REASONS + (size_t)reason];
}

static uint64_t fb_get(const vki_service *svc, int32_t from, int32_t to, int r)
{
    _Atomic uint64_t *c = fb_slot(svc, from, to, r);
    return c ? atomic_load(c) : 0;
}

void svc_fb_count_add(vki_service *svc, int32_t from, int32_t to, int reason)
{
    _Atomic uint64_t *c = fb_slot(svc, from, to, reason);
    if (c) atomic_fetch_add(c, 1);
}

uint64_t vki_service_fallback_count(const vki_service *svc, int32_t from, int32_t to, vki_fallback_reason reason)
{
    return svc ? fb_get(svc, from, to, reason) : 0;
}

vki_status vki_service_get_model_stats(vki_service *svc, int32_t i, vki_service_model_stats *out)
{
    if (!svc || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_get_model_stats: NULL argument");
    if (i < 0 || i >= sched_n_models(svc->s))
        return vki_fail(VKI_ERR_NOT_FOUND, "vki_service_get_model_stats: no model %d (the service has %d)", i,
                        sched_n_models(svc->s));
    sched_stats st;
    sched_model_get_stats(svc->s, i, &st);
    sched_model_info si;
    sched_model_get_info(svc->s, i, &si);
    *out = (vki_service_model_stats){
        .active = st.active, .finished_ok = st.finished_ok, .failed = st.failed, .cancelled = st.cancelled,
        .timed_out = st.timed_out, .rejected_full = st.rejected_full, .prompt_tokens = st.prompt_tokens,
        .generated_tokens = st.generated_tokens, .steps = st.steps, .loads = st.loads, .evictions = st.evictions,
        .idle_unloads = st.idle_unloads, .cpu_fallbacks = st.fallbacks, .refused_loads = st.refused_loads,
        .breaker_trips = si.breaker_trips, .ttft_sum_ms = st.ttft.sum_s * 1e3, .ttft_count = st.ttft.count,
        .service_ema_ms = st.service_ema_ms};
    for (int p = 0; p < SCHED_N_PRIO; p++) out->queued[p] = st.queued[p];
    histo_copy(&st.ttft, &out->ttft);
    histo_copy(&st.token_latency, &out->token_latency);
    histo_copy(&st.request, &out->request);
    out->step_seqs = st.step_seqs;
    out->swaps = st.swaps;
    out->breaker_failures = st.breaker_failures;
    out->breaker_reloads = st.breaker_reloads;
    out->yields = st.yields;
    out->paused = st.paused;
    out->arb_grants = st.arb_grants;
    out->arb_wait_ms = st.arb_wait_ms;
    out->emb_cache_hits = st.emb_cache_hits;
    out->emb_cache_misses = st.emb_cache_misses;
    out->prompt_evaluated = st.prompt_evaluated;
    out->prompt_reused = st.prompt_reused;
    const int32_t n = sched_n_models(svc->s);
    for (int32_t o = 0; o < n; o++)
        for (int r = 0; r < VKI_FALLBACK_N_REASONS; r++) {
            if (o == i) continue;
            out->fallbacks_out[r] += fb_get(svc, i, o, r);
            out->fallbacks_in += fb_get(svc, o, i, r);
        }
    return VKI_OK;
}

bool vki_service_wait_loaded(vki_service *svc, int timeout_ms)
{
    return svc && sched_wait_loaded(svc->s, timeout_ms);
}

vki_status vki_service_get_cache_info(vki_service *svc, vki_service_cache_info *out)
{
    if (!svc || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_get_cache_info: NULL argument");
    sched_emb_cache_info ec;
    sched_get_emb_cache_info(svc->s, &ec);
    *out = (vki_service_cache_info){.budget = ec.budget, .bytes = ec.bytes, .entries = ec.entries, .hits = ec.hits,
                                    .misses = ec.misses, .inserts = ec.inserts, .evictions = ec.evictions};
    return VKI_OK;
}

vki_status vki_service_get_device_info(vki_service *svc, vki_service_device_info *out)
{
    if (!svc || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_get_device_info: NULL argument");
    sched_resid_info ri;
    sched_get_resid_info(svc->s, &ri);
    *out = (vki_service_device_info){.budget = ri.budget, .used = ri.used};
    snprintf(out->device, sizeof out->device, "%s", ri.device);
    return VKI_OK;
}

const char *vki_service_model_fallback_id(const vki_service *svc, int32_t i, int32_t k)
{
    if (!svc || i < 0 || i >= sched_n_models(svc->s) || k < 0) return NULL;
    return sched_fallback_chain_id(svc->s, i, k);
}
