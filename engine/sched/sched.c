/*
 * sched.c: the scheduler object: models by id, the thread that loads each
 * one and then runs its worker, model states, shutdown, and the counters.
 * Requests and queues are in sched_request.c, the workers in sched_gen.c
 * and sched_embed.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/api_internal.h"
#include "engine/sched/sched_internal.h"
#include "error.h"
#include "util.h"

const double sched_bucket_s[SCHED_N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,    0.25,  0.5,    1.0,   2.5,  5.0,  10.0};

static const char *const prio_names[SCHED_N_PRIO] = {"interactive", "normal", "batch"};
static const char *const state_names[] = {"unloaded", "loading", "ready", "failed"};
static const char *const kind_names[] = {"chat", "embedding"};

const char *sched_prio_name(sched_prio p) { return (unsigned)p < SCHED_N_PRIO ? prio_names[p] : "?"; }
const char *sched_state_name(sched_state s) { return (unsigned)s < VKI_COUNT(state_names) ? state_names[s] : "?"; }
const char *sched_kind_name(sched_kind k) { return (unsigned)k < VKI_COUNT(kind_names) ? kind_names[k] : "?"; }

bool sched_prio_parse(const char *name, sched_prio *out)
{
    for (int i = 0; name && i < SCHED_N_PRIO; i++)
        if (!strcmp(name, prio_names[i])) {
            *out = (sched_prio)i;
            return true;
        }
    return false;
}

bool sched_kind_parse(const char *name, sched_kind *out)
{
    for (int i = 0; name && i < (int)VKI_COUNT(kind_names); i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (sched_kind)i;
            return true;
        }
    return false;
}

void sched_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

void sched_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double abs_ms)
{
    struct timespec ts;
    double sec = abs_ms / 1e3;
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)((sec - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    if (ts.tv_nsec < 0) ts.tv_nsec = 0;
    pthread_cond_timedwait(cv, mu, &ts);
}

void sched_histo_add(sched_histo *h, double seconds)
{
    int b = 0;
    while (b < SCHED_N_BUCKETS && seconds > sched_bucket_s[b]) b++;
    h->bucket[b]++;
    h->count++;
    h->sum_s += seconds;
}

sched_params sched_default_params(void)
{
    return (sched_params){.engine = vki_engine_default_params(), .max_queue = 64, .embed_wait_ms = 5,
                          .embed_token_budget = 0};
}

vki_status sched_create(const sched_params *p, scheduler **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_create: out is NULL");
    *out = NULL;
    sched_params sp = p ? *p : sched_default_params();
    if (sp.max_queue < 0 || sp.embed_wait_ms < 0 || sp.embed_token_budget < 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_create: max_queue, embed_wait_ms and embed_token_budget "
                                                  "must be >= 0 (got %d, %g, %d)",
                        sp.max_queue, sp.embed_wait_ms, sp.embed_token_budget);
    if (!sp.max_queue) sp.max_queue = 64;
    if (sp.embed_wait_ms == 0) sp.embed_wait_ms = 5;
    scheduler *s = calloc(1, sizeof *s);
    if (!s) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_create: out of memory");
    s->p = sp;
    atomic_init(&s->order, 0);
    vki_status st = vki_engine_create(&sp.engine, &s->eng);
    if (st != VKI_OK) {
        free(s);
        return st;
    }
    *out = s;
    return VKI_OK;
}

/* ===== Loading =========================================================== */

/* A load in progress stops when the scheduler shuts down. */
static bool on_progress(float progress, void *user)
{
    (void)progress;
    const sched_model *m = user;
    return !atomic_load(&m->stop);
}

static void set_failed(sched_model *m, const char *msg)
{
    pthread_mutex_lock(&m->mu);
    m->state = SCHED_FAILED;
    snprintf(m->error, sizeof m->error, "%s", msg);
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
}

static void *model_thread(void *arg)
{
    sched_model *m = arg;
    vki_model_params mp = m->mp;
    mp.progress = on_progress;
    mp.progress_user = m;
    double t0 = vki_time_ms();
    vki_model *md = NULL;
    vki_status s = vki_model_load(m->s->eng, m->path, &mp, &md);
    if (s != VKI_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", vki_status_str(s), vki_last_error());
        set_failed(m, msg);
        return NULL;
    }
    bool emb = vki_model_is_embedding(md);
    if (emb != (m->kind == SCHED_KIND_EMBEDDING)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s is a%s model (%s), but the model is configured as kind %s", m->path,
                 emb ? "n embedding" : " generation", vki_model_arch(md), sched_kind_name(m->kind));
        vki_model_destroy(md);
        set_failed(m, msg);
        return NULL;
    }
    pthread_mutex_lock(&m->mu);
    m->md = md;
    m->n_slots = emb ? 1 : mdl_n_seq_max(api_model_mdl(md));
    m->load_ms = vki_time_ms() - t0;
    m->state = SCHED_READY;
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
    if (emb) sched_embed_worker(m);
    else sched_gen_worker(m);
    return NULL;
}

static void model_free(sched_model *m)
{
    if (!m) return;
    vki_model_destroy(m->md);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->st_mu);
    pthread_cond_destroy(&m->cv);
    pthread_cond_destroy(&m->state_cv);
    free(m->id);
    free(m->path);
    free(m);
}

vki_status sched_add_model(scheduler *s, const sched_model_params *p)
{
    if (!s || !p || !p->id || !p->id[0] || !p->path)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_add_model: a model needs an id and a path");
    if (sched_find(s, p->id) >= 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_add_model: model id '%s' is used twice", p->id);
    if (s->shut) return vki_fail(VKI_ERR_CANCELLED, "sched_add_model: the scheduler is shut down");
    sched_model **nm = realloc(s->models, sizeof *nm * (size_t)(s->n_models + 1));
    if (!nm) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: out of memory");
    s->models = nm;
    sched_model *m = calloc(1, sizeof *m);
    if (!m) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: out of memory");
    m->s = s;
    m->id = strdup(p->id);
    m->path = strdup(p->path);
    m->kind = p->kind;
    m->mp = p->mp;
    m->state = SCHED_LOADING;
    m->n_slots = 1;
    atomic_init(&m->stop, false);
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->st_mu, NULL);
    sched_cond_init(&m->cv);
    sched_cond_init(&m->state_cv);
    if (!m->id || !m->path) {
        model_free(m);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: out of memory");
    }
    if (pthread_create(&m->thread, NULL, model_thread, m) != 0) {
        model_free(m);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: cannot start a thread for '%s'", p->id);
    }
    m->thread_started = true;
    s->models[s->n_models++] = m;
    return VKI_OK;
}

void sched_shutdown(scheduler *s)
{
    if (!s || s->shut) return;
    for (int32_t i = 0; i < s->n_models; i++) {
        sched_model *m = s->models[i];
        pthread_mutex_lock(&m->mu);
        atomic_store(&m->stop, true);
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
    for (int32_t i = 0; i < s->n_models; i++) {
        sched_model *m = s->models[i];
        if (m->thread_started) pthread_join(m->thread, NULL);
        m->thread_started = false;
        /* A model whose load failed never ran a worker; nothing is queued on it. */
        pthread_mutex_lock(&m->mu);
        sched_purge(m, 1e300);
        pthread_mutex_unlock(&m->mu);
    }
    s->shut = true;
}

void sched_destroy(scheduler *s)
{
    if (!s) return;
    sched_shutdown(s);
    for (int32_t i = 0; i < s->n_models; i++) model_free(s->models[i]);
    free(s->models);
    vki_engine_destroy(s->eng);
    free(s);
}

/* ===== Queries =========================================================== */

int32_t sched_n_models(const scheduler *s) { return s ? s->n_models : 0; }

int32_t sched_find(const scheduler *s, const char *id)
{
    for (int32_t i = 0; s && id && i < s->n_models; i++)
        if (!strcmp(s->models[i]->id, id)) return i;
    return -1;
}

void sched_model_get_info(const scheduler *s, int32_t i, sched_model_info *out)
{
    memset(out, 0, sizeof *out);
    if (!s || i < 0 || i >= s->n_models) return;
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    out->id = m->id;
    out->path = m->path;
    out->kind = m->kind;
    out->state = m->state;
    snprintf(out->error, sizeof out->error, "%s", m->error);
    out->load_ms = m->load_ms;
    if (m->md) {
        out->n_ctx = vki_model_n_ctx(m->md);
        out->n_seq_max = mdl_n_seq_max(api_model_mdl(m->md));
        snprintf(out->backend, sizeof out->backend, "%s", vki_model_backend_name(m->md));
    }
    pthread_mutex_unlock(&m->mu);
}

bool sched_wait_loaded(scheduler *s, int timeout_ms)
{
    double until = vki_time_ms() + timeout_ms;
    bool all = true;
    for (int32_t i = 0; s && i < s->n_models; i++) {
        sched_model *m = s->models[i];
        pthread_mutex_lock(&m->mu);
        while (m->state == SCHED_LOADING && (timeout_ms < 0 || vki_time_ms() < until)) {
            if (timeout_ms < 0) pthread_cond_wait(&m->state_cv, &m->mu);
            else sched_cond_wait_until(&m->state_cv, &m->mu, until);
        }
        all &= m->state == SCHED_READY;
        pthread_mutex_unlock(&m->mu);
    }
    return all;
}

const vki_model *sched_model_handle(const scheduler *s, int32_t i)
{
    if (!s || i < 0 || i >= s->n_models) return NULL;
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    const vki_model *md = m->state == SCHED_READY ? m->md : NULL;
    pthread_mutex_unlock(&m->mu);
    return md;
}

void sched_model_get_stats(scheduler *s, int32_t i, sched_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s || i < 0 || i >= s->n_models) return;
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    pthread_mutex_lock(&m->st_mu);
    *out = m->st;
    pthread_mutex_unlock(&m->st_mu);
    for (int p = 0; p < SCHED_N_PRIO; p++) out->queued[p] = m->n_queued[p];
    out->active = m->n_active;
    pthread_mutex_unlock(&m->mu);
}
