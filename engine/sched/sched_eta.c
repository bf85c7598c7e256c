/*
 * sched_eta.c: how long a request submitted now would take to end on a
 * model, from what the scheduler measured: the server falls back when this
 * passes the request's deadline. Kept to the one estimate; the queue's
 * position and a finer ETA can grow here.
 */
#include <math.h>

#include "engine/sched/sched_internal.h"
#include "util.h"

double sched_eta_ms(scheduler *s, int32_t i)
{
    if (!s || i < 0 || i >= s->n_models) return 0;
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    const int32_t ahead = m->n_queued[0] + m->n_queued[1] + m->n_queued[2] + m->n_active;
    const int32_t slots = VKI_MAX(m->n_slots, 1);
    const bool resident = sched_state_resident(m->state);
    const double load_ms = m->load_ms;
    pthread_mutex_lock(&m->st_mu);
    const double svc = m->st.service_ema_ms;
    pthread_mutex_unlock(&m->st_mu);
    pthread_mutex_unlock(&m->mu);
    if (svc <= 0) return 0;
    /* The requests ahead and this one go through the slots in rounds. */
    double rounds = ceil((double)(ahead + 1) / slots);
    /* Waiting for another model's turn on the device (sched_turn.c): that
     * wait, its own load included, instead of the load alone. */
    bool for_turn;
    const double device_ms = sched_turn_eta_ms(m, (rounds - 1) * svc, &for_turn);
    return rounds * svc + (for_turn ? device_ms : resident ? 0 : load_ms);
}
