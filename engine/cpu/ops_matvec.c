/*
 * ops_matvec.c: MATMUL's mat-vec path, what decode and short prompts run:
 * the activation rows prepared once (quantized for the integer dots), then
 * the weight's rows handed out to the threads in chunks of whole 16-row
 * groups, each run through the ISA's mat-vec kernels (R16 or plain rows).
 * Several mat-vecs on one input (Q/K/V, gate/up, held back by the backend)
 * run as one such job: one preparation, one chunk stream over all their
 * rows, one start and one wait. ops_matmul.c picks this path by row count
 * and layout.
 */
#include <string.h>

#include "cpu.h"
#include "error.h"
#include "repack.h"
#include "util.h"

/* One weight of a mat-vec job: its rows sit at [r0, r0 + m) of the job's
 * row space (r0 a multiple of 16, so chunks never split a group). */
typedef struct gv_part {
    cpu_gemv_fn    gemv;    /* one activation row, or            */
    cpu_gemvn_fn   gemvn;   /* ncols rows at byte stride xs      */
    const uint8_t *w;
    size_t         ws;      /* bytes per unit of rows            */
    int64_t        unit;    /* rows per unit: 1, or 16 (R16)     */
    int64_t        m, r0;
    float         *d;
    size_t         ds;      /* float stride of d's rows          */
    const float   *bias;
} gv_part;

typedef struct gv_task {
    gv_part        parts[CPU_MM_FUSE_MAX];
    int            n_parts;
    int            ncols;
    size_t         xs;
    int64_t        k;
    const void    *x;       /* prepared activation row(s)        */
    uint8_t       *scratch; /* [n_threads][scratch_stride] bytes */
    size_t         scratch_stride;
    cpu_chunks     ch;      /* rows of every part, in whole 16-row units */
} gv_task;

static void gv_rows(const gv_task *t, const gv_part *p, int64_t r0, int64_t r1, uint8_t *scratch)
{
    const uint8_t *w = p->w + (size_t)(r0 / p->unit) * p->ws;
    if (p->gemvn) p->gemvn(t->k, w, p->ws, r1 - r0, t->x, t->xs, t->ncols, p->d + r0, p->ds, scratch);
    else p->gemv(t->k, w, p->ws, r1 - r0, t->x, p->d + r0, scratch);
    if (p->bias)
        for (int c = 0; c < (p->gemvn ? t->ncols : 1); c++)
            for (int64_t r = r0; r < r1; r++) p->d[(size_t)c * p->ds + r] += p->bias[r];
}

static void gv_work(void *arg, int ith, int nth)
{
    gv_task *t = arg;
    (void)nth;
    uint8_t *scratch = t->scratch + (size_t)ith * t->scratch_stride;
    int64_t r0, r1;
    /* Chunks are whole 16-row units, so no two threads write one cache
     * line of d. */
    while (cpu_chunk_next(&t->ch, &r0, &r1))
        for (int i = 0; i < t->n_parts; i++) {
            const gv_part *p = &t->parts[i];
            int64_t lo = VKI_MAX(r0, p->r0), hi = VKI_MIN(r1, p->r0 + p->m);
            if (lo < hi) gv_rows(t, p, lo - p->r0, hi - p->r0, scratch);
        }
}

/* Runs the job's parts over the pool (or alone when small); its chunks
 * are set up here, so one task serves each column batch in turn. */
static void gv_run(cpu_ctx *c, gv_task *g)
{
    const gv_part *last = &g->parts[g->n_parts - 1];
    const int64_t rows = last->r0 + last->m;
    int64_t work = 0;
    for (int i = 0; i < g->n_parts; i++) work += g->parts[i].m * g->k;
    bool alone = work < 65536 || c->n_threads == 1;
    cpu_chunks_init(&g->ch, rows, alone ? 1 : c->n_threads, 16);
    if (alone) gv_work(g, 0, 1);
    else cpu_pool_run(c->pool, gv_work, g);
}

/* Preparing activation rows for the dots: quantized (Q8_0, Q8_K) or
 * copied f32. */
typedef struct act_task {
    const cpu_kernels *kern;
    cpu_act            act;
    const bk_tensor   *x;
    int64_t            k;
    uint8_t           *dst;
    size_t             xs;
    cpu_chunks         ch; /* rows */
} act_task;

static void act_work(void *arg, int ith, int nth)
{
    act_task *t = arg;
    (void)ith, (void)nth;
    int64_t r;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const float *src = (const float *)cpu_row_ptr(t->x, r);
        uint8_t *dst = t->dst + (size_t)r * t->xs;
        if (t->act == CPU_ACT_Q8_0) t->kern->quantize_q8_0(src, dst, t->k);
        else if (t->act == CPU_ACT_Q8_K) t->kern->quantize_q8_K(src, dst, t->k);
        else memcpy(dst, src, (size_t)t->k * sizeof(float));
    }
}

void cpu_prepare_act(cpu_ctx *c, cpu_act act, const bk_tensor *x, int64_t k, uint8_t *dst, size_t xs)
{
    act_task t = {.kern = c->kern, .act = act, .x = x, .k = k, .dst = dst, .xs = xs};
    const int64_t n = cpu_n_rows(x);
    bool alone = n * k < 8192 || c->n_threads == 1;
    cpu_chunks_init(&t.ch, n, alone ? 1 : c->n_threads, 1);
    if (alone) act_work(&t, 0, 1);
    else cpu_pool_run(c->pool, act_work, &t);
}

size_t cpu_act_row_bytes(cpu_act act, int64_t k)
{
    size_t xs = act == CPU_ACT_Q8_0 ? (size_t)(k / QK8_0) * sizeof(block_q8_0)
              : act == CPU_ACT_Q8_K ? (size_t)(k / QK_K) * sizeof(block_q8_K)
                                    : (size_t)k * sizeof(float);
    return (size_t)vki_align_up(xs, 64);
}

bool cpu_matmul_fusable(const cpu_ctx *c, const bk_op *op)
{
    if (op->kind != BK_OP_MATMUL || op->ip[0]) return false;
    const bk_tensor *w = op->src[0], *x = op->src[1], *d = op->dst;
    const int64_t n = cpu_n_rows(x);
    if (n < 1 || n >= VKI_MMP_MIN_N_R16 || n > CPU_GEMVN_R16_MAX) return false;
    if (r16_float(w->type) || !c->kern->gemm[w->type] || !c->kern->gemv_r16[w->type] ||
        !c->kern->gemvn_r16[w->type] || !cpu_r16_group0(w, 0))
        return false;
    const cpu_act act = cpu_act_for(w->type);
    if (!(act == CPU_ACT_Q8_0 && w->ne[0] % QK8_0 == 0) && !(act == CPU_ACT_Q8_K && w->ne[0] % QK_K == 0))
        return false;
    return cpu_rows_uniform(d) && d->nb[1] % sizeof(float) == 0;
}

static bool same_view(const bk_tensor *a, const bk_tensor *b)
{
    return a->type == b->type && a->buf == b->buf && a->offs == b->offs && !memcmp(a->ne, b->ne, sizeof a->ne) &&
           !memcmp(a->nb, b->nb, sizeof a->nb);
}

static bool overlap(const bk_tensor *a, const bk_tensor *b)
{
    if (a->buf != b->buf) return false;
    return a->offs < b->offs + bk_span(b) && b->offs < a->offs + bk_span(a);
}

bool cpu_matmul_joins(const bk_op *const *group, int n, const bk_op *op)
{
    const bk_op *g0 = group[0];
    if (!same_view(g0->src[1], op->src[1]) || g0->src[0]->ne[0] != op->src[0]->ne[0] ||
        cpu_act_for(g0->src[0]->type) != cpu_act_for(op->src[0]->type))
        return false;
    /* Run together, no op may write what another reads or writes: the
     * shared input is prepared once before any output is written, so an
     * op that wrote over it would change what a later one should read. */
    if (overlap(op->dst, op->src[1])) return false;
    for (int i = 0; i < n; i++) {
        const bk_op *g = group[i];
        if (overlap(g->dst, op->dst) || overlap(g->dst, op->src[1]) || overlap(g->dst, op->src[0]) ||
            (op->src[2] && overlap(g->dst, op->src[2])) || overlap(op->dst, g->src[0]) ||
            (g->src[2] && overlap(op->dst, g->src[2])))
            return false;
    }
    return true;
}

/* A mat-vec part for weight w (R16 and quantized or plain, checked by the
 * caller) writing d. */
static void gv_part_init(const cpu_ctx *c, const bk_tensor *w, bool r16, int ncols, float *d, size_t ds,
                         const float *bias, gv_part *p)
{
    const int64_t k = w->ne[0];
    *p = (gv_part){.ws = w->nb[1], .unit = 1, .m = w->ne[1], .d = d, .ds = ds, .bias = bias,
                   .w = cpu_tensor_data(w)};
    if (r16) {
        p->unit = R16_ROWS;
        p->ws = r16_group_bytes(w->type, k);
        p->w = cpu_r16_group0(w, p->ws);
    }
    if (ncols == 1) p->gemv = (r16 ? c->kern->gemv_r16 : c->kern->gemv)[w->type];
    else p->gemvn = (r16 ? c->kern->gemvn_r16 : c->kern->gemvn)[w->type];
}

void cpu_matvec(cpu_ctx *c, const bk_tensor *w, bool r16, int64_t n, const uint8_t *x, size_t xs, float *d,
                size_t ds, const float *bias, int gv_max, uint8_t *scratch, size_t stride)
{
    gv_task g = {.n_parts = 1, .xs = xs, .k = w->ne[0], .scratch = scratch, .scratch_stride = stride};
    for (int64_t c0 = 0; c0 < n; c0 += gv_max) {
        g.ncols = (int)VKI_MIN(gv_max, n - c0);
        g.x = x + (size_t)c0 * xs;
        /* the last of 9, 17, ... (33, 65, ...) rows takes the one-row kernel */
        gv_part_init(c, w, r16, g.ncols, d + (size_t)c0 * ds, ds, bias, &g.parts[0]);
        gv_run(c, &g);
    }
}

vki_status cpu_op_matmul_fused(cpu_ctx *c, const bk_op *const *ops, int n_ops)
{
    VKI_ASSERT(n_ops >= 1 && n_ops <= CPU_MM_FUSE_MAX);
    const bk_tensor *x = ops[0]->src[1], *w0 = ops[0]->src[0];
    const cpu_act act = cpu_act_for(w0->type);
    const int64_t k = w0->ne[0], n = cpu_n_rows(x);
    const size_t xs = cpu_act_row_bytes(act, k), x_bytes = (size_t)n * xs;
    const size_t gv_stride = (size_t)vki_align_up(CPU_GEMV_SCRATCH(k) * (size_t)n, 64);
    uint8_t *s = cpu_scratch_get(c, x_bytes + (size_t)c->n_threads * gv_stride);
    if (!s)
        return vki_fail(VKI_ERR_OUT_OF_MEMORY, "MATMUL: no memory for %zu bytes of scratch",
                        x_bytes + (size_t)c->n_threads * gv_stride);
    cpu_prepare_act(c, act, x, k, s, xs);
    gv_task g = {.n_parts = n_ops, .ncols = (int)n, .xs = xs, .k = k, .x = s, .scratch = s + x_bytes,
                 .scratch_stride = gv_stride};
    int64_t r0 = 0;
    for (int i = 0; i < n_ops; i++) {
        const bk_op *op = ops[i];
        gv_part_init(c, op->src[0], true, g.ncols, cpu_tensor_data(op->dst), op->dst->nb[1] / sizeof(float),
                     op->src[2] ? cpu_tensor_data(op->src[2]) : NULL, &g.parts[i]);
        g.parts[i].r0 = r0;
        r0 += vki_align_up(g.parts[i].m, 16);
    }
    gv_run(c, &g);
    return VKI_OK;
}
