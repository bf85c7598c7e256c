#version 450
// quantize_q8.comp: the int-dot mat-vec's activation pass (ops_matmul.c).
// Each of the n activation rows (k elements, k % 32 == 0) becomes k / 32
// blocks of intdot.glsl's layout: scale d = max|x| / 127, q = round(x / d)
// as packed int8, and the sums of q over each 16-element half (Q4_0's -8,
// Q4_K's minimum and Q6_K's -32 come out of them). One thread per block;
// row j's blocks start at word d.offs + j * (k / 32) * 10. A few KB per
// token against megabytes of weights, done once per mat-vec instead of in
// every workgroup.
#extension GL_GOOGLE_include_directive : require
#define PUSH_MATMUL
#include "push.glsl"

layout(local_size_x_id = 0) in;
layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Q { uint xq[]; };

void main()
{
    uint nb = p.k / 32u, i = group_id() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; // groups may be 2-D
    if (i >= nb * p.n) return;
    uint j = i / nb, b = i % nb;
    uint xo = row_offs(p.x, j, p.x_ne1, p.x_ne2) + 32u * b;
    float amax = 0.0;
    for (uint e = 0u; e < 32u; e++) amax = max(amax, abs(x[xo + e]));
    float d = amax / 127.0, id = d > 0.0 ? 1.0 / d : 0.0;
    uint o = p.d.offs + i * 10u;
    int s[2] = int[2](0, 0);
    for (uint w = 0u; w < 8u; w++) {
        uint packed = 0u;
        for (uint e = 0u; e < 4u; e++) {
            int q = clamp(int(round(x[xo + 4u * w + e] * id)), -127, 127);
            s[w / 4u] += q;
            packed |= (uint(q) & 0xFFu) << (8u * e);
        }
        xq[o + 2u + w] = packed;
    }
    xq[o] = floatBitsToUint(d);
    xq[o + 1u] = (uint(s[0]) & 0xFFFFu) | (uint(s[1]) << 16);
}
