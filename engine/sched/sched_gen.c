/*
 * sched_gen.c: the generation worker: continuous batching. Each step is one
 * llama_decode with one span per active sequence: a request admitted since
 * the last step brings its whole prompt, the others their last sampled
 * token. A sequence that ends leaves at once and its KV slot is free for
 * the next request, so short requests never wait for long ones; the slot
 * keeps its cache, and a prompt that starts with the same tokens takes it
 * and skips them (prefix reuse, sched_prefix.c).
 * A request with n choices takes n slots at once: its prompt is evaluated
 * in the first (the lead), whose KV rows are then copied to the others, and
 * each slot samples its own choice from the same logits.
 * Every step passes the device's arbiter (sched_arbiter.c); a prompt goes in
 * chunks of arb_chunk_tokens across steps. When the model's turn on the
 * device ends (sched_turn.c), running single-choice sequences get
 * turn_drain_ms to finish, then are paused (state and tokens kept, queued
 * again) and re-fed at the next turn; a request with several choices or a
 * grammar drains.
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
    bool           inited; /* lead: its request's sequences are set up      */
    bool           placed; /* lead, fresh: its cache was cut to the reused prefix */
    int32_t        fed;    /* lead, fresh: prompt tokens in the cache        */
    int32_t        take;   /* lead, fresh: prompt tokens this step feeds     */
    int32_t        next;   /* the token to feed at the next step             */
    /* A single choice: the prompt, then each sampled token (what its cache
     * holds), kept so a pause can re-feed them; NULL: it cannot pause. */
    int32_t       *feed, n_feed, cap_feed;
} gen_slot;

/* The tokens a fresh lead feeds: its kept tokens after a pause, else the prompt. */
static const int32_t *prefill_ids(const gen_slot *sl) { return sl->feed ? sl->feed : sl->r->ids; }
static int32_t prefill_len(const gen_slot *sl) { return sl->feed ? sl->n_feed : sl->r->n_ids; }

static void feed_drop(gen_slot *sl)
{
    free(sl->feed);
    sl->feed = NULL;
    sl->n_feed = sl->cap_feed = 0;
}

/* Appends a token to a single choice's kept tokens; out of memory drops
 * them (the sequence then drains at a turn's end instead of pausing). */
static void feed_push(gen_slot *sl, int32_t id)
{
    if (!sl->feed) return;
    if (sl->n_feed == sl->cap_feed) {
        int32_t cap = sl->cap_feed * 2;
        int32_t *nf = realloc(sl->feed, sizeof *nf * (size_t)cap);
        if (!nf) {
            feed_drop(sl);
            return;
        }
        sl->feed = nf;
        sl->cap_feed = cap;
    }
    sl->feed[sl->n_feed++] = id;
}

/* Frees slot i (model mu not held); its cache stays for prefix reuse when
 * kv_sound (not after a failed pass). */
static void slot_free(sched_model *m, mdl_model *mm, gen_slot *sl, int32_t i, bool kv_sound)
{
    gen_seq_deinit(&sl->g);
    feed_drop(sl);
    sched_prefix_release(&m->px, mm, i, kv_sound);
    sl->r = NULL;
    pthread_mutex_lock(&m->mu);
    m->n_active--;
    m->t_used = vki_time_ms();
    pthread_mutex_unlock(&m->mu);
}

/* Ends request r with st: every slot it holds is freed (keeping its cache
 * for reuse when kv_sound), then it finishes. */
static void request_end(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots, sched_request *r,
                        vki_status st, const char *msg, bool kv_sound)
{
    for (int32_t i = 0; i < n_slots; i++)
        if (slots[i].r == r) slot_free(m, mm, &slots[i], i, kv_sound);
    sched_finish(m, r, st, msg);
}

/* The breaker opened (or the model failed): whatever still runs ends with why. */
static void end_all(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots, const char *why)
{
    for (int32_t i = 0; i < n_slots; i++)
        if (slots[i].r) request_end(m, mm, slots, n_slots, slots[i].r, VKI_ERR_DEVICE_LOST, why, false);
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
    request_end(m, mm, slots, n_slots, r, st, msg, false);
    if (broke) end_all(m, mm, slots, n_slots, why);
    return broke;
}

/* Slot i's choice is complete: the request finishes with its last choice. */
static void choice_done(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t i)
{
    sched_request *r = slots[i].r;
    slot_free(m, mm, &slots[i], i, true);
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
        feed_push(sl, ev.id);
    }
    return false;
}

/* The turn is over and the drain time passed: every running single-choice
 * sequence is paused at this step boundary and queued again at the head of
 * its class, to resume at the model's next turn (model mu held). */
static void pause_all(sched_model *m, mdl_model *mm, gen_slot *slots, int32_t n_slots)
{
    for (int32_t i = n_slots - 1; i >= 0; i--) {
        gen_slot *sl = &slots[i];
        /* (a grammar's matcher holds the loaded model's vocabulary: it drains) */
        if (!sl->r || sl->r->n_choices != 1 || sl->r->gram || !sl->inited || !sl->feed) continue;
        sched_paused *pz = malloc(sizeof *pz);
        if (!pz) continue; /* no memory to keep it: it drains instead */
        *pz = (sched_paused){.g = sl->g, .feed = sl->feed, .n_feed = sl->n_feed, .cap_feed = sl->cap_feed};
        sl->r->paused = pz;
        sl->feed = NULL;
        sl->n_feed = sl->cap_feed = 0;
        /* kept for reuse: a resume before the unload re-feeds only the last token */
        sched_prefix_release(&m->px, mm, i, true);
        sched_push_front(m, sl->r);
        sl->r = NULL;
        m->n_active--;
        pthread_mutex_lock(&m->st_mu);
        m->st.paused++;
        pthread_mutex_unlock(&m->st_mu);
    }
}

/* Slot i takes paused request r back: its state, and its tokens to re-feed
 * as a prompt (model mu held). */
static void slot_resume(sched_model *m, gen_slot *slots, int32_t i, sched_request *r)
{
    gen_slot *sl = &slots[i];
    *sl = (gen_slot){.r = r, .choice = 0, .lead = i, .fresh = true, .inited = true, .placed = false, .g = r->paused->g,
                     .feed = r->paused->feed, .n_feed = r->paused->n_feed, .cap_feed = r->paused->cap_feed};
    /* The tokenizer it borrowed was the unloaded model's: take this load's. */
    sl->g.tok = sl->g.dt.tok = api_model_tokenizer(m->md);
    free(r->paused);
    r->paused = NULL;
    sched_resid_touch(m, vki_time_ms());
    m->evict = false;
    m->n_active++;
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
    bool *is_free = calloc((size_t)n_slots, sizeof *is_free);
    /* A new worker starts empty: a load (or a reload's new file) knows nothing of what the last one held. */
    vki_status pst = sched_prefix_init(&m->px, n_slots, n_ctx, m->prefix_reuse);
    if (!slots || !spans || !span_slot || !row || !is_free || pst != VKI_OK) {
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
            /* The turn is over and its drain time passed: pause what runs. */
            if (m->yield && m->n_active > 0 && vki_time_ms() >= m->t_yield + m->s->p.turn_drain_ms)
                pause_all(m, mm, slots, n_slots);
            /* A reload is ready (or must drain): admit nothing more, finish what runs. */
            int32_t n_free = 0;
            for (int32_t i = 0; i < n_slots; i++) n_free += (is_free[i] = !slots[i].r);
            while (n_free > 0 && m->swap < SCHED_SWAP_READY) {
                sched_request *r = sched_pop(m);
                if (!r) break;
                /* At the end of a turn what was queued before it still starts
                 * (its ETA promised this turn); what came after, or was
                 * paused, waits for the next. */
                if (m->yield && (r->t_submit >= m->t_yield || r->paused)) {
                    sched_push_front(m, r);
                    break;
                }
                if (r->paused) {
                    const int32_t i = sched_prefix_pick(&m->px, is_free, r->paused->feed, r->paused->n_feed);
                    slot_resume(m, slots, i, r);
                    is_free[i] = false;
                    n_free--;
                    continue;
                }
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
                /* The lead (which evaluates the prompt) is the slot holding
                 * most of it; the other choices take the least recently
                 * used ones, whose caches their copies of the lead's replace. */
                for (int32_t j = 0, lead = -1; j < r->n_choices; j++) {
                    const int32_t i = sched_prefix_pick(&m->px, is_free, r->ids, j ? 0 : r->n_ids);
                    if (lead < 0) lead = i;
                    slots[i] = (gen_slot){.r = r, .choice = j, .lead = lead, .fresh = true};
                    is_free[i] = false;
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

        /* Who takes part in this step: every decoding sequence (one token),
         * and prompt chunks (or a paused sequence's tokens) up to the
         * arbiter's chunk size, so a long prompt takes several steps. */
        double now = vki_time_ms();
        int32_t n_spans = 0, n_decoding = 0;
        for (int32_t i = 0; i < n_slots; i++) n_decoding += slots[i].r && !slots[i].fresh;
        int32_t room = m->s->p.arb_chunk_tokens - n_decoding;
        sched_prio step_prio = SCHED_PRIO_BATCH;
        for (int32_t i = 0; i < n_slots; i++) {
            gen_slot *sl = &slots[i];
            if (!sl->r) continue;
            vki_status st = sched_check(sl->r, now);
            if (st != VKI_OK) {
                request_end(m, mm, slots, n_slots, sl->r, st,
                            st == VKI_ERR_TIMEOUT ? "the request's deadline passed" : "the request was cancelled", true);
                continue;
            }
            if (sl->fresh) {
                if (sl->lead != i) continue; /* its KV comes from the lead after this pass */
                if (!sl->inited) {
                    if ((st = request_init(m->md, slots, n_slots, i, tok, n_vocab, n_ctx)) != VKI_OK) {
                        request_end(m, mm, slots, n_slots, sl->r, st, vki_last_error(), true);
                        continue;
                    }
                    sl->inited = true;
                    /* a single choice keeps its tokens, so a turn's end can pause it */
                    if (sl->r->n_choices == 1 && (sl->feed = malloc(sizeof *sl->feed * (size_t)sl->r->n_ids))) {
                        memcpy(sl->feed, sl->r->ids, sizeof *sl->feed * (size_t)sl->r->n_ids);
                        sl->n_feed = sl->cap_feed = sl->r->n_ids;
                    }
                }
                if (!sl->placed) {
                    /* new, or resumed after a pause: what the slot holds of
                     * its tokens stays, the rest goes in */
                    sl->fed = sched_prefix_place(&m->px, mm, i, prefill_ids(sl), prefill_len(sl));
                    sl->placed = true;
                    pthread_mutex_lock(&m->st_mu);
                    m->st.prompt_reused += (uint64_t)sl->fed;
                    pthread_mutex_unlock(&m->st_mu);
                    pthread_mutex_lock(&sl->r->mu);
                    sl->r->res.n_cached += sl->fed; /* a resume adds what it found */
                    pthread_mutex_unlock(&sl->r->mu);
                }
                /* At least one token, so a prompt always moves. */
                sl->take = VKI_MIN(prefill_len(sl) - sl->fed, VKI_MAX(room, n_spans ? 0 : 1));
                if (sl->take <= 0) continue;
                room -= sl->take;
                spans[n_spans] = (mdl_span){.seq = i, .n_tokens = sl->take, .tokens = prefill_ids(sl) + sl->fed};
            } else {
                spans[n_spans] = (mdl_span){.seq = i, .n_tokens = 1, .tokens = &sl->next};
            }
            if (sl->r->prio < step_prio) step_prio = sl->r->prio;
            span_slot[n_spans++] = i;
        }
        if (!n_spans) continue;

        pthread_mutex_lock(&m->mu);
        m->run_prio = step_prio;
        pthread_mutex_unlock(&m->mu);
        sched_arb_enter(m, step_prio);
        double t0 = vki_time_ms();
        vki_status st = sched_breaker_test_fail(m, false)
                            ? vki_fail(VKI_ERR_DEVICE_LOST, "injected step failure (test_fail.steps, for tests)")
                            : llama_decode(mm, spans, n_spans, logits);
        double t1 = vki_time_ms();
        sched_arb_leave(m, step_prio);
        pthread_mutex_lock(&m->mu);
        m->step_ema_ms = m->step_ema_ms > 0 ? 0.8 * m->step_ema_ms + 0.2 * (t1 - now) : t1 - now;
        pthread_mutex_unlock(&m->mu);
        if (st != VKI_OK) {
            /* A failed pass leaves every cache in this step unknown: end them all. */
            char msg[512], why[1024];
            snprintf(msg, sizeof msg, "%s", vki_last_error());
            /* Counted first: whoever sees these requests end sees the breaker's state. */
            const bool broke = sched_breaker_step_failed(m, st, msg, why, sizeof why);
            for (int32_t k = 0; k < n_spans; k++)
                if (slots[span_slot[k]].r) request_end(m, mm, slots, n_slots, slots[span_slot[k]].r, st, msg, false);
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
        for (int32_t k = 0; k < n_spans; k++) {
            if (!slots[span_slot[k]].fresh) sched_histo_add(&m->st.token_latency, (t1 - t0) / 1e3);
            else m->st.prompt_evaluated += (uint64_t)spans[k].n_tokens;
        }
        pthread_mutex_unlock(&m->st_mu);
        /* Before sampling overwrites the tokens the spans point at. */
        for (int32_t k = 0; k < n_spans; k++) sched_prefix_fed(&m->px, spans[k].seq, spans[k].tokens, spans[k].n_tokens);
        for (int32_t k = 0; k < n_spans; k++) {
            int32_t i = span_slot[k];
            gen_slot *sl = &slots[i];
            float *lg = logits + (size_t)k * (size_t)n_vocab;
            if (!sl->r) continue; /* its request ended earlier in this loop */
            if (sl->fresh) {
                sl->fed += sl->take;
                if (sl->fed < prefill_len(sl)) continue; /* more of the prompt next step */
                /* The other choices first: they need the lead's KV and its
                 * logits before the lead's own sampling edits them. */
                sched_request *r = sl->r;
                for (int32_t f = 0; f < n_slots && sl->r == r && !broke; f++) {
                    if (f == i || slots[f].r != r || !slots[f].fresh) continue;
                    if ((st = mdl_kv_seq_copy(mm, i, f)) != VKI_OK) {
                        broke = step_failed(m, mm, slots, n_slots, r, st);
                        break;
                    }
                    sched_prefix_copy(&m->px, i, f);
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
        if (slots[i].r)
            request_end(m, mm, slots, n_slots, slots[i].r, VKI_ERR_CANCELLED, "the server is shutting down", true);
out:
    sched_prefix_deinit(&m->px);
    free(is_free);
    free(row);
    free(slots);
    free(spans);
    free(span_slot);
}
