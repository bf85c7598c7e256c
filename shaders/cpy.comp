#version 450
// cpy.comp: CPY f32/f16 -> f32/f16 with any strides on both sides (KV cache
// writes). f16 data is addressed in halves inside uint words; a half is
// stored with two atomics on its own 16 bits so neighbouring threads writing
// the other half of the word cannot race, and no 16-bit storage is needed.
#extension GL_GOOGLE_include_directive : require
#define PUSH_CPY
#include "push.glsl"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;

#ifdef SRC_F16
layout(binding = 0) readonly buffer A { uint a[]; };
float load_a(uint h) { return unpackHalf2x16(a[h >> 1] >> ((h & 1u) * 16u)).x; }
#else
layout(binding = 0) readonly buffer A { float a[]; };
float load_a(uint i) { return a[i]; }
#endif
#ifdef DST_F16
layout(binding = 1) buffer D { uint d[]; };
void store_d(uint h, float v)
{
    uint sh = (h & 1u) * 16u;
    atomicAnd(d[h >> 1], ~(0xFFFFu << sh));
    atomicOr(d[h >> 1], (packHalf2x16(vec2(v, 0.0)) & 0xFFFFu) << sh);
}
#else
layout(binding = 1) writeonly buffer D { float d[]; };
void store_d(uint i, float v) { d[i] = v; }
#endif

void main()
{
    uint i = group_id() * WG + gl_LocalInvocationID.x;
    if (i >= p.n) return;
    uint ia = row_offs(p.a, i / p.ane0, p.ane1, p.ane2) + i % p.ane0;
    uint id = row_offs(p.d, i / p.dne0, p.dne1, p.dne2) + i % p.dne0;
    store_d(id, load_a(ia));
}
