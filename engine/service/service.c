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
bool vki_model_state_resident(vki_model_state s) { return sched_state_resident((sched_state)s); }

bool vki_priority_from_name(const char *name, vki_priority *out)
{
    sched_prio p;
    if (!out || !sched_prio_parse(name, &p)) return false;
    *out = (vki_priority)p;
    return true;
}

bool vki_model_kind_from_name(const char *name, vki_model_kind *out)
{
    static const char *const names[] = {"auto", "chat", "embedding"};
    for (int k = 0; name && out && k < 3; k++)
        if (!strcmp(name, names[k])) {
            *out = (vki_model_kind)k;
            return true;
        }
    return false;
}
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
        const double due = parked_deadline(svc), route_due = svc_route_due(svc);
        if (svc->parked && (svc->events || svc->shutting || (due > 0 && vki_time_ms() >= due))) unpark_all(svc);
        const bool route_now = route_due > 0 && vki_time_ms() >= route_due;
        if (!svc->ready && !svc->events && !route_now) {
            if (svc->stop) break;
            const double until = due > 0 && route_due > 0 ? VKI_MIN(due, route_due) : due > 0 ? due : route_due;
            if (until > 0) cond_wait_until(&svc->cv, &svc->mu, until);
            else pthread_cond_wait(&svc->cv, &svc->mu);
            continue;
        }
        svc_state_event *ev = svc->events;
        svc->events = NULL;
        svc->events_tail = &svc->events;
        vki_job *j = svc->ready;
        svc->ready = NULL;
        svc->ready_tail = &svc->ready;
        pthread_mutex_unlock(&svc->mu);
        while (ev) {
            svc_state_event *next = ev->next;
            if (svc->p.on_state) svc->p.on_state(&ev->info, svc->p.on_state_user);
            free(ev);
            ev = next;
        }
        while (j) {
            /* A job leaves the list (queued false: it may be pushed again)
             * only once its successor is read: a push relinks next. */
            pthread_mutex_lock(&svc->mu);
            vki_job *next = j->next;
            j->queued = false;
            pthread_mutex_unlock(&svc->mu);
            svc_job_process(j);
            svc_job_unref(j);
            j = next;
        }
        svc_route_tick(svc);
        pthread_mutex_lock(&svc->mu);
    }
    pthread_mutex_unlock(&svc->mu);
    return NULL;
}


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
    /* [from][to][reason] for every index the scheduler can hand out, so an
     * add while requests run resizes nothing (untouched pages cost nothing). */
    svc->n_fb = SCHED_MAX_MODELS;
    svc->fb_count = calloc((size_t)svc->n_fb * (size_t)svc->n_fb * VKI_FALLBACK_N_REASONS, sizeof *svc->fb_count);
    if (!svc->fb_count) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_service_create: out of memory");
        goto fail;
    }
    if (pthread_create(&svc->thread, NULL, dispatcher_main, svc) != 0) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_service_create: cannot start the dispatcher thread");
        goto fail;
    }
    svc->thread_started = true;
    *out = svc;
    return VKI_OK;
fail:
    free(svc->fb_count);
    sched_destroy(svc->s);
    pthread_cond_destroy(&svc->cv);
    pthread_mutex_destroy(&svc->mu);
    free(svc);
    return st;
}

void vki_service_destroy(vki_service *svc)
{
    if (!svc) return;
    /* Every job ends (on_done) before the dispatcher is told to stop. */
    vki_service_shutdown(svc);
    pthread_mutex_lock(&svc->mu);
    svc->stop = true;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    if (svc->thread_started) pthread_join(svc->thread, NULL);
    svc_router_free(svc);
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
