/*
 * push.h: the push-constant blocks of every kernel, mirrored field for field
 * by shaders/common/push.glsl. Shapes and strides travel here (they change
 * every dispatch); workgroup sizes and op selectors are spec constants.
 * Tensor rows are contiguous (nb[0] is the element size, backend.h), so a
 * tensor is its offset plus the strides of dims 1..3, in elements of its
 * binding's word type unless a field says bytes.
 */
#ifndef VKI_VK_PUSH_H
#define VKI_VK_PUSH_H

#include <stdint.h>

/* A tensor inside its binding: offs = first element, nb1..3 row strides. */
typedef struct vk_push_tensor {
    uint32_t offs, nb1, nb2, nb3;
} vk_push_tensor;

/* ADD, MUL, SCALE, SILU, GELU, SWIGLU, SOFTCAP: dst = f(a [, b]) over ne[4]
 * (all f32). A broadcast b has nb1 = nb2 = nb3 = 0. */
typedef struct vk_push_eltwise {
    uint32_t       ne[4];
    vk_push_tensor d, a, b;
    float          f0;
    uint32_t       n; /* ne0*ne1*ne2*ne3 */
} vk_push_eltwise;

/* CPY: the same linear index in each tensor's own shape. f16 offsets and
 * strides count halves. */
typedef struct vk_push_cpy {
    uint32_t       ne_d[4], ne_a[4];
    vk_push_tensor d, a;
    uint32_t       n;
} vk_push_cpy;

/* RMS_NORM / LAYER_NORM / L2_NORM / SOFTMAX: one workgroup per row. */
typedef struct vk_push_rows {
    uint32_t       ne[4];
    vk_push_tensor d, a;
    uint32_t       w_offs, b_offs; /* f32 [ne0] each                   */
    uint32_t       flags;          /* bit 0: has w, bit 1: has b         */
    float          f0;             /* eps (norms) or scale (softmax)     */
} vk_push_rows;

/* ROPE on {head_dim, n_head, n_tok}. */
typedef struct vk_push_rope {
    uint32_t       ne[4];
    vk_push_tensor d, a;
    uint32_t       pos_offs; /* i32 [n_tok] */
    uint32_t       n_rot, mode;
    float          freq_base, freq_scale;
    uint32_t       div_offs, has_div; /* f32 [n_rot/2] frequency divisors */
    float          mscale;            /* multiplies cos and sin           */
} vk_push_rope;

/* GET_ROWS: dst row r = table row ids[r] when it lies in [row0, row1) (a
 * table larger than one binding is bound window by window). An id outside
 * [0, n_rows) gets a row of zeros from the row0 == 0 dispatch and is
 * reported through the status words with the tag. */
typedef struct vk_push_get_rows {
    uint32_t       ne0, n_ids;
    uint32_t       t_boffs, t_nb1;   /* bytes                                  */
    uint32_t       row0, row1;       /* table rows present in this binding     */
    uint32_t       ids_offs;
    vk_push_tensor d;
    uint32_t       n_rows, tag;      /* rows of the whole table; GET_ROWS number in the pass */
} vk_push_get_rows;

/* MATMUL: dst[n][m] = x[n][k] . W[m][k]^T (+ bias[m]); this dispatch covers
 * weight rows [row0, row0 + m) of dst, W bound from row row0. */
typedef struct vk_push_matmul {
    uint32_t       k, m, n;
    uint32_t       w_boffs, w_nb1;   /* bytes            */
    uint32_t       x_ne1, x_ne2;     /* row decomposition */
    uint32_t       d_ne1, d_ne2;
    vk_push_tensor x, d;
    uint32_t       bias_offs, has_bias, row0;
} vk_push_matmul;

/* ATTN: q {hd, n_head, n_q}, k/v {hd, n_kv_head, n_kv}; f16 k/v strides count halves. */
typedef struct vk_push_attn {
    uint32_t hd, n_head, n_kv_head, n_q, n_kv;
    uint32_t q_offs, q_nb1, q_nb2;
    uint32_t k_offs, k_nb1, k_nb2;
    uint32_t v_offs, v_nb1, v_nb2;
    uint32_t d_offs, d_nb1, d_nb2;
    float    scale;
    uint32_t causal, q_pos0;
    uint32_t window;  /* sliding window W, 0 = none   */
    float    softcap; /* logit softcap C, 0 = none    */
} vk_push_attn;

/* POOL: src [n_tok][ne0] -> dst [ne0]; mode BK_POOL_MEAN / CLS / LAST. */
typedef struct vk_push_pool {
    uint32_t ne0, n_tok, a_offs, a_nb1, d_offs, mode;
} vk_push_pool;

/* A tensor's row decomposition next to its binding view: flattened row r
 * is (r % ne1, r / ne1 % ne2, r / (ne1 * ne2)). */
typedef struct vk_push_rows_of {
    uint32_t       ne1, ne2;
    vk_push_tensor t;
} vk_push_rows_of;

/* TOP_K (one workgroup per row): d i32 [n_rows][k] = the indices of the k
 * largest of a f32 [n_rows][n]. */
typedef struct vk_push_top_k {
    uint32_t        n, k, n_rows;
    vk_push_rows_of a, d;
} vk_push_top_k;

/* GATHER_COLS (one thread per row): d [n_rows][k] = a[r][ids[r][j]], each
 * row divided by its sum when norm; an id outside [0, n) gives a row of
 * zeros and is reported in the status words with the tag. */
typedef struct vk_push_gather_cols {
    uint32_t        n, k, n_rows, norm, tag;
    vk_push_rows_of a, ids, d;
} vk_push_gather_cols;

/* MOE_SUM (one thread per output element): d [n_tok][ne0] = sum over s of
 * w[t][s] * y[t][s][:], y {ne0, n_used, n_tok}. */
typedef struct vk_push_moe_sum {
    uint32_t        ne0, n_used, n_tok;
    uint32_t        y_offs, y_nb1, y_nb2;
    vk_push_rows_of w, d;
} vk_push_moe_sum;

/* MATMUL_ID: d[t][s][row0 + i] = W[ids[t][s]][row0 + i] . x[t][s or 0] for
 * the experts [e0, e1) and the weight rows [row0, row0 + m) bound in this
 * dispatch (expert e0's row row0 at byte w_boffs; a weight larger than one
 * binding is bound window by window). x_nb1 = 0 shares one activation row
 * among the slots. An expert id outside [0, n_exp) gives zeros (written by
 * the dispatches with e0 = 0) and is reported with the tag. */
typedef struct vk_push_matmul_id {
    uint32_t k, m, row0;
    uint32_t w_boffs, w_nb1, w_nb2;   /* bytes */
    uint32_t e0, e1, n_exp;
    uint32_t n_used, n_tok;
    uint32_t x_offs, x_nb1, x_nb2;
    uint32_t d_offs, d_nb1, d_nb2;
    uint32_t ids_offs, ids_nb1;
    uint32_t tag;
} vk_push_matmul_id;

_Static_assert(sizeof(vk_push_eltwise) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_cpy) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_rows) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_rope) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_get_rows) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_matmul) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_attn) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_pool) <= 128, "push constants over the 128-byte guarantee");

_Static_assert(sizeof(vk_push_top_k) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_gather_cols) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_moe_sum) <= 128, "push constants over the 128-byte guarantee");
_Static_assert(sizeof(vk_push_matmul_id) <= 128, "push constants over the 128-byte guarantee");

#endif
