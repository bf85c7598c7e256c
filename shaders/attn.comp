#version 450
// attn.comp: fused flash-style ATTN for one sequence. One workgroup per
// (query row, head) walks the visible keys in blocks of WG: each thread
// scores one key, the block's max/sum update a running (online) softmax,
// and each thread accumulates head_dim / WG output dims in registers. GQA:
// head h reads kv head h / (n_head / n_kv_head). Causal: query i sees keys
// j <= q_pos0 + i. K/V are f32 or (KV_F16) f16 halves in uint words.
// On RDNA3 a multi-query variant (several query rows per workgroup sharing
// each K/V block through LDS) is the next step for prompts.
#extension GL_GOOGLE_include_directive : require
#define PUSH_ATTN
#include "push.glsl"

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;
#define HD_MAX 256u
#define PER_THREAD (HD_MAX / 32u) // enough for WG >= 32

layout(binding = 0) readonly buffer Q { float q[]; };
#ifdef KV_F16
layout(binding = 1) readonly buffer K { uint kb[]; };
layout(binding = 2) readonly buffer V { uint vb[]; };
float load_k(uint h) { return unpackHalf2x16(kb[h >> 1] >> ((h & 1u) * 16u)).x; }
float load_v(uint h) { return unpackHalf2x16(vb[h >> 1] >> ((h & 1u) * 16u)).x; }
#else
layout(binding = 1) readonly buffer K { float kb[]; };
layout(binding = 2) readonly buffer V { float vb[]; };
float load_k(uint i) { return kb[i]; }
float load_v(uint i) { return vb[i]; }
#endif
layout(binding = 3) writeonly buffer D { float d[]; };

shared float qs[HD_MAX];
shared float ps[WG];
shared float red[WG];

float wg_reduce(float v, bool is_max)
{
    uint tid = gl_LocalInvocationID.x;
    red[tid] = v;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] = is_max ? max(red[tid], red[tid + s]) : red[tid] + red[tid + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main()
{
    uint g = group_id();
    if (g >= p.n_q * p.n_head) return;
    uint qi = g / p.n_head, h = g % p.n_head;
    uint kh = h / (p.n_head / p.n_kv_head);
    uint tid = gl_LocalInvocationID.x;
    uint n_vis = p.causal != 0u ? min(p.n_kv, p.q_pos0 + qi + 1u) : p.n_kv;

    uint qo = p.q_offs + qi * p.q_nb2 + h * p.q_nb1;
    for (uint e = tid; e < p.hd; e += WG) qs[e] = q[qo + e];
    barrier();

    float o[PER_THREAD];
    for (uint i = 0u; i < PER_THREAD; i++) o[i] = 0.0;
    float m = -1.0 / 0.0, l = 0.0;
    uint kbase = p.k_offs + kh * p.k_nb1, vbase = p.v_offs + kh * p.v_nb1;

    for (uint j0 = 0u; j0 < n_vis; j0 += WG) {
        uint j = j0 + tid;
        float s = -1.0 / 0.0;
        if (j < n_vis) {
            uint ko = kbase + j * p.k_nb2;
            float dot_ = 0.0;
            for (uint e = 0u; e < p.hd; e++) dot_ += qs[e] * load_k(ko + e);
            s = dot_ * p.scale;
        }
        // j0 < n_vis, so the block max is finite and alpha below is defined.
        float m_new = max(m, wg_reduce(s, true));
        float alpha = exp(m - m_new);
        float pj = j < n_vis ? exp(s - m_new) : 0.0;
        ps[tid] = pj;
        l = l * alpha + wg_reduce(pj, false); // its barriers also publish ps
        uint cnt = min(WG, n_vis - j0);
        for (uint i = 0u; i < PER_THREAD; i++) {
            uint e = tid + i * WG;
            if (e >= p.hd) break;
            float acc = o[i] * alpha;
            for (uint jj = 0u; jj < cnt; jj++) acc += ps[jj] * load_v(vbase + (j0 + jj) * p.v_nb2 + e);
            o[i] = acc;
        }
        m = m_new;
        barrier(); // ps is rewritten by the next block
    }
    uint od = p.d_offs + qi * p.d_nb2 + h * p.d_nb1;
    for (uint i = 0u; i < PER_THREAD; i++) {
        uint e = tid + i * WG;
        if (e >= p.hd) break;
        d[od + e] = o[i] / l;
    }
}
