#version 450
// moe_sum.comp: MOE_SUM, one thread per output element: the router-weighted
// sum of a token's n_used expert outputs (slots in order, as the reference).
#extension GL_GOOGLE_include_directive : require
#define PUSH_MOE_SUM
#include "push.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer Y { float y[]; };
layout(binding = 1) readonly buffer Wt { float w[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

void main()
{
    uint i = group_id() * WG + gl_LocalInvocationID.x;
    if (i >= p.ne0 * p.n_tok) return;
    uint e = i % p.ne0, t = i / p.ne0;
    uint wo = row_offs(p.w.t, t, p.w.ne1, p.w.ne2), yo = p.y_offs + t * p.y_nb2 + e;
    float s = 0.0;
    for (uint j = 0u; j < p.n_used; j++) s += w[wo + j] * y[yo + j * p.y_nb1];
    d[row_offs(p.d.t, t, p.d.ne1, p.d.ne2) + e] = s;
}
