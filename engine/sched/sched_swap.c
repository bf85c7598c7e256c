/*
 * sched_swap.c: replacing a model's file while it serves
 * (sched_reload_model). A helper thread opens the new file and, when the
 * model is resident and the budget holds both, loads it beside the old one;
 * then the worker stops admitting, drains, and the model's own thread
 * switches (sched_swap_apply). Without room it only opens the file, and the
 * switch unloads the old model before the new one loads.
 * Owns: the new file's parts until the switch, and the replaced ones until
 * sched_destroy (callers may hold the file, tokenizer and path).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/api_internal.h"
#include "engine/sched/sched_internal.h"
#include "engine/tokenizer/tokenizer.h"
#include "error.h"
#include "loader/model_file.h"
#include "util.h"

static void *swap_thread(void *arg)
{
    sched_model *m = arg;
    const char *path = m->swap_path; /* set before the thread starts, fixed until the switch */
    vki_model_file *f = NULL;
    vki_tokenizer *tok = NULL;
    vki_model *md = NULL;
    sched_shape sh;
    bool on_gpu = false;
    char msg[1024] = "";
    vki_status st = vki_file_open(path, &f);
    if (st == VKI_OK) st = vki_tokenizer_create(f, &tok);
    if (st == VKI_OK && mdl_file_is_embedding(f) != (m->kind == SCHED_KIND_EMBEDDING)) {
        st = VKI_ERR_INVALID_ARGUMENT;
        snprintf(msg, sizeof msg, "%s is not a %s model (%s)", path, sched_kind_name(m->kind), vki_file_arch(f));
    }
    if (st != VKI_OK) goto fail;
    sched_resid_estimate(f, tok, &m->mp, &sh);
    pthread_mutex_lock(&m->mu);
    const bool resident = sched_state_resident(m->state);
    pthread_mutex_unlock(&m->mu);
    sched_swap_state next = SCHED_SWAP_DRAIN;
    double t0 = vki_time_ms();
    if (resident && sched_resid_on_gpu(m)) {
        /* Beside the old one only if both fit: never evict others for a swap. */
        if (sched_resid_reserve(m, sh.est_bytes, &m->swap_gpu_bytes, false) == VKI_OK) {
            st = sched_resid_load_file(m, path, VKI_BACKEND_VULKAN, &md);
            if (st == VKI_OK) {
                pthread_mutex_lock(&m->s->res_mu);
                m->swap_gpu_bytes = sched_resid_gpu_bytes(md);
                pthread_mutex_unlock(&m->s->res_mu);
                on_gpu = true;
                next = SCHED_SWAP_READY;
            } else {
                sched_resid_release(m, &m->swap_gpu_bytes);
                if (st != VKI_ERR_OUT_OF_DEVICE_MEMORY) goto fail;
            }
        }
    } else if (resident) {
        st = sched_resid_load_file(m, path, m->mp.backend == VKI_BACKEND_VULKAN ? VKI_BACKEND_VULKAN : VKI_BACKEND_CPU,
                                   &md);
        if (st != VKI_OK) goto fail;
        next = SCHED_SWAP_READY;
    }
    vki_clear_error();
    pthread_mutex_lock(&m->mu);
    m->swap_file = f;
    m->swap_tok = tok;
    m->swap_shape = sh;
    m->swap_md = md;
    m->swap_on_gpu = on_gpu;
    m->swap_load_ms = vki_time_ms() - t0;
    m->swap = next;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
fail:
    if (!msg[0]) snprintf(msg, sizeof msg, "%s: %s", vki_status_str(st), vki_last_error());
    vki_model_destroy(md);
    vki_tokenizer_destroy(tok);
    vki_file_close(f);
    pthread_mutex_lock(&m->mu);
    snprintf(m->error, sizeof m->error, "reload from another file failed (still serving the old one): %.900s", msg);
    free(m->swap_path);
    m->swap_path = NULL;
    m->swap = SCHED_SWAP_NONE;
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
    sched_notify(m);
    return NULL;
}

vki_status sched_reload_model(scheduler *s, int32_t i, const char *path)
{
    if (!s || !path || !path[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sched_reload_model: no path");
    if (i < 0 || i >= s->n_models) return vki_fail(VKI_ERR_NOT_FOUND, "sched_reload_model: no model with index %d", i);
    sched_model *m = s->models[i];
    vki_status st = VKI_OK;
    pthread_mutex_lock(&m->mu);
    if (m->swap == SCHED_SWAP_NONE && m->swap_started) { /* a failed one: it has finished */
        pthread_join(m->swap_thread, NULL);
        m->swap_started = false;
    }
    if (atomic_load(&m->stop)) {
        st = vki_fail(VKI_ERR_CANCELLED, "the scheduler is shutting down");
    } else if (atomic_load(&m->removing)) {
        st = vki_fail(VKI_ERR_NOT_FOUND, "model '%s' is being removed", m->id);
    } else if (m->state == SCHED_FAILED || !m->can_queue) {
        st = vki_fail(VKI_ERR_UNSUPPORTED, "model '%s' is %s", m->id,
                      m->state == SCHED_FAILED ? "failed" : "still being opened");
    } else if (m->swap != SCHED_SWAP_NONE || m->swap_installing) {
        st = vki_fail(VKI_ERR_INVALID_ARGUMENT, "a reload of model '%s' is in progress", m->id);
    } else {
        /* The slot for what the switch replaces, taken now so the switch cannot fail. */
        struct sched_retired *nr = realloc(m->retired, sizeof *nr * (size_t)(m->n_retired + 1));
        if (nr) m->retired = nr;
        if (!nr || !(m->swap_path = strdup(path))) {
            st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_reload_model: out of memory");
        } else {
            m->swap = SCHED_SWAP_LOADING;
            m->error[0] = '\0';
            if (pthread_create(&m->swap_thread, NULL, swap_thread, m) != 0) {
                free(m->swap_path);
                m->swap_path = NULL;
                m->swap = SCHED_SWAP_NONE;
                st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "sched_reload_model: cannot start a thread");
            } else {
                m->swap_started = true;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    return st;
}

bool sched_swap_apply(sched_model *m, vki_model **md, bool *on_gpu, double *load_ms)
{
    /* The helper set READY or DRAIN as its last act: it is done. */
    pthread_join(m->swap_thread, NULL);
    pthread_mutex_lock(&m->mu);
    m->swap_started = false;
    const bool ready = m->swap == SCHED_SWAP_READY && m->swap_md;
    vki_model *old = m->md;
    m->md = NULL;
    m->retired[m->n_retired++] = (struct sched_retired){.path = m->path, .file = m->file, .tok = m->tok};
    m->path = m->swap_path;
    m->file = m->swap_file;
    m->tok = m->swap_tok;
    m->shape = m->swap_shape;
    *md = m->swap_md;
    *on_gpu = m->swap_on_gpu;
    *load_ms = m->swap_load_ms;
    m->swap_path = NULL;
    m->swap_file = NULL;
    m->swap_tok = NULL;
    m->swap_md = NULL;
    m->swap = SCHED_SWAP_NONE;
    m->swap_installing = ready;
    /* with the switch: no vector of the old file is answered for the new one */
    sched_ecache_new_generation(m);
    /* counted with the switch, so whoever sees `reloading` end sees the swap */
    pthread_mutex_lock(&m->st_mu);
    m->st.swaps++;
    pthread_mutex_unlock(&m->st_mu);
    if (!ready) m->state = SCHED_UNLOADED;
    pthread_cond_broadcast(&m->state_cv);
    pthread_mutex_unlock(&m->mu);
    if (!ready) sched_notify(m); /* a ready one is told when it is installed */
    vki_model_destroy(old);
    pthread_mutex_lock(&m->s->res_mu);
    m->gpu_bytes = m->swap_gpu_bytes;
    m->swap_gpu_bytes = 0;
    pthread_cond_broadcast(&m->s->res_cv);
    pthread_mutex_unlock(&m->s->res_mu);
    return ready;
}

void sched_swap_join(sched_model *m)
{
    if (m->swap_started) pthread_join(m->swap_thread, NULL);
    m->swap_started = false;
}

void sched_swap_free(sched_model *m)
{
    sched_swap_join(m);
    vki_model_destroy(m->swap_md);
    vki_tokenizer_destroy(m->swap_tok);
    vki_file_close(m->swap_file);
    free(m->swap_path);
    for (int32_t i = 0; i < m->n_retired; i++) {
        vki_tokenizer_destroy(m->retired[i].tok);
        vki_file_close(m->retired[i].file);
        free(m->retired[i].path);
    }
    free(m->retired);
}
