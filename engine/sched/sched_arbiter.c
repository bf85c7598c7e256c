/*
 * sched_arbiter.c: one order of work per device. Every model has its own
 * thread, so without this two models on one device would run their steps
 * at once and an interactive token would share the device with a batch of
 * embeddings. Each decode step, prompt chunk and embedding chunk asks the
 * device's arbiter first; the arbiter grants the device to one step at a
 * time, most urgent class first, then the one that has waited longest.
 * Starvation is bounded by aging: a waiter rises one class per aging_ms.
 * Steps are short because the workers cut prompts and embedding batches
 * into chunks (arb_chunk_tokens), so an interactive step waits at most one
 * chunk of another model's work.
 * The hold: an interactive stream's model samples between two steps and
 * is not waiting for that moment; without the hold a batch chunk would
 * take every such gap and each interactive token would wait one chunk.
 * After a step, lower classes wait up to hold_ms for the same model to ask
 * again (aging still lets them through).
 * Must not: be held while a lock of the scheduler is taken (it is the
 * innermost wait: workers enter it with no lock held).
 */
#include <math.h>
#include <stdlib.h>

#include "engine/sched/sched_internal.h"
#include "util.h"

struct sched_arb_waiter {
    sched_prio        prio;
    const void       *owner;
    double            t_wait;
    double            t_wake; /* when its timed wait ends by itself */
    sched_arb_waiter *next;
};

void sched_arb_init(sched_arb *a, double aging_ms, double hold_ms)
{
    pthread_mutex_init(&a->mu, NULL);
    sched_cond_init(&a->cv);
    a->held = false;
    a->waiters = NULL;
    a->last_owner = NULL;
    a->t_release = 0;
    a->aging_ms = aging_ms > 0 ? aging_ms : 500.0;
    a->hold_ms = hold_ms;
}

void sched_arb_deinit(sched_arb *a)
{
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
}

/* The class a waiter counts as now: lower is more urgent. */
static double rank(const sched_arb *a, const sched_arb_waiter *w, double now)
{
    return (double)w->prio - (now - w->t_wait) / a->aging_ms;
}

/* Whether w goes before every other waiter (a->mu held). */
static bool first_in_order(const sched_arb *a, const sched_arb_waiter *w, double now)
{
    const double rw = rank(a, w, now);
    for (const sched_arb_waiter *o = a->waiters; o; o = o->next) {
        if (o == w) continue;
        const double ro = rank(a, o, now);
        if (ro < rw || (ro == rw && o->t_wait < w->t_wait)) return false;
    }
    return true;
}

/* How long w must still leave the device to the model that just stepped
 * (a->mu held); 0 = not at all. */
static double hold_left(const sched_arb *a, const sched_arb_waiter *w, double now)
{
    if (a->hold_ms <= 0 || !a->last_owner || a->last_owner == w->owner) return 0;
    if (rank(a, w, now) <= (double)a->last_prio) return 0; /* as urgent, or aged enough */
    const double left = a->t_release + a->hold_ms - now;
    return left > 0 ? left : 0;
}

double sched_arb_acquire(sched_arb *a, sched_prio prio, const void *owner)
{
    const double t0 = vki_time_ms();
    sched_arb_waiter w = {.prio = prio, .owner = owner, .t_wait = t0};
    pthread_mutex_lock(&a->mu);
    w.next = a->waiters;
    a->waiters = &w;
    for (;;) {
        const double now = vki_time_ms();
        const double left = a->held ? 0 : hold_left(a, &w, now);
        if (!a->held && first_in_order(a, &w, now)) {
            if (left <= 0) break;
            w.t_wake = now + left;
        } else {
            /* Aging changes the order with time alone: look again now and
             * then, and at the hold's end at the latest. */
            w.t_wake = now + VKI_MAX(1.0, a->aging_ms / 4);
            if (left > 0 && now + left < w.t_wake) w.t_wake = now + left;
        }
        sched_cond_wait_until(&a->cv, &a->mu, w.t_wake);
    }
    sched_arb_waiter **link = &a->waiters;
    while (*link != &w) link = &(*link)->next;
    *link = w.next;
    a->held = true;
    pthread_mutex_unlock(&a->mu);
    return vki_time_ms() - t0;
}

void sched_arb_release(sched_arb *a, sched_prio prio, const void *owner)
{
    pthread_mutex_lock(&a->mu);
    a->held = false;
    a->last_prio = prio;
    a->last_owner = owner;
    const double now = a->t_release = vki_time_ms();
    /* Only when some waiter would otherwise sleep past the moment it may go.
     * While an interactive stream steps, the waiters the hold keeps out
     * already wake at its end by themselves; woken at each of its steps
     * they would only sleep again, taking the lock and a core from it
     * between its tokens. */
    bool wake = false;
    for (const sched_arb_waiter *w = a->waiters; w && !wake; w = w->next)
        wake = w->t_wake > now + hold_left(a, w, now);
    if (wake) pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void sched_arb_enter(sched_model *m, sched_prio prio)
{
    const double waited = sched_arb_acquire(m->arb, prio, m);
    pthread_mutex_lock(&m->st_mu);
    m->st.arb_grants++;
    m->st.arb_wait_ms += waited;
    pthread_mutex_unlock(&m->st_mu);
}

void sched_arb_leave(sched_model *m, sched_prio prio) { sched_arb_release(m->arb, prio, m); }
