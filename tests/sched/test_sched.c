/* test_sched.c: the scheduler (engine/sched/) on the CPU backend with the
 * generated default model: continuous batching gives each request the same
 * greedy text as running it alone; priorities order admission; a full queue
 * refuses at once with an ETA from measured service times; cancellation and
 * deadlines end requests (queued or running) with their status; shutdown
 * ends everything still in flight; failed loads say why. With ../shared, the
 * dynamically batched embeddings equal lone vki_embed results.
 * Usage: test_sched DEFAULT_MODEL.gguf */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched.h"
#include "sched_test_util.h"
#include "test_util.h"
#include "util.h"

typedef struct done_req {
    char        *text;
    sched_result res;
} done_req;

/* Waits for r to finish; collects its text. */
static done_req wait_done(sched_request *r)
{
    done_req d = {0};
    size_t have = 0;
    for (;;) {
        char *chunk;
        size_t n;
        sched_request_poll(r, have, -1, &chunk, &n, &d.res);
        if (chunk) {
            char *nt = realloc(d.text, have + n + 1);
            memcpy(nt + have, chunk, n + 1);
            d.text = nt;
            have += n;
            free(chunk);
        }
        if (d.res.done) break;
    }
    if (!d.text) d.text = calloc(1, 1);
    return d;
}

static scheduler *make_sched(const char *path, int32_t max_queue, uint32_t n_seq, uint32_t n_ctx)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    sp.max_queue = max_queue;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "m", .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.mp.n_seq_max = n_seq;
    mp.mp.n_ctx = n_ctx;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECKF(sched_wait_loaded(s, 60000), "load failed");
    return s;
}

/* Collects the text of a vki_generate run. */
typedef struct acc_t {
    char   buf[8192];
    size_t n;
} acc_t;

static bool cb(const vki_token_event *ev, void *u)
{
    acc_t *a = u;
    size_t l = strlen(ev->text);
    if (a->n + l < sizeof a->buf) {
        memcpy(a->buf + a->n, ev->text, l + 1);
        a->n += l;
    }
    return true;
}

static const char *prompts[] = {"Once upon a time", "The cat", "A", "In the beginning there was a small dog",
                                "Hello world, hello", "x y z"};
#define N_PROMPTS 6

/* Continuous batching: staggered joins, different lengths, same greedy text. */
static void test_batching_matches_alone(const char *path)
{
    /* Reference: each prompt alone through the public API. */
    vki_engine_params ep = vki_engine_default_params();
    ep.n_threads = 2;
    vki_engine *eng = NULL;
    vki_model *md = NULL;
    vki_model_params mp = vki_model_default_params();
    mp.backend = VKI_BACKEND_CPU;
    CHECK(vki_engine_create(&ep, &eng) == VKI_OK);
    CHECK(vki_model_load(eng, path, &mp, &md) == VKI_OK);
    char *ref[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        vki_generate_params gp = st_greedy(10 + 7 * i);
        acc_t a = {{0}, 0};
        CHECK(vki_generate(md, prompts[i], &gp, cb, &a, NULL) == VKI_OK);
        /* The scheduler hands out valid UTF-8 (the model emits byte tokens). */
        ref[i] = malloc(3 * a.n + 1);
        ref[i][vki_utf8_sanitize(a.buf, a.n, ref[i])] = '\0';
    }
    vki_model_destroy(md);
    vki_engine_destroy(eng);

    scheduler *s = make_sched(path, 64, 4, 0);
    sched_request *rs[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        vki_generate_params gp = st_greedy(10 + 7 * i);
        CHECK(sched_submit_generate(s, 0, prompts[i], &gp, SCHED_PRIO_NORMAL, 0, &rs[i], NULL) == VKI_OK);
        /* The later ones join while the first ones are mid-generation. */
        if (i == 2) st_wait_started(rs[0]);
    }
    for (int i = 0; i < N_PROMPTS; i++) {
        done_req d = wait_done(rs[i]);
        CHECKF(d.res.status == VKI_OK, "request %d: %s", i, d.res.error);
        CHECKF(d.res.n_generated == 10 + 7 * i, "request %d: %d tokens", i, d.res.n_generated);
        CHECKF(!strcmp(d.text, ref[i]), "request %d: batched text differs from the lone run:\n  [%s]\n  [%s]", i,
               d.text, ref[i]);
        free(d.text);
        free(ref[i]);
        sched_request_release(rs[i]);
    }
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECKF(st.step_seqs > st.steps, "no step held more than one sequence (%llu steps, %llu seqs)",
           (unsigned long long)st.steps, (unsigned long long)st.step_seqs);
    CHECK(st.finished_ok == N_PROMPTS && st.generated_tokens > 0 && st.ttft.count == N_PROMPTS);
    printf("batching: %d requests, %llu steps, %.2f sequences per step, same text as alone\n", N_PROMPTS,
           (unsigned long long)st.steps, (double)st.step_seqs / (double)st.steps);
    sched_destroy(s);
}


/* One sequence slot: a blocker runs, then four queued requests start in
 * class order (FIFO within a class). */
static void test_priorities(const char *path)
{
    scheduler *s = make_sched(path, 64, 1, 1024);
    vki_generate_params block = st_greedy(0), quick = st_greedy(2);
    sched_request *b, *r[4];
    CHECK(sched_submit_generate(s, 0, "block", &block, SCHED_PRIO_BATCH, 0, &b, NULL) == VKI_OK);
    st_wait_started(b);
    const sched_prio order[4] = {SCHED_PRIO_BATCH, SCHED_PRIO_NORMAL, SCHED_PRIO_INTERACTIVE, SCHED_PRIO_NORMAL};
    for (int i = 0; i < 4; i++)
        CHECK(sched_submit_generate(s, 0, "p", &quick, order[i], 0, &r[i], NULL) == VKI_OK);
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECK(st.queued[SCHED_PRIO_INTERACTIVE] == 1 && st.queued[SCHED_PRIO_NORMAL] == 2 &&
          st.queued[SCHED_PRIO_BATCH] == 1 && st.active == 1);
    sched_request_cancel(b);
    done_req db = wait_done(b);
    CHECKF(db.res.status == VKI_ERR_CANCELLED, "blocker: %s", vki_status_str(db.res.status));
    CHECK(db.res.n_generated > 0 && db.res.n_generated < 1024);
    free(db.text);
    uint64_t so[4];
    for (int i = 0; i < 4; i++) {
        done_req d = wait_done(r[i]);
        CHECK(d.res.status == VKI_OK);
        so[i] = d.res.start_order;
        free(d.text);
        sched_request_release(r[i]);
    }
    CHECKF(so[2] < so[1] && so[1] < so[3] && so[3] < so[0], "start order %llu %llu %llu %llu",
           (unsigned long long)so[0], (unsigned long long)so[1], (unsigned long long)so[2],
           (unsigned long long)so[3]);
    sched_request_release(b);
    sched_destroy(s);
}

/* max_queue 2: the third queued request is refused at once with an ETA. */
static void test_queue_full(const char *path)
{
    scheduler *s = make_sched(path, 2, 1, 1024);
    vki_generate_params quick = st_greedy(8), block = st_greedy(0);
    sched_request *r, *b, *q[2];
    double eta = -1;
    /* One finished request gives the service-time average something. */
    CHECK(sched_submit_generate(s, 0, "warm", &quick, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_OK);
    done_req d = wait_done(r);
    free(d.text);
    sched_request_release(r);
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECK(st.service_ema_ms > 0);
    CHECK(sched_submit_generate(s, 0, "block", &block, SCHED_PRIO_NORMAL, 0, &b, NULL) == VKI_OK);
    st_wait_started(b);
    for (int i = 0; i < 2; i++)
        CHECK(sched_submit_generate(s, 0, "q", &quick, SCHED_PRIO_BATCH, 0, &q[i], NULL) == VKI_OK);
    double t0 = vki_time_ms();
    r = NULL;
    vki_status rc = sched_submit_generate(s, 0, "over", &quick, SCHED_PRIO_INTERACTIVE, 0, &r, &eta);
    CHECKF(rc == VKI_ERR_QUEUE_FULL && r == NULL, "got %s", vki_status_str(rc));
    CHECK(vki_time_ms() - t0 < 100);
    /* three requests (2 queued + 1 running) through one slot */
    CHECKF(eta > 0 && fabs(eta - 3 * st.service_ema_ms / 1e3) < 1e-6 + 3 * st.service_ema_ms,
           "eta %g s, service %g ms", eta, st.service_ema_ms);
    CHECK(strstr(vki_last_error(), "full") != NULL);
    sched_model_get_stats(s, 0, &st);
    CHECK(st.rejected_full == 1);
    /* Nothing accepted is dropped: the queued ones run after the blocker. */
    sched_request_cancel(b);
    for (int i = 0; i < 2; i++) {
        d = wait_done(q[i]);
        CHECK(d.res.status == VKI_OK && d.res.n_generated == 8);
        free(d.text);
        sched_request_release(q[i]);
    }
    sched_request_release(b);
    printf("queue full: refused at once, eta %.3f s from a %.2f ms service average\n", eta, st.service_ema_ms);
    sched_destroy(s);
}

/* Deadlines end a running request and a queued one; cancelling a queued
 * request ends it without it ever starting. */
static void test_deadline_cancel(const char *path)
{
    scheduler *s = make_sched(path, 8, 1, 1024);
    vki_generate_params block = st_greedy(0), quick = st_greedy(4);
    sched_request *a, *q, *c;
    double now = vki_time_ms();
    CHECK(sched_submit_generate(s, 0, "a", &block, SCHED_PRIO_NORMAL, now + 30, &a, NULL) == VKI_OK);
    CHECK(sched_submit_generate(s, 0, "q", &quick, SCHED_PRIO_NORMAL, now + 10, &q, NULL) == VKI_OK);
    CHECK(sched_submit_generate(s, 0, "c", &quick, SCHED_PRIO_NORMAL, 0, &c, NULL) == VKI_OK);
    sched_request_cancel(c);
    done_req da = wait_done(a), dq = wait_done(q), dc = wait_done(c);
    CHECKF(da.res.status == VKI_ERR_TIMEOUT, "running: %s", vki_status_str(da.res.status));
    CHECK(da.res.n_generated < 1000 && vki_time_ms() - now < 5000);
    CHECKF(dq.res.status == VKI_ERR_TIMEOUT && dq.res.start_order == 0, "queued: %s, order %llu",
           vki_status_str(dq.res.status), (unsigned long long)dq.res.start_order);
    CHECKF(dc.res.status == VKI_ERR_CANCELLED && dc.res.start_order == 0 && dc.res.n_generated == 0,
           "cancelled: %s", vki_status_str(dc.res.status));
    CHECK(dq.res.error && strstr(dq.res.error, "deadline"));
    free(da.text);
    free(dq.text);
    free(dc.text);
    sched_request_release(a);
    sched_request_release(q);
    sched_request_release(c);
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECK(st.timed_out == 2 && st.cancelled == 1);
    sched_destroy(s);
}

/* Bad input, failed loads, and shutdown with requests in flight. */
static void test_errors_shutdown(const char *path)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "chat", .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.mp.n_ctx = 64;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECK(sched_add_model(s, &mp) == VKI_ERR_INVALID_ARGUMENT); /* same id */
    sched_model_params bad = mp;
    bad.id = "missing";
    bad.path = "/nonexistent/model.gguf";
    CHECK(sched_add_model(s, &bad) == VKI_OK);
    sched_model_params wrong = mp;
    wrong.id = "wrong-kind";
    wrong.kind = SCHED_KIND_EMBEDDING;
    CHECK(sched_add_model(s, &wrong) == VKI_OK);
    CHECK(!sched_wait_loaded(s, 60000));
    sched_model_info info;
    sched_model_get_info(s, sched_find(s, "missing"), &info);
    CHECKF(info.state == SCHED_FAILED && strstr(info.error, "/nonexistent/model.gguf"), "%s", info.error);
    sched_model_get_info(s, sched_find(s, "wrong-kind"), &info);
    CHECKF(info.state == SCHED_FAILED && strstr(info.error, "embedding"), "%s", info.error);
    sched_model_get_info(s, 0, &info);
    CHECK(info.state == SCHED_RESIDENT_CPU && info.n_ctx == 64 && sched_model_file(s, 0) != NULL && sched_model_tokenizer(s, 0) != NULL);
    CHECK(sched_find(s, "nope") == -1);

    sched_request *r = NULL;
    vki_generate_params gp = st_greedy(4);
    CHECK(sched_submit_generate(s, 7, "x", &gp, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_ERR_NOT_FOUND);
    CHECK(sched_submit_generate(s, 1, "x", &gp, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_ERR_UNSUPPORTED);
    const char *texts[] = {"x"};
    CHECK(sched_submit_embed(s, 0, texts, 1, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_ERR_UNSUPPORTED);
    char long_prompt[2000];
    for (int i = 0; i < 1998; i += 2) memcpy(long_prompt + i, "a ", 2);
    long_prompt[1998] = 0;
    CHECK(sched_submit_generate(s, 0, long_prompt, &gp, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vki_last_error(), "context") != NULL);
    gp.temperature = -1;
    CHECK(sched_submit_generate(s, 0, "x", &gp, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_ERR_INVALID_ARGUMENT);

    /* Shutdown with one running and two queued: all end CANCELLED, and the
     * requests stay readable after the scheduler is gone. */
    vki_generate_params block = st_greedy(0);
    sched_request *in[3];
    for (int i = 0; i < 3; i++)
        CHECK(sched_submit_generate(s, 0, "z", &block, SCHED_PRIO_NORMAL, 0, &in[i], NULL) == VKI_OK);
    st_wait_started(in[0]);
    sched_destroy(s);
    for (int i = 0; i < 3; i++) {
        done_req d = wait_done(in[i]);
        /* the first may have filled its 64-token context before the stop */
        CHECKF(d.res.status == VKI_ERR_CANCELLED || (i == 0 && d.res.status == VKI_OK), "request %d: %s", i,
               vki_status_str(d.res.status));
        free(d.text);
        sched_request_release(in[i]);
    }
}

/* Embeddings: requests submitted together share mdl_embed calls and get
 * what a lone vki_embed gives. */
static void test_embeddings(void)
{
    const char *dir = getenv("VKI_SHARED_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/synthetic-bert-mini-f32.gguf", dir && dir[0] ? dir : "../shared");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("embeddings: skipped (%s is absent)\n", path);
        return;
    }
    fclose(f);
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    sp.embed_wait_ms = 50;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "e", .path = path, .kind = SCHED_KIND_EMBEDDING, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECK(sched_wait_loaded(s, 60000));
    const char *texts[5][2] = {{"hello world", "a"}, {"the quick brown fox", "jumps"}, {"over", "the lazy dog"},
                               {"embeddings", "are vectors"}, {"one more", "text"}};
    sched_request *r[5];
    for (int i = 0; i < 5; i++) CHECK(sched_submit_embed(s, 0, texts[i], 2, SCHED_PRIO_NORMAL, 0, &r[i], NULL) == VKI_OK);
    vki_engine *eng = NULL;
    vki_model *md = NULL;
    vki_engine_params ep = vki_engine_default_params();
    ep.n_threads = 2;
    CHECK(vki_engine_create(&ep, &eng) == VKI_OK && vki_model_load(eng, path, &mp.mp, &md) == VKI_OK);
    const int32_t dim = vki_model_n_embd(md);
    float *ref = malloc(sizeof *ref * 2 * (size_t)dim);
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        done_req d = wait_done(r[i]);
        CHECK(d.res.status == VKI_OK && d.res.n_prompt > 4);
        free(d.text);
        int32_t n = 0, dd = 0;
        const float *e = sched_request_embeddings(r[i], &n, &dd);
        CHECK(e && n == 2 && dd == dim);
        CHECK(vki_embed(md, texts[i], 2, NULL, ref) == VKI_OK);
        for (int32_t j = 0; e && j < 2 * dim; j++) worst = fmax(worst, fabs(e[j] - ref[j]));
        sched_request_release(r[i]);
    }
    CHECKF(worst < 1e-5, "batched embeddings differ from lone ones by %g", worst);
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECKF(st.steps < 5, "5 requests took %llu mdl_embed calls", (unsigned long long)st.steps);
    printf("embeddings: 5 requests in %llu batch(es), worst difference from lone runs %.2e\n",
           (unsigned long long)st.steps, worst);
    free(ref);
    vki_model_destroy(md);
    vki_engine_destroy(eng);
    sched_destroy(s);
}

int main(int argc, char **argv)
{
    st_model_arg(argc, argv, "test_sched");
    test_batching_matches_alone(argv[1]);
    test_priorities(argv[1]);
    test_queue_full(argv[1]);
    test_deadline_cancel(argv[1]);
    test_errors_shutdown(argv[1]);
    test_embeddings();
    return test_finish("test_sched");
}
