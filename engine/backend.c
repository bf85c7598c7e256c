/* backend.c: the helpers over the op interface (tensor views, op builders). */
#include "backend.h"

#include "error.h"

static const char *const op_names[BK_OP_COUNT] = {
    "GET_ROWS", "MATMUL", "ADD", "MUL", "SCALE", "RMS_NORM", "LAYER_NORM", "ROPE",
    "SOFTMAX", "SILU", "GELU", "SWIGLU", "CPY", "ATTN", "POOL", "L2_NORM",
    "SOFTCAP", "TOP_K", "GATHER_COLS", "MATMUL_ID", "MOE_SUM",
};

const char *bk_op_name(bk_op_kind k) { return (unsigned)k < BK_OP_COUNT ? op_names[k] : "?"; }

bk_tensor bk_tensor_make(vki_type t, int n_dims, const int64_t *ne, bk_buffer *buf, uint64_t offs)
{
    const vki_type_traits *tr = vki_type_get(t);
    VKI_ASSERT(tr && tr->block_size && n_dims >= 1 && n_dims <= 4);
    bk_tensor x = {.type = t, .buf = buf, .offs = offs};
    for (int i = 0; i < 4; i++) x.ne[i] = i < n_dims ? ne[i] : 1;
    VKI_ASSERT(x.ne[0] % tr->block_size == 0);
    x.nb[0] = tr->type_size;
    x.nb[1] = (uint64_t)(x.ne[0] / tr->block_size) * tr->type_size;
    for (int i = 2; i < 4; i++) x.nb[i] = x.nb[i - 1] * (uint64_t)x.ne[i - 1];
    return x;
}

bk_tensor bk_tensor_rows(const bk_tensor *t, int dim, int64_t r0, int64_t n)
{
    VKI_ASSERT(dim >= 1 && dim <= 3 && r0 >= 0 && n >= 0 && r0 + n <= t->ne[dim]);
    bk_tensor v = *t;
    v.offs += (uint64_t)r0 * t->nb[dim];
    v.ne[dim] = n;
    return v;
}

int64_t bk_nelements(const bk_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

uint64_t bk_nbytes(const bk_tensor *t)
{
    const vki_type_traits *tr = vki_type_get(t->type);
    return (uint64_t)(bk_nelements(t) / tr->block_size) * tr->type_size;
}

uint64_t bk_span(const bk_tensor *t)
{
    uint64_t s = vki_row_bytes(t->type, t->ne[0]);
    for (int i = 1; i < 4; i++) s += (uint64_t)(t->ne[i] - 1) * t->nb[i];
    return s;
}

bool bk_is_contiguous(const bk_tensor *t)
{
    const vki_type_traits *tr = vki_type_get(t->type);
    if (t->nb[0] != tr->type_size) return false;
    if (t->nb[1] != (uint64_t)(t->ne[0] / tr->block_size) * tr->type_size) return false;
    return t->nb[2] == t->nb[1] * (uint64_t)t->ne[1] && t->nb[3] == t->nb[2] * (uint64_t)t->ne[2];
}

void bk_destroy(bk_backend *be)
{
    if (be) be->iface->destroy(be);
}

static vki_status run(bk_backend *be, bk_op_kind k, const bk_tensor *dst, const bk_tensor *a,
                      const bk_tensor *b, const bk_tensor *c, const int32_t *ip, const float *fp)
{
    bk_op op = {.kind = k, .dst = dst, .src = {a, b, c}};
    for (int i = 0; i < 4; i++) {
        op.ip[i] = ip ? ip[i] : 0;
        op.fp[i] = fp ? fp[i] : 0.0f;
    }
    return be->iface->compute(be, &op);
}

vki_status bk_get_rows(bk_backend *be, const bk_tensor *dst, const bk_tensor *table, const bk_tensor *ids)
{ return run(be, BK_OP_GET_ROWS, dst, table, ids, NULL, NULL, NULL); }
vki_status bk_matmul(bk_backend *be, const bk_tensor *dst, const bk_tensor *w, const bk_tensor *x, const bk_tensor *bias)
{ return run(be, BK_OP_MATMUL, dst, w, x, bias, NULL, NULL); }
vki_status bk_matmul_act(bk_backend *be, const bk_tensor *dst, const bk_tensor *w, const bk_tensor *x,
                         const bk_tensor *bias, int act)
{ return run(be, BK_OP_MATMUL, dst, w, x, bias, (int32_t[4]){act}, NULL); }
vki_status bk_add(bk_backend *be, const bk_tensor *dst, const bk_tensor *a, const bk_tensor *b)
{ return run(be, BK_OP_ADD, dst, a, b, NULL, NULL, NULL); }
vki_status bk_mul(bk_backend *be, const bk_tensor *dst, const bk_tensor *a, const bk_tensor *b)
{ return run(be, BK_OP_MUL, dst, a, b, NULL, NULL, NULL); }
vki_status bk_scale(bk_backend *be, const bk_tensor *dst, const bk_tensor *a, float s)
{ return run(be, BK_OP_SCALE, dst, a, NULL, NULL, NULL, (float[4]){s}); }
vki_status bk_rms_norm(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *w, float eps)
{ return run(be, BK_OP_RMS_NORM, dst, x, w, NULL, NULL, (float[4]){eps}); }
vki_status bk_layer_norm(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *w, const bk_tensor *b, float eps)
{ return run(be, BK_OP_LAYER_NORM, dst, x, w, b, NULL, (float[4]){eps}); }
vki_status bk_rope(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *pos,
                   int n_rot, int mode, float freq_base, float freq_scale)
{ return run(be, BK_OP_ROPE, dst, x, pos, NULL, (int32_t[4]){n_rot, mode}, (float[4]){freq_base, freq_scale, 1.0f}); }
vki_status bk_rope_ext(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *pos,
                       const bk_tensor *freq_div, int n_rot, int mode, float freq_base, float freq_scale,
                       float mscale)
{
    return run(be, BK_OP_ROPE, dst, x, pos, freq_div, (int32_t[4]){n_rot, mode},
               (float[4]){freq_base, freq_scale, mscale});
}
vki_status bk_softmax(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, float scale)
{ return run(be, BK_OP_SOFTMAX, dst, x, NULL, NULL, NULL, (float[4]){scale}); }
vki_status bk_silu(bk_backend *be, const bk_tensor *dst, const bk_tensor *x)
{ return run(be, BK_OP_SILU, dst, x, NULL, NULL, NULL, NULL); }
vki_status bk_gelu(bk_backend *be, const bk_tensor *dst, const bk_tensor *x)
{ return run(be, BK_OP_GELU, dst, x, NULL, NULL, NULL, NULL); }
vki_status bk_swiglu(bk_backend *be, const bk_tensor *dst, const bk_tensor *gate, const bk_tensor *up)
{ return run(be, BK_OP_SWIGLU, dst, gate, up, NULL, NULL, NULL); }
vki_status bk_glu(bk_backend *be, const bk_tensor *dst, const bk_tensor *gate, const bk_tensor *up, int act)
{ return run(be, BK_OP_SWIGLU, dst, gate, up, NULL, (int32_t[4]){act}, NULL); }
vki_status bk_cpy(bk_backend *be, const bk_tensor *dst, const bk_tensor *src)
{ return run(be, BK_OP_CPY, dst, src, NULL, NULL, NULL, NULL); }
vki_status bk_attn(bk_backend *be, const bk_tensor *dst, const bk_tensor *q, const bk_tensor *k,
                   const bk_tensor *v, float scale, bool causal, int32_t q_pos0)
{ return run(be, BK_OP_ATTN, dst, q, k, v, (int32_t[4]){causal ? 1 : 0, q_pos0}, (float[4]){scale}); }
vki_status bk_attn_ext(bk_backend *be, const bk_tensor *dst, const bk_tensor *q, const bk_tensor *k,
                       const bk_tensor *v, float scale, bool causal, int32_t q_pos0, int32_t window,
                       float softcap)
{
    return run(be, BK_OP_ATTN, dst, q, k, v, (int32_t[4]){causal ? 1 : 0, q_pos0, window},
               (float[4]){scale, softcap});
}
vki_status bk_pool(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, int mode)
{ return run(be, BK_OP_POOL, dst, x, NULL, NULL, (int32_t[4]){mode}, NULL); }
vki_status bk_l2_norm(bk_backend *be, const bk_tensor *dst, const bk_tensor *x)
{ return run(be, BK_OP_L2_NORM, dst, x, NULL, NULL, NULL, NULL); }
vki_status bk_softcap(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, float cap)
{ return run(be, BK_OP_SOFTCAP, dst, x, NULL, NULL, NULL, (float[4]){cap}); }
vki_status bk_top_k(bk_backend *be, const bk_tensor *dst, const bk_tensor *x)
{ return run(be, BK_OP_TOP_K, dst, x, NULL, NULL, NULL, NULL); }
vki_status bk_gather_cols(bk_backend *be, const bk_tensor *dst, const bk_tensor *x, const bk_tensor *ids,
                          bool normalize)
{ return run(be, BK_OP_GATHER_COLS, dst, x, ids, NULL, (int32_t[4]){normalize ? 1 : 0}, NULL); }
vki_status bk_matmul_id(bk_backend *be, const bk_tensor *dst, const bk_tensor *w, const bk_tensor *x,
                        const bk_tensor *ids)
{ return run(be, BK_OP_MATMUL_ID, dst, w, x, ids, NULL, NULL); }
vki_status bk_moe_sum(bk_backend *be, const bk_tensor *dst, const bk_tensor *y, const bk_tensor *weights)
{ return run(be, BK_OP_MOE_SUM, dst, y, weights, NULL, NULL, NULL); }
