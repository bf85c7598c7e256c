/*
 * sched_request.c: requests from submit to release: tokenizing and checking
 * the input, the bounded per-model priority queue (three FIFO classes), the
 * ETA a full queue answers with, the output the workers append to, and the
 * two holds (caller, scheduler) that decide when a request is freed.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/models/sampler.h"
#include "engine/sched/sched_internal.h"
#include "engine/tokenizer/tokenizer.h"
#include "error.h"
#include "util.h"

/* Before anything was measured, a request is assumed to take this long. */
#define SCHED_DEFAULT_SERVICE_MS 1000.0
/* Weight of the newest service time in the moving average. */
#define SCHED_EMA_ALPHA 0.2

static void request_free(sched_request *r)
{
    if (r->paused) {
        gen_seq_deinit(&r->paused->g);
        free(r->paused->feed);
        free(r->paused);
    }
    free(r->ids);
    for (size_t i = 0; r->stops && r->stops[i]; i++) free(r->stops[i]);
    free(r->stops);
    gram_destroy(r->gram);
    for (int32_t i = 0; r->eids && i < r->n_texts; i++) free(r->eids[i]);
    free(r->eids);
    free(r->n_eids);
    free(r->emiss);
    for (int32_t j = 0; r->ch && j < r->n_choices; j++) {
        free(r->ch[j].text);
        free(r->ch[j].toks);
    }
    free(r->ch);
    free(r->emb);
    free(r->err);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* Drops one hold; frees on the last. */
static void request_unref(sched_request *r)
{
    pthread_mutex_lock(&r->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) request_free(r);
}

static sched_request *request_new(sched_prio prio, double deadline_ms)
{
    sched_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    sched_cond_init(&r->cv);
    r->refs = 2;
    r->prio = prio;
    r->deadline_ms = deadline_ms;
    r->t_submit = vki_time_ms();
    atomic_init(&r->cancel, false);
    return r;
}

/* Tokenizes text with the model's tokenizer (open while the weights come
 * and go) into a malloc'd array. */
static vki_status tokenize(const vki_tokenizer *tok, const char *text, bool add_special, bool parse_special,
                           const vki_text_span *literal, size_t n_literal, int32_t **ids, int32_t *n)
{
    if (parse_special && n_literal > 0)
        VKI_TRY(vki_tokenizer_encode_literal(tok, text, strlen(text), add_special, literal, n_literal, ids, n));
    else
        VKI_TRY(vki_tokenizer_encode(tok, text, strlen(text), add_special, parse_special, ids, n));
    if (!*ids) {
        *ids = malloc(sizeof **ids);
        if (!*ids) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "tokenize: out of memory");
    }
    return VKI_OK;
}

/* The model at index i when it can take a request of this kind, with its
 * tokenizer and shape as they are now (a swap retires, never frees, them). */
static vki_status usable_model(scheduler *s, int32_t i, sched_kind kind, sched_model **out,
                               const vki_tokenizer **tok, sched_shape *shape)
{
    if (!s || i < 0 || i >= s->n_models) return vki_fail(VKI_ERR_NOT_FOUND, "no model with index %d", i);
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    sched_state st = m->state;
    bool can_queue = m->can_queue;
    *tok = m->tok;
    *shape = m->shape;
    pthread_mutex_unlock(&m->mu);
    if (atomic_load(&m->removing))
        return vki_fail(VKI_ERR_NOT_FOUND, "model '%s' is being removed", m->id);
    if (st == SCHED_FAILED || !can_queue)
        return vki_fail(VKI_ERR_UNSUPPORTED, "model '%s' is %s%s", m->id, sched_state_name(st),
                        st == SCHED_FAILED ? "" : " (its file is still being opened)");
    if (m->kind != kind)
        return vki_fail(VKI_ERR_UNSUPPORTED, "model '%s' is a %s model; this request needs a %s model", m->id,
                        sched_kind_name(m->kind), sched_kind_name(kind));
    *out = m;
    return VKI_OK;
}

/* Queues r, or refuses with QUEUE_FULL and the ETA. Takes over r either way.
 * r's own ETA: the wait for the device (sched_turn_eta_ms), then the
 * requests ahead of it (its class and more urgent ones) and those running,
 * n_slots at a time, each taking the measured service time. */
static double service_ms(sched_model *m)
{
    pthread_mutex_lock(&m->st_mu);
    const double svc = m->st.service_ema_ms > 0 ? m->st.service_ema_ms : SCHED_DEFAULT_SERVICE_MS;
    pthread_mutex_unlock(&m->st_mu);
    return svc;
}

/* The queue's part of r's wait once its model serves (mu held): free slots
 * take it at the next step of a running worker; else it waits for rounds of
 * ends. Sets r->queue_pos. */
static double queue_wait_ms(sched_model *m, sched_request *r)
{
    r->queue_pos = 0;
    for (int p = 0; p <= (int)r->prio; p++) r->queue_pos += m->n_queued[p];
    const int32_t slots = VKI_MAX(m->n_slots, 1), before = r->queue_pos + m->n_active - slots + 1;
    return (before > 0 ? ceil((double)before / slots) * service_ms(m) : 0) + (m->n_active > 0 ? m->step_ema_ms : 0);
}

static vki_status enqueue(sched_model *m, sched_request *r, sched_request **out, double *eta_s)
{
    const scheduler *s = m->s;
    /* The device's part needs res_mu, which comes before mu: the queue's
     * part first (it says whether r would start before its model's turn
     * ends), then the device's, then the queue's again as r joins it. */
    pthread_mutex_lock(&m->mu);
    const double start_ms = queue_wait_ms(m, r);
    pthread_mutex_unlock(&m->mu);
    bool for_turn;
    const double device_ms = sched_turn_eta_ms(m, start_ms, &for_turn);
    pthread_mutex_lock(&m->mu);
    int32_t queued = 0;
    for (int p = 0; p < SCHED_N_PRIO; p++) queued += m->n_queued[p];
    vki_status st = VKI_OK;
    if (atomic_load(&m->stop)) {
        st = vki_fail(VKI_ERR_CANCELLED, "the scheduler is shutting down");
    } else if (atomic_load(&m->removing)) {
        /* Checked under mu: the model's thread ends once removing is set
         * and the queue is empty, so nothing may join the queue after. */
        st = vki_fail(VKI_ERR_NOT_FOUND, "model '%s' is being removed", m->id);
    } else if (for_turn && r->deadline_ms > 0 && r->t_submit + device_ms > r->deadline_ms) {
        /* Its model waits for another's turn on the device: a wait that
         * cannot end before the deadline ends the request now, as it asked. */
        pthread_mutex_lock(&m->st_mu);
        m->st.timed_out++;
        pthread_mutex_unlock(&m->st_mu);
        if (eta_s) *eta_s = device_ms / 1e3;
        st = vki_fail(VKI_ERR_TIMEOUT, "model '%s' waits for its turn on the device (about %.1f s), past the "
                      "request's deadline (%.1f s)", m->id, device_ms / 1e3, (r->deadline_ms - r->t_submit) / 1e3);
    } else if (queued >= s->p.max_queue) {
        pthread_mutex_lock(&m->st_mu);
        double svc = m->st.service_ema_ms > 0 ? m->st.service_ema_ms : SCHED_DEFAULT_SERVICE_MS;
        m->st.rejected_full++;
        pthread_mutex_unlock(&m->st_mu);
        /* Everything queued and running must pass through n_slots slots. */
        double eta = svc * (double)(queued + m->n_active) / (double)VKI_MAX(m->n_slots, 1) / 1e3;
        if (eta_s) *eta_s = eta;
        st = vki_fail(VKI_ERR_QUEUE_FULL, "the queue of model '%s' is full (%d requests); retry in about %.1f s",
                      m->id, queued, eta);
    } else {
        r->eta_ms = device_ms + queue_wait_ms(m, r);
        if (eta_s) *eta_s = r->eta_ms / 1e3;
        r->next = NULL;
        if (m->tail[r->prio]) m->tail[r->prio]->next = r;
        else m->head[r->prio] = r;
        m->tail[r->prio] = r;
        m->n_queued[r->prio]++;
        m->queued_tokens += r->etokens;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (st != VKI_OK) {
        if (r->probe) {
            pthread_mutex_lock(&m->st_mu);
            sched_breaker_probe_end(&m->brk);
            pthread_mutex_unlock(&m->st_mu);
        }
        request_free(r);
        return st;
    }
    sched_warm_note_request(m);
    *out = r;
    return VKI_OK;
}

/* The breaker's word on a request about to be queued on m: r->probe when it
 * is the half-open probe; DEVICE_LOST and *eta_s when the breaker refuses. */
static vki_status breaker_gate(sched_model *m, sched_request *r, double *eta_s)
{
    bool probe = false;
    double retry_s = 0;
    vki_status st = sched_breaker_check(m, &probe, &retry_s);
    if (st != VKI_OK) {
        if (eta_s) *eta_s = retry_s;
        request_free(r);
        return st;
    }
    r->probe = probe;
    return VKI_OK;
}

vki_status sched_submit_generate(scheduler *s, int32_t model, const char *prompt, const vki_generate_params *gp,
                                 sched_prio prio, double deadline_ms, sched_request **out, double *eta_s)
{
    return sched_submit_generate_spans(s, model, prompt, NULL, 0, gp, prio, deadline_ms, out, eta_s);
}

vki_status sched_submit_generate_spans(scheduler *s, int32_t model, const char *prompt, const vki_text_span *literal,
                                       size_t n_literal, const vki_generate_params *gp, sched_prio prio,
                                       double deadline_ms, sched_request **out, double *eta_s)
{
    if (!prompt) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_submit_generate: prompt is NULL");
    sched_gen_input in = {.prompt = prompt, .literal = literal, .n_literal = n_literal, .n_choices = 1};
    return sched_submit_generate_input(s, model, &in, gp, prio, deadline_ms, out, eta_s);
}

vki_status sched_submit_generate_input(scheduler *s, int32_t model, const sched_gen_input *in,
                                       const vki_generate_params *gp, sched_prio prio, double deadline_ms,
                                       sched_request **out, double *eta_s)
{
    if (!out || !in || (!in->prompt && (!in->ids || in->n_ids < 0)) || (unsigned)prio >= SCHED_N_PRIO)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_submit_generate: out, or both prompt and ids, are NULL, "
                        "or bad priority");
    *out = NULL;
    if (eta_s) *eta_s = 0;
    sched_model *m;
    const vki_tokenizer *tok;
    sched_shape sh;
    VKI_TRY(usable_model(s, model, SCHED_KIND_CHAT, &m, &tok, &sh));
    vki_generate_params p = gp ? *gp : vki_generate_default_params();
    smp_sampler *smp = NULL;
    VKI_TRY(smp_create(&p, sh.n_vocab, &smp)); /* refuse bad sampling values now */
    smp_destroy(smp);
    if (p.n_predict < 0) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "n_predict %d < 0", p.n_predict);
    const int32_t n_choices = in->n_choices ? in->n_choices : 1;
    const int32_t n_seq = m->mp.n_seq_max ? (int32_t)m->mp.n_seq_max : 1;
    if (n_choices < 1 || n_choices > n_seq)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "n %d: model '%s' runs at most %d sequences together (its "
                        "n_seq_max), so n must be 1..%d", n_choices, m->id, n_seq, n_seq);
    sched_request *r = request_new(prio, deadline_ms);
    if (!r) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_submit_generate: out of memory");
    vki_status st;
    if (in->prompt) {
        st = tokenize(tok, in->prompt, p.add_special, p.parse_special, in->literal, in->n_literal, &r->ids, &r->n_ids);
        if (st != VKI_OK) goto fail;
    } else {
        if (!(r->ids = malloc(sizeof *r->ids * (size_t)VKI_MAX(in->n_ids, 1)))) goto oom;
        for (int32_t k = 0; k < in->n_ids; k++) {
            if (in->ids[k] < 0 || in->ids[k] >= sh.n_vocab) {
                st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "prompt token %d at position %d is outside the "
                              "vocabulary of model '%s' (0..%d)", in->ids[k], k, m->id, sh.n_vocab - 1);
                goto fail;
            }
            r->ids[k] = in->ids[k];
        }
        r->n_ids = in->n_ids;
    }
    if (!(r->ch = calloc((size_t)n_choices, sizeof *r->ch))) goto oom;
    r->n_choices = n_choices;
    const int32_t n_ctx = sh.n_ctx;
    if (r->n_ids < 1) {
        st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "the prompt has no tokens");
        goto fail;
    }
    if (r->n_ids >= n_ctx) {
        st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "the prompt has %d tokens; the context of model '%s' holds %d",
                      r->n_ids, m->id, n_ctx);
        goto fail;
    }
    size_t n_stop = 0;
    while (p.stop && p.stop[n_stop]) n_stop++;
    r->stops = calloc(n_stop + 1, sizeof *r->stops);
    if (!r->stops) goto oom;
    for (size_t i = 0; i < n_stop; i++)
        if (!(r->stops[i] = strdup(p.stop[i]))) goto oom;
    p.stop = (const char *const *)r->stops;
    /* compiled now, so a bad grammar or schema fails the submit */
    if ((st = gram_from_params(&p, &r->gram)) != VKI_OK) goto fail;
    p.grammar = p.json_schema = NULL;
    r->gp = p;
    r->res.n_prompt = r->n_ids;
    VKI_TRY(breaker_gate(m, r, eta_s));
    return enqueue(m, r, out, eta_s);
oom:
    st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_submit_generate: out of memory");
fail:
    request_free(r);
    return st;
}

/* A request whose texts were all in the embedding cache: done now, with no
 * queue place, no slot and no word for the breaker (the model did nothing)
 * nor for the service time the ETAs come from. */
static vki_status finish_cached(sched_model *m, sched_request *r, sched_request **out)
{
    r->refs = 1; /* the caller's: the scheduler never holds it */
    r->t_start = vki_time_ms();
    r->res.start_order = atomic_fetch_add(&m->s->order, 1) + 1;
    r->res.done = true;
    r->res.status = VKI_OK;
    pthread_mutex_lock(&m->st_mu);
    m->st.finished_ok++;
    m->st.prompt_tokens += (uint64_t)r->res.n_prompt;
    sched_histo_add(&m->st.request, (r->t_start - r->t_submit) / 1e3);
    pthread_mutex_unlock(&m->st_mu);
    *out = r;
    return VKI_OK;
}

vki_status sched_submit_embed(scheduler *s, int32_t model, const char *const *texts, int32_t n_texts,
                              sched_prio prio, double deadline_ms, sched_request **out, double *eta_s)
{
    if (!out || !texts || n_texts < 1 || (unsigned)prio >= SCHED_N_PRIO)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_submit_embed: no texts, or bad priority");
    *out = NULL;
    if (eta_s) *eta_s = 0;
    sched_model *m;
    const vki_tokenizer *tok;
    sched_shape sh;
    VKI_TRY(usable_model(s, model, SCHED_KIND_EMBEDDING, &m, &tok, &sh));
    sched_request *r = request_new(prio, deadline_ms);
    if (!r) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_submit_embed: out of memory");
    vki_status st;
    r->embed = true;
    r->eids = calloc((size_t)n_texts, sizeof *r->eids);
    r->n_eids = calloc((size_t)n_texts, sizeof *r->n_eids);
    r->emiss = malloc(sizeof *r->emiss * (size_t)n_texts);
    r->dim = sh.n_embd;
    r->emb = malloc(sizeof *r->emb * (size_t)n_texts * (size_t)r->dim);
    if (!r->eids || !r->n_eids || !r->emiss || !r->emb) {
        request_free(r);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_submit_embed: out of memory");
    }
    r->n_texts = n_texts;
    const int32_t limit = VKI_MIN(sh.n_ctx, sh.n_batch);
    for (int32_t i = 0; i < n_texts; i++) {
        if (!texts[i]) {
            st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "text %d is NULL", i);
            goto fail;
        }
        if ((st = tokenize(tok, texts[i], true, false, NULL, 0, &r->eids[i], &r->n_eids[i])) != VKI_OK) goto fail;
        if (r->n_eids[i] > limit) {
            st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "input %d has %d tokens; model '%s' takes at most %d", i,
                          r->n_eids[i], m->id, limit);
            goto fail;
        }
        r->res.n_prompt += r->n_eids[i];
    }
    sched_ecache_lookup(m, r);
    if (r->n_emiss == 0) return finish_cached(m, r, out);
    VKI_TRY(breaker_gate(m, r, eta_s));
    return enqueue(m, r, out, eta_s);
fail:
    request_free(r);
    return st;
}

/* ===== Queue (model mu held) ============================================== */

sched_request *sched_pop(sched_model *m)
{
    for (int p = 0; p < SCHED_N_PRIO; p++) {
        sched_request *r = m->head[p];
        if (!r) continue;
        m->head[p] = r->next;
        if (!r->next) m->tail[p] = NULL;
        r->next = NULL;
        m->n_queued[p]--;
        m->queued_tokens -= r->etokens;
        return r;
    }
    return NULL;
}

void sched_push_front(sched_model *m, sched_request *r)
{
    r->next = m->head[r->prio];
    m->head[r->prio] = r;
    if (!m->tail[r->prio]) m->tail[r->prio] = r;
    m->n_queued[r->prio]++;
    m->queued_tokens += r->etokens;
}

vki_status sched_check(const sched_request *r, double now)
{
    if (atomic_load(&r->cancel)) return VKI_ERR_CANCELLED;
    if (r->deadline_ms > 0 && now >= r->deadline_ms) return VKI_ERR_TIMEOUT;
    return VKI_OK;
}

static const char *end_message(vki_status st)
{
    return st == VKI_ERR_TIMEOUT ? "the request's deadline passed" : "the request was cancelled";
}

void sched_purge(sched_model *m, double now)
{
    const bool stopping = atomic_load(&m->stop);
    for (int p = 0; p < SCHED_N_PRIO; p++) {
        sched_request **link = &m->head[p], *prev = NULL;
        while (*link) {
            sched_request *r = *link;
            vki_status st = stopping ? VKI_ERR_CANCELLED : sched_check(r, now);
            if (st == VKI_OK) {
                prev = r;
                link = &r->next;
                continue;
            }
            *link = r->next;
            if (m->tail[p] == r) m->tail[p] = prev;
            m->n_queued[p]--;
            m->queued_tokens -= r->etokens;
            sched_finish(m, r, st, stopping ? "the server is shutting down" : end_message(st));
        }
    }
}

void sched_admit(sched_model *m, sched_request *r)
{
    r->t_start = vki_time_ms();
    sched_resid_touch(m, r->t_start);
    m->evict = false; /* it has work again: the load that asked looks elsewhere */
    uint64_t order = atomic_fetch_add(&m->s->order, 1) + 1;
    pthread_mutex_lock(&r->mu);
    r->res.start_order = order;
    r->res.queue_ms = r->t_start - r->t_submit;
    pthread_mutex_unlock(&r->mu);
}

/* ===== Output ============================================================ */

/* Appends text to r's output as valid UTF-8: clients get JSON, and a model
 * can emit byte tokens that do not form characters. */
static bool append_utf8(struct sched_choice *c, const char *text, size_t len)
{
    if (c->n_text + 3 * len + 1 > c->cap_text) {
        size_t cap = VKI_MAX(c->cap_text * 2, c->n_text + 3 * len + 256);
        char *np = realloc(c->text, cap);
        if (!np) return false;
        c->text = np;
        c->cap_text = cap;
    }
    c->n_text += vki_utf8_sanitize(text, len, c->text + c->n_text);
    c->text[c->n_text] = '\0';
    return true;
}

static bool append_token(struct sched_choice *c, const vki_token_event *ev, int32_t text_offset)
{
    if (c->n_toks == c->cap_toks) {
        int32_t cap = VKI_MAX(2 * c->cap_toks, 16);
        sched_token *nt = realloc(c->toks, sizeof *nt * (size_t)cap);
        if (!nt) return false;
        c->toks = nt;
        c->cap_toks = cap;
    }
    sched_token *t = &c->toks[c->n_toks++];
    t->id = ev->id;
    t->logprob = ev->logprob;
    t->n_top = ev->n_top_logprobs;
    t->text_offset = text_offset;
    memcpy(t->top_ids, ev->top_logprob_ids, sizeof t->top_ids);
    memcpy(t->top_logprobs, ev->top_logprobs, sizeof t->top_logprobs);
    return true;
}

void sched_emit(sched_model *m, sched_request *r, int32_t j, const vki_token_event *ev, bool record,
                int32_t text_offset, double now)
{
    bool first;
    struct sched_choice *c = &r->ch[j];
    size_t len = strlen(ev->text);
    pthread_mutex_lock(&r->mu);
    first = r->res.n_generated == 0;
    /* Out of memory loses the text or the token, not the count: the caller
     * sees a short text. */
    if (len) (void)append_utf8(c, ev->text, len);
    if (record && r->gp.logprobs) (void)append_token(c, ev, text_offset);
    c->n_generated++;
    r->res.n_generated++;
    if (first) r->res.ttft_ms = now - r->t_submit;
    pthread_cond_broadcast(&r->cv);
    if (r->notify) r->notify(r->notify_arg);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&m->st_mu);
    m->st.generated_tokens++;
    if (first) sched_histo_add(&m->st.ttft, (now - r->t_submit) / 1e3);
    pthread_mutex_unlock(&m->st_mu);
}

void sched_choice_end(sched_request *r, int32_t j, bool by_eos, bool by_string)
{
    pthread_mutex_lock(&r->mu);
    r->ch[j].done = true;
    r->ch[j].stopped_by_eos = by_eos;
    r->ch[j].stopped_by_string = by_string;
    if (j == 0) {
        r->res.stopped_by_eos = by_eos;
        r->res.stopped_by_string = by_string;
    }
    pthread_cond_broadcast(&r->cv);
    if (r->notify) r->notify(r->notify_arg);
    pthread_mutex_unlock(&r->mu);
}

void sched_finish(sched_model *m, sched_request *r, vki_status st, const char *msg)
{
    double now = vki_time_ms();
    pthread_mutex_lock(&m->st_mu);
    sched_breaker_request_end(m, r, st);
    switch (st) {
    case VKI_OK:
        m->st.finished_ok++;
        m->st.prompt_tokens += (uint64_t)r->res.n_prompt;
        sched_histo_add(&m->st.request, (now - r->t_submit) / 1e3);
        if (r->t_start > 0) {
            double svc = now - r->t_start;
            m->st.service_ema_ms = m->st.service_ema_ms > 0
                                       ? (1 - SCHED_EMA_ALPHA) * m->st.service_ema_ms + SCHED_EMA_ALPHA * svc
                                       : svc;
        }
        break;
    case VKI_ERR_CANCELLED: m->st.cancelled++; break;
    case VKI_ERR_TIMEOUT: m->st.timed_out++; break;
    default: m->st.failed++; break;
    }
    pthread_mutex_unlock(&m->st_mu);
    pthread_mutex_lock(&r->mu);
    r->res.done = true;
    r->res.status = st;
    if (st != VKI_OK) {
        r->err = strdup(msg && msg[0] ? msg : vki_status_str(st));
        r->res.error = r->err ? r->err : vki_status_str(st);
    }
    pthread_cond_broadcast(&r->cv);
    if (r->notify) r->notify(r->notify_arg);
    pthread_mutex_unlock(&r->mu);
    request_unref(r);
}

/* ===== The caller's side ================================================= */

/* Choice 0's text length (r->mu held); embeddings have none. */
static size_t text0_len(const sched_request *r) { return r->ch ? r->ch[0].n_text : 0; }

vki_status sched_request_poll(sched_request *r, size_t from, int timeout_ms, char **chunk, size_t *chunk_len,
                              sched_result *res)
{
    *chunk = NULL;
    *chunk_len = 0;
    double until = vki_time_ms() + timeout_ms;
    pthread_mutex_lock(&r->mu);
    while (!r->res.done && text0_len(r) <= from && timeout_ms != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&r->cv, &r->mu);
        } else {
            if (vki_time_ms() >= until) break;
            sched_cond_wait_until(&r->cv, &r->mu, until);
        }
    }
    const char *text = r->ch ? r->ch[0].text : NULL;
    size_t n_text = text0_len(r);
    vki_status st = VKI_OK;
    if (n_text > from) {
        size_t n = n_text - from;
        *chunk = malloc(n + 1);
        if (*chunk) {
            memcpy(*chunk, text + from, n);
            (*chunk)[n] = '\0';
            *chunk_len = n;
        } else {
            st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_request_poll: out of memory");
        }
    }
    *res = r->res;
    pthread_mutex_unlock(&r->mu);
    return st;
}

int32_t sched_request_n_choices(const sched_request *r)
{
    return r && r->ch ? r->n_choices : 1;
}

/* True when some choice has text or tokens past what outs[] has read. */
static bool has_news(const sched_request *r, const sched_choice_out *outs, int32_t n)
{
    for (int32_t j = 0; j < n; j++)
        if (r->ch[j].n_text > outs[j].from_text || r->ch[j].n_toks > outs[j].from_tok) return true;
    return false;
}

vki_status sched_request_poll_choices(sched_request *r, int timeout_ms, sched_choice_out *outs, int32_t n,
                                      sched_result *res)
{
    for (int32_t j = 0; j < n; j++) {
        outs[j].chunk = NULL;
        outs[j].chunk_len = 0;
        outs[j].toks = NULL;
        outs[j].n_toks = 0;
    }
    if (!r->ch || n != r->n_choices)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_request_poll_choices: %d choices asked, the request has %d",
                        n, sched_request_n_choices(r));
    double until = vki_time_ms() + timeout_ms;
    pthread_mutex_lock(&r->mu);
    while (!r->res.done && !has_news(r, outs, n) && timeout_ms != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&r->cv, &r->mu);
        } else {
            if (vki_time_ms() >= until) break;
            sched_cond_wait_until(&r->cv, &r->mu, until);
        }
    }
    vki_status st = VKI_OK;
    for (int32_t j = 0; j < n && st == VKI_OK; j++) {
        const struct sched_choice *c = &r->ch[j];
        sched_choice_out *o = &outs[j];
        if (c->n_text > o->from_text) {
            size_t k = c->n_text - o->from_text;
            if ((o->chunk = malloc(k + 1))) {
                memcpy(o->chunk, c->text + o->from_text, k);
                o->chunk[k] = '\0';
                o->chunk_len = k;
            }
            else st = VKI_ERR_OUT_OF_MEMORY;
        }
        if (st == VKI_OK && c->n_toks > o->from_tok) {
            int32_t k = c->n_toks - o->from_tok;
            if ((o->toks = malloc(sizeof *o->toks * (size_t)k))) {
                memcpy(o->toks, c->toks + o->from_tok, sizeof *o->toks * (size_t)k);
                o->n_toks = k;
            }
            else st = VKI_ERR_OUT_OF_MEMORY;
        }
        o->n_generated = c->n_generated;
        o->done = c->done;
        o->stopped_by_eos = c->stopped_by_eos;
        o->stopped_by_string = c->stopped_by_string;
    }
    *res = r->res;
    pthread_mutex_unlock(&r->mu);
    if (st != VKI_OK) {
        for (int32_t j = 0; j < n; j++) {
            free(outs[j].chunk);
            free(outs[j].toks);
            outs[j].chunk = NULL;
            outs[j].toks = NULL;
            outs[j].chunk_len = 0;
            outs[j].n_toks = 0;
        }
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_request_poll_choices: out of memory");
    }
    return VKI_OK;
}

const float *sched_request_embeddings(sched_request *r, int32_t *n_texts, int32_t *dim)
{
    pthread_mutex_lock(&r->mu);
    bool ok = r->embed && r->res.done && r->res.status == VKI_OK;
    pthread_mutex_unlock(&r->mu);
    if (n_texts) *n_texts = ok ? r->n_texts : 0;
    if (dim) *dim = ok ? r->dim : 0;
    return ok ? r->emb : NULL;
}

void sched_request_set_notify(sched_request *r, void (*fn)(void *arg), void *arg)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->notify = fn;
    r->notify_arg = arg;
    pthread_mutex_unlock(&r->mu);
}

void sched_request_queue_info(const sched_request *r, int32_t *position, double *eta_s)
{
    if (position) *position = r ? r->queue_pos : 0;
    if (eta_s) *eta_s = r ? r->eta_ms / 1e3 : 0;
}

void sched_request_cancel(sched_request *r)
{
    if (r) atomic_store(&r->cancel, true);
}

void sched_request_release(sched_request *r)
{
    if (!r) return;
    atomic_store(&r->cancel, true); /* nobody is left to read what it would produce */
    request_unref(r);
}
