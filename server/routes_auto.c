/*
 * routes_auto.c: `model: "auto"` on the HTTP side: what a request needs
 * (from its body), the embedding of its last user message through the
 * scheduler (interactive class) when routes carry examples, then the
 * router's decision (engine/sched/router.c), told in X-Vkinfer-Route, a
 * log line and vkinfer_route_decisions_total. The examples are embedded
 * once the router model is ready (srv_auto_tick), and again after its file
 * is replaced (its version changes); a query that comes first embeds them
 * with itself. Must not: decide
 * (that is the router's), block a pool thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/router.h"
#include "engine/service/service_internal.h" /* svc_sched_kind */
#include "server/srv_internal.h"
#include "util.h"

struct srv_auto {
    sched_request       *req;       /* the embedding: [examples...,] query */
    bool                 with_examples;
    uint64_t             version;   /* the router model's, at submit       */
    sched_route_request  need;
    bool                 no_fallback;
    bool                 body_prio; /* the body names a priority: the model's default does not apply */
    vki_priority        *prio;      /* the caller's, set to the chosen model's configured class */
};

/* ===== Set-up ============================================================= */

bool srv_auto_init(srv_server *srv, char *err, size_t err_size)
{
    const srv_config *cfg = srv->cfg;
    srv->router_model = cfg->router_model ? sched_find(srv->s, cfg->router_model) : -1;
    srv->route_count = calloc((size_t)(cfg->n_routes + 1) * SCHED_ROUTE_N_BY, sizeof *srv->route_count);
    sched_route_params *rp = calloc((size_t)VKI_MAX(cfg->n_routes, 1), sizeof *rp);
    int32_t *idx = calloc((size_t)VKI_MAX(cfg->n_routes, 1) * SCHED_ROUTE_MAX_MODELS, sizeof *idx);
    bool ok = srv->route_count && rp && idx;
    for (int32_t i = 0; ok && i < cfg->n_routes; i++) {
        const srv_route_cfg *r = &cfg->routes[i];
        int32_t *mi = idx + (size_t)i * SCHED_ROUTE_MAX_MODELS;
        for (int32_t k = 0; k < r->n_models; k++) mi[k] = sched_find(srv->s, r->models[k]);
        rp[i] = (sched_route_params){.name = r->name, .use_case = r->use_case, .models = mi,
                                     .n_models = r->n_models, .kind = svc_sched_kind(r->kind), .caps = r->caps, .min_ctx = r->min_ctx,
                                     .examples = (const char *const *)r->examples, .n_examples = r->n_examples,
                                     .threshold = r->threshold};
    }
    sched_router_params p = {.threshold = cfg->router_threshold};
    if (ok && sched_router_create(&p, rp, cfg->n_routes, &srv->router) != VKI_OK) {
        snprintf(err, err_size, "routes: %s", vki_last_error());
        ok = false;
    } else if (!ok) {
        snprintf(err, err_size, "out of memory");
    }
    free(rp);
    free(idx);
    return ok;
}

void srv_auto_free(srv_server *srv)
{
    sched_request_release(srv->prime);
    srv->prime = NULL;
    sched_router_destroy(srv->router);
    free((void *)srv->route_count);
    srv->router = NULL;
    srv->route_count = NULL;
}

void srv_auto_tick(srv_server *srv)
{
    if (srv->router_model < 0 || !sched_router_n_examples(srv->router)) return;
    const int32_t ne = sched_router_n_examples(srv->router);
    if (srv->prime) {
        char *chunk = NULL;
        size_t len = 0;
        sched_result res;
        if (sched_request_poll(srv->prime, 0, 0, &chunk, &len, &res) != VKI_OK) return;
        free(chunk);
        if (!res.done) return;
        int32_t n = 0, dim = 0;
        const float *emb = res.status == VKI_OK ? sched_request_embeddings(srv->prime, &n, &dim) : NULL;
        if (emb && n == ne && sched_router_set_examples(srv->router, emb, n, dim, srv->prime_version) == VKI_OK) {
            if (srv->log)
                srv_log_event(srv->log, "route", "embedded the routes' %d examples with '%s' (%d wide)", (int)n,
                              srv->cfg->router_model, (int)dim);
        } else {
            if (srv->log)
                srv_log_event(srv->log, "route", "cannot embed the routes' examples with '%s': %s (retrying in 10 s)",
                              srv->cfg->router_model, res.error ? res.error : vki_status_str(res.status));
            srv->prime_retry_ms = vki_time_ms() + 10e3;
        }
        sched_request_release(srv->prime);
        srv->prime = NULL;
        return;
    }
    const uint64_t v = sched_router_version(srv->s, srv->router_model);
    if (sched_router_examples_ready(srv->router, v) || vki_time_ms() < srv->prime_retry_ms) return;
    sched_model_info info;
    sched_model_get_info(srv->s, srv->router_model, &info);
    if (!sched_state_resident(info.state) || info.reloading) return;
    const char **texts = calloc((size_t)ne, sizeof *texts);
    if (!texts) return;
    for (int32_t k = 0; k < ne; k++) texts[k] = sched_router_example(srv->router, k);
    double eta;
    srv->prime_version = v;
    if (sched_submit_embed(srv->s, srv->router_model, texts, ne, SCHED_PRIO_NORMAL, 0, &srv->prime, &eta) != VKI_OK) {
        srv->prime = NULL;
        if (srv->log)
            srv_log_event(srv->log, "route", "cannot embed the routes' examples with '%s': %s (retrying in 10 s)",
                          srv->cfg->router_model, vki_last_error());
        srv->prime_retry_ms = vki_time_ms() + 10e3;
    }
    free(texts);
}

bool srv_auto_asked(const cJSON *body)
{
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(body, "model");
    return cJSON_IsString(jm) && !strcmp(jm->valuestring, "auto");
}

void srv_auto_drop(srv_auto *a)
{
    if (!a) return;
    sched_request_release(a->req); /* cancels it if it still runs */
    free(a);
}

/* ===== What the request needs ============================================ */

static char *query_whole(const cJSON *body);

static uint32_t body_caps(const cJSON *body)
{
    uint32_t caps = 0;
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0 &&
        !(cJSON_IsString(choice) && !strcmp(choice->valuestring, "none")))
        caps |= SCHED_CAP_TOOLS;
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (cJSON_IsString(type) && (!strcmp(type->valuestring, "json_object") || !strcmp(type->valuestring, "json_schema")))
        caps |= SCHED_CAP_JSON;
    return caps;
}

/* The text routed by meaning: the last user message (its text parts
 * joined), or a completion's prompt when it is one string, cut to its first
 * QUERY_MAX bytes (whole characters): the intent is in the opening, and a
 * small embedding model's context must hold it. malloc'd; NULL when there
 * is none. */
#define QUERY_MAX 1024
static char *query_text(const cJSON *body)
{
    char *t = query_whole(body);
    if (t && strlen(t) > QUERY_MAX) {
        size_t n = QUERY_MAX;
        while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80) n--; /* t[n] starts a character */
        t[n] = '\0';
    }
    return t;
}

static char *query_whole(const cJSON *body)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (cJSON_IsString(prompt)) return prompt->valuestring[0] ? strdup(prompt->valuestring) : NULL;
    const cJSON *last = NULL, *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(role) && !strcmp(role->valuestring, "user")) last = m;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(last, "content");
    if (cJSON_IsString(c)) return c->valuestring[0] ? strdup(c->valuestring) : NULL;
    srv_buf b = {0};
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) srv_buf_printf(&b, "%s%s", b.n ? "\n" : "", t->valuestring);
    }
    if (b.oom || !b.n) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ===== Deciding =========================================================== */

/* Decides with the query's vector (or none) and tells it. 1 or 0 (*ret). */
/* The models' quality as the settings in force say (a hot reload publishes
 * new ones, lined up with the scheduler's indices; models it added have
 * entries there too). */
static void snapshot(srv_server *srv, sched_route_model *snap, int32_t n_models)
{
    double quality[SCHED_ROUTER_MAX_MODELS] = {0};
    const srv_config *cfg = srv_config_now(srv);
    for (int32_t i = 0; i < n_models && i < cfg->svc.n_models; i++) quality[i] = cfg->svc.models[i].quality;
    sched_router_snapshot(srv->s, quality, snap);
}

static int decide(srv_conn *cn, const srv_auto *a, const float *q, int32_t dim, int32_t *order, int32_t *n,
                  enum MHD_Result *ret)
{
    srv_server *srv = cn->srv;
    const int32_t n_models = sched_n_models(srv->s);
    sched_route_model snap[SCHED_ROUTER_MAX_MODELS];
    if (n_models > (int32_t)VKI_COUNT(snap)) {
        *ret = srv_send_error(cn, 500, "internal_error", 0, "model auto: more than %d models", (int)VKI_COUNT(snap));
        return 0;
    }
    snapshot(srv, snap, n_models);
    sched_route_decision d;
    const double t0 = vki_time_ms();
    vki_status st = sched_router_decide(srv->router, &a->need, snap, n_models, q, dim, &d);
    if (st == VKI_ERR_INVALID_ARGUMENT && q) /* examples of another width: the model changed since */
        st = sched_router_decide(srv->router, &a->need, snap, n_models, NULL, 0, &d);
    const double dt = vki_time_ms() - t0;
    if (st != VKI_OK) {
        *ret = srv_send_error(cn, st == VKI_ERR_NOT_FOUND ? 400 : 500, st == VKI_ERR_NOT_FOUND ? "no_route" : "internal_error",
                              0, "%s", vki_last_error());
        return 0;
    }
    const sched_route_params *rp = sched_router_route(srv->router, d.route);
    const char *name = rp ? rp->name : "-";
    sched_model_info info;
    sched_model_get_info(srv->s, d.order[0], &info);
    snprintf(cn->route_hdr, sizeof cn->route_hdr, "route=%s; model=%s; score=%.3f; by=%s", name, info.id, d.score,
             sched_route_by_name(d.by));
    cn->log.model = info.id;
    atomic_fetch_add(&srv->route_count[(size_t)(d.route + 1) * SCHED_ROUTE_N_BY + (size_t)d.by], 1);
    if (srv->log)
        srv_log_event(srv->log, "route", "%s %s: route=%s model=%s score=%.3f by=%s (%d candidates, %.3f ms)",
                      srv_route_path[cn->route], cn->log.id, name, info.id, d.score, sched_route_by_name(d.by),
                      (int)d.n_order, dt);
    *n = a->no_fallback ? 1 : d.n_order;
    memcpy(order, d.order, sizeof *order * (size_t)d.n_order);
    if (a->prio && !a->body_prio && d.order[0] < srv->cfg->svc.n_models && srv->cfg->svc.models[d.order[0]].has_priority)
        *a->prio = srv->cfg->svc.models[d.order[0]].priority;
    return 1;
}

/* Submits the embedding of the query (after the examples when theirs are
 * missing or stale). false: the router model cannot take it now. */
static bool submit_query(srv_conn *cn, srv_auto *a, const char *query)
{
    srv_server *srv = cn->srv;
    const int32_t ne = sched_router_n_examples(srv->router);
    a->version = sched_router_version(srv->s, srv->router_model);
    a->with_examples = !sched_router_examples_ready(srv->router, a->version);
    const int32_t n = (a->with_examples ? ne : 0) + 1;
    const char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts) return false;
    for (int32_t k = 0; k + 1 < n; k++) texts[k] = sched_router_example(srv->router, k);
    texts[n - 1] = query;
    double eta = 0;
    vki_status st = sched_submit_embed(srv->s, srv->router_model, texts, n, SCHED_PRIO_INTERACTIVE, 0, &a->req, &eta);
    free(texts);
    if (st != VKI_OK) {
        if (srv->log)
            srv_log_event(srv->log, "route", "%s: cannot embed the query with the router model (%s); routing by "
                          "need and load", cn->log.id, vki_last_error());
        a->req = NULL;
        return false;
    }
    if (!srv_watch(cn, a->req)) {
        sched_request_release(a->req);
        a->req = NULL;
        return false;
    }
    return true;
}

int srv_auto_begin(srv_conn *cn, const cJSON *body, vki_model_kind kind, int32_t n_tokens, vki_priority *prio, srv_auto **out,
                   int32_t *order, int32_t *n, enum MHD_Result *ret)
{
    *out = NULL;
    srv_server *srv = cn->srv;
    int32_t tmp[2];
    vki_request_needs none = {0};
    /* model_fallback is checked as for a named model */
    if (!srv_fb_plan(cn, body, 0, &none, tmp, 1, ret)) return 0;
    srv_auto a = {.need = {.kind = svc_sched_kind(kind), .caps = kind == VKI_MODEL_KIND_CHAT ? body_caps(body) : 0, .n_tokens = n_tokens},
                  .no_fallback = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "model_fallback")),
                  .prio = prio};
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "priority");
    a.body_prio = jp && !cJSON_IsNull(jp);
    sched_route_decision probe;
    if (kind == VKI_MODEL_KIND_CHAT && srv->router_model >= 0) {
        /* Only embed when meaning could decide: several routes serve it and
         * some carry examples. */
        sched_route_model snap[SCHED_ROUTER_MAX_MODELS];
        const int32_t n_models = sched_n_models(srv->s);
        if (n_models <= (int32_t)VKI_COUNT(snap)) {
            snapshot(srv, snap, n_models);
            if (sched_router_decide(srv->router, &a.need, snap, n_models, NULL, 0, &probe) == VKI_OK &&
                probe.want_query) {
                char *q = query_text(body);
                srv_auto *w = q ? malloc(sizeof *w) : NULL;
                if (w) {
                    *w = a;
                    bool ok = submit_query(cn, w, q);
                    free(q);
                    if (ok) {
                        *out = w;
                        return 2;
                    }
                    free(w);
                } else {
                    free(q);
                }
            }
        }
    }
    return decide(cn, &a, NULL, 0, order, n, ret);
}

int srv_auto_step(srv_conn *cn, srv_auto **ap, int32_t *order, int32_t *n, enum MHD_Result *ret)
{
    srv_auto *a = *ap;
    char *chunk = NULL;
    size_t len = 0;
    sched_result res;
    if (sched_request_poll(a->req, 0, 0, &chunk, &len, &res) != VKI_OK) {
        srv_unwatch(cn);
        srv_auto_drop(a);
        *ap = NULL;
        *ret = MHD_NO;
        return 0;
    }
    free(chunk);
    if (!res.done) {
        if (!srv_client_gone(cn->c)) return 2;
        srv_unwatch(cn);
        srv_auto_drop(a);
        *ap = NULL;
        *ret = MHD_NO;
        return 0;
    }
    srv_server *srv = cn->srv;
    int32_t n_texts = 0, dim = 0;
    const float *emb = res.status == VKI_OK ? sched_request_embeddings(a->req, &n_texts, &dim) : NULL;
    const float *q = NULL;
    if (emb && a->with_examples && n_texts == sched_router_n_examples(srv->router) + 1) {
        if (sched_router_set_examples(srv->router, emb, n_texts - 1, dim, a->version) != VKI_OK) emb = NULL;
        else if (srv->log)
            srv_log_event(srv->log, "route", "embedded the routes' %d examples with '%s' (%d wide)", (int)(n_texts - 1),
                          srv->cfg->router_model, (int)dim);
    }
    if (emb && !a->with_examples && sched_router_version(srv->s, srv->router_model) != a->version) {
        /* the model was replaced while the query waited: its vector and the examples' differ in kind */
        emb = NULL;
        res.error = "the router model was reloaded meanwhile";
    }
    if (emb && n_texts >= 1) q = emb + (size_t)(n_texts - 1) * (size_t)dim;
    if (!q && srv->log)
        srv_log_event(srv->log, "route", "%s: the query's embedding failed (%s); routing by need and load", cn->log.id,
                      res.error ? res.error : vki_status_str(res.status));
    int r = decide(cn, a, q, dim, order, n, ret);
    srv_unwatch(cn);
    srv_auto_drop(a);
    *ap = NULL;
    return r;
}

/* ===== /metrics and /v1/models ============================================= */

void srv_auto_metrics(srv_server *srv, srv_buf *b)
{
    srv_buf_printf(b, "# HELP vkinfer_route_decisions_total Requests for model auto, by the route chosen (\"-\": none "
                      "matched) and what decided it.\n# TYPE vkinfer_route_decisions_total counter\n");
    const int32_t n = sched_router_n_routes(srv->router);
    for (int32_t i = -1; i < n; i++)
        for (int by = 0; by < SCHED_ROUTE_N_BY; by++) {
            uint64_t v = atomic_load(&srv->route_count[(size_t)(i + 1) * SCHED_ROUTE_N_BY + (size_t)by]);
            const sched_route_params *rp = sched_router_route(srv->router, i);
            if (v || rp)
                srv_buf_printf(b, "vkinfer_route_decisions_total{route=\"%s\",by=\"%s\"} %llu\n", rp ? rp->name : "-",
                               sched_route_by_name((sched_route_by)by), (unsigned long long)v);
        }
}

cJSON *srv_auto_model_json(srv_server *srv)
{
    if (!sched_n_models(srv->s)) return NULL;
    cJSON *m = cJSON_CreateObject(), *routes = cJSON_CreateArray();
    if (!m || !routes) {
        cJSON_Delete(m);
        cJSON_Delete(routes);
        return NULL;
    }
    cJSON_AddStringToObject(m, "id", "auto");
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)srv->created);
    cJSON_AddStringToObject(m, "owned_by", "vkinfer");
    if (srv->router_model >= 0) cJSON_AddStringToObject(m, "router_model", srv->cfg->router_model);
    for (int32_t i = 0; i < sched_router_n_routes(srv->router); i++) {
        const sched_route_params *rp = sched_router_route(srv->router, i);
        cJSON *r = cJSON_CreateObject(), *models = cJSON_CreateArray(), *needs = cJSON_CreateArray();
        cJSON_AddStringToObject(r, "name", rp->name);
        if (rp->use_case) cJSON_AddStringToObject(r, "use_case", rp->use_case);
        for (int32_t k = 0; k < rp->n_models; k++) {
            sched_model_info info;
            sched_model_get_info(srv->s, rp->models[k], &info);
            cJSON_AddItemToArray(models, cJSON_CreateString(info.id));
        }
        cJSON_AddItemToArray(needs, cJSON_CreateString(sched_kind_name(rp->kind)));
        if (rp->caps & SCHED_CAP_TOOLS) cJSON_AddItemToArray(needs, cJSON_CreateString("tools"));
        if (rp->caps & SCHED_CAP_JSON) cJSON_AddItemToArray(needs, cJSON_CreateString("json"));
        cJSON_AddItemToObject(r, "models", models);
        cJSON_AddItemToObject(r, "needs", needs);
        if (rp->min_ctx) cJSON_AddNumberToObject(r, "min_context", rp->min_ctx);
        cJSON_AddNumberToObject(r, "examples", rp->n_examples);
        if (rp->n_examples) cJSON_AddNumberToObject(r, "threshold", sched_router_threshold(srv->router, i));
        cJSON_AddItemToArray(routes, r);
    }
    cJSON_AddItemToObject(m, "routes", routes);
    return m;
}
