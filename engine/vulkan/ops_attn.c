/*
 * ops_attn.c: recording the fused ATTN op (attn.comp): one workgroup per
 * up to 4 (query row, head) pairs that share a kv head, online softmax
 * over the visible keys, GQA, causal and sliding-window masking and the
 * logit softcap from the push constants, f32 or f16 K/V views.
 */
#include "error.h"
#include "util.h"
#include "vk_internal.h"

#define ATTN_HD_MAX 256 /* HD_MAX in attn.comp */
#define ATTN_QR_MAX 4   /* QR_MAX in attn.comp */

vki_status vk_ops_attn(vk_ctx *c, const bk_op *op, bool record)
{
    const bk_tensor *d = op->dst, *q = op->src[0], *k = op->src[1], *v = op->src[2];
    if (q->ne[0] > ATTN_HD_MAX)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: ATTN: head_dim %lld over %d", (long long)q->ne[0], ATTN_HD_MAX);
    if (k->type != v->type)
        return vki_fail(VKI_ERR_UNSUPPORTED, "vulkan: ATTN: k is %s but v is %s", vki_type_name(k->type),
                        vki_type_name(v->type));
    uint32_t kb = k->type == VKI_TYPE_F16 ? 2 : 4;
    vk_binding b[4];
    vk_push_tensor pq, pk, pv, pd;
    VKI_TRY(vk_bind_tensor(c, q, false, 4, &b[0], &pq));
    VKI_TRY(vk_bind_tensor(c, k, false, kb, &b[1], &pk));
    VKI_TRY(vk_bind_tensor(c, v, false, kb, &b[2], &pv));
    VKI_TRY(vk_bind_tensor(c, d, true, 4, &b[3], &pd));
    vk_push_attn p = {
        .hd = (uint32_t)q->ne[0], .n_head = (uint32_t)q->ne[1], .n_kv_head = (uint32_t)k->ne[1],
        .n_q = (uint32_t)q->ne[2], .n_kv = (uint32_t)k->ne[2],
        .q_offs = pq.offs, .q_nb1 = pq.nb1, .q_nb2 = pq.nb2,
        .k_offs = pk.offs, .k_nb1 = pk.nb1, .k_nb2 = pk.nb2,
        .v_offs = pv.offs, .v_nb1 = pv.nb1, .v_nb2 = pv.nb2,
        .d_offs = pd.offs, .d_nb1 = pd.nb1, .d_nb2 = pd.nb2,
        .scale = op->fp[0], .causal = op->ip[0] ? 1u : 0u, .q_pos0 = (uint32_t)op->ip[1],
        .window = (uint32_t)op->ip[2], .softcap = op->fp[1]};
    if (!record) return VKI_OK;
    /* Rows per workgroup sharing one kv head's K/V reads: up to 4, fewer
     * when there are fewer (decode without GQA: 1, nothing repeated). */
    uint64_t per_kh = (uint64_t)p.n_q * (p.n_head / p.n_kv_head);
    uint32_t qr = per_kh >= ATTN_QR_MAX ? ATTN_QR_MAX : per_kh >= 2 ? 2 : 1;
    uint32_t gx, gy;
    vk_groups_2d((per_kh + qr - 1) / qr * p.n_kv_head, &gx, &gy);
    return vk_dispatch(c, kb == 2 ? "attn_f16" : "attn_f32", 64, qr, b, 4, &p, sizeof(p), gx, gy, 1);
}
