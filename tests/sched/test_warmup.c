/*
 * test_warmup.c: the warm-up predictor and planner on replayed synthetic
 * traffic with an injected clock: three weeks of a morning chat model, a
 * nightly summary model and a weekend NPC model sharing a device that holds
 * one of them. A simulated device loads on demand (a "cold start") and the
 * planner runs every five minutes; by the third week the morning model must
 * be resident before 9:00 every day, with no cold starts for it, and the
 * planner must never evict a model hotter than the one it loads. Also: the
 * hour-of-week arithmetic, decay of abandoned habits, the planner's eviction
 * rules one by one, and the history file (round trip, refusals).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sched/warmup.h"
#include "error.h"
#include "test_util.h"

#define HOUR 3600.0
#define DAY  86400.0
#define WEEK (7 * DAY)
/* Monday 2026-11-02 00:00 UTC. */
#define T0 1793577600.0
#define MIB (1024ull * 1024ull)

static warm_params utc_params(void)
{
    warm_params p = warm_default_params();
    p.utc_offset_s = 0;
    return p;
}

static void test_hours(void)
{
    warm_params p = utc_params();
    warm_history h;
    warm_init(&h, &p);
    CHECK(warm_hour_of_week(&h, T0) == 0);
    CHECK(warm_hour_of_week(&h, T0 + 9 * HOUR + 59 * 60) == 9);
    CHECK(warm_hour_of_week(&h, T0 + WEEK - 1) == 167);
    CHECK(warm_hour_of_week(&h, T0 + WEEK) == 0);
    CHECK(warm_hour_of_week(&h, T0 - 1) == 167);
    /* UTC+2: Monday 00:00 local is Sunday 22:00 UTC. */
    h.p.utc_offset_s = 2 * HOUR;
    CHECK(warm_hour_of_week(&h, T0 - 2 * HOUR) == 0);
    warm_prediction none = warm_predict(&h, "nobody", T0, HOUR);
    CHECK(none.p == 0 && none.expected == 0);
    warm_free(&h);
}

/* ---- the replay -------------------------------------------------------- */

enum { CHAT, SUMMARY, NPC, N_MODELS };
static const char *ids[N_MODELS] = {"chat-morning", "summary-night", "npc-weekend"};

typedef struct sim {
    warm_history h;
    bool         resident[N_MODELS];
    double       last_use[N_MODELS];
    int          cold[3][N_MODELS];   /* cold starts per week and model     */
    int          preloads, skips, bad_evictions;
    int          chat_ready_days;     /* week 3: days chat was resident at 8:59 */
} sim;

static const uint64_t model_bytes = 2048 * MIB, budget = 3000 * MIB;

/* Request times: chat 9:00-10:30 every day, summary 01:00-03:00 every day,
 * NPC 14:00-18:00 on Saturday and Sunday; a few requests each, jittered. */
static int requests_in(int model, double day_start, int dow, uint64_t *rng, double *out)
{
    int n = 0;
    if (model == CHAT)
        for (int i = 0; i < 6; i++) out[n++] = day_start + 9 * HOUR + (double)(test_rand_u64(rng) % 5400);
    if (model == SUMMARY)
        for (int i = 0; i < 4; i++) out[n++] = day_start + 1 * HOUR + (double)(test_rand_u64(rng) % 7200);
    if (model == NPC && dow >= 5)
        for (int i = 0; i < 8; i++) out[n++] = day_start + 14 * HOUR + (double)(test_rand_u64(rng) % 14400);
    return n;
}

static uint64_t used_bytes(const sim *s)
{
    uint64_t u = 0;
    for (int m = 0; m < N_MODELS; m++) u += s->resident[m] ? model_bytes : 0;
    return u;
}

/* A request on the simulated device: load on demand, evicting the least
 * recently used resident when it does not fit. */
static void serve(sim *s, int m, double t, int week)
{
    CHECK(warm_record_request(&s->h, ids[m], t) == VKI_OK);
    if (!s->resident[m]) {
        s->cold[week][m]++;
        while (used_bytes(s) + model_bytes > budget) {
            int lru = -1;
            for (int j = 0; j < N_MODELS; j++)
                if (s->resident[j] && (lru < 0 || s->last_use[j] < s->last_use[lru])) lru = j;
            s->resident[lru] = false;
        }
        s->resident[m] = true;
        CHECK(warm_record_load(&s->h, ids[m], 20000) == VKI_OK);
    }
    s->last_use[m] = t;
}

/* The planner's tick, applied to the simulated device. */
static void tick(sim *s, double t, double horizon)
{
    warm_cand c[N_MODELS];
    warm_decision d[N_MODELS];
    for (int m = 0; m < N_MODELS; m++)
        c[m] = (warm_cand){.id = ids[m], .resident = s->resident[m], .bytes = model_bytes, .loadable = true,
                           .busy = s->resident[m] && t - s->last_use[m] < 60};
    warm_plan(&s->h, c, N_MODELS, budget, used_bytes(s), t, horizon, d);
    for (int m = 0; m < N_MODELS; m++) {
        if (d[m].action == WARM_SKIP) s->skips++;
        if (d[m].action != WARM_PRELOAD) continue;
        CHECKF(!s->resident[m], "preload of resident %s", ids[m]);
        CHECKF(strlen(d[m].reason) > 0, "preload of %s without a reason", ids[m]);
        for (int e = 0; e < d[m].n_evict; e++) {
            int j = d[m].evict[e];
            if (!(d[j].pred.p < d[m].pred.p) || c[j].busy) s->bad_evictions++;
            s->resident[j] = false;
        }
        CHECKF(used_bytes(s) + model_bytes <= budget, "preload of %s over budget", ids[m]);
        s->resident[m] = true;
        s->last_use[m] = t;
        s->preloads++;
    }
}

static void test_replay(void)
{
    sim s;
    memset(&s, 0, sizeof s);
    warm_params p = utc_params();
    warm_init(&s.h, &p);
    uint64_t rng = 42;
    const double step = 300, horizon = step + 2 * 20.0 + 60;
    for (int week = 0; week < 3; week++)
        for (int day = 0; day < 7; day++) {
            double ds = T0 + week * WEEK + day * DAY;
            double times[N_MODELS][16];
            int nt[N_MODELS];
            for (int m = 0; m < N_MODELS; m++) {
                nt[m] = requests_in(m, ds, day, &rng, times[m]);
                /* sorted, so the day replays in order */
                for (int a = 1; a < nt[m]; a++)
                    for (int b = a; b > 0 && times[m][b - 1] > times[m][b]; b--) {
                        double x = times[m][b]; times[m][b] = times[m][b - 1]; times[m][b - 1] = x;
                    }
            }
            int next[N_MODELS] = {0};
            for (double t = ds; t < ds + DAY; t += step) {
                tick(&s, t, horizon);
                if (week == 2 && fabs(t - (ds + 9 * HOUR - step)) < 1) s.chat_ready_days += s.resident[CHAT];
                for (int m = 0; m < N_MODELS; m++)
                    while (next[m] < nt[m] && times[m][next[m]] < t + step) serve(&s, m, times[m][next[m]++], week);
            }
        }
    printf("replay: cold starts chat %d/%d/%d summary %d/%d/%d npc %d/%d/%d (weeks 1/2/3); %d preloads, %d skips; "
           "chat resident at 8:55 on %d of 7 days of week 3\n",
           s.cold[0][CHAT], s.cold[1][CHAT], s.cold[2][CHAT], s.cold[0][SUMMARY], s.cold[1][SUMMARY],
           s.cold[2][SUMMARY], s.cold[0][NPC], s.cold[1][NPC], s.cold[2][NPC], s.preloads, s.skips,
           s.chat_ready_days);
    CHECK(s.cold[0][CHAT] >= 1);   /* the first days it learns       */
    CHECK(s.cold[2][CHAT] == 0);   /* then the morning model is ready */
    CHECK(s.cold[2][SUMMARY] == 0);
    CHECK(s.chat_ready_days == 7);
    CHECK(s.bad_evictions == 0);
    CHECK(s.preloads > 0);

    /* Abandoned: eight weeks with no chat, and the morning stops counting. */
    double later = T0 + 11 * WEEK + 9 * HOUR - 600;
    warm_prediction before = warm_predict(&s.h, "chat-morning", T0 + 3 * WEEK + 9 * HOUR - 600, 900);
    warm_prediction after = warm_predict(&s.h, "chat-morning", later, 900);
    printf("chat at 8:50: p=%.2f after three weeks of use, p=%.2f after eight more without\n", before.p, after.p);
    CHECK(before.p > 0.9);
    CHECK(after.p < p.threshold);
    /* ... and in the middle of the night nothing predicts chat. */
    CHECK(warm_predict(&s.h, "chat-morning", T0 + 3 * WEEK + 4 * HOUR, 900).p < 0.05);
    warm_free(&s.h);
}

/* ---- the planner's rules one at a time --------------------------------- */

static void test_plan_rules(void)
{
    warm_params p = utc_params();
    warm_history h;
    warm_init(&h, &p);
    /* "hot" every day at 10:00, "warm" every other day at 10:00, "cold"
     * once, a week ago. */
    for (int d = 0; d < 14; d++) {
        double t = T0 + d * DAY + 10 * HOUR + 60;
        CHECK(warm_record_request(&h, "hot", t) == VKI_OK);
        if (d % 2 == 0) CHECK(warm_record_request(&h, "warm", t) == VKI_OK);
    }
    CHECK(warm_record_request(&h, "cold", T0 + 7 * DAY + 15 * HOUR) == VKI_OK);
    double t = T0 + 14 * DAY + 10 * HOUR - 300;
    warm_prediction ph = warm_predict(&h, "hot", t, 600), pw = warm_predict(&h, "warm", t, 600),
                    pc = warm_predict(&h, "cold", t, 600);
    printf("plan: p(hot)=%.2f p(warm)=%.2f p(cold)=%.2f\n", ph.p, pw.p, pc.p);
    CHECK(ph.p > pw.p && pw.p > pc.p);
    CHECK(ph.p >= p.threshold && pc.p < p.threshold);

    warm_decision d[3];
    /* Free room: hot loads with no eviction. */
    warm_cand c1[] = {{.id = "hot", .bytes = 100 * MIB, .loadable = true}};
    warm_plan(&h, c1, 1, 1000 * MIB, 0, t, 600, d);
    CHECK(d[0].action == WARM_PRELOAD && d[0].n_evict == 0);
    printf("plan: %s\n", d[0].reason);
    /* Not loadable (failed): never. */
    c1[0].loadable = false;
    warm_plan(&h, c1, 1, 1000 * MIB, 0, t, 600, d);
    CHECK(d[0].action == WARM_NONE);
    /* Full with a colder idle resident: it is evicted. */
    warm_cand c2[] = {{.id = "hot", .bytes = 600 * MIB, .loadable = true},
                      {.id = "cold", .resident = true, .bytes = 600 * MIB, .loadable = true}};
    warm_plan(&h, c2, 2, 1000 * MIB, 600 * MIB, t, 600, d);
    CHECK(d[0].action == WARM_PRELOAD && d[0].n_evict == 1 && d[0].evict[0] == 1);
    printf("plan: %s\n", d[0].reason);
    /* ... but not when it is busy, pinned, or hotter. */
    c2[1].busy = true;
    warm_plan(&h, c2, 2, 1000 * MIB, 600 * MIB, t, 600, d);
    CHECK(d[0].action == WARM_SKIP);
    printf("plan: %s\n", d[0].reason);
    c2[1].busy = false, c2[1].pinned = true;
    warm_plan(&h, c2, 2, 1000 * MIB, 600 * MIB, t, 600, d);
    CHECK(d[0].action == WARM_SKIP);
    warm_cand c3[] = {{.id = "warm", .bytes = 600 * MIB, .loadable = true},
                      {.id = "hot", .resident = true, .bytes = 600 * MIB, .loadable = true}};
    warm_plan(&h, c3, 2, 1000 * MIB, 600 * MIB, t, 600, d);
    CHECK(d[0].action != WARM_PRELOAD);
    /* Bigger than the whole budget: skipped with that reason. */
    warm_cand c4[] = {{.id = "hot", .bytes = 2000 * MIB, .loadable = true}};
    warm_plan(&h, c4, 1, 1000 * MIB, 0, t, 600, d);
    CHECK(d[0].action == WARM_SKIP && strstr(d[0].reason, "budget"));
    /* Two wanted, room for one: the hotter goes first. */
    warm_cand c5[] = {{.id = "warm", .bytes = 600 * MIB, .loadable = true},
                      {.id = "hot", .bytes = 600 * MIB, .loadable = true}};
    h.p.threshold = 0.2;
    warm_plan(&h, c5, 2, 1000 * MIB, 0, t, 600, d);
    CHECK(d[1].action == WARM_PRELOAD && d[0].action == WARM_SKIP);
    warm_free(&h);
}

/* ---- the file ----------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_file(void)
{
    char dir[] = "/tmp/vki-warm-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/usage.json", dir);
    warm_params p = utc_params();
    warm_history h, g;
    warm_init(&h, &p);
    warm_init(&g, &p);
    CHECK(warm_load(&g, path) == VKI_ERR_NOT_FOUND);
    for (int d = 0; d < 10; d++) CHECK(warm_record_request(&h, "a", T0 + d * DAY + 9 * HOUR) == VKI_OK);
    CHECK(warm_record_request(&h, "b b/\"quoted\"", T0 + 3 * DAY) == VKI_OK);
    CHECK(warm_record_load(&h, "a", 1234) == VKI_OK);
    CHECK(warm_save(&h, path) == VKI_OK);
    CHECK(warm_load(&g, path) == VKI_OK);
    CHECK(g.n == 2 && g.m[0].n_requests == 10 && g.m[0].load_ms == 1234);
    double t = T0 + 10 * DAY + 9 * HOUR - 300;
    warm_prediction a = warm_predict(&h, "a", t, 600), b = warm_predict(&g, "a", t, 600);
    CHECKF(fabs(a.p - b.p) < 1e-5, "p %.6f after reload, %.6f before", b.p, a.p);
    CHECK(warm_predict(&g, "b b/\"quoted\"", t, 600).confidence > 0);

    /* Refusals leave what was loaded alone. */
    const char *bad[] = {"", "not json", "{\"version\":2,\"as_of\":1,\"models\":{}}",
                         "{\"version\":1,\"as_of\":1,\"models\":{\"x\":{\"hours\":[1,2]}}}",
                         "{\"version\":1,\"as_of\":1,\"models\":[]}",
                         "{\"version\":1,\"as_of\":1,\"models\":{\"\":{}}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i]);
        vki_status st = warm_load(&g, path);
        CHECKF(st == VKI_ERR_BAD_FILE, "case %zu: %s", i, vki_status_str(st));
        CHECK(strstr(vki_last_error(), path) != NULL);
        CHECK(g.n == 2);
    }
    printf("file: refused as expected: %s\n", vki_last_error());
    /* An unwritable place is an error, not a crash. */
    CHECK(warm_save(&h, "/nonexistent-dir/usage.json") == VKI_ERR_BAD_FILE);
    unlink(path);
    rmdir(dir);
    warm_free(&h);
    warm_free(&g);
    warm_free(&g); /* twice is harmless */
}

int main(void)
{
    test_hours();
    test_replay();
    test_plan_rules();
    test_file();
    return test_finish("test_warmup");
}
