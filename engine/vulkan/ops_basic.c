/*
 * ops_basic.c: recording the row-wise and elementwise ops (ADD, MUL, SCALE,
 * SILU, GELU, SWIGLU, SOFTCAP, CPY, RMS_NORM, LAYER_NORM, L2_NORM, SOFTMAX,
 * ROPE, POOL, GET_ROWS) and the op dispatcher. Each function validates and binds
 * first; with record = false it stops there (supports_op).
 */
#include <stdio.h>
#include <string.h>

#include "engine/cpu/ref.h"
#include "error.h"
#include "util.h"
#include "vk_internal.h"

static const char *tname(const bk_tensor *t, const char *role) { return t->name ? t->name : role; }

vki_status vk_bind_tensor(vk_ctx *c, const bk_tensor *t, bool write, uint32_t elem_bytes, vk_binding *b,
                          vk_push_tensor *pt)
{
    char what[96];
    snprintf(what, sizeof(what), "tensor '%s'", t->name ? t->name : "?");
    VKI_TRY(vk_bind(c, t->buf, t->offs, bk_span(t), write, what, b));
    if (!pt) return VKI_OK;
    for (int i = 1; i < 4; i++)
        if (t->nb[i] % elem_bytes || t->nb[i] / elem_bytes > UINT32_MAX)
            return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s: stride nb[%d] = %llu is not a multiple of %u", what, i,
                            (unsigned long long)t->nb[i], elem_bytes);
    if (b->delta % elem_bytes)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s: offset %llu is not a multiple of %u", what,
                        (unsigned long long)t->offs, elem_bytes);
    *pt = (vk_push_tensor){(uint32_t)(b->delta / elem_bytes), (uint32_t)(t->nb[1] / elem_bytes),
                           (uint32_t)(t->nb[2] / elem_bytes), (uint32_t)(t->nb[3] / elem_bytes)};
    return VKI_OK;
}

static void ne_u32(const bk_tensor *t, uint32_t *ne)
{
    for (int i = 0; i < 4; i++) ne[i] = (uint32_t)t->ne[i];
}

static vki_status dispatch_linear(vk_ctx *c, const char *variant, uint32_t wg, uint32_t spec1, const vk_binding *b,
                                  int n, const void *push, uint32_t size, uint64_t n_items)
{
    uint32_t gx, gy;
    vk_groups_2d((n_items + wg - 1) / wg, &gx, &gy);
    return vk_dispatch(c, variant, wg, spec1, b, n, push, size, gx, gy, 1);
}

/* ===== Elementwise ======================================================= */

/* OP spec constant values; eltwise.comp mirrors them. */
enum {
    VK_OP_ADD = 0, VK_OP_MUL, VK_OP_SCALE, VK_OP_SILU, VK_OP_GELU, VK_OP_SWIGLU,
    VK_OP_GELU_TANH, VK_OP_GEGLU, VK_OP_GEGLU_TANH, VK_OP_SOFTCAP,
};

static uint32_t eltwise_code(const bk_op *op)
{
    switch (op->kind) {
    case BK_OP_ADD:     return VK_OP_ADD;
    case BK_OP_MUL:     return VK_OP_MUL;
    case BK_OP_SCALE:   return VK_OP_SCALE;
    case BK_OP_SILU:    return VK_OP_SILU;
    case BK_OP_GELU:    return op->ip[0] == BK_ACT_GELU_TANH ? VK_OP_GELU_TANH : VK_OP_GELU;
    case BK_OP_SOFTCAP: return VK_OP_SOFTCAP;
    default: /* SWIGLU; cpu_op_check allowed only the three gates */
        return op->ip[0] == BK_ACT_GELU ? VK_OP_GEGLU : op->ip[0] == BK_ACT_GELU_TANH ? VK_OP_GEGLU_TANH : VK_OP_SWIGLU;
    }
}

static vki_status op_eltwise(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *a = op->src[0], *bt = op->src[1];
    uint32_t code = eltwise_code(op);
    vk_push_eltwise p = {.f0 = op->fp[0], .n = (uint32_t)bk_nelements(d)};
    ne_u32(d, p.ne);
    vk_binding b[3];
    VKI_TRY(vk_bind_tensor(c, a, false, 4, &b[0], &p.a));
    if (bt) {
        VKI_TRY(vk_bind_tensor(c, bt, false, 4, &b[1], &p.b));
        if (bt->ne[1] * bt->ne[2] * bt->ne[3] == 1) p.b.nb1 = p.b.nb2 = p.b.nb3 = 0; /* one broadcast row */
    } else {
        b[1] = b[0];
        p.b = p.a;
    }
    VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[2], &p.d));
    if (!record) return VKI_OK;
    return dispatch_linear(c, "eltwise", 256, code, b, 3, &p, sizeof(p), p.n);
}

static vki_status op_cpy(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *a = op->src[0];
    bool sf16 = a->type == VKI_TYPE_F16, df16 = d->type == VKI_TYPE_F16;
    vk_push_cpy p = {.n = (uint32_t)bk_nelements(d)};
    ne_u32(d, p.ne_d);
    ne_u32(a, p.ne_a);
    vk_binding b[2];
    VKI_TRY(vk_bind_tensor(c, a, false, sf16 ? 2 : 4, &b[0], &p.a));
    VKI_TRY(vk_bind_tensor(c, d, true, df16 ? 2 : 4, &b[1], &p.d));
    if (!record) return VKI_OK;
    static const char *const names[2][2] = {{"cpy_f32_f32", "cpy_f32_f16"}, {"cpy_f16_f32", "cpy_f16_f16"}};
    return dispatch_linear(c, names[sf16][df16], 256, 0, b, 2, &p, sizeof(p), p.n);
}

/* ===== Row ops =========================================================== */

static vki_status op_rows(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *a = op->src[0];
    bool softmax = op->kind == BK_OP_SOFTMAX;
    uint32_t mode = op->kind == BK_OP_RMS_NORM ? 0 : op->kind == BK_OP_LAYER_NORM ? 1 : 2;
    vk_push_rows p = {.f0 = op->fp[0]};
    ne_u32(d, p.ne);
    vk_binding b[4];
    VKI_TRY(vk_bind_tensor(c, a, false, 4, &b[0], &p.a));
    int n = 0;
    if (softmax) {
        VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[1], &p.d));
        n = 2;
    } else {
        for (int i = 1; i <= 2; i++) {
            const bk_tensor *w = op->src[i];
            vk_push_tensor pt = {0};
            if (w && mode != 2) {
                VKI_TRY(vk_bind_tensor(c, w, false, 4, &b[i], &pt));
                p.flags |= 1u << (i - 1);
            } else {
                b[i] = b[0];
            }
            if (i == 1) p.w_offs = pt.offs;
            else p.b_offs = pt.offs;
        }
        VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[3], &p.d));
        n = 4;
    }
    if (!record) return VKI_OK;
    uint32_t gx, gy;
    vk_groups_2d((uint64_t)d->ne[1] * d->ne[2] * d->ne[3], &gx, &gy);
    return vk_dispatch(c, softmax ? "softmax" : "norm", 128, softmax ? 0 : mode, b, n, &p, sizeof(p), gx, gy, 1);
}

static vki_status op_rope(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *a = op->src[0], *pos = op->src[1], *div = op->src[2];
    if (a->ne[0] % 2)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: ROPE: head_dim %lld is odd", (long long)a->ne[0]);
    vk_push_rope p = {.n_rot = (uint32_t)op->ip[0], .mode = (uint32_t)op->ip[1], .freq_base = op->fp[0],
                      .freq_scale = op->fp[1], .mscale = op->fp[2] != 0.0f ? op->fp[2] : 1.0f};
    ne_u32(d, p.ne);
    vk_binding b[4];
    vk_push_tensor pp;
    VKI_TRY(vk_bind_tensor(c, a, false, 4, &b[0], &p.a));
    VKI_TRY(vk_bind_tensor(c, pos, false, 4, &b[1], &pp));
    VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[2], &p.d));
    p.pos_offs = pp.offs;
    if (div) {
        vk_push_tensor pf;
        VKI_TRY(vk_bind_tensor(c, div, false, 4, &b[3], &pf));
        p.div_offs = pf.offs;
        p.has_div = 1;
    } else {
        b[3] = b[1];
    }
    if (!record) return VKI_OK;
    return dispatch_linear(c, "rope", 128, 0, b, 4, &p, sizeof(p), (uint64_t)a->ne[0] / 2 * a->ne[1] * a->ne[2]);
}

static vki_status op_pool(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *a = op->src[0];
    vk_binding b[2];
    vk_push_tensor pa, pd;
    VKI_TRY(vk_bind_tensor(c, a, false, 4, &b[0], &pa));
    VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[1], &pd));
    vk_push_pool p = {.ne0 = (uint32_t)a->ne[0], .n_tok = (uint32_t)a->ne[1], .a_offs = pa.offs, .a_nb1 = pa.nb1,
                      .d_offs = pd.offs, .mode = (uint32_t)op->ip[0]};
    if (!record) return VKI_OK;
    return vk_dispatch(c, "pool", 128, 0, b, 2, &p, sizeof(p), (p.ne0 + 127) / 128, 1, 1);
}

/* ===== GET_ROWS ========================================================== */

static const char *type_suffix(vki_type t)
{
    switch (t) {
    case VKI_TYPE_F32: return "f32";
    case VKI_TYPE_F16: return "f16";
    case VKI_TYPE_BF16: return "bf16";
    case VKI_TYPE_Q8_0: return "q8_0";
    case VKI_TYPE_Q4_0: return "q4_0";
    case VKI_TYPE_Q4_1: return "q4_1";
    case VKI_TYPE_Q5_0: return "q5_0";
    case VKI_TYPE_Q5_1: return "q5_1";
    case VKI_TYPE_Q2_K: return "q2_k";
    case VKI_TYPE_Q3_K: return "q3_k";
    case VKI_TYPE_Q4_K: return "q4_k";
    case VKI_TYPE_Q5_K: return "q5_k";
    case VKI_TYPE_Q6_K: return "q6_k";
    default: return NULL;
    }
}

const char *vk_weight_suffix(vki_type t) { return type_suffix(t); }

static vki_status op_get_rows(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *tab = op->src[0], *ids = op->src[1];
    const char *sfx = type_suffix(tab->type);
    if (!sfx) return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: GET_ROWS: table type %s has no kernel", vki_type_name(tab->type));
    if (d->ne[2] * d->ne[3] != 1 && (d->nb[2] != d->nb[1] * (uint64_t)d->ne[1] || d->nb[3] != d->nb[2] * (uint64_t)d->ne[2]))
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: GET_ROWS: dst rows must be evenly strided");
    vk_binding b[4];
    vk_push_tensor pi;
    vk_push_get_rows p = {.ne0 = (uint32_t)tab->ne[0], .n_ids = (uint32_t)ids->ne[0], .n_rows = (uint32_t)tab->ne[1],
                          .tag = c->n_gather};
    b[3] = vk_status_binding(c);
    VKI_TRY(vk_bind_tensor(c, ids, false, 4, &b[1], &pi));
    VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[2], &p.d));
    p.ids_offs = pi.offs;
    /* The table is bound window by window (each within maxStorageBufferRange
     * and one allocation); every dispatch writes the ids that fall inside it. */
    uint64_t row_bytes = tab->nb[1];
    uint64_t rows_per = VKI_MAX((c->max_range - c->align) / row_bytes, 1);
    for (int64_t r0 = 0; r0 < tab->ne[1];) {
        int64_t n = VKI_MIN((int64_t)rows_per, tab->ne[1] - r0);
        bk_tensor win = bk_tensor_rows(tab, 1, r0, n);
        /* A window may not cross a piece boundary: shrink it to end there. */
        int pc = vk_piece_at(win.buf, win.offs);
        uint64_t piece_end = win.buf->pieces[pc].base + win.buf->pieces[pc].size;
        if (win.offs + bk_span(&win) > piece_end && piece_end > win.offs + row_bytes) {
            n = (int64_t)((piece_end - win.offs) / row_bytes);
            win = bk_tensor_rows(tab, 1, r0, n);
        }
        VKI_TRY(vk_bind_tensor(c, &win, false, 1, &b[0], NULL));
        p.t_boffs = (uint32_t)b[0].delta;
        p.t_nb1 = (uint32_t)row_bytes;
        p.row0 = (uint32_t)r0;
        p.row1 = (uint32_t)(r0 + n);
        if (record) {
            char v[32];
            snprintf(v, sizeof(v), "get_rows_%s", sfx);
            uint32_t gx, gy;
            vk_groups_2d(p.n_ids, &gx, &gy);
            VKI_TRY(vk_dispatch(c, v, 64, 0, b, 4, &p, sizeof(p), gx, gy, 1));
        }
        r0 += n;
    }
    if (record) c->n_gather++;
    return VKI_OK;
}

/* ===== Dispatcher ======================================================== */

static vki_status run(vk_ctx *c, const bk_op *op, bool record)
{
    VKI_TRY(cpu_op_check(op));
    for (int i = -1; i < 3; i++) {
        const bk_tensor *t = i < 0 ? op->dst : op->src[i];
        if (t && bk_nelements(t) > (int64_t)UINT32_MAX / 2)
            return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s: tensor '%s' has over 2^31 elements", bk_op_name(op->kind),
                            tname(t, "?"));
    }
    switch (op->kind) {
    case BK_OP_ADD: case BK_OP_MUL: case BK_OP_SCALE: case BK_OP_SILU: case BK_OP_GELU: case BK_OP_SWIGLU:
    case BK_OP_SOFTCAP:
        return op_eltwise(c, op, record);
    case BK_OP_CPY: return op_cpy(c, op, record);
    case BK_OP_RMS_NORM: case BK_OP_LAYER_NORM: case BK_OP_L2_NORM: case BK_OP_SOFTMAX:
        return op_rows(c, op, record);
    case BK_OP_ROPE: return op_rope(c, op, record);
    case BK_OP_POOL: return op_pool(c, op, record);
    case BK_OP_GET_ROWS: return op_get_rows(c, op, record);
    case BK_OP_MATMUL: {
        VKI_TRY(vk_ops_matmul(c, op, record));
        if (!op->ip[0]) return VKI_OK;
        /* No mat-mul shader has an activation epilogue yet: the fused GELU
         * is its own dispatch over dst, as a separate op would be. */
        bk_op g = {.kind = BK_OP_GELU, .dst = op->dst, .src = {op->dst}, .ip = {op->ip[0]}};
        return op_eltwise(c, &g, record);
    }
    case BK_OP_ATTN: return vk_ops_attn(c, op, record);
    case BK_OP_TOP_K: case BK_OP_GATHER_COLS: case BK_OP_MOE_SUM: case BK_OP_MATMUL_ID:
        return vk_ops_moe(c, op, record);
    default: return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s has no kernel", bk_op_name(op->kind));
    }
}

vki_status vk_op_check(vk_ctx *c, const bk_op *op) { return run(c, op, false); }

vki_status vk_op_record(vk_ctx *c, const bk_op *op)
{
    if (!c->recording) return vki_fail(VKI_ERR_INVALID_ARGUMENT, "vulkan: compute outside begin/end");
    return run(c, op, true);
}

vki_status vk_ops_basic(vk_ctx *c, const bk_op *op, bool record) { return run(c, op, record); }
