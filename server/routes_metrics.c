/*
 * routes_metrics.c: GET /metrics, Prometheus text: the HTTP counters, and
 * per model its state, queues, outcomes, tokens, loads, breaker, device
 * turns and latency histograms, all read through the service API
 * (vki_service_get_model_info/_stats, the cache's and device's figures);
 * the fallbacks' and `auto`'s rows come from fallback.c and routes_auto.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/srv_internal.h"

static void histo(srv_buf *b, const char *name, const char *model, const vki_histogram *h)
{
    const double *bounds = vki_service_histogram_bounds();
    uint64_t cum = 0;
    for (int k = 0; k < VKI_HISTOGRAM_BUCKETS; k++) {
        cum += h->bucket[k];
        srv_buf_printf(b, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, model, bounds[k], (unsigned long long)cum);
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
    srv_buf_printf(&b, "# HELP vkinfer_client_disconnects_total Clients that closed the connection before their answer "
                "ended.\n# TYPE vkinfer_client_disconnects_total counter\nvkinfer_client_disconnects_total %llu\n",
                (unsigned long long)atomic_load(&srv->disconnects));
    srv_buf_printf(&b, "# HELP vkinfer_http_evictions_total Idle or slow connections closed to make room for a new "
                "one.\n# TYPE vkinfer_http_evictions_total counter\nvkinfer_http_evictions_total %llu\n"
                "# HELP vkinfer_http_in_flight Requests received and not yet answered to their end.\n"
                "# TYPE vkinfer_http_in_flight gauge\nvkinfer_http_in_flight %d\n",
                (unsigned long long)atomic_load(&srv->evictions), atomic_load(&srv->in_flight));
    static const char *const heads =
        "# TYPE vkinfer_model_state gauge\n"
        "# HELP vkinfer_queue_depth Requests waiting, by model and priority class.\n# TYPE vkinfer_queue_depth gauge\n"
        "# TYPE vkinfer_active_sequences gauge\n"
        "# TYPE vkinfer_requests_finished_total counter\n"
        "# TYPE vkinfer_queue_rejected_total counter\n"
        "# HELP vkinfer_prompt_tokens_total Prompt tokens of requests that finished ok (evaluated or reused alike).\n"
        "# TYPE vkinfer_prompt_tokens_total counter\n# TYPE vkinfer_generated_tokens_total counter\n"
        "# HELP vkinfer_prompt_tokens_evaluated_total Prompt tokens run through the model (admitted sequences, any "
        "outcome; a paused generation's re-fed tokens too).\n"
        "# TYPE vkinfer_prompt_tokens_evaluated_total counter\n"
        "# HELP vkinfer_prompt_tokens_reused_total Prompt tokens skipped: their KV was already in the sequence's slot "
        "(prefix reuse).\n"
        "# TYPE vkinfer_prompt_tokens_reused_total counter\n"
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
        "# HELP vkinfer_model_turns_yielded_total Turns given up: unloaded after a quantum for a model waiting for the room.\n"
        "# TYPE vkinfer_model_turns_yielded_total counter\n"
        "# HELP vkinfer_model_paused_total Generations paused at the end of a turn (they resume at the next).\n"
        "# TYPE vkinfer_model_paused_total counter\n"
        "# HELP vkinfer_device_grants_total Steps (decode, prompt chunk, embedding chunk) granted by the device arbiter.\n"
        "# TYPE vkinfer_device_grants_total counter\n# TYPE vkinfer_device_wait_seconds_total counter\n"
        "# TYPE vkinfer_device_budget_bytes gauge\n# TYPE vkinfer_device_used_bytes gauge\n";
    srv_buf_printf(&b, "%s", heads);
    srv_buf_printf(&b, "# HELP vkinfer_breaker_state Each model's circuit breaker (1 for its state).\n"
                       "# TYPE vkinfer_breaker_state gauge\n# TYPE vkinfer_breaker_trips_total counter\n"
                       "# TYPE vkinfer_breaker_failures_total counter\n");
    srv_fb_metrics(srv, &b);
    srv_auto_metrics(srv, &b);
    vki_service *svc = srv->svc;
    vki_service_device_info ri;
    vki_service_get_device_info(svc, &ri);
    srv_buf_printf(&b, "vkinfer_device_budget_bytes %llu\nvkinfer_device_used_bytes %llu\n", (unsigned long long)ri.budget,
            (unsigned long long)ri.used);
    vki_service_cache_info ec;
    vki_service_get_cache_info(svc, &ec);
    srv_buf_printf(&b, "# HELP vkinfer_embedding_cache_hits_total Embedding inputs answered from the cache, by model.\n"
                       "# TYPE vkinfer_embedding_cache_hits_total counter\n"
                       "# HELP vkinfer_embedding_cache_misses_total Embedding inputs not in the cache (embedded), by "
                       "model.\n# TYPE vkinfer_embedding_cache_misses_total counter\n"
                       "# HELP vkinfer_embedding_cache_bytes Bytes the embedding cache holds (budget: "
                       "vkinfer_embedding_cache_budget_bytes; 0 = off).\n"
                       "# TYPE vkinfer_embedding_cache_bytes gauge\nvkinfer_embedding_cache_bytes %llu\n"
                       "# TYPE vkinfer_embedding_cache_budget_bytes gauge\nvkinfer_embedding_cache_budget_bytes %llu\n"
                       "# TYPE vkinfer_embedding_cache_entries gauge\nvkinfer_embedding_cache_entries %llu\n"
                       "# HELP vkinfer_embedding_cache_evictions_total Entries dropped (least recently used) for "
                       "room.\n# TYPE vkinfer_embedding_cache_evictions_total counter\n"
                       "vkinfer_embedding_cache_evictions_total %llu\n",
                   (unsigned long long)ec.bytes, (unsigned long long)ec.budget, (unsigned long long)ec.entries,
                   (unsigned long long)ec.evictions);
    for (int32_t i = 0; i < vki_service_model_count(svc); i++) {
        vki_service_model_info info;
        vki_service_model_stats st;
        vki_service_get_model_info(svc, i, &info);
        if (info.removed) continue; /* its counters went with it */
        vki_service_get_model_stats(svc, i, &st);
        const char *id = info.id;
        for (int k = VKI_MODEL_UNLOADED; k <= VKI_MODEL_FAILED; k++)
            srv_buf_printf(&b, "vkinfer_model_state{model=\"%s\",state=\"%s\"} %d\n", id, vki_model_state_name((vki_model_state)k),
                    info.state == (vki_model_state)k);
        for (int p = VKI_PRIORITY_INTERACTIVE; p <= VKI_PRIORITY_BATCH; p++)
            srv_buf_printf(&b, "vkinfer_queue_depth{model=\"%s\",priority=\"%s\"} %d\n", id, vki_priority_name((vki_priority)p),
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
                "vkinfer_prompt_tokens_evaluated_total{model=\"%s\"} %llu\n"
                "vkinfer_prompt_tokens_reused_total{model=\"%s\"} %llu\n"
                "vkinfer_generated_tokens_total{model=\"%s\"} %llu\n"
                "vkinfer_batch_steps_total{model=\"%s\"} %llu\n"
                "vkinfer_batch_sequences_total{model=\"%s\"} %llu\n"
                "vkinfer_service_time_avg_seconds{model=\"%s\"} %.6f\n",
                id, (unsigned long long)st.rejected_full, id, (unsigned long long)st.prompt_tokens, id,
                (unsigned long long)st.prompt_evaluated, id, (unsigned long long)st.prompt_reused, id,
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
                (unsigned long long)st.idle_unloads, id, (unsigned long long)st.cpu_fallbacks, id,
                (unsigned long long)st.refused_loads, id, (unsigned long long)st.swaps, id,
                (unsigned long long)info.bytes);
        for (int k = VKI_BREAKER_CLOSED; k <= VKI_BREAKER_HALF_OPEN; k++)
            srv_buf_printf(&b, "vkinfer_breaker_state{model=\"%s\",state=\"%s\"} %d\n", id,
                           vki_breaker_state_name((vki_breaker_state)k), info.breaker == (vki_breaker_state)k);
        srv_buf_printf(&b, "vkinfer_breaker_trips_total{model=\"%s\"} %llu\nvkinfer_breaker_failures_total{model=\"%s\"} "
                           "%llu\n", id, (unsigned long long)info.breaker_trips, id,
                       (unsigned long long)st.breaker_failures);
        srv_buf_printf(&b,
                "vkinfer_model_turns_yielded_total{model=\"%s\"} %llu\n"
                "vkinfer_model_paused_total{model=\"%s\"} %llu\n"
                "vkinfer_device_grants_total{model=\"%s\"} %llu\n"
                "vkinfer_device_wait_seconds_total{model=\"%s\"} %.6f\n",
                id, (unsigned long long)st.yields, id, (unsigned long long)st.paused, id,
                (unsigned long long)st.arb_grants, id, st.arb_wait_ms / 1e3);
        if (info.kind == VKI_MODEL_KIND_EMBEDDING)
            srv_buf_printf(&b, "vkinfer_embedding_cache_hits_total{model=\"%s\"} %llu\n"
                               "vkinfer_embedding_cache_misses_total{model=\"%s\"} %llu\n",
                           id, (unsigned long long)st.emb_cache_hits, id, (unsigned long long)st.emb_cache_misses);
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
