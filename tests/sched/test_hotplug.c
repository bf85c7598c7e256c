/* test_hotplug.c: models added and removed while the scheduler serves
 * (sched_add_model at run time, sched_remove_model, sched_model_update).
 * Four client threads submit to model "a" for the whole test and look the
 * other ids up by name on every request; meanwhile models are added (two at
 * once from two threads), one is removed with requests queued and running
 * (they all finish; new ones get NOT_FOUND; it retires: unloaded, invisible
 * to sched_find, no fallback candidate), its id is added again, a failed
 * model is removed, and live settings change. Every request to "a" must
 * succeed. CPU backend. Usage: test_hotplug DEFAULT_MODEL.gguf */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched_test_util.h"
#include "test_util.h"
#include "util.h"

#define N_CLIENTS 4

static const char *g_path;
static scheduler *g_s;
static atomic_bool g_stop;
static atomic_int g_ok_a, g_fail_a, g_ok_other, g_refused_other, g_fail_other;
static char g_fail_msg[512];

static sched_model_params chat_params(const char *id, const char *path)
{
    sched_model_params mp = {.id = id, .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.mp.n_ctx = 128;
    mp.mp.n_seq_max = 2;
    return mp;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One request to `id`: 1 ok, 0 refused (not found / being removed / still
 * opening), -1 failed. */
static int one_request(const char *id)
{
    int32_t i = sched_find(g_s, id);
    if (i < 0) return 0;
    vki_generate_params gp = st_greedy(2);
    sched_request *r = NULL;
    vki_status st = sched_submit_generate(g_s, i, "Once upon a time", &gp, SCHED_PRIO_NORMAL, 0, &r, NULL);
    if (st == VKI_ERR_NOT_FOUND) return 0;
    if (st == VKI_ERR_UNSUPPORTED) {
        /* Just added, its file still being opened: a documented refusal
         * (the server's 503 model_loading), not a failure. */
        sched_model_info info;
        sched_model_get_info(g_s, i, &info);
        if (!info.can_queue && info.state != SCHED_FAILED) return 0;
    }
    if (st != VKI_OK) {
        snprintf(g_fail_msg, sizeof g_fail_msg, "%s: submit: %s: %s", id, vki_status_str(st), vki_last_error());
        return -1;
    }
    sched_result res = st_wait_done(r);
    int ok = res.status == VKI_OK && res.n_generated == 2 ? 1 : -1;
    if (ok < 0) snprintf(g_fail_msg, sizeof g_fail_msg, "%s: %s", id, res.error ? res.error : "?");
    sched_request_release(r);
    return ok;
}

static void *client(void *arg)
{
    const int k = (int)(intptr_t)arg;
    static const char *const others[] = {"b", "c", "d"};
    for (int n = 0; !atomic_load(&g_stop); n++) {
        int v = one_request("a"); /* "a" stays: refused counts as failed too */
        atomic_fetch_add(v > 0 ? &g_ok_a : &g_fail_a, 1);
        if (k == 0) continue; /* one client keeps "a" alone busy */
        v = one_request(others[(n + k) % 3]);
        atomic_fetch_add(v > 0 ? &g_ok_other : v == 0 ? &g_refused_other : &g_fail_other, 1);
    }
    return NULL;
}

static void *adder(void *arg)
{
    sched_model_params mp = chat_params((const char *)arg, g_path);
    CHECKF(sched_add_model(g_s, &mp) == VKI_OK, "add %s: %s", (const char *)arg, vki_last_error());
    return NULL;
}

static bool wait_removed(int32_t i, int timeout_ms)
{
    double until = vki_time_ms() + timeout_ms;
    sched_model_info info;
    do {
        sched_model_get_info(g_s, i, &info);
        if (info.removed) return true;
        sleep_ms(5);
    } while (vki_time_ms() < until);
    return false;
}

int main(int argc, char **argv)
{
    g_path = st_model_arg(argc, argv, "test_hotplug");
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 1;
    CHECK(sched_create(&sp, &g_s) == VKI_OK);
    sched_model_params mp = chat_params("a", g_path);
    CHECK(sched_add_model(g_s, &mp) == VKI_OK);
    CHECK(sched_wait_loaded(g_s, 60000));

    pthread_t cl[N_CLIENTS];
    for (int k = 0; k < N_CLIENTS; k++) CHECK(pthread_create(&cl[k], NULL, client, (void *)(intptr_t)k) == 0);
    sleep_ms(100);

    /* Run-time adds, two at once and one more; duplicates are refused. */
    pthread_t ad[2];
    CHECK(pthread_create(&ad[0], NULL, adder, "b") == 0);
    CHECK(pthread_create(&ad[1], NULL, adder, "c") == 0);
    pthread_join(ad[0], NULL);
    pthread_join(ad[1], NULL);
    mp = chat_params("b", g_path);
    CHECK(sched_add_model(g_s, &mp) == VKI_ERR_INVALID_ARGUMENT);
    CHECK(sched_n_models(g_s) == 3 && sched_find(g_s, "b") > 0 && sched_find(g_s, "c") > 0);
    CHECK(sched_wait_loaded(g_s, 60000));
    for (double until = vki_time_ms() + 30000; !atomic_load(&g_ok_other) && vki_time_ms() < until;) sleep_ms(10);
    CHECKF(atomic_load(&g_ok_other) > 0, "the added models served %d requests", atomic_load(&g_ok_other));

    /* Remove b with requests of its own queued and running. */
    const int32_t ib = sched_find(g_s, "b");
    sched_request *held[6];
    vki_generate_params gp = st_greedy(4);
    for (int k = 0; k < 6; k++)
        CHECK(sched_submit_generate(g_s, ib, "The cat", &gp, SCHED_PRIO_NORMAL, 0, &held[k], NULL) == VKI_OK);
    CHECK(sched_remove_model(g_s, ib) == VKI_OK);
    CHECK(sched_remove_model(g_s, ib) == VKI_ERR_NOT_FOUND);
    CHECK(sched_find(g_s, "b") < 0);
    sched_request *late = NULL;
    CHECK(sched_submit_generate(g_s, ib, "The cat", &gp, SCHED_PRIO_NORMAL, 0, &late, NULL) == VKI_ERR_NOT_FOUND);
    int32_t cand[8];
    const int32_t ic = sched_find(g_s, "c");
    for (int32_t k = 0, n = sched_fallback_candidates(g_s, ic, NULL, cand, NULL, 8); k < n; k++)
        CHECKF(cand[k] != ib, "the removed model is still a fallback candidate");
    for (int k = 0; k < 6; k++) {
        sched_result res = st_wait_done(held[k]);
        CHECKF(res.status == VKI_OK && res.n_generated == 4, "accepted before the removal: %s",
               res.error ? res.error : "");
        sched_request_release(held[k]);
    }
    CHECK(wait_removed(ib, 30000));
    sched_model_info info;
    sched_model_get_info(g_s, ib, &info);
    CHECKF(info.removing && info.removed && info.state == SCHED_UNLOADED && info.bytes == 0, "b after removal: %s",
           sched_state_name(info.state));

    /* The id comes back in a new slot; d joins too. */
    mp = chat_params("b", g_path);
    CHECK(sched_add_model(g_s, &mp) == VKI_OK);
    CHECK(sched_find(g_s, "b") == 3);
    pthread_create(&ad[0], NULL, adder, "d");
    pthread_join(ad[0], NULL);

    /* Live settings. */
    mp = chat_params("c", g_path);
    mp.pin = true;
    mp.has_keep_alive = true;
    mp.keep_alive_ms = 60000;
    const char *chain[] = {"a", NULL};
    mp.fb.chain = chain;
    CHECK(sched_model_update(g_s, ic, &mp) == VKI_OK);
    sched_model_get_info(g_s, ic, &info);
    CHECK(info.pin && info.keep_alive_ms == 60000);
    CHECK(sched_fallback_chain_id(g_s, ic, 0) && !strcmp(sched_fallback_chain_id(g_s, ic, 0), "a"));
    CHECK(sched_model_update(g_s, ib, &mp) == VKI_ERR_NOT_FOUND);

    /* A model that failed (its file is missing) is removed at once. */
    mp = chat_params("gone", "/nonexistent/model.gguf");
    CHECK(sched_add_model(g_s, &mp) == VKI_OK);
    const int32_t ig = sched_find(g_s, "gone");
    CHECK(sched_wait_state(g_s, ig, SCHED_FAILED, 10000));
    CHECK(sched_remove_model(g_s, ig) == VKI_OK);
    CHECK(wait_removed(ig, 10000));

    sleep_ms(300);
    /* Removed while its clients still ask: only NOT_FOUND, never a failure. */
    CHECK(sched_remove_model(g_s, sched_find(g_s, "d")) == VKI_OK);
    sleep_ms(300);
    atomic_store(&g_stop, true);
    for (int k = 0; k < N_CLIENTS; k++) pthread_join(cl[k], NULL);
    printf("a: %d ok, %d failed; others: %d ok, %d refused (removed), %d failed\n", atomic_load(&g_ok_a),
           atomic_load(&g_fail_a), atomic_load(&g_ok_other), atomic_load(&g_refused_other),
           atomic_load(&g_fail_other));
    CHECKF(atomic_load(&g_fail_a) == 0 && atomic_load(&g_ok_a) > 0, "requests to a failed: %s", g_fail_msg);
    CHECKF(atomic_load(&g_fail_other) == 0, "requests to the others failed: %s", g_fail_msg);
    /* Destroy with d perhaps still draining. */
    sched_destroy(g_s);
    return test_finish("test_hotplug");
}
