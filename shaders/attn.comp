#version 450
// attn.comp: fused flash-style ATTN for one sequence. A workgroup takes QR
// rows (spec constant 1, 1..4) that share one kv head: (query row, head)
// pairs of the n_head / n_kv_head heads in the group, query-major. It walks
// the keys visible to any of them in blocks of WG: each thread reads one
// key once and scores it against all QR queries (kept in shared memory),
// the block's max/sum update each row's running (online) softmax, and each
// thread accumulates head_dim / WG output dims of every row, reading each
// V element once for the QR rows. So K/V traffic per row falls by QR: GQA
// decode shares it across the heads of a group, prompts across query rows.
// Causal: query i sees keys j <= q_pos0 + i; a sliding window W also hides
// keys j <= q_pos0 + i - W (the walk starts at the first key any row sees).
// A logit softcap C maps each scaled score s to C tanh(s / C). K/V are f32
// or (KV_F16) f16.
#extension GL_GOOGLE_include_directive : require
#define PUSH_ATTN
#include "push.glsl"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint QR_SPEC = 1; // 0 counts as 1
layout(local_size_x_id = 0) in;
#define HD_MAX 256u
#define QR_MAX 4u
#define PER_THREAD (HD_MAX / 32u) // enough for WG >= 32
const uint QR = QR_SPEC == 0u ? 1u : QR_SPEC;

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
#include "act.glsl"

shared float qs[QR_MAX][HD_MAX];
shared float ps[QR_MAX][WG];
shared float red[QR_MAX][WG];

// Reduces v[r] over the workgroup for every row r at once (max or sum).
void wg_reduce(inout float v[QR_MAX], bool is_max)
{
    uint tid = gl_LocalInvocationID.x;
    for (uint r = 0u; r < QR; r++) red[r][tid] = v[r];
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s)
            for (uint r = 0u; r < QR; r++)
                red[r][tid] = is_max ? max(red[r][tid], red[r][tid + s]) : red[r][tid] + red[r][tid + s];
        barrier();
    }
    for (uint r = 0u; r < QR; r++) v[r] = red[r][0];
    barrier();
}

void main()
{
    uint gsz = p.n_head / p.n_kv_head;  // heads per kv head
    uint per_kh = p.n_q * gsz;          // rows that read one kv head
    uint blocks = (per_kh + QR - 1u) / QR;
    uint g = group_id();
    if (g >= blocks * p.n_kv_head) return; // uniform across the workgroup
    uint kh = g / blocks, f0 = (g % blocks) * QR;
    uint tid = gl_LocalInvocationID.x;

    // Row r is flattened index f0 + r; a row past the end repeats the last
    // one (same keys, so the softmax stays defined) and is not written.
    // Row r sees keys [j_lo[r], n_vis[r]), possibly none.
    uint qi[QR_MAX], hh[QR_MAX], n_vis[QR_MAX], j_lo[QR_MAX];
    uint n_max = 0u, j_min = p.n_kv;
    for (uint r = 0u; r < QR; r++) {
        uint f = min(f0 + r, per_kh - 1u);
        qi[r] = f / gsz;
        hh[r] = kh * gsz + f % gsz;
        n_vis[r] = p.causal != 0u ? min(p.n_kv, p.q_pos0 + qi[r] + 1u) : p.n_kv;
        j_lo[r] = p.window != 0u && p.q_pos0 + qi[r] + 1u > p.window ? p.q_pos0 + qi[r] + 1u - p.window : 0u;
        n_max = max(n_max, n_vis[r]);
        j_min = min(j_min, j_lo[r]);
        uint qo = p.q_offs + qi[r] * p.q_nb2 + hh[r] * p.q_nb1;
        for (uint e = tid; e < p.hd; e += WG) qs[r][e] = q[qo + e];
    }
    barrier();

    float o[QR_MAX][PER_THREAD];
    float m[QR_MAX], l[QR_MAX];
    for (uint r = 0u; r < QR; r++) {
        for (uint i = 0u; i < PER_THREAD; i++) o[r][i] = 0.0;
        m[r] = -1.0 / 0.0;
        l[r] = 0.0;
    }
    uint kbase = p.k_offs + kh * p.k_nb1, vbase = p.v_offs + kh * p.v_nb1;

    for (uint j0 = j_min; j0 < n_max; j0 += WG) {
        uint j = j0 + tid;
        float s[QR_MAX], bm[QR_MAX], pj[QR_MAX];
        for (uint r = 0u; r < QR; r++) s[r] = 0.0;
        if (j < n_max) {
            uint ko = kbase + j * p.k_nb2;
            for (uint e = 0u; e < p.hd; e++) {
                float kv = load_k(ko + e);
                for (uint r = 0u; r < QR; r++) s[r] += qs[r][e] * kv;
            }
        }
        bool vis[QR_MAX];
        for (uint r = 0u; r < QR; r++) {
            vis[r] = j >= j_lo[r] && j < n_vis[r];
            float sc = s[r] * p.scale;
            if (p.softcap > 0.0) sc = p.softcap * tanh_safe(sc / p.softcap);
            s[r] = vis[r] ? sc : -1.0 / 0.0;
            bm[r] = s[r];
        }
        wg_reduce(bm, true);
        // A row that has seen no key yet (a window starting later than
        // another row's) keeps m = -inf: alpha is 1 there, not exp(nan).
        float alpha[QR_MAX];
        for (uint r = 0u; r < QR; r++) {
            float m_new = max(m[r], bm[r]);
            alpha[r] = isinf(m_new) ? 1.0 : exp(m[r] - m_new);
            pj[r] = vis[r] ? exp(s[r] - m_new) : 0.0;
            ps[r][tid] = pj[r];
            m[r] = m_new;
        }
        wg_reduce(pj, false); // its barriers also publish ps
        for (uint r = 0u; r < QR; r++) l[r] = l[r] * alpha[r] + pj[r];
        uint cnt = min(WG, n_max - j0);
        for (uint i = 0u; i < PER_THREAD; i++) {
            uint e = tid + i * WG;
            if (e >= p.hd) break;
            float acc[QR_MAX];
            for (uint r = 0u; r < QR; r++) acc[r] = o[r][i] * alpha[r];
            for (uint jj = 0u; jj < cnt; jj++) {
                float vv = load_v(vbase + (j0 + jj) * p.v_nb2 + e);
                for (uint r = 0u; r < QR; r++) acc[r] += ps[r][jj] * vv;
            }
            for (uint r = 0u; r < QR; r++) o[r][i] = acc[r];
        }
        barrier(); // ps is rewritten by the next block
    }
    for (uint r = 0u; r < QR; r++) {
        if (f0 + r >= per_kh) break;
        uint od = p.d_offs + qi[r] * p.d_nb2 + hh[r] * p.d_nb1;
        for (uint i = 0u; i < PER_THREAD; i++) {
            uint e = tid + i * WG;
            if (e >= p.hd) break;
            d[od + e] = l[r] > 0.0 ? o[r][i] / l[r] : 0.0; // no visible key: zeros, as the reference
        }
    }
}
