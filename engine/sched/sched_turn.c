/*
 * sched_turn.c: turns on the device. When GPU models that cannot fit
 * together all have work, eviction alone (idle models only) would leave
 * the resident one serving for ever and the other's requests refused.
 * Instead the waiting model's requests stay queued and the resident one
 * keeps the device for a turn, then stops admitting, finishes what it runs
 * and unloads; the waiter loads and gets its own turn, and the model that
 * yielded queues behind it (sched_turn_defer). A turn lasts
 *
 *     quantum = max(quantum_ms, quantum_loads x the larger load time)
 *               x w(holder's most urgent class) / w(waiter's class)
 *
 * with w = 4, 2, 1 for interactive, normal, batch: a swap costs a load
 * each way, so a turn is long enough to amortise it, and a batch holder
 * gives way sooner to interactive work than the other way round. The
 * waiter's class rises one level per quantum its oldest request has
 * waited, so a batch model waiting on an interactive one still gets turns.
 * Pinned models never yield; a model with fallback: [cpu] goes to the CPU
 * rather than wait (sched_resid_load).
 * Locks: called with res_mu held; takes each other model's mu briefly.
 */
#include <math.h>
#include <stdlib.h>

#include "engine/sched/sched_internal.h"
#include "util.h"

/* Before a model was ever loaded its load is assumed to take this long. */
#define SCHED_DEFAULT_LOAD_MS 1000.0
/* A queued request is assumed to take this long before any was measured. */
#define SCHED_DEFAULT_SERVICE_MS 1000.0
/* A model between two requests of steady traffic is not idle: it keeps its
 * turn unless it has been idle this long. */
#define SCHED_IDLE_GRACE_MS 250.0

static double class_weight(double cls) { return exp2(2.0 - cls); }

sched_prio sched_turn_urgent(const sched_model *m, double *oldest)
{
    sched_prio best = SCHED_PRIO_BATCH;
    double t = 0;
    for (int p = SCHED_N_PRIO - 1; p >= 0; p--)
        if (m->head[p]) {
            best = (sched_prio)p;
            if (t == 0 || m->head[p]->t_submit < t) t = m->head[p]->t_submit;
        }
    if (m->n_active > 0 && m->run_prio < best) best = m->run_prio;
    if (oldest) *oldest = t;
    return best;
}

static double load_ms_of(const sched_model *m) { return m->load_ms > 0 ? m->load_ms : SCHED_DEFAULT_LOAD_MS; }

bool sched_turn_idle(const sched_model *o, double now)
{
    const scheduler *s = o->s;
    const double q0 = VKI_MAX(s->p.quantum_ms, s->p.quantum_loads * load_ms_of(o));
    return now - o->t_used >= SCHED_IDLE_GRACE_MS || now >= o->t_resident + q0;
}

/* How long holder h keeps the device against waiter w (both mu free; reads
 * fields that are only advisory here). */
static double quantum_ms(const scheduler *s, double load_h, double load_w, sched_prio h_cls, sched_prio w_cls,
                         double w_age_ms)
{
    const double q0 = VKI_MAX(s->p.quantum_ms, s->p.quantum_loads * VKI_MAX(load_h, load_w));
    /* The waiter rises a class per quantum its oldest request waited. */
    const double w_eff = VKI_MAX(0.0, (double)w_cls - w_age_ms / q0);
    return q0 * class_weight((double)h_cls) / class_weight(w_eff);
}

/* One model that could give room, as the turn sees it. */
typedef struct turn_cand {
    sched_model *o;
    bool         idle;      /* evict now                                  */
    double       end_ms;    /* busy: when its turn ends                   */
    uint64_t     bytes;
} turn_cand;

static int by_end(const void *a, const void *b)
{
    const turn_cand *x = a, *y = b;
    if (x->idle != y->idle) return x->idle ? -1 : 1;
    return x->end_ms < y->end_ms ? -1 : x->end_ms > y->end_ms;
}

bool sched_turn_ask(sched_model *m, uint64_t deficit, double now, double *wake_ms)
{
    scheduler *s = m->s;
    pthread_mutex_lock(&m->mu);
    double w_oldest;
    const sched_prio w_cls = sched_turn_urgent(m, &w_oldest);
    const double w_load = load_ms_of(m);
    pthread_mutex_unlock(&m->mu);
    const double w_age = w_oldest > 0 ? now - w_oldest : 0;
    turn_cand *c = calloc((size_t)s->n_models, sizeof *c);
    if (!c) return false;
    int32_t n = 0;
    uint64_t avail = 0;
    for (int32_t i = 0; i < s->n_models; i++) {
        sched_model *o = s->models[i];
        if (o == m || !o->gpu_bytes || o->pin) continue;
        pthread_mutex_lock(&o->mu);
        const int32_t queued = o->n_queued[0] + o->n_queued[1] + o->n_queued[2];
        const bool resident = o->state == SCHED_RESIDENT_GPU && o->swap == SCHED_SWAP_NONE;
        /* A model loading on a reservation will serve, then yield in its turn. */
        const bool loading = o->state == SCHED_LOADING && o->swap == SCHED_SWAP_NONE;
        if (resident || loading) {
            const double start = resident ? o->t_resident : now;
            const bool idle = resident && !queued && !o->n_active && sched_turn_idle(o, now);
            const double q = quantum_ms(s, load_ms_of(o), w_load, sched_turn_urgent(o, NULL), w_cls, w_age);
            c[n++] = (turn_cand){.o = o, .idle = idle, .end_ms = start + q, .bytes = o->gpu_bytes};
            avail += o->gpu_bytes;
        }
        pthread_mutex_unlock(&o->mu);
    }
    if (avail < deficit) {
        free(c);
        return false;
    }
    /* Idle ones first, then the turns that end first, until the deficit is covered. */
    qsort(c, (size_t)n, sizeof *c, by_end);
    uint64_t freed = 0;
    double wake = now + 100.0;
    for (int32_t k = 0; k < n && freed < deficit; k++) {
        sched_model *o = c[k].o;
        freed += c[k].bytes;
        pthread_mutex_lock(&o->mu);
        if (c[k].idle) {
            o->evict = true;
        } else if (c[k].end_ms <= now && o->state == SCHED_RESIDENT_GPU) {
            if (!o->yield) o->t_yield = now;
            o->yield = true;
        } else if (c[k].end_ms < wake) {
            wake = c[k].end_ms;
        }
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
    }
    free(c);
    *wake_ms = wake;
    return true;
}

bool sched_turn_defer(const sched_model *m, uint64_t used)
{
    const scheduler *s = m->s;
    const double mine = m->want_since > 0 ? m->want_since : vki_time_ms();
    for (int32_t i = 0; i < s->n_models; i++) {
        const sched_model *o = s->models[i];
        if (o == m || o->want_since <= 0 || o->want_since >= mine) continue;
        if (used + o->want_bytes + m->want_bytes > s->budget && used + o->want_bytes <= s->budget) return true;
    }
    return false;
}

double sched_turn_eta_ms(sched_model *m, bool *for_turn)
{
    *for_turn = false;
    scheduler *s = m->s;
    pthread_mutex_lock(&m->mu);
    /* (an unload in progress has dropped md before the state says so) */
    const bool resident = sched_state_resident(m->state) && m->md, yielding = m->yield;
    const uint64_t need = m->shape.est_bytes;
    double w_oldest;
    const sched_prio w_cls = sched_turn_urgent(m, &w_oldest);
    const double my_load = load_ms_of(m);
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_lock(&m->st_mu);
    const double my_svc = m->st.service_ema_ms > 0 ? m->st.service_ema_ms : SCHED_DEFAULT_SERVICE_MS;
    pthread_mutex_unlock(&m->st_mu);
    if (resident && !yielding) return 0;
    double eta = my_load;
    if (yielding) eta += VKI_MIN(2 * my_svc, s->p.turn_drain_ms); /* it drains first (as below) */
    *for_turn = yielding;
    if (!sched_resid_on_gpu(m)) return eta;
    /* The device is not free for it until the holders' turns end (the
     * longest of them), they drain, and the one taking over has its turn. */
    const double now = vki_time_ms();
    pthread_mutex_lock(&s->res_mu);
    uint64_t used = 0;
    for (int32_t i = 0; i < s->n_models; i++) used += s->models[i]->gpu_bytes + s->models[i]->swap_gpu_bytes;
    double wait = 0;
    for (int32_t i = 0; i < s->n_models && (yielding || used + need > s->budget); i++) {
        sched_model *o = s->models[i];
        if (o == m || o->pin) continue;
        /* The load that will take m's place after m yields, or the holders now. */
        const bool holder = o->gpu_bytes > 0, taker = yielding && o->want_since > 0;
        if (!holder && !taker) continue;
        pthread_mutex_lock(&o->mu);
        const double start = o->state == SCHED_RESIDENT_GPU ? o->t_resident : now;
        const double q = quantum_ms(s, load_ms_of(o), my_load, sched_turn_urgent(o, NULL), w_cls,
                                    w_oldest > 0 ? now - w_oldest : 0);
        const double o_load = taker && !holder ? load_ms_of(o) : 0;
        pthread_mutex_unlock(&o->mu);
        pthread_mutex_lock(&o->st_mu);
        const double o_svc = o->st.service_ema_ms > 0 ? o->st.service_ema_ms : SCHED_DEFAULT_SERVICE_MS;
        pthread_mutex_unlock(&o->st_mu);
        /* Its drain: what runs, and what was queued before the yield (it
         * still starts), until the rest is paused. */
        const double w = o_load + VKI_MAX(0.0, start + q - now) + VKI_MIN(2 * o_svc, s->p.turn_drain_ms);
        if (w > wait) wait = w;
    }
    pthread_mutex_unlock(&s->res_mu);
    *for_turn |= wait > 0;
    return eta + wait;
}
