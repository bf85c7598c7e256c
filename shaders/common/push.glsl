// push.glsl: the push-constant blocks, mirroring engine/vulkan/push.h field
// for field. A shader defines one PUSH_* selector before including this.
struct tensor_t { uint offs, nb1, nb2, nb3; };
struct rows_t { uint ne1, ne2; tensor_t t; }; // a tensor with its row decomposition

#if defined(PUSH_ELTWISE)
layout(push_constant) uniform push_t { uint ne0, ne1, ne2, ne3; tensor_t d, a, b; float f0; uint n; } p;
#elif defined(PUSH_CPY)
layout(push_constant) uniform push_t {
    uint dne0, dne1, dne2, dne3, ane0, ane1, ane2, ane3; tensor_t d, a; uint n;
} p;
#elif defined(PUSH_ROWS)
layout(push_constant) uniform push_t {
    uint ne0, ne1, ne2, ne3; tensor_t d, a; uint w_offs, b_offs, flags; float f0;
} p;
#elif defined(PUSH_ROPE)
layout(push_constant) uniform push_t {
    uint ne0, ne1, ne2, ne3; tensor_t d, a; uint pos_offs, n_rot, mode; float freq_base, freq_scale;
    uint div_offs, has_div; float mscale;
} p;
#elif defined(PUSH_GET_ROWS)
layout(push_constant) uniform push_t {
    uint ne0, n_ids, t_boffs, t_nb1, row0, row1, ids_offs; tensor_t d; uint n_rows, tag;
} p;
#elif defined(PUSH_MATMUL)
layout(push_constant) uniform push_t {
    uint k, m, n, w_boffs, w_nb1, x_ne1, x_ne2, d_ne1, d_ne2; tensor_t x, d; uint bias_offs, has_bias, row0;
} p;
#elif defined(PUSH_ATTN)
layout(push_constant) uniform push_t {
    uint hd, n_head, n_kv_head, n_q, n_kv;
    uint q_offs, q_nb1, q_nb2, k_offs, k_nb1, k_nb2, v_offs, v_nb1, v_nb2, d_offs, d_nb1, d_nb2;
    float scale; uint causal, q_pos0, window; float softcap;
} p;
#elif defined(PUSH_POOL)
layout(push_constant) uniform push_t { uint ne0, n_tok, a_offs, a_nb1, d_offs, mode; } p;
#elif defined(PUSH_TOP_K)
layout(push_constant) uniform push_t { uint n, k, n_rows; rows_t a, d; } p;
#elif defined(PUSH_GATHER_COLS)
layout(push_constant) uniform push_t { uint n, k, n_rows, norm, tag; rows_t a, ids, d; } p;
#elif defined(PUSH_MOE_SUM)
layout(push_constant) uniform push_t { uint ne0, n_used, n_tok, y_offs, y_nb1, y_nb2; rows_t w, d; } p;
#elif defined(PUSH_MATMUL_ID)
layout(push_constant) uniform push_t {
    uint k, m, row0, w_boffs, w_nb1, w_nb2, e0, e1, n_exp, n_used, n_tok;
    uint x_offs, x_nb1, x_nb2, d_offs, d_nb1, d_nb2, ids_offs, ids_nb1, tag;
} p;
#else
#error "define one PUSH_* before including push.glsl"
#endif

// Element offset of flattened row r (dims 1..3) of a tensor with ne1, ne2.
uint row_offs(tensor_t t, uint r, uint ne1, uint ne2)
{
    return t.offs + (r % ne1) * t.nb1 + ((r / ne1) % ne2) * t.nb2 + (r / (ne1 * ne2)) * t.nb3;
}

// Workgroups are laid out 2-D when a dispatch needs more than 65535 (the
// guaranteed maxComputeWorkGroupCount[0]); this is the linear group id.
uint group_id() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
