/*
 * test_service_admin.c: the service API's run-time side (vkinfer.h):
 * adding a model while a generation runs, updating its live settings,
 * reloading it from a file (swap counters, generation), removing it (new
 * requests refused, its index kept), the histograms and the extra counters
 * of vki_service_get_model_stats, the embedding cache's and the device's
 * figures, the fallback candidates, a caller's own candidate order with
 * the first refusal reported, the name parsers, and shutdown, on generated
 * models (CPU).
 * argv: CHAT.gguf EMBED.gguf
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service_test_util.h"

static vki_service_model_info info_of(vki_service *svc, const char *id)
{
    vki_service_model_info info = {0};
    const int32_t i = vki_service_model_find(svc, id);
    CHECKF(i >= 0, "no model %s", id);
    if (i >= 0) CHECK(vki_service_get_model_info(svc, i, &info) == VKI_OK);
    return info;
}

/* Polls model id's info until done(info) or 30 s. */
static bool wait_info(vki_service *svc, int32_t i, bool (*done)(const vki_service_model_info *, uint64_t), uint64_t arg)
{
    for (int k = 0; k < 3000; k++) {
        vki_service_model_info info;
        if (vki_service_get_model_info(svc, i, &info) == VKI_OK && done(&info, arg)) return true;
        usleep(10000);
    }
    return false;
}

static bool resident(const vki_service_model_info *info, uint64_t gen)
{
    return vki_model_state_resident(info->state) && info->generation >= gen && !info->reloading;
}

static bool removed(const vki_service_model_info *info, uint64_t unused)
{
    (void)unused;
    return info->removed;
}

static void test_names(void)
{
    vki_priority p = VKI_PRIORITY_NORMAL;
    CHECK(vki_priority_from_name("batch", &p) && p == VKI_PRIORITY_BATCH);
    CHECK(vki_priority_from_name(vki_priority_name(VKI_PRIORITY_INTERACTIVE), &p) && p == VKI_PRIORITY_INTERACTIVE);
    CHECK(!vki_priority_from_name("urgent", &p) && !vki_priority_from_name(NULL, &p));
    vki_model_kind k = VKI_MODEL_KIND_AUTO;
    CHECK(vki_model_kind_from_name("embedding", &k) && k == VKI_MODEL_KIND_EMBEDDING);
    CHECK(!vki_model_kind_from_name("Chat", &k));
    CHECK(vki_model_state_resident(VKI_MODEL_RESIDENT_CPU) && !vki_model_state_resident(VKI_MODEL_LOADING));
    const double *b = vki_service_histogram_bounds();
    for (int i = 1; i < VKI_HISTOGRAM_BUCKETS; i++) CHECK(b[i] > b[i - 1]);
}

/* A generation runs while a model is added beside it; both then serve. */
static void test_add_while_running(vki_service *svc, const char *chat_path)
{
    vki_job *j = NULL;
    vki_generate_params gp = greedy(24);
    CHECK(vki_service_generate(svc, "chat", "Once upon a time", &gp, NULL, &j) == VKI_OK);
    vki_service_model_params mp = vki_service_model_default_params();
    mp.id = "chat2";
    mp.path = chat_path;
    mp.model.backend = VKI_BACKEND_CPU;
    mp.model.n_seq_max = 1;
    mp.fallback = (const char *const[]){"chat", NULL};
    CHECK(vki_service_add_model(svc, &mp) == VKI_OK);
    vki_job_result r = finish(j);
    CHECKF(r.status == VKI_OK && r.n_generated == 24, "%s", r.message);
    vki_job_release(j);
    const int32_t i2 = vki_service_model_find(svc, "chat2");
    CHECK(i2 == 2 && vki_service_model_count(svc) == 3);
    CHECK(!strcmp(vki_service_model_fallback_id(svc, i2, 0) ? vki_service_model_fallback_id(svc, i2, 0) : "", "chat"));
    CHECK(vki_service_model_fallback_id(svc, i2, 1) == NULL && vki_service_model_fallback_id(svc, 99, 0) == NULL);
    /* The plan a request for chat2 follows: its chain (chat), nothing else. */
    int32_t order[4] = {-1, -1, -1, -1};
    double score[4];
    const vki_request_needs need = {.n_tokens = 64};
    CHECK(vki_service_fallback_candidates(svc, i2, &need, order, score, 4) == 1 && order[0] == 0);
    CHECK(vki_service_fallback_candidates(svc, i2, NULL, order, NULL, 4) == 1);
    CHECK(vki_service_fallback_candidates(svc, 0, NULL, order, NULL, 4) == 0); /* chat declares none */
    CHECK(vki_service_fallback_candidates(NULL, 0, NULL, order, NULL, 4) == 0);
    CHECK(vki_service_fallback_candidates(svc, 99, NULL, order, NULL, 4) == 0);
    CHECK(vki_service_generate(svc, "chat2", "Hello", &gp, NULL, &j) == VKI_OK);
    r = finish(j);
    CHECKF(r.status == VKI_OK && !strcmp(r.model, "chat2"), "%s on %s", r.message, r.model);
    vki_job_release(j);
}

static void test_stats(vki_service *svc)
{
    vki_service_model_stats st;
    CHECK(vki_service_get_model_stats(svc, vki_service_model_find(svc, "chat"), &st) == VKI_OK);
    CHECKF(st.ttft.count >= 1 && st.request.count >= 1 && st.token_latency.count >= 23, "ttft %llu request %llu "
           "tokens %llu", (unsigned long long)st.ttft.count, (unsigned long long)st.request.count,
           (unsigned long long)st.token_latency.count);
    uint64_t sum = 0;
    for (int k = 0; k <= VKI_HISTOGRAM_BUCKETS; k++) sum += st.token_latency.bucket[k];
    CHECK(sum == st.token_latency.count && st.token_latency.sum_s > 0);
    CHECK(st.ttft_count == st.ttft.count);
    CHECK(st.steps >= 23 && st.step_seqs >= st.steps && st.prompt_evaluated > 0);
    CHECK(st.arb_grants > 0);

    /* The embedding cache: the same text twice is one miss, then one hit. */
    for (int rep = 0; rep < 2; rep++) {
        vki_job *j = NULL;
        CHECK(vki_service_embed(svc, "emb", (const char *[]){"the cached text"}, 1, NULL, &j) == VKI_OK);
        vki_job_result r = finish(j);
        CHECKF(r.status == VKI_OK, "%s", r.message);
        vki_job_release(j);
    }
    vki_service_cache_info ci;
    CHECK(vki_service_get_cache_info(svc, &ci) == VKI_OK);
    CHECKF(ci.budget == 1 << 20 && ci.hits == 1 && ci.misses == 1 && ci.entries == 1 && ci.bytes > 0,
           "budget %llu hits %llu misses %llu", (unsigned long long)ci.budget, (unsigned long long)ci.hits,
           (unsigned long long)ci.misses);
    CHECK(vki_service_get_model_stats(svc, vki_service_model_find(svc, "emb"), &st) == VKI_OK);
    CHECK(st.emb_cache_hits == 1 && st.emb_cache_misses == 1);
    vki_service_device_info di;
    CHECK(vki_service_get_device_info(svc, &di) == VKI_OK);
    CHECK(di.used <= di.budget || di.budget == 0);
    CHECK(vki_service_get_cache_info(NULL, &ci) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(vki_service_get_device_info(svc, NULL) == VKI_ERR_INVALID_ARGUMENT);
}

static void test_update_reload_remove(vki_service *svc, const char *chat_path)
{
    const int32_t i = vki_service_model_find(svc, "chat");
    vki_service_model_params mp = vki_service_model_default_params();
    mp.keep_alive_ms = 60000;
    mp.pin = true;
    CHECK(vki_service_update_model(svc, i, &mp) == VKI_OK);
    vki_service_model_info info = info_of(svc, "chat");
    CHECK(info.keep_alive_ms == 60000 && info.pin);
    CHECK(vki_service_update_model(svc, i, NULL) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(vki_service_update_model(svc, 99, &mp) == VKI_ERR_NOT_FOUND);

    /* A reload to the same file: a swap, served afterwards by generation 1. */
    CHECK(vki_service_reload_model(svc, i, NULL) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(vki_service_reload_model(svc, 99, chat_path) == VKI_ERR_NOT_FOUND);
    CHECKF(vki_service_reload_model(svc, i, chat_path) == VKI_OK, "%s", vki_last_error());
    CHECK(wait_info(svc, i, resident, 1));
    vki_service_model_stats st;
    CHECK(vki_service_get_model_stats(svc, i, &st) == VKI_OK && st.swaps == 1);
    vki_job *j = NULL;
    vki_generate_params gp = greedy(4);
    CHECK(vki_service_generate(svc, "chat", "Hello", &gp, NULL, &j) == VKI_OK);
    vki_job_result r = finish(j);
    CHECKF(r.status == VKI_OK, "%s", r.message);
    vki_job_release(j);

    /* Removing chat2: refused from now on, its index kept and marked. */
    const int32_t i2 = vki_service_model_find(svc, "chat2");
    CHECK(vki_service_remove_model(svc, i2) == VKI_OK);
    CHECK(vki_service_generate(svc, "chat2", "Hello", &gp, NULL, &j) == VKI_ERR_NOT_FOUND);
    CHECK(vki_service_model_find(svc, "chat2") == -1 && vki_service_model_count(svc) == 3);
    CHECK(wait_info(svc, i2, removed, 0));
    CHECK(vki_service_remove_model(svc, i2) == VKI_ERR_NOT_FOUND);
    CHECK(vki_service_remove_model(svc, -1) == VKI_ERR_NOT_FOUND);
    CHECK(vki_service_remove_model(NULL, 0) == VKI_ERR_INVALID_ARGUMENT);
}

static bool failed_state(const vki_service_model_info *info, uint64_t unused)
{
    (void)unused;
    return info->state == VKI_MODEL_FAILED;
}

static bool done_seen;
static void on_done_flag(const vki_job_result *r, void *user)
{
    (void)user;
    done_seen = r->done; /* the result is final when on_done runs */
}

/* A caller's own candidate order, and the first refusal reported. */
static void test_candidates(vki_service *svc)
{
    const int32_t emb = vki_service_model_find(svc, "emb");
    vki_service_model_params mp = vki_service_model_default_params();
    mp.id = "gone";
    mp.path = "/nonexistent/gone.gguf";
    mp.kind = VKI_MODEL_KIND_EMBEDDING;
    CHECK(vki_service_add_model(svc, &mp) == VKI_OK);
    const int32_t gone = vki_service_model_find(svc, "gone");
    CHECK(gone >= 0 && wait_info(svc, gone, failed_state, 0));
    const char *texts[] = {"some text"};
    vki_request_params rp = vki_request_default_params();
    vki_job *j = NULL;
    rp.candidates = (const int32_t[]){gone};
    rp.n_candidates = 1;
    rp.on_done = on_done_flag;
    CHECK(vki_service_embed(svc, NULL, texts, 1, &rp, &j) == VKI_OK);
    vki_job_result r = finish(j);
    CHECKF(r.status != VKI_OK && r.refusal == VKI_FALLBACK_MISSING && r.refusal_model_failed && !r.queued,
           "%s refusal %d", vki_status_str(r.status), (int)r.refusal);
    CHECK(done_seen);
    vki_job_release(j);
    rp.candidates = (const int32_t[]){gone, emb};
    rp.n_candidates = 2;
    CHECK(vki_service_embed(svc, "gone", texts, 1, &rp, &j) == VKI_OK);
    r = finish(j);
    CHECKF(r.status == VKI_OK && !strcmp(r.model, "emb") && r.fallback == VKI_FALLBACK_MISSING && r.queued &&
           r.refusal == VKI_FALLBACK_NONE, "%s on %s", r.message, r.model);
    vki_job_release(j);
    /* Bad orders are the request's fault, refused at submit. */
    CHECK(vki_service_embed(svc, "emb", texts, 1, &rp, &j) == VKI_ERR_INVALID_ARGUMENT && j == NULL);
    CHECKF(strstr(vki_last_error(), "candidates[0]"), "%s", vki_last_error());
    rp.n_candidates = 0;
    CHECK(vki_service_embed(svc, NULL, texts, 1, &rp, &j) == VKI_ERR_INVALID_ARGUMENT);
    rp.candidates = (const int32_t[]){99};
    rp.n_candidates = 1;
    CHECK(vki_service_embed(svc, NULL, texts, 1, &rp, &j) == VKI_ERR_INVALID_ARGUMENT);
    rp.candidates = (const int32_t[]){0}; /* chat */
    CHECK(vki_service_embed(svc, NULL, texts, 1, &rp, &j) == VKI_ERR_UNSUPPORTED);
}

static void test_shutdown(vki_service *svc)
{
    vki_service_shutdown(svc);
    vki_job *j = NULL;
    vki_generate_params gp = greedy(4);
    vki_status st = vki_service_generate(svc, "chat", "Hello", &gp, NULL, &j);
    if (st == VKI_OK) {
        vki_job_result r = finish(j);
        CHECKF(r.status != VKI_OK, "a job after shutdown ended %s", vki_status_str(r.status));
        vki_job_release(j);
    }
    vki_service_model_info info = info_of(svc, "chat"); /* still readable */
    CHECK(!strcmp(info.id, "chat"));
    vki_service_shutdown(svc); /* a second time is harmless */
}

int main(int argc, char **argv)
{
    svc_models_arg(argc, argv, "test_service_admin", "");
    test_names();
    vki_service_params sp = vki_service_default_params();
    sp.engine.n_threads = 2;
    sp.embedding_cache_bytes = 1 << 20;
    vki_service *svc = NULL;
    CHECK(vki_service_create(&sp, &svc) == VKI_OK);
    svc_add_test_models(svc, argv[1], argv[2], VKI_BACKEND_CPU, 1, false);
    CHECK(vki_service_wait_loaded(svc, 60000));
    test_add_while_running(svc, argv[1]);
    test_stats(svc);
    test_update_reload_remove(svc, argv[1]);
    test_candidates(svc);
    test_shutdown(svc);
    vki_service_destroy(svc);
    return test_finish("test_service_admin");
}
