#version 450
// pool.comp: POOL (mean, CLS = first row, or last row) of one sequence, one
// thread per column. mode: BK_POOL_MEAN 0, BK_POOL_CLS 1, BK_POOL_LAST 2.
#extension GL_GOOGLE_include_directive : require
#define PUSH_POOL
#include "push.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) writeonly buffer D { float d[]; };

void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i >= p.ne0) return;
    uint used = p.mode == 0u ? p.n_tok : 1u, first = p.mode == 2u ? p.n_tok - 1u : 0u;
    float s = 0.0;
    for (uint r = first; r < first + used; r++) s += a[p.a_offs + r * p.a_nb1 + i];
    d[p.d_offs + i] = s / float(used);
}
