/*
 * service_job.c: vki_job (vkinfer.h): submitting a generation or an
 * embedding with its fallback plan, the tries (the requested model first,
 * then its candidates while a try fails before producing anything), the
 * streamed text and the callbacks, which the dispatcher runs
 * (svc_job_process), and the job's wait, result, cancel and release.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/service/service_internal.h"
#include "error.h"
#include "util.h"

/* ===== Life ============================================================= */

void svc_job_free(vki_job *j)
{
    if (j->r) {
        sched_request_set_notify(j->r, NULL, NULL);
        sched_request_release(j->r);
    }
    sched_request_release(j->done_r);
    svc_gen_free(j);
    for (int32_t k = 0; j->stop && j->stop[k]; k++) free(j->stop[k]);
    free(j->stop);
    for (int32_t k = 0; k < j->n_texts; k++) free(j->texts[k]);
    free(j->texts);
    free(j->prompt);
    free(j->grammar);
    free(j->json_schema);
    free(j->text);
    free(j->emb);
    svc_route_wait_free(j->route);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

vki_fallback_reason svc_job_fallback(const vki_job *j)
{
    return j->served != j->requested ? (vki_fallback_reason)j->first_reason : VKI_FALLBACK_NONE;
}

void svc_job_unref(vki_job *j)
{
    if (j && atomic_fetch_sub(&j->refs, 1) == 1) svc_job_free(j);
}

void svc_job_set_route(vki_job *j, struct svc_route_wait *w)
{
    pthread_mutex_lock(&j->mu);
    j->route = w;
    pthread_mutex_unlock(&j->mu);
}

struct svc_route_wait *svc_job_route(vki_job *j)
{
    pthread_mutex_lock(&j->mu);
    struct svc_route_wait *w = j->route;
    pthread_mutex_unlock(&j->mu);
    return w;
}

static char *dup_or_null(const char *s, bool *ok)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *ok = false;
    return d;
}

/* The caller's strings are borrowed only during the submit; a fallback try
 * happens later, so the job keeps its own copies. */
bool svc_job_copy_gen(vki_job *j, const char *prompt, const vki_generate_params *gp)
{
    bool ok = true;
    j->gp = *gp;
    j->gp.stop = NULL;
    j->prompt = dup_or_null(prompt, &ok);
    j->grammar = dup_or_null(gp->grammar, &ok);
    j->json_schema = dup_or_null(gp->json_schema, &ok);
    j->gp.grammar = j->grammar;
    j->gp.json_schema = j->json_schema;
    int32_t n = 0;
    while (gp->stop && gp->stop[n]) n++;
    if (n) {
        if (!(j->stop = calloc((size_t)n + 1, sizeof *j->stop))) return false;
        for (int32_t k = 0; k < n; k++) j->stop[k] = dup_or_null(gp->stop[k], &ok);
        j->gp.stop = (const char *const *)j->stop;
    }
    return ok;
}

static bool copy_texts(vki_job *j, const char *const *texts, int32_t n)
{
    if (!(j->texts = calloc((size_t)n, sizeof *j->texts))) return false;
    bool ok = true;
    for (j->n_texts = 0; j->n_texts < n; j->n_texts++) j->texts[j->n_texts] = dup_or_null(texts[j->n_texts], &ok);
    return ok;
}

/* The scheduler's thread, the request's lock held. */
static void on_request_news(void *arg)
{
    vki_job *j = arg;
    svc_push_ready(j->svc, j);
    if (j->news_fn) j->news_fn(j->news_user);
}

/* ===== Tries ============================================================ */

static void note_first(vki_job *j, int32_t i, int reason, vki_status st, const char *msg, double retry_ms)
{
    if (j->first_reason >= 0 || j->first_status != VKI_OK) return;
    sched_model_info si;
    sched_model_get_info(j->svc->s, i, &si);
    j->first_model_failed = si.state == SCHED_FAILED;
    j->first_reason = reason;
    j->first_status = st;
    j->first_retry_ms = retry_ms;
    snprintf(j->first_msg, sizeof j->first_msg, "%s", msg && msg[0] ? msg : vki_status_str(st));
}

/* Ends the job with st at the dispatcher's next turn (on_done runs there). */
static void end_soon(vki_job *j, vki_status st, const char *msg, double retry_ms)
{
    pthread_mutex_lock(&j->mu);
    j->res.status = st;
    j->res.retry_after_ms = retry_ms;
    snprintf(j->message, sizeof j->message, "%s", msg && msg[0] ? msg : vki_status_str(st));
    j->end_now = true;
    pthread_mutex_unlock(&j->mu);
    svc_push_ready(j->svc, j);
}

static bool request_fault(vki_status st)
{
    return st == VKI_ERR_INVALID_ARGUMENT || st == VKI_ERR_UNSUPPORTED || st == VKI_ERR_OUT_OF_MEMORY;
}

static void set_served(vki_job *j, int32_t i)
{
    sched_model_info si;
    sched_model_get_info(j->svc->s, i, &si);
    pthread_mutex_lock(&j->mu);
    snprintf(j->model_id, sizeof j->model_id, "%s", si.id);
    j->res.model_index = i;
    pthread_mutex_unlock(&j->mu);
}

/* Tries candidates from j->k on until one accepts the request. Returns
 * VKI_OK when one did or the job is ending (end_soon); a request fault of
 * the requested model itself is returned for the submit to report. */
static vki_status try_next(vki_job *j, bool at_submit)
{
    scheduler *s = j->svc->s;
    if (j->deadline > 0 && vki_time_ms() >= j->deadline) {
        end_soon(j, VKI_ERR_TIMEOUT, "the deadline passed before a model could take the job", 0);
        return VKI_OK;
    }
    pthread_mutex_lock(&j->svc->mu);
    const bool shutting = j->svc->shutting;
    pthread_mutex_unlock(&j->svc->mu);
    if (shutting) {
        end_soon(j, VKI_ERR_CANCELLED, "the service is shutting down", 0);
        return VKI_OK;
    }
    bool opening = false;
    for (; j->k < j->n_try; j->k++) {
        if (j->cancelled) break;
        const int32_t i = j->order[j->k];
        set_served(j, i);
        j->served = i;
        svc_fb_verdict v;
        int reason = svc_fb_precheck(j->svc, i, j->deadline, j->k + 1 < j->n_try, &v);
        if (reason >= 0) {
            note_first(j, i, reason, v.status, v.msg, v.retry_s * 1e3);
            opening |= reason == VKI_FALLBACK_LOADING && !j->rp.refuse_opening;
            continue;
        }
        sched_request *r = NULL;
        double eta_s = 0;
        bool render_failed = false;
        vki_status st = j->embed ? sched_submit_embed(s, i, (const char *const *)j->texts, j->n_texts, j->prio,
                                                      j->deadline, &r, &eta_s)
                                 : svc_submit_gen(j, i, &r, &eta_s, &render_failed);
        if (st == VKI_OK) {
            int32_t pos = 0;
            double wait_s = 0;
            sched_request_queue_info(r, &pos, &wait_s);
            pthread_mutex_lock(&j->mu);
            j->r = r;
            j->n_submits++;
            j->res.queued = true;
            j->res.queue_position = pos;
            j->res.eta_ms = wait_s * 1e3;
            const bool cancelled = j->cancelled;
            pthread_mutex_unlock(&j->mu);
            /* Everything the walk keeps is written before the request is
             * published: from the notify on, the dispatcher may process an
             * early end and walk on from j->k while the submitter is still
             * here (a try read at k, not k + 1, was a model tried twice and
             * the next never). */
            j->k++;
            if (cancelled) sched_request_cancel(r);
            sched_request_set_notify(r, on_request_news, j);
            svc_push_ready(j->svc, j); /* it may have ended before the notify was set */
            return VKI_OK;
        }
        const char *msg = vki_last_error();
        const bool untouched = j->first_reason < 0 && j->first_status == VKI_OK;
        if (render_failed) {
            /* The conversation does not fit this model's template: the
             * request's own fault, whichever candidate found it. */
            if (at_submit && untouched) return st;
            end_soon(j, st, msg, 0);
            return VKI_OK;
        }
        if (at_submit && request_fault(st) && untouched) return st;
        reason = svc_fb_judge(j->svc, i, st, eta_s);
        if (reason < 0) {
            /* Another model would not help: the job ends with this answer
             * (a full queue says when to retry), as `vkinfer serve` does. */
            end_soon(j, st, msg, eta_s * 1e3);
            return VKI_OK;
        }
        note_first(j, i, reason, st, msg, eta_s * 1e3);
    }
    if (opening && !j->cancelled) {
        /* A model still opening its file (just added) is not a refusal for
         * a library caller: try again when a model's state changes. */
        j->k = 0;
        j->first_reason = -1;
        j->first_status = VKI_OK;
        set_served(j, j->requested);
        j->served = j->requested;
        svc_park(j->svc, j);
        return VKI_OK;
    }
    if (j->cancelled) {
        end_soon(j, VKI_ERR_CANCELLED, "the job was cancelled", 0);
        return VKI_OK;
    }
    pthread_mutex_lock(&j->mu);
    j->res.refusal = (vki_fallback_reason)j->first_reason;
    j->res.refusal_model_failed = j->first_model_failed;
    pthread_mutex_unlock(&j->mu);
    end_soon(j, j->first_status, j->first_msg, j->first_retry_ms);
    return VKI_OK;
}

/* ===== The dispatcher's part ============================================ */

static void finish(vki_job *j, const sched_result *res)
{
    pthread_mutex_lock(&j->mu);
    if (j->ended) {
        pthread_mutex_unlock(&j->mu);
        return;
    }
    j->ended = true;
    sched_request *r = j->r;
    j->r = NULL;
    pthread_mutex_unlock(&j->mu);
    if (r) sched_request_set_notify(r, NULL, NULL);
    vki_job_result *o = &j->res;
    if (res) {
        o->status = res->status;
        snprintf(j->message, sizeof j->message, "%s", res->error ? res->error : "");
        o->n_prompt = res->n_prompt;
        o->n_generated = res->n_generated;
        o->stopped_by_eos = res->stopped_by_eos;
        o->stopped_by_string = res->stopped_by_string;
        o->queue_ms = res->queue_ms;
        o->ttft_ms = res->ttft_ms;
        o->n_cached = res->n_cached;
        o->started = res->start_order != 0;
    }
    if (r && j->embed && o->status == VKI_OK) {
        int32_t n = 0, dim = 0;
        const float *e = sched_request_embeddings(r, &n, &dim);
        if (e && (j->emb = malloc((size_t)n * (size_t)dim * sizeof *j->emb))) {
            memcpy(j->emb, e, (size_t)n * (size_t)dim * sizeof *j->emb);
            o->embeddings = j->emb;
            o->n_texts = n;
            o->dim = dim;
        } else if (e) {
            o->status = VKI_ERR_OUT_OF_MEMORY;
            snprintf(j->message, sizeof j->message, "out of memory copying the embeddings");
        }
    }
    if (o->status == VKI_OK) j->message[0] = '\0';
    o->message = j->message;
    o->model = j->model_id;
    o->requested = j->requested_id;
    o->fallback = svc_job_fallback(j);
    if (!j->embed) {
        o->text = j->text ? j->text : "";
        o->text_len = j->text_len;
    }
    if (o->status == VKI_OK && j->served != j->requested) svc_fb_count_add(j->svc, j->requested, j->served, j->first_reason);
    vki_service *svc = j->svc;
    pthread_mutex_lock(&j->mu);
    j->done_r = r; /* vki_job_poll reads the last output after the end */
    void (*on_done)(const vki_job_result *, void *) = j->rp.on_done;
    void (*on_news)(void *) = j->news_fn;
    void *news_user = j->news_user;
    j->in_callback = on_done || on_news;
    /* Final from here: a caller that on_done wakes reads it done (only
     * vki_job_wait waits for on_done to return). */
    o->done = true;
    pthread_mutex_unlock(&j->mu);
    if (on_done) on_done(o, j->rp.user);
    if (on_news) on_news(news_user);
    pthread_mutex_lock(&j->mu);
    j->in_callback = false;
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&svc->mu);
    svc->n_live--;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    svc_job_unref(j); /* the dispatcher's hold */
}

static bool append_text(vki_job *j, const char *chunk, size_t n)
{
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = VKI_MAX(j->text_cap * 2, j->text_len + n + 1);
        char *t = realloc(j->text, cap);
        if (!t) return false;
        j->text = t;
        j->text_cap = cap;
    }
    memcpy(j->text + j->text_len, chunk, n);
    j->text_len += n;
    j->text[j->text_len] = '\0';
    return true;
}

void svc_job_process(vki_job *j)
{
    pthread_mutex_lock(&j->mu);
    const bool skip = j->ended, end_now = j->end_now;
    sched_request *r = j->r;
    pthread_mutex_unlock(&j->mu);
    if (skip) return;
    if (end_now) {
        finish(j, NULL);
        return;
    }
    if (!r) {
        /* Parked (or cancelled while parked): try the candidates again. */
        try_next(j, false);
        return;
    }
    char *chunk = NULL;
    size_t n = 0;
    sched_result res;
    if (sched_request_poll(r, j->text_len, 0, &chunk, &n, &res) != VKI_OK) {
        /* The text could not be copied: cancel rather than lose it silently. */
        sched_request_cancel(r);
        return;
    }
    if (chunk) {
        pthread_mutex_lock(&j->mu);
        bool ok = append_text(j, chunk, n);
        j->res.n_generated = res.n_generated;
        bool (*on_token)(const char *, void *) = ok && !j->cancelled ? j->rp.on_token : NULL;
        j->in_callback = on_token != NULL;
        pthread_mutex_unlock(&j->mu);
        if (!ok) sched_request_cancel(r);
        bool go_on = !on_token || on_token(chunk, j->rp.user);
        pthread_mutex_lock(&j->mu);
        j->in_callback = false;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        if (!go_on) vki_job_cancel(j);
        free(chunk);
    }
    if (!res.done) return;
    /* A try that failed before producing anything moves to the next
     * candidate, as a refusal at submit does. */
    if (res.status != VKI_OK && res.n_generated == 0 && !j->cancelled && !atomic_load(&j->stay) && j->k < j->n_try) {
        int reason = svc_fb_judge(j->svc, j->served, res.status, 0);
        if (reason >= 0) {
            note_first(j, j->served, reason, res.status, res.error, 0);
            pthread_mutex_lock(&j->mu);
            j->r = NULL;
            pthread_mutex_unlock(&j->mu);
            sched_request_set_notify(r, NULL, NULL);
            sched_request_release(r);
            try_next(j, false);
            return;
        }
    }
    finish(j, &res);
}

/* ===== Submit =========================================================== */

static vki_status check_rp(const vki_request_params *rp, const char *fn)
{
    if (rp->priority < VKI_PRIORITY_INTERACTIVE || rp->priority > VKI_PRIORITY_BATCH)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: priority %d is none of VKI_PRIORITY_*", fn, (int)rp->priority);
    if (!(rp->deadline_ms >= 0))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: deadline_ms %g: expected >= 0 (0 = none)", fn, rp->deadline_ms);
    if (rp->candidates && (rp->n_candidates < 1 || rp->n_candidates > SVC_MAX_TRIES))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: n_candidates %d: expected 1 to %d with candidates", fn,
                        rp->n_candidates, SVC_MAX_TRIES);
    return VKI_OK;
}

/* rp->candidates: each an index of the service; entry 0 is the model asked
 * for, which `model` (when given, resolved to *i) must name. */
static vki_status check_candidates(vki_service *svc, const vki_request_params *rp, const char *model, sched_kind kind,
                                   const char *fn, int32_t *i)
{
    const int32_t n = sched_n_models(svc->s);
    for (int32_t k = 0; k < rp->n_candidates; k++)
        if (rp->candidates[k] < 0 || rp->candidates[k] >= n)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: candidates[%d] = %d: no such model (the service has %d)",
                            fn, k, rp->candidates[k], n);
    if (model && *i != rp->candidates[0])
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: candidates[0] is model %d, not '%s'", fn, rp->candidates[0],
                        model);
    *i = rp->candidates[0];
    sched_model_info si;
    sched_model_get_info(svc->s, *i, &si);
    if (si.kind != kind)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: candidates[0] '%s' is a %s model, not a %s one", fn, si.id,
                        sched_kind_name(si.kind), sched_kind_name(kind));
    return VKI_OK;
}

/* The model by id, or the first of the kind for NULL. */
static vki_status resolve(vki_service *svc, const char *model, sched_kind kind, const char *fn, int32_t *out)
{
    const int32_t n = sched_n_models(svc->s);
    sched_model_info si;
    if (!model) {
        for (int32_t i = 0; i < n; i++) {
            sched_model_get_info(svc->s, i, &si);
            if (si.kind == kind) return *out = i, VKI_OK;
        }
        return vki_fail(VKI_ERR_NOT_FOUND, "%s: the service has no %s model", fn, sched_kind_name(kind));
    }
    const int32_t i = sched_find(svc->s, model);
    if (i < 0) return vki_fail(VKI_ERR_NOT_FOUND, "%s: no model '%s' in the service", fn, model);
    sched_model_get_info(svc->s, i, &si);
    if (si.kind != kind)
        return vki_fail(VKI_ERR_UNSUPPORTED, "%s: model '%s' is a %s model, not a %s one", fn, model,
                        sched_kind_name(si.kind), sched_kind_name(kind));
    return *out = i, VKI_OK;
}

vki_job *svc_job_new(vki_service *svc, bool embed, const vki_request_params *rp, int32_t model)
{
    vki_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->svc = svc;
    atomic_init(&j->refs, 2); /* the caller's and the dispatcher's */
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->embed = embed;
    j->xp = vki_gen_default_params();
    j->rp = *rp;
    j->prio = (sched_prio)rp->priority;
    j->deadline = rp->deadline_ms > 0 ? vki_time_ms() + rp->deadline_ms : 0;
    j->requested = j->served = model;
    j->first_reason = -1;
    j->res.fallback = VKI_FALLBACK_NONE;
    j->res.refusal = VKI_FALLBACK_NONE;
    j->res.message = "";
    set_served(j, model);
    snprintf(j->requested_id, sizeof j->requested_id, "%s", j->model_id);
    j->res.model = j->model_id;
    j->res.requested = j->requested_id;
    return j;
}

vki_status svc_job_submit(vki_service *svc, vki_job *j, const vki_request_needs *need, vki_job **out)
{
    j->order[0] = j->requested;
    j->n_try = 1;
    if (j->rp.candidates) {
        for (int32_t k = 1; k < j->rp.n_candidates; k++) j->order[j->n_try++] = j->rp.candidates[k];
        j->rp.candidates = NULL; /* the caller's: copied */
    } else if (j->rp.allow_fallback)
        j->n_try += vki_service_fallback_candidates(svc, j->requested, need, j->order + 1, NULL, SVC_MAX_TRIES - 1);
    pthread_mutex_lock(&svc->mu);
    svc->n_live++;
    pthread_mutex_unlock(&svc->mu);
    vki_status st = try_next(j, true);
    if (st != VKI_OK) {
        pthread_mutex_lock(&svc->mu);
        svc->n_live--;
        pthread_cond_broadcast(&svc->cv);
        pthread_mutex_unlock(&svc->mu);
        svc_job_free(j);
        return st;
    }
    *out = j;
    return VKI_OK;
}

vki_status svc_check_request(vki_service *svc, const char *model, sched_kind kind, const vki_request_params *rp,
                             const char *fn, int32_t *i)
{
    VKI_TRY(check_rp(rp, fn));
    *i = -1;
    if (model || !rp->candidates) VKI_TRY(resolve(svc, model, kind, fn, i));
    if (rp->candidates) VKI_TRY(check_candidates(svc, rp, model, kind, fn, i));
    return VKI_OK;
}

vki_status vki_service_generate(vki_service *svc, const char *model, const char *prompt,
                                const vki_generate_params *gp, const vki_request_params *rp, vki_job **out)
{
    static const char fn[] = "vki_service_generate";
    if (out) *out = NULL;
    if (!svc || !prompt || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: svc, prompt and out are required", fn);
    const vki_generate_params gdef = vki_generate_default_params();
    const vki_request_params rdef = vki_request_default_params();
    if (!gp) gp = &gdef;
    if (!rp) rp = &rdef;
    int32_t i;
    VKI_TRY(svc_check_request(svc, model, SCHED_KIND_CHAT, rp, fn, &i));
    vki_job *j = svc_job_new(svc, false, rp, i);
    if (!j || !svc_job_copy_gen(j, prompt, gp)) {
        if (j) svc_job_free(j);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    const vki_request_needs need = {.capabilities = rp->capabilities,
                              .n_tokens = (int32_t)VKI_MIN(strlen(prompt) / 4 + (size_t)VKI_MAX(gp->n_predict, 0),
                                                           1u << 30)};
    return svc_job_submit(svc, j, &need, out);
}

vki_status vki_service_embed(vki_service *svc, const char *model, const char *const *texts, int32_t n_texts,
                             const vki_request_params *rp, vki_job **out)
{
    static const char fn[] = "vki_service_embed";
    if (out) *out = NULL;
    if (!svc || !texts || !out || n_texts <= 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: svc, texts (n_texts > 0) and out are required", fn);
    size_t bytes = 0;
    for (int32_t k = 0; k < n_texts; k++) {
        if (!texts[k]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: texts[%d] is NULL", fn, k);
        bytes += strlen(texts[k]);
    }
    const vki_request_params rdef = vki_request_default_params();
    if (!rp) rp = &rdef;
    int32_t i;
    VKI_TRY(svc_check_request(svc, model, SCHED_KIND_EMBEDDING, rp, fn, &i));
    vki_job *j = svc_job_new(svc, true, rp, i);
    if (!j || !copy_texts(j, texts, n_texts)) {
        if (j) svc_job_free(j);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    const vki_request_needs need = {.capabilities = rp->capabilities, .n_tokens = (int32_t)VKI_MIN(bytes / 4, 1u << 30)};
    return svc_job_submit(svc, j, &need, out);
}

/* ===== The caller's side ================================================ */

static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, double ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const long long ns = (long long)ts.tv_nsec + (long long)(ms * 1e6);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    pthread_cond_timedwait(cv, mu, &ts);
}

vki_status vki_job_wait(vki_job *j, int timeout_ms)
{
    if (!j) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_job_wait: job is NULL");
    pthread_mutex_lock(&j->mu);
    if (!j->done && svc_on_dispatcher(j->svc)) {
        pthread_mutex_unlock(&j->mu);
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_job_wait: called from a callback, which would wait for "
                        "itself (callbacks run on the service's dispatcher thread)");
    }
    const double until = vki_time_ms() + timeout_ms;
    while (!j->done && timeout_ms != 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&j->cv, &j->mu);
        } else {
            if (vki_time_ms() >= until) break;
            cond_wait_ms(&j->cv, &j->mu, until - vki_time_ms());
        }
    }
    const bool done = j->done;
    pthread_mutex_unlock(&j->mu);
    return done ? VKI_OK : vki_fail(VKI_ERR_TIMEOUT, "vki_job_wait: the job is still running after %d ms", timeout_ms);
}

void vki_job_get_result(vki_job *j, vki_job_result *out)
{
    if (!out) return;
    if (!j) {
        *out = (vki_job_result){.status = VKI_ERR_INVALID_ARGUMENT, .message = "job is NULL", .model = "",
                                .requested = "", .fallback = VKI_FALLBACK_NONE};
        return;
    }
    pthread_mutex_lock(&j->mu);
    *out = j->res;
    if (!out->done) out->fallback = svc_job_fallback(j);
    pthread_mutex_unlock(&j->mu);
}

void vki_job_cancel(vki_job *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->cancelled = true;
    if (j->r) sched_request_cancel(j->r);
    /* Parked, with no request to cancel: the dispatcher ends it. */
    const bool wake = !j->r && !j->ended && !j->end_now;
    pthread_mutex_unlock(&j->mu);
    if (wake) svc_push_ready(j->svc, j);
}

void vki_job_release(vki_job *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    const bool done = j->done;
    /* No callback after this returns: the caller may free what `user` points to. */
    j->rp.on_token = NULL;
    j->rp.on_done = NULL;
    atomic_store(&j->news_off, true);
    while (j->in_callback && !(!j->done && svc_on_dispatcher(j->svc))) pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    vki_job_set_news(j, NULL, NULL);
    if (!done) vki_job_cancel(j);
    svc_job_unref(j);
}

void vki_job_set_news(vki_job *j, void (*fn)(void *user), void *user)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    sched_request *r = j->r;
    /* The notify reads the hook under the request's lock: stopping it
     * waits out a call in progress, so the pair is never read half-written. */
    if (r) sched_request_set_notify(r, NULL, NULL);
    j->news_fn = fn;
    j->news_user = user;
    if (r) sched_request_set_notify(r, on_request_news, j);
    /* on_done's hook reads them under mu; a call of it in progress ends first */
    while (j->in_callback && !svc_on_dispatcher(j->svc)) pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    /* what came while the notify was off: the dispatcher looks again */
    if (r) svc_push_ready(j->svc, j);
}
