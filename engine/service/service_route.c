/*
 * service_route.c: `model: "auto"` as the service offers it (vkinfer.h's
 * routing section): the routes over the scheduler's router
 * (engine/sched/router.c, which decides), the embeddings its decisions by
 * meaning need, made by the service on its router model as jobs (the
 * examples once that model is resident and after each reload of its file,
 * on the dispatcher thread; a query with the examples when theirs are
 * missing), and the decisions' counters. Must not: wait on a model (a
 * decision that needs an embedding ends with its job), know HTTP.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/router.h"
#include "engine/service/service_internal.h"
#include "error.h"
#include "util.h"

_Static_assert(VKI_SERVICE_MAX_ROUTES == SCHED_ROUTER_MAX_ROUTES && VKI_ROUTE_MAX_MODELS == SCHED_ROUTE_MAX_MODELS &&
                   VKI_ROUTE_N_BY == SCHED_ROUTE_N_BY && (int)VKI_ROUTE_BY_LOAD == (int)SCHED_ROUTE_BY_LOAD,
               "vkinfer.h's routing limits are the router's");

/* After a failed embedding of the examples, not before this long. */
#define RETRY_MS 10e3

struct svc_router {
    sched_router     *r;
    int32_t           model;   /* the router model's index; -1 = none */
    char             *model_id;
    void            (*on_examples)(const vki_route_examples_event *ev, void *user);
    void             *on_examples_user;
    _Atomic uint64_t *count;   /* [route + 1][by]: route -1 is "none matched" */
    /* The dispatcher's only: the examples' embedding in flight. */
    vki_job          *prime;
    uint64_t          prime_version;
    double            retry_ms; /* svc->mu for the dispatcher's wait: tick again then; 0 = none */
};

/* One decision waiting for its query's embedding (vki_job.route). */
struct svc_route_wait {
    vki_service       *svc;
    vki_route_request  req;
    sched_route_request need;
    bool               with_examples;
    uint64_t           version;
    pthread_mutex_t    mu; /* the four below */
    bool               decided;
    vki_status         status;
    char               error[512];
    vki_route_decision d;
};

const char *vki_route_by_name(vki_route_by b) { return sched_route_by_name((sched_route_by)b); }

vki_router_params vki_router_default_params(void) { return (vki_router_params){0}; }

/* ===== Set-up ============================================================= */

void svc_router_free(vki_service *svc)
{
    struct svc_router *rt = svc->router;
    if (!rt) return;
    vki_job_release(rt->prime);
    sched_router_destroy(rt->r);
    free(rt->model_id);
    free((void *)rt->count);
    free(rt);
    svc->router = NULL;
}

/* rp's ids as the scheduler's indices into idx[], its kind resolved. */
static vki_status to_sched_route(vki_service *svc, const vki_route_params *rp, int32_t *idx, sched_route_params *out)
{
    const char *name = rp->name ? rp->name : "";
    if (rp->n_models < 1 || rp->n_models > VKI_ROUTE_MAX_MODELS || !rp->models)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "route '%s' has %d models (expected 1 to %d)", name,
                        (int)rp->n_models, VKI_ROUTE_MAX_MODELS);
    if (rp->kind < VKI_MODEL_KIND_AUTO || rp->kind > VKI_MODEL_KIND_EMBEDDING)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "route '%s': kind %d is none of VKI_MODEL_KIND_*", name, (int)rp->kind);
    sched_kind kind = svc_sched_kind(rp->kind);
    for (int32_t k = 0; k < rp->n_models; k++) {
        idx[k] = rp->models[k] ? sched_find(svc->s, rp->models[k]) : -1;
        if (idx[k] < 0)
            return vki_fail(VKI_ERR_NOT_FOUND, "route '%s' names model '%s', which the service does not have", name,
                            rp->models[k] ? rp->models[k] : "(null)");
        for (int32_t q = 0; q < k; q++)
            if (idx[q] == idx[k])
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "route '%s' names model '%s' twice", name, rp->models[k]);
        sched_model_info si;
        sched_model_get_info(svc->s, idx[k], &si);
        if (k == 0 && rp->kind == VKI_MODEL_KIND_AUTO) kind = si.kind;
        if (si.kind != kind)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "route '%s' serves %s, but model '%s' is a%s %s model", name,
                            sched_kind_name(kind), rp->models[k], si.kind == SCHED_KIND_EMBEDDING ? "n" : "",
                            sched_kind_name(si.kind));
    }
    *out = (sched_route_params){.name = rp->name, .use_case = rp->use_case, .models = idx, .n_models = rp->n_models,
                                .kind = kind, .caps = rp->capabilities, .min_ctx = rp->min_ctx,
                                .examples = rp->examples, .n_examples = rp->n_examples, .threshold = rp->threshold};
    return VKI_OK;
}

static vki_status check_router_model(vki_service *svc, const vki_router_params *p, int32_t *model)
{
    *model = -1;
    bool examples = false;
    for (int32_t i = 0; i < p->n_routes; i++) examples |= p->routes[i].n_examples > 0;
    if (!p->model) {
        if (examples)
            return vki_fail(VKI_ERR_INVALID_ARGUMENT, "routes carry examples but there is no router model to embed "
                            "them with");
        return VKI_OK;
    }
    if ((*model = sched_find(svc->s, p->model)) < 0)
        return vki_fail(VKI_ERR_NOT_FOUND, "router model '%s': the service has no such model", p->model);
    sched_model_info si;
    sched_model_get_info(svc->s, *model, &si);
    if (si.kind != SCHED_KIND_EMBEDDING)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "router model '%s' is a chat model; the router embeds with an "
                        "embedding model", p->model);
    return VKI_OK;
}

vki_status vki_service_set_router(vki_service *svc, const vki_router_params *p)
{
    static const char fn[] = "vki_service_set_router";
    if (!svc || !p) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: svc and params are required", fn);
    if (svc->router) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: the service has its routes already", fn);
    if (p->n_routes < 0 || p->n_routes > VKI_SERVICE_MAX_ROUTES || (p->n_routes && !p->routes))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: %d routes (at most %d)", fn, (int)p->n_routes,
                        VKI_SERVICE_MAX_ROUTES);
    int32_t model;
    vki_status st = check_router_model(svc, p, &model);
    struct svc_router *rt = st == VKI_OK ? calloc(1, sizeof *rt) : NULL;
    sched_route_params *rp = calloc((size_t)VKI_MAX(p->n_routes, 1), sizeof *rp);
    int32_t *idx = calloc((size_t)VKI_MAX(p->n_routes, 1) * VKI_ROUTE_MAX_MODELS, sizeof *idx);
    if (st == VKI_OK && (!rt || !rp || !idx)) st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    for (int32_t i = 0; st == VKI_OK && i < p->n_routes; i++)
        st = to_sched_route(svc, &p->routes[i], idx + (size_t)i * VKI_ROUTE_MAX_MODELS, &rp[i]);
    const sched_router_params sp = {.threshold = p->threshold};
    if (st == VKI_OK) st = sched_router_create(&sp, rp, p->n_routes, &rt->r);
    if (st == VKI_OK) {
        rt->count = calloc((size_t)(p->n_routes + 1) * VKI_ROUTE_N_BY, sizeof *rt->count);
        rt->model_id = p->model ? strdup(p->model) : NULL;
        if (!rt->count || (p->model && !rt->model_id)) st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    free(rp);
    free(idx);
    if (st != VKI_OK) {
        if (rt) {
            sched_router_destroy(rt->r);
            free(rt->model_id);
            free((void *)rt->count);
            free(rt);
        }
        return vki_fail_prefix(st, "%s", fn);
    }
    rt->model = model;
    rt->on_examples = p->on_examples;
    rt->on_examples_user = p->on_examples_user;
    /* The dispatcher looks at once: the router model may be resident already. */
    pthread_mutex_lock(&svc->mu);
    rt->retry_ms = model >= 0 && sched_router_n_examples(rt->r) ? vki_time_ms() : 0;
    svc->router = rt;
    pthread_cond_broadcast(&svc->cv);
    pthread_mutex_unlock(&svc->mu);
    return VKI_OK;
}

void svc_set_quality(vki_service *svc, int32_t i, double quality)
{
    if (i < 0 || i >= SCHED_MAX_MODELS) return;
    pthread_mutex_lock(&svc->mu);
    svc->quality[i] = quality;
    pthread_mutex_unlock(&svc->mu);
}

/* ===== The examples' vectors ============================================== */

static void examples_event(struct svc_router *rt, bool ok, int32_t n, int32_t dim, const char *msg)
{
    if (!rt->on_examples) return;
    const vki_route_examples_event ev = {.ok = ok, .n_examples = n, .dim = dim, .model = rt->model_id,
                                         .message = ok ? "" : msg, .retry_ms = ok ? 0 : RETRY_MS};
    rt->on_examples(&ev, rt->on_examples_user);
}

static void examples_failed(vki_service *svc, struct svc_router *rt, const char *msg)
{
    examples_event(rt, false, 0, 0, msg);
    pthread_mutex_lock(&svc->mu);
    rt->retry_ms = vki_time_ms() + RETRY_MS;
    pthread_mutex_unlock(&svc->mu);
}

/* The examples' embedding ended (dispatcher thread). */
static void prime_done(const vki_job_result *res, void *user)
{
    vki_service *svc = user;
    struct svc_router *rt = svc->router;
    const int32_t ne = sched_router_n_examples(rt->r);
    char why[256] = "";
    if (res->status != VKI_OK)
        snprintf(why, sizeof why, "%s", res->message[0] ? res->message : vki_status_str(res->status));
    else if (res->n_texts != ne)
        snprintf(why, sizeof why, "%d vectors for %d examples", (int)res->n_texts, (int)ne);
    else if (sched_router_set_examples(rt->r, res->embeddings, ne, res->dim, rt->prime_version) != VKI_OK)
        snprintf(why, sizeof why, "%s", vki_last_error());
    if (why[0]) examples_failed(svc, rt, why);
    else examples_event(rt, true, ne, res->dim, NULL);
    vki_job_release(rt->prime); /* its own callback: allowed */
    rt->prime = NULL;
}

static vki_request_params embed_params(struct svc_router *rt, vki_priority prio)
{
    vki_request_params rp = vki_request_default_params();
    rp.priority = prio;
    rp.allow_fallback = false; /* another model's vectors do not compare with the examples' */
    rp.candidates = &rt->model;
    rp.n_candidates = 1;
    rp.refuse_opening = true;  /* a model still opening its file does not hold the request up */
    return rp;
}

double svc_route_due(const vki_service *svc) { return svc->router ? svc->router->retry_ms : 0; }

void svc_route_tick(vki_service *svc)
{
    struct svc_router *rt = svc->router;
    if (!rt || rt->model < 0) return;
    pthread_mutex_lock(&svc->mu);
    const bool early = vki_time_ms() < rt->retry_ms;
    if (!early) rt->retry_ms = 0; /* due: the dispatcher's wait ends only for this */
    const bool shutting = svc->shutting;
    pthread_mutex_unlock(&svc->mu);
    const int32_t ne = sched_router_n_examples(rt->r);
    if (rt->prime) return;
    const uint64_t v = sched_router_version(svc->s, rt->model);
    if (!ne || early || shutting || sched_router_examples_ready(rt->r, v)) return;
    sched_model_info info;
    sched_model_get_info(svc->s, rt->model, &info);
    if (!sched_state_resident(info.state) || info.reloading) return; /* its next state change ticks again */
    const char **texts = calloc((size_t)ne, sizeof *texts);
    if (!texts) return;
    for (int32_t k = 0; k < ne; k++) texts[k] = sched_router_example(rt->r, k);
    vki_request_params rp = embed_params(rt, VKI_PRIORITY_NORMAL);
    rp.on_done = prime_done;
    rp.user = svc;
    rt->prime_version = v;
    if (vki_service_embed(svc, NULL, texts, ne, &rp, &rt->prime) != VKI_OK) {
        rt->prime = NULL;
        examples_failed(svc, rt, vki_last_error());
    }
    free(texts);
}

/* ===== Decisions ========================================================== */

/* Decides over the models as they are now; counts it. */
static vki_status decide(vki_service *svc, const sched_route_request *need, const float *q, int32_t dim,
                         vki_route_decision *out)
{
    struct svc_router *rt = svc->router;
    sched_route_model snap[SCHED_ROUTER_MAX_MODELS];
    double quality[SCHED_ROUTER_MAX_MODELS];
    const int32_t n_models = sched_n_models(svc->s);
    pthread_mutex_lock(&svc->mu);
    memcpy(quality, svc->quality, sizeof *quality * (size_t)n_models);
    pthread_mutex_unlock(&svc->mu);
    const double t0 = vki_time_ms();
    sched_router_snapshot(svc->s, quality, snap);
    sched_route_decision d;
    vki_status st = sched_router_decide(rt->r, need, snap, n_models, q, dim, &d);
    if (st == VKI_ERR_INVALID_ARGUMENT && q) { /* examples of another width: the model changed since */
        st = sched_router_decide(rt->r, need, snap, n_models, NULL, 0, &d);
        q = NULL;
    }
    out->decide_ms = vki_time_ms() - t0;
    if (st != VKI_OK) return st;
    const sched_route_params *rp = sched_router_route(rt->r, d.route);
    out->route = d.route;
    out->route_name = rp ? rp->name : "-";
    out->by = (vki_route_by)d.by;
    out->score = d.score;
    out->n_order = d.n_order;
    memcpy(out->order, d.order, sizeof *out->order * (size_t)d.n_order);
    out->embedded = q != NULL;
    atomic_fetch_add(&rt->count[(size_t)(d.route + 1) * VKI_ROUTE_N_BY + (size_t)d.by], 1);
    return VKI_OK;
}

/* The query's embedding ended (dispatcher thread): decide with its vector
 * when it is usable, then tell the caller. */
static void query_done(const vki_job_result *res, void *user)
{
    struct svc_route_wait *w = user;
    vki_service *svc = w->svc;
    struct svc_router *rt = svc->router;
    vki_route_decision d = {.route = -1, .route_name = "-"};
    const int32_t ne = sched_router_n_examples(rt->r);
    const float *emb = res->status == VKI_OK ? res->embeddings : NULL;
    const char *why = res->status != VKI_OK ? (res->message[0] ? res->message : vki_status_str(res->status)) : NULL;
    if (emb && w->with_examples && res->n_texts == ne + 1) {
        if (sched_router_set_examples(rt->r, emb, ne, res->dim, w->version) != VKI_OK) {
            emb = NULL;
            why = vki_last_error();
        } else {
            examples_event(rt, true, ne, res->dim, NULL);
        }
    }
    if (emb && !w->with_examples && sched_router_version(svc->s, rt->model) != w->version) {
        emb = NULL; /* the model was replaced while the query waited: its vector and the examples' differ in kind */
        why = "the router model was reloaded meanwhile";
    }
    const float *q = emb && res->n_texts >= 1 ? emb + (size_t)(res->n_texts - 1) * (size_t)res->dim : NULL;
    if (!q) snprintf(d.note, sizeof d.note, "the query's embedding failed (%s)", why ? why : "no vector");
    vki_status st = decide(svc, &w->need, q, res->dim, &d);
    pthread_mutex_lock(&w->mu);
    w->d = d;
    w->status = st;
    if (st != VKI_OK) snprintf(w->error, sizeof w->error, "%s", vki_last_error());
    w->decided = true;
    pthread_mutex_unlock(&w->mu);
    if (w->req.on_done) w->req.on_done(res, w->req.user);
}

void svc_route_wait_free(struct svc_route_wait *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Submits the query's embedding (after the examples when theirs are
 * missing or stale); false with the reason in note. */
static bool submit_query(vki_service *svc, struct svc_route_wait *w, const char *query, vki_job **job, char *note,
                         size_t note_size)
{
    struct svc_router *rt = svc->router;
    const int32_t ne = sched_router_n_examples(rt->r);
    w->version = sched_router_version(svc->s, rt->model);
    w->with_examples = !sched_router_examples_ready(rt->r, w->version);
    const int32_t n = (w->with_examples ? ne : 0) + 1;
    const char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts) {
        snprintf(note, note_size, "cannot embed the query with the router model (out of memory)");
        return false;
    }
    for (int32_t k = 0; k + 1 < n; k++) texts[k] = sched_router_example(rt->r, k);
    texts[n - 1] = query;
    vki_request_params rp = embed_params(rt, VKI_PRIORITY_INTERACTIVE);
    rp.on_done = query_done;
    rp.user = w;
    vki_status st = vki_service_embed(svc, NULL, texts, n, &rp, job);
    free(texts);
    if (st != VKI_OK) {
        snprintf(note, note_size, "cannot embed the query with the router model (%s)", vki_last_error());
        return false;
    }
    svc_job_set_route(*job, w);
    return true;
}

vki_status vki_service_route(vki_service *svc, const vki_route_request *req, const char *query,
                             vki_route_decision *out, vki_job **job)
{
    static const char fn[] = "vki_service_route";
    if (job) *job = NULL;
    if (!svc || !req || !out || !job) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: svc, req, out and job are required", fn);
    if (!svc->router) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: no routes (vki_service_set_router)", fn);
    if (req->kind != VKI_MODEL_KIND_CHAT && req->kind != VKI_MODEL_KIND_EMBEDDING)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "%s: kind %d is neither chat nor embedding", fn, (int)req->kind);
    struct svc_router *rt = svc->router;
    *out = (vki_route_decision){.route = -1, .route_name = "-"};
    const sched_route_request need = {.kind = svc_sched_kind(req->kind), .caps = req->capabilities,
                                      .n_tokens = req->n_tokens};
    /* Only embed when meaning could decide: several routes serve it and some carry examples. */
    sched_route_decision probe;
    const bool meaning = rt->model >= 0 && query && query[0] && need.kind == SCHED_KIND_CHAT;
    if (meaning) {
        sched_route_model snap[SCHED_ROUTER_MAX_MODELS];
        sched_router_snapshot(svc->s, NULL, snap);
        if (sched_router_decide(rt->r, &need, snap, sched_n_models(svc->s), NULL, 0, &probe) == VKI_OK &&
            probe.want_query) {
            struct svc_route_wait *w = calloc(1, sizeof *w);
            if (!w) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
            *w = (struct svc_route_wait){.svc = svc, .req = *req, .need = need};
            pthread_mutex_init(&w->mu, NULL);
            if (submit_query(svc, w, query, job, out->note, sizeof out->note)) return VKI_OK;
            svc_route_wait_free(w);
        }
    }
    return decide(svc, &need, NULL, 0, out); /* NOT_FOUND's message says what no model serves */
}

vki_status vki_job_get_route(vki_job *job, vki_route_decision *out)
{
    if (!job || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_job_get_route: job and out are required");
    struct svc_route_wait *w = svc_job_route(job);
    if (!w) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_job_get_route: not a job of vki_service_route");
    pthread_mutex_lock(&w->mu);
    vki_status st = !w->decided ? VKI_ERR_TIMEOUT : w->status;
    if (w->decided) *out = w->d;
    pthread_mutex_unlock(&w->mu);
    if (st == VKI_ERR_TIMEOUT) return vki_fail(st, "vki_job_get_route: not decided yet");
    if (st != VKI_OK) return vki_fail(st, "%s", w->error);
    return VKI_OK;
}

/* ===== What it reports ==================================================== */

int32_t vki_service_route_count(const vki_service *svc)
{
    return svc && svc->router ? sched_router_n_routes(svc->router->r) : 0;
}

const char *vki_service_router_model(const vki_service *svc)
{
    return svc && svc->router ? svc->router->model_id : NULL;
}

vki_status vki_service_get_route_info(vki_service *svc, int32_t i, vki_route_info *out)
{
    if (!svc || !out) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vki_service_get_route_info: svc and out are required");
    const int32_t n = vki_service_route_count(svc);
    if (i < -1 || i >= n) return vki_fail(VKI_ERR_NOT_FOUND, "vki_service_get_route_info: no route %d (%d)", i, n);
    *out = (vki_route_info){.name = "-"};
    struct svc_router *rt = svc->router;
    for (int by = 0; rt && by < VKI_ROUTE_N_BY; by++)
        out->decisions[by] = atomic_load(&rt->count[(size_t)(i + 1) * VKI_ROUTE_N_BY + (size_t)by]);
    const sched_route_params *rp = rt ? sched_router_route(rt->r, i) : NULL;
    if (!rp) return VKI_OK;
    out->name = rp->name;
    out->use_case = rp->use_case;
    out->n_models = rp->n_models;
    memcpy(out->models, rp->models, sizeof *out->models * (size_t)rp->n_models);
    out->kind = rp->kind == SCHED_KIND_EMBEDDING ? VKI_MODEL_KIND_EMBEDDING : VKI_MODEL_KIND_CHAT;
    out->capabilities = rp->caps;
    out->min_ctx = rp->min_ctx;
    out->n_examples = rp->n_examples;
    out->threshold = sched_router_threshold(rt->r, i);
    return VKI_OK;
}
