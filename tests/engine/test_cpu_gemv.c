/*
 * test_cpu_gemv.c: the CPU kernels the ISA test's 4x4 tiles do not reach:
 * each level's mat-vec kernels (gemv) and its packed mat-mat (mm_pack_w +
 * mm_kernel) and integer mat-mat (mq_kernel on mq.h's packing), against
 * the scalar gemm or a double dot of dequantized inputs, and the attention
 * key-block helpers (dot_rows, mad_rows). Shapes
 * cover full 16-block groups, odd block counts, row counts that are not
 * multiples of the unroll, partial panels and partial activation groups;
 * the softmax exp helper against libm's expf, and the gate activations
 * (silu, both GELU forms) against double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"
#include "engine/cpu/repack.h"
#include "error.h"
#include "test_util.h"
#include "util.h"

static const vki_type types[] = {VKI_TYPE_F32,  VKI_TYPE_F16,  VKI_TYPE_BF16, VKI_TYPE_Q8_0, VKI_TYPE_Q4_0,
                                 VKI_TYPE_Q4_1, VKI_TYPE_Q5_0, VKI_TYPE_Q5_1, VKI_TYPE_Q2_K, VKI_TYPE_Q3_K,
                                 VKI_TYPE_Q4_K, VKI_TYPE_Q5_K, VKI_TYPE_Q6_K};

typedef struct inputs {
    int64_t  k, rows, cols;
    size_t   ws, xs;
    float   *wf, *xf; /* dequantized weights and raw activations, for magnitudes */
    uint8_t *w, *x;   /* weights in type t; activations prepared for t's gemm */
} inputs;

/* extreme: every weight and activation +-1 with the signs matching, so
 * every code is at its largest magnitude and every product positive: the
 * int16 partial sums of the maddubs kernels reach their worst case. */
static void make_inputs_x(inputs *in, vki_type t, int64_t k, int64_t rows, int64_t cols, uint64_t *seed, bool extreme)
{
    cpu_act act = cpu_act_for(t);
    in->k = k, in->rows = rows, in->cols = cols;
    in->ws = (size_t)vki_row_bytes(t, k);
    in->xs = act == CPU_ACT_Q8_0 ? (size_t)(k / QK8_0) * sizeof(block_q8_0)
           : act == CPU_ACT_Q8_K ? (size_t)(k / QK_K) * sizeof(block_q8_K) : (size_t)k * sizeof(float);
    in->wf = malloc((size_t)(rows * k) * sizeof(float));
    in->xf = malloc((size_t)(cols * k) * sizeof(float));
    in->w = malloc(in->ws * (size_t)rows);
    in->x = malloc(in->xs * (size_t)cols);
    VKI_ASSERT(in->wf && in->xf && in->w && in->x);
    for (int64_t i = 0; i < rows * k; i++) in->wf[i] = test_rand_f32(seed, -1.0f, 1.0f);
    for (int64_t i = 0; i < cols * k; i++) in->xf[i] = test_rand_f32(seed, -1.0f, 1.0f);
    if (extreme) {
        for (int64_t i = 0; i < rows * k; i++) in->wf[i] = (i % k) % 3 ? 1.0f : -1.0f;
        for (int64_t i = 0; i < cols * k; i++) in->xf[i] = (i % k) % 3 ? 1.0f : -1.0f;
    }
    for (int64_t r = 0; r < rows; r++) {
        bool ok = t == VKI_TYPE_F32 ? (memcpy(in->w + r * in->ws, in->wf + r * k, in->ws), true)
                                    : vki_quantize_row(t, in->wf + r * k, in->w + r * in->ws, k);
        CHECKF(ok, "quantize %s", vki_type_name(t));
        vki_dequantize_row(t, in->w + r * in->ws, in->wf + r * k, k);
    }
    for (int64_t c = 0; c < cols; c++) {
        if (act == CPU_ACT_Q8_0) cpu_quantize_q8_0(in->xf + c * k, in->x + c * in->xs, k);
        else if (act == CPU_ACT_Q8_K) cpu_quantize_q8_K(in->xf + c * k, in->x + c * in->xs, k);
        else memcpy(in->x + c * in->xs, in->xf + c * k, in->xs);
    }
}

static void make_inputs(inputs *in, vki_type t, int64_t k, int64_t rows, int64_t cols, uint64_t *seed)
{
    make_inputs_x(in, t, k, rows, cols, seed, false);
}

static void free_inputs(inputs *in)
{
    free(in->wf); free(in->xf); free(in->w); free(in->x);
}

/* Float summation order is all that may differ (integer block sums are
 * exact), so results agree within 1e-5 of sum |w_i x_i|. */
static bool close_enough(const inputs *in, int64_t r, int64_t c, float got, float want)
{
    double mag = 0;
    for (int64_t i = 0; i < in->k; i++) mag += fabs((double)in->wf[r * in->k + i] * in->xf[c * in->k + i]);
    return fabs((double)got - want) <= 1e-5 * mag + 1e-6;
}

static void check_gemv(const cpu_kernels *ref, const cpu_kernels *fast, vki_type t, int64_t k, int64_t rows,
                       uint64_t *seed)
{
    inputs in;
    make_inputs(&in, t, k, rows, 1, seed);
    float *want = malloc((size_t)rows * sizeof(float)), *got = malloc((size_t)(rows + 1) * sizeof(float));
    void *scratch = NULL;
    VKI_ASSERT(want && got && posix_memalign(&scratch, 64, CPU_GEMV_SCRATCH(k)) == 0);
    for (int64_t r = 0; r < rows; r++) ref->gemm[t](k, in.w + r * in.ws, in.ws, 1, in.x, in.xs, 1, want + r, 1);
    for (int64_t r = 0; r <= rows; r++) got[r] = NAN;
    fast->gemv[t](k, in.w, in.ws, rows, in.x, got, scratch);
    for (int64_t r = 0; r < rows; r++)
        CHECKF(close_enough(&in, r, 0, got[r], want[r]), "%s gemv %s k=%lld rows=%lld row %lld: %.7g vs scalar %.7g",
               fast->name, vki_type_name(t), (long long)k, (long long)rows, (long long)r, got[r], want[r]);
    CHECKF(isnan(got[rows]), "%s gemv %s k=%lld wrote past row %lld", fast->name, vki_type_name(t), (long long)k,
           (long long)rows);
    free(want); free(got); free(scratch);
    free_inputs(&in);
}

/* A dot tile (gemm: nr <= 4 weight rows x nc <= 4 activation rows, the
 * decode and small-batch path of types without a mat-vec) against the
 * scalar level's tile, one dot at a time. */
static void check_gemm(const cpu_kernels *ref, const cpu_kernels *fast, vki_type t, int64_t k, int nr, int nc,
                       uint64_t *seed)
{
    inputs in;
    make_inputs(&in, t, k, nr, nc, seed);
    size_t ds = (size_t)nr + 2;
    float want[4 * 6], got[4 * 6];
    for (int c = 0; c < nc; c++)
        for (int r = 0; r < nr; r++)
            ref->gemm[t](k, in.w + r * in.ws, in.ws, 1, in.x + c * in.xs, in.xs, 1, want + c * ds + r, 1);
    for (size_t i = 0; i < VKI_COUNT(got); i++) got[i] = NAN;
    fast->gemm[t](k, in.w, in.ws, nr, in.x, in.xs, nc, got, ds);
    for (int c = 0; c < nc; c++) {
        for (int r = 0; r < nr; r++)
            CHECKF(close_enough(&in, r, c, got[c * ds + r], want[c * ds + r]),
                   "%s gemm %s k=%lld %dx%d (%d,%d): %.7g vs scalar %.7g", fast->name, vki_type_name(t), (long long)k,
                   nr, nc, r, c, got[c * ds + r], want[c * ds + r]);
        CHECKF(isnan(got[c * ds + (size_t)nr]), "%s gemm %s k=%lld %dx%d wrote past row %d", fast->name,
               vki_type_name(t), (long long)k, nr, nc, nr);
    }
    free_inputs(&in);
}

/* The repacked layout (repack.h): packing then unpacking gives the rows
 * back byte for byte, and the R16 mat-vec (one column) and batched mat-vec
 * (ncols columns) agree with the scalar gemm on the plain rows as closely
 * as the plain kernels must, writing nothing past the last row. */
static void check_r16(const cpu_kernels *ref, const cpu_kernels *fast, vki_type t, int64_t k, int64_t rows, int ncols,
                      uint64_t *seed, bool extreme)
{
    inputs in;
    make_inputs_x(&in, t, k, rows, ncols, seed, extreme);
    size_t ds = (size_t)rows + 3;
    uint8_t *packed = NULL, *back = malloc(in.ws * (size_t)rows);
    float *want = malloc((size_t)ncols * ds * sizeof(float)), *got = malloc((size_t)ncols * ds * sizeof(float));
    void *scratch = NULL;
    VKI_ASSERT(back && want && got);
    VKI_ASSERT(posix_memalign((void **)&packed, 64, (size_t)r16_bytes(t, k, rows)) == 0);
    VKI_ASSERT(posix_memalign(&scratch, 64, CPU_GEMV_SCRATCH(k) * (size_t)ncols) == 0);
    int64_t groups = (rows + R16_ROWS - 1) / R16_ROWS;
    r16_pack(t, k, rows, in.w, in.ws, packed, 0, groups / 2); /* in two pieces, as the thread pool splits it */
    r16_pack(t, k, rows, in.w, in.ws, packed, groups / 2, groups);
    r16_unpack_rows(t, k, packed, 0, rows, back, in.ws);
    CHECKF(memcmp(back, in.w, in.ws * (size_t)rows) == 0, "r16 %s k=%lld rows=%lld: unpack differs from the rows packed",
           vki_type_name(t), (long long)k, (long long)rows);
    for (int c = 0; c < ncols; c++)
        for (int64_t r = 0; r < rows; r++)
            ref->gemm[t](k, in.w + r * in.ws, in.ws, 1, in.x + c * in.xs, in.xs, 1, want + c * ds + r, 1);
    for (size_t i = 0; i < (size_t)ncols * ds; i++) got[i] = NAN;
    size_t gs = r16_group_bytes(t, k);
    if (ncols == 1) fast->gemv_r16[t](k, packed, gs, rows, in.x, got, scratch);
    else fast->gemvn_r16[t](k, packed, gs, rows, in.x, in.xs, ncols, got, ds, scratch);
    for (int c = 0; c < ncols; c++) {
        for (int64_t r = 0; r < rows; r++)
            CHECKF(close_enough(&in, r, c, got[c * ds + r], want[c * ds + r]),
                   "%s r16 %s k=%lld rows=%lld cols=%d (%lld,%d): %.7g vs scalar %.7g", fast->name, vki_type_name(t),
                   (long long)k, (long long)rows, ncols, (long long)r, c, got[c * ds + r], want[c * ds + r]);
        for (size_t r = (size_t)rows; r < ds && (c + 1 < ncols || r == (size_t)rows); r++)
            CHECKF(isnan(got[c * ds + r]), "%s r16 %s k=%lld rows=%lld cols=%d wrote past row %lld", fast->name,
                   vki_type_name(t), (long long)k, (long long)rows, ncols, (long long)rows);
    }
    free(packed); free(back); free(want); free(got); free(scratch);
    free_inputs(&in);
}

/* One mm tile's output against the f32 dot of the dequantized rows (the
 * packed path multiplies dequantized weights by float activations); NaN
 * must survive outside the nrows x nc tile. */
static void check_mm_out(const cpu_kernels *ref, const cpu_kernels *fast, const char *kname, const inputs *in,
                         vki_type t, int64_t k, int nrows, int nc, const float *b, const float *got, size_t ds)
{
    for (int c = 0; c < fast->mm_nr; c++)
        for (int r = 0; r < (int)ds; r++) {
            float g = got[(size_t)c * ds + (size_t)r];
            if (c >= nc || r >= nrows) {
                CHECKF(isnan(g), "%s %s %s %dx%d wrote outside at (%d,%d)", fast->name, kname, vki_type_name(t), nrows,
                       nc, r, c);
                continue;
            }
            float want = b[r] + ref->dot_f32(k, in->wf + r * k, in->xf + c * k);
            CHECKF(close_enough(in, r, c, g, want), "%s %s %s k=%lld tile %dx%d (%d,%d): %.7g vs %.7g", fast->name,
                   kname, vki_type_name(t), (long long)k, nrows, nc, r, c, g, want);
        }
}

/* One weight panel of nrows rows against one activation group of nc rows,
 * through the ISA's own packing, with and without a bias, by both entries
 * of the packed f32 tile: mm_kernel on a packed activation group, and
 * mm_kernel_rows (where the level has it) on the rows where they are. Each must honour the level's own mm_mr x mm_nr: the AVX-512 table
 * once kept AVX2's 16 x 6 mm_kernel_rows under its 32 x 12 geometry. */
static void check_mm(const cpu_kernels *ref, const cpu_kernels *fast, vki_type t, int64_t k, int nrows, int nc,
                     bool bias, uint64_t *seed)
{
    int mr = fast->mm_mr, nr = fast->mm_nr;
    inputs in;
    make_inputs(&in, t, k, nrows, nc, seed);
    float *wp = malloc((size_t)(mr * k) * sizeof(float)), *tmp = malloc((size_t)(16 * k + 64) * sizeof(float));
    float *xp = calloc((size_t)(nr * k), sizeof(float)), *b = malloc((size_t)mr * sizeof(float));
    size_t ds = (size_t)mr + 3;
    float *got = malloc((size_t)nr * ds * sizeof(float));
    VKI_ASSERT(wp && tmp && xp && b && got && nr <= 64);
    for (int r = 0; r < mr; r++) b[r] = bias ? test_rand_f32(seed, -1.0f, 1.0f) : 0.0f;
    for (int c = 0; c < nc; c++)
        for (int64_t i = 0; i < k; i++) xp[i * nr + c] = in.xf[c * k + i];
    CHECKF(fast->mm_pack_w(t, k, in.w, in.ws, nrows, wp, tmp), "%s mm_pack_w %s", fast->name, vki_type_name(t));
    for (size_t i = 0; i < (size_t)nr * ds; i++) got[i] = NAN;
    fast->mm_kernel(k, wp, nrows, xp, nc, bias ? b : NULL, got, ds);
    check_mm_out(ref, fast, "mm_kernel", &in, t, k, nrows, nc, b, got, ds);
    if (fast->mm_kernel_rows) {
        const float *xr[64];
        for (int c = 0; c < nc; c++) xr[c] = in.xf + (size_t)c * (size_t)k;
        for (size_t i = 0; i < (size_t)nr * ds; i++) got[i] = NAN;
        fast->mm_kernel_rows(k, wp, nrows, xr, nc, bias ? b : NULL, got, ds);
        check_mm_out(ref, fast, "mm_kernel_rows", &in, t, k, nrows, nc, b, got, ds);
    }
    free(wp); free(tmp); free(xp); free(b); free(got);
    free_inputs(&in);
}

/* The integer packed mat-mat: weights through mq_pack_panel, activations
 * quantized to Q8_0 and packed by mq_pack_group, one panel x one group.
 * Oracle: the dot, in double, of the reference-dequantized weight row and
 * the dequantized Q8_0 activation row. Integer block sums are exact, so
 * only the float products of block scales and their summation may differ:
 * within 1e-5 of sum |w_i x_i|. */
static void check_mq(const cpu_kernels *fast, vki_type t, int64_t k, int nrows, int nc, bool bias, uint64_t *seed,
                     bool extreme)
{
    mq_fmt f;
    VKI_ASSERT(mq_format(t, fast->mq_signed_q8, &f));
    int mr = fast->mq_mr[f.is_signed], nr = fast->mq_nr[f.is_signed];
    inputs in;
    make_inputs_x(&in, t, k, nrows, nc, seed, extreme);
    size_t qb = (size_t)(k / QK8_0) * sizeof(block_q8_0);
    uint8_t *xq = malloc(qb * (size_t)nc), *wp = NULL, *xp = NULL;
    uint8_t *tmp = malloc((size_t)k + 2 * (size_t)(k / f.bl) * sizeof(float) + 64);
    float *xdq = malloc((size_t)(nc * k) * sizeof(float)), *b = malloc((size_t)mr * sizeof(float));
    size_t ds = (size_t)mr + 3;
    float *got = malloc((size_t)nr * ds * sizeof(float));
    const block_q8_0 *rows[32];
    VKI_ASSERT(xq && tmp && xdq && b && got && nr <= 32);
    VKI_ASSERT(posix_memalign((void **)&wp, 64, mq_panel_bytes(&f, k, mr)) == 0);
    VKI_ASSERT(posix_memalign((void **)&xp, 64, mq_group_bytes(&f, k, nr)) == 0);
    for (int c = 0; c < nc; c++) {
        cpu_quantize_q8_0(in.xf + c * k, xq + (size_t)c * qb, k);
        vki_dequantize_row(VKI_TYPE_Q8_0, xq + (size_t)c * qb, xdq + c * k, k);
        rows[c] = (const block_q8_0 *)(xq + (size_t)c * qb);
    }
    for (int r = 0; r < mr; r++) b[r] = bias ? test_rand_f32(seed, -1.0f, 1.0f) : 0.0f;
    for (size_t i = 0; i < (size_t)nr * ds; i++) got[i] = NAN;
    mq_pack_panel(t, &f, k, in.w, in.ws, nrows, mr, wp, tmp);
    mq_pack_group(&f, k, rows, nc, nr, xp);
    fast->mq_kernel(&f, k, wp, nrows, xp, nc, bias ? b : NULL, got, ds);
    for (int c = 0; c < nr; c++)
        for (int r = 0; r < (int)ds; r++) {
            float g = got[(size_t)c * ds + (size_t)r];
            if (c >= nc || r >= nrows) {
                CHECKF(isnan(g), "%s mq %s %dx%d wrote outside at (%d,%d)", fast->name, vki_type_name(t), nrows, nc, r, c);
                continue;
            }
            double want = b[r], mag = 0;
            for (int64_t i = 0; i < k; i++) {
                want += (double)in.wf[r * k + i] * xdq[c * k + i];
                mag += fabs((double)in.wf[r * k + i] * xdq[c * k + i]);
            }
            CHECKF(fabs(g - want) <= 1e-5 * mag + 1e-6, "%s mq %s k=%lld tile %dx%d (%d,%d): %.7g vs %.7g", fast->name,
                   vki_type_name(t), (long long)k, nrows, nc, r, c, g, want);
        }
    free(xq); free(tmp); free(xdq); free(b); free(got); free(wp); free(xp);
    free_inputs(&in);
}

static void check_exp(const cpu_kernels *fast, int64_t n, uint64_t *seed)
{
    float *y = malloc((size_t)(n + 1) * sizeof(float)), *x = malloc((size_t)n * sizeof(float));
    VKI_ASSERT(y && x);
    for (int64_t i = 0; i < n; i++) x[i] = y[i] = test_rand_f32(seed, -120.0f, 3.0f);
    y[n] = -1.0f;
    double want_sum = 0.0;
    float got_sum = fast->exp_sum_f32(n, y, 2.5f);
    for (int64_t i = 0; i < n; i++) {
        float want = expf(x[i] - 2.5f);
        want_sum += want;
        CHECKF(fabsf(y[i] - want) <= 4e-7f * want + 1e-37f, "%s exp_sum_f32 n=%lld at %lld: exp(%g) = %.9g vs %.9g",
               fast->name, (long long)n, (long long)i, x[i] - 2.5f, y[i], want);
    }
    CHECKF(fabs(got_sum - want_sum) <= 1e-6 * want_sum + 1e-30, "%s exp_sum_f32 n=%lld sum %.9g vs %.9g", fast->name,
           (long long)n, got_sum, want_sum);
    CHECKF(y[n] == -1.0f, "%s exp_sum_f32 n=%lld wrote past the end", fast->name, (long long)n);
    free(y); free(x);
}

/* The attention key-block helpers against double sums: n head-dim values
 * (tails of 1..15, more than one 128-wide chunk) and key counts around
 * the 16-key tree, f32 and f16 rows, rows at a stride wider than n. */
static void check_rows(const cpu_kernels *fast, int64_t n, int nrows, bool f16, uint64_t *seed)
{
    size_t rs = (size_t)(n + 5) * (f16 ? 2 : 4);
    uint8_t *rows = malloc(rs * (size_t)nrows);
    float *q = malloc((size_t)n * sizeof(float)), *p = malloc((size_t)nrows * sizeof(float));
    float *out = malloc((size_t)(nrows + 1) * sizeof(float)), *y = malloc((size_t)(n + 1) * sizeof(float));
    double *yw = malloc((size_t)n * sizeof(double));
    VKI_ASSERT(rows && q && p && out && y && yw);
    for (int j = 0; j < nrows; j++)
        for (int64_t i = 0; i < n; i++) {
            float v = test_rand_f32(seed, -1.0f, 1.0f);
            if (f16) ((uint16_t *)(rows + (size_t)j * rs))[i] = vki_fp32_to_fp16(v);
            else ((float *)(rows + (size_t)j * rs))[i] = v;
        }
    for (int64_t i = 0; i < n; i++) q[i] = test_rand_f32(seed, -1.0f, 1.0f);
    for (int j = 0; j < nrows; j++) p[j] = test_rand_f32(seed, 0.0f, 1.0f);
    for (int64_t i = 0; i <= n; i++) y[i] = i < n ? test_rand_f32(seed, -1.0f, 1.0f) : -7.0f;
    for (int64_t i = 0; i < n; i++) yw[i] = y[i];
    out[nrows] = -7.0f;
    fast->dot_rows(n, rows, rs, nrows, f16, q, out);
    fast->mad_rows(n, y, rows, rs, nrows, f16, p);
    for (int j = 0; j < nrows; j++) {
        double want = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *r = rows + (size_t)j * rs;
            double v = f16 ? vki_fp16_to_fp32(((const uint16_t *)r)[i]) : ((const float *)r)[i];
            want += v * q[i];
            mag += fabs(v * q[i]);
            yw[i] += p[j] * v;
        }
        CHECKF(fabs(out[j] - want) <= 1e-5 * mag + 1e-6, "%s dot_rows %s n=%lld rows=%d row %d: %.7g vs %.7g",
               fast->name, f16 ? "f16" : "f32", (long long)n, nrows, j, out[j], want);
    }
    for (int64_t i = 0; i < n; i++)
        CHECKF(fabs(y[i] - yw[i]) <= 1e-5 * (1 + nrows), "%s mad_rows %s n=%lld rows=%d at %lld: %.7g vs %.7g",
               fast->name, f16 ? "f16" : "f32", (long long)n, nrows, (long long)i, y[i], yw[i]);
    CHECKF(out[nrows] == -7.0f && y[n] == -7.0f, "%s dot_rows/mad_rows n=%lld rows=%d wrote past the end",
           fast->name, (long long)n, nrows);
    free(rows); free(q); free(p); free(out); free(y); free(yw);
}

/* A level's Q8_0 and Q8_K activation quantizers must give the scalar ones' bytes:
 * rows of several magnitudes, zero blocks, a block with one huge value,
 * NaN-free. */
static void check_quantize(const cpu_kernels *fast, uint64_t *seed)
{
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof(float));
    block_q8_0 *a = malloc(N / 32 * sizeof(block_q8_0)), *b = malloc(N / 32 * sizeof(block_q8_0));
    block_q8_K *ka = malloc(N / QK_K * sizeof(block_q8_K)), *kb = malloc(N / QK_K * sizeof(block_q8_K));
    VKI_ASSERT(x && a && b && ka && kb);
    for (int rep = 0; rep < 20; rep++) {
        float scale = rep < 10 ? (float)(1 << rep) * 1e-3f : 1e3f / (float)(rep - 9);
        for (int i = 0; i < N; i++) x[i] = test_rand_f32(seed, -scale, scale);
        for (int i = 0; i < 32; i++) x[32 + i] = 0.0f;               /* an all-zero block */
        x[64 + rep] = 1e30f;                                          /* one dominating value */
        for (int i = 0; i < 31; i++) x[96 + i] = (float)(i - 16) + 0.5f; /* d = 1: exact ties */
        x[127] = 127.0f;
        cpu_quantize_q8_0(x, a, N);
        fast->quantize_q8_0(x, b, N);
        CHECKF(memcmp(a, b, N / 32 * sizeof(block_q8_0)) == 0, "%s quantize_q8_0 differs from scalar (rep %d)",
               fast->name, rep);
        cpu_quantize_q8_K(x, ka, N);
        fast->quantize_q8_K(x, kb, N);
        CHECKF(memcmp(ka, kb, N / QK_K * sizeof(block_q8_K)) == 0, "%s quantize_q8_K differs from scalar (rep %d)",
               fast->name, rep);
    }
    free(x); free(a); free(b); free(ka); free(kb);
}

/* silu and swiglu against libm in double: exp16's ~1 ulp plus a division
 * and a multiply stay within 4e-7 relative. Inputs span the range where
 * float e^-x overflows (x < -88.7): there silu gives -0, as with libm's
 * expf, an absolute error below 1e-36. */
static void check_swiglu(const cpu_kernels *fast, int64_t n, uint64_t *seed)
{
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    float *o = malloc((size_t)(n + 1) * sizeof(float));
    VKI_ASSERT(x && y && o);
    for (int64_t i = 0; i < n; i++) x[i] = test_rand_f32(seed, -100.0f, 30.0f), y[i] = test_rand_f32(seed, -2.0f, 2.0f);
    for (int with_y = 0; with_y < 2; with_y++) {
        o[n] = -7.0f;
        fast->swiglu_f32(n, o, x, with_y ? y : NULL);
        for (int64_t i = 0; i < n; i++) {
            double want = x[i] / (1.0 + exp(-(double)x[i])) * (with_y ? y[i] : 1.0);
            CHECKF(fabs(o[i] - want) <= 4e-7 * fabs(want) + 1e-36, "%s swiglu%s n=%lld at %lld: x=%g: %.9g vs %.9g",
                   fast->name, with_y ? "" : "(silu)", (long long)n, (long long)i, x[i], o[i], want);
        }
        CHECKF(o[n] == -7.0f, "%s swiglu n=%lld wrote past the end", fast->name, (long long)n);
    }
    free(x); free(y); free(o);
}

/* Both GELU forms against double: x Phi(x) with erfc, and x / (1 + e^-2u).
 * Inputs reach far into the negative tail (values down to ~1e-38 and
 * below FLT_MIN, which need not keep precision), where 1 + erf and 1 + tanh
 * cancel: the kernels compute the
 * tail directly, so the bound is relative everywhere. Float rounding of
 * the exponent's argument (about z^2 ulp) grows the error with |x|. */
static void check_gelu(const cpu_kernels *fast, int64_t n, uint64_t *seed, double *worst)
{
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    float *o = malloc((size_t)(n + 1) * sizeof(float));
    VKI_ASSERT(x && y && o);
    for (int64_t i = 0; i < n; i++) x[i] = test_rand_f32(seed, -13.0f, 8.0f), y[i] = test_rand_f32(seed, -2.0f, 2.0f);
    if (n > 3) x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f;
    for (int form = 0; form < 4; form++) {
        bool tanh_form = form & 1, with_y = form & 2;
        o[n] = -7.0f;
        fast->gelu_f32(n, o, x, with_y ? y : NULL, tanh_form);
        for (int64_t i = 0; i < n; i++) {
            double v = x[i], g;
            if (tanh_form) g = v / (1.0 + exp(-2.0 * sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
            else g = 0.5 * v * erfc(-v / sqrt(2.0));
            if (with_y) g *= y[i];
            double tol = (1e-6 + 2e-7 * v * v) * fabs(g) + 2e-38, err = fabs(o[i] - g);
            if (fabs(g) > 1e-30 && err / fabs(g) > worst[tanh_form]) worst[tanh_form] = err / fabs(g);
            CHECKF(err <= tol, "%s gelu%s%s n=%lld at %lld: x=%g: %.9g vs %.9g", fast->name,
                   tanh_form ? "_tanh" : "", with_y ? "*y" : "", (long long)n, (long long)i, x[i], o[i], g);
        }
        CHECKF(o[n] == -7.0f, "%s gelu n=%lld wrote past the end", fast->name, (long long)n);
    }
    free(x); free(y); free(o);
}

static void check_gelu_all(const cpu_kernels *k, uint64_t *seed)
{
    double worst[2] = {0, 0};
    int64_t ns[] = {1, 15, 16, 17, 67, 4096};
    for (size_t i = 0; i < VKI_COUNT(ns); i++) check_gelu(k, ns[i], seed, worst);
    printf("%s: gelu max relative error %.2g (erf form), %.2g (tanh form)\n", k->name, worst[0], worst[1]);
}

int main(int argc, char **argv)
{
    /* --isa NAME: that level only (tests/cross runs AVX-512 under an
     * emulator, where every instruction counts). */
    cpu_isa only = CPU_ISA_COUNT;
    if (argc == 3 && strcmp(argv[1], "--isa") == 0) {
        if (!cpu_isa_parse(argv[2], &only) || only == CPU_ISA_SCALAR) {
            fprintf(stderr, "test_cpu_gemv: --isa %s: expected avx2, avx512 or neon\n", argv[2]);
            return 2;
        }
        if (!cpu_isa_available(only)) {
            fprintf(stderr, "test_cpu_gemv: --isa %s: this CPU does not have it\n", argv[2]);
            return 1;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: test_cpu_gemv [--isa avx2|avx512|neon]\n");
        return 2;
    }
    const cpu_kernels *ref = cpu_kernels_get(CPU_ISA_SCALAR);
    int n_checked = 0;
    uint64_t gseed = 7;
    check_gelu_all(ref, &gseed);
    for (int isa = 1; isa < CPU_ISA_COUNT; isa++) {
        if (only != CPU_ISA_COUNT && isa != (int)only) continue;
        if (!cpu_isa_available((cpu_isa)isa)) {
            printf("%s: skipped (not available on this CPU)\n", cpu_isa_name((cpu_isa)isa));
            continue;
        }
        const cpu_kernels *fast = cpu_kernels_get((cpu_isa)isa);
        /* The AVX-512 table keeps the AVX2 entries it does not replace: the
         * same code, checked at the AVX2 level (natively, where the AVX-512
         * one may run under an emulator), so not again here. */
        const cpu_kernels *below = isa == CPU_ISA_AVX512 ? cpu_kernels_get(CPU_ISA_AVX2) : NULL;
        uint64_t seed = 99 + (uint64_t)isa;
        int n_gemv = 0, n_mm = 0, n_gemm = 0, n_inherited = 0;
        for (size_t ti = 0; ti < VKI_COUNT(types); ti++) {
            vki_type t = types[ti];
            int64_t bs = vki_type_get(t)->block_size;
            if (below && fast->gemm[t] && fast->gemm[t] == below->gemm[t]) n_inherited++;
            else if (fast->gemm[t] && fast->gemm[t] != ref->gemm[t]) {
                int64_t ks[] = {bs, (bs == 1 ? 17 : 3) * bs, (bs == 1 ? 259 : 17) * bs};
                for (size_t i = 0; i < VKI_COUNT(ks); i++)
                    for (int nr = 1; nr <= 4; nr++)
                        for (int nc = 1; nc <= 4; nc++) check_gemm(ref, fast, t, ks[i], nr, nc, &seed);
                for (int i = 0; i < 8; i++) check_gemm(ref, fast, t, bs, 4, 4, &seed);
                n_gemm++;
            }
            if (fast->gemv[t]) {
                /* 1, 3, 16, 17, 44 and 131 blocks of 32 (or 256) */
                int64_t nbs[] = {1, 3, 16, 17, 44, 131};
                int64_t rows[] = {1, 3, 4, 5, 33};
                for (size_t i = 0; i < VKI_COUNT(nbs); i++)
                    for (size_t j = 0; j < VKI_COUNT(rows); j++) check_gemv(ref, fast, t, nbs[i] * bs, rows[j], &seed);
                n_gemv++;
            }
            if (fast->mm_mr) {
                int64_t ks[] = {bs == 1 ? 1 : bs, bs == 1 ? 257 : 3 * bs};
                int shapes[][2] = {{1, 1}, {fast->mm_mr, fast->mm_nr}, {fast->mm_mr - 1, fast->mm_nr - 1},
                                   {fast->mm_mr / 2 + 1, 3}};
                for (size_t i = 0; i < VKI_COUNT(ks); i++)
                    for (size_t s = 0; s < VKI_COUNT(shapes); s++)
                        check_mm(ref, fast, t, ks[i], shapes[s][0], shapes[s][1], s & 1, &seed);
                n_mm++;
            }
        }
        int n_r16 = 0;
        for (size_t ti = 0; ti < VKI_COUNT(types); ti++) {
            vki_type t = types[ti];
            if (!fast->gemv_r16[t]) continue;
            if (below && fast->gemv_r16[t] == below->gemv_r16[t] && fast->gemvn_r16[t] == below->gemvn_r16[t]) {
                n_inherited++;
                continue;
            }
            /* one block, a pair, an odd count, 17 blocks, past 4096;
             * rows around the 16-row group */
            int64_t bs = vki_type_get(t)->block_size;
            int64_t ks[] = {bs, 2 * bs, 3 * bs, 17 * bs, 4096 + bs};
            int64_t rows[] = {1, 15, 16, 17, 33, 48};
            /* columns: every count to 8 (continuous batching), then short
             * prompts up to one pass of CPU_GEMVN_R16_MAX */
            const int ncs[] = {1, 2, 3, 4, 5, 6, 7, 8, 13, CPU_GEMVN_R16_MAX}, ncs_long[] = {1, 8, CPU_GEMVN_R16_MAX};
            for (size_t i = 0; i < VKI_COUNT(ks); i++)
                for (size_t j = 0; j < VKI_COUNT(rows); j++)
                    for (size_t n = 0; n < (ks[i] > 4096 ? VKI_COUNT(ncs_long) : VKI_COUNT(ncs)); n++)
                        check_r16(ref, fast, t, ks[i], rows[j], ks[i] > 4096 ? ncs_long[n] : ncs[n], &seed, false);
            for (int nc = 1; nc <= 2; nc++) check_r16(ref, fast, t, 4096 + bs, 17, nc, &seed, true);
            n_r16++;
        }
        int n_mq = 0;
        for (size_t ti = 0; ti < VKI_COUNT(types) && fast->mq_kernel; ti++) {
            vki_type t = types[ti];
            mq_fmt f;
            if (!mq_format(t, fast->mq_signed_q8, &f)) continue;
            int64_t bs = vki_type_get(t)->block_size;
            int64_t ks[] = {bs, 3 * bs, bs == 32 ? 9 * bs : 2 * bs};
            int mr = fast->mq_mr[f.is_signed], nr = fast->mq_nr[f.is_signed];
            int shapes[][2] = {{1, 1}, {mr, nr}, {mr - 1, nr - 1}, {mr / 2 + 1, 3}, {mr / 2 - 1, 2}};
            for (size_t i = 0; i < VKI_COUNT(ks); i++)
                for (size_t sh = 0; sh < VKI_COUNT(shapes); sh++)
                    check_mq(fast, t, ks[i], shapes[sh][0], shapes[sh][1], sh & 1, &seed, false);
            /* the int16 pair sums at their bound (mq_int16_steps) */
            check_mq(fast, t, 3 * bs, mr, nr, false, &seed, true);
            n_mq++;
        }
        check_quantize(fast, &seed);
        for (int64_t n = 1; n <= 67; n += 33) check_swiglu(fast, n, &seed);
        check_swiglu(fast, 4096, &seed);
        check_gelu_all(fast, &seed);
        if (fast->dot_rows) {
            int64_t hds[] = {1, 7, 16, 64, 80, 100, 128, 200, 256};
            int nks[] = {1, 15, 16, 17, 64};
            for (size_t i = 0; i < VKI_COUNT(hds); i++)
                for (size_t j = 0; j < VKI_COUNT(nks); j++)
                    for (int f16 = 0; f16 < 2; f16++) check_rows(fast, hds[i], nks[j], f16, &seed);
        }
        int64_t ns[] = {1, 15, 16, 17, 64, 333};
        for (size_t i = 0; i < VKI_COUNT(ns); i++) check_exp(fast, ns[i], &seed);
        printf("%s%s: %d dot tile, %d gemv, %d repacked gemv, %d packed f32 mat-mat and %d integer mat-mat types "
               "checked; %d dot tile and repacked entries are the AVX2 level's\n",
               fast->name, isa == CPU_ISA_AVX512 && cpu_has_vnni() ? "+vnni" : "", n_gemm, n_gemv, n_r16, n_mm, n_mq,
               n_inherited);
        n_checked++;
    }
    if (n_checked == 0) test_skip("only the scalar kernels exist on this CPU: nothing to compare");
    return test_finish("test_cpu_gemv");
}
