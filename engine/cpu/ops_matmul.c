/*
 * ops_matmul.c: MATMUL on the CPU backend, the op that holds nearly all of a
 * forward pass's time: picks the path by row count and weight layout (the
 * mat-vecs of ops_matvec.c for one activation row and a few, decode), and
 * holds the dot tiles and the packed f32 and integer mat-mat for many rows
 * (prompts). The kernels are the ISA table's.
 * Must not: allocate per op in the steady state (the backend's scratch).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "error.h"
#include "mq_r16.h"
#include "repack.h"
#include "util.h"

/* ===== MATMUL ============================================================ */

#define MM_RB 16 /* weight rows per work item */
#define MM_CB 64 /* activation rows per work item */

typedef struct mm_task {
    const bk_op       *op;
    const cpu_kernels *kern;
    cpu_gemm_fn        gemm;   /* NULL: dequantize a weight row, then f32 dots */
    const uint8_t     *w;
    size_t             ws;
    int64_t            k, m, n;
    const uint8_t     *x;      /* prepared activations, n rows of xs bytes */
    size_t             xs;
    float             *d;      /* n rows of ds floats                      */
    size_t             ds;
    const float       *bias;
    float             *wrow;   /* [n_threads][k] dequantized weight rows    */
    const bk_tensor   *wt;     /* the weight (for repacked rows)           */
    uint8_t           *plain;  /* R16 weight: [n_threads][MM_RB] plain rows */
    int64_t            n_rb, n_cb;
    atomic_int_fast64_t next;
    cpu_act            act;    /* how the activations are prepared         */
} mm_task;

static void mm_work(void *arg, int ith, int nth)
{
    mm_task *t = arg;
    (void)nth;
    int64_t item;
    while ((item = atomic_fetch_add(&t->next, 1)) < t->n_rb * t->n_cb) {
        int64_t rb = item % t->n_rb, cb = item / t->n_rb;
        int64_t r_lo = rb * MM_RB, r_hi = VKI_MIN(t->m, r_lo + MM_RB);
        int64_t c_lo = cb * MM_CB, c_hi = VKI_MIN(t->n, c_lo + MM_CB);
        /* rows [r_lo, r_hi) of the weight, base - r_lo * ws: indexed by r below */
        const uint8_t *wb = t->plain ? cpu_weight_rows(t->wt, r_lo, r_hi - r_lo,
                                                       t->plain + (size_t)ith * MM_RB * t->ws) - (size_t)r_lo * t->ws
                                     : t->w;
        if (t->gemm) {
            for (int64_t c = c_lo; c < c_hi; c += CPU_TILE_C) {
                int nc = (int)VKI_MIN(CPU_TILE_C, c_hi - c);
                for (int64_t r = r_lo; r < r_hi; r += CPU_TILE_R) {
                    int nr = (int)VKI_MIN(CPU_TILE_R, r_hi - r);
                    t->gemm(t->k, wb + (size_t)r * t->ws, t->ws, nr, t->x + (size_t)c * t->xs, t->xs, nc,
                            t->d + (size_t)c * t->ds + (size_t)r, t->ds);
                }
            }
        } else {
            float *wr = t->wrow + (size_t)ith * (size_t)t->k;
            for (int64_t r = r_lo; r < r_hi; r++) {
                vki_dequantize_row(t->op->src[0]->type, wb + (size_t)r * t->ws, wr, t->k);
                for (int64_t c = c_lo; c < c_hi; c++)
                    t->d[(size_t)c * t->ds + (size_t)r] =
                        t->kern->dot_f32(t->k, wr, (const float *)(t->x + (size_t)c * t->xs));
            }
        }
        if (t->bias)
            for (int64_t c = c_lo; c < c_hi; c++)
                for (int64_t r = r_lo; r < r_hi; r++) t->d[(size_t)c * t->ds + (size_t)r] += t->bias[r];
    }
}


/* ===== MATMUL, shared by the packed paths ================================ */

/* Per-thread room for `rows` plain rows of a repacked weight (0 for a
 * plain one, which is read in place): the packers and tiles read plain
 * rows, and unpacking a panel costs little next to multiplying it. */
static size_t plain_bytes(const cpu_ctx *c, const bk_tensor *w, int64_t rows)
{
    if (((const cpu_buffer *)w->buf)->layout == CPU_LAYOUT_PLAIN) return 0;
    return (size_t)vki_align_up((uint64_t)c->n_threads * (uint64_t)rows * w->nb[1], 64);
}

/* Splits the activation groups into n_cc pieces of cc_len when there are too
 * few weight blocks (n_rb) to keep every thread busy; each piece repacks its
 * weights, a small cost. */
static void mm_split_groups(int64_t n_groups, int64_t n_rb, int nth, int64_t *n_cc, int64_t *cc_len)
{
    int64_t cc = n_rb >= 4 * nth ? 1 : VKI_MIN(n_groups, (4 * nth + n_rb - 1) / n_rb);
    *cc_len = (n_groups + cc - 1) / cc;
    *n_cc = (n_groups + *cc_len - 1) / *cc_len;
}

/* Where a packed matmul writes: straight into dst when its rows are evenly
 * strided floats, else into scratch (out_bytes of it) copied back at the end. */
static size_t mm_out_bytes(const bk_tensor *d, int64_t n, int64_t m)
{
    bool direct = cpu_rows_uniform(d) && d->nb[1] % sizeof(float) == 0;
    return direct ? 0 : (size_t)vki_align_up((uint64_t)n * (uint64_t)m * sizeof(float), 64);
}

static void mm_out_init(const bk_tensor *d, int64_t m, uint8_t *scratch, size_t out_bytes, float **out, size_t *ds)
{
    if (out_bytes == 0) {
        *out = cpu_tensor_data(d);
        *ds = d->nb[1] / sizeof(float);
    } else {
        *out = (float *)scratch;
        *ds = (size_t)m;
    }
}

/* Packs the activations (pack_x NULL: read in place), then multiplies: on the caller alone or on the pool;
 * then copies an indirect result into dst. */
static void mm_run(cpu_ctx *c, cpu_task_fn pack_x, cpu_task_fn work, void *task, const bk_tensor *d,
                   int64_t n, int64_t m, const float *out, size_t ds, size_t out_bytes)
{
    if (c->n_threads == 1) {
        if (pack_x) pack_x(task, 0, 1);
        work(task, 0, 1);
    } else {
        if (pack_x) cpu_pool_run(c->pool, pack_x, task);
        cpu_pool_run(c->pool, work, task);
    }
    if (out_bytes)
        for (int64_t r = 0; r < n; r++) memcpy(cpu_row_ptr(d, r), out + (size_t)r * ds, (size_t)m * sizeof(float));
}

/* The fused activation (MATMUL's ip[0]) over a tile the kernel has just
 * written (nc rows of nrows floats), while it is still in L1: a separate
 * GELU pass read and wrote the whole FFN activation again (7% of a BERT
 * embedding). */
static void mm_tile_act(const cpu_kernels *kn, int act, float *d, size_t ds, int nc, int nrows)
{
    for (int c = 0; c < nc; c++) {
        float *row = d + (size_t)c * ds;
        kn->gelu_f32(nrows, row, row, NULL, act == BK_ACT_GELU_TANH);
    }
}

/* ===== MATMUL, packed path ===============================================
 * For many activation rows: weights are converted to f32 panels once per
 * work item and reused against every activation group, so a quantized
 * weight is dequantized once per matmul instead of once per dot, and the
 * ISA's register-tiled kernel runs from unit-stride, zero-padded memory. */

/* Activation rows from which packing beats the dot tiles. Packing has a
 * fixed cost per call that 8 rows do not repay: 512x1408 with 8 rows (a
 * continuous-batching decode step) took Q4_0 ~85 us on the dot tiles vs
 * ~150-290 us packed, F16 63 vs 182; at 16 rows Q8_0 and Q4_K pay off
 * packed, Q4_0 and F16 not yet (2 threads, AVX-512). -DVKI_MMP_MIN_N=
 * moves it for such measurements. */
#ifndef VKI_MMP_MIN_N
#define VKI_MMP_MIN_N 16
#endif
#define MMP_MIN_N  VKI_MMP_MIN_N

#define MMP_PANELS 2 /* weight panels per work item (packed once, reused for every group) */

typedef struct mmp_task {
    const cpu_kernels *kern;
    vki_type           wtype;
    const uint8_t     *w;
    size_t             ws;
    int64_t            k, m, n;
    const bk_tensor   *xt;
    float             *xp;  /* [n_groups][k][mm_nr] packed activations            */
    float             *wp;  /* [n_threads][MMP_PANELS][k][mm_mr] packed weights   */
    float             *tmp; /* [n_threads][k] one converted weight row            */
    const bk_tensor   *wt;   /* the weight (for repacked rows)                      */
    uint8_t           *plain; /* R16 weight: [n_threads][mm_mr] plain rows          */
    const uint8_t     *r16f; /* an R16 F32/F16 weight's group of row 0: an F32 group
                                is the panel, read in place; an F16 one is widened
                                to wp in one pass (no plain rows)                 */
    size_t             r16f_gs; /* its group stride                               */
    float             *d;   /* n rows of ds floats                                */
    size_t             ds;
    const float       *bias;
    bool               x_rows; /* mm_kernel_rows reads the activation rows in place (xp unused) */
    int                act; /* MATMUL's ip[0]: 0, or the BK_ACT_* GELU applied per tile */
    int64_t            n_groups, n_rb, n_cc, cc_len;
    atomic_int_fast64_t next;
    cpu_chunks         ch;  /* activation groups to pack                      */
} mmp_task;

static void mmp_pack_x(void *arg, int ith, int nth)
{
    mmp_task *t = arg;
    int nr = t->kern->mm_nr;
    int64_t g;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &g);) {
        float *dst = t->xp + (size_t)g * (size_t)t->k * (size_t)nr;
        /* Row by row, each row's k floats landed nr floats apart: a
         * store per cache line, 7% of a BERT embedding's profile. Element
         * by element across the group, the stores run contiguously and the
         * nr rows are read as nr sequential streams. */
        const float *src[64];
        int nc = (int)VKI_MIN(nr, t->n - g * nr);
        VKI_ASSERT(nr <= 64);
        for (int c = 0; c < nc; c++) src[c] = (const float *)cpu_row_ptr(t->xt, g * nr + c);
        for (int64_t i = 0; i < t->k; i++, dst += nr) {
            int c = 0;
            for (; c < nc; c++) dst[c] = src[c][i];
            for (; c < nr; c++) dst[c] = 0.0f;
        }
    }
}

/* An mr-row panel (mr a multiple of 16, above 16) from the consecutive R16
 * float groups of rows r..: group i's [k][16] lands in columns 16i..16i+15
 * of [k][mr], groups past the matrix as zeros. Unpacking the groups to
 * plain rows and packing those (what AVX-512's 32-row panels did) was 28%
 * of a BERT embedding's profile. tmp16: [k][16] floats for an F16 group. */
static void r16f_panel(const mmp_task *t, int64_t r, float *dst, float *tmp16)
{
    const int64_t mr = t->kern->mm_mr, k = t->k;
    for (int64_t gi = 0; gi < mr / R16_ROWS; gi++) {
        const int64_t r0 = r + gi * R16_ROWS;
        const float *src = NULL;
        if (r0 < t->m) {
            const uint8_t *grp = t->r16f + (size_t)(r0 / R16_ROWS) * t->r16f_gs;
            if (t->wtype == VKI_TYPE_F32) {
                src = (const float *)grp;
            } else {
                t->kern->mm_panel_r16(k, grp, tmp16);
                src = tmp16;
            }
        }
        for (int64_t kk = 0; kk < k; kk++) {
            float *o = dst + kk * mr + gi * R16_ROWS;
            if (src) memcpy(o, src + kk * R16_ROWS, R16_ROWS * sizeof(float));
            else memset(o, 0, R16_ROWS * sizeof(float));
        }
    }
}

static void mmp_work(void *arg, int ith, int nth)
{
    mmp_task *t = arg;
    (void)nth;
    const cpu_kernels *kn = t->kern;
    int64_t mr = kn->mm_mr, nr = kn->mm_nr, k = t->k, item;
    float *wp = t->wp + (size_t)ith * MMP_PANELS * (size_t)(mr * k);
    float *tmp = t->tmp + (size_t)ith * (size_t)k * (t->r16f && mr > R16_ROWS ? R16_ROWS : 1);
    while ((item = atomic_fetch_add(&t->next, 1)) < t->n_rb * t->n_cc) {
        int64_t rb = item / t->n_cc, cc = item % t->n_cc;
        int64_t r_lo = rb * MMP_PANELS * mr;
        int np = 0;
        const float *pan[MMP_PANELS];
        for (; np < MMP_PANELS && r_lo + np * mr < t->m; np++) {
            int64_t r = r_lo + np * mr;
            if (t->r16f && mr > R16_ROWS) {
                r16f_panel(t, r, wp + (size_t)(np * mr * k), tmp);
                pan[np] = wp + (size_t)(np * mr * k);
                continue;
            }
            if (t->r16f) {
                const uint8_t *grp = t->r16f + (size_t)(r / R16_ROWS) * t->r16f_gs;
                if (t->wtype == VKI_TYPE_F32) {
                    pan[np] = (const float *)grp;
                } else {
                    kn->mm_panel_r16(k, grp, wp + (size_t)(np * mr * k));
                    pan[np] = wp + (size_t)(np * mr * k);
                }
                continue;
            }
            int nr_p = (int)VKI_MIN(mr, t->m - r);
            const uint8_t *wr = t->plain ? cpu_weight_rows(t->wt, r, nr_p, t->plain + (size_t)(ith * mr) * t->ws)
                                         : t->w + (size_t)r * t->ws;
            bool ok = kn->mm_pack_w(t->wtype, k, wr, t->ws, nr_p,
                                    wp + (size_t)(np * mr * k), tmp);
            VKI_ASSERT(ok); /* op_matmul only sends types the loader dequantizes */
            pan[np] = wp + (size_t)(np * mr * k);
        }
        int64_t g_hi = VKI_MIN(t->n_groups, (cc + 1) * t->cc_len);
        for (int64_t g = cc * t->cc_len; g < g_hi; g++) {
            const float *xg = t->x_rows ? NULL : t->xp + (size_t)(g * k * nr);
            int nc = (int)VKI_MIN(nr, t->n - g * nr);
            const float *xr[64];
            if (t->x_rows)
                for (int c = 0; c < nc; c++) xr[c] = (const float *)cpu_row_ptr(t->xt, g * nr + c);
            for (int p = 0; p < np; p++) {
                int64_t r = r_lo + p * mr;
                int nrows = (int)VKI_MIN(mr, t->m - r);
                float *dt = t->d + (size_t)(g * nr) * t->ds + (size_t)r;
                if (t->x_rows) kn->mm_kernel_rows(k, pan[p], nrows, xr, nc, t->bias ? t->bias + r : NULL, dt, t->ds);
                else kn->mm_kernel(k, pan[p], nrows, xg, nc, t->bias ? t->bias + r : NULL, dt, t->ds);
                if (t->act) mm_tile_act(kn, t->act, dt, t->ds, nc, nrows);
            }
        }
    }
}

static vki_status op_matmul_packed(cpu_ctx *c, const bk_op *op)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *d = op->dst;
    const cpu_kernels *kn = c->kern;
    mmp_task t = {.kern = kn, .wtype = w->type, .w = cpu_tensor_data(w), .ws = w->nb[1], .k = w->ne[0],
                  .m = w->ne[1], .n = cpu_n_rows(x), .xt = x, .bias = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL,
                  .act = op->ip[0]};
    int nth = c->n_threads;
    t.n_groups = (t.n + kn->mm_nr - 1) / kn->mm_nr;
    t.n_rb = (t.m + MMP_PANELS * kn->mm_mr - 1) / (MMP_PANELS * kn->mm_mr);
    mm_split_groups(t.n_groups, t.n_rb, nth, &t.n_cc, &t.cc_len);

    VKI_ASSERT(kn->mm_nr <= 64);
    t.x_rows = kn->mm_kernel_rows != NULL;
    size_t x_bytes =
        t.x_rows ? 0 : (size_t)vki_align_up((uint64_t)t.n_groups * (uint64_t)kn->mm_nr * (uint64_t)t.k * 4, 64);
    size_t w_bytes = (size_t)vki_align_up((uint64_t)nth * MMP_PANELS * (uint64_t)kn->mm_mr * (uint64_t)t.k * 4, 64);
    size_t r_bytes = (size_t)vki_align_up((uint64_t)nth * (uint64_t)t.k * 4, 64);
    size_t d_bytes = mm_out_bytes(d, t.n, t.m);
    size_t p_bytes = plain_bytes(c, w, kn->mm_mr);
    if (r16_float(w->type) && kn->mm_mr % R16_ROWS == 0 && (w->type == VKI_TYPE_F32 || kn->mm_panel_r16)) {
        t.r16f_gs = r16_group_bytes(w->type, t.k);
        t.r16f = cpu_r16_group0(w, t.r16f_gs);
    }
    if (t.r16f) {
        p_bytes = r_bytes = 0;
        if (kn->mm_mr > R16_ROWS && w->type == VKI_TYPE_F16) /* tmp: one group widened */
            r_bytes = (size_t)vki_align_up((uint64_t)nth * (uint64_t)t.k * R16_ROWS * 4, 64);
        else if (kn->mm_mr == R16_ROWS && w->type == VKI_TYPE_F32)
            w_bytes = 0;
    }
    uint8_t *s = cpu_scratch_get(c, x_bytes + w_bytes + r_bytes + d_bytes + p_bytes);
    if (!s)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL: no memory for %zu bytes of packing scratch",
                        x_bytes + w_bytes + r_bytes + d_bytes + p_bytes);
    t.wt = w;
    t.plain = p_bytes ? s + x_bytes + w_bytes + r_bytes + d_bytes : NULL;
    t.xp = (float *)s;
    t.wp = (float *)(s + x_bytes);
    t.tmp = (float *)(s + x_bytes + w_bytes);
    mm_out_init(d, t.m, s + x_bytes + w_bytes + r_bytes, d_bytes, &t.d, &t.ds);
    atomic_init(&t.next, 0);
    cpu_chunks_init(&t.ch, t.n_groups, nth, 1);
    mm_run(c, t.x_rows ? NULL : mmp_pack_x, mmp_work, &t, d, t.n, t.m, t.d, t.ds, d_bytes);
    return VKI_OK;
}


/* ===== MATMUL, integer packed path =======================================
 * Quantized weights against many activation rows: activations are
 * quantized to Q8_0 once and packed into groups; each work item unpacks its
 * weight panels to integer codes and float scales once (mq.h) and runs the
 * ISA's integer tile over every group, so no weight is ever widened to
 * f32 and the inner loop is int8 dot products. */

#define MQ_ITEM_ROWS 64 /* weight rows per work item */

typedef struct mq_task {
    const cpu_kernels *kern;
    vki_type           wtype;
    mq_fmt             fmt;
    const uint8_t     *w;
    size_t             ws;
    int64_t            k, m, n;
    const bk_tensor   *xt;
    uint8_t           *xp;     /* [n_groups][gbytes] packed activations      */
    size_t             gbytes;
    uint8_t           *wp;     /* [n_threads][panels][pbytes] packed weights */
    size_t             pbytes;
    int                panels; /* weight panels per work item                */
    uint8_t           *tmp;    /* [n_threads][tmp_stride]                    */
    const bk_tensor   *wt;     /* the weight (for repacked rows)             */
    uint8_t           *plain;  /* R16 weight: [n_threads][mr] plain rows     */
    const uint8_t     *r16g;   /* or its group of row 0, packed from directly (mq_r16.h) */
    size_t             r16gs;  /* its group stride                           */
    int                mr, nr; /* the tile: kern->mq_mr/nr[fmt.is_signed]  */
    size_t             tmp_stride;
    float             *d;
    size_t             ds;
    const float       *bias;
    int                act;    /* as mmp_task's                              */
    int64_t            n_groups, n_rb, n_cc, cc_len;
    atomic_int_fast64_t next;
    cpu_chunks         ch;     /* activation groups to pack                  */
} mq_task;

static void mq_pack_x(void *arg, int ith, int nth)
{
    mq_task *t = arg;
    int nr = t->nr;
    size_t rb = (size_t)(t->k / QK8_0) * sizeof(block_q8_0);
    uint8_t *q = t->tmp + (size_t)ith * t->tmp_stride;
    const block_q8_0 *rows[32];
    int64_t g;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &g);) {
        int nc = (int)VKI_MIN(nr, t->n - g * nr);
        for (int c = 0; c < nc; c++) {
            t->kern->quantize_q8_0((const float *)cpu_row_ptr(t->xt, g * nr + c), q + (size_t)c * rb, t->k);
            rows[c] = (const block_q8_0 *)(q + (size_t)c * rb);
        }
        mq_pack_group(&t->fmt, t->k, rows, nc, nr, t->xp + (size_t)g * t->gbytes);
    }
}

static void mq_work(void *arg, int ith, int nth)
{
    mq_task *t = arg;
    (void)nth;
    const cpu_kernels *kn = t->kern;
    int64_t mr = t->mr, nr = t->nr, item;
    uint8_t *wp = t->wp + (size_t)ith * (size_t)t->panels * t->pbytes;
    uint8_t *tmp = t->tmp + (size_t)ith * t->tmp_stride;
    while ((item = atomic_fetch_add(&t->next, 1)) < t->n_rb * t->n_cc) {
        int64_t rb = item / t->n_cc, cc = item % t->n_cc;
        int64_t r_lo = rb * t->panels * mr;
        int np = 0;
        for (; np < t->panels && r_lo + np * mr < t->m; np++) {
            int64_t r = r_lo + np * mr;
            int nr_p = (int)VKI_MIN(mr, t->m - r);
            if (t->r16g) {
                mq_pack_panel_r16(t->wtype, &t->fmt, t->k, t->r16g + (size_t)(r / R16_ROWS) * t->r16gs, t->r16gs,
                                  (nr_p + R16_ROWS - 1) / R16_ROWS, (int)mr, wp + (size_t)np * t->pbytes);
                continue;
            }
            const uint8_t *wr = t->plain ? cpu_weight_rows(t->wt, r, nr_p, t->plain + (size_t)(ith * mr) * t->ws)
                                         : t->w + (size_t)r * t->ws;
            mq_pack_panel(t->wtype, &t->fmt, t->k, wr, t->ws, nr_p,
                          (int)mr, wp + (size_t)np * t->pbytes, tmp);
        }
        int64_t g_hi = VKI_MIN(t->n_groups, (cc + 1) * t->cc_len);
        for (int64_t g = cc * t->cc_len; g < g_hi; g++) {
            int nc = (int)VKI_MIN(nr, t->n - g * nr);
            for (int p = 0; p < np; p++) {
                int64_t r = r_lo + p * mr;
                int nrows = (int)VKI_MIN(mr, t->m - r);
                float *dt = t->d + (size_t)(g * nr) * t->ds + (size_t)r;
                kn->mq_kernel(&t->fmt, t->k, wp + (size_t)p * t->pbytes, nrows, t->xp + (size_t)g * t->gbytes, nc,
                              t->bias ? t->bias + r : NULL, dt, t->ds);
                if (t->act) mm_tile_act(kn, t->act, dt, t->ds, nc, nrows);
            }
        }
    }
}

static vki_status op_matmul_mq(cpu_ctx *c, const bk_op *op, const mq_fmt *fmt)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *d = op->dst;
    const cpu_kernels *kn = c->kern;
    mq_task t = {.kern = kn, .wtype = w->type, .fmt = *fmt, .w = cpu_tensor_data(w), .ws = w->nb[1], .k = w->ne[0],
                 .m = w->ne[1], .n = cpu_n_rows(x), .xt = x, .bias = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL,
                 .act = op->ip[0], .mr = kn->mq_mr[fmt->is_signed], .nr = kn->mq_nr[fmt->is_signed]};
    int nth = c->n_threads, mr = t.mr, nr = t.nr;
    VKI_ASSERT(nr <= 32);
    t.panels = VKI_MAX(1, MQ_ITEM_ROWS / mr);
    t.gbytes = (size_t)vki_align_up(mq_group_bytes(fmt, t.k, nr), 64);
    t.pbytes = (size_t)vki_align_up(mq_panel_bytes(fmt, t.k, mr), 64);
    size_t qrows = (size_t)nr * (size_t)(t.k / QK8_0) * sizeof(block_q8_0);
    size_t drow = (size_t)t.k + 2 * (size_t)(t.k / fmt->bl) * sizeof(float);
    t.tmp_stride = (size_t)vki_align_up(VKI_MAX(qrows, drow), 64);
    t.n_groups = (t.n + nr - 1) / nr;
    t.n_rb = (t.m + (int64_t)t.panels * mr - 1) / ((int64_t)t.panels * mr);
    mm_split_groups(t.n_groups, t.n_rb, nth, &t.n_cc, &t.cc_len);

    size_t x_bytes = (size_t)t.n_groups * t.gbytes;
    size_t w_bytes = (size_t)nth * (size_t)t.panels * t.pbytes;
    size_t r_bytes = (size_t)nth * t.tmp_stride;
    size_t d_bytes = mm_out_bytes(d, t.n, t.m);
    size_t p_bytes = plain_bytes(c, w, mr);
    if (mq_r16_ok(w->type, fmt, mr)) {
        t.r16gs = r16_group_bytes(w->type, t.k);
        t.r16g = cpu_r16_group0(w, t.r16gs);
    }
    if (t.r16g) p_bytes = 0;
    uint8_t *s = cpu_scratch_get(c, x_bytes + w_bytes + r_bytes + d_bytes + p_bytes);
    if (!s)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL: no memory for %zu bytes of integer packing scratch",
                        x_bytes + w_bytes + r_bytes + d_bytes + p_bytes);
    t.wt = w;
    t.plain = p_bytes ? s + x_bytes + w_bytes + r_bytes + d_bytes : NULL;
    t.xp = s;
    t.wp = s + x_bytes;
    t.tmp = s + x_bytes + w_bytes;
    mm_out_init(d, t.m, s + x_bytes + w_bytes + r_bytes, d_bytes, &t.d, &t.ds);
    atomic_init(&t.next, 0);
    cpu_chunks_init(&t.ch, t.n_groups, nth, 1);
    mm_run(c, mq_pack_x, mq_work, &t, d, t.n, t.m, t.d, t.ds, d_bytes);
    return VKI_OK;
}

vki_status cpu_op_matmul(cpu_ctx *c, const bk_op *op, bool *act_done)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *d = op->dst;
    mq_fmt fmt;
    *act_done = false;
    const cpu_buffer *wbuf = (const cpu_buffer *)w->buf;
    const bool r16_quant = !r16_float(w->type) && c->kern->gemvn_r16[w->type] && cpu_r16_group0(w, 0);
    if (c->kern->mq_kernel && cpu_n_rows(x) >= (r16_quant ? VKI_MMP_MIN_N_R16 : MMP_MIN_N) && w->ne[0] % QK8_0 == 0 &&
        mq_format(w->type, c->kern->mq_signed_q8, &fmt) && w->ne[0] % fmt.bl == 0 && !c->no_mq) {
        *act_done = true;
        return op_matmul_mq(c, op, &fmt);
    }
    if (c->kern->mm_mr && cpu_n_rows(x) >= (r16_quant ? VKI_MMP_MIN_N_R16 : MMP_MIN_N) &&
        vki_type_get(w->type)->supported) {
        *act_done = true;
        return op_matmul_packed(c, op);
    }
    mm_task t = {.op = op, .kern = c->kern, .w = cpu_tensor_data(w), .ws = w->nb[1], .k = w->ne[0],
                 .m = w->ne[1], .n = cpu_n_rows(x), .bias = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL};
    t.gemm = c->kern->gemm[w->type];
    t.act = t.gemm ? cpu_act_for(w->type) : CPU_ACT_F32;
    if (t.act == CPU_ACT_Q8_0 && t.k % QK8_0) t.gemm = NULL, t.act = CPU_ACT_F32;
    if (t.act == CPU_ACT_Q8_K && t.k % QK_K) t.gemm = NULL, t.act = CPU_ACT_F32;
    t.xs = cpu_act_row_bytes(t.act, t.k);
    bool x_direct = t.act == CPU_ACT_F32 && cpu_rows_uniform(x) && x->nb[1] % sizeof(float) == 0;
    bool d_direct = cpu_rows_uniform(d) && d->nb[1] % sizeof(float) == 0;

    /* Scratch: [prepared x][dst rows if strided][per-thread weight row]. */
    size_t x_bytes = x_direct ? 0 : (size_t)t.n * t.xs;
    size_t d_bytes = d_direct ? 0 : (size_t)vki_align_up((uint64_t)t.n * (uint64_t)t.m * sizeof(float), 64);
    size_t w_bytes = t.gemm ? 0 : (size_t)c->n_threads * (size_t)t.k * sizeof(float);
    /* A repacked weight whose rows start a 16-row group takes the R16
     * mat-vecs for every row count below the packed paths' (columns in
     * batches of CPU_GEMVN_R16_MAX); any other view of it goes the tiles'
     * way on unpacked rows. */
    const bool r16 = t.gemm && c->kern->gemv_r16[w->type] && cpu_r16_group0(w, 0);
    const bool gv_ok = t.gemm && (r16 || wbuf->layout == CPU_LAYOUT_PLAIN);
    const int64_t gv_max = r16 ? CPU_GEMVN_R16_MAX : CPU_GEMVN_MAX, gv_cols = VKI_MIN(t.n, gv_max);
    cpu_gemv_fn gemv = t.n == 1 && gv_ok ? (r16 ? c->kern->gemv_r16 : c->kern->gemv)[w->type] : NULL;
    cpu_gemvn_fn gemvn = t.n > 1 && (t.n <= CPU_GEMVN_MAX || r16) && gv_ok
                       ? (r16 ? c->kern->gemvn_r16 : c->kern->gemvn)[w->type] : NULL;
    size_t gv_stride = (size_t)vki_align_up(CPU_GEMV_SCRATCH(t.k) * (gemvn ? (size_t)gv_cols : 1), 64);
    if (gemv || gemvn) w_bytes = (size_t)c->n_threads * gv_stride;
    size_t p_bytes = gemv || gemvn ? 0 : plain_bytes(c, w, MM_RB);
    uint8_t *s = cpu_scratch_get(c, x_bytes + d_bytes + w_bytes + p_bytes);
    if (!s)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL: no memory for %zu bytes of scratch",
                        x_bytes + d_bytes + w_bytes + p_bytes);
    t.wt = w;
    t.plain = p_bytes ? s + x_bytes + d_bytes + w_bytes : NULL;

    if (x_direct) {
        t.x = cpu_tensor_data(x);
        t.xs = x->nb[1];
    } else {
        t.x = s;
        cpu_prepare_act(c, t.act, x, t.k, s, t.xs);
    }
    if (d_direct) {
        t.d = cpu_tensor_data(d);
        t.ds = d->nb[1] / sizeof(float);
    } else {
        t.d = (float *)(s + x_bytes);
        t.ds = (size_t)t.m;
    }
    t.wrow = (float *)(s + x_bytes + d_bytes);
    if (gemv || gemvn) {
        cpu_matvec(c, w, r16, t.n, t.x, t.xs, t.d, t.ds, t.bias, (int)gv_max, s + x_bytes + d_bytes, gv_stride);
        if (!d_direct)
            for (int64_t r = 0; r < t.n; r++) memcpy(cpu_row_ptr(d, r), t.d + (size_t)r * t.ds, (size_t)t.m * sizeof(float));
        return VKI_OK;
    }
    t.n_rb = (t.m + MM_RB - 1) / MM_RB;
    t.n_cb = (t.n + MM_CB - 1) / MM_CB;
    atomic_init(&t.next, 0);
    if (t.m * t.n * t.k < 32768 || c->n_threads == 1) mm_work(&t, 0, 1);
    else cpu_pool_run(c->pool, mm_work, &t);

    if (!d_direct)
        for (int64_t r = 0; r < t.n; r++) memcpy(cpu_row_ptr(d, r), t.d + (size_t)r * t.ds, (size_t)t.m * sizeof(float));
    return VKI_OK;
}

/* MATMUL_ID runs each expert's rows through the ordinary MATMUL paths. */
