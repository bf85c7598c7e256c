/*
 * routes_info.c: GET /health (503 while the start-up loads run or when no
 * model can serve; else 200, "ok" or "degraded" when a model failed or a
 * pinned one is not resident; each model's state, and the loader's errors
 * only for a client holding the key), GET /v1/models and POST
 * /v1/embeddings (OpenAI shape, float or base64: one vki_service_embed job
 * over the fallback plan, dynamically batched by the service).
 */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/json_floats.h"
#include "server/srv_internal.h"
#include "util.h"

/* Constant-time comparison, so the key cannot be guessed byte by byte. */
static bool key_matches(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++) d |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return d == 0;
}

/* Whether the request may see details: no key is set, or it sent the key. */
static bool authorized(srv_conn *cn)
{
    if (!cn->srv->api_key) return true;
    const char *h = MHD_lookup_connection_value(cn->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return h && !strncmp(h, "Bearer ", 7) && key_matches(h + 7, cn->srv->api_key);
}

/* A model takes requests now: its file is open and it has not failed. */
static bool serving(const vki_service_model_info *info) { return info->can_queue && info->state != VKI_MODEL_FAILED; }

enum MHD_Result srv_route_health(srv_conn *cn)
{
    vki_service *svc = cn->srv->svc;
    bool details = authorized(cn);
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    bool loading = false, any_serving = false, degraded = false;
    for (int32_t i = 0; i < vki_service_model_count(svc); i++) {
        vki_service_model_info info;
        vki_service_model_stats st;
        vki_service_get_model_info(svc, i, &info);
        if (info.removing) continue; /* gone for clients (hot reload) */
        vki_service_get_model_stats(svc, i, &st);
        /* Loads on demand later are normal service; the first ones are start-up. */
        loading |= (!info.can_queue && info.state != VKI_MODEL_FAILED) ||
                   (info.state == VKI_MODEL_LOADING && !info.started && st.loads == 0 && !info.message[0]);
        any_serving |= serving(&info);
        /* A pinned model is meant to stay resident; one that is not, or any
         * model that failed, leaves the server degraded (still serving). */
        degraded |= info.state == VKI_MODEL_FAILED || (info.pin && !vki_model_state_resident(info.state) &&
                                                    info.state != VKI_MODEL_LOADING);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", info.id);
        cJSON_AddStringToObject(m, "state", vki_model_state_name(info.state));
        /* Loader errors carry file paths: only for a client that holds the key. */
        if (vki_model_state_resident(info.state)) cJSON_AddStringToObject(m, "backend", info.backend);
        cJSON_AddStringToObject(m, "breaker", vki_breaker_state_name(info.breaker));
        if (details && info.message[0]) cJSON_AddStringToObject(m, "error", info.message);
        cJSON_AddItemToArray(arr, m);
    }
    /* 503 only while the start-up loads run or when nothing can serve. */
    const char *status = loading ? "loading" : !any_serving ? "failed" : degraded ? "degraded" : "ok";
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddItemToObject(o, "models", arr);
    /* Degraded still serves: 200 with the detail, unless the config asks
     * balancers that read only the code to be told (server.health_degraded_status). */
    const unsigned code = loading || !any_serving ? 503 : degraded ? (unsigned)cn->srv->cfg->health_degraded_status : 200;
    return srv_send_json(cn, code, o);
}

int32_t srv_pick_serving(srv_conn *cn, const cJSON *body, vki_model_kind kind, enum MHD_Result *ret)
{
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (jm && !cJSON_IsNull(jm)) return srv_pick_model(cn, body, kind, ret);
    vki_service *svc = cn->srv->svc;
    int32_t pick = -1, first = -1;
    for (int32_t k = 0; k < vki_service_model_count(svc) && pick < 0; k++) {
        vki_service_model_info info;
        vki_service_get_model_info(svc, k, &info);
        if (info.kind != kind || info.removing) continue;
        if (first < 0) first = k;
        if (serving(&info)) pick = k;
    }
    /* None serving: the first of the kind says why (or that there is none). */
    if (pick < 0 && first < 0) return srv_pick_model(cn, body, kind, ret);
    vki_service_model_info info;
    vki_service_get_model_info(svc, pick >= 0 ? pick : first, &info);
    cJSON *named = cJSON_CreateObject();
    if (!named || !cJSON_AddStringToObject(named, "model", info.id)) {
        cJSON_Delete(named);
        *ret = srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        return -1;
    }
    int32_t i = srv_pick_model(cn, named, kind, ret);
    cJSON_Delete(named);
    return i;
}

/* One model as GET /v1/models lists it and GET /v1/models/{id} answers. */
static cJSON *model_json(const srv_server *srv, int32_t i)
{
    vki_service_model_info info;
    vki_service_get_model_info(srv->svc, i, &info);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", info.id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)srv->created);
    cJSON_AddStringToObject(m, "owned_by", "vkinfer");
    cJSON_AddStringToObject(m, "kind", vki_model_kind_name(info.kind));
    cJSON_AddStringToObject(m, "state", vki_model_state_name(info.state));
    /* Which file serves, and how many times it was switched (hot reload). */
    cJSON_AddStringToObject(m, "path", info.path);
    cJSON_AddNumberToObject(m, "generation", (double)info.generation);
    if (info.reloading) cJSON_AddBoolToObject(m, "reloading", true);
    if (vki_model_state_resident(info.state)) {
        cJSON_AddNumberToObject(m, "n_ctx", info.n_ctx);
        cJSON_AddNumberToObject(m, "n_seq_max", info.n_seq_max);
        cJSON_AddStringToObject(m, "backend", info.backend);
        cJSON_AddNumberToObject(m, "resident_bytes", (double)info.bytes);
    }
    cJSON_AddNumberToObject(m, "estimated_bytes", (double)info.est_bytes);
    /* the registry's fields for `auto` (memory needed: estimated_bytes) */
    if (i < srv->cfg->svc.n_models && srv->cfg->svc.models[i].use_case)
        cJSON_AddStringToObject(m, "use_case", srv->cfg->svc.models[i].use_case);
    if (i < srv->cfg->svc.n_models) cJSON_AddNumberToObject(m, "quality", srv->cfg->svc.models[i].quality);
    cJSON_AddBoolToObject(m, "pin", info.pin);
    cJSON_AddNumberToObject(m, "keep_alive_s", info.keep_alive_ms < 0 ? -1 : info.keep_alive_ms / 1e3);
    cJSON *fb = cJSON_AddArrayToObject(m, "fallback");
    const char *fid;
    for (int32_t k = 0; (fid = vki_service_model_fallback_id(srv->svc, i, k)); k++)
        cJSON_AddItemToArray(fb, cJSON_CreateString(fid));
    if (info.fallback_cpu) cJSON_AddItemToArray(fb, cJSON_CreateString("cpu"));
    const srv_config *cfg = srv->cfg;
    if (i < cfg->svc.n_models && cfg->svc.models[i].fallback_auto)
        cJSON_AddItemToArray(fb, cJSON_CreateString("auto"));
    /* vkinfer's own: the circuit breaker (engine/sched/README.md) */
    cJSON *br = cJSON_AddObjectToObject(m, "breaker");
    cJSON_AddStringToObject(br, "state", vki_breaker_state_name(info.breaker));
    cJSON_AddNumberToObject(br, "failures", info.breaker_failures);
    cJSON_AddNumberToObject(br, "trips", (double)info.breaker_trips);
    if (info.breaker == VKI_BREAKER_OPEN) cJSON_AddNumberToObject(br, "retry_after_s", info.breaker_retry_ms / 1e3);
    if (info.message[0]) cJSON_AddStringToObject(m, "error", info.message);
    return m;
}

enum MHD_Result srv_route_models(srv_conn *cn)
{
    vki_service *svc = cn->srv->svc;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(o, "data");
    for (int32_t i = 0; i < vki_service_model_count(svc); i++) {
        vki_service_model_info info;
        vki_service_get_model_info(svc, i, &info);
        if (!info.removing) cJSON_AddItemToArray(arr, model_json(cn->srv, i));
    }
    cJSON *a = srv_auto_model_json(cn->srv);
    if (a) cJSON_AddItemToArray(arr, a);
    return srv_send_json(cn, 200, o);
}

enum MHD_Result srv_route_model(srv_conn *cn, const char *id)
{
    int32_t i = vki_service_model_find(cn->srv->svc, id);
    cJSON *a = i < 0 && !strcmp(id, "auto") ? srv_auto_model_json(cn->srv) : NULL;
    if (a) return srv_send_json(cn, 200, a);
    if (i < 0)
        return srv_send_error(cn, 404, "model_not_found", 0, "model '%.256s' does not exist (GET /v1/models lists "
                              "them)", id);
    return srv_send_json(cn, 200, model_json(cn->srv, i));
}

/* The vector as raw JSON text (json_floats.c): cJSON_CreateFloatArray's
 * 17-digit doubles made responses ~1.6x as long and cost 2% of a busy
 * embedding server's profile in sprintf / sscanf. */
static cJSON *float_array(const float *v, int32_t n)
{
    char *t = srv_json_float_array(v, n);
    cJSON *j = t ? cJSON_CreateRaw(t) : NULL;
    free(t);
    return j;
}

/* OpenAI's encoding_format "base64": the row as little-endian float32
 * bytes, base64 (RFC 4648, padded), as a JSON string. NULL when out of memory. */
static cJSON *base64_floats(const float *v, int32_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = (size_t)n * 4, at = 0;
    unsigned char *raw = malloc(nb ? nb : 1);
    char *out = malloc((nb + 2) / 3 * 4 + 1);
    cJSON *j = NULL;
    if (!raw || !out) goto done;
    for (int32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++) raw[(size_t)i * 4 + (size_t)k] = (unsigned char)(u >> (8 * k));
    }
    for (size_t i = 0; i < nb; i += 3) {
        uint32_t w = (uint32_t)raw[i] << 16 | (i + 1 < nb ? (uint32_t)raw[i + 1] << 8 : 0) |
                     (i + 2 < nb ? raw[i + 2] : 0u);
        out[at++] = tab[w >> 18 & 63];
        out[at++] = tab[w >> 12 & 63];
        out[at++] = i + 1 < nb ? tab[w >> 6 & 63] : '=';
        out[at++] = i + 2 < nb ? tab[w & 63] : '=';
    }
    out[at] = '\0';
    j = cJSON_CreateString(out);
done:
    free(raw);
    free(out);
    return j;
}

/* An embedding request while its job runs: the service tries the plan's
 * models in order (the fallback plan, or `auto`'s); texts borrow from
 * cn->json (the job copies them). */
typedef struct embed_plan {
    const char  **texts;
    int32_t       n;
    bool          b64;
    double        want_dim, deadline;
    vki_priority  prio;
    int32_t       model, order[16], n_try;
    vki_job      *job;
} embed_plan;

static void eplan_free(embed_plan *p)
{
    vki_job_release(p->job); /* no wake-up after this */
    free(p->texts);
    free(p);
}

/* srv_wait's drop: the connection ended first. */
static void eplan_drop(void *state) { eplan_free(state); }

/* Submits the job over the plan's models; answers at once only when the
 * request itself is unusable for the model asked for. */
static enum MHD_Result embed_submit(srv_conn *cn, embed_plan *p, bool *wait)
{
    vki_request_params rp = vki_request_default_params();
    rp.priority = p->prio;
    /* The service's deadline counts from the submit: the request's has run since it arrived. */
    rp.deadline_ms = p->deadline > 0 ? VKI_MAX(p->deadline - vki_time_ms(), 1e-3) : 0;
    rp.candidates = p->order;
    rp.n_candidates = p->n_try;
    rp.refuse_opening = true; /* answered now (503 model_loading), as a client expects */
    rp.on_done = srv_job_wake;
    rp.user = cn;
    vki_status st = vki_service_embed(cn->srv->svc, NULL, p->texts, p->n, &rp, &p->job);
    if (st != VKI_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vki_last_error());
        eplan_free(p);
        return srv_send_status(cn, st, msg, 0);
    }
    *wait = true;
    return MHD_YES;
}

/* The continuation on each wake-up: answers once the job is done. */
static enum MHD_Result embed_step(srv_conn *cn, void *state, bool *wait)
{
    embed_plan *p = state;
    vki_job_result res;
    vki_job_get_result(p->job, &res);
    if (!res.done) {
        if (srv_client_gone(cn->c)) {
            eplan_free(p);
            return MHD_NO;
        }
        *wait = true;
        return MHD_YES;
    }
    cn->log.prompt_tokens = res.n_prompt;
    srv_queue_note_job(cn, &res);
    if (res.queued && res.status == VKI_OK) cn->log.queue_ms = res.queue_ms;
    if (res.status != VKI_OK) {
        enum MHD_Result ret = srv_send_job_error(cn, &res);
        eplan_free(p);
        return ret;
    }
    const int32_t served = vki_service_model_find(cn->srv->svc, res.model);
    if (served >= 0 && served != p->model) srv_fb_count(cn->srv, p->model, served, res.fallback);
    int32_t n = res.n_texts, dim = res.dim;
    const float *e = res.embeddings;
    vki_service_model_info info;
    if (served < 0 || vki_service_get_model_info(cn->srv->svc, served, &info) != VKI_OK) {
        enum MHD_Result ret = srv_send_error(cn, 404, "model_not_found", 0, "model '%s' was removed while it "
                                             "served the request", res.model);
        eplan_free(p);
        return ret;
    }
    cn->served_by = cn->log.model = info.id;
    int32_t out_dim = dim;
    if (p->want_dim && p->want_dim != dim) {
        const srv_config *cfg = cn->srv->cfg;
        const srv_model_cfg *mc = served < cfg->svc.n_models ? &cfg->svc.models[served] : NULL;
        bool declared = false;
        for (int32_t k = 0; mc && k < mc->n_dims; k++) declared |= mc->dims[k] == p->want_dim && mc->dims[k] < dim;
        if (!declared) {
            char sizes[160] = "";
            size_t len = 0;
            for (int32_t k = 0; mc && k < mc->n_dims && len < sizeof sizes - 16; k++)
                len += (size_t)snprintf(sizes + len, sizeof sizes - len, "%s%d", k ? ", " : "", mc->dims[k]);
            double want = p->want_dim;
            eplan_free(p);
            if (!len)
                return srv_send_error(cn, 400, "invalid_field", 0, "dimensions: model '%s' declares no Matryoshka "
                                      "sizes (config: dimensions: [...]), so only its full width %d is accepted, "
                                      "not %.0f", info.id, dim, want);
            return srv_send_error(cn, 400, "invalid_field", 0, "dimensions: model '%s' takes %s or its full width "
                                  "%d, not %.0f", info.id, sizes, dim, want);
        }
        out_dim = (int32_t)p->want_dim;
    }
    /* Matryoshka: the first out_dim values, normalised again (the model's
     * vectors are unit length; a prefix is not). */
    float *cut = NULL;
    if (out_dim != dim) {
        cut = malloc(sizeof *cut * (size_t)n * (size_t)out_dim);
        if (!cut) {
            eplan_free(p);
            return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
        }
        for (int32_t i = 0; i < n; i++) {
            const float *src = e + (size_t)i * (size_t)dim;
            float *dst = cut + (size_t)i * (size_t)out_dim;
            double ss = 0;
            for (int32_t k = 0; k < out_dim; k++) ss += (double)src[k] * src[k];
            const float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (int32_t k = 0; k < out_dim; k++) dst[k] = src[k] * inv;
        }
        e = cut;
        dim = out_dim;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(o, "data");
    for (int32_t i = 0; i < n; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "object", "embedding");
        cJSON_AddNumberToObject(d, "index", i);
        const float *row = e + (size_t)i * (size_t)dim;
        cJSON_AddItemToObject(d, "embedding", p->b64 ? base64_floats(row, dim) : float_array(row, dim));
        cJSON_AddItemToArray(arr, d);
    }
    cJSON_AddStringToObject(o, "model", info.id);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", res.n_prompt);
    cJSON_AddNumberToObject(u, "total_tokens", res.n_prompt);
    /* info.id outlives the job; the answer's vectors are copied into o. */
    free(cut);
    eplan_free(p);
    return srv_send_json(cn, 200, o);
}

enum MHD_Result srv_route_embeddings(srv_conn *cn, const cJSON *body)
{
    enum MHD_Result ret = MHD_NO;
    /* an unknown field is refused before the model is looked up */
    if (!srv_check_fields(cn, body, srv_embed_fields, &ret)) return ret;
    /* model auto: embedding routes are chosen by need and load only (no meaning) */
    const bool autoq = srv_auto_asked(body);
    int32_t model = autoq ? cn->srv->cfg->svc.n_models : srv_pick_serving(cn, body, VKI_MODEL_KIND_EMBEDDING, &ret);
    if (model < 0) return ret;
    srv_embed_req rq;
    if (!srv_parse_embeddings(cn, body, model, &rq, &ret)) return ret;
    /* A stand-in must give vectors of the model's width (n_embd 0: the
     * requested model's, which the candidates' scoring holds to exactly). */
    vki_request_needs need = {.n_tokens = (int32_t)VKI_MIN(cn->body.n / 4, 1u << 30)};
    embed_plan *p = calloc(1, sizeof *p);
    if (!p) {
        srv_embed_req_free(&rq);
        return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
    }
    *p = (embed_plan){.texts = rq.texts, .n = rq.n, .b64 = rq.b64, .want_dim = rq.want_dim,
                      .deadline = rq.deadline_ms, .prio = rq.prio, .model = model};
    if (autoq) {
        srv_auto *none = NULL;
        if (srv_auto_begin(cn, body, VKI_MODEL_KIND_EMBEDDING, need.n_tokens, &p->prio, &none, p->order, &p->n_try,
                           &ret) == 1)
            p->model = p->order[0];
        else
            p->n_try = 0;
    } else {
        p->n_try = srv_fb_plan(cn, body, model, &need, p->order, 16, &ret);
    }
    if (!p->n_try) {
        eplan_free(p);
        return ret;
    }
    bool wait = false;
    ret = embed_submit(cn, p, &wait);
    if (!wait) return ret;
    return srv_wait(cn, embed_step, eplan_drop, p);
}
