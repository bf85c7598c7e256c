/*
 * sched_warm.c: warm-up for the scheduler. Every submitted request and every
 * load is recorded in the usage history (warmup.c); a thread runs the
 * planner every warm_interval_s and loads ahead the models it expects to be
 * asked for in the next interval, after asking the idle, colder residents
 * the planner chose to make room. Each decision goes to the on_warm hook
 * with its reason. The history is read at start and written after each
 * tick that saw new data, and at shutdown, so habits survive restarts.
 * The wall clock is sched_params.clock_s, injectable for tests.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sched/sched_internal.h"
#include "engine/sched/warmup.h"
#include "error.h"
#include "util.h"

/* How long the planner waits for the residents it evicts to unload. */
#define WARM_EVICT_WAIT_MS 10000.0

static double wall_s(const scheduler *s)
{
    if (s->p.clock_s) return s->p.clock_s(s->p.clock_user);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void sched_warm_init(scheduler *s)
{
    warm_params wp = warm_default_params();
    if (s->p.warm_threshold > 0) wp.threshold = s->p.warm_threshold;
    warm_init(&s->warm, &wp);
    pthread_mutex_init(&s->warm_mu, NULL);
    sched_cond_init(&s->warm_cv);
    if (!s->warm_path) return;
    vki_status st = warm_load(&s->warm, s->warm_path);
    if (st != VKI_OK && st != VKI_ERR_NOT_FOUND)
        vki_warn("warm-up: %s; starting with an empty history (the file is replaced at the next save)",
                 vki_last_error());
}

void sched_warm_note_request(sched_model *m)
{
    scheduler *s = m->s;
    double t = wall_s(s);
    pthread_mutex_lock(&s->warm_mu);
    if (warm_record_request(&s->warm, m->id, t) == VKI_OK) s->warm_dirty = true;
    pthread_mutex_unlock(&s->warm_mu);
}

void sched_warm_note_load(sched_model *m, double load_ms)
{
    scheduler *s = m->s;
    pthread_mutex_lock(&s->warm_mu);
    if (warm_record_load(&s->warm, m->id, load_ms) == VKI_OK) s->warm_dirty = true;
    pthread_mutex_unlock(&s->warm_mu);
}

static void tell(const scheduler *s, const char *id, const warm_decision *d)
{
    if (!s->p.on_warm) return;
    sched_warm_event ev = {.model = id, .action = d->action == WARM_PRELOAD ? "preload" : "skip", .p = d->pred.p,
                           .reason = d->reason};
    s->p.on_warm(&ev, s->p.on_warm_user);
}

/* Asks the chosen residents to unload and waits (bounded) until need
 * bytes are free. False when they did not make room (one took a request). */
static bool make_room(scheduler *s, sched_model *const *ms, const int32_t *victims, int32_t n, uint64_t need)
{
    for (int32_t e = 0; e < n; e++) {
        sched_model *o = ms[victims[e]];
        pthread_mutex_lock(&o->mu);
        bool idle = !o->n_queued[0] && !o->n_queued[1] && !o->n_queued[2] && !o->n_active;
        if (idle && !o->pin) {
            o->evict = true;
            pthread_cond_broadcast(&o->cv);
        }
        pthread_mutex_unlock(&o->mu);
    }
    double until = vki_time_ms() + WARM_EVICT_WAIT_MS;
    pthread_mutex_lock(&s->res_mu);
    bool ok;
    while (!(ok = sched_resid_used(s) + need <= s->budget) && vki_time_ms() < until && !s->warm_stop)
        sched_cond_wait_until(&s->res_cv, &s->res_mu, VKI_MIN(until, vki_time_ms() + 100));
    pthread_mutex_unlock(&s->res_mu);
    return ok;
}

vki_status sched_warm_tick(scheduler *s)
{
    if (!s) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_warm_tick: no scheduler");
    /* res_mu guards the model list while models are added (this runs on
     * its own thread), and comes before the models' mu in the lock order. */
    pthread_mutex_lock(&s->res_mu);
    const int32_t n = s->n_models;
    warm_cand *c = n ? calloc((size_t)n, sizeof *c) : NULL;
    warm_decision *d = n ? calloc((size_t)n, sizeof *d) : NULL;
    sched_model **ms = n ? malloc((size_t)n * sizeof *ms) : NULL;
    if (!n || !c || !d || !ms) {
        pthread_mutex_unlock(&s->res_mu);
        free(c), free(d), free(ms);
        return n ? vki_fail(VKI_ERR_OUT_OF_MEMORY, "warm-up: out of memory for the plan") : VKI_OK;
    }
    memcpy(ms, s->models, (size_t)n * sizeof *ms);
    uint64_t used = sched_resid_used(s);
    for (int32_t i = 0; i < n; i++) {
        sched_model *m = ms[i];
        pthread_mutex_lock(&m->mu);
        bool queued = m->n_queued[0] || m->n_queued[1] || m->n_queued[2];
        c[i] = (warm_cand){.id = m->id,
                           .resident = sched_state_resident(m->state) || m->state == SCHED_LOADING,
                           .busy = queued || m->n_active > 0,
                           .pinned = m->pin,
                           /* a keep_alive of 0 would unload it at once */
                           .loadable = m->can_queue && m->state != SCHED_FAILED && m->swap == SCHED_SWAP_NONE &&
                                       !atomic_load(&m->removing) &&
                                       !(m->has_keep_alive && m->keep_alive_ms <= 0),
                           .bytes = m->gpu_bytes ? m->gpu_bytes : m->shape.est_bytes};
        /* CPU-resident models hold no device bytes: they never block a load. */
        if (m->state == SCHED_RESIDENT_CPU) c[i].bytes = 0;
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_unlock(&s->res_mu);
    const double t = wall_s(s);
    const double interval = s->p.warm_interval_s > 0 ? s->p.warm_interval_s : 300;
    pthread_mutex_lock(&s->warm_mu);
    /* Look one interval ahead plus the time the slowest load takes, so a
     * model is ready before its hour starts, not after. */
    double lead = 0;
    for (int32_t i = 0; i < n; i++) {
        warm_model *wm = warm_model_get(&s->warm, ms[i]->id);
        if (wm) lead = VKI_MAX(lead, 2 * wm->load_ms / 1e3);
    }
    warm_plan(&s->warm, c, n, s->budget, used, t, interval + lead + 60, d);
    pthread_mutex_unlock(&s->warm_mu);

    for (int32_t i = 0; i < n; i++) {
        if (d[i].action == WARM_NONE) continue;
        tell(s, c[i].id, &d[i]);
        if (d[i].action != WARM_PRELOAD) continue;
        sched_model *m = ms[i];
        if (d[i].n_evict && !make_room(s, ms, d[i].evict, d[i].n_evict, c[i].bytes)) {
            warm_decision late = d[i];
            late.action = WARM_SKIP;
            snprintf(late.reason, sizeof late.reason, "the residents chosen to make room did not unload in %.0f s",
                     WARM_EVICT_WAIT_MS / 1e3);
            tell(s, c[i].id, &late);
            continue;
        }
        pthread_mutex_lock(&m->mu);
        if (m->state == SCHED_UNLOADED) {
            m->preload = true;
            pthread_cond_broadcast(&m->cv);
        }
        pthread_mutex_unlock(&m->mu);
    }
    free(c), free(d), free(ms);
    return VKI_OK;
}

static void save(scheduler *s)
{
    pthread_mutex_lock(&s->warm_mu);
    if (s->warm_path && s->warm_dirty) {
        if (warm_save(&s->warm, s->warm_path) == VKI_OK) s->warm_dirty = false;
        else vki_warn("warm-up: %s", vki_last_error());
    }
    pthread_mutex_unlock(&s->warm_mu);
}

static void *warm_thread(void *arg)
{
    scheduler *s = arg;
    const double period_ms = (s->p.warm_interval_s > 0 ? s->p.warm_interval_s : 300) * 1e3;
    /* The first plan waits for the models to be added and their headers
     * read (a few seconds at most), not a whole interval. */
    double until = vki_time_ms() + VKI_MIN(period_ms, 5000.0);
    pthread_mutex_lock(&s->warm_mu);
    for (;;) {
        while (!s->warm_stop && vki_time_ms() < until) sched_cond_wait_until(&s->warm_cv, &s->warm_mu, until);
        if (s->warm_stop) break;
        pthread_mutex_unlock(&s->warm_mu);
        sched_warm_tick(s);
        save(s);
        pthread_mutex_lock(&s->warm_mu);
        until = vki_time_ms() + period_ms;
    }
    pthread_mutex_unlock(&s->warm_mu);
    return NULL;
}

void sched_warm_start(scheduler *s)
{
    if (!s->p.warmup || s->warm_started) return;
    if (pthread_create(&s->warm_thread, NULL, warm_thread, s) == 0) s->warm_started = true;
    else vki_warn("warm-up: could not start its thread; models load on demand only");
}

void sched_warm_stop(scheduler *s)
{
    pthread_mutex_lock(&s->warm_mu);
    s->warm_stop = true;
    pthread_cond_broadcast(&s->warm_cv);
    pthread_mutex_unlock(&s->warm_mu);
    if (s->warm_started) pthread_join(s->warm_thread, NULL);
    s->warm_started = false;
    save(s);
}

void sched_warm_free(scheduler *s)
{
    warm_free(&s->warm);
    free(s->warm_path);
    s->warm_path = NULL;
    pthread_mutex_destroy(&s->warm_mu);
    pthread_cond_destroy(&s->warm_cv);
}
