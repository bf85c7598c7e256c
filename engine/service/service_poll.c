/*
 * service_poll.c: vki_job_poll (vkinfer.h): what a generation job's choices
 * produced since the caller last looked, text and tokens with their
 * log-probabilities, read from the try in flight (or the last one, after
 * the end). It keeps the reader's cursors and the buffers it hands out; it
 * decides nothing about the job (service_job.c does).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/service/service_internal.h"
#include "error.h"

static bool poll_init(vki_job *j)
{
    const size_t n = (size_t)j->xp.n_choices;
    j->poll_outs = calloc(n, sizeof *j->poll_outs);
    j->poll_text = calloc(n, sizeof *j->poll_text);
    j->poll_toks = calloc(n, sizeof *j->poll_toks);
    return j->poll_outs && j->poll_text && j->poll_toks;
}

static void token_from_sched(vki_job_token *t, const sched_token *s)
{
    t->id = s->id;
    t->logprob = s->logprob;
    t->text_offset = s->text_offset;
    t->n_top = s->n_top;
    memcpy(t->top_ids, s->top_ids, sizeof t->top_ids);
    memcpy(t->top_logprobs, s->top_logprobs, sizeof t->top_logprobs);
}

vki_status vki_job_poll(vki_job *j, vki_job_choice *out, int32_t n, vki_job_result *res)
{
    static const char fn[] = "vki_job_poll";
    if (!j || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: job and out are required", fn);
    if (j->embed) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: an embedding job has no choices", fn);
    if (n != j->xp.n_choices)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: n = %d, but the job has %d choices", fn, n, j->xp.n_choices);
    pthread_mutex_lock(&j->mu);
    if (!j->poll_outs && !poll_init(j)) {
        pthread_mutex_unlock(&j->mu);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    if (j->poll_try != j->n_submits) {
        /* a new try: its output starts from nothing (the failed one had none) */
        memset(j->poll_outs, 0, sizeof *j->poll_outs * (size_t)n);
        j->poll_try = j->n_submits;
    }
    for (int32_t c = 0; c < n; c++) {
        free(j->poll_text[c]);
        free(j->poll_toks[c]);
        j->poll_text[c] = NULL;
        j->poll_toks[c] = NULL;
    }
    sched_request *r = j->r ? j->r : j->done_r;
    sched_result sr = {0};
    vki_status st = r ? sched_request_poll_choices(r, 0, j->poll_outs, n, &sr) : VKI_OK;
    for (int32_t c = 0; st == VKI_OK && c < n; c++) {
        sched_choice_out *o = &j->poll_outs[c];
        if (o->n_toks && !(j->poll_toks[c] = malloc(sizeof *j->poll_toks[c] * (size_t)o->n_toks))) {
            /* nothing read: the cursors stay, a retry reads it all */
            for (int32_t k = 0; k < n; k++) {
                free(j->poll_outs[k].chunk);
                free(j->poll_outs[k].toks);
                j->poll_outs[k].chunk = NULL;
                j->poll_outs[k].toks = NULL;
            }
            st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
        }
    }
    if (st != VKI_OK) {
        pthread_mutex_unlock(&j->mu);
        return st;
    }
    /* A try that failed shows no ends: the next candidate may still serve
     * the choices, or the job ends with the error (res). */
    const bool failed = r && sr.done && sr.status != VKI_OK;
    for (int32_t c = 0; c < n; c++) {
        sched_choice_out *o = &j->poll_outs[c];
        for (int32_t k = 0; k < o->n_toks; k++) token_from_sched(&j->poll_toks[c][k], &o->toks[k]);
        j->poll_text[c] = o->chunk;
        out[c] = (vki_job_choice){.text = o->chunk ? o->chunk : "", .text_len = o->chunk ? o->chunk_len : 0,
                                  .tokens = o->n_toks ? j->poll_toks[c] : NULL, .n_tokens = o->n_toks,
                                  .n_generated = o->n_generated, .done = r && o->done && !failed,
                                  .stopped_by_eos = o->stopped_by_eos, .stopped_by_string = o->stopped_by_string};
        free(o->toks);
        o->from_text += o->chunk_len;
        o->from_tok += o->n_toks;
        o->chunk = NULL;
        o->toks = NULL;
        o->chunk_len = 0;
        o->n_toks = 0;
    }
    if (res) {
        *res = j->res;
        if (!j->res.done) res->fallback = svc_job_fallback(j);
        if (!j->res.done && j->r) {
            res->n_prompt = sr.n_prompt;
            res->n_generated = sr.n_generated;
            res->n_cached = sr.n_cached;
            res->queue_ms = sr.queue_ms;
            res->started = sr.start_order != 0;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return VKI_OK;
}

void vki_job_stay(vki_job *j)
{
    if (j) atomic_store(&j->stay, true);
}
