/*
 * test_stats_window.c: server/stats_window.c alone: per-minute sums,
 * percentiles within the histogram's 5 %, minutes that roll out of the
 * window, samples too old to count, the rates of a young server, and
 * adds from several threads at once losing nothing.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "server/stats_window.h"
#include "test_util.h"

static bool near(double got, double want, double rel) { return fabs(got - want) <= rel * want; }

static void test_percentiles(void)
{
    const double t0 = 1700000040.0; /* a minute's start (divisible by 60) */
    srv_window *w = srv_window_create(15, t0 - 3600);
    CHECK(w);
    /* 1..1000 ms in one minute: p50 = 500, p95 = 950, p99 = 990 */
    for (int i = 1; i <= 1000; i++)
        srv_window_add(w, &(srv_window_sample){.t_s = t0 + 10, .latency_ms = i, .error = i % 100 == 0,
                                               .prompt_tokens = 3, .completion_tokens = 2});
    srv_window_summary s;
    srv_window_get(w, t0 + 30, &s);
    CHECK(s.n_minutes == 15);
    CHECK(s.requests == 1000 && s.errors == 10 && s.prompt_tokens == 3000 && s.completion_tokens == 2000);
    CHECKF(near(s.p50_ms, 500, 0.05), "p50 %g", s.p50_ms);
    CHECKF(near(s.p95_ms, 950, 0.05), "p95 %g", s.p95_ms);
    CHECKF(near(s.p99_ms, 990, 0.05), "p99 %g", s.p99_ms);
    /* the last minute is the current one; the others are empty */
    CHECK(s.minute[14].t_s == t0 && s.minute[14].requests == 1000);
    CHECK(near(s.minute[14].p50_ms, 500, 0.05));
    CHECK(s.minute[13].requests == 0 && s.minute[13].p50_ms == 0 && s.minute[13].t_s == t0 - 60);
    /* 14 whole minutes and 30 s of this one */
    CHECKF(near(s.span_s, 14 * 60 + 30, 1e-9), "span %g", s.span_s);
    CHECK(near(s.tokens_per_s, 2000 / s.span_s, 1e-9));
    CHECK(near(s.requests_per_min, 1000 * 60 / s.span_s, 1e-9));

    /* a second minute: the window's percentiles merge both */
    for (int i = 0; i < 1000; i++)
        srv_window_add(w, &(srv_window_sample){.t_s = t0 + 70, .latency_ms = 5000});
    srv_window_get(w, t0 + 80, &s);
    CHECK(s.requests == 2000 && s.minute[14].requests == 1000 && s.minute[13].requests == 1000);
    CHECKF(near(s.p50_ms, 1000, 0.05), "merged p50 %g", s.p50_ms); /* the 1000th of 2000 */
    CHECKF(near(s.p95_ms, 5000, 0.05), "merged p95 %g", s.p95_ms);
    CHECK(near(s.minute[14].p99_ms, 5000, 0.05));

    /* 15 minutes on, the first minute is gone, the second still counts */
    srv_window_get(w, t0 + 15 * 60 + 5, &s);
    CHECKF(s.requests == 1000, "after 15 min: %llu", (unsigned long long)s.requests);
    srv_window_get(w, t0 + 16 * 60 + 5, &s);
    CHECK(s.requests == 0 && s.p50_ms == 0 && s.tokens_per_s == 0);
    /* a sample older than the slot's minute is dropped, not mixed in */
    srv_window_add(w, &(srv_window_sample){.t_s = t0 + 16 * 60 + 1, .latency_ms = 1});
    srv_window_add(w, &(srv_window_sample){.t_s = t0 + 1 * 60 + 1, .latency_ms = 1}); /* same slot, older */
    srv_window_get(w, t0 + 16 * 60 + 5, &s);
    CHECK(s.requests == 1);
    srv_window_destroy(w);
}

static void test_young_and_bad(void)
{
    const double t0 = 1700000040.0;
    srv_window *w = srv_window_create(0, t0 + 20); /* 0 = 15 minutes; started 20 s into this minute */
    CHECK(w);
    srv_window_add(w, &(srv_window_sample){.t_s = t0 + 25, .latency_ms = 0.2, .completion_tokens = 100});
    srv_window_add(w, &(srv_window_sample){.t_s = t0 + 26, .latency_ms = NAN, .completion_tokens = -5});
    srv_window_summary s;
    srv_window_get(w, t0 + 30, &s);
    CHECK(s.n_minutes == 15 && s.requests == 2 && s.completion_tokens == 100);
    /* the rates are over the server's 10 s of life, not 15 minutes */
    CHECKF(near(s.span_s, 10, 1e-9), "span %g", s.span_s);
    CHECK(near(s.tokens_per_s, 10, 1e-9));
    CHECK(s.p50_ms > 0 && s.p50_ms < 1.1); /* sub-millisecond and NaN fall in the first bin */
    srv_window_destroy(w);
    CHECK(!srv_window_create(-1, 0) && !srv_window_create(SRV_WINDOW_MAX_MINUTES + 1, 0));
    srv_window_add(NULL, &(srv_window_sample){.t_s = t0});
    srv_window_get(NULL, t0, &s);
    CHECK(s.requests == 0);
    srv_window_destroy(NULL);
}

#define N_THREADS 4
#define PER_THREAD 20000

static void *adder(void *arg)
{
    srv_window *w = arg;
    for (int i = 0; i < PER_THREAD; i++)
        srv_window_add(w, &(srv_window_sample){.t_s = 1700000000.0 + (i % 120), .latency_ms = 10,
                                               .completion_tokens = 1});
    return NULL;
}

static void test_threads(void)
{
    srv_window *w = srv_window_create(5, 0);
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) pthread_create(&th[i], NULL, adder, w);
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    srv_window_summary s;
    srv_window_get(w, 1700000000.0 + 119, &s);
    CHECKF(s.requests == N_THREADS * PER_THREAD && s.completion_tokens == N_THREADS * PER_THREAD, "%llu",
           (unsigned long long)s.requests);
    srv_window_destroy(w);
}

int main(void)
{
    test_percentiles();
    test_young_and_bad();
    test_threads();
    return test_finish("test_stats_window");
}
