/*
 * sched.c: the scheduler object: models by id, the thread of each model
 * (open the header, then load / serve / unload as demand, budget and
 * keep_alive say), model states, shutdown, and the counters. Requests and
 * queues are in sched_request.c, the workers in sched_gen.c and
 * sched_embed.c, budget and eviction in sched_resid.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/api_internal.h"
#include "engine/sched/emb_cache.h"
#include "engine/sched/sched_internal.h"
#include "engine/tokenizer/tokenizer.h"
#include "error.h"
#include "loader/model_file.h"
#include "util.h"

const double sched_bucket_s[SCHED_N_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,    0.25,  0.5,    1.0,   2.5,  5.0,  10.0};

static const char *const prio_names[SCHED_N_PRIO] = {"interactive", "normal", "batch"};
static const char *const state_names[] = {"unloaded", "loading", "resident-gpu", "resident-cpu", "failed"};
static const char *const kind_names[] = {"chat", "embedding"};

const char *sched_prio_name(sched_prio p) { return (unsigned)p < SCHED_N_PRIO ? prio_names[p] : "?"; }
const char *sched_state_name(sched_state s) { return (unsigned)s < VKI_COUNT(state_names) ? state_names[s] : "?"; }
bool sched_state_resident(sched_state s) { return s == SCHED_RESIDENT_GPU || s == SCHED_RESIDENT_CPU; }
const char *sched_kind_name(sched_kind k) { return (unsigned)k < VKI_COUNT(kind_names) ? kind_names[k] : "?"; }

/* The services that name a class instead (issue 13): a chat waits on every
 * token, an NPC line or a search on one answer, a summary on nobody. */
static const struct { const char *name; sched_prio prio; } prio_services[] = {
    {"chat", SCHED_PRIO_INTERACTIVE}, {"npc", SCHED_PRIO_NORMAL}, {"search", SCHED_PRIO_NORMAL},
    {"summary", SCHED_PRIO_BATCH}};

bool sched_prio_parse(const char *name, sched_prio *out)
{
    for (int i = 0; name && i < SCHED_N_PRIO; i++)
        if (!strcmp(name, prio_names[i])) {
            *out = (sched_prio)i;
            return true;
        }
    for (size_t i = 0; name && i < VKI_COUNT(prio_services); i++)
        if (!strcmp(name, prio_services[i].name)) {
            *out = prio_services[i].prio;
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
                          .embed_token_budget = 0, .quantum_ms = 2000, .quantum_loads = 4, .turn_drain_ms = 1000,
                          .arb_chunk_tokens = 64,
                          .arb_aging_ms = 500, .arb_hold_ms = 2};
}

vki_status sched_create(const sched_params *p, scheduler **out)
{
    if (!out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_create: out is NULL");
    *out = NULL;
    sched_params sp = p ? *p : sched_default_params();
    if (sp.max_queue < 0 || sp.embed_wait_ms < 0 || sp.embed_token_budget < 0 || sp.vram_fraction < 0 ||
        sp.vram_fraction > 1)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_create: max_queue, embed_wait_ms and embed_token_budget "
                                                  "must be >= 0 and vram_fraction in [0, 1] (got %d, %g, %d, %g)",
                        sp.max_queue, sp.embed_wait_ms, sp.embed_token_budget, sp.vram_fraction);
    if (!(sp.quantum_ms >= 0 && sp.quantum_ms <= 1e7) || !(sp.quantum_loads >= 0 && sp.quantum_loads <= 1e3) ||
        !(sp.turn_drain_ms >= 0 && sp.turn_drain_ms <= 1e7) ||
        sp.arb_chunk_tokens < 0 || !(sp.arb_aging_ms >= 0 && sp.arb_aging_ms <= 1e7) || !isfinite(sp.arb_hold_ms) ||
        sp.arb_hold_ms > 1e4)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_create: quantum_ms in [0, 1e7], quantum_loads in [0, 1000], "
                                                  "turn_drain_ms in [0, 1e7], arb_chunk_tokens >= 0, arb_aging_ms in "
                                                  "[0, 1e7] and arb_hold_ms <= 1e4 (got %g, %g, %g, %d, %g, %g)",
                        sp.quantum_ms, sp.quantum_loads, sp.turn_drain_ms, sp.arb_chunk_tokens, sp.arb_aging_ms,
                        sp.arb_hold_ms);
    if (!sp.max_queue) sp.max_queue = 64;
    if (sp.embed_wait_ms == 0) sp.embed_wait_ms = 5;
    if (sp.quantum_ms == 0) sp.quantum_ms = 2000;
    if (sp.quantum_loads == 0) sp.quantum_loads = 4;
    if (sp.turn_drain_ms == 0) sp.turn_drain_ms = 1000;
    if (sp.arb_chunk_tokens == 0) sp.arb_chunk_tokens = 64;
    if (sp.arb_aging_ms == 0) sp.arb_aging_ms = 500;
    if (sp.arb_hold_ms == 0) sp.arb_hold_ms = 2;
    scheduler *s = calloc(1, sizeof *s);
    if (s && !(s->models = calloc(SCHED_MAX_MODELS, sizeof *s->models))) {
        free(s);
        s = NULL;
    }
    if (!s) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_create: out of memory");
    s->p = sp;
    atomic_init(&s->order, 0);
    atomic_init(&s->emb_gen_next, 0);
    sched_resid_init(s);
    vki_status st = vki_engine_create(&s->p.engine, &s->eng);
    if (st != VKI_OK) {
        free(s->models);
        free(s);
        return st;
    }
    pthread_mutex_init(&s->res_mu, NULL);
    pthread_mutex_init(&s->add_mu, NULL);
    sched_cond_init(&s->res_cv);
    sched_arb_init(&s->arb_cpu, s->p.arb_aging_ms, s->p.arb_hold_ms);
    sched_arb_init(&s->arb_dev, s->p.arb_aging_ms, s->p.arb_hold_ms);
    s->p.warm_state_path = NULL; /* the caller's string; ours is warm_path */
    if (sp.emb_cache_bytes) s->ecache = emb_cache_create(sp.emb_cache_bytes);
    if ((sp.warm_state_path && !(s->warm_path = strdup(sp.warm_state_path))) || (sp.emb_cache_bytes && !s->ecache)) {
        emb_cache_destroy(s->ecache);
        free(s->warm_path);
        vki_engine_destroy(s->eng);
        pthread_mutex_destroy(&s->res_mu);
        pthread_mutex_destroy(&s->add_mu);
        pthread_cond_destroy(&s->res_cv);
        free(s->models);
        free(s);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_create: out of memory");
    }
    sched_warm_init(s);
    sched_warm_start(s);
    *out = s;
    return VKI_OK;
}

/* ===== The model thread ================================================== */

/* Copies msg into m->error, cut to fit (a refusal lists every resident model). */
static void set_error(sched_model *m, const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    if (n >= sizeof m->error) n = sizeof m->error - 1;
    if (n) memcpy(m->error, msg, n);
    m->error[n] = '\0';
}

static void set_state(sched_model *m, sched_state st, const char *msg)
{
    pthread_mutex_lock(&m->mu);
    m->state = st;
    if (st == SCHED_FAILED && m->fail_status == VKI_OK) m->fail_status = VKI_ERR_INTERNAL;
    m->started |= st != SCHED_LOADING;
    set_error(m, msg);
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
    sched_notify(m);
}

/* Opens the header and tokenizer, which stay for the model's life; after
 * this requests can queue. */
static vki_status open_front(sched_model *m, char *msg, size_t size)
{
    vki_status st = vki_file_open(m->path, &m->file);
    if (st == VKI_OK && (st = vki_tokenizer_create(m->file, &m->tok)) != VKI_OK) vki_fail_prefix(st, "%s", m->path);
    if (st != VKI_OK) {
        snprintf(msg, size, "%s: %s", vki_status_str(st), vki_last_error());
        m->fail_status = st;
        return st;
    }
    bool emb = mdl_file_is_embedding(m->file);
    if (emb != (m->kind == SCHED_KIND_EMBEDDING)) {
        snprintf(msg, size, "%s is a%s model (%s), but the model is configured as kind %s", m->path,
                 emb ? "n embedding" : " generation", vki_file_arch(m->file), sched_kind_name(m->kind));
        m->fail_status = VKI_ERR_INVALID_ARGUMENT;
        return VKI_ERR_INVALID_ARGUMENT;
    }
    sched_shape sh;
    sched_resid_estimate(m->file, m->tok, &m->mp, &sh);
    pthread_mutex_lock(&m->mu);
    m->shape = sh;
    m->can_queue = true;
    pthread_mutex_unlock(&m->mu);
    return VKI_OK;
}

static int32_t n_queued(const sched_model *m) { return m->n_queued[0] + m->n_queued[1] + m->n_queued[2]; }

/* Ends every queued request with st (a refused load: the requests asked for it). */
static void fail_queued(sched_model *m, vki_status st, const char *msg)
{
    pthread_mutex_lock(&m->mu);
    sched_request *r;
    while ((r = sched_pop(m))) sched_finish(m, r, st, msg);
    pthread_mutex_unlock(&m->mu);
}

/* Unloads after the worker returned (evicted, or keep_alive passed). */
static void unload(sched_model *m)
{
    pthread_mutex_lock(&m->mu);
    const bool yielded = m->yield, evicted = m->evict && !yielded, broken = m->brk_unload;
    if (yielded) {
        /* How long its turns' ends take to drain: the ETA of the next turns. */
        const double d = vki_time_ms() - m->t_yield;
        m->drain_ema_ms = m->drain_ema_ms > 0 ? 0.8 * m->drain_ema_ms + 0.2 * d : d;
    }
    vki_model *md = m->md;
    m->md = NULL;
    m->evict = m->yield = m->brk_unload = false;
    pthread_mutex_unlock(&m->mu);
    vki_model_destroy(md);
    sched_resid_release(m, &m->gpu_bytes);
    pthread_mutex_lock(&m->st_mu);
    if (broken) m->st.breaker_reloads++;
    else if (yielded) m->st.yields++;
    else if (evicted) m->st.evictions++;
    else m->st.idle_unloads++;
    pthread_mutex_unlock(&m->st_mu);
    /* After a breaker opened, the half-open probe reloads it. */
    set_state(m, SCHED_UNLOADED, broken ? "unloaded: its circuit breaker opened; the next request after the "
                                          "recovery time reloads it" : NULL);
}

/* Makes md the model's and says so (its thread, no lock held). */
static void install(sched_model *m, vki_model *md, bool on_gpu, double load_ms)
{
    /* first: a backend change starts a new generation before anything is served */
    if (m->kind == SCHED_KIND_EMBEDDING) sched_ecache_installed(m, md);
    pthread_mutex_lock(&m->mu);
    m->md = md;
    m->n_slots = m->kind == SCHED_KIND_EMBEDDING ? 1 : mdl_n_seq_max(api_model_mdl(md));
    m->load_ms = load_ms;
    /* One slow load on a busy box would set the next turns' length alone. */
    m->load_ema_ms = m->load_ema_ms > 0 ? 0.7 * m->load_ema_ms + 0.3 * load_ms : load_ms;
    m->t_used = m->t_resident = vki_time_ms();
    m->evict = m->yield = false;
    /* The device's arbiter: the CPU backend and the Vulkan device are separate. */
    m->arb = mdl_backend(api_model_mdl(md))->kind == VKI_BACKEND_CPU ? &m->s->arb_cpu : &m->s->arb_dev;
    m->state = on_gpu ? SCHED_RESIDENT_GPU : SCHED_RESIDENT_CPU;
    m->started = true;
    m->error[0] = '\0';
    m->swap_installing = false;
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
    sched_notify(m);
    sched_warm_note_load(m, load_ms);
}

static void model_run(sched_model *m)
{
    char msg[2048];
    sched_notify(m); /* loading: the header first */
    vki_status st = open_front(m, msg, sizeof msg);
    if (st != VKI_OK) {
        set_state(m, SCHED_FAILED, msg);
        return;
    }
    /* At start: load what fits without evicting, unless keep_alive 0 says
     * it would be unloaded at once. After a swap that drained: load now. */
    bool at_start = !m->on_demand && !(m->has_keep_alive && m->keep_alive_ms <= 0), load_now = at_start;
    set_state(m, at_start ? SCHED_LOADING : SCHED_UNLOADED, NULL);
    for (;;) {
        pthread_mutex_lock(&m->mu);
        while (!atomic_load(&m->stop) && !load_now && !m->preload && !n_queued(m) && m->swap < SCHED_SWAP_READY &&
               !atomic_load(&m->removing))
            pthread_cond_wait(&m->cv, &m->mu);
        /* Removed, and what it accepted has been served: no load, no swap. */
        const bool gone = atomic_load(&m->removing) && !n_queued(m);
        /* Warm-up loads as at start: beside what is resident, never
         * evicting (the planner made the room it decided on), and a load
         * that does not fit is no error. */
        if (m->preload && !n_queued(m)) at_start = load_now = true;
        m->preload = false;
        const bool stop = atomic_load(&m->stop), swap = m->swap >= SCHED_SWAP_READY;
        pthread_mutex_unlock(&m->mu);
        if (stop || gone) break;
        vki_model *md = NULL;
        bool on_gpu = false;
        double load_ms = 0;
        if (swap) {
            /* A reload finished: the old model (if any) goes; the new one is
             * loaded already, or loads at the next turn. */
            load_now = !sched_swap_apply(m, &md, &on_gpu, &load_ms);
            if (load_now) continue;
        } else {
            set_state(m, SCHED_LOADING, NULL);
            /* load_ms is the load alone: the wait for another model's turn
             * before it is no cost of evicting this one, nor of a swap. */
            if (sched_breaker_test_fail(m, true))
                st = vki_fail(VKI_ERR_DEVICE_LOST, "injected load failure (test_fail.loads, for tests)");
            else
                st = sched_resid_load(m, !at_start, &md, &on_gpu, &load_ms);
            snprintf(msg, sizeof msg, "%s", st == VKI_OK ? "" : vki_last_error());
            const bool was_start = at_start;
            at_start = load_now = false;
            if (st != VKI_OK && was_start && st == VKI_ERR_OUT_OF_DEVICE_MEMORY) {
                set_state(m, SCHED_UNLOADED, NULL); /* not an error: the first request loads it, evicting */
                continue;
            }
            if (st == VKI_ERR_CANCELLED && atomic_load(&m->stop)) break;
            if (st == VKI_ERR_CANCELLED) { /* it waited for a turn and nobody waits for it any more */
                set_state(m, SCHED_UNLOADED, NULL);
                continue;
            }
            if (st == VKI_ERR_OUT_OF_DEVICE_MEMORY) {
                /* No room now: these requests fail, a later one tries again.
                 * The state first, so whoever sees a request end sees why. */
                set_state(m, SCHED_UNLOADED, msg);
                fail_queued(m, st, msg);
                continue;
            }
            if (st != VKI_OK) {
                char full[2048 + 32];
                snprintf(full, sizeof full, "%s: %s", vki_status_str(st), msg);
                /* A file that cannot be read or is not supported fails at once;
                 * a device or internal failure counts on the breaker, and the
                 * model stays unloaded (the next request tries again) until the
                 * breaker says it failed for good. */
                sched_breaker_verdict v = SCHED_BREAKER_DEAD;
                const bool transient = st != VKI_ERR_BAD_FILE && sched_breaker_counts(st);
                if (transient) v = sched_breaker_record(m);
                if (v != SCHED_BREAKER_DEAD) {
                    vki_status end = v == SCHED_BREAKER_TRIP ? VKI_ERR_DEVICE_LOST : st;
                    if (v == SCHED_BREAKER_TRIP)
                        snprintf(full, sizeof full, "model '%s' is unavailable: its circuit breaker opened after "
                                 "repeated failures (last: %s: %.1900s)", m->id, vki_status_str(st), msg);
                    set_state(m, SCHED_UNLOADED, full);
                    fail_queued(m, end, full);
                    continue;
                }
                if (transient)
                    snprintf(full, sizeof full, "model '%s' failed: reloaded after its circuit breaker opened, "
                             "it failed again (%s: %.1900s)", m->id, vki_status_str(st), msg);
                pthread_mutex_lock(&m->mu);
                m->fail_status = transient ? VKI_ERR_DEVICE_LOST : st;
                pthread_mutex_unlock(&m->mu);
                set_state(m, SCHED_FAILED, full);
                fail_queued(m, st, full);
                break;
            }
        }
        install(m, md, on_gpu, load_ms);
        if (m->kind == SCHED_KIND_EMBEDDING) sched_embed_worker(m);
        else sched_gen_worker(m);
        if (atomic_load(&m->stop)) break;
        pthread_mutex_lock(&m->mu);
        const bool failed = m->state == SCHED_FAILED; /* the worker could not start */
        const bool swapping = m->swap >= SCHED_SWAP_READY; /* the next turn switches */
        pthread_mutex_unlock(&m->mu);
        if (failed) {
            /* Declared failed (its breaker): give back what it holds. */
            pthread_mutex_lock(&m->mu);
            vki_model *dead = m->md;
            m->md = NULL;
            pthread_mutex_unlock(&m->mu);
            vki_model_destroy(dead);
            sched_resid_release(m, &m->gpu_bytes);
            break;
        }
        if (!swapping) unload(m);
    }
}

/* The end of a removed model (its thread has returned): what it holds is
 * given back, a reload in progress is waited for and thrown away, and the
 * slot is marked retired. The file and tokenizer stay for sched_destroy. */
static void retire(sched_model *m)
{
    sched_swap_join(m);
    pthread_mutex_lock(&m->mu);
    vki_model *md = m->md, *swap_md = m->swap_md;
    m->md = m->swap_md = NULL;
    m->swap = SCHED_SWAP_NONE;
    sched_request *r; /* none: submits are refused once removing is set */
    while ((r = sched_pop(m))) sched_finish(m, r, VKI_ERR_NOT_FOUND, "the model was removed");
    m->removed = true;
    m->state = SCHED_UNLOADED;
    set_error(m, "removed (the configuration no longer has it)");
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
    vki_model_destroy(md);
    vki_model_destroy(swap_md);
    sched_resid_release(m, &m->gpu_bytes);
    sched_resid_release(m, &m->swap_gpu_bytes);
    emb_cache_drop_model(m->s->ecache, m->id); /* its vectors are of no use any more */
    sched_notify(m);
}

static void *model_thread(void *arg)
{
    sched_model *m = arg;
    model_run(m);
    /* Whichever of this and sched_remove_model comes second retires it. */
    pthread_mutex_lock(&m->mu);
    m->thread_done = true;
    const bool removed = atomic_load(&m->removing) && !atomic_load(&m->stop);
    pthread_mutex_unlock(&m->mu);
    if (removed) retire(m);
    return NULL;
}

bool sched_idle_wait(sched_model *m)
{
    if (m->evict || m->yield || m->swap >= SCHED_SWAP_READY) return true;
    if (atomic_load(&m->removing) && !n_queued(m)) return true;
    if (!m->has_keep_alive) {
        pthread_cond_wait(&m->cv, &m->mu);
        return false;
    }
    double until = m->t_used + m->keep_alive_ms;
    if (vki_time_ms() >= until) return true;
    sched_cond_wait_until(&m->cv, &m->mu, until);
    return false;
}

static void model_free(sched_model *m)
{
    if (!m) return;
    sched_swap_free(m);
    sched_fb_free(m);
    vki_model_destroy(m->md);
    vki_tokenizer_destroy(m->tok);
    vki_file_close(m->file);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->st_mu);
    pthread_cond_destroy(&m->cv);
    pthread_cond_destroy(&m->state_cv);
    free(m->id);
    free(m->path);
    free(m);
}

static vki_status add_model(scheduler *s, const sched_model_params *p)
{
    if (sched_find(s, p->id) >= 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_add_model: model id '%s' is used twice", p->id);
    if (s->shut) return vki_fail(VKI_ERR_CANCELLED, "sched_add_model: the scheduler is shut down");
    if (s->n_models >= SCHED_MAX_MODELS)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: all %d model slots are used (removed models keep "
                        "theirs until a restart)", SCHED_MAX_MODELS);
    sched_model *m = calloc(1, sizeof *m);
    if (!m) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: out of memory");
    m->s = s;
    m->id = strdup(p->id);
    m->path = strdup(p->path);
    m->kind = p->kind;
    m->mp = p->mp;
    m->has_keep_alive = p->has_keep_alive;
    m->keep_alive_ms = p->keep_alive_ms < 0 ? 0 : p->keep_alive_ms;
    m->pin = p->pin;
    m->fallback_cpu = p->fallback_cpu;
    m->on_demand = p->on_demand;
    m->prefix_reuse = !p->no_prefix_reuse;
    sched_breaker_init(&m->brk, &p->fb.breaker);
    m->test_fail_loads = p->fb.test_fail_loads > 0 ? p->fb.test_fail_loads : 0;
    m->test_fail_steps = p->fb.test_fail_steps > 0 ? p->fb.test_fail_steps : 0;
    m->t_used = m->t_freq = vki_time_ms();
    m->state = SCHED_LOADING;
    m->n_slots = 1;
    m->emb_pooling = m->emb_backend = -1;
    m->emb_gen = atomic_fetch_add(&s->emb_gen_next, 1) + 1;
    atomic_init(&m->stop, false);
    atomic_init(&m->removing, false);
    atomic_init(&m->fb, NULL);
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->st_mu, NULL);
    sched_cond_init(&m->cv);
    sched_cond_init(&m->state_cv);
    if (!m->id || !m->path || !sched_fb_copy(m, &p->fb)) {
        model_free(m);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: out of memory");
    }
    /* Listed before its thread starts, so its reservations count for the
     * others; the slot is written before the count that publishes it. */
    pthread_mutex_lock(&s->res_mu);
    s->models[s->n_models] = m;
    s->n_models++;
    pthread_mutex_unlock(&s->res_mu);
    if (pthread_create(&m->thread, NULL, model_thread, m) != 0) {
        pthread_mutex_lock(&s->res_mu);
        s->n_models--;
        pthread_mutex_unlock(&s->res_mu);
        model_free(m);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_add_model: cannot start a thread for '%s'", p->id);
    }
    m->thread_started = true;
    return VKI_OK;
}

vki_status sched_add_model(scheduler *s, const sched_model_params *p)
{
    if (!s || !p || !p->id || !p->id[0] || !p->path)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_add_model: a model needs an id and a path");
    pthread_mutex_lock(&s->add_mu);
    vki_status st = add_model(s, p);
    pthread_mutex_unlock(&s->add_mu);
    return st;
}

vki_status sched_remove_model(scheduler *s, int32_t i)
{
    if (!s) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_remove_model: no scheduler");
    pthread_mutex_lock(&s->add_mu);
    if (i < 0 || i >= s->n_models || atomic_load(&s->models[i]->removing)) {
        pthread_mutex_unlock(&s->add_mu);
        return vki_fail(VKI_ERR_NOT_FOUND, "sched_remove_model: no model with index %d (or it is removed)", i);
    }
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    atomic_store(&m->removing, true);
    const bool done = m->thread_done || !m->thread_started; /* a failed model's thread has ended */
    pthread_cond_broadcast(&m->cv);
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
    sched_notify(m);
    if (done && !s->shut) retire(m);
    pthread_mutex_unlock(&s->add_mu);
    return VKI_OK;
}

vki_status sched_model_update(scheduler *s, int32_t i, const sched_model_params *p)
{
    if (!s || !p) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_model_update: no scheduler or params");
    pthread_mutex_lock(&s->add_mu);
    vki_status st = VKI_OK;
    if (i < 0 || i >= s->n_models || atomic_load(&s->models[i]->removing)) {
        st = vki_fail(VKI_ERR_NOT_FOUND, "sched_model_update: no model with index %d (or it is removed)", i);
    } else {
        sched_model *m = s->models[i];
        pthread_mutex_lock(&m->mu);
        m->has_keep_alive = p->has_keep_alive;
        m->keep_alive_ms = p->keep_alive_ms < 0 ? 0 : p->keep_alive_ms;
        m->pin = p->pin;
        m->fallback_cpu = p->fallback_cpu;
        pthread_cond_broadcast(&m->cv); /* an idle worker waits by the old keep_alive */
        pthread_mutex_unlock(&m->mu);
        if (!sched_fb_copy(m, &p->fb)) st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_model_update: out of memory");
    }
    pthread_mutex_unlock(&s->add_mu);
    return st;
}

void sched_shutdown(scheduler *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->add_mu); /* no model comes or goes meanwhile */
    if (s->shut) {
        pthread_mutex_unlock(&s->add_mu);
        return;
    }
    sched_warm_stop(s);
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
        /* Before any model is freed: a swap's reservation reads them all. */
        pthread_mutex_lock(&m->mu);
        bool swap_started = m->swap_started;
        pthread_mutex_unlock(&m->mu);
        if (swap_started) sched_swap_join(m);
        /* A model whose load failed never ran a worker; nothing is queued on it. */
        pthread_mutex_lock(&m->mu);
        sched_purge(m, 1e300);
        pthread_mutex_unlock(&m->mu);
    }
    s->shut = true;
    pthread_mutex_unlock(&s->add_mu);
}

void sched_destroy(scheduler *s)
{
    if (!s) return;
    sched_shutdown(s);
    for (int32_t i = 0; i < s->n_models; i++) model_free(s->models[i]);
    free(s->models);
    vki_engine_destroy(s->eng);
    pthread_mutex_destroy(&s->res_mu);
    pthread_mutex_destroy(&s->add_mu);
    pthread_cond_destroy(&s->res_cv);
    sched_warm_free(s);
    sched_arb_deinit(&s->arb_cpu);
    sched_arb_deinit(&s->arb_dev);
    emb_cache_destroy(s->ecache);
    free(s);
}

/* ===== Queries =========================================================== */

int32_t sched_n_models(const scheduler *s) { return s ? s->n_models : 0; }

int32_t sched_find(const scheduler *s, const char *id)
{
    for (int32_t i = 0; s && id && i < s->n_models; i++)
        if (!atomic_load(&s->models[i]->removing) && !strcmp(s->models[i]->id, id)) return i;
    return -1;
}

/* What m is now (model mu held). */
static void fill_info(const sched_model *m, sched_model_info *out)
{
    memset(out, 0, sizeof *out);
    out->id = m->id;
    out->path = m->path;
    out->kind = m->kind;
    out->state = m->state;
    memcpy(out->error, m->error, sizeof out->error);
    out->can_queue = m->can_queue;
    out->reloading = m->swap != SCHED_SWAP_NONE || m->swap_installing;
    out->removing = atomic_load(&m->removing);
    out->removed = m->removed;
    out->generation = (uint64_t)m->n_retired;
    out->started = m->started;
    out->pin = m->pin;
    out->fallback_cpu = m->fallback_cpu;
    out->keep_alive_ms = m->has_keep_alive ? m->keep_alive_ms : -1;
    out->load_ms = m->load_ms;
    out->idle_ms = vki_time_ms() - m->t_used;
    out->est_bytes = m->shape.est_bytes;
    if (m->md) {
        out->bytes = vki_model_memory_bytes(m->md);
        out->n_ctx = vki_model_n_ctx(m->md);
        out->n_seq_max = mdl_n_seq_max(api_model_mdl(m->md));
        snprintf(out->backend, sizeof out->backend, "%s", vki_model_backend_name(m->md));
    }
    out->fail_status = m->state == SCHED_FAILED ? m->fail_status : VKI_OK;
    double now = sched_breaker_clock(m->s);
    sched_model *mm = (sched_model *)m; /* the breaker turns half-open lazily */
    pthread_mutex_lock(&mm->st_mu);
    out->breaker = sched_breaker_at(&mm->brk, now);
    if (out->breaker == SCHED_BREAKER_OPEN) out->breaker_retry_s = (mm->brk.opened_at + mm->brk.p.recovery_ms - now) / 1e3;
    out->breaker_failures = sched_breaker_recent(&mm->brk, now);
    out->breaker_trips = mm->brk.trips;
    pthread_mutex_unlock(&mm->st_mu);
}

void sched_model_get_info(const scheduler *s, int32_t i, sched_model_info *out)
{
    memset(out, 0, sizeof *out);
    if (!s || i < 0 || i >= s->n_models) return;
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    fill_info(m, out);
    pthread_mutex_unlock(&m->mu);
}

void sched_notify(sched_model *m)
{
    if (!m->s->p.on_state) return;
    sched_model_info info;
    pthread_mutex_lock(&m->mu);
    const bool changed = !m->told || m->told_state != m->state || m->told_path != m->path ||
                         strcmp(m->told_error, m->error) != 0;
    if (changed) {
        m->told = true;
        m->told_state = m->state;
        m->told_path = m->path;
        memcpy(m->told_error, m->error, sizeof m->told_error);
        fill_info(m, &info);
    }
    pthread_mutex_unlock(&m->mu);
    if (changed) m->s->p.on_state(&info, m->s->p.on_state_user);
}

bool sched_wait_loaded(scheduler *s, int timeout_ms)
{
    double until = vki_time_ms() + timeout_ms;
    bool all = true;
    for (int32_t i = 0; s && i < s->n_models; i++) {
        sched_model *m = s->models[i];
        if (atomic_load(&m->removing)) continue;
        pthread_mutex_lock(&m->mu);
        while (m->state == SCHED_LOADING && (timeout_ms < 0 || vki_time_ms() < until)) {
            if (timeout_ms < 0) pthread_cond_wait(&m->state_cv, &m->mu);
            else sched_cond_wait_until(&m->state_cv, &m->mu, until);
        }
        all &= sched_state_resident(m->state);
        pthread_mutex_unlock(&m->mu);
    }
    return all;
}

bool sched_wait_state(scheduler *s, int32_t i, sched_state want, int timeout_ms)
{
    if (!s || i < 0 || i >= s->n_models) return false;
    sched_model *m = s->models[i];
    double until = vki_time_ms() + timeout_ms;
    pthread_mutex_lock(&m->mu);
    while (m->state != want && (timeout_ms < 0 || vki_time_ms() < until)) {
        if (timeout_ms < 0) pthread_cond_wait(&m->state_cv, &m->mu);
        else sched_cond_wait_until(&m->state_cv, &m->mu, until);
    }
    bool ok = m->state == want;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

const vki_model_file *sched_model_file(const scheduler *s, int32_t i)
{
    if (!s || i < 0 || i >= s->n_models) return NULL;
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    const vki_model_file *f = m->can_queue ? m->file : NULL;
    pthread_mutex_unlock(&m->mu);
    return f;
}

const vki_tokenizer *sched_model_tokenizer(const scheduler *s, int32_t i)
{
    if (!s || i < 0 || i >= s->n_models) return NULL;
    sched_model *m = s->models[i];
    pthread_mutex_lock(&m->mu);
    const vki_tokenizer *t = m->can_queue ? m->tok : NULL;
    pthread_mutex_unlock(&m->mu);
    return t;
}

void sched_get_resid_info(scheduler *s, sched_resid_info *out)
{
    memset(out, 0, sizeof *out);
    if (!s) return;
    pthread_mutex_lock(&s->res_mu);
    out->budget = s->budget;
    memcpy(out->device, s->dev_name, sizeof out->device);
    for (int32_t i = 0; i < s->n_models; i++) out->used += s->models[i]->gpu_bytes;
    pthread_mutex_unlock(&s->res_mu);
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
