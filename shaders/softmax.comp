#version 450
// softmax.comp: SOFTMAX of src0 * scale per row; one workgroup per row,
// max then sum of exponentials reduced through shared memory.
#extension GL_GOOGLE_include_directive : require
#define PUSH_ROWS
#include "push.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) writeonly buffer D { float d[]; };

shared float red[WG];

void main()
{
    uint r = group_id();
    if (r >= p.ne1 * p.ne2 * p.ne3) return;
    uint tid = gl_LocalInvocationID.x;
    uint ia = row_offs(p.a, r, p.ne1, p.ne2), id = row_offs(p.d, r, p.ne1, p.ne2);
    float mx = -1.0 / 0.0;
    for (uint i = tid; i < p.ne0; i += WG) mx = max(mx, a[ia + i] * p.f0);
    red[tid] = mx;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] = max(red[tid], red[tid + s]);
        barrier();
    }
    mx = red[0];
    barrier();
    float sum = 0.0;
    for (uint i = tid; i < p.ne0; i += WG) sum += exp(a[ia + i] * p.f0 - mx);
    red[tid] = sum;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        barrier();
    }
    float inv = 1.0 / red[0];
    for (uint i = tid; i < p.ne0; i += WG) d[id + i] = exp(a[ia + i] * p.f0 - mx) * inv;
}
