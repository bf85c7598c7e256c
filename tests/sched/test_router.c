/*
 * test_router.c: the `auto` decision (engine/sched/router.c) on hand-made
 * snapshots, no models: routes by need (kind, tools, json, context), by
 * meaning (nearest example above the threshold, per-route thresholds), by
 * load (the route whose best model is least loaded; config order on a tie);
 * within a route the primary first unless it cannot serve or load says
 * otherwise; no route matching: the registry; the examples' version; bad
 * routes refused. Then on a live scheduler (the generated default model):
 * the snapshot (state, caps of a model that declares none, context) and the
 * version changing when the model's file is reloaded.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "engine/sched/router.h"
#include "error.h"
#include "util.h"
#include "sched_test_util.h"
#include "test_util.h"

enum { STORY, TOOL, BIG, EMBED, N_MODELS };

static sched_route_model models[N_MODELS];

static void reset_models(void)
{
    const uint32_t all = SCHED_CAP_CHAT | SCHED_CAP_TOOLS | SCHED_CAP_JSON;
    models[STORY] = (sched_route_model){SCHED_KIND_CHAT, SCHED_CAP_CHAT, 512, true, true, 0, 0, 0.5};
    models[TOOL] = (sched_route_model){SCHED_KIND_CHAT, all, 4096, true, false, 0, 800, 0.5};
    models[BIG] = (sched_route_model){SCHED_KIND_CHAT, all, 32768, true, false, 0, 5000, 0.9};
    models[EMBED] = (sched_route_model){SCHED_KIND_EMBEDDING, SCHED_CAP_EMBEDDING, 512, true, true, 0, 0, 0};
}

/* 2-D unit vectors: examples along angles, queries near them. */
static void at(float *v, double deg)
{
    v[0] = (float)cos(deg * M_PI / 180);
    v[1] = (float)sin(deg * M_PI / 180);
}

static sched_router *make(double router_thr)
{
    static const int32_t m_assist[] = {TOOL, BIG}, m_story[] = {STORY, BIG}, m_embed[] = {EMBED};
    static const char *const ex_assist[] = {"call a function", "answer in JSON"};
    static const char *const ex_story[] = {"tell a story"};
    sched_route_params rp[3] = {
        {.name = "assistant", .models = m_assist, .n_models = 2, .kind = SCHED_KIND_CHAT,
         .caps = SCHED_CAP_TOOLS | SCHED_CAP_JSON, .examples = ex_assist, .n_examples = 2},
        {.name = "stories", .models = m_story, .n_models = 2, .kind = SCHED_KIND_CHAT, .examples = ex_story,
         .n_examples = 1, .threshold = 0.95},
        {.name = "search", .models = m_embed, .n_models = 1, .kind = SCHED_KIND_EMBEDDING},
    };
    sched_router_params p = {.threshold = router_thr};
    sched_router *r = NULL;
    CHECK(sched_router_create(&p, rp, 3, &r) == VKI_OK);
    CHECK(sched_router_n_examples(r) == 3 && !strcmp(sched_router_example(r, 2), "tell a story"));
    float emb[3][2];
    at(emb[0], 0);   /* assistant */
    at(emb[1], 90);  /* assistant */
    at(emb[2], 180); /* stories   */
    CHECK(!sched_router_examples_ready(r, 7));
    CHECK(sched_router_set_examples(r, &emb[0][0], 3, 2, 7) == VKI_OK);
    CHECK(sched_router_examples_ready(r, 7) && !sched_router_examples_ready(r, 8));
    CHECK(sched_router_set_examples(r, &emb[0][0], 2, 2, 7) == VKI_ERR_INVALID_ARGUMENT);
    return r;
}

static sched_route_decision decide(sched_router *r, sched_kind kind, uint32_t caps, int32_t n_tokens, const float *q)
{
    sched_route_request req = {.kind = kind, .caps = caps, .n_tokens = n_tokens};
    sched_route_decision d;
    vki_status st = sched_router_decide(r, &req, models, N_MODELS, q, 2, &d);
    CHECKF(st == VKI_OK, "%s", vki_last_error());
    return d;
}

static void test_need(sched_router *r)
{
    reset_models();
    sched_route_decision d = decide(r, SCHED_KIND_EMBEDDING, 0, 0, NULL);
    CHECK(d.route == 2 && d.by == SCHED_ROUTE_BY_NEED && d.n_order == 1 && d.order[0] == EMBED && !d.want_query);
    /* tools: only assistant declares them; both its models have them; TOOL is the primary */
    d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_TOOLS, 0, NULL);
    CHECK(d.route == 0 && d.by == SCHED_ROUTE_BY_NEED && d.n_order == 2 && d.order[0] == TOOL && d.order[1] == BIG);
    CHECK(!d.want_query && d.score == 0);
    /* a plain request: two routes serve it, and examples could tell them apart */
    d = decide(r, SCHED_KIND_CHAT, 0, 0, NULL);
    CHECK(d.want_query && d.by == SCHED_ROUTE_BY_LOAD);
    /* JSON and 8000 tokens: assistant (stories has no json), where TOOL's 4096 are too few */
    d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_JSON, 8000, NULL);
    CHECK(d.route == 0 && d.n_order == 1 && d.order[0] == BIG);
    /* nothing has 64k of context */
    sched_route_request req = {.kind = SCHED_KIND_CHAT, .n_tokens = 65536};
    CHECK(sched_router_decide(r, &req, models, N_MODELS, NULL, 0, &d) == VKI_ERR_NOT_FOUND);
    CHECK(strstr(vki_last_error(), "no configured model serves chat in the context"));
}

static void test_meaning(sched_router *r)
{
    reset_models();
    float q[2];
    at(q, 10); /* cos 10 deg = 0.985 to "call a function" */
    sched_route_decision d = decide(r, SCHED_KIND_CHAT, 0, 0, q);
    CHECK(d.route == 0 && d.by == SCHED_ROUTE_BY_MEANING && fabs(d.score - cos(10 * M_PI / 180)) < 1e-6);
    /* neither of assistant's models is resident: the cheaper load (the primary) first */
    CHECK(d.n_order == 2 && d.order[0] == TOOL && d.order[1] == BIG);
    at(q, 170); /* 0.985 to "tell a story", at least its own 0.95 */
    d = decide(r, SCHED_KIND_CHAT, 0, 0, q);
    CHECK(d.route == 1 && d.by == SCHED_ROUTE_BY_MEANING && d.order[0] == STORY);
    at(q, 140); /* stories 0.766, under its own 0.95; assistant 0.643, over the router's 0.5 */
    d = decide(r, SCHED_KIND_CHAT, 0, 0, q);
    CHECK(d.route == 0 && d.by == SCHED_ROUTE_BY_MEANING && fabs(d.score - cos(50 * M_PI / 180)) < 1e-6);
    /* tools asked: meaning cannot send it to stories */
    at(q, 180);
    d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_TOOLS, 0, q);
    CHECK(d.route == 0 && d.by == SCHED_ROUTE_BY_NEED);
    /* a query of another width */
    sched_route_request req = {.kind = SCHED_KIND_CHAT};
    CHECK(sched_router_decide(r, &req, models, N_MODELS, q, 3, &d) == VKI_ERR_INVALID_ARGUMENT);
}

static void test_load(void)
{
    sched_router *r = make(0.99); /* nothing routes by meaning at 0.99 but stories' own 0.95 */
    float q[2];
    at(q, 45); /* 0.707 to assistant: below 0.99 */
    reset_models();
    /* STORY resident: stories wins, though assistant comes first */
    sched_route_decision d = decide(r, SCHED_KIND_CHAT, 0, 0, q);
    CHECK(d.route == 1 && d.by == SCHED_ROUTE_BY_LOAD && d.order[0] == STORY && fabs(d.score - cos(M_PI / 4)) < 1e-6);
    /* TOOL resident too: a tie on load, then quality (0.5 both), then config order: assistant */
    models[TOOL].resident = true;
    models[TOOL].load_ms = 0;
    d = decide(r, SCHED_KIND_CHAT, 0, 0, q);
    CHECK(d.route == 0 && d.by == SCHED_ROUTE_BY_LOAD && d.order[0] == TOOL);
    /* TOOL's queue 2 s deep: stories */
    models[TOOL].eta_ms = 2000;
    d = decide(r, SCHED_KIND_CHAT, 0, 0, q);
    CHECK(d.route == 1 && d.order[0] == STORY);
    /* ETAs 100 ms steps apart are noise: 30 ms vs 0 is a tie */
    models[TOOL].eta_ms = 30;
    d = decide(r, SCHED_KIND_CHAT, 0, 0, q);
    CHECK(d.route == 0);
    /* within a route: the primary first unless it cannot serve or load says otherwise */
    reset_models();
    d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_TOOLS, 0, NULL);
    CHECK(d.order[0] == TOOL && d.order[1] == BIG); /* neither resident: the cheaper load */
    models[BIG].resident = true;
    models[BIG].load_ms = 0;
    d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_TOOLS, 0, NULL);
    CHECK(d.order[0] == BIG && d.order[1] == TOOL); /* resident beats the primary */
    reset_models();
    models[TOOL].can_serve = false; /* failed, or its breaker open */
    d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_TOOLS, 0, NULL);
    CHECK(d.order[0] == BIG && d.order[1] == TOOL);
    /* quality breaks a tie of two equally loaded models */
    reset_models();
    models[TOOL].load_ms = models[BIG].load_ms = 800;
    d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_TOOLS, 0, NULL);
    CHECK(d.order[0] == BIG);
    sched_router_destroy(r);
}

static void test_no_routes(void)
{
    sched_router *r = NULL;
    CHECK(sched_router_create(NULL, NULL, 0, &r) == VKI_OK);
    reset_models();
    sched_route_decision d = decide(r, SCHED_KIND_CHAT, SCHED_CAP_TOOLS, 0, NULL);
    CHECK(d.route == -1 && d.by == SCHED_ROUTE_BY_LOAD && d.n_order == 2 && d.order[0] == TOOL);
    d = decide(r, SCHED_KIND_EMBEDDING, 0, 0, NULL);
    CHECK(d.route == -1 && d.by == SCHED_ROUTE_BY_NEED && d.order[0] == EMBED);
    sched_router_destroy(r);
}

static void test_bad(void)
{
    const int32_t m[] = {0};
    const char *const ex[] = {"x"};
    sched_router *r = NULL;
    sched_route_params a = {.name = "a", .models = m, .n_models = 1};
    sched_route_params two[2] = {a, a};
    CHECK(sched_router_create(NULL, two, 2, &r) == VKI_ERR_INVALID_ARGUMENT && !r);
    CHECK(strstr(vki_last_error(), "'a' is named twice"));
    sched_route_params b = a;
    b.n_models = 0;
    CHECK(sched_router_create(NULL, &b, 1, &r) == VKI_ERR_INVALID_ARGUMENT);
    b = a;
    b.threshold = 1.5;
    CHECK(sched_router_create(NULL, &b, 1, &r) == VKI_ERR_INVALID_ARGUMENT);
    b = a;
    b.kind = SCHED_KIND_EMBEDDING;
    b.examples = ex;
    b.n_examples = 1;
    CHECK(sched_router_create(NULL, &b, 1, &r) == VKI_ERR_INVALID_ARGUMENT);
    b = a;
    b.name = "";
    CHECK(sched_router_create(NULL, &b, 1, &r) == VKI_ERR_INVALID_ARGUMENT);
    sched_router_destroy(NULL);
}

static void test_live(const char *path)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "m", .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.mp.n_ctx = 256;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECK(sched_wait_loaded(s, 60000));
    const double quality = 0.7;
    sched_route_model m;
    sched_router_snapshot(s, &quality, &m);
    CHECKF(m.kind == SCHED_KIND_CHAT && m.caps == (SCHED_CAP_CHAT | SCHED_CAP_TOOLS | SCHED_CAP_JSON) &&
           m.n_ctx == 256 && m.can_serve && m.resident && m.load_ms == 0 && m.quality == 0.7,
           "caps %u n_ctx %d serve %d resident %d load %g", m.caps, m.n_ctx, m.can_serve, m.resident, m.load_ms);
    const uint64_t v0 = sched_router_version(s, 0);
    CHECK(v0 != 0 && sched_router_version(s, 0) == v0);
    CHECKF(sched_reload_model(s, 0, path) == VKI_OK, "%s", vki_last_error());
    sched_model_info info;
    const double t0 = vki_time_ms();
    do {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        sched_model_get_info(s, 0, &info);
    } while (info.reloading && vki_time_ms() - t0 < 60000);
    CHECK(!info.reloading && sched_router_version(s, 0) != v0); /* the examples are embedded again */
    sched_destroy(s);
}

int main(int argc, char **argv)
{
    const char *path = st_model_arg(argc, argv, "test_router");
    sched_router *r = make(0);
    test_need(r);
    test_meaning(r);
    sched_router_destroy(r);
    test_load();
    test_no_routes();
    test_bad();
    test_live(path);
    return test_finish("test_router");
}
