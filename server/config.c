/*
 * config.c: the YAML configuration file through libyaml's document API (so
 * every node carries its line and column for the error message), plus the
 * defaults and the model-kind detection shared with the command line.
 * Residency keys (engine/sched/README.md): device.vram_budget ("1GiB" or
 * "90%" of the device's budget), and per model keep_alive ("10m"; "0"
 * unloads when idle; "-1" or absent keeps it), pin (never evicted) and
 * fallback ([cpu]: load on the CPU when the GPU budget cannot hold it).
 * Fallback and breaker keys (engine/sched/README.md): fallback also takes
 * other model ids (tried in order) and auto (scored candidates);
 * capabilities, languages and compatible feed the score; breaker sets the
 * circuit breaker; test_fail makes loads or steps fail, for tests only.
 * prefix_reuse (true by default) keeps a chat model's finished KV for the
 * next prompt that starts the same way (engine/sched/sched_prefix.c).
 * fallback_policy (top level) sets the score's weights and minimum.
 */
#include "server/config.h"
#include "server/config_yaml.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "error.h"
#include "engine/models/model.h"
#include "loader/model_file.h"
#include "util.h"

void srv_config_init(srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->host = strdup("127.0.0.1");
    c->port = 8080;
    c->max_body = 1u << 20;
    c->max_queue = 64;
    c->max_conns = 512;
    c->max_conns_per_ip = 64;
    c->header_timeout_ms = 10e3;
    c->body_timeout_ms = 60e3;
    c->drain_timeout_ms = 30e3;
    c->prefer = VKI_BACKEND_AUTO;
    c->warmup = true;
    c->warm_interval_ms = 300e3;
    c->warm_threshold = 0.5;
    c->health_degraded_status = 200;
}

static void model_cfg_free(srv_model_cfg *m)
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

void srv_config_deinit(srv_config *c)
{
    if (!c) return;
    free(c->host);
    free(c->api_key_env);
    free(c->state_dir);
    for (int32_t i = 0; i < c->n_models; i++) model_cfg_free(&c->models[i]);
    free(c->models);
    srv_config_free_routes(c);
    memset(c, 0, sizeof *c);
}

bool srv_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* nan and inf parse as numbers; casting them to an integer is undefined */
    if (errno || end == s || !isfinite(v) || v < 0) return false;
    static const struct { const char *suffix; double mult; } units[] = {
        {"", 1},         {"B", 1},           {"k", 1e3},         {"K", 1e3},       {"KB", 1e3},
        {"KiB", 1024.0}, {"M", 1e6},         {"MB", 1e6},        {"MiB", 1048576.0}, {"G", 1e9},
        {"GB", 1e9},     {"GiB", 1073741824.0}, {"T", 1e12},     {"TB", 1e12},     {"TiB", 1099511627776.0},
    };
    while (*end == ' ') end++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix)) {
            double b = v * units[i].mult;
            if (b > 1.8e19) return false;
            *out = (uint64_t)b;
            return true;
        }
    return false;
}

bool srv_parse_log_format(const char *s, srv_log_format *out)
{
    if (!strcmp(s, "text")) *out = SRV_LOG_TEXT;
    else if (!strcmp(s, "json")) *out = SRV_LOG_JSON;
    else return false;
    return true;
}

bool srv_parse_duration(const char *s, double *ms, bool *forever)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v)) return false;
    *forever = false;
    if (v < 0) {
        if (v != -1 || *end) return false;
        *forever = true;
        *ms = 0;
        return true;
    }
    static const struct { const char *suffix; double mult; } units[] = {
        {"", 1e3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix)) {
            *ms = v * units[i].mult;
            return isfinite(*ms) && *ms < 1e15;
        }
    return false;
}

/* ===== YAML walking ====================================================== */

typedef struct cfg_ctx {
    const char    *file;
    yaml_document_t *doc;
    char          *err;
    size_t         err_size;
    char           dir[4096]; /* the file's folder, for relative model paths */
} cfg_ctx;

static vki_status node_fail(cfg_ctx *x, const yaml_node_t *n, const char *fmt, ...) VKI_PRINTF(3, 4);
static vki_status node_fail(cfg_ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->err, x->err_size, "%s:%zu:%zu: %s", x->file, n->start_mark.line + 1, n->start_mark.column + 1, msg);
    return VKI_ERR_BAD_FILE;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static vki_status get_string(cfg_ctx *x, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE || !scalar(n)[0])
        return node_fail(x, n, "%s: expected a non-empty string, found %s", key, node_kind(n));
    char *s = strdup(scalar(n));
    if (!s) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    free(*out);
    *out = s;
    return VKI_OK;
}

static vki_status get_int(cfg_ctx *x, const yaml_node_t *n, const char *key, long lo, long hi, long *out)
{
    if (n->type == YAML_SCALAR_NODE) {
        char *end;
        errno = 0;
        long v = strtol(scalar(n), &end, 10);
        if (!errno && end != scalar(n) && !*end && v >= lo && v <= hi) {
            *out = v;
            return VKI_OK;
        }
    }
    return node_fail(x, n, "%s: expected an integer in [%ld, %ld], found '%s'", key, lo, hi,
                     n->type == YAML_SCALAR_NODE ? scalar(n) : node_kind(n));
}

static vki_status get_size(cfg_ctx *x, const yaml_node_t *n, const char *key, uint64_t *out)
{
    if (n->type == YAML_SCALAR_NODE && srv_parse_size(scalar(n), out)) return VKI_OK;
    return node_fail(x, n, "%s: expected a size such as 1048576, 64KiB or 1MiB, found '%s'", key,
                     n->type == YAML_SCALAR_NODE ? scalar(n) : node_kind(n));
}

/* A duration in (0, max_ms], such as 10s or 500ms. */
static vki_status get_timeout(cfg_ctx *x, const yaml_node_t *n, const char *key, double max_ms, double *out)
{
    bool forever = false;
    double ms = 0;
    if (n->type == YAML_SCALAR_NODE && srv_parse_duration(scalar(n), &ms, &forever) && !forever && ms > 0 &&
        ms <= max_ms) {
        *out = ms;
        return VKI_OK;
    }
    return node_fail(x, n, "%s: expected a duration in (0, %gs] such as 10s or 500ms, found '%s'", key, max_ms / 1e3,
                     n->type == YAML_SCALAR_NODE ? scalar(n) : node_kind(n));
}

typedef vki_status (*pair_fn)(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user);

/* Calls fn for each key of mapping n; `what` names the mapping in messages. */
static vki_status each_pair(cfg_ctx *x, yaml_node_t *n, const char *what, pair_fn fn, void *user)
{
    if (n->type != YAML_MAPPING_NODE) return node_fail(x, n, "%s: expected a mapping, found %s", what, node_kind(n));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(x->doc, p->key), *v = yaml_document_get_node(x->doc, p->value);
        if (!k || !v) continue;
        if (k->type != YAML_SCALAR_NODE) return node_fail(x, k, "%s: expected a key name, found %s", what, node_kind(k));
        VKI_TRY(fn(x, scalar(k), k, v, user));
    }
    return VKI_OK;
}

static vki_status server_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    long lv;
    uint64_t sz;
    if (!strcmp(key, "host")) return get_string(x, v, "server.host", &c->host);
    if (!strcmp(key, "api_key_env")) return get_string(x, v, "server.api_key_env", &c->api_key_env);
    if (!strcmp(key, "port")) {
        VKI_TRY(get_int(x, v, "server.port", 0, 65535, &lv));
        c->port = (int32_t)lv;
    } else if (!strcmp(key, "max_queue")) {
        VKI_TRY(get_int(x, v, "server.max_queue", 1, 1 << 20, &lv));
        c->max_queue = (int32_t)lv;
    } else if (!strcmp(key, "threads")) {
        VKI_TRY(get_int(x, v, "server.threads", 0, 1024, &lv));
        c->n_threads = (int32_t)lv;
    } else if (!strcmp(key, "log_format")) {
        const char *f = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
        if (!srv_parse_log_format(f, &c->log_format))
            return node_fail(x, v, "server.log_format: expected text or json, found '%s'", f[0] ? f : node_kind(v));
    } else if (!strcmp(key, "max_body")) {
        VKI_TRY(get_size(x, v, "server.max_body", &sz));
        if (sz < 64 || sz > (1u << 30))
            return node_fail(x, v, "server.max_body: expected 64 bytes to 1GiB, found '%s'", scalar(v));
        c->max_body = (size_t)sz;
    } else if (!strcmp(key, "max_connections")) {
        VKI_TRY(get_int(x, v, "server.max_connections", 1, 60000, &lv));
        c->max_conns = (int32_t)lv;
    } else if (!strcmp(key, "max_connections_per_ip")) {
        VKI_TRY(get_int(x, v, "server.max_connections_per_ip", 1, 60000, &lv));
        c->max_conns_per_ip = (int32_t)lv;
    } else if (!strcmp(key, "admin")) {
        const char *t = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
        if (!strcmp(t, "true")) c->admin = true;
        else if (!strcmp(t, "false")) c->admin = false;
        else return node_fail(x, v, "server.admin: expected true or false, found '%s'", t[0] ? t : node_kind(v));
    } else if (!strcmp(key, "health_degraded_status")) {
        /* 200 (serving, with the detail) or an error code for balancers that only read codes */
        VKI_TRY(get_int(x, v, "server.health_degraded_status", 200, 599, &lv));
        c->health_degraded_status = (int32_t)lv;
    } else if (!strcmp(key, "header_timeout")) {
        VKI_TRY(get_timeout(x, v, "server.header_timeout", 3600e3, &c->header_timeout_ms));
    } else if (!strcmp(key, "body_timeout")) {
        VKI_TRY(get_timeout(x, v, "server.body_timeout", 3600e3, &c->body_timeout_ms));
    } else if (!strcmp(key, "drain_timeout")) {
        /* 0 is allowed here: cancel what is in flight at once */
        bool forever = false;
        double ms = -1;
        if (v->type != YAML_SCALAR_NODE || !srv_parse_duration(scalar(v), &ms, &forever) || forever || !(ms >= 0) ||
            ms > 3600e3)
            return node_fail(x, v, "server.drain_timeout: expected a duration in [0, 3600s] such as 30s, found '%s'",
                             v->type == YAML_SCALAR_NODE ? scalar(v) : node_kind(v));
        c->drain_timeout_ms = ms;
    } else {
        return node_fail(x, k, "server: unknown key '%s' (expected host, port, api_key_env, max_body, max_queue, "
                               "threads, log_format, max_connections, max_connections_per_ip, header_timeout, "
                               "body_timeout, drain_timeout, health_degraded_status, admin)", key);
    }
    return VKI_OK;
}

static vki_status warmup_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    const char *t = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
    if (!strcmp(key, "enabled")) {
        if (!strcmp(t, "true")) c->warmup = true;
        else if (!strcmp(t, "false")) c->warmup = false;
        else return node_fail(x, v, "warmup.enabled: expected true or false, found '%s'", t[0] ? t : node_kind(v));
    } else if (!strcmp(key, "interval")) {
        VKI_TRY(get_timeout(x, v, "warmup.interval", 86400e3, &c->warm_interval_ms));
        if (c->warm_interval_ms < 1e3) return node_fail(x, v, "warmup.interval: expected at least 1s, found '%s'", t);
    } else if (!strcmp(key, "threshold")) {
        char *end = NULL;
        double p = t[0] ? strtod(t, &end) : NAN;
        if (!end || *end || !(p > 0 && p <= 1))
            return node_fail(x, v, "warmup.threshold: expected a probability in (0, 1], found '%s'", t[0] ? t : node_kind(v));
        c->warm_threshold = p;
    } else if (!strcmp(key, "state_dir")) {
        if (v->type != YAML_SCALAR_NODE)
            return node_fail(x, v, "warmup.state_dir: expected a folder, or \"\" to keep no history, found %s",
                             node_kind(v));
        char *d = malloc(strlen(x->dir) + strlen(t) + 2);
        if (!d) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
        if (t[0] && t[0] != '/' && x->dir[0]) sprintf(d, "%s/%s", x->dir, t);
        else strcpy(d, t);
        free(c->state_dir);
        c->state_dir = d;
    } else {
        return node_fail(x, k, "warmup: unknown key '%s' (expected enabled, interval, threshold, state_dir)", key);
    }
    return VKI_OK;
}

static vki_status scheduler_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    if (!strcmp(key, "embedding_cache")) {
        VKI_TRY(get_size(x, v, "scheduler.embedding_cache", &c->emb_cache_bytes));
        if (c->emb_cache_bytes > (1ull << 40))
            return node_fail(x, v, "scheduler.embedding_cache: expected at most 1TiB, found '%s'", scalar(v));
        return VKI_OK;
    }
    return node_fail(x, k, "scheduler: unknown key '%s' (expected embedding_cache)", key);
}

static vki_status device_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    if (!strcmp(key, "prefer")) {
        const char *s = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
        if (!strcmp(s, "auto")) c->prefer = VKI_BACKEND_AUTO;
        else if (!strcmp(s, "cpu")) c->prefer = VKI_BACKEND_CPU;
        else if (!strcmp(s, "vulkan") || !strcmp(s, "gpu")) c->prefer = VKI_BACKEND_VULKAN;
        else return node_fail(x, v, "device.prefer: expected auto, cpu or vulkan, found '%s'", s[0] ? s : node_kind(v));
    } else if (!strcmp(key, "vram_budget")) {
        const char *s = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
        size_t n = strlen(s);
        if (n > 1 && s[n - 1] == '%') {
            char *end;
            double f = strtod(s, &end);
            if (end != s + n - 1 || !(f > 0 && f <= 100)) /* !(…) refuses nan */
                return node_fail(x, v, "device.vram_budget: expected a percentage in (0, 100], found '%s'", s);
            c->vram_fraction = f / 100.0;
            c->vram_budget = 0;
        } else {
            VKI_TRY(get_size(x, v, "device.vram_budget", &c->vram_budget));
            c->vram_fraction = 0;
        }
    } else if (!strcmp(key, "quantum")) {
        VKI_TRY(get_timeout(x, v, "device.quantum", 3600e3, &c->quantum_ms));
    } else if (!strcmp(key, "drain")) {
        VKI_TRY(get_timeout(x, v, "device.drain", 3600e3, &c->drain_ms));
    } else if (!strcmp(key, "aging")) {
        VKI_TRY(get_timeout(x, v, "device.aging", 3600e3, &c->aging_ms));
    } else if (!strcmp(key, "quantum_loads")) {
        long lv;
        VKI_TRY(get_int(x, v, "device.quantum_loads", 1, 1000, &lv));
        c->quantum_loads = (double)lv;
    } else if (!strcmp(key, "chunk_tokens")) {
        long lv;
        VKI_TRY(get_int(x, v, "device.chunk_tokens", 1, 1 << 20, &lv));
        c->chunk_tokens = (int32_t)lv;
    } else {
        return node_fail(x, k, "device: unknown key '%s' (expected prefer, vram_budget, quantum, quantum_loads, "
                               "drain, chunk_tokens, aging)", key);
    }
    return VKI_OK;
}

/* ----- fallback, capabilities, breaker (the keys of issue 13) ----- */

static vki_status get_number(cfg_ctx *x, const yaml_node_t *n, const char *key, double lo, double hi, double *out)
{
    char *end = NULL;
    const char *t = n->type == YAML_SCALAR_NODE ? scalar(n) : "";
    double d = t[0] ? strtod(t, &end) : 0;
    if (!t[0] || *end || !(d >= lo && d <= hi))
        return node_fail(x, n, "%s: expected a number in [%g, %g], found '%s'", key, lo, hi, t[0] ? t : node_kind(n));
    *out = d;
    return VKI_OK;
}

static vki_status get_duration(cfg_ctx *x, const yaml_node_t *n, const char *key, double *ms)
{
    bool forever = false;
    if (n->type != YAML_SCALAR_NODE || !srv_parse_duration(scalar(n), ms, &forever) || forever || !(*ms > 0))
        return node_fail(x, n, "%s: expected a duration > 0 such as 30s or 500ms, found '%s'", key,
                         n->type == YAML_SCALAR_NODE ? scalar(n) : node_kind(n));
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

/* fallback: [cpu, other-id, auto]: cpu loads this model on the CPU when the
 * device cannot hold it; ids are tried in order; auto adds scored candidates. */
static vki_status fallback_list(cfg_ctx *x, yaml_node_t *v, srv_model_cfg *m)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return node_fail(x, v, "models[].fallback: expected a list such as [cpu] or [other-model, auto], found %s",
                         node_kind(v));
    m->fallback_cpu = m->fallback_auto = false;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        if (!e || e->type != YAML_SCALAR_NODE || !scalar(e)[0])
            return node_fail(x, e ? e : v, "models[].fallback: expected cpu, auto or a model id, found %s",
                             e ? node_kind(e) : "nothing");
        if (!strcmp(scalar(e), "cpu")) m->fallback_cpu = true;
        else if (!strcmp(scalar(e), "auto")) m->fallback_auto = true;
        else if (m->n_fallback >= 64)
            return node_fail(x, e, "models[].fallback: at most 64 model ids");
        else if (!push_str(&m->fallback_ids, &m->n_fallback, scalar(e)))
            return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    }
    return VKI_OK;
}

static vki_status caps_list(cfg_ctx *x, yaml_node_t *v, srv_model_cfg *m)
{
    static const struct { const char *name; uint32_t bit; } caps[] = {
        {"chat", SCHED_CAP_CHAT}, {"embedding", SCHED_CAP_EMBEDDING}, {"tools", SCHED_CAP_TOOLS},
        {"json", SCHED_CAP_JSON}};
    if (v->type != YAML_SEQUENCE_NODE)
        return node_fail(x, v, "models[].capabilities: expected a list such as [chat, tools, json], found %s",
                         node_kind(v));
    m->caps = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        size_t k = 0;
        while (e && e->type == YAML_SCALAR_NODE && k < VKI_COUNT(caps) && strcmp(scalar(e), caps[k].name)) k++;
        if (!e || e->type != YAML_SCALAR_NODE || k == VKI_COUNT(caps))
            return node_fail(x, e ? e : v, "models[].capabilities: expected chat, embedding, tools or json, found '%s'",
                             e && e->type == YAML_SCALAR_NODE ? scalar(e) : "a non-scalar");
        m->caps |= caps[k].bit;
    }
    return VKI_OK;
}

static vki_status languages_list(cfg_ctx *x, yaml_node_t *v, srv_model_cfg *m)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return node_fail(x, v, "models[].languages: expected a list such as [en, de], found %s", node_kind(v));
    struct { char *p; size_t n; } b = {0};
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        const char *t = e && e->type == YAML_SCALAR_NODE ? scalar(e) : "";
        if (!t[0] || strchr(t, ',') || strlen(t) > 15) {
            free(b.p);
            return node_fail(x, e ? e : v, "models[].languages: expected language codes such as en, found '%s'",
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

static vki_status compat_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    (void)k;
    srv_model_cfg *m = user;
    double d = 0;
    VKI_TRY(get_number(x, v, "models[].compatible", 0, 1, &d));
    double *nc = realloc(m->compat, sizeof *nc * (size_t)(m->n_compat + 1));
    if (!nc) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    m->compat = nc;
    int32_t n = m->n_compat;
    if (!push_str(&m->compat_ids, &n, key)) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    m->compat[m->n_compat++] = d;
    return VKI_OK;
}

static vki_status breaker_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    sched_breaker_params *b = user;
    long lv = 0;
    if (!strcmp(key, "failures")) {
        VKI_TRY(get_int(x, v, "breaker.failures", 1, 64, &lv));
        b->failures = (int32_t)lv;
        return VKI_OK;
    }
    if (!strcmp(key, "window")) return get_duration(x, v, "breaker.window", &b->window_ms);
    if (!strcmp(key, "recovery")) return get_duration(x, v, "breaker.recovery", &b->recovery_ms);
    return node_fail(x, k, "breaker: unknown key '%s' (expected failures, window, recovery)", key);
}

static vki_status test_fail_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_model_cfg *m = user;
    long lv = 0;
    if (strcmp(key, "loads") && strcmp(key, "steps"))
        return node_fail(x, k, "models[].test_fail: unknown key '%s' (expected loads, steps)", key);
    VKI_TRY(get_int(x, v, "models[].test_fail", 0, 1000000, &lv));
    *(strcmp(key, "loads") ? &m->test_fail_steps : &m->test_fail_loads) = (int32_t)lv;
    return VKI_OK;
}

static vki_status weights_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    sched_fb_weights *w = user;
    double *d = !strcmp(key, "declared") ? &w->declared : !strcmp(key, "capabilities") ? &w->capabilities
              : !strcmp(key, "request")  ? &w->request : NULL;
    if (!d)
        return node_fail(x, k, "fallback_policy.weights: unknown key '%s' (expected declared, capabilities, request)",
                         key);
    return get_number(x, v, "fallback_policy.weights", 0, 1000, d);
}

static vki_status policy_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    if (!strcmp(key, "weights")) return each_pair(x, v, "fallback_policy.weights", weights_pair, &c->fb_weights);
    if (!strcmp(key, "min_score")) return get_number(x, v, "fallback_policy.min_score", 0, 1, &c->fb_min_score);
    return node_fail(x, k, "fallback_policy: unknown key '%s' (expected weights, min_score)", key);
}

/* dimensions: [512, 256, ...]: the Matryoshka widths, each an integer >= 1,
 * at most 16, no repeats. */
static vki_status dims_list(cfg_ctx *x, yaml_node_t *v, srv_model_cfg *m)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return node_fail(x, v, "models[].dimensions: expected a list of widths such as [512, 256], found %s",
                         node_kind(v));
    m->n_dims = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(x->doc, *it);
        long d;
        if (!e) continue;
        if (m->n_dims == (int32_t)VKI_COUNT(m->dims))
            return node_fail(x, e, "models[].dimensions: at most %d widths", (int)VKI_COUNT(m->dims));
        VKI_TRY(get_int(x, e, "models[].dimensions[]", 1, 1 << 20, &d));
        for (int32_t k = 0; k < m->n_dims; k++)
            if (m->dims[k] == d) return node_fail(x, e, "models[].dimensions: %ld is listed twice", d);
        m->dims[m->n_dims++] = (int32_t)d;
    }
    return VKI_OK;
}

static vki_status model_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_model_cfg *m = user;
    long lv;
    if (!strcmp(key, "id")) return get_string(x, v, "models[].id", &m->id);
    if (!strcmp(key, "path")) return get_string(x, v, "models[].path", &m->path);
    if (!strcmp(key, "chat_template")) return get_string(x, v, "models[].chat_template", &m->chat_template);
    if (!strcmp(key, "kind")) {
        if (v->type != YAML_SCALAR_NODE || !sched_kind_parse(scalar(v), &m->kind))
            return node_fail(x, v, "models[].kind: expected chat or embedding, found '%s'",
                             v->type == YAML_SCALAR_NODE ? scalar(v) : node_kind(v));
        m->has_kind = true;
    } else if (!strcmp(key, "priority")) {
        if (v->type != YAML_SCALAR_NODE || !sched_prio_parse(scalar(v), &m->priority))
            return node_fail(x, v, "models[].priority: expected interactive, normal or batch (or the service names "
                                   "chat, npc, search, summary), found '%s'",
                             v->type == YAML_SCALAR_NODE ? scalar(v) : node_kind(v));
        m->has_priority = true;
    } else if (!strcmp(key, "n_ctx")) {
        VKI_TRY(get_int(x, v, "models[].n_ctx", 0, 1 << 20, &lv));
        m->n_ctx = (uint32_t)lv;
    } else if (!strcmp(key, "n_seq_max")) {
        VKI_TRY(get_int(x, v, "models[].n_seq_max", 1, 256, &lv));
        m->n_seq_max = (uint32_t)lv;
    } else if (!strcmp(key, "keep_alive")) {
        bool forever;
        if (v->type != YAML_SCALAR_NODE || !srv_parse_duration(scalar(v), &m->keep_alive_ms, &forever))
            return node_fail(x, v, "models[].keep_alive: expected a duration such as 10m, 30s, 0 (unload when idle) "
                                   "or -1 (never), found '%s'", v->type == YAML_SCALAR_NODE ? scalar(v) : node_kind(v));
        m->has_keep_alive = !forever;
    } else if (!strcmp(key, "pin")) {
        const char *t = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
        if (!strcmp(t, "true")) m->pin = true;
        else if (!strcmp(t, "false")) m->pin = false;
        else return node_fail(x, v, "models[].pin: expected true or false, found '%s'", t[0] ? t : node_kind(v));
    } else if (!strcmp(key, "prefix_reuse")) {
        const char *t = v->type == YAML_SCALAR_NODE ? scalar(v) : "";
        if (!strcmp(t, "true")) m->no_prefix_reuse = false;
        else if (!strcmp(t, "false")) m->no_prefix_reuse = true;
        else return node_fail(x, v, "models[].prefix_reuse: expected true or false, found '%s'",
                              t[0] ? t : node_kind(v));
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
            return node_fail(x, v, "models[].compatible: expected a map of model id to score in [0, 1], found %s",
                             node_kind(v));
        return each_pair(x, v, "models[].compatible", compat_pair, m);
    } else if (!strcmp(key, "breaker")) {
        return each_pair(x, v, "models[].breaker", breaker_pair, &m->breaker);
    } else if (!strcmp(key, "test_fail")) {
        return each_pair(x, v, "models[].test_fail", test_fail_pair, m);
    } else if (!strcmp(key, "use_case")) {
        return get_string(x, v, "models[].use_case", &m->use_case);
    } else if (!strcmp(key, "quality")) {
        return get_number(x, v, "models[].quality", 0, 1, &m->quality);
    } else {
        return node_fail(x, k, "models[]: unknown key '%s' (expected id, path, kind, priority, n_ctx, n_seq_max, "
                               "chat_template, keep_alive, pin, prefix_reuse, fallback, capabilities, languages, "
                               "dimensions, compatible, breaker, test_fail, use_case, quality)", key);
    }
    return VKI_OK;
}

static vki_status add_model_node(cfg_ctx *x, srv_config *c, yaml_node_t *n)
{
    srv_model_cfg m = {0};
    vki_status s = each_pair(x, n, "models[]", model_pair, &m);
    if (s == VKI_OK && !m.path) s = node_fail(x, n, "models[]: expected a 'path' key");
    if (s == VKI_OK && m.id && !strcmp(m.id, "auto"))
        s = node_fail(x, n, "models[]: the id 'auto' is reserved (requests for it are routed: routes:)");
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
        s = srv_config_add_model(c, m.id, m.path);
        if (s == VKI_OK) {
            srv_model_cfg *d = &c->models[c->n_models - 1];
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
    model_cfg_free(&m);
    return s;
}

static vki_status top_pair(cfg_ctx *x, const char *key, yaml_node_t *k, yaml_node_t *v, void *user)
{
    srv_config *c = user;
    if (!strcmp(key, "server")) return each_pair(x, v, "server", server_pair, c);
    if (!strcmp(key, "device")) return each_pair(x, v, "device", device_pair, c);
    if (!strcmp(key, "warmup")) return each_pair(x, v, "warmup", warmup_pair, c);
    if (!strcmp(key, "scheduler")) return each_pair(x, v, "scheduler", scheduler_pair, c);
    if (!strcmp(key, "fallback_policy")) return each_pair(x, v, "fallback_policy", policy_pair, c);
    if (!strcmp(key, "routes") || !strcmp(key, "router")) {
        srv_cfg_yaml y = {.file = x->file, .doc = x->doc, .err = x->err, .err_size = x->err_size};
        return key[5] == 's' ? srv_config_parse_routes(c, &y, v) : srv_config_parse_router(c, &y, v);
    }
    if (!strcmp(key, "models")) {
        if (v->type != YAML_SEQUENCE_NODE) return node_fail(x, v, "models: expected a list, found %s", node_kind(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
            VKI_TRY(add_model_node(x, c, yaml_document_get_node(x->doc, *it)));
        return VKI_OK;
    }
    return node_fail(x, k, "unknown top-level key '%s' (expected server, device, warmup, scheduler, models, "
                           "fallback_policy, routes, router)", key);
}

vki_status srv_config_parse(srv_config *c, const char *name, const char *dir, const char *text, size_t len, char *err,
                            size_t err_size)
{
    cfg_ctx x = {.file = name, .err = err, .err_size = err_size};
    snprintf(x.dir, sizeof x.dir, "%s", dir);
    yaml_parser_t p;
    yaml_document_t doc;
    vki_status s = VKI_OK;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        snprintf(err, err_size, "%s:%zu:%zu: %s%s%s", name, p.problem_mark.line + 1, p.problem_mark.column + 1,
                 p.problem ? p.problem : "malformed YAML", p.context ? " " : "", p.context ? p.context : "");
        yaml_parser_delete(&p);
        return VKI_ERR_BAD_FILE;
    }
    x.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        snprintf(err, err_size, "%s:1:1: the file is empty (expected a mapping with server, device, models)", name);
        s = VKI_ERR_BAD_FILE;
    } else {
        s = each_pair(&x, root, "the top level", top_pair, c);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return s;
}

vki_status srv_config_load(srv_config *c, const char *path, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: cannot open: %s", path, strerror(errno));
        return VKI_ERR_NOT_FOUND;
    }
    /* Config files are small: read whole, so parsing works from memory
     * (the fuzz target feeds srv_config_parse directly). */
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nt = cap <= (64u << 20) ? realloc(text, cap) : NULL;
            if (!nt) {
                free(text);
                fclose(f);
                snprintf(err, err_size, "%s: too large or out of memory", path);
                return VKI_ERR_BAD_FILE;
            }
            text = nt;
        }
        size_t n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        snprintf(err, err_size, "%s: read error", path);
        return VKI_ERR_BAD_FILE;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    vki_status s = srv_config_parse(c, path, dirname(tmp), text, len, err, err_size);
    free(text);
    return s;
}

vki_status srv_config_add_model(srv_config *c, const char *id, const char *path)
{
    srv_model_cfg *nm = realloc(c->models, sizeof *nm * (size_t)(c->n_models + 1));
    if (!nm) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    c->models = nm;
    srv_model_cfg *m = &c->models[c->n_models];
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
        model_cfg_free(m);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory");
    }
    c->n_models++;
    return VKI_OK;
}

static int32_t find_model(const srv_config *c, const char *id)
{
    for (int32_t j = 0; j < c->n_models; j++)
        if (!strcmp(c->models[j].id, id)) return j;
    return -1;
}

/* Fallback ids and compatibility entries name other models of the same kind. */
static vki_status check_fallback(const srv_config *c, char *err, size_t err_size)
{
    for (int32_t i = 0; i < c->n_models; i++) {
        const srv_model_cfg *m = &c->models[i];
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
                snprintf(err, err_size, "model '%s' (%s): %s names '%s', a %s model", m->id, sched_kind_name(m->kind),
                         what, id, sched_kind_name(c->models[j].kind));
                return VKI_ERR_INVALID_ARGUMENT;
            }
        }
    }
    return VKI_OK;
}

vki_status srv_config_resolve(srv_config *c, char *err, size_t err_size)
{
    if (!c->n_models) {
        snprintf(err, err_size, "no models: give -m MODEL or a config file with a models list");
        return VKI_ERR_INVALID_ARGUMENT;
    }
    for (int32_t i = 0; i < c->n_models; i++) {
        srv_model_cfg *m = &c->models[i];
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
            m->kind = SCHED_KIND_CHAT;
            continue;
        }
        m->kind = mdl_file_is_embedding(f) ? SCHED_KIND_EMBEDDING : SCHED_KIND_CHAT;
        m->has_kind = true;
        vki_file_close(f);
    }
    for (int32_t i = 0; i < c->n_models; i++)
        if (c->models[i].n_dims && c->models[i].kind != SCHED_KIND_EMBEDDING) {
            snprintf(err, err_size, "model '%s': dimensions (Matryoshka widths) apply to embedding models only",
                     c->models[i].id);
            return VKI_ERR_INVALID_ARGUMENT;
        }
    VKI_TRY(check_fallback(c, err, err_size));
    return srv_config_check_routes(c, err, err_size);
}
