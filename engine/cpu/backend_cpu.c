/*
 * backend_cpu.c: the CPU backend behind bk_cpu_create: 64-byte aligned host
 * buffers (or wrapped caller memory), eager op execution split over the
 * thread pool, and the per-ISA kernel table chosen at creation. The math of
 * each op must agree with ref.c, which the op tests check.
 * Must not: allocate per op in the steady state (scratch is reused).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "error.h"
#include "ref.h"
#include "util.h"

typedef struct cpu_ctx {
    cpu_pool          *pool;
    const cpu_kernels *kern;
    int                n_threads;
    bool               in_pass;
    bool               no_mq;   /* VKI_CPU_NO_MQ set: quantized mat-mat via f32 panels (for comparisons) */
    char               name[96];
    atomic_uint_least64_t mem_used;
    uint8_t           *scratch; /* reused op scratch, 64-byte aligned */
    size_t             scratch_size;
} cpu_ctx;

static cpu_ctx *ctx_of(bk_backend *be) { return be->ctx; }

/* ===== Buffers =========================================================== */

static vki_status cpu_buffer_create(bk_backend *be, uint64_t size, bk_buffer_usage usage, bk_buffer **out)
{
    (void)usage;
    *out = NULL;
    cpu_buffer *b = calloc(1, sizeof *b);
    void *p = NULL;
    uint64_t alloc = vki_align_up(size ? size : 1, 64);
    if (!b || alloc < size || posix_memalign(&p, 64, (size_t)alloc) != 0) {
        free(b);
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu: could not allocate a buffer of %llu bytes",
                        (unsigned long long)size);
    }
    b->data = p;
    b->size = size;
    b->owned = true;
    atomic_fetch_add(&ctx_of(be)->mem_used, alloc);
    *out = (bk_buffer *)b;
    return VKI_OK;
}

static void cpu_buffer_destroy(bk_backend *be, bk_buffer *buf)
{
    cpu_buffer *b = (cpu_buffer *)buf;
    if (!b) return;
    if (b->owned) {
        free(b->data);
        atomic_fetch_sub(&ctx_of(be)->mem_used, vki_align_up(b->size ? b->size : 1, 64));
    }
    free(b);
}

static vki_status cpu_buffer_from_host(bk_backend *be, void *ptr, uint64_t size, bk_buffer **out)
{
    (void)be;
    *out = NULL;
    if (!ptr) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "cpu: buffer_from_host with a NULL pointer");
    cpu_buffer *b = calloc(1, sizeof *b);
    if (!b) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu: out of memory wrapping a host buffer");
    cpu_buffer_wrap(b, ptr, size);
    *out = (bk_buffer *)b;
    return VKI_OK;
}

static void *cpu_buffer_host_ptr(bk_backend *be, bk_buffer *buf)
{
    (void)be;
    return buf ? ((cpu_buffer *)buf)->data : NULL;
}

static vki_status tensor_range(bk_backend *be, const bk_tensor *t, uint64_t offs, uint64_t size, const char *what)
{
    const cpu_buffer *b = (const cpu_buffer *)t->buf;
    uint64_t end;
    if (ctx_of(be)->in_pass)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "cpu: %s of '%s' between begin and end", what, t->name ? t->name : "");
    if (!b || !vki_add_ok(t->offs, offs, &end) || !vki_add_ok(end, size, &end) || end > b->size)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "cpu: %s of '%s': bytes [%llu, +%llu) past the buffer's %llu",
                        what, t->name ? t->name : "", (unsigned long long)(t->offs + offs),
                        (unsigned long long)size, (unsigned long long)(b ? b->size : 0));
    return VKI_OK;
}

static vki_status cpu_tensor_set(bk_backend *be, const bk_tensor *t, const void *src, uint64_t offs, uint64_t size)
{
    VKI_TRY(tensor_range(be, t, offs, size, "tensor_set"));
    memcpy((uint8_t *)cpu_tensor_data(t) + offs, src, (size_t)size);
    return VKI_OK;
}

static vki_status cpu_tensor_get(bk_backend *be, const bk_tensor *t, void *dst, uint64_t offs, uint64_t size)
{
    VKI_TRY(tensor_range(be, t, offs, size, "tensor_get"));
    memcpy(dst, (const uint8_t *)cpu_tensor_data(t) + offs, (size_t)size);
    return VKI_OK;
}

/* Scratch shared by one op's threads; grows, never shrinks. */
static void *scratch_get(cpu_ctx *c, size_t size)
{
    if (size > c->scratch_size) {
        void *p = NULL;
        size_t want = (size_t)vki_align_up(size + size / 4, 64);
        if (posix_memalign(&p, 64, want) != 0) return NULL;
        free(c->scratch);
        c->scratch = p;
        c->scratch_size = want;
    }
    return c->scratch;
}

/* ===== Row helpers ======================================================= */

static int64_t n_rows(const bk_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

static uint8_t *row_ptr(const bk_tensor *t, int64_t r)
{
    int64_t i1 = r % t->ne[1], i2 = (r / t->ne[1]) % t->ne[2], i3 = r / (t->ne[1] * t->ne[2]);
    return (uint8_t *)cpu_tensor_data(t) + (uint64_t)i1 * t->nb[1] + (uint64_t)i2 * t->nb[2] +
           (uint64_t)i3 * t->nb[3];
}

/* Rows are evenly spaced by nb[1] across dims 1..3. */
static bool rows_uniform(const bk_tensor *t)
{
    return (t->ne[2] == 1 || t->nb[2] == t->nb[1] * (uint64_t)t->ne[1]) &&
           (t->ne[3] == 1 || t->nb[3] == t->nb[2] * (uint64_t)t->ne[2]);
}

/* ===== Row-wise ops ====================================================== */

typedef struct row_task {
    const bk_op       *op;
    const cpu_kernels *kern;
    float             *scratch; /* per-thread rows, stride scratch_stride floats */
    int64_t            scratch_stride;
    cpu_chunks         ch;      /* rows (tokens for ROPE, elements for CPY) */
} row_task;

static void elementwise_rows(void *arg, int ith, int nth)
{
    row_task *t = arg;
    const bk_op *op = t->op;
    const bk_tensor *d = op->dst, *a = op->src[0], *b = op->src[1];
    int64_t n = a->ne[0], r;
    bool bcast = b && n_rows(b) == 1;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const float *x = (const float *)row_ptr(a, r);
        const float *y = b ? (const float *)row_ptr(b, bcast ? 0 : r) : NULL;
        float *o = (float *)row_ptr(d, r);
        switch (op->kind) {
        case BK_OP_ADD:    for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i]; break;
        case BK_OP_MUL:    for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i]; break;
        case BK_OP_SCALE:  for (int64_t i = 0; i < n; i++) o[i] = x[i] * op->fp[0]; break;
        case BK_OP_SILU:   t->kern->swiglu_f32(n, o, x, NULL); break;
        case BK_OP_GELU: t->kern->gelu_f32(n, o, x, NULL, op->ip[0] == BK_ACT_GELU_TANH); break;
        case BK_OP_SWIGLU:
            if (op->ip[0] == BK_ACT_GELU_TANH || op->ip[0] == BK_ACT_GELU)
                t->kern->gelu_f32(n, o, x, y, op->ip[0] == BK_ACT_GELU_TANH);
            else t->kern->swiglu_f32(n, o, x, y);
            break;
        case BK_OP_SOFTCAP: {
            float cap = op->fp[0], inv = 1.0f / cap;
            for (int64_t i = 0; i < n; i++) o[i] = cap * tanhf(x[i] * inv);
            break;
        }
        default: VKI_ASSERT(!"not elementwise");
        }
    }
}

/* sum of (x[i] - c)^2, or of x[i] with !sq, in double over 8 running
 * sums: one sequential double chain had norms at 4% of an embedding's
 * profile; independent lanes let the compiler vectorise without
 * reassociating (and double keeps the sums exact enough either way). */
static double row_sum(const float *x, int64_t n, double c, bool sq)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            double v = x[i + j] - c;
            acc[j] += sq ? v * v : v;
        }
    for (; i < n; i++) {
        double v = x[i] - c;
        acc[0] += sq ? v * v : v;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static void norm_rows(void *arg, int ith, int nth)
{
    row_task *t = arg;
    const bk_op *op = t->op;
    const bk_tensor *d = op->dst, *a = op->src[0];
    const float *w = op->src[1] && op->kind != BK_OP_L2_NORM ? cpu_tensor_data(op->src[1]) : NULL;
    const float *bias = op->src[2] && op->kind == BK_OP_LAYER_NORM ? cpu_tensor_data(op->src[2]) : NULL;
    int64_t n = a->ne[0], r;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const float *x = (const float *)row_ptr(a, r);
        float *o = (float *)row_ptr(d, r);
        double mean = 0.0, sq = 0.0;
        float scale;
        if (op->kind == BK_OP_LAYER_NORM) {
            mean = row_sum(x, n, 0.0, false) / (double)n;
            sq = row_sum(x, n, mean, true);
            scale = (float)(1.0 / sqrt(sq / (double)n + op->fp[0]));
        } else {
            sq = row_sum(x, n, 0.0, true);
            scale = op->kind == BK_OP_RMS_NORM ? (float)(1.0 / sqrt(sq / (double)n + op->fp[0]))
                                               : (float)(1.0 / fmax(sqrt(sq), 1e-12));
        }
        float m = (float)mean;
        for (int64_t i = 0; i < n; i++) {
            float y = (x[i] - m) * scale;
            if (w) y *= w[i];
            if (bias) y += bias[i];
            o[i] = y;
        }
    }
}

static void softmax_rows(void *arg, int ith, int nth)
{
    row_task *t = arg;
    const bk_op *op = t->op;
    int64_t n = op->src[0]->ne[0], r;
    float s = op->fp[0];
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const float *x = (const float *)row_ptr(op->src[0], r);
        float *o = (float *)row_ptr(op->dst, r);
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, x[i] * s);
        double sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            o[i] = expf(x[i] * s - mx);
            sum += o[i];
        }
        t->kern->scale_f32(n, o, (float)(1.0 / sum));
    }
}

static void rope_tokens(void *arg, int ith, int nth)
{
    row_task *t = arg;
    const bk_op *op = t->op;
    const bk_tensor *a = op->src[0], *d = op->dst;
    const int32_t *pos = cpu_tensor_data(op->src[1]);
    int64_t hd = a->ne[0], nh = a->ne[1], n_rot = op->ip[0], half = n_rot / 2, tok;
    bool neox = op->ip[1] == BK_ROPE_NEOX;
    const float *div = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL;
    double ms = op->fp[2] != 0.0f ? op->fp[2] : 1.0;
    float *cs = t->scratch + (size_t)ith * (size_t)t->scratch_stride; /* [half] cos, [half] sin */
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &tok);) {
        /* Angles in double: pos * base^(-2i/n_rot) reaches 1e4+ radians,
         * where float would lose the 1e-3 the reference allows. */
        for (int64_t i = 0; i < half; i++) {
            double theta = pos[tok] * (double)op->fp[1] * pow((double)op->fp[0], -2.0 * (double)i / (double)n_rot);
            if (div) theta /= div[i];
            cs[i] = (float)(cos(theta) * ms);
            cs[half + i] = (float)(sin(theta) * ms);
        }
        for (int64_t h = 0; h < nh; h++) {
            const float *x = (const float *)row_ptr(a, tok * nh + h);
            float *o = (float *)row_ptr(d, tok * nh + h);
            for (int64_t i = 0; i < half; i++) {
                int64_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
                float x0 = x[i0], x1 = x[i1];
                o[i0] = x0 * cs[i] - x1 * cs[half + i];
                o[i1] = x0 * cs[half + i] + x1 * cs[i];
            }
            if (o != x)
                for (int64_t i = n_rot; i < hd; i++) o[i] = x[i];
        }
    }
}

static void cpy_rows(void *arg, int ith, int nth)
{
    row_task *t = arg;
    const bk_tensor *a = t->op->src[0], *d = t->op->dst;
    int64_t e0, e1;
    while (cpu_chunk_next(&t->ch, &e0, &e1)) {
        for (int64_t e = e0; e < e1;) {
            /* Walk a run that stays inside one row of both tensors. */
            int64_t ia = e % a->ne[0], id = e % d->ne[0];
            int64_t run = VKI_MIN(a->ne[0] - ia, d->ne[0] - id);
            run = VKI_MIN(run, e1 - e);
            const uint8_t *ps = row_ptr(a, e / a->ne[0]) + (uint64_t)ia * a->nb[0];
            uint8_t *pd = row_ptr(d, e / d->ne[0]) + (uint64_t)id * d->nb[0];
            if (a->type == d->type) {
                memmove(pd, ps, (size_t)run * a->nb[0]);
            } else if (a->type == VKI_TYPE_F32) {
                for (int64_t i = 0; i < run; i++) ((uint16_t *)pd)[i] = vki_fp32_to_fp16(((const float *)ps)[i]);
            } else {
                for (int64_t i = 0; i < run; i++) ((float *)pd)[i] = vki_fp16_to_fp32(((const uint16_t *)ps)[i]);
            }
            e += run;
        }
    }
}

static void get_rows_task(void *arg, int ith, int nth)
{
    row_task *t = arg;
    const bk_tensor *tab = t->op->src[0], *d = t->op->dst;
    const int32_t *ids = cpu_tensor_data(t->op->src[1]);
    int64_t n = tab->ne[0], r;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const uint8_t *src = (const uint8_t *)cpu_tensor_data(tab) + (uint64_t)ids[r] * tab->nb[1];
        float *o = (float *)row_ptr(d, r);
        if (tab->type == VKI_TYPE_F32) memcpy(o, src, (size_t)n * sizeof(float));
        else if (tab->type == VKI_TYPE_F16) for (int64_t i = 0; i < n; i++) o[i] = vki_fp16_to_fp32(((const uint16_t *)src)[i]);
        else if (tab->type == VKI_TYPE_BF16) for (int64_t i = 0; i < n; i++) o[i] = vki_bf16_to_fp32(((const uint16_t *)src)[i]);
        else vki_dequantize_row(tab->type, src, o, n);
    }
}

/* Runs fn over the pool, or on the caller alone when the op is small
 * enough that waking workers costs more than it saves. */
static void run_rows(cpu_ctx *c, cpu_task_fn fn, row_task *t, int64_t work, int64_t n_items)
{
    bool alone = work < 8192 || c->n_threads == 1;
    cpu_chunks_init(&t->ch, n_items, alone ? 1 : c->n_threads, 1);
    if (alone) fn(t, 0, 1);
    else cpu_pool_run(c->pool, fn, t);
}

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
    int64_t            n_rb, n_cb;
    atomic_int_fast64_t next;
    /* activation preparation */
    cpu_act            act;
    const bk_tensor   *xt;
    cpu_chunks         ch;     /* activation rows to prepare              */
} mm_task;

static void mm_prepare(void *arg, int ith, int nth)
{
    mm_task *t = arg;
    int64_t r;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const float *src = (const float *)row_ptr(t->xt, r);
        uint8_t *dst = (uint8_t *)t->x + (size_t)r * t->xs;
        if (t->act == CPU_ACT_Q8_0) t->kern->quantize_q8_0(src, dst, t->k);
        else if (t->act == CPU_ACT_Q8_K) cpu_quantize_q8_K(src, dst, t->k);
        else memcpy(dst, src, (size_t)t->k * sizeof(float));
    }
}

static void mm_work(void *arg, int ith, int nth)
{
    mm_task *t = arg;
    (void)nth;
    int64_t item;
    while ((item = atomic_fetch_add(&t->next, 1)) < t->n_rb * t->n_cb) {
        int64_t rb = item % t->n_rb, cb = item / t->n_rb;
        int64_t r_lo = rb * MM_RB, r_hi = VKI_MIN(t->m, r_lo + MM_RB);
        int64_t c_lo = cb * MM_CB, c_hi = VKI_MIN(t->n, c_lo + MM_CB);
        if (t->gemm) {
            for (int64_t c = c_lo; c < c_hi; c += CPU_TILE_C) {
                int nc = (int)VKI_MIN(CPU_TILE_C, c_hi - c);
                for (int64_t r = r_lo; r < r_hi; r += CPU_TILE_R) {
                    int nr = (int)VKI_MIN(CPU_TILE_R, r_hi - r);
                    t->gemm(t->k, t->w + (size_t)r * t->ws, t->ws, nr, t->x + (size_t)c * t->xs, t->xs, nc,
                            t->d + (size_t)c * t->ds + (size_t)r, t->ds);
                }
            }
        } else {
            float *wr = t->wrow + (size_t)ith * (size_t)t->k;
            for (int64_t r = r_lo; r < r_hi; r++) {
                vki_dequantize_row(t->op->src[0]->type, t->w + (size_t)r * t->ws, wr, t->k);
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
    bool direct = rows_uniform(d) && d->nb[1] % sizeof(float) == 0;
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

/* Packs the activations, then multiplies: on the caller alone or on the pool;
 * then copies an indirect result into dst. */
static void mm_run(cpu_ctx *c, cpu_task_fn pack_x, cpu_task_fn work, void *task, const bk_tensor *d,
                   int64_t n, int64_t m, const float *out, size_t ds, size_t out_bytes)
{
    if (c->n_threads == 1) {
        pack_x(task, 0, 1);
        work(task, 0, 1);
    } else {
        cpu_pool_run(c->pool, pack_x, task);
        cpu_pool_run(c->pool, work, task);
    }
    if (out_bytes)
        for (int64_t r = 0; r < n; r++) memcpy(row_ptr(d, r), out + (size_t)r * ds, (size_t)m * sizeof(float));
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
    float             *d;   /* n rows of ds floats                                */
    size_t             ds;
    const float       *bias;
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
        for (int c = 0; c < nc; c++) src[c] = (const float *)row_ptr(t->xt, g * nr + c);
        for (int64_t i = 0; i < t->k; i++, dst += nr) {
            int c = 0;
            for (; c < nc; c++) dst[c] = src[c][i];
            for (; c < nr; c++) dst[c] = 0.0f;
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
    float *tmp = t->tmp + (size_t)ith * (size_t)k;
    while ((item = atomic_fetch_add(&t->next, 1)) < t->n_rb * t->n_cc) {
        int64_t rb = item / t->n_cc, cc = item % t->n_cc;
        int64_t r_lo = rb * MMP_PANELS * mr;
        int np = 0;
        for (; np < MMP_PANELS && r_lo + np * mr < t->m; np++) {
            int64_t r = r_lo + np * mr;
            bool ok = kn->mm_pack_w(t->wtype, k, t->w + (size_t)r * t->ws, t->ws, (int)VKI_MIN(mr, t->m - r),
                                    wp + (size_t)(np * mr * k), tmp);
            VKI_ASSERT(ok); /* op_matmul only sends types the loader dequantizes */
        }
        int64_t g_hi = VKI_MIN(t->n_groups, (cc + 1) * t->cc_len);
        for (int64_t g = cc * t->cc_len; g < g_hi; g++) {
            const float *xg = t->xp + (size_t)(g * k * nr);
            int nc = (int)VKI_MIN(nr, t->n - g * nr);
            for (int p = 0; p < np; p++) {
                int64_t r = r_lo + p * mr;
                kn->mm_kernel(k, wp + (size_t)(p * mr * k), (int)VKI_MIN(mr, t->m - r), xg, nc,
                              t->bias ? t->bias + r : NULL, t->d + (size_t)(g * nr) * t->ds + (size_t)r, t->ds);
            }
        }
    }
}

static vki_status op_matmul_packed(cpu_ctx *c, const bk_op *op)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *d = op->dst;
    const cpu_kernels *kn = c->kern;
    mmp_task t = {.kern = kn, .wtype = w->type, .w = cpu_tensor_data(w), .ws = w->nb[1], .k = w->ne[0],
                  .m = w->ne[1], .n = n_rows(x), .xt = x, .bias = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL};
    int nth = c->n_threads;
    t.n_groups = (t.n + kn->mm_nr - 1) / kn->mm_nr;
    t.n_rb = (t.m + MMP_PANELS * kn->mm_mr - 1) / (MMP_PANELS * kn->mm_mr);
    mm_split_groups(t.n_groups, t.n_rb, nth, &t.n_cc, &t.cc_len);

    size_t x_bytes = (size_t)vki_align_up((uint64_t)t.n_groups * (uint64_t)kn->mm_nr * (uint64_t)t.k * 4, 64);
    size_t w_bytes = (size_t)vki_align_up((uint64_t)nth * MMP_PANELS * (uint64_t)kn->mm_mr * (uint64_t)t.k * 4, 64);
    size_t r_bytes = (size_t)vki_align_up((uint64_t)nth * (uint64_t)t.k * 4, 64);
    size_t d_bytes = mm_out_bytes(d, t.n, t.m);
    uint8_t *s = scratch_get(c, x_bytes + w_bytes + r_bytes + d_bytes);
    if (!s)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL: no memory for %zu bytes of packing scratch",
                        x_bytes + w_bytes + r_bytes + d_bytes);
    t.xp = (float *)s;
    t.wp = (float *)(s + x_bytes);
    t.tmp = (float *)(s + x_bytes + w_bytes);
    mm_out_init(d, t.m, s + x_bytes + w_bytes + r_bytes, d_bytes, &t.d, &t.ds);
    atomic_init(&t.next, 0);
    cpu_chunks_init(&t.ch, t.n_groups, nth, 1);
    mm_run(c, mmp_pack_x, mmp_work, &t, d, t.n, t.m, t.d, t.ds, d_bytes);
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
    size_t             tmp_stride;
    float             *d;
    size_t             ds;
    const float       *bias;
    int64_t            n_groups, n_rb, n_cc, cc_len;
    atomic_int_fast64_t next;
    cpu_chunks         ch;     /* activation groups to pack                  */
} mq_task;

static void mq_pack_x(void *arg, int ith, int nth)
{
    mq_task *t = arg;
    int nr = t->kern->mq_nr;
    size_t rb = (size_t)(t->k / QK8_0) * sizeof(block_q8_0);
    uint8_t *q = t->tmp + (size_t)ith * t->tmp_stride;
    const block_q8_0 *rows[32];
    int64_t g;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &g);) {
        int nc = (int)VKI_MIN(nr, t->n - g * nr);
        for (int c = 0; c < nc; c++) {
            t->kern->quantize_q8_0((const float *)row_ptr(t->xt, g * nr + c), q + (size_t)c * rb, t->k);
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
    int64_t mr = kn->mq_mr, nr = kn->mq_nr, item;
    uint8_t *wp = t->wp + (size_t)ith * (size_t)t->panels * t->pbytes;
    uint8_t *tmp = t->tmp + (size_t)ith * t->tmp_stride;
    while ((item = atomic_fetch_add(&t->next, 1)) < t->n_rb * t->n_cc) {
        int64_t rb = item / t->n_cc, cc = item % t->n_cc;
        int64_t r_lo = rb * t->panels * mr;
        int np = 0;
        for (; np < t->panels && r_lo + np * mr < t->m; np++) {
            int64_t r = r_lo + np * mr;
            mq_pack_panel(t->wtype, &t->fmt, t->k, t->w + (size_t)r * t->ws, t->ws, (int)VKI_MIN(mr, t->m - r),
                          (int)mr, wp + (size_t)np * t->pbytes, tmp);
        }
        int64_t g_hi = VKI_MIN(t->n_groups, (cc + 1) * t->cc_len);
        for (int64_t g = cc * t->cc_len; g < g_hi; g++) {
            int nc = (int)VKI_MIN(nr, t->n - g * nr);
            for (int p = 0; p < np; p++) {
                int64_t r = r_lo + p * mr;
                kn->mq_kernel(&t->fmt, t->k, wp + (size_t)p * t->pbytes, (int)VKI_MIN(mr, t->m - r),
                              t->xp + (size_t)g * t->gbytes, nc, t->bias ? t->bias + r : NULL,
                              t->d + (size_t)(g * nr) * t->ds + (size_t)r, t->ds);
            }
        }
    }
}

static vki_status op_matmul_mq(cpu_ctx *c, const bk_op *op, const mq_fmt *fmt)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *d = op->dst;
    const cpu_kernels *kn = c->kern;
    mq_task t = {.kern = kn, .wtype = w->type, .fmt = *fmt, .w = cpu_tensor_data(w), .ws = w->nb[1], .k = w->ne[0],
                 .m = w->ne[1], .n = n_rows(x), .xt = x, .bias = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL};
    int nth = c->n_threads, mr = kn->mq_mr, nr = kn->mq_nr;
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
    uint8_t *s = scratch_get(c, x_bytes + w_bytes + r_bytes + d_bytes);
    if (!s)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL: no memory for %zu bytes of integer packing scratch",
                        x_bytes + w_bytes + r_bytes + d_bytes);
    t.xp = s;
    t.wp = s + x_bytes;
    t.tmp = s + x_bytes + w_bytes;
    mm_out_init(d, t.m, s + x_bytes + w_bytes + r_bytes, d_bytes, &t.d, &t.ds);
    atomic_init(&t.next, 0);
    cpu_chunks_init(&t.ch, t.n_groups, nth, 1);
    mm_run(c, mq_pack_x, mq_work, &t, d, t.n, t.m, t.d, t.ds, d_bytes);
    return VKI_OK;
}

/* ===== MATMUL, one activation row ======================================== */

typedef struct gv_task {
    cpu_gemv_fn    gemv;    /* one activation row, or            */
    cpu_gemvn_fn   gemvn;   /* ncols rows at byte stride xs      */
    int            ncols;
    size_t         xs, ds;  /* ds: float stride of d's rows      */
    const uint8_t *w;
    size_t         ws;
    int64_t        k, m;
    const void    *x;       /* prepared activation row(s)        */
    float         *d;
    const float   *bias;
    uint8_t       *scratch; /* [n_threads][scratch_stride] bytes */
    size_t         scratch_stride;
    cpu_chunks     ch;      /* rows, in whole 16-row units        */
} gv_task;

static void gv_work(void *arg, int ith, int nth)
{
    gv_task *t = arg;
    (void)nth;
    int64_t r0, r1;
    /* Chunks are whole 16-row units, so no two threads write one cache
     * line of d. */
    while (cpu_chunk_next(&t->ch, &r0, &r1)) {
        uint8_t *scratch = t->scratch + (size_t)ith * t->scratch_stride;
        if (t->gemvn)
            t->gemvn(t->k, t->w + (size_t)r0 * t->ws, t->ws, r1 - r0, t->x, t->xs, t->ncols, t->d + r0, t->ds, scratch);
        else
            t->gemv(t->k, t->w + (size_t)r0 * t->ws, t->ws, r1 - r0, t->x, t->d + r0, scratch);
        if (t->bias)
            for (int c = 0; c < (t->gemvn ? t->ncols : 1); c++)
                for (int64_t r = r0; r < r1; r++) t->d[(size_t)c * t->ds + r] += t->bias[r];
    }
}

static vki_status op_matmul(cpu_ctx *c, const bk_op *op)
{
    const bk_tensor *w = op->src[0], *x = op->src[1], *d = op->dst;
    mq_fmt fmt;
    if (c->kern->mq_mr && n_rows(x) >= MMP_MIN_N && w->ne[0] % QK8_0 == 0 &&
        mq_format(w->type, c->kern->mq_signed_q8, &fmt) && w->ne[0] % fmt.bl == 0 && !c->no_mq)
        return op_matmul_mq(c, op, &fmt);
    if (c->kern->mm_mr && n_rows(x) >= MMP_MIN_N && vki_type_get(w->type)->supported)
        return op_matmul_packed(c, op);
    mm_task t = {.op = op, .kern = c->kern, .w = cpu_tensor_data(w), .ws = w->nb[1], .k = w->ne[0],
                 .m = w->ne[1], .n = n_rows(x), .bias = op->src[2] ? cpu_tensor_data(op->src[2]) : NULL,
                 .xt = x};
    t.gemm = c->kern->gemm[w->type];
    t.act = t.gemm ? cpu_act_for(w->type) : CPU_ACT_F32;
    if (t.act == CPU_ACT_Q8_0 && t.k % QK8_0) t.gemm = NULL, t.act = CPU_ACT_F32;
    if (t.act == CPU_ACT_Q8_K && t.k % QK_K) t.gemm = NULL, t.act = CPU_ACT_F32;
    t.xs = t.act == CPU_ACT_Q8_0 ? (size_t)(t.k / QK8_0) * sizeof(block_q8_0)
         : t.act == CPU_ACT_Q8_K ? (size_t)(t.k / QK_K) * sizeof(block_q8_K)
                                 : (size_t)t.k * sizeof(float);
    t.xs = (size_t)vki_align_up(t.xs, 64);
    bool x_direct = t.act == CPU_ACT_F32 && rows_uniform(x) && x->nb[1] % sizeof(float) == 0;
    bool d_direct = rows_uniform(d) && d->nb[1] % sizeof(float) == 0;

    /* Scratch: [prepared x][dst rows if strided][per-thread weight row]. */
    size_t x_bytes = x_direct ? 0 : (size_t)t.n * t.xs;
    size_t d_bytes = d_direct ? 0 : (size_t)vki_align_up((uint64_t)t.n * (uint64_t)t.m * sizeof(float), 64);
    size_t w_bytes = t.gemm ? 0 : (size_t)c->n_threads * (size_t)t.k * sizeof(float);
    cpu_gemv_fn gemv = t.n == 1 && t.gemm ? c->kern->gemv[w->type] : NULL;
    cpu_gemvn_fn gemvn = t.n > 1 && t.n <= CPU_GEMVN_MAX && t.gemm ? c->kern->gemvn[w->type] : NULL;
    size_t gv_stride = (size_t)vki_align_up(CPU_GEMV_SCRATCH(t.k) * (gemvn ? (size_t)t.n : 1), 64);
    if (gemv || gemvn) w_bytes = (size_t)c->n_threads * gv_stride;
    uint8_t *s = scratch_get(c, x_bytes + d_bytes + w_bytes + 64);
    if (!s) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL: no memory for %zu bytes of scratch", x_bytes + d_bytes + w_bytes);

    if (x_direct) {
        t.x = cpu_tensor_data(x);
        t.xs = x->nb[1];
    } else {
        t.x = s;
        bool alone = t.n * t.k < 8192 || c->n_threads == 1;
        cpu_chunks_init(&t.ch, t.n, alone ? 1 : c->n_threads, 1);
        if (alone) mm_prepare(&t, 0, 1);
        else cpu_pool_run(c->pool, mm_prepare, &t);
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
        gv_task g = {.gemv = gemv, .gemvn = gemvn, .ncols = (int)t.n, .xs = t.xs, .ds = t.ds, .w = t.w, .ws = t.ws,
                     .k = t.k, .m = t.m, .x = t.x, .d = t.d, .bias = t.bias, .scratch = s + x_bytes + d_bytes,
                     .scratch_stride = gv_stride};
        bool alone = t.m * t.k < 65536 || c->n_threads == 1;
        cpu_chunks_init(&g.ch, t.m, alone ? 1 : c->n_threads, 16);
        if (alone) gv_work(&g, 0, 1);
        else cpu_pool_run(c->pool, gv_work, &g);
        if (!d_direct)
            for (int64_t r = 0; r < t.n; r++) memcpy(row_ptr(d, r), t.d + (size_t)r * t.ds, (size_t)t.m * sizeof(float));
        return VKI_OK;
    }
    t.n_rb = (t.m + MM_RB - 1) / MM_RB;
    t.n_cb = (t.n + MM_CB - 1) / MM_CB;
    atomic_init(&t.next, 0);
    if (t.m * t.n * t.k < 32768 || c->n_threads == 1) mm_work(&t, 0, 1);
    else cpu_pool_run(c->pool, mm_work, &t);

    if (!d_direct)
        for (int64_t r = 0; r < t.n; r++) memcpy(row_ptr(d, r), t.d + (size_t)r * t.ds, (size_t)t.m * sizeof(float));
    return VKI_OK;
}

/* MATMUL_ID runs each expert's rows through the ordinary MATMUL paths. */
static vki_status mm_adapter(void *ctx, const bk_op *op) { return op_matmul(ctx, op); }

/* ===== ATTN ============================================================== */

typedef struct attn_task {
    const bk_op       *op;
    const cpu_kernels *kern;
    float             *acc; /* [n_threads][head_dim] */
    cpu_chunks         ch;  /* (query row, head) pairs */
} attn_task;

#define ATTN_BLOCK 64 /* keys scored per softmax step */

static void attn_work(void *arg, int ith, int nth)
{
    attn_task *t = arg;
    const bk_op *op = t->op;
    const bk_tensor *q = op->src[0], *k = op->src[1], *v = op->src[2];
    int64_t hd = q->ne[0], nh = q->ne[1], nkv = k->ne[2], group = nh / k->ne[1], p;
    float *acc = t->acc + (size_t)ith * (size_t)hd;
    float scale = op->fp[0], cap = op->fp[1], inv_cap = cap > 0.0f ? 1.0f / cap : 0.0f;
    bool k16 = k->type == VKI_TYPE_F16, v16 = v->type == VKI_TYPE_F16;
    /* Work items are (query row, head) pairs, head fastest, so one thread's
     * items share K/V rows for a whole GQA group. */
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &p);) {
        int64_t i = p / nh, h = p % nh, kh = h / group;
        int64_t n_vis = op->ip[0] ? VKI_MIN(nkv, (int64_t)op->ip[1] + i + 1) : nkv;
        int64_t j_lo = op->ip[2] > 0 ? VKI_MAX(0, (int64_t)op->ip[1] + i - op->ip[2] + 1) : 0;
        const float *qr = (const float *)((const uint8_t *)cpu_tensor_data(q) + (uint64_t)i * q->nb[2] + (uint64_t)h * q->nb[1]);
        const uint8_t *kb = (const uint8_t *)cpu_tensor_data(k) + (uint64_t)kh * k->nb[1];
        const uint8_t *vb = (const uint8_t *)cpu_tensor_data(v) + (uint64_t)kh * v->nb[1];
        float mx = -INFINITY, sum = 0.0f, sc[ATTN_BLOCK];
        memset(acc, 0, (size_t)hd * sizeof(float));
        /* Online softmax over blocks of keys: scores for a block, one
         * rescale of the running sum when the block raises the max, the
         * block's exps in one vector call, then the weighted V rows. */
        for (int64_t j0 = j_lo; j0 < n_vis; j0 += ATTN_BLOCK) {
            int nb = (int)VKI_MIN(ATTN_BLOCK, n_vis - j0);
            float bm = -INFINITY;
            const uint8_t *kr0 = kb + (uint64_t)j0 * k->nb[2];
            if (t->kern->dot_rows) {
                t->kern->dot_rows(hd, kr0, k->nb[2], nb, k16, qr, sc);
            } else {
                for (int jj = 0; jj < nb; jj++) {
                    const void *kr = kr0 + (uint64_t)jj * k->nb[2];
                    sc[jj] = k16 ? t->kern->dot_f16(hd, kr, qr) : t->kern->dot_f32(hd, kr, qr);
                }
            }
            for (int jj = 0; jj < nb; jj++) {
                sc[jj] *= scale;
                if (cap > 0.0f) sc[jj] = cap * tanhf(sc[jj] * inv_cap);
                bm = sc[jj] > bm ? sc[jj] : bm; /* fmaxf is a libm call here */
            }
            if (bm > mx) {
                if (mx != -INFINITY) {
                    float corr = expf(mx - bm);
                    t->kern->scale_f32(hd, acc, corr);
                    sum *= corr;
                }
                mx = bm;
            }
            sum += t->kern->exp_sum_f32(nb, sc, mx);
            const uint8_t *vr0 = vb + (uint64_t)j0 * v->nb[2];
            if (t->kern->mad_rows) {
                t->kern->mad_rows(hd, acc, vr0, v->nb[2], nb, v16, sc);
            } else {
                for (int jj = 0; jj < nb; jj++) {
                    const void *vr = vr0 + (uint64_t)jj * v->nb[2];
                    if (v16) t->kern->mad_f16(hd, acc, vr, sc[jj]);
                    else t->kern->mad_f32(hd, acc, vr, sc[jj]);
                }
            }
        }
        float *o = (float *)((uint8_t *)cpu_tensor_data(op->dst) + (uint64_t)i * op->dst->nb[2] + (uint64_t)h * op->dst->nb[1]);
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int64_t e = 0; e < hd; e++) o[e] = acc[e] * inv;
    }
}

static vki_status op_attn(cpu_ctx *c, const bk_op *op)
{
    int64_t hd = op->src[0]->ne[0];
    float *acc = scratch_get(c, (size_t)c->n_threads * (size_t)hd * sizeof(float));
    if (!acc) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "ATTN: no memory for scratch");
    attn_task t = {.op = op, .kern = c->kern, .acc = acc};
    int64_t work = op->src[0]->ne[1] * op->src[0]->ne[2] * op->src[1]->ne[2] * hd;
    bool alone = work < 16384 || c->n_threads == 1;
    cpu_chunks_init(&t.ch, op->src[0]->ne[1] * op->src[0]->ne[2], alone ? 1 : c->n_threads, 1);
    if (alone) attn_work(&t, 0, 1);
    else cpu_pool_run(c->pool, attn_work, &t);
    return VKI_OK;
}

/* ===== POOL ============================================================== */

static void op_pool(const bk_op *op)
{
    const bk_tensor *a = op->src[0];
    int64_t n = a->ne[0], used = op->ip[0] == BK_POOL_MEAN ? a->ne[1] : 1;
    float *o = (float *)row_ptr(op->dst, 0);
    if (op->ip[0] == BK_POOL_LAST) {
        memmove(o, row_ptr(a, a->ne[1] - 1), (size_t)n * sizeof(float));
        return;
    }
    /* dst may alias row 0 of src: accumulate rows 1.. onto a copy of row 0. */
    const float *x0 = (const float *)row_ptr(a, 0);
    if (o != x0) memmove(o, x0, (size_t)n * sizeof(float));
    for (int64_t r = 1; r < used; r++) {
        const float *x = (const float *)row_ptr(a, r);
        for (int64_t i = 0; i < n; i++) o[i] += x[i];
    }
    if (used > 1)
        for (int64_t i = 0; i < n; i++) o[i] /= (float)used;
}

/* ===== The interface ===================================================== */

static const char *cpu_name(bk_backend *be) { return ctx_of(be)->name; }

static void cpu_destroy(bk_backend *be)
{
    if (!be) return;
    cpu_ctx *c = be->ctx;
    if (c) {
        cpu_pool_destroy(c->pool);
        free(c->scratch);
        free(c);
    }
    free(be);
}

static bool cpu_supports_op(bk_backend *be, const bk_op *op)
{
    (void)be;
    return cpu_op_check(op) == VKI_OK;
}

static vki_status cpu_begin(bk_backend *be)
{
    ctx_of(be)->in_pass = true;
    return VKI_OK;
}

static vki_status cpu_end(bk_backend *be)
{
    ctx_of(be)->in_pass = false;
    return VKI_OK;
}

static vki_status cpu_compute(bk_backend *be, const bk_op *op)
{
    cpu_ctx *c = ctx_of(be);
    VKI_TRY(cpu_op_check(op));
    row_task t = {.op = op, .kern = c->kern};
    const bk_tensor *a = op->src[0];
    int64_t work = bk_nelements(a);
    switch (op->kind) {
    case BK_OP_MATMUL: return op_matmul(c, op);
    case BK_OP_ATTN:   return op_attn(c, op);
    case BK_OP_POOL:   op_pool(op); return VKI_OK;
    case BK_OP_GET_ROWS: {
        const int32_t *ids = cpu_tensor_data(op->src[1]);
        for (int64_t r = 0; r < op->src[1]->ne[0]; r++)
            if (ids[r] < 0 || ids[r] >= a->ne[1])
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "GET_ROWS: id %d at %lld is outside [0, %lld)", ids[r],
                                (long long)r, (long long)a->ne[1]);
        run_rows(c, get_rows_task, &t, op->src[1]->ne[0] * a->ne[0], op->src[1]->ne[0]);
        return VKI_OK;
    }
    case BK_OP_ADD: case BK_OP_MUL: case BK_OP_SCALE: case BK_OP_SILU: case BK_OP_GELU: case BK_OP_SWIGLU:
    case BK_OP_SOFTCAP:
        run_rows(c, elementwise_rows, &t, work, n_rows(a));
        return VKI_OK;
    case BK_OP_TOP_K: case BK_OP_GATHER_COLS: case BK_OP_MOE_SUM:
        return cpu_moe_small_op(op);
    case BK_OP_MATMUL_ID:
        return cpu_moe_matmul_id(op, mm_adapter, c);
    case BK_OP_RMS_NORM: case BK_OP_LAYER_NORM: case BK_OP_L2_NORM:
        run_rows(c, norm_rows, &t, work, n_rows(a));
        return VKI_OK;
    case BK_OP_SOFTMAX:
        run_rows(c, softmax_rows, &t, work, n_rows(a));
        return VKI_OK;
    case BK_OP_CPY:
        run_rows(c, cpy_rows, &t, work, work);
        return VKI_OK;
    case BK_OP_ROPE: {
        t.scratch_stride = op->ip[0];
        t.scratch = scratch_get(c, (size_t)c->n_threads * (size_t)op->ip[0] * sizeof(float));
        if (!t.scratch) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "ROPE: no memory for scratch");
        run_rows(c, rope_tokens, &t, work, a->ne[2]);
        return VKI_OK;
    }
    default:
        return vki_fail(VKI_ERR_UNSUPPORTED, "cpu: op %s is not implemented", bk_op_name(op->kind));
    }
}

static uint64_t cpu_memory_used(bk_backend *be) { return atomic_load(&ctx_of(be)->mem_used); }

static const bk_iface cpu_iface = {
    .version = BK_IFACE_VERSION,
    .name = cpu_name,
    .destroy = cpu_destroy,
    .buffer_create = cpu_buffer_create,
    .buffer_destroy = cpu_buffer_destroy,
    .buffer_from_host = cpu_buffer_from_host,
    .buffer_host_ptr = cpu_buffer_host_ptr,
    .tensor_set = cpu_tensor_set,
    .tensor_get = cpu_tensor_get,
    .supports_op = cpu_supports_op,
    .begin = cpu_begin,
    .compute = cpu_compute,
    .end = cpu_end,
    .memory_used = cpu_memory_used,
};

vki_status bk_cpu_create_isa(int n_threads, cpu_isa isa, bk_backend **out)
{
    *out = NULL;
    if (!cpu_isa_available(isa))
        return vki_fail(VKI_ERR_UNSUPPORTED, "cpu: ISA %s is not supported by this CPU/OS (best: %s)",
                        cpu_isa_name(isa), cpu_isa_name(cpu_isa_best()));
    if (n_threads < 0) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "cpu: n_threads %d is negative", n_threads);
    bk_backend *be = calloc(1, sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    vki_status st;
    if (!be || !c) {
        st = vki_fail(VKI_ERR_OUT_OF_MEMORY, "cpu: out of memory creating the backend");
        goto fail;
    }
    if ((st = cpu_pool_create(n_threads, &c->pool)) != VKI_OK) goto fail;
    c->n_threads = cpu_pool_size(c->pool);
    c->kern = cpu_kernels_get(isa);
    c->no_mq = getenv("VKI_CPU_NO_MQ") && getenv("VKI_CPU_NO_MQ")[0];
    atomic_init(&c->mem_used, 0);
    snprintf(c->name, sizeof c->name, "cpu (%s%s, %d thread%s)", cpu_isa_name(isa),
             isa == CPU_ISA_AVX512 && cpu_has_vnni() ? "+vnni" : "", c->n_threads, c->n_threads == 1 ? "" : "s");
    be->iface = &cpu_iface;
    be->ctx = c;
    be->kind = VKI_BACKEND_CPU;
    *out = be;
    return VKI_OK;
fail:
    free(c);
    free(be);
    return st;
}

vki_status bk_cpu_create(int n_threads, bk_backend **out)
{
    const char *env = getenv("VKI_CPU_ISA");
    cpu_isa isa = cpu_isa_best();
    if (env && env[0] && !cpu_isa_parse(env, &isa)) {
        *out = NULL;
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "VKI_CPU_ISA='%s': expected scalar, avx2, avx512 or neon", env);
    }
    return bk_cpu_create_isa(n_threads, isa, out);
}
