/* test_warm_sched.c: warm-up inside the scheduler (sched_warm.c) with an
 * injected wall clock. A history file says "morning" is asked for every day
 * at 9:00 and "night" at 2:00. On the CPU: at 3:30 the planner loads
 * nothing; at 8:57 it preloads "morning" (and only it), telling on_warm why;
 * requests are recorded at the injected time and the history is written at
 * shutdown. On Vulkan (lavapipe, a budget that holds one model): at 8:57
 * the idle, colder "night" is evicted to make room and "morning" loads on
 * the GPU. A garbage history file is a warning, never a failure.
 * Usage: test_warm_sched DEFAULT_MODEL.gguf */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sched/sched_internal.h"
#include "engine/sched/warmup.h"
#include "error.h"
#include "sched_test_util.h"
#include "test_util.h"

#define HOUR 3600.0
#define DAY  86400.0
#define T0   1793577600.0 /* Monday 2026-11-02 00:00 UTC */

static double fake_now;
static double clock_fn(void *user) { (void)user; return fake_now; }

typedef struct events {
    int  preload, skip;
    char last_model[64], last_reason[256];
} events;

static void on_warm(const sched_warm_event *ev, void *user)
{
    events *e = user;
    if (!strcmp(ev->action, "preload")) e->preload++;
    else e->skip++;
    snprintf(e->last_model, sizeof e->last_model, "%s", ev->model);
    snprintf(e->last_reason, sizeof e->last_reason, "%s", ev->reason);
    printf("warm: %s %s p=%.2f: %s\n", ev->action, ev->model, ev->p, ev->reason);
}

static int n_warnings;
static void on_warn(const char *msg, void *user)
{
    (void)user;
    n_warnings++;
    printf("warning: %s\n", msg);
}

/* Two weeks of habits, written the way the scheduler keeps them. */
static void write_history(const char *path)
{
    warm_params wp = warm_default_params();
    warm_history h;
    warm_init(&h, &wp);
    for (int d = 0; d < 14; d++) {
        for (int k = 0; k < 3; k++) {
            CHECK(warm_record_request(&h, "morning", T0 + d * DAY + 9 * HOUR + 300 + k * 600 - wp.utc_offset_s) == VKI_OK);
            CHECK(warm_record_request(&h, "night", T0 + d * DAY + 2 * HOUR + 300 + k * 600 - wp.utc_offset_s) == VKI_OK);
        }
    }
    CHECK(warm_record_load(&h, "morning", 500) == VKI_OK);
    CHECK(warm_save(&h, path) == VKI_OK);
    warm_free(&h);
}

static bool use_thread;

static scheduler *make(const char *hist, events *ev, uint64_t budget)
{
    sched_params sp = sched_default_params();
    sp.warmup = use_thread;
    sp.engine.n_threads = 2;
    sp.engine.vram_budget = budget;
    sp.warm_state_path = hist;
    sp.warm_interval_s = use_thread ? 0.2 : 300;
    sp.clock_s = clock_fn;
    sp.on_warm = on_warm;
    sp.on_warm_user = ev;
    scheduler *s = NULL;
    CHECK(sched_create(&sp, &s) == VKI_OK);
    return s;
}

static void add(scheduler *s, const char *id, const char *path, vki_backend_kind be)
{
    sched_model_params mp = {.id = id, .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = be;
    mp.mp.n_ctx = 256;
    mp.mp.n_seq_max = 1;
    mp.on_demand = true;
    CHECK(sched_add_model(s, &mp) == VKI_OK);
}

static sched_state state_of(scheduler *s, int32_t i)
{
    sched_model_info info;
    sched_model_get_info(s, i, &info);
    return info.state;
}

static void test_cpu(const char *model, const char *hist)
{
    /* The local zone decides where 9:00 is: the history was written in it. */
    const double off = warm_default_params().utc_offset_s;
    write_history(hist);
    events ev = {0};
    scheduler *s = make(hist, &ev, 0);
    add(s, "morning", model, VKI_BACKEND_CPU);
    add(s, "night", model, VKI_BACKEND_CPU);
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 30000) && sched_wait_state(s, 1, SCHED_UNLOADED, 30000));

    fake_now = T0 + 14 * DAY + 3.5 * HOUR - off;
    CHECK(sched_warm_tick(s) == VKI_OK);
    CHECK(ev.preload == 0);
    usleep(200 * 1000);
    CHECK(state_of(s, 0) == SCHED_UNLOADED && state_of(s, 1) == SCHED_UNLOADED);

    fake_now = T0 + 14 * DAY + 9 * HOUR - 180 - off;
    CHECK(sched_warm_tick(s) == VKI_OK);
    CHECK(ev.preload == 1 && !strcmp(ev.last_model, "morning"));
    CHECK(sched_wait_state(s, 0, SCHED_RESIDENT_CPU, 30000));
    CHECK(state_of(s, 1) == SCHED_UNLOADED);
    /* Resident already: a second tick does nothing more. */
    CHECK(sched_warm_tick(s) == VKI_OK);
    CHECK(ev.preload == 1);

    /* A request is recorded at the injected time, and saved at shutdown. */
    fake_now = T0 + 14 * DAY + 2 * HOUR + 60 - off;
    vki_generate_params gp = st_greedy(2);
    sched_request *r = NULL;
    CHECK(sched_submit_generate(s, 1, "Once", &gp, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_OK);
    if (r) {
        sched_result res = st_wait_done(r);
        CHECK(res.status == VKI_OK);
        sched_request_release(r);
    }
    sched_destroy(s);
    warm_params wp = warm_default_params();
    warm_history h;
    warm_init(&h, &wp);
    CHECK(warm_load(&h, hist) == VKI_OK);
    warm_model *night = warm_model_get(&h, "night"), *morning = warm_model_get(&h, "morning");
    CHECK(night && night->n_requests == 43 && night->last_s == fake_now);
    CHECK(night && night->load_ms > 0);     /* its on-demand load was recorded */
    CHECK(morning && morning->load_ms > 0); /* so was the preload              */
    warm_free(&h);
}

static void test_vulkan(const char *model, const char *hist)
{
    if (!st_have_vulkan()) {
        printf("vulkan: skipped (%s)\n", vki_last_error());
        return;
    }
    const double off = warm_default_params().utc_offset_s;
    write_history(hist);
    /* First learn the model's device size, then allow one and a half. */
    events ev = {0};
    scheduler *probe = make(NULL, &ev, 0);
    add(probe, "probe", model, VKI_BACKEND_VULKAN);
    CHECK(sched_wait_state(probe, 0, SCHED_UNLOADED, 30000));
    sched_model_info info;
    sched_model_get_info(probe, 0, &info);
    uint64_t est = info.est_bytes;
    sched_destroy(probe);

    scheduler *s = make(hist, &ev, est + est / 2);
    add(s, "morning", model, VKI_BACKEND_VULKAN);
    add(s, "night", model, VKI_BACKEND_VULKAN);
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 30000) && sched_wait_state(s, 1, SCHED_UNLOADED, 30000));
    /* night serves a request at 2:05 and stays resident, idle. */
    fake_now = T0 + 14 * DAY + 2 * HOUR + 300 - off;
    vki_generate_params gp = st_greedy(2);
    sched_request *r = NULL;
    CHECK(sched_submit_generate(s, 1, "Once", &gp, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_OK);
    if (r) {
        CHECK(st_wait_done(r).status == VKI_OK);
        sched_request_release(r);
    }
    CHECK(state_of(s, 1) == SCHED_RESIDENT_GPU);
    fake_now = T0 + 14 * DAY + 9 * HOUR - 180 - off;
    CHECK(sched_warm_tick(s) == VKI_OK);
    CHECK(ev.preload == 1 && !strcmp(ev.last_model, "morning") && strstr(ev.last_reason, "evicting night"));
    CHECK(sched_wait_state(s, 0, SCHED_RESIDENT_GPU, 60000));
    CHECK(state_of(s, 1) == SCHED_UNLOADED);
    sched_destroy(s);
}

/* The planner's own thread: with warmup on it ticks every interval and
 * preloads with no call from outside. */
static void test_thread(const char *model, const char *hist)
{
    const double off = warm_default_params().utc_offset_s;
    write_history(hist);
    events ev = {0};
    /* A 0.2 s interval looks about a minute ahead (interval, twice the
     * load time, a minute's margin): 8:59:30 is inside. */
    fake_now = T0 + 14 * DAY + 9 * HOUR - 30 - off;
    use_thread = true;
    scheduler *s = make(hist, &ev, 0);
    use_thread = false;
    add(s, "morning", model, VKI_BACKEND_CPU);
    CHECK(sched_wait_state(s, 0, SCHED_RESIDENT_CPU, 30000));
    CHECK(ev.preload == 1);
    sched_destroy(s);
}

static void test_bad_file(const char *model, const char *hist)
{
    FILE *f = fopen(hist, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("{\"version\": 1, \"as_of\": \"yesterday\"", f);
        fclose(f);
    }
    n_warnings = 0;
    vki_set_warn_handler(on_warn, NULL);
    events ev = {0};
    scheduler *s = make(hist, &ev, 0);
    CHECK(n_warnings == 1);
    add(s, "morning", model, VKI_BACKEND_CPU);
    CHECK(sched_wait_state(s, 0, SCHED_UNLOADED, 30000));
    fake_now = T0 + 9 * HOUR - 180;
    CHECK(sched_warm_tick(s) == VKI_OK);
    CHECK(ev.preload == 0);
    sched_destroy(s);
    vki_set_warn_handler(NULL, NULL);
}

int main(int argc, char **argv)
{
    const char *model = st_model_arg(argc, argv, "test_warm_sched");
    char dir[] = "/tmp/vki-warm-sched-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char hist[256];
    snprintf(hist, sizeof hist, "%s/usage.json", dir);
    test_cpu(model, hist);
    test_vulkan(model, hist);
    test_thread(model, hist);
    test_bad_file(model, hist);
    unlink(hist);
    rmdir(dir);
    return test_finish("test_warm_sched");
}
