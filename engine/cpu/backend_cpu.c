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
    b->alloc = alloc;
    atomic_fetch_add(&ctx_of(be)->mem_used, alloc);
    *out = (bk_buffer *)b;
    return VKI_OK;
}

static void cpu_buffer_destroy(bk_backend *be, bk_buffer *buf)
{
    cpu_buffer *b = (cpu_buffer *)buf;
    if (!b) return;
    if (b->owned) {
        cpu_wmem_free(ctx_of(be)->wmem, b->data, b->slab);
        atomic_fetch_sub(&ctx_of(be)->mem_used, b->alloc);
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
    if (((const cpu_buffer *)t->buf)->layout != CPU_LAYOUT_PLAIN)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "cpu: tensor_set of '%s': the weight was repacked, it is read-only",
                        t->name ? t->name : "");
    memcpy((uint8_t *)cpu_tensor_data(t) + offs, src, (size_t)size);
    return VKI_OK;
}

static vki_status cpu_tensor_get(bk_backend *be, const bk_tensor *t, void *dst, uint64_t offs, uint64_t size)
{
    VKI_TRY(tensor_range(be, t, offs, size, "tensor_get"));
    if (((const cpu_buffer *)t->buf)->layout != CPU_LAYOUT_PLAIN) return cpu_weight_read(t, dst, offs, size);
    memcpy(dst, (const uint8_t *)cpu_tensor_data(t) + offs, (size_t)size);
    return VKI_OK;
}

/* Scratch shared by one op's threads; grows, never shrinks. NULL only when
 * out of memory: a request of 0 bytes (an op whose parts all run in place)
 * still gets a block, since callers lay their parts out from the base. */
void *cpu_scratch_get(cpu_ctx *c, size_t size)
{
    if (size > c->scratch_size || !c->scratch) {
        void *p = NULL;
        size_t want = (size_t)vki_align_up(VKI_MAX(size + size / 4, 64), 64);
        if (posix_memalign(&p, 64, want) != 0) return NULL;
        free(c->scratch);
        c->scratch = p;
        c->scratch_size = want;
    }
    return c->scratch;
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
    bool bcast = b && cpu_n_rows(b) == 1;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const float *x = (const float *)cpu_row_ptr(a, r);
        const float *y = b ? (const float *)cpu_row_ptr(b, bcast ? 0 : r) : NULL;
        float *o = (float *)cpu_row_ptr(d, r);
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
        const float *x = (const float *)cpu_row_ptr(a, r);
        float *o = (float *)cpu_row_ptr(d, r);
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
        /* One loop a case: with the tests inside, GCC left it scalar
         * (two thirds of norm_rows in a BERT embedding's profile). */
        const float m = (float)mean;
        if (w && bias)
            for (int64_t i = 0; i < n; i++) o[i] = (x[i] - m) * scale * w[i] + bias[i];
        else if (w)
            for (int64_t i = 0; i < n; i++) o[i] = (x[i] - m) * scale * w[i];
        else if (bias)
            for (int64_t i = 0; i < n; i++) o[i] = (x[i] - m) * scale + bias[i];
        else
            for (int64_t i = 0; i < n; i++) o[i] = (x[i] - m) * scale;
    }
}

static void softmax_rows(void *arg, int ith, int nth)
{
    row_task *t = arg;
    const bk_op *op = t->op;
    int64_t n = op->src[0]->ne[0], r;
    float s = op->fp[0];
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const float *x = (const float *)cpu_row_ptr(op->src[0], r);
        float *o = (float *)cpu_row_ptr(op->dst, r);
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
            const float *x = (const float *)cpu_row_ptr(a, tok * nh + h);
            float *o = (float *)cpu_row_ptr(d, tok * nh + h);
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
            const uint8_t *ps = cpu_row_ptr(a, e / a->ne[0]) + (uint64_t)ia * a->nb[0];
            uint8_t *pd = cpu_row_ptr(d, e / d->ne[0]) + (uint64_t)id * d->nb[0];
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
    const bool r16 = ((const cpu_buffer *)tab->buf)->layout == CPU_LAYOUT_R16;
    uint8_t *plain = (uint8_t *)(t->scratch + (size_t)ith * (size_t)t->scratch_stride); /* R16: one plain row */
    int64_t n = tab->ne[0], r;
    for (cpu_chunk_it it = {0, 0}; cpu_chunk_each(&t->ch, &it, &r);) {
        const uint8_t *src = r16 ? cpu_weight_rows(tab, ids[r], 1, plain)
                                 : (const uint8_t *)cpu_tensor_data(tab) + (uint64_t)ids[r] * tab->nb[1];
        float *o = (float *)cpu_row_ptr(d, r);
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

/* MATMUL, with its fused activation run over dst where the path did not
 * apply it per tile (the mat-vecs and dot tiles of a few rows). */
static vki_status op_matmul(cpu_ctx *c, const bk_op *op)
{
    bool act_done;
    VKI_TRY(cpu_op_matmul(c, op, &act_done));
    if (op->ip[0] && !act_done) {
        bk_op g = {.kind = BK_OP_GELU, .dst = op->dst, .src = {op->dst}, .ip = {op->ip[0]}};
        row_task t = {.op = &g, .kern = c->kern};
        run_rows(c, elementwise_rows, &t, bk_nelements(op->dst), cpu_n_rows(op->dst));
    }
    return VKI_OK;
}

static vki_status mm_adapter(void *ctx, const bk_op *op) { return op_matmul(ctx, op); }

/* ===== MATMULs on one input, as one job =================================== */

/* Within a pass a mat-vec MATMUL is held back while the next ops are
 * mat-vecs on the same input (Q/K/V, gate/up), and they run as one pool job
 * when anything else comes (or the pass ends): one activation preparation,
 * one start and one wait for all. Each held op had its own job before: a
 * worker start, a quantization of the same row and a tail wait each. */
static vki_status mm_flush(cpu_ctx *c)
{
    const int n = c->n_pend;
    c->n_pend = 0;
    if (n == 0) return VKI_OK;
    if (n == 1) return op_matmul(c, &c->pend[0].op);
    const bk_op *ops[CPU_MM_FUSE_MAX];
    for (int i = 0; i < n; i++) ops[i] = &c->pend[i].op;
    c->n_fused += (uint64_t)n;
    return cpu_op_matmul_fused(c, ops, n);
}

static void mm_hold(cpu_ctx *c, const bk_op *op)
{
    cpu_mm_pending *p = &c->pend[c->n_pend++];
    p->op = *op;
    p->t[0] = *op->dst;
    p->op.dst = &p->t[0];
    for (int i = 0; i < 3; i++)
        if (op->src[i]) {
            p->t[i + 1] = *op->src[i];
            p->op.src[i] = &p->t[i + 1];
        }
}

/* Holds op when it can join the held ones (running them first when it
 * cannot); false: op is not a mat-vec to hold, and the held ones have run. */
static vki_status mm_defer(cpu_ctx *c, const bk_op *op, bool *held)
{
    *held = false;
    if (c->in_pass && cpu_matmul_fusable(c, op)) {
        const bk_op *group[CPU_MM_FUSE_MAX];
        for (int i = 0; i < c->n_pend; i++) group[i] = &c->pend[i].op;
        if (c->n_pend == CPU_MM_FUSE_MAX || (c->n_pend && !cpu_matmul_joins(group, c->n_pend, op)))
            VKI_TRY(mm_flush(c));
        mm_hold(c, op);
        *held = true;
        return VKI_OK;
    }
    return mm_flush(c);
}

/* ===== POOL ============================================================== */

static void op_pool(const bk_op *op)
{
    const bk_tensor *a = op->src[0];
    int64_t n = a->ne[0], used = op->ip[0] == BK_POOL_MEAN ? a->ne[1] : 1;
    float *o = (float *)cpu_row_ptr(op->dst, 0);
    if (op->ip[0] == BK_POOL_LAST) {
        memmove(o, cpu_row_ptr(a, a->ne[1] - 1), (size_t)n * sizeof(float));
        return;
    }
    /* dst may alias row 0 of src: accumulate rows 1.. onto a copy of row 0. */
    const float *x0 = (const float *)cpu_row_ptr(a, 0);
    if (o != x0) memmove(o, x0, (size_t)n * sizeof(float));
    for (int64_t r = 1; r < used; r++) {
        const float *x = (const float *)cpu_row_ptr(a, r);
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
        cpu_wmem_destroy(c->wmem);
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
    cpu_ctx *c = ctx_of(be);
    vki_status s = mm_flush(c);
    c->in_pass = false;
    return s;
}

static vki_status cpu_compute(bk_backend *be, const bk_op *op)
{
    cpu_ctx *c = ctx_of(be);
    VKI_TRY(cpu_op_check(op));
    bool held;
    VKI_TRY(mm_defer(c, op, &held));
    if (held) return VKI_OK;
    row_task t = {.op = op, .kern = c->kern};
    const bk_tensor *a = op->src[0];
    int64_t work = bk_nelements(a);
    switch (op->kind) {
    case BK_OP_MATMUL: return op_matmul(c, op);
    case BK_OP_ATTN:   return cpu_op_attn(c, op);
    case BK_OP_POOL:   op_pool(op); return VKI_OK;
    case BK_OP_GET_ROWS: {
        const int32_t *ids = cpu_tensor_data(op->src[1]);
        for (int64_t r = 0; r < op->src[1]->ne[0]; r++)
            if (ids[r] < 0 || ids[r] >= a->ne[1])
                return vki_fail(VKI_ERR_INVALID_ARGUMENT, "GET_ROWS: id %d at %lld is outside [0, %lld)", ids[r],
                                (long long)r, (long long)a->ne[1]);
        if (((const cpu_buffer *)a->buf)->layout != CPU_LAYOUT_PLAIN) {
            t.scratch_stride = (int64_t)vki_align_up(a->nb[1], 64) / (int64_t)sizeof(float);
            if (!(t.scratch = cpu_scratch_get(c, (size_t)c->n_threads * (size_t)t.scratch_stride * sizeof(float))))
                return vki_fail(VKI_ERR_OUT_OF_MEMORY, "GET_ROWS: no memory for scratch");
        }
        run_rows(c, get_rows_task, &t, op->src[1]->ne[0] * a->ne[0], op->src[1]->ne[0]);
        return VKI_OK;
    }
    case BK_OP_ADD: case BK_OP_MUL: case BK_OP_SCALE: case BK_OP_SILU: case BK_OP_GELU: case BK_OP_SWIGLU:
    case BK_OP_SOFTCAP:
        run_rows(c, elementwise_rows, &t, work, cpu_n_rows(a));
        return VKI_OK;
    case BK_OP_TOP_K: case BK_OP_GATHER_COLS: case BK_OP_MOE_SUM:
        return cpu_moe_small_op(op);
    case BK_OP_MATMUL_ID:
        return cpu_moe_matmul_id(op, mm_adapter, c);
    case BK_OP_RMS_NORM: case BK_OP_LAYER_NORM: case BK_OP_L2_NORM:
        run_rows(c, norm_rows, &t, work, cpu_n_rows(a));
        return VKI_OK;
    case BK_OP_SOFTMAX:
        run_rows(c, softmax_rows, &t, work, cpu_n_rows(a));
        return VKI_OK;
    case BK_OP_CPY:
        run_rows(c, cpy_rows, &t, work, work);
        return VKI_OK;
    case BK_OP_ROPE: {
        t.scratch_stride = op->ip[0];
        t.scratch = cpu_scratch_get(c, (size_t)c->n_threads * (size_t)op->ip[0] * sizeof(float));
        if (!t.scratch) return vki_fail(VKI_ERR_OUT_OF_MEMORY, "ROPE: no memory for scratch");
        run_rows(c, rope_tokens, &t, work, a->ne[2]);
        return VKI_OK;
    }
    default:
        return vki_fail(VKI_ERR_UNSUPPORTED, "cpu: op %s is not implemented", bk_op_name(op->kind));
    }
}

static uint64_t cpu_memory_used(bk_backend *be) { return atomic_load(&ctx_of(be)->mem_used); }

static vki_status cpu_weight_prepare_be(bk_backend *be, const bk_tensor *t, unsigned uses, bool *released)
{
    *released = false;
    if (ctx_of(be)->in_pass)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "cpu: weight_prepare of '%s' between begin and end",
                        t->name ? t->name : "");
    return cpu_weight_prepare(ctx_of(be), t, uses, released);
}

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
    .weight_prepare = cpu_weight_prepare_be,
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
    if ((st = cpu_wmem_create(&c->wmem)) != VKI_OK) goto fail;
    if ((st = cpu_pool_create(n_threads, &c->pool)) != VKI_OK) goto fail;
    c->n_threads = cpu_pool_size(c->pool);
    c->kern = cpu_kernels_get(isa);
    c->no_mq = getenv("VKI_CPU_NO_MQ") && getenv("VKI_CPU_NO_MQ")[0];
    c->no_repack = getenv("VKI_CPU_NO_REPACK") && getenv("VKI_CPU_NO_REPACK")[0];
    atomic_init(&c->mem_used, 0);
    snprintf(c->name, sizeof c->name, "cpu (%s%s, %d thread%s)", cpu_isa_name(isa),
             isa == CPU_ISA_AVX512 && cpu_has_vnni() ? "+vnni" : "", c->n_threads, c->n_threads == 1 ? "" : "s");
    be->iface = &cpu_iface;
    be->ctx = c;
    be->kind = VKI_BACKEND_CPU;
    *out = be;
    return VKI_OK;
fail:
    if (c) cpu_wmem_destroy(c->wmem);
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
