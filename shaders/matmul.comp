#version 450
// matmul.comp: tiled MATMUL for prompts and batches. A workgroup of 256
// computes a 64 (weight rows) x 64 (activation rows) tile of dst; each
// thread holds a 4x4 register block. Weight tiles are dequantized once into
// shared memory (dequant.glsl) and reused by 64 activation rows, which is
// what makes this compute-bound. Shared use: 2 x 32 x 64 floats = 16 KB
// (see ws below; RDNA3 has 64 KB LDS per workgroup; a coopmat 16x16x16 f16
// path would replace the inner loop there).
#extension GL_GOOGLE_include_directive : require
#define PUSH_MATMUL
#include "push.glsl"

layout(local_size_x = 256) in;
#define BM 64u
#define BN 64u
#define BK 32u

layout(binding = 0) readonly buffer W { uint wdata[]; };
layout(binding = 1) readonly buffer X { float x[]; };
layout(binding = 2) writeonly buffer D { float d[]; };
layout(binding = 3) readonly buffer B { float bias[]; };
#include "dequant.glsl"

// Exactly 16 KB, the minimum every device offers. BK = 32 halves the
// barriers per FLOP against BK = 16 (lavapipe: -35% CPU time on pp128);
// there is no room for a padding column, so the loader's stores (16 per
// thread per slice, against 256 shared reads) may conflict 4-way.
shared float ws[BK][BM];
shared float xs[BK][BN];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % 16u, ty = tid / 16u;
    uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    // Loader role: row lr of each tile, 8 consecutive k at lk.
    uint lr = tid / 4u, lk = (tid % 4u) * 8u;
    bool w_ok = m0 + lr < p.m, x_ok = n0 + lr < p.n;
    uint wrow = p.w_boffs + (m0 + lr) * p.w_nb1;
    uint xrow = x_ok ? row_offs(p.x, n0 + lr, p.x_ne1, p.x_ne2) : 0u;

    float acc[4][4];
    for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < 4u; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < p.k; k0 += BK) {
        for (uint h = 0u; h < 2u; h++) {
            uint kl = lk + 4u * h, k = k0 + kl;
            vec4 wv = vec4(0.0), xv = vec4(0.0);
            if (k + 3u < p.k) {
                if (w_ok) wv = dq4(wrow, k);
                if (x_ok) xv = vec4(x[xrow + k], x[xrow + k + 1u], x[xrow + k + 2u], x[xrow + k + 3u]);
            } else {
#ifdef A_PLAIN
                for (uint e = 0u; e < 4u; e++) {
                    if (k + e < p.k) {
                        if (w_ok) wv[e] = dq1(wrow, k + e);
                        if (x_ok) xv[e] = x[xrow + k + e];
                    }
                }
#endif
            }
            for (uint e = 0u; e < 4u; e++) {
                ws[kl + e][lr] = wv[e];
                xs[kl + e][lr] = xv[e];
            }
        }
        barrier();
        for (uint kk = 0u; kk < BK; kk++) {
            float a[4], b[4];
            for (uint i = 0u; i < 4u; i++) a[i] = ws[kk][tx + 16u * i];
            for (uint j = 0u; j < 4u; j++) b[j] = xs[kk][ty + 16u * j];
            for (uint i = 0u; i < 4u; i++)
                for (uint j = 0u; j < 4u; j++) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    for (uint j = 0u; j < 4u; j++) {
        uint n = n0 + ty + 16u * j;
        if (n >= p.n) continue;
        uint o = row_offs(p.d, n, p.d_ne1, p.d_ne2) + p.row0;
        for (uint i = 0u; i < 4u; i++) {
            uint m = m0 + tx + 16u * i;
            if (m >= p.m) continue;
            float s = acc[i][j];
            if (p.has_bias != 0u) s += bias[p.bias_offs + p.row0 + m];
            d[o + m] = s;
        }
    }
}
