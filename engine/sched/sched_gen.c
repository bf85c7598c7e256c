/*
 * sched_gen.c: the generation worker: continuous batching. Each step is one
 * llama_decode with one span per active sequence: a request admitted since
 * the last step brings its whole prompt, the others their last sampled
 * token. A sequence that ends leaves at once and its KV slot is cleared for
 * the next request, so short requests never wait for long ones.
 * A request with n choices takes n slots at once: its prompt is evaluated
 * in the first (the lead), whose KV rows are then copied to the others, and
 * each slot samples its own choice from the same logits.
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
    int32_t        choice; /* which of r's choices this sequence samples     */
    int32_t        lead;   /* the slot that evaluates r's prompt             */
    gen_seq        g;
    bool           fresh;  /* admitted, prompt not evaluated yet             */
    int32_t        next;   /* the token to feed at the next step             */
} gen_slot;

/* Frees slot i (model mu not held). */
static void slot_free(sched_model *m, mdl_model *mm, gen_slot *sl, int32_t i)
{
    gen_seq_deinit(&sl->g);
    mdl_kv_seq_clear(mm, i);
    sl->r = NULL;
    pthread_mutex_lock(&m->mu);
    m->n_active--;
    m->t_used = vki_time_ms();
    pthread_mutex_unlock(&m->mu);
}

/* Ends request r with st: every slot it holds is freed, then it finishes. */
static void request_end(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots, sched_request *r,
                        vki_status st, const char *msg)
{
    for (int32_t i = 0; i < n_slots; i++)
        if (slots[i].r == r) slot_free(m, mm, &slots[i], i);
    sched_finish(m, r, st, msg);
}

/* The breaker opened (or the model failed): whatever still runs ends with why. */
static void end_all(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots, const char *why)
{
    for (int32_t i = 0; i < n_slots; i++)
        if (slots[i].r) request_end(m, mm, slots, n_slots, slots[i].r, VKI_ERR_DEVICE_LOST, why);
}

/* A failure in a step (status st, the detail in vki_last_error()) ends r;
 * counted by the breaker first, so whoever sees r end sees its state. When
 * the breaker opens everything running ends too and true is returned: the
 * worker must return. */
static bool step_failed(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots, sched_request *r,
                        vki_status st)
{
    char msg[512], why[1024];
    snprintf(msg, sizeof msg, "%s", vki_last_error());
    const bool broke = sched_breaker_step_failed(m, st, msg, why, sizeof why);
    request_end(m, mm, slots, n_slots, r, st, msg);
    if (broke) end_all(m, mm, slots, n_slots, why);
    return broke;
}

/* Slot i's choice is complete: the request finishes with its last choice. */
static void choice_done(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t i)
{
    sched_request *r = slots[i].r;
    slot_free(m, mm, &slots[i], i);
    if (--r->n_live == 0) sched_finish(m, r, VKI_OK, NULL);
}

/* Samples slot i's next token from row (modified) and delivers it; true
 * when a failure opened the breaker (step_failed). */
static bool slot_step(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots, int32_t i, float *row,
                      double now)
{
    gen_slot *sl = &slots[i];
    sl->fresh = false;
    vki_token_event ev;
    bool last;
    vki_status st = gen_seq_step(&sl->g, row, mdl_kv_seq_len(mm, i), &ev, &last);
    if (st != VKI_OK) return step_failed(m, mm, slots, n_slots, sl->r, st);
    /* an ending EOS has no text, and OpenAI lists no logprob for it */
    const bool eos_end = last && sl->g.st.stopped_by_eos;
    sched_emit(m, sl->r, sl->choice, &ev, !eos_end, sl->g.tok_offset, now);
    if (last) {
        sched_choice_end(sl->r, sl->choice, sl->g.st.stopped_by_eos, sl->g.st.stopped_by_string);
        choice_done(m, mm, slots, i);
    } else {
        sl->next = ev.id;
    }
    return false;
}

/* Prepares the sequences of every choice of the request led by slot i. */
static vki_status request_init(vki_model *md, gen_slot *slots, int32_t n_slots, int32_t i, const vki_tokenizer *tok,
                               int32_t n_vocab, int32_t n_ctx)
{
    sched_request *r = slots[i].r;
    /* Tokenized before a reload switched files: the ids must still be tokens. */
    for (int32_t k = 0; k < r->n_ids; k++)
        if (r->ids[k] < 0 || r->ids[k] >= n_vocab)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "token %d is outside the vocabulary of %d (the model was "
                            "reloaded from a file with another tokenizer)", r->ids[k], n_vocab);
    for (int32_t f = 0; f < n_slots; f++) {
        if (slots[f].r != r) continue;
        vki_generate_params gp = r->gp;
        gp.seed += (uint64_t)slots[f].choice; /* choice j: seed + j */
        VKI_TRY(gen_seq_init(&slots[f].g, tok, &gp, r->ids, r->n_ids, n_vocab, n_ctx));
        if (r->gram) { /* each choice follows the grammar on its own */
            const gram_vocab *gv = NULL;
            VKI_TRY(api_model_gram_vocab(md, &gv));
            VKI_TRY(gen_seq_set_grammar(&slots[f].g, r->gram, gv));
        }
    }
    return VKI_OK;
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
    float *row = malloc(sizeof *row * (size_t)n_vocab); /* a choice's copy of the lead's logits */
    if (!slots || !spans || !span_slot || !row) {
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
            int32_t n_free = 0;
            for (int32_t i = 0; i < n_slots; i++) n_free += !slots[i].r;
            while (n_free > 0 && m->swap < SCHED_SWAP_READY) {
                sched_request *r = sched_pop(m);
                if (!r) break;
                if (r->n_choices > n_slots) { /* submit checks this; a reload may not */
                    char msg[160];
                    snprintf(msg, sizeof msg, "n %d: the model runs at most %d sequences together", r->n_choices,
                             n_slots);
                    sched_finish(m, r, VKI_ERR_INVALID_ARGUMENT, msg);
                    continue;
                }
                if (r->n_choices > n_free) {
                    /* it keeps its place: the next free slots go to it */
                    sched_push_front(m, r);
                    break;
                }
                sched_admit(m, r);
                r->n_live = r->n_choices;
                for (int32_t j = 0, i = 0, lead = -1; j < r->n_choices; i++) {
                    if (slots[i].r) continue;
                    if (lead < 0) lead = i;
                    slots[i] = (gen_slot){.r = r, .choice = j++, .lead = lead, .fresh = true};
                }
                m->n_active += r->n_choices;
                n_free -= r->n_choices;
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
                request_end(m, mm, slots, n_slots, sl->r, st, st == VKI_ERR_TIMEOUT ? "the request's deadline passed"
                                                                                    : "the request was cancelled");
                continue;
            }
            if (sl->fresh) {
                if (sl->lead != i) continue; /* its KV comes from the lead after this pass */
                mdl_kv_seq_clear(mm, i);
                if ((st = request_init(m->md, slots, n_slots, i, tok, n_vocab, n_ctx)) != VKI_OK) {
                    request_end(m, mm, slots, n_slots, sl->r, st, vki_last_error());
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
            for (int32_t k = 0; k < n_spans; k++)
                if (slots[span_slot[k]].r) request_end(m, mm, slots, n_slots, slots[span_slot[k]].r, st, msg);
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
            float *lg = logits + (size_t)k * (size_t)n_vocab;
            if (!sl->r) continue; /* its request ended earlier in this loop */
            if (sl->fresh) {
                /* The other choices first: they need the lead's KV and its
                 * logits before the lead's own sampling edits them. */
                sched_request *r = sl->r;
                for (int32_t f = 0; f < n_slots && sl->r == r && !broke; f++) {
                    if (f == i || slots[f].r != r || !slots[f].fresh) continue;
                    if ((st = mdl_kv_seq_copy(mm, i, f)) != VKI_OK) {
                        broke = step_failed(m, mm, slots, n_slots, r, st);
                        break;
                    }
                    memcpy(row, lg, sizeof *row * (size_t)n_vocab);
                    broke = slot_step(m, mm, slots, n_slots, f, row, t1);
                }
                if (broke) break;
                if (sl->r != r) continue;
            }
            if ((broke = slot_step(m, mm, slots, n_slots, i, lg, t1))) break;
        }
        if (broke) break;
    }
    /* Stopping: whatever still runs is cancelled (queued ones were purged). */
    for (int32_t i = 0; i < n_slots; i++)
        if (slots[i].r) request_end(m, mm, slots, n_slots, slots[i].r, VKI_ERR_CANCELLED, "the server is shutting down");
out:
    free(row);
    free(slots);
    free(spans);
    free(span_slot);
}
