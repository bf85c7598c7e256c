/*
 * sched_gen.c: the generation worker: continuous batching. Each step is one
 * llama_decode with one span per active sequence: a request admitted since
 * the last step brings its whole prompt, the others their last sampled
 * token. A sequence that ends leaves at once and its KV slot is cleared for
 * the next request, so short requests never wait for long ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/gen_seq.h"
#include "engine/sched/sched_internal.h"
#include "error.h"
#include "util.h"

typedef struct gen_slot {
    sched_request *r;      /* NULL: free                                    */
    gen_seq        g;
    bool           fresh;  /* admitted, prompt not evaluated yet             */
    int32_t        next;   /* the token to feed at the next step             */
} gen_slot;

/* Ends slot i's request and frees the slot (model mu not held). */
static void slot_end(sched_model *m, mdl_model *mm, gen_slot *sl, int32_t i, vki_status st, const char *msg)
{
    sched_finish(m, sl->r, st, msg);
    gen_seq_deinit(&sl->g);
    mdl_kv_seq_clear(mm, i);
    sl->r = NULL;
    pthread_mutex_lock(&m->mu);
    m->n_active--;
    m->t_used = vki_time_ms();
    pthread_mutex_unlock(&m->mu);
}

/* The breaker opened (or the model failed): whatever still runs ends with why. */
static void end_all(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots, const char *why)
{
    for (int32_t i = 0; i < n_slots; i++)
        if (slots[i].r) slot_end(m, mm, &slots[i], i, VKI_ERR_DEVICE_LOST, why);
}

void sched_gen_worker(sched_model *m)
{
    mdl_model *mm = api_model_mdl(m->md);
    const vki_tokenizer *tok = api_model_tokenizer(m->md);
    float *logits = api_model_logits(m->md);
    const int32_t n_slots = m->n_slots, n_vocab = vki_model_n_vocab(m->md), n_ctx = vki_model_n_ctx(m->md);
    gen_slot *slots = calloc((size_t)n_slots, sizeof *slots);
    mdl_span *spans = calloc((size_t)n_slots, sizeof *spans);
    int32_t *span_slot = calloc((size_t)n_slots, sizeof *span_slot);
    if (!slots || !spans || !span_slot) {
        /* Cannot serve at all: say so to everything that arrives. */
        pthread_mutex_lock(&m->mu);
        m->state = SCHED_FAILED;
        snprintf(m->error, sizeof m->error, "out of memory for the generation worker");
        pthread_cond_broadcast(&m->state_cv);
        pthread_mutex_unlock(&m->mu);
        sched_notify(m);
        pthread_mutex_lock(&m->mu);
        while (!atomic_load(&m->stop)) {
            sched_request *r;
            while ((r = sched_pop(m))) sched_finish(m, r, VKI_ERR_OUT_OF_MEMORY, m->error);
            pthread_cond_wait(&m->cv, &m->mu);
        }
        pthread_mutex_unlock(&m->mu);
        goto out;
    }
    bool unload = false;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        for (;;) {
            sched_purge(m, vki_time_ms());
            if (atomic_load(&m->stop)) break;
            /* A reload is ready (or must drain): admit nothing more, finish what runs. */
            for (int32_t i = 0; i < n_slots && m->swap < SCHED_SWAP_READY; i++) {
                if (slots[i].r) continue;
                sched_request *r = sched_pop(m);
                if (!r) break;
                sched_admit(m, r);
                slots[i].r = r;
                slots[i].fresh = true;
                m->n_active++;
            }
            if (m->n_active > 0) break;
            /* Nothing queued or running: wait, or give the memory back. */
            if ((unload = sched_idle_wait(m))) break;
        }
        bool stop = atomic_load(&m->stop);
        pthread_mutex_unlock(&m->mu);
        if (stop || unload) break;

        /* Who takes part in this step. */
        double now = vki_time_ms();
        int32_t n_spans = 0;
        for (int32_t i = 0; i < n_slots; i++) {
            gen_slot *sl = &slots[i];
            if (!sl->r) continue;
            vki_status st = sched_check(sl->r, now);
            if (st != VKI_OK) {
                slot_end(m, mm, sl, i, st, st == VKI_ERR_TIMEOUT ? "the request's deadline passed"
                                                                 : "the request was cancelled");
                continue;
            }
            if (sl->fresh) {
                mdl_kv_seq_clear(mm, i);
                st = VKI_OK;
                /* Tokenized before a reload switched files: the ids must still be tokens. */
                for (int32_t k = 0; k < sl->r->n_ids && st == VKI_OK; k++)
                    if (sl->r->ids[k] < 0 || sl->r->ids[k] >= n_vocab)
                        st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "token %d is outside the vocabulary of %d "
                                      "(the model was reloaded from a file with another tokenizer)",
                                      sl->r->ids[k], n_vocab);
                if (st == VKI_OK)
                    st = gen_seq_init(&sl->g, tok, &sl->r->gp, sl->r->ids, sl->r->n_ids, n_vocab, n_ctx);
                if (st != VKI_OK) {
                    sched_finish(m, sl->r, st, vki_last_error());
                    sl->r = NULL;
                    pthread_mutex_lock(&m->mu);
                    m->n_active--;
                    pthread_mutex_unlock(&m->mu);
                    continue;
                }
                spans[n_spans] = (mdl_span){.seq = i, .n_tokens = sl->r->n_ids, .tokens = sl->r->ids};
            } else {
                spans[n_spans] = (mdl_span){.seq = i, .n_tokens = 1, .tokens = &sl->next};
            }
            span_slot[n_spans++] = i;
        }
        if (!n_spans) continue;

        double t0 = vki_time_ms();
        vki_status st = sched_breaker_test_fail(m, false)
                            ? vki_fail(VKI_ERR_DEVICE_LOST, "injected step failure (test_fail.steps, for tests)")
                            : llama_decode(mm, spans, n_spans, logits);
        double t1 = vki_time_ms();
        if (st != VKI_OK) {
            /* A failed pass leaves every cache in this step unknown: end them all. */
            char msg[512], why[1024];
            snprintf(msg, sizeof msg, "%s", vki_last_error());
            /* Counted first: whoever sees these requests end sees the breaker's state. */
            const bool broke = sched_breaker_step_failed(m, st, msg, why, sizeof why);
            for (int32_t k = 0; k < n_spans; k++) slot_end(m, mm, &slots[span_slot[k]], span_slot[k], st, msg);
            if (broke) {
                end_all(m, mm, slots, n_slots, why);
                break;
            }
            continue;
        }
        bool broke = false;
        pthread_mutex_lock(&m->st_mu);
        m->st.steps++;
        m->st.step_seqs += (uint64_t)n_spans;
        for (int32_t k = 0; k < n_spans; k++)
            if (!slots[span_slot[k]].fresh) sched_histo_add(&m->st.token_latency, (t1 - t0) / 1e3);
        pthread_mutex_unlock(&m->st_mu);
        for (int32_t k = 0; k < n_spans; k++) {
            int32_t i = span_slot[k];
            gen_slot *sl = &slots[i];
            sl->fresh = false;
            vki_token_event ev;
            bool last;
            st = gen_seq_step(&sl->g, logits + (size_t)k * (size_t)n_vocab, mdl_kv_seq_len(mm, i), &ev, &last);
            if (st != VKI_OK) {
                char msg[512], why[1024];
                snprintf(msg, sizeof msg, "%s", vki_last_error());
                broke = sched_breaker_step_failed(m, st, msg, why, sizeof why);
                slot_end(m, mm, sl, i, st, msg);
                if (broke) {
                    end_all(m, mm, slots, n_slots, why);
                    break;
                }
                continue;
            }
            sched_emit(m, sl->r, ev.text, strlen(ev.text), t1);
            if (last) {
                pthread_mutex_lock(&sl->r->mu);
                sl->r->res.stopped_by_eos = sl->g.st.stopped_by_eos;
                sl->r->res.stopped_by_string = sl->g.st.stopped_by_string;
                pthread_mutex_unlock(&sl->r->mu);
                slot_end(m, mm, sl, i, VKI_OK, NULL);
            } else {
                sl->next = ev.id;
            }
        }
        if (broke) break;
    }
    /* Stopping: whatever still runs is cancelled (queued ones were purged). */
    for (int32_t i = 0; i < n_slots; i++)
        if (slots[i].r) slot_end(m, mm, &slots[i], i, VKI_ERR_CANCELLED, "the server is shutting down");
out:
    free(slots);
    free(spans);
    free(span_slot);
}
