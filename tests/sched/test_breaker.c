/*
 * test_breaker.c: circuit breakers and fallback candidates.
 * - the breaker's state machine at given times: the window, open, half-open,
 *   one probe, closed again, declared failed after a reload;
 * - on the scheduler with an injected clock and injected failures
 *   (test_fail): step failures open it, the model unloads, requests are
 *   refused with a wait, the probe reloads it (closed) or fails (the model
 *   is failed); load failures likewise; client errors and cancels do not count;
 * - the fallback score and the candidates' order over a declared set;
 * - sched_eta_ms from measured service times.
 */
#include <math.h>
#include <string.h>

#include "engine/sched/sched_internal.h"
#include "sched_test_util.h"
#include "util.h"

static double clock_now = 1e6;
static double test_clock(void *user)
{
    (void)user;
    return clock_now;
}

static void test_state_machine(void)
{
    sched_breaker b;
    sched_breaker_init(&b, &(sched_breaker_params){.failures = 3, .window_ms = 1000, .recovery_ms = 500});
    bool probe;
    double retry;
    CHECKF(sched_breaker_admit(&b, 0, &probe, &retry) && !probe, "closed admits");
    CHECKF(sched_breaker_fail(&b, 0) == SCHED_BREAKER_KEEP, "1st failure keeps it closed");
    CHECKF(sched_breaker_fail(&b, 100) == SCHED_BREAKER_KEEP, "2nd failure keeps it closed");
    /* the failure at 0 has left the window by 1050 */
    CHECKF(sched_breaker_fail(&b, 1050) == SCHED_BREAKER_KEEP && sched_breaker_recent(&b, 1050) == 2,
          "failures outside the window do not count (%d recent)", sched_breaker_recent(&b, 1050));
    CHECKF(sched_breaker_fail(&b, 1080) == SCHED_BREAKER_TRIP, "3 failures within the window open it");
    CHECKF(b.state == SCHED_BREAKER_OPEN && b.trips == 1, "open, one trip");
    CHECKF(!sched_breaker_admit(&b, 1200, &probe, &retry) && fabs(retry - 380) < 1e-9,
          "open refuses with the time left (%g ms)", retry);
    CHECKF(sched_breaker_fail(&b, 1300) == SCHED_BREAKER_KEEP, "a straggler while open changes nothing");
    CHECKF(sched_breaker_at(&b, 1580) == SCHED_BREAKER_HALF_OPEN, "half-open after the recovery time");
    CHECKF(sched_breaker_admit(&b, 1580, &probe, &retry) && probe, "one probe goes through");
    CHECKF(!sched_breaker_admit(&b, 1590, &probe, &retry) && retry > 0, "a second request waits for the probe");
    sched_breaker_probe_end(&b); /* cancelled by its client: no verdict */
    CHECKF(sched_breaker_admit(&b, 1600, &probe, &retry) && probe, "after a probe without verdict, the next probes");
    sched_breaker_ok(&b);
    CHECKF(b.state == SCHED_BREAKER_CLOSED && sched_breaker_recent(&b, 1600) == 0 && !b.reloaded,
          "the probe's success closes it and forgets the failures");
    /* Open again, and the probe (on the reloaded model) fails: declared failed. */
    for (int k = 0; k < 2; k++) sched_breaker_fail(&b, 2000 + k);
    CHECKF(sched_breaker_fail(&b, 2002) == SCHED_BREAKER_TRIP, "opens again after a success");
    sched_breaker_admit(&b, 2600, &probe, &retry);
    CHECKF(probe && sched_breaker_fail(&b, 2601) == SCHED_BREAKER_DEAD, "a failed probe declares the model failed");
    /* Open twice with no success between (probe never ran): also failed. */
    sched_breaker c;
    sched_breaker_init(&c, &(sched_breaker_params){.failures = 1, .window_ms = 1000, .recovery_ms = 10});
    CHECKF(sched_breaker_fail(&c, 0) == SCHED_BREAKER_TRIP, "failures=1 trips at once");
    sched_breaker_ok(&c); /* stale: a request from before it opened */
    CHECKF(c.state == SCHED_BREAKER_OPEN, "a success while open does not close it");
    sched_breaker_init(&c, NULL);
    CHECKF(c.p.failures == 5 && c.p.window_ms == 60e3 && c.p.recovery_ms == 30e3, "defaults 5, 60 s, 30 s");
}

static scheduler *make_sched(void)
{
    sched_params sp = sched_default_params();
    sp.engine.n_threads = 2;
    sp.breaker_clock = test_clock;
    scheduler *s = NULL;
    CHECKF(sched_create(&sp, &s) == VKI_OK, "sched_create: %s", vki_last_error());
    return s;
}

static sched_model_params model_params(const char *id, const char *path)
{
    sched_model_params mp = {.id = id, .path = path, .kind = SCHED_KIND_CHAT, .mp = vki_model_default_params()};
    mp.mp.backend = VKI_BACKEND_CPU;
    mp.mp.n_ctx = 256;
    mp.mp.n_seq_max = 2;
    mp.fb.breaker = (sched_breaker_params){.failures = 2, .window_ms = 10e3, .recovery_ms = 1000};
    return mp;
}

/* Submits a 2-token greedy request and waits for its end. */
static vki_status run(scheduler *s, int32_t i, double *eta_s)
{
    vki_generate_params gp = st_greedy(2);
    sched_request *r = NULL;
    double eta = 0;
    vki_status st = sched_submit_generate(s, i, "Once upon a time", &gp, SCHED_PRIO_NORMAL, 0, &r, &eta);
    if (eta_s) *eta_s = eta;
    if (st != VKI_OK) return st;
    sched_result res = st_wait_done(r);
    sched_request_release(r);
    return res.status;
}

static void test_step_failures(const char *path, int32_t n_fail, bool recovers)
{
    clock_now = 1e6;
    scheduler *s = make_sched();
    sched_model_params mp = model_params("a", path);
    mp.fb.test_fail_steps = n_fail;
    CHECKF(sched_add_model(s, &mp) == VKI_OK, "add: %s", vki_last_error());
    CHECKF(sched_wait_loaded(s, 60000), "loads");
    vki_status st = run(s, 0, NULL);
    CHECKF(st == VKI_ERR_DEVICE_LOST, "an injected step failure ends the request: %s", vki_status_str(st));
    sched_model_info info;
    sched_model_get_info(s, 0, &info);
    CHECKF(info.breaker == SCHED_BREAKER_CLOSED && info.breaker_failures == 1, "1 failure: still closed (%s, %d)",
          sched_breaker_state_name(info.breaker), info.breaker_failures);
    /* Client errors and cancels are not failures. */
    vki_generate_params bad = st_greedy(2);
    bad.n_predict = -1;
    sched_request *r = NULL;
    CHECKF(sched_submit_generate(s, 0, "x", &bad, SCHED_PRIO_NORMAL, 0, &r, NULL) == VKI_ERR_INVALID_ARGUMENT,
          "a bad request is refused");
    st = run(s, 0, NULL);
    CHECKF(st == VKI_ERR_DEVICE_LOST, "the 2nd failure ends its request too: %s", vki_status_str(st));
    CHECKF(sched_wait_state(s, 0, SCHED_UNLOADED, 30000), "the open breaker unloads the model");
    sched_model_get_info(s, 0, &info);
    CHECKF(info.breaker == SCHED_BREAKER_OPEN && info.breaker_trips == 1 && fabs(info.breaker_retry_s - 1) < 1e-6,
          "open, 1 trip, 1 s to wait (%s, %llu, %g)", sched_breaker_state_name(info.breaker),
          (unsigned long long)info.breaker_trips, info.breaker_retry_s);
    double eta = 0;
    st = run(s, 0, &eta);
    CHECKF(st == VKI_ERR_DEVICE_LOST && eta >= 1, "open: refused at once with a wait (%s, %g s)", vki_status_str(st),
          eta);
    clock_now += 1000;
    sched_model_get_info(s, 0, &info);
    CHECKF(info.breaker == SCHED_BREAKER_HALF_OPEN, "half-open after the recovery time (%s)",
          sched_breaker_state_name(info.breaker));
    st = run(s, 0, NULL);
    sched_stats stats;
    sched_model_get_stats(s, 0, &stats);
    sched_model_get_info(s, 0, &info);
    if (recovers) {
        CHECKF(st == VKI_OK, "the probe reloads the model and succeeds: %s", vki_status_str(st));
        CHECKF(info.breaker == SCHED_BREAKER_CLOSED && info.breaker_failures == 0 && sched_state_resident(info.state),
              "closed and resident again (%s, %s)", sched_breaker_state_name(info.breaker),
              sched_state_name(info.state));
        CHECKF(stats.loads == 2 && stats.breaker_reloads == 1 && stats.breaker_failures == 2,
              "loaded twice, one breaker reload, 2 failures (%llu, %llu, %llu)", (unsigned long long)stats.loads,
              (unsigned long long)stats.breaker_reloads, (unsigned long long)stats.breaker_failures);
        CHECKF(run(s, 0, NULL) == VKI_OK, "serves on");
    } else {
        CHECKF(st == VKI_ERR_DEVICE_LOST, "the probe fails too: %s", vki_status_str(st));
        CHECKF(sched_wait_state(s, 0, SCHED_FAILED, 30000), "reloaded once and failed again: the model failed");
        sched_model_get_info(s, 0, &info);
        CHECKF(strstr(info.error, "failed again") != NULL && info.fail_status == VKI_ERR_DEVICE_LOST,
              "the reason says so: %s", info.error);
        CHECKF(run(s, 0, NULL) == VKI_ERR_UNSUPPORTED, "a failed model takes no request");
    }
    sched_destroy(s);
}

static void test_load_failures(const char *path)
{
    clock_now = 1e6;
    scheduler *s = make_sched();
    sched_model_params mp = model_params("a", path);
    mp.on_demand = true;
    mp.fb.test_fail_loads = 2;
    CHECKF(sched_add_model(s, &mp) == VKI_OK, "add: %s", vki_last_error());
    CHECKF(sched_wait_state(s, 0, SCHED_UNLOADED, 30000), "on demand: unloaded");
    vki_status st = run(s, 0, NULL);
    sched_model_info info;
    sched_model_get_info(s, 0, &info);
    CHECKF(st == VKI_ERR_DEVICE_LOST && info.state == SCHED_UNLOADED && strstr(info.error, "injected load failure"),
          "a failed load ends the request and leaves the model unloaded with why (%s, %s, %s)", vki_status_str(st),
          sched_state_name(info.state), info.error);
    st = run(s, 0, NULL);
    sched_model_get_info(s, 0, &info);
    CHECKF(st == VKI_ERR_DEVICE_LOST && info.breaker == SCHED_BREAKER_OPEN, "the 2nd failed load opens it (%s, %s)",
          vki_status_str(st), sched_breaker_state_name(info.breaker));
    clock_now += 1500;
    st = run(s, 0, NULL);
    sched_model_get_info(s, 0, &info);
    CHECKF(st == VKI_OK && info.breaker == SCHED_BREAKER_CLOSED, "the probe's load works: closed (%s, %s)",
          vki_status_str(st), sched_breaker_state_name(info.breaker));
    sched_destroy(s);
}

/* A request cancelled while it runs is not a failure. */
static void test_cancel_not_counted(const char *path)
{
    scheduler *s = make_sched();
    sched_model_params mp = model_params("a", path);
    CHECKF(sched_add_model(s, &mp) == VKI_OK, "add: %s", vki_last_error());
    CHECKF(sched_wait_loaded(s, 60000), "loads");
    CHECKF(sched_eta_ms(s, 0) == 0, "no ETA before anything was measured");
    vki_generate_params gp = st_greedy(200);
    for (int k = 0; k < 3; k++) {
        sched_request *r = NULL;
        CHECKF(sched_submit_generate(s, 0, "Once", &gp, SCHED_PRIO_NORMAL, vki_time_ms() + 5e3, &r, NULL) == VKI_OK,
              "submit");
        st_wait_started(r);
        sched_request_cancel(r);
        sched_result res = st_wait_done(r);
        sched_request_release(r);
        CHECKF(res.status == VKI_ERR_CANCELLED || res.status == VKI_OK, "cancelled: %s", vki_status_str(res.status));
    }
    sched_stats st;
    sched_model_get_stats(s, 0, &st);
    CHECKF(st.breaker_failures == 0, "cancels are not failures (%llu)", (unsigned long long)st.breaker_failures);
    CHECKF(run(s, 0, NULL) == VKI_OK, "runs");
    double eta = sched_eta_ms(s, 0);
    sched_model_get_stats(s, 0, &st);
    CHECKF(eta > 0 && fabs(eta - st.service_ema_ms) < 1e-6, "idle: the ETA is one service time (%g vs %g ms)", eta,
          st.service_ema_ms);
    sched_destroy(s);
}

static void test_score(void)
{
    const sched_fb_weights w = {0};
    sched_fb_model from = {.kind = SCHED_KIND_CHAT, .caps = SCHED_CAP_CHAT | SCHED_CAP_TOOLS, .languages = "en,de",
                           .n_ctx = 4096};
    sched_fb_model same = from, narrow = from, emb = {.kind = SCHED_KIND_EMBEDDING, .caps = SCHED_CAP_EMBEDDING};
    narrow.caps = SCHED_CAP_CHAT;
    narrow.languages = "en";
    narrow.n_ctx = 1024;
    sched_needs none = {0};
    /* identical: 0.4 x 1 + 0.4 x 1 + 0.2 x 1 */
    CHECKF(fabs(sched_fallback_score(&from, &same, 1, &none, &w) - 1) < 1e-9, "identical and declared: 1");
    CHECKF(fabs(sched_fallback_score(&from, &same, 0, &none, &w) - 0.6) < 1e-9, "identical, not declared: 0.6");
    /* narrow: jaccard {chat,en} / {chat,tools,en,de} = 0.5, context 0.25 -> overlap 0.375 */
    double sn = sched_fallback_score(&from, &narrow, 0, &none, &w);
    CHECKF(fabs(sn - (0.4 * 0.375 + 0.2)) < 1e-9, "narrow: 0.35 (got %g)", sn);
    sched_needs tools = {.caps = SCHED_CAP_TOOLS, .n_tokens = 2000};
    double st = sched_fallback_score(&from, &narrow, 0, &tools, &w);
    CHECKF(fabs(st - 0.4 * 0.375) < 1e-9, "narrow misses tools and the room: request share 0 (got %g)", st);
    sched_fb_weights only_decl = {.declared = 1};
    CHECKF(fabs(sched_fallback_score(&from, &narrow, 0.7, &none, &only_decl) - 0.7) < 1e-9, "weights are configurable");
    CHECKF(sched_fallback_score(&from, &emb, 1, &none, &w) < 0, "another kind is never a candidate");
    sched_fb_model e1 = {.kind = SCHED_KIND_EMBEDDING, .caps = SCHED_CAP_EMBEDDING, .n_embd = 384}, e2 = e1, e3 = e1;
    e3.n_embd = 768;
    CHECKF(sched_fallback_score(&e1, &e2, 0, &none, &w) > 0, "embeddings of the same width: a candidate");
    CHECKF(sched_fallback_score(&e1, &e3, 1, &none, &w) < 0, "embeddings of another width: never");
}

/* The order over a declared set: chain first (as written), then automatic
 * candidates best first, those under min_score left out. */
static void test_candidates(const char *path)
{
    scheduler *s = make_sched();
    const char *chain[] = {"d", "nope", NULL};
    const char *ids[] = {"b", "c", "d"};
    const double scores[] = {0.2, 1.0, 0.1};
    sched_model_params a = model_params("a", path);
    a.on_demand = true;
    a.fb = (sched_fb_params){.chain = chain, .auto_candidates = true, .caps = SCHED_CAP_TOOLS, .languages = "en",
                             .compat_ids = ids, .compat = scores, .n_compat = 3};
    sched_model_params b = model_params("b", path), c = model_params("c", path), d = model_params("d", path),
                       e = model_params("e", path);
    b.on_demand = c.on_demand = d.on_demand = e.on_demand = true;
    b.fb.caps = SCHED_CAP_TOOLS;
    b.fb.languages = "en";
    c.fb.languages = "fr";
    CHECKF(sched_add_model(s, &a) == VKI_OK && sched_add_model(s, &b) == VKI_OK && sched_add_model(s, &c) == VKI_OK &&
              sched_add_model(s, &d) == VKI_OK && sched_add_model(s, &e) == VKI_OK,
          "add: %s", vki_last_error());
    for (int32_t i = 0; i < 5; i++) CHECKF(sched_wait_state(s, i, SCHED_UNLOADED, 30000), "opened");
    int32_t out[8];
    double sc[8];
    sched_needs need = {0};
    int32_t n = sched_fallback_candidates(s, 0, &need, out, sc, 8);
    /* b: 0.4x0.2 + 0.4x1 + 0.2 = 0.68; c: 0.4 + 0.4x(1/4+1)/2 + 0.2 = 0.85; e: 0.4x(1/3+1)/2 + 0.2 = 0.4667 < 0.5 */
    CHECKF(n == 3 && out[0] == 3 && out[1] == 2 && out[2] == 1, "order d (chain), c, b; e below 0.5 (n %d: %d %d %d)",
          n, n > 0 ? out[0] : -1, n > 1 ? out[1] : -1, n > 2 ? out[2] : -1);
    CHECKF(n == 3 && fabs(sc[1] - 0.85) < 1e-9 && fabs(sc[2] - 0.68) < 1e-9, "scores 0.85, 0.68 (%g, %g)", sc[1],
          sc[2]);
    CHECKF(!strcmp(sched_fallback_chain_id(s, 0, 0), "d") && sched_fallback_chain_id(s, 0, 2) == NULL,
          "the chain as configured");
    CHECKF(sched_fallback_candidates(s, 1, &need, out, sc, 8) == 0, "no chain and no auto: no candidates");
    sched_destroy(s);
}

/* What the server's triggers read: a missing file (FAILED, NOT_FOUND) and the
 * ETA, which grows with the rounds of slots the queue fills. */
static void test_trigger_signals(const char *path)
{
    scheduler *s = make_sched();
    sched_model_params gone = model_params("gone", "/nonexistent/model.gguf"), a = model_params("a", path);
    a.mp.n_seq_max = 1;
    CHECKF(sched_add_model(s, &gone) == VKI_OK && sched_add_model(s, &a) == VKI_OK, "add: %s", vki_last_error());
    CHECKF(sched_wait_state(s, 0, SCHED_FAILED, 30000), "a missing file fails the model");
    sched_model_info info;
    sched_model_get_info(s, 0, &info);
    CHECKF(info.fail_status == VKI_ERR_NOT_FOUND, "missing: fail_status NOT_FOUND (%s)",
           vki_status_str(info.fail_status));
    CHECKF(sched_wait_loaded(s, 60000) == false && sched_wait_state(s, 1, SCHED_RESIDENT_CPU, 60000), "a loads");
    CHECKF(run(s, 1, NULL) == VKI_OK, "a runs");
    const double one = sched_eta_ms(s, 1);
    vki_generate_params gp = st_greedy(240); /* long enough to be running when the ETA is read */
    sched_request *r[3] = {0};
    for (int k = 0; k < 3; k++)
        CHECKF(sched_submit_generate(s, 1, "Once", &gp, SCHED_PRIO_NORMAL, 0, &r[k], NULL) == VKI_OK, "submit");
    st_wait_started(r[0]);
    const double busy = sched_eta_ms(s, 1);
    CHECKF(one > 0 && busy > one, "the ETA grows with the queue: %g ms idle, %g ms with 3 ahead", one, busy);
    sched_stats st;
    sched_model_get_stats(s, 1, &st);
    CHECKF(fabs(busy - 4 * st.service_ema_ms) < 1e-6 * busy + 1e-9, "busy: 4 rounds of one slot (%g vs 4 x %g)", busy,
           st.service_ema_ms);
    for (int k = 0; k < 3; k++) {
        sched_request_cancel(r[k]);
        st_wait_done(r[k]);
        sched_request_release(r[k]);
    }
    sched_destroy(s);
}

int main(int argc, char **argv)
{
    const char *path = st_model_arg(argc, argv, "test_breaker");
    test_state_machine();
    test_score();
    test_candidates(path);
    test_step_failures(path, 3, false);
    test_step_failures(path, 2, true);
    test_load_failures(path);
    test_cancel_not_counted(path);
    test_trigger_signals(path);
    return test_finish("test_breaker");
}
