/*
 * service.c: vki_service (vkinfer.h): creating it over a scheduler, adding
 * models, model states and counters, and the dispatcher thread that runs
 * every callback and fallback retry (one thread, not one per job).
 * Requests and jobs are service_job.c's; the fallback triggers
 * service_fallback.c's. Must not: parse files (service_config.c does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/service/service_internal.h"
#include "error.h"
#include "engine/models/model.h"
#include "loader/model_file.h"
#include "util.h"

/* ===== Names and defaults =============================================== */

const char *vki_priority_name(vki_priority p) { return sched_prio_name((sched_prio)p); }

const char *vki_model_kind_name(vki_model_kind k)
{
    switch (k) {
    case VKI_MODEL_KIND_AUTO: return "auto";
    case VKI_MODEL_KIND_CHAT: return "chat";
    case VKI_MODEL_KIND_EMBEDDING: return "embedding";
    }
    return "?";
}

const char *vki_model_state_name(vki_model_state s) { return sched_state_name((sched_state)s); }
const char *vki_breaker_state_name(vki_breaker_state b) { return sched_breaker_state_name((sched_breaker_state)b); }

vki_service_params vki_service_default_params(void)
{
    return (vki_service_params){.engine = vki_engine_default_params()};
}

vki_service_model_params vki_service_model_default_params(void)
{
    return (vki_service_model_params){.kind = VKI_MODEL_KIND_AUTO, .model = vki_model_default_params(),
                                      .keep_alive_ms = -1};
}

vki_request_params vki_request_default_params(void)
{
    return (vki_request_params){.priority = VKI_PRIORITY_NORMAL, .allow_fallback = true};
}

/* ===== States and counters ============================================== */

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
        .started = si->started, .breaker_failures = si->breaker_failures};
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

static uint64_t fb_get(const vki_service *svc, int32_t from, int32_t to, int r)
{
    const size_t n = (size_t)svc->n_fb;
    return atomic_load(&svc->fb_count[((size_t)from * n + (size_t)to) * VKI_FALLBACK_N_REASONS + (size_t)r]);
}

void svc_fb_count_add(vki_service *svc, int32_t from, int32_t to, int reason)
{
    const size_t n = (size_t)svc->n_fb;
    if (from < 0 || to < 0 || from >= svc->n_fb || to >= svc->n_fb || reason < 0 || reason >= VKI_FALLBACK_N_REASONS)
        return;
    atomic_fetch_add(&svc->fb_count[((size_t)from * n + (size_t)to) * VKI_FALLBACK_N_REASONS + (size_t)reason], 1);
}

uint64_t vki_service_fallback_count(const vki_service *svc, int32_t from, int32_t to, vki_fallback_reason reason)
{
    if (!svc || from < 0 || to < 0 || from >= svc->n_fb || to >= svc->n_fb || reason < 0 ||
        reason >= VKI_FALLBACK_N_REASONS)
        return 0;
    return fb_get(svc, from, to, reason);
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
    for (int32_t o = 0; o < svc->n_fb; o++)
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

/* ===== The dispatcher =================================================== */

void svc_push_ready(vki_service *svc, vki_job *j)
{
    pthread_mutex_lock(&svc->mu);
    if (!j->queued) {
        j->queued = true;
        atomic_fetch_add(&j->refs, 1);
        j->next = NULL;
        *svc->ready_tail = j;
        svc->ready_tail = &j->next;
        pthread_cond_broadcast(&svc->cv);
    }
    pthread_mutex_unlock(&svc->mu);
}

void svc_park(vki_service *svc, vki_job *j)
{
    pthread_mutex_lock(&svc->mu);
    atomic_fetch_add(&j->refs, 1);
    j->next_parked = svc->parked;
    svc->parked = j;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
}

/* Moves the parked jobs to the ready list (their references move too);
 * under svc->mu. A job already queued drops the parked reference. */
static void unpark_all(vki_service *svc)
{
    vki_job *j = svc->parked;
    svc->parked = NULL;
    while (j) {
        vki_job *next = j->next_parked;
        if (!j->queued) {
            j->queued = true;
            j->next = NULL;
            *svc->ready_tail = j;
            svc->ready_tail = &j->next;
        } else {
            atomic_fetch_sub(&j->refs, 1); /* the ready list holds one already: never the last */
        }
        j = next;
    }
}

static double parked_deadline(const vki_service *svc)
{
    double d = 0;
    for (const vki_job *j = svc->parked; j; j = j->next_parked)
        if (j->deadline > 0 && (d == 0 || j->deadline < d)) d = j->deadline;
    return d;
}

static void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double until_ms)
{
    const double ms = VKI_MAX(0.0, until_ms - vki_time_ms());
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const long long ns = (long long)ts.tv_nsec + (long long)(ms * 1e6);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(cv, mu, &ts);
}

/* The scheduler's on_state, on its threads: queued for the dispatcher so
 * that the caller's on_state runs where every other callback does. */
static void on_sched_state(const sched_model_info *si, void *user)
{
    vki_service *svc = user;
    svc_state_event *ev = calloc(1, sizeof *ev);
    if (!ev) return; /* a state report is lost; the model's state itself is not */
    svc_info_from_sched(si, &ev->info, svc->s, -1);
    pthread_mutex_lock(&svc->mu);
    *svc->events_tail = ev;
    svc->events_tail = &ev->next;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
}

static void on_sched_warm(const sched_warm_event *ev, void *user)
{
    vki_service *svc = user;
    const vki_warm_event we = {.model = ev->model, .action = ev->action, .p = ev->p, .reason = ev->reason};
    svc->p.on_warm(&we, svc->p.on_warm_user);
}

static void *dispatcher_main(void *arg)
{
    vki_service *svc = arg;
    pthread_mutex_lock(&svc->mu);
    for (;;) {
        const double due = parked_deadline(svc);
        if (svc->parked && (svc->events || svc->shutting || (due > 0 && vki_time_ms() >= due))) unpark_all(svc);
        if (!svc->ready && !svc->events) {
            if (svc->stop) break;
            if (due > 0) cond_wait_until(&svc->cv, &svc->mu, due);
            else pthread_cond_wait(&svc->cv, &svc->mu);
            continue;
        }
        svc_state_event *ev = svc->events;
        svc->events = NULL;
        svc->events_tail = &svc->events;
        vki_job *j = svc->ready;
        svc->ready = NULL;
        svc->ready_tail = &svc->ready;
        for (vki_job *q = j; q; q = q->next) q->queued = false;
        pthread_mutex_unlock(&svc->mu);
        while (ev) {
            svc_state_event *next = ev->next;
            if (svc->p.on_state) svc->p.on_state(&ev->info, svc->p.on_state_user);
            free(ev);
            ev = next;
        }
        while (j) {
            vki_job *next = j->next;
            svc_job_process(j);
            svc_job_unref(j);
            j = next;
        }
        pthread_mutex_lock(&svc->mu);
    }
    pthread_mutex_unlock(&svc->mu);
    return NULL;
}

scheduler *svc_scheduler(vki_service *svc) { return svc ? svc->s : NULL; }

bool svc_on_dispatcher(const vki_service *svc)
{
    return svc->thread_started && pthread_equal(pthread_self(), svc->thread);
}

/* ===== Life ============================================================= */

vki_status vki_service_create(const vki_service_params *params, vki_service **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_create: out is NULL");
    *out = NULL;
    vki_service *svc = calloc(1, sizeof *svc);
    if (!svc) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_service_create: out of memory");
    svc->p = params ? *params : vki_service_default_params();
    svc->ready_tail = &svc->ready;
    svc->events_tail = &svc->events;
    pthread_mutex_init(&svc->mu, NULL);
    pthread_cond_init(&svc->cv, NULL);
    const vki_service_params *p = &svc->p;
    vki_status st = VKI_ERR_INVALID_ARGUMENT;
    if (p->max_queue < 0 || p->vram_fraction < 0 || p->vram_fraction > 1 || p->embed_wait_ms < 0 ||
        p->fallback_min_score < 0 || p->fallback_min_score > 1) {
        vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_create: max_queue must be >= 0, vram_fraction and "
                 "fallback_min_score in [0, 1], embed_wait_ms >= 0");
        goto fail;
    }
    sched_params sp = sched_default_params();
    sp.engine = p->engine;
    sp.max_queue = p->max_queue;
    sp.embed_wait_ms = p->embed_wait_ms;
    sp.embed_token_budget = p->embed_token_budget;
    sp.vram_fraction = p->vram_fraction;
    sp.on_state = on_sched_state;
    sp.on_state_user = svc;
    if (p->on_warm) {
        sp.on_warm = on_sched_warm;
        sp.on_warm_user = svc;
    }
    sp.warmup = p->warmup;
    sp.warm_interval_s = p->warm_interval_s;
    sp.warm_threshold = p->warm_threshold;
    sp.warm_state_path = p->warm_state_path;
    sp.fb_weights = (sched_fb_weights){p->fallback_weights[0], p->fallback_weights[1], p->fallback_weights[2]};
    sp.fb_min_score = p->fallback_min_score;
    sp.emb_cache_bytes = p->embedding_cache_bytes;
    if (p->quantum_ms > 0) sp.quantum_ms = p->quantum_ms;
    if (p->quantum_loads > 0) sp.quantum_loads = p->quantum_loads;
    if (p->turn_drain_ms > 0) sp.turn_drain_ms = p->turn_drain_ms;
    if (p->arb_chunk_tokens > 0) sp.arb_chunk_tokens = p->arb_chunk_tokens;
    if (p->arb_aging_ms > 0) sp.arb_aging_ms = p->arb_aging_ms;
    /* The path is copied by the scheduler: ours is the caller's until now. */
    svc->p.warm_state_path = NULL;
    if ((st = sched_create(&sp, &svc->s)) != VKI_OK) goto fail;
    if (pthread_create(&svc->thread, NULL, dispatcher_main, svc) != 0) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_service_create: cannot start the dispatcher thread");
        goto fail;
    }
    svc->thread_started = true;
    *out = svc;
    return VKI_OK;
fail:
    sched_destroy(svc->s);
    pthread_cond_destroy(&svc->cv);
    pthread_mutex_destroy(&svc->mu);
    free(svc);
    return st;
}

/* Grows the fallback counters to the scheduler's model count, keeping them. */
static bool fb_grow(vki_service *svc)
{
    const int32_t n = sched_n_models(svc->s), o = svc->n_fb;
    if (n <= o) return true;
    _Atomic uint64_t *c = calloc((size_t)n * (size_t)n * VKI_FALLBACK_N_REASONS, sizeof *c);
    if (!c) return false;
    for (int32_t f = 0; f < o; f++)
        for (int32_t t = 0; t < o; t++)
            for (int r = 0; r < VKI_FALLBACK_N_REASONS; r++)
                atomic_store(&c[((size_t)f * (size_t)n + (size_t)t) * VKI_FALLBACK_N_REASONS + (size_t)r],
                             fb_get(svc, f, t, r));
    free(svc->fb_count);
    svc->fb_count = c;
    svc->n_fb = n;
    return true;
}

vki_status svc_add_sched_model(vki_service *svc, const sched_model_params *mp)
{
    VKI_TRY(sched_add_model(svc->s, mp));
    if (!fb_grow(svc)) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_service_add_model: out of memory");
    return VKI_OK;
}

/* AUTO: from the file's architecture, as the config always did. A file
 * that cannot be opened counts as chat: its load fails with the reason. */
static sched_kind detect_kind(const char *path)
{
    vki_model_file *f = NULL;
    if (vki_file_open(path, &f) != VKI_OK) {
        vki_clear_error();
        return SCHED_KIND_CHAT;
    }
    sched_kind k = mdl_file_is_embedding(f) ? SCHED_KIND_EMBEDDING : SCHED_KIND_CHAT;
    vki_file_close(f);
    return k;
}

vki_status vki_service_add_model(vki_service *svc, const vki_service_model_params *p)
{
    if (!svc || !p) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: NULL argument");
    if (!p->id || !p->id[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: the model has no id");
    if (!p->path || !p->path[0])
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model '%s' has no path", p->id);
    if (p->kind < VKI_MODEL_KIND_AUTO || p->kind > VKI_MODEL_KIND_EMBEDDING)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model '%s': kind %d is none of "
                        "VKI_MODEL_KIND_*", p->id, (int)p->kind);
    if (p->n_compatible < 0 || (p->n_compatible > 0 && (!p->compatible_ids || !p->compatible_scores)))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model '%s': n_compatible %d without "
                        "compatible_ids and compatible_scores", p->id, p->n_compatible);
    if (sched_find(svc->s, p->id) >= 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model id '%s' is used twice", p->id);
    sched_model_params mp = {.id = p->id, .path = p->path, .mp = p->model, .pin = p->pin,
                             .fallback_cpu = p->fallback_cpu, .on_demand = p->on_demand,
                             .no_prefix_reuse = p->no_prefix_reuse};
    mp.kind = p->kind == VKI_MODEL_KIND_AUTO        ? detect_kind(p->path)
              : p->kind == VKI_MODEL_KIND_EMBEDDING ? SCHED_KIND_EMBEDDING
                                                    : SCHED_KIND_CHAT;
    mp.mp.progress = NULL;
    mp.mp.n_seq_max = mp.kind == SCHED_KIND_CHAT ? (p->model.n_seq_max ? p->model.n_seq_max : 4) : 1;
    mp.has_keep_alive = p->keep_alive_ms >= 0;
    mp.keep_alive_ms = mp.has_keep_alive ? p->keep_alive_ms : 0;
    mp.fb = (sched_fb_params){.chain = p->fallback, .auto_candidates = p->fallback_auto,
                              .caps = p->capabilities, .languages = p->languages,
                              .compat_ids = p->compatible_ids, .compat = p->compatible_scores,
                              .n_compat = p->n_compatible,
                              .breaker = {p->breaker_failures, p->breaker_window_ms, p->breaker_recovery_ms}};
    return svc_add_sched_model(svc, &mp);
}

void vki_service_destroy(vki_service *svc)
{
    if (!svc) return;
    /* Cancel everything: each job's request ends and notifies, and the
     * dispatcher ends the job (on_done) before it is told to stop. */
    pthread_mutex_lock(&svc->mu);
    svc->shutting = true;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    sched_shutdown(svc->s);
    pthread_mutex_lock(&svc->mu);
    while (svc->n_live > 0) pthread_cond_wait(&svc->cv, &svc->mu);
    svc->stop = true;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    if (svc->thread_started) pthread_join(svc->thread, NULL);
    sched_destroy(svc->s);
    for (svc_state_event *ev = svc->events; ev;) {
        svc_state_event *next = ev->next;
        free(ev);
        ev = next;
    }
    free(svc->fb_count);
    pthread_cond_destroy(&svc->cv);
    pthread_mutex_destroy(&svc->mu);
    free(svc);
}
