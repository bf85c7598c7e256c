/*
 * routes_auto.c: `model: "auto"` on the HTTP side: what a request needs
 * (from its body) and the text whose meaning may route it, handed to the
 * service's router (vki_service_route: engine/service/service_route.c,
 * which embeds the routes' examples and the query itself); its decision
 * told in X-Vkinfer-Route, a log line and vkinfer_route_decisions_total.
 * Must not: decide (that is the service's), block a pool thread (a
 * decision that needs the query's embedding ends with its job, whose
 * on_done wakes the connection).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"
#include "util.h"

struct srv_auto {
    vki_job      *job;       /* the query's embedding, then the decision */
    bool          no_fallback;
    bool          body_prio; /* the body names a priority: the model's default does not apply */
    vki_priority *prio;      /* the caller's, set to the chosen model's configured class */
};

/* ===== Set-up ============================================================= */

/* The service's report on the examples' vectors (its dispatcher thread);
 * user: the log, which outlives the service. */
static void on_examples(const vki_route_examples_event *ev, void *user)
{
    if (ev->ok)
        srv_log_event(user, "route", "embedded the routes' %d examples with '%s' (%d wide)", (int)ev->n_examples,
                      ev->model, (int)ev->dim);
    else
        srv_log_event(user, "route", "cannot embed the routes' examples with '%s': %s (retrying in %.0f s)", ev->model,
                      ev->message, ev->retry_ms / 1e3);
}

bool srv_auto_init(srv_server *srv, char *err, size_t err_size)
{
    const srv_config *cfg = srv->cfg;
    vki_route_params *rp = calloc((size_t)VKI_MAX(cfg->n_routes, 1), sizeof *rp);
    if (!rp) {
        snprintf(err, err_size, "out of memory");
        return false;
    }
    for (int32_t i = 0; i < cfg->n_routes; i++) {
        const srv_route_cfg *r = &cfg->routes[i];
        rp[i] = (vki_route_params){.name = r->name, .use_case = r->use_case, .models = (const char *const *)r->models,
                                   .n_models = r->n_models, .kind = r->kind, .capabilities = r->caps,
                                   .min_ctx = r->min_ctx, .examples = (const char *const *)r->examples,
                                   .n_examples = r->n_examples, .threshold = r->threshold};
    }
    vki_router_params p = vki_router_default_params();
    p.routes = rp;
    p.n_routes = cfg->n_routes;
    p.model = cfg->router_model;
    p.threshold = cfg->router_threshold;
    p.on_examples = srv->log ? on_examples : NULL;
    p.on_examples_user = srv->log;
    const bool ok = vki_service_set_router(srv->svc, &p) == VKI_OK;
    if (!ok) snprintf(err, err_size, "routes: %s", vki_last_error());
    free(rp);
    return ok;
}

bool srv_auto_asked(const cJSON *body)
{
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(body, "model");
    return cJSON_IsString(jm) && !strcmp(jm->valuestring, "auto");
}

void srv_auto_drop(srv_auto *a)
{
    if (!a) return;
    vki_job_release(a->job); /* cancels it if it still runs; no wake-up after this */
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
        caps |= VKI_CAP_TOOLS;
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (cJSON_IsString(type) && (!strcmp(type->valuestring, "json_object") || !strcmp(type->valuestring, "json_schema")))
        caps |= VKI_CAP_JSON;
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

/* Tells the decision (header, log line) and hands its models on. */
static void tell(srv_conn *cn, const srv_auto *a, const vki_route_decision *d, int32_t *order, int32_t *n)
{
    srv_server *srv = cn->srv;
    vki_service_model_info info;
    if (vki_service_get_model_info(srv->svc, d->order[0], &info) != VKI_OK) info.id = "?";
    if (d->note[0] && srv->log)
        srv_log_event(srv->log, "route", "%s: %s; routing by need and load", cn->log.id, d->note);
    snprintf(cn->route_hdr, sizeof cn->route_hdr, "route=%s; model=%s; score=%.3f; by=%s", d->route_name, info.id,
             d->score, vki_route_by_name(d->by));
    cn->log.model = info.id; /* valid until the service is destroyed */
    if (srv->log)
        srv_log_event(srv->log, "route", "%s %s: route=%s model=%s score=%.3f by=%s (%d candidates, %.3f ms)",
                      srv_route_path[cn->route], cn->log.id, d->route_name, info.id, d->score,
                      vki_route_by_name(d->by), (int)d->n_order, d->decide_ms);
    *n = a->no_fallback ? 1 : d->n_order;
    memcpy(order, d->order, sizeof *order * (size_t)d->n_order);
    const srv_model_cfg *m = d->order[0] < srv->cfg->svc.n_models ? &srv->cfg->svc.models[d->order[0]] : NULL;
    if (a->prio && !a->body_prio && m && m->has_priority) *a->prio = m->priority;
}

static enum MHD_Result no_route(srv_conn *cn, vki_status st)
{
    return srv_send_error(cn, st == VKI_ERR_NOT_FOUND ? 400 : 500, st == VKI_ERR_NOT_FOUND ? "no_route" : "internal_error",
                          0, "%s", vki_last_error());
}

int srv_auto_begin(srv_conn *cn, const cJSON *body, vki_model_kind kind, int32_t n_tokens, vki_priority *prio,
                   srv_auto **out, int32_t *order, int32_t *n, enum MHD_Result *ret)
{
    *out = NULL;
    int32_t tmp[2];
    vki_request_needs none = {0};
    /* model_fallback is checked as for a named model */
    if (!srv_fb_plan(cn, body, 0, &none, tmp, 1, ret)) return 0;
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "priority");
    srv_auto *a = malloc(sizeof *a);
    if (!a) {
        *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return 0;
    }
    *a = (srv_auto){.no_fallback = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "model_fallback")),
                    .body_prio = jp && !cJSON_IsNull(jp), .prio = prio};
    const vki_route_request rq = {.kind = kind, .capabilities = kind == VKI_MODEL_KIND_CHAT ? body_caps(body) : 0,
                                  .n_tokens = n_tokens, .on_done = srv_job_wake, .user = cn};
    char *q = kind == VKI_MODEL_KIND_CHAT ? query_text(body) : NULL;
    vki_route_decision d;
    vki_status st = vki_service_route(cn->srv->svc, &rq, q, &d, &a->job);
    free(q);
    if (st != VKI_OK) {
        free(a);
        *ret = no_route(cn, st);
        return 0;
    }
    if (a->job) {
        *out = a; /* the query's embedding runs: srv_auto_step finishes */
        return 2;
    }
    tell(cn, a, &d, order, n);
    free(a);
    return 1;
}

int srv_auto_step(srv_conn *cn, srv_auto **ap, int32_t *order, int32_t *n, enum MHD_Result *ret)
{
    srv_auto *a = *ap;
    vki_route_decision d;
    vki_status st = vki_job_get_route(a->job, &d);
    if (st == VKI_ERR_TIMEOUT && !srv_client_gone(cn->c)) return 2;
    int r = 0;
    if (st == VKI_ERR_TIMEOUT) {
        *ret = MHD_NO;
    } else if (st != VKI_OK) {
        *ret = no_route(cn, st);
    } else {
        tell(cn, a, &d, order, n);
        r = 1;
    }
    srv_auto_drop(a);
    *ap = NULL;
    return r;
}

/* ===== /metrics and /v1/models ============================================= */

void srv_auto_metrics(srv_server *srv, srv_buf *b)
{
    srv_buf_printf(b, "# HELP vkinfer_route_decisions_total Requests for model auto, by the route chosen (\"-\": none "
                      "matched) and what decided it.\n# TYPE vkinfer_route_decisions_total counter\n");
    const int32_t n = vki_service_route_count(srv->svc);
    for (int32_t i = -1; i < n; i++) {
        vki_route_info ri;
        if (vki_service_get_route_info(srv->svc, i, &ri) != VKI_OK) continue;
        for (int by = 0; by < VKI_ROUTE_N_BY; by++)
            if (ri.decisions[by] || i >= 0)
                srv_buf_printf(b, "vkinfer_route_decisions_total{route=\"%s\",by=\"%s\"} %llu\n", ri.name,
                               vki_route_by_name((vki_route_by)by), (unsigned long long)ri.decisions[by]);
    }
}

cJSON *srv_auto_model_json(srv_server *srv)
{
    if (!vki_service_model_count(srv->svc)) return NULL;
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
    const char *router_model = vki_service_router_model(srv->svc);
    if (router_model) cJSON_AddStringToObject(m, "router_model", router_model);
    for (int32_t i = 0; i < vki_service_route_count(srv->svc); i++) {
        vki_route_info ri;
        if (vki_service_get_route_info(srv->svc, i, &ri) != VKI_OK) continue;
        cJSON *r = cJSON_CreateObject(), *models = cJSON_CreateArray(), *needs = cJSON_CreateArray();
        cJSON_AddStringToObject(r, "name", ri.name);
        if (ri.use_case) cJSON_AddStringToObject(r, "use_case", ri.use_case);
        for (int32_t k = 0; k < ri.n_models; k++) {
            vki_service_model_info info;
            if (vki_service_get_model_info(srv->svc, ri.models[k], &info) == VKI_OK)
                cJSON_AddItemToArray(models, cJSON_CreateString(info.id));
        }
        cJSON_AddItemToArray(needs, cJSON_CreateString(vki_model_kind_name(ri.kind)));
        if (ri.capabilities & VKI_CAP_TOOLS) cJSON_AddItemToArray(needs, cJSON_CreateString("tools"));
        if (ri.capabilities & VKI_CAP_JSON) cJSON_AddItemToArray(needs, cJSON_CreateString("json"));
        cJSON_AddItemToObject(r, "models", models);
        cJSON_AddItemToObject(r, "needs", needs);
        if (ri.min_ctx) cJSON_AddNumberToObject(r, "min_context", ri.min_ctx);
        cJSON_AddNumberToObject(r, "examples", ri.n_examples);
        if (ri.n_examples) cJSON_AddNumberToObject(r, "threshold", ri.threshold);
        cJSON_AddItemToArray(routes, r);
    }
    cJSON_AddItemToObject(m, "routes", routes);
    return m;
}
