/*
 * stats_window.c: the per-minute buckets behind srv_window. A bucket is
 * reused when its slot's minute comes round again, so the window needs no
 * timer. Latencies go into log-spaced bins (8 per doubling from 1 ms to
 * about 12 days), so a percentile over any set of minutes is a merge of
 * counts, never a sort of samples.
 */
#include "server/stats_window.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BINS_PER_DOUBLING 8
#define N_BINS (BINS_PER_DOUBLING * 30) /* 1 ms .. 2^30 ms */

typedef struct bucket {
    int64_t  minute;     /* floor(t / 60); -1 = never used */
    uint64_t requests, errors, prompt_tokens, completion_tokens;
    uint32_t bin[N_BINS];
} bucket;

struct srv_window {
    pthread_mutex_t mu;
    int32_t         n;
    double          start_s;
    bucket          b[SRV_WINDOW_MAX_MINUTES];
};

srv_window *srv_window_create(int32_t n_minutes, double start_s)
{
    if (n_minutes == 0) n_minutes = 15;
    if (n_minutes < 1 || n_minutes > SRV_WINDOW_MAX_MINUTES) return NULL;
    srv_window *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    pthread_mutex_init(&w->mu, NULL);
    w->n = n_minutes;
    w->start_s = start_s;
    for (int32_t i = 0; i < SRV_WINDOW_MAX_MINUTES; i++) w->b[i].minute = -1;
    return w;
}

void srv_window_destroy(srv_window *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static int bin_of(double ms)
{
    if (!(ms > 1.0)) return 0; /* NaN and sub-millisecond too */
    int k = (int)(log2(ms) * BINS_PER_DOUBLING);
    return k >= N_BINS ? N_BINS - 1 : k;
}

/* The bin's geometric middle: at most 2^(1/16) - 1, about 4.4 %, off the
 * samples in it. */
static double bin_value(int k) { return exp2((k + 0.5) / BINS_PER_DOUBLING); }

void srv_window_add(srv_window *w, const srv_window_sample *s)
{
    if (!w || !s || !(s->t_s >= 0)) return;
    const int64_t minute = (int64_t)(s->t_s / 60.0);
    pthread_mutex_lock(&w->mu);
    bucket *b = &w->b[minute % w->n];
    if (b->minute < minute) {
        memset(b, 0, sizeof *b);
        b->minute = minute;
    }
    if (b->minute == minute) { /* else older than the window: dropped */
        b->requests++;
        b->errors += s->error;
        b->prompt_tokens += (uint64_t)(s->prompt_tokens > 0 ? s->prompt_tokens : 0);
        b->completion_tokens += (uint64_t)(s->completion_tokens > 0 ? s->completion_tokens : 0);
        b->bin[bin_of(s->latency_ms)]++;
    }
    pthread_mutex_unlock(&w->mu);
}

/* The q-quantile (0..1) of the counts in bin; 0 when there are none. */
static double quantile(const uint64_t *bin, uint64_t total, double q)
{
    if (!total) return 0;
    /* the smallest value with at least ceil(q * total) samples at or below it */
    uint64_t want = (uint64_t)ceil(q * (double)total), cum = 0;
    if (want < 1) want = 1;
    for (int k = 0; k < N_BINS; k++) {
        cum += bin[k];
        if (cum >= want) return bin_value(k);
    }
    return bin_value(N_BINS - 1);
}

void srv_window_get(srv_window *w, double now_s, srv_window_summary *out)
{
    memset(out, 0, sizeof *out);
    if (!w) return;
    const int64_t now_min = (int64_t)(now_s / 60.0);
    uint64_t all[N_BINS] = {0}, one[N_BINS];
    out->n_minutes = w->n;
    pthread_mutex_lock(&w->mu);
    for (int32_t j = 0; j < w->n; j++) {
        const int64_t minute = now_min - (w->n - 1) + j;
        srv_window_minute *m = &out->minute[j];
        m->t_s = (double)minute * 60.0;
        if (minute < 0) continue;
        const bucket *b = &w->b[minute % w->n];
        if (b->minute != minute) continue;
        m->requests = b->requests;
        m->errors = b->errors;
        m->prompt_tokens = b->prompt_tokens;
        m->completion_tokens = b->completion_tokens;
        for (int k = 0; k < N_BINS; k++) {
            one[k] = b->bin[k];
            all[k] += b->bin[k];
        }
        m->p50_ms = quantile(one, b->requests, 0.50);
        m->p95_ms = quantile(one, b->requests, 0.95);
        m->p99_ms = quantile(one, b->requests, 0.99);
        out->requests += b->requests;
        out->errors += b->errors;
        out->prompt_tokens += b->prompt_tokens;
        out->completion_tokens += b->completion_tokens;
    }
    pthread_mutex_unlock(&w->mu);
    out->p50_ms = quantile(all, out->requests, 0.50);
    out->p95_ms = quantile(all, out->requests, 0.95);
    out->p99_ms = quantile(all, out->requests, 0.99);
    /* The current minute counts only as far as it has gone. */
    double from = (double)(now_min - (w->n - 1)) * 60.0;
    if (w->start_s > from) from = w->start_s;
    out->span_s = now_s - from;
    if (out->span_s < 1) out->span_s = 1;
    out->requests_per_min = (double)out->requests * 60.0 / out->span_s;
    out->tokens_per_s = (double)out->completion_tokens / out->span_s;
}
