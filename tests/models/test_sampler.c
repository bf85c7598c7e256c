/* test_sampler.c: the sampler against hand-computed expectations: greedy
 * ties, top-k/top-p/min-p supports, penalties, seed determinism, and draw
 * frequencies against the softmax they should follow. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/models/sampler.h"
#include "test_util.h"

static smp_sampler *make(vki_generate_params gp, int32_t n)
{
    smp_sampler *s = NULL;
    vki_status st = smp_create(&gp, n, &s);
    CHECKF(st == VKI_OK, "smp_create: %s", vki_last_error());
    return s;
}

static vki_generate_params plain(void)
{
    vki_generate_params gp = vki_generate_default_params();
    gp.temperature = 1.0f;
    gp.top_k = 0;
    gp.top_p = 1.0f;
    gp.min_p = 0.0f;
    gp.repeat_penalty = 1.0f;
    return gp;
}

/* Draw `n_draws` tokens and count them. */
static void histogram(vki_generate_params gp, const float *logits, int32_t n, int n_draws, int *counts)
{
    smp_sampler *s = make(gp, n);
    if (!s) return;
    float *tmp = malloc(sizeof *tmp * (size_t)n);
    memset(counts, 0, sizeof *counts * (size_t)n);
    for (int d = 0; d < n_draws; d++) {
        memcpy(tmp, logits, sizeof *tmp * (size_t)n);
        int32_t id = smp_sample(s, tmp);
        CHECK(id >= 0 && id < n);
        if (id >= 0 && id < n) counts[id]++;
    }
    free(tmp);
    smp_destroy(s);
}

int main(void)
{
    /* greedy: argmax, ties to the lowest id */
    {
        vki_generate_params gp = plain();
        gp.temperature = 0.0f;
        smp_sampler *s = make(gp, 6);
        float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, -3.0f};
        CHECK(smp_sample(s, l) == 1);
        smp_destroy(s);
    }
    /* top-k report: order, ties by id */
    {
        float l[8] = {1, 5, 3, 5, -2, 4, 0, 3};
        int32_t ids[5];
        float v[5];
        smp_top_k(l, 8, 5, ids, v);
        int32_t want[5] = {1, 3, 5, 2, 7};
        for (int i = 0; i < 5; i++) CHECKF(ids[i] == want[i] && v[i] == l[want[i]], "rank %d: id %d", i, ids[i]);
    }
    const int32_t n = 6;
    const float logits[6] = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, -4.0f};
    double p[6], z = 0;
    for (int i = 0; i < n; i++) z += p[i] = exp(logits[i]);
    for (int i = 0; i < n; i++) p[i] /= z;
    int counts[6];
    const int draws = 40000;

    /* plain sampling follows softmax: each frequency within 5 sigma */
    histogram(plain(), logits, n, draws, counts);
    for (int i = 0; i < n; i++) {
        double sd = sqrt(draws * p[i] * (1 - p[i])) + 1;
        CHECKF(fabs(counts[i] - draws * p[i]) < 5 * sd, "token %d: %d draws, expected %.0f", i, counts[i], draws * p[i]);
    }
    /* temperature 0.5 = softmax of 2*logits */
    {
        vki_generate_params gp = plain();
        gp.temperature = 0.5f;
        histogram(gp, logits, n, draws, counts);
        double q[6], zq = 0;
        for (int i = 0; i < n; i++) zq += q[i] = exp(2 * logits[i]);
        for (int i = 0; i < n; i++) {
            q[i] /= zq;
            double sd = sqrt(draws * q[i] * (1 - q[i])) + 1;
            CHECKF(fabs(counts[i] - draws * q[i]) < 5 * sd, "T=0.5 token %d: %d, expected %.0f", i, counts[i], draws * q[i]);
        }
    }
    /* top-k 2: only ids 0 and 1, in ratio e^1 */
    {
        vki_generate_params gp = plain();
        gp.top_k = 2;
        histogram(gp, logits, n, draws, counts);
        CHECK(counts[0] + counts[1] == draws);
        double want0 = draws * p[0] / (p[0] + p[1]);
        CHECKF(fabs(counts[0] - want0) < 5 * sqrt(want0), "top-k: %d vs %.0f", counts[0], want0);
    }
    /* top-p: the nucleus of 0.8 is {0,1,2} (cumulative 0.61, 0.84) */
    {
        vki_generate_params gp = plain();
        gp.top_p = 0.8f;
        histogram(gp, logits, n, draws, counts);
        CHECKF(counts[0] + counts[1] + counts[2] == draws, "top-p kept %d of %d in the nucleus",
               counts[0] + counts[1] + counts[2], draws);
        CHECK(counts[2] > 0);
    }
    /* min-p 0.3: keep p >= 0.3 * p_max: ids 0 (1.0) and 1 (0.37) */
    {
        vki_generate_params gp = plain();
        gp.min_p = 0.3f;
        histogram(gp, logits, n, draws, counts);
        CHECK(counts[0] + counts[1] == draws && counts[1] > 0);
    }
    /* penalties: exact values */
    {
        vki_generate_params gp = plain();
        gp.temperature = 0.0f;
        gp.repeat_penalty = 2.0f;
        gp.frequency_penalty = 0.25f;
        gp.presence_penalty = 0.5f;
        smp_sampler *s = make(gp, n);
        smp_accept(s, 0);
        smp_accept(s, 0);
        smp_accept(s, 4);
        float l[6];
        memcpy(l, logits, sizeof l);
        int32_t id = smp_sample(s, l);
        CHECKF(fabsf(l[0] - (2.0f / 2 - 0.5f - 0.5f)) < 1e-6f, "penalised logit 0 = %g", l[0]);
        CHECKF(fabsf(l[4] - (-1.0f * 2 - 0.25f - 0.5f)) < 1e-6f, "penalised logit 4 = %g", l[4]);
        CHECK(l[1] == 1.0f);
        CHECK(id == 1); /* 1.0 now beats the penalised 0.0 */
        smp_destroy(s);
    }
    /* penalty window: with last_n 2, the oldest id drops out */
    {
        vki_generate_params gp = plain();
        gp.temperature = 0.0f;
        gp.presence_penalty = 10.0f;
        gp.penalty_last_n = 2;
        smp_sampler *s = make(gp, n);
        smp_accept(s, 0);
        smp_accept(s, 1);
        smp_accept(s, 2); /* window now {1, 2} */
        float l[6];
        memcpy(l, logits, sizeof l);
        CHECK(smp_sample(s, l) == 0);
        smp_destroy(s);
    }
    /* determinism: same seed same sequence; another seed differs */
    {
        int32_t big = 1000;
        float *l = malloc(sizeof *l * (size_t)big), *t = malloc(sizeof *t * (size_t)big);
        uint64_t rs = 7;
        for (int32_t i = 0; i < big; i++) l[i] = test_rand_f32(&rs, -2, 2);
        int32_t seq[3][50];
        uint64_t seeds[3] = {42, 42, 43};
        for (int r = 0; r < 3; r++) {
            vki_generate_params gp = vki_generate_default_params();
            gp.temperature = 1.0f;
            gp.seed = seeds[r];
            smp_sampler *s = make(gp, big);
            for (int k = 0; k < 50; k++) {
                memcpy(t, l, sizeof *t * (size_t)big);
                seq[r][k] = smp_sample(s, t);
            }
            smp_destroy(s);
        }
        CHECK(!memcmp(seq[0], seq[1], sizeof seq[0]));
        CHECK(memcmp(seq[0], seq[2], sizeof seq[0]) != 0);
        free(l);
        free(t);
    }
    /* bad parameters are refused with a message */
    {
        vki_generate_params gp = plain();
        gp.top_p = 0.0f;
        smp_sampler *s = NULL;
        CHECK(smp_create(&gp, 10, &s) == VKI_ERR_INVALID_ARGUMENT && !s && strstr(vki_last_error(), "top_p"));
        gp = plain();
        gp.temperature = -1.0f;
        CHECK(smp_create(&gp, 10, &s) == VKI_ERR_INVALID_ARGUMENT);
        gp = plain();
        gp.logprobs = true;
        gp.n_top_logprobs = VKI_MAX_TOP_LOGPROBS + 1;
        CHECK(smp_create(&gp, 10, &s) == VKI_ERR_INVALID_ARGUMENT && strstr(vki_last_error(), "n_top_logprobs"));
    }
    /* the log-softmax normaliser, also where exp would overflow in float */
    {
        const float l[4] = {1000.0f, 999.0f, -5.0f, 1000.0f};
        double want = 1000.0 + log(2.0 + exp(-1.0) + exp(-1005.0));
        CHECKF(fabs(smp_logsumexp(l, 4) - want) < 1e-9, "logsumexp %.12g, want %.12g", smp_logsumexp(l, 4), want);
    }
    return test_finish("test_sampler");
}
