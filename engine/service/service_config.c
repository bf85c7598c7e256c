/*
 * service_config.c: the configuration file's model, device, warmup and
 * fallback_policy sections (DESIGN.md's sketch) read into a svc_config,
 * the model-kind detection shared with the command line, and the checks
 * across models. The `server` section is handed to the caller's reader.
 * Residency keys (engine/sched/README.md): device.vram_budget ("1GiB" or
 * "90%" of the device's budget), and per model keep_alive ("10m"; "0"
 * unloads when idle; "-1" or absent keeps it), pin (never evicted),
 * prefix_reuse (true by default: a chat model's finished KV is kept for the
 * next prompt that starts the same way, engine/sched/sched_prefix.c) and
 * fallback ([cpu]: load on the CPU when the GPU budget cannot hold it).
 * Fallback and breaker keys: fallback also takes other model ids (tried in
 * order) and auto (scored candidates); capabilities, languages and
 * compatible feed the score; breaker sets the circuit breaker; test_fail
 * makes loads or steps fail, for tests only. fallback_policy (top level)
 * sets the score's weights and minimum.
 */
#include "engine/service/service_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "engine/models/model.h"
#include "loader/model_file.h"
#include "util.h"

void svc_config_init(svc_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_queue = 64;
    c->prefer = VKI_BACKEND_AUTO;
    c->warmup = true;
    c->warm_interval_ms = 300e3;
    c->warm_threshold = 0.5;
}

void svc_model_cfg_free(svc_model_cfg *m)
{
    free(m->id);
    free(m->path);
    free(m->chat_template);
    for (int32_t k = 0; k < m->n_fallback; k++) free(m->fallback_ids[k]);
    free(m->fallback_ids);
    for (int32_t k = 0; k < m->n_compat; k++) free(m->compat_ids[k]);
    free(m->compat_ids);
    free(m->compat);
    free(m->languages);
    free(m->use_case);
}

void svc_config_deinit(svc_config *c)
{
    if (!c) return;
    free(c->state_dir);
    for (int32_t i = 0; i < c->n_models; i++) svc_model_cfg_free(&c->models[i]);
    free(c->models);
    memset(c, 0, sizeof *c);
}

static vki_status warmup_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    svc_config *c = user;
    const char *t = v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : "";
    if (!strcmp(key, "enabled")) {
        if (!strcmp(t, "true")) c->warmup = true;
        else if (!strcmp(t, "false")) c->warmup = false;
        else return svc_cfg_fail(x, v, "warmup.enabled: expected true or false, found '%s'", t[0] ? t : svc_cfg_node_kind(v));
    } else if (!strcmp(key, "interval")) {
        VKI_TRY(svc_cfg_timeout(x, v, "warmup.interval", 86400e3, &c->warm_interval_ms));
        if (c->warm_interval_ms < 1e3) return svc_cfg_fail(x, v, "warmup.interval: expected at least 1s, found '%s'", t);
    } else if (!strcmp(key, "threshold")) {
        char *end = NULL;
        double p = t[0] ? strtod(t, &end) : NAN;
        if (!end || *end || !(p > 0 && p <= 1))
            return svc_cfg_fail(x, v, "warmup.threshold: expected a probability in (0, 1], found '%s'", t[0] ? t : svc_cfg_node_kind(v));
        c->warm_threshold = p;
    } else if (!strcmp(key, "state_dir")) {
        if (v->type != YAML_SCALAR_NODE)
            return svc_cfg_fail(x, v, "warmup.state_dir: expected a folder, or \"\" to keep no history, found %s",
                             svc_cfg_node_kind(v));
        char *d = malloc(strlen(x->dir) + strlen(t) + 2);
        if (!d) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
        if (t[0] && t[0] != '/' && x->dir[0]) sprintf(d, "%s/%s", x->dir, t);
        else strcpy(d, t);
        free(c->state_dir);
        c->state_dir = d;
    } else {
        return svc_cfg_fail(x, k, "warmup: unknown key '%s' (expected enabled, interval, threshold, state_dir)", key);
    }
    return VKI_OK;
}

static vki_status scheduler_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    svc_config *c = user;
    if (!strcmp(key, "embedding_cache")) {
        VKI_TRY(svc_cfg_size(x, v, "scheduler.embedding_cache", &c->emb_cache_bytes));
        if (c->emb_cache_bytes > (1ull << 40))
            return svc_cfg_fail(x, v, "scheduler.embedding_cache: expected at most 1TiB, found '%s'", svc_cfg_scalar(v));
        return VKI_OK;
    }
    return svc_cfg_fail(x, k, "scheduler: unknown key '%s' (expected embedding_cache)", key);
}

static vki_status device_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    svc_config *c = user;
    if (!strcmp(key, "prefer")) {
        const char *s = v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : "";
        if (!strcmp(s, "auto")) c->prefer = VKI_BACKEND_AUTO;
        else if (!strcmp(s, "cpu")) c->prefer = VKI_BACKEND_CPU;
        else if (!strcmp(s, "vulkan") || !strcmp(s, "gpu")) c->prefer = VKI_BACKEND_VULKAN;
        else return svc_cfg_fail(x, v, "device.prefer: expected auto, cpu or vulkan, found '%s'", s[0] ? s : svc_cfg_node_kind(v));
    } else if (!strcmp(key, "vram_budget")) {
        const char *s = v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : "";
        size_t n = strlen(s);
        if (n > 1 && s[n - 1] == '%') {
            char *end;
            double f = strtod(s, &end);
            if (end != s + n - 1 || !(f > 0 && f <= 100)) /* !(…) refuses nan */
                return svc_cfg_fail(x, v, "device.vram_budget: expected a percentage in (0, 100], found '%s'", s);
            c->vram_fraction = f / 100.0;
            c->vram_budget = 0;
        } else {
            VKI_TRY(svc_cfg_size(x, v, "device.vram_budget", &c->vram_budget));
            c->vram_fraction = 0;
        }
    } else if (!strcmp(key, "quantum")) {
        VKI_TRY(svc_cfg_timeout(x, v, "device.quantum", 3600e3, &c->quantum_ms));
    } else if (!strcmp(key, "drain")) {
        VKI_TRY(svc_cfg_timeout(x, v, "device.drain", 3600e3, &c->drain_ms));
    } else if (!strcmp(key, "aging")) {
        VKI_TRY(svc_cfg_timeout(x, v, "device.aging", 3600e3, &c->aging_ms));
    } else if (!strcmp(key, "quantum_loads")) {
        long lv;
        VKI_TRY(svc_cfg_int(x, v, "device.quantum_loads", 1, 1000, &lv));
        c->quantum_loads = (double)lv;
    } else if (!strcmp(key, "chunk_tokens")) {
        long lv;
        VKI_TRY(svc_cfg_int(x, v, "device.chunk_tokens", 1, 1 << 20, &lv));
        c->chunk_tokens = (int32_t)lv;
    } else {
        return svc_cfg_fail(x, k, "device: unknown key '%s' (expected prefer, vram_budget, quantum, quantum_loads, "
                               "drain, chunk_tokens, aging)", key);
    }
    return VKI_OK;
}

/* Appends a copy of text to a growable string list. */
static bool push_str(char ***list, int32_t *n, const char *text)
{
    char **nl = realloc(*list, sizeof *nl * (size_t)(*n + 1));
    if (!nl) return false;
    *list = nl;
    if (!(nl[*n] = strdup(text))) return false;
    (*n)++;
    return true;
}

static vki_status fallback_list(svc_cfg_ctx *x, yaml_node_t *v, svc_model_cfg *m)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return svc_cfg_fail(x, v, "models[].fallback: expected a list such as [cpu] or [other-model, auto], found %s",
                         svc_cfg_node_kind(v));
    m->fallback_cpu = m->fallback_auto = false;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        if (!e || e->type != YAML_SCALAR_NODE || !svc_cfg_scalar(e)[0])
            return svc_cfg_fail(x, e ? e : v, "models[].fallback: expected cpu, auto or a model id, found %s",
                             e ? svc_cfg_node_kind(e) : "nothing");
        if (!strcmp(svc_cfg_scalar(e), "cpu")) m->fallback_cpu = true;
        else if (!strcmp(svc_cfg_scalar(e), "auto")) m->fallback_auto = true;
        else if (m->n_fallback >= 64)
            return svc_cfg_fail(x, e, "models[].fallback: at most 64 model ids");
        else if (!push_str(&m->fallback_ids, &m->n_fallback, svc_cfg_scalar(e)))
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    }
    return VKI_OK;
}

static vki_status caps_list(svc_cfg_ctx *x, yaml_node_t *v, svc_model_cfg *m)
{
    static const struct { const char *name; uint32_t bit; } caps[] = {
        {"chat", SCHED_CAP_CHAT}, {"embedding", SCHED_CAP_EMBEDDING}, {"tools", SCHED_CAP_TOOLS},
        {"json", SCHED_CAP_JSON}};
    if (v->type != YAML_SEQUENCE_NODE)
        return svc_cfg_fail(x, v, "models[].capabilities: expected a list such as [chat, tools, json], found %s",
                         svc_cfg_node_kind(v));
    m->caps = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        size_t k = 0;
        while (e && e->type == YAML_SCALAR_NODE && k < VKI_COUNT(caps) && strcmp(svc_cfg_scalar(e), caps[k].name)) k++;
        if (!e || e->type != YAML_SCALAR_NODE || k == VKI_COUNT(caps))
            return svc_cfg_fail(x, e ? e : v, "models[].capabilities: expected chat, embedding, tools or json, found '%s'",
                             e && e->type == YAML_SCALAR_NODE ? svc_cfg_scalar(e) : "a non-scalar");
        m->caps |= caps[k].bit;
    }
    return VKI_OK;
}

static vki_status languages_list(svc_cfg_ctx *x, yaml_node_t *v, svc_model_cfg *m)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return svc_cfg_fail(x, v, "models[].languages: expected a list such as [en, de], found %s", svc_cfg_node_kind(v));
    struct { char *p; size_t n; } b = {0};
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        const char *t = e && e->type == YAML_SCALAR_NODE ? svc_cfg_scalar(e) : "";
        if (!t[0] || strchr(t, ',') || strlen(t) > 15) {
            free(b.p);
            return svc_cfg_fail(x, e ? e : v, "models[].languages: expected language codes such as en, found '%s'",
                             t[0] ? t : "a non-scalar");
        }
        char *np = realloc(b.p, b.n + strlen(t) + 2);
        if (!np) {
            free(b.p);
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
        }
        b.p = np;
        b.n += (size_t)sprintf(b.p + b.n, "%s%s", b.n ? "," : "", t);
    }
    free(m->languages);
    m->languages = b.p;
    return VKI_OK;
}

static vki_status compat_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    (void)k;
    svc_model_cfg *m = user;
    double d = 0;
    VKI_TRY(svc_cfg_number(x, v, "models[].compatible", 0, 1, &d));
    double *nc = realloc(m->compat, sizeof *nc * (size_t)(m->n_compat + 1));
    if (!nc) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    m->compat = nc;
    int32_t n = m->n_compat;
    if (!push_str(&m->compat_ids, &n, key)) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    m->compat[m->n_compat++] = d;
    return VKI_OK;
}

static vki_status breaker_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    sched_breaker_params *b = user;
    long lv = 0;
    if (!strcmp(key, "failures")) {
        VKI_TRY(svc_cfg_int(x, v, "breaker.failures", 1, 64, &lv));
        b->failures = (int32_t)lv;
        return VKI_OK;
    }
    if (!strcmp(key, "window")) return svc_cfg_duration(x, v, "breaker.window", &b->window_ms);
    if (!strcmp(key, "recovery")) return svc_cfg_duration(x, v, "breaker.recovery", &b->recovery_ms);
    return svc_cfg_fail(x, k, "breaker: unknown key '%s' (expected failures, window, recovery)", key);
}

static vki_status test_fail_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    svc_model_cfg *m = user;
    long lv = 0;
    if (strcmp(key, "loads") && strcmp(key, "steps"))
        return svc_cfg_fail(x, k, "models[].test_fail: unknown key '%s' (expected loads, steps)", key);
    VKI_TRY(svc_cfg_int(x, v, "models[].test_fail", 0, 1000000, &lv));
    *(strcmp(key, "loads") ? &m->test_fail_steps : &m->test_fail_loads) = (int32_t)lv;
    return VKI_OK;
}

static vki_status weights_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    sched_fb_weights *w = user;
    double *d = !strcmp(key, "declared") ? &w->declared : !strcmp(key, "capabilities") ? &w->capabilities
              : !strcmp(key, "request")  ? &w->request : NULL;
    if (!d)
        return svc_cfg_fail(x, k, "fallback_policy.weights: unknown key '%s' (expected declared, capabilities, request)",
                         key);
    return svc_cfg_number(x, v, "fallback_policy.weights", 0, 1000, d);
}

static vki_status policy_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    svc_config *c = user;
    if (!strcmp(key, "weights")) return svc_cfg_each_pair(x, v, "fallback_policy.weights", weights_pair, &c->fb_weights);
    if (!strcmp(key, "min_score")) return svc_cfg_number(x, v, "fallback_policy.min_score", 0, 1, &c->fb_min_score);
    return svc_cfg_fail(x, k, "fallback_policy: unknown key '%s' (expected weights, min_score)", key);
}

/* dimensions: [512, 256, ...]: the Matryoshka widths, each an integer >= 1,
 * at most 16, no repeats. */
static vki_status dims_list(svc_cfg_ctx *x, yaml_node_t *v, svc_model_cfg *m)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return svc_cfg_fail(x, v, "models[].dimensions: expected a list of widths such as [512, 256], found %s",
                         svc_cfg_node_kind(v));
    m->n_dims = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        long d;
        if (!e) continue;
        if (m->n_dims == (int32_t)VKI_COUNT(m->dims))
            return svc_cfg_fail(x, e, "models[].dimensions: at most %d widths", (int)VKI_COUNT(m->dims));
        VKI_TRY(svc_cfg_int(x, e, "models[].dimensions[]", 1, 1 << 20, &d));
        for (int32_t k = 0; k < m->n_dims; k++)
            if (m->dims[k] == d) return svc_cfg_fail(x, e, "models[].dimensions: %ld is listed twice", d);
        m->dims[m->n_dims++] = (int32_t)d;
    }
    return VKI_OK;
}

static vki_status model_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    svc_model_cfg *m = user;
    long lv;
    if (!strcmp(key, "id")) return svc_cfg_string(x, v, "models[].id", &m->id);
    if (!strcmp(key, "path")) return svc_cfg_string(x, v, "models[].path", &m->path);
    if (!strcmp(key, "chat_template")) return svc_cfg_string(x, v, "models[].chat_template", &m->chat_template);
    if (!strcmp(key, "kind")) {
        /* auto is the file's own kind, which leaving the key out already says */
        if (v->type != YAML_SCALAR_NODE || !vki_model_kind_from_name(svc_cfg_scalar(v), &m->kind) ||
            m->kind == VKI_MODEL_KIND_AUTO)
            return svc_cfg_fail(x, v, "models[].kind: expected chat or embedding, found '%s'",
                             v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : svc_cfg_node_kind(v));
        m->has_kind = true;
    } else if (!strcmp(key, "priority")) {
        if (v->type != YAML_SCALAR_NODE || !vki_priority_from_name(svc_cfg_scalar(v), &m->priority))
            return svc_cfg_fail(x, v, "models[].priority: expected interactive, normal or batch (or the service names "
                                   "chat, npc, search, summary), found '%s'",
                             v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : svc_cfg_node_kind(v));
        m->has_priority = true;
    } else if (!strcmp(key, "n_ctx")) {
        VKI_TRY(svc_cfg_int(x, v, "models[].n_ctx", 0, 1 << 20, &lv));
        m->n_ctx = (uint32_t)lv;
    } else if (!strcmp(key, "n_seq_max")) {
        VKI_TRY(svc_cfg_int(x, v, "models[].n_seq_max", 1, 256, &lv));
        m->n_seq_max = (uint32_t)lv;
    } else if (!strcmp(key, "keep_alive")) {
        bool forever;
        if (v->type != YAML_SCALAR_NODE || !svc_parse_duration(svc_cfg_scalar(v), &m->keep_alive_ms, &forever))
            return svc_cfg_fail(x, v, "models[].keep_alive: expected a duration such as 10m, 30s, 0 (unload when idle) "
                                   "or -1 (never), found '%s'", v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : svc_cfg_node_kind(v));
        m->has_keep_alive = !forever;
    } else if (!strcmp(key, "pin")) {
        const char *t = v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : "";
        if (!strcmp(t, "true")) m->pin = true;
        else if (!strcmp(t, "false")) m->pin = false;
        else return svc_cfg_fail(x, v, "models[].pin: expected true or false, found '%s'", t[0] ? t : svc_cfg_node_kind(v));
    } else if (!strcmp(key, "prefix_reuse")) {
        const char *t = v->type == YAML_SCALAR_NODE ? svc_cfg_scalar(v) : "";
        if (!strcmp(t, "true")) m->no_prefix_reuse = false;
        else if (!strcmp(t, "false")) m->no_prefix_reuse = true;
        else return svc_cfg_fail(x, v, "models[].prefix_reuse: expected true or false, found '%s'",
                                 t[0] ? t : svc_cfg_node_kind(v));
    } else if (!strcmp(key, "fallback")) {
        return fallback_list(x, v, m);
    } else if (!strcmp(key, "capabilities")) {
        return caps_list(x, v, m);
    } else if (!strcmp(key, "languages")) {
        return languages_list(x, v, m);
    } else if (!strcmp(key, "dimensions")) {
        return dims_list(x, v, m);
    } else if (!strcmp(key, "compatible")) {
        if (v->type != YAML_MAPPING_NODE)
            return svc_cfg_fail(x, v, "models[].compatible: expected a map of model id to score in [0, 1], found %s",
                             svc_cfg_node_kind(v));
        return svc_cfg_each_pair(x, v, "models[].compatible", compat_pair, m);
    } else if (!strcmp(key, "breaker")) {
        return svc_cfg_each_pair(x, v, "models[].breaker", breaker_pair, &m->breaker);
    } else if (!strcmp(key, "test_fail")) {
        return svc_cfg_each_pair(x, v, "models[].test_fail", test_fail_pair, m);
    } else if (!strcmp(key, "use_case")) {
        return svc_cfg_string(x, v, "models[].use_case", &m->use_case);
    } else if (!strcmp(key, "quality")) {
        return svc_cfg_number(x, v, "models[].quality", 0, 1, &m->quality);
    } else {
        return svc_cfg_fail(x, k, "models[]: unknown key '%s' (expected id, path, kind, priority, n_ctx, n_seq_max, "
                               "chat_template, keep_alive, pin, prefix_reuse, fallback, capabilities, languages, dimensions, "
                               "compatible, breaker, test_fail, use_case, quality)", key);
    }
    return VKI_OK;
}

static vki_status add_model_node(svc_cfg_ctx *x, svc_config *c, yaml_node_t *n)
{
    svc_model_cfg m = {0};
    vki_status s = svc_cfg_each_pair(x, n, "models[]", model_pair, &m);
    if (s == VKI_OK && !m.path) s = svc_cfg_fail(x, n, "models[]: expected a 'path' key");
    if (s == VKI_OK && m.id && !strcmp(m.id, "auto"))
        s = svc_cfg_fail(x, n, "models[]: the id 'auto' is reserved (requests for it are routed: routes:)");
    /* hf://ORG/REPO and URLs are pulled by `serve` (cli/pull/), not joined to the folder. */
    if (s == VKI_OK && m.path[0] != '/' && !strstr(m.path, "://") && x->dir[0]) {
        char *full = malloc(strlen(x->dir) + strlen(m.path) + 2);
        if (!full) s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
        else {
            sprintf(full, "%s/%s", x->dir, m.path);
            free(m.path);
            m.path = full;
        }
    }
    if (s == VKI_OK) {
        s = svc_config_add_model(c, m.id, m.path);
        if (s == VKI_OK) {
            svc_model_cfg *d = &c->models[c->n_models - 1];
            d->line = (int32_t)n->start_mark.line + 1;
            d->col = (int32_t)n->start_mark.column + 1;
            d->has_kind = m.has_kind;
            d->kind = m.kind;
            d->has_priority = m.has_priority;
            d->priority = m.priority;
            d->n_ctx = m.n_ctx;
            d->n_seq_max = m.n_seq_max;
            d->chat_template = m.chat_template;
            m.chat_template = NULL;
            d->has_keep_alive = m.has_keep_alive;
            d->keep_alive_ms = m.keep_alive_ms;
            d->pin = m.pin;
            d->no_prefix_reuse = m.no_prefix_reuse;
            d->fallback_cpu = m.fallback_cpu;
            /* the lists move over */
            d->fallback_ids = m.fallback_ids;
            d->n_fallback = m.n_fallback;
            d->fallback_auto = m.fallback_auto;
            d->caps = m.caps;
            d->languages = m.languages;
            memcpy(d->dims, m.dims, sizeof d->dims);
            d->n_dims = m.n_dims;
            d->compat_ids = m.compat_ids;
            d->compat = m.compat;
            d->n_compat = m.n_compat;
            d->breaker = m.breaker;
            d->test_fail_loads = m.test_fail_loads;
            d->test_fail_steps = m.test_fail_steps;
            d->use_case = m.use_case;
            d->quality = m.quality;
            m.use_case = NULL;
            m.fallback_ids = m.compat_ids = NULL;
            m.compat = NULL;
            m.languages = NULL;
            m.n_fallback = m.n_compat = 0;
        }
    }
    svc_model_cfg_free(&m);
    return s;
}

typedef struct top_user {
    svc_config     *c;
    svc_cfg_pair_fn server; /* the face's `server` section; NULL = skipped */
    void           *server_user;
} top_user;

static vki_status top_pair(svc_cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    top_user *t = user;
    svc_config *c = t->c;
    /* The sections of `vkinfer serve`, which reads and checks them. */
    if (!strcmp(key, "server") || !strcmp(key, "routes") || !strcmp(key, "router"))
        return t->server ? t->server(x, key, k, v, t->server_user) : VKI_OK;
    if (!strcmp(key, "device")) return svc_cfg_each_pair(x, v, "device", device_pair, c);
    if (!strcmp(key, "warmup")) return svc_cfg_each_pair(x, v, "warmup", warmup_pair, c);
    if (!strcmp(key, "scheduler")) return svc_cfg_each_pair(x, v, "scheduler", scheduler_pair, c);
    if (!strcmp(key, "fallback_policy")) return svc_cfg_each_pair(x, v, "fallback_policy", policy_pair, c);
    if (!strcmp(key, "models")) {
        if (v->type != YAML_SEQUENCE_NODE)
            return svc_cfg_fail(x, v, "models: expected a list, found %s", svc_cfg_node_kind(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
            VKI_TRY(add_model_node(x, c, yaml_document_get_node(x->doc, *it)));
        return VKI_OK;
    }
    return svc_cfg_fail(x, k, "unknown top-level key '%s' (expected server, device, warmup, scheduler, models, "
                        "fallback_policy, routes, router)", key);
}

vki_status svc_config_parse(svc_config *c, const char *name, const char *dir, const char *text, size_t len,
                            svc_cfg_pair_fn server, void *server_user, char *err, size_t err_size)
{
    top_user t = {.c = c, .server = server, .server_user = server_user};
    return svc_cfg_parse_text(name, dir, text, len, top_pair, &t, err, err_size);
}

vki_status svc_config_load(svc_config *c, const char *path, svc_cfg_pair_fn server, void *server_user, char *err,
                           size_t err_size)
{
    char *text = NULL, dir[4096];
    size_t len = 0;
    VKI_TRY(svc_cfg_read_file(path, &text, &len, dir, err, err_size));
    vki_status s = svc_config_parse(c, path, dir, text, len, server, server_user, err, err_size);
    free(text);
    return s;
}

vki_status svc_config_add_model(svc_config *c, const char *id, const char *path)
{
    svc_model_cfg *nm = realloc(c->models, sizeof *nm * (size_t)(c->n_models + 1));
    if (!nm) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    c->models = nm;
    svc_model_cfg *m = &c->models[c->n_models];
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    if (id) {
        m->id = strdup(id);
    } else {
        /* "dir/stories260K.gguf" -> "stories260K"; "hf://org/repo:x.gguf" -> "x", "hf://org/repo" -> "repo" */
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        const char *colon = strstr(path, "://") ? strrchr(path, ':') : NULL;
        if (colon && colon + 1 > b && !strchr(colon, '/')) b = colon + 1;
        const char *dot = strrchr(b, '.');
        m->id = dot && dot != b ? strndup(b, (size_t)(dot - b)) : strdup(b);
    }
    if (!m->path || !m->id) {
        svc_model_cfg_free(m);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    }
    c->n_models++;
    return VKI_OK;
}

static int32_t find_model(const svc_config *c, const char *id)
{
    for (int32_t j = 0; j < c->n_models; j++)
        if (!strcmp(c->models[j].id, id)) return j;
    return -1;
}

/* Fallback ids and compatibility entries name other models of the same kind. */
static vki_status check_fallback(const svc_config *c, char *err, size_t err_size)
{
    for (int32_t i = 0; i < c->n_models; i++) {
        const svc_model_cfg *m = &c->models[i];
        for (int32_t k = 0; k < m->n_fallback + m->n_compat; k++) {
            const bool fb = k < m->n_fallback;
            const char *id = fb ? m->fallback_ids[k] : m->compat_ids[k - m->n_fallback];
            const char *what = fb ? "fallback" : "compatible";
            int32_t j = find_model(c, id);
            if (j < 0 || j == i) {
                snprintf(err, err_size, "model '%s': %s names '%s', %s", m->id, what, id,
                         j < 0 ? "which is not a configured model id (nor cpu or auto)" : "the model itself");
                return VKI_ERR_INVALID_ARGUMENT;
            }
            if (c->models[j].has_kind && m->has_kind && c->models[j].kind != m->kind) {
                snprintf(err, err_size, "model '%s' (%s): %s names '%s', a %s model", m->id, vki_model_kind_name(m->kind),
                         what, id, vki_model_kind_name(c->models[j].kind));
                return VKI_ERR_INVALID_ARGUMENT;
            }
        }
    }
    return VKI_OK;
}

vki_status svc_config_resolve(svc_config *c, char *err, size_t err_size)
{
    if (!c->n_models) {
        snprintf(err, err_size, "no models: give -m MODEL or a config file with a models list");
        return VKI_ERR_INVALID_ARGUMENT;
    }
    for (int32_t i = 0; i < c->n_models; i++) {
        svc_model_cfg *m = &c->models[i];
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(c->models[j].id, m->id)) {
                snprintf(err, err_size, "model id '%s' is used twice", m->id);
                return VKI_ERR_INVALID_ARGUMENT;
            }
        if (m->has_kind) continue;
        /* Reading the header is cheap (the file is mapped, not loaded). */
        vki_model_file *f = NULL;
        vki_status s = vki_file_open(m->path, &f);
        if (s != VKI_OK) {
            /* The load will fail with the same message; /health reports it. */
            m->kind = VKI_MODEL_KIND_CHAT;
            continue;
        }
        m->kind = mdl_file_is_embedding(f) ? VKI_MODEL_KIND_EMBEDDING : VKI_MODEL_KIND_CHAT;
        m->has_kind = true;
        vki_file_close(f);
    }
    for (int32_t i = 0; i < c->n_models; i++)
        if (c->models[i].n_dims && c->models[i].kind != VKI_MODEL_KIND_EMBEDDING) {
            snprintf(err, err_size, "model '%s': dimensions (Matryoshka widths) apply to embedding models only",
                     c->models[i].id);
            return VKI_ERR_INVALID_ARGUMENT;
        }
    return check_fallback(c, err, err_size);
}

