#version 450
// rope.comp: ROPE, normal (pairs 2i, 2i+1) and NeoX (pairs i, i + n_rot/2),
// one thread per pair; dims past n_rot are copied. Optional per-pair
// frequency divisors (binding 3, has_div) and mscale on cos and sin. In
// place is safe: each thread reads both of its elements before writing.
#extension GL_GOOGLE_include_directive : require
#define PUSH_ROPE
#include "push.glsl"
#include "trig.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

layout(binding = 0) readonly buffer A { float a[]; };
layout(binding = 1) readonly buffer P { int pos[]; };
layout(binding = 2) buffer D { float d[]; };
layout(binding = 3) readonly buffer F { float fdiv[]; };

void main()
{
    uint half_hd = p.ne0 / 2u;
    uint t = group_id() * WG + gl_LocalInvocationID.x;
    if (t >= half_hd * p.ne1 * p.ne2) return;
    uint i = t % half_hd, r = t / half_hd; // r: flattened (head, token) row
    uint tok = r / p.ne1;
    uint ia = row_offs(p.a, r, p.ne1, p.ne2), id = row_offs(p.d, r, p.ne1, p.ne2);
    uint hr = p.n_rot / 2u;
    uint i0, i1;
    if (i < hr) {
        i0 = p.mode == 2u ? i : 2u * i;
        i1 = p.mode == 2u ? i + hr : 2u * i + 1u;
    } else {
        i0 = p.n_rot + 2u * (i - hr);
        i1 = i0 + 1u;
    }
    float x0 = a[ia + i0], x1 = a[ia + i1];
    if (i < hr) {
        float theta = float(pos[p.pos_offs + tok]) * p.freq_scale * pow(p.freq_base, -2.0 * float(i) / float(p.n_rot));
        if (p.has_div != 0u) theta /= fdiv[p.div_offs + i];
        float s, c;
        sincos_accurate(theta, s, c);
        c *= p.mscale;
        s *= p.mscale;
        d[id + i0] = x0 * c - x1 * s;
        d[id + i1] = x0 * s + x1 * c;
    } else {
        d[id + i0] = x0;
        d[id + i1] = x1;
    }
}
