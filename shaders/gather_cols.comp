#version 450
// gather_cols.comp: GATHER_COLS, one thread per row: the chosen experts'
// router weights, optionally renormalised to sum 1. An id outside [0, n)
// never indexes memory: that row is written as zeros and reported in the
// status words (engine/vulkan/vk_internal.h, VK_STATUS_*), failing the pass.
#extension GL_GOOGLE_include_directive : require
#define PUSH_GATHER_COLS
#include "push.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer I { int ids[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
layout(binding = 3) coherent buffer S { uint status[]; }; // flag, id, index, n, tag

#define STATUS_GATHER_COLS 3u // VK_STATUS_OP_GATHER_COLS

void main()
{
    uint r = group_id() * WG + gl_LocalInvocationID.x;
    if (r >= p.n_rows) return;
    uint ia = row_offs(p.a.t, r, p.a.ne1, p.a.ne2), ii = row_offs(p.ids.t, r, p.ids.ne1, p.ids.ne2);
    uint id = row_offs(p.d.t, r, p.d.ne1, p.d.ne2);
    float sum = 0.0;
    for (uint j = 0u; j < p.k; j++) {
        int c = ids[ii + j];
        if (c < 0 || uint(c) >= p.n) {
            for (uint e = 0u; e < p.k; e++) d[id + e] = 0.0;
            if (atomicCompSwap(status[0], 0u, STATUS_GATHER_COLS) == 0u) {
                status[1] = uint(c);
                status[2] = r * p.k + j;
                status[3] = p.n;
                status[4] = p.tag;
            }
            return;
        }
        sum += a[ia + uint(c)];
    }
    float inv = p.norm != 0u ? 1.0 / sum : 1.0;
    for (uint j = 0u; j < p.k; j++) d[id + j] = a[ia + uint(ids[ii + j])] * inv;
}
