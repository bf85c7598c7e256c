/*
 * ops_moe.c: recording the mixture-of-experts ops. The routing ops are
 * small kernels (top_k.comp, gather_cols.comp, moe_sum.comp). MATMUL_ID
 * runs matvec.comp (few tokens: one workgroup per (token, slot) pair and
 * row group) or matmul.comp (prompts: one workgroup per expert and row
 * tile, over the pairs routed to it), both built with MATMUL_ID. The expert
 * ids stay on the device: nothing here reads them back.
 */
#include <stdio.h>

#include "error.h"
#include "util.h"
#include "vk_internal.h"

#define MATVEC_MAX_TOK 8 /* tokens up to which MATMUL_ID takes the mat-vec kernel */
#define MATVEC_WG 64

/* A tensor's binding view and row decomposition. */
static vki_status bind_rows(vk_ctx *c, const bk_tensor *t, bool write, vk_binding *b, vk_push_rows_of *r)
{
    r->ne1 = (uint32_t)t->ne[1];
    r->ne2 = (uint32_t)t->ne[2];
    return vk_bind_tensor(c, t, write, 4, b, &r->t);
}

static uint64_t rows_of(const bk_tensor *t) { return (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]); }

static vki_status op_top_k(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *a = op->src[0], *d = op->dst;
    vk_push_top_k p = {.n = (uint32_t)a->ne[0], .k = (uint32_t)d->ne[0], .n_rows = (uint32_t)rows_of(a)};
    vk_binding b[2];
    VKI_TRY(bind_rows(c, a, false, &b[0], &p.a));
    VKI_TRY(bind_rows(c, d, true, &b[1], &p.d));
    if (!record || !p.n_rows) return VKI_OK;
    uint32_t gx, gy;
    vk_groups_2d(p.n_rows, &gx, &gy);
    return vk_dispatch(c, "top_k", 128, 0, b, 2, &p, sizeof(p), gx, gy, 1);
}

static vki_status op_gather_cols(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *a = op->src[0], *ids = op->src[1], *d = op->dst;
    vk_push_gather_cols p = {.n = (uint32_t)a->ne[0], .k = (uint32_t)d->ne[0], .n_rows = (uint32_t)rows_of(a),
                             .norm = op->ip[0] ? 1u : 0u, .tag = c->n_routed};
    vk_binding b[4];
    VKI_TRY(bind_rows(c, a, false, &b[0], &p.a));
    VKI_TRY(bind_rows(c, ids, false, &b[1], &p.ids));
    VKI_TRY(bind_rows(c, d, true, &b[2], &p.d));
    b[3] = vk_status_binding(c);
    if (!record || !p.n_rows) return VKI_OK;
    uint32_t gx, gy;
    vk_groups_2d((p.n_rows + 127) / 128, &gx, &gy);
    VKI_TRY(vk_dispatch(c, "gather_cols", 128, 0, b, 4, &p, sizeof(p), gx, gy, 1));
    c->n_routed++;
    return VKI_OK;
}

static vki_status op_moe_sum(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *y = op->src[0], *w = op->src[1], *d = op->dst;
    vk_push_moe_sum p = {.ne0 = (uint32_t)y->ne[0], .n_used = (uint32_t)y->ne[1], .n_tok = (uint32_t)y->ne[2]};
    vk_binding b[3];
    vk_push_tensor py;
    VKI_TRY(vk_bind_tensor(c, y, false, 4, &b[0], &py));
    VKI_TRY(bind_rows(c, w, false, &b[1], &p.w));
    VKI_TRY(bind_rows(c, d, true, &b[2], &p.d));
    p.y_offs = py.offs;
    p.y_nb1 = py.nb1;
    p.y_nb2 = py.nb2;
    uint64_t n = (uint64_t)p.ne0 * p.n_tok;
    if (!record || !n) return VKI_OK;
    uint32_t gx, gy;
    vk_groups_2d((n + 127) / 128, &gx, &gy);
    return vk_dispatch(c, "moe_sum", 128, 0, b, 3, &p, sizeof(p), gx, gy, 1);
}

/* ===== MATMUL_ID ========================================================= */

/* The experts [e0, e0 + *n_exp) and rows [r0, r0 + *m) of w that the next
 * binding holds: whole experts while one fits in maxStorageBufferRange (and
 * the rest of its allocation piece), else one expert's rows split as
 * MATMUL splits a weight. */
static void id_window(const vk_ctx *c, const bk_tensor *w, int64_t e0, int64_t r0, int64_t *n_exp, int64_t *m)
{
    uint64_t nb1 = w->nb[1], nb2 = w->nb[2], row_bytes = vki_row_bytes(w->type, w->ne[0]);
    uint64_t start = w->offs + (uint64_t)e0 * nb2 + (uint64_t)r0 * nb1;
    int pc = vk_piece_at(w->buf, start);
    uint64_t piece_end = w->buf->pieces[pc].base + w->buf->pieces[pc].size;
    uint64_t limit = VKI_MIN(c->max_range - c->align, piece_end - start);
    uint64_t expert_span = (uint64_t)(w->ne[1] - 1) * nb1 + row_bytes;
    if (r0 == 0 && expert_span <= limit) {
        *n_exp = VKI_MIN(1 + (int64_t)((limit - expert_span) / nb2), w->ne[2] - e0);
        *m = w->ne[1];
    } else {
        *n_exp = 1;
        *m = row_bytes <= limit ? VKI_MIN(1 + (int64_t)((limit - row_bytes) / nb1), w->ne[1] - r0) : 1;
    }
}

static vki_status op_matmul_id(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *w = op->src[0], *x = op->src[1], *ids = op->src[2];
    const char *sfx = vk_weight_suffix(w->type);
    if (!sfx)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: MATMUL_ID: weight type %s has no kernel", vki_type_name(w->type));
    if (w->nb[2] > UINT32_MAX || w->ne[2] > 65535)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: MATMUL_ID: '%s' has %lld experts of %llu bytes (at most 65535 of "
                        "4 GiB)", w->name ? w->name : "?", (long long)w->ne[2], (unsigned long long)w->nb[2]);
    vk_binding b[5];
    vk_push_tensor px, pd, pi;
    VKI_TRY(vk_bind_tensor(c, x, false, 4, &b[1], &px));
    VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[2], &pd));
    VKI_TRY(vk_bind_tensor(c, ids, false, 4, &b[3], &pi));
    b[4] = vk_status_binding(c);
    vk_push_matmul_id p = {
        .k = (uint32_t)w->ne[0], .w_nb1 = (uint32_t)w->nb[1], .w_nb2 = (uint32_t)w->nb[2],
        .n_exp = (uint32_t)w->ne[2], .n_used = (uint32_t)ids->ne[0], .n_tok = (uint32_t)ids->ne[1],
        .x_offs = px.offs, .x_nb1 = x->ne[1] == 1 ? 0 : px.nb1, .x_nb2 = px.nb2,
        .d_offs = pd.offs, .d_nb1 = pd.nb1, .d_nb2 = pd.nb2,
        .ids_offs = pi.offs, .ids_nb1 = pi.nb1, .tag = c->n_routed};
    uint64_t n_pairs = (uint64_t)p.n_used * p.n_tok;
    bool vec = p.n_tok <= MATVEC_MAX_TOK;
    if (vec && n_pairs > 65535)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: MATMUL_ID: %llu (token, slot) pairs", (unsigned long long)n_pairs);
    uint32_t nrows = vec ? vk_matvec_rows(c, w->ne[0]) : 1;
    /* Tiles: 16 TN routed rows, TN from the rows an expert gets on average
     * (a 64-token prompt over 128 experts of 8 gives 4: 64-row tiles would
     * compute 16 times what is used); y groups for twice that average (an
     * expert with more loops over its tiles; groups with none leave after
     * scanning the ids). */
    uint64_t avg = (n_pairs + (uint64_t)w->ne[2] - 1) / (uint64_t)w->ne[2];
    uint32_t tn = avg <= 16 ? 1 : avg <= 32 ? 2 : 4, bn = 16 * tn;
    uint32_t ty = (uint32_t)VKI_MIN((p.n_tok + bn - 1) / bn, VKI_MAX(1, (2 * avg + bn - 1) / bn));
    char variant[40];
    snprintf(variant, sizeof(variant), "%s_id_%s%s", vec ? "matvec" : "matmul", sfx, vec && c->use_subgroup ? "_sg" : "");

    for (int64_t e0 = 0, r0 = 0; e0 < w->ne[2];) {
        int64_t ne, m;
        id_window(c, w, e0, r0, &ne, &m);
        bk_tensor win = *w;
        win.offs = w->offs + (uint64_t)e0 * w->nb[2] + (uint64_t)r0 * w->nb[1];
        win.ne[1] = m;
        win.ne[2] = ne;
        char what[112];
        snprintf(what, sizeof(what), "weight '%s' experts %lld..%lld rows %lld..%lld", w->name ? w->name : "?",
                 (long long)e0, (long long)(e0 + ne), (long long)r0, (long long)(r0 + m));
        VKI_TRY(vk_bind(c, win.buf, win.offs, bk_span(&win), false, what, &b[0]));
        p.w_boffs = (uint32_t)b[0].delta;
        p.e0 = (uint32_t)e0;
        p.e1 = (uint32_t)(e0 + ne);
        p.row0 = (uint32_t)r0;
        p.m = (uint32_t)m;
        if (record && n_pairs) {
            if (vec) {
                uint32_t gx, gy;
                vk_groups_2d(((uint64_t)m + nrows - 1) / nrows, &gx, &gy);
                VKI_TRY(vk_dispatch(c, variant, MATVEC_WG, nrows | 1u << 8, b, 5, &p, sizeof(p), gx, gy,
                                    (uint32_t)n_pairs));
            } else {
                VKI_TRY(vk_dispatch(c, variant, 256, tn, b, 5, &p, sizeof(p), (uint32_t)((m + 63) / 64), ty,
                                    (uint32_t)ne));
            }
        }
        if (r0 + m < w->ne[1]) {
            r0 += m;
        } else {
            r0 = 0;
            e0 += ne;
        }
    }
    if (record) c->n_routed++;
    return VKI_OK;
}

vki_status vk_ops_moe(vk_ctx *c, const bk_op *op, bool record)
{
    switch (op->kind) {
    case BK_OP_TOP_K:       return op_top_k(c, op, record);
    case BK_OP_GATHER_COLS: return op_gather_cols(c, op, record);
    case BK_OP_MOE_SUM:     return op_moe_sum(c, op, record);
    case BK_OP_MATMUL_ID:   return op_matmul_id(c, op, record);
    default: return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: %s is not a MoE op", bk_op_name(op->kind));
    }
}
