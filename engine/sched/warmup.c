/*
 * warmup.c: the usage history, the predictor and the preload planner (see
 * warmup.h). Two counts per hour of the week: requests, and "active"
 * hours (an hour instance with at least one request counts once). The
 * chance that a model is needed comes from the active counts: a model asked
 * once at 9:00 every day is as needed at 9:00 as one asked a hundred times.
 */
#include "engine/sched/warmup.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "util.h"

#define HOUR_S 3600.0
#define DAY_S  86400.0
#define WEEK_S 604800.0
/* 1970-01-01 was a Thursday: shift so Monday 00:00 is hour 0. */
#define EPOCH_MONDAY_SHIFT_S (3.0 * DAY_S)

warm_params warm_default_params(void)
{
    warm_params p = {.half_life_weeks = 4.0, .threshold = 0.5, .utc_offset_s = 0.0};
    time_t now = time(NULL);
    struct tm lt;
    if (localtime_r(&now, &lt)) p.utc_offset_s = (double)lt.tm_gmtoff;
    return p;
}

void warm_init(warm_history *h, const warm_params *p)
{
    memset(h, 0, sizeof *h);
    h->p = p ? *p : warm_default_params();
    if (!(h->p.half_life_weeks > 0)) h->p.half_life_weeks = 4.0;
    if (!(h->p.threshold > 0)) h->p.threshold = 0.5;
}

void warm_free(warm_history *h)
{
    if (!h) return;
    for (int32_t i = 0; i < h->n; i++) free(h->m[i].id);
    free(h->m);
    warm_params p = h->p;
    memset(h, 0, sizeof *h);
    h->p = p;
}

static double decay(const warm_history *h, double dt_s)
{
    return pow(0.5, dt_s / (h->p.half_life_weeks * WEEK_S));
}

/* Brings every count to time t (counts only ever decay forward). */
static void decay_to(warm_history *h, double t_s)
{
    if (h->as_of_s == 0) {
        h->as_of_s = t_s;
        return;
    }
    if (t_s <= h->as_of_s) return;
    double f = decay(h, t_s - h->as_of_s);
    for (int32_t i = 0; i < h->n; i++) {
        for (int k = 0; k < WARM_HOURS; k++) h->m[i].hour[k] *= f, h->m[i].active[k] *= f;
    }
    h->as_of_s = t_s;
}

warm_model *warm_model_get(warm_history *h, const char *id)
{
    for (int32_t i = 0; i < h->n; i++)
        if (!strcmp(h->m[i].id, id)) return &h->m[i];
    if (h->n == h->cap) {
        int32_t cap = h->cap ? 2 * h->cap : 8;
        warm_model *m = realloc(h->m, (size_t)cap * sizeof *m);
        if (!m) return NULL;
        h->m = m, h->cap = cap;
    }
    char *copy = strdup(id);
    if (!copy) return NULL;
    warm_model *m = &h->m[h->n++];
    memset(m, 0, sizeof *m);
    m->id = copy;
    m->last_active_hour = -1;
    return m;
}

int32_t warm_hour_of_week(const warm_history *h, double t_s)
{
    double local = t_s + h->p.utc_offset_s + EPOCH_MONDAY_SHIFT_S;
    int64_t hr = (int64_t)floor(local / HOUR_S);
    int64_t w = hr % WARM_HOURS;
    return (int32_t)(w < 0 ? w + WARM_HOURS : w);
}

static int64_t abs_hour(const warm_history *h, double t_s) { return (int64_t)floor((t_s + h->p.utc_offset_s) / HOUR_S); }

vki_status warm_record_request(warm_history *h, const char *id, double t_s)
{
    warm_model *m = warm_model_get(h, id);
    if (!m) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "warm-up history: no memory for model '%s'", id);
    decay_to(h, t_s);
    /* A late timestamp (clock stepped back) counts with the weight it has now. */
    double w = t_s < h->as_of_s ? decay(h, h->as_of_s - t_s) : 1.0;
    int32_t hw = warm_hour_of_week(h, t_s);
    m->hour[hw] += w;
    int64_t ah = abs_hour(h, t_s);
    if (ah != m->last_active_hour) {
        m->active[hw] += w;
        if (ah > m->last_active_hour) m->last_active_hour = ah;
    }
    if (m->first_s == 0 || t_s < m->first_s) m->first_s = t_s;
    if (t_s > m->last_s) m->last_s = t_s;
    m->n_requests++;
    return VKI_OK;
}

vki_status warm_record_load(warm_history *h, const char *id, double load_ms)
{
    warm_model *m = warm_model_get(h, id);
    if (!m) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "warm-up history: no memory for model '%s'", id);
    if (load_ms >= 0 && isfinite(load_ms)) m->load_ms = m->load_ms > 0 ? 0.7 * m->load_ms + 0.3 * load_ms : load_ms;
    return VKI_OK;
}

/* How many times hour-of-week hw has begun in [first, t], each weighed by
 * its decay at h->as_of_s (the time the counts are decayed to). */
static double occurrences(const warm_history *h, double first_s, double t_s, int32_t hw)
{
    double local_first = first_s + h->p.utc_offset_s + EPOCH_MONDAY_SHIFT_S;
    /* The start of the hour containing `first` counts: a request at 9:20
     * on the first day is an occurrence of the 9:00 hour. */
    double start = floor(local_first / HOUR_S) * HOUR_S;
    double week0 = floor(start / WEEK_S) * WEEK_S;
    double at = week0 + hw * HOUR_S;
    if (at < start) at += WEEK_S;
    double end = t_s + h->p.utc_offset_s + EPOCH_MONDAY_SHIFT_S;
    double ref = h->as_of_s + h->p.utc_offset_s + EPOCH_MONDAY_SHIFT_S;
    double sum = 0;
    /* Beyond ~50 half-lives a week weighs nothing; bound the walk. */
    int max_weeks = (int)(h->p.half_life_weeks * 50) + 2;
    double last = end - (double)max_weeks * WEEK_S;
    if (at < last) at += ceil((last - at) / WEEK_S) * WEEK_S;
    for (; at <= end; at += WEEK_S) sum += at <= ref ? decay(h, ref - at) : 1.0;
    return sum;
}

typedef struct hour_est {
    double p;        /* P(at least one request in this hour) */
    double expected; /* requests in this hour                */
} hour_est;

static hour_est estimate_hour(const warm_history *h, const warm_model *m, double t_s, int32_t hw)
{
    hour_est e = {0, 0};
    double occ_w = occurrences(h, m->first_s, t_s, hw);
    double pw = 0, ew = 0, pd = 0, ed = 0, occ_d = 0, act_d = 0, req_d = 0;
    if (occ_w > 0) pw = m->active[hw] / occ_w, ew = m->hour[hw] / occ_w;
    for (int d = 0; d < 7; d++) {
        int32_t k = d * 24 + hw % 24;
        occ_d += occurrences(h, m->first_s, t_s, k);
        act_d += m->active[k];
        req_d += m->hour[k];
    }
    if (occ_d > 0) pd = act_d / occ_d, ed = req_d / occ_d;
    /* The weekly profile knows weekdays from weekends but needs weeks of
     * data; until then the daily one speaks. */
    double weeks = (t_s - m->first_s) / WEEK_S;
    double cw = occ_w > 0 ? VKI_MIN(1.0, weeks / 2.0) : 0.0;
    e.p = VKI_MIN(1.0, cw * pw + (1 - cw) * pd);
    e.expected = cw * ew + (1 - cw) * ed;
    return e;
}

warm_prediction warm_predict(const warm_history *h, const char *id, double t_s, double horizon_s)
{
    warm_prediction r = {0, 0, 0};
    const warm_model *m = NULL;
    for (int32_t i = 0; i < h->n; i++)
        if (!strcmp(h->m[i].id, id)) m = &h->m[i];
    if (!m || m->first_s == 0 || m->first_s > t_s) return r;
    /* Every hour the interval touches counts whole: requests come at the
     * start of an hour as often as anywhere in it, and a preload is only
     * useful if it is done before the first. */
    double none = 1.0;
    int64_t h0 = abs_hour(h, t_s), h1 = abs_hour(h, t_s + (horizon_s > 0 ? horizon_s : 0));
    if (h1 - h0 >= WARM_HOURS) h1 = h0 + WARM_HOURS - 1;
    for (int64_t a = h0; a <= h1; a++) {
        double at = (double)a * HOUR_S - h->p.utc_offset_s;
        hour_est e = estimate_hour(h, m, t_s, warm_hour_of_week(h, at < t_s ? t_s : at));
        none *= 1.0 - e.p;
        r.expected += e.expected;
    }
    r.confidence = VKI_MIN(1.0, (t_s - m->first_s) / (3 * DAY_S));
    r.p = r.confidence * (1.0 - none);
    return r;
}

/* ===== the planner ======================================================= */

static int by_p_desc(const void *a, const void *b, void *ctx)
{
    const warm_decision *d = ctx;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    return d[i].pred.p < d[j].pred.p ? 1 : d[i].pred.p > d[j].pred.p ? -1 : (i > j) - (i < j);
}

static void sort_idx(int32_t *idx, int32_t n, const warm_decision *d, bool desc)
{
    /* Insertion sort: a scheduler holds a handful of models. */
    for (int32_t a = 1; a < n; a++)
        for (int32_t b = a; b > 0; b--) {
            int c = by_p_desc(&idx[b - 1], &idx[b], (void *)d);
            if (desc ? c <= 0 : c >= 0) break;
            int32_t t = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = t;
        }
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

void warm_plan(const warm_history *h, const warm_cand *c, int32_t n, uint64_t budget, uint64_t used, double t_s,
               double horizon_s, warm_decision *out)
{
    if (n <= 0) return;
    bool *res = calloc((size_t)n, sizeof *res);
    int32_t *want = malloc((size_t)n * sizeof *want), *pool = malloc((size_t)n * sizeof *pool);
    if (!res || !want || !pool) {
        for (int32_t i = 0; i < n; i++) out[i] = (warm_decision){.action = WARM_NONE};
        free(res), free(want), free(pool);
        return;
    }
    int32_t n_want = 0;
    for (int32_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].pred = warm_predict(h, c[i].id, t_s, horizon_s);
        res[i] = c[i].resident;
        if (!c[i].resident && c[i].loadable && out[i].pred.p >= h->p.threshold) want[n_want++] = i;
    }
    sort_idx(want, n_want, out, true);
    uint64_t free_b = budget > used ? budget - used : 0;
    for (int32_t w = 0; w < n_want; w++) {
        int32_t i = want[w];
        warm_decision *d = &out[i];
        double p = d->pred.p;
        if (budget == 0 || c[i].bytes <= free_b) {
            d->action = WARM_PRELOAD;
            snprintf(d->reason, sizeof d->reason, "p=%.2f >= %.2f (%.1f requests expected), %.0f MiB fits in %.0f MiB free",
                     p, h->p.threshold, d->pred.expected, mib(c[i].bytes), mib(free_b));
            if (budget) free_b -= c[i].bytes;
            res[i] = true;
            continue;
        }
        if (c[i].bytes > budget) {
            d->action = WARM_SKIP;
            snprintf(d->reason, sizeof d->reason, "p=%.2f, but %.0f MiB is more than the device budget of %.0f MiB",
                     p, mib(c[i].bytes), mib(budget));
            continue;
        }
        /* Residents that may make room: idle, unpinned and colder. */
        int32_t np = 0;
        for (int32_t j = 0; j < n; j++)
            if (res[j] && j != i && !c[j].busy && !c[j].pinned && out[j].action != WARM_PRELOAD && out[j].pred.p < p)
                pool[np++] = j;
        sort_idx(pool, np, out, false);
        uint64_t got = free_b;
        int32_t k = 0;
        while (got < c[i].bytes && k < np && k < (int32_t)VKI_COUNT(d->evict)) got += c[pool[k++]].bytes;
        if (got < c[i].bytes) {
            d->action = WARM_SKIP;
            snprintf(d->reason, sizeof d->reason,
                     "p=%.2f, needs %.0f MiB: %.0f MiB free and only %.0f MiB held by idle models colder than it",
                     p, mib(c[i].bytes), mib(free_b), mib(got - free_b));
            continue;
        }
        d->action = WARM_PRELOAD;
        d->n_evict = k;
        int len = snprintf(d->reason, sizeof d->reason, "p=%.2f >= %.2f (%.1f requests expected), evicting", p,
                           h->p.threshold, d->pred.expected);
        for (int32_t e = 0; e < k; e++) {
            int32_t j = pool[e];
            d->evict[e] = j;
            res[j] = false;
            if (len > 0 && (size_t)len < sizeof d->reason)
                len += snprintf(d->reason + len, sizeof d->reason - (size_t)len, " %s (p=%.2f)", c[j].id, out[j].pred.p);
        }
        free_b = got - c[i].bytes;
        res[i] = true;
    }
    free(res), free(want), free(pool);
}
