#version 450
// eltwise.comp: ADD, MUL, SCALE, SILU, GELU, SWIGLU on f32, any strides,
// one thread per element. OP is a spec constant so one blob serves all six;
// a broadcast src1 row arrives with zero strides.
#extension GL_GOOGLE_include_directive : require
#define PUSH_ELTWISE
#include "push.glsl"

layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint OP = 0;
layout(local_size_x_id = 0) in;
// OP values: engine/vulkan/ops_basic.c (vk_eltwise_op)
#define OP_ADD 0u
#define OP_MUL 1u
#define OP_SCALE 2u
#define OP_SILU 3u
#define OP_GELU 4u
#define OP_SWIGLU 5u

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer D { float d[]; };

float silu(float v) { return v / (1.0 + exp(-v)); }

// erf by Abramowitz-Stegun 7.1.26 is only 1.5e-7 absolute; GLSL has no erf.
float erf_approx(float v)
{
    float s = sign(v), t = 1.0 / (1.0 + 0.3275911 * abs(v));
    float y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-v * v);
    return s * y;
}

void main()
{
    uint i = group_id() * WG + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint i0 = i % p.ne0, r = i / p.ne0;
    uint ia = row_offs(p.a, r, p.ne1, p.ne2) + i0;
    uint id = row_offs(p.d, r, p.ne1, p.ne2) + i0;
    float v = a[ia];
    if (OP == OP_ADD) v += b[row_offs(p.b, r, p.ne1, p.ne2) + i0];
    else if (OP == OP_MUL) v *= b[row_offs(p.b, r, p.ne1, p.ne2) + i0];
    else if (OP == OP_SCALE) v *= p.f0;
    else if (OP == OP_SILU) v = silu(v);
    else if (OP == OP_GELU) v = 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
    else if (OP == OP_SWIGLU) v = silu(v) * b[row_offs(p.b, r, p.ne1, p.ne2) + i0];
    d[id] = v;
}
