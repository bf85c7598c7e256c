/* test_resid.c: residency in the scheduler (engine/sched/sched_resid.c).
 * The eviction score orders candidates by recency, frequency, size and
 * reload cost (no device needed). On the CPU backend: a model with
 * keep_alive 0 loads when asked, serves the requests queued during its
 * load, and unloads when idle. On Vulkan (lavapipe, with a budget forced
 * small; skipped when no device can be created): the least recently used
 * idle model is evicted, a pinned one never is, a model falls back to the
 * CPU when nothing can be evicted, without a fallback a model waits for a
 * turn (a busy one yields: drains and unloads), and one larger than the
 * budget fails naming the budget and what holds it. Every request ends
 * exactly once.
 * Usage: test_resid DEFAULT_MODEL.gguf */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched/sched_internal.h"
#include "engine/vulkan/backend_vk.h"
#include "sched_test_util.h"
#include "test_util.h"
#include "util.h"

#define MIB (1024ull * 1024ull)

/* ===== The score ========================================================= */

static int32_t first_pick(const sched_resid_cand *c, int32_t n)
{
    int32_t order[8];
    return sched_resid_pick(c, n, 1, order) == 1 ? order[0] : -1;
}

static void test_score_order(void)
{
    const sched_resid_cand base = {.evictable = true, .idle_s = 60, .freq = 1, .reload_ms = 200, .bytes = 64 * MIB};
    sched_resid_cand c[3] = {base, base, base};
    c[1].idle_s = 600; /* recency: the longer idle goes first */
    CHECK(first_pick(c, 2) == 1);
    c[1] = base;
    c[0].freq = 20; /* frequency: the rarely used goes first */
    CHECK(first_pick(c, 2) == 1);
    c[0] = base;
    c[1].bytes = 640 * MIB; /* size: the larger frees more for the same loss */
    CHECK(first_pick(c, 2) == 1);
    c[1] = base;
    c[0].reload_ms = 5000; /* reload cost: the cheap to reload goes first */
    CHECK(first_pick(c, 2) == 1);
    c[0] = base;
    /* LRU wins over a small frequency difference, not over a large one */
    c[0].idle_s = 3600;
    c[0].freq = 2;
    CHECK(first_pick(c, 2) == 0);
    c[0].freq = 200;
    CHECK(first_pick(c, 2) == 1);
    /* never a model that is not evictable (pinned, busy, loading) */
    c[0] = base;
    c[0].idle_s = 1e6;
    c[0].evictable = false;
    CHECK(first_pick(c, 2) == 1);
    int32_t order[3];
    CHECK(sched_resid_pick(c, 3, 0, order) == 0);
    CHECK(sched_resid_pick(c, 3, 128 * MIB, order) == 2 && order[0] != 0 && order[1] != 0);
    CHECK(sched_resid_pick(c, 3, 128 * MIB + 1, order) == -1); /* the two evictable ones are not enough */
    printf("score: recency, frequency, size and reload cost order the victims; pinned/busy never chosen\n");
}

/* ===== Helpers =========================================================== */

/* Submits one generation and waits for its end; returns its status. */
static vki_status run_one(scheduler *s, int32_t model, int32_t n, char *err, size_t err_size)
{
    vki_generate_params gp = st_greedy(n);
    sched_request *r = NULL;
    vki_status st = sched_submit_generate(s, model, "Once upon a time", &gp, SCHED_PRIO_NORMAL, 0, &r, NULL);
    if (st != VKI_OK) {
        snprintf(err, err_size, "submit: %s", vki_last_error());
        return st;
    }
    sched_result res = st_wait_done(r);
    snprintf(err, err_size, "%s", res.error ? res.error : "");
    if (res.status == VKI_OK && res.n_generated != n) st = VKI_ERR_INTERNAL;
    else st = res.status;
    sched_request_release(r);
    return st;
}

/* Every request a model took ended exactly once: the outcome counters add
 * up to what was submitted (a second end would also trip ASan on the refs). */
static void check_ended(scheduler *s, int32_t i, uint64_t submitted)
{
    sched_stats st;
    sched_model_get_stats(s, i, &st);
    uint64_t ended = st.finished_ok + st.failed + st.cancelled + st.timed_out;
    CHECKF(ended == submitted && st.queued[0] + st.queued[1] + st.queued[2] == 0 && st.active == 0,
           "model %d: %llu submitted, %llu ended", i, (unsigned long long)submitted, (unsigned long long)ended);
}

static sched_model_params model(const char *id, const char *path, vki_backend_kind be)
{
    sched_model_params mp = {.id = id, .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = be;
    mp.mp.n_ctx = 512; /* a request that runs to n_ctx keeps a model busy a while */
    mp.mp.n_seq_max = 1;
    return mp;
}

static scheduler *make(uint64_t budget)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    sp.engine.vram_budget = budget;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    return s;
}

/* ===== CPU: on demand, queued during the load, keep_alive 0 ============= */

static void test_on_demand_cpu(const char *path)
{
    scheduler *s = make(0);
    sched_model_params mp = model("od", path, VKI_BACKEND_CPU);
    mp.has_keep_alive = true;
    mp.keep_alive_ms = 0;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 30000));
    sched_model_info info;
    sched_model_get_info(s, 0, &info);
    CHECK(info.can_queue && info.bytes == 0 && info.est_bytes > 0 && info.keep_alive_ms == 0);
    /* Three at once: the first starts the load, all wait in the queue, the
     * submit returns at once (the caller is never blocked by a load). */
    vki_generate_params gp = st_greedy(4);
    sched_request *r[3];
    double t0 = vki_time_ms();
    for (int i = 0; i < 3; i++)
        CHECK(sched_submit_generate(s, 0, "Once upon a time", &gp, SCHED_PRIO_NORMAL, 0, &r[i], NULL) == VKI_OK);
    double submit_ms = vki_time_ms() - t0;
    for (int i = 0; i < 3; i++) {
        sched_result res = st_wait_done(r[i]);
        CHECKF(res.status == VKI_OK && res.n_generated == 4, "request %d: %s", i, res.error ? res.error : "");
        sched_request_release(r[i]);
    }
    double served_ms = vki_time_ms() - t0;
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 10000));
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECKF(st.loads == 1 && st.idle_unloads == 1 && st.evictions == 0, "loads %llu, idle unloads %llu",
           (unsigned long long)st.loads, (unsigned long long)st.idle_unloads);
    sched_model_get_info(s, 0, &info);
    printf("on demand (cpu): 3 submits in %.2f ms while unloaded, served after a %.1f ms load (%.1f ms in all); "
           "unloaded when idle\n", submit_ms, info.load_ms, served_ms);
    /* Asked again: loads again. */
    char err[1024];
    CHECKF(run_one(s, 0, 2, err, sizeof err) == VKI_OK, "%s", err);
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 10000));
    sched_model_get_stats(s, 0, &st);
    CHECK(st.loads == 2 && st.idle_unloads == 2);
    check_ended(s, 0, 4);

    /* keep_alive 300 ms: still there right after, gone a little later. */
    sched_destroy(s);
    s = make(0);
    mp.keep_alive_ms = 300;
    mp.on_demand = true;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 30000));
    CHECKF(run_one(s, 0, 2, err, sizeof err) == VKI_OK, "%s", err);
    double done = vki_time_ms();
    sched_model_get_info(s, 0, &info);
    CHECKF(info.state == SCHED_RESIDENT_CPU, "state %s right after the request", sched_state_name(info.state));
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 10000));
    double gone = vki_time_ms() - done;
    CHECKF(gone > 250 && gone < 3000, "unloaded %.0f ms after the request (keep_alive 300 ms)", gone);
    check_ended(s, 0, 1);
    sched_destroy(s);
}

/* ===== Vulkan: eviction, pins, fallback ================================== */

/* What each model holds on the device once loaded (staging included),
 * beside the estimate taken before: loads them one at a time. */
static void measure(const char *const *paths, int n, uint64_t *bytes)
{
    scheduler *s = make(0);
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        sched_model_params mp = model(id, paths[i], VKI_BACKEND_VULKAN);
        CHECK(sched_add_model(s, &mp) == VKI_OK);
    }
    CHECK(sched_wait_loaded(s, 60000));
    sched_resid_info ri;
    sched_get_resid_info(s, &ri);
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        sched_model_info info;
        sched_model_get_info(s, i, &info);
        bytes[i] = info.bytes + (16ull << 20);
        sum += info.bytes + (16ull << 20);
        printf("  %s: estimate %.2f MiB, measured %.2f MiB + 16 MiB staging (%+.0f%%), load %.0f ms\n", paths[i],
               (double)info.est_bytes / MIB, (double)info.bytes / MIB,
               100.0 * ((double)info.est_bytes / (double)(info.bytes + (16ull << 20)) - 1), info.load_ms);
        /* Within 10%: lower would overcommit the budget, higher would evict for nothing. */
        CHECKF(fabs((double)info.est_bytes / (double)bytes[i] - 1) < 0.1, "estimate off for %s", paths[i]);
    }
    CHECK(ri.used == sum);
    sched_destroy(s);
}

static void test_vulkan(const char *const paths[3])
{
    uint64_t b[3];
    measure(paths, 3, b);
    /* Room for A (pinned) and two of the others. */
    const uint64_t budget = b[0] + b[1] + b[2] + VKI_MIN(b[1], b[2]) / 2;
    scheduler *s = make(budget);
    enum { A, B, C, D, E, F, G, N };
    static const char *const ids[N] = {"A", "B", "C", "D", "E", "F", "G"};
    const int file[N] = {0, 1, 2, 1, 2, 1, 0};
    sched_model_params mp[N];
    for (int i = 0; i < N; i++) {
        mp[i] = model(ids[i], paths[file[i]], VKI_BACKEND_VULKAN);
        mp[i].on_demand = i != A;
    }
    mp[A].pin = true;
    mp[F].fallback_cpu = true;
    mp[G].mp.n_seq_max = 256; /* a KV cache larger than the budget: never fits */
    for (int i = 0; i < N; i++) CHECK(sched_add_model(s, &mp[i]) == VKI_OK);
    CHECK(sched_wait_state(s, A, SCHED_RESIDENT_GPU, 60000));
    uint64_t n_req[N] = {0};
    char err[1024];
    /* C and B load beside A; C is then used more (freq 6 against 1) and
     * more recently, so when D needs room the idle B goes (the pinned A
     * never does) unless B's reload time were over ~3x C's. */
    const int seq[] = {C, B, C, C, C, C, C, D};
    for (size_t k = 0; k < VKI_COUNT(seq); k++) {
        int i = seq[k];
        double t0 = vki_time_ms();
        vki_status st = run_one(s, i, 3, err, sizeof err);
        n_req[i]++;
        CHECKF(st == VKI_OK, "request %zu to %s: %s", k, ids[i], err);
        sched_model_info info;
        sched_model_get_info(s, i, &info);
        CHECKF(info.state == SCHED_RESIDENT_GPU, "%s is %s", ids[i], sched_state_name(info.state));
        printf("  %s served in %.0f ms\n", ids[i], vki_time_ms() - t0);
    }
    sched_stats st[N];
    sched_model_info info[N];
    for (int i = 0; i < N; i++) {
        sched_model_get_stats(s, i, &st[i]);
        sched_model_get_info(s, i, &info[i]);
    }
    CHECKF(st[B].evictions == 1 && st[C].evictions == 0 && st[A].evictions == 0 && st[D].loads == 1,
           "evictions A %llu B %llu C %llu", (unsigned long long)st[A].evictions, (unsigned long long)st[B].evictions,
           (unsigned long long)st[C].evictions);
    CHECK(info[B].state == SCHED_UNLOADED && info[C].state == SCHED_RESIDENT_GPU && info[A].state == SCHED_RESIDENT_GPU);
    sched_resid_info ri;
    sched_get_resid_info(s, &ri);
    CHECKF(ri.used <= ri.budget, "%llu bytes held against a budget of %llu", (unsigned long long)ri.used,
           (unsigned long long)ri.budget);

    /* C and D busy, A pinned: nothing can be evicted now. F falls back to
     * the CPU; E, without a fallback, waits for a turn: C or D yields
     * (drains, unloads) and E is served; G, larger than the budget, is
     * refused with the reason. */
    vki_generate_params block = st_greedy(0);
    sched_request *busy[2];
    const int busy_model[2] = {C, D};
    for (int k = 0; k < 2; k++) {
        CHECK(sched_submit_generate(s, busy_model[k], "Once", &block, SCHED_PRIO_NORMAL, 0, &busy[k], NULL) == VKI_OK);
        n_req[busy_model[k]]++;
        st_wait_started(busy[k]);
    }
    vki_status sf = run_one(s, F, 3, err, sizeof err);
    n_req[F]++;
    CHECKF(sf == VKI_OK, "F (fallback cpu): %s", err);
    sched_model_get_info(s, F, &info[F]);
    CHECKF(info[F].state == SCHED_RESIDENT_CPU && strstr(info[F].backend, "cpu ("), "F is %s on %s",
           sched_state_name(info[F].state), info[F].backend);
    sched_model_get_info(s, G, &info[G]);
    CHECKF(info[G].est_bytes > budget, "G's estimate %llu is within the budget", (unsigned long long)info[G].est_bytes);
    vki_status sg = run_one(s, G, 3, err, sizeof err);
    n_req[G]++;
    CHECKF(sg == VKI_ERR_OUT_OF_DEVICE_MEMORY && strstr(err, "budget") && strstr(err, "A ") && strstr(err, "pinned") &&
               strstr(err, "busy") && strstr(err, "no CPU fallback"),
           "G (larger than the budget): %s: %s", vki_status_str(sg), err);
    sched_model_get_info(s, G, &info[G]);
    CHECK(info[G].state == SCHED_UNLOADED && strstr(info[G].error, "budget"));
    printf("  refused: %s\n", err);
    double t_e = vki_time_ms();
    vki_status se = run_one(s, E, 3, err, sizeof err);
    n_req[E]++;
    CHECKF(se == VKI_OK, "E (waits for a turn): %s: %s", vki_status_str(se), err);
    printf("  E served after a turn in %.0f ms\n", vki_time_ms() - t_e);
    for (int k = 0; k < 2; k++) {
        sched_request_cancel(busy[k]);
        sched_result res = st_wait_done(busy[k]);
        CHECK(res.status == VKI_ERR_CANCELLED || res.status == VKI_OK);
        sched_request_release(busy[k]);
    }
    for (int i = 0; i < N; i++) sched_model_get_stats(s, i, &st[i]);
    CHECK(st[F].fallbacks == 1 && st[G].refused_loads == 1 && st[E].loads == 1 && st[A].evictions == 0 &&
          st[A].yields == 0);
    /* One of them yielded to E; the one that did then waits for its own
     * next turn, and may take it from the other before the test cancels. */
    CHECKF(st[C].yields + st[D].yields >= 1, "yields C %llu D %llu", (unsigned long long)st[C].yields,
           (unsigned long long)st[D].yields);
    for (int i = 0; i < N; i++) check_ended(s, i, n_req[i]);
    sched_get_resid_info(s, &ri);
    printf("vulkan: budget %.1f MiB (%.1f held); evictions B %llu, C %llu, D %llu, pinned A 0; F fell back to the "
           "CPU; G refused; E served after a turn\n",
           (double)budget / MIB, (double)ri.used / MIB, (unsigned long long)st[B].evictions,
           (unsigned long long)st[C].evictions, (unsigned long long)st[D].evictions);
    sched_destroy(s);
}

int main(int argc, char **argv)
{
    st_model_arg(argc, argv, "test_resid");
    test_score_order();
    test_on_demand_cpu(argv[1]);
    const char *dir = getenv("VKI_SHARED_DIR");
    char p[3][1024];
    const char *names[3] = {"stories260K.gguf", "synthetic-llama-gqa-q4_0.gguf", "synthetic-llama-gqa-q8_0.gguf"};
    const char *paths[3];
    bool all = true;
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof p[i], "%s/models/%s", dir && dir[0] ? dir : "../shared", names[i]);
        paths[i] = p[i];
        FILE *g = fopen(p[i], "rb");
        all &= g != NULL;
        if (g) fclose(g);
    }
    if (!all) printf("vulkan: skipped (the models of ../shared/models are absent)\n");
    else if (!st_have_vulkan()) printf("vulkan: skipped (no Vulkan device can be created: %s)\n", vki_last_error());
    else test_vulkan(paths);
    return test_finish("test_resid");
}
