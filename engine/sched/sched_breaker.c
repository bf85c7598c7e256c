/*
 * sched_breaker.c: each model's circuit breaker. Closed, it counts failures
 * (loads that fail for a device or internal reason, failed decode steps or
 * embedding batches) in a sliding window; at `failures` within `window_ms`
 * it opens: what is queued ends at once, the model unloads, and requests
 * are refused (DEVICE_LOST with a retry time) for `recovery_ms`. Then it is
 * half-open: one probe request goes through and reloads the model; its
 * success closes the breaker, its failure declares the model failed (it was
 * reloaded once and still fails). Client errors, cancellations and
 * deadlines are not failures. The state machine takes the time from its
 * caller, so tests drive it with their own clock.
 */
#include <stdio.h>
#include <string.h>

#include "engine/sched/sched_internal.h"
#include "error.h"
#include "util.h"

static const char *const breaker_names[] = {"closed", "open", "half-open"};

const char *sched_breaker_state_name(sched_breaker_state b)
{
    return (unsigned)b < VKI_COUNT(breaker_names) ? breaker_names[b] : "?";
}

/* ===== The state machine ================================================== */

void sched_breaker_init(sched_breaker *b, const sched_breaker_params *p)
{
    memset(b, 0, sizeof *b);
    if (p) b->p = *p;
    if (b->p.failures <= 0) b->p.failures = 5;
    if (b->p.failures > SCHED_BREAKER_MAX_FAILURES) b->p.failures = SCHED_BREAKER_MAX_FAILURES;
    if (b->p.window_ms <= 0) b->p.window_ms = 60e3;
    if (b->p.recovery_ms <= 0) b->p.recovery_ms = 30e3;
}

sched_breaker_state sched_breaker_at(sched_breaker *b, double now)
{
    if (b->state == SCHED_BREAKER_OPEN && now >= b->opened_at + b->p.recovery_ms) {
        b->state = SCHED_BREAKER_HALF_OPEN;
        b->probing = false;
    }
    return b->state;
}

int32_t sched_breaker_recent(const sched_breaker *b, double now)
{
    int32_t n = 0;
    for (int32_t k = 0; k < b->n_fail; k++)
        if (now - b->fail_t[k] <= b->p.window_ms) n++;
    return n;
}

bool sched_breaker_admit(sched_breaker *b, double now, bool *probe, double *retry_ms)
{
    *probe = false;
    *retry_ms = 0;
    switch (sched_breaker_at(b, now)) {
    case SCHED_BREAKER_CLOSED: return true;
    case SCHED_BREAKER_OPEN: *retry_ms = b->opened_at + b->p.recovery_ms - now; return false;
    case SCHED_BREAKER_HALF_OPEN:
        if (b->probing) {
            /* The probe reloads the model; a second is about what that takes here. */
            *retry_ms = 1000;
            return false;
        }
        b->probing = *probe = true;
        return true;
    }
    return true;
}

static void open_now(sched_breaker *b, double now)
{
    b->state = SCHED_BREAKER_OPEN;
    b->opened_at = now;
    b->probing = false;
    b->trips++;
}

sched_breaker_verdict sched_breaker_fail(sched_breaker *b, double now)
{
    const int32_t cap = SCHED_BREAKER_MAX_FAILURES;
    b->fail_t[b->head] = now;
    b->head = (b->head + 1) % cap;
    if (b->n_fail < cap) b->n_fail++;
    switch (sched_breaker_at(b, now)) {
    case SCHED_BREAKER_OPEN: return SCHED_BREAKER_KEEP; /* a straggler from before it opened */
    case SCHED_BREAKER_HALF_OPEN:
        /* The probe ran on a reloaded model and failed. */
        open_now(b, now);
        return SCHED_BREAKER_DEAD;
    case SCHED_BREAKER_CLOSED:
        if (sched_breaker_recent(b, now) < b->p.failures) return SCHED_BREAKER_KEEP;
        open_now(b, now);
        if (b->reloaded) return SCHED_BREAKER_DEAD;
        b->reloaded = true;
        return SCHED_BREAKER_TRIP;
    }
    return SCHED_BREAKER_KEEP;
}

void sched_breaker_ok(sched_breaker *b)
{
    if (b->state == SCHED_BREAKER_OPEN) return; /* a request from before it opened */
    if (b->state == SCHED_BREAKER_HALF_OPEN) b->n_fail = b->head = 0;
    b->state = SCHED_BREAKER_CLOSED;
    b->probing = b->reloaded = false;
}

void sched_breaker_probe_end(sched_breaker *b)
{
    if (b->state == SCHED_BREAKER_HALF_OPEN) b->probing = false;
}

/* ===== The model's side =================================================== */

double sched_breaker_clock(const scheduler *s)
{
    return s->p.breaker_clock ? s->p.breaker_clock(s->p.breaker_clock_user) : vki_time_ms();
}

bool sched_breaker_counts(vki_status st)
{
    switch (st) {
    case VKI_OK:
    case VKI_ERR_INVALID_ARGUMENT:
    case VKI_ERR_NOT_FOUND:
    case VKI_ERR_UNSUPPORTED:
    case VKI_ERR_QUEUE_FULL:
    case VKI_ERR_CANCELLED:
    case VKI_ERR_TIMEOUT: return false;
    default: return true;
    }
}

sched_breaker_verdict sched_breaker_record(sched_model *m)
{
    double now = sched_breaker_clock(m->s);
    pthread_mutex_lock(&m->st_mu);
    sched_breaker_verdict v = sched_breaker_fail(&m->brk, now);
    m->st.breaker_failures++;
    pthread_mutex_unlock(&m->st_mu);
    return v;
}

bool sched_breaker_step_failed(sched_model *m, vki_status st, const char *msg, char *why, size_t why_size)
{
    if (!sched_breaker_counts(st)) return false;
    sched_breaker_verdict v = sched_breaker_record(m);
    if (v == SCHED_BREAKER_KEEP) return false;
    pthread_mutex_lock(&m->st_mu);
    const sched_breaker_params bp = m->brk.p;
    pthread_mutex_unlock(&m->st_mu);
    if (v == SCHED_BREAKER_TRIP)
        snprintf(why, why_size, "model '%s' is unavailable: its circuit breaker opened after %d failures within "
                 "%.0f s (last: %s); it reloads after %.0f s", m->id, bp.failures, bp.window_ms / 1e3, msg,
                 bp.recovery_ms / 1e3);
    else
        snprintf(why, why_size, "model '%s' failed: it was reloaded after its circuit breaker opened and failed again "
                 "(%s)", m->id, msg);
    pthread_mutex_lock(&m->mu);
    if (v == SCHED_BREAKER_TRIP) {
        m->brk_unload = true;
    } else {
        m->state = SCHED_FAILED;
        m->fail_status = VKI_ERR_DEVICE_LOST;
        snprintf(m->error, sizeof m->error, "%s", why);
        pthread_cond_broadcast(&m->state_cv);
    }
    sched_request *r;
    while ((r = sched_pop(m))) sched_finish(m, r, VKI_ERR_DEVICE_LOST, why);
    pthread_mutex_unlock(&m->mu);
    if (v == SCHED_BREAKER_DEAD) sched_notify(m);
    return true;
}

bool sched_breaker_test_fail(sched_model *m, bool load)
{
    pthread_mutex_lock(&m->st_mu);
    int32_t *left = load ? &m->test_fail_loads : &m->test_fail_steps;
    bool fail = *left > 0;
    if (fail) --*left;
    pthread_mutex_unlock(&m->st_mu);
    return fail;
}

vki_status sched_breaker_check(sched_model *m, bool *probe, double *retry_s)
{
    double now = sched_breaker_clock(m->s), retry_ms = 0;
    pthread_mutex_lock(&m->st_mu);
    bool ok = sched_breaker_admit(&m->brk, now, probe, &retry_ms);
    const sched_breaker_state bs = m->brk.state;
    pthread_mutex_unlock(&m->st_mu);
    if (ok) return VKI_OK;
    *retry_s = retry_ms / 1e3 > 1 ? retry_ms / 1e3 : 1;
    if (bs == SCHED_BREAKER_OPEN)
        return vki_fail(VKI_ERR_DEVICE_LOST, "model '%s' is unavailable: its circuit breaker is open after repeated "
                        "failures; retry in %.0f s", m->id, *retry_s);
    return vki_fail(VKI_ERR_DEVICE_LOST, "model '%s' is unavailable: its circuit breaker is half-open and a probe "
                    "request is reloading it; retry in %.0f s", m->id, *retry_s);
}

void sched_breaker_request_end(sched_model *m, const sched_request *r, vki_status st)
{
    if (st == VKI_OK) sched_breaker_ok(&m->brk);
    else if (r->probe) sched_breaker_probe_end(&m->brk);
}
