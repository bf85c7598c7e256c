#version 450
// top_k.comp: TOP_K, one workgroup per row. Round j picks the largest value
// that comes after round j-1's pick in the order (value descending, index
// ascending): each thread scans its strided share of the row, then a
// shared-memory reduction keeps the best (value, index). Nothing is stored
// between rounds but the last pick, so rows of any length work; k is a
// handful of experts. NaNs are never picked; when nothing is left (NaN
// rows), round j writes j, as the reference does.
#extension GL_GOOGLE_include_directive : require
#define PUSH_TOP_K
#include "push.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) writeonly buffer D { int d[]; };

shared float sv[WG];
shared uint si[WG];

const uint NONE = 0xFFFFFFFFu;

// (v, i) ranks before (bv, bi): larger, or equal at a lower index.
bool before(float v, uint i, float bv, uint bi) { return bi == NONE || v > bv || (v == bv && i < bi); }

void main()
{
    uint r = group_id();
    if (r >= p.n_rows) return;
    uint tid = gl_LocalInvocationID.x;
    uint ia = row_offs(p.a.t, r, p.a.ne1, p.a.ne2), id = row_offs(p.d.t, r, p.d.ne1, p.d.ne2);
    float pv = 0.0;
    uint pi = NONE; // the previous pick
    for (uint j = 0u; j < p.k; j++) {
        float bv = 0.0;
        uint bi = NONE;
        for (uint i = tid; i < p.n; i += WG) {
            float v = a[ia + i];
            if (isnan(v) || (pi != NONE && !before(pv, pi, v, i))) continue; // NaN, or picked already
            if (before(v, i, bv, bi)) { bv = v; bi = i; }
        }
        sv[tid] = bv;
        si[tid] = bi;
        barrier();
        for (uint s = WG / 2u; s > 0u; s >>= 1) {
            if (tid < s && si[tid + s] != NONE && before(sv[tid + s], si[tid + s], sv[tid], si[tid])) {
                sv[tid] = sv[tid + s];
                si[tid] = si[tid + s];
            }
            barrier();
        }
        bv = sv[0];
        bi = si[0];
        barrier(); // sv/si are rewritten by the next round
        if (tid == 0u) d[id + j] = bi == NONE ? int(j) : int(bi);
        if (bi != NONE) { pv = bv; pi = bi; }
    }
}
