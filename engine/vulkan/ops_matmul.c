/*
 * ops_matmul.c: recording MATMUL. Up to 8 activation rows use matvec.comp
 * (decode: memory-bound, one pass over the weights); more use the tiled
 * matmul.comp (prompts, batches: compute-bound). A weight larger than one
 * binding (maxStorageBufferRange) is split by rows into several dispatches
 * that each write their own columns of dst.
 * Where the device has integer dot products, the mat-vecs of Q8_0, Q4_0,
 * Q4_K and Q6_K weights first quantize the activations to 8-bit blocks of
 * 32 (quantize_q8.comp, into the scratch ring) and run the _dot variants
 * (intdot.glsl), as the CPU backend quantizes them for its own dots.
 * Mat-mats of F16 and quantized weights use cooperative matrices
 * (matmul_cm.comp) where the device has them, or their emulation when
 * VKI_VK_MATMUL=coopemu asks (tests); F32/BF16 weights and devices without
 * them use the tiled f32 matmul.comp.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "util.h"
#include "vk_internal.h"

/* The byte geometry shaders/common/types.glsl hard-codes. */
_Static_assert(sizeof(block_q4_0) == 18 && offsetof(block_q4_0, qs) == 2, "types.glsl Q4_0");
_Static_assert(sizeof(block_q8_0) == 34 && offsetof(block_q8_0, qs) == 2, "types.glsl Q8_0");
_Static_assert(sizeof(block_q4_K) == 144 && offsetof(block_q4_K, dmin) == 2 && offsetof(block_q4_K, scales) == 4 &&
               offsetof(block_q4_K, qs) == 16, "types.glsl Q4_K");
_Static_assert(sizeof(block_q4_1) == 20 && offsetof(block_q4_1, m) == 2 && offsetof(block_q4_1, qs) == 4, "types.glsl Q4_1");
_Static_assert(sizeof(block_q5_0) == 22 && offsetof(block_q5_0, qh) == 2 && offsetof(block_q5_0, qs) == 6, "types.glsl Q5_0");
_Static_assert(sizeof(block_q5_1) == 24 && offsetof(block_q5_1, m) == 2 && offsetof(block_q5_1, qh) == 4 &&
               offsetof(block_q5_1, qs) == 8, "types.glsl Q5_1");
_Static_assert(sizeof(block_q2_K) == 84 && offsetof(block_q2_K, qs) == 16 && offsetof(block_q2_K, d) == 80 &&
               offsetof(block_q2_K, dmin) == 82, "types.glsl Q2_K");
_Static_assert(sizeof(block_q3_K) == 110 && offsetof(block_q3_K, qs) == 32 && offsetof(block_q3_K, scales) == 96 &&
               offsetof(block_q3_K, d) == 108, "types.glsl Q3_K");
_Static_assert(sizeof(block_q5_K) == 176 && offsetof(block_q5_K, dmin) == 2 && offsetof(block_q5_K, scales) == 4 &&
               offsetof(block_q5_K, qh) == 16 && offsetof(block_q5_K, qs) == 48, "types.glsl Q5_K");
_Static_assert(sizeof(block_q6_K) == 210 && offsetof(block_q6_K, qh) == 128 && offsetof(block_q6_K, scales) == 192 &&
               offsetof(block_q6_K, d) == 208, "types.glsl Q6_K");

#define MATVEC_MAX_N 8 /* the largest NCOLS of matvec.comp */
#define MATVEC_WG 64

/* Weight rows per matvec workgroup: enough threads per row for a row of k
 * elements (4 per thread per step, at least 4 steps), never fewer than
 * one subgroup per row when the subgroup reduction is used. */
uint32_t vk_matvec_rows(const vk_ctx *c, int64_t k)
{
    uint32_t tpr = MATVEC_WG;
    while (tpr > 4 && (int64_t)tpr * 16 > k) tpr /= 2;
    if (c->use_subgroup) tpr = VKI_MAX(tpr, VKI_MIN(c->info.subgroup_size, (uint32_t)MATVEC_WG));
    return MATVEC_WG / tpr;
}

/* The weight types with an int-dot mat-vec (intdot.glsl). */
static bool has_intdot(vki_type t)
{
    return t == VKI_TYPE_Q8_0 || t == VKI_TYPE_Q4_0 || t == VKI_TYPE_Q4_K || t == VKI_TYPE_Q6_K;
}

#define Q8_BLOCK_BYTES 40u /* 32 activations: scale, two sums, 32 int8 (intdot.glsl) */

/* Quantizes the n activation rows of x (bound at bx, view p->x) into the
 * scratch ring; on return *bq (which may be bx) binds them for the
 * int-dot mat-vec and p->x.offs is their first word there. */
static vki_status quantize_rows(vk_ctx *c, vk_binding *bx, vk_push_matmul *p, vk_binding *bq)
{
    uint64_t blocks = (uint64_t)(p->k / 32) * p->n;
    vk_binding b[2] = {*bx};
    VKI_TRY(vk_scratch_get(c, blocks * Q8_BLOCK_BYTES, &b[1]));
    vk_push_matmul q = *p;
    q.d.offs = (uint32_t)(b[1].delta / 4);
    uint32_t gx, gy;
    vk_groups_2d((blocks + 63) / 64, &gx, &gy);
    VKI_TRY(vk_dispatch(c, "quantize_q8", 64, 0, b, 2, &q, sizeof(q), gx, gy, 1));
    *bq = b[1];
    bq->write = false;
    p->x.offs = q.d.offs;
    return VKI_OK;
}

static bool bind_overlap(const vk_binding *a, const vk_binding *b)
{
    return a->buf == b->buf && a->offs < b->offs + b->range && b->offs < a->offs + a->range;
}

void vk_qcache_drop(vk_ctx *c, const vk_binding *b)
{
    if (c->qcache.valid && (!b || bind_overlap(&c->qcache.src, b) || bind_overlap(&c->qcache.q, b)))
        c->qcache.valid = false;
}

/* quantize_rows, or the blocks the last call left when they are of the
 * same rows, bound the same way and untouched since. */
static vki_status quantize_rows_once(vk_ctx *c, vk_binding *bx, vk_push_matmul *p, vk_binding *bq)
{
    if (c->dbg.no_qreuse) return quantize_rows(c, bx, p, bq);
    const vk_binding src = *bx;
    const vk_push_tensor x = p->x;
    if (c->qcache.valid && c->qcache.src.buf == src.buf && c->qcache.src.offs == src.offs &&
        c->qcache.src.range == src.range && c->qcache.src.delta == src.delta && !memcmp(&c->qcache.x, &x, sizeof x) &&
        c->qcache.k == p->k && c->qcache.n == p->n && c->qcache.x_ne1 == p->x_ne1 && c->qcache.x_ne2 == p->x_ne2) {
        *bq = c->qcache.q;
        p->x.offs = c->qcache.q_offs;
        c->n_qreuse++;
        return VKI_OK;
    }
    VKI_TRY(quantize_rows(c, bx, p, bq));
    c->qcache.valid = true;
    c->qcache.src = src;
    c->qcache.x = x;
    c->qcache.k = p->k;
    c->qcache.n = p->n;
    c->qcache.x_ne1 = p->x_ne1;
    c->qcache.x_ne2 = p->x_ne2;
    c->qcache.q = *bq;
    c->qcache.q_offs = p->x.offs;
    return VKI_OK;
}

/* The weight types with a matmul_cm kernel (variants.cmake): F16 and the
 * quantized ones; F32 and BF16 would lose precision or range in f16. */
static bool has_coopmat(vki_type t) { return t != VKI_TYPE_F32 && t != VKI_TYPE_BF16; }

bool bk_vk_matmul_f16(bk_backend *be, const bk_op *op)
{
    const vk_ctx *c = be->ctx;
    const bk_tensor *x = op->src[1];
    return op->kind == BK_OP_MATMUL && c->matmul_path != VK_MATMUL_TILED && has_coopmat(op->src[0]->type) &&
           x->ne[1] * x->ne[2] * x->ne[3] > MATVEC_MAX_N;
}

vki_status vk_ops_matmul(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *w = op->src[0], *x = op->src[1], *bias = op->src[2];
    const char *sfx = vk_weight_suffix(w->type);
    if (!sfx) return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: MATMUL: weight type %s has no kernel", vki_type_name(w->type));
    int64_t n = x->ne[1] * x->ne[2] * x->ne[3];
    vk_binding b[4];
    vk_push_matmul p = {.k = (uint32_t)w->ne[0], .n = (uint32_t)n, .x_ne1 = (uint32_t)x->ne[1],
                        .x_ne2 = (uint32_t)x->ne[2], .d_ne1 = (uint32_t)d->ne[1], .d_ne2 = (uint32_t)d->ne[2]};
    VKI_TRY(vk_bind_tensor(c, x, false, 4, &b[1], &p.x));
    VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[2], &p.d));
    if (bias) {
        vk_push_tensor pb;
        VKI_TRY(vk_bind_tensor(c, bias, false, 4, &b[3], &pb));
        p.bias_offs = pb.offs;
        p.has_bias = 1;
    } else {
        b[3] = b[1];
    }
    bool vec = n <= MATVEC_MAX_N;
    uint32_t nrows = vec ? vk_matvec_rows(c, w->ne[0]) : 1;
    /* Activation rows per workgroup: the next power of two, so a pipeline
     * exists for 1, 2, 4 and 8 (spec constant 1 = nrows | ncols << 8). */
    uint32_t ncols = 1;
    while (vec && ncols < n) ncols *= 2;
    char variant[32];
    bool dot = vec && c->use_intdot && has_intdot(w->type);
    bool cm = !vec && c->matmul_path != VK_MATMUL_TILED && has_coopmat(w->type);
    const char *kind = vec ? "matvec" : !cm ? "matmul" : c->matmul_path == VK_MATMUL_COOPMAT ? "matmul_cm" : "matmul_cmemu";
    snprintf(variant, sizeof(variant), "%s_%s%s%s", kind, sfx, dot ? "_dot" : "", vec && c->use_subgroup ? "_sg" : "");
    if (dot && record) VKI_TRY(quantize_rows_once(c, &b[1], &p, &b[1]));

    uint64_t row_bytes = w->nb[1];
    uint64_t rows_per = VKI_MAX((c->max_range - c->align) / row_bytes, 1);
    for (int64_t r0 = 0; r0 < w->ne[1];) {
        int64_t m = VKI_MIN((int64_t)rows_per, w->ne[1] - r0);
        bk_tensor win = bk_tensor_rows(w, 1, r0, m);
        int pc = vk_piece_at(win.buf, win.offs);
        uint64_t piece_end = win.buf->pieces[pc].base + win.buf->pieces[pc].size;
        if (win.offs + bk_span(&win) > piece_end && piece_end > win.offs + row_bytes) {
            m = (int64_t)((piece_end - win.offs) / row_bytes);
            win = bk_tensor_rows(w, 1, r0, m);
        }
        char what[96];
        snprintf(what, sizeof(what), "weight '%s' rows %lld..%lld", w->name ? w->name : "?", (long long)r0,
                 (long long)(r0 + m));
        VKI_TRY(vk_bind(c, win.buf, win.offs, bk_span(&win), false, what, &b[0]));
        p.w_boffs = (uint32_t)b[0].delta;
        p.w_nb1 = (uint32_t)row_bytes;
        p.m = (uint32_t)m;
        p.row0 = (uint32_t)r0;
        if (record) {
            if (vec) {
                uint32_t gx, gy;
                vk_groups_2d(((uint64_t)m + nrows - 1) / nrows, &gx, &gy);
                VKI_TRY(vk_dispatch(c, variant, MATVEC_WG, nrows | ncols << 8, b, 4, &p, sizeof(p), gx, gy,
                                    (uint32_t)((n + ncols - 1) / ncols)));
            } else {
                VKI_TRY(vk_dispatch(c, variant, cm ? 4 * c->cm_subgroup : 256, 0, b, 4, &p, sizeof(p),
                                    (uint32_t)((m + 63) / 64), (uint32_t)((n + 63) / 64), 1));
            }
        }
        r0 += m;
    }
    return VKI_OK;
}
