#version 450
// eltwise.comp: ADD, MUL, SCALE, SILU, GELU (erf or tanh), the gated
// products (SWIGLU with a SiLU, GELU or GELU-tanh gate) and SOFTCAP on f32,
// any strides, one thread per element. OP is a spec constant so one blob
// serves all ten; a broadcast src1 row arrives with zero strides.
#extension GL_GOOGLE_include_directive : require
#define PUSH_ELTWISE
#include "push.glsl"

layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint OP = 0;
layout(local_size_x_id = 0) in;
// OP values: engine/vulkan/ops_basic.c (the VK_OP_* enum)
#define OP_ADD 0u
#define OP_MUL 1u
#define OP_SCALE 2u
#define OP_SILU 3u
#define OP_GELU 4u
#define OP_SWIGLU 5u
#define OP_GELU_TANH 6u
#define OP_GEGLU 7u      // gelu_erf(a) * b
#define OP_GEGLU_TANH 8u // gelu_tanh(a) * b
#define OP_SOFTCAP 9u    // f0 * tanh(a / f0)

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer B { float b[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
#include "act.glsl"

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
    else if (OP == OP_GELU) v = gelu_erf(v);
    else if (OP == OP_GELU_TANH) v = gelu_tanh(v);
    else if (OP == OP_SWIGLU) v = silu(v) * b[row_offs(p.b, r, p.ne1, p.ne2) + i0];
    else if (OP == OP_GEGLU) v = gelu_erf(v) * b[row_offs(p.b, r, p.ne1, p.ne2) + i0];
    else if (OP == OP_GEGLU_TANH) v = gelu_tanh(v) * b[row_offs(p.b, r, p.ne1, p.ne2) + i0];
    else if (OP == OP_SOFTCAP) v = p.f0 * tanh_safe(v / p.f0);
    d[id] = v;
}
