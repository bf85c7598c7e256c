/*
 * config_routes.c: the `routes:` and `router:` sections of the config file
 * (`model: "auto"`, engine/sched/router.h), and their check against the
 * models once kinds are known. Every message carries FILE:LINE:COL.
 *
 *   router: {model: embed, threshold: 0.8}
 *   routes:
 *     - name: stories
 *       use_case: bedtime stories
 *       model: chat            # the primary
 *       fallback: [chat-small] # tried in load order after it
 *       needs: [chat, tools, json]
 *       min_context: 2048
 *       examples: ["tell me a story about ...", ...]
 *       threshold: 0.85
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/router.h"
#include "error.h"
#include "server/config_yaml.h"
#include "util.h"

#define MAX_ROUTES   SCHED_ROUTER_MAX_ROUTES
#define MAX_EXAMPLES 1024

static vki_status fail(const srv_cfg_yaml *y, const yaml_node_t *n, const char *fmt, ...) VKI_PRINTF(3, 4);
static vki_status fail(const srv_cfg_yaml *y, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(y->err, y->err_size, "%s:%zu:%zu: %s", y->file, n->start_mark.line + 1, n->start_mark.column + 1, msg);
    return VKI_ERR_BAD_FILE;
}

static const char *text(const yaml_node_t *n)
{
    if (n->type == YAML_SCALAR_NODE) return (const char *)n->data.scalar.value;
    return n->type == YAML_SEQUENCE_NODE ? "a list" : n->type == YAML_MAPPING_NODE ? "a mapping" : "nothing";
}

static char *where(const srv_cfg_yaml *y, const yaml_node_t *n)
{
    char b[4200];
    snprintf(b, sizeof b, "%s:%zu:%zu", y->file, n->start_mark.line + 1, n->start_mark.column + 1);
    return strdup(b);
}

static vki_status oom(void) { return vki_fail(VKI_ERR_OUT_OF_MEMORY, "config: out of memory"); }

static vki_status get_str(const srv_cfg_yaml *y, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE || !text(n)[0])
        return fail(y, n, "%s: expected a non-empty string, found %s", key, n->type == YAML_SCALAR_NODE ? "''" : text(n));
    free(*out);
    return (*out = strdup(text(n))) ? VKI_OK : oom();
}

static vki_status get_num(const srv_cfg_yaml *y, const yaml_node_t *n, const char *key, double lo, double hi,
                          double *out)
{
    if (n->type == YAML_SCALAR_NODE) {
        char *end;
        errno = 0;
        double v = strtod(text(n), &end);
        if (!errno && end != text(n) && !*end && isfinite(v) && v >= lo && v <= hi) {
            *out = v;
            return VKI_OK;
        }
    }
    return fail(y, n, "%s: expected a number in [%g, %g], found '%s'", key, lo, hi, text(n));
}

static bool push(char ***list, int32_t *n, char *owned)
{
    char **nl = owned ? realloc(*list, sizeof *nl * (size_t)(*n + 1)) : NULL;
    if (!nl) {
        free(owned);
        return false;
    }
    *list = nl;
    nl[(*n)++] = owned;
    return true;
}

static void route_free(srv_route_cfg *r)
{
    free(r->name);
    free(r->use_case);
    free(r->where);
    for (int32_t k = 0; k < r->n_models; k++) {
        free(r->models[k]);
        free(r->where_models[k]);
    }
    free(r->models);
    free(r->where_models);
    for (int32_t k = 0; k < r->n_examples; k++) free(r->examples[k]);
    free(r->examples);
    memset(r, 0, sizeof *r);
}

void srv_config_free_routes(srv_config *c)
{
    for (int32_t i = 0; i < c->n_routes; i++) route_free(&c->routes[i]);
    free(c->routes);
    free(c->router_model);
    free(c->router_where);
    c->routes = NULL;
    c->n_routes = 0;
    c->router_model = c->router_where = NULL;
}

/* ===== Parsing ============================================================ */

static vki_status add_model(const srv_cfg_yaml *y, srv_route_cfg *r, const yaml_node_t *e, bool primary)
{
    if (e->type != YAML_SCALAR_NODE || !text(e)[0])
        return fail(y, e, "routes[].%s: expected a model id, found %s", primary ? "model" : "fallback", text(e));
    if (r->n_models == SCHED_ROUTE_MAX_MODELS)
        return fail(y, e, "routes[]: at most %d models (model and fallback)", SCHED_ROUTE_MAX_MODELS);
    int32_t n = r->n_models;
    if (!push(&r->models, &n, strdup(text(e)))) return oom();
    if (!push(&r->where_models, &r->n_models, where(y, e))) {
        free(r->models[n - 1]);
        return oom();
    }
    if (primary && r->n_models > 1) {
        /* model: comes after fallback: in the file: the primary goes first */
        char *m = r->models[r->n_models - 1], *w = r->where_models[r->n_models - 1];
        memmove(r->models + 1, r->models, sizeof *r->models * (size_t)(r->n_models - 1));
        memmove(r->where_models + 1, r->where_models, sizeof *r->where_models * (size_t)(r->n_models - 1));
        r->models[0] = m;
        r->where_models[0] = w;
    }
    return VKI_OK;
}

static vki_status needs_list(const srv_cfg_yaml *y, srv_route_cfg *r, yaml_node_t *v)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(y, v, "routes[].needs: expected a list such as [chat, tools, json], found %s", text(v));
    r->caps = 0;
    r->has_kind = false;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(y->doc, *it);
        if (!e) continue;
        const char *t = text(e);
        vki_model_kind k;
        if (e->type == YAML_SCALAR_NODE && vki_model_kind_from_name(t, &k) && k != VKI_MODEL_KIND_AUTO) {
            if (r->has_kind && r->kind != k) return fail(y, e, "routes[].needs: both chat and embedding");
            r->has_kind = true;
            r->kind = k;
        } else if (e->type == YAML_SCALAR_NODE && !strcmp(t, "tools")) {
            r->caps |= VKI_CAP_TOOLS;
        } else if (e->type == YAML_SCALAR_NODE && !strcmp(t, "json")) {
            r->caps |= VKI_CAP_JSON;
        } else {
            return fail(y, e, "routes[].needs: expected chat, embedding, tools or json, found '%s'", t);
        }
    }
    return VKI_OK;
}

static vki_status examples_list(const srv_cfg_yaml *y, srv_route_cfg *r, yaml_node_t *v)
{
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(y, v, "routes[].examples: expected a list of prompts, found %s", text(v));
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(y->doc, *it);
        if (!e) continue;
        if (e->type != YAML_SCALAR_NODE || !text(e)[0])
            return fail(y, e, "routes[].examples: expected a non-empty prompt, found %s",
                        e->type == YAML_SCALAR_NODE ? "''" : text(e));
        if (r->n_examples == MAX_EXAMPLES) return fail(y, e, "routes[].examples: at most %d", MAX_EXAMPLES);
        if (!push(&r->examples, &r->n_examples, strdup(text(e)))) return oom();
    }
    return VKI_OK;
}

static vki_status route_pair(const srv_cfg_yaml *y, srv_route_cfg *r, const char *key, yaml_node_t *k, yaml_node_t *v)
{
    if (!strcmp(key, "name")) return get_str(y, v, "routes[].name", &r->name);
    if (!strcmp(key, "use_case") || !strcmp(key, "description")) return get_str(y, v, "routes[].use_case", &r->use_case);
    if (!strcmp(key, "model")) return add_model(y, r, v, true);
    if (!strcmp(key, "fallback")) {
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(y, v, "routes[].fallback: expected a list of model ids, found %s", text(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = yaml_document_get_node(y->doc, *it);
            if (e) VKI_TRY(add_model(y, r, e, false));
        }
        return VKI_OK;
    }
    if (!strcmp(key, "needs")) return needs_list(y, r, v);
    if (!strcmp(key, "examples")) return examples_list(y, r, v);
    if (!strcmp(key, "threshold")) {
        VKI_TRY(get_num(y, v, "routes[].threshold", -1, 1, &r->threshold));
        if (r->threshold == 0) r->threshold = 1e-9; /* 0 means "the router's": keep the one asked for */
        return VKI_OK;
    }
    if (!strcmp(key, "min_context")) {
        double d = 0;
        VKI_TRY(get_num(y, v, "routes[].min_context", 0, 1 << 24, &d));
        if (d != floor(d)) return fail(y, v, "routes[].min_context: expected a whole number of tokens");
        r->min_ctx = (int32_t)d;
        return VKI_OK;
    }
    return fail(y, k, "routes[]: unknown key '%s' (expected name, use_case, model, fallback, needs, min_context, "
                      "examples, threshold)", key);
}

static vki_status parse_route(const srv_cfg_yaml *y, srv_route_cfg *r, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) return fail(y, n, "routes[]: expected a mapping, found %s", text(n));
    if (!(r->where = where(y, n))) return oom();
    bool has_primary = false;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key), *v = yaml_document_get_node(y->doc, p->value);
        if (!k || !v) continue;
        if (k->type != YAML_SCALAR_NODE) return fail(y, k, "routes[]: expected a key name, found %s", text(k));
        if (!strcmp(text(k), "model")) {
            if (has_primary) return fail(y, k, "routes[]: model given twice");
            has_primary = true;
        }
        VKI_TRY(route_pair(y, r, text(k), k, v));
    }
    if (!r->name) return fail(y, n, "routes[]: expected a 'name' key");
    if (!has_primary) return fail(y, n, "routes[] '%s': expected a 'model' key (the primary model)", r->name);
    return VKI_OK;
}

vki_status srv_config_parse_routes(srv_config *c, const srv_cfg_yaml *y, yaml_node_t *v)
{
    if (v->type != YAML_SEQUENCE_NODE) return fail(y, v, "routes: expected a list, found %s", text(v));
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(y->doc, *it);
        if (!e) continue;
        if (c->n_routes == MAX_ROUTES) return fail(y, e, "routes: at most %d", MAX_ROUTES);
        srv_route_cfg r = {0};
        vki_status s = parse_route(y, &r, e);
        for (int32_t j = 0; s == VKI_OK && j < c->n_routes; j++)
            if (!strcmp(c->routes[j].name, r.name)) s = fail(y, e, "routes[]: the name '%s' is used twice", r.name);
        srv_route_cfg *nr = s == VKI_OK ? realloc(c->routes, sizeof *nr * (size_t)(c->n_routes + 1)) : NULL;
        if (s == VKI_OK && !nr) s = oom();
        if (s != VKI_OK) {
            route_free(&r);
            return s;
        }
        c->routes = nr;
        c->routes[c->n_routes++] = r;
    }
    return VKI_OK;
}

vki_status srv_config_parse_router(srv_config *c, const srv_cfg_yaml *y, yaml_node_t *v)
{
    if (v->type != YAML_MAPPING_NODE) return fail(y, v, "router: expected a mapping, found %s", text(v));
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key), *n = yaml_document_get_node(y->doc, p->value);
        if (!k || !n) continue;
        const char *key = k->type == YAML_SCALAR_NODE ? text(k) : "";
        if (!strcmp(key, "model")) {
            VKI_TRY(get_str(y, n, "router.model", &c->router_model));
            free(c->router_where);
            if (!(c->router_where = where(y, n))) return oom();
        } else if (!strcmp(key, "threshold")) {
            VKI_TRY(get_num(y, n, "router.threshold", -1, 1, &c->router_threshold));
            if (c->router_threshold == 0) c->router_threshold = 1e-9;
        } else {
            return fail(y, k, "router: unknown key '%s' (expected model, threshold)", text(k));
        }
    }
    return VKI_OK;
}

/* ===== Checks against the models ========================================== */

static int32_t find(const srv_config *c, const char *id)
{
    for (int32_t j = 0; j < c->svc.n_models; j++)
        if (!strcmp(c->svc.models[j].id, id)) return j;
    return -1;
}

vki_status srv_config_check_routes(srv_config *c, char *err, size_t err_size)
{
    bool any_examples = false;
    for (int32_t i = 0; i < c->svc.n_models; i++)
        if (!strcmp(c->svc.models[i].id, "auto")) {
            snprintf(err, err_size, "model id 'auto' is reserved: requests for it are routed (routes:)");
            return VKI_ERR_BAD_FILE;
        }
    for (int32_t i = 0; i < c->n_routes; i++) {
        srv_route_cfg *r = &c->routes[i];
        any_examples |= r->n_examples > 0;
        vki_model_kind kind = r->kind;
        for (int32_t k = 0; k < r->n_models; k++) {
            const int32_t j = find(c, r->models[k]);
            if (j < 0) {
                snprintf(err, err_size, "%s: route '%s' names model '%s', which is not a configured model id",
                         r->where_models[k], r->name, r->models[k]);
                return VKI_ERR_BAD_FILE;
            }
            for (int32_t q = 0; q < k; q++)
                if (!strcmp(r->models[q], r->models[k])) {
                    snprintf(err, err_size, "%s: route '%s' names model '%s' twice", r->where_models[k], r->name,
                             r->models[k]);
                    return VKI_ERR_BAD_FILE;
                }
            if (!r->has_kind && k == 0) kind = c->svc.models[j].kind; /* the primary's */
            if (c->svc.models[j].kind != kind) {
                snprintf(err, err_size, "%s: route '%s' serves %s, but model '%s' is a %s model", r->where_models[k],
                         r->name, vki_model_kind_name(kind), r->models[k],
                         vki_model_kind_name(c->svc.models[j].kind));
                return VKI_ERR_BAD_FILE;
            }
        }
        r->kind = kind;
        r->has_kind = true;
        if (kind == VKI_MODEL_KIND_EMBEDDING && (r->n_examples || r->caps)) {
            snprintf(err, err_size, "%s: route '%s' serves embeddings, which are routed by need only: %s apply to "
                     "chat routes", r->where, r->name, r->n_examples ? "examples" : "tools and json");
            return VKI_ERR_BAD_FILE;
        }
    }
    if (c->router_model) {
        const int32_t j = find(c, c->router_model);
        if (j < 0 || c->svc.models[j].kind != VKI_MODEL_KIND_EMBEDDING) {
            snprintf(err, err_size, "%s: router.model '%s' %s", c->router_where, c->router_model,
                     j < 0 ? "is not a configured model id" : "is a chat model; the router embeds with an embedding "
                                                               "model");
            return VKI_ERR_BAD_FILE;
        }
    } else if (any_examples) {
        for (int32_t i = 0; i < c->n_routes; i++)
            if (c->routes[i].n_examples) {
                snprintf(err, err_size, "%s: route '%s' has examples but no router.model embeds them (router: "
                         "{model: EMBEDDING-MODEL-ID})", c->routes[i].where, c->routes[i].name);
                return VKI_ERR_BAD_FILE;
            }
    }
    return VKI_OK;
}
