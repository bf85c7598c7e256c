/*
 * config_diff.c: a new configuration against the running one, model by
 * model (by id) and setting by setting, for hot reload (server/reload.c
 * applies it). Which settings change live is decided here, in one place:
 * see the tables below. Pure: no scheduler, no files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "server/config_diff.h"

static const char *const action_names[] = {"unchanged", "added", "removed", "swapped", "changed", "replaced"};

const char *srv_diff_action_name(srv_diff_action a)
{
    return (unsigned)a < sizeof action_names / sizeof action_names[0] ? action_names[a] : "?";
}

/* ===== Comparing ========================================================== */

static bool str_eq(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static bool strs_eq(char *const *a, char *const *b, int32_t n)
{
    for (int32_t k = 0; k < n; k++)
        if (!str_eq(a[k], b[k])) return false;
    return true;
}

static void add_name(char *list, size_t size, const char *name)
{
    size_t n = strlen(list);
    if (n + strlen(name) + 3 < size) snprintf(list + n, size - n, "%s%s", n ? ", " : "", name);
}

/* The settings a running model cannot take in place: it is made anew. */
static bool replaced_fields(const srv_model_cfg *a, const srv_model_cfg *b, char *what, size_t size)
{
    bool any = false;
#define FIELD(cond, name)                                                                                              \
    if (cond) {                                                                                                        \
        add_name(what, size, name);                                                                                    \
        any = true;                                                                                                    \
    }
    FIELD(a->kind != b->kind, "kind")
    FIELD(a->n_ctx != b->n_ctx, "n_ctx")
    FIELD(a->n_seq_max != b->n_seq_max, "n_seq_max")
    FIELD(a->breaker.failures != b->breaker.failures || a->breaker.window_ms != b->breaker.window_ms ||
              a->breaker.recovery_ms != b->breaker.recovery_ms,
          "breaker")
    FIELD(a->test_fail_loads != b->test_fail_loads || a->test_fail_steps != b->test_fail_steps, "test_fail")
    /* the generation worker reads it when it starts */
    FIELD(a->no_prefix_reuse != b->no_prefix_reuse, "prefix_reuse")
    return any;
}

/* The settings that apply to a running model in place (the service:
 * vki_service_update_model; the server: the published config). */
static bool live_fields(const srv_model_cfg *a, const srv_model_cfg *b, char *what, size_t size)
{
    bool any = false;
    FIELD(a->has_keep_alive != b->has_keep_alive || (a->has_keep_alive && a->keep_alive_ms != b->keep_alive_ms),
          "keep_alive")
    FIELD(a->pin != b->pin, "pin")
    FIELD(a->has_priority != b->has_priority || (a->has_priority && a->priority != b->priority), "priority")
    FIELD(a->fallback_cpu != b->fallback_cpu || a->fallback_auto != b->fallback_auto ||
              a->n_fallback != b->n_fallback || !strs_eq(a->fallback_ids, b->fallback_ids, a->n_fallback),
          "fallback")
    FIELD(a->caps != b->caps, "capabilities")
    FIELD(!str_eq(a->languages, b->languages), "languages")
    FIELD(a->n_compat != b->n_compat || !strs_eq(a->compat_ids, b->compat_ids, a->n_compat) ||
              (a->n_compat && memcmp(a->compat, b->compat, (size_t)a->n_compat * sizeof *a->compat)),
          "compatible")
    FIELD(!str_eq(a->chat_template, b->chat_template), "chat_template")
    FIELD(a->quality != b->quality, "quality") /* ranks `auto`'s candidates (the service holds it) */
    FIELD(a->n_dims != b->n_dims || memcmp(a->dims, b->dims, sizeof a->dims), "dimensions")
    return any;
}

/* `model: "auto"`'s routes and router are set up once at start
 * (routes_auto.c holds the examples' embeddings): a change waits for a restart. */
static bool routes_eq(const srv_config *a, const srv_config *b)
{
    if (a->n_routes != b->n_routes || !str_eq(a->router_model, b->router_model) ||
        a->router_threshold != b->router_threshold)
        return false;
    for (int32_t i = 0; i < a->n_routes; i++) {
        const srv_route_cfg *x = &a->routes[i], *y = &b->routes[i];
        if (!str_eq(x->name, y->name) || !str_eq(x->use_case, y->use_case) || x->has_kind != y->has_kind ||
            x->kind != y->kind || x->caps != y->caps || x->min_ctx != y->min_ctx || x->threshold != y->threshold ||
            x->n_models != y->n_models || !strs_eq(x->models, y->models, x->n_models) ||
            x->n_examples != y->n_examples || !strs_eq(x->examples, y->examples, x->n_examples))
            return false;
    }
    return true;
}

/* Server settings: those the running server takes from the published
 * config at each use apply now; the others were handed to the listener,
 * the scheduler or the log at start. */
static void server_fields(const srv_config *a, const srv_config *b, srv_config_diff *d)
{
    char *live = d->live, *rs = d->needs_restart;
    const size_t nl = sizeof d->live, nr = sizeof d->needs_restart;
#define SRV_FIELD(cond, list, n, name) \
    if (cond) add_name(list, n, name);
    SRV_FIELD(a->max_body != b->max_body, live, nl, "server.max_body")
    SRV_FIELD(a->header_timeout_ms != b->header_timeout_ms, live, nl, "server.header_timeout")
    SRV_FIELD(a->body_timeout_ms != b->body_timeout_ms, live, nl, "server.body_timeout")
    SRV_FIELD(a->drain_timeout_ms != b->drain_timeout_ms, live, nl, "server.drain_timeout")
    SRV_FIELD(a->health_degraded_status != b->health_degraded_status, live, nl, "server.health_degraded_status")
    SRV_FIELD(a->admin != b->admin, live, nl, "server.admin")
    SRV_FIELD(!str_eq(a->host, b->host), rs, nr, "server.host")
    SRV_FIELD(a->port != b->port, rs, nr, "server.port")
    SRV_FIELD(a->svc.n_threads != b->svc.n_threads, rs, nr, "server.threads")
    SRV_FIELD(!str_eq(a->api_key_env, b->api_key_env), rs, nr, "server.api_key_env")
    SRV_FIELD(a->max_conns != b->max_conns, rs, nr, "server.max_connections")
    SRV_FIELD(a->max_conns_per_ip != b->max_conns_per_ip, rs, nr, "server.max_connections_per_ip")
    SRV_FIELD(a->svc.max_queue != b->svc.max_queue, rs, nr, "server.max_queue")
    SRV_FIELD(a->log_format != b->log_format, rs, nr, "server.log_format")
    SRV_FIELD(a->svc.prefer != b->svc.prefer, rs, nr, "device.prefer")
    SRV_FIELD(a->svc.vram_budget != b->svc.vram_budget || a->svc.vram_fraction != b->svc.vram_fraction, rs, nr, "device.vram_budget")
    SRV_FIELD(a->svc.quantum_ms != b->svc.quantum_ms || a->svc.quantum_loads != b->svc.quantum_loads || a->svc.drain_ms != b->svc.drain_ms ||
                  a->svc.chunk_tokens != b->svc.chunk_tokens || a->svc.aging_ms != b->svc.aging_ms,
              rs, nr, "device (turns and arbiter)")
    SRV_FIELD(a->svc.warmup != b->svc.warmup || a->svc.warm_interval_ms != b->svc.warm_interval_ms ||
                  a->svc.warm_threshold != b->svc.warm_threshold || !str_eq(a->svc.state_dir, b->svc.state_dir),
              rs, nr, "warmup")
    SRV_FIELD(memcmp(&a->svc.fb_weights, &b->svc.fb_weights, sizeof a->svc.fb_weights) || a->svc.fb_min_score != b->svc.fb_min_score, rs,
              nr, "fallback_policy")
    SRV_FIELD(!routes_eq(a, b), rs, nr, "routes and router")
    SRV_FIELD(a->svc.emb_cache_bytes != b->svc.emb_cache_bytes, rs, nr, "scheduler.embedding_cache")
#undef SRV_FIELD
#undef FIELD
}

static int32_t find(const srv_config *c, const bool *live, const char *id)
{
    for (int32_t i = 0; i < c->svc.n_models; i++)
        if ((!live || live[i]) && !strcmp(c->svc.models[i].id, id)) return i;
    return -1;
}

vki_status srv_config_diff_make(const srv_config *old, const bool *old_live, const srv_config *neu,
                                srv_config_diff *out)
{
    memset(out, 0, sizeof *out);
    out->models = calloc((size_t)(old->svc.n_models + neu->svc.n_models) + 1, sizeof *out->models);
    if (!out->models) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "reload: out of memory");
    for (int32_t i = 0; i < old->svc.n_models; i++) {
        if (old_live && !old_live[i]) continue;
        const srv_model_cfg *a = &old->svc.models[i];
        srv_diff_model *d = &out->models[out->n_models++];
        d->id = a->id;
        d->old_i = i;
        d->new_i = find(neu, NULL, a->id);
        if (d->new_i < 0) {
            d->action = SRV_DIFF_REMOVED;
            continue;
        }
        const srv_model_cfg *b = &neu->svc.models[d->new_i];
        if (replaced_fields(a, b, d->what, sizeof d->what)) {
            d->action = SRV_DIFF_REPLACED;
            if (!str_eq(a->path, b->path)) add_name(d->what, sizeof d->what, "path");
            live_fields(a, b, d->what, sizeof d->what);
            continue;
        }
        const bool moved = !str_eq(a->path, b->path);
        if (moved) add_name(d->what, sizeof d->what, "path");
        const bool live = live_fields(a, b, d->what, sizeof d->what);
        d->action = moved ? SRV_DIFF_SWAPPED : live ? SRV_DIFF_CHANGED : SRV_DIFF_UNCHANGED;
    }
    for (int32_t j = 0; j < neu->svc.n_models; j++) {
        if (find(old, old_live, neu->svc.models[j].id) >= 0) continue;
        srv_diff_model *d = &out->models[out->n_models++];
        *d = (srv_diff_model){.id = neu->svc.models[j].id, .action = SRV_DIFF_ADDED, .old_i = -1, .new_i = j};
    }
    server_fields(old, neu, out);
    return VKI_OK;
}

void srv_config_diff_free(srv_config_diff *d)
{
    if (!d) return;
    free(d->models);
    memset(d, 0, sizeof *d);
}
