/*
 * service_from_config.c: vki_service_create_from_config: a svc_config read
 * from the YAML file (service_config.c) turned into a service and its
 * models, with the same settings `vkinfer serve` gives the scheduler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/service/service_config.h"
#include "engine/service/service_internal.h"
#include "error.h"
#include "util.h"

void svc_config_service_params(const svc_config *c, vki_service_params *p)
{
    p->max_queue = c->max_queue;
    p->engine.n_threads = c->n_threads;
    p->engine.vram_budget = c->vram_budget;
    p->vram_fraction = c->vram_fraction;
    p->warmup = c->warmup;
    p->warm_interval_s = c->warm_interval_ms / 1e3;
    p->warm_threshold = c->warm_threshold;
    p->fallback_weights[0] = c->fb_weights.declared;
    p->fallback_weights[1] = c->fb_weights.capabilities;
    p->fallback_weights[2] = c->fb_weights.request;
    p->fallback_min_score = c->fb_min_score;
    p->embedding_cache_bytes = c->emb_cache_bytes;
    p->quantum_ms = c->quantum_ms;
    p->quantum_loads = c->quantum_loads;
    p->turn_drain_ms = c->drain_ms;
    p->arb_chunk_tokens = c->chunk_tokens;
    p->arb_aging_ms = c->aging_ms;
}

void svc_config_model_params(const svc_config *c, const svc_model_cfg *m, const char *chain[65],
                             sched_model_params *mp)
{
    *mp = (sched_model_params){.id = m->id, .path = m->path, .kind = svc_sched_kind(m->kind), .mp = vki_model_default_params()};
    mp->mp.backend = c->prefer;
    mp->mp.n_ctx = m->n_ctx;
    mp->mp.n_seq_max = mp->kind == SCHED_KIND_CHAT ? (m->n_seq_max ? m->n_seq_max : 4) : 1;
    mp->has_keep_alive = m->has_keep_alive;
    mp->keep_alive_ms = m->keep_alive_ms;
    mp->pin = m->pin;
    mp->no_prefix_reuse = m->no_prefix_reuse;
    mp->fallback_cpu = m->fallback_cpu;
    /* chain[] borrows the config's ids; sched_add_model copies them. */
    memset(chain, 0, 65 * sizeof *chain);
    for (int32_t k = 0; k < m->n_fallback && k < 64; k++) chain[k] = m->fallback_ids[k];
    mp->fb = (sched_fb_params){.chain = chain, .auto_candidates = m->fallback_auto, .caps = m->caps,
                               .languages = m->languages, .compat_ids = (const char *const *)m->compat_ids,
                               .compat = m->compat, .n_compat = m->n_compat, .breaker = m->breaker,
                               .test_fail_loads = m->test_fail_loads, .test_fail_steps = m->test_fail_steps};
}

vki_status svc_config_add_model_to(vki_service *svc, const svc_config *c, const svc_model_cfg *m)
{
    const char *chain[65];
    sched_model_params mp;
    svc_config_model_params(c, m, chain, &mp);
    VKI_TRY(svc_add_sched_model(svc, &mp));
    svc_set_quality(svc, vki_service_model_count(svc) - 1, m->quality); /* adds are one at a time */
    return VKI_OK;
}

vki_status svc_config_update_model(vki_service *svc, int32_t i, const svc_config *c, const svc_model_cfg *m)
{
    const char *chain[65];
    sched_model_params mp;
    svc_config_model_params(c, m, chain, &mp);
    VKI_TRY(svc_update_sched_model(svc, i, &mp));
    svc_set_quality(svc, i, m->quality);
    return VKI_OK;
}

vki_status svc_config_create(const svc_config *c, const vki_service_params *base, vki_service **out)
{
    vki_service_params sp = base ? *base : vki_service_default_params();
    svc_config_service_params(c, &sp);
    char *history = NULL;
    if (!sp.warm_state_path && c->state_dir && c->state_dir[0]) {
        size_t n = strlen(c->state_dir) + sizeof "/usage.json";
        if (!(history = malloc(n))) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "vki_service_create: out of memory");
        snprintf(history, n, "%s/usage.json", c->state_dir);
        sp.warm_state_path = history;
    }
    vki_service *svc = NULL;
    vki_status st = vki_service_create(&sp, &svc);
    free(history);
    for (int32_t i = 0; st == VKI_OK && i < c->n_models; i++)
        if ((st = svc_config_add_model_to(svc, c, &c->models[i])) != VKI_OK)
            vki_fail_prefix(st, "model '%s'", c->models[i].id);
    if (st != VKI_OK) {
        vki_service_destroy(svc);
        return st;
    }
    *out = svc;
    return VKI_OK;
}

vki_status vki_service_create_from_config(const char *path, const vki_service_params *params, vki_service **out)
{
    if (!path || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_create_from_config: path and out "
                                       "are required");
    *out = NULL;
    svc_config c;
    svc_config_init(&c);
    char err[1024];
    vki_status st = svc_config_load(&c, path, NULL, NULL, err, sizeof err);
    if (st == VKI_OK && (st = svc_config_resolve(&c, err, sizeof err)) != VKI_OK) st = VKI_ERR_INVALID_ARGUMENT;
    if (st != VKI_OK) vki_fail(st, "%s", err);
    else if ((st = svc_config_create(&c, params, out)) != VKI_OK) vki_fail_prefix(st, "%s", path);
    svc_config_deinit(&c);
    return st;
}
