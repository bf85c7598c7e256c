#version 450
// norm.comp: RMS_NORM, LAYER_NORM and L2_NORM, one workgroup per row, sums
// reduced through shared memory. MODE is a spec constant.
#extension GL_GOOGLE_include_directive : require
#define PUSH_ROWS
#include "push.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint MODE = 0; // 0 rms, 1 layer, 2 l2
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer Wt { float w[]; };
layout(binding = 2) readonly buffer Bs { float bs[]; };
layout(binding = 3) writeonly buffer D { float d[]; };

shared float red[WG];

float row_sum(float v)
{
    uint tid = gl_LocalInvocationID.x;
    red[tid] = v;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}

void main()
{
    uint r = group_id();
    if (r >= p.ne1 * p.ne2 * p.ne3) return;
    uint tid = gl_LocalInvocationID.x;
    uint ia = row_offs(p.a, r, p.ne1, p.ne2), id = row_offs(p.d, r, p.ne1, p.ne2);
    float mean = 0.0;
    if (MODE == 1u) {
        float s = 0.0;
        for (uint i = tid; i < p.ne0; i += WG) s += a[ia + i];
        mean = row_sum(s) / float(p.ne0);
    }
    float sq = 0.0;
    for (uint i = tid; i < p.ne0; i += WG) {
        float v = a[ia + i] - mean;
        sq += v * v;
    }
    sq = row_sum(sq);
    float inv = MODE == 2u ? 1.0 / max(sqrt(sq), 1e-12) : inversesqrt(sq / float(p.ne0) + p.f0);
    for (uint i = tid; i < p.ne0; i += WG) {
        float y = (a[ia + i] - mean) * inv;
        if (MODE != 2u && (p.flags & 1u) != 0u) y *= w[p.w_offs + i];
        if (MODE == 1u && (p.flags & 2u) != 0u) y += bs[p.b_offs + i];
        d[id + i] = y;
    }
}
