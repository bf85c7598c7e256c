/*
 * sampler.c: penalties, temperature, top-k / top-p / min-p and a seeded
 * draw (see sampler.h). Order: penalties -> temperature -> top-k -> top-p
 * -> min-p -> draw, so the filters act on the distribution that is sampled
 * (the HF/OpenAI reading of top_p). Allocates only in smp_create.
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct smp_sampler {
    float    temp, top_p, min_p;
    float    repeat, freq, presence;
    int32_t  top_k, n_vocab;
    uint64_t rng;      /* splitmix64 state                                    */
    int32_t *window;   /* [last_n] ring of recent ids                         */
    int32_t  last_n, n_win, win_pos;
    int32_t *counts;   /* [n_vocab] occurrences of each id in the window      */
    int32_t *idx;      /* [n_vocab] candidate ids                             */
    float   *p;        /* [n_vocab] unnormalised probabilities exp((l-max)/T) */
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

vki_status smp_create(const vki_generate_params *gp, int32_t n_vocab, smp_sampler **out)
{
    *out = NULL;
    vki_generate_params d = vki_generate_default_params();
    if (!gp) gp = &d;
    if (n_vocab <= 0) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: vocabulary size %d", n_vocab);
    if (!(gp->temperature >= 0.0f) || !isfinite(gp->temperature))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: temperature %g is not a finite value >= 0", gp->temperature);
    if (!(gp->top_p > 0.0f && gp->top_p <= 1.0f))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: top_p %g is outside (0, 1]", gp->top_p);
    if (!(gp->min_p >= 0.0f && gp->min_p <= 1.0f))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: min_p %g is outside [0, 1]", gp->min_p);
    if (gp->top_k < 0) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: top_k %d is negative", gp->top_k);
    if (!(gp->repeat_penalty > 0.0f) || !isfinite(gp->repeat_penalty))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: repeat_penalty %g is not a finite value > 0", gp->repeat_penalty);
    if (!isfinite(gp->frequency_penalty) || !isfinite(gp->presence_penalty))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: frequency/presence penalty is not finite");
    if (gp->logprobs && (gp->n_top_logprobs < 0 || gp->n_top_logprobs > VKI_MAX_TOP_LOGPROBS))
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: n_top_logprobs %d is outside 0..%d", gp->n_top_logprobs,
                        VKI_MAX_TOP_LOGPROBS);
    if (gp->penalty_last_n < 0)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "sampler: penalty_last_n %d is negative", gp->penalty_last_n);

    smp_sampler *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->temp = gp->temperature;
    s->top_p = gp->top_p;
    s->min_p = gp->min_p;
    s->top_k = gp->top_k;
    s->repeat = gp->repeat_penalty;
    s->freq = gp->frequency_penalty;
    s->presence = gp->presence_penalty;
    s->n_vocab = n_vocab;
    s->rng = gp->seed;
    s->last_n = gp->penalty_last_n ? gp->penalty_last_n : 64;
    s->window = malloc(sizeof *s->window * (size_t)s->last_n);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->idx = malloc(sizeof *s->idx * (size_t)n_vocab);
    s->p = malloc(sizeof *s->p * (size_t)n_vocab);
    if (!s->window || !s->counts || !s->idx || !s->p) goto oom;
    *out = s;
    return VKI_OK;
oom:
    smp_destroy(s);
    return vki_fail(VKI_ERR_OUT_OF_MEMORY, "sampler: out of memory for a %d-token vocabulary", n_vocab);
}

void smp_destroy(smp_sampler *s)
{
    if (!s) return;
    free(s->window);
    free(s->counts);
    free(s->idx);
    free(s->p);
    free(s);
}

void smp_accept(smp_sampler *s, int32_t id)
{
    if (id < 0 || id >= s->n_vocab) return;
    if (s->n_win == s->last_n) s->counts[s->window[s->win_pos]]--;
    else s->n_win++;
    s->window[s->win_pos] = id;
    s->counts[id]++;
    s->win_pos = (s->win_pos + 1) % s->last_n;
}

/* a before b: larger value first, then lower id (a total order, so every
 * platform's sort gives the same candidate list). */
static bool before(float va, int32_t ia, float vb, int32_t ib) { return va > vb || (va == vb && ia < ib); }

/* Min-heap of k (value, id) entries by `before`: the root is the worst kept. */
static void heap_down(float *hv, int32_t *hi, int32_t n, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(hv[w], hi[w], hv[l], hi[l])) w = l;
        if (r < n && before(hv[w], hi[w], hv[r], hi[r])) w = r;
        if (w == i) return;
        float tv = hv[i]; hv[i] = hv[w]; hv[w] = tv;
        int32_t ti = hi[i]; hi[i] = hi[w]; hi[w] = ti;
        i = w;
    }
}

/* The k best of vals[ids[0..n)] into out_ids/out_vals, best first. */
static int32_t select_top(const float *vals, const int32_t *ids, int32_t n, int32_t k,
                          int32_t *out_ids, float *out_vals)
{
    if (k > n) k = n;
    int32_t m = 0;
    for (int32_t j = 0; j < n; j++) {
        int32_t id = ids ? ids[j] : j;
        float v = vals[id];
        if (m < k) {
            /* sift up */
            int32_t i = m++;
            out_vals[i] = v;
            out_ids[i] = id;
            while (i > 0) {
                int32_t p = (i - 1) / 2;
                if (!before(out_vals[p], out_ids[p], out_vals[i], out_ids[i])) break;
                float tv = out_vals[i]; out_vals[i] = out_vals[p]; out_vals[p] = tv;
                int32_t ti = out_ids[i]; out_ids[i] = out_ids[p]; out_ids[p] = ti;
                i = p;
            }
        } else if (before(v, id, out_vals[0], out_ids[0])) {
            out_vals[0] = v;
            out_ids[0] = id;
            heap_down(out_vals, out_ids, m, 0);
        }
    }
    /* heap sort: repeatedly move the worst to the end */
    for (int32_t end = m - 1; end > 0; end--) {
        float tv = out_vals[0]; out_vals[0] = out_vals[end]; out_vals[end] = tv;
        int32_t ti = out_ids[0]; out_ids[0] = out_ids[end]; out_ids[end] = ti;
        heap_down(out_vals, out_ids, end, 0);
    }
    return m;
}

void smp_top_k(const float *logits, int32_t n, int32_t k, int32_t *ids, float *vals)
{
    select_top(logits, NULL, n, k, ids, vals);
}

double smp_logsumexp(const float *logits, int32_t n)
{
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    if (!isfinite(mx)) return mx;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    return mx + log(sum);
}

static const float *g_sort_p; /* qsort has no context argument in C11 */

static int cmp_desc(const void *a, const void *b)
{
    int32_t ia = *(const int32_t *)a, ib = *(const int32_t *)b;
    float va = g_sort_p[ia], vb = g_sort_p[ib];
    return before(va, ia, vb, ib) ? -1 : before(vb, ib, va, ia) ? 1 : 0;
}

static void apply_penalties(smp_sampler *s, float *logits)
{
    if (s->repeat == 1.0f && s->freq == 0.0f && s->presence == 0.0f) return;
    for (int32_t j = 0; j < s->n_win; j++) {
        int32_t id = s->window[j], c = s->counts[id];
        if (c <= 0) continue;
        /* each distinct id once: negate its count while it is being visited */
        float l = logits[id];
        if (s->repeat != 1.0f) l = l > 0.0f ? l / s->repeat : l * s->repeat;
        logits[id] = l - (float)c * s->freq - s->presence;
        s->counts[id] = -c;
    }
    for (int32_t j = 0; j < s->n_win; j++) {
        int32_t id = s->window[j];
        if (s->counts[id] < 0) s->counts[id] = -s->counts[id];
    }
}

int32_t smp_sample(smp_sampler *s, float *logits)
{
    const int32_t n = s->n_vocab;
    apply_penalties(s, logits);

    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temp <= 0.0f) return best;

    /* p_i = exp((l_i - max) / T): the best candidate has p = 1. */
    const float mx = logits[best], inv_t = 1.0f / s->temp;
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) {
        s->p[i] = expf((logits[i] - mx) * inv_t);
        total += s->p[i];
    }

    int32_t m = 0;         /* candidates in s->idx[0..m) */
    bool sorted = false;
    if (s->top_k > 0 && s->top_k < n) {
        float *tmpv = (float *)logits; /* the logits are ours to overwrite now */
        m = select_top(s->p, NULL, n, s->top_k, s->idx, tmpv);
        total = 0.0;
        for (int32_t j = 0; j < m; j++) total += s->p[s->idx[j]];
        sorted = true;
    } else if (s->top_p < 1.0f) {
        /* Tokens with p < (1 - top_p) * total / n together hold less than
         * 1 - top_p of the mass, so the nucleus lies among the others:
         * sort only those. */
        double thr = (1.0 - s->top_p) * total / n;
        for (int32_t i = 0; i < n; i++)
            if (s->p[i] >= thr) s->idx[m++] = i;
        g_sort_p = s->p;
        qsort(s->idx, (size_t)m, sizeof *s->idx, cmp_desc);
        sorted = true;
    } else {
        for (int32_t i = 0; i < n; i++) s->idx[i] = i;
        m = n;
    }

    if (sorted && s->top_p < 1.0f) {
        double cum = 0.0, goal = s->top_p * total;
        int32_t keep = 0;
        while (keep < m) {
            cum += s->p[s->idx[keep++]];
            if (cum >= goal) break;
        }
        m = keep;
    }
    if (s->min_p > 0.0f) {
        int32_t k = 0;
        for (int32_t j = 0; j < m; j++)
            if (s->p[s->idx[j]] >= s->min_p) s->idx[k++] = s->idx[j];
        m = k;
    }
    VKI_ASSERT(m > 0); /* the best token always survives every filter */

    double sum = 0.0;
    for (int32_t j = 0; j < m; j++) sum += s->p[s->idx[j]];
    double r = rng_uniform(&s->rng) * sum, acc = 0.0;
    for (int32_t j = 0; j < m; j++) {
        acc += s->p[s->idx[j]];
        if (r < acc) return s->idx[j];
    }
    return s->idx[m - 1];
}
