/*
 * service_admin.c: changing the service's models (vkinfer.h): adding one
 * (at create, or while requests run), removing, reloading from another
 * file, updating the live settings, and shutting the service's requests
 * down. Model indices are the scheduler's, stable for the service's life.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/models/model.h"
#include "engine/service/service_internal.h"
#include "error.h"
#include "loader/model_file.h"

_Static_assert(VKI_SERVICE_MAX_MODELS == SCHED_MAX_MODELS, "vkinfer.h's model limit is the scheduler's");

static void to_sched(const vki_service_model_params *p, sched_model_params *out);

vki_status svc_add_sched_model(vki_service *svc, const sched_model_params *mp)
{
    /* fb_count is sized for every index the scheduler can hand out
     * (SCHED_MAX_MODELS): an add while requests run resizes nothing. */
    return sched_add_model(svc->s, mp);
}

/* AUTO: from the file's architecture, as the config always did. A file
 * that cannot be opened counts as chat: its load fails with the reason. */
static sched_kind detect_kind(const char *path)
{
    vki_model_file *f = NULL;
    if (vki_file_open(path, &f) != VKI_OK) {
        vki_clear_error();
        return SCHED_KIND_CHAT;
    }
    sched_kind k = mdl_file_is_embedding(f) ? SCHED_KIND_EMBEDDING : SCHED_KIND_CHAT;
    vki_file_close(f);
    return k;
}

vki_status vki_service_add_model(vki_service *svc, const vki_service_model_params *p)
{
    if (!svc || !p) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: NULL argument");
    if (!p->id || !p->id[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: the model has no id");
    if (!p->path || !p->path[0])
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model '%s' has no path", p->id);
    if (p->kind < VKI_MODEL_KIND_AUTO || p->kind > VKI_MODEL_KIND_EMBEDDING)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model '%s': kind %d is none of "
                        "VKI_MODEL_KIND_*", p->id, (int)p->kind);
    if (p->n_compatible < 0 || (p->n_compatible > 0 && (!p->compatible_ids || !p->compatible_scores)))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model '%s': n_compatible %d without "
                        "compatible_ids and compatible_scores", p->id, p->n_compatible);
    if (sched_find(svc->s, p->id) >= 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model id '%s' is used twice", p->id);
    if (!(p->quality >= 0 && p->quality <= 1))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_add_model: model '%s': quality %g is outside [0, 1]",
                        p->id, p->quality);
    sched_model_params mp;
    to_sched(p, &mp);
    VKI_TRY(svc_add_sched_model(svc, &mp));
    svc_set_quality(svc, sched_n_models(svc->s) - 1, p->quality); /* adds are one at a time */
    return VKI_OK;
}

/* The public params as the scheduler takes them (strings borrowed). */
static void to_sched(const vki_service_model_params *p, sched_model_params *out)
{
    sched_model_params mp = {.id = p->id, .path = p->path, .mp = p->model, .pin = p->pin,
                             .fallback_cpu = p->fallback_cpu, .on_demand = p->on_demand,
                             .no_prefix_reuse = p->no_prefix_reuse};
    mp.kind = p->kind == VKI_MODEL_KIND_AUTO        ? detect_kind(p->path)
              : p->kind == VKI_MODEL_KIND_EMBEDDING ? SCHED_KIND_EMBEDDING
                                                    : SCHED_KIND_CHAT;
    mp.mp.progress = NULL;
    mp.mp.n_seq_max = mp.kind == SCHED_KIND_CHAT ? (p->model.n_seq_max ? p->model.n_seq_max : 4) : 1;
    mp.has_keep_alive = p->keep_alive_ms >= 0;
    mp.keep_alive_ms = mp.has_keep_alive ? p->keep_alive_ms : 0;
    mp.fb = (sched_fb_params){.chain = p->fallback, .auto_candidates = p->fallback_auto,
                              .caps = p->capabilities, .languages = p->languages,
                              .compat_ids = p->compatible_ids, .compat = p->compatible_scores,
                              .n_compat = p->n_compatible,
                              .breaker = {p->breaker_failures, p->breaker_window_ms, p->breaker_recovery_ms}};
    *out = mp;
}

static vki_status check_index(vki_service *svc, int32_t i, const char *fn)
{
    if (!svc) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: no service", fn);
    if (i < 0 || i >= sched_n_models(svc->s))
        return vki_fail(VKI_ERR_NOT_FOUND, "%s: no model %d (the service has %d)", fn, i, sched_n_models(svc->s));
    return VKI_OK;
}

vki_status vki_service_remove_model(vki_service *svc, int32_t i)
{
    VKI_TRY(check_index(svc, i, "vki_service_remove_model"));
    return sched_remove_model(svc->s, i);
}

vki_status vki_service_reload_model(vki_service *svc, int32_t i, const char *path)
{
    VKI_TRY(check_index(svc, i, "vki_service_reload_model"));
    if (!path || !path[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_reload_model: no path");
    return sched_reload_model(svc->s, i, path);
}

vki_status vki_service_update_model(vki_service *svc, int32_t i, const vki_service_model_params *p)
{
    VKI_TRY(check_index(svc, i, "vki_service_update_model"));
    if (!p) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_update_model: NULL params");
    if (p->n_compatible < 0 || (p->n_compatible > 0 && (!p->compatible_ids || !p->compatible_scores)))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_update_model: n_compatible %d without "
                        "compatible_ids and compatible_scores", p->n_compatible);
    if (!(p->quality >= 0 && p->quality <= 1))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_update_model: quality %g is outside [0, 1]", p->quality);
    sched_model_params mp;
    to_sched(p, &mp);
    VKI_TRY(sched_model_update(svc->s, i, &mp));
    svc_set_quality(svc, i, p->quality);
    return VKI_OK;
}

vki_status svc_update_sched_model(vki_service *svc, int32_t i, const sched_model_params *mp)
{
    VKI_TRY(check_index(svc, i, "vki_service_update_model"));
    return sched_model_update(svc->s, i, mp);
}

void vki_service_shutdown(vki_service *svc)
{
    if (!svc) return;
    /* Cancel everything: each job's request ends and notifies, and the
     * dispatcher ends the job (on_done). */
    pthread_mutex_lock(&svc->mu);
    svc->shutting = true;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    sched_shutdown(svc->s);
    pthread_mutex_lock(&svc->mu);
    while (svc->n_live > 0) pthread_cond_wait(&svc->cv, &svc->mu);
    pthread_mutex_unlock(&svc->mu);
}
