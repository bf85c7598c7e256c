/*
 * sched_resid.c: residency: the device budget, the estimate of a model's
 * device bytes before it loads, the eviction score, and the load itself
 * (reserve, evict idle models, fall back to the CPU). Runs on the loading
 * model's thread; eviction is a request to the victim's own thread, which
 * unloads when its worker is idle, so a model with work is never evicted.
 * Must not: block a caller's thread (only model threads come here).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/sched/sched_internal.h"
#include "engine/vulkan/backend_vk.h"
#include "error.h"
#include "loader/model_file.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)
/* The Vulkan backend's host-visible staging ring: two 8 MiB slots per
 * backend (engine/vulkan/memory.c), checked against the same budget. */
#define SCHED_STAGING_BYTES (16ull << 20)
/* Frequency is a count of admissions that halves every 10 minutes. */
#define SCHED_FREQ_HALF_LIFE_MS 600000.0
/* How long a load waits for evicted models to unload before it looks again. */
#define SCHED_EVICT_POLL_MS 100.0

/* ===== Budget and estimate =============================================== */

void sched_resid_init(scheduler *s)
{
    bk_vk_device_info *devs = NULL;
    int n = 0;
    uint64_t dev = 0;
    if (bk_vk_list_devices(&devs, &n) == VKI_OK) {
        /* The device bk_vk_create will pick: the one named, else the best score. */
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (s->p.engine.vk_device >= 0 ? devs[i].index == s->p.engine.vk_device
                                           : best < 0 || devs[i].score > devs[best].score)
                best = i;
            s->has_gpu |= strcmp(devs[i].type, "cpu") != 0;
        }
        if (best >= 0) {
            dev = devs[best].budget;
            snprintf(s->dev_name, sizeof s->dev_name, "%s", devs[best].name);
        }
        s->has_gpu |= s->p.engine.vk_device >= 0;
    }
    free(devs);
    vki_clear_error();
    if (dev && s->p.vram_fraction > 0) dev = (uint64_t)((double)dev * s->p.vram_fraction);
    if (dev && s->p.engine.vram_budget && s->p.engine.vram_budget < dev) dev = s->p.engine.vram_budget;
    s->budget = dev;
    /* Each model's backend checks its own allocations against the same figure. */
    s->p.engine.vram_budget = dev;
}

/*
 * The estimate of a model's device bytes, taken before it loads: what
 * mdl_estimate says mdl_load will allocate (weights as stored in the file,
 * the KV cache, the scratch plan, all from the metadata) plus the backend's
 * 16 MiB upload ring. On lavapipe it is within a few % of the measured
 * figure; after the load the measured figure (vki_model_memory_bytes +
 * staging) replaces it. A file whose metadata mdl_load would refuse is
 * estimated at its weight bytes (its load fails with the reason anyway).
 */
void sched_resid_estimate(const vki_model_file *f, const vki_tokenizer *tok, const vki_model_params *mp,
                          sched_shape *out)
{
    mdl_load_params lp = {.n_ctx = mp->n_ctx, .n_seq_max = mp->n_seq_max};
    mdl_estimate_t e;
    if (mdl_estimate(f, &lp, &e) != VKI_OK) {
        e = (mdl_estimate_t){.weights = vki_file_weight_bytes(f), .n_ctx = (int32_t)mp->n_ctx};
        e.n_vocab = vki_tokenizer_n_vocab(tok);
    }
    out->n_ctx = e.n_ctx;
    out->n_batch = e.n_batch;
    out->n_embd = e.n_embd;
    out->n_vocab = e.n_vocab > 0 ? e.n_vocab : vki_tokenizer_n_vocab(tok);
    out->est_bytes = e.weights + e.kv + e.scratch + SCHED_STAGING_BYTES;
}

/* ===== Eviction score ==================================================== */

/*
 * The value of keeping a resident model; the lowest is evicted first:
 *
 *   value = (1 + freq) x (reload_ms + 50) / ((1 + idle_s / 60) x (1 + MiB))
 *
 * freq: admissions, halving every 10 minutes (frequency); idle_s: seconds
 * since its last request started or ended (recency: an hour idle divides
 * the value by 61); reload_ms: its measured load time (what evicting it
 * costs the next request; 50 ms keeps instant loads from scoring 0); MiB:
 * its device bytes (evicting a large model frees more for the same loss).
 * With equal use this is LRU; pinned and busy models are never candidates.
 */
double sched_resid_score(const sched_resid_cand *c)
{
    return (1.0 + c->freq) * (c->reload_ms + 50.0) / ((1.0 + c->idle_s / 60.0) * (1.0 + (double)c->bytes / MIB));
}

int32_t sched_resid_pick(const sched_resid_cand *c, int32_t n, uint64_t need, int32_t *order)
{
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].evictable) order[k++] = i;
    /* insertion sort by score: n is the number of models */
    for (int32_t i = 1; i < k; i++) {
        int32_t v = order[i], j = i;
        while (j > 0 && sched_resid_score(&c[order[j - 1]]) > sched_resid_score(&c[v])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    uint64_t freed = 0;
    for (int32_t i = 0; i < k; i++) {
        if (freed >= need) return i;
        freed += c[order[i]].bytes;
    }
    return freed >= need ? k : -1;
}

static double decayed_freq(const sched_model *m, double now)
{
    return m->freq * exp2(-(now - m->t_freq) / SCHED_FREQ_HALF_LIFE_MS);
}

void sched_resid_touch(sched_model *m, double now)
{
    m->freq = decayed_freq(m, now) + 1.0;
    m->t_freq = now;
    m->t_used = now;
}

/* ===== Loading =========================================================== */

/* A load in progress stops when the scheduler shuts down. */
static bool on_progress(float progress, void *user)
{
    (void)progress;
    const sched_model *m = user;
    return !atomic_load(&m->stop);
}

vki_status sched_resid_load_file(sched_model *m, const char *path, vki_backend_kind kind, vki_model **out)
{
    vki_model_params mp = m->mp;
    mp.backend = kind;
    mp.progress = on_progress;
    mp.progress_user = m;
    return vki_model_load(m->s->eng, path, &mp, out);
}

static vki_status load_on(sched_model *m, vki_backend_kind kind, vki_model **out)
{
    return sched_resid_load_file(m, m->path, kind, out);
}

uint64_t sched_resid_gpu_bytes(const vki_model *md) { return vki_model_memory_bytes(md) + SCHED_STAGING_BYTES; }

bool sched_resid_on_gpu(const sched_model *m)
{
    return m->s->budget > 0 &&
           (m->mp.backend == VKI_BACKEND_VULKAN || (m->mp.backend == VKI_BACKEND_AUTO && m->s->has_gpu));
}

uint64_t sched_resid_used(const scheduler *s)
{
    uint64_t u = 0;
    for (int32_t i = 0; i < s->n_models; i++) u += s->models[i]->gpu_bytes + s->models[i]->swap_gpu_bytes;
    return u;
}

/* Writes "a 45 MiB (busy), b 30 MiB (pinned)" for the refusal message (res_mu held). */
static void describe_resident(const scheduler *s, const sched_model *self, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < s->n_models && n < size; i++) {
        sched_model *o = s->models[i];
        if (o == self || !o->gpu_bytes) continue; /* (a swap in flight is its model's business) */
        pthread_mutex_lock(&o->mu);
        int32_t queued = o->n_queued[0] + o->n_queued[1] + o->n_queued[2];
        const char *why = o->state == SCHED_LOADING ? "loading" : o->pin ? "pinned" : queued || o->n_active ? "busy" : "idle";
        pthread_mutex_unlock(&o->mu);
        n += (size_t)snprintf(buf + n, size - n, "%s%s %.0f MiB (%s)", n ? ", " : "", o->id, (double)o->gpu_bytes / MIB,
                              why);
    }
    if (!n) snprintf(buf, size, "nothing");
}

vki_status sched_resid_reserve(sched_model *m, uint64_t need, uint64_t *slot, bool may_evict)
{
    scheduler *s = m->s;
    sched_resid_cand *c = NULL;
    int32_t *order = NULL;
    vki_status st = VKI_OK;
    pthread_mutex_lock(&s->res_mu); /* also guards s->models while models are added */
    /* Waiting for room in order (sched_turn_defer); a swap never waits. */
    const bool turns = may_evict && slot == &m->gpu_bytes;
    if (turns) {
        m->want_since = vki_time_ms();
        m->want_bytes = need;
    }
    for (;;) {
        if (atomic_load(&m->stop)) {
            st = vki_fail(VKI_ERR_CANCELLED, "the scheduler is shutting down");
            break;
        }
        const uint64_t used = sched_resid_used(s);
        const double now = vki_time_ms();
        if (used + need <= s->budget) {
            if (turns && sched_turn_defer(m, used)) {
                sched_cond_wait_until(&s->res_cv, &s->res_mu, now + SCHED_EVICT_POLL_MS);
                continue;
            }
            *slot = need;
            break;
        }
        free(c);
        free(order);
        c = calloc((size_t)s->n_models, sizeof *c);
        order = calloc((size_t)s->n_models, sizeof *order);
        if (!c || !order) {
            st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "model '%s': out of memory for the residency plan", m->id);
            break;
        }
        for (int32_t i = 0; i < s->n_models; i++) {
            sched_model *o = s->models[i];
            pthread_mutex_lock(&o->mu);
            int32_t queued = o->n_queued[0] + o->n_queued[1] + o->n_queued[2];
            c[i] = (sched_resid_cand){.evictable = o != m && o->state == SCHED_RESIDENT_GPU && !o->pin && !queued &&
                                                   !o->n_active && o->gpu_bytes && o->swap == SCHED_SWAP_NONE &&
                                                   sched_turn_idle(o, now),
                                      .idle_s = (now - o->t_used) / 1e3, .freq = decayed_freq(o, now),
                                      .reload_ms = o->load_ms, .bytes = o->gpu_bytes};
            pthread_mutex_unlock(&o->mu);
        }
        const uint64_t deficit = used + need - s->budget;
        int32_t k = may_evict && need <= s->budget ? sched_resid_pick(c, s->n_models, deficit, order) : -1;
        if (k < 0 && turns && need <= s->budget && !m->fallback_cpu) {
            /* Models with work hold the room: wait for a turn, unless nobody
             * is waiting any more (cancelled or past their deadlines). */
            pthread_mutex_lock(&m->mu);
            sched_purge(m, now);
            const bool wanted = m->n_queued[0] + m->n_queued[1] + m->n_queued[2] > 0;
            pthread_mutex_unlock(&m->mu);
            if (!wanted) {
                st = vki_fail(VKI_ERR_CANCELLED, "model '%s': nothing is waiting for the load any more", m->id);
                break;
            }
            double wake;
            if (sched_turn_ask(m, deficit, now, &wake)) {
                sched_cond_wait_until(&s->res_cv, &s->res_mu, VKI_MIN(wake, now + SCHED_EVICT_POLL_MS));
                continue;
            }
        }
        if (k < 0) {
            char held[1024];
            describe_resident(s, m, held, sizeof held);
            st = vki_fail(VKI_ERR_OUT_OF_DEVICE_MEMORY,
                          "model '%s' needs about %.0f MiB of device memory; the budget is %.0f MiB and %.0f MiB of it "
                          "is held by: %s; %s",
                          m->id, (double)need / MIB, (double)s->budget / MIB, (double)used / MIB, held,
                          !may_evict ? "it loads beside them only" : "no idle unpinned model can be evicted to make room");
            break;
        }
        for (int32_t j = 0; j < k; j++) {
            sched_model *o = s->models[order[j]];
            pthread_mutex_lock(&o->mu);
            o->evict = true;
            pthread_cond_broadcast(&o->cv);
            pthread_mutex_unlock(&o->mu);
        }
        /* The victims unload on their own threads and signal res_cv; then look again
         * (one may have taken a request meanwhile and stayed). */
        sched_cond_wait_until(&s->res_cv, &s->res_mu, now + SCHED_EVICT_POLL_MS);
    }
    if (turns) m->want_since = 0;
    pthread_mutex_unlock(&s->res_mu);
    free(c);
    free(order);
    return st;
}

void sched_resid_release(sched_model *m, uint64_t *slot)
{
    pthread_mutex_lock(&m->s->res_mu);
    *slot = 0;
    pthread_cond_broadcast(&m->s->res_cv);
    pthread_mutex_unlock(&m->s->res_mu);
}

static void count(sched_model *m, uint64_t *field)
{
    pthread_mutex_lock(&m->st_mu);
    (*field)++;
    pthread_mutex_unlock(&m->st_mu);
}

/* Loads on kind and adds the time it took to *load_ms: the load alone, not
 * the wait for room before it, which is another model's turn (that figure
 * sizes the quantum, the ETA and the eviction score). */
static vki_status timed_load_on(sched_model *m, vki_backend_kind kind, vki_model **out, double *load_ms)
{
    const double t0 = vki_time_ms();
    const vki_status st = load_on(m, kind, out);
    *load_ms += vki_time_ms() - t0;
    return st;
}

vki_status sched_resid_load(sched_model *m, bool may_evict, vki_model **out, bool *on_gpu, double *load_ms)
{
    scheduler *s = m->s;
    *out = NULL;
    *on_gpu = false;
    *load_ms = 0;
    if (!sched_resid_on_gpu(m)) {
        vki_status st = timed_load_on(m, m->mp.backend == VKI_BACKEND_VULKAN ? VKI_BACKEND_VULKAN : VKI_BACKEND_CPU, out,
                                      load_ms);
        if (st == VKI_OK) count(m, &m->st.loads);
        return st;
    }
    vki_status st = sched_resid_reserve(m, m->shape.est_bytes, &m->gpu_bytes, may_evict);
    if (st == VKI_OK) {
        st = timed_load_on(m, VKI_BACKEND_VULKAN, out, load_ms);
        if (st == VKI_OK) {
            pthread_mutex_lock(&s->res_mu);
            m->gpu_bytes = sched_resid_gpu_bytes(*out);
            pthread_mutex_unlock(&s->res_mu);
            *on_gpu = true;
            count(m, &m->st.loads);
            return VKI_OK;
        }
        sched_resid_release(m, &m->gpu_bytes);
        /* The driver may refuse what the budget allowed (other processes use the
         * device too): that is no room, as when the estimate does not fit. */
        if (st != VKI_ERR_OUT_OF_DEVICE_MEMORY && !(st == VKI_ERR_UNSUPPORTED && m->mp.backend == VKI_BACKEND_AUTO))
            return st;
    }
    if (st == VKI_ERR_CANCELLED) return st;
    /* auto with no usable Vulkan device: the CPU, as vki_model_load's auto does. */
    const bool no_vulkan = st == VKI_ERR_UNSUPPORTED && m->mp.backend == VKI_BACKEND_AUTO;
    if (!no_vulkan) {
        if (!may_evict) return st; /* at start: the first request tries again, evicting if it must */
        if (!m->fallback_cpu) {
            count(m, &m->st.refused_loads);
            char why[1536];
            snprintf(why, sizeof why, "%s", vki_last_error());
            return vki_fail(st, "%s, and it has no CPU fallback (fallback: [cpu])", why);
        }
    }
    st = timed_load_on(m, VKI_BACKEND_CPU, out, load_ms);
    if (st == VKI_OK) {
        count(m, &m->st.loads);
        if (!no_vulkan) count(m, &m->st.fallbacks);
    }
    return st;
}
