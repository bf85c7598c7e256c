/*
 * test_service.c: the service API of vkinfer.h as a library user sees it,
 * on generated models: a chat model and an embedding model by id, priority
 * order, on_token/on_done, cancel (by call and by callback), deadlines,
 * fallback from a missing model (and none when the request forbids it),
 * model states and counters, and bad arguments with their messages.
 * argv: CHAT.gguf EMBED.gguf [--vulkan]; with --vulkan the chat model runs
 * on the Vulkan backend (lavapipe), skipped without a device.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service_test_util.h"

/* What the callbacks saw (they all run on the one dispatcher thread). */
typedef struct seen {
    pthread_mutex_t mu;
    char            text[8192];
    size_t          len;
    int             n_tokens, n_done;
    vki_status      done_status;
    vki_status      wait_in_cb; /* vki_job_wait from inside on_done */
    vki_job        *self;
    int             stop_after; /* on_token returns false after this many; 0 = never */
    int             order[16], n_order, tag;
    struct seen    *log;        /* where the done order is written */
} seen;

static bool on_token(const char *text, void *user)
{
    seen *s = user;
    pthread_mutex_lock(&s->mu);
    size_t n = strlen(text);
    if (s->len + n < sizeof s->text) {
        memcpy(s->text + s->len, text, n);
        s->len += n;
        s->text[s->len] = '\0';
    }
    s->n_tokens++;
    bool go_on = !s->stop_after || s->n_tokens < s->stop_after;
    pthread_mutex_unlock(&s->mu);
    return go_on;
}

static void on_done(const vki_job_result *r, void *user)
{
    seen *s = user;
    pthread_mutex_lock(&s->mu);
    s->n_done++;
    s->done_status = r->status;
    if (s->self) s->wait_in_cb = vki_job_wait(s->self, 0);
    pthread_mutex_unlock(&s->mu);
    if (s->log) {
        pthread_mutex_lock(&s->log->mu);
        s->log->order[s->log->n_order++] = s->tag;
        pthread_mutex_unlock(&s->log->mu);
    }
}

static int n_states, n_resident;
static void on_state(const vki_service_model_info *info, void *user)
{
    (void)user;
    n_states++;
    if (info->state == VKI_MODEL_RESIDENT_CPU || info->state == VKI_MODEL_RESIDENT_GPU) n_resident++;
}

static void test_bad_arguments(vki_service *svc)
{
    vki_job *j = (vki_job *)1;
    CHECK(vki_service_create(NULL, NULL) == VKI_ERR_INVALID_ARGUMENT);
    vki_service_model_params mp = vki_service_model_default_params();
    mp.path = "x.gguf";
    CHECK(vki_service_add_model(svc, &mp) == VKI_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(vki_last_error(), "no id"), "%s", vki_last_error());
    mp.id = "chat";
    CHECK(vki_service_add_model(svc, &mp) == VKI_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(vki_last_error(), "used twice"), "%s", vki_last_error());
    CHECK(vki_service_generate(svc, "chat", NULL, NULL, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(j == NULL);
    CHECK(vki_service_generate(svc, "nope", "hi", NULL, NULL, &j) == VKI_ERR_NOT_FOUND);
    CHECKF(strstr(vki_last_error(), "'nope'"), "%s", vki_last_error());
    CHECK(vki_service_embed(svc, "chat", (const char *[]){"x"}, 1, NULL, &j) == VKI_ERR_UNSUPPORTED);
    CHECKF(strstr(vki_last_error(), "chat model"), "%s", vki_last_error());
    CHECK(vki_service_embed(svc, "emb", (const char *[]){"x"}, 0, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    vki_request_params rp = vki_request_default_params();
    rp.priority = (vki_priority)7;
    CHECK(vki_service_generate(svc, NULL, "hi", NULL, &rp, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(vki_last_error(), "priority 7"), "%s", vki_last_error());
    rp = vki_request_default_params();
    rp.deadline_ms = -5;
    CHECK(vki_service_generate(svc, NULL, "hi", NULL, &rp, &j) == VKI_ERR_INVALID_ARGUMENT);
    /* A request the model itself refuses comes back at submit, not in a job. */
    vki_generate_params gp = greedy(4);
    gp.grammar = "root ::= (";
    CHECK(vki_service_generate(svc, "chat", "hi", &gp, NULL, &j) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(j == NULL);
    CHECK(vki_job_wait(NULL, 0) == VKI_ERR_INVALID_ARGUMENT);
    vki_service_model_info info;
    CHECK(vki_service_get_model_info(svc, 99, &info) == VKI_ERR_NOT_FOUND);
    CHECK(vki_service_get_model_info(NULL, 0, &info) == VKI_ERR_INVALID_ARGUMENT);
    vki_job_cancel(NULL);
    vki_job_release(NULL);
    vki_service_destroy(NULL);
}

static void test_callbacks(vki_service *svc)
{
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    vki_request_params rp = vki_request_default_params();
    rp.on_token = on_token;
    rp.on_done = on_done;
    rp.user = &s;
    vki_generate_params gp = greedy(12);
    vki_job *j = NULL;
    CHECK(vki_service_generate(svc, "chat", "Once upon a time", &gp, &rp, &j) == VKI_OK);
    s.self = j;
    vki_job_result r = finish(j);
    CHECKF(r.status == VKI_OK, "%s", r.message);
    CHECK(r.n_generated == 12);
    CHECK(s.n_done == 1 && s.done_status == VKI_OK);
    CHECKF(s.len == r.text_len && !memcmp(s.text, r.text, r.text_len), "streamed '%s' vs '%s'", s.text, r.text);
    CHECK(s.n_tokens >= 1);
    CHECK(!strcmp(r.model, "chat") && !strcmp(r.requested, "chat") && r.fallback == VKI_FALLBACK_NONE);
    /* Not from a callback: the dispatcher would wait for itself. */
    CHECK(s.wait_in_cb == VKI_ERR_INVALID_ARGUMENT);
    vki_job_release(j);
}

static void test_priorities(vki_service *svc)
{
    /* The model serves one sequence at a time: the first job runs (long,
     * then cancelled), the rest queue; the interactive one, submitted last,
     * goes first. */
    seen log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    seen s[4];
    vki_job *j[4];
    const vki_priority prio[4] = {VKI_PRIORITY_BATCH, VKI_PRIORITY_BATCH, VKI_PRIORITY_BATCH,
                                  VKI_PRIORITY_INTERACTIVE};
    vki_generate_params gp = greedy(24), gp_long = greedy(100000);
    for (int k = 0; k < 4; k++) {
        s[k] = (seen){.mu = PTHREAD_MUTEX_INITIALIZER, .tag = k, .log = &log};
        vki_request_params rp = vki_request_default_params();
        rp.priority = prio[k];
        rp.on_done = on_done;
        rp.user = &s[k];
        CHECK(vki_service_generate(svc, "chat", "The cat", k ? &gp : &gp_long, &rp, &j[k]) == VKI_OK);
        if (k == 0) {
            /* Let it start before the others queue behind it. */
            for (int t = 0; t < 500; t++) {
                vki_job_result r;
                vki_job_get_result(j[0], &r);
                if (r.n_generated > 0 || r.done) break;
                usleep(10000);
            }
        }
    }
    vki_job_result r3;
    vki_job_get_result(j[3], &r3);
    CHECKF(r3.queue_position == 0, "the interactive job had %d ahead", r3.queue_position);
    vki_job_cancel(j[0]);
    for (int k = 0; k < 4; k++) {
        vki_job_result r = finish(j[k]);
        CHECKF(r.status == (k ? VKI_OK : VKI_ERR_CANCELLED), "%d: %s %s", k, vki_status_str(r.status), r.message);
        vki_job_release(j[k]);
    }
    CHECK(log.n_order == 4);
    CHECKF(log.order[1] == 3, "done order %d %d %d %d", log.order[0], log.order[1], log.order[2], log.order[3]);
}

static void test_cancel_and_deadline(vki_service *svc)
{
    /* By call, once it produces. */
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    vki_request_params rp = vki_request_default_params();
    rp.on_token = on_token;
    rp.on_done = on_done;
    rp.user = &s;
    vki_generate_params gp = greedy(4000);
    vki_job *j = NULL;
    CHECK(vki_service_generate(svc, "chat", "Long", &gp, &rp, &j) == VKI_OK);
    for (int t = 0; t < 1000 && !s.n_tokens; t++) usleep(5000);
    vki_job_cancel(j);
    vki_job_result r = finish(j);
    CHECKF(r.status == VKI_ERR_CANCELLED, "%s", vki_status_str(r.status));
    CHECK(r.n_generated < 4000 && s.n_done == 1);
    vki_job_release(j);

    /* By on_token returning false. */
    seen s2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .stop_after = 3};
    rp.user = &s2;
    CHECK(vki_service_generate(svc, "chat", "Long", &gp, &rp, &j) == VKI_OK);
    r = finish(j);
    CHECK(r.status == VKI_ERR_CANCELLED);
    CHECK(s2.n_tokens >= 3 && r.n_generated < 4000);
    vki_job_release(j);

    /* A deadline: the job behind a long one times out in the queue. */
    vki_job *busy = NULL, *late = NULL;
    CHECK(vki_service_generate(svc, "chat", "Long", &gp, NULL, &busy) == VKI_OK);
    rp = vki_request_default_params();
    rp.deadline_ms = 50;
    rp.allow_fallback = false;
    vki_generate_params gp2 = greedy(8);
    CHECK(vki_service_generate(svc, "chat", "Short", &gp2, &rp, &late) == VKI_OK);
    r = finish(late);
    CHECKF(r.status == VKI_ERR_TIMEOUT, "%s: %s", vki_status_str(r.status), r.message);
    vki_job_release(late);
    /* Released while running: cancelled, and destroy does not wait for it. */
    vki_job_release(busy);

    /* After release no callback comes: what `user` points to may go (ASan
     * would see a late call). */
    seen *heap = calloc(1, sizeof *heap);
    pthread_mutex_init(&heap->mu, NULL);
    rp = vki_request_default_params();
    rp.on_token = on_token;
    rp.on_done = on_done;
    rp.user = heap;
    CHECK(vki_service_generate(svc, "chat", "Long", &gp, &rp, &j) == VKI_OK);
    for (int t = 0; t < 1000; t++) {
        pthread_mutex_lock(&heap->mu);
        int n = heap->n_tokens;
        pthread_mutex_unlock(&heap->mu);
        if (n) break;
        usleep(5000);
    }
    vki_job_release(j);
    CHECK(heap->n_done == 0);
    pthread_mutex_destroy(&heap->mu);
    free(heap);
}

static void test_fallback(vki_service *svc)
{
    vki_job *j = NULL;
    vki_generate_params gp = greedy(6);
    CHECK(vki_service_generate(svc, "gone", "Hello", &gp, NULL, &j) == VKI_OK);
    vki_job_result r = finish(j);
    CHECKF(r.status == VKI_OK, "%s", r.message);
    CHECK(!strcmp(r.requested, "gone") && !strcmp(r.model, "chat"));
    CHECKF(r.fallback == VKI_FALLBACK_MISSING, "%s", vki_fallback_reason_name(r.fallback));
    CHECK(r.n_generated == 6);
    vki_job_release(j);

    vki_request_params rp = vki_request_default_params();
    rp.allow_fallback = false;
    CHECK(vki_service_generate(svc, "gone", "Hello", &gp, &rp, &j) == VKI_OK);
    r = finish(j);
    CHECKF(r.status == VKI_ERR_NOT_FOUND, "%s", vki_status_str(r.status));
    CHECKF(strstr(r.message, "'gone' failed to load"), "%s", r.message);
    CHECK(!strcmp(r.model, "gone"));
    vki_job_release(j);

    const int32_t gone = vki_service_model_find(svc, "gone"), chat = vki_service_model_find(svc, "chat");
    CHECK(vki_service_fallback_count(svc, gone, chat, VKI_FALLBACK_MISSING) == 1);
    vki_service_model_stats st;
    CHECK(vki_service_get_model_stats(svc, gone, &st) == VKI_OK);
    CHECK(st.fallbacks_out[VKI_FALLBACK_MISSING] == 1);
    CHECK(vki_service_get_model_stats(svc, chat, &st) == VKI_OK);
    CHECK(st.fallbacks_in == 1);
}

static void test_embed(vki_service *svc)
{
    vki_job *j = NULL;
    const char *texts[] = {"a red apple", "the stock market"};
    vki_request_params rp = vki_request_default_params();
    rp.priority = VKI_PRIORITY_INTERACTIVE;
    CHECK(vki_service_embed(svc, NULL, texts, 2, &rp, &j) == VKI_OK);
    vki_job_result r = finish(j);
    CHECKF(r.status == VKI_OK, "%s", r.message);
    CHECK(r.n_texts == 2 && r.dim > 0 && r.embeddings && !r.text);
    if (r.embeddings) {
        double n2 = 0;
        for (int32_t k = 0; k < r.dim; k++) n2 += (double)r.embeddings[k] * r.embeddings[k];
        CHECKF(fabs(n2 - 1) < 1e-3, "|e|^2 = %f", n2);
    }
    CHECK(!strcmp(r.model, "emb"));
    vki_job_release(j);
}

static void test_states(vki_service *svc, bool vulkan)
{
    CHECK(vki_service_model_count(svc) == 3);
    const int32_t chat = vki_service_model_find(svc, "chat"), gone = vki_service_model_find(svc, "gone");
    CHECK(vki_service_model_find(svc, "nope") == -1);
    vki_service_model_info info;
    CHECK(vki_service_get_model_info(svc, chat, &info) == VKI_OK);
    CHECK(info.kind == VKI_MODEL_KIND_CHAT);
    CHECKF(info.state == (vulkan ? VKI_MODEL_RESIDENT_GPU : VKI_MODEL_RESIDENT_CPU), "%s",
           vki_model_state_name(info.state));
    CHECK(info.backend[0] && info.bytes > 0 && info.n_ctx > 0);
    CHECK(info.breaker == VKI_BREAKER_CLOSED);
    CHECK(vki_service_get_model_info(svc, gone, &info) == VKI_OK);
    CHECK(info.state == VKI_MODEL_FAILED && strstr(info.message, "gone.gguf"));
    vki_service_model_stats st;
    CHECK(vki_service_get_model_stats(svc, chat, &st) == VKI_OK);
    CHECKF(st.finished_ok >= 5 && st.cancelled >= 4 && st.timed_out >= 1, "ok %llu cancelled %llu timed out %llu",
           (unsigned long long)st.finished_ok, (unsigned long long)st.cancelled, (unsigned long long)st.timed_out);
    CHECK(st.generated_tokens > 0 && st.loads == 1);
    CHECK(n_states > 0 && n_resident >= 2);
}

int main(int argc, char **argv)
{
    svc_models_arg(argc, argv, "test_service", " [--vulkan]");
    const bool vulkan = argc > 3 && !strcmp(argv[3], "--vulkan");
    vki_service_params sp = vki_service_default_params();
    sp.on_state = on_state;
    sp.engine.n_threads = 2;
    vki_service *svc = NULL;
    CHECK(vki_service_create(&sp, &svc) == VKI_OK);
    svc_add_test_models(svc, argv[1], argv[2], vulkan ? VKI_BACKEND_VULKAN : VKI_BACKEND_CPU, 1, true);
    vki_service_wait_loaded(svc, 60000);
    vki_service_model_info info;
    vki_service_get_model_info(svc, 0, &info);
    if (vulkan && info.state == VKI_MODEL_FAILED) {
        vki_service_destroy(svc);
        test_skip("no Vulkan device: %s", info.message);
    }
    test_bad_arguments(svc);
    test_callbacks(svc);
    test_priorities(svc);
    test_cancel_and_deadline(svc);
    test_fallback(svc);
    test_embed(svc);
    test_states(svc, vulkan);
    vki_service_destroy(svc);
    return test_finish(vulkan ? "test_service_vulkan" : "test_service");
}
