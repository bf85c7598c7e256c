/*
 * sched_embed.c: the embedding worker: dynamic batching. The first request
 * in an empty batch waits up to embed_wait_ms for company, or less when the
 * queued tokens already fill the budget; then every request that fits the
 * budget (most urgent first) goes through one mdl_embed, and each gets its
 * rows back. A request larger than the budget goes alone. Only a request's
 * texts the embedding cache did not have (r->emiss) are embedded; their
 * vectors are stored there after the batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/sched/sched_internal.h"
#include "error.h"
#include "util.h"

/* The submit time of the oldest queued request (model mu held). */
static double oldest_submit(const sched_model *m)
{
    double t = 0;
    for (int p = 0; p < SCHED_N_PRIO; p++)
        if (m->head[p] && (t == 0 || m->head[p]->t_submit < t)) t = m->head[p]->t_submit;
    return t;
}

/* Takes the next batch off the queue into batch[] (model mu held). */
static int32_t take_batch(sched_model *m, int64_t budget, sched_request ***batch, int32_t *cap)
{
    int32_t n = 0;
    int64_t tokens = 0;
    sched_request *r;
    while ((r = sched_pop(m))) {
        int64_t t = r->etokens;
        if (n > 0 && tokens + t > budget) {
            sched_push_front(m, r);
            break;
        }
        if (n == *cap) {
            int32_t nc = *cap ? *cap * 2 : 16;
            sched_request **nb = realloc(*batch, sizeof *nb * (size_t)nc);
            if (!nb) {
                sched_push_front(m, r);
                break;
            }
            *batch = nb;
            *cap = nc;
        }
        sched_admit(m, r);
        (*batch)[n++] = r;
        tokens += t;
    }
    return n;
}

/* Whether another model on m's device has work queued or running (no lock
 * of m's held). Then an embedding batch goes in arb_chunk_tokens chunks,
 * so that work waits at most one small chunk at the arbiter; alone on the
 * device a batch goes whole, up to the token budget: every chunk streams
 * all the weights again, and 64-token chunks had a BERT's weight packing
 * at 27% of the server's profile. Decided again before each chunk. */
static bool device_busy_elsewhere(sched_model *m)
{
    scheduler *s = m->s;
    const int32_t n = atomic_load(&s->n_models);
    for (int32_t i = 0; i < n; i++) {
        sched_model *o = s->models[i];
        if (!o || o == m || o->arb != m->arb) continue;
        pthread_mutex_lock(&o->mu);
        bool busy = o->n_active > 0;
        for (int c = 0; c < SCHED_N_PRIO && !busy; c++) busy = o->n_queued[c] > 0;
        pthread_mutex_unlock(&o->mu);
        if (busy) return true;
    }
    return false;
}

/* Embeds the live requests of batch[0..n) in one mdl_embed call; true when
 * its failure opened the breaker (or failed the model): the worker returns. */
static bool run_batch(sched_model *m, sched_request **batch, int32_t n)
{
    mdl_model *mm = api_model_mdl(m->md);
    const int32_t dim = vki_model_n_embd(m->md);
    const int64_t budget = m->s->p.embed_token_budget ? m->s->p.embed_token_budget : mdl_n_batch(mm);
    double now = vki_time_ms();
    int32_t n_seq = 0, live = 0;
    for (int32_t k = 0; k < n; k++) {
        vki_status st = sched_check(batch[k], now);
        if (st == VKI_OK && batch[k]->dim != dim)
            st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "the model was reloaded with embeddings of %d, not %d, values", dim,
                          batch[k]->dim);
        if (st != VKI_OK) {
            sched_finish(m, batch[k], st, st == VKI_ERR_TIMEOUT     ? "the request's deadline passed"
                                          : st == VKI_ERR_CANCELLED ? "the request was cancelled"
                                                                    : vki_last_error());
            batch[k] = NULL;
            continue;
        }
        batch[live++] = batch[k];
        n_seq += batch[k]->n_emiss;
    }
    if (!live) return false;
    const int32_t **ids = malloc(sizeof *ids * (size_t)n_seq);
    int32_t *n_ids = malloc(sizeof *n_ids * (size_t)n_seq);
    float *out = malloc(sizeof *out * (size_t)n_seq * (size_t)dim);
    int32_t *owner = malloc(sizeof *owner * (size_t)n_seq);
    vki_status st = VKI_OK;
    if (!ids || !n_ids || !out || !owner) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "embeddings: out of memory for a batch of %d texts", n_seq);
    } else {
        int32_t j = 0;
        for (int32_t k = 0; k < live; k++)
            for (int32_t t = 0; t < batch[k]->n_emiss; t++, j++) {
                ids[j] = batch[k]->eids[batch[k]->emiss[t]];
                n_ids[j] = batch[k]->n_eids[batch[k]->emiss[t]];
                owner[j] = k;
            }
        /* In chunks of at most arb_chunk_tokens while the device is shared
         * (a text longer than that goes alone), each its own turn at the
         * device's arbiter; whole when it is not (device_busy_elsewhere). */
        if (sched_breaker_test_fail(m, false))
            st = vki_fail(VKI_ERR_DEVICE_LOST, "injected step failure (test_fail.steps, for tests)");
        for (int32_t j0 = 0; j0 < n_seq && st == VKI_OK;) {
            const int64_t chunk = device_busy_elsewhere(m) ? m->s->p.arb_chunk_tokens : budget;
            int64_t tokens = n_ids[j0];
            sched_prio prio = batch[owner[j0]]->prio;
            int32_t j1 = j0 + 1;
            for (; j1 < n_seq && tokens + n_ids[j1] <= chunk; j1++) {
                tokens += n_ids[j1];
                if (batch[owner[j1]]->prio < prio) prio = batch[owner[j1]]->prio;
            }
            sched_arb_enter(m, prio);
            st = mdl_embed(mm, (const int32_t *const *)ids + j0, n_ids + j0, j1 - j0, mdl_get_hparams(mm)->pooling,
                           true, out + (size_t)j0 * (size_t)dim);
            sched_arb_leave(m, prio);
            j0 = j1;
        }
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%s", st != VKI_OK ? vki_last_error() : "");
    pthread_mutex_lock(&m->st_mu);
    m->st.steps++;
    m->st.step_seqs += (uint64_t)n_seq;
    pthread_mutex_unlock(&m->st_mu);
    /* Counted first: whoever sees these requests end sees the breaker's state. */
    char why[1024];
    const bool broke = st != VKI_OK && sched_breaker_step_failed(m, st, msg, why, sizeof why);
    size_t row = 0;
    const int32_t pooling = mdl_get_hparams(mm)->pooling;
    for (int32_t k = 0; k < live; k++) {
        sched_request *r = batch[k];
        for (int32_t t = 0; st == VKI_OK && t < r->n_emiss; t++)
            memcpy(r->emb + (size_t)r->emiss[t] * (size_t)dim, out + (row + (size_t)t) * (size_t)dim,
                   sizeof *out * (size_t)dim);
        row += (size_t)r->n_emiss;
        if (st == VKI_OK) sched_ecache_store(m, r, pooling);
        sched_finish(m, r, st, msg);
    }
    free(ids);
    free(n_ids);
    free(out);
    free(owner);
    return broke;
}

void sched_embed_worker(sched_model *m)
{
    const mdl_model *mm = api_model_mdl(m->md);
    const int64_t budget = m->s->p.embed_token_budget ? m->s->p.embed_token_budget : mdl_n_batch(mm);
    sched_request **batch = NULL;
    int32_t cap = 0;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        double now = vki_time_ms();
        sched_purge(m, now);
        if (atomic_load(&m->stop)) break;
        if (m->swap >= SCHED_SWAP_READY) break; /* a reload switches now (nothing runs here) */
        double first = oldest_submit(m);
        /* The turn is over (nothing runs here): what was queued before still goes. */
        if (m->yield && (first == 0 || first >= m->t_yield)) break;
        if (first == 0) {
            /* Nothing queued or running: wait, or give the memory back. */
            if (sched_idle_wait(m)) break;
            continue;
        }
        double until = first + m->s->p.embed_wait_ms;
        if (m->queued_tokens < budget && now < until) {
            sched_cond_wait_until(&m->cv, &m->mu, until);
            continue;
        }
        int32_t n = take_batch(m, budget, &batch, &cap);
        if (!n) { /* out of memory for the batch list: let time pass */
            sched_cond_wait_until(&m->cv, &m->mu, now + 10);
            continue;
        }
        m->n_active = n;
        m->run_prio = SCHED_PRIO_BATCH;
        for (int32_t k = 0; k < n; k++)
            if (batch[k]->prio < m->run_prio) m->run_prio = batch[k]->prio;
        pthread_mutex_unlock(&m->mu);
        bool broke = run_batch(m, batch, n);
        pthread_mutex_lock(&m->mu);
        m->n_active = 0;
        m->t_used = vki_time_ms();
        m->step_ema_ms = m->step_ema_ms > 0 ? 0.8 * m->step_ema_ms + 0.2 * (m->t_used - now) : m->t_used - now;
        if (broke) break;
    }
    pthread_mutex_unlock(&m->mu);
    free(batch);
}
