#version 450
// pool.comp: POOL (mean or CLS row) of one sequence, one thread per column.
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
    uint used = p.mode == 1u ? 1u : p.n_tok;
    float s = 0.0;
    for (uint r = 0u; r < used; r++) s += a[p.a_offs + r * p.a_nb1 + i];
    d[p.d_offs + i] = s / float(used);
}
