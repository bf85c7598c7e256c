/* test_swap.c: sched_reload_model. With room for both, the new file loads
 * beside the old one, which keeps serving: the model is never unloaded and
 * every request submitted during the reload succeeds (CPU, and Vulkan on
 * lavapipe). Without room (a budget for one), the old one drains and the
 * new one loads while requests wait in the queue. A reload from a missing
 * file leaves the old model serving with the reason. Every request ends
 * exactly once. Vulkan parts skip when no device can be created.
 * Usage: test_swap DEFAULT_MODEL.gguf */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sched/sched_internal.h"
#include "engine/vulkan/backend_vk.h"
#include "sched_test_util.h"
#include "test_util.h"
#include "util.h"

#define MIB (1024.0 * 1024.0)
#define N_REQ 6

static scheduler *make(const char *path, vki_backend_kind be, uint64_t budget)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    sp.engine.vram_budget = budget;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    sched_model_params mp = {.id = "m", .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = be;
    mp.mp.n_ctx = 256;
    mp.mp.n_seq_max = 2;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
    CHECK(sched_wait_loaded(s, 60000));
    return s;
}

/* Reloads model 0 from `to` while submitting requests; returns the states
 * seen meanwhile as a bit set. All requests must succeed. */
static unsigned reload_under_load(scheduler *s, const char *to, const char *what)
{
    sched_request *r[N_REQ];
    vki_generate_params gp = st_greedy(6);
    unsigned seen = 0;
    double t0 = vki_time_ms();
    CHECK(sched_submit_generate(s, 0, "Once upon a time", &gp, SCHED_PRIO_NORMAL, 0, &r[0], NULL) == VKI_OK);
    CHECKF(sched_reload_model(s, 0, to) == VKI_OK, "%s", vki_last_error());
    CHECK(sched_reload_model(s, 0, to) == VKI_ERR_INVALID_ARGUMENT); /* one at a time */
    sched_model_info info;
    int k = 1;
    for (;;) {
        sched_model_get_info(s, 0, &info);
        seen |= 1u << info.state;
        if (k < N_REQ)
            CHECK(sched_submit_generate(s, 0, "The cat", &gp, SCHED_PRIO_NORMAL, 0, &r[k++], NULL) == VKI_OK);
        if (!info.reloading && k == N_REQ) break;
        if (vki_time_ms() - t0 > 60000) {
            CHECK(!"the reload did not finish in 60 s");
            break;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < k; i++) {
        sched_result res = st_wait_done(r[i]);
        CHECKF(res.status == VKI_OK && res.n_generated == 6, "%s: request %d: %s", what, i,
               res.error ? res.error : "");
        sched_request_release(r[i]);
    }
    sched_model_get_info(s, 0, &info);
    CHECKF(!strcmp(info.path, to) && sched_state_resident(info.state) && !info.error[0], "%s: now %s, %s (%s)", what,
           info.path, sched_state_name(info.state), info.error);
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECKF(st.swaps == 1 && st.finished_ok == (uint64_t)k && st.failed + st.cancelled + st.timed_out == 0,
           "%s: %llu swaps, %llu of %d requests ok", what, (unsigned long long)st.swaps,
           (unsigned long long)st.finished_ok, k);
    printf("%s: reloaded in %.0f ms under %d requests; states seen:%s%s%s%s\n", what, vki_time_ms() - t0, k,
           seen & (1u << SCHED_UNLOADED) ? " unloaded" : "", seen & (1u << SCHED_LOADING) ? " loading" : "",
           seen & (1u << SCHED_RESIDENT_GPU) ? " resident-gpu" : "",
           seen & (1u << SCHED_RESIDENT_CPU) ? " resident-cpu" : "");
    return seen;
}

static void test_cpu(const char *path)
{
    scheduler *s = make(path, VKI_BACKEND_CPU, 0);
    /* The same file by another name: a new path the old one keeps serving beside. */
    char to[2048];
    const char *slash = strrchr(path, '/');
    snprintf(to, sizeof to, "%.*s/./%s", slash ? (int)(slash - path) : 1, slash ? path : ".", slash ? slash + 1 : path);
    unsigned seen = reload_under_load(s, to, "cpu, room for both");
    CHECKF(seen == 1u << SCHED_RESIDENT_CPU, "the model left resident-cpu during the reload (0x%x)", seen);
    /* A missing file: the old one keeps serving, with the reason. */
    CHECK(sched_reload_model(s, 0, "/nonexistent/new.gguf") == VKI_OK);
    sched_model_info info;
    double t0 = vki_time_ms();
    do sched_model_get_info(s, 0, &info);
    while (info.reloading && vki_time_ms() - t0 < 10000);
    CHECKF(info.state == SCHED_RESIDENT_CPU && !strcmp(info.path, to) && strstr(info.error, "/nonexistent/new.gguf"),
           "after a failed reload: %s %s [%s]", sched_state_name(info.state), info.path, info.error);
    sched_destroy(s);
}

static void test_vulkan(const char *from, const char *to)
{
    /* Room for both: zero downtime. */
    scheduler *s = make(from, VKI_BACKEND_VULKAN, 0);
    unsigned seen = reload_under_load(s, to, "vulkan, room for both");
    CHECKF(seen == 1u << SCHED_RESIDENT_GPU, "the model left resident-gpu during the reload (0x%x)", seen);
    sched_model_info info;
    sched_model_get_info(s, 0, &info);
    const uint64_t new_bytes = info.est_bytes;
    sched_destroy(s);
    /* Room for one: drain, unload, load; requests wait in the queue. */
    s = make(from, VKI_BACKEND_VULKAN, 0);
    sched_model_get_info(s, 0, &info);
    const uint64_t budget = (VKI_MAX(info.est_bytes, new_bytes) * 3) / 2;
    sched_destroy(s);
    s = make(from, VKI_BACKEND_VULKAN, budget);
    seen = reload_under_load(s, to, "vulkan, room for one");
    CHECKF(seen & (1u << SCHED_LOADING | 1u << SCHED_UNLOADED), "a reload without room went through no load (0x%x)",
           seen);
    sched_resid_info ri;
    sched_get_resid_info(s, &ri);
    CHECKF(ri.used <= ri.budget, "%.1f MiB held of %.1f", (double)ri.used / MIB, (double)ri.budget / MIB);
    sched_destroy(s);
}

int main(int argc, char **argv)
{
    st_model_arg(argc, argv, "test_swap");
    test_cpu(argv[1]);
    const char *dir = getenv("VKI_SHARED_DIR");
    char from[1024], to[1024];
    snprintf(from, sizeof from, "%s/models/synthetic-llama-gqa-q4_0.gguf", dir && dir[0] ? dir : "../shared");
    snprintf(to, sizeof to, "%s/models/synthetic-llama-gqa-q8_0.gguf", dir && dir[0] ? dir : "../shared");
    FILE *a = fopen(from, "rb"), *b = fopen(to, "rb");
    if (!a || !b) printf("vulkan: skipped (the models of ../shared/models are absent)\n");
    else if (!st_have_vulkan()) printf("vulkan: skipped (no Vulkan device can be created: %s)\n", vki_last_error());
    else test_vulkan(from, to);
    if (a) fclose(a);
    if (b) fclose(b);
    return test_finish("test_swap");
}
