/*
 * test_service_route.c: `model: "auto"` through vkinfer.h's routing calls
 * (engine/service/service_route.c) on generated models: two chat models
 * (one file under two ids) and a BERT embedding model as the router model.
 * Routes: assistant (tools and JSON; examples), stories (examples), search
 * (embeddings, by need). Checks the routes' checks, the examples embedded
 * by the service once the router model is resident, decisions by need,
 * load and meaning (a query that is one of a route's examples embeds to
 * the same vector: cosine 1), the decision's job and its on_done, the
 * counters per route, and the errors.
 * argv: CHAT.gguf EMBED.gguf
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "service_test_util.h"

enum { STORY, TOOL, EMBED };

typedef struct heard {
    pthread_mutex_t mu;
    int             n_examples_ok, n_examples_failed, examples_dim, n_done;
} heard;

static void on_examples(const vki_route_examples_event *ev, void *user)
{
    heard *h = user;
    pthread_mutex_lock(&h->mu);
    if (ev->ok) {
        h->n_examples_ok++;
        h->examples_dim = ev->dim;
        CHECK(ev->n_examples == 4 && !strcmp(ev->model, "embed"));
    } else {
        h->n_examples_failed++;
        fprintf(stderr, "examples failed: %s\n", ev->message);
    }
    pthread_mutex_unlock(&h->mu);
}

static void on_done(const vki_job_result *res, void *user)
{
    heard *h = user;
    pthread_mutex_lock(&h->mu);
    h->n_done++;
    pthread_mutex_unlock(&h->mu);
}

static int count_of(heard *h, const int *field)
{
    pthread_mutex_lock(&h->mu);
    int v = *field;
    pthread_mutex_unlock(&h->mu);
    return v;
}

static const char *const assistant_models[] = {"tool", "story"}, *const story_models[] = {"story"},
                         *const search_models[] = {"embed"};
static const char *const assistant_ex[] = {"call the weather tool for Paris", "return the order as JSON"};
static const char *const story_ex[] = {"tell me a bedtime story about a cat", "once upon a time there was a dragon"};

static vki_router_params router_params(vki_route_params *r, heard *h)
{
    r[0] = (vki_route_params){.name = "assistant", .use_case = "tools", .models = assistant_models, .n_models = 2,
                              .kind = VKI_MODEL_KIND_CHAT, .capabilities = VKI_CAP_TOOLS | VKI_CAP_JSON,
                              .examples = assistant_ex, .n_examples = 2};
    r[1] = (vki_route_params){.name = "stories", .models = story_models, .n_models = 1, .examples = story_ex,
                              .n_examples = 2, .threshold = 0.9};
    r[2] = (vki_route_params){.name = "search", .models = search_models, .n_models = 1};
    vki_router_params p = vki_router_default_params();
    p.routes = r;
    p.n_routes = 3;
    p.model = "embed";
    p.on_examples = on_examples;
    p.on_examples_user = h;
    return p;
}

/* Every way vki_service_set_router refuses, each with its message. */
static void bad_routers(vki_service *svc, heard *h)
{
    vki_route_params r[3];
    vki_router_params p = router_params(r, h);
    CHECK(vki_service_set_router(NULL, &p) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(vki_service_set_router(svc, NULL) == VKI_ERR_INVALID_ARGUMENT);
    const char *const unknown[] = {"nope"};
    r[1].models = unknown;
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_NOT_FOUND && strstr(vki_last_error(), "'nope'"));
    r[1].models = story_models;
    r[2].models = story_models; /* a chat model on an embedding route */
    r[2].kind = VKI_MODEL_KIND_EMBEDDING;
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "serves embedding"));
    r[2] = (vki_route_params){.name = "search", .models = search_models, .n_models = 1};
    const char *const twice[] = {"story", "story"};
    r[1].models = twice;
    r[1].n_models = 2;
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "twice"));
    r[1].models = story_models;
    r[1].n_models = 1;
    r[1].threshold = 2;
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "threshold"));
    r[1].threshold = 0.9;
    p.model = NULL;
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "no router model"));
    p.model = "story";
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "chat model"));
    p.model = "embed";
    r[1].name = "assistant";
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "twice"));
    CHECK(vki_service_route_count(svc) == 0 && !vki_service_router_model(svc));
    vki_route_request rq = {.kind = VKI_MODEL_KIND_CHAT};
    vki_route_decision d;
    vki_job *job = NULL;
    CHECK(vki_service_route(svc, &rq, NULL, &d, &job) == VKI_ERR_INVALID_ARGUMENT && !job);
}

static vki_route_decision route_now(vki_service *svc, vki_model_kind kind, uint32_t caps, const char *query)
{
    vki_route_request rq = {.kind = kind, .capabilities = caps};
    vki_route_decision d;
    vki_job *job = NULL;
    CHECKF(vki_service_route(svc, &rq, query, &d, &job) == VKI_OK, "%s", vki_last_error());
    CHECK(!job); /* meaning cannot decide these: decided at once */
    return d;
}

int main(int argc, char **argv)
{
    svc_models_arg(argc, argv, "test_service_route", "");
    vki_service *svc = NULL;
    CHECK(vki_service_create(NULL, &svc) == VKI_OK);
    const char *ids[] = {"story", "tool", "embed"};
    for (int k = 0; k < 3; k++) {
        vki_service_model_params mp = vki_service_model_default_params();
        mp.id = ids[k];
        mp.path = argv[k == EMBED ? 2 : 1];
        mp.model.backend = VKI_BACKEND_CPU;
        mp.model.n_ctx = 256;
        mp.quality = k == TOOL ? 0.9 : 0.5;
        if (k == TOOL) mp.capabilities = VKI_CAP_TOOLS | VKI_CAP_JSON;
        CHECKF(vki_service_add_model(svc, &mp) == VKI_OK, "%s", vki_last_error());
    }
    vki_service_model_params bad = vki_service_model_default_params();
    bad.id = "bad";
    bad.path = argv[1];
    bad.quality = 1.5;
    CHECK(vki_service_add_model(svc, &bad) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "quality"));

    heard h = {.mu = PTHREAD_MUTEX_INITIALIZER};
    bad_routers(svc, &h);
    vki_route_params r[3];
    vki_router_params p = router_params(r, &h);
    CHECKF(vki_service_set_router(svc, &p) == VKI_OK, "%s", vki_last_error());
    CHECK(vki_service_set_router(svc, &p) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "already"));
    CHECK(vki_service_route_count(svc) == 3 && !strcmp(vki_service_router_model(svc), "embed"));

    /* The service embeds the examples itself once the router model is resident. */
    CHECK(vki_service_wait_loaded(svc, 60000));
    for (int k = 0; k < 600 && !count_of(&h, &h.n_examples_ok); k++) usleep(50 * 1000);
    CHECKF(count_of(&h, &h.n_examples_ok) == 1 && count_of(&h, &h.n_examples_failed) == 0 && h.examples_dim > 0,
           "examples embedded: %d ok, %d failed", h.n_examples_ok, h.n_examples_failed);

    vki_route_info ri;
    CHECK(vki_service_get_route_info(svc, 1, &ri) == VKI_OK && !strcmp(ri.name, "stories") && ri.n_models == 1 &&
          ri.models[0] == STORY && ri.kind == VKI_MODEL_KIND_CHAT && ri.n_examples == 2 && ri.threshold == 0.9);
    CHECK(vki_service_get_route_info(svc, 0, &ri) == VKI_OK && ri.threshold == 0.5 && !strcmp(ri.use_case, "tools") &&
          ri.capabilities == (VKI_CAP_TOOLS | VKI_CAP_JSON) && ri.models[0] == TOOL && ri.models[1] == STORY);
    CHECK(vki_service_get_route_info(svc, 2, &ri) == VKI_OK && ri.kind == VKI_MODEL_KIND_EMBEDDING);
    CHECK(vki_service_get_route_info(svc, 3, &ri) == VKI_ERR_NOT_FOUND);
    CHECK(vki_service_get_route_info(svc, -2, &ri) == VKI_ERR_NOT_FOUND);

    /* By need: one route serves embeddings, one serves tools. */
    vki_route_decision d = route_now(svc, VKI_MODEL_KIND_EMBEDDING, 0, "find me documents");
    CHECK(d.route == 2 && !strcmp(d.route_name, "search") && d.by == VKI_ROUTE_BY_NEED && d.n_order == 1 &&
          d.order[0] == EMBED && !d.embedded);
    d = route_now(svc, VKI_MODEL_KIND_CHAT, VKI_CAP_TOOLS, "tell me a bedtime story about a cat");
    CHECK(d.route == 0 && d.by == VKI_ROUTE_BY_NEED && d.n_order == 2 && d.order[0] == TOOL && d.score == 0);
    /* Without a query, two chat routes: the least loaded (both resident and
     * idle: the better quality, then the configuration's order). */
    d = route_now(svc, VKI_MODEL_KIND_CHAT, 0, NULL);
    CHECKF(d.by == VKI_ROUTE_BY_LOAD && d.route == 0 && d.order[0] == TOOL && !d.note[0], "route %d by %s", d.route,
           vki_route_by_name(d.by));

    /* By meaning: the query is one of stories' examples. */
    vki_route_request rq = {.kind = VKI_MODEL_KIND_CHAT, .on_done = on_done, .user = &h};
    vki_job *job = NULL;
    CHECK(vki_service_route(svc, &rq, "tell me a bedtime story about a cat", &d, &job) == VKI_OK && job);
    vki_route_decision w;
    const vki_status early = vki_job_get_route(job, &w);
    CHECK(early == VKI_OK || early == VKI_ERR_TIMEOUT);
    vki_job_result res = finish(job);
    CHECKF(res.status == VKI_OK && res.n_texts == 1 && !strcmp(res.model, "embed"), "%s", res.message);
    CHECK(count_of(&h, &h.n_done) == 1);
    CHECKF(vki_job_get_route(job, &w) == VKI_OK, "%s", vki_last_error());
    CHECKF(w.route == 1 && !strcmp(w.route_name, "stories") && w.by == VKI_ROUTE_BY_MEANING && w.embedded &&
           w.score > 0.999 && w.n_order == 1 && w.order[0] == STORY && !w.note[0],
           "route %s by %s score %.3f note '%s'", w.route_name, vki_route_by_name(w.by), w.score, w.note);
    vki_job_release(job);

    /* A query near no example (below stories' 0.9, maybe above assistant's
     * 0.5): meaning or load decides, never a route that cannot serve it. */
    job = NULL;
    CHECK(vki_service_route(svc, &rq, "zq xv", &d, &job) == VKI_OK && job);
    finish(job);
    CHECK(vki_job_get_route(job, &w) == VKI_OK && w.embedded && (w.route == 0 || w.route == 1) &&
          (w.by == VKI_ROUTE_BY_MEANING || w.by == VKI_ROUTE_BY_LOAD));
    const int zq_route = w.route, zq_by = w.by;
    vki_job_release(job);

    /* A job released before its decision: no on_done after the release. */
    const int done_before = count_of(&h, &h.n_done);
    job = NULL;
    CHECK(vki_service_route(svc, &rq, "once upon a time there was a dragon", &d, &job) == VKI_OK && job);
    vki_job_release(job);
    usleep(200 * 1000);
    CHECK(count_of(&h, &h.n_done) == done_before);

    /* A reload of the router model's file changes what its vectors mean:
     * the service embeds the examples again once the new file serves. */
    CHECKF(vki_service_reload_model(svc, EMBED, argv[2]) == VKI_OK, "%s", vki_last_error());
    for (int k = 0; k < 600 && count_of(&h, &h.n_examples_ok) < 2; k++) usleep(50 * 1000);
    CHECKF(count_of(&h, &h.n_examples_ok) == 2, "examples embedded %d times", count_of(&h, &h.n_examples_ok));

    /* The counters: one decision each above (the released one may or may not have been made). */
    CHECK(vki_service_get_route_info(svc, 2, &ri) == VKI_OK && ri.decisions[VKI_ROUTE_BY_NEED] == 1 &&
          ri.decisions[VKI_ROUTE_BY_MEANING] == 0);
    CHECK(vki_service_get_route_info(svc, 1, &ri) == VKI_OK && ri.decisions[VKI_ROUTE_BY_MEANING] >= 1 &&
          ri.decisions[VKI_ROUTE_BY_MEANING] <= (uint64_t)(2 + (zq_route == 1 && zq_by == VKI_ROUTE_BY_MEANING)));
    CHECK(vki_service_get_route_info(svc, 0, &ri) == VKI_OK && ri.decisions[VKI_ROUTE_BY_NEED] == 1 &&
          ri.decisions[VKI_ROUTE_BY_LOAD] >= 1);
    CHECK(vki_service_get_route_info(svc, -1, &ri) == VKI_OK && !strcmp(ri.name, "-") && ri.decisions[0] == 0 &&
          ri.decisions[1] == 0 && ri.decisions[2] == 0);

    /* Errors: no model has the context; bad arguments; not a route's job. */
    rq = (vki_route_request){.kind = VKI_MODEL_KIND_CHAT, .n_tokens = 1 << 20};
    CHECK(vki_service_route(svc, &rq, "hello", &d, &job) == VKI_ERR_NOT_FOUND && !job &&
          strstr(vki_last_error(), "in the context it needs"));
    rq.kind = VKI_MODEL_KIND_AUTO;
    CHECK(vki_service_route(svc, &rq, "hello", &d, &job) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(vki_service_route(svc, NULL, "hello", &d, &job) == VKI_ERR_INVALID_ARGUMENT);
    const char *text = "x";
    CHECK(vki_service_embed(svc, "embed", &text, 1, NULL, &job) == VKI_OK);
    finish(job);
    CHECK(vki_job_get_route(job, &w) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "not a job"));
    vki_job_release(job);
    CHECK(vki_job_get_route(NULL, &w) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(!strcmp(vki_route_by_name(VKI_ROUTE_BY_MEANING), "meaning") && !strcmp(vki_route_by_name(VKI_ROUTE_BY_LOAD), "load") &&
          !strcmp(vki_route_by_name((vki_route_by)7), "?"));

    vki_service_destroy(svc);
    return test_finish("test_service_route");
}
