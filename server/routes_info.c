/*
 * routes_info.c: GET /health (200 once every model can take requests and
 * the start-up loads are done, else 503; each model's state: unloaded,
 * loading, resident-gpu, resident-cpu, failed), GET /v1/models, GET /metrics (Prometheus text) and
 * POST /v1/embeddings (OpenAI shape, dynamically batched by the scheduler).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"
#include "util.h"

enum MHD_Result srv_route_health(srv_conn *cn)
{
    scheduler *s = cn->srv->s;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    bool loading = false, failed = false;
    for (int32_t i = 0; i < sched_n_models(s); i++) {
        sched_model_info info;
        sched_stats st;
        sched_model_get_info(s, i, &info);
        sched_model_get_stats(s, i, &st);
        /* Loads on demand later are normal service; the first ones are start-up. */
        loading |= (!info.can_queue && info.state != SCHED_FAILED) ||
                   (info.state == SCHED_LOADING && st.loads == 0 && !info.error[0]);
        failed |= info.state == SCHED_FAILED;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", info.id);
        cJSON_AddStringToObject(m, "state", sched_state_name(info.state));
        if (sched_state_resident(info.state)) cJSON_AddStringToObject(m, "backend", info.backend);
        if (info.error[0]) cJSON_AddStringToObject(m, "error", info.error);
        cJSON_AddItemToArray(arr, m);
    }
    cJSON_AddStringToObject(o, "status", loading ? "loading" : failed ? "failed" : "ok");
    cJSON_AddItemToObject(o, "models", arr);
    return srv_send_json(cn, loading || failed ? 503 : 200, o);
}

enum MHD_Result srv_route_models(srv_conn *cn)
{
    scheduler *s = cn->srv->s;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(o, "data");
    for (int32_t i = 0; i < sched_n_models(s); i++) {
        sched_model_info info;
        sched_model_get_info(s, i, &info);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", info.id);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", (double)cn->srv->created);
        cJSON_AddStringToObject(m, "owned_by", "vkinfer");
        cJSON_AddStringToObject(m, "kind", sched_kind_name(info.kind));
        cJSON_AddStringToObject(m, "state", sched_state_name(info.state));
        if (sched_state_resident(info.state)) {
            cJSON_AddNumberToObject(m, "n_ctx", info.n_ctx);
            cJSON_AddNumberToObject(m, "n_seq_max", info.n_seq_max);
            cJSON_AddStringToObject(m, "backend", info.backend);
            cJSON_AddNumberToObject(m, "resident_bytes", (double)info.bytes);
        }
        cJSON_AddNumberToObject(m, "estimated_bytes", (double)info.est_bytes);
        cJSON_AddBoolToObject(m, "pin", info.pin);
        cJSON_AddNumberToObject(m, "keep_alive_s", info.keep_alive_ms < 0 ? -1 : info.keep_alive_ms / 1e3);
        cJSON *fb = cJSON_AddArrayToObject(m, "fallback");
        if (info.fallback_cpu) cJSON_AddItemToArray(fb, cJSON_CreateString("cpu"));
        if (info.error[0]) cJSON_AddStringToObject(m, "error", info.error);
        cJSON_AddItemToArray(arr, m);
    }
    return srv_send_json(cn, 200, o);
}

enum MHD_Result srv_route_embeddings(srv_conn *cn, const cJSON *body)
{
    enum MHD_Result ret = MHD_NO;
    int32_t model = srv_pick_model(cn, body, SCHED_KIND_EMBEDDING, &ret);
    if (model < 0) return ret;
    sched_prio prio;
    double deadline;
    if (!srv_parse_common(cn, body, model, SCHED_PRIO_NORMAL, &prio, &deadline, &ret)) return ret;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(body, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt) && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "float")))
        return srv_send_error(cn, 400, "invalid_field", 0, "encoding_format: only \"float\" is supported");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(body, "input");
    int32_t n = cJSON_IsString(in) ? 1 : cJSON_IsArray(in) ? cJSON_GetArraySize(in) : 0;
    if (n < 1 || n > 2048)
        return srv_send_error(cn, 400, "invalid_field", 0, "input: expected a string or an array of 1 to 2048 strings");
    const char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts) return srv_send_error(cn, 503, "out_of_memory", 0, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        const cJSON *t = cJSON_IsString(in) ? in : cJSON_GetArrayItem(in, i);
        if (!cJSON_IsString(t)) {
            free(texts);
            return srv_send_error(cn, 400, "invalid_field", 0, "input[%d]: expected a string (token arrays are not "
                                  "supported)", i);
        }
        texts[i] = t->valuestring;
    }
    sched_request *r = NULL;
    double eta = 0;
    vki_status s = sched_submit_embed(cn->srv->s, model, texts, n, prio, deadline, &r, &eta);
    free(texts);
    if (s != VKI_OK) return srv_send_status(cn, s, vki_last_error(), eta);
    sched_result res;
    for (;;) {
        char *chunk = NULL;
        size_t nc;
        sched_request_poll(r, 0, 100, &chunk, &nc, &res);
        free(chunk);
        cn->log.prompt_tokens = res.n_prompt;
        if (res.start_order) cn->log.queue_ms = res.queue_ms;
        if (res.done) break;
        if (srv_client_gone(cn->c)) {
            sched_request_release(r);
            return MHD_NO;
        }
    }
    if (res.status != VKI_OK) {
        ret = srv_send_status(cn, res.status, res.error, 0);
        sched_request_release(r);
        return ret;
    }
    int32_t dim = 0;
    const float *e = sched_request_embeddings(r, &n, &dim);
    sched_model_info info;
    sched_model_get_info(cn->srv->s, model, &info);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *arr = cJSON_AddArrayToObject(o, "data");
    for (int32_t i = 0; i < n; i++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "object", "embedding");
        cJSON_AddNumberToObject(d, "index", i);
        cJSON_AddItemToObject(d, "embedding", cJSON_CreateFloatArray(e + (size_t)i * (size_t)dim, dim));
        cJSON_AddItemToArray(arr, d);
    }
    cJSON_AddStringToObject(o, "model", info.id);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", res.n_prompt);
    cJSON_AddNumberToObject(u, "total_tokens", res.n_prompt);
    sched_request_release(r);
    return srv_send_json(cn, 200, o);
}

/* ===== /metrics =========================================================== */

static void histo(srv_buf *b, const char *name, const char *model, const sched_histo *h)
{
    uint64_t cum = 0;
    for (int k = 0; k < SCHED_N_BUCKETS; k++) {
        cum += h->bucket[k];
        srv_buf_printf(b, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, model, sched_bucket_s[k], (unsigned long long)cum);
    }
    srv_buf_printf(b, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, model, (unsigned long long)h->count);
    srv_buf_printf(b, "%s_sum{model=\"%s\"} %.6f\n%s_count{model=\"%s\"} %llu\n", name, model, h->sum_s, name, model,
            (unsigned long long)h->count);
}

enum MHD_Result srv_route_metrics(srv_conn *cn)
{
    srv_server *srv = cn->srv;
    srv_buf b = {0};
    srv_buf_printf(&b, "# HELP vkinfer_http_requests_total HTTP requests answered, by route and status.\n"
                "# TYPE vkinfer_http_requests_total counter\n");
    /* This response counts itself, so a scrape sees its own route. */
    srv_count(srv, cn->route, 200);
    for (int r = 0; r < SRV_N_ROUTES; r++)
        for (int k = 0; k < SRV_N_CODES; k++) {
            uint64_t v = atomic_load(&srv->count[r][k]);
            if (v) srv_buf_printf(&b, "vkinfer_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", srv_route_path[r],
                           srv_codes[k], (unsigned long long)v);
        }
    static const char *const heads =
        "# TYPE vkinfer_model_state gauge\n"
        "# HELP vkinfer_queue_depth Requests waiting, by model and priority class.\n# TYPE vkinfer_queue_depth gauge\n"
        "# TYPE vkinfer_active_sequences gauge\n"
        "# TYPE vkinfer_requests_finished_total counter\n"
        "# TYPE vkinfer_queue_rejected_total counter\n"
        "# TYPE vkinfer_prompt_tokens_total counter\n# TYPE vkinfer_generated_tokens_total counter\n"
        "# TYPE vkinfer_batch_steps_total counter\n# TYPE vkinfer_batch_sequences_total counter\n"
        "# TYPE vkinfer_service_time_avg_seconds gauge\n"
        "# HELP vkinfer_time_to_first_token_seconds Submit to first generated token.\n"
        "# TYPE vkinfer_time_to_first_token_seconds histogram\n"
        "# HELP vkinfer_token_latency_seconds Decode step time, per generated token.\n"
        "# TYPE vkinfer_token_latency_seconds histogram\n"
        "# TYPE vkinfer_request_duration_seconds histogram\n"
        "# HELP vkinfer_model_loads_total Loads that succeeded (GPU or CPU); evictions unload for another model, "
        "idle unloads follow keep_alive, fallbacks loaded on the CPU as the GPU was full, refused loads had neither room nor fallback.\n"
        "# TYPE vkinfer_model_loads_total counter\n# TYPE vkinfer_model_evictions_total counter\n"
        "# TYPE vkinfer_model_idle_unloads_total counter\n# TYPE vkinfer_model_fallbacks_total counter\n"
        "# TYPE vkinfer_model_refused_loads_total counter\n# TYPE vkinfer_model_swaps_total counter\n"
        "# HELP vkinfer_model_resident_bytes Memory the model holds on its backend (0 when unloaded).\n"
        "# TYPE vkinfer_model_resident_bytes gauge\n"
        "# TYPE vkinfer_device_budget_bytes gauge\n# TYPE vkinfer_device_used_bytes gauge\n";
    srv_buf_printf(&b, "%s", heads);
    sched_resid_info ri;
    sched_get_resid_info(srv->s, &ri);
    srv_buf_printf(&b, "vkinfer_device_budget_bytes %llu\nvkinfer_device_used_bytes %llu\n", (unsigned long long)ri.budget,
            (unsigned long long)ri.used);
    for (int32_t i = 0; i < sched_n_models(srv->s); i++) {
        sched_model_info info;
        sched_stats st;
        sched_model_get_info(srv->s, i, &info);
        sched_model_get_stats(srv->s, i, &st);
        const char *id = info.id;
        for (int k = SCHED_UNLOADED; k <= SCHED_FAILED; k++)
            srv_buf_printf(&b, "vkinfer_model_state{model=\"%s\",state=\"%s\"} %d\n", id, sched_state_name((sched_state)k),
                    info.state == (sched_state)k);
        for (int p = 0; p < SCHED_N_PRIO; p++)
            srv_buf_printf(&b, "vkinfer_queue_depth{model=\"%s\",priority=\"%s\"} %d\n", id, sched_prio_name((sched_prio)p),
                    st.queued[p]);
        srv_buf_printf(&b, "vkinfer_active_sequences{model=\"%s\"} %d\n", id, st.active);
        static const char *const outcomes[] = {"ok", "failed", "cancelled", "timeout"};
        const uint64_t counts[] = {st.finished_ok, st.failed, st.cancelled, st.timed_out};
        for (int k = 0; k < 4; k++)
            srv_buf_printf(&b, "vkinfer_requests_finished_total{model=\"%s\",outcome=\"%s\"} %llu\n", id, outcomes[k],
                    (unsigned long long)counts[k]);
        srv_buf_printf(&b,
                "vkinfer_queue_rejected_total{model=\"%s\"} %llu\n"
                "vkinfer_prompt_tokens_total{model=\"%s\"} %llu\n"
                "vkinfer_generated_tokens_total{model=\"%s\"} %llu\n"
                "vkinfer_batch_steps_total{model=\"%s\"} %llu\n"
                "vkinfer_batch_sequences_total{model=\"%s\"} %llu\n"
                "vkinfer_service_time_avg_seconds{model=\"%s\"} %.6f\n",
                id, (unsigned long long)st.rejected_full, id, (unsigned long long)st.prompt_tokens, id,
                (unsigned long long)st.generated_tokens, id, (unsigned long long)st.steps, id,
                (unsigned long long)st.step_seqs, id, st.service_ema_ms / 1e3);
        srv_buf_printf(&b,
                "vkinfer_model_loads_total{model=\"%s\"} %llu\n"
                "vkinfer_model_evictions_total{model=\"%s\"} %llu\n"
                "vkinfer_model_idle_unloads_total{model=\"%s\"} %llu\n"
                "vkinfer_model_fallbacks_total{model=\"%s\"} %llu\n"
                "vkinfer_model_refused_loads_total{model=\"%s\"} %llu\n"
                "vkinfer_model_swaps_total{model=\"%s\"} %llu\n"
                "vkinfer_model_resident_bytes{model=\"%s\"} %llu\n",
                id, (unsigned long long)st.loads, id, (unsigned long long)st.evictions, id,
                (unsigned long long)st.idle_unloads, id, (unsigned long long)st.fallbacks, id,
                (unsigned long long)st.refused_loads, id, (unsigned long long)st.swaps, id,
                (unsigned long long)info.bytes);
        histo(&b, "vkinfer_time_to_first_token_seconds", id, &st.ttft);
        histo(&b, "vkinfer_token_latency_seconds", id, &st.token_latency);
        histo(&b, "vkinfer_request_duration_seconds", id, &st.request);
    }
    if (b.oom || !b.p) {
        free(b.p);
        return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(b.n, b.p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(b.p);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    cn->log.status = 200;
    enum MHD_Result ret = MHD_queue_response(cn->c, 200, r);
    MHD_destroy_response(r);
    return ret;
}
