/*
 * ops_moe.c: the CPU backend's mixture-of-experts ops. MATMUL_ID groups the
 * (token, slot) pairs by expert, gathers each expert's activation rows and
 * runs them through the backend's ordinary MATMUL (so a prompt's rows for
 * one expert become one mat-mat, a decode step's one row a mat-vec), then
 * scatters the results back; only the chosen experts' weights are read.
 * TOP_K, GATHER_COLS and MOE_SUM are small per-token loops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "error.h"
#include "util.h"

/* Row r of a tensor viewed as rows of ne[0] (dims 1.. flattened). */
static uint8_t *row_at(const bk_tensor *t, int64_t r)
{
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (uint8_t *)cpu_tensor_data(t) + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] +
           (uint64_t)i3 * t->nb[3];
}

static int64_t rows_of(const bk_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static void top_k(const bk_op *op)
{
    const bk_tensor *a = op->src[0], *d = op->dst;
    int64_t n = a->ne[0], k = d->ne[0];
    for (int64_t r = 0; r < rows_of(a); r++) {
        const float *x = (const float *)row_at(a, r);
        int32_t *o = (int32_t *)row_at(d, r);
        /* Insertion into a sorted list of k: strict > keeps the lower index
         * first among equal values, as the reference does. */
        int64_t filled = 0;
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            if (isnan(v)) continue;
            int64_t p = filled < k ? filled : k;
            while (p > 0 && v > x[o[p - 1]]) p--;
            if (p >= k) continue;
            int64_t last = filled < k ? filled : k - 1;
            memmove(o + p + 1, o + p, (size_t)(last - p) * sizeof *o);
            o[p] = (int32_t)i;
            if (filled < k) filled++;
        }
        for (int64_t j = filled; j < k; j++) o[j] = (int32_t)j; /* NaN rows: any ids in range */
    }
}

static vki_status gather_cols(const bk_op *op)
{
    const bk_tensor *a = op->src[0], *ids = op->src[1], *d = op->dst;
    int64_t n = a->ne[0], k = d->ne[0];
    for (int64_t r = 0; r < rows_of(a); r++) {
        const float *x = (const float *)row_at(a, r);
        const int32_t *id = (const int32_t *)row_at(ids, r);
        float *o = (float *)row_at(d, r);
        double sum = 0.0;
        for (int64_t j = 0; j < k; j++) {
            if (id[j] < 0 || id[j] >= n)
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "GATHER_COLS: id %d in row %lld is outside [0, %lld)", id[j],
                                (long long)r, (long long)n);
            sum += x[id[j]];
        }
        float inv = op->ip[0] ? (float)(1.0 / sum) : 1.0f;
        for (int64_t j = 0; j < k; j++) o[j] = x[id[j]] * inv;
    }
    return VKI_OK;
}

static void moe_sum(const bk_op *op)
{
    const bk_tensor *y = op->src[0], *wt = op->src[1], *d = op->dst;
    int64_t n = y->ne[0], n_used = y->ne[1];
    for (int64_t t = 0; t < y->ne[2]; t++) {
        const float *w = (const float *)row_at(wt, t);
        float *o = (float *)row_at(d, t);
        const float *y0 = (const float *)row_at(y, t * n_used);
        for (int64_t i = 0; i < n; i++) o[i] = w[0] * y0[i];
        for (int64_t s = 1; s < n_used; s++) {
            const float *ys = (const float *)row_at(y, t * n_used + s);
            for (int64_t i = 0; i < n; i++) o[i] += w[s] * ys[i];
        }
    }
}

vki_status cpu_moe_small_op(const bk_op *op)
{
    switch (op->kind) {
    case BK_OP_TOP_K:       top_k(op); return VKI_OK;
    case BK_OP_GATHER_COLS: return gather_cols(op);
    case BK_OP_MOE_SUM:     moe_sum(op); return VKI_OK;
    default: return vki_fail(VKI_ERR_UNSUPPORTED, "cpu: %s is not a MoE op", bk_op_name(op->kind));
    }
}

vki_status cpu_moe_matmul_id(const bk_op *op, cpu_mm_fn mm, void *ctx)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *ids = op->src[2], *d = op->dst;
    const int64_t k = w->ne[0], m = w->ne[1], n_exp = w->ne[2], n_used = ids->ne[0], n_tok = ids->ne[1];
    const int64_t total = n_used * n_tok;
    if (total == 0) return VKI_OK; /* nothing routed: no scratch to size */
    vki_status s = VKI_OK;
    int64_t *start = calloc((size_t)n_exp + 1, sizeof *start);
    int64_t *order = malloc((size_t)total * sizeof *order);
    float *xb = NULL, *yb = NULL;
    if (!start || !order) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL_ID: out of memory for %lld routes", (long long)total);
        goto done;
    }
    /* Counting sort of the (token, slot) pairs by expert. */
    for (int64_t t = 0; t < n_tok; t++) {
        const int32_t *id = (const int32_t *)row_at(ids, t);
        for (int64_t j = 0; j < n_used; j++) {
            if (id[j] < 0 || id[j] >= n_exp) {
                s = vki_fail(VKI_ERR_INVALID_ARGUMENT, "MATMUL_ID: expert %d for token %lld is outside [0, %lld)",
                             id[j], (long long)t, (long long)n_exp);
                goto done;
            }
            start[id[j] + 1]++;
        }
    }
    int64_t most = 0;
    for (int64_t e = 0; e < n_exp; e++) {
        most = VKI_MAX(most, start[e + 1]);
        start[e + 1] += start[e];
    }
    {
        int64_t *fill = malloc((size_t)n_exp * sizeof *fill);
        if (!fill) {
            s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL_ID: out of memory");
            goto done;
        }
        memcpy(fill, start, (size_t)n_exp * sizeof *fill);
        for (int64_t t = 0; t < n_tok; t++) {
            const int32_t *id = (const int32_t *)row_at(ids, t);
            for (int64_t j = 0; j < n_used; j++) order[fill[id[j]]++] = t * n_used + j;
        }
        free(fill);
    }
    xb = aligned_alloc(64, (size_t)vki_align_up((uint64_t)most * (uint64_t)k * sizeof(float), 64));
    yb = aligned_alloc(64, (size_t)vki_align_up((uint64_t)most * (uint64_t)m * sizeof(float), 64));
    if (!xb || !yb) {
        s = vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL_ID: out of memory for %lld rows", (long long)most);
        goto done;
    }
    for (int64_t e = 0; e < n_exp; e++) {
        int64_t n = start[e + 1] - start[e];
        if (!n) continue;
        for (int64_t i = 0; i < n; i++) {
            int64_t p = order[start[e] + i], t = p / n_used, j = p % n_used;
            memcpy(xb + i * k, row_at(x, t * x->ne[1] + (x->ne[1] == 1 ? 0 : j)), (size_t)k * sizeof(float));
        }
        bk_tensor we = *w;
        we.ne[2] = 1;
        we.offs = w->offs + (uint64_t)e * w->nb[2];
        cpu_buffer xbuf, ybuf;
        bk_tensor xt = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){k, n}, cpu_buffer_wrap(&xbuf, xb, (uint64_t)(n * k) * 4u), 0);
        bk_tensor yt = bk_tensor_make(VKI_TYPE_F32, 2, (int64_t[]){m, n}, cpu_buffer_wrap(&ybuf, yb, (uint64_t)(n * m) * 4u), 0);
        bk_op mop = {.kind = BK_OP_MATMUL, .dst = &yt, .src = {&we, &xt, NULL}};
        if ((s = mm(ctx, &mop)) != VKI_OK) goto done;
        for (int64_t i = 0; i < n; i++)
            memcpy(row_at(d, order[start[e] + i]), yb + i * m, (size_t)m * sizeof(float));
    }
done:
    free(start);
    free(order);
    free(xb);
    free(yb);
    return s;
}
