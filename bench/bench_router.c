/*
 * bench_router.c: the cost of a `model: "auto"` decision (engine/sched/router.c).
 * 1. The decision alone: R routes x E examples of D-wide random unit
 *    vectors, 8 models with random load, a query: sched_router_decide,
 *    N timed runs after a warmup; median and p99 in us, per shape.
 * 2. With -m EMBED_MODEL: the same on a live scheduler: the query embedded
 *    by that model (one text, interactive), the snapshot of the models and
 *    the decision, each timed apart over N queries (median and p99 in ms).
 * Results go to stdout as a markdown table, progress to stderr.
 * usage: bench_router [-n N] [-s RxExD]... [-m EMBED_MODEL.gguf] [--cpu]
 *   default shapes: 8x20x384 8x20x1024 32x50x1024
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/router.h"
#include "error.h"
#include "util.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static void unit(float *v, int32_t d)
{
    double n = 0;
    for (int32_t k = 0; k < d; k++) {
        v[k] = (float)(urand() * 2 - 1);
        n += (double)v[k] * v[k];
    }
    for (int32_t k = 0; k < d; k++) v[k] = (float)(v[k] / sqrt(n));
}

static void stats(double *t, int32_t n, double *med, double *p99)
{
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    *med = t[n / 2];
    *p99 = t[VKI_MIN(n - 1, (int32_t)ceil(n * 0.99) - 1)];
}

#define N_MODELS 8

/* Routes over N_MODELS chat models (route r: models r, r+1, r+2 mod 8),
 * every route with n_ex examples. */
static sched_router *make_router(int32_t n_routes, int32_t n_ex, int32_t dim)
{
    sched_route_params *rp = calloc((size_t)n_routes, sizeof *rp);
    int32_t *mi = calloc((size_t)n_routes * 3, sizeof *mi);
    char **names = calloc((size_t)n_routes, sizeof *names);
    const char **ex = calloc((size_t)n_routes * (size_t)n_ex, sizeof *ex);
    for (int32_t r = 0; r < n_routes; r++) {
        names[r] = malloc(32);
        snprintf(names[r], 32, "route%d", (int)r);
        for (int32_t k = 0; k < 3; k++) mi[r * 3 + k] = (r + k) % N_MODELS;
        for (int32_t k = 0; k < n_ex; k++) ex[(size_t)r * (size_t)n_ex + (size_t)k] = "an example";
        rp[r] = (sched_route_params){.name = names[r], .models = mi + r * 3, .n_models = 3,
                                     .kind = SCHED_KIND_CHAT, .caps = SCHED_CAP_TOOLS | SCHED_CAP_JSON,
                                     .examples = ex + (size_t)r * (size_t)n_ex, .n_examples = n_ex,
                                     .threshold = 0.2};
    }
    sched_router *router = NULL;
    if (sched_router_create(NULL, rp, n_routes, &router) != VKI_OK) {
        fprintf(stderr, "bench_router: %s\n", vki_last_error());
        exit(1);
    }
    const size_t n = (size_t)n_routes * (size_t)n_ex;
    float *emb = malloc(sizeof *emb * n * (size_t)dim);
    for (size_t k = 0; k < n; k++) unit(emb + k * (size_t)dim, dim);
    sched_router_set_examples(router, emb, (int32_t)n, dim, 1);
    free(emb);
    for (int32_t r = 0; r < n_routes; r++) free(names[r]);
    free(names);
    free(rp);
    free(mi);
    free((void *)ex);
    return router;
}

static void random_models(sched_route_model *m)
{
    for (int32_t i = 0; i < N_MODELS; i++)
        m[i] = (sched_route_model){.kind = SCHED_KIND_CHAT, .caps = SCHED_CAP_CHAT | SCHED_CAP_TOOLS | SCHED_CAP_JSON,
                                  .n_ctx = 4096, .can_serve = urand() > 0.1, .resident = urand() > 0.5,
                                  .eta_ms = urand() * 500, .load_ms = urand() * 2000, .quality = urand()};
}

static void bench_decide(int32_t n_routes, int32_t n_ex, int32_t dim, int32_t iters)
{
    sched_router *router = make_router(n_routes, n_ex, dim);
    float *q = malloc(sizeof *q * (size_t)dim);
    double *t = malloc(sizeof *t * (size_t)iters);
    sched_route_model m[N_MODELS];
    sched_route_request req = {.kind = SCHED_KIND_CHAT, .n_tokens = 100};
    int by[SCHED_ROUTE_N_BY] = {0};
    for (int32_t it = -iters / 10 - 1; it < iters; it++) {
        unit(q, dim);
        random_models(m);
        sched_route_decision d;
        const double t0 = vki_time_ms();
        vki_status st = sched_router_decide(router, &req, m, N_MODELS, q, dim, &d);
        const double dt = vki_time_ms() - t0;
        if (st != VKI_OK) {
            fprintf(stderr, "bench_router: %s\n", vki_last_error());
            exit(1);
        }
        if (it >= 0) {
            t[it] = dt * 1e3;
            by[d.by]++;
        }
    }
    double med, p99;
    stats(t, iters, &med, &p99);
    printf("| decide | %d x %d x %d | %d | %.1f us | %.1f us | meaning %d, load %d |\n", (int)n_routes, (int)n_ex,
           (int)dim, (int)iters, med, p99, by[SCHED_ROUTE_BY_MEANING], by[SCHED_ROUTE_BY_LOAD]);
    free(q);
    free(t);
    sched_router_destroy(router);
}

/* The query embedded on a live scheduler, then the snapshot and decision. */
static int bench_live(const char *path, bool cpu, int32_t iters)
{
    sched_params sp = sched_default_params();
    scheduler *s = NULL;
    if (sched_create(&sp, &s) != VKI_OK) return fprintf(stderr, "bench_router: %s\n", vki_last_error()), 1;
    sched_model_params mp = {.id = "embed", .path = path, .kind = SCHED_KIND_EMBEDDING,
                             .mp = vki_model_default_params()};
    if (cpu) mp.mp.backend = VKI_BACKEND_CPU;
    if (sched_add_model(s, &mp) != VKI_OK || !sched_wait_loaded(s, 120000)) {
        sched_model_info info;
        sched_model_get_info(s, 0, &info);
        fprintf(stderr, "bench_router: %s: %s\n", path, info.error[0] ? info.error : vki_last_error());
        sched_destroy(s);
        return 1;
    }
    sched_model_info info;
    sched_model_get_info(s, 0, &info);
    /* 8 routes x 20 examples embedded by the model itself, the query too */
    const int32_t n_routes = 8, n_ex = 20;
    static const char *const topics[8] = {"cooking", "football", "tax law", "python code", "travel",
                                          "medicine", "music", "astronomy"};
    char (*texts)[96] = malloc(sizeof *texts * (size_t)(n_routes * n_ex));
    const char **tp = malloc(sizeof *tp * (size_t)(n_routes * n_ex));
    for (int32_t k = 0; k < n_routes * n_ex; k++) {
        snprintf(texts[k], sizeof texts[k], "a question about %s, number %d", topics[k / n_ex], (int)(k % n_ex));
        tp[k] = texts[k];
    }
    sched_route_params rp[8];
    int32_t zero = 0;
    /* chat routes (examples route chat), all on model 0, which the
     * snapshot below presents as a chat model */
    for (int32_t r = 0; r < n_routes; r++)
        rp[r] = (sched_route_params){.name = topics[r], .models = &zero, .n_models = 1, .kind = SCHED_KIND_CHAT,
                                     .examples = tp + r * n_ex, .n_examples = n_ex, .threshold = 0.2};
    sched_router *router = NULL;
    if (sched_router_create(NULL, rp, n_routes, &router) != VKI_OK) return fprintf(stderr, "%s\n", vki_last_error()), 1;
    sched_request *req = NULL;
    double eta;
    if (sched_submit_embed(s, 0, tp, n_routes * n_ex, SCHED_PRIO_INTERACTIVE, 0, &req, &eta) != VKI_OK)
        return fprintf(stderr, "bench_router: %s\n", vki_last_error()), 1;
    sched_result res;
    char *chunk;
    size_t len;
    do {
        sched_request_poll(req, 0, -1, &chunk, &len, &res);
        free(chunk);
    } while (!res.done);
    int32_t n = 0, dim = 0;
    const float *emb = sched_request_embeddings(req, &n, &dim);
    if (!emb) return fprintf(stderr, "bench_router: examples: %s\n", res.error ? res.error : "failed"), 1;
    sched_router_set_examples(router, emb, n, dim, sched_router_version(s, 0));
    sched_request_release(req);

    double *te = malloc(sizeof *te * (size_t)iters), *ts = malloc(sizeof *ts * (size_t)iters),
           *td = malloc(sizeof *td * (size_t)iters);
    int32_t hits = 0;
    for (int32_t it = -3; it < iters; it++) {
        char q[96];
        const int32_t want = (it + 8) % n_routes;
        snprintf(q, sizeof q, "a question about %s, number %d", topics[want], (int)((it + 8) % n_ex));
        const char *qt = q;
        double t0 = vki_time_ms();
        if (sched_submit_embed(s, 0, &qt, 1, SCHED_PRIO_INTERACTIVE, 0, &req, &eta) != VKI_OK)
            return fprintf(stderr, "bench_router: %s\n", vki_last_error()), 1;
        do {
            sched_request_poll(req, 0, -1, &chunk, &len, &res);
            free(chunk);
        } while (!res.done);
        const float *qv = sched_request_embeddings(req, &n, &dim);
        double t1 = vki_time_ms();
        sched_route_model m[1];
        sched_router_snapshot(s, NULL, m);
        m[0].kind = SCHED_KIND_CHAT;
        double t2 = vki_time_ms();
        sched_route_request rq = {.kind = SCHED_KIND_CHAT};
        sched_route_decision d;
        vki_status st = sched_router_decide(router, &rq, m, 1, qv, dim, &d);
        double t3 = vki_time_ms();
        if (st != VKI_OK) return fprintf(stderr, "bench_router: %s\n", vki_last_error()), 1;
        sched_request_release(req);
        if (it < 0) continue;
        te[it] = t1 - t0;
        ts[it] = (t2 - t1) * 1e3;
        td[it] = (t3 - t2) * 1e3;
        hits += d.route == want;
    }
    double me, pe, ms, ps, md, pd;
    stats(te, iters, &me, &pe);
    stats(ts, iters, &ms, &ps);
    stats(td, iters, &md, &pd);
    printf("\nlive: %s (%s, %d wide), 8 routes x 20 examples, %d queries (each an example's text: %d routed to it)\n\n",
           path, info.backend, (int)dim, (int)iters, (int)hits);
    printf("| step | median | p99 |\n|---|---|---|\n");
    printf("| embed the query (submit to result) | %.3f ms | %.3f ms |\n", me, pe);
    printf("| snapshot of the models | %.1f us | %.1f us |\n", ms, ps);
    printf("| decide | %.1f us | %.1f us |\n", md, pd);
    free(te);
    free(ts);
    free(td);
    free(texts);
    free(tp);
    sched_router_destroy(router);
    sched_destroy(s);
    return 0;
}

int main(int argc, char **argv)
{
    int32_t iters = 2000, shapes[16][3], n_shapes = 0;
    const char *model = NULL;
    bool cpu = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--cpu")) cpu = true;
        else if (!strcmp(argv[i], "-s") && i + 1 < argc && n_shapes < 16 &&
                 sscanf(argv[++i], "%dx%dx%d", &shapes[n_shapes][0], &shapes[n_shapes][1], &shapes[n_shapes][2]) == 3 &&
                 shapes[n_shapes][0] > 0 && shapes[n_shapes][1] > 0 && shapes[n_shapes][2] > 0)
            n_shapes++;
        else {
            fprintf(stderr, "usage: bench_router [-n N] [-s ROUTESxEXAMPLESxDIMS]... [-m EMBED_MODEL.gguf] [--cpu]\n");
            return 2;
        }
    }
    if (iters < 10) iters = 10;
    if (!n_shapes) {
        const int32_t def[3][3] = {{8, 20, 384}, {8, 20, 1024}, {32, 50, 1024}};
        memcpy(shapes, def, sizeof def);
        n_shapes = 3;
    }
    printf("| what | routes x examples x dims | runs | median | p99 | decided by |\n|---|---|---|---|---|---|\n");
    for (int32_t k = 0; k < n_shapes; k++) {
        fprintf(stderr, "bench_router: %dx%dx%d\n", shapes[k][0], shapes[k][1], shapes[k][2]);
        bench_decide(shapes[k][0], shapes[k][1], shapes[k][2], iters);
    }
    return model ? bench_live(model, cpu, VKI_MIN(iters, 200)) : 0;
}
