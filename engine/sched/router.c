/*
 * router.c: `model: "auto"` decisions (router.h): routes by need, meaning
 * and load, models within a route by load; the examples' vectors.
 * A decision is a few hundred dot products and a sort of at most 16
 * models: no allocation, one short lock (the vectors may be replaced by a
 * reload meanwhile). Must not: embed, block, know HTTP or YAML.
 */
#include "engine/sched/router.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched_internal.h"
#include "error.h"
#include "util.h"

typedef struct route {
    sched_route_params p;       /* strings and arrays below are owned */
    int32_t            ex0;     /* its first example in the flat list */
} route;

struct sched_router {
    route          *routes;
    int32_t         n_routes;
    double          threshold;
    char          **examples;  /* [n_examples], route 0's first        */
    int32_t         n_examples;
    pthread_mutex_t mu;        /* the vectors below                    */
    float          *emb;       /* [n_examples][dim] L2-normalised, or NULL */
    int32_t         dim;
    uint64_t        version;
};

const char *sched_route_by_name(sched_route_by b)
{
    static const char *const names[SCHED_ROUTE_N_BY] = {"meaning", "need", "load"};
    return b >= 0 && b < SCHED_ROUTE_N_BY ? names[b] : "?";
}

void sched_router_destroy(sched_router *r)
{
    if (!r) return;
    for (int32_t i = 0; i < r->n_routes; i++) {
        free((char *)r->routes[i].p.name);
        free((char *)r->routes[i].p.use_case);
        free((int32_t *)r->routes[i].p.models);
    }
    for (int32_t k = 0; k < r->n_examples; k++) free(r->examples[k]);
    free(r->examples);
    free(r->routes);
    free(r->emb);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static vki_status check_route(const sched_route_params *rp, const sched_route_params *all, int32_t i)
{
    if (!rp->name || !rp->name[0]) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: route %d has no name", (int)i);
    for (int32_t j = 0; j < i; j++)
        if (!strcmp(all[j].name, rp->name))
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: route '%s' is named twice", rp->name);
    if (rp->n_models < 1 || rp->n_models > SCHED_ROUTE_MAX_MODELS || !rp->models)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: route '%s' has %d models (expected 1 to %d)", rp->name,
                        (int)rp->n_models, SCHED_ROUTE_MAX_MODELS);
    for (int32_t k = 0; k < rp->n_models; k++)
        if (rp->models[k] < 0)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: route '%s': model index %d", rp->name,
                            (int)rp->models[k]);
    if (!(rp->threshold >= -1 && rp->threshold <= 1))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: route '%s': threshold %g is outside [-1, 1]", rp->name,
                        rp->threshold);
    if (rp->n_examples < 0 || (rp->n_examples && !rp->examples))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: route '%s': bad example list", rp->name);
    if (rp->n_examples && rp->kind == SCHED_KIND_EMBEDDING)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: route '%s' serves embeddings, which are routed by need "
                        "only: examples apply to chat routes", rp->name);
    return VKI_OK;
}

vki_status sched_router_create(const sched_router_params *p, const sched_route_params *routes, int32_t n_routes,
                               sched_router **out)
{
    *out = NULL;
    if (n_routes < 0 || n_routes > SCHED_ROUTER_MAX_ROUTES || (n_routes && !routes))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: %d routes (at most %d)", (int)n_routes,
                        SCHED_ROUTER_MAX_ROUTES);
    const double thr = p && p->threshold != 0 ? p->threshold : 0.5;
    if (!(thr >= -1 && thr <= 1)) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: threshold %g is outside [-1, 1]", thr);
    for (int32_t i = 0; i < n_routes; i++) VKI_TRY(check_route(&routes[i], routes, i));
    sched_router *r = calloc(1, sizeof *r);
    if (!r) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "router: out of memory");
    pthread_mutex_init(&r->mu, NULL);
    r->threshold = thr;
    int32_t n_ex = 0;
    for (int32_t i = 0; i < n_routes; i++) n_ex += routes[i].n_examples;
    r->routes = calloc((size_t)VKI_MAX(n_routes, 1), sizeof *r->routes);
    r->examples = calloc((size_t)VKI_MAX(n_ex, 1), sizeof *r->examples);
    if (!r->routes || !r->examples) goto oom;
    for (int32_t i = 0; i < n_routes; i++) {
        route *d = &r->routes[i];
        d->p = routes[i];
        d->p.name = d->p.use_case = NULL;
        d->p.models = NULL;
        d->p.examples = NULL;
        r->n_routes++;
        int32_t *mi = malloc(sizeof *mi * (size_t)routes[i].n_models);
        if (!mi || !(d->p.name = strdup(routes[i].name)) ||
            (routes[i].use_case && !(d->p.use_case = strdup(routes[i].use_case)))) {
            free(mi);
            goto oom;
        }
        memcpy(mi, routes[i].models, sizeof *mi * (size_t)routes[i].n_models);
        d->p.models = mi;
        d->ex0 = r->n_examples;
        for (int32_t k = 0; k < routes[i].n_examples; k++) {
            if (!(r->examples[r->n_examples] = strdup(routes[i].examples[k] ? routes[i].examples[k] : ""))) goto oom;
            r->n_examples++;
        }
        d->p.examples = (const char *const *)(r->examples + d->ex0);
    }
    *out = r;
    return VKI_OK;
oom:
    sched_router_destroy(r);
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "router: out of memory");
}

int32_t sched_router_n_routes(const sched_router *r) { return r ? r->n_routes : 0; }

const sched_route_params *sched_router_route(const sched_router *r, int32_t i)
{
    return r && i >= 0 && i < r->n_routes ? &r->routes[i].p : NULL;
}

double sched_router_threshold(const sched_router *r, int32_t i)
{
    const sched_route_params *p = sched_router_route(r, i);
    return p && p->threshold != 0 ? p->threshold : r ? r->threshold : 0.5;
}

int32_t sched_router_n_examples(const sched_router *r) { return r ? r->n_examples : 0; }

const char *sched_router_example(const sched_router *r, int32_t k)
{
    return r && k >= 0 && k < r->n_examples ? r->examples[k] : NULL;
}

vki_status sched_router_set_examples(sched_router *r, const float *emb, int32_t n, int32_t dim, uint64_t version)
{
    if (n != r->n_examples || dim < 1 || (n && !emb))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: %d example vectors of width %d (expected %d)", (int)n,
                        (int)dim, (int)r->n_examples);
    size_t bytes = sizeof *emb * (size_t)n * (size_t)dim;
    float *copy = malloc(VKI_MAX(bytes, 1));
    if (!copy) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "router: out of memory");
    memcpy(copy, emb, bytes);
    pthread_mutex_lock(&r->mu);
    free(r->emb);
    r->emb = copy;
    r->dim = dim;
    r->version = version;
    pthread_mutex_unlock(&r->mu);
    return VKI_OK;
}

bool sched_router_examples_ready(sched_router *r, uint64_t version)
{
    pthread_mutex_lock(&r->mu);
    bool ok = r->emb && r->version == version;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* ===== Decisions ========================================================== */

static bool model_ok(const sched_route_model *m, const sched_route_request *req, int32_t min_ctx)
{
    if (m->kind != req->kind || (req->caps & ~m->caps)) return false;
    const int32_t need = VKI_MAX(min_ctx, req->n_tokens);
    return m->n_ctx <= 0 || m->n_ctx >= need;
}

/* Load order: one that can serve, resident, shorter ETA (100 ms steps, so
 * noise in the measured service times does not reorder), cheaper load,
 * higher quality. 0 = equal (the caller's order decides). */
static int load_cmp(const sched_route_model *a, const sched_route_model *b)
{
    if (a->can_serve != b->can_serve) return a->can_serve ? -1 : 1;
    if (a->resident != b->resident) return a->resident ? -1 : 1;
    const double ea = floor(a->eta_ms / 100), eb = floor(b->eta_ms / 100);
    if (ea != eb) return ea < eb ? -1 : 1;
    if (a->load_ms != b->load_ms) return a->load_ms < b->load_ms ? -1 : 1;
    if (a->quality != b->quality) return a->quality > b->quality ? -1 : 1;
    return 0;
}

/* Appends the models of idx[n] that can serve req to out, ordered by load
 * (stable: the given order breaks ties, so the primary comes first). */
static void rank_models(const int32_t *idx, int32_t n, const sched_route_model *m, int32_t n_models,
                        const sched_route_request *req, int32_t min_ctx, sched_route_decision *out)
{
    out->n_order = 0;
    for (int32_t k = 0; k < n && out->n_order < SCHED_ROUTE_MAX_MODELS; k++) {
        const int32_t i = idx[k];
        if (i < 0 || i >= n_models || !model_ok(&m[i], req, min_ctx)) continue;
        bool dup = false;
        for (int32_t j = 0; j < out->n_order; j++) dup |= out->order[j] == i;
        if (dup) continue;
        int32_t at = out->n_order++;
        while (at > 0 && load_cmp(&m[i], &m[out->order[at - 1]]) < 0) {
            out->order[at] = out->order[at - 1];
            at--;
        }
        out->order[at] = i;
    }
}

/* Eight independent sums: the compiler vectorises them (one running sum
 * would be a chain of dependent adds it may not reorder). */
static float dot(const float *a, const float *b, int32_t n)
{
    float acc[8] = {0};
    int32_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[k + j] * b[k + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

/* The cosine of q to route i's nearest example (vectors are normalised). */
static double nearest(const sched_router *r, int32_t i, const float *q)
{
    const route *rt = &r->routes[i];
    double best = -2;
    for (int32_t k = 0; k < rt->p.n_examples; k++) {
        const float *e = r->emb + (size_t)(rt->ex0 + k) * (size_t)r->dim;
        best = VKI_MAX(best, (double)dot(q, e, r->dim));
    }
    return best;
}

static bool route_ok(const route *rt, const sched_route_request *req, const sched_route_model *m, int32_t n_models)
{
    if (rt->p.kind != req->kind || (req->caps & ~rt->p.caps & (SCHED_CAP_TOOLS | SCHED_CAP_JSON))) return false;
    for (int32_t k = 0; k < rt->p.n_models; k++) {
        const int32_t i = rt->p.models[k];
        if (i < n_models && model_ok(&m[i], req, rt->p.min_ctx)) return true;
    }
    return false;
}

vki_status sched_router_decide(sched_router *r, const sched_route_request *req, const sched_route_model *m,
                               int32_t n_models, const float *query, int32_t dim, sched_route_decision *out)
{
    memset(out, 0, sizeof *out);
    out->route = -1;
    if (n_models < 0 || n_models > SCHED_ROUTER_MAX_MODELS)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: %d models (at most %d)", (int)n_models,
                        SCHED_ROUTER_MAX_MODELS);
    int32_t eligible[SCHED_ROUTER_MAX_ROUTES], n_el = 0;
    for (int32_t i = 0; i < r->n_routes; i++)
        if (route_ok(&r->routes[i], req, m, n_models)) eligible[n_el++] = i;

    if (n_el == 0) {
        /* No route serves it: the registry, every model that can, by load. */
        int32_t all[SCHED_ROUTER_MAX_MODELS];
        for (int32_t i = 0; i < n_models; i++) all[i] = i;
        rank_models(all, n_models, m, n_models, req, 0, out);
        if (!out->n_order)
            return vki_fail(VKI_ERR_NOT_FOUND, "model auto: no configured model serves %s%s%s%s", sched_kind_name(req->kind),
                            req->caps & SCHED_CAP_TOOLS ? " with tools" : "",
                            req->caps & SCHED_CAP_JSON ? " with JSON output" : "",
                            req->n_tokens > 0 ? " in the context it needs" : "");
        out->by = out->n_order == 1 ? SCHED_ROUTE_BY_NEED : SCHED_ROUTE_BY_LOAD;
        return VKI_OK;
    }

    int32_t pick = -1;
    for (int32_t e = 0; !query && n_el > 1 && e < n_el; e++) out->want_query |= r->routes[eligible[e]].p.n_examples > 0;
    if (query && n_el > 1) {
        pthread_mutex_lock(&r->mu);
        if (r->emb && dim != r->dim) {
            pthread_mutex_unlock(&r->mu);
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router: query of width %d, examples of width %d", (int)dim,
                            (int)r->dim);
        }
        double best = -2, best_any = -2;
        for (int32_t e = 0; r->emb && e < n_el; e++) {
            const int32_t i = eligible[e];
            if (!r->routes[i].p.n_examples) continue;
            const double s = nearest(r, i, query);
            best_any = VKI_MAX(best_any, s);
            if (s >= sched_router_threshold(r, i) && s > best) {
                best = s;
                pick = i;
            }
        }
        pthread_mutex_unlock(&r->mu);
        out->score = pick >= 0 ? best : best_any > -2 ? best_any : 0;
        if (pick >= 0) out->by = SCHED_ROUTE_BY_MEANING;
    }
    if (pick < 0 && n_el == 1) {
        pick = eligible[0];
        out->by = SCHED_ROUTE_BY_NEED;
    }
    if (pick < 0) {
        /* Several serve it: the route whose best model is least loaded. */
        sched_route_decision d;
        const sched_route_model *best = NULL;
        for (int32_t e = 0; e < n_el; e++) {
            const route *rt = &r->routes[eligible[e]];
            rank_models(rt->p.models, rt->p.n_models, m, n_models, req, rt->p.min_ctx, &d);
            if (d.n_order && (!best || load_cmp(&m[d.order[0]], best) < 0)) {
                best = &m[d.order[0]];
                pick = eligible[e];
            }
        }
        out->by = SCHED_ROUTE_BY_LOAD;
    }
    const route *rt = &r->routes[pick];
    out->route = pick;
    rank_models(rt->p.models, rt->p.n_models, m, n_models, req, rt->p.min_ctx, out);
    return VKI_OK;
}

/* ===== The scheduler's models ============================================= */

void sched_router_snapshot(scheduler *s, const double *quality, sched_route_model *out)
{
    const int32_t n = sched_n_models(s);
    for (int32_t i = 0; i < n; i++) {
        sched_model_info info;
        sched_model_get_info(s, i, &info);
        sched_model *m = s->models[i];
        pthread_mutex_lock(&m->mu);
        const uint32_t caps = atomic_load(&m->fb)->caps;
        const uint32_t declared = caps & ~(SCHED_CAP_CHAT | SCHED_CAP_EMBEDDING);
        const int32_t n_ctx = m->can_queue ? m->shape.n_ctx : 0;
        pthread_mutex_unlock(&m->mu);
        sched_route_model *r = &out[i];
        r->kind = info.kind;
        r->caps = (info.kind == SCHED_KIND_EMBEDDING ? SCHED_CAP_EMBEDDING : SCHED_CAP_CHAT) |
                  (caps ? declared : info.kind == SCHED_KIND_CHAT ? SCHED_CAP_TOOLS | SCHED_CAP_JSON : 0);
        r->n_ctx = n_ctx;
        r->can_serve = info.state != SCHED_FAILED && info.can_queue && info.breaker != SCHED_BREAKER_OPEN &&
                       !info.removing && !info.removed;
        r->resident = sched_state_resident(info.state);
        r->eta_ms = sched_eta_ms(s, i);
        /* Never loaded: its bytes at 1 GB/s, a rough figure only ranks it. */
        r->load_ms = r->resident ? 0 : info.load_ms > 0 ? info.load_ms : 1 + (double)info.est_bytes / 1e6;
        r->quality = quality ? quality[i] : 0;
    }
}

uint64_t sched_router_version(scheduler *s, int32_t embed_model)
{
    sched_stats st;
    sched_model_get_stats(s, embed_model, &st);
    return st.swaps + 1; /* 0 is never a version: nothing installed yet */
}
