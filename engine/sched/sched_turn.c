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
 * with w = 4, 2, 1 for interactive, normal, batch, and never less than
 * quantum_loads x the larger load: a swap costs a load each way, so a turn
 * is long enough to amortise it, and a batch holder gives way sooner to
 * interactive work than the other way round. Load times are the loads
 * alone (sched_resid_load), not the wait for the room before them: that
 * wait is the other model's turn, and counting it made each turn set the
 * next one's length (3-25 s "loads" of 0.03-0.5 s ones, 80 s turns). The
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

/* Turns and their ETAs go by the loads' moving average: one slow load on a
 * busy box (20 ms, then 1.2 s) would otherwise stretch the next turns 4x. */
static double load_ms_of(const sched_model *m) { return m->load_ema_ms > 0 ? m->load_ema_ms : SCHED_DEFAULT_LOAD_MS; }

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
    /* The classes may shorten a turn, but not below quantum_loads loads:
     * the swap is still amortised (quantum_ms alone may be set lower). */
    const double floor_ms = s->p.quantum_loads * VKI_MAX(load_h, load_w);
    return VKI_MAX(floor_ms, q0 * class_weight((double)h_cls) / class_weight(w_eff));
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

/* What the ETA needs of a model, read under its mu. */
typedef struct turn_view {
    bool       loaded;   /* resident with its model in memory             */
    bool       leaving;  /* its turn is over: it drains and unloads        */
    bool       loading;  /* state loading (waiting for room, or loading)   */
    sched_prio cls;      /* most urgent class queued or running            */
    double     oldest;   /* submit time of its oldest queued request (0)    */
    double     load_ms, t_resident, t_yield, svc_ms, drain_ema_ms;
} turn_view;

static turn_view view_of(sched_model *o)
{
    turn_view v;
    pthread_mutex_lock(&o->mu);
    v.loaded = sched_state_resident(o->state) && o->md;
    /* (an eviction counts: its worker may already have let go) */
    v.leaving = v.loaded && (o->yield || o->evict);
    v.loading = o->state == SCHED_LOADING;
    v.cls = sched_turn_urgent(o, &v.oldest);
    v.load_ms = load_ms_of(o);
    v.t_resident = o->t_resident;
    v.t_yield = o->yield ? o->t_yield : 0;
    v.drain_ema_ms = o->drain_ema_ms;
    pthread_mutex_unlock(&o->mu);
    pthread_mutex_lock(&o->st_mu);
    v.svc_ms = o->st.service_ema_ms > 0 ? o->st.service_ema_ms : SCHED_DEFAULT_SERVICE_MS;
    pthread_mutex_unlock(&o->st_mu);
    return v;
}

/* How long a model that yields goes on draining: as its last drains took
 * (measured), else what runs gets up to turn_drain_ms and a request rarely
 * needs more than two service times. */
static double drain_ms(const scheduler *s, const turn_view *v, double now)
{
    const double d = v->drain_ema_ms > 0 ? v->drain_ema_ms : VKI_MIN(2 * v->svc_ms, s->p.turn_drain_ms);
    return v->t_yield > 0 ? VKI_MAX(0.0, v->t_yield + d - now) : d;
}

/* When a turn that started at start ends: sched_turn_ask asks the holder to
 * yield once start + quantum_ms(...) has passed, and that quantum shrinks
 * as the waiter's oldest request (submitted at w_oldest) ages, so the end is
 * where the two meet (found by bisection: the first falls, the second rises). */
static double turn_end(const scheduler *s, double start, double load_h, double load_w, sched_prio h_cls,
                       sched_prio w_cls, double w_oldest)
{
    double lo = start, hi = start + quantum_ms(s, load_h, load_w, h_cls, w_cls, VKI_MAX(0.0, start - w_oldest));
    for (int k = 0; k < 24 && hi - lo > 1.0; k++) {
        const double t = (lo + hi) / 2;
        if (t - start >= quantum_ms(s, load_h, load_w, h_cls, w_cls, VKI_MAX(0.0, t - w_oldest))) hi = t;
        else lo = t;
    }
    return hi;
}

/* Whether o holds room (its turn comes before m's) or waits for room ahead
 * of m (sched_turn_defer lets the oldest go first) and cannot load beside
 * it; need is m's (res_mu held). */
static bool turn_before(const sched_model *m, const sched_model *o, uint64_t need, bool *holder)
{
    if (o == m || o->pin) return false;
    *holder = o->gpu_bytes > 0;
    return *holder || (o->want_since > 0 && (m->want_since <= 0 || o->want_since < m->want_since) &&
                       o->want_bytes + need > m->s->budget);
}

/*
 * The device's timeline as m sees it. Models that hold room m needs end
 * their turns (remaining quantum against m) and drain, in parallel; models
 * that wait for room ahead of m (sched_turn_defer lets the oldest go first)
 * and cannot share the device with m then each load, take a turn and drain,
 * one after the other; then m loads. A resident m keeps the device until
 * its own turn against the first such waiter ends: a request queued before
 * that starts in this turn (at the end what was queued before still
 * starts); one that would start after it (start_ms, the queue's part of its
 * wait) or after the yield waits for the others' turns. That last case was
 * the blind spot: a model between its yield and the waiter's load (its
 * unload in progress) was answered with its own load time alone.
 */
double sched_turn_eta_ms(sched_model *m, double start_ms, bool *for_turn)
{
    *for_turn = false;
    scheduler *s = m->s;
    const double now = vki_time_ms();
    const turn_view me = view_of(m);
    if (!sched_resid_on_gpu(m)) return me.loaded ? 0 : me.load_ms;
    /* (the request being queued is m's oldest when nothing else is) */
    const double my_oldest = me.oldest > 0 ? me.oldest : now;
    pthread_mutex_lock(&s->res_mu);
    const uint64_t need = m->shape.est_bytes;
    if (me.loading && m->gpu_bytes > 0) {
        pthread_mutex_unlock(&s->res_mu);
        return me.load_ms; /* its room is reserved: it is loading now */
    }
    const bool blocked = sched_resid_used(s) - m->gpu_bytes - m->swap_gpu_bytes + need > s->budget;
    /* First the holders' turns (they end together) and m's own turn's end. */
    double hold = 0, my_end = INFINITY;
    bool waiters = false;
    for (int32_t i = 0; i < s->n_models; i++) {
        sched_model *o = s->models[i];
        bool holder;
        if (!turn_before(m, o, need, &holder)) continue;
        const turn_view v = view_of(o);
        if (holder && !me.loaded && blocked) {
            /* (o loading on its reservation: its load, then its whole turn) */
            const double end = v.loaded ? turn_end(s, v.t_resident, v.load_ms, me.load_ms, v.cls, me.cls, my_oldest)
                                        : turn_end(s, now + v.load_ms, v.load_ms, me.load_ms, v.cls, me.cls, my_oldest);
            const double w = (v.leaving ? 0 : VKI_MAX(0.0, end - now)) + drain_ms(s, &v, now);
            if (w > hold) hold = w;
        } else if (!holder) {
            waiters = true;
            if (me.loaded) { /* m's turn against o, as sched_turn_ask times it for o */
                const double end = turn_end(s, me.t_resident, me.load_ms, v.load_ms, me.cls, v.cls,
                                            v.oldest > 0 ? v.oldest : now);
                my_end = VKI_MIN(my_end, end);
            }
        }
    }
    if (me.loaded && !me.leaving && (!waiters || now + start_ms < my_end)) {
        pthread_mutex_unlock(&s->res_mu);
        return 0;
    }
    /* m leaves the device first (a resident m), the holders end, then each
     * waiter ahead loads, has its turn and drains, one after the other. */
    const double out = me.loaded ? drain_ms(s, &me, now) : 0;
    double t = now + out + hold;
    for (int32_t i = 0; i < s->n_models; i++) {
        sched_model *o = s->models[i];
        bool holder;
        if (!turn_before(m, o, need, &holder) || holder) continue;
        const turn_view v = view_of(o);
        t = turn_end(s, t + v.load_ms, v.load_ms, me.load_ms, v.cls, me.cls, my_oldest) + drain_ms(s, &v, now);
    }
    pthread_mutex_unlock(&s->res_mu);
    *for_turn = t > now;
    return t - now + me.load_ms;
}
